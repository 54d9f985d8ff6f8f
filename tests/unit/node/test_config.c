/* test_config.c — kvd's settings: a first start persists cluster.conf and a restart needs only
 * --data-dir; wrong, missing or conflicting flags are refused with a message naming the flag;
 * a --config file gives the same keys. */
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node/config.h"

/* ------------------------------------------------------------------------------ fixture */
static char dir[256];
static char err[1024];
static struct node_config cfg;

static int rm_cb(const char *p, const struct stat *s, int f, struct FTW *w)
{
	(void)s;
	(void)f;
	(void)w;
	return remove(p);
}

static void setup(void)
{
	snprintf(dir, sizeof dir, "/tmp/ringraft-config-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
	nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

#define CLUSTER "1=127.0.0.11:7001,2=127.0.0.12:7001,3=127.0.0.13:7001"

static int load(int argc, char **argv)
{
	err[0] = '\0';
	return node_config_load(argc, argv, &cfg, err, sizeof err);
}

static int bootstrap(void)
{
	char *argv[] = {"kvd",
			"--id",
			"2",
			"--data-dir",
			dir,
			"--client-addr",
			"127.0.0.12:9001",
			"--cluster",
			CLUSTER,
			"--groups=6",
			NULL};
	return load(10, argv);
}

/* ------------------------------------------------------------------------------ tests */
START_TEST(test_bootstrap_then_restart_with_data_dir_only)
{
	ck_assert_int_eq(bootstrap(), 0);
	ck_assert_uint_eq(cfg.id, 2);
	ck_assert_uint_eq(cfg.groups, 6);
	ck_assert_uint_eq(cfg.n_members, 3);
	ck_assert_str_eq(cfg.peer_addr, "127.0.0.12:7001");
	uint64_t cid = cfg.cluster_id;
	char path[300];
	snprintf(path, sizeof path, "%s/cluster.conf", dir);
	ck_assert_int_eq(access(path, R_OK), 0);
	char *argv[] = {"kvd", "--data-dir", dir, "--election-ms", "300", NULL};
	ck_assert_int_eq(load(5, argv), 0);
	ck_assert_uint_eq(cfg.id, 2);
	ck_assert_uint_eq(cfg.groups, 6);
	ck_assert_str_eq(cfg.client_addr, "127.0.0.12:9001");
	ck_assert_uint_eq(cfg.election_ms, 300);
	ck_assert_uint_eq(cfg.cluster_id, cid);
}
END_TEST

/* A cluster.conf without an identity key (here groups) is refused even when the flags give
 * every key: it used to be accepted without being rewritten, so the next restart with only
 * --data-dir was refused, or (groups) ran on the default (found by tests/fuzz/fuzz_config). */
START_TEST(test_incomplete_cluster_conf_refused)
{
	ck_assert_int_eq(bootstrap(), 0);
	char path[300];
	snprintf(path, sizeof path, "%s/cluster.conf", dir);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "id = 2\npeer-addr = 127.0.0.12:7001\nclient-addr = 127.0.0.12:9001\n"
		   "cluster = " CLUSTER "\n");
	fclose(f);
	ck_assert_int_eq(bootstrap(), NODE_ECONFIG);
	ck_assert_msg(strstr(err, "lacks 'groups'") != NULL, "[%s]", err);
	char *argv[] = {"kvd", "--data-dir", dir, NULL};
	ck_assert_int_eq(load(3, argv), NODE_ECONFIG);
	ck_assert_ptr_nonnull(strstr(err, "lacks 'groups'"));
}
END_TEST

/* cluster.conf holds only what kvd writes there: a tunable added by hand is refused, with or
 * without a flag giving the same key (a damaged kv-sync there, overridden by the flag at one
 * start, refused the next restart with only --data-dir; found by tests/fuzz/fuzz_config). */
START_TEST(test_cluster_conf_with_a_foreign_key_refused)
{
	ck_assert_int_eq(bootstrap(), 0);
	char path[300];
	snprintf(path, sizeof path, "%s/cluster.conf", dir);
	FILE *f = fopen(path, "a");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "kv-sync = 1\n");
	fclose(f);
	char *with_flag[] = {"kvd", "--data-dir", dir, "--kv-sync", "on", NULL};
	ck_assert_int_eq(load(5, with_flag), NODE_ECONFIG);
	ck_assert_msg(strstr(err, "holds 'kv-sync'") != NULL, "[%s]", err);
	char *argv[] = {"kvd", "--data-dir", dir, NULL};
	ck_assert_int_eq(load(3, argv), NODE_ECONFIG);
	ck_assert_msg(strstr(err, "holds 'kv-sync'") != NULL, "[%s]", err);
}
END_TEST

