/* test_placement.c — five nodes, three replicas per group: a node that hosts none of a key's
 * replicas serves the request anyway (it forwards to the group's leader, following NOT_LEADER
 * hints, so a client that knows nothing of placement needs no retry), also after the group's
 * leadership moved; it still names a host when the client asks for redirects; and a write it
 * answered is on every replica.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/integration/cluster.h"

#define GROUPS 6
#define NODES  5

/* ------------------------------------------------------------------------------ fixture */
static struct cluster *c;

static void setup(void)
{
	struct cluster_opts o;
	cluster_opts_default(&o);
	o.groups = GROUPS;
	o.nodes = NODES;
	o.extra_args = "--balance-leaders off --auto-balance off"; /* it moves things itself */
	c = cluster_start(&o);
	ck_assert_msg(c != NULL, "cluster did not start");
}

static void teardown(void)
{
	cluster_teardown(&c);
}

/* ------------------------------------------------------------------------------ helpers */

/* hosted[g] = true when node lists group g in its STATUS (it hosts a replica). */
static void hosted_by(int node, bool hosted[GROUPS + 2])
{
	memset(hosted, 0, sizeof(bool) * (GROUPS + 2));
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__STATUS;
	Ringraft__Kv__Response *rs;
	ck_assert_int_eq(cluster_call(c, node, &rq, &rs, 3000), 0);
	ck_assert_int_eq(rs->code, RINGRAFT__KV__CODE__OK);
	for (size_t i = 0; i < rs->status->n_groups; i++) {
		uint32_t g = rs->status->groups[i]->group;
		ck_assert(g >= 1 && g <= GROUPS + 1); /* + the meta group */
		ck_assert_uint_eq(rs->status->groups[i]->n_voters, 3);
		hosted[g] = true;
	}
	ringraft__kv__response__free_unpacked(rs, NULL);
}

/* A node that hosts no replica of g (there are two of five). */
static int outsider_of(uint32_t g)
{
	for (int node = 1; node <= NODES; node++) {
		bool hosted[GROUPS + 2];
		hosted_by(node, hosted);
		if (!hosted[g])
			return node;
	}
	ck_abort_msg("every node hosts group %u", g);
	return 0;
}

static uint64_t host_other_than(uint32_t g, uint64_t not_this)
{
	for (int node = 1; node <= NODES; node++) {
		bool hosted[GROUPS + 2];
		hosted_by(node, hosted);
		if (hosted[g] && (uint64_t)node != not_this)
			return (uint64_t)node;
	}
	return 0;
}

/* ------------------------------------------------------------------------------ tests */

START_TEST(test_every_node_hosts_three_of_five)
{
	int replicas[GROUPS + 2] = {0};
	for (int node = 1; node <= NODES; node++) {
		bool hosted[GROUPS + 2];
		hosted_by(node, hosted);
		for (int g = 1; g <= GROUPS + 1; g++) /* the meta group is placed the same way */
			replicas[g] += hosted[g];
	}
	for (int g = 1; g <= GROUPS + 1; g++)
		ck_assert_msg(replicas[g] == 3, "group %d has %d replicas", g, replicas[g]);
}
END_TEST

START_TEST(test_outsider_serves_every_group)
{
	char key[64], val[64];
	for (uint32_t g = 1; g <= GROUPS; g++) {
		int out = outsider_of(g);
		cluster_key_in_group(c, g, "outside", key, sizeof key);
		snprintf(val, sizeof val, "v-%u", g);
		/* one call each, no retry: the outsider forwards, the client never sees a hint */
		int code = cluster_put(c, out, key, val, 3000);
		ck_assert_msg(code == RINGRAFT__KV__CODE__OK, "put to group %u via outsider %d: %d",
			      g, out, code);
		char *got = NULL;
		code = cluster_get(c, out, key, &got, false, 3000);
		ck_assert_msg(code == RINGRAFT__KV__CODE__OK, "get via outsider %d: %d", out, code);
		ck_assert_str_eq(got, val);
		free(got);
		got = NULL;
		code = cluster_get(c, out, key, &got, true, 3000); /* serializable: at a host */
		ck_assert_msg(code == RINGRAFT__KV__CODE__OK, "serializable get via %d: %d", out,
			      code);
		free(got);
		ck_assert_int_eq(cluster_get(c, out, "no-such-key-anywhere", NULL, false, 3000),
				 RINGRAFT__KV__CODE__NOT_FOUND);
	}
	/* what the outsiders acknowledged is on every replica */
	ck_assert_int_eq(cluster_wait_digests_equal(c, 10000), 0);
}
END_TEST

