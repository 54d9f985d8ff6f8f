/* test_move.c — moving a group's replica between nodes of a five-node cluster while it serves:
 * `kvctl group move` steps (learner, catch-up, promotion, leadership handed away, removal) end
 * with the target holding a voting replica with every acknowledged write and the source none
 * (its replica retired, also across a restart); a move whose source leads the group hands the
 * leadership over first; a move interrupted by a kill -9 of the target resumes; nonsense moves
 * are refused; `kvctl member drain` of a node killed and wiped for good rebuilds all its
 * replicas on the others, and `member fill` gives its share back to a new node with its id.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "tests/integration/cluster.h"

#define GROUPS 4
#define NODES  5

/* ------------------------------------------------------------------------------ fixture */
static struct cluster *c;

static void setup(void)
{
	struct cluster_opts o;
	cluster_opts_default(&o);
	o.groups = GROUPS;
	o.nodes = NODES;
	o.extra_args = "--balance-leaders off --auto-balance off"; /* moves by hand */
	c = cluster_start(&o);
	ck_assert_msg(c != NULL, "cluster did not start");
}

static void teardown(void)
{
	cluster_teardown(&c);
}

/* ------------------------------------------------------------------------------ helpers */

static void nap_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Whether node lists group g in its STATUS, and as what (voter / learner). -1: no answer. */
static int hosts(int node, uint32_t g, bool *voter)
{
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__STATUS;
	Ringraft__Kv__Response *rs;
	if (cluster_call(c, node, &rq, &rs, 2000) < 0)
		return -1;
	int found = 0;
	for (size_t i = 0; rs->status && i < rs->status->n_groups; i++) {
		Ringraft__Kv__GroupStatus *gs = rs->status->groups[i];
		if (gs->group != g)
			continue;
		found = 1;
		if (voter) {
			*voter = false;
			for (size_t k = 0; k < gs->n_voters; k++)
				if (gs->voters[k] == (uint64_t)node)
					*voter = true;
		}
	}
	ringraft__kv__response__free_unpacked(rs, NULL);
	return found;
}

static int outsider(uint32_t g)
{
	for (int node = 1; node <= NODES; node++)
		if (hosts(node, g, NULL) == 0)
			return node;
	ck_abort_msg("every node hosts group %u", g);
	return 0;
}

static int follower(uint32_t g, uint64_t leader)
{
	for (int node = 1; node <= NODES; node++)
		if ((uint64_t)node != leader && hosts(node, g, NULL) == 1)
			return node;
	ck_abort_msg("group %u has no follower", g);
	return 0;
}

/* One MOVE_REPLICA step through `via`: the response code; *done, and the progress text. */
static int step(int via, uint32_t g, int from, int to, bool *done, char *text, size_t len)
{
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__MOVE_REPLICA;
	rq.group = g;
	rq.source = (uint64_t)from;
	rq.target = (uint64_t)to;
	Ringraft__Kv__Response *rs;
	*done = false;
	if (cluster_call(c, via, &rq, &rs, 3000) < 0)
		return -1;
	int code = rs->code;
	*done = rs->done;
	snprintf(text, len, "%s", code == 0 ? rs->progress : rs->error);
	ringraft__kv__response__free_unpacked(rs, NULL);
	return code;
}

/* Steps through any running node until done (bounded); writes key-i between the steps. */
static void move_with_writes(uint32_t g, int from, int to, const char *prefix, int *written)
{
	uint64_t deadline = cluster_now_ms() + 60000;
	bool done = false;
	int via = 1;
	char text[200] = "", name[64], key[80], val[64];
	while (!done) {
		ck_assert_msg(cluster_now_ms() < deadline, "move of group %u %d->%d not done: %s",
			      g, from, to, text);
		while (!cluster_running(c, via))
			via = via % NODES + 1;
		int code = step(via, g, from, to, &done, text, sizeof text);
		ck_assert_msg(code != RINGRAFT__KV__CODE__INVALID, "move refused: %s", text);
		via = via % NODES + 1;
		snprintf(name, sizeof name, "%s-%d", prefix, *written);
		snprintf(val, sizeof val, "v%d", *written);
		cluster_key_in_group(c, g, name, key, sizeof key);
		if (cluster_put(c, via <= NODES && cluster_running(c, via) ? via : to, key, val,
				2000) == RINGRAFT__KV__CODE__OK)
			(*written)++;
		nap_ms(50);
	}
}

static void assert_all_readable(uint32_t g, const char *prefix, int written, int via)
{
	char name[64], key[80], val[64];
	for (int i = 0; i < written; i++) {
		snprintf(name, sizeof name, "%s-%d", prefix, i);
		snprintf(val, sizeof val, "v%d", i);
		cluster_key_in_group(c, g, name, key, sizeof key);
		char *got = NULL;
		int code = cluster_get(c, via, key, &got, false, 3000);
		ck_assert_msg(code == RINGRAFT__KV__CODE__OK, "%s via %d: code %d", key, via, code);
		ck_assert_str_eq(got, val);
		free(got);
	}
}

