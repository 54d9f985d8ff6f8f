/* test_overload.c — overload is shed, not queued (docs/OPERATIONS.md "Overload"): three real
 * nodes with small load bounds (--max-inflight, --group-max-proposals, --conn-max-inflight)
 * get a flood of pipelined writes, every one to its own key, on the protobuf port and on the
 * RESP port. Every request gets exactly one answer; some are BUSY (RESP: -TRYAGAIN); every
 * acknowledged write is readable afterwards and no BUSY one took effect (it was never
 * proposed); the sheds are counted in /metrics and the in-flight gauges return to zero. A
 * second cluster, bounded only by the time a group's oldest proposal may wait
 * (--group-max-wait-ms), gets the protobuf flood too (TCase "wait").
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/integration/cluster.h"
#include "tests/integration/resp_helper.h"

#define FLOOD     2000 /* pipelined requests on one connection */
#define VALUE_LEN 1024
#define WAIT_MS   60000

/* ------------------------------------------------------------------------------ fixture */
static struct cluster *c;

/* Three nodes with RESP and /metrics and these bounds; no leadership moves (every answer is
 * then OK or BUSY). */
static void start(const char *bounds)
{
	struct cluster_opts o;
	cluster_opts_default(&o);
	o.resp = true;
	o.metrics = true;
	static char args[256]; /* the cluster keeps the pointer (restarts); one cluster at a time */
	snprintf(args, sizeof args, "--balance-leaders off %s", bounds);
	o.extra_args = args;
	c = cluster_start(&o);
	ck_assert_msg(c != NULL, "cluster did not start");
}

static void setup(void)
{
	/* small bounds, so that a flood of one connection passes them */
	start("--max-inflight 32 --group-max-proposals 8 --conn-max-inflight 64 "
	      "--max-inflight-bytes 65536");
}

static void teardown(void)
{
	cluster_teardown(&c);
}

/* ------------------------------------------------------------------------------ helpers */

static int dial(const char *addr)
{
	char host[64];
	const char *colon = strrchr(addr, ':');
	ck_assert(colon != NULL);
	snprintf(host, sizeof host, "%.*s", (int)(colon - addr), addr);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(colon + 1))};
	ck_assert_int_eq(inet_pton(AF_INET, host, &sa.sin_addr), 1);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect %s: %s", addr,
		      strerror(errno));
	return fd;
}

/* Writes out[0..out_len) and reads into *in (grown) at the same time until done(in, len)
 * says the answers are all there, within WAIT_MS. */
static void exchange(int fd, const uint8_t *out, size_t out_len, uint8_t **in, size_t *in_len,
		     bool (*done)(const uint8_t *, size_t, void *), void *arg)
{
	ck_assert_int_eq(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
	size_t sent = 0, cap = 1 << 16;
	*in = malloc(cap);
	*in_len = 0;
	uint64_t end = cluster_now_ms() + WAIT_MS;
	while (!done(*in, *in_len, arg)) {
		ck_assert_msg(cluster_now_ms() < end, "not every request was answered in %d ms",
			      WAIT_MS);
		struct pollfd p = {.fd = fd, .events = POLLIN | (sent < out_len ? POLLOUT : 0)};
		if (poll(&p, 1, 100) <= 0)
			continue;
		if ((p.revents & POLLOUT) && sent < out_len) {
			ssize_t w = send(fd, out + sent, out_len - sent, MSG_NOSIGNAL);
			ck_assert_msg(w > 0 || errno == EAGAIN, "send: %s", strerror(errno));
			if (w > 0)
				sent += (size_t)w;
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			if (cap - *in_len < 4096)
				ck_assert((*in = realloc(*in, cap *= 2)) != NULL);
			ssize_t r = recv(fd, *in + *in_len, cap - *in_len, 0);
			ck_assert_msg(r > 0 || (r < 0 && errno == EAGAIN),
				      "the node closed the connection (%s)",
				      r == 0 ? "eof" : strerror(errno));
			if (r > 0)
				*in_len += (size_t)r;
		}
	}
}

/* A metric's value on node's /metrics (the first sample whose line starts with `series `),
 * or -1 if absent. */
static double metric(int node, const char *series)
{
	char cmd[256];
	snprintf(cmd, sizeof cmd, "curl -s --max-time 5 http://%s/metrics",
		 cluster_metrics_addr(c, node));
	char *body = rh_run(cmd);
	double v = -1;
	size_t l = strlen(series);
	for (char *line = body; line && *line;) {
		char *nl = strchr(line, '\n');
		if (strncmp(line, series, l) == 0 && line[l] == ' ') {
			v = strtod(line + l + 1, NULL);
			break;
		}
		line = nl ? nl + 1 : NULL;
	}
	free(body);
	return v;
}

static double shed_total(int node)
{
	static const char *const bounds[] = {"node_requests", "node_bytes", "conn_requests",
					     "conn_bytes", "group_proposals", "group_wait"};
	double sum = 0;
	for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++) {
		char s[96];
		snprintf(s, sizeof s, "ringraft_requests_shed_total{bound=\"%s\"}", bounds[i]);
		double v = metric(node, s);
		ck_assert_msg(v >= 0, "node %d: no %s", node, s);
		sum += v;
	}
	return sum;
}

