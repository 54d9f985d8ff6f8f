/* test_election.c — elections: randomized timeouts in [T, 2T) and deterministic per seed; a
 * leader is elected and appends its no-op; PreVote does not bump the term; votes go only to
 * up-to-date logs, one per term; leader stickiness; CheckQuorum step-down; higher terms. */
#include <check.h>

#include "raft/raft_impl.h"
#include "tests/unit/raft/raft_test_helper.h"

/* ticks until a lone follower with peers starts a (pre)campaign */
static int ticks_to_campaign(uint64_t seed)
{
	struct raft_config cfg;
	raft_config_default(&cfg, 1, seed);
	struct raft_restore rs = {.conf = {.voters = {1, 2, 3}, .n_voters = 3}};
	struct raft *r = raft_new(&cfg, &rs);
	int t = 0;
	while (raft_role_of(r) == RAFT_FOLLOWER) {
		raft_tick(r);
		t++;
	}
	ck_assert_int_eq(raft_role_of(r), RAFT_PRECANDIDATE);
	ck_assert_uint_eq(raft_term_of(r), 0); /* PreVote: term unchanged */
	raft_free(r);
	return t;
}

START_TEST(test_timeout_randomized_and_deterministic)
{
	bool seen[20] = {0};
	for (uint64_t seed = 1; seed <= 200; seed++) {
		int t = ticks_to_campaign(seed);
		ck_assert_int_ge(t, 10);
		ck_assert_int_lt(t, 20);
		seen[t] = true;
		ck_assert_int_eq(t, ticks_to_campaign(seed)); /* same seed, same timeout */
	}
	int distinct = 0;
	for (int i = 10; i < 20; i++)
		distinct += seen[i];
	ck_assert_int_ge(distinct, 8); /* spread over the range, not a constant */
}
END_TEST

START_TEST(test_elect_leader)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	tc_init(&c, 3, 1);
	tc_elect(&c, 1);
	int n;
	ck_assert_uint_eq(tc_leader(&c, &n), 1);
	ck_assert_int_eq(n, 1);
	ck_assert_uint_eq(raft_term_of(tc_r(&c, 1)), 1);
	/* the term-start no-op is committed and applied everywhere */
	for (raft_id i = 1; i <= 3; i++) {
		ck_assert_uint_eq(raft_commit_of(tc_r(&c, i)), 1);
		ck_assert_uint_eq(c.nodes[i].applied, 1);
		ck_assert_uint_eq(raft_leader_of(tc_r(&c, i)), 1);
		ck_assert_uint_eq(c.nodes[i].hs.term, 1);
	}
	const struct raft_entry *e = raft_entry_at(tc_r(&c, 2), 1);
	ck_assert_int_eq(e->type, RAFT_ENTRY_NORMAL);
	ck_assert_uint_eq(e->data.len, 0);
	ck_assert_uint_eq(c.nodes[1].hs.vote, 1);
	tc_free(&c);
}
END_TEST

START_TEST(test_single_node)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	tc_init(&c, 1, 2);
	tc_elect(&c, 1);
	ck_assert_uint_eq(raft_commit_of(tc_r(&c, 1)), 1);
	ck_assert_uint_ne(tc_propose(&c, 1, "x"), 0);
	tc_stabilize(&c);
	ck_assert_uint_eq(raft_commit_of(tc_r(&c, 1)), 2);
	ck_assert_uint_eq(c.nodes[1].applied_normal, 1);
	tc_free(&c);
}
END_TEST

/* A raw node to poke with hand-made messages. */
static struct raft *raw_node(raft_id id, bool pre_vote, bool check_quorum)
{
	struct raft_config cfg;
	raft_config_default(&cfg, id, 7);
	cfg.pre_vote = pre_vote;
	cfg.check_quorum = check_quorum;
	struct raft_entry ents[3] = {
		{.term = 1, .index = 1}, {.term = 1, .index = 2}, {.term = 2, .index = 3}};
	struct raft_restore rs = {
		.hard_state = {.term = 2},
		.conf = {.voters = {1, 2, 3}, .n_voters = 3},
		.entries = ents,
		.n_entries = 3,
	};
	return raft_new(&cfg, &rs);
}

