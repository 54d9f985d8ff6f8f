/* batch.c — group commit: records of many groups gathered in one buffer, written with one
 * pwrite and made durable with one fdatasync.
 *
 * The buffer starts with room for the BATCH record, filled in at write time with the batch's
 * sequence number, length and record count; recovery accepts a batch whole or not at all.
 * Where the segment was opened with O_DIRECT, the batch is padded with zeroes to the sector
 * size and written straight to the device: the page cache's copy and writeback are skipped,
 * and since every batch starts on a fresh sector, no write ever touches a sector holding an
 * earlier (acknowledged) batch. After the fdatasync the records are applied to the in-memory
 * index with the same code recovery uses, and the durable (index, term) of every group in the
 * batch is reported. wal_batch_write_notify reports first, from what the batch itself says,
 * and indexes (from the tail cache's copy, cache.c) while the caller is woken.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "wal/wal_internal.h"

/* What a run of consecutive records of one group does to the end of its log. */
enum { LOG_SAME, LOG_ENTRIES, LOG_OTHER };
struct run {
	uint64_t group;
	uint32_t order;  /* position among the batch's runs */
	uint8_t log;     /* LOG_SAME: hard state/checkpoint only; LOG_OTHER: truncate/snapshot */
	raft_index last; /* LOG_ENTRIES: the log ends here after the run, at term `term` */
	raft_term term;
};

struct wal_batch {
	uint8_t *buf; /* WAL_BUF_ALIGN-aligned; buf[0..40) is the BATCH record, then the records */
	size_t len, cap;
	uint32_t n_records;
	struct run *runs; /* in order of addition; one group may have several */
	size_t n_runs, cap_runs;
	struct run *scratch; /* for sorting the runs */
	size_t cap_scratch;
	struct wal_durable *durable;
	size_t n_durable, cap_durable;
	bool sync; /* a record other than a lazy hard state: the write needs its fdatasync */
};

#define BATCH_FIRST_CAP 4096u

struct wal_batch *wal_batch_new(void)
{
	struct wal_batch *b = calloc(1, sizeof *b);
	if (!b)
		return NULL;
	b->cap = BATCH_FIRST_CAP;
	b->buf = wal_buf_alloc(b->cap);
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
	free(b->runs);
	free(b->scratch);
	free(b->durable);
	free(b);
}

void wal_batch_reset(struct wal_batch *b)
{
	b->len = WAL_BATCH_HEADER_RECORD_BYTES;
	b->n_records = 0;
	b->n_runs = 0;
	b->n_durable = 0;
	b->sync = false;
}

bool wal_batch_empty(const struct wal_batch *b)
{
	return b->n_records == 0;
}

size_t wal_batch_records(const struct wal_batch *b)
{
	return b->n_records;
}

size_t wal_batch_bytes(const struct wal_batch *b)
{
	return b->len;
}

static int note_run(struct wal_batch *b, uint64_t group, uint8_t log, raft_index last,
		    raft_term term)
{
	struct run *r = b->n_runs ? &b->runs[b->n_runs - 1] : NULL;
	if (!r || r->group != group) {
		if (b->n_runs == b->cap_runs) {
			size_t cap = b->cap_runs ? 2 * b->cap_runs : 16;
			struct run *nr = realloc(b->runs, cap * sizeof *nr);
			if (!nr)
				return WAL_ENOMEM;
			b->runs = nr;
			b->cap_runs = cap;
		}
		r = &b->runs[b->n_runs];
		*r = (struct run){.group = group, .order = (uint32_t)b->n_runs, .log = LOG_SAME};
		b->n_runs++;
	}
	if (log !=
	    LOG_SAME) { /* ENTRIES at i end the log at their last entry, whatever was before */
		r->log = log;
		r->last = last;
		r->term = term;
	}
	return WAL_OK;
}

