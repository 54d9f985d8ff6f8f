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

/* A definite answer within 8 s from any running node (a client retries NOT_LEADER and
 * UNAVAILABLE while a leader is elected). */
static bool put_any(const char *key, const char *val)
{
	uint64_t deadline = cluster_now_ms() + 8000;
	for (int attempt = 0; cluster_now_ms() < deadline; attempt++) {
		int node = 1 + attempt % 3;
		if (cluster_running(c, node) && cluster_put(c, node, key, val, 1000) == OK)
			return true;
	}
	return false;
}

static void write_acked(const char *prefix, int n)
{
	char key[64], val[64];
	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof key, "%s%04d", prefix, i);
		snprintf(val, sizeof val, "%s-value-%d", prefix, i);
		ck_assert_msg(put_any(key, val), "write %s not acknowledged", key);
	}
}

/* Every key read back through node `via` (linearizable: through the group's leader). */
static void read_back(const char *prefix, int n, int via)
{
	char key[64], val[64];
	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof key, "%s%04d", prefix, i);
		snprintf(val, sizeof val, "%s-value-%d", prefix, i);
		char *got = NULL;
		int code = -1;
		uint64_t deadline = cluster_now_ms() + 8000;
		while (cluster_now_ms() < deadline) {
			code = cluster_get(c, via, key, &got, false, 1000);
			if (code == OK || code == RINGRAFT__KV__CODE__NOT_FOUND)
				break;
		}
		ck_assert_msg(code == OK, "acknowledged write %s lost (code %d via %d)", key, code,
			      via);
		ck_assert_str_eq(got, val);
		free(got);
	}
}

START_TEST(test_leader_killed_loses_nothing)
{
	start_inline();
	write_acked("before", 300);
	uint64_t leader = cluster_leader_of(c, 1, 5000);
	ck_assert_msg(leader >= 1 && leader <= 3, "group 1 has no leader");
	cluster_kill(c, (int)leader);
	write_acked("during", 200); /* the two others elect and commit without it */
	ck_assert_int_eq(cluster_restart(c, (int)leader), 0);
	write_acked("after", 100);
	ck_assert_msg(cluster_wait_digests_equal(c, 30000) == 0,
		      "replicas differ 30 s after the restart");
	for (int via = 1; via <= 3; via++) {
		read_back("before", 300, via);
		read_back("during", 200, via);
		read_back("after", 100, via);
	}
}
END_TEST

START_TEST(test_sigterm_drains_and_restart_loses_nothing)
{
	start_inline();
	write_acked("term", 300);
	for (int n = 1; n <= 3; n++)
		ck_assert_int_eq(cluster_term(c, n), 0); /* exits 0: its last batch written */
	for (int n = 1; n <= 3; n++)
		ck_assert_int_eq(cluster_restart(c, n), 0);
	ck_assert_int_eq(cluster_wait_leaders(c, 20000), 0);
	read_back("term", 300, 1);
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
