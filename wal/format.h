/* format.h — the on-disk layout of WAL segments and records (internal to wal/).
 *
 * Everything is little-endian and 8-byte aligned within a segment. docs/WAL.md describes the
 * same layout in prose; the encoder and the validator below are the only code that knows it,
 * so the writer, recovery and the offline tool cannot disagree.
 */
#ifndef RINGRAFT_WAL_FORMAT_H
#define RINGRAFT_WAL_FORMAT_H

#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "raft/raft.h"

/* Segment header: magic[8] u32 version u32 nonce u64 segment-seq u32 crc32c(bytes 0..24)
 * u32 reserved. Data (batches) starts right after it.
 * Format 2 (written since 2026-12): the nonce is a random non-zero number chosen when the
 * segment is made, and every BATCH record of the segment carries it in its group field; a
 * BATCH record without it is not a batch of this segment (docs/WAL.md, "A batch image
 * inside entry data": bytes a client wrote can look like a whole batch, but cannot know
 * the nonce). Format 1: the nonce field is 0 (not checked) and BATCH records' group fields
 * are 0 (not checked); still read, and a format-1 active segment is written in format 1. */
#define WAL_SEG_MAGIC        "RRWALSEG"
#define WAL_SEG_VERSION_1    1u
#define WAL_SEG_VERSION      2u
#define WAL_SEG_HEADER_BYTES 32u
#define WAL_SEG_NAME_FMT     "%016" PRIx64 ".wal"
#define WAL_SEG_NAME_LEN     20 /* 16 hex digits + ".wal" */

/* Record header: u32 length (payload bytes), u8 type, u8 flags (0), u16 hcheck (low 16 bits
 * of crc32c over bytes 0..6 and 8..16: says whether the header alone can be trusted, e.g. to
 * name the group of a damaged record), u64 group, u32 crc32c (bytes 0..16 then the payload).
 * The record is padded with zeroes to a multiple of 8 bytes. */
#define WAL_REC_HEADER_BYTES 20u
#define WAL_REC_ALIGN        8u

/* Payloads. */
#define WAL_ENTRIES_HEADER_BYTES      16u /* u64 first index, u32 count, u32 reserved */
#define WAL_ENTRY_HEADER_BYTES        16u /* u64 term, u32 data length, u8 type, u8[3] reserved */
#define WAL_HARD_STATE_BYTES          24u /* u64 term, u64 vote, u64 commit */
/* The same followed by u64 flags (bit 0: recovering), written only when a flag is set, so a
 * replica in its normal state writes the record as before. */
#define WAL_HARD_STATE_EXT_BYTES      32u
#define WAL_HS_FLAG_RECOVERING        1u
#define WAL_TRUNCATE_BYTES            8u  /* u64 from */
#define WAL_CHECKPOINT_BYTES          8u  /* u64 index */
#define WAL_SNAPSHOT_FIXED_BYTES      24u /* u64 index, u64 term, u32 voters, u32 learners, ids */
#define WAL_BATCH_BYTES               16u /* u64 batch seq, u32 batch bytes, u32 records after it */
#define WAL_BATCH_HEADER_RECORD_BYTES 40u /* the BATCH record: 20 + 16, aligned to 8 */
/* A batch may end with zero padding after its records, fewer than this many bytes, so that
 * the next batch starts on a sector boundary (direct I/O); its length counts the padding. */
#define WAL_BATCH_PAD_MAX 4096u

static inline size_t wal_align8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}
static inline size_t wal_rec_size(size_t payload_len)
{
	return wal_align8(WAL_REC_HEADER_BYTES + payload_len);
}

static inline void wal_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}
static inline void wal_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline void wal_put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t wal_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t wal_get32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}
static inline uint64_t wal_get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* Decodes a HARD_STATE payload of WAL_HARD_STATE_BYTES or WAL_HARD_STATE_EXT_BYTES. */
static inline void wal_hard_state_decode(const uint8_t *p, uint32_t len,
					 struct raft_hard_state *hs)
{
	hs->term = wal_get64(p);
	hs->vote = wal_get64(p + 8);
	hs->commit = wal_get64(p + 16);
	hs->recovering = len >= WAL_HARD_STATE_EXT_BYTES &&
			 (wal_get64(p + 24) & WAL_HS_FLAG_RECOVERING) != 0;
}

struct wal_rec_header {
	uint32_t length;
	uint8_t type;
	uint64_t group;
};

/* Writes the header of a record whose payload (length bytes) is already at rec + 20, and
 * zeroes its padding. rec must have room for wal_rec_size(length) bytes. */
void wal_rec_seal(uint8_t *rec, uint8_t type, uint64_t group, uint32_t length);

/* Outcome of looking at the bytes at a record boundary. */
enum wal_rec_check {
	WAL_RC_OK = 0,     /* a whole, valid record */
	WAL_RC_ZERO,       /* 20 zero bytes: the unused (preallocated) part of a segment */
	WAL_RC_BAD_HEADER, /* header cannot be trusted (group unknown) */
	WAL_RC_BAD_RECORD, /* header trustworthy (group known) but record short/CRC/payload bad */
};
/* Checks the record at p (avail bytes readable). Fills *h when the header is trustworthy
 * (OK, BAD_RECORD); *problem says what is wrong otherwise (a static string). */
enum wal_rec_check wal_rec_check(const uint8_t *p, size_t avail, struct wal_rec_header *h,
				 const char **problem);

/* Payload validation and decoding (payload already CRC-checked). */
bool wal_payload_valid(uint8_t type, const uint8_t *payload, uint32_t len, const char **problem);
/* ENTRIES: first index and count. */
void wal_entries_range(const uint8_t *payload, raft_index *first, uint32_t *n);
/* Marker payloads: the index they carry (TRUNCATE from, SNAPSHOT index, CHECKPOINT index). */
raft_index wal_marker_index(uint8_t type, const uint8_t *payload);
void wal_snapshot_decode(const uint8_t *payload, raft_index *index, raft_term *term,
			 struct raft_conf *conf);

/* Segment header of segment seq; nonce 0 writes a format-1 header (tests of the old format),
 * any other a format-2 header carrying it. */
void wal_seg_header_encode(uint8_t out[WAL_SEG_HEADER_BYTES], uint64_t seq, uint32_t nonce);
/* True if p holds a valid header (format 1 or 2) of segment seq; *nonce (may be NULL) gets
 * what its BATCH records must carry: the nonce, or 0 for format 1 (nothing checked). */
bool wal_seg_header_valid(const uint8_t *p, size_t avail, uint64_t seq, uint32_t *nonce);

#endif
