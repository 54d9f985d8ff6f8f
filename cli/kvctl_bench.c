/* kvctl_bench.c — `kvctl bench`: C clients, each with its own connections (one per node),
 * each keeping up to P requests in flight (pipelined), over a key space of K keys. The clients
 * are event-driven: T threads (--threads, default 1) each run their share of them on one
 * poll loop, so that the load generator takes little of the CPU the nodes under test need.
 * Requests are routed to the group's cached leader (or any reachable node, which forwards).
 * Bench writes carry no session (client_id 0): pipelined sequence numbers would reach the
 * session table out of order; so a failed request is counted, never retried. Latency is per
 * request, from send to reply; throughput counts successful replies over the whole run.
 *
 * A BUSY answer (the node is over a load bound and did not take the request) is no failure:
 * it is counted apart, with the time it took to come back, and the same request is sent again
 * after a pause that doubles with each BUSY answer in a row of that worker (CLI_BACKOFF_MS_MIN
 * .. CLI_BENCH_RETRY_MS_MAX, jittered: up to 1 s, since a thousand workers each retrying at
 * 200 ms kept two cores busy answering BUSY) and starts again at its first success. The worker also
 * keeps fewer requests in flight: a BUSY answer halves its window (at most once per
 * BUSY_CUT_MS), each success widens it by 1/window, up to --pipeline (TCP's additive increase,
 * multiplicative decrease), so that an overloaded cluster sees its load back off instead of
 * a storm of retries. The latency of a request that is accepted is that of its accepted
 * attempt; the time spent waiting in the client is not the cluster's.
 *
 * Failures do not stop the run: each request ends ok or as one error of a kind; a node whose
 * connection failed is skipped for a doubling pause (no spin on a dead endpoint), and a worker
 * no node has answered for --timeout counts what it has not sent as not_sent and ends.
 */
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cli/client_int.h"
#include "cli/kvctl.h"

#define SLOT_BITS   11 /* > log2(CLI_PIPELINE_MAX) */
#define BUSY_CUT_MS 10 /* a worker's window is halved at most this often */
_Static_assert(CLI_CONNS_MAX <= 256, "struct slot keeps a connection index in a byte");

/* Why a request failed: a reply code (kv.proto Code, 1..15), or one of these. */
enum {
	ERR_CONNECT_REFUSED = 16, /* connect failed: refused or unreachable */
	ERR_CONNECT_TIMEOUT,      /* connect did not complete within --timeout */
	ERR_CONN_LOST,            /* the connection broke (reset, closed) before the reply */
	ERR_TIMEOUT,              /* no reply within --timeout (the connection is then closed) */
	ERR_PROTOCOL,             /* an undecodable reply (the connection is then closed) */
	ERR_NOT_SENT,             /* never sent: no node had answered for --timeout */
	ERR_KINDS
};

/* Short names for the summary and the JSON keys. */
static const char *kind_name(int k)
{
	static const char *names[ERR_KINDS] = {
		[RINGRAFT__KV__CODE__NOT_FOUND] = "reply_not_found",
		[RINGRAFT__KV__CODE__CAS_MISMATCH] = "reply_cas_mismatch",
		[RINGRAFT__KV__CODE__NOT_LEADER] = "reply_not_leader",
		[RINGRAFT__KV__CODE__INVALID] = "reply_invalid",
		[RINGRAFT__KV__CODE__TOO_LARGE] = "reply_too_large",
		[RINGRAFT__KV__CODE__WRONG_SHARD] = "reply_wrong_shard",
		[RINGRAFT__KV__CODE__UNAVAILABLE] = "reply_unavailable",
		[RINGRAFT__KV__CODE__TIMEOUT] = "reply_timeout",
		[RINGRAFT__KV__CODE__LEADER_LOST] = "reply_leader_lost",
		[RINGRAFT__KV__CODE__INTERNAL] = "reply_internal",
		[ERR_CONNECT_REFUSED] = "connect_refused",
		[ERR_CONNECT_TIMEOUT] = "connect_timeout",
		[ERR_CONN_LOST] = "connection_lost",
		[ERR_TIMEOUT] = "timeout",
		[ERR_PROTOCOL] = "protocol_error",
		[ERR_NOT_SENT] = "not_sent",
	};
	return k >= 0 && k < ERR_KINDS && names[k] ? names[k] : "reply_other";
}

