/* resp_server.c — RESP connections on libuv (see resp_server.h). Each command gets a slot
 * number in arrival order; answers land in a per-connection ring of slots and leave in slot
 * order, so a pipeline of GETs served by different groups' leaders is still answered in the
 * order it was sent (the RESP contract). Connections are reference counted like the protobuf
 * port's: an answer arriving after a close is dropped. TLS (net_resp_server_set_tls) works as
 * on the protobuf port: bytes through the connection's net_tls, stalled handshakes swept.
 */
#include "net/resp_server.h"

#include <arpa/inet.h>
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/frame.h"
#include "net/listen.h"
#include "net/net_limits.h"

struct slot {
	uint8_t *buf; /* the reply, when done */
	size_t len;
	bool done;
};

struct net_resp_conn {
	uv_tcp_t tcp;
	uv_shutdown_t shut;
	struct net_resp_server *s;
	int refs; /* 1 for the open handle + 1 per pending answer + 1 while dirty + writes */
	bool closing, reading, dirty, resume, quit, shutting;
	bool holding; /* on_command asked to wait until every earlier command is answered */
	uint64_t id;
	char peer[NET_ADDR_STR_MAX];
	void *user;
	uint8_t *in; /* bytes read and not yet parsed into commands */
	size_t in_len, in_cap;
	struct net_resp_parser parser;
	uint64_t next_slot, next_out; /* next slot to give a command; next to write */
	struct slot *slots;           /* ring of slot_cap (a power of two) */
	size_t slot_cap;
	size_t held;             /* bytes in done slots not yet in out */
	struct net_resp_buf out; /* in-order replies gathered this turn */
	size_t queued;           /* bytes in uv_write not yet completed */
	struct net_tls *tls;     /* NULL in plaintext */
	uint64_t opened_ms;
	struct net_resp_conn *prev, *next, *dirty_next;
};

struct net_resp_server {
	uv_loop_t *loop;
	char addr[NET_ADDR_STR_MAX];
	size_t bulk_max;
	struct net_resp_server_cbs cbs;
	void *arg;
	uv_tcp_t listener;
	bool listening;
	SSL_CTX *tls_ctx; /* borrowed; NULL in plaintext */
	bool tls_verify;
	uv_timer_t tls_sweep;
	bool tls_sweep_on;
	struct net_resp_conn *conns, *dirty;
	size_t n_conns;
	uint64_t next_id;
	uint8_t *read_buf;
};

struct wreq {
	uv_write_t req;
	struct net_resp_conn *c;
	uint8_t *buf;
	size_t len;
};

