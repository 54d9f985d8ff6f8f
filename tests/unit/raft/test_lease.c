/* test_lease.c — leader leases (raft/lease.c): a leader answered by a quorum within the lease
 * serves reads at once; the lease runs out lease ticks after the round's send tick; a transfer
 * stops it (for the rest of the term once TIMEOUT_NOW left); a leader that steps down has
 * none; none before an entry of the leader's term has committed; followers that heard from a
 * leader within an election timeout (or restarted) refuse votes, but not a transfer's; the
 * lease runs on the clock (raft_advance_clock), which runs no timer, and timer ticks do not
 * move the clock. */
#include <check.h>

#include "raft/raft_impl.h"
#include "tests/unit/raft/raft_test_helper.h"

#define E 10 /* raft_config_default's election_ticks */

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

/* n voters with leases; past the restart stickiness (as if they had ticked E times). */
static void lease_init(struct tc *c, size_t n, uint64_t seed)
{
	tc_init(c, n, seed);
	for (raft_id i = 1; i <= n; i++) {
		c->nodes[i].cfg.lease_reads = true;
		tc_restart(c, i);
		ck_assert_uint_eq(tc_r(c, i)->heard_elapsed, 0); /* a restart is sticky */
		tc_r(c, i)->heard_elapsed = E;
	}
}

/* Elects 1, commits its no-op, and has one heartbeat round answered. */
static void lease_leader(struct tc *c)
{
	tc_elect(c, 1);
	tc_propose(c, 1, "x");
	tc_stabilize(c);
	tc_tick_all(c, 1);
}

/* lease_init and lease_leader: node 1 leads and holds its lease. */
static struct raft *lease_held_leader(struct tc *c, size_t n, uint64_t seed)
{
	lease_init(c, n, seed);
	lease_leader(c);
	struct raft *r = tc_r(c, 1);
	ck_assert(raft_lease_held(r));
	return r;
}

START_TEST(test_lease_length)
{
	ck_assert_uint_eq(raft_lease_ticks(10), 8);
	ck_assert_uint_eq(raft_lease_ticks(100), 89);
	ck_assert_uint_eq(raft_lease_ticks(2), 0);
	for (uint32_t e = 1; e < 1000; e++)
		ck_assert_uint_lt(raft_lease_ticks(e), e);
}
END_TEST

START_TEST(test_lease_read_at_once)
{
	static struct tc c;
	struct raft *r = lease_held_leader(&c, 3, 41);
	uint64_t hb = c.sent_by_type[RAFT_MSG_HEARTBEAT];
	ck_assert_int_eq(raft_read_index(r, 7), 0);
	tc_ready(&c, 1); /* no delivery: answered from the lease */
	raft_index idx;
	ck_assert(has_read(&c.nodes[1], 7, &idx));
	ck_assert_uint_eq(idx, raft_commit_of(r));
	ck_assert_uint_eq(c.sent_by_type[RAFT_MSG_HEARTBEAT], hb); /* no round */
	/* followers hold no lease */
	ck_assert(!raft_lease_held(tc_r(&c, 2)));
	ck_assert_int_eq(raft_read_index(tc_r(&c, 2), 8), RAFT_ENOTLEADER);
	tc_free(&c);
}
END_TEST

START_TEST(test_lease_expires)
{
	static struct tc c;
	struct raft *r = lease_held_leader(&c, 3, 42);
	/* the answered round left at the tick before: lease until that tick + 8 */
	tc_isolate(&c, 1, true);
	for (int k = 1; k < (int)raft_lease_ticks(E); k++) {
		tc_tick(&c, 1);
		tc_stabilize(&c);
		ck_assert_msg(raft_lease_held(r), "lease gone after %d ticks", k);
	}
	tc_tick(&c, 1);
	tc_stabilize(&c);
	ck_assert(!raft_lease_held(r));
	ck_assert_int_eq(raft_role_of(r), RAFT_LEADER); /* CheckQuorum has not fired yet */
	/* a read now needs a round, which the isolated leader cannot complete */
	ck_assert_int_eq(raft_read_index(r, 9), 0);
	tc_stabilize(&c);
	ck_assert(!has_read(&c.nodes[1], 9, NULL));
	/* answers renew it */
	tc_isolate(&c, 1, false);
	tc_tick_all(&c, 1);
	ck_assert(has_read(&c.nodes[1], 9, NULL));
	ck_assert(raft_lease_held(r));
	tc_free(&c);
}
END_TEST

