/* fuzz_resp.c — libFuzzer harness for the RESP parser (net/resp.c net_resp_parse), as the
 * RESP port drives it (net/resp_server.c: commands mode, one value after another out of the
 * bytes received) and as a reply parser (nested RESP3 values, depth limit).
 *
 * Input: byte 0 picks the mode and the limits, byte 1 a split point; the rest is the stream.
 * Checked beyond "no crash": every value lies inside the bytes it was parsed from (the
 * buffer is an exact-size copy, so ASan catches any read past it); the preorder value list
 * is a well-formed tree within depth_max and every length within its limit; in commands mode
 * a command is a flat array of bulk strings; a strict prefix of a whole value is "need more"
 * (never a value nor an error), and "need more" asks for more bytes than it had.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/resp.h"

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "fuzz_resp: check failed: %s (line %d)\n", #c, __LINE__);  \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static int is_aggregate(uint8_t t)
{
	return t == NET_RESP_ARRAY || t == NET_RESP_SET || t == NET_RESP_PUSH ||
	       t == NET_RESP_MAP || t == NET_RESP_ATTR;
}

/* Walks the value at v[*i] (preorder); returns its depth (1 = scalar). */
static size_t walk(const struct net_resp_parser *p, size_t *i, const uint8_t *buf, size_t used)
{
	CHECK(*i < p->n);
	const struct net_resp_val *v = &p->v[(*i)++];
	if (v->p != NULL) {
		CHECK(v->p >= buf && v->p + v->len <= buf + used);
		/* an inline command's words are bounded by inline_max, not bulk_max */
		size_t max = p->lim.commands && p->lim.inline_max > p->lim.bulk_max
				     ? p->lim.inline_max
				     : p->lim.bulk_max;
		if (v->type == NET_RESP_BULK || v->type == NET_RESP_SIMPLE)
			CHECK(v->len <= max);
	} else {
		CHECK(v->len == 0);
	}
	if (!is_aggregate(v->type) || v->null)
		return 1;
	CHECK(v->n <= p->lim.array_max);
	size_t kids = (v->type == NET_RESP_MAP || v->type == NET_RESP_ATTR) ? 2 * v->n : v->n;
	size_t deepest = 0;
	for (size_t k = 0; k < kids; k++) {
		size_t d = walk(p, i, buf, used);
		if (d > deepest)
			deepest = d;
	}
	return deepest + 1;
}

static int parse_copy(const struct net_resp_limits *lim, const uint8_t *data, size_t len,
		      struct net_resp_parser *p, size_t *used)
{
	uint8_t *copy = malloc(len ? len : 1); /* exact size: ASan sees any read past len */
	if (len)
		memcpy(copy, data, len);
	net_resp_parser_init(p, lim);
	int rc = net_resp_parse(p, copy, len, used);
	if (rc == 1) {
		size_t i = 0;
		CHECK(*used > 0 && *used <= len);
		CHECK(p->n >= 1);
		size_t depth = walk(p, &i, copy, *used);
		CHECK(i == p->n);
		if (lim->commands) {
			CHECK(p->v[0].type == NET_RESP_ARRAY && p->n == p->v[0].n + 1);
			for (size_t k = 1; k < p->n; k++)
				CHECK(p->v[k].type == NET_RESP_BULK && !p->v[k].null);
		} else {
			/* depth counts the top value; depth_max limits nesting of aggregates */
			CHECK(depth <= lim->depth_max + 1);
		}
	} else if (rc == 0) {
		CHECK(p->need > len);
	} else {
		CHECK(rc >= NET_RESP_ENOMEM && rc <= NET_RESP_EPROTO);
		CHECK(p->err[0] != '\0' && memchr(p->err, '\0', sizeof p->err) != NULL);
	}
	free(copy);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint8_t mode = data[0], split = data[1];
	data += 2;
	size -= 2;
	struct net_resp_limits lim = {
		.bulk_max = (mode & 4) ? 64 : (64u << 10),
		.array_max = (mode & 8) ? 4 : 1024,
		.inline_max = (mode & 16) ? 16 : 4096,
		.depth_max = (mode & 1) ? 1 : 1 + ((mode >> 5) & 7),
		.commands = (mode & 1) != 0,
	};
	if (lim.commands)
		lim.depth_max = 1; /* as resp_server.c */

	/* One value after another, as the RESP port consumes pipelined commands. */
	size_t off = 0;
	for (int values = 0; values < 64 && off < size; values++) {
		struct net_resp_parser p;
		size_t used = 0;
		int rc = parse_copy(&lim, data + off, size - off, &p, &used);
		net_resp_parser_free(&p);
		if (rc != 1)
			break;
		/* A strict prefix of a whole value is incomplete, never a value or an error. */
		size_t k = used > 1 ? (size_t)split % used : 0;
		size_t used2 = 0;
		int rc2 = parse_copy(&lim, data + off, k, &p, &used2);
		net_resp_parser_free(&p);
		CHECK(rc2 == 0);
		off += used;
	}
	return 0;
}
