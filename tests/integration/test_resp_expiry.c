/* test_resp_expiry.c — expiry and SCAN on the RESP port of a 3-node cluster: every new command
 * through redis-cli with exact replies (numbers that depend on time checked within their
 * bounds), kvctl put --ttl / ttl, python3-redis with TTLs and scan_iter, keys set with PX 200
 * gone from every node's storage within a bound (read with READONLY on each node, and the
 * count of stored keys), and no linearizable read ever returning a key after its expiry nor
 * missing one before it (both sides judged by the one clock of this machine).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/integration/resp_helper.h"

/* ------------------------------------------------------------------------------ fixture */
static struct cluster *c;

static void setup(void)
{
	struct cluster_opts o;
	cluster_opts_default(&o);
	o.resp = true;
	o.extra_args = "--balance-leaders off";
	c = cluster_start(&o);
	ck_assert_msg(c != NULL, "cluster did not start");
}

static void teardown(void)
{
	cluster_teardown(&c);
}

/* ------------------------------------------------------------------------------ helpers */

/* The value of "name:" in INFO <section> of node (asserts that it is there). */
static long long info_field(int node, const char *section, const char *name)
{
	char args[128];
	snprintf(args, sizeof args, "INFO %s", section);
	char *out = rh_cli(c, node, args);
	char *p = strstr(out, name);
	ck_assert_msg(p != NULL && p[strlen(name)] == ':', "INFO %s has no %s: %s", section, name,
		      out);
	long long v = strtoll(p + strlen(name) + 1, NULL, 10);
	free(out);
	return v;
}

/* keys and expires of INFO keyspace's db0 line */
static void keyspace(int node, long long *keys, long long *expires)
{
	char *out = rh_cli(c, node, "INFO keyspace");
	char *p = strstr(out, "db0:keys=");
	ck_assert_msg(p != NULL, "no db0 line: %s", out);
	ck_assert_int_eq(sscanf(p, "db0:keys=%lld,expires=%lld", keys, expires), 2);
	free(out);
}

static void kvctl_is(const char *args, const char *want, int want_status)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "%s/kvctl --endpoints %s %s 2>/dev/null; echo \"rc=$?\"",
		 getenv("RINGRAFT_BIN") ? getenv("RINGRAFT_BIN") : "bin", cluster_endpoints(c),
		 args);
	char *out = rh_run(cmd);
	char expect[512];
	snprintf(expect, sizeof expect, "%s%src=%d", want, *want ? "\n" : "", want_status);
	ck_assert_msg(strcmp(out, expect) == 0, "kvctl %s: got [%s], want [%s]", args, out, expect);
	free(out);
}

