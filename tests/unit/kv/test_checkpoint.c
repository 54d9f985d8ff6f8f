/* test_checkpoint.c — kv/checkpoint.c: the pinned durable checkpoint and the rollback to it
 * after a machine crash. The crash is emulated on a copy of the data file: every page that
 * changed after the checkpoint (what the disk may or may not have written, in any order) and
 * both meta slots are overwritten with garbage; the rollback must give back exactly the
 * checkpoint's state (digests and applied indexes). A damaged kv.checkpoint is refused and
 * changes nothing, so that the caller takes the fallback (set aside, rebuild from peers).
 * The split checkpoint (begin, a sync on another thread while this one commits, end) must give
 * the same: the state at its begin.
 */
#include <check.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kv/kv.h"
#include "kv_fixture.h"
#include "wal/crc32c.h"

#define OTHER_BOOT "open 00000000-0000-0000-0000-000000000000\n"
#define KEYS       1200
#define ROUNDS     4

/* ---------------------------------------------------------------- fixture */

static uint8_t *read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	struct stat sb;
	ck_assert_int_eq(fstat(fd, &sb), 0);
	uint8_t *buf = malloc((size_t)sb.st_size + 1);
	ck_assert_ptr_nonnull(buf);
	size_t got = 0;
	while (got < (size_t)sb.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)sb.st_size - got);
		ck_assert_int_gt(r, 0);
		got += (size_t)r;
	}
	close(fd);
	*len = got;
	return buf;
}

static void write_file(const char *path, const uint8_t *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ck_assert_int_ge(fd, 0);
	size_t put = 0;
	while (put < len) {
		ssize_t w = write(fd, buf + put, len - put);
		ck_assert_int_gt(w, 0);
		put += (size_t)w;
	}
	close(fd);
}

static void path_in(char *out, size_t n, const char *dir, const char *name)
{
	snprintf(out, n, "%s/%s", dir, name);
}

static void copy_file(const char *from_dir, const char *to_dir, const char *name)
{
	char a[512], b[512];
	path_in(a, sizeof a, from_dir, name);
	path_in(b, sizeof b, to_dir, name);
	size_t len;
	uint8_t *buf = read_file(a, &len);
	write_file(b, buf, len);
	free(buf);
}

static void put_text(const char *dir, const char *name, const char *text)
{
	char p[512];
	path_in(p, sizeof p, dir, name);
	write_file(p, (const uint8_t *)text, strlen(text));
}

static void value_of(char *out, size_t n, int key, int round)
{
	int len = snprintf(out, n, "v%d.%d.", key, round);
	/* 300 bytes, so that the overwrites free and take whole pages */
	for (; len < 300; len++)
		out[len] = (char)('a' + (key + round + len) % 26);
	out[len] = 0;
}

/* Writes every key of groups 1 and 2 with the values of `round`, one entry each. */
static void write_round(struct fx *f, int round)
{
	char k[32], v[512];
	for (int i = 0; i < KEYS; i++) {
		snprintf(k, sizeof k, "key%05d", i);
		value_of(v, sizeof v, i, round);
		ck_assert_int_eq(fx_put(f, 1 + (uint32_t)(i % 2), k, v), KV_OK);
	}
	for (int i = round; i < KEYS; i += 7) { /* and some deletes */
		snprintf(k, sizeof k, "key%05d", i);
		ck_assert_int_eq(fx_del(f, 1 + (uint32_t)(i % 2), k), KV_OK);
	}
}

static uint64_t lcg(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return *s >> 33;
}

struct crash {
	char dir[256];
	size_t pages_garbled, pages_kept;
};

/* Makes a crashed copy of f's environment in c->dir: the data file as it is now, except that
 * every page that differs from `at_ckpt` (the file right after the checkpoint) and both meta
 * slots hold garbage; kv.checkpoint as it is; kv.state saying the machine went down. */
