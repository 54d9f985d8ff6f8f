/* move.c — replicas that come and go: a group's replica moves from one node to another by Raft
 * configuration changes (raft/membership.c), one step per MOVE_REPLICA request at the group's
 * leader; a node creates the replica of a group it does not host when the group's leader first
 * sends to it (it was added as a learner), and retires a replica that is no longer part of its
 * group (its data emptied, a marker left so that it does not come back at start).
 *
 * A move of group G from S to T, each step one configuration change, re-run until done:
 *   T not in G            -> add T as a learner (it is sent a snapshot or the log)
 *   T a learner           -> promote it once it holds the configuration and has caught up
 *                            (RAFT_ECATCHUP until then: "catching up")
 *   S leads G             -> hand leadership to T first (a leader could remove itself, but
 *                            the group would lose its leader for an election)
 *   S in G                -> remove S (refused if S is a voter and that would leave fewer
 *                            than NODE_REPLICAS voters: T was a voter before the move)
 * except that a source the leader cannot reach is removed first (before T is added): its vote
 * is missing already, and T's replica could not leave recovery while it waits for the term of
 * a voter that never answers (raft/recovery.c); the steps then bring T in to refill the group.
 *   S not in G, T a voter -> done
 * Nothing of the move lives outside the group's log, so a crash, a leader change or a lost
 * answer at any point leaves a configuration the next request continues from; every
 * configuration on the way has at least three voters when the move starts with three
 * (learner added, then 4 voters, then 3), so the group never loses its majority.
 *
 * Retiring. A replica learns it was removed by applying the change (its own log), or, when the
 * leader stopped sending to it before it got that far, from a GroupGone: a replica answers any
 * Raft message from a node outside its committed configuration with one, and the receiver
 * retires if its own configuration is older (lower conf index). Retiring a non-member is safe:
 * the configuration that excluded it is committed, so the group's majority no longer needs
 * what it holds. A later re-add creates the replica again, recovering (raft/recovery.c): it
 * never votes with what it forgot.
 *
 * A replica created for a message whose sender never brings it into a configuration (a
 * deposed leader's last heartbeats) is retired again once no leader has sent to it for
 * NODE_UNINIT_IDLE_ELECTIONS election timeouts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/node_int.h"

bool node_conf_has(const struct raft_conf *c, uint64_t id)
{
	return raft_conf_is_voter(c, id) || raft_conf_is_learner(c, id);
}

static bool conf_empty(const struct raft_conf *c)
{
	return c->n_voters == 0 && c->n_learners == 0;
}

static bool is_member(const struct node *n, uint64_t id)
{
	return node_member_live(n, id);
}

/* g->hosts from a configuration: voters first (where a leader is found), then learners. */
void node_group_hosts_from(struct node_group *g, const struct raft_conf *c)
{
	if (conf_empty(c))
		return; /* an uninitialized replica knows nothing better than what it had */
	size_t k = 0;
	for (uint32_t i = 0; i < c->n_voters && k < NODE_NODES_MAX; i++)
		g->hosts[k++] = c->voters[i];
	for (uint32_t i = 0; i < c->n_learners && k < NODE_NODES_MAX; i++)
		g->hosts[k++] = c->learners[i];
	g->n_hosts = k;
}

/* ------------------------------------------------------------------------------ retiring */

static void retire_later(struct node *n, struct node_group *g, const char *why)
{
	if (g->retire)
		return;
	g->retire = true;
	n->any_retire = true;
	node_log(NODE_LOG_WARN, g->id, "replica no longer part of its group: retiring it (%s)", why);
}

static void retire(struct node *n, struct node_group *g)
{
	g->retire = false;
	/* the later configuration a GroupGone named, else the one this replica last had */
	struct raft_conf conf = g->has_gone_conf ? g->gone_conf : *raft_conf_of(g->raft);
	g->has_gone_conf = false;
	/* the marker must not name this node, or a restart would take it for a member */
	struct raft_conf marker = {0};
	for (uint32_t i = 0; i < conf.n_voters; i++)
		if (conf.voters[i] != n->cfg.id)
			marker.voters[marker.n_voters++] = conf.voters[i];
	for (uint32_t i = 0; i < conf.n_learners; i++)
		if (conf.learners[i] != n->cfg.id)
			marker.learners[marker.n_learners++] = conf.learners[i];
	node_group_hosts_from(g, &marker);
	node_group_empty(n, g, &marker, true, "retiring a replica");
	g->hosted = false;
	g->leader_hint = 0;
	g->recovering = false;
	node_log(NODE_LOG_WARN, g->id, "replica retired: its data is removed, %zu host(s) remain",
		 g->n_hosts);
}

