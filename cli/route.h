/* route.h — the client's routing cache: the ring (which group owns a key), the ring's nodes
 * (node id -> client address) and the last known leader of each group. Pure bookkeeping, no
 * I/O: client.c feeds it from STATUS answers, NOT_LEADER hints and WRONG_SHARD rings.
 */
#ifndef RINGRAFT_CLI_ROUTE_H
#define RINGRAFT_CLI_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "cli/client.h"
#include "kv/ring.h"

struct cli_route {
	struct kv_ring *ring; /* NULL until a ring is known; owned */
	uint64_t epoch;
	uint32_t groups, vnodes; /* groups: how many the ring has (their ids: kv_ring_ids) */
	size_t n_nodes;
	struct cli_ring_node nodes[CLI_NODES_MAX];
	uint64_t leader[CLI_GROUPS_MAX + 1];                /* by group; 0 = unknown */
	char leader_addr[CLI_GROUPS_MAX + 1][CLI_ADDR_MAX]; /* "" = unknown */
};

void cli_route_init(struct cli_route *r);
void cli_route_free(struct cli_route *r);
/* Installs a ring config (ids and nodes copied): the ring of group ids ids[0..n_ids) when
 * n_ids > 0 (RingConfig.group_ids), else of groups 1..groups (a node that predates id sets).
 * A different (id set, vnodes, epoch) rebuilds the ring and forgets every leader; the same
 * one only refreshes the node list. 0, CLI_EINVAL (no groups, vnodes 0, more than
 * CLI_GROUPS_MAX groups, an id outside 1..CLI_GROUPS_MAX or repeated) or CLI_ENOMEM (the old
 * ring is kept). */
int cli_route_set_ring(struct cli_route *r, uint64_t epoch, uint32_t groups, const uint32_t *ids,
		       size_t n_ids, uint32_t vnodes, const struct cli_ring_node *nodes,
		       size_t n_nodes);
/* Drops the ring so the next call asks for it again (a WRONG_SHARD without a ring). */
void cli_route_drop_ring(struct cli_route *r);
/* Group of key (an id of the ring), or 0 while no ring is known. */
uint32_t cli_route_group_of(const struct cli_route *r, const void *key, size_t len);
/* Records node_id (0 = unknown) as the leader of group, reachable at addr; addr NULL or ""
 * means "look it up in the ring's nodes". Groups outside 1..CLI_GROUPS_MAX are ignored. */
void cli_route_set_leader(struct cli_route *r, uint32_t group, uint64_t node_id, const char *addr);
/* Forgets the leader of group if it is still node_id, or whatever it is when node_id is 0. */
void cli_route_forget_leader(struct cli_route *r, uint32_t group, uint64_t node_id);
/* The client address of the group's leader, or NULL when unknown. Borrowed from r. */
const char *cli_route_leader_addr(const struct cli_route *r, uint32_t group);
/* The client address of a node of the ring, or NULL. Borrowed from r. */
const char *cli_route_node_addr(const struct cli_route *r, uint64_t node_id);

#endif
