/* resp.c — the Redis protocol port (--resp-addr; docs/CLI.md "RESP"): each command is either
 * answered here (PING, HELLO, INFO, ...) or turned into a kv.proto request that goes down the
 * same path as the protobuf port's (service.c: routing, forwarding to the group leader,
 * ReadIndex, proposals), and its answer is rendered the way Redis would render it. Replies
 * leave in request order (net/resp_server.c). Reads are linearizable unless the connection
 * said READONLY (then serializable, from the contacted replica).
 *
 * Redis clients know nothing of leaders, so the port hides leader changes as the protobuf
 * client library does: each connection is a client session (Raft thesis 6.3) whose writes
 * carry (client id, sequence), and a request that failed in a way that allows it (not the
 * leader, no leader yet, the link to the leader lost, the leader lost before commit) is sent
 * again after RETRY_MS until the request timeout, a write with the same sequence, so that it
 * applies at most once. Only what is still unresolved at the deadline reaches the client as
 * an error (-TRYAGAIN, -CLUSTERDOWN, or a write's "outcome unknown").
 */
#include <assert.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "kv/user.h"
#include "net/net_limits.h"
#include "node/node_int.h" /* read-only views: INFO, DBSIZE, routing */
#include "node/shell.h"

#define RESP_VERSION "7.0.0" /* the Redis version we answer like (HELLO, INFO) */
#define NAME_MAX_    256     /* CLIENT SETNAME */
#define RETRY_MS     25      /* between attempts of a request that may be retried */

/* Per connection. */
struct client {
	int proto;     /* 2 or 3 (HELLO) */
	bool readonly; /* READONLY: serializable reads */
	char name[NAME_MAX_ + 1];
	bool wrote;          /* a write was submitted on this connection ... */
	uint64_t write_slot; /* ... the last one in this slot */
	uint64_t session;    /* the client id its writes carry (0 until the first write) */
	uint64_t seq;        /* the last sequence number used */
	uint64_t held_bytes; /* of its requests in the engine (--conn-max-inflight-bytes) */
	int role;            /* client authentication: the user's role (kv/user.h), 0 = none */
	bool auth_pending;   /* AUTH (or HELLO ... AUTH) being checked: later commands wait */
};

/* How an answer from service.c is rendered. */
enum kind {
	K_GET,     /* bulk or null */
	K_SET,     /* +OK, or null when NX/XX refused it */
	K_SET_GET, /* the previous value or null (SET ... GET, GETDEL) */
	K_NUMBER,  /* :number (INCRBY, DEL) */
	K_EXISTS,  /* :count of found keys */
	K_MGET,    /* array of bulk-or-null */
	K_OK,      /* +OK (MSET) */
	K_CAS,     /* :1 swapped, :0 not */
	K_FLAG,    /* :1 done (OK), :0 not (NOT_FOUND): EXPIRE, PERSIST */
	K_TTL_MS,  /* :ms left, -1 no expiry, -2 absent (PTTL) */
	K_TTL_S,   /* the same in seconds, rounded (TTL) */
	K_SCAN,    /* [cursor, [keys]] */
};

struct ctx {
	struct node *n;          /* the engine it was submitted to (again on a retry) */
	struct net_resp_conn *c; /* referenced */
	uint64_t slot;
	uint8_t kind;
	int proto;
	bool nx; /* K_SET_GET for SET NX GET: a CAS mismatch carries the old value */
	/* K_SCAN: the group scanned and the MATCH pattern (owned, NULL: all) */
	uint32_t group;
	char *match;
	/* for another attempt: the request as packed (owned), its deadline, and the queue */
	uint8_t *packed;
	size_t packed_len;
	uint32_t bytes; /* counted in the connection's held_bytes until ctx is freed */
	bool write;
	bool maybe; /* a write's earlier attempt may have been applied (TIMEOUT, LEADER_LOST) */
	uint64_t deadline_ms, retry_at_ms;
	struct ctx *next;
};

/* Requests waiting for their next attempt, in order (node_resp_flush sends them). */
static struct ctx *retry_head, *retry_tail;

/* SCAN cursors (docs/CLI.md): a cursor below SCAN_CURSOR_BASE is the start of a group (0:
 * group 1, g: group g); above, it names a slot of this table holding the group and the key
 * to resume from, so that a scan of a large group needs no state in the client beyond a
 * number. A slot is reused round-robin: a cursor stays valid until SCAN_CURSORS newer ones
 * were handed out on this node (then "ERR invalid cursor"; start again from 0). A cursor is
 * good on the node that handed it out only (any connection). */
#define SCAN_CURSORS     4096
#define SCAN_CURSOR_BASE (1ull << 20)
#define SCAN_COUNT_MAX   KV_SCAN_MAX
struct scan_cursor {
	uint64_t id; /* 0: free */
	uint32_t group;
	uint16_t key_len;
	uint8_t key[KV_KEY_MAX];
};
static struct scan_cursor scan_cursors[SCAN_CURSORS];
static uint64_t scan_next_id; /* carries the node id in bits 44.., so that a cursor handed out
			       * by another node is never taken for one of ours */

/* One command being dispatched. */
struct cmd {
	struct node_shell *s;
	struct node *n;
	struct net_resp_conn *c;
	struct client *cl;
	uint64_t slot;
	const struct net_resp_val *a;
	size_t argc;
	struct net_resp_buf out;
	char *match; /* SCAN MATCH (owned; handed to the ctx by submit) */
	bool write;  /* the command writes: it carries the connection's session */
};

/* A client id no other client of the cluster uses (splitmix64 of node, time and connection;
 * the protobuf clients draw theirs at random). */
static uint64_t session_id(struct node *n, uint64_t conn_id)
{
	uint64_t z = n->cfg.id * 0x9e3779b97f4a7c15ULL ^ node_wall_ms(n) << 20 ^ conn_id ^
		     (uint64_t)getpid() << 40;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	return z ? z : 1;
}

static bool is(const struct net_resp_val *v, const char *s)
{
	return v->len == strlen(s) && strncasecmp((const char *)v->p, s, v->len) == 0;
}

static void reply(struct cmd *x)
{
	net_resp_conn_reply(x->c, x->slot, &x->out);
}

static void reply_error(struct cmd *x, const char *text)
{
	net_resp_put_error(&x->out, text);
	reply(x);
}

static void reply_ok(struct cmd *x)
{
	net_resp_put_simple(&x->out, "OK");
	reply(x);
}

static void arity_error(struct cmd *x, const char *name)
{
	net_resp_put_errorf(&x->out, "ERR wrong number of arguments for '%s' command", name);
	reply(x);
}

/* Redis's parse of an integer argument (string2ll). */
static bool arg_i64(const struct net_resp_val *v, int64_t *out)
{
	char buf[24];
	if (v->len == 0 || v->len > 20)
		return false;
	memcpy(buf, v->p, v->len);
	buf[v->len] = '\0';
	const char *s = buf;
	bool neg = *s == '-';
	if (neg)
		s++;
	if (*s < '0' || *s > '9' || (*s == '0' && (s[1] != '\0' || neg)))
		return false;
	uint64_t x = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		unsigned d = (unsigned)(*s - '0');
		if (x > (lim - d) / 10)
			return false;
		x = x * 10 + d;
	}
	*out = neg ? (int64_t)(0 - x) : (int64_t)x;
	return true;
}

