/* apply.c — applying a batch of committed entries of one group in one write transaction
 * (DESIGN.md section 5): skip what is already applied, run each command through its client
 * session (exactly-once, Raft thesis 6.3), record the applied index/term and configuration in
 * the same transaction, and only then hand out the results. Expiry (kv.h): each command is
 * judged at the time it carries (never this machine's clock), and the expiry index in the meta
 * DBI follows every store and delete so that the leader finds due keys without a full scan.
 *
 * Results wait in a buffer until the commit: a batch that fails (or is retried after the map
 * grew) never answered anyone. Apply is deterministic: it reads nothing but the entries and
 * the replicated state (no clock, no per-node configuration).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>

#include "kv/kv_int.h"

#define GC_BUDGET 16 /* expired sessions removed per batch; O(budget log n) per batch */

struct batch {
	struct kv *kv;
	struct kv_group *g;
	uint32_t group;
	const struct raft_entry *entries;
	size_t n;
	const struct raft_conf *conf;
	size_t n_pend, arena_len;
	int err;      /* a kv error found inside the transaction, which is then aborted (a gap, a
		       * damaged value) */
	uint8_t *tmp; /* an entry's result bytes that must outlive its writes (freed per entry) */
	char num[24]; /* an entry's decimal result (INCRBY, MDEL) */
	uint64_t clock, clock0;     /* the group's clock: now, and at the start of the batch */
	uint64_t now;               /* the entry's time: max(its now_ms, the group's clock) */
	uint64_t expires, expires0; /* keys with an expiry: now, and at the start */
	struct kv_fence fence;      /* the group's resharding fence (fence.c), kept current */
	struct kv_gate gate;        /* what the group does not serve (handoff.c), kept current */
	raft_index index;           /* the entry being applied */
};

/* Redis's rule for a stored integer (string2ll): optional '-', no leading zeros, no '+', no
 * spaces, fits an int64. */
