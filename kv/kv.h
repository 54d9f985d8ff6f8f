/* kv.h — the replicated state machine of a node: one LMDB environment, and per Raft group a
 * data DBI and a meta DBI (applied index/term, configuration, client sessions).
 *
 * Committed entries are applied in batches, each batch in one write transaction that also
 * records the applied index, so an entry at or below the applied index is skipped: replaying
 * the WAL after a restart is harmless (DESIGN.md section 5). LMDB runs with MDB_NOSYNC: the
 * WAL is the source of truth, and kv_checkpoint() forces LMDB to disk before the WAL is
 * compacted past what it applied (see docs/DURABILITY.md).
 *
 * Groups are numbered 1..KV_GROUPS_MAX. Threading: one thread (the node's loop) uses a kv.
 */
#ifndef RINGRAFT_KV_H
#define RINGRAFT_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv/kv_limits.h"
#include "raft/raft.h" /* struct raft_entry, struct raft_conf: plain structs only */

/* Results and errors. Results >= 0 are outcomes of a command; < 0 are failures. */
enum {
	KV_OK = 0,
	KV_NOT_FOUND = 1,    /* get/delete: absent key */
	KV_CAS_MISMATCH = 2, /* cas: the current value differs, or the key is absent (found =
			      * false), or present when absence was expected (found = true) */
	KV_NOT_INTEGER = 3, /* incrby: the current value is not a decimal int64 (nothing written) */
	KV_OVERFLOW = 4,    /* incrby: the sum does not fit an int64 (nothing written) */
	KV_MOVING = 5,      /* a write to a key of a fenced range (KV_OP_FENCE): nothing written;
			     * it did not happen, so it is not kept in the client's session and
			     * the same seq may be sent again */
	KV_WRONG_SHARD = 6, /* the group does not serve this key now (kv/handoff.h): its range was
			     * released here (KV_OP_RELEASE), or is being copied here and not yet
			     * opened (KV_OP_INGEST before KV_OP_OPEN). A read is refused; a write
			     * is refused, writes nothing and is not kept in the client's session
			     * (it did not happen). Kvd's answer is Code WRONG_SHARD */
	KV_DISCARDED = 7,   /* INGEST: the last chunk's key count or digest differs from what was
			     * ingested: the copy is thrown away (DROP it, then copy again from
			     * offset 0) */
	KV_EINVAL = -1,     /* malformed command, key length 0 or > KV_KEY_MAX */
	KV_ETOOLARGE = -2,  /* value over the configured maximum */
	KV_EMAPFULL = -3,   /* the LMDB map is full (grow with map_bytes / restart) */
	KV_EIO = -4,        /* LMDB failed (details in the log line) */
	KV_ENOMEM = -5,
	KV_ESESSION = -6, /* the session's reply was expired: outcome unknown */
	KV_ECORRUPT = -7, /* a stored value failed its CRC32C (get, scan, digest, scrub, a CAS or
			   * put-if-absent inside kv_apply, a snapshot read: kv_last_corrupt() says
			   * where), or a snapshot stream failed its checks (restore) */
	KV_ENOGROUP = -8, /* group id out of range */
	KV_EUNSAFE = -9,  /* kv_open: the machine went down while commits were unsynced: the
			   * LMDB file cannot be trusted; rebuild the replica (DURABILITY.md) */
	KV_EFORMAT = -10, /* kv_open: the environment has an older (or unknown) on-disk format,
			   * e.g. values without checksums: rebuild the replica from its peers */
	KV_ENOSPC = -11,  /* the data directory's file system is full (ENOSPC or EDQUOT): nothing
			   * was written; the same call may succeed once space is freed */
};
const char *kv_strerror(int err);

