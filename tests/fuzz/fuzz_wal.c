/* fuzz_wal.c — libFuzzer harness for WAL recovery (wal/recover.c, scan.c, record.c, index.c):
 * the input becomes one or two segment files in an otherwise empty WAL directory, which is
 * then opened (recovered) as kvd opens it at start.
 *
 * Input: byte 0 chooses salvage, a split into two segments, and whether the harness first
 * seals the input (writes the right segment header and, record after record, the lengths'
 * header checks and CRC32Cs: wal_rec_seal), so that mutations reach what lies behind the
 * checksums; byte 1 is the split point; the rest is the segment bytes. A sealed segment keeps
 * the input's format: 1 where its version field says 1, else 2 with the input's nonce field
 * (1 if zero), which the seal also puts into every BATCH record's group field unless bit 3
 * of byte 0 is set (then the input's group fields stay: batches of another segment).
 * Checked beyond "no crash": wal_open returns one of its documented codes and leaks nothing
 * on failure; on success every group's log [first_index, last_index] reads back whole and
 * contiguous, recovery is idempotent (opening the recovered WAL again gives the same group
 * states) and the recovered WAL takes a new batch that a further open finds.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wal/format.h"
#include "wal/wal.h"

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "fuzz_wal: check failed: %s (line %d)\n", #c, __LINE__);   \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#define GROUPS_CHECKED 64

static char dir[64];

static void empty_dir(void)
{
	DIR *d = opendir(dir);
	CHECK(d != NULL);
	struct dirent *e;
	char path[512];
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
}

static void cleanup(void)
{
	empty_dir();
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	snprintf(dir, sizeof dir, "/tmp/ringraft-fuzz-wal-XXXXXX");
	CHECK(mkdtemp(dir) != NULL);
	atexit(cleanup);
	return 0;
}

static void write_segment(uint64_t seq, const uint8_t *p, size_t len)
{
	char path[512];
	snprintf(path, sizeof path, "%s/" WAL_SEG_NAME_FMT, dir, seq);
	int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	CHECK(fd >= 0);
	CHECK(write(fd, p, len) == (ssize_t)len);
	close(fd);
}

/* The segment header and each record's header check and CRC, as the writer makes them. */
static void seal(uint8_t *p, size_t len, uint64_t seq, bool keep_groups)
{
	if (len < WAL_SEG_HEADER_BYTES)
		return;
	uint32_t nonce = 0;
	if (wal_get32(p + 8) != WAL_SEG_VERSION_1) {
		nonce = wal_get32(p + 12);
		nonce = nonce ? nonce : 1;
	}
	wal_seg_header_encode(p, seq, nonce);
	size_t off = WAL_SEG_HEADER_BYTES;
	while (len - off >= WAL_REC_HEADER_BYTES) {
		uint32_t l = wal_get32(p + off);
		if (l > len - off || wal_rec_size(l) > len - off)
			break;
		uint64_t group = wal_get64(p + off + 8);
		if (p[off + 4] == WAL_REC_BATCH && nonce != 0 && !keep_groups)
			group = nonce;
		wal_rec_seal(p + off, p[off + 4], group, l);
		off += wal_rec_size(l);
	}
}

static void options(struct wal_options *o)
{
	wal_options_default(o);
	o->segment_bytes = 64u << 10;
	o->cache_bytes = 64u << 10;
	o->no_sync = true;
	o->no_direct_io = true;
}

static size_t snapshot_groups(struct wal *w, struct wal_group_state *out)
{
	size_t n = wal_group_count(w);
	if (n > GROUPS_CHECKED)
		n = GROUPS_CHECKED;
	for (size_t i = 0; i < n; i++)
		out[i] = *wal_group_at(w, i);
	return n;
}