/* A key's and a value's limits, checked at the boundary with errors naming the limit. */
static bool key_ok(struct cmd *x, const struct net_resp_val *k)
{
	if (k->len == 0) {
		reply_error(x, "ERR empty keys are not supported (ringraft keys are 1..511 bytes)");
		return false;
	}
	if (k->len > KV_KEY_MAX) {
		net_resp_put_errorf(&x->out, "ERR key is %zu bytes, over the key limit of %u bytes",
				    k->len, KV_KEY_MAX);
		reply(x);
		return false;
	}
	return true;
}

static bool value_ok(struct cmd *x, const struct net_resp_val *v)
{
	if (v->len > x->n->cfg.value_max) {
		net_resp_put_errorf(
			&x->out, "ERR value is %zu bytes, over the --value-max limit of %u bytes",
			v->len, x->n->cfg.value_max);
		reply(x);
		return false;
	}
	return true;
}

/* Keys a[first], a[first + step], ... all in one group, or -CROSSSLOT. */
static bool same_group(struct cmd *x, size_t first, size_t step)
{
	uint32_t g0 = 0;
	for (size_t i = first; i < x->argc; i += step) {
		if (!key_ok(x, &x->a[i]))
			return false;
		uint32_t g = kv_ring_group_of(x->n->ring, x->a[i].p, x->a[i].len);
		if (i == first)
			g0 = g;
		else if (g != g0) {
			reply_error(x, "CROSSSLOT Keys in request don't hash to the same slot");
			return false;
		}
	}
	return true;
}

static ProtobufCBinaryData bin(const struct net_resp_val *v)
{
	return (ProtobufCBinaryData){v->len, (uint8_t *)v->p};
}

/* Copies rq (borrowed pointers into the command) into an owned request and hands it to the
 * engine; the answer comes back through resp_answer. */
static void resp_answer(void *client, const Ringraft__Kv__Response *resp);

static void submit(struct cmd *x, Ringraft__Kv__Request *rq, enum kind kind, bool nx)
{
	rq->consistency = x->cl->readonly ? RINGRAFT__KV__CONSISTENCY__SERIALIZABLE
					  : RINGRAFT__KV__CONSISTENCY__LINEARIZABLE;
	if (x->write) {
		if (x->cl->session == 0)
			x->cl->session = session_id(x->n, net_resp_conn_id(x->c));
		rq->client_id = x->cl->session;
		rq->seq = ++x->cl->seq;
	}
	/* The connection's load bound (--conn-max-inflight[-bytes]): over it, -TRYAGAIN at
	 * once, nothing submitted. */
	const struct node_config *cfg = &x->n->cfg;
	uint32_t bytes = node_request_bytes(rq);
	if (cfg->conn_max_inflight && net_resp_conn_unanswered(x->c) > cfg->conn_max_inflight) {
		node_metrics_shed(&x->n->metrics, NODE_SHED_CONN_REQUESTS);
		free(x->match);
		x->match = NULL;
		reply_error(x, "TRYAGAIN busy: too many requests in flight on this connection, not "
			       "applied");
		return;
	}
	if (cfg->conn_max_inflight_bytes && x->cl->held_bytes > 0 &&
	    x->cl->held_bytes + bytes > cfg->conn_max_inflight_bytes) {
		node_metrics_shed(&x->n->metrics, NODE_SHED_CONN_BYTES);
		free(x->match);
		x->match = NULL;
		reply_error(x, "TRYAGAIN busy: too many request bytes in flight on this "
			       "connection, not applied");
		return;
	}
	size_t len = ringraft__kv__request__get_packed_size(rq);
	uint8_t *buf = malloc(len ? len : 1);
	struct ctx *ctx = malloc(sizeof *ctx);
	Ringraft__Kv__Request *own = NULL;
	if (buf != NULL && ctx != NULL) {
		ringraft__kv__request__pack(rq, buf);
		own = ringraft__kv__request__unpack(NULL, len, buf);
	}
	if (own == NULL) {
		free(buf);
		free(ctx);
		reply_error(x, "ERR out of memory");
		return;
	}
	memset(ctx, 0, sizeof *ctx);
	ctx->packed = buf;
	ctx->packed_len = len;
	ctx->bytes = bytes;
	x->cl->held_bytes += bytes;
	ctx->write = x->write;
	ctx->n = x->n;
	ctx->deadline_ms = node_now_ms(x->n) + x->n->cfg.request_timeout_ms;
	ctx->c = x->c;
	net_resp_conn_ref(x->c);
	ctx->slot = x->slot;
	ctx->kind = (uint8_t)kind;
	ctx->proto = x->cl->proto;
	ctx->nx = nx;
	ctx->group = rq->group;
	ctx->match = x->match;
	x->match = NULL;
	node_submit(x->n, own, resp_answer, ctx);
}

static void node_resp_ctx_free(void *p)
{
	struct ctx *ctx = p;
	struct client *cl = net_resp_conn_closed(ctx->c) ? NULL : net_resp_conn_user(ctx->c);
	if (cl != NULL) {
		assert(cl->held_bytes >= ctx->bytes);
		cl->held_bytes -= ctx->bytes;
	}
	net_resp_conn_unref(ctx->c);
	free(ctx->match);
	free(ctx->packed);
	free(ctx);
}

/* Whether an answer leaves the request worth another attempt: nothing was applied (not the
 * leader, no leader, not sent), or a read failed, or a write of this connection's session
 * may have been applied (its sequence makes a second attempt apply at most once). */
static bool retryable(const struct node *n, const struct ctx *ctx,
		      const Ringraft__Kv__Response *resp)
{
	if (n->stopping || ctx->packed == NULL || node_now_ms(n) + RETRY_MS >= ctx->deadline_ms ||
	    net_resp_conn_closed(ctx->c))
		return false;
	switch (resp->code) {
	case RINGRAFT__KV__CODE__NOT_LEADER:
	case RINGRAFT__KV__CODE__UNAVAILABLE:
	case RINGRAFT__KV__CODE__MOVING: /* its range is frozen for a move: shortly, again */
		return true;
	case RINGRAFT__KV__CODE__TIMEOUT:
	case RINGRAFT__KV__CODE__LEADER_LOST:
		return true; /* reads, and writes with a session (every write here has one) */
	default:
		return false;
	}
}

/* Sends the requests whose next attempt is due (every loop turn, at its end: what they
 * forward goes out at once, what they propose is taken up by the next turn). */
static void retry_due(struct node_shell *s)
{
	struct node *n = s->n;
	uint64_t now = node_now_ms(n);
	bool any = retry_head != NULL && retry_head->retry_at_ms <= now;
	if (retry_head != NULL)
		node_shell_catch_up_ticks(s); /* a retried read may be answered from a lease */
	while (retry_head != NULL && (retry_head->retry_at_ms <= now || n->stopping)) {
		struct ctx *ctx = retry_head;
		retry_head = ctx->next;
		if (retry_head == NULL)
			retry_tail = NULL;
		ctx->next = NULL;
		Ringraft__Kv__Request *rq =
			ringraft__kv__request__unpack(NULL, ctx->packed_len, ctx->packed);
		if (rq == NULL) {
			struct net_resp_buf b = {0};
			net_resp_put_error(&b, "ERR out of memory");
			net_resp_conn_reply(ctx->c, ctx->slot, &b);
			node_resp_ctx_free(ctx);
			continue;
		}
		uint64_t left = ctx->deadline_ms > now ? ctx->deadline_ms - now : 1;
		rq->timeout_ms = (uint32_t)left;
		node_submit(n, rq, resp_answer, ctx); /* while stopping: answered at once */
	}
	if (any)
		net_peers_flush(s->peers);
}

