/* test_reset.c — kv_group_reset empties exactly one group (data, applied index/term,
 * configuration, sessions), durably, and the group can then be applied again from index 1
 * as a replica rebuilt from its peers would be.
 */
#include "kv_fixture.h"

START_TEST(test_reset_one_group)
{
	struct fx f;
	fx_open(&f);
	for (uint32_t g = 1; g <= 2; g++) {
		ck_assert_int_eq(fx_put(&f, g, "x", "1"), KV_OK);
		ck_assert_int_eq(fx_put(&f, g, "y", "2"), KV_OK);
		struct kv_cmd c = fx_put_cmd("s", "with a session");
		c.client_id = 9;
		c.seq = 1;
		ck_assert_int_eq(fx_apply_cmd(&f, g, &c, NULL), KV_OK);
		/* a configuration entry */
		struct raft_conf conf = {.n_voters = 3, .voters = {1, 2, 3}};
		struct raft_entry e = {.index = f.next[g], .term = 2, .type = RAFT_ENTRY_CONF};
		ck_assert_int_eq(kv_apply(f.kv, g, &e, 1, &conf, NULL, NULL), KV_OK);
		f.next[g]++;
	}
	uint8_t d2[KV_DIGEST_BYTES], after[KV_DIGEST_BYTES];
	raft_index i2;
	ck_assert_int_eq(kv_digest(f.kv, 2, d2, &i2), KV_OK);

	ck_assert_int_eq(kv_group_reset(f.kv, 1), KV_OK);
	struct kv_group_meta m;
	ck_assert_int_eq(kv_meta(f.kv, 1, &m), KV_OK);
	ck_assert_uint_eq(m.applied_index, 0);
	ck_assert_uint_eq(m.applied_term, 0);
	ck_assert(!m.has_conf);
	ck_assert_uint_eq(m.keys, 0);
	fx_expect(&f, 1, "x", NULL);
	/* Group 2 is exactly as it was. */
	raft_index j2;
	ck_assert_int_eq(kv_digest(f.kv, 2, after, &j2), KV_OK);
	ck_assert(memcmp(d2, after, sizeof d2) == 0);
	ck_assert_uint_eq(i2, j2);
	ck_assert_int_eq(kv_meta(f.kv, 2, &m), KV_OK);
	ck_assert(m.has_conf);
	ck_assert_uint_eq(m.keys, 3);

	/* It survives a restart, and group 1 applies again from index 1 (sessions forgotten:
	 * the same client and seq is applied as new). */
	kv_close(f.kv);
	ck_assert_int_eq(kv_open(f.dir, NULL, &f.kv), KV_OK);
	ck_assert_uint_eq(fx_applied(&f, 1), 0);
	f.next[1] = 1;
	struct kv_cmd c = fx_put_cmd("s", "again");
	c.client_id = 9;
	c.seq = 1;
	struct fx_res r;
	ck_assert_int_eq(fx_apply_cmd(&f, 1, &c, &r), KV_OK);
	ck_assert(!r.res.duplicate);
	fx_expect(&f, 1, "s", "again");
	ck_assert_uint_eq(fx_applied(&f, 1), 1);
	ck_assert_int_eq(kv_group_reset(f.kv, 0), KV_ENOGROUP);
	fx_close(&f);
}
END_TEST

Suite *reset_suite(void)
{
	Suite *s = suite_create("kv_reset");
	TCase *tc = tcase_create("reset");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_reset_one_group);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(reset_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
