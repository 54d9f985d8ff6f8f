/* test_rand.c — the seeded generator: same seed, same sequence, bit for bit; different seeds
 * differ; ranges are respected and covered. */
#include <check.h>
#include <stdlib.h>

#include "raft/rand.h"

START_TEST(test_deterministic)
{
	struct raft_rand a, b, c;
	raft_rand_seed(&a, 42);
	raft_rand_seed(&b, 42);
	raft_rand_seed(&c, 43);
	int differ = 0;
	for (int i = 0; i < 1000; i++) {
		uint64_t x = raft_rand_next(&a);
		ck_assert_uint_eq(x, raft_rand_next(&b));
		differ += x != raft_rand_next(&c);
	}
	ck_assert_int_ge(differ, 999);
}
END_TEST

START_TEST(test_range)
{
	struct raft_rand g;
	raft_rand_seed(&g, 7);
	int hits[10] = {0};
	for (int i = 0; i < 10000; i++) {
		uint32_t v = raft_rand_range(&g, 10, 20);
		ck_assert_uint_ge(v, 10);
		ck_assert_uint_lt(v, 20);
		hits[v - 10]++;
	}
	for (int i = 0; i < 10; i++)
		ck_assert_int_gt(hits[i], 800); /* roughly uniform */
}
END_TEST

int main(void)
{
	Suite *s = suite_create("raft_rand");
	TCase *tc = tcase_create("rand");
	tcase_add_test(tc, test_deterministic);
	tcase_add_test(tc, test_range);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