/* The cursor that resumes a scan after a page of `group`: the next key if there is one (a
 * new table slot), else the start of the next group, else 0 (done). */
static uint64_t scan_cursor_after(struct node *n, uint32_t group, const ProtobufCBinaryData *next)
{
	if (next->len > 0 && next->len <= KV_KEY_MAX) {
		if (scan_next_id == 0)
			scan_next_id = SCAN_CURSOR_BASE | (n->cfg.id & 0xfffff) << 44;
		uint64_t id = scan_next_id++;
		struct scan_cursor *sc = &scan_cursors[id % SCAN_CURSORS];
		sc->id = id;
		sc->group = group;
		sc->key_len = (uint16_t)next->len;
		memcpy(sc->key, next->data, next->len);
		return id;
	}
	return group < n->cfg.groups ? group + 1 : 0;
}

/* SCAN's MATCH: Redis's glob (*, ?, [...], \) as fnmatch(3) reads it; a key holding a NUL
 * byte is matched only up to it. */
static bool scan_match(const char *pattern, const uint8_t *k, size_t kl)
{
	char key[KV_KEY_MAX + 1];
	if (pattern == NULL)
		return true;
	memcpy(key, k, kl);
	key[kl] = '\0';
	return fnmatch(pattern, key, 0) == 0;
}

static bool starts_with_word(const char *s, const char *w)
{
	size_t l = strlen(w);
	return strncmp(s, w, l) == 0 && s[l] == ' ';
}

/* The engine's answer (node_reply_fn): queued for another attempt (retryable), or rendered
 * as Redis would and ctx freed. */
static void resp_answer(void *client, const Ringraft__Kv__Response *resp)
{
	struct ctx *ctx = client;
	struct node *n = ctx->n;
	if (retryable(n, ctx, resp)) {
		if (resp->code == RINGRAFT__KV__CODE__TIMEOUT ||
		    resp->code == RINGRAFT__KV__CODE__LEADER_LOST)
			ctx->maybe = true;
		ctx->retry_at_ms = node_now_ms(n) + RETRY_MS;
		if (retry_tail)
			retry_tail->next = ctx;
		else
			retry_head = ctx;
		retry_tail = ctx;
		return;
	}
	struct net_resp_buf b = {0};
	const char *err = resp->error && *resp->error ? resp->error : "no detail";
	int p = ctx->proto;
	bool refused = resp->code == RINGRAFT__KV__CODE__NOT_LEADER ||
		       resp->code == RINGRAFT__KV__CODE__UNAVAILABLE ||
		       resp->code == RINGRAFT__KV__CODE__WRONG_SHARD ||
		       resp->code == RINGRAFT__KV__CODE__BUSY ||
		       resp->code == RINGRAFT__KV__CODE__MOVING;
	if (refused && ctx->write && ctx->maybe) {
		/* This attempt was not applied, but an earlier one (same session and sequence
		 * number) may have been: the write's outcome is unknown, not "not applied". */
		net_resp_put_errorf(&b,
				    "ERR outcome unknown: the write may or may not have been applied "
				    "(an earlier attempt's outcome is unknown, then %s)",
				    err);
		net_resp_conn_reply(ctx->c, ctx->slot, &b);
		node_resp_ctx_free(ctx);
		return;
	}
	switch (resp->code) {
	case RINGRAFT__KV__CODE__OK:
	case RINGRAFT__KV__CODE__NOT_FOUND:
	case RINGRAFT__KV__CODE__CAS_MISMATCH: {
		bool ok = resp->code == RINGRAFT__KV__CODE__OK;
		switch (ctx->kind) {
		case K_GET:
			if (ok && resp->found)
				net_resp_put_bulk(&b, resp->value.data, resp->value.len);
			else
				net_resp_put_null(&b, p);
			break;
		case K_SET:
			if (ok)
				net_resp_put_simple(&b, "OK");
			else
				net_resp_put_null(&b, p);
			break;
		case K_SET_GET:
			if (resp->found &&
			    (ok || ctx->nx || resp->code == RINGRAFT__KV__CODE__NOT_FOUND))
				net_resp_put_bulk(&b, resp->value.data, resp->value.len);
			else
				net_resp_put_null(&b, p);
			break;
		case K_NUMBER:
			net_resp_put_int(&b, resp->number);
			break;
		case K_EXISTS: {
			int64_t k = 0;
			for (size_t i = 0; i < resp->n_kvs; i++)
				k += resp->kvs[i]->found;
			net_resp_put_int(&b, k);
			break;
		}
		case K_MGET:
			net_resp_put_array(&b, resp->n_kvs);
			for (size_t i = 0; i < resp->n_kvs; i++)
				if (resp->kvs[i]->found)
					net_resp_put_bulk(&b, resp->kvs[i]->value.data,
							  resp->kvs[i]->value.len);
				else
					net_resp_put_null(&b, p);
			break;
		case K_OK:
			net_resp_put_simple(&b, "OK");
			break;
		case K_CAS:
		case K_FLAG:
			net_resp_put_int(&b, ok ? 1 : 0);
			break;
		case K_TTL_MS:
			net_resp_put_int(&b, resp->number);
			break;
		case K_TTL_S:
			net_resp_put_int(&b, resp->number < 0 ? resp->number
							      : (resp->number + 500) / 1000);
			break;
		case K_SCAN: {
			size_t k = 0;
			for (size_t i = 0; i < resp->n_kvs; i++)
				k += scan_match(ctx->match, resp->kvs[i]->key.data,
						resp->kvs[i]->key.len);
			char cur[24];
			snprintf(cur, sizeof cur, "%" PRIu64,
				 scan_cursor_after(n, ctx->group, &resp->next_key));
			net_resp_put_array(&b, 2);
			net_resp_put_str(&b, cur);
			net_resp_put_array(&b, k);
			for (size_t i = 0; i < resp->n_kvs; i++)
				if (scan_match(ctx->match, resp->kvs[i]->key.data,
					       resp->kvs[i]->key.len))
					net_resp_put_bulk(&b, resp->kvs[i]->key.data,
							  resp->kvs[i]->key.len);
			break;
		}
		}
		break;
	}
	case RINGRAFT__KV__CODE__NOT_LEADER:
		if (resp->leader_hint == 0)
			net_resp_put_errorf(&b, "CLUSTERDOWN %s: not applied, try again", err);
		else
			net_resp_put_errorf(&b, "TRYAGAIN %s: not applied, try again", err);
		break;
	case RINGRAFT__KV__CODE__UNAVAILABLE:
	case RINGRAFT__KV__CODE__WRONG_SHARD:
	case RINGRAFT__KV__CODE__MOVING: /* Redis Cluster's answer during a slot migration */
		net_resp_put_errorf(&b, "TRYAGAIN %s: not applied, try again", err);
		break;
	case RINGRAFT__KV__CODE__BUSY: /* the message says "busy: ..., not applied" */
		net_resp_put_errorf(&b, "TRYAGAIN %s", err);
		break;
	case RINGRAFT__KV__CODE__TIMEOUT:
	case RINGRAFT__KV__CODE__LEADER_LOST:
		if (ctx->write)
			net_resp_put_errorf(&b,
					    "ERR outcome unknown: the write may or may not have "
					    "been applied (%s)",
					    err);
		else
			net_resp_put_errorf(&b, "TRYAGAIN %s", err);
		break;
	case RINGRAFT__KV__CODE__INVALID:
	case RINGRAFT__KV__CODE__TOO_LARGE:
		if (starts_with_word(err, "CROSSSLOT"))
			net_resp_put_error(&b, err);
		else
			net_resp_put_errorf(&b, "ERR %s", err);
		break;
	default:
		net_resp_put_errorf(&b, "ERR internal error (%s)%s", err,
				    ctx->write ? ": outcome unknown" : "");
		break;
	}
	net_resp_conn_reply(ctx->c, ctx->slot, &b);
	node_resp_ctx_free(ctx);
}

