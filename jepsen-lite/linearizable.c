/* linearizable.c — Wing-Gong-Lowe linearizability search for one key's register history.
 *
 * Entries are a doubly linked list of calls and returns in real-time order; a call is lifted
 * when the register model accepts it, a return not yet linearized makes the search backtrack.
 * Shrinking a violation to a small window is at the end of the file.
 */
#include "jepsen-lite/linearizable.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Info operations return "at infinity" (after every other entry). A configuration (linearized
 * set, value) is visited once; the set is kept as a 128-bit Zobrist hash (xor of per-operation
 * random keys), 24 bytes per cached configuration instead of a bitset; two different sets
 * collide with probability about n^2 / 2^128, which we accept. */

int64_t jl_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* ------------------------------------------------------------------ the register model */

struct lop {
	enum jl_fn fn;
	int64_t a, b; /* write: a; cas: a -> b; read: a = value read */
	bool info;
	uint32_t call, ret; /* entry indices */
	uint64_t z1, z2;    /* Zobrist keys */
};

/* The register in state s takes op: returns whether it may, and the state after. JL_ANY is a
 * register whose initial value is unknown: the first operation that observes it decides it. */
static bool step(int64_t s, const struct lop *op, int64_t *ns)
{
	switch (op->fn) {
	case JL_READ:
		*ns = s == JL_ANY ? op->a : s;
		return s == JL_ANY || s == op->a;
	case JL_WRITE:
		*ns = op->a;
		return true;
	case JL_CAS:
		*ns = op->b;
		return s == JL_ANY || s == op->a;
	default:
		return false;
	}
}

/* ------------------------------------------------------------------ configuration cache */

/* An empty slot is h1 == h2 == 0: that is the hash of the empty set, which is never stored
 * (and a non-empty set hashes to it with probability 2^-128). */
struct cfg {
	uint64_t h1, h2;
	int64_t state;
};

struct cache {
	struct cfg *t;
	size_t cap, n;
};

/* 1 if added, 0 if it was there, -1 if full or out of memory. */
static int cache_add(struct cache *c, uint64_t h1, uint64_t h2, int64_t state)
{
	if (2 * (c->n + 1) > c->cap) {
		if (c->n >= JL_LIN_CACHE_MAX)
			return -1;
		size_t ncap = c->cap ? c->cap * 2 : 4096;
		struct cfg *nt = calloc(ncap, sizeof *nt);
		if (!nt)
			return -1;
		for (size_t i = 0; i < c->cap; i++) {
			if (!c->t[i].h1 && !c->t[i].h2)
				continue;
			size_t j = (c->t[i].h1 ^ (uint64_t)c->t[i].state * 0x9e3779b97f4a7c15ULL) &
				   (ncap - 1);
			while (nt[j].h1 || nt[j].h2)
				j = (j + 1) & (ncap - 1);
			nt[j] = c->t[i];
		}
		free(c->t);
		c->t = nt;
		c->cap = ncap;
	}
	size_t j = (h1 ^ (uint64_t)state * 0x9e3779b97f4a7c15ULL) & (c->cap - 1);
	while (c->t[j].h1 || c->t[j].h2) {
		if (c->t[j].h1 == h1 && c->t[j].h2 == h2 && c->t[j].state == state)
			return 0;
		j = (j + 1) & (c->cap - 1);
	}
	c->t[j] = (struct cfg){.h1 = h1, .h2 = h2, .state = state};
	c->n++;
	return 1;
}

/* ------------------------------------------------------------------ the search */

struct frame {
	uint32_t op;
	int64_t state;
};

/* ops[n]: the operations; seq[m]: entries (op << 1 | is_return), real-time order, every return
 * of an info op after all returns of ok ops. */