/* Grows the buffer to at least need bytes (kept aligned for direct writes). */
static int grow(struct wal_batch *b, size_t need)
{
	size_t cap = b->cap;
	while (cap < need)
		cap *= 2;
	uint8_t *nb = wal_buf_alloc(cap);
	if (!nb)
		return WAL_ENOMEM;
	memcpy(nb, b->buf, b->len);
	free(b->buf);
	b->buf = nb;
	b->cap = cap;
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
	if (need > b->cap && (*rc = grow(b, need)) != WAL_OK)
		return NULL;
	*rc = WAL_OK;
	return b->buf + b->len + WAL_REC_HEADER_BYTES;
}

static int end_record(struct wal_batch *b, uint8_t type, uint64_t group, size_t payload,
		      uint8_t log, raft_index last, raft_term term)
{
	int rc = note_run(b, group, log, last, term);
	if (rc)
		return rc;
	wal_rec_seal(b->buf + b->len, type, group, (uint32_t)payload);
	b->len += wal_rec_size(payload);
	b->n_records++;
	b->sync = true;
	return WAL_OK;
}

bool wal_batch_needs_sync(const struct wal_batch *b)
{
	return b->sync;
}

int wal_batch_hard_state_lazy(struct wal_batch *b, uint64_t group,
			      const struct raft_hard_state *hs)
{
	bool sync = b->sync;
	int rc = wal_batch_hard_state(b, group, hs);
	b->sync = sync;
	return rc;
}

int wal_batch_hard_state(struct wal_batch *b, uint64_t group, const struct raft_hard_state *hs)
{
	int rc;
	uint32_t len = hs->recovering ? WAL_HARD_STATE_EXT_BYTES : WAL_HARD_STATE_BYTES;
	uint8_t *p = begin_record(b, len, &rc);
	if (!p)
		return rc;
	wal_put64(p, hs->term);
	wal_put64(p + 8, hs->vote);
	wal_put64(p + 16, hs->commit);
	if (hs->recovering)
		wal_put64(p + 24, WAL_HS_FLAG_RECOVERING);
	return end_record(b, WAL_REC_HARD_STATE, group, len, LOG_SAME, 0, 0);
}

