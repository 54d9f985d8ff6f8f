/* test_wal_inline.c — kvd --wal-writer inline (the event loop writes and syncs each WAL batch
 * itself, no writer thread): a cluster in that mode serves, loses no acknowledged write when a
 * leader is killed (-9) and comes back, brings every replica to the same state, and drains
 * and exits 0 on SIGTERM with its last batch written. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/integration/cluster.h"

#define GROUPS 4
#define OK     RINGRAFT__KV__CODE__OK

static struct cluster *c;

static void teardown(void)
{
	cluster_teardown(&c);
}

static void start_inline(void)
{
	struct cluster_opts o;
	cluster_opts_default(&o);
	o.groups = GROUPS;
	o.extra_args = "--wal-writer inline";
	c = cluster_start(&o);
	ck_assert_ptr_nonnull(c);
	for (int n = 1; n <= 3; n++)
		ck_assert_msg(cluster_log_grep(c, n, "wal_writer=inline") > 0,
			      "node %d does not say it writes the WAL inline", n);
}

START_TEST(test_leader_killed_loses_nothing)
{
	start_inline();
	cluster_write_acked(c, "before", 300, 0);
	uint64_t leader = cluster_leader_of(c, 1, 5000);
	ck_assert_msg(leader >= 1 && leader <= 3, "group 1 has no leader");
	cluster_kill(c, (int)leader);
	cluster_write_acked(c, "during", 200, 0); /* the two others elect and commit without it */
	ck_assert_int_eq(cluster_restart(c, (int)leader), 0);
	cluster_write_acked(c, "after", 100, 0);
	ck_assert_msg(cluster_wait_digests_equal(c, 30000) == 0,
		      "replicas differ 30 s after the restart");
	for (int via = 1; via <= 3; via++) {
		cluster_read_back(c, "before", 300, via);
		cluster_read_back(c, "during", 200, via);
		cluster_read_back(c, "after", 100, via);
	}
}
END_TEST

START_TEST(test_sigterm_drains_and_restart_loses_nothing)
{
	start_inline();
	cluster_write_acked(c, "term", 300, 0);
	for (int n = 1; n <= 3; n++)
		ck_assert_int_eq(cluster_term(c, n), 0); /* exits 0: its last batch written */
	for (int n = 1; n <= 3; n++)
		ck_assert_int_eq(cluster_restart(c, n), 0);
	ck_assert_int_eq(cluster_wait_leaders(c, 20000), 0);
	cluster_read_back(c, "term", 300, 1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("wal_inline");
	TCase *tc = tcase_create("wal_inline");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, test_leader_killed_loses_nothing);
	tcase_add_test(tc, test_sigterm_drains_and_restart_loses_nothing);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
