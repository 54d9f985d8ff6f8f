/* resp_client.c — a small blocking RESP2 client for the register workload (resp_client.h):
 * commands are arrays of bulk strings; a reply is read whole (bounded by REPLY_MAX) with poll
 * against the call's deadline. Which failures are definite follows docs/CLI.md's RESP error
 * table: -TRYAGAIN and -CLUSTERDOWN say "not applied"; a write's other errors may hide an
 * applied command.
 */
#include "jepsen-lite/resp_client.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli/client.h"
#include "net/frame.h"

#define ENDPOINTS_MAX  16
#define REPLY_MAX      (64u << 10) /* the workload's values are short decimal numbers */
#define RETRY_PAUSE_MS 50

struct jl_resp {
	struct sockaddr_storage eps[ENDPOINTS_MAX];
	int n_eps, cur;
	int fd; /* -1: not connected */
	uint32_t timeout_ms;
	char buf[REPLY_MAX];
	size_t len;
};

/* A parsed reply: its type byte and, for + - : $, the text (pointing into buf). */
struct reply {
	char type; /* '+', '-', ':', '$'; 'n' for a null bulk */
	const char *p;
	size_t n;
	long long num;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int jl_resp_new(const char *endpoints, uint32_t timeout_ms, struct jl_resp **out)
{
	struct jl_resp *r = calloc(1, sizeof *r);
	char *copy = strdup(endpoints ? endpoints : "");
	if (r == NULL || copy == NULL) {
		free(r);
		free(copy);
		return CLI_ENOMEM;
	}
	char *save = NULL;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (r->n_eps == ENDPOINTS_MAX || net_parse_addr(t, &r->eps[r->n_eps]) != 0) {
			free(copy);
			free(r);
			return CLI_EADDR;
		}
		r->n_eps++;
	}
	free(copy);
	if (r->n_eps == 0) {
		free(r);
		return CLI_EADDR;
	}
	r->fd = -1;
	r->timeout_ms = timeout_ms;
	*out = r;
	return 0;
}

static void disconnect(struct jl_resp *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	r->len = 0;
}

void jl_resp_free(struct jl_resp *r)
{
	if (r == NULL)
		return;
	disconnect(r);
	free(r);
}

void jl_resp_set_timeout(struct jl_resp *r, uint32_t timeout_ms)
{
	r->timeout_ms = timeout_ms;
}

static int wait_fd(int fd, short ev, uint64_t deadline)
{
	uint64_t t = now_ms();
	if (t >= deadline)
		return 0;
	struct pollfd p = {fd, ev, 0};
	int rc = poll(&p, 1, (int)(deadline - t));
	return rc < 0 && errno == EINTR ? wait_fd(fd, ev, deadline) : rc;
}

/* Connects to the current endpoint (non-blocking, within the deadline). */
static bool connect_cur(struct jl_resp *r, uint64_t deadline)
{
	const struct sockaddr_storage *ss = &r->eps[r->cur];
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return false;
	socklen_t sl = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						 : sizeof(struct sockaddr_in);
	int rc = connect(fd, (const struct sockaddr *)ss, sl);
	if (rc != 0 && errno == EINPROGRESS) {
		int err = 0;
		socklen_t el = sizeof err;
		rc = wait_fd(fd, POLLOUT, deadline) == 1 &&
				     getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 &&
				     err == 0
			     ? 0
			     : -1;
	}
	if (rc != 0) {
		close(fd);
		return false;
	}
	r->fd = fd;
	r->len = 0;
	return true;
}

/* Sends the whole command; false if the connection failed (then nothing may have been parsed
 * unless every byte went out, which *all_sent says). */
static bool send_cmd(struct jl_resp *r, const char *buf, size_t n, uint64_t deadline,
		     bool *all_sent)
{
	size_t off = 0;
	*all_sent = false;
	while (off < n) {
		ssize_t w = send(r->fd, buf + off, n - off, MSG_NOSIGNAL);
		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
		    wait_fd(r->fd, POLLOUT, deadline) == 1)
			continue;
		return false;
	}
	*all_sent = true;
	return true;
}

/* Length of the line starting at buf[off] (to its \r\n), or -1 if not complete yet. */
static long line_end(const struct jl_resp *r, size_t off)
{
	for (size_t i = off; i + 1 < r->len; i++)
		if (r->buf[i] == '\r' && r->buf[i + 1] == '\n')
			return (long)(i - off);
	return -1;
}

/* Parses one whole reply at the start of buf: 1 done, 0 more bytes needed, -1 malformed. */
static int parse(struct jl_resp *r, struct reply *out)
{
	long l = line_end(r, 0);
	if (l < 0)
		return r->len >= sizeof r->buf ? -1 : 0;
	if (l < 1)
		return -1;
	out->type = r->buf[0];
	out->p = r->buf + 1;
	out->n = (size_t)l - 1;
	char num[32];
	size_t nl = out->n < sizeof num - 1 ? out->n : sizeof num - 1;
	memcpy(num, out->p, nl);
	num[nl] = '\0';
	switch (out->type) {
	case '+':
	case '-':
		return 1;
	case ':':
		out->num = strtoll(num, NULL, 10);
		return 1;
	case '$': {
		long long bl = strtoll(num, NULL, 10);
		if (bl == -1) {
			out->type = 'n';
			return 1;
		}
		if (bl < 0 || (size_t)bl + (size_t)l + 4 > sizeof r->buf)
			return -1;
		if (r->len < (size_t)l + 2 + (size_t)bl + 2)
			return 0;
		out->p = r->buf + l + 2;
		out->n = (size_t)bl;
		return 1;
	}
	default:
		return -1;
	}
}

