/* test_read.c — get and range scan: bounds [start, end), limits and the continuation key,
 * resuming until the range is exhausted, a callback that stops early, and the digest:
 * equal contents give equal digests whatever the history, different contents differ.
 */
#include "kv_fixture.h"

struct seen {
	char keys[64][16];
	int n;
	int stop_after; /* 0: never stop */
};

static int seen_cb(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	struct seen *s = arg;
	ck_assert_uint_lt(kl, 16);
	ck_assert_uint_eq(vl, kl); /* values equal their keys in these tests */
	ck_assert(memcmp(k, v, kl) == 0);
	memcpy(s->keys[s->n], k, kl);
	s->keys[s->n][kl] = 0;
	s->n++;
	return s->stop_after && s->n == s->stop_after;
}

static void put_keys(struct fx *f, int n)
{
	char k[16];
	/* inserted out of order: the scan must come back sorted */
	for (int i = n - 1; i >= 0; i--) {
		snprintf(k, sizeof k, "k%02d", i);
		ck_assert_int_eq(fx_put(f, 1, k, k), KV_OK);
	}
}

START_TEST(test_scan_bounds_limit_continuation)
{
	struct fx f;
	fx_open(&f);
	put_keys(&f, 20);
	struct seen s = {0};
	void *next;
	size_t next_len;
	/* [k05, k10): five keys, done */
	ck_assert_int_eq(kv_scan(f.kv, 1, 0, "k05", 3, "k10", 3, 0, seen_cb, &s, &next, &next_len),
			 KV_OK);
	ck_assert_int_eq(s.n, 5);
	ck_assert_str_eq(s.keys[0], "k05");
	ck_assert_str_eq(s.keys[4], "k09");
	ck_assert_ptr_null(next);
	/* a start between keys; no end; limit 7 then resume from the continuation */
	memset(&s, 0, sizeof s);
	ck_assert_int_eq(kv_scan(f.kv, 1, 0, "k035", 4, NULL, 0, 7, seen_cb, &s, &next, &next_len),
			 KV_OK);
	ck_assert_int_eq(s.n, 7);
	ck_assert_str_eq(s.keys[0], "k04");
	ck_assert_ptr_nonnull(next);
	ck_assert_uint_eq(next_len, 3);
	ck_assert(memcmp(next, "k11", 3) == 0);
	int total = s.n, rounds = 1;
	while (next) {
		void *from = next;
		size_t from_len = next_len;
		ck_assert_int_eq(kv_scan(f.kv, 1, 0, from, from_len, NULL, 0, 7, seen_cb, &s, &next,
					 &next_len),
				 KV_OK);
		free(from);
		rounds++;
	}
	total = s.n;
	ck_assert_int_eq(total, 16); /* k04..k19 */
	ck_assert_int_eq(rounds, 3);
	for (int i = 1; i < total; i++)
		ck_assert(strcmp(s.keys[i - 1], s.keys[i]) < 0);
	/* exactly limit keys left in range: done, no continuation */
	memset(&s, 0, sizeof s);
	ck_assert_int_eq(kv_scan(f.kv, 1, 0, "k15", 3, NULL, 0, 5, seen_cb, &s, &next, &next_len),
			 KV_OK);
	ck_assert_int_eq(s.n, 5);
	ck_assert_ptr_null(next);
	/* whole group from the start; an empty range */
	memset(&s, 0, sizeof s);
	ck_assert_int_eq(kv_scan(f.kv, 1, 0, NULL, 0, NULL, 0, 0, seen_cb, &s, &next, &next_len),
			 KV_OK);
	ck_assert_int_eq(s.n, 20);
	memset(&s, 0, sizeof s);
	ck_assert_int_eq(kv_scan(f.kv, 1, 0, "k07", 3, "k07", 3, 0, seen_cb, &s, &next, &next_len),
			 KV_OK);
	ck_assert_int_eq(s.n, 0);
	ck_assert_ptr_null(next);
	fx_close(&f);
}
END_TEST

