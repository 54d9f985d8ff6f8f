/* engine.c — the engine's lifecycle and its node-wide events (engine.h): open (rebuild every
 * group from the WAL and LMDB), peer links up and down, the tick (Raft timer ticks, request
 * deadlines, maintenance) and the groups' clocks, a clean stop (refuse requests, hand
 * leaderships off, drain).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/node_int.h"

const char *node_strerror(int rc)
{
	switch (rc) {
	case NODE_OK:
		return "ok";
	case NODE_ENOMEM:
		return "out of memory";
	case NODE_ESTORE:
		return "the WAL or LMDB could not be opened or read";
	case NODE_ELISTEN:
		return "a port could not be bound";
	case NODE_EINIT:
		return "the event loop, a timer or a thread could not be set up";
	case NODE_ECONFIG:
		return "invalid setting";
	case NODE_EINVAL:
		return "invalid request";
	case NODE_ENOTLEADER:
		return "not the group's leader";
	case NODE_EMALFORMED:
		return "malformed peer message";
	default:
		return "unknown node error";
	}
}

const char *node_client_addr_of(struct node *n, uint64_t id)
{
	if (id == n->cfg.id)
		return n->cfg.client_addr;
	return node_addrbook_get(&n->addrs, &n->cfg, id);
}

void node_fatal(struct node *n, uint32_t group, const char *fmt, ...)
{
	(void)n;
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	node_log(NODE_LOG_ERROR, group, "fatal, node stops: %s", msg);
	exit(1);
}

/* ------------------------------------------------------------------------------ lifecycle */

int node_engine_open(const struct node_config *cfg, const struct node_io *io, struct wal *wal,
		     struct kv *kv, uint64_t incarnation, struct node **out)
{
	*out = NULL;
	struct node *n = calloc(1, sizeof *n);
	if (n == NULL)
		return NODE_ENOMEM;
	n->cfg = *cfg;
	n->io = *io;
	n->wal = wal;
	n->kv = kv;
	kv_apply_batching(kv, true); /* applies share LMDB transactions (kv.h) */
	n->incarnation = incarnation;
	n->start_ms = node_now_ms(n);
	/* Request ids (also the ids of forwarded requests) start at a point drawn from the
	 * shell's seed, not at 0: a leader may still answer what this node forwarded in an
	 * earlier life, and that answer must match nothing now (tests/nodesim FINDINGS N2). */
	n->next_iid = (io->seed ^ (cfg->id * 0x9e3779b97f4a7c15ull)) & ~(uint64_t)0xffffffffu;
	node_metrics_init(&n->metrics);
	n->ring = kv_ring_new(cfg->groups, NODE_VNODES, NODE_RING_EPOCH);
	/* the key groups, the meta group, and room for groups added at runtime (groups.c) */
	n->groups_cap = node_group_id_max(cfg->groups);
	n->groups = calloc(n->groups_cap, sizeof *n->groups);
	n->rebalance.reports = calloc(n->groups_cap, sizeof *n->rebalance.reports);
	n->batches[0].b = wal_batch_new();
	n->batches[1].b = wal_batch_new();
	n->cur = &n->batches[0];
	if (n->ring == NULL || n->groups == NULL || n->rebalance.reports == NULL || n->batches[0].b == NULL ||
	    n->batches[1].b == NULL) {
		node_engine_close(n);
		return NODE_ENOMEM;
	}
	if (node_restore_groups(n) < 0) {
		node_engine_close(n);
		return NODE_ESTORE;
	}
	size_t off = 0;
	for (size_t i = 0; i < cfg->n_boot; i++)
		off += (size_t)snprintf(n->bootstrap_str + off, sizeof n->bootstrap_str - off,
					"%s%llu=%s", i ? "," : "",
					(unsigned long long)cfg->members[i].id,
					cfg->members[i].peer_addr);
	node_members_reload(n); /* a replica of the meta group has the map */
	*out = n;
	return NODE_OK;
}

