/* test_cache.c — the tail cache's arena (wal/cache.c) against a model: batches of random
 * sizes go in one after the other; afterwards the cache must hold a contiguous run of the
 * newest ones, each byte for byte, within its budget, and no fewer than fit. A gap in the
 * sequence numbers or a batch too big for the arena empties it.
 */
#include "tests/unit/wal/wal_test_util.h"
#include "wal/wal_internal.h"

#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14; as wal/cache.c */
#endif

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

/* Pages of [p, p + n) present in memory (mincore). */
static size_t resident_pages(const uint8_t *p, size_t n)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), pages = (n + page - 1) / page, k = 0;
	unsigned char *v = malloc(pages);
	ck_assert_ptr_nonnull(v);
	ck_assert_int_eq(mincore((void *)p, n, v), 0);
	for (size_t i = 0; i < pages; i++)
		k += v[i] & 1;
	free(v);
	return k;
}

/* wal_prepare faults the whole arena in (off the write path), and what was cached before is
 * still there byte for byte; batches written afterwards read back from it. */
START_TEST(test_prepare_populates_the_arena)
{
	enum { ARENA = 1 << 20 };
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	/* a kernel without MADV_POPULATE_WRITE (before 5.14) keeps faulting pages on first touch */
	void *probe = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(probe, MAP_FAILED);
	bool can = madvise(probe, page, MADV_POPULATE_WRITE) == 0;
	munmap(probe, page);
	if (!can) {
		fprintf(stderr,
			"test_prepare_populates_the_arena: kernel cannot populate, skipped\n");
		return;
	}
	char *dir = tmp_dir();
	struct wal_options o;
	wal_options_default(&o);
	o.cache_bytes = ARENA;
	o.segment_bytes = 64 << 10; /* the spare wal_prepare makes: small */
	struct wal *w = open_ok(dir, &o);
	uint8_t buf[MAX_LEN + 8];
	fill(1, buf);
	pthread_mutex_lock(&w->mu);
	ck_assert_ptr_nonnull(wal_cache_add(w, 1, 1, 4096, buf, len_of(1)));
	pthread_mutex_unlock(&w->mu);
	/* one batch touched the arena's first pages only */
	ck_assert_uint_lt(resident_pages(w->cache.arena, ARENA), ARENA / page / 2);
	ck_assert_int_eq(wal_prepare(w), WAL_OK);
	ck_assert_uint_eq(resident_pages(w->cache.arena, ARENA), ARENA / page);
	check_cache(w, 1);
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
	tcase_add_test(tc, test_prepare_populates_the_arena);
	suite_add_tcase(s, tc);
	return wal_test_run(s);
}
