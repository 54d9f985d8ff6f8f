/* test_failover.c — faults against a three-node cluster: kill -9 a group leader (writes to that
 * group succeed again within 2 s; the node restarts and catches up by log), SIGSTOP a follower
 * while writing (it catches up after SIGCONT), and a node cut off from both others never
 * answers a linearizable read with stale data. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/integration/cluster.h"

#define GROUPS 4
#define OK     RINGRAFT__KV__CODE__OK

/* ------------------------------------------------------------------------------ fixture */
static struct cluster *c;

static void setup(void)
{
	struct cluster_opts o;
	cluster_opts_default(&o);
	o.groups = GROUPS;
	c = cluster_start(&o);
	ck_assert_msg(c != NULL, "cluster did not start");
}

static void setup_slow_elections(void)
{
	struct cluster_opts o;
	cluster_opts_default(&o);
	o.groups = GROUPS;
	o.election_ms = 2000;
	o.heartbeat_ms = 100;
	c = cluster_start(&o);
	ck_assert_msg(c != NULL, "cluster did not start");
}

static void teardown(void)
{
	cluster_teardown(&c);
}

/* ------------------------------------------------------------------------------ helpers */
/* Writes through any running node other than `avoid` until one succeeds or deadline. */
static bool put_somewhere(const char *key, const char *val, int avoid, uint64_t deadline)
{
	for (int attempt = 0; cluster_now_ms() < deadline; attempt++) {
		int node = 1 + attempt % 3;
		if (node == avoid || !cluster_running(c, node))
			continue;
		if (cluster_put(c, node, key, val, 300) == OK)
			return true;
	}
	return false;
}

static void write_many(const char *prefix, int n, int avoid)
{
	char key[64], val[64];
	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof key, "%s%04d", prefix, i);
		snprintf(val, sizeof val, "val-%s-%d", prefix, i);
		ck_assert_msg(put_somewhere(key, val, avoid, cluster_now_ms() + 5000),
			      "write %s failed", key);
	}
}

static void check_many(const char *prefix, int n, int node)
{
	char key[64], val[64];
	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof key, "%s%04d", prefix, i);
		snprintf(val, sizeof val, "val-%s-%d", prefix, i);
		char *got = NULL;
		ck_assert_int_eq(cluster_get(c, node, key, &got, true, 2000), OK);
		ck_assert_str_eq(got, val);
		free(got);
	}
}

/* ------------------------------------------------------------------------------ tests */
START_TEST(test_kill_leader_writes_resume_within_2s_and_it_catches_up)
{
	write_many("pre", 40, 0);
	const uint32_t g = 2;
	uint64_t leader = cluster_leader_of(c, g, 5000);
	ck_assert_uint_ne(leader, 0);
	char key[64];
	cluster_key_in_group(c, g, "failover", key, sizeof key);
	uint64_t t0 = cluster_now_ms();
	cluster_kill(c, (int)leader);
	ck_assert(put_somewhere(key, "after-kill", (int)leader, t0 + 5000));
	uint64_t took = cluster_now_ms() - t0;
	fprintf(stderr, "failover: group %u writable again %llu ms after kill -9 of node %llu\n", g,
		(unsigned long long)took, (unsigned long long)leader);
	ck_assert_msg(took < 2000, "writes to group %u resumed only after %llu ms", g,
		      (unsigned long long)took);
	write_many("during", 60, (int)leader);
	ck_assert_int_eq(cluster_restart(c, (int)leader), 0);
	ck_assert_int_eq(cluster_wait_digests_equal(c, 20000), 0);
	check_many("pre", 40, (int)leader);
	check_many("during", 60, (int)leader);
	char *got = NULL;
	ck_assert_int_eq(cluster_get(c, (int)leader, key, &got, true, 2000), OK);
	ck_assert_str_eq(got, "after-kill");
	free(got);
}
END_TEST

START_TEST(test_stopped_follower_catches_up)
{
	const uint32_t g = 1;
	uint64_t leader = cluster_leader_of(c, g, 5000);
	ck_assert_uint_ne(leader, 0);
	int follower = (int)(leader % 3) + 1;
	cluster_stop(c, follower);
	write_many("stopped", 150, follower);
	cluster_cont(c, follower);
	ck_assert_int_eq(cluster_wait_digests_equal(c, 20000), 0);
	check_many("stopped", 150, follower);
}
END_TEST

