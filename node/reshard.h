/* reshard.h — the ring change record of the meta group (docs/DESIGN-NOTES.md "Resharding"):
 * its encoding (a packed ringraft.kv.RingChange under the meta group's key "ring"), its check
 * on the way in, and the compare-and-set that replaces it. The rules of a change are
 * kv/reshard.h's; this file only stores them. Pure: LMDB reads through kv/, no I/O of its own.
 */
#ifndef RINGRAFT_NODE_RESHARD_H
#define RINGRAFT_NODE_RESHARD_H

#include <stddef.h>
#include <stdint.h>

#include "kv/kv.h"
#include "kv/reshard.h"

#define NODE_RESHARD_KEY     "ring"
#define NODE_RESHARD_KEY_LEN 4

/* Packs r into a malloc'd *out (free() it) of *len bytes. 0 or NODE_ENOMEM. */
int node_reshard_encode(const struct kv_reshard *r, uint8_t **out, size_t *len);
/* Unpacks and checks a stored record: the ranges must be exactly those kv_reshard_plan
 * derives from its id sets and epochs, each in a valid state, and the change must not have
 * ended both ways (a range DONE and one ROLLED_BACK). *out allocated (kv_reshard_free).
 * 0, NODE_EMALFORMED (does not decode, or fails the check) or NODE_ENOMEM. */
int node_reshard_decode(const void *data, size_t len, struct kv_reshard **out);
/* The record stored in group `meta` of kv: 0 with *out (kv_reshard_free), or 0 with *out
 * NULL when there is none (the cluster never changed its ring). NODE_EMALFORMED for a record
 * that fails node_reshard_decode, NODE_ESTORE when LMDB failed, NODE_ENOMEM. */
int node_reshard_load(struct kv *kv, uint32_t meta, struct kv_reshard **out);
/* Builds the command that stores `next` in group `meta`: a compare-and-set against the
 * record stored now (put-if-absent when there is none), so that of two writers racing from
 * the same record only one applies. Refuses (NODE_EINVAL, *why says why) a next that may not
 * follow the stored record (kv_reshard_may_follow; `boot` is the bootstrap ring) unless next
 * is the stored change itself with ranges stepped on (same rings; each range's state equal or
 * a legal step of it). On 0, c's key, value and expected point into *value and *old (free()
 * both once the command is encoded). NODE_ESTORE, NODE_EMALFORMED (the stored record), or
 * NODE_ENOMEM. */
int node_reshard_cmd(struct kv *kv, uint32_t meta, const struct kv_ring *boot,
		     const struct kv_reshard *next, struct kv_cmd *c, uint8_t **value, void **old,
		     const char **why);

#endif
