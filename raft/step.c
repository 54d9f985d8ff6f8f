/* step.c — raft_step: validates an incoming message, applies the term rules (thesis 3.3:
 * a higher term makes us a follower; a lower-term message is stale) with the PreVote and
 * leader-stickiness exceptions of thesis 9.6 / etcd, and dispatches to the per-RPC handlers.
 */
#include <assert.h>

#include "raft/conf.h"
#include "raft/raft_impl.h"

static bool valid(const struct raft *r, const struct raft_message *m)
{
	if (m->to != r->id || m->from == 0 || m->from == r->id)
		return false;
	if (m->type < RAFT_MSG_APPEND || m->type > RAFT_MSG_QUIESCE)
		return false;
	if (m->snap_data.len > RAFT_SNAPSHOT_CHUNK_BYTES_MAX ||
	    (m->snap_data.len > 0 && m->snap_data.base == NULL))
		return false;
	if (m->n_entries > 0) {
		if (m->type != RAFT_MSG_APPEND || m->n_entries > RAFT_MSG_ENTRIES_MAX ||
		    m->entries == NULL)
			return false;
		for (uint32_t i = 0; i < m->n_entries; i++) {
			const struct raft_entry *e = &m->entries[i];
			if (e->index != m->index + 1 + i || e->term > m->term ||
			    e->data.len > RAFT_ENTRY_BYTES_MAX ||
			    (e->data.len > 0 && !e->data.base))
				return false;
			if (e->term < (i == 0 ? m->log_term : m->entries[i - 1].term))
				return false;
		}
	}
	return true;
}

/* We heard from a leader less than an election timeout ago (or we are it). With leader leases
 * also whatever happened since (a term learned from a stray answer, a restart): lease.c. */
static bool in_lease(const struct raft *r)
{
	return (r->leader != 0 && r->election_elapsed < r->cfg.election_ticks) ||
	       raft_lease_sticky(r);
}

int raft_step(struct raft *r, const struct raft_message *m)
{
	assert(!r->in_ready);
	if (!valid(r, m))
		return RAFT_EINVAL;
	if (r->quiesced) {
		bool from_leader = m->from == r->leader && m->term >= r->term &&
				   (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT ||
				    m->type == RAFT_MSG_SNAPSHOT || m->type == RAFT_MSG_QUIESCE);
		/* a repeated QUIESCE of our leader's term leaves us asleep */
		if (!(from_leader && m->type == RAFT_MSG_QUIESCE && m->term == r->term))
			raft_wake(r, from_leader ? RAFT_WAKE_LEADER : RAFT_WAKE_MESSAGE);
	}
	/* A recovering replica's term queries bypass the term rules: they change no one's term
	 * (recovery.c). */
	if (m->type == RAFT_MSG_TERM_QUERY) {
		raft_recv_term_query(r, m);
		return 0;
	}
	if (m->type == RAFT_MSG_TERM_RESP) {
		raft_recv_term_resp(r, m);
		return 0;
	}
	bool is_vote = m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PREVOTE;
	/* Campaigns from any server are answered, even from one outside our configuration: ours
	 * may be stale (an uncommitted change), and dropping them can deadlock elections (sim
	 * FINDINGS F5). Removed servers are kept from disrupting the cluster by PreVote and the
	 * lease check below (thesis 4.2.3), as etcd does. */

	if (m->term > r->term) {
		bool transfer = m->type == RAFT_MSG_VOTE && m->context == RAFT_CTX_TRANSFER;
		/* Leader stickiness: while we have a live leader, ignore campaigns (unless the
		 * leader itself asked for it with TIMEOUT_NOW). */
		if (is_vote && !transfer && in_lease(r) &&
		    (r->cfg.check_quorum || r->cfg.lease_reads || m->type == RAFT_MSG_PREVOTE))
			return 0;
		if (m->type == RAFT_MSG_PREVOTE) {
			/* a prevote never changes our term */
		} else if (m->type == RAFT_MSG_PREVOTE_RESP && !m->reject) {
			/* a granted prevote carries the term we would campaign in */
		} else {
			bool from_leader =
				m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT ||
				m->type == RAFT_MSG_SNAPSHOT || m->type == RAFT_MSG_QUIESCE;
			raft_become_follower(r, m->term, from_leader ? m->from : 0);
		}
	} else if (m->term < r->term) {
		if ((r->cfg.check_quorum || r->cfg.pre_vote) &&
		    (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT ||
		     m->type == RAFT_MSG_QUIESCE)) {
			/* A stale leader (e.g. back from a partition) learns our term and steps
			 * down; without this, with PreVote, it could stay stuck forever. */
			struct raft_message resp = {
				.type = RAFT_MSG_APPEND_RESP, .to = m->from, .term = r->term};
			raft_send(r, &resp);
		} else if (m->type == RAFT_MSG_PREVOTE) {
			struct raft_message resp = {.type = RAFT_MSG_PREVOTE_RESP,
						    .to = m->from,
						    .term = r->term,
						    .reject = true};
			raft_send(r, &resp);
		}
		return 0;
	}

	switch (m->type) {
	case RAFT_MSG_APPEND:
	case RAFT_MSG_HEARTBEAT:
	case RAFT_MSG_SNAPSHOT:
	case RAFT_MSG_QUIESCE:
		if (r->role == RAFT_LEADER)
			return 0; /* impossible in a correct cluster: two leaders of one term */
		if (r->role != RAFT_FOLLOWER || r->leader != m->from)
			raft_become_follower(r, r->term, m->from);
		r->election_elapsed = 0;
		r->heard_elapsed = 0;
		if (m->type == RAFT_MSG_APPEND)
			raft_recv_append(r, m);
		else if (m->type == RAFT_MSG_HEARTBEAT)
			raft_recv_heartbeat(r, m);
		else if (m->type == RAFT_MSG_QUIESCE)
			raft_recv_quiesce(r, m);
		else
			raft_recv_snapshot(r, m);
		break;
	case RAFT_MSG_APPEND_RESP:
		if (r->role == RAFT_LEADER) {
			raft_recovery_note_peer(r, m);
			raft_recv_append_resp(r, m);
		}
		break;
	case RAFT_MSG_HEARTBEAT_RESP:
		if (r->role == RAFT_LEADER) {
			raft_recovery_note_peer(r, m);
			raft_recv_heartbeat_resp(r, m);
		}
		break;
	case RAFT_MSG_SNAPSHOT_RESP:
		if (r->role == RAFT_LEADER) {
			raft_recovery_note_peer(r, m);
			raft_recv_snapshot_resp(r, m);
		}
		break;
	case RAFT_MSG_VOTE:
	case RAFT_MSG_PREVOTE:
		raft_recv_vote(r, m);
		break;
	case RAFT_MSG_VOTE_RESP:
	case RAFT_MSG_PREVOTE_RESP:
		raft_recv_vote_resp(r, m);
		break;
	case RAFT_MSG_TIMEOUT_NOW:
		if (r->role == RAFT_FOLLOWER && !r->recovering)
			raft_recv_timeout_now(r, m);
		break;
	}
	return 0;
}
