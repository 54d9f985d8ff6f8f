/* raft.c — lifecycle of a replica, queries, the outgoing message queues, and the update
 * handed to the driver (raft_ready / raft_advance): what to persist, send, apply and answer.
 *
 * Routing rule (see raft.h, thesis 10.2.1): a message goes to msgs_after_persist when it
 * acknowledges or reveals state that may not be durable yet: every APPEND_RESP, VOTE_RESP,
 * SNAPSHOT_RESP and VOTE, and every message created while the term or vote differs from the
 * hard state last handed out (or by a single-voter leader before its first entry is durable).
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "raft/conf.h"
#include "raft/raft_impl.h"

const char *raft_strerror(int err)
{
	switch (err) {
	case RAFT_OK:
		return "ok";
	case RAFT_ENOMEM:
		return "out of memory";
	case RAFT_ENOTLEADER:
		return "not the leader";
	case RAFT_EINVAL:
		return "invalid argument";
	case RAFT_EBUSY:
		return "a configuration change or transfer is in progress";
	case RAFT_ETOOBIG:
		return "proposal too large";
	case RAFT_ECOMPACTED:
		return "index compacted";
	case RAFT_EUNAVAILABLE:
		return "index beyond the last entry";
	case RAFT_ETRANSFER:
		return "leadership transfer in progress";
	case RAFT_ELEARNER:
		return "target is not a voter";
	case RAFT_ECATCHUP:
		return "learner has not caught up with the leader";
	case RAFT_ERECOVERING:
		return "target is recovering lost state";
	}
	return "unknown error";
}

const char *raft_role_name(enum raft_role role)
{
	switch (role) {
	case RAFT_FOLLOWER:
		return "follower";
	case RAFT_PRECANDIDATE:
		return "precandidate";
	case RAFT_CANDIDATE:
		return "candidate";
	case RAFT_LEADER:
		return "leader";
	}
	return "?";
}

void raft_config_default(struct raft_config *cfg, raft_id id, uint64_t seed)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->id = id;
	cfg->seed = seed;
	cfg->election_ticks = 10;
	cfg->heartbeat_ticks = 1;
	cfg->pre_vote = true;
	cfg->check_quorum = true;
	cfg->max_inflight_msgs = 256;
	cfg->max_inflight_bytes = 32u << 20;
	cfg->max_msg_bytes = 1u << 20;
	cfg->snapshot_chunk_bytes = 1u << 20;
}

int raft_vec_grow(void **v, size_t *cap, size_t elem, size_t need)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap < 8 ? 8 : *cap * 2;
	while (n < need)
		n *= 2;
	void *p = realloc(*v, n * elem);
	if (p == NULL)
		return RAFT_ENOMEM;
	*v = p;
	*cap = n;
	return 0;
}

/* ------------------------------------------------------------------------------ lifecycle */

struct raft *raft_new(const struct raft_config *cfg, const struct raft_restore *rs)
{
	assert(cfg->id != 0);
	assert(cfg->election_ticks > cfg->heartbeat_ticks && cfg->heartbeat_ticks > 0);
	assert(rs->applied >= rs->snap_index);
	struct raft *r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NULL;
	r->cfg = *cfg;
	if (r->cfg.max_inflight_msgs == 0)
		r->cfg.max_inflight_msgs = 1;
	if (r->cfg.max_msg_bytes == 0)
		r->cfg.max_msg_bytes = 1;
	if (r->cfg.snapshot_chunk_bytes == 0)
		r->cfg.snapshot_chunk_bytes = 1u << 20;
	r->id = cfg->id;
	raft_rand_seed(&r->rng, cfg->seed);
	r->inflight_mem =
		calloc((size_t)RAFT_NODES_MAX * r->cfg.max_inflight_msgs, sizeof(*r->inflight_mem));
	if (r->inflight_mem == NULL) {
		free(r);
		return NULL;
	}
	for (uint32_t i = 0; i < RAFT_NODES_MAX; i++) {
		r->prs[i].buf = r->inflight_mem + (size_t)i * r->cfg.max_inflight_msgs;
		r->prs[i].cap = r->cfg.max_inflight_msgs;
	}
	raft_log_init(&r->log, rs->snap_index, rs->snap_term);
	for (size_t i = 0; i < rs->n_entries; i++) {
		assert(rs->entries[i].index == rs->snap_index + 1 + i);
		if (raft_log_append_copy(&r->log, &rs->entries[i]) != 0) {
			raft_free(r);
			return NULL;
		}
	}
	r->term = rs->hard_state.term;
	r->vote = rs->hard_state.vote;
	r->recovering = rs->hard_state.recovering;
	/* The state machine may be ahead of the durable commit index (it applied entries
	 * committed by a majority before our own copy was durable, then we crashed). Commit is
	 * NOT raised to `applied`: the durable log may hold other, stale entries at those indexes
	 * (a truncation that did not reach the disk), which the leader will overwrite. Entries up
	 * to `applied` are simply not handed out again when they commit. */
	r->commit = rs->hard_state.commit;
	if (r->commit < rs->snap_index)
		r->commit = rs->snap_index;
	/* A torn last WAL batch may keep its hard state record but lose some of its entries
	 * (raft.h orders hard state first): those entries are committed on a majority and come
	 * back from the leader, so commit restarts at our last entry. */
	if (r->commit > raft_log_last(&r->log))
		r->commit = raft_log_last(&r->log);
	r->applied = rs->applied;
	r->apply_limit = RAFT_APPLY_ALL;
	r->persisted = raft_log_last(&r->log);
	r->snap_index = rs->snap_index;
	r->snap_term = rs->snap_term;
	r->snap_conf = rs->conf;
	raft_rebuild_conf(r);
	r->role = RAFT_FOLLOWER;
	raft_reset_election_timer(r);
	/* lease.c: a restarted replica may have answered a leader's heartbeat just before it
	 * stopped; it forgot, so it refuses votes for a whole election timeout (stickiness). */
	r->heard_elapsed = r->cfg.lease_reads ? 0 : r->cfg.election_ticks;
	r->read_round_open = 1;
	r->unstable = raft_log_last(&r->log) + 1;
	r->hs_out = rs->hard_state;
	r->soft_out = (struct raft_soft_state){RAFT_FOLLOWER, 0};
	r->conf_out = r->conf;
	return r;
}

