/* segment.c — segment files: naming, creation with preallocation, writes, cutting back.
 *
 * Segments are named by a 16-hex-digit sequence number (0000000000000001.wal, ...), so a
 * directory listing sorted by name is the log order. A new segment is made under a temporary
 * name: preallocated (fallocate, or ftruncate where the file system cannot), written in full
 * with zeroes and synced; then it gets its header and its name, and the directory is synced,
 * before any batch is written into it. wal_prepare makes the next one ahead of need (the
 * "spare"), on a thread of the caller's, so a batch that fills a segment does not wait for it.
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "wal/crashpoint.h"
#include "wal/wal_internal.h"

int wal_io_code(int e)
{
	return e == ENOSPC || e == EDQUOT ? WAL_ENOSPC : WAL_EIO;
}

int wal_fsync_dir(struct wal *w)
{
	if (w->opts.no_sync)
		return WAL_OK;
	if (fsync(w->dir_fd) != 0) {
		w->last_errno = errno;
		return WAL_EFSYNC;
	}
	return WAL_OK;
}

/* The whole of buf at off, through the io hooks; a failure's errno goes to *err (not to
 * w->last_errno: wal_prepare writes beside the writer). */
static int write_all(struct wal *w, int fd, const void *buf, size_t n, uint64_t off, int *err)
{
	const uint8_t *p = buf;
	while (n > 0) {
		ssize_t k = w->io.pwrite(fd, p, n, (off_t)off, w->io.arg);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			*err = k < 0 ? errno : EIO;
			return wal_io_code(*err);
		}
		p += k;
		n -= (size_t)k;
		off += (uint64_t)k;
	}
	return WAL_OK;
}

/* Zeroes over [from, to) of fd. */
static int write_zeroes(struct wal *w, int fd, uint64_t from, uint64_t to, int *err)
{
	static const uint8_t zeroes[256 << 10];
	for (uint64_t p = from; p < to; p += sizeof zeroes) {
		size_t n = to - p < sizeof zeroes ? (size_t)(to - p) : sizeof zeroes;
		int rc = write_all(w, fd, zeroes, n, p, err);
		if (rc)
			return rc;
	}
	return WAL_OK;
}

int wal_write_all(struct wal *w, int fd, const void *buf, size_t n, uint64_t off)
{
	return write_all(w, fd, buf, n, off, &w->last_errno);
}

/* Makes [off, off + len) of the segment zero again after a write that did not complete, so a
 * later recovery never sees the half-written batch. Zeroes are written over it (the blocks stay
 * allocated and written, see make_file); where even that fails, the segment is shrunk to off
 * and grown back, which frees the blocks and reads as zeroes. Then the change is synced. */
int wal_cut_back(struct wal *w, struct wal_segment *s, uint64_t off, uint64_t len)
{
	if (off + len > s->size)
		len = s->size - off;
	bool zeroed = write_zeroes(w, s->fd, off, off + len, &w->last_errno) == WAL_OK;
	if (!zeroed &&
	    (ftruncate(s->fd, (off_t)off) != 0 || ftruncate(s->fd, (off_t)s->size) != 0)) {
		w->last_errno = errno;
		return WAL_EIO;
	}
	if (!w->opts.no_sync && fsync(s->fd) != 0) {
		w->last_errno = errno;
		return WAL_EFSYNC;
	}
	return WAL_OK;
}

/* Creates DIR/name (replacing a leftover), reserves `size` bytes and writes every one of them
 * with zeroes, then syncs it. fallocate alone leaves "unwritten" extents: the first write into
 * each makes the next fdatasync commit file-system metadata too, several times the cost of a
 * data flush. A segment written in full beforehand costs every batch only its own data, and
 * its blocks are allocated, so writing into it cannot run out of space. Uses only its
 * arguments and the io hooks (wal_prepare runs it beside a write): errno goes to *err. */
static int make_file(struct wal *w, const char *name, uint64_t size, int *fd_out, int *err)
{
	int fd = openat(w->dir_fd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		*err = errno;
		return WAL_EIO;
	}
	int rc = WAL_OK;
	if (w->io.fallocate(fd, (off_t)size, w->io.arg) != 0) {
		if (errno == ENOSPC || errno == EDQUOT || ftruncate(fd, (off_t)size) != 0) {
			*err = errno;
			rc = wal_io_code(errno);
		}
	}
	if (rc == WAL_OK)
		rc = write_zeroes(w, fd, 0, size, err);
	if (rc == WAL_OK && !w->opts.no_sync && w->io.fdatasync(fd, w->io.arg) != 0) {
		*err = errno;
		rc = WAL_EFSYNC;
	}
	if (rc) {
		close(fd);
		unlinkat(w->dir_fd, name, 0);
		return rc;
	}
	*fd_out = fd;
	return WAL_OK;
}

