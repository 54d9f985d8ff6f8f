/* record.c — encoding and validation of WAL records and segment headers.
 *
 * A record is trusted only if its header check, its CRC32C and its payload structure all
 * agree; wal_rec_check() is the single gate used by recovery, by reads from disk and by the
 * offline tool, so a record accepted by one is accepted by all.
 */
#include <inttypes.h>

#include "wal/crc32c.h"
#include "wal/format.h"
#include "wal/wal.h"

static uint16_t header_check(const uint8_t *rec)
{
	uint32_t c = wal_crc32c(0, rec, 6);
	c = wal_crc32c(c, rec + 8, 8);
	return (uint16_t)c;
}

static uint32_t record_crc(const uint8_t *rec, uint32_t length)
{
	uint32_t c = wal_crc32c(0, rec, 16);
	return wal_crc32c(c, rec + WAL_REC_HEADER_BYTES, length);
}

void wal_rec_seal(uint8_t *rec, uint8_t type, uint64_t group, uint32_t length)
{
	wal_put32(rec, length);
	rec[4] = type;
	rec[5] = 0;
	wal_put64(rec + 8, group);
	wal_put16(rec + 6, header_check(rec));
	size_t end = WAL_REC_HEADER_BYTES + length;
	memset(rec + end, 0, wal_rec_size(length) - end);
	wal_put32(rec + 16, record_crc(rec, length));
}

static bool type_known(uint8_t t)
{
	return t >= WAL_REC_ENTRIES && t <= WAL_REC_BATCH;
}

enum wal_rec_check wal_rec_check(const uint8_t *p, size_t avail, struct wal_rec_header *h,
				 const char **problem)
{
	static const uint8_t zero[WAL_REC_HEADER_BYTES];
	if (avail >= WAL_REC_HEADER_BYTES && memcmp(p, zero, WAL_REC_HEADER_BYTES) == 0)
		return WAL_RC_ZERO;
	if (avail < WAL_REC_HEADER_BYTES) {
		*problem = "incomplete record header";
		return WAL_RC_BAD_HEADER;
	}
	uint32_t length = wal_get32(p);
	if (wal_get16(p + 6) != header_check(p) || p[5] != 0 || !type_known(p[4]) ||
	    length > WAL_RECORD_BYTES_MAX) {
		*problem = "record header check failed";
		return WAL_RC_BAD_HEADER;
	}
	h->length = length;
	h->type = p[4];
	h->group = wal_get64(p + 8);
	if (avail < wal_rec_size(length)) {
		*problem = "incomplete record";
		return WAL_RC_BAD_RECORD;
	}
	if (wal_get32(p + 16) != record_crc(p, length)) {
		*problem = "record CRC32C mismatch";
		return WAL_RC_BAD_RECORD;
	}
	for (size_t i = WAL_REC_HEADER_BYTES + length; i < wal_rec_size(length); i++) {
		if (p[i] != 0) {
			*problem = "non-zero record padding";
			return WAL_RC_BAD_RECORD;
		}
	}
	if (!wal_payload_valid(h->type, p + WAL_REC_HEADER_BYTES, length, problem))
		return WAL_RC_BAD_RECORD;
	return WAL_RC_OK;
}

bool wal_payload_valid(uint8_t type, const uint8_t *pl, uint32_t len, const char **problem)
{
	switch (type) {
	case WAL_REC_ENTRIES: {
		if (len < WAL_ENTRIES_HEADER_BYTES)
			break;
		uint32_t n = wal_get32(pl + 8);
		if (n == 0 || wal_get64(pl) == 0 || wal_get64(pl) > UINT64_MAX - n)
			break;
		size_t off = WAL_ENTRIES_HEADER_BYTES;
		for (uint32_t i = 0; i < n; i++) {
			if (len - off < WAL_ENTRY_HEADER_BYTES)
				goto bad;
			uint32_t dl = wal_get32(pl + off + 8);
			off += WAL_ENTRY_HEADER_BYTES;
			if (len - off < dl)
				goto bad;
			off += dl;
		}
		if (off != len)
			break;
		return true;
	}
	case WAL_REC_HARD_STATE:
		if (len == WAL_HARD_STATE_BYTES ||
		    (len == WAL_HARD_STATE_EXT_BYTES &&
		     (wal_get64(pl + 24) & ~(uint64_t)WAL_HS_FLAG_RECOVERING) == 0))
			return true;
		break;
	case WAL_REC_TRUNCATE:
		if (len == WAL_TRUNCATE_BYTES && wal_get64(pl) > 0)
			return true;
		break;
	case WAL_REC_CHECKPOINT:
		if (len == WAL_CHECKPOINT_BYTES)
			return true;
		break;
	case WAL_REC_SNAPSHOT: {
		if (len < WAL_SNAPSHOT_FIXED_BYTES)
			break;
		uint32_t nv = wal_get32(pl + 16), nl = wal_get32(pl + 20);
		if (nv > RAFT_NODES_MAX || nl > RAFT_NODES_MAX ||
		    len != WAL_SNAPSHOT_FIXED_BYTES + 8u * (nv + nl))
			break;
		return true;
	}
	case WAL_REC_BATCH:
		if (len == WAL_BATCH_BYTES)
			return true;
		break;
	default:
		break;
	}
bad:
	*problem = "malformed record payload";
	return false;
}

void wal_entries_range(const uint8_t *payload, raft_index *first, uint32_t *n)
{
	*first = wal_get64(payload);
	*n = wal_get32(payload + 8);
}

raft_index wal_marker_index(uint8_t type, const uint8_t *payload)
{
	(void)type;
	return wal_get64(payload);
}

void wal_snapshot_decode(const uint8_t *pl, raft_index *index, raft_term *term,
			 struct raft_conf *conf)
{
	*index = wal_get64(pl);
	*term = wal_get64(pl + 8);
	memset(conf, 0, sizeof *conf);
	conf->n_voters = wal_get32(pl + 16);
	conf->n_learners = wal_get32(pl + 20);
	const uint8_t *ids = pl + WAL_SNAPSHOT_FIXED_BYTES;
	for (uint32_t i = 0; i < conf->n_voters; i++, ids += 8)
		conf->voters[i] = wal_get64(ids);
	for (uint32_t i = 0; i < conf->n_learners; i++, ids += 8)
		conf->learners[i] = wal_get64(ids);
}

void wal_seg_header_encode(uint8_t out[WAL_SEG_HEADER_BYTES], uint64_t seq, uint32_t nonce)
{
	memset(out, 0, WAL_SEG_HEADER_BYTES);
	memcpy(out, WAL_SEG_MAGIC, 8);
	wal_put32(out + 8, nonce ? WAL_SEG_VERSION : WAL_SEG_VERSION_1);
	wal_put32(out + 12, nonce);
	wal_put64(out + 16, seq);
	wal_put32(out + 24, wal_crc32c(0, out, 24));
}

bool wal_seg_header_valid(const uint8_t *p, size_t avail, uint64_t seq, uint32_t *nonce)
{
	if (avail < WAL_SEG_HEADER_BYTES || memcmp(p, WAL_SEG_MAGIC, 8) != 0 ||
	    wal_get64(p + 16) != seq || wal_get32(p + 24) != wal_crc32c(0, p, 24))
		return false;
	uint32_t version = wal_get32(p + 8), n = wal_get32(p + 12);
	if (version == WAL_SEG_VERSION_1)
		n = 0; /* that field was reserved: never checked, so not read now either */
	else if (version != WAL_SEG_VERSION || n == 0)
		return false;
	if (nonce)
		*nonce = n;
	return true;
}