static void free_bufs(struct raft *r)
{
	for (size_t i = 0; i < r->bufs.n; i++)
		free(r->bufs.v[i]);
	r->bufs.n = 0;
}

void raft_free(struct raft *r)
{
	if (r == NULL)
		return;
	raft_log_close(&r->log);
	free_bufs(r);
	free(r->bufs.v);
	free(r->msgs.v);
	free(r->msgs_after.v);
	free(r->snap_reqs.v);
	free(r->reads.v);
	free(r->reads_out.v);
	free(r->reads_dropped.v);
	free(r->inflight_mem);
	free(r);
}

/* ------------------------------------------------------------------------------ helpers */

void raft_send(struct raft *r, struct raft_message *m)
{
	assert(m->to != 0 && m->to != r->id);
	m->from = r->id;
	m->recovering = r->recovering;
	bool after = m->type == RAFT_MSG_APPEND_RESP || m->type == RAFT_MSG_VOTE_RESP ||
		     m->type == RAFT_MSG_SNAPSHOT_RESP || m->type == RAFT_MSG_VOTE ||
		     r->term != r->hs_out.term || r->vote != r->hs_out.vote ||
		     (r->role == RAFT_LEADER && r->lead_unsynced);
	/* Allocation failure of an outgoing queue loses the message: Raft tolerates loss. */
	if (after)
		(void)RAFT_VEC_PUSH(r->msgs_after, *m);
	else
		(void)RAFT_VEC_PUSH(r->msgs, *m);
}

struct raft_progress *raft_progress_of(struct raft *r, raft_id id)
{
	for (uint32_t i = 0; i < r->n_prs; i++)
		if (r->prs[i].id == id)
			return &r->prs[i];
	return NULL;
}

uint32_t raft_quorum(const struct raft *r)
{
	return r->conf.n_voters / 2 + 1;
}

bool raft_is_voter(const struct raft *r)
{
	return raft_conf_is_voter(&r->conf, r->id);
}

bool raft_may_campaign(const struct raft *r)
{
	/* A server whose own removal is appended but not committed is still a voter of the
	 * committed configuration; it may hold the only up-to-date log, so it must be able to
	 * campaign or the cluster can deadlock (its votes are counted in the new one). */
	if (r->recovering)
		return false; /* it could win with a log that lacks committed entries */
	return raft_is_voter(r) ||
	       (r->conf_index > r->commit && raft_conf_is_voter(&r->conf_prev, r->id));
}

