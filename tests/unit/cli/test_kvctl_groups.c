/* test_kvctl_groups.c — the group ids kvctl's cluster views walk (cli/kvctl_groups.c): an
 * older node's answer (no group_ids) reads as 1..G plus the meta group; an id set with gaps is
 * followed as it is; a ring change adds its new ids while it moves or once complete, and none
 * once rolled back; the meta group is named whatever its place; bad ids are left out. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "cli/kvctl.h"
#include "kv/reshard.h"

/* Fixture: a set on the heap (it holds CLI_GROUPS_MAX ids), and a change to fill in. */
static struct kvctl_group_set *s;
static struct cli_ring_range ranges[4];
static uint32_t from_ids[8], to_ids[8];
static struct cli_ring_change ch;

static void setup(void)
{
	s = calloc(1, sizeof *s);
	ck_assert_ptr_nonnull(s);
	memset(&ch, 0, sizeof ch);
}

static void teardown(void)
{
	free(s);
}

/* A change from 1..g to 1..g plus `add`, its n_ranges ranges all in `state`. */
static const struct cli_ring_change *change(uint32_t g, uint32_t add, size_t n_ranges,
					    uint32_t state)
{
	for (uint32_t i = 0; i < g; i++)
		from_ids[i] = to_ids[i] = i + 1;
	to_ids[g] = add;
	for (size_t i = 0; i < n_ranges; i++)
		ranges[i] = (struct cli_ring_range){
			.lo = i * 100, .hi = i * 100 + 50, .from = 1, .to = add, .state = state};
	ch = (struct cli_ring_change){.present = true,
				      .from_epoch = 1,
				      .to_epoch = 2,
				      .n_from = g,
				      .n_to = g + 1,
				      .from_ids = from_ids,
				      .to_ids = to_ids,
				      .n_ranges = n_ranges,
				      .ranges = ranges};
	return &ch;
}

/* Assertions */
static void assert_ids(const uint32_t *want, size_t n)
{
	ck_assert_uint_eq(s->n, n);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(s->ids[i] == want[i], "ids[%zu] = %u, want %u", i, s->ids[i],
			      want[i]);
}

static void assert_text(const char *want)
{
	char buf[256];
	ck_assert_str_eq(kvctl_group_set_text(s, buf, sizeof buf), want);
}

/* Suite */
START_TEST(test_older_node_is_one_to_g_and_meta)
{
	kvctl_group_set_build(s, NULL, 0, 4, NULL, 5);
	assert_ids((uint32_t[]){1, 2, 3, 4, 5}, 5);
	ck_assert_uint_eq(s->meta, 5);
	ck_assert_int_eq(s->kind[4], KVCTL_GROUP_META);
	ck_assert(kvctl_group_set_plain(s, 4));
	assert_text("1-4, 5 (meta)");
	/* a node from before the meta group: 1..G only */
	kvctl_group_set_build(s, NULL, 0, 3, NULL, 0);
	assert_ids((uint32_t[]){1, 2, 3}, 3);
	ck_assert_uint_eq(s->meta, 0);
	ck_assert(kvctl_group_set_plain(s, 3));
	assert_text("1-3");
}
END_TEST

START_TEST(test_ids_with_gaps_are_followed)
{
	/* a ring of ids 1..4 and 7 (7 added by a completed change, 6 rolled back earlier) */
	kvctl_group_set_build(s, (uint32_t[]){7, 1, 2, 3, 4}, 5, 4, NULL, 5);
	assert_ids((uint32_t[]){1, 2, 3, 4, 5, 7}, 6);
	ck_assert(!kvctl_group_set_plain(s, 4));
	ck_assert(kvctl_group_set_has(s, 7));
	ck_assert(!kvctl_group_set_has(s, 6));
	assert_text("1-4, 5 (meta), 7");
	/* group_ids win over the count: a ring that lost group 2 */
	kvctl_group_set_build(s, (uint32_t[]){1, 3, 4}, 3, 4, NULL, 5);
	assert_ids((uint32_t[]){1, 3, 4, 5}, 4);
	assert_text("1, 3-4, 5 (meta)");
}
END_TEST

START_TEST(test_a_moving_change_adds_its_groups)
{
	kvctl_group_set_build(s, (uint32_t[]){1, 2, 3, 4}, 4, 4,
			      change(4, 6, 3, KV_RESHARD_PLANNED), 5);
	assert_ids((uint32_t[]){1, 2, 3, 4, 5, 6}, 6);
	ck_assert_int_eq(s->kind[5], KVCTL_GROUP_ADDING);
	ck_assert(!kvctl_group_set_plain(s, 4));
	assert_text("1-4, 5 (meta), 6 (adding)");
	/* two added at once read as one run */
	to_ids[5] = 7;
	ch.n_to = 6;
	kvctl_group_set_build(s, (uint32_t[]){1, 2, 3, 4}, 4, 4, &ch, 5);
	assert_text("1-4, 5 (meta), 6-7 (adding)");
	/* some ranges further on, none rolled back: still moving */
	ranges[0].state = KV_RESHARD_FENCED;
	kvctl_group_set_build(s, (uint32_t[]){1, 2, 3, 4}, 4, 4, &ch, 5);
	ck_assert(kvctl_group_set_has(s, 7));
}
END_TEST

