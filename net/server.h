/* server.h — the client listener: framed requests in, framed replies out, many in flight.
 * One uv_write per connection per flush; bounded by NET_CLIENT_FRAME_MAX (bad frames close that
 * connection), NET_CLIENT_OUTBUF_MAX (a client that does not read is dropped),
 * NET_CLIENT_INFLIGHT_MAX (reading pauses) and NET_CLIENTS_MAX connections.
 */
#ifndef RINGRAFT_NET_SERVER_H
#define RINGRAFT_NET_SERVER_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "net/frame.h"
#include "net/tls.h"

struct net_conn;
struct net_server;

struct net_server_cbs {
	/* One whole request frame; payload borrowed for the call. The handler counts it as in
	 * flight (net_conn_request_done when answered). Returning < 0 closes the connection. */
	int (*on_request)(void *arg, struct net_conn *c, const uint8_t *payload, size_t len);
	void (*on_log)(void *arg, int level, const char *msg);
};

int net_server_new(uv_loop_t *loop, const char *listen_addr, const struct net_server_cbs *cbs,
		   void *arg, struct net_server **out);
/* TLS on every connection (before net_server_start; ctx borrowed, must outlive s); with
 * require_client_cert a client must present a certificate signed by the CA. */
void net_server_set_tls(struct net_server *s, SSL_CTX *ctx, bool require_client_cert);
/* Binds and listens. NET_EADDR / NET_EIO. */
int net_server_start(struct net_server *s);
/* Stops accepting (existing connections stay). */
void net_server_stop_accepting(struct net_server *s);
/* Writes every connection's gathered replies (one uv_write each). */
void net_server_flush(struct net_server *s);
size_t net_server_connections(const struct net_server *s);
/* Closes the listener and every connection. net_server_free once the loop has run the close
 * callbacks (pending replies are dropped). */
void net_server_close(struct net_server *s);
void net_server_free(struct net_server *s);

/* Lifetime: a handler that answers later takes a reference (net_conn_ref) and drops it after
 * answering (net_conn_unref). Replies to a closed connection are discarded; its memory is freed
 * once it is closed and unreferenced. */
void net_conn_ref(struct net_conn *c);
void net_conn_unref(struct net_conn *c);
bool net_conn_closed(const struct net_conn *c);
/* Queues a framed reply (packed from m). Dropped if closed; closes the connection when its
 * unsent bytes would pass NET_CLIENT_OUTBUF_MAX. */
void net_conn_send(struct net_conn *c, const ProtobufCMessage *m);
/* One request answered. A connection paused at the in-flight limit resumes at the next
 * net_server_flush (never from inside this call, so on_request never runs re-entrantly from
 * an answer). */
void net_conn_request_done(struct net_conn *c);
/* Requests taken from the connection and not yet done (the one being handled included). */
uint32_t net_conn_inflight(const struct net_conn *c);
/* Bytes the handler holds for the connection's requests, as it counts them with
 * net_conn_hold_bytes (+ when it takes a request, - when it answers it); for its own bounds. */
uint64_t net_conn_held_bytes(const struct net_conn *c);
void net_conn_hold_bytes(struct net_conn *c, int64_t delta);
/* The handler's authentication state of the connection (0 when it opens; the handler says
 * what the values mean: node/ keeps the authenticated user's role there). */
uint32_t net_conn_auth(const struct net_conn *c);
void net_conn_set_auth(struct net_conn *c, uint32_t auth);
/* Closes the connection (replies already queued are discarded). */
void net_conn_close(struct net_conn *c, const char *why);

#endif
