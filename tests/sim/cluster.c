/* cluster.c — the simulated cluster: nodes, the driver loop of each, crashes and restarts.
 *
 * Each node is driven exactly as raft.h's driver loop says (send, batch to disk, hold
 * msgs_after_persist, apply, answer reads, advance, serve snapshots, compact). Every event is
 * one step, and the invariants are checked after each one.
 */
#include <stdlib.h>
#include <string.h>

#include "tests/sim/sim.h"

static void node_start(struct cluster *c, struct node *n);

void cluster_init(struct cluster *c, uint64_t seed, int n_voters, const struct raft_config *cfg)
{
	memset(c, 0, sizeof(*c));
	c->seed = seed;
	rng_seed(&c->rng, seed);
	c->cfg = *cfg;
	net_init(&c->net);
	inv_init(&c->inv);
	c->next_uid = 1;
	c->next_read = 1;
	c->disk_lat_min = 1;
	c->disk_lat_max = 1;
	struct raft_conf conf;
	memset(&conf, 0, sizeof(conf));
	for (int i = 1; i <= n_voters; i++)
		conf.voters[conf.n_voters++] = (raft_id)i;
	for (int i = 1; i <= n_voters; i++) {
		struct node *n = &c->nodes[i];
		n->exists = true;
		n->id = (raft_id)i;
		disk_init(&n->disk);
		n->snap.conf = conf; /* the bootstrap configuration */
	}
	c->boot_conf = conf;
	c->max_id = n_voters;
}

/* Starts every node created by cluster_init (separate so callers can set latencies first). */
void cluster_start(struct cluster *c)
{
	for (int i = 1; i <= c->max_id; i++)
		if (c->nodes[i].exists && !c->nodes[i].alive)
			node_start(c, &c->nodes[i]);
}

void cluster_destroy(struct cluster *c)
{
	for (int i = 1; i <= SIM_NODES_MAX; i++) {
		struct node *n = &c->nodes[i];
		if (n->r)
			raft_free(n->r);
		disk_destroy(&n->disk);
		free(n->snap.data);
		free(n->stage);
	}
	net_destroy(&c->net);
	inv_destroy(&c->inv);
}

void cluster_add_node(struct cluster *c, raft_id id)
{
	if (id < 1 || id > SIM_NODES_MAX || c->nodes[id].exists)
		return;
	struct node *n = &c->nodes[id];
	memset(n, 0, sizeof(*n));
	n->exists = true;
	n->id = id;
	disk_init(&n->disk);
	if ((int)id > c->max_id)
		c->max_id = (int)id;
	node_start(c, n); /* empty: no configuration, it learns one from the leader */
}

static void node_start(struct cluster *c, struct node *n)
{
	n->disk.lat_min = c->disk_lat_min;
	n->disk.lat_max = c->disk_lat_max;
	struct raft_restore rs;
	memset(&rs, 0, sizeof(rs));
	rs.hard_state = n->disk.hs;
	rs.snap_index = n->snap.index;
	rs.snap_term = n->snap.term;
	rs.conf = n->snap.conf;
	size_t k = 0;
	while (k < n->disk.n_log && n->disk.log[k].index <= n->snap.index)
		k++;
	rs.entries = n->disk.log + k;
	rs.n_entries = n->disk.n_log - k;
	rs.applied = n->sm.applied;
	if (rs.n_entries && rs.entries[0].index != n->snap.index + 1)
		sim_fail(c, "sim: node %llu durable log starts at %llu after snapshot %llu",
			 (unsigned long long)n->id, (unsigned long long)rs.entries[0].index,
			 (unsigned long long)n->snap.index);
	struct raft_config cfg = c->cfg;
	cfg.id = n->id;
	cfg.seed = rng_next(&c->rng);
	n->r = raft_new(&cfg, &rs);
	if (!n->r) {
		fprintf(stderr, "sim: raft_new failed\n");
		abort();
	}
	n->alive = true;
	n->paused_until = 0;
	n->incarnation++;
	n->next_tick = c->now + rng_range(&c->rng, 1, SIM_TICK);
	n->tick_period = SIM_TICK;
	if (c->clock_drift_pm) { /* this node's clock runs a little fast or slow */
		uint64_t d = SIM_TICK * c->clock_drift_pm / 1000;
		n->tick_period = SIM_TICK - d + rng_range(&c->rng, 0, 2 * d);
	}
	n->clock_first = n->next_tick;
	n->clock_given = 0;
	n->n_props = 0;
	n->n_reads = 0;
	n->last_role = raft_role_of(n->r);
	n->last_term = raft_term_of(n->r);
	n->last_after_restart = raft_last_index(n->r);
	n->leader_checked_term = 0;
	inv_on_restart(c, n, &rs);
	cluster_drive(c, n);
}

