/* wal.c — opening and closing the WAL, its directory lock, reads by index, stats, errors.
 *
 * wal_open takes an exclusive flock on DIR/LOCK (a second process, or a second open in the
 * same process, gets WAL_ELOCKED), then recovers. Reads come from the tail cache when the
 * entry's batch is still there and otherwise re-read the whole record from its segment and
 * check its CRC again, so a read never returns bytes that were damaged on disk after recovery.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wal/wal_internal.h"

const char *wal_strerror(int err)
{
	switch (err) {
	case WAL_OK:
		return "ok";
	case WAL_EIO:
		return "WAL I/O error";
	case WAL_ENOSPC:
		return "WAL disk full (nothing was written)";
	case WAL_ECORRUPT:
		return "WAL corrupt: damaged record followed by valid records";
	case WAL_ENOMEM:
		return "out of memory";
	case WAL_EINVAL:
		return "invalid argument";
	case WAL_ENOTFOUND:
		return "no such WAL entry";
	case WAL_EFSYNC:
		return "WAL fsync failed: the WAL refuses further writes";
	case WAL_ELOCKED:
		return "WAL directory is locked by another process";
	default:
		return "unknown WAL error";
	}
}

void wal_options_default(struct wal_options *opts)
{
	memset(opts, 0, sizeof *opts);
	opts->segment_bytes = WAL_SEGMENT_BYTES;
	opts->cache_bytes = WAL_CACHE_BYTES;
}

static ssize_t real_pwrite(int fd, const void *buf, size_t n, off_t off, void *arg)
{
	(void)arg;
	return pwrite(fd, buf, n, off);
}

static int real_fdatasync(int fd, void *arg)
{
	(void)arg;
	return fdatasync(fd);
}

static int real_fallocate(int fd, off_t len, void *arg)
{
	(void)arg;
	return fallocate(fd, 0, 0, len);
}

static int lock_dir(struct wal *w)
{
	w->lock_fd = openat(w->dir_fd, "LOCK", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (w->lock_fd < 0) {
		w->last_errno = errno;
		return WAL_EIO;
	}
	if (flock(w->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		w->last_errno = errno;
		return errno == EWOULDBLOCK ? WAL_ELOCKED : WAL_EIO;
	}
	w->locked = true;
	return WAL_OK;
}

int wal_open(const char *dir, const struct wal_options *opts, bool salvage, struct wal **out,
	     struct wal_corruption *corruption)
{
	*out = NULL;
	struct wal_options o;
	wal_options_default(&o);
	if (opts) {
		o = *opts;
		if (!o.segment_bytes)
			o.segment_bytes = WAL_SEGMENT_BYTES;
	}
	if (o.segment_bytes < 4096 || o.segment_bytes > UINT32_MAX)
		return WAL_EINVAL;
	o.segment_bytes = wal_align8(o.segment_bytes);
	struct wal *w = calloc(1, sizeof *w);
	if (!w)
		return WAL_ENOMEM;
	w->dir_fd = w->lock_fd = -1;
	w->opts = o;
	if (o.io) {
		w->io = *o.io;
	} else {
		w->io.pwrite = real_pwrite;
		w->io.fdatasync = real_fdatasync;
		w->io.fallocate = real_fallocate;
	}
	pthread_mutex_init(&w->mu, NULL);
	pthread_mutex_init(&w->wmu, NULL);
	pthread_cond_init(&w->spare_cv, NULL);
	w->spare_fd = -1;
	int rc = WAL_ENOMEM;
	w->dir = strdup(dir);
	if (!w->dir)
		goto fail;
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		w->last_errno = errno;
		rc = WAL_EIO;
		goto fail;
	}
	w->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (w->dir_fd < 0) {
		w->last_errno = errno;
		rc = WAL_EIO;
		goto fail;
	}
	rc = lock_dir(w);
	if (rc)
		goto fail;
	wal_spare_discard(w); /* a temporary file left by an earlier process */
	rc = wal_recover(w, salvage, corruption);
	if (rc)
		goto fail;
	*out = w;
	return WAL_OK;
fail:
	wal_close(w);
	return rc;
}

void wal_close(struct wal *w)
{
	if (!w)
		return;
	if (w->locked) /* the temporary files are ours to remove only under the lock */
		wal_spare_discard(w);
	if (w->unsynced && w->n_segs > 0) /* lazy hard states: nothing depends on it */
		(void)w->io.fdatasync(w->segs[w->n_segs - 1].fd, w->io.arg);
	for (size_t i = 0; i < w->n_segs; i++)
		wal_seg_close(&w->segs[i]);
	free(w->segs);
	for (size_t i = 0; i < w->n_groups; i++)
		wal_group_free(w->groups[i]);
	free(w->groups);
	wal_cache_free(w);
	free(w->report);
	if (w->lock_fd >= 0)
		close(w->lock_fd); /* releases the flock */
	if (w->dir_fd >= 0)
		close(w->dir_fd);
	pthread_cond_destroy(&w->spare_cv);
	pthread_mutex_destroy(&w->wmu);
	pthread_mutex_destroy(&w->mu);
	free(w->dir);
	free(w);
}

/* The accessors take the mutex: the group table may grow while a write applies. */
size_t wal_group_count(const struct wal *w)
{
	struct wal *mw = (struct wal *)w;
	pthread_mutex_lock(&mw->mu);
	size_t n = w->n_groups;
	pthread_mutex_unlock(&mw->mu);
	return n;
}