struct kv_options {
	uint64_t map_bytes;           /* LMDB map size (default KV_MAP_BYTES_DEFAULT) */
	uint64_t map_bytes_max;       /* on MDB_MAP_FULL the map doubles up to this (default
				       * KV_MAP_BYTES_MAX_DEFAULT); <= map_bytes: never grows */
	uint32_t value_max;           /* default KV_VALUE_MAX_DEFAULT */
	uint32_t groups_max;          /* DBIs to reserve: 2 per group + 1 */
	uint64_t session_ttl_entries; /* a session idle for this many log entries expires */
	uint32_t sessions_max;        /* per group; the least recently used expire first */
	bool writemap;                /* MDB_WRITEMAP (default false). Off, commits go through
				       * pwrite and a full disk is KV_ENOSPC from the commit. On,
				       * commits store into the shared map and the data file is
				       * preallocated (posix_fallocate) to the whole map size at
				       * open and on every growth, so that a full disk is KV_ENOSPC
				       * there instead of a SIGBUS on a page fault: it costs
				       * map_bytes of disk up front (DURABILITY.md). Off is the
				       * default because of the pinned checkpoint: with it every
				       * page written since the last checkpoint is a fresh one,
				       * and with the map writable each costs a page fault, and
				       * each checkpoint's sync a write-protect and a TLB flush
				       * per page (docs/PERFORMANCE.md, "Where the pin's cost
				       * was") */
	bool sync_commits;            /* default false: MDB_NOSYNC, the WAL is the source of
				       * truth. true: LMDB syncs every commit (no KV_EUNSAFE ever,
				       * an fsync per apply batch) */
	uint64_t cache_ahead_bytes;   /* default KV_CACHE_AHEAD_DEFAULT, 0: off (and always off
				       * with writemap). The data file's pages just past what
				       * LMDB uses are kept in the page cache, read in one small
				       * page at a time, before LMDB's first write reaches them:
				       * LMDB writes a run of new pages with one writev, which
				       * makes the kernel cache them in large folios (ext4 since
				       * Linux 6.11 or so), and every later one-page rewrite of a
				       * page in a large folio costs a walk over all its blocks
				       * and writes the whole folio back (docs/PERFORMANCE.md,
				       * "Large folios"). The file is extended (sparse) to cover
				       * them; kv_size_bytes still says what LMDB uses. */
};
/* 16 MiB: more than a busy node's apply batches add between two commits */
#define KV_CACHE_AHEAD_DEFAULT (16ull << 20)
void kv_options_default(struct kv_options *o);

/* Opens (creating) the environment in the existing directory `dir` (borrowed; copied).
 * o may be NULL for the defaults. KV_EUNSAFE when the previous run ended in a machine crash
 * (not a process crash) while commits were unsynced (kv.state in dir records it). KV_EFORMAT
 * when the environment holds data in another on-disk format than KV_FORMAT_VERSION (a fresh
 * environment is stamped with it), except format 2, which is upgraded in place (one write
 * transaction: every value gains an empty expiry; KV_EMAPFULL if the map cannot hold the
 * copy: raise map_bytes). KV_ENOSPC when the file system is full. Options that
 * shape replicated state (session_ttl_entries, sessions_max) must be equal on every replica, or
 * their states diverge. */
struct kv;
int kv_open(const char *dir, const struct kv_options *o, struct kv **out);
/* Syncs and closes. No snapshot or restore may be open. */
void kv_close(struct kv *kv);

/* ------------------------------------------------------------------------------ commands */
/* Expiry. A value may carry an absolute expiry time, ms since the Unix epoch (0: none). A key
 * whose expiry is <= "now" is absent for every read and every command, though it stays stored
 * until a REAP entry removes it. Apply never reads a clock: each command carries the proposer's
 * clock (now_ms), and a group keeps the latest time any applied command carried (its clock);
 * a command is judged at the later of the two, so that one group's time never goes back even
 * when leaders' clocks differ. Reads take the caller's clock and use the later of it and the
 * group's. PUT and CAS store expire_at_ms (or, keep_ttl, the expiry the live key had); MSET
 * clears expiries; INCRBY keeps the key's; EXPIRE changes only the expiry.
 * EXPIRE: KV_OK when the (live) key's expiry was set, or removed (expire_at_ms 0: the key had
 * one); KV_NOT_FOUND when the key is absent, or had no expiry to remove.
 * REAP: packed items whose value is the 8-byte LE expiry the proposer saw; a key is deleted only
 * if it still carries exactly that expiry and it is due at the command's time, so a key set
 * again meanwhile survives. The result's value is the decimal count deleted.
 * INCRBY: value is the delta (8 bytes, LE two's complement); the stored value must be a
 * decimal int64 as Redis writes it (absent = 0); the result's value is the new decimal value.
 * MSET / MDEL: several keys of one group in one entry (atomic): key is empty and value holds
 * the packed items (see cmd.c); MDEL's result value is the decimal count of keys deleted. */
