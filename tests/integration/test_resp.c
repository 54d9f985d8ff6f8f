/* test_resp.c — the RESP port (--resp-addr) of a 3-node cluster, driven by real Redis clients:
 * a redis-cli session through every command with exact replies (any node, any key: nodes
 * forward), python3-redis with a pipeline and hash-tagged MSET, redis-benchmark against one node
 * with zero errors (the full -n 100000 -c 50 run; RINGRAFT_RESP_BENCH=short: -n 5000), and hostile
 * input (huge bulk length, nesting, garbage, a client that never reads) costing only its
 * connection.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/frame.h"
#include "tests/integration/cluster.h"

/* ------------------------------------------------------------------------------ fixture */
static struct cluster *c;

static void setup(void)
{
	struct cluster_opts o;
	cluster_opts_default(&o);
	o.resp = true;
	/* No leadership moves by the balancer: a write that meets a transfer is answered
	 * -TRYAGAIN (definite, retryable), which redis-benchmark counts as an error. */
	o.extra_args = "--balance-leaders off";
	c = cluster_start(&o);
	ck_assert_msg(c != NULL, "cluster did not start");
}

static void teardown(void)
{
	cluster_teardown(&c);
}

/* ------------------------------------------------------------------------------ helpers */
static void host_port(int node, char *host, size_t hl, int *port)
{
	const char *a = cluster_resp_addr(c, node);
	const char *colon = strrchr(a, ':');
	snprintf(host, hl, "%.*s", (int)(colon - a), a);
	*port = atoi(colon + 1);
}

/* Runs a shell command, returns its stdout (malloc'd, trailing newlines removed). */
static char *run(const char *cmd)
{
	FILE *f = popen(cmd, "r");
	ck_assert_msg(f != NULL, "popen %s", cmd);
	size_t cap = 1 << 16, len = 0;
	char *out = malloc(cap);
	size_t r;
	while ((r = fread(out + len, 1, cap - len - 1, f)) > 0) {
		len += r;
		if (cap - len < 2)
			out = realloc(out, cap *= 2);
	}
	pclose(f);
	while (len > 0 && out[len - 1] == '\n')
		len--;
	out[len] = '\0';
	return out;
}

/* redis-cli (raw output, as when piped) against node's RESP port. */
static void cli_is(int node, const char *args, const char *want)
{
	char host[64], cmd[1024];
	int port;
	host_port(node, host, sizeof host, &port);
	snprintf(cmd, sizeof cmd, "redis-cli -h %s -p %d %s 2>&1", host, port, args);
	char *out = run(cmd);
	ck_assert_msg(strcmp(out, want) == 0, "redis-cli %s: got [%s], want [%s]", args, out, want);
	free(out);
}

static int dial(int node)
{
	struct sockaddr_storage ss;
	ck_assert_int_eq(net_parse_addr(cluster_resp_addr(c, node), &ss), NET_OK);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)), 0);
	return fd;
}

static void send_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n > 0) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
		if (w <= 0)
			return; /* the server may have closed already */
		b += w;
		n -= (size_t)w;
	}
}

/* Reads until the peer closes or timeout_ms passes; returns the bytes (NUL-terminated) and
 * whether it closed. */
static char *read_until_close(int fd, int timeout_ms, bool *closed)
{
	size_t cap = 1 << 16, len = 0;
	char *b = malloc(cap);
	*closed = false;
	uint64_t end = cluster_now_ms() + (uint64_t)timeout_ms;
	while (cluster_now_ms() < end) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, 50) <= 0)
			continue;
		ssize_t r = recv(fd, b + len, cap - len - 1, 0);
		if (r <= 0) {
			*closed = true;
			break;
		}
		len += (size_t)r;
		if (cap - len < 2)
			b = realloc(b, cap *= 2);
	}
	b[len] = '\0';
	return b;
}