void raft_sync_progress(struct raft *r)
{
	/* drop peers that left */
	for (uint32_t i = 0; i < r->n_prs;) {
		if (!raft_conf_is_member(&r->conf, r->prs[i].id)) {
			struct raft_progress tmp = r->prs[i];
			r->prs[i] = r->prs[r->n_prs - 1];
			r->prs[r->n_prs - 1] = tmp;
			r->n_prs--;
		} else {
			i++;
		}
	}
	/* add newcomers, probing from the end of our log */
	const struct raft_conf *c = &r->conf;
	for (uint32_t k = 0; k < c->n_voters + c->n_learners; k++) {
		raft_id id = k < c->n_voters ? c->voters[k] : c->learners[k - c->n_voters];
		if (id == r->id || raft_progress_of(r, id) != NULL)
			continue;
		assert(r->n_prs < RAFT_NODES_MAX);
		raft_progress_reset(&r->prs[r->n_prs], id, raft_log_last(&r->log) + 1);
		r->n_prs++;
	}
}

static void conf_at(const struct raft *r, raft_index at, struct raft_conf *out, raft_index *idx);

static void conf_set(struct raft *r, const struct raft_conf *c, raft_index index)
{
	r->conf = *c;
	r->conf_index = index;
	/* the configuration before this one (O(entries back to the previous conf entry), once
	 * per configuration change) */
	raft_index pidx;
	if (index > r->log.offset)
		conf_at(r, index - 1, &r->conf_prev, &pidx);
	else
		r->conf_prev = *c;
	raft_sync_progress(r);
	if (r->transfer_target != 0 && !raft_conf_is_voter(&r->conf, r->transfer_target))
		raft_transfer_abort(r);
}

/* The configuration at index `at`: the last conf entry at or below it, else snap_conf.
 * O(entries scanned); used only on truncation, compaction and restart. */
static void conf_at(const struct raft *r, raft_index at, struct raft_conf *out, raft_index *idx)
{
	for (raft_index i = at; i > r->log.offset; i--) {
		const struct raft_entry *e = raft_log_get(&r->log, i);
		if (e->type == RAFT_ENTRY_CONF && raft_conf_decode(&e->data, out) == 0) {
			*idx = i;
			return;
		}
	}
	*out = r->snap_conf;
	*idx = r->snap_index;
}

void raft_rebuild_conf(struct raft *r)
{
	struct raft_conf c;
	raft_index idx;
	conf_at(r, raft_log_last(&r->log), &c, &idx);
	conf_set(r, &c, idx);
}

void raft_conf_note_appended(struct raft *r, raft_index from)
{
	raft_index last = raft_log_last(&r->log);
	for (raft_index i = last; i >= from && i > r->log.offset; i--) {
		const struct raft_entry *e = raft_log_get(&r->log, i);
		struct raft_conf c;
		if (e->type == RAFT_ENTRY_CONF && raft_conf_decode(&e->data, &c) == 0) {
			conf_set(r, &c, i);
			return;
		}
	}
}

/* ------------------------------------------------------------------------------ events */

void raft_tick(struct raft *r)
{
	raft_advance_clock(r, 1);
	raft_tick_timers(r);
}

void raft_advance_clock(struct raft *r, uint64_t ticks)
{
	assert(!r->in_ready);
	r->now += ticks; /* read only by the lease (lease.c): no timer runs, nothing is sent */
}

void raft_tick_timers(struct raft *r)
{
	assert(!r->in_ready);
	if (r->quiesced)
		return; /* quiesce.c: no heartbeats, no election timer */
	if (r->heard_elapsed < UINT32_MAX)
		r->heard_elapsed++;
	if (r->role == RAFT_LEADER) {
		raft_tick_leader(r);
	} else {
		raft_recovery_tick(r);
		raft_tick_election(r);
	}
}

int raft_propose(struct raft *r, struct raft_buf *data, raft_index *index, raft_term *term)
{
	assert(!r->in_ready);
	if (r->role != RAFT_LEADER)
		return RAFT_ENOTLEADER;
	raft_wake(r, RAFT_WAKE_LOCAL);
	if (r->transfer_target != 0)
		return RAFT_ETRANSFER;
	/* A leader that won alone (single voter) takes proposals only once its term-start entry
	 * is durable: until then a crash could make it lead the same term again with other
	 * entries at the same indexes. */
	if (r->lead_unsynced)
		return RAFT_EBUSY;
	if (data->len > RAFT_ENTRY_BYTES_MAX)
		return RAFT_ETOOBIG;
	raft_index idx;
	int rv = raft_append_local(r, RAFT_ENTRY_NORMAL, *data, &idx);
	if (rv != 0)
		return rv;
	if (index != NULL)
		*index = idx;
	if (term != NULL)
		*term = r->term;
	return 0;
}

