/* peer.c — peer links over libuv TCP: dial (lower id) / accept (higher id), Hello handshake,
 * one gathered PeerFrame per peer per loop turn, bounded outbound bytes, redial with backoff.
 * A PeerFrame is built by hand as concatenated length-delimited fields (the protobuf encoding
 * of repeated message fields), so each message is packed once, straight into the frame.
 * With TLS (net_peers_set_tls) both sides verify each other's certificate against the CA
 * (mutual TLS) before the Hello, which then travels inside the TLS session.
 * With a secret (net_peers_set_secrets) the Hello is a challenge-response (peer_auth.h):
 *   dialler -> acceptor  Hello{ids, nonce_d}
 *   acceptor -> dialler  Hello{ids, nonce_a, proofs(acceptor)}   the dialler checks them
 *   dialler -> acceptor  Hello{ids, proofs(dialler)}             the acceptor checks them
 * and a connection carries no other frame, in either direction, until its peer proved; an
 * accepted connection replaces the peer's current one only then, so a stranger naming a
 * member's id cannot take that member's link down.
 */
#include "net/peer.h"
#include "net/listen.h"

#include <assert.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NET_PEER_READ_BYTES      (256u << 10)
#define NET_PEER_HELLO_FRAME_MAX 4096u
#define NET_PEER_BACKOFF_MIN_MS  50u
#define NET_PEER_BACKOFF_MAX_MS  1000u

struct conn;

struct peer {
	uint64_t id;
	char addr[NET_ADDR_STR_MAX];
	struct sockaddr_storage sa;
	struct net_peers *p;
	struct conn *conn; /* current connection (handshaking or up), NULL if none */
	bool up;
	char client_addr[NET_ADDR_STR_MAX];
	uint8_t *buf; /* this turn's frame: [4-byte header][fields...] */
	size_t len, cap;
	size_t queued; /* bytes handed to uv_write and not completed */
	uv_timer_t retry;
	bool removed; /* net_peers_forget: dialled rarely (NET_PEER_BACKOFF_MAX_MS) */
	uint32_t backoff_ms;
	uint64_t last_tx_ms; /* last frame handed to the connection */
};

/* Where a connection is in its handshake. Without a secret a Hello goes straight to UP. */
enum conn_stage {
	ST_HELLO,   /* waiting for the other side's (first) Hello */
	ST_PROOF,   /* accepted, our nonce and proofs sent: waiting for the dialler's proofs */
	ST_REFUSED, /* dialled, the acceptor's proofs refused (ours sent): waiting for the close */
	ST_UP,      /* the peer proved (or no secret): frames flow */
};

struct conn {
	uv_tcp_t tcp;
	uv_connect_t connect_req;
	struct net_peers *p;
	struct peer *peer;    /* dialled: the peer; accepted: set once it proved (UP) */
	struct peer *claimed; /* accepted, ST_PROOF: the peer its Hello named */
	enum conn_stage stage;
	bool outbound, closing;
	uint8_t nonce_self[NET_PEER_NONCE_BYTES], nonce_peer[NET_PEER_NONCE_BYTES];
	uint64_t peer_incarnation; /* from the first Hello, reported once UP */
	char peer_client_addr[NET_ADDR_STR_MAX];
	struct net_decoder dec;
	struct net_tls *tls; /* NULL in plaintext */
	uint64_t opened_ms, last_rx_ms;
	struct conn *prev, *next; /* every open connection, for shutdown */
};

struct wreq {
	uv_write_t req;
	struct conn *c;
	struct peer *peer;
	uint8_t *buf;
	size_t len;
};

struct net_peers {
	uv_loop_t *loop;
	uint64_t self_id, cluster_id, incarnation;
	char listen_addr[NET_ADDR_STR_MAX];
	char client_addr[NET_ADDR_STR_MAX];
	struct net_peers_cbs cbs;
	void *arg;
	uv_tcp_t listener;
	SSL_CTX *tls_ctx; /* borrowed; NULL in plaintext */
	uv_timer_t keepalive;
	bool listening, closing, keepalive_on;
	struct peer peers[NET_PEERS_MAX];
	size_t n_peers;
	uint8_t *read_buf;
	struct conn *conns;
	size_t handles_open; /* handles not yet closed (shutdown accounting) */
	void (*done)(void *arg);
	void *done_arg;
	uint64_t rand_state;
	struct net_peer_secrets secrets; /* n == 0: peer authentication off */
	uint64_t refused[NET_PEER_REFUSALS];
	uint64_t refused_logged_ms[NET_PEER_REFUSALS]; /* rate limit of the log lines */
	uint64_t refused_unlogged[NET_PEER_REFUSALS];  /* refusals since the last line */
};