/* Every node's in-flight gauges come back to 0 (the metrics are published every 500 ms). */
static void assert_gauges_drain(void)
{
	for (int n = 1; n <= CLUSTER_NODES; n++) {
		uint64_t end = cluster_now_ms() + 10000;
		double reqs, bytes;
		for (;;) {
			reqs = metric(n, "ringraft_inflight_requests");
			bytes = metric(n, "ringraft_inflight_bytes");
			if ((reqs == 0 && bytes == 0) || cluster_now_ms() >= end)
				break;
			usleep(100000);
		}
		ck_assert_msg(reqs == 0 && bytes == 0,
			      "node %d still holds %.0f requests, %.0f bytes after the flood", n,
			      reqs, bytes);
	}
}

static void value_of(int i, char *v)
{
	int l = snprintf(v, VALUE_LEN + 1, "value-%d-", i);
	memset(v + l, 'x', (size_t)(VALUE_LEN - l));
	v[VALUE_LEN] = '\0';
}

/* ------------------------------------------------------------------------------ protobuf */

struct pb_answers {
	int code[FLOOD + 1]; /* by request id; -1 = not answered */
	int answers;
};

/* Decodes every whole frame of in: each answer's id must be one sent and not yet answered. */
static bool pb_done(const uint8_t *in, size_t len, void *arg)
{
	struct pb_answers *a = arg;
	size_t off = 0;
	a->answers = 0;
	for (int i = 1; i <= FLOOD; i++)
		a->code[i] = -1;
	while (len - off >= 4) {
		uint32_t n = (uint32_t)in[off] << 24 | (uint32_t)in[off + 1] << 16 |
			     (uint32_t)in[off + 2] << 8 | in[off + 3];
		if (len - off - 4 < n)
			break;
		Ringraft__Kv__Response *r = ringraft__kv__response__unpack(NULL, n, in + off + 4);
		ck_assert_msg(r != NULL, "undecodable answer");
		ck_assert_msg(r->id >= 1 && r->id <= FLOOD, "answer to an unknown id %llu",
			      (unsigned long long)r->id);
		ck_assert_msg(a->code[r->id] == -1, "request %llu answered twice",
			      (unsigned long long)r->id);
		a->code[r->id] = (int)r->code;
		a->answers++;
		ringraft__kv__response__free_unpacked(r, NULL);
		off += 4 + n;
	}
	return a->answers == FLOOD;
}

/* FLOOD pipelined puts on one protobuf connection to node 1 (which leads some groups and
 * forwards the others' writes: both paths are bounded); every answer OK or BUSY, at least one
 * of each, acknowledged ones readable, BUSY ones never applied, and every BUSY counted. The
 * number of BUSY answers is returned. */
