/* test_corrupt_value.c — one byte of a stored value flipped in a stopped follower's LMDB file
 * (kv/data.mdb) is never served: after the restart no read returns the changed bytes, the
 * damage is logged with its group and key, and the replica is rebuilt from its peers until
 * every group's digest is equal on the three nodes.
 *
 * Two ways to find it: the background scrub (default), and with --scrub-rate 0 the read
 * itself (a serializable read on the damaged follower, then a linearizable one once the group's
 * leadership has been moved to it).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/integration/cluster.h"

#define GROUPS 4
#define KEYS   200
#define OK     RINGRAFT__KV__CODE__OK

static struct cluster *c;

static void teardown(void)
{
	cluster_teardown(&c);
}

static void value_of(int i, char *out, size_t cap)
{
	snprintf(out, cap, "PATTERN-%05d-the-original-bytes", i);
}

/* Flips one byte inside every copy of `needle` in the file (LMDB may keep stale copies of a
 * page besides the live one). Returns how many copies were changed. */
static int flip_in_file(const char *path, const char *needle, size_t at)
{
	FILE *f = fopen(path, "r+b");
	if (f == NULL)
		return -1;
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	rewind(f);
	char *buf = malloc((size_t)len);
	if (buf == NULL || fread(buf, 1, (size_t)len, f) != (size_t)len) {
		free(buf);
		fclose(f);
		return -1;
	}
	size_t nl = strlen(needle);
	int n = 0;
	for (long i = 0; i + (long)nl <= len; i++) {
		if (memcmp(buf + i, needle, nl) != 0)
			continue;
		buf[i + (long)at] ^= 0x20;
		n++;
	}
	rewind(f);
	if (fwrite(buf, 1, (size_t)len, f) != (size_t)len)
		n = -1;
	fclose(f);
	free(buf);
	return n;
}

/* A follower of group g (a node that is not its leader). */
static int follower_of(uint32_t g)
{
	uint64_t leader = cluster_leader_of(c, g, 10000);
	ck_assert_uint_ne(leader, 0);
	return leader == 3 ? 2 : 3;
}

#define DAMAGED_GROUP 1

/* Writes KEYS keys and one key of DAMAGED_GROUP with a distinctive value, stops a follower of
 * that group and flips one byte of that value in its LMDB file. Returns the follower. */
static int damage_one_value(char *key, size_t key_cap, char *orig, char *changed, size_t cap)
{
	char k[64], v[64];
	for (int i = 0; i < KEYS; i++) {
		snprintf(k, sizeof k, "cv%04d", i);
		value_of(i, v, sizeof v);
		ck_assert_msg(cluster_put_any(c, k, v, 0), "write %s not acknowledged", k);
	}
	cluster_key_in_group(c, DAMAGED_GROUP, "victim", key, key_cap);
	value_of(99999, orig, cap);
	ck_assert(cluster_put_any(c, key, orig, 0));
	snprintf(changed, cap, "%s", orig);
	changed[3] ^= 0x20; /* what the damaged copy reads as */
	int f = follower_of(DAMAGED_GROUP);
	/* the follower holds the value before it stops */
	uint64_t deadline = cluster_now_ms() + 10000;
	for (;;) {
		char *got = NULL;
		int code = cluster_get(c, f, key, &got, true, 1000);
		bool have = code == OK && strcmp(got, orig) == 0;
		free(got);
		if (have)
			break;
		ck_assert_msg(cluster_now_ms() < deadline, "node %d never applied %s", f, key);
		struct timespec ts = {0, 50 * 1000000L};
		nanosleep(&ts, NULL);
	}
	ck_assert_int_eq(cluster_term(c, f), 0);
	char path[4096];
	snprintf(path, sizeof path, "%s/kv/data.mdb", cluster_data_dir(c, f));
	int n = flip_in_file(path, orig, 3);
	ck_assert_msg(n >= 1, "the value was not found in %s", path);
	ck_assert_int_eq(cluster_restart(c, f), 0);
	return f;
}