/* ------------------------------------------------------------------------------ commands */
START_TEST(test_expiry_commands)
{
	rh_cli_is(c, 1, "SET e1 v EX 100", "OK");
	for (int i = 1; i <= CLUSTER_NODES; i++) {
		long long t = rh_cli_int(c, i, "TTL e1"), pt = rh_cli_int(c, i, "PTTL e1");
		ck_assert_msg(t >= 95 && t <= 100, "TTL %lld", t);
		ck_assert_msg(pt > 95000 && pt <= 100000, "PTTL %lld", pt);
	}
	rh_cli_is(c, 2, "TTL nope", "-2");
	rh_cli_is(c, 2, "PTTL nope", "-2");
	rh_cli_is(c, 1, "SET plain v", "OK");
	rh_cli_is(c, 3, "TTL plain", "-1");
	rh_cli_is(c, 3, "PTTL plain", "-1");
	/* KEEPTTL keeps it, a plain SET clears it */
	rh_cli_is(c, 2, "SET e1 w KEEPTTL", "OK");
	long long t = rh_cli_int(c, 1, "TTL e1");
	ck_assert_msg(t >= 95 && t <= 100, "TTL after KEEPTTL %lld", t);
	rh_cli_is(c, 3, "GET e1", "w");
	rh_cli_is(c, 1, "SET e1 x", "OK");
	rh_cli_is(c, 1, "TTL e1", "-1");
	/* PX, PXAT, EXAT */
	rh_cli_is(c, 1, "SET e2 v PX 50000", "OK");
	long long pt = rh_cli_int(c, 2, "PTTL e2");
	ck_assert_msg(pt > 45000 && pt <= 50000, "PTTL after PX %lld", pt);
	char args[256];
	uint64_t at = rh_wall_ms() + 60000;
	snprintf(args, sizeof args, "SET e3 v PXAT %llu", (unsigned long long)at);
	rh_cli_is(c, 3, args, "OK");
	pt = rh_cli_int(c, 1, "PTTL e3");
	ck_assert_msg(pt > 55000 && pt <= 60000, "PTTL after PXAT %lld", pt);
	snprintf(args, sizeof args, "SET e4 v EXAT %llu", (unsigned long long)(at / 1000 + 30));
	rh_cli_is(c, 3, args, "OK");
	t = rh_cli_int(c, 2, "TTL e4");
	ck_assert_msg(t >= 85 && t <= 91, "TTL after EXAT %lld", t);
	/* a time in the past: the key is gone at once */
	rh_cli_is(c, 1, "SET e5 v PXAT 1000", "OK");
	rh_cli_is(c, 2, "GET e5", "");
	rh_cli_is(c, 2, "EXISTS e5", "0");
	/* NX / XX with an expiry */
	rh_cli_is(c, 1, "SET e6 v NX PX 60000", "OK");
	rh_cli_is(c, 1, "SET e6 v2 NX PX 60000", "");
	rh_cli_is(c, 1, "SET e6 v3 XX EX 70 GET", "v");
	t = rh_cli_int(c, 3, "TTL e6");
	ck_assert_msg(t >= 65 && t <= 70, "TTL after XX EX %lld", t);
	/* refused options */
	rh_cli_is(c, 1, "SET e7 v EX 0", "ERR invalid expire time in 'set' command");
	rh_cli_is(c, 1, "SET e7 v PX -5", "ERR invalid expire time in 'set' command");
	rh_cli_is(c, 1, "SET e7 v EX 10 KEEPTTL", "ERR syntax error");
	rh_cli_is(c, 1, "SET e7 v KEEPTTL PX 10", "ERR syntax error");
	rh_cli_is(c, 1, "SET e7 v EX", "ERR syntax error");
	rh_cli_is(c, 1, "SET e7 v EX 9223372036854775807",
		  "ERR invalid expire time in 'set' command");
	rh_cli_is(c, 1, "GET e7", "");
	/* EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT, PERSIST */
	rh_cli_is(c, 2, "EXPIRE plain 100", "1");
	t = rh_cli_int(c, 3, "TTL plain");
	ck_assert_msg(t >= 95 && t <= 100, "TTL after EXPIRE %lld", t);
	rh_cli_is(c, 1, "PEXPIRE plain 200000", "1");
	pt = rh_cli_int(c, 1, "PTTL plain");
	ck_assert_msg(pt > 195000 && pt <= 200000, "PTTL after PEXPIRE %lld", pt);
	snprintf(args, sizeof args, "EXPIREAT plain %llu",
		 (unsigned long long)(rh_wall_ms() / 1000 + 300));
	rh_cli_is(c, 3, args, "1");
	t = rh_cli_int(c, 3, "TTL plain");
	ck_assert_msg(t >= 295 && t <= 301, "TTL after EXPIREAT %lld", t);
	snprintf(args, sizeof args, "PEXPIREAT plain %llu",
		 (unsigned long long)(rh_wall_ms() + 400000));
	rh_cli_is(c, 2, args, "1");
	rh_cli_is(c, 1, "PERSIST plain", "1");
	rh_cli_is(c, 1, "PERSIST plain", "0");
	rh_cli_is(c, 1, "TTL plain", "-1");
	rh_cli_is(c, 1, "EXPIRE nope 10", "0");
	rh_cli_is(c, 1, "PERSIST nope", "0");
	rh_cli_is(c, 1, "EXPIRE plain ten", "ERR value is not an integer or out of range");
	rh_cli_is(c, 1, "EXPIRE plain 10 NX",
		  "ERR expire options (NX, XX, GT, LT) are not supported by ringraft");
	rh_cli_is(c, 1, "EXPIRE plain", "ERR wrong number of arguments for 'expire' command");
	rh_cli_is(c, 1, "TTL", "ERR wrong number of arguments for 'ttl' command");
	/* a time not in the future deletes, as in Redis */
	rh_cli_is(c, 2, "EXPIRE plain -1", "1");
	rh_cli_is(c, 3, "GET plain", "");
	rh_cli_is(c, 3, "EXPIRE plain 10", "0");
	/* INCR keeps an expiry; DEL does not count an expired key */
	rh_cli_is(c, 1, "SET n 5 EX 100", "OK");
	rh_cli_is(c, 1, "INCR n", "6");
	t = rh_cli_int(c, 2, "TTL n");
	ck_assert_msg(t >= 95 && t <= 100, "TTL after INCR %lld", t);
	rh_cli_is(c, 1, "SET gone v PXAT 1", "OK");
	rh_cli_is(c, 1, "DEL gone", "0");
	/* the keyspace line counts expiring keys (e1 lost its expiry; e2 e3 e4 e6 n keep one) */
	long long keys, expires;
	uint64_t end = cluster_now_ms() + 5000;
	do {
		keyspace(1, &keys, &expires);
	} while (expires != 5 && cluster_now_ms() < end && usleep(50000) == 0);
	ck_assert_int_eq(expires, 5);
	/* kvctl */
	kvctl_is("put --ttl 10s kt v", "", 0);
	char *out = rh_cli(c, 2, "PTTL kt");
	long long left = atoll(out);
	free(out);
	ck_assert_msg(left > 5000 && left <= 10000, "PTTL after kvctl put --ttl: %lld", left);
	kvctl_is("ttl nope", "-2", 1);
	kvctl_is("put kt2 v", "", 0);
	kvctl_is("ttl kt2", "-1", 0);
	kvctl_is("put --ttl 0 kt3 v", "", 2);
	kvctl_is("put --ttl soon kt3 v", "", 2);
	kvctl_is("get --ttl 1s kt", "", 2);
	kvctl_is("put --ttl 300ms kt4 v", "", 0);
	end = cluster_now_ms() + 5000;
	while (rh_cli_int(c, 1, "EXISTS kt4") == 1 && cluster_now_ms() < end)
		usleep(20000);
	kvctl_is("get kt4", "", 1);
}
END_TEST

