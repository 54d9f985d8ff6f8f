/* kvctl_bench.c — `kvctl bench`: C threads, each with its own client, each keeping up to P
 * requests in flight (pipelined on one connection per leader), over a key space of K keys.
 * Requests are routed to the group's cached leader but sent with redirect off, so a stale
 * cache costs a forward, not an error. Bench writes carry no session (client_id 0): pipelined
 * sequence numbers would reach the session table out of order. Latency is per request, from
 * send to reply; throughput counts successful replies over the wall time of the whole run.
 */
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cli/client_int.h"
#include "cli/kvctl.h"

#define SLOT_BITS 11 /* > log2(CLI_PIPELINE_MAX) */

struct slot {
	bool busy;
	uint64_t id; /* of the request in flight */
	int64_t sent_us;
	bool is_get;
};

struct worker {
	const struct kvctl_args *a;
	int idx;
	uint32_t n;       /* requests this worker issues */
	uint32_t *lat_us; /* one per completed request */
	size_t n_lat;
	uint64_t errors;
	uint64_t by_code[16]; /* failed replies by kv.proto Code */
	int fatal;            /* 0, or the cli code that stopped the worker */
	uint64_t rng;
	pthread_t th;
};

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static int issue(struct worker *w, struct cli_client *c, struct slot *slots, uint32_t si,
		 uint64_t counter, const uint8_t *value)
{
	const struct kvctl_args *a = w->a;
	char key[32];
	int kl = snprintf(key, sizeof key, "bench/%010llu",
			  (unsigned long long)(next_rand(&w->rng) % a->keys));
	bool is_get = strcmp(a->op, "get") == 0 ||
		      (strcmp(a->op, "mixed") == 0 && (next_rand(&w->rng) & 1));
	uint32_t group = cli_route_group_of(&c->route, key, (size_t)kl);
	const char *leader = cli_route_leader_addr(&c->route, group);
	const char *addr = leader ? leader : c->eps[counter % c->n_eps];
	int64_t deadline = cli_now_ms() + a->timeout_ms;
	struct cli_conn *conn;
	int rc = cli_conn_get(c, addr, deadline, &conn);
	if (rc)
		return rc;
	Ringraft__Kv__Request req = RINGRAFT__KV__REQUEST__INIT;
	req.id = (counter << SLOT_BITS) | si;
	req.op = is_get ? RINGRAFT__KV__OP__GET : RINGRAFT__KV__OP__PUT;
	req.key.data = (uint8_t *)key;
	req.key.len = (size_t)kl;
	if (!is_get) {
		req.value.data = (uint8_t *)value;
		req.value.len = a->value_size;
	}
	req.consistency = a->serializable ? RINGRAFT__KV__CONSISTENCY__SERIALIZABLE
					  : RINGRAFT__KV__CONSISTENCY__LINEARIZABLE;
	req.ring_epoch = c->route.epoch;
	size_t len = ringraft__kv__request__get_packed_size(&req);
	uint8_t *buf = malloc(len ? len : 1);
	if (buf == NULL)
		return CLI_ENOMEM;
	ringraft__kv__request__pack(&req, buf);
	slots[si].busy = true;
	slots[si].id = req.id;
	slots[si].is_get = is_get;
	slots[si].sent_us = now_us();
	rc = cli_conn_send(conn, buf, (uint32_t)len, deadline);
	free(buf);
	return rc;
}

