/* test_backup.c — the backup file (kv/backup.h): a file made of real group snapshots reads
 * back whole and restores into another environment to the same digests; any one byte changed
 * anywhere, any truncation and any extra byte is refused by kv_backup_file_walk, never
 * accepted and never a crash; kv_group_conf_set replaces only the configuration.
 */
#include <stdio.h>
#include <stdlib.h>

#include <xxhash.h>

#include "kv/backup.h"
#include "kv_fixture.h"

#define GROUPS 2

/* A backup of groups 1..GROUPS of f's kv into buf (malloc'd), as cli/backup.c lays it out. */
static size_t make_backup(struct fx *f, uint8_t **out)
{
	size_t cap = 1 << 20, len = 0;
	uint8_t *buf = malloc(cap);
	ck_assert_ptr_nonnull(buf);
	struct kv_backup_header h = {.cluster_id = 7,
				     .created_ms = 1,
				     .groups = GROUPS,
				     .vnodes = 128,
				     .ring_epoch = 1,
				     .sections = GROUPS};
	kv_backup_header_encode(&h, buf);
	len = KV_BACKUP_HEADER_BYTES;
	for (uint32_t g = 1; g <= GROUPS; g++) {
		struct kv_snapshot *s;
		ck_assert_int_eq(kv_snapshot_begin(f->kv, g, &s), KV_OK);
		size_t at = len;
		len += KV_BACKUP_SECTION_BYTES;
		bool done = false;
		while (!done) {
			size_t n;
			ck_assert_uint_lt(len + 100, cap);
			ck_assert_int_eq(kv_snapshot_read(s, buf + len, 100, &n, &done), KV_OK);
			len += n;
		}
		struct kv_backup_section sec = {.group = g,
						.index = kv_snapshot_index(s),
						.term = kv_snapshot_term(s),
						.length = len - at - KV_BACKUP_SECTION_BYTES};
		kv_backup_section_encode(&sec, buf + at);
		kv_snapshot_end(s);
	}
	struct kv_backup_trailer t = {.sections = GROUPS, .length = len};
	kv_backup_trailer_encode(&t, buf + len);
	t.checksum = XXH3_64bits(buf, len + KV_BACKUP_SUM_OFFSET);
	kv_backup_trailer_encode(&t, buf + len);
	*out = buf;
	return len + KV_BACKUP_TRAILER_BYTES;
}

static void write_file(const char *path, const uint8_t *b, size_t n)
{
	FILE *f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(b, 1, n, f), n);
	ck_assert_int_eq(fclose(f), 0);
}

struct into {
	struct kv *kv;
	struct kv_restore *r;
	int sections;
};

static int into_fn(const struct kv_backup_section *s, const void *data, size_t len, bool last,
		   void *arg)
{
	struct into *in = arg;
	if (in->r == NULL)
		ck_assert_int_eq(kv_restore_begin(in->kv, s->group, &in->r), KV_OK);
	ck_assert_int_eq(kv_restore_write(in->r, data, len), KV_OK);
	if (last) {
		ck_assert_int_eq(kv_restore_finish(in->r), KV_OK);
		in->r = NULL;
		in->sections++;
	}
	return 0;
}

START_TEST(test_backup_round_trip_and_every_damage_refused)
{
	struct fx f, g;
	fx_open(&f);
	fx_open(&g);
	for (uint32_t grp = 1; grp <= GROUPS; grp++) {
		ck_assert_int_eq(fx_put(&f, grp, "a", "one"), KV_OK);
		ck_assert_int_eq(fx_put(&f, grp, "b", grp == 1 ? "two" : "deux"), KV_OK);
	}
	uint8_t *buf;
	size_t n = make_backup(&f, &buf);
	char path[300], why[512];
	snprintf(path, sizeof path, "%s/x.backup", f.dir);
	write_file(path, buf, n);
	struct kv_backup_header h;
	struct into in = {.kv = g.kv};
	ck_assert_int_eq(kv_backup_file_walk(path, &h, into_fn, &in, why, sizeof why), 0);
	ck_assert_int_eq(in.sections, GROUPS);
	ck_assert_uint_eq(h.groups, GROUPS);
	ck_assert_uint_eq(h.cluster_id, 7);
	for (uint32_t grp = 1; grp <= GROUPS; grp++) {
		uint8_t d1[KV_DIGEST_BYTES], d2[KV_DIGEST_BYTES];
		raft_index i1, i2;
		ck_assert_int_eq(kv_digest(f.kv, grp, d1, &i1), KV_OK);
		ck_assert_int_eq(kv_digest(g.kv, grp, d2, &i2), KV_OK);
		ck_assert(memcmp(d1, d2, sizeof d1) == 0);
		ck_assert_uint_eq(i1, i2);
	}
	fx_expect(&g, 2, "b", "deux");

	/* every single byte changed: refused */
	uint8_t *bad = malloc(n + 1);
	ck_assert_ptr_nonnull(bad);
	for (size_t i = 0; i < n; i++) {
		memcpy(bad, buf, n);
		bad[i] ^= 0x01;
		write_file(path, bad, n);
		ck_assert_msg(kv_backup_file_walk(path, &h, NULL, NULL, why, sizeof why) < 0,
			      "byte %zu changed and the file was accepted", i);
		ck_assert(strlen(why) > 0);
	}
	/* every truncation, and one byte too many: refused */
	for (size_t len = 0; len < n; len++) {
		write_file(path, buf, len);
		ck_assert_msg(kv_backup_file_walk(path, &h, NULL, NULL, why, sizeof why) < 0,
			      "truncated to %zu bytes and accepted", len);
	}
	memcpy(bad, buf, n);
	bad[n] = 0;
	write_file(path, bad, n + 1);
	ck_assert_int_lt(kv_backup_file_walk(path, &h, NULL, NULL, why, sizeof why), 0);
	/* not a file */
	ck_assert_int_lt(kv_backup_file_walk(f.dir, &h, NULL, NULL, why, sizeof why), 0);
	free(bad);
	free(buf);
	fx_close(&g);
	fx_close(&f);
}
END_TEST

START_TEST(test_conf_set_replaces_only_the_conf)
{
	struct fx f;
	fx_open(&f);
	ck_assert_int_eq(fx_put(&f, 1, "k", "v"), KV_OK);
	struct raft_conf conf = {.n_voters = 3, .voters = {4, 5, 6}};
	struct kv_group_meta before, after;
	ck_assert_int_eq(kv_meta(f.kv, 1, &before), KV_OK);
	ck_assert_int_eq(kv_group_conf_set(f.kv, 1, &conf), KV_OK);
	ck_assert_int_eq(kv_meta(f.kv, 1, &after), KV_OK);
	ck_assert(after.has_conf);
	ck_assert_uint_eq(after.conf.n_voters, 3);
	ck_assert_uint_eq(after.conf.voters[0], 4);
	ck_assert_uint_eq(after.applied_index, before.applied_index);
	ck_assert_uint_eq(after.applied_term, before.applied_term);
	ck_assert_uint_eq(after.keys, 1);
	fx_expect(&f, 1, "k", "v");
	/* a group that applied nothing: a conf there would read as retired */
	ck_assert_int_eq(kv_group_conf_set(f.kv, 2, &conf), KV_EINVAL);
	ck_assert_int_eq(kv_group_conf_set(f.kv, 0, &conf), KV_ENOGROUP);
	fx_close(&f);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("kv_backup");
	TCase *tc = tcase_create("backup");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_backup_round_trip_and_every_damage_refused);
	tcase_add_test(tc, test_conf_set_replaces_only_the_conf);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
