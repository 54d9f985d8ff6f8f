/* ingest.c — a frozen range copied from its source group into its target group through the
 * target's own log (handoff.h, KV_OP_INGEST): the reader that cuts the range into chunks at
 * the source, the digest both sides compute, and what the target does with each chunk.
 *
 * The target keeps one record per source (KV_META_INGEST + source): the copy's epoch, its
 * ranges, its state, and how far it got (the offset, the keys counted and their digest). A
 * chunk at or below that offset is applied again harmlessly, so the driver may resend after
 * any crash; the count and digest are checked when the last chunk applies, and a copy that
 * fails them is discarded and its keys dropped (handoff.c) before it may start again.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <xxhash.h>

#include "kv/handoff.h"
#include "kv/kv_int.h"
#include "kv/reshard.h"

#define REC_HEADER   45 /* u64 epoch | u8 state | u64 next | u64 keys | u64 lo | u64 hi | u32 n */
#define ITEM_KEY     'K'
#define ITEM_SESSION 'S'
#define ITEM_KEY_HDR 15 /* 'K' | u16 key_len | u32 value_len | u64 expiry */
#define ITEM_SESS_HDR                                                                              \
	31 /* 'S' | u64 client | u64 floor | u64 seq | u8 code | u8 found | u32 len                \
	    */
#define FLAG_LAST 1u

/* ---------------------------------------------------------------- the copy's record */

static void rec_key(uint8_t k[5], uint32_t source)
{
	k[0] = KV_META_INGEST;
	k[1] = (uint8_t)(source >> 24);
	k[2] = (uint8_t)(source >> 16);
	k[3] = (uint8_t)(source >> 8);
	k[4] = (uint8_t)source;
}

void kv_ingest_rec_free(struct kv_ingest_rec *r)
{
	free(r->ranges);
	memset(r, 0, sizeof *r);
}

int kv_ingest_rec_state(const uint8_t *p, size_t len)
{
	return len > 8 ? p[8] : -1;
}

int kv_ingest_rec_parse(const uint8_t *p, size_t len, struct kv_ingest_rec *r)
{
	memset(r, 0, sizeof *r);
	if (len < REC_HEADER + 16 || (len - REC_HEADER) % 16 != 0)
		return MDB_CORRUPTED;
	size_t n = kv_get_le32(p + 41);
	if (n == 0 || n > KV_RESHARD_RANGES_MAX || n != (len - REC_HEADER) / 16 || p[8] < 1 ||
	    p[8] > KV_INGEST_DROPPED)
		return MDB_CORRUPTED;
	if ((r->ranges = malloc(2 * n * sizeof *r->ranges)) == NULL)
		return ENOMEM;
	for (size_t i = 0; i < 2 * n; i++)
		r->ranges[i] = kv_get_le64(p + REC_HEADER + 8 * i);
	r->n = n;
	r->epoch = kv_get_le64(p);
	r->state = p[8];
	r->next = kv_get_le64(p + 9);
	r->keys = kv_get_le64(p + 17);
	r->dlo = kv_get_le64(p + 25);
	r->dhi = kv_get_le64(p + 33);
	return 0;
}

int kv_ingest_rec_get(MDB_txn *txn, const struct kv_group *g, uint32_t source,
		      struct kv_ingest_rec *r, bool *found)
{
	uint8_t kb[5];
	rec_key(kb, source);
	MDB_val k = {sizeof kb, kb}, v;
	memset(r, 0, sizeof *r);
	int rc = mdb_get(txn, g->meta, &k, &v);
	*found = rc == 0;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	return kv_ingest_rec_parse(v.mv_data, v.mv_size, r);
}

