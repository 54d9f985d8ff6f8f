/* read.c — get and range scan of a group, each on its own short read transaction (MVCC: they
 * never block the apply path and see one consistent applied state). Every value is checked
 * against its CRC (record.c) before it leaves, and a key whose expiry is due at the later of
 * the caller's clock and the group's is absent. kv_expired lists due keys for the reaper.
 */
#include <stdlib.h>

#include "kv/kv_int.h"

/* The time a read judges expiry at: the later of the caller's clock and the group's. */
static int read_now(MDB_txn *txn, const struct kv_group *g, uint64_t now_ms, uint64_t *out)
{
	uint64_t clock;
	int rc = kv_clock_get(txn, g, &clock);
	*out = clock > now_ms ? clock : now_ms;
	return rc;
}

int kv_get(struct kv *kv, uint32_t group, const void *key, size_t key_len, uint64_t now_ms,
	   void **value, size_t *value_len, uint64_t *expire_at_ms)
{
	if (key == NULL || key_len == 0 || key_len > KV_KEY_MAX)
		return KV_EINVAL;
	struct kv_group *g;
	int err = kv_group_get(kv, group, &g);
	if (err != KV_OK)
		return err;
	MDB_txn *txn;
	if ((err = kv_read_begin(kv, &txn)) != KV_OK)
		return err;
	MDB_val k = {key_len, (void *)key}, rec, v;
	uint64_t now, expire_at = 0;
	struct kv_gate gate = {0};
	int rc = read_now(txn, g, now_ms, &now);
	if (rc == 0)
		rc = kv_gate_load(txn, g, &gate);
	if (rc == 0 && kv_gate_covers(&gate, key, key_len))
		err = KV_WRONG_SHARD; /* released here, or copied here and not opened */
	else if (rc == 0)
		rc = mdb_get(txn, g->data, &k, &rec);
	kv_gate_free(&gate);
	if (err != KV_OK) {
		/* refused */
	} else if (rc == MDB_NOTFOUND) {
		err = KV_NOT_FOUND;
	} else if (rc != 0) {
		kv_log_mdb(group, "get", rc);
		err = KV_EIO;
	} else if ((err = kv_rec_check(kv, group, &k, &rec, &v, &expire_at)) != KV_OK) {
		/* damaged: KV_ECORRUPT */
	} else if (kv_expired_at(expire_at, now)) {
		err = KV_NOT_FOUND;
	} else if (expire_at_ms) {
		*expire_at_ms = expire_at;
	}
	if (err == KV_OK && value != NULL) {
		void *copy = malloc(v.mv_size ? v.mv_size : 1);
		if (copy == NULL) {
			err = KV_ENOMEM;
		} else {
			memcpy(copy, v.mv_data, v.mv_size);
			*value = copy;
			*value_len = v.mv_size;
		}
	}
	mdb_txn_abort(txn);
	return err;
}

static bool before_end(const MDB_val *k, const void *end, size_t end_len)
{
	if (end == NULL || end_len == 0)
		return true;
	size_t n = k->mv_size < end_len ? k->mv_size : end_len;
	int c = memcmp(k->mv_data, end, n);
	return c < 0 || (c == 0 && k->mv_size < end_len);
}

