/* cache.c — the tail cache: the newest batches, kept whole, for every group together.
 *
 * After its write a batch is copied, whole, into one ring-shaped arena of opts.cache_bytes
 * (mapped at the first batch or wal_prepare, and faulted in by wal_prepare, see below), and
 * the oldest batches give way as it wraps. An entry's slot names its batch; while the batch is
 * cached the entry is read from memory, afterwards from disk. So the write path does one copy
 * per batch and no allocation, and the memory is one budget for the whole WAL however many
 * groups write (TiKV's raft-engine bounds its entry cache for all regions the same way).
 * Cached batches have consecutive sequence numbers: finding one is an index computation.
 * Everything here runs under the WAL's mutex.
 *
 * Why a copy into an arena rather than keeping each batch's own buffer: a batch buffer is
 * allocated for direct I/O (aligned, at least 4 KiB), so keeping them made a small batch cost a
 * fresh allocation and its first-touch page faults every time — measured as about 12% more
 * CPU in kvd for unpipelined puts. Copying a 20 KB batch costs about 2 µs.
 *
 * Except on the arena's first lap: there each new 4 KiB page is a page fault, and on a
 * virtual machine a dear one (measured: 18 µs to copy a 20 KB batch on the first lap, 2 µs
 * after it). So wal_prepare, which runs off the write path, maps the arena if need be and
 * faults all of it in once (MADV_POPULATE_WRITE: pages are made present, contents untouched,
 * so it may run while the writer copies into the arena). The cost is that the whole budget is
 * resident from the first wal_prepare on rather than after the first cache_bytes of log.
 * Where the kernel cannot (before Linux 5.14), pages come on first touch as before.
 */
#include <stdlib.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

#include "wal/wal_internal.h"

uint8_t *wal_buf_alloc(size_t cap)
{
	void *p = NULL;
	if (posix_memalign(&p, WAL_BUF_ALIGN, cap) != 0)
		return NULL;
	return p;
}

static void evict_oldest(struct wal_cache *c)
{
	c->bytes -= c->ring[c->head].len;
	c->head = (c->head + 1) % c->cap;
	c->n--;
}

static void evict_all(struct wal_cache *c)
{
	while (c->n > 0)
		evict_oldest(c);
}

/* Whether [a, a + an) and [b, b + bn) overlap. */
static bool overlap(size_t a, size_t an, size_t b, size_t bn)
{
	return a < b + bn && b < a + an;
}

const uint8_t *wal_cache_add(struct wal *w, uint64_t seq, uint64_t seg, uint64_t seg_off,
			     const uint8_t *bytes, size_t len)
{
	struct wal_cache *c = &w->cache;
	if (c->n > 0 && c->ring[(c->head + c->n - 1) % c->cap].seq + 1 != seq)
		evict_all(c); /* not the next batch (a gap at recovery): start over */
	if (len == 0 || len > w->opts.cache_bytes) {
		evict_all(c); /* too big to keep: the cache restarts after it */
		return NULL;
	}
	if (!c->arena && wal_cache_map(w) != WAL_OK)
		return NULL; /* reads go to disk; tried again at the next batch */
	if (c->n == c->cap) {
		size_t ncap = c->cap ? 2 * c->cap : 256;
		struct wal_block *nr = malloc(ncap * sizeof *nr);
		if (!nr) {
			evict_all(c);
			return NULL;
		}
		for (size_t i = 0; i < c->n; i++)
			nr[i] = c->ring[(c->head + i) % c->cap];
		free(c->ring);
		c->ring = nr;
		c->head = 0;
		c->cap = ncap;
	}
	/* Right after the newest batch, or at the start when the arena's end is too close. The
	 * batches lie in the arena oldest first, circularly, so the ones in the way are always the
	 * oldest: on a wrap, first those of the older lap (after the newest one), then those at
	 * the start that the new batch covers. */
	if (c->n == 0)
		c->tail = 0;
	size_t at = c->tail;
	if (at + len > c->arena_cap) {
		at = 0;
		while (c->n > 0 && c->ring[c->head].off >= c->tail)
			evict_oldest(c);
	}
	while (c->n > 0 && overlap(at, len, c->ring[c->head].off, c->ring[c->head].len))
		evict_oldest(c);
	memcpy(c->arena + at, bytes, len);
	c->ring[(c->head + c->n) % c->cap] = (struct wal_block){
		.seq = seq, .seg = seg, .seg_off = seg_off, .off = at, .len = len};
	c->n++;
	c->bytes += len;
	c->tail = at + len;
	return c->arena + at;
}

const uint8_t *wal_cache_find(const struct wal *w, uint64_t seq, uint64_t seg, uint32_t data_off)
{
	const struct wal_cache *c = &w->cache;
	if (c->n == 0)
		return NULL;
	uint64_t oldest = c->ring[c->head].seq;
	if (seq < oldest || seq - oldest >= c->n)
		return NULL;
	const struct wal_block *b = &c->ring[(c->head + (seq - oldest)) % c->cap];
	if (b->seg != seg || data_off < b->seg_off || data_off - b->seg_off >= b->len)
		return NULL; /* not this entry's batch: never expected, but a disk read is safe */
	return c->arena + b->off + (data_off - b->seg_off);
}

int wal_cache_map(struct wal *w)
{
	struct wal_cache *c = &w->cache;
	if (c->arena || !w->opts.cache_bytes)
		return WAL_OK;
	/* mapped, not malloc'ed: page-aligned for madvise, and no pages are taken until touched */
	void *p = mmap(NULL, w->opts.cache_bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return WAL_ENOMEM;
	c->arena = p;
	c->arena_cap = w->opts.cache_bytes;
	return WAL_OK;
}

void wal_cache_populate(struct wal *w)
{
	struct wal_cache *c = &w->cache;
	pthread_mutex_lock(&w->mu);
	bool todo = !c->populated && wal_cache_map(w) == WAL_OK && c->arena;
	c->populated = true; /* tried once: an old kernel's EINVAL is not worth asking again */
	uint8_t *arena = c->arena;
	size_t cap = c->arena_cap;
	pthread_mutex_unlock(&w->mu);
	/* outside the mutex (tens of milliseconds for 64 MiB): the arena stays mapped until
	 * wal_close, which does not run beside wal_prepare */
	if (todo)
		(void)madvise(arena, cap, MADV_POPULATE_WRITE);
}

void wal_cache_free(struct wal *w)
{
	struct wal_cache *c = &w->cache;
	free(c->ring);
	if (c->arena)
		munmap(c->arena, c->arena_cap);
	memset(c, 0, sizeof *c);
}
