/* test_restart.c — durability across whole-cluster restarts: every acknowledged write is read
 * back after (1) SIGTERM of all three nodes (each exits 0) and a restart with only --data-dir,
 * and (2) kill -9 of all three and a restart. Also: a node restarted after falling far behind
 * with a small --snapshot-entries catches up by InstallSnapshot. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/integration/cluster.h"

#define GROUPS 4
#define OK     RINGRAFT__KV__CODE__OK

static struct cluster *c;

static void teardown(void)
{
	cluster_teardown(&c);
}

START_TEST(test_sigterm_all_and_restart_loses_nothing)
{
	struct cluster_opts o;
	cluster_opts_default(&o);
	o.groups = GROUPS;
	c = cluster_start(&o);
	ck_assert_ptr_nonnull(c);
	cluster_write_acked(c, "term", 200, 0);
	for (int i = 1; i <= 3; i++)
		ck_assert_int_eq(cluster_term(c, i), 0);
	ck_assert_int_eq(cluster_restart(c, 1), 0);
	/* alone, node 1 still names every node's client address (persisted from the Hellos) */
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__STATUS;
	Ringraft__Kv__Response *rs;
	ck_assert_int_eq(cluster_call(c, 1, &rq, &rs, 3000), 0);
	ck_assert_ptr_nonnull(rs->ring);
	ck_assert_uint_eq(rs->ring->n_nodes, 3);
	for (size_t i = 0; i < 3; i++)
		ck_assert_str_eq(rs->ring->nodes[i]->client_addr,
				 cluster_client_addr(c, (int)rs->ring->nodes[i]->id));
	ck_assert_str_eq(rs->status->health, "degraded");
	ringraft__kv__response__free_unpacked(rs, NULL);
	for (int i = 2; i <= 3; i++)
		ck_assert_int_eq(cluster_restart(c, i), 0);
	ck_assert_int_eq(cluster_wait_leaders(c, 20000), 0);
	cluster_read_back(c, "term", 200, 0);
	ck_assert_int_eq(cluster_wait_digests_equal(c, 20000), 0);
}
END_TEST

START_TEST(test_kill9_all_and_restart_loses_nothing)
{
	struct cluster_opts o;
	cluster_opts_default(&o);
	o.groups = GROUPS;
	c = cluster_start(&o);
	ck_assert_ptr_nonnull(c);
	cluster_write_acked(c, "kill", 200, 0);
	for (int i = 1; i <= 3; i++)
		cluster_kill(c, i);
	for (int i = 1; i <= 3; i++)
		ck_assert_int_eq(cluster_restart(c, i), 0);
	ck_assert_int_eq(cluster_wait_leaders(c, 20000), 0);
	cluster_read_back(c, "kill", 200, 0);
	cluster_write_acked(c, "more", 50, 0);
	cluster_read_back(c, "more", 50, 0);
}
END_TEST

START_TEST(test_restarted_node_catches_up_by_snapshot)
{
	struct cluster_opts o;
	cluster_opts_default(&o);
	o.groups = GROUPS;
	o.snapshot_entries = 32;
	c = cluster_start(&o);
	ck_assert_ptr_nonnull(c);
	cluster_write_acked(c, "snapA", 40, 0);
	cluster_kill(c, 3);
	/* 400 writes over 4 groups: ~100 entries per group, well past 32 + the trailing margin */
	cluster_write_acked(c, "snapB", 400, 3);
	/* let the survivors compact (maintenance runs every 250 ms) */
	ck_assert(cluster_wait_log(c, 1, "log compacted", 1, 10000));
	ck_assert_int_eq(cluster_restart(c, 3), 0);
	ck_assert_int_eq(cluster_wait_digests_equal(c, 30000), 0);
	ck_assert_msg(cluster_log_grep(c, 3, "snapshot installed") > 0,
		      "node 3 caught up without a snapshot");
	cluster_read_back(c, "snapB", 400, 0);
	/* and it restarts cleanly from its installed snapshot */
	ck_assert_int_eq(cluster_term(c, 3), 0);
	ck_assert_int_eq(cluster_restart(c, 3), 0);
	ck_assert_int_eq(cluster_wait_digests_equal(c, 20000), 0);
}
END_TEST

START_TEST(test_snapshot_of_several_chunks)
{
	struct cluster_opts o;
	cluster_opts_default(&o);
	o.groups = 2;
	o.snapshot_entries = 32;
	c = cluster_start(&o);
	ck_assert_ptr_nonnull(c);
	cluster_kill(c, 2);
	/* ~3 MiB per group: the snapshot needs several 1 MiB chunks */
	static char val[24 * 1024 + 1];
	char key[64];
	for (int i = 0; i < 260; i++) {
		snprintf(key, sizeof key, "big%04d", i);
		memset(val, 'a' + i % 26, sizeof val - 1);
		snprintf(val, 16, "%08d", i);
		val[8] = '-';
		ck_assert(cluster_put_any(c, key, val, 2));
	}
	ck_assert(cluster_wait_log(c, 1, "log compacted", 1, 10000));
	ck_assert_int_eq(cluster_restart(c, 2), 0);
	ck_assert_int_eq(cluster_wait_digests_equal(c, 30000), 0);
	ck_assert_int_gt(cluster_log_grep(c, 2, "snapshot installed"), 0);
	for (int i = 0; i < 260; i += 37) {
		snprintf(key, sizeof key, "big%04d", i);
		char *got = NULL;
		ck_assert_int_eq(cluster_get(c, 2, key, &got, true, 3000), OK);
		ck_assert_uint_eq(strlen(got), sizeof val - 1);
		ck_assert_int_eq(atoi(got), i);
		free(got);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("restart");
	TCase *tc = tcase_create("restart");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, test_sigterm_all_and_restart_loses_nothing);
	tcase_add_test(tc, test_kill9_all_and_restart_loses_nothing);
	tcase_add_test(tc, test_restarted_node_catches_up_by_snapshot);
	tcase_add_test(tc, test_snapshot_of_several_chunks);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
