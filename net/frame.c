/* frame.c — [u32 length][payload] framing: header encoding and a streaming decoder.
 * The decoder compacts its buffer lazily (when consumed bytes exceed half of it), so a stream
 * of small frames costs no memmove per frame. */
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
	if (d->consumed > 0 && (d->consumed == d->len || d->consumed > d->cap / 2)) {
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

int net_decoder_next(struct net_decoder *d, const uint8_t **payload, uint32_t *len)
{
	size_t avail = d->len - d->consumed;
	if (avail < NET_FRAME_HEADER)
		return 0;
	const uint8_t *h = d->buf + d->consumed;
	uint32_t n = ((uint32_t)h[0] << 24) | ((uint32_t)h[1] << 16) | ((uint32_t)h[2] << 8) | h[3];
	if (n > d->max_frame)
		return NET_ETOOBIG;
	if (avail - NET_FRAME_HEADER < n)
		return 0;
	*payload = h + NET_FRAME_HEADER;
	*len = n;
	d->consumed += NET_FRAME_HEADER + (size_t)n;
	return 1;
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