START_TEST(test_isolated_node_never_reads_stale)
{
	char key[64];
	cluster_key_in_group(c, 3, "stale", key, sizeof key);
	ck_assert(put_somewhere(key, "v1", 0, cluster_now_ms() + 5000));
	ck_assert_int_eq(cluster_wait_digests_equal(c, 10000), 0);
	/* node x misses v2 */
	int x = (int)cluster_leader_of(c, 3, 5000); /* the hardest case: x led the group */
	ck_assert_int_ne(x, 0);
	int a = x % 3 + 1, b = a % 3 + 1;
	cluster_stop(c, x);
	ck_assert(put_somewhere(key, "v2", x, cluster_now_ms() + 10000));
	/* now cut x off: stop the two others, then wake x */
	cluster_stop(c, a);
	cluster_stop(c, b);
	cluster_cont(c, x);
	char *got = NULL;
	ck_assert_int_eq(cluster_get(c, x, key, &got, true, 2000), OK);
	ck_assert_str_eq(got, "v1"); /* x really holds stale data */
	free(got);
	uint64_t end = cluster_now_ms() + 3000;
	int answers = 0;
	while (cluster_now_ms() < end) {
		Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
		rq.op = RINGRAFT__KV__OP__GET;
		rq.key.data = (uint8_t *)key;
		rq.key.len = strlen(key);
		rq.timeout_ms = 500;
		Ringraft__Kv__Response *rs;
		if (cluster_call(c, x, &rq, &rs, 1500) == 0) {
			answers++;
			if (rs->code == OK)
				ck_assert_msg(
					rs->value.len == 2 && memcmp(rs->value.data, "v2", 2) == 0,
					"isolated node answered a linearizable read with stale "
					"data");
			else
				ck_assert_msg(rs->code == RINGRAFT__KV__CODE__TIMEOUT ||
						      rs->code == RINGRAFT__KV__CODE__NOT_LEADER ||
						      rs->code == RINGRAFT__KV__CODE__UNAVAILABLE,
					      "unexpected code %d", rs->code);
			ringraft__kv__response__free_unpacked(rs, NULL);
		}
	}
	ck_assert_int_gt(answers, 0); /* it kept answering (with errors), it did not hang */
	cluster_cont(c, a);
	cluster_cont(c, b);
	ck_assert_int_eq(cluster_wait_leaders(c, 10000), 0);
	ck_assert_int_eq(cluster_get(c, x, key, &got, false, 3000), OK);
	ck_assert_str_eq(got, "v2");
	free(got);
}
END_TEST

START_TEST(test_sigterm_hands_leadership_off)
{
	/* elections take >= 2 s here; a clean stop hands its groups over much faster */
	const uint32_t g = 1;
	uint64_t leader = cluster_leader_of(c, g, 10000);
	ck_assert_uint_ne(leader, 0);
	char key[64];
	cluster_key_in_group(c, g, "handoff", key, sizeof key);
	ck_assert(put_somewhere(key, "before", 0, cluster_now_ms() + 5000));
	uint64_t t0 = cluster_now_ms();
	ck_assert_int_eq(cluster_term(c, (int)leader), 0);
	ck_assert(put_somewhere(key, "after", (int)leader, t0 + 5000));
	uint64_t took = cluster_now_ms() - t0;
	fprintf(stderr, "handoff: group %u writable %llu ms after SIGTERM of its leader\n", g,
		(unsigned long long)took);
	ck_assert_msg(took < 1500, "writes resumed only after %llu ms (no handoff?)",
		      (unsigned long long)took);
	ck_assert_int_gt(cluster_log_grep(c, (int)leader, "handoff to="), 0);
	ck_assert_int_eq(cluster_restart(c, (int)leader), 0);
	ck_assert_int_eq(cluster_wait_digests_equal(c, 20000), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("failover");
	TCase *tc = tcase_create("faults");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, test_kill_leader_writes_resume_within_2s_and_it_catches_up);
	tcase_add_test(tc, test_stopped_follower_catches_up);
	tcase_add_test(tc, test_isolated_node_never_reads_stale);
	suite_add_tcase(s, tc);
	TCase *tc2 = tcase_create("slow elections");
	tcase_add_checked_fixture(tc2, setup_slow_elections, teardown);
	tcase_set_timeout(tc2, 120);
	tcase_add_test(tc2, test_sigterm_hands_leadership_off);
	suite_add_tcase(s, tc2);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
