/* jepsen_client_main.c — the workload: C threads drive the cluster through cli/client.h (or,
 * --protocol resp, the register workload through the nodes' RESP ports: resp_client.h) for T
 * seconds and record every operation in the DESIGN.md section 10 history format.
 *
 * One client per thread; ok / fail (definitely not done) / info (unknown: the thread goes on as
 * a new process). Control lines on stdin from the runner: see control_loop().
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/client.h"
#include "jepsen-lite/jl_limits.h"
#include "jepsen-lite/resp_client.h"

#define FINAL_ATTEMPTS 20 /* a final read is retried this often; never ok = not recovered */

enum workload { REGISTER, SET };

struct config {
	const char *endpoints;
	int clients;
	double seconds;
	enum workload workload;
	uint64_t seed;
	int keys;        /* register keys in use at once */
	int ops_per_key; /* a register key is retired after this many operations */
	uint32_t timeout_ms;
	uint32_t final_timeout_ms;
	const char *out, *latency, *summary;
	bool resp; /* --protocol resp: endpoints are RESP ports */
};

/* One worker's connection: the protobuf client library, or a RESP connection. */
struct conn {
	struct cli_client *c;
	struct jl_resp *r;
};

static struct config cfg = {.clients = 5,
			    .seconds = 30,
			    .workload = REGISTER,
			    .seed = 1,
			    .keys = 4,
			    .ops_per_key = 300,
			    .timeout_ms = 1000,
			    .final_timeout_ms = 5000,
			    .out = "history.jsonl"};

/* ------------------------------------------------------------------ the recorder */

static int64_t t0_ns;
static pthread_mutex_t rec_mu = PTHREAD_MUTEX_INITIALIZER;
static FILE *hist, *lat;
static atomic_int_fast64_t next_process;
static atomic_bool stop_workload;

struct stats {
	uint64_t ok, fail, info, nemesis;
	int64_t *lat_ok; /* latencies of ok operations, ns */
	size_t nlat, cap;
};
static struct stats st;

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* value text: null, an integer, [a, b] (cas, a may be null) or a list (set read) */
struct val {
	enum { V_NULL, V_INT, V_PAIR, V_LIST } kind;
	int64_t a, b;
	bool a_null;
	const int64_t *list;
	size_t n;
};

static void put_val(FILE *f, const struct val *v)
{
	switch (v->kind) {
	case V_NULL:
		fputs("null", f);
		break;
	case V_INT:
		fprintf(f, "%" PRId64, v->a);
		break;
	case V_PAIR:
		if (v->a_null)
			fprintf(f, "[null, %" PRId64 "]", v->b);
		else
			fprintf(f, "[%" PRId64 ", %" PRId64 "]", v->a, v->b);
		break;
	case V_LIST:
		fputc('[', f);
		for (size_t i = 0; i < v->n; i++)
			fprintf(f, i ? ", %" PRId64 : "%" PRId64, v->list[i]);
		fputc(']', f);
		break;
	}
}

/* Records one event; returns its time. The time is taken under the lock, so the file is in
 * real-time order. inv_ns: the invocation's time for a completion (for latency), else -1. */
static int64_t record(int64_t process, const char *type, const char *f, const char *key,
		      const struct val *v, int64_t inv_ns)
{
	pthread_mutex_lock(&rec_mu);
	int64_t t = mono_ns() - t0_ns;
	fprintf(hist,
		"{\"time\": %" PRId64 ", \"process\": %" PRId64 ", \"type\": \"%s\", \"f\": "
		"\"%s\", \"key\": \"%s\", \"value\": ",
		t, process, type, f, key);
	put_val(hist, v);
	fputs("}\n", hist);
	if (inv_ns >= 0) {
		int64_t l = t - inv_ns;
		if (type[0] == 'o') {
			st.ok++;
			if (st.nlat == st.cap) {
				size_t ncap = st.cap ? st.cap * 2 : 4096;
				int64_t *n = realloc(st.lat_ok, ncap * sizeof *n);
				if (n) {
					st.lat_ok = n;
					st.cap = ncap;
				}
			}
			if (st.nlat < st.cap)
				st.lat_ok[st.nlat++] = l;
		} else if (type[0] == 'f') {
			st.fail++;
		} else {
			st.info++;
		}
		if (lat)
			fprintf(lat, "%.6f %.3f %s %s\n", (double)t / 1e9, (double)l / 1e6, type,
				f);
	}
	pthread_mutex_unlock(&rec_mu);
	return t;
}

