/* test_snapshot.c — compaction and InstallSnapshot: raft_compact drops entries (keeping a
 * trailing margin); a follower behind the first index gets the snapshot in chunks, installs
 * it (log reset to the snapshot point, commit/applied moved) and then the rest by
 * AppendEntries; a failed chunk is retried; a node restarts from a snapshot. */
#include <check.h>

#include "raft/raft_impl.h"
#include "tests/unit/raft/raft_test_helper.h"

START_TEST(test_compact_bounds)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	tc_init(&c, 3, 41);
	tc_elect(&c, 1);
	for (int i = 0; i < 10; i++)
		tc_propose(&c, 1, "x");
	tc_stabilize(&c);
	struct raft *r = tc_r(&c, 1);
	ck_assert_uint_eq(raft_applied_of(r), 11);
	ck_assert_int_eq(raft_compact(r, 12, 0), RAFT_EUNAVAILABLE);
	ck_assert_int_eq(raft_compact(r, 8, 3), 0);
	ck_assert_uint_eq(raft_first_index(r), 6); /* 5 entries kept as a margin */
	ck_assert_uint_eq(raft_snapshot_index_of(r), 8);
	ck_assert_ptr_null(raft_entry_at(r, 5));
	ck_assert_ptr_nonnull(raft_entry_at(r, 6));
	ck_assert_int_eq(raft_compact(r, 4, 0), 0); /* older than the snapshot: nothing */
	ck_assert_uint_eq(raft_first_index(r), 6);
	tc_free(&c);
}
END_TEST

static void lagging_follower_setup(struct tc *c, uint64_t seed)
{
	tc_init(c, 3, seed);
	tc_elect(c, 1);
	tc_isolate(c, 3, true);
	for (int i = 0; i < 20; i++)
		tc_propose(c, 1, "x");
	tc_stabilize(c);
	ck_assert_int_eq(raft_compact(tc_r(c, 1), 18, 0), 0);
	ck_assert_int_eq(raft_compact(tc_r(c, 2), 18, 0), 0);
	tc_isolate(c, 3, false);
}

START_TEST(test_install_in_chunks)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	lagging_follower_setup(&c, 42);
	uint64_t snaps = c.sent_by_type[RAFT_MSG_SNAPSHOT];
	tc_tick_all(&c, 3);
	/* 100 bytes in chunks of 32: 4 chunks, one at a time */
	ck_assert_uint_eq(c.sent_by_type[RAFT_MSG_SNAPSHOT] - snaps, 4);
	struct raft *f = tc_r(&c, 3);
	ck_assert_uint_eq(raft_snapshot_index_of(f), 18);
	ck_assert_uint_eq(raft_first_index(f), 19);
	ck_assert_uint_eq(raft_last_index(f), 21);
	ck_assert_uint_eq(raft_commit_of(f), 21);
	ck_assert_uint_eq(c.nodes[3].applied, 21);
	ck_assert_uint_eq(c.nodes[3].snap_index, 18);
	ck_assert_uint_eq(c.nodes[3].snap_conf.n_voters, 3);
	/* replication goes on normally afterwards */
	tc_propose(&c, 1, "y");
	tc_stabilize(&c);
	ck_assert_uint_eq(c.nodes[3].applied, 22);
	tc_free(&c);
}
END_TEST

START_TEST(test_failed_chunk_retried)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	lagging_follower_setup(&c, 43);
	c.nodes[1].snap_fail = true;
	tc_tick_all(&c, 3);
	ck_assert_uint_eq(c.nodes[3].snap_index, 0);
	ck_assert_uint_lt(raft_last_index(tc_r(&c, 3)), 18);
	c.nodes[1].snap_fail = false;
	tc_tick_all(&c, 3);
	ck_assert_uint_eq(c.nodes[3].snap_index, 18);
	ck_assert_uint_eq(c.nodes[3].applied, 21);
	tc_free(&c);
}
END_TEST

START_TEST(test_lost_chunk_retried)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	lagging_follower_setup(&c, 44);
	/* run until the first chunk is on the wire, and lose it */
	tc_tick(&c, 1);
	bool lost = false;
	for (int guard = 0; guard < 1000 && !lost; guard++) {
		for (raft_id i = 1; i <= 3; i++)
			tc_ready(&c, i);
		for (size_t k = 0; k < c.qn; k++) {
			if (c.q[k].m.type == RAFT_MSG_SNAPSHOT) {
				ck_assert_uint_eq(c.q[k].m.snap_offset, 0);
				tc_msg_free(&c.q[k]);
				memmove(c.q + k, c.q + k + 1, (c.qn - k - 1) * sizeof(c.q[0]));
				c.qn--;
				lost = true;
				break;
			}
		}
		if (!lost)
			tc_deliver_one(&c);
	}
	ck_assert(lost);
	tc_stabilize(&c);
	tc_tick_all(&c, 3);
	ck_assert_uint_eq(c.nodes[3].snap_index, 0);
	tc_tick_all(&c, 12);
	ck_assert_uint_eq(c.nodes[3].snap_index, 18);
	ck_assert_uint_eq(c.nodes[3].applied, 21);
	tc_free(&c);
}
END_TEST

