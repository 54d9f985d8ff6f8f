/* test_record.c — the record codec (wal/record.c): a sealed record of every type checks OK;
 * every single-bit flip anywhere in it is caught, by the header check (group unknown) or by
 * the CRC (group still named); short reads and zeroes are told apart from data. */
#include <check.h>
#include <string.h>

#include "wal/crc32c.h"
#include "wal/format.h"
#include "wal/wal.h"

static size_t make(uint8_t *rec, uint8_t type, uint64_t group)
{
	uint8_t *p = rec + WAL_REC_HEADER_BYTES;
	uint32_t len = 0;
	switch (type) {
	case WAL_REC_ENTRIES:
		wal_put64(p, 7);
		wal_put32(p + 8, 2);
		wal_put32(p + 12, 0);
		len = WAL_ENTRIES_HEADER_BYTES;
		for (int i = 0; i < 2; i++) {
			wal_put64(p + len, 3);
			wal_put32(p + len + 8, 5);
			memset(p + len + 12, 0, 4);
			memcpy(p + len + 16, "hello", 5);
			len += WAL_ENTRY_HEADER_BYTES + 5;
		}
		break;
	case WAL_REC_HARD_STATE:
		memset(p, 1, WAL_HARD_STATE_BYTES);
		len = WAL_HARD_STATE_BYTES;
		break;
	case WAL_REC_SNAPSHOT:
		memset(p, 0, WAL_SNAPSHOT_FIXED_BYTES + 16);
		wal_put64(p, 9);
		wal_put32(p + 16, 1);
		wal_put32(p + 20, 1);
		len = WAL_SNAPSHOT_FIXED_BYTES + 16;
		break;
	case WAL_REC_BATCH:
		memset(p, 0, WAL_BATCH_BYTES);
		len = WAL_BATCH_BYTES;
		break;
	default: /* TRUNCATE, CHECKPOINT */
		wal_put64(p, 4);
		len = 8;
	}
	wal_rec_seal(rec, type, group, len);
	return wal_rec_size(len);
}

