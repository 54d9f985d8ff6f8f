/* test_route.c — the client's routing cache: ring changes forget leaders, hints resolve
 * addresses through the ring's nodes, a stale "forget" never erases a newer leader. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/route.h"

static struct cli_ring_node nodes[3] = {
	{.id = 1, .client_addr = "127.0.0.11:9001"},
	{.id = 2, .client_addr = "127.0.0.12:9001"},
	{.id = 3, .client_addr = "127.0.0.13:9001"},
};

START_TEST(test_no_ring_no_group)
{
	struct cli_route r;
	cli_route_init(&r);
	ck_assert_uint_eq(cli_route_group_of(&r, "k", 1), 0);
	ck_assert_ptr_null(cli_route_leader_addr(&r, 1));
	ck_assert_int_eq(cli_route_set_ring(&r, 1, 0, 16, nodes, 3), CLI_EINVAL);
	ck_assert_int_eq(cli_route_set_ring(&r, 1, CLI_GROUPS_MAX + 1, 16, nodes, 3), CLI_EINVAL);
	cli_route_free(&r);
}
END_TEST

START_TEST(test_groups_in_range_and_stable)
{
	struct cli_route r;
	cli_route_init(&r);
	ck_assert_int_eq(cli_route_set_ring(&r, 1, 8, 128, nodes, 3), 0);
	bool seen[9] = {0};
	for (int i = 0; i < 2000; i++) {
		char k[16];
		int n = snprintf(k, sizeof k, "key%d", i);
		uint32_t g = cli_route_group_of(&r, k, (size_t)n);
		ck_assert_uint_ge(g, 1);
		ck_assert_uint_le(g, 8);
		ck_assert_uint_eq(g, kv_ring_group_of(r.ring, k, (size_t)n));
		seen[g] = true;
	}
	for (int g = 1; g <= 8; g++)
		ck_assert(seen[g]);
	cli_route_free(&r);
}
END_TEST

START_TEST(test_leader_resolution_and_forget)
{
	struct cli_route r;
	cli_route_init(&r);
	ck_assert_int_eq(cli_route_set_ring(&r, 1, 4, 16, nodes, 3), 0);
	cli_route_set_leader(&r, 2, 3, NULL);
	ck_assert_str_eq(cli_route_leader_addr(&r, 2), "127.0.0.13:9001");
	cli_route_set_leader(&r, 3, 9, NULL); /* not in the ring, no address: unknown */
	ck_assert_ptr_null(cli_route_leader_addr(&r, 3));
	cli_route_set_leader(&r, 3, 9, "10.0.0.9:9001");
	ck_assert_str_eq(cli_route_leader_addr(&r, 3), "10.0.0.9:9001");
	cli_route_forget_leader(&r, 2, 1); /* stale: leader is 3 now */
	ck_assert_ptr_nonnull(cli_route_leader_addr(&r, 2));
	cli_route_forget_leader(&r, 2, 3);
	ck_assert_ptr_null(cli_route_leader_addr(&r, 2));
	cli_route_set_leader(&r, 0, 1, NULL); /* out of range: ignored */
	cli_route_set_leader(&r, CLI_GROUPS_MAX + 1, 1, NULL);
	ck_assert_ptr_null(cli_route_leader_addr(&r, 0));
	/* Same ring again keeps leaders; a new epoch forgets them. */
	ck_assert_int_eq(cli_route_set_ring(&r, 1, 4, 16, nodes, 3), 0);
	ck_assert_ptr_nonnull(cli_route_leader_addr(&r, 3));
	ck_assert_int_eq(cli_route_set_ring(&r, 2, 4, 16, nodes, 3), 0);
	ck_assert_ptr_null(cli_route_leader_addr(&r, 3));
	ck_assert_uint_eq(r.epoch, 2);
	cli_route_drop_ring(&r);
	ck_assert_uint_eq(cli_route_group_of(&r, "k", 1), 0);
	cli_route_free(&r);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cli_route");
	TCase *t = tcase_create("route");
	tcase_add_test(t, test_no_ring_no_group);
	tcase_add_test(t, test_groups_in_range_and_stable);
	tcase_add_test(t, test_leader_resolution_and_forget);
	suite_add_tcase(s, t);
	SRunner *r = srunner_create(s);
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
