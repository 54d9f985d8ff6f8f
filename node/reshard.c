/* reshard.c — the ring change record in the meta group (reshard.h).
 *
 * One key, "ring", holds the latest change: while it is MOVING, the change under way; once it
 * is final, the record of how the ring in effect came to be. No record means the ring never
 * changed: the bootstrap ring 1..G at epoch 1. The record is written the way member records
 * are (members.c): by the meta group's leader, with a compare-and-set against the record as
 * read, so every replica applies the same history and of two racing writers one wins.
 *
 * A stored record is trusted only after a check: its ranges are derived again from its id
 * sets (kv_reshard_plan is a pure function of them) and must match exactly. A record that
 * fails is reported, never used: a wrong range would let two groups own a key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/kv_limits.h"
#include "node/node_err.h"
#include "node/reshard.h"
#include "proto/kv.pb-c.h"

#define VNODES_MAX 4096u /* points per group a record may name (kv_ring's limit is on G*V) */

void node_reshard_free(struct node_reshard *r)
{
	if (r == NULL)
		return;
	kv_reshard_free(r->change);
	free(r);
}

int node_reshard_encode(const struct node_reshard *nr, uint8_t **out, size_t *len)
{
	const struct kv_reshard *r = nr->change;
	*out = NULL;
	*len = 0;
	Ringraft__Kv__RingChange rc = RINGRAFT__KV__RING_CHANGE__INIT;
	size_t nf, nt;
	rc.from_epoch = kv_ring_epoch(r->from);
	rc.from_ids = (uint32_t *)kv_ring_ids(r->from, &nf);
	rc.n_from_ids = nf;
	rc.to_epoch = kv_ring_epoch(r->to);
	rc.to_ids = (uint32_t *)kv_ring_ids(r->to, &nt);
	rc.n_to_ids = nt;
	rc.vnodes = kv_ring_vnodes(r->from);
	rc.id_high = nr->id_high;
	Ringraft__Kv__GroupPlacement places[NODE_GROUPS_ADDED_MAX], *pptrs[NODE_GROUPS_ADDED_MAX];
	for (size_t i = 0; i < nr->n_places; i++) {
		ringraft__kv__group_placement__init(&places[i]);
		places[i].group = nr->places[i].group;
		places[i].replicas = (uint64_t *)nr->places[i].replicas;
		places[i].n_replicas = nr->places[i].n_replicas;
		pptrs[i] = &places[i];
	}
	rc.placements = pptrs;
	rc.n_placements = nr->n_places;
	Ringraft__Kv__RingRange *ranges = calloc(r->n_ranges ? r->n_ranges : 1, sizeof *ranges);
	Ringraft__Kv__RingRange **ptrs = calloc(r->n_ranges ? r->n_ranges : 1, sizeof *ptrs);
	if (ranges == NULL || ptrs == NULL) {
		free(ranges);
		free(ptrs);
		return NODE_ENOMEM;
	}
	for (size_t i = 0; i < r->n_ranges; i++) {
		ringraft__kv__ring_range__init(&ranges[i]);
		ranges[i].lo = r->ranges[i].lo;
		ranges[i].hi = r->ranges[i].hi;
		ranges[i].from = r->ranges[i].from;
		ranges[i].to = r->ranges[i].to;
		ranges[i].state = (uint32_t)r->ranges[i].state;
		ptrs[i] = &ranges[i];
	}
	rc.ranges = ptrs;
	rc.n_ranges = r->n_ranges;
	size_t n = ringraft__kv__ring_change__get_packed_size(&rc);
	int ret = NODE_OK;
	if ((*out = malloc(n ? n : 1)) == NULL) {
		ret = NODE_ENOMEM;
	} else {
		ringraft__kv__ring_change__pack(&rc, *out);
		*len = n;
	}
	free(ranges);
	free(ptrs);
	return ret;
}

static bool has_id(const uint32_t *ids, size_t n, uint32_t g)
{
	for (size_t i = 0; i < n; i++)
		if (ids[i] == g)
			return true;
	return false;
}

