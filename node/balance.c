/* balance.c — spreading group leaders (DESIGN.md 6): the preferred leader of group g is the
 * ((g-1) mod N)-th voter; a leader hands a group to its preferred node once that node has been
 * connected a while, at most one transfer per check and one per group per interval.
 */
#include "node/node_int.h"

static uint64_t preferred_leader(struct node *n, struct node_group *g)
{
	const struct raft_conf *c = raft_conf_of(g->raft);
	if (c->n_voters == 0)
		return 0;
	/* voters in ascending id order give the same answer on every node */
	uint64_t sorted[RAFT_NODES_MAX];
	uint32_t k = c->n_voters;
	for (uint32_t i = 0; i < k; i++)
		sorted[i] = c->voters[i];
	for (uint32_t i = 1; i < k; i++)
		for (uint32_t j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
			uint64_t t = sorted[j];
			sorted[j] = sorted[j - 1];
			sorted[j - 1] = t;
		}
	(void)n;
	return sorted[(g->id - 1) % k];
}

void node_balance_leaders(struct node *n)
{
	/* with --auto-balance the meta leader's balancer spreads leaderships (rebalance.c) */
	if (!n->cfg.balance_leaders || n->cfg.auto_balance || n->stopping)
		return;
	uint64_t now = node_now_ms(n);
	for (uint32_t i = 0; i < node_groups_all(n); i++) {
		struct node_group *g = &n->groups[i];
		if (g->raft == NULL || raft_role_of(g->raft) != RAFT_LEADER)
			continue;
		uint64_t want = preferred_leader(n, g);
		if (want == 0 || want == n->cfg.id)
			continue;
		if (now < g->leader_since_ms + NODE_LEADER_SETTLE_MS ||
		    now < g->last_transfer_ms + NODE_TRANSFER_INTERVAL_MS)
			continue;
		/* a replica being rebuilt could not win, and the group would be leaderless */
		if (raft_peer_recovering(g->raft, want))
			continue;
		int mi = node_config_member_index(&n->cfg, want);
		/* never to a member on its way out: its replicas are moving away (rebalance.c) */
		if (mi < 0 || n->cfg.members[mi].leaving || n->peer_up_since[mi] == 0 ||
		    now < n->peer_up_since[mi] + NODE_PEER_SETTLE_MS)
			continue;
		g->last_transfer_ms = now;
		int rc = raft_transfer_leader(g->raft, want);
		node_log(NODE_LOG_INFO, g->id, "leadership transfer to=%llu result=\"%s\"",
			 (unsigned long long)want, raft_strerror(rc));
		return; /* one per check */
	}
}
