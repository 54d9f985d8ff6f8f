/* transfer.c — leadership transfer (thesis 3.10): the leader stops taking proposals, brings
 * the target up to date, then sends it TIMEOUT_NOW so it campaigns at once (skipping PreVote
 * and overriding leader stickiness). Aborted after an election timeout without success.
 */
#include <assert.h>

#include "raft/conf.h"
#include "raft/raft_impl.h"

static void send_timeout_now(struct raft *r, raft_id to)
{
	struct raft_message m = {.type = RAFT_MSG_TIMEOUT_NOW, .to = to, .term = r->term};
	raft_send(r, &m);
	r->lease_fenced = true; /* lease.c: its target may win whenever it arrives */
}

int raft_transfer_leader(struct raft *r, raft_id target)
{
	assert(!r->in_ready);
	if (r->role != RAFT_LEADER)
		return RAFT_ENOTLEADER;
	raft_wake(r, RAFT_WAKE_LOCAL);
	if (target == 0 || target == r->id)
		return RAFT_EINVAL;
	if (!raft_conf_is_voter(&r->conf, target))
		return RAFT_ELEARNER;
	if (r->transfer_target != 0)
		return RAFT_EBUSY;
	struct raft_progress *p = raft_progress_of(r, target);
	assert(p != NULL);
	if (p->recovering)
		return RAFT_ERECOVERING;
	r->transfer_target = target;
	r->transfer_elapsed = 0;
	if (p->match == raft_log_last(&r->log))
		send_timeout_now(r, target);
	else
		raft_send_append(r, p, false);
	return 0;
}

void raft_transfer_abort(struct raft *r)
{
	r->transfer_target = 0;
	r->transfer_elapsed = 0;
}

/* p acknowledged more entries: if it is the transfer target and now has our whole log, the
 * transfer can proceed. */
void raft_transfer_check(struct raft *r, struct raft_progress *p)
{
	if (r->role == RAFT_LEADER && r->transfer_target == p->id && !p->recovering &&
	    p->match == raft_log_last(&r->log))
		send_timeout_now(r, p->id);
}

void raft_transfer_tick(struct raft *r)
{
	if (r->transfer_target == 0)
		return;
	if (++r->transfer_elapsed >= r->cfg.election_ticks)
		raft_transfer_abort(r);
}

void raft_recv_timeout_now(struct raft *r, const struct raft_message *m)
{
	(void)m;
	if (r->role == RAFT_LEADER || !raft_is_voter(r))
		return;
	raft_campaign(r, false, true);
}
