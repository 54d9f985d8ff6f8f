/* conn.h — one blocking-with-deadline connection to one node's client port: frames out, frames
 * in (net/frame.h). The socket is non-blocking and every wait is a poll(2) bounded by an
 * absolute deadline, so no call can hang past it. Internal to cli/ (client.c, kvctl bench).
 */
#ifndef RINGRAFT_CLI_CONN_H
#define RINGRAFT_CLI_CONN_H

#include <stdint.h>

#include "cli/cli_limits.h"
#include "net/frame.h"
#include "net/tls.h"

#define CLI_TLS_ERROR_MAX 192

struct cli_conn {
	int fd;
	char addr[CLI_ADDR_MAX];
	struct net_decoder dec;
	/* TLS through memory BIOs, as on the node (net/tls.c): our own send/recv move the
	 * ciphertext, so MSG_NOSIGNAL and the deadlines hold. NULL in plaintext. */
	SSL *ssl;
	BIO *rbio, *wbio; /* owned by ssl */
	/* Frames queued by cli_conn_queue until cli_conn_flush writes them in one send (or one
	 * SSL_write: one record for small frames). */
	uint8_t *sbuf;
	size_t sbuf_len, sbuf_cap;
};

/* This thread's buffer behind cli_tls_error (CLI_TLS_ERROR_MAX bytes). */
char *cli_tls_error_buf(void);

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t cli_now_ms(void);

/* Connects to "host:port" before deadline_ms (cli_now_ms() time), with a TLS handshake when
 * tls is not NULL (borrowed; must outlive the connection). 0 with *out (free with
 * cli_conn_close), CLI_EADDR, CLI_ECONN (refused / unreachable / TLS handshake refused: see
 * cli_tls_error), CLI_TIMEOUT or CLI_ENOMEM. */
int cli_conn_open(const char *addr, SSL_CTX *tls, int64_t deadline_ms, struct cli_conn **out);
/* Closes the socket and frees the connection. NULL is a no-op. */
void cli_conn_close(struct cli_conn *conn);
/* Writes one whole frame (header + payload) before the deadline: 0, CLI_ECONN (broken; part
 * of the frame may have been sent) or CLI_TIMEOUT (the connection is then unusable). */
int cli_conn_send(struct cli_conn *conn, const void *payload, uint32_t len, int64_t deadline_ms);
/* Queues one frame of len payload bytes for cli_conn_flush: the place of its payload (the
 * header is written), to be filled before the flush; NULL when out of memory. Several
 * requests to one node then leave in one system call (kvctl bench). */
uint8_t *cli_conn_queue(struct cli_conn *conn, uint32_t len);
/* Writes every queued frame before the deadline: 0 (also when none is queued), CLI_ECONN or
 * CLI_TIMEOUT as cli_conn_send; the queue is empty afterwards either way. */
int cli_conn_flush(struct cli_conn *conn, int64_t deadline_ms);
/* The next whole frame: 0 with payload/len (borrowed until the next call on conn), CLI_TIMEOUT
 * when none arrived before the deadline, CLI_ECONN when the peer closed or the socket failed,
 * CLI_EPROTO for an oversize frame, CLI_ENOMEM. deadline_ms = 0 means "only what is already
 * readable": then CLI_TIMEOUT just says no whole frame is there yet. */
int cli_conn_recv(struct cli_conn *conn, int64_t deadline_ms, const uint8_t **payload,
		  uint32_t *len);

#endif