struct slot {
	bool busy;  /* a request is in flight in it */
	bool again; /* its request was answered BUSY: send it again at again_us */
	int64_t again_us;
	uint8_t conn; /* index in client->conns of the connection it was sent on */
	uint64_t id;  /* of the request in flight */
	int64_t sent_us;
	bool is_get;
};

/* A node address this worker failed to use, and when to try it again. */
struct backoff {
	char addr[CLI_ADDR_MAX];
	int64_t retry_ms; /* cli_now_ms() time; 0 = usable */
	uint32_t pause_ms;
};

struct worker {
	const struct kvctl_args *a;
	int idx;
	uint32_t n;       /* requests this worker issues */
	uint32_t done;    /* requests ended (ok or error) */
	uint32_t *lat_us; /* one per successful request */
	size_t n_lat;
	uint64_t errors;
	uint64_t by_kind[ERR_KINDS];
	uint32_t *busy_us; /* one per BUSY answer: how long it took to come back */
	size_t n_busy, cap_busy;
	bool busy_oom; /* busy_us could not grow: later ones are counted in n_busy only */
	uint64_t busy_total;
	uint32_t busy_pause_ms; /* 0, or the pause after the last BUSY answer */
	double window;          /* requests it may keep in flight (1..pipeline) */
	int64_t window_cut_us;  /* when the window was last halved */
	int fatal;              /* 0, or the local error (out of memory) that stopped the worker */
	uint64_t rng;
	int64_t last_reply_ms; /* when a node last answered anything */
	size_t n_backoff;
	struct backoff backoff[CLI_CONNS_MAX];
	struct cli_client *c;
	struct slot *slots; /* --pipeline of them */
	uint8_t *value;
	uint32_t issued;   /* requests sent for the first time */
	uint32_t inflight; /* slots busy */
	uint64_t counter;  /* of sends, for request ids and the endpoint turn */
	bool finished;     /* every request ended, or the worker stopped (fatal) */
	bool poke;         /* a reply came (or a connection failed): it may send again */
	int64_t wake_us;   /* else it sends again at this time (a pause ends, a retry is due) */
};

