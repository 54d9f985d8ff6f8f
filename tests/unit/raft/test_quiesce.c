/* test_quiesce.c — quiescence (raft/quiesce.c): an idle, fully replicated group goes silent;
 * a proposal or a read wakes it and is served; a follower whose log differs does not sleep;
 * followers of a dead leader sleep until the failure detector (raft_report_unreachable) wakes
 * them, then elect; a leader deposed while asleep serves no read. */
#include <check.h>

#include "raft/raft_impl.h"
#include "tests/unit/raft/raft_test_helper.h"

#define QUIESCE_TICKS 3

/* 3 nodes with quiescence; node 1 leads, an entry committed everywhere. */
static void setup(struct tc *c, uint64_t seed)
{
	tc_init(c, 3, seed);
	for (raft_id i = 1; i <= 3; i++) {
		c->nodes[i].cfg.quiesce_ticks = QUIESCE_TICKS;
		tc_restart(c, i);
	}
	tc_elect(c, 1);
	tc_propose(c, 1, "x");
	tc_stabilize(c);
}

static uint64_t sent(const struct tc *c)
{
	uint64_t n = 0;
	for (int t = 0; t < 16; t++)
		n += c->sent_by_type[t];
	return n;
}

static bool all_quiesced(struct tc *c)
{
	for (raft_id i = 1; i <= c->n; i++)
		if (!c->nodes[i].down && !raft_quiesced(tc_r(c, i)))
			return false;
	return true;
}

START_TEST(test_idle_group_goes_silent)
{
	static struct tc c;
	setup(&c, 31);
	tc_tick_all(&c, QUIESCE_TICKS + 2);
	ck_assert(all_quiesced(&c));
	ck_assert_uint_eq(c.sent_by_type[RAFT_MSG_QUIESCE], 2);
	uint64_t before = sent(&c);
	tc_tick_all(&c, 100); /* ten election timeouts: nothing at all is sent */
	ck_assert_uint_eq(sent(&c), before);
	ck_assert(all_quiesced(&c));
	ck_assert_int_eq(raft_role_of(tc_r(&c, 1)), RAFT_LEADER);
	ck_assert(raft_idle(tc_r(&c, 2)));
	tc_free(&c);
}
END_TEST

START_TEST(test_proposal_wakes_and_commits)
{
	static struct tc c;
	setup(&c, 32);
	tc_tick_all(&c, QUIESCE_TICKS + 2);
	ck_assert(all_quiesced(&c));
	raft_index idx = tc_propose(&c, 1, "y");
	ck_assert_uint_gt(idx, 0);
	ck_assert(!raft_quiesced(tc_r(&c, 1)));
	tc_stabilize(&c);
	for (raft_id i = 1; i <= 3; i++)
		ck_assert_uint_ge(raft_commit_of(tc_r(&c, i)), idx);
	/* and it goes back to sleep */
	tc_tick_all(&c, QUIESCE_TICKS + 2);
	ck_assert(all_quiesced(&c));
	tc_free(&c);
}
END_TEST

START_TEST(test_read_wakes_and_is_confirmed)
{
	static struct tc c;
	setup(&c, 33);
	tc_tick_all(&c, QUIESCE_TICKS + 2);
	ck_assert(all_quiesced(&c));
	ck_assert_int_eq(raft_read_index(tc_r(&c, 1), 77), 0);
	ck_assert(!raft_quiesced(tc_r(&c, 1)));
	tc_stabilize(&c);
	ck_assert_uint_eq(c.nodes[1].n_reads, 1);
	ck_assert_uint_eq(c.nodes[1].read_ctx[0], 77);
	tc_free(&c);
}
END_TEST

START_TEST(test_follower_with_other_log_stays_awake)
{
	static struct tc c;
	setup(&c, 34);
	struct raft *f = tc_r(&c, 2);
	raft_index last = raft_last_index(f);
	struct raft_message m = {
		.type = RAFT_MSG_QUIESCE,
		.from = 1,
		.to = 2,
		.term = raft_term_of(f),
		.index = last + 3, /* the leader holds more than this follower */
		.log_term = raft_term_of(f),
		.commit = raft_commit_of(f),
	};
	size_t q = tc_queued(&c, RAFT_MSG_HEARTBEAT_RESP, 2, 1);
	ck_assert_int_eq(raft_step(f, &m), 0);
	ck_assert(!raft_quiesced(f));
	tc_ready(&c, 2);
	/* it answers as to a heartbeat, which wakes the leader to repair it */
	ck_assert_uint_eq(tc_queued(&c, RAFT_MSG_HEARTBEAT_RESP, 2, 1), q + 1);
	tc_free(&c);
}
END_TEST

