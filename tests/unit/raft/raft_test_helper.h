/* raft_test_helper.h — a tiny in-memory cluster for the raft/ unit tests (header-only).
 *
 * Nodes 1..n run real raft cores; the "network" is a FIFO of deep-copied messages with a
 * per-link cut switch; the "disk" is synchronous unless a node is put in manual-persist mode,
 * where msgs_after_persist and the raft_persisted() call wait for tc_persist(). Snapshots are
 * a small byte string naming the applied index, sent in several chunks. This is a fixture for
 * focused tests; the seeded whole-cluster simulator with faults is tests/sim/.
 */
#ifndef RINGRAFT_RAFT_TEST_HELPER_H
#define RINGRAFT_RAFT_TEST_HELPER_H

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "raft/raft.h"

#define TC_MAX        8
#define TC_QUEUE_MAX  4096
#define TC_SNAP_BYTES 100

struct tc_msg {
	struct raft_message m;
	struct raft_entry *ents; /* owned deep copy */
	void *snap;              /* owned copy of snap_data */
};

struct tc_node {
	struct raft *r;
	struct raft_config cfg;
	bool down;
	/* durable state, as a WAL would hold it */
	struct raft_hard_state hs;
	struct raft_entry *log; /* log[i] = entry snap_index+1+i; data owned */
	size_t n_log, cap_log;
	raft_index snap_index;
	raft_term snap_term;
	struct raft_conf snap_conf;
	/* state machine: the list of applied entry indexes' data sums */
	raft_index applied;
	uint64_t applied_normal; /* non-empty NORMAL entries applied */
	uint8_t staged[TC_SNAP_BYTES * 4];
	size_t staged_len;
	/* reads */
	uint64_t read_ctx[256];
	raft_index read_idx[256];
	size_t n_reads;
	uint64_t dropped_ctx[256];
	size_t n_dropped;
	/* manual persistence */
	bool manual;
	struct tc_msg held[TC_QUEUE_MAX / 4];
	size_t n_held;
	raft_index held_idx;
	raft_term held_term;
	bool held_persist;
	/* snapshot requests answered after advance */
	struct raft_snapshot_request snap_reqs[TC_MAX];
	size_t n_snap_reqs;
	bool snap_fail;
};

struct tc {
	size_t n;
	struct tc_node nodes[TC_MAX + 1]; /* 1-based */
	struct tc_msg q[TC_QUEUE_MAX];
	size_t qn;
	bool cut[TC_MAX + 1][TC_MAX + 1];
	uint64_t sent_by_type[16];
	size_t max_entries_seen;
};

static inline void tc_msg_copy(struct tc_msg *d, const struct raft_message *m)
{
	d->m = *m;
	d->ents = NULL;
	d->snap = NULL;
	if (m->n_entries > 0) {
		d->ents = calloc(m->n_entries, sizeof(*d->ents));
		for (uint32_t i = 0; i < m->n_entries; i++) {
			d->ents[i] = m->entries[i];
			d->ents[i].data.base = NULL;
			if (m->entries[i].data.len) {
				d->ents[i].data.base = malloc(m->entries[i].data.len);
				memcpy(d->ents[i].data.base, m->entries[i].data.base,
				       m->entries[i].data.len);
			}
		}
		d->m.entries = d->ents;
	}
	if (m->snap_data.len > 0) {
		d->snap = malloc(m->snap_data.len);
		memcpy(d->snap, m->snap_data.base, m->snap_data.len);
		d->m.snap_data.base = d->snap;
	}
}

static inline void tc_msg_free(struct tc_msg *d)
{
	if (d->ents)
		for (uint32_t i = 0; i < d->m.n_entries; i++)
			free(d->ents[i].data.base);
	free(d->ents);
	free(d->snap);
	d->ents = NULL;
	d->snap = NULL;
}

static inline void tc_enqueue(struct tc *c, const struct raft_message *m)
{
	ck_assert_uint_lt(c->qn, TC_QUEUE_MAX);
	if (m->type < 16)
		c->sent_by_type[m->type]++;
	if (m->n_entries > c->max_entries_seen)
		c->max_entries_seen = m->n_entries;
	tc_msg_copy(&c->q[c->qn++], m);
}

