/* test_replication.c — AppendEntries: a divergent follower is repaired with few round trips
 * (conflict hints), its conflicting suffix is truncated; flow control bounds in-flight
 * messages and message size; only current-term entries commit by counting (thesis 3.6.2); the
 * leader counts itself only once its append is durable (10.2.1); acknowledgements wait for
 * persistence. */
#include <check.h>
#include <stdio.h>

#include "raft/raft_impl.h"
#include "tests/unit/raft/raft_test_helper.h"

/* Replaces node id's durable log by entries with the given terms (1-based indexes). */
static void set_log(struct tc *c, raft_id id, const raft_term *terms, size_t n, raft_term hs_term,
		    raft_index commit)
{
	struct tc_node *nd = &c->nodes[id];
	tc_crash(c, id);
	tc_disk_truncate(nd, 1);
	for (size_t i = 0; i < n; i++) {
		char s[48];
		snprintf(s, sizeof(s), "%zu/%llu", i + 1, (unsigned long long)terms[i]);
		struct raft_entry e = {
			.term = terms[i], .index = i + 1, .data = {s, strlen(s) + 1}};
		tc_disk_append(nd, &e);
	}
	nd->hs = (struct raft_hard_state){.term = hs_term, .commit = commit};
	nd->applied = 0;
	tc_start(c, id);
}

START_TEST(test_conflict_backoff_is_fast)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	tc_init(&c, 3, 11);
	raft_term lead[60], div[50];
	for (int i = 0; i < 60; i++)
		lead[i] = i < 5 ? 1 : 3;
	for (int i = 0; i < 50; i++)
		div[i] = i < 5 ? 1 : 2;
	set_log(&c, 1, lead, 60, 3, 5);
	set_log(&c, 3, lead, 60, 3, 5);
	set_log(&c, 2, div, 50, 2, 5);
	tc_elect(&c, 1);
	/* node 2 had 45 conflicting entries: one hint skips the whole term-2 run */
	ck_assert_uint_le(c.sent_by_type[RAFT_MSG_APPEND_RESP], 12);
	struct raft *f = tc_r(&c, 2);
	ck_assert_uint_eq(raft_last_index(f), 61);
	for (raft_index i = 1; i <= 61; i++)
		ck_assert_uint_eq(raft_entry_at(f, i)->term, raft_entry_at(tc_r(&c, 1), i)->term);
	/* the durable copy was truncated and rewritten too */
	ck_assert_uint_eq(c.nodes[2].n_log, 61);
	ck_assert_uint_eq(c.nodes[2].log[5].term, 3);
	ck_assert_str_eq(c.nodes[2].log[5].data.base, "6/3");
	ck_assert_uint_eq(raft_commit_of(f), 61);
	tc_free(&c);
}
END_TEST

START_TEST(test_flow_control_limits)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	tc_init(&c, 3, 12);
	for (raft_id i = 1; i <= 3; i++) {
		c.nodes[i].cfg.max_inflight_msgs = 3;
		c.nodes[i].cfg.max_msg_bytes = 40; /* ~4 entries of 9 bytes */
		tc_restart(&c, i);
	}
	tc_elect(&c, 1);
	/* follower 2 receives but its answers are lost */
	c.cut[2][1] = true;
	char buf[16];
	for (int i = 0; i < 100; i++) {
		snprintf(buf, sizeof(buf), "v%07d", i);
		ck_assert_uint_ne(tc_propose(&c, 1, buf), 0);
	}
	tc_ready(&c, 1);
	/* node 2 is in replicate state: at most 3 messages in flight, each within 40 bytes */
	size_t n2 = 0;
	for (size_t i = 0; i < c.qn; i++) {
		const struct raft_message *m = &c.q[i].m;
		if (m->type != RAFT_MSG_APPEND || m->to != 2)
			continue;
		n2++;
		uint64_t bytes = 0;
		for (uint32_t k = 0; k < m->n_entries; k++)
			bytes += m->entries[k].data.len;
		ck_assert_uint_le(bytes, 40);
		ck_assert_uint_ge(m->n_entries, 1);
	}
	ck_assert_uint_eq(n2, 3);
	tc_stabilize(&c);
	ck_assert_uint_lt(raft_last_index(tc_r(&c, 2)), 101);
	/* node 3 acknowledges, so everything commits with it despite node 2 */
	ck_assert_uint_eq(raft_commit_of(tc_r(&c, 1)), 101);
	/* answers flow again: heartbeats unblock the window and node 2 catches up */
	c.cut[2][1] = false;
	tc_tick_all(&c, 5);
	ck_assert_uint_eq(raft_last_index(tc_r(&c, 2)), 101);
	ck_assert_uint_eq(c.nodes[2].applied, 101);
	ck_assert_uint_le(c.max_entries_seen, RAFT_MSG_ENTRIES_MAX);
	tc_free(&c);
}
END_TEST

