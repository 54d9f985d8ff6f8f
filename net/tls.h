/* tls.h — TLS for the connections of net/ (peer, client and RESP ports), OpenSSL driven through
 * a pair of memory BIOs so that nothing on the loop ever blocks in OpenSSL: ciphertext read
 * from the socket is fed in (net_tls_feed) and plaintext comes out through a callback;
 * plaintext to send is encrypted at once and the ciphertext leaves with uv_write
 * (net_tls_write). One SSL_CTX per process (certificate, key, trusted CA; TLS 1.2 or later,
 * renegotiation refused), one struct net_tls per connection. docs/SECURITY.md, "TLS".
 */
#ifndef RINGRAFT_NET_TLS_H
#define RINGRAFT_NET_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* PEM file paths; borrowed for the call. cert and key come together or not at all (a client
 * that presents no certificate); ca is the only CA whose certificates are trusted. */
struct net_tls_files {
	const char *cert, *key, *ca;
};

/* A context for both sides of a connection (accept and connect). NULL with a message naming
 * the file and OpenSSL's reason in err. Free with SSL_CTX_free. Also used by cli/. */
SSL_CTX *net_tls_ctx_new(const struct net_tls_files *f, char *err, size_t err_len);

/* What a connection checks of the other side's certificate (always against the CA given to
 * net_tls_ctx_new; the chain is what counts, host names and addresses are not compared). */
enum net_tls_role {
	NET_TLS_ACCEPT,        /* server side, no client certificate asked */
	NET_TLS_ACCEPT_VERIFY, /* server side, the client must present a certificate of the CA */
	NET_TLS_CONNECT,       /* client side, the server's certificate is verified */
};

struct net_tls;

/* One TLS session over `stream` (borrowed: the owner's handle, which must outlive it). ctx is
 * borrowed and must outlive it too. NET_OK or NET_ENOMEM. A NET_TLS_CONNECT session sends its
 * first handshake message from net_tls_start, once the TCP connection is up. */
int net_tls_new(SSL_CTX *ctx, enum net_tls_role role, uv_stream_t *stream, struct net_tls **out);
int net_tls_start(struct net_tls *t);
/* Frees the session. Writes still waiting for the handshake get their callback with
 * UV_ECANCELED from here, so call it from the stream's close callback (after libuv has
 * cancelled what was in flight), before the memory those callbacks use is freed. */
void net_tls_free(struct net_tls *t);

/* Plaintext delivered by net_tls_feed (borrowed for the call). A negative return (the owner
 * closed the connection) stops the feed, which returns that value. */
typedef int (*net_tls_plain_cb)(void *arg, const uint8_t *data, size_t len);
/* Ciphertext read from the socket: drives the handshake, decrypts every whole record into
 * cb, and writes whatever TLS must answer. NET_OK; NET_ECLOSED when the other side sent
 * close_notify; NET_ETLS when the handshake or a record is refused (net_tls_reason says why;
 * an alert has been queued for the other side); NET_ENOMEM; or cb's negative value. After an
 * error the connection is unusable: close it. */
int net_tls_feed(struct net_tls *t, const uint8_t *cipher, size_t len, net_tls_plain_cb cb,
		 void *arg);
/* Like uv_write on the stream, with plaintext: bufs are borrowed for the call (encrypted at
 * once, or copied while the handshake is not finished) and cb runs exactly once, when the
 * ciphertext is written, failed or was cancelled — unless this returns nonzero (a libuv error
 * code: then cb never runs). req->handle is NOT set: keep what the callback needs beside req. */
int net_tls_write(struct net_tls *t, uv_write_t *req, const uv_buf_t bufs[], unsigned nbufs,
		  uv_write_cb cb);
/* Queues close_notify (best effort: call before uv_close). */
void net_tls_shutdown(struct net_tls *t);
bool net_tls_handshake_done(const struct net_tls *t);
/* Why the last NET_ETLS happened ("certificate verify failed: ...", OpenSSL's reason), ""
 * before any. Borrowed, valid while t is. */
const char *net_tls_reason(const struct net_tls *t);

/* The hot path's first try (issue 19): in plaintext, writes what the socket takes at once with
 * one write(2), no request and no callback; libuv refuses (0 here) while anything is queued on
 * s, so bytes never overtake earlier ones. A write finished here also spares the epoll_ctl(2)
 * calls that arm and disarm POLLOUT around a queued uv_write. Returns the bytes written (0
 * with TLS, or when the socket is full), or a negative libuv error; the caller writes the rest
 * with net_stream_write. */
ssize_t net_stream_try_write(struct net_tls *t, uv_stream_t *s, const uint8_t *buf, size_t len);

/* For owners that may or may not use TLS: uv_write when t is NULL, net_tls_write otherwise
 * (with the same rule about req->handle for both). */
int net_stream_write(struct net_tls *t, uv_stream_t *s, uv_write_t *req, const uv_buf_t bufs[],
		     unsigned nbufs, uv_write_cb cb);

/* The reason of the first error on this thread's OpenSSL error queue (which is cleared), or
 * `fallback`. Used by cli/ for its own messages. */
void net_tls_error_string(char *out, size_t n, const char *fallback);

#endif