int kv_ingest_rec_put(MDB_txn *txn, const struct kv_group *g, uint32_t source,
		      const struct kv_ingest_rec *r)
{
	assert(r->n >= 1 && r->n <= KV_RESHARD_RANGES_MAX);
	uint8_t kb[5];
	rec_key(kb, source);
	MDB_val k = {sizeof kb, kb}, v = {REC_HEADER + 16 * r->n, NULL};
	int rc = mdb_put(txn, g->meta, &k, &v, MDB_RESERVE);
	if (rc != 0)
		return rc;
	uint8_t *p = v.mv_data;
	kv_put_le64(p, r->epoch);
	p[8] = r->state;
	kv_put_le64(p + 9, r->next);
	kv_put_le64(p + 17, r->keys);
	kv_put_le64(p + 25, r->dlo);
	kv_put_le64(p + 33, r->dhi);
	kv_put_le32(p + 41, (uint32_t)r->n);
	for (size_t i = 0; i < 2 * r->n; i++)
		kv_put_le64(p + REC_HEADER + 8 * i, r->ranges[i]);
	return 0;
}

/* ---------------------------------------------------------------- chunks */

struct chunk {
	uint64_t epoch, offset, keys, dlo, dhi;
	uint32_t source, n_items;
	size_t n_ranges;
	bool last;
	const uint8_t *ranges, *items;
	size_t items_len;
};

struct item {
	uint8_t kind;
	const uint8_t *key, *value;
	size_t key_len, value_len;
	uint64_t expire_at;
	uint64_t client, floor, seq;
	int code;
	bool found;
};

/* The next item of a chunk: 1 (*it set), 0 at the end, -1 when malformed. */
static int item_next(const uint8_t *p, size_t len, size_t *off, struct item *it)
{
	if (*off == len)
		return 0;
	size_t left = len - *off;
	const uint8_t *q = p + *off;
	memset(it, 0, sizeof *it);
	it->kind = q[0];
	if (it->kind == ITEM_KEY) {
		if (left < ITEM_KEY_HDR)
			return -1;
		it->key_len = (size_t)q[1] | (size_t)q[2] << 8;
		it->value_len = kv_get_le32(q + 3);
		it->expire_at = kv_get_le64(q + 7);
		if (it->key_len == 0 || it->key_len > KV_KEY_MAX ||
		    it->value_len > KV_VALUE_MAX_HARD ||
		    (uint64_t)ITEM_KEY_HDR + it->key_len + it->value_len > left)
			return -1;
		it->key = q + ITEM_KEY_HDR;
		it->value = it->key + it->key_len;
		*off += ITEM_KEY_HDR + it->key_len + it->value_len;
		return 1;
	}
	if (it->kind != ITEM_SESSION || left < ITEM_SESS_HDR)
		return -1;
	it->client = kv_get_le64(q + 1);
	it->floor = kv_get_le64(q + 9);
	it->seq = kv_get_le64(q + 17);
	it->code = (int8_t)q[25];
	it->found = q[26] != 0;
	it->value_len = kv_get_le32(q + 27);
	if (it->client == 0 || q[26] > 1 || it->value_len > KV_VALUE_MAX_HARD ||
	    (uint64_t)ITEM_SESS_HDR + it->value_len > left)
		return -1;
	if (it->seq == 0 ? it->code != 0 || it->found || it->value_len != 0 : it->seq <= it->floor)
		return -1;
	it->value = q + ITEM_SESS_HDR;
	*off += ITEM_SESS_HDR + it->value_len;
	return 1;
}

static bool chunk_parse(const uint8_t *p, size_t len, struct chunk *c)
{
	memset(c, 0, sizeof *c);
	if (p == NULL || len < KV_INGEST_HEADER)
		return false;
	c->epoch = kv_get_le64(p);
	c->source = kv_get_le32(p + 8);
	c->n_ranges = kv_get_le32(p + 12);
	c->offset = kv_get_le64(p + 16);
	c->n_items = kv_get_le32(p + 24);
	uint32_t flags = kv_get_le32(p + 28);
	c->last = flags & FLAG_LAST;
	c->keys = kv_get_le64(p + 32);
	c->dlo = kv_get_le64(p + 40);
	c->dhi = kv_get_le64(p + 48);
	if (c->epoch == 0 || c->source == 0 || (flags & ~FLAG_LAST) ||
	    c->n_ranges > KV_RESHARD_RANGES_MAX || (c->offset == 0) != (c->n_ranges != 0) ||
	    (!c->last && (c->keys || c->dlo || c->dhi)) || (c->n_items == 0 && !c->last) ||
	    (uint64_t)c->n_ranges * 16 > len - KV_INGEST_HEADER)
		return false;
	c->ranges = p + KV_INGEST_HEADER;
	c->items = c->ranges + 16 * c->n_ranges;
	c->items_len = len - KV_INGEST_HEADER - 16 * c->n_ranges;
	size_t off = 0, n = 0;
	struct item it;
	int r;
	while ((r = item_next(c->items, c->items_len, &off, &it)) == 1)
		n++;
	return r == 0 && n == c->n_items;
}