void node_move_maintain(struct node *n)
{
	if (!n->any_retire)
		return; /* every loop turn: nothing to scan in the common case */
	n->any_retire = false;
	for (uint32_t i = 0; i < node_groups_all(n); i++)
		if (n->groups[i].retire && n->groups[i].raft != NULL)
			retire(n, &n->groups[i]);
}

/* After an update of g: a replica that was part of its group and is not part of its committed
 * configuration any more retires (a leader that removed itself steps down first, membership.c). */
void node_move_after_update(struct node *n, struct node_group *g)
{
	const struct raft_conf *c = raft_conf_of(g->raft);
	if (conf_empty(c))
		return;
	bool member = node_conf_has(c, n->cfg.id);
	if (member) {
		g->was_member = true;
		g->removal_seen = false;
		return;
	}
	if (g->was_member && raft_conf_index_of(g->raft) <= raft_commit_of(g->raft) &&
	    raft_role_of(g->raft) != RAFT_LEADER && !g->removal_seen) {
		/* Not at once: a replica re-added after its removal catches up through that
		 * removal (an old snapshot, then the log), and the leader sending to it shows that
		 * it is a member again. It retires once no leader has sent to it for
		 * NODE_REMOVED_IDLE_ELECTIONS election timeouts (node_move_tick). */
		g->removal_seen = true;
		g->leader_msg_tick = n->ticks;
	}
}

/* ------------------------------------------------------------------------------ creating */

/* A Raft message for group g, which has no replica here, from `from`: a leader's AppendEntries,
 * heartbeat or snapshot means this node was added to the group; make an empty replica,
 * recovering, for it. Returns true if the replica exists now. */
bool node_group_create(struct node *n, struct node_group *g, uint64_t from,
		       enum raft_msg_type type, raft_term term)
{
	if (n->stopping || g->retire || !is_member(n, from) || term == 0)
		return false;
	if (type != RAFT_MSG_APPEND && type != RAFT_MSG_HEARTBEAT && type != RAFT_MSG_SNAPSHOT)
		return false;
	/* An empty configuration replaces any marker an earlier retire left (kv), so that a
	 * restart before this replica has applied anything drops it again. */
	struct raft_conf none = {0};
	node_group_empty(n, g, &none, true, "creating a replica");
	node_group_start_recovering(n, g, &none, 0);
	g->hosted = true;
	g->was_member = false;
	g->created_by_leader = true;
	g->leader_msg_tick = n->ticks;
	node_log(NODE_LOG_WARN, g->id,
		 "replica created: node %llu leads the group and sends to this node (added as a "
		 "learner); it catches up from there",
		 (unsigned long long)from);
	return true;
}

/* A replica no leader has sent to for NODE_UNINIT_IDLE_ELECTIONS election timeouts asks the
 * hosts it knows for their term (TERM_QUERY changes no one's term, raft/step.c); a host whose
 * committed configuration does not include it answers with a GroupGone. So a replica removed
 * while it was down or cut off learns it, even a recovering one that sends nothing else. One
 * made for a leader that never made it a member is retired instead. */
void node_move_tick(struct node *n)
{
	uint64_t now = n->ticks;
	uint64_t election = n->cfg.election_ms / n->cfg.tick_ms; /* in ticks */
	uint64_t idle = (uint64_t)NODE_UNINIT_IDLE_ELECTIONS * election;
	/* Only awake groups (driver.c): a quiesced replica heard its leader's QUIESCE, so it is a
	 * member, only asleep; looking at every group every 5 ticks was most of an idle node's
	 * own CPU at 1,024 groups. */
	for (uint32_t i = 0; i < n->n_awake; i++) {
		struct node_group *g = &n->groups[n->awake[i]];
		if (g->raft == NULL || raft_role_of(g->raft) == RAFT_LEADER ||
		    raft_quiesced(g->raft))
			continue;
		if (g->removal_seen &&
		    now - g->leader_msg_tick > (uint64_t)NODE_REMOVED_IDLE_ELECTIONS * election) {
			retire_later(n, g, "its removal committed, and no leader sends to it");
			continue;
		}
		if (now - g->leader_msg_tick <= idle)
			continue;
		g->leader_msg_tick = now;
		if (g->created_by_leader && !g->was_member) {
			retire_later(n, g, "created for a leader that never made it a member");
			continue;
		}
		for (size_t k = 0; k < g->n_hosts; k++) {
			if (g->hosts[k] == n->cfg.id)
				continue;
			struct raft_message m = {.type = RAFT_MSG_TERM_QUERY,
						 .from = n->cfg.id,
						 .to = g->hosts[k],
						 .term = raft_term_of(g->raft)};
			node_send_msg(n, g, &m);
		}
	}
}

/* ------------------------------------------------------------------------------ GroupGone */

/* `from` sent g a Raft message of this type; if it is not part of g's committed configuration,
 * tell it so. */
