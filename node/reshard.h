/* reshard.h — the ring change record of the meta group (docs/DESIGN-NOTES.md "Resharding"):
 * its encoding (a packed ringraft.kv.RingChange under the meta group's key "ring"), its check
 * on the way in, the compare-and-set that replaces it, and the planning of a change (which ids
 * a new group takes, where its replicas go, what a removal does). The rules of a change are
 * kv/reshard.h's; this file only stores and plans them. Pure: LMDB reads through kv/, no I/O
 * of its own; the node applies a record in node/groups.c.
 */
#ifndef RINGRAFT_NODE_RESHARD_H
#define RINGRAFT_NODE_RESHARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv/kv.h"
#include "kv/reshard.h"
#include "node/node_limits.h"
#include "raft/raft.h"

#define NODE_RESHARD_KEY     "ring"
#define NODE_RESHARD_KEY_LEN 4

/* The initial voters of a group a change adds, chosen by the meta leader when it planned the
 * change, so that every node creates the same configuration whatever cluster map it has. */
struct node_reshard_place {
	uint32_t group;
	uint32_t n_replicas; /* 1..RAFT_NODES_MAX */
	uint64_t replicas[RAFT_NODES_MAX];
};

/* A ring change as the meta group stores it: the rules' record and what the node needs to
 * create the groups it adds. */
struct node_reshard {
	struct kv_reshard *change; /* owned */
	/* The highest group id any change ever took (ids are never reused): the next added
	 * group takes id_high + 1. At least every id the change names. */
	uint32_t id_high;
	size_t n_places; /* exactly one per group the change adds, in increasing id order */
	struct node_reshard_place places[NODE_GROUPS_ADDED_MAX];
};

void node_reshard_free(struct node_reshard *r);

/* Packs r into a malloc'd *out (free() it) of *len bytes. 0 or NODE_ENOMEM. */
int node_reshard_encode(const struct node_reshard *r, uint8_t **out, size_t *len);
/* Unpacks and checks a stored record: the ranges must be exactly those kv_reshard_plan
 * derives from its id sets and epochs, each in a valid state, and the change must not have
 * ended both ways (a range DONE and one ROLLED_BACK); every group the change adds, and only
 * those, has one placement of 1..RAFT_NODES_MAX distinct non-zero nodes; id_high is at least
 * every id named (a record without it gets the highest id named). *out allocated
 * (node_reshard_free). 0, NODE_EMALFORMED (does not decode, or fails the check), NODE_ENOMEM. */
int node_reshard_decode(const void *data, size_t len, struct node_reshard **out);
/* The record stored in group `meta` of kv: 0 with *out (node_reshard_free), or 0 with *out
 * NULL when there is none (the cluster never changed its ring). NODE_EMALFORMED for a record
 * that fails node_reshard_decode, NODE_ESTORE when LMDB failed, NODE_ENOMEM. */
int node_reshard_load(struct kv *kv, uint32_t meta, struct node_reshard **out);
/* Builds the command that stores `next` in group `meta`: a compare-and-set against the
 * record stored now (put-if-absent when there is none), so that of two writers racing from
 * the same record only one applies. Refuses (NODE_EINVAL, *why says why) a next that may not
 * follow the stored record (kv_reshard_may_follow; `boot` is the bootstrap ring; and the ids
 * it adds are above every id used before, which is above `meta`) unless next is the stored
 * change itself with ranges stepped on (same rings and placements; each range's state equal
 * or a legal step of it). On 0, c's key, value and expected point into *value and *old
 * (free() both once the command is encoded). NODE_ESTORE, NODE_EMALFORMED (the stored
 * record), or NODE_ENOMEM. */
int node_reshard_cmd(struct kv *kv, uint32_t meta, const struct node_reshard *next,
		     const struct kv_ring *boot, struct kv_cmd *c, uint8_t **value, void **old,
		     const char **why);

/* The ring in effect with `stored` (NULL: boot): while it moves, its old ring; once final,
 * kv_reshard_in_effect. Borrowed from stored or boot. */
const struct kv_ring *node_reshard_ring(const struct node_reshard *stored,
					const struct kv_ring *boot);
/* Whether a is a later state of the cluster's ring changes than b (NULL: none): a higher new
 * epoch, or the same change with its ranges further on. Ranges only move to higher state
 * numbers (kv_reshard_legal), so the sum of their states orders one change's records. */
bool node_reshard_newer(const struct node_reshard *a, const struct node_reshard *b);
/* Whether group g is added by r (in its new ring, not in its old one); the placement or NULL. */
const struct node_reshard_place *node_reshard_place_of(const struct node_reshard *r, uint32_t g);

/* Plans the change that adds `count` groups (1..NODE_GROUPS_ADDED_MAX) to the ring in effect
 * after `stored` (NULL: none, the ring is `boot`), in group `meta`'s cluster whose ids may
 * not exceed id_max: the ids id_high + 1 .. id_high + count (id_high: stored's, else meta),
 * the new epoch one above every epoch used, every range PLANNED, and each new group's
 * replicas from kv_ring_place over `members` (the live members, borrowed; NODE_REPLICAS of
 * them). *out allocated. NODE_EINVAL with *why (a change under way, no ids left, no
 * members), NODE_ENOMEM. */
int node_reshard_plan_add(const struct node_reshard *stored, const struct kv_ring *boot,
			  uint32_t meta, uint32_t id_max, uint32_t count, const uint64_t *members,
			  size_t n_members, struct node_reshard **out, const char **why);
/* Plans the removal of group g. Two kinds: g was added by the stored change, which is still
 * moving and none of whose copies is complete (every range PLANNED or FENCED): *out is that
 * change rolled back (every range ROLLED_BACK), which retires every group it added. Or g is
 * in the ring in effect and no change moves: *out moves its keys to the others (the ring
 * without g, the epoch one above every epoch used, every range PLANNED, no placements); once
 * complete, g retires. NODE_EINVAL with *why otherwise (no such group, the meta group, a
 * group retired already, the ring's only group, a change under way or past its copies).
 * NODE_ENOMEM. */
int node_reshard_plan_remove(const struct node_reshard *stored, const struct kv_ring *boot,
			     uint32_t meta, uint32_t g, struct node_reshard **out,
			     const char **why);

/* One line on r for an operator ("epoch 1 -> 2, adding group 10 on nodes 1,2,3: 128 ranges
 * planned"), into buf (cap bytes, always terminated). */
void node_reshard_describe(const struct node_reshard *r, char *buf, size_t cap);

#endif
