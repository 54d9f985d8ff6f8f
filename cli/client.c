/* client.c — the client object, its connections, and the retry engine behind every routed call.
 *
 * One attempt goes to the group's cached leader (or, when none is known, the next endpoint in
 * turn) with redirect set; NOT_LEADER hints update the cache and are followed at once,
 * everything else that is not a final answer is retried after a jittered, doubling pause until
 * the call's deadline. A write keeps its (client_id, seq) across all attempts, so the server's
 * session table applies it at most once (Raft thesis 6.3); an attempt that may have reached a
 * leader and got no final answer makes the call indeterminate (CLI_TIMEOUT) if it never gets one.
 */
#include "cli/client_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>

void cli_options_default(struct cli_options *o)
{
	memset(o, 0, sizeof *o);
	o->timeout_ms = CLI_TIMEOUT_MS_DEFAULT;
	const char *ca = getenv("RINGRAFT_TLS_CA");
	if (ca != NULL && ca[0] != '\0') {
		o->tls_ca = ca;
		o->tls_cert = getenv("RINGRAFT_TLS_CERT");
		o->tls_key = getenv("RINGRAFT_TLS_KEY");
	}
	const char *user = getenv("RINGRAFT_USER");
	if (user != NULL && user[0] != '\0') {
		o->user = user;
		o->password = getenv("RINGRAFT_PASSWORD");
	}
}

void cli_free(void *p)
{
	free(p);
}

static uint64_t random_u64(void)
{
	uint64_t v = 0;
	while (v == 0) {
		ssize_t n = getrandom(&v, sizeof v, 0);
		if (n != (ssize_t)sizeof v) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			v ^= (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)ts.tv_sec;
		}
	}
	return v;
}

/* Parses "h:p,h:p" into c->eps: each must be a valid address. */
static int parse_endpoints(struct cli_client *c, const char *list)
{
	const char *p = list;
	while (*p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		if (len == 0 || len >= CLI_ADDR_MAX || c->n_eps == CLI_ENDPOINTS_MAX)
			return CLI_EADDR;
		char *ep = c->eps[c->n_eps];
		memcpy(ep, p, len);
		ep[len] = '\0';
		struct sockaddr_storage ss;
		if (net_parse_addr(ep, &ss) != NET_OK)
			return CLI_EADDR;
		c->n_eps++;
		p += len;
		if (*p == ',' && *++p == '\0')
			return CLI_EADDR;
	}
	return c->n_eps ? 0 : CLI_EADDR;
}

int cli_client_new(const char *endpoints, const struct cli_options *opts, struct cli_client **out)
{
	*out = NULL;
	if (endpoints == NULL)
		return CLI_EADDR;
	struct cli_client *c = calloc(1, sizeof *c);
	if (c == NULL)
		return CLI_ENOMEM;
	if (opts)
		c->o = *opts;
	else
		cli_options_default(&c->o);
	if (c->o.timeout_ms == 0)
		c->o.timeout_ms = CLI_TIMEOUT_MS_DEFAULT;
	int rc = parse_endpoints(c, endpoints);
	if (rc) {
		free(c);
		return rc;
	}
	if (c->o.tls_ca != NULL && c->o.tls_ca[0] != '\0') {
		struct net_tls_files f = {c->o.tls_cert, c->o.tls_key, c->o.tls_ca};
		c->tls = net_tls_ctx_new(&f, cli_tls_error_buf(), CLI_TLS_ERROR_MAX);
		if (c->tls == NULL) {
			free(c);
			return CLI_ETLS;
		}
	}
	/* the paths were for this call only */
	c->o.tls_ca = c->o.tls_cert = c->o.tls_key = NULL;
	cli_route_init(&c->route);
	c->client_id = c->o.client_id ? c->o.client_id : random_u64();
	c->rng = random_u64();
	c->next_ep = (size_t)(c->rng % c->n_eps);
	*out = c;
	return 0;
}

void cli_client_free(struct cli_client *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < CLI_CONNS_MAX; i++)
		cli_conn_close(c->conns[i]);
	cli_route_free(&c->route);
	SSL_CTX_free(c->tls);
	free(c);
}

void cli_set_timeout(struct cli_client *c, uint32_t timeout_ms)
{
	c->o.timeout_ms = timeout_ms ? timeout_ms : CLI_TIMEOUT_MS_DEFAULT;
}

void cli_set_serializable(struct cli_client *c, bool serializable)
{
	c->o.serializable = serializable;
}

uint64_t cli_client_id(const struct cli_client *c)
{
	return c->client_id;
}

