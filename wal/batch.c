/* batch.c — group commit: records of many groups gathered in one buffer, written with one
 * pwrite and made durable with one fdatasync.
 *
 * The buffer starts with room for the BATCH record, filled in at write time with the batch's
 * sequence number, length and record count; recovery accepts a batch whole or not at all.
 * After the fdatasync the records are applied to the in-memory state with the same code
 * recovery uses, and the durable (index, term) of every group in the batch is reported.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "wal/wal_internal.h"

struct wal_batch {
	uint8_t *buf; /* buf[0..40) is the BATCH record, then the records */
	size_t len, cap;
	uint32_t n_records;
	uint64_t *groups; /* groups touched, in order of addition (may repeat) */
	size_t n_groups, cap_groups;
	struct wal_durable *durable;
	size_t n_durable, cap_durable;
};

struct wal_batch *wal_batch_new(void)
{
	struct wal_batch *b = calloc(1, sizeof *b);
	if (!b)
		return NULL;
	b->cap = 4096;
	b->buf = malloc(b->cap);
	if (!b->buf) {
		free(b);
		return NULL;
	}
	b->len = WAL_BATCH_HEADER_RECORD_BYTES;
	return b;
}

void wal_batch_free(struct wal_batch *b)
{
	if (!b)
		return;
	free(b->buf);
	free(b->groups);
	free(b->durable);
	free(b);
}

void wal_batch_reset(struct wal_batch *b)
{
	b->len = WAL_BATCH_HEADER_RECORD_BYTES;
	b->n_records = 0;
	b->n_groups = 0;
	b->n_durable = 0;
}

bool wal_batch_empty(const struct wal_batch *b)
{
	return b->n_records == 0;
}

static int note_group(struct wal_batch *b, uint64_t group)
{
	if (b->n_groups && b->groups[b->n_groups - 1] == group)
		return WAL_OK;
	if (b->n_groups == b->cap_groups) {
		size_t cap = b->cap_groups ? 2 * b->cap_groups : 16;
		uint64_t *ng = realloc(b->groups, cap * sizeof *ng);
		if (!ng)
			return WAL_ENOMEM;
		b->groups = ng;
		b->cap_groups = cap;
	}
	b->groups[b->n_groups++] = group;
	return WAL_OK;
}

/* Room for a record with `payload` bytes; returns its payload pointer or NULL. */
static uint8_t *begin_record(struct wal_batch *b, size_t payload, int *rc)
{
	size_t need = b->len + wal_rec_size(payload);
	if (payload > WAL_RECORD_BYTES_MAX || need > WAL_BATCH_BYTES_MAX) {
		*rc = WAL_EINVAL;
		return NULL;
	}
	if (need > b->cap) {
		size_t cap = b->cap;
		while (cap < need)
			cap *= 2;
		uint8_t *nb = realloc(b->buf, cap);
		if (!nb) {
			*rc = WAL_ENOMEM;
			return NULL;
		}
		b->buf = nb;
		b->cap = cap;
	}
	*rc = WAL_OK;
	return b->buf + b->len + WAL_REC_HEADER_BYTES;
}

static int end_record(struct wal_batch *b, uint8_t type, uint64_t group, size_t payload)
{
	int rc = note_group(b, group);
	if (rc)
		return rc;
	wal_rec_seal(b->buf + b->len, type, group, (uint32_t)payload);
	b->len += wal_rec_size(payload);
	b->n_records++;
	return WAL_OK;
}

int wal_batch_hard_state(struct wal_batch *b, uint64_t group, const struct raft_hard_state *hs)
{
	int rc;
	uint8_t *p = begin_record(b, WAL_HARD_STATE_BYTES, &rc);
	if (!p)
		return rc;
	wal_put64(p, hs->term);
	wal_put64(p + 8, hs->vote);
	wal_put64(p + 16, hs->commit);
	return end_record(b, WAL_REC_HARD_STATE, group, WAL_HARD_STATE_BYTES);
}

static int marker(struct wal_batch *b, uint8_t type, uint64_t group, raft_index index)
{
	int rc;
	uint8_t *p = begin_record(b, 8, &rc);
	if (!p)
		return rc;
	wal_put64(p, index);
	return end_record(b, type, group, 8);
}

