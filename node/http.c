/* http.c — libmicrohttpd on its own polling thread (MHD_USE_INTERNAL_POLLING_THREAD), at most
 * NODE_HTTP_CONNECTIONS_MAX connections. A request copies the last published snapshot under
 * the mutex and answers from the copy; the loop's publish only swaps two buffers under that
 * mutex, so neither side waits for more than a memcpy of the text.
 */
#include "node/http.h"

#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "net/frame.h"
#include "node/log.h"
#include "node/node_limits.h"

struct node_http {
	struct MHD_Daemon *d;
	struct sockaddr_storage sa;
	uint64_t stale_ms;
	pthread_mutex_t mu;
	/* under mu */
	struct node_text metrics;
	int health_status;
	char health[NODE_HEALTH_TEXT_MAX];
	uint64_t published_ms; /* 0 = nothing published yet */
};

const char *node_http_strerror(int err)
{
	switch (err) {
	case NODE_HTTP_OK:
		return "ok";
	case NODE_HTTP_EADDR:
		return "not a HOST:PORT address";
	case NODE_HTTP_ELISTEN:
		return "cannot listen (address in use, or not local?)";
	case NODE_HTTP_ENOMEM:
		return "out of memory";
	}
	return "unknown error";
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void mhd_log_cb(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char msg[512];
	vsnprintf(msg, sizeof msg, fmt, ap);
	size_t l = strlen(msg);
	while (l > 0 && (msg[l - 1] == '\n' || msg[l - 1] == '\r'))
		msg[--l] = '\0';
	node_log(NODE_LOG_WARN, 0, "metrics http: %s", msg);
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
			     const void *body, size_t len)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

#define TEXT_PLAIN   "text/plain; charset=utf-8"
#define TEXT_METRICS "text/plain; version=0.0.4; charset=utf-8"

static enum MHD_Result serve_metrics(struct node_http *h, struct MHD_Connection *c)
{
	pthread_mutex_lock(&h->mu);
	enum MHD_Result ret;
	if (h->published_ms == 0 || h->metrics.buf == NULL)
		ret = reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, TEXT_PLAIN, "starting\n", 9);
	else
		ret = reply(c, MHD_HTTP_OK, TEXT_METRICS, h->metrics.buf, h->metrics.len);
	pthread_mutex_unlock(&h->mu);
	return ret;
}

static enum MHD_Result serve_health(struct node_http *h, struct MHD_Connection *c)
{
	char body[NODE_HEALTH_TEXT_MAX + 128];
	unsigned status;
	pthread_mutex_lock(&h->mu);
	uint64_t published = h->published_ms;
	status = (unsigned)h->health_status;
	snprintf(body, sizeof body, "%s", h->health);
	pthread_mutex_unlock(&h->mu);
	uint64_t now = now_ms();
	if (published == 0) {
		status = MHD_HTTP_SERVICE_UNAVAILABLE;
		snprintf(body, sizeof body, "starting\n");
	} else if (now > published + h->stale_ms) {
		/* the loop is stuck (or starved): whatever it said last no longer holds */
		status = MHD_HTTP_SERVICE_UNAVAILABLE;
		snprintf(body, sizeof body, "node loop unresponsive: last update %llu ms ago\n",
			 (unsigned long long)(now - published));
	}
	return reply(c, status, TEXT_PLAIN, body, strlen(body));
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *c, const char *url,
				 const char *method, const char *version, const char *upload,
				 size_t *upload_size, void **con_cls)
{
	struct node_http *h = cls;
	(void)version;
	(void)upload;
	(void)con_cls;
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, TEXT_PLAIN, "GET or HEAD only\n", 17);
	if (*upload_size != 0) /* a GET with a body: not ours to read */
		return reply(c, MHD_HTTP_BAD_REQUEST, TEXT_PLAIN, "unexpected body\n", 16);
	if (strcmp(url, "/metrics") == 0)
		return serve_metrics(h, c);
	if (strcmp(url, "/health") == 0)
		return serve_health(h, c);
	return reply(c, MHD_HTTP_NOT_FOUND, TEXT_PLAIN, "not found: try /metrics or /health\n", 35);
}

int node_http_start(const char *addr, uint64_t stale_ms, struct node_http **out)
{
	*out = NULL;
	struct node_http *h = calloc(1, sizeof *h);
	if (h == NULL)
		return NODE_HTTP_ENOMEM;
	if (net_parse_addr(addr, &h->sa) != NET_OK) {
		free(h);
		return NODE_HTTP_EADDR;
	}
	h->stale_ms = stale_ms;
	pthread_mutex_init(&h->mu, NULL);
	unsigned flags =
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ITC | MHD_USE_ERROR_LOG;
	uint16_t port;
	if (h->sa.ss_family == AF_INET6) {
		flags |= MHD_USE_IPv6;
		port = ntohs(((struct sockaddr_in6 *)&h->sa)->sin6_port);
	} else {
		port = ntohs(((struct sockaddr_in *)&h->sa)->sin_port);
	}
	/* the logger first, so that MHD reports even its option errors through it */
	h->d = MHD_start_daemon(flags, port, NULL, NULL, access_cb, h, MHD_OPTION_EXTERNAL_LOGGER,
				mhd_log_cb, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&h->sa,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)NODE_HTTP_CONNECTIONS_MAX,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)NODE_HTTP_TIMEOUT_S,
				MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1, MHD_OPTION_END);
	if (h->d == NULL) {
		pthread_mutex_destroy(&h->mu);
		free(h);
		return NODE_HTTP_ELISTEN;
	}
	*out = h;
	return NODE_HTTP_OK;
}

void node_http_publish(struct node_http *h, struct node_text *metrics, int health_status,
		       const char *health)
{
	pthread_mutex_lock(&h->mu);
	struct node_text old = h->metrics;
	h->metrics = *metrics;
	*metrics = old;
	h->health_status = health_status;
	snprintf(h->health, sizeof h->health, "%s", health);
	h->published_ms = now_ms();
	pthread_mutex_unlock(&h->mu);
}

void node_http_stop(struct node_http *h)
{
	if (h == NULL)
		return;
	MHD_stop_daemon(h->d);
	pthread_mutex_destroy(&h->mu);
	node_text_free(&h->metrics);
	free(h);
}
