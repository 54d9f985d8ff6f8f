/* kv_int.h — what the files of kv/ share and nobody else sees: the environment handle, the
 * per-group DBI pair, the layout of the meta DBI, little-endian helpers, and the write
 * transaction wrapper that grows the map once on MDB_MAP_FULL.
 */
#ifndef RINGRAFT_KV_INT_H
#define RINGRAFT_KV_INT_H

#include <errno.h>
#include <lmdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kv/kv.h"

/* Meta DBI keys: a one-byte tag, then big-endian numbers so that LMDB's byte order is numeric
 * order. Everything here is part of the replicated state (it travels in snapshots). */
#define KV_META_APPLIED        'A' /* -> u64 applied index, u64 applied term */
#define KV_META_CONF           'C' /* -> encoded raft_conf (kv_conf_encode) */
#define KV_META_COUNT          'N' /* -> u64 number of live session records */
#define KV_META_SESSION        'S' /* + u64 client -> struct kv_session_rec (encoded) */
#define KV_META_RESULT         'R' /* + u64 client + u64 seq -> cached result */
#define KV_META_LRU            'L' /* + u64 last index + u64 client -> empty (expiry order) */
#define KV_META_CLOCK          'T' /* -> u64 the group's clock (ms since the epoch) */
#define KV_META_EXPIRES        'E' /* -> u64 number of keys with an expiry (= 'X' records) */
#define KV_META_EXPIRY         'X' /* + u64 expiry + key -> empty: the keys by expiry (reaping) */
#define KV_META_EXPIRY_KEY_MAX (9 + KV_KEY_MAX)
#define KV_META_FENCE          'F' /* -> the group's resharding fence (kv_fence_value's layout) */
#define KV_META_RELEASE        'O' /* -> the ranges released here (kv_fence_value's layout) */
#define KV_META_INGEST         'I' /* + u32 source -> a copy from that source (ingest.c) */
#define KV_META_DROP           'D' /* + u32 source (0: released) -> u8 done | resume key */

struct kv_group {
	bool open;
	MDB_dbi data, meta;
};

/* One result of an apply batch, kept until the transaction committed (apply.c). */
struct kv_pending {
	size_t entry;         /* position in the batch */
	struct kv_result res; /* res.value is unset here: the bytes are at arena + off */
	size_t off;
};

struct kv {
	MDB_env *env;
	struct kv_options opt;
	char *dir;
	size_t page_bytes;
	uint64_t map_bytes; /* the current map size */
	/* growing ahead of need failed at this map size (no disk for the preallocation): not
	 * tried again, nor logged, until a growth on a full map changes the size */
	uint64_t headroom_failed_at;
	uint32_t readers; /* snapshot read transactions open: the map cannot move under them */
	/* checkpoint.c: the read transactions that pin the snapshot kv.checkpoint names (one,
	 * or more after a save whose directory fsync failed). Not counted in readers: nothing
	 * is read through them, so the map may move (mdb_env_set_mapsize checks only for a
	 * write transaction, and a read transaction keeps no pointer into the map). */
#define KV_PINS_MAX 4
	MDB_txn *pins[KV_PINS_MAX];
	size_t n_pins;
	uint64_t pin_txnid;  /* the transaction kv.checkpoint names (0: not known) */
	uint32_t pin_groups; /* how many groups' applied indexes it records */
	bool ckpt_busy;      /* a checkpoint is between kv_checkpoint_begin and its end */
	/* Batched applies (kv_apply_batching): the write transaction kv_apply adds to, NULL when
	 * none is open; how many entries and entry bytes it holds; the first failure of its commit
	 * (sticky: the node must stop). */
	bool batch_on;
	MDB_txn *open;
	uint32_t open_entries;
	uint64_t open_bytes;
	int open_err;
	/* The page cache ahead of the data file's end (kv_options.cache_ahead_bytes, kv.c
	 * cache_ahead): our own descriptor on data.mdb (POSIX_FADV_RANDOM: reads bring in
	 * single pages, no readahead), -1 when off; the file offset cached up to. */
	int ahead_fd;
	uint64_t ahead_end;
	struct kv_group groups[KV_GROUPS_MAX + 1]; /* [0] unused */
	/* apply.c's reusable result buffers (owned, freed by kv_close) */
	struct kv_pending *pend;
	size_t pend_cap;
	uint8_t *arena;
	size_t arena_cap;
	/* the latest checksum failure (record.c, kv_last_corrupt) */
	bool corrupt_seen;
	uint32_t corrupt_group;
	size_t corrupt_key_len;
	uint8_t corrupt_key[KV_KEY_MAX];
};

