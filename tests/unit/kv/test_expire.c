/* test_expire.c — expiry in the state machine (kv.h "Expiry"): commands judged at the time they
 * carry, reads at the caller's clock (and never before the group's), SET's expiry options,
 * EXPIRE/PERSIST, the expiry index that kv_expired walks (and kv_expired_committed, from the last
 * commit without making one), REAP that spares a key set again,
 * the group's clock that never goes back, digests and snapshots that carry expiries, and the
 * in-place upgrade of a format 2 environment.
 */
#include <lmdb.h>

#include "kv_fixture.h"
#include "wal/crc32c.h"

/* ------------------------------------------------------------------ fixture */

static int put_at(struct fx *f, const char *k, const char *v, uint64_t now, uint64_t expire_at)
{
	struct kv_cmd c = fx_put_cmd(k, v);
	c.now_ms = now;
	c.expire_at_ms = expire_at;
	struct fx_res r;
	int err = fx_apply_cmd(f, 1, &c, &r);
	return err == KV_OK ? r.res.code : err;
}

static int expire_at(struct fx *f, const char *k, uint64_t now, uint64_t at)
{
	struct kv_cmd c = {.op = KV_OP_EXPIRE,
			   .key = k,
			   .key_len = strlen(k),
			   .now_ms = now,
			   .expire_at_ms = at};
	struct fx_res r;
	int err = fx_apply_cmd(f, 1, &c, &r);
	return err == KV_OK ? r.res.code : err;
}

/* The key's state read at `now`: KV_OK with *e its expiry, or KV_NOT_FOUND. */
static int ttl_of(struct fx *f, const char *k, uint64_t now, uint64_t *e)
{
	*e = 12345;
	return kv_get(f->kv, 1, k, strlen(k), now, NULL, NULL, e);
}

static void expect_at(struct fx *f, const char *k, uint64_t now, const char *want)
{
	void *v = NULL;
	size_t n = 0;
	int err = kv_get(f->kv, 1, k, strlen(k), now, &v, &n, NULL);
	if (want == NULL) {
		ck_assert_int_eq(err, KV_NOT_FOUND);
		return;
	}
	ck_assert_int_eq(err, KV_OK);
	ck_assert_uint_eq(n, strlen(want));
	ck_assert(memcmp(v, want, n) == 0);
	free(v);
}

struct reaped {
	int n;
	char keys[16][16];
	uint64_t at[16];
};

static void expired_cb(const void *k, size_t kl, uint64_t at, void *arg)
{
	struct reaped *r = arg;
	ck_assert_int_lt(r->n, 16);
	ck_assert_uint_lt(kl, sizeof r->keys[0]);
	memcpy(r->keys[r->n], k, kl);
	r->keys[r->n][kl] = 0;
	r->at[r->n++] = at;
}

/* Applies a REAP of the keys kv_expired found at `now`; returns the count deleted. */
static long reap(struct fx *f, uint64_t now, struct reaped *r)
{
	memset(r, 0, sizeof *r);
	uint32_t found;
	ck_assert_int_eq(kv_expired(f->kv, 1, now, 16, expired_cb, r, &found), KV_OK);
	ck_assert_int_eq((int)found, r->n);
	if (r->n == 0)
		return 0;
	struct kv_item items[16];
	uint8_t at[16][8];
	for (int i = 0; i < r->n; i++) {
		for (int b = 0; b < 8; b++)
			at[i][b] = (uint8_t)(r->at[i] >> (8 * b));
		items[i] = (struct kv_item){r->keys[i], strlen(r->keys[i]), at[i], 8};
	}
	struct kv_cmd c = {
		.op = KV_OP_REAP, .items = items, .n_items = (size_t)r->n, .now_ms = now};
	struct fx_res res;
	ck_assert_int_eq(fx_apply_cmd(f, 1, &c, &res), KV_OK);
	ck_assert_int_eq(res.res.code, KV_OK);
	res.value[res.res.value_len] = 0;
	return strtol(res.value, NULL, 10);
}

