/* snapshot.c — InstallSnapshot in chunks (thesis 5.3 / figure 5.3), driven by the driver.
 *
 * Leader: a peer whose next entry was compacted goes to the snapshot state; the core asks the
 * driver for chunk (index, offset) through update.snap_reqs, the driver answers with
 * raft_snapshot_chunk(), the core sends it (one chunk in flight per peer) and asks for the next
 * once the peer answers with the offset it wants. The last chunk's answer moves the peer back
 * to probing from snap_index + 1. No answer for an election timeout: the chunk is requested
 * again (the follower's answer then tells where it really is).
 *
 * Follower: each accepted chunk goes out in update.snap_chunk to be staged; the answer (next
 * offset wanted) waits for persistence. The last chunk resets the log to (index, term, conf)
 * and sets commit and applied to index: the driver installs the staged snapshot.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "raft/conf.h"
#include "raft/raft_impl.h"

static void request_chunk(struct raft *r, struct raft_progress *p)
{
	struct raft_snapshot_request q = {
		.to = p->id,
		.index = p->snap_index,
		.term = p->snap_term,
		.offset = p->snap_offset,
		.len_max = r->cfg.snapshot_chunk_bytes,
	};
	if (RAFT_VEC_PUSH(r->snap_reqs, q) != 0)
		return; /* retried by raft_snapshot_tick */
	p->snap_wait_chunk = true;
	p->snap_wait_resp = false;
	p->snap_elapsed = 0;
}

void raft_snapshot_start(struct raft *r, struct raft_progress *p)
{
	assert(r->snap_index >= r->log.offset);
	raft_progress_become_snapshot(p, r->snap_index, r->snap_term);
	request_chunk(r, p);
}

void raft_snapshot_tick(struct raft *r, struct raft_progress *p)
{
	if (++p->snap_elapsed < r->cfg.election_ticks)
		return;
	request_chunk(r, p);
}

void raft_snapshot_chunk(struct raft *r, raft_id to, raft_index index, uint64_t offset,
			 const void *data, size_t len, bool last, bool failed)
{
	assert(!r->in_ready);
	struct raft_progress *p = raft_progress_of(r, to);
	if (r->role != RAFT_LEADER || p == NULL || p->state != RAFT_PR_SNAPSHOT ||
	    p->snap_index != index || !p->snap_wait_chunk || p->snap_offset != offset)
		return; /* stale answer */
	p->snap_wait_chunk = false;
	if (failed) {
		/* back to probing; the next heartbeat answer starts over */
		p->state = RAFT_PR_PROBE;
		p->next = p->match + 1;
		p->probe_sent = true;
		return;
	}
	void *copy = NULL;
	if (len > 0) {
		copy = malloc(len);
		if (copy == NULL || RAFT_VEC_PUSH(r->bufs, copy) != 0) {
			free(copy);
			return; /* retried by raft_snapshot_tick */
		}
		memcpy(copy, data, len);
	}
	struct raft_message m = {
		.type = RAFT_MSG_SNAPSHOT,
		.to = to,
		.term = r->term,
		.commit = r->commit,
		.snap_index = p->snap_index,
		.snap_term = p->snap_term,
		.snap_conf = r->snap_conf,
		.snap_offset = offset,
		.snap_data = {copy, len},
		.snap_done = last,
	};
	if (p->snap_index != r->snap_index) {
		/* compacted again meanwhile: the conf we hold is for the newer point; restart */
		raft_snapshot_start(r, p);
		return;
	}
	raft_send(r, &m);
	p->snap_wait_resp = true;
	p->snap_elapsed = 0;
}

