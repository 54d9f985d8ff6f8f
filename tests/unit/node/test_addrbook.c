/* test_addrbook.c — learned client addresses survive a reload from DIR/peers.conf; unknown
 * ids, empty and unchanged addresses are ignored. */
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/addrbook.h"

static int rm_cb(const char *p, const struct stat *s, int f, struct FTW *w)
{
	(void)s;
	(void)f;
	(void)w;
	return remove(p);
}

START_TEST(test_set_save_load)
{
	struct node_config cfg;
	memset(&cfg, 0, sizeof cfg);
	snprintf(cfg.data_dir, sizeof cfg.data_dir, "/tmp/ringraft-addrbook-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(cfg.data_dir));
	cfg.n_members = 3;
	for (int i = 0; i < 3; i++)
		cfg.members[i].id = (uint64_t)i + 1;
	cfg.id = 1;

	struct node_addrbook b;
	node_addrbook_load(&b, &cfg); /* no file yet */
	ck_assert_str_eq(node_addrbook_get(&b, &cfg, 2), "");
	ck_assert(node_addrbook_set(&b, &cfg, 2, "127.0.0.12:9001"));
	ck_assert(!node_addrbook_set(&b, &cfg, 2, "127.0.0.12:9001")); /* unchanged */
	ck_assert(!node_addrbook_set(&b, &cfg, 9, "127.0.0.19:9001")); /* not a member */
	ck_assert(!node_addrbook_set(&b, &cfg, 3, ""));
	ck_assert(node_addrbook_set(&b, &cfg, 3, "127.0.0.13:9001"));
	ck_assert_int_eq(node_addrbook_save(&b, &cfg), 0);

	struct node_addrbook b2;
	node_addrbook_load(&b2, &cfg);
	ck_assert_str_eq(node_addrbook_get(&b2, &cfg, 2), "127.0.0.12:9001");
	ck_assert_str_eq(node_addrbook_get(&b2, &cfg, 3), "127.0.0.13:9001");
	ck_assert_str_eq(node_addrbook_get(&b2, &cfg, 1), "");
	ck_assert_str_eq(node_addrbook_get(&b2, &cfg, 7), "");
	nftw(cfg.data_dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("node_addrbook");
	TCase *tc = tcase_create("addrbook");
	tcase_add_test(tc, test_set_save_load);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