/* Reads exactly n bytes (bounded by a deadline). */
static char *read_n(int fd, size_t n)
{
	char *b = calloc(1, n + 1);
	size_t len = 0;
	uint64_t end = cluster_now_ms() + 10000;
	while (len < n && cluster_now_ms() < end) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, 50) <= 0)
			continue;
		ssize_t r = recv(fd, b + len, n - len, 0);
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	return b;
}

static void still_serving(void)
{
	for (int i = 1; i <= CLUSTER_NODES; i++)
		cli_is(i, "PING", "PONG");
}

/* ------------------------------------------------------------------------------ redis-cli */
START_TEST(test_redis_cli_session)
{
	cli_is(1, "PING", "PONG");
	cli_is(1, "PING hello", "hello");
	cli_is(2, "ECHO 'a b'", "a b");
	cli_is(1, "SELECT 0", "OK");
	cli_is(1, "SELECT 1", "ERR DB index is out of range");
	cli_is(1, "SET a 1", "OK");
	for (int i = 1; i <= CLUSTER_NODES; i++)
		cli_is(i, "GET a", "1"); /* forwarded to the group leader: linearizable */
	cli_is(3, "GET nope", "");
	cli_is(2, "SET k v NX", "OK");
	cli_is(3, "SET k v2 NX", "");
	cli_is(1, "SET k v2 NX GET", "v");
	cli_is(1, "SET k v3 XX GET", "v");
	cli_is(2, "SET absent v XX", "");
	cli_is(2, "GET absent", "");
	cli_is(3, "SET k v4 GET", "v3");
	cli_is(1, "SET k v EX 0", "ERR invalid expire time in 'set' command");
	cli_is(1, "SET k v EX 10 PX 5", "ERR syntax error");
	cli_is(1, "SET k v EX ten", "ERR value is not an integer or out of range");
	cli_is(1, "SET k v NX XX", "ERR syntax error");
	cli_is(1, "GETDEL k", "v4");
	cli_is(2, "GETDEL k", "");
	cli_is(1, "INCR n", "1");
	cli_is(2, "INCRBY n 41", "42");
	cli_is(3, "DECR n", "41");
	cli_is(1, "DECRBY n 50", "-9");
	cli_is(1, "INCRBY n x", "ERR value is not an integer or out of range");
	cli_is(1, "INCR a", "2");
	cli_is(1, "SET s abc", "OK");
	cli_is(2, "INCR s", "ERR value is not an integer or out of range");
	cli_is(1, "SET m 9223372036854775807", "OK");
	cli_is(1, "INCR m", "ERR increment or decrement would overflow");
	cli_is(1, "CAS a 1 x", "0");
	cli_is(2, "CAS a 2 x", "1");
	cli_is(3, "GET a", "x");
	cli_is(1, "MSET {u}a 1 {u}b 2", "OK");
	cli_is(2, "MGET {u}a {u}b {u}c", "1\n2");
	cli_is(3, "EXISTS {u}a {u}c {u}b {u}a", "3");
	cli_is(1, "DEL {u}a {u}b {u}c", "2");
	cli_is(1, "EXISTS {u}a", "0");
	/* keys of different groups (with 4 groups, some of these 8 keys must differ) */
	cli_is(1, "MSET k1 1 k2 2 k3 3 k4 4 k5 5 k6 6 k7 7 k8 8",
	       "CROSSSLOT Keys in request don't hash to the same slot");
	cli_is(1, "MGET k1 k2 k3 k4 k5 k6 k7 k8",
	       "CROSSSLOT Keys in request don't hash to the same slot");
	cli_is(1, "MSET a", "ERR wrong number of arguments for 'mset' command");
	cli_is(1, "GET", "ERR wrong number of arguments for 'get' command");
	cli_is(1, "FOO bar baz",
	       "ERR unknown command 'FOO', with args beginning with: 'bar' 'baz' ");
	cli_is(1, "FLUSHALL", "ERR unknown command 'FLUSHALL', with args beginning with: ");
	cli_is(1, "CLIENT SETNAME me", "OK");
	cli_is(1, "CLIENT GETNAME", "");
	cli_is(1, "CONFIG GET save", "save");
	cli_is(1, "CONFIG GET appendonly", "appendonly\nno");
	cli_is(1, "COMMAND COUNT", "0");
	cli_is(1, "READONLY", "OK");
	cli_is(1, "READWRITE", "OK");
	cli_is(1, "QUIT", "OK");
	cli_is(1, "HELLO 4", "NOPROTO unsupported protocol version");
	cli_is(1, "-3 SET r3 v", "OK");
	cli_is(1, "-3 GET nope", "");
}
END_TEST

