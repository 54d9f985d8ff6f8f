/* test_transfer.c — leadership transfer (thesis 3.10): refused to learners and strangers; an
 * up-to-date target takes over in the next term; a lagging target is caught up first while
 * proposals are refused; a transfer that cannot finish is aborted after an election timeout. */
#include <check.h>

#include "raft/raft_impl.h"
#include "tests/unit/raft/raft_test_helper.h"

START_TEST(test_refusals)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	tc_init_full(&c, 3, 1, 31);
	tc_elect(&c, 1);
	ck_assert_int_eq(raft_transfer_leader(tc_r(&c, 1), 4), RAFT_ELEARNER);
	ck_assert_int_eq(raft_transfer_leader(tc_r(&c, 1), 9), RAFT_ELEARNER);
	ck_assert_int_eq(raft_transfer_leader(tc_r(&c, 1), 1), RAFT_EINVAL);
	ck_assert_int_eq(raft_transfer_leader(tc_r(&c, 2), 3), RAFT_ENOTLEADER);
	tc_free(&c);
}
END_TEST

START_TEST(test_transfer_up_to_date)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	tc_init(&c, 3, 32);
	tc_elect(&c, 1);
	ck_assert_int_eq(raft_transfer_leader(tc_r(&c, 1), 2), 0);
	ck_assert_int_eq(raft_transfer_leader(tc_r(&c, 1), 3), RAFT_EBUSY);
	tc_stabilize(&c);
	int n;
	ck_assert_uint_eq(tc_leader(&c, &n), 2);
	ck_assert_int_eq(n, 1);
	ck_assert_uint_eq(raft_term_of(tc_r(&c, 2)), 2);
	ck_assert_uint_eq(raft_leader_of(tc_r(&c, 1)), 2);
	tc_free(&c);
}
END_TEST

START_TEST(test_transfer_to_lagging)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	tc_init(&c, 3, 33);
	tc_elect(&c, 1);
	tc_isolate(&c, 3, true);
	for (int i = 0; i < 20; i++)
		tc_propose(&c, 1, "x");
	tc_stabilize(&c);
	tc_isolate(&c, 3, false);
	ck_assert_uint_lt(raft_last_index(tc_r(&c, 3)), raft_last_index(tc_r(&c, 1)));
	ck_assert_int_eq(raft_transfer_leader(tc_r(&c, 1), 3), 0);
	ck_assert_uint_eq(tc_propose(&c, 1, "refused"), 0);
	struct raft_buf b = {NULL, 0};
	ck_assert_int_eq(raft_propose(tc_r(&c, 1), &b, NULL, NULL), RAFT_ETRANSFER);
	/* no TIMEOUT_NOW before the target has everything */
	tc_ready(&c, 1);
	ck_assert_uint_eq(tc_queued(&c, RAFT_MSG_TIMEOUT_NOW, 1, 3), 0);
	tc_stabilize(&c);
	tc_tick_all(&c, 2);
	ck_assert_uint_eq(tc_leader(&c, NULL), 3);
	ck_assert_uint_eq(c.nodes[3].applied_normal, 20);
	tc_free(&c);
}
END_TEST

START_TEST(test_transfer_aborts)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	tc_init(&c, 3, 34);
	tc_elect(&c, 1);
	tc_isolate(&c, 3, true);
	tc_propose(&c, 1, "x");
	tc_stabilize(&c);
	ck_assert_int_eq(raft_transfer_leader(tc_r(&c, 1), 3), 0);
	ck_assert_uint_eq(tc_propose(&c, 1, "refused"), 0);
	for (int t = 0; t < 10; t++) {
		tc_tick(&c, 1);
		tc_tick(&c, 2);
		tc_stabilize(&c);
	}
	ck_assert_uint_eq(tc_leader(&c, NULL), 1);
	ck_assert_uint_ne(tc_propose(&c, 1, "accepted"), 0);
	tc_free(&c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("raft_transfer");
	TCase *tc = tcase_create("transfer");
	tcase_add_test(tc, test_refusals);
	tcase_add_test(tc, test_transfer_up_to_date);
	tcase_add_test(tc, test_transfer_to_lagging);
	tcase_add_test(tc, test_transfer_aborts);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
