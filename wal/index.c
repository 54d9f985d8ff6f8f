/* index.c — per-group state: the (group, index) -> (segment, offset, batch) index.
 *
 * Records are applied here both at recovery and after each durable write, so the in-memory
 * state after a restart is by construction the state before it. Semantics of each record
 * (docs/WAL.md): ENTRIES at `first` replace everything from `first` on (Raft's log matching:
 * a new entry at an index discards the conflicting suffix, thesis 3.5); TRUNCATE drops a
 * suffix; SNAPSHOT drops the prefix up to its index (and the whole log if the entry at that
 * index has another term, as etcd does); CHECKPOINT only raises the checkpoint.
 */
#include <assert.h>
#include <stdlib.h>

#include "wal/wal_internal.h"

static size_t group_pos(const struct wal *w, uint64_t id, bool *found)
{
	size_t lo = 0, hi = w->n_groups;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (w->groups[mid]->st.group < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < w->n_groups && w->groups[lo]->st.group == id;
	return lo;
}

int wal_group_get(struct wal *w, uint64_t id, bool create, struct wal_group **out)
{
	if (id < WAL_GROUPS_DIRECT && w->by_id[id]) {
		*out = w->by_id[id];
		return WAL_OK;
	}
	bool found;
	size_t pos = group_pos(w, id, &found);
	if (found) {
		*out = w->groups[pos];
		return WAL_OK;
	}
	if (!create)
		return WAL_ENOTFOUND;
	if (w->n_groups >= WAL_GROUPS_MAX)
		return WAL_EINVAL;
	if (w->n_groups == w->cap_groups) {
		size_t cap = w->cap_groups ? 2 * w->cap_groups : 16;
		struct wal_group **ng = realloc(w->groups, cap * sizeof *ng);
		if (!ng)
			return WAL_ENOMEM;
		w->groups = ng;
		w->cap_groups = cap;
	}
	struct wal_group *g = calloc(1, sizeof *g);
	if (!g)
		return WAL_ENOMEM;
	g->st.group = id;
	g->st.corrupt = w->salvage_unknown;
	memmove(w->groups + pos + 1, w->groups + pos, (w->n_groups - pos) * sizeof *w->groups);
	w->groups[pos] = g;
	w->n_groups++;
	if (id < WAL_GROUPS_DIRECT)
		w->by_id[id] = g;
	atomic_store(&w->n_groups_seen, w->n_groups);
	*out = g;
	return WAL_OK;
}

static void sync_range(struct wal_group *g)
{
	if (g->n == g->head) {
		g->st.first_index = g->st.last_index = 0;
		g->head = g->n = 0;
	} else {
		g->st.last_index = g->st.first_index + (g->n - g->head) - 1;
	}
}

/* Drops slots [from_pos, n). */
static void drop_suffix(struct wal_group *g, size_t from_pos)
{
	assert(from_pos >= g->head && from_pos <= g->n);
	g->n = from_pos;
	sync_range(g);
}

/* Drops slots [head, to_pos). */
static void drop_prefix(struct wal_group *g, size_t to_pos)
{
	assert(to_pos >= g->head && to_pos <= g->n);
	g->st.first_index += to_pos - g->head;
	g->head = to_pos;
	sync_range(g);
}

static void truncate_from(struct wal_group *g, raft_index from)
{
	if (g->n == g->head || from > g->st.last_index)
		return;
	if (from <= g->st.first_index)
		drop_suffix(g, g->head);
	else
		drop_suffix(g, g->head + (from - g->st.first_index));
}

void wal_group_mark_corrupt(struct wal_group *g)
{
	drop_suffix(g, g->head);
	uint64_t id = g->st.group;
	memset(&g->st, 0, sizeof g->st);
	g->st.group = id;
	g->st.corrupt = true;
}

static int reserve_slots(struct wal_group *g, size_t more)
{
	if (g->head > 0 && g->head >= (g->n - g->head)) { /* reclaim the dropped prefix */
		memmove(g->slots, g->slots + g->head, (g->n - g->head) * sizeof *g->slots);
		g->n -= g->head;
		g->head = 0;
	}
	if (g->n + more <= g->cap)
		return WAL_OK;
	size_t cap = g->cap ? g->cap : 64;
	while (cap < g->n + more)
		cap *= 2;
	struct wal_slot *ns = realloc(g->slots, cap * sizeof *ns);
	if (!ns)
		return WAL_ENOMEM;
	g->slots = ns;
	g->cap = cap;
	return WAL_OK;
}

static int note_segmax(struct wal_group *g, uint64_t seg, raft_index last)
{
	if (g->n_segmax > g->segmax_head && g->segmax[g->n_segmax - 1].seg == seg) {
		if (g->segmax[g->n_segmax - 1].max < last)
			g->segmax[g->n_segmax - 1].max = last;
		return WAL_OK;
	}
	if (g->n_segmax == g->cap_segmax) {
		if (g->segmax_head > 0) {
			g->n_segmax -= g->segmax_head;
			memmove(g->segmax, g->segmax + g->segmax_head,
				g->n_segmax * sizeof *g->segmax);
			g->segmax_head = 0;
		}
		if (g->n_segmax == g->cap_segmax) {
			size_t cap = g->cap_segmax ? 2 * g->cap_segmax : 4;
			struct wal_segmax *nm = realloc(g->segmax, cap * sizeof *nm);
			if (!nm)
				return WAL_ENOMEM;
			g->segmax = nm;
			g->cap_segmax = cap;
		}
	}
	g->segmax[g->n_segmax++] = (struct wal_segmax){.seg = seg, .max = last};
	return WAL_OK;
}

static int apply_entries(struct wal_group *g, uint64_t seg, uint64_t batch,
			 const struct wal_rec_view *r)
{
	raft_index first;
	uint32_t n;
	wal_entries_range(r->payload, &first, &n);
	truncate_from(g, first);
	if (g->n > g->head && first != g->st.last_index + 1)
		drop_suffix(g, g->head); /* a gap: the log restarts at first */
	int rc = reserve_slots(g, n);
	if (rc)
		return rc;
	if (g->n == g->head)
		g->st.first_index = first;
	size_t off = WAL_ENTRIES_HEADER_BYTES;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *e = r->payload + off;
		struct wal_slot *s = &g->slots[g->n];
		s->term = wal_get64(e);
		s->len = wal_get32(e + 8);
		s->type = e[12];
		s->seg = seg;
		s->batch = batch;
		s->rec_off = (uint32_t)r->off;
		s->rec_size = (uint32_t)r->size;
		s->data_off =
			(uint32_t)(r->off + WAL_REC_HEADER_BYTES + off + WAL_ENTRY_HEADER_BYTES);
		g->n++;
		off += WAL_ENTRY_HEADER_BYTES + s->len;
	}
	sync_range(g);
	return note_segmax(g, seg, first + n - 1);
}