/* ------------------------------------------------------------------------------ keys */

static void cmd_get(struct cmd *x)
{
	if (!key_ok(x, &x->a[1]))
		return;
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__GET;
	rq.key = bin(&x->a[1]);
	submit(x, &rq, K_GET, false);
}

/* An expiry argument: a positive integer of seconds (EX, EXAT) or ms (PX, PXAT), in ms. */
static bool expiry_arg(struct cmd *x, const struct net_resp_val *v, bool seconds, const char *name,
		       uint64_t *ms)
{
	int64_t t;
	if (!arg_i64(v, &t)) {
		reply_error(x, "ERR value is not an integer or out of range");
		return false;
	}
	if (t <= 0 || (seconds && t > INT64_MAX / 1000)) {
		net_resp_put_errorf(&x->out, "ERR invalid expire time in '%s' command", name);
		reply(x);
		return false;
	}
	*ms = (uint64_t)t * (seconds ? 1000 : 1);
	return true;
}

static void cmd_set(struct cmd *x)
{
	bool nx = false, xx = false, get = false, keep = false, have_expiry = false;
	uint64_t ms = 0;
	bool absolute = false;
	for (size_t i = 3; i < x->argc; i++) {
		const struct net_resp_val *o = &x->a[i];
		bool ex = is(o, "EX"), px = is(o, "PX"), exat = is(o, "EXAT"), pxat = is(o, "PXAT");
		if (is(o, "NX") && !xx) {
			nx = true;
		} else if (is(o, "XX") && !nx) {
			xx = true;
		} else if (is(o, "GET")) {
			get = true;
		} else if (is(o, "KEEPTTL") && !have_expiry) {
			keep = have_expiry = true;
		} else if ((ex || px || exat || pxat) && !have_expiry && i + 1 < x->argc) {
			if (!expiry_arg(x, &x->a[++i], ex || exat, "set", &ms))
				return;
			absolute = exat || pxat;
			have_expiry = true;
		} else {
			reply_error(x, "ERR syntax error");
			return;
		}
	}
	if (!key_ok(x, &x->a[1]) || !value_ok(x, &x->a[2]))
		return;
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.key = bin(&x->a[1]);
	rq.value = bin(&x->a[2]);
	if (nx) {
		rq.op = RINGRAFT__KV__OP__CAS;
		rq.expect_absent = true;
	} else {
		rq.op = RINGRAFT__KV__OP__PUT;
		rq.if_present = xx;
		rq.return_old = get;
	}
	/* relative times are made absolute by the group leader as it proposes */
	rq.keep_ttl = keep;
	if (absolute)
		rq.expire_at_ms = ms;
	else
		rq.ttl_ms = ms;
	submit(x, &rq, get ? K_SET_GET : K_SET, nx);
}

/* EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT key time: Redis's rule that a time not in the future
 * deletes the key is kept by an expiry at once (the epoch's first ms). */
static void expire_cmd(struct cmd *x, bool seconds, bool absolute)
{
	if (x->argc > 3) {
		reply_error(x, "ERR expire options (NX, XX, GT, LT) are not supported by ringraft");
		return;
	}
	int64_t t;
	if (!arg_i64(&x->a[2], &t)) {
		reply_error(x, "ERR value is not an integer or out of range");
		return;
	}
	if (seconds && (t > INT64_MAX / 1000 || t < INT64_MIN / 1000)) {
		reply_error(x, "ERR invalid expire time in 'expire' command");
		return;
	}
	if (!key_ok(x, &x->a[1]))
		return;
	int64_t ms = seconds ? t * 1000 : t;
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__EXPIRE;
	rq.key = bin(&x->a[1]);
	if (ms <= 0)
		rq.expire_at_ms = 1;
	else if (absolute)
		rq.expire_at_ms = (uint64_t)ms;
	else
		rq.ttl_ms = (uint64_t)ms;
	submit(x, &rq, K_FLAG, false);
}

static void cmd_expire(struct cmd *x)
{
	expire_cmd(x, true, false);
}

static void cmd_pexpire(struct cmd *x)
{
	expire_cmd(x, false, false);
}

static void cmd_expireat(struct cmd *x)
{
	expire_cmd(x, true, true);
}

static void cmd_pexpireat(struct cmd *x)
{
	expire_cmd(x, false, true);
}

static void key_only(struct cmd *x, Ringraft__Kv__Op op, enum kind kind)
{
	if (!key_ok(x, &x->a[1]))
		return;
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = op;
	rq.key = bin(&x->a[1]);
	submit(x, &rq, kind, false);
}

static void cmd_persist(struct cmd *x)
{
	key_only(x, RINGRAFT__KV__OP__PERSIST, K_FLAG);
}

static void cmd_ttl(struct cmd *x)
{
	key_only(x, RINGRAFT__KV__OP__TTL, K_TTL_S);
}

static void cmd_pttl(struct cmd *x)
{
	key_only(x, RINGRAFT__KV__OP__TTL, K_TTL_MS);
}

/* SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]: one page of one group per call, in
 * key order, from the group's leader (or this replica after READONLY); COUNT keys are looked
 * at (default 10), MATCH filters them here, so a page may be empty while the cursor is not 0,
 * as in Redis. Every value is a string: TYPE other than string finds nothing. */
static void cmd_scan(struct cmd *x)
{
	const struct net_resp_val *cv = &x->a[1];
	uint64_t cursor = 0;
	bool ok = cv->len > 0 && cv->len <= 20;
	for (size_t i = 0; ok && i < cv->len; i++) {
		unsigned d = (unsigned)(cv->p[i] - '0');
		ok = d <= 9 && cursor <= (UINT64_MAX - d) / 10;
		cursor = cursor * 10 + d;
	}
	if (!ok) {
		reply_error(x, "ERR invalid cursor");
		return;
	}
	int64_t count = 10;
	bool strings = true;
	const struct net_resp_val *match = NULL;
	for (size_t i = 2; i < x->argc; i += 2) {
		if (i + 1 >= x->argc) {
			reply_error(x, "ERR syntax error");
			return;
		}
		const struct net_resp_val *v = &x->a[i + 1];
		if (is(&x->a[i], "MATCH")) {
			match = v;
		} else if (is(&x->a[i], "COUNT")) {
			if (!arg_i64(v, &count)) {
				reply_error(x, "ERR value is not an integer or out of range");
				return;
			}
			if (count < 1) {
				reply_error(x, "ERR syntax error");
				return;
			}
		} else if (is(&x->a[i], "TYPE")) {
			strings = is(v, "string");
		} else {
			reply_error(x, "ERR syntax error");
			return;
		}
	}
	uint32_t group;
	const uint8_t *start = NULL;
	size_t start_len = 0;
	if (cursor < SCAN_CURSOR_BASE) {
		group = cursor == 0 ? 1 : (uint32_t)cursor;
		if (cursor > x->n->cfg.groups) {
			reply_error(x, "ERR invalid cursor");
			return;
		}
	} else {
		struct scan_cursor *sc = &scan_cursors[cursor % SCAN_CURSORS];
		if (sc->id != cursor) {
			reply_error(x, "ERR invalid cursor (expired: start the scan again from 0)");
			return;
		}
		group = sc->group;
		start = sc->key;
		start_len = sc->key_len;
	}
	if (!strings) {
		/* nothing but strings here: an empty scan, done at once */
		net_resp_put_array(&x->out, 2);
		net_resp_put_str(&x->out, "0");
		net_resp_put_array(&x->out, 0);
		reply(x);
		return;
	}
	if (match != NULL) {
		if ((x->match = malloc(match->len + 1)) == NULL) {
			reply_error(x, "ERR out of memory");
			return;
		}
		memcpy(x->match, match->p, match->len);
		x->match[match->len] = '\0';
	}
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__SCAN;
	rq.group = group;
	rq.key = (ProtobufCBinaryData){start_len, (uint8_t *)start};
	rq.limit = count > SCAN_COUNT_MAX ? SCAN_COUNT_MAX : (uint32_t)count;
	submit(x, &rq, K_SCAN, false);
	free(x->match);
	x->match = NULL;
}

