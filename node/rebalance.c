/* rebalance.c — replicas spread evenly over the members, by themselves (the placement half of
 * issue 17; PD's balance-region scheduler, CockroachDB's replicate queue, in small).
 *
 * Where replicas are is known only to each group's configuration (move.c). So every node tells
 * the meta group's hosts, every NODE_REPORT_MS, the configuration of each group it leads
 * (PeerFrame.confs); the meta group's leader keeps the freshest report per group and, when
 * --auto-balance is on, acts as the balancer: when every group has a fresh report, no group is
 * in the middle of a move (3 voters, no learner), every member is reachable, and the members'
 * replica counts are not all within one of each other (each holds the floor or the ceiling of
 * 3(G+1)/N), it moves one replica from the member holding the most to the member holding the
 * fewest, of a group that one holds and the other does not. One move at a time in the whole
 * cluster; it drives the move with MOVE_REPLICA requests of its own (each answered by the
 * group's leader, as kvctl group move's are) until the group says done, refuses, or a
 * deadline passes. Nothing of it is durable: a new meta leader starts from the reports, and a
 * move interrupted half-way is finished by the next plan or by the move's own rules.
 *
 * It never removes a dead member's replicas (an operator decides a machine is gone: kvctl
 * member remove or replace); while a member does not answer it moves nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/node_int.h"

/* A move step asked of the cluster: another is asked only once it is answered. */
static void move_reply(void *client, const Ringraft__Kv__Response *resp)
{
	struct node *n = client;
	struct node_rebalance *b = &n->rebalance;
	b->busy = false;
	if (b->group != 0 && (resp->code == RINGRAFT__KV__CODE__INVALID ||
			      (resp->code == RINGRAFT__KV__CODE__OK && resp->done)))
		b->reports[b->group - 1].at_ms = 0; /* plan again from its next report only */
	if (resp->code == RINGRAFT__KV__CODE__OK && resp->done) {
		node_log(NODE_LOG_INFO, b->group, "rebalance: moved from=%llu to=%llu",
			 (unsigned long long)b->from, (unsigned long long)b->to);
		b->moves++;
		b->group = 0;
	} else if (resp->code == RINGRAFT__KV__CODE__OK) {
		snprintf(b->progress, sizeof b->progress, "%s", resp->progress ? resp->progress : "");
	} else if (resp->code == RINGRAFT__KV__CODE__INVALID) {
		node_log(NODE_LOG_INFO, b->group, "rebalance: move from=%llu to=%llu refused: %s",
			 (unsigned long long)b->from, (unsigned long long)b->to,
			 resp->error ? resp->error : "");
		b->group = 0; /* the next plan starts from fresh reports, a while later */
		b->idle_until_ms = node_now_ms(n) + NODE_REPORT_MS;
	}
	/* else (no leader yet, a timeout): the same step is asked again */
}

/* Submits rq as the balancer's own request (answered through reply); false if it could not. */
static bool submit(struct node *n, Ringraft__Kv__Request *rq, node_reply_fn reply)
{
	struct node_rebalance *b = &n->rebalance;
	rq->id = ++b->seq;
	rq->timeout_ms = NODE_REBALANCE_STEP_MS;
	/* the engine frees requests as unpacked ones */
	uint8_t buf[128];
	size_t len = ringraft__kv__request__get_packed_size(rq);
	Ringraft__Kv__Request *own = len <= sizeof buf ? (ringraft__kv__request__pack(rq, buf),
							  ringraft__kv__request__unpack(NULL, len, buf))
						       : NULL;
	if (own == NULL)
		return false;
	b->busy = true;
	node_submit(n, own, reply, n);
	return true;
}

static void ask_step(struct node *n)
{
	struct node_rebalance *b = &n->rebalance;
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__MOVE_REPLICA;
	rq.group = b->group;
	rq.source = b->from;
	rq.target = b->to;
	rq.members_epoch = n->members_epoch;
	(void)submit(n, &rq, move_reply);
}

