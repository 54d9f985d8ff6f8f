/* test_members.c — a cluster whose member list changes while it serves (node/members.c): three
 * bootstrap members grow to five (`kvctl member add`, `kvd --join`; the balancer,
 * node/rebalance.c, moves replicas to them by itself) under a write load, every acknowledged
 * write readable afterwards and the replicas of every group (the meta group included) spread
 * evenly; then shrink back to three (`kvctl member remove`: the member leaves, its replicas
 * move away, it is removed), the removed nodes stopping by themselves; a dead node (kill -9,
 * data directory gone) replaced by a new one (`kvctl member replace`); the same by hand with
 * the balancer off (`member fill`, drain); and requests that would break the map refused.
 */
#include <check.h>
#include <fcntl.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/integration/cluster.h"

#define GROUPS 4
#define ALL    (GROUPS + 1) /* the meta group is group GROUPS + 1 */

static struct cluster *c;

static void start(int nodes, int boot, bool auto_balance)
{
	struct cluster_opts o;
	cluster_opts_default(&o);
	o.groups = GROUPS;
	o.nodes = nodes;
	o.boot_nodes = boot;
	/* with the balancer, leaderships are spread too (--balance-leaders, the default) */
	o.extra_args = auto_balance ? NULL : "--balance-leaders off --auto-balance off";
	c = cluster_start(&o);
	ck_assert_msg(c != NULL, "cluster did not start");
}

static void teardown(void)
{
	cluster_teardown(&c);
}

static void nap_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Runs kvctl with args against the cluster's endpoints (node 1..3: the bootstrap members);
 * returns its exit status. */
static int kvctl(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int kvctl(const char *fmt, ...)
{
	char eps[128];
	snprintf(eps, sizeof eps, "%s,%s", cluster_client_addr(c, 1), cluster_client_addr(c, 2));
	va_list ap;
	va_start(ap, fmt);
	int rc = cluster_kvctlv(c, eps, 60, NULL, fmt, ap);
	va_end(ap);
	return rc;
}

/* Every group as the running nodes 1..nodes report it: the voters the replica with the
 * highest term sees (a recovering one aside), and the replica that says it leads, with the
 * highest term (0: none). One STATUS per node. */
struct group_view {
	uint64_t term, voters[8], leader, leader_term;
	size_t n_voters;
};

static void read_groups(int nodes, struct group_view gv[ALL + 1])
{
	memset(gv, 0, sizeof(struct group_view) * (ALL + 1));
	for (int i = 1; i <= nodes; i++) {
		if (!cluster_running(c, i))
			continue;
		Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
		rq.op = RINGRAFT__KV__OP__STATUS;
		Ringraft__Kv__Response *rs;
		if (cluster_call(c, i, &rq, &rs, 2000) < 0)
			continue;
		for (size_t k = 0; rs->status && k < rs->status->n_groups; k++) {
			Ringraft__Kv__GroupStatus *gs = rs->status->groups[k];
			if (gs->group < 1 || gs->group > ALL)
				continue;
			struct group_view *x = &gv[gs->group];
			if (gs->role != NULL && strcmp(gs->role, "leader") == 0 &&
			    gs->term >= x->leader_term) {
				x->leader_term = gs->term;
				x->leader = (uint64_t)i;
			}
			if (gs->term < x->term || gs->recovering)
				continue;
			x->term = gs->term;
			x->n_voters = 0;
			for (size_t v = 0; v < gs->n_voters && x->n_voters < 8; v++)
				x->voters[x->n_voters++] = gs->voters[v];
		}
		ringraft__kv__response__free_unpacked(rs, NULL);
	}
}

/* The voters of group g (read_groups). */
static size_t voters_of(int nodes, uint32_t g, uint64_t out[8])
{
	struct group_view gv[ALL + 1];
	read_groups(nodes, gv);
	memcpy(out, gv[g].voters, gv[g].n_voters * sizeof *out);
	return gv[g].n_voters;
}

static void put_keys(const char *prefix, int from, int to)
{
	char key[64], val[64];
	for (int i = from; i < to; i++) {
		snprintf(key, sizeof key, "%s-%d", prefix, i);
		snprintf(val, sizeof val, "v%d", i);
		/* a definite refusal (no leader for a moment while leaderships and replicas move,
		 * a node busy) is asked again, as a client does; anything else must be ok */
		int rc = -1;
		for (int tries = 0; tries < 50; tries++) {
			rc = cluster_put(c, 1 + i % 2, key, val, 5000);
			if (rc != RINGRAFT__KV__CODE__UNAVAILABLE && rc != RINGRAFT__KV__CODE__NOT_LEADER &&
			    rc != RINGRAFT__KV__CODE__BUSY)
				break;
			nap_ms(100);
		}
		ck_assert_int_eq(rc, RINGRAFT__KV__CODE__OK);
	}
}

static void check_keys(int node, const char *prefix, int n)
{
	char key[64], val[64];
	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof key, "%s-%d", prefix, i);
		snprintf(val, sizeof val, "v%d", i);
		char *got = NULL;
		/* right after moves a leadership may be changing hands: a client asks again
		 * (bounded) when told no leader is known */
		int rc = -1;
		for (int tries = 0; tries < 50; tries++) {
			rc = cluster_get(c, node, key, &got, false, 5000);
			if (rc != RINGRAFT__KV__CODE__NOT_LEADER &&
			    rc != RINGRAFT__KV__CODE__UNAVAILABLE)
				break;
			nap_ms(100);
		}
		ck_assert_msg(rc == RINGRAFT__KV__CODE__OK, "key %s: code %d from node %d", key, rc,
			      node);
		ck_assert_str_eq(got, val);
		free(got);
	}
}