bool kv_ingest_value_ok(const uint8_t *p, size_t len)
{
	struct chunk c;
	return chunk_parse(p, len, &c);
}

/* ---------------------------------------------------------------- the digest */

struct digest {
	XXH3_state_t *st;
	uint64_t lo, hi;
};

static void digest_add(struct digest *d, const void *key, size_t kl, const void *v, size_t vl,
		       uint64_t expire_at)
{
	uint8_t b[8];
	XXH3_128bits_reset(d->st);
	kv_put_le32(b, (uint32_t)kl);
	XXH3_128bits_update(d->st, b, 4);
	XXH3_128bits_update(d->st, key, kl);
	kv_put_le32(b, (uint32_t)vl);
	XXH3_128bits_update(d->st, b, 4);
	XXH3_128bits_update(d->st, v, vl);
	kv_put_le64(b, expire_at);
	XXH3_128bits_update(d->st, b, 8);
	XXH128_hash_t h = XXH3_128bits_digest(d->st);
	d->lo += h.low64;
	d->hi += h.high64 + (d->lo < h.low64);
}

static void digest_out(const struct digest *d, uint8_t out[KV_RANGE_DIGEST_BYTES])
{
	kv_put_le64(out, d->lo);
	kv_put_le64(out + 8, d->hi);
}

/* ---------------------------------------------------------------- INGEST at the target */

static bool same_ranges(const struct kv_ingest_rec *r, const struct chunk *c)
{
	if (r->n != c->n_ranges)
		return false;
	for (size_t i = 0; i < 2 * r->n; i++)
		if (r->ranges[i] != kv_get_le64(c->ranges + 8 * i))
			return false;
	return true;
}

/* Writes the chunk's items: keys at positions from r->next on are counted into r. */
static int ingest_items(const struct kv_handoff_ctx *h, MDB_txn *txn, const struct chunk *c,
			struct kv_ingest_rec *r)
{
	struct digest d = {.st = XXH3_createState(), .lo = r->dlo, .hi = r->dhi};
	if (d.st == NULL)
		return ENOMEM;
	size_t off = 0;
	uint64_t pos = c->offset, counted = r->next;
	struct item it;
	int rc = 0;
	while (rc == 0 && item_next(c->items, c->items_len, &off, &it) == 1) {
		if (it.kind == ITEM_KEY) {
			MDB_val k = {it.key_len, (void *)it.key};
			rc = kv_handoff_store(h, txn, &k, it.value, it.value_len, it.expire_at);
			if (rc == 0 && pos >= counted) {
				digest_add(&d, it.key, it.key_len, it.value, it.value_len,
					   it.expire_at);
				r->keys++;
			}
		} else {
			struct kv_result res = {.code = it.code,
						.found = it.found,
						.value = it.value_len ? it.value : NULL,
						.value_len = it.value_len};
			rc = kv_session_merge(h->kv, txn, h->g, it.client, it.floor, it.seq, &res,
					      h->index);
		}
		pos++;
	}
	XXH3_freeState(d.st);
	r->dlo = d.lo;
	r->dhi = d.hi;
	if (pos > r->next)
		r->next = pos;
	return rc;
}

static void answer(const struct kv_handoff_ctx *h, struct kv_result *res, int code, uint64_t next)
{
	int len = snprintf(h->num, 24, "%llu", (unsigned long long)next);
	res->code = code;
	res->value = h->num;
	res->value_len = (size_t)len;
}

