/* disk.c — one node's simulated write-ahead log: durable state plus batches in flight.
 *
 * Each raft update becomes one batch (hard state, truncation, entries) that becomes durable
 * after a random latency; batches complete in order, as the WAL's do. A crash drops every
 * batch still in flight and never touches what is durable: the restart sees exactly that.
 */
#include <stdlib.h>
#include <string.h>

#include "tests/sim/sim.h"

void disk_init(struct disk *d)
{
	memset(d, 0, sizeof(*d));
	d->lat_min = 1;
	d->lat_max = 1;
}

void disk_batch_free(struct disk_batch *b)
{
	if (!b)
		return;
	entries_free(b->entries, b->n_entries);
	for (size_t i = 0; i < b->n_msgs; i++)
		msg_free(b->msgs[i]);
	free(b->msgs);
	free(b);
}

void disk_destroy(struct disk *d)
{
	disk_crash(d, NULL, 0);
	entries_free(d->log, d->n_log);
	memset(d, 0, sizeof(*d));
}

void disk_submit(struct disk *d, struct rng *g, uint64_t now, struct disk_batch *b)
{
	b->done_at = now + rng_range(g, d->lat_min, d->lat_max);
	if (d->tail && b->done_at < d->tail->done_at)
		b->done_at = d->tail->done_at; /* in order */
	b->next = NULL;
	if (d->tail)
		d->tail->next = b;
	else
		d->head = b;
	d->tail = b;
	d->n_pending++;
}

uint64_t disk_next_time(const struct disk *d)
{
	return d->head ? d->head->done_at : UINT64_MAX;
}

raft_index disk_last_index(const struct disk *d)
{
	return d->n_log ? d->log[d->n_log - 1].index : 0;
}

static void log_truncate(struct disk *d, raft_index from)
{
	while (d->n_log && d->log[d->n_log - 1].index >= from) {
		d->n_log--;
		free(d->log[d->n_log].data.base);
	}
}

static void log_append(struct disk *d, struct raft_entry *e)
{
	if (d->n_log && e->index != d->log[d->n_log - 1].index + 1) {
		/* The core asked to append with a gap or overlap it did not truncate. */
		fprintf(stderr, "sim: disk append of index %llu after %llu\n",
			(unsigned long long)e->index, (unsigned long long)disk_last_index(d));
		abort();
	}
	if (d->n_log == d->cap_log) {
		d->cap_log = d->cap_log ? 2 * d->cap_log : 64;
		d->log = realloc(d->log, d->cap_log * sizeof(*d->log));
		if (!d->log)
			abort();
	}
	d->log[d->n_log++] = *e;
	e->data.base = NULL; /* moved */
}

/* Writes a batch's hard state, truncation and its first n entries (all of them, or a torn
 * write's prefix: the WAL writes the records in this order and recovery keeps whole ones). */
static void write_batch(struct disk *d, struct disk_batch *b, size_t n)
{
	if (b->has_hs)
		d->hs = b->hs;
	if (b->truncate_from)
		log_truncate(d, b->truncate_from);
	for (size_t i = 0; i < n; i++)
		log_append(d, &b->entries[i]);
}

struct disk_batch *disk_complete(struct disk *d)
{
	struct disk_batch *b = d->head;
	if (!b)
		return NULL;
	d->head = b->next;
	if (!d->head)
		d->tail = NULL;
	d->n_pending--;
	write_batch(d, b, b->n_entries);
	return b;
}

size_t disk_crash(struct disk *d, struct rng *g, uint32_t written_pm)
{
	size_t written = 0;
	bool stop = false;
	while (d->head) {
		struct disk_batch *b = d->head;
		d->head = b->next;
		if (!stop && g && rng_permille(g, written_pm)) {
			if (rng_permille(g, 500)) {
				write_batch(d, b, b->n_entries);
			} else {
				write_batch(d, b, (size_t)rng_range(g, 0, b->n_entries));
				stop = true;
			}
			written++;
		} else {
			stop = true;
		}
		disk_batch_free(b);
	}
	d->tail = NULL;
	d->n_pending = 0;
	return written;
}

void disk_compact(struct disk *d, raft_index index)
{
	size_t k = 0;
	while (k < d->n_log && d->log[k].index <= index)
		free(d->log[k++].data.base);
	if (k && d->n_log > k)
		memmove(d->log, d->log + k, (d->n_log - k) * sizeof(*d->log));
	d->n_log -= k;
}

void disk_install(struct disk *d, raft_index index, const struct disk_batch *current)
{
	log_truncate(d, 0);
	for (struct disk_batch *b = d->head; b; b = b->next) {
		/* written in order before the marker: their hard states are durable too (a
		 * snapshot of term T never sits on a disk whose term is still below T) */
		if (b->has_hs)
			d->hs = b->hs;
		b->has_hs = false;
		size_t keep = 0;
		if (b == current)
			while (keep < b->n_entries &&
			       b->entries[b->n_entries - 1 - keep].index > index)
				keep++;
		size_t drop = b->n_entries - keep;
		for (size_t i = 0; i < drop; i++)
			free(b->entries[i].data.base);
		if (keep)
			memmove(b->entries, b->entries + drop, keep * sizeof(*b->entries));
		b->n_entries = keep;
		b->truncate_from = 0;
	}
}
