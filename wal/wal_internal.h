/* wal_internal.h — the in-memory state of an open WAL, shared by the wal/ sources only.
 *
 * Segments are kept in order (the last one is the one being appended to). Each group keeps a
 * slot per live entry (where it is on disk, its term, and the batch that wrote it), so reads
 * by index are one array lookup; the newest batches themselves stay in memory, whole, in the
 * tail cache (cache.c). `mu` protects all of it so reads from the event loop may run while
 * wal_batch_write runs on a worker thread; `wmu` makes writers (batch writes, compaction) take
 * turns, and is let go before a write's index update so the next write can start meanwhile.
 */
#ifndef RINGRAFT_WAL_INTERNAL_H
#define RINGRAFT_WAL_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "wal/format.h"
#include "wal/scan.h"
#include "wal/wal.h"

struct wal_segment {
	uint64_t seq;
	int fd;             /* owned */
	int dfd;            /* owned: the same file opened O_DIRECT for batch writes, or -1 */
	uint32_t dio_align; /* with dfd: offset and length alignment of a direct write */
	uint64_t size;      /* file size (preallocated) */
	uint64_t end;       /* bytes in use: next batch goes here */
	uint32_t nonce;     /* its header's, carried by its BATCH records (0: format 1) */
	char name[WAL_SEG_NAME_LEN + 1];
};

/* Where one live entry is. Its data is read from the tail cache while the batch that wrote it
 * is there, else the record is re-read from disk and CRC-checked again. */
struct wal_slot {
	raft_term term;
	uint64_t seg;   /* segment seq */
	uint64_t batch; /* sequence number of the batch holding the entry (the cache's key) */
	uint32_t rec_off, rec_size;
	uint32_t data_off; /* of the entry's data, within the segment */
	uint32_t len;
	uint8_t type;
};

/* The highest entry index a group wrote into one segment (compaction's test). */
struct wal_segmax {
	uint64_t seg;
	raft_index max;
};

struct wal_group {
	struct wal_group_state st;
	struct wal_slot *slots; /* slots[head..n) are entries st.first_index..st.last_index */
	size_t head, n, cap;
	struct wal_segmax *segmax; /* ascending seg, [segmax_head, n_segmax) */
	size_t segmax_head, n_segmax, cap_segmax;
};

/* NONE -> MAKING (wal_prepare) -> READY -> TAKEN (a roll installs it under its segment name:
 * until that is done no new spare may reuse the temporary name) -> NONE. */
enum wal_spare_state { WAL_SPARE_NONE, WAL_SPARE_MAKING, WAL_SPARE_READY, WAL_SPARE_TAKEN };

#define WAL_GROUPS_DIRECT 1024u

/* Batch buffers are aligned for direct I/O (a file system asking for more disables it). */
#define WAL_BUF_ALIGN 4096u

/* One batch as written, kept whole in the tail cache's arena. */
struct wal_block {
	uint64_t seq;     /* batch sequence number */
	uint64_t seg;     /* segment seq */
	uint64_t seg_off; /* of the batch within the segment */
	size_t off, len;  /* where its copy lies in the arena */
};

/* The tail cache: the newest batches, whole, oldest first, with consecutive sequence numbers
 * (a gap empties it), copied one after the other into a ring-shaped arena of
 * opts.cache_bytes. */
struct wal_cache {
	uint8_t *arena;         /* mapped at the first batch or wal_cache_populate */
	bool populated;         /* wal_cache_populate has run (once is enough) */
	size_t arena_cap, tail; /* tail: where the newest batch ends */
	struct wal_block *ring; /* ring[(head + i) % cap], i < n */
	size_t head, n, cap;
	size_t bytes; /* sum of the blocks' len */
};

/* Temporary names in the WAL directory: never part of the log, removed at open. */
#define WAL_SPARE_TMP  "spare.tmp"  /* the next segment, made ahead by wal_prepare */
#define WAL_CREATE_TMP "create.tmp" /* a segment made on the batch path or at open */

struct wal {
	char *dir;
	int dir_fd, lock_fd;
	bool locked; /* lock_fd holds the flock */
	struct wal_options opts;
	struct wal_io io;
	pthread_mutex_t mu;  /* the in-memory state below */
	pthread_mutex_t wmu; /* writers take turns (batch.c); taken before mu, never after */

	struct wal_segment *segs; /* ascending seq; segs[n_segs - 1] is active */
	size_t n_segs, cap_segs;
	uint64_t next_batch_seq;
	bool unsynced; /* writers' (under wmu): the active segment holds a batch not yet synced */

	struct wal_group **groups; /* ascending group id */
	size_t n_groups, cap_groups;
	/* groups by id for ids below WAL_GROUPS_DIRECT (node/ numbers its groups 1..G): one
	 * lookup instead of a binary search per record applied; NULL where none */
	struct wal_group *by_id[WAL_GROUPS_DIRECT];
	_Atomic size_t n_groups_seen; /* = n_groups, readable without mu (it only grows) */