int kv_ingest_apply(const struct kv_handoff_ctx *h, MDB_txn *txn, const struct kv_cmd *c,
		    struct kv_result *res)
{
	struct chunk ch;
	bool ok = chunk_parse(c->value, c->value_len, &ch);
	assert(ok); /* kv_cmd_decode checked it */
	(void)ok;
	struct kv_ingest_rec r;
	bool found, fresh = false;
	int rc = kv_ingest_rec_get(txn, h->g, ch.source, &r, &found);
	if (rc != 0)
		return rc;
	res->code = KV_EINVAL;
	if (ch.source == h->group) {
		goto out; /* a group does not copy from itself: it would stop serving its own keys
			   */
	} else if (!found) {
		fresh = true;
	} else if (ch.epoch < r.epoch) {
		goto out; /* a copy of a change that is over */
	} else if (ch.epoch > r.epoch) {
		/* a newer change: only once the older copy is served or gone */
		if (r.state != KV_INGEST_OPEN && r.state != KV_INGEST_DROPPED)
			goto out;
		fresh = true;
	} else if (r.state == KV_INGEST_COMPLETE) {
		answer(h, res, KV_OK, r.next);
		res->found = true; /* nothing written: the copy is in */
		goto out;
	} else if (r.state == KV_INGEST_OPEN || r.state == KV_INGEST_DISCARDED) {
		goto out; /* served keys may have changed since; or drop it first */
	} else if (r.state == KV_INGEST_DROPPED) {
		fresh = true; /* copied again from the start */
	}
	if (fresh && ch.offset != 0) {
		answer(h, res, KV_CAS_MISMATCH, 0);
		goto out;
	}
	if (!fresh && ch.offset > r.next) {
		answer(h, res, KV_CAS_MISMATCH, r.next); /* a gap: resend from r.next */
		goto out;
	}
	if (fresh) {
		uint64_t *ranges = malloc(2 * ch.n_ranges * sizeof *ranges);
		if (ranges == NULL) {
			rc = ENOMEM;
			goto out;
		}
		kv_ingest_rec_free(&r);
		for (size_t i = 0; i < 2 * ch.n_ranges; i++)
			ranges[i] = kv_get_le64(ch.ranges + 8 * i);
		r.epoch = ch.epoch;
		r.state = KV_INGEST_COPYING;
		r.n = ch.n_ranges;
		r.ranges = ranges;
	} else if (ch.n_ranges != 0 && !same_ranges(&r, &ch)) {
		goto out; /* not this copy */
	}
	/* Every key must belong to the copy's ranges, and an older change must be cleared up
	 * here: checked before anything is written. */
	size_t off = 0;
	struct item it;
	while (item_next(ch.items, ch.items_len, &off, &it) == 1)
		if (it.kind == ITEM_KEY &&
		    !kv_ranges_have(r.ranges, r.n, kv_ring_key_hash(it.key, it.key_len)))
			goto out;
	bool refused = false;
	if (fresh &&
	    ((rc = kv_handoff_older(txn, h->g, ch.epoch, false, &refused)) != 0 || refused))
		goto out;
	if (fresh && (rc = kv_handoff_older(txn, h->g, ch.epoch, true, &refused)) != 0)
		goto out;
	if (fresh) {
		/* the drop pass of an earlier discarded copy, if any, is over */
		uint8_t dk[5];
		rec_key(dk, ch.source);
		dk[0] = KV_META_DROP;
		MDB_val k = {sizeof dk, dk};
		rc = mdb_del(txn, h->g->meta, &k, NULL);
		if (rc != 0 && rc != MDB_NOTFOUND)
			goto out;
		rc = 0;
	}
	if ((rc = ingest_items(h, txn, &ch, &r)) != 0)
		goto out;
	answer(h, res, KV_OK, r.next);
	if (ch.last) {
		if (r.keys == ch.keys && r.dlo == ch.dlo && r.dhi == ch.dhi) {
			r.state = KV_INGEST_COMPLETE;
			res->found = true;
		} else {
			/* Something was lost or changed on the way: throw the copy away. Its
			 * keys stay (refused) until DROP removes them. */
			r.state = KV_INGEST_DISCARDED;
			r.next = r.keys = r.dlo = r.dhi = 0;
			answer(h, res, KV_DISCARDED, 0);
		}
	}
	rc = kv_ingest_rec_put(txn, h->g, ch.source, &r);
out:
	kv_ingest_rec_free(&r);
	return rc;
}