/* ---------------------------------------------------------------- byte order */
static inline void kv_put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}
static inline uint64_t kv_get_be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}
static inline void kv_put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t kv_get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void kv_put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint64_t kv_get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* ---------------------------------------------------------------- record.c */
/* A stored value (format 3): [u32 LE CRC32C of key || expiry || value][u64 LE expiry][value].
 * Format 2 had no expiry: [u32 LE CRC32C of key || value][value]. */
#define KV_REC_CRC    4
#define KV_REC_HEADER 12
/* Puts key -> record of (v, vl, expire_at_ms) into dbi, writing the record in place
 * (MDB_RESERVE); flags are mdb_put's (e.g. MDB_APPEND). Returns an LMDB/errno code. v must
 * not point into the map (the put may move pages). */
int kv_rec_put(MDB_txn *txn, MDB_dbi dbi, const MDB_val *k, const void *v, size_t vl,
	       uint64_t expire_at_ms, unsigned flags);
/* Writes the record of (v, vl, expire_at_ms) under key k into out (KV_REC_HEADER + vl bytes;
 * v may already sit at out + KV_REC_HEADER). */
void kv_rec_encode(const MDB_val *k, const void *v, size_t vl, uint64_t expire_at_ms, uint8_t *out);
/* Whether rec is a well-formed record of key k whose CRC matches. */
bool kv_rec_ok(const MDB_val *k, const MDB_val *rec);
/* The same for a format 2 record (snapshots streams of version 2, the in-place upgrade). */
bool kv_rec_ok_v2(const MDB_val *k, const MDB_val *rec);
/* Verifies the record read under key k in group and sets *value to its value (pointing into
 * rec) and *expire_at_ms (may be NULL) to its expiry. KV_ECORRUPT, remembered for
 * kv_last_corrupt(), when it fails. */
int kv_rec_check(struct kv *kv, uint32_t group, const MDB_val *k, const MDB_val *rec,
		 MDB_val *value, uint64_t *expire_at_ms);
/* Whether a key of expiry e is expired at time now (e = 0: never). */
static inline bool kv_expired_at(uint64_t e, uint64_t now)
{
	return e != 0 && e <= now;
}

/* ---------------------------------------------------------------- kv.c */
/* Logs one line `error <time> kv group=<g> what=<what> err=<mdb_strerror>` to stderr. */
void kv_log_mdb(uint32_t group, const char *what, int mdb_rc);
/* Opens (creating) the DBIs of a group; KV_ENOGROUP when out of range. */
int kv_group_get(struct kv *kv, uint32_t group, struct kv_group **out);
/* Runs fn in one write transaction and commits it. fn returns 0 or an LMDB/errno code; on
 * MDB_MAP_FULL (from fn or the commit) the transaction is aborted, the map grown (when no
 * snapshot reader is open and map_bytes_max allows) and fn run once more from scratch.
 * Returns KV_OK, KV_EMAPFULL, KV_ENOSPC, KV_ENOMEM or KV_EIO; fn's own kv code travels in
 * its arg. */
typedef int (*kv_write_fn)(MDB_txn *txn, void *arg);
#define KV_TXN_ABORT (-1) /* fn's way to say "abort, nothing to log": kv_write returns KV_OK */
int kv_write(struct kv *kv, uint32_t group, const char *what, kv_write_fn fn, void *arg);
/* kv_apply's way into the open transaction of batched applies (kv.c): runs fn in it, nested
 * when it already holds entries (kv_apply counts them), so that a failed fn undoes only its own writes.
 * Returns 0, fn's error, or LMDB's; on any error nothing of fn's stays. Every call that begins
 * another transaction or moves the map commits the open one first (kv_apply_commit): LMDB's
 * write lock is not recursive, and a read must see every apply made before it. */