int wal_batch_truncate(struct wal_batch *b, uint64_t group, raft_index from)
{
	if (from == 0)
		return WAL_EINVAL;
	return marker(b, WAL_REC_TRUNCATE, group, from);
}

int wal_batch_checkpoint(struct wal_batch *b, uint64_t group, raft_index index)
{
	return marker(b, WAL_REC_CHECKPOINT, group, index);
}

int wal_batch_snapshot(struct wal_batch *b, uint64_t group, raft_index index, raft_term term,
		       const struct raft_conf *conf)
{
	static const struct raft_conf none;
	if (!conf)
		conf = &none;
	if (conf->n_voters > RAFT_NODES_MAX || conf->n_learners > RAFT_NODES_MAX)
		return WAL_EINVAL;
	size_t len = WAL_SNAPSHOT_FIXED_BYTES + 8u * (conf->n_voters + conf->n_learners);
	int rc;
	uint8_t *p = begin_record(b, len, &rc);
	if (!p)
		return rc;
	wal_put64(p, index);
	wal_put64(p + 8, term);
	wal_put32(p + 16, conf->n_voters);
	wal_put32(p + 20, conf->n_learners);
	uint8_t *ids = p + WAL_SNAPSHOT_FIXED_BYTES;
	for (uint32_t i = 0; i < conf->n_voters; i++, ids += 8)
		wal_put64(ids, conf->voters[i]);
	for (uint32_t i = 0; i < conf->n_learners; i++, ids += 8)
		wal_put64(ids, conf->learners[i]);
	return end_record(b, WAL_REC_SNAPSHOT, group, len);
}

/* One ENTRIES record with e[0..n): the caller made sure it fits. */
static int entries_record(struct wal_batch *b, uint64_t group, const struct raft_entry *e, size_t n,
			  size_t len)
{
	int rc;
	uint8_t *p = begin_record(b, len, &rc);
	if (!p)
		return rc;
	wal_put64(p, e[0].index);
	wal_put32(p + 8, (uint32_t)n);
	wal_put32(p + 12, 0);
	size_t off = WAL_ENTRIES_HEADER_BYTES;
	for (size_t i = 0; i < n; i++) {
		uint8_t *q = p + off;
		wal_put64(q, e[i].term);
		wal_put32(q + 8, (uint32_t)e[i].data.len);
		q[12] = e[i].type;
		q[13] = q[14] = q[15] = 0;
		if (e[i].data.len)
			memcpy(q + WAL_ENTRY_HEADER_BYTES, e[i].data.base, e[i].data.len);
		off += WAL_ENTRY_HEADER_BYTES + e[i].data.len;
	}
	assert(off == len);
	return end_record(b, WAL_REC_ENTRIES, group, len);
}

int wal_batch_entries(struct wal_batch *b, uint64_t group, const struct raft_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (e[i].index != e[0].index + i || e[0].index == 0 ||
		    e[i].data.len > WAL_RECORD_BYTES_MAX - WAL_ENTRIES_HEADER_BYTES -
					    WAL_ENTRY_HEADER_BYTES)
			return WAL_EINVAL;
	}
	/* split into records of at most WAL_RECORD_BYTES_MAX payload */
	size_t start = 0, len = WAL_ENTRIES_HEADER_BYTES;
	for (size_t i = 0; i < n; i++) {
		size_t one = WAL_ENTRY_HEADER_BYTES + e[i].data.len;
		if (len + one > WAL_RECORD_BYTES_MAX || i - start == UINT32_MAX) {
			int rc = entries_record(b, group, e + start, i - start, len);
			if (rc)
				return rc;
			start = i;
			len = WAL_ENTRIES_HEADER_BYTES;
		}
		len += one;
	}
	if (n > start)
		return entries_record(b, group, e + start, n - start, len);
	return WAL_OK;
}

