/* test_kvctl.c — kvctl as a user runs it, against three real kvd processes: its exit codes
 * (0 ok, 1 not found / compare failed, 2 usage, 3 unavailable), binary values through stdin
 * byte for byte, JSON output that parses and has the documented fields, a clear message and
 * exit 3 within --timeout when no node answers (refused and paused nodes alike), and puts and
 * gets that keep working after kill -9 of a node; `kvctl bench` that counts the requests a dead
 * endpoint or a node killed mid-run made fail and still completes (TCase "bench", alone with
 * CK_RUN_CASE=bench). Every kvctl run is bounded (killed at 30 s).
 */
#include <check.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/integration/cluster.h"

/* ------------------------------------------------------------------------------ fixture */
static struct cluster *g_cluster;
static char g_kvctl[1024];

struct run {
	int exit_code; /* -1 if killed by a signal */
	char *out, *err;
	size_t out_len, err_len;
	uint64_t ms;
};

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof *r);
}

static void append(char **buf, size_t *len, const char *p, size_t n)
{
	*buf = realloc(*buf, *len + n + 1);
	ck_assert_ptr_nonnull(*buf);
	memcpy(*buf + *len, p, n);
	*len += n;
	(*buf)[*len] = '\0';
}

/* Runs kvctl with args (NULL-terminated), feeding `in` on stdin; waits at most 30 s. */
static void kvctl(struct run *r, const void *in, size_t in_len, ...)
{
	char *argv[32];
	int argc = 0;
	argv[argc++] = g_kvctl;
	va_list ap;
	va_start(ap, in_len);
	for (char *a; (a = va_arg(ap, char *)) != NULL && argc < 31;)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	memset(r, 0, sizeof *r);
	append(&r->out, &r->out_len, "", 0);
	append(&r->err, &r->err_len, "", 0);
	int pin[2], pout[2], perr[2];
	ck_assert_int_eq(pipe(pin), 0);
	ck_assert_int_eq(pipe(pout), 0);
	ck_assert_int_eq(pipe(perr), 0);
	uint64_t t0 = cluster_now_ms();
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(pin[0], 0);
		dup2(pout[1], 1);
		dup2(perr[1], 2);
		for (int fd = 3; fd < 256; fd++)
			close(fd);
		execv(g_kvctl, argv);
		_exit(127);
	}
	close(pin[0]);
	close(pout[1]);
	close(perr[1]);
	fcntl(pin[1], F_SETFL, O_NONBLOCK);
	signal(SIGPIPE, SIG_IGN);
	size_t sent = 0;
	int fin = pin[1];
	if (in_len == 0) {
		close(fin);
		fin = -1;
	}
	bool out_open = true, err_open = true;
	while (out_open || err_open) {
		struct pollfd p[3] = {{.fd = out_open ? pout[0] : -1, .events = POLLIN},
				      {.fd = err_open ? perr[0] : -1, .events = POLLIN},
				      {.fd = fin, .events = POLLOUT}};
		int64_t left = 30000 - (int64_t)(cluster_now_ms() - t0);
		if (left <= 0) {
			kill(pid, SIGKILL);
			break;
		}
		if (poll(p, 3, (int)left) < 0 && errno != EINTR)
			break;
		char buf[65536];
		if (p[0].revents) {
			ssize_t n = read(pout[0], buf, sizeof buf);
			if (n > 0)
				append(&r->out, &r->out_len, buf, (size_t)n);
			else
				out_open = false;
		}
		if (p[1].revents) {
			ssize_t n = read(perr[0], buf, sizeof buf);
			if (n > 0)
				append(&r->err, &r->err_len, buf, (size_t)n);
			else
				err_open = false;
		}
		if (fin >= 0 && p[2].revents) {
			ssize_t n = write(fin, (const char *)in + sent, in_len - sent);
			if (n > 0)
				sent += (size_t)n;
			if (n < 0 || sent == in_len) {
				close(fin);
				fin = -1;
			}
		}
	}
	if (fin >= 0)
		close(fin);
	close(pout[0]);
	close(perr[0]);
	int st;
	waitpid(pid, &st, 0);
	r->ms = cluster_now_ms() - t0;
	r->exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	/* Under SAN=1 a sanitizer report must fail the test even where a non-zero exit is the
	 * expected outcome. */
	ck_assert_msg(!strstr(r->err, "Sanitizer") && !strstr(r->err, "runtime error:"),
		      "kvctl %s: sanitizer report:\n%s", argv[1], r->err);
}