enum kv_op {
	KV_OP_PUT = 1,
	KV_OP_DELETE = 2,
	KV_OP_CAS = 3,
	KV_OP_NOOP = 4,
	KV_OP_INCRBY = 5,
	KV_OP_MSET = 6,
	KV_OP_MDEL = 7,
	KV_OP_EXPIRE = 8, /* set the key's expiry to expire_at_ms (0: remove it, PERSIST) */
	KV_OP_REAP = 9,   /* delete each item's key if it still carries the expiry in the item */
	/* Resharding (kv/reshard.h, kv/fence.c). FENCE: from this entry on, writes to keys whose
	 * hash (kv_ring_key_hash) is in one of the ranges in value (kv_fence_value) are answered
	 * KV_MOVING and write nothing; REAP leaves those keys alone. Fences of one epoch add
	 * up; a higher epoch replaces the stored fence; a lower one is refused (KV_EINVAL
	 * result). UNFENCE: value is the u64 LE epoch; lifts that epoch's fence (KV_NOT_FOUND
	 * result when it is not the stored one). The fence is replicated state (meta DBI,
	 * snapshots). Key and expected are empty. */
	KV_OP_FENCE = 10,
	KV_OP_UNFENCE = 11,
	/* The handoff of a moving range (kv/handoff.h has the values, the results and the
	 * rules; docs/DESIGN-NOTES.md "Resharding"). INGEST: at the target, one chunk of a
	 * source's frozen range (keys, expiries, client sessions), idempotent by offset; the
	 * last chunk carries the key count and digest, checked at apply. RELEASE: at the source,
	 * from this entry on its released ranges are neither read nor written here
	 * (KV_WRONG_SHARD). OPEN: at the target, a complete copy's ranges are served from this
	 * entry on (before it they are KV_WRONG_SHARD). DROP: a bounded batch of deletions of
	 * keys this group holds but no longer serves (released ranges, or a discarded copy).
	 * All four are replicated state (meta DBI, snapshots). Key and expected are empty, and
	 * they carry no client session. */
	KV_OP_INGEST = 12,
	KV_OP_RELEASE = 13,
	KV_OP_OPEN = 14,
	KV_OP_DROP = 15,
};

/* One key (and value, MSET) of a multi-key command. Pointers borrowed. */
struct kv_item {
	const void *key;
	size_t key_len;
	const void *value;
	size_t value_len;
};

/* A write command as it travels in a Raft entry. Pointers are borrowed. */
struct kv_cmd {
	uint8_t op;              /* enum kv_op */
	uint64_t client_id, seq; /* session; client_id 0 or seq 0: none (no dedup). A client's
				  * seqs need not be dense or in order within a group */
	const void *key;
	size_t key_len;
	const void *value;
	size_t value_len;
	const void *expected;
	size_t expected_len; /* CAS */
	bool expect_absent;  /* CAS: put only if absent */
	bool if_present;     /* PUT: only if the key exists (else KV_NOT_FOUND, nothing written) */
	bool return_old;     /* PUT, DELETE: the result carries the previous value (found) */
	bool keep_ttl;       /* PUT, CAS: keep the live key's expiry (expire_at_ms must be 0) */
	uint64_t expire_at_ms;       /* PUT, CAS, EXPIRE: absolute expiry, 0 = none */
	uint64_t now_ms;             /* the proposer's clock (0: none, the group's clock alone) */
	const struct kv_item *items; /* MSET/MDEL/REAP, encode only: packed into value */
	size_t n_items;              /* 1..KV_MULTI_KEYS_MAX */
};
/* The next item of a decoded MSET/MDEL command: 1 and *out (pointers into the command's
 * data), or 0 at the end. *off starts at 0. The packing was validated by kv_cmd_decode. */