static int protobuf_flood(void)
{
	double shed_before = shed_total(1) + shed_total(2) + shed_total(3);
	size_t cap = (size_t)FLOOD * (VALUE_LEN + 128), len = 0;
	uint8_t *out = malloc(cap);
	char key[32], v[VALUE_LEN + 1];
	for (int i = 1; i <= FLOOD; i++) {
		Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
		snprintf(key, sizeof key, "pb-%d", i);
		value_of(i, v);
		rq.id = (uint64_t)i;
		rq.op = RINGRAFT__KV__OP__PUT;
		rq.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
		rq.value = (ProtobufCBinaryData){VALUE_LEN, (uint8_t *)v};
		size_t n = ringraft__kv__request__get_packed_size(&rq);
		ck_assert(len + 4 + n <= cap);
		out[len] = (uint8_t)(n >> 24);
		out[len + 1] = (uint8_t)(n >> 16);
		out[len + 2] = (uint8_t)(n >> 8);
		out[len + 3] = (uint8_t)n;
		ringraft__kv__request__pack(&rq, out + len + 4);
		len += 4 + n;
	}
	int fd = dial(cluster_client_addr(c, 1));
	uint8_t *in;
	size_t in_len;
	static struct pb_answers a;
	exchange(fd, out, len, &in, &in_len, pb_done, &a);
	close(fd);
	free(out);
	free(in);

	int ok = 0, busy = 0;
	for (int i = 1; i <= FLOOD; i++) {
		/* Nothing moves leaderships: an answer is OK or BUSY, nothing else. */
		ck_assert_msg(a.code[i] == RINGRAFT__KV__CODE__OK ||
				      a.code[i] == RINGRAFT__KV__CODE__BUSY,
			      "request %d answered %d", i, a.code[i]);
		ok += a.code[i] == RINGRAFT__KV__CODE__OK;
		busy += a.code[i] == RINGRAFT__KV__CODE__BUSY;
	}
	fprintf(stderr, "protobuf flood: %d ok, %d busy\n", ok, busy);
	ck_assert_msg(busy > 0, "no request was answered BUSY");
	ck_assert_msg(ok > 0, "no request was accepted");
	/* Acknowledged: readable with its value; BUSY: never proposed, so absent. */
	for (int i = 1; i <= FLOOD; i++) {
		char *got = NULL;
		snprintf(key, sizeof key, "pb-%d", i);
		int rc = cluster_get(c, 1 + i % 3, key, &got, false, 5000);
		if (a.code[i] == RINGRAFT__KV__CODE__OK) {
			value_of(i, v);
			ck_assert_msg(rc == RINGRAFT__KV__CODE__OK && strcmp(got, v) == 0,
				      "acknowledged put %s: get answered %d", key, rc);
		} else {
			ck_assert_msg(rc == RINGRAFT__KV__CODE__NOT_FOUND,
				      "put %s was answered BUSY but get answered %d", key, rc);
		}
		free(got);
	}
	assert_gauges_drain();
	/* Each BUSY answer was counted by the node that gave it (published every 500 ms). */
	double shed = 0;
	for (uint64_t end = cluster_now_ms() + 5000; cluster_now_ms() < end; usleep(100000)) {
		shed = shed_total(1) + shed_total(2) + shed_total(3) - shed_before;
		if (shed == busy)
			break;
	}
	ck_assert_msg(shed == busy, "%d BUSY answers, %.0f sheds counted", busy, shed);
	return busy;
}

START_TEST(test_protobuf_flood)
{
	protobuf_flood();
}
END_TEST

/* ------------------------------------------------------------------------------ by time */

/* The same flood against nodes whose only bound is the time a group's oldest proposal may
 * wait (--group-max-wait-ms 1: the flood's queue passes it at once); every BUSY is that
 * bound's. */
static void setup_wait(void)
{
	start("--max-inflight 0 --max-inflight-bytes 0 --conn-max-inflight 0 "
	      "--conn-max-inflight-bytes 0 --group-max-proposals 0 --group-max-wait-ms 1");
}

START_TEST(test_wait_bound)
{
	const char *series = "ringraft_requests_shed_total{bound=\"group_wait\"}";
	double before = metric(1, series) + metric(2, series) + metric(3, series);
	int busy = protobuf_flood();
	double by_wait = metric(1, series) + metric(2, series) + metric(3, series) - before;
	ck_assert_msg(by_wait == busy, "%d BUSY answers, %.0f by group_wait", busy, by_wait);
}
END_TEST

