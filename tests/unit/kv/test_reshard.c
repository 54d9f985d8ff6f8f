/* test_reshard.c — the rules of a ring change (kv/reshard.c): planning the moving ranges,
 * every transition of a range (the legal ones taken, the illegal ones refused with the record
 * unchanged), a change that ends one way only, steps per (source, target) pair all or none,
 * and at every state of every range: exactly one group serves reads of a key, writes go to
 * that group or to none, and the reader is the group that holds the key's latest value.
 */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/reshard.h"

#define KEYS 20000

/* An assertion for inner loops: Check's own record every passing assertion (a write each),
 * which costs more than the loops themselves. */
#define EXPECT(c)                                                                                  \
	do {                                                                                       \
		if (!(c))                                                                          \
			ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #c);                         \
	} while (0)

static uint64_t next_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static const uint32_t ids8[8] = {1, 2, 3, 4, 5, 6, 7, 8};
static const uint32_t ids8_10[9] = {1, 2, 3, 4, 5, 6, 7, 8, 10}; /* 9 is the meta group */
static const uint32_t ids8_no5[7] = {1, 2, 3, 4, 6, 7, 8};

/* Adding group 10 to groups 1..8. */
static struct kv_reshard *grow(void)
{
	struct kv_reshard *r;
	ck_assert_int_eq(kv_reshard_plan(ids8, 8, 1, ids8_10, 9, 2, 128, &r), 0);
	ck_assert_ptr_nonnull(r);
	return r;
}

/* Removing group 5 from groups 1..8: its ranges go to several groups. */
static struct kv_reshard *shrink(void)
{
	struct kv_reshard *r;
	ck_assert_int_eq(kv_reshard_plan(ids8, 8, 4, ids8_no5, 7, 5, 128, &r), 0);
	ck_assert_ptr_nonnull(r);
	return r;
}

START_TEST(test_plan)
{
	struct kv_reshard *r = grow();
	ck_assert_uint_gt(r->n_ranges, 0);
	ck_assert_uint_le(r->n_ranges, 128);
	for (size_t i = 0; i < r->n_ranges; i++) {
		ck_assert_uint_eq(r->ranges[i].to, 10);
		ck_assert(r->ranges[i].from >= 1 && r->ranges[i].from <= 8);
		ck_assert_int_eq(r->ranges[i].state, KV_RESHARD_PLANNED);
	}
	ck_assert_uint_eq(kv_ring_epoch(r->from), 1);
	ck_assert_uint_eq(kv_ring_epoch(r->to), 2);
	ck_assert_int_eq(kv_reshard_outcome(r), KV_RESHARD_MOVING);
	kv_reshard_free(r);
	r = shrink();
	bool to[9] = {0};
	for (size_t i = 0; i < r->n_ranges; i++) {
		ck_assert_uint_eq(r->ranges[i].from, 5);
		to[r->ranges[i].to] = true;
	}
	ck_assert(!to[5]);
	ck_assert(to[1] || to[2] || to[3] || to[4]);
	kv_reshard_free(r);
	/* Refused: epochs that do not increase, the same ring, bad id sets. */
	struct kv_reshard *bad = (struct kv_reshard *)1;
	ck_assert_int_eq(kv_reshard_plan(ids8, 8, 2, ids8_10, 9, 2, 128, &bad), KV_RESHARD_EINVAL);
	ck_assert_ptr_null(bad);
	ck_assert_int_eq(kv_reshard_plan(ids8, 8, 3, ids8_10, 9, 2, 128, &bad), KV_RESHARD_EINVAL);
	ck_assert_int_eq(kv_reshard_plan(ids8, 8, 1, ids8, 8, 2, 128, &bad), KV_RESHARD_EINVAL);
	const uint32_t zero[2] = {1, 0}, twice[3] = {1, 2, 2};
	ck_assert_int_eq(kv_reshard_plan(ids8, 8, 1, zero, 2, 2, 128, &bad), KV_RESHARD_EINVAL);
	ck_assert_int_eq(kv_reshard_plan(twice, 3, 1, ids8, 8, 2, 128, &bad), KV_RESHARD_EINVAL);
	ck_assert_int_eq(kv_reshard_plan(ids8, 0, 1, ids8, 8, 2, 128, &bad), KV_RESHARD_EINVAL);
	ck_assert_ptr_null(bad);
}
END_TEST