static void crash_copy(struct fx *f, const uint8_t *at_ckpt, size_t ckpt_len, struct crash *c)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(c->dir, sizeof c->dir, "%s/kvcrash.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(c->dir));
	char p[512];
	path_in(p, sizeof p, f->dir, "data.mdb");
	size_t len;
	uint8_t *now = read_file(p, &len);
	size_t ps = (size_t)sysconf(_SC_PAGESIZE);
	uint64_t seed = 42;
	c->pages_garbled = c->pages_kept = 0;
	for (size_t off = 0; off + ps <= len; off += ps) {
		bool meta = off < 2 * ps;
		bool changed = off + ps > ckpt_len || memcmp(now + off, at_ckpt + off, ps) != 0;
		if (!meta && !changed) {
			c->pages_kept++;
			continue;
		}
		for (size_t i = 0; i < ps; i += 4) {
			uint32_t r = (uint32_t)lcg(&seed);
			memcpy(now + off + i, &r, 4);
		}
		c->pages_garbled++;
	}
	path_in(p, sizeof p, c->dir, "data.mdb");
	write_file(p, now, len);
	free(now);
	copy_file(f->dir, c->dir, "kv.checkpoint");
	put_text(c->dir, "kv.state", OTHER_BOOT);
}

struct state {
	raft_index applied[2];
	uint8_t digest[2][KV_DIGEST_BYTES];
};

static void state_of(struct kv *kv, struct state *s)
{
	for (uint32_t g = 1; g <= 2; g++) {
		raft_index at;
		ck_assert_int_eq(kv_digest(kv, g, s->digest[g - 1], &at), KV_OK);
		struct kv_group_meta m;
		ck_assert_int_eq(kv_meta(kv, g, &m), KV_OK);
		ck_assert_uint_eq(m.applied_index, at);
		s->applied[g - 1] = at;
	}
}

/* A fresh environment (writemap as given) holding round 0 of the keys. */
static void open_round0(struct fx *f, struct kv_options *o, bool writemap)
{
	kv_options_default(o);
	o->writemap = writemap;
	fx_open_opts(f, o);
	write_round(f, 0);
}

/* The data file as it is now (malloc'd). */
static uint8_t *data_image(struct fx *f, size_t *len)
{
	char p[512];
	path_in(p, sizeof p, f->dir, "data.mdb");
	return read_file(p, len);
}

/* ---------------------------------------------------------------- tests */

/* The offsets kv/checkpoint.c reads LMDB 0.9's meta page with, checked against LMDB's own
 * report of a raw environment: page number, P_META, magic, version, page size, last page and
 * txnid, in the slot (txnid % 2) the last commit wrote. */