static int marker(struct wal_batch *b, uint8_t type, uint64_t group, raft_index index)
{
	int rc;
	uint8_t *p = begin_record(b, 8, &rc);
	if (!p)
		return rc;
	wal_put64(p, index);
	return end_record(b, type, group, 8, type == WAL_REC_CHECKPOINT ? LOG_SAME : LOG_OTHER, 0,
			  0);
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
	return end_record(b, WAL_REC_SNAPSHOT, group, len, LOG_OTHER, 0, 0);
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
	return end_record(b, WAL_REC_ENTRIES, group, len, LOG_ENTRIES, e[n - 1].index,
			  e[n - 1].term);
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

static bool run_before(const struct run *x, const struct run *y)
{
	return x->group < y->group || (x->group == y->group && x->order < y->order);
}

/* Sorts runs by group, keeping their order within a group: a bottom-up merge sort through the
 * batch's scratch array (no allocation on the write path once it has grown), which returns at
 * once on the sorted lists node/ makes (it adds its groups in order). */
static int sort_runs(struct wal_batch *b)
{
	size_t n = b->n_runs;
	bool sorted = true;
	for (size_t i = 1; i < n && sorted; i++)
		sorted = run_before(&b->runs[i - 1], &b->runs[i]);
	if (sorted)
		return WAL_OK;
	if (b->cap_scratch < n) {
		struct run *ns = realloc(b->scratch, n * sizeof *ns);
		if (!ns)
			return WAL_ENOMEM;
		b->scratch = ns;
		b->cap_scratch = n;
	}
	struct run *src = b->runs, *dst = b->scratch;
	for (size_t width = 1; width < n; width *= 2) {
		for (size_t lo = 0; lo < n; lo += 2 * width) {
			size_t mid = lo + width < n ? lo + width : n;
			size_t hi = lo + 2 * width < n ? lo + 2 * width : n;
			size_t i = lo, j = mid, k = lo;
			while (i < mid && j < hi)
				dst[k++] = run_before(&src[j], &src[i]) ? src[j++] : src[i++];
			while (i < mid)
				dst[k++] = src[i++];
			while (j < hi)
				dst[k++] = src[j++];
		}
		struct run *t = src;
		src = dst;
		dst = t;
	}
	if (src != b->runs) { /* the result ended in the scratch array: swap the two */
		b->scratch = b->runs;
		b->runs = src;
		size_t c = b->cap_scratch;
		b->cap_scratch = b->cap_runs;
		b->cap_runs = c;
	}
	return WAL_OK;
}

/* Starts a new active segment big enough for `bytes`: the spare, if wal_prepare made one. */
static int roll(struct wal *w, size_t bytes)
{
	/* A batch written without its fdatasync (lazy hard states) is made durable before the
	 * next segment holds anything: recovery reads segments in order and would find the
	 * later one's records after a hole. */
	if (w->unsynced) {
		if (w->io.fdatasync(w->segs[w->n_segs - 1].fd, w->io.arg) != 0) {
			w->last_errno = errno;
			return WAL_EFSYNC;
		}
		w->unsynced = false;
	}
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
		wal_seg_close(&s);
	return rc;
}

static int fail(struct wal *w, int rc)
{
	w->failed = rc == WAL_EFSYNC ? WAL_EFSYNC : WAL_EIO;
	return w->failed;
}

/* Whether adding the batch's groups could pass WAL_GROUPS_MAX: checked before anything is
 * written. Groups are never forgotten, so the count read without the mutex is a lower bound. */
static int check_group_limit(struct wal *w, const struct wal_batch *b)
{
	if (atomic_load(&w->n_groups_seen) + b->n_runs <= WAL_GROUPS_MAX)
		return WAL_OK;
	int rc = WAL_OK;
	pthread_mutex_lock(&w->mu);
	for (size_t i = 0; i < b->n_runs && rc == WAL_OK; i++) {
		struct wal_group *g;
		if (wal_group_get(w, b->runs[i].group, false, &g) == WAL_ENOTFOUND &&
		    w->n_groups + b->n_runs > WAL_GROUPS_MAX)
			rc = WAL_EINVAL;
	}
	pthread_mutex_unlock(&w->mu);
	return rc;
}

/* The batch's length with the zero padding a direct write at off needs (none without one). */
static size_t padded(const struct wal_segment *s, uint64_t off, size_t len)
{
	if (s->dfd < 0)
		return len;
	size_t a = s->dio_align;
	return len + (a - (size_t)((off + len) % a)) % a;
}

/* One pwrite with O_DIRECT. A short write, or a file system refusing this one (EINVAL), is
 * finished through the page cache (the kernel keeps the two coherent); after EINVAL the
 * segment's direct descriptor is given up. */
static int write_direct(struct wal *w, struct wal_segment *s, const uint8_t *buf, size_t n,
			uint64_t off)
{
	ssize_t k;
	do
		k = w->io.pwrite(s->dfd, buf, n, (off_t)off, w->io.arg);
	while (k < 0 && errno == EINTR);
	if (k == (ssize_t)n)
		return WAL_OK;
	if (k < 0 && errno != EINVAL) {
		w->last_errno = errno;
		return wal_io_code(errno);
	}
	if (k < 0) {
		close(s->dfd);
		s->dfd = -1;
	}
	size_t done = k > 0 ? (size_t)k : 0;
	return wal_write_all(w, s->fd, buf + done, n - done, off + done);
}

/* Applies the records of a written batch (buf, its records in [0, len)) at off of segment seg. */
static int apply(struct wal *w, uint64_t seg, uint64_t seq, const uint8_t *buf, uint64_t off,
		 size_t len, size_t total, uint32_t n_records)
{
	struct wal_scan_batch sb = {.off = 0, .bytes = total, .records_end = len, .n = n_records};
	size_t cur = 0;
	struct wal_rec_view v;
	while (wal_scan_next_record(buf, &sb, &cur, &v)) {
		v.off += off; /* positions as on disk */
		int rc = wal_apply_record(w, seg, seq, &v);
		if (rc)
			return rc;
	}
	return WAL_OK;
}

static int durable_room(struct wal *w, struct wal_batch *b, size_t n)
{
	if (b->cap_durable < n) {
		struct wal_durable *nd = realloc(b->durable, n * sizeof *nd);
		if (!nd)
			return WAL_ENOMEM;
		b->durable = nd;
		b->cap_durable = n;
	}
	if (w->cap_report < n) {
		struct wal_durable *nr = realloc(w->report, n * sizeof *nr);
		if (!nr)
			return WAL_ENOMEM;
		w->report = nr;
		w->cap_report = n;
	}
	return WAL_OK;
}

/* The report from the index, once the batch is applied. */
static int report_from_index(struct wal *w, struct wal_batch *b)
{
	int rc = sort_runs(b);
	if (rc == WAL_OK)
		rc = durable_room(w, b, b->n_runs);
	if (rc)
		return rc;
	b->n_durable = 0;
	for (size_t i = 0; i < b->n_runs; i++) {
		if (i > 0 && b->runs[i].group == b->runs[i - 1].group)
			continue;
		struct wal_group *g;
		rc = wal_group_get(w, b->runs[i].group, false, &g);
		assert(rc == WAL_OK);
		(void)rc;
		struct wal_durable *d = &b->durable[b->n_durable++];
		d->group = b->runs[i].group;
		wal_group_last(g, &d->index, &d->term);
	}
	return WAL_OK;
}

/* The report from the batch alone, before it is applied: for each group, where its last
 * ENTRIES record ends the log, or, if it wrote only hard state or checkpoints, where the log
 * ends now. False where that would not be certain (a truncation or snapshot marker, a group
 * marked corrupt): the batch is then applied first. Also kept in w->report for the check. */
static bool report_from_batch(struct wal *w, struct wal_batch *b)
{
	if (sort_runs(b) != WAL_OK || durable_room(w, b, b->n_runs) != WAL_OK)
		return false;
	size_t n = 0;
	for (size_t i = 0; i < b->n_runs; n++) {
		uint64_t id = b->runs[i].group;
		const struct run *last = NULL;
		for (; i < b->n_runs && b->runs[i].group == id; i++)
			if (b->runs[i].log != LOG_SAME)
				last = &b->runs[i];
		struct wal_group *g;
		bool known = wal_group_get(w, id, false, &g) == WAL_OK;
		if ((last && last->log == LOG_OTHER) || (known && g->st.corrupt))
			return false;
		struct wal_durable *d = &b->durable[n];
		d->group = id;
		if (last) {
			d->index = last->last;
			d->term = last->term;
		} else if (known) {
			wal_group_last(g, &d->index, &d->term);
		} else {
			d->index = d->term = 0;
		}
	}
	b->n_durable = n;
	memcpy(w->report, b->durable, n * sizeof *b->durable);
	return true;
}

/* The early report must be what the index says once the batch is in. */
static void check_report(struct wal *w, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct wal_group *g;
		raft_index index;
		raft_term term;
		int rc = wal_group_get(w, w->report[i].group, false, &g);
		assert(rc == WAL_OK);
		(void)rc;
		wal_group_last(g, &index, &term);
		assert(index == w->report[i].index && term == w->report[i].term);
		(void)index;
		(void)term;
	}
}