#define EP "--endpoints", cluster_endpoints(g_cluster)

/* A loopback port nobody listens on. */
static void dead_endpoint(char *buf, size_t cap)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0);
	socklen_t al = sizeof a;
	getsockname(s, (struct sockaddr *)&a, &al);
	close(s);
	snprintf(buf, cap, "127.0.0.1:%u", ntohs(a.sin_port));
}

/* ------------------------------------------------------------------------------ JSON check */
/* A strict syntax check of one JSON value (RFC 8259), enough to say "it parses". */
static const char *ws(const char *p)
{
	while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
		p++;
	return p;
}

static const char *value(const char *p, int depth);

static const char *string(const char *p)
{
	if (*p++ != '"')
		return NULL;
	while (*p != '"') {
		if ((unsigned char)*p < 0x20)
			return NULL;
		if (*p == '\\') {
			p++;
			if (*p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (!isxdigit((unsigned char)p[i]))
						return NULL;
				p += 4;
			} else if (!strchr("\"\\/bfnrt", *p) || *p == '\0') {
				return NULL;
			}
		}
		p++;
	}
	return p + 1;
}

static const char *number(const char *p)
{
	const char *s = p;
	if (*p == '-')
		p++;
	if (!isdigit((unsigned char)*p))
		return NULL;
	while (isdigit((unsigned char)*p))
		p++;
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return NULL;
		while (isdigit((unsigned char)*p))
			p++;
	}
	return p > s ? p : NULL;
}

static const char *value(const char *p, int depth)
{
	if (depth > 32)
		return NULL;
	p = ws(p);
	if (*p == '{' || *p == '[') {
		char close = *p == '{' ? '}' : ']';
		p = ws(p + 1);
		if (*p == close)
			return p + 1;
		for (;;) {
			if (close == '}') {
				if (!(p = string(ws(p))) || *(p = ws(p)) != ':')
					return NULL;
				p++;
			}
			if (!(p = value(p, depth + 1)))
				return NULL;
			p = ws(p);
			if (*p == close)
				return p + 1;
			if (*p++ != ',')
				return NULL;
		}
	}
	if (*p == '"')
		return string(p);
	if (!strncmp(p, "true", 4))
		return p + 4;
	if (!strncmp(p, "false", 5))
		return p + 5;
	if (!strncmp(p, "null", 4))
		return p + 4;
	return number(p);
}

static bool json_ok(const char *s)
{
	const char *end = value(s, 0);
	return end && *ws(end) == '\0';
}

