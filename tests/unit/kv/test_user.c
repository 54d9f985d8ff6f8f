/* test_user.c — users of client authentication (kv/user.c): the right password verifies
 * and any other does not; salts differ between users with the same password; records round-
 * trip and damaged ones are refused; names and roles are checked. Prints what one check
 * costs with KV_USER_ITERATIONS (the figure in kv/user.h and docs/SECURITY.md). */
#include <check.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kv/user.h"

#define FAST KV_USER_ITERATIONS_MIN /* the tests' users: correctness, not cost */

START_TEST(test_password_checks)
{
	struct kv_user a, b;
	ck_assert_int_eq(kv_user_make(KV_USER_RW, "s3cret", 6, FAST, &a), 0);
	ck_assert(kv_user_password_ok(&a, "s3cret", 6));
	ck_assert(!kv_user_password_ok(&a, "s3cret!", 7));
	ck_assert(!kv_user_password_ok(&a, "s3creT", 6));
	ck_assert(!kv_user_password_ok(&a, "", 0));
	/* same password, another salt, another hash */
	ck_assert_int_eq(kv_user_make(KV_USER_RO, "s3cret", 6, FAST, &b), 0);
	ck_assert(memcmp(a.salt, b.salt, sizeof a.salt) != 0);
	ck_assert(memcmp(a.hash, b.hash, sizeof a.hash) != 0);
	ck_assert(kv_user_password_ok(&b, "s3cret", 6));
	/* refused inputs */
	static char big[KV_USER_PASSWORD_MAX + 1];
	memset(big, 'x', sizeof big);
	ck_assert_int_eq(kv_user_make(KV_USER_RW, big, sizeof big, FAST, &b), -1);
	ck_assert_int_eq(kv_user_make(KV_USER_RW, "", 0, FAST, &b), -1);
	ck_assert_int_eq(kv_user_make(3, "p", 1, FAST, &b), -1);
	ck_assert_int_eq(kv_user_make(KV_USER_RW, "p", 1, FAST - 1, &b), -1);
}
END_TEST

START_TEST(test_records)
{
	struct kv_user a, back;
	ck_assert_int_eq(kv_user_make(KV_USER_RO, "pw", 2, FAST, &a), 0);
	uint8_t rec[KV_USER_RECORD_BYTES];
	kv_user_record_encode(&a, rec);
	ck_assert_int_eq(kv_user_record_decode(rec, sizeof rec, &back), 0);
	ck_assert_int_eq(back.role, KV_USER_RO);
	ck_assert_uint_eq(back.iterations, FAST);
	ck_assert(kv_user_password_ok(&back, "pw", 2));
	ck_assert_int_eq(kv_user_record_decode(rec, sizeof rec - 1, &back), -1);
	rec[0] = 2; /* another version */
	ck_assert_int_eq(kv_user_record_decode(rec, sizeof rec, &back), -1);
	rec[0] = 1;
	rec[1] = 9; /* unknown role */
	ck_assert_int_eq(kv_user_record_decode(rec, sizeof rec, &back), -1);
	rec[1] = KV_USER_RO;
	rec[2] = rec[3] = rec[4] = 0;
	rec[5] = 1; /* one iteration: refused */
	ck_assert_int_eq(kv_user_record_decode(rec, sizeof rec, &back), -1);
}
END_TEST

START_TEST(test_names_and_roles)
{
	ck_assert(kv_user_name_ok("alice", 5));
	ck_assert(kv_user_name_ok("ops.team-1_x", 12));
	ck_assert(!kv_user_name_ok("", 0));
	ck_assert(!kv_user_name_ok("a/b", 3));
	ck_assert(!kv_user_name_ok("a b", 3));
	ck_assert(!kv_user_name_ok("a\0b", 3));
	char long_name[KV_USER_NAME_MAX + 1];
	memset(long_name, 'a', sizeof long_name);
	ck_assert(kv_user_name_ok(long_name, KV_USER_NAME_MAX));
	ck_assert(!kv_user_name_ok(long_name, KV_USER_NAME_MAX + 1));
	ck_assert_int_eq(kv_user_role_parse("ro", 2), KV_USER_RO);
	ck_assert_int_eq(kv_user_role_parse("rw", 2), KV_USER_RW);
	ck_assert_int_eq(kv_user_role_parse("admin", 5), 0);
	ck_assert_str_eq(kv_user_role_name(KV_USER_RW), "rw");
}
END_TEST

START_TEST(test_cost_of_one_check)
{
	struct kv_user u;
	ck_assert_int_eq(kv_user_make(KV_USER_RW, "pw", 2, KV_USER_ITERATIONS, &u), 0);
	struct timespec t0, t1;
	double best = 1e9;
	for (int i = 0; i < 5; i++) {
		clock_gettime(CLOCK_MONOTONIC, &t0);
		ck_assert(kv_user_password_ok(&u, "pw", 2));
		clock_gettime(CLOCK_MONOTONIC, &t1);
		double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
			    (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
		if (ms < best)
			best = ms;
	}
	fprintf(stderr,
		"test_user: one password check, %u PBKDF2-HMAC-SHA256 iterations: "
		"%.1f ms (best of 5)\n",
		KV_USER_ITERATIONS, best);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("kv_user");
	TCase *tc = tcase_create("users");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_password_checks);
	tcase_add_test(tc, test_records);
	tcase_add_test(tc, test_names_and_roles);
	tcase_add_test(tc, test_cost_of_one_check);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