void raft_persisted(struct raft *r, raft_index index, raft_term term)
{
	assert(!r->in_ready);
	if (index > raft_log_last(&r->log))
		return;
	/* Compacted entries are committed and can no longer be replaced; others must still be
	 * the ones that were written (a truncation may have replaced them since). */
	if (index > r->log.offset && raft_log_term_at(&r->log, index) != term)
		return;
	if (index == r->log.offset && r->log.offset_term != term)
		return;
	if (index <= r->persisted)
		return;
	r->persisted = index;
	raft_recovery_check(r);
	if (r->role == RAFT_LEADER) {
		if (r->lead_unsynced && r->persisted >= r->noop_index)
			r->lead_unsynced = false;
		raft_maybe_commit(r);
	}
}

void raft_report_unreachable(struct raft *r, raft_id peer)
{
	assert(!r->in_ready);
	struct raft_progress *p = raft_progress_of(r, peer);
	/* (a peer already probed is known to be unreachable: no need to wake for it again) */
	if (r->quiesced && p != NULL && r->role == RAFT_LEADER && p->state == RAFT_PR_REPLICATE)
		raft_wake(r, RAFT_WAKE_LOCAL);
	else if (r->quiesced && peer == r->leader)
		raft_wake(r, RAFT_WAKE_LEADER_DOWN);
	if (r->role == RAFT_LEADER && p != NULL && p->state == RAFT_PR_REPLICATE)
		raft_progress_become_probe(p);
}

int raft_compact(struct raft *r, raft_index index, raft_index keep_trailing)
{
	assert(!r->in_ready);
	if (index > r->applied)
		return RAFT_EUNAVAILABLE;
	if (index <= r->snap_index)
		return 0;
	if (index > r->commit)
		return RAFT_EUNAVAILABLE; /* applied ahead of our log after a restart */
	assert(index > r->log.offset && index <= raft_log_last(&r->log));
	raft_index cidx;
	conf_at(r, index, &r->snap_conf, &cidx);
	r->snap_term = raft_log_term_at(&r->log, index);
	r->snap_index = index;
	raft_index upto = index > keep_trailing ? index - keep_trailing : 0;
	if (upto > r->log.offset)
		raft_log_compact(&r->log, upto);
	return 0;
}

/* ------------------------------------------------------------------------------ output */

/* The hard state to persist. Its commit never covers entries handed out in the same update:
 * batches complete in order, so if a crash tears this batch after its hard state record,
 * every entry the recorded commit covers is in an earlier, complete batch (commit itself is
 * volatile in Raft; persisting it one batch late costs nothing). */
static struct raft_hard_state hard_state(const struct raft *r)
{
	raft_index durable_before = r->unstable - 1;
	raft_index c = r->commit < durable_before ? r->commit : durable_before;
	if (c < r->hs_out.commit)
		c = r->hs_out.commit; /* never record less than already recorded */
	return (struct raft_hard_state){r->term, r->vote, c, r->recovering};
}

static bool hs_equal(struct raft_hard_state a, struct raft_hard_state b)
{
	return a.term == b.term && a.vote == b.vote && a.commit == b.commit &&
	       a.recovering == b.recovering;
}

bool raft_has_ready(const struct raft *r)
{
	if (r->msgs.n || r->msgs_after.n || r->snap_reqs.n || r->reads_out.n ||
	    r->reads_dropped.n || r->has_snap_chunk || r->truncate_from)
		return true;
	if (r->unstable <= raft_log_last(&r->log) || (r->commit > r->applied && r->apply_limit > 0))
		return true;
	if (!hs_equal(hard_state(r), r->hs_out))
		return true;
	if (r->role != r->soft_out.role || r->leader != r->soft_out.leader)
		return true;
	if (!raft_conf_equal(&r->conf, &r->conf_out))
		return true;
	return r->role == RAFT_LEADER && (r->bcast_pending || r->read_round_needed);
}

/* Points queued AppendEntries at their entries in the log (done here, not when queued, because
 * the log array may move as it grows); drops those whose entries are gone (compacted or the
 * term changed): losing a message is always safe. */
static size_t resolve_entries(struct raft *r, struct raft_message *v, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		struct raft_message *m = &v[i];
		if (m->type == RAFT_MSG_APPEND && m->n_entries > 0) {
			raft_index lo = m->index + 1, hi = m->index + m->n_entries;
			if (m->term != r->term || lo <= r->log.offset ||
			    hi > raft_log_last(&r->log))
				continue;
			m->entries = raft_log_get(&r->log, lo);
		}
		v[k++] = *m;
	}
	return k;
}