/* ------------------------------------------------------------------------------ connections */
int cli_conn_get(struct cli_client *c, const char *addr, int64_t deadline_ms, struct cli_conn **out)
{
	size_t free_slot = CLI_CONNS_MAX;
	for (size_t i = 0; i < CLI_CONNS_MAX; i++) {
		if (c->conns[i] && strcmp(c->conns[i]->addr, addr) == 0) {
			*out = c->conns[i];
			return 0;
		}
		if (!c->conns[i] && free_slot == CLI_CONNS_MAX)
			free_slot = i;
	}
	if (free_slot == CLI_CONNS_MAX) { /* full: recycle one (addresses churn only on re-ring) */
		free_slot = (size_t)(c->rng % CLI_CONNS_MAX);
		cli_conn_close(c->conns[free_slot]);
		c->conns[free_slot] = NULL;
	}
	int rc = cli_conn_open(addr, c->tls, deadline_ms, &c->conns[free_slot]);
	*out = c->conns[free_slot];
	return rc;
}

void cli_conn_drop(struct cli_client *c, const char *addr)
{
	for (size_t i = 0; i < CLI_CONNS_MAX; i++) {
		if (c->conns[i] && strcmp(c->conns[i]->addr, addr) == 0) {
			cli_conn_close(c->conns[i]);
			c->conns[i] = NULL;
		}
	}
}

int cli_attempt(struct cli_client *c, const char *addr, Ringraft__Kv__Request *req,
		int64_t deadline_ms, Ringraft__Kv__Response **resp, bool *sent)
{
	*resp = NULL;
	*sent = false;
	struct cli_conn *conn;
	int rc = cli_conn_get(c, addr, deadline_ms, &conn);
	if (rc)
		return rc;
	req->id = ++c->next_req_id;
	/* checked once per connection (an unset string is protobuf-c's empty string) */
	if (c->o.user != NULL && (req->auth_user == NULL || req->auth_user[0] == '\0')) {
		req->auth_user = (char *)c->o.user;
		req->password.data = (uint8_t *)(c->o.password ? c->o.password : "");
		req->password.len = c->o.password ? strlen(c->o.password) : 0;
	}
	size_t len = ringraft__kv__request__get_packed_size(req);
	if (len > NET_CLIENT_FRAME_MAX)
		return CLI_TOO_LARGE;
	uint8_t stackbuf[4096];
	uint8_t *buf = len <= sizeof stackbuf ? stackbuf : malloc(len);
	if (buf == NULL)
		return CLI_ENOMEM;
	ringraft__kv__request__pack(req, buf);
	rc = cli_conn_send(conn, buf, (uint32_t)len, deadline_ms);
	if (buf != stackbuf)
		free(buf);
	if (rc) { /* the frame did not leave whole: the node cannot have acted on it */
		cli_conn_drop(c, addr);
		return rc;
	}
	*sent = true;
	for (;;) {
		const uint8_t *p;
		uint32_t n;
		rc = cli_conn_recv(conn, deadline_ms, &p, &n);
		if (rc) {
			/* A late reply would be matched by id and skipped, but a timed-out
			 * connection may also be half dead: start afresh. */
			cli_conn_drop(c, addr);
			return rc;
		}
		Ringraft__Kv__Response *r = ringraft__kv__response__unpack(NULL, n, p);
		if (r == NULL) {
			cli_conn_drop(c, addr);
			return CLI_EPROTO;
		}
		if (r->id == req->id) {
			*resp = r;
			return 0;
		}
		ringraft__kv__response__free_unpacked(r, NULL); /* an earlier attempt's reply */
	}
}

/* ------------------------------------------------------------------------------ routing */
void cli_learn_status(struct cli_client *c, const Ringraft__Kv__Response *resp)
{
	if (resp->ring && resp->ring->members_epoch > c->members_epoch)
		c->members_epoch = resp->ring->members_epoch;
	if (resp->ring && (resp->ring->groups || resp->ring->n_group_ids)) {
		struct cli_ring_node nodes[CLI_NODES_MAX];
		size_t n = cli_codec_ring_nodes(resp->ring, nodes);
		if (cli_route_set_ring(&c->route, resp->ring->epoch, resp->ring->groups,
				       resp->ring->group_ids, resp->ring->n_group_ids,
				       resp->ring->vnodes ? resp->ring->vnodes : 1, nodes, n) != 0)
			return;
	}
	if (resp->status == NULL || c->route.ring == NULL)
		return;
	for (size_t i = 0; i < resp->status->n_groups; i++) {
		const Ringraft__Kv__GroupStatus *g = resp->status->groups[i];
		if (g->leader != 0)
			cli_route_set_leader(&c->route, g->group, g->leader, NULL);
	}
}