START_TEST(test_lease_needs_quorum)
{
	static struct tc c;
	struct raft *r = lease_held_leader(&c, 5, 43);
	/* only node 2 answers from now on: 2 of 5 */
	c.cut[3][1] = c.cut[4][1] = c.cut[5][1] = true;
	for (int k = 0; k < (int)raft_lease_ticks(E); k++)
		tc_tick_all(&c, 1);
	ck_assert(!raft_lease_held(r));
	c.cut[3][1] = false; /* 3 of 5 */
	tc_tick_all(&c, 1);
	ck_assert(raft_lease_held(r));
	tc_free(&c);
}
END_TEST

START_TEST(test_transfer_stops_lease)
{
	static struct tc c;
	struct raft *r = lease_held_leader(&c, 3, 44);
	/* the target does not get the TIMEOUT_NOW: the transfer aborts after E ticks */
	c.cut[1][2] = true;
	ck_assert_int_eq(raft_transfer_leader(r, 2), 0);
	ck_assert(!raft_lease_held(r)); /* at once */
	ck_assert_int_eq(raft_read_index(r, 11), 0);
	tc_ready(&c, 1);
	ck_assert(!has_read(&c.nodes[1], 11, NULL)); /* a round, not the lease */
	tc_stabilize(&c);
	ck_assert(has_read(&c.nodes[1], 11, NULL)); /* node 3 answered it */
	c.cut[1][2] = false;
	for (int k = 0; k < E + 1; k++)
		tc_tick_all(&c, 1);
	ck_assert_uint_eq(r->transfer_target, 0); /* aborted */
	ck_assert_int_eq(raft_role_of(r), RAFT_LEADER);
	/* a TIMEOUT_NOW left in this term: no lease until the next term */
	ck_assert(!raft_lease_held(r));
	tc_free(&c);
}
END_TEST

START_TEST(test_transfer_to_lagging_target_stops_lease)
{
	static struct tc c;
	lease_init(&c, 3, 45);
	lease_leader(&c);
	struct raft *r = tc_r(&c, 1);
	c.cut[1][3] = true; /* node 3 lags */
	tc_propose(&c, 1, "y");
	tc_stabilize(&c);
	tc_tick_all(&c, 1);
	ck_assert(raft_lease_held(r)); /* node 2 and the leader */
	ck_assert_int_eq(raft_transfer_leader(r, 3), 0);
	ck_assert_uint_eq(tc_queued(&c, RAFT_MSG_TIMEOUT_NOW, 1, 3), 0);
	ck_assert(!raft_lease_held(r)); /* no TIMEOUT_NOW yet, but a transfer under way */
	tc_free(&c);
}
END_TEST

START_TEST(test_step_down_stops_lease)
{
	static struct tc c;
	struct raft *r = lease_held_leader(&c, 3, 46);
	/* a higher term from a peer */
	struct raft_message m = {.type = RAFT_MSG_APPEND_RESP,
				 .from = 2,
				 .to = 1,
				 .term = raft_term_of(r) + 1};
	ck_assert_int_eq(raft_step(r, &m), 0);
	ck_assert_int_eq(raft_role_of(r), RAFT_FOLLOWER);
	ck_assert(!raft_lease_held(r));
	ck_assert_int_eq(raft_read_index(r, 12), RAFT_ENOTLEADER);
	tc_free(&c);
}
END_TEST

