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
 * the WAL), which restore reads as "no such group here"; the id is never used again, so a
 * later node_group_add of a retired id (a stale record replayed) changes nothing.
 *
 * The ring change record (node/reshard.h) drives both: every node applies the newest record it
 * knows, from its own replica of the meta group or pushed by the meta leader with the cluster
 * map (members.c), at start and whenever it changes. Applying is idempotent, so a record
 * learned twice, or again after a restart, changes nothing.
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

/* Whether slot id holds the marker a retired replica leaves (an empty configuration at applied
 * index 0). A replica made for a leader's message and never initialized leaves the same one
 * (move.c): such a group is then made again by the leader's next message, not by the record. */
static bool retired_here(struct node *n, uint32_t id)
{
	struct kv_group_meta km;
	return kv_meta(n->kv, id, &km) == KV_OK && km.has_conf && km.applied_index == 0 &&
	       km.conf.n_voters == 0 && km.conf.n_learners == 0;
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
	if (retired_here(n, id))
		return NODE_OK; /* retired: ids are never used again */
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

/* Whether the ring change record this node knows says id g was retired: every id after the
 * meta group's up to id_high was taken by some change, and one that is in neither ring the
 * record keeps alive (the old one unless COMPLETE, the new one unless ABANDONED) is gone. */
static bool retired_by_record(const struct node *n, uint64_t g)
{
	const struct node_reshard *r = n->reshard;
	if (r == NULL || g <= node_meta_id(n) || g > r->id_high)
		return false;
	enum kv_reshard_outcome o = kv_reshard_outcome(r->change);
	bool live = (o != KV_RESHARD_ABANDONED && kv_ring_has(r->change->to, (uint32_t)g)) ||
		    (o != KV_RESHARD_COMPLETE && kv_ring_has(r->change->from, (uint32_t)g));
	return !live;
}

struct node_group *node_group_added_for_msg(struct node *n, uint64_t group, uint64_t from,
					    enum raft_msg_type type, raft_term term)
{
	struct node_group *g = node_group_slot(n, group);
	if (g == NULL || g->exists || group <= node_meta_id(n))
		return NULL;
	/* A leader of a group retired here that has not learned it yet (the record reaches
	 * nodes at different times): it must not bring the replica back, or nothing would ever
	 * retire it again. */
	if (retired_by_record(n, group))
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

/* ------------------------------------------------------------------------------ the record */

static bool ring_equal(const struct kv_ring *a, const struct kv_ring *b)
{
	size_t na, nb;
	const uint32_t *ia = kv_ring_ids(a, &na), *ib = kv_ring_ids(b, &nb);
	return na == nb && memcmp(ia, ib, na * sizeof *ia) == 0 &&
	       kv_ring_epoch(a) == kv_ring_epoch(b);
}

/* Makes this node what n->reshard says: its groups created or retired, its ring the one in
 * effect. Idempotent. */
static void apply_record(struct node *n)
{
	const struct node_reshard *r = n->reshard;
	enum kv_reshard_outcome o = kv_reshard_outcome(r->change);
	for (size_t i = 0; i < r->n_places; i++) {
		const struct node_reshard_place *p = &r->places[i];
		if (o == KV_RESHARD_ABANDONED) {
			/* the change was rolled back before any key moved: its groups go */
			if (node_group(n, p->group) != NULL)
				(void)node_group_remove(n, p->group);
			continue;
		}
		int rc = node_group_add(n, p->group, p->replicas, p->n_replicas);
		if (rc != NODE_OK)
			node_log(NODE_LOG_ERROR, p->group,
				 "cannot create the group the ring change adds error=\"%s\"",
				 node_strerror(rc));
	}
	if (o == KV_RESHARD_COMPLETE) {
		/* a removal done: the groups it took out of the ring retire */
		size_t nf;
		const uint32_t *fi = kv_ring_ids(r->change->from, &nf);
		for (size_t i = 0; i < nf; i++) {
			struct node_group *g = node_group(n, fi[i]);
			if (g == NULL || kv_ring_has(r->change->to, fi[i]))
				continue;
			if (g->added)
				(void)node_group_remove(n, fi[i]);
			else
				node_log(NODE_LOG_WARN, fi[i],
					 "a bootstrap group left the ring: its replica stays (it "
					 "holds no keys)");
		}
	}
	const struct kv_ring *eff = node_reshard_ring(r, n->ring);
	if (!ring_equal(eff, n->ring)) {
		size_t ne;
		const uint32_t *ids = kv_ring_ids(eff, &ne);
		int rc = node_ring_set(n, ids, ne, kv_ring_epoch(eff));
		if (rc != NODE_OK)
			node_log(NODE_LOG_ERROR, 0, "cannot take the ring in effect error=\"%s\"",
				 node_strerror(rc));
	}
}

/* Takes r (owned) with its packed form when it is newer than the record known, and applies
 * it; otherwise frees it. */
static void take_record(struct node *n, struct node_reshard *r, const void *data, size_t len)
{
	if (!node_reshard_newer(r, n->reshard)) {
		/* the same record again (pushed every NODE_MAP_PUSH_MS): applied again, which is
		 * idempotent, so that a group made again meanwhile is retired again */
		if (!node_reshard_newer(n->reshard, r))
			apply_record(n);
		node_reshard_free(r);
		return;
	}
	uint8_t *bytes = malloc(len ? len : 1);
	Ringraft__Kv__RingChange *pb = ringraft__kv__ring_change__unpack(NULL, len, data);
	if (bytes == NULL || pb == NULL) {
		free(bytes);
		if (pb != NULL)
			ringraft__kv__ring_change__free_unpacked(pb, NULL);
		node_reshard_free(r);
		node_log(NODE_LOG_ERROR, 0, "out of memory taking the ring change record");
		return;
	}
	memcpy(bytes, data, len);
	node_ring_record_free(n);
	n->reshard = r;
	n->reshard_moving = kv_reshard_outcome(r->change) == KV_RESHARD_MOVING ? r->change : NULL;
	n->reshard_bytes = bytes;
	n->reshard_len = len;
	n->reshard_pb = pb;
	char what[256];
	node_reshard_describe(r, what, sizeof what);
	node_log(NODE_LOG_WARN, 0, "ring change record %s", what);
	apply_record(n);
}

/* Whether data is the record this node has (checked when it was taken): it is applied again,
 * idempotently, as take_record does, without decoding it again (decoding plans the change
 * again, which costs more than the rest of a reload). */
static bool same_record(const struct node *n, const void *data, size_t len)
{
	return n->reshard != NULL && len == n->reshard_len &&
	       memcmp(data, n->reshard_bytes, len) == 0;
}

void node_ring_record_reload(struct node *n)
{
	struct node_group *g = node_group(n, node_meta_id(n));
	if (g == NULL || g->raft == NULL || raft_recovering(g->raft))
		return;
	raft_index applied = raft_applied_of(g->raft);
	if (applied == n->reshard_applied)
		return;
	n->reshard_applied = applied;
	void *value = NULL;
	size_t len = 0;
	int rc =
		kv_get(n->kv, g->id, NODE_RESHARD_KEY, NODE_RESHARD_KEY_LEN, 0, &value, &len, NULL);
	if (rc == KV_NOT_FOUND)
		return;
	if (rc == KV_ECORRUPT) {
		node_group_damaged(n, g, "reading the ring change record");
		return;
	}
	if (rc != KV_OK) {
		node_log(NODE_LOG_ERROR, g->id, "cannot read the ring change record error=\"%s\"",
			 kv_strerror(rc));
		return;
	}
	if (same_record(n, value, len)) {
		free(value);
		apply_record(n);
		return;
	}
	struct node_reshard *r;
	rc = node_reshard_decode(value, len, &r);
	if (rc != NODE_OK)
		node_log(NODE_LOG_ERROR, g->id,
			 "the stored ring change record does not check out: not used");
	else
		take_record(n, r, value, len);
	free(value);
}

void node_ring_record_received(struct node *n, uint64_t from, const void *data, size_t len)
{
	if (same_record(n, data, len)) {
		apply_record(n);
		return;
	}
	struct node_reshard *r;
	if (node_reshard_decode(data, len, &r) != NODE_OK) {
		node_log(NODE_LOG_WARN, 0, "malformed ring change record from=%llu: not used",
			 (unsigned long long)from);
		return;
	}
	take_record(n, r, data, len);
}

void node_ring_record_free(struct node *n)
{
	node_reshard_free(n->reshard);
	n->reshard = NULL;
	n->reshard_moving = NULL;
	free(n->reshard_bytes);
	n->reshard_bytes = NULL;
	n->reshard_len = 0;
	if (n->reshard_pb != NULL)
		ringraft__kv__ring_change__free_unpacked(n->reshard_pb, NULL);
	n->reshard_pb = NULL;
}

int node_ring_change_outcome(struct node *n, uint64_t *to_epoch)
{
	if (n->reshard == NULL) {
		*to_epoch = 0;
		return 0;
	}
	*to_epoch = kv_ring_epoch(n->reshard->change->to);
	return (int)kv_reshard_outcome(n->reshard->change);
}