/* The next address to try when no leader is known: the endpoints, then the ring's nodes. */
static const char *next_endpoint(struct cli_client *c)
{
	size_t total = c->n_eps + c->route.n_nodes;
	for (size_t tries = 0; tries < total; tries++) {
		size_t i = c->next_ep++ % total;
		if (i < c->n_eps)
			return c->eps[i];
		const char *a = c->route.nodes[i - c->n_eps].client_addr;
		if (a[0] != '\0' && !c->route.nodes[i - c->n_eps].removed)
			return a;
	}
	return c->eps[0];
}

int cli_refresh(struct cli_client *c, int64_t deadline_ms)
{
	size_t total = c->n_eps + c->route.n_nodes;
	int last = CLI_UNAVAILABLE;
	for (size_t tries = 0; tries < total && cli_now_ms() < deadline_ms; tries++) {
		char addr[CLI_ADDR_MAX];
		snprintf(addr, sizeof addr, "%s", next_endpoint(c));
		Ringraft__Kv__Request req = RINGRAFT__KV__REQUEST__INIT;
		req.op = RINGRAFT__KV__OP__STATUS;
		int64_t d = cli_now_ms() + CLI_ATTEMPT_MS_MIN;
		Ringraft__Kv__Response *resp;
		bool sent;
		int rc =
			cli_attempt(c, addr, &req, d < deadline_ms ? d : deadline_ms, &resp, &sent);
		if (rc) {
			last = rc == CLI_ENOMEM ? rc : CLI_UNAVAILABLE;
			continue;
		}
		bool ok = resp->code == RINGRAFT__KV__CODE__OK && resp->ring &&
			  (resp->ring->groups || resp->ring->n_group_ids);
		if (ok)
			cli_learn_status(c, resp);
		ringraft__kv__response__free_unpacked(resp, NULL);
		if (ok && c->route.ring)
			return 0;
	}
	return last;
}

static void pause_ms(struct cli_client *c, uint32_t *backoff_ms, int64_t deadline_ms)
{
	c->rng ^= c->rng << 13;
	c->rng ^= c->rng >> 7;
	c->rng ^= c->rng << 17;
	uint32_t ms = *backoff_ms / 2 + (uint32_t)(c->rng % (*backoff_ms / 2 + 1));
	int64_t left = deadline_ms - cli_now_ms();
	if (left <= 0)
		return;
	if ((int64_t)ms > left)
		ms = (uint32_t)left;
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
	*backoff_ms = *backoff_ms * 2 > CLI_BACKOFF_MS_MAX ? CLI_BACKOFF_MS_MAX : *backoff_ms * 2;
}

