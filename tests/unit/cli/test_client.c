/* test_client.c — the client library's retry, session and routing logic against an in-process
 * fake node: a thread speaking the real frame protocol on loopback, answering from a script
 * (e.g. TIMEOUT once, then OK) and recording every request, so a test can assert that a retry
 * carried the same (client_id, seq), that hints are followed, and that deadlines hold.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli/client.h"
#include "cli/conn.h"
#include "kv/ring.h"
#include "net/frame.h"
#include "proto/kv.pb-c.h"

/* ------------------------------------------------------------------------------ fixture */
enum act { ACT_REPLY, ACT_CLOSE, ACT_SILENT };

struct rec {
	int op;
	uint64_t client_id, seq, ring_epoch;
	bool redirect;
	uint32_t group;
	char key[64], end_key[64];
	bool expect_absent;
};

struct fake;
typedef enum act (*handler_fn)(struct fake *f, const Ringraft__Kv__Request *req,
			       Ringraft__Kv__Response *resp, int nth);

#define FAKE_CONNS 16
struct fake {
	int lfd, stop[2];
	char addr[64];
	uint64_t id;
	pthread_t th;
	pthread_mutex_t mu;
	handler_fn handler;
	struct rec recs[512];
	int n_recs;
	int n_op[16]; /* requests seen per op */
	/* What STATUS says. */
	uint32_t groups;
	uint32_t ids[4]; /* RingConfig.group_ids, when n_ids > 0 */
	size_t n_ids;
	uint64_t epoch;
	uint64_t leader[9];
	struct fake *other; /* a second node of the ring, or NULL */
	/* Scratch owned by the handler (kept alive until the reply is packed). */
	Ringraft__Kv__RingConfig ring;
	Ringraft__Kv__NodeInfo ni[2], *nip[2];
	Ringraft__Kv__NodeStatus st;
	Ringraft__Kv__GroupStatus gs[8], *gsp[8];
	Ringraft__Kv__KeyValue kv[8], *kvp[8];
};

static void fill_ring(struct fake *f, Ringraft__Kv__Response *resp, uint64_t epoch)
{
	ringraft__kv__ring_config__init(&f->ring);
	f->ring.epoch = epoch;
	f->ring.groups = f->groups;
	f->ring.vnodes = 16;
	f->ring.group_ids = f->ids;
	f->ring.n_group_ids = f->n_ids;
	struct fake *nodes[2] = {f, f->other};
	size_t n = 0;
	for (int i = 0; i < 2; i++) {
		if (!nodes[i])
			continue;
		ringraft__kv__node_info__init(&f->ni[n]);
		f->ni[n].id = nodes[i]->id;
		f->ni[n].client_addr = nodes[i]->addr;
		f->nip[n] = &f->ni[n];
		n++;
	}
	f->ring.n_nodes = n;
	f->ring.nodes = f->nip;
	resp->ring = &f->ring;
}