/* Drives range i from PLANNED to s by legal steps. */
static void drive(struct kv_reshard *r, size_t i, enum kv_reshard_state s)
{
	static const enum kv_reshard_state forward[] = {KV_RESHARD_FENCED, KV_RESHARD_INGESTED,
							KV_RESHARD_DONE};
	if (s == KV_RESHARD_PLANNED)
		return;
	if (s == KV_RESHARD_ROLLED_BACK) {
		ck_assert_int_eq(kv_reshard_step(r, i, s), 0);
		return;
	}
	for (size_t k = 0; k < 3; k++) {
		ck_assert_int_eq(kv_reshard_step(r, i, forward[k]), 0);
		if (forward[k] == s)
			return;
	}
}

/* Every (state, next state) pair of one range: taken when the rules allow it, else refused
 * with KV_RESHARD_EILLEGAL and the record unchanged. */
START_TEST(test_every_transition)
{
	enum { P = KV_RESHARD_PLANNED, F, I, D, R };
	/* legal[now][next], states 1..5 */
	static const bool legal[6][6] = {
		[P] = {[P] = true, [F] = true, [R] = true},
		[F] = {[F] = true, [I] = true, [R] = true},
		[I] = {[I] = true, [D] = true, [R] = true},
		[D] = {[D] = true},
		[R] = {[R] = true},
	};
	for (int now = P; now <= R; now++) {
		for (int next = P; next <= R; next++) {
			struct kv_reshard *r = grow();
			drive(r, 0, (enum kv_reshard_state)now);
			ck_assert_int_eq(r->ranges[0].state, now);
			bool want = legal[now][next];
			ck_assert_msg(kv_reshard_legal(r, 0, (enum kv_reshard_state)next) == want,
				      "%s -> %s", kv_reshard_state_name((enum kv_reshard_state)now),
				      kv_reshard_state_name((enum kv_reshard_state)next));
			int rc = kv_reshard_step(r, 0, (enum kv_reshard_state)next);
			ck_assert_int_eq(rc, want ? 0 : KV_RESHARD_EILLEGAL);
			ck_assert_int_eq(r->ranges[0].state, want ? next : now);
			/* The other ranges never move with it. */
			for (size_t i = 1; i < r->n_ranges; i++)
				ck_assert_int_eq(r->ranges[i].state, KV_RESHARD_PLANNED);
			kv_reshard_free(r);
		}
	}
	/* Not a state, not a range. */
	struct kv_reshard *r = grow();
	ck_assert_int_eq(kv_reshard_step(r, 0, (enum kv_reshard_state)0), KV_RESHARD_EINVAL);
	ck_assert_int_eq(kv_reshard_step(r, 0, (enum kv_reshard_state)6), KV_RESHARD_EINVAL);
	ck_assert_int_eq(kv_reshard_step(r, r->n_ranges, KV_RESHARD_FENCED), KV_RESHARD_EINVAL);
	ck_assert(!kv_reshard_legal(r, r->n_ranges, KV_RESHARD_FENCED));
	ck_assert_int_eq(r->ranges[0].state, KV_RESHARD_PLANNED);
	kv_reshard_free(r);
}
END_TEST

