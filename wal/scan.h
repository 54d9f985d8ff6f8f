/* scan.h — validation of whole batches inside a mapped segment (internal to wal/).
 *
 * A batch (a BATCH record followed by the records of one wal_batch_write) is the unit of
 * atomicity: recovery accepts it whole or not at all. Recovery and the offline tool both use
 * these functions, so they classify damage identically. `nonce` is the segment's (its header,
 * format 2): a BATCH record whose group field is not it starts no batch; 0 (format 1, or a
 * header that cannot be read) accepts any.
 */
#ifndef RINGRAFT_WAL_SCAN_H
#define RINGRAFT_WAL_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct wal_scan_batch {
	size_t off;         /* of the BATCH record */
	size_t bytes;       /* whole batch, BATCH record and zero padding included */
	size_t records_end; /* where its last record ends (the padding, if any, starts) */
	uint64_t seq;
	uint32_t n; /* records after the BATCH record */
};

struct wal_scan_bad {
	size_t off;       /* first byte that is wrong (a record boundary) */
	bool group_known; /* the damaged record's header is trustworthy */
	uint64_t group;
	const char *problem;
	bool batch_known; /* the BATCH record is valid: batch_end is where the batch ends */
	size_t batch_start, batch_end;
};

enum wal_scan_outcome {
	WAL_SCAN_OK,  /* *b is a whole valid batch */
	WAL_SCAN_END, /* zeroes (or the segment's end): no more data here */
	WAL_SCAN_BAD, /* *bad says what and where */
};

enum wal_scan_outcome wal_scan_batch(const uint8_t *seg, size_t size, size_t off, uint32_t nonce,
				     struct wal_scan_batch *b, struct wal_scan_bad *bad);

/* First 8-aligned offset >= from holding a whole valid batch with seq >= min_seq, or
 * SIZE_MAX. Linear in the bytes searched; skips zero words quickly. */
size_t wal_scan_find(const uint8_t *seg, size_t size, size_t from, uint64_t min_seq,
		     uint32_t nonce);

/* How far a search for batches in [from, to) reads (wal_scan_batch and wal_scan_find): the
 * highest end of a batch extent stated by a valid BATCH record at an 8-aligned offset there,
 * when the extent fits the segment (one that does not is refused on its header alone); 0 if
 * none. What lies inside such an extent decides whether the batch there is valid. Linear in
 * to - from, as wal_scan_find. */
size_t wal_scan_reach(const uint8_t *seg, size_t size, size_t from, size_t to, uint32_t nonce);

/* True if any valid batch exists at or after data start of the segment (any seq, any nonce:
 * asked of a segment whose header is unreadable). */
bool wal_scan_has_batch(const uint8_t *seg, size_t size);

/* Where non-zero bytes lie at or after `from` (8-aligned): *lo is the first of them rounded
 * down to 8 (not below from), *hi is one past the last. False (nothing set) if every byte
 * there is zero. Linear in size - from, a word at a time. */
bool wal_scan_nonzero(const uint8_t *seg, size_t size, size_t from, size_t *lo, size_t *hi);

/* True if p[0..n) is all zero bytes. */
bool wal_scan_zero(const uint8_t *p, size_t n);

/* Iterates the records of a batch validated by wal_scan_batch. */
struct wal_rec_view {
	size_t off; /* of the record within the segment */
	uint8_t type;
	uint64_t group;
	const uint8_t *payload;
	uint32_t length;
	size_t size; /* record bytes on disk, padding included */
};
/* *cursor starts at 0; returns false after the last record. */
bool wal_scan_next_record(const uint8_t *seg, const struct wal_scan_batch *b, size_t *cursor,
			  struct wal_rec_view *r);

#endif
