/* test_cache.c — the tail cache's arena (wal/cache.c) against a model: batches of random
 * sizes go in one after the other; afterwards the cache must hold a contiguous run of the
 * newest ones, each byte for byte, within its budget, and no fewer than fit. A gap in the
 * sequence numbers or a batch too big for the arena empties it.
 */
#include "tests/unit/wal/wal_test_util.h"
#include "wal/wal_internal.h"

enum { BUDGET = 8192, BATCHES = 6000, MAX_LEN = 3000 };

static size_t len_of(uint64_t seq)
{
	return 8 + (size_t)((seq * 2654435761u) % MAX_LEN);
}

static uint8_t byte_of(uint64_t seq, size_t i)
{
	return (uint8_t)(seq * 31 + i * 7);
}

static void fill(uint64_t seq, uint8_t *buf)
{
	for (size_t i = 0; i < len_of(seq); i++)
		buf[i] = byte_of(seq, i);
}

/* Checks every cached batch's bytes and returns the oldest cached seq (newest + 1 if none). */
static uint64_t check_cache(struct wal *w, uint64_t newest)
{
	uint64_t oldest = newest + 1;
	size_t held = 0;
	uint8_t want[MAX_LEN + 8];
	for (uint64_t seq = newest; seq >= 1; seq--) {
		size_t len = len_of(seq);
		const uint8_t *p = wal_cache_find(w, seq, 1, (uint32_t)(seq * 4096));
		if (!p)
			break;
		fill(seq, want);
		ck_assert_msg(memcmp(p, want, len) == 0, "batch %llu damaged in the cache",
			      (unsigned long long)seq);
		const uint8_t *last = wal_cache_find(w, seq, 1, (uint32_t)(seq * 4096 + len - 1));
		ck_assert_ptr_eq(last, p + len - 1);
		ck_assert_ptr_null(wal_cache_find(w, seq, 1, (uint32_t)(seq * 4096 + len)));
		ck_assert_ptr_null(wal_cache_find(w, seq, 2, (uint32_t)(seq * 4096)));
		oldest = seq;
		held += len;
	}
	/* nothing older than the run is found */
	if (oldest > 1)
		ck_assert_ptr_null(
			wal_cache_find(w, oldest - 1, 1, (uint32_t)((oldest - 1) * 4096)));
	struct wal_stats st;
	wal_stats_get(w, &st);
	ck_assert_uint_eq(st.cache_bytes, held);
	ck_assert_uint_le(held, BUDGET);
	return oldest;
}

START_TEST(test_arena_keeps_the_newest_batches)
{
	char *dir = tmp_dir();
	struct wal_options o;
	wal_options_default(&o);
	o.cache_bytes = BUDGET;
	struct wal *w = open_ok(dir, &o);
	uint8_t buf[MAX_LEN + 8];
	for (uint64_t seq = 1; seq <= BATCHES; seq++) {
		size_t len = len_of(seq);
		fill(seq, buf);
		pthread_mutex_lock(&w->mu);
		const uint8_t *copy = wal_cache_add(w, seq, 1, seq * 4096, buf, len);
		ck_assert_ptr_nonnull(copy);
		ck_assert(memcmp(copy, buf, len) == 0);
		pthread_mutex_unlock(&w->mu);
		if (seq % 7 == 0 || seq < 50) {
			uint64_t oldest = check_cache(w, seq);
			/* no fewer than fit: the next older batch would not have fitted in the
			 * arena beside them (at worst the wrap wastes the end of the arena) */
			size_t held = 0;
			for (uint64_t s = oldest; s <= seq; s++)
				held += len_of(s);
			if (oldest > 1)
				ck_assert_uint_gt(held + len_of(oldest - 1) + MAX_LEN + 8, BUDGET);
		}
	}
	/* a gap empties the cache; the batch after it starts a new run */
	pthread_mutex_lock(&w->mu);
	ck_assert_ptr_nonnull(wal_cache_add(w, BATCHES + 5, 1, 4096, buf, 100));
	pthread_mutex_unlock(&w->mu);
	ck_assert_ptr_null(wal_cache_find(w, BATCHES, 1, (uint32_t)(BATCHES * 4096)));
	ck_assert_ptr_nonnull(wal_cache_find(w, BATCHES + 5, 1, 4096 + 50));
	/* a batch bigger than the arena is not kept, and empties it */
	static uint8_t big[BUDGET + 1];
	pthread_mutex_lock(&w->mu);
	ck_assert_ptr_null(wal_cache_add(w, BATCHES + 6, 1, 8192, big, sizeof big));
	pthread_mutex_unlock(&w->mu);
	ck_assert_ptr_null(wal_cache_find(w, BATCHES + 5, 1, 4096 + 50));
	struct wal_stats st;
	wal_stats_get(w, &st);
	ck_assert_uint_eq(st.cache_bytes, 0);
	wal_close(w);
	tmp_rmdir(dir);
	free(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("wal_cache");
	TCase *tc = tcase_create("cache");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_arena_keeps_the_newest_batches);
	suite_add_tcase(s, tc);
	return wal_test_run(s);
}
