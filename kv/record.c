/* record.c — the stored form of a value: [u32 LE CRC32C of key || value][value]. Every value
 * written to a group's data DBI goes through kv_rec_put and every value read back through
 * kv_rec_check, the pair of assertions across the disk boundary (STYLE.md): a flipped bit, a
 * torn page or a value found under the wrong key is KV_ECORRUPT, never an answer. The CRC is
 * the WAL's (wal/crc32c.c: SSE4.2 with a table fallback), so kv links libwal for it.
 */
#include <assert.h>

#include "kv/kv_int.h"
#include "wal/crc32c.h"

static uint32_t rec_crc(const MDB_val *k, const void *v, size_t vl)
{
	return wal_crc32c(wal_crc32c(0, k->mv_data, k->mv_size), v, vl);
}

int kv_rec_put(MDB_txn *txn, MDB_dbi dbi, const MDB_val *k, const void *v, size_t vl,
	       unsigned flags)
{
	MDB_val rec = {KV_REC_CRC + vl, NULL};
	int rc = mdb_put(txn, dbi, (MDB_val *)k, &rec, flags | MDB_RESERVE);
	if (rc != 0)
		return rc;
	kv_put_le32(rec.mv_data, rec_crc(k, v, vl));
	if (vl)
		memcpy((uint8_t *)rec.mv_data + KV_REC_CRC, v, vl);
	return 0;
}

bool kv_rec_ok(const MDB_val *k, const MDB_val *rec)
{
	if (rec->mv_size < KV_REC_CRC)
		return false;
	const uint8_t *p = rec->mv_data;
	return kv_get_le32(p) == rec_crc(k, p + KV_REC_CRC, rec->mv_size - KV_REC_CRC);
}

int kv_rec_check(struct kv *kv, uint32_t group, const MDB_val *k, const MDB_val *rec,
		 MDB_val *value)
{
	if (!kv_rec_ok(k, rec)) {
		assert(k->mv_size <= KV_KEY_MAX);
		kv->corrupt_seen = true;
		kv->corrupt_group = group;
		kv->corrupt_key_len = k->mv_size;
		memcpy(kv->corrupt_key, k->mv_data, k->mv_size);
		return KV_ECORRUPT;
	}
	value->mv_size = rec->mv_size - KV_REC_CRC;
	value->mv_data = (uint8_t *)rec->mv_data + KV_REC_CRC;
	return KV_OK;
}

int kv_last_corrupt(const struct kv *kv, uint32_t *group, void *key, size_t cap, size_t *key_len)
{
	if (!kv->corrupt_seen)
		return KV_NOT_FOUND;
	*group = kv->corrupt_group;
	*key_len = kv->corrupt_key_len;
	size_t n = cap < kv->corrupt_key_len ? cap : kv->corrupt_key_len;
	if (n)
		memcpy(key, kv->corrupt_key, n);
	return KV_OK;
}