/* Waits (bounded) until node's process has exited by itself. */
static bool exits_within(int node, int ms)
{
	for (int waited = 0; waited < ms; waited += 50) {
		if (cluster_died(c, node))
			return true;
		nap_ms(50);
	}
	return false;
}

/* Waits (bounded) until node answers STATUS: a node just started. */
static void wait_answers(int node)
{
	for (int waited = 0; waited < 20000; waited += 100) {
		Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
		rq.op = RINGRAFT__KV__OP__STATUS;
		Ringraft__Kv__Response *rs;
		if (cluster_call(c, node, &rq, &rs, 1000) == 0) {
			ringraft__kv__response__free_unpacked(rs, NULL);
			return;
		}
		nap_ms(100);
	}
	ck_abort_msg("node %d does not answer", node);
}

/* A background write load: kvctl bench against the bootstrap members. */
static pid_t load_start(void)
{
	const char *bin = getenv("RINGRAFT_BIN");
	char eps[256];
	snprintf(eps, sizeof eps, "%s,%s", cluster_client_addr(c, 1), cluster_client_addr(c, 2));
	pid_t pid = fork();
	ck_assert(pid >= 0);
	if (pid == 0) {
		char path[600];
		snprintf(path, sizeof path, "%s/kvctl", bin);
		int fd = open("/dev/null", 1);
		if (fd >= 0)
			dup2(fd, 1);
		execl(path, path, "--endpoints", eps, "--timeout", "20s", "bench", "--op", "put",
		      "--clients", "8", "--requests", "20000", "--keys", "2000", (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* Whether every group has 3 voters and every node of 1..nodes holds the floor or the
 * ceiling of 3 * ALL / nodes of them. */
static bool balanced(int nodes, bool verbose)
{
	size_t held[8] = {0};
	struct group_view gv[ALL + 1];
	read_groups(nodes, gv);
	for (uint32_t g = 1; g <= ALL; g++) {
		const uint64_t *v = gv[g].voters;
		size_t n = gv[g].n_voters;
		if (n != 3) {
			if (verbose)
				fprintf(stderr, "group %u has %zu voters\n", g, n);
			return false;
		}
		for (size_t k = 0; k < n; k++)
			if (v[k] < 8)
				held[v[k]]++;
	}
	for (int node = 1; node <= nodes; node++)
		if (held[node] != 3 * ALL / (size_t)nodes &&
		    held[node] != (3 * ALL + (size_t)nodes - 1) / (size_t)nodes) {
			if (verbose)
				fprintf(stderr, "node %d holds %zu replicas\n", node, held[node]);
			return false;
		}
	return true;
}

/* Whether every node of 1..nodes leads the floor or the ceiling of ALL / nodes groups (as the
 * replica that says it leads, with the highest term, tells). */
static bool leaders_balanced(int nodes, bool verbose)
{
	size_t leads[8] = {0};
	struct group_view gv[ALL + 1];
	read_groups(nodes, gv);
	for (uint32_t g = 1; g <= ALL; g++) {
		if (gv[g].leader == 0)
			return false;
		leads[gv[g].leader]++;
	}
	for (int node = 1; node <= nodes; node++)
		if (leads[node] != ALL / (size_t)nodes &&
		    leads[node] != (ALL + (size_t)nodes - 1) / (size_t)nodes) {
			if (verbose)
				fprintf(stderr, "node %d leads %zu groups\n", node, leads[node]);
			return false;
		}
	return true;
}

static void grow(bool auto_balance)
{
	start(5, 3, auto_balance);
	put_keys("grow", 0, 100);
	pid_t load = load_start();
	for (int node = 4; node <= 5; node++) {
		ck_assert_int_eq(kvctl("member add %d %s %s", node, cluster_peer_addr(c, node),
				       cluster_client_addr(c, node)),
				 0);
		ck_assert_int_eq(cluster_join(c, node), 0);
		wait_answers(node);
		put_keys("grow", 100 + (node - 4) * 50, 150 + (node - 4) * 50);
	}
	if (!auto_balance)
		for (int node = 4; node <= 5; node++)
			ck_assert_int_eq(kvctl("member fill %d", node), 0);
	int st;
	ck_assert_int_eq(waitpid(load, &st, 0), load);
	/* 3 replicas of each of the ALL groups over 5 nodes: floor or ceiling of 15/5 each;
	 * the balancer gets there by itself (bounded wait) */
	bool ok = false;
	for (int waited = 0; waited < 60000 && !ok; waited += 250) {
		ok = balanced(5, false);
		if (!ok)
			nap_ms(250);
	}
	ck_assert_msg(ok || balanced(5, true), "replicas not balanced within 60 s");
	if (auto_balance) {
		/* and leaderships: floor or ceiling of 5/5 = 1 each */
		ok = false;
		for (int waited = 0; waited < 30000 && !ok; waited += 250) {
			ok = leaders_balanced(5, false);
			if (!ok)
				nap_ms(250);
		}
		ck_assert_msg(ok || leaders_balanced(5, true), "leaderships not balanced in 30 s");
	}
	/* every acknowledged write, read through a joined node (which forwards what it does
	 * not host) */
	check_keys(4, "grow", 200);
}

START_TEST(test_grow_to_five_and_shrink_to_three)
{
	grow(true);
	/* shrink: each removal moves the replicas away, then the node leaves and stops */
	for (int node = 5; node >= 4; node--) {
		ck_assert_int_eq(kvctl("member remove %d", node), 0);
		ck_assert_msg(exits_within(node, 10000), "removed node %d did not stop", node);
		ck_assert_int_eq(cluster_log_grep(c, node, "removed from the cluster") > 0, 1);
	}
	for (uint32_t g = 1; g <= ALL; g++) {
		uint64_t v[8];
		size_t n = voters_of(3, g, v);
		ck_assert_msg(n == 3, "group %u has %zu voters after the shrink", g, n);
		for (size_t k = 0; k < n; k++)
			ck_assert_msg(v[k] <= 3, "removed node %llu still votes in group %u",
				      (unsigned long long)v[k], g);
	}
	check_keys(3, "grow", 200);
	/* a removed id never comes back */
	ck_assert_int_eq(kvctl("member add 5 %s %s 2>/dev/null", cluster_peer_addr(c, 5),
			       cluster_client_addr(c, 5)),
			 2);
}
END_TEST

START_TEST(test_grow_by_hand)
{
	grow(false); /* member fill, then member remove drains by itself */
	for (int node = 5; node >= 4; node--) {
		ck_assert_int_eq(kvctl("member remove %d", node), 0);
		ck_assert_msg(exits_within(node, 10000), "removed node %d did not stop", node);
	}
	ck_assert(balanced(3, true));
	check_keys(2, "grow", 200);
}
END_TEST

START_TEST(test_replace_a_dead_node)
{
	start(4, 3, true);
	put_keys("rep", 0, 100);
	/* the machine of node 3 dies for good */
	cluster_kill(c, 3);
	ck_assert_int_eq(cluster_wipe(c, 3), 0);
	ck_assert_int_eq(kvctl("member add 4 %s %s", cluster_peer_addr(c, 4),
			       cluster_client_addr(c, 4)),
			 0);
	ck_assert_int_eq(cluster_join(c, 4), 0);
	wait_answers(4);
	ck_assert_int_eq(kvctl("member replace 3 4 %s %s", cluster_peer_addr(c, 4),
			       cluster_client_addr(c, 4)),
			 0);
	/* until every group has 3 healthy replicas again, none of them node 3's (bounded: the
	 * last replica's move may still be finishing when kvctl sees node 3 hold none) */
	bool healed = false;
	for (int waited = 0; waited < 60000 && !healed; waited += 250) {
		healed = true;
		for (uint32_t g = 1; g <= ALL && healed; g++) {
			uint64_t v[8];
			size_t n = voters_of(4, g, v);
			healed = n == 3;
			for (size_t k = 0; k < n; k++)
				healed &= v[k] != 3;
		}
		if (!healed)
			nap_ms(250);
	}
	ck_assert_msg(healed, "groups not back to 3 replicas without node 3 within 60 s");
	check_keys(4, "rep", 100);
	ck_assert_int_eq(cluster_wait_digests_equal(c, 15000), 0);
}
END_TEST

START_TEST(test_refusals)
{
	start(3, 3, true);
	/* an id already a member; an address already used; a bad address */
	ck_assert_int_eq(kvctl("member add 2 127.0.0.99:1 127.0.0.99:2 2>/dev/null"), 2);
	ck_assert_int_eq(kvctl("member add 7 %s 127.0.0.99:2 2>/dev/null",
			       cluster_peer_addr(c, 2)),
			 2);
	ck_assert_int_eq(kvctl("member add 7 nonsense 127.0.0.99:2 2>/dev/null"), 2);
	/* removing a member that still holds replicas, asked directly (kvctl would move them
	 * first): refused, the map unchanged */
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__MEMBER_REMOVE;
	rq.target = 3;
	Ringraft__Kv__Response *rs;
	ck_assert_int_eq(cluster_call(c, 1, &rq, &rs, 5000), 0);
	ck_assert_int_eq(rs->code, RINGRAFT__KV__CODE__INVALID);
	ck_assert_ptr_nonnull(strstr(rs->error, "holds replicas"));
	ringraft__kv__response__free_unpacked(rs, NULL);
	/* with three members, removing one is refused (no three others to hold the replicas) */
	ck_assert_int_eq(kvctl("member remove 3 2>/dev/null"), 2);
	ck_assert_int_eq(kvctl("member list"), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("members");
	TCase *tc = tcase_create("members");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_grow_to_five_and_shrink_to_three);
	tcase_add_test(tc, test_grow_by_hand);
	tcase_add_test(tc, test_replace_a_dead_node);
	tcase_add_test(tc, test_refusals);
	suite_add_tcase(s, tc);
	SRunner *r = srunner_create(s);
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}
