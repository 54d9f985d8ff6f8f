/* test_crc32c.c — CRC32C: published test vectors, and the SSE4.2 and table paths agree on
 * every length and alignment (so a WAL written on one machine verifies on another). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "wal/crc32c.h"

START_TEST(test_known_vectors)
{
	ck_assert_uint_eq(wal_crc32c(0, "123456789", 9), 0xE3069283u);
	ck_assert_uint_eq(wal_crc32c_sw(0, "123456789", 9), 0xE3069283u);
	uint8_t b[32];
	memset(b, 0, sizeof b); /* RFC 3720 B.4 */
	ck_assert_uint_eq(wal_crc32c_sw(0, b, 32), 0x8A9136AAu);
	memset(b, 0xff, sizeof b);
	ck_assert_uint_eq(wal_crc32c_sw(0, b, 32), 0x62A8AB43u);
	for (int i = 0; i < 32; i++)
		b[i] = (uint8_t)i;
	ck_assert_uint_eq(wal_crc32c_sw(0, b, 32), 0x46DD794Eu);
	ck_assert_uint_eq(wal_crc32c(0, b, 32), 0x46DD794Eu);
	ck_assert_uint_eq(wal_crc32c(0, "", 0), 0);
}
END_TEST

START_TEST(test_hw_matches_sw)
{
	if (!wal_crc32c_hw_available())
		return; /* nothing to compare on this CPU: the table path is the only one */
	ck_assert_uint_eq(wal_crc32c_hw(0, "123456789", 9), 0xE3069283u);
	uint8_t *buf = malloc(4096 + 16);
	srand(7);
	for (size_t i = 0; i < 4096 + 16; i++)
		buf[i] = (uint8_t)rand();
	for (size_t align = 0; align < 8; align++)
		for (size_t len = 0; len < 300; len++)
			ck_assert_uint_eq(wal_crc32c_hw(0, buf + align, len),
					  wal_crc32c_sw(0, buf + align, len));
	ck_assert_uint_eq(wal_crc32c_hw(0, buf, 4096), wal_crc32c_sw(0, buf, 4096));
	free(buf);
}
END_TEST

START_TEST(test_chaining)
{
	const char *s = "the quick brown fox jumps over the lazy dog";
	size_t n = strlen(s);
	uint32_t whole = wal_crc32c(0, s, n);
	for (size_t cut = 0; cut <= n; cut++) {
		ck_assert_uint_eq(wal_crc32c(wal_crc32c(0, s, cut), s + cut, n - cut), whole);
		ck_assert_uint_eq(wal_crc32c_sw(wal_crc32c_sw(0, s, cut), s + cut, n - cut), whole);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("wal_crc32c");
	TCase *tc = tcase_create("crc32c");
	tcase_add_test(tc, test_known_vectors);
	tcase_add_test(tc, test_hw_matches_sw);
	tcase_add_test(tc, test_chaining);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
