/* test_membership.c — single-server changes (thesis 4.1): a learner is added, catches up and is
 * promoted (refused while behind); changes wait for a commit of the current term and for the
 * previous change; a configuration is in effect once appended; a removed leader steps down
 * once the removal commits; a removed node cannot disrupt the cluster. */
#include <check.h>

#include "raft/conf.h"
#include "raft/raft_impl.h"
#include "tests/unit/raft/raft_test_helper.h"

/* Adds node id to the fixture as a blank server (no configuration: it learns from the leader). */
static void add_blank(struct tc *c, raft_id id)
{
	c->n = id;
	struct tc_node *nd = &c->nodes[id];
	raft_config_default(&nd->cfg, id, 9000 + id);
	nd->cfg.snapshot_chunk_bytes = 32;
	memset(&nd->snap_conf, 0, sizeof(nd->snap_conf));
	tc_start(c, id);
}

START_TEST(test_add_learner_then_promote)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	tc_init(&c, 3, 51);
	tc_elect(&c, 1);
	add_blank(&c, 4);
	struct raft *r = tc_r(&c, 1);
	raft_index idx;
	ck_assert_int_eq(raft_propose_conf_change(r, RAFT_CC_ADD_LEARNER, 4, &idx), 0);
	/* in effect as soon as appended */
	ck_assert(raft_conf_is_learner(raft_conf_of(r), 4));
	ck_assert_uint_eq(raft_conf_of(r)->n_voters, 3);
	/* learner not caught up yet */
	ck_assert_int_eq(raft_propose_conf_change(r, RAFT_CC_PROMOTE, 4, NULL), RAFT_EBUSY);
	tc_stabilize(&c);
	ck_assert_uint_eq(raft_commit_of(r), idx);
	ck_assert(raft_conf_is_learner(raft_conf_of(tc_r(&c, 4)), 4));
	ck_assert_uint_eq(raft_last_index(tc_r(&c, 4)), raft_last_index(r));
	/* a learner's acknowledgement does not count toward commit */
	tc_isolate(&c, 2, true);
	tc_isolate(&c, 3, true);
	raft_index x = tc_propose(&c, 1, "x");
	tc_stabilize(&c);
	ck_assert_uint_eq(raft_last_index(tc_r(&c, 4)), x);
	ck_assert_uint_lt(raft_commit_of(r), x);
	tc_isolate(&c, 2, false);
	tc_isolate(&c, 3, false);
	tc_tick_all(&c, 2);
	ck_assert_uint_eq(raft_commit_of(r), x);
	ck_assert_int_eq(raft_propose_conf_change(r, RAFT_CC_PROMOTE, 4, &idx), 0);
	ck_assert(raft_conf_is_voter(raft_conf_of(r), 4));
	ck_assert_uint_eq(raft_conf_of(r)->n_voters, 4);
	tc_stabilize(&c);
	ck_assert(raft_conf_is_voter(raft_conf_of(tc_r(&c, 4)), 4));
	ck_assert_uint_eq(raft_commit_of(tc_r(&c, 4)), idx);
	tc_free(&c);
}
END_TEST

START_TEST(test_promote_refused_while_behind)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	tc_init_full(&c, 3, 1, 52);
	tc_elect(&c, 1);
	tc_isolate(&c, 4, true);
	for (int i = 0; i < RAFT_PROMOTE_LAG_MAX + 10; i++)
		tc_propose(&c, 1, "x");
	tc_stabilize(&c);
	ck_assert_int_eq(raft_propose_conf_change(tc_r(&c, 1), RAFT_CC_PROMOTE, 4, NULL),
			 RAFT_ECATCHUP);
	tc_isolate(&c, 4, false);
	tc_tick_all(&c, 3);
	ck_assert_int_eq(raft_propose_conf_change(tc_r(&c, 1), RAFT_CC_PROMOTE, 4, NULL), 0);
	tc_free(&c);
}
END_TEST