/* ---------------------------------------------------------------- the source's reader */

enum copy_phase { CP_KEYS, CP_SESSIONS, CP_DONE };

struct kv_copy {
	struct kv *kv;
	uint32_t group;
	uint64_t epoch;
	size_t n;
	uint64_t *ranges; /* n pairs, owned */
	size_t chunk_bytes;
	uint64_t from, pos;
	uint64_t keys;
	struct digest d;
	enum copy_phase phase;
	bool ended; /* the last chunk was handed out */
	/* where the reading stopped: the last data key read, the last session item read */
	uint8_t key[KV_KEY_MAX];
	size_t key_len;
	bool in_client; /* inside a client's session: client, seq = its last item */
	uint64_t client, seq;
	/* the chunk being built: items only; the header goes in front at the end */
	uint8_t *buf;
	size_t len, cap;
	uint32_t n_items;
	uint64_t offset;
};

int kv_copy_begin(struct kv *kv, uint32_t group, uint64_t epoch, const struct kv_ring_range *ranges,
		  size_t n, uint64_t from_offset, size_t chunk_bytes, struct kv_copy **out)
{
	if (n == 0 || n > KV_RESHARD_RANGES_MAX || ranges == NULL || epoch == 0)
		return KV_EINVAL;
	struct kv_group *g;
	int err = kv_group_get(kv, group, &g);
	if (err != KV_OK)
		return err;
	struct kv_copy *c = calloc(1, sizeof *c);
	if (c == NULL)
		return KV_ENOMEM;
	c->ranges = malloc(2 * n * sizeof *c->ranges);
	c->d.st = XXH3_createState();
	if (c->ranges == NULL || c->d.st == NULL) {
		kv_copy_end(c);
		return KV_ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		c->ranges[2 * i] = ranges[i].lo;
		c->ranges[2 * i + 1] = ranges[i].hi;
	}
	c->kv = kv;
	c->group = group;
	c->epoch = epoch;
	c->n = n;
	c->from = from_offset;
	c->chunk_bytes = chunk_bytes == 0 || chunk_bytes > KV_SNAPSHOT_CHUNK_DEFAULT
				 ? KV_SNAPSHOT_CHUNK_DEFAULT
				 : chunk_bytes;
	*out = c;
	return KV_OK;
}

uint64_t kv_copy_offset(const struct kv_copy *c)
{
	return c->pos;
}

void kv_copy_end(struct kv_copy *c)
{
	if (c == NULL)
		return;
	free(c->ranges);
	free(c->buf);
	XXH3_freeState(c->d.st);
	free(c);
}

static size_t chunk_size(const struct kv_copy *c)
{
	return KV_INGEST_HEADER + (c->offset == 0 ? 16 * c->n : 0) + c->len;
}

/* Room for an item of `size` bytes: false when the chunk is full (an item always fits into an
 * empty chunk). */
static int room(struct kv_copy *c, size_t size, bool *fits)
{
	if (c->n_items == 0)
		c->offset = c->pos;
	*fits = c->n_items == 0 || chunk_size(c) + size <= c->chunk_bytes;
	if (!*fits)
		return KV_OK;
	if (c->len + size > c->cap) {
		size_t cap = c->cap ? c->cap : 4096;
		while (cap < c->len + size)
			cap *= 2;
		uint8_t *b = realloc(c->buf, cap);
		if (b == NULL)
			return KV_ENOMEM;
		c->buf = b;
		c->cap = cap;
	}
	return KV_OK;
}