/* A cluster.conf from before --join (no join key) is a bootstrap member's: --join given with
 * it is a conflict, not a joining node that the next restart refuses (tests/fuzz/fuzz_config). */
START_TEST(test_join_with_a_bootstrap_members_cluster_conf_refused)
{
	ck_assert_int_eq(bootstrap(), 0);
	char path[300];
	snprintf(path, sizeof path, "%s/cluster.conf", dir);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "id = 2\npeer-addr = 127.0.0.12:7001\nclient-addr = 127.0.0.12:9001\n"
		   "cluster = " CLUSTER "\ngroups = 6\n");
	fclose(f);
	char *plain[] = {"kvd", "--data-dir", dir, NULL};
	ck_assert_int_eq(load(3, plain), 0);
	ck_assert(!cfg.join);
	char *join[] = {"kvd", "--data-dir", dir, "--join", "on", NULL};
	ck_assert_int_eq(load(5, join), NODE_ECONFIG);
	ck_assert_msg(strstr(err, "--join on conflicts") != NULL, "[%s]", err);
}
END_TEST

START_TEST(test_conflicting_groups_refused)
{
	ck_assert_int_eq(bootstrap(), 0);
	char *argv[] = {"kvd", "--data-dir", dir, "--groups", "8", NULL};
	ck_assert_int_eq(load(5, argv), NODE_ECONFIG);
	ck_assert_ptr_nonnull(strstr(err, "--groups"));
	ck_assert_ptr_nonnull(strstr(err, "conflicts"));
}
END_TEST

START_TEST(test_same_cluster_spelled_differently_accepted)
{
	ck_assert_int_eq(bootstrap(), 0);
	char *argv[] = {"kvd",
			"--data-dir",
			dir,
			"--cluster",
			"3=127.0.0.13:7001, 1=127.0.0.11:7001,2=127.0.0.12:7001",
			NULL};
	ck_assert_int_eq(load(5, argv), 0);
}
END_TEST

START_TEST(test_id_not_in_cluster_refused)
{
	char *argv[] = {
		"kvd",       "--id",  "4", "--data-dir", dir, "--client-addr", "127.0.0.14:9001",
		"--cluster", CLUSTER, NULL};
	ck_assert_int_eq(load(9, argv), NODE_ECONFIG);
	ck_assert_ptr_nonnull(strstr(err, "--id 4"));
}
END_TEST

START_TEST(test_bad_address_refused)
{
	char *argv[] = {
		"kvd",       "--id",  "1", "--data-dir", dir, "--client-addr", "localhost:99999",
		"--cluster", CLUSTER, NULL};
	ck_assert_int_eq(load(9, argv), NODE_ECONFIG);
	ck_assert_ptr_nonnull(strstr(err, "--client-addr"));
	char *argv2[] = {"kvd",
			 "--id",
			 "1",
			 "--data-dir",
			 dir,
			 "--client-addr",
			 "127.0.0.11:9001",
			 "--cluster",
			 "1=127.0.0.11:7001,2=nohost",
			 NULL};
	ck_assert_int_eq(load(9, argv2), NODE_ECONFIG);
	ck_assert_ptr_nonnull(strstr(err, "--cluster"));
}
END_TEST

