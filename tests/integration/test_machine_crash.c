/* test_machine_crash.c — a node whose machine crashed (its LMDB state machine, run without
 * syncs, is untrusted: kv_open says KV_EUNSAFE) repairs itself with no operator (kvd
 * --auto-repair, on by default; docs/DURABILITY.md "Self-repair after a machine crash").
 *
 * The crash is simulated without FUSE: nodes are killed with SIGKILL and their boot id changed
 * (RINGRAFT_TEST_BOOT_ID_FILE, kv/guard.c) before the restart. LMDB itself loses nothing here,
 * so what is tested is the node's reaction, not the damage (tests/unit/kv/test_checkpoint.c
 * and tests/powercut/ test the damage). The first reaction is the rollback to the pinned
 * checkpoint (kv.checkpoint) and a replay of the WAL, as after a process crash: tested with
 * one node, and with all three cut at once, where every group must elect again and serve
 * every acknowledged write from every replica. The fallback when there is no checkpoint file
 * (removed by the test): the environment is set aside (kv.untrusted-TIME, at most one), every
 * group comes back — replayed from the WAL when its log starts at index 1, from the peers
 * when the WAL was compacted (small segments, RINGRAFT_TEST_WAL_SEGMENT_BYTES) — every
 * acknowledged key is served by node 1's own replica, the digests equal the others', node 1
 * neither campaigned nor led a group before it had recovered it, and the terms of the other
 * nodes did not move while it came back.
 *
 * With kvd --auto-repair off (MACHINE_CRASH_KVD_ARGS="--auto-repair off" in the environment,
 * appended to every kvd's flags) the crashed nodes refuse to start and every test fails.
 */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kv/ring.h"
#include "tests/integration/cluster.h"

#define GROUPS     4
#define OK         RINGRAFT__KV__CODE__OK
#define NOT_FOUND  RINGRAFT__KV__CODE__NOT_FOUND
#define WRITES_MAX 1200
#define VICTIM     1
#define RECOVER_MS 20000 /* node 1 recovers every group this soon after its restart */

/* ------------------------------------------------------------------------------ fixture */
static struct cluster *c;
static char boot_file[256]; /* the nodes' boot id (RINGRAFT_TEST_BOOT_ID_FILE) */