/* ------------------------------------------------------------------------------ RESP */

struct resp_answers {
	char kind[FLOOD + 1]; /* '+' OK, 'T' -TRYAGAIN, '?' other */
	int answers;
	char other[256];
};

/* Counts the whole lines of in (every answer to SET is one line: +OK or -ERR...). */
static bool resp_done(const uint8_t *in, size_t len, void *arg)
{
	struct resp_answers *a = arg;
	a->answers = 0;
	size_t start = 0;
	for (size_t i = 0; i + 1 < len && a->answers < FLOOD; i++) {
		if (in[i] != '\r' || in[i + 1] != '\n')
			continue;
		const char *line = (const char *)in + start;
		size_t l = i - start;
		char k = '?';
		if (l == 3 && memcmp(line, "+OK", 3) == 0)
			k = '+';
		else if (l > 10 && memcmp(line, "-TRYAGAIN ", 10) == 0)
			k = 'T';
		else if (a->other[0] == '\0')
			snprintf(a->other, sizeof a->other, "%.*s", (int)l, line);
		a->kind[++a->answers] = k;
		start = i + 2;
		i++;
	}
	return a->answers == FLOOD;
}

START_TEST(test_resp_flood)
{
	size_t cap = (size_t)FLOOD * (VALUE_LEN + 128), len = 0;
	char *out = malloc(cap), key[32], v[VALUE_LEN + 1];
	for (int i = 1; i <= FLOOD; i++) {
		snprintf(key, sizeof key, "resp-%d", i);
		value_of(i, v);
		len += (size_t)snprintf(out + len, cap - len,
					"*3\r\n$3\r\nSET\r\n$%zu\r\n%s\r\n$%d\r\n%s\r\n",
					strlen(key), key, VALUE_LEN, v);
	}
	int fd = dial(cluster_resp_addr(c, 2));
	uint8_t *in;
	size_t in_len;
	static struct resp_answers a;
	exchange(fd, (uint8_t *)out, len, &in, &in_len, resp_done, &a);
	/* nothing more than one answer per command */
	usleep(200000);
	char extra[64];
	ck_assert_int_lt(recv(fd, extra, sizeof extra, 0), 1);
	close(fd);
	free(out);
	free(in);
	int ok = 0, busy = 0;
	for (int i = 1; i <= FLOOD; i++) {
		ck_assert_msg(a.kind[i] != '?', "a SET was answered [%s]", a.other);
		ok += a.kind[i] == '+';
		busy += a.kind[i] == 'T';
	}
	fprintf(stderr, "RESP flood: %d +OK, %d -TRYAGAIN\n", ok, busy);
	ck_assert_msg(busy > 0, "no SET was answered -TRYAGAIN");
	ck_assert_msg(ok > 0, "no SET was accepted");
	/* The answers come back in order: the i-th is SET resp-i's. */
	for (int i = 1; i <= FLOOD; i++) {
		char *got = NULL;
		snprintf(key, sizeof key, "resp-%d", i);
		int rc = cluster_get(c, 1 + i % 3, key, &got, false, 5000);
		if (a.kind[i] == '+') {
			value_of(i, v);
			ck_assert_msg(rc == RINGRAFT__KV__CODE__OK && strcmp(got, v) == 0,
				      "acknowledged SET %s: get answered %d", key, rc);
		} else {
			ck_assert_msg(rc == RINGRAFT__KV__CODE__NOT_FOUND,
				      "SET %s was answered -TRYAGAIN but get answered %d", key, rc);
		}
		free(got);
	}
	assert_gauges_drain();
	/* Under the bounds, a plain redis-cli SET is accepted. */
	rh_cli_is(c, 2, "SET after-flood 1", "OK");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("overload");
	TCase *tc = tcase_create("overload");
	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_protobuf_flood);
	tcase_add_test(tc, test_resp_flood);
	suite_add_tcase(s, tc);
	TCase *tw = tcase_create("wait"); /* alone: CK_RUN_CASE=wait */
	tcase_add_unchecked_fixture(tw, setup_wait, teardown);
	tcase_set_timeout(tw, 300);
	tcase_add_test(tw, test_wait_bound);
	suite_add_tcase(s, tw);
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
