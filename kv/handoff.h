/* handoff.h — the state machine's half of moving a frozen range from a source group to a
 * target group (issue 18; docs/DESIGN-NOTES.md "Resharding", the handoff steps 3 and 4):
 * the values of KV_OP_INGEST, KV_OP_RELEASE, KV_OP_OPEN and KV_OP_DROP (kv.h), what each does
 * when applied, and the source's reader that cuts a frozen range into INGEST chunks. No
 * network and no clock: the node's driver proposes the entries and reads the results.
 *
 * Every rule is checked where the entry is applied, and every marker lives in the group's
 * meta DBI, so restarts, snapshots and new leaders carry them, as for the fence (fence.c).
 *
 * Who serves a key of a moving range, from the group's own markers (the "gate"):
 *   source: serves reads until its RELEASE entry (writes are refused from the FENCE on,
 *           KV_MOVING); from RELEASE on, reads and writes are KV_WRONG_SHARD.
 *   target: from the first INGEST chunk of a copy until the OPEN of that copy, reads and
 *           writes of the copy's ranges are KV_WRONG_SHARD; from OPEN on it serves them.
 * A refused write writes nothing and is not kept in the client's session.
 */
#ifndef RINGRAFT_KV_HANDOFF_H
#define RINGRAFT_KV_HANDOFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv/kv.h"
#include "kv/ring.h"

/* ------------------------------------------------------------------------------ INGEST */
/* The value of an INGEST entry (little-endian):
 *   u64 epoch | u32 source | u32 n_ranges | u64 offset | u32 n_items | u32 flags (bit 0:
 *   last) | u64 keys | 16 bytes digest | n_ranges x (u64 lo | u64 hi) | items
 * One copy is (epoch, source): the target keeps one record per source. The ranges travel
 * in the chunk at offset 0 only (1..KV_RESHARD_RANGES_MAX of them; 0 in every other chunk).
 * keys and digest are those of the whole range and are set only in the last chunk (zero
 * otherwise). An item is
 *   'K' | u16 key_len | u32 value_len | u64 expire_at_ms | key | value
 *   'S' | u64 client | u64 floor | u64 seq | u8 code | u8 found | u32 value_len | value
 * 'K': a key of the range, with its value and expiry. 'S': one cached result of a client
 * session at the source (seq > floor), or, with seq 0 (and code, found, value_len 0), only
 * the session's floor (every seq at or below it is forgotten). Items are numbered from the
 * copy's first: a chunk's offset is the number of its first item. 0 items only in a last
 * chunk. */
#define KV_INGEST_HEADER 56

/* The digest of a range: the sum modulo 2^128 of XXH3-128 over (u32 LE key length | key |
 * u32 LE value length | value | u64 LE expiry) of each key, written as u64 LE low | u64 LE
 * high. A sum, so that the target can add chunk by chunk whatever the order. */
#define KV_RANGE_DIGEST_BYTES 16

/* What INGEST does at the target (the result's value, but for KV_EINVAL: the decimal offset
 * ingested up to):
 *   - a chunk at an offset at or below the copy's ingested offset is applied: its keys are
 *     written (a repeat rewrites the same values: the range is frozen at the source), its
 *     sessions merged, and keys at positions not yet counted are added to the count and
 *     digest. KV_OK. The first chunk (offset 0) creates the copy's record and its ranges
 *     become KV_WRONG_SHARD here.
 *   - a chunk beyond the ingested offset (a gap): KV_CAS_MISMATCH, nothing written; resend
 *     from the offset in the value.
 *   - the last chunk: the count and digest of everything ingested must equal the chunk's;
 *     then the copy is complete (KV_OK, found = true). If not, KV_DISCARDED: the copy is
 *     thrown away (its keys stay until DROP removes them, and its ranges stay refused).
 *   - any chunk of a complete copy: KV_OK (found = true), nothing written.
 *   - KV_EINVAL, nothing written: a source that is this group; an epoch below the
 *     record's; a newer epoch while the older copy is neither opened nor dropped; ranges that
 *     differ from the record's; a key whose hash is not in the ranges; a copy that is opened
 *     (its keys are served and may have changed) or discarded and not yet dropped.
 * Sessions (Raft thesis 6.3): each 'S' item is merged into the target's session of that
 * client: the floor is the higher of the two, results at or below it are forgotten, a
 * result the target does not have is added, and the session keeps its KV_SESSION_WINDOW
 * highest seqs (a client's seqs grow across groups, so the highest are the most recent).
 * So a write applied at the source and retried at the target is answered from the cache. */

/* The reader of a frozen range at the source. It opens a short read transaction per chunk
 * (the range cannot change while fenced, so the chunks join up), checks each time that the
 * group's fence of `epoch` still holds every range, and produces INGEST values of at most
 * chunk_bytes (0: KV_SNAPSHOT_CHUNK_DEFAULT, and never more than that), except a chunk of one
 * item that is larger by itself. Items: the range's keys in key order, then the sessions
 * (client order, each its floor then its results; sessions idle for session_ttl_entries at
 * the source's applied index are left out). from_offset resumes a copy where the target is
 * (the value of its last INGEST result): the keys before it are read and counted but not
 * sent, and an offset inside the sessions starts them again from their first item (merging
 * is idempotent, and sessions may change between reads; each item carries its floor). */