void cluster_crash(struct cluster *c, raft_id id)
{
	struct node *n = &c->nodes[id];
	if (!n->exists || !n->alive)
		return;
	size_t pending = n->disk.n_pending;
	n->last_before_crash = raft_last_index(n->r);
	n->conf_at_crash = *raft_conf_of(n->r);
	c->inv.crashes++;
	raft_free(n->r);
	n->r = NULL;
	n->alive = false;
	size_t written = disk_crash(&n->disk, &c->rng, c->crash_written_pm);
	trace_ev(c, TR_CRASH, id, n->last_before_crash, disk_last_index(&n->disk),
		 pending << 16 | written);
	n->n_props = 0;
	n->n_reads = 0;
	free(n->stage);
	n->stage = NULL;
	n->stage_len = 0;
}

void cluster_pause(struct cluster *c, raft_id id, uint64_t until)
{
	struct node *n = &c->nodes[id];
	if (!n->alive)
		return;
	n->paused_until = until;
	trace_ev(c, TR_PAUSE, id, until, 0, 0);
}

static bool paused(const struct cluster *c, const struct node *n)
{
	return n->paused_until > c->now;
}

void cluster_restart(struct cluster *c, raft_id id)
{
	struct node *n = &c->nodes[id];
	if (!n->exists || n->alive)
		return;
	node_start(c, n);
	trace_ev(c, TR_RESTART, id, raft_last_index(n->r), raft_commit_of(n->r),
		 raft_term_of(n->r));
	/* The others' links to it come back: what it acknowledged before may be gone (a torn
	 * tail, or everything after a wipe), so a leader probes it afresh. A paused process
	 * notices nothing until it resumes; it is told nothing (its progress is reset anyway
	 * when the peer answers `recovering`, or by the first rejected probe). */
	for (int i = 1; i <= c->max_id && !c->failed; i++) {
		struct node *o = &c->nodes[i];
		if ((raft_id)i == id || !o->alive || paused(c, o))
			continue;
		raft_peer_reset(o->r, id);
		cluster_drive(c, o);
	}
	inv_check(c);
}

bool cluster_lost_state(const struct cluster *c, raft_id id)
{
	const struct node *n = &c->nodes[id];
	return n->exists && n->disk.hs.recovering;
}

/* The rule that keeps a wipe from losing committed data by definition. A recovering replica
 * counts in no quorum, so the nodes that did not lose state must still form a quorum of every
 * configuration, and every committed entry must still be held by a node that did not lose it:
 *  - at most one node has lost state and not yet durably left recovery (wiping it again is
 *    fine: still one);
 *  - every configuration a node knows has at least 3 voters (with 2, the one left
 *    cannot elect or commit without the recovering one: no progress, ever; run.c also refuses
 *    removals that would go below 3 voters while a node is recovering);
 *  - only members of the bootstrap configuration are wiped: they restart with it, as kvd
 *    restarts with its original --peers flags. A node added later was started with no
 *    configuration at all (it learns it from the leader); restarted empty it would have no
 *    voter to fence against and would leave recovery at once, so it cannot be wiped safely
 *    without the configuration it was added with, which the simulator does not model. */
bool cluster_may_wipe(const struct cluster *c, raft_id id)
{
	if (id < 1 || id > c->boot_conf.n_voters || c->boot_conf.n_voters < 3)
		return false;
	for (int i = 1; i <= c->max_id; i++) {
		const struct node *o = &c->nodes[i];
		if ((raft_id)i != id && cluster_lost_state(c, (raft_id)i))
			return false;
		if (!o->exists)
			continue;
		/* a crashed node's configuration (as it was in memory: at least what its durable
		 * log holds) comes back when it restarts */
		const struct raft_conf *cf = o->alive ? raft_conf_of(o->r) : &o->conf_at_crash;
		if (cf->n_voters > 0 && cf->n_voters < 3)
			return false;
	}
	return true;
}

