/* fence.c — a group's resharding fence (kv.h KV_OP_FENCE / KV_OP_UNFENCE; the rules are in
 * kv/reshard.h). The fence is the hash ranges this group gives away in a ring change: from the
 * FENCE entry on, writes to their keys are refused with KV_MOVING while reads go on, so the
 * target can copy values that no longer change.
 *
 * It is checked where entries are applied, not where they are proposed: a write proposed
 * before the fence and committed after it is refused too, which is what makes the fence a
 * point in the group's log. It lives in the meta DBI (key 'F'), so snapshots, restarts and new
 * leaders carry it. A batch loads it once (one lookup; none stored is the common case) and
 * checks a key in O(ranges) only while there is one.
 */
#include <stdlib.h>
#include <string.h>

#include "kv/kv_int.h"
#include "kv/reshard.h"

#define FENCE_HEADER 12 /* u64 epoch | u32 n */
#define FENCE_RANGE  16 /* u64 lo | u64 hi */

int kv_fence_value(uint64_t epoch, const struct kv_ring_range *ranges, size_t n, uint8_t **out,
		   size_t *len)
{
	*out = NULL;
	*len = 0;
	if (n == 0 || n > KV_RESHARD_RANGES_MAX)
		return KV_RESHARD_EINVAL;
	size_t sz = FENCE_HEADER + n * FENCE_RANGE;
	uint8_t *p = malloc(sz);
	if (p == NULL)
		return KV_RESHARD_ENOMEM;
	kv_put_le64(p, epoch);
	kv_put_le32(p + 8, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		kv_put_le64(p + FENCE_HEADER + i * FENCE_RANGE, ranges[i].lo);
		kv_put_le64(p + FENCE_HEADER + i * FENCE_RANGE + 8, ranges[i].hi);
	}
	*out = p;
	*len = sz;
	return 0;
}

/* A stored fence or a FENCE value: 1..KV_RESHARD_RANGES_MAX ranges, lengths that agree. */
static bool layout_ok(const uint8_t *p, size_t len)
{
	if (len < FENCE_HEADER + FENCE_RANGE || (len - FENCE_HEADER) % FENCE_RANGE != 0)
		return false;
	size_t n = kv_get_le32(p + 8);
	return n >= 1 && n <= KV_RESHARD_RANGES_MAX && n == (len - FENCE_HEADER) / FENCE_RANGE;
}

bool kv_fence_value_ok(uint8_t op, const void *value, size_t len)
{
	if (op == KV_OP_UNFENCE)
		return len == 8;
	return value != NULL && layout_ok(value, len);
}

int kv_fence_value_parse(const void *value, size_t len, uint64_t *epoch,
			 struct kv_ring_range **ranges, size_t *n)
{
	uint64_t *pairs;
	*ranges = NULL;
	*n = 0;
	int rc = kv_ranges_parse(value, len, epoch, &pairs, n);
	if (rc != 0)
		return rc == ENOMEM ? KV_RESHARD_ENOMEM : KV_RESHARD_EINVAL;
	struct kv_ring_range *r = calloc(*n, sizeof *r);
	if (r == NULL) {
		free(pairs);
		*n = 0;
		return KV_RESHARD_ENOMEM;
	}
	for (size_t i = 0; i < *n; i++) {
		r[i].lo = pairs[2 * i];
		r[i].hi = pairs[2 * i + 1];
	}
	free(pairs);
	*ranges = r;
	return 0;
}

void kv_fence_free(struct kv_fence *f)
{
	free(f->ranges);
	memset(f, 0, sizeof *f);
}

int kv_ranges_parse(const uint8_t *p, size_t len, uint64_t *epoch, uint64_t **pairs, size_t *n)
{
	*pairs = NULL;
	*n = 0;
	if (p == NULL || !layout_ok(p, len))
		return MDB_CORRUPTED;
	size_t count = kv_get_le32(p + 8);
	uint64_t *r = malloc(2 * count * sizeof *r);
	if (r == NULL)
		return ENOMEM;
	for (size_t i = 0; i < 2 * count; i++)
		r[i] = kv_get_le64(p + FENCE_HEADER + 8 * i);
	*epoch = kv_get_le64(p);
	*pairs = r;
	*n = count;
	return 0;
}

int kv_ranges_put(MDB_txn *txn, const struct kv_group *g, uint8_t tag, uint64_t epoch,
		  const uint64_t *pairs, size_t n)
{
	size_t sz = FENCE_HEADER + n * FENCE_RANGE;
	uint8_t *p = malloc(sz);
	if (p == NULL)
		return ENOMEM;
	kv_put_le64(p, epoch);
	kv_put_le32(p + 8, (uint32_t)n);
	for (size_t i = 0; i < 2 * n; i++)
		kv_put_le64(p + FENCE_HEADER + 8 * i, pairs[i]);
	MDB_val k = {1, &tag}, v = {sz, p};
	int rc = mdb_put(txn, g->meta, &k, &v, 0);
	free(p);
	return rc;
}

