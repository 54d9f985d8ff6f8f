/* resp.c — RESP2/RESP3 parsing and encoding (see resp.h). The parser is a recursive descent
 * over the bytes buffered so far; an incomplete value is parsed again from its start when
 * more bytes arrive, which costs O(header bytes) for a large bulk string since `need` tells
 * the caller how long to wait. Every length is checked against the limits before anything
 * is allocated for it: a declared million-element array costs nothing until its elements
 * arrive.
 */
#include "net/resp.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MORE 0 /* parse step: incomplete */

const char *net_resp_strerror(int err)
{
	switch (err) {
	case NET_RESP_EPROTO:
		return "Protocol error: malformed input";
	case NET_RESP_EBULK:
		return "Protocol error: invalid bulk length";
	case NET_RESP_EMBULK:
		return "Protocol error: invalid multibulk length";
	case NET_RESP_EINLINE:
		return "Protocol error: too big inline request";
	case NET_RESP_EDEPTH:
		return "Protocol error: nesting too deep";
	case NET_RESP_EEXPECT:
		return "Protocol error: expected '$'";
	case NET_RESP_ENOMEM:
		return "out of memory";
	default:
		return "unknown error";
	}
}

void net_resp_parser_init(struct net_resp_parser *p, const struct net_resp_limits *lim)
{
	memset(p, 0, sizeof *p);
	p->lim = *lim;
}

void net_resp_parser_free(struct net_resp_parser *p)
{
	free(p->v);
	p->v = NULL;
	p->n = p->cap = 0;
}

struct cur {
	struct net_resp_parser *p;
	const uint8_t *buf;
	size_t len, pos;
};

static int fail(struct cur *c, int err)
{
	snprintf(c->p->err, sizeof c->p->err, "%s", net_resp_strerror(err));
	return err;
}

static struct net_resp_val *push(struct cur *c, uint8_t type)
{
	struct net_resp_parser *p = c->p;
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 16;
		struct net_resp_val *v = realloc(p->v, cap * sizeof *v);
		if (v == NULL)
			return NULL;
		p->v = v;
		p->cap = cap;
	}
	struct net_resp_val *v = &p->v[p->n++];
	memset(v, 0, sizeof *v);
	v->type = type;
	return v;
}

/* A line from pos to CRLF (exclusive), at most max bytes. 1 and [*s, *l), MORE, or < 0. */
static int line(struct cur *c, size_t max, int too_long, const uint8_t **s, size_t *l)
{
	size_t avail = c->len - c->pos;
	/* a line of max bytes has its CR at b[max]: no CR in b[0..max] means too long */
	size_t scan = avail < max + 1 ? avail : max + 1;
	const uint8_t *b = c->buf + c->pos;
	const uint8_t *cr = memchr(b, '\r', scan);
	if (cr == NULL) {
		if (avail >= max + 1)
			return fail(c, too_long);
		c->p->need = c->len + 1;
		return MORE;
	}
	size_t n = (size_t)(cr - b);
	if (n + 1 == avail) {
		c->p->need = c->len + 1;
		return MORE;
	}
	if (b[n + 1] != '\n')
		return fail(c, NET_RESP_EPROTO);
	*s = b;
	*l = n;
	c->pos += n + 2;
	return 1;
}

/* A strict decimal int64: optional '-', 1..19 digits. */
static bool parse_int(const uint8_t *s, size_t l, int64_t *out)
{
	bool neg = l > 0 && s[0] == '-';
	size_t i = neg ? 1 : 0;
	if (i == l || l - i > 19)
		return false;
	uint64_t v = 0;
	for (; i < l; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > (uint64_t)INT64_MAX + (neg ? 1 : 0))
		return false;
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return true;
}

static int value(struct cur *c, size_t depth);

static int aggregate(struct cur *c, size_t vi, int64_t n, size_t per, size_t depth)
{
	struct net_resp_parser *p = c->p;
	if (depth + 1 > p->lim.depth_max)
		return fail(c, NET_RESP_EDEPTH);
	p->v[vi].n = (size_t)n;
	for (int64_t k = 0; k < n * (int64_t)per; k++) {
		if (p->lim.commands) {
			if (c->pos == c->len) {
				p->need = c->len + 1;
				return MORE;
			}
			uint8_t t = c->buf[c->pos];
			if (t != '$') {
				snprintf(p->err, sizeof p->err,
					 "Protocol error: expected '$', got '%c'",
					 t >= 0x20 && t < 0x7f ? t : '?');
				return NET_RESP_EEXPECT;
			}
		}
		int rc = value(c, depth + 1);
		if (rc <= 0)
			return rc;
	}
	return 1;
}