/* ------------------------------------------------------------------------------ SCAN */
static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* out (taken): newline-separated keys, which must be exactly sc:00..sc:39 in some order */
static void check_scan(char *out, int node, int count)
{
	char *keys[64], *save = NULL;
	int n = 0;
	for (char *t = strtok_r(out, "\n", &save); t && n < 64; t = strtok_r(NULL, "\n", &save))
		keys[n++] = t;
	qsort(keys, (size_t)n, sizeof keys[0], cmp_str);
	ck_assert_msg(n == 40, "node %d count %d: %d keys", node, count, n);
	for (int i = 0; i < 40; i++) {
		char want[16];
		snprintf(want, sizeof want, "sc:%02d", i);
		ck_assert_str_eq(keys[i], want);
	}
	free(out);
}

START_TEST(test_scan)
{
	/* 40 keys sc:00..sc:39 spread over the groups, plus others that MATCH must leave out */
	for (int i = 0; i < 40; i++) {
		char args[64];
		snprintf(args, sizeof args, "SET sc:%02d v", i);
		rh_cli_is(c, 1 + i % 3, args, "OK");
	}
	rh_cli_is(c, 1, "SET other v", "OK");
	rh_cli_is(c, 1, "SET sc:dead v PXAT 1", "OK");
	for (int node = 1; node <= CLUSTER_NODES; node++) {
		/* redis-cli's own loop (COUNT 10) */
		check_scan(rh_cli(c, node, "--scan --pattern 'sc:*'"), node, 0);
		/* ours, a new connection per page, at several COUNTs: the cursor is the
		 * node's, not the connection's */
		for (int count = 1; count <= 100; count *= 10) {
			char cursor[32] = "0", args[128], *all = calloc(1, 1 << 16);
			size_t len = 0;
			int pages = 0;
			do {
				snprintf(args, sizeof args, "SCAN %s MATCH 'sc:*' COUNT %d", cursor,
					 count);
				char *page = rh_cli(c, node, args), *nl = strchr(page, '\n');
				size_t cl = nl ? (size_t)(nl - page) : strlen(page);
				ck_assert_msg(cl > 0 && cl < sizeof cursor && page[0] >= '0' &&
						      page[0] <= '9',
					      "SCAN page: %s", page);
				memcpy(cursor, page, cl);
				cursor[cl] = '\0';
				if (nl)
					len += (size_t)snprintf(all + len, (1 << 16) - len, "%s\n",
								nl + 1);
				free(page);
				ck_assert_int_lt(++pages, 1000);
			} while (strcmp(cursor, "0") != 0);
			check_scan(all, node, count);
		}
	}
	/* a cursor is the node's: good on a new connection to it, refused by another node */
	char *out = rh_cli(c, 1, "SCAN 0 COUNT 3");
	char *nl = strchr(out, '\n');
	ck_assert_ptr_nonnull(nl);
	*nl = '\0';
	ck_assert_str_ne(out, "0");
	char args[128];
	snprintf(args, sizeof args, "SCAN %s COUNT 1000", out);
	free(out);
	out = rh_cli(c, 1, args);
	ck_assert_msg(out[0] >= '0' && out[0] <= '9', "SCAN with a handed-back cursor: %s", out);
	free(out);
	rh_cli_is(c, 2, args, "ERR invalid cursor (expired: start the scan again from 0)");
	rh_cli_is(c, 1, "SCAN 0 TYPE hash", "0");
	rh_cli_is(c, 1, "SCAN 0 COUNT 0", "ERR syntax error");
	rh_cli_is(c, 1, "SCAN 0 COUNT x", "ERR value is not an integer or out of range");
	rh_cli_is(c, 1, "SCAN 0 MATCH", "ERR syntax error");
	rh_cli_is(c, 1, "SCAN abc", "ERR invalid cursor");
	rh_cli_is(c, 1, "SCAN 999", "ERR invalid cursor");
	rh_cli_is(c, 1, "SCAN 12345678901",
		  "ERR invalid cursor (expired: start the scan again "
		  "from 0)");
}
END_TEST