static void logf_(struct net_peers *p, int level, uint64_t peer, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void logf_(struct net_peers *p, int level, uint64_t peer, const char *fmt, ...)
{
	if (p->cbs.on_log == NULL)
		return;
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	p->cbs.on_log(p->arg, level, peer, msg);
}

static uint32_t rand32(struct net_peers *p)
{
	p->rand_state ^= p->rand_state << 13;
	p->rand_state ^= p->rand_state >> 7;
	p->rand_state ^= p->rand_state << 17;
	return (uint32_t)(p->rand_state >> 16);
}

static struct peer *peer_find(struct net_peers *p, uint64_t id)
{
	for (size_t i = 0; i < p->n_peers; i++)
		if (p->peers[i].id == id)
			return &p->peers[i];
	return NULL;
}

size_t net_pb_field_header(uint8_t out[16], uint32_t field, size_t len)
{
	size_t n = 0;
	uint64_t v = ((uint64_t)field << 3) | 2u;
	while (v >= 0x80) {
		out[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	out[n++] = (uint8_t)v;
	v = len;
	while (v >= 0x80) {
		out[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	out[n++] = (uint8_t)v;
	return n;
}

/* ------------------------------------------------------------------------------ connections */

static void handle_closed_cb(uv_handle_t *h)
{
	struct net_peers *p = h->data;
	assert(p->handles_open > 0);
	p->handles_open--;
	if (p->closing && p->handles_open == 0) {
		void (*done)(void *) = p->done;
		void *arg = p->done_arg;
		for (size_t i = 0; i < p->n_peers; i++)
			free(p->peers[i].buf);
		free(p->read_buf);
		net_peer_secrets_clear(&p->secrets);
		free(p);
		if (done)
			done(arg);
	}
}

static void conn_closed_cb(uv_handle_t *h)
{
	struct conn *c = h->data;
	struct net_peers *p = c->p;
	if (c->prev)
		c->prev->next = c->next;
	else
		p->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	net_tls_free(c->tls); /* cancels writes kept for the handshake (write_cb needs c) */
	net_decoder_free(&c->dec);
	free(c);
	uv_handle_t fake;
	fake.data = p;
	handle_closed_cb(&fake);
}

static void schedule_redial(struct peer *pe);

static void conn_close(struct conn *c, const char *why)
{
	if (c->closing)
		return;
	c->closing = true;
	struct net_peers *p = c->p;
	struct peer *pe = c->peer;
	if (pe != NULL && pe->conn == c) {
		pe->conn = NULL;
		pe->len = 0;
		if (pe->up) {
			pe->up = false;
			logf_(p, p->closing ? 2 : 1, pe->id, "peer link down reason=%s", why);
			if (p->cbs.on_down && !p->closing)
				p->cbs.on_down(p->arg, pe->id);
		}
		if (c->outbound && !p->closing)
			schedule_redial(pe);
	}
	net_tls_shutdown(c->tls);
	uv_close((uv_handle_t *)&c->tcp, conn_closed_cb);
}

static struct conn *conn_new(struct net_peers *p, bool outbound)
{
	struct conn *c = calloc(1, sizeof *c);
	if (c == NULL)
		return NULL;
	c->p = p;
	if (uv_tcp_init(p->loop, &c->tcp) != 0) {
		free(c);
		return NULL;
	}
	c->tcp.data = c;
	p->handles_open++;
	c->opened_ms = c->last_rx_ms = uv_now(p->loop);
	c->next = p->conns;
	if (p->conns)
		p->conns->prev = c;
	p->conns = c;
	net_decoder_init(&c->dec, NET_PEER_HELLO_FRAME_MAX);
	c->outbound = outbound;
	/* Mutual TLS: the dialled side asks for the dialler's certificate, both verify. */
	if (p->tls_ctx != NULL &&
	    net_tls_new(p->tls_ctx, outbound ? NET_TLS_CONNECT : NET_TLS_ACCEPT_VERIFY,
			(uv_stream_t *)&c->tcp, &c->tls) != NET_OK) {
		conn_close(c, "out of memory");
		return NULL;
	}
	return c;
}

static void write_cb(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;
	struct conn *c = w->c;
	if (w->peer != NULL) {
		assert(w->peer->queued >= w->len);
		w->peer->queued -= w->len;
	}
	free(w->buf);
	free(w);
	if (status < 0 && status != UV_ECANCELED) {
		if (c != NULL && !c->closing)
			conn_close(c, uv_strerror(status));
	}
}

/* Writes buf (ownership transferred) on c. */
static int conn_write(struct conn *c, struct peer *accounted, uint8_t *buf, size_t len)
{
	struct wreq *w = malloc(sizeof *w);
	if (w == NULL) {
		free(buf);
		return NET_ENOMEM;
	}
	w->c = c;
	w->peer = accounted;
	w->buf = buf;
	w->len = len;
	uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
	int rc = net_stream_write(c->tls, (uv_stream_t *)&c->tcp, &w->req, &b, 1, write_cb);
	if (rc != 0) {
		free(buf);
		free(w);
		conn_close(c, uv_strerror(rc));
		return NET_EIO;
	}
	if (accounted != NULL)
		accounted->queued += len;
	return NET_OK;
}

static void transcript(const struct conn *c, struct net_peer_transcript *t)
{
	const struct net_peers *p = c->p;
	t->cluster_id = p->cluster_id;
	if (c->outbound) {
		t->dialler_id = p->self_id;
		t->acceptor_id = c->peer->id;
		t->dialler_nonce = c->nonce_self;
		t->acceptor_nonce = c->nonce_peer;
	} else {
		t->dialler_id = c->claimed->id;
		t->acceptor_id = p->self_id;
		t->dialler_nonce = c->nonce_peer;
		t->acceptor_nonce = c->nonce_self;
	}
}

/* Sends our Hello: with_nonce adds our nonce, with_proofs one proof per secret we hold. */
static int send_hello(struct conn *c, bool with_nonce, bool with_proofs)
{
	struct net_peers *p = c->p;
	Ringraft__Raft__Hello h = RINGRAFT__RAFT__HELLO__INIT;
	h.cluster_id = p->cluster_id;
	h.incarnation = p->incarnation;
	h.node_id = p->self_id;
	h.client_addr = p->client_addr;
	uint8_t proofs[NET_PEER_SECRETS_MAX][NET_PEER_PROOF_BYTES];
	ProtobufCBinaryData pb[NET_PEER_SECRETS_MAX];
	if (with_nonce) {
		h.nonce.data = c->nonce_self;
		h.nonce.len = NET_PEER_NONCE_BYTES;
	}
	if (with_proofs) {
		struct net_peer_transcript t;
		transcript(c, &t);
		for (size_t i = 0; i < p->secrets.n; i++) {
			net_peer_proof(p->secrets.s[i].bytes, p->secrets.s[i].len,
				       c->outbound ? NET_PEER_DIALLER : NET_PEER_ACCEPTOR, &t,
				       proofs[i]);
			pb[i].data = proofs[i];
			pb[i].len = NET_PEER_PROOF_BYTES;
		}
		h.proof = pb;
		h.n_proof = p->secrets.n;
	}
	size_t n = ringraft__raft__hello__get_packed_size(&h);
	uint8_t fh[16];
	size_t fhn = net_pb_field_header(fh, 1, n);
	size_t total = NET_FRAME_HEADER + fhn + n;
	uint8_t *buf = malloc(total);
	if (buf == NULL)
		return NET_ENOMEM;
	net_frame_header(buf, (uint32_t)(total - NET_FRAME_HEADER));
	memcpy(buf + NET_FRAME_HEADER, fh, fhn);
	ringraft__raft__hello__pack(&h, buf + NET_FRAME_HEADER + fhn);
	OPENSSL_cleanse(proofs, sizeof proofs);
	return conn_write(c, NULL, buf, total);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)suggested;
	struct conn *c = h->data;
	buf->base = (char *)c->p->read_buf;
	buf->len = NET_PEER_READ_BYTES;
}

const char *net_peer_refusal_name(enum net_peer_refusal r)
{
	static const char *names[NET_PEER_REFUSALS] = {"no-proof", "bad-proof",
						       "frame-before-proof"};
	return (unsigned)r < NET_PEER_REFUSALS ? names[r] : "?";
}

/* Refuses c for an authentication reason: counted, logged (at most one line per reason per
 * NET_PEER_REFUSAL_LOG_MS, saying how many went unlogged), and closed unless keep_open (the
 * dialler waits for the acceptor to close, having sent its proofs so that both ends log). */
static void refuse(struct conn *c, enum net_peer_refusal r, uint64_t claimed_id, bool keep_open)
{
	struct net_peers *p = c->p;
	p->refused[r]++;
	uint64_t now = uv_now(p->loop);
	if (p->refused_logged_ms[r] != 0 &&
	    now - p->refused_logged_ms[r] < NET_PEER_REFUSAL_LOG_MS) {
		p->refused_unlogged[r]++;
	} else {
		char from[NET_ADDR_STR_MAX] = "?";
		struct sockaddr_storage sa;
		int len = sizeof sa;
		if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&sa, &len) == 0 &&
		    sa.ss_family == AF_INET) {
			const struct sockaddr_in *in = (const struct sockaddr_in *)&sa;
			char ip[INET_ADDRSTRLEN];
			uv_ip4_name(in, ip, sizeof ip);
			snprintf(from, sizeof from, "%s:%u", ip, ntohs(in->sin_port));
		}
		logf_(p, 1, claimed_id, "peer refused reason=%s %s addr=%s unlogged=%llu",
		      net_peer_refusal_name(r), c->outbound ? "dialled" : "accepted", from,
		      (unsigned long long)p->refused_unlogged[r]);
		p->refused_logged_ms[r] = now;
		p->refused_unlogged[r] = 0;
	}
	if (keep_open)
		c->stage = ST_REFUSED;
	else
		conn_close(c, net_peer_refusal_name(r));
}

/* Checks the identity in a Hello; returns the peer it names or NULL (and closes c). */
static struct peer *check_hello(struct conn *c, const Ringraft__Raft__Hello *h)
{
	struct net_peers *p = c->p;
	if (h == NULL) {
		if (p->secrets.n != 0)
			refuse(c, NET_PEER_REFUSED_EARLY_FRAME, 0, false);
		else
			conn_close(c, "first frame is not a hello");
		return NULL;
	}
	if (h->cluster_id != p->cluster_id) {
		logf_(p, 0, h->node_id,
		      "peer refused reason=cluster-id-mismatch theirs=%llx ours=%llx",
		      (unsigned long long)h->cluster_id, (unsigned long long)p->cluster_id);
		conn_close(c, "cluster id mismatch");
		return NULL;
	}
	struct peer *pe = peer_find(p, h->node_id);
	if (pe == NULL || (c->outbound && pe != c->peer) ||
	    (!c->outbound && h->node_id > p->self_id)) {
		logf_(p, 1, h->node_id, "peer refused reason=unexpected-node-id");
		conn_close(c, "unexpected node id");
		return NULL;
	}
	return pe;
}

/* True if f carries nothing but its Hello (with a secret, Hello frames carry nothing else:
 * whatever a peer sends before it proved is refused, whatever field it is in). */
static bool hello_only(Ringraft__Raft__PeerFrame *f)
{
	Ringraft__Raft__Hello *h = f->hello;
	f->hello = NULL;
	size_t rest = ringraft__raft__peer_frame__get_packed_size(f);
	f->hello = h;
	return rest == 0;
}

/* Checks the other side's proofs (made as `side`). */
static bool proofs_ok(struct conn *c, const Ringraft__Raft__Hello *h, enum net_peer_side side)
{
	if (h->n_proof == 0 || h->n_proof > NET_PEER_SECRETS_MAX)
		return false;
	const uint8_t *proofs[NET_PEER_SECRETS_MAX];
	size_t lens[NET_PEER_SECRETS_MAX];
	for (size_t i = 0; i < h->n_proof; i++) {
		proofs[i] = h->proof[i].data;
		lens[i] = h->proof[i].len;
	}
	struct net_peer_transcript t;
	transcript(c, &t);
	return net_peer_proof_check(&c->p->secrets, side, &t, proofs, lens, h->n_proof);
}

/* The peer proved (or there is no secret): the link is up. */
static void link_up(struct conn *c, struct peer *pe)
{
	struct net_peers *p = c->p;
	if (!c->outbound) {
		if (pe->conn != NULL && pe->conn != c)
			conn_close(pe->conn, "replaced by a new connection");
		c->peer = pe;
		pe->conn = c;
	}
	c->claimed = NULL;
	c->stage = ST_UP;
	c->dec.max_frame = NET_PEER_FRAME_MAX;
	snprintf(pe->client_addr, sizeof pe->client_addr, "%s", c->peer_client_addr);
	pe->up = true;
	pe->backoff_ms = NET_PEER_BACKOFF_MIN_MS;
	pe->len = 0;
	logf_(p, 2, pe->id, "peer link up client_addr=%s%s", pe->client_addr,
	      p->secrets.n ? " proved=yes" : "");
	if (p->cbs.on_up)
		p->cbs.on_up(p->arg, pe->id, pe->client_addr, c->peer_incarnation);
}

/* One frame of a connection not yet UP. Returns false if c was closed. */
static bool handshake(struct conn *c, Ringraft__Raft__PeerFrame *f)
{
	struct net_peers *p = c->p;
	bool auth = p->secrets.n != 0;
	if (c->stage == ST_REFUSED) {
		conn_close(c, "refused");
		return false;
	}
	if (c->stage == ST_PROOF) {
		/* accepted: this frame must be the dialler's Hello with its proofs, alone */
		const Ringraft__Raft__Hello *h = f->hello;
		uint64_t id = c->claimed->id;
		if (h == NULL || !hello_only(f)) {
			refuse(c, NET_PEER_REFUSED_EARLY_FRAME, id, false);
			return false;
		}
		if (h->node_id != id || h->cluster_id != p->cluster_id) {
			logf_(p, 1, h->node_id, "peer refused reason=unexpected-node-id");
			conn_close(c, "unexpected node id");
			return false;
		}
		if (h->n_proof == 0) {
			refuse(c, NET_PEER_REFUSED_NO_PROOF, id, false);
			return false;
		}
		if (!proofs_ok(c, h, NET_PEER_DIALLER)) {
			refuse(c, NET_PEER_REFUSED_BAD_PROOF, id, false);
			return false;
		}
		link_up(c, c->claimed);
		return true;
	}
	assert(c->stage == ST_HELLO);
	struct peer *pe = check_hello(c, f->hello);
	if (pe == NULL)
		return false;
	const Ringraft__Raft__Hello *h = f->hello;
	c->peer_incarnation = h->incarnation;
	snprintf(c->peer_client_addr, sizeof c->peer_client_addr, "%s",
		 h->client_addr ? h->client_addr : "");
	if (!auth) {
		if (!c->outbound && send_hello(c, false, false) != NET_OK)
			return false;
		link_up(c, pe);
		return true;
	}
	if (!hello_only(f)) {
		refuse(c, NET_PEER_REFUSED_EARLY_FRAME, h->node_id, false);
		return false;
	}
	if (h->nonce.len != NET_PEER_NONCE_BYTES || (c->outbound && h->n_proof == 0)) {
		refuse(c, NET_PEER_REFUSED_NO_PROOF, h->node_id, false);
		return false;
	}
	memcpy(c->nonce_peer, h->nonce.data, NET_PEER_NONCE_BYTES);
	if (c->outbound) {
		/* the acceptor's answer: check its proofs, then send ours (even when refusing,
		 * so that the acceptor logs the refusal too; this gives away nothing a relay of
		 * the handshake would not, and relays are what TLS is for) */
		bool ok = proofs_ok(c, h, NET_PEER_ACCEPTOR);
		if (send_hello(c, false, true) != NET_OK)
			return false;
		if (!ok) {
			refuse(c, NET_PEER_REFUSED_BAD_PROOF, pe->id, true);
			return false;
		}
		link_up(c, pe);
		return true;
	}
	/* accepted: answer with our nonce and proofs; the link waits for the dialler's */
	if (net_peer_nonce(c->nonce_self) != NET_OK) {
		conn_close(c, "no random bytes");
		return false;
	}
	c->claimed = pe;
	c->stage = ST_PROOF;
	return send_hello(c, true, true) == NET_OK;
}

/* The whole frames lent to or held by c's decoder, Hello first. */
static int frames(struct conn *c)
{
	struct net_peers *p = c->p;
	for (;;) {
		if (c->closing)
			return NET_ECLOSED;
		const uint8_t *payload;
		uint32_t flen;
		int rc = net_decoder_next(&c->dec, &payload, &flen);
		if (rc == 0)
			return NET_OK;
		if (rc < 0) {
			logf_(p, 1, c->peer ? c->peer->id : 0, "peer frame refused reason=%s",
			      net_strerror(rc));
			conn_close(c, net_strerror(rc));
			return rc;
		}
		Ringraft__Raft__PeerFrame *f =
			ringraft__raft__peer_frame__unpack(NULL, flen, payload);
		if (f == NULL) {
			logf_(p, 1, c->peer ? c->peer->id : 0,
			      "peer frame refused reason=undecodable");
			conn_close(c, "undecodable frame");
			return NET_EPROTO;
		}
		if (c->stage != ST_UP) {
			if (!handshake(c, f) || c->stage != ST_UP) {
				ringraft__raft__peer_frame__free_unpacked(f, NULL);
				if (c->closing)
					return NET_EPROTO;
				continue;
			}
		}
		if (f->n_msgs + f->n_forwarded_requests + f->n_forwarded_responses +
				    f->n_digests + f->n_gone + f->n_member_maps + f->n_confs +
				    f->n_auth_states >
			    0 &&
		    p->cbs.on_frame && c->peer != NULL && c->peer->conn == c)
			p->cbs.on_frame(p->arg, c->peer->id, f);
		ringraft__raft__peer_frame__free_unpacked(f, NULL);
	}
}

/* Bytes from the peer (plaintext): decoded into frames, Hello first. */
static int on_bytes(void *arg, const uint8_t *data, size_t len)
{
	struct conn *c = arg;
	/* frames are unpacked in place from the read buffer; what is left is copied at the end */
	if (net_decoder_lend(&c->dec, data, len) != NET_OK) {
		conn_close(c, "out of memory");
		return NET_ENOMEM;
	}
	int rc = frames(c);
	if (net_decoder_keep(&c->dec) != NET_OK && rc == NET_OK) {
		conn_close(c, "out of memory");
		return NET_ENOMEM;
	}
	return rc;
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	(void)buf;
	struct conn *c = s->data;
	struct net_peers *p = c->p;
	if (nread == 0 || c->closing)
		return;
	if (nread < 0) {
		conn_close(c, nread == UV_EOF ? "closed by peer" : uv_strerror((int)nread));
		return;
	}
	c->last_rx_ms = uv_now(p->loop);
	if (c->tls == NULL) {
		(void)on_bytes(c, p->read_buf, (size_t)nread);
		return;
	}
	int rc = net_tls_feed(c->tls, p->read_buf, (size_t)nread, on_bytes, c);
	if (rc == NET_OK || c->closing)
		return;
	if (rc == NET_ETLS) {
		/* Loud: a node of another cluster (or with a certificate of another CA) is
		 * knocking, or ours is misconfigured. */
		char where[NET_ADDR_STR_MAX + 16] = "";
		if (c->outbound && c->peer != NULL)
			snprintf(where, sizeof where, " addr=%s", c->peer->addr);
		logf_(p, 1, c->peer ? c->peer->id : 0,
		      "peer refused reason=tls-handshake%s %s error=\"%s\"", where,
		      c->outbound ? "dialled" : "accepted", net_tls_reason(c->tls));
		conn_close(c, "TLS refused");
	} else {
		conn_close(c, rc == NET_ECLOSED ? "closed by peer" : net_strerror(rc));
	}
}

static void start_reading(struct conn *c)
{
	uv_tcp_nodelay(&c->tcp, 1);
	int rc = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
	if (rc != 0)
		conn_close(c, uv_strerror(rc));
}

static void connect_cb(uv_connect_t *req, int status)
{
	struct conn *c = req->data;
	if (c->closing)
		return;
	if (status < 0) {
		conn_close(c, uv_strerror(status));
		return;
	}
	if (c->tls != NULL && net_tls_start(c->tls) != NET_OK) {
		logf_(c->p, 1, c->peer->id, "peer TLS start failed error=\"%s\"",
		      net_tls_reason(c->tls));
		conn_close(c, "TLS start failed");
		return;
	}
	/* With TLS the Hello waits inside net_tls until the handshake is over. */
	bool auth = c->p->secrets.n != 0;
	if (auth && net_peer_nonce(c->nonce_self) != NET_OK) {
		conn_close(c, "no random bytes");
		return;
	}
	if (send_hello(c, auth, false) != NET_OK)
		return;
	start_reading(c);
}

static void dial(struct peer *pe)
{
	struct net_peers *p = pe->p;
	if (p->closing || pe->conn != NULL)
		return;
	struct conn *c = conn_new(p, true);
	if (c == NULL) {
		schedule_redial(pe);
		return;
	}
	c->peer = pe;
	pe->conn = c;
	c->connect_req.data = c;
	/* Leave from our own peer address (port 0), not the default source: on loopback every
	 * node would otherwise appear as 127.0.0.1, and partitions (iptables by source address)
	 * could not tell the nodes apart. */
	struct sockaddr_storage local;
	if (net_parse_addr(p->listen_addr, &local) == NET_OK &&
	    local.ss_family == pe->sa.ss_family) {
		if (local.ss_family == AF_INET)
			((struct sockaddr_in *)&local)->sin_port = 0;
		else
			((struct sockaddr_in6 *)&local)->sin6_port = 0;
		int brc = uv_tcp_bind(&c->tcp, (const struct sockaddr *)&local, 0);
		if (brc != 0)
			logf_(p, 3, pe->id, "peer source bind failed error=\"%s\"",
			      uv_strerror(brc));
	}
	int rc = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&pe->sa,
				connect_cb);
	if (rc != 0)
		conn_close(c, uv_strerror(rc));
}

static void retry_cb(uv_timer_t *t)
{
	dial(t->data);
}

static void schedule_redial(struct peer *pe)
{
	if (pe->removed)
		pe->backoff_ms = NET_PEER_BACKOFF_MAX_MS;
	uint32_t b = pe->backoff_ms ? pe->backoff_ms : NET_PEER_BACKOFF_MIN_MS;
	uint32_t delay = b / 2 + rand32(pe->p) % (b / 2 + 1); /* jitter: [b/2, b] */
	pe->backoff_ms = b * 2 > NET_PEER_BACKOFF_MAX_MS ? NET_PEER_BACKOFF_MAX_MS : b * 2;
	uv_timer_start(&pe->retry, retry_cb, delay, 0);
}

static void accept_cb(uv_stream_t *server, int status)
{
	struct net_peers *p = server->data;
	if (status < 0 || p->closing)
		return;
	struct conn *c = conn_new(p, false);
	if (c == NULL)
		return;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
		conn_close(c, "accept failed");
		return;
	}
	start_reading(c);
}

