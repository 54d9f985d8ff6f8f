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
#include <stdlib.h>
#include <string.h>

#include "kv/kv_limits.h"
#include "node/node_err.h"
#include "node/reshard.h"
#include "proto/kv.pb-c.h"

#define VNODES_MAX 4096u /* points per group a record may name (kv_ring's limit is on G*V) */

int node_reshard_encode(const struct kv_reshard *r, uint8_t **out, size_t *len)
{
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
	Ringraft__Kv__RingRange *ranges = calloc(r->n_ranges, sizeof *ranges);
	Ringraft__Kv__RingRange **ptrs = calloc(r->n_ranges, sizeof *ptrs);
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

int node_reshard_decode(const void *data, size_t len, struct kv_reshard **out)
{
	*out = NULL;
	Ringraft__Kv__RingChange *rc = ringraft__kv__ring_change__unpack(NULL, len, data);
	if (rc == NULL)
		return NODE_EMALFORMED;
	int ret = NODE_EMALFORMED;
	struct kv_reshard *r = NULL;
	if (rc->vnodes == 0 || rc->vnodes > VNODES_MAX || rc->n_from_ids > KV_GROUPS_MAX ||
	    rc->n_to_ids > KV_GROUPS_MAX)
		goto done;
	for (size_t i = 0; i < rc->n_from_ids; i++)
		if (rc->from_ids[i] > KV_GROUPS_MAX)
			goto done;
	for (size_t i = 0; i < rc->n_to_ids; i++)
		if (rc->to_ids[i] > KV_GROUPS_MAX)
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
	*out = r;
	r = NULL;
	ret = NODE_OK;
done:
	kv_reshard_free(r);
	ringraft__kv__ring_change__free_unpacked(rc, NULL);
	return ret;
}

/* The stored record's bytes: KV_OK with *value (malloc'd), KV_NOT_FOUND, or a kv error. */
static int get_record(struct kv *kv, uint32_t meta, void **value, size_t *len)
{
	return kv_get(kv, meta, NODE_RESHARD_KEY, NODE_RESHARD_KEY_LEN, 0, value, len, NULL);
}

int node_reshard_load(struct kv *kv, uint32_t meta, struct kv_reshard **out)
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

/* Whether next is the stored change with its ranges stepped on by legal steps, taken one
 * range after another (so that two ranges cannot end the change two ways in one write). */
static bool steps_of(struct kv_reshard *stored, const struct kv_reshard *next)
{
	if (!same_ring(stored->from, next->from) || !same_ring(stored->to, next->to) ||
	    stored->n_ranges != next->n_ranges)
		return false;
	for (size_t i = 0; i < next->n_ranges; i++)
		if (kv_reshard_step(stored, i, next->ranges[i].state) != 0)
			return false;
	return true;
}

int node_reshard_cmd(struct kv *kv, uint32_t meta, const struct kv_ring *boot,
		     const struct kv_reshard *next, struct kv_cmd *c, uint8_t **value, void **old,
		     const char **why)
{
	*value = NULL;
	*old = NULL;
	*why = NULL;
	memset(c, 0, sizeof *c);
	c->op = KV_OP_CAS;
	size_t old_len = 0;
	int rc = get_record(kv, meta, old, &old_len);
	struct kv_reshard *stored = NULL;
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
	bool ok = kv_reshard_may_follow(stored, boot, next) ||
		  (stored != NULL && steps_of(stored, next));
	kv_reshard_free(stored);
	stored = NULL;
	if (!ok) {
		*why = "the ring change does not follow the stored one (another change is under "
		       "way, it does not start from the ring in effect, or a step is not allowed)";
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
	kv_reshard_free(stored);
	free(*old);
	*old = NULL;
	memset(c, 0, sizeof *c);
	return rc;
}
