/* test_kvctl_args.c — kvctl's command line: durations, flags before and after the command,
 * "--" for keys that start with '-', environment endpoints, and a clear refusal of bad input. */
#include <check.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/kvctl.h"

static int parse(struct kvctl_args *a, const char *env, int argc, ...)
{
	static char *argv[32];
	va_list ap;
	va_start(ap, argc);
	argv[0] = "kvctl";
	for (int i = 1; i <= argc; i++)
		argv[i] = va_arg(ap, char *);
	va_end(ap);
	return kvctl_parse(argc + 1, argv, env, a);
}

START_TEST(test_durations)
{
	ck_assert_int_eq(kvctl_parse_duration_ms("5s"), 5000);
	ck_assert_int_eq(kvctl_parse_duration_ms("500ms"), 500);
	ck_assert_int_eq(kvctl_parse_duration_ms("1.5s"), 1500);
	ck_assert_int_eq(kvctl_parse_duration_ms("2m"), 120000);
	ck_assert_int_eq(kvctl_parse_duration_ms("3"), 3000);
	ck_assert_int_eq(kvctl_parse_duration_ms("x"), -1);
	ck_assert_int_eq(kvctl_parse_duration_ms("5h"), 5 * 3600000);
	ck_assert_int_eq(kvctl_parse_duration_ms("7d"), 7 * 86400000LL);
	ck_assert_int_eq(kvctl_parse_duration_ms("5y"), -1);
	ck_assert_int_eq(kvctl_parse_duration_ms("40000d"), -1); /* over 10^12 ms */
	ck_assert_int_eq(kvctl_parse_duration_ms("-1s"), -1);
	ck_assert_int_eq(kvctl_parse_duration_ms(""), -1);
	ck_assert_int_eq(kvctl_parse_duration_ms("nan"), -1);
}
END_TEST

START_TEST(test_ttl_flag)
{
	struct kvctl_args a;
	ck_assert_int_eq(parse(&a, NULL, 4, "put", "--ttl", "500ms", "k"), 0);
	ck_assert_uint_eq(a.ttl_ms, 500);
	ck_assert(a.seen & KVCTL_F_TTL);
	ck_assert_int_eq(parse(&a, NULL, 3, "put", "--ttl=2h", "k"), 0);
	ck_assert_uint_eq(a.ttl_ms, 7200000);
	ck_assert_int_eq(parse(&a, NULL, 4, "put", "--ttl", "0", "k"), KVCTL_EXIT_USAGE);
	ck_assert_int_eq(parse(&a, NULL, 4, "put", "--ttl", "soon", "k"), KVCTL_EXIT_USAGE);
	ck_assert_int_eq(parse(&a, NULL, 2, "put", "k"), 0);
	ck_assert_uint_eq(a.ttl_ms, 0);
}
END_TEST

START_TEST(test_count_flag)
{
	struct kvctl_args a;
	ck_assert_int_eq(parse(&a, NULL, 2, "groups", "add"), 0);
	ck_assert_uint_eq(a.count, 0); /* not given: one group */
	ck_assert_int_eq(parse(&a, NULL, 4, "groups", "add", "--count", "3"), 0);
	ck_assert_uint_eq(a.count, 3);
	ck_assert(a.seen & KVCTL_F_COUNT);
	ck_assert_int_eq(parse(&a, NULL, 3, "groups", "add", "--count=32"), 0);
	ck_assert_uint_eq(a.count, 32);
	ck_assert_int_eq(parse(&a, NULL, 3, "groups", "add", "--count=33"), KVCTL_EXIT_USAGE);
	ck_assert_int_eq(parse(&a, NULL, 4, "groups", "add", "--count", "0"), KVCTL_EXIT_USAGE);
	ck_assert_int_eq(parse(&a, NULL, 4, "groups", "add", "--count", "two"), KVCTL_EXIT_USAGE);
	ck_assert_ptr_nonnull(strstr(a.err, "--count"));
}
END_TEST

START_TEST(test_defaults_and_env)
{
	struct kvctl_args a;
	ck_assert_int_eq(parse(&a, NULL, 2, "get", "k"), 0);
	ck_assert_str_eq(a.endpoints, KVCTL_DEFAULT_ENDPOINTS);
	ck_assert_uint_eq(a.timeout_ms, CLI_TIMEOUT_MS_DEFAULT);
	ck_assert_int_eq(a.output, KVCTL_OUT_TABLE);
	ck_assert_int_eq(a.npos, 2);
	ck_assert_int_eq(parse(&a, "10.0.0.1:1", 2, "get", "k"), 0);
	ck_assert_str_eq(a.endpoints, "10.0.0.1:1");
	ck_assert_int_eq(parse(&a, "10.0.0.1:1", 3, "--endpoints=1.2.3.4:5", "get", "k"), 0);
	ck_assert_str_eq(a.endpoints, "1.2.3.4:5");
}
END_TEST