START_TEST(test_every_type_checks_and_every_flip_is_caught)
{
	for (uint8_t type = WAL_REC_ENTRIES; type <= WAL_REC_BATCH; type++) {
		uint8_t rec[256];
		size_t n = make(rec, type, 0x1122334455667788ull);
		ck_assert_uint_eq(n % 8, 0);
		struct wal_rec_header h;
		const char *problem = NULL;
		ck_assert_int_eq(wal_rec_check(rec, n, &h, &problem), WAL_RC_OK);
		ck_assert_uint_eq(h.type, type);
		ck_assert_uint_eq(h.group, 0x1122334455667788ull);
		for (size_t bit = 0; bit < n * 8; bit++) {
			rec[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			enum wal_rec_check rc = wal_rec_check(rec, n, &h, &problem);
			ck_assert_msg(rc == WAL_RC_BAD_HEADER || rc == WAL_RC_BAD_RECORD,
				      "type %u: flip of bit %zu accepted", type, bit);
			if (rc == WAL_RC_BAD_RECORD)
				ck_assert_uint_eq(h.group, 0x1122334455667788ull);
			ck_assert_ptr_nonnull(problem);
			rec[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		}
		/* short reads */
		for (size_t avail = 0; avail < n; avail++)
			ck_assert_int_ne(wal_rec_check(rec, avail, &h, &problem), WAL_RC_OK);
	}
}
END_TEST

START_TEST(test_zeroes_and_garbage)
{
	uint8_t z[64] = {0};
	struct wal_rec_header h;
	const char *problem;
	ck_assert_int_eq(wal_rec_check(z, sizeof z, &h, &problem), WAL_RC_ZERO);
	z[30] = 1; /* zero header: still "no record here" */
	ck_assert_int_eq(wal_rec_check(z, sizeof z, &h, &problem), WAL_RC_ZERO);
	z[4] = 9; /* unknown type */
	ck_assert_int_eq(wal_rec_check(z, sizeof z, &h, &problem), WAL_RC_BAD_HEADER);
	/* a length beyond the limit is refused even with a valid header check */
	uint8_t rec[64];
	make(rec, WAL_REC_CHECKPOINT, 1);
	wal_put32(rec, WAL_RECORD_BYTES_MAX + 1);
	ck_assert_int_eq(wal_rec_check(rec, sizeof rec, &h, &problem), WAL_RC_BAD_HEADER);
}
END_TEST

START_TEST(test_malformed_payloads)
{
	uint8_t rec[256];
	struct wal_rec_header h;
	const char *problem;
	/* ENTRIES whose count says more entries than the payload holds, sealed with a valid CRC */
	make(rec, WAL_REC_ENTRIES, 1);
	wal_put32(rec + WAL_REC_HEADER_BYTES + 8, 3);
	wal_rec_seal(rec, WAL_REC_ENTRIES, 1, wal_get32(rec));
	ck_assert_int_eq(wal_rec_check(rec, sizeof rec, &h, &problem), WAL_RC_BAD_RECORD);
	ck_assert_str_eq(problem, "malformed record payload");
	/* TRUNCATE from 0 */
	make(rec, WAL_REC_TRUNCATE, 1);
	wal_put64(rec + WAL_REC_HEADER_BYTES, 0);
	wal_rec_seal(rec, WAL_REC_TRUNCATE, 1, 8);
	ck_assert_int_eq(wal_rec_check(rec, sizeof rec, &h, &problem), WAL_RC_BAD_RECORD);
	/* SNAPSHOT with more voters than RAFT_NODES_MAX */
	make(rec, WAL_REC_SNAPSHOT, 1);
	wal_put32(rec + WAL_REC_HEADER_BYTES + 16, RAFT_NODES_MAX + 1);
	wal_rec_seal(rec, WAL_REC_SNAPSHOT, 1, WAL_SNAPSHOT_FIXED_BYTES + 16);
	ck_assert_int_eq(wal_rec_check(rec, sizeof rec, &h, &problem), WAL_RC_BAD_RECORD);
}
END_TEST

/* Both formats: 2 (a nonce) and 1 (read still). */
START_TEST(test_segment_header)
{
	static const uint32_t nonces[] = {0x8badf00d, 0};
	for (size_t k = 0; k < 2; k++) {
		uint8_t h[WAL_SEG_HEADER_BYTES];
		uint32_t nonce = 7;
		wal_seg_header_encode(h, 42, nonces[k]);
		ck_assert_uint_eq(wal_get32(h + 8),
				  nonces[k] ? WAL_SEG_VERSION : WAL_SEG_VERSION_1);
		ck_assert(wal_seg_header_valid(h, sizeof h, 42, &nonce));
		ck_assert_uint_eq(nonce, nonces[k]);
		ck_assert(wal_seg_header_valid(h, sizeof h, 42, NULL));
		ck_assert(!wal_seg_header_valid(h, sizeof h, 43, NULL)); /* renamed file */
		ck_assert(!wal_seg_header_valid(h, sizeof h - 1, 42, NULL));
		for (size_t bit = 0; bit < 28 * 8; bit++) {
			h[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			ck_assert(!wal_seg_header_valid(h, sizeof h, 42, NULL));
			h[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		}
	}
	/* format 2 with no nonce, or a version after 2: not a header this code can read */
	uint8_t h[WAL_SEG_HEADER_BYTES];
	wal_seg_header_encode(h, 42, 1);
	wal_put32(h + 12, 0);
	wal_put32(h + 24, wal_crc32c(0, h, 24));
	ck_assert(!wal_seg_header_valid(h, sizeof h, 42, NULL));
	wal_seg_header_encode(h, 42, 1);
	wal_put32(h + 8, WAL_SEG_VERSION + 1);
	wal_put32(h + 24, wal_crc32c(0, h, 24));
	ck_assert(!wal_seg_header_valid(h, sizeof h, 42, NULL));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("wal_record");
	TCase *tc = tcase_create("record");
	tcase_add_test(tc, test_every_type_checks_and_every_flip_is_caught);
	tcase_add_test(tc, test_zeroes_and_garbage);
	tcase_add_test(tc, test_malformed_payloads);
	tcase_add_test(tc, test_segment_header);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