/* The default answer to STATUS: the ring and this node's view of the leaders. */
static void answer_status(struct fake *f, Ringraft__Kv__Response *resp)
{
	fill_ring(f, resp, f->epoch);
	ringraft__kv__node_status__init(&f->st);
	f->st.id = f->id;
	f->st.client_addr = f->addr;
	for (uint32_t g = 0; g < f->groups; g++) {
		ringraft__kv__group_status__init(&f->gs[g]);
		f->gs[g].group = g + 1;
		f->gs[g].leader = f->leader[g + 1];
		f->gs[g].role = f->leader[g + 1] == f->id ? "leader" : "follower";
		f->gsp[g] = &f->gs[g];
	}
	f->st.n_groups = f->groups;
	f->st.groups = f->gsp;
	resp->status = &f->st;
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	int fds[FAKE_CONNS];
	struct net_decoder dec[FAKE_CONNS];
	int n = 0;
	for (;;) {
		struct pollfd p[FAKE_CONNS + 2];
		p[0] = (struct pollfd){.fd = f->stop[0], .events = POLLIN};
		p[1] = (struct pollfd){.fd = f->lfd, .events = POLLIN};
		for (int i = 0; i < n; i++)
			p[2 + i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
		if (poll(p, (nfds_t)(2 + n), -1) < 0)
			continue;
		if (p[0].revents)
			break;
		bool dropped[FAKE_CONNS] = {0};
		for (int i = 0; i < n; i++) {
			if (!(p[2 + i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			uint8_t buf[65536];
			ssize_t r = recv(fds[i], buf, sizeof buf, 0);
			bool drop = r <= 0;
			if (r > 0)
				net_decoder_feed(&dec[i], buf, (size_t)r);
			const uint8_t *pl;
			uint32_t len;
			while (!drop && net_decoder_next(&dec[i], &pl, &len) == 1) {
				Ringraft__Kv__Request *q =
					ringraft__kv__request__unpack(NULL, len, pl);
				ck_assert_ptr_nonnull(q);
				Ringraft__Kv__Response resp = RINGRAFT__KV__RESPONSE__INIT;
				resp.id = q->id;
				pthread_mutex_lock(&f->mu);
				struct rec *rc = &f->recs[f->n_recs < 511 ? f->n_recs++ : 511];
				memset(rc, 0, sizeof *rc);
				rc->op = q->op;
				rc->client_id = q->client_id;
				rc->seq = q->seq;
				rc->ring_epoch = q->ring_epoch;
				rc->redirect = q->redirect;
				rc->group = q->group;
				rc->expect_absent = q->expect_absent;
				if (q->key.len)
					memcpy(rc->key, q->key.data,
					       q->key.len < 63 ? q->key.len : 63);
				if (q->end_key.len)
					memcpy(rc->end_key, q->end_key.data,
					       q->end_key.len < 63 ? q->end_key.len : 63);
				int nth = f->n_op[q->op & 15]++;
				enum act a = ACT_REPLY;
				if (q->op == RINGRAFT__KV__OP__STATUS && f->handler == NULL)
					answer_status(f, &resp);
				else if (f->handler)
					a = f->handler(f, q, &resp, nth);
				pthread_mutex_unlock(&f->mu);
				if (a == ACT_REPLY) {
					size_t sz = ringraft__kv__response__get_packed_size(&resp);
					uint8_t *out = malloc(sz + 4);
					net_frame_header(out, (uint32_t)sz);
					ringraft__kv__response__pack(&resp, out + 4);
					ck_assert_int_eq(send(fds[i], out, sz + 4, MSG_NOSIGNAL),
							 (ssize_t)(sz + 4));
					free(out);
				} else if (a == ACT_CLOSE) {
					drop = true;
				}
				ringraft__kv__request__free_unpacked(q, NULL);
			}
			dropped[i] = drop;
		}
		int kept = 0;
		for (int i = 0; i < n; i++) {
			if (dropped[i]) {
				close(fds[i]);
				net_decoder_free(&dec[i]);
				continue;
			}
			fds[kept] = fds[i];
			dec[kept++] = dec[i];
		}
		n = kept;
		if ((p[1].revents & POLLIN) && n < FAKE_CONNS) {
			int c = accept(f->lfd, NULL, NULL);
			if (c >= 0) {
				fds[n] = c;
				net_decoder_init(&dec[n], 1u << 20);
				n++;
			}
		}
	}
	for (int i = 0; i < n; i++) {
		close(fds[i]);
		net_decoder_free(&dec[i]);
	}
	return NULL;
}

static struct fake *fake_new(uint64_t id, handler_fn h)
{
	struct fake *f = calloc(1, sizeof *f);
	f->id = id;
	f->handler = h;
	f->groups = 1;
	f->epoch = 1;
	for (int g = 1; g <= 8; g++)
		f->leader[g] = id;
	pthread_mutex_init(&f->mu, NULL);
	ck_assert_int_eq(pipe(f->stop), 0);
	f->lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	ck_assert_int_eq(bind(f->lfd, (struct sockaddr *)&a, sizeof a), 0);
	socklen_t al = sizeof a;
	getsockname(f->lfd, (struct sockaddr *)&a, &al);
	ck_assert_int_eq(listen(f->lfd, 16), 0);
	snprintf(f->addr, sizeof f->addr, "127.0.0.1:%u", ntohs(a.sin_port));
	ck_assert_int_eq(pthread_create(&f->th, NULL, fake_main, f), 0);
	return f;
}

static void fake_free(struct fake *f)
{
	ck_assert_int_eq(write(f->stop[1], "x", 1), 1);
	pthread_join(f->th, NULL);
	close(f->lfd);
	close(f->stop[0]);
	close(f->stop[1]);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

/* Requests of one op recorded by f, copied out under the lock. */
static int recs_of(struct fake *f, int op, struct rec *out, int max)
{
	pthread_mutex_lock(&f->mu);
	int n = 0;
	for (int i = 0; i < f->n_recs && n < max; i++)
		if (f->recs[i].op == op)
			out[n++] = f->recs[i];
	pthread_mutex_unlock(&f->mu);
	return n;
}

static struct cli_client *client_for(const char *endpoints, uint32_t timeout_ms)
{
	struct cli_options o;
	cli_options_default(&o);
	o.timeout_ms = timeout_ms;
	struct cli_client *c;
	ck_assert_int_eq(cli_client_new(endpoints, &o, &c), 0);
	return c;
}

/* A loopback port nobody listens on. */
static void dead_endpoint(char *buf, size_t cap)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0);
	socklen_t al = sizeof a;
	getsockname(s, (struct sockaddr *)&a, &al);
	close(s);
	snprintf(buf, cap, "127.0.0.1:%u", ntohs(a.sin_port));
}

/* ------------------------------------------------------------------------------ handlers */
static enum act status_or(struct fake *f, const Ringraft__Kv__Request *q, Ringraft__Kv__Response *r)
{
	(void)q;
	answer_status(f, r);
	return ACT_REPLY;
}

static enum act put_timeout_then_ok(struct fake *f, const Ringraft__Kv__Request *q,
				    Ringraft__Kv__Response *r, int nth)
{
	if (q->op == RINGRAFT__KV__OP__STATUS)
		return status_or(f, q, r);
	r->code = nth == 0 ? RINGRAFT__KV__CODE__TIMEOUT : RINGRAFT__KV__CODE__OK;
	return ACT_REPLY;
}

static enum act put_close_then_ok(struct fake *f, const Ringraft__Kv__Request *q,
				  Ringraft__Kv__Response *r, int nth)
{
	if (q->op == RINGRAFT__KV__OP__STATUS)
		return status_or(f, q, r);
	return nth == 0 ? ACT_CLOSE : ACT_REPLY;
}

static enum act always_timeout(struct fake *f, const Ringraft__Kv__Request *q,
			       Ringraft__Kv__Response *r, int nth)
{
	(void)nth;
	if (q->op == RINGRAFT__KV__OP__STATUS)
		return status_or(f, q, r);
	r->code = RINGRAFT__KV__CODE__TIMEOUT;
	return ACT_REPLY;
}

static enum act always_unavailable(struct fake *f, const Ringraft__Kv__Request *q,
				   Ringraft__Kv__Response *r, int nth)
{
	(void)nth;
	if (q->op == RINGRAFT__KV__OP__STATUS)
		return status_or(f, q, r);
	r->code = RINGRAFT__KV__CODE__UNAVAILABLE;
	return ACT_REPLY;
}

static enum act silent(struct fake *f, const Ringraft__Kv__Request *q, Ringraft__Kv__Response *r,
		       int nth)
{
	(void)nth;
	if (q->op == RINGRAFT__KV__OP__STATUS)
		return status_or(f, q, r);
	return ACT_SILENT;
}

/* PUT: MOVING twice (the key's range is frozen for a move), then OK; or MOVING always. */
static enum act moving_then_ok(struct fake *f, const Ringraft__Kv__Request *q,
			       Ringraft__Kv__Response *r, int nth)
{
	if (q->op == RINGRAFT__KV__OP__STATUS)
		return status_or(f, q, r);
	r->code = nth < 2 ? RINGRAFT__KV__CODE__MOVING : RINGRAFT__KV__CODE__OK;
	return ACT_REPLY;
}

static enum act always_moving(struct fake *f, const Ringraft__Kv__Request *q,
			      Ringraft__Kv__Response *r, int nth)
{
	(void)nth;
	if (q->op == RINGRAFT__KV__OP__STATUS)
		return status_or(f, q, r);
	r->code = RINGRAFT__KV__CODE__MOVING;
	return ACT_REPLY;
}

/* ------------------------------------------------------------------------------ tests */
START_TEST(test_indeterminate_write_retried_with_same_seq)
{
	struct fake *f = fake_new(1, put_timeout_then_ok);
	struct cli_client *c = client_for(f->addr, 5000);
	ck_assert_int_eq(cli_put(c, "k", 1, "v1", 2), CLI_OK);
	ck_assert_int_eq(cli_put(c, "k", 1, "v2", 2), CLI_OK);
	struct rec r[8];
	int n = recs_of(f, RINGRAFT__KV__OP__PUT, r, 8);
	ck_assert_int_eq(n, 3); /* TIMEOUT, retry OK, then the second put */
	ck_assert_uint_eq(r[0].client_id, cli_client_id(c));
	ck_assert_uint_ne(r[0].client_id, 0);
	ck_assert_uint_ne(r[0].seq, 0);
	ck_assert_uint_eq(r[1].client_id, r[0].client_id);
	ck_assert_uint_eq(r[1].seq, r[0].seq);
	ck_assert_uint_eq(r[2].client_id, r[0].client_id);
	ck_assert_uint_eq(r[2].seq, r[0].seq + 1);
	ck_assert(r[0].redirect);
	ck_assert_uint_eq(r[0].ring_epoch, 1);
	cli_client_free(c);
	fake_free(f);
}
END_TEST

START_TEST(test_connection_lost_after_send_retries_same_seq)
{
	struct fake *f = fake_new(1, put_close_then_ok);
	struct cli_client *c = client_for(f->addr, 5000);
	ck_assert_int_eq(cli_delete(c, "gone", 4), CLI_OK);
	struct rec r[8];
	int n = recs_of(f, RINGRAFT__KV__OP__DELETE, r, 8);
	ck_assert_int_eq(n, 2);
	ck_assert_uint_eq(r[1].seq, r[0].seq);
	ck_assert_uint_eq(r[1].client_id, r[0].client_id);
	cli_client_free(c);
	fake_free(f);
}
END_TEST

START_TEST(test_deadline_gives_indeterminate_timeout)
{
	struct fake *f = fake_new(1, always_timeout);
	struct cli_client *c = client_for(f->addr, 1200);
	int64_t t0 = cli_now_ms();
	int rc = cli_put(c, "k", 1, "v", 1);
	int64_t took = cli_now_ms() - t0;
	ck_assert_int_eq(rc, CLI_TIMEOUT);
	ck_assert(!cli_result_is_definite(rc));
	ck_assert_int_ge(took, 1000);
	ck_assert_int_le(took, 1700);
	struct rec r[512];
	int n = recs_of(f, RINGRAFT__KV__OP__PUT, r, 512);
	ck_assert_int_ge(n, 2);
	for (int i = 1; i < n; i++)
		ck_assert_uint_eq(r[i].seq, r[0].seq);
	cli_client_free(c);
	fake_free(f);
}
END_TEST

START_TEST(test_silent_node_bounded_by_deadline)
{
	struct fake *f = fake_new(1, silent);
	struct cli_client *c = client_for(f->addr, 1500);
	int64_t t0 = cli_now_ms();
	void *v;
	size_t vl;
	int rc = cli_get(c, "k", 1, &v, &vl);
	int64_t took = cli_now_ms() - t0;
	ck_assert_int_eq(rc, CLI_TIMEOUT);
	ck_assert_ptr_null(v);
	ck_assert_int_le(took, 2000);
	ck_assert_int_ge(took, 1400);
	cli_client_free(c);
	fake_free(f);
}
END_TEST

START_TEST(test_unreachable_is_definite_unavailable)
{
	char dead[64], list[160];
	dead_endpoint(dead, sizeof dead);
	snprintf(list, sizeof list, "%s,%s", dead, dead);
	struct cli_client *c = client_for(list, 800);
	int64_t t0 = cli_now_ms();
	int rc = cli_put(c, "k", 1, "v", 1);
	int64_t took = cli_now_ms() - t0;
	ck_assert_int_eq(rc, CLI_UNAVAILABLE);
	ck_assert(cli_result_is_definite(rc));
	ck_assert_int_ge(took, 700);
	ck_assert_int_le(took, 1300);
	cli_client_free(c);
}
END_TEST

START_TEST(test_max_retries_bounds_attempts)
{
	struct fake *f = fake_new(1, always_unavailable);
	struct cli_options o;
	cli_options_default(&o);
	o.max_retries = 2;
	struct cli_client *c;
	ck_assert_int_eq(cli_client_new(f->addr, &o, &c), 0);
	ck_assert_int_eq(cli_put(c, "k", 1, "v", 1), CLI_UNAVAILABLE);
	struct rec r[16];
	ck_assert_int_eq(recs_of(f, RINGRAFT__KV__OP__PUT, r, 16), 3);
	cli_client_free(c);
	fake_free(f);
}
END_TEST

/* Node 1 believes it leads; it answers NOT_LEADER with a hint to node 2, which serves. */
static struct fake *g_b;
static enum act a_redirects(struct fake *f, const Ringraft__Kv__Request *q,
			    Ringraft__Kv__Response *r, int nth)
{
	(void)nth;
	if (q->op == RINGRAFT__KV__OP__STATUS)
		return status_or(f, q, r);
	r->code = RINGRAFT__KV__CODE__NOT_LEADER;
	r->leader_hint = 2;
	r->leader_addr = g_b->addr;
	return ACT_REPLY;
}

static enum act b_serves(struct fake *f, const Ringraft__Kv__Request *q, Ringraft__Kv__Response *r,
			 int nth)
{
	(void)nth;
	if (q->op == RINGRAFT__KV__OP__STATUS)
		return status_or(f, q, r);
	static uint8_t val[] = {'v', 0, 0xff, '\n'};
	r->code = RINGRAFT__KV__CODE__OK;
	r->found = true;
	r->value.data = val;
	r->value.len = sizeof val;
	return ACT_REPLY;
}

START_TEST(test_not_leader_hint_followed_and_cached)
{
	struct fake *a = fake_new(1, a_redirects);
	struct fake *b = fake_new(2, b_serves);
	g_b = b;
	a->other = b;
	b->other = a;
	struct cli_client *c = client_for(a->addr, 3000);
	void *v;
	size_t vl;
	ck_assert_int_eq(cli_get(c, "x", 1, &v, &vl), CLI_OK);
	ck_assert_uint_eq(vl, 4);
	ck_assert(memcmp(v, "v\0\xff\n", 4) == 0);
	ck_assert_int_eq(((char *)v)[vl], '\0');
	cli_free(v);
	ck_assert_int_eq(cli_get(c, "x", 1, &v, &vl), CLI_OK);
	cli_free(v);
	struct rec r[8];
	ck_assert_int_eq(recs_of(a, RINGRAFT__KV__OP__GET, r, 8), 1);
	ck_assert_int_eq(recs_of(b, RINGRAFT__KV__OP__GET, r, 8), 2);
	uint64_t leader;
	char addr[CLI_ADDR_MAX];
	ck_assert_int_eq(cli_leader_of(c, 1, false, &leader, addr), CLI_OK);
	ck_assert_uint_eq(leader, 2);
	ck_assert_str_eq(addr, b->addr);
	cli_client_free(c);
	fake_free(a);
	fake_free(b);
}
END_TEST

static enum act wrong_shard_once(struct fake *f, const Ringraft__Kv__Request *q,
				 Ringraft__Kv__Response *r, int nth)
{
	if (q->op == RINGRAFT__KV__OP__STATUS)
		return status_or(f, q, r);
	if (nth == 0) {
		r->code = RINGRAFT__KV__CODE__WRONG_SHARD;
		fill_ring(f, r, 7);
		return ACT_REPLY;
	}
	r->code = RINGRAFT__KV__CODE__NOT_FOUND;
	return ACT_REPLY;
}

START_TEST(test_wrong_shard_refreshes_ring)
{
	struct fake *f = fake_new(1, wrong_shard_once);
	struct cli_client *c = client_for(f->addr, 3000);
	void *v;
	size_t vl;
	ck_assert_int_eq(cli_get(c, "k", 1, &v, &vl), CLI_NOT_FOUND);
	ck_assert_ptr_null(v);
	struct rec r[8];
	ck_assert_int_eq(recs_of(f, RINGRAFT__KV__OP__GET, r, 8), 2);
	ck_assert_uint_eq(r[0].ring_epoch, 1);
	ck_assert_uint_eq(r[1].ring_epoch, 7);
	cli_client_free(c);
	fake_free(f);
}
END_TEST

static enum act cas_mismatch(struct fake *f, const Ringraft__Kv__Request *q,
			     Ringraft__Kv__Response *r, int nth)
{
	(void)nth;
	if (q->op == RINGRAFT__KV__OP__STATUS)
		return status_or(f, q, r);
	r->code = RINGRAFT__KV__CODE__CAS_MISMATCH;
	r->found = true;
	r->value.data = (uint8_t *)"old";
	r->value.len = 3;
	return ACT_REPLY;
}

START_TEST(test_cas_mismatch_returns_current)
{
	struct fake *f = fake_new(1, cas_mismatch);
	struct cli_client *c = client_for(f->addr, 3000);
	struct cli_current cur;
	ck_assert_int_eq(cli_cas(c, "k", 1, "exp", 3, "new", 3, &cur), CLI_CAS_MISMATCH);
	ck_assert(cur.found);
	ck_assert_uint_eq(cur.value_len, 3);
	ck_assert(memcmp(cur.value, "old", 3) == 0);
	cli_free(cur.value);
	ck_assert_int_eq(cli_cas(c, "k", 1, NULL, 0, "new", 3, NULL), CLI_CAS_MISMATCH);
	struct rec r[8];
	ck_assert_int_eq(recs_of(f, RINGRAFT__KV__OP__CAS, r, 8), 2);
	ck_assert(!r[0].expect_absent);
	ck_assert(r[1].expect_absent);
	ck_assert_uint_eq(r[1].seq, r[0].seq + 1);
	cli_client_free(c);
	fake_free(f);
}
END_TEST

/* Two groups; group 2 pages (a, c) then (e). */
static enum act scanner(struct fake *f, const Ringraft__Kv__Request *q, Ringraft__Kv__Response *r,
			int nth)
{
	(void)nth;
	if (q->op == RINGRAFT__KV__OP__STATUS)
		return status_or(f, q, r);
	static const char *g1[] = {"b", "d"}, *g2a[] = {"a", "c"}, *g2b[] = {"e"};
	const char **keys;
	size_t n;
	if (q->group == 1) {
		keys = g1;
		n = 2;
	} else if (q->key.len == 1 && q->key.data[0] == 'e') {
		keys = g2b;
		n = 1;
	} else {
		keys = g2a;
		n = 2;
		r->next_key.data = (uint8_t *)"e";
		r->next_key.len = 1;
	}
	for (size_t i = 0; i < n; i++) {
		ringraft__kv__key_value__init(&f->kv[i]);
		f->kv[i].key.data = (uint8_t *)keys[i];
		f->kv[i].key.len = 1;
		f->kv[i].value.data = (uint8_t *)keys[i];
		f->kv[i].value.len = 1;
		f->kvp[i] = &f->kv[i];
	}
	r->n_kvs = n;
	r->kvs = f->kvp;
	return ACT_REPLY;
}

struct collected {
	char keys[16];
	int n;
};

static int collect(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	struct collected *c = arg;
	ck_assert_uint_eq(kl, 1);
	ck_assert_uint_eq(vl, 1);
	ck_assert(memcmp(k, v, 1) == 0);
	c->keys[c->n++] = *(const char *)k;
	return 0;
}

START_TEST(test_scan_merges_groups_in_key_order)
{
	struct fake *f = fake_new(1, scanner);
	f->groups = 2;
	struct cli_client *c = client_for(f->addr, 3000);
	struct collected got = {0};
	ck_assert_int_eq(cli_scan_prefix(c, "", 0, 10, collect, &got), CLI_OK);
	ck_assert_int_eq(got.n, 5);
	ck_assert(memcmp(got.keys, "abcde", 5) == 0);
	struct collected lim = {0};
	ck_assert_int_eq(cli_scan_prefix(c, "", 0, 3, collect, &lim), CLI_OK);
	ck_assert_int_eq(lim.n, 3);
	ck_assert(memcmp(lim.keys, "abc", 3) == 0);
	struct rec r[32];
	int n = recs_of(f, RINGRAFT__KV__OP__SCAN, r, 32);
	ck_assert_int_ge(n, 3);
	ck_assert_str_eq(r[0].end_key, "");
	/* A prefix scan sends [p, q). */
	int before = recs_of(f, RINGRAFT__KV__OP__SCAN, r, 32);
	ck_assert_int_eq(cli_scan_prefix(c, "p", 1, 10, collect, &(struct collected){0}), CLI_OK);
	n = recs_of(f, RINGRAFT__KV__OP__SCAN, r, 32);
	ck_assert_int_gt(n, before);
	ck_assert_str_eq(r[before].key, "p");
	ck_assert_str_eq(r[before].end_key, "q");
	cli_client_free(c);
	fake_free(f);
}
END_TEST

/* A ring of ids {1, 7}: a scan asks groups 1 and 7, not 1 and 2. */
START_TEST(test_scan_asks_the_ring_ids)
{
	struct fake *f = fake_new(1, scanner);
	f->groups = 2;
	f->ids[0] = 7, f->ids[1] = 1, f->n_ids = 2;
	struct cli_client *c = client_for(f->addr, 3000);
	struct collected got = {0};
	ck_assert_int_eq(cli_scan_prefix(c, "", 0, 10, collect, &got), CLI_OK);
	ck_assert_int_eq(got.n, 5);
	ck_assert(memcmp(got.keys, "abcde", 5) == 0);
	struct rec r[32];
	int n = recs_of(f, RINGRAFT__KV__OP__SCAN, r, 32);
	bool asked[8] = {0};
	for (int i = 0; i < n; i++) {
		ck_assert(r[i].group == 1 || r[i].group == 7);
		asked[r[i].group] = true;
	}
	ck_assert(asked[1] && asked[7]);
	cli_client_free(c);
	fake_free(f);
}
END_TEST

/* MOVING is definite (not written): the routed call waits and sends the same write again; if
 * the range stays frozen to the deadline the call ends CLI_UNAVAILABLE, never CLI_TIMEOUT. */
START_TEST(test_moving_is_retried_then_definite)
{
	struct fake *f = fake_new(1, moving_then_ok);
	struct cli_client *c = client_for(f->addr, 5000);
	ck_assert_int_eq(cli_put(c, "k", 1, "v", 1), CLI_OK);
	struct rec r[8];
	ck_assert_int_eq(recs_of(f, RINGRAFT__KV__OP__PUT, r, 8), 3);
	ck_assert_uint_eq(r[1].seq, r[0].seq);
	ck_assert_uint_eq(r[2].seq, r[0].seq);
	cli_client_free(c);
	fake_free(f);
	/* Ended by the retry count, not by a deadline that could cut an attempt in flight. */
	f = fake_new(1, always_moving);
	struct cli_options o;
	cli_options_default(&o);
	o.timeout_ms = 5000;
	o.max_retries = 3;
	ck_assert_int_eq(cli_client_new(f->addr, &o, &c), 0);
	ck_assert_int_eq(cli_put(c, "k", 1, "v", 1), CLI_UNAVAILABLE);
	ck_assert_int_eq(recs_of(f, RINGRAFT__KV__OP__PUT, r, 8), 4);
	ck_assert_str_eq(cli_strerror(CLI_MOVING),
			 "moving: the key's range is moving to another group; not written, try "
			 "again");
	cli_client_free(c);
	fake_free(f);
}
END_TEST

static enum act not_leader_raw(struct fake *f, const Ringraft__Kv__Request *q,
			       Ringraft__Kv__Response *r, int nth)
{
	(void)f;
	(void)q;
	(void)nth;
	r->code = RINGRAFT__KV__CODE__NOT_LEADER;
	r->leader_hint = 3;
	r->leader_addr = "127.0.0.13:9001";
	r->error = "not leader";
	return ACT_REPLY;
}

START_TEST(test_call_endpoint_is_one_raw_attempt)
{
	struct fake *f = fake_new(1, not_leader_raw);
	struct cli_client *c = client_for(f->addr, 2000);
	struct cli_request req = {
		.op = CLI_OP_GET, .key = "k", .key_len = 1, .redirect = true, .serializable = true};
	struct cli_reply rep;
	ck_assert_int_eq(cli_call_endpoint(c, f->addr, &req, &rep), 0);
	ck_assert_int_eq(rep.code, CLI_NOT_LEADER);
	ck_assert_uint_eq(rep.leader_hint, 3);
	ck_assert_str_eq(rep.leader_addr, "127.0.0.13:9001");
	ck_assert_str_eq(rep.error, "not leader");
	cli_reply_free(&rep);
	struct rec r[8];
	ck_assert_int_eq(recs_of(f, RINGRAFT__KV__OP__GET, r, 8), 1);
	ck_assert_int_eq(recs_of(f, RINGRAFT__KV__OP__STATUS, r, 8), 0);
	char dead[64];
	dead_endpoint(dead, sizeof dead);
	ck_assert_int_eq(cli_call_endpoint(c, dead, &req, &rep), CLI_ECONN);
	ck_assert(!cli_result_is_definite(CLI_ECONN));
	cli_client_free(c);
	fake_free(f);
}
END_TEST

START_TEST(test_local_checks_send_nothing)
{
	struct fake *f = fake_new(1, put_timeout_then_ok);
	struct cli_client *c = client_for(f->addr, 2000);
	static char big[CLI_KEY_MAX + 1];
	ck_assert_int_eq(cli_put(c, big, sizeof big, "v", 1), CLI_TOO_LARGE);
	ck_assert_int_eq(cli_put(c, "", 0, "v", 1), CLI_INVALID);
	ck_assert_int_eq(cli_put(c, "k", 1, "v", (size_t)CLI_VALUE_MAX + 1), CLI_TOO_LARGE);
	struct rec r[8];
	ck_assert_int_eq(recs_of(f, RINGRAFT__KV__OP__PUT, r, 8), 0);
	struct cli_client *bad;
	ck_assert_int_eq(cli_client_new("nohost", NULL, &bad), CLI_EADDR);
	ck_assert_int_eq(cli_client_new("127.0.0.1:1,", NULL, &bad), CLI_EADDR);
	ck_assert_int_eq(cli_client_new("", NULL, &bad), CLI_EADDR);
	ck_assert_ptr_null(bad);
	cli_client_free(c);
	fake_free(f);
}
END_TEST

/* A ring config with group ids: STATUS reports them and the client routes by that id set. */
START_TEST(test_status_group_ids)
{
	struct fake *f = fake_new(7, put_timeout_then_ok);
	f->groups = 3;
	f->ids[0] = 9, f->ids[1] = 2, f->ids[2] = 5, f->n_ids = 3;
	struct cli_client *c = client_for(f->addr, 3000);
	struct cli_node_status st;
	ck_assert_int_eq(cli_status(c, f->addr, &st), CLI_OK);
	ck_assert_uint_eq(st.n_ring_ids, 3);
	ck_assert(st.ring_ids[0] == 9 && st.ring_ids[1] == 2 && st.ring_ids[2] == 5);
	cli_node_status_free(&st);
	struct kv_ring *want = kv_ring_from_ids(f->ids, 3, 16, 1);
	ck_assert_ptr_nonnull(want);
	for (int i = 0; i < 50; i++) {
		char k[16];
		int n = snprintf(k, sizeof k, "key%d", i);
		uint32_t g;
		ck_assert_int_eq(cli_group_of(c, k, (size_t)n, &g), CLI_OK);
		ck_assert_uint_eq(g, kv_ring_group_of(want, k, (size_t)n));
	}
	kv_ring_free(want);
	cli_client_free(c);
	fake_free(f);
}
END_TEST

START_TEST(test_status_and_forward_option)
{
	struct fake *f = fake_new(7, put_timeout_then_ok);
	f->groups = 3;
	f->leader[2] = 0; /* group 2: no leader known */
	struct cli_options o;
	cli_options_default(&o);
	o.forward = true;
	o.timeout_ms = 3000;
	struct cli_client *c;
	ck_assert_int_eq(cli_client_new(f->addr, &o, &c), 0);
	struct cli_node_status st;
	ck_assert_int_eq(cli_status(c, f->addr, &st), CLI_OK);
	ck_assert_uint_eq(st.id, 7);
	ck_assert_str_eq(st.client_addr, f->addr);
	ck_assert_uint_eq(st.ring_groups, 3);
	ck_assert_uint_eq(st.ring_epoch, 1);
	ck_assert_uint_eq(st.n_ring_ids, 3); /* no group_ids sent: 1..groups */
	for (uint32_t g = 0; g < 3; g++)
		ck_assert_uint_eq(st.ring_ids[g], g + 1);
	ck_assert_uint_eq(st.n_nodes, 1);
	ck_assert_str_eq(st.nodes[0].client_addr, f->addr);
	ck_assert_uint_eq(st.n_groups, 3);
	ck_assert_str_eq(st.groups[0].role, "leader");
	ck_assert_uint_eq(st.groups[1].leader, 0);
	cli_node_status_free(&st);
	uint64_t id;
	ck_assert_int_eq(cli_leader_of(c, 1, false, &id, NULL), CLI_OK);
	ck_assert_uint_eq(id, 7);
	ck_assert_int_eq(cli_leader_of(c, 2, false, &id, NULL), CLI_UNAVAILABLE);
	ck_assert_int_eq(cli_put(c, "k", 1, "v", 1), CLI_OK);
	struct rec r[8];
	ck_assert_int_ge(recs_of(f, RINGRAFT__KV__OP__PUT, r, 8), 1);
	ck_assert(!r[0].redirect); /* forward: the node may forward instead of redirecting */
	cli_client_free(c);
	fake_free(f);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("cli_client");
	TCase *t = tcase_create("client");
	tcase_set_timeout(t, 30);
	tcase_add_test(t, test_indeterminate_write_retried_with_same_seq);
	tcase_add_test(t, test_connection_lost_after_send_retries_same_seq);
	tcase_add_test(t, test_deadline_gives_indeterminate_timeout);
	tcase_add_test(t, test_silent_node_bounded_by_deadline);
	tcase_add_test(t, test_unreachable_is_definite_unavailable);
	tcase_add_test(t, test_max_retries_bounds_attempts);
	tcase_add_test(t, test_not_leader_hint_followed_and_cached);
	tcase_add_test(t, test_wrong_shard_refreshes_ring);
	tcase_add_test(t, test_cas_mismatch_returns_current);
	tcase_add_test(t, test_scan_merges_groups_in_key_order);
	tcase_add_test(t, test_scan_asks_the_ring_ids);
	tcase_add_test(t, test_moving_is_retried_then_definite);
	tcase_add_test(t, test_call_endpoint_is_one_raw_attempt);
	tcase_add_test(t, test_local_checks_send_nothing);
	tcase_add_test(t, test_status_and_forward_option);
	tcase_add_test(t, test_status_group_ids);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *r = srunner_create(suite());
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
