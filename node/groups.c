/* groups.c — groups created and retired while the node runs (issue 18, docs/DESIGN-NOTES.md
 * "Resharding"). The key groups 1..G and the meta group G + 1 exist from the start; a group
 * added later takes an id after the meta group's and a slot of the same number in n->groups
 * (sized at open to node_group_id_max), so a lookup stays one index (node_group).
 *
 * Persistence. The WAL is the record that an added group exists on this node: creating it
 * writes the group's initial configuration as a snapshot marker at index 0 into the turn's
 * batch (wal_batch_snapshot), which WAL compaction restates like any group's marker. A
 * replica hosted here also gets a recovering hard state, exactly what a bootstrap group of a
 * new data directory starts from: term 0, empty log, every replica recovering, so they all
 * leave recovery together (no voter has a term yet; raft/recovery.c). A node that does not
 * host the group records only the marker (its hosts, so that it forwards the group's
 * requests). At start, node_groups_restore_added brings back each added group the WAL names.
 * Creation is durable with the batch that follows the call: a crash before that loses it, and
 * whoever asked (the meta group's ring record, later) asks again; a replica that missed it is
 * also made by the group's leader's first message (move.c), as for a moved replica.
 *
 * Retiring. The replica is emptied and an empty configuration left as its marker (LMDB and
 * the WAL), which restore reads as "no such group here"; the id is never used again.
 */
#include <stdlib.h>
#include <string.h>

#include "node/node_int.h"

void node_group_slot_open(struct node *n, struct node_group *g)
{
	uint32_t id = (uint32_t)(g - n->groups) + 1;
	g->id = id;
	g->owner = n;
	g->exists = true;
	g->added = id > node_meta_id(n);
	if (id > n->groups_end)
		n->groups_end = id;
}

/* Clears a slot that holds no core (never used, or retired) for a new group. It may still be
 * listed in n->awake until the end of the turn (driver.c prunes slots without a core): the
 * flag stays, so the slot is never listed twice. */
static void slot_clear(struct node_group *g)
{
	bool awake = g->awake;
	memset(g, 0, sizeof *g);
	g->awake = awake;
}

static bool conf_of_replicas(const uint64_t *replicas, size_t n_replicas, struct raft_conf *c)
{
	memset(c, 0, sizeof *c);
	if (n_replicas == 0 || n_replicas > RAFT_NODES_MAX)
		return false;
	for (size_t i = 0; i < n_replicas; i++) {
		if (replicas[i] == 0 || node_conf_has(c, replicas[i]))
			return false;
		c->voters[c->n_voters++] = replicas[i];
	}
	return true;
}

int node_group_add(struct node *n, uint32_t id, const uint64_t *replicas, size_t n_replicas)
{
	struct raft_conf conf;
	if (id <= node_meta_id(n) || id > n->groups_cap ||
	    !conf_of_replicas(replicas, n_replicas, &conf))
		return NODE_EINVAL;
	struct node_group *g = &n->groups[id - 1];
	if (g->exists)
		return NODE_OK; /* asked again (a replayed ring record, a restart): nothing to do */
	if (n->stopping)
		return NODE_EINVAL;
	slot_clear(g);
	node_group_slot_open(n, g);
	if (node_conf_has(&conf, n->cfg.id)) {
		/* the bootstrap of one group: an empty replica, recovering, at term 0 */
		node_group_empty(n, g, &conf, false, "creating a group");
		node_group_start_recovering(n, g, &conf, 0);
		g->hosted = true;
		g->was_member = true;
		g->leader_msg_tick = n->ticks;
	} else if (wal_batch_snapshot(n->cur->b, id, 0, 0, &conf) != WAL_OK) {
		node_fatal(n, id, "out of memory recording a group");
	}
	node_group_hosts_from(g, &conf);
	node_log(NODE_LOG_INFO, id, "group created hosted=%d replicas=%zu", g->hosted, n_replicas);
	return NODE_OK;
}

struct node_group *node_group_added_for_msg(struct node *n, uint64_t group, uint64_t from,
					    enum raft_msg_type type, raft_term term)
{
	struct node_group *g = node_group_slot(n, group);
	if (g == NULL || g->exists || group <= node_meta_id(n))
		return NULL;
	slot_clear(g);
	node_group_slot_open(n, g);
	if (!node_group_create(n, g, from, type, term)) {
		slot_clear(g); /* not a leader's message: still no such group */
		return NULL;
	}
	return g;
}

int node_group_remove(struct node *n, uint32_t id)
{
	struct node_group *g = node_group(n, id);
	if (g == NULL || !g->added)
		return NODE_EINVAL;
	struct raft_conf none = {0};
	/* with its core: requests waiting on it answered, snapshot streams closed, held
	 * acknowledgements dropped; LMDB emptied, the empty marker in LMDB and the WAL */
	node_group_empty(n, g, &none, true, "retiring a group");
	g->retire = false;
	g->hosted = false;
	g->exists = false;
	g->n_hosts = 0;
	g->leader_hint = 0;
	g->recovering = false;
	node_log(NODE_LOG_WARN, id, "group retired: its replica here is removed");
	return NODE_OK;
}

bool node_group_exists(struct node *n, uint32_t id, bool *hosted)
{
	struct node_group *g = node_group(n, id);
	if (hosted != NULL)
		*hosted = g != NULL && g->raft != NULL;
	return g != NULL;
}

int node_ring_set(struct node *n, const uint32_t *ids, size_t n_ids, uint64_t epoch)
{
	if (n_ids == 0 || epoch == 0)
		return NODE_EINVAL;
	for (size_t i = 0; i < n_ids; i++)
		if (ids[i] == 0 || ids[i] == node_meta_id(n) || ids[i] > n->groups_cap)
			return NODE_EINVAL;
	struct kv_ring *r = kv_ring_from_ids(ids, n_ids, NODE_VNODES, epoch);
	if (r == NULL)
		return NODE_EINVAL;
	kv_ring_free(n->ring);
	n->ring = r;
	return NODE_OK;
}

int node_groups_restore_added(struct node *n)
{
	/* the WAL's groups, in its order (deterministic for the same files) */
	for (size_t i = 0; i < wal_group_count(n->wal); i++) {
		const struct wal_group_state *ws = wal_group_at(n->wal, i);
		if (ws->group <= node_meta_id(n))
			continue;
		if (ws->group > n->groups_cap) {
			node_log(NODE_LOG_ERROR, 0,
				 "the WAL holds group %llu, beyond the %u ids this node has room "
				 "for "
				 "(--groups %u + %u added): start it with the --groups it had",
				 (unsigned long long)ws->group, n->groups_cap, n->cfg.groups,
				 NODE_GROUPS_ADDED_MAX);
			return NODE_ESTORE;
		}
	}
	return NODE_OK;
}