/* Liveness of every link, independent of what Raft sends: an idle link gets an empty frame
 * (a zero-length PeerFrame) every NET_PEER_KEEPALIVE_MS; a link silent for NET_PEER_DEAD_MS,
 * or a connection not through its handshake in NET_PEER_HANDSHAKE_MS, is closed and redialled.
 * Without this a partition that drops packets would leave TCP waiting in retransmission
 * backoff long after the network healed. */
static void keepalive_cb(uv_timer_t *t)
{
	struct net_peers *p = t->data;
	uint64_t now = uv_now(p->loop);
	struct conn *c = p->conns;
	while (c != NULL) {
		struct conn *next = c->next;
		if (!c->closing) {
			if (c->stage != ST_UP && now - c->opened_ms > NET_PEER_HANDSHAKE_MS)
				conn_close(c, "handshake timed out");
			else if (c->stage == ST_UP && now - c->last_rx_ms > NET_PEER_DEAD_MS)
				conn_close(c, "peer silent");
		}
		c = next;
	}
	for (size_t i = 0; i < p->n_peers; i++) {
		struct peer *pe = &p->peers[i];
		if (!pe->up || pe->conn == NULL || now - pe->last_tx_ms < NET_PEER_KEEPALIVE_MS)
			continue;
		uint8_t *b = calloc(1, NET_FRAME_HEADER);
		if (b != NULL) {
			pe->last_tx_ms = now;
			conn_write(pe->conn, pe, b, NET_FRAME_HEADER);
		}
	}
}