static uint64_t expires_of(struct fx *f)
{
	struct kv_group_meta m;
	ck_assert_int_eq(kv_meta(f->kv, 1, &m), KV_OK);
	return m.expires;
}

/* ------------------------------------------------------------------ tests */

START_TEST(test_reads_hide_expired)
{
	struct fx f;
	fx_open(&f);
	ck_assert_int_eq(put_at(&f, "k", "v", 1000, 2000), KV_OK);
	ck_assert_int_eq(put_at(&f, "forever", "v", 1000, 0), KV_OK);
	expect_at(&f, "k", 1999, "v");
	expect_at(&f, "k", 2000, NULL); /* expiry <= now: gone */
	expect_at(&f, "forever", 99999, "v");
	uint64_t e;
	ck_assert_int_eq(ttl_of(&f, "k", 1500, &e), KV_OK);
	ck_assert_uint_eq(e, 2000);
	ck_assert_int_eq(ttl_of(&f, "forever", 1500, &e), KV_OK);
	ck_assert_uint_eq(e, 0);
	ck_assert_int_eq(ttl_of(&f, "k", 2500, &e), KV_NOT_FOUND);
	fx_close(&f);
}
END_TEST

struct keys {
	int n;
	char k[8][8];
};

static int keys_cb(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	(void)v;
	(void)vl;
	struct keys *s = arg;
	ck_assert_int_lt(s->n, 8);
	memcpy(s->k[s->n], k, kl);
	s->k[s->n++][kl] = 0;
	return 0;
}

START_TEST(test_scan_skips_expired)
{
	struct fx f;
	fx_open(&f);
	ck_assert_int_eq(put_at(&f, "a", "1", 1000, 0), KV_OK);
	ck_assert_int_eq(put_at(&f, "b", "2", 1000, 1500), KV_OK);
	ck_assert_int_eq(put_at(&f, "c", "3", 1000, 5000), KV_OK);
	struct keys s = {0};
	void *next;
	size_t nl;
	ck_assert_int_eq(kv_scan(f.kv, 1, 1200, NULL, 0, NULL, 0, 0, keys_cb, &s, &next, &nl),
			 KV_OK);
	ck_assert_int_eq(s.n, 3);
	memset(&s, 0, sizeof s);
	ck_assert_int_eq(kv_scan(f.kv, 1, 1500, NULL, 0, NULL, 0, 0, keys_cb, &s, &next, &nl),
			 KV_OK);
	ck_assert_int_eq(s.n, 2);
	ck_assert_str_eq(s.k[0], "a");
	ck_assert_str_eq(s.k[1], "c");
	ck_assert_ptr_null(next);
	/* An expired key counts toward the limit: a page of 2 stops before "c". */
	memset(&s, 0, sizeof s);
	ck_assert_int_eq(kv_scan(f.kv, 1, 1500, NULL, 0, NULL, 0, 2, keys_cb, &s, &next, &nl),
			 KV_OK);
	ck_assert_int_eq(s.n, 1);
	ck_assert_ptr_nonnull(next);
	ck_assert_uint_eq(nl, 1);
	ck_assert(memcmp(next, "c", 1) == 0);
	free(next);
	fx_close(&f);
}
END_TEST

