/* election.c — leader election (thesis 3.4) with PreVote (9.6), CheckQuorum and leader
 * stickiness (9.6 / 4.2.3), and the role transitions. The vote rule "grant only to a candidate
 * whose log is at least as up to date as ours" lives in raft_log_up_to_date() below.
 */
#include <assert.h>
#include <string.h>

#include "raft/conf.h"
#include "raft/raft_impl.h"

void raft_reset_election_timer(struct raft *r)
{
	r->election_elapsed = 0;
	/* thesis 3.4: randomized in [T, 2T) so that split votes are rare */
	r->randomized_timeout =
		raft_rand_range(&r->rng, r->cfg.election_ticks, 2 * r->cfg.election_ticks);
}

static void reset_votes(struct raft *r)
{
	r->n_votes = 0;
}

void raft_become_follower(struct raft *r, raft_term term, raft_id leader)
{
	assert(term >= r->term);
	if (r->role == RAFT_LEADER) {
		raft_reads_drop_all(r);
		raft_transfer_abort(r);
	}
	if (term > r->term) {
		r->term = term;
		r->vote = 0;
	}
	r->role = RAFT_FOLLOWER;
	r->leader = leader;
	r->quiesced = false;
	r->quiesce_idle = 0;
	r->lead_unsynced = false;
	r->bcast_pending = false;
	r->heartbeat_elapsed = 0;
	reset_votes(r);
	raft_reset_election_timer(r);
}

void raft_become_leader(struct raft *r)
{
	assert(r->role == RAFT_CANDIDATE && !r->recovering);
	r->role = RAFT_LEADER;
	r->leader = r->id;
	r->quiesced = false;
	r->quiesce_idle = 0;
	r->heartbeat_elapsed = 0;
	r->election_elapsed = 0;
	r->transfer_target = 0;
	raft_index last = raft_log_last(&r->log);
	for (uint32_t i = 0; i < r->n_prs; i++) {
		raft_progress_reset(&r->prs[i], r->prs[i].id, last + 1);
	}
	r->read_round_open = r->read_round_sent + 1;
	r->read_round_needed = false;
	r->lease_fenced = false;
	raft_lease_drop(r);
	/* Won without any peer's vote: our new term/vote may not be durable yet, so hold our
	 * messages back until the term-start entry (appended after the term change) is. */
	r->lead_unsynced = r->conf.n_voters == 1;
	/* thesis 6.4 / 3.6.2: a no-op entry commits something of the new term quickly */
	raft_index idx = 0;
	int rv = raft_append_local(r, RAFT_ENTRY_NORMAL, (struct raft_buf){NULL, 0}, &idx);
	assert(rv == 0 || rv == RAFT_ENOMEM);
	(void)rv;
	r->noop_index = idx;
	r->bcast_pending = true;
}

/* ---------------------------------------------------------------------- vote counting */

/* Records a vote (first answer per voter counts) and returns +1 won, -1 lost, 0 pending. */
static int tally(struct raft *r, raft_id from, bool granted)
{
	if (!raft_conf_is_voter(&r->conf, from))
		return 0;
	bool seen = false;
	for (uint32_t i = 0; i < r->n_votes; i++)
		if (r->votes_from[i] == from)
			seen = true;
	if (!seen && r->n_votes < RAFT_NODES_MAX) {
		r->votes_from[r->n_votes] = from;
		r->votes_granted[r->n_votes] = granted;
		r->n_votes++;
	}
	uint32_t yes = 0, no = 0;
	for (uint32_t i = 0; i < r->n_votes; i++) {
		if (!raft_conf_is_voter(&r->conf, r->votes_from[i]))
			continue;
		if (r->votes_granted[i])
			yes++;
		else
			no++;
	}
	uint32_t q = raft_quorum(r);
	if (yes >= q)
		return 1;
	if (r->conf.n_voters - no < q)
		return -1;
	return 0;
}

void raft_campaign(struct raft *r, bool pre_vote, bool transfer)
{
	if (!raft_may_campaign(r))
		return;
	/* lease.c: no vote for ourselves either while a leader may hold a lease on our answer */
	if (!transfer && raft_lease_sticky(r))
		return;
	raft_term vote_term;
	if (pre_vote) {
		/* thesis 9.6: a pre-candidate asks without bumping its term */
		if (r->role == RAFT_LEADER)
			return;
		r->role = RAFT_PRECANDIDATE;
		r->leader = 0;
		vote_term = r->term + 1;
	} else {
		r->role = RAFT_CANDIDATE;
		r->term++;
		r->vote = r->id;
		r->leader = 0;
		vote_term = r->term;
	}
	r->quiesced = false;
	reset_votes(r);
	raft_reset_election_timer(r);
	int res = tally(r, r->id, true);
	if (res > 0) {
		if (pre_vote)
			raft_campaign(r, false, transfer);
		else
			raft_become_leader(r);
		return;
	}
	raft_index last = raft_log_last(&r->log);
	raft_term last_term = raft_log_last_term(&r->log);
	for (uint32_t i = 0; i < r->conf.n_voters; i++) {
		raft_id v = r->conf.voters[i];
		if (v == r->id)
			continue;
		struct raft_message m = {
			.type = pre_vote ? RAFT_MSG_PREVOTE : RAFT_MSG_VOTE,
			.to = v,
			.term = vote_term,
			.index = last,
			.log_term = last_term,
			.context = transfer ? RAFT_CTX_TRANSFER : 0,
		};
		raft_send(r, &m);
	}
}