/* ------------------------------------------------------------------------------ API */

void net_peers_set_incarnation(struct net_peers *p, uint64_t incarnation)
{
	p->incarnation = incarnation;
}

void net_peers_set_secrets(struct net_peers *p, const struct net_peer_secrets *s)
{
	assert(!p->listening);
	assert(s->n <= NET_PEER_SECRETS_MAX);
	p->secrets = *s;
}

uint64_t net_peers_auth_refused(const struct net_peers *p, enum net_peer_refusal r)
{
	return (unsigned)r < NET_PEER_REFUSALS ? p->refused[r] : 0;
}

void net_peers_set_tls(struct net_peers *p, SSL_CTX *ctx)
{
	assert(!p->listening);
	p->tls_ctx = ctx;
}

int net_peers_new(uv_loop_t *loop, uint64_t self_id, uint64_t cluster_id, const char *listen_addr,
		  const char *self_client_addr, const struct net_peers_cbs *cbs, void *arg,
		  struct net_peers **out)
{
	struct net_peers *p = calloc(1, sizeof *p);
	if (p == NULL)
		return NET_ENOMEM;
	p->read_buf = malloc(NET_PEER_READ_BYTES);
	if (p->read_buf == NULL) {
		free(p);
		return NET_ENOMEM;
	}
	p->loop = loop;
	p->self_id = self_id;
	p->cluster_id = cluster_id;
	snprintf(p->listen_addr, sizeof p->listen_addr, "%s", listen_addr);
	snprintf(p->client_addr, sizeof p->client_addr, "%s", self_client_addr);
	p->cbs = *cbs;
	p->arg = arg;
	p->rand_state = (self_id * 0x9e3779b97f4a7c15ull) ^ (uint64_t)uv_hrtime() ^ 1;
	*out = p;
	return NET_OK;
}