static int value(struct cur *c, size_t depth)
{
	struct net_resp_parser *p = c->p;
	if (c->pos == c->len) {
		p->need = c->len + 1;
		return MORE;
	}
	uint8_t t = c->buf[c->pos];
	size_t hdr_max = p->lim.commands ? p->lim.inline_max : p->lim.bulk_max;
	const uint8_t *s;
	size_t l;
	int64_t n;
	int rc;
	switch (t) {
	case '+':
	case '-':
	case ',':
	case '(':
	case ':':
	case '#':
	case '_': {
		c->pos++;
		size_t vi = p->n;
		if (push(c, t) == NULL)
			return fail(c, NET_RESP_ENOMEM);
		if ((rc = line(c, hdr_max, NET_RESP_EINLINE, &s, &l)) <= 0)
			return rc;
		struct net_resp_val *v = &p->v[vi];
		v->p = s;
		v->len = l;
		if (t == ':' && !parse_int(s, l, &v->i))
			return fail(c, NET_RESP_EPROTO);
		if (t == '#') {
			if (l != 1 || (s[0] != 't' && s[0] != 'f'))
				return fail(c, NET_RESP_EPROTO);
			v->i = s[0] == 't';
		}
		if (t == '_') {
			if (l != 0)
				return fail(c, NET_RESP_EPROTO);
			v->null = true;
		}
		return 1;
	}
	case '$':
	case '!':
	case '=': {
		c->pos++;
		size_t vi = p->n;
		if (push(c, t) == NULL)
			return fail(c, NET_RESP_ENOMEM);
		if ((rc = line(c, 32, NET_RESP_EBULK, &s, &l)) <= 0)
			return rc;
		if (!parse_int(s, l, &n) || n < -1 || (n == -1 && p->lim.commands) ||
		    (n >= 0 && (uint64_t)n > p->lim.bulk_max))
			return fail(c, NET_RESP_EBULK);
		struct net_resp_val *v = &p->v[vi];
		if (n == -1) {
			v->null = true;
			return 1;
		}
		if (c->len - c->pos < (size_t)n + 2) {
			p->need = c->pos + (size_t)n + 2;
			return MORE;
		}
		if (c->buf[c->pos + (size_t)n] != '\r' || c->buf[c->pos + (size_t)n + 1] != '\n')
			return fail(c, NET_RESP_EPROTO);
		v->p = c->buf + c->pos;
		v->len = (size_t)n;
		c->pos += (size_t)n + 2;
		if (t == '=' && (n < 4 || v->p[3] != ':'))
			return fail(c, NET_RESP_EPROTO);
		return 1;
	}
	case '*':
	case '~':
	case '>':
	case '%':
	case '|': {
		c->pos++;
		size_t vi = p->n;
		if (push(c, t) == NULL)
			return fail(c, NET_RESP_ENOMEM);
		if ((rc = line(c, 32, NET_RESP_EMBULK, &s, &l)) <= 0)
			return rc;
		if (!parse_int(s, l, &n) || n < -1 || (n == -1 && t != '*') ||
		    (n >= 0 && (uint64_t)n > p->lim.array_max))
			return fail(c, NET_RESP_EMBULK);
		if (n == -1) {
			p->v[vi].null = true;
			return 1;
		}
		return aggregate(c, vi, n, (t == '%' || t == '|') ? 2 : 1, depth);
	}
	default:
		snprintf(p->err, sizeof p->err, "Protocol error: unknown type byte 0x%02x", t);
		return NET_RESP_EPROTO;
	}
}

/* An inline command: words separated by spaces or tabs, up to LF (a CR before it dropped). */
static int inline_cmd(struct cur *c)
{
	struct net_resp_parser *p = c->p;
	size_t scan = c->len < p->lim.inline_max + 1 ? c->len : p->lim.inline_max + 1;
	const uint8_t *nl = memchr(c->buf, '\n', scan);
	if (nl == NULL) {
		if (c->len > p->lim.inline_max)
			return fail(c, NET_RESP_EINLINE);
		p->need = c->len + 1;
		return MORE;
	}
	size_t end = (size_t)(nl - c->buf);
	c->pos = end + 1;
	if (end > 0 && c->buf[end - 1] == '\r')
		end--;
	if (push(c, '*') == NULL)
		return fail(c, NET_RESP_ENOMEM);
	size_t i = 0;
	while (i < end) {
		while (i < end && (c->buf[i] == ' ' || c->buf[i] == '\t'))
			i++;
		if (i == end)
			break;
		size_t s = i;
		while (i < end && c->buf[i] != ' ' && c->buf[i] != '\t')
			i++;
		if (p->v[0].n == p->lim.array_max)
			return fail(c, NET_RESP_EMBULK);
		struct net_resp_val *v = push(c, '$');
		if (v == NULL)
			return fail(c, NET_RESP_ENOMEM);
		v->p = c->buf + s;
		v->len = i - s;
		p->v[0].n++;
	}
	return 1;
}