/* ------------------------------------------------------------------------------ INFO */
START_TEST(test_info_sections)
{
	rh_cli_is(c, 1, "SET i v", "OK");
	for (int node = 1; node <= CLUSTER_NODES; node++) {
		ck_assert_int_gt(info_field(node, "wal", "wal_fsyncs"), 0);
		ck_assert_int_gt(info_field(node, "wal", "wal_bytes_on_disk"), 0);
		ck_assert_int_gt(info_field(node, "wal", "wal_records_written"), 0);
		ck_assert_int_gt(info_field(node, "stats", "apply_entries"), 0);
		ck_assert_int_ge(info_field(node, "stats", "total_commands_processed"), 0);
	}
	long long before = info_field(1, "stats", "total_commands_processed");
	rh_cli_is(c, 1, "GET i", "v");
	ck_assert_int_gt(info_field(1, "stats", "total_commands_processed"), before);
	char *all = rh_cli(c, 2, "INFO");
	ck_assert_ptr_nonnull(strstr(all, "# WAL"));
	ck_assert_ptr_nonnull(strstr(all, "# Stats"));
	ck_assert_ptr_nonnull(strstr(all, "# Raft"));
	free(all);
	char *raft = rh_cli(c, 2, "INFO raft");
	ck_assert_ptr_null(strstr(raft, "# WAL"));
	free(raft);
}
END_TEST

/* ------------------------------------------------------------------------------ python */
static const char *py_script =
	"import sys, time, redis\n"
	"r = redis.Redis(host=sys.argv[1], port=int(sys.argv[2]), socket_timeout=10)\n"
	"assert r.set('pyt', 'v', px=400)\n"
	"assert 0 < r.pttl('pyt') <= 400, r.pttl('pyt')\n"
	"assert r.ttl('pyt') in (0, 1)\n"
	"assert r.ttl('pyt-none') == -2 and r.pttl('pyt-none') == -2\n"
	"p = r.pipeline(transaction=False)\n"
	"for i in range(20):\n"
	"    p.set('pyx%d' % i, i, ex=100)\n"
	"p.expire('pyx0', 5); p.persist('pyx1'); p.ttl('pyx1'); p.ttl('pyx2')\n"
	"res = p.execute()\n"
	"assert res[:20] == [True] * 20, res\n"
	"assert res[20:23] == [True, True, -1], res[20:]\n"
	"assert 95 <= res[23] <= 100, res[23]\n"
	"assert r.mset({'{t}a': 1, '{t}b': 2}) and r.expire('{t}a', 100)\n"
	"assert sorted(r.scan_iter(match='pyx*', count=7)) == sorted(b'pyx%d' % i for i in "
	"range(20))\n"
	"deadline = time.time() + 5\n"
	"while r.get('pyt') is not None:\n"
	"    assert time.time() < deadline, 'pyt never expired'\n"
	"    time.sleep(0.02)\n"
	"assert r.exists('pyt') == 0 and r.ttl('pyt') == -2\n"
	"assert r.set('pyk', 'a', keepttl=True) and r.ttl('pyk') == -1\n"
	"print('ok')\n";

