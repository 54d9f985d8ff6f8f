/* test_recovery.c — recovering replicas (raft/recovery.c): a replica restarted empty with
 * hard_state.recovering never votes or campaigns, fences its term to the highest term of every
 * other voter with its vote spent, counts in no commit / ReadIndex quorum and is no transfer
 * target, and leaves recovery once it durably holds the leader's own-term commit. Also
 * raft_peer_reset: the leader probes the peer from scratch and resends what it lost. */
#include <check.h>

#include "raft/raft_impl.h"
#include "tests/unit/raft/raft_test_helper.h"

/* ------------------------------------------------------------------------------ fixture */

/* Node id loses its data directory: it restarts with no log, no state machine, the bootstrap
 * configuration (voters 1..n) and the recovering flag, as kvd would on an empty directory. */
static void wipe(struct tc *c, raft_id id)
{
	struct tc_node *nd = &c->nodes[id];
	if (!nd->down)
		tc_crash(c, id);
	tc_disk_truncate(nd, 1);
	nd->n_log = 0;
	nd->snap_index = 0;
	nd->snap_term = 0;
	memset(&nd->snap_conf, 0, sizeof(nd->snap_conf));
	for (raft_id v = 1; v <= c->n; v++)
		nd->snap_conf.voters[nd->snap_conf.n_voters++] = v;
	nd->hs = (struct raft_hard_state){.recovering = true};
	nd->applied = 0;
	nd->applied_normal = 0;
	nd->staged_len = 0;
	tc_start(c, id);
}

/* Messages of a type from one node queued now (to anyone). */
static size_t queued_from(struct tc *c, uint8_t type, raft_id from)
{
	size_t n = 0;
	for (size_t i = 0; i < c->qn; i++)
		if (c->q[i].m.type == type && c->q[i].m.from == from)
			n++;
	return n;
}

/* The answer of `to` to a message it just received: the first queued message of type. */
static const struct raft_message *answer(struct tc *c, uint8_t type, raft_id from, raft_id to)
{
	for (size_t i = 0; i < c->qn; i++)
		if (c->q[i].m.type == type && c->q[i].m.from == from && c->q[i].m.to == to)
			return &c->q[i].m;
	return NULL;
}

/* Manual persistence: lets the held messages that acknowledge nothing (rejections, heartbeat
 * answers) go, keeping back the acknowledgements and the raft_persisted() call. */
static void release_non_acks(struct tc *c, raft_id id)
{
	struct tc_node *nd = &c->nodes[id];
	size_t k = 0;
	for (size_t i = 0; i < nd->n_held; i++) {
		if (nd->held[i].m.type == RAFT_MSG_APPEND_RESP && !nd->held[i].m.reject) {
			nd->held[k++] = nd->held[i];
			continue;
		}
		tc_enqueue(c, &nd->held[i].m);
		tc_msg_free(&nd->held[i]);
	}
	nd->n_held = k;
}

/* 3 voters, 1 leads and committed a few entries. */
static void three_with_leader(struct tc *c, uint64_t seed)
{
	tc_init(c, 3, seed);
	tc_elect(c, 1);
	tc_propose(c, 1, "a");
	tc_propose(c, 1, "b");
	tc_stabilize(c);
	ck_assert_uint_eq(raft_commit_of(tc_r(c, 1)), raft_last_index(tc_r(c, 1)));
}

/* ------------------------------------------------------------------------------ votes */

START_TEST(test_never_grants_vote_or_prevote)
{
	static struct tc c; /* too big for a stack frame (see raft_test_helper.h) */
	three_with_leader(&c, 71);
	wipe(&c, 3);
	ck_assert(raft_recovering(tc_r(&c, 3)));
	for (int pre = 0; pre <= 1; pre++) {
		/* a candidate with a log as good as anyone's, in a higher term, with no leader
		 * known to node 3 (it just restarted): a normal follower would grant it */
		struct raft_message m = {
			.type = pre ? RAFT_MSG_PREVOTE : RAFT_MSG_VOTE,
			.from = 2,
			.to = 3,
			.term = raft_term_of(tc_r(&c, 2)) + 5,
			.index = raft_last_index(tc_r(&c, 2)),
			.log_term = raft_term_of(tc_r(&c, 2)),
		};
		tc_drop_queue(&c);
		ck_assert_int_eq(raft_step(tc_r(&c, 3), &m), 0);
		while (tc_ready(&c, 3))
			;
		const struct raft_message *resp =
			answer(&c, pre ? RAFT_MSG_PREVOTE_RESP : RAFT_MSG_VOTE_RESP, 3, 2);
		ck_assert_ptr_nonnull(resp);
		ck_assert(resp->reject);
		ck_assert(resp->recovering);
	}
	ck_assert_uint_eq(c.nodes[3].hs.vote == 2, 0);
	tc_free(&c);
}
END_TEST