int kv_cmd_item_next(const struct kv_cmd *c, size_t *off, struct kv_item *out);
/* Validates (key/value limits: kv's value_max, or KV_VALUE_MAX_DEFAULT when kv is NULL) and
 * encodes into a malloc'd buffer in out->base (ownership to the caller, e.g. to hand to
 * raft_propose). Returns KV_OK, KV_EINVAL, KV_ETOOLARGE or KV_ENOMEM (out untouched). */
int kv_cmd_encode(const struct kv *kv, const struct kv_cmd *c, struct raft_buf *out);
/* Decodes (pointers into data, valid as long as data). KV_EINVAL on a malformed buffer: the
 * bytes come from the disk or the network. The value limit checked here is the absolute one
 * (KV_VALUE_MAX_HARD), never the configured value_max: applying must not depend on a
 * replica's configuration. */
int kv_cmd_decode(const void *data, size_t len, struct kv_cmd *c);

/* The result of one applied command. value is borrowed: valid only inside the callback.
 * Exactly-once (Raft thesis 6.3): a command with client_id != 0 is looked up in the client's
 * session. A seq already applied answers its first result again (duplicate = true) without
 * applying; a seq older than the KV_SESSION_WINDOW most recent ones the session remembers
 * answers KV_ESESSION (not applied now; it may have been applied before: indeterminate). An
 * unknown client id opens a session. Sessions are per group: the same client id in two groups
 * is two independent sessions. Sessions expire deterministically by log index: idle for
 * session_ttl_entries entries, or the least recently used when more than sessions_max. A
 * session that expired is forgotten: a retry that arrives after its expiry is applied as new,
 * so a client must give up retrying (indeterminate) well within the TTL. */
struct kv_result {
	int code;          /* KV_OK, KV_NOT_FOUND, KV_CAS_MISMATCH, KV_NOT_INTEGER, KV_OVERFLOW,
			    * KV_MOVING, KV_WRONG_SHARD, KV_DISCARDED, KV_ESESSION, KV_EINVAL */
	bool found;        /* CAS mismatch, return_old: whether the key existed */
	const void *value; /* CAS mismatch, return_old: the current (previous) value; INCRBY:
			    * the new value; MDEL: the count deleted (decimal) */
	size_t value_len;
	bool duplicate; /* answered from the session cache, not applied again */
};
typedef void (*kv_apply_cb)(const struct raft_entry *e, const struct kv_result *res, void *arg);

/* Applies committed entries of one group (in index order) in one write transaction that also
 * records the last index/term as applied. Entries <= the applied index are skipped (no
 * callback). Empty NORMAL entries (no-ops) just advance the applied index. For CONF entries,
 * `conf` (if non-NULL) is the configuration in effect after the batch and is stored with it.
 * A NORMAL entry that does not decode is applied as a no-op whose result is KV_EINVAL.
 * cb (may be NULL) is called once per applied NORMAL entry (empty ones too, with KV_OK), in
 * order, AFTER the transaction committed (so no reply ever leaves for a batch that then failed
 * to commit; with batched applies, below, after it applied); entries and the
 * result's value are valid during the call. Returns KV_EINVAL (nothing applied) when the first
 * entry not yet applied is not applied index + 1 (a gap). KV_ECORRUPT when a CAS (or
 * put-if-absent) found a current value that fails its checksum: the batch did not apply (a
 * damaged value must decide no outcome), kv_last_corrupt() names the key, and the node must
 * stop the group and rebuild it (kv_group_reset). KV_ENOSPC: the file system is full; nothing
 * applied, the same batch may be applied again once there is space. Other errors are of the
 * storage (KV_EIO, KV_EMAPFULL, KV_ENOMEM): the batch did not apply, no callback ran, and the
 * node must stop the group. */