/* The --cluster errors quote the entry at fault. They used to be written after the parsed
 * copy of --cluster was freed (a use after free, found by tests/fuzz/fuzz_config with
 * `--cluster 1=127.0.0.1:7001,1=127.0.0.1:7001`); ASan and valgrind (make asan, make
 * valgrind) see it, and the message must still name the entry. */
START_TEST(test_cluster_errors_quote_the_entry)
{
	const char *clusters[] = {"1=127.0.0.11:7001,1=127.0.0.11:7001",
				  "1=127.0.0.11:7001,2=127.0.0.11:7001", "1=127.0.0.11:7001,oops",
				  "1=127.0.0.11:7001,x=127.0.0.12:7001",
				  "1=127.0.0.11:7001,2=127.0.0.12:\n7"};
	const char *quoted[] = {"address 127.0.0.11:7001 appears twice",
				"address 127.0.0.11:7001 appears twice", "entry 'oops'",
				"node id 'x'", "not a valid address"};
	for (size_t i = 0; i < sizeof clusters / sizeof clusters[0]; i++) {
		char *argv[] = {"kvd",
				"--id",
				"1",
				"--data-dir",
				dir,
				"--client-addr",
				"127.0.0.11:9001",
				"--cluster",
				(char *)clusters[i],
				NULL};
		ck_assert_int_eq(load(9, argv), NODE_ECONFIG);
		ck_assert_msg(strstr(err, quoted[i]) != NULL, "%s: [%s]", clusters[i], err);
	}
}
END_TEST

START_TEST(test_missing_flags_refused)
{
	char *argv[] = {"kvd", "--id", "1", "--cluster", CLUSTER, NULL};
	ck_assert_int_eq(load(5, argv), NODE_ECONFIG);
	ck_assert_ptr_nonnull(strstr(err, "--data-dir"));
	char *argv2[] = {"kvd", "--id", "1", "--data-dir", dir, "--cluster", CLUSTER, NULL};
	ck_assert_int_eq(load(7, argv2), NODE_ECONFIG);
	ck_assert_ptr_nonnull(strstr(err, "--client-addr"));
	char *argv3[] = {"kvd", "--data-dir", dir, "--bogus", "1", NULL};
	ck_assert_int_eq(load(5, argv3), NODE_ECONFIG);
	ck_assert_ptr_nonnull(strstr(err, "bogus"));
}
END_TEST

START_TEST(test_bad_timing_refused)
{
	char *argv[] = {"kvd",
			"--id",
			"1",
			"--data-dir",
			dir,
			"--client-addr",
			"127.0.0.11:9001",
			"--cluster",
			CLUSTER,
			"--election-ms",
			"100",
			"--heartbeat-ms",
			"80",
			NULL};
	ck_assert_int_eq(load(13, argv), NODE_ECONFIG);
	ck_assert_ptr_nonnull(strstr(err, "--election-ms"));
}
END_TEST

/* The load bounds (docs/OPERATIONS.md "Overload"): defaults, tunable on a restart, 0 = none,
 * and a value that is no number refused naming the flag. */