static bool has_id64(const uint64_t *ids, size_t n, uint64_t x)
{
	for (size_t i = 0; i < n; i++)
		if (ids[i] == x)
			return true;
	return false;
}

/* The placements of rc into r: one per added group (in rc's to_ids, not in its from_ids), in
 * increasing id order, with distinct non-zero replicas; false if they are not exactly so. */
static bool take_places(const Ringraft__Kv__RingChange *rc, struct node_reshard *r)
{
	size_t added = 0;
	for (size_t i = 0; i < rc->n_to_ids; i++)
		added += !has_id(rc->from_ids, rc->n_from_ids, rc->to_ids[i]);
	if (added != rc->n_placements || added > NODE_GROUPS_ADDED_MAX)
		return false;
	for (size_t i = 0; i < rc->n_placements; i++) {
		const Ringraft__Kv__GroupPlacement *p = rc->placements[i];
		if (!has_id(rc->to_ids, rc->n_to_ids, p->group) ||
		    has_id(rc->from_ids, rc->n_from_ids, p->group) ||
		    (i > 0 && p->group <= rc->placements[i - 1]->group) || p->n_replicas == 0 ||
		    p->n_replicas > RAFT_NODES_MAX)
			return false;
		struct node_reshard_place *q = &r->places[i];
		q->group = p->group;
		q->n_replicas = (uint32_t)p->n_replicas;
		for (size_t k = 0; k < p->n_replicas; k++) {
			uint64_t id = p->replicas[k];
			if (id == 0 || has_id64(q->replicas, k, id))
				return false;
			q->replicas[k] = id;
		}
	}
	r->n_places = rc->n_placements;
	return true;
}

int node_reshard_decode(const void *data, size_t len, struct node_reshard **out)
{
	*out = NULL;
	Ringraft__Kv__RingChange *rc = ringraft__kv__ring_change__unpack(NULL, len, data);
	if (rc == NULL)
		return NODE_EMALFORMED;
	int ret = NODE_EMALFORMED;
	struct kv_reshard *r = NULL;
	struct node_reshard *nr = NULL;
	uint32_t high = 0;
	if (rc->vnodes == 0 || rc->vnodes > VNODES_MAX || rc->n_from_ids > KV_GROUPS_MAX ||
	    rc->n_to_ids > KV_GROUPS_MAX || rc->id_high > KV_GROUPS_MAX)
		goto done;
	for (size_t i = 0; i < rc->n_from_ids; i++) {
		if (rc->from_ids[i] > KV_GROUPS_MAX)
			goto done;
		high = rc->from_ids[i] > high ? rc->from_ids[i] : high;
	}
	for (size_t i = 0; i < rc->n_to_ids; i++) {
		if (rc->to_ids[i] > KV_GROUPS_MAX)
			goto done;
		high = rc->to_ids[i] > high ? rc->to_ids[i] : high;
	}
	if (rc->id_high != 0 && rc->id_high < high)
		goto done;
	int prc = kv_reshard_plan(rc->from_ids, rc->n_from_ids, rc->from_epoch, rc->to_ids,
				  rc->n_to_ids, rc->to_epoch, rc->vnodes, &r);
	if (prc == KV_RESHARD_ENOMEM) {
		ret = NODE_ENOMEM;
		goto done;
	}
	if (prc != 0 || r->n_ranges != rc->n_ranges)
		goto done;
	bool done_seen = false, back_seen = false;
	for (size_t i = 0; i < r->n_ranges; i++) {
		const Ringraft__Kv__RingRange *x = rc->ranges[i];
		struct kv_reshard_range *y = &r->ranges[i];
		if (x->lo != y->lo || x->hi != y->hi || x->from != y->from || x->to != y->to ||
		    x->state < KV_RESHARD_PLANNED || x->state > KV_RESHARD_ROLLED_BACK)
			goto done;
		y->state = (enum kv_reshard_state)x->state;
		done_seen |= y->state == KV_RESHARD_DONE;
		back_seen |= y->state == KV_RESHARD_ROLLED_BACK;
	}
	if (done_seen && back_seen)
		goto done; /* a change ends one way only (kv_reshard_legal) */
	if ((nr = calloc(1, sizeof *nr)) == NULL) {
		ret = NODE_ENOMEM;
		goto done;
	}
	if (!take_places(rc, nr))
		goto done;
	nr->id_high = rc->id_high ? rc->id_high : high;
	nr->change = r;
	r = NULL;
	*out = nr;
	nr = NULL;
	ret = NODE_OK;
done:
	free(nr);
	kv_reshard_free(r);
	ringraft__kv__ring_change__free_unpacked(rc, NULL);
	return ret;
}

