/* ring.h — the consistent-hash ring: which of G groups owns a key, and which nodes host a group.
 *
 * G groups x V virtual nodes hashed (xxHash64) onto a 64-bit ring; a key belongs to the first
 * point at or after its hash. A pure function of (groups, vnodes, epoch): servers and clients
 * build the same ring. Replica placement is deterministic striping over the nodes in a
 * canonical (hashed) order, which keeps every node within one of replicas*G/N (see ring.c).
 */
#ifndef RINGRAFT_KV_RING_H
#define RINGRAFT_KV_RING_H

#include <stddef.h>
#include <stdint.h>

struct kv_ring;
/* NULL on allocation failure, groups/vnodes == 0, or groups * vnodes > 2^26. The ring is
 * immutable: one may be shared by threads. */
struct kv_ring *kv_ring_new(uint32_t groups, uint32_t vnodes, uint64_t epoch);
void kv_ring_free(struct kv_ring *ring);
/* The part of a key that is hashed: the whole key, or its hash tag (Redis Cluster's rule: a
 * key containing '{' and later '}' with at least one byte between the first '{' and the first
 * '}' after it hashes by those bytes only, e.g. "user:{42}:name" by "42"). */
void kv_ring_hash_part(const void *key, size_t len, size_t *off, size_t *part_len);
/* Group 1..G of a key (by its hash part). O(log(G*V)). */
uint32_t kv_ring_group_of(const struct kv_ring *ring, const void *key, size_t len);
uint32_t kv_ring_groups(const struct kv_ring *ring);
uint64_t kv_ring_epoch(const struct kv_ring *ring);

/* The `replicas` nodes (of nodes[0..n_nodes), distinct ids, any order) that host `group`
 * (1..G), in preference order (the first is the preferred leader), written to out (room for
 * `replicas`); returns how many (min(replicas, n_nodes); 0 only on allocation failure with
 * more than 64 nodes). Deterministic; over groups 1..G every node hosts floor or ceil of
 * replicas*G/N groups and is first for floor or ceil of G/N of them. */
size_t kv_ring_place(uint32_t group, const uint64_t *nodes, size_t n_nodes, size_t replicas,
		     uint64_t *out);

#endif
