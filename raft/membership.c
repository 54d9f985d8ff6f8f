/* membership.c — single-server membership changes (thesis 4.1) of voters and learners.
 *
 * Safeguards: one change at a time (the previous conf entry must be committed); none before
 * the leader has committed an entry of its current term (the fix to the single-server change
 * bug found in 2015, see the raft-dev thread "bug in single-server membership changes");
 * a learner is promoted only once it is within RAFT_PROMOTE_LAG_MAX entries of the leader.
 * A configuration takes effect as soon as it is appended; a leader that removed itself keeps
 * leading (without counting itself) until the change commits, then steps down (thesis 4.2.2).
 */
#include <assert.h>
#include <stdlib.h>

#include "raft/conf.h"
#include "raft/raft_impl.h"

int raft_propose_conf_change(struct raft *r, enum raft_conf_change_type type, raft_id node,
			     raft_index *index)
{
	assert(!r->in_ready);
	if (r->role != RAFT_LEADER)
		return RAFT_ENOTLEADER;
	raft_wake(r, RAFT_WAKE_LOCAL);
	if (r->transfer_target != 0)
		return RAFT_ETRANSFER;
	if (r->conf_index > r->commit)
		return RAFT_EBUSY; /* the previous change has not committed yet */
	if (raft_log_term_at(&r->log, r->commit) != r->term)
		return RAFT_EBUSY; /* nothing of this term committed yet */
	struct raft_conf c = r->conf;
	int rv = raft_conf_apply(&c, type, node);
	if (rv != 0)
		return rv;
	if (type == RAFT_CC_PROMOTE) {
		const struct raft_progress *p = raft_progress_of(r, node);
		/* caught up: it holds the configuration in effect (so it knows its peers) and is
		 * within a small margin of our last entry */
		if (p == NULL || p->match < r->conf_index ||
		    p->match + RAFT_PROMOTE_LAG_MAX < raft_log_last(&r->log))
			return RAFT_ECATCHUP;
	}
	struct raft_buf data;
	rv = raft_conf_encode(&c, type, node, &data);
	if (rv != 0)
		return rv;
	raft_index idx;
	rv = raft_append_local(r, RAFT_ENTRY_CONF, data, &idx);
	if (rv != 0) {
		free(data.base);
		return rv;
	}
	if (index != NULL)
		*index = idx;
	return 0;
}

void raft_membership_on_commit(struct raft *r)
{
	if (r->role == RAFT_LEADER && r->commit >= r->conf_index && !raft_is_voter(r))
		raft_become_follower(r, r->term, 0);
}