START_TEST(test_commands_judge_at_their_time)
{
	struct fx f;
	fx_open(&f);
	ck_assert_int_eq(put_at(&f, "k", "5", 1000, 2000), KV_OK);
	/* SET NX (CAS expect_absent) at 1500 fails, at 2000 succeeds: the key expired. */
	struct kv_cmd nx = {.op = KV_OP_CAS,
			    .key = "k",
			    .key_len = 1,
			    .value = "new",
			    .value_len = 3,
			    .expect_absent = true,
			    .now_ms = 1500};
	struct fx_res r;
	ck_assert_int_eq(fx_apply_cmd(&f, 1, &nx, &r), KV_OK);
	ck_assert_int_eq(r.res.code, KV_CAS_MISMATCH);
	ck_assert(r.res.found);
	/* INCR keeps the expiry of a live key */
	struct kv_cmd inc = {.op = KV_OP_INCRBY, .key = "k", .key_len = 1, .now_ms = 1600};
	uint8_t one[8] = {1};
	inc.value = one;
	inc.value_len = 8;
	ck_assert_int_eq(fx_apply_cmd(&f, 1, &inc, &r), KV_OK);
	ck_assert_int_eq(r.res.code, KV_OK);
	ck_assert(memcmp(r.value, "6", 1) == 0);
	uint64_t e;
	ck_assert_int_eq(ttl_of(&f, "k", 1600, &e), KV_OK);
	ck_assert_uint_eq(e, 2000);
	/* ... and starts from 0 with no expiry on an expired one */
	inc.now_ms = 2000;
	ck_assert_int_eq(fx_apply_cmd(&f, 1, &inc, &r), KV_OK);
	ck_assert(r.res.value_len == 1 && memcmp(r.value, "1", 1) == 0);
	ck_assert_int_eq(ttl_of(&f, "k", 3000, &e), KV_OK);
	ck_assert_uint_eq(e, 0);
	ck_assert_uint_eq(expires_of(&f), 0);
	/* An expired key is absent for DEL (count 0), SET XX, GETDEL and SET GET. */
	ck_assert_int_eq(put_at(&f, "x", "old", 3000, 3500), KV_OK);
	struct kv_cmd xx = fx_put_cmd("x", "xx");
	xx.if_present = true;
	xx.return_old = true;
	xx.now_ms = 3500;
	ck_assert_int_eq(fx_apply_cmd(&f, 1, &xx, &r), KV_OK);
	ck_assert_int_eq(r.res.code, KV_NOT_FOUND);
	ck_assert(!r.res.found);
	struct kv_item it = {"x", 1, NULL, 0};
	struct kv_cmd del = {.op = KV_OP_MDEL, .items = &it, .n_items = 1, .now_ms = 3600};
	ck_assert_int_eq(fx_apply_cmd(&f, 1, &del, &r), KV_OK);
	ck_assert(r.res.value_len == 1 && r.value[0] == '0');
	ck_assert_uint_eq(expires_of(&f), 0); /* removed anyway: nothing left to reap */
	fx_close(&f);
}
END_TEST

START_TEST(test_set_options_and_expire)
{
	struct fx f;
	fx_open(&f);
	ck_assert_int_eq(put_at(&f, "k", "v", 1000, 5000), KV_OK);
	/* A plain SET clears the expiry; KEEPTTL keeps it. */
	struct kv_cmd keep = fx_put_cmd("k", "v2");
	keep.keep_ttl = true;
	keep.now_ms = 1100;
	ck_assert_int_eq(fx_apply_cmd(&f, 1, &keep, NULL), KV_OK);
	uint64_t e;
	ck_assert_int_eq(ttl_of(&f, "k", 1100, &e), KV_OK);
	ck_assert_uint_eq(e, 5000);
	expect_at(&f, "k", 1100, "v2");
	ck_assert_int_eq(put_at(&f, "k", "v3", 1200, 0), KV_OK);
	ck_assert_int_eq(ttl_of(&f, "k", 1200, &e), KV_OK);
	ck_assert_uint_eq(e, 0);
	ck_assert_uint_eq(expires_of(&f), 0);
	/* EXPIRE sets, PERSIST removes, both on live keys only. */
	ck_assert_int_eq(expire_at(&f, "k", 1300, 9000), KV_OK);
	ck_assert_int_eq(ttl_of(&f, "k", 1300, &e), KV_OK);
	ck_assert_uint_eq(e, 9000);
	expect_at(&f, "k", 1300, "v3");
	ck_assert_uint_eq(expires_of(&f), 1);
	ck_assert_int_eq(expire_at(&f, "k", 1300, 0), KV_OK);
	ck_assert_int_eq(expire_at(&f, "k", 1300, 0), KV_NOT_FOUND); /* no expiry to remove */
	ck_assert_int_eq(expire_at(&f, "missing", 1300, 9000), KV_NOT_FOUND);
	ck_assert_uint_eq(expires_of(&f), 0);
	/* EXPIRE in the past: the key is gone at once. */
	ck_assert_int_eq(expire_at(&f, "k", 1400, 1), KV_OK);
	expect_at(&f, "k", 1400, NULL);
	ck_assert_int_eq(expire_at(&f, "k", 1500, 9000), KV_NOT_FOUND);
	/* Fields that do not belong to the op are refused by the encoding. */
	struct raft_buf b;
	struct kv_cmd bad = fx_put_cmd("k", "v");
	bad.keep_ttl = true;
	bad.expire_at_ms = 5;
	ck_assert_int_eq(kv_cmd_encode(f.kv, &bad, &b), KV_EINVAL);
	struct kv_cmd bad2 = {.op = KV_OP_DELETE, .key = "k", .key_len = 1, .expire_at_ms = 5};
	ck_assert_int_eq(kv_cmd_encode(f.kv, &bad2, &b), KV_EINVAL);
	fx_close(&f);
}
END_TEST

