/* bench_kv.c — apply throughput of the state machine (not a test: figures for
 * docs/PERFORMANCE.md). Puts of 256-byte values under random 16-byte keys, applied through
 * kv_apply in batches of 1, 64 and 1024 entries (one LMDB write transaction per batch), into
 * a fresh environment in $TMPDIR, without and with client sessions. Commands are encoded
 * before the clock starts; decoding them is part of apply and is timed. Wall time and the
 * process's CPU time are both reported (the second is what a shared machine distorts least).
 *
 *   bench_kv [--puts N] [--value BYTES] [--batch B]... [--writemap | --no-writemap]
 *            [--commit-every K]
 *   (defaults: 200000 puts, 256 bytes, batches 1 64 1024, MDB_WRITEMAP as kv_options_default:
 *   off since a full disk must not raise SIGBUS; --writemap measures what that costs)
 *   --commit-every K: batched applies (kv.h, as the node runs them): every batch is a kv_apply
 *   nested in one open transaction, committed every K batches (the node commits each tick)
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kv/kv.h"

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double clock_s(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double now_s(void)
{
	return clock_s(CLOCK_MONOTONIC);
}

/* CPU time of this process (user + system): on a shared machine, wall time also counts the
 * time other processes held the CPU; both are printed. */
static double cpu_s(void)
{
	return clock_s(CLOCK_PROCESS_CPUTIME_ID);
}

static void rm_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[512];
	while (d && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
			unlink(path);
		}
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

static int writemap = -1; /* -1: kv_options_default's choice */
static size_t commit_every; /* 0: every kv_apply commits on its own */

static int run(size_t puts, size_t value_bytes, size_t batch, bool sessions)
{
	const char *tmp = getenv("TMPDIR");
	char dir[256];
	snprintf(dir, sizeof dir, "%s/bench_kv.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	struct kv_options o;
	kv_options_default(&o);
	if (writemap >= 0)
		o.writemap = writemap;
	struct kv *kv;
	int err = kv_open(dir, &o, &kv);
	if (err != KV_OK) {
		fprintf(stderr, "kv_open: %s\n", kv_strerror(err));
		return 1;
	}
	struct raft_entry *e = calloc(puts, sizeof *e);
	uint8_t *value = malloc(value_bytes);
	uint64_t seed = 12345;
	for (size_t i = 0; i < value_bytes; i++)
		value[i] = (uint8_t)rnd(&seed);
	for (size_t i = 0; i < puts; i++) {
		uint64_t key[2] = {rnd(&seed), rnd(&seed)};
		struct kv_cmd c = {.op = KV_OP_PUT,
				   .key = key,
				   .key_len = sizeof key,
				   .value = value,
				   .value_len = value_bytes};
		if (sessions) {
			c.client_id = 1 + i % 64; /* 64 clients, each with its own sequence */
			c.seq = 1 + i / 64;
		}
		e[i].index = i + 1;
		e[i].term = 1;
		if (kv_cmd_encode(kv, &c, &e[i].data) != KV_OK)
			return 1;
	}
	kv_apply_batching(kv, commit_every > 0);
	double c0 = cpu_s(), t0 = now_s();
	size_t applies = 0;
	for (size_t i = 0; i < puts; i += batch) {
		size_t n = puts - i < batch ? puts - i : batch;
		if ((err = kv_apply(kv, 1, e + i, n, NULL, NULL, NULL)) != KV_OK) {
			fprintf(stderr, "kv_apply: %s\n", kv_strerror(err));
			return 1;
		}
		if (commit_every > 0 && ++applies % commit_every == 0 &&
		    (err = kv_apply_commit(kv)) != KV_OK) {
			fprintf(stderr, "kv_apply_commit: %s\n", kv_strerror(err));
			return 1;
		}
	}
	if ((err = kv_apply_commit(kv)) != KV_OK) {
		fprintf(stderr, "kv_apply_commit: %s\n", kv_strerror(err));
		return 1;
	}
	double t1 = now_s(), c1 = cpu_s();
	raft_index durable;
	kv_checkpoint(kv, &durable, 1);
	double t2 = now_s();
	printf("batch=%-5zu commit-every=%-4zu sessions=%-3s writemap=%-3s puts=%zu value=%zu  apply "
	       "%.3f s  %9.0f puts/s  cpu %.3f s  %9.0f puts/cpu-s  (checkpoint sync %.3f s)\n",
	       batch, commit_every, sessions ? "yes" : "no", o.writemap ? "yes" : "no", puts,
	       value_bytes,
	       t1 - t0, puts / (t1 - t0), c1 - c0, puts / (c1 - c0), t2 - t1);
	fflush(stdout);
	for (size_t i = 0; i < puts; i++)
		free(e[i].data.base);
	free(e);
	free(value);
	kv_close(kv);
	rm_dir(dir);
	return 0;
}

int main(int argc, char **argv)
{
	size_t puts = 200000, value_bytes = 256, batches[16], nb = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--puts") == 0 && i + 1 < argc)
			puts = strtoull(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--value") == 0 && i + 1 < argc)
			value_bytes = strtoull(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc && nb < 16)
			batches[nb++] = strtoull(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--commit-every") == 0 && i + 1 < argc) {
			char *end;
			commit_every = strtoull(argv[++i], &end, 10);
			if (*argv[i] == '\0' || *end != '\0' || *argv[i] == '-') {
				fprintf(stderr, "%s: --commit-every wants a count (0: no batching)\n",
					argv[0]);
				return 2;
			}
		}
		else if (strcmp(argv[i], "--writemap") == 0)
			writemap = 1;
		else if (strcmp(argv[i], "--no-writemap") == 0)
			writemap = 0;
		else {
			fprintf(stderr,
				"usage: %s [--puts N] [--value BYTES] [--batch B]... "
				"[--writemap | --no-writemap] [--commit-every K]\n",
				argv[0]);
			return 2;
		}
	}
	if (nb == 0) {
		batches[nb++] = 1;
		batches[nb++] = 64;
		batches[nb++] = 1024;
	}
	for (size_t b = 0; b < nb; b++) {
		if (batches[b] == 0 || run(puts, value_bytes, batches[b], false) ||
		    run(puts, value_bytes, batches[b], true))
			return 1;
	}
	return 0;
}
