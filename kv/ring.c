/* ring.c — the consistent-hash ring (DESIGN.md section 6) and replica placement.
 *
 * Point v of group g sits at XXH64(le32 g | le32 v, seed = epoch mixed with a constant); a
 * point does not depend on G, so going from G to G+1 groups only moves the keys the new
 * group's points take (about 1/(G+1)). A key hashes with a fixed seed, whatever the epoch,
 * and belongs to the first point at or after its hash (wrapping): a binary search, O(log GV).
 * A key with a hash tag (Redis Cluster's rule: the content of the first '{' ... '}' pair, when
 * not empty) hashes by its tag only, so related keys share a group (DESIGN.md section 13).
 *
 * Placement is striping, not rendezvous hashing: rendezvous alone leaves a node with several
 * replicas more than another for small G, and we want every node within one of 3G/N. Nodes
 * are put in a canonical order (by XXH64 of their id, then id, so the caller's order does
 * not matter); group g takes the `replicas` consecutive positions starting at
 * (g - 1) * replicas mod N. Over groups 1..G the R*G assignments walk round the nodes
 * consecutively, so each node gets floor or ceil of R*G/N, and the first (preferred leader)
 * replicas are spread the same way. Adding a node reshuffles placement: membership changes
 * are explicit operator steps in this project, so evenness was chosen over minimal movement.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "kv/ring.h"

#define RING_SEED 0x72696e6772616674ull /* "ringraft" */
#define KEY_SEED  0x6b65797365656431ull /* "keyseed1" */
#define NODE_SEED 0x6e6f64657365656eull /* "nodeseen" */

struct point {
	uint64_t hash;
	uint32_t group;
};

struct kv_ring {
	uint32_t groups, vnodes;
	uint64_t epoch;
	size_t n;
	struct point points[];
};

/* XXH64 of a number's little-endian bytes: the same ring on every host. */
static uint64_t hash_u64(uint64_t v, uint64_t seed)
{
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	return XXH64(b, sizeof b, seed);
}

static int point_cmp(const void *a, const void *b)
{
	const struct point *x = a, *y = b;
	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	return x->group < y->group ? -1 : x->group > y->group;
}

struct kv_ring *kv_ring_new(uint32_t groups, uint32_t vnodes, uint64_t epoch)
{
	if (groups == 0 || vnodes == 0 || (uint64_t)groups * vnodes > (1u << 26))
		return NULL;
	size_t n = (size_t)groups * vnodes;
	struct kv_ring *r = malloc(sizeof *r + n * sizeof(struct point));
	if (r == NULL)
		return NULL;
	r->groups = groups;
	r->vnodes = vnodes;
	r->epoch = epoch;
	r->n = n;
	uint64_t seed = hash_u64(epoch, RING_SEED);
	size_t i = 0;
	for (uint32_t g = 1; g <= groups; g++) {
		for (uint32_t v = 0; v < vnodes; v++) {
			uint8_t b[8];
			for (int j = 0; j < 4; j++) {
				b[j] = (uint8_t)(g >> (8 * j));
				b[4 + j] = (uint8_t)(v >> (8 * j));
			}
			r->points[i].hash = XXH64(b, sizeof b, seed);
			r->points[i].group = g;
			i++;
		}
	}
	qsort(r->points, n, sizeof(struct point), point_cmp);
	return r;
}

void kv_ring_free(struct kv_ring *ring)
{
	free(ring);
}

void kv_ring_hash_part(const void *key, size_t len, size_t *off, size_t *part_len)
{
	const uint8_t *k = key;
	*off = 0;
	*part_len = len;
	const uint8_t *open = memchr(k, '{', len);
	if (open == NULL)
		return;
	size_t s = (size_t)(open - k) + 1;
	const uint8_t *close = memchr(k + s, '}', len - s);
	if (close == NULL || close == k + s)
		return; /* no '}' after the first '{', or "{}": the whole key */
	*off = s;
	*part_len = (size_t)(close - (k + s));
}

uint32_t kv_ring_group_of(const struct kv_ring *ring, const void *key, size_t len)
{
	size_t off, part;
	kv_ring_hash_part(key, len, &off, &part);
	uint64_t h = XXH64((const uint8_t *)key + off, part, KEY_SEED);
	/* The first point with hash >= h; past the last point, wrap to the first. */
	size_t lo = 0, hi = ring->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (ring->points[mid].hash < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	return ring->points[lo == ring->n ? 0 : lo].group;
}

uint32_t kv_ring_groups(const struct kv_ring *ring)
{
	return ring->groups;
}

uint64_t kv_ring_epoch(const struct kv_ring *ring)
{
	return ring->epoch;
}

struct ranked {
	uint64_t rank, id;
};

static int ranked_cmp(const void *a, const void *b)
{
	const struct ranked *x = a, *y = b;
	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

size_t kv_ring_place(uint32_t group, const uint64_t *nodes, size_t n_nodes, size_t replicas,
		     uint64_t *out)
{
	assert(group >= 1);
	size_t k = replicas < n_nodes ? replicas : n_nodes;
	if (k == 0)
		return 0;
	struct ranked small[64], *order = small;
	if (n_nodes > 64 && (order = malloc(n_nodes * sizeof *order)) == NULL)
		return 0;
	for (size_t i = 0; i < n_nodes; i++) {
		order[i].id = nodes[i];
		order[i].rank = hash_u64(nodes[i], NODE_SEED);
	}
	qsort(order, n_nodes, sizeof *order, ranked_cmp);
	size_t start = (size_t)(((uint64_t)(group - 1) * replicas) % n_nodes);
	for (size_t j = 0; j < k; j++)
		out[j] = order[(start + j) % n_nodes].id;
	if (order != small)
		free(order);
	return k;
}