/* One connection: a pipeline in one write, replies in order although the keys live in
 * different groups (led by different nodes); RESP3 after HELLO 3; CLIENT SETNAME/GETNAME;
 * READONLY reads. */
START_TEST(test_pipeline_order_and_resp3)
{
	int fd = dial(2);
	char req[4096];
	size_t l = 0;
	for (int i = 0; i < 20; i++)
		l += (size_t)snprintf(req + l, sizeof req - l,
				      "*3\r\n$3\r\nSET\r\n$3\r\np%02d\r\n$2\r\n%02d\r\n", i, i);
	for (int i = 0; i < 20; i++)
		l += (size_t)snprintf(req + l, sizeof req - l, "*2\r\n$3\r\nGET\r\n$3\r\np%02d\r\n",
				      i);
	l += (size_t)snprintf(req + l, sizeof req - l, "PING\r\n");
	send_all(fd, req, l);
	char want[4096];
	size_t wl = 0;
	for (int i = 0; i < 20; i++)
		wl += (size_t)snprintf(want + wl, sizeof want - wl, "+OK\r\n");
	for (int i = 0; i < 20; i++)
		wl += (size_t)snprintf(want + wl, sizeof want - wl, "$2\r\n%02d\r\n", i);
	wl += (size_t)snprintf(want + wl, sizeof want - wl, "+PONG\r\n");
	char *got = read_n(fd, wl);
	ck_assert_str_eq(got, want);
	free(got);
	const char *r3 = "*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n";
	send_all(fd, r3, strlen(r3));
	got = read_n(fd, 4);
	ck_assert_str_eq(got, "%7\r\n"); /* a map */
	free(got);
	free(read_until_close(fd, 300, &(bool){false}));
	const char *q = "*2\r\n$3\r\nGET\r\n$6\r\nabsent\r\n*2\r\n$6\r\nCLIENT\r\n$7\r\nGETNAME\r\n"
			"*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$2\r\nme\r\n"
			"*2\r\n$6\r\nCLIENT\r\n$7\r\nGETNAME\r\n*1\r\n$8\r\nREADONLY\r\n"
			"*2\r\n$3\r\nGET\r\n$3\r\np07\r\n";
	send_all(fd, q, strlen(q));
	const char *w = "_\r\n_\r\n+OK\r\n$2\r\nme\r\n+OK\r\n$2\r\n07\r\n";
	got = read_n(fd, strlen(w));
	ck_assert_str_eq(got, w);
	free(got);
	close(fd);
}
END_TEST

/* ------------------------------------------------------------------------------ python */
static const char *py_script =
	"import sys, redis\n"
	"r = redis.Redis(host=sys.argv[1], port=int(sys.argv[2]), socket_timeout=10)\n"
	"assert r.ping()\n"
	"p = r.pipeline(transaction=False)\n"
	"for i in range(100):\n"
	"    p.set('py%d' % i, 'v%d' % i)\n"
	"for i in range(100):\n"
	"    p.get('py%d' % i)\n"
	"p.incr('pyn'); p.incrby('pyn', 9); p.delete('pyn')\n"
	"res = p.execute()\n"
	"assert res[:100] == [True] * 100, res[:100]\n"
	"assert res[100:200] == [b'v%d' % i for i in range(100)], res[100:200]\n"
	"assert res[200:] == [1, 10, 1], res[200:]\n"
	"assert r.mset({'{acct7}:bal': 10, '{acct7}:owner': 'ann'})\n"
	"assert r.mget('{acct7}:bal', '{acct7}:owner', '{acct7}:x') == [b'10', b'ann', None]\n"
	"try:\n"
	"    r.mset({'x1': 1, 'x2': 2, 'x3': 3, 'x4': 4, 'x5': 5, 'x6': 6, 'x7': 7})\n"
	"    raise SystemExit('no CROSSSLOT')\n"
	"except redis.exceptions.ResponseError as e:\n"
	"    assert 'CROSSSLOT' in str(e), e\n"
	"assert r.set('pyk', 'a', nx=True) and r.set('pyk', 'b', nx=True) is None\n"
	"assert r.getdel('pyk') == b'a' and r.exists('pyk') == 0\n"
	"print('ok')\n";

