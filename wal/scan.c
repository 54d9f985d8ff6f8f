/* scan.c — finds and validates batches in a segment image.
 *
 * A batch is valid only if its BATCH record and every record it announces are valid and they
 * tile its extent exactly, but for zero padding at the end (fewer than WAL_BATCH_PAD_MAX
 * bytes: a direct write ends on a sector boundary). wal_scan_find() is how recovery tells a torn
 * tail (nothing valid after the damage) from mid-log corruption (a later valid batch exists): it is
 * a search over 8-aligned offsets, cheap because unused segment space is zero and rejected at once.
 */
#include "wal/scan.h"

#include "wal/format.h"
#include "wal/wal.h"

bool wal_scan_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static bool word_zero(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof v);
	return v == 0;
}

bool wal_scan_nonzero(const uint8_t *seg, size_t size, size_t from, size_t *lo, size_t *hi)
{
	size_t p = from;
	while (p + 8 <= size && word_zero(seg + p))
		p += 8;
	while (p < size && seg[p] == 0)
		p++;
	if (p >= size)
		return false;
	*lo = p & ~(size_t)7;
	if (*lo < from)
		*lo = from;
	size_t q = size;
	while (q >= p + 8 && word_zero(seg + q - 8))
		q -= 8;
	while (seg[q - 1] == 0)
		q--;
	*hi = q;
	return true;
}

enum wal_scan_outcome wal_scan_batch(const uint8_t *seg, size_t size, size_t off, uint32_t nonce,
				     struct wal_scan_batch *b, struct wal_scan_bad *bad)
{
	memset(bad, 0, sizeof *bad);
	bad->off = off;
	if (off >= size)
		return WAL_SCAN_END;
	if (size - off < WAL_REC_HEADER_BYTES && wal_scan_zero(seg + off, size - off))
		return WAL_SCAN_END;
	struct wal_rec_header h;
	const char *problem = NULL;
	enum wal_rec_check rc = wal_rec_check(seg + off, size - off, &h, &problem);
	if (rc == WAL_RC_ZERO)
		return WAL_SCAN_END;
	if (rc == WAL_RC_OK && h.type != WAL_REC_BATCH) {
		problem = "record outside a batch";
		rc = WAL_RC_BAD_RECORD;
	}
	if (rc == WAL_RC_OK && nonce != 0 && h.group != nonce) {
		problem = "batch record without the segment's nonce";
		rc = WAL_RC_BAD_HEADER;
	}
	if (rc != WAL_RC_OK) {
		bad->problem = problem;
		bad->group_known = rc == WAL_RC_BAD_RECORD && h.type != WAL_REC_BATCH;
		bad->group = bad->group_known ? h.group : 0;
		return WAL_SCAN_BAD;
	}
	const uint8_t *pl = seg + off + WAL_REC_HEADER_BYTES;
	b->off = off;
	b->seq = wal_get64(pl);
	b->bytes = wal_get32(pl + 8);
	b->n = wal_get32(pl + 12);
	if (b->bytes < WAL_BATCH_HEADER_RECORD_BYTES || b->bytes % WAL_REC_ALIGN ||
	    b->bytes > size - off) {
		bad->problem = b->bytes > size - off ? "incomplete batch" : "bad batch length";
		return WAL_SCAN_BAD;
	}
	bad->batch_known = true;
	bad->batch_start = off;
	bad->batch_end = off + b->bytes;
	size_t end = off + b->bytes, p = off + WAL_BATCH_HEADER_RECORD_BYTES;
	for (uint32_t i = 0; i < b->n; i++) {
		bad->off = p;
		rc = p < end ? wal_rec_check(seg + p, end - p, &h, &problem) : WAL_RC_BAD_HEADER;
		if (p >= end)
			problem = "batch shorter than its record count";
		if (rc == WAL_RC_ZERO) {
			rc = WAL_RC_BAD_HEADER;
			problem = "zeroes inside a batch";
		}
		if (rc == WAL_RC_OK && h.type == WAL_REC_BATCH) {
			rc = WAL_RC_BAD_RECORD;
			problem = "nested batch record";
		}
		if (rc != WAL_RC_OK) {
			bad->problem = problem;
			bad->group_known = rc == WAL_RC_BAD_RECORD;
			bad->group = bad->group_known ? h.group : 0;
			return WAL_SCAN_BAD;
		}
		p += wal_rec_size(h.length);
	}
	if (p > end || end - p >= WAL_BATCH_PAD_MAX || !wal_scan_zero(seg + p, end - p)) {
		bad->off = p;
		bad->problem = "batch longer than its records";
		return WAL_SCAN_BAD;
	}
	b->records_end = p;
	return WAL_SCAN_OK;
}

size_t wal_scan_find(const uint8_t *seg, size_t size, size_t from, uint64_t min_seq, uint32_t nonce)
{
	from = wal_align8(from);
	for (size_t off = from; off + WAL_BATCH_HEADER_RECORD_BYTES <= size; off += 8) {
		/* cheap filters first: the type byte, then the header check */
		if (seg[off + 4] != WAL_REC_BATCH || wal_get32(seg + off) != WAL_BATCH_BYTES)
			continue;
		struct wal_scan_batch b;
		struct wal_scan_bad bad;
		if (wal_scan_batch(seg, size, off, nonce, &b, &bad) == WAL_SCAN_OK &&
		    b.seq >= min_seq)
			return off;
	}
	return SIZE_MAX;
}

size_t wal_scan_reach(const uint8_t *seg, size_t size, size_t from, size_t to, uint32_t nonce)
{
	size_t reach = 0;
	for (size_t off = wal_align8(from); off < to && off + WAL_BATCH_HEADER_RECORD_BYTES <= size;
	     off += 8) {
		if (seg[off + 4] != WAL_REC_BATCH || wal_get32(seg + off) != WAL_BATCH_BYTES)
			continue;
		struct wal_rec_header h;
		const char *problem;
		if (wal_rec_check(seg + off, size - off, &h, &problem) != WAL_RC_OK ||
		    (nonce != 0 && h.group != nonce))
			continue; /* refused on its header: its extent is not read */
		size_t bytes = wal_get32(seg + off + WAL_REC_HEADER_BYTES + 8);
		if (bytes >= WAL_BATCH_HEADER_RECORD_BYTES && bytes % WAL_REC_ALIGN == 0 &&
		    bytes <= size - off && off + bytes > reach)
			reach = off + bytes;
	}
	return reach;
}

bool wal_scan_has_batch(const uint8_t *seg, size_t size)
{
	return wal_scan_find(seg, size, WAL_SEG_HEADER_BYTES, 0, 0) != SIZE_MAX;
}

bool wal_scan_next_record(const uint8_t *seg, const struct wal_scan_batch *b, size_t *cursor,
			  struct wal_rec_view *r)
{
	if (*cursor == 0)
		*cursor = b->off + WAL_BATCH_HEADER_RECORD_BYTES;
	if (*cursor >= b->records_end)
		return false;
	const uint8_t *p = seg + *cursor;
	r->off = *cursor;
	r->length = wal_get32(p);
	r->type = p[4];
	r->group = wal_get64(p + 8);
	r->payload = p + WAL_REC_HEADER_BYTES;
	r->size = wal_rec_size(r->length);
	*cursor += r->size;
	return true;
}
