/* raft_impl.h — the inside of struct raft and the functions the core's files share.
 *
 * Not part of the contract: only the files of raft/ include it (and white-box unit tests). Each
 * concept lives in its own file: election.c, replication.c, readindex.c, transfer.c, snapshot.c,
 * membership.c, step.c (message dispatch and term rules), raft.c (lifecycle and update).
 *
 * The three safety rules most worth breaking on purpose (to see tests/sim catch it) each live
 * in one function:
 *   raft_log_up_to_date()     election.c     vote only for an up-to-date log (thesis 3.6.1)
 *   raft_maybe_commit()       replication.c  commit by counting only current-term entries (3.6.2)
 *   raft_leader_self_match()  replication.c  the leader counts itself once durable (10.2.1)
 */
#ifndef RINGRAFT_RAFT_IMPL_H
#define RINGRAFT_RAFT_IMPL_H

#include "raft/log.h"
#include "raft/progress.h"
#include "raft/raft.h"
#include "raft/rand.h"

/* A ReadIndex request waiting for its heartbeat round (thesis 6.4). */
struct raft_pending_read {
	uint64_t ctx;
	raft_index index;
	uint64_t round; /* 0 = waiting for the leader's first commit in its term */
};

/* A heartbeat round and the leader's tick when it was sent (lease.c). */
struct raft_lease_round {
	uint64_t round, tick;
};

/* A growable array of T, reused across updates (never shrinks: no allocation per update in
 * the steady state). */
#define RAFT_VEC(T)                                                                                \
	struct {                                                                                   \
		T *v;                                                                              \
		size_t n, cap;                                                                     \
	}

struct raft {
	struct raft_config cfg;
	raft_id id;
	struct raft_rand rng;

	/* persistent state (thesis figure 3.1) */
	raft_term term;
	raft_id vote;
	raft_index commit;
	struct raft_log log;
	raft_index applied;   /* last index handed out in update.committed */
	uint64_t apply_limit; /* committed entries later Readies may hand out (raft_set_apply_limit)
			       */
	raft_index persisted; /* our own log is durable up to here (raft_persisted) */

	/* role */
	enum raft_role role;
	raft_id leader;
	uint32_t election_elapsed;
	uint32_t heartbeat_elapsed;
	uint32_t randomized_timeout;
	/* votes received in the current (pre)campaign */
	raft_id votes_from[RAFT_NODES_MAX];
	bool votes_granted[RAFT_NODES_MAX];
	uint32_t n_votes;

	/* configuration: `conf` is the latest appended (in effect, thesis 4.1) at conf_index */
	struct raft_conf conf;
	raft_index conf_index;
	struct raft_conf conf_prev; /* the configuration before conf_index */
	/* snapshot point: the last compaction index and its term and configuration */
	raft_index snap_index;
	raft_term snap_term;
	struct raft_conf snap_conf;

	/* leader */
	struct raft_progress prs[RAFT_NODES_MAX]; /* peers (not self): voters and learners */
	uint32_t n_prs;
	struct raft_inflight *inflight_mem; /* owned: RAFT_NODES_MAX windows */
	bool lead_unsynced; /* won alone: our term may not be durable until noop_index is */
	raft_index noop_index;
	raft_id transfer_target;
	uint32_t transfer_elapsed;
	bool bcast_pending; /* new entries or commit to send at the next raft_ready */

	/* ReadIndex */
	RAFT_VEC(struct raft_pending_read) reads;
	uint64_t read_round_open; /* round that reads arriving now join */
	uint64_t read_round_sent; /* last round broadcast */
	bool read_round_needed;

	/* leader leases (lease.c) */
	uint64_t now;           /* clock ticks since raft_new (raft_advance_clock; lease only) */
	uint32_t heard_elapsed; /* timer ticks since we accepted a leader's message (sticky) */
	uint64_t lease_floor;   /* heartbeat rounds <= this extend no lease (it was dropped) */
	bool lease_fenced;      /* a TIMEOUT_NOW left in this term: no lease until the next */
	struct raft_lease_round lease_rounds[RAFT_LEASE_ROUNDS]; /* recent heartbeat rounds */
	raft_term hb_term; /* follower: the term of hb_round */
	uint64_t hb_round; /* follower: highest heartbeat round accepted in hb_term */

	/* recovery (recovery.c): persisted `recovering`, and the volatile term fence */
	bool recovering;
	bool fenced;                        /* every other voter told us its term */
	raft_id fence_from[RAFT_NODES_MAX]; /* voters that answered */
	uint32_t n_fence;
	raft_term fence_term;   /* the highest term among the answers */
	uint32_t fence_elapsed; /* ticks since the last round of queries */
	raft_index recover_at;  /* the leader's commit of its own term we must hold durably */

	/* quiescence (quiesce.c) */
	bool quiesced;
	uint32_t quiesce_idle; /* leader: ticks the group has been idle and fully replicated */

	/* follower snapshot staging */
	raft_index stage_index;
	raft_term stage_term;
	uint64_t stage_next; /* next offset expected; 0 = nothing staged */

	/* ------------------------------------------------ output, reset at raft_advance */
	bool in_ready; /* between raft_ready and raft_advance: no events allowed */
	RAFT_VEC(struct raft_message) msgs;
	RAFT_VEC(struct raft_message) msgs_after;
	RAFT_VEC(struct raft_snapshot_request) snap_reqs;
	RAFT_VEC(struct raft_read_state) reads_out;
	RAFT_VEC(uint64_t) reads_dropped;
	RAFT_VEC(void *) bufs; /* owned buffers referenced by queued messages / snap_chunk */
	raft_index unstable;   /* first log index not yet handed out for persistence */
	raft_index truncate_from;
	bool has_snap_chunk;
	struct raft_snapshot_chunk_in snap_chunk;
	bool snap_installed; /* snap_chunk.done pending in this update: appends are refused */
	struct raft_hard_state hs_out; /* last hard state handed out */
	struct raft_soft_state soft_out;
	struct raft_conf conf_out;
	bool first_ready;
	/* recorded by raft_ready for raft_advance */
	raft_index ready_last;
	raft_index ready_applied;
};

