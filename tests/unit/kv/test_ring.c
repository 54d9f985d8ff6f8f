/* test_ring.c — the consistent-hash ring and replica placement: balance of 1M random keys over
 * 8 groups x 128 virtual nodes; rings of id sets: the ring of ids 1..G is the ring clusters
 * had before id sets (golden digests), adding a group to G = 3, 8, 16 moves within 20% of
 * 1/(G+1) of 100,000 keys, all to the new group, and removing it moves exactly those back;
 * shares and the ranges that change owner agree with the keys; determinism (the epoch is a
 * label only); placement that is even (every node within one of 3G/N), distinct and
 * independent of the order nodes are listed; hash tags ({tag}) place keys by their tag.
 */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "kv/ring.h"

#define KEYS 1000000

/* A fixed pseudo-random key stream (splitmix64), so a failure reproduces exactly. */
static uint64_t next_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static size_t key_of(uint64_t *s, char *buf)
{
	return (size_t)sprintf(buf, "user:%016llx", (unsigned long long)next_rand(s));
}

START_TEST(test_balance_8x128)
{
	struct kv_ring *r = kv_ring_new(8, 128, 1);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(kv_ring_groups(r), 8);
	ck_assert_uint_eq(kv_ring_epoch(r), 1);
	uint64_t count[9] = {0}, s = 42;
	char k[64];
	for (int i = 0; i < KEYS; i++) {
		size_t n = key_of(&s, k);
		uint32_t g = kv_ring_group_of(r, k, n);
		ck_assert(g >= 1 && g <= 8);
		count[g]++;
	}
	uint64_t max = 0;
	for (int g = 1; g <= 8; g++)
		max = count[g] > max ? count[g] : max;
	double mean = KEYS / 8.0;
	printf("ring 8x128: most loaded group %.3f x mean\n", max / mean);
	ck_assert_msg(max <= 1.25 * mean, "most loaded group %.3f x mean", max / mean);
	kv_ring_free(r);
}
END_TEST

#define MOVE_KEYS 100000

/* An assertion for inner loops: Check records every passing assertion (a write each), which
 * costs more than the loops themselves. */
#define EXPECT(c)                                                                                  \
	do {                                                                                       \
		if (!(c))                                                                          \
			ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #c);                         \
	} while (0)

static struct kv_ring *ring_of_range(uint32_t first, uint32_t last, uint32_t extra)
{
	uint32_t ids[80];
	size_t n = 0;
	for (uint32_t g = first; g <= last; g++)
		ids[n++] = g;
	if (extra)
		ids[n++] = extra;
	return kv_ring_from_ids(ids, n, 128, 1);
}

/* Whether h lies in one of the ranges; its (from, to) in *from, *to. */
static bool in_ranges(const struct kv_ring_range *r, size_t n, uint64_t h, uint32_t *from,
		      uint32_t *to)
{
	bool found = false;
	for (size_t i = 0; i < n; i++) {
		if (kv_ring_range_has(&r[i], h)) {
			EXPECT(!found); /* ranges do not overlap */
			found = true;
			*from = r[i].from;
			*to = r[i].to;
		}
	}
	return found;
}

/* Adding group `added` to groups 1..G moves about 1/(G+1) of the keys, every one of them to
 * the new group; the ranges kv_ring_diff reports hold exactly the moved keys; removing the
 * group again (the diff the other way) sends exactly those keys back where they were.
 * Returns the fraction that moved. */