START_TEST(test_no_lease_before_term_commit)
{
	static struct tc c;
	lease_init(&c, 3, 47);
	lease_leader(&c);
	/* node 2 takes over; nodes 1 and 3 then hold their appends (not durable yet) */
	ck_assert_int_eq(raft_transfer_leader(tc_r(&c, 1), 2), 0);
	for (int guard = 0; guard < 10000 && raft_role_of(tc_r(&c, 2)) != RAFT_LEADER; guard++) {
		for (raft_id i = 1; i <= 3; i++)
			while (tc_ready(&c, i))
				;
		tc_deliver_one(&c);
	}
	struct raft *r = tc_r(&c, 2);
	ck_assert_int_eq(raft_role_of(r), RAFT_LEADER);
	c.nodes[1].manual = c.nodes[3].manual = true;
	tc_tick_all(&c, 2); /* heartbeat rounds answered; the no-op's acks held */
	ck_assert_uint_ne(raft_log_term_at(&r->log, raft_commit_of(r)), raft_term_of(r));
	ck_assert(!raft_lease_held(r));
	ck_assert_int_eq(raft_read_index(r, 13), 0);
	tc_ready(&c, 2);
	ck_assert(!has_read(&c.nodes[2], 13, NULL));
	/* the no-op commits: the lease holds, the waiting read is confirmed */
	tc_persist_done(&c, 1);
	tc_persist_done(&c, 3);
	c.nodes[1].manual = c.nodes[3].manual = false;
	tc_stabilize(&c);
	tc_tick_all(&c, 1);
	ck_assert_uint_eq(raft_log_term_at(&r->log, raft_commit_of(r)), raft_term_of(r));
	ck_assert(has_read(&c.nodes[2], 13, NULL));
	ck_assert(raft_lease_held(r));
	tc_free(&c);
}
END_TEST

static struct raft_message vote_msg(uint8_t type, raft_id from, raft_id to, raft_term term,
				    struct raft *voter)
{
	return (struct raft_message){.type = type,
				     .from = from,
				     .to = to,
				     .term = term,
				     .index = raft_last_index(voter) + 10,
				     .log_term = raft_term_of(voter) + 1};
}

START_TEST(test_follower_sticky)
{
	static struct tc c;
	lease_init(&c, 3, 48);
	lease_leader(&c);
	tc_drop_queue(&c);
	struct raft *f = tc_r(&c, 3);
	raft_term t = raft_term_of(f);
	/* heard from the leader: refuses (pre)votes at a higher term, answering nothing */
	struct raft_message pv = vote_msg(RAFT_MSG_PREVOTE, 2, 3, t + 1, f);
	ck_assert_int_eq(raft_step(f, &pv), 0);
	struct raft_message v = vote_msg(RAFT_MSG_VOTE, 2, 3, t + 1, f);
	ck_assert_int_eq(raft_step(f, &v), 0);
	tc_ready(&c, 3);
	ck_assert_uint_eq(tc_queued(&c, RAFT_MSG_PREVOTE_RESP, 3, 2), 0);
	ck_assert_uint_eq(tc_queued(&c, RAFT_MSG_VOTE_RESP, 3, 2), 0);
	ck_assert_uint_eq(raft_term_of(f), t);
	/* a stray answer of a higher term takes the term but not the stickiness */
	struct raft_message stray = {.type = RAFT_MSG_HEARTBEAT_RESP,
				     .from = 2,
				     .to = 3,
				     .term = t + 1};
	ck_assert_int_eq(raft_step(f, &stray), 0);
	ck_assert_uint_eq(raft_term_of(f), t + 1);
	ck_assert_uint_eq(raft_leader_of(f), 0);
	v.term = t + 1;
	ck_assert_int_eq(raft_step(f, &v), 0);
	tc_ready(&c, 3);
	ck_assert_uint_eq(f->vote, 0); /* not granted */
	/* after an election timeout without the leader: granted */
	for (int k = 0; k < E; k++)
		raft_tick(f);
	ck_assert_int_eq(raft_step(f, &v), 0);
	tc_ready(&c, 3);
	ck_assert_uint_eq(f->vote, 2);
	tc_free(&c);
}
END_TEST