int kv_apply_write(struct kv *kv, kv_write_fn fn, void *arg);

/* The kv code of a failed write (an LMDB code or errno): ENOSPC and EDQUOT are KV_ENOSPC, and
 * so is EIO while the file system has less than KV_ENOSPC_SLACK_BYTES free, because LMDB
 * reports a short pwrite (how a full file system answers a multi-page write) as EIO. */
int kv_err_of_write(const struct kv *kv, int rc);
/* A read-only transaction (MDB_NOTLS: several may be open in one thread). */
int kv_read_begin(struct kv *kv, MDB_txn **out);
/* Applied index and term of a group inside txn (0, 0 when never applied). */
int kv_applied_get(MDB_txn *txn, const struct kv_group *g, raft_index *index, raft_term *term);
int kv_applied_put(MDB_txn *txn, const struct kv_group *g, raft_index index, raft_term term);

/* The group's clock (KV_META_CLOCK; 0 when none) and the expiring key count inside txn. */
int kv_clock_get(MDB_txn *txn, const struct kv_group *g, uint64_t *clock_ms);
int kv_meta_u64_get(MDB_txn *txn, const struct kv_group *g, uint8_t tag, uint64_t *v);
int kv_meta_u64_put(MDB_txn *txn, const struct kv_group *g, uint8_t tag, uint64_t v);

/* raft_conf <-> bytes, for the meta DBI and snapshots. */
#define KV_CONF_BYTES_MAX (8 + 16 * RAFT_NODES_MAX)
size_t kv_conf_encode(const struct raft_conf *c, uint8_t *out);
int kv_conf_decode(const void *data, size_t len, struct raft_conf *c);

/* ---------------------------------------------------------------- checkpoint.c */
/* kv_checkpoint without opening the groups' DBIs: groups 1..n_groups must be open. */
int kv_checkpoint_pin(struct kv *kv, raft_index *out, uint32_t n_groups);
/* Ends the pinning read transactions (kv_close). */
void kv_checkpoint_unpin(struct kv *kv);

/* ---------------------------------------------------------------- guard.c */
/* Records "open" in dir/kv.state (fsync'd); with check, first refuses (KV_EUNSAFE) when the
 * previous open ended in a machine crash. */
int kv_guard_open(const char *dir, bool check);
/* Records "clean": call only after a successful forced sync. */
int kv_guard_close(const char *dir);

/* ---------------------------------------------------------------- fence.c */
/* A group's resharding fence, as an apply batch holds it (n == 0: none). */
struct kv_fence {
	uint64_t epoch;
	size_t n;
	uint64_t *ranges; /* n pairs (lo, hi), kv_ring_range semantics; owned */
};
/* Whether a FENCE / UNFENCE value is well formed (lengths and range count). */
bool kv_fence_value_ok(uint8_t op, const void *value, size_t len);
/* Loads the stored fence of g into *f (emptied first). 0 or an LMDB code / ENOMEM. */
int kv_fence_load(MDB_txn *txn, const struct kv_group *g, struct kv_fence *f);
void kv_fence_free(struct kv_fence *f);
/* The fence's stored layout (u64 epoch | u32 n | n x (u64 lo | u64 hi)), which the handoff's
 * release record shares: parse (checked; MDB_CORRUPTED when malformed; *pairs malloc'd) and
 * put under a one-byte key of the group's meta DBI. */
int kv_ranges_parse(const uint8_t *p, size_t len, uint64_t *epoch, uint64_t **pairs, size_t *n);
int kv_ranges_put(MDB_txn *txn, const struct kv_group *g, uint8_t tag, uint64_t epoch,
		  const uint64_t *pairs, size_t n);