void node_gone_maybe_send(struct node *n, struct node_group *g, uint64_t from)
{
	const struct raft_conf *c = raft_conf_of(g->raft);
	if (conf_empty(c) || node_conf_has(c, from) ||
	    raft_conf_index_of(g->raft) > raft_commit_of(g->raft))
		return;
	Ringraft__Raft__GroupGone gone = RINGRAFT__RAFT__GROUP_GONE__INIT;
	gone.group = g->id;
	gone.conf_index = raft_conf_index_of(g->raft);
	gone.voters = (uint64_t *)c->voters;
	gone.n_voters = c->n_voters;
	(void)node_peer_send(n, from, NODE_FIELD_GONE, &gone.base);
}

void node_gone_received(struct node *n, uint64_t from, const Ringraft__Raft__GroupGone *gone)
{
	struct node_group *g = node_group(n, gone->group);
	if (g == NULL || g->raft == NULL || !is_member(n, from))
		return;
	if (raft_role_of(g->raft) == RAFT_LEADER ||
	    raft_conf_index_of(g->raft) >= gone->conf_index)
		return; /* we know the same or a later configuration than the sender */
	if (!g->was_member && g->created_by_leader)
		return; /* not initialized yet: its configuration is still to come from its leader */
	struct raft_conf c = {0};
	for (size_t i = 0; i < gone->n_voters && i < RAFT_NODES_MAX; i++)
		if (is_member(n, gone->voters[i]))
			c.voters[c.n_voters++] = gone->voters[i];
	if (c.n_voters > 0) {
		g->gone_conf = c;
		g->has_gone_conf = true;
	}
	retire_later(n, g, "a member of a later configuration says so");
}

/* ------------------------------------------------------------------------------ moving */

/* One step of moving g's replica from `source` to `target`, at g's leader. Fills *progress
 * with what it did or waits for; returns 1 when the move is done, 0 when a step was taken or
 * is waited for, or NODE_EINVAL with *progress saying why the move makes no sense. */
