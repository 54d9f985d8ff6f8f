/* frame.h — length-prefixed framing shared by the peer and client protocols (DESIGN.md 7).
 *
 * A frame is [u32 big-endian payload length][payload]. A decoder accumulates bytes as they
 * arrive from a stream and hands out whole payloads; a length over the decoder's limit is a
 * protocol error (the connection is closed), never an allocation. No libuv here: the buffer
 * logic is shared by the event-loop transport (net/) and the blocking client (cli/).
 */
#ifndef RINGRAFT_NET_FRAME_H
#define RINGRAFT_NET_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "net/net_limits.h"

#define NET_FRAME_HEADER 4

enum {
	NET_OK = 0,
	NET_ETOOBIG = -1, /* frame length over the limit */
	NET_ENOMEM = -2,
	NET_EPROTO = -3,  /* undecodable payload / unexpected message */
	NET_ECLOSED = -4, /* peer closed the connection */
	NET_ETIMEDOUT = -5,
	NET_EIO = -6,   /* socket error (errno in the log line) */
	NET_EADDR = -7, /* bad address string */
	NET_EFULL = -8, /* outbound queue full */
	NET_ETLS = -9,  /* TLS handshake or record refused (net/tls.h says why) */
};
const char *net_strerror(int err);

/* Writes the 4-byte header for a payload of len bytes. */
void net_frame_header(uint8_t out[NET_FRAME_HEADER], uint32_t len);

struct net_decoder {
	uint8_t *buf;
	size_t len, cap;
	size_t consumed;    /* bytes of buf already handed out */
	uint32_t max_frame; /* payload limit */
	const uint8_t *lent; /* the caller's bytes, read in place (net_decoder_lend) */
	size_t lent_len, lent_off;
};
void net_decoder_init(struct net_decoder *d, uint32_t max_frame);
void net_decoder_free(struct net_decoder *d);
/* Appends received bytes (copied). NET_ENOMEM on allocation failure. */
int net_decoder_feed(struct net_decoder *d, const void *data, size_t len);
/* Next whole payload: 1 with payload and len set (borrowed until the next feed, lend, keep or
 * next call), 0 if no whole frame yet, NET_ETOOBIG if the pending header announces an oversize
 * frame. */
int net_decoder_next(struct net_decoder *d, const uint8_t **payload, uint32_t *len);
/* The receive path without the copy: frames are handed out straight from data, which the caller
 * keeps valid until net_decoder_keep. Only a frame begun in an earlier read is completed in the
 * decoder's own buffer (and, in the rare case that the buffer holds whole frames not yet taken,
 * everything is copied as by feed). So a connection's buffer holds at most one partial frame
 * between reads, whatever the reads' size: memory per connection stays near one frame. */
int net_decoder_lend(struct net_decoder *d, const void *data, size_t len);
/* Ends a lend: copies the bytes not yet handed out into the decoder's buffer, and gives a
 * large buffer back when nothing is left in it. NET_ENOMEM on allocation failure. */
int net_decoder_keep(struct net_decoder *d);

/* Parses "host:port" (IPv4 dotted quad or [v6]) into a sockaddr_storage. */
struct sockaddr_storage;
int net_parse_addr(const char *s, struct sockaddr_storage *out);

#endif