START_TEST(test_many_entries_per_message)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	tc_init(&c, 3, 13);
	tc_elect(&c, 1);
	for (int i = 0; i < 50; i++)
		tc_propose(&c, 1, "x");
	uint64_t before = c.sent_by_type[RAFT_MSG_APPEND];
	tc_stabilize(&c);
	/* 50 proposals in one turn: one AppendEntries per follower carries them all (plus
	 * the commit notifications), not one per entry */
	ck_assert_uint_le(c.sent_by_type[RAFT_MSG_APPEND] - before, 4);
	ck_assert_uint_eq(c.nodes[3].applied_normal, 50);
	tc_free(&c);
}
END_TEST

/* Figure 3.7 of the thesis: an entry of an older term on a majority is not committed by
 * counting; it commits only with an entry of the current term. */
START_TEST(test_commit_only_current_term)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	tc_init(&c, 3, 14);
	raft_term t12[2] = {1, 2};
	set_log(&c, 1, t12, 2, 3, 1);
	set_log(&c, 2, t12, 2, 3, 1);
	set_log(&c, 3, t12, 1, 3, 1);
	/* become leader of term 4 by hand; hold every message so nothing is acknowledged */
	struct raft *r = tc_r(&c, 1);
	raft_campaign(r, false, false);
	struct raft_message v = {.type = RAFT_MSG_VOTE_RESP, .from = 2, .to = 1, .term = 4};
	ck_assert_int_eq(raft_step(r, &v), 0);
	ck_assert_int_eq(raft_role_of(r), RAFT_LEADER);
	ck_assert_uint_eq(raft_last_index(r), 3); /* the no-op of term 4 */
	/* node 2 is known to hold index 2 (term 2) and we hold it durably: a majority */
	struct raft_progress *p = raft_progress_of(r, 2);
	raft_progress_update(p, 2);
	r->persisted = 2;
	ck_assert(!raft_maybe_commit(r));
	ck_assert_uint_eq(raft_commit_of(r), 1);
	/* once the term-4 entry is on a majority, both commit */
	raft_progress_update(p, 3);
	r->persisted = 3;
	ck_assert(raft_maybe_commit(r));
	ck_assert_uint_eq(raft_commit_of(r), 3);
	tc_free(&c);
}
END_TEST

START_TEST(test_leader_counts_itself_only_when_durable)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	tc_init(&c, 3, 15);
	tc_elect(&c, 1);
	c.nodes[1].manual = true;
	tc_isolate(&c, 3, true);
	raft_index idx = tc_propose(&c, 1, "x");
	tc_stabilize(&c);
	/* node 2 acknowledged; the leader's own write is not durable: no majority yet */
	ck_assert_uint_eq(raft_progress_of(tc_r(&c, 1), 2)->match, idx);
	ck_assert_uint_lt(raft_commit_of(tc_r(&c, 1)), idx);
	tc_persist_done(&c, 1);
	ck_assert_uint_eq(raft_commit_of(tc_r(&c, 1)), idx);
	/* but it need not wait for itself when two followers have it */
	tc_isolate(&c, 3, false);
	tc_stabilize(&c);
	raft_index idx2 = tc_propose(&c, 1, "y");
	tc_stabilize(&c);
	ck_assert_uint_eq(raft_commit_of(tc_r(&c, 1)), idx2);
	ck_assert_uint_lt(raft_persisted_of(tc_r(&c, 1)), idx2);
	tc_persist_done(&c, 1);
	tc_free(&c);
}
END_TEST

START_TEST(test_follower_ack_waits_for_persist)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	tc_init(&c, 3, 16);
	tc_elect(&c, 1);
	c.nodes[2].manual = true;
	c.nodes[3].manual = true;
	raft_index idx = tc_propose(&c, 1, "x");
	tc_stabilize(&c);
	/* followers appended it but hold their acknowledgements until durable */
	ck_assert_uint_eq(raft_last_index(tc_r(&c, 2)), idx);
	ck_assert_uint_lt(raft_commit_of(tc_r(&c, 1)), idx);
	ck_assert_uint_ge(c.nodes[2].n_held, 1);
	for (size_t i = 0; i < c.nodes[2].n_held; i++)
		ck_assert_int_eq(c.nodes[2].held[i].m.type, RAFT_MSG_APPEND_RESP);
	tc_persist_done(&c, 2);
	tc_stabilize(&c);
	ck_assert_uint_eq(raft_commit_of(tc_r(&c, 1)), idx);
	tc_persist_done(&c, 3);
	tc_free(&c);
}
END_TEST

