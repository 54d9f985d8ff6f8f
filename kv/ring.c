/* ring.c — the consistent-hash ring (DESIGN.md section 6) and replica placement.
 *
 * Point v of group g sits at XXH64(le32 g | le32 v, POINT_SEED); a point depends on nothing
 * else, so a ring of a set of ids is the union of its groups' points, and adding or removing
 * a group moves only the keys that group's points cover (about 1/(G+1), tests/unit/kv/
 * test_ring.c measures it). POINT_SEED is the seed that epoch 1 gave when the seed followed
 * the epoch: every cluster ran at epoch 1, so the ring of ids 1..G is the ring it already has.
 * A key hashes with a fixed seed and belongs to the first point at or after its hash
 * (wrapping): a binary search, O(log GV). Points of equal hash sort by group, so the lowest
 * group owns the range before them. A key with a hash tag (Redis Cluster's rule: the content
 * of the first '{' ... '}' pair, when not empty) hashes by its tag only, so related keys
 * share a group (DESIGN.md section 13).
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

#define RING_SEED  0x72696e6772616674ull /* "ringraft" */
#define KEY_SEED   0x6b65797365656431ull /* "keyseed1" */
#define NODE_SEED  0x6e6f64657365656eull /* "nodeseen" */
#define POINTS_MAX (1u << 26)

struct point {
	uint64_t hash;
	uint32_t group;
};