int cli_call_routed(struct cli_client *c, struct cli_call *call, Ringraft__Kv__Response **out)
{
	*out = NULL;
	Ringraft__Kv__Request *req = &call->req;
	int64_t deadline = cli_now_ms() + c->o.timeout_ms;
	if (call->write) {
		req->client_id = c->client_id;
		req->seq = ++c->seq;
	}
	req->redirect = !c->o.forward;
	bool maybe = false; /* some attempt may have taken effect / got no answer */
	uint32_t backoff = CLI_BACKOFF_MS_MIN, attempts = 0, hints_followed = 0;
	for (;;) {
		if (c->route.ring == NULL)
			cli_refresh(c, deadline);
		uint32_t group = req->group
					 ? req->group
					 : cli_route_group_of(&c->route, call->key, call->key_len);
		req->ring_epoch = c->route.ring ? c->route.epoch : 0;
		char addr[CLI_ADDR_MAX];
		const char *leader = cli_route_leader_addr(&c->route, group);
		snprintf(addr, sizeof addr, "%s", leader ? leader : next_endpoint(c));
		uint64_t leader_id = leader ? c->route.leader[group] : 0;

		int64_t now = cli_now_ms();
		int64_t slice = c->o.timeout_ms / 3 > CLI_ATTEMPT_MS_MIN ? c->o.timeout_ms / 3
									 : CLI_ATTEMPT_MS_MIN;
		int64_t d = now + slice < deadline ? now + slice : deadline;
		req->timeout_ms = (uint32_t)(d - now > 50 ? d - now - 20 : d - now);
		Ringraft__Kv__Response *resp = NULL;
		bool sent = false, quick = false;
		int rc = cli_attempt(c, addr, req, d, &resp, &sent);
		attempts++;
		if (rc == CLI_ENOMEM || rc == CLI_TOO_LARGE)
			return rc;
		if (rc) {
			maybe |= sent;
			cli_route_forget_leader(&c->route, group, leader_id);
		} else {
			switch (resp->code) {
			case RINGRAFT__KV__CODE__OK:
			case RINGRAFT__KV__CODE__NOT_FOUND:
			case RINGRAFT__KV__CODE__CAS_MISMATCH:
			case RINGRAFT__KV__CODE__INVALID:
			case RINGRAFT__KV__CODE__TOO_LARGE:
			case RINGRAFT__KV__CODE__UNAUTHENTICATED:
			case RINGRAFT__KV__CODE__PERMISSION_DENIED:
				*out = resp;
				return (int)resp->code;
			case RINGRAFT__KV__CODE__NOT_LEADER:
				if (group && resp->leader_hint &&
				    (resp->leader_hint != leader_id || !leader)) {
					cli_route_set_leader(&c->route, group, resp->leader_hint,
							     resp->leader_addr);
					quick = cli_route_leader_addr(&c->route, group) &&
						hints_followed++ < 3;
				} else {
					cli_route_forget_leader(&c->route, group, leader_id);
				}
				break;
			case RINGRAFT__KV__CODE__WRONG_SHARD: {
				/* Retry at once only if the ring really changed (no busy loop
				 * against a node that keeps answering WRONG_SHARD). */
				uint64_t before = c->route.ring ? c->route.epoch : 0;
				if (resp->ring)
					cli_learn_status(c, resp);
				else
					cli_route_drop_ring(&c->route);
				quick = c->route.ring && c->route.epoch != before;
				break;
			}
			case RINGRAFT__KV__CODE__UNAVAILABLE:
				cli_route_forget_leader(&c->route, group, leader_id);
				break;
			case RINGRAFT__KV__CODE__BUSY:
				/* Refused before proposing (definite): the same node again, after
				 * the doubling pause below, so that load backs off. */
				break;
			case RINGRAFT__KV__CODE__MOVING:
				/* Refused by the group's fence (definite: not written): the key's
				 * range is being copied to its new group. Again after the pause;
				 * once the move is done the ring says where it went. */
				break;
			default: /* TIMEOUT, LEADER_LOST, INTERNAL, unknown: may have happened */
				maybe = true;
				cli_route_forget_leader(&c->route, group, leader_id);
				break;
			}
			ringraft__kv__response__free_unpacked(resp, NULL);
		}
		if (c->o.max_retries && attempts > c->o.max_retries)
			break;
		if (cli_now_ms() >= deadline)
			break;
		if (!quick)
			pause_ms(c, &backoff, deadline);
	}
	return maybe ? CLI_TIMEOUT : CLI_UNAVAILABLE;
}

/* ------------------------------------------------------------------------------ operations */
static int check_key(const void *key, size_t key_len)
{
	if (key == NULL && key_len)
		return CLI_EINVAL;
	if (key_len == 0)
		return CLI_INVALID;
	return key_len > CLI_KEY_MAX ? CLI_TOO_LARGE : 0;
}

static void set_key(struct cli_call *call, const void *key, size_t key_len)
{
	call->key = key;
	call->key_len = key_len;
	call->req.key.data = (uint8_t *)key;
	call->req.key.len = key_len;
}

int cli_put(struct cli_client *c, const void *key, size_t key_len, const void *value,
	    size_t value_len)
{
	return cli_put_ttl(c, key, key_len, value, value_len, 0);
}

int cli_ttl(struct cli_client *c, const void *key, size_t key_len, int64_t *ms_left,
	    uint64_t *expire_at_ms)
{
	*ms_left = -2;
	if (expire_at_ms)
		*expire_at_ms = 0;
	int rc = check_key(key, key_len);
	if (rc)
		return rc;
	struct cli_call call = {.write = false};
	ringraft__kv__request__init(&call.req);
	call.req.op = RINGRAFT__KV__OP__TTL;
	call.req.consistency = c->o.serializable ? RINGRAFT__KV__CONSISTENCY__SERIALIZABLE
						 : RINGRAFT__KV__CONSISTENCY__LINEARIZABLE;
	set_key(&call, key, key_len);
	Ringraft__Kv__Response *resp;
	rc = cli_call_routed(c, &call, &resp);
	if (rc == CLI_OK) {
		*ms_left = resp->number;
		if (expire_at_ms)
			*expire_at_ms = resp->expire_at_ms;
	}
	if (resp)
		ringraft__kv__response__free_unpacked(resp, NULL);
	return rc;
}