/* A leadership transfer asked of the cluster (leadership balance): answered once the group's
 * leader started it. */
static void transfer_reply(void *client, const Ringraft__Kv__Response *resp)
{
	struct node *n = client;
	struct node_rebalance *b = &n->rebalance;
	(void)resp;
	b->busy = false;
	if (b->transfer_group != 0)
		b->reports[b->transfer_group - 1].at_ms = 0; /* plan again from its next report */
	b->transfer_group = 0;
	b->idle_until_ms = node_now_ms(n) + NODE_REPORT_MS;
}

static void ask_transfer(struct node *n, uint32_t g, uint64_t to)
{
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__TRANSFER_LEADER;
	rq.group = g;
	rq.target = to;
	node_log(NODE_LOG_INFO, g, "rebalance: leadership to=%llu", (unsigned long long)to);
	n->rebalance.transfer_group = g;
	if (!submit(n, &rq, transfer_reply))
		n->rebalance.transfer_group = 0;
}

static bool in_list(const uint64_t *v, size_t k, uint64_t id)
{
	for (size_t i = 0; i < k; i++)
		if (v[i] == id)
			return true;
	return false;
}

static void start(struct node *n, uint32_t g, uint64_t from, uint64_t to, uint64_t now,
		  const char *why)
{
	struct node_rebalance *b = &n->rebalance;
	b->group = g;
	b->from = from;
	b->to = to;
	b->started_ms = now;
	b->progress[0] = '\0';
	node_log(NODE_LOG_INFO, g, "rebalance: moving a replica from=%llu to=%llu (%s)",
		 (unsigned long long)from, (unsigned long long)to, why);
}

/* The next move, if the cluster is settled and there is one to make: 0 (started), else -1.
 * In order: a move someone left half-done (a learner, or not 3 voters, for a while), a replica
 * of a leaving member, then balance among the members that stay. */