START_TEST(test_python_redis)
{
	char path[] = "/tmp/ringraft-resp-XXXXXX.py";
	int fd = mkstemps(path, 3);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, py_script, strlen(py_script)), (ssize_t)strlen(py_script));
	close(fd);
	for (int node = 1; node <= CLUSTER_NODES; node++) {
		char host[64], cmd[512];
		int port;
		host_port(node, host, sizeof host, &port);
		/* Debian's interpreter, where python3-redis is installed */
		snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s %d 2>&1", path, host, port);
		char *out = run(cmd);
		ck_assert_msg(strcmp(out, "ok") == 0, "python3-redis against node %d: %s", node,
			      out);
		free(out);
	}
	unlink(path);
}
END_TEST

/* ------------------------------------------------------------------------------ benchmark */
START_TEST(test_redis_benchmark)
{
	/* the run (-n 100000) unless RINGRAFT_RESP_BENCH=short asks for a quick one */
	bool full = !(getenv("RINGRAFT_RESP_BENCH") &&
		      strcmp(getenv("RINGRAFT_RESP_BENCH"), "short") == 0);
	char host[64], cmd[512];
	int port;
	host_port(1, host, sizeof host, &port);
	snprintf(cmd, sizeof cmd,
		 "redis-benchmark -h %s -p %d -t ping,set,get,incr,mset -n %d -c 50 -q 2>&1 | "
		 "tr '\\r' '\\n' | grep -v 'rps=' | grep -v '^ *$'",
		 host, port, full ? 100000 : 5000);
	uint64_t t0 = cluster_now_ms();
	char *out = run(cmd);
	fprintf(stderr, "redis-benchmark (%s) took %.1f s:\n%s\n", full ? "full" : "short",
		(double)(cluster_now_ms() - t0) / 1000.0, out);
	ck_assert_msg(strstr(out, "rror") == NULL && strstr(out, "ERR") == NULL, "errors: %s", out);
	ck_assert_msg(strstr(out, "MSET (10 keys):") != NULL, "incomplete run: %s", out);
	free(out);
}
END_TEST

/* ------------------------------------------------------------------------------ bad input */
static void expect_error_and_close(const char *input, size_t len, const char *want_prefix)
{
	int fd = dial(1);
	send_all(fd, input, len);
	bool closed;
	char *got = read_until_close(fd, 5000, &closed);
	ck_assert_msg(strncmp(got, want_prefix, strlen(want_prefix)) == 0, "got [%s] want [%s]",
		      got, want_prefix);
	ck_assert_msg(closed, "connection not closed after [%s]", got);
	free(got);
	close(fd);
}