static enum jl_verdict wgl(struct lop *ops, size_t n, const uint32_t *seq, size_t m, int64_t init,
			   int64_t deadline_ns, uint64_t *explored)
{
	size_t nok = 0;
	for (size_t i = 0; i < n; i++)
		nok += !ops[i].info;
	if (nok == 0)
		return JL_VALID;

	uint32_t *next = malloc((m + 1) * sizeof *next);
	uint32_t *prev = malloc((m + 1) * sizeof *prev);
	struct frame *stack = malloc((n + 1) * sizeof *stack);
	struct cache cache = {0};
	enum jl_verdict v = JL_UNKNOWN;
	if (!next || !prev || !stack)
		goto out;
	const uint32_t head = (uint32_t)m;
	for (uint32_t j = 0; j <= m; j++) {
		next[j] = j == m ? 0 : j + 1;
		prev[j] = j == 0 ? head : j - 1;
	}
	if (m == 0)
		next[head] = head;
	else
		next[m - 1] = head;
	prev[head] = m ? (uint32_t)m - 1 : head;

	size_t sp = 0, done_ok = 0;
	uint64_t h1 = 0, h2 = 0, iter = 0;
	int64_t state = init;
	uint32_t e = next[head];
	while (e != head) {
		if ((++iter & 0x3fff) == 0 && deadline_ns && jl_now_ns() > deadline_ns)
			goto out;
		uint32_t o = seq[e] >> 1;
		struct lop *op = &ops[o];
		if (!(seq[e] & 1)) {
			int64_t ns;
			if (step(state, op, &ns)) {
				int added = cache_add(&cache, h1 ^ op->z1, h2 ^ op->z2, ns);
				if (added < 0)
					goto out;
				if (added) {
					stack[sp++] = (struct frame){o, state};
					state = ns;
					h1 ^= op->z1;
					h2 ^= op->z2;
					/* lift: unlink call, then return */
					next[prev[op->call]] = next[op->call];
					prev[next[op->call]] = prev[op->call];
					next[prev[op->ret]] = next[op->ret];
					prev[next[op->ret]] = prev[op->ret];
					if (!op->info && ++done_ok == nok) {
						v = JL_VALID;
						goto out;
					}
					e = next[head];
					continue;
				}
			}
			e = next[e];
			continue;
		}
		/* the return of an operation not linearized yet: undo the last choice */
		if (sp == 0) {
			v = JL_INVALID;
			goto out;
		}
		struct frame f = stack[--sp];
		struct lop *u = &ops[f.op];
		state = f.state;
		h1 ^= u->z1;
		h2 ^= u->z2;
		next[prev[u->ret]] = u->ret;
		prev[next[u->ret]] = u->ret;
		next[prev[u->call]] = u->call;
		prev[next[u->call]] = u->call;
		if (!u->info)
			done_ok--;
		e = next[u->call];
	}
	v = JL_INVALID; /* unreachable in practice: info returns end the list */
out:
	if (explored)
		*explored += cache.n;
	free(cache.t);
	free(stack);
	free(prev);
	free(next);
	return v;
}

/* ------------------------------------------------------------------ one key, one window */

struct keyctx {
	const struct jl_history *h;
	uint32_t *kops; /* history op index of each local op (ascending) */
	size_t nk, nk_seen;
	uint32_t *kev; /* the key's events: local op << 1 | is_completion, history order */
	size_t nkev;
	uint32_t *inv_pos, *done_pos; /* per local op: position in kev (done: JL_NONE if none) */
	bool *removed;                /* per local op: left out by the shrink */
	bool *weakened;               /* per local op: taken as info by the shrink */
	/* scratch for one window */
	struct lop *ops;
	uint32_t *local; /* lop index -> local op */
	uint32_t *lop_of;
	uint32_t *seq;
	int64_t *observed;
	size_t nops, nseq;
};

static void keyctx_free(struct keyctx *k)
{
	free(k->kops);
	free(k->kev);
	free(k->inv_pos);
	free(k->done_pos);
	free(k->removed);
	free(k->weakened);
	free(k->ops);
	free(k->local);
	free(k->lop_of);
	free(k->seq);
	free(k->observed);
}

