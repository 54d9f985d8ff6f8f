/* recovery.c — a replica that lost state it may have acknowledged (its data directory was
 * emptied, its log or state machine damaged) rejoins without ever voting or acknowledging
 * with what it lost, after CTRL (Alagappan et al., FAST '18): a damaged minority never
 * decides, it is repaired from the majority.
 *
 * Two steps, both needed (docs/DESIGN-NOTES.md, "Replica recovery", gives the argument):
 *  1. Fence. The replica may have voted in any term up to the highest term any voter has
 *     reached, and forgotten it. It asks every other voter for its term (TERM_QUERY) and takes
 *     the highest answer as its own term with its vote spent (on itself), so it can never vote
 *     twice in a term. Until every voter answered it waits: a term it has not heard of could be
 *     one it voted in. If every answer and its own term are 0, no election ever took place and
 *     there is nothing to forget (a brand-new cluster): it is recovered at once.
 *  2. Catch up. It stays a follower that never votes or campaigns; its answers say
 *     `recovering`, so the leader counts it in no commit, ReadIndex or CheckQuorum quorum and
 *     never transfers leadership to it. It is recovered once it holds durably the leader's
 *     commit index with an entry of the leader's own term there: every entry ever committed
 *     (its own forgotten acknowledgements included) is then in its log.
 */
#include <assert.h>

#include "raft/conf.h"
#include "raft/raft_impl.h"

bool raft_recovering(const struct raft *r)
{
	return r->recovering;
}

bool raft_recovery_fenced(const struct raft *r)
{
	return r->fenced;
}

bool raft_peer_recovering(const struct raft *r, raft_id id)
{
	for (uint32_t i = 0; i < r->n_prs; i++)
		if (r->prs[i].id == id)
			return r->prs[i].recovering;
	return false;
}

raft_index raft_peer_match(const struct raft *r, raft_id id)
{
	for (uint32_t i = 0; i < r->n_prs; i++)
		if (r->prs[i].id == id)
			return r->prs[i].match;
	return 0;
}

void raft_peer_reset(struct raft *r, raft_id id)
{
	assert(!r->in_ready);
	struct raft_progress *p = raft_progress_of(r, id);
	if (p == NULL)
		return;
	if (r->role == RAFT_LEADER)
		raft_wake(r, RAFT_WAKE_LOCAL); /* the peer must be probed afresh */
	bool recovering = p->recovering;
	raft_progress_reset(p, id, raft_log_last(&r->log) + 1);
	p->recovering = recovering;
	if (r->role == RAFT_LEADER) {
		if (r->transfer_target == id)
			raft_transfer_abort(r);
		r->bcast_pending = true;
	}
}

static bool answered(const struct raft *r, raft_id id)
{
	for (uint32_t i = 0; i < r->n_fence; i++)
		if (r->fence_from[i] == id)
			return true;
	return false;
}

static void recovered(struct raft *r)
{
	r->recovering = false;
	r->fenced = false;
	r->n_fence = 0;
	r->recover_at = 0;
}

/* Every other voter answered: take the highest term with the vote spent. */
static void fence_maybe_complete(struct raft *r)
{
	if (r->fenced)
		return;
	for (uint32_t i = 0; i < r->conf.n_voters; i++) {
		raft_id v = r->conf.voters[i];
		if (v != r->id && !answered(r, v))
			return;
	}
	if (r->fence_term == 0 && r->term == 0) {
		recovered(r); /* no election ever happened: nothing was voted or acknowledged */
		return;
	}
	if (r->fence_term > r->term)
		raft_become_follower(r, r->fence_term, 0);
	if (r->vote == 0)
		r->vote = r->id; /* spent: we may have voted in this term and forgotten it */
	r->fenced = true;
	raft_recovery_check(r);
}

void raft_recovery_tick(struct raft *r)
{
	if (!r->recovering)
		return;
	if (r->fenced) {
		/* The log brought a configuration with a voter we never asked (added after our
		 * bootstrap configuration): we may have voted for it and forgotten, so fence again
		 * before leaving recovery. */
		for (uint32_t i = 0; i < r->conf.n_voters; i++)
			if (r->conf.voters[i] != r->id && !answered(r, r->conf.voters[i]))
				r->fenced = false;
		if (r->fenced)
			return;
	}
	if (r->fence_elapsed++ % r->cfg.heartbeat_ticks != 0)
		return;
	uint32_t unanswered = 0;
	for (uint32_t i = 0; i < r->conf.n_voters; i++) {
		raft_id v = r->conf.voters[i];
		if (v == r->id || answered(r, v))
			continue;
		unanswered++;
		struct raft_message m = {.type = RAFT_MSG_TERM_QUERY, .to = v, .term = r->term};
		raft_send(r, &m);
	}
	/* The only voter (nobody to ask), or the configuration changed under us (learned from
	 * the leader while fencing) and every voter of the new one has already answered: no
	 * answer is coming to complete the fence, so complete it here. */
	if (unanswered == 0)
		fence_maybe_complete(r);
}

void raft_recv_term_query(struct raft *r, const struct raft_message *m)
{
	struct raft_message resp = {.type = RAFT_MSG_TERM_RESP, .to = m->from, .term = r->term};
	raft_send(r, &resp);
}

void raft_recv_term_resp(struct raft *r, const struct raft_message *m)
{
	if (!r->recovering || r->fenced || !raft_conf_is_voter(&r->conf, m->from) ||
	    answered(r, m->from) || r->n_fence >= RAFT_NODES_MAX)
		return;
	r->fence_from[r->n_fence++] = m->from;
	if (m->term > r->fence_term)
		r->fence_term = m->term;
	fence_maybe_complete(r);
}

void raft_recovery_on_append(struct raft *r, const struct raft_message *m, raft_index last_new)
{
	if (!r->recovering)
		return;
	/* The leader's commit, within the prefix this message proved equal to the leader's log,
	 * at an entry of the leader's term: everything committed before is at or below it. It
	 * may be our snapshot point (caught up by InstallSnapshot): the snapshot holds it. */
	if (m->commit > 0 && m->commit <= last_new && m->commit >= r->log.offset &&
	    raft_log_term_at(&r->log, m->commit) == r->term && m->commit > r->recover_at)
		r->recover_at = m->commit;
	raft_recovery_check(r);
}

void raft_recovery_check(struct raft *r)
{
	if (!r->recovering || !r->fenced || r->role != RAFT_FOLLOWER || r->leader == 0 ||
	    r->recover_at == 0)
		return;
	if (r->persisted < r->recover_at || raft_log_last(&r->log) < r->recover_at ||
	    raft_log_term_at(&r->log, r->recover_at) != r->term)
		return;
	recovered(r);
}

void raft_recovery_note_peer(struct raft *r, const struct raft_message *m)
{
	struct raft_progress *p = raft_progress_of(r, m->from);
	if (p == NULL || p->recovering == m->recovering)
		return;
	if (m->recovering) {
		/* What it acknowledged before is gone: probe it from scratch. */
		raft_progress_reset(p, p->id, raft_log_last(&r->log) + 1);
		p->recovering = true;
		if (r->transfer_target == p->id)
			raft_transfer_abort(r);
	} else {
		p->recovering = false;
	}
}