static void apply_snapshot(struct wal_group *g, const struct wal_rec_view *r)
{
	raft_index index;
	raft_term term;
	struct raft_conf conf;
	wal_snapshot_decode(r->payload, &index, &term, &conf);
	if (g->st.corrupt) { /* the group was rebuilt from peers: a fresh start */
		g->st.corrupt = false;
	}
	if (g->n > g->head && index >= g->st.first_index && index <= g->st.last_index &&
	    g->slots[g->head + (index - g->st.first_index)].term != term)
		drop_suffix(g, g->head); /* the log does not match the snapshot */
	if (g->n > g->head && index >= g->st.first_index) {
		raft_index keep_from = index + 1;
		if (keep_from > g->st.last_index)
			drop_suffix(g, g->head);
		else
			drop_prefix(g, g->head + (keep_from - g->st.first_index));
	}
	g->st.snap_index = index;
	g->st.snap_term = term;
	g->st.snap_conf = conf;
}

int wal_apply_record(struct wal *w, uint64_t seg, uint64_t batch, const struct wal_rec_view *r)
{
	struct wal_group *g;
	int rc = wal_group_get(w, r->group, true, &g);
	if (rc)
		return rc;
	if (g->st.corrupt && r->type != WAL_REC_SNAPSHOT)
		return WAL_OK; /* ignored until the group is rebuilt (a SNAPSHOT record) */
	switch (r->type) {
	case WAL_REC_ENTRIES:
		return apply_entries(g, seg, batch, r);
	case WAL_REC_HARD_STATE:
		wal_hard_state_decode(r->payload, r->length, &g->st.hard_state);
		g->st.has_hard_state = true;
		return WAL_OK;
	case WAL_REC_TRUNCATE:
		truncate_from(g, wal_marker_index(r->type, r->payload));
		return WAL_OK;
	case WAL_REC_SNAPSHOT:
		apply_snapshot(g, r);
		return WAL_OK;
	case WAL_REC_CHECKPOINT: {
		raft_index idx = wal_marker_index(r->type, r->payload);
		if (idx > g->st.checkpoint_index)
			g->st.checkpoint_index = idx;
		return WAL_OK;
	}
	default:
		assert(!"record type validated before apply");
		return WAL_EINVAL;
	}
}

void wal_group_drop_segments_below(struct wal_group *g, uint64_t seg)
{
	size_t pos = g->head;
	while (pos < g->n && g->slots[pos].seg < seg)
		pos++;
	drop_prefix(g, pos);
	while (g->segmax_head < g->n_segmax && g->segmax[g->segmax_head].seg < seg)
		g->segmax_head++;
}

void wal_group_last(const struct wal_group *g, raft_index *index, raft_term *term)
{
	if (g->n > g->head) {
		*index = g->st.last_index;
		*term = g->slots[g->n - 1].term;
	} else {
		*index = g->st.snap_index;
		*term = g->st.snap_term;
	}
}

void wal_group_free(struct wal_group *g)
{
	if (!g)
		return;
	drop_suffix(g, g->head);
	free(g->slots);
	free(g->segmax);
	free(g);
}
