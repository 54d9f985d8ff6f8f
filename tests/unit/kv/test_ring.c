/* test_ring.c — the consistent-hash ring and replica placement: balance of 1M random keys over
 * 8 groups x 128 virtual nodes, the share of keys that move when a group is added,
 * determinism (same inputs, same ring; the epoch changes it), and placement that is even
 * (every node within one of 3G/N), distinct and independent of the order nodes are listed;
 * hash tags ({tag}) place keys by their tag.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Going from G to G+1 groups moves about 1/(G+1) of the keys, all of them to the new group. */
static void check_growth(uint32_t G, uint64_t epoch)
{
	struct kv_ring *a = kv_ring_new(G, 128, epoch), *b = kv_ring_new(G + 1, 128, epoch);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	uint64_t moved = 0, s = 7 + G;
	char k[64];
	for (int i = 0; i < KEYS; i++) {
		size_t n = key_of(&s, k);
		uint32_t ga = kv_ring_group_of(a, k, n), gb = kv_ring_group_of(b, k, n);
		if (ga != gb) {
			ck_assert_uint_eq(gb, G + 1);
			moved++;
		}
	}
	double want = 1.0 / (G + 1), got = (double)moved / KEYS;
	printf("ring %u->%u groups: moved %.4f, ideal %.4f (%.1f%% off)\n", G, G + 1, got, want,
	       100 * (got - want) / want);
	ck_assert_msg(got >= 0.8 * want && got <= 1.2 * want, "G=%u moved %.4f, want %.4f +-20%%",
		      G, got, want);
	kv_ring_free(a);
	kv_ring_free(b);
}

START_TEST(test_growth_moves_one_share)
{
	check_growth(8, 1);
	check_growth(3, 1);
	check_growth(16, 1);
}
END_TEST

START_TEST(test_deterministic_and_epoch)
{
	struct kv_ring *a = kv_ring_new(8, 128, 5), *b = kv_ring_new(8, 128, 5),
		       *c = kv_ring_new(8, 128, 6);
	uint64_t s = 1;
	char k[64];
	int differ = 0;
	for (int i = 0; i < 10000; i++) {
		size_t n = key_of(&s, k);
		ck_assert_uint_eq(kv_ring_group_of(a, k, n), kv_ring_group_of(b, k, n));
		differ += kv_ring_group_of(a, k, n) != kv_ring_group_of(c, k, n);
	}
	ck_assert_int_gt(differ, 1000); /* a new epoch is a new ring */
	/* Edge keys: the empty key and one past every point still map into 1..G. */
	uint32_t g = kv_ring_group_of(a, "", 0);
	ck_assert(g >= 1 && g <= 8);
	ck_assert_ptr_null(kv_ring_new(0, 128, 1));
	ck_assert_ptr_null(kv_ring_new(8, 0, 1));
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