START_TEST(test_a_rolled_back_change_adds_nothing)
{
	const struct cli_ring_change *c = change(4, 6, 3, KV_RESHARD_ROLLED_BACK);
	ck_assert(kvctl_change_rolled_back(c));
	kvctl_group_set_build(s, (uint32_t[]){1, 2, 3, 4}, 4, 4, c, 5);
	assert_ids((uint32_t[]){1, 2, 3, 4, 5}, 5);
	ck_assert(kvctl_group_set_plain(s, 4));
	/* one range not rolled back yet: the change still stands */
	ranges[1].state = KV_RESHARD_PLANNED;
	ck_assert(!kvctl_change_rolled_back(c));
	kvctl_group_set_build(s, (uint32_t[]){1, 2, 3, 4}, 4, 4, c, 5);
	ck_assert(kvctl_group_set_has(s, 6));
	/* no change, or one not present */
	ck_assert(!kvctl_change_rolled_back(NULL));
	ch.present = false;
	ck_assert(!kvctl_change_rolled_back(&ch));
	kvctl_group_set_build(s, (uint32_t[]){1, 2, 3, 4}, 4, 4, &ch, 5);
	ck_assert(!kvctl_group_set_has(s, 6));
}
END_TEST

START_TEST(test_complete_change_from_an_older_ring)
{
	/* the freshest ring answer has not installed the completed change's ring yet: the
	 * change's ids are still walked */
	kvctl_group_set_build(s, (uint32_t[]){1, 2, 3, 4}, 4, 4, change(4, 6, 2, KV_RESHARD_DONE),
			      5);
	ck_assert(kvctl_group_set_has(s, 6));
	/* once installed, 6 is a ring id, listed once */
	kvctl_group_set_build(s, (uint32_t[]){1, 2, 3, 4, 6}, 5, 4, &ch, 5);
	assert_ids((uint32_t[]){1, 2, 3, 4, 5, 6}, 6);
	ck_assert_int_eq(s->kind[5], KVCTL_GROUP_RING);
	assert_text("1-4, 5 (meta), 6");
}
END_TEST

START_TEST(test_meta_and_bad_ids)
{
	/* a change naming the meta group's id keeps it the meta group; 0, repeats and ids over
	 * CLI_GROUPS_MAX are left out */
	to_ids[0] = 0;
	to_ids[1] = CLI_GROUPS_MAX + 1;
	to_ids[2] = 5;
	to_ids[3] = 2;
	ch = (struct cli_ring_change){.present = true, .n_to = 4, .to_ids = to_ids};
	kvctl_group_set_build(s, (uint32_t[]){1, 2, 2, 0, 3}, 5, 3, &ch, 5);
	assert_ids((uint32_t[]){1, 2, 3, 5}, 4);
	ck_assert_int_eq(s->kind[3], KVCTL_GROUP_META);
	ck_assert_uint_eq(s->meta, 5);
	/* the meta group not at G + 1 is still named, and the set is not the plain one */
	kvctl_group_set_build(s, NULL, 0, 3, NULL, 9);
	assert_text("1-3, 9 (meta)");
	ck_assert(!kvctl_group_set_plain(s, 3));
	/* the text is cut short, not overrun */
	char small[6];
	kvctl_group_set_build(s, NULL, 0, 4, change(4, 6, 1, KV_RESHARD_PLANNED), 5);
	ck_assert_str_eq(kvctl_group_set_text(s, small, sizeof small), "1-4, ");
}
END_TEST

START_TEST(test_the_largest_set)
{
	kvctl_group_set_build(s, NULL, 0, CLI_GROUPS_MAX, NULL, CLI_GROUPS_MAX + 1);
	ck_assert_uint_eq(s->n, CLI_GROUPS_MAX);
	ck_assert_uint_eq(s->meta, 0); /* beyond the ids a view can hold */
	ck_assert_uint_eq(s->ids[CLI_GROUPS_MAX - 1], CLI_GROUPS_MAX);
}
END_TEST

int main(void)
{
	Suite *su = suite_create("kvctl_groups");
	TCase *tc = tcase_create("set");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_older_node_is_one_to_g_and_meta);
	tcase_add_test(tc, test_ids_with_gaps_are_followed);
	tcase_add_test(tc, test_a_moving_change_adds_its_groups);
	tcase_add_test(tc, test_a_rolled_back_change_adds_nothing);
	tcase_add_test(tc, test_complete_change_from_an_older_ring);
	tcase_add_test(tc, test_meta_and_bad_ids);
	tcase_add_test(tc, test_the_largest_set);
	suite_add_tcase(su, tc);
	SRunner *sr = srunner_create(su);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