int kv_apply(struct kv *kv, uint32_t group, const struct raft_entry *entries, size_t n,
	     const struct raft_conf *conf, kv_apply_cb cb, void *arg);

/* Batched applies (the node turns them on for its lifetime). Every commit writes the pages it
 * shares with every other (the main DB's root, the free-list's, a meta page) and the root,
 * branch and meta pages of each group it touches; under the checkpoint's pin every page it
 * writes is a new one. So with batching on, kv_apply adds to ONE write transaction left open
 * across calls (each call nested in it: a failed apply undoes only its own writes, with the
 * errors above) and its callbacks run before that transaction commits. It commits:
 *   - at kv_apply_commit (the node: every --apply-commit-ms, 100 by default),
 *   - in kv_apply, first, once it holds KV_APPLY_HOLD_ENTRIES entries or _BYTES bytes,
 *   - first thing in any other call that opens a transaction: every read (kv_get, scans,
 *     snapshots, digests, kv_meta), kv_write's users, a group's first open, a checkpoint,
 *     kv_close; so a read always sees every apply made before it.
 * A reply may therefore leave for an entry whose apply is not yet committed in LMDB. That is
 * safe: the entry is committed in the Raft log (durable in a majority's WAL), LMDB's applied
 * index commits in the same transaction as the entry's writes, and a restart applies again
 * from it (a crash loses the open transaction as it loses unsynced pages). A failed commit
 * loses what it held: its error is returned by the call that committed and, sticky, by every
 * later kv_apply, read and kv_apply_commit; the node must stop.
 * With MDB_WRITEMAP (no nested transactions) batching stays off. */
void kv_apply_batching(struct kv *kv, bool on);
int kv_apply_commit(struct kv *kv);
/* Aborts the open transaction of batched applies: what a crash of the process loses (for the
 * node simulator, whose crash closes the environment cleanly). */
void kv_apply_abandon(struct kv *kv);

struct kv_group_meta {
	raft_index applied_index;
	raft_term applied_term;
	bool has_conf;
	struct raft_conf conf;
	uint64_t keys;     /* stored keys, those expired but not yet reaped included */
	uint64_t expires;  /* stored keys that carry an expiry */
	uint64_t clock_ms; /* the group's clock: the latest now_ms an applied command carried */
};
int kv_meta(struct kv *kv, uint32_t group, struct kv_group_meta *out);

/* ------------------------------------------------------------------------------ reads */
/* Every read below verifies each stored value's CRC32C before handing it out and returns
 * KV_ECORRUPT (kv_last_corrupt() says which group and key) instead of a damaged value. */

/* Reads take now_ms, the caller's clock (ms since the epoch): a key whose expiry is <= the
 * later of now_ms and the group's clock is absent. now_ms 0 = the group's clock alone. */

/* Get: KV_OK and a malloc'd copy in *value (caller frees; malloc(1) for an empty value), or
 * KV_NOT_FOUND, or KV_WRONG_SHARD when the group does not serve the key now (kv/handoff.h). value
 * may be NULL (existence and expiry only). *expire_at_ms (may be NULL) is the key's expiry, 0 for
 * none. KV_EINVAL for a bad key length. */
int kv_get(struct kv *kv, uint32_t group, const void *key, size_t key_len, uint64_t now_ms,
	   void **value, size_t *value_len, uint64_t *expire_at_ms);
/* Scan keys in [start, end) (start NULL/0 = from the first key, end NULL/0 = no bound), at
 * most limit (0 = KV_SCAN_DEFAULT, capped at KV_SCAN_MAX), from one read transaction.
 * cb gets borrowed key/value valid during the call; returns non-zero to stop. *next is set to
 * a malloc'd continuation key (the first key in range not returned; pass it as the next
 * start) or NULL when the range is exhausted. On KV_ECORRUPT cb has seen the (good) records
 * before the damaged one, never the damaged one, and *next is NULL. Expired keys are skipped but
 * count toward limit (a page may hold fewer than limit keys and still have a continuation),
 * so that one call's work stays bounded. Keys the group does not serve now (released, or
 * copied here and not yet opened: kv/handoff.h) are skipped the same way. */
