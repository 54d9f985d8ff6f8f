/* conn.c — the client's socket: non-blocking connect, whole-frame send and frame receive, each
 * bounded by an absolute deadline through poll(2). TCP_NODELAY because requests are small and
 * a blocking client waits for every reply (Nagle would add up to 40 ms per call). With TLS,
 * OpenSSL works on memory BIOs and this file moves the ciphertext with the same deadline-bound
 * send/recv as plaintext (so no call blocks past its deadline and SIGPIPE is never raised).
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

#include <openssl/err.h>

#include "cli/client.h"

static __thread char tls_error[CLI_TLS_ERROR_MAX];

char *cli_tls_error_buf(void)
{
	return tls_error;
}

const char *cli_tls_error(void)
{
	return tls_error;
}

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

/* Sends len bytes of buf before the deadline: 0, CLI_ECONN or CLI_TIMEOUT. */
static int send_all(int fd, const uint8_t *buf, size_t len, int64_t deadline_ms)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = send(fd, buf + done, len - done, MSG_NOSIGNAL);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int w = wait_fd(fd, POLLOUT, deadline_ms);
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

/* Reads what the socket has (waiting until the deadline for something; deadline 0: only what
 * is there): 0 with *got > 0 bytes, CLI_TIMEOUT (a positive code), or CLI_ECONN (closed or
 * failed). */
static int recv_some(int fd, uint8_t *buf, size_t cap, int64_t deadline_ms, size_t *got)
{
	for (;;) {
		ssize_t n = recv(fd, buf, cap, 0);
		if (n > 0) {
			*got = (size_t)n;
			return 0;
		}
		if (n == 0)
			return CLI_ECONN;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return CLI_ECONN;
		if (deadline_ms == 0)
			return CLI_TIMEOUT;
		int w = wait_fd(fd, POLLIN, deadline_ms);
		if (w == 0)
			return CLI_TIMEOUT;
		if (w < 0)
			return w;
	}
}

/* Sends everything OpenSSL wrote into wbio. */
static int tls_flush(struct cli_conn *c, int64_t deadline_ms)
{
	uint8_t buf[16 * 1024];
	for (;;) {
		int n = BIO_read(c->wbio, buf, sizeof buf);
		if (n <= 0)
			return 0;
		int rc = send_all(c->fd, buf, (size_t)n, deadline_ms);
		if (rc != 0)
			return rc;
	}
}

/* Moves ciphertext from the socket into rbio: 0, or recv_some's error. */
static int tls_fill(struct cli_conn *c, int64_t deadline_ms)
{
	uint8_t buf[64 * 1024];
	size_t n;
	int rc = recv_some(c->fd, buf, sizeof buf, deadline_ms, &n);
	if (rc != 0)
		return rc;
	if (BIO_write(c->rbio, buf, (int)n) != (int)n) {
		ERR_clear_error();
		return CLI_ENOMEM;
	}
	return 0;
}

static void tls_failed(struct cli_conn *c, const char *fallback)
{
	long v = SSL_get_verify_result(c->ssl);
	if (v != X509_V_OK) {
		snprintf(tls_error, sizeof tls_error, "%s: certificate verify failed: %s", c->addr,
			 X509_verify_cert_error_string(v));
		ERR_clear_error();
	} else {
		char why[CLI_TLS_ERROR_MAX - CLI_ADDR_MAX - 4];
		net_tls_error_string(why, sizeof why, fallback);
		snprintf(tls_error, sizeof tls_error, "%s: %s", c->addr, why);
	}
}

/* The client side of the handshake, bounded by the deadline. */
static int tls_handshake(struct cli_conn *c, SSL_CTX *ctx, int64_t deadline_ms)
{
	c->ssl = SSL_new(ctx);
	c->rbio = BIO_new(BIO_s_mem());
	c->wbio = BIO_new(BIO_s_mem());
	if (c->ssl == NULL || c->rbio == NULL || c->wbio == NULL) {
		BIO_free(c->rbio);
		BIO_free(c->wbio);
		SSL_free(c->ssl);
		c->ssl = NULL;
		ERR_clear_error();
		return CLI_ENOMEM;
	}
	BIO_set_mem_eof_return(c->rbio, -1);
	SSL_set_bio(c->ssl, c->rbio, c->wbio);
	SSL_set_connect_state(c->ssl);
	SSL_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
	for (;;) {
		ERR_clear_error();
		int r = SSL_do_handshake(c->ssl);
		int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, r);
		if (e != SSL_ERROR_NONE && e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
			tls_failed(c, "handshake failed");
			(void)tls_flush(c, deadline_ms); /* the alert */
			return CLI_ECONN;
		}
		int rc = tls_flush(c, deadline_ms);
		if (rc != 0)
			return rc;
		if (r == 1)
			return 0;
		rc = tls_fill(c, deadline_ms);
		if (rc != 0) {
			if (rc == CLI_ECONN)
				snprintf(tls_error, sizeof tls_error,
					 "%s: connection closed during the TLS handshake", c->addr);
			return rc;
		}
	}
}