void node_engine_close(struct node *n)
{
	if (n == NULL)
		return;
	while (n->reqs_head != NULL) {
		struct node_req *r = n->reqs_head;
		n->reqs_head = r->anext;
		ringraft__kv__request__free_unpacked(r->rq, NULL);
		free(r);
	}
	node_backup_close_all(n);
	node_reshard_drive_free(n);
	node_checkpoint_close(n);
	for (uint32_t i = 0; n->groups != NULL && i < node_groups_all(n); i++) {
		struct node_group *g = &n->groups[i];
		for (size_t k = 0; k < NODE_NODES_MAX; k++) {
			if (g->snaps[k].s != NULL)
				kv_snapshot_end(g->snaps[k].s);
			free(g->snaps[k].last);
		}
		if (g->restore != NULL)
			kv_restore_abort(g->restore);
		raft_free(g->raft);
	}
	node_expire_free(n);
	node_auth_state_free(&n->auth);
	node_ring_record_free(n);
	kv_ring_free(n->ring);
	for (int i = 0; i < 2; i++) {
		for (size_t k = 0; k < n->batches[i].n_held; k++)
			free(n->batches[i].held[k].buf);
		free(n->batches[i].held);
		wal_batch_free(n->batches[i].b);
	}
	node_msg_scratch_free(&n->scratch);
	free(n->groups);
	free(n->rebalance.reports);
	free(n->awake);
	free(n);
}

/* ------------------------------------------------------------------------------ events */

bool node_peer_up(struct node *n, uint64_t id, const char *client_addr, uint64_t incarnation)
{
	int mi = node_config_member_index(&n->cfg, id);
	if (mi >= 0) {
		n->peer_up_since[mi] = node_now_ms(n);
		uint64_t was = n->peer_incarnation[mi];
		if (was != 0 && was != incarnation)
			node_log(NODE_LOG_WARN, 0,
				 "peer came back with another data directory peer=%llu "
				 "incarnation=%016llx was=%016llx",
				 (unsigned long long)id, (unsigned long long)incarnation,
				 (unsigned long long)was);
		n->peer_incarnation[mi] = incarnation;
	}
	/* Whatever the peer acknowledged over the last link may be gone (it restarted, perhaps
	 * with an emptied directory): every group probes it afresh (raft_peer_reset). */
	for (uint32_t i = 0; i < node_groups_all(n); i++)
		if (n->groups[i].raft != NULL)
			raft_peer_reset(n->groups[i].raft, id);
	node_log(NODE_LOG_INFO, 0, "peer connected peer=%llu client_addr=%s",
		 (unsigned long long)id, client_addr);
	node_members_push(n); /* a node that was away learns the map at once */
	if (!node_member_live(n, id))
		node_members_tell_removed(n, id); /* it learns it was removed, and stops */
	return node_addrbook_set(&n->addrs, &n->cfg, id, client_addr);
}

void node_peer_down(struct node *n, uint64_t id)
{
	int mi = node_config_member_index(&n->cfg, id);
	if (mi >= 0)
		n->peer_up_since[mi] = 0;
	node_log(NODE_LOG_INFO, 0, "peer disconnected peer=%llu", (unsigned long long)id);
	for (uint32_t i = 0; i < node_groups_all(n); i++)
		if (n->groups[i].raft != NULL)
			raft_report_unreachable(n->groups[i].raft, id);
	node_service_peer_down(n, id);
}

/* Commits the applies LMDB holds in its open transaction (kv.h "Batched applies"): every
 * --apply-commit-ms (node_tick_timers), so that nothing stays uncommitted longer. Reads and
 * every other transaction commit it before they begin. A failed commit lost applied entries:
 * the node stops (the WAL holds them, and the restart applies them again). */
static void node_apply_commit(struct node *n)
{
	int rc = kv_apply_commit(n->kv);
	if (rc == KV_ENOSPC)
		node_stop_disk_full(n, 0, "committing applied entries to LMDB");
	if (rc != KV_OK)
		node_fatal(n, 0, "applied entries did not commit error=\"%s\"", kv_strerror(rc));
}