/* Takes ranges from a value of kv_fence_value's layout into f (replacing f's). */
static int take(struct kv_fence *f, const uint8_t *p, size_t len)
{
	uint64_t epoch, *r;
	size_t n;
	int rc = kv_ranges_parse(p, len, &epoch, &r, &n);
	if (rc != 0)
		return rc;
	kv_fence_free(f);
	f->epoch = epoch;
	f->n = n;
	f->ranges = r;
	return 0;
}

int kv_fence_load(MDB_txn *txn, const struct kv_group *g, struct kv_fence *f)
{
	kv_fence_free(f);
	uint8_t tag = KV_META_FENCE;
	MDB_val k = {1, &tag}, v;
	int rc = mdb_get(txn, g->meta, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	if (!layout_ok(v.mv_data, v.mv_size))
		return MDB_CORRUPTED; /* written only by kv_fence_apply: the store is damaged */
	return take(f, v.mv_data, v.mv_size);
}

bool kv_fence_covers(const struct kv_fence *f, const void *key, size_t len)
{
	if (f->n == 0)
		return false;
	uint64_t h = kv_ring_key_hash(key, len);
	for (size_t i = 0; i < f->n; i++) {
		struct kv_ring_range r = {.lo = f->ranges[2 * i], .hi = f->ranges[2 * i + 1]};
		if (kv_ring_range_has(&r, h))
			return true;
	}
	return false;
}

/* Writes f as the stored fence (or deletes it when f is empty). */
static int save(MDB_txn *txn, const struct kv_group *g, const struct kv_fence *f)
{
	if (f->n == 0) {
		uint8_t tag = KV_META_FENCE;
		MDB_val k = {1, &tag};
		int rc = mdb_del(txn, g->meta, &k, NULL);
		return rc == MDB_NOTFOUND ? 0 : rc;
	}
	return kv_ranges_put(txn, g, KV_META_FENCE, f->epoch, f->ranges, f->n);
}

/* Adds the value's ranges that f does not have yet; false when that would pass
 * KV_RESHARD_RANGES_MAX (f unchanged). */
static int add_ranges(struct kv_fence *f, const uint8_t *p, bool *fits)
{
	size_t n = kv_get_le32(p + 8), total = f->n;
	uint64_t *r = malloc(2 * (f->n + n) * sizeof *r);
	if (r == NULL)
		return ENOMEM;
	memcpy(r, f->ranges, 2 * f->n * sizeof *r);
	for (size_t i = 0; i < n; i++) {
		uint64_t lo = kv_get_le64(p + FENCE_HEADER + i * FENCE_RANGE),
			 hi = kv_get_le64(p + FENCE_HEADER + i * FENCE_RANGE + 8);
		bool have = false;
		for (size_t j = 0; j < total && !have; j++)
			have = r[2 * j] == lo && r[2 * j + 1] == hi;
		if (!have) {
			r[2 * total] = lo;
			r[2 * total + 1] = hi;
			total++;
		}
	}
	*fits = total <= KV_RESHARD_RANGES_MAX;
	if (!*fits) {
		free(r);
		return 0;
	}
	free(f->ranges);
	f->ranges = r;
	f->n = total;
	return 0;
}

int kv_fence_apply(MDB_txn *txn, const struct kv_group *g, struct kv_fence *f,
		   const struct kv_cmd *c, struct kv_result *res)
{
	const uint8_t *p = c->value;
	uint64_t epoch = kv_get_le64(p);
	res->code = KV_OK;
	if (c->op == KV_OP_UNFENCE) {
		if (f->n == 0 || f->epoch != epoch) {
			res->code = KV_NOT_FOUND;
			return 0;
		}
		kv_fence_free(f);
		return save(txn, g, f);
	}
	int rc;
	if (f->n != 0 && epoch < f->epoch) {
		res->code = KV_EINVAL; /* a fence of a change that is over */
		return 0;
	}
	if (f->n != 0 && epoch == f->epoch) {
		bool fits;
		if ((rc = add_ranges(f, p, &fits)) != 0)
			return rc;
		if (!fits) {
			res->code = KV_EINVAL;
			return 0;
		}
	} else if ((rc = take(f, p, c->value_len)) != 0) {
		return rc;
	}
	return save(txn, g, f);
}
