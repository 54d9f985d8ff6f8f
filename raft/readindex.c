/* readindex.c — linearizable reads without writing to the log (thesis 6.4), batched.
 *
 * A read records the commit index when it arrives and joins the open "round". At the next
 * raft_ready the round is broadcast in one heartbeat (context = round id); once a majority of
 * voters (the leader included) acknowledged a round >= r, every read of rounds <= r is safe.
 * A new leader first commits an entry of its own term (its no-op) so that its commit index is
 * at least that of every earlier leader; reads arriving before then wait for it.
 */
#include <assert.h>
#include <string.h>

#include "raft/raft_impl.h"

int raft_read_index(struct raft *r, uint64_t ctx)
{
	assert(!r->in_ready);
	if (r->role != RAFT_LEADER)
		return RAFT_ENOTLEADER;
	raft_wake(r, RAFT_WAKE_LOCAL);
	if (raft_lease_held(r)) {
		/* lease.c: no other leader can have committed anything yet */
		struct raft_read_state rs = {ctx, r->commit};
		return RAFT_VEC_PUSH(r->reads_out, rs) == 0 ? 0 : RAFT_ENOMEM;
	}
	struct raft_pending_read pr = {.ctx = ctx};
	if (raft_log_term_at(&r->log, r->commit) == r->term) {
		pr.index = r->commit;
		pr.round = r->read_round_open;
		r->read_round_needed = true;
	}
	if (RAFT_VEC_PUSH(r->reads, pr) != 0)
		return RAFT_ENOMEM;
	raft_reads_advance(r); /* a single voter confirms at once */
	return 0;
}

void raft_reads_on_commit(struct raft *r)
{
	if (raft_log_term_at(&r->log, r->commit) != r->term)
		return;
	for (size_t i = 0; i < r->reads.n; i++) {
		if (r->reads.v[i].round == 0) {
			r->reads.v[i].index = r->commit;
			r->reads.v[i].round = r->read_round_open;
			r->read_round_needed = true;
		}
	}
	raft_reads_advance(r);
}

/* The highest round acknowledged by a majority of voters (the leader acks everything). */
static uint64_t confirmed_round(const struct raft *r)
{
	uint64_t acked[RAFT_NODES_MAX];
	uint32_t n = 0;
	for (uint32_t i = 0; i < r->conf.n_voters; i++) {
		raft_id v = r->conf.voters[i];
		const struct raft_progress *p = NULL;
		for (uint32_t k = 0; k < r->n_prs; k++)
			if (r->prs[k].id == v)
				p = &r->prs[k];
		acked[n++] = v == r->id ? UINT64_MAX
					: (p != NULL && !p->recovering ? p->read_acked : 0);
	}
	if (n == 0)
		return 0;
	/* the quorum-th largest value */
	for (uint32_t i = 1; i < n; i++) {
		uint64_t x = acked[i];
		uint32_t j = i;
		while (j > 0 && acked[j - 1] < x) {
			acked[j] = acked[j - 1];
			j--;
		}
		acked[j] = x;
	}
	return acked[r->conf.n_voters / 2];
}

void raft_reads_advance(struct raft *r)
{
	if (r->reads.n == 0 || r->role != RAFT_LEADER)
		return;
	uint64_t ok = confirmed_round(r);
	size_t k = 0;
	while (k < r->reads.n && r->reads.v[k].round != 0 && r->reads.v[k].round <= ok) {
		struct raft_read_state rs = {r->reads.v[k].ctx, r->reads.v[k].index};
		if (RAFT_VEC_PUSH(r->reads_out, rs) != 0)
			break;
		k++;
	}
	if (k > 0) {
		memmove(r->reads.v, r->reads.v + k, (r->reads.n - k) * sizeof(*r->reads.v));
		r->reads.n -= k;
	}
}

void raft_reads_flush(struct raft *r)
{
	if (!r->read_round_needed || r->role != RAFT_LEADER)
		return;
	raft_bcast_heartbeat(r); /* a new round */
	raft_reads_advance(r);
}

void raft_reads_drop_all(struct raft *r)
{
	for (size_t i = 0; i < r->reads.n; i++)
		(void)RAFT_VEC_PUSH(r->reads_dropped, r->reads.v[i].ctx);
	r->reads.n = 0;
	r->read_round_needed = false;
}