void raft_recv_snapshot(struct raft *r, const struct raft_message *m)
{
	struct raft_message resp = {
		.type = RAFT_MSG_SNAPSHOT_RESP,
		.to = m->from,
		.term = r->term,
		.snap_index = m->snap_index,
		.snap_term = m->snap_term,
	};
	if (m->snap_index <= r->commit) {
		/* we already have everything it covers */
		resp.snap_done = true;
		resp.index = r->commit;
		raft_send(r, &resp);
		return;
	}
	if (m->snap_index <= raft_log_last(&r->log) && m->snap_index >= r->log.offset &&
	    raft_log_term_at(&r->log, m->snap_index) == m->snap_term) {
		/* Our log holds the snapshot's last entry (log matching: and everything before
		 * it): the entries are committed, and the ones after it may have been
		 * acknowledged already, so never reset the log here (etcd does the same). */
		r->commit = m->snap_index;
		r->stage_next = 0;
		resp.snap_done = true;
		resp.index = m->snap_index;
		raft_send(r, &resp);
		return;
	}
	if (r->has_snap_chunk)
		return; /* one chunk per update; the leader resends after a timeout */
	if (m->snap_offset == 0) {
		r->stage_index = m->snap_index;
		r->stage_term = m->snap_term;
		r->stage_next = 0;
	} else if (r->stage_index != m->snap_index || r->stage_term != m->snap_term ||
		   r->stage_next != m->snap_offset) {
		bool same = r->stage_index == m->snap_index && r->stage_term == m->snap_term;
		resp.reject = true;
		resp.snap_offset = same ? r->stage_next : 0;
		raft_send(r, &resp);
		return;
	}
	void *copy = NULL;
	if (m->snap_data.len > 0) {
		copy = malloc(m->snap_data.len);
		if (copy == NULL || RAFT_VEC_PUSH(r->bufs, copy) != 0) {
			free(copy);
			return;
		}
		memcpy(copy, m->snap_data.base, m->snap_data.len);
	}
	r->snap_chunk = (struct raft_snapshot_chunk_in){
		.index = m->snap_index,
		.term = m->snap_term,
		.conf = m->snap_conf,
		.offset = m->snap_offset,
		.data = {copy, m->snap_data.len},
		.done = m->snap_done,
	};
	r->has_snap_chunk = true;
	r->stage_next = m->snap_offset + m->snap_data.len;
	resp.snap_offset = r->stage_next;
	if (m->snap_done) {
		/* install: the snapshot replaces the whole log and the state machine */
		raft_log_reset(&r->log, m->snap_index, m->snap_term);
		r->unstable = m->snap_index + 1;
		r->truncate_from = 0;
		r->persisted = 0;
		r->snap_index = m->snap_index;
		r->snap_term = m->snap_term;
		r->snap_conf = m->snap_conf;
		r->commit = m->snap_index;
		if (r->applied >= m->snap_index)
			r->snap_chunk.skip_install = true; /* state machine already past it */
		else
			r->applied = m->snap_index;
		r->stage_next = 0;
		r->snap_installed = true;
		raft_rebuild_conf(r);
		/* acknowledgements queued in this update for entries the snapshot replaces would
		 * claim entries that will never be written: drop them */
		size_t k = 0;
		for (size_t i = 0; i < r->msgs_after.n; i++) {
			const struct raft_message *q = &r->msgs_after.v[i];
			if (q->type == RAFT_MSG_APPEND_RESP && !q->reject &&
			    q->index > m->snap_index)
				continue;
			r->msgs_after.v[k++] = *q;
		}
		r->msgs_after.n = k;
		resp.snap_done = true;
		resp.index = m->snap_index;
	}
	raft_send(r, &resp);
}

void raft_recv_snapshot_resp(struct raft *r, const struct raft_message *m)
{
	struct raft_progress *p = raft_progress_of(r, m->from);
	if (p == NULL)
		return;
	p->recent_active = true;
	if (m->snap_done) {
		raft_progress_update(p, m->index);
		if (p->state == RAFT_PR_SNAPSHOT)
			raft_progress_become_probe(p);
		raft_maybe_commit(r);
		raft_transfer_check(r, p);
		if (r->role == RAFT_LEADER)
			raft_send_append(r, p, true);
		return;
	}
	if (p->state != RAFT_PR_SNAPSHOT || m->snap_index != p->snap_index || !p->snap_wait_resp)
		return;
	p->snap_offset = m->snap_offset;
	request_chunk(r, p);
}
