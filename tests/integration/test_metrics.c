/* test_metrics.c — --metrics-addr on three real nodes: /metrics parses with the Prometheus
 * client's own text-format parser (Debian's python3-prometheus-client), counters move after
 * puts, each group has exactly one leader across the nodes; /health is 200 "ok", turns 503
 * ("no leader") once two nodes are killed and the third loses its quorum, and 200 again once
 * they are back. A minimal HTTP/1.0 GET in C talks to the endpoint.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/integration/cluster.h"

#define GROUPS 4
#define OK     RINGRAFT__KV__CODE__OK
#define PYTHON "/usr/bin/python3" /* Debian's, where python3-prometheus-client installs */

static struct cluster *c;

static void setup(void)
{
	struct cluster_opts o;
	cluster_opts_default(&o);
	o.groups = GROUPS;
	o.metrics = true;
	c = cluster_start(&o);
	ck_assert_msg(c != NULL, "cluster did not start");
}

static void teardown(void)
{
	cluster_teardown(&c);
}

/* ------------------------------------------------------------------------------ HTTP */

/* One request to node's metrics address; *body malloc'd (NUL-terminated). Returns the HTTP
 * status, or -1 on a connect/IO error or timeout. */
static int http_req(int node, const char *method, const char *path, char **body, int timeout_ms)
{
	*body = NULL;
	char host[64];
	snprintf(host, sizeof host, "%s", cluster_metrics_addr(c, node));
	char *colon = strrchr(host, ':');
	if (colon == NULL)
		return -1;
	*colon = '\0';
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)atoi(colon + 1))};
	inet_pton(AF_INET, host, &a.sin_addr);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		close(fd);
		return -1;
	}
	char req[256];
	int rl = snprintf(req, sizeof req, "%s %s HTTP/1.0\r\nHost: %s\r\n\r\n", method, path,
			  cluster_metrics_addr(c, node));
	if (write(fd, req, (size_t)rl) != rl) {
		close(fd);
		return -1;
	}
	size_t len = 0, cap = 65536;
	char *buf = malloc(cap);
	uint64_t deadline = cluster_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		uint64_t now = cluster_now_ms();
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (now >= deadline || poll(&p, 1, (int)(deadline - now)) <= 0) {
			free(buf);
			close(fd);
			return -1;
		}
		if (len + 1 == cap)
			buf = realloc(buf, cap *= 2);
		ssize_t n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(buf);
			close(fd);
			return -1;
		}
		if (n == 0)
			break; /* HTTP/1.0: the server closes after the body */
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	int status = -1;
	char *sep = strstr(buf, "\r\n\r\n");
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1 || sep == NULL) {
		free(buf);
		return -1;
	}
	memmove(buf, sep + 4, strlen(sep + 4) + 1);
	*body = buf;
	return status;
}

static int http_get(int node, const char *path, char **body)
{
	return http_req(node, "GET", path, body, 3000);
}

/* ------------------------------------------------------------------------------ Parsing */

/* The Prometheus client's text-format parser, plus the checks it leaves out: every family is
 * ringraft_* with HELP and a known TYPE, histogram buckets are cumulative and end with +Inf ==
 * _count. Prints each sample as `name{k=v,...} value` (labels sorted; no braces without labels),
 * then `families N`. */
static const char *const parse_py =
	"import sys\n"
	"from prometheus_client.parser import text_string_to_metric_families\n"
	"fams = list(text_string_to_metric_families(open(sys.argv[1]).read()))\n"
	"for f in fams:\n"
	"    assert f.name.startswith('ringraft_'), f.name\n"
	"    assert f.documentation, 'no HELP for ' + f.name\n"
	"    assert f.type in ('counter', 'gauge', 'histogram'), (f.name, f.type)\n"
	"    series = {}\n"
	"    for s in f.samples:\n"
	"        lab = ','.join('%s=%s' % kv for kv in sorted(s.labels.items()))\n"
	"        print(('%s{%s}' % (s.name, lab) if lab else s.name), repr(s.value))\n"
	"        if f.type == 'histogram':\n"
	"            key = tuple(sorted((k, v) for k, v in s.labels.items() if k != 'le'))\n"
	"            h = series.setdefault(key, {'b': [], 'count': None})\n"
	"            if s.name.endswith('_bucket'):\n"
	"                h['b'].append((s.labels['le'], s.value))\n"
	"            elif s.name.endswith('_count'):\n"
	"                h['count'] = s.value\n"
	"    for key, h in series.items():\n"
	"        vals = [v for _, v in h['b']]\n"
	"        assert vals == sorted(vals), (f.name, key, 'buckets not cumulative')\n"
	"        assert h['b'][-1][0] == '+Inf', (f.name, key, 'last bucket not +Inf')\n"
	"        assert h['b'][-1][1] == h['count'], (f.name, key, '+Inf != _count')\n"
	"print('families', len(fams))\n";