START_TEST(test_never_campaigns)
{
	static struct tc c;
	three_with_leader(&c, 72);
	tc_restart(&c, 1); /* no leader any more; only node 3 ticks below, so none is elected */
	tc_restart(&c, 2);
	wipe(&c, 3);
	for (int t = 0; t < 5; t++) { /* fence: both voters answer */
		tc_tick(&c, 3);
		tc_stabilize(&c);
	}
	ck_assert(raft_recovery_fenced(tc_r(&c, 3)));
	ck_assert(raft_recovering(tc_r(&c, 3)));
	tc_isolate(&c, 3, true);
	for (int t = 0; t < 50 * 10; t++) { /* 50 election timeouts (at most 2x10 ticks each) */
		tc_tick(&c, 3);
		while (tc_ready(&c, 3))
			;
		ck_assert_uint_eq(queued_from(&c, RAFT_MSG_PREVOTE, 3), 0);
		ck_assert_uint_eq(queued_from(&c, RAFT_MSG_VOTE, 3), 0);
		tc_drop_queue(&c);
		ck_assert_int_eq(raft_role_of(tc_r(&c, 3)), RAFT_FOLLOWER);
	}
	ck_assert(raft_recovering(tc_r(&c, 3)));
	tc_free(&c);
}
END_TEST

/* ------------------------------------------------------------------------------ fence */

START_TEST(test_fence_highest_term_after_every_voter)
{
	static struct tc c;
	three_with_leader(&c, 73);
	raft_term t = raft_term_of(tc_r(&c, 1));
	/* node 2 has reached a higher term (say, it campaigned in a minority) */
	tc_crash(&c, 2);
	c.nodes[2].hs.term = t + 4;
	c.nodes[2].hs.vote = 0;
	tc_start(&c, 2);
	wipe(&c, 3);
	c.cut[2][3] = true; /* node 2's answer is lost: only node 1 (term t) answers */
	for (int t2 = 0; t2 < 5; t2++) {
		tc_tick(&c, 3);
		tc_stabilize(&c);
	}
	ck_assert(!raft_recovery_fenced(tc_r(&c, 3)));
	ck_assert(raft_recovering(tc_r(&c, 3)));
	ck_assert_uint_lt(raft_term_of(tc_r(&c, 3)), t + 4);
	c.cut[2][3] = false;
	tc_tick(&c, 3);
	tc_stabilize(&c);
	ck_assert(raft_recovery_fenced(tc_r(&c, 3)));
	ck_assert_uint_eq(raft_term_of(tc_r(&c, 3)), t + 4);
	/* the fenced term and the spent vote are in the hard state handed out */
	ck_assert_uint_eq(c.nodes[3].hs.term, t + 4);
	ck_assert_uint_eq(c.nodes[3].hs.vote, 3);
	ck_assert(c.nodes[3].hs.recovering);
	tc_free(&c);
}
END_TEST

START_TEST(test_fresh_cluster_recovers_at_once)
{
	static struct tc c;
	tc_init(&c, 3, 74); /* nobody ever campaigned: every term is 0 */
	wipe(&c, 3);
	ck_assert(raft_recovering(tc_r(&c, 3)));
	tc_tick(&c, 3);
	tc_stabilize(&c);
	ck_assert(!raft_recovering(tc_r(&c, 3)));
	ck_assert(!c.nodes[3].hs.recovering);
	tc_free(&c);
}
END_TEST

/* ------------------------------------------------------------------------------ the leader */