static bool is_register(enum jl_fn fn)
{
	return fn == JL_READ || fn == JL_WRITE || fn == JL_CAS;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

static int keyctx_init(struct keyctx *k, const struct jl_history *h, uint32_t key)
{
	memset(k, 0, sizeof *k);
	k->h = h;
	const uint32_t *evs = h->key_events + h->key_start[key];
	size_t nev = h->key_start[key + 1] - h->key_start[key];
	for (size_t i = 0; i < nev; i++) {
		const struct jl_op *op = &h->ops[h->ev[evs[i]].op];
		k->nk += h->ev[evs[i]].type == JL_INVOKE && is_register(op->fn) && !op->set_read;
	}
	size_t nk = k->nk;
	k->kops = malloc((nk + 1) * sizeof *k->kops);
	k->kev = malloc((2 * nk + 1) * sizeof *k->kev);
	k->inv_pos = malloc((nk + 1) * sizeof *k->inv_pos);
	k->done_pos = malloc((nk + 1) * sizeof *k->done_pos);
	k->removed = calloc(nk + 1, sizeof *k->removed);
	k->weakened = calloc(nk + 1, sizeof *k->weakened);
	k->ops = malloc((nk + 1) * sizeof *k->ops);
	k->local = malloc((nk + 1) * sizeof *k->local);
	k->lop_of = malloc((nk + 1) * sizeof *k->lop_of);
	k->seq = malloc((2 * nk + 1) * sizeof *k->seq);
	k->observed = malloc((2 * nk + 1) * sizeof *k->observed);
	if (!k->kops || !k->kev || !k->inv_pos || !k->done_pos || !k->removed || !k->weakened ||
	    !k->ops || !k->local || !k->lop_of || !k->seq || !k->observed) {
		keyctx_free(k);
		return JL_ENOMEM;
	}
	/* Operations are numbered in invocation order, so kops comes out sorted and a
	 * completion finds its local index by binary search. */
	for (size_t i = 0; i < nev; i++) {
		const struct jl_event *ev = &h->ev[evs[i]];
		const struct jl_op *op = &h->ops[ev->op];
		if (!is_register(op->fn) || op->set_read)
			continue;
		uint32_t l;
		if (ev->type == JL_INVOKE) {
			l = (uint32_t)k->nk_seen++;
			k->kops[l] = ev->op;
			k->inv_pos[l] = (uint32_t)k->nkev;
			k->done_pos[l] = JL_NONE;
		} else {
			const uint32_t *f =
				bsearch(&ev->op, k->kops, k->nk_seen, sizeof *k->kops, cmp_u32);
			if (!f)
				continue; /* cannot happen: completions follow invocations */
			l = (uint32_t)(f - k->kops);
			k->done_pos[l] = (uint32_t)k->nkev;
		}
		k->kev[k->nkev++] = l << 1 | (ev->type != JL_INVOKE);
	}
	return 0;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* Builds the search problem for kev positions [s, e): operations invoked in the window, plus
 * those invoked before it and still running (indeterminate); fail operations and indeterminate
 * reads are left out, and so are indeterminate writes whose value nobody observed (taking
 * effect could only hurt them: nothing between them and the next write could read it). */
static void build(struct keyctx *k, size_t s, size_t e)
{
	const struct jl_history *h = k->h;
	k->nops = 0;
	/* which local ops are in, and how */
	for (size_t l = 0; l < k->nk; l++) {
		k->lop_of[l] = JL_NONE;
		const struct jl_op *op = &h->ops[k->kops[l]];
		if (k->removed[l] || op->status == JL_DONE_FAIL || k->inv_pos[l] >= e)
			continue;
		bool ok = op->status == JL_DONE_OK && k->done_pos[l] < e && !k->weakened[l];
		if (k->inv_pos[l] < s) {
			if (k->done_pos[l] != JL_NONE && k->done_pos[l] < s)
				continue;
			ok = false; /* spans the window's start */
		}
		if (!ok && op->fn == JL_READ)
			continue;
		struct lop *o = &k->ops[k->nops];
		*o = (struct lop){.fn = op->fn, .info = !ok};
		o->a = op->fn == JL_READ ? op->result : op->arg[0];
		o->b = op->arg[1];
		k->local[k->nops] = (uint32_t)l;
		k->lop_of[l] = (uint32_t)k->nops++;
	}
	/* Drop unobserved info writes until none is left: dropping an info CAS removes its
	 * expected value from the observed ones, which may leave another write unobserved.
	 * Each round is sound on its own, so the bound on rounds only costs precision. */
	for (int round = 0; round < 16; round++) {
		size_t nobs = 0;
		for (size_t i = 0; i < k->nops; i++)
			if (k->ops[i].fn == JL_READ || k->ops[i].fn == JL_CAS)
				k->observed[nobs++] = k->ops[i].a;
		qsort(k->observed, nobs, sizeof *k->observed, cmp_i64);
		size_t w = 0;
		for (size_t i = 0; i < k->nops; i++) {
			struct lop *o = &k->ops[i];
			int64_t v = o->fn == JL_WRITE ? o->a : o->b;
			uint32_t l = k->local[i];
			if (o->info && o->fn != JL_READ &&
			    !bsearch(&v, k->observed, nobs, sizeof v, cmp_i64)) {
				k->lop_of[l] = JL_NONE;
				continue;
			}
			k->ops[w] = *o;
			k->local[w] = l;
			k->lop_of[l] = (uint32_t)w++;
		}
		bool changed = w != k->nops;
		k->nops = w;
		if (!changed)
			break;
	}
	k->nseq = 0;
	for (size_t p = 0; p < e; p++) {
		uint32_t l = k->kev[p] >> 1, lo = k->lop_of[l];
		if (lo == JL_NONE)
			continue;
		struct lop *o = &k->ops[lo];
		if (!(k->kev[p] & 1)) {
			o->call = (uint32_t)k->nseq;
			k->seq[k->nseq++] = lo << 1;
		} else if (!o->info) {
			o->ret = (uint32_t)k->nseq;
			k->seq[k->nseq++] = lo << 1 | 1;
		}
	}
	for (size_t i = 0; i < k->nops; i++) {
		if (k->ops[i].info) {
			k->ops[i].ret = (uint32_t)k->nseq;
			k->seq[k->nseq++] = (uint32_t)i << 1 | 1;
		}
		uint64_t x = (uint64_t)k->kops[k->local[i]] * 2 + 1;
		k->ops[i].z1 = splitmix64(&x);
		k->ops[i].z2 = splitmix64(&x);
	}
}

static enum jl_verdict check_window(struct keyctx *k, size_t s, size_t e, int64_t deadline_ns,
				    uint64_t *explored)
{
	build(k, s, e);
	return wgl(k->ops, k->nops, k->seq, k->nseq, s == 0 ? JL_NIL : JL_ANY, deadline_ns,
		   explored);
}

enum jl_verdict jl_lin_check_key(const struct jl_history *h, uint32_t key, int64_t deadline_ns,
				 uint64_t *explored)
{
	struct keyctx k;
	if (keyctx_init(&k, h, key))
		return JL_UNKNOWN;
	enum jl_verdict v = check_window(&k, 0, k.nkev, deadline_ns, explored);
	keyctx_free(&k);
	return v;
}

/* ------------------------------------------------------------------ shrinking a violation */

static bool invalid(struct keyctx *k, size_t s, size_t e, int64_t deadline_ns)
{
	return check_window(k, s, e, deadline_ns, NULL) == JL_INVALID;
}

int jl_lin_explain_key(const struct jl_history *h, uint32_t key, int64_t deadline_ns,
		       struct jl_lin_witness *w)
{
	memset(w, 0, sizeof *w);
	struct keyctx k;
	if (keyctx_init(&k, h, key))
		return JL_ENOMEM;
	size_t s = 0, e = k.nkev;
	bool all = invalid(&k, 0, e, deadline_ns);
	if (all) {
		/* Shortest failing prefix: a prefix that fails makes every longer one fail. */
		size_t lo = 1, hi = e;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (invalid(&k, 0, mid, deadline_ns))
				hi = mid;
			else
				lo = mid + 1;
		}
		e = hi;
		/* Latest start that still fails (from an unknown register value). */
		lo = 0;
		hi = e - 1;
		while (lo < hi) {
			size_t mid = lo + (hi - lo + 1) / 2;
			if (invalid(&k, mid, e, deadline_ns))
				lo = mid;
			else
				hi = mid - 1;
		}
		s = lo;
		/* Reads only constrain: drop each one that is not needed for the failure. */
		size_t tries = 0;
		for (size_t p = s; p < e && tries < 1000; p++) {
			uint32_t l = k.kev[p] >> 1;
			if ((k.kev[p] & 1) || h->ops[k.kops[l]].fn != JL_READ)
				continue;
			tries++;
			k.removed[l] = true;
			if (!invalid(&k, s, e, deadline_ns))
				k.removed[l] = false;
		}
		/* A write or CAS taken as info is weaker than one acknowledged, and one taken as
		 * info that nobody observes is left out by build(): so each write not needed for
		 * the failure disappears, and what remains still proves it. */
		for (size_t p = s; p < e && tries < 2000; p++) {
			uint32_t l = k.kev[p] >> 1;
			const struct jl_op *op = &h->ops[k.kops[l]];
			if ((k.kev[p] & 1) || op->fn == JL_READ || op->status != JL_DONE_OK)
				continue;
			tries++;
			k.weakened[l] = true;
			if (!invalid(&k, s, e, deadline_ns))
				k.weakened[l] = false;
		}
		all = !deadline_ns || jl_now_ns() <= deadline_ns;
		build(&k, s, e);
	} else {
		build(&k, 0, k.nkev);
		e = k.nkev;
	}
	w->events = malloc((2 * k.nops + 1) * sizeof *w->events);
	if (!w->events) {
		keyctx_free(&k);
		return JL_ENOMEM;
	}
	for (size_t p = 0; p < e; p++) {
		uint32_t l = k.kev[p] >> 1;
		if (k.lop_of[l] != JL_NONE) {
			const struct jl_op *op = &h->ops[k.kops[l]];
			w->events[w->nevents++] = (k.kev[p] & 1) ? op->done_ev : op->inv_ev;
		}
	}
	w->nops = k.nops;
	w->unknown_start = s > 0;
	w->searched_all = all;
	keyctx_free(&k);
	return 0;
}

void jl_lin_witness_free(struct jl_lin_witness *w)
{
	free(w->events);
	memset(w, 0, sizeof *w);
}