START_TEST(test_lost_follower_tail_is_repaired)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	tc_init(&c, 3, 17);
	tc_elect(&c, 1);
	c.nodes[3].manual = true;
	tc_propose(&c, 1, "a");
	tc_propose(&c, 1, "b");
	tc_stabilize(&c);
	ck_assert_uint_eq(raft_last_index(tc_r(&c, 3)), 3);
	/* node 3 crashes before its write lands */
	tc_crash(&c, 3);
	tc_disk_truncate(&c.nodes[3], 2); /* the unsynced writes are lost ... */
	c.nodes[3].hs.commit = 1;
	/* ... but its state machine had applied them (committed by the others) */
	ck_assert_uint_eq(c.nodes[3].applied, 3);
	c.nodes[3].manual = false;
	tc_start(&c, 3);
	ck_assert_uint_eq(raft_last_index(tc_r(&c, 3)), 1);
	tc_tick_all(&c, 3);
	ck_assert_uint_eq(raft_last_index(tc_r(&c, 3)), 3);
	ck_assert_uint_eq(raft_commit_of(tc_r(&c, 3)), 3);
	/* entries 2 and 3 came back but were not applied a second time */
	ck_assert_uint_eq(c.nodes[3].applied_normal, 2);
	tc_propose(&c, 1, "c");
	tc_stabilize(&c);
	ck_assert_uint_eq(c.nodes[3].applied_normal, 3);
	ck_assert_uint_eq(c.nodes[3].applied, 4);
	tc_free(&c);
}
END_TEST

/* After a crash the state machine (applied 3) may be ahead of a durable log that still holds
 * stale entries (a truncation was lost): commit must not be raised over them (sim seed
 * 55529), and the leader's entries replace them without being applied twice. */
START_TEST(test_restart_applied_ahead_of_stale_log)
{
	struct raft_config cfg;
	raft_config_default(&cfg, 2, 1);
	struct raft_entry ents[3] = {
		{.term = 1, .index = 1}, {.term = 2, .index = 2}, {.term = 2, .index = 3}};
	struct raft_restore rs = {.hard_state = {.term = 2, .commit = 1},
				  .conf = {.voters = {1, 2, 3}, .n_voters = 3},
				  .entries = ents,
				  .n_entries = 3,
				  .applied = 3};
	struct raft *r = raft_new(&cfg, &rs);
	ck_assert_uint_eq(raft_commit_of(r), 1);
	ck_assert_uint_eq(raft_applied_of(r), 3);
	ck_assert(!raft_has_ready(r));
	struct raft_entry fresh[2] = {{.term = 3, .index = 2}, {.term = 3, .index = 3}};
	struct raft_message m = {.type = RAFT_MSG_APPEND,
				 .from = 1,
				 .to = 2,
				 .term = 3,
				 .index = 1,
				 .log_term = 1,
				 .commit = 3,
				 .entries = fresh,
				 .n_entries = 2};
	ck_assert_int_eq(raft_step(r, &m), 0);
	struct raft_update u;
	raft_ready(r, &u);
	ck_assert_uint_eq(u.truncate_from, 2);
	ck_assert_uint_eq(u.n_entries, 2);
	ck_assert_uint_eq(u.entries[0].term, 3);
	ck_assert_uint_eq(raft_commit_of(r), 3);
	/* the recorded commit never covers entries of the same batch (a torn write could keep
	 * the record and lose them): it is recorded with the next update */
	ck_assert_uint_eq(u.hard_state.commit, 1);
	ck_assert_uint_eq(u.n_committed, 0); /* already applied before the crash */
	raft_advance(r, &u);
	ck_assert(raft_has_ready(r));
	raft_ready(r, &u);
	ck_assert(u.has_hard_state);
	ck_assert_uint_eq(u.hard_state.commit, 3);
	ck_assert_uint_eq(u.n_entries, 0);
	raft_advance(r, &u);
	ck_assert(!raft_has_ready(r));
	raft_free(r);
}
END_TEST

/* Heartbeats carry commit, but never beyond what the follower is known to hold. */
START_TEST(test_heartbeat_commit_capped_by_match)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	tc_init(&c, 3, 18);
	tc_elect(&c, 1);
	tc_isolate(&c, 3, true);
	for (int i = 0; i < 5; i++)
		tc_propose(&c, 1, "x");
	tc_stabilize(&c);
	struct raft *r = tc_r(&c, 1);
	raft_index match3 = raft_progress_of(r, 3)->match;
	ck_assert_uint_lt(match3, raft_commit_of(r));
	tc_tick(&c, 1);
	tc_ready(&c, 1);
	size_t seen = 0;
	for (size_t i = 0; i < c.qn; i++) {
		const struct raft_message *m = &c.q[i].m;
		if (m->type != RAFT_MSG_HEARTBEAT)
			continue;
		seen++;
		if (m->to == 3)
			ck_assert_uint_eq(m->commit, match3);
		else
			ck_assert_uint_eq(m->commit, raft_commit_of(r));
	}
	ck_assert_uint_eq(seen, 2);
	tc_free(&c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("raft_replication");
	TCase *tc = tcase_create("replication");
	tcase_add_test(tc, test_conflict_backoff_is_fast);
	tcase_add_test(tc, test_flow_control_limits);
	tcase_add_test(tc, test_many_entries_per_message);
	tcase_add_test(tc, test_commit_only_current_term);
	tcase_add_test(tc, test_leader_counts_itself_only_when_durable);
	tcase_add_test(tc, test_follower_ack_waits_for_persist);
	tcase_add_test(tc, test_lost_follower_tail_is_repaired);
	tcase_add_test(tc, test_restart_applied_ahead_of_stale_log);
	tcase_add_test(tc, test_heartbeat_commit_capped_by_match);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