typedef int (*kv_scan_cb)(const void *k, size_t kl, const void *v, size_t vl, void *arg);
int kv_scan(struct kv *kv, uint32_t group, uint64_t now_ms, const void *start, size_t start_len,
	    const void *end, size_t end_len, uint32_t limit, kv_scan_cb cb, void *arg, void **next,
	    size_t *next_len);

/* The keys of the group whose expiry is <= the later of now_ms and the group's clock, earliest
 * expiry first, at most max (<= KV_MULTI_KEYS_MAX) from one read transaction (keys the group
 * does not serve now, kv/handoff.h, are left out: REAP skips them): cb gets each key
 * (borrowed, valid during the call) and its expiry, to be put in a REAP command. */
typedef void (*kv_expired_cb)(const void *k, size_t kl, uint64_t expire_at_ms, void *arg);
int kv_expired(struct kv *kv, uint32_t group, uint64_t now_ms, uint32_t max, kv_expired_cb cb,
	       void *arg, uint32_t *found);
/* The same from the last committed state: entries applied in the open transaction (kv.h
 * "Batched applies") are not seen, and it is not committed for this. For the expirer, which
 * runs every 100 ms: had it committed the open transaction each time, LMDB committed twice as
 * often as --apply-commit-ms says under a write load (docs/PERFORMANCE.md). What it misses is
 * found on a later run; a key listed here that the open transaction changed is left alone by
 * REAP, which deletes a key only at the expiry it was listed with. */
int kv_expired_committed(struct kv *kv, uint32_t group, uint64_t now_ms, uint32_t max,
			 kv_expired_cb cb, void *arg, uint32_t *found);

/* A digest of every key and value of the group (and nothing else), at its applied index:
 * XXH3-128 over (u32 LE key length, key, u32 LE value length, value) in key order, written
 * big-endian (XXH128 canonical form); a key with an expiry has bit 31 of its length set and
 * the u64 LE expiry after its value. Expired keys not yet reaped are included (replicas hold
 * them until the same REAP entry). Equal contents give equal digests whatever the history. */
#define KV_DIGEST_BYTES 16
int kv_digest(struct kv *kv, uint32_t group, uint8_t out[KV_DIGEST_BYTES],
	      raft_index *applied_index);

/* ------------------------------------------------------------------------------ integrity */
/* Every value in a group's data DBI is stored as [u32 LE CRC32C][u64 LE expiry][value], the
 * CRC chained over the key bytes, the expiry bytes then the value bytes (so a value that moved
 * under another key fails too): format version 3. An environment of version 2 (no expiry) is
 * upgraded in place by kv_open. Digests and snapshots stay functions of the user-visible
 * (key, value, expiry). */

/* The latest checksum failure any call on this kv reported with KV_ECORRUPT (kv logs nothing:
 * the caller does). Returns KV_NOT_FOUND when there has been none since kv_open, else KV_OK
 * with *group, *key_len (the full key length, <= KV_KEY_MAX) and min(cap, *key_len) key bytes
 * copied into key (caller-owned; cap may be 0 and key NULL to learn the length only). The
 * record stays until the next failure overwrites it. */
int kv_last_corrupt(const struct kv *kv, uint32_t *group, void *key, size_t cap, size_t *key_len);

/* A scrub position in one group's key order, owned by the caller (embed it, no resources).
 * Zero it (or kv_scrub_cursor_init) to start from the first key. It holds a copy of the
 * last key checked, so writes between steps are harmless: the next step re-seeks to the first
 * key after it. */
struct kv_scrub_cursor {
	uint8_t key[KV_KEY_MAX];
	size_t key_len;  /* 0: at the start of the group */
	uint64_t passes; /* full passes completed (wrap-arounds) */
};
void kv_scrub_cursor_init(struct kv_scrub_cursor *cur);
/* Checks the CRC of up to max_records records (0 = KV_SCRUB_RECORDS_DEFAULT, capped at
 * KV_SCRUB_RECORDS_MAX) after the cursor, in one short read transaction; *checked says how
 * many. When the step reached the end of the group, *done is set, cur->passes grows by one and
 * the cursor is back at the start (the next step begins a new pass); an empty group is done at
 * once. KV_ECORRUPT at the first damaged record (kv_last_corrupt() names it; *checked counts
 * the good ones before it; the cursor stays before it, so the same step reports it again).
 * Also KV_ENOGROUP, KV_EIO, KV_ENOMEM. */