struct kv_ring {
	uint32_t vnodes;
	uint64_t epoch;
	uint32_t *ids; /* ascending */
	size_t n_ids;
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

static int u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

struct kv_ring *kv_ring_from_ids(const uint32_t *ids, size_t n_ids, uint32_t vnodes, uint64_t epoch)
{
	if (n_ids == 0 || vnodes == 0 || n_ids > POINTS_MAX ||
	    (uint64_t)n_ids * vnodes > POINTS_MAX)
		return NULL;
	uint32_t *sorted = malloc(n_ids * sizeof *sorted);
	if (sorted == NULL)
		return NULL;
	memcpy(sorted, ids, n_ids * sizeof *sorted);
	qsort(sorted, n_ids, sizeof *sorted, u32_cmp);
	for (size_t i = 0; i < n_ids; i++) {
		if (sorted[i] == 0 || (i > 0 && sorted[i] == sorted[i - 1])) {
			free(sorted);
			return NULL;
		}
	}
	size_t n = n_ids * vnodes;
	struct kv_ring *r = malloc(sizeof *r + n * sizeof(struct point));
	if (r == NULL) {
		free(sorted);
		return NULL;
	}
	r->vnodes = vnodes;
	r->epoch = epoch;
	r->ids = sorted;
	r->n_ids = n_ids;
	r->n = n;
	const uint64_t seed = hash_u64(1, RING_SEED); /* see the top of the file */
	size_t i = 0;
	for (size_t k = 0; k < n_ids; k++) {
		uint32_t g = sorted[k];
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

struct kv_ring *kv_ring_new(uint32_t groups, uint32_t vnodes, uint64_t epoch)
{
	if (groups == 0 || groups > POINTS_MAX)
		return NULL;
	uint32_t *ids = malloc((size_t)groups * sizeof *ids);
	if (ids == NULL)
		return NULL;
	for (uint32_t g = 0; g < groups; g++)
		ids[g] = g + 1;
	struct kv_ring *r = kv_ring_from_ids(ids, groups, vnodes, epoch);
	free(ids);
	return r;
}

void kv_ring_free(struct kv_ring *ring)
{
	if (ring == NULL)
		return;
	free(ring->ids);
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

uint64_t kv_ring_key_hash(const void *key, size_t len)
{
	size_t off, part;
	kv_ring_hash_part(key, len, &off, &part);
	return XXH64((const uint8_t *)key + off, part, KEY_SEED);
}

/* Index of the point owning h: the first with hash >= h; past the last point, the first. */
static size_t point_at(const struct kv_ring *ring, uint64_t h)
{
	size_t lo = 0, hi = ring->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (ring->points[mid].hash < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo == ring->n ? 0 : lo;
}

uint32_t kv_ring_owner(const struct kv_ring *ring, uint64_t h)
{
	return ring->points[point_at(ring, h)].group;
}

uint32_t kv_ring_group_of(const struct kv_ring *ring, const void *key, size_t len)
{
	return kv_ring_owner(ring, kv_ring_key_hash(key, len));
}

uint32_t kv_ring_groups(const struct kv_ring *ring)
{
	return (uint32_t)ring->n_ids;
}

const uint32_t *kv_ring_ids(const struct kv_ring *ring, size_t *n)
{
	*n = ring->n_ids;
	return ring->ids;
}

bool kv_ring_has(const struct kv_ring *ring, uint32_t group)
{
	return bsearch(&group, ring->ids, ring->n_ids, sizeof group, u32_cmp) != NULL;
}

uint32_t kv_ring_vnodes(const struct kv_ring *ring)
{
	return ring->vnodes;
}

uint64_t kv_ring_epoch(const struct kv_ring *ring)
{
	return ring->epoch;
}

/* The fraction of the circle in range (lo, hi]; lo == hi is the whole circle. */
static double range_share(uint64_t lo, uint64_t hi)
{
	if (lo == hi)
		return 1.0;
	return (double)(uint64_t)(hi - lo) / 18446744073709551616.0; /* 2^64 */
}

double kv_ring_share(const struct kv_ring *ring, uint32_t group)
{
	/* Point i owns (hash of point i-1, hash of point i]; point 0 owns the range that wraps
	 * from the last point. Of points of equal hash the first (lowest group) owns it all. */
	double share = 0;
	for (size_t i = 0; i < ring->n; i++) {
		if (ring->points[i].group != group)
			continue;
		uint64_t prev = ring->points[i == 0 ? ring->n - 1 : i - 1].hash;
		if (ring->n == 1)
			return 1.0;
		if (prev != ring->points[i].hash || i == 0)
			share += range_share(prev, ring->points[i].hash);
	}
	return share;
}

bool kv_ring_range_has(const struct kv_ring_range *r, uint64_t h)
{
	if (r->lo < r->hi)
		return r->lo < h && h <= r->hi;
	return h > r->lo || h <= r->hi;
}

int kv_ring_diff(const struct kv_ring *a, const struct kv_ring *b, struct kv_ring_range **out,
		 size_t *n)
{
	*out = NULL;
	*n = 0;
	/* Between two consecutive points of either ring (the union of their hashes, sorted),
	 * both owners are constant: each is the owner of the upper end. */
	size_t m = a->n + b->n;
	uint64_t *bounds = malloc(m * sizeof *bounds);
	struct kv_ring_range *ranges = malloc(m * sizeof *ranges);
	if (bounds == NULL || ranges == NULL) {
		free(bounds);
		free(ranges);
		return KV_RING_ENOMEM;
	}
	for (size_t i = 0; i < a->n; i++)
		bounds[i] = a->points[i].hash;
	for (size_t i = 0; i < b->n; i++)
		bounds[a->n + i] = b->points[i].hash;
	qsort(bounds, m, sizeof *bounds, u64_cmp);
	size_t u = 0;
	for (size_t i = 0; i < m; i++)
		if (u == 0 || bounds[i] != bounds[u - 1])
			bounds[u++] = bounds[i];
	size_t k = 0;
	for (size_t j = 0; j < u; j++) {
		uint64_t hi = bounds[j], lo = bounds[j == 0 ? u - 1 : j - 1];
		uint32_t from = kv_ring_owner(a, hi), to = kv_ring_owner(b, hi);
		if (from == to)
			continue;
		if (k > 0 && ranges[k - 1].hi == lo && ranges[k - 1].from == from &&
		    ranges[k - 1].to == to) {
			ranges[k - 1].hi = hi;
			continue;
		}
		ranges[k++] = (struct kv_ring_range){.lo = lo, .hi = hi, .from = from, .to = to};
	}
	/* The first range (it may wrap) and the last may be one. */
	if (k > 1 && ranges[k - 1].hi == ranges[0].lo && ranges[k - 1].from == ranges[0].from &&
	    ranges[k - 1].to == ranges[0].to) {
		ranges[0].lo = ranges[k - 1].lo;
		k--;
	}
	free(bounds);
	if (k == 0) {
		free(ranges);
		return 0;
	}
	*out = ranges;
	*n = k;
	return 0;
}

double kv_ring_moved_share(const struct kv_ring *a, const struct kv_ring *b)
{
	struct kv_ring_range *r;
	size_t n;
	if (kv_ring_diff(a, b, &r, &n) != 0)
		return -1;
	double share = 0;
	for (size_t i = 0; i < n; i++)
		share += range_share(r[i].lo, r[i].hi);
	free(r);
	return share;
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
