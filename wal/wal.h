/* wal.h — the node's write-ahead log: one per node, shared by every Raft group it hosts.
 *
 * Appends from all groups made during one event-loop turn are gathered in a struct wal_batch
 * and made durable by one write and one fdatasync (group commit across groups, as TiKV's
 * raft-engine does). wal/ itself starts no threads: wal_batch_write() blocks, and node/ runs
 * it on a writer thread of its own so the loop keeps serving. Batches are written one at a time, in
 * the order their writes take the WAL's writer lock, and complete in that order.
 *
 * Records: [u32 length][u8 type][u8 flags][u16 header check][u64 group][u32 crc32c][payload],
 * 8-byte aligned; each batch starts with a BATCH record (sequence number, length, count) and
 * is accepted whole or not at all; neither a record nor a batch spans segments. Where the file
 * system allows it, batches are written with O_DIRECT and padded with zeroes to the sector
 * size, so a batch never shares a sector with one before it. Recovery truncates a torn tail
 * and refuses (WAL_ECORRUPT) a corrupt record that is followed by valid ones: acknowledged
 * entries are never silently dropped. docs/WAL.md has the format, the recovery and compaction
 * rules and the durability argument.
 *
 * Threads: writers (wal_batch_write*, wal_compact) take turns on the WAL's writer lock; a
 * write lets it go once its batch is durable and reported (wal_batch_write_notify), so the next
 * write may start while the finished one updates the in-memory index. wal_prepare may run
 * beside any of them. wal_read_entries, wal_group_find/at/state_copy and wal_stats_get may be
 * called from another thread (the event loop) while a write runs: they take the WAL's mutex,
 * and see a batch's entries once its write has reported it durable (they wait for the index
 * update if it is still running). A wal_group_state pointer stays valid until wal_close, but its
 * fields change when a write or compaction applies; read them on the thread that writes, or
 * while no write is running.
 */
#ifndef RINGRAFT_WAL_H
#define RINGRAFT_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "raft/raft.h" /* raft_entry, raft_hard_state, raft_conf: plain structs only */
#include "wal/wal_limits.h"

enum {
	WAL_OK = 0,
	WAL_EIO = -1,      /* a read/write failed (errno in wal_errno()) */
	WAL_ENOSPC = -2,   /* the disk is full: nothing was corrupted, the batch did not land */
	WAL_ECORRUPT = -3, /* a corrupt record followed by valid records (see wal_corruption) */
	WAL_ENOMEM = -4,
	WAL_EINVAL = -5,    /* bad argument (record too big, group id out of range, ...) */
	WAL_ENOTFOUND = -6, /* no such entry (compacted or never written) */
	WAL_EFSYNC = -7,    /* fsync failed: the node must stop (never retried) */
	WAL_ELOCKED = -8,   /* another process has the WAL open */
};
const char *wal_strerror(int err);

/* The system calls the WAL writes through. Tests and fault injection only: NULL in
 * wal_options means the real pwrite/fdatasync/fallocate. Each returns what the system call
 * returns (-1 with errno set on failure). `arg` is passed back unchanged (borrowed). */
struct wal_io {
	ssize_t (*pwrite)(int fd, const void *buf, size_t n, off_t off, void *arg);
	int (*fdatasync)(int fd, void *arg);
	int (*fallocate)(int fd, off_t len, void *arg); /* reserve [0, len) */
	void *arg;
};

struct wal_options {
	uint64_t segment_bytes; /* preallocated segment size (default WAL_SEGMENT_BYTES) */
	/* The tail cache: the newest batches, whole, for all groups together, so reads of recent
	 * entries (followers catching up) need no disk read (default WAL_CACHE_BYTES; 0 = none,
	 * every read goes to disk). Memory stays within it however many groups there are. */
	size_t cache_bytes;
	bool no_sync;      /* tests/benchmarks only: skip fdatasync */
	bool no_direct_io; /* write batches through the page cache even where O_DIRECT works */
	const struct wal_io *io; /* NULL = real system calls; borrowed until wal_close */
};
void wal_options_default(struct wal_options *opts);

/* Where recovery found a corrupt record. */
struct wal_corruption {
	char segment[256];
	uint64_t offset;
	uint64_t group;   /* 0 if the record header itself is unreadable */
	bool group_known; /* added: group is meaningful (0 is a valid group id) */
	char reason[128];
};

/* What recovery rebuilt for one group. */
struct wal_group_state {
	uint64_t group;
	struct raft_hard_state hard_state;
	bool has_hard_state;
	raft_index snap_index; /* last snapshot marker (0 = none; checkpoints: checkpoint_index) */
	raft_term snap_term;
	struct raft_conf snap_conf;
	/* entries still in the log, 0/0 = none. After compaction first_index may be above
	 * snap_index + 1: the entries between are <= checkpoint_index (in LMDB). */
	raft_index first_index;
	raft_index last_index;
	raft_index checkpoint_index; /* highest checkpoint recorded (state durable in LMDB) */
	bool corrupt; /* damaged (salvage): other fields are zero; rebuild from peers, and start
		       * with wal_batch_snapshot (index 0 if empty) — it heals the group */
};