int kv_scrub_step(struct kv *kv, uint32_t group, struct kv_scrub_cursor *cur, uint32_t max_records,
		  uint32_t *checked, bool *done);

/* Empties the group in one write transaction: its data and its meta (applied index/term,
 * configuration, client sessions), so that kv_meta then reports applied index 0, no conf and
 * no keys, as if the group had never been applied; the other groups are untouched. For
 * rebuilding a damaged replica from its peers (log or snapshot). No snapshot of the group may
 * be open (it would keep streaming the old state, which is harmless but pointless). Returns
 * KV_OK, KV_ENOGROUP, KV_ENOSPC, KV_EMAPFULL, KV_EIO or KV_ENOMEM (then nothing changed). */
int kv_group_reset(struct kv *kv, uint32_t group);
/* Empties the group as kv_group_reset does and records `conf` (a configuration this replica
 * is not part of) as its configuration: kv_meta then reports applied index 0 *with* a conf,
 * which no applied group has (its conf is written with applied entries), and which the node
 * reads as "this replica was removed; do not bring it back at start" (node/move.c). Same
 * errors as kv_group_reset. */
int kv_group_retire(struct kv *kv, uint32_t group, const struct raft_conf *conf);
/* Replaces the configuration recorded with the group's applied state (nothing else changes):
 * for a group restored from a backup into a new cluster (node/backup_load.c), whose snapshot
 * names the old cluster's voters. KV_EINVAL when the group has applied nothing (a conf at
 * applied index 0 would read as retired); else as kv_group_reset. */
int kv_group_conf_set(struct kv *kv, uint32_t group, const struct raft_conf *conf);

/* ------------------------------------------------------------------------------ durability */
/* Forces LMDB to disk and reports, per group 1..n, the applied index now durable
 * (out[g-1]; 0 for a group never applied). It also saves the synced version as the rollback
 * point (kv.checkpoint in the kv directory: its meta page and these indexes) and keeps that
 * version's pages from being reused until the next checkpoint (a read transaction pins it;
 * so the data file holds the pages freed between two checkpoints: call it every few seconds
 * while there are writes). kv_open makes the first one. After this, the WAL may be compacted
 * up to those indexes. n_groups <= KV_GROUPS_MAX. KV_ENOSPC (or KV_EIO) when the sync or the
 * save failed: nothing is durable beyond the last successful checkpoint; do not compact. */
int kv_checkpoint(struct kv *kv, raft_index *out, uint32_t n_groups);

/* kv_checkpoint in three steps, so that its syncs need not stall the thread that commits
 * (kvd's loop): the begin and the end on that thread, the sync between them on any thread.
 * - kv_checkpoint_begin opens a read transaction at the newest commit T (from here on no page
 *   of T is written again) and reads what the save needs; it syncs nothing (except with
 *   MDB_WRITEMAP, whose msync may not race a map resize). One checkpoint at a time.
 * - kv_checkpoint_sync forces LMDB to disk and saves kv.checkpoint naming T. It touches only
 *   the data file's descriptor and the kv directory: the other thread may go on reading and
 *   committing, and nothing else may be called on this checkpoint meanwhile.
 * - kv_checkpoint_end makes T the pinned rollback point and fills out (n_groups entries) as
 *   kv_checkpoint does, or returns its error; it frees the checkpoint either way.
 * - kv_checkpoint_abort, instead of the end (the node closes first), frees it, keeping T
 *   pinned while the environment is open if the save may have named it.
 * Writes the groups commit after the begin are not covered: out says T's applied indexes. */
