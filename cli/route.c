/* route.c — the routing cache (route.h). A leader learned from a hint that names no address
 * is resolved through the ring's node list; a leader whose address is unknown is "unknown", so
 * the caller falls back to trying endpoints in turn instead of guessing.
 */
#include "cli/route.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

void cli_route_init(struct cli_route *r)
{
	memset(r, 0, sizeof *r);
}

void cli_route_free(struct cli_route *r)
{
	kv_ring_free(r->ring);
	r->ring = NULL;
}

static void forget_all(struct cli_route *r)
{
	memset(r->leader, 0, sizeof r->leader);
	for (size_t g = 0; g <= CLI_GROUPS_MAX; g++)
		r->leader_addr[g][0] = '\0';
}

/* Whether the ring's ids are exactly the set marked in `in` (n of them). */
static bool same_ids(const struct kv_ring *ring, const bool *in, size_t n)
{
	size_t have;
	const uint32_t *ids = kv_ring_ids(ring, &have);
	if (have != n)
		return false;
	for (size_t i = 0; i < have; i++)
		if (!in[ids[i]])
			return false;
	return true;
}

int cli_route_set_ring(struct cli_route *r, uint64_t epoch, uint32_t groups, const uint32_t *ids,
		       size_t n_ids, uint32_t vnodes, const struct cli_ring_node *nodes,
		       size_t n_nodes)
{
	if (n_ids == 0)
		n_ids = groups, ids = NULL; /* a node without group_ids: 1..groups */
	if (n_ids == 0 || vnodes == 0 || n_ids > CLI_GROUPS_MAX)
		return CLI_EINVAL;
	bool in[CLI_GROUPS_MAX + 1] = {0};
	uint32_t list[CLI_GROUPS_MAX];
	for (size_t i = 0; i < n_ids; i++) {
		uint32_t g = ids ? ids[i] : (uint32_t)i + 1;
		if (g == 0 || g > CLI_GROUPS_MAX || in[g])
			return CLI_EINVAL;
		in[g] = true;
		list[i] = g;
	}
	if (r->ring == NULL || r->epoch != epoch || !same_ids(r->ring, in, n_ids) ||
	    r->vnodes != vnodes) {
		struct kv_ring *ring = kv_ring_from_ids(list, n_ids, vnodes, epoch);
		if (ring == NULL)
			return CLI_ENOMEM;
		kv_ring_free(r->ring);
		r->ring = ring;
		r->epoch = epoch;
		r->groups = (uint32_t)n_ids;
		r->vnodes = vnodes;
		forget_all(r);
	}
	if (n_nodes > CLI_NODES_MAX)
		n_nodes = CLI_NODES_MAX;
	memcpy(r->nodes, nodes, n_nodes * sizeof *nodes);
	r->n_nodes = n_nodes;
	return 0;
}

void cli_route_drop_ring(struct cli_route *r)
{
	kv_ring_free(r->ring);
	r->ring = NULL;
	forget_all(r);
}

uint32_t cli_route_group_of(const struct cli_route *r, const void *key, size_t len)
{
	return r->ring ? kv_ring_group_of(r->ring, key, len) : 0;
}

const char *cli_route_node_addr(const struct cli_route *r, uint64_t node_id)
{
	for (size_t i = 0; i < r->n_nodes; i++)
		if (r->nodes[i].id == node_id && r->nodes[i].client_addr[0] != '\0')
			return r->nodes[i].client_addr;
	return NULL;
}

void cli_route_set_leader(struct cli_route *r, uint32_t group, uint64_t node_id, const char *addr)
{
	if (group == 0 || group > CLI_GROUPS_MAX)
		return;
	r->leader[group] = node_id;
	r->leader_addr[group][0] = '\0';
	if (node_id == 0)
		return;
	if (addr == NULL || addr[0] == '\0')
		addr = cli_route_node_addr(r, node_id);
	if (addr != NULL && strlen(addr) < CLI_ADDR_MAX)
		snprintf(r->leader_addr[group], CLI_ADDR_MAX, "%s", addr);
}

void cli_route_forget_leader(struct cli_route *r, uint32_t group, uint64_t node_id)
{
	if (group == 0 || group > CLI_GROUPS_MAX)
		return;
	if (node_id != 0 && r->leader[group] != node_id)
		return;
	r->leader[group] = 0;
	r->leader_addr[group][0] = '\0';
}

const char *cli_route_leader_addr(const struct cli_route *r, uint32_t group)
{
	if (group == 0 || group > CLI_GROUPS_MAX || r->leader_addr[group][0] == '\0')
		return NULL;
	return r->leader_addr[group];
}
