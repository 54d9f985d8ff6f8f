/* members.c — the cluster map: who the members are, kept in the meta group (node_int.h).
 *
 * The bootstrap members are the --cluster list every node has in its cluster.conf (they hold
 * the groups' bootstrap placement and define the cluster id). Everything since — a member
 * added, a member removed — is a record in the meta group, one key per member
 * ("member/<20-digit id>", the value a packed ringraft.kv.NodeInfo), written by the meta
 * group's leader with a compare-and-set, so every replica of the meta group applies the same
 * history. An id once removed stays removed: its record is never deleted, and an add of that
 * id is refused (a replaced machine comes back under a new id, the way etcd gives a new
 * member a new id).
 *
 * A member leaving (MEMBER_LEAVE, kvctl member remove's first step) is still a member: it
 * holds replicas and votes while the balancer (rebalance.c) moves them to the others; once it
 * holds none, MEMBER_REMOVE removes it.
 *
 * The map's epoch is the sum over records of their version (1 added, 2 leaving, 3 removed):
 * every change raises it by at least one, and every replica computes the same epoch from the same state. Nodes that
 * do not host the meta group learn the map from its leader, which sends it (MemberMap, a
 * PeerFrame field) to every connected member when it changes and every NODE_MAP_PUSH_MS; a
 * node takes a map only when its epoch is higher than the one it has. The engine keeps the map
 * in cfg.members (bootstrap members first, then added ones in the order learned; a removed
 * member keeps its slot, flagged) and tells the shell through io.members_changed, which dials
 * new peers, forgets removed ones and saves DIR/members.conf for the next start.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/node_int.h"

#define MEMBER_KEY_PREFIX "member/"
#define MEMBER_KEY_END    "member0" /* '/' + 1: the end of the prefix's range */
#define MEMBER_KEY_LEN    27        /* prefix + 20 digits */

static void member_key(uint64_t id, char out[MEMBER_KEY_LEN + 1])
{
	snprintf(out, MEMBER_KEY_LEN + 1, MEMBER_KEY_PREFIX "%020" PRIu64, id);
}

bool node_member_live(const struct node *n, uint64_t id)
{
	int mi = node_config_member_index(&n->cfg, id);
	return mi >= 0 && !n->cfg.members[mi].removed;
}

/* A record's version: 1 added (up), 2 leaving (its replicas move away), 3 removed. A record
 * only ever moves up that list, so the epoch, their sum, only grows. */
static uint64_t record_version(const Ringraft__Kv__NodeInfo *m)
{
	return m->removed ? 3 : m->leaving ? 2 : 1;
}

/* A record is usable when its id matches its key and its addresses fit. */
static bool record_ok(const Ringraft__Kv__NodeInfo *m, uint64_t key_id)
{
	return m->id != 0 && m->id <= UINT32_MAX && m->id == key_id && m->peer_addr != NULL &&
	       m->client_addr != NULL && m->peer_addr[0] != '\0' &&
	       strlen(m->peer_addr) < NODE_ADDR_MAX && strlen(m->client_addr) < NODE_ADDR_MAX;
}