START_TEST(test_meta_layout)
{
	const char *tmp = getenv("TMPDIR");
	char dir[256], p[512];
	snprintf(dir, sizeof dir, "%s/kvmeta.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	MDB_env *env;
	ck_assert_int_eq(mdb_env_create(&env), 0);
	ck_assert_int_eq(mdb_env_open(env, dir, MDB_NOSYNC, 0644), 0);
	for (int t = 0; t < 3 + _i; t++) {
		MDB_txn *txn;
		MDB_dbi dbi;
		ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
		ck_assert_int_eq(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
		char kb[16];
		snprintf(kb, sizeof kb, "k%d", t);
		MDB_val k = {strlen(kb), kb}, v = {2, "vv"};
		ck_assert_int_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
		ck_assert_int_eq(mdb_txn_commit(txn), 0);
	}
	ck_assert_int_eq(mdb_env_sync(env, 1), 0);
	MDB_envinfo info;
	MDB_stat st;
	ck_assert_int_eq(mdb_env_info(env, &info), 0);
	ck_assert_int_eq(mdb_env_stat(env, &st), 0);
	path_in(p, sizeof p, dir, "data.mdb");
	size_t len;
	uint8_t *file = read_file(p, &len);
	ck_assert_uint_ge(len, 2 * (size_t)st.ms_psize);
	for (uint64_t slot = 0; slot < 2; slot++) {
		const uint8_t *pg = file + slot * st.ms_psize;
		uint64_t pgno, last, txnid;
		uint32_t magic, version, psize;
		uint16_t flags;
		memcpy(&pgno, pg + 0, 8);
		memcpy(&flags, pg + 10, 2);
		memcpy(&magic, pg + 16, 4);
		memcpy(&version, pg + 20, 4);
		memcpy(&psize, pg + 40, 4);
		memcpy(&last, pg + 136, 8);
		memcpy(&txnid, pg + 144, 8);
		ck_assert_uint_eq(pgno, slot);
		ck_assert_uint_eq(flags & 0x08, 0x08);
		ck_assert_uint_eq(magic, 0xBEEFC0DEu);
		ck_assert_uint_eq(version, 1);
		ck_assert_uint_eq(psize, st.ms_psize);
		if (slot == (info.me_last_txnid & 1)) {
			ck_assert_uint_eq(txnid, info.me_last_txnid);
			ck_assert_uint_eq(last, info.me_last_pgno);
		} else {
			ck_assert_uint_eq(txnid, info.me_last_txnid - 1);
		}
	}
	free(file);
	mdb_env_close(env);
	fx_rmdir(dir);
}
END_TEST

/* Write, checkpoint, write much more (freed pages are reused), crash: the rollback gives back
 * exactly the checkpoint's state, and the environment goes on from there. */
START_TEST(test_rollback_after_reuse)
{
	struct kv_options o;
	struct fx f;
	open_round0(&f, &o, _i == 0);
	raft_index durable[2];
	ck_assert_int_eq(kv_checkpoint(f.kv, durable, 2), KV_OK);
	struct state at;
	state_of(f.kv, &at);
	ck_assert_uint_eq(durable[0], at.applied[0]);
	ck_assert_uint_eq(durable[1], at.applied[1]);
	size_t ckpt_len;
	uint8_t *at_ckpt = data_image(&f, &ckpt_len);
	for (int r = 1; r <= ROUNDS; r++)
		write_round(&f, r);
	struct state later;
	state_of(f.kv, &later);
	ck_assert(memcmp(later.digest, at.digest, sizeof at.digest) != 0);

	struct crash c;
	crash_copy(&f, at_ckpt, ckpt_len, &c);
	free(at_ckpt);
	/* the writes after the checkpoint changed pages: the crash garbles them */
	ck_assert_uint_gt(c.pages_garbled, 20);
	ck_assert_uint_gt(c.pages_kept, 20);

	struct kv *kv = NULL;
	ck_assert_int_eq(kv_open(c.dir, &o, &kv), KV_EUNSAFE);
	struct kv_rollback_info info;
	char why[256];
	int rc = kv_rollback(c.dir, &info, why, sizeof why);
	ck_assert_msg(rc == KV_OK, "rollback refused (%d): %s", rc, why);
	ck_assert_uint_eq(info.n_groups, 2);
	ck_assert_uint_eq(info.applied[0], at.applied[0]);
	ck_assert_uint_eq(info.applied[1], at.applied[1]);
	ck_assert_int_eq(kv_open(c.dir, &o, &kv), KV_OK);
	struct state back;
	state_of(kv, &back);
	ck_assert_uint_eq(back.applied[0], at.applied[0]);
	ck_assert_uint_eq(back.applied[1], at.applied[1]);
	ck_assert_msg(memcmp(back.digest, at.digest, sizeof at.digest) == 0,
		      "the rolled back state differs from the checkpoint's");
	/* and it goes on: the next entries apply over it (the WAL replay) */
	struct fx g = f;
	g.kv = kv;
	g.next[1] = at.applied[0] + 1;
	ck_assert_int_eq(fx_put(&g, 1, "after", "rollback"), KV_OK);
	fx_expect(&g, 1, "after", "rollback");
	fx_expect(&g, 1, "key00000", NULL); /* round 0 deleted it */
	kv_close(kv);
	fx_rmdir(c.dir);
	fx_close(&f);
}
END_TEST

static void *sync_thread(void *arg)
{
	kv_checkpoint_sync(arg);
	return NULL;
}

/* The checkpoint as kvd takes it: begun, then synced on another thread while this one goes
 * on committing (rounds of overwrites: the freed pages are reused, and the meta slot the
 * begin saw is written twice more), then ended. The end reports the applied indexes of the
 * begin, and after a crash that garbles every page changed since the begin the rollback
 * gives back exactly the state of the begin. */
START_TEST(test_split_checkpoint)
{
	struct kv_options o;
	struct fx f;
	open_round0(&f, &o, _i == 0);
	struct state at;
	state_of(f.kv, &at);
	struct kv_ckpt *c;
	ck_assert_int_eq(kv_checkpoint_begin(f.kv, 2, &c), KV_OK);
	size_t ckpt_len;
	uint8_t *at_begin = data_image(&f, &ckpt_len);
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, sync_thread, c), 0);
	for (int r = 1; r <= ROUNDS; r++)
		write_round(&f, r);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	write_round(&f, ROUNDS + 1); /* and after the sync, before the end */
	raft_index durable[2] = {0, 0};
	ck_assert_int_eq(kv_checkpoint_end(f.kv, c, durable), KV_OK);
	ck_assert_uint_eq(durable[0], at.applied[0]);
	ck_assert_uint_eq(durable[1], at.applied[1]);
	write_round(&f, ROUNDS + 2); /* T is pinned from the begin: these may not reuse its pages */
	struct state later;
	state_of(f.kv, &later);
	ck_assert_uint_gt(later.applied[0], at.applied[0]);

	struct crash cr;
	crash_copy(&f, at_begin, ckpt_len, &cr);
	free(at_begin);
	ck_assert_uint_gt(cr.pages_garbled, 20);
	struct kv *kv = NULL;
	struct kv_rollback_info info;
	char why[256];
	int rc = kv_rollback(cr.dir, &info, why, sizeof why);
	ck_assert_msg(rc == KV_OK, "rollback refused (%d): %s", rc, why);
	ck_assert_uint_eq(info.applied[0], at.applied[0]);
	ck_assert_uint_eq(info.applied[1], at.applied[1]);
	ck_assert_int_eq(kv_open(cr.dir, &o, &kv), KV_OK);
	struct state back;
	state_of(kv, &back);
	ck_assert_msg(memcmp(back.digest, at.digest, sizeof at.digest) == 0,
		      "the rolled back state differs from the begin's");
	kv_close(kv);
	fx_rmdir(cr.dir);

	/* an aborted checkpoint (the node closed first) leaves the environment closable */
	ck_assert_int_eq(kv_checkpoint_begin(f.kv, 2, &c), KV_OK);
	kv_checkpoint_abort(f.kv, c);
	ck_assert_int_eq(kv_checkpoint(f.kv, durable, 2), KV_OK);
	ck_assert_uint_eq(durable[0], later.applied[0]);
	fx_close(&f);
}
END_TEST