START_TEST(test_python_redis_ttl)
{
	char path[] = "/tmp/ringraft-resp-ttl-XXXXXX.py";
	int fd = mkstemps(path, 3);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, py_script, strlen(py_script)), (ssize_t)strlen(py_script));
	close(fd);
	for (int node = 1; node <= CLUSTER_NODES; node++) {
		char host[64], cmd[512];
		int port;
		rh_host_port(c, node, host, sizeof host, &port);
		snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s %d 2>&1", path, host, port);
		char *out = rh_run(cmd);
		ck_assert_msg(strcmp(out, "ok") == 0, "python3-redis against node %d: %s", node,
			      out);
		free(out);
	}
	unlink(path);
}
END_TEST

/* ------------------------------------------------------------------------------ reaping */
#define PX_KEYS 200

/* Keys set with PX 200 are removed from every node's storage (the leader's REAP entries,
 * applied by every replica) within a bound, and no replica serves one once it is due. Runs
 * first on its cluster: no other key carries an expiry, so the counts are exact. */
START_TEST(test_px_keys_gone_on_every_node)
{
	long long keys0[CLUSTER_NODES + 1], expires;
	rh_cli_is(c, 1, "SET px-neighbour v", "OK");
	for (int node = 1; node <= CLUSTER_NODES; node++) {
		keyspace(node, &keys0[node], &expires);
		ck_assert_int_eq(expires, 0);
	}
	int fd = rh_dial(c, 1);
	char req[256], out[256];
	uint64_t t_set = rh_wall_ms();
	for (int i = 0; i < PX_KEYS; i++) {
		int l = snprintf(
			req, sizeof req,
			"*5\r\n$3\r\nSET\r\n$6\r\npx%04d\r\n$1\r\nv\r\n$2\r\nPX\r\n$3\r\n200\r\n",
			i);
		rh_send_all(fd, req, (size_t)l);
	}
	for (int i = 0; i < PX_KEYS; i++)
		ck_assert_int_eq(rh_reply(fd, out, sizeof out, 10000), '+');
	uint64_t t_acked = rh_wall_ms();
	close(fd);
	/* every replica hides them once due (READONLY: its own state, its own clock) */
	while (rh_wall_ms() < t_acked + 200)
		usleep(10000);
	for (int node = 1; node <= CLUSTER_NODES; node++) {
		char host[64], cmd[512];
		int port;
		rh_host_port(c, node, host, sizeof host, &port);
		snprintf(cmd, sizeof cmd,
			 "(echo READONLY; for i in $(seq -f %%04g 0 %d); do echo GET px$i; done) "
			 "| redis-cli -h %s -p %d | sort | uniq -c | sed 's/^ *//'",
			 PX_KEYS - 1, host, port);
		char *o = rh_run(cmd);
		/* OK for READONLY, then one empty line (nil) per key */
		char want[64];
		snprintf(want, sizeof want, "%d \n1 OK", PX_KEYS);
		ck_assert_msg(strcmp(o, want) == 0, "node %d served an expired key: %s", node, o);
		free(o);
	}
	/* ... and removes them: the stored count drops back on every node, within a bound */
	uint64_t t_gone[CLUSTER_NODES + 1] = {0};
	uint64_t end = cluster_now_ms() + 10000;
	int left = CLUSTER_NODES;
	while (left > 0 && cluster_now_ms() < end) {
		for (int node = 1; node <= CLUSTER_NODES; node++) {
			long long k;
			if (t_gone[node])
				continue;
			keyspace(node, &k, &expires);
			if (expires == 0 && k == keys0[node]) {
				t_gone[node] = rh_wall_ms();
				left--;
			}
		}
		usleep(20000);
	}
	for (int node = 1; node <= CLUSTER_NODES; node++) {
		ck_assert_msg(t_gone[node] != 0, "node %d still stores expiring keys after 10 s",
			      node);
		fprintf(stderr, "PX 200 keys reaped on node %d %llu ms after they were set\n", node,
			(unsigned long long)(t_gone[node] - t_set));
	}
	for (int node = 1; node <= CLUSTER_NODES; node++) {
		long long k;
		keyspace(node, &k, &expires);
		ck_assert_int_eq(expires, 0);
		ck_assert_int_eq(k, keys0[node]);
		ck_assert_int_eq(k, keys0[1]); /* the same keys everywhere */
	}
}
END_TEST