static void cmd_getdel(struct cmd *x)
{
	if (!key_ok(x, &x->a[1]))
		return;
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__DELETE;
	rq.key = bin(&x->a[1]);
	rq.return_old = true;
	submit(x, &rq, K_SET_GET, false);
}

static void cmd_cas(struct cmd *x)
{
	if (!key_ok(x, &x->a[1]) || !value_ok(x, &x->a[2]) || !value_ok(x, &x->a[3]))
		return;
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__CAS;
	rq.key = bin(&x->a[1]);
	rq.expected = bin(&x->a[2]);
	rq.value = bin(&x->a[3]);
	submit(x, &rq, K_CAS, false);
}

static void incr_by(struct cmd *x, int64_t d)
{
	if (!key_ok(x, &x->a[1]))
		return;
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__INCRBY;
	rq.key = bin(&x->a[1]);
	rq.delta = d;
	submit(x, &rq, K_NUMBER, false);
}

static void cmd_incr(struct cmd *x)
{
	incr_by(x, 1);
}

static void cmd_decr(struct cmd *x)
{
	incr_by(x, -1);
}

static void cmd_incrby(struct cmd *x)
{
	int64_t d;
	if (!arg_i64(&x->a[2], &d)) {
		reply_error(x, "ERR value is not an integer or out of range");
		return;
	}
	incr_by(x, d);
}

static void cmd_decrby(struct cmd *x)
{
	int64_t d;
	if (!arg_i64(&x->a[2], &d)) {
		reply_error(x, "ERR value is not an integer or out of range");
		return;
	}
	if (d == INT64_MIN) {
		reply_error(x, "ERR decrement would overflow");
		return;
	}
	incr_by(x, -d);
}

/* MGET, EXISTS, DEL: keys a[1..argc), one group. */
static void keys_request(struct cmd *x, Ringraft__Kv__Op op, enum kind kind)
{
	if (!same_group(x, 1, 1))
		return;
	size_t k = x->argc - 1;
	ProtobufCBinaryData *keys = malloc(k * sizeof *keys);
	if (keys == NULL) {
		reply_error(x, "ERR out of memory");
		return;
	}
	for (size_t i = 0; i < k; i++)
		keys[i] = bin(&x->a[i + 1]);
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = op;
	rq.keys = keys;
	rq.n_keys = k;
	submit(x, &rq, kind, false);
	free(keys);
}

static void cmd_mget(struct cmd *x)
{
	keys_request(x, RINGRAFT__KV__OP__MGET, K_MGET);
}

static void cmd_exists(struct cmd *x)
{
	keys_request(x, RINGRAFT__KV__OP__MGET, K_EXISTS);
}

static void cmd_del(struct cmd *x)
{
	keys_request(x, RINGRAFT__KV__OP__MDEL, K_NUMBER);
}

static void cmd_mset(struct cmd *x)
{
	if (x->argc % 2 != 1) {
		arity_error(x, "mset");
		return;
	}
	if (!same_group(x, 1, 2))
		return;
	for (size_t i = 2; i < x->argc; i += 2)
		if (!value_ok(x, &x->a[i]))
			return;
	size_t k = (x->argc - 1) / 2;
	Ringraft__Kv__KeyValue *kvs = calloc(k, sizeof *kvs);
	Ringraft__Kv__KeyValue **ptrs = calloc(k, sizeof *ptrs);
	if (kvs == NULL || ptrs == NULL) {
		free(kvs);
		free(ptrs);
		reply_error(x, "ERR out of memory");
		return;
	}
	for (size_t i = 0; i < k; i++) {
		ringraft__kv__key_value__init(&kvs[i]);
		kvs[i].key = bin(&x->a[1 + 2 * i]);
		kvs[i].value = bin(&x->a[2 + 2 * i]);
		ptrs[i] = &kvs[i];
	}
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__MSET;
	rq.kvs = ptrs;
	rq.n_kvs = k;
	submit(x, &rq, K_OK, false);
	free(kvs);
	free(ptrs);
}

/* ------------------------------------------------------------------------------ server */

static void cmd_ping(struct cmd *x)
{
	if (x->argc > 2) {
		arity_error(x, "ping");
		return;
	}
	if (x->argc == 2)
		net_resp_put_bulk(&x->out, x->a[1].p, x->a[1].len);
	else
		net_resp_put_simple(&x->out, "PONG");
	reply(x);
}

static void cmd_echo(struct cmd *x)
{
	net_resp_put_bulk(&x->out, x->a[1].p, x->a[1].len);
	reply(x);
}

static void cmd_quit(struct cmd *x)
{
	reply_ok(x);
	net_resp_conn_quit(x->c);
}

static void cmd_select(struct cmd *x)
{
	int64_t db;
	if (!arg_i64(&x->a[1], &db))
		reply_error(x, "ERR value is not an integer or out of range");
	else if (db != 0)
		reply_error(x, "ERR DB index is out of range");
	else
		reply_ok(x);
}

static void cmd_readonly(struct cmd *x)
{
	x->cl->readonly = true;
	reply_ok(x);
}

static void cmd_readwrite(struct cmd *x)
{
	x->cl->readonly = false;
	reply_ok(x);
}

static bool set_name(struct cmd *x, const struct net_resp_val *v)
{
	for (size_t i = 0; i < v->len; i++)
		if (v->p[i] < '!' || v->p[i] > '~') {
			reply_error(x,
				    "ERR Client names cannot contain spaces, newlines or special "
				    "characters.");
			return false;
		}
	if (v->len > NAME_MAX_) {
		reply_error(x, "ERR client name longer than 256 bytes");
		return false;
	}
	memcpy(x->cl->name, v->p, v->len);
	x->cl->name[v->len] = '\0';
	return true;
}

/* ------------------------------------------------------------------------------ AUTH */

/* An AUTH (or HELLO ... AUTH) whose password is being checked (shell.c, off the loop). */
struct auth_ctx {
	struct net_resp_conn *c;
	struct client *cl;
	uint64_t slot;
	int hello_proto; /* HELLO's protocol, 0 for AUTH */
};

static void put_hello(struct net_resp_buf *b, struct net_resp_conn *c, int p);

