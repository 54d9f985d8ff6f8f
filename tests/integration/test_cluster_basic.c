/* test_cluster_basic.c — a three-node cluster serves puts and gets across every group through
 * any node (forwarding), answers NOT_LEADER with the leader's client address when redirects are
 * asked for, reports STATUS with every node's client address, and keeps replicas identical. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv/ring.h"
#include "tests/integration/cluster.h"

#define GROUPS 4

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

static void setup_unbalanced(void)
{
	struct cluster_opts o;
	cluster_opts_default(&o);
	o.groups = GROUPS;
	o.extra_args = "--balance-leaders off";
	c = cluster_start(&o);
	ck_assert_msg(c != NULL, "cluster did not start");
}

static void teardown(void)
{
	cluster_teardown(&c);
}

/* A request answered NOT_LEADER or UNAVAILABLE was definitely not done (a leadership moved
 * under it: the balancer spreads leaders after start, or an election on a loaded machine);
 * a client retries it, and so do these, for up to 10 s. */
static bool retryable(int code)
{
	return code == RINGRAFT__KV__CODE__NOT_LEADER || code == RINGRAFT__KV__CODE__UNAVAILABLE;
}

static int put_retrying(int node, const char *key, const char *val)
{
	uint64_t deadline = cluster_now_ms() + 10000;
	int code;
	do
		code = cluster_put(c, node, key, val, 3000);
	while (retryable(code) && cluster_now_ms() < deadline);
	return code;
}

static int get_retrying(int node, const char *key, char **got)
{
	uint64_t deadline = cluster_now_ms() + 10000;
	int code;
	do
		code = cluster_get(c, node, key, got, false, 3000);
	while (retryable(code) && cluster_now_ms() < deadline);
	return code;
}

/* ------------------------------------------------------------------------------ tests */
START_TEST(test_put_get_every_group_via_every_node)
{
	char key[64], val[64];
	bool group_hit[GROUPS + 1] = {0};
	struct kv_ring *ring = kv_ring_new(GROUPS, 128, 1);
	for (int i = 0; i < 120; i++) {
		snprintf(key, sizeof key, "k%03d", i);
		snprintf(val, sizeof val, "v%03d", i);
		group_hit[kv_ring_group_of(ring, key, strlen(key))] = true;
		int node = 1 + i % 3;
		int code = put_retrying(node, key, val);
		ck_assert_msg(code == RINGRAFT__KV__CODE__OK, "put %s via node %d: code %d", key,
			      node, code);
	}
	kv_ring_free(ring);
	for (int g = 1; g <= GROUPS; g++)
		ck_assert_msg(group_hit[g], "keys never hit group %d", g);
	for (int i = 0; i < 120; i++) {
		snprintf(key, sizeof key, "k%03d", i);
		snprintf(val, sizeof val, "v%03d", i);
		for (int node = 1; node <= 3; node++) {
			char *got = NULL;
			int code = get_retrying(node, key, &got);
			ck_assert_msg(code == RINGRAFT__KV__CODE__OK, "get %s via %d: code %d", key,
				      node, code);
			ck_assert_str_eq(got, val);
			free(got);
		}
	}
	char *got = NULL;
	ck_assert_int_eq(cluster_get(c, 2, "absent-key", &got, false, 3000),
			 RINGRAFT__KV__CODE__NOT_FOUND);
	ck_assert_int_eq(cluster_wait_digests_equal(c, 10000), 0);
}
END_TEST

START_TEST(test_redirect_names_the_leader)
{
	char key[64];
	cluster_key_in_group(c, 2, "redir", key, sizeof key);
	uint64_t leader = cluster_leader_of(c, 2, 5000);
	ck_assert_uint_ne(leader, 0);
	int other = (int)(leader % 3) + 1;
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__PUT;
	rq.key.data = (uint8_t *)key;
	rq.key.len = strlen(key);
	rq.value.data = (uint8_t *)"x";
	rq.value.len = 1;
	rq.redirect = true;
	Ringraft__Kv__Response *rs;
	ck_assert_int_eq(cluster_call(c, other, &rq, &rs, 3000), 0);
	ck_assert_int_eq(rs->code, RINGRAFT__KV__CODE__NOT_LEADER);
	ck_assert_uint_eq(rs->leader_hint, leader);
	ck_assert_str_eq(rs->leader_addr, cluster_client_addr(c, (int)leader));
	ringraft__kv__response__free_unpacked(rs, NULL);
	/* the definite NOT_LEADER really did not write */
	char *got = NULL;
	ck_assert_int_eq(cluster_get(c, (int)leader, key, &got, false, 3000),
			 RINGRAFT__KV__CODE__NOT_FOUND);
}
END_TEST