/* Takes the records (the meta group's state, or a map a peer sent) into cfg.members. */
static void take_map(struct node *n, Ringraft__Kv__NodeInfo *const *recs, size_t k,
		     uint64_t epoch)
{
	if (epoch <= n->members_epoch)
		return;
	bool self_removed = false;
	for (size_t i = 0; i < k; i++) {
		const Ringraft__Kv__NodeInfo *m = recs[i];
		int mi = node_config_member_index(&n->cfg, m->id);
		if (mi < 0) {
			if (n->cfg.n_members >= NODE_NODES_MAX) {
				node_log(NODE_LOG_ERROR, 0,
					 "cluster map names more than %d members: member %llu "
					 "ignored",
					 NODE_NODES_MAX, (unsigned long long)m->id);
				continue;
			}
			mi = (int)n->cfg.n_members++;
			struct node_member *nm = &n->cfg.members[mi];
			memset(nm, 0, sizeof *nm);
			nm->id = m->id;
			snprintf(nm->peer_addr, sizeof nm->peer_addr, "%s", m->peer_addr);
			nm->removed = m->removed;
			nm->leaving = m->leaving;
			if (m->client_addr[0] != '\0')
				(void)node_addrbook_set(&n->addrs, &n->cfg, m->id, m->client_addr);
			node_log(NODE_LOG_WARN, 0, "member %s id=%llu peer_addr=%s client_addr=%s",
				 m->removed ? "known removed" : "added", (unsigned long long)m->id,
				 m->peer_addr, m->client_addr);
		} else if (m->removed && !n->cfg.members[mi].removed) {
			n->cfg.members[mi].removed = true;
			node_log(NODE_LOG_WARN, 0, "member removed id=%llu",
				 (unsigned long long)m->id);
		} else if (m->leaving && !n->cfg.members[mi].leaving) {
			node_log(NODE_LOG_WARN, 0,
				 "member leaving id=%llu: its replicas move to the others",
				 (unsigned long long)m->id);
		}
		n->cfg.members[mi].leaving = m->leaving || m->removed;
		if (m->removed && m->id == n->cfg.id)
			self_removed = true;
	}
	n->members_epoch = epoch;
	if (self_removed)
		node_log(NODE_LOG_WARN, 0,
			 "this node was removed from the cluster (member remove): it serves and "
			 "votes no more");
	if (n->io.members_changed != NULL)
		n->io.members_changed(n->io.arg, self_removed);
}

struct scan_ctx {
	Ringraft__Kv__NodeInfo *recs[NODE_NODES_MAX * 2];
	size_t k;
	uint64_t epoch;
	bool bad;
};

static int scan_cb(const void *key, size_t kl, const void *v, size_t vl, void *arg)
{
	struct scan_ctx *x = arg;
	char kbuf[MEMBER_KEY_LEN + 1];
	if (kl != MEMBER_KEY_LEN || x->k >= sizeof x->recs / sizeof x->recs[0]) {
		x->bad = true;
		return 0;
	}
	memcpy(kbuf, key, kl);
	kbuf[kl] = '\0';
	uint64_t id = strtoull(kbuf + strlen(MEMBER_KEY_PREFIX), NULL, 10);
	Ringraft__Kv__NodeInfo *m = ringraft__kv__node_info__unpack(NULL, vl, v);
	if (m == NULL || !record_ok(m, id)) {
		if (m != NULL)
			ringraft__kv__node_info__free_unpacked(m, NULL);
		x->bad = true;
		return 0;
	}
	x->recs[x->k++] = m;
	x->epoch += record_version(m);
	return 0;
}

void node_members_reload(struct node *n)
{
	node_auth_refresh(n); /* client authentication's state is in the meta group too */
	node_ring_record_reload(n); /* and the ring change record (groups.c) */
	struct node_group *g = node_group(n, node_meta_id(n));
	if (g == NULL || g->raft == NULL || raft_recovering(g->raft))
		return;
	raft_index applied = raft_applied_of(g->raft);
	if (applied == n->members_applied)
		return;
	n->members_applied = applied;
	struct scan_ctx x = {0};
	void *next = NULL;
	size_t next_len = 0;
	int rc = kv_scan(n->kv, g->id, 0, MEMBER_KEY_PREFIX, strlen(MEMBER_KEY_PREFIX),
			 MEMBER_KEY_END, strlen(MEMBER_KEY_END), NODE_NODES_MAX * 2, scan_cb, &x,
			 &next, &next_len);
	free(next);
	if (rc == KV_ECORRUPT)
		node_group_damaged(n, g, "reading the cluster map");
	else if (rc != KV_OK || x.bad)
		node_log(NODE_LOG_ERROR, g->id, "cannot read the cluster map error=\"%s\"",
			 rc != KV_OK ? kv_strerror(rc) : "a malformed member record");
	else if (x.epoch > n->members_epoch) {
		take_map(n, x.recs, x.k, x.epoch);
		node_members_push(n);
	}
	for (size_t i = 0; i < x.k; i++)
		ringraft__kv__node_info__free_unpacked(x.recs[i], NULL);
}