/* The range's keys after c->key. */
static int read_keys(struct kv_copy *c, MDB_txn *txn, const struct kv_group *g, bool *full)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, g->data, &cur);
	if (rc != 0)
		return KV_EIO;
	MDB_val k = {c->key_len, c->key}, rec, v;
	rc = mdb_cursor_get(cur, &k, &rec, c->key_len ? MDB_SET_RANGE : MDB_FIRST);
	if (rc == 0 && c->key_len && k.mv_size == c->key_len &&
	    memcmp(k.mv_data, c->key, c->key_len) == 0)
		rc = mdb_cursor_get(cur, &k, &rec, MDB_NEXT);
	int err = KV_OK;
	for (; rc == 0; rc = mdb_cursor_get(cur, &k, &rec, MDB_NEXT)) {
		if (!kv_ranges_have(c->ranges, c->n, kv_ring_key_hash(k.mv_data, k.mv_size)))
			continue;
		uint64_t e;
		if ((err = kv_rec_check(c->kv, c->group, &k, &rec, &v, &e)) != KV_OK)
			break;
		size_t size = ITEM_KEY_HDR + k.mv_size + v.mv_size;
		bool send = c->pos >= c->from, fits = true;
		if (send && ((err = room(c, size, &fits)) != KV_OK || !fits)) {
			*full = !fits;
			break;
		}
		if (send) {
			uint8_t *q = c->buf + c->len;
			q[0] = ITEM_KEY;
			q[1] = (uint8_t)k.mv_size;
			q[2] = (uint8_t)(k.mv_size >> 8);
			kv_put_le32(q + 3, (uint32_t)v.mv_size);
			kv_put_le64(q + 7, e);
			memcpy(q + ITEM_KEY_HDR, k.mv_data, k.mv_size);
			if (v.mv_size)
				memcpy(q + ITEM_KEY_HDR + k.mv_size, v.mv_data, v.mv_size);
			c->len += size;
			c->n_items++;
		}
		digest_add(&c->d, k.mv_data, k.mv_size, v.mv_data, v.mv_size, e);
		c->keys++;
		c->pos++;
		memcpy(c->key, k.mv_data, k.mv_size);
		c->key_len = k.mv_size;
	}
	mdb_cursor_close(cur);
	if (err != KV_OK)
		return err;
	if (rc != 0 && rc != MDB_NOTFOUND) {
		kv_log_mdb(c->group, "copy_read", rc);
		return KV_EIO;
	}
	if (rc == MDB_NOTFOUND)
		c->phase = CP_SESSIONS; /* an offset inside the sessions starts them again */
	return KV_OK;
}

static int put_session_item(struct kv_copy *c, uint64_t client, uint64_t floor, uint64_t seq,
			    const uint8_t *res, size_t res_len, bool *full)
{
	size_t vl = seq ? res_len - 2 : 0, size = ITEM_SESS_HDR + vl;
	bool fits;
	int err = room(c, size, &fits);
	if (err != KV_OK || !fits) {
		*full = !fits;
		return err;
	}
	uint8_t *q = c->buf + c->len;
	q[0] = ITEM_SESSION;
	kv_put_le64(q + 1, client);
	kv_put_le64(q + 9, floor);
	kv_put_le64(q + 17, seq);
	q[25] = seq ? res[0] : 0;
	q[26] = seq ? res[1] != 0 : 0;
	kv_put_le32(q + 27, (uint32_t)vl);
	if (vl)
		memcpy(q + ITEM_SESS_HDR, res + 2, vl);
	c->len += size;
	c->n_items++;
	c->pos++;
	c->client = client;
	c->seq = seq;
	return KV_OK;
}

/* The sessions after (c->client, c->seq), each its floor then its results (session.c's
 * layout: S + client -> last, floor, count; R + client + seq -> code, found, value). */
