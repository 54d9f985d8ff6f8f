/* server.c — client connections on libuv: frame decoding, in-flight limit with read
 * back-pressure, per-turn reply gathering (one uv_write per connection per flush) and a bounded
 * output buffer. Connections are reference counted so that answers arriving after a close are
 * simply dropped. With TLS (net_server_set_tls) every byte goes through the connection's
 * net_tls, and a sweep closes connections whose handshake is not over in NET_TLS_HANDSHAKE_MS.
 */
#include "net/server.h"
#include "net/listen.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct net_conn {
	uv_tcp_t tcp;
	struct net_server *s;
	int refs; /* 1 for the open handle + 1 per pending request + 1 while dirty */
	bool closing, reading, dirty;
	bool resume; /* reading was paused at the in-flight limit and may start again */
	struct net_decoder dec;
	struct net_tls *tls; /* NULL in plaintext */
	uint64_t opened_ms;
	uint8_t *out; /* replies gathered this turn (framed) */
	size_t out_len, out_cap;
	size_t queued; /* bytes in uv_write not yet completed */
	uint32_t inflight;
	uint64_t held_bytes;          /* what the handler says it holds for this connection */
	uint32_t auth;                /* the handler's authentication state (net_conn_auth) */
	struct net_conn *prev, *next; /* all connections */
	struct net_conn *dirty_next;
};

struct net_server {
	uv_loop_t *loop;
	char addr[NET_ADDR_STR_MAX];
	struct net_server_cbs cbs;
	void *arg;
	uv_tcp_t listener;
	bool listening;
	SSL_CTX *tls_ctx; /* borrowed; NULL in plaintext */
	bool tls_verify;  /* clients must present a certificate of the CA */
	uv_timer_t tls_sweep;
	bool tls_sweep_on;
	struct net_conn *conns;
	size_t n_conns;
	struct net_conn *dirty;
	uint8_t *read_buf;
};

struct wreq {
	uv_write_t req;
	struct net_conn *c;
	uint8_t *buf;
	size_t len;
};

static void logf_(struct net_server *s, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void logf_(struct net_server *s, int level, const char *fmt, ...)
{
	if (s->cbs.on_log == NULL)
		return;
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	s->cbs.on_log(s->arg, level, msg);
}

void net_conn_ref(struct net_conn *c)
{
	c->refs++;
}

void net_conn_unref(struct net_conn *c)
{
	assert(c->refs > 0);
	if (--c->refs == 0) {
		assert(c->closing);
		net_decoder_free(&c->dec);
		free(c->out);
		free(c);
	}
}

bool net_conn_closed(const struct net_conn *c)
{
	return c->closing;
}

static void conn_closed_cb(uv_handle_t *h)
{
	struct net_conn *c = h->data;
	net_tls_free(c->tls); /* cancels writes kept for the handshake: before the unref */
	c->tls = NULL;
	net_conn_unref(c);
}

void net_conn_close(struct net_conn *c, const char *why)
{
	if (c->closing)
		return;
	struct net_server *s = c->s;
	c->closing = true;
	logf_(s, 3, "client connection closed reason=\"%s\"", why);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->n_conns--;
	c->out_len = 0;
	net_tls_shutdown(c->tls);
	uv_close((uv_handle_t *)&c->tcp, conn_closed_cb);
}

static void process_frames(struct net_conn *c)
{
	struct net_server *s = c->s;
	while (!c->closing && c->inflight < NET_CLIENT_INFLIGHT_MAX) {
		const uint8_t *payload;
		uint32_t len;
		int rc = net_decoder_next(&c->dec, &payload, &len);
		if (rc == 0)
			return;
		if (rc < 0) {
			logf_(s, 2, "client frame refused reason=\"%s\"", net_strerror(rc));
			net_conn_close(c, net_strerror(rc));
			return;
		}
		c->inflight++;
		if (s->cbs.on_request(s->arg, c, payload, len) < 0) {
			net_conn_close(c, "bad request");
			return;
		}
	}
	if (!c->closing && c->reading && c->inflight >= NET_CLIENT_INFLIGHT_MAX) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = false;
	}
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)suggested;
	struct net_conn *c = h->data;
	buf->base = (char *)c->s->read_buf;
	buf->len = NET_CLIENT_READ_CHUNK;
}

/* Request bytes (plaintext): decoded into frames and handled. */
static int on_bytes(void *arg, const uint8_t *data, size_t len)
{
	struct net_conn *c = arg;
	/* frames are read in place from the read buffer; what is left is copied at the end */
	if (net_decoder_lend(&c->dec, data, len) != NET_OK) {
		net_conn_close(c, "out of memory");
		return NET_ENOMEM;
	}
	process_frames(c);
	if (net_decoder_keep(&c->dec) != NET_OK && !c->closing) {
		net_conn_close(c, "out of memory");
		return NET_ENOMEM;
	}
	return c->closing ? NET_ECLOSED : NET_OK;
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	(void)buf;
	struct net_conn *c = st->data;
	if (nread == 0 || c->closing)
		return;
	if (nread < 0) {
		net_conn_close(c, nread == UV_EOF ? "closed by client" : uv_strerror((int)nread));
		return;
	}
	if (c->tls == NULL) {
		(void)on_bytes(c, c->s->read_buf, (size_t)nread);
		return;
	}
	int rc = net_tls_feed(c->tls, c->s->read_buf, (size_t)nread, on_bytes, c);
	if (rc == NET_OK || c->closing)
		return;
	if (rc == NET_ETLS) {
		/* Debug only: a plaintext client or a port scanner is no news. */
		logf_(c->s, 3, "client TLS refused reason=\"%s\"", net_tls_reason(c->tls));
		net_conn_close(c, "TLS refused");
	} else {
		net_conn_close(c, rc == NET_ECLOSED ? "closed by client" : net_strerror(rc));
	}
}