int net_peers_add(struct net_peers *p, uint64_t id, const char *addr)
{
	if (p->n_peers >= NET_PEERS_MAX || id == p->self_id || peer_find(p, id) != NULL)
		return NET_EPROTO;
	struct peer *pe = &p->peers[p->n_peers];
	memset(pe, 0, sizeof *pe);
	if (net_parse_addr(addr, &pe->sa) != NET_OK)
		return NET_EADDR;
	pe->id = id;
	pe->p = p;
	pe->backoff_ms = NET_PEER_BACKOFF_MIN_MS;
	snprintf(pe->addr, sizeof pe->addr, "%s", addr);
	p->n_peers++;
	return NET_OK;
}

int net_peers_add_live(struct net_peers *p, uint64_t id, const char *addr)
{
	if (!p->listening)
		return net_peers_add(p, id, addr);
	int rc = net_peers_add(p, id, addr);
	if (rc != NET_OK)
		return rc;
	struct peer *pe = &p->peers[p->n_peers - 1];
	uv_timer_init(p->loop, &pe->retry);
	pe->retry.data = pe;
	p->handles_open++;
	if (pe->id > p->self_id)
		dial(pe);
	return NET_OK;
}

bool net_peers_known(const struct net_peers *p, uint64_t id)
{
	for (size_t i = 0; i < p->n_peers; i++)
		if (p->peers[i].id == id)
			return true;
	return false;
}