static int vote_answer(struct raft *r, const struct raft_message *m, bool *granted, raft_term *term)
{
	ck_assert_int_eq(raft_step(r, m), 0);
	struct raft_update u;
	raft_ready(r, &u);
	int found = 0;
	for (size_t i = 0; i < u.n_msgs_after_persist + u.n_msgs; i++) {
		const struct raft_message *x =
			i < u.n_msgs ? &u.msgs[i] : &u.msgs_after_persist[i - u.n_msgs];
		if (x->type == RAFT_MSG_VOTE_RESP || x->type == RAFT_MSG_PREVOTE_RESP) {
			*granted = !x->reject;
			*term = x->term;
			found++;
			/* a vote answer must wait for the vote to be durable */
			if (x->type == RAFT_MSG_VOTE_RESP)
				ck_assert(i >= u.n_msgs);
		}
	}
	raft_advance(r, &u);
	return found;
}

START_TEST(test_vote_only_up_to_date)
{
	bool g;
	raft_term t;
	/* candidate's last term lower than ours: refused */
	struct raft *r = raw_node(1, false, false);
	struct raft_message m = {
		.type = RAFT_MSG_VOTE, .from = 2, .to = 1, .term = 3, .index = 10, .log_term = 1};
	ck_assert_int_eq(vote_answer(r, &m, &g, &t), 1);
	ck_assert(!g);
	ck_assert_uint_eq(t, 3); /* the term was adopted anyway */
	raft_free(r);
	/* same last term, shorter log: refused */
	r = raw_node(1, false, false);
	m.index = 2;
	m.log_term = 2;
	ck_assert_int_eq(vote_answer(r, &m, &g, &t), 1);
	ck_assert(!g);
	raft_free(r);
	/* same last term, same length: granted */
	r = raw_node(1, false, false);
	m.index = 3;
	ck_assert_int_eq(vote_answer(r, &m, &g, &t), 1);
	ck_assert(g);
	raft_free(r);
	/* higher last term, shorter log: granted */
	r = raw_node(1, false, false);
	m.index = 1;
	m.log_term = 3;
	ck_assert_int_eq(vote_answer(r, &m, &g, &t), 1);
	ck_assert(g);
	raft_free(r);
}
END_TEST

START_TEST(test_one_vote_per_term)
{
	bool g;
	raft_term t;
	struct raft *r = raw_node(1, false, false);
	struct raft_message m = {
		.type = RAFT_MSG_VOTE, .from = 2, .to = 1, .term = 3, .index = 3, .log_term = 2};
	vote_answer(r, &m, &g, &t);
	ck_assert(g);
	m.from = 3; /* another candidate, same term, also up to date */
	vote_answer(r, &m, &g, &t);
	ck_assert(!g);
	m.from = 2; /* the same candidate again (a retry): granted again */
	vote_answer(r, &m, &g, &t);
	ck_assert(g);
	m.from = 3; /* next term: a new vote */
	m.term = 4;
	vote_answer(r, &m, &g, &t);
	ck_assert(g);
	raft_free(r);
}
END_TEST

START_TEST(test_prevote_does_not_bump_term)
{
	bool g;
	raft_term t;
	struct raft *r = raw_node(1, true, false);
	struct raft_message m = {
		.type = RAFT_MSG_PREVOTE, .from = 2, .to = 1, .term = 3, .index = 3, .log_term = 2};
	ck_assert_int_eq(vote_answer(r, &m, &g, &t), 1);
	ck_assert(g);
	ck_assert_uint_eq(t, 3);
	ck_assert_uint_eq(raft_term_of(r), 2); /* the voter's term did not move */
	/* a prevote binds nothing: another pre-candidate also gets one */
	m.from = 3;
	vote_answer(r, &m, &g, &t);
	ck_assert(g);
	/* a prevote from a stale log is refused */
	m.index = 1;
	m.log_term = 1;
	vote_answer(r, &m, &g, &t);
	ck_assert(!g);
	ck_assert_uint_eq(raft_term_of(r), 2);
	raft_free(r);
}
END_TEST

