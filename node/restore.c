/* restore.c — rebuilding every group at start from what is durable (raft/raft.h struct
 * raft_restore): the state machine's applied index/term/configuration (kv_meta) is the
 * compaction point, the WAL gives the hard state and the entries after it. A fresh group gets
 * the bootstrap configuration: every node hosting it is a voter.
 *
 * A replica whose durable Raft state is missing (a new or emptied directory) or damaged (WAL
 * records corrupt, entries missing between the state machine and the log) restarts as a
 * *recovering* replica (raft/recovery.c) from what its state machine holds, and its WAL log is
 * reset to that point; the leader sends it the rest. In a brand-new cluster every replica
 * starts so, and they all leave recovery at once (no voter has a term yet).
 */
#include <stdlib.h>
#include <string.h>

#include "node/node_int.h"

/* The nodes hosting group g at bootstrap (every node with <= NODE_REPLICAS nodes; else
 * rendezvous). */
static size_t hosts_of(struct node *n, uint32_t g, uint64_t *out)
{
	/* the bootstrap members only: members added later (members.c) start with nothing and get
	 * replicas by moves */
	uint64_t ids[NODE_NODES_MAX];
	size_t nb = n->cfg.n_boot;
	for (size_t i = 0; i < nb; i++)
		ids[i] = n->cfg.members[i].id;
	if (nb <= NODE_REPLICAS) {
		memcpy(out, ids, nb * sizeof *ids);
		return nb;
	}
	return kv_ring_place(g, ids, nb, NODE_REPLICAS, out);
}

struct chunk {
	struct raft_entry *e;
	size_t n;
};

static int read_log(struct node *n, uint32_t g, raft_index lo, raft_index hi,
		    struct raft_entry **out, size_t *n_out, struct chunk **chunks, size_t *n_chunks)
{
	size_t cap = 0, count = 0, nc = 0, capc = 0;
	struct raft_entry *all = NULL;
	struct chunk *cs = NULL;
	while (lo < hi) {
		struct raft_entry *es;
		size_t k;
		int rc = wal_read_entries(n->wal, g, lo, hi, NODE_READ_BATCH_BYTES, &es, &k);
		if (rc != WAL_OK || k == 0) {
			node_log(NODE_LOG_ERROR, g,
				 "cannot read the log lo=%llu hi=%llu error=\"%s\"",
				 (unsigned long long)lo, (unsigned long long)hi, wal_strerror(rc));
			free(all);
			for (size_t i = 0; i < nc; i++)
				wal_entries_free(cs[i].e, cs[i].n);
			free(cs);
			return NODE_ESTORE;
		}
		if (count + k > cap) {
			cap = (count + k) * 2;
			all = realloc(all, cap * sizeof *all);
		}
		if (nc == capc) {
			capc = capc ? capc * 2 : 8;
			cs = realloc(cs, capc * sizeof *cs);
		}
		if (all == NULL || cs == NULL)
			node_fatal(n, g, "out of memory reading the log");
		memcpy(all + count, es, k * sizeof *es);
		cs[nc++] = (struct chunk){es, k};
		count += k;
		lo = es[k - 1].index + 1;
	}
	*out = all;
	*n_out = count;
	*chunks = cs;
	*n_chunks = nc;
	return 0;
}

struct raft *node_group_raft_new(struct node *n, uint32_t gi, const struct raft_restore *rs)
{
	/* every core its own stream: the shell's seed, the node, the group, and how many cores
	 * came before (a rebuilt group gets a new one) */
	uint64_t seed = n->io.seed ^ (n->cfg.id * 0x9e3779b97f4a7c15ull) ^
			(gi * 0x2545f4914f6cdd1dull) ^ (++n->rafts_made * 0xbf58476d1ce4e5b9ull);
	struct raft_config rc;
	raft_config_default(&rc, n->cfg.id, seed);
	rc.election_ticks = n->cfg.election_ms / n->cfg.tick_ms;
	rc.heartbeat_ticks = n->cfg.heartbeat_ms / n->cfg.tick_ms;
	if (rc.heartbeat_ticks == 0)
		rc.heartbeat_ticks = 1;
	if (rc.election_ticks <= rc.heartbeat_ticks)
		rc.election_ticks = rc.heartbeat_ticks * 2;
	rc.pre_vote = true;
	rc.check_quorum = true;
	rc.lease_reads = n->cfg.lease_reads; /* the shell keeps the clock at real time (shell.c) */
	struct node_group *g = &n->groups[gi - 1];
	rc.quiesce_ticks = n->cfg.quiesce ? rc.election_ticks : 0;
	rc.wake_cb = node_group_wake_cb;
	rc.wake_arg = g;
	g->owner = n;
	g->hs_known = false; /* the new core's first hard state is synced */
	struct raft *r = raft_new(&rc, rs);
	if (r == NULL)
		node_fatal(n, gi, "out of memory creating the group");
	node_group_awake(n, g);
	if (n->cfg.apply_entries_max != 0)
		raft_set_apply_limit(r, n->cfg.apply_entries_max);
	return r;
}

