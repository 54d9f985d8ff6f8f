/* resp_server.h — the RESP listener: commands in (pipelined: every command of a read is parsed
 * and handed on), replies out in request order whatever order they are answered in, one
 * uv_write per connection per flush. Malformed input gets "-ERR Protocol error: ..." and the
 * connection is closed; a client that does not read is dropped at NET_RESP_OUTBUF_MAX unsent
 * bytes; reading pauses at NET_RESP_INFLIGHT_MAX unanswered commands.
 */
#ifndef RINGRAFT_NET_RESP_SERVER_H
#define RINGRAFT_NET_RESP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "net/resp.h"
#include "net/tls.h"

struct net_resp_conn;
struct net_resp_server;

#define NET_RESP_HOLD 1

struct net_resp_server_cbs {
	/* One command: args[0..argc) are bulk strings (args[0] the name, argc >= 1), borrowed
	 * for the call. slot is the command's place in the reply order: answer it exactly once
	 * with net_resp_conn_reply (now or later; a later answer takes a reference first).
	 * Returning < 0 closes the connection. Returning NET_RESP_HOLD takes nothing: the
	 * same command (same slot) is offered again once every earlier one is answered (a
	 * read after a pipelined write must see it). */
	int (*on_command)(void *arg, struct net_resp_conn *c, uint64_t slot,
			  const struct net_resp_val *args, size_t argc);
	/* The connection closed (its user data may be freed; later replies are dropped). */
	void (*on_close)(void *arg, struct net_resp_conn *c);
	void (*on_log)(void *arg, int level, const char *msg);
};

/* bulk_max: the longest bulk string accepted (the value limit plus NET_RESP_BULK_SLACK). */
int net_resp_server_new(uv_loop_t *loop, const char *listen_addr, size_t bulk_max,
			const struct net_resp_server_cbs *cbs, void *arg,
			struct net_resp_server **out);
/* TLS on every connection (before net_resp_server_start; ctx borrowed, must outlive s); with
 * require_client_cert a client must present a certificate signed by the CA. */
void net_resp_server_set_tls(struct net_resp_server *s, SSL_CTX *ctx, bool require_client_cert);
/* Binds and listens: NET_OK, NET_EADDR or NET_EIO. */
int net_resp_server_start(struct net_resp_server *s);
void net_resp_server_stop_accepting(struct net_resp_server *s);
/* Writes every connection's in-order replies; resumes paused connections. */
void net_resp_server_flush(struct net_resp_server *s);
size_t net_resp_server_connections(const struct net_resp_server *s);
/* Closes the listener and every connection; net_resp_server_free after the loop ran the
 * close callbacks. */
void net_resp_server_close(struct net_resp_server *s);
void net_resp_server_free(struct net_resp_server *s);

void net_resp_conn_ref(struct net_resp_conn *c);
void net_resp_conn_unref(struct net_resp_conn *c);
bool net_resp_conn_closed(const struct net_resp_conn *c);
/* Commands taken and not yet written back (the one being handled included). */
uint64_t net_resp_conn_unanswered(const struct net_resp_conn *c);
/* Whether the command in `slot` (taken earlier) has been answered. */
bool net_resp_conn_answered(const struct net_resp_conn *c, uint64_t slot);
/* The reply of `slot`: takes b->p (b is zeroed); dropped when the connection is closed. An
 * empty or out-of-memory buffer is answered "-ERR out of memory". */
void net_resp_conn_reply(struct net_resp_conn *c, uint64_t slot, struct net_resp_buf *b);
/* QUIT: no more commands are read; the connection closes once every reply is written. */
void net_resp_conn_quit(struct net_resp_conn *c);
void net_resp_conn_close(struct net_resp_conn *c, const char *why);
/* A node-unique connection id (CLIENT ID), the peer's "ip:port", and a user pointer (owned by
 * the caller; free it in on_close). */
uint64_t net_resp_conn_id(const struct net_resp_conn *c);
const char *net_resp_conn_peer(const struct net_resp_conn *c);
void *net_resp_conn_user(const struct net_resp_conn *c);
void net_resp_conn_set_user(struct net_resp_conn *c, void *user);

#endif
