/* digest.c — a fingerprint of a group's data so that replicas can be compared (tests,
 * jepsen-lite, kvctl status): XXH3-128 over every (key, value) in key order, each length-
 * prefixed so that ("ab","c") and ("a","bc") differ, read in one transaction together with
 * the applied index it belongs to; a key's expiry is part of it (kv.h). Sessions and meta are
 * left out: they are bookkeeping that
 * may differ in garbage not yet collected, not the user-visible state. The stored CRC is
 * checked (KV_ECORRUPT) and left out too: the digest is of what a client would read.
 */
#include <xxhash.h>

#include "kv/kv_int.h"

int kv_digest(struct kv *kv, uint32_t group, uint8_t out[KV_DIGEST_BYTES],
	      raft_index *applied_index)
{
	struct kv_group *g;
	int err = kv_group_get(kv, group, &g);
	if (err != KV_OK)
		return err;
	XXH3_state_t *st = XXH3_createState();
	if (st == NULL)
		return KV_ENOMEM;
	XXH3_128bits_reset(st);
	MDB_txn *txn;
	if ((err = kv_read_begin(kv, &txn)) != KV_OK) {
		XXH3_freeState(st);
		return err;
	}
	raft_term term;
	raft_index index;
	MDB_cursor *cur = NULL;
	int rc = kv_applied_get(txn, g, &index, &term);
	if (rc == 0)
		rc = mdb_cursor_open(txn, g->data, &cur);
	MDB_val k, rec, v;
	if (rc == 0)
		rc = mdb_cursor_get(cur, &k, &rec, MDB_FIRST);
	while (rc == 0) {
		uint64_t expire_at;
		if ((err = kv_rec_check(kv, group, &k, &rec, &v, &expire_at)) != KV_OK)
			break;
		uint8_t len[8];
		kv_put_le32(len, (uint32_t)k.mv_size | (expire_at ? 1u << 31 : 0));
		XXH3_128bits_update(st, len, 4);
		XXH3_128bits_update(st, k.mv_data, k.mv_size);
		kv_put_le32(len, (uint32_t)v.mv_size);
		XXH3_128bits_update(st, len, 4);
		XXH3_128bits_update(st, v.mv_data, v.mv_size);
		if (expire_at) {
			kv_put_le64(len, expire_at);
			XXH3_128bits_update(st, len, 8);
		}
		rc = mdb_cursor_get(cur, &k, &rec, MDB_NEXT);
	}
	if (cur)
		mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	if (err != KV_OK) {
		XXH3_freeState(st);
		return err;
	}
	if (rc != MDB_NOTFOUND) {
		XXH3_freeState(st);
		kv_log_mdb(group, "digest", rc);
		return KV_EIO;
	}
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(st));
	XXH3_freeState(st);
	memcpy(out, c.digest, KV_DIGEST_BYTES);
	if (applied_index)
		*applied_index = index;
	return KV_OK;
}
