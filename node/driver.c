/* driver.c — the Ready loop of every group (raft/raft.h's driver loop, DESIGN.md 3): per turn,
 * every Ready goes into the turn's one WAL batch, messages out now, msgs_after_persist held with
 * that batch, committed entries applied in one kv_apply (into one LMDB transaction that several
 * turns share: kv.h "Batched applies"); one batch handed to the shell at a time
 * (io.wal_write), then, once it is durable (node_wal_durable), raft_persisted and the held
 * messages; then the shell flushes one frame per peer/client (io.flush).
 *
 * Only awake groups are looked at: a quiesced core (raft/quiesce.c) with nothing left to do
 * leaves the awake list at the end of a turn, and its wake_cb puts it back when anything wakes
 * it (a request, a peer message, the failure detector through raft_report_unreachable). So a
 * tick and a turn of an idle node cost O(awake groups), not O(groups).
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "node/node_int.h"

void node_group_awake(struct node *n, struct node_group *g)
{
	if (g->awake)
		return;
	if (n->awake == NULL && (n->awake = calloc(n->groups_cap, sizeof *n->awake)) == NULL)
		node_fatal(n, g->id, "out of memory listing awake groups");
	size_t gi = (size_t)(g - n->groups);
	assert(gi < node_groups_all(n) && n->n_awake < n->groups_cap);
	g->awake = true;
	n->awake[n->n_awake++] = (uint32_t)gi;
}

void node_group_wake_cb(void *arg)
{
	struct node_group *g = arg;
	node_group_awake(g->owner, g);
}

/* Drops the groups that went idle (or lost their core) from the awake list. */
static void awake_prune(struct node *n)
{
	uint32_t k = 0;
	for (uint32_t i = 0; i < n->n_awake; i++) {
		struct node_group *g = &n->groups[n->awake[i]];
		if (g->raft != NULL && !raft_idle(g->raft))
			n->awake[k++] = n->awake[i];
		else
			g->awake = false;
	}
	n->n_awake = k;
}

void node_tick_groups(struct node *n)
{
	uint32_t count = n->n_awake; /* a core that wakes during a tick is ticked next time */
	for (uint32_t i = 0; i < count; i++) {
		struct node_group *g = &n->groups[n->awake[i]];
		if (g->raft == NULL)
			continue;
		raft_tick_timers(g->raft);
		if (n->cfg.apply_entries_max != 0)
			raft_set_apply_limit(g->raft, n->cfg.apply_entries_max);
	}
}

/* A core not on the awake list is quiesced and holds no lease (raft/quiesce.c dropped it): its
 * clock may stand still. Once woken it is on the list, and its clock advances from then on by
 * at least the time since it woke; only rounds sent after waking renew its lease. */
void node_advance_group_clocks(struct node *n, uint64_t ticks)
{
	for (uint32_t i = 0; i < n->n_awake; i++) {
		struct node_group *g = &n->groups[n->awake[i]];
		if (g->raft != NULL)
			raft_advance_clock(g->raft, ticks);
	}
}

static int member_index(struct node *n, uint64_t id)
{
	return node_config_member_index(&n->cfg, id);
}

static void mark_unreachable(struct node *n, struct node_group *g, uint64_t to)
{
	int mi = member_index(n, to);
	if (mi >= 0)
		g->unreachable[mi] = true;
}

void node_send_msg(struct node *n, struct node_group *g, const struct raft_message *m)
{
	Ringraft__Raft__Message pb;
	Ringraft__Raft__Configuration conf;
	if (node_msg_to_pb(g->id, m, &n->scratch, &pb, &conf) < 0) {
		mark_unreachable(n, g, m->to);
		return;
	}
	if (node_peer_send(n, m->to, NODE_FIELD_MSG, &pb.base) != 0)
		mark_unreachable(n, g, m->to);
}