/* A change ends one way: the new ring for every range, or the old one for every range. */
START_TEST(test_one_way_end)
{
	struct kv_reshard *r = grow();
	ck_assert_uint_ge(r->n_ranges, 3);
	drive(r, 0, KV_RESHARD_ROLLED_BACK);
	drive(r, 1, KV_RESHARD_INGESTED);
	ck_assert_int_eq(kv_reshard_step(r, 1, KV_RESHARD_DONE), KV_RESHARD_EILLEGAL);
	ck_assert_int_eq(r->ranges[1].state, KV_RESHARD_INGESTED);
	ck_assert_int_eq(kv_reshard_outcome(r), KV_RESHARD_MOVING);
	for (size_t i = 1; i < r->n_ranges; i++)
		ck_assert_int_eq(kv_reshard_step(r, i, KV_RESHARD_ROLLED_BACK), 0);
	ck_assert_int_eq(kv_reshard_outcome(r), KV_RESHARD_ABANDONED);
	kv_reshard_free(r);

	r = grow();
	drive(r, 0, KV_RESHARD_DONE);
	drive(r, 1, KV_RESHARD_FENCED);
	ck_assert_int_eq(kv_reshard_step(r, 1, KV_RESHARD_ROLLED_BACK), KV_RESHARD_EILLEGAL);
	ck_assert_int_eq(kv_reshard_step(r, 2, KV_RESHARD_ROLLED_BACK), KV_RESHARD_EILLEGAL);
	ck_assert_int_eq(kv_reshard_outcome(r), KV_RESHARD_MOVING);
	ck_assert_int_eq(r->ranges[1].state, KV_RESHARD_FENCED);
	ck_assert_int_eq(kv_reshard_step(r, 1, KV_RESHARD_INGESTED), 0);
	ck_assert_int_eq(kv_reshard_step(r, 1, KV_RESHARD_DONE), 0);
	for (size_t i = 2; i < r->n_ranges; i++)
		drive(r, i, KV_RESHARD_DONE);
	ck_assert_int_eq(kv_reshard_outcome(r), KV_RESHARD_COMPLETE);
	/* Repeating the last step is allowed and changes nothing. */
	ck_assert_int_eq(kv_reshard_step(r, 1, KV_RESHARD_DONE), 0);
	ck_assert_int_eq(kv_reshard_outcome(r), KV_RESHARD_COMPLETE);
	kv_reshard_free(r);
}
END_TEST

/* A pair's ranges step together, all or none; other pairs' ranges stay. */
START_TEST(test_step_pair)
{
	struct kv_reshard *r = shrink();
	uint32_t to = r->ranges[0].to, other = 0;
	size_t mine = 0, first_other = r->n_ranges;
	for (size_t i = 0; i < r->n_ranges; i++) {
		if (r->ranges[i].to == to) {
			mine++;
		} else if (first_other == r->n_ranges) {
			first_other = i;
			other = r->ranges[i].to;
		}
	}
	ck_assert_uint_ge(mine, 2);
	ck_assert_uint_lt(first_other, r->n_ranges);
	ck_assert_int_eq(kv_reshard_step_pair(r, 5, to, KV_RESHARD_FENCED), 0);
	for (size_t i = 0; i < r->n_ranges; i++)
		ck_assert_int_eq(r->ranges[i].state,
				 r->ranges[i].to == to ? KV_RESHARD_FENCED : KV_RESHARD_PLANNED);
	/* One range of the pair moved ahead alone: a pair step that is illegal for it changes
	 * none of the pair. */
	size_t one = 0;
	while (r->ranges[one].to != to)
		one++;
	ck_assert_int_eq(kv_reshard_step(r, one, KV_RESHARD_INGESTED), 0);
	ck_assert_int_eq(kv_reshard_step_pair(r, 5, to, KV_RESHARD_FENCED), KV_RESHARD_EILLEGAL);
	ck_assert_int_eq(kv_reshard_step_pair(r, 5, to, KV_RESHARD_DONE), KV_RESHARD_EILLEGAL);
	for (size_t i = 0; i < r->n_ranges; i++)
		if (r->ranges[i].to == to)
			ck_assert_int_eq(r->ranges[i].state,
					 i == one ? KV_RESHARD_INGESTED : KV_RESHARD_FENCED);
	ck_assert_int_eq(kv_reshard_step_pair(r, 5, to, KV_RESHARD_INGESTED), 0);
	ck_assert_int_eq(kv_reshard_step_pair(r, 5, to, KV_RESHARD_DONE), 0);
	ck_assert_int_eq(r->ranges[first_other].state, KV_RESHARD_PLANNED);
	ck_assert_int_eq(kv_reshard_step_pair(r, 5, other, KV_RESHARD_ROLLED_BACK),
			 KV_RESHARD_EILLEGAL); /* a pair is DONE: no rollback any more */
	/* No such pair; not a state. */
	ck_assert_int_eq(kv_reshard_step_pair(r, 4, to, KV_RESHARD_FENCED), KV_RESHARD_EINVAL);
	ck_assert_int_eq(kv_reshard_step_pair(r, 5, 5, KV_RESHARD_FENCED), KV_RESHARD_EINVAL);
	ck_assert_int_eq(kv_reshard_step_pair(r, 5, to, (enum kv_reshard_state)9),
			 KV_RESHARD_EINVAL);
	kv_reshard_free(r);
}
END_TEST

