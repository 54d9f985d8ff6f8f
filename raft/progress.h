/* progress.h — the leader's view of one peer (thesis 3.5 nextIndex/matchIndex) plus the flow
 * control of etcd's design: a peer is probed (one AppendEntries per heartbeat until we find
 * where its log matches), then replicated to (pipelined, bounded by an in-flight window of
 * messages and bytes), or sent a snapshot (no AppendEntries until it is installed).
 */
#ifndef RINGRAFT_RAFT_PROGRESS_H
#define RINGRAFT_RAFT_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

#include "raft/raft.h"

enum raft_progress_state { RAFT_PR_PROBE = 0, RAFT_PR_REPLICATE, RAFT_PR_SNAPSHOT };

struct raft_inflight {
	raft_index last; /* last entry index of one AppendEntries */
	uint64_t bytes;
};

struct raft_progress {
	raft_id id;
	raft_index match, next;
	uint8_t state;       /* enum raft_progress_state */
	bool probe_sent;     /* PROBE: one message out, wait for an answer or a heartbeat */
	bool recent_active;  /* heard from since the last CheckQuorum round */
	bool recovering;     /* its last answer said it is recovering: counted in no quorum */
	uint64_t read_acked; /* highest ReadIndex round this peer acknowledged */
	uint64_t lease_tick; /* 1 + the leader's tick when it sent the latest heartbeat round this
			      * peer acknowledged (raft/lease.c); 0 = none since the lease dropped */
	raft_index commit_sent;
	/* in-flight window (REPLICATE): a ring of cap slots; buf borrowed from struct raft */
	struct raft_inflight *buf;
	uint32_t cap, head, count;
	uint64_t bytes;
	/* SNAPSHOT */
	raft_index snap_index;
	raft_term snap_term;
	uint64_t snap_offset;  /* offset of the next chunk to request */
	bool snap_wait_chunk;  /* a raft_snapshot_request is out to the driver */
	bool snap_wait_resp;   /* a chunk is out to the peer */
	uint32_t snap_elapsed; /* ticks since the last snapshot progress */
};

void raft_progress_reset(struct raft_progress *p, raft_id id, raft_index next);
void raft_progress_become_probe(struct raft_progress *p);
void raft_progress_become_replicate(struct raft_progress *p);
void raft_progress_become_snapshot(struct raft_progress *p, raft_index index, raft_term term);
/* An acknowledgement of entries up to index: true if it moved match forward. */
bool raft_progress_update(struct raft_progress *p, raft_index index);
/* A rejection of prev index `rejected`; `probe_at` = the next index to try. False if stale. */
bool raft_progress_decr(struct raft_progress *p, raft_index rejected, raft_index probe_at);
/* No more AppendEntries may be sent now. */
bool raft_progress_paused(const struct raft_progress *p, uint32_t max_msgs, uint64_t max_bytes);
/* An AppendEntries carrying entries up to last (bytes of data) was sent. */
void raft_progress_sent(struct raft_progress *p, raft_index last, uint64_t bytes);
/* Frees the oldest in-flight slot (a heartbeat answer shows the peer is alive). */
void raft_progress_free_first(struct raft_progress *p);
const char *raft_progress_state_name(uint8_t state);

#endif
