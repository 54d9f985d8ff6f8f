/* segment.c — segment files: naming, creation with preallocation, writes, cutting back.
 *
 * Segments are named by a 16-hex-digit sequence number (0000000000000001.wal, ...), so a
 * directory listing sorted by name is the log order. A new segment is preallocated (fallocate,
 * or ftruncate where the file system cannot), gets its header, and is made durable with the
 * directory before any batch is written into it.
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "wal/wal_internal.h"

static int io_err(struct wal *w, int e)
{
	w->last_errno = e;
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

int wal_write_all(struct wal *w, int fd, const void *buf, size_t n, uint64_t off)
{
	const uint8_t *p = buf;
	while (n > 0) {
		ssize_t k = w->io.pwrite(fd, p, n, (off_t)off, w->io.arg);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return io_err(w, errno);
		if (k == 0)
			return io_err(w, EIO);
		p += k;
		n -= (size_t)k;
		off += (uint64_t)k;
	}
	return WAL_OK;
}

/* Makes [off, size) of the segment zero again after a write that did not complete: shrink
 * (which frees the blocks) and grow back (which reads as zeroes), then fsync the size change.
 * A later recovery therefore never sees the half-written batch. */
int wal_cut_back(struct wal *w, struct wal_segment *s, uint64_t off)
{
	if (ftruncate(s->fd, (off_t)off) != 0 || ftruncate(s->fd, (off_t)s->size) != 0) {
		w->last_errno = errno;
		return WAL_EIO;
	}
	if (!w->opts.no_sync && fsync(s->fd) != 0) {
		w->last_errno = errno;
		return WAL_EFSYNC;
	}
	return WAL_OK;
}

int wal_seg_create(struct wal *w, uint64_t seq, uint64_t size, struct wal_segment *out)
{
	memset(out, 0, sizeof *out);
	out->seq = seq;
	out->size = size;
	out->end = WAL_SEG_HEADER_BYTES;
	snprintf(out->name, sizeof out->name, WAL_SEG_NAME_FMT, seq);
	int fd = openat(w->dir_fd, out->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return io_err(w, errno);
	int rc = WAL_OK;
	if (w->io.fallocate(fd, (off_t)size, w->io.arg) != 0) {
		if (errno == ENOSPC || errno == EDQUOT) {
			rc = io_err(w, errno);
			goto fail;
		}
		if (ftruncate(fd, (off_t)size) != 0) { /* the file system cannot preallocate */
			rc = io_err(w, errno);
			goto fail;
		}
	}
	uint8_t hdr[WAL_SEG_HEADER_BYTES];
	wal_seg_header_encode(hdr, seq);
	rc = wal_write_all(w, fd, hdr, sizeof hdr, 0);
	if (rc)
		goto fail;
	if (!w->opts.no_sync && fsync(fd) != 0) {
		w->last_errno = errno;
		close(fd);
		return WAL_EFSYNC;
	}
	rc = wal_fsync_dir(w);
	if (rc) {
		close(fd);
		return rc;
	}
	out->fd = fd;
	return WAL_OK;
fail:
	close(fd);
	unlinkat(w->dir_fd, out->name, 0);
	int drc = wal_fsync_dir(w);
	return drc ? drc : rc;
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