/* No read of key on any node returns the damaged bytes; returns how many reads answered. */
static int reads_never_damaged(const char *key, const char *orig, const char *changed, int f,
			       int rounds)
{
	int answered = 0;
	for (int r = 0; r < rounds; r++) {
		for (int node = 1; node <= 3; node++) {
			for (int ser = 0; ser <= 1; ser++) {
				char *got = NULL;
				int code = cluster_get(c, node, key, &got, ser == 1, 1000);
				if (code == OK) {
					ck_assert_msg(strcmp(got, changed) != 0,
						      "node %d served the damaged value (%s)", node,
						      ser ? "serializable" : "linearizable");
					ck_assert_str_eq(got, orig);
					answered++;
				}
				free(got);
			}
		}
		(void)f;
	}
	return answered;
}

static void transfer_leader(uint32_t g, int to)
{
	for (int attempt = 0; attempt < 50; attempt++) {
		uint64_t leader = cluster_leader_of(c, g, 5000);
		if (leader == (uint64_t)to)
			return;
		Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
		rq.op = RINGRAFT__KV__OP__TRANSFER_LEADER;
		rq.group = g;
		rq.target = (uint64_t)to;
		Ringraft__Kv__Response *rs = NULL;
		if (leader != 0 && cluster_call(c, (int)leader, &rq, &rs, 3000) == 0)
			ringraft__kv__response__free_unpacked(rs, NULL);
		struct timespec ts = {0, 100 * 1000000L};
		nanosleep(&ts, NULL);
	}
	ck_abort_msg("leadership of group %u never moved to node %d", g, to);
}

START_TEST(test_scrub_finds_it)
{
	struct cluster_opts o;
	cluster_opts_default(&o);
	o.groups = GROUPS;
	c = cluster_start(&o);
	ck_assert_ptr_nonnull(c);
	char key[64], orig[64], changed[64];
	int f = damage_one_value(key, sizeof key, orig, changed, sizeof orig);
	/* found without any read of it, logged with group and key */
	char needle[256];
	snprintf(needle, sizeof needle,
		 "g%d stored value failed its checksum during the "
		 "background scrub key=\"%s\"",
		 DAMAGED_GROUP, key);
	ck_assert_msg(cluster_wait_log(c, f, needle, 1, 30000), "no log line '%s' on node %d",
		      needle, f);
	ck_assert_int_eq(cluster_wait_digests_equal(c, 60000), 0);
	ck_assert_int_gt(reads_never_damaged(key, orig, changed, f, 3), 0);
}
END_TEST

START_TEST(test_reads_never_return_it)
{
	struct cluster_opts o;
	cluster_opts_default(&o);
	o.groups = GROUPS;
	o.extra_args = "--scrub-rate 0";
	c = cluster_start(&o);
	ck_assert_ptr_nonnull(c);
	char key[64], orig[64], changed[64];
	int f = damage_one_value(key, sizeof key, orig, changed, sizeof orig);
	/* the follower's own copy, read locally: refused, never the damaged bytes */
	char *got = NULL;
	int code = cluster_get(c, f, key, &got, true, 2000);
	ck_assert_msg(code != OK || strcmp(got, changed) != 0, "served the damaged value");
	free(got);
	ck_assert_int_gt(cluster_log_grep(c, f, "stored value failed its checksum during a read"),
			 0);
	/* leadership moves to it: linearizable reads there are right too */
	transfer_leader(DAMAGED_GROUP, f);
	ck_assert_int_gt(reads_never_damaged(key, orig, changed, f, 5), 0);
	ck_assert_int_eq(cluster_wait_digests_equal(c, 60000), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("corrupt_value");
	TCase *tc = tcase_create("corrupt_value");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, test_scrub_finds_it);
	tcase_add_test(tc, test_reads_never_return_it);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