static int read_sessions(struct kv_copy *c, MDB_txn *txn, const struct kv_group *g, bool *full)
{
	raft_index applied;
	raft_term term;
	int rc = kv_applied_get(txn, g, &applied, &term);
	MDB_cursor *cur = NULL;
	if (rc == 0)
		rc = mdb_cursor_open(txn, g->meta, &cur);
	if (rc != 0) {
		kv_log_mdb(c->group, "copy_read", rc);
		return KV_EIO;
	}
	int err = KV_OK;
	while (err == KV_OK && !*full) {
		uint8_t kb[17];
		MDB_val k, v;
		/* the session: c->client's again when inside it, else the next one */
		if (!c->in_client && c->client == UINT64_MAX) {
			c->phase = CP_DONE;
			break;
		}
		kb[0] = KV_META_SESSION;
		kv_put_be64(kb + 1, c->in_client ? c->client : c->client + 1);
		k.mv_size = 9;
		k.mv_data = kb;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc == MDB_NOTFOUND ||
		    (rc == 0 && (k.mv_size != 9 || ((uint8_t *)k.mv_data)[0] != KV_META_SESSION))) {
			rc = 0;
			c->phase = CP_DONE;
			break;
		}
		if (rc == 0 && v.mv_size != 20)
			rc = MDB_CORRUPTED; /* session.c writes 20 bytes */
		if (rc != 0)
			break;
		uint64_t client = kv_get_be64((uint8_t *)k.mv_data + 1);
		const uint8_t *sv = v.mv_data;
		uint64_t last = kv_get_be64(sv), floor = kv_get_be64(sv + 8);
		if (c->in_client && client != c->client) {
			c->in_client = false; /* ours went away meanwhile: on to the next */
			c->seq = 0;
		}
		if (applied >= last && applied - last >= c->kv->opt.session_ttl_entries) {
			c->client = client; /* expired: treated as absent, not sent */
			c->in_client = false;
			c->seq = 0;
			continue;
		}
		if (!c->in_client) {
			if ((err = put_session_item(c, client, floor, 0, NULL, 0, full)) != KV_OK ||
			    *full)
				break;
			c->in_client = true;
		}
		/* its results after c->seq */
		kb[0] = KV_META_RESULT;
		kv_put_be64(kb + 1, client);
		kv_put_be64(kb + 9, c->seq + 1);
		k.mv_size = 17;
		k.mv_data = kb;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		while (rc == 0 && k.mv_size == 17 && memcmp(k.mv_data, kb, 9) == 0) {
			uint64_t seq = kv_get_be64((uint8_t *)k.mv_data + 9);
			if (v.mv_size < 2) {
				rc = MDB_CORRUPTED;
				break;
			}
			if (seq > floor &&
			    ((err = put_session_item(c, client, floor, seq, v.mv_data, v.mv_size,
						     full)) != KV_OK ||
			     *full))
				break;
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
		}
		if (err != KV_OK || *full)
			break;
		if (rc != 0 && rc != MDB_NOTFOUND)
			break;
		rc = 0;
		c->in_client = false; /* this client is done */
		c->seq = 0;
	}
	mdb_cursor_close(cur);
	if (err == KV_OK && rc != 0) {
		kv_log_mdb(c->group, "copy_read", rc);
		err = KV_EIO;
	}
	return err;
}

/* Whether the group's fence of the copy's epoch holds every range of the copy. */
static int frozen(struct kv_copy *c, MDB_txn *txn, const struct kv_group *g, bool *yes)
{
	struct kv_fence f = {0};
	int rc = kv_fence_load(txn, g, &f);
	if (rc != 0)
		return rc;
	*yes = f.n != 0 && f.epoch == c->epoch;
	for (size_t i = 0; *yes && i < c->n; i++) {
		bool have = false;
		for (size_t j = 0; j < f.n && !have; j++)
			have = f.ranges[2 * j] == c->ranges[2 * i] &&
			       f.ranges[2 * j + 1] == c->ranges[2 * i + 1];
		*yes = have;
	}
	kv_fence_free(&f);
	return 0;
}