/* vec.c-free helper: grows a RAFT_VEC to hold one more element. */
int raft_vec_grow(void **v, size_t *cap, size_t elem, size_t need);
#define RAFT_VEC_PUSH(vec, val)                                                                    \
	(raft_vec_grow((void **)&(vec).v, &(vec).cap, sizeof(*(vec).v), (vec).n + 1) == 0          \
		 ? ((vec).v[(vec).n++] = (val), 0)                                                 \
		 : RAFT_ENOMEM)

/* raft.c */
void raft_send(struct raft *r, struct raft_message *m); /* queues m (from/term filled) */
struct raft_progress *raft_progress_of(struct raft *r, raft_id id);
uint32_t raft_quorum(const struct raft *r);
bool raft_is_voter(const struct raft *r); /* a voter of the configuration in effect */
bool raft_may_campaign(const struct raft *r);
/* Rebuilds prs[] from conf (keeps existing peers, adds new ones at last+1). */
void raft_sync_progress(struct raft *r);
/* Recomputes conf from the last conf entry at or below last (or snap_conf). */
void raft_rebuild_conf(struct raft *r);
/* Takes the conf entries among [from, last] into account (they take effect when appended). */
void raft_conf_note_appended(struct raft *r, raft_index from);

/* election.c */
void raft_become_follower(struct raft *r, raft_term term, raft_id leader);
void raft_become_leader(struct raft *r);
void raft_campaign(struct raft *r, bool pre_vote, bool transfer);
void raft_tick_election(struct raft *r);
void raft_tick_leader(struct raft *r);
bool raft_log_up_to_date(const struct raft *r, raft_index last_index, raft_term last_term);
void raft_recv_vote(struct raft *r, const struct raft_message *m);
void raft_recv_vote_resp(struct raft *r, const struct raft_message *m);
void raft_reset_election_timer(struct raft *r);

/* replication.c */
int raft_append_local(struct raft *r, uint8_t type, struct raft_buf data, raft_index *index);
bool raft_send_append(struct raft *r, struct raft_progress *p, bool allow_empty);
void raft_bcast_append(struct raft *r);
void raft_bcast_heartbeat(struct raft *r);
bool raft_maybe_commit(struct raft *r);
raft_index raft_leader_self_match(const struct raft *r);
void raft_recv_append(struct raft *r, const struct raft_message *m);
void raft_recv_append_resp(struct raft *r, const struct raft_message *m);
void raft_recv_heartbeat(struct raft *r, const struct raft_message *m);
void raft_recv_heartbeat_resp(struct raft *r, const struct raft_message *m);

/* readindex.c */
void raft_reads_on_commit(struct raft *r);
void raft_reads_advance(struct raft *r);
void raft_reads_drop_all(struct raft *r);
void raft_reads_flush(struct raft *r);

/* transfer.c */
void raft_transfer_abort(struct raft *r);
void raft_transfer_check(struct raft *r, struct raft_progress *p);
void raft_transfer_tick(struct raft *r);
void raft_recv_timeout_now(struct raft *r, const struct raft_message *m);

/* snapshot.c */
void raft_snapshot_start(struct raft *r, struct raft_progress *p);
void raft_snapshot_tick(struct raft *r, struct raft_progress *p);
void raft_recv_snapshot(struct raft *r, const struct raft_message *m);
void raft_recv_snapshot_resp(struct raft *r, const struct raft_message *m);

/* recovery.c */
void raft_recovery_tick(struct raft *r);
void raft_recv_term_query(struct raft *r, const struct raft_message *m);
void raft_recv_term_resp(struct raft *r, const struct raft_message *m);
/* Follower: an accepted AppendEntries from the leader of our term. */
void raft_recovery_on_append(struct raft *r, const struct raft_message *m, raft_index last_new);
/* Follower: our log became durable further, or a fence completed: maybe recovered now. */
void raft_recovery_check(struct raft *r);
/* Leader: an answer from a peer; adopts its recovering flag (resetting its progress when it
 * starts recovering). */
void raft_recovery_note_peer(struct raft *r, const struct raft_message *m);

/* quiesce.c */
enum raft_wake_why {
	RAFT_WAKE_LOCAL,       /* a proposal, read, transfer, conf change or peer reset here */
	RAFT_WAKE_LEADER,      /* a message from our leader: it is awake */
	RAFT_WAKE_MESSAGE,     /* any other message: wake the leader too */
	RAFT_WAKE_LEADER_DOWN, /* the node's link to our leader went down */
};
void raft_wake(struct raft *r, enum raft_wake_why why);
void raft_quiesce_tick(struct raft *r); /* leader, every tick */
void raft_recv_quiesce(struct raft *r, const struct raft_message *m);

/* lease.c */
void raft_lease_note_round(struct raft *r, uint64_t round); /* a heartbeat round leaves now */
void raft_lease_on_ack(struct raft *r, struct raft_progress *p, uint64_t round);
void raft_lease_drop(struct raft *r);
bool raft_lease_sticky(const struct raft *r); /* heard from a leader < an election timeout */

/* membership.c */
void raft_membership_on_commit(struct raft *r);

#endif
