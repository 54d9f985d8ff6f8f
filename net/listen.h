/* listen.h — opening a listening TCP socket, the one way both of net/'s listeners do it (the
 * peer port in peer.c, the client port in server.c). */
#ifndef RINGRAFT_NET_LISTEN_H
#define RINGRAFT_NET_LISTEN_H

#include <uv.h>

/* Parses addr ("host:port"), initialises h on loop with h->data = data, binds and listens.
 * NET_EADDR: addr is malformed and h was not initialised. NET_EIO: h was initialised (close
 * it with uv_close) but bind or listen failed; *uv_err holds libuv's code for the log line.
 * NET_OK: cb runs for every incoming connection. */
int net_tcp_listen(uv_loop_t *loop, uv_tcp_t *h, void *data, const char *addr, int backlog,
		   uv_connection_cb cb, int *uv_err);

#endif