/* An added group's hosts (groups.c): the configuration it was created with, the WAL's marker
 * at index 0, or the one LMDB recorded since (applied, or a retired marker). */
static size_t added_hosts_of(const struct kv_group_meta *km, const struct wal_group_state *ws,
			     uint64_t *out)
{
	const struct raft_conf *c = km->has_conf ? &km->conf : ws != NULL ? &ws->snap_conf : NULL;
	size_t k = 0;
	for (uint32_t i = 0; c != NULL && i < c->n_voters && k < NODE_NODES_MAX; i++)
		out[k++] = c->voters[i];
	for (uint32_t i = 0; c != NULL && i < c->n_learners && k < NODE_NODES_MAX; i++)
		out[k++] = c->learners[i];
	return k;
}

/* Rebuilds group gi (a key group, the meta group, or an added one the WAL names). */
static int restore_group(struct node *n, uint32_t gi, uint32_t *n_set_aside_recovering_out)
{
	uint32_t n_set_aside_recovering = 0;
	{
		struct node_group *g = &n->groups[gi - 1];
		memset(g, 0, sizeof *g);
		node_group_slot_open(n, g);
		bool added = g->added;
		uint64_t *hosts = g->hosts;
		size_t nh = 0;
		if (!added)
			nh = g->n_hosts = hosts_of(n, gi, hosts);
		bool boot_host = false;
		for (size_t i = 0; i < nh; i++)
			if (hosts[i] == n->cfg.id)
				boot_host = true;
		struct kv_group_meta km;
		int rc = kv_meta(n->kv, gi, &km);
		if (rc != KV_OK) {
			node_log(NODE_LOG_ERROR, gi, "cannot read group meta error=\"%s\"",
				 kv_strerror(rc));
			return NODE_ESTORE;
		}
		const struct wal_group_state *ws = wal_group_find(n->wal, gi);
		if (added) {
			/* the configuration it was created with is its bootstrap placement */
			nh = g->n_hosts = added_hosts_of(&km, ws, hosts);
			if (nh == 0) {
				/* retired here (groups.c), or made for a leader's message and never
				 * initialized: no such group on this node */
				memset(g, 0, sizeof *g);
				return 0;
			}
		}
		/* Which groups have a replica here (move.c): one retired (or made for a leader and
		 * not yet initialized) left a configuration with applied index 0, which no applied
		 * group has: not brought back. One that moved here has applied state. With nothing
		 * durable at all (a new or emptied directory), the bootstrap placement decides. */
		if (km.has_conf && km.applied_index == 0) {
			node_group_hosts_from(g, &km.conf);
			return 0;
		}
		bool durable = km.has_conf || km.applied_index > 0 ||
			       (ws != NULL && (ws->has_hard_state || ws->last_index > 0 ||
					       ws->snap_index > 0 || ws->corrupt));
		if (!boot_host && !durable)
			return 0;
		g->hosted = true;
		/* A state machine set aside after a machine crash: the WAL's checkpoints were the
		 * old one's; compaction waits until the new one is checkpointed as far. */
		if (n->cfg.kv_set_aside && ws != NULL && !ws->corrupt)
			g->ckpt_floor = ws->checkpoint_index;
		const char *damage = NULL;
		if (ws != NULL && ws->corrupt)
			damage = "WAL records of the group are damaged";
		else if (ws != NULL && ws->snap_index > km.applied_index)
			damage = "the state machine is behind the WAL's snapshot marker";
		else if (ws != NULL && ws->last_index > km.applied_index &&
			 ws->first_index > km.applied_index + 1)
			damage = "the WAL lacks entries the state machine has not applied";
		if (damage != NULL && !ws->corrupt && n->cfg.kv_set_aside)
			damage = "the state machine was set aside after a machine crash and the "
				 "group's WAL log no longer starts at index 1 (compacted)";
		bool empty = ws == NULL || (!ws->corrupt && !ws->has_hard_state &&
					    ws->last_index == 0 && ws->snap_index == 0);
		if (damage != NULL)
			ws = NULL; /* nothing of its log is used: it restarts from the state machine
				    */
		bool recovering = damage != NULL || empty ||
				  (ws != NULL && ws->has_hard_state && ws->hard_state.recovering);
		struct raft_restore rs;
		memset(&rs, 0, sizeof rs);
		for (size_t i = 0; i < nh; i++)
			rs.conf.voters[i] = hosts[i];
		rs.conf.n_voters = (uint32_t)nh;
		const struct wal_group_state *wsc = wal_group_find(n->wal, gi);
		if (km.has_conf)
			rs.conf = km.conf;
		else if (ws != NULL && ws->snap_index > 0)
			rs.conf = ws->snap_conf;
		else if (damage != NULL && wsc != NULL && !wsc->corrupt && wsc->snap_index > 0 &&
			 wsc->snap_conf.n_voters > 0)
			rs.conf = wsc->snap_conf; /* LMDB has none (set aside): the WAL's is newer
						   * than the bootstrap placement */
		else if (added && wsc != NULL && !wsc->corrupt && wsc->snap_conf.n_voters > 0)
			rs.conf = wsc->snap_conf; /* the configuration it was created with */
		rs.snap_index = km.applied_index;
		rs.snap_term = km.applied_term;
		rs.applied = km.applied_index;
		if (ws != NULL && ws->has_hard_state)
			rs.hard_state = ws->hard_state;
		else if (damage != NULL && (ws = wal_group_find(n->wal, gi)) != NULL &&
			 ws->has_hard_state && !ws->corrupt) {
			/* term and vote are still worth keeping: the fence only raises them */
			rs.hard_state = ws->hard_state;
			ws = NULL;
		}
		rs.hard_state.recovering = recovering;
		struct raft_entry *es = NULL;
		size_t ne = 0, nc = 0;
		struct chunk *cs = NULL;
		if (ws != NULL && ws->last_index > rs.snap_index) {
			raft_index lo = rs.snap_index + 1;
			if (read_log(n, gi, lo, ws->last_index + 1, &es, &ne, &cs, &nc) < 0)
				return NODE_ESTORE;
		}
		if (damage != NULL) {
			/* The group's WAL log restarts at the state machine's point (this record
			 * also heals a group the WAL marked corrupt); the hard state says it is
			 * recovering, so a restart before it has caught up recovers again. */
			rs.hard_state.commit = rs.applied;
			struct wal_batch *b = n->cur->b;
			if (wal_batch_snapshot(b, gi, rs.snap_index, rs.snap_term, &rs.conf) != 0 ||
			    wal_batch_hard_state(b, gi, &rs.hard_state) != 0)
				node_fatal(n, gi, "out of memory resetting the group's log");
			node_log(NODE_LOG_ERROR, gi,
				 "replica damaged, rebuilding it from its peers: %s applied=%llu",
				 damage, (unsigned long long)rs.applied);
			if (n->cfg.kv_set_aside)
				n_set_aside_recovering++;
		} else if (empty) {
			/* driver.c logs only changes of the flag: say here that it starts set */
			node_log(NODE_LOG_WARN, gi,
				 "replica recovering: no durable Raft state (a new or emptied "
				 "data directory); it does not vote or serve until a leader has "
				 "brought it up to date");
		} else if (recovering) {
			node_log(NODE_LOG_WARN, gi,
				 "replica still recovering: catching up from peers");
		}
		if (n->cfg.kv_set_aside && damage == NULL && !empty)
			node_log(NODE_LOG_WARN, gi,
				 "state machine set aside after a machine crash: the group's WAL "
				 "log starts at index 1, it is replayed here last=%llu%s",
				 (unsigned long long)(ws != NULL ? ws->last_index : 0),
				 recovering ? " (still recovering from an earlier rebuild)" : "");
		if (recovering && n->cfg.kv_set_aside) {
			g->recover_watch = true;
			g->recover_since_ms = node_now_ms(n);
		}
		/* The state machine may be ahead of the WAL: committed entries are applied in the
		 * turn that learns of them, before their own WAL batch is durable, so a crash can
		 * lose the batch that replaced a stale suffix while LMDB keeps what it applied. A
		 * log's terms never go down, so from the first entry whose term is below LMDB's
		 * applied term (or its predecessor's) the WAL holds that stale suffix: it is
		 * dropped, here and in the WAL (found by tests/nodesim, seed 1135). */
		size_t keep = 0;
		for (raft_term t = rs.snap_term; keep < ne && es[keep].term >= t; keep++)
			t = es[keep].term;
		if (keep < ne) {
			node_log(NODE_LOG_WARN, gi,
				 "dropping a stale log suffix the state machine is past from=%llu "
				 "term=%llu applied=%llu applied_term=%llu",
				 (unsigned long long)es[keep].index,
				 (unsigned long long)es[keep].term, (unsigned long long)rs.applied,
				 (unsigned long long)rs.snap_term);
			if (wal_batch_truncate(n->cur->b, gi, es[keep].index) != 0)
				node_fatal(n, gi, "out of memory truncating the group's log");
			ne = keep;
			raft_index last = ne ? es[ne - 1].index : rs.snap_index;
			if (rs.hard_state.commit > last)
				rs.hard_state.commit = last;
		}
		rs.entries = es;
		rs.n_entries = ne;
		if (rs.hard_state.commit < rs.applied)
			rs.hard_state.commit = rs.applied;
		if (rs.hard_state.term < rs.snap_term)
			rs.hard_state.term = rs.snap_term;
		g->raft = node_group_raft_new(n, gi, &rs);
		g->was_member = node_conf_has(raft_conf_of(g->raft), n->cfg.id);
		g->leader_msg_tick = n->ticks;
		node_group_hosts_from(g, raft_conf_of(g->raft));
		free(es);
		for (size_t i = 0; i < nc; i++)
			wal_entries_free(cs[i].e, cs[i].n);
		free(cs);
		node_group_compacted(g, rs.snap_index);
		g->checkpointed = rs.applied;
		g->role = raft_role_of(g->raft);
		g->leader = raft_leader_of(g->raft);
		g->recovering = recovering;
		node_log(NODE_LOG_INFO, gi,
			 "group restored applied=%llu term=%llu vote=%llu commit=%llu entries=%zu",
			 (unsigned long long)rs.applied, (unsigned long long)rs.hard_state.term,
			 (unsigned long long)rs.hard_state.vote,
			 (unsigned long long)rs.hard_state.commit, ne);
	}
	*n_set_aside_recovering_out += n_set_aside_recovering;
	return 0;
}

int node_restore_groups(struct node *n)
{
	uint32_t n_set_aside_recovering = 0;
	for (uint32_t gi = 1; gi <= node_meta_id(n); gi++)
		if (restore_group(n, gi, &n_set_aside_recovering) < 0)
			return NODE_ESTORE;
	/* groups added at runtime (groups.c): those the WAL knows */
	if (node_groups_restore_added(n) < 0)
		return NODE_ESTORE;
	for (size_t i = 0; i < wal_group_count(n->wal); i++) {
		uint64_t id = wal_group_at(n->wal, i)->group;
		if (id > node_meta_id(n) &&
		    restore_group(n, (uint32_t)id, &n_set_aside_recovering) < 0)
			return NODE_ESTORE;
	}
	if (n_set_aside_recovering > 0)
		node_log(NODE_LOG_WARN, 0,
			 "%u group(s) recover from their peers after the machine crash; if the "
			 "group's other replicas were cut at the same time (a whole-cluster power "
			 "loss), a group whose majority is recovering cannot elect a leader and "
			 "stays down: that case needs --kv-sync on, or an operator "
			 "(docs/DURABILITY.md, \"Self-repair after a machine crash\")",
			 n_set_aside_recovering);
	return 0;
}