void cluster_wipe(struct cluster *c, raft_id id)
{
	struct node *n = &c->nodes[id];
	if (!n->exists)
		return;
	if (n->alive)
		cluster_crash(c, id);
	raft_index durable_last = disk_last_index(&n->disk);
	raft_index applied = n->sm.applied;
	disk_destroy(&n->disk);
	disk_init(&n->disk);
	n->disk.hs.recovering = true; /* kvd started on an empty directory records it first */
	sm_reset(&n->sm);
	free(n->snap.data);
	memset(&n->snap, 0, sizeof(n->snap));
	n->snap.conf = c->boot_conf;
	/* A new life: what it acknowledged before is gone with its log. The invariants that
	 * follow one node across restarts (durable commit, applied, term and vote never go
	 * back; acknowledged entries kept) start over from zero; the cluster-wide ones do not. */
	n->acked_index = 0;
	n->acked_term = 0;
	n->seen_commit = 0;
	n->wipes++;
	c->inv.wipes++;
	trace_ev(c, TR_WIPE, id, durable_last, applied, n->wipes);
}

/* ------------------------------------------------------------------------------ applying */

static void ack_proposals(struct cluster *c, struct node *n, const struct raft_entry *e)
{
	for (int i = 0; i < n->n_props;) {
		struct proposal *p = &n->props[i];
		if (p->index > e->index) {
			i++;
			continue;
		}
		if (p->index == e->index && p->term == e->term) {
			if (e->index > c->inv.max_acked)
				c->inv.max_acked = e->index;
			c->inv.acked++;
			if (p->liveness && !c->liveness_ok) {
				c->liveness_ok = true;
				c->liveness_index = e->index;
			}
		}
		n->props[i] = n->props[--n->n_props];
	}
}

static void apply_entry(struct cluster *c, struct node *n, const struct raft_entry *e)
{
	inv_on_apply(c, n, e);
	if (e->type == RAFT_ENTRY_NORMAL)
		sm_apply(&n->sm, e->index, e->data.base, e->data.len);
	else
		n->sm.applied = e->index;
	trace_ev(c, TR_APPLY, n->id, e->index, e->term, e->type);
	ack_proposals(c, n, e);
}

static void answer_reads(struct cluster *c, struct node *n)
{
	for (int i = 0; i < n->n_reads;) {
		struct read_req *rr = &n->reads[i];
		if (rr->index == 0 || rr->index > n->sm.applied) {
			i++;
			continue;
		}
		inv_on_read(c, n, rr);
		c->inv.reads_done++;
		trace_ev(c, TR_READ_DONE, n->id, rr->ctx, rr->index, n->sm.applied);
		n->reads[i] = n->reads[--n->n_reads];
	}
}

/* ------------------------------------------------------------------------------ snapshots */

static void snap_set(struct snapshot *s, raft_index index, raft_term term,
		     const struct raft_conf *conf, char *data, size_t len)
{
	free(s->data);
	s->index = index;
	s->term = term;
	s->conf = *conf;
	s->data = data;
	s->len = len;
}

/* A follower stages an incoming chunk; on the last one it installs the snapshot (durable at
 * once, like replacing the LMDB DBIs in one transaction). Returns true when installed. */
static bool stage_chunk(struct cluster *c, struct node *n, const struct raft_snapshot_chunk_in *ch)
{
	if (ch->offset == 0) {
		free(n->stage);
		n->stage = NULL;
		n->stage_len = 0;
		n->stage_index = ch->index;
	}
	if (ch->index != n->stage_index || ch->offset != n->stage_len) {
		sim_fail(c,
			 "node %llu: snapshot chunk (index %llu, offset %llu) does not follow "
			 "staged (index %llu, %zu bytes)",
			 (unsigned long long)n->id, (unsigned long long)ch->index,
			 (unsigned long long)ch->offset, (unsigned long long)n->stage_index,
			 n->stage_len);
		return false;
	}
	if (n->stage_len + ch->data.len > SIM_SNAP_BYTES_MAX) {
		sim_fail(c, "node %llu: snapshot larger than any we serve",
			 (unsigned long long)n->id);
		return false;
	}
	n->stage = realloc(n->stage, n->stage_len + ch->data.len + 1);
	if (!n->stage)
		abort();
	if (ch->data.len)
		memcpy(n->stage + n->stage_len, ch->data.base, ch->data.len);
	n->stage_len += ch->data.len;
	if (!ch->done)
		return false;
	struct sm tmp;
	if (sm_deserialize(&tmp, n->stage, n->stage_len) != 0 || tmp.applied != ch->index) {
		sim_fail(c, "node %llu: installed snapshot %llu is not a state machine image at it",
			 (unsigned long long)n->id, (unsigned long long)ch->index);
		return false;
	}
	if (ch->skip_install) {
		/* log-only: the state machine is already past the snapshot (raft.h) */
		if (ch->index > n->sm.applied) {
			sim_fail(c,
				 "node %llu: snapshot %llu marked skip_install, state machine at "
				 "%llu",
				 (unsigned long long)n->id, (unsigned long long)ch->index,
				 (unsigned long long)n->sm.applied);
			return false;
		}
	} else if (ch->index < n->sm.applied) {
		sim_fail(c, "node %llu: snapshot %llu would move applied back from %llu",
			 (unsigned long long)n->id, (unsigned long long)ch->index,
			 (unsigned long long)n->sm.applied);
		return false;
	} else {
		n->sm = tmp;
	}
	snap_set(&n->snap, ch->index, ch->term, &ch->conf, n->stage, n->stage_len);
	n->stage = NULL;
	n->stage_len = 0;
	n->installs++;
	c->inv.installs++;
	trace_ev(c, TR_INSTALL, n->id, ch->index, ch->term, ch->skip_install);
	/* proposals at or below the snapshot can no longer be matched to their entry */
	for (int i = 0; i < n->n_props;) {
		if (n->props[i].index <= ch->index)
			n->props[i] = n->props[--n->n_props];
		else
			i++;
	}
	return true;
}

