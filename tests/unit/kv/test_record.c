/* test_record.c — the CRC32C on every stored value (kv/record.c): a bit flipped inside a value
 * in the LMDB file is reported as KV_ECORRUPT by every read path (get, scan, digest, snapshot
 * read, a CAS and a put-if-absent inside apply), with kv_last_corrupt() naming the group and
 * key, and the damaged bytes are never handed out; the digest stays a function of what
 * clients see, not of the stored CRC.
 */
#include <xxhash.h>

#include "kv_fixture.h"

#define VICTIM "victim-value-0123456789-abcdefghij"

struct seen {
	int n;
	char keys[8][16];
};

static int seen_cb(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	struct seen *s = arg;
	(void)v;
	ck_assert(vl < sizeof VICTIM - 1 || memcmp(v, VICTIM, sizeof VICTIM - 1) != 0);
	ck_assert_int_lt(s->n, 8);
	ck_assert_uint_lt(kl, sizeof s->keys[0]);
	memcpy(s->keys[s->n], k, kl);
	s->keys[s->n][kl] = 0;
	s->n++;
	return 0;
}

/* Three keys in group 2, the middle one damaged on disk. */
static void damaged(struct fx *f)
{
	fx_open(f);
	uint32_t g;
	size_t kl;
	ck_assert_int_eq(kv_last_corrupt(f->kv, &g, NULL, 0, &kl), KV_NOT_FOUND);
	ck_assert_int_eq(fx_put(f, 2, "a", "first"), KV_OK);
	ck_assert_int_eq(fx_put(f, 2, "m", VICTIM), KV_OK);
	ck_assert_int_eq(fx_put(f, 2, "z", "last"), KV_OK);
	fx_damage(f, VICTIM);
}

/* With batched applies (kv_apply_batching), a group's apply that meets damage undoes only its
 * own writes: the other groups' applies held with it, before and after, commit. */
START_TEST(test_batched_failed_apply_undoes_only_its_group)
{
	struct fx f;
	damaged(&f);
	raft_index before = fx_applied(&f, 2);
	kv_apply_batching(f.kv, true);
	ck_assert_int_eq(fx_put(&f, 1, "before", "1"), KV_OK);
	struct kv_cmd c[2] = {fx_put_cmd("undone", "x"),
			      {.op = KV_OP_CAS,
			       .key = "m",
			       .key_len = 1,
			       .expected = VICTIM,
			       .expected_len = strlen(VICTIM),
			       .value = "new",
			       .value_len = 3}};
	struct raft_entry e[2];
	for (int i = 0; i < 2; i++) {
		e[i] = (struct raft_entry){
			.index = before + 1 + (raft_index)i, .term = 1, .type = RAFT_ENTRY_NORMAL};
		ck_assert_int_eq(kv_cmd_encode(NULL, &c[i], &e[i].data), KV_OK);
	}
	struct fx_res r;
	memset(&r, 0, sizeof r);
	ck_assert_int_eq(kv_apply(f.kv, 2, e, 2, NULL, fx_res_cb, &r), KV_ECORRUPT);
	ck_assert_int_eq(r.calls, 0);
	ck_assert_int_eq(fx_put(&f, 3, "after", "3"), KV_OK);
	ck_assert_int_eq(kv_apply_commit(f.kv), KV_OK);
	fx_expect(&f, 1, "before", "1");
	fx_expect(&f, 3, "after", "3");
	fx_expect(&f, 2, "undone", NULL);
	ck_assert_uint_eq(fx_applied(&f, 2), before);
	ck_assert_uint_eq(fx_applied(&f, 1), 1);
	ck_assert_uint_eq(fx_applied(&f, 3), 1);
	/* and they are on disk: a reopen finds them */
	kv_close(f.kv);
	ck_assert_int_eq(kv_open(f.dir, NULL, &f.kv), KV_OK);
	fx_expect(&f, 1, "before", "1");
	fx_expect(&f, 3, "after", "3");
	for (int i = 0; i < 2; i++)
		free(e[i].data.base);
	fx_close(&f);
}
END_TEST

START_TEST(test_get_and_scan_report_damage)
{
	struct fx f;
	damaged(&f);
	void *v = NULL;
	size_t n = 0;
	ck_assert_int_eq(kv_get(f.kv, 2, "m", 1, 0, &v, &n, NULL), KV_ECORRUPT);
	ck_assert_ptr_null(v);
	fx_expect_corrupt(&f, 2, "m");
	/* The others are intact and readable. */
	fx_expect(&f, 2, "a", "first");
	fx_expect(&f, 2, "z", "last");
	/* A scan stops at the damaged value: the good one before it, never the bad one. */
	struct seen s = {0};
	void *next;
	size_t next_len;
	ck_assert_int_eq(kv_scan(f.kv, 2, 0, NULL, 0, NULL, 0, 0, seen_cb, &s, &next, &next_len),
			 KV_ECORRUPT);
	ck_assert_int_eq(s.n, 1);
	ck_assert_str_eq(s.keys[0], "a");
	ck_assert_ptr_null(next);
	/* A scan that does not reach it is fine. */
	memset(&s, 0, sizeof s);
	ck_assert_int_eq(kv_scan(f.kv, 2, 0, "n", 1, NULL, 0, 0, seen_cb, &s, &next, &next_len),
			 KV_OK);
	ck_assert_int_eq(s.n, 1);
	/* The key name can be learnt with a short buffer: the full length is reported. */
	uint32_t g;
	char k[1];
	size_t kl;
	ck_assert_int_eq(kv_last_corrupt(f.kv, &g, k, 0, &kl), KV_OK);
	ck_assert_uint_eq(kl, 1);
	fx_close(&f);
}
END_TEST