/* Whether the fence covers a key (by kv_ring_key_hash). */
bool kv_fence_covers(const struct kv_fence *f, const void *key, size_t len);
/* Applies a decoded FENCE or UNFENCE to the stored fence and to *f; res->code set. 0 or an
 * LMDB code / ENOMEM. */
int kv_fence_apply(MDB_txn *txn, const struct kv_group *g, struct kv_fence *f,
		   const struct kv_cmd *c, struct kv_result *res);

/* ---------------------------------------------------------------- handoff.c, ingest.c */
/* The ranges a group holds markers for but does not serve now (handoff.h): those released
 * here, and those of every copy here that is not opened. Loaded per apply batch and per read
 * (n == 0 is the common case: two lookups in the meta DBI). */
struct kv_gate {
	size_t n;
	uint64_t *ranges; /* n pairs (lo, hi), kv_ring_range semantics; owned */
};
int kv_gate_load(MDB_txn *txn, const struct kv_group *g, struct kv_gate *gate);
void kv_gate_free(struct kv_gate *gate);
bool kv_gate_covers(const struct kv_gate *gate, const void *key, size_t len);
/* Whether position h is in one of n (lo, hi) pairs. */
bool kv_ranges_have(const uint64_t *ranges, size_t n, uint64_t h);

/* What a handoff entry needs of the apply batch it is in (apply.c). */
struct kv_handoff_ctx {
	struct kv *kv;
	uint32_t group;
	const struct kv_group *g;
	raft_index index;  /* the entry's (session merges) */
	uint64_t *expires; /* the batch's count of keys with an expiry, kept current */
	int *err;          /* set to KV_ECORRUPT (and KV_TXN_ABORT returned) when a stored value
			    * fails its check: the batch does not apply */
	char *num;         /* 24 bytes for a decimal result value */
};
/* Whether an INGEST / RELEASE / OPEN / DROP value is well formed (lengths, counts, items). */
bool kv_handoff_value_ok(uint8_t op, const void *value, size_t len);
/* Applies a decoded INGEST, RELEASE, OPEN or DROP; res->code (and value) set. 0, an LMDB
 * code / ENOMEM, or KV_TXN_ABORT (*h->err set). */
int kv_handoff_apply(const struct kv_handoff_ctx *h, MDB_txn *txn, const struct kv_cmd *c,
		     struct kv_result *res);
int kv_ingest_apply(const struct kv_handoff_ctx *h, MDB_txn *txn, const struct kv_cmd *c,
		    struct kv_result *res);
bool kv_ingest_value_ok(const uint8_t *p, size_t len);
/* A copy of the change of `epoch` starts at g (its first INGEST chunk): g's part in older
 * changes must be over. *refused when g still has an older release whose DROP pass is not over
 * (its keys would be served again, or copied over: stale values of deleted keys), or an older
 * copy into it that is neither opened nor dropped. Otherwise, with clear, that release and its
 * drop cursor, the older dropped copies and a fence of an older epoch are removed (that change
 * is final: one change at a time), so that a range coming back to g is served once opened.
 * 0 or an LMDB code. */
int kv_handoff_older(MDB_txn *txn, const struct kv_group *g, uint64_t epoch, bool clear,
		     bool *refused);
/* Stores k -> (v, vl, expire_at) over whatever k held, keeping the expiry index (handoff.c).
 * v must not point into the map. */
int kv_handoff_store(const struct kv_handoff_ctx *h, MDB_txn *txn, MDB_val *k, const void *v,
		     size_t vl, uint64_t expire_at);

/* A copy's record at the target (KV_META_INGEST + u32 BE source), ingest.c:
 * u64 epoch | u8 state | u64 next | u64 keys | u64 digest low | u64 digest high | u32 n |
 * n x (u64 lo | u64 hi). Everything LE. */