struct write {
	char key[32];
	char val[256];
};
static struct write acked[WRITES_MAX];
static int n_acked;

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* A new boot id (the kernel's uuid generator) into the file the nodes read at start. */
static void new_boot_id(void)
{
	char id[64] = "";
	FILE *f = fopen("/proc/sys/kernel/random/uuid", "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(id, sizeof id, f));
	fclose(f);
	f = fopen(boot_file, "w");
	ck_assert_ptr_nonnull(f);
	fputs(id, f);
	ck_assert_int_eq(fclose(f), 0);
}

/* small_wal: 64 KiB WAL segments and a compaction every 64 applied entries, so that the WAL
 * is compacted during the test and node 1's groups no longer start at index 1. */
static void start(bool small_wal)
{
	new_boot_id();
	static char env[512], extra[512];
	snprintf(env, sizeof env, "RINGRAFT_TEST_BOOT_ID_FILE=%s%s", boot_file,
		 small_wal ? " RINGRAFT_TEST_WAL_SEGMENT_BYTES=65536" : "");
	/* leaders stay where they are: any term change while node 1 comes back is its doing */
	const char *more = getenv("MACHINE_CRASH_KVD_ARGS");
	snprintf(extra, sizeof extra, "--balance-leaders off --auto-balance off %s",
		 more != NULL ? more : "");
	struct cluster_opts o;
	cluster_opts_default(&o);
	o.groups = GROUPS;
	o.snapshot_entries = small_wal ? 64 : 0;
	o.env = env;
	o.extra_args = extra;
	n_acked = 0;
	c = cluster_start(&o);
	ck_assert_msg(c != NULL, "cluster did not start");
}

static void teardown(void)
{
	cluster_teardown(&c);
}

/* ------------------------------------------------------------------------------ assertions */

/* Writes one new key through any node but `avoid` and records it once acknowledged. */
static void put_acked(const char *prefix, int avoid)
{
	ck_assert_int_lt(n_acked, WRITES_MAX);
	struct write *w = &acked[n_acked];
	snprintf(w->key, sizeof w->key, "%s%05d", prefix, n_acked);
	snprintf(w->val, sizeof w->val, "%s-value-%d-%0200d", prefix, n_acked, n_acked);
	uint64_t deadline = cluster_now_ms() + 8000;
	for (int attempt = 0; cluster_now_ms() < deadline; attempt++) {
		int node = 1 + attempt % CLUSTER_NODES;
		if (node == avoid || !cluster_running(c, node))
			continue;
		if (cluster_put(c, node, w->key, w->val, 1000) == OK) {
			n_acked++;
			return;
		}
	}
	ck_abort_msg("write %s not acknowledged within 8 s", w->key);
}

static void put_many(const char *prefix, int n, int avoid)
{
	for (int i = 0; i < n; i++)
		put_acked(prefix, avoid);
}

/* Every acknowledged write, read from `node`'s own replica (serializable), once its digests
 * equal the others' (before that a serializable read may be stale: a lagging follower's
 * NOT_FOUND is no loss), and linearizably through it. */
static void read_back_all(int node)
{
	ck_assert_int_eq(cluster_wait_digests_equal(c, 20000), 0);
	for (int i = 0; i < 2 * n_acked; i++) {
		bool serializable = i < n_acked;
		const struct write *w = &acked[i % n_acked];
		int code = -1;
		char *got = NULL;
		uint64_t deadline = cluster_now_ms() + 5000;
		while (code != OK && cluster_now_ms() < deadline) {
			free(got);
			got = NULL;
			code = cluster_get(c, node, w->key, &got, serializable, 1000);
			if (code == NOT_FOUND)
				cluster_dump_logs(c, 20);
			ck_assert_msg(code != NOT_FOUND,
				      "acknowledged write %s lost on node %d (%s read)", w->key,
				      node, serializable ? "serializable" : "linearizable");
		}
		ck_assert_msg(code == OK, "acknowledged write %s unreadable on node %d (code %d)",
			      w->key, node, code);
		ck_assert_str_eq(got, w->val);
		free(got);
	}
}

/* The node's groups: term of each and how many say recovering (-1: no answer). */
static int node_groups(int node, uint64_t term[GROUPS + 2])
{
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__STATUS;
	Ringraft__Kv__Response *rs;
	if (cluster_call(c, node, &rq, &rs, 1000) < 0)
		return -1;
	if (rs->status == NULL) {
		ringraft__kv__response__free_unpacked(rs, NULL);
		return -1;
	}
	int n = 0;
	for (size_t i = 0; i < rs->status->n_groups; i++) {
		Ringraft__Kv__GroupStatus *gs = rs->status->groups[i];
		if (term != NULL && gs->group >= 1 && gs->group <= GROUPS + 1)
			term[gs->group] = gs->term;
		n += gs->recovering;
	}
	ringraft__kv__response__free_unpacked(rs, NULL);
	return n;
}

static bool wait_recovered(int node, int timeout_ms)
{
	uint64_t deadline = cluster_now_ms() + (uint64_t)timeout_ms;
	do {
		if (node_groups(node, NULL) == 0)
			return true;
		sleep_ms(20);
	} while (cluster_now_ms() < deadline);
	return false;
}

static int log_lines(int node)
{
	FILE *f = fopen(cluster_log_path(c, node), "r");
	if (f == NULL)
		return 0;
	int n = 0, ch;
	while ((ch = fgetc(f)) != EOF)
		n += ch == '\n';
	fclose(f);
	return n;
}

/* The small-WAL tests want node's WAL compacted before its crash (its groups' logs no longer
 * start at index 1). 700 puts can take less than a second here, less than a checkpoint under
 * load: the compaction runs at the maintenance turn after the checkpoint's sync. */
static void wait_wal_compacted(int node)
{
	ck_assert_msg(cluster_wait_log(c, node, "wal compacted segments_removed=", 1, 20000),
		      "node %d's WAL was not compacted within 20 s", node);
}

/* A log line is "L TIME nNODE GROUP message...": its group (0 for "-"). */
static uint32_t line_group(const char *line)
{
	const char *p = line;
	for (int field = 0; field < 3 && p != NULL; field++) {
		p = strchr(p, ' ');
		p = p != NULL ? p + 1 : NULL;
	}
	return p != NULL && *p == 'g' ? (uint32_t)strtoul(p + 1, NULL, 10) : 0;
}

/* Node 1's log since its restart. */
struct crash_log {
	int set_aside;              /* "set aside (not deleted)" */
	int rolled_back;            /* "rolled it back to its last checkpoint" */
	int from_peers[GROUPS + 2]; /* "no longer starts at index 1": repaired from the peers */
	int replayed[GROUPS + 2];   /* "it is replayed here" */
	bool recovered[GROUPS + 2]; /* "replica recovered" */
	int led_before[GROUPS + 2]; /* candidate/leader before it recovered the group */
	int cannot_elect;           /* the all-cut warning of repair.c */
};

static void scan_log(int node, int from, struct crash_log *cl)
{
	memset(cl, 0, sizeof *cl);
	FILE *f = fopen(cluster_log_path(c, node), "r");
	ck_assert_ptr_nonnull(f);
	char line[4096];
	for (int i = 0; fgets(line, sizeof line, f) != NULL; i++) {
		if (i < from)
			continue;
		uint32_t g = line_group(line);
		if (strstr(line, "set aside (not deleted)") != NULL)
			cl->set_aside++;
		if (strstr(line, "rolled it back to its last checkpoint") != NULL)
			cl->rolled_back++;
		if (strstr(line, "no leader for") != NULL)
			cl->cannot_elect++;
		if (g < 1 || g > GROUPS + 1)
			continue;
		if (strstr(line, "no longer starts at index 1") != NULL)
			cl->from_peers[g]++;
		if (strstr(line, "it is replayed here") != NULL)
			cl->replayed[g]++;
		if (strstr(line, "replica recovered") != NULL)
			cl->recovered[g] = true;
		if (!cl->recovered[g] && (strstr(line, "role=leader") != NULL ||
					  strstr(line, "role=candidate") != NULL ||
					  strstr(line, "role=precandidate") != NULL))
			cl->led_before[g]++;
	}
	fclose(f);
}

/* How many kv.untrusted-* directories node's data directory holds. */
static int set_aside_dirs(int node)
{
	DIR *d = opendir(cluster_data_dir(c, node));
	ck_assert_ptr_nonnull(d);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		n += strncmp(e->d_name, "kv.untrusted-", 13) == 0;
	closedir(d);
	return n;
}

/* Removes node's kv/kv.checkpoint: the rollback is refused, the fallback taken. */
static void drop_checkpoint(int node)
{
	char p[1024];
	snprintf(p, sizeof p, "%s/kv/kv.checkpoint", cluster_data_dir(c, node));
	ck_assert_msg(unlink(p) == 0, "node %d has no %s", node, p);
}

/* Node 1 loses its power: SIGKILL, writes go on without it, a new boot id, the restart. It
 * must come back by itself; returns its log since the restart. The terms of nodes 2 and 3
 * must not move from the restart until node 1 has recovered every group. rollback: it rolls
 * LMDB back to its checkpoint; otherwise its checkpoint file is removed and it sets LMDB
 * aside. */
static void machine_crash(int writes_while_down, bool rollback, struct crash_log *cl)
{
	cluster_kill(c, VICTIM);
	put_many("down", writes_while_down, VICTIM);
	ck_assert_int_eq(cluster_wait_leaders(c, 10000), 0);
	uint64_t before[CLUSTER_NODES + 1][GROUPS + 2], after[CLUSTER_NODES + 1][GROUPS + 2];
	memset(before, 0, sizeof before);
	memset(after, 0, sizeof after);
	for (int n = 2; n <= CLUSTER_NODES; n++)
		ck_assert_int_ge(node_groups(n, before[n]), 0);
	new_boot_id();
	int set_aside_before = set_aside_dirs(VICTIM);
	if (!rollback)
		drop_checkpoint(VICTIM);
	int from = log_lines(VICTIM);
	int rc = cluster_restart(c, VICTIM);
	if (rc != 0)
		cluster_dump_logs(c, 10);
	ck_assert_msg(rc == 0, "node %d did not come back by itself after the machine crash",
		      VICTIM);
	bool recovered = wait_recovered(VICTIM, RECOVER_MS);
	for (int n = 2; n <= CLUSTER_NODES; n++)
		ck_assert_int_ge(node_groups(n, after[n]), 0);
	if (!recovered)
		cluster_dump_logs(c, 30);
	ck_assert_msg(recovered, "node %d still recovering %d ms after its restart", VICTIM,
		      RECOVER_MS);
	for (int n = 2; n <= CLUSTER_NODES; n++)
		for (uint32_t g = 1; g <= GROUPS + 1; g++)
			ck_assert_msg(after[n][g] == before[n][g],
				      "node %d group %u: term %llu before node %d's restart, %llu "
				      "after it recovered (it disturbed an election)",
				      n, g, (unsigned long long)before[n][g], VICTIM,
				      (unsigned long long)after[n][g]);
	scan_log(VICTIM, from, cl);
	ck_assert_int_eq(cl->set_aside, (rollback ? 0 : 1));
	ck_assert_int_eq(cl->rolled_back, (rollback ? 1 : 0));
	ck_assert_int_eq(cl->cannot_elect, 0);
	for (uint32_t g = 1; g <= GROUPS + 1; g++)
		ck_assert_msg(cl->led_before[g] == 0,
			      "node %d campaigned or led group %u before it had recovered it",
			      VICTIM, g);
	/* at most one kept */
	ck_assert_int_eq(set_aside_dirs(VICTIM), (rollback ? set_aside_before : 1));
	read_back_all(VICTIM);
}

/* ------------------------------------------------------------------------------ tests */

/* No checkpoint file, and the WAL was never compacted: LMDB is set aside and every group's
 * log starts at index 1 and is replayed. */
START_TEST(test_machine_crash_replays_the_wal)
{
	start(false);
	put_many("before", 200, 0);
	struct crash_log cl;
	machine_crash(50, false, &cl);
	for (uint32_t g = 1; g <= GROUPS + 1; g++) {
		ck_assert_msg(cl.replayed[g] == 1, "group %u was not replayed from the WAL", g);
		ck_assert_int_eq(cl.from_peers[g], 0);
	}
}
END_TEST

/* No checkpoint file, and the WAL was compacted: the groups whose log no longer starts at
 * index 1 are repaired from the peers as recovering replicas. A second machine crash, with
 * the new environment's checkpoint, rolls back and keeps the one set-aside directory. */
START_TEST(test_machine_crash_repairs_from_peers)
{
	start(true);
	put_many("before", 700, 0);
	wait_wal_compacted(VICTIM);
	struct crash_log cl;
	machine_crash(100, false, &cl);
	int from_peers = 0;
	for (uint32_t g = 1; g <= GROUPS; g++) {
		from_peers += cl.from_peers[g];
		ck_assert_int_eq(cl.from_peers[g] + cl.replayed[g], 1);
		/* repaired from the peers: it was recovering (no vote) until "replica recovered" */
		ck_assert_msg(cl.from_peers[g] == 0 || cl.recovered[g],
			      "group %u was repaired from the peers without recovering", g);
	}
	ck_assert_msg(from_peers >= 1, "no group was repaired from the peers (WAL not compacted?)");
	put_many("between", 100, 0);
	machine_crash(50, true, &cl);
}
END_TEST

/* The WAL was compacted, and node 1 alone loses its power: it rolls LMDB back to its
 * checkpoint and replays the WAL, as after a process crash (nothing recovers from peers). */
START_TEST(test_machine_crash_rolls_back)
{
	start(true);
	put_many("before", 700, 0);
	wait_wal_compacted(VICTIM);
	struct crash_log cl;
	machine_crash(100, true, &cl);
	for (uint32_t g = 1; g <= GROUPS + 1; g++)
		ck_assert_int_eq(cl.from_peers[g], 0);
}
END_TEST

/* The power of all three nodes is cut at once, right after the last acknowledged write (the
 * WAL compacted, the writes since the last checkpoint only in the WAL): a new boot id for
 * all, and each restarts by itself, rolls LMDB back to its checkpoint and replays its WAL;
 * every group elects again (before, a group whose majority set LMDB aside stayed down), and
 * every acknowledged write is served by every replica. */
START_TEST(test_machine_crash_all_three)
{
	start(true);
	put_many("before", 700, 0);
	for (int n = 1; n <= CLUSTER_NODES; n++)
		wait_wal_compacted(n);
	put_many("last", 50, 0); /* the cut comes right after these */
	for (int n = 1; n <= CLUSTER_NODES; n++)
		cluster_kill(c, n);
	new_boot_id();
	int from[CLUSTER_NODES + 1];
	for (int n = 1; n <= CLUSTER_NODES; n++) {
		from[n] = log_lines(n);
		ck_assert_msg(cluster_restart(c, n) == 0, "node %d did not restart", n);
	}
	int rc = cluster_wait_leaders(c, RECOVER_MS);
	if (rc != 0)
		cluster_dump_logs(c, 30);
	ck_assert_msg(rc == 0, "the cluster did not elect every group again within %d ms",
		      RECOVER_MS);
	for (int n = 1; n <= CLUSTER_NODES; n++) {
		struct crash_log cl;
		scan_log(n, from[n], &cl);
		ck_assert_msg(cl.rolled_back == 1, "node %d did not roll LMDB back", n);
		ck_assert_int_eq(cl.set_aside, 0);
		ck_assert_int_eq(cl.cannot_elect, 0);
		for (uint32_t g = 1; g <= GROUPS + 1; g++)
			ck_assert_int_eq(cl.from_peers[g], 0);
	}
	for (int n = 1; n <= CLUSTER_NODES; n++)
		read_back_all(n);
	put_many("after", 20, 0); /* and it serves writes */
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("machine_crash");
	TCase *tc = tcase_create("auto_repair");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, test_machine_crash_replays_the_wal);
	tcase_add_test(tc, test_machine_crash_repairs_from_peers);
	tcase_add_test(tc, test_machine_crash_rolls_back);
	tcase_add_test(tc, test_machine_crash_all_three);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	/* made and removed here, in the parent: a failed check ends the test's own process */
	const char *tmp = getenv("TMPDIR");
	snprintf(boot_file, sizeof boot_file, "%s/machine-crash-boot-XXXXXX",
		 tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
	int fd = mkstemp(boot_file);
	if (fd < 0) {
		perror("mkstemp");
		return EXIT_FAILURE;
	}
	close(fd);
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	unlink(boot_file);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