START_TEST(test_leader_excludes_recovering_peer)
{
	static struct tc c;
	three_with_leader(&c, 75);
	tc_crash(&c, 2); /* node 3 cannot fence (node 2 never answers): it stays recovering */
	wipe(&c, 3);
	for (int t = 0; t < 3; t++) {
		tc_tick(&c, 1);
		tc_tick(&c, 3);
		tc_stabilize(&c);
	}
	ck_assert(raft_peer_recovering(tc_r(&c, 1), 3));
	raft_index committed = raft_commit_of(tc_r(&c, 1));
	raft_index idx = tc_propose(&c, 1, "c");
	ck_assert_uint_gt(idx, committed);
	ck_assert_int_eq(raft_read_index(tc_r(&c, 1), 42), 0);
	for (int t = 0; t < 5; t++) {
		tc_tick(&c, 1);
		tc_stabilize(&c);
	}
	/* node 3 holds the entry and acknowledged it, yet it counts for nothing */
	ck_assert_uint_ge(raft_last_index(tc_r(&c, 3)), idx);
	ck_assert_uint_eq(raft_commit_of(tc_r(&c, 1)), committed);
	ck_assert_uint_eq(c.nodes[1].n_reads, 0);
	ck_assert_int_eq(raft_transfer_leader(tc_r(&c, 1), 3), RAFT_ERECOVERING);
	ck_assert_int_eq(raft_role_of(tc_r(&c, 1)), RAFT_LEADER);
	tc_free(&c);
}
END_TEST

/* ------------------------------------------------------------------------------ leaving */

START_TEST(test_leaves_recovery_once_durable)
{
	static struct tc c;
	three_with_leader(&c, 76);
	wipe(&c, 3);
	for (int t = 0; t < 3; t++) { /* fence (the leader does not tick: no appends yet) */
		tc_tick(&c, 3);
		tc_stabilize(&c);
	}
	ck_assert(raft_recovery_fenced(tc_r(&c, 3)));
	c.nodes[3].manual = true; /* its writes complete only when we say so */
	for (int t = 0; t < 5; t++) {
		tc_tick(&c, 1);
		tc_tick(&c, 3);
		for (int k = 0; k < 10; k++) {
			tc_stabilize(&c);
			release_non_acks(&c, 3);
		}
	}
	/* it holds the leader's commit in memory, not yet durably */
	ck_assert(raft_recovery_fenced(tc_r(&c, 3)));
	ck_assert_uint_eq(raft_last_index(tc_r(&c, 3)), raft_commit_of(tc_r(&c, 1)));
	ck_assert(raft_recovering(tc_r(&c, 3)));
	ck_assert(c.nodes[3].hs.recovering);
	tc_persist_done(&c, 3);
	while (tc_ready(&c, 3))
		;
	ck_assert(!raft_recovering(tc_r(&c, 3)));
	ck_assert(!c.nodes[3].hs.recovering);
	/* the leader learns it from the next answer and counts it again */
	c.nodes[3].manual = false;
	tc_persist_done(&c, 3);
	tc_tick(&c, 1);
	tc_stabilize(&c);
	ck_assert(!raft_peer_recovering(tc_r(&c, 1), 3));
	tc_crash(&c, 2);
	raft_index idx = tc_propose(&c, 1, "d");
	tc_stabilize(&c);
	ck_assert_uint_eq(raft_commit_of(tc_r(&c, 1)), idx);
	tc_free(&c);
}
END_TEST

START_TEST(test_peer_reset_probes_afresh)
{
	static struct tc c;
	three_with_leader(&c, 77);
	raft_index last = raft_last_index(tc_r(&c, 1));
	/* node 3's log loses everything after its first entry (a damaged disk) */
	tc_crash(&c, 3);
	tc_disk_truncate(&c.nodes[3], 2);
	c.nodes[3].hs.commit = 1;
	tc_start(&c, 3);
	ck_assert_uint_eq(raft_last_index(tc_r(&c, 3)), 1);
	struct raft_progress *p = raft_progress_of(tc_r(&c, 1), 3);
	ck_assert_uint_eq(p->match, last);
	raft_peer_reset(tc_r(&c, 1), 3);
	ck_assert_uint_eq(p->match, 0);
	ck_assert_uint_eq(p->next, last + 1);
	/* no tick: the reset alone makes the leader probe and resend what was lost */
	tc_stabilize(&c);
	ck_assert_uint_eq(raft_last_index(tc_r(&c, 3)), last);
	ck_assert_uint_eq(p->match, last);
	tc_free(&c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("raft_recovery");
	TCase *tc = tcase_create("recovery");
	tcase_add_test(tc, test_never_grants_vote_or_prevote);
	tcase_add_test(tc, test_never_campaigns);
	tcase_add_test(tc, test_fence_highest_term_after_every_voter);
	tcase_add_test(tc, test_fresh_cluster_recovers_at_once);
	tcase_add_test(tc, test_leader_excludes_recovering_peer);
	tcase_add_test(tc, test_leaves_recovery_once_durable);
	tcase_add_test(tc, test_peer_reset_probes_afresh);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