static void start_reading(struct net_conn *c)
{
	if (c->closing || c->reading)
		return;
	int rc = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
	if (rc != 0) {
		net_conn_close(c, uv_strerror(rc));
		return;
	}
	c->reading = true;
}

static void mark_dirty(struct net_conn *c)
{
	if (!c->dirty) {
		c->dirty = true;
		net_conn_ref(c);
		c->dirty_next = c->s->dirty;
		c->s->dirty = c;
	}
}

void net_conn_request_done(struct net_conn *c)
{
	assert(c->inflight > 0);
	c->inflight--;
	/* Never handle new requests from inside an answer (the answer may come from the middle
	 * of a Raft update): resuming waits for the next net_server_flush. */
	if (!c->closing && !c->reading && c->inflight <= NET_CLIENT_INFLIGHT_MAX / 2) {
		c->resume = true;
		mark_dirty(c);
	}
}

uint32_t net_conn_inflight(const struct net_conn *c)
{
	return c->inflight;
}

uint64_t net_conn_held_bytes(const struct net_conn *c)
{
	return c->held_bytes;
}

void net_conn_hold_bytes(struct net_conn *c, int64_t delta)
{
	assert(delta >= 0 || c->held_bytes >= (uint64_t)-delta);
	c->held_bytes += (uint64_t)delta;
}

void net_conn_send(struct net_conn *c, const ProtobufCMessage *m)
{
	if (c->closing)
		return;
	size_t n = protobuf_c_message_get_packed_size(m);
	if (c->queued + c->out_len + n + NET_FRAME_HEADER > NET_CLIENT_OUTBUF_MAX) {
		logf_(c->s, 2, "client dropped reason=output-buffer-full bytes=%zu",
		      c->queued + c->out_len);
		net_conn_close(c, "output buffer full");
		return;
	}
	size_t need = c->out_len + NET_FRAME_HEADER + n;
	if (need > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 1024;
		while (cap < need)
			cap *= 2;
		uint8_t *nb = realloc(c->out, cap);
		if (nb == NULL) {
			net_conn_close(c, "out of memory");
			return;
		}
		c->out = nb;
		c->out_cap = cap;
	}
	net_frame_header(c->out + c->out_len, (uint32_t)n);
	protobuf_c_message_pack(m, c->out + c->out_len + NET_FRAME_HEADER);
	c->out_len = need;
	mark_dirty(c);
}

static void write_cb(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;
	struct net_conn *c = w->c;
	assert(c->queued >= w->len);
	c->queued -= w->len;
	free(w->buf);
	free(w);
	if (status < 0 && status != UV_ECANCELED)
		net_conn_close(c, uv_strerror(status));
	net_conn_unref(c);
}

void net_server_flush(struct net_server *s)
{
	struct net_conn *c = s->dirty;
	s->dirty = NULL;
	while (c != NULL) {
		struct net_conn *next = c->dirty_next;
		c->dirty = false;
		c->dirty_next = NULL;
		if (c->resume && !c->closing) {
			c->resume = false;
			process_frames(c); /* frames already buffered, then the socket again */
			if (!c->closing && c->inflight < NET_CLIENT_INFLIGHT_MAX)
				start_reading(c);
		}
		if (!c->closing && c->out_len > 0) {
			ssize_t done = net_stream_try_write(c->tls, (uv_stream_t *)&c->tcp, c->out,
							    c->out_len);
			if (done < 0) {
				net_conn_close(c, uv_strerror((int)done));
			} else if ((size_t)done == c->out_len) {
				/* all sent: the buffer stays for the next turn unless large */
				c->out_len = 0;
				if (c->out_cap > NET_OUT_KEEP_BYTES) {
					free(c->out);
					c->out = NULL;
					c->out_cap = 0;
				}
			} else if (done > 0) {
				memmove(c->out, c->out + done, c->out_len - (size_t)done);
				c->out_len -= (size_t)done;
			}
		}
		if (!c->closing && c->out_len > 0) {
			struct wreq *w = malloc(sizeof *w);
			if (w == NULL) {
				net_conn_close(c, "out of memory");
			} else {
				w->c = c;
				w->buf = c->out;
				w->len = c->out_len;
				c->out = NULL;
				c->out_len = c->out_cap = 0;
				uv_buf_t b = uv_buf_init((char *)w->buf, (unsigned)w->len);
				net_conn_ref(c);
				int rc = net_stream_write(c->tls, (uv_stream_t *)&c->tcp, &w->req,
							  &b, 1, write_cb);
				if (rc != 0) {
					free(w->buf);
					free(w);
					net_conn_unref(c);
					net_conn_close(c, uv_strerror(rc));
				} else {
					c->queued += w->len;
				}
			}
		}
		net_conn_unref(c);
		c = next;
	}
}

