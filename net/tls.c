/* tls.c — OpenSSL on the libuv loop through memory BIOs (tls.h). The SSL object reads its
 * ciphertext from rbio, which net_tls_feed fills with what the socket delivered, and writes
 * into wbio, which flush_out empties into one uv_write after every step. No call here waits:
 * when OpenSSL needs more bytes it says WANT_READ and the next read of the socket brings
 * them. Writes asked for before the handshake is over are kept (copied) and encrypted the
 * moment it finishes; their callbacks run when their ciphertext is written.
 */
#include "net/tls.h"

#include <assert.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/frame.h"

/* A write asked for before the handshake finished: its plaintext, copied. */
struct pending {
	struct pending *next;
	uv_write_t *req;
	uv_write_cb cb;
	uint8_t *data;
	size_t len;
};

struct net_tls {
	SSL *ssl;
	BIO *rbio, *wbio; /* owned by ssl */
	uv_stream_t *stream;
	bool done, failed;
	struct pending *pend, **pend_tail;
	char reason[192];
};

/* Plaintext out of SSL_read, handed to the callback and done with before net_tls_feed
 * returns: one buffer per thread (the loop's), not 16 KiB per connection. */
static __thread uint8_t plain[NET_TLS_PLAIN_CHUNK];

/* The uv_write of some ciphertext; user/cb (may be NULL: handshake bytes, alerts) learn the
 * outcome. */
struct twreq {
	uv_write_t req;
	uv_write_t *user;
	uv_write_cb cb;
	uint8_t *buf;
};

void net_tls_error_string(char *out, size_t n, const char *fallback)
{
	unsigned long e = ERR_get_error();
	const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
	if (r != NULL)
		snprintf(out, n, "%s", r);
	else if (e != 0)
		ERR_error_string_n(e, out, n);
	else
		snprintf(out, n, "%s", fallback);
	ERR_clear_error();
}

