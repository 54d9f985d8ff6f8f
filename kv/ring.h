/* ring.h — the consistent-hash ring: which group owns a key, and which nodes host a group.
 *
 * A set of group ids x V virtual nodes hashed (xxHash64, fixed seeds) onto a 64-bit ring; a key
 * belongs to the first point at or after its hash. A point depends only on (group id, point
 * number), so adding a group creates only its own points and removing it takes only its own:
 * the keys that move are those the changed group's points cover, about 1/(G+1) of them. The
 * epoch is a label of the ring (it changes with the id set), not part of the hashing. Servers
 * and clients build the same ring. Replica placement is deterministic striping over the nodes
 * in a canonical (hashed) order, which keeps every node within one of replicas*G/N (ring.c).
 */
#ifndef RINGRAFT_KV_RING_H
#define RINGRAFT_KV_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kv_ring;

/* A range of key hashes on the circle: the h with lo < h <= hi, or, when lo >= hi, the range
 * that wraps: h > lo or h <= hi (lo == hi: the whole circle). */
struct kv_ring_range {
	uint64_t lo, hi;
	uint32_t from, to; /* kv_ring_diff: the owner in the old ring and in the new one */
};

/* The ring of groups ids[0..n_ids) (any order, each id 1..UINT32_MAX once) with `vnodes`
 * points each, labelled `epoch`. NULL on allocation failure, n_ids or vnodes 0, an id 0 or
 * repeated, or n_ids * vnodes > 2^26. The ring is immutable: one may be shared by threads.
 * The ring of ids 1..G is exactly the ring every ringraft cluster had before rings were built
 * from id sets (the fixed seed is the one epoch 1 gave), so existing clusters keep their
 * placement. */
struct kv_ring *kv_ring_from_ids(const uint32_t *ids, size_t n_ids, uint32_t vnodes,
				 uint64_t epoch);
/* kv_ring_from_ids of groups 1..groups. */
struct kv_ring *kv_ring_new(uint32_t groups, uint32_t vnodes, uint64_t epoch);
void kv_ring_free(struct kv_ring *ring);
/* The part of a key that is hashed: the whole key, or its hash tag (Redis Cluster's rule: a
 * key containing '{' and later '}' with at least one byte between the first '{' and the first
 * '}' after it hashes by those bytes only, e.g. "user:{42}:name" by "42"). */
void kv_ring_hash_part(const void *key, size_t len, size_t *off, size_t *part_len);
/* A key's place on the circle (the hash of its hash part); the same for every ring. */
uint64_t kv_ring_key_hash(const void *key, size_t len);
/* The group owning position h: the first point at or after h, wrapping. O(log(G*V)). */
uint32_t kv_ring_owner(const struct kv_ring *ring, uint64_t h);
/* Group of a key (by its hash part): kv_ring_owner(ring, kv_ring_key_hash(key, len)). */
uint32_t kv_ring_group_of(const struct kv_ring *ring, const void *key, size_t len);
/* How many groups the ring has. */
uint32_t kv_ring_groups(const struct kv_ring *ring);
/* The ring's group ids, ascending; *n set to their number. Borrowed: valid until the ring is
 * freed. */
const uint32_t *kv_ring_ids(const struct kv_ring *ring, size_t *n);
/* Whether group is one of the ring's. O(log G). */
bool kv_ring_has(const struct kv_ring *ring, uint32_t group);
uint32_t kv_ring_vnodes(const struct kv_ring *ring);
uint64_t kv_ring_epoch(const struct kv_ring *ring);
/* The fraction of the hash space (0..1) that group owns; 0 for a group not in the ring. The
 * shares of a ring's groups sum to 1 (up to rounding). O(G*V). */
double kv_ring_share(const struct kv_ring *ring, uint32_t group);
/* Whether position h is in range r. */
bool kv_ring_range_has(const struct kv_ring_range *r, uint64_t h);
/* The ranges of the circle whose owner differs between ring a and ring b, each with its owner
 * in a (from) and in b (to), adjacent ranges of the same (from, to) merged; in circle order.
 * *out is allocated (free() it; NULL when *n is 0). 0 or KV_RING_ENOMEM (nothing allocated).
 * O((Va*Ga + Vb*Gb) log). */
int kv_ring_diff(const struct kv_ring *a, const struct kv_ring *b, struct kv_ring_range **out,
		 size_t *n);
/* The fraction of the hash space (0..1) whose owner differs between a and b: the share of
 * keys that move when the ring changes from a to b. -1 on allocation failure. */
double kv_ring_moved_share(const struct kv_ring *a, const struct kv_ring *b);

#define KV_RING_ENOMEM (-1)

/* The `replicas` nodes (of nodes[0..n_nodes), distinct ids, any order) that host `group`
 * (1..G), in preference order (the first is the preferred leader), written to out (room for
 * `replicas`); returns how many (min(replicas, n_nodes); 0 only on allocation failure with
 * more than 64 nodes). Deterministic; over groups 1..G every node hosts floor or ceil of
 * replicas*G/N groups and is first for floor or ceil of G/N of them. */
size_t kv_ring_place(uint32_t group, const uint64_t *nodes, size_t n_nodes, size_t replicas,
		     uint64_t *out);

#endif
