/* resp.h — the Redis serialization protocol (RESP2 and RESP3's types): a parser that takes
 * whatever bytes have arrived and says "one whole value", "need more" or "malformed", within
 * explicit limits, and an encoder that appends replies to a growable buffer. No I/O: the RESP
 * port (resp_server.c) and the tests drive it with plain buffers.
 */
#ifndef RINGRAFT_NET_RESP_H
#define RINGRAFT_NET_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum net_resp_type {
	NET_RESP_SIMPLE = '+',
	NET_RESP_ERROR = '-',
	NET_RESP_INT = ':',
	NET_RESP_BULK = '$',
	NET_RESP_ARRAY = '*',
	NET_RESP_NULL = '_',     /* RESP3 */
	NET_RESP_BOOL = '#',     /* RESP3 */
	NET_RESP_DOUBLE = ',',   /* RESP3 */
	NET_RESP_BIGNUM = '(',   /* RESP3 */
	NET_RESP_BLOBERR = '!',  /* RESP3 */
	NET_RESP_VERBATIM = '=', /* RESP3 */
	NET_RESP_MAP = '%',      /* RESP3 */
	NET_RESP_SET = '~',      /* RESP3 */
	NET_RESP_ATTR = '|',     /* RESP3 */
	NET_RESP_PUSH = '>',     /* RESP3 */
};

/* Errors: the input is malformed (the connection that sent it is closed after the error
 * reply), or memory ran out. */
enum {
	NET_RESP_EPROTO = -1,  /* a type byte, a CRLF or a number is wrong */
	NET_RESP_EBULK = -2,   /* a bulk length is malformed or over bulk_max */
	NET_RESP_EMBULK = -3,  /* an array length is malformed or over array_max */
	NET_RESP_EINLINE = -4, /* an inline command (or a header line) longer than inline_max */
	NET_RESP_EDEPTH = -5,  /* arrays nested deeper than depth_max */
	NET_RESP_EEXPECT = -6, /* commands: an array element that is not a bulk string */
	NET_RESP_ENOMEM = -7,
};
/* The text Redis gives for the error ("Protocol error: invalid bulk length", ...). */
const char *net_resp_strerror(int err);

/* One parsed value. Pointers point into the parsed buffer (valid while it is). */
struct net_resp_val {
	uint8_t type;     /* enum net_resp_type */
	bool null;        /* $-1, *-1 (RESP2) or _ (RESP3) */
	const uint8_t *p; /* SIMPLE, ERROR, DOUBLE, BIGNUM: the line; BULK, BLOBERR, VERBATIM:
			   * the bytes */
	size_t len;
	int64_t i; /* INT; BOOL: 0 or 1 */
	size_t n;  /* ARRAY, SET, PUSH: elements; MAP, ATTR: pairs (2n values follow) */
};

struct net_resp_limits {
	size_t bulk_max;   /* longest bulk string (and simple-string line) */
	size_t array_max;  /* most elements of one array (pairs of one map) */
	size_t inline_max; /* longest inline command, and longest header line in commands */
	size_t depth_max;  /* nesting: 1 = a flat array */
	bool commands;     /* client requests: an array of bulk strings, or an inline command
			    * (words split on spaces, as redis-cli --no-raw telnet users type) */
};

struct net_resp_parser {
	struct net_resp_limits lim;
	struct net_resp_val *v; /* the last value, preorder; v[0] is the top */
	size_t n, cap;
	size_t need; /* after "need more": no whole value before this many bytes */
	char err[96];
};
void net_resp_parser_init(struct net_resp_parser *p, const struct net_resp_limits *lim);
void net_resp_parser_free(struct net_resp_parser *p);
/* Parses one value from buf[0..len). 1: p->v[0..p->n) holds it and *used says how many bytes
 * it took. 0: incomplete (call again with the same bytes and more). < 0: malformed (see above;
 * p->err holds the reply text, e.g. "Protocol error: expected '$', got '+'"). In commands mode
 * an empty array or an empty inline line is a value with no elements (Redis ignores them). */
int net_resp_parse(struct net_resp_parser *p, const uint8_t *buf, size_t len, size_t *used);

/* ------------------------------------------------------------------------------ encoding */
/* A reply buffer; on allocation failure oom is set and later puts do nothing. Zero it to
 * start; free p when done (or hand it over). */
struct net_resp_buf {
	uint8_t *p;
	size_t len, cap;
	bool oom;
};
void net_resp_put_raw(struct net_resp_buf *b, const void *p, size_t len);
void net_resp_put_simple(struct net_resp_buf *b, const char *s); /* "+s\r\n" */
/* "-text\r\n"; text (e.g. "ERR wrong number ...") has CR and LF replaced by spaces. */
void net_resp_put_error(struct net_resp_buf *b, const char *text);
void net_resp_put_errorf(struct net_resp_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void net_resp_put_int(struct net_resp_buf *b, int64_t v);
void net_resp_put_bulk(struct net_resp_buf *b, const void *p, size_t len);
void net_resp_put_str(struct net_resp_buf *b, const char *s); /* a bulk of a C string */
/* Null bulk ("$-1", RESP3 "_"), null array ("*-1", "_"). proto is 2 or 3. */
void net_resp_put_null(struct net_resp_buf *b, int proto);
void net_resp_put_null_array(struct net_resp_buf *b, int proto);
void net_resp_put_array(struct net_resp_buf *b, size_t n);
/* A map of n pairs: RESP3 "%n", RESP2 a flat array of 2n. */
void net_resp_put_map(struct net_resp_buf *b, size_t n, int proto);
/* A set (RESP3 "~n", RESP2 an array). */
void net_resp_put_set(struct net_resp_buf *b, size_t n, int proto);
void net_resp_put_bool(struct net_resp_buf *b, bool v, int proto);     /* "#t" / ":1" */
void net_resp_put_double(struct net_resp_buf *b, double v, int proto); /* ",1.5" / bulk */
/* Text (INFO): RESP3 verbatim "=len\r\ntxt:...", RESP2 a bulk string. */
void net_resp_put_verbatim(struct net_resp_buf *b, const char *text, size_t len, int proto);

#endif