struct wal;

/* Opens (creating if needed) the WAL in dir and recovers it. A torn tail is truncated.
 * On WAL_ECORRUPT, *corruption (if non-NULL) says where; with `salvage` set, the corrupt
 * groups are marked corrupt (their records ignored) and the open succeeds, so node/ can
 * rebuild those groups from peers instead of refusing to start. */
int wal_open(const char *dir, const struct wal_options *opts, bool salvage, struct wal **out,
	     struct wal_corruption *corruption);
/* Closes after writing nothing further. Safe on NULL. */
void wal_close(struct wal *w);

/* Recovered groups (valid until wal_close). */
size_t wal_group_count(const struct wal *w);
const struct wal_group_state *wal_group_at(const struct wal *w, size_t i);
const struct wal_group_state *wal_group_find(const struct wal *w, uint64_t group);
/* Added: a consistent copy of one group's state, safe from any thread while a write runs.
 * WAL_ENOTFOUND if the WAL has never seen the group. */
int wal_group_state_copy(const struct wal *w, uint64_t group, struct wal_group_state *out);

/* Reads entries [lo, hi) of a group, at most bytes_max in total (at least one entry); hi is
 * clamped to last_index + 1. Only durable entries are visible. WAL_ENOTFOUND if lo is outside
 * [first_index, last_index] or the group is unknown/corrupt; WAL_ECORRUPT if the record read
 * back from disk fails its CRC. Out array and data are allocated for the caller (transferred):
 * release with wal_entries_free. */
int wal_read_entries(struct wal *w, uint64_t group, raft_index lo, raft_index hi, size_t bytes_max,
		     struct raft_entry **out, size_t *n_out);
void wal_entries_free(struct raft_entry *entries, size_t n);

/* ------------------------------------------------------------------------------ batches */
struct wal_batch;
struct wal_batch *wal_batch_new(void);
void wal_batch_free(struct wal_batch *b);
void wal_batch_reset(struct wal_batch *b); /* reuse: keeps its buffers */
bool wal_batch_empty(const struct wal_batch *b);
/* The batch's size as it would be written (records and bytes, header included). */
size_t wal_batch_records(const struct wal_batch *b);
size_t wal_batch_bytes(const struct wal_batch *b);
/* The add functions copy everything they are given into the batch buffer (nothing borrowed).
 * Within one group, records apply in the order added: a truncation, then entries, as
 * raft_update lists them. Entries must be contiguous, index >= 1 (WAL_EINVAL otherwise); an
 * ENTRIES record at index i also replaces any entries >= i already in the log. Any uint64
 * group id is accepted; at most WAL_GROUPS_MAX distinct groups per WAL. A batch holds at most
 * WAL_BATCH_BYTES_MAX bytes (WAL_EINVAL beyond). */
int wal_batch_hard_state(struct wal_batch *b, uint64_t group, const struct raft_hard_state *hs);
/* The same record, for a hard state whose term, vote and recovering flag are those last
 * written for the group and whose commit index only moved: a batch holding nothing else is
 * written without an fdatasync of its own (as etcd's MustSync leaves out commit-only changes).
 * A process crash keeps it (it is in the page cache); a power cut may lose it with the tail,
 * which costs nothing: the commit index is learnt again from the leader, and a restart takes
 * at least the applied index as committed (node/restore.c). The next synced batch covers it,
 * and a segment is synced before the WAL moves on to the next one (batch.c roll). */
int wal_batch_hard_state_lazy(struct wal_batch *b, uint64_t group,
			      const struct raft_hard_state *hs);
/* Whether the batch holds a record that needs the fdatasync (anything but lazy hard states). */
bool wal_batch_needs_sync(const struct wal_batch *b);
int wal_batch_truncate(struct wal_batch *b, uint64_t group, raft_index from);
int wal_batch_entries(struct wal_batch *b, uint64_t group, const struct raft_entry *e, size_t n);
/* The group's state up to index is captured in a snapshot installed into the state machine
 * (log before it is gone for this group; if the log's entry at index has another term, the
 * whole log goes). conf may be NULL (empty configuration). Also heals a corrupt group. */
int wal_batch_snapshot(struct wal_batch *b, uint64_t group, raft_index index, raft_term term,
		       const struct raft_conf *conf);
/* The state machine has durably applied the group up to index (LMDB synced): segments whose
 * entries are all at or below every group's checkpoint may be deleted. */
int wal_batch_checkpoint(struct wal_batch *b, uint64_t group, raft_index index);

/* Writes the batch as one write and one fdatasync. Blocking: call off the event loop. Writes
 * (and wal_compact) take turns. On success the whole batch is durable, wal_batch_durable says
 * how far, and the batch may be reset and refilled. WAL_EFSYNC/WAL_EIO: stop the node.
 * WAL_ENOSPC: the batch did not land and the log is unchanged. */
int wal_batch_write(struct wal *w, struct wal_batch *b);

