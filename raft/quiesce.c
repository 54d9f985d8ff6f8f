/* quiesce.c — idle groups cost nothing: a leader whose group has had nothing to do for
 * cfg.quiesce_ticks, with every follower holding its whole log and commit index, sends one last
 * heartbeat (RAFT_MSG_QUIESCE) and stops ticking; a follower that holds exactly that log stops
 * its election timer. As CockroachDB quiesces idle ranges and TiKV hibernates idle regions.
 *
 * Anything that may need the group wakes it: a proposal, read, transfer or configuration change
 * on the leader, any message from a peer, a peer's link reset, and the node's failure detector
 * (raft_report_unreachable): a quiesced follower whose leader's node is unreachable wakes with
 * its lease expired and campaigns within an election timeout. A follower woken by a message
 * that is not from its leader tells the leader (a HEARTBEAT_RESP), so a leader that is alive
 * wakes and heartbeats again before anyone's election timer runs out.
 *
 * Why it is safe (docs/DESIGN-NOTES.md, "Quiescence"): it changes no rule of voting, appending
 * or committing; it only withholds heartbeats and timers. Raft's safety never depends on timing,
 * and this core serves linearizable reads only through ReadIndex (a heartbeat round taken after
 * the read arrived), never from a time-based lease, so a quiesced leader that was deposed
 * meanwhile cannot serve a stale read: the round it must take on waking finds the new term.
 */
#include <assert.h>

#include "raft/conf.h"
#include "raft/raft_impl.h"

bool raft_quiesced(const struct raft *r)
{
	return r->quiesced;
}

bool raft_idle(const struct raft *r)
{
	return r->quiesced && !r->in_ready && r->applied == r->commit && !raft_has_ready(r);
}

/* The leader's group has nothing in flight: no client work, every entry committed and durable
 * here, every peer (voter or learner) known to hold the whole log and told the commit index. */
static bool leader_idle(const struct raft *r)
{
	raft_index last = raft_log_last(&r->log);
	if (r->recovering || r->lead_unsynced || r->transfer_target != 0 || r->reads.n != 0 ||
	    r->read_round_needed || r->bcast_pending)
		return false;
	if (r->commit != last || r->persisted < last || raft_log_term_at(&r->log, last) != r->term)
		return false;
	if (r->conf_index > r->commit) /* a configuration change not committed yet */
		return false;
	for (uint32_t i = 0; i < r->n_prs; i++) {
		const struct raft_progress *p = &r->prs[i];
		/* a probed peer that holds the whole log is as good as a replicated one */
		if (p->state == RAFT_PR_SNAPSHOT || p->match != last || p->count != 0 ||
		    p->commit_sent < r->commit || p->recovering)
			return false;
	}
	return true;
}

void raft_quiesce_tick(struct raft *r)
{
	assert(r->role == RAFT_LEADER && !r->quiesced);
	if (r->cfg.quiesce_ticks == 0 || !leader_idle(r)) {
		r->quiesce_idle = 0;
		return;
	}
	if (++r->quiesce_idle < r->cfg.quiesce_ticks)
		return;
	raft_index last = raft_log_last(&r->log);
	for (uint32_t i = 0; i < r->n_prs; i++) {
		struct raft_message m = {
			.type = RAFT_MSG_QUIESCE,
			.to = r->prs[i].id,
			.term = r->term,
			.index = last,
			.log_term = r->term,
			.commit = r->commit,
			.context = r->read_round_sent, /* the last round sent before it */
		};
		raft_send(r, &m);
	}
	raft_lease_drop(r); /* no heartbeats from now on: only rounds after waking renew it */
	r->quiesced = true;
	r->quiesce_idle = 0;
}

/* Follower: the leader's last heartbeat. Quiesce only holding exactly the leader's log (by log
 * matching, same last index and term) and its commit index; otherwise answer as to a heartbeat,
 * which wakes the leader to bring us up to date. A quiescing follower does not answer, or the
 * answer would wake the leader again. */
void raft_recv_quiesce(struct raft *r, const struct raft_message *m)
{
	raft_index last = raft_log_last(&r->log);
	/* Older than a heartbeat round already answered (a reordering): the leader has woken
	 * since, and may hold a lease on that answer, so we must keep our election timer. */
	if (r->hb_term == m->term && m->context < r->hb_round)
		return;
	if (!r->recovering && r->cfg.quiesce_ticks != 0 && m->index == last &&
	    raft_log_term_at(&r->log, last) == m->log_term && m->commit <= last &&
	    m->commit >= r->commit) {
		r->commit = m->commit;
		r->quiesced = true;
		return;
	}
	struct raft_message hb = *m;
	hb.type = RAFT_MSG_HEARTBEAT;
	hb.context = 0;
	raft_recv_heartbeat(r, &hb);
}

void raft_wake(struct raft *r, enum raft_wake_why why)
{
	if (!r->quiesced)
		return;
	r->quiesced = false;
	r->quiesce_idle = 0;
	r->heartbeat_elapsed = 0;
	if (r->role == RAFT_LEADER) {
		/* A fresh CheckQuorum window: the peers must answer the heartbeats sent now. */
		r->election_elapsed = 0;
		for (uint32_t i = 0; i < r->n_prs; i++)
			r->prs[i].recent_active = false;
		raft_bcast_heartbeat(r);
	} else if (why == RAFT_WAKE_LEADER_DOWN) {
		/* The heartbeats we stopped waiting for will not come: the lease is over now, and
		 * we campaign after the random part of the timeout, [0, T) ticks. */
		r->election_elapsed = r->cfg.election_ticks;
		/* lease.c: the leader dropped its lease when it quiesced, and we answered no
		 * round since (one would have woken us), so we may vote again */
		r->heard_elapsed = r->cfg.election_ticks;
	} else {
		r->election_elapsed = 0;
		if (why == RAFT_WAKE_MESSAGE && r->leader != 0) {
			/* Someone is active in a group our leader believes idle (a candidate, a
			 * restarted replica): wake the leader, whose heartbeats then keep or end
			 * our lease as in any group. */
			struct raft_message poke = {
				.type = RAFT_MSG_HEARTBEAT_RESP, .to = r->leader, .term = r->term};
			raft_send(r, &poke);
		}
	}
	if (r->cfg.wake_cb != NULL)
		r->cfg.wake_cb(r->cfg.wake_arg);
}
