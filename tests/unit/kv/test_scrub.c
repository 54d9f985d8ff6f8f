/* test_scrub.c — kv_scrub_step: a pass over a group in bounded steps that wraps around, a
 * cursor that survives writes between steps (it re-seeks after the last key it checked),
 * an empty group, and a damaged value reported with its key, again on the next step.
 */
#include "kv_fixture.h"

static void put_keys(struct fx *f, uint32_t group, int n)
{
	char k[16], v[32];
	for (int i = 0; i < n; i++) {
		snprintf(k, sizeof k, "k%02d", i);
		snprintf(v, sizeof v, "value of %s", k);
		ck_assert_int_eq(fx_put(f, group, k, v), KV_OK);
	}
}

START_TEST(test_pass_in_steps_wraps)
{
	struct fx f;
	fx_open(&f);
	put_keys(&f, 1, 10);
	struct kv_scrub_cursor cur;
	kv_scrub_cursor_init(&cur);
	uint32_t checked;
	bool done;
	const uint32_t want[] = {3, 3, 3, 1};
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(kv_scrub_step(f.kv, 1, &cur, 3, &checked, &done), KV_OK);
		ck_assert_uint_eq(checked, want[i]);
		ck_assert(done == (i == 3));
	}
	ck_assert_uint_eq(cur.passes, 1);
	/* The next step starts the second pass from the first key. */
	ck_assert_int_eq(kv_scrub_step(f.kv, 1, &cur, 0, &checked, &done), KV_OK);
	ck_assert_uint_eq(checked, 10);
	ck_assert(done);
	ck_assert_uint_eq(cur.passes, 2);
	/* An empty group is done at once; a bad group is refused. */
	kv_scrub_cursor_init(&cur);
	ck_assert_int_eq(kv_scrub_step(f.kv, 2, &cur, 5, &checked, &done), KV_OK);
	ck_assert_uint_eq(checked, 0);
	ck_assert(done);
	ck_assert_int_eq(kv_scrub_step(f.kv, 0, &cur, 5, &checked, &done), KV_ENOGROUP);
	fx_close(&f);
}
END_TEST

START_TEST(test_cursor_survives_writes)
{
	struct fx f;
	fx_open(&f);
	put_keys(&f, 1, 10); /* k00..k09 */
	struct kv_scrub_cursor cur;
	kv_scrub_cursor_init(&cur);
	uint32_t checked, total = 0;
	bool done;
	ck_assert_int_eq(kv_scrub_step(f.kv, 1, &cur, 3, &checked, &done), KV_OK);
	total += checked; /* k00..k02 */
	/* Delete the last key checked and the next one; add one after it and one before it. */
	ck_assert_int_eq(fx_del(&f, 1, "k02"), KV_OK);
	ck_assert_int_eq(fx_del(&f, 1, "k03"), KV_OK);
	ck_assert_int_eq(fx_put(&f, 1, "k025", "new"), KV_OK);
	ck_assert_int_eq(fx_put(&f, 1, "k005", "behind"), KV_OK);
	do {
		ck_assert_int_eq(kv_scrub_step(f.kv, 1, &cur, 3, &checked, &done), KV_OK);
		total += checked;
	} while (!done);
	/* 3 before the writes, then k025 and k04..k09: nothing twice, nothing after skipped. */
	ck_assert_uint_eq(total, 3 + 1 + 6);
	fx_close(&f);
}
END_TEST

START_TEST(test_damage_found)
{
	struct fx f;
	fx_open(&f);
	put_keys(&f, 3, 5);
	ck_assert_int_eq(fx_put(&f, 3, "k02", "scrub-victim-0123456789-xyz"), KV_OK);
	fx_damage(&f, "scrub-victim-0123456789-xyz");
	struct kv_scrub_cursor cur;
	kv_scrub_cursor_init(&cur);
	uint32_t checked;
	bool done;
	ck_assert_int_eq(kv_scrub_step(f.kv, 3, &cur, 0, &checked, &done), KV_ECORRUPT);
	ck_assert_uint_eq(checked, 2);
	ck_assert(!done);
	fx_expect_corrupt(&f, 3, "k02");
	/* The cursor stays before it: the next step reports it again. */
	ck_assert_int_eq(kv_scrub_step(f.kv, 3, &cur, 0, &checked, &done), KV_ECORRUPT);
	ck_assert_uint_eq(checked, 0);
	fx_close(&f);
}
END_TEST

Suite *scrub_suite(void)
{
	Suite *s = suite_create("kv_scrub");
	TCase *tc = tcase_create("scrub");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_pass_in_steps_wraps);
	tcase_add_test(tc, test_cursor_survives_writes);
	tcase_add_test(tc, test_damage_found);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(scrub_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
