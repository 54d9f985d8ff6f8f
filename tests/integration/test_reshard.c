/* test_reshard.c — ring changes while the cluster serves (issue 18, node/reshard.c,
 * node/reshard_drive.c, docs/DESIGN-NOTES.md "Resharding").
 *
 * Decided and held (kvd --reshard-pause on: the meta leader's driver moves no key): `kvctl
 * groups add` writes the meta group's ring record with the new group's replicas, every node
 * creates the group, which elects on its three replicas and is listed by `kvctl groups` with
 * no share of the keys yet; a second change while the first is not final is refused; a node
 * restarted in the middle keeps the group; `kvctl groups remove` of that group rolls the change
 * back and retires it on every node, for good (a restart does not bring it back, its id is
 * never used again); unknown and meta group ids, and more ids than a cluster may add, are
 * refused.
 *
 * Moved (the driver on, as by default): an add completes, the new group serves its share of
 * the keys, and every key reads back with its value; removing the group moves its keys back
 * and retires it. With five nodes (the meta group on three) every node learns each change,
 * two of them only from the meta leader's push.
 *
 * kvctl's cluster views follow the ids: `status` lists the added groups and the meta group
 * (and stops once they are retired), `member list` counts their replicas, and `member drain`
 * and `member fill` move them like any group's. Existing keys are written and read
 * throughout.
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "tests/integration/cluster.h"

#define GROUPS 4
#define META   (GROUPS + 1) /* the meta group */
#define KEYS   60

static struct cluster *c;

/* A cluster of `nodes` with GROUPS key groups; extra: more kvd flags (NULL: none). */
static void start(int nodes, const char *extra)
{
	struct cluster_opts o;
	cluster_opts_default(&o);
	o.groups = GROUPS;
	o.nodes = nodes;
	if (extra != NULL)
		o.extra_args = extra;
	c = cluster_start(&o);
	ck_assert_msg(c != NULL, "cluster did not start");
}

static void setup(void)
{
	start(3, NULL);
}

/* Three nodes whose meta leader, whichever it is, moves no key: changes stay planned. */
static void setup_paused(void)
{
	start(3, "--reshard-pause on");
}

/* Five nodes, changes decided but held (kvd --reshard-pause on). */
static void setup5_paused(void)
{
	start(5, "--reshard-pause on");
}

