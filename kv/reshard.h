/* reshard.h — the rules of a ring change (issue 18): a record of which hash ranges move from
 * which group to which, the state of each range, and, at every state, which one group serves a
 * key. Pure: no I/O, no clock; the node keeps the record in the meta group and drives the
 * steps (docs/DESIGN-NOTES.md "Resharding").
 *
 * A range goes PLANNED -> FENCED -> INGESTED -> DONE, or to ROLLED_BACK from any state before
 * DONE. At every state exactly one group serves reads of a key and at most that same group
 * accepts writes (none while the range is frozen for the copy), so no key is owned by two
 * groups and an existing key is always read from the one group that holds its latest value.
 */
#ifndef RINGRAFT_KV_RESHARD_H
#define RINGRAFT_KV_RESHARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv/ring.h"

/* Ranges one record may move: 32 groups' worth of 128 points. Checked by kv_reshard_plan. */
#define KV_RESHARD_RANGES_MAX 4096

enum kv_reshard_code {
	KV_RESHARD_OK = 0,
	KV_RESHARD_EINVAL = -1,   /* a bad id set, epochs not increasing, rings that do not differ,
				   * too many ranges, a range or group that is not in the record */
	KV_RESHARD_EILLEGAL = -2, /* a transition the rules do not allow (nothing changed) */
	KV_RESHARD_ENOMEM = -3,
};

/* The state of one moving range. Numbers are stored (the meta group's record): never reuse. */
enum kv_reshard_state {
	/* Decided in the meta group. The source serves the range as before. */
	KV_RESHARD_PLANNED = 1,
	/* The source committed its fence: from that entry on it refuses writes to the range
	 * (the client retries: the write did not happen) and still serves reads, of values
	 * that can no longer change. The target copies the range through its own log and
	 * serves none of it. */
	KV_RESHARD_FENCED = 2,
	/* The target committed the last of the copy (every key and the sessions they need).
	 * Still nothing is written; the source still serves reads. */
	KV_RESHARD_INGESTED = 3,
	/* The source committed its release (it serves nothing of the range any more and may
	 * delete it); the target serves reads and writes. Final. */
	KV_RESHARD_DONE = 4,
	/* The move was abandoned before DONE: the source unfenced and serves the range as
	 * before, the target drops whatever it copied. Final. */
	KV_RESHARD_ROLLED_BACK = 5,
};

/* One range of the hash circle that changes owner (kv_ring_range semantics: lo < h <= hi,
 * wrapping when lo >= hi), its owner in the old ring (from) and the new (to), and its state. */
struct kv_reshard_range {
	uint64_t lo, hi;
	uint32_t from, to;
	enum kv_reshard_state state;
};

/* A ring change: the old ring, the new ring and the ranges between them, in circle order. */
struct kv_reshard {
	struct kv_ring *from, *to; /* owned; epochs from < to */
	size_t n_ranges;
	struct kv_reshard_range *ranges; /* owned */
};

/* How a change stands as a whole. */
enum kv_reshard_outcome {
	KV_RESHARD_MOVING = 1,   /* some range is not final */
	KV_RESHARD_COMPLETE = 2, /* every range DONE: the new ring is in effect */
	KV_RESHARD_ABANDONED = 3 /* every range ROLLED_BACK: the old ring is in effect */
};

/* What a group does with a request for a key. */
enum kv_reshard_answer {
	KV_RESHARD_SERVE = 1,     /* this group serves it */
	KV_RESHARD_ELSEWHERE = 2, /* another group serves it (*serving): redirect or forward */
	KV_RESHARD_RETRY = 3      /* a write to a frozen range: nobody takes it now; it did not
				   * happen, the client retries after a short wait */
};

/* Plans the change from the ring of from_ids (at from_epoch) to the ring of to_ids (at
 * to_epoch), both with vnodes points per group: every range whose owner differs, PLANNED.
 * *out is allocated (kv_reshard_free). KV_RESHARD_EINVAL when an id set is bad (kv_ring_from_ids),
 * to_epoch <= from_epoch, the rings own every key alike, or more than KV_RESHARD_RANGES_MAX
 * ranges would move; KV_RESHARD_ENOMEM. */