/* The stored record's bytes: KV_OK with *value (malloc'd), KV_NOT_FOUND, or a kv error. */
static int get_record(struct kv *kv, uint32_t meta, void **value, size_t *len)
{
	return kv_get(kv, meta, NODE_RESHARD_KEY, NODE_RESHARD_KEY_LEN, 0, value, len, NULL);
}

int node_reshard_load(struct kv *kv, uint32_t meta, struct node_reshard **out)
{
	*out = NULL;
	void *value = NULL;
	size_t len = 0;
	int rc = get_record(kv, meta, &value, &len);
	if (rc == KV_NOT_FOUND)
		return NODE_OK;
	if (rc != KV_OK)
		return rc == KV_ENOMEM ? NODE_ENOMEM : NODE_ESTORE;
	rc = node_reshard_decode(value, len, out);
	free(value);
	return rc;
}

static bool same_ring(const struct kv_ring *a, const struct kv_ring *b)
{
	size_t na, nb;
	const uint32_t *ia = kv_ring_ids(a, &na), *ib = kv_ring_ids(b, &nb);
	return na == nb && memcmp(ia, ib, na * sizeof *ia) == 0 &&
	       kv_ring_epoch(a) == kv_ring_epoch(b) && kv_ring_vnodes(a) == kv_ring_vnodes(b);
}

static bool same_places(const struct node_reshard *a, const struct node_reshard *b)
{
	if (a->n_places != b->n_places || a->id_high != b->id_high)
		return false;
	for (size_t i = 0; i < a->n_places; i++) {
		const struct node_reshard_place *x = &a->places[i], *y = &b->places[i];
		if (x->group != y->group || x->n_replicas != y->n_replicas ||
		    memcmp(x->replicas, y->replicas, x->n_replicas * sizeof x->replicas[0]) != 0)
			return false;
	}
	return true;
}

/* Whether next is the stored change with its ranges stepped on by legal steps, taken one
 * range after another (so that two ranges cannot end the change two ways in one write). */
static bool steps_of(struct node_reshard *stored, const struct node_reshard *next)
{
	struct kv_reshard *s = stored->change;
	const struct kv_reshard *x = next->change;
	if (!same_ring(s->from, x->from) || !same_ring(s->to, x->to) ||
	    s->n_ranges != x->n_ranges || !same_places(stored, next))
		return false;
	for (size_t i = 0; i < x->n_ranges; i++)
		if (kv_reshard_step(s, i, x->ranges[i].state) != 0)
			return false;
	return true;
}

/* Whether next's added ids are all new: above every id used before (stored's id_high, or the
 * meta group's id for the first change), and next's id_high not below the old one. */
static bool ids_new(const struct node_reshard *stored, uint32_t meta,
		    const struct node_reshard *next)
{
	uint32_t high = stored != NULL ? stored->id_high : meta;
	if (next->id_high < high)
		return false;
	for (size_t i = 0; i < next->n_places; i++)
		if (next->places[i].group <= high)
			return false;
	return !kv_ring_has(next->change->to, meta);
}