/* The same, telling `fn` as soon as the batch is durable and wal_batch_durable is filled in —
 * before the WAL's in-memory index has taken the batch in, which the write then does while the
 * caller is being told (calls that read the WAL wait for it, and the next write may already
 * start). From fn on, the batch is the caller's again (reset, refill, free). fn runs on the
 * writing thread with the WAL's mutex held: it must not call into the WAL; it should only hand
 * the news over (uv_async_send, a condition variable). It is called exactly when the write
 * returns WAL_OK — or a failure of the index update afterwards (WAL_ENOMEM: stop the node). */
typedef void (*wal_durable_fn)(struct wal_batch *b, void *arg);
int wal_batch_write_notify(struct wal *w, struct wal_batch *b, wal_durable_fn fn, void *arg);

/* After a successful write: for each group in that batch (ascending group id), the (index,
 * term) of its last entry now durable — its snapshot point if the log is empty — to feed
 * raft_persisted. Valid until the batch is reset, written again or freed. */
struct wal_durable {
	uint64_t group;
	raft_index index;
	raft_term term;
};
size_t wal_batch_durable(const struct wal_batch *b, const struct wal_durable **out);

/* Deletes whole segments no group needs any more (see wal_batch_checkpoint), oldest first.
 * Blocking (it writes one batch restating every group's hard state, snapshot marker,
 * checkpoint, and last entry if it would go, then unlinks and fsyncs the directory). */
int wal_compact(struct wal *w, size_t *segments_removed);

/* Makes the next segment ahead of need, so that the batch which fills the active segment does
 * not also have to make one (write 64 MiB of zeroes and sync them, see docs/WAL.md): creates
 * the "spare", unless one is ready or being made. Blocking; run it on a worker thread. It may
 * run while wal_batch_write, wal_compact or reads run (a write that needs the spare while it
 * is being made waits for it), but not beside another wal_prepare, and it must have returned
 * before wal_close. Without it the WAL works the same, and a roll makes its segment itself.
 * The first call also faults in the tail cache's memory (opts.cache_bytes), so the first lap
 * of the cache costs the write path no page faults.
 * WAL_OK when a spare is ready (or the WAL has failed: then the failure code); WAL_ENOSPC,
 * WAL_EIO, WAL_EFSYNC: no spare was made and nothing else changed, try again later. */
int wal_prepare(struct wal *w);
/* True when no spare is ready or being made (and the WAL has not failed): time to run
 * wal_prepare. Any thread. */
bool wal_prepare_wanted(struct wal *w);
/* True when the active segment has used at least half its bytes. Takes the WAL's mutex for a
 * moment (not for the hot path). */
bool wal_active_half_used(struct wal *w);

/* ------------------------------------------------------------------------------ stats */
struct wal_stats {
	uint64_t bytes_on_disk;
	uint64_t segments;
	uint64_t batches_written;
	uint64_t records_written;
	uint64_t fsyncs;
	uint64_t segments_made_on_write; /* added: rolls that found no spare (wal_prepare) ready */
	uint64_t cache_bytes;            /* added: memory held by the tail cache */
	uint64_t direct_writes;          /* added: batches written with O_DIRECT */
};
void wal_stats_get(const struct wal *w, struct wal_stats *st);
/* errno of the last WAL_EIO/WAL_EFSYNC, for the log line. */
int wal_errno(const struct wal *w);

/* ------------------------------------------------------------------------------ offline tool
 * kvctl wal verify|dump: walks every record without opening for writing. The callback gets
 * each record; returns 0 to continue. Reports corruption and torn tails through the callback
 * with type = WAL_REC_BAD. */
enum wal_record_type {
	WAL_REC_ENTRIES = 1,
	WAL_REC_HARD_STATE = 2,
	WAL_REC_TRUNCATE = 3,
	WAL_REC_SNAPSHOT = 4,
	WAL_REC_CHECKPOINT = 5,
	WAL_REC_BATCH = 6, /* added: opens every batch; walk: first_index = batch seq */
	WAL_REC_BAD = 255,
};
struct wal_record_info {
	const char *segment;
	uint64_t offset;
	uint8_t type;
	uint64_t group;
	uint32_t length;
	raft_index first_index, last_index; /* ENTRIES/TRUNCATE/SNAPSHOT/CHECKPOINT/BATCH */
	const char *problem;                /* WAL_REC_BAD: what is wrong */
	bool torn_tail; /* added. WAL_REC_BAD only: an unfinished last write that wal_open would
			 * cut off (not corruption); false = corruption wal_open refuses */
	const struct raft_hard_state *hard_state; /* added. HARD_STATE only */
};
/* rec and its strings are valid during the callback only. Returns 0 after the last record,
 * the callback's non-zero value if it stopped the walk, or WAL_EIO/WAL_ENOMEM. */
typedef int (*wal_walk_cb)(const struct wal_record_info *rec, void *arg);
int wal_walk(const char *dir, wal_walk_cb cb, void *arg);

/* The walctl program (bin/walctl) as a function, for kvctl: argv[0] is the program name,
 * argv[1] "verify" or "dump", argv[2] the directory. Prints to stdout/stderr. Returns 0 (no
 * corruption), 1 (corruption found) or 2 (usage or I/O error). */
int wal_tool_main(int argc, char **argv);

#endif