START_TEST(test_waits_for_term_commit_and_previous_change)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	tc_init_full(&c, 3, 1, 53);
	struct raft *r = tc_r(&c, 1);
	while (raft_role_of(r) == RAFT_FOLLOWER)
		tc_tick(&c, 1);
	while (raft_role_of(r) != RAFT_LEADER) {
		for (raft_id i = 1; i <= 4; i++)
			tc_ready(&c, i);
		tc_deliver_one(&c);
	}
	/* leader, but its no-op is not committed: no change yet (thesis 4.1 fix) */
	ck_assert_int_eq(raft_propose_conf_change(r, RAFT_CC_REMOVE, 4, NULL), RAFT_EBUSY);
	tc_stabilize(&c);
	ck_assert_int_eq(raft_propose_conf_change(r, RAFT_CC_REMOVE, 4, NULL), 0);
	/* the previous change is not committed yet */
	ck_assert_int_eq(raft_propose_conf_change(r, RAFT_CC_REMOVE, 3, NULL), RAFT_EBUSY);
	tc_stabilize(&c);
	ck_assert_int_eq(raft_propose_conf_change(r, RAFT_CC_REMOVE, 4, NULL), RAFT_EINVAL);
	ck_assert_int_eq(raft_propose_conf_change(r, RAFT_CC_ADD_VOTER, 2, NULL), RAFT_EINVAL);
	ck_assert_int_eq(raft_propose_conf_change(tc_r(&c, 2), RAFT_CC_REMOVE, 3, NULL),
			 RAFT_ENOTLEADER);
	tc_free(&c);
}
END_TEST

START_TEST(test_remove_leader_steps_down)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	tc_init(&c, 3, 54);
	tc_elect(&c, 1);
	raft_index idx;
	ck_assert_int_eq(raft_propose_conf_change(tc_r(&c, 1), RAFT_CC_REMOVE, 1, &idx), 0);
	/* still leading until the removal commits, without counting itself */
	ck_assert_int_eq(raft_role_of(tc_r(&c, 1)), RAFT_LEADER);
	tc_stabilize(&c);
	ck_assert_int_eq(raft_role_of(tc_r(&c, 1)), RAFT_FOLLOWER);
	ck_assert_uint_ge(raft_commit_of(tc_r(&c, 1)), idx);
	/* the two others elect a leader among themselves; the removed node never campaigns */
	tc_tick_all(&c, 50);
	raft_id l = tc_leader(&c, NULL);
	ck_assert(l == 2 || l == 3);
	ck_assert_uint_eq(raft_term_of(tc_r(&c, 1)), 1);
	ck_assert_uint_ne(tc_propose(&c, l, "after"), 0);
	tc_stabilize(&c);
	ck_assert_uint_eq(c.nodes[2].applied_normal, 1);
	tc_free(&c);
}
END_TEST

START_TEST(test_removed_node_cannot_disrupt)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	tc_init(&c, 3, 55);
	tc_elect(&c, 1);
	/* node 3 is cut off and never learns of its removal */
	tc_isolate(&c, 3, true);
	ck_assert_int_eq(raft_propose_conf_change(tc_r(&c, 1), RAFT_CC_REMOVE, 3, NULL), 0);
	tc_stabilize(&c);
	ck_assert(!raft_conf_is_member(raft_conf_of(tc_r(&c, 2)), 3));
	for (int t = 0; t < 100; t++) {
		tc_tick(&c, 3);
		tc_stabilize(&c);
	}
	/* it campaigns in vain; when it comes back its requests are ignored */
	tc_isolate(&c, 3, false);
	tc_tick_all(&c, 100);
	ck_assert_uint_eq(tc_leader(&c, NULL), 1);
	ck_assert_uint_eq(raft_term_of(tc_r(&c, 1)), 1);
	ck_assert_uint_eq(raft_term_of(tc_r(&c, 2)), 1);
	tc_free(&c);
}
END_TEST