static inline struct raft_restore tc_restore_of(struct tc_node *nd)
{
	struct raft_restore rs = {
		.hard_state = nd->hs,
		.snap_index = nd->snap_index,
		.snap_term = nd->snap_term,
		.conf = nd->snap_conf,
		.entries = nd->log,
		.n_entries = nd->n_log,
		.applied = nd->applied,
	};
	return rs;
}

static inline void tc_start(struct tc *c, raft_id id)
{
	struct tc_node *nd = &c->nodes[id];
	struct raft_restore rs = tc_restore_of(nd);
	nd->r = raft_new(&nd->cfg, &rs);
	ck_assert_ptr_nonnull(nd->r);
	nd->down = false;
}

/* n voters (ids 1..n_voters) and learners (ids n_voters+1..n); learners start knowing the
 * same configuration. */
/* A struct tc is several MB (a message queue with copied entries): tests keep it in static
 * storage, never on the stack, where it would exceed valgrind's stack-frame limit and eat most
 * of a thread's stack. tc_init* reset all of it. */
static inline void tc_init_full(struct tc *c, size_t n_voters, size_t n_learners, uint64_t seed)
{
	memset(c, 0, sizeof(*c));
	c->n = n_voters + n_learners;
	ck_assert_uint_le(c->n, TC_MAX);
	struct raft_conf conf = {0};
	for (size_t i = 1; i <= n_voters; i++)
		conf.voters[conf.n_voters++] = i;
	for (size_t i = n_voters + 1; i <= c->n; i++)
		conf.learners[conf.n_learners++] = i;
	for (size_t i = 1; i <= c->n; i++) {
		struct tc_node *nd = &c->nodes[i];
		raft_config_default(&nd->cfg, i, seed * 1000 + i);
		nd->cfg.snapshot_chunk_bytes = 32;
		nd->snap_conf = conf;
		tc_start(c, i);
	}
}

static inline void tc_init(struct tc *c, size_t n, uint64_t seed)
{
	tc_init_full(c, n, 0, seed);
}

static inline struct raft *tc_r(struct tc *c, raft_id id)
{
	return c->nodes[id].r;
}

/* the durable log model */
static inline void tc_disk_truncate(struct tc_node *nd, raft_index from)
{
	while (nd->n_log > 0 && nd->snap_index + nd->n_log >= from) {
		nd->n_log--;
		free(nd->log[nd->n_log].data.base);
	}
}

static inline void tc_disk_append(struct tc_node *nd, const struct raft_entry *e)
{
	ck_assert_uint_eq(e->index, nd->snap_index + nd->n_log + 1);
	if (nd->n_log == nd->cap_log) {
		nd->cap_log = nd->cap_log ? nd->cap_log * 2 : 64;
		nd->log = realloc(nd->log, nd->cap_log * sizeof(*nd->log));
	}
	struct raft_entry *d = &nd->log[nd->n_log++];
	*d = *e;
	d->data.base = NULL;
	if (e->data.len) {
		d->data.base = malloc(e->data.len);
		memcpy(d->data.base, e->data.base, e->data.len);
	}
}

static inline void tc_disk_reset(struct tc_node *nd, raft_index index, raft_term term,
				 const struct raft_conf *conf)
{
	tc_disk_truncate(nd, 0 + 1);
	nd->n_log = 0;
	nd->snap_index = index;
	nd->snap_term = term;
	nd->snap_conf = *conf;
}

static inline void tc_persist_done(struct tc *c, raft_id id)
{
	struct tc_node *nd = &c->nodes[id];
	for (size_t i = 0; i < nd->n_held; i++) {
		tc_enqueue(c, &nd->held[i].m);
		tc_msg_free(&nd->held[i]);
	}
	nd->n_held = 0;
	if (nd->held_persist)
		raft_persisted(nd->r, nd->held_idx, nd->held_term);
	nd->held_persist = false;
}