START_TEST(test_reap_spares_a_key_set_again)
{
	struct fx f;
	fx_open(&f);
	ck_assert_int_eq(put_at(&f, "a", "1", 1000, 1100), KV_OK);
	ck_assert_int_eq(put_at(&f, "b", "2", 1000, 1200), KV_OK);
	ck_assert_int_eq(put_at(&f, "c", "3", 1000, 9000), KV_OK);
	ck_assert_uint_eq(expires_of(&f), 3);
	struct reaped r;
	uint32_t found;
	memset(&r, 0, sizeof r);
	ck_assert_int_eq(kv_expired(f.kv, 1, 1150, 16, expired_cb, &r, &found), KV_OK);
	ck_assert_int_eq(r.n, 1);
	ck_assert_str_eq(r.keys[0], "a");
	/* The leader saw a and b due at 1300; b is set again before its REAP applies. */
	memset(&r, 0, sizeof r);
	ck_assert_int_eq(kv_expired(f.kv, 1, 1300, 16, expired_cb, &r, &found), KV_OK);
	ck_assert_int_eq(r.n, 2);
	ck_assert_int_eq(put_at(&f, "b", "again", 1300, 0), KV_OK);
	struct kv_item items[2];
	uint8_t at[2][8];
	for (int i = 0; i < 2; i++) {
		for (int k = 0; k < 8; k++)
			at[i][k] = (uint8_t)(r.at[i] >> (8 * k));
		items[i] = (struct kv_item){r.keys[i], 1, at[i], 8};
	}
	struct kv_cmd c = {.op = KV_OP_REAP, .items = items, .n_items = 2, .now_ms = 1300};
	struct fx_res res;
	ck_assert_int_eq(fx_apply_cmd(&f, 1, &c, &res), KV_OK);
	ck_assert(res.res.value_len == 1 && res.value[0] == '1');
	expect_at(&f, "b", 1300, "again");
	struct kv_group_meta m;
	ck_assert_int_eq(kv_meta(f.kv, 1, &m), KV_OK);
	ck_assert_uint_eq(m.keys, 2);
	ck_assert_uint_eq(m.expires, 1);
	/* Nothing due: nothing found, nothing reaped; then c when its time comes. */
	ck_assert_int_eq(reap(&f, 1300, &r), 0);
	ck_assert_int_eq(reap(&f, 9000, &r), 1);
	ck_assert_uint_eq(expires_of(&f), 0);
	ck_assert_int_eq(kv_meta(f.kv, 1, &m), KV_OK);
	ck_assert_uint_eq(m.keys, 1);
	fx_close(&f);
}
END_TEST

/* kv_expired_committed lists from the last commit: a key given its expiry in the open
 * transaction is not seen, and the listing does not commit it (a second listing still does
 * not see it); kv_expired commits first and sees both. */