static void serve_snapshot(struct cluster *c, struct node *n, const struct raft_snapshot_request *q)
{
	if (!n->snap.data || n->snap.index != q->index || n->snap.term != q->term) {
		trace_ev(c, TR_NOTE, n->id, q->to, q->index, 1);
		raft_snapshot_chunk(n->r, q->to, q->index, q->offset, NULL, 0, true, true);
		return;
	}
	uint64_t off = q->offset > n->snap.len ? n->snap.len : q->offset;
	size_t len = n->snap.len - off;
	if (q->len_max && len > q->len_max)
		len = q->len_max;
	bool last = off + len == n->snap.len;
	raft_snapshot_chunk(n->r, q->to, q->index, off, n->snap.data + off, len, last, false);
}

/* Compacts at the applied index: the durable state machine image is the snapshot. Only when
 * the conf at that index is known (no conf entry after it) and the durable log already holds
 * that entry (so the snapshot marker never jumps over a pending truncation). */
static int do_compact(struct cluster *c, struct node *n, raft_index trailing)
{
	raft_index at = n->sm.applied;
	const struct raft_entry *e = raft_entry_at(n->r, at);
	if (at == 0 || at <= n->snap.index || !e)
		return -1;
	raft_term term = e->term;
	for (raft_index i = at + 1; i <= raft_last_index(n->r); i++) {
		const struct raft_entry *x = raft_entry_at(n->r, i);
		if (x && x->type == RAFT_ENTRY_CONF)
			return -1;
	}
	const struct disk *d = &n->disk;
	if (d->n_log == 0 || d->log[0].index > at || disk_last_index(d) < at ||
	    d->log[at - d->log[0].index].term != term)
		return -1;
	struct raft_conf conf = *raft_conf_of(n->r);
	int rc = raft_compact(n->r, at, trailing);
	if (rc != 0)
		return rc;
	char *buf = malloc(SIM_SNAP_BYTES_MAX);
	if (!buf)
		abort();
	size_t len = sm_serialize(&n->sm, buf, SIM_SNAP_BYTES_MAX);
	snap_set(&n->snap, at, term, &conf, buf, len);
	disk_compact(&n->disk, at);
	n->compactions++;
	c->inv.compactions++;
	trace_ev(c, TR_COMPACT, n->id, at, term, trailing);
	return 0;
}

int cluster_compact(struct cluster *c, raft_id id, raft_index index, raft_index trailing)
{
	struct node *n = &c->nodes[id];
	if (!n->alive)
		return -1;
	if (index != n->sm.applied)
		return -2;
	int rc = do_compact(c, n, trailing);
	cluster_drive(c, n);
	inv_check(c);
	return rc;
}

/* ------------------------------------------------------------------------------ the driver */