/* Handles one update of node id, if it has one. Returns true if it had one. */
static inline bool tc_ready(struct tc *c, raft_id id)
{
	struct tc_node *nd = &c->nodes[id];
	if (nd->down || !raft_has_ready(nd->r))
		return false;
	struct raft_update u;
	raft_ready(nd->r, &u);
	/* 1. persist */
	if (u.has_hard_state)
		nd->hs = u.hard_state;
	if (u.snap_chunk != NULL) {
		const struct raft_snapshot_chunk_in *ch = u.snap_chunk;
		if (ch->offset == 0)
			nd->staged_len = 0;
		ck_assert_uint_eq(ch->offset, nd->staged_len);
		ck_assert_uint_le(nd->staged_len + ch->data.len, sizeof(nd->staged));
		memcpy(nd->staged + nd->staged_len, ch->data.base, ch->data.len);
		nd->staged_len += ch->data.len;
		if (ch->done) {
			ck_assert_uint_eq(nd->staged_len, TC_SNAP_BYTES);
			raft_index idx;
			memcpy(&idx, nd->staged, sizeof(idx));
			ck_assert_uint_eq(idx, ch->index);
			tc_disk_reset(nd, ch->index, ch->term, &ch->conf);
			if (ch->skip_install)
				ck_assert_uint_ge(nd->applied, ch->index);
			else
				nd->applied = ch->index;
			ck_assert_uint_eq(u.n_entries, 0);
		}
	}
	if (u.truncate_from)
		tc_disk_truncate(nd, u.truncate_from);
	for (size_t i = 0; i < u.n_entries; i++)
		tc_disk_append(nd, &u.entries[i]);
	/* 2. send */
	for (size_t i = 0; i < u.n_msgs; i++)
		tc_enqueue(c, &u.msgs[i]);
	for (size_t i = 0; i < u.n_snap_reqs; i++)
		nd->snap_reqs[nd->n_snap_reqs++] = u.snap_reqs[i];
	/* 3. apply */
	for (size_t i = 0; i < u.n_committed; i++) {
		ck_assert_uint_eq(u.committed[i].index, nd->applied + 1);
		nd->applied = u.committed[i].index;
		if (u.committed[i].type == RAFT_ENTRY_NORMAL && u.committed[i].data.len > 0)
			nd->applied_normal++;
	}
	/* 4. reads */
	for (size_t i = 0; i < u.n_reads; i++) {
		nd->read_ctx[nd->n_reads] = u.reads[i].ctx;
		nd->read_idx[nd->n_reads++] = u.reads[i].index;
	}
	for (size_t i = 0; i < u.n_reads_dropped; i++)
		nd->dropped_ctx[nd->n_dropped++] = u.reads_dropped[i];
	/* hold or send the after-persist messages */
	for (size_t i = 0; i < u.n_msgs_after_persist; i++)
		tc_msg_copy(&nd->held[nd->n_held++], &u.msgs_after_persist[i]);
	raft_index last = u.n_entries ? u.entries[u.n_entries - 1].index : 0;
	raft_term last_term = u.n_entries ? u.entries[u.n_entries - 1].term : 0;
	if (u.snap_chunk && u.snap_chunk->done) {
		last = u.snap_chunk->index;
		last_term = u.snap_chunk->term;
	}
	raft_advance(nd->r, &u);
	if (last) {
		nd->held_persist = true;
		nd->held_idx = last;
		nd->held_term = last_term;
	}
	if (!nd->manual)
		tc_persist_done(c, id);
	/* snapshot chunks the leader asked for */
	size_t nreq = nd->n_snap_reqs;
	nd->n_snap_reqs = 0;
	for (size_t i = 0; i < nreq; i++) {
		struct raft_snapshot_request q = nd->snap_reqs[i];
		uint8_t img[TC_SNAP_BYTES];
		memset(img, 0xab, sizeof(img));
		memcpy(img, &q.index, sizeof(q.index));
		size_t off = q.offset < TC_SNAP_BYTES ? q.offset : TC_SNAP_BYTES;
		size_t len = TC_SNAP_BYTES - off;
		if (len > q.len_max)
			len = q.len_max;
		raft_snapshot_chunk(nd->r, q.to, q.index, q.offset, img + off, len,
				    off + len == TC_SNAP_BYTES, nd->snap_fail);
	}
	return true;
}