static double check_growth(uint32_t G, uint32_t added)
{
	struct kv_ring *a = ring_of_range(1, G, 0), *b = ring_of_range(1, G, added);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	ck_assert_uint_eq(kv_ring_groups(b), G + 1);
	ck_assert(kv_ring_has(b, added) && !kv_ring_has(a, added));
	struct kv_ring_range *grow, *shrink;
	size_t n_grow, n_shrink;
	ck_assert_int_eq(kv_ring_diff(a, b, &grow, &n_grow), 0);
	ck_assert_int_eq(kv_ring_diff(b, a, &shrink, &n_shrink), 0);
	ck_assert_uint_eq(n_grow, n_shrink);
	ck_assert_uint_le(n_grow, 128); /* at most one range per new point */
	uint64_t moved = 0, s = 7 + G;
	char k[64];
	for (int i = 0; i < MOVE_KEYS; i++) {
		size_t n = key_of(&s, k);
		uint32_t ga = kv_ring_group_of(a, k, n), gb = kv_ring_group_of(b, k, n);
		uint64_t h = kv_ring_key_hash(k, n);
		uint32_t from = 0, to = 0;
		bool in_grow = in_ranges(grow, n_grow, h, &from, &to);
		EXPECT(in_grow == (ga != gb));
		if (ga != gb) {
			EXPECT(gb == added);
			EXPECT(from == ga);
			EXPECT(to == added);
			moved++;
		}
		/* Removal: back to where it was, and only the new group's keys move. */
		bool in_shrink = in_ranges(shrink, n_shrink, h, &from, &to);
		EXPECT(in_shrink == (ga != gb));
		if (in_shrink) {
			EXPECT(from == added);
			EXPECT(to == ga);
		}
	}
	double want = 1.0 / (G + 1), got = (double)moved / MOVE_KEYS;
	double space = kv_ring_moved_share(a, b);
	printf("ring %u -> %u groups (group %u added): moved %.4f of %d keys, ideal %.4f "
	       "(%+.1f%%); its share of the hash space %.4f\n",
	       G, G + 1, added, got, MOVE_KEYS, want, 100 * (got - want) / want, space);
	ck_assert_msg(got >= 0.8 * want && got <= 1.2 * want, "G=%u moved %.4f, want %.4f +-20%%",
		      G, got, want);
	/* The hash space that changes owner is the new group's share, both ways, and the keys
	 * follow it (100,000 keys: one standard deviation is under 0.0014). */
	ck_assert_double_eq_tol(space, kv_ring_share(b, added), 1e-9);
	ck_assert_double_eq_tol(kv_ring_moved_share(b, a), space, 1e-9);
	ck_assert_double_eq_tol(got, space, 0.01);
	free(grow);
	free(shrink);
	kv_ring_free(a);
	kv_ring_free(b);
	return got;
}

START_TEST(test_growth_moves_one_share)
{
	check_growth(3, 4);
	check_growth(8, 9);
	check_growth(16, 17);
}
END_TEST

/* The new group's id need not be G+1 (the meta group holds that one): any unused id works
 * the same. */
START_TEST(test_growth_any_id)
{
	check_growth(8, 1000);
	check_growth(16, 18);
}
END_TEST