static void accept_cb(uv_stream_t *server, int status)
{
	struct net_server *s = server->data;
	if (status < 0)
		return;
	struct net_conn *c = calloc(1, sizeof *c);
	if (c == NULL)
		return;
	c->s = s;
	c->refs = 1;
	uv_tcp_init(s->loop, &c->tcp);
	c->tcp.data = c;
	net_decoder_init(&c->dec, NET_CLIENT_FRAME_MAX);
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->n_conns++;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
		net_conn_close(c, "accept failed");
		return;
	}
	if (s->n_conns > NET_CLIENTS_MAX) {
		logf_(s, 1, "client refused reason=too-many-connections max=%u", NET_CLIENTS_MAX);
		net_conn_close(c, "too many connections");
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	c->opened_ms = uv_now(s->loop);
	if (s->tls_ctx != NULL &&
	    net_tls_new(s->tls_ctx, s->tls_verify ? NET_TLS_ACCEPT_VERIFY : NET_TLS_ACCEPT,
			(uv_stream_t *)&c->tcp, &c->tls) != NET_OK) {
		net_conn_close(c, "out of memory");
		return;
	}
	start_reading(c);
}

/* A handshake that stalls costs only its connection. */
static void tls_sweep_cb(uv_timer_t *t)
{
	struct net_server *s = t->data;
	uint64_t now = uv_now(s->loop);
	struct net_conn *c = s->conns;
	while (c != NULL) {
		struct net_conn *next = c->next;
		if (c->tls != NULL && !net_tls_handshake_done(c->tls) &&
		    now - c->opened_ms > NET_TLS_HANDSHAKE_MS) {
			logf_(s, 3, "client TLS refused reason=\"handshake timed out\"");
			net_conn_close(c, "TLS handshake timed out");
		}
		c = next;
	}
}

void net_server_set_tls(struct net_server *s, SSL_CTX *ctx, bool require_client_cert)
{
	assert(!s->listening);
	s->tls_ctx = ctx;
	s->tls_verify = require_client_cert;
}

int net_server_new(uv_loop_t *loop, const char *listen_addr, const struct net_server_cbs *cbs,
		   void *arg, struct net_server **out)
{
	struct net_server *s = calloc(1, sizeof *s);
	if (s == NULL)
		return NET_ENOMEM;
	s->read_buf = malloc(NET_CLIENT_READ_CHUNK);
	if (s->read_buf == NULL) {
		free(s);
		return NET_ENOMEM;
	}
	s->loop = loop;
	snprintf(s->addr, sizeof s->addr, "%s", listen_addr);
	s->cbs = *cbs;
	s->arg = arg;
	*out = s;
	return NET_OK;
}

int net_server_start(struct net_server *s)
{
	int uv_err = 0;
	int rc = net_tcp_listen(s->loop, &s->listener, s, s->addr, 1024, accept_cb, &uv_err);
	if (rc == NET_EADDR)
		return NET_EADDR;
	s->listening = true;
	if (rc != NET_OK) {
		logf_(s, 0, "client listen failed addr=%s error=\"%s\"", s->addr,
		      uv_strerror(uv_err));
		return NET_EIO;
	}
	if (s->tls_ctx != NULL) {
		uv_timer_init(s->loop, &s->tls_sweep);
		s->tls_sweep.data = s;
		s->tls_sweep_on = true;
		uv_timer_start(&s->tls_sweep, tls_sweep_cb, 1000, 1000);
	}
	return NET_OK;
}

void net_server_stop_accepting(struct net_server *s)
{
	if (s->listening) {
		s->listening = false;
		uv_close((uv_handle_t *)&s->listener, NULL);
	}
	if (s->tls_sweep_on) {
		s->tls_sweep_on = false;
		uv_close((uv_handle_t *)&s->tls_sweep, NULL);
	}
}

size_t net_server_connections(const struct net_server *s)
{
	return s->n_conns;
}

void net_server_close(struct net_server *s)
{
	net_server_stop_accepting(s);
	while (s->conns != NULL)
		net_conn_close(s->conns, "shutdown");
	/* drop the references the pending-flush list holds: nothing will be written now */
	struct net_conn *c = s->dirty;
	s->dirty = NULL;
	while (c != NULL) {
		struct net_conn *next = c->dirty_next;
		c->dirty = false;
		c->dirty_next = NULL;
		net_conn_unref(c);
		c = next;
	}
}

void net_server_free(struct net_server *s)
{
	if (s == NULL)
		return;
	assert(s->conns == NULL);
	free(s->read_buf);
	free(s);
}

uint32_t net_conn_auth(const struct net_conn *c)
{
	return c->auth;
}

void net_conn_set_auth(struct net_conn *c, uint32_t auth)
{
	c->auth = auth;
}
