/* lease.c — leader leases: linearizable reads without a heartbeat round per read (thesis 6.4.1,
 * as TiKV's lease reads). A leader's time is its clock (`now`, raft_advance_clock), which the
 * driver keeps at the ticks due in real time; a follower's is its timer ticks, which may fall
 * behind (that only keeps it sticky longer). The argument assumes tick rates within the margin
 * below (docs/DESIGN-NOTES.md "Leader leases").
 *
 * Leader: every heartbeat broadcast is a round (readindex.c) whose send tick is remembered.
 * When a quorum of voters (the leader included) has answered rounds sent at tick t or later,
 * the lease runs until t + raft_lease_ticks(E): E - 1 ticks less a margin for clock drift. A
 * follower that answered a round reset its own count of ticks since it heard from a leader,
 * and refuses every (pre)vote and campaign but a transfer's until that count reaches E; so no
 * other leader can be elected, nor commit anything, before the lease runs out. While it runs,
 * raft_read_index answers at once with index = commit, once an entry of the leader's term has
 * committed (its commit index is then at least every earlier leader's, thesis 6.4).
 *
 * The lease is dropped (only rounds sent later renew it) when the leader quiesces, and
 * suspended while a transfer is under way; once a TIMEOUT_NOW has left, never again in this
 * term (a late TIMEOUT_NOW may still make its target campaign, and voters grant a transfer's
 * vote in spite of stickiness). A leader that steps down stops at once (it is no leader).
 */
#include <assert.h>

#include "raft/raft_impl.h"

uint32_t raft_lease_ticks(uint32_t election_ticks)
{
	/* -1: a follower's E ticks after receipt may take only E - 1 tick periods (its next tick
	 * may come just after the message); the margin: tick rates may differ by ~1/(2 DIV). */
	uint32_t margin = (election_ticks + RAFT_LEASE_DRIFT_DIV - 1) / RAFT_LEASE_DRIFT_DIV;
	return election_ticks > margin + 1 ? election_ticks - 1 - margin : 0;
}

void raft_lease_note_round(struct raft *r, uint64_t round)
{
	r->lease_rounds[round % RAFT_LEASE_ROUNDS].round = round;
	r->lease_rounds[round % RAFT_LEASE_ROUNDS].tick = r->now;
}

void raft_lease_on_ack(struct raft *r, struct raft_progress *p, uint64_t round)
{
	if (round <= r->lease_floor)
		return;
	const struct raft_lease_round *e = &r->lease_rounds[round % RAFT_LEASE_ROUNDS];
	if (e->round != round)
		return; /* too old to remember: extends nothing */
	if (e->tick + 1 > p->lease_tick)
		p->lease_tick = e->tick + 1;
}

void raft_lease_drop(struct raft *r)
{
	r->lease_floor = r->read_round_sent;
	for (uint32_t i = 0; i < r->n_prs; i++)
		r->prs[i].lease_tick = 0;
}

bool raft_lease_sticky(const struct raft *r)
{
	return r->cfg.lease_reads && r->heard_elapsed < r->cfg.election_ticks;
}

/* 1 + the send tick of the latest round answered by a quorum of voters (0 = none). */
static uint64_t lease_start(const struct raft *r)
{
	uint64_t t[RAFT_NODES_MAX];
	uint32_t n = 0;
	for (uint32_t i = 0; i < r->conf.n_voters; i++) {
		raft_id v = r->conf.voters[i];
		uint64_t x = 0;
		if (v == r->id) {
			x = r->now + 1;
		} else {
			for (uint32_t k = 0; k < r->n_prs; k++)
				if (r->prs[k].id == v && !r->prs[k].recovering)
					x = r->prs[k].lease_tick;
		}
		/* insertion sort, descending */
		uint32_t j = n++;
		while (j > 0 && t[j - 1] < x) {
			t[j] = t[j - 1];
			j--;
		}
		t[j] = x;
	}
	if (n == 0)
		return 0;
	return t[r->conf.n_voters / 2];
}

bool raft_lease_held(const struct raft *r)
{
	if (!r->cfg.lease_reads || r->role != RAFT_LEADER || r->quiesced || r->lease_fenced ||
	    r->transfer_target != 0)
		return false;
	if (raft_log_term_at(&r->log, r->commit) != r->term)
		return false;
	uint64_t start = lease_start(r);
	if (start == 0)
		return false;
	return r->now < start - 1 + raft_lease_ticks(r->cfg.election_ticks);
}