static int plan(struct node *n, uint64_t now)
{
	struct node_rebalance *b = &n->rebalance;
	uint64_t ids[NODE_NODES_MAX];
	size_t count[NODE_NODES_MAX] = {0}, nm = 0;
	bool leaving[NODE_NODES_MAX] = {0};
	for (size_t i = 0; i < n->cfg.n_members; i++) {
		const struct node_member *m = &n->cfg.members[i];
		if (m->removed)
			continue;
		/* a member that stays and does not answer: nothing moves (a leaving one may be a
		 * dead machine: its replicas are rebuilt from the others, move.c) */
		if (!m->leaving && m->id != n->cfg.id && !node_peer_is_up(n, m->id))
			return -1;
		leaving[nm] = m->leaving;
		ids[nm++] = m->id;
	}
	uint32_t G = node_groups_all(n);
	for (uint32_t g = 1; g <= G; g++) {
		const struct node_conf_report *r = &b->reports[g - 1];
		if (!n->groups[g - 1].exists)
			continue; /* an id not in use (node_int.h) */
		if (r->at_ms == 0 || now > r->at_ms + NODE_REPORT_STALE_MS)
			return -1; /* a group whose configuration is not known now */
		for (size_t k = 0; k < r->n_voters; k++)
			for (size_t m = 0; m < nm; m++)
				count[m] += ids[m] == r->voters[k];
	}
	/* the member (staying) with the fewest replicas not in voters */
	size_t best;
#define EMPTIEST_NOT_IN(r)                                                                  \
	do {                                                                                 \
		best = nm;                                                                   \
		for (size_t m = 0; m < nm; m++)                                              \
			if (!leaving[m] && !in_list((r)->voters, (r)->n_voters, ids[m]) &&   \
			    !in_list((r)->learners, (r)->n_learners, ids[m]) &&              \
			    (best == nm || count[m] < count[best]))                          \
				best = m;                                                    \
	} while (0)
	/* 1. a move left half-done (its mover gave up or died): the same configuration for
	 * NODE_REBALANCE_STUCK_MS */
	for (uint32_t g = 1; g <= G; g++) {
		const struct node_conf_report *r = &b->reports[g - 1];
		if (!n->groups[g - 1].exists)
			continue; /* an id not in use (node_int.h) */
		if ((r->n_voters == NODE_REPLICAS && r->n_learners == 0) ||
		    now < r->since_ms + NODE_REBALANCE_STUCK_MS)
			continue;
		if (r->n_learners > 0) {
			/* finish it: the learner in, the fullest voter out */
			size_t src = nm;
			for (size_t m = 0; m < nm; m++)
				if (in_list(r->voters, r->n_voters, ids[m]) &&
				    (src == nm || leaving[m] > leaving[src] ||
				     (leaving[m] == leaving[src] && count[m] > count[src])))
					src = m;
			if (src == nm)
				continue;
			start(n, g, ids[src], r->learners[0], now, "finishing a move left half-done");
			return 0;
		}
		if (r->n_voters > NODE_REPLICAS) {
			size_t src = nm, to = nm;
			for (size_t m = 0; m < nm; m++) {
				if (!in_list(r->voters, r->n_voters, ids[m]))
					continue;
				if (src == nm || leaving[m] > leaving[src] ||
				    (leaving[m] == leaving[src] && count[m] > count[src]))
					src = m;
			}
			for (size_t m = 0; m < nm; m++)
				if (m != src && in_list(r->voters, r->n_voters, ids[m]))
					to = m;
			if (src == nm || to == nm)
				continue;
			start(n, g, ids[src], ids[to], now, "a group with too many voters");
			return 0;
		}
		EMPTIEST_NOT_IN(r); /* fewer than 3 voters: one more */
		if (best != nm) {
			start(n, g, 0, ids[best], now, "a group short of voters");
			return 0;
		}
	}
	for (uint32_t g = 1; g <= G; g++) {
		const struct node_conf_report *r = &b->reports[g - 1];
		if (!n->groups[g - 1].exists)
			continue; /* an id not in use (node_int.h) */
		if (r->n_voters != NODE_REPLICAS || r->n_learners != 0)
			return -1; /* a move under way (ours, kvctl's): one at a time */
	}
	/* 2. the replicas of a leaving member, or of one no longer a member (removed while a
	 * move still had it) */
	for (uint32_t g = 1; g <= G; g++) {
		const struct node_conf_report *r = &b->reports[g - 1];
		if (!n->groups[g - 1].exists)
			continue; /* an id not in use (node_int.h) */
		for (uint32_t k = 0; k < r->n_voters; k++) {
			if (in_list(ids, nm, r->voters[k]))
				continue;
			EMPTIEST_NOT_IN(r);
			if (best == nm)
				return -1;
			start(n, g, r->voters[k], ids[best], now, "a voter that is not a member");
			return 0;
		}
		for (size_t m = 0; m < nm; m++) {
			if (!leaving[m] || !in_list(r->voters, r->n_voters, ids[m]))
				continue;
			EMPTIEST_NOT_IN(r);
			if (best == nm)
				return -1; /* nowhere to go: member leave refuses this */
			start(n, g, ids[m], ids[best], now, "the member is leaving");
			return 0;
		}
	}
	/* 3. balance: every staying member holds the floor or the ceiling of 3(G+1)/N */
	size_t hi = nm, lo = nm;
	for (size_t m = 0; m < nm; m++) {
		if (leaving[m])
			continue;
		if (hi == nm || count[m] > count[hi])
			hi = m;
		if (lo == nm || count[m] < count[lo])
			lo = m;
	}
	if (hi == nm || count[hi] <= count[lo] + 1) {
		/* 4. replicas balanced: leaderships, each member the floor or ceiling of
		 * (G+1)/N of them (with --balance-leaders; this replaces balance.c's preferred
		 * voter, which spreads them only as evenly as the voter sets allow) */
		if (!n->cfg.balance_leaders)
			return -1;
		size_t leads[NODE_NODES_MAX] = {0};
		for (uint32_t g = 1; g <= G; g++)
			for (size_t m = 0; m < nm; m++)
				leads[m] += ids[m] == b->reports[g - 1].leader;
		size_t lhi = nm, llo = nm;
		for (size_t m = 0; m < nm; m++) {
			if (leaving[m])
				continue;
			if (lhi == nm || leads[m] > leads[lhi])
				lhi = m;
			if (llo == nm || leads[m] < leads[llo])
				llo = m;
		}
		if (lhi == nm || leads[lhi] <= leads[llo] + 1)
			return -1; /* balanced */
		for (uint32_t g = 1; g <= G; g++) {
			const struct node_conf_report *r = &b->reports[g - 1];
			if (r->leader == ids[lhi] && in_list(r->voters, r->n_voters, ids[llo])) {
				ask_transfer(n, g, ids[llo]);
				return -1; /* no move: a transfer is under way */
			}
		}
		/* the emptiest is no voter of a group the fullest leads: through a third member
		 * that leads a group the emptiest votes in (the next plan hands that one on) */
		for (uint32_t g1 = 1; g1 <= G; g1++) {
			const struct node_conf_report *r1 = &b->reports[g1 - 1];
			if (r1->leader != ids[lhi])
				continue;
			for (size_t m = 0; m < nm; m++) {
				if (m == lhi || leaving[m] || !in_list(r1->voters, r1->n_voters, ids[m]))
					continue;
				for (uint32_t g2 = 1; g2 <= G; g2++) {
					const struct node_conf_report *r2 = &b->reports[g2 - 1];
					if (r2->leader == ids[m] &&
					    in_list(r2->voters, r2->n_voters, ids[llo])) {
						ask_transfer(n, g1, ids[m]);
						return -1;
					}
				}
			}
		}
		return -1;
	}
	/* a group the fullest holds and the emptiest does not; the meta group (the last id)
	 * last: moving it moves the balancer */
	for (uint32_t g = 1; g <= G; g++) {
		const struct node_conf_report *r = &b->reports[g - 1];
		if (!n->groups[g - 1].exists)
			continue; /* an id not in use (node_int.h) */
		if (in_list(r->voters, r->n_voters, ids[hi]) &&
		    !in_list(r->voters, r->n_voters, ids[lo])) {
			start(n, g, ids[hi], ids[lo], now, "balancing replicas");
			return 0;
		}
	}
#undef EMPTIEST_NOT_IN
	return -1;
}