/* A thread and the workers it runs. */
struct runner {
	struct worker *ws;
	uint32_t n;
	int64_t t0; /* now_us() once its workers were set up: the load's start */
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

static void count_error(struct worker *w, int kind)
{
	w->errors++;
	w->by_kind[kind < 0 || kind >= ERR_KINDS ? 0 : kind]++;
	w->done++;
}

static struct backoff *backoff_of(struct worker *w, const char *addr, bool create)
{
	for (size_t i = 0; i < w->n_backoff; i++)
		if (strcmp(w->backoff[i].addr, addr) == 0)
			return &w->backoff[i];
	if (!create || w->n_backoff == CLI_CONNS_MAX)
		return NULL;
	struct backoff *b = &w->backoff[w->n_backoff++];
	snprintf(b->addr, sizeof b->addr, "%s", addr);
	b->retry_ms = 0;
	b->pause_ms = 0;
	return b;
}

/* When addr may be used again: 0 if now. */
static int64_t retry_ms_of(struct worker *w, const char *addr)
{
	struct backoff *b = backoff_of(w, addr, false);
	return b && b->retry_ms > cli_now_ms() ? b->retry_ms : 0;
}

/* addr just failed: skip it for a doubling pause, and forget it as a leader. */
static void node_failed(struct worker *w, struct cli_client *c, const char *addr)
{
	struct backoff *b = backoff_of(w, addr, true);
	if (b) {
		b->pause_ms = b->pause_ms == 0 ? CLI_BENCH_RETRY_MS_MIN : b->pause_ms * 2;
		if (b->pause_ms > CLI_BENCH_RETRY_MS_MAX)
			b->pause_ms = CLI_BENCH_RETRY_MS_MAX;
		b->retry_ms = cli_now_ms() + b->pause_ms;
	}
	size_t n_ids = 0;
	const uint32_t *ids = c->route.ring ? kv_ring_ids(c->route.ring, &n_ids) : NULL;
	for (size_t i = 0; i < n_ids; i++) {
		uint32_t g = ids[i];
		const char *l = cli_route_leader_addr(&c->route, g);
		if (l && strcmp(l, addr) == 0)
			cli_route_forget_leader(&c->route, g, 0);
	}
}

/* addr answered: its next failure starts from the shortest pause again. */
static void node_answered(struct worker *w, const char *addr)
{
	struct backoff *b = backoff_of(w, addr, false);
	if (b)
		b->pause_ms = 0;
}

/* Closes connection ci: every request in flight on it ends as an error of `kind`. */
static void conn_failed(struct worker *w, struct cli_client *c, struct slot *slots, size_t ci,
			int kind, uint32_t *inflight)
{
	for (uint32_t si = 0; si < w->a->pipeline; si++) {
		if (slots[si].busy && slots[si].conn == ci) {
			slots[si].busy = false;
			(*inflight)--;
			count_error(w, kind);
		}
	}
	char addr[CLI_ADDR_MAX];
	snprintf(addr, sizeof addr, "%s", c->conns[ci]->addr);
	cli_conn_drop(c, addr);
	node_failed(w, c, addr);
}

/* Where the request for group goes: its leader, else the endpoints and the ring's nodes in
 * turn, skipping nodes in their pause. NULL when every one is paused: *retry_ms then says when
 * the first can be tried again. */
static const char *pick_addr(struct worker *w, struct cli_client *c, uint32_t group,
			     uint64_t counter, int64_t *retry_ms)
{
	const char *leader = cli_route_leader_addr(&c->route, group);
	*retry_ms = 0;
	if (leader && retry_ms_of(w, leader) == 0)
		return leader;
	size_t total = c->n_eps + c->route.n_nodes;
	for (size_t k = 0; k < total; k++) {
		size_t i = (size_t)((counter + k) % total);
		const char *a = i < c->n_eps ? c->eps[i] : c->route.nodes[i - c->n_eps].client_addr;
		if (a[0] == '\0')
			continue;
		int64_t r = retry_ms_of(w, a);
		if (r == 0)
			return a;
		if (*retry_ms == 0 || r < *retry_ms)
			*retry_ms = r;
	}
	return NULL;
}

enum { ISSUED, ISSUE_FAILED, ISSUE_WAIT };

/* Sends one request in slot si. ISSUED; ISSUE_FAILED when it ended at once as an error
 * (counted); ISSUE_WAIT when every node is in its pause (nothing counted, *retry_ms set); or
 * CLI_ENOMEM. */
static int issue(struct worker *w, struct cli_client *c, struct slot *slots, uint32_t si,
		 uint64_t counter, const uint8_t *value, uint32_t *inflight, int64_t *retry_ms)
{
	const struct kvctl_args *a = w->a;
	char key[32];
	int kl = snprintf(key, sizeof key, "bench/%010llu",
			  (unsigned long long)(next_rand(&w->rng) % a->keys));
	bool is_get = strcmp(a->op, "get") == 0 ||
		      (strcmp(a->op, "mixed") == 0 && (next_rand(&w->rng) & 1));
	uint32_t group = cli_route_group_of(&c->route, key, (size_t)kl);
	const char *picked = pick_addr(w, c, group, counter, retry_ms);
	if (picked == NULL)
		return ISSUE_WAIT;
	char addr[CLI_ADDR_MAX];
	snprintf(addr, sizeof addr, "%s", picked);
	int64_t deadline = cli_now_ms() + a->timeout_ms;
	struct cli_conn *conn;
	int rc = cli_conn_get(c, addr, deadline, &conn);
	if (rc == CLI_ENOMEM)
		return rc;
	if (rc) {
		count_error(w, rc == CLI_TIMEOUT ? ERR_CONNECT_TIMEOUT : ERR_CONNECT_REFUSED);
		node_failed(w, c, addr);
		return ISSUE_FAILED;
	}
	size_t ci = 0;
	while (c->conns[ci] != conn)
		ci++;
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
	req.ring_epoch = c->route.ring ? c->route.epoch : 0;
	if (c->o.user != NULL) { /* client authentication: checked once per connection */
		req.auth_user = (char *)c->o.user;
		req.password.data = (uint8_t *)(c->o.password ? c->o.password : "");
		req.password.len = c->o.password ? strlen(c->o.password) : 0;
	}
	/* packed into the connection's queue: worker_send writes each connection's requests of
	 * one pass in one system call (flush_all) */
	size_t len = ringraft__kv__request__get_packed_size(&req);
	uint8_t *buf = cli_conn_queue(conn, (uint32_t)len);
	if (buf == NULL)
		return CLI_ENOMEM;
	ringraft__kv__request__pack(&req, buf);
	slots[si].busy = true;
	slots[si].conn = (uint8_t)ci;
	slots[si].id = req.id;
	slots[si].is_get = is_get;
	slots[si].sent_us = now_us();
	(*inflight)++;
	return ISSUED;
}

/* Writes what issue queued on each connection; a connection that fails takes its requests. */
static void flush_all(struct worker *w)
{
	struct cli_client *c = w->c;
	for (size_t ci = 0; ci < CLI_CONNS_MAX; ci++) {
		if (c->conns[ci] == NULL || c->conns[ci]->sbuf_len == 0)
			continue;
		if (cli_conn_flush(c->conns[ci], cli_now_ms() + w->a->timeout_ms) != 0)
			conn_failed(w, c, w->slots, ci, ERR_CONN_LOST, &w->inflight);
	}
}

/* The request in slot sl was answered BUSY: counted, and sent again after the pause. */
static void busy_answered(struct worker *w, struct slot *sl)
{
	int64_t now = now_us(), us = now - sl->sent_us;
	w->busy_total++;
	if (w->n_busy == w->cap_busy && !w->busy_oom) {
		size_t cap = w->cap_busy ? w->cap_busy * 2 : 1024;
		uint32_t *b = realloc(w->busy_us, cap * sizeof *b);
		if (b == NULL)
			w->busy_oom = true;
		else {
			w->busy_us = b;
			w->cap_busy = cap;
		}
	}
	if (w->n_busy < w->cap_busy)
		w->busy_us[w->n_busy++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
	w->busy_pause_ms = w->busy_pause_ms == 0 ? CLI_BACKOFF_MS_MIN : w->busy_pause_ms * 2;
	if (w->busy_pause_ms > CLI_BENCH_RETRY_MS_MAX)
		w->busy_pause_ms = CLI_BENCH_RETRY_MS_MAX;
	/* jittered in [pause/2, pause] so that the workers do not come back together */
	uint32_t half = w->busy_pause_ms / 2;
	uint64_t pause_us = ((uint64_t)half + next_rand(&w->rng) % (half + 1)) * 1000;
	sl->again = true;
	sl->again_us = now + (int64_t)pause_us;
	if (now - w->window_cut_us >= BUSY_CUT_MS * 1000) {
		w->window_cut_us = now;
		w->window = w->window / 2 < 1 ? 1 : w->window / 2;
	}
}

/* Reads every whole reply available on connection ci; 0, or a negative error (the caller
 * closes the connection). */
static int drain(struct worker *w, struct cli_client *c, size_t ci, struct slot *slots,
		 uint32_t *inflight)
{
	struct cli_conn *conn = c->conns[ci];
	for (;;) {
		const uint8_t *p;
		uint32_t n;
		int rc = cli_conn_recv(conn, 0, &p, &n);
		if (rc == CLI_TIMEOUT)
			return 0;
		if (rc)
			return rc;
		Ringraft__Kv__Response *r = ringraft__kv__response__unpack(NULL, n, p);
		if (r == NULL)
			return CLI_EPROTO;
		w->last_reply_ms = cli_now_ms();
		node_answered(w, conn->addr);
		uint32_t si = (uint32_t)(r->id & ((1u << SLOT_BITS) - 1));
		if (si < w->a->pipeline && slots[si].busy && slots[si].id == r->id) {
			slots[si].busy = false;
			(*inflight)--;
			bool ok = r->code == RINGRAFT__KV__CODE__OK ||
				  (slots[si].is_get && r->code == RINGRAFT__KV__CODE__NOT_FOUND);
			if (ok) {
				int64_t us = now_us() - slots[si].sent_us;
				w->lat_us[w->n_lat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
				w->done++;
				w->busy_pause_ms = 0;
				w->window += 1.0 / w->window;
				if (w->window > w->a->pipeline)
					w->window = w->a->pipeline;
			} else if (r->code == RINGRAFT__KV__CODE__BUSY) {
				busy_answered(w, &slots[si]);
			} else {
				count_error(w, r->code > 0 && r->code < 16 ? (int)r->code : 0);
			}
		}
		ringraft__kv__response__free_unpacked(r, NULL);
	}
}

/* Sets the worker up: its client (the ring and leaders learnt), its slots and its value. A
 * local failure ends it at once (w->fatal). */
static void worker_begin(struct worker *w)
{
	const struct kvctl_args *a = w->a;
	struct cli_options o;
	kvctl_client_options(a, &o);
	o.timeout_ms = a->timeout_ms;
	w->slots = calloc(a->pipeline, sizeof *w->slots);
	w->value = malloc(a->value_size ? a->value_size : 1);
	w->lat_us = malloc((size_t)w->n * sizeof *w->lat_us);
	if (!w->slots || !w->value || !w->lat_us) {
		w->fatal = CLI_ENOMEM;
		w->finished = true;
		return;
	}
	for (uint32_t i = 0; i < a->value_size; i++)
		w->value[i] = (uint8_t)('a' + next_rand(&w->rng) % 26);
	if ((w->fatal = cli_client_new(a->endpoints, &o, &w->c))) {
		w->finished = true;
		return;
	}
	/* Learns the ring and the leaders. Without them (no node answered) requests still go
	 * to the endpoints in turn, unrouted, and the nodes forward them. */
	cli_refresh(w->c, cli_now_ms() + a->timeout_ms);
	w->last_reply_ms = cli_now_ms();
	w->window = a->pipeline;
}

/* Sends what the worker may send now: free slots, within its window, the BUSY-answered ones
 * whose pause is over. Lowers *wait_ms to when it next has something to do; sets finished
 * when every request has ended (or the cluster is out of reach, or a local failure). */
static void worker_send(struct worker *w, int64_t *wait_ms)
{
	const struct kvctl_args *a = w->a;
	struct slot *slots = w->slots;
	if (w->done >= w->n) {
		w->finished = true;
		return;
	}
	int64_t retry_ms = 0, again_us = 0, now_u = now_us();
	for (uint32_t si = 0; si < a->pipeline; si++) {
		if (slots[si].busy)
			continue;
		bool again = slots[si].again;
		if (again && slots[si].again_us > now_u) {
			if (again_us == 0 || slots[si].again_us < again_us)
				again_us = slots[si].again_us;
			continue;
		}
		if (!again && w->issued >= w->n)
			continue;
		if (w->inflight >= (uint32_t)w->window)
			break;
		int rc = issue(w, w->c, slots, si, ++w->counter, w->value, &w->inflight, &retry_ms);
		if (rc == ISSUE_WAIT)
			break;
		if (rc < 0) {
			w->fatal = rc;
			w->finished = true;
			return;
		}
		slots[si].again = false;
		if (!again)
			w->issued++;
	}
	flush_all(w);
	/* Nothing could be sent (every node refused or is in its pause) and no node has answered
	 * anything for --timeout: the cluster is out of reach. */
	if (w->inflight == 0 && cli_now_ms() - w->last_reply_ms > a->timeout_ms) {
		for (uint32_t si = 0; si < a->pipeline; si++)
			if (slots[si].again) {
				slots[si].again = false;
				count_error(w, ERR_NOT_SENT);
			}
		while (w->issued < w->n) {
			count_error(w, ERR_NOT_SENT);
			w->issued++;
		}
		w->finished = true;
		return;
	}
	if (w->done >= w->n) {
		w->finished = true;
		return;
	}
	int64_t now = cli_now_ms();
	if (retry_ms && retry_ms - now < *wait_ms)
		*wait_ms = retry_ms > now ? retry_ms - now : 0;
	if (again_us) {
		int64_t d = (again_us - now_us() + 999) / 1000;
		if (d < *wait_ms)
			*wait_ms = d > 0 ? d : 0;
	}
}

/* Connection ci of the worker is readable (or failed): its replies are taken. */
static void worker_ready(struct worker *w, size_t ci)
{
	if (w->finished || w->c->conns[ci] == NULL)
		return; /* dropped by an earlier event of the same round */
	w->poke = true;
	int rc = drain(w, w->c, ci, w->slots, &w->inflight);
	if (rc == CLI_ENOMEM) {
		w->fatal = rc;
		w->finished = true;
	} else if (rc) {
		conn_failed(w, w->c, w->slots, ci, rc == CLI_EPROTO ? ERR_PROTOCOL : ERR_CONN_LOST,
			    &w->inflight);
	}
}

/* A request unanswered for --timeout: its connection is presumed dead. */
static void worker_expire(struct worker *w)
{
	if (w->finished)
		return;
	int64_t old_us = now_us() - (int64_t)w->a->timeout_ms * 1000;
	for (uint32_t si = 0; si < w->a->pipeline; si++)
		if (w->slots[si].busy && w->slots[si].sent_us < old_us)
			conn_failed(w, w->c, w->slots, w->slots[si].conn, ERR_TIMEOUT, &w->inflight);
}

static void worker_end(struct worker *w)
{
	cli_client_free(w->c);
	w->c = NULL;
	free(w->slots);
	w->slots = NULL;
	free(w->value);
	w->value = NULL;
}

/* One thread runs its workers on one poll loop, as redis-benchmark does: a client that
 * takes a thread per connection spends the cores the nodes under test need in context
 * switches, and its latencies include its own scheduling delays. */
static void *runner_main(void *arg)
{
	struct runner *r = arg;
	for (uint32_t i = 0; i < r->n; i++)
		worker_begin(&r->ws[i]);
	r->t0 = now_us(); /* connecting and learning the ring are not the load */
	size_t cap = (size_t)r->n * CLI_CONNS_MAX;
	struct pollfd *pfd = malloc(cap * sizeof *pfd);
	struct owner {
		uint32_t w;
		uint32_t ci;
	} *own = malloc(cap * sizeof *own);
	if (pfd == NULL || own == NULL) {
		for (uint32_t i = 0; i < r->n; i++)
			if (!r->ws[i].finished) {
				r->ws[i].fatal = CLI_ENOMEM;
				r->ws[i].finished = true;
			}
	}
	int64_t expired_us = now_us();
	for (;;) {
		/* Only the workers that got a reply, or whose pause ended, look at their slots:
		 * a pass over all of them for every reply would cost C x P per reply. */
		int64_t now = now_us(), wait_ms = 100;
		nfds_t np = 0;
		bool live = false;
		for (uint32_t i = 0; i < r->n; i++) {
			struct worker *w = &r->ws[i];
			if (!w->finished && (w->poke || w->wake_us <= now)) {
				int64_t ms = 100;
				worker_send(w, &ms);
				w->poke = false;
				w->wake_us = now_us() + ms * 1000;
			}
			if (w->finished)
				continue;
			live = true;
			if (w->wake_us - now < wait_ms * 1000)
				wait_ms = w->wake_us > now ? (w->wake_us - now + 999) / 1000 : 0;
			for (size_t ci = 0; ci < CLI_CONNS_MAX; ci++) {
				if (w->c->conns[ci] == NULL)
					continue;
				pfd[np].fd = w->c->conns[ci]->fd;
				pfd[np].events = POLLIN;
				own[np].w = i;
				own[np++].ci = (uint32_t)ci;
			}
		}
		if (!live)
			break;
		int pr = poll(pfd, np, (int)wait_ms);
		for (nfds_t i = 0; pr > 0 && i < np; i++)
			if (pfd[i].revents & (POLLIN | POLLERR | POLLHUP))
				worker_ready(&r->ws[own[i].w], own[i].ci);
		if (now_us() - expired_us >= 10000) { /* --timeout is counted in ms; 10 ms is plenty */
			expired_us = now_us();
			for (uint32_t i = 0; i < r->n; i++)
				worker_expire(&r->ws[i]);
		}
	}
	free(pfd);
	free(own);
	for (uint32_t i = 0; i < r->n; i++)
		worker_end(&r->ws[i]);
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
	uint32_t T = a->threads < C ? a->threads : C;
	struct runner *rs = calloc(T, sizeof *rs);
	if (rs == NULL) {
		free(ws);
		return KVCTL_EXIT_UNAVAILABLE;
	}
	uint64_t seed = (uint64_t)now_us() * 0x9e3779b97f4a7c15ull | 1;
	for (uint32_t i = 0; i < C; i++) {
		ws[i].a = a;
		ws[i].idx = (int)i;
		ws[i].n = a->requests / C + (i < a->requests % C);
		ws[i].rng = seed + i * 0x2545f4914f6cdd1dull;
	}
	int64_t t0 = now_us();
	uint32_t started = 0;
	for (uint32_t t = 0, first = 0; t < T; t++) {
		rs[t].ws = ws + first;
		rs[t].n = C / T + (t < C % T);
		first += rs[t].n;
		if (pthread_create(&rs[t].th, NULL, runner_main, &rs[t]) != 0) {
			for (uint32_t i = 0; i < rs[t].n; i++)
				rs[t].ws[i].fatal = CLI_ENOMEM; /* these and later ones never start */
			break;
		}
		started++;
	}
	for (uint32_t t = 0; t < started; t++)
		pthread_join(rs[t].th, NULL);
	int64_t t1 = now_us();
	for (uint32_t t = 0; t < started; t++) /* from the first thread's start of the load */
		if (t == 0 || rs[t].t0 < t0)
			t0 = rs[t].t0;
	free(rs);
	double elapsed = (double)(t1 - t0) / 1e6;
	size_t total = 0, n_busy = 0;
	uint64_t errors = 0, by_kind[ERR_KINDS] = {0}, busy = 0;
	int fatal = 0;
	for (uint32_t i = 0; i < C; i++) {
		total += ws[i].n_lat;
		n_busy += ws[i].n_busy;
		busy += ws[i].busy_total;
		errors += ws[i].errors;
		for (int k = 0; k < ERR_KINDS; k++)
			by_kind[k] += ws[i].by_kind[k];
		if (ws[i].fatal && !fatal)
			fatal = ws[i].fatal;
	}
	/* A worker stopped by a local error (or never started) did not send the rest. */
	if (total + errors < a->requests) {
		by_kind[ERR_NOT_SENT] += a->requests - total - errors;
		errors = a->requests - total;
	}
	uint32_t *all = malloc((total ? total : 1) * sizeof *all);
	uint32_t *busy_all = malloc((n_busy ? n_busy : 1) * sizeof *busy_all);
	size_t k = 0, kb = 0;
	for (uint32_t i = 0; i < C; i++) {
		if (all && ws[i].n_lat)
			memcpy(all + k, ws[i].lat_us, ws[i].n_lat * sizeof *all);
		k += ws[i].n_lat;
		free(ws[i].lat_us);
		if (busy_all && ws[i].n_busy)
			memcpy(busy_all + kb, ws[i].busy_us, ws[i].n_busy * sizeof *busy_all);
		kb += ws[i].n_busy;
		free(ws[i].busy_us);
	}
	free(ws);
	if (all == NULL || busy_all == NULL) {
		free(all);
		free(busy_all);
		return KVCTL_EXIT_UNAVAILABLE;
	}
	qsort(all, total, sizeof *all, cmp_u32);
	qsort(busy_all, n_busy, sizeof *busy_all, cmp_u32);
	double tput = elapsed > 0 ? (double)total / elapsed : 0;
	if (a->output == KVCTL_OUT_JSON) {
		printf("{\"op\": \"%s\", \"reads\": \"%s\", \"requests\": %u, \"clients\": %u, "
		       "\"pipeline\": %u, \"threads\": %u, "
		       "\"value_size\": %u, \"keys\": %u, \"ok\": %zu, \"errors\": %llu, "
		       "\"error_kinds\": {",
		       a->op, a->serializable ? "serializable" : "linearizable", a->requests, C,
		       a->pipeline, T, a->value_size, a->keys, total, (unsigned long long)errors);
		const char *sep = "";
		for (int e = 0; e < ERR_KINDS; e++) {
			if (by_kind[e]) {
				printf("%s\"%s\": %llu", sep, kind_name(e),
				       (unsigned long long)by_kind[e]);
				sep = ", ";
			}
		}
		printf("}, \"elapsed_s\": %.3f, \"throughput\": %.0f, \"p50_ms\": %.3f, "
		       "\"p99_ms\": %.3f, \"p999_ms\": %.3f, \"max_ms\": %.3f, \"busy\": %llu, "
		       "\"busy_p50_ms\": %.3f, \"busy_p99_ms\": %.3f, \"busy_max_ms\": %.3f, "
		       "\"complete\": %s}\n",
		       elapsed, tput, pct_ms(all, total, 0.5), pct_ms(all, total, 0.99),
		       pct_ms(all, total, 0.999), pct_ms(all, total, 1), (unsigned long long)busy,
		       pct_ms(busy_all, n_busy, 0.5), pct_ms(busy_all, n_busy, 0.99),
		       pct_ms(busy_all, n_busy, 1), fatal ? "false" : "true");
	} else {
		printf("bench %s (%s reads): %u requests, %u clients, pipeline %u, value %u B, "
		       "%u keys, %u threads\n",
		       a->op, a->serializable ? "serializable" : "linearizable", a->requests, C,
		       a->pipeline, a->value_size, a->keys, T);
		printf("ok %zu  errors %llu  elapsed %.3f s  throughput %.0f req/s\n", total,
		       (unsigned long long)errors, elapsed, tput);
		if (errors) {
			printf("errors by kind:");
			for (int e = 0; e < ERR_KINDS; e++)
				if (by_kind[e])
					printf(" %s %llu", kind_name(e),
					       (unsigned long long)by_kind[e]);
			printf("\n");
		}
		printf("latency p50 %.3f ms  p99 %.3f ms  p999 %.3f ms  max %.3f ms\n",
		       pct_ms(all, total, 0.5), pct_ms(all, total, 0.99), pct_ms(all, total, 0.999),
		       pct_ms(all, total, 1));
		if (busy)
			printf("busy %llu (answered BUSY, sent again after a pause; answered in "
			       "p50 %.3f ms  p99 %.3f ms  max %.3f ms)\n",
			       (unsigned long long)busy, pct_ms(busy_all, n_busy, 0.5),
			       pct_ms(busy_all, n_busy, 0.99), pct_ms(busy_all, n_busy, 1));
	}
	free(all);
	free(busy_all);
	if (fatal)
		return kvctl_fail(a, "bench", fatal);
	if (total == 0) {
		fprintf(stderr,
			"kvctl: bench: every request failed (endpoints %s; is the cluster "
			"running?)\n",
			a->endpoints);
		return KVCTL_EXIT_UNAVAILABLE;
	}
	return KVCTL_EXIT_OK;
}
