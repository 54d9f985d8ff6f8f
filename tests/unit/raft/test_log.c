/* test_log.c — the in-memory log array: append, term lookup, truncate, compact (and append
 * after compaction, where the array is shifted), reset to a snapshot point, and the bytes
 * of data the log holds through all of them. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raft/log.h"

static void append(struct raft_log *l, raft_term term, const char *s)
{
	struct raft_entry e = {.term = term, .index = raft_log_last(l) + 1};
	if (s != NULL) {
		e.data.len = strlen(s) + 1;
		e.data.base = malloc(e.data.len);
		memcpy(e.data.base, s, e.data.len);
	}
	ck_assert_int_eq(raft_log_append(l, &e), 0);
}

START_TEST(test_append_and_terms)
{
	struct raft_log l;
	raft_log_init(&l, 0, 0);
	ck_assert_uint_eq(raft_log_last(&l), 0);
	ck_assert_uint_eq(raft_log_term_at(&l, 0), 0);
	append(&l, 1, "a");
	append(&l, 1, "b");
	append(&l, 3, NULL);
	ck_assert_uint_eq(raft_log_last(&l), 3);
	ck_assert_uint_eq(raft_log_term_at(&l, 1), 1);
	ck_assert_uint_eq(raft_log_term_at(&l, 3), 3);
	ck_assert_uint_eq(raft_log_term_at(&l, 4), 0);
	ck_assert_uint_eq(raft_log_last_term(&l), 3);
	ck_assert_str_eq(raft_log_get(&l, 2)->data.base, "b");
	ck_assert_ptr_null(raft_log_get(&l, 0));
	ck_assert_ptr_null(raft_log_get(&l, 4));
	/* contiguous: entry i+1 follows entry i in memory */
	ck_assert_ptr_eq(raft_log_get(&l, 1) + 1, raft_log_get(&l, 2));
	raft_log_close(&l);
}
END_TEST

START_TEST(test_truncate)
{
	struct raft_log l;
	raft_log_init(&l, 0, 0);
	for (int i = 0; i < 10; i++)
		append(&l, 1 + i / 4, "x");
	raft_log_truncate(&l, 6);
	ck_assert_uint_eq(raft_log_last(&l), 5);
	ck_assert_uint_eq(raft_log_term_at(&l, 5), 2);
	ck_assert_uint_eq(raft_log_term_at(&l, 6), 0);
	raft_log_truncate(&l, 9); /* beyond the end: nothing */
	ck_assert_uint_eq(raft_log_last(&l), 5);
	append(&l, 7, "y");
	ck_assert_uint_eq(raft_log_term_at(&l, 6), 7);
	raft_log_close(&l);
}
END_TEST

START_TEST(test_compact_and_grow)
{
	struct raft_log l;
	raft_log_init(&l, 0, 0);
	char buf[32];
	for (int i = 1; i <= 1000; i++) {
		snprintf(buf, sizeof(buf), "%d", i);
		append(&l, 1 + i / 100, buf);
		if (i % 50 == 0)
			raft_log_compact(&l, (raft_index)i - 10);
	}
	ck_assert_uint_eq(raft_log_first(&l), 991);
	ck_assert_uint_eq(raft_log_term_at(&l, 990), 1 + 990 / 100);
	ck_assert_uint_eq(raft_log_term_at(&l, 989), 0); /* compacted: unknown */
	ck_assert_ptr_null(raft_log_get(&l, 990));
	for (raft_index i = 991; i <= 1000; i++) {
		snprintf(buf, sizeof(buf), "%d", (int)i);
		ck_assert_str_eq(raft_log_get(&l, i)->data.base, buf);
	}
	/* the array never grew beyond a small multiple of the live entries */
	ck_assert_uint_le(l.cap, 256);
	raft_log_compact(&l, 1000);
	ck_assert_uint_eq(raft_log_last(&l), 1000);
	ck_assert_uint_eq(raft_log_first(&l), 1001);
	ck_assert_uint_eq(raft_log_last_term(&l), 11);
	append(&l, 11, "z");
	ck_assert_uint_eq(raft_log_last(&l), 1001);
	raft_log_close(&l);
}
END_TEST

/* bytes: the data held, through appends, a truncation, compactions and a reset */
START_TEST(test_bytes_held)
{
	struct raft_log l;
	raft_log_init(&l, 0, 0);
	ck_assert_uint_eq(l.bytes, 0);
	append(&l, 1, "aaaa");    /* 5 bytes with the NUL */
	append(&l, 1, NULL);      /* 0 */
	append(&l, 1, "bb");      /* 3 */
	append(&l, 2, "cccccc");  /* 7 */
	ck_assert_uint_eq(l.bytes, 15);
	raft_log_truncate(&l, 4); /* drops "cccccc" */
	ck_assert_uint_eq(l.bytes, 8);
	append(&l, 3, "dd");
	ck_assert_uint_eq(l.bytes, 11);
	raft_log_compact(&l, 1); /* drops "aaaa" */
	ck_assert_uint_eq(l.bytes, 6);
	char buf[16];
	uint64_t want = 6;
	for (int i = 0; i < 300; i++) { /* the array shifts and grows under it */
		snprintf(buf, sizeof buf, "%d", i);
		append(&l, 3, buf);
		want += strlen(buf) + 1;
	}
	ck_assert_uint_eq(l.bytes, want);
	raft_log_compact(&l, raft_log_last(&l));
	ck_assert_uint_eq(l.bytes, 0);
	append(&l, 3, "e");
	raft_log_reset(&l, 500, 4);
	ck_assert_uint_eq(l.bytes, 0);
	raft_log_close(&l);
}
END_TEST

START_TEST(test_reset_and_copy)
{
	struct raft_log l;
	raft_log_init(&l, 0, 0);
	append(&l, 1, "a");
	raft_log_reset(&l, 50, 4);
	ck_assert_uint_eq(raft_log_last(&l), 50);
	ck_assert_uint_eq(raft_log_term_at(&l, 50), 4);
	char src[] = "copied";
	struct raft_entry e = {.term = 4, .index = 51, .data = {src, sizeof(src)}};
	ck_assert_int_eq(raft_log_append_copy(&l, &e), 0);
	src[0] = 'X'; /* the log has its own copy */
	ck_assert_str_eq(raft_log_get(&l, 51)->data.base, "copied");
	raft_log_close(&l);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("raft_log");
	TCase *tc = tcase_create("log");
	tcase_add_test(tc, test_append_and_terms);
	tcase_add_test(tc, test_truncate);
	tcase_add_test(tc, test_compact_and_grow);
	tcase_add_test(tc, test_reset_and_copy);
	tcase_add_test(tc, test_bytes_held);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