START_TEST(test_dead_leader_followers_wake_and_elect)
{
	static struct tc c;
	setup(&c, 35);
	tc_tick_all(&c, QUIESCE_TICKS + 2);
	ck_assert(all_quiesced(&c));
	tc_crash(&c, 1);
	tc_tick_all(&c, 100); /* asleep: nobody campaigns without a word from the detector */
	ck_assert_int_eq(raft_role_of(tc_r(&c, 2)), RAFT_FOLLOWER);
	ck_assert_int_eq(raft_role_of(tc_r(&c, 3)), RAFT_FOLLOWER);
	ck_assert(raft_quiesced(tc_r(&c, 2)) && raft_quiesced(tc_r(&c, 3)));
	raft_report_unreachable(tc_r(&c, 2), 1);
	raft_report_unreachable(tc_r(&c, 3), 1);
	ck_assert(!raft_quiesced(tc_r(&c, 2)) && !raft_quiesced(tc_r(&c, 3)));
	/* the lease is over at once: a leader within the random part of a timeout (plus split
	 * votes, bounded generously) */
	int t = 0, n = 0;
	while (t < 10 * (int)c.nodes[2].cfg.election_ticks && (tc_leader(&c, &n), n == 0)) {
		tc_tick_all(&c, 1);
		t++;
	}
	ck_assert_int_eq(n, 1);
	ck_assert_int_le(t, 2 * (int)c.nodes[2].cfg.election_ticks);
	tc_free(&c);
}
END_TEST

START_TEST(test_leader_deposed_asleep_serves_no_read)
{
	static struct tc c;
	setup(&c, 36);
	tc_tick_all(&c, QUIESCE_TICKS + 2);
	ck_assert(all_quiesced(&c));
	/* node 1 is cut off; the others' detector reports it, they elect node 2 or 3 */
	tc_isolate(&c, 1, true);
	raft_report_unreachable(tc_r(&c, 2), 1);
	raft_report_unreachable(tc_r(&c, 3), 1);
	for (int t = 0; t < 200; t++) {
		tc_tick(&c, 2);
		tc_tick(&c, 3);
		tc_stabilize(&c);
	}
	ck_assert(raft_role_of(tc_r(&c, 2)) == RAFT_LEADER ||
		  raft_role_of(tc_r(&c, 3)) == RAFT_LEADER);
	/* node 1 still believes it leads (asleep, it noticed nothing); a read wakes it */
	ck_assert_int_eq(raft_role_of(tc_r(&c, 1)), RAFT_LEADER);
	ck_assert_int_eq(raft_read_index(tc_r(&c, 1), 99), 0);
	tc_stabilize(&c);
	ck_assert_uint_eq(c.nodes[1].n_reads, 0); /* no majority answers the round */
	tc_isolate(&c, 1, false);
	tc_tick_all(&c, 20);
	ck_assert_int_ne(raft_role_of(tc_r(&c, 1)), RAFT_LEADER);
	ck_assert_uint_eq(c.nodes[1].n_reads, 0);
	ck_assert_uint_eq(c.nodes[1].n_dropped, 1);
	ck_assert_uint_eq(c.nodes[1].dropped_ctx[0], 99);
	tc_free(&c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("raft_quiesce");
	TCase *tc = tcase_create("quiesce");
	tcase_add_test(tc, test_idle_group_goes_silent);
	tcase_add_test(tc, test_proposal_wakes_and_commits);
	tcase_add_test(tc, test_read_wakes_and_is_confirmed);
	tcase_add_test(tc, test_follower_with_other_log_stays_awake);
	tcase_add_test(tc, test_dead_leader_followers_wake_and_elect);
	tcase_add_test(tc, test_leader_deposed_asleep_serves_no_read);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