START_TEST(test_bad_input)
{
	const char *huge = "*2\r\n$3\r\nGET\r\n$99999999999\r\n";
	expect_error_and_close(huge, strlen(huge), "-ERR Protocol error: invalid bulk length\r\n");
	const char *deep = "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n";
	expect_error_and_close(deep, strlen(deep), "-ERR Protocol error: expected '$', got '*'");
	const char *mbulk = "*99999999\r\n";
	expect_error_and_close(mbulk, strlen(mbulk),
			       "-ERR Protocol error: invalid multibulk length\r\n");
	const char *crlf = "*1\r\n$4\r\nPINGxx";
	expect_error_and_close(crlf, strlen(crlf), "-ERR Protocol error");
	/* replies to the commands before the bad one come first */
	const char *mixed = "PING\r\n*1\r\n$4\r\nPING\r\n*x\r\n";
	expect_error_and_close(mixed, strlen(mixed),
			       "+PONG\r\n+PONG\r\n-ERR Protocol error: invalid multibulk length");
	/* an inline line with no end, longer than the inline limit */
	size_t big = 80 << 10;
	char *junk = malloc(big);
	memset(junk, 'x', big);
	expect_error_and_close(junk, big, "-ERR Protocol error: too big inline request");
	/* binary garbage: an unknown inline command, the connection stays */
	int fd = dial(2);
	const char garbage[] = "\x01\x02\xff garbage\r\nPING\r\n";
	send_all(fd, garbage, sizeof garbage - 1);
	char *got = read_n(fd, 7);
	ck_assert_int_eq(got[0], '-');
	free(got);
	free(read_until_close(fd, 300, &(bool){false}));
	close(fd);
	/* a value just over --value-max: a clean error naming the limit */
	size_t vl = (1u << 20) + 10;
	size_t hl = (size_t)snprintf(junk, 256, "*3\r\n$3\r\nSET\r\n$2\r\nbv\r\n$%zu\r\n", vl);
	char *req = malloc(hl + vl + 2);
	memcpy(req, junk, hl);
	memset(req + hl, 'v', vl);
	memcpy(req + hl + vl, "\r\n", 2);
	fd = dial(3);
	send_all(fd, req, hl + vl + 2);
	const char *w =
		"-ERR value is 1048586 bytes, over the --value-max limit of 1048576 bytes\r\n";
	got = read_n(fd, strlen(w));
	ck_assert_str_eq(got, w);
	free(got);
	close(fd);
	free(req);
	free(junk);
	still_serving();
}
END_TEST

/* A client that pipelines GETs of a 512 KiB value and never reads is dropped at the output
 * limit, while others are served. */
START_TEST(test_client_that_never_reads)
{
	size_t vl = 512 << 10;
	char hdr[128];
	size_t hl =
		(size_t)snprintf(hdr, sizeof hdr, "*3\r\n$3\r\nSET\r\n$4\r\nfat1\r\n$%zu\r\n", vl);
	char *req = malloc(hl + vl + 2);
	memcpy(req, hdr, hl);
	memset(req + hl, 'f', vl);
	memcpy(req + hl + vl, "\r\n", 2);
	int w = dial(1);
	send_all(w, req, hl + vl + 2);
	char *got = read_n(w, 5);
	ck_assert_str_eq(got, "+OK\r\n");
	free(got);
	close(w);
	free(req);
	int fd = dial(1);
	int small = 4096;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
	const char *get = "*2\r\n$3\r\nGET\r\n$4\r\nfat1\r\n";
	bool dropped = false;
	uint64_t end = cluster_now_ms() + 30000;
	for (int i = 0; i < 400 && !dropped && cluster_now_ms() < end; i++) {
		ssize_t r = send(fd, get, strlen(get), MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			dropped = true;
		if (i % 50 == 49) {
			usleep(200000);
			cli_is(2, "PING", "PONG");
		}
	}
	for (int k = 0; k < 100 && cluster_log_grep(c, 1, "output-buffer-full") == 0; k++)
		usleep(100000);
	ck_assert_int_gt(cluster_log_grep(c, 1, "output-buffer-full"), 0);
	close(fd);
	still_serving();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("resp");
	TCase *tc = tcase_create("resp");
	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_redis_cli_session);
	tcase_add_test(tc, test_pipeline_order_and_resp3);
	tcase_add_test(tc, test_python_redis);
	tcase_add_test(tc, test_bad_input);
	tcase_add_test(tc, test_client_that_never_reads);
	tcase_add_test(tc, test_redis_benchmark);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