static SSL_CTX *ctx_fail(SSL_CTX *ctx, char *err, size_t n, const char *what, const char *path)
{
	char why[160];
	net_tls_error_string(why, sizeof why, "unknown error");
	snprintf(err, n, "%s %s: %s", what, path ? path : "", why);
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *net_tls_ctx_new(const struct net_tls_files *f, char *err, size_t n)
{
	ERR_clear_error();
	bool has_cert = f->cert != NULL && f->cert[0] != '\0';
	bool has_key = f->key != NULL && f->key[0] != '\0';
	if (f->ca == NULL || f->ca[0] == '\0') {
		snprintf(err, n, "TLS needs a CA file (the certificates it trusts)");
		return NULL;
	}
	if (has_cert != has_key) {
		snprintf(err, n, "TLS needs both a certificate and its key, or neither");
		return NULL;
	}
	SSL_CTX *ctx = SSL_CTX_new(TLS_method());
	if (ctx == NULL)
		return ctx_fail(NULL, err, n, "cannot create a TLS context", NULL);
	/* TLS 1.2 and 1.3 only; no renegotiation (a peer asking for it forever would cost
	 * handshakes), no compression (CRIME), no session tickets (nothing resumes: sessions
	 * are long-lived connections). */
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
		return ctx_fail(ctx, err, n, "cannot require TLS 1.2", NULL);
	SSL_CTX_set_options(ctx,
			    SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_NO_TICKET);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	/* No SSL_MODE_RELEASE_BUFFERS: giving the record buffers back after every record saves
	 * about 34 KiB per idle connection but cost a fifth of the put throughput in the A/B
	 * of docs/PERFORMANCE.md ("TLS"). */
	if (SSL_CTX_load_verify_locations(ctx, f->ca, NULL) != 1)
		return ctx_fail(ctx, err, n, "cannot load the CA file", f->ca);
	STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(f->ca);
	if (names == NULL)
		return ctx_fail(ctx, err, n, "no CA certificate in", f->ca);
	SSL_CTX_set_client_CA_list(ctx, names); /* takes names */
	if (has_cert) {
		if (SSL_CTX_use_certificate_chain_file(ctx, f->cert) != 1)
			return ctx_fail(ctx, err, n, "cannot load the certificate", f->cert);
		if (SSL_CTX_use_PrivateKey_file(ctx, f->key, SSL_FILETYPE_PEM) != 1)
			return ctx_fail(ctx, err, n, "cannot load the key", f->key);
		if (SSL_CTX_check_private_key(ctx) != 1)
			return ctx_fail(ctx, err, n, "the key does not match the certificate",
					f->cert);
	}
	return ctx;
}

int net_tls_new(SSL_CTX *ctx, enum net_tls_role role, uv_stream_t *stream, struct net_tls **out)
{
	struct net_tls *t = calloc(1, sizeof *t);
	if (t == NULL)
		return NET_ENOMEM;
	t->stream = stream;
	t->pend_tail = &t->pend;
	t->ssl = SSL_new(ctx);
	t->rbio = BIO_new(BIO_s_mem());
	t->wbio = BIO_new(BIO_s_mem());
	if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL) {
		BIO_free(t->rbio);
		BIO_free(t->wbio);
		SSL_free(t->ssl);
		free(t);
		ERR_clear_error();
		return NET_ENOMEM;
	}
	/* An empty rbio means "not yet" (retry), never end of file. */
	BIO_set_mem_eof_return(t->rbio, -1);
	SSL_set_bio(t->ssl, t->rbio, t->wbio);
	switch (role) {
	case NET_TLS_ACCEPT:
		SSL_set_accept_state(t->ssl);
		SSL_set_verify(t->ssl, SSL_VERIFY_NONE, NULL);
		break;
	case NET_TLS_ACCEPT_VERIFY:
		SSL_set_accept_state(t->ssl);
		SSL_set_verify(t->ssl, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
		break;
	case NET_TLS_CONNECT:
		SSL_set_connect_state(t->ssl);
		SSL_set_verify(t->ssl, SSL_VERIFY_PEER, NULL);
		break;
	}
	*out = t;
	return NET_OK;
}

void net_tls_free(struct net_tls *t)
{
	if (t == NULL)
		return;
	struct pending *p = t->pend;
	while (p != NULL) {
		struct pending *next = p->next;
		free(p->data);
		if (p->cb != NULL)
			p->cb(p->req, UV_ECANCELED);
		free(p);
		p = next;
	}
	SSL_free(t->ssl);
	free(t);
}

bool net_tls_handshake_done(const struct net_tls *t)
{
	return t->done;
}

const char *net_tls_reason(const struct net_tls *t)
{
	return t->reason;
}

static void twrite_cb(uv_write_t *req, int status)
{
	struct twreq *w = (struct twreq *)req;
	free(w->buf);
	if (w->cb != NULL)
		w->cb(w->user, status);
	free(w);
}

/* Writes what OpenSSL put in wbio as one uv_write; user/cb are told when it is written. With
 * nothing to write and no one to tell, does nothing. 0 or a libuv error code. */
static int flush_out(struct net_tls *t, uv_write_t *user, uv_write_cb cb)
{
	size_t n = BIO_ctrl_pending(t->wbio);
	if (n == 0 && cb == NULL)
		return 0;
	if (n > INT_MAX)
		return UV_ENOBUFS;
	struct twreq *w = malloc(sizeof *w);
	uint8_t *buf = malloc(n > 0 ? n : 1);
	if (w == NULL || buf == NULL) {
		free(w);
		free(buf);
		return UV_ENOMEM;
	}
	if (n > 0 && BIO_read(t->wbio, buf, (int)n) != (int)n) {
		free(w);
		free(buf);
		ERR_clear_error();
		return UV_EIO;
	}
	w->user = user;
	w->cb = cb;
	w->buf = buf;
	uv_buf_t b = uv_buf_init((char *)buf, (unsigned)n);
	int rc = uv_write(&w->req, t->stream, &b, 1, twrite_cb);
	if (rc != 0) {
		free(buf);
		free(w);
	}
	return rc;
}

static void fail(struct net_tls *t, const char *fallback)
{
	t->failed = true;
	long v = SSL_get_verify_result(t->ssl);
	if (v != X509_V_OK) {
		snprintf(t->reason, sizeof t->reason, "certificate verify failed: %s",
			 X509_verify_cert_error_string(v));
		ERR_clear_error();
	} else {
		net_tls_error_string(t->reason, sizeof t->reason, fallback);
	}
	(void)flush_out(t, NULL, NULL); /* the alert, if OpenSSL made one */
}

/* Encrypts bufs into wbio and writes the ciphertext; cb (with req) told when written. */
static int encrypt_write(struct net_tls *t, uv_write_t *req, const uv_buf_t bufs[], unsigned nbufs,
			 uv_write_cb cb)
{
	for (unsigned i = 0; i < nbufs; i++) {
		size_t off = 0;
		while (off < bufs[i].len) {
			size_t chunk = bufs[i].len - off;
			if (chunk > (1u << 30))
				chunk = 1u << 30;
			ERR_clear_error();
			int n = SSL_write(t->ssl, bufs[i].base + off, (int)chunk);
			if (n <= 0) {
				/* A memory BIO never fills up and the handshake is over: nothing
				 * here is worth retrying. */
				fail(t, "write refused");
				return UV_EPROTO;
			}
			off += (size_t)n;
		}
	}
	return flush_out(t, req, cb);
}

/* Encrypts the writes kept during the handshake, in order. On a failure the rest stay kept
 * (net_tls_free cancels them). */
static int send_pending(struct net_tls *t)
{
	while (t->pend != NULL) {
		struct pending *p = t->pend;
		uv_buf_t b = uv_buf_init((char *)p->data, (unsigned)p->len);
		int rc = encrypt_write(t, p->req, &b, 1, p->cb);
		if (rc != 0) {
			t->failed = true;
			return rc;
		}
		t->pend = p->next;
		if (t->pend == NULL)
			t->pend_tail = &t->pend;
		free(p->data);
		free(p);
	}
	return 0;
}

static int handshake(struct net_tls *t)
{
	ERR_clear_error();
	int r = SSL_do_handshake(t->ssl);
	if (r == 1) {
		t->done = true;
		if (flush_out(t, NULL, NULL) != 0 || send_pending(t) != 0) {
			t->failed = true;
			snprintf(t->reason, sizeof t->reason, "cannot write");
			return NET_EIO;
		}
		return NET_OK;
	}
	int e = SSL_get_error(t->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		if (flush_out(t, NULL, NULL) != 0) {
			t->failed = true;
			snprintf(t->reason, sizeof t->reason, "cannot write");
			return NET_EIO;
		}
		return NET_OK;
	}
	fail(t, "handshake failed");
	return NET_ETLS;
}

int net_tls_start(struct net_tls *t)
{
	return handshake(t);
}

int net_tls_feed(struct net_tls *t, const uint8_t *cipher, size_t len, net_tls_plain_cb cb,
		 void *arg)
{
	if (t->failed)
		return NET_ETLS;
	while (len > 0) {
		int chunk = len > (1u << 30) ? (1 << 30) : (int)len;
		int w = BIO_write(t->rbio, cipher, chunk);
		if (w <= 0) {
			ERR_clear_error();
			return NET_ENOMEM;
		}
		cipher += w;
		len -= (size_t)w;
	}
	if (!t->done) {
		int rc = handshake(t);
		if (rc != NET_OK || !t->done)
			return rc;
	}
	for (;;) {
		ERR_clear_error();
		int n = SSL_read(t->ssl, plain, sizeof plain);
		if (n > 0) {
			int rc = cb(arg, plain, (size_t)n);
			if (rc < 0)
				return rc;
			continue;
		}
		int e = SSL_get_error(t->ssl, n);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			break;
		if (e == SSL_ERROR_ZERO_RETURN) {
			(void)flush_out(t, NULL, NULL);
			return NET_ECLOSED;
		}
		fail(t, "record refused");
		return NET_ETLS;
	}
	/* What reading made TLS answer (a KeyUpdate, an alert). */
	if (flush_out(t, NULL, NULL) != 0) {
		t->failed = true;
		return NET_EIO;
	}
	return NET_OK;
}

int net_tls_write(struct net_tls *t, uv_write_t *req, const uv_buf_t bufs[], unsigned nbufs,
		  uv_write_cb cb)
{
	if (t->failed)
		return UV_EPROTO;
	if (t->done)
		return encrypt_write(t, req, bufs, nbufs, cb);
	size_t total = 0;
	for (unsigned i = 0; i < nbufs; i++)
		total += bufs[i].len;
	struct pending *p = malloc(sizeof *p);
	uint8_t *data = malloc(total > 0 ? total : 1);
	if (p == NULL || data == NULL) {
		free(p);
		free(data);
		return UV_ENOMEM;
	}
	size_t off = 0;
	for (unsigned i = 0; i < nbufs; i++) {
		memcpy(data + off, bufs[i].base, bufs[i].len);
		off += bufs[i].len;
	}
	p->next = NULL;
	p->req = req;
	p->cb = cb;
	p->data = data;
	p->len = total;
	*t->pend_tail = p;
	t->pend_tail = &p->next;
	return 0;
}

void net_tls_shutdown(struct net_tls *t)
{
	if (t == NULL || !t->done || t->failed)
		return;
	ERR_clear_error();
	(void)SSL_shutdown(t->ssl);
	ERR_clear_error();
	(void)flush_out(t, NULL, NULL);
}

ssize_t net_stream_try_write(struct net_tls *t, uv_stream_t *s, const uint8_t *buf, size_t len)
{
	if (t != NULL || len == 0)
		return 0;
	if (len > INT_MAX)
		len = INT_MAX; /* the rest goes through uv_write */
	uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
	int n = uv_try_write(s, &b, 1);
	if (n == UV_EAGAIN)
		return 0;
	return n;
}

int net_stream_write(struct net_tls *t, uv_stream_t *s, uv_write_t *req, const uv_buf_t bufs[],
		     unsigned nbufs, uv_write_cb cb)
{
	if (t == NULL)
		return uv_write(req, s, bufs, nbufs, cb);
	return net_tls_write(t, req, bufs, nbufs, cb);
}