START_TEST(test_partitioned_node_does_not_raise_term)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	tc_init(&c, 3, 3);
	tc_elect(&c, 1);
	raft_term term = raft_term_of(tc_r(&c, 1));
	tc_isolate(&c, 3, true);
	tc_tick_all(&c, 100);
	/* node 3 keeps pre-campaigning but never wins a prevote, so its term stays */
	ck_assert_uint_eq(raft_term_of(tc_r(&c, 3)), term);
	tc_isolate(&c, 3, false);
	tc_tick_all(&c, 30);
	ck_assert_uint_eq(tc_leader(&c, NULL), 1);
	ck_assert_uint_eq(raft_term_of(tc_r(&c, 1)), term);
	ck_assert_uint_eq(raft_leader_of(tc_r(&c, 3)), 1);
	tc_free(&c);
}
END_TEST

START_TEST(test_leader_stickiness)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	tc_init(&c, 3, 4);
	tc_elect(&c, 1);
	/* node 2 gets a vote request from 3 in a higher term while it hears from leader 1 */
	struct raft_message m = {
		.type = RAFT_MSG_VOTE, .from = 3, .to = 2, .term = 5, .index = 100, .log_term = 5};
	ck_assert_int_eq(raft_step(tc_r(&c, 2), &m), 0);
	ck_assert_uint_eq(raft_term_of(tc_r(&c, 2)), 1); /* ignored */
	ck_assert(!raft_has_ready(tc_r(&c, 2)));
	/* a campaign started by TIMEOUT_NOW is not ignored */
	m.context = RAFT_CTX_TRANSFER;
	ck_assert_int_eq(raft_step(tc_r(&c, 2), &m), 0);
	ck_assert_uint_eq(raft_term_of(tc_r(&c, 2)), 5);
	tc_drop_queue(&c);
	tc_free(&c);
}
END_TEST

START_TEST(test_check_quorum_steps_down)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	tc_init(&c, 3, 5);
	tc_elect(&c, 1);
	tc_isolate(&c, 1, true);
	for (int t = 0; t < 25; t++) {
		tc_tick(&c, 1);
		tc_stabilize(&c);
	}
	ck_assert_int_eq(raft_role_of(tc_r(&c, 1)), RAFT_FOLLOWER);
	ck_assert_uint_eq(raft_term_of(tc_r(&c, 1)), 1); /* stepped down without a new term */
	tc_free(&c);
}
END_TEST

START_TEST(test_higher_term_steps_down_and_reelects)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	tc_init(&c, 3, 6);
	tc_elect(&c, 1);
	tc_isolate(&c, 1, true);
	tc_tick_all(&c, 60);
	int n;
	raft_id l = tc_leader(&c, &n);
	ck_assert(l == 2 || l == 3);
	ck_assert_int_eq(n, 1); /* the old leader stepped down by CheckQuorum */
	raft_term t = raft_term_of(tc_r(&c, l));
	ck_assert_uint_gt(t, 1);
	tc_isolate(&c, 1, false);
	tc_tick_all(&c, 5);
	ck_assert_uint_eq(raft_term_of(tc_r(&c, 1)), t);
	ck_assert_uint_eq(raft_leader_of(tc_r(&c, 1)), l);
	tc_free(&c);
}
END_TEST

START_TEST(test_learner_never_campaigns)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	tc_init_full(&c, 1, 1, 8);
	for (int t = 0; t < 100; t++) {
		tc_tick(&c, 2);
		tc_stabilize(&c);
	}
	ck_assert_int_eq(raft_role_of(tc_r(&c, 2)), RAFT_FOLLOWER);
	ck_assert_uint_eq(raft_term_of(tc_r(&c, 2)), 0);
	tc_free(&c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("raft_election");
	TCase *tc = tcase_create("election");
	tcase_add_test(tc, test_timeout_randomized_and_deterministic);
	tcase_add_test(tc, test_elect_leader);
	tcase_add_test(tc, test_single_node);
	tcase_add_test(tc, test_vote_only_up_to_date);
	tcase_add_test(tc, test_one_vote_per_term);
	tcase_add_test(tc, test_prevote_does_not_bump_term);
	tcase_add_test(tc, test_partitioned_node_does_not_raise_term);
	tcase_add_test(tc, test_leader_stickiness);
	tcase_add_test(tc, test_check_quorum_steps_down);
	tcase_add_test(tc, test_higher_term_steps_down_and_reelects);
	tcase_add_test(tc, test_learner_never_campaigns);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