static void logf_(struct net_resp_server *s, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void logf_(struct net_resp_server *s, int level, const char *fmt, ...)
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

void net_resp_conn_ref(struct net_resp_conn *c)
{
	c->refs++;
}

void net_resp_conn_unref(struct net_resp_conn *c)
{
	assert(c->refs > 0);
	if (--c->refs == 0) {
		assert(c->closing);
		for (size_t i = 0; i < c->slot_cap; i++)
			free(c->slots[i].buf);
		free(c->slots);
		free(c->in);
		free(c->out.p);
		net_resp_parser_free(&c->parser);
		free(c);
	}
}

bool net_resp_conn_answered(const struct net_resp_conn *c, uint64_t slot)
{
	return slot < c->next_out || c->slots[slot & (c->slot_cap - 1)].done;
}

bool net_resp_conn_closed(const struct net_resp_conn *c)
{
	return c->closing;
}

uint64_t net_resp_conn_id(const struct net_resp_conn *c)
{
	return c->id;
}

const char *net_resp_conn_peer(const struct net_resp_conn *c)
{
	return c->peer;
}

void *net_resp_conn_user(const struct net_resp_conn *c)
{
	return c->user;
}

void net_resp_conn_set_user(struct net_resp_conn *c, void *user)
{
	c->user = user;
}

static void closed_cb(uv_handle_t *h)
{
	struct net_resp_conn *c = h->data;
	net_tls_free(c->tls);
	c->tls = NULL;
	net_resp_conn_unref(c);
}

void net_resp_conn_close(struct net_resp_conn *c, const char *why)
{
	if (c->closing)
		return;
	struct net_resp_server *s = c->s;
	c->closing = true;
	logf_(s, 3, "resp connection closed peer=%s reason=\"%s\"", c->peer, why);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->n_conns--;
	if (s->cbs.on_close)
		s->cbs.on_close(s->arg, c);
	c->user = NULL;
	net_tls_shutdown(c->tls);
	uv_close((uv_handle_t *)&c->tcp, closed_cb);
}

static void mark_dirty(struct net_resp_conn *c)
{
	if (!c->dirty) {
		c->dirty = true;
		net_resp_conn_ref(c);
		c->dirty_next = c->s->dirty;
		c->s->dirty = c;
	}
}

static uint64_t unanswered(const struct net_resp_conn *c)
{
	return c->next_slot - c->next_out;
}

uint64_t net_resp_conn_unanswered(const struct net_resp_conn *c)
{
	return unanswered(c);
}

/* Room for one more slot in the ring (it grows by doubling up to NET_RESP_INFLIGHT_MAX + 1:
 * the +1 is a protocol error's reply). */
static bool slot_room(struct net_resp_conn *c)
{
	if (unanswered(c) < c->slot_cap)
		return true;
	size_t cap = c->slot_cap ? c->slot_cap * 2 : 16;
	struct slot *n = calloc(cap, sizeof *n);
	if (n == NULL)
		return false;
	for (uint64_t s = c->next_out; s < c->next_slot; s++)
		n[s & (cap - 1)] = c->slots[s & (c->slot_cap - 1)];
	free(c->slots);
	c->slots = n;
	c->slot_cap = cap;
	return true;
}

static void check_out(struct net_resp_conn *c)
{
	if (c->closing)
		return;
	size_t unsent = c->queued + c->out.len + c->held;
	if (unsent > NET_RESP_OUTBUF_MAX) {
		logf_(c->s, 2, "resp client dropped reason=output-buffer-full peer=%s bytes=%zu",
		      c->peer, unsent);
		net_resp_conn_close(c, "output buffer full");
	}
}

void net_resp_conn_reply(struct net_resp_conn *c, uint64_t slot, struct net_resp_buf *b)
{
	uint8_t *buf = b->p;
	size_t len = b->len;
	bool bad = b->oom || len == 0;
	memset(b, 0, sizeof *b);
	if (c->closing) {
		free(buf);
		return;
	}
	assert(slot >= c->next_out && slot < c->next_slot);
	if (bad) {
		free(buf);
		static const char oom[] = "-ERR out of memory\r\n";
		buf = malloc(sizeof oom - 1);
		if (buf == NULL) {
			net_resp_conn_close(c, "out of memory");
			return;
		}
		memcpy(buf, oom, sizeof oom - 1);
		len = sizeof oom - 1;
	}
	struct slot *sl = &c->slots[slot & (c->slot_cap - 1)];
	assert(!sl->done);
	sl->buf = buf;
	sl->len = len;
	sl->done = true;
	c->held += len;
	while (c->next_out < c->next_slot) {
		sl = &c->slots[c->next_out & (c->slot_cap - 1)];
		if (!sl->done)
			break;
		if (c->out.len == 0 && c->out.p == NULL) {
			/* the common case, one reply per turn: hand the buffer over as is */
			c->out.p = sl->buf;
			c->out.len = c->out.cap = sl->len;
		} else {
			net_resp_put_raw(&c->out, sl->buf, sl->len);
			free(sl->buf);
		}
		c->held -= sl->len;
		sl->buf = NULL;
		sl->done = false;
		c->next_out++;
	}
	if (c->out.oom) {
		net_resp_conn_close(c, "out of memory");
		return;
	}
	mark_dirty(c);
	if (!c->reading && !c->quit &&
	    (c->holding ? unanswered(c) == 0 : unanswered(c) <= NET_RESP_INFLIGHT_MAX / 2))
		c->resume = true;
	check_out(c);
}

void net_resp_conn_quit(struct net_resp_conn *c)
{
	c->quit = true;
	if (c->reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = false;
	}
	mark_dirty(c);
}

/* A protocol error: its reply goes after the replies of the commands before it, then the
 * connection closes (as Redis does). */
static void proto_error(struct net_resp_conn *c, const char *text)
{
	logf_(c->s, 2, "resp protocol error peer=%s error=\"%s\"", c->peer, text);
	if (!slot_room(c)) {
		net_resp_conn_close(c, "out of memory");
		return;
	}
	uint64_t slot = c->next_slot++;
	struct net_resp_buf b = {0};
	net_resp_put_errorf(&b, "ERR %s", text);
	net_resp_conn_quit(c);
	net_resp_conn_reply(c, slot, &b);
}

static void process(struct net_resp_conn *c)
{
	struct net_resp_server *s = c->s;
	size_t off = 0;
	c->holding = false;
	while (!c->closing && !c->quit && unanswered(c) < NET_RESP_INFLIGHT_MAX) {
		size_t used = 0;
		int rc = net_resp_parse(&c->parser, c->in + off, c->in_len - off, &used);
		if (rc == 0) {
			if (c->in_len - off > NET_RESP_QUERY_MAX)
				proto_error(c, "Protocol error: command larger than the query "
					       "buffer limit");
			break;
		}
		if (rc < 0) {
			proto_error(c, c->parser.err);
			break;
		}
		const struct net_resp_val *v = c->parser.v;
		if (v[0].n == 0) {
			off += used;
			continue; /* an empty array or line: ignored, as Redis does */
		}
		if (!slot_room(c)) {
			net_resp_conn_close(c, "out of memory");
			break;
		}
		uint64_t slot = c->next_slot++;
		net_resp_conn_ref(c);
		int r = s->cbs.on_command(s->arg, c, slot, v + 1, v[0].n);
		if (r == NET_RESP_HOLD && !c->closing) {
			c->next_slot--; /* not taken: offered again once the earlier are answered */
			c->holding = true;
			net_resp_conn_unref(c);
			if (c->reading) {
				uv_read_stop((uv_stream_t *)&c->tcp);
				c->reading = false;
			}
			break;
		}
		off += used;
		bool closing = c->closing;
		net_resp_conn_unref(c);
		if (closing)
			return;
		if (r < 0) {
			net_resp_conn_close(c, "bad command");
			return;
		}
	}
	if (c->closing)
		return;
	if (off > 0) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
	if (c->reading && unanswered(c) >= NET_RESP_INFLIGHT_MAX) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = false;
	}
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)suggested;
	struct net_resp_conn *c = h->data;
	buf->base = (char *)c->s->read_buf;
	buf->len = NET_CLIENT_READ_CHUNK;
}

