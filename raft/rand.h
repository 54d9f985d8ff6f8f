/* rand.h — the core's only source of randomness: a seeded xoshiro256** generator.
 *
 * Seeded from raft_config.seed through splitmix64, so that the same seed gives the same
 * election timeouts, bit for bit, on every machine (what makes tests/sim replayable).
 */
#ifndef RINGRAFT_RAFT_RAND_H
#define RINGRAFT_RAFT_RAND_H

#include <stdint.h>

struct raft_rand {
	uint64_t s[4];
};

void raft_rand_seed(struct raft_rand *g, uint64_t seed);
uint64_t raft_rand_next(struct raft_rand *g);
/* A value in [lo, hi); hi > lo. */
uint32_t raft_rand_range(struct raft_rand *g, uint32_t lo, uint32_t hi);

#endif