static inline bool tc_deliver_one(struct tc *c)
{
	if (c->qn == 0)
		return false;
	struct tc_msg d = c->q[0];
	memmove(c->q, c->q + 1, (c->qn - 1) * sizeof(c->q[0]));
	c->qn--;
	struct tc_node *to = &c->nodes[d.m.to];
	if (d.m.to >= 1 && d.m.to <= c->n && !to->down && !c->cut[d.m.from][d.m.to])
		ck_assert_int_eq(raft_step(to->r, &d.m), 0);
	tc_msg_free(&d);
	return true;
}

/* Runs updates and delivers messages until nothing moves. */
static inline void tc_stabilize(struct tc *c)
{
	for (int guard = 0; guard < 100000; guard++) {
		bool any = false;
		for (raft_id i = 1; i <= c->n; i++)
			while (tc_ready(c, i))
				any = true;
		if (tc_deliver_one(c))
			any = true;
		if (!any)
			return;
	}
	ck_abort_msg("cluster did not stabilize");
}

static inline void tc_tick(struct tc *c, raft_id id)
{
	if (!c->nodes[id].down)
		raft_tick(c->nodes[id].r);
}

static inline void tc_tick_all(struct tc *c, int ticks)
{
	for (int t = 0; t < ticks; t++) {
		for (raft_id i = 1; i <= c->n; i++)
			tc_tick(c, i);
		tc_stabilize(c);
	}
}

/* Ticks only node id until it campaigns, then stabilizes: id should win. */
static inline void tc_elect(struct tc *c, raft_id id)
{
	for (int t = 0; t < 1000 && raft_role_of(tc_r(c, id)) == RAFT_FOLLOWER; t++)
		tc_tick(c, id);
	tc_stabilize(c);
	ck_assert_int_eq(raft_role_of(tc_r(c, id)), RAFT_LEADER);
}

static inline raft_index tc_propose(struct tc *c, raft_id id, const char *s)
{
	struct raft_buf b = {malloc(strlen(s) + 1), strlen(s) + 1};
	memcpy(b.base, s, b.len);
	raft_index idx = 0;
	raft_term term;
	int rv = raft_propose(tc_r(c, id), &b, &idx, &term);
	if (rv != 0) {
		free(b.base);
		return 0;
	}
	return idx;
}

static inline void tc_isolate(struct tc *c, raft_id id, bool cut)
{
	for (raft_id j = 1; j <= c->n; j++) {
		c->cut[id][j] = cut;
		c->cut[j][id] = cut;
	}
}

static inline void tc_crash(struct tc *c, raft_id id)
{
	struct tc_node *nd = &c->nodes[id];
	for (size_t i = 0; i < nd->n_held; i++)
		tc_msg_free(&nd->held[i]);
	nd->n_held = 0;
	nd->held_persist = false;
	raft_free(nd->r);
	nd->r = NULL;
	nd->down = true;
}

static inline void tc_drop_queue(struct tc *c)
{
	for (size_t i = 0; i < c->qn; i++)
		tc_msg_free(&c->q[i]);
	c->qn = 0;
}

static inline void tc_free(struct tc *c)
{
	tc_drop_queue(c);
	for (raft_id i = 1; i <= c->n; i++) {
		struct tc_node *nd = &c->nodes[i];
		if (!nd->down)
			tc_crash(c, i);
		tc_disk_truncate(nd, 1);
		free(nd->log);
	}
}

/* Restarts a node from its durable state (after changing nodes[id].cfg, for instance). */
static inline void tc_restart(struct tc *c, raft_id id)
{
	if (!c->nodes[id].down)
		tc_crash(c, id);
	tc_start(c, id);
}

/* Counts queued (not yet delivered) messages of a type from one node to another. */
static inline size_t tc_queued(struct tc *c, uint8_t type, raft_id from, raft_id to)
{
	size_t n = 0;
	for (size_t i = 0; i < c->qn; i++)
		if (c->q[i].m.type == type && c->q[i].m.from == from && c->q[i].m.to == to)
			n++;
	return n;
}

/* Counts leaders; returns the id of the (last) one found. */
static inline raft_id tc_leader(struct tc *c, int *count)
{
	raft_id l = 0;
	int n = 0;
	for (raft_id i = 1; i <= c->n; i++)
		if (!c->nodes[i].down && raft_role_of(tc_r(c, i)) == RAFT_LEADER) {
			l = i;
			n++;
		}
	if (count)
		*count = n;
	return l;
}

#endif