int net_resp_parse(struct net_resp_parser *p, const uint8_t *buf, size_t len, size_t *used)
{
	p->n = 0;
	p->err[0] = '\0';
	if (len < p->need)
		return MORE;
	p->need = 0;
	struct cur c = {p, buf, len, 0};
	int rc;
	if (len == 0) {
		p->need = 1;
		return MORE;
	}
	if (p->lim.commands && buf[0] != '*')
		rc = inline_cmd(&c);
	else
		rc = value(&c, 0);
	if (rc == 1) {
		p->need = 0;
		*used = c.pos;
	} else if (rc < 0) {
		p->need = 0;
		if (p->err[0] == '\0')
			snprintf(p->err, sizeof p->err, "%s", net_resp_strerror(rc));
	}
	return rc;
}

/* ------------------------------------------------------------------------------ encoding */

void net_resp_put_raw(struct net_resp_buf *b, const void *p, size_t len)
{
	if (b->oom || len == 0)
		return;
	if (b->cap - b->len < len) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap - b->len < len)
			cap *= 2;
		uint8_t *n = realloc(b->p, cap);
		if (n == NULL) {
			b->oom = true;
			return;
		}
		b->p = n;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, len);
	b->len += len;
}

static void put_hdr(struct net_resp_buf *b, char t, long long n)
{
	char h[32];
	int l = snprintf(h, sizeof h, "%c%lld\r\n", t, n);
	net_resp_put_raw(b, h, (size_t)l);
}

static void put_line(struct net_resp_buf *b, char t, const char *s, size_t len)
{
	net_resp_put_raw(b, &t, 1);
	size_t start = b->len;
	net_resp_put_raw(b, s, len);
	if (!b->oom)
		for (size_t i = start; i < b->len; i++)
			if (b->p[i] == '\r' || b->p[i] == '\n')
				b->p[i] = ' ';
	net_resp_put_raw(b, "\r\n", 2);
}

void net_resp_put_simple(struct net_resp_buf *b, const char *s)
{
	put_line(b, '+', s, strlen(s));
}

void net_resp_put_error(struct net_resp_buf *b, const char *text)
{
	put_line(b, '-', text, strlen(text));
}

void net_resp_put_errorf(struct net_resp_buf *b, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	net_resp_put_error(b, msg);
}

void net_resp_put_int(struct net_resp_buf *b, int64_t v)
{
	put_hdr(b, ':', (long long)v);
}

void net_resp_put_bulk(struct net_resp_buf *b, const void *p, size_t len)
{
	put_hdr(b, '$', (long long)len);
	net_resp_put_raw(b, p, len);
	net_resp_put_raw(b, "\r\n", 2);
}

void net_resp_put_str(struct net_resp_buf *b, const char *s)
{
	net_resp_put_bulk(b, s, strlen(s));
}

void net_resp_put_null(struct net_resp_buf *b, int proto)
{
	if (proto >= 3)
		net_resp_put_raw(b, "_\r\n", 3);
	else
		net_resp_put_raw(b, "$-1\r\n", 5);
}

void net_resp_put_null_array(struct net_resp_buf *b, int proto)
{
	if (proto >= 3)
		net_resp_put_raw(b, "_\r\n", 3);
	else
		net_resp_put_raw(b, "*-1\r\n", 5);
}

void net_resp_put_array(struct net_resp_buf *b, size_t n)
{
	put_hdr(b, '*', (long long)n);
}

void net_resp_put_map(struct net_resp_buf *b, size_t n, int proto)
{
	if (proto >= 3)
		put_hdr(b, '%', (long long)n);
	else
		put_hdr(b, '*', (long long)(2 * n));
}

void net_resp_put_set(struct net_resp_buf *b, size_t n, int proto)
{
	put_hdr(b, proto >= 3 ? '~' : '*', (long long)n);
}

void net_resp_put_bool(struct net_resp_buf *b, bool v, int proto)
{
	if (proto >= 3)
		net_resp_put_raw(b, v ? "#t\r\n" : "#f\r\n", 4);
	else
		net_resp_put_int(b, v ? 1 : 0);
}

void net_resp_put_double(struct net_resp_buf *b, double v, int proto)
{
	char s[64];
	int l = snprintf(s, sizeof s, "%.17g", v);
	if (proto >= 3)
		put_line(b, ',', s, (size_t)l);
	else
		net_resp_put_bulk(b, s, (size_t)l);
}

void net_resp_put_verbatim(struct net_resp_buf *b, const char *text, size_t len, int proto)
{
	if (proto < 3) {
		net_resp_put_bulk(b, text, len);
		return;
	}
	put_hdr(b, '=', (long long)(len + 4));
	net_resp_put_raw(b, "txt:", 4);
	net_resp_put_raw(b, text, len);
	net_resp_put_raw(b, "\r\n", 2);
}
