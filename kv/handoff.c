/* handoff.c — the markers of a moving range that decide what a group serves (handoff.h):
 * RELEASE at the source, OPEN at the target, the bounded DROP of keys a group holds but no
 * longer serves, and the "gate" that apply and reads check. INGEST itself is in ingest.c.
 *
 * Like the fence (fence.c), each is checked where entries are applied and kept in the meta
 * DBI. The gate costs one lookup and one cursor seek in the meta DBI per apply batch and per
 * read when there is none; with one, a key is checked in O(ranges).
 */
#include <stdio.h>
#include <stdlib.h>

#include "kv/handoff.h"
#include "kv/kv_int.h"
#include "kv/reshard.h"


bool kv_ranges_have(const uint64_t *ranges, size_t n, uint64_t h)
{
	for (size_t i = 0; i < n; i++) {
		struct kv_ring_range r = {.lo = ranges[2 * i], .hi = ranges[2 * i + 1]};
		if (kv_ring_range_has(&r, h))
			return true;
	}
	return false;
}

void kv_open_value(uint64_t epoch, uint32_t source, uint8_t out[KV_OPEN_VALUE_BYTES])
{
	kv_put_le64(out, epoch);
	kv_put_le32(out + 8, source);
}

void kv_drop_value(uint64_t epoch, uint32_t source, uint32_t max_keys,
		   uint8_t out[KV_DROP_VALUE_BYTES])
{
	kv_put_le64(out, epoch);
	kv_put_le32(out + 8, source);
	kv_put_le32(out + 12, max_keys);
}

bool kv_handoff_value_ok(uint8_t op, const void *value, size_t len)
{
	const uint8_t *p = value;
	if (p == NULL)
		return false;
	switch (op) {
	case KV_OP_INGEST:
		return kv_ingest_value_ok(p, len);
	case KV_OP_RELEASE:
		return kv_fence_value_ok(KV_OP_FENCE, p, len) && kv_get_le64(p) != 0;
	case KV_OP_OPEN:
		return len == KV_OPEN_VALUE_BYTES && kv_get_le64(p) != 0 && kv_get_le32(p + 8) != 0;
	case KV_OP_DROP: {
		if (len != KV_DROP_VALUE_BYTES || kv_get_le64(p) == 0)
			return false;
		uint32_t max = kv_get_le32(p + 12);
		return max >= 1 && max <= KV_DROP_KEYS_MAX;
	}
	default:
		return false;
	}
}

/* ---------------------------------------------------------------- range sets */

/* A set of ranges with an epoch: the release record, or a RELEASE value. */
struct rset {
	uint64_t epoch;
	size_t n;
	uint64_t *r; /* n pairs; owned */
};

static void rset_free(struct rset *s)
{
	free(s->r);
	memset(s, 0, sizeof *s);
}

/* Parses the fence layout (kv_ranges_parse checks it). */
static int rset_parse(const uint8_t *p, size_t len, struct rset *s)
{
	memset(s, 0, sizeof *s);
	return kv_ranges_parse(p, len, &s->epoch, &s->r, &s->n);
}

static bool rset_has_pair(const struct rset *s, uint64_t lo, uint64_t hi)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->r[2 * i] == lo && s->r[2 * i + 1] == hi)
			return true;
	return false;
}

/* Reads a one-byte-tag record of the fence layout (the fence or the release) into s (n 0
 * when there is none). */