/* Five nodes that move replicas only when told to (kvctl member drain / fill). */
static void setup5_by_hand(void)
{
	start(5, "--balance-leaders off --auto-balance off --reshard-pause on");
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

/* Runs kvctl with args against every node; its output (stdout and stderr) into out. Returns
 * its exit status. */
static int kvctl(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int kvctl(char *out, size_t cap, const char *fmt, ...)
{
	char args[256], *all;
	va_list ap, aq;
	va_start(ap, fmt);
	va_copy(aq, ap);
	vsnprintf(args, sizeof args, fmt, aq);
	va_end(aq);
	int rc = cluster_kvctlv(c, NULL, 20, &all, fmt, ap);
	va_end(ap);
	snprintf(out, cap, "%s", all);
	fprintf(stderr, "$ kvctl %s\n%s", args, all);
	free(all);
	return rc;
}

/* Writes every key with a value of this round through one node and reads it back through
 * another (never node `down`, 0: none): existing keys keep working. */
static void rw_round_without(int round, int down)
{
	for (int i = 0; i < KEYS; i++) {
		char key[32], val[48], *got = NULL;
		snprintf(key, sizeof key, "key-%d", i);
		snprintf(val, sizeof val, "v%d-%d", round, i);
		int wn = 1 + (i + round) % 3;
		if (wn == down)
			wn = 1 + wn % 3;
		int rn = 1 + wn % 3; /* another node, up */
		if (rn == down)
			rn = 1 + rn % 3;
		/* a client's retries: a node that just restarted may not know a leader yet */
		uint64_t end = cluster_now_ms() + 15000;
		int prc, grc;
		while ((prc = cluster_put(c, wn, key, val, 5000)) != RINGRAFT__KV__CODE__OK &&
		       cluster_now_ms() < end)
			nap_ms(100);
		ck_assert_msg(prc == RINGRAFT__KV__CODE__OK, "round %d: put %s through node %d: %d",
			      round, key, wn, prc);
		while ((grc = cluster_get(c, rn, key, &got, false, 5000)) !=
			       RINGRAFT__KV__CODE__OK &&
		       cluster_now_ms() < end)
			nap_ms(100);
		if (grc != RINGRAFT__KV__CODE__OK)
			cluster_dump_logs(c, 40);
		ck_assert_msg(grc == RINGRAFT__KV__CODE__OK, "round %d: get %s through node %d: %d",
			      round, key, rn, grc);
		ck_assert_str_eq(got, val);
		free(got);
	}
}

static void rw_round(int round)
{
	rw_round_without(round, 0);
}

/* Reads every key through each node: each must hold the value of `round`. */
static void check_round(int round)
{
	for (int i = 0; i < KEYS; i++) {
		char key[32], val[48];
		snprintf(key, sizeof key, "key-%d", i);
		snprintf(val, sizeof val, "v%d-%d", round, i);
		for (int node = 1; node <= 3; node++) {
			char *got = NULL;
			uint64_t end = cluster_now_ms() + 15000;
			int grc;
			while ((grc = cluster_get(c, node, key, &got, false, 5000)) !=
				       RINGRAFT__KV__CODE__OK &&
			       grc != RINGRAFT__KV__CODE__NOT_FOUND && cluster_now_ms() < end)
				nap_ms(100);
			ck_assert_msg(grc == RINGRAFT__KV__CODE__OK,
				      "round %d: get %s through node %d: %d (NOT_FOUND is a lost key)",
				      round, key, node, grc);
			ck_assert_str_eq(got, val);
			free(got);
		}
	}
}

/* The keys group g holds, by an explicit SCAN through node 1 (its leader answers). */
static long keys_in_group(uint32_t g)
{
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__SCAN;
	rq.group = g;
	rq.limit = 10000;
	Ringraft__Kv__Response *rs = NULL;
	long n = -1;
	uint64_t end = cluster_now_ms() + 15000;
	while (n < 0 && cluster_now_ms() < end) {
		if (cluster_call(c, 1, &rq, &rs, 5000) == 0 && rs->code == RINGRAFT__KV__CODE__OK)
			n = (long)rs->n_kvs;
		if (rs != NULL)
			ringraft__kv__response__free_unpacked(rs, NULL);
		rs = NULL;
		if (n < 0)
			nap_ms(100);
	}
	return n;
}

/* How node `node` reports group g: its voters (0 when it does not host it, -1 when the node
 * did not answer) and the leader it knows. */
static int group_voters(int node, uint32_t g, uint64_t *leader)
{
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__STATUS;
	Ringraft__Kv__Response *rs = NULL;
	*leader = 0;
	if (cluster_call(c, node, &rq, &rs, 2000) != 0 || rs->status == NULL) {
		if (rs != NULL)
			ringraft__kv__response__free_unpacked(rs, NULL);
		return -1;
	}
	int voters = 0;
	for (size_t i = 0; i < rs->status->n_groups; i++)
		if (rs->status->groups[i]->group == g) {
			voters = (int)rs->status->groups[i]->n_voters;
			*leader = rs->status->groups[i]->leader;
		}
	ringraft__kv__response__free_unpacked(rs, NULL);
	return voters;
}

/* Waits (bounded) until all three nodes host group g with 3 voters and agree on a leader. */
static bool group_elected(uint32_t g, int timeout_ms)
{
	uint64_t end = cluster_now_ms() + (uint64_t)timeout_ms;
	while (cluster_now_ms() < end) {
		uint64_t l1, l;
		bool ok = group_voters(1, g, &l1) == 3 && l1 != 0;
		for (int node = 2; ok && node <= 3; node++)
			ok = group_voters(node, g, &l) == 3 && l == l1;
		if (ok)
			return true;
		nap_ms(100); /* a poll of a bounded wait */
	}
	return false;
}

/* Waits (bounded) until no node hosts group g. */
static bool group_gone(uint32_t g, int timeout_ms)
{
	uint64_t end = cluster_now_ms() + (uint64_t)timeout_ms;
	while (cluster_now_ms() < end) {
		uint64_t l;
		bool gone = true;
		for (int node = 1; node <= 3; node++)
			gone = gone && group_voters(node, g, &l) == 0;
		if (gone)
			return true;
		nap_ms(100); /* a poll of a bounded wait */
	}
	return false;
}

/* The sum of the numbers after every occurrence of `field` in s. */
static long sum_of(const char *s, const char *field)
{
	long sum = 0;
	for (const char *p = strstr(s, field); p != NULL; p = strstr(p + 1, field))
		sum += strtol(p + strlen(field), NULL, 10);
	return sum;
}

/* kvctl's cluster views walk the group ids the nodes report: the ring's 1..4, the meta group 5
 * and the groups the change under way adds (`adding`, as status prints them; "" for none).
 * `member list` counts every replica of them: 3 per group. */
static void views_walk(const char *adding_text, const char *adding_json, int groups_added)
{
	char out[16384], want[160];
	ck_assert_int_eq(kvctl(out, sizeof out, "status"), 0);
	if (adding_text[0] == '\0') {
		ck_assert_msg(strstr(out, "\ngroups: ") == NULL, "status lists ids: %s", out);
	} else {
		snprintf(want, sizeof want, "\ngroups: 1-4, 5 (meta), %s (adding)\n", adding_text);
		ck_assert_msg(strstr(out, want) != NULL, "status lacks '%s'", want);
	}
	ck_assert_ptr_null(strstr(out, "group 6 (meta)")); /* only group 5 is the meta group */
	ck_assert_int_eq(kvctl(out, sizeof out, "-o json status"), 0);
	snprintf(want, sizeof want,
		 "\"group_ids\": [1, 2, 3, 4], \"meta_group\": 5, \"adding\": [%s]", adding_json);
	ck_assert_msg(strstr(out, want) != NULL, "status -o json lacks '%s'", want);
	ck_assert_int_eq(kvctl(out, sizeof out, "-o json member list"), 0);
	ck_assert_int_eq(sum_of(out, "\"replicas\": "), 3 * (GROUPS + 1 + groups_added));
}

START_TEST(test_add_then_roll_back)
{
	char out[16384];
	rw_round(0);
	ck_assert_int_eq(kvctl(out, sizeof out, "groups"), 0);
	ck_assert_ptr_null(strstr(out, "ring change")); /* the ring never changed */
	views_walk("", "", 0);

	/* Add one group: the first id after the meta group's. */
	ck_assert_int_eq(kvctl(out, sizeof out, "groups add"), 0);
	ck_assert_ptr_nonnull(strstr(out, "ring change planned"));
	ck_assert_ptr_nonnull(strstr(out, "adding group 6"));
	ck_assert_ptr_nonnull(strstr(out, "moves their keys"));
	ck_assert_msg(group_elected(META + 1, 20000), "group 6 did not elect on 3 replicas");
	views_walk("6", "6", 1);
	rw_round(1);

	/* Listed, with no share of the keys, and the change with its planned ranges. */
	ck_assert_int_eq(kvctl(out, sizeof out, "groups"), 0);
	ck_assert_ptr_nonnull(strstr(out, "0.00% (adding)"));
	ck_assert_ptr_nonnull(strstr(out, "a ring change: epoch 1 -> 2, adding group 6: moving"));
	ck_assert_ptr_nonnull(strstr(out, "-> group 6"));
	ck_assert_ptr_nonnull(strstr(out, ": planned"));
	ck_assert_int_eq(kvctl(out, sizeof out, "groups -o json"), 0);
	ck_assert_ptr_nonnull(strstr(out, "\"group\": 6"));
	ck_assert_ptr_nonnull(strstr(out, "\"state\": \"moving\""));

	/* A client cannot ask a handoff step itself (it could freeze or release ranges): refused
	 * at every node, and the change goes on as before. */
	for (int node = 1; node <= 3; node++) {
		Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
		rq.op = RINGRAFT__KV__OP__RESHARD_STEP;
		rq.group = 1;
		rq.handoff = RINGRAFT__KV__HANDOFF_STEP__HANDOFF_FENCE;
		uint8_t v[28] = {1};
		rq.value.data = v;
		rq.value.len = sizeof v;
		Ringraft__Kv__Response *rs = NULL;
		ck_assert_int_eq(cluster_call(c, node, &rq, &rs, 5000), 0);
		ck_assert_int_eq(rs->code, RINGRAFT__KV__CODE__INVALID);
		ck_assert_ptr_nonnull(strstr(rs->error, "internal to the cluster"));
		ringraft__kv__response__free_unpacked(rs, NULL);
	}

	/* One change at a time; nothing else may be removed meanwhile. */
	ck_assert_int_eq(kvctl(out, sizeof out, "groups add"), 2);
	ck_assert_ptr_nonnull(strstr(out, "under way"));
	ck_assert_int_eq(kvctl(out, sizeof out, "groups remove 1"), 2);
	ck_assert_ptr_nonnull(strstr(out, "under way"));
	ck_assert_int_eq(kvctl(out, sizeof out, "groups remove 99"), 2);
	ck_assert_ptr_nonnull(strstr(out, "no such group"));
	ck_assert_int_eq(kvctl(out, sizeof out, "groups remove %d", META), 2);
	ck_assert_ptr_nonnull(strstr(out, "meta group"));

	/* A node restarted in the middle keeps the group (the WAL has it; the record is pushed
	 * or read again), and the group still elects on its three replicas. */
	cluster_kill(c, 2);
	ck_assert_int_eq(cluster_wait_leaders(c, 20000), 0);
	rw_round_without(2, 2);
	ck_assert_int_eq(cluster_restart(c, 2), 0);
	ck_assert_int_eq(cluster_wait_leaders(c, 20000), 0);
	ck_assert_msg(group_elected(META + 1, 20000), "group 6 lost after node 2 restarted");
	rw_round(3);

	/* Removing it rolls the change back: retired on every node. */
	ck_assert_int_eq(kvctl(out, sizeof out, "groups remove 6"), 0);
	ck_assert_ptr_nonnull(strstr(out, "rolled back"));
	ck_assert_msg(group_gone(META + 1, 20000), "group 6 still hosted after the rollback");
	rw_round(4);
	ck_assert_int_eq(kvctl(out, sizeof out, "groups"), 0);
	ck_assert_ptr_nonnull(strstr(out, "last ring change: epoch 1 -> 2, adding group 6: "
					  "rolled back"));
	ck_assert_ptr_null(strstr(out, "(adding)"));
	views_walk("", "", 0);

	/* Retired for good: a restart does not bring it back, and its id is not used again. */
	ck_assert_int_eq(cluster_term(c, 3), 0);
	ck_assert_int_eq(cluster_restart(c, 3), 0);
	ck_assert_int_eq(cluster_wait_leaders(c, 20000), 0);
	ck_assert_msg(group_gone(META + 1, 5000), "group 6 came back after a restart");
	ck_assert_int_eq(kvctl(out, sizeof out, "groups remove 6"), 2);
	ck_assert_ptr_nonnull(strstr(out, "retired already"));

	/* The next add takes id 7 (from the ring in effect, epoch 1, to a new epoch above every one
	 * used); at most 32 ids per cluster lifetime (6 and 7 used: 30 left). */
	ck_assert_int_eq(kvctl(out, sizeof out, "groups add"), 0);
	ck_assert_ptr_nonnull(strstr(out, "epoch 1 -> 3, adding group 7"));
	ck_assert_msg(group_elected(META + 2, 20000), "group 7 did not elect");
	ck_assert_int_eq(kvctl(out, sizeof out, "groups remove 7"), 0);
	ck_assert_msg(group_gone(META + 2, 20000), "group 7 still hosted after the rollback");
	ck_assert_int_eq(kvctl(out, sizeof out, "groups add --count 31"), 2);
	ck_assert_ptr_nonnull(strstr(out, "no group ids left"));
	ck_assert_int_eq(kvctl(out, sizeof out, "groups add --count 33"), 2); /* a usage error */
	ck_assert_int_eq(kvctl(out, sizeof out, "groups add --count 2"), 0);
	ck_assert_ptr_nonnull(strstr(out, "adding group 8 on nodes"));
	ck_assert_ptr_nonnull(strstr(out, ", group 9 on nodes"));
	ck_assert_msg(group_elected(META + 3, 20000) && group_elected(META + 4, 20000),
		      "groups 8 and 9 did not elect");
	views_walk("8-9", "8, 9", 2); /* 6 and 7 retired: the ids have a gap */
	rw_round(5);
	ck_assert_int_eq(kvctl(out, sizeof out, "groups remove 9"), 0);
	ck_assert_msg(group_gone(META + 3, 20000) && group_gone(META + 4, 20000),
		      "a rollback retires every group of its change");
	views_walk("", "", 0);
	rw_round(6);
}
END_TEST

/* What node `node` knows of the ring change (RingConfig.change): -1 no answer, 0 none, else
 * 1 moving, 2 complete, 3 rolled back; whether its new ring has group g; and how many nodes
 * host g by its STATUS (0 or 1: this node). */
static int change_seen(int node, uint32_t g, bool *adds_g, int *hosts_g)
{
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__STATUS;
	Ringraft__Kv__Response *rs = NULL;
	*adds_g = false;
	*hosts_g = 0;
	if (cluster_call(c, node, &rq, &rs, 2000) != 0 || rs->status == NULL || rs->ring == NULL) {
		if (rs != NULL)
			ringraft__kv__response__free_unpacked(rs, NULL);
		return -1;
	}
	for (size_t i = 0; i < rs->status->n_groups; i++)
		*hosts_g += rs->status->groups[i]->group == g;
	const Ringraft__Kv__RingChange *ch = rs->ring->change;
	int state = 0;
	if (ch != NULL) {
		size_t done = 0, back = 0;
		for (size_t i = 0; i < ch->n_ranges; i++) {
			done += ch->ranges[i]->state == 4;
			back += ch->ranges[i]->state == 5;
		}
		state = done == ch->n_ranges ? 2 : back == ch->n_ranges ? 3 : 1;
		for (size_t i = 0; i < ch->n_to_ids; i++)
			*adds_g |= ch->to_ids[i] == g;
	}
	ringraft__kv__response__free_unpacked(rs, NULL);
	return state;
}

/* Waits (bounded) until each of `nodes` nodes knows the change in `state`, with g in its new
 * ring (adds) or not, and g is hosted on `hosts` of them. */
static bool all_know_of(int nodes, uint32_t g, int state, bool adds_want, int hosts,
			int timeout_ms)
{
	uint64_t end = cluster_now_ms() + (uint64_t)timeout_ms;
	while (cluster_now_ms() < end) {
		int n_hosts = 0;
		bool ok = true;
		for (int node = 1; node <= nodes && ok; node++) {
			bool adds;
			int h;
			ok = change_seen(node, g, &adds, &h) == state && adds == adds_want;
			n_hosts += h;
		}
		if (ok && n_hosts == hosts)
			return true;
		nap_ms(100);
	}
	return false;
}

/* Five nodes (the paused cases): the change adding g in `state`. */
static bool all_know(uint32_t g, int state, int hosts, int timeout_ms)
{
	return all_know_of(5, g, state, true, hosts, timeout_ms);
}

/* The driver on: an add moves the new group's share of the keys to it, every key keeps its
 * value, writes after it go where the new ring says; removing the group moves them back and
 * retires it; removing a bootstrap group moves all of its keys to the others. */
START_TEST(test_add_and_remove_move_keys)
{
	char out[16384];
	rw_round(0);
	long before = 0;
	for (uint32_t g = 1; g <= GROUPS; g++)
		before += keys_in_group(g);
	ck_assert_int_eq(before, KEYS);
	ck_assert_int_eq(kvctl(out, sizeof out, "groups add"), 0);
	ck_assert_ptr_nonnull(strstr(out, "adding group 6"));
	ck_assert_msg(all_know_of(3, META + 1, 2, true, 3, 60000),
		      "the add did not complete on every node");
	check_round(0);
	long moved = keys_in_group(META + 1), total = moved;
	for (uint32_t g = 1; g <= GROUPS; g++)
		total += keys_in_group(g);
	ck_assert_msg(moved > 0 && moved < KEYS, "group 6 holds %ld of %d keys", moved, KEYS);
	ck_assert_int_eq(total, KEYS); /* no key in two groups, none lost */
	ck_assert_int_eq(kvctl(out, sizeof out, "groups"), 0);
	ck_assert_ptr_nonnull(strstr(out, "last ring change: epoch 1 -> 2, adding group 6: "
					  "complete"));
	rw_round(1);

	ck_assert_int_eq(kvctl(out, sizeof out, "groups remove 6"), 0);
	ck_assert_ptr_nonnull(strstr(out, "removing group 6"));
	ck_assert_msg(all_know_of(3, META + 1, 2, false, 0, 60000),
		      "the removal did not complete on every node, or group 6 is still hosted");
	check_round(1);
	total = 0;
	for (uint32_t g = 1; g <= GROUPS; g++)
		total += keys_in_group(g);
	ck_assert_int_eq(total, KEYS);
	rw_round(2);

	/* a bootstrap group: its keys go to the other three (its replica stays, serving none) */
	ck_assert_int_eq(kvctl(out, sizeof out, "groups remove 1"), 0);
	ck_assert_msg(all_know_of(3, 1, 2, false, 3, 60000), "removing group 1 did not complete");
	check_round(2);
	ck_assert_int_eq(keys_in_group(1), 0);
	total = 0;
	for (uint32_t g = 2; g <= GROUPS; g++)
		total += keys_in_group(g);
	ck_assert_int_eq(total, KEYS);
	rw_round(3);
	check_round(3);
}
END_TEST

/* Five nodes: the meta group lives on three of them, so two learn the record only from the
 * meta leader's push. Every node learns the change, the new group is created on the three
 * replicas the record names (and elects), and the rollback reaches every node. */
START_TEST(test_five_nodes_learn_the_record)
{
	char out[16384];
	rw_round(0);
	ck_assert_int_eq(kvctl(out, sizeof out, "groups add"), 0);
	ck_assert_ptr_nonnull(strstr(out, "adding group 6 on nodes "));
	ck_assert_msg(all_know(META + 1, 1, 3, 20000),
		      "not every node learned the change, or group 6 is not on 3 of them");
	uint64_t end = cluster_now_ms() + 20000, leader = 0;
	while (leader == 0 && cluster_now_ms() < end) {
		for (int node = 1; node <= 5 && leader == 0; node++) {
			uint64_t l;
			if (group_voters(node, META + 1, &l) == 3)
				leader = l;
		}
		if (leader == 0)
			nap_ms(100);
	}
	ck_assert_msg(leader != 0, "group 6 elected no leader");
	ck_assert_int_eq(kvctl(out, sizeof out, "groups"), 0);
	ck_assert_ptr_nonnull(strstr(out, "0.00% (adding)"));
	views_walk("6", "6", 1);
	rw_round(1);
	ck_assert_int_eq(kvctl(out, sizeof out, "groups remove 6"), 0);
	ck_assert_msg(all_know(META + 1, 3, 0, 20000),
		      "not every node learned the rollback, or group 6 is still hosted");
	rw_round(2);
}
END_TEST

/* Node `node`'s replicas as `kvctl member list -o json` counts them; -1 if not listed. */
static long listed_replicas(int node)
{
	char out[16384], id[48];
	ck_assert_int_eq(kvctl(out, sizeof out, "-o json member list"), 0);
	snprintf(id, sizeof id, "{\"id\": %d, ", node);
	const char *p = strstr(out, id);
	p = p ? strstr(p, "\"replicas\": ") : NULL;
	return p ? strtol(p + strlen("\"replicas\": "), NULL, 10) : -1;
}

/* Whether node x votes in group g as g's leader reports it (the node that says it leads g;
 * asked directly, not through kvctl). -1 when no node leads g. */
static int leader_says_votes(uint32_t g, int nodes, int x)
{
	for (int node = 1; node <= nodes; node++) {
		Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
		rq.op = RINGRAFT__KV__OP__STATUS;
		Ringraft__Kv__Response *rs = NULL;
		if (cluster_call(c, node, &rq, &rs, 2000) != 0 || rs->status == NULL) {
			if (rs != NULL)
				ringraft__kv__response__free_unpacked(rs, NULL);
			continue;
		}
		int votes = -1;
		for (size_t i = 0; i < rs->status->n_groups; i++) {
			const Ringraft__Kv__GroupStatus *gs = rs->status->groups[i];
			if (gs->group != g || gs->leader != rs->status->id)
				continue;
			votes = 0;
			for (size_t k = 0; k < gs->n_voters; k++)
				votes |= gs->voters[k] == (uint64_t)x;
		}
		ringraft__kv__response__free_unpacked(rs, NULL);
		if (votes >= 0)
			return votes;
	}
	return -1;
}

/* Waits (bounded) until some node reports a leader of group g; 0 if none did. */
static uint64_t leader_of(uint32_t g, int nodes, int timeout_ms)
{
	uint64_t end = cluster_now_ms() + (uint64_t)timeout_ms;
	while (cluster_now_ms() < end) {
		for (int node = 1; node <= nodes; node++) {
			uint64_t l;
			if (group_voters(node, g, &l) == 3 && l != 0)
				return l;
		}
		nap_ms(100); /* a poll of a bounded wait */
	}
	return 0;
}

/* Moving replicas by hand follows the added group too: `member drain` of a node hosting group
 * 6 moves that replica with the others (the views walked 1..5 before, and left it behind), and
 * `member fill` counts every group, the added one included, for the node's share. */
START_TEST(test_drain_and_fill_move_added_groups)
{
	char out[16384];
	rw_round(0);
	ck_assert_int_eq(kvctl(out, sizeof out, "groups add"), 0);
	ck_assert_msg(all_know(META + 1, 1, 3, 20000),
		      "not every node learned the change, or group 6 is not on 3 of them");
	ck_assert_msg(leader_of(META + 1, 5, 20000) != 0, "group 6 elected no leader");
	int x = 0;
	for (int node = 1; node <= 5 && x == 0; node++) {
		uint64_t l;
		if (group_voters(node, META + 1, &l) == 3)
			x = node;
	}
	ck_assert_int_ne(x, 0);
	views_walk("6", "6", 1);
	ck_assert_int_eq(kvctl(out, sizeof out, "member drain %d", x), 0);
	char want[64];
	snprintf(want, sizeof want, "group 6: moving node %d's replica", x);
	ck_assert_msg(strstr(out, want) != NULL, "drain did not move group 6: %s", out);
	ck_assert_int_eq(listed_replicas(x), 0);
	ck_assert_int_eq(leader_says_votes(META + 1, 5, x), 0);
	ck_assert_msg(leader_of(META + 1, 5, 20000) != 0, "group 6 has no leader after the drain");
	rw_round(1);
	/* its share: floor(3 * 6 groups / 5 members) */
	ck_assert_int_eq(kvctl(out, sizeof out, "member fill %d", x), 0);
	snprintf(want, sizeof want, "node %d holds 3 replica(s) now", x);
	ck_assert_msg(strstr(out, want) != NULL, "fill: %s", out);
	ck_assert_int_eq(listed_replicas(x), 3);
	views_walk("6", "6", 1);
	rw_round(2);
	ck_assert_int_eq(kvctl(out, sizeof out, "groups remove 6"), 0);
	ck_assert_msg(all_know(META + 1, 3, 0, 20000),
		      "not every node learned the rollback, or group 6 is still hosted");
	views_walk("", "", 0);
	rw_round(3);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("reshard");
	TCase *tc = tcase_create("reshard");
	tcase_add_checked_fixture(tc, setup_paused, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_add_then_roll_back);
	suite_add_tcase(s, tc);
	TCase *tcm = tcase_create("reshard_moves");
	tcase_add_checked_fixture(tcm, setup, teardown);
	tcase_set_timeout(tcm, 300);
	tcase_add_test(tcm, test_add_and_remove_move_keys);
	suite_add_tcase(s, tcm);
	TCase *tc5 = tcase_create("reshard5");
	tcase_add_checked_fixture(tc5, setup5_paused, teardown);
	tcase_set_timeout(tc5, 300);
	tcase_add_test(tc5, test_five_nodes_learn_the_record);
	suite_add_tcase(s, tc5);
	TCase *tch = tcase_create("reshard5_by_hand");
	tcase_add_checked_fixture(tch, setup5_by_hand, teardown);
	tcase_set_timeout(tch, 300);
	tcase_add_test(tch, test_drain_and_fill_move_added_groups);
	suite_add_tcase(s, tch);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
