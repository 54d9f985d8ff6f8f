/* log.h — the in-memory Raft log: a contiguous array of entries with a start offset.
 *
 * Entries (offset, last] live in ents[start .. start+len); entry i is ents[start + i-offset-1].
 * Because the array is contiguous, slices handed out in updates and messages are plain
 * pointers, never copies. Compaction drops a prefix by moving `start`; the array is shifted
 * down only when more than half of it is dead (amortized O(1) per entry).
 * The log owns every entry's data buffer (malloc'd) and frees it on truncate/compact/close.
 */
#ifndef RINGRAFT_RAFT_LOG_H
#define RINGRAFT_RAFT_LOG_H

#include <stdbool.h>
#include <stddef.h>

#include "raft/raft.h"

struct raft_log {
	struct raft_entry *ents; /* owned */
	size_t start, len, cap;
	raft_index offset;     /* index of the entry just before the first in memory */
	raft_term offset_term; /* its term (known: a snapshot or compaction point) */
	uint64_t bytes;        /* data.len summed over the entries in memory */
};

void raft_log_init(struct raft_log *l, raft_index offset, raft_term offset_term);
void raft_log_close(struct raft_log *l);

static inline raft_index raft_log_last(const struct raft_log *l)
{
	return l->offset + l->len;
}
static inline raft_index raft_log_first(const struct raft_log *l)
{
	return l->offset + 1;
}
/* Term of entry i, for i in [offset, last]; 0 otherwise (compacted or beyond the log). */
raft_term raft_log_term_at(const struct raft_log *l, raft_index i);
raft_term raft_log_last_term(const struct raft_log *l);
/* Entry i (offset < i <= last) or NULL. Valid until the log is next modified. */
struct raft_entry *raft_log_get(const struct raft_log *l, raft_index i);
/* Appends e (e->index must be last+1); the log takes over e->data.base. */
int raft_log_append(struct raft_log *l, const struct raft_entry *e);
/* Appends a copy of e (its data is copied once into a new buffer). */
int raft_log_append_copy(struct raft_log *l, const struct raft_entry *e);
/* Drops entries >= from (from > offset). */
void raft_log_truncate(struct raft_log *l, raft_index from);
/* Drops entries <= upto (offset <= upto <= last); upto becomes the new offset. */
void raft_log_compact(struct raft_log *l, raft_index upto);
/* Drops everything; the log restarts after (index, term) (snapshot install). */
void raft_log_reset(struct raft_log *l, raft_index index, raft_term term);

#endif