/* Rewrites kv.checkpoint's page size field (offset 12) and its CRC. */
static void set_page_size(const char *dir, uint32_t ps)
{
	char p[512];
	path_in(p, sizeof p, dir, "kv.checkpoint");
	size_t len;
	uint8_t *b = read_file(p, &len);
	memcpy(b + 12, &ps, 4);
	uint32_t crc = wal_crc32c(0, b, len - 4);
	memcpy(b + len - 4, &crc, 4);
	write_file(p, b, len);
	free(b);
}

/* A damaged or missing kv.checkpoint, or a data file that cannot be the one it was taken of,
 * is refused, and nothing is written: the meta slots and kv.state stay as they were, and
 * kv_open still refuses (the caller sets the environment aside). */
START_TEST(test_damaged_checkpoint_refused)
{
	struct kv_options o;
	kv_options_default(&o);
	o.writemap = false; /* a short file: the cases copy it */
	struct fx f;
	fx_open_opts(&f, &o);
	ck_assert_int_eq(fx_put(&f, 1, "k", "v"), KV_OK);
	raft_index durable[1];
	ck_assert_int_eq(kv_checkpoint(f.kv, durable, 1), KV_OK);
	ck_assert_int_eq(fx_put(&f, 1, "k", "w"), KV_OK);
	char good[512], p[512];
	path_in(good, sizeof good, f.dir, "kv.checkpoint");
	size_t good_len;
	uint8_t *good_buf = read_file(good, &good_len);
	kv_close(f.kv);
	f.kv = NULL;
	path_in(p, sizeof p, f.dir, "data.mdb");
	size_t data_len;
	uint8_t *data = read_file(p, &data_len);
	size_t ps = (size_t)sysconf(_SC_PAGESIZE);

	enum { MISSING, BAD_CRC, TRUNCATED, LONGER, PAGE_SIZE, SHORT_DATA, CASES };
	const int want[CASES] = {KV_NOT_FOUND, KV_ECORRUPT, KV_ECORRUPT,
				 KV_ECORRUPT,  KV_ECORRUPT, KV_ECORRUPT};
	for (int k = 0; k < CASES; k++) {
		write_file(good, good_buf, good_len);
		write_file(p, data, data_len);
		put_text(f.dir, "kv.state", OTHER_BOOT);
		if (k == MISSING) {
			ck_assert_int_eq(unlink(good), 0);
		} else if (k == BAD_CRC) {
			uint8_t *b = malloc(good_len);
			memcpy(b, good_buf, good_len);
			b[good_len / 2] ^= 0x10;
			write_file(good, b, good_len);
			free(b);
		} else if (k == TRUNCATED) {
			write_file(good, good_buf, good_len - 100);
		} else if (k == LONGER) {
			uint8_t *b = calloc(1, good_len + 8);
			memcpy(b, good_buf, good_len);
			write_file(good, b, good_len + 8);
			free(b);
		} else if (k == PAGE_SIZE) {
			set_page_size(f.dir, (uint32_t)ps * 2);
		} else if (k == SHORT_DATA) {
			write_file(p, data, 3 * ps); /* the checkpoint's pages reach further */
		}
		size_t before_len;
		uint8_t *before = read_file(p, &before_len);
		struct kv_rollback_info info;
		char why[256];
		int rc = kv_rollback(f.dir, &info, why, sizeof why);
		ck_assert_msg(rc == want[k], "case %d: %d (%s)", k, rc, why);
		size_t after_len;
		uint8_t *after = read_file(p, &after_len);
		ck_assert_uint_eq(after_len, before_len);
		ck_assert_msg(memcmp(after, before, before_len) == 0, "case %d wrote", k);
		free(before);
		free(after);
		ck_assert_int_eq(kv_open(f.dir, &o, &f.kv), KV_EUNSAFE);
	}
	/* the good one, for contrast */
	write_file(good, good_buf, good_len);
	write_file(p, data, data_len);
	struct kv_rollback_info info;
	char why[256];
	ck_assert_int_eq(kv_rollback(f.dir, &info, why, sizeof why), KV_OK);
	ck_assert_int_eq(kv_open(f.dir, &o, &f.kv), KV_OK);
	fx_expect(&f, 1, "k", "v");
	free(good_buf);
	free(data);
	fx_close(&f);
}
END_TEST

Suite *checkpoint_suite(void)
{
	Suite *s = suite_create("checkpoint");
	TCase *tc = tcase_create("rollback");
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_meta_layout, 0, 2);
	tcase_add_loop_test(tc, test_rollback_after_reuse, 0, 2); /* writemap on, off */
	tcase_add_test(tc, test_damaged_checkpoint_refused);
	tcase_add_loop_test(tc, test_split_checkpoint, 0, 2); /* writemap on, off */
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(checkpoint_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
