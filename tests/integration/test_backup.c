/* test_backup.c — disaster recovery (issue 21): `kvctl backup` of a cluster under a 64-client
 * write load, restored with `kvd --restore` into a fresh three-node cluster on other addresses.
 * Checked on the restored cluster: every write acknowledged before the backup began is there;
 * nothing whose write began after the backup finished is; within each group, the writes of one
 * client that are present form a prefix of its acknowledged writes (the group is one applied
 * index, not a mix); every group elected a leader and its replicas agree (digests); it serves
 * puts and gets. And a damaged backup (a byte flipped in the middle, a truncated file, a wrong
 * magic) or one for another --groups is refused by `kvctl restore` and `kvd --restore` with a
 * clear message and a non-zero exit, leaving the data directory without state; so is a start
 * after an interrupted restore; the BACKUP_* requests are checked at the node; a backup with
 * one node down succeeds.
 *
 * Addresses: the first cluster on RINGRAFT_TEST_IP_BASE (+0..+2), the restored one on +5..+7.
 * TCases "load" and "checks" (CK_RUN_CASE runs one).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/client.h"
#include "kv/ring.h"
#include "tests/integration/cluster.h"

#define GROUPS     4
#define OK         RINGRAFT__KV__CODE__OK
#define CLIENTS    64
#define PER_CLIENT 400 /* keys a load client may write at most */
#define PRE_KEYS   200
#define BIG_KEYS   120
#define BIG_BYTES  16384 /* 120 x 16 KiB: several 256 KiB chunks per group */
#define RUN_MS_MAX 120000

/* ------------------------------------------------------------------------------ fixture */

static struct cluster *a, *b;
static char root[512];

static void teardown(void)
{
	cluster_teardown(&b);
	cluster_teardown(&a);
}

