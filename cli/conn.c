/* conn.c — the client's socket: non-blocking connect, whole-frame send and frame receive, each
 * bounded by an absolute deadline through poll(2). TCP_NODELAY because requests are small and
 * a blocking client waits for every reply (Nagle would add up to 40 ms per call).
 */
#include "cli/conn.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "cli/client.h"

int64_t cli_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until the deadline: 1 ready, 0 timed out, CLI_ECONN on error. */
static int wait_fd(int fd, short events, int64_t deadline_ms)
{
	for (;;) {
		int64_t left = deadline_ms - cli_now_ms();
		if (left < 0)
			left = 0;
		struct pollfd p = {.fd = fd, .events = events};
		int n = poll(&p, 1, (int)(left > 60000 ? 60000 : left));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return CLI_ECONN;
		if (n > 0)
			return 1;
		if (cli_now_ms() >= deadline_ms)
			return 0;
	}
}

int cli_conn_open(const char *addr, int64_t deadline_ms, struct cli_conn **out)
{
	struct sockaddr_storage ss;
	*out = NULL;
	if (strlen(addr) >= CLI_ADDR_MAX || net_parse_addr(addr, &ss) != NET_OK)
		return CLI_EADDR;
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno == ENOMEM || errno == ENOBUFS ? CLI_ENOMEM : CLI_ECONN;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	socklen_t sl =
		ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	if (connect(fd, (struct sockaddr *)&ss, sl) != 0) {
		if (errno != EINPROGRESS) {
			close(fd);
			return CLI_ECONN;
		}
		int w = wait_fd(fd, POLLOUT, deadline_ms);
		if (w <= 0) {
			close(fd);
			return w == 0 ? CLI_TIMEOUT : w;
		}
		int err = 0;
		socklen_t el = sizeof err;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0) {
			close(fd);
			return CLI_ECONN;
		}
	}
	struct cli_conn *c = calloc(1, sizeof *c);
	if (c == NULL) {
		close(fd);
		return CLI_ENOMEM;
	}
	c->fd = fd;
	strcpy(c->addr, addr); /* length checked above */
	net_decoder_init(&c->dec, CLI_FRAME_MAX);
	*out = c;
	return 0;
}

void cli_conn_close(struct cli_conn *conn)
{
	if (conn == NULL)
		return;
	close(conn->fd);
	net_decoder_free(&conn->dec);
	free(conn);
}

int cli_conn_send(struct cli_conn *conn, const void *payload, uint32_t len, int64_t deadline_ms)
{
	uint8_t hdr[NET_FRAME_HEADER];
	net_frame_header(hdr, len);
	struct iovec iov[2] = {{hdr, sizeof hdr}, {(void *)payload, len}};
	size_t total = sizeof hdr + (size_t)len, done = 0;
	while (done < total) {
		struct iovec v[2];
		int nv = 0;
		if (done < sizeof hdr) {
			v[nv].iov_base = hdr + done;
			v[nv++].iov_len = sizeof hdr - done;
			v[nv++] = iov[1];
		} else {
			v[nv].iov_base = (uint8_t *)payload + (done - sizeof hdr);
			v[nv++].iov_len = total - done;
		}
		struct msghdr m = {.msg_iov = v, .msg_iovlen = (size_t)nv};
		ssize_t n = sendmsg(conn->fd, &m, MSG_NOSIGNAL);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int w = wait_fd(conn->fd, POLLOUT, deadline_ms);
			if (w == 0)
				return CLI_TIMEOUT;
			if (w < 0)
				return w;
			continue;
		}
		return CLI_ECONN;
	}
	return 0;
}

int cli_conn_recv(struct cli_conn *conn, int64_t deadline_ms, const uint8_t **payload,
		  uint32_t *len)
{
	uint8_t buf[64 * 1024];
	for (;;) {
		int r = net_decoder_next(&conn->dec, payload, len);
		if (r == 1)
			return 0;
		if (r < 0)
			return CLI_EPROTO;
		ssize_t n = recv(conn->fd, buf, sizeof buf, 0);
		if (n > 0) {
			if (net_decoder_feed(&conn->dec, buf, (size_t)n) != NET_OK)
				return CLI_ENOMEM;
			continue;
		}
		if (n == 0)
			return CLI_ECONN;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return CLI_ECONN;
		if (deadline_ms == 0)
			return CLI_TIMEOUT;
		int w = wait_fd(conn->fd, POLLIN, deadline_ms);
		if (w == 0)
			return CLI_TIMEOUT;
		if (w < 0)
			return w;
	}
}