struct kv_copy;
/* ranges are copied. KV_EINVAL (no ranges, more than KV_RESHARD_RANGES_MAX, epoch 0),
 * KV_ENOGROUP, KV_ENOMEM. */
int kv_copy_begin(struct kv *kv, uint32_t group, uint64_t epoch, const struct kv_ring_range *ranges,
		  size_t n, uint64_t from_offset, size_t chunk_bytes, struct kv_copy **out);
/* The next chunk: *value malloc'd (ownership to the caller, e.g. into a kv_cmd of op
 * KV_OP_INGEST), *last set on the last one. KV_NOT_FOUND after the last; KV_EINVAL when the
 * fence of the copy's epoch no longer holds every range (nothing is frozen: do not copy);
 * KV_ECORRUPT (a stored value fails its check: kv_last_corrupt), KV_EIO, KV_ENOMEM. After an
 * error the reading position is undefined: end the copy and begin another from the target's
 * offset. A chunk is larger than chunk_bytes only when it holds one item that is larger by
 * itself (a value near KV_VALUE_MAX_HARD would then not fit a Raft entry, RAFT_ENTRY_BYTES_MAX:
 * such a key cannot move). */
int kv_copy_next(struct kv_copy *c, uint8_t **value, size_t *len, bool *last);
/* Items produced or skipped so far (the offset of the next chunk). */
uint64_t kv_copy_offset(const struct kv_copy *c);
void kv_copy_end(struct kv_copy *c);

/* The count and digest (KV_RANGE_DIGEST_BYTES) of the keys of `group` whose hash is in one of
 * the ranges (borrowed), from one read transaction: what a copy's last chunk carries, and a check
 * of the target against the source once the copy is in. O(keys of the group). */
int kv_range_digest(struct kv *kv, uint32_t group, const struct kv_ring_range *ranges, size_t n,
		    uint64_t *keys, uint8_t out[KV_RANGE_DIGEST_BYTES]);

/* A range may come back to a group that gave it away in an earlier change (a group added,
 * then removed), or come from another source after an earlier copy of it was rolled back. The
 * first chunk of a copy of a newer epoch is refused (KV_EINVAL) while the group still holds an
 * older release whose DROP pass is not over, or an older copy that is neither opened nor
 * dropped. Then that chunk removes the older release, the older dropped copies and any fence of
 * an older epoch, so that the range is served here once opened. */

/* ------------------------------------------------------------------------------ RELEASE */
/* The value of RELEASE is a FENCE value (kv_fence_value, reshard.h): the epoch and this
 * source's ranges for one target. Every range must be in the group's fence of the same
 * epoch (a range that was never frozen cannot be released: KV_EINVAL, nothing changed).
 * Releases of one epoch add up (a source releases to its targets one pair at a time); a
 * higher epoch replaces the stored release once the stored one's DROP pass is over
 * (KV_EINVAL before: its keys would be served again); a lower one is KV_EINVAL. A release
 * that adds a range starts the DROP pass of the released ranges again. KV_OK. */

/* ------------------------------------------------------------------------------ OPEN */
/* The value of OPEN: u64 epoch | u32 source. The copy (epoch, source) must be complete:
 * KV_OK, and its ranges are served from this entry on; a repeat is KV_OK. KV_NOT_FOUND
 * (nothing changed) when there is no such copy or it is not complete. */
#define KV_OPEN_VALUE_BYTES 12
void kv_open_value(uint64_t epoch, uint32_t source, uint8_t out[KV_OPEN_VALUE_BYTES]);

/* ------------------------------------------------------------------------------ DROP */
/* The value of DROP: u64 epoch | u32 source | u32 max_keys (1..KV_DROP_KEYS_MAX).
 * source 0: the released ranges of `epoch` at this group (a source after RELEASE). Else the
 * copy (epoch, source) at this group (a target whose copy was discarded or is rolled back):
 * the copy is discarded first if it was not (its ranges stay refused; a copy that is OPEN is
 * KV_EINVAL, its keys are served). Each DROP walks at most max_keys keys of the group in key
 * order from where the last one stopped (a cursor in the meta DBI) and deletes those in the
 * ranges. Result value: the decimal count deleted. KV_OK: the pass goes on; KV_NOT_FOUND:
 * the pass is over (this entry finished it, or it was already), so repeats are harmless. A
 * discarded copy whose pass is over is "dropped": its epoch may be copied again from offset
 * 0, or a newer one started. KV_EINVAL when there is no such release or copy. */
#define KV_DROP_VALUE_BYTES 16
void kv_drop_value(uint64_t epoch, uint32_t source, uint32_t max_keys,
		   uint8_t out[KV_DROP_VALUE_BYTES]);

#endif