int kv_scan(struct kv *kv, uint32_t group, uint64_t now_ms, const void *start, size_t start_len,
	    const void *end, size_t end_len, uint32_t limit, kv_scan_cb cb, void *arg, void **next,
	    size_t *next_len)
{
	*next = NULL;
	*next_len = 0;
	if (start_len > KV_KEY_MAX || end_len > KV_KEY_MAX || (start_len && start == NULL) ||
	    cb == NULL)
		return KV_EINVAL;
	if (limit == 0)
		limit = KV_SCAN_DEFAULT;
	if (limit > KV_SCAN_MAX)
		limit = KV_SCAN_MAX;
	struct kv_group *g;
	int err = kv_group_get(kv, group, &g);
	if (err != KV_OK)
		return err;
	MDB_txn *txn;
	if ((err = kv_read_begin(kv, &txn)) != KV_OK)
		return err;
	MDB_cursor *cur;
	uint64_t now, expire_at;
	struct kv_gate gate = {0};
	int rc = read_now(txn, g, now_ms, &now);
	if (rc == 0)
		rc = kv_gate_load(txn, g, &gate);
	if (rc == 0)
		rc = mdb_cursor_open(txn, g->data, &cur);
	if (rc != 0) {
		mdb_txn_abort(txn);
		kv_gate_free(&gate);
		kv_log_mdb(group, "scan", rc);
		return rc == ENOMEM ? KV_ENOMEM : KV_EIO;
	}
	MDB_val k = {start_len, (void *)start}, rec, v;
	rc = mdb_cursor_get(cur, &k, &rec, start_len ? MDB_SET_RANGE : MDB_FIRST);
	uint32_t n = 0;
	while (rc == 0 && before_end(&k, end, end_len)) {
		if (n == limit) {
			/* k is the first key in range not returned: the continuation. */
			void *copy = malloc(k.mv_size);
			if (copy == NULL) {
				err = KV_ENOMEM;
				break;
			}
			memcpy(copy, k.mv_data, k.mv_size);
			*next = copy;
			*next_len = k.mv_size;
			break;
		}
		if ((err = kv_rec_check(kv, group, &k, &rec, &v, &expire_at)) != KV_OK)
			break;
		n++;
		/* expired, or not served here (handoff.h): skipped, but counted */
		int stop =
			kv_expired_at(expire_at, now) || kv_gate_covers(&gate, k.mv_data, k.mv_size)
				? 0
				: cb(k.mv_data, k.mv_size, v.mv_data, v.mv_size, arg);
		rc = mdb_cursor_get(cur, &k, &rec, MDB_NEXT);
		if (stop) {
			/* Stopped by the caller: continue from the next key, if any in range. */
			limit = n;
		}
	}
	if (rc != 0 && rc != MDB_NOTFOUND) {
		kv_log_mdb(group, "scan", rc);
		err = KV_EIO;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	kv_gate_free(&gate);
	if (err != KV_OK) {
		free(*next);
		*next = NULL;
		*next_len = 0;
	}
	return err;
}

static int expired(struct kv *kv, uint32_t group, uint64_t now_ms, uint32_t max,
		   kv_expired_cb cb, void *arg, uint32_t *found, bool committed)
{
	*found = 0;
	if (cb == NULL || max > KV_MULTI_KEYS_MAX)
		return KV_EINVAL;
	struct kv_group *g;
	int err = kv_group_get(kv, group, &g);
	if (err != KV_OK)
		return err;
	MDB_txn *txn;
	if (!committed) {
		if ((err = kv_read_begin(kv, &txn)) != KV_OK)
			return err;
	} else if ((err = mdb_txn_begin(kv->env, NULL, MDB_RDONLY, &txn)) != 0) {
		kv_log_mdb(group, "expired read_begin", err);
		return KV_EIO;
	}
	MDB_cursor *cur = NULL;
	uint64_t now;
	uint8_t tag = KV_META_EXPIRY;
	MDB_val k = {1, &tag}, v;
	struct kv_gate gate = {0};
	int rc = read_now(txn, g, now_ms, &now);
	if (rc == 0)
		rc = kv_gate_load(txn, g, &gate);
	if (rc == 0)
		rc = mdb_cursor_open(txn, g->meta, &cur);
	if (rc == 0)
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	/* The index is in expiry order: stop at the first record not yet due. */
	while (rc == 0 && *found < max) {
		const uint8_t *p = k.mv_data;
		if (k.mv_size < 10 || k.mv_size > KV_META_EXPIRY_KEY_MAX || p[0] != KV_META_EXPIRY)
			break;
		uint64_t e = kv_get_be64(p + 1);
		if (!kv_expired_at(e, now))
			break;
		/* A key this group does not serve now is not reaped here (apply would skip it):
		 * listing it would only hold up the others. O(such keys due), once per call. */
		if (!kv_gate_covers(&gate, p + 9, k.mv_size - 9)) {
			cb(p + 9, k.mv_size - 9, e, arg);
			(*found)++;
		}
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	if (rc != 0 && rc != MDB_NOTFOUND) {
		kv_log_mdb(group, "expired", rc);
		err = KV_EIO;
	}
	if (cur)
		mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	kv_gate_free(&gate);
	return err;
}

int kv_expired(struct kv *kv, uint32_t group, uint64_t now_ms, uint32_t max, kv_expired_cb cb,
	       void *arg, uint32_t *found)
{
	return expired(kv, group, now_ms, max, cb, arg, found, false);
}

int kv_expired_committed(struct kv *kv, uint32_t group, uint64_t now_ms, uint32_t max,
			 kv_expired_cb cb, void *arg, uint32_t *found)
{
	return expired(kv, group, now_ms, max, cb, arg, found, true);
}