static void hold_msg(struct node *n, struct node_group *g, const struct raft_message *m)
{
	struct node_batch *b = n->cur;
	Ringraft__Raft__Message pb;
	Ringraft__Raft__Configuration conf;
	if (node_msg_to_pb(g->id, m, &n->scratch, &pb, &conf) < 0)
		node_fatal(n, g->id, "out of memory holding a message");
	size_t len = ringraft__raft__message__get_packed_size(&pb);
	uint8_t *buf = malloc(len ? len : 1);
	if (buf == NULL)
		node_fatal(n, g->id, "out of memory holding a message");
	ringraft__raft__message__pack(&pb, buf);
	if (b->n_held == b->cap_held) {
		size_t cap = b->cap_held ? b->cap_held * 2 : 64;
		struct node_held *h = realloc(b->held, cap * sizeof *h);
		if (h == NULL)
			node_fatal(n, g->id, "out of memory holding a message");
		b->held = h;
		b->cap_held = cap;
	}
	b->held[b->n_held++] = (struct node_held){m->to, g->id, buf, len};
}

static void release_held(struct node *n, struct node_batch *b)
{
	for (size_t i = 0; i < b->n_held; i++) {
		struct node_held *h = &b->held[i];
		int rc = n->io.peer_send_packed(n->io.arg, h->to, NODE_FIELD_MSG, h->buf, h->len);
		if (rc != 0) {
			struct node_group *g = node_group(n, h->group);
			if (g != NULL)
				mark_unreachable(n, g, h->to);
		}
		free(h->buf);
	}
	b->n_held = 0;
}

struct apply_ctx {
	struct node *n;
	struct node_group *g;
};

static void apply_entry_cb(const struct raft_entry *e, const struct kv_result *res, void *arg)
{
	struct apply_ctx *ctx = arg;
	node_service_applied(ctx->n, ctx->g, e, res);
}

static void apply_committed(struct node *n, struct node_group *g, const struct raft_entry *es,
			    size_t count)
{
	if (count == 0)
		return;
	bool has_conf = false;
	for (size_t i = 0; i < count; i++)
		if (es[i].type == RAFT_ENTRY_CONF)
			has_conf = true;
	struct apply_ctx ctx = {n, g};
	uint64_t t0 = node_now_ns(n);
	int rc = kv_apply(n->kv, g->id, es, count, has_conf ? raft_conf_of(g->raft) : NULL,
			  apply_entry_cb, &ctx);
	if (rc == KV_ECORRUPT) {
		/* a compare met a damaged value: nothing applied; the replica is rebuilt */
		node_group_damaged(n, g, "an apply");
		return;
	}
	if (rc == KV_ENOSPC)
		node_stop_disk_full(n, g->id, "applying committed entries to LMDB");
	if (rc != KV_OK)
		node_fatal(n, g->id, "apply failed first=%llu last=%llu error=\"%s\"",
			   (unsigned long long)es[0].index, (unsigned long long)es[count - 1].index,
			   kv_strerror(rc));
	node_metrics_apply(&n->metrics, count, t0, node_now_ns(n));
	node_service_apply_done(n, g, es[count - 1].index);
}

static void soft_state(struct node *n, struct node_group *g, const struct raft_update *u)
{
	if (!u->soft_changed)
		return;
	enum raft_role was = g->role;
	g->role = u->soft.role;
	if (g->leader != u->soft.leader || was != g->role)
		node_log(NODE_LOG_INFO, g->id, "role changed role=%s leader=%llu term=%llu",
			 raft_role_name(u->soft.role), (unsigned long long)u->soft.leader,
			 (unsigned long long)raft_term_of(g->raft));
	g->leader = u->soft.leader;
	if (g->role == RAFT_LEADER && was != RAFT_LEADER)
		g->leader_since_ms = node_now_ms(n);
	if (was == RAFT_LEADER && g->role != RAFT_LEADER)
		node_service_lost_leadership(n, g);
}