int cli_conn_open(const char *addr, SSL_CTX *tls, int64_t deadline_ms, struct cli_conn **out)
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
	if (tls != NULL) {
		int rc = tls_handshake(c, tls, deadline_ms);
		if (rc != 0) {
			cli_conn_close(c);
			return rc;
		}
	}
	*out = c;
	return 0;
}

void cli_conn_close(struct cli_conn *conn)
{
	if (conn == NULL)
		return;
	if (conn->ssl != NULL) {
		/* close_notify, best effort: never wait for it */
		ERR_clear_error();
		if (SSL_is_init_finished(conn->ssl) && SSL_shutdown(conn->ssl) >= 0)
			(void)tls_flush(conn, 1);
		ERR_clear_error();
		SSL_free(conn->ssl);
	}
	close(conn->fd);
	net_decoder_free(&conn->dec);
	free(conn->sbuf);
	free(conn);
}

uint8_t *cli_conn_queue(struct cli_conn *conn, uint32_t len)
{
	size_t total = conn->sbuf_len + NET_FRAME_HEADER + (size_t)len;
	if (total > conn->sbuf_cap) {
		size_t cap = conn->sbuf_cap ? conn->sbuf_cap : 4096;
		while (cap < total)
			cap *= 2;
		uint8_t *nb = realloc(conn->sbuf, cap);
		if (nb == NULL)
			return NULL;
		conn->sbuf = nb;
		conn->sbuf_cap = cap;
	}
	uint8_t *hdr = conn->sbuf + conn->sbuf_len;
	net_frame_header(hdr, len);
	conn->sbuf_len = total;
	return hdr + NET_FRAME_HEADER;
}

int cli_conn_flush(struct cli_conn *conn, int64_t deadline_ms)
{
	size_t len = conn->sbuf_len;
	conn->sbuf_len = 0;
	if (len == 0)
		return 0;
	if (conn->ssl == NULL)
		return send_all(conn->fd, conn->sbuf, len, deadline_ms);
	ERR_clear_error();
	int n = SSL_write(conn->ssl, conn->sbuf, (int)len);
	if (n != (int)len) {
		/* memory BIOs never push back: anything else is a broken session */
		tls_failed(conn, "write refused");
		return CLI_ECONN;
	}
	return tls_flush(conn, deadline_ms);
}

int cli_conn_send(struct cli_conn *conn, const void *payload, uint32_t len, int64_t deadline_ms)
{
	if (conn->ssl != NULL) { /* header and payload gathered: one record for small frames */
		uint8_t *p = cli_conn_queue(conn, len);
		if (p == NULL)
			return CLI_ENOMEM;
		memcpy(p, payload, len);
		return cli_conn_flush(conn, deadline_ms);
	}
	int rc = cli_conn_flush(conn, deadline_ms); /* what was queued goes first */
	if (rc != 0)
		return rc;
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
		if (conn->ssl != NULL) {
			/* Every whole record in rbio is decrypted before the socket is read
			 * again, so "nothing readable" (CLI_TIMEOUT with deadline 0) means
			 * nothing is hidden in OpenSSL either: polling the fd stays right. */
			ERR_clear_error();
			int n = SSL_read(conn->ssl, buf, sizeof buf);
			if (n > 0) {
				if (net_decoder_feed(&conn->dec, buf, (size_t)n) != NET_OK)
					return CLI_ENOMEM;
				continue;
			}
			int e = SSL_get_error(conn->ssl, n);
			if (e == SSL_ERROR_ZERO_RETURN)
				return CLI_ECONN;
			if (e != SSL_ERROR_WANT_READ) {
				tls_failed(conn, "record refused");
				return CLI_ECONN;
			}
			/* what reading made TLS answer (a KeyUpdate) */
			int rc = tls_flush(conn, deadline_ms ? deadline_ms : cli_now_ms() + 1000);
			if (rc != 0)
				return rc;
			rc = tls_fill(conn, deadline_ms);
			if (rc != 0)
				return rc;
			continue;
		}
		size_t n;
		int rc = recv_some(conn->fd, buf, sizeof buf, deadline_ms, &n);
		if (rc != 0)
			return rc;
		if (net_decoder_feed(&conn->dec, buf, n) != NET_OK)
			return CLI_ENOMEM;
	}
}