static void auth_done_cb(void *arg, int role)
{
	struct auth_ctx *a = arg;
	if (!net_resp_conn_closed(a->c)) {
		struct net_resp_buf b = {0};
		a->cl->auth_pending = false;
		if (role == 0) {
			net_resp_put_error(&b, "WRONGPASS invalid username-password pair or user "
					       "is disabled.");
		} else {
			a->cl->role = role;
			if (a->hello_proto != 0) {
				a->cl->proto = a->hello_proto;
				put_hello(&b, a->c, a->hello_proto);
			} else {
				net_resp_put_simple(&b, "OK");
			}
		}
		net_resp_conn_reply(a->c, a->slot, &b);
	}
	net_resp_conn_unref(a->c);
	free(a);
}

/* Starts checking user's password; the command is answered by auth_done_cb. */
static void start_auth(struct cmd *x, const struct net_resp_val *user,
		       const struct net_resp_val *pw, int hello_proto)
{
	char name[KV_USER_NAME_MAX + 1];
	if (user->len > KV_USER_NAME_MAX || !kv_user_name_ok((const char *)user->p, user->len) ||
	    pw->len == 0 || pw->len > KV_USER_PASSWORD_MAX) {
		reply_error(x, "WRONGPASS invalid username-password pair or user is disabled.");
		return;
	}
	memcpy(name, user->p, user->len);
	name[user->len] = '\0';
	struct auth_ctx *a = calloc(1, sizeof *a);
	if (a == NULL) {
		reply_error(x, "ERR out of memory");
		return;
	}
	a->c = x->c;
	a->cl = x->cl;
	a->slot = x->slot;
	a->hello_proto = hello_proto;
	if (node_shell_password_check(x->s, name, pw->p, pw->len, auth_done_cb, a) != 0) {
		free(a);
		reply_error(x, "TRYAGAIN too many logins being checked: not applied, try again");
		return;
	}
	net_resp_conn_ref(x->c);
	x->cl->auth_pending = true;
}

static void cmd_auth(struct cmd *x)
{
	if (x->argc == 2) { /* AUTH password: Redis's "default" user, which ringraft has not */
		reply_error(x, "WRONGPASS invalid username-password pair or user is disabled.");
		return;
	}
	if (x->argc != 3) {
		arity_error(x, "auth");
		return;
	}
	start_auth(x, &x->a[1], &x->a[2], 0);
}

static void cmd_hello(struct cmd *x)
{
	int64_t proto = x->cl->proto;
	size_t i = 1;
	if (x->argc >= 2) {
		if (!arg_i64(&x->a[1], &proto)) {
			reply_error(x, "ERR Protocol version is not an integer or out of range");
			return;
		}
		if (proto != 2 && proto != 3) {
			reply_error(x, "NOPROTO unsupported protocol version");
			return;
		}
		i = 2;
	}
	if (x->cl->role == 0 && node_auth_enabled(x->n)) { /* as Redis answers it */
		bool auth = false;
		for (size_t j = i; j < x->argc; j++)
			auth = auth || is(&x->a[j], "AUTH");
		if (!auth) {
			reply_error(x,
				    "NOAUTH HELLO must be called with the client already "
				    "authenticated, otherwise the HELLO <proto> AUTH <user> <pass> "
				    "option can be used to authenticate the client and select the "
				    "RESP protocol version at the same time");
			return;
		}
	}
	for (; i < x->argc; i++) {
		if (is(&x->a[i], "SETNAME") && i + 1 < x->argc) {
			if (!set_name(x, &x->a[++i]))
				return;
		} else if (is(&x->a[i], "AUTH") && i + 2 < x->argc) {
			/* checked first; the answer (the map below, or the refusal) comes then */
			start_auth(x, &x->a[i + 1], &x->a[i + 2], (int)proto);
			return;
		} else {
			net_resp_put_errorf(&x->out, "ERR Syntax error in HELLO option '%.*s'",
					    (int)(x->a[i].len > 64 ? 64 : x->a[i].len), x->a[i].p);
			reply(x);
			return;
		}
	}
	x->cl->proto = (int)proto;
	put_hello(&x->out, x->c, x->cl->proto);
	reply(x);
}

static void put_hello(struct net_resp_buf *b, struct net_resp_conn *c, int p)
{
	net_resp_put_map(b, 7, p);
	net_resp_put_str(b, "server");
	net_resp_put_str(b, "redis");
	net_resp_put_str(b, "version");
	net_resp_put_str(b, RESP_VERSION);
	net_resp_put_str(b, "proto");
	net_resp_put_int(b, p);
	net_resp_put_str(b, "id");
	net_resp_put_int(b, (int64_t)net_resp_conn_id(c));
	net_resp_put_str(b, "mode");
	net_resp_put_str(b, "standalone"); /* any node takes any key: no cluster client needed */
	net_resp_put_str(b, "role");
	net_resp_put_str(b, "master");
	net_resp_put_str(b, "modules");
	net_resp_put_array(b, 0);
}

static void cmd_command(struct cmd *x)
{
	/* Enough for redis-cli (it asks COMMAND DOCS for hints): no command table. */
	if (x->argc >= 2 && is(&x->a[1], "COUNT")) {
		net_resp_put_int(&x->out, 0);
	} else if (x->argc >= 2 && is(&x->a[1], "INFO")) {
		net_resp_put_array(&x->out, x->argc - 2);
		for (size_t i = 2; i < x->argc; i++)
			net_resp_put_null_array(&x->out, x->cl->proto);
	} else if (x->argc >= 2 && is(&x->a[1], "DOCS")) {
		net_resp_put_map(&x->out, 0, x->cl->proto);
	} else {
		net_resp_put_array(&x->out, 0);
	}
	reply(x);
}

static void cmd_client(struct cmd *x)
{
	const struct net_resp_val *sub = &x->a[1];
	if (is(sub, "ID") && x->argc == 2) {
		net_resp_put_int(&x->out, (int64_t)net_resp_conn_id(x->c));
		reply(x);
	} else if (is(sub, "SETNAME") && x->argc == 3) {
		if (set_name(x, &x->a[2]))
			reply_ok(x);
	} else if (is(sub, "GETNAME") && x->argc == 2) {
		if (x->cl->name[0])
			net_resp_put_str(&x->out, x->cl->name);
		else
			net_resp_put_null(&x->out, x->cl->proto);
		reply(x);
	} else if (is(sub, "SETINFO") && x->argc == 4) {
		reply_ok(x);
	} else {
		net_resp_put_errorf(&x->out,
				    "ERR unknown subcommand or wrong number of arguments "
				    "for '%.*s'. Try CLIENT HELP.",
				    (int)(sub->len > 64 ? 64 : sub->len), sub->p);
		reply(x);
	}
}

static void cmd_config(struct cmd *x)
{
	static const char *const params[][2] = {
		{"save", ""},       {"appendonly", "no"},      {"databases", "1"},
		{"maxmemory", "0"}, {"cluster-enabled", "no"},
	};
	if (!is(&x->a[1], "GET") || x->argc < 3) {
		reply_error(x,
			    "ERR CONFIG: only CONFIG GET parameter [parameter ...] is supported");
		return;
	}
	bool hit[sizeof params / sizeof params[0]] = {false};
	size_t n = 0;
	for (size_t i = 2; i < x->argc; i++) {
		char pat[128];
		size_t l = x->a[i].len < sizeof pat - 1 ? x->a[i].len : sizeof pat - 1;
		memcpy(pat, x->a[i].p, l);
		pat[l] = '\0';
		for (size_t k = 0; k < sizeof params / sizeof params[0]; k++)
			if (!hit[k] && fnmatch(pat, params[k][0], FNM_CASEFOLD) == 0) {
				hit[k] = true;
				n++;
			}
	}
	net_resp_put_map(&x->out, n, x->cl->proto);
	for (size_t k = 0; k < sizeof params / sizeof params[0]; k++)
		if (hit[k]) {
			net_resp_put_str(&x->out, params[k][0]);
			net_resp_put_str(&x->out, params[k][1]);
		}
	reply(x);
}