void node_rebalance_tick(struct node *n)
{
	struct node_rebalance *b = &n->rebalance;
	uint64_t every = NODE_REPORT_MS / n->cfg.tick_ms;
	if (every == 0)
		every = 1;
	if (n->ticks % every == 0)
		node_rebalance_report(n);
	struct node_group *meta = node_group(n, node_meta_id(n));
	bool leads_meta = meta != NULL && meta->raft != NULL &&
			  raft_role_of(meta->raft) == RAFT_LEADER;
	if (!n->cfg.auto_balance || n->stopping || !leads_meta) {
		b->group = 0;
		return;
	}
	if (b->busy || n->ticks % (every / 4 + 1) != 0)
		return;
	uint64_t now = node_now_ms(n);
	if (b->group != 0 && now > b->started_ms + NODE_REBALANCE_MOVE_MS) {
		node_log(NODE_LOG_WARN, b->group,
			 "rebalance: move from=%llu to=%llu not done in %d ms (last: %s): left",
			 (unsigned long long)b->from, (unsigned long long)b->to,
			 NODE_REBALANCE_MOVE_MS, b->progress);
		b->group = 0;
	}
	if (b->group == 0 && (now < b->idle_until_ms || plan(n, now) != 0))
		return;
	ask_step(n);
}

/* ------------------------------------------------------------------------------ reports */