void node_tick(struct node *n)
{
	node_advance_clock(n, 1);
	node_tick_timers(n);
}

void node_advance_clock(struct node *n, uint64_t ticks)
{
	/* draining too: a clock that advances is never unsafe, and this one is read only by
	 * leases */
	node_advance_group_clocks(n, ticks);
}

void node_tick_timers(struct node *n)
{
	if (n->draining)
		return; /* only turns until the last batch is durable */
	n->ticks++;
	uint64_t commit_every = n->cfg.apply_commit_ms / n->cfg.tick_ms;
	if (n->ticks - n->apply_commit_tick >= (commit_every ? commit_every : 1)) {
		n->apply_commit_tick = n->ticks;
		node_apply_commit(n);
	}
	node_tick_groups(n);
	uint64_t every = NODE_MAINT_MS / n->cfg.tick_ms;
	if (every == 0)
		every = 1;
	if (n->ticks % 5 == 0) {
		node_service_timeouts(n);
		node_move_tick(n);
		node_backup_tick(n);
	}
	node_members_tick(n);
	node_rebalance_tick(n);
	node_reshard_drive_tick(n);
	node_expire_tick(n);
	if (n->ticks % every == 0 && !n->stopping) {
		node_maybe_compact(n);
		node_balance_leaders(n);
		if (n->cfg.scrub_rate > 0)
			node_scrub_step(n);
		node_digest_step(n);
		node_recovery_watch(n);
	}
}

static bool leads_any(const struct node *n)
{
	for (uint32_t i = 0; i < node_groups_all(n); i++)
		if (n->groups[i].raft != NULL && raft_role_of(n->groups[i].raft) == RAFT_LEADER)
			return true;
	return false;
}

void node_stop(struct node *n)
{
	if (n->stopping)
		return;
	n->stopping = true;
	node_service_fail_all(n);
	/* Hand every group this node leads to a connected voter, so clients wait for a transfer
	 * instead of an election timeout; node_draining then says when the handoff is over. */
	uint64_t budget =
		n->cfg.election_ms < NODE_HANDOFF_MS_MAX ? n->cfg.election_ms : NODE_HANDOFF_MS_MAX;
	n->handoff_deadline_ms = node_now_ms(n) + budget;
	for (uint32_t i = 0; i < node_groups_all(n); i++) {
		struct node_group *g = &n->groups[i];
		if (g->raft == NULL || raft_role_of(g->raft) != RAFT_LEADER)
			continue;
		const struct raft_conf *c = raft_conf_of(g->raft);
		for (uint32_t k = 0; k < c->n_voters; k++) {
			uint64_t to = c->voters[k];
			if (to != n->cfg.id && node_peer_is_up(n, to) &&
			    !raft_peer_recovering(g->raft, to)) {
				int rc = raft_transfer_leader(g->raft, to);
				node_log(NODE_LOG_INFO, g->id, "handoff to=%llu result=\"%s\"",
					 (unsigned long long)to, raft_strerror(rc));
				break;
			}
		}
	}
}

bool node_draining(struct node *n)
{
	if (n->stopping && !n->draining &&
	    (!leads_any(n) || node_now_ms(n) >= n->handoff_deadline_ms)) {
		/* Handoff over: ignore peers from now on, so the pending batch is the last one. */
		n->draining = true;
		node_log(NODE_LOG_INFO, 0, "handoff done, draining still_leading=%d", leads_any(n));
	}
	return n->draining;
}

bool node_stopping(const struct node *n)
{
	return n->stopping;
}

struct node_metrics *node_metrics_of(struct node *n)
{
	return &n->metrics;
}

const struct node_config *node_config_of(const struct node *n)
{
	return &n->cfg;
}

struct node_addrbook *node_addrbook_of(struct node *n)
{
	return &n->addrs;
}
