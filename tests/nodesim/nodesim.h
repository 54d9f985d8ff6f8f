/* nodesim.h — the whole-node simulator (tests/nodesim/README.md): N node engines
 * (node/engine.h) over the real wal/ and kv/ on a tmpfs directory per node, a simulated network
 * with TCP's per-link order, a disk that writes a WAL batch only when the simulated fsync ends
 * (so a crash loses what was not yet durable), one virtual clock, simulated clients whose
 * history jepsen-lite's checker judges. One 64-bit seed decides everything; a failing seed
 * prints the command that replays it.
 */
#ifndef RINGRAFT_NODESIM_H
#define RINGRAFT_NODESIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NS_NODES_MAX   5
#define NS_CLIENTS_MAX 8
#define NS_KEYS_MAX    8

struct ns_opts {
	uint64_t seed;
	bool trace;       /* every event on stderr, engines' logs at info */
	const char *root; /* where node directories go (default /dev/shm) */
};

/* What a run found. */
struct ns_result {
	bool ok;
	char why[512];      /* the first failure */
	uint64_t hash;      /* of the history and the event count: replay compares it */
	size_t ops, ok_ops; /* client operations completed, and of those ok */
	size_t events;
	int nodes, groups;
	const char *mix;
};

/* Runs one seed (world.c). */
void ns_run(const struct ns_opts *o, struct ns_result *r);

/* The directory a run of seed in process pid keeps its nodes in (root NULL: /dev/shm). */
void ns_root_path(char *buf, size_t len, const char *root, int pid, uint64_t seed);
/* Removes it (the sweep does, for a child that died before it could). */
void ns_remove_root(const char *root, int pid, uint64_t seed);

#endif