START_TEST(test_restart_from_snapshot)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	lagging_follower_setup(&c, 45);
	tc_tick_all(&c, 3);
	tc_restart(&c, 3);
	struct raft *f = tc_r(&c, 3);
	ck_assert_uint_eq(raft_first_index(f), 19);
	ck_assert_uint_eq(raft_commit_of(f), 21);
	ck_assert_uint_eq(raft_applied_of(f), 21);
	ck_assert_uint_eq(raft_conf_of(f)->n_voters, 3);
	tc_tick_all(&c, 3);
	ck_assert_uint_eq(tc_leader(&c, NULL), 1);
	tc_free(&c);
}
END_TEST

/* A follower whose state machine is ahead of its log (it applied entries, then lost them
 * from its log in a crash) gets a snapshot older than its state: the log is reset, the state
 * machine is not moved back, and nothing is applied twice. */
START_TEST(test_snapshot_behind_state_machine)
{
	static struct tc c; /* 5.8 MB: too big for a stack frame (see raft_test_helper.h) */
	tc_init(&c, 3, 46);
	tc_elect(&c, 1);
	c.nodes[3].manual = true;
	for (int i = 0; i < 10; i++)
		tc_propose(&c, 1, "x");
	tc_stabilize(&c);
	ck_assert_uint_eq(c.nodes[3].applied, 11);
	ck_assert_uint_eq(c.nodes[3].applied_normal, 10);
	tc_crash(&c, 3);
	tc_disk_truncate(&c.nodes[3], 2);
	c.nodes[3].hs.commit = 1;
	c.nodes[3].manual = false;
	for (int i = 0; i < 5; i++)
		tc_propose(&c, 1, "y");
	tc_stabilize(&c);
	ck_assert_int_eq(raft_compact(tc_r(&c, 1), 8, 0), 0);
	tc_start(&c, 3);
	tc_tick_all(&c, 3);
	ck_assert_uint_eq(c.nodes[3].snap_index, 8);
	ck_assert_uint_eq(c.nodes[3].applied, 16);
	ck_assert_uint_eq(c.nodes[3].applied_normal, 15);
	ck_assert_uint_eq(raft_commit_of(tc_r(&c, 3)), 16);
	tc_free(&c);
}
END_TEST

/* A snapshot whose last entry our log already holds does not reset the log: entries after it
 * may have been acknowledged (losing them broke leader completeness in sim seed 22602). */
START_TEST(test_snapshot_matching_log_keeps_suffix)
{
	struct raft_config cfg;
	raft_config_default(&cfg, 2, 1);
	struct raft_entry ents[5];
	for (int i = 0; i < 5; i++)
		ents[i] = (struct raft_entry){.term = 1, .index = (raft_index)i + 1};
	struct raft_restore rs = {.hard_state = {.term = 1, .commit = 2},
				  .conf = {.voters = {1, 2, 3}, .n_voters = 3},
				  .entries = ents,
				  .n_entries = 5};
	struct raft *r = raft_new(&cfg, &rs);
	char data[4] = "abc";
	struct raft_message m = {.type = RAFT_MSG_SNAPSHOT,
				 .from = 1,
				 .to = 2,
				 .term = 1,
				 .snap_index = 4,
				 .snap_term = 1,
				 .snap_conf = rs.conf,
				 .snap_data = {data, 4},
				 .snap_done = true};
	ck_assert_int_eq(raft_step(r, &m), 0);
	struct raft_update u;
	raft_ready(r, &u);
	ck_assert_ptr_null(u.snap_chunk);
	ck_assert_uint_eq(u.hard_state.commit, 4);
	ck_assert_uint_eq(raft_last_index(r), 5);
	ck_assert_uint_eq(u.n_msgs_after_persist, 1);
	ck_assert_int_eq(u.msgs_after_persist[0].type, RAFT_MSG_SNAPSHOT_RESP);
	ck_assert(u.msgs_after_persist[0].snap_done);
	ck_assert_uint_eq(u.msgs_after_persist[0].index, 4);
	raft_advance(r, &u);
	raft_free(r);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("raft_snapshot");
	TCase *tc = tcase_create("snapshot");
	tcase_add_test(tc, test_compact_bounds);
	tcase_add_test(tc, test_install_in_chunks);
	tcase_add_test(tc, test_failed_chunk_retried);
	tcase_add_test(tc, test_lost_chunk_retried);
	tcase_add_test(tc, test_restart_from_snapshot);
	tcase_add_test(tc, test_snapshot_behind_state_machine);
	tcase_add_test(tc, test_snapshot_matching_log_keeps_suffix);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