int kv_reshard_plan(const uint32_t *from_ids, size_t n_from, uint64_t from_epoch,
		    const uint32_t *to_ids, size_t n_to, uint64_t to_epoch, uint32_t vnodes,
		    struct kv_reshard **out);
void kv_reshard_free(struct kv_reshard *r);

/* Whether range i may go to state next now. Legal: PLANNED -> FENCED, FENCED -> INGESTED,
 * INGESTED -> DONE, and PLANNED / FENCED / INGESTED -> ROLLED_BACK; and a step to the state
 * the range is in already (so a driver resuming after a crash may repeat its last step).
 * A change ends one way: no range goes DONE once another was rolled back, and none is
 * rolled back once another is DONE. */
bool kv_reshard_legal(const struct kv_reshard *r, size_t i, enum kv_reshard_state next);
/* Moves range i to next: 0, KV_RESHARD_EINVAL (i out of range, next not a state) or
 * KV_RESHARD_EILLEGAL (not legal now; the record is unchanged). */
int kv_reshard_step(struct kv_reshard *r, size_t i, enum kv_reshard_state next);
/* Moves every range of (from, to) to next, all or none (a source fences all it gives one
 * target in one entry): 0, KV_RESHARD_EINVAL (no such range) or KV_RESHARD_EILLEGAL (some
 * range may not; nothing changed). */
int kv_reshard_step_pair(struct kv_reshard *r, uint32_t from, uint32_t to,
			 enum kv_reshard_state next);
enum kv_reshard_outcome kv_reshard_outcome(const struct kv_reshard *r);
/* The ring in effect after a final change: the new one when COMPLETE, the old one when
 * ABANDONED; NULL while MOVING (no one ring says who serves). Borrowed from r. */
const struct kv_ring *kv_reshard_in_effect(const struct kv_reshard *r);
/* Whether `next` may be the change after `prev` (NULL: none yet, the ring in effect is
 * `boot`, the cluster's bootstrap ring): prev is final; next starts from the ring in effect
 * (same ids, epoch and points per group), every range of next is PLANNED, and next's new
 * epoch is above every epoch prev used (an abandoned epoch is not reused). One change at a
 * time, each from where the last one ended. */
bool kv_reshard_may_follow(const struct kv_reshard *prev, const struct kv_ring *boot,
			   const struct kv_reshard *next);

/* The index of the range holding position h, or -1 when h does not move. O(log ranges). */
long kv_reshard_find(const struct kv_reshard *r, uint64_t h);
/* The group that serves reads of position h (*reader, never 0) and the one that accepts
 * writes (*writer; 0 while the range is frozen): the same group whenever both are set. */
void kv_reshard_owner(const struct kv_reshard *r, uint64_t h, uint32_t *reader, uint32_t *writer);
/* What `group` does with a read (write false) or write of position h; *serving is set to
 * the group that serves it (0 for KV_RESHARD_RETRY). */
enum kv_reshard_answer kv_reshard_answer(const struct kv_reshard *r, uint32_t group, uint64_t h,
					 bool write, uint32_t *serving);

/* The value of a KV_OP_FENCE command (kv.h): u64 LE epoch | u32 LE n | n x (u64 lo | u64 hi),
 * 1..KV_RESHARD_RANGES_MAX ranges. *out malloc'd (free() it). 0, KV_RESHARD_EINVAL (n out of
 * range) or KV_RESHARD_ENOMEM. An UNFENCE's value is the u64 LE epoch alone. */
int kv_fence_value(uint64_t epoch, const struct kv_ring_range *ranges, size_t n, uint8_t **out,
		   size_t *len);

/* Parses a FENCE or RELEASE value (kv_fence_value's layout): *epoch and *ranges (malloc'd,
 * from and to 0; free() it), *n of them. 0, KV_RESHARD_EINVAL (not that layout),
 * KV_RESHARD_ENOMEM. */
int kv_fence_value_parse(const void *value, size_t len, uint64_t *epoch,
			 struct kv_ring_range **ranges, size_t *n);

/* A static string for a code, a state ("planned", "fenced", ...). */
const char *kv_reshard_strerror(int code);
const char *kv_reshard_state_name(enum kv_reshard_state s);

#endif