/* Parses text; returns the parser's output (malloc'd) or fails the test with its errors. */
static char *prom_parse(const char *text)
{
	char tmpl[] = "/tmp/ringraft-metrics-XXXXXX";
	int fd = mkstemp(tmpl);
	ck_assert_int_ge(fd, 0);
	size_t tl = strlen(text);
	ck_assert_int_eq(write(fd, text, tl), (ssize_t)tl);
	close(fd);
	char pyf[] = "/tmp/ringraft-metrics-py-XXXXXX";
	fd = mkstemp(pyf);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, parse_py, strlen(parse_py)), (ssize_t)strlen(parse_py));
	close(fd);
	char cmd[256];
	snprintf(cmd, sizeof cmd, "%s %s %s 2>&1", PYTHON, pyf, tmpl);
	FILE *p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	size_t len = 0, cap = 1 << 16;
	char *out = malloc(cap);
	size_t n;
	while ((n = fread(out + len, 1, cap - len - 1, p)) > 0) {
		len += n;
		if (len + 1 == cap)
			out = realloc(out, cap *= 2);
	}
	out[len] = '\0';
	int st = pclose(p);
	unlink(tmpl);
	unlink(pyf);
	ck_assert_msg(st == 0, "the Prometheus parser rejected /metrics:\n%s", out);
	ck_assert_msg(strstr(out, "\nfamilies ") != NULL, "no family count:\n%s", out);
	return out;
}

/* The value of the sample `key` (`name{k=v,...}` as parse_py prints it), or -1 if absent. */
static double sample(const char *parsed, const char *key)
{
	char needle[256];
	snprintf(needle, sizeof needle, "%s ", key);
	size_t nl = strlen(needle);
	for (const char *l = parsed; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (strncmp(l, needle, nl) == 0)
			return strtod(l + nl, NULL);
	return -1;
}

/* Fetches and parses node's /metrics (malloc'd parser output). */
static char *scrape(int node)
{
	char *body = NULL;
	int st = http_get(node, "/metrics", &body);
	ck_assert_msg(st == 200, "GET /metrics on node %d: %d", node, st);
	char *parsed = prom_parse(body);
	free(body);
	return parsed;
}

/* ------------------------------------------------------------------------------ Suite */

START_TEST(test_metrics_parse_and_make_sense)
{
	char *p1 = scrape(1);
	double puts0 = sample(p1, "ringraft_client_requests_total{op=put,result=ok}");
	ck_assert_msg(puts0 >= 0, "no put counter:\n%.2000s", p1);
	char info[256];
	snprintf(info, sizeof info, "ringraft_node_info{client_addr=%s,node=1,peer_addr=%s}",
		 cluster_client_addr(c, 1), cluster_peer_addr(c, 1));
	ck_assert_msg(sample(p1, info) == 1, "no %s in:\n%.1500s", info, p1);
	free(p1);

	enum { N = 40 };
	char key[64];
	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof key, "metrics-%d", i);
		ck_assert_int_eq(cluster_put(c, 1, key, "v", 5000), OK);
	}
	/* node 1 answered every put: its counter moves by N within a publish interval or two */
	double puts1 = puts0;
	uint64_t deadline = cluster_now_ms() + 5000;
	while (cluster_now_ms() < deadline) {
		p1 = scrape(1);
		puts1 = sample(p1, "ringraft_client_requests_total{op=put,result=ok}");
		double lat = sample(p1, "ringraft_client_request_duration_seconds_count{op=put}");
		free(p1);
		if (puts1 - puts0 >= N) {
			ck_assert_msg(lat >= N, "put latency count %.0f < %d", lat, N);
			break;
		}
		usleep(200 * 1000);
	}
	ck_assert_msg(puts1 - puts0 >= N, "puts counted %.0f -> %.0f, expected +%d", puts0, puts1,
		      N);

	/* across the nodes: one leader per group, leaders that proposed every put, WAL and apply
	 * activity, health ok (retried: leadership may be moving just now) */
	bool good = false;
	char why[512] = "";
	deadline = cluster_now_ms() + 10000;
	while (!good && cluster_now_ms() < deadline) {
		char *p[4] = {NULL};
		for (int n = 1; n <= 3; n++)
			p[n] = scrape(n);
		good = true;
		double proposals = 0;
		for (int n = 1; n <= 3; n++) {
			proposals += sample(p[n], "ringraft_proposals_total");
			if (sample(p[n], "ringraft_wal_batches_total") <= 0 ||
			    sample(p[n], "ringraft_wal_fsync_duration_seconds_count") <= 0 ||
			    sample(p[n], "ringraft_apply_duration_seconds_count") <= 0 ||
			    sample(p[n], "ringraft_wal_size_bytes") <= 0 ||
			    sample(p[n], "ringraft_lmdb_size_bytes") <= 0 ||
			    sample(p[n], "ringraft_uptime_seconds") <= 0) {
				snprintf(why, sizeof why, "node %d: no WAL/apply activity or sizes",
					 n);
				good = false;
			}
			char k[128];
			for (int q = 1; q <= 3; q++) {
				if (q == n)
					continue;
				snprintf(k, sizeof k, "ringraft_peer_up{peer=%d}", q);
				if (sample(p[n], k) != 1) {
					snprintf(why, sizeof why, "node %d: peer %d not up", n, q);
					good = false;
				}
			}
		}
		if (proposals < N) {
			snprintf(why, sizeof why, "proposals %.0f < %d", proposals, N);
			good = false;
		}
		for (int g = 1; g <= GROUPS; g++) {
			char k[128];
			int leaders = 0, leader_node = 0;
			for (int n = 1; n <= 3; n++) {
				snprintf(k, sizeof k, "ringraft_group_is_leader{group=%d}", g);
				if (sample(p[n], k) == 1) {
					leaders++;
					leader_node = n;
				}
				snprintf(k, sizeof k, "ringraft_group_role{group=%d,role=leader}",
					 g);
				double role = sample(p[n], k);
				snprintf(k, sizeof k, "ringraft_group_is_leader{group=%d}", g);
				if (role != sample(p[n], k)) {
					snprintf(why, sizeof why,
						 "group %d: role and is_leader differ", g);
					good = false;
				}
			}
			if (leaders != 1) {
				snprintf(why, sizeof why, "group %d: %d leaders", g, leaders);
				good = false;
				continue;
			}
			for (int n = 1; n <= 3; n++) {
				snprintf(k, sizeof k, "ringraft_group_leader_id{group=%d}", g);
				if (sample(p[n], k) != leader_node) {
					snprintf(why, sizeof why,
						 "group %d: node %d sees leader %.0f", g, n,
						 sample(p[n], k));
					good = false;
				}
			}
		}
		for (int n = 1; n <= 3; n++)
			free(p[n]);
		for (int n = 1; n <= 3 && good; n++) {
			char *body = NULL;
			int st = http_get(n, "/health", &body);
			if (st != 200 || body == NULL || strcmp(body, "ok\n") != 0) {
				snprintf(why, sizeof why, "node %d: /health %d %s", n, st,
					 body ? body : "");
				good = false;
			}
			free(body);
		}
		if (!good)
			usleep(300 * 1000);
	}
	ck_assert_msg(good, "metrics never made sense: %s", why);

	/* what is not ours is refused */
	char *body = NULL;
	ck_assert_int_eq(http_get(1, "/nope", &body), 404);
	free(body);
	ck_assert_int_eq(http_req(1, "POST", "/metrics", &body, 3000), 405);
	free(body);
}
END_TEST