	struct wal_cache cache;     /* under mu */
	struct wal_durable *report; /* under mu: the last fast-path report, checked after apply */
	size_t cap_report;

	bool salvage_unknown; /* replay: damage of unknown groups was skipped (all corrupt) */
	uint64_t corrupt_seg; /* highest segment holding a salvaged corrupt spot, 0 = none */

	/* The spare segment (segment.c), under mu: made by wal_prepare, taken by a roll. */
	pthread_cond_t spare_cv; /* spare_state left WAL_SPARE_MAKING */
	_Atomic int spare_state; /* enum wal_spare_state; written under mu, read anywhere */
	int spare_fd;            /* WAL_SPARE_READY: the made file, DIR/WAL_SPARE_TMP */
	uint64_t spare_size;

	_Atomic int failed; /* WAL_EFSYNC / WAL_EIO once writes are refused, else 0 */
	int last_errno;
	struct wal_stats stats;
};

/* index.c: applying records to the in-memory state (the same code at recovery and after a
 * write, so both end up in the same state). */
/* 0, WAL_ENOTFOUND (absent and !create), WAL_EINVAL (WAL_GROUPS_MAX reached), WAL_ENOMEM. */
int wal_group_get(struct wal *w, uint64_t group, bool create, struct wal_group **out);
/* Applies one valid record found at r->off of segment seg, in the batch numbered batch.
 * r->payload is only read. */
int wal_apply_record(struct wal *w, uint64_t seg, uint64_t batch, const struct wal_rec_view *r);
void wal_group_free(struct wal_group *g);
/* Marks a group corrupt: its state is forgotten until a SNAPSHOT record heals it. */
void wal_group_mark_corrupt(struct wal_group *g);
void wal_group_drop_segments_below(struct wal_group *g, uint64_t seg);
/* The (index, term) of the group's last entry (or its snapshot point when empty). */
void wal_group_last(const struct wal_group *g, raft_index *index, raft_term *term);

/* batch.c: a batch write by a caller already holding wmu (compaction). */
int wal_batch_write_locked(struct wal *w, struct wal_batch *b);
/* wal.c: wal_read_entries with mu already held. */
int wal_read_entries_locked(struct wal *w, uint64_t group, raft_index lo, raft_index hi,
			    size_t bytes_max, struct raft_entry **out, size_t *n_out);

/* cache.c: the tail cache (all under mu). */
/* Copies batch seq (len bytes, written at seg_off of segment seg) into the cache, evicting the
 * oldest batches in its way; returns the copy, or NULL if it was not kept (too big, no memory).
 * A batch that is not the next after the newest one empties the cache first. */
const uint8_t *wal_cache_add(struct wal *w, uint64_t seq, uint64_t seg, uint64_t seg_off,
			     const uint8_t *bytes, size_t len);
/* The bytes of the entry at data_off of segment seg, written by batch seq, if cached. */
const uint8_t *wal_cache_find(const struct wal *w, uint64_t seq, uint64_t seg, uint32_t data_off);
/* Maps the arena (no pages taken yet); WAL_OK also where there is no cache. */
int wal_cache_map(struct wal *w);
/* Faults the whole arena in, once, without touching its contents; wal_prepare calls it, off
 * the write path. Takes the mutex itself. */
void wal_cache_populate(struct wal *w);
void wal_cache_free(struct wal *w);
/* Allocates an aligned buffer (direct I/O needs it). */
uint8_t *wal_buf_alloc(size_t cap);

/* segment.c */
int wal_seg_create(struct wal *w, uint64_t seq, uint64_t size, struct wal_segment *out);
int wal_seg_list(const char *dir, uint64_t **seqs, size_t *n);
int wal_fsync_dir(struct wal *w);
int wal_write_all(struct wal *w, int fd, const void *buf, size_t n, uint64_t off);
/* WAL_ENOSPC for a full disk or quota (ENOSPC, EDQUOT), WAL_EIO for any other errno. */
int wal_io_code(int err);
int wal_cut_back(struct wal *w, struct wal_segment *s, uint64_t off, uint64_t len);
/* The next active segment, seq, at least min_size bytes: the spare if one is ready and big
 * enough (waiting for one being made), else one made now. */
int wal_seg_next(struct wal *w, uint64_t seq, uint64_t min_size, struct wal_segment *out);
/* Closes and removes the spare and any temporary file (at open and close: no one else runs). */
void wal_spare_discard(struct wal *w);
struct wal_segment *wal_seg_find(struct wal *w, uint64_t seq);
int wal_segs_push(struct wal *w, const struct wal_segment *s);
/* Opens s->name again with O_DIRECT for batch writes where the file system allows it (sets
 * dfd and dio_align; leaves dfd at -1 otherwise, and writes then go through the page cache). */
void wal_seg_open_direct(struct wal *w, struct wal_segment *s);
void wal_seg_close(struct wal_segment *s);

/* recover.c */
int wal_recover(struct wal *w, bool salvage, struct wal_corruption *corruption);

#endif