START_TEST(test_flags_anywhere)
{
	struct kvctl_args a;
	ck_assert_int_eq(parse(&a, NULL, 8, "scan", "--timeout", "250ms", "pre", "-o", "json",
			       "--limit", "7"),
			 0);
	ck_assert_uint_eq(a.timeout_ms, 250);
	ck_assert_int_eq(a.output, KVCTL_OUT_JSON);
	ck_assert_uint_eq(a.limit, 7);
	ck_assert(a.seen & KVCTL_F_LIMIT);
	ck_assert_int_eq(a.npos, 2);
	ck_assert_str_eq(a.pos[1], "pre");
	ck_assert_int_eq(parse(&a, NULL, 5, "--serializable", "get", "--", "-k", "-"), 0);
	ck_assert(a.serializable);
	ck_assert_int_eq(a.npos, 3);
	ck_assert_str_eq(a.pos[1], "-k");
	ck_assert_str_eq(a.pos[2], "-");
	ck_assert_int_eq(parse(&a, NULL, 3, "put", "k", "-"), 0);
	ck_assert_str_eq(a.pos[2], "-");
}
END_TEST

START_TEST(test_wal_passthrough)
{
	struct kvctl_args a;
	ck_assert_int_eq(parse(&a, NULL, 5, "--timeout", "1s", "wal", "dump", "--weird"), 0);
	ck_assert_int_eq(a.rest_index, 3);
	ck_assert_str_eq(a.pos[0], "wal");
}
END_TEST

START_TEST(test_bad_input)
{
	struct kvctl_args a;
	ck_assert_int_eq(parse(&a, NULL, 2, "--frob", "get"), KVCTL_EXIT_USAGE);
	ck_assert_ptr_nonnull(strstr(a.err, "--frob"));
	ck_assert_int_eq(parse(&a, NULL, 3, "--timeout", "0", "status"), KVCTL_EXIT_USAGE);
	ck_assert_ptr_nonnull(strstr(a.err, "--timeout"));
	ck_assert_int_eq(parse(&a, NULL, 2, "status", "--timeout"), KVCTL_EXIT_USAGE);
	ck_assert_ptr_nonnull(strstr(a.err, "needs a value"));
	ck_assert_int_eq(parse(&a, NULL, 3, "-o", "xml", "status"), KVCTL_EXIT_USAGE);
	ck_assert_int_eq(parse(&a, NULL, 3, "bench", "--clients", "0"), KVCTL_EXIT_USAGE);
	ck_assert_int_eq(parse(&a, NULL, 3, "bench", "--clients", "-3"), KVCTL_EXIT_USAGE);
	ck_assert_int_eq(parse(&a, NULL, 3, "bench", "--pipeline", "99999"), KVCTL_EXIT_USAGE);
	ck_assert_int_eq(parse(&a, NULL, 3, "bench", "--op", "frob"), KVCTL_EXIT_USAGE);
	ck_assert_int_eq(parse(&a, NULL, 3, "scan", "--limit", "12x"), KVCTL_EXIT_USAGE);
	ck_assert_int_eq(parse(&a, NULL, 2, "--endpoints=", "status"), KVCTL_EXIT_USAGE);
}
END_TEST

START_TEST(test_exit_codes)
{
	ck_assert_int_eq(kvctl_exit_of(CLI_OK), 0);
	ck_assert_int_eq(kvctl_exit_of(CLI_NOT_FOUND), 1);
	ck_assert_int_eq(kvctl_exit_of(CLI_CAS_MISMATCH), 1);
	ck_assert_int_eq(kvctl_exit_of(CLI_TOO_LARGE), 2);
	ck_assert_int_eq(kvctl_exit_of(CLI_UNAVAILABLE), 3);
	ck_assert_int_eq(kvctl_exit_of(CLI_TIMEOUT), 3);
	ck_assert_int_eq(kvctl_exit_of(CLI_ECONN), 3);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("kvctl_args");
	TCase *t = tcase_create("args");
	tcase_add_test(t, test_durations);
	tcase_add_test(t, test_ttl_flag);
	tcase_add_test(t, test_count_flag);
	tcase_add_test(t, test_defaults_and_env);
	tcase_add_test(t, test_flags_anywhere);
	tcase_add_test(t, test_wal_passthrough);
	tcase_add_test(t, test_bad_input);
	tcase_add_test(t, test_exit_codes);
	suite_add_tcase(s, t);
	SRunner *r = srunner_create(s);
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