/* Command bytes (plaintext): appended to the input and parsed. */
static int on_bytes(void *arg, const uint8_t *data, size_t len)
{
	struct net_resp_conn *c = arg;
	if (c->quit)
		return NET_OK;
	size_t need = c->in_len + len;
	if (need > c->in_cap) {
		size_t cap = c->in_cap ? c->in_cap : 4096;
		while (cap < need)
			cap *= 2;
		uint8_t *n = realloc(c->in, cap);
		if (n == NULL) {
			net_resp_conn_close(c, "out of memory");
			return NET_ENOMEM;
		}
		c->in = n;
		c->in_cap = cap;
	}
	memcpy(c->in + c->in_len, data, len);
	c->in_len = need;
	process(c);
	return c->closing ? NET_ECLOSED : NET_OK;
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	(void)buf;
	struct net_resp_conn *c = st->data;
	if (nread == 0 || c->closing)
		return;
	if (nread < 0) {
		net_resp_conn_close(c,
				    nread == UV_EOF ? "closed by client" : uv_strerror((int)nread));
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
		logf_(c->s, 3, "resp client TLS refused peer=%s reason=\"%s\"", c->peer,
		      net_tls_reason(c->tls));
		net_resp_conn_close(c, "TLS refused");
	} else {
		net_resp_conn_close(c, rc == NET_ECLOSED ? "closed by client" : net_strerror(rc));
	}
}