int node_reshard_cmd(struct kv *kv, uint32_t meta, const struct node_reshard *next,
		     const struct kv_ring *boot, struct kv_cmd *c, uint8_t **value, void **old,
		     const char **why)
{
	*value = NULL;
	*old = NULL;
	*why = NULL;
	memset(c, 0, sizeof *c);
	c->op = KV_OP_CAS;
	size_t old_len = 0;
	int rc = get_record(kv, meta, old, &old_len);
	struct node_reshard *stored = NULL;
	if (rc == KV_NOT_FOUND) {
		c->expect_absent = true;
	} else if (rc == KV_OK) {
		if ((rc = node_reshard_decode(*old, old_len, &stored)) != NODE_OK) {
			*why = "the stored ring change does not check out";
			goto fail;
		}
		c->expected = *old;
		c->expected_len = old_len;
	} else {
		*why = kv_strerror(rc);
		rc = rc == KV_ENOMEM ? NODE_ENOMEM : NODE_ESTORE;
		goto fail;
	}
	bool ok = (kv_reshard_may_follow(stored ? stored->change : NULL, boot, next->change) &&
		   ids_new(stored, meta, next)) ||
		  (stored != NULL && steps_of(stored, next));
	node_reshard_free(stored);
	stored = NULL;
	if (!ok) {
		*why = "the ring change does not follow the stored one (another change is under "
		       "way, it does not start from the ring in effect, it reuses a group id, or "
		       "a step is not allowed)";
		rc = NODE_EINVAL;
		goto fail;
	}
	size_t len;
	if ((rc = node_reshard_encode(next, value, &len)) != NODE_OK) {
		*why = "out of memory";
		goto fail;
	}
	c->key = NODE_RESHARD_KEY;
	c->key_len = NODE_RESHARD_KEY_LEN;
	c->value = *value;
	c->value_len = len;
	return NODE_OK;
fail:
	node_reshard_free(stored);
	free(*old);
	*old = NULL;
	memset(c, 0, sizeof *c);
	return rc;
}

/* ------------------------------------------------------------------------------ planning */

const struct kv_ring *node_reshard_ring(const struct node_reshard *stored,
					const struct kv_ring *boot)
{
	if (stored == NULL)
		return boot;
	const struct kv_ring *r = kv_reshard_in_effect(stored->change);
	return r != NULL ? r : stored->change->from;
}

static uint64_t state_sum(const struct kv_reshard *r)
{
	uint64_t s = 0;
	for (size_t i = 0; i < r->n_ranges; i++)
		s += (uint64_t)r->ranges[i].state;
	return s;
}

bool node_reshard_newer(const struct node_reshard *a, const struct node_reshard *b)
{
	if (a == NULL)
		return false;
	if (b == NULL)
		return true;
	uint64_t ea = kv_ring_epoch(a->change->to), eb = kv_ring_epoch(b->change->to);
	if (ea != eb)
		return ea > eb;
	return state_sum(a->change) > state_sum(b->change);
}

const struct node_reshard_place *node_reshard_place_of(const struct node_reshard *r, uint32_t g)
{
	for (size_t i = 0; r != NULL && i < r->n_places; i++)
		if (r->places[i].group == g)
			return &r->places[i];
	return NULL;
}

/* A deep copy (through the encoding: the record has one canonical form). */
static int dup_record(const struct node_reshard *r, struct node_reshard **out)
{
	uint8_t *buf;
	size_t len;
	int rc = node_reshard_encode(r, &buf, &len);
	if (rc != NODE_OK)
		return rc;
	rc = node_reshard_decode(buf, len, out);
	free(buf);
	return rc;
}

/* The change from the ring in effect `cur` to the ring of ids (n of them), into nr->change,
 * the epoch one above every epoch used: *out = nr on success. Takes ids and, on failure, nr. */
static int plan_to(const struct node_reshard *stored, const struct kv_ring *boot,
		   const struct kv_ring *cur, uint32_t *ids, size_t n, struct node_reshard *nr,
		   struct node_reshard **out, const char **why, const char *too_many)
{
	size_t n_cur;
	const uint32_t *cur_ids = kv_ring_ids(cur, &n_cur);
	uint64_t epoch = stored != NULL ? kv_ring_epoch(stored->change->to) : kv_ring_epoch(boot);
	int rc = kv_reshard_plan(cur_ids, n_cur, kv_ring_epoch(cur), ids, n, epoch + 1,
				 kv_ring_vnodes(cur), &nr->change);
	free(ids);
	if (rc != KV_RESHARD_OK) {
		free(nr);
		if (rc == KV_RESHARD_ENOMEM)
			return NODE_ENOMEM;
		*why = too_many;
		return NODE_EINVAL;
	}
	*out = nr;
	return NODE_OK;
}

