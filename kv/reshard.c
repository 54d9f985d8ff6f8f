/* reshard.c — the rules of a ring change (reshard.h): planning the moving ranges from two id
 * sets, the legal steps of a range, and who serves a key at each state.
 *
 * Who serves, by the state of the key's range (a key outside every range: its owner in both
 * rings, which is the same group):
 *
 *   state         reads    writes
 *   PLANNED       source   source
 *   FENCED        source   none (retry)
 *   INGESTED      source   none (retry)
 *   DONE          target   target
 *   ROLLED_BACK   source   source
 *
 * Reads stay with the source until it releases the range, because until then only the source
 * is sure to hold the latest value. The frozen window (FENCED, INGESTED) lets the target take
 * a copy that stays true. The window costs writes to the moving keys a retry. Redis Cluster
 * keeps writes going during a slot migration by moving key by key and redirecting per key
 * (ASK). A range copied through the target's Raft log as a batch cannot follow single keys,
 * so ringraft freezes the range for the copy instead.
 */
#include <stdlib.h>
#include <string.h>

#include "kv/reshard.h"

int kv_reshard_plan(const uint32_t *from_ids, size_t n_from, uint64_t from_epoch,
		    const uint32_t *to_ids, size_t n_to, uint64_t to_epoch, uint32_t vnodes,
		    struct kv_reshard **out)
{
	*out = NULL;
	if (to_epoch <= from_epoch)
		return KV_RESHARD_EINVAL;
	struct kv_reshard *r = calloc(1, sizeof *r);
	if (r == NULL)
		return KV_RESHARD_ENOMEM;
	r->from = kv_ring_from_ids(from_ids, n_from, vnodes, from_epoch);
	r->to = kv_ring_from_ids(to_ids, n_to, vnodes, to_epoch);
	if (r->from == NULL || r->to == NULL) {
		/* kv_ring_from_ids does not say why; a bad set is by far the likelier. */
		kv_reshard_free(r);
		return KV_RESHARD_EINVAL;
	}
	struct kv_ring_range *diff;
	size_t n;
	if (kv_ring_diff(r->from, r->to, &diff, &n) != 0) {
		kv_reshard_free(r);
		return KV_RESHARD_ENOMEM;
	}
	if (n == 0 || n > KV_RESHARD_RANGES_MAX) {
		free(diff);
		kv_reshard_free(r);
		return KV_RESHARD_EINVAL;
	}
	r->ranges = malloc(n * sizeof *r->ranges);
	if (r->ranges == NULL) {
		free(diff);
		kv_reshard_free(r);
		return KV_RESHARD_ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		r->ranges[i] = (struct kv_reshard_range){.lo = diff[i].lo,
							 .hi = diff[i].hi,
							 .from = diff[i].from,
							 .to = diff[i].to,
							 .state = KV_RESHARD_PLANNED};
	r->n_ranges = n;
	free(diff);
	*out = r;
	return 0;
}

void kv_reshard_free(struct kv_reshard *r)
{
	if (r == NULL)
		return;
	kv_ring_free(r->from);
	kv_ring_free(r->to);
	free(r->ranges);
	free(r);
}

static bool is_state(enum kv_reshard_state s)
{
	return s >= KV_RESHARD_PLANNED && s <= KV_RESHARD_ROLLED_BACK;
}

static bool any_in(const struct kv_reshard *r, enum kv_reshard_state s)
{
	for (size_t i = 0; i < r->n_ranges; i++)
		if (r->ranges[i].state == s)
			return true;
	return false;
}

bool kv_reshard_legal(const struct kv_reshard *r, size_t i, enum kv_reshard_state next)
{
	if (i >= r->n_ranges || !is_state(next))
		return false;
	enum kv_reshard_state now = r->ranges[i].state;
	if (next == now)
		return true; /* a repeated step changes nothing */
	switch (next) {
	case KV_RESHARD_FENCED:
		return now == KV_RESHARD_PLANNED;
	case KV_RESHARD_INGESTED:
		return now == KV_RESHARD_FENCED;
	case KV_RESHARD_DONE:
		/* The target has it all; and the change has not been abandoned elsewhere. */
		return now == KV_RESHARD_INGESTED && !any_in(r, KV_RESHARD_ROLLED_BACK);
	case KV_RESHARD_ROLLED_BACK:
		/* Before the source released the range, and before any range did. */
		return now != KV_RESHARD_DONE && !any_in(r, KV_RESHARD_DONE);
	case KV_RESHARD_PLANNED:
		return false; /* a state is never entered again */
	}
	return false;
}

int kv_reshard_step(struct kv_reshard *r, size_t i, enum kv_reshard_state next)
{
	if (i >= r->n_ranges || !is_state(next))
		return KV_RESHARD_EINVAL;
	if (!kv_reshard_legal(r, i, next))
		return KV_RESHARD_EILLEGAL;
	r->ranges[i].state = next;
	return 0;
}

int kv_reshard_step_pair(struct kv_reshard *r, uint32_t from, uint32_t to,
			 enum kv_reshard_state next)
{
	if (!is_state(next))
		return KV_RESHARD_EINVAL;
	size_t found = 0;
	for (size_t i = 0; i < r->n_ranges; i++) {
		if (r->ranges[i].from != from || r->ranges[i].to != to)
			continue;
		found++;
		if (!kv_reshard_legal(r, i, next))
			return KV_RESHARD_EILLEGAL;
	}
	if (found == 0)
		return KV_RESHARD_EINVAL;
	for (size_t i = 0; i < r->n_ranges; i++)
		if (r->ranges[i].from == from && r->ranges[i].to == to)
			r->ranges[i].state = next;
	return 0;
}

enum kv_reshard_outcome kv_reshard_outcome(const struct kv_reshard *r)
{
	size_t done = 0, back = 0;
	for (size_t i = 0; i < r->n_ranges; i++) {
		done += r->ranges[i].state == KV_RESHARD_DONE;
		back += r->ranges[i].state == KV_RESHARD_ROLLED_BACK;
	}
	if (done == r->n_ranges)
		return KV_RESHARD_COMPLETE;
	if (back == r->n_ranges)
		return KV_RESHARD_ABANDONED;
	return KV_RESHARD_MOVING;
}

const struct kv_ring *kv_reshard_in_effect(const struct kv_reshard *r)
{
	switch (kv_reshard_outcome(r)) {
	case KV_RESHARD_COMPLETE:
		return r->to;
	case KV_RESHARD_ABANDONED:
		return r->from;
	case KV_RESHARD_MOVING:
		break;
	}
	return NULL;
}

static bool same_ring(const struct kv_ring *a, const struct kv_ring *b)
{
	size_t na, nb;
	const uint32_t *ia = kv_ring_ids(a, &na), *ib = kv_ring_ids(b, &nb);
	return na == nb && memcmp(ia, ib, na * sizeof *ia) == 0 &&
	       kv_ring_epoch(a) == kv_ring_epoch(b) && kv_ring_vnodes(a) == kv_ring_vnodes(b);
}

bool kv_reshard_may_follow(const struct kv_reshard *prev, const struct kv_ring *boot,
			   const struct kv_reshard *next)
{
	const struct kv_ring *now = prev ? kv_reshard_in_effect(prev) : boot;
	if (now == NULL || !same_ring(now, next->from))
		return false;
	if (prev && kv_ring_epoch(next->to) <= kv_ring_epoch(prev->to))
		return false;
	for (size_t i = 0; i < next->n_ranges; i++)
		if (next->ranges[i].state != KV_RESHARD_PLANNED)
			return false;
	return true;
}

long kv_reshard_find(const struct kv_reshard *r, uint64_t h)
{
	/* Ranges are in circle order: only the first may wrap; the others have lo < hi and
	 * ascending hi. Search those for the first hi >= h. */
	if (r->n_ranges == 0)
		return -1;
	size_t first = 0;
	if (r->ranges[0].lo >= r->ranges[0].hi) {
		struct kv_ring_range wrap = {.lo = r->ranges[0].lo, .hi = r->ranges[0].hi};
		if (kv_ring_range_has(&wrap, h))
			return 0;
		first = 1;
	}
	size_t lo = first, hi = r->n_ranges;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (r->ranges[mid].hi < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < r->n_ranges && r->ranges[lo].lo < h && h <= r->ranges[lo].hi)
		return (long)lo;
	return -1;
}

void kv_reshard_owner(const struct kv_reshard *r, uint64_t h, uint32_t *reader, uint32_t *writer)
{
	long i = kv_reshard_find(r, h);
	if (i < 0) {
		*reader = *writer = kv_ring_owner(r->from, h); /* the same in both rings */
		return;
	}
	const struct kv_reshard_range *x = &r->ranges[i];
	switch (x->state) {
	case KV_RESHARD_PLANNED:
	case KV_RESHARD_ROLLED_BACK:
		*reader = *writer = x->from;
		return;
	case KV_RESHARD_FENCED:
	case KV_RESHARD_INGESTED:
		*reader = x->from;
		*writer = 0;
		return;
	case KV_RESHARD_DONE:
		*reader = *writer = x->to;
		return;
	}
	*reader = x->from; /* not reached: states are checked on every step */
	*writer = 0;
}

enum kv_reshard_answer kv_reshard_answer(const struct kv_reshard *r, uint32_t group, uint64_t h,
					 bool write, uint32_t *serving)
{
	uint32_t reader, writer;
	kv_reshard_owner(r, h, &reader, &writer);
	uint32_t who = write ? writer : reader;
	*serving = who;
	if (who == 0)
		return KV_RESHARD_RETRY;
	return who == group ? KV_RESHARD_SERVE : KV_RESHARD_ELSEWHERE;
}

const char *kv_reshard_strerror(int code)
{
	switch (code) {
	case KV_RESHARD_OK:
		return "ok";
	case KV_RESHARD_EINVAL:
		return "invalid ring change";
	case KV_RESHARD_EILLEGAL:
		return "step not allowed in this state";
	case KV_RESHARD_ENOMEM:
		return "out of memory";
	}
	return "unknown error";
}

const char *kv_reshard_state_name(enum kv_reshard_state s)
{
	switch (s) {
	case KV_RESHARD_PLANNED:
		return "planned";
	case KV_RESHARD_FENCED:
		return "fenced";
	case KV_RESHARD_INGESTED:
		return "ingested";
	case KV_RESHARD_DONE:
		return "done";
	case KV_RESHARD_ROLLED_BACK:
		return "rolled-back";
	}
	return "unknown";
}