static void start_reading(struct net_resp_conn *c)
{
	if (c->closing || c->reading || c->quit)
		return;
	int rc = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
	if (rc != 0) {
		net_resp_conn_close(c, uv_strerror(rc));
		return;
	}
	c->reading = true;
}

static void write_cb(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;
	struct net_resp_conn *c = w->c;
	assert(c->queued >= w->len);
	c->queued -= w->len;
	free(w->buf);
	free(w);
	if (status < 0 && status != UV_ECANCELED)
		net_resp_conn_close(c, uv_strerror(status));
	net_resp_conn_unref(c);
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
	(void)status;
	struct net_resp_conn *c = req->data;
	net_resp_conn_close(c, "quit");
	net_resp_conn_unref(c);
}

void net_resp_server_flush(struct net_resp_server *s)
{
	struct net_resp_conn *c = s->dirty;
	s->dirty = NULL;
	while (c != NULL) {
		struct net_resp_conn *next = c->dirty_next;
		c->dirty = false;
		c->dirty_next = NULL;
		if (c->resume && !c->closing) {
			c->resume = false;
			process(c); /* commands already buffered, then the socket again */
			if (!c->closing && !c->holding && unanswered(c) < NET_RESP_INFLIGHT_MAX)
				start_reading(c);
		}
		if (!c->closing && c->out.len > 0) {
			ssize_t done = net_stream_try_write(c->tls, (uv_stream_t *)&c->tcp,
							    c->out.p, c->out.len);
			if (done < 0) {
				net_resp_conn_close(c, uv_strerror((int)done));
			} else if ((size_t)done == c->out.len) {
				free(c->out.p); /* often a reply's own buffer, handed over as is */
				memset(&c->out, 0, sizeof c->out);
			} else if (done > 0) {
				memmove(c->out.p, c->out.p + done, c->out.len - (size_t)done);
				c->out.len -= (size_t)done;
			}
		}
		if (!c->closing && c->out.len > 0) {
			struct wreq *w = malloc(sizeof *w);
			if (w == NULL) {
				net_resp_conn_close(c, "out of memory");
			} else {
				w->c = c;
				w->buf = c->out.p;
				w->len = c->out.len;
				memset(&c->out, 0, sizeof c->out);
				uv_buf_t b = uv_buf_init((char *)w->buf, (unsigned)w->len);
				net_resp_conn_ref(c);
				int rc = net_stream_write(c->tls, (uv_stream_t *)&c->tcp, &w->req,
							  &b, 1, write_cb);
				if (rc != 0) {
					free(w->buf);
					free(w);
					net_resp_conn_unref(c);
					net_resp_conn_close(c, uv_strerror(rc));
				} else {
					c->queued += w->len;
				}
			}
		}
		if (!c->closing && c->quit && !c->shutting && unanswered(c) == 0) {
			c->shutting = true;
			c->shut.data = c;
			net_resp_conn_ref(c);
			net_tls_shutdown(c->tls); /* close_notify, then FIN */
			if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, shutdown_cb) != 0) {
				net_resp_conn_unref(c);
				net_resp_conn_close(c, "quit");
			}
		}
		net_resp_conn_unref(c);
		c = next;
	}
}

