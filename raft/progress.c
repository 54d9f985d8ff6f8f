/* progress.c — per-peer replication state machine (probe / replicate / snapshot) and its
 * in-flight window, after etcd-io/raft's tracker package (ideas, not code).
 */
#include "raft/progress.h"

#include <assert.h>

void raft_progress_reset(struct raft_progress *p, raft_id id, raft_index next)
{
	struct raft_inflight *buf = p->buf;
	uint32_t cap = p->cap;
	*p = (struct raft_progress){0};
	p->buf = buf;
	p->cap = cap;
	p->id = id;
	p->next = next;
	p->state = RAFT_PR_PROBE;
}

static void inflight_clear(struct raft_progress *p)
{
	p->head = p->count = 0;
	p->bytes = 0;
}

void raft_progress_become_probe(struct raft_progress *p)
{
	/* After a snapshot, continue right after it; otherwise right after the match. */
	if (p->state == RAFT_PR_SNAPSHOT) {
		raft_index n = p->match > p->snap_index ? p->match : p->snap_index;
		p->next = n + 1;
	} else {
		p->next = p->match + 1;
	}
	p->state = RAFT_PR_PROBE;
	p->probe_sent = false;
	p->snap_wait_chunk = p->snap_wait_resp = false;
	inflight_clear(p);
}

void raft_progress_become_replicate(struct raft_progress *p)
{
	p->state = RAFT_PR_REPLICATE;
	p->next = p->match + 1;
	p->probe_sent = false;
	inflight_clear(p);
}

void raft_progress_become_snapshot(struct raft_progress *p, raft_index index, raft_term term)
{
	p->state = RAFT_PR_SNAPSHOT;
	p->snap_index = index;
	p->snap_term = term;
	p->snap_offset = 0;
	p->snap_wait_chunk = p->snap_wait_resp = false;
	p->snap_elapsed = 0;
	p->probe_sent = false;
	inflight_clear(p);
}

static void inflight_free_to(struct raft_progress *p, raft_index index)
{
	while (p->count > 0 && p->buf[p->head].last <= index) {
		p->bytes -= p->buf[p->head].bytes;
		p->head = (p->head + 1) % p->cap;
		p->count--;
	}
	if (p->count == 0)
		p->head = 0;
}

bool raft_progress_update(struct raft_progress *p, raft_index index)
{
	bool moved = false;
	if (index > p->match) {
		p->match = index;
		moved = true;
		p->probe_sent = false;
	}
	if (p->next < index + 1)
		p->next = index + 1;
	inflight_free_to(p, index);
	return moved;
}

bool raft_progress_decr(struct raft_progress *p, raft_index rejected, raft_index probe_at)
{
	if (p->state == RAFT_PR_REPLICATE) {
		/* A rejection at or below match is a reordered old answer. */
		if (rejected <= p->match)
			return false;
		raft_progress_become_probe(p);
		return true;
	}
	/* PROBE: only the answer to the probe we sent (prev = next-1) counts. */
	if (p->next == 0 || p->next - 1 != rejected)
		return false;
	raft_index n = probe_at < rejected ? probe_at : rejected;
	if (n < 1)
		n = 1;
	/* The answer to our current probe says the peer lacks entries at or below what it
	 * acknowledged (its disk lost them, or it restarted empty): believe the fresh answer and
	 * lower match, or we would probe at match + 1 for ever and never send what it lacks.
	 * Lowering match is always safe: commit never decreases, and a lower match only delays. */
	if (n <= p->match)
		p->match = n - 1;
	p->next = n;
	p->probe_sent = false;
	return true;
}

bool raft_progress_paused(const struct raft_progress *p, uint32_t max_msgs, uint64_t max_bytes)
{
	switch (p->state) {
	case RAFT_PR_PROBE:
		return p->probe_sent;
	case RAFT_PR_REPLICATE:
		return p->count >= p->cap || p->count >= max_msgs ||
		       (max_bytes > 0 && p->bytes >= max_bytes);
	default:
		return true;
	}
}

void raft_progress_sent(struct raft_progress *p, raft_index last, uint64_t bytes)
{
	if (p->state == RAFT_PR_REPLICATE) {
		if (last >= p->next) {
			assert(p->count < p->cap);
			uint32_t slot = (p->head + p->count) % p->cap;
			p->buf[slot].last = last;
			p->buf[slot].bytes = bytes;
			p->count++;
			p->bytes += bytes;
			p->next = last + 1;
		}
	} else if (p->state == RAFT_PR_PROBE) {
		p->probe_sent = true;
	}
}

void raft_progress_free_first(struct raft_progress *p)
{
	if (p->count == 0)
		return;
	p->bytes -= p->buf[p->head].bytes;
	p->head = (p->head + 1) % p->cap;
	p->count--;
}

const char *raft_progress_state_name(uint8_t state)
{
	switch (state) {
	case RAFT_PR_PROBE:
		return "probe";
	case RAFT_PR_REPLICATE:
		return "replicate";
	case RAFT_PR_SNAPSHOT:
		return "snapshot";
	}
	return "?";
}