START_TEST(test_status_reports_ring_and_groups)
{
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__STATUS;
	Ringraft__Kv__Response *rs;
	ck_assert_int_eq(cluster_call(c, 3, &rq, &rs, 3000), 0);
	ck_assert_int_eq(rs->code, RINGRAFT__KV__CODE__OK);
	ck_assert_ptr_nonnull(rs->status);
	ck_assert_uint_eq(rs->status->id, 3);
	ck_assert_str_eq(rs->status->client_addr, cluster_client_addr(c, 3));
	ck_assert_uint_eq(rs->status->n_groups, GROUPS + 1); /* and the meta group */
	for (size_t i = 0; i < rs->status->n_groups; i++) {
		ck_assert_uint_eq(rs->status->groups[i]->n_voters, 3);
		ck_assert_uint_ne(rs->status->groups[i]->leader, 0);
	}
	ck_assert_ptr_nonnull(rs->ring);
	ck_assert_uint_eq(rs->ring->groups, GROUPS);
	ck_assert_uint_eq(rs->ring->meta_group, GROUPS + 1);
	ck_assert_uint_eq(rs->ring->vnodes, 128);
	ck_assert_uint_eq(rs->ring->epoch, 1);
	ck_assert_uint_eq(rs->ring->n_nodes, 3);
	for (size_t i = 0; i < 3; i++)
		ck_assert_str_eq(rs->ring->nodes[i]->client_addr,
				 cluster_client_addr(c, (int)rs->ring->nodes[i]->id));
	ringraft__kv__response__free_unpacked(rs, NULL);
}
END_TEST

START_TEST(test_cas_delete_scan)
{
	char key[64];
	cluster_key_in_group(c, 3, "cas", key, sizeof key);
	ck_assert_int_eq(cluster_put(c, 1, key, "a", 3000), RINGRAFT__KV__CODE__OK);
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__CAS;
	rq.key.data = (uint8_t *)key;
	rq.key.len = strlen(key);
	rq.expected.data = (uint8_t *)"zzz";
	rq.expected.len = 3;
	rq.value.data = (uint8_t *)"b";
	rq.value.len = 1;
	Ringraft__Kv__Response *rs;
	ck_assert_int_eq(cluster_call(c, 2, &rq, &rs, 3000), 0);
	ck_assert_int_eq(rs->code, RINGRAFT__KV__CODE__CAS_MISMATCH);
	ck_assert(rs->found);
	ck_assert_uint_eq(rs->value.len, 1);
	ck_assert_int_eq(rs->value.data[0], 'a');
	ringraft__kv__response__free_unpacked(rs, NULL);
	rq.expected.data = (uint8_t *)"a";
	rq.expected.len = 1;
	ck_assert_int_eq(cluster_call(c, 2, &rq, &rs, 3000), 0);
	ck_assert_int_eq(rs->code, RINGRAFT__KV__CODE__OK);
	ringraft__kv__response__free_unpacked(rs, NULL);
	char *got = NULL;
	ck_assert_int_eq(cluster_get(c, 3, key, &got, false, 3000), RINGRAFT__KV__CODE__OK);
	ck_assert_str_eq(got, "b");
	free(got);

	/* scan of group 3 sees the key */
	Ringraft__Kv__Request sq = RINGRAFT__KV__REQUEST__INIT;
	sq.op = RINGRAFT__KV__OP__SCAN;
	sq.group = 3;
	ck_assert_int_eq(cluster_call(c, 1, &sq, &rs, 3000), 0);
	ck_assert_int_eq(rs->code, RINGRAFT__KV__CODE__OK);
	bool seen = false;
	for (size_t i = 0; i < rs->n_kvs; i++)
		if (rs->kvs[i]->key.len == strlen(key) &&
		    memcmp(rs->kvs[i]->key.data, key, strlen(key)) == 0)
			seen = true;
	ck_assert(seen);
	ringraft__kv__response__free_unpacked(rs, NULL);

	Ringraft__Kv__Request dq = RINGRAFT__KV__REQUEST__INIT;
	dq.op = RINGRAFT__KV__OP__DELETE;
	dq.key.data = (uint8_t *)key;
	dq.key.len = strlen(key);
	ck_assert_int_eq(cluster_call(c, 3, &dq, &rs, 3000), 0);
	ck_assert_int_eq(rs->code, RINGRAFT__KV__CODE__OK);
	ringraft__kv__response__free_unpacked(rs, NULL);
	ck_assert_int_eq(cluster_get(c, 1, key, &got, false, 3000), RINGRAFT__KV__CODE__NOT_FOUND);
}
END_TEST

