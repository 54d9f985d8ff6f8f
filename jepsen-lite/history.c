/* history.c — strict parser for the JSON Lines history of DESIGN.md section 10.
 *
 * Not general JSON: one flat object per line with exactly the format's fields; anything else is
 * refused with its line number, since a checker guessing at a damaged history could call a
 * broken run valid. Invocations are then paired with completions per process.
 */
#include "jepsen-lite/history.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* ------------------------------------------------------------------ lexing one value */

enum vkind { V_ABSENT, V_NULL, V_INT, V_STR, V_ARR };

struct value {
	enum vkind kind;
	int64_t i;
	char str[JL_KEY_MAX + 1];
	size_t str_len;
	int64_t *arr; /* array elements (malloc'd), JL_NIL for null */
	size_t narr;
	bool arr_has_str; /* some element was a string (nemesis values only) */
};

struct lexer {
	const char *p, *end;
	char *err;
	size_t errlen;
	size_t line;
};

static int fail(struct lexer *lx, const char *fmt, ...)
{
	int n = snprintf(lx->err, lx->errlen, "line %zu: ", lx->line);
	if (n >= 0 && (size_t)n < lx->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(lx->err + n, lx->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return JL_EPARSE;
}

static void skip_ws(struct lexer *lx)
{
	while (lx->p < lx->end && (*lx->p == ' ' || *lx->p == '\t'))
		lx->p++;
}

static int expect(struct lexer *lx, char c)
{
	skip_ws(lx);
	if (lx->p >= lx->end || *lx->p != c)
		return fail(lx, "expected '%c'", c);
	lx->p++;
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A string of at most JL_KEY_MAX bytes; escapes limited to ASCII. */
static int lex_string(struct lexer *lx, char *out, size_t *out_len)
{
	size_t n = 0;
	if (expect(lx, '"'))
		return JL_EPARSE;
	for (;;) {
		if (lx->p >= lx->end)
			return fail(lx, "unterminated string");
		unsigned char c = (unsigned char)*lx->p++;
		if (c == '"')
			break;
		if (c < 0x20)
			return fail(lx, "control character in string");
		if (c == '\\') {
			if (lx->p >= lx->end)
				return fail(lx, "unterminated escape");
			char e = *lx->p++;
			switch (e) {
			case '"':
			case '\\':
			case '/':
				c = (unsigned char)e;
				break;
			case 'n':
				c = '\n';
				break;
			case 't':
				c = '\t';
				break;
			case 'r':
				c = '\r';
				break;
			case 'b':
				c = '\b';
				break;
			case 'f':
				c = '\f';
				break;
			case 'u': {
				int v = 0;
				for (int k = 0; k < 4; k++) {
					int d = lx->p < lx->end ? hexval(*lx->p++) : -1;
					if (d < 0)
						return fail(lx, "bad \\u escape");
					v = v * 16 + d;
				}
				if (v == 0 || v > 0x7f)
					return fail(lx, "\\u escape outside ASCII");
				c = (unsigned char)v;
				break;
			}
			default:
				return fail(lx, "bad escape \\%c", e);
			}
		}
		if (n >= JL_KEY_MAX)
			return fail(lx, "string longer than %d bytes", JL_KEY_MAX);
		out[n++] = (char)c;
	}
	out[n] = '\0';
	*out_len = n;
	return 0;
}

/* An integer: -?(0|[1-9][0-9]*), in int64, and not one of the two reserved model values. */
static int lex_int(struct lexer *lx, int64_t *v)
{
	bool neg = false;
	uint64_t acc = 0;
	if (lx->p < lx->end && *lx->p == '-') {
		neg = true;
		lx->p++;
	}
	if (lx->p >= lx->end || *lx->p < '0' || *lx->p > '9')
		return fail(lx, "expected a number");
	if (*lx->p == '0' && lx->p + 1 < lx->end && lx->p[1] >= '0' && lx->p[1] <= '9')
		return fail(lx, "leading zero in number");
	while (lx->p < lx->end && *lx->p >= '0' && *lx->p <= '9') {
		uint64_t d = (uint64_t)(*lx->p++ - '0');
		if (acc > (UINT64_MAX - d) / 10)
			return fail(lx, "number out of range");
		acc = acc * 10 + d;
	}
	if (lx->p < lx->end && (*lx->p == '.' || *lx->p == 'e' || *lx->p == 'E'))
		return fail(lx, "numbers must be integers");
	/* Values down to JL_ANY + 1: the two lowest int64 are the model's null and unknown. */
	if (neg ? acc > (uint64_t)INT64_MAX - 1 : acc > (uint64_t)INT64_MAX)
		return fail(lx, "number out of range");
	*v = neg ? -(int64_t)acc : (int64_t)acc;
	return 0;
}

static bool lex_word(struct lexer *lx, const char *w)
{
	size_t n = strlen(w);
	if ((size_t)(lx->end - lx->p) >= n && memcmp(lx->p, w, n) == 0) {
		lx->p += n;
		return true;
	}
	return false;
}

static int lex_value(struct lexer *lx, struct value *v)
{
	skip_ws(lx);
	if (lx->p >= lx->end)
		return fail(lx, "expected a value");
	char c = *lx->p;
	if (c == 'n') {
		if (!lex_word(lx, "null"))
			return fail(lx, "bad literal");
		v->kind = V_NULL;
		return 0;
	}
	if (c == '"') {
		v->kind = V_STR;
		return lex_string(lx, v->str, &v->str_len);
	}
	if (c == '-' || (c >= '0' && c <= '9')) {
		v->kind = V_INT;
		return lex_int(lx, &v->i);
	}
	if (c != '[')
		return fail(lx, "unexpected character '%c'", c);
	lx->p++;
	v->kind = V_ARR;
	size_t cap = 0;
	skip_ws(lx);
	if (lx->p < lx->end && *lx->p == ']') {
		lx->p++;
		return 0;
	}
	for (;;) {
		struct value e = {.kind = V_ABSENT};
		skip_ws(lx);
		if (lx->p < lx->end && *lx->p == '[')
			return fail(lx, "nested arrays are not part of the format");
		if (lex_value(lx, &e))
			return JL_EPARSE;
		if (v->narr == cap) {
			cap = cap ? cap * 2 : 8;
			int64_t *na = realloc(v->arr, cap * sizeof *na);
			if (!na)
				return fail(lx, "out of memory");
			v->arr = na;
		}
		if (e.kind == V_STR)
			v->arr_has_str = true;
		v->arr[v->narr++] = e.kind == V_INT ? e.i : JL_NIL;
		skip_ws(lx);
		if (lx->p < lx->end && *lx->p == ',') {
			lx->p++;
			continue;
		}
		return expect(lx, ']');
	}
}

/* ------------------------------------------------------------------ small hash maps */

/* process -> state: pending op index, or retired after an info completion. */
struct proc_slot {
	int64_t process;  /* INT64_MIN: empty */
	uint32_t pending; /* op index or JL_NONE */
	bool retired;
};

struct proc_map {
	struct proc_slot *s;
	size_t cap, n;
};

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	return x ^ (x >> 33);
}

static struct proc_slot *proc_get(struct proc_map *m, int64_t process)
{
	if (2 * (m->n + 1) > m->cap) {
		size_t ncap = m->cap ? m->cap * 2 : 64;
		struct proc_slot *ns = malloc(ncap * sizeof *ns);
		if (!ns)
			return NULL;
		for (size_t i = 0; i < ncap; i++)
			ns[i].process = INT64_MIN;
		for (size_t i = 0; i < m->cap; i++) {
			if (m->s[i].process == INT64_MIN)
				continue;
			size_t j = mix64((uint64_t)m->s[i].process) & (ncap - 1);
			while (ns[j].process != INT64_MIN)
				j = (j + 1) & (ncap - 1);
			ns[j] = m->s[i];
		}
		free(m->s);
		m->s = ns;
		m->cap = ncap;
	}
	size_t j = mix64((uint64_t)process) & (m->cap - 1);
	while (m->s[j].process != INT64_MIN && m->s[j].process != process)
		j = (j + 1) & (m->cap - 1);
	if (m->s[j].process == INT64_MIN) {
		m->s[j] = (struct proc_slot){.process = process, .pending = JL_NONE};
		m->n++;
	}
	return &m->s[j];
}

/* key string -> key index. Buckets hold index + 1 (0 = empty). */
struct key_map {
	uint32_t *b;
	size_t cap;
};

static int intern_key(struct jl_history *h, struct key_map *m, const char *k, size_t len,
		      uint32_t *out)
{
	if (2 * (h->nkeys + 1) > m->cap) {
		size_t ncap = m->cap ? m->cap * 2 : 64;
		uint32_t *nb = calloc(ncap, sizeof *nb);
		if (!nb)
			return JL_ENOMEM;
		for (size_t i = 0; i < h->nkeys; i++) {
			size_t j = XXH3_64bits(h->keys[i], strlen(h->keys[i])) & (ncap - 1);
			while (nb[j])
				j = (j + 1) & (ncap - 1);
			nb[j] = (uint32_t)i + 1;
		}
		free(m->b);
		m->b = nb;
		m->cap = ncap;
		char **nk = realloc(h->keys, ncap * sizeof *nk);
		if (!nk)
			return JL_ENOMEM;
		h->keys = nk;
	}
	size_t j = XXH3_64bits(k, len) & (m->cap - 1);
	while (m->b[j]) {
		const char *have = h->keys[m->b[j] - 1];
		if (strlen(have) == len && memcmp(have, k, len) == 0) {
			*out = m->b[j] - 1;
			return 0;
		}
		j = (j + 1) & (m->cap - 1);
	}
	char *copy = strndup(k, len);
	if (!copy)
		return JL_ENOMEM;
	h->keys[h->nkeys] = copy;
	m->b[j] = (uint32_t)h->nkeys + 1;
	*out = (uint32_t)h->nkeys++;
	return 0;
}

/* ------------------------------------------------------------------ one line */

enum field { F_TIME, F_PROCESS, F_TYPE, F_F, F_KEY, F_VALUE, F_COUNT };
static const char *const field_names[F_COUNT] = {"time", "process", "type", "f", "key", "value"};

struct parser {
	struct jl_history *h;
	struct lexer lx;
	struct proc_map procs;
	struct key_map keys;
	size_t ev_cap, op_cap;
	int64_t last_time;
};

static void value_free(struct value *v)
{
	free(v->arr);
	v->arr = NULL;
	v->narr = 0;
}

static bool is_pair(const struct value *v)
{
	return v->kind == V_ARR && v->narr == 2 && !v->arr_has_str;
}

static bool reg_value(const struct value *v, int64_t *out)
{
	if (v->kind == V_NULL) {
		*out = JL_NIL;
		return true;
	}
	if (v->kind == V_INT) {
		*out = v->i;
		return true;
	}
	return false;
}

/* The invocation's value, checked for its function: stored into op->arg. */
static int check_invoke_value(struct lexer *lx, struct jl_op *op, const struct value *v)
{
	switch (op->fn) {
	case JL_READ:
		if (v->kind != V_NULL)
			return fail(lx, "a read is invoked with value null");
		return 0;
	case JL_WRITE:
		if (!reg_value(v, &op->arg[0]))
			return fail(lx, "a write's value is an integer or null");
		return 0;
	case JL_CAS:
		if (!is_pair(v))
			return fail(lx, "a cas value is [expected, new]");
		op->arg[0] = v->arr[0];
		op->arg[1] = v->arr[1];
		return 0;
	case JL_ADD:
		if (v->kind != V_INT)
			return fail(lx, "an add's value is an integer");
		op->arg[0] = v->i;
		return 0;
	case JL_NEMESIS:
		break;
	}
	return fail(lx, "internal: bad function");
}

/* A completion's value: the same argument (write, cas, add) or the result (ok read). */
static int check_done_value(struct parser *ps, struct jl_op *op, enum jl_type type, struct value *v)
{
	struct lexer *lx = &ps->lx;
	int64_t x;
	switch (op->fn) {
	case JL_READ:
		if (type != JL_DONE_OK) {
			if (v->kind == V_NULL || v->kind == V_INT ||
			    (v->kind == V_ARR && !v->arr_has_str))
				return 0;
			return fail(lx, "bad value for a read that did not succeed");
		}
		if (reg_value(v, &op->result))
			return 0;
		if (v->kind == V_ARR && !v->arr_has_str) {
			for (size_t i = 0; i < v->narr; i++)
				if (v->arr[i] == JL_NIL)
					return fail(lx, "a set read lists integers only");
			op->set_read = 1;
			op->elems = v->arr; /* ownership moves to the op */
			op->nelems = v->narr;
			v->arr = NULL;
			v->narr = 0;
			return 0;
		}
		return fail(lx, "an ok read's value is an integer, null or a list");
	case JL_WRITE:
		if (!reg_value(v, &x) || x != op->arg[0])
			return fail(lx, "a write completes with the value it was invoked with");
		return 0;
	case JL_CAS:
		if (!is_pair(v) || v->arr[0] != op->arg[0] || v->arr[1] != op->arg[1])
			return fail(lx, "a cas completes with the value it was invoked with");
		return 0;
	case JL_ADD:
		if (v->kind != V_INT || v->i != op->arg[0])
			return fail(lx, "an add completes with the value it was invoked with");
		return 0;
	case JL_NEMESIS:
		break;
	}
	return fail(lx, "internal: bad function");
}

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return 0;
	size_t ncap = *cap ? *cap * 2 : 1024;
	while (ncap < need)
		ncap *= 2;
	void *np = realloc(*p, ncap * size);
	if (!np)
		return JL_ENOMEM;
	*p = np;
	*cap = ncap;
	return 0;
}

static int parse_line(struct parser *ps, size_t off, size_t len)
{
	struct jl_history *h = ps->h;
	struct lexer *lx = &ps->lx;
	struct value vals[F_COUNT];
	int rc = JL_EPARSE;
	for (int i = 0; i < F_COUNT; i++)
		vals[i] = (struct value){.kind = V_ABSENT};
	lx->p = h->text + off;
	lx->end = lx->p + len;

	if (expect(lx, '{'))
		goto out;
	for (;;) {
		char name[JL_KEY_MAX + 1];
		size_t nlen;
		if (lex_string(lx, name, &nlen))
			goto out;
		int f = 0;
		while (f < F_COUNT && strcmp(name, field_names[f]) != 0)
			f++;
		if (f == F_COUNT) {
			fail(lx, "unknown field \"%s\"", name);
			goto out;
		}
		if (vals[f].kind != V_ABSENT) {
			fail(lx, "field \"%s\" appears twice", name);
			goto out;
		}
		if (expect(lx, ':') || lex_value(lx, &vals[f]))
			goto out;
		skip_ws(lx);
		if (lx->p < lx->end && *lx->p == ',') {
			lx->p++;
			continue;
		}
		if (expect(lx, '}'))
			goto out;
		skip_ws(lx);
		if (lx->p != lx->end) {
			fail(lx, "trailing characters after the object");
			goto out;
		}
		break;
	}

	/* time */
	if (vals[F_TIME].kind != V_INT || vals[F_TIME].i < 0) {
		fail(lx, "\"time\" must be a non-negative integer");
		goto out;
	}
	if (vals[F_TIME].i < ps->last_time) {
		fail(lx, "time goes backwards (%lld after %lld)", (long long)vals[F_TIME].i,
		     (long long)ps->last_time);
		goto out;
	}
	ps->last_time = vals[F_TIME].i;

	/* type */
	static const char *const types[] = {"invoke", "ok", "fail", "info"};
	if (vals[F_TYPE].kind != V_STR) {
		fail(lx, "\"type\" must be a string");
		goto out;
	}
	int type = 0;
	while (type < 4 && strcmp(vals[F_TYPE].str, types[type]) != 0)
		type++;
	if (type == 4) {
		fail(lx, "unknown type \"%s\"", vals[F_TYPE].str);
		goto out;
	}
	if (vals[F_F].kind != V_STR) {
		fail(lx, "\"f\" must be a string");
		goto out;
	}

	if (grow((void **)&h->ev, &ps->ev_cap, h->nev + 1, sizeof *h->ev)) {
		rc = JL_ENOMEM;
		goto out;
	}
	struct jl_event *ev = &h->ev[h->nev];
	*ev = (struct jl_event){.time_ns = vals[F_TIME].i,
				.type = (enum jl_type)type,
				.key = JL_NONE,
				.op = JL_NONE,
				.text_off = off,
				.text_len = (uint32_t)len};

	/* nemesis lines: only their place in time matters to the checker */
	if (vals[F_PROCESS].kind == V_STR) {
		if (strcmp(vals[F_PROCESS].str, "nemesis") != 0) {
			fail(lx, "\"process\" is an integer or \"nemesis\"");
			goto out;
		}
		if (vals[F_KEY].kind != V_ABSENT && vals[F_KEY].kind != V_STR &&
		    vals[F_KEY].kind != V_NULL) {
			fail(lx, "a nemesis key is a string");
			goto out;
		}
		ev->process = -1;
		ev->fn = JL_NEMESIS;
		h->nev++;
		h->nnemesis++;
		rc = 0;
		goto out;
	}
	if (vals[F_PROCESS].kind != V_INT || vals[F_PROCESS].i < 0) {
		fail(lx, "\"process\" is a non-negative integer or \"nemesis\"");
		goto out;
	}
	ev->process = vals[F_PROCESS].i;

	static const char *const fns[] = {"read", "write", "cas", "add"};
	int fn = 0;
	while (fn < 4 && strcmp(vals[F_F].str, fns[fn]) != 0)
		fn++;
	if (fn == 4) {
		fail(lx, "unknown client function \"%s\"", vals[F_F].str);
		goto out;
	}
	ev->fn = (enum jl_fn)fn;
	if (vals[F_KEY].kind != V_STR) {
		fail(lx, "a client operation needs a string \"key\"");
		goto out;
	}
	if (vals[F_VALUE].kind == V_ABSENT) {
		fail(lx, "a client operation needs a \"value\" (null when there is none)");
		goto out;
	}
	rc = intern_key(h, &ps->keys, vals[F_KEY].str, vals[F_KEY].str_len, &ev->key);
	if (rc) {
		fail(lx, "out of memory");
		goto out;
	}
	rc = JL_EPARSE;

	struct proc_slot *slot = proc_get(&ps->procs, ev->process);
	if (!slot) {
		rc = JL_ENOMEM;
		goto out;
	}
	if (ev->type == JL_INVOKE) {
		if (slot->retired) {
			fail(lx, "process %lld invokes again after an info completion",
			     (long long)ev->process);
			goto out;
		}
		if (slot->pending != JL_NONE) {
			/* events are lines one to one (empty lines are refused) */
			fail(lx, "process %lld invokes while its operation from line %u is pending",
			     (long long)ev->process, h->ops[slot->pending].inv_ev + 1);
			goto out;
		}
		if (grow((void **)&h->ops, &ps->op_cap, h->nops + 1, sizeof *h->ops)) {
			rc = JL_ENOMEM;
			goto out;
		}
		struct jl_op *op = &h->ops[h->nops];
		*op = (struct jl_op){.key = ev->key,
				     .fn = ev->fn,
				     .status = JL_DONE_INFO,
				     .process = ev->process,
				     .result = JL_NIL,
				     .inv_ev = (uint32_t)h->nev,
				     .done_ev = JL_NONE};
		if (check_invoke_value(lx, op, &vals[F_VALUE]))
			goto out;
		ev->op = (uint32_t)h->nops;
		slot->pending = (uint32_t)h->nops++;
	} else {
		if (slot->pending == JL_NONE) {
			fail(lx, "process %lld completes an operation it never invoked",
			     (long long)ev->process);
			goto out;
		}
		struct jl_op *op = &h->ops[slot->pending];
		if (op->fn != ev->fn || op->key != ev->key) {
			fail(lx, "completion does not match the invocation (f or key differs)");
			goto out;
		}
		if (check_done_value(ps, op, ev->type, &vals[F_VALUE]))
			goto out;
		op->status = ev->type;
		op->done_ev = (uint32_t)h->nev;
		ev->op = slot->pending;
		slot->pending = JL_NONE;
		if (ev->type == JL_DONE_INFO)
			slot->retired = true;
	}
	h->nev++;
	rc = 0;
out:
	for (int i = 0; i < F_COUNT; i++)
		value_free(&vals[i]);
	return rc;
}

/* ------------------------------------------------------------------ whole history */

void jl_history_free(struct jl_history *h)
{
	for (size_t i = 0; i < h->nops; i++)
		free(h->ops[i].elems);
	for (size_t i = 0; i < h->nkeys; i++)
		free(h->keys[i]);
	free(h->keys);
	free(h->key_start);
	free(h->key_events);
	free(h->ops);
	free(h->ev);
	free(h->text);
	memset(h, 0, sizeof *h);
}

/* Counting sort of the client events by key, so a checker visits only its key's events. */
static int build_key_index(struct jl_history *h)
{
	h->key_start = calloc(h->nkeys + 2, sizeof *h->key_start);
	h->key_events = malloc((h->nev + 1) * sizeof *h->key_events);
	if (!h->key_start || !h->key_events)
		return JL_ENOMEM;
	for (size_t i = 0; i < h->nev; i++)
		if (h->ev[i].key != JL_NONE)
			h->key_start[h->ev[i].key + 2]++;
	for (size_t k = 2; k < h->nkeys + 2; k++)
		h->key_start[k] += h->key_start[k - 1];
	for (size_t i = 0; i < h->nev; i++)
		if (h->ev[i].key != JL_NONE)
			h->key_events[h->key_start[h->ev[i].key + 1]++] = (uint32_t)i;
	return 0;
}

/* Takes ownership of text (len bytes, NUL-terminated). */
static int parse_owned(struct jl_history *h, char *text, size_t len, char *err, size_t errlen)
{
	memset(h, 0, sizeof *h);
	h->text = text;
	h->text_len = len;
	struct parser ps = {.h = h, .lx = {.err = err, .errlen = errlen}};
	int rc = 0;
	size_t off = 0;
	if (errlen)
		err[0] = '\0';
	while (off < len) {
		ps.lx.line++;
		const char *nl = memchr(text + off, '\n', len - off);
		size_t n = nl ? (size_t)(nl - (text + off)) : len - off;
		if (n == 0) {
			rc = fail(&ps.lx, "empty line");
			break;
		}
		if (n > JL_LINE_MAX) {
			rc = fail(&ps.lx, "line longer than %u bytes", JL_LINE_MAX);
			break;
		}
		if (memchr(text + off, '\0', n)) {
			rc = fail(&ps.lx, "NUL byte in line");
			break;
		}
		rc = parse_line(&ps, off, n);
		if (rc) {
			if (rc == JL_ENOMEM)
				snprintf(err, errlen, "line %zu: out of memory", ps.lx.line);
			break;
		}
		off += n + 1;
	}
	free(ps.procs.s);
	free(ps.keys.b);
	if (!rc && build_key_index(h)) {
		snprintf(err, errlen, "out of memory");
		rc = JL_ENOMEM;
	}
	if (rc)
		jl_history_free(h);
	return rc;
}

int jl_history_parse(struct jl_history *h, const char *text, size_t len, char *err, size_t errlen)
{
	char *copy = malloc(len + 1);
	if (!copy) {
		memset(h, 0, sizeof *h);
		snprintf(err, errlen, "out of memory");
		return JL_ENOMEM;
	}
	memcpy(copy, text, len);
	copy[len] = '\0';
	return parse_owned(h, copy, len, err, errlen);
}

int jl_history_load(struct jl_history *h, const char *path, char *err, size_t errlen)
{
	memset(h, 0, sizeof *h);
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return JL_EIO;
	}
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap + 1);
	while (buf) {
		size_t n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (len < cap)
			break;
		cap *= 2;
		char *nb = realloc(buf, cap + 1);
		if (!nb)
			free(buf);
		buf = nb;
	}
	int io_err = ferror(f);
	fclose(f);
	if (!buf) {
		snprintf(err, errlen, "%s: out of memory", path);
		return JL_ENOMEM;
	}
	if (io_err) {
		free(buf);
		snprintf(err, errlen, "%s: read error", path);
		return JL_EIO;
	}
	buf[len] = '\0';
	return parse_owned(h, buf, len, err, errlen);
}

void jl_history_print_event(const struct jl_history *h, size_t i, FILE *out)
{
	fwrite(h->text + h->ev[i].text_off, 1, h->ev[i].text_len, out);
}

const char *jl_fn_name(enum jl_fn fn)
{
	static const char *const names[] = {"read", "write", "cas", "add", "nemesis"};
	return names[fn];
}
