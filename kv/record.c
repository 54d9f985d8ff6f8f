/* record.c — the stored form of a value: [u32 LE CRC32C of key || expiry || value][u64 LE
 * expiry][value] (format 3; format 2, read only by the upgrade and by restore of version 2
 * streams, had neither the expiry nor its bytes in the CRC). Every value
 * written to a group's data DBI goes through kv_rec_put and every value read back through
 * kv_rec_check, the pair of assertions across the disk boundary (STYLE.md): a flipped bit, a
 * torn page or a value found under the wrong key is KV_ECORRUPT, never an answer. The CRC is
 * the WAL's (wal/crc32c.c: SSE4.2 with a table fallback), so kv links libwal for it.
 */
#include <assert.h>

#include "kv/kv_int.h"
#include "wal/crc32c.h"

/* expiry: the 8 LE bytes, or NULL for a format 2 record */
static uint32_t rec_crc(const MDB_val *k, const uint8_t *expiry, const void *v, size_t vl)
{
	uint32_t c = wal_crc32c(0, k->mv_data, k->mv_size);
	if (expiry)
		c = wal_crc32c(c, expiry, 8);
	return wal_crc32c(c, v, vl);
}

void kv_rec_encode(const MDB_val *k, const void *v, size_t vl, uint64_t expire_at_ms, uint8_t *out)
{
	kv_put_le64(out + KV_REC_CRC, expire_at_ms);
	kv_put_le32(out, rec_crc(k, out + KV_REC_CRC, v, vl));
	if (vl)
		memmove(out + KV_REC_HEADER, v, vl);
}

int kv_rec_put(MDB_txn *txn, MDB_dbi dbi, const MDB_val *k, const void *v, size_t vl,
	       uint64_t expire_at_ms, unsigned flags)
{
	MDB_val rec = {KV_REC_HEADER + vl, NULL};
	int rc = mdb_put(txn, dbi, (MDB_val *)k, &rec, flags | MDB_RESERVE);
	if (rc != 0)
		return rc;
	kv_rec_encode(k, v, vl, expire_at_ms, rec.mv_data);
	return 0;
}

bool kv_rec_ok(const MDB_val *k, const MDB_val *rec)
{
	if (rec->mv_size < KV_REC_HEADER)
		return false;
	const uint8_t *p = rec->mv_data;
	return kv_get_le32(p) ==
	       rec_crc(k, p + KV_REC_CRC, p + KV_REC_HEADER, rec->mv_size - KV_REC_HEADER);
}

bool kv_rec_ok_v2(const MDB_val *k, const MDB_val *rec)
{
	if (rec->mv_size < KV_REC_CRC)
		return false;
	const uint8_t *p = rec->mv_data;
	return kv_get_le32(p) == rec_crc(k, NULL, p + KV_REC_CRC, rec->mv_size - KV_REC_CRC);
}

int kv_rec_check(struct kv *kv, uint32_t group, const MDB_val *k, const MDB_val *rec,
		 MDB_val *value, uint64_t *expire_at_ms)
{
	if (!kv_rec_ok(k, rec)) {
		assert(k->mv_size <= KV_KEY_MAX);
		kv->corrupt_seen = true;
		kv->corrupt_group = group;
		kv->corrupt_key_len = k->mv_size;
		memcpy(kv->corrupt_key, k->mv_data, k->mv_size);
		return KV_ECORRUPT;
	}
	value->mv_size = rec->mv_size - KV_REC_HEADER;
	value->mv_data = (uint8_t *)rec->mv_data + KV_REC_HEADER;
	if (expire_at_ms)
		*expire_at_ms = kv_get_le64((const uint8_t *)rec->mv_data + KV_REC_CRC);
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