static bool parse_i64(const uint8_t *p, size_t len, int64_t *out)
{
	if (len == 0 || len > 20)
		return false;
	bool neg = p[0] == '-';
	size_t i = neg ? 1 : 0;
	if (i == len || p[i] < '0' || p[i] > '9' || (p[i] == '0' && (len > i + 1 || neg)))
		return false;
	uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		unsigned d = (unsigned)(p[i] - '0');
		if (v > (lim - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return true;
}

/* A key's current state inside the batch's transaction. */
struct cur {
	bool exists;        /* stored (expired or not) */
	bool live;          /* stored and not expired at the command's time */
	MDB_val value;      /* live: points into the map, valid until the next write */
	uint64_t expire_at; /* exists: its expiry (0 = none) */
};

/* Reads the current state of k (checked). A damaged value aborts the batch (b->err). */
static int load(struct batch *b, MDB_txn *txn, MDB_val *k, struct cur *c)
{
	MDB_val rec;
	memset(c, 0, sizeof *c);
	int rc = mdb_get(txn, b->g->data, k, &rec);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	if (kv_rec_check(b->kv, b->group, k, &rec, &c->value, &c->expire_at) != KV_OK) {
		b->err = KV_ECORRUPT;
		return KV_TXN_ABORT;
	}
	c->exists = true;
	c->live = !kv_expired_at(c->expire_at, b->now);
	return 0;
}

/* The expiry index (KV_META_EXPIRY): one record per key with an expiry. */
int kv_expiry_index_op(MDB_txn *txn, const struct kv_group *g, const MDB_val *k, uint64_t expire_at,
		       bool add, uint64_t *expires)
{
	uint8_t buf[KV_META_EXPIRY_KEY_MAX];
	buf[0] = KV_META_EXPIRY;
	kv_put_be64(buf + 1, expire_at);
	memcpy(buf + 9, k->mv_data, k->mv_size);
	MDB_val ik = {9 + k->mv_size, buf}, empty = {0, buf};
	int rc = add ? mdb_put(txn, g->meta, &ik, &empty, 0) : mdb_del(txn, g->meta, &ik, NULL);
	if (rc == 0 && add)
		(*expires)++;
	else if (rc == 0 && *expires > 0)
		(*expires)--;
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int index_op(struct batch *b, MDB_txn *txn, const MDB_val *k, uint64_t expire_at, bool add)
{
	return kv_expiry_index_op(txn, b->g, k, expire_at, add, &b->expires);
}

/* Stores k -> (v, vl, expire_at) over what old says was there, keeping the expiry index. v must
 * not point into the map. */
static int store(struct batch *b, MDB_txn *txn, MDB_val *k, const void *v, size_t vl,
		 uint64_t expire_at, const struct cur *old)
{
	uint64_t was = old->exists ? old->expire_at : 0;
	int rc = 0;
	if (was != expire_at && was != 0)
		rc = index_op(b, txn, k, was, false);
	if (rc == 0 && was != expire_at && expire_at != 0)
		rc = index_op(b, txn, k, expire_at, true);
	if (rc == 0)
		rc = kv_rec_put(txn, b->g->data, k, v, vl, expire_at, 0);
	return rc;
}

/* Deletes k (stored, as old says), with its index record. */
static int erase(struct batch *b, MDB_txn *txn, MDB_val *k, const struct cur *old)
{
	int rc = old->expire_at ? index_op(b, txn, k, old->expire_at, false) : 0;
	return rc ? rc : mdb_del(txn, b->g->data, k, NULL);
}

/* Copies the live value into b->tmp (a write that follows may move its page). */
static int copy_value(struct batch *b, struct cur *c)
{
	if (!c->live || c->value.mv_size == 0)
		return 0;
	if ((b->tmp = malloc(c->value.mv_size)) == NULL)
		return ENOMEM;
	memcpy(b->tmp, c->value.mv_data, c->value.mv_size);
	c->value.mv_data = b->tmp;
	return 0;
}

/* The previous (live) value into res, copied first (see copy_value). */
static int keep_old(struct batch *b, struct cur *c, struct kv_result *res)
{
	int rc = copy_value(b, c);
	res->found = c->live;
	if (rc == 0 && c->live && c->value.mv_size) {
		res->value = c->value.mv_data;
		res->value_len = c->value.mv_size;
	}
	return rc;
}

static int pend_add(struct batch *b, size_t entry, const struct kv_result *res)
{
	struct kv *kv = b->kv;
	if (b->n_pend == kv->pend_cap) {
		size_t cap = kv->pend_cap ? kv->pend_cap * 2 : 64;
		struct kv_pending *p = realloc(kv->pend, cap * sizeof *p);
		if (p == NULL)
			return ENOMEM;
		kv->pend = p;
		kv->pend_cap = cap;
	}
	if (res->value_len > kv->arena_cap - b->arena_len) {
		size_t cap = kv->arena_cap ? kv->arena_cap : 4096;
		while (cap - b->arena_len < res->value_len)
			cap *= 2;
		uint8_t *a = realloc(kv->arena, cap);
		if (a == NULL)
			return ENOMEM;
		kv->arena = a;
		kv->arena_cap = cap;
	}
	struct kv_pending *p = &kv->pend[b->n_pend++];
	p->entry = entry;
	p->res = *res;
	p->res.value = NULL;
	p->off = b->arena_len;
	if (res->value_len)
		memcpy(kv->arena + b->arena_len, res->value, res->value_len);
	b->arena_len += res->value_len;
	return 0;
}

/* Loads k unless the group has no expiring key and the write brings no expiry: then what was
 * there does not matter to a plain store (the common case costs no extra lookup). */
static int load_for_store(struct batch *b, MDB_txn *txn, MDB_val *k, uint64_t expire_at,
			  struct cur *c)
{
	memset(c, 0, sizeof *c);
	if (b->expires == 0 && expire_at == 0)
		return 0;
	return load(b, txn, k, c);
}

static void number(struct batch *b, struct kv_result *res, long long v)
{
	int len = snprintf(b->num, sizeof b->num, "%lld", v);
	res->value = b->num;
	res->value_len = (size_t)len;
}

/* Whether command c writes a key that `covers` says is in the set (MSET and MDEL: any of
 * their keys, so a multi-key write is refused all or nothing). REAP is not: it skips such
 * keys itself. */
static bool writes_into(const struct kv_cmd *c, bool (*covers)(const void *, const void *, size_t),
			const void *set)
{
	switch (c->op) {
	case KV_OP_PUT:
	case KV_OP_DELETE:
	case KV_OP_CAS:
	case KV_OP_INCRBY:
	case KV_OP_EXPIRE:
		return covers(set, c->key, c->key_len);
	case KV_OP_MSET:
	case KV_OP_MDEL: {
		size_t off = 0;
		struct kv_item it;
		while (kv_cmd_item_next(c, &off, &it))
			if (covers(set, it.key, it.key_len))
				return true;
		return false;
	}
	default:
		return false;
	}
}

static bool fence_covers(const void *set, const void *key, size_t len)
{
	return kv_fence_covers(set, key, len);
}

static bool gate_covers(const void *set, const void *key, size_t len)
{
	return kv_gate_covers(set, key, len);
}

/* Whether the group's fence refuses command c (KV_MOVING). */
static bool refused_by_fence(const struct batch *b, const struct kv_cmd *c)
{
	return writes_into(c, fence_covers, &b->fence);
}

/* Whether the group does not serve a key c writes (KV_WRONG_SHARD): released here, or being
 * copied here and not opened (handoff.h). */
static bool refused_by_gate(const struct batch *b, const struct kv_cmd *c)
{
	return writes_into(c, gate_covers, &b->gate);
}

static bool handoff_op(uint8_t op)
{
	return op == KV_OP_INGEST || op == KV_OP_RELEASE || op == KV_OP_OPEN || op == KV_OP_DROP;
}

/* Runs one decoded command against the data DBI at time b->now. res->value may point into the
 * map: it must be copied before the next write. A CAS whose current value fails its checksum
 * decides nothing: the batch is aborted with KV_ECORRUPT (b->err). */
static int exec(struct batch *b, MDB_txn *txn, const struct kv_cmd *c, struct kv_result *res)
{
	MDB_val k = {c->key_len, (void *)c->key};
	struct cur cur;
	int rc;
	memset(res, 0, sizeof *res);
	if (b->gate.n && refused_by_gate(b, c)) {
		res->code = KV_WRONG_SHARD; /* not served here now: nothing written */
		return 0;
	}
	if (b->fence.n && refused_by_fence(b, c)) {
		res->code = KV_MOVING; /* its range is moving: nothing written */
		return 0;
	}
	if (handoff_op(c->op)) {
		struct kv_handoff_ctx h = {.kv = b->kv,
					   .group = b->group,
					   .g = b->g,
					   .index = b->index,
					   .expires = &b->expires,
					   .err = &b->err,
					   .num = b->num};
		rc = kv_handoff_apply(&h, txn, c, res);
		/* The entries after it in this batch see what it changed: the gate, and the fence
		 * (a copy's first chunk lifts an older fence). A replica batches whatever is
		 * committed when it applies, so a marker not reloaded here would make a later
		 * write's fate depend on the batching: replicas would differ. */
		if (rc == 0)
			rc = kv_fence_load(txn, b->g, &b->fence);
		return rc ? rc : kv_gate_load(txn, b->g, &b->gate);
	}
	switch (c->op) {
	case KV_OP_NOOP:
		return 0;
	case KV_OP_FENCE:
	case KV_OP_UNFENCE:
		return kv_fence_apply(txn, b->g, &b->fence, c, res);
	case KV_OP_PUT: {
		bool need = c->if_present || c->return_old || c->keep_ttl;
		rc = need ? load(b, txn, &k, &cur)
			  : load_for_store(b, txn, &k, c->expire_at_ms, &cur);
		if (rc == 0 && c->return_old)
			rc = keep_old(b, &cur, res);
		if (rc != 0)
			return rc;
		if (c->if_present && !cur.live) {
			res->code = KV_NOT_FOUND;
			return 0;
		}
		uint64_t e = c->keep_ttl ? (cur.live ? cur.expire_at : 0) : c->expire_at_ms;
		return store(b, txn, &k, c->value, c->value_len, e, &cur);
	}
	case KV_OP_INCRBY: {
		if ((rc = load(b, txn, &k, &cur)) != 0)
			return rc;
		int64_t v = 0, d = (int64_t)kv_get_le64(c->value);
		if (cur.live && !parse_i64(cur.value.mv_data, cur.value.mv_size, &v)) {
			res->code = KV_NOT_INTEGER;
			return 0;
		}
		if ((d > 0 && v > INT64_MAX - d) || (d < 0 && v < INT64_MIN - d)) {
			res->code = KV_OVERFLOW;
			return 0;
		}
		number(b, res, (long long)(v + d));
		return store(b, txn, &k, b->num, res->value_len, cur.live ? cur.expire_at : 0,
			     &cur);
	}
	case KV_OP_MSET:
	case KV_OP_MDEL:
	case KV_OP_REAP: {
		size_t off = 0, deleted = 0;
		struct kv_item it;
		while (kv_cmd_item_next(c, &off, &it)) {
			MDB_val ik = {it.key_len, (void *)it.key};
			if (c->op == KV_OP_MSET) {
				rc = load_for_store(b, txn, &ik, 0, &cur);
				if (rc == 0)
					rc = store(b, txn, &ik, it.value, it.value_len, 0, &cur);
			} else if (c->op == KV_OP_REAP &&
				   (kv_fence_covers(&b->fence, it.key, it.key_len) ||
				    kv_gate_covers(&b->gate, it.key, it.key_len))) {
				continue; /* frozen for a move, or not served here: left alone */
			} else if ((rc = load(b, txn, &ik, &cur)) == 0 && cur.exists) {
				/* REAP: only a key still carrying the expiry its proposer saw, and
				 * due now (a key set again meanwhile is not touched) */
				bool del = c->op == KV_OP_MDEL ||
					   (cur.expire_at == kv_get_le64(it.value) && !cur.live);
				if (del && (rc = erase(b, txn, &ik, &cur)) == 0)
					deleted += c->op == KV_OP_REAP || cur.live;
			}
			if (rc != 0)
				return rc;
		}
		if (c->op != KV_OP_MSET)
			number(b, res, (long long)deleted);
		return 0;
	}
	case KV_OP_DELETE:
		if ((rc = load(b, txn, &k, &cur)) != 0)
			return rc;
		if (c->return_old && (rc = keep_old(b, &cur, res)) != 0)
			return rc;
		if (!cur.live)
			res->code = KV_NOT_FOUND;
		/* an expired key still stored goes too: the reaper would remove it anyway */
		return cur.exists ? erase(b, txn, &k, &cur) : 0;
	case KV_OP_EXPIRE:
		if ((rc = load(b, txn, &k, &cur)) != 0)
			return rc;
		if (!cur.live || (c->expire_at_ms == 0 && cur.expire_at == 0)) {
			res->code = KV_NOT_FOUND;
			return 0;
		}
		if (cur.expire_at == c->expire_at_ms)
			return 0;
		if ((rc = copy_value(b, &cur)) != 0)
			return rc;
		return store(b, txn, &k, cur.value.mv_data, cur.value.mv_size, c->expire_at_ms,
			     &cur);
	case KV_OP_CAS: {
		if ((rc = load(b, txn, &k, &cur)) != 0)
			return rc;
		res->found = cur.live;
		bool match = c->expect_absent ? !cur.live
					      : cur.live && cur.value.mv_size == c->expected_len &&
							(c->expected_len == 0 ||
							 memcmp(cur.value.mv_data, c->expected,
								c->expected_len) == 0);
		if (!match) {
			res->code = KV_CAS_MISMATCH;
			if (cur.live) {
				res->value = cur.value.mv_data;
				res->value_len = cur.value.mv_size;
			}
			return 0;
		}
		res->found = false;
		uint64_t e = c->keep_ttl ? (cur.live ? cur.expire_at : 0) : c->expire_at_ms;
		return store(b, txn, &k, c->value, c->value_len, e, &cur);
	}
	default:
		assert(!"decoded an unknown op");
		return EINVAL;
	}
}

static int apply_entry_(struct batch *b, MDB_txn *txn, size_t i);

static int apply_entry(struct batch *b, MDB_txn *txn, size_t i)
{
	int rc = apply_entry_(b, txn, i);
	free(b->tmp);
	b->tmp = NULL;
	return rc;
}

static int apply_entry_(struct batch *b, MDB_txn *txn, size_t i)
{
	const struct raft_entry *e = &b->entries[i];
	struct kv_result res;
	memset(&res, 0, sizeof res);
	if (e->type != RAFT_ENTRY_NORMAL)
		return 0; /* CONF: the configuration is stored once for the batch */
	if (e->data.len == 0)
		return pend_add(b, i, &res); /* the term-start no-op */
	struct kv_cmd c;
	if (kv_cmd_decode(e->data.base, e->data.len, &c) != KV_OK) {
		res.code = KV_EINVAL;
		return pend_add(b, i, &res);
	}
	/* The command's time: the group's clock never goes back, whatever the leaders' clocks. */
	if (c.now_ms > b->clock)
		b->clock = c.now_ms;
	b->now = b->clock;
	b->index = e->index;
	int rc;
	if (c.client_id == 0) {
		if ((rc = exec(b, txn, &c, &res)) != 0)
			return rc;
		return pend_add(b, i, &res);
	}
	enum kv_session_verdict verdict;
	struct kv_session sess;
	rc = kv_session_check(b->kv, txn, b->g, c.client_id, c.seq, e->index, &verdict, &res,
			      &sess);
	if (rc != 0)
		return rc;
	if (verdict == KV_SESSION_STALE) {
		memset(&res, 0, sizeof res);
		res.code = KV_ESESSION;
	} else if (verdict == KV_SESSION_NEW) {
		if ((rc = exec(b, txn, &c, &res)) != 0)
			return rc;
	}
	/* Copy first: the writes below may move the page res.value points into. */
	size_t off = b->arena_len;
	if ((rc = pend_add(b, i, &res)) != 0)
		return rc;
	if (verdict == KV_SESSION_NEW && res.code != KV_MOVING && res.code != KV_WRONG_SHARD) {
		/* A refused write (KV_MOVING, KV_WRONG_SHARD) did not happen: not recorded, so
		 * the same seq may be sent again and apply (after a rollback here, or at the new
		 * owner). No value: the arena may not exist yet (NULL + 0 is undefined
		 * behaviour). */
		res.value = res.value_len ? b->kv->arena + off : NULL;
		rc = kv_session_record(b->kv, txn, b->g, c.client_id, c.seq, e->index, &res, &sess);
		if (rc != 0)
			return rc;
	}
	return kv_session_save(txn, b->g, c.client_id, &sess);
}

static int apply_fn(MDB_txn *txn, void *arg)
{
	struct batch *b = arg;
	b->n_pend = 0;
	b->arena_len = 0;
	b->err = KV_OK;
	raft_index applied;
	raft_term applied_term;
	int rc = kv_applied_get(txn, b->g, &applied, &applied_term);
	if (rc == 0)
		rc = kv_clock_get(txn, b->g, &b->clock0);
	if (rc == 0)
		rc = kv_meta_u64_get(txn, b->g, KV_META_EXPIRES, &b->expires0);
	if (rc == 0)
		rc = kv_fence_load(txn, b->g, &b->fence); /* again if the batch is run again */
	if (rc == 0)
		rc = kv_gate_load(txn, b->g, &b->gate);
	if (rc != 0)
		return rc;
	b->clock = b->clock0;
	b->expires = b->expires0;
	size_t first = 0;
	while (first < b->n && b->entries[first].index <= applied)
		first++;
	if (first == b->n)
		return 0; /* all replayed already: an empty commit writes nothing */
	if (b->entries[first].index != applied + 1) {
		b->err = KV_EINVAL;
		return KV_TXN_ABORT;
	}
	for (size_t i = first; i < b->n; i++) {
		assert(i == first || b->entries[i].index == b->entries[i - 1].index + 1);
		assert(i == first || b->entries[i].term >= b->entries[i - 1].term);
		if ((rc = apply_entry(b, txn, i)) != 0)
			return rc;
	}
	const struct raft_entry *last = &b->entries[b->n - 1];
	if ((rc = kv_applied_put(txn, b->g, last->index, last->term)) != 0)
		return rc;
	if (b->clock != b->clock0 &&
	    (rc = kv_meta_u64_put(txn, b->g, KV_META_CLOCK, b->clock)) != 0)
		return rc;
	if (b->expires != b->expires0 &&
	    (rc = kv_meta_u64_put(txn, b->g, KV_META_EXPIRES, b->expires)) != 0)
		return rc;
	if (b->conf) {
		uint8_t buf[KV_CONF_BYTES_MAX], tag = KV_META_CONF;
		MDB_val k = {1, &tag}, v = {kv_conf_encode(b->conf, buf), buf};
		if ((rc = mdb_put(txn, b->g->meta, &k, &v, 0)) != 0)
			return rc;
	}
	return kv_session_gc(b->kv, txn, b->g, last->index, GC_BUDGET);
}

int kv_apply(struct kv *kv, uint32_t group, const struct raft_entry *entries, size_t n,
	     const struct raft_conf *conf, kv_apply_cb cb, void *arg)
{
	if (n == 0)
		return KV_OK;
	struct batch b = {.kv = kv, .group = group, .entries = entries, .n = n, .conf = conf};
	int err = kv_group_get(kv, group, &b.g);
	if (err != KV_OK)
		return err;
	if (kv->open != NULL &&
	    (kv->open_entries >= KV_APPLY_HOLD_ENTRIES || kv->open_bytes >= KV_APPLY_HOLD_BYTES))
		(void)kv_apply_commit(kv); /* its error is open_err, next */
	if (kv->open_err != KV_OK) {
		err = kv->open_err; /* a commit of batched applies failed: nothing more on top */
	} else if (kv->batch_on) {
		int rc = kv_apply_write(kv, apply_fn, &b);
		if (rc == MDB_MAP_FULL && (err = kv_apply_commit(kv)) == KV_OK) {
			/* kv_write grows the map (which needs no transaction open) and applies again */
			err = kv_write(kv, group, "apply", apply_fn, &b);
		} else if (rc == 0) {
			kv->open_entries += (uint32_t)n;
			for (size_t i = 0; i < n; i++)
				kv->open_bytes += entries[i].data.len;
		} else if (rc != MDB_MAP_FULL && rc != KV_TXN_ABORT) {
			kv_log_mdb(group, "apply", rc);
			err = kv_err_of_write(kv, rc);
		}
	} else {
		err = kv_write(kv, group, "apply", apply_fn, &b);
	}
	kv_fence_free(&b.fence);
	kv_gate_free(&b.gate);
	if (err != KV_OK)
		return err;
	if (b.err != KV_OK)
		return b.err;
	for (size_t i = 0; cb && i < b.n_pend; i++) {
		struct kv_pending *p = &kv->pend[i];
		p->res.value = p->res.value_len ? kv->arena + p->off : NULL;
		cb(&entries[p->entry], &p->res, arg);
	}
	return KV_OK;
}
