/* test_step.c — raft_step's boundary: malformed messages are refused with RAFT_EINVAL; term
 * rules (a higher term makes us a follower, a stale leader is told our term); the routing of
 * outgoing messages between msgs and msgs_after_persist that the driver relies on. */
#include <check.h>

#include "raft/raft_impl.h"
#include "tests/unit/raft/raft_test_helper.h"

static struct raft *node(raft_id id, raft_term term)
{
	struct raft_config cfg;
	raft_config_default(&cfg, id, 3);
	struct raft_restore rs = {.hard_state = {.term = term},
				  .conf = {.voters = {1, 2, 3}, .n_voters = 3}};
	return raft_new(&cfg, &rs);
}

START_TEST(test_invalid_messages)
{
	struct raft *r = node(2, 1);
	struct raft_message m = {.type = RAFT_MSG_HEARTBEAT, .from = 1, .to = 3, .term = 1};
	ck_assert_int_eq(raft_step(r, &m), RAFT_EINVAL); /* not for us */
	m.to = 2;
	m.from = 0;
	ck_assert_int_eq(raft_step(r, &m), RAFT_EINVAL);
	m.from = 1;
	m.type = 99;
	ck_assert_int_eq(raft_step(r, &m), RAFT_EINVAL);
	/* entries must follow prev contiguously and not exceed the message term */
	struct raft_entry e[2] = {{.term = 1, .index = 1}, {.term = 1, .index = 3}};
	m = (struct raft_message){.type = RAFT_MSG_APPEND,
				  .from = 1,
				  .to = 2,
				  .term = 1,
				  .entries = e,
				  .n_entries = 2};
	ck_assert_int_eq(raft_step(r, &m), RAFT_EINVAL);
	e[1].index = 2;
	e[1].term = 5;
	ck_assert_int_eq(raft_step(r, &m), RAFT_EINVAL);
	e[1].term = 1;
	ck_assert_int_eq(raft_step(r, &m), 0);
	ck_assert_uint_eq(raft_last_index(r), 2);
	raft_free(r);
}
END_TEST

START_TEST(test_term_rules)
{
	struct raft *r = node(2, 5);
	/* a stale leader is answered with our term so it steps down */
	struct raft_message m = {.type = RAFT_MSG_HEARTBEAT, .from = 1, .to = 2, .term = 3};
	ck_assert_int_eq(raft_step(r, &m), 0);
	struct raft_update u;
	raft_ready(r, &u);
	ck_assert_uint_eq(u.n_msgs + u.n_msgs_after_persist, 1);
	const struct raft_message *a = u.n_msgs ? &u.msgs[0] : &u.msgs_after_persist[0];
	ck_assert_int_eq(a->type, RAFT_MSG_APPEND_RESP);
	ck_assert_uint_eq(a->term, 5);
	raft_advance(r, &u);
	ck_assert_uint_eq(raft_term_of(r), 5);
	/* a higher-term leader is followed at once */
	m.term = 7;
	ck_assert_int_eq(raft_step(r, &m), 0);
	ck_assert_uint_eq(raft_term_of(r), 7);
	ck_assert_uint_eq(raft_leader_of(r), 1);
	raft_ready(r, &u);
	ck_assert(u.has_hard_state);
	ck_assert_uint_eq(u.hard_state.term, 7);
	ck_assert_uint_eq(u.hard_state.vote, 0);
	ck_assert(u.soft_changed);
	/* the answer reveals the new term: it waits for the hard state to be durable */
	ck_assert_uint_eq(u.n_msgs, 0);
	ck_assert_uint_eq(u.n_msgs_after_persist, 1);
	raft_advance(r, &u);
	raft_free(r);
}
END_TEST

START_TEST(test_routing)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	tc_init(&c, 3, 61);
	struct raft *r = tc_r(&c, 1);
	while (raft_role_of(r) == RAFT_FOLLOWER)
		tc_tick(&c, 1);
	/* PREVOTE: nothing durable changed, sent at once */
	struct raft_update u;
	raft_ready(r, &u);
	ck_assert_uint_eq(u.n_msgs, 2);
	ck_assert_int_eq(u.msgs[0].type, RAFT_MSG_PREVOTE);
	ck_assert_uint_eq(u.n_msgs_after_persist, 0);
	raft_advance(r, &u);
	/* grant both prevotes by hand: a VOTE carries the new term and vote: after persist */
	for (raft_id p = 2; p <= 3; p++) {
		struct raft_message g = {
			.type = RAFT_MSG_PREVOTE_RESP, .from = p, .to = 1, .term = 1};
		ck_assert_int_eq(raft_step(r, &g), 0);
	}
	ck_assert_int_eq(raft_role_of(r), RAFT_CANDIDATE);
	raft_ready(r, &u);
	ck_assert_uint_eq(u.n_msgs, 0);
	ck_assert_uint_eq(u.n_msgs_after_persist, 2);
	ck_assert_int_eq(u.msgs_after_persist[0].type, RAFT_MSG_VOTE);
	ck_assert(u.has_hard_state);
	ck_assert_uint_eq(u.hard_state.vote, 1);
	raft_advance(r, &u);
	struct raft_message v = {.type = RAFT_MSG_VOTE_RESP, .from = 2, .to = 1, .term = 1};
	ck_assert_int_eq(raft_step(r, &v), 0);
	ck_assert_int_eq(raft_role_of(r), RAFT_LEADER);
	/* the leader's AppendEntries go at once, with the no-op it has not persisted yet */
	raft_ready(r, &u);
	ck_assert_uint_eq(u.n_msgs, 2);
	ck_assert_int_eq(u.msgs[0].type, RAFT_MSG_APPEND);
	ck_assert_uint_eq(u.msgs[0].n_entries, 1);
	ck_assert_uint_eq(u.n_entries, 1);
	ck_assert_ptr_eq(u.msgs[0].entries, u.entries); /* a slice of the log, not a copy */
	ck_assert_uint_eq(u.n_msgs_after_persist, 0);
	raft_advance(r, &u);
	tc_drop_queue(&c);
	tc_free(&c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("raft_step");
	TCase *tc = tcase_create("step");
	tcase_add_test(tc, test_invalid_messages);
	tcase_add_test(tc, test_term_rules);
	tcase_add_test(tc, test_routing);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