/* The map as this node knows it: every member added after bootstrap, every one removed. */
static size_t map_records(struct node *n, Ringraft__Kv__NodeInfo *infos,
			  Ringraft__Kv__NodeInfo **ptrs)
{
	size_t k = 0;
	for (size_t i = 0; i < n->cfg.n_members; i++) {
		const struct node_member *m = &n->cfg.members[i];
		if (i < n->cfg.n_boot && !m->removed && !m->leaving)
			continue;
		ringraft__kv__node_info__init(&infos[k]);
		infos[k].id = m->id;
		infos[k].peer_addr = (char *)m->peer_addr;
		infos[k].client_addr = (char *)node_client_addr_of(n, m->id);
		infos[k].removed = m->removed;
		infos[k].leaving = m->leaving && !m->removed;
		ptrs[k] = &infos[k];
		k++;
	}
	return k;
}

/* Sends the map to `to`, or to every connected member when to is 0. */
static void send_map(struct node *n, uint64_t to_one)
{
	Ringraft__Kv__NodeInfo infos[NODE_NODES_MAX], *ptrs[NODE_NODES_MAX];
	Ringraft__Kv__MemberMap map = RINGRAFT__KV__MEMBER_MAP__INIT;
	map.epoch = n->members_epoch;
	map.members = ptrs;
	map.n_members = map_records(n, infos, ptrs);
	/* the ring change record rides along (issue 18): nodes without a meta replica learn
	 * from it which groups to create (groups.c); it is bounded by KV_RESHARD_RANGES_MAX */
	map.ring_change.data = n->reshard_bytes;
	map.ring_change.len = n->reshard_len;
	uint8_t small[NODE_NODES_MAX * (2 * NODE_ADDR_MAX + 32) + 32];
	uint8_t *buf = small;
	size_t len = ringraft__kv__member_map__get_packed_size(&map);
	if (len > sizeof small && (map.ring_change.len == 0 || (buf = malloc(len)) == NULL))
		return;
	ringraft__kv__member_map__pack(&map, buf);
	/* removed members too: that is how they learn they were removed */
	for (size_t i = 0; i < n->cfg.n_members; i++) {
		uint64_t to = n->cfg.members[i].id;
		if (to != n->cfg.id && (to_one == 0 || to == to_one) && node_peer_is_up(n, to))
			(void)n->io.peer_send_packed(n->io.arg, to, NODE_FIELD_MEMBERS, buf, len);
	}
	if (buf != small)
		free(buf);
}

void node_members_push(struct node *n)
{
	struct node_group *g = node_group(n, node_meta_id(n));
	if (g == NULL || g->raft == NULL || raft_role_of(g->raft) != RAFT_LEADER)
		return;
	send_map(n, 0); /* even the bootstrap map: it says who leads the meta group */
	node_auth_push(n); /* and client authentication's state (auth.c) */
}

void node_members_tell_removed(struct node *n, uint64_t id)
{
	/* any node, not only the meta leader: the map it holds is committed state */
	if (n->members_epoch != 0 && node_config_member_index(&n->cfg, id) >= 0)
		send_map(n, id);
}

void node_members_received(struct node *n, uint64_t from, const ProtobufCBinaryData *b)
{
	/* only the meta group's leader sends maps to all (node_members_push): where to send
	 * configuration reports (rebalance.c), whatever the map's epoch */
	n->meta_leader_hint = from;
	Ringraft__Kv__MemberMap *m = ringraft__kv__member_map__unpack(NULL, b->len, b->data);
	if (m == NULL || m->n_members > NODE_NODES_MAX) {
		node_log(NODE_LOG_WARN, 0, "malformed cluster map from=%llu",
			 (unsigned long long)from);
		if (m != NULL)
			ringraft__kv__member_map__free_unpacked(m, NULL);
		return;
	}
	uint64_t epoch = 0;
	for (size_t i = 0; i < m->n_members; i++) {
		if (!record_ok(m->members[i], m->members[i]->id)) {
			node_log(NODE_LOG_WARN, 0, "malformed cluster map from=%llu",
				 (unsigned long long)from);
			ringraft__kv__member_map__free_unpacked(m, NULL);
			return;
		}
		epoch += record_version(m->members[i]);
	}
	if (epoch == m->epoch)
		take_map(n, m->members, m->n_members, m->epoch);
	else
		node_log(NODE_LOG_WARN, 0, "cluster map with a wrong epoch from=%llu",
			 (unsigned long long)from);
	if (m->ring_change.len > 0) /* taken when newer than ours, whatever the map's epoch */
		node_ring_record_received(n, from, m->ring_change.data, m->ring_change.len);
	ringraft__kv__member_map__free_unpacked(m, NULL);
}