struct kv_ckpt;
int kv_checkpoint_begin(struct kv *kv, uint32_t n_groups, struct kv_ckpt **out);
void kv_checkpoint_sync(struct kv_ckpt *c);
int kv_checkpoint_end(struct kv *kv, struct kv_ckpt *c, raft_index *out);
void kv_checkpoint_abort(struct kv *kv, struct kv_ckpt *c);

/* What kv_rollback found in kv.checkpoint. */
struct kv_rollback_info {
	uint64_t txnid;                    /* the LMDB transaction rolled back to */
	uint32_t n_groups;                 /* groups 1..n_groups have an applied index below */
	raft_index applied[KV_GROUPS_MAX]; /* applied[g-1]: group g's applied index at it */
};
/* After kv_open refused with KV_EUNSAFE: rolls the environment in dir back to its last
 * checkpoint, by writing the saved meta page into both of LMDB's meta slots (fdatasync'd),
 * and records kv.state clean, so that kv_open accepts it; every group is then at its applied
 * index of that checkpoint (info), and the WAL replays what follows (docs/DURABILITY.md).
 * Nothing is changed unless every check passed: KV_NOT_FOUND (no kv.checkpoint), KV_ECORRUPT
 * (it fails a check: magic, version, length, CRC32C, page size, the meta page's fields; or
 * the data file is shorter than the checkpoint's last page, or older than it), KV_EIO (a read
 * or write failed; the meta slots may be half written: the checkpoint still holds, and a
 * second call redoes it). *why (why_len bytes) says what, for the log. dir is borrowed. */
int kv_rollback(const char *dir, struct kv_rollback_info *info, char *why, size_t why_len);

/* ------------------------------------------------------------------------------ snapshots */
/* A snapshot of one group streamed from one read transaction while writes continue. The
 * stream is self-describing and ends with a checksum (XXH3-64 of everything before it).
 * While a snapshot is open the map cannot grow (LMDB cannot remap under a reader); the map is
 * kept at most half full when no snapshot is open, and a write that fills the other half
 * during a snapshot fails with KV_EMAPFULL. End snapshots promptly. */
struct kv_snapshot;
int kv_snapshot_begin(struct kv *kv, uint32_t group, struct kv_snapshot **out);
raft_index kv_snapshot_index(const struct kv_snapshot *s); /* applied index it captures */
raft_term kv_snapshot_term(const struct kv_snapshot *s);
/* Next chunk into buf (at most cap bytes, cap > 0); every chunk but the last is exactly cap
 * bytes. *done is set on the last chunk; reading after it gives len 0. KV_ECORRUPT when a value
 * of the group fails its checksum (kv_last_corrupt() names it): the stream must not be sent
 * (end it; every later read fails the same way). Data records in the stream carry the stored
 * CRC and expiry with the value (stream version 3), and restore verifies each one. */
int kv_snapshot_read(struct kv_snapshot *s, void *buf, size_t cap, size_t *len, bool *done);
void kv_snapshot_end(struct kv_snapshot *s);

/* Receiving side: chunks are staged (in a file under the kv directory), verified and then
 * installed in one write transaction that replaces the group's data, sessions and meta.
 * Chunks may be cut anywhere. One restore per group at a time. */
struct kv_restore;
int kv_restore_begin(struct kv *kv, uint32_t group, struct kv_restore **out);
/* KV_ENOSPC (or KV_EIO) when the staging file cannot take the bytes; the error sticks: abort
 * the restore (its file is removed) and start over later. */
int kv_restore_write(struct kv_restore *r, const void *data, size_t len);
/* Verifies the checksum, the structure and every value's CRC (a version 1 stream from an
 * older ringraft has none: they are computed; a version 2 stream's values carry no expiry:
 * they are stored without one) and installs atomically; KV_ECORRUPT, KV_ENOSPC
 * or another storage error leaves the group unchanged. Frees r in every case. */
int kv_restore_finish(struct kv_restore *r);
void kv_restore_abort(struct kv_restore *r);

/* ------------------------------------------------------------------------------ stats */
uint64_t kv_size_bytes(const struct kv *kv);

#endif