static void handle_ready(struct node *n, struct node_group *g)
{
	struct raft_update u;
	raft_ready(g->raft, &u);
	struct wal_batch *b = n->cur->b;
	int rc = 0;
	if (u.has_hard_state) {
		/* Only the commit index moved: no fdatasync needed for it (wal.h) */
		const struct raft_hard_state *hs = &u.hard_state, *was = &g->hs_logged;
		bool lazy = g->hs_known && hs->term == was->term && hs->vote == was->vote &&
			    hs->recovering == was->recovering;
		rc = lazy ? wal_batch_hard_state_lazy(b, g->id, hs)
			  : wal_batch_hard_state(b, g->id, hs);
		g->hs_logged = *hs;
		g->hs_known = true;
	}
	if (rc == 0 && u.truncate_from != 0)
		rc = wal_batch_truncate(b, g->id, u.truncate_from);
	if (rc == 0 && u.n_entries > 0)
		rc = wal_batch_entries(b, g->id, u.entries, u.n_entries);
	if (rc != 0)
		node_fatal(n, g->id, "cannot add to the WAL batch error=\"%s\"", wal_strerror(rc));
	if (u.snap_chunk != NULL)
		node_snap_receive(n, g, u.snap_chunk);

	for (size_t i = 0; i < u.n_msgs; i++)
		node_send_msg(n, g, &u.msgs[i]);
	for (size_t i = 0; i < u.n_msgs_after_persist; i++)
		hold_msg(n, g, &u.msgs_after_persist[i]);

	struct raft_snapshot_request reqs[NODE_NODES_MAX];
	size_t n_reqs = 0;
	for (size_t i = 0; i < u.n_snap_reqs && n_reqs < NODE_NODES_MAX; i++)
		reqs[n_reqs++] = u.snap_reqs[i];

	bool applied = u.n_committed > 0;
	apply_committed(n, g, u.committed, u.n_committed);
	soft_state(n, g, &u);
	if (u.conf_changed)
		node_group_hosts_from(g, &u.conf);
	node_service_read_states(n, g, u.reads, u.n_reads, u.reads_dropped, u.n_reads_dropped);
	raft_advance(g->raft, &u);
	if (u.has_hard_state && u.hard_state.recovering != g->recovering) {
		g->recovering = u.hard_state.recovering;
		if (g->recovering)
			node_log(NODE_LOG_WARN, g->id,
				 "replica recovering: it does not vote or serve until a leader has "
				 "brought it up to date");
		else
			node_log(NODE_LOG_WARN, g->id,
				 "replica recovered: it votes and serves again term=%llu",
				 (unsigned long long)raft_term_of(g->raft));
	}

	/* Events for the core only after advance. */
	for (size_t i = 0; i < n_reqs; i++)
		node_snap_serve(n, g, &reqs[i]);
	for (size_t i = 0; i < n->cfg.n_members; i++) {
		if (g->unreachable[i]) {
			g->unreachable[i] = false;
			raft_report_unreachable(g->raft, n->cfg.members[i].id);
		}
	}
	node_service_reads_ready(n, g);
	node_move_after_update(n, g);
	if (applied)
		node_trim_log(n, g);
}

/* The batch in flight is durable: the cores learn how far, the messages that waited for it
 * go out, and the next batch may be written. */
void node_wal_durable(struct node *n)
{
	struct node_batch *b = n->inflight;
	assert(b != NULL);
	const struct wal_durable *d;
	size_t nd = wal_batch_durable(b->b, &d);
	for (size_t i = 0; i < nd; i++) {
		struct node_group *g = node_group(n, d[i].group);
		if (g != NULL && g->raft != NULL) {
			raft_persisted(g->raft, d[i].index, d[i].term);
			if (raft_has_ready(g->raft))
				node_group_awake(n, g);
		}
	}
	node_metrics_wal_write_done(&n->metrics);
	release_held(n, b);
	wal_batch_reset(b->b);
	n->inflight = NULL;
}

/* Hands the turn's batch to the shell when none is in flight; true when it released held
 * messages instead (nothing of theirs left to make durable), which then want a flush. */
static bool start_write(struct node *n)
{
	if (n->inflight != NULL)
		return false;
	struct node_batch *b = n->cur;
	bool held = b->n_held > 0;
	if (wal_batch_empty(b->b)) {
		/* Nothing new to make durable: what the held messages depend on already is. */
		release_held(n, b);
		return held;
	}
	/* Only commit indexes moved (lazy hard states: nothing waits for them, wal.h): they stay
	 * in the batch and go with the next one that is synced, instead of a write of their own
	 * that the next entries would queue behind (with one client, every put made each node
	 * write twice). Nothing is in flight, so what the held messages depend on is durable.
	 * A stopping node writes them: its restart then knows how far it had committed. */
	if (!wal_batch_needs_sync(b->b) && !b->checkpoint && !n->stopping) {
		release_held(n, b);
		return held;
	}
	node_metrics_wal_batch(&n->metrics, wal_batch_bytes(b->b), wal_batch_records(b->b));
	n->inflight = b;
	n->cur = (b == &n->batches[0]) ? &n->batches[1] : &n->batches[0];
	assert(n->cur->n_held == 0 && wal_batch_empty(n->cur->b));
	bool compact = b->checkpoint;
	b->checkpoint = false;
	n->io.wal_write(n->io.arg, b->b, compact);
	return false;
}