void cluster_drive(struct cluster *c, struct node *n)
{
	struct raft_update u;
	for (int guard = 0; n->alive && raft_has_ready(n->r); guard++) {
		if (guard > 10000) {
			sim_fail(c, "node %llu: raft_has_ready never settles",
				 (unsigned long long)n->id);
			return;
		}
		raft_ready(n->r, &u);

		/* 1. persistence: one disk batch */
		struct disk_batch *b = calloc(1, sizeof(*b));
		if (!b)
			abort();
		b->has_hs = u.has_hard_state;
		b->hs = u.hard_state;
		b->truncate_from = u.truncate_from;
		if (u.n_entries) {
			inv_on_append(c, n, u.entries, u.n_entries);
			b->entries = entries_copy(u.entries, u.n_entries);
			b->n_entries = u.n_entries;
			b->last_index = u.entries[u.n_entries - 1].index;
			b->last_term = u.entries[u.n_entries - 1].term;
		}
		bool installed = false;
		raft_index snap_index = 0;
		if (u.snap_chunk) {
			installed = stage_chunk(c, n, u.snap_chunk);
			snap_index = u.snap_chunk->index;
			if (installed && !b->last_index) {
				b->last_index = u.snap_chunk->index;
				b->last_term = u.snap_chunk->term;
			}
		}

		/* 2. messages: now, and after this batch is durable */
		for (size_t i = 0; i < u.n_msgs; i++)
			net_send(&c->net, &c->rng, c->now, &u.msgs[i]);
		if (u.n_msgs_after_persist) {
			b->msgs = calloc(u.n_msgs_after_persist, sizeof(*b->msgs));
			if (!b->msgs)
				abort();
			for (size_t i = 0; i < u.n_msgs_after_persist; i++)
				b->msgs[i] = msg_copy(&u.msgs_after_persist[i]);
			b->n_msgs = u.n_msgs_after_persist;
		}
		struct raft_snapshot_request reqs[RAFT_NODES_MAX]; /* one in flight per peer */
		size_t n_reqs = u.n_snap_reqs;
		if (n_reqs > RAFT_NODES_MAX) {
			sim_fail(c, "node %llu: %zu snapshot requests in one update",
				 (unsigned long long)n->id, n_reqs);
			n_reqs = RAFT_NODES_MAX;
		}
		if (n_reqs)
			memcpy(reqs, u.snap_reqs, n_reqs * sizeof(*reqs));

		/* 3. apply */
		for (size_t i = 0; i < u.n_committed && !c->failed; i++)
			apply_entry(c, n, &u.committed[i]);

		/* 4. reads */
		for (size_t i = 0; i < u.n_reads; i++)
			for (int j = 0; j < n->n_reads; j++)
				if (n->reads[j].ctx == u.reads[i].ctx && n->reads[j].index == 0)
					n->reads[j].index = u.reads[i].index ? u.reads[i].index : 1;
		for (size_t i = 0; i < u.n_reads_dropped; i++)
			for (int j = 0; j < n->n_reads; j++)
				if (n->reads[j].ctx == u.reads_dropped[i]) {
					c->inv.reads_dropped++;
					n->reads[j] = n->reads[--n->n_reads];
					break;
				}

		if (b->has_hs || b->truncate_from || b->n_entries || b->n_msgs || u.snap_chunk) {
			disk_submit(&n->disk, &c->rng, c->now, b);
			if (installed)
				disk_install(&n->disk, snap_index, b);
		} else {
			disk_batch_free(b);
		}
		raft_advance(n->r, &u);

		for (size_t i = 0; i < n_reqs; i++)
			serve_snapshot(c, n, &reqs[i]);
		answer_reads(c, n);
		if (c->compact_threshold && n->sm.applied >= raft_first_index(n->r) &&
		    n->sm.applied - raft_first_index(n->r) >= (raft_index)c->compact_threshold)
			do_compact(c, n, (raft_index)c->compact_trailing);
	}
}

/* ------------------------------------------------------------------------------ events */

/* The node's failure detector, as kvd's transport has one per peer link (net/peer.c): a peer
 * whose process died is seen at once (its connection closes); one that is cut off or paused is
 * seen after detect_ticks of silence. Seeing a peer down reports it unreachable to the core once
 * (which is what wakes a quiesced group whose leader it was, raft/quiesce.c). */
static void detect(struct cluster *c, struct node *n)
{
	if (c->detect_ticks == 0)
		return;
	for (int j = 1; j <= c->max_id; j++) {
		struct node *o = &c->nodes[j];
		if ((raft_id)j == n->id || !o->exists)
			continue;
		bool dead = !o->alive;
		bool silent = dead || c->net.cut[n->id][j] || c->net.cut[j][n->id] ||
			      o->paused_until > c->now;
		if (!silent) {
			n->down_since[j] = 0;
			n->down_seen[j] = false;
			continue;
		}
		if (n->down_seen[j])
			continue;
		if (n->down_since[j] == 0)
			n->down_since[j] = c->now + 1;
		if (dead || c->now + 1 - n->down_since[j] >= (uint64_t)c->detect_ticks * SIM_TICK) {
			n->down_seen[j] = true;
			raft_report_unreachable(n->r, (raft_id)j);
		}
	}
}