static void check_logs(struct wal *w)
{
	size_t n = wal_group_count(w);
	for (size_t i = 0; i < n && i < GROUPS_CHECKED; i++) {
		const struct wal_group_state *g = wal_group_at(w, i);
		CHECK(g != NULL);
		if (g->corrupt || g->last_index == 0)
			continue;
		CHECK(g->first_index >= 1 && g->first_index <= g->last_index);
		raft_index next = g->first_index;
		while (next <= g->last_index) {
			struct raft_entry *e;
			size_t k;
			int rc = wal_read_entries(w, g->group, next, g->last_index + 1, 1u << 20,
						  &e, &k);
			CHECK(rc == WAL_OK);
			CHECK(k >= 1);
			for (size_t j = 0; j < k; j++)
				CHECK(e[j].index == next + j);
			next += k;
			wal_entries_free(e, k);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2 || size > (48u << 10))
		return 0;
	uint8_t ctl = data[0];
	size_t split = data[1];
	data += 2;
	size -= 2;
	bool salvage = ctl & 1;
	empty_dir();
	uint8_t *buf = malloc(size ? size : 1);
	CHECK(buf != NULL);
	memcpy(buf, data, size);
	size_t first = size;
	if ((ctl & 2) && size > 64) {
		first = WAL_SEG_HEADER_BYTES + (split * 8) % (size - WAL_SEG_HEADER_BYTES);
		first &= ~(size_t)7;
		if (first < WAL_SEG_HEADER_BYTES)
			first = WAL_SEG_HEADER_BYTES;
	}
	if (ctl & 4) {
		seal(buf, first, 1, ctl & 8);
		if (first < size)
			seal(buf + first, size - first, 2, ctl & 8);
	}
	write_segment(1, buf, first);
	if (first < size)
		write_segment(2, buf + first, size - first);
	free(buf);

	struct wal_options o;
	options(&o);
	struct wal *w = NULL;
	struct wal_corruption corr;
	memset(&corr, 0, sizeof corr);
	int rc = wal_open(dir, &o, salvage, &w, &corr);
	CHECK(rc == WAL_OK || rc == WAL_ECORRUPT || rc == WAL_EIO || rc == WAL_EINVAL ||
	      rc == WAL_ENOMEM);
	if (rc != WAL_OK) {
		CHECK(memchr(corr.reason, '\0', sizeof corr.reason) != NULL);
		return 0;
	}
	check_logs(w);
	static struct wal_group_state before[GROUPS_CHECKED], after[GROUPS_CHECKED];
	size_t nb = snapshot_groups(w, before);
	wal_close(w);

	/* recovery is idempotent */
	w = NULL;
	rc = wal_open(dir, &o, salvage, &w, &corr);
	CHECK(rc == WAL_OK);
	size_t na = snapshot_groups(w, after);
	CHECK(na == nb);
	for (size_t i = 0; i < nb; i++) {
		CHECK(before[i].group == after[i].group);
		CHECK(before[i].first_index == after[i].first_index);
		CHECK(before[i].last_index == after[i].last_index);
		CHECK(before[i].hard_state.term == after[i].hard_state.term);
		CHECK(before[i].hard_state.commit == after[i].hard_state.commit);
		CHECK(before[i].snap_index == after[i].snap_index);
		CHECK(before[i].corrupt == after[i].corrupt);
	}

	/* the recovered WAL takes a new batch, and the next open finds it. The batch starts
	 * the group with a snapshot marker, as node/ starts a group after a salvage: damage
	 * left in a sealed segment is found again at every open, and when its group cannot be
	 * told every group is marked corrupt until a marker heals it. */
	struct wal_batch *b = wal_batch_new();
	CHECK(b != NULL);
	struct raft_hard_state hs = {.term = 77, .vote = 1, .commit = 0};
	CHECK(wal_batch_snapshot(b, 0xf022, 0, 0, NULL) == WAL_OK);
	CHECK(wal_batch_hard_state(b, 0xf022, &hs) == WAL_OK);
	rc = wal_batch_write(w, b);
	wal_batch_free(b);
	CHECK(rc == WAL_OK);
	wal_close(w);
	w = NULL;
	rc = wal_open(dir, &o, salvage, &w, &corr);
	CHECK(rc == WAL_OK);
	const struct wal_group_state *g = wal_group_find(w, 0xf022);
	CHECK(g != NULL && g->has_hard_state && g->hard_state.term == 77);
	check_logs(w);
	wal_close(w);
	return 0;
}