/* A segment's nonce (format.h): random, non-zero. Where the kernel has no random bytes to give
 * without waiting (early boot), the clock and the process id: a nonce that can be guessed
 * only weakens the defence against batch images in entry data, it does not change the log. */
static uint32_t new_nonce(void)
{
	uint32_t v = 0;
	if (getrandom(&v, sizeof v, GRND_NONBLOCK) != (ssize_t)sizeof v) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		v = (uint32_t)((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec * 2654435761u) ^
			       ((uint64_t)getpid() << 12));
	}
	return v ? v : 1;
}

/* Gives a made file (DIR/tmp, see make_file) its header and its segment name: header, sync,
 * rename, sync of the directory. A file with a segment name therefore always has a valid
 * header and zeroes after it. On failure the file is gone and fd closed. */
static int install(struct wal *w, int fd, const char *tmp, uint64_t seq, uint64_t size,
		   struct wal_segment *out)
{
	memset(out, 0, sizeof *out);
	out->seq = seq;
	out->dfd = -1;
	out->size = size;
	out->end = WAL_SEG_HEADER_BYTES;
	out->nonce = new_nonce();
	snprintf(out->name, sizeof out->name, WAL_SEG_NAME_FMT, seq);
	uint8_t hdr[WAL_SEG_HEADER_BYTES];
	wal_seg_header_encode(hdr, seq, out->nonce);
	int rc = wal_write_all(w, fd, hdr, sizeof hdr, 0);
	if (rc == WAL_OK && !w->opts.no_sync && w->io.fdatasync(fd, w->io.arg) != 0) {
		w->last_errno = errno;
		rc = WAL_EFSYNC;
	}
	if (rc == WAL_OK)
		crash_point("wal.seg.header-synced");
	if (rc == WAL_OK && renameat(w->dir_fd, tmp, w->dir_fd, out->name) != 0) {
		w->last_errno = errno;
		rc = WAL_EIO;
	}
	if (rc) {
		close(fd);
		unlinkat(w->dir_fd, tmp, 0);
		return rc;
	}
	crash_point("wal.seg.renamed");
	rc = wal_fsync_dir(w);
	if (rc) {
		close(fd);
		return rc;
	}
	crash_point("wal.seg.installed");
	out->fd = fd;
	wal_seg_open_direct(w, out);
	return WAL_OK;
}

void wal_seg_open_direct(struct wal *w, struct wal_segment *s)
{
	s->dfd = -1;
	s->dio_align = 0;
	if (w->opts.no_direct_io)
		return;
	int fd = openat(w->dir_fd, s->name, O_WRONLY | O_DIRECT | O_CLOEXEC);
	if (fd < 0)
		return; /* a file system without O_DIRECT: writes go through the page cache */
	/* The file system says what a direct write must be aligned to (Linux 6.1 and later);
	 * where it does not, or asks for more than the buffers give, the page cache it is. */
	struct statx sx;
	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) != 0 ||
	    !(sx.stx_mask & STATX_DIOALIGN) || sx.stx_dio_offset_align == 0 ||
	    sx.stx_dio_offset_align > WAL_BATCH_PAD_MAX ||
	    (sx.stx_dio_offset_align & (sx.stx_dio_offset_align - 1)) ||
	    sx.stx_dio_mem_align > WAL_BUF_ALIGN) {
		close(fd);
		return;
	}
	s->dfd = fd;
	s->dio_align =
		sx.stx_dio_offset_align < WAL_REC_ALIGN ? WAL_REC_ALIGN : sx.stx_dio_offset_align;
}