enum kv_ingest_state {
	KV_INGEST_COPYING = 1,   /* chunks up to `next` are in */
	KV_INGEST_COMPLETE = 2,  /* the last chunk's count and digest matched */
	KV_INGEST_OPEN = 3,      /* served here from the OPEN entry on */
	KV_INGEST_DISCARDED = 4, /* count or digest differed, or DROP began: keys being dropped */
	KV_INGEST_DROPPED = 5,   /* discarded and the DROP pass is over: nothing of it is left */
};
struct kv_ingest_rec {
	uint64_t epoch;
	uint8_t state;
	uint64_t next, keys, dlo, dhi;
	size_t n;
	uint64_t *ranges; /* owned */
};
int kv_ingest_rec_get(MDB_txn *txn, const struct kv_group *g, uint32_t source,
		      struct kv_ingest_rec *r, bool *found);
int kv_ingest_rec_put(MDB_txn *txn, const struct kv_group *g, uint32_t source,
		      const struct kv_ingest_rec *r);
/* The state byte of a stored record, unchecked (-1 when too short): a fast path only. */
int kv_ingest_rec_state(const uint8_t *p, size_t len);
/* Parses a stored record into r (its ranges malloc'd): 0, MDB_CORRUPTED or ENOMEM. */
int kv_ingest_rec_parse(const uint8_t *p, size_t len, struct kv_ingest_rec *r);
void kv_ingest_rec_free(struct kv_ingest_rec *r);

/* ---------------------------------------------------------------- apply.c */
/* Adds or removes k's record in the expiry index (KV_META_EXPIRY) at expire_at, keeping
 * *expires (the group's count of keys with an expiry). A record already absent is fine. */
int kv_expiry_index_op(MDB_txn *txn, const struct kv_group *g, const MDB_val *k, uint64_t expire_at,
		       bool add, uint64_t *expires);

/* ---------------------------------------------------------------- session.c */
/* One client's session record: the log index of its last command, the highest seq it has
 * forgotten, and how many results it caches. */
struct kv_session {
	raft_index last;
	uint64_t floor;
	uint32_t count;
};

/* The outcome of a session lookup for (client, seq) at log index `index`. */
enum kv_session_verdict {
	KV_SESSION_NEW = 0, /* apply the command, then kv_session_record() its result */
	KV_SESSION_DUP,     /* cached: *res holds the first result (value valid until txn ends) */
	KV_SESSION_STALE,   /* seq older than the remembered window: KV_ESESSION */
};
/* A command's session steps, in this order: check (moves the session to `index`, creating
 * it if needed, and gives the verdict; *sess is the record to carry on), then for a NEW
 * command apply it and record its result, then in every case save *sess. Nothing may write
 * between check and using a DUP result (its value points into the map). */
int kv_session_check(struct kv *kv, MDB_txn *txn, const struct kv_group *g, uint64_t client,
		     uint64_t seq, raft_index index, enum kv_session_verdict *verdict,
		     struct kv_result *res, struct kv_session *sess);
int kv_session_record(struct kv *kv, MDB_txn *txn, const struct kv_group *g, uint64_t client,
		      uint64_t seq, raft_index index, const struct kv_result *res,
		      struct kv_session *sess);
int kv_session_save(MDB_txn *txn, const struct kv_group *g, uint64_t client,
		    const struct kv_session *sess);
/* Merges one session item of a copy (handoff.h, 'S' items) into client's session at entry
 * `index`: the session is created if absent (or expired), its floor becomes the higher of
 * its own and `floor` (results at or below it are forgotten), a result for seq (0: none)
 * above the floor that it lacks is added, and it keeps its KV_SESSION_WINDOW highest seqs.
 * Idempotent. */
int kv_session_merge(struct kv *kv, MDB_txn *txn, const struct kv_group *g, uint64_t client,
		     uint64_t floor, uint64_t seq, const struct kv_result *res, raft_index index);
/* Deletes sessions idle since before `index` - ttl (garbage only: expired sessions are
 * already treated as absent by kv_session_check). At most `budget` sessions per call. */
int kv_session_gc(struct kv *kv, MDB_txn *txn, const struct kv_group *g, raft_index index,
		  uint32_t budget);

#endif