/* ---------------------------------------------------------------------- ticks */

void raft_tick_election(struct raft *r)
{
	if (r->election_elapsed < UINT32_MAX)
		r->election_elapsed++;
	if (r->election_elapsed >= r->randomized_timeout) {
		if (raft_may_campaign(r))
			raft_campaign(r, r->cfg.pre_vote, false);
		else
			raft_reset_election_timer(r);
	}
}

static bool quorum_active(struct raft *r)
{
	uint32_t active = 0;
	for (uint32_t i = 0; i < r->conf.n_voters; i++) {
		raft_id v = r->conf.voters[i];
		if (v == r->id) {
			active++;
			continue;
		}
		struct raft_progress *p = raft_progress_of(r, v);
		if (p != NULL && p->recent_active && !p->recovering)
			active++;
	}
	return active >= raft_quorum(r);
}

void raft_tick_leader(struct raft *r)
{
	r->heartbeat_elapsed++;
	r->election_elapsed++;
	raft_transfer_tick(r);
	if (r->role != RAFT_LEADER)
		return;
	if (r->election_elapsed >= r->cfg.election_ticks) {
		r->election_elapsed = 0;
		/* CheckQuorum: a leader that has not heard from a majority for an election
		 * timeout steps down (thesis 6.2), so a partitioned leader stops serving reads. */
		if (r->cfg.check_quorum && !quorum_active(r)) {
			raft_become_follower(r, r->term, 0);
			return;
		}
		for (uint32_t i = 0; i < r->n_prs; i++)
			r->prs[i].recent_active = false;
	}
	for (uint32_t i = 0; i < r->n_prs; i++)
		if (r->prs[i].state == RAFT_PR_SNAPSHOT)
			raft_snapshot_tick(r, &r->prs[i]);
	raft_quiesce_tick(r);
	if (r->quiesced)
		return; /* its QUIESCE was the last heartbeat */
	if (r->heartbeat_elapsed >= r->cfg.heartbeat_ticks) {
		r->heartbeat_elapsed = 0;
		raft_bcast_heartbeat(r);
	}
}

/* ---------------------------------------------------------------------- votes */

/* THE VOTE RULE (thesis 3.6.1): a candidate's log is at least as up to date as ours when its
 * last term is higher, or equal with a last index at least ours. */
bool raft_log_up_to_date(const struct raft *r, raft_index last_index, raft_term last_term)
{
	raft_term our_term = raft_log_last_term(&r->log);
	if (last_term != our_term)
		return last_term > our_term;
	return last_index >= raft_log_last(&r->log);
}

void raft_recv_vote(struct raft *r, const struct raft_message *m)
{
	bool pre = m->type == RAFT_MSG_PREVOTE;
	bool can_vote;
	if (pre)
		can_vote = m->term > r->term; /* no state changes: a prevote binds nothing */
	else
		can_vote = m->term == r->term &&
			   (r->vote == m->from || (r->vote == 0 && r->leader == 0));
	struct raft_message resp = {
		.type = pre ? RAFT_MSG_PREVOTE_RESP : RAFT_MSG_VOTE_RESP,
		.to = m->from,
		.term = r->term,
	};
	if (r->recovering)
		can_vote = false; /* its log and its past votes cannot be trusted (recovery.c) */
	/* lease.c: a leader may hold a lease on our last answer (a vote already given to this
	 * candidate in this term may be repeated; a transfer's campaign is the leader's wish) */
	if (raft_lease_sticky(r) && m->context != RAFT_CTX_TRANSFER &&
	    !(!pre && r->vote == m->from))
		can_vote = false;
	if (can_vote && raft_log_up_to_date(r, m->index, m->log_term)) {
		/* a granted prevote answers in the candidate's future term so it is not dropped */
		if (pre) {
			resp.term = m->term;
		} else {
			r->vote = m->from;
			r->election_elapsed = 0;
		}
		resp.reject = false;
	} else {
		resp.reject = true;
	}
	raft_send(r, &resp);
}

void raft_recv_vote_resp(struct raft *r, const struct raft_message *m)
{
	int res;
	if (m->type == RAFT_MSG_PREVOTE_RESP) {
		if (r->role != RAFT_PRECANDIDATE)
			return;
		if (!m->reject && m->term != r->term + 1)
			return;
		res = tally(r, m->from, !m->reject);
		if (res > 0)
			raft_campaign(r, false, false);
		else if (res < 0)
			raft_become_follower(r, r->term, 0);
		return;
	}
	if (r->role != RAFT_CANDIDATE || m->term != r->term)
		return;
	res = tally(r, m->from, !m->reject);
	if (res > 0)
		raft_become_leader(r);
	else if (res < 0)
		raft_become_follower(r, r->term, 0);
}