START_TEST(test_outsider_follows_a_moved_leader)
{
	const uint32_t g = 2;
	int out = outsider_of(g);
	char key[64];
	cluster_key_in_group(c, g, "moved", key, sizeof key);
	ck_assert_int_eq(cluster_put(c, out, key, "before", 3000), RINGRAFT__KV__CODE__OK);
	/* the outsider now knows the leader; move the leadership to another host */
	uint64_t leader = cluster_leader_of(c, g, 5000);
	ck_assert_uint_ne(leader, 0);
	uint64_t target = host_other_than(g, leader);
	ck_assert_uint_ne(target, 0);
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__TRANSFER_LEADER;
	rq.group = g;
	rq.target = target;
	Ringraft__Kv__Response *rs;
	ck_assert_int_eq(cluster_call(c, (int)leader, &rq, &rs, 3000), 0);
	ck_assert_int_eq(rs->code, RINGRAFT__KV__CODE__OK);
	ringraft__kv__response__free_unpacked(rs, NULL);
	uint64_t deadline = cluster_now_ms() + 5000;
	while (cluster_leader_of(c, g, 1000) != target && cluster_now_ms() < deadline)
		;
	ck_assert_uint_eq(cluster_leader_of(c, g, 1000), target);
	/* its leader hint is stale: the old leader answers NOT_LEADER, the outsider follows */
	ck_assert_int_eq(cluster_put(c, out, key, "after", 3000), RINGRAFT__KV__CODE__OK);
	char *got = NULL;
	ck_assert_int_eq(cluster_get(c, (int)target, key, &got, false, 3000),
			 RINGRAFT__KV__CODE__OK);
	ck_assert_str_eq(got, "after");
	free(got);
}
END_TEST

START_TEST(test_outsider_redirects_when_asked)
{
	const uint32_t g = 3;
	int out = outsider_of(g);
	char key[64];
	cluster_key_in_group(c, g, "redir", key, sizeof key);
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__PUT;
	rq.key.data = (uint8_t *)key;
	rq.key.len = strlen(key);
	rq.value.data = (uint8_t *)"x";
	rq.value.len = 1;
	rq.redirect = true;
	Ringraft__Kv__Response *rs;
	ck_assert_int_eq(cluster_call(c, out, &rq, &rs, 3000), 0);
	ck_assert_int_eq(rs->code, RINGRAFT__KV__CODE__NOT_LEADER);
	ck_assert_uint_ne(rs->leader_hint, 0);
	bool hosted[GROUPS + 2];
	hosted_by((int)rs->leader_hint, hosted);
	ck_assert_msg(hosted[g], "the hint %llu does not host group %u",
		      (unsigned long long)rs->leader_hint, g);
	ck_assert_str_eq(rs->leader_addr, cluster_client_addr(c, (int)rs->leader_hint));
	ringraft__kv__response__free_unpacked(rs, NULL);
	/* that NOT_LEADER did not write */
	ck_assert_int_eq(cluster_get(c, out, key, NULL, false, 3000),
			 RINGRAFT__KV__CODE__NOT_FOUND);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("placement");
	TCase *tc = tcase_create("five nodes");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_every_node_hosts_three_of_five);
	tcase_add_test(tc, test_outsider_serves_every_group);
	tcase_add_test(tc, test_outsider_follows_a_moved_leader);
	tcase_add_test(tc, test_outsider_redirects_when_asked);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