int node_reshard_plan_add(const struct node_reshard *stored, const struct kv_ring *boot,
			  uint32_t meta, uint32_t id_max, uint32_t count, const uint64_t *members,
			  size_t n_members, struct node_reshard **out, const char **why)
{
	*out = NULL;
	*why = NULL;
	if (stored != NULL && kv_reshard_outcome(stored->change) == KV_RESHARD_MOVING) {
		*why = "a ring change is under way: only one at a time (wait for it to end, or "
		       "roll it back with kvctl groups remove on a group it adds)";
		return NODE_EINVAL;
	}
	if (count == 0 || count > NODE_GROUPS_ADDED_MAX) {
		*why = "groups add: --count must be 1..32";
		return NODE_EINVAL;
	}
	uint32_t high = stored != NULL ? stored->id_high : meta;
	if (high < meta)
		high = meta;
	if (id_max > KV_GROUPS_MAX)
		id_max = KV_GROUPS_MAX;
	if (high >= id_max || count > id_max - high) {
		*why = "groups add: no group ids left: a cluster adds at most 32 groups in its "
		       "lifetime (ids are never reused, rolled-back ones included): ask for fewer, "
		       "or none are left";
		return NODE_EINVAL;
	}
	if (n_members == 0) {
		*why = "groups add: no live member to place the new groups on";
		return NODE_EINVAL;
	}
	const struct kv_ring *cur = node_reshard_ring(stored, boot);
	size_t n_cur;
	const uint32_t *cur_ids = kv_ring_ids(cur, &n_cur);
	uint32_t *ids = malloc((n_cur + count) * sizeof *ids);
	struct node_reshard *nr = calloc(1, sizeof *nr);
	if (ids == NULL || nr == NULL) {
		free(ids);
		free(nr);
		return NODE_ENOMEM;
	}
	memcpy(ids, cur_ids, n_cur * sizeof *ids);
	for (uint32_t i = 0; i < count; i++) {
		uint32_t g = high + 1 + i;
		ids[n_cur + i] = g;
		struct node_reshard_place *p = &nr->places[i];
		p->group = g;
		p->n_replicas =
			(uint32_t)kv_ring_place(g, members, n_members, NODE_REPLICAS, p->replicas);
		if (p->n_replicas == 0) {
			free(ids);
			free(nr);
			return NODE_ENOMEM;
		}
	}
	nr->n_places = count;
	nr->id_high = high + count;
	return plan_to(stored, boot, cur, ids, n_cur + count, nr, out, why,
		       "groups add: the change cannot be planned (too many ranges would move)");
}