int cli_put_ttl(struct cli_client *c, const void *key, size_t key_len, const void *value,
		size_t value_len, uint64_t ttl_ms)
{
	int rc = check_key(key, key_len);
	if (rc)
		return rc;
	if (value_len > CLI_VALUE_MAX)
		return CLI_TOO_LARGE;
	if (value == NULL && value_len)
		return CLI_EINVAL;
	struct cli_call call = {.write = true};
	ringraft__kv__request__init(&call.req);
	call.req.op = RINGRAFT__KV__OP__PUT;
	set_key(&call, key, key_len);
	call.req.value.data = (uint8_t *)value;
	call.req.value.len = value_len;
	call.req.ttl_ms = ttl_ms;
	Ringraft__Kv__Response *resp;
	rc = cli_call_routed(c, &call, &resp);
	if (resp)
		ringraft__kv__response__free_unpacked(resp, NULL);
	return rc;
}

int cli_get(struct cli_client *c, const void *key, size_t key_len, void **value, size_t *value_len)
{
	*value = NULL;
	*value_len = 0;
	int rc = check_key(key, key_len);
	if (rc)
		return rc;
	struct cli_call call = {.write = false};
	ringraft__kv__request__init(&call.req);
	call.req.op = RINGRAFT__KV__OP__GET;
	call.req.consistency = c->o.serializable ? RINGRAFT__KV__CONSISTENCY__SERIALIZABLE
						 : RINGRAFT__KV__CONSISTENCY__LINEARIZABLE;
	set_key(&call, key, key_len);
	Ringraft__Kv__Response *resp;
	rc = cli_call_routed(c, &call, &resp);
	if (rc == CLI_OK) {
		*value = cli_dup(resp->value.data, resp->value.len);
		if (*value == NULL)
			rc = CLI_ENOMEM;
		else
			*value_len = resp->value.len;
	}
	if (resp)
		ringraft__kv__response__free_unpacked(resp, NULL);
	return rc;
}

int cli_delete(struct cli_client *c, const void *key, size_t key_len)
{
	int rc = check_key(key, key_len);
	if (rc)
		return rc;
	struct cli_call call = {.write = true};
	ringraft__kv__request__init(&call.req);
	call.req.op = RINGRAFT__KV__OP__DELETE;
	set_key(&call, key, key_len);
	Ringraft__Kv__Response *resp;
	rc = cli_call_routed(c, &call, &resp);
	if (resp)
		ringraft__kv__response__free_unpacked(resp, NULL);
	return rc;
}

int cli_cas(struct cli_client *c, const void *key, size_t key_len, const void *expected,
	    size_t expected_len, const void *value, size_t value_len, struct cli_current *current)
{
	if (current)
		memset(current, 0, sizeof *current);
	int rc = check_key(key, key_len);
	if (rc)
		return rc;
	if (value_len > CLI_VALUE_MAX || expected_len > CLI_VALUE_MAX)
		return CLI_TOO_LARGE;
	if ((value == NULL && value_len) || (expected == NULL && expected_len))
		return CLI_EINVAL;
	struct cli_call call = {.write = true};
	ringraft__kv__request__init(&call.req);
	call.req.op = RINGRAFT__KV__OP__CAS;
	set_key(&call, key, key_len);
	call.req.value.data = (uint8_t *)value;
	call.req.value.len = value_len;
	call.req.expect_absent = expected == NULL;
	call.req.expected.data = (uint8_t *)expected;
	call.req.expected.len = expected_len;
	Ringraft__Kv__Response *resp;
	rc = cli_call_routed(c, &call, &resp);
	if (rc == CLI_CAS_MISMATCH && current) {
		current->found = resp->found;
		if (resp->found) {
			current->value = cli_dup(resp->value.data, resp->value.len);
			current->value_len = current->value ? resp->value.len : 0;
		}
	}
	if (resp)
		ringraft__kv__response__free_unpacked(resp, NULL);
	return rc;
}

int cli_call_endpoint(struct cli_client *c, const char *endpoint, const struct cli_request *req,
		      struct cli_reply *rep)
{
	memset(rep, 0, sizeof *rep);
	if (endpoint == NULL || req == NULL)
		return CLI_EINVAL;
	Ringraft__Kv__Request r;
	cli_codec_request(req, &r);
	if (req->session)
		r.client_id = c->client_id;
	Ringraft__Kv__Response *resp;
	bool sent;
	int rc = cli_attempt(c, endpoint, &r, cli_now_ms() + c->o.timeout_ms, &resp, &sent);
	if (rc)
		return rc;
	rc = cli_codec_reply(resp, rep);
	ringraft__kv__response__free_unpacked(resp, NULL);
	return rc;
}
