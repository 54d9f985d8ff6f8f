/* test_progress.c — the per-peer flow control: probe sends one message until answered;
 * replicate is bounded by the in-flight window (messages and bytes) and frees it on acks;
 * stale rejections are ignored; a rejection in replicate falls back to probing at match+1. */
#include <check.h>
#include <stdlib.h>

#include "raft/progress.h"

static struct raft_inflight buf[4];

static struct raft_progress fresh(raft_index next)
{
	struct raft_progress p = {.buf = buf, .cap = 4};
	raft_progress_reset(&p, 2, next);
	return p;
}

START_TEST(test_probe_one_at_a_time)
{
	struct raft_progress p = fresh(11);
	ck_assert(!raft_progress_paused(&p, 4, 0));
	raft_progress_sent(&p, 12, 10);
	ck_assert(raft_progress_paused(&p, 4, 0));
	ck_assert_uint_eq(p.next, 11); /* probing does not advance next optimistically */
	/* the answer to our probe (prev 10) with a hint moves next back */
	ck_assert(raft_progress_decr(&p, 10, 6));
	ck_assert_uint_eq(p.next, 6);
	ck_assert(!raft_progress_paused(&p, 4, 0));
	/* an answer about another prev is stale */
	ck_assert(!raft_progress_decr(&p, 10, 3));
	ck_assert_uint_eq(p.next, 6);
}
END_TEST

START_TEST(test_replicate_window)
{
	struct raft_progress p = fresh(1);
	ck_assert(raft_progress_update(&p, 5));
	raft_progress_become_replicate(&p);
	ck_assert_uint_eq(p.next, 6);
	raft_progress_sent(&p, 7, 100);
	raft_progress_sent(&p, 9, 100);
	raft_progress_sent(&p, 12, 100);
	ck_assert_uint_eq(p.next, 13);
	ck_assert(!raft_progress_paused(&p, 4, 1000));
	ck_assert(raft_progress_paused(&p, 3, 1000)); /* message limit */
	ck_assert(raft_progress_paused(&p, 4, 300));  /* byte limit */
	/* an ack of 9 frees the first two */
	ck_assert(raft_progress_update(&p, 9));
	ck_assert_uint_eq(p.count, 1);
	ck_assert_uint_eq(p.bytes, 100);
	ck_assert(!raft_progress_paused(&p, 3, 300));
	/* a stale rejection (at or below match) is ignored; a real one goes back to probe */
	ck_assert(!raft_progress_decr(&p, 8, 0));
	ck_assert(raft_progress_decr(&p, 12, 0));
	ck_assert_int_eq(p.state, RAFT_PR_PROBE);
	ck_assert_uint_eq(p.next, 10);
	ck_assert_uint_eq(p.count, 0);
}
END_TEST

START_TEST(test_free_first_and_snapshot)
{
	struct raft_progress p = fresh(1);
	raft_progress_become_replicate(&p);
	for (raft_index i = 1; i <= 4; i++)
		raft_progress_sent(&p, i, 1);
	ck_assert(raft_progress_paused(&p, 4, 0));
	raft_progress_free_first(&p);
	ck_assert(!raft_progress_paused(&p, 4, 0));
	raft_progress_become_snapshot(&p, 50, 3);
	ck_assert(raft_progress_paused(&p, 4, 0));
	ck_assert(raft_progress_update(&p, 50));
	raft_progress_become_probe(&p);
	ck_assert_uint_eq(p.next, 51);
	ck_assert_str_eq(raft_progress_state_name(p.state), "probe");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("raft_progress");
	TCase *tc = tcase_create("progress");
	tcase_add_test(tc, test_probe_one_at_a_time);
	tcase_add_test(tc, test_replicate_window);
	tcase_add_test(tc, test_free_first_and_snapshot);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