static int rset_get(MDB_txn *txn, const struct kv_group *g, uint8_t tag, struct rset *s)
{
	memset(s, 0, sizeof *s);
	MDB_val k = {1, &tag}, v;
	int rc = mdb_get(txn, g->meta, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	return rset_parse(v.mv_data, v.mv_size, s);
}

static int rset_put(MDB_txn *txn, const struct kv_group *g, uint8_t tag, const struct rset *s)
{
	return kv_ranges_put(txn, g, tag, s->epoch, s->r, s->n);
}

/* Whether the drop pass of the copy or release keyed by source (0: released) is over. */
static int drop_over(MDB_txn *txn, const struct kv_group *g, uint32_t source, bool *over)
{
	uint8_t dk[5] = {KV_META_DROP, (uint8_t)(source >> 24), (uint8_t)(source >> 16),
			 (uint8_t)(source >> 8), (uint8_t)source};
	MDB_val k = {sizeof dk, dk}, v;
	int rc = mdb_get(txn, g->meta, &k, &v);
	*over = rc == 0 && v.mv_size >= 1 && ((const uint8_t *)v.mv_data)[0] == 1;
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int meta_del(MDB_txn *txn, const struct kv_group *g, const void *key, size_t len)
{
	MDB_val k = {len, (void *)key};
	int rc = mdb_del(txn, g->meta, &k, NULL);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Walks the copies into g of an epoch below `epoch`: *unfinished when one is neither opened
 * nor dropped; with clear, the dropped ones are deleted (nothing of them is left, and their
 * ranges must not stay refused once a newer copy of them is opened here). */
static int older_copies(MDB_txn *txn, const struct kv_group *g, uint64_t epoch, bool clear,
			bool *unfinished)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, g->meta, &cur);
	if (rc != 0)
		return rc;
	uint8_t at[5] = {KV_META_INGEST};
	MDB_val k = {1, at}, v;
	*unfinished = false;
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && k.mv_size == 5 && ((const uint8_t *)k.mv_data)[0] == KV_META_INGEST) {
		struct kv_ingest_rec r;
		if ((rc = kv_ingest_rec_parse(v.mv_data, v.mv_size, &r)) != 0)
			break;
		bool older = r.epoch < epoch;
		uint8_t state = r.state;
		kv_ingest_rec_free(&r);
		if (older && state != KV_INGEST_OPEN && state != KV_INGEST_DROPPED)
			*unfinished = true;
		if (!(older && state == KV_INGEST_DROPPED && clear)) {
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
			continue;
		}
		memcpy(at, k.mv_data, 5);
		if ((rc = mdb_cursor_del(cur, 0)) != 0)
			break;
		at[0] = KV_META_DROP; /* its drop cursor too */
		if ((rc = meta_del(txn, g, at, 5)) != 0)
			break;
		at[0] = KV_META_INGEST;
		k.mv_size = 5;
		k.mv_data = at;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

int kv_handoff_older(MDB_txn *txn, const struct kv_group *g, uint64_t epoch, bool clear,
		     bool *refused)
{
	struct rset rel;
	bool over = true, unfinished = false;
	int rc = rset_get(txn, g, KV_META_RELEASE, &rel);
	bool older = rc == 0 && rel.n != 0 && rel.epoch < epoch;
	rset_free(&rel);
	if (rc == 0 && older)
		rc = drop_over(txn, g, 0, &over);
	if (rc == 0)
		rc = older_copies(txn, g, epoch, false, &unfinished);
	*refused = (older && !over) || unfinished;
	if (rc != 0 || !clear || *refused)
		return rc;
	uint8_t tag = KV_META_RELEASE, dk[5] = {KV_META_DROP};
	if (older && ((rc = meta_del(txn, g, &tag, 1)) != 0 || (rc = meta_del(txn, g, dk, 5)) != 0))
		return rc;
	if ((rc = older_copies(txn, g, epoch, true, &unfinished)) != 0)
		return rc;
	struct kv_fence f = {0};
	if ((rc = kv_fence_load(txn, g, &f)) != 0)
		return rc;
	tag = KV_META_FENCE;
	if (f.n != 0 && f.epoch < epoch)
		rc = meta_del(txn, g, &tag, 1);
	kv_fence_free(&f);
	return rc;
}

/* ---------------------------------------------------------------- the gate */

void kv_gate_free(struct kv_gate *gate)
{
	free(gate->ranges);
	memset(gate, 0, sizeof *gate);
}

static int gate_add(struct kv_gate *gate, const uint64_t *r, size_t n)
{
	if (n == 0)
		return 0;
	uint64_t *a = realloc(gate->ranges, 2 * (gate->n + n) * sizeof *a);
	if (a == NULL)
		return ENOMEM;
	memcpy(a + 2 * gate->n, r, 2 * n * sizeof *a);
	gate->ranges = a;
	gate->n += n;
	return 0;
}

int kv_gate_load(MDB_txn *txn, const struct kv_group *g, struct kv_gate *gate)
{
	kv_gate_free(gate);
	struct rset rel;
	int rc = rset_get(txn, g, KV_META_RELEASE, &rel);
	if (rc == 0)
		rc = gate_add(gate, rel.r, rel.n);
	rset_free(&rel);
	if (rc != 0)
		return rc;
	MDB_cursor *cur;
	if ((rc = mdb_cursor_open(txn, g->meta, &cur)) != 0)
		return rc;
	uint8_t tag = KV_META_INGEST;
	MDB_val k = {1, &tag}, v;
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && k.mv_size == 5 && ((const uint8_t *)k.mv_data)[0] == KV_META_INGEST) {
		/* an opened copy (the common record once moves are over) is skipped unparsed */
		if (kv_ingest_rec_state(v.mv_data, v.mv_size) != KV_INGEST_OPEN) {
			struct kv_ingest_rec r;
			if ((rc = kv_ingest_rec_parse(v.mv_data, v.mv_size, &r)) != 0)
				break;
			rc = gate_add(gate, r.ranges, r.n);
			kv_ingest_rec_free(&r);
		}
		if (rc == 0)
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

bool kv_gate_covers(const struct kv_gate *gate, const void *key, size_t len)
{
	return gate->n != 0 && kv_ranges_have(gate->ranges, gate->n, kv_ring_key_hash(key, len));
}

/* ---------------------------------------------------------------- key writes */

/* Reads k's stored expiry (*exists false when absent). A damaged record aborts the batch. */
static int old_expiry(const struct kv_handoff_ctx *h, MDB_txn *txn, MDB_val *k, bool *exists,
		      uint64_t *expire_at)
{
	MDB_val rec, value;
	*exists = false;
	*expire_at = 0;
	int rc = mdb_get(txn, h->g->data, k, &rec);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	if (kv_rec_check(h->kv, h->group, k, &rec, &value, expire_at) != KV_OK) {
		*h->err = KV_ECORRUPT;
		return KV_TXN_ABORT;
	}
	*exists = true;
	return 0;
}

int kv_handoff_store(const struct kv_handoff_ctx *h, MDB_txn *txn, MDB_val *k, const void *v,
		     size_t vl, uint64_t expire_at)
{
	bool exists;
	uint64_t was;
	int rc = old_expiry(h, txn, k, &exists, &was);
	if (rc == 0 && was != expire_at && was != 0)
		rc = kv_expiry_index_op(txn, h->g, k, was, false, h->expires);
	if (rc == 0 && was != expire_at && expire_at != 0)
		rc = kv_expiry_index_op(txn, h->g, k, expire_at, true, h->expires);
	if (rc == 0)
		rc = kv_rec_put(txn, h->g->data, k, v, vl, expire_at, 0);
	return rc;
}

/* ---------------------------------------------------------------- RELEASE */

static int release(const struct kv_handoff_ctx *h, MDB_txn *txn, const struct kv_cmd *c,
		   struct kv_result *res)
{
	struct rset want, fence, have;
	int rc = rset_parse(c->value, c->value_len, &want);
	if (rc != 0)
		return rc;
	if ((rc = rset_get(txn, h->g, KV_META_FENCE, &fence)) == 0)
		rc = rset_get(txn, h->g, KV_META_RELEASE, &have);
	if (rc != 0) {
		rset_free(&want);
		rset_free(&fence);
		return rc;
	}
	res->code = KV_OK;
	/* Only what is frozen can be released: otherwise the target's copy may be stale. */
	bool ok = fence.n != 0 && fence.epoch == want.epoch;
	for (size_t i = 0; ok && i < want.n; i++)
		ok = rset_has_pair(&fence, want.r[2 * i], want.r[2 * i + 1]);
	if (!ok || (have.n != 0 && want.epoch < have.epoch)) {
		res->code = KV_EINVAL;
		goto out;
	}
	if (have.n != 0 && want.epoch > have.epoch) {
		/* the older release's keys must be gone before it stops refusing them */
		bool over;
		if ((rc = drop_over(txn, h->g, 0, &over)) != 0)
			goto out;
		if (!over) {
			res->code = KV_EINVAL;
			goto out;
		}
	}
	bool added = false;
	if (have.n == 0 || want.epoch > have.epoch) {
		rset_free(&have);
		have = want;
		memset(&want, 0, sizeof want);
		added = true;
	} else {
		for (size_t i = 0; i < want.n; i++) {
			uint64_t lo = want.r[2 * i], hi = want.r[2 * i + 1];
			if (rset_has_pair(&have, lo, hi))
				continue;
			if (have.n == KV_RESHARD_RANGES_MAX) {
				res->code = KV_EINVAL;
				goto out;
			}
			uint64_t *a = realloc(have.r, 2 * (have.n + 1) * sizeof *a);
			if (a == NULL) {
				rc = ENOMEM;
				goto out;
			}
			a[2 * have.n] = lo;
			a[2 * have.n + 1] = hi;
			have.r = a;
			have.n++;
			added = true;
		}
	}
	if (added && (rc = rset_put(txn, h->g, KV_META_RELEASE, &have)) == 0) {
		/* new ranges: the drop pass of the released ranges starts over */
		uint8_t dk[5] = {KV_META_DROP, 0, 0, 0, 0};
		MDB_val k = {sizeof dk, dk};
		rc = mdb_del(txn, h->g->meta, &k, NULL);
		if (rc == MDB_NOTFOUND)
			rc = 0;
	}
out:
	rset_free(&want);
	rset_free(&fence);
	rset_free(&have);
	return rc;
}

/* ---------------------------------------------------------------- OPEN */

static int open_copy(const struct kv_handoff_ctx *h, MDB_txn *txn, const struct kv_cmd *c,
		     struct kv_result *res)
{
	const uint8_t *p = c->value;
	uint64_t epoch = kv_get_le64(p);
	uint32_t source = kv_get_le32(p + 8);
	struct kv_ingest_rec r;
	bool found;
	int rc = kv_ingest_rec_get(txn, h->g, source, &r, &found);
	if (rc != 0)
		return rc;
	res->code = KV_NOT_FOUND;
	if (found && r.epoch == epoch &&
	    (r.state == KV_INGEST_COMPLETE || r.state == KV_INGEST_OPEN)) {
		res->code = KV_OK;
		if (r.state == KV_INGEST_COMPLETE) {
			r.state = KV_INGEST_OPEN;
			rc = kv_ingest_rec_put(txn, h->g, source, &r);
		}
	}
	kv_ingest_rec_free(&r);
	return rc;
}

/* ---------------------------------------------------------------- DROP */

/* One step of a drop pass over the ranges: walks at most max keys after the cursor stored
 * under 'D' + source, deleting those in the ranges; *over when the pass reached the end. */
static int drop_step(const struct kv_handoff_ctx *h, MDB_txn *txn, uint32_t source,
		     const uint64_t *ranges, size_t n, uint32_t max, uint64_t *deleted, bool *over)
{
	uint8_t dk[5] = {KV_META_DROP};
	dk[1] = (uint8_t)(source >> 24);
	dk[2] = (uint8_t)(source >> 16);
	dk[3] = (uint8_t)(source >> 8);
	dk[4] = (uint8_t)source;
	MDB_val ck = {sizeof dk, dk}, cv;
	uint8_t resume[KV_KEY_MAX];
	size_t resume_len = 0;
	*deleted = 0;
	*over = false;
	int rc = mdb_get(txn, h->g->meta, &ck, &cv);
	if (rc == 0) {
		if (cv.mv_size < 1 || cv.mv_size > 1 + KV_KEY_MAX)
			return MDB_CORRUPTED;
		if (((const uint8_t *)cv.mv_data)[0]) {
			*over = true; /* a repeat after the pass: nothing left */
			return 0;
		}
		resume_len = cv.mv_size - 1;
		memcpy(resume, (const uint8_t *)cv.mv_data + 1, resume_len);
	} else if (rc != MDB_NOTFOUND) {
		return rc;
	}
	MDB_cursor *cur;
	if ((rc = mdb_cursor_open(txn, h->g->data, &cur)) != 0)
		return rc;
	MDB_val k = {resume_len, resume}, rec;
	rc = mdb_cursor_get(cur, &k, &rec, resume_len ? MDB_SET_RANGE : MDB_FIRST);
	if (rc == 0 && resume_len && k.mv_size == resume_len &&
	    memcmp(k.mv_data, resume, resume_len) == 0)
		rc = mdb_cursor_get(cur, &k, &rec, MDB_NEXT); /* walked last time */
	uint32_t walked = 0;
	while (rc == 0 && walked < max) {
		walked++;
		memcpy(resume, k.mv_data, k.mv_size);
		resume_len = k.mv_size;
		if (kv_ranges_have(ranges, n, kv_ring_key_hash(k.mv_data, k.mv_size))) {
			MDB_val value;
			uint64_t e;
			if (kv_rec_check(h->kv, h->group, &k, &rec, &value, &e) != KV_OK) {
				mdb_cursor_close(cur);
				*h->err = KV_ECORRUPT;
				return KV_TXN_ABORT;
			}
			/* a copy of the key: k points into the page the delete changes */
			MDB_val key = {resume_len, resume};
			if ((rc = mdb_cursor_del(cur, 0)) != 0)
				break;
			if (e != 0 &&
			    (rc = kv_expiry_index_op(txn, h->g, &key, e, false, h->expires)) != 0)
				break;
			(*deleted)++;
			/* the cursor now sits on the next key, or past the end */
			k.mv_size = resume_len;
			k.mv_data = resume;
			rc = mdb_cursor_get(cur, &k, &rec, MDB_SET_RANGE);
			continue;
		}
		rc = mdb_cursor_get(cur, &k, &rec, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	*over = rc == MDB_NOTFOUND;
	uint8_t val[1 + KV_KEY_MAX];
	val[0] = *over;
	memcpy(val + 1, resume, resume_len);
	MDB_val v = {1 + (*over ? 0 : resume_len), val};
	return mdb_put(txn, h->g->meta, &ck, &v, 0);
}

static int drop(const struct kv_handoff_ctx *h, MDB_txn *txn, const struct kv_cmd *c,
		struct kv_result *res)
{
	const uint8_t *p = c->value;
	uint64_t epoch = kv_get_le64(p), deleted = 0;
	uint32_t source = kv_get_le32(p + 8), max = kv_get_le32(p + 12);
	bool over = false;
	int rc;
	res->code = KV_EINVAL;
	if (source == 0) {
		struct rset rel;
		if ((rc = rset_get(txn, h->g, KV_META_RELEASE, &rel)) != 0)
			return rc;
		if (rel.n != 0 && rel.epoch == epoch) {
			rc = drop_step(h, txn, 0, rel.r, rel.n, max, &deleted, &over);
			res->code = over ? KV_NOT_FOUND : KV_OK;
		}
		rset_free(&rel);
	} else {
		struct kv_ingest_rec r;
		bool found;
		if ((rc = kv_ingest_rec_get(txn, h->g, source, &r, &found)) != 0)
			return rc;
		if (found && r.epoch == epoch && r.state != KV_INGEST_OPEN) {
			if (r.state == KV_INGEST_DROPPED) {
				over = true;
			} else {
				rc = drop_step(h, txn, source, r.ranges, r.n, max, &deleted, &over);
				uint8_t state = over ? KV_INGEST_DROPPED : KV_INGEST_DISCARDED;
				if (rc == 0 && state != r.state) {
					r.state = state;
					r.next = r.keys = r.dlo = r.dhi = 0;
					rc = kv_ingest_rec_put(txn, h->g, source, &r);
				}
			}
			res->code = over ? KV_NOT_FOUND : KV_OK;
		}
		kv_ingest_rec_free(&r);
	}
	if (rc == 0 && res->code != KV_EINVAL) {
		int len = snprintf(h->num, 24, "%llu", (unsigned long long)deleted);
		res->value = h->num;
		res->value_len = (size_t)len;
	}
	return rc;
}

int kv_handoff_apply(const struct kv_handoff_ctx *h, MDB_txn *txn, const struct kv_cmd *c,
		     struct kv_result *res)
{
	switch (c->op) {
	case KV_OP_INGEST:
		return kv_ingest_apply(h, txn, c, res);
	case KV_OP_RELEASE:
		return release(h, txn, c, res);
	case KV_OP_OPEN:
		return open_copy(h, txn, c, res);
	case KV_OP_DROP:
		return drop(h, txn, c, res);
	default:
		return EINVAL;
	}
}