void raft_ready(struct raft *r, struct raft_update *u)
{
	assert(!r->in_ready);
	if (r->role == RAFT_LEADER) {
		if (r->bcast_pending)
			raft_bcast_append(r);
		raft_reads_flush(r);
	}
	r->bcast_pending = false;
	r->read_round_needed = r->read_round_needed && r->role == RAFT_LEADER;

	memset(u, 0, sizeof(*u));
	struct raft_hard_state hs = hard_state(r);
	u->has_hard_state = !hs_equal(hs, r->hs_out);
	u->hard_state = hs;
	r->hs_out = hs;

	raft_index last = raft_log_last(&r->log);
	if (r->unstable <= r->log.offset)
		r->unstable = r->log.offset + 1;
	u->truncate_from = r->truncate_from;
	if (r->unstable <= last) {
		u->entries = raft_log_get(&r->log, r->unstable);
		u->n_entries = (size_t)(last - r->unstable + 1);
	}
	u->snap_chunk = r->has_snap_chunk ? &r->snap_chunk : NULL;

	r->msgs.n = resolve_entries(r, r->msgs.v, r->msgs.n);
	r->msgs_after.n = resolve_entries(r, r->msgs_after.v, r->msgs_after.n);
	u->msgs = r->msgs.v;
	u->n_msgs = r->msgs.n;
	u->msgs_after_persist = r->msgs_after.v;
	u->n_msgs_after_persist = r->msgs_after.n;
	u->snap_reqs = r->snap_reqs.v;
	u->n_snap_reqs = r->snap_reqs.n;

	assert(r->commit <= last);
	r->ready_applied = r->applied;
	if (r->commit > r->applied) {
		u->committed = raft_log_get(&r->log, r->applied + 1);
		assert(u->committed != NULL);
		u->n_committed = (size_t)(r->commit - r->applied);
		if (u->n_committed > r->apply_limit)
			u->n_committed = (size_t)r->apply_limit;
		if (u->n_committed == 0)
			u->committed = NULL;
		if (r->apply_limit != RAFT_APPLY_ALL)
			r->apply_limit -= u->n_committed;
		r->ready_applied = r->applied + u->n_committed;
	}
	u->reads = r->reads_out.v;
	u->n_reads = r->reads_out.n;
	u->reads_dropped = r->reads_dropped.v;
	u->n_reads_dropped = r->reads_dropped.n;

	u->soft = (struct raft_soft_state){r->role, r->leader};
	u->soft_changed = u->soft.role != r->soft_out.role || u->soft.leader != r->soft_out.leader;
	r->soft_out = u->soft;
	u->conf = r->conf;
	u->conf_changed = !raft_conf_equal(&r->conf, &r->conf_out);
	r->conf_out = r->conf;

	r->ready_last = last;
	r->in_ready = true;
}

void raft_advance(struct raft *r, const struct raft_update *u)
{
	(void)u;
	assert(r->in_ready);
	r->in_ready = false;
	r->unstable = r->ready_last + 1;
	r->truncate_from = 0;
	r->applied = r->ready_applied;
	r->msgs.n = 0;
	r->msgs_after.n = 0;
	r->snap_reqs.n = 0;
	r->reads_out.n = 0;
	r->reads_dropped.n = 0;
	r->has_snap_chunk = false;
	r->snap_installed = false;
	free_bufs(r);
}

/* ------------------------------------------------------------------------------ queries */

raft_id raft_id_of(const struct raft *r)
{
	return r->id;
}
enum raft_role raft_role_of(const struct raft *r)
{
	return r->role;
}
raft_id raft_leader_of(const struct raft *r)
{
	return r->leader;
}
raft_term raft_term_of(const struct raft *r)
{
	return r->term;
}
raft_index raft_commit_of(const struct raft *r)
{
	return r->commit;
}
raft_index raft_applied_of(const struct raft *r)
{
	return r->applied;
}
void raft_set_apply_limit(struct raft *r, uint64_t entries)
{
	assert(!r->in_ready);
	r->apply_limit = entries;
}
raft_index raft_last_index(const struct raft *r)
{
	return raft_log_last(&r->log);
}
raft_index raft_first_index(const struct raft *r)
{
	return raft_log_first(&r->log);
}
uint64_t raft_log_bytes_of(const struct raft *r)
{
	return r->log.bytes;
}
const struct raft_conf *raft_conf_of(const struct raft *r)
{
	return &r->conf;
}
raft_index raft_conf_index_of(const struct raft *r)
{
	return r->conf_index;
}
const struct raft_entry *raft_entry_at(const struct raft *r, raft_index index)
{
	return raft_log_get(&r->log, index);
}
raft_index raft_persisted_of(const struct raft *r)
{
	return r->persisted;
}
raft_index raft_snapshot_index_of(const struct raft *r)
{
	return r->snap_index;
}