START_TEST(test_expired_committed_leaves_the_open_transaction)
{
	struct fx f;
	fx_open(&f);
	kv_apply_batching(f.kv, true); /* as the node runs it */
	ck_assert_int_eq(put_at(&f, "a", "1", 1000, 1100), KV_OK);
	ck_assert_int_eq(kv_apply_commit(f.kv), KV_OK);
	ck_assert_int_eq(put_at(&f, "b", "2", 1000, 1100), KV_OK); /* open transaction only */
	for (int round = 0; round < 2; round++) {
		struct reaped r;
		uint32_t found;
		memset(&r, 0, sizeof r);
		ck_assert_int_eq(kv_expired_committed(f.kv, 1, 2000, 16, expired_cb, &r, &found),
				 KV_OK);
		ck_assert_int_eq(r.n, 1);
		ck_assert_str_eq(r.keys[0], "a");
	}
	struct reaped r;
	uint32_t found;
	memset(&r, 0, sizeof r);
	ck_assert_int_eq(kv_expired(f.kv, 1, 2000, 16, expired_cb, &r, &found), KV_OK);
	ck_assert_int_eq(r.n, 2);
	fx_close(&f);
}
END_TEST

START_TEST(test_group_clock_never_goes_back)
{
	struct fx f;
	fx_open(&f);
	ck_assert_int_eq(put_at(&f, "k", "v", 1000, 2000), KV_OK);
	/* A command from a leader whose clock runs ahead moves the group's clock ... */
	ck_assert_int_eq(put_at(&f, "other", "v", 2500, 0), KV_OK);
	struct kv_group_meta m;
	ck_assert_int_eq(kv_meta(f.kv, 1, &m), KV_OK);
	ck_assert_uint_eq(m.clock_ms, 2500);
	/* ... so that a later one from a slower clock, and any read, see k expired. */
	expect_at(&f, "k", 1500, NULL);
	expect_at(&f, "k", 0, NULL);
	struct kv_cmd nx = {.op = KV_OP_CAS,
			    .key = "k",
			    .key_len = 1,
			    .value = "n",
			    .value_len = 1,
			    .expect_absent = true,
			    .now_ms = 1500};
	struct fx_res r;
	ck_assert_int_eq(fx_apply_cmd(&f, 1, &nx, &r), KV_OK);
	ck_assert_int_eq(r.res.code, KV_OK);
	ck_assert_int_eq(kv_meta(f.kv, 1, &m), KV_OK);
	ck_assert_uint_eq(m.clock_ms, 2500);
	fx_close(&f);
}
END_TEST

START_TEST(test_digest_and_snapshot_carry_expiry)
{
	struct fx a, b;
	fx_open(&a);
	fx_open(&b);
	ck_assert_int_eq(put_at(&a, "k", "v", 1000, 0), KV_OK);
	ck_assert_int_eq(put_at(&b, "k", "v", 1000, 7000), KV_OK);
	uint8_t da[KV_DIGEST_BYTES], db[KV_DIGEST_BYTES];
	ck_assert_int_eq(kv_digest(a.kv, 1, da, NULL), KV_OK);
	ck_assert_int_eq(kv_digest(b.kv, 1, db, NULL), KV_OK);
	ck_assert(memcmp(da, db, sizeof da) != 0);
	/* b's state into a by snapshot: same digest, the expiry and its index with it. */
	struct kv_snapshot *s;
	ck_assert_int_eq(kv_snapshot_begin(b.kv, 1, &s), KV_OK);
	struct kv_restore *rs;
	ck_assert_int_eq(kv_restore_begin(a.kv, 1, &rs), KV_OK);
	uint8_t buf[100];
	bool done = false;
	while (!done) {
		size_t n;
		ck_assert_int_eq(kv_snapshot_read(s, buf, sizeof buf, &n, &done), KV_OK);
		ck_assert_int_eq(kv_restore_write(rs, buf, n), KV_OK);
	}
	kv_snapshot_end(s);
	ck_assert_int_eq(kv_restore_finish(rs), KV_OK);
	ck_assert_int_eq(kv_digest(a.kv, 1, da, NULL), KV_OK);
	ck_assert(memcmp(da, db, sizeof da) == 0);
	uint64_t e;
	ck_assert_int_eq(ttl_of(&a, "k", 1000, &e), KV_OK);
	ck_assert_uint_eq(e, 7000);
	ck_assert_uint_eq(expires_of(&a), 1);
	a.next[1] = 2;
	struct reaped r;
	ck_assert_int_eq(reap(&a, 7000, &r), 1);
	fx_close(&a);
	fx_close(&b);
}
END_TEST