/* Lease runs: advances node n's clock to the ticks due by now on its own clock (rounded down:
 * never ahead of real time). Runs no timer and sends nothing. */
static void clock_catch_up(struct cluster *c, struct node *n)
{
	if (c->now < n->clock_first)
		return;
	uint64_t due = (c->now - n->clock_first) / n->tick_period + 1;
	if (due <= n->clock_given)
		return;
	uint64_t k = due - n->clock_given;
	raft_advance_clock(n->r, k);
	n->clock_given = due;
	if (k > 1)
		trace_ev(c, TR_CLOCK, n->id, k, due, 0);
}

void cluster_tick(struct cluster *c, raft_id id)
{
	struct node *n = &c->nodes[id];
	if (!n->alive)
		return;
	detect(c, n);
	c->steps++;
	n->next_tick += n->tick_period;
	/* resumed after a pause: missed timer ticks do not burst (with leases only the clock
	 * catches up, above) */
	if (n->next_tick <= c->now)
		n->next_tick = c->now + n->tick_period;
	if (c->lease_clock) {
		clock_catch_up(c, n);
		raft_tick_timers(n->r);
	} else {
		raft_tick(n->r);
	}
	trace_ev(c, TR_TICK, id, raft_term_of(n->r), raft_role_of(n->r), 0);
	cluster_drive(c, n);
	inv_check(c);
}

/* Lease runs: node id's clock catches up before it handles anything (a resumed process too). */
static void catch_up(struct cluster *c, raft_id id)
{
	struct node *n = &c->nodes[id];
	if (c->lease_clock && !c->failed && n->alive && !paused(c, n))
		clock_catch_up(c, n);
}

bool cluster_deliver_one(struct cluster *c)
{
	struct sim_msg *sm = net_pop(&c->net);
	if (!sm)
		return false;
	cluster_deliver_msg(c, sm);
	return true;
}

void cluster_deliver_msg(struct cluster *c, struct sim_msg *sm)
{
	c->steps++;
	const struct raft_message *m = &sm->m;
	raft_id to = m->to, from = m->from;
	if (to >= 1 && to <= SIM_NODES_MAX && c->nodes[to].alive && paused(c, &c->nodes[to]) &&
	    !c->net.cut[from][to]) {
		net_requeue(&c->net, c->nodes[to].paused_until, sm); /* waits in its socket */
		return;
	}
	if (to >= 1 && to <= SIM_NODES_MAX)
		catch_up(c, to);
	if (to < 1 || to > SIM_NODES_MAX || from < 1 || from > SIM_NODES_MAX ||
	    !c->nodes[to].alive || c->net.cut[from][to]) {
		trace_ev(c, TR_DROP, to, from << 8 | m->type, m->term, m->index);
		/* sometimes the sender's transport notices (connection refused / reset) */
		if (from >= 1 && from <= SIM_NODES_MAX && c->nodes[from].alive && !c->manual &&
		    rng_permille(&c->rng, 100)) {
			raft_report_unreachable(c->nodes[from].r, to);
			cluster_drive(c, &c->nodes[from]);
		}
	} else {
		struct node *n = &c->nodes[to];
		trace_ev(c, TR_RECV, to, from << 8 | m->type, m->term,
			 m->index << 16 | (uint64_t)m->reject << 15 | (m->n_entries & 0x7fff));
		raft_step(n->r, m);
		cluster_drive(c, n);
	}
	msg_free(sm);
	inv_check(c);
}