int node_move_step(struct node *n, struct node_group *g, uint64_t source, uint64_t target,
		   char *progress, size_t len)
{
	const struct raft_conf *c = raft_conf_of(g->raft);
	/* source 0: no replica leaves, the group (short of voters) gains one (rebalance.c); a
	 * source removed from the cluster while still in the group may be moved out */
	if (source == target || (source != 0 && !is_member(n, source) && !node_conf_has(c, source)) ||
	    !is_member(n, target)) {
		snprintf(progress, len, "source and target must be two different cluster members");
		return NODE_EINVAL;
	}
	int ti = node_config_member_index(&n->cfg, target);
	if (n->cfg.members[ti].leaving && !node_conf_has(c, target)) {
		snprintf(progress, len, "node %llu is leaving the cluster: not a target",
			 (unsigned long long)target);
		return NODE_EINVAL;
	}
	if (raft_conf_index_of(g->raft) > raft_commit_of(g->raft)) {
		/* A configuration in effect but not committed may still be replaced (a leader
		 * change): nothing is decided, least of all "done", until it commits. */
		snprintf(progress, len, "waiting for the previous change to commit");
		return 0;
	}
	bool t_voter = raft_conf_is_voter(c, target);
	bool t_learner = raft_conf_is_learner(c, target);
	bool s_in = node_conf_has(c, source);
	if (!s_in && t_voter) {
		snprintf(progress, len, "done: node %llu holds a voting replica, node %llu none",
			 (unsigned long long)target, (unsigned long long)source);
		return 1;
	}
	if (!s_in && c->n_voters >= NODE_REPLICAS) {
		snprintf(progress, len, "node %llu holds no replica of group %u",
			 (unsigned long long)source, g->id);
		return NODE_EINVAL;
	}
	/* One move of a group at a time: a learner that is not this move's target, or a fourth
	 * voter, is another move under way (a second mover, kvctl's or the balancer's, would
	 * bring in a second replica and leave the group with four). */
	if (!t_voter && !t_learner &&
	    (c->n_learners > 0 || c->n_voters > NODE_REPLICAS)) {
		snprintf(progress, len,
			 "another move of group %u is under way (%u voters, %u learners): wait for "
			 "it",
			 g->id, c->n_voters, c->n_learners);
		return NODE_EINVAL;
	}
	/* (Source gone and the group short of voters: it was removed first, being down; the
	 * steps below bring the target in.) */
	int rc;
	if (s_in && raft_conf_is_voter(c, source) && !t_voter &&
	    (!t_learner || raft_peer_recovering(g->raft, target)) &&
	    c->n_voters <= NODE_REPLICAS && source != n->cfg.id && !node_peer_is_up(n, source)) {
		/* (also when the target is a learner already: added before the source went
		 * down, it cannot leave recovery either while the source is a voter) */
		/* The source is down (perhaps for good: a dead machine). Its vote is missing from
		 * the group already, so removing it first costs no availability, and it must go
		 * first: the target's replica leaves recovery only once every voter has told it
		 * its term (raft/recovery.c), which a dead voter never does. */
		if (!node_peer_is_up(n, target)) {
			snprintf(progress, len, "nodes %llu and %llu are both unreachable: waiting",
				 (unsigned long long)source, (unsigned long long)target);
			return 0;
		}
		/* The group then runs on the other voters alone: every one of them must be able
		 * to vote (reachable, not recovering), or removing the source would leave it
		 * without a quorum that can elect a leader, for good (tests/nodesim FINDINGS N8). */
		for (uint32_t i = 0; i < c->n_voters; i++) {
			uint64_t v = c->voters[i];
			if (v == source || v == n->cfg.id)
				continue;
			if (!node_peer_is_up(n, v) || raft_peer_recovering(g->raft, v)) {
				snprintf(progress, len,
					 "node %llu is down, and node %llu cannot vote yet: waiting",
					 (unsigned long long)source, (unsigned long long)v);
				return 0;
			}
		}
		rc = raft_propose_conf_change(g->raft, RAFT_CC_REMOVE, source, NULL);
		snprintf(progress, len, "node %llu is down: removing it first", (unsigned long long)source);
	} else if (!t_voter && !t_learner) {
		rc = raft_propose_conf_change(g->raft, RAFT_CC_ADD_LEARNER, target, NULL);
		snprintf(progress, len, "adding node %llu as a learner", (unsigned long long)target);
	} else if (t_learner && raft_peer_recovering(g->raft, target)) {
		/* never a voter that may lack acknowledged entries (raft/recovery.c) */
		snprintf(progress, len, "node %llu is catching up (recovering, has %llu of %llu)",
			 (unsigned long long)target,
			 (unsigned long long)raft_peer_match(g->raft, target),
			 (unsigned long long)raft_last_index(g->raft));
		return 0;
	} else if (t_learner) {
		rc = raft_propose_conf_change(g->raft, RAFT_CC_PROMOTE, target, NULL);
		snprintf(progress, len, "promoting node %llu to a voter", (unsigned long long)target);
		if (rc == RAFT_ECATCHUP) {
			snprintf(progress, len, "node %llu is catching up (has %llu of %llu entries)",
				 (unsigned long long)target,
				 (unsigned long long)raft_peer_match(g->raft, target),
				 (unsigned long long)raft_last_index(g->raft));
			return 0;
		}
	} else if (raft_conf_is_voter(c, source) && c->n_voters <= NODE_REPLICAS) {
		/* The target was a voter before this move (or the group is short of replicas):
		 * removing the source would leave fewer voters than the group should have. */
		snprintf(progress, len,
			 "node %llu already holds a voting replica of group %u; removing node %llu's "
			 "would leave %u voters",
			 (unsigned long long)target, g->id, (unsigned long long)source,
			 c->n_voters - 1);
		return NODE_EINVAL;
	} else if (source == n->cfg.id && raft_conf_is_voter(c, source)) {
		/* to the target, or to another voter if the target is recovering (it lost its
		 * state in the meantime: it cannot lead until it has caught up) */
		uint64_t to = target;
		for (uint32_t i = 0; i < c->n_voters && raft_peer_recovering(g->raft, to); i++)
			if (c->voters[i] != source)
				to = c->voters[i];
		if (raft_peer_recovering(g->raft, to)) {
			snprintf(progress, len,
				 "waiting for a voter other than node %llu to be able to lead",
				 (unsigned long long)source);
			return 0;
		}
		rc = raft_transfer_leader(g->raft, to);
		snprintf(progress, len, "handing leadership to node %llu before removing node %llu",
			 (unsigned long long)to, (unsigned long long)source);
		if (rc == RAFT_EBUSY || rc == RAFT_ERECOVERING)
			rc = 0; /* a transfer is under way, or asked again at the next step */
	} else {
		rc = raft_propose_conf_change(g->raft, RAFT_CC_REMOVE, source, NULL);
		snprintf(progress, len, "removing node %llu", (unsigned long long)source);
	}
	if (rc == RAFT_EBUSY || rc == RAFT_ETRANSFER) {
		snprintf(progress, len, "waiting for the previous change to commit");
		return 0;
	}
	if (rc != 0) {
		snprintf(progress, len, "%s", raft_strerror(rc));
		return rc == RAFT_ENOTLEADER ? NODE_ENOTLEADER : NODE_EINVAL;
	}
	node_log(NODE_LOG_INFO, g->id, "move source=%llu target=%llu: %s",
		 (unsigned long long)source, (unsigned long long)target, progress);
	return 0;
}