int kv_copy_next(struct kv_copy *c, uint8_t **value, size_t *len, bool *last)
{
	*value = NULL;
	*len = 0;
	*last = false;
	if (c->ended)
		return KV_NOT_FOUND;
	struct kv_group *g;
	int err = kv_group_get(c->kv, c->group, &g);
	if (err != KV_OK)
		return err;
	MDB_txn *txn;
	if ((err = kv_read_begin(c->kv, &txn)) != KV_OK)
		return err;
	bool yes, full = false;
	int rc = frozen(c, txn, g, &yes);
	if (rc != 0) {
		kv_log_mdb(c->group, "copy_read", rc);
		err = rc == ENOMEM ? KV_ENOMEM : KV_EIO;
	} else if (!yes) {
		err = KV_EINVAL;
	}
	c->len = 0;
	c->n_items = 0;
	c->offset = c->pos;
	/* on a failure the reading position may have moved: the caller ends this copy */
	if (err == KV_OK && c->phase == CP_KEYS)
		err = read_keys(c, txn, g, &full);
	if (err == KV_OK && !full && c->phase == CP_SESSIONS)
		err = read_sessions(c, txn, g, &full);
	mdb_txn_abort(txn);
	if (err != KV_OK)
		return err;
	if (c->n_items == 0)
		c->offset = c->pos;
	bool done = c->phase == CP_DONE;
	size_t ranges = c->offset == 0 ? c->n : 0, sz = chunk_size(c);
	uint8_t *p = malloc(sz);
	if (p == NULL)
		return KV_ENOMEM;
	kv_put_le64(p, c->epoch);
	kv_put_le32(p + 8, c->group);
	kv_put_le32(p + 12, (uint32_t)ranges);
	kv_put_le64(p + 16, c->offset);
	kv_put_le32(p + 24, c->n_items);
	kv_put_le32(p + 28, done ? FLAG_LAST : 0);
	memset(p + 32, 0, 24);
	if (done) {
		kv_put_le64(p + 32, c->keys);
		digest_out(&c->d, p + 40);
	}
	for (size_t i = 0; i < 2 * ranges; i++)
		kv_put_le64(p + KV_INGEST_HEADER + 8 * i, c->ranges[i]);
	if (c->len)
		memcpy(p + KV_INGEST_HEADER + 16 * ranges, c->buf, c->len);
	c->ended = done;
	*value = p;
	*len = sz;
	*last = done;
	return KV_OK;
}

int kv_range_digest(struct kv *kv, uint32_t group, const struct kv_ring_range *ranges, size_t n,
		    uint64_t *keys, uint8_t out[KV_RANGE_DIGEST_BYTES])
{
	struct kv_group *g;
	int err = kv_group_get(kv, group, &g);
	if (err != KV_OK)
		return err;
	struct digest d = {.st = XXH3_createState()};
	if (d.st == NULL)
		return KV_ENOMEM;
	MDB_txn *txn;
	if ((err = kv_read_begin(kv, &txn)) != KV_OK) {
		XXH3_freeState(d.st);
		return err;
	}
	*keys = 0;
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, g->data, &cur);
	MDB_val k, rec, v;
	if (rc == 0) {
		rc = mdb_cursor_get(cur, &k, &rec, MDB_FIRST);
		for (; rc == 0; rc = mdb_cursor_get(cur, &k, &rec, MDB_NEXT)) {
			uint64_t h = kv_ring_key_hash(k.mv_data, k.mv_size), e;
			bool in = false;
			for (size_t i = 0; i < n && !in; i++)
				in = kv_ring_range_has(&ranges[i], h);
			if (!in)
				continue;
			if ((err = kv_rec_check(kv, group, &k, &rec, &v, &e)) != KV_OK)
				break;
			digest_add(&d, k.mv_data, k.mv_size, v.mv_data, v.mv_size, e);
			(*keys)++;
		}
		mdb_cursor_close(cur);
	}
	mdb_txn_abort(txn);
	XXH3_freeState(d.st);
	if (err != KV_OK)
		return err;
	if (rc != MDB_NOTFOUND) {
		kv_log_mdb(group, "range_digest", rc);
		return KV_EIO;
	}
	digest_out(&d, out);
	return KV_OK;
}