/* Waits (bounded) until node no longer lists group g. */
static void wait_retired(int node, uint32_t g)
{
	uint64_t deadline = cluster_now_ms() + 20000;
	while (hosts(node, g, NULL) != 0) {
		ck_assert_msg(cluster_now_ms() < deadline, "node %d still hosts group %u", node, g);
		nap_ms(100);
	}
}

/* ------------------------------------------------------------------------------ tests */

START_TEST(test_move_follower_replica)
{
	const uint32_t g = 1;
	uint64_t leader = cluster_leader_of(c, g, 5000);
	ck_assert_uint_ne(leader, 0);
	int from = follower(g, leader), to = outsider(g);
	int written = 0;
	move_with_writes(g, from, to, "mf", &written);
	ck_assert_int_gt(written, 0);
	bool voter = false;
	ck_assert_int_eq(hosts(to, g, &voter), 1);
	ck_assert(voter);
	wait_retired(from, g);
	assert_all_readable(g, "mf", written, from); /* through the node that left: forwarded */
	ck_assert_int_eq(cluster_wait_digests_equal(c, 15000), 0);
	/* the target's own copy has every write (serializable reads are served locally) */
	char name[64], key[80];
	snprintf(name, sizeof name, "mf-%d", written - 1);
	cluster_key_in_group(c, g, name, key, sizeof key);
	char *got = NULL;
	ck_assert_int_eq(cluster_get(c, to, key, &got, true, 3000), RINGRAFT__KV__CODE__OK);
	free(got);
	/* the retired replica stays retired across a restart; the moved one comes back */
	ck_assert_int_eq(cluster_term(c, from), 0);
	cluster_kill(c, to); /* and one that did not stop cleanly */
	ck_assert_int_eq(cluster_restart(c, from), 0);
	ck_assert_int_eq(cluster_restart(c, to), 0);
	ck_assert_int_eq(cluster_wait_leaders(c, 20000), 0);
	ck_assert_int_eq(hosts(from, g, NULL), 0);
	ck_assert_int_eq(hosts(to, g, &voter), 1);
	ck_assert(voter);
	assert_all_readable(g, "mf", written, to);
}
END_TEST

START_TEST(test_move_leader_replica)
{
	const uint32_t g = 2;
	uint64_t leader = cluster_leader_of(c, g, 5000);
	ck_assert_uint_ne(leader, 0);
	int to = outsider(g);
	int written = 0;
	move_with_writes(g, (int)leader, to, "ml", &written);
	wait_retired((int)leader, g);
	uint64_t now = cluster_leader_of(c, g, 10000);
	ck_assert_uint_ne(now, 0);
	ck_assert_uint_ne(now, leader);
	assert_all_readable(g, "ml", written, (int)leader);
	ck_assert_int_eq(cluster_wait_digests_equal(c, 15000), 0);
}
END_TEST

START_TEST(test_move_resumes_after_target_killed)
{
	const uint32_t g = 3;
	uint64_t leader = cluster_leader_of(c, g, 5000);
	int from = follower(g, leader), to = outsider(g);
	bool done = false;
	char text[200];
	/* first step: the target is added as a learner; then it dies */
	ck_assert_int_eq(step((int)leader, g, from, to, &done, text, sizeof text), 0);
	ck_assert(!done);
	cluster_kill(c, to);
	for (int i = 0; i < 20; i++) {
		char name[64], key[80];
		snprintf(name, sizeof name, "mk-%d", i);
		cluster_key_in_group(c, g, name, key, sizeof key);
		ck_assert_int_eq(cluster_put(c, from, key, "v", 3000), RINGRAFT__KV__CODE__OK);
	}
	/* the move cannot finish without it, and never leaves the group without a majority */
	ck_assert_int_eq(step((int)leader, g, from, to, &done, text, sizeof text), 0);
	ck_assert_msg(!done, "a move finished while its target was down: %s", text);
	ck_assert_int_eq(cluster_restart(c, to), 0);
	int written = 0;
	move_with_writes(g, from, to, "mr", &written);
	wait_retired(from, g);
	assert_all_readable(g, "mr", written, to);
	ck_assert_int_eq(cluster_wait_digests_equal(c, 15000), 0);
}
END_TEST

START_TEST(test_nonsense_moves_refused)
{
	const uint32_t g = 4;
	uint64_t leader = cluster_leader_of(c, g, 5000);
	int in = follower(g, leader), out = outsider(g), out2 = 0;
	for (int node = 1; node <= NODES; node++)
		if (node != out && hosts(node, g, NULL) == 0)
			out2 = node;
	ck_assert_int_ne(out2, 0);
	bool done;
	char text[200];
	/* from a node that holds no replica, to one that holds none either */
	ck_assert_int_eq(step(in, g, out, out2, &done, text, sizeof text),
			 RINGRAFT__KV__CODE__INVALID);
	ck_assert_msg(strstr(text, "holds no replica") != NULL, "%s", text);
	/* to itself, to a stranger */
	ck_assert_int_eq(step(in, g, in, in, &done, text, sizeof text),
			 RINGRAFT__KV__CODE__INVALID);
	ck_assert_int_eq(step(in, g, in, 42, &done, text, sizeof text),
			 RINGRAFT__KV__CODE__INVALID);
	/* nothing changed */
	ck_assert_int_eq(hosts(out, g, NULL), 0);
	ck_assert_int_eq(hosts(in, g, NULL), 1);
}
END_TEST