/* The write, with w->wmu held. If `released` is given, wmu is let go (and *released set) once
 * the batch is durable and reported, before the index update. */
static int write_batch(struct wal *w, struct wal_batch *b, wal_durable_fn fn, void *arg,
		       bool *released)
{
	b->n_durable = 0;
	int rc = w->failed;
	if (rc)
		return rc;
	if (b->n_records == 0) {
		if (fn) {
			pthread_mutex_lock(&w->mu);
			fn(b, arg);
			pthread_mutex_unlock(&w->mu);
		}
		return WAL_OK;
	}
	rc = check_group_limit(w, b);
	if (rc)
		return rc;

	struct wal_segment *seg = &w->segs[w->n_segs - 1];
	size_t len = b->len, total = padded(seg, seg->end, len);
	if (seg->end + total > seg->size) {
		rc = roll(w, len + WAL_BATCH_PAD_MAX);
		if (rc)
			return rc == WAL_ENOSPC ? rc : fail(w, rc);
		seg = &w->segs[w->n_segs - 1];
		total = padded(seg, seg->end, len);
	}
	if (total > b->cap && (rc = grow(b, total)) != WAL_OK)
		return rc;
	memset(b->buf + len, 0, total - len);
	uint8_t *h = b->buf + WAL_REC_HEADER_BYTES;
	wal_put64(h, w->next_batch_seq);
	wal_put32(h + 8, (uint32_t)total);
	wal_put32(h + 12, b->n_records);
	wal_rec_seal(b->buf, WAL_REC_BATCH, seg->nonce, WAL_BATCH_BYTES);

	uint64_t off = seg->end;
	bool direct = seg->dfd >= 0 && off % seg->dio_align == 0 && total % seg->dio_align == 0;
	rc = direct ? write_direct(w, seg, b->buf, total, off)
		    : wal_write_all(w, seg->fd, b->buf, total, off);
	direct = direct && seg->dfd >= 0; /* not if the file system refused it (EINVAL) */
	if (rc) {
		int saved = w->last_errno;
		int cut = wal_cut_back(w, seg, off, total);
		w->last_errno = saved;
		if (cut)
			return fail(w, cut);
		return rc == WAL_ENOSPC ? rc : fail(w, rc);
	}
	bool sync = b->sync && !w->opts.no_sync;
	if (sync && w->io.fdatasync(seg->fd, w->io.arg) != 0) {
		w->last_errno = errno;
		return fail(w, WAL_EFSYNC); /* never retried: the page cache state is unknown */
	}
	w->unsynced = !sync && !w->opts.no_sync; /* a sync covers every earlier write */
	b->sync = false;

	pthread_mutex_lock(&w->mu);
	seg->end += total;
	uint64_t seq = w->next_batch_seq++, seg_seq = seg->seq;
	w->stats.batches_written++;
	w->stats.records_written += b->n_records;
	w->stats.direct_writes += direct;
	w->stats.fsyncs += sync;
	/* A copy for the tail cache, which the early index update reads (the batch is the
	 * caller's again from fn on). */
	uint32_t n_records = b->n_records;
	const uint8_t *copy =
		w->opts.cache_bytes ? wal_cache_add(w, seq, seg_seq, off, b->buf, total) : NULL;
	bool early = fn && copy && report_from_batch(w, b);
	size_t n_report = b->n_durable;
	if (!early) {
		rc = apply(w, seg_seq, seq, b->buf, off, len, total, n_records);
		if (rc == WAL_OK)
			rc = report_from_index(w, b);
	}
	b->len = WAL_BATCH_HEADER_RECORD_BYTES; /* empty again, its report kept */
	b->n_records = 0;
	b->n_runs = 0;
	if (rc == WAL_OK && fn)
		fn(b, arg);
	if (rc == WAL_OK && released) { /* the next write may start while this one indexes */
		pthread_mutex_unlock(&w->wmu);
		*released = true;
	}
	if (early) {
		rc = apply(w, seg_seq, seq, copy, off, len, total, n_records);
		if (rc == WAL_OK)
			check_report(w, n_report);
	}
	if (rc)
		w->failed = rc; /* durable but not in the index: stop */
	pthread_mutex_unlock(&w->mu);
	return rc;
}

int wal_batch_write_notify(struct wal *w, struct wal_batch *b, wal_durable_fn fn, void *arg)
{
	pthread_mutex_lock(&w->wmu);
	bool released = false;
	int rc = write_batch(w, b, fn, arg, &released);
	if (!released)
		pthread_mutex_unlock(&w->wmu);
	return rc;
}

int wal_batch_write(struct wal *w, struct wal_batch *b)
{
	return wal_batch_write_notify(w, b, NULL, NULL);
}

int wal_batch_write_locked(struct wal *w, struct wal_batch *b)
{
	return write_batch(w, b, NULL, NULL, NULL);
}