int node_reshard_plan_remove(const struct node_reshard *stored, const struct kv_ring *boot,
			     uint32_t meta, uint32_t g, struct node_reshard **out, const char **why)
{
	*out = NULL;
	*why = NULL;
	const struct kv_ring *cur = node_reshard_ring(stored, boot);
	const struct node_reshard_place *p = node_reshard_place_of(stored, g);
	if (g == meta) {
		*why = "groups remove: that is the meta group (it holds the cluster map, no keys): "
		       "it cannot be removed";
		return NODE_EINVAL;
	}
	if (p == NULL && !kv_ring_has(cur, g)) {
		bool used = stored != NULL && g > meta && g <= stored->id_high;
		*why = used ? "groups remove: that group was retired already (its ids are never "
			      "used again)"
			    : "groups remove: no such group";
		return NODE_EINVAL;
	}
	if (stored != NULL && kv_reshard_outcome(stored->change) == KV_RESHARD_MOVING) {
		if (p == NULL) {
			*why = "a ring change is under way: only one at a time (wait for it to "
			       "end, or roll it back with kvctl groups remove on a group it adds)";
			return NODE_EINVAL;
		}
		/* Rolled back while no copy is complete: once one is, its source may have
		 * released the range (the driver only goes forward from there). */
		for (size_t i = 0; i < stored->change->n_ranges; i++)
			if (stored->change->ranges[i].state != KV_RESHARD_PLANNED &&
			    stored->change->ranges[i].state != KV_RESHARD_FENCED) {
				*why = "groups remove: the keys that move to that group are copied "
				       "already; the change can only go forward now (wait for it "
				       "to "
				       "complete, then remove the group)";
				return NODE_EINVAL;
			}
		struct node_reshard *nr;
		int rc = dup_record(stored, &nr);
		if (rc != NODE_OK)
			return rc;
		for (size_t i = 0; i < nr->change->n_ranges; i++)
			nr->change->ranges[i].state = KV_RESHARD_ROLLED_BACK;
		*out = nr;
		return NODE_OK;
	}
	if (p != NULL && kv_reshard_outcome(stored->change) == KV_RESHARD_ABANDONED) {
		*why = "groups remove: that group was retired already (its change was rolled back; "
		       "ids are never used again)";
		return NODE_EINVAL;
	}
	/* A group of the ring in effect: its keys move to the groups that own its points once it
	 * is gone (kv_reshard_plan), and once the change is complete it retires. */
	size_t n_cur;
	const uint32_t *cur_ids = kv_ring_ids(cur, &n_cur);
	if (n_cur < 2) {
		*why = "groups remove: that is the ring's only group: its keys would have nowhere "
		       "to go";
		return NODE_EINVAL;
	}
	uint32_t *ids = malloc(n_cur * sizeof *ids);
	struct node_reshard *nr = calloc(1, sizeof *nr);
	if (ids == NULL || nr == NULL) {
		free(ids);
		free(nr);
		return NODE_ENOMEM;
	}
	size_t k = 0;
	for (size_t i = 0; i < n_cur; i++)
		if (cur_ids[i] != g)
			ids[k++] = cur_ids[i];
	nr->id_high = stored != NULL && stored->id_high > meta ? stored->id_high : meta;
	return plan_to(stored, boot, cur, ids, k, nr, out, why,
		       "groups remove: the change cannot be planned (too many ranges would move)");
}

void node_reshard_describe(const struct node_reshard *r, char *buf, size_t cap)
{
	if (cap == 0)
		return;
	buf[0] = '\0';
	if (r == NULL) {
		snprintf(buf, cap, "no ring change (the bootstrap ring)");
		return;
	}
	const struct kv_reshard *c = r->change;
	size_t n = 0;
#define PUT(...)                                                                                   \
	do {                                                                                       \
		if (n < cap)                                                                       \
			n += (size_t)snprintf(buf + n, cap - n, __VA_ARGS__);                      \
	} while (0)
	PUT("epoch %llu -> %llu", (unsigned long long)kv_ring_epoch(c->from),
	    (unsigned long long)kv_ring_epoch(c->to));
	for (size_t i = 0; i < r->n_places; i++) {
		const struct node_reshard_place *p = &r->places[i];
		PUT("%s group %u on nodes ", i == 0 ? ", adding" : ",", p->group);
		for (uint32_t k = 0; k < p->n_replicas; k++)
			PUT("%s%llu", k ? "," : "", (unsigned long long)p->replicas[k]);
	}
	size_t nf, nt;
	const uint32_t *fi = kv_ring_ids(c->from, &nf);
	const uint32_t *ti = kv_ring_ids(c->to, &nt);
	bool first = true;
	for (size_t i = 0; i < nf; i++)
		if (!has_id(ti, nt, fi[i])) {
			PUT("%s%u", first ? ", removing group " : ",", fi[i]);
			first = false;
		}
	size_t by_state[KV_RESHARD_ROLLED_BACK + 1] = {0};
	for (size_t i = 0; i < c->n_ranges; i++)
		by_state[c->ranges[i].state]++;
	PUT(": %zu range(s):", c->n_ranges);
	bool more = false;
	for (int s = KV_RESHARD_PLANNED; s <= KV_RESHARD_ROLLED_BACK; s++)
		if (by_state[s] > 0) {
			PUT("%s %zu %s", more ? "," : "", by_state[s],
			    kv_reshard_state_name((enum kv_reshard_state)s));
			more = true;
		}
#undef PUT
}