int node_members_load(struct node *n, const Ringraft__Kv__MemberMap *m)
{
	uint64_t epoch = 0;
	if (m->n_members > NODE_NODES_MAX)
		return -1;
	for (size_t i = 0; i < m->n_members; i++) {
		if (!record_ok(m->members[i], m->members[i]->id))
			return -1;
		epoch += record_version(m->members[i]);
	}
	if (epoch != m->epoch)
		return -1;
	take_map(n, m->members, m->n_members, m->epoch);
	return 0;
}

size_t node_members_map(struct node *n, Ringraft__Kv__NodeInfo *infos,
			Ringraft__Kv__NodeInfo **ptrs, uint64_t *epoch)
{
	*epoch = n->members_epoch;
	return map_records(n, infos, ptrs);
}

void node_members_tick(struct node *n)
{
	uint64_t every = NODE_MAP_PUSH_MS / n->cfg.tick_ms;
	if (every == 0 || n->ticks % every == 0)
		node_members_push(n);
}

/* ------------------------------------------------------------------------------ requests */

/* Checks a MEMBER_ADD or MEMBER_REMOVE where it arrives (and again at the meta leader): NULL,
 * or why it is refused. */
const char *node_members_check(struct node *n, const Ringraft__Kv__Request *rq)
{
	if (rq->op == RINGRAFT__KV__OP__MEMBER_ADD) {
		const Ringraft__Kv__NodeInfo *m = rq->member;
		if (m == NULL || m->id == 0 || m->id > UINT32_MAX)
			return "member add: the new member's id must be 1..4294967295";
		if (m->peer_addr == NULL || m->client_addr == NULL || m->peer_addr[0] == '\0' ||
		    m->client_addr[0] == '\0' || strlen(m->peer_addr) >= NODE_ADDR_MAX ||
		    strlen(m->client_addr) >= NODE_ADDR_MAX || strchr(m->peer_addr, ':') == NULL ||
		    strchr(m->client_addr, ':') == NULL)
			return "member add: the peer and client addresses must be host:port";
		if (m->removed)
			return "member add: the new member cannot be marked removed";
		int mi = node_config_member_index(&n->cfg, m->id);
		if (mi >= 0)
			return n->cfg.members[mi].removed
				       ? "member add: that id was removed from the cluster and is "
					 "never used again: give the new node a new id"
				       : "member add: that id is a member already";
		for (size_t i = 0; i < n->cfg.n_members; i++) {
			/* a removed member's address may be reused (a new machine, a new id) */
			if (!n->cfg.members[i].removed &&
			    strcmp(n->cfg.members[i].peer_addr, m->peer_addr) == 0)
				return "member add: another member has that peer address";
		}
		if (n->cfg.n_members >= NODE_NODES_MAX)
			return "member add: the cluster map is full (16 members, removed ones "
			       "included)";
		return NULL;
	}
	if (rq->op == RINGRAFT__KV__OP__MEMBER_LEAVE) {
		if (!node_member_live(n, rq->target))
			return "member leave: no such member (or removed already)";
		int mi = node_config_member_index(&n->cfg, rq->target);
		if (n->cfg.members[mi].leaving)
			return "member leave: the member is leaving already";
		size_t staying = 0;
		for (size_t i = 0; i < n->cfg.n_members; i++)
			staying += !n->cfg.members[i].removed && !n->cfg.members[i].leaving;
		if (staying <= NODE_REPLICAS)
			return "member leave: the other members could not hold three replicas of "
			       "every group";
		return NULL;
	}
	if (!node_member_live(n, rq->target))
		return "member remove: no such member (or removed already)";
	/* Its replicas must have moved away first (kvctl member remove drains it): a member
	 * still in a group's configuration would take its vote with it. Checked against the
	 * configuration of every group hosted here (the meta group's leader checks again);
	 * groups hosted elsewhere are known here only by a possibly stale host list, so for them
	 * the drain kvctl runs first is what holds. */
	uint64_t now = node_now_ms(n);
	for (uint32_t i = 0; i < node_groups_all(n); i++) {
		const struct node_group *g = &n->groups[i];
		if (!g->exists)
			continue; /* an id not in use (node_int.h) */
		if (g->raft != NULL && node_conf_has(raft_conf_of(g->raft), rq->target))
			return "member remove: the member still holds replicas: move them away "
			       "first (kvctl member drain)";
		/* the groups hosted elsewhere, as their leaders last reported (rebalance.c): a
		 * committed configuration reported lately, without the member */
		const struct node_conf_report *r = &n->rebalance.reports[i];
		if (g->raft != NULL && raft_role_of(g->raft) == RAFT_LEADER)
			continue; /* its own configuration, above */
		if (r->at_ms == 0 || now > r->at_ms + NODE_REPORT_STALE_MS)
			return "member remove: the configuration of some group is not known here "
			       "now: try again";
		for (uint32_t k = 0; k < r->n_voters; k++)
			if (r->voters[k] == rq->target)
				return "member remove: the member still holds replicas: move them "
				       "away first (kvctl member drain)";
		for (uint32_t k = 0; k < r->n_learners; k++)
			if (r->learners[k] == rq->target)
				return "member remove: the member still holds replicas: move them "
				       "away first (kvctl member drain)";
	}
	return NULL;
}