START_TEST(test_restart_sticky_transfer_not)
{
	static struct tc c;
	lease_init(&c, 3, 49);
	lease_leader(&c);
	tc_drop_queue(&c);
	tc_restart(&c, 3);
	struct raft *f = tc_r(&c, 3);
	raft_term t = raft_term_of(f);
	ck_assert(raft_lease_sticky(f));
	struct raft_message v = vote_msg(RAFT_MSG_VOTE, 2, 3, t + 1, f);
	ck_assert_int_eq(raft_step(f, &v), 0);
	tc_ready(&c, 3);
	ck_assert_uint_eq(raft_term_of(f), t); /* ignored */
	ck_assert_uint_ne(f->vote, 2);
	/* a transfer's campaign (the leader sent TIMEOUT_NOW and stopped its lease) */
	v.context = RAFT_CTX_TRANSFER;
	ck_assert_int_eq(raft_step(f, &v), 0);
	tc_ready(&c, 3);
	ck_assert_uint_eq(f->vote, 2);
	tc_free(&c);
}
END_TEST

START_TEST(test_quiesce_drops_lease)
{
	static struct tc c;
	tc_init(&c, 3, 50);
	for (raft_id i = 1; i <= 3; i++) {
		c.nodes[i].cfg.lease_reads = true;
		c.nodes[i].cfg.quiesce_ticks = 3;
		tc_restart(&c, i);
		tc_r(&c, i)->heard_elapsed = E;
	}
	lease_leader(&c);
	struct raft *r = tc_r(&c, 1);
	ck_assert(raft_lease_held(r));
	for (int k = 0; k < 5 && !raft_quiesced(r); k++)
		tc_tick_all(&c, 1);
	ck_assert(raft_quiesced(r));
	ck_assert(!raft_lease_held(r));
	/* a read wakes it and takes a round */
	ck_assert_int_eq(raft_read_index(r, 14), 0);
	ck_assert(!raft_quiesced(r));
	tc_ready(&c, 1);
	ck_assert(!has_read(&c.nodes[1], 14, NULL));
	tc_stabilize(&c);
	ck_assert(has_read(&c.nodes[1], 14, NULL));
	ck_assert(raft_lease_held(r)); /* the round after waking renews it */
	tc_free(&c);
}
END_TEST

/* The clock (raft_advance_clock) and the timers (raft_tick_timers) are apart: a driver with
 * leases advances the clock to real time after a stall but gives the timers one tick. */
START_TEST(test_clock_runs_no_timer)
{
	static struct tc c;
	lease_init(&c, 3, 52);
	lease_leader(&c);
	tc_stabilize(&c);
	uint64_t sent = 0;
	for (int t = 0; t < 16; t++)
		sent += c.sent_by_type[t];
	/* the whole cluster, the leader cut off: 10 election timeouts of clock only */
	tc_isolate(&c, 1, true);
	for (raft_id i = 1; i <= 3; i++) {
		struct raft *r = tc_r(&c, i);
		raft_term t = raft_term_of(r);
		uint32_t heard = r->heard_elapsed;
		raft_advance_clock(r, 10 * E);
		ck_assert(!raft_has_ready(r)); /* nothing to send, persist or apply */
		ck_assert_uint_eq(raft_term_of(r), t);
		ck_assert_uint_eq(r->heard_elapsed, heard); /* a follower stays sticky */
	}
	tc_stabilize(&c);
	uint64_t sent_after = 0;
	for (int t = 0; t < 16; t++)
		sent_after += c.sent_by_type[t];
	/* no campaign, no heartbeat, no CheckQuorum */
	ck_assert_uint_eq(sent_after, sent);
	ck_assert_int_eq(raft_role_of(tc_r(&c, 1)), RAFT_LEADER);
	ck_assert_int_eq(raft_role_of(tc_r(&c, 2)), RAFT_FOLLOWER);
	ck_assert_int_eq(raft_role_of(tc_r(&c, 3)), RAFT_FOLLOWER);
	ck_assert(raft_lease_sticky(tc_r(&c, 2)));
	/* the clock alone ended the lease */
	ck_assert(!raft_lease_held(tc_r(&c, 1)));
	/* the timers still run when ticked: node 2 campaigns within 2 E timer ticks (its sticky
	 * count first reaches E) */
	for (int k = 0; k < 2 * E && raft_role_of(tc_r(&c, 2)) == RAFT_FOLLOWER; k++)
		raft_tick_timers(tc_r(&c, 2));
	ck_assert_int_ne(raft_role_of(tc_r(&c, 2)), RAFT_FOLLOWER);
	tc_free(&c);
}
END_TEST