bool node_write_idle(const struct node *n)
{
	return n->inflight == NULL && wal_batch_empty(n->cur->b) && n->cur->n_held == 0 &&
	       n->ckpt == NULL;
}

void node_process(struct node *n)
{
	if (n->processing)
		return; /* re-entered from a callback: the outer call finishes the turn */
	n->processing = true;
	for (int round = 0; round < 8; round++) {
		bool any = false;
		if (n->drive.kick) {
			n->drive.kick = false; /* a copy's next step (reshard_drive.c) */
			node_reshard_drive_tick(n);
		}
		for (uint32_t i = 0; i < n->n_awake; i++) {
			struct node_group *g = &n->groups[n->awake[i]];
			if (g->raft != NULL && raft_has_ready(g->raft)) {
				handle_ready(n, g);
				if (g->id == node_meta_id(n))
					node_members_reload(n);
				any = true;
			}
		}
		if (!any)
			break;
	}
	awake_prune(n);
	node_repair(n);
	node_move_maintain(n);
	/* The turn's messages leave before its batch is handed over, so followers start on the
	 * entries at once (against the hand-off first, one client's put measured the same:
	 * docs/PERFORMANCE.md "Two writes per put became one"). */
	n->io.flush(n->io.arg);
	if (start_write(n))
		n->io.flush(n->io.arg);
	n->processing = false;
}

void node_peer_frame(struct node *n, uint64_t from, const Ringraft__Raft__PeerFrame *f)
{
	if (n->draining)
		return; /* the batch pending is to be the last one */
	for (size_t i = 0; i < f->n_msgs; i++) {
		const Ringraft__Raft__Message *pb = f->msgs[i];
		struct node_group *g = node_group(n, pb->group);
		if (g == NULL && pb->from == from && pb->to == n->cfg.id)
			g = node_group_added_for_msg(n, pb->group, from,
						     (enum raft_msg_type)pb->type, pb->term);
		else if (g != NULL && g->raft == NULL && pb->from == from && pb->to == n->cfg.id)
			(void)node_group_create(n, g, from, (enum raft_msg_type)pb->type, pb->term);
		if (g == NULL || g->raft == NULL || pb->from != from || pb->to != n->cfg.id) {
			node_log(NODE_LOG_DEBUG, 0, "peer message ignored from=%llu group=%llu",
				 (unsigned long long)from, (unsigned long long)pb->group);
			continue;
		}
		struct raft_message m;
		if (node_msg_from_pb(pb, &n->scratch, &m) < 0) {
			node_log(NODE_LOG_WARN, g->id, "malformed peer message from=%llu",
				 (unsigned long long)from);
			continue;
		}
		if (m.type == RAFT_MSG_APPEND || m.type == RAFT_MSG_HEARTBEAT ||
		    m.type == RAFT_MSG_SNAPSHOT || m.type == RAFT_MSG_QUIESCE)
			g->leader_msg_tick = n->ticks; /* move.c: a leader knows us */
		int rc = raft_step(g->raft, &m);
		if (rc != 0)
			node_log(NODE_LOG_DEBUG, g->id,
				 "step refused from=%llu type=%u error=\"%s\"",
				 (unsigned long long)from, m.type, raft_strerror(rc));
		node_gone_maybe_send(n, g, from);
	}
	for (size_t i = 0; i < f->n_gone; i++)
		node_gone_received(n, from, f->gone[i]);
	for (size_t i = 0; i < f->n_digests; i++)
		node_digest_received(n, from, f->digests[i]);
	for (size_t i = 0; i < f->n_forwarded_requests; i++)
		node_service_forwarded(n, from, &f->forwarded_requests[i]);
	for (size_t i = 0; i < f->n_forwarded_responses; i++)
		node_service_forward_reply(n, from, &f->forwarded_responses[i]);
	for (size_t i = 0; i < f->n_member_maps; i++)
		node_members_received(n, from, &f->member_maps[i]);
	for (size_t i = 0; i < f->n_confs; i++)
		node_rebalance_received(n, from, f->confs[i]);
	for (size_t i = 0; i < f->n_auth_states; i++)
		node_auth_received(n, from, f->auth_states[i]);
}