void cluster_persist_one(struct cluster *c, raft_id id)
{
	struct node *n = &c->nodes[id];
	if (!n->alive || !n->disk.head)
		return;
	catch_up(c, id);
	if (!n->alive || !n->disk.head)
		return;
	c->steps++;
	struct raft_hard_state old = n->disk.hs;
	struct disk_batch *b = disk_complete(&n->disk);
	inv_on_durable(c, n, b->n_entries);
	if (b->has_hs) {
		if (b->hs.term < old.term ||
		    (b->hs.term == old.term && old.vote && b->hs.vote != old.vote))
			sim_fail(c, "node %llu: durable term/vote went from %llu/%llu to %llu/%llu",
				 (unsigned long long)id, (unsigned long long)old.term,
				 (unsigned long long)old.vote, (unsigned long long)b->hs.term,
				 (unsigned long long)b->hs.vote);
		if (b->hs.commit < old.commit)
			sim_fail(c, "node %llu: durable commit went back from %llu to %llu",
				 (unsigned long long)id, (unsigned long long)old.commit,
				 (unsigned long long)b->hs.commit);
	}
	trace_ev(c, TR_PERSIST, id, b->last_index, b->last_term, b->n_msgs);
	bool granted = false;
	for (size_t i = 0; i < b->n_msgs; i++) {
		const struct raft_message *m = &b->msgs[i]->m;
		if (m->type == RAFT_MSG_VOTE_RESP && !m->reject) {
			c->last_granter = id;
			granted = true;
		}
		if (m->type == RAFT_MSG_APPEND_RESP && !m->reject) {
			c->last_acker = id;
			if (m->term != n->acked_term)
				n->acked_index = 0;
			if (m->index > n->acked_index)
				n->acked_index = m->index;
			n->acked_term = m->term;
		}
		net_send(&c->net, &c->rng, c->now, m);
	}
	if (b->last_index)
		raft_persisted(n->r, b->last_index, b->last_term);
	disk_batch_free(b);
	cluster_drive(c, n);
	inv_check(c);
	/* The worst moment to lose everything: the vote just left. Its answer still counts for
	 * the candidate; the node must not vote again in that term (recovery.c's fence). */
	if (granted && c->wipe_after_grant_pm && !c->failed &&
	    rng_permille(&c->rng, c->wipe_after_grant_pm) && cluster_may_wipe(c, id)) {
		cluster_wipe(c, id);
		cluster_restart(c, id);
	}
}

/* When node n can next complete a disk write / tick (a pause delays both). */
static uint64_t gated(const struct node *n, uint64_t t)
{
	return t < n->paused_until ? n->paused_until : t;
}

void cluster_run_until(struct cluster *c, uint64_t until)
{
	while (!c->failed) {
		uint64_t t = net_next_time(&c->net);
		for (int i = 1; i <= c->max_id; i++) {
			struct node *n = &c->nodes[i];
			if (!n->alive)
				continue;
			uint64_t d = gated(n, disk_next_time(&n->disk));
			if (d < t)
				t = d;
			if (gated(n, n->next_tick) < t)
				t = gated(n, n->next_tick);
		}
		if (t > until)
			break;
		if (t > c->now)
			c->now = t;
		bool done = false;
		for (int i = 1; i <= c->max_id && !done; i++) {
			struct node *n = &c->nodes[i];
			if (n->alive && gated(n, disk_next_time(&n->disk)) <= t) {
				cluster_persist_one(c, (raft_id)i);
				done = true;
			}
		}
		if (done)
			continue;
		if (net_next_time(&c->net) <= t) {
			cluster_deliver_one(c);
			continue;
		}
		for (int i = 1; i <= c->max_id && !done; i++) {
			struct node *n = &c->nodes[i];
			if (n->alive && gated(n, n->next_tick) <= t) {
				cluster_tick(c, (raft_id)i);
				done = true;
			}
		}
	}
	if (!c->failed && until > c->now)
		c->now = until;
}

/* ------------------------------------------------------------------------------ clients */

int cluster_propose(struct cluster *c, raft_id id, const char *op, bool liveness, raft_index *idx)
{
	struct node *n = &c->nodes[id];
	if (!n->alive || paused(c, n))
		return RAFT_ENOTLEADER;
	if (n->n_props == SIM_PENDING_MAX)
		return RAFT_EBUSY;
	catch_up(c, id);
	uint64_t uid = c->next_uid++;
	struct raft_buf buf;
	buf.base = sm_command(uid, op, &buf.len);
	raft_index index = 0;
	raft_term term = 0;
	int rc = raft_propose(n->r, &buf, &index, &term);
	trace_ev(c, TR_PROPOSE, id, uid, index, (uint64_t)(int64_t)rc);
	if (rc != 0) {
		free(buf.base);
		return rc;
	}
	n->props[n->n_props++] = (struct proposal){uid, index, term, liveness};
	if (idx)
		*idx = index;
	c->steps++;
	cluster_drive(c, n);
	inv_check(c);
	return 0;
}