/* Checks, for KEYS keys, the serving rules of the record as it stands: the range lookup
 * agrees with a scan of every range; reads are served by exactly one group of all the ids,
 * the one that holds the latest value (the source until DONE, the target from DONE); writes
 * by that group or by none, and by none exactly while the range is frozen. */
static void check_serving(const struct kv_reshard *r, const uint32_t *all, size_t n_all)
{
	uint64_t s = 11;
	for (int k = 0; k < KEYS; k++) {
		uint64_t h = next_rand(&s);
		if (k == 0)
			h = 0;
		if (k == 1)
			h = UINT64_MAX;
		if (k == 2)
			h = r->ranges[0].hi; /* range ends belong to the range */
		long found = -1;
		for (size_t i = 0; i < r->n_ranges; i++) {
			struct kv_ring_range x = {.lo = r->ranges[i].lo, .hi = r->ranges[i].hi};
			if (kv_ring_range_has(&x, h)) {
				EXPECT(found == -1); /* ranges do not overlap */
				found = (long)i;
			}
		}
		EXPECT(kv_reshard_find(r, h) == found);
		uint32_t from = kv_ring_owner(r->from, h), to = kv_ring_owner(r->to, h);
		EXPECT((found >= 0) == (from != to));
		enum kv_reshard_state st = found >= 0 ? r->ranges[found].state : KV_RESHARD_DONE;
		uint32_t holder = st == KV_RESHARD_DONE ? to : from;
		bool frozen = st == KV_RESHARD_FENCED || st == KV_RESHARD_INGESTED;
		uint32_t reader, writer;
		kv_reshard_owner(r, h, &reader, &writer);
		EXPECT(reader == holder);
		EXPECT(writer == (frozen ? 0 : holder));
		size_t readers = 0, writers = 0;
		for (size_t g = 0; g < n_all; g++) {
			uint32_t serving;
			enum kv_reshard_answer a = kv_reshard_answer(r, all[g], h, false, &serving);
			EXPECT(serving == reader);
			readers += a == KV_RESHARD_SERVE;
			EXPECT(a == (all[g] == reader ? KV_RESHARD_SERVE : KV_RESHARD_ELSEWHERE));
			a = kv_reshard_answer(r, all[g], h, true, &serving);
			writers += a == KV_RESHARD_SERVE;
			if (frozen)
				EXPECT(a == KV_RESHARD_RETRY && serving == 0);
			else
				EXPECT(a == (all[g] == writer ? KV_RESHARD_SERVE
							      : KV_RESHARD_ELSEWHERE));
		}
		EXPECT(readers == 1);
		EXPECT(writers == (frozen ? 0u : 1u));
	}
}

START_TEST(test_serving_at_every_state)
{
	static const uint32_t all[9] = {1, 2, 3, 4, 5, 6, 7, 8, 10};
	/* Forward: every range through every state together, and rollback from each. */
	static const enum kv_reshard_state path[] = {KV_RESHARD_FENCED, KV_RESHARD_INGESTED,
						     KV_RESHARD_DONE};
	for (int stop = 0; stop <= 3; stop++) {
		struct kv_reshard *r = grow();
		check_serving(r, all, 9);
		for (int k = 0; k < stop; k++) {
			for (size_t i = 0; i < r->n_ranges; i++)
				ck_assert_int_eq(kv_reshard_step(r, i, path[k]), 0);
			check_serving(r, all, 9);
		}
		if (stop < 3) {
			for (size_t i = 0; i < r->n_ranges; i++)
				ck_assert_int_eq(kv_reshard_step(r, i, KV_RESHARD_ROLLED_BACK), 0);
			check_serving(r, all, 9);
			ck_assert_int_eq(kv_reshard_outcome(r), KV_RESHARD_ABANDONED);
		} else {
			ck_assert_int_eq(kv_reshard_outcome(r), KV_RESHARD_COMPLETE);
		}
		kv_reshard_free(r);
	}
	/* Ranges in different states at once (each source moves at its own pace). */
	struct kv_reshard *r = shrink();
	for (size_t i = 0; i < r->n_ranges; i++)
		drive(r, i, (enum kv_reshard_state)(KV_RESHARD_PLANNED + i % 4));
	check_serving(r, all, 8);
	kv_reshard_free(r);
}
END_TEST

