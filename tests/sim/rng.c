/* rng.c — the simulator's own PRNG (xoshiro256** seeded by splitmix64) and a digest hash.
 *
 * Every random choice of a run comes from here, so one 64-bit seed replays a run exactly on any
 * machine and libc (rand() would not).
 */
#include "tests/sim/sim.h"

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void rng_seed(struct rng *g, uint64_t seed)
{
	uint64_t x = seed;
	for (int i = 0; i < 4; i++)
		g->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t rng_next(struct rng *g)
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

uint64_t rng_range(struct rng *g, uint64_t lo, uint64_t hi)
{
	if (hi <= lo)
		return lo;
	/* The modulo bias is below 2^-40 for our ranges: irrelevant for a test. */
	return lo + rng_next(g) % (hi - lo + 1);
}

bool rng_permille(struct rng *g, uint32_t pm)
{
	if (pm == 0)
		return false;
	return rng_next(g) % 1000 < pm;
}

uint64_t hash64(const void *data, size_t len, uint64_t h)
{
	const unsigned char *p = data;
	if (h == 0)
		h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}