static int count(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

/* ------------------------------------------------------------------------------ tests */
START_TEST(test_exit_codes)
{
	struct run r;
	kvctl(&r, NULL, 0, EP, "put", "ex/a", "1", NULL);
	ck_assert_msg(r.exit_code == 0, "put: %d %s", r.exit_code, r.err);
	ck_assert_uint_eq(r.out_len, 0);
	run_free(&r);
	kvctl(&r, NULL, 0, EP, "get", "ex/a", NULL);
	ck_assert_int_eq(r.exit_code, 0);
	ck_assert_str_eq(r.out, "1"); /* raw: no newline when stdout is not a terminal */
	run_free(&r);
	kvctl(&r, NULL, 0, EP, "get", "ex/missing", NULL);
	ck_assert_int_eq(r.exit_code, 1);
	ck_assert_uint_eq(r.out_len, 0);
	ck_assert_ptr_nonnull(strstr(r.err, "not found"));
	run_free(&r);
	kvctl(&r, NULL, 0, EP, "cas", "ex/a", "9", "2", NULL);
	ck_assert_int_eq(r.exit_code, 1);
	ck_assert_ptr_nonnull(strstr(r.err, "compare failed"));
	run_free(&r);
	kvctl(&r, NULL, 0, EP, "cas", "ex/a", "1", "2", NULL);
	ck_assert_int_eq(r.exit_code, 0);
	run_free(&r);
	kvctl(&r, NULL, 0, EP, "cas", "--absent", "ex/a", "3", NULL);
	ck_assert_int_eq(r.exit_code, 1);
	run_free(&r);
	kvctl(&r, NULL, 0, EP, "get", "ex/a", NULL);
	ck_assert_str_eq(r.out, "2");
	run_free(&r);
	kvctl(&r, NULL, 0, EP, "del", "ex/a", NULL);
	ck_assert_int_eq(r.exit_code, 0);
	run_free(&r);
	kvctl(&r, NULL, 0, EP, "del", "ex/a", NULL);
	ck_assert_int_eq(r.exit_code, 1);
	run_free(&r);
	/* Usage errors: exit 2 with a message, before any network traffic. */
	const char *bad[][4] = {
		{"get", NULL},
		{"frobnicate", NULL},
		{"--timeout", "x", "status"},
		{"get", "a", "b"},
		{"scan", "--limit", "0"},
		{"get", "--limit", "3"},
		{"-o", "yaml", "status"},
		{"transfer-leader", "0", "1"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		kvctl(&r, NULL, 0, EP, bad[i][0], bad[i][1], bad[i][2], bad[i][3], NULL);
		ck_assert_msg(r.exit_code == 2, "%s: exit %d", bad[i][0], r.exit_code);
		ck_assert_msg(strncmp(r.err, "kvctl: ", 7) == 0, "%s: no message", bad[i][0]);
		run_free(&r);
	}
	kvctl(&r, NULL, 0, "--endpoints", "nohost", "get", "a", NULL);
	ck_assert_int_eq(r.exit_code, 2);
	ck_assert_ptr_nonnull(strstr(r.err, "bad endpoints"));
	run_free(&r);
	kvctl(&r, NULL, 0, "--help", NULL);
	ck_assert_int_eq(r.exit_code, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "Exit codes"));
	run_free(&r);
}
END_TEST

START_TEST(test_binary_values_through_stdin)
{
	size_t n = 3 * 256 + 7;
	unsigned char *v = malloc(n);
	for (size_t i = 0; i < n; i++)
		v[i] = (unsigned char)(i * 7 + (i >> 8));
	v[0] = 0;
	v[n - 1] = '\n';
	struct run r;
	kvctl(&r, v, n, EP, "put", "bin/1", "-", NULL);
	ck_assert_msg(r.exit_code == 0, "put -: %d %s", r.exit_code, r.err);
	run_free(&r);
	kvctl(&r, NULL, 0, EP, "get", "bin/1", NULL);
	ck_assert_int_eq(r.exit_code, 0);
	ck_assert_uint_eq(r.out_len, n);
	ck_assert(memcmp(r.out, v, n) == 0);
	run_free(&r);
	/* No VALUE argument and a pipe on stdin: stdin is the value (here: empty). */
	kvctl(&r, "", 0, EP, "put", "bin/empty", NULL);
	ck_assert_int_eq(r.exit_code, 0);
	run_free(&r);
	kvctl(&r, NULL, 0, EP, "get", "bin/empty", NULL);
	ck_assert_int_eq(r.exit_code, 0);
	ck_assert_uint_eq(r.out_len, 0);
	run_free(&r);
	/* CAS with the new value from stdin. */
	kvctl(&r, "x\0y", 3, EP, "cas", "--absent", "bin/cas", "-", NULL);
	ck_assert_int_eq(r.exit_code, 0);
	run_free(&r);
	kvctl(&r, NULL, 0, EP, "get", "bin/cas", NULL);
	ck_assert_uint_eq(r.out_len, 3);
	ck_assert(memcmp(r.out, "x\0y", 3) == 0);
	run_free(&r);
	/* Over the limit: refused locally with a message, exit 2. */
	size_t big_n = (1u << 20) + 1;
	char *big = calloc(1, big_n);
	kvctl(&r, big, big_n, EP, "put", "bin/big", "-", NULL);
	ck_assert_int_eq(r.exit_code, 2);
	ck_assert_ptr_nonnull(strstr(r.err, "bytes"));
	run_free(&r);
	kvctl(&r, NULL, 0, EP, "get", "bin/big", NULL);
	ck_assert_int_eq(r.exit_code, 1);
	run_free(&r);
	free(big);
	free(v);
}
END_TEST

START_TEST(test_json_output)
{
	struct run r;
	kvctl(&r, NULL, 0, EP, "put", "js/a", "he said \"hi\"\n", NULL);
	ck_assert_int_eq(r.exit_code, 0);
	run_free(&r);
	kvctl(&r, NULL, 0, EP, "-o", "json", "get", "js/a", NULL);
	ck_assert_int_eq(r.exit_code, 0);
	ck_assert_msg(json_ok(r.out), "not JSON: %s", r.out);
	ck_assert_ptr_nonnull(strstr(r.out, "\"found\": true"));
	ck_assert_ptr_nonnull(strstr(r.out, "\"value\": \"he said \\\"hi\\\"\\n\""));
	run_free(&r);
	kvctl(&r, "\xff\xfe", 2, EP, "put", "js/bin", NULL);
	run_free(&r);
	kvctl(&r, NULL, 0, EP, "-o", "json", "scan", "js/", NULL);
	ck_assert_int_eq(r.exit_code, 0);
	ck_assert_msg(json_ok(r.out), "not JSON: %s", r.out);
	ck_assert_ptr_nonnull(strstr(r.out, "\"count\": 2"));
	ck_assert_ptr_nonnull(strstr(r.out, "\"value_base64\": \"//4=\""));
	ck_assert(strstr(r.out, "js/a") < strstr(r.out, "js/bin"));
	run_free(&r);
	kvctl(&r, NULL, 0, EP, "-o", "json", "get", "js/none", NULL);
	ck_assert_int_eq(r.exit_code, 1);
	ck_assert(json_ok(r.out));
	ck_assert_ptr_nonnull(strstr(r.out, "\"found\": false"));
	run_free(&r);
	kvctl(&r, NULL, 0, EP, "-o", "json", "status", NULL);
	ck_assert_int_eq(r.exit_code, 0);
	ck_assert_msg(json_ok(r.out), "not JSON: %s", r.out);
	ck_assert_int_eq(count(r.out, "\"reachable\": true"), 3);
	const char *fields[] = {
		"\"id\":",        "\"client_addr\":", "\"peer_addr\":", "\"health\":",
		"\"wal_bytes\":", "\"lmdb_bytes\":",  "\"leader_of\":", "\"term\":",
		"\"commit\":",    "\"applied\":",     "\"groups\":"};
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
		ck_assert_msg(strstr(r.out, fields[i]), "status json lacks %s", fields[i]);
	/* every data group and the meta group */
	ck_assert_int_eq(count(r.out, "\"group\":"), 3 * ((int)cluster_groups(g_cluster) + 1));
	run_free(&r);
	/* Every group has a leader (retried briefly: a leadership transfer may be under way). */
	for (int attempt = 0;; attempt++) {
		ck_assert_int_eq(cluster_wait_leaders(g_cluster, 20000), 0);
		kvctl(&r, NULL, 0, EP, "-o", "json", "groups", NULL);
		ck_assert_int_eq(r.exit_code, 0);
		ck_assert_msg(json_ok(r.out), "not JSON: %s", r.out);
		ck_assert_int_eq(count(r.out, "\"group\":"), (int)cluster_groups(g_cluster));
		/* Each group's share of the ring; together the whole ring. */
		ck_assert_int_eq(count(r.out, "\"share\": "), (int)cluster_groups(g_cluster));
		double shares = 0;
		for (const char *p = strstr(r.out, "\"share\": "); p;
		     p = strstr(p + 1, "\"share\": "))
			shares += strtod(p + strlen("\"share\": "), NULL);
		ck_assert_msg(shares > 0.999 && shares < 1.001, "shares sum to %f", shares);
		int leaderless = count(r.out, "\"leader\": 0,");
		run_free(&r);
		if (leaderless == 0)
			break;
		ck_assert_msg(attempt < 5, "groups without a leader: %d", leaderless);
	}
}
END_TEST

START_TEST(test_unreachable_is_exit_3_within_timeout)
{
	char d1[64], d2[64], list[160];
	dead_endpoint(d1, sizeof d1);
	dead_endpoint(d2, sizeof d2);
	snprintf(list, sizeof list, "%s,%s", d1, d2);
	const char *cmds[][3] = {{"get", "k", NULL}, {"put", "k", "v"}, {"scan", NULL, NULL}};
	for (size_t i = 0; i < 3; i++) {
		struct run r;
		kvctl(&r, NULL, 0, "--endpoints", list, "--timeout", "1s", cmds[i][0], cmds[i][1],
		      cmds[i][2], NULL);
		ck_assert_msg(r.exit_code == 3, "%s: exit %d", cmds[i][0], r.exit_code);
		ck_assert_msg(r.ms < 1000 + 1500, "%s took %llu ms", cmds[i][0],
			      (unsigned long long)r.ms);
		ck_assert_msg(strstr(r.err, "no node could serve"), "%s: %s", cmds[i][0], r.err);
		run_free(&r);
	}
	struct run r;
	kvctl(&r, NULL, 0, "--endpoints", list, "--timeout", "1s", "status", NULL);
	ck_assert_int_eq(r.exit_code, 3);
	ck_assert_ptr_nonnull(strstr(r.out, "unreachable"));
	ck_assert_ptr_nonnull(strstr(r.err, "no node answered"));
	run_free(&r);
	/* A paused node accepts connections (the kernel does) but never answers. */
	cluster_stop(g_cluster, 3);
	kvctl(&r, NULL, 0, "--endpoints", cluster_client_addr(g_cluster, 3), "--timeout", "1s",
	      "get", "k", NULL);
	struct run st;
	kvctl(&st, NULL, 0, EP, "--timeout", "1s", "status", NULL);
	cluster_cont(g_cluster, 3);
	ck_assert_int_eq(st.exit_code, 0);
	ck_assert_msg(st.ms < 1000 + 1500, "status, paused node: took %llu ms",
		      (unsigned long long)st.ms);
	ck_assert_int_eq(count(st.out, "unreachable (no answer in time)"), 1);
	ck_assert_ptr_nonnull(strstr(st.out, cluster_client_addr(g_cluster, 1)));
	run_free(&st);
	ck_assert_int_eq(r.exit_code, 3);
	ck_assert_msg(r.ms < 1000 + 1500, "paused node: took %llu ms", (unsigned long long)r.ms);
	ck_assert_ptr_nonnull(strstr(r.err, "kvctl: get k: "));
	run_free(&r);
}
END_TEST

START_TEST(test_survives_kill_9_of_a_node)
{
	struct run r;
	ck_assert_int_eq(cluster_wait_leaders(g_cluster, 20000), 0);
	cluster_kill(g_cluster, 1);
	/* `groups` shows the failover: no group is left with an unreachable leader or none. */
	uint64_t until = cluster_now_ms() + 15000;
	for (;;) {
		kvctl(&r, NULL, 0, EP, "groups", NULL);
		ck_assert_int_eq(r.exit_code, 0);
		ck_assert_ptr_nonnull(strstr(r.out, "SHARE"));
		bool settled = !strstr(r.out, "(unreachable)") && !strstr(r.out, " none ");
		run_free(&r);
		if (settled)
			break;
		ck_assert_msg(cluster_now_ms() < until, "groups still led by the killed node");
		nanosleep(&(struct timespec){0, 200 * 1000000L}, NULL);
	}
	for (int i = 0; i < 16; i++) {
		char key[32], val[32];
		snprintf(key, sizeof key, "k9/%d", i);
		snprintf(val, sizeof val, "v%d", i);
		kvctl(&r, NULL, 0, EP, "--timeout", "8s", "put", key, val, NULL);
		ck_assert_msg(r.exit_code == 0, "put %s after kill -9: exit %d %s", key,
			      r.exit_code, r.err);
		run_free(&r);
	}
	for (int i = 0; i < 16; i++) {
		char key[32], val[32];
		snprintf(key, sizeof key, "k9/%d", i);
		snprintf(val, sizeof val, "v%d", i);
		kvctl(&r, NULL, 0, EP, "--timeout", "8s", "get", key, NULL);
		ck_assert_msg(r.exit_code == 0, "get %s: exit %d %s", key, r.exit_code, r.err);
		ck_assert_str_eq(r.out, val);
		run_free(&r);
	}
	kvctl(&r, NULL, 0, EP, "status", NULL);
	ck_assert_int_eq(r.exit_code, 0);
	ck_assert_int_eq(count(r.out, "unreachable"), 1);
	run_free(&r);
	kvctl(&r, NULL, 0, EP, "--timeout", "8s", "scan", "k9/", "--keys-only", NULL);
	ck_assert_int_eq(r.exit_code, 0);
	ck_assert_int_eq(count(r.out, "\n"), 16);
	run_free(&r);
	ck_assert_int_eq(cluster_restart(g_cluster, 1), 0);
	ck_assert_int_eq(cluster_wait_leaders(g_cluster, 20000), 0);
}
END_TEST

/* ------------------------------------------------------------------------------ bench */
/* The number after "name": in a bench JSON summary; -1 when absent. */
static long long json_num(const char *out, const char *name)
{
	char pat[64];
	snprintf(pat, sizeof pat, "\"%s\": ", name);
	const char *p = strstr(out, pat);
	return p ? strtoll(p + strlen(pat), NULL, 10) : -1;
}

/* Checks a bench JSON summary accounts for every request: ok + errors == requests, and the
 * errors by kind add up to errors. Returns the errors. */
static long long bench_accounted(const struct run *r, long long requests)
{
	ck_assert_msg(json_ok(r->out), "bench: not JSON: %s", r->out);
	long long ok = json_num(r->out, "ok"), errors = json_num(r->out, "errors");
	ck_assert_msg(ok >= 0 && errors >= 0, "bench: no ok/errors: %s", r->out);
	ck_assert_msg(ok + errors == requests, "bench: %lld ok + %lld errors != %lld requests: %s",
		      ok, errors, requests, r->out);
	const char *kinds = strstr(r->out, "\"error_kinds\": {");
	ck_assert_ptr_nonnull(kinds);
	long long sum = 0;
	for (const char *p = strchr(kinds, '{') + 1; *p != '}';) {
		const char *colon = strchr(p, ':');
		ck_assert_ptr_nonnull(colon);
		char *end;
		sum += strtoll(colon + 1, &end, 10);
		p = *end == ',' ? end + 1 : end;
		while (*p == ' ')
			p++;
	}
	ck_assert_msg(sum == errors, "bench: error kinds add up to %lld, not %lld: %s", sum, errors,
		      r->out);
	ck_assert_ptr_nonnull(strstr(r->out, "\"complete\": true"));
	return errors;
}

START_TEST(test_bench_with_a_dead_endpoint)
{
	/* Two live nodes and an address nothing listens on: the run completes, every request
	 * is ok or a counted error, exit 0. */
	char dead[64], list[256];
	dead_endpoint(dead, sizeof dead);
	snprintf(list, sizeof list, "%s,%s,%s", dead, cluster_client_addr(g_cluster, 1),
		 cluster_client_addr(g_cluster, 2));
	struct run r;
	kvctl(&r, NULL, 0, "--endpoints", list, "--timeout", "2s", "-o", "json", "bench",
	      "--requests", "2000", "--clients", "3", "--pipeline", "4", NULL);
	ck_assert_msg(r.exit_code == 0, "bench: exit %d\n%s%s", r.exit_code, r.out, r.err);
	long long errors = bench_accounted(&r, 2000);
	ck_assert_msg(errors < 2000, "bench: nothing succeeded: %s", r.out);
	run_free(&r);
	/* Clients shared by several event-driven threads (5 over 2: uneven shares) account
	 * for every request the same way; --threads 0 is refused. */
	kvctl(&r, NULL, 0, "--endpoints", list, "--timeout", "2s", "-o", "json", "bench",
	      "--requests", "1001", "--clients", "5", "--pipeline", "3", "--threads", "2", NULL);
	ck_assert_msg(r.exit_code == 0, "bench: exit %d\n%s%s", r.exit_code, r.out, r.err);
	ck_assert_int_eq(json_num(r.out, "threads"), 2);
	ck_assert_msg(bench_accounted(&r, 1001) < 1001, "bench: nothing succeeded: %s", r.out);
	run_free(&r);
	kvctl(&r, NULL, 0, "--endpoints", list, "bench", "--threads", "0", NULL);
	ck_assert_msg(r.exit_code == 2 && strstr(r.err, "--threads"), "exit %d: %s", r.exit_code,
		      r.err);
	run_free(&r);
	/* The table output says the same. */
	kvctl(&r, NULL, 0, "--endpoints", list, "--timeout", "2s", "bench", "--requests", "500",
	      NULL);
	ck_assert_msg(r.exit_code == 0, "bench: exit %d\n%s%s", r.exit_code, r.out, r.err);
	unsigned long long ok = 0, err = 0;
	const char *line = strstr(r.out, "\nok ");
	ck_assert_msg(line && sscanf(line, "\nok %llu  errors %llu", &ok, &err) == 2, "%s", r.out);
	ck_assert_uint_eq(ok + err, 500);
	ck_assert(err == 0 || strstr(r.out, "errors by kind:"));
	run_free(&r);
	/* No node at all: every request fails, exit 3, within --timeout (plus slack). */
	char dead2[64];
	dead_endpoint(dead2, sizeof dead2);
	snprintf(list, sizeof list, "%s,%s", dead, dead2);
	kvctl(&r, NULL, 0, "--endpoints", list, "--timeout", "1s", "-o", "json", "bench",
	      "--requests", "1000", NULL);
	ck_assert_msg(r.exit_code == 3, "bench, no node: exit %d\n%s", r.exit_code, r.err);
	ck_assert_msg(r.ms < 1000 + 1500, "bench, no node: took %llu ms", (unsigned long long)r.ms);
	ck_assert_int_eq(bench_accounted(&r, 1000), 1000);
	ck_assert_int_eq(json_num(r.out, "ok"), 0);
	ck_assert_int_gt(json_num(r.out, "connect_refused"), 0);
	ck_assert_ptr_nonnull(strstr(r.err, "every request failed"));
	run_free(&r);
}
END_TEST

struct killer {
	int node;
	int after_ms;
	uint64_t at_ms; /* when it killed, cluster_now_ms() */
};

static void *kill_later(void *arg)
{
	struct killer *k = arg;
	nanosleep(&(struct timespec){k->after_ms / 1000, (k->after_ms % 1000) * 1000000L}, NULL);
	cluster_kill(g_cluster, k->node);
	k->at_ms = cluster_now_ms();
	return NULL;
}

START_TEST(test_bench_survives_kill_9_mid_run)
{
	/* kill -9 of a node that leads some groups while the bench runs: the requests in flight
	 * to it and the reconnects it refuses are counted, the run goes on and exits 0. */
	ck_assert_int_eq(cluster_wait_leaders(g_cluster, 20000), 0);
	int victim = 0;
	for (uint32_t g = 1; g <= cluster_groups(g_cluster) && !victim; g++)
		victim = (int)cluster_leader_of(g_cluster, g, 5000);
	ck_assert_int_gt(victim, 0);
	struct killer k = {.node = victim, .after_ms = 400};
	pthread_t th;
	uint64_t t0 = cluster_now_ms();
	ck_assert_int_eq(pthread_create(&th, NULL, kill_later, &k), 0);
	struct run r;
	kvctl(&r, NULL, 0, EP, "--timeout", "3s", "-o", "json", "bench", "--requests", "30000",
	      "--clients", "4", "--pipeline", "4", NULL);
	pthread_join(th, NULL);
	ck_assert_msg(r.exit_code == 0, "bench: exit %d\n%s%s", r.exit_code, r.out, r.err);
	long long errors = bench_accounted(&r, 30000);
	if (t0 + r.ms > k.at_ms + 300) {
		/* Still running well after the kill: it must have met the dead node. */
		long long lost = json_num(r.out, "connection_lost"),
			  refused = json_num(r.out, "connect_refused");
		ck_assert_msg(errors > 0 && (lost > 0 || refused > 0), "no failure counted: %s",
			      r.out);
	} else {
		fprintf(stderr,
			"test_bench_survives_kill_9_mid_run: the bench ended %llu ms after "
			"the kill: failures not asserted\n",
			(unsigned long long)(t0 + r.ms - k.at_ms));
	}
	fprintf(stderr, "bench with node %d killed at %llu ms of %llu: %s", victim,
		(unsigned long long)(k.at_ms - t0), (unsigned long long)r.ms, r.out);
	run_free(&r);
	ck_assert_int_eq(cluster_restart(g_cluster, victim), 0);
	ck_assert_int_eq(cluster_wait_leaders(g_cluster, 20000), 0);
}
END_TEST

int main(void)
{
	const char *bin = getenv("RINGRAFT_BIN");
	snprintf(g_kvctl, sizeof g_kvctl, "%s/kvctl", bin ? bin : "bin");
	if (access(g_kvctl, X_OK) != 0) {
		fprintf(stderr, "test_kvctl: no kvctl at %s (set RINGRAFT_BIN)\n", g_kvctl);
		return EXIT_FAILURE;
	}
	g_cluster = cluster_start(NULL);
	if (g_cluster == NULL)
		return EXIT_FAILURE;
	Suite *s = suite_create("kvctl");
	TCase *t = tcase_create("kvctl");
	tcase_set_timeout(t, 180);
	tcase_add_test(t, test_exit_codes);
	tcase_add_test(t, test_binary_values_through_stdin);
	tcase_add_test(t, test_json_output);
	tcase_add_test(t, test_unreachable_is_exit_3_within_timeout);
	tcase_add_test(t, test_survives_kill_9_of_a_node);
	suite_add_tcase(s, t);
	TCase *b = tcase_create("bench"); /* alone: CK_RUN_CASE=bench */
	tcase_set_timeout(b, 120);
	tcase_add_test(b, test_bench_with_a_dead_endpoint);
	tcase_add_test(b, test_bench_survives_kill_9_mid_run);
	suite_add_tcase(s, b);
	SRunner *r = srunner_create(s);
	/* One cluster for the suite: tests run in this process, in order. */
	srunner_set_fork_status(r, CK_NOFORK);
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	if (failed)
		cluster_dump_logs(g_cluster, 30);
	cluster_destroy(g_cluster);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