static void accept_cb(uv_stream_t *server, int status)
{
	struct net_resp_server *s = server->data;
	if (status < 0)
		return;
	struct net_resp_conn *c = calloc(1, sizeof *c);
	if (c == NULL)
		return;
	c->s = s;
	c->refs = 1;
	c->id = ++s->next_id;
	uv_tcp_init(s->loop, &c->tcp);
	c->tcp.data = c;
	struct net_resp_limits lim = {.bulk_max = s->bulk_max,
				      .array_max = NET_RESP_ARRAY_MAX,
				      .inline_max = NET_RESP_INLINE_MAX,
				      .depth_max = 1,
				      .commands = true};
	net_resp_parser_init(&c->parser, &lim);
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->n_conns++;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
		net_resp_conn_close(c, "accept failed");
		return;
	}
	struct sockaddr_storage sa;
	int sl = sizeof sa;
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&sa, &sl) == 0 &&
	    sa.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&sa;
		char ip[INET_ADDRSTRLEN];
		uv_ip4_name(in, ip, sizeof ip);
		snprintf(c->peer, sizeof c->peer, "%s:%u", ip, ntohs(in->sin_port));
	}
	if (s->n_conns > NET_CLIENTS_MAX) {
		logf_(s, 1, "resp client refused reason=too-many-connections max=%u",
		      NET_CLIENTS_MAX);
		net_resp_conn_close(c, "too many connections");
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	c->opened_ms = uv_now(s->loop);
	if (s->tls_ctx != NULL &&
	    net_tls_new(s->tls_ctx, s->tls_verify ? NET_TLS_ACCEPT_VERIFY : NET_TLS_ACCEPT,
			(uv_stream_t *)&c->tcp, &c->tls) != NET_OK) {
		net_resp_conn_close(c, "out of memory");
		return;
	}
	start_reading(c);
}

/* A handshake that stalls costs only its connection. */
static void tls_sweep_cb(uv_timer_t *t)
{
	struct net_resp_server *s = t->data;
	uint64_t now = uv_now(s->loop);
	struct net_resp_conn *c = s->conns;
	while (c != NULL) {
		struct net_resp_conn *next = c->next;
		if (c->tls != NULL && !net_tls_handshake_done(c->tls) &&
		    now - c->opened_ms > NET_TLS_HANDSHAKE_MS) {
			logf_(s, 3,
			      "resp client TLS refused peer=%s reason=\"handshake timed out\"",
			      c->peer);
			net_resp_conn_close(c, "TLS handshake timed out");
		}
		c = next;
	}
}

void net_resp_server_set_tls(struct net_resp_server *s, SSL_CTX *ctx, bool require_client_cert)
{
	assert(!s->listening);
	s->tls_ctx = ctx;
	s->tls_verify = require_client_cert;
}

int net_resp_server_new(uv_loop_t *loop, const char *listen_addr, size_t bulk_max,
			const struct net_resp_server_cbs *cbs, void *arg,
			struct net_resp_server **out)
{
	struct net_resp_server *s = calloc(1, sizeof *s);
	if (s == NULL)
		return NET_ENOMEM;
	s->read_buf = malloc(NET_CLIENT_READ_CHUNK);
	if (s->read_buf == NULL) {
		free(s);
		return NET_ENOMEM;
	}
	s->loop = loop;
	snprintf(s->addr, sizeof s->addr, "%s", listen_addr);
	s->bulk_max = bulk_max;
	s->cbs = *cbs;
	s->arg = arg;
	*out = s;
	return NET_OK;
}

int net_resp_server_start(struct net_resp_server *s)
{
	int uv_err = 0;
	int rc = net_tcp_listen(s->loop, &s->listener, s, s->addr, 1024, accept_cb, &uv_err);
	if (rc == NET_EADDR)
		return NET_EADDR;
	s->listening = true;
	if (rc != NET_OK) {
		logf_(s, 0, "resp listen failed addr=%s error=\"%s\"", s->addr,
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

void net_resp_server_stop_accepting(struct net_resp_server *s)
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

size_t net_resp_server_connections(const struct net_resp_server *s)
{
	return s->n_conns;
}

void net_resp_server_close(struct net_resp_server *s)
{
	net_resp_server_stop_accepting(s);
	while (s->conns != NULL)
		net_resp_conn_close(s->conns, "shutdown");
	struct net_resp_conn *c = s->dirty;
	s->dirty = NULL;
	while (c != NULL) {
		struct net_resp_conn *next = c->dirty_next;
		c->dirty = false;
		c->dirty_next = NULL;
		net_resp_conn_unref(c);
		c = next;
	}
}

void net_resp_server_free(struct net_resp_server *s)
{
	if (s == NULL)
		return;
	assert(s->conns == NULL);
	free(s->read_buf);
	free(s);
}