void net_peers_forget(struct net_peers *p, uint64_t id)
{
	struct peer *pe = peer_find(p, id);
	if (pe == NULL || pe->removed)
		return;
	pe->removed = true;
	pe->backoff_ms = NET_PEER_BACKOFF_MAX_MS;
	logf_(p, 1, id, "peer removed from the cluster: dialled rarely, to tell it so");
}

int net_peers_start(struct net_peers *p)
{
	int uv_err = 0;
	int rc = net_tcp_listen(p->loop, &p->listener, p, p->listen_addr, 128, accept_cb, &uv_err);
	if (rc == NET_EADDR)
		return NET_EADDR;
	p->handles_open++;
	p->listening = true;
	if (rc != NET_OK) {
		logf_(p, 0, 0, "peer listen failed addr=%s error=\"%s\"", p->listen_addr,
		      uv_strerror(uv_err));
		return NET_EIO;
	}
	uv_timer_init(p->loop, &p->keepalive);
	p->keepalive.data = p;
	p->handles_open++;
	p->keepalive_on = true;
	uv_timer_start(&p->keepalive, keepalive_cb, NET_PEER_KEEPALIVE_MS / 2,
		       NET_PEER_KEEPALIVE_MS / 2);
	for (size_t i = 0; i < p->n_peers; i++) {
		struct peer *pe = &p->peers[i];
		uv_timer_init(p->loop, &pe->retry);
		pe->retry.data = pe;
		p->handles_open++;
		if (pe->id > p->self_id)
			dial(pe);
	}
	return NET_OK;
}