/* Removing a group from the middle: its keys spread over the others, nobody else's move. */
START_TEST(test_remove_middle_group)
{
	uint32_t all[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, rest[8] = {9, 8, 7, 6, 4, 3, 2, 1};
	struct kv_ring *a = kv_ring_from_ids(all, 9, 128, 1),
		       *b = kv_ring_from_ids(rest, 8, 128, 2);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	uint64_t s = 3, moved = 0, to[10] = {0};
	char k[64];
	for (int i = 0; i < MOVE_KEYS; i++) {
		size_t n = key_of(&s, k);
		uint32_t ga = kv_ring_group_of(a, k, n), gb = kv_ring_group_of(b, k, n);
		EXPECT(gb != 5);
		if (ga == 5) {
			moved++;
			to[gb]++;
		} else {
			EXPECT(ga == gb);
		}
	}
	for (uint32_t g = 1; g <= 9; g++)
		if (g != 5)
			ck_assert_uint_gt(to[g], 0); /* spread, not dumped on one neighbour */
	ck_assert_double_eq_tol((double)moved / MOVE_KEYS, kv_ring_share(a, 5), 0.01);
	kv_ring_free(a);
	kv_ring_free(b);
}
END_TEST

/* The group of 100,000 keys, folded into one digest. */
static uint64_t placement_digest(const struct kv_ring *r)
{
	XXH64_state_t *st = XXH64_createState();
	ck_assert_ptr_nonnull(st);
	XXH64_reset(st, 0);
	uint64_t s = 99;
	char k[64];
	for (int i = 0; i < MOVE_KEYS; i++) {
		int n = sprintf(k, "user:%016llx", (unsigned long long)next_rand(&s));
		uint8_t g = (uint8_t)kv_ring_group_of(r, k, (size_t)n);
		XXH64_update(st, &g, 1);
	}
	uint64_t d = XXH64_digest(st);
	XXH64_freeState(st);
	return d;
}

/* Existing clusters keep exactly their placement: the digests below were taken with the ring
 * of main at commit ea64c5f (kv_ring_new(G, 128, 1), the seed then following the epoch, which
 * every cluster ran at 1), before rings were built from id sets. */
START_TEST(test_ids_keep_todays_ring)
{
	static const struct {
		uint32_t G;
		uint64_t digest;
	} golden[] = {
		{1, 0x49fc8a9849611c0aull},  {2, 0xb0020af6a225edc0ull},
		{3, 0x741479df1fe8ba48ull},  {8, 0x534ccf69ef11ebc8ull},
		{16, 0xa56e970f1584e813ull}, {64, 0x34329d7fc9086af1ull},
	};
	for (size_t i = 0; i < sizeof golden / sizeof golden[0]; i++) {
		uint32_t G = golden[i].G, ids[64];
		for (uint32_t g = 0; g < G; g++)
			ids[g] = G - g; /* any order */
		struct kv_ring *r = kv_ring_from_ids(ids, G, 128, 1), *old = kv_ring_new(G, 128, 1);
		ck_assert_ptr_nonnull(r);
		ck_assert_ptr_nonnull(old);
		ck_assert_msg(placement_digest(r) == golden[i].digest, "G=%u: placement changed",
			      G);
		ck_assert(placement_digest(old) == golden[i].digest);
		size_t n;
		const uint32_t *sorted = kv_ring_ids(r, &n);
		ck_assert_uint_eq(n, G);
		for (uint32_t g = 0; g < G; g++)
			ck_assert_uint_eq(sorted[g], g + 1);
		kv_ring_free(r);
		kv_ring_free(old);
	}
	/* A few single keys, as well. */
	struct kv_ring *r8 = kv_ring_new(8, 128, 1);
	ck_assert_uint_eq(kv_ring_group_of(r8, "a", 1), 7);
	ck_assert_uint_eq(kv_ring_group_of(r8, "key:1", 5), 2);
	ck_assert_uint_eq(kv_ring_group_of(r8, "", 0), 6);
	kv_ring_free(r8);
}
END_TEST

START_TEST(test_shares)
{
	struct kv_ring *one = kv_ring_new(1, 1, 1), *r = kv_ring_new(8, 128, 1);
	ck_assert_double_eq(kv_ring_share(one, 1), 1.0);
	ck_assert_double_eq(kv_ring_share(one, 2), 0.0);
	double sum = 0;
	for (uint32_t g = 1; g <= 8; g++) {
		double sh = kv_ring_share(r, g);
		ck_assert(sh > 0.125 * 0.75 && sh < 0.125 * 1.25);
		sum += sh;
	}
	ck_assert_double_eq_tol(sum, 1.0, 1e-9);
	ck_assert_double_eq(kv_ring_share(r, 9), 0.0);
	/* Shares follow the keys. */
	uint64_t count[9] = {0}, s = 5;
	char k[64];
	for (int i = 0; i < MOVE_KEYS; i++) {
		size_t n = key_of(&s, k);
		count[kv_ring_group_of(r, k, n)]++;
	}
	for (uint32_t g = 1; g <= 8; g++)
		ck_assert_double_eq_tol((double)count[g] / MOVE_KEYS, kv_ring_share(r, g), 0.01);
	/* The same ring: nothing moves, no ranges. */
	struct kv_ring_range *rr;
	size_t n;
	ck_assert_int_eq(kv_ring_diff(r, r, &rr, &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_null(rr);
	ck_assert_double_eq(kv_ring_moved_share(r, r), 0.0);
	/* One group to another: the whole circle, one range. */
	uint32_t two = 2;
	struct kv_ring *other = kv_ring_from_ids(&two, 1, 1, 2);
	ck_assert_int_eq(kv_ring_diff(one, other, &rr, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert(rr[0].from == 1 && rr[0].to == 2);
	ck_assert(kv_ring_range_has(&rr[0], 0) && kv_ring_range_has(&rr[0], UINT64_MAX));
	ck_assert(kv_ring_range_has(&rr[0], rr[0].lo) && kv_ring_range_has(&rr[0], rr[0].hi));
	free(rr);
	ck_assert_double_eq_tol(kv_ring_moved_share(one, other), 1.0, 1e-9);
	kv_ring_free(other);
	kv_ring_free(one);
	kv_ring_free(r);
}
END_TEST

START_TEST(test_range_has)
{
	struct kv_ring_range in = {.lo = 10, .hi = 20}, wrap = {.lo = 20, .hi = 10};
	ck_assert(!kv_ring_range_has(&in, 10));
	ck_assert(kv_ring_range_has(&in, 11) && kv_ring_range_has(&in, 20));
	ck_assert(!kv_ring_range_has(&in, 21));
	ck_assert(!kv_ring_range_has(&wrap, 15) && !kv_ring_range_has(&wrap, 20));
	ck_assert(kv_ring_range_has(&wrap, 21) && kv_ring_range_has(&wrap, UINT64_MAX));
	ck_assert(kv_ring_range_has(&wrap, 0) && kv_ring_range_has(&wrap, 10));
	ck_assert(!kv_ring_range_has(&wrap, 11));
}
END_TEST

START_TEST(test_deterministic_and_epoch)
{
	struct kv_ring *a = kv_ring_new(8, 128, 5), *b = kv_ring_new(8, 128, 5),
		       *c = kv_ring_new(8, 128, 6);
	uint64_t s = 1;
	char k[64];
	for (int i = 0; i < 10000; i++) {
		size_t n = key_of(&s, k);
		ck_assert_uint_eq(kv_ring_group_of(a, k, n), kv_ring_group_of(b, k, n));
		/* The epoch labels the ring; it does not move keys. */
		ck_assert_uint_eq(kv_ring_group_of(a, k, n), kv_ring_group_of(c, k, n));
	}
	ck_assert_uint_eq(kv_ring_epoch(c), 6);
	ck_assert_uint_eq(kv_ring_vnodes(c), 128);
	/* Edge keys: the empty key and one past every point still map into 1..G. */
	uint32_t g = kv_ring_group_of(a, "", 0);
	ck_assert(g >= 1 && g <= 8);
	ck_assert_uint_eq(kv_ring_owner(a, UINT64_MAX), kv_ring_owner(a, 0));
	ck_assert_ptr_null(kv_ring_new(0, 128, 1));
	ck_assert_ptr_null(kv_ring_new(8, 0, 1));
	/* Id sets: empty, an id 0 or a repeated id are refused. */
	uint32_t zero[2] = {3, 0}, twice[3] = {4, 7, 4}, ok[2] = {7, 4};
	ck_assert_ptr_null(kv_ring_from_ids(ok, 0, 128, 1));
	ck_assert_ptr_null(kv_ring_from_ids(zero, 2, 128, 1));
	ck_assert_ptr_null(kv_ring_from_ids(twice, 3, 128, 1));
	struct kv_ring *two = kv_ring_from_ids(ok, 2, 128, 1);
	ck_assert_ptr_nonnull(two);
	ck_assert(kv_ring_has(two, 4) && kv_ring_has(two, 7) && !kv_ring_has(two, 1));
	g = kv_ring_group_of(two, "x", 1);
	ck_assert(g == 4 || g == 7);
	kv_ring_free(two);
	struct kv_ring *one = kv_ring_new(1, 1, 0);
	ck_assert_uint_eq(kv_ring_group_of(one, "x", 1), 1);
	kv_ring_free(one);
	kv_ring_free(a);
	kv_ring_free(b);
	kv_ring_free(c);
}
END_TEST

START_TEST(test_place_even_over_5)
{
	const uint64_t nodes[5] = {11, 12, 13, 14, 15};
	for (uint32_t G = 1; G <= 64; G++) {
		uint64_t hosted[5] = {0}, first[5] = {0};
		for (uint32_t g = 1; g <= G; g++) {
			uint64_t out[3];
			ck_assert_uint_eq(kv_ring_place(g, nodes, 5, 3, out), 3);
			ck_assert(out[0] != out[1] && out[1] != out[2] && out[0] != out[2]);
			for (int j = 0; j < 3; j++) {
				ck_assert(out[j] >= 11 && out[j] <= 15);
				hosted[out[j] - 11]++;
				if (j == 0)
					first[out[j] - 11]++;
			}
		}
		double ideal = 3.0 * G / 5;
		for (int n = 0; n < 5; n++) {
			ck_assert_msg(hosted[n] + 1 >= ideal && hosted[n] <= ideal + 1,
				      "G=%u node %d hosts %llu, ideal %.1f", G, n,
				      (unsigned long long)hosted[n], ideal);
			ck_assert(first[n] + 1 >= G / 5.0 && first[n] <= G / 5.0 + 1);
		}
	}
}
END_TEST

START_TEST(test_place_order_independent_and_small)
{
	const uint64_t a[5] = {101, 202, 303, 404, 505}, b[5] = {404, 101, 505, 303, 202};
	for (uint32_t g = 1; g <= 20; g++) {
		uint64_t x[3], y[3];
		ck_assert_uint_eq(kv_ring_place(g, a, 5, 3, x), 3);
		ck_assert_uint_eq(kv_ring_place(g, b, 5, 3, y), 3);
		ck_assert(memcmp(x, y, sizeof x) == 0);
	}
	/* Three nodes: every group on every node. Two nodes: as many as there are. */
	for (uint32_t g = 1; g <= 8; g++) {
		uint64_t out[3], seen = 0;
		ck_assert_uint_eq(kv_ring_place(g, a, 3, 3, out), 3);
		for (int j = 0; j < 3; j++)
			seen |= 1u << (out[j] / 101);
		ck_assert_uint_eq(seen, 0xe);
		ck_assert_uint_eq(kv_ring_place(g, a, 2, 3, out), 2);
		ck_assert(out[0] != out[1]);
	}
	/* More nodes than fit on the stack: still even. */
	uint64_t many[100], hosted[100] = {0};
	for (int i = 0; i < 100; i++)
		many[i] = 1000 + (uint64_t)i;
	for (uint32_t g = 1; g <= 100; g++) {
		uint64_t out[3];
		ck_assert_uint_eq(kv_ring_place(g, many, 100, 3, out), 3);
		for (int j = 0; j < 3; j++)
			hosted[out[j] - 1000]++;
	}
	for (int i = 0; i < 100; i++)
		ck_assert_uint_eq(hosted[i], 3);
}
END_TEST

static void part_is(const char *key, const char *want)
{
	size_t off, len;
	kv_ring_hash_part(key, strlen(key), &off, &len);
	ck_assert_uint_eq(len, strlen(want));
	ck_assert(memcmp(key + off, want, len) == 0);
}

/* Redis Cluster's hash-tag rule, and keys sharing a tag sharing a group. */
START_TEST(test_hash_tags)
{
	part_is("plain", "plain");
	part_is("user:{42}:name", "42");
	part_is("{42}", "42");
	part_is("a{}b{c}", "a{}b{c}"); /* the first '{' is followed by '}': whole key */
	part_is("a{b{c}d}", "b{c");    /* from the first '{' to the first '}' after it */
	part_is("a{bc", "a{bc");
	part_is("a}b{c}", "c");
	part_is("{x}{y}", "x");
	struct kv_ring *r = kv_ring_new(8, 128, 1);
	ck_assert_ptr_nonnull(r);
	uint32_t g = kv_ring_group_of(r, "42", 2);
	char buf[64];
	for (int i = 0; i < 1000; i++) {
		int n = snprintf(buf, sizeof buf, "k%d{42}v%d", i, i * 7);
		ck_assert_uint_eq(kv_ring_group_of(r, buf, (size_t)n), g);
	}
	kv_ring_free(r);
}
END_TEST

Suite *ring_suite(void)
{
	Suite *s = suite_create("kv_ring");
	TCase *tc = tcase_create("ring");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_balance_8x128);
	tcase_add_test(tc, test_growth_moves_one_share);
	tcase_add_test(tc, test_growth_any_id);
	tcase_add_test(tc, test_remove_middle_group);
	tcase_add_test(tc, test_ids_keep_todays_ring);
	tcase_add_test(tc, test_shares);
	tcase_add_test(tc, test_range_has);
	tcase_add_test(tc, test_deterministic_and_epoch);
	tcase_add_test(tc, test_place_even_over_5);
	tcase_add_test(tc, test_place_order_independent_and_small);
	tcase_add_test(tc, test_hash_tags);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(ring_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
