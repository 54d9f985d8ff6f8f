/* setcheck.c — checks the set workload (see setcheck.h) with sorted arrays and binary search.
 *
 * O((A + R) log A + R * A) for A adds and R reads, since every read is checked against every
 * add acknowledged before it; fine for the thousands of each a run records.
 */
#include "jepsen-lite/setcheck.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>

#define SHOW_MAX 5 /* problem lines printed per kind and key */

struct elem {
	int64_t v;
	uint32_t ok_done_ev; /* earliest acknowledgement, JL_NONE if never acknowledged */
	uint32_t inv_ev;     /* first invocation */
	bool maybe;          /* some attempt was not a definite failure */
	bool info;           /* some attempt was indeterminate */
};

static int cmp_elem(const void *a, const void *b)
{
	int64_t x = ((const struct elem *)a)->v, y = ((const struct elem *)b)->v;
	return (x > y) - (x < y);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

int jl_key_is_set(const struct jl_history *h, uint32_t key)
{
	for (uint32_t i = h->key_start[key]; i < h->key_start[key + 1]; i++) {
		const struct jl_op *op = &h->ops[h->ev[h->key_events[i]].op];
		if (op->fn == JL_ADD || op->set_read)
			return 1;
	}
	return 0;
}

__attribute__((format(printf, 4, 5))) static void say(FILE *out, size_t *shown, const char *key,
						      const char *fmt, ...)
{
	if (!out || (*shown)++ >= SHOW_MAX)
		return;
	va_list ap;
	va_start(ap, fmt);
	fprintf(out, "set %s: ", key);
	vfprintf(out, fmt, ap);
	fputc('\n', out);
	va_end(ap);
}

enum jl_verdict jl_set_check_key(const struct jl_history *h, uint32_t key, struct jl_set_result *r,
				 FILE *out)
{
	*r = (struct jl_set_result){0};
	size_t na = 0;
	for (size_t i = 0; i < h->nops; i++)
		na += h->ops[i].key == key && h->ops[i].fn == JL_ADD;
	struct elem *el = malloc((na + 1) * sizeof *el);
	if (!el)
		return JL_UNKNOWN;
	na = 0;
	for (size_t i = 0; i < h->nops; i++) {
		const struct jl_op *op = &h->ops[i];
		if (op->key != key || op->fn != JL_ADD)
			continue;
		r->attempted++;
		r->acknowledged += op->status == JL_DONE_OK;
		r->failed += op->status == JL_DONE_FAIL;
		r->indeterminate += op->status == JL_DONE_INFO;
		el[na++] = (struct elem){
			.v = op->arg[0],
			.ok_done_ev = op->status == JL_DONE_OK ? op->done_ev : JL_NONE,
			.inv_ev = op->inv_ev,
			.maybe = op->status != JL_DONE_FAIL,
			.info = op->status == JL_DONE_INFO,
		};
	}
	qsort(el, na, sizeof *el, cmp_elem);
	size_t w = 0; /* merge repeated attempts of one element */
	for (size_t i = 0; i < na; i++) {
		if (w && el[w - 1].v == el[i].v) {
			struct elem *m = &el[w - 1];
			if (el[i].ok_done_ev < m->ok_done_ev)
				m->ok_done_ev = el[i].ok_done_ev;
			if (el[i].inv_ev < m->inv_ev)
				m->inv_ev = el[i].inv_ev;
			m->maybe |= el[i].maybe;
			m->info |= el[i].info;
		} else {
			el[w++] = el[i];
		}
	}
	na = w;

	const char *k = h->keys[key];
	size_t shown_lost = 0, shown_unexp = 0, shown_res = 0, shown_dup = 0;
	const struct jl_op *last = NULL;
	int64_t *sorted = NULL;
	for (size_t i = 0; i < h->nops; i++) {
		const struct jl_op *op = &h->ops[i];
		if (op->key != key || op->fn != JL_READ || op->status != JL_DONE_OK)
			continue;
		if (!op->set_read) {
			if (out)
				fprintf(out,
					"set %s: line %u: a set read returned a single value\n", k,
					op->done_ev + 1);
			r->unexpected++;
			continue;
		}
		r->reads++;
		if (!last || op->done_ev > last->done_ev)
			last = op;
		int64_t *ns = realloc(sorted, (op->nelems + 1) * sizeof *ns);
		if (!ns) {
			free(sorted);
			free(el);
			return JL_UNKNOWN;
		}
		sorted = ns;
		for (size_t j = 0; j < op->nelems; j++)
			sorted[j] = op->elems[j];
		qsort(sorted, op->nelems, sizeof *sorted, cmp_i64);
		for (size_t j = 0; j < op->nelems; j++) {
			int64_t v = sorted[j];
			if (j && sorted[j - 1] == v) {
				r->duplicated++;
				say(out, &shown_dup, k, "read at line %u lists %lld twice",
				    op->done_ev + 1, (long long)v);
				continue;
			}
			struct elem key_el = {.v = v};
			const struct elem *e = bsearch(&key_el, el, na, sizeof *el, cmp_elem);
			if (!e) {
				r->unexpected++;
				say(out, &shown_unexp, k,
				    "read at line %u holds %lld, which was never added",
				    op->done_ev + 1, (long long)v);
			} else if (!e->maybe) {
				r->resurrected++;
				say(out, &shown_res, k,
				    "read at line %u holds %lld, whose add failed (line %u)",
				    op->done_ev + 1, (long long)v, e->inv_ev + 1);
			}
		}
		for (size_t a = 0; a < na; a++) {
			if (el[a].ok_done_ev == JL_NONE || el[a].ok_done_ev > op->inv_ev)
				continue;
			if (!bsearch(&el[a].v, sorted, op->nelems, sizeof *sorted, cmp_i64)) {
				r->lost++;
				say(out, &shown_lost, k,
				    "lost %lld: acknowledged at line %u, missing from the read at "
				    "line %u",
				    (long long)el[a].v, el[a].ok_done_ev + 1, op->done_ev + 1);
			}
		}
	}
	if (last) {
		r->final_size = last->nelems;
		for (size_t j = 0; j < last->nelems; j++) {
			struct elem key_el = {.v = last->elems[j]};
			const struct elem *e = bsearch(&key_el, el, na, sizeof *el, cmp_elem);
			r->indeterminate_present += e && e->info && e->ok_done_ev == JL_NONE;
		}
	}
	free(sorted);
	free(el);
	if (r->lost || r->unexpected || r->resurrected || r->duplicated)
		return JL_INVALID;
	return r->reads ? JL_VALID : JL_UNKNOWN;
}