static int reserve(struct peer *pe, size_t more)
{
	if (pe->len == 0)
		pe->len = NET_FRAME_HEADER;
	if (pe->len + more <= pe->cap)
		return NET_OK;
	size_t cap = pe->cap ? pe->cap : 4096;
	while (cap < pe->len + more)
		cap *= 2;
	uint8_t *nb = realloc(pe->buf, cap);
	if (nb == NULL)
		return NET_ENOMEM;
	pe->buf = nb;
	pe->cap = cap;
	return NET_OK;
}

static int check_room(struct net_peers *p, uint64_t to, size_t need, struct peer **out)
{
	struct peer *pe = peer_find(p, to);
	if (pe == NULL)
		return NET_EPROTO;
	if (!pe->up || pe->conn == NULL)
		return NET_ECLOSED;
	size_t pending = pe->len ? pe->len : NET_FRAME_HEADER;
	if (pe->queued + pending + need > NET_PEER_QUEUE_BYTES_MAX ||
	    pending + need > NET_PEER_FRAME_MAX)
		return NET_EFULL;
	int rc = reserve(pe, need);
	if (rc != NET_OK)
		return rc;
	*out = pe;
	return NET_OK;
}

int net_peers_append(struct net_peers *p, uint64_t to, uint32_t field, const void *data, size_t len)
{
	struct peer *pe;
	int rc = check_room(p, to, len + 16, &pe);
	if (rc != NET_OK)
		return rc;
	pe->len += net_pb_field_header(pe->buf + pe->len, field, len);
	memcpy(pe->buf + pe->len, data, len);
	pe->len += len;
	return NET_OK;
}