START_TEST(test_lease_runs_on_clock_not_timers)
{
	static struct tc c;
	struct raft *r = lease_held_leader(&c, 3, 53);
	uint32_t L = raft_lease_ticks(E);
	/* timer ticks (fewer than E: CheckQuorum would step the cut-off leader down) do not
	 * move the clock: the lease is where it was */
	tc_isolate(&c, 1, true);
	uint64_t now = r->now;
	uint64_t hb = c.sent_by_type[RAFT_MSG_HEARTBEAT];
	for (uint32_t k = 0; k < L + 1; k++) {
		raft_tick_timers(r);
		tc_stabilize(&c);
	}
	ck_assert_uint_eq(r->now, now);
	ck_assert_uint_gt(c.sent_by_type[RAFT_MSG_HEARTBEAT], hb); /* the timers ran */
	ck_assert_int_eq(raft_role_of(r), RAFT_LEADER);
	ck_assert(raft_lease_held(r));
	/* the answered round left at the tick before now: L - 1 clock ticks keep the lease,
	 * one more ends it, with no timer tick between */
	raft_advance_clock(r, L - 1);
	ck_assert(raft_lease_held(r));
	raft_advance_clock(r, 1);
	ck_assert(!raft_lease_held(r));
	ck_assert_int_eq(raft_role_of(r), RAFT_LEADER);
	ck_assert_int_eq(raft_read_index(r, 15), 0);
	tc_ready(&c, 1);
	ck_assert(!has_read(&c.nodes[1], 15, NULL)); /* a round, which cannot complete */
	tc_free(&c);
}
END_TEST

START_TEST(test_off_by_default)
{
	static struct tc c;
	tc_init(&c, 3, 51);
	tc_elect(&c, 1);
	tc_propose(&c, 1, "x");
	tc_stabilize(&c);
	tc_tick_all(&c, 1);
	ck_assert(!raft_lease_held(tc_r(&c, 1)));
	tc_free(&c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("raft_lease");
	TCase *tc = tcase_create("lease");
	tcase_add_test(tc, test_lease_length);
	tcase_add_test(tc, test_lease_read_at_once);
	tcase_add_test(tc, test_lease_expires);
	tcase_add_test(tc, test_lease_needs_quorum);
	tcase_add_test(tc, test_transfer_stops_lease);
	tcase_add_test(tc, test_transfer_to_lagging_target_stops_lease);
	tcase_add_test(tc, test_step_down_stops_lease);
	tcase_add_test(tc, test_no_lease_before_term_commit);
	tcase_add_test(tc, test_follower_sticky);
	tcase_add_test(tc, test_restart_sticky_transfer_not);
	tcase_add_test(tc, test_quiesce_drops_lease);
	tcase_add_test(tc, test_clock_runs_no_timer);
	tcase_add_test(tc, test_lease_runs_on_clock_not_timers);
	tcase_add_test(tc, test_off_by_default);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