/* The command the meta leader proposes for a member request: a compare-and-set of the
 * member's record. 0 with the key and the packed value in out_*, or < 0 with *why. */
int node_members_cmd(struct node *n, const Ringraft__Kv__Request *rq, struct kv_cmd *c,
		     char key[MEMBER_KEY_BUF], uint8_t **value, void **old, const char **why)
{
	Ringraft__Kv__NodeInfo rec = RINGRAFT__KV__NODE_INFO__INIT;
	*old = NULL;
	*value = NULL;
	c->op = KV_OP_CAS;
	if (rq->op == RINGRAFT__KV__OP__MEMBER_ADD) {
		rec.id = rq->member->id;
		rec.peer_addr = rq->member->peer_addr;
		rec.client_addr = rq->member->client_addr;
		c->expect_absent = true;
	} else {
		uint64_t id = rq->target;
		int mi = node_config_member_index(&n->cfg, id);
		if (mi < 0) {
			*why = "member remove: no such member";
			return -1;
		}
		rec.id = id;
		rec.peer_addr = n->cfg.members[mi].peer_addr;
		rec.client_addr = (char *)node_client_addr_of(n, id);
		rec.removed = rq->op == RINGRAFT__KV__OP__MEMBER_REMOVE;
		rec.leaving = rq->op == RINGRAFT__KV__OP__MEMBER_LEAVE;
		member_key(id, key);
		size_t old_len = 0;
		int rc = kv_get(n->kv, node_meta_id(n), key, MEMBER_KEY_LEN, 0, old, &old_len,
				NULL);
		if (rc == KV_NOT_FOUND) {
			c->expect_absent = true; /* a bootstrap member: no record yet */
		} else if (rc == KV_OK) {
			c->expected = *old;
			c->expected_len = old_len;
		} else {
			*why = kv_strerror(rc);
			return -1;
		}
	}
	member_key(rec.id, key);
	size_t len = ringraft__kv__node_info__get_packed_size(&rec);
	if ((*value = malloc(len ? len : 1)) == NULL) {
		*why = "out of memory";
		return -1;
	}
	ringraft__kv__node_info__pack(&rec, *value);
	c->key = key;
	c->key_len = MEMBER_KEY_LEN;
	c->value = *value;
	c->value_len = len;
	return 0;
}
