/* log.c — the in-memory log array (see log.h): append, term lookup, truncate, compact.
 * Growth doubles the array; compaction moves the start and memmoves only when more than half
 * of the array is dead, so each entry is moved O(1) times on average.
 */
#include "raft/log.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define LOG_CAP_MIN 64

void raft_log_init(struct raft_log *l, raft_index offset, raft_term offset_term)
{
	memset(l, 0, sizeof(*l));
	l->offset = offset;
	l->offset_term = offset_term;
}

static void free_range(struct raft_log *l, size_t from, size_t to)
{
	for (size_t k = from; k < to; k++) {
		l->bytes -= l->ents[l->start + k].data.len;
		free(l->ents[l->start + k].data.base);
		l->ents[l->start + k].data.base = NULL;
	}
}

void raft_log_close(struct raft_log *l)
{
	if (l->ents != NULL)
		free_range(l, 0, l->len);
	free(l->ents);
	l->ents = NULL;
	l->len = l->cap = l->start = 0;
	assert(l->bytes == 0);
}

raft_term raft_log_term_at(const struct raft_log *l, raft_index i)
{
	if (i == l->offset)
		return l->offset_term;
	if (i < l->offset || i > raft_log_last(l))
		return 0;
	return l->ents[l->start + (i - l->offset - 1)].term;
}

raft_term raft_log_last_term(const struct raft_log *l)
{
	return raft_log_term_at(l, raft_log_last(l));
}

struct raft_entry *raft_log_get(const struct raft_log *l, raft_index i)
{
	if (i <= l->offset || i > raft_log_last(l))
		return NULL;
	return &l->ents[l->start + (i - l->offset - 1)];
}

static int reserve_one(struct raft_log *l)
{
	if (l->start + l->len < l->cap)
		return 0;
	if (l->start > 0 && l->start >= l->cap / 2) {
		memmove(l->ents, l->ents + l->start, l->len * sizeof(*l->ents));
		l->start = 0;
		return 0;
	}
	size_t cap = l->cap < LOG_CAP_MIN ? LOG_CAP_MIN : l->cap * 2;
	struct raft_entry *n = realloc(l->ents, cap * sizeof(*n));
	if (n == NULL)
		return RAFT_ENOMEM;
	l->ents = n;
	l->cap = cap;
	return 0;
}

int raft_log_append(struct raft_log *l, const struct raft_entry *e)
{
	assert(e->index == raft_log_last(l) + 1);
	assert(e->term >= raft_log_last_term(l));
	int rv = reserve_one(l);
	if (rv != 0)
		return rv;
	l->ents[l->start + l->len] = *e;
	l->len++;
	l->bytes += e->data.len;
	return 0;
}

int raft_log_append_copy(struct raft_log *l, const struct raft_entry *e)
{
	struct raft_entry c = *e;
	c.data.base = NULL;
	if (e->data.len > 0) {
		c.data.base = malloc(e->data.len);
		if (c.data.base == NULL)
			return RAFT_ENOMEM;
		memcpy(c.data.base, e->data.base, e->data.len);
	}
	int rv = raft_log_append(l, &c);
	if (rv != 0)
		free(c.data.base);
	return rv;
}

void raft_log_truncate(struct raft_log *l, raft_index from)
{
	assert(from > l->offset);
	if (from > raft_log_last(l))
		return;
	size_t keep = (size_t)(from - l->offset - 1);
	free_range(l, keep, l->len);
	l->len = keep;
}

void raft_log_compact(struct raft_log *l, raft_index upto)
{
	assert(upto >= l->offset && upto <= raft_log_last(l));
	if (upto == l->offset)
		return;
	raft_term t = raft_log_term_at(l, upto);
	size_t drop = (size_t)(upto - l->offset);
	free_range(l, 0, drop);
	l->start += drop;
	l->len -= drop;
	l->offset = upto;
	l->offset_term = t;
	if (l->len == 0)
		l->start = 0;
}

void raft_log_reset(struct raft_log *l, raft_index index, raft_term term)
{
	free_range(l, 0, l->len);
	l->start = l->len = 0;
	l->offset = index;
	l->offset_term = term;
}