int net_peers_append_msg(struct net_peers *p, uint64_t to, uint32_t field,
			 const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	struct peer *pe;
	int rc = check_room(p, to, len + 16, &pe);
	if (rc != NET_OK)
		return rc;
	pe->len += net_pb_field_header(pe->buf + pe->len, field, len);
	size_t packed = protobuf_c_message_pack(m, pe->buf + pe->len);
	assert(packed == len);
	pe->len += packed;
	return NET_OK;
}

void net_peers_flush(struct net_peers *p)
{
	for (size_t i = 0; i < p->n_peers; i++) {
		struct peer *pe = &p->peers[i];
		if (pe->len <= NET_FRAME_HEADER) {
			pe->len = 0;
			continue;
		}
		if (!pe->up || pe->conn == NULL) {
			pe->len = 0;
			continue;
		}
		net_frame_header(pe->buf, (uint32_t)(pe->len - NET_FRAME_HEADER));
		pe->last_tx_ms = uv_now(p->loop);
		ssize_t done = net_stream_try_write(pe->conn->tls, (uv_stream_t *)&pe->conn->tcp,
						    pe->buf, pe->len);
		if (done < 0) {
			pe->len = 0;
			conn_close(pe->conn, uv_strerror((int)done));
			continue;
		}
		if ((size_t)done == pe->len) {
			/* all sent: the buffer stays for the next turn unless large */
			pe->len = 0;
			if (pe->cap > NET_OUT_KEEP_BYTES) {
				free(pe->buf);
				pe->buf = NULL;
				pe->cap = 0;
			}
			continue;
		}
		if (done > 0) {
			memmove(pe->buf, pe->buf + done, pe->len - (size_t)done);
			pe->len -= (size_t)done;
		}
		uint8_t *buf = pe->buf;
		size_t len = pe->len;
		pe->buf = NULL;
		pe->len = pe->cap = 0;
		conn_write(pe->conn, pe, buf, len);
	}
}

bool net_peers_up(const struct net_peers *p, uint64_t id)
{
	const struct peer *pe = peer_find((struct net_peers *)p, id);
	return pe != NULL && pe->up;
}

size_t net_peers_queue_bytes(const struct net_peers *p, uint64_t id)
{
	const struct peer *pe = peer_find((struct net_peers *)p, id);
	return pe != NULL ? pe->queued + pe->len : 0;
}

const char *net_peers_client_addr(const struct net_peers *p, uint64_t id)
{
	const struct peer *pe = peer_find((struct net_peers *)p, id);
	return pe ? pe->client_addr : "";
}

void net_peers_close(struct net_peers *p, void (*done)(void *arg), void *arg)
{
	p->closing = true;
	p->done = done;
	p->done_arg = arg;
	/* Hold one count so that nothing frees p before every close is issued. */
	p->handles_open++;
	for (struct conn *c = p->conns; c != NULL; c = c->next)
		conn_close(c, "shutdown");
	for (size_t i = 0; i < p->n_peers; i++) {
		struct peer *pe = &p->peers[i];
		if (pe->retry.loop != NULL && !uv_is_closing((uv_handle_t *)&pe->retry)) {
			pe->retry.data = p;
			uv_close((uv_handle_t *)&pe->retry, handle_closed_cb);
		}
	}
	if (p->listening) {
		p->listener.data = p;
		uv_close((uv_handle_t *)&p->listener, handle_closed_cb);
	}
	if (p->keepalive_on) {
		p->keepalive_on = false;
		uv_close((uv_handle_t *)&p->keepalive, handle_closed_cb);
	}
	uv_handle_t fake;
	fake.data = p;
	handle_closed_cb(&fake);
}
