/* fuzz_snapshot.c — libFuzzer harness for the snapshot restore stream (kv/restore.c), what a
 * follower does with the InstallSnapshot chunks a leader sends (node/snapshot.c
 * node_snap_receive: kv_restore_begin at offset 0, kv_restore_write per chunk,
 * kv_restore_finish on the last), into a real LMDB environment in a scratch directory whose
 * group 1 holds a few keys.
 *
 * Input: byte 0 chooses the chunk sizes, whether the harness first puts the right XXH3-64 in
 * the trailer (so that mutations reach the structure checks behind the stream checksum) and
 * whether the stream is aborted instead of finished; the rest is the stream.
 * Checked beyond "no crash": a refused stream (or an aborted one) leaves the group exactly as
 * it was (same digest, same applied index) and no staging file behind; an accepted one
 * installs the applied index its header names, and the group then snapshots into a stream
 * that restores to the same digest (restore and snapshot agree).
 */
#include <dirent.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "kv/kv.h"
#include "kv/snapshot.h"

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "fuzz_snapshot: check failed: %s (line %d)\n", #c,         \
				__LINE__);                                                         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static char dir[64];
static struct kv *kv;

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st, (void)flag, (void)f;
	return remove(path);
}

static void cleanup(void)
{
	kv_close(kv);
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static size_t files_in_dir(void)
{
	DIR *d = opendir(dir);
	CHECK(d != NULL);
	size_t n = 0;
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

static void put(raft_index index, const char *key, const char *value)
{
	struct kv_cmd c;
	memset(&c, 0, sizeof c);
	c.op = KV_OP_PUT;
	c.key = key;
	c.key_len = strlen(key);
	c.value = value;
	c.value_len = strlen(value);
	struct raft_buf b;
	CHECK(kv_cmd_encode(kv, &c, &b) == KV_OK);
	struct raft_entry e = {.term = 1, .index = index, .type = RAFT_ENTRY_NORMAL, .data = b};
	CHECK(kv_apply(kv, 1, &e, 1, NULL, NULL, NULL) == KV_OK);
	free(b.base);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	snprintf(dir, sizeof dir, "/tmp/ringraft-fuzz-snap-XXXXXX");
	CHECK(mkdtemp(dir) != NULL);
	struct kv_options o;
	kv_options_default(&o);
	o.writemap = false;
	o.map_bytes = 4u << 20;
	o.map_bytes_max = 64u << 20;
	o.groups_max = 2;
	CHECK(kv_open(dir, &o, &kv) == KV_OK);
	atexit(cleanup);
	put(1, "alpha", "1");
	put(2, "beta", "two");
	put(3, "gamma", "three");
	return 0;
}

struct state {
	uint8_t digest[KV_DIGEST_BYTES];
	raft_index applied;
};

static void state_of(struct state *s)
{
	CHECK(kv_digest(kv, 1, s->digest, &s->applied) == KV_OK);
}

/* Streams data into group 1 in pieces; returns kv_restore_finish's code (or 1: aborted). */
static int restore(const uint8_t *data, size_t size, uint8_t ctl)
{
	struct kv_restore *r;
	CHECK(kv_restore_begin(kv, 1, &r) == KV_OK);
	uint32_t rnd = ctl * 2654435761u + 3;
	size_t off = 0;
	while (off < size) {
		rnd = rnd * 1103515245u + 12345u;
		size_t piece = (ctl & 4) ? size - off : 1 + (rnd >> 16) % 509;
		if (piece > size - off)
			piece = size - off;
		CHECK(kv_restore_write(r, data + off, piece) == KV_OK);
		off += piece;
	}
	if (ctl & 2) {
		kv_restore_abort(r);
		return 1;
	}
	return kv_restore_finish(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > (64u << 10))
		return 0;
	/* As kvd does every --checkpoint-ms: a checkpoint moves LMDB's pinned snapshot on
	 * (kv/checkpoint.c), so pages the restores freed are used again; without it the first
	 * pin (kv_open's) holds every one and the 64 MiB map fills after some 700,000 inputs. */
	static unsigned inputs;
	if (++inputs % 256 == 0) {
		raft_index upto[2];
		CHECK(kv_checkpoint(kv, upto, 2) == KV_OK);
	}
	uint8_t ctl = data[0];
	data++;
	size--;
	uint8_t *buf = malloc(size ? size : 1);
	CHECK(buf != NULL);
	memcpy(buf, data, size);
	if ((ctl & 1) && size >= SNAP_HEADER + SNAP_TRAILER) {
		uint64_t h = XXH3_64bits(buf, size - 8);
		for (int i = 0; i < 8; i++)
			buf[size - 8 + i] = (uint8_t)(h >> (8 * i));
	}
	struct state before, after;
	state_of(&before);
	size_t files = files_in_dir();
	int rc = restore(buf, size, ctl);
	state_of(&after);
	CHECK(files_in_dir() == files); /* the staging file is gone in every case */
	if (rc != KV_OK) {
		CHECK(rc == 1 || rc == KV_ECORRUPT);
		CHECK(memcmp(before.digest, after.digest, KV_DIGEST_BYTES) == 0);
		CHECK(before.applied == after.applied);
		free(buf);
		return 0;
	}
	/* accepted: the header's applied index is installed */
	uint64_t hdr_applied = 0;
	for (int i = 7; i >= 0; i--)
		hdr_applied = (hdr_applied << 8) | buf[16 + i];
	CHECK(after.applied == hdr_applied);
	free(buf);

	/* what restore installed, snapshot streams out and restore takes back unchanged */
	struct kv_snapshot *s;
	CHECK(kv_snapshot_begin(kv, 1, &s) == KV_OK);
	size_t cap = 1u << 16, len = 0;
	uint8_t *out = malloc(cap);
	CHECK(out != NULL);
	bool done = false;
	while (!done) {
		if (cap - len < 4096) {
			cap *= 2;
			out = realloc(out, cap);
			CHECK(out != NULL);
		}
		size_t got;
		CHECK(kv_snapshot_read(s, out + len, cap - len, &got, &done) == KV_OK);
		len += got;
	}
	kv_snapshot_end(s);
	CHECK(restore(out, len, 4) == KV_OK);
	free(out);
	struct state again;
	state_of(&again);
	CHECK(memcmp(again.digest, after.digest, KV_DIGEST_BYTES) == 0);
	CHECK(again.applied == after.applied);
	return 0;
}