/* Keys stored in every group hosted here (expired ones not yet reaped included), and how
 * many of them carry an expiry. */
static uint64_t local_keys(struct node *n, uint64_t *expires)
{
	uint64_t keys = 0, e = 0;
	for (uint32_t i = 0; i < n->cfg.groups; i++) {
		struct kv_group_meta m;
		if (n->groups[i].raft != NULL && kv_meta(n->kv, n->groups[i].id, &m) == KV_OK) {
			keys += m.keys;
			e += m.expires;
		}
	}
	if (expires)
		*expires = e;
	return keys;
}

static uint64_t sum(const uint64_t *v, size_t n)
{
	uint64_t t = 0;
	for (size_t i = 0; i < n; i++)
		t += v[i];
	return t;
}

static void cmd_dbsize(struct cmd *x)
{
	/* This replica's count (serializable): every group the node hosts. */
	net_resp_put_int(&x->out, (int64_t)local_keys(x->n, NULL));
	reply(x);
}

static bool want(const struct cmd *x, const char *section)
{
	if (x->argc < 2)
		return true;
	for (size_t i = 1; i < x->argc; i++)
		if (is(&x->a[i], section) || is(&x->a[i], "all") || is(&x->a[i], "everything") ||
		    is(&x->a[i], "default"))
			return true;
	return false;
}

static void cmd_info(struct cmd *x)
{
	struct node *n = x->n;
	size_t cap = 4096 + (size_t)n->cfg.groups * 160, len = 0;
	char *t = malloc(cap);
	if (t == NULL) {
		reply_error(x, "ERR out of memory");
		return;
	}
#define ADD(...)                                                                                   \
	do {                                                                                       \
		if (len < cap)                                                                     \
			len += (size_t)snprintf(t + len, cap - len, __VA_ARGS__);                  \
	} while (0)
	if (want(x, "server")) {
		const char *port = strrchr(n->cfg.resp_addr, ':');
		ADD("# Server\r\nredis_version:%s\r\nredis_mode:standalone\r\n"
		    "ringraft_node_id:%" PRIu64 "\r\nprocess_id:%d\r\ntcp_port:%s\r\n"
		    "uptime_in_seconds:%" PRIu64 "\r\nclient_addr:%s\r\n\r\n",
		    RESP_VERSION, n->cfg.id, (int)getpid(), port ? port + 1 : "",
		    (node_now_ms(n) - n->start_ms) / 1000, n->cfg.client_addr);
	}
	if (want(x, "clients"))
		ADD("# Clients\r\nconnected_clients:%zu\r\nprotobuf_clients:%zu\r\n\r\n",
		    net_resp_server_connections(x->s->resp_server),
		    net_server_connections(x->s->server));
	if (want(x, "raft")) {
		uint32_t led = 0;
		for (uint32_t i = 0; i < n->cfg.groups; i++)
			if (n->groups[i].raft != NULL && raft_leader_of(n->groups[i].raft) != 0)
				led++;
		ADD("# Raft\r\nnode_id:%" PRIu64 "\r\ngroups:%u\r\ngroups_with_leader:%u\r\n",
		    n->cfg.id, n->cfg.groups, led);
		for (uint32_t i = 0; i < n->cfg.groups; i++) {
			struct raft *rf = n->groups[i].raft;
			if (rf == NULL) {
				ADD("group%u:hosted=0\r\n", i + 1);
				continue;
			}
			ADD("group%u:role=%s,leader=%" PRIu64 ",term=%" PRIu64 ",commit=%" PRIu64
			    ",applied=%" PRIu64 ",recovering=%d\r\n",
			    i + 1, raft_role_name(raft_role_of(rf)), (uint64_t)raft_leader_of(rf),
			    (uint64_t)raft_term_of(rf), (uint64_t)raft_commit_of(rf),
			    (uint64_t)raft_applied_of(rf), raft_recovering(rf) ? 1 : 0);
		}
		ADD("\r\n");
	}
	if (want(x, "wal")) {
		struct wal_stats ws;
		const struct node_metrics *m = &n->metrics;
		wal_stats_get(n->wal, &ws);
		ADD("# WAL\r\nwal_bytes_on_disk:%" PRIu64 "\r\nwal_segments:%" PRIu64
		    "\r\nwal_batches_written:%" PRIu64 "\r\nwal_records_written:%" PRIu64
		    "\r\nwal_fsyncs:%" PRIu64 "\r\nwal_fsync_seconds_sum:%.6f"
		    "\r\nwal_batch_bytes_sum:%" PRIu64 "\r\nlmdb_bytes:%" PRIu64 "\r\n\r\n",
		    ws.bytes_on_disk, ws.segments, ws.batches_written, ws.records_written,
		    ws.fsyncs, (double)m->wal_fsync_ns.sum / 1e9, m->wal_batch_bytes.sum,
		    kv_size_bytes(n->kv));
	}
	if (want(x, "stats")) {
		const struct node_metrics *m = &n->metrics;
		uint64_t answered = 0, ok = 0;
		for (size_t op = 0; op < NODE_METRICS_OPS; op++) {
			answered += sum(m->requests[op], NODE_METRICS_RESULTS);
			ok += m->requests[op][0];
		}
		ADD("# Stats\r\ntotal_commands_processed:%" PRIu64 "\r\ncommands_ok:%" PRIu64
		    "\r\ncommands_failed:%" PRIu64 "\r\nproposals:%" PRIu64
		    "\r\nproposals_refused:%" PRIu64 "\r\nforwarded_out:%" PRIu64
		    "\r\nforwarded_in:%" PRIu64 "\r\napply_entries:%" PRIu64
		    "\r\nsnapshots_sent:%" PRIu64 "\r\nsnapshots_received:%" PRIu64 "\r\n\r\n",
		    answered, ok, answered - ok, m->proposals, m->proposals_refused,
		    m->forwarded_out, m->forwarded_in, m->apply_entries.sum, m->snapshots_sent,
		    m->snapshots_received);
	}
	if (want(x, "keyspace")) {
		uint64_t expires, keys = local_keys(n, &expires);
		ADD("# Keyspace\r\ndb0:keys=%" PRIu64 ",expires=%" PRIu64 ",avg_ttl=0\r\n", keys,
		    expires);
	}
#undef ADD
	if (len >= cap)
		len = cap - 1;
	net_resp_put_verbatim(&x->out, t, len, x->cl->proto);
	free(t);
	reply(x);
}

/* ------------------------------------------------------------------------------ dispatch */