START_TEST(test_digest_and_snapshot_refuse_damage)
{
	struct fx f;
	damaged(&f);
	uint8_t d[KV_DIGEST_BYTES];
	ck_assert_int_eq(kv_digest(f.kv, 2, d, NULL), KV_ECORRUPT);
	fx_expect_corrupt(&f, 2, "m");
	struct kv_snapshot *snap;
	ck_assert_int_eq(kv_snapshot_begin(f.kv, 2, &snap), KV_OK);
	uint8_t buf[64];
	size_t len;
	bool done = false;
	int err = KV_OK;
	/* Small chunks: nothing of the damaged value may come out before the error. */
	while (err == KV_OK && !done) {
		err = kv_snapshot_read(snap, buf, sizeof buf, &len, &done);
		if (err == KV_OK)
			ck_assert_ptr_null(memmem(buf, len, "victim", 6));
	}
	ck_assert_int_eq(err, KV_ECORRUPT);
	ck_assert(!done);
	ck_assert_int_eq(kv_snapshot_read(snap, buf, sizeof buf, &len, &done), KV_ECORRUPT);
	kv_snapshot_end(snap);
	fx_close(&f);
}
END_TEST

START_TEST(test_cas_on_damaged_value_fails_the_batch)
{
	struct fx f;
	damaged(&f);
	raft_index before = fx_applied(&f, 2);
	/* Whatever the expected value, a damaged current value decides nothing. */
	const char *expect[] = {VICTIM, "something else"};
	for (int i = 0; i < 2; i++) {
		struct kv_cmd c = {.op = KV_OP_CAS,
				   .key = "m",
				   .key_len = 1,
				   .expected = expect[i],
				   .expected_len = strlen(expect[i]),
				   .value = "new",
				   .value_len = 3};
		struct fx_res r;
		ck_assert_int_eq(fx_apply_cmd(&f, 2, &c, &r), KV_ECORRUPT);
		ck_assert_int_eq(r.calls, 0);
		ck_assert_uint_eq(fx_applied(&f, 2), before);
		fx_expect_corrupt(&f, 2, "m");
	}
	struct kv_cmd pia = {.op = KV_OP_CAS,
			     .key = "m",
			     .key_len = 1,
			     .expect_absent = true,
			     .value = "x",
			     .value_len = 1};
	ck_assert_int_eq(fx_apply_cmd(&f, 2, &pia, NULL), KV_ECORRUPT);
	ck_assert_uint_eq(fx_applied(&f, 2), before);
	/* A CAS on an intact key of the same group still works. */
	struct kv_cmd ok = {.op = KV_OP_CAS,
			    .key = "a",
			    .key_len = 1,
			    .expected = "first",
			    .expected_len = 5,
			    .value = "second",
			    .value_len = 6};
	struct fx_res r;
	ck_assert_int_eq(fx_apply_cmd(&f, 2, &ok, &r), KV_OK);
	ck_assert_int_eq(r.res.code, KV_OK);
	fx_expect(&f, 2, "a", "second");
	fx_close(&f);
}
END_TEST

/* The digest is XXH3-128 over (u32 LE key length, key, u32 LE value length, value): the
 * stored CRC is not part of it, so replicas compare what clients read. */
START_TEST(test_digest_is_of_visible_values)
{
	struct fx f;
	fx_open(&f);
	ck_assert_int_eq(fx_put(&f, 1, "k1", "v1"), KV_OK);
	ck_assert_int_eq(fx_put(&f, 1, "k2", ""), KV_OK);
	XXH3_state_t *st = XXH3_createState();
	XXH3_128bits_reset(st);
	const char *kvs[][2] = {{"k1", "v1"}, {"k2", ""}};
	for (int i = 0; i < 2; i++) {
		for (int j = 0; j < 2; j++) {
			uint8_t len[4] = {(uint8_t)strlen(kvs[i][j]), 0, 0, 0};
			XXH3_128bits_update(st, len, 4);
			XXH3_128bits_update(st, kvs[i][j], strlen(kvs[i][j]));
		}
	}
	XXH128_canonical_t want;
	XXH128_canonicalFromHash(&want, XXH3_128bits_digest(st));
	XXH3_freeState(st);
	uint8_t d[KV_DIGEST_BYTES];
	ck_assert_int_eq(kv_digest(f.kv, 1, d, NULL), KV_OK);
	ck_assert(memcmp(d, want.digest, KV_DIGEST_BYTES) == 0);
	fx_close(&f);
}
END_TEST

Suite *record_suite(void)
{
	Suite *s = suite_create("kv_record");
	TCase *tc = tcase_create("record");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_get_and_scan_report_damage);
	tcase_add_test(tc, test_batched_failed_apply_undoes_only_its_group);
	tcase_add_test(tc, test_digest_and_snapshot_refuse_damage);
	tcase_add_test(tc, test_cas_on_damaged_value_fails_the_batch);
	tcase_add_test(tc, test_digest_is_of_visible_values);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(record_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
