/* test_readindex.c — ReadIndex (thesis 6.4): reads pending together share one heartbeat
 * round; a read is released only once a majority acknowledged a round sent after it arrived;
 * a new leader serves reads only after committing an entry of its term; reads are dropped
 * when leadership is lost; a single voter confirms at once; followers refuse. */
#include <check.h>

#include "raft/raft_impl.h"
#include "tests/unit/raft/raft_test_helper.h"

static bool has_read(struct tc_node *nd, uint64_t ctx, raft_index *index)
{
	for (size_t i = 0; i < nd->n_reads; i++)
		if (nd->read_ctx[i] == ctx) {
			if (index)
				*index = nd->read_idx[i];
			return true;
		}
	return false;
}

START_TEST(test_batched_round)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	tc_init(&c, 3, 21);
	tc_elect(&c, 1);
	tc_propose(&c, 1, "x");
	tc_stabilize(&c);
	raft_index commit = raft_commit_of(tc_r(&c, 1));
	uint64_t hb = c.sent_by_type[RAFT_MSG_HEARTBEAT];
	for (uint64_t ctx = 100; ctx < 110; ctx++)
		ck_assert_int_eq(raft_read_index(tc_r(&c, 1), ctx), 0);
	ck_assert(!has_read(&c.nodes[1], 100, NULL)); /* nothing before a round trip */
	tc_stabilize(&c);
	/* ten reads, one heartbeat per follower */
	ck_assert_uint_eq(c.sent_by_type[RAFT_MSG_HEARTBEAT] - hb, 2);
	for (uint64_t ctx = 100; ctx < 110; ctx++) {
		raft_index idx;
		ck_assert(has_read(&c.nodes[1], ctx, &idx));
		ck_assert_uint_eq(idx, commit);
	}
	tc_free(&c);
}
END_TEST

START_TEST(test_needs_majority)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	tc_init(&c, 5, 22);
	tc_elect(&c, 1);
	/* only node 2 answers: 2 of 5 is no majority */
	c.cut[3][1] = c.cut[4][1] = c.cut[5][1] = true;
	ck_assert_int_eq(raft_read_index(tc_r(&c, 1), 7), 0);
	tc_stabilize(&c);
	ck_assert(!has_read(&c.nodes[1], 7, NULL));
	/* a later round answered by node 3 as well confirms it (rounds are cumulative) */
	c.cut[3][1] = false;
	tc_tick_all(&c, 1);
	ck_assert(has_read(&c.nodes[1], 7, NULL));
	tc_free(&c);
}
END_TEST

START_TEST(test_new_leader_waits_for_term_commit)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	tc_init(&c, 3, 23);
	struct raft *r = tc_r(&c, 1);
	while (raft_role_of(r) == RAFT_FOLLOWER)
		tc_tick(&c, 1);
	/* deliver the vote round, but nothing else yet */
	while (raft_role_of(r) != RAFT_LEADER) {
		for (raft_id i = 1; i <= 3; i++)
			tc_ready(&c, i);
		tc_deliver_one(&c);
	}
	ck_assert_uint_lt(raft_commit_of(r), raft_last_index(r)); /* no-op not committed */
	ck_assert_int_eq(raft_read_index(r, 9), 0);
	tc_ready(&c, 1);
	ck_assert(!has_read(&c.nodes[1], 9, NULL));
	tc_stabilize(&c);
	raft_index idx;
	ck_assert(has_read(&c.nodes[1], 9, &idx));
	ck_assert_uint_eq(idx, raft_last_index(r)); /* at least the no-op */
	tc_free(&c);
}
END_TEST

START_TEST(test_dropped_on_leadership_loss)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	tc_init(&c, 3, 24);
	tc_elect(&c, 1);
	tc_isolate(&c, 1, true);
	ck_assert_int_eq(raft_read_index(tc_r(&c, 1), 42), 0);
	for (int t = 0; t < 25; t++) {
		tc_tick(&c, 1);
		tc_stabilize(&c);
	}
	ck_assert_int_eq(raft_role_of(tc_r(&c, 1)), RAFT_FOLLOWER);
	ck_assert(!has_read(&c.nodes[1], 42, NULL));
	ck_assert_uint_eq(c.nodes[1].n_dropped, 1);
	ck_assert_uint_eq(c.nodes[1].dropped_ctx[0], 42);
	ck_assert_int_eq(raft_read_index(tc_r(&c, 1), 43), RAFT_ENOTLEADER);
	tc_free(&c);
}
END_TEST

START_TEST(test_single_voter_immediate)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	tc_init(&c, 1, 25);
	tc_elect(&c, 1);
	ck_assert_int_eq(raft_read_index(tc_r(&c, 1), 5), 0);
	tc_ready(&c, 1);
	ck_assert(has_read(&c.nodes[1], 5, NULL));
	tc_free(&c);
}
END_TEST

START_TEST(test_follower_refuses)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	tc_init(&c, 3, 26);
	tc_elect(&c, 1);
	ck_assert_int_eq(raft_read_index(tc_r(&c, 2), 1), RAFT_ENOTLEADER);
	tc_free(&c);
}
END_TEST

/* A slow state machine (raft_set_apply_limit): committed entries come out no faster than the
 * limit allows, has_ready does not report what the limit holds back, and a read state still
 * comes out once confirmed, with an index above applied: the caller's wait is what keeps it
 * linearizable. */
START_TEST(test_apply_limit_lags_reads)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	tc_init(&c, 3, 25);
	tc_elect(&c, 1);
	tc_stabilize(&c);
	struct raft *r = tc_r(&c, 1);
	raft_index before = c.nodes[1].applied;
	ck_assert_uint_eq(before, raft_commit_of(r));
	raft_set_apply_limit(r, 0);
	for (int i = 0; i < 5; i++)
		tc_propose(&c, 1, "v");
	tc_stabilize(&c);
	raft_index commit = raft_commit_of(r);
	ck_assert_uint_eq(commit, before + 5);
	ck_assert_uint_eq(c.nodes[1].applied, before); /* held back */
	ck_assert_uint_eq(raft_applied_of(r), before);
	ck_assert(!raft_has_ready(r));
	ck_assert_int_eq(raft_read_index(r, 31), 0);
	tc_stabilize(&c);
	raft_index idx;
	ck_assert(has_read(&c.nodes[1], 31, &idx));
	ck_assert_uint_eq(idx, commit);
	ck_assert_uint_lt(raft_applied_of(r), idx); /* the read came out ahead of apply */
	raft_set_apply_limit(r, 2);
	ck_assert(raft_has_ready(r));
	tc_ready(&c, 1);
	ck_assert_uint_eq(c.nodes[1].applied, before + 2);
	ck_assert(!raft_has_ready(r)); /* the limit is spent */
	raft_set_apply_limit(r, RAFT_APPLY_ALL);
	tc_stabilize(&c);
	ck_assert_uint_eq(c.nodes[1].applied, commit);
	ck_assert_uint_eq(raft_applied_of(r), commit);
	tc_free(&c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("raft_readindex");
	TCase *tc = tcase_create("readindex");
	tcase_add_test(tc, test_batched_round);
	tcase_add_test(tc, test_needs_majority);
	tcase_add_test(tc, test_new_leader_waits_for_term_commit);
	tcase_add_test(tc, test_dropped_on_leadership_loss);
	tcase_add_test(tc, test_single_voter_immediate);
	tcase_add_test(tc, test_follower_refuses);
	tcase_add_test(tc, test_apply_limit_lags_reads);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
