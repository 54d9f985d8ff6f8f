/* apply.c — applying a batch of committed entries of one group in one write transaction
 * (DESIGN.md section 5): skip what is already applied, run each command through its client
 * session (exactly-once, Raft thesis 6.3), record the applied index/term and configuration in
 * the same transaction, and only then hand out the results.
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

/* Reads the current value of k (checked) into *cur; *found says whether it exists. A damaged
 * value aborts the batch (b->err). */
static int current(struct batch *b, MDB_txn *txn, MDB_val *k, MDB_val *cur, bool *found)
{
	MDB_val rec;
	int rc = mdb_get(txn, b->g->data, k, &rec);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	*found = rc == 0;
	if (*found && kv_rec_check(b->kv, b->group, k, &rec, cur) != KV_OK) {
		b->err = KV_ECORRUPT;
		return KV_TXN_ABORT;
	}
	return 0;
}

/* The previous value into res (a copy in b->tmp: the write that follows may move its page). */
static int keep_old(struct batch *b, const MDB_val *cur, bool found, struct kv_result *res)
{
	res->found = found;
	if (!found || cur->mv_size == 0)
		return 0;
	if ((b->tmp = malloc(cur->mv_size)) == NULL)
		return ENOMEM;
	memcpy(b->tmp, cur->mv_data, cur->mv_size);
	res->value = b->tmp;
	res->value_len = cur->mv_size;
	return 0;
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

/* Runs one decoded command against the data DBI. res->value may point into the map: it must
 * be copied before the next write. A CAS whose current value fails its checksum decides
 * nothing: the batch is aborted with KV_ECORRUPT (b->err). */
static int exec(struct batch *b, MDB_txn *txn, const struct kv_cmd *c, struct kv_result *res)
{
	MDB_dbi dbi = b->g->data;
	MDB_val k = {c->key_len, (void *)c->key}, rec, cur = {0, NULL};
	int rc;
	memset(res, 0, sizeof *res);
	switch (c->op) {
	case KV_OP_NOOP:
		return 0;
	case KV_OP_PUT: {
		if (c->if_present || c->return_old) {
			bool found;
			if ((rc = current(b, txn, &k, &cur, &found)) != 0)
				return rc;
			if (c->return_old && (rc = keep_old(b, &cur, found, res)) != 0)
				return rc;
			if (c->if_present && !found) {
				res->code = KV_NOT_FOUND;
				return 0;
			}
		}
		return kv_rec_put(txn, dbi, &k, c->value, c->value_len, 0);
	}
	case KV_OP_INCRBY: {
		bool found;
		if ((rc = current(b, txn, &k, &cur, &found)) != 0)
			return rc;
		int64_t v = 0, d = (int64_t)kv_get_le64(c->value);
		if (found && !parse_i64(cur.mv_data, cur.mv_size, &v)) {
			res->code = KV_NOT_INTEGER;
			return 0;
		}
		if ((d > 0 && v > INT64_MAX - d) || (d < 0 && v < INT64_MIN - d)) {
			res->code = KV_OVERFLOW;
			return 0;
		}
		int len = snprintf(b->num, sizeof b->num, "%lld", (long long)(v + d));
		res->value = b->num;
		res->value_len = (size_t)len;
		return kv_rec_put(txn, dbi, &k, b->num, (size_t)len, 0);
	}
	case KV_OP_MSET:
	case KV_OP_MDEL: {
		size_t off = 0, deleted = 0;
		struct kv_item it;
		while (kv_cmd_item_next(c, &off, &it)) {
			MDB_val ik = {it.key_len, (void *)it.key};
			if (c->op == KV_OP_MSET) {
				rc = kv_rec_put(txn, dbi, &ik, it.value, it.value_len, 0);
			} else {
				rc = mdb_del(txn, dbi, &ik, NULL);
				if (rc == 0)
					deleted++;
				else if (rc == MDB_NOTFOUND)
					rc = 0;
			}
			if (rc != 0)
				return rc;
		}
		if (c->op == KV_OP_MDEL) {
			int len = snprintf(b->num, sizeof b->num, "%zu", deleted);
			res->value = b->num;
			res->value_len = (size_t)len;
		}
		return 0;
	}
	case KV_OP_DELETE:
		if (c->return_old) {
			bool found;
			if ((rc = current(b, txn, &k, &cur, &found)) != 0)
				return rc;
			if ((rc = keep_old(b, &cur, found, res)) != 0)
				return rc;
		}
		rc = mdb_del(txn, dbi, &k, NULL);
		if (rc == MDB_NOTFOUND) {
			res->code = KV_NOT_FOUND;
			return 0;
		}
		return rc;
	case KV_OP_CAS:
		rc = mdb_get(txn, dbi, &k, &rec);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return rc;
		res->found = rc == 0;
		if (res->found && kv_rec_check(b->kv, b->group, &k, &rec, &cur) != KV_OK) {
			b->err = KV_ECORRUPT;
			return KV_TXN_ABORT;
		}
		bool match =
			c->expect_absent
				? !res->found
				: res->found && cur.mv_size == c->expected_len &&
					  (c->expected_len == 0 ||
					   memcmp(cur.mv_data, c->expected, c->expected_len) == 0);
		if (!match) {
			res->code = KV_CAS_MISMATCH;
			if (res->found) {
				res->value = cur.mv_data;
				res->value_len = cur.mv_size;
			}
			return 0;
		}
		res->found = false;
		return kv_rec_put(txn, dbi, &k, c->value, c->value_len, 0);
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
	if (verdict == KV_SESSION_NEW) {
		res.value = b->kv->arena + off;
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
	if (rc != 0)
		return rc;
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
	if ((err = kv_write(kv, group, "apply", apply_fn, &b)) != KV_OK)
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
