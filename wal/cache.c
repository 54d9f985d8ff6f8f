/* cache.c — the tail cache: the newest batches, kept whole, for every group together.
 *
 * After its write a batch's buffer is not copied: the WAL takes it over from the wal_batch
 * (which gets a buffer of an evicted batch in exchange) and keeps it, oldest batches going
 * first once the blocks exceed opts.cache_bytes. An entry's slot names its batch; while the
 * batch is cached the entry is read from memory, afterwards from disk. So the write path does
 * no allocation and no copy per entry, and the memory is one budget for the whole WAL however
 * many groups write (TiKV's raft-engine bounds its entry cache for all regions the same way).
 * Cached batches have consecutive sequence numbers: finding one is an index computation.
 * Everything here runs under the WAL's mutex.
 */
#include <stdlib.h>

#include "wal/wal_internal.h"

uint8_t *wal_buf_alloc(size_t cap)
{
	void *p = NULL;
	if (posix_memalign(&p, WAL_BUF_ALIGN, cap) != 0)
		return NULL;
	return p;
}

/* Keeps a buffer for reuse (the largest ones), or frees it. */
static void recycle(struct wal_cache *c, uint8_t *mem, size_t cap)
{
	if (c->n_spare < WAL_SPARE_BUFFERS) {
		c->spare[c->n_spare].mem = mem;
		c->spare[c->n_spare].cap = cap;
		c->n_spare++;
		return;
	}
	size_t min = 0;
	for (size_t i = 1; i < c->n_spare; i++)
		if (c->spare[i].cap < c->spare[min].cap)
			min = i;
	if (c->spare[min].cap < cap) {
		free(c->spare[min].mem);
		c->spare[min].mem = mem;
		c->spare[min].cap = cap;
	} else {
		free(mem);
	}
}

static void evict_oldest(struct wal_cache *c)
{
	struct wal_block *b = &c->ring[c->head];
	c->bytes -= b->cap;
	recycle(c, b->mem, b->cap);
	c->head = (c->head + 1) % c->cap;
	c->n--;
}

void wal_cache_add(struct wal *w, uint64_t seq, uint64_t seg, uint64_t seg_off, uint8_t *mem,
		   size_t cap)
{
	struct wal_cache *c = &w->cache;
	if (c->n > 0 && c->ring[(c->head + c->n - 1) % c->cap].seq + 1 != seq)
		while (c->n > 0) /* not the next batch (cannot happen after a write): start over */
			evict_oldest(c);
	if (cap > w->opts.cache_bytes) {
		recycle(c, mem, cap);
		return;
	}
	while (c->n > 0 && c->bytes + cap > w->opts.cache_bytes)
		evict_oldest(c);
	if (c->n == c->cap) {
		size_t ncap = c->cap ? 2 * c->cap : 64;
		struct wal_block *nr = malloc(ncap * sizeof *nr);
		if (!nr) { /* keep going without this batch in memory: reads fall back to disk */
			recycle(c, mem, cap);
			return;
		}
		for (size_t i = 0; i < c->n; i++)
			nr[i] = c->ring[(c->head + i) % c->cap];
		free(c->ring);
		c->ring = nr;
		c->head = 0;
		c->cap = ncap;
	}
	c->ring[(c->head + c->n) % c->cap] = (struct wal_block){
		.seq = seq, .seg = seg, .seg_off = seg_off, .mem = mem, .cap = cap};
	c->n++;
	c->bytes += cap;
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
	if (b->seg != seg || data_off < b->seg_off || data_off - b->seg_off >= b->cap)
		return NULL; /* not this entry's batch: never expected, but a disk read is safe */
	return b->mem + (data_off - b->seg_off);
}

int wal_cache_buffer(struct wal *w, size_t min_cap, uint8_t **mem, size_t *cap)
{
	struct wal_cache *c = &w->cache;
	for (size_t i = 0; i < c->n_spare; i++) {
		if (c->spare[i].cap >= min_cap) {
			*mem = c->spare[i].mem;
			*cap = c->spare[i].cap;
			c->spare[i] = c->spare[--c->n_spare];
			return WAL_OK;
		}
	}
	uint8_t *m = wal_buf_alloc(min_cap);
	if (!m)
		return WAL_ENOMEM;
	*mem = m;
	*cap = min_cap;
	return WAL_OK;
}

void wal_cache_free(struct wal *w)
{
	struct wal_cache *c = &w->cache;
	while (c->n > 0)
		evict_oldest(c);
	for (size_t i = 0; i < c->n_spare; i++)
		free(c->spare[i].mem);
	c->n_spare = 0;
	free(c->ring);
	c->ring = NULL;
	c->cap = 0;
}