/* A leader whose own removal is appended but not committed, once it lost leadership, still
 * campaigns (it is a voter of the committed configuration and may hold the only up-to-date
 * log), and the cluster converges. */
START_TEST(test_uncommitted_self_removal_may_campaign)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	tc_init(&c, 3, 56);
	tc_elect(&c, 1);
	tc_isolate(&c, 1, true);
	ck_assert_int_eq(raft_propose_conf_change(tc_r(&c, 1), RAFT_CC_REMOVE, 1, NULL), 0);
	ck_assert(!raft_conf_is_voter(raft_conf_of(tc_r(&c, 1)), 1));
	for (int t = 0; t < 25; t++) {
		tc_tick(&c, 1);
		tc_stabilize(&c);
	}
	ck_assert_int_eq(raft_role_of(tc_r(&c, 1)), RAFT_FOLLOWER); /* CheckQuorum */
	for (int t = 0; t < 25 && raft_role_of(tc_r(&c, 1)) == RAFT_FOLLOWER; t++)
		tc_tick(&c, 1);
	ck_assert_int_eq(raft_role_of(tc_r(&c, 1)), RAFT_PRECANDIDATE);
	tc_isolate(&c, 1, false);
	tc_tick_all(&c, 60);
	int n;
	raft_id l = tc_leader(&c, &n);
	ck_assert_int_eq(n, 1);
	/* the removal committed (node 1 led long enough to commit it, then stepped down) and
	 * the two remaining voters carry on */
	ck_assert(l == 2 || l == 3);
	for (raft_id i = 2; i <= 3; i++) {
		ck_assert_uint_eq(raft_conf_of(tc_r(&c, i))->n_voters, 2);
		ck_assert(!raft_conf_is_member(raft_conf_of(tc_r(&c, i)), 1));
	}
	ck_assert_uint_ge(raft_commit_of(tc_r(&c, 1)), 2);
	ck_assert_int_eq(raft_role_of(tc_r(&c, 1)), RAFT_FOLLOWER);
	tc_free(&c);
}
END_TEST

START_TEST(test_conf_encoding)
{
	struct raft_conf c = {.voters = {1, 2, 3}, .n_voters = 3};
	ck_assert_int_eq(raft_conf_apply(&c, RAFT_CC_ADD_LEARNER, 9), 0);
	ck_assert_int_eq(raft_conf_apply(&c, RAFT_CC_ADD_LEARNER, 9), RAFT_EINVAL);
	ck_assert_int_eq(raft_conf_apply(&c, RAFT_CC_PROMOTE, 2), RAFT_EINVAL);
	ck_assert_int_eq(raft_conf_apply(&c, RAFT_CC_REMOVE, 2), 0);
	struct raft_buf b;
	ck_assert_int_eq(raft_conf_encode(&c, RAFT_CC_REMOVE, 2, &b), 0);
	struct raft_conf d;
	ck_assert_int_eq(raft_conf_decode(&b, &d), 0);
	ck_assert(raft_conf_equal(&c, &d));
	ck_assert(raft_conf_is_learner(&d, 9));
	ck_assert(!raft_conf_is_member(&d, 2));
	b.len--;
	ck_assert_int_eq(raft_conf_decode(&b, &d), RAFT_EINVAL);
	free(b.base);
	struct raft_conf one = {.voters = {1}, .n_voters = 1};
	ck_assert_int_eq(raft_conf_apply(&one, RAFT_CC_REMOVE, 1), RAFT_EINVAL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("raft_membership");
	TCase *tc = tcase_create("membership");
	tcase_add_test(tc, test_add_learner_then_promote);
	tcase_add_test(tc, test_promote_refused_while_behind);
	tcase_add_test(tc, test_waits_for_term_commit_and_previous_change);
	tcase_add_test(tc, test_remove_leader_steps_down);
	tcase_add_test(tc, test_removed_node_cannot_disrupt);
	tcase_add_test(tc, test_uncommitted_self_removal_may_campaign);
	tcase_add_test(tc, test_conf_encoding);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