START_TEST(test_scan_stopped_by_callback)
{
	struct fx f;
	fx_open(&f);
	put_keys(&f, 10);
	struct seen s = {.stop_after = 3};
	void *next;
	size_t next_len;
	ck_assert_int_eq(kv_scan(f.kv, 1, 0, NULL, 0, NULL, 0, 0, seen_cb, &s, &next, &next_len),
			 KV_OK);
	ck_assert_int_eq(s.n, 3);
	ck_assert_ptr_nonnull(next);
	ck_assert(memcmp(next, "k03", 3) == 0);
	free(next);
	/* stopping at the last key in range: nothing to continue from */
	memset(&s, 0, sizeof s);
	s.stop_after = 2;
	ck_assert_int_eq(kv_scan(f.kv, 1, 0, "k08", 3, NULL, 0, 0, seen_cb, &s, &next, &next_len),
			 KV_OK);
	ck_assert_int_eq(s.n, 2);
	ck_assert_ptr_null(next);
	/* bad arguments */
	char big[KV_KEY_MAX + 1] = {0};
	ck_assert_int_eq(
		kv_scan(f.kv, 1, 0, big, sizeof big, NULL, 0, 0, seen_cb, &s, &next, &next_len),
		KV_EINVAL);
	ck_assert_int_eq(kv_scan(f.kv, 0, 0, NULL, 0, NULL, 0, 0, seen_cb, &s, &next, &next_len),
			 KV_ENOGROUP);
	fx_close(&f);
}
END_TEST

START_TEST(test_digest_depends_on_contents_only)
{
	struct fx a, b;
	fx_open(&a);
	fx_open(&b);
	uint8_t da[KV_DIGEST_BYTES], db[KV_DIGEST_BYTES];
	raft_index ia, ib;
	/* empty groups agree */
	ck_assert_int_eq(kv_digest(a.kv, 1, da, &ia), KV_OK);
	ck_assert_int_eq(kv_digest(b.kv, 1, db, &ib), KV_OK);
	ck_assert(memcmp(da, db, sizeof da) == 0);
	/* a: x=1, y=2 directly. b: another order, overwrites, a deleted key, sessions. */
	ck_assert_int_eq(fx_put(&a, 1, "x", "1"), KV_OK);
	ck_assert_int_eq(fx_put(&a, 1, "y", "2"), KV_OK);
	ck_assert_int_eq(fx_put(&b, 1, "y", "0"), KV_OK);
	ck_assert_int_eq(fx_put(&b, 1, "z", "9"), KV_OK);
	struct kv_cmd c = fx_put_cmd("x", "1");
	c.client_id = 3;
	c.seq = 1;
	ck_assert_int_eq(fx_apply_cmd(&b, 1, &c, NULL), KV_OK);
	ck_assert_int_eq(fx_put(&b, 1, "y", "2"), KV_OK);
	ck_assert_int_eq(fx_del(&b, 1, "z"), KV_OK);
	ck_assert_int_eq(kv_digest(a.kv, 1, da, &ia), KV_OK);
	ck_assert_int_eq(kv_digest(b.kv, 1, db, &ib), KV_OK);
	ck_assert_uint_eq(ia, 2);
	ck_assert_uint_eq(ib, 5);
	ck_assert(memcmp(da, db, sizeof da) == 0);
	/* length-prefixed: ("ab","c") and ("a","bc") differ; so does one changed byte */
	ck_assert_int_eq(fx_put(&a, 2, "ab", "c"), KV_OK);
	ck_assert_int_eq(fx_put(&b, 2, "a", "bc"), KV_OK);
	ck_assert_int_eq(kv_digest(a.kv, 2, da, NULL), KV_OK);
	ck_assert_int_eq(kv_digest(b.kv, 2, db, NULL), KV_OK);
	ck_assert(memcmp(da, db, sizeof da) != 0);
	ck_assert_int_eq(fx_put(&a, 1, "y", "3"), KV_OK);
	ck_assert_int_eq(kv_digest(a.kv, 1, da, NULL), KV_OK);
	ck_assert_int_eq(kv_digest(b.kv, 1, db, NULL), KV_OK);
	ck_assert(memcmp(da, db, sizeof da) != 0);
	fx_close(&a);
	fx_close(&b);
}
END_TEST

Suite *read_suite(void)
{
	Suite *s = suite_create("kv_read");
	TCase *tc = tcase_create("read");
	tcase_add_test(tc, test_scan_bounds_limit_continuation);
	tcase_add_test(tc, test_scan_stopped_by_callback);
	tcase_add_test(tc, test_digest_depends_on_contents_only);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(read_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