START_TEST(test_load_bounds)
{
	ck_assert_int_eq(bootstrap(), NODE_OK);
	ck_assert_uint_eq(cfg.max_inflight, NODE_MAX_INFLIGHT_DEFAULT);
	ck_assert_uint_eq(cfg.max_inflight_bytes, NODE_MAX_INFLIGHT_BYTES_DEFAULT);
	ck_assert_uint_eq(cfg.conn_max_inflight, NODE_CONN_MAX_INFLIGHT_DEFAULT);
	ck_assert_uint_eq(cfg.conn_max_inflight_bytes, NODE_CONN_MAX_INFLIGHT_BYTES_DEFAULT);
	ck_assert_uint_eq(cfg.group_max_proposals, NODE_GROUP_MAX_PROPOSALS_DEFAULT);
	ck_assert_uint_eq(cfg.group_max_wait_ms, NODE_GROUP_MAX_WAIT_MS_DEFAULT);
	char *argv[] = {"kvd",
			"--data-dir",
			dir,
			"--max-inflight",
			"32",
			"--max-inflight-bytes=0",
			"--conn-max-inflight",
			"7",
			"--conn-max-inflight-bytes",
			"4096",
			"--group-max-proposals",
			"0",
			"--group-max-wait-ms",
			"25",
			NULL};
	ck_assert_int_eq(load(14, argv), NODE_OK);
	ck_assert_uint_eq(cfg.group_max_wait_ms, 25);
	ck_assert_uint_eq(cfg.max_inflight, 32);
	ck_assert_uint_eq(cfg.max_inflight_bytes, 0);
	ck_assert_uint_eq(cfg.conn_max_inflight, 7);
	ck_assert_uint_eq(cfg.conn_max_inflight_bytes, 4096);
	ck_assert_uint_eq(cfg.group_max_proposals, 0);
	char *bad[] = {"kvd", "--data-dir", dir, "--group-max-proposals", "-1", NULL};
	ck_assert_int_eq(load(5, bad), NODE_ECONFIG);
	ck_assert_ptr_nonnull(strstr(err, "--group-max-proposals"));
	char *bad_wait[] = {"kvd", "--data-dir", dir, "--group-max-wait-ms", "60001", NULL};
	ck_assert_int_eq(load(5, bad_wait), NODE_ECONFIG);
	ck_assert_ptr_nonnull(strstr(err, "--group-max-wait-ms"));
}
END_TEST

/* --auto-repair: on unless said off (docs/DURABILITY.md "Self-repair after a machine crash"),
 * given at every start (not kept in cluster.conf), anything but on/off refused. */
START_TEST(test_auto_repair)
{
	ck_assert_int_eq(bootstrap(), NODE_OK);
	ck_assert(cfg.auto_repair);
	ck_assert(!cfg.kv_set_aside);
	char *off[] = {"kvd", "--data-dir", dir, "--auto-repair", "off", NULL};
	ck_assert_int_eq(load(5, off), NODE_OK);
	ck_assert(!cfg.auto_repair);
	char *again[] = {"kvd", "--data-dir", dir, NULL};
	ck_assert_int_eq(load(3, again), NODE_OK);
	ck_assert(cfg.auto_repair);
	char *bad[] = {"kvd", "--data-dir", dir, "--auto-repair", "maybe", NULL};
	ck_assert_int_eq(load(5, bad), NODE_ECONFIG);
	ck_assert_ptr_nonnull(strstr(err, "--auto-repair"));
}
END_TEST

START_TEST(test_config_file)
{
	char path[300];
	snprintf(path, sizeof path, "%s/kvd.conf", dir);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f,
		"# a comment\nid = 3\nclient-addr = 127.0.0.13:9001\ncluster = %s\n"
		"groups = 5\nlog-level = info\n",
		CLUSTER);
	fclose(f);
	char *argv[] = {"kvd", "--config", path, "--data-dir", dir, NULL};
	ck_assert_int_eq(load(5, argv), 0);
	ck_assert_uint_eq(cfg.id, 3);
	ck_assert_uint_eq(cfg.groups, 5);
	ck_assert_int_eq(cfg.log_level, 2);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("node_config");
	TCase *tc = tcase_create("config");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_bootstrap_then_restart_with_data_dir_only);
	tcase_add_test(tc, test_incomplete_cluster_conf_refused);
	tcase_add_test(tc, test_conflicting_groups_refused);
	tcase_add_test(tc, test_same_cluster_spelled_differently_accepted);
	tcase_add_test(tc, test_id_not_in_cluster_refused);
	tcase_add_test(tc, test_bad_address_refused);
	tcase_add_test(tc, test_cluster_errors_quote_the_entry);
	tcase_add_test(tc, test_missing_flags_refused);
	tcase_add_test(tc, test_bad_timing_refused);
	tcase_add_test(tc, test_config_file);
	tcase_add_test(tc, test_load_bounds);
	tcase_add_test(tc, test_auto_repair);
	tcase_add_test(tc, test_cluster_conf_with_a_foreign_key_refused);
	tcase_add_test(tc, test_join_with_a_bootstrap_members_cluster_conf_refused);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