/* root (made in main, removed there whatever the tests did) */
static void remove_root(void)
{
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
	if (root[0] != '\0' && system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", root);
}

static int ip_base(void)
{
	const char *e = getenv("RINGRAFT_TEST_IP_BASE");
	int v = e && *e ? atoi(e) : 11;
	return v >= 1 && v <= 245 ? v : 11;
}

static const char *bin(void)
{
	const char *e = getenv("RINGRAFT_BIN");
	return e && *e ? e : "bin";
}

/* Runs argv (NULL-terminated) with stdout and stderr into *out (malloc'd, NUL-terminated),
 * killed after RUN_MS_MAX; returns its exit status (-1 when killed by a signal). */
static int run(char *const argv[], char **out)
{
	int p[2];
	ck_assert_int_eq(pipe(p), 0);
	fflush(NULL);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(p[1], 1);
		dup2(p[1], 2);
		for (int fd = 3; fd < 256; fd++)
			close(fd);
		execv(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	ck_assert_ptr_nonnull(buf);
	uint64_t t0 = cluster_now_ms();
	for (;;) {
		int64_t left = RUN_MS_MAX - (int64_t)(cluster_now_ms() - t0);
		if (left <= 0) {
			kill(pid, SIGKILL);
			break;
		}
		struct pollfd pf = {.fd = p[0], .events = POLLIN};
		if (poll(&pf, 1, (int)left) < 0 && errno != EINTR)
			break;
		if (len + 4096 > cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			ck_assert_ptr_nonnull(buf);
		}
		ssize_t n = read(p[0], buf + len, cap - len - 1);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	close(p[0]);
	int st;
	waitpid(pid, &st, 0);
	*out = buf;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int kvctl_backup(struct cluster *c, const char *file, char **out)
{
	char exe[600];
	snprintf(exe, sizeof exe, "%s/kvctl", bin());
	char *argv[] = {exe,          "--endpoints", (char *)cluster_endpoints(c),
			"--timeout",  "10s",         "backup",
			(char *)file, NULL};
	return run(argv, out);
}

static int kvctl_restore(const char *file, char **out)
{
	char exe[600];
	snprintf(exe, sizeof exe, "%s/kvctl", bin());
	char *argv[] = {exe, "restore", (char *)file, NULL};
	return run(argv, out);
}

/* kvd --restore FILE into dir as node 1 of a new one-node-listed cluster; it must refuse. */
static int kvd_restore(const char *file, const char *dir, int groups, char **out)
{
	char exe[600], members[64], client[64], g[16];
	snprintf(exe, sizeof exe, "%s/kvd", bin());
	snprintf(members, sizeof members, "1=127.0.0.%d:29999", ip_base() + 5);
	snprintf(client, sizeof client, "127.0.0.%d:29998", ip_base() + 5);
	snprintf(g, sizeof g, "%d", groups);
	char *argv[] = {exe,         "--data-dir", (char *)dir,     "--id", "1",
			"--cluster", members,      "--client-addr", client, "--groups",
			g,           "--restore",  (char *)file,    NULL};
	return run(argv, out);
}

static struct cluster *start(int base_offset, const char *extra)
{
	char b[16];
	snprintf(b, sizeof b, "%d", ip_base() + base_offset);
	const char *saved = getenv("RINGRAFT_TEST_IP_BASE");
	char keep[16] = "";
	if (saved != NULL)
		snprintf(keep, sizeof keep, "%s", saved);
	setenv("RINGRAFT_TEST_IP_BASE", b, 1);
	struct cluster_opts o;
	cluster_opts_default(&o);
	o.groups = GROUPS;
	o.extra_args = extra;
	struct cluster *c = cluster_start(&o);
	if (saved != NULL)
		setenv("RINGRAFT_TEST_IP_BASE", keep, 1);
	else
		unsetenv("RINGRAFT_TEST_IP_BASE");
	return c;
}

static void put_acked(struct cluster *c, const char *key, const char *val)
{
	uint64_t deadline = cluster_now_ms() + 10000;
	for (int i = 0; cluster_now_ms() < deadline; i++)
		if (cluster_put(c, 1 + i % 3, key, val, 2000) == OK)
			return;
	ck_abort_msg("write %s not acknowledged", key);
}

/* A linearizable get through any node, retried (bounded) while leadership moves (the leader
 * balancer hands groups to their preferred nodes after a start): OK or NOT_FOUND, else the
 * last answer. */
static int get_any(struct cluster *c, const char *key, char **got)
{
	uint64_t deadline = cluster_now_ms() + 10000;
	int code = -1;
	for (int i = 0; cluster_now_ms() < deadline; i++) {
		code = cluster_get(c, 1 + i % 3, key, got, false, 2000);
		if (code == OK || code == RINGRAFT__KV__CODE__NOT_FOUND)
			return code;
		usleep(20000);
	}
	return code;
}

/* ------------------------------------------------------------------------------ the load */

enum { PH_BEFORE, PH_DURING, PH_AFTER, PH_STOP };
static atomic_int phase;

struct op {
	int invoked, acked; /* phase at invocation and at acknowledgement (-1: not acked) */
};
struct loader {
	pthread_t th;
	int t;
	const char *endpoints;
	struct op ops[PER_CLIENT];
	atomic_int n;         /* writes invoked */
	atomic_int acked[3];  /* acknowledged, by phase at acknowledgement */
	atomic_int after_inv; /* acknowledged writes invoked after the backup */
};
static struct loader loaders[CLIENTS];

static void *load_main(void *arg)
{
	struct loader *l = arg;
	struct cli_options o;
	cli_options_default(&o);
	o.timeout_ms = 3000;
	struct cli_client *c;
	if (cli_client_new(l->endpoints, &o, &c) != CLI_OK)
		return NULL;
	for (int i = 0; i < PER_CLIENT && atomic_load(&phase) != PH_STOP; i++) {
		char key[32], val[32];
		snprintf(key, sizeof key, "load/%02d/%05d", l->t, i);
		snprintf(val, sizeof val, "v%d.%d", l->t, i);
		l->ops[i].acked = -1;
		l->ops[i].invoked = atomic_load(&phase);
		atomic_store(&l->n, i + 1);
		if (cli_put(c, key, strlen(key), val, strlen(val)) == CLI_OK) {
			int ph = atomic_load(&phase);
			l->ops[i].acked = ph == PH_STOP ? PH_AFTER : ph;
			atomic_fetch_add(&l->acked[l->ops[i].acked], 1);
			if (l->ops[i].invoked >= PH_AFTER)
				atomic_fetch_add(&l->after_inv, 1);
		}
	}
	cli_client_free(c);
	return NULL;
}

/* Waits (bounded) until every loader has `n` of what count() says. */
static bool wait_all(int (*count)(struct loader *), int n, int timeout_ms)
{
	uint64_t deadline = cluster_now_ms() + (uint64_t)timeout_ms;
	while (cluster_now_ms() < deadline) {
		int low = 0;
		for (int t = 0; t < CLIENTS; t++)
			if (count(&loaders[t]) < n && atomic_load(&loaders[t].n) < PER_CLIENT)
				low++;
		if (low == 0)
			return true;
		usleep(20000);
	}
	return false;
}
static int acked_before(struct loader *l)
{
	return atomic_load(&l->acked[PH_BEFORE]);
}
static int acked_after_invoked_after(struct loader *l)
{
	return atomic_load(&l->after_inv);
}

/* ------------------------------------------------------------------------------ checks */

static bool present[CLIENTS][PER_CLIENT];

static int scan_cb(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	(void)arg;
	int t, i;
	char key[64], want[32];
	ck_assert_uint_lt(kl, sizeof key);
	memcpy(key, k, kl);
	key[kl] = '\0';
	ck_assert_int_eq(sscanf(key, "load/%d/%d", &t, &i), 2);
	ck_assert(t >= 0 && t < CLIENTS && i >= 0 && i < PER_CLIENT);
	snprintf(want, sizeof want, "v%d.%d", t, i);
	ck_assert_msg(vl == strlen(want) && memcmp(v, want, vl) == 0, "%s has a wrong value", key);
	present[t][i] = true;
	return 0;
}

/* What the restored cluster holds against what the load saw. */
static void check_load(struct cluster *c)
{
	struct cli_options o;
	cli_options_default(&o);
	o.timeout_ms = 10000;
	struct cli_client *cl;
	ck_assert_int_eq(cli_client_new(cluster_endpoints(c), &o, &cl), CLI_OK);
	memset(present, 0, sizeof present);
	ck_assert_int_eq(cli_scan_prefix(cl, "load/", 5, 1000000, scan_cb, NULL), CLI_OK);
	cli_client_free(cl);
	struct kv_ring *ring = kv_ring_new(GROUPS, 128, 1);
	ck_assert_ptr_nonnull(ring);
	int before = 0, during_in = 0, during_out = 0;
	for (int t = 0; t < CLIENTS; t++) {
		int last_absent[GROUPS + 1];
		for (int g = 0; g <= GROUPS; g++)
			last_absent[g] = -1;
		int n = atomic_load(&loaders[t].n);
		for (int i = 0; i < n; i++) {
			const struct op *op = &loaders[t].ops[i];
			char key[32];
			snprintf(key, sizeof key, "load/%02d/%05d", t, i);
			uint32_t g = kv_ring_group_of(ring, key, strlen(key));
			if (op->acked == PH_BEFORE) {
				before++;
				ck_assert_msg(present[t][i],
					      "%s (group %u) was acknowledged before the backup "
					      "began and is missing from the restored cluster",
					      key, g);
			}
			if (op->invoked >= PH_AFTER)
				ck_assert_msg(!present[t][i],
					      "%s (group %u) was written after the backup "
					      "finished and is in the restored cluster",
					      key, g);
			if (op->acked < 0)
				continue; /* outcome unknown: either way */
			if (op->acked == PH_DURING || op->invoked == PH_DURING)
				present[t][i] ? during_in++ : during_out++;
			/* one client's acknowledged writes to one group: present ones come first */
			if (!present[t][i])
				last_absent[g] = i;
			else
				ck_assert_msg(last_absent[g] < 0,
					      "group %u holds %s but not load/%02d/%05d, "
					      "acknowledged before it: not one applied index",
					      g, key, t, last_absent[g]);
		}
	}
	kv_ring_free(ring);
	fprintf(stderr,
		"backup under load: %d writes acknowledged before it (all there), %d during it "
		"in, %d out\n",
		before, during_in, during_out);
	ck_assert_int_gt(before, CLIENTS);
}

/* ------------------------------------------------------------------------------ tests */

START_TEST(test_backup_under_load_restores_into_new_cluster)
{
	a = start(0, NULL);
	ck_assert_ptr_nonnull(a);
	char key[64], val[64];
	for (int i = 0; i < PRE_KEYS; i++) {
		snprintf(key, sizeof key, "pre/%04d", i);
		snprintf(val, sizeof val, "pre-value-%d", i);
		put_acked(a, key, val);
	}
	static char big[BIG_BYTES + 1];
	for (int i = 0; i < BIG_KEYS; i++) {
		snprintf(key, sizeof key, "big/%04d", i);
		memset(big, 'a' + i % 26, BIG_BYTES);
		big[BIG_BYTES] = '\0';
		put_acked(a, key, big);
	}
	/* the load: 64 clients, each writing its own keys in order */
	atomic_store(&phase, PH_BEFORE);
	for (int t = 0; t < CLIENTS; t++) {
		memset(&loaders[t], 0, sizeof loaders[t]);
		loaders[t].t = t;
		loaders[t].endpoints = cluster_endpoints(a);
		ck_assert_int_eq(pthread_create(&loaders[t].th, NULL, load_main, &loaders[t]), 0);
	}
	ck_assert_msg(wait_all(acked_before, 3, 30000),
		      "the load did not get going (3 acknowledged writes per client)");
	char file[700], *out = NULL;
	snprintf(file, sizeof file, "%s/cluster.backup", root);
	atomic_store(&phase, PH_DURING);
	int ex = kvctl_backup(a, file, &out);
	atomic_store(&phase, PH_AFTER);
	ck_assert_msg(ex == 0, "kvctl backup exit %d:\n%s", ex, out);
	fprintf(stderr, "%s", out);
	ck_assert_ptr_nonnull(strstr(out, "group 4/4"));
	free(out);
	/* writes begun after the backup finished, acknowledged, so that their absence means it */
	ck_assert_msg(wait_all(acked_after_invoked_after, 2, 30000),
		      "the load stopped after the backup");
	atomic_store(&phase, PH_STOP);
	for (int t = 0; t < CLIENTS; t++)
		pthread_join(loaders[t].th, NULL);
	struct stat st;
	ck_assert_int_eq(stat(file, &st), 0);
	char tmp[720];
	snprintf(tmp, sizeof tmp, "%s.tmp", file);
	ck_assert_int_ne(stat(tmp, &st), 0); /* renamed into place */
	ck_assert_int_eq(kvctl_restore(file, &out), 0);
	ck_assert_ptr_nonnull(strstr(out, "a good backup"));
	free(out);

	/* every disk gone: a new cluster on other addresses, seeded from the file */
	cluster_teardown(&a);
	char extra[720];
	snprintf(extra, sizeof extra, "--restore %s", file);
	b = start(5, extra);
	ck_assert_msg(b != NULL, "the restored cluster did not elect a leader in every group");
	for (int n = 1; n <= 3; n++)
		ck_assert_int_eq(cluster_log_grep(b, n, "restored from the backup"), GROUPS);
	ck_assert_int_eq(cluster_wait_digests_equal(b, 30000), 0);
	/* as an operator checks it: kvctl digest GROUP exits 0 when every node agrees */
	for (int g = 1; g <= GROUPS; g++) {
		char exe[600], gs[16];
		snprintf(exe, sizeof exe, "%s/kvctl", bin());
		snprintf(gs, sizeof gs, "%d", g);
		char *argv[] = {exe, "--endpoints", (char *)cluster_endpoints(b), "digest",
				gs,  NULL};
		int dex = -1;
		uint64_t deadline = cluster_now_ms() + 10000;
		while (dex != 0 && cluster_now_ms() < deadline) {
			char *dout = NULL;
			if (dex != -1)
				usleep(100000);
			dex = run(argv, &dout);
			free(dout);
		}
		ck_assert_msg(dex == 0, "kvctl digest %d: the restored replicas differ", g);
	}
	for (int i = 0; i < PRE_KEYS; i++) {
		snprintf(key, sizeof key, "pre/%04d", i);
		snprintf(val, sizeof val, "pre-value-%d", i);
		char *got = NULL;
		ck_assert_int_eq(get_any(b, key, &got), OK);
		ck_assert_str_eq(got, val);
		free(got);
	}
	for (int i = 0; i < BIG_KEYS; i += 7) {
		snprintf(key, sizeof key, "big/%04d", i);
		char *got = NULL;
		ck_assert_int_eq(get_any(b, key, &got), OK);
		ck_assert_uint_eq(strlen(got), BIG_BYTES);
		ck_assert_int_eq(got[0], 'a' + i % 26);
		free(got);
	}
	check_load(b);
	/* it serves */
	put_acked(b, "after-restore", "fresh");
	char *got = NULL;
	ck_assert_int_eq(get_any(b, "after-restore", &got), OK);
	ck_assert_str_eq(got, "fresh");
	free(got);
	ck_assert_int_eq(cluster_wait_digests_equal(b, 30000), 0);
}
END_TEST

/* Copies src to dst, then lets fix change the copy. */
static void copy_damaged(const char *src, const char *dst, int how)
{
	FILE *in = fopen(src, "rb");
	ck_assert_ptr_nonnull(in);
	fseek(in, 0, SEEK_END);
	long size = ftell(in);
	fseek(in, 0, SEEK_SET);
	char *buf = malloc((size_t)size);
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(fread(buf, 1, (size_t)size, in), (size_t)size);
	fclose(in);
	long len = size;
	if (how == 0)
		buf[size / 2] ^= 0x20; /* a flipped bit in the middle */
	else if (how == 1)
		len = size - 100; /* truncated */
	else
		buf[0] = 'X'; /* wrong magic */
	FILE *out = fopen(dst, "wb");
	ck_assert_ptr_nonnull(out);
	ck_assert_uint_eq(fwrite(buf, 1, (size_t)len, out), (size_t)len);
	fclose(out);
	free(buf);
}

/* The directory holds no state of a node: no cluster.conf, no WAL, no LMDB. */
static void assert_no_state(const char *dir)
{
	const char *names[] = {"cluster.conf", "wal", "kv", "restore.pending"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		char p[800];
		struct stat st;
		snprintf(p, sizeof p, "%s/%s", dir, names[i]);
		ck_assert_msg(stat(p, &st) != 0, "a refused restore left %s", p);
	}
}

START_TEST(test_damaged_backup_refused)
{
	a = start(0, NULL);
	ck_assert_ptr_nonnull(a);
	char key[64];
	for (int i = 0; i < 50; i++) {
		snprintf(key, sizeof key, "k%03d", i);
		put_acked(a, key, "some value that fills the file a little");
	}
	char file[700], *out = NULL;
	snprintf(file, sizeof file, "%s/good.backup", root);
	int ex = kvctl_backup(a, file, &out);
	ck_assert_msg(ex == 0, "kvctl backup exit %d:\n%s", ex, out);
	free(out);
	ck_assert_int_eq(kvctl_restore(file, &out), 0);
	free(out);
	static const char *const kinds[] = {"flipped", "truncated", "magic"};
	static const char *const says[] = {"checksum mismatch", "truncated", "wrong magic"};
	for (int how = 0; how < 3; how++) {
		char bad[720], dir[720];
		snprintf(bad, sizeof bad, "%s/%s.backup", root, kinds[how]);
		snprintf(dir, sizeof dir, "%s/%s-data", root, kinds[how]);
		copy_damaged(file, bad, how);
		ex = kvctl_restore(bad, &out);
		ck_assert_msg(ex == 2 && strstr(out, "refused") && strstr(out, says[how]),
			      "kvctl restore of a %s file: exit %d, said:\n%s", kinds[how], ex,
			      out);
		free(out);
		ex = kvd_restore(bad, dir, GROUPS, &out);
		ck_assert_msg(ex == 2 && strstr(out, "refused") && strstr(out, says[how]),
			      "kvd --restore of a %s file: exit %d, said:\n%s", kinds[how], ex,
			      out);
		free(out);
		assert_no_state(dir);
	}
	/* a good file for another number of groups */
	char dir[720];
	snprintf(dir, sizeof dir, "%s/groups-data", root);
	ex = kvd_restore(file, dir, GROUPS + 1, &out);
	ck_assert_msg(ex == 2 && strstr(out, "give --groups 4"), "exit %d, said:\n%s", ex, out);
	free(out);
	assert_no_state(dir);
	/* a data directory that already holds a node */
	ex = kvd_restore(file, cluster_data_dir(a, 1), GROUPS, &out);
	ck_assert_msg(ex == 2 && strstr(out, "already holds a node"), "exit %d, said:\n%s", ex,
		      out);
	free(out);
}
END_TEST

/* BACKUP_BEGIN of group g at its leader, retried (bounded) while leadership moves: the answer,
 * and in *node the node that holds the backup. */
static Ringraft__Kv__Response *begin_at_leader(uint32_t g, int *node)
{
	uint64_t deadline = cluster_now_ms() + 15000;
	while (cluster_now_ms() < deadline) {
		*node = (int)cluster_leader_of(a, g, 5000);
		if (*node <= 0)
			continue;
		Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
		rq.op = RINGRAFT__KV__OP__BACKUP_BEGIN;
		rq.group = g;
		Ringraft__Kv__Response *resp;
		if (cluster_call(a, *node, &rq, &resp, 5000) != 0)
			continue;
		if (resp->code != RINGRAFT__KV__CODE__NOT_LEADER)
			return resp;
		ringraft__kv__response__free_unpacked(resp, NULL);
		usleep(50000);
	}
	ck_abort_msg("BACKUP_BEGIN of group %u: no leader answered", g);
	return NULL;
}

/* The BACKUP_* requests are checked at the node: a chunk of a backup nobody began, or at an
 * offset the backup is not at, is refused; the meta group is not backed up; a backup read to
 * its end is closed (a chunk after it is refused). */
START_TEST(test_backup_requests_checked)
{
	a = start(0, NULL);
	ck_assert_ptr_nonnull(a);
	put_acked(a, "x", "y");
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	Ringraft__Kv__Response *resp;
	rq.op = RINGRAFT__KV__OP__BACKUP_CHUNK;
	rq.backup_id = 12345;
	ck_assert_int_eq(cluster_call(a, 1, &rq, &resp, 5000), 0);
	ck_assert_int_eq(resp->code, RINGRAFT__KV__CODE__INVALID);
	ck_assert_ptr_nonnull(strstr(resp->error, "no such backup"));
	ringraft__kv__response__free_unpacked(resp, NULL);
	rq = (Ringraft__Kv__Request)RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__BACKUP_BEGIN;
	rq.group = GROUPS + 1;
	ck_assert_int_eq(cluster_call(a, 1, &rq, &resp, 5000), 0);
	ck_assert_int_eq(resp->code, RINGRAFT__KV__CODE__INVALID);
	ck_assert_ptr_nonnull(strstr(resp->error, "meta group"));
	ringraft__kv__response__free_unpacked(resp, NULL);
	/* group 1 at its leader: a whole stream in one chunk, then nothing more */
	int leader;
	resp = begin_at_leader(1, &leader);
	ck_assert_int_eq(resp->code, OK);
	ck_assert(resp->done);
	ck_assert_uint_gt(resp->value.len, 0);
	ck_assert_uint_gt(resp->applied_index, 0);
	uint64_t id = resp->backup_id, len = resp->value.len;
	ringraft__kv__response__free_unpacked(resp, NULL);
	rq = (Ringraft__Kv__Request)RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__BACKUP_CHUNK;
	rq.backup_id = id;
	rq.backup_offset = len;
	ck_assert_int_eq(cluster_call(a, leader, &rq, &resp, 5000), 0);
	ck_assert_int_eq(resp->code, RINGRAFT__KV__CODE__INVALID);
	ringraft__kv__response__free_unpacked(resp, NULL);
	/* a big group: the first chunk, then a wrong offset closes the backup */
	static char big[BIG_BYTES + 1];
	memset(big, 'z', BIG_BYTES);
	char key[64];
	for (int i = 0; i < 40; i++) {
		char prefix[16];
		snprintf(prefix, sizeof prefix, "bigk%d", i);
		cluster_key_in_group(a, 2, prefix, key, sizeof key);
		put_acked(a, key, big);
	}
	resp = begin_at_leader(2, &leader);
	ck_assert_int_eq(resp->code, OK);
	ck_assert(!resp->done);
	id = resp->backup_id;
	len = resp->value.len;
	ringraft__kv__response__free_unpacked(resp, NULL);
	rq = (Ringraft__Kv__Request)RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__BACKUP_CHUNK;
	rq.backup_id = id;
	rq.backup_offset = len + 1;
	ck_assert_int_eq(cluster_call(a, leader, &rq, &resp, 5000), 0);
	ck_assert_int_eq(resp->code, RINGRAFT__KV__CODE__INVALID);
	ck_assert_ptr_nonnull(strstr(resp->error, "backup_offset"));
	ringraft__kv__response__free_unpacked(resp, NULL);
	rq.backup_offset = len;
	ck_assert_int_eq(cluster_call(a, leader, &rq, &resp, 5000), 0);
	ck_assert_int_eq(resp->code, RINGRAFT__KV__CODE__INVALID); /* closed by the wrong one */
	ringraft__kv__response__free_unpacked(resp, NULL);
}
END_TEST

/* A backup while one node of three is down (its endpoint listed first): every group is copied
 * from the two that serve, and the file checks out. */
START_TEST(test_backup_with_a_node_down)
{
	a = start(0, NULL);
	ck_assert_ptr_nonnull(a);
	char key[64];
	for (int i = 0; i < 40; i++) {
		snprintf(key, sizeof key, "d%03d", i);
		put_acked(a, key, "v");
	}
	cluster_kill(a, 1);
	ck_assert_int_eq(cluster_wait_leaders(a, 20000), 0);
	char file[700], *out = NULL;
	snprintf(file, sizeof file, "%s/degraded.backup", root);
	int ex = kvctl_backup(a, file, &out);
	ck_assert_msg(ex == 0, "kvctl backup with node 1 down: exit %d:\n%s", ex, out);
	free(out);
	ck_assert_int_eq(kvctl_restore(file, &out), 0);
	free(out);
}
END_TEST

/* A restore that stopped half-way (restore.pending left) keeps the node from starting. */
START_TEST(test_interrupted_restore_refused)
{
	char dir[720], p[800], exe[600], members[64], client[64], g[16], *out = NULL;
	snprintf(dir, sizeof dir, "%s/interrupted-data", root);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	snprintf(p, sizeof p, "%s/restore.pending", dir);
	FILE *f = fopen(p, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	snprintf(exe, sizeof exe, "%s/kvd", bin());
	snprintf(members, sizeof members, "1=127.0.0.%d:29999", ip_base() + 5);
	snprintf(client, sizeof client, "127.0.0.%d:29998", ip_base() + 5);
	snprintf(g, sizeof g, "%d", GROUPS);
	char *argv[] = {exe,     "--data-dir",    dir,    "--id",     "1", "--cluster",
			members, "--client-addr", client, "--groups", g,   NULL};
	int ex = run(argv, &out);
	ck_assert_msg(ex == 1 && strstr(out, "was interrupted"), "exit %d, said:\n%s", ex, out);
	free(out);
}
END_TEST

int main(void)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(root, sizeof root, "%s/ringraft-backup-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(root) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	Suite *s = suite_create("backup");
	TCase *tc = tcase_create("load"); /* alone: CK_RUN_CASE=load */
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_backup_under_load_restores_into_new_cluster);
	suite_add_tcase(s, tc);
	TCase *td = tcase_create("checks");
	tcase_add_checked_fixture(td, NULL, teardown);
	tcase_set_timeout(td, 120);
	tcase_add_test(td, test_damaged_backup_refused);
	tcase_add_test(td, test_backup_requests_checked);
	tcase_add_test(td, test_interrupted_restore_refused);
	tcase_add_test(td, test_backup_with_a_node_down);
	suite_add_tcase(s, td);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	remove_root();
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