/* The status of node's /health (its body in why), retried until want or timeout_ms. */
static bool health_becomes(int node, int want, const char *body_has, int timeout_ms, char *why,
			   size_t why_len)
{
	uint64_t deadline = cluster_now_ms() + (uint64_t)timeout_ms;
	snprintf(why, why_len, "(no answer)");
	while (cluster_now_ms() < deadline) {
		char *body = NULL;
		int st = http_get(node, "/health", &body);
		if (body != NULL)
			snprintf(why, why_len, "%d %s", st, body);
		bool ok = st == want && (body_has == NULL || strstr(body, body_has) != NULL);
		free(body);
		if (ok)
			return true;
		usleep(100 * 1000);
	}
	return false;
}

START_TEST(test_health_follows_quorum)
{
	char why[2048];
	for (int n = 1; n <= 3; n++)
		ck_assert_msg(health_becomes(n, 200, "ok", 10000, why, sizeof why),
			      "node %d never healthy: %s", n, why);
	uint64_t t0 = cluster_now_ms();
	cluster_kill(c, 2);
	cluster_kill(c, 3);
	/* CheckQuorum deposes a leader, a follower's election timer fires: both within about
	 * 2 x election (400 ms here), published every 500 ms; 10 s is generous */
	ck_assert_msg(health_becomes(1, 503, "no leader", 10000, why, sizeof why),
		      "node 1 stayed healthy without a quorum: %s", why);
	fprintf(stderr, "test_metrics: /health 503 %llu ms after losing quorum: %s",
		(unsigned long long)(cluster_now_ms() - t0), why);
	ck_assert_int_eq(cluster_restart(c, 2), 0);
	ck_assert_int_eq(cluster_restart(c, 3), 0);
	for (int n = 1; n <= 3; n++)
		ck_assert_msg(health_becomes(n, 200, "ok", 20000, why, sizeof why),
			      "node %d not healthy after the restart: %s", n, why);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("metrics");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_metrics_parse_and_make_sense);
	tcase_add_test(tc, test_health_follows_quorum);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