static void record_nemesis(const char *f, const char *value)
{
	pthread_mutex_lock(&rec_mu);
	int64_t t = mono_ns() - t0_ns;
	fprintf(hist,
		"{\"time\": %" PRId64 ", \"process\": \"nemesis\", \"type\": \"info\", "
		"\"f\": \"",
		t);
	for (const char *p = f; *p; p++) /* names are plain words; keep the JSON valid anyway */
		if (*p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
			fputc(*p, hist);
	fputs("\", \"value\": \"", hist);
	for (const char *p = value; *p; p++)
		if (*p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
			fputc(*p, hist);
	fputs("\"}\n", hist);
	fflush(hist);
	st.nemesis++;
	pthread_mutex_unlock(&rec_mu);
}

/* ------------------------------------------------------------------ register workload */

struct key_slot {
	int id;       /* key "r<id>" */
	int ops;      /* operations issued on it */
	int64_t last; /* a recent value written to it (0 = none yet), for likely-true CAS */
};

static pthread_mutex_t keys_mu = PTHREAD_MUTEX_INITIALIZER;
static struct key_slot slots[JL_KEYS_MAX];
static int next_key_id;
static atomic_int_fast64_t next_value = 1;

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Parses a value we wrote (decimal text). */
static bool parse_value(const void *buf, size_t len, int64_t *out)
{
	char tmp[32];
	if (!buf || len == 0 || len >= sizeof tmp)
		return false;
	memcpy(tmp, buf, len);
	tmp[len] = '\0';
	char *end;
	errno = 0;
	long long v = strtoll(tmp, &end, 10);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

static const char *outcome(int rc, bool happened)
{
	if (happened)
		return "ok";
	return cli_result_is_definite(rc) ? "fail" : "info";
}

/* One read of key; returns the completion type. */
static int conn_get(struct conn *k, const char *key, void **buf, size_t *len)
{
	return k->r ? jl_resp_get(k->r, key, buf, len) : cli_get(k->c, key, strlen(key), buf, len);
}

static int conn_put(struct conn *k, const char *key, const char *v, size_t vl)
{
	return k->r ? jl_resp_put(k->r, key, v, vl) : cli_put(k->c, key, strlen(key), v, vl);
}

static int conn_cas(struct conn *k, const char *key, const char *e, size_t el, const char *v,
		    size_t vl)
{
	return k->r ? jl_resp_cas(k->r, key, e, el, v, vl)
		    : cli_cas(k->c, key, strlen(key), e, el, v, vl, NULL);
}

static const char *do_read(struct conn *c, int64_t process, const char *key)
{
	struct val none = {.kind = V_NULL};
	int64_t inv = record(process, "invoke", "read", key, &none, -1);
	void *buf = NULL;
	size_t len = 0;
	int rc = conn_get(c, key, &buf, &len);
	struct val got = {.kind = V_NULL};
	const char *type;
	if (rc == CLI_OK && parse_value(buf, len, &got.a)) {
		got.kind = V_INT;
		type = "ok";
	} else if (rc == CLI_OK) {
		fprintf(stderr, "jepsen_client: %s holds a value we never write (%zu bytes)\n", key,
			len);
		type = "info"; /* cannot be expressed in the register model: recorded unknown */
	} else if (rc == CLI_NOT_FOUND) {
		type = "ok";
	} else {
		type = outcome(rc, false);
	}
	cli_free(buf);
	record(process, type, "read", key, &got, inv);
	return type;
}

static const char *register_op(struct conn *c, int64_t process, uint64_t *rs)
{
	pthread_mutex_lock(&keys_mu);
	struct key_slot *s = &slots[rnd(rs) % (uint64_t)cfg.keys];
	if (s->ops >= cfg.ops_per_key)
		*s = (struct key_slot){.id = next_key_id++};
	s->ops++;
	int id = s->id;
	int64_t last = s->last;
	pthread_mutex_unlock(&keys_mu);

	char key[32], vbuf[32], ebuf[32];
	snprintf(key, sizeof key, "r%d", id);
	uint64_t x = rnd(rs) % 10;
	if (x < 5)
		return do_read(c, process, key);

	int64_t v = atomic_fetch_add(&next_value, 1);
	int vlen = snprintf(vbuf, sizeof vbuf, "%" PRId64, v);
	const char *type;
	if (x < 8) {
		struct val w = {.kind = V_INT, .a = v};
		int64_t inv = record(process, "invoke", "write", key, &w, -1);
		int rc = conn_put(c, key, vbuf, (size_t)vlen);
		type = outcome(rc, rc == CLI_OK);
		record(process, type, "write", key, &w, inv);
	} else {
		/* expect the last value we know of (absent when none): usually true */
		struct val w = {.kind = V_PAIR, .a = last, .b = v, .a_null = last == 0};
		int elen = snprintf(ebuf, sizeof ebuf, "%" PRId64, last);
		int64_t inv = record(process, "invoke", "cas", key, &w, -1);
		int rc = conn_cas(c, key, last ? ebuf : NULL, last ? (size_t)elen : 0, vbuf,
				  (size_t)vlen);
		type = rc == CLI_CAS_MISMATCH ? "fail" : outcome(rc, rc == CLI_OK);
		record(process, type, "cas", key, &w, inv);
	}
	if (type[0] != 'f') {
		pthread_mutex_lock(&keys_mu);
		for (int i = 0; i < cfg.keys; i++)
			if (slots[i].id == id)
				slots[i].last = v;
		pthread_mutex_unlock(&keys_mu);
	}
	return type;
}

/* ------------------------------------------------------------------ set workload */

#define SET_KEY    "s"    /* the set's name in the history */
#define SET_PREFIX "set/" /* elements are keys set/<element>, spread over every group */
/* "set0": the first key after every "set/..." key */

static const char *set_add(struct cli_client *c, int64_t process)
{
	int64_t e = atomic_fetch_add(&next_value, 1);
	char key[48];
	int klen = snprintf(key, sizeof key, SET_PREFIX "%012" PRId64, e);
	struct val v = {.kind = V_INT, .a = e};
	int64_t inv = record(process, "invoke", "add", SET_KEY, &v, -1);
	int rc = cli_put(c, key, (size_t)klen, "1", 1);
	const char *type = outcome(rc, rc == CLI_OK);
	record(process, type, "add", SET_KEY, &v, inv);
	return type;
}

struct elems {
	int64_t *v;
	size_t n, cap;
	bool bad;
};

static int collect_cb(const void *key, size_t key_len, const void *value, size_t value_len,
		      void *arg)
{
	(void)value;
	(void)value_len;
	struct elems *es = arg;
	size_t pl = strlen(SET_PREFIX);
	int64_t e;
	if (key_len <= pl || memcmp(key, SET_PREFIX, pl) != 0 ||
	    !parse_value((const char *)key + pl, key_len - pl, &e)) {
		es->bad = true;
		return 0;
	}
	if (es->n == es->cap) {
		size_t ncap = es->cap ? es->cap * 2 : 1024;
		int64_t *nv = realloc(es->v, ncap * sizeof *nv);
		if (!nv) {
			es->bad = true;
			return 1;
		}
		es->v = nv;
		es->cap = ncap;
	}
	es->v[es->n++] = e;
	return 0;
}

static const char *set_read(struct cli_client *c, int64_t process)
{
	struct val none = {.kind = V_NULL};
	int64_t inv = record(process, "invoke", "read", SET_KEY, &none, -1);
	struct elems es = {0};
	/* One scan returns at most CLI_SCAN_LIMIT_MAX elements: page on from the last element
	 * (keys are fixed-width, so their byte order is the elements' order). A read cut at the
	 * limit and taken as whole would report every later element as lost. */
	char start[48] = SET_PREFIX;
	int rc;
	for (;;) {
		size_t before = es.n;
		rc = cli_scan(c, start, strlen(start), "set0", 4, CLI_SCAN_LIMIT_MAX, collect_cb,
			      &es);
		if (rc != CLI_OK || es.bad || es.n - before < CLI_SCAN_LIMIT_MAX)
			break;
		snprintf(start, sizeof start, SET_PREFIX "%012" PRId64, es.v[es.n - 1] + 1);
	}
	const char *type;
	struct val got = {.kind = V_NULL};
	if (rc == CLI_OK && !es.bad) {
		got = (struct val){.kind = V_LIST, .list = es.v, .n = es.n};
		type = "ok";
	} else {
		if (rc == CLI_OK)
			fprintf(stderr, "jepsen_client: the set holds a key we never write\n");
		type = rc == CLI_OK ? "info" : outcome(rc, false);
	}
	record(process, type, "read", SET_KEY, &got, inv);
	free(es.v);
	return type;
}

/* ------------------------------------------------------------------ threads */

struct worker {
	pthread_t tid;
	int index;
	struct conn c;
	int64_t end_ns;
};

static struct conn new_client(uint32_t timeout_ms)
{
	struct conn k = {0};
	int rc;
	if (cfg.resp) {
		rc = jl_resp_new(cfg.endpoints, timeout_ms, &k.r);
	} else {
		struct cli_options o;
		cli_options_default(&o);
		o.timeout_ms = timeout_ms;
		rc = cli_client_new(cfg.endpoints, &o, &k.c);
	}
	if (rc) {
		fprintf(stderr, "jepsen_client: bad endpoints '%s': %s\n", cfg.endpoints,
			cli_strerror(rc));
		exit(2);
	}
	return k;
}

static void conn_free(struct conn *k)
{
	cli_client_free(k->c);
	jl_resp_free(k->r);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t rs = cfg.seed * 1000003 + (uint64_t)w->index;
	int64_t process = atomic_fetch_add(&next_process, 1);
	while (!atomic_load(&stop_workload) && mono_ns() < w->end_ns) {
		const char *type = cfg.workload == REGISTER ? register_op(&w->c, process, &rs)
							    : set_add(w->c.c, process);
		if (type[0] == 'i') /* unknown outcome: this process is done */
			process = atomic_fetch_add(&next_process, 1);
	}
	return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* Final reads after the nemesis healed: every register key ever used, or the whole set,
 * retried until one succeeds. Returns false if some final read never succeeded. */
static bool final_reads(void)
{
	struct conn conn = new_client(cfg.final_timeout_ms);
	bool all = true;
	int nkeys = cfg.workload == REGISTER ? next_key_id : 1;
	for (int k = 0; k < nkeys; k++) {
		char key[32];
		snprintf(key, sizeof key, "r%d", k);
		bool done = false;
		for (int a = 0; a < FINAL_ATTEMPTS && !done; a++) {
			int64_t process = atomic_fetch_add(&next_process, 1);
			const char *type = cfg.workload == REGISTER ? do_read(&conn, process, key)
								    : set_read(conn.c, process);
			done = type[0] == 'o';
			if (!done)
				usleep(200000);
		}
		if (!done) {
			fprintf(stderr, "jepsen_client: final read of %s never succeeded\n",
				cfg.workload == REGISTER ? key : "the set");
			all = false;
		}
	}
	conn_free(&conn);
	return all;
}

static void write_summary(bool final_ok, double secs)
{
	FILE *f = cfg.summary ? fopen(cfg.summary, "w") : NULL;
	if (cfg.summary && !f) {
		fprintf(stderr, "jepsen_client: %s: %s\n", cfg.summary, strerror(errno));
		return;
	}
	if (!f)
		f = stdout;
	qsort(st.lat_ok, st.nlat, sizeof *st.lat_ok, cmp_i64);
	double p50 = st.nlat ? (double)st.lat_ok[st.nlat / 2] / 1e6 : 0;
	double p99 = st.nlat ? (double)st.lat_ok[st.nlat * 99 / 100] / 1e6 : 0;
	double pmax = st.nlat ? (double)st.lat_ok[st.nlat - 1] / 1e6 : 0;
	fprintf(f,
		"workload: %s, %d clients, %.0f s, timeout %u ms\n"
		"operations: %" PRIu64 " (ok %" PRIu64 ", fail %" PRIu64 ", info %" PRIu64 ")\n"
		"throughput: %.0f ok ops/s\n"
		"latency of ok operations: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n"
		"register keys used: %d\n"
		"final reads: %s\n",
		cfg.workload == REGISTER ? "register" : "set", cfg.clients, cfg.seconds,
		cfg.timeout_ms, st.ok + st.fail + st.info, st.ok, st.fail, st.info,
		secs > 0 ? (double)st.ok / secs : 0, p50, p99, pmax,
		cfg.workload == REGISTER ? next_key_id : 0,
		final_ok ? "all succeeded" : "SOME FAILED (cluster did not recover)");
	if (f != stdout)
		fclose(f);
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: jepsen_client --endpoints H:P,... [--clients C] [--time T] "
		"[--workload register|set]\n"
		"         [--seed S] [--keys K] [--ops-per-key N] [--timeout-ms MS] "
		"[--final-timeout-ms MS]\n"
		"         [--out HISTORY.jsonl] [--latency FILE] [--summary FILE]\n"
		"         [--protocol protobuf|resp]  (resp: register only; endpoints are RESP "
		"ports)\n"
		"stdin: 'nemesis F VALUE' records a nemesis event; 'final' stops and does final "
		"reads\n");
}

static void parse_args(int argc, char **argv)
{
	static const struct option lo[] = {{"endpoints", required_argument, NULL, 'e'},
					   {"clients", required_argument, NULL, 'c'},
					   {"time", required_argument, NULL, 't'},
					   {"workload", required_argument, NULL, 'w'},
					   {"seed", required_argument, NULL, 's'},
					   {"keys", required_argument, NULL, 'k'},
					   {"ops-per-key", required_argument, NULL, 'n'},
					   {"timeout-ms", required_argument, NULL, 'T'},
					   {"final-timeout-ms", required_argument, NULL, 'F'},
					   {"out", required_argument, NULL, 'o'},
					   {"latency", required_argument, NULL, 'l'},
					   {"summary", required_argument, NULL, 'S'},
					   {"protocol", required_argument, NULL, 'P'},
					   {"help", no_argument, NULL, 'h'},
					   {NULL, 0, NULL, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'e':
			cfg.endpoints = optarg;
			break;
		case 'c':
			cfg.clients = atoi(optarg);
			break;
		case 't':
			cfg.seconds = atof(optarg);
			break;
		case 'w':
			if (strcmp(optarg, "register") == 0)
				cfg.workload = REGISTER;
			else if (strcmp(optarg, "set") == 0)
				cfg.workload = SET;
			else
				goto bad;
			break;
		case 's':
			cfg.seed = strtoull(optarg, NULL, 10);
			break;
		case 'k':
			cfg.keys = atoi(optarg);
			break;
		case 'n':
			cfg.ops_per_key = atoi(optarg);
			break;
		case 'T':
			cfg.timeout_ms = (uint32_t)atoi(optarg);
			break;
		case 'F':
			cfg.final_timeout_ms = (uint32_t)atoi(optarg);
			break;
		case 'o':
			cfg.out = optarg;
			break;
		case 'l':
			cfg.latency = optarg;
			break;
		case 'S':
			cfg.summary = optarg;
			break;
		case 'P':
			if (strcmp(optarg, "resp") == 0)
				cfg.resp = true;
			else if (strcmp(optarg, "protobuf") != 0)
				goto bad;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			goto bad;
		}
	}
	if (optind == argc && cfg.endpoints && cfg.clients >= 1 && cfg.clients <= JL_CLIENTS_MAX &&
	    cfg.seconds > 0 && cfg.keys >= 1 && cfg.keys <= JL_KEYS_MAX && cfg.ops_per_key >= 1 &&
	    cfg.timeout_ms >= 1 && cfg.final_timeout_ms >= 1 && !(cfg.resp && cfg.workload == SET))
		return;
bad:
	usage(stderr);
	exit(2);
}

/* Control lines from the runner on stdin: "nemesis F VALUE..." records a nemesis event at this
 * instant; "final" stops the workload now (the final reads follow). At end of input the
 * workload runs until its deadline. Returns when the workload should stop. */
static void control_loop(int64_t end_ns)
{
	char line[512];
	size_t len = 0;
	bool eof = false;
	while (!eof) {
		struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
		int r = poll(&p, 1, 100);
		if (r < 0 && errno != EINTR)
			break;
		if (r <= 0)
			continue;
		ssize_t n = read(STDIN_FILENO, line + len, sizeof line - 1 - len);
		if (n <= 0) {
			eof = true;
			break;
		}
		len += (size_t)n;
		line[len] = '\0';
		char *nl;
		while ((nl = strchr(line, '\n'))) {
			*nl = '\0';
			if (strcmp(line, "final") == 0)
				return;
			if (strncmp(line, "nemesis ", 8) == 0) {
				char *f = line + 8, *v = strchr(f, ' ');
				if (v)
					*v++ = '\0';
				record_nemesis(f, v ? v : "");
			} else if (line[0]) {
				fprintf(stderr, "jepsen_client: unknown control line '%s'\n", line);
			}
			size_t rest = len - (size_t)(nl + 1 - line);
			memmove(line, nl + 1, rest + 1);
			len = rest;
		}
		if (len == sizeof line - 1)
			len = 0; /* an overlong line: dropped */
	}
	while (mono_ns() < end_ns)
		usleep(50000);
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	hist = fopen(cfg.out, "w");
	if (!hist) {
		fprintf(stderr, "jepsen_client: %s: %s\n", cfg.out, strerror(errno));
		return 2;
	}
	if (cfg.latency && !(lat = fopen(cfg.latency, "w"))) {
		fprintf(stderr, "jepsen_client: %s: %s\n", cfg.latency, strerror(errno));
		return 2;
	}
	for (int i = 0; i < cfg.keys; i++)
		slots[i] = (struct key_slot){.id = next_key_id++};
	t0_ns = mono_ns();
	int64_t end_ns = t0_ns + (int64_t)(cfg.seconds * 1e9);
	struct worker ws[JL_CLIENTS_MAX];
	for (int i = 0; i < cfg.clients; i++) {
		ws[i] = (struct worker){
			.index = i, .c = new_client(cfg.timeout_ms), .end_ns = end_ns};
		if (pthread_create(&ws[i].tid, NULL, worker_main, &ws[i])) {
			fprintf(stderr, "jepsen_client: cannot start thread %d\n", i);
			return 2;
		}
	}
	control_loop(end_ns);
	atomic_store(&stop_workload, true);
	for (int i = 0; i < cfg.clients; i++) {
		pthread_join(ws[i].tid, NULL);
		conn_free(&ws[i].c);
	}
	double secs = (double)(mono_ns() - t0_ns) / 1e9;
	bool final_ok = final_reads();
	write_summary(final_ok, secs);
	fclose(hist);
	if (lat)
		fclose(lat);
	free(st.lat_ok);
	return final_ok ? 0 : 3;
}
