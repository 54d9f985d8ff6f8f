/* test_route.c — the client's routing cache: ring changes forget leaders, hints resolve
 * addresses through the ring's nodes, a stale "forget" never erases a newer leader; a ring
 * config with group ids routes by that id set, one without them by 1..groups. */
#include <check.h>
#include <stdbool.h>
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
	ck_assert_int_eq(cli_route_set_ring(&r, 1, 0, NULL, 0, 16, nodes, 3), CLI_EINVAL);
	ck_assert_int_eq(cli_route_set_ring(&r, 1, CLI_GROUPS_MAX + 1, NULL, 0, 16, nodes, 3),
			 CLI_EINVAL);
	cli_route_free(&r);
}
END_TEST

START_TEST(test_groups_in_range_and_stable)
{
	struct cli_route r;
	cli_route_init(&r);
	ck_assert_int_eq(cli_route_set_ring(&r, 1, 8, NULL, 0, 128, nodes, 3), 0);
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
	ck_assert_int_eq(cli_route_set_ring(&r, 1, 4, NULL, 0, 16, nodes, 3), 0);
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
	ck_assert_int_eq(cli_route_set_ring(&r, 1, 4, NULL, 0, 16, nodes, 3), 0);
	ck_assert_ptr_nonnull(cli_route_leader_addr(&r, 3));
	ck_assert_int_eq(cli_route_set_ring(&r, 2, 4, NULL, 0, 16, nodes, 3), 0);
	ck_assert_ptr_null(cli_route_leader_addr(&r, 3));
	ck_assert_uint_eq(r.epoch, 2);
	cli_route_drop_ring(&r);
	ck_assert_uint_eq(cli_route_group_of(&r, "k", 1), 0);
	cli_route_free(&r);
}
END_TEST

/* RingConfig.group_ids present: the ring of that id set, whatever `groups` says; absent: the
 * ring of 1..groups (a node that predates id sets). */
START_TEST(test_group_ids)
{
	struct cli_route r;
	cli_route_init(&r);
	const uint32_t ids[4] = {9, 2, 5, 1};
	ck_assert_int_eq(cli_route_set_ring(&r, 3, 8, ids, 4, 128, nodes, 3), 0);
	ck_assert_uint_eq(r.groups, 4);
	struct kv_ring *want = kv_ring_from_ids(ids, 4, 128, 3);
	ck_assert_ptr_nonnull(want);
	bool seen[10] = {0};
	for (int i = 0; i < 2000; i++) {
		char k[16];
		int n = snprintf(k, sizeof k, "key%d", i);
		uint32_t g = cli_route_group_of(&r, k, (size_t)n);
		ck_assert_uint_eq(g, kv_ring_group_of(want, k, (size_t)n));
		seen[g] = true;
	}
	ck_assert(seen[1] && seen[2] && seen[5] && seen[9]);
	ck_assert(!seen[3] && !seen[4] && !seen[6] && !seen[7] && !seen[8]);
	kv_ring_free(want);
	/* The same set in another order keeps the leaders; another set at the same epoch does
	 * not (a ring is its id set). */
	cli_route_set_leader(&r, 9, 2, NULL);
	const uint32_t same[4] = {1, 2, 5, 9}, other[4] = {1, 2, 5, 10};
	ck_assert_int_eq(cli_route_set_ring(&r, 3, 4, same, 4, 128, nodes, 3), 0);
	ck_assert_str_eq(cli_route_leader_addr(&r, 9), "127.0.0.12:9001");
	ck_assert_int_eq(cli_route_set_ring(&r, 3, 4, other, 4, 128, nodes, 3), 0);
	ck_assert_ptr_null(cli_route_leader_addr(&r, 9));
	/* Bad id sets are refused and the ring kept: 0, repeated, over CLI_GROUPS_MAX. */
	const uint32_t zero[2] = {0, 1}, twice[3] = {4, 4, 1}, big[1] = {CLI_GROUPS_MAX + 1};
	ck_assert_int_eq(cli_route_set_ring(&r, 4, 2, zero, 2, 128, nodes, 3), CLI_EINVAL);
	ck_assert_int_eq(cli_route_set_ring(&r, 4, 3, twice, 3, 128, nodes, 3), CLI_EINVAL);
	ck_assert_int_eq(cli_route_set_ring(&r, 4, 1, big, 1, 128, nodes, 3), CLI_EINVAL);
	ck_assert_uint_eq(r.epoch, 3);
	ck_assert(kv_ring_has(r.ring, 10));
	/* No ids: 1..groups, the ring every cluster had. */
	ck_assert_int_eq(cli_route_set_ring(&r, 1, 8, NULL, 0, 128, nodes, 3), 0);
	struct kv_ring *old = kv_ring_new(8, 128, 1);
	for (int i = 0; i < 2000; i++) {
		char k[16];
		int n = snprintf(k, sizeof k, "key%d", i);
		ck_assert_uint_eq(cli_route_group_of(&r, k, (size_t)n),
				  kv_ring_group_of(old, k, (size_t)n));
	}
	kv_ring_free(old);
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
	tcase_add_test(t, test_group_ids);
	suite_add_tcase(s, t);
	SRunner *r = srunner_create(s);
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