void node_rebalance_report(struct node *n)
{
	struct node_group *meta = node_group(n, node_meta_id(n));
	if (meta == NULL || meta->n_hosts == 0)
		return;
	uint32_t G = node_groups_all(n);
	Ringraft__Raft__GroupConfReport *rs = calloc(G, sizeof *rs);
	Ringraft__Raft__GroupConfReport **ptrs = calloc(G, sizeof *ptrs);
	if (rs == NULL || ptrs == NULL) {
		free(rs);
		free(ptrs);
		return;
	}
	size_t k = 0;
	for (uint32_t i = 0; i < G; i++) {
		struct node_group *g = &n->groups[i];
		if (g->raft == NULL || raft_role_of(g->raft) != RAFT_LEADER)
			continue;
		const struct raft_conf *c = raft_conf_of(g->raft);
		ringraft__raft__group_conf_report__init(&rs[k]);
		rs[k].group = g->id;
		rs[k].conf_index = raft_conf_index_of(g->raft);
		rs[k].term = raft_term_of(g->raft);
		rs[k].committed = raft_conf_index_of(g->raft) <= raft_commit_of(g->raft);
		rs[k].voters = (uint64_t *)c->voters;
		rs[k].n_voters = c->n_voters;
		rs[k].learners = (uint64_t *)c->learners;
		rs[k].n_learners = c->n_learners;
		ptrs[k] = &rs[k];
		k++;
	}
	if (k > 0) {
		Ringraft__Raft__ConfReports rep = RINGRAFT__RAFT__CONF_REPORTS__INIT;
		rep.reports = ptrs;
		rep.n_reports = k;
		/* to the meta group's hosts as this node knows them (its own configuration when
		 * it hosts a replica, else its last hint of them), and to the node that last sent
		 * the map (the meta leader) */
		uint64_t to_list[NODE_NODES_MAX + 1];
		size_t nt = 0;
		for (size_t h = 0; h < meta->n_hosts && nt < NODE_NODES_MAX; h++)
			to_list[nt++] = meta->hosts[h];
		if (n->meta_leader_hint != 0 && !in_list(to_list, nt, n->meta_leader_hint))
			to_list[nt++] = n->meta_leader_hint;
		for (size_t h = 0; h < nt; h++) {
			uint64_t to = to_list[h];
			if (to == n->cfg.id)
				node_rebalance_received(n, n->cfg.id, &rep);
			else if (node_peer_is_up(n, to))
				(void)node_peer_send(n, to, NODE_FIELD_CONFS, &rep.base);
		}
	}
	free(rs);
	free(ptrs);
}

void node_rebalance_received(struct node *n, uint64_t from,
			     const Ringraft__Raft__ConfReports *rep)
{
	uint64_t now = node_now_ms(n);
	for (size_t i = 0; i < rep->n_reports; i++) {
		const Ringraft__Raft__GroupConfReport *r = rep->reports[i];
		struct node_group *g = node_group(n, r->group);
		if (g == NULL || r->n_voters > RAFT_NODES_MAX || r->n_learners > RAFT_NODES_MAX)
			continue;
		struct node_conf_report *x = &n->rebalance.reports[g->id - 1];
		/* a deposed leader's (configuration indexes are not compared: a replica restored
		 * from a snapshot counts its configuration from the snapshot's index) */
		if (r->term < x->term)
			continue;
		x->at_ms = r->committed ? now : 0; /* one not committed yet may still change */
		/* (element by element: an empty repeated field decodes to a NULL array) */
		bool same = x->since_ms != 0 && x->n_voters == r->n_voters &&
			    x->n_learners == r->n_learners;
		for (size_t k = 0; same && k < r->n_voters; k++)
			same = x->voters[k] == r->voters[k];
		for (size_t k = 0; same && k < r->n_learners; k++)
			same = x->learners[k] == r->learners[k];
		if (!same)
			x->since_ms = now; /* since when the group has had this configuration */
		x->conf_index = r->conf_index;
		x->term = r->term;
		x->leader = from;
		x->n_voters = (uint32_t)r->n_voters;
		x->n_learners = (uint32_t)r->n_learners;
		for (size_t k = 0; k < r->n_voters; k++)
			x->voters[k] = r->voters[k];
		for (size_t k = 0; k < r->n_learners; k++)
			x->learners[k] = r->learners[k];
	}
}