/* One change at a time, each from the ring the last one ended in, epochs never reused. */
START_TEST(test_may_follow)
{
	struct kv_ring *boot = kv_ring_new(8, 128, 1);
	struct kv_reshard *first = grow(); /* 1..8 @1 -> 1..8,10 @2 */
	ck_assert(kv_reshard_may_follow(NULL, boot, first));
	ck_assert_ptr_null(kv_reshard_in_effect(first));
	/* From a ring that is not the one in effect: refused. */
	struct kv_reshard *other;
	ck_assert_int_eq(kv_reshard_plan(ids8_10, 9, 2, ids8, 8, 3, 128, &other), 0);
	ck_assert(!kv_reshard_may_follow(NULL, boot, other));
	/* While the first is moving, nothing may follow it. */
	ck_assert(!kv_reshard_may_follow(first, boot, other));
	for (size_t i = 0; i < first->n_ranges; i++)
		drive(first, i, KV_RESHARD_DONE);
	ck_assert_ptr_eq(kv_reshard_in_effect(first), first->to);
	ck_assert(kv_reshard_may_follow(first, boot, other)); /* removing 10 again, at epoch 3 */
	/* Not from the new ring's epoch, or not above the last epoch: refused. */
	struct kv_reshard *stale, *same_epoch;
	ck_assert_int_eq(kv_reshard_plan(ids8_10, 9, 1, ids8, 8, 3, 128, &stale), 0);
	ck_assert(!kv_reshard_may_follow(first, boot, stale));
	ck_assert_int_eq(kv_reshard_plan(ids8, 8, 1, ids8_no5, 7, 2, 128, &same_epoch), 0);
	struct kv_reshard *abandoned = grow();
	for (size_t i = 0; i < abandoned->n_ranges; i++)
		drive(abandoned, i, KV_RESHARD_ROLLED_BACK);
	ck_assert_ptr_eq(kv_reshard_in_effect(abandoned), abandoned->from);
	ck_assert(!kv_reshard_may_follow(abandoned, boot, same_epoch)); /* epoch 2 was used */
	/* A next change that is already under way: refused. */
	ck_assert_int_eq(kv_reshard_step(other, 0, KV_RESHARD_FENCED), 0);
	ck_assert(!kv_reshard_may_follow(first, boot, other));
	/* Another point count: refused. */
	struct kv_reshard *v64;
	ck_assert_int_eq(kv_reshard_plan(ids8, 8, 1, ids8_10, 9, 2, 64, &v64), 0);
	ck_assert(!kv_reshard_may_follow(NULL, boot, v64));
	kv_reshard_free(v64);
	kv_reshard_free(abandoned);
	kv_reshard_free(same_epoch);
	kv_reshard_free(stale);
	kv_reshard_free(other);
	kv_reshard_free(first);
	kv_ring_free(boot);
}
END_TEST

START_TEST(test_names)
{
	ck_assert_str_eq(kv_reshard_state_name(KV_RESHARD_FENCED), "fenced");
	ck_assert_str_eq(kv_reshard_state_name(KV_RESHARD_ROLLED_BACK), "rolled-back");
	ck_assert_str_eq(kv_reshard_state_name((enum kv_reshard_state)0), "unknown");
	ck_assert_str_eq(kv_reshard_strerror(KV_RESHARD_EILLEGAL),
			 "step not allowed in this state");
	ck_assert_str_eq(kv_reshard_strerror(-99), "unknown error");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("kv_reshard");
	TCase *tc = tcase_create("reshard");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_plan);
	tcase_add_test(tc, test_every_transition);
	tcase_add_test(tc, test_one_way_end);
	tcase_add_test(tc, test_step_pair);
	tcase_add_test(tc, test_serving_at_every_state);
	tcase_add_test(tc, test_may_follow);
	tcase_add_test(tc, test_names);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