const struct wal_group_state *wal_group_at(const struct wal *w, size_t i)
{
	struct wal *mw = (struct wal *)w;
	pthread_mutex_lock(&mw->mu);
	assert(i < w->n_groups);
	const struct wal_group_state *st = &w->groups[i]->st;
	pthread_mutex_unlock(&mw->mu);
	return st;
}

const struct wal_group_state *wal_group_find(const struct wal *w, uint64_t group)
{
	struct wal *mw = (struct wal *)w;
	struct wal_group *g;
	pthread_mutex_lock(&mw->mu);
	int rc = wal_group_get(mw, group, false, &g);
	pthread_mutex_unlock(&mw->mu);
	return rc == WAL_OK ? &g->st : NULL;
}

int wal_group_state_copy(const struct wal *w, uint64_t group, struct wal_group_state *out)
{
	struct wal *mw = (struct wal *)w;
	struct wal_group *g;
	pthread_mutex_lock(&mw->mu);
	int rc = wal_group_get(mw, group, false, &g);
	if (rc == WAL_OK)
		*out = g->st;
	pthread_mutex_unlock(&mw->mu);
	return rc;
}

void wal_entries_free(struct raft_entry *entries, size_t n)
{
	if (!entries)
		return;
	for (size_t i = 0; i < n; i++)
		free(entries[i].data.base);
	free(entries);
}

/* Reads and re-checks the record of a slot into *buf (grown as needed). */
static int load_record(struct wal *w, const struct wal_slot *s, uint8_t **buf, size_t *cap)
{
	struct wal_segment *seg = wal_seg_find(w, s->seg);
	if (!seg)
		return WAL_ENOTFOUND;
	if (*cap < s->rec_size) {
		uint8_t *nb = realloc(*buf, s->rec_size);
		if (!nb)
			return WAL_ENOMEM;
		*buf = nb;
		*cap = s->rec_size;
	}
	size_t got = 0;
	while (got < s->rec_size) {
		ssize_t k = pread(seg->fd, *buf + got, s->rec_size - got, s->rec_off + got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			w->last_errno = k < 0 ? errno : EIO;
			return WAL_EIO;
		}
		got += (size_t)k;
	}
	struct wal_rec_header h;
	const char *problem;
	if (wal_rec_check(*buf, s->rec_size, &h, &problem) != WAL_RC_OK ||
	    h.type != WAL_REC_ENTRIES)
		return WAL_ECORRUPT;
	return WAL_OK;
}

int wal_read_entries(struct wal *w, uint64_t group, raft_index lo, raft_index hi, size_t bytes_max,
		     struct raft_entry **out, size_t *n_out)
{
	pthread_mutex_lock(&w->mu);
	int rc = wal_read_entries_locked(w, group, lo, hi, bytes_max, out, n_out);
	pthread_mutex_unlock(&w->mu);
	return rc;
}

int wal_read_entries_locked(struct wal *w, uint64_t group, raft_index lo, raft_index hi,
			    size_t bytes_max, struct raft_entry **out, size_t *n_out)
{
	*out = NULL;
	*n_out = 0;
	if (lo == 0 || hi <= lo)
		return WAL_EINVAL;
	struct wal_group *g;
	int rc = wal_group_get(w, group, false, &g);
	if (rc == WAL_OK &&
	    (g->st.corrupt || g->n == g->head || lo < g->st.first_index || lo > g->st.last_index))
		rc = WAL_ENOTFOUND;
	if (rc)
		return rc;
	if (hi > g->st.last_index + 1)
		hi = g->st.last_index + 1;
	size_t want = (size_t)(hi - lo), n = 0, bytes = 0;
	struct raft_entry *es = calloc(want, sizeof *es);
	uint8_t *rbuf = NULL;
	size_t rcap = 0;
	uint64_t rseg = 0;
	uint32_t roff = UINT32_MAX;
	if (!es)
		rc = WAL_ENOMEM;
	for (size_t i = 0; rc == WAL_OK && i < want; i++) {
		const struct wal_slot *s = &g->slots[g->head + (lo - g->st.first_index) + i];
		if (n > 0 && bytes + s->len > bytes_max)
			break;
		const void *src = wal_cache_find(w, s->batch, s->seg, s->data_off);
		if (!src) {
			if (rseg != s->seg || roff != s->rec_off) {
				rc = load_record(w, s, &rbuf, &rcap);
				if (rc)
					break;
				rseg = s->seg;
				roff = s->rec_off;
			}
			src = rbuf + (s->data_off - s->rec_off);
		}
		void *copy = malloc(s->len ? s->len : 1);
		if (!copy) {
			rc = WAL_ENOMEM;
			break;
		}
		memcpy(copy, src, s->len);
		es[n] = (struct raft_entry){.term = s->term,
					    .index = lo + i,
					    .type = s->type,
					    .data = {.base = copy, .len = s->len}};
		n++;
		bytes += s->len;
	}
	free(rbuf);
	if (rc) {
		wal_entries_free(es, n);
		return rc;
	}
	*out = es;
	*n_out = n;
	return WAL_OK;
}

void wal_stats_get(const struct wal *w, struct wal_stats *st)
{
	pthread_mutex_lock((pthread_mutex_t *)&w->mu);
	*st = w->stats;
	st->segments = w->n_segs;
	st->bytes_on_disk = 0;
	for (size_t i = 0; i < w->n_segs; i++)
		st->bytes_on_disk += w->segs[i].size;
	st->cache_bytes = w->cache.bytes;
	pthread_mutex_unlock((pthread_mutex_t *)&w->mu);
}

int wal_errno(const struct wal *w)
{
	return w->last_errno;
}