/* Voters of group g as the leader reports them (0 when no leader answered). */
static size_t voters_of(uint32_t g, uint64_t out[NODES])
{
	uint64_t leader = cluster_leader_of(c, g, 5000);
	if (leader == 0)
		return 0;
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__STATUS;
	Ringraft__Kv__Response *rs;
	if (cluster_call(c, (int)leader, &rq, &rs, 2000) < 0)
		return 0;
	size_t n = 0;
	for (size_t i = 0; rs->status && i < rs->status->n_groups; i++)
		if (rs->status->groups[i]->group == g)
			for (size_t k = 0; k < rs->status->groups[i]->n_voters && n < NODES; k++)
				out[n++] = rs->status->groups[i]->voters[k];
	ringraft__kv__response__free_unpacked(rs, NULL);
	return n;
}

START_TEST(test_drain_a_dead_node)
{
	const int dead = 2;
	char name[64], key[80], val[64];
	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof name, "dr-%d", i);
		cluster_key_in_group(c, 1 + (uint32_t)i % GROUPS, name, key, sizeof key);
		snprintf(val, sizeof val, "v%d", i);
		ck_assert_int_eq(cluster_put(c, 1, key, val, 3000), RINGRAFT__KV__CODE__OK);
	}
	/* the machine dies for good: kill -9, data directory gone */
	cluster_kill(c, dead);
	ck_assert_int_eq(cluster_wipe(c, dead), 0);
	const char *bin = getenv("RINGRAFT_BIN");
	ck_assert_ptr_nonnull(bin);
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "%s/kvctl --endpoints %s --timeout 60s member drain %d >&2", bin,
		 cluster_endpoints(c), dead);
	ck_assert_int_eq(system(cmd), 0);
	for (uint32_t g = 1; g <= GROUPS + 1; g++) { /* the meta group moved off it too */
		uint64_t v[NODES];
		size_t n = voters_of(g, v);
		ck_assert_msg(n == 3, "group %u has %zu voters after the drain", g, n);
		for (size_t k = 0; k < n; k++)
			ck_assert_msg(v[k] != (uint64_t)dead, "node %d still votes in group %u", dead,
				      g);
	}
	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof name, "dr-%d", i);
		cluster_key_in_group(c, 1 + (uint32_t)i % GROUPS, name, key, sizeof key);
		snprintf(val, sizeof val, "v%d", i);
		char *got = NULL;
		ck_assert_int_eq(cluster_get(c, 3, key, &got, false, 3000), RINGRAFT__KV__CODE__OK);
		ck_assert_str_eq(got, val);
		free(got);
	}
	ck_assert_int_eq(cluster_wait_digests_equal(c, 15000), 0);
	/* a second drain finds nothing to move; an unknown node is refused */
	ck_assert_int_eq(system(cmd), 0);
	snprintf(cmd, sizeof cmd, "%s/kvctl --endpoints %s member drain 9 2>/dev/null", bin,
		 cluster_endpoints(c));
	int st = system(cmd);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2);
	/* a new machine takes the dead one's place (same id, empty directory) and is filled */
	ck_assert_int_eq(cluster_restart_fresh(c, dead), 0);
	snprintf(cmd, sizeof cmd, "%s/kvctl --endpoints %s --timeout 60s member fill %d >&2", bin,
		 cluster_endpoints(c), dead);
	ck_assert_int_eq(system(cmd), 0);
	size_t held = 0;
	for (uint32_t g = 1; g <= GROUPS + 1; g++) { /* the meta group is a group too */
		uint64_t v[NODES];
		size_t n = voters_of(g, v);
		ck_assert_msg(n == 3, "group %u has %zu voters after the fill", g, n);
		for (size_t k = 0; k < n; k++)
			held += v[k] == (uint64_t)dead;
	}
	ck_assert_uint_eq(held, 3 * (GROUPS + 1) / NODES); /* its share: floor(3G/N) */
	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof name, "dr-%d", i);
		cluster_key_in_group(c, 1 + (uint32_t)i % GROUPS, name, key, sizeof key);
		snprintf(val, sizeof val, "v%d", i);
		char *got = NULL;
		ck_assert_int_eq(cluster_get(c, dead, key, &got, false, 3000),
				 RINGRAFT__KV__CODE__OK);
		ck_assert_str_eq(got, val);
		free(got);
	}
	ck_assert_int_eq(cluster_wait_digests_equal(c, 15000), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("move");
	TCase *tc = tcase_create("five nodes");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, test_move_follower_replica);
	tcase_add_test(tc, test_move_leader_replica);
	tcase_add_test(tc, test_move_resumes_after_target_killed);
	tcase_add_test(tc, test_nonsense_moves_refused);
	tcase_add_test(tc, test_drain_a_dead_node);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