/* ------------------------------------------------------------------------------ linearizable */
#define LIN_KEYS 24

/* Keys set with PX 200, then read again and again through every node (linearizable reads,
 * forwarded to the leaders): a read sent at or after (its SET's reply + 200 ms) must miss, and
 * a read answered before (its SET's invocation + 200 ms) must hit — the leader took the expiry
 * from its clock between the two, and this machine has one clock. */
START_TEST(test_linearizable_reads_respect_expiry)
{
	int fds[CLUSTER_NODES + 1];
	for (int node = 1; node <= CLUSTER_NODES; node++)
		fds[node] = rh_dial(c, node);
	uint64_t inv[LIN_KEYS], ack[LIN_KEYS];
	char req[256], out[256];
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < LIN_KEYS; i++) {
			int l = snprintf(
				req, sizeof req,
				"*5\r\n$3\r\nSET\r\n$5\r\nlin%02d\r\n$2\r\nv%d\r\n$2\r\nPX\r\n"
				"$3\r\n200\r\n",
				i, round);
			int fd = fds[1 + i % CLUSTER_NODES];
			inv[i] = rh_wall_ms();
			rh_send_all(fd, req, (size_t)l);
			ck_assert_int_eq(rh_reply(fd, out, sizeof out, 10000), '+');
			ack[i] = rh_wall_ms();
		}
		int hits_early = 0, misses_late = 0;
		uint64_t end = rh_wall_ms() + 600;
		for (int k = 0; rh_wall_ms() < end; k++) {
			int i = k % LIN_KEYS, fd = fds[1 + (k / LIN_KEYS) % CLUSTER_NODES];
			int l = snprintf(req, sizeof req, "*2\r\n$3\r\nGET\r\n$5\r\nlin%02d\r\n",
					 i);
			uint64_t sent = rh_wall_ms();
			rh_send_all(fd, req, (size_t)l);
			char t = rh_reply(fd, out, sizeof out, 10000);
			uint64_t got = rh_wall_ms();
			ck_assert_msg(t == '$' || t == 'n', "GET lin%02d: reply type %d", i, t);
			if (sent >= ack[i] + 200) {
				ck_assert_msg(t == 'n',
					      "lin%02d read %llu ms after its SET's reply: [%s]", i,
					      (unsigned long long)(sent - ack[i]), out);
				misses_late++;
			}
			if (got < inv[i] + 200) {
				ck_assert_msg(t == '$',
					      "lin%02d missing %llu ms after its SET began", i,
					      (unsigned long long)(got - inv[i]));
				hits_early++;
			}
		}
		/* both sides were actually exercised */
		ck_assert_int_gt(misses_late, 0);
		ck_assert_int_gt(hits_early, 0);
	}
	for (int node = 1; node <= CLUSTER_NODES; node++)
		close(fds[node]);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("resp_expiry");
	TCase *tc = tcase_create("resp_expiry");
	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_px_keys_gone_on_every_node); /* first: see there */
	tcase_add_test(tc, test_linearizable_reads_respect_expiry);
	tcase_add_test(tc, test_expiry_commands);
	tcase_add_test(tc, test_scan);
	tcase_add_test(tc, test_info_sections);
	tcase_add_test(tc, test_python_redis_ttl);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