START_TEST(test_leaders_spread)
{
	/* with balancing, no node leads more than ceil(G/N) groups once settled */
	uint64_t deadline = cluster_now_ms() + 20000;
	int counts[4];
	for (;;) {
		memset(counts, 0, sizeof counts);
		for (uint32_t g = 1; g <= GROUPS; g++)
			counts[cluster_leader_of(c, g, 3000)]++;
		int maxc = 0;
		for (int i = 1; i <= 3; i++)
			if (counts[i] > maxc)
				maxc = counts[i];
		if (counts[0] == 0 && maxc <= (GROUPS + 2) / 3)
			break;
		ck_assert_msg(cluster_now_ms() < deadline, "leaders not spread: %d %d %d",
			      counts[1], counts[2], counts[3]);
		struct timespec ts = {0, 200 * 1000000L};
		nanosleep(&ts, NULL);
	}
}
END_TEST

START_TEST(test_transfer_leader_and_forwarding_follow)
{
	const uint32_t g = 1;
	uint64_t leader = cluster_leader_of(c, g, 5000);
	ck_assert_uint_ne(leader, 0);
	uint64_t target = leader % 3 + 1;
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__TRANSFER_LEADER;
	rq.group = g;
	rq.target = target;
	Ringraft__Kv__Response *rs;
	/* sent to a node that is not the leader: it is forwarded */
	int via = (int)(target % 3) + 1;
	if ((uint64_t)via == leader)
		via = (int)target;
	ck_assert_int_eq(cluster_call(c, via, &rq, &rs, 3000), 0);
	ck_assert_int_eq(rs->code, RINGRAFT__KV__CODE__OK);
	ringraft__kv__response__free_unpacked(rs, NULL);
	uint64_t deadline = cluster_now_ms() + 5000;
	while (cluster_leader_of(c, g, 1000) != target && cluster_now_ms() < deadline)
		;
	ck_assert_uint_eq(cluster_leader_of(c, g, 1000), target);
	/* writes through every node follow the new leader */
	char key[64];
	cluster_key_in_group(c, g, "moved", key, sizeof key);
	for (int node = 1; node <= 3; node++) {
		int code = -1;
		uint64_t end = cluster_now_ms() + 3000;
		while (code != RINGRAFT__KV__CODE__OK && cluster_now_ms() < end)
			code = cluster_put(c, node, key, "after-transfer", 1000);
		ck_assert_int_eq(code, RINGRAFT__KV__CODE__OK);
	}
	/* a transfer to a node outside the group is refused, definitely */
	rq.target = 99;
	ck_assert_int_eq(cluster_call(c, (int)target, &rq, &rs, 3000), 0);
	ck_assert_int_eq(rs->code, RINGRAFT__KV__CODE__INVALID);
	ringraft__kv__response__free_unpacked(rs, NULL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cluster_basic");
	TCase *tc = tcase_create("three nodes");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_put_get_every_group_via_every_node);
	tcase_add_test(tc, test_redirect_names_the_leader);
	tcase_add_test(tc, test_status_reports_ring_and_groups);
	tcase_add_test(tc, test_cas_delete_scan);
	tcase_add_test(tc, test_leaders_spread);
	suite_add_tcase(s, tc);
	TCase *tc2 = tcase_create("no balancing");
	tcase_add_checked_fixture(tc2, setup_unbalanced, teardown);
	tcase_set_timeout(tc2, 120);
	tcase_add_test(tc2, test_transfer_leader_and_forwarding_follow);
	suite_add_tcase(s, tc2);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
