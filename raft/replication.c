/* replication.c — log replication (thesis 3.5): the leader's AppendEntries with per-peer flow
 * control and fast back-off, the follower's consistency check and append, heartbeats, and the
 * commit rule. Two rules of the thesis live here in clearly named functions:
 *   raft_leader_self_match()  the leader counts its own entries only once durable (10.2.1);
 *   raft_maybe_commit()       only current-term entries commit by counting replicas (3.6.2).
 */
#include <assert.h>
#include <string.h>

#include "raft/conf.h"
#include "raft/raft_impl.h"

int raft_append_local(struct raft *r, uint8_t type, struct raft_buf data, raft_index *index)
{
	assert(r->role == RAFT_LEADER);
	struct raft_entry e = {
		.term = r->term,
		.index = raft_log_last(&r->log) + 1,
		.type = type,
		.data = data,
	};
	int rv = raft_log_append(&r->log, &e);
	if (rv != 0)
		return rv;
	if (type == RAFT_ENTRY_CONF)
		raft_conf_note_appended(r, e.index); /* in effect once appended (thesis 4.1) */
	*index = e.index;
	r->bcast_pending = true;
	/* a single voter may already be able to commit (once persisted) */
	raft_maybe_commit(r);
	return 0;
}

/* ---------------------------------------------------------------------- leader: sending */

/* Sends one AppendEntries to p if flow control allows: as many entries from p->next as fit in
 * max_msg_bytes and RAFT_MSG_ENTRIES_MAX (at least one). Without entries to send, sends an
 * empty one only if allow_empty. Falls back to a snapshot when p->next was compacted. */
bool raft_send_append(struct raft *r, struct raft_progress *p, bool allow_empty)
{
	if (raft_progress_paused(p, r->cfg.max_inflight_msgs, r->cfg.max_inflight_bytes))
		return false;
	raft_index last = raft_log_last(&r->log);
	if (p->next > last + 1)
		p->next = last + 1;
	raft_index prev = p->next - 1;
	if (prev < r->log.offset) {
		raft_snapshot_start(r, p);
		return false;
	}
	uint32_t n = 0;
	uint64_t bytes = 0;
	for (raft_index i = p->next; i <= last && n < RAFT_MSG_ENTRIES_MAX; i++) {
		const struct raft_entry *e = raft_log_get(&r->log, i);
		if (n > 0 && bytes + e->data.len > r->cfg.max_msg_bytes)
			break;
		bytes += e->data.len;
		n++;
	}
	if (n == 0 && !allow_empty)
		return false;
	struct raft_message m = {
		.type = RAFT_MSG_APPEND,
		.to = p->id,
		.term = r->term,
		.index = prev,
		.log_term = raft_log_term_at(&r->log, prev),
		.commit = r->commit,
		.n_entries = n, /* entries are pointed at in raft_ready (the log may move) */
	};
	raft_send(r, &m);
	p->commit_sent = r->commit;
	raft_progress_sent(p, prev + n, bytes);
	return true;
}

/* Sends what each peer is missing; in replicate state, as many messages as the window allows
 * (pipelining). Peers already up to date get an empty append only to learn a new commit. */
static void send_to_peer(struct raft *r, struct raft_progress *p, bool force)
{
	bool empty_ok = force || p->commit_sent < r->commit;
	while (raft_send_append(r, p, empty_ok)) {
		empty_ok = false;
		if (p->state != RAFT_PR_REPLICATE || p->next > raft_log_last(&r->log))
			break;
	}
}

void raft_bcast_append(struct raft *r)
{
	for (uint32_t i = 0; i < r->n_prs; i++)
		send_to_peer(r, &r->prs[i], false);
}

/* Every broadcast is a new round (readindex.c): it confirms the reads waiting for the open
 * round, and its send tick is what its answers extend the lease from (lease.c). */
void raft_bcast_heartbeat(struct raft *r)
{
	r->read_round_sent = r->read_round_open++;
	r->read_round_needed = false;
	raft_lease_note_round(r, r->read_round_sent);
	for (uint32_t i = 0; i < r->n_prs; i++) {
		struct raft_progress *p = &r->prs[i];
		/* never tell a follower to commit beyond what we know it holds */
		struct raft_message m = {
			.type = RAFT_MSG_HEARTBEAT,
			.to = p->id,
			.term = r->term,
			.commit = r->commit < p->match ? r->commit : p->match,
			.context = r->read_round_sent,
		};
		raft_send(r, &m);
	}
}