/* A format 2 environment (values [crc of key || value][value], stamp 2): kv_open upgrades it;
 * a value that was damaged stays damaged. */
START_TEST(test_format_2_upgraded)
{
	char dir[256];
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, sizeof dir, "%s/kvtest.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi, main_dbi;
	ck_assert_int_eq(mdb_env_create(&env), 0);
	ck_assert_int_eq(mdb_env_set_maxdbs(env, 4), 0);
	ck_assert_int_eq(mdb_env_open(env, dir, 0, 0644), 0);
	ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
	ck_assert_int_eq(mdb_dbi_open(txn, "g1.data", MDB_CREATE, &dbi), 0);
	const char *keys[] = {"good", "bad", "empty"}, *vals[] = {"value", "broken", ""};
	for (int i = 0; i < 3; i++) {
		uint8_t rec[64];
		size_t kl = strlen(keys[i]), vl = strlen(vals[i]);
		uint32_t crc = wal_crc32c(wal_crc32c(0, keys[i], kl), vals[i], vl);
		if (i == 1)
			crc ^= 0x10;
		for (int b = 0; b < 4; b++)
			rec[b] = (uint8_t)(crc >> (8 * b));
		memcpy(rec + 4, vals[i], vl);
		MDB_val k = {kl, (void *)keys[i]}, v = {4 + vl, rec};
		ck_assert_int_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
	}
	uint8_t ver[4] = {2, 0, 0, 0};
	MDB_val fk = {18, "ringraft.kv.format"}, fv = {4, ver};
	ck_assert_int_eq(mdb_dbi_open(txn, NULL, 0, &main_dbi), 0);
	ck_assert_int_eq(mdb_put(txn, main_dbi, &fk, &fv, 0), 0);
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
	mdb_env_close(env);

	struct fx f;
	memset(&f, 0, sizeof f);
	snprintf(f.dir, sizeof f.dir, "%s", dir);
	ck_assert_int_eq(kv_open(dir, NULL, &f.kv), KV_OK);
	fx_expect(&f, 1, "good", "value");
	fx_expect(&f, 1, "empty", "");
	void *v = NULL;
	size_t n;
	ck_assert_int_eq(kv_get(f.kv, 1, "bad", 3, 0, &v, &n, NULL), KV_ECORRUPT);
	/* Reopened: format 3 now, nothing upgraded twice. */
	kv_close(f.kv);
	ck_assert_int_eq(kv_open(dir, NULL, &f.kv), KV_OK);
	fx_expect(&f, 1, "good", "value");
	ck_assert_int_eq(kv_get(f.kv, 1, "bad", 3, 0, &v, &n, NULL), KV_ECORRUPT);
	fx_close(&f);
}
END_TEST

Suite *expire_suite(void)
{
	Suite *s = suite_create("kv_expire");
	TCase *tc = tcase_create("expire");
	tcase_add_test(tc, test_reads_hide_expired);
	tcase_add_test(tc, test_scan_skips_expired);
	tcase_add_test(tc, test_commands_judge_at_their_time);
	tcase_add_test(tc, test_set_options_and_expire);
	tcase_add_test(tc, test_reap_spares_a_key_set_again);
	tcase_add_test(tc, test_expired_committed_leaves_the_open_transaction);
	tcase_add_test(tc, test_group_clock_never_goes_back);
	tcase_add_test(tc, test_digest_and_snapshot_carry_expiry);
	tcase_add_test(tc, test_format_2_upgraded);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(expire_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