static const struct command {
	const char *name;
	int arity; /* Redis's convention: n exactly, -n at least n (the name included) */
	void (*fn)(struct cmd *x);
	char rw; /* 'r' reads data: waits for this connection's earlier writes; 'w' writes */
} commands[] = {
	{"get", 2, cmd_get, 'r'},
	{"set", -3, cmd_set, 'w'},
	{"getdel", 2, cmd_getdel, 'w'},
	{"del", -2, cmd_del, 'w'},
	{"exists", -2, cmd_exists, 'r'},
	{"mget", -2, cmd_mget, 'r'},
	{"mset", -3, cmd_mset, 'w'},
	{"incr", 2, cmd_incr, 'w'},
	{"decr", 2, cmd_decr, 'w'},
	{"incrby", 3, cmd_incrby, 'w'},
	{"decrby", 3, cmd_decrby, 'w'},
	{"cas", 4, cmd_cas, 'w'},
	{"ping", -1, cmd_ping, 0},
	{"echo", 2, cmd_echo, 0},
	{"hello", -1, cmd_hello, 0},
	{"auth", -2, cmd_auth, 0},
	{"quit", -1, cmd_quit, 0},
	{"select", 2, cmd_select, 0},
	{"command", -1, cmd_command, 0},
	{"client", -2, cmd_client, 0},
	{"config", -2, cmd_config, 0},
	{"info", -1, cmd_info, 0},
	{"dbsize", 1, cmd_dbsize, 'r'},
	{"readonly", 1, cmd_readonly, 0},
	{"readwrite", 1, cmd_readwrite, 0},
	{"expire", -3, cmd_expire, 'w'},
	{"pexpire", -3, cmd_pexpire, 'w'},
	{"expireat", -3, cmd_expireat, 'w'},
	{"pexpireat", -3, cmd_pexpireat, 'w'},
	{"persist", 2, cmd_persist, 'w'},
	{"ttl", 2, cmd_ttl, 'r'},
	{"pttl", 2, cmd_pttl, 'r'},
	{"scan", -2, cmd_scan, 'r'},
};

/* Redis's words for an unknown command: the name and the first arguments, 128 bytes of each
 * at most, each argument quoted and followed by a space. */
static void unknown(struct cmd *x)
{
	char args[512];
	size_t l = 0;
	args[0] = '\0';
	for (size_t i = 1; i < x->argc && l < 128; i++) {
		int room = 128 - (int)l;
		int w = (int)(x->a[i].len < (size_t)room ? x->a[i].len : (size_t)room);
		l += (size_t)snprintf(args + l, sizeof args - l, "'%.*s' ", w,
				      (const char *)x->a[i].p);
	}
	int nl = (int)(x->a[0].len > 128 ? 128 : x->a[0].len);
	net_resp_put_errorf(&x->out, "ERR unknown command '%.*s', with args beginning with: %s", nl,
			    (const char *)x->a[0].p, args);
	reply(x);
}

static int on_command(void *arg, struct net_resp_conn *c, uint64_t slot,
		      const struct net_resp_val *args, size_t argc)
{
	struct node_shell *sh = arg;
	node_shell_catch_up_ticks(sh); /* before any read: leader leases (shell.c) */
	struct node *n = sh->n;
	struct client *cl = net_resp_conn_user(c);
	if (cl == NULL) {
		if ((cl = calloc(1, sizeof *cl)) == NULL)
			return -1;
		cl->proto = 2;
		net_resp_conn_set_user(c, cl);
	}
	struct cmd x = {.s = sh, .n = n, .c = c, .cl = cl, .slot = slot, .a = args, .argc = argc};
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		const struct command *k = &commands[i];
		if (!is(&args[0], k->name))
			continue;
		if ((k->arity > 0 && argc != (size_t)k->arity) ||
		    (k->arity < 0 && argc < (size_t)-k->arity)) {
			arity_error(&x, k->name);
			return 0;
		}
		if (n->stopping) {
			reply_error(&x,
				    "TRYAGAIN node shutting down: not applied, try another node");
			return 0;
		}
		/* Client authentication (docs/SECURITY.md): while AUTH is checked the next
		 * commands wait; with authentication on, only AUTH, HELLO and QUIT run before
		 * it succeeded, and a ro user writes nothing. */
		if (cl->auth_pending)
			return NET_RESP_HOLD;
		if (node_auth_enabled(n)) {
			bool login = k->fn == cmd_auth || k->fn == cmd_hello || k->fn == cmd_quit;
			if (cl->role == 0 && !login) {
				/* a node that has not yet learned whether it is on (auth.c):
				 * not applied, as a stopping node says it */
				bool unsure = node_auth_mode(n) == NODE_AUTH_UNCONFIRMED;
				reply_error(&x, unsure ? "TRYAGAIN this node has not yet learned "
							 "whether client authentication is on: "
							 "not applied, try again"
						       : "NOAUTH Authentication required.");
				return 0;
			}
			if (cl->role == KV_USER_RO && k->rw == 'w') {
				net_resp_put_errorf(
					&x.out,
					"NOPERM User has no permissions to run the '%s' "
					"command",
					k->name);
				reply(&x);
				return 0;
			}
		}
		/* Read your pipelined writes: a ReadIndex read issued before an earlier write of
		 * this connection committed could miss it, so the read waits for its answer. */
		if (k->rw == 'r' && cl->wrote && !net_resp_conn_answered(c, cl->write_slot))
			return NET_RESP_HOLD;
		if (k->rw == 'w') {
			cl->wrote = true;
			cl->write_slot = slot;
			x.write = true;
		}
		k->fn(&x);
		return 0;
	}
	unknown(&x);
	return 0;
}

static void on_close(void *arg, struct net_resp_conn *c)
{
	(void)arg;
	free(net_resp_conn_user(c));
}

static void on_log(void *arg, int level, const char *msg)
{
	(void)arg;
	node_log(level, 0, "%s", msg);
}

/* ------------------------------------------------------------------------------ lifecycle */

int node_resp_open(struct node_shell *s)
{
	if (s->cfg.resp_addr[0] == '\0')
		return 0;
	struct net_resp_server_cbs cbs = {on_command, on_close, on_log};
	if (net_resp_server_new(&s->loop, s->cfg.resp_addr,
				(size_t)s->cfg.value_max + NET_RESP_BULK_SLACK, &cbs, s,
				&s->resp_server) != NET_OK)
		return NODE_ENOMEM;
	if (s->tls != NULL) /* TLS like the other ports (shell.c) */
		net_resp_server_set_tls(s->resp_server, s->tls, s->cfg.client_cert_auth);
	if (net_resp_server_start(s->resp_server) != NET_OK) {
		node_log(NODE_LOG_ERROR, 0, "cannot listen for RESP clients addr=%s",
			 s->cfg.resp_addr);
		return NODE_ELISTEN;
	}
	node_log(NODE_LOG_WARN, 0, "RESP port open resp_addr=%s", s->cfg.resp_addr);
	return 0;
}

void node_resp_flush(struct node_shell *s)
{
	retry_due(s);
	if (s->resp_server != NULL)
		net_resp_server_flush(s->resp_server);
}

void node_resp_stop_accepting(struct node_shell *s)
{
	if (s->resp_server != NULL)
		net_resp_server_stop_accepting(s->resp_server);
}

void node_resp_close(struct node_shell *s)
{
	if (s->resp_server != NULL)
		net_resp_server_close(s->resp_server);
}

void node_resp_free(struct node_shell *s)
{
	while (retry_head != NULL) {
		struct ctx *ctx = retry_head;
		retry_head = ctx->next;
		node_resp_ctx_free(ctx);
	}
	retry_tail = NULL;
	net_resp_server_free(s->resp_server);
	s->resp_server = NULL;
}
