/* test_kvctl_out.c — kvctl's output helpers: JSON strings escape what JSON requires, bytes that
 * are not UTF-8 go out as base64 under a separate name, sizes read as humans expect. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/kvctl.h"

static char *capture_str(const void *data, size_t len, bool *ok)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	*ok = kvctl_json_str(f, data, len);
	fclose(f);
	return buf;
}

static char *capture_bytes(const char *name, const void *data, size_t len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	kvctl_json_bytes(f, name, data, len);
	fclose(f);
	return buf;
}

START_TEST(test_json_escapes)
{
	bool ok;
	char *s = capture_str("a\"b\\c\n\t\x01\x7f", 9, &ok);
	ck_assert(ok);
	ck_assert_str_eq(s, "\"a\\\"b\\\\c\\n\\t\\u0001\\u007f\"");
	free(s);
	s = capture_str("h\xc3\xa9llo \xe2\x82\xac", 10, &ok); /* é and € pass through */
	ck_assert(ok);
	ck_assert_str_eq(s, "\"h\xc3\xa9llo \xe2\x82\xac\"");
	free(s);
	s = capture_str("x\0y", 3, &ok); /* NUL is valid UTF-8: escaped */
	ck_assert(ok);
	ck_assert_str_eq(s, "\"x\\u0000y\"");
	free(s);
}
END_TEST

START_TEST(test_not_utf8_is_refused)
{
	const char *bad[] = {"\xff",  "\xc3", "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80",
			     "ok\x80"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		bool ok;
		char *s = capture_str(bad[i], strlen(bad[i]), &ok);
		ck_assert_msg(!ok, "case %zu accepted", i);
		ck_assert_str_eq(s, "");
		free(s);
	}
}
END_TEST

START_TEST(test_binary_as_base64)
{
	char *s = capture_bytes("value", "\xff\xfe", 2);
	ck_assert_str_eq(s, "\"value\": null, \"value_base64\": \"//4=\"");
	free(s);
	s = capture_bytes("value", "\x80\x00\x01\x02", 4);
	ck_assert_str_eq(s, "\"value\": null, \"value_base64\": \"gAABAg==\"");
	free(s);
	s = capture_bytes("key", "\xfa\xfb\xfc", 3);
	ck_assert_str_eq(s, "\"key\": null, \"key_base64\": \"+vv8\"");
	free(s);
	s = capture_bytes("value", "text", 4);
	ck_assert_str_eq(s, "\"value\": \"text\"");
	free(s);
}
END_TEST

START_TEST(test_human_bytes)
{
	char b[32];
	ck_assert_str_eq(kvctl_human_bytes(0, b, sizeof b), "0 B");
	ck_assert_str_eq(kvctl_human_bytes(1023, b, sizeof b), "1023 B");
	ck_assert_str_eq(kvctl_human_bytes(1536, b, sizeof b), "1.5 KiB");
	ck_assert_str_eq(kvctl_human_bytes(64ull << 20, b, sizeof b), "64.0 MiB");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("kvctl_out");
	TCase *t = tcase_create("out");
	tcase_add_test(t, test_json_escapes);
	tcase_add_test(t, test_not_utf8_is_refused);
	tcase_add_test(t, test_binary_as_base64);
	tcase_add_test(t, test_human_bytes);
	suite_add_tcase(s, t);
	SRunner *r = srunner_create(s);
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