/* Reads every whole reply available on conn; returns how many completed, or < 0. */
static int drain(struct worker *w, struct cli_conn *conn, struct slot *slots, uint32_t pipeline)
{
	int done = 0;
	for (;;) {
		const uint8_t *p;
		uint32_t n;
		int rc = cli_conn_recv(conn, 0, &p, &n);
		if (rc == CLI_TIMEOUT)
			return done;
		if (rc)
			return rc;
		Ringraft__Kv__Response *r = ringraft__kv__response__unpack(NULL, n, p);
		if (r == NULL)
			return CLI_EPROTO;
		uint32_t si = (uint32_t)(r->id & ((1u << SLOT_BITS) - 1));
		if (si < pipeline && slots[si].busy && slots[si].id == r->id) {
			slots[si].busy = false;
			bool ok = r->code == RINGRAFT__KV__CODE__OK ||
				  (slots[si].is_get && r->code == RINGRAFT__KV__CODE__NOT_FOUND);
			if (ok) {
				int64_t us = now_us() - slots[si].sent_us;
				w->lat_us[w->n_lat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
			} else {
				w->errors++;
				w->by_code[r->code & 15]++;
			}
			done++;
		}
		ringraft__kv__response__free_unpacked(r, NULL);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	const struct kvctl_args *a = w->a;
	struct cli_options o;
	cli_options_default(&o);
	o.timeout_ms = a->timeout_ms;
	struct cli_client *c = NULL;
	struct slot *slots = calloc(a->pipeline, sizeof *slots);
	uint8_t *value = malloc(a->value_size ? a->value_size : 1);
	w->lat_us = malloc((size_t)w->n * sizeof *w->lat_us);
	if (!slots || !value || !w->lat_us) {
		w->fatal = CLI_ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < a->value_size; i++)
		value[i] = (uint8_t)('a' + next_rand(&w->rng) % 26);
	if ((w->fatal = cli_client_new(a->endpoints, &o, &c)))
		goto out;
	if ((w->fatal = cli_refresh(c, cli_now_ms() + a->timeout_ms)))
		goto out;
	uint32_t issued = 0, completed = 0, inflight = 0;
	uint64_t counter = 0;
	int64_t last_progress = cli_now_ms();
	while (completed < w->n) {
		for (uint32_t si = 0; si < a->pipeline && issued < w->n; si++) {
			if (slots[si].busy)
				continue;
			int rc = issue(w, c, slots, si, ++counter, value);
			if (rc) {
				w->fatal = rc;
				goto out;
			}
			issued++;
			inflight++;
		}
		struct pollfd pfd[CLI_CONNS_MAX];
		struct cli_conn *pc[CLI_CONNS_MAX];
		nfds_t np = 0;
		for (size_t i = 0; i < CLI_CONNS_MAX; i++) {
			if (c->conns[i] == NULL)
				continue;
			pfd[np].fd = c->conns[i]->fd;
			pfd[np].events = POLLIN;
			pc[np++] = c->conns[i];
		}
		int pr = poll(pfd, np, 100);
		for (nfds_t i = 0; pr > 0 && i < np; i++) {
			if (!(pfd[i].revents & (POLLIN | POLLERR | POLLHUP)))
				continue;
			int d = drain(w, pc[i], slots, a->pipeline);
			if (d < 0) {
				w->fatal = d;
				goto out;
			}
			completed += (uint32_t)d;
			inflight -= (uint32_t)d;
			last_progress = cli_now_ms();
		}
		if (inflight && cli_now_ms() - last_progress > a->timeout_ms) {
			w->fatal = CLI_TIMEOUT;
			goto out;
		}
	}
out:
	cli_client_free(c);
	free(slots);
	free(value);
	return NULL;
}

static int cmp_u32(const void *x, const void *y)
{
	uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
	return (a > b) - (a < b);
}

static double pct_ms(const uint32_t *v, size_t n, double q)
{
	if (n == 0)
		return 0;
	size_t i = (size_t)(q * (double)(n - 1) + 0.5);
	return v[i] / 1000.0;
}

int kvctl_cmd_bench(const struct kvctl_args *a)
{
	if (a->value_size > CLI_VALUE_MAX) {
		fprintf(stderr, "kvctl: bench: --value-size is over %u bytes\n", CLI_VALUE_MAX);
		return KVCTL_EXIT_USAGE;
	}
	uint32_t C = a->clients < a->requests ? a->clients : a->requests;
	struct worker *ws = calloc(C, sizeof *ws);
	if (ws == NULL)
		return KVCTL_EXIT_UNAVAILABLE;
	uint64_t seed = (uint64_t)now_us() * 0x9e3779b97f4a7c15ull | 1;
	int64_t t0 = now_us();
	uint32_t started = 0;
	for (uint32_t i = 0; i < C; i++) {
		ws[i].a = a;
		ws[i].idx = (int)i;
		ws[i].n = a->requests / C + (i < a->requests % C);
		ws[i].rng = seed + i * 0x2545f4914f6cdd1dull;
		if (pthread_create(&ws[i].th, NULL, worker_main, &ws[i]) != 0) {
			ws[i].fatal = CLI_ENOMEM;
			break;
		}
		started++;
	}
	for (uint32_t i = 0; i < started; i++)
		pthread_join(ws[i].th, NULL);
	double elapsed = (double)(now_us() - t0) / 1e6;
	size_t total = 0;
	uint64_t errors = 0, by_code[16] = {0};
	int fatal = 0;
	for (uint32_t i = 0; i < C; i++) {
		total += ws[i].n_lat;
		errors += ws[i].errors;
		for (int k = 0; k < 16; k++)
			by_code[k] += ws[i].by_code[k];
		if (ws[i].fatal && !fatal)
			fatal = ws[i].fatal;
	}
	uint32_t *all = malloc((total ? total : 1) * sizeof *all);
	size_t k = 0;
	for (uint32_t i = 0; i < C; i++) {
		if (all && ws[i].n_lat)
			memcpy(all + k, ws[i].lat_us, ws[i].n_lat * sizeof *all);
		k += ws[i].n_lat;
		free(ws[i].lat_us);
	}
	free(ws);
	if (all == NULL)
		return KVCTL_EXIT_UNAVAILABLE;
	qsort(all, total, sizeof *all, cmp_u32);
	double tput = elapsed > 0 ? (double)total / elapsed : 0;
	if (a->output == KVCTL_OUT_JSON) {
		printf("{\"op\": \"%s\", \"reads\": \"%s\", \"requests\": %u, \"clients\": %u, "
		       "\"pipeline\": %u, "
		       "\"value_size\": %u, \"keys\": %u, \"ok\": %zu, \"errors\": %llu, "
		       "\"elapsed_s\": %.3f, \"throughput\": %.0f, \"p50_ms\": %.3f, "
		       "\"p99_ms\": %.3f, \"p999_ms\": %.3f, \"max_ms\": %.3f, \"complete\": %s}\n",
		       a->op, a->serializable ? "serializable" : "linearizable", a->requests, C,
		       a->pipeline, a->value_size, a->keys, total, (unsigned long long)errors,
		       elapsed, tput, pct_ms(all, total, 0.5), pct_ms(all, total, 0.99),
		       pct_ms(all, total, 0.999), pct_ms(all, total, 1), fatal ? "false" : "true");
	} else {
		printf("bench %s (%s reads): %u requests, %u clients, pipeline %u, value %u B, "
		       "%u keys\n",
		       a->op, a->serializable ? "serializable" : "linearizable", a->requests, C,
		       a->pipeline, a->value_size, a->keys);
		printf("ok %zu  errors %llu  elapsed %.3f s  throughput %.0f req/s\n", total,
		       (unsigned long long)errors, elapsed, tput);
		printf("latency p50 %.3f ms  p99 %.3f ms  p999 %.3f ms  max %.3f ms\n",
		       pct_ms(all, total, 0.5), pct_ms(all, total, 0.99), pct_ms(all, total, 0.999),
		       pct_ms(all, total, 1));
	}
	free(all);
	if (fatal)
		return kvctl_fail(a, "bench", fatal);
	if (errors) {
		fprintf(stderr, "kvctl: bench: %llu requests failed:", (unsigned long long)errors);
		for (int k = 0; k < 16; k++)
			if (by_code[k])
				fprintf(stderr, " %llu %s;", (unsigned long long)by_code[k],
					cli_strerror(k));
		fprintf(stderr, "\n");
		return KVCTL_EXIT_UNAVAILABLE;
	}
	return KVCTL_EXIT_OK;
}
