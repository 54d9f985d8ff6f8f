/* http.h — the HTTP endpoint of --metrics-addr: libmicrohttpd serving GET /metrics and
 * /health from its own thread. It never sees the node: the loop publishes a rendered snapshot
 * (node_http_publish), which the HTTP thread copies under a mutex for each request
 * (docs/DESIGN-NOTES.md, "Metrics endpoint: its own thread, a published snapshot").
 */
#ifndef RINGRAFT_NODE_HTTP_H
#define RINGRAFT_NODE_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "node/metrics.h"

enum {
	NODE_HTTP_OK = 0,
	NODE_HTTP_EADDR = -1,   /* not a HOST:PORT address */
	NODE_HTTP_ELISTEN = -2, /* libmicrohttpd could not bind or start its thread */
	NODE_HTTP_ENOMEM = -3,
};
const char *node_http_strerror(int err);

struct node_http;

/* Binds addr (copied) and starts the server thread. Until the first publish, /metrics and
 * /health answer 503 "starting". /health also answers 503 once stale_ms pass without a
 * publish (the loop is stuck). */
int node_http_start(const char *addr, uint64_t stale_ms, struct node_http **out);
/* Any thread (the loop): the new snapshot. *metrics is swapped with the server's previous
 * text, whose buffer the caller gets back to render into next time. health is copied. */
void node_http_publish(struct node_http *h, struct node_text *metrics, int health_status,
		       const char *health);
/* Stops the thread (waits for it) and frees everything. NULL is a no-op. */
void node_http_stop(struct node_http *h);

#endif