void wal_seg_close(struct wal_segment *s)
{
	if (s->dfd >= 0)
		close(s->dfd);
	s->dfd = -1;
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

int wal_seg_create(struct wal *w, uint64_t seq, uint64_t size, struct wal_segment *out)
{
	int fd, err = 0;
	int rc = make_file(w, WAL_CREATE_TMP, size, &fd, &err);
	if (rc) {
		w->last_errno = err;
		return rc;
	}
	return install(w, fd, WAL_CREATE_TMP, seq, size, out);
}

int wal_seg_next(struct wal *w, uint64_t seq, uint64_t min_size, struct wal_segment *out)
{
	pthread_mutex_lock(&w->mu);
	while (w->spare_state == WAL_SPARE_MAKING) /* at most one segment's writes away */
		pthread_cond_wait(&w->spare_cv, &w->mu);
	int fd = -1;
	uint64_t size = 0;
	if (w->spare_state == WAL_SPARE_READY && w->spare_size >= min_size) {
		fd = w->spare_fd;
		size = w->spare_size;
		w->spare_fd = -1;
		w->spare_state = WAL_SPARE_TAKEN;
	} else {
		w->stats.segments_made_on_write++;
	}
	pthread_mutex_unlock(&w->mu);
	if (fd < 0) /* none ready (or too small for this batch): made here, on the batch path */
		return wal_seg_create(w, seq, min_size, out);
	int rc = install(w, fd, WAL_SPARE_TMP, seq, size, out);
	pthread_mutex_lock(&w->mu);
	w->spare_state = WAL_SPARE_NONE;
	pthread_mutex_unlock(&w->mu);
	return rc;
}

int wal_prepare(struct wal *w)
{
	wal_cache_populate(w); /* the first time only: the tail cache's pages, see cache.c */
	pthread_mutex_lock(&w->mu);
	if (w->spare_state != WAL_SPARE_NONE || w->failed) {
		int rc = w->failed;
		pthread_mutex_unlock(&w->mu);
		return rc;
	}
	w->spare_state = WAL_SPARE_MAKING;
	uint64_t size = w->opts.segment_bytes;
	pthread_mutex_unlock(&w->mu);

	int fd = -1, err = 0; /* err: not w->last_errno, which the writer may be setting */
	int rc = make_file(w, WAL_SPARE_TMP, size, &fd, &err);

	pthread_mutex_lock(&w->mu);
	if (rc == WAL_OK) {
		w->spare_fd = fd;
		w->spare_size = size;
		w->spare_state = WAL_SPARE_READY;
	} else {
		w->spare_state = WAL_SPARE_NONE; /* the batch path makes its own; try again later */
	}
	pthread_cond_broadcast(&w->spare_cv);
	pthread_mutex_unlock(&w->mu);
	return rc;
}

bool wal_prepare_wanted(struct wal *w)
{
	/* lock-free: the event loop asks right after a write's news, while that write may still
	 * hold the mutex for its index update */
	return atomic_load(&w->spare_state) == WAL_SPARE_NONE && !atomic_load(&w->failed);
}

bool wal_active_half_used(struct wal *w)
{
	pthread_mutex_lock(&w->mu);
	bool half = w->n_segs > 0 && w->segs[w->n_segs - 1].end >= w->segs[w->n_segs - 1].size / 2;
	pthread_mutex_unlock(&w->mu);
	return half;
}

void wal_spare_discard(struct wal *w)
{
	if (w->spare_state == WAL_SPARE_READY) {
		close(w->spare_fd);
		w->spare_fd = -1;
		w->spare_state = WAL_SPARE_NONE;
	}
	unlinkat(w->dir_fd, WAL_SPARE_TMP, 0);
	unlinkat(w->dir_fd, WAL_CREATE_TMP, 0);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static bool parse_name(const char *name, uint64_t *seq)
{
	if (strlen(name) != WAL_SEG_NAME_LEN || strcmp(name + 16, ".wal") != 0)
		return false;
	uint64_t v = 0;
	for (int i = 0; i < 16; i++) {
		char c = name[i];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (d < 0)
			return false;
		v = (v << 4) | (uint64_t)d;
	}
	*seq = v;
	return v > 0;
}

int wal_seg_list(const char *dir, uint64_t **seqs, size_t *n)
{
	*seqs = NULL;
	*n = 0;
	DIR *d = opendir(dir);
	if (!d)
		return WAL_EIO;
	size_t cap = 0;
	struct dirent *de;
	int rc = WAL_OK;
	while ((de = readdir(d)) != NULL) {
		uint64_t seq;
		if (!parse_name(de->d_name, &seq))
			continue;
		if (*n == cap) {
			cap = cap ? 2 * cap : 16;
			uint64_t *ns = realloc(*seqs, cap * sizeof *ns);
			if (!ns) {
				rc = WAL_ENOMEM;
				break;
			}
			*seqs = ns;
		}
		(*seqs)[(*n)++] = seq;
	}
	closedir(d);
	if (rc) {
		free(*seqs);
		*seqs = NULL;
		*n = 0;
		return rc;
	}
	if (*n)
		qsort(*seqs, *n, sizeof **seqs, cmp_u64);
	return WAL_OK;
}

struct wal_segment *wal_seg_find(struct wal *w, uint64_t seq)
{
	size_t lo = 0, hi = w->n_segs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (w->segs[mid].seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < w->n_segs && w->segs[lo].seq == seq ? &w->segs[lo] : NULL;
}

int wal_segs_push(struct wal *w, const struct wal_segment *s)
{
	assert(w->n_segs == 0 || w->segs[w->n_segs - 1].seq < s->seq);
	if (w->n_segs == w->cap_segs) {
		size_t cap = w->cap_segs ? 2 * w->cap_segs : 8;
		struct wal_segment *ns = realloc(w->segs, cap * sizeof *ns);
		if (!ns)
			return WAL_ENOMEM;
		w->segs = ns;
		w->cap_segs = cap;
	}
	w->segs[w->n_segs++] = *s;
	return WAL_OK;
}
