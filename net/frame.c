/* frame.c — [u32 length][payload] framing: header encoding and a streaming decoder.
 * The decoder compacts its buffer lazily (when consumed bytes exceed half of it, or before it
 * would grow), so a stream of small frames costs no memmove per frame. */
#include "net/frame.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

const char *net_strerror(int err)
{
	switch (err) {
	case NET_OK:
		return "ok";
	case NET_ETOOBIG:
		return "frame too large";
	case NET_ENOMEM:
		return "out of memory";
	case NET_EPROTO:
		return "protocol error";
	case NET_ECLOSED:
		return "connection closed";
	case NET_ETIMEDOUT:
		return "timed out";
	case NET_EIO:
		return "i/o error";
	case NET_EADDR:
		return "bad address";
	case NET_EFULL:
		return "queue full";
	case NET_ETLS:
		return "TLS failure";
	default:
		return "unknown error";
	}
}

void net_frame_header(uint8_t out[NET_FRAME_HEADER], uint32_t len)
{
	out[0] = (uint8_t)(len >> 24);
	out[1] = (uint8_t)(len >> 16);
	out[2] = (uint8_t)(len >> 8);
	out[3] = (uint8_t)len;
}

void net_decoder_init(struct net_decoder *d, uint32_t max_frame)
{
	memset(d, 0, sizeof *d);
	d->max_frame = max_frame;
}

void net_decoder_free(struct net_decoder *d)
{
	free(d->buf);
	memset(d, 0, sizeof *d);
}

int net_decoder_feed(struct net_decoder *d, const void *data, size_t len)
{
	if (len == 0)
		return NET_OK; /* nothing to add (and memcpy into a NULL buffer is undefined) */
	if (d->consumed > 0 &&
	    (d->consumed == d->len || d->consumed > d->cap / 2 || d->len + len > d->cap)) {
		memmove(d->buf, d->buf + d->consumed, d->len - d->consumed);
		d->len -= d->consumed;
		d->consumed = 0;
	}
	if (d->len + len > d->cap) {
		size_t cap = d->cap ? d->cap : 4096;
		while (cap < d->len + len)
			cap *= 2;
		uint8_t *nb = realloc(d->buf, cap);
		if (nb == NULL)
			return NET_ENOMEM;
		d->buf = nb;
		d->cap = cap;
	}
	memcpy(d->buf + d->len, data, len);
	d->len += len;
	return NET_OK;
}

static uint32_t frame_len(const uint8_t *h)
{
	return ((uint32_t)h[0] << 24) | ((uint32_t)h[1] << 16) | ((uint32_t)h[2] << 8) | h[3];
}

/* One frame from [p, p + avail): 1 and *taken set, 0 if not whole yet, NET_ETOOBIG. */
static int take_frame(const struct net_decoder *d, const uint8_t *p, size_t avail,
		      const uint8_t **payload, uint32_t *len, size_t *taken)
{
	if (avail < NET_FRAME_HEADER)
		return 0;
	uint32_t n = frame_len(p);
	if (n > d->max_frame)
		return NET_ETOOBIG;
	if (avail - NET_FRAME_HEADER < n)
		return 0;
	*payload = p + NET_FRAME_HEADER;
	*len = n;
	*taken = NET_FRAME_HEADER + (size_t)n;
	return 1;
}

int net_decoder_next(struct net_decoder *d, const uint8_t **payload, uint32_t *len)
{
	size_t taken;
	if (d->len > d->consumed) {
		/* Own bytes first: a lend begins only when they are at most one partial frame
		 * topped up to whole, so nothing of the lent bytes can precede them. */
		int rc = take_frame(d, d->buf + d->consumed, d->len - d->consumed, payload, len, &taken);
		if (rc == 1)
			d->consumed += taken;
		return rc;
	}
	if (d->lent == NULL)
		return 0;
	int rc = take_frame(d, d->lent + d->lent_off, d->lent_len - d->lent_off, payload, len, &taken);
	if (rc == 1)
		d->lent_off += taken;
	return rc;
}

/* Copies up to want bytes of *p into the buffer, advancing *p and *len past them. */
static int top_up(struct net_decoder *d, const uint8_t **p, size_t *len, size_t want)
{
	size_t take = want < *len ? want : *len;
	if (net_decoder_feed(d, *p, take) != NET_OK)
		return NET_ENOMEM;
	*p += take;
	*len -= take;
	return NET_OK;
}

int net_decoder_lend(struct net_decoder *d, const void *data, size_t len)
{
	const uint8_t *p = data;
	size_t pending = d->len - d->consumed;
	if (pending > 0) {
		/* A frame begun earlier: complete it from the new bytes, no more. */
		if (pending < NET_FRAME_HEADER) {
			if (top_up(d, &p, &len, NET_FRAME_HEADER - pending) != NET_OK)
				return NET_ENOMEM;
			pending = d->len - d->consumed;
			if (pending < NET_FRAME_HEADER)
				return NET_OK;
		}
		uint32_t n = frame_len(d->buf + d->consumed);
		if (n > d->max_frame || pending >= NET_FRAME_HEADER + (size_t)n) {
			/* an oversize header (next refuses it), or whole frames already held: keep
			 * the order simple and copy everything */
			return net_decoder_feed(d, p, len);
		}
		if (top_up(d, &p, &len, NET_FRAME_HEADER + (size_t)n - pending) != NET_OK)
			return NET_ENOMEM;
	}
	d->lent = len > 0 ? p : NULL;
	d->lent_len = len;
	d->lent_off = 0;
	return NET_OK;
}

int net_decoder_keep(struct net_decoder *d)
{
	const uint8_t *rest = d->lent ? d->lent + d->lent_off : NULL;
	size_t n = d->lent_len - d->lent_off;
	d->lent = NULL;
	d->lent_len = d->lent_off = 0;
	if (rest != NULL && n > 0)
		return net_decoder_feed(d, rest, n);
	if (d->consumed == d->len && d->cap > NET_DECODER_KEEP_BYTES) {
		free(d->buf);
		d->buf = NULL;
		d->len = d->cap = d->consumed = 0;
	}
	return NET_OK;
}

int net_parse_addr(const char *s, struct sockaddr_storage *out)
{
	char host[128];
	const char *colon = strrchr(s, ':');
	if (colon == NULL || colon == s || (size_t)(colon - s) >= sizeof host)
		return NET_EADDR;
	/* digits only: strtol would also take leading white space and a sign ("1.2.3.4:\n7") */
	if (colon[1] < '0' || colon[1] > '9')
		return NET_EADDR;
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || end == colon + 1 || port <= 0 || port > 65535)
		return NET_EADDR;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	memset(out, 0, sizeof *out);
	if (host[0] == '[') {
		size_t hl = strlen(host);
		if (hl < 3 || host[hl - 1] != ']')
			return NET_EADDR;
		host[hl - 1] = '\0';
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)out;
		if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) != 1)
			return NET_EADDR;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		return NET_OK;
	}
	struct sockaddr_in *a4 = (struct sockaddr_in *)out;
	if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
		return NET_EADDR;
	a4->sin_family = AF_INET;
	a4->sin_port = htons((uint16_t)port);
	return NET_OK;
}