size_t wal_batch_durable(const struct wal_batch *b, const struct wal_durable **out)
{
	*out = b->durable;
	return b->n_durable;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Starts a new active segment big enough for `bytes`: the spare, if wal_prepare made one. */
static int roll(struct wal *w, size_t bytes)
{
	uint64_t size = WAL_SEG_HEADER_BYTES + bytes;
	size = size > w->opts.segment_bytes ? wal_align8(size) : w->opts.segment_bytes;
	struct wal_segment s;
	int rc = wal_seg_next(w, w->segs[w->n_segs - 1].seq + 1, size, &s);
	if (rc)
		return rc;
	pthread_mutex_lock(&w->mu);
	rc = wal_segs_push(w, &s);
	pthread_mutex_unlock(&w->mu);
	if (rc)
		close(s.fd);
	return rc;
}

static int fail(struct wal *w, int rc)
{
	w->failed = rc == WAL_EFSYNC ? WAL_EFSYNC : WAL_EIO;
	return w->failed;
}

static int apply_and_report(struct wal *w, struct wal_batch *b, struct wal_segment *seg,
			    uint64_t off)
{
	struct wal_scan_batch sb = {.off = 0, .bytes = b->len, .n = b->n_records};
	size_t cur = 0;
	struct wal_rec_view v;
	while (wal_scan_next_record(b->buf, &sb, &cur, &v)) {
		v.off += off; /* positions as on disk */
		int rc = wal_apply_record(w, seg->seq, &v);
		if (rc)
			return rc;
	}
	qsort(b->groups, b->n_groups, sizeof *b->groups, cmp_u64);
	if (b->cap_durable < b->n_groups) {
		struct wal_durable *nd = realloc(b->durable, b->n_groups * sizeof *nd);
		if (!nd)
			return WAL_ENOMEM;
		b->durable = nd;
		b->cap_durable = b->n_groups;
	}
	b->n_durable = 0;
	for (size_t i = 0; i < b->n_groups; i++) {
		if (i > 0 && b->groups[i] == b->groups[i - 1])
			continue;
		struct wal_group *g;
		int rc = wal_group_get(w, b->groups[i], false, &g);
		assert(rc == WAL_OK);
		(void)rc;
		struct wal_durable *d = &b->durable[b->n_durable++];
		d->group = b->groups[i];
		wal_group_last(g, &d->index, &d->term);
	}
	return WAL_OK;
}

int wal_batch_write(struct wal *w, struct wal_batch *b)
{
	b->n_durable = 0;
	if (w->failed)
		return w->failed;
	if (b->n_records == 0)
		return WAL_OK;
	for (size_t i = 0; i < b->n_groups; i++) {
		struct wal_group *g;
		if (wal_group_get(w, b->groups[i], false, &g) == WAL_ENOTFOUND &&
		    w->n_groups + b->n_groups > WAL_GROUPS_MAX)
			return WAL_EINVAL; /* might not fit: checked before anything is written */
	}
	uint8_t *h = b->buf + WAL_REC_HEADER_BYTES;
	wal_put64(h, w->next_batch_seq);
	wal_put32(h + 8, (uint32_t)b->len);
	wal_put32(h + 12, b->n_records);
	wal_rec_seal(b->buf, WAL_REC_BATCH, 0, WAL_BATCH_BYTES);

	struct wal_segment *seg = &w->segs[w->n_segs - 1];
	if (seg->end + b->len > seg->size) {
		int rc = roll(w, b->len);
		if (rc)
			return rc == WAL_ENOSPC ? rc : fail(w, rc);
		seg = &w->segs[w->n_segs - 1];
	}
	uint64_t off = seg->end;
	int rc = wal_write_all(w, seg->fd, b->buf, b->len, off);
	if (rc) {
		int saved = w->last_errno;
		int cut = wal_cut_back(w, seg, off, b->len);
		w->last_errno = saved;
		if (cut)
			return fail(w, cut);
		return rc == WAL_ENOSPC ? rc : fail(w, rc);
	}
	if (!w->opts.no_sync && w->io.fdatasync(seg->fd, w->io.arg) != 0) {
		w->last_errno = errno;
		return fail(w, WAL_EFSYNC); /* never retried: the page cache state is unknown */
	}
	pthread_mutex_lock(&w->mu);
	seg->end += b->len;
	w->next_batch_seq++;
	w->stats.batches_written++;
	w->stats.records_written += b->n_records;
	if (!w->opts.no_sync)
		w->stats.fsyncs++;
	rc = apply_and_report(w, b, seg, off);
	pthread_mutex_unlock(&w->mu);
	if (rc) {
		w->failed = rc; /* durable but not applied in memory: stop */
		return rc;
	}
	return WAL_OK;
}