/* ---------------------------------------------------------------------- commit */

/* THE SELF-COUNT RULE (thesis 10.2.1): the leader writes its log in parallel with sending it,
 * and counts itself toward a majority only up to what raft_persisted() reported durable. */
raft_index raft_leader_self_match(const struct raft *r)
{
	raft_index last = raft_log_last(&r->log);
	return r->persisted < last ? r->persisted : last;
}

static void sort_desc(uint64_t *v, uint32_t n)
{
	for (uint32_t i = 1; i < n; i++) {
		uint64_t x = v[i];
		uint32_t j = i;
		while (j > 0 && v[j - 1] < x) {
			v[j] = v[j - 1];
			j--;
		}
		v[j] = x;
	}
}

/* THE COMMIT RULE (thesis 3.6.2): the highest index replicated on a majority of voters
 * commits, but only if its entry is of the current term; earlier-term entries then commit
 * indirectly. Returns true if commit advanced. */
bool raft_maybe_commit(struct raft *r)
{
	if (r->role != RAFT_LEADER || r->conf.n_voters == 0)
		return false;
	uint64_t match[RAFT_NODES_MAX];
	uint32_t n = 0;
	for (uint32_t i = 0; i < r->conf.n_voters; i++) {
		raft_id v = r->conf.voters[i];
		if (v == r->id) {
			match[n++] = raft_leader_self_match(r);
		} else {
			/* a recovering replica may have voted in a later term and forgotten
			 * it: its acknowledgements count for nothing (recovery.c) */
			const struct raft_progress *p = raft_progress_of(r, v);
			match[n++] = p != NULL && !p->recovering ? p->match : 0;
		}
	}
	sort_desc(match, n);
	raft_index candidate = match[raft_quorum(r) - 1];
	if (candidate <= r->commit || raft_log_term_at(&r->log, candidate) != r->term)
		return false;
	r->commit = candidate;
	r->bcast_pending = true; /* followers learn the new commit at the next raft_ready */
	raft_reads_on_commit(r);
	raft_membership_on_commit(r);
	return true;
}

/* ---------------------------------------------------------------------- follower */

static void note_truncation(struct raft *r, raft_index from)
{
	if (from < r->unstable) {
		if (r->truncate_from == 0 || from < r->truncate_from)
			r->truncate_from = from;
		r->unstable = from;
	}
	if (r->persisted >= from)
		r->persisted = from - 1;
}

/* The follower's side of AppendEntries (thesis figure 3.1, with the conflict hint of 3.5). */
void raft_recv_append(struct raft *r, const struct raft_message *m)
{
	if (r->snap_installed)
		return; /* a snapshot completes in this update: the leader will resend */
	struct raft_message resp = {.type = RAFT_MSG_APPEND_RESP, .to = m->from, .term = r->term};
	raft_index last = raft_log_last(&r->log);
	if (m->index < r->commit) {
		/* already committed here: tell the leader where we are */
		resp.index = r->commit;
		raft_send(r, &resp);
		return;
	}
	if (m->index > last || raft_log_term_at(&r->log, m->index) != m->log_term) {
		/* Reject with a hint: the last index <= prev whose term is <= the leader's prev
		 * term, so the leader can skip a whole term per round trip (thesis 3.5). */
		raft_index h = m->index < last ? m->index : last;
		while (h > r->log.offset && raft_log_term_at(&r->log, h) > m->log_term)
			h--;
		resp.reject = true;
		resp.index = m->index;
		resp.hint_index = h;
		resp.hint_term = raft_log_term_at(&r->log, h);
		raft_send(r, &resp);
		return;
	}
	raft_index conf_from = 0;
	for (uint32_t i = 0; i < m->n_entries; i++) {
		const struct raft_entry *e = &m->entries[i];
		if (e->index <= last) {
			if (raft_log_term_at(&r->log, e->index) == e->term)
				continue; /* already have it (log matching) */
			/* a conflict: never below commit, or a committed entry would be lost */
			assert(e->index > r->commit);
			raft_log_truncate(&r->log, e->index);
			note_truncation(r, e->index);
			if (r->conf_index >= e->index)
				raft_rebuild_conf(r);
			last = raft_log_last(&r->log);
		}
		if (raft_log_append_copy(&r->log, e) != 0)
			return; /* out of memory: no answer; the leader retries */
		if (e->type == RAFT_ENTRY_CONF && conf_from == 0)
			conf_from = e->index;
		last = e->index;
	}
	if (conf_from != 0)
		raft_conf_note_appended(r, conf_from);
	raft_index last_new = m->index + m->n_entries;
	raft_index c = m->commit < last_new ? m->commit : last_new;
	if (c > r->commit)
		r->commit = c;
	resp.index = last_new;
	raft_send(r, &resp);
	raft_recovery_on_append(r, m, last_new);
}

