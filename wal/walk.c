/* walk.c — read-only traversal of every record in a WAL directory, for the offline tool.
 *
 * It classifies damage exactly as recovery does (same scanner): damage with a valid batch
 * after it is corruption; damage at the very end of the newest segment is a torn tail that
 * the next wal_open will cut off. Nothing is written and no lock is taken.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wal/wal_internal.h"

static int bad(wal_walk_cb cb, void *arg, const char *seg, size_t off, uint64_t group,
	       const char *problem, bool torn)
{
	struct wal_record_info ri = {.segment = seg,
				     .offset = off,
				     .type = WAL_REC_BAD,
				     .group = group,
				     .problem = problem,
				     .torn_tail = torn};
	return cb(&ri, arg);
}

static int report_batch(const char *seg, const uint8_t *map, const struct wal_scan_batch *b,
			wal_walk_cb cb, void *arg)
{
	struct wal_record_info ri = {.segment = seg,
				     .offset = b->off,
				     .type = WAL_REC_BATCH,
				     .length = WAL_BATCH_BYTES,
				     .first_index = b->seq,
				     .last_index = b->seq};
	int rc = cb(&ri, arg);
	size_t cur = 0;
	struct wal_rec_view v;
	while (!rc && wal_scan_next_record(map, b, &cur, &v)) {
		struct raft_hard_state hs;
		ri = (struct wal_record_info){.segment = seg,
					      .offset = v.off,
					      .type = v.type,
					      .group = v.group,
					      .length = v.length};
		if (v.type == WAL_REC_ENTRIES) {
			uint32_t n;
			wal_entries_range(v.payload, &ri.first_index, &n);
			ri.last_index = ri.first_index + n - 1;
		} else if (v.type == WAL_REC_HARD_STATE) {
			wal_hard_state_decode(v.payload, v.length, &hs);
			ri.hard_state = &hs;
		} else {
			ri.first_index = ri.last_index = wal_marker_index(v.type, v.payload);
		}
		rc = cb(&ri, arg);
	}
	return rc;
}

struct seqs {
	bool have; /* a batch was seen since the start or the last damage */
	uint64_t last;
};

static int walk_segment(const char *name, const uint8_t *map, size_t size, uint32_t nonce,
			bool is_last, struct seqs *sq, wal_walk_cb cb, void *arg)
{
	size_t off = WAL_SEG_HEADER_BYTES, damage_reach = 0; /* as in recover.c */
	for (;;) {
		struct wal_scan_batch b;
		struct wal_scan_bad bd;
		enum wal_scan_outcome o = wal_scan_batch(map, size, off, nonce, &b, &bd);
		int rc;
		if (o == WAL_SCAN_OK) {
			if (sq->have && b.seq != sq->last + 1) {
				rc = bad(cb, arg, name, off, 0, "batch sequence gap", false);
				if (rc)
					return rc;
			}
			rc = report_batch(name, map, &b, cb, arg);
			if (rc)
				return rc;
			sq->have = true;
			sq->last = b.seq;
			off += b.bytes;
			continue;
		}
		size_t next = wal_scan_find(map, size, off + WAL_REC_ALIGN,
					    sq->have ? sq->last + 1 : 0, nonce);
		size_t lo, hi;
		if (o == WAL_SCAN_END && next == SIZE_MAX) {
			/* as in recover.c: in the newest segment, non-zero bytes after the end
			 * of the data are a torn tail that the next open cuts off */
			if (is_last && off >= damage_reach &&
			    wal_scan_nonzero(map, size, off, &lo, &hi))
				return bad(cb, arg, name, lo, 0, "bytes after the end of the data",
					   true);
			return 0;
		}
		bool torn = o == WAL_SCAN_BAD && next == SIZE_MAX && is_last && off >= damage_reach;
		size_t reach =
			wal_scan_reach(map, size, off, next == SIZE_MAX ? size : next, nonce);
		if (reach > damage_reach)
			damage_reach = reach;
		const char *problem =
			o == WAL_SCAN_END ? "zeroed region followed by valid batches" : bd.problem;
		rc = bad(cb, arg, name, bd.off, bd.group_known ? bd.group : 0, problem, torn);
		if (rc || next == SIZE_MAX)
			return rc;
		off = next;
		sq->have = false;
	}
}

int wal_walk(const char *dir, wal_walk_cb cb, void *arg)
{
	uint64_t *seqs;
	size_t n;
	int rc = wal_seg_list(dir, &seqs, &n);
	if (rc)
		return rc;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		free(seqs);
		return WAL_EIO;
	}
	struct seqs sq = {0};
	for (size_t i = 0; i < n && rc == 0; i++) {
		char name[WAL_SEG_NAME_LEN + 1];
		snprintf(name, sizeof name, WAL_SEG_NAME_FMT, seqs[i]);
		bool is_last = i + 1 == n;
		int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) != 0) {
			if (fd >= 0)
				close(fd);
			rc = WAL_EIO;
			break;
		}
		size_t size = (size_t)st.st_size;
		uint8_t *map = NULL;
		if (size > 0) {
			void *m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
			if (m == MAP_FAILED) {
				close(fd);
				rc = WAL_EIO;
				break;
			}
			map = m;
		}
		close(fd);
		uint32_t nonce = 0;
		if (!wal_seg_header_valid(map, size, seqs[i], &nonce)) {
			bool data = map && wal_scan_has_batch(map, size);
			rc = bad(cb, arg, name, 0, 0,
				 data ? "bad segment header" : "unfinished segment creation",
				 is_last && !data);
		} else {
			rc = walk_segment(name, map, size, nonce, is_last, &sq, cb, arg);
		}
		if (map)
			munmap(map, size);
	}
	close(dfd);
	free(seqs);
	return rc;
}
