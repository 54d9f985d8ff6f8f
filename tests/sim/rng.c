/* rng.c — the simulator's random choices (the core's seeded xoshiro256**, raft/rand.h) and a
 * digest hash.
 *
 * Every random choice of a run comes from here, so one 64-bit seed replays a run exactly on any
 * machine and libc (rand() would not).
 */
#include "tests/sim/sim.h"

void rng_seed(struct rng *g, uint64_t seed)
{
	raft_rand_seed(&g->r, seed);
}

uint64_t rng_next(struct rng *g)
{
	return raft_rand_next(&g->r);
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