void raft_recv_heartbeat(struct raft *r, const struct raft_message *m)
{
	raft_index last = raft_log_last(&r->log);
	raft_index c = m->commit < last ? m->commit : last;
	if (c > r->commit)
		r->commit = c;
	if (r->hb_term != m->term) {
		r->hb_term = m->term;
		r->hb_round = 0;
	}
	if (m->context > r->hb_round)
		r->hb_round = m->context; /* a QUIESCE older than this is stale (quiesce.c) */
	struct raft_message resp = {
		.type = RAFT_MSG_HEARTBEAT_RESP,
		.to = m->from,
		.term = r->term,
		.context = m->context,
	};
	raft_send(r, &resp);
}

/* ---------------------------------------------------------------------- leader: answers */

void raft_recv_append_resp(struct raft *r, const struct raft_message *m)
{
	struct raft_progress *p = raft_progress_of(r, m->from);
	if (p == NULL)
		return;
	p->recent_active = true;
	if (m->reject) {
		raft_index j = m->hint_index;
		if (m->hint_term > 0) {
			/* our last index <= hint whose term <= the follower's term there */
			raft_index last = raft_log_last(&r->log);
			if (j > last)
				j = last;
			while (j > r->log.offset && raft_log_term_at(&r->log, j) > m->hint_term)
				j--;
		}
		if (raft_progress_decr(p, m->index, j + 1))
			raft_send_append(r, p, true);
		return;
	}
	if (raft_progress_update(p, m->index)) {
		if (p->state == RAFT_PR_PROBE)
			raft_progress_become_replicate(p);
		else if (p->state == RAFT_PR_SNAPSHOT && p->match >= p->snap_index)
			raft_progress_become_probe(p);
		raft_maybe_commit(r);
		raft_transfer_check(r, p);
	}
	if (r->role == RAFT_LEADER && p->state != RAFT_PR_SNAPSHOT)
		send_to_peer(r, p, false);
}

void raft_recv_heartbeat_resp(struct raft *r, const struct raft_message *m)
{
	struct raft_progress *p = raft_progress_of(r, m->from);
	if (p == NULL)
		return;
	p->recent_active = true;
	if (m->context > p->read_acked)
		p->read_acked = m->context;
	raft_lease_on_ack(r, p, m->context);
	raft_reads_advance(r);
	if (p->state == RAFT_PR_SNAPSHOT)
		return;
	/* The peer is alive: unblock a probe, and make room in a full window (its messages
	 * may have been lost; a gap makes it reject and we fall back to probing). */
	p->probe_sent = false;
	if (p->state == RAFT_PR_REPLICATE &&
	    raft_progress_paused(p, r->cfg.max_inflight_msgs, r->cfg.max_inflight_bytes))
		raft_progress_free_first(p);
	/* Behind: send what it misses, or an empty append at next-1 whose rejection reveals
	 * entries it lost (e.g. a crash before they were durable). */
	if (p->match < raft_log_last(&r->log))
		send_to_peer(r, p, true);
	else if (p->commit_sent < r->commit)
		send_to_peer(r, p, false);
	else if (p->recovering)
		/* Caught up but still recovering: it leaves recovery only on an AppendEntries
		 * carrying our (unclamped) commit within what it holds (recovery.c); heartbeats
		 * carry min(commit, match) and an idle group sends no appends. */
		send_to_peer(r, p, true);
}
