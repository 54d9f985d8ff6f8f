/* rand.c — xoshiro256** seeded by splitmix64 (both public-domain algorithms by Vigna and
 * Blackman). Deterministic and allocation-free; the core uses no libc generator and no clock.
 */
#include "raft/rand.h"

#include <assert.h>

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

void raft_rand_seed(struct raft_rand *g, uint64_t seed)
{
	uint64_t x = seed;
	for (int i = 0; i < 4; i++)
		g->s[i] = splitmix64(&x);
}

uint64_t raft_rand_next(struct raft_rand *g)
{
	uint64_t *s = g->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

uint32_t raft_rand_range(struct raft_rand *g, uint32_t lo, uint32_t hi)
{
	assert(hi > lo);
	/* Modulo bias is below 2^-32 for spans this small: irrelevant for timeouts. */
	return lo + (uint32_t)(raft_rand_next(g) % (uint64_t)(hi - lo));
}