int cluster_read(struct cluster *c, raft_id id, const char *key)
{
	struct node *n = &c->nodes[id];
	if (!n->alive || paused(c, n))
		return RAFT_ENOTLEADER;
	if (n->n_reads == SIM_PENDING_MAX)
		return RAFT_EBUSY;
	catch_up(c, id);
	uint64_t ctx = c->next_read++;
	bool lease = raft_lease_held(n->r);
	int rc = raft_read_index(n->r, ctx);
	if (rc == 0 && lease)
		c->lease_reads++;
	trace_ev(c, TR_READ, id, ctx, c->inv.max_acked, (uint64_t)(int64_t)rc);
	if (rc != 0)
		return rc;
	struct read_req *rr = &n->reads[n->n_reads++];
	memset(rr, 0, sizeof(*rr));
	rr->ctx = ctx;
	rr->floor = c->inv.max_acked;
	rr->begun = c->now;
	snprintf(rr->key, sizeof(rr->key), "%s", key);
	c->steps++;
	cluster_drive(c, n);
	inv_check(c);
	return 0;
}

int cluster_conf_change(struct cluster *c, raft_id via, enum raft_conf_change_type t, raft_id id)
{
	struct node *n = &c->nodes[via];
	if (!n->alive || paused(c, n) || id < 1 || id > SIM_NODES_MAX)
		return RAFT_ENOTLEADER;
	raft_index index = 0;
	int rc = raft_propose_conf_change(n->r, t, id, &index);
	trace_ev(c, TR_CONF, via, (uint64_t)t << 8 | id, index, (uint64_t)(int64_t)rc);
	if (rc != 0)
		return rc;
	c->inv.conf_changes++;
	c->steps++;
	if ((t == RAFT_CC_ADD_VOTER || t == RAFT_CC_ADD_LEARNER) && !c->nodes[id].exists)
		cluster_add_node(c, id);
	cluster_drive(c, n);
	inv_check(c);
	return 0;
}

int cluster_transfer(struct cluster *c, raft_id via, raft_id target)
{
	struct node *n = &c->nodes[via];
	if (!n->alive || paused(c, n))
		return RAFT_ENOTLEADER;
	int rc = raft_transfer_leader(n->r, target);
	trace_ev(c, TR_TRANSFER, via, target, 0, (uint64_t)(int64_t)rc);
	if (rc != 0)
		return rc;
	c->inv.transfers++;
	c->steps++;
	cluster_drive(c, n);
	inv_check(c);
	return 0;
}

void cluster_dump(const struct cluster *c, FILE *f)
{
	for (int i = 1; i <= c->max_id; i++) {
		const struct node *n = &c->nodes[i];
		if (!n->exists)
			continue;
		if (!n->alive) {
			fprintf(f, "  n%d crashed%s\n", i,
				n->disk.hs.recovering ? " (lost state)" : "");
			continue;
		}
		const struct raft_conf *cf = raft_conf_of(n->r);
		fprintf(f,
			"  n%d %-12s term=%llu leader=%llu first=%llu last=%llu commit=%llu "
			"applied=%llu pending-writes=%zu%s voters=",
			i, raft_role_name(raft_role_of(n->r)),
			(unsigned long long)raft_term_of(n->r),
			(unsigned long long)raft_leader_of(n->r),
			(unsigned long long)raft_first_index(n->r),
			(unsigned long long)raft_last_index(n->r),
			(unsigned long long)raft_commit_of(n->r), (unsigned long long)n->sm.applied,
			n->disk.n_pending,
			!raft_recovering(n->r)       ? ""
			: raft_recovery_fenced(n->r) ? " recovering(fenced)"
						     : " recovering(fencing)");
		for (uint32_t k = 0; k < cf->n_voters; k++)
			fprintf(f, "%s%llu", k ? "," : "", (unsigned long long)cf->voters[k]);
		fprintf(f, " learners=");
		for (uint32_t k = 0; k < cf->n_learners; k++)
			fprintf(f, "%s%llu", k ? "," : "", (unsigned long long)cf->learners[k]);
		fprintf(f, "\n");
	}
	fprintf(f, "  in flight: %zu messages\n", c->net.n);
}

raft_id cluster_leader(const struct cluster *c)
{
	raft_id best = 0;
	raft_term best_term = 0;
	for (int i = 1; i <= c->max_id; i++) {
		const struct node *n = &c->nodes[i];
		if (n->alive && raft_role_of(n->r) == RAFT_LEADER &&
		    raft_term_of(n->r) >= best_term) {
			best = (raft_id)i;
			best_term = raft_term_of(n->r);
		}
	}
	return best;
}