static bool starts(const struct reply *rp, const char *w)
{
	size_t n = strlen(w);
	return rp->n >= n && memcmp(rp->p, w, n) == 0;
}

/* Runs one command (argv of argc strings, lens given) and returns its reply in *out (valid
 * until the next call), or an error code: CLI_UNAVAILABLE when every attempt failed
 * definitely, an indeterminate code as soon as one may have been applied (write) or failed
 * in an unknown way (read: then reported as the workload's "info" too, which is harmless). */
static int call(struct jl_resp *r, const char *const *argv, const size_t *lens, int argc,
		bool write, struct reply *out)
{
	char cmd[4096];
	size_t n = (size_t)snprintf(cmd, sizeof cmd, "*%d\r\n", argc);
	for (int i = 0; i < argc; i++) {
		if (lens[i] + 32 > sizeof cmd - n)
			return CLI_TOO_LARGE;
		n += (size_t)snprintf(cmd + n, sizeof cmd - n, "$%zu\r\n", lens[i]);
		memcpy(cmd + n, argv[i], lens[i]);
		n += lens[i];
		memcpy(cmd + n, "\r\n", 2);
		n += 2;
	}
	uint64_t deadline = now_ms() + r->timeout_ms;
	while (now_ms() < deadline) {
		if (r->fd < 0 && !connect_cur(r, deadline)) {
			r->cur = (r->cur + 1) % r->n_eps; /* nothing sent: try the next node */
			usleep(RETRY_PAUSE_MS * 1000);
			continue;
		}
		bool all_sent;
		if (!send_cmd(r, cmd, n, deadline, &all_sent)) {
			disconnect(r);
			if (all_sent)
				return CLI_ECONN;
			r->cur = (r->cur + 1) % r->n_eps;
			continue;
		}
		r->len = 0;
		int p;
		while ((p = parse(r, out)) == 0) {
			if (wait_fd(r->fd, POLLIN, deadline) != 1) {
				disconnect(r); /* a late reply must not be read as the next one's */
				return CLI_TIMEOUT;
			}
			ssize_t got = recv(r->fd, r->buf + r->len, sizeof r->buf - r->len, 0);
			if (got <= 0) {
				disconnect(r);
				return CLI_ECONN;
			}
			r->len += (size_t)got;
		}
		if (p < 0) {
			disconnect(r);
			return CLI_EPROTO;
		}
		if (out->type != '-')
			return CLI_OK;
		if (starts(out, "TRYAGAIN") || starts(out, "CLUSTERDOWN")) {
			/* definite: not applied; another node may do better */
			r->cur = (r->cur + 1) % r->n_eps;
			disconnect(r);
			usleep(RETRY_PAUSE_MS * 1000);
			continue;
		}
		fprintf(stderr, "jepsen_client: RESP error: %.*s\n", (int)out->n, out->p);
		return write ? CLI_INTERNAL : CLI_INVALID;
	}
	return CLI_UNAVAILABLE;
}

int jl_resp_get(struct jl_resp *r, const char *key, void **value, size_t *len)
{
	*value = NULL;
	*len = 0;
	const char *argv[] = {"GET", key};
	size_t lens[] = {3, strlen(key)};
	struct reply rp;
	int rc = call(r, argv, lens, 2, false, &rp);
	if (rc != CLI_OK)
		return rc;
	if (rp.type == 'n')
		return CLI_NOT_FOUND;
	if (rp.type != '$')
		return CLI_EPROTO;
	char *v = malloc(rp.n + 1);
	if (v == NULL)
		return CLI_ENOMEM;
	memcpy(v, rp.p, rp.n);
	v[rp.n] = '\0';
	*value = v;
	*len = rp.n;
	return CLI_OK;
}

int jl_resp_put(struct jl_resp *r, const char *key, const void *value, size_t len)
{
	const char *argv[] = {"SET", key, value};
	size_t lens[] = {3, strlen(key), len};
	struct reply rp;
	int rc = call(r, argv, lens, 3, true, &rp);
	if (rc != CLI_OK)
		return rc;
	return rp.type == '+' && starts(&rp, "OK") ? CLI_OK : CLI_EPROTO;
}

int jl_resp_cas(struct jl_resp *r, const char *key, const void *expected, size_t expected_len,
		const void *value, size_t len)
{
	struct reply rp;
	int rc;
	if (expected == NULL) {
		const char *argv[] = {"SET", key, value, "NX"};
		size_t lens[] = {3, strlen(key), len, 2};
		rc = call(r, argv, lens, 4, true, &rp);
		if (rc != CLI_OK)
			return rc;
		if (rp.type == 'n')
			return CLI_CAS_MISMATCH;
		return rp.type == '+' ? CLI_OK : CLI_EPROTO;
	}
	const char *argv[] = {"CAS", key, expected, value};
	size_t lens[] = {3, strlen(key), expected_len, len};
	rc = call(r, argv, lens, 4, true, &rp);
	if (rc != CLI_OK)
		return rc;
	if (rp.type != ':')
		return CLI_EPROTO;
	return rp.num == 1 ? CLI_OK : CLI_CAS_MISMATCH;
}
