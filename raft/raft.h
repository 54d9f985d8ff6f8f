/* raft.h — the consensus core of one replica of one Raft group: a pure state machine.
 *
 * Events go in through the functions below (tick, step, propose, persisted, ...); everything
 * the caller must do comes out of raft_ready() as one struct raft_update, in the style of
 * etcd's RawNode Ready/Advance. No I/O, no clock, no randomness but the seeded generator in
 * the config: the same inputs give the same outputs, which is what makes tests/sim possible.
 *
 * The driver loop (node/ and tests/sim/ both follow it):
 *
 *     raft_tick / raft_step / raft_propose / ...       feed events
 *     if (raft_has_ready(r)) {
 *         raft_ready(r, &u);
 *         send u.msgs now                               (they depend on nothing unpersisted)
 *         persist u.hard_state, u.truncate_from, u.entries, u.snapshot (in one WAL batch)
 *         apply u.committed in order                    (already durable: safe before persist)
 *         answer u.reads once applied >= read.index
 *         raft_advance(r, &u);                          u's pointers are invalid from here on
 *     }
 *     ... when the WAL batch holding u is durable:
 *         send u's msgs_after_persist (the driver copied/serialized them before advance)
 *         raft_persisted(r, last index, last term)      the leader may now count itself
 *
 * Persistence is asynchronous (Raft thesis 10.2.1): several updates may be in flight to the
 * disk at once, and they complete in order. Messages that reveal state not yet durable (a
 * vote, an AppendEntries acknowledgement, a candidate's RequestVote for a new term) are put in
 * msgs_after_persist; the driver must hold them back until that update is durable.
 *
 * Memory: entry data handed in by raft_propose is transferred to the core; entries received in
 * messages are copied once into the core's log. Every pointer in a raft_update is borrowed and
 * valid until raft_advance(). The core keeps the log since its last compaction in memory.
 *
 * Exact rules the driver relies on (raft/ implementation, see raft/raft.c):
 *  - No event (tick, step, propose, persisted, ...) may be fed between raft_ready and
 *    raft_advance (asserted).
 *  - msgs_after_persist holds every APPEND_RESP, VOTE_RESP, SNAPSHOT_RESP and VOTE, and every
 *    message created while the term or vote differed from the hard state last handed out;
 *    everything else (the leader's APPEND/HEARTBEAT/SNAPSHOT/TIMEOUT_NOW, PREVOTE and its
 *    answers, HEARTBEAT_RESP) is in msgs. A leader's APPENDs may carry entries it has not
 *    persisted yet (thesis 10.2.1): that is allowed, it only counts itself once durable.
 *  - Torn batches: u.hard_state.commit never covers entries handed out in the same update
 *    (it is recorded one update late), so a crash that keeps a batch's hard state record
 *    but tears off its entries cannot leave a recorded commit beyond the recovered log. If a
 *    restore still has one, the core restarts with commit = its last entry (commit is
 *    volatile in Raft). u.hard_state.commit never decreases.
 *  - raft_persisted: call it, in order, with the last entry (index, term) of each durable
 *    update that had entries, or with (snap index, snap term) of an installed snapshot.
 *    Updates without entries need no call. Stale calls (term mismatch after a truncation)
 *    are ignored.
 *  - u.committed may contain entries not yet durable locally (they are durable on a
 *    majority); after a restart, raft_restore.applied may exceed hard_state.commit and even
 *    the durable log: commit restarts from hard_state.commit (the log may hold stale entries
 *    beyond it), and entries up to applied are not handed out again when they commit.
 *  - Snapshots, leader side: u.snap_reqs asks for (to, index, offset, len_max); answer each
 *    with raft_snapshot_chunk() after raft_advance (same index and offset). One chunk is in
 *    flight per peer; the next request comes when the peer answers; with no answer for an
 *    election timeout the same chunk is asked again. If the driver can no longer produce the
 *    snapshot at `index`, answer failed=true: the core retries later from a fresh request.
 *  - Snapshots, follower side: u.snap_chunk carries at most one chunk per update (others are
 *    dropped, the leader resends). When snap_chunk->done, the update has no entries and no
 *    truncate_from: the driver replaces the group's whole log by the snapshot marker
 *    (index, term, conf) and installs the staged state machine; commit = applied = index.
 *    Exception: with snap_chunk->skip_install the state machine is already past index (see
 *    raft_restore.applied): reset the log and record the marker, but keep the state.
 *  - A leader that won alone (single voter) refuses proposals with RAFT_EBUSY until its
 *    term-start entry is durable (one WAL write), so a crash can never reuse its term.
 *  - raft_compact(index, keep): index must be <= applied and <= commit (else
 *    RAFT_EUNAVAILABLE); the conf entry data encoding is internal (raft/conf.h).
 */
#ifndef RINGRAFT_RAFT_H
#define RINGRAFT_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft/raft_limits.h"

typedef uint64_t raft_id;    /* node id; 0 = none */
typedef uint64_t raft_index; /* log index; 0 = before the first entry */
typedef uint64_t raft_term;  /* term; 0 = before the first election */

/* ------------------------------------------------------------------------------ errors */
enum {
	RAFT_OK = 0,
	RAFT_ENOMEM = -1,       /* allocation failed */
	RAFT_ENOTLEADER = -2,   /* proposal/read/transfer/conf change on a non-leader */
	RAFT_EINVAL = -3,       /* bad argument (e.g. message for another node) */
	RAFT_EBUSY = -4,        /* a configuration change or transfer is already in progress */
	RAFT_ETOOBIG = -5,      /* proposal larger than RAFT_ENTRY_BYTES_MAX */
	RAFT_ECOMPACTED = -6,   /* index below the compaction point */
	RAFT_EUNAVAILABLE = -7, /* index beyond the last entry */
	RAFT_ETRANSFER = -8,    /* proposal refused: leadership transfer in progress */
	RAFT_ELEARNER = -9,     /* transfer target is a learner / not a voter */
	RAFT_ECATCHUP = -10,    /* promotion refused: the learner is too far behind (retry later) */
	RAFT_ERECOVERING = -11, /* transfer target is recovering lost state (raft/recovery.c) */
};
const char *raft_strerror(int err);

/* ------------------------------------------------------------------------------ entries */
enum raft_entry_type {
	RAFT_ENTRY_NORMAL = 0, /* a state machine command (may be empty: the term-start no-op) */
	RAFT_ENTRY_CONF =
		1, /* a configuration change: data = raft_conf_change encoded by the core */
};

struct raft_buf {
	void *base;
	size_t len;
};

struct raft_entry {
	raft_term term;
	raft_index index;
	uint8_t type; /* enum raft_entry_type */
	struct raft_buf data;
};

/* ------------------------------------------------------------------------------ configuration */
struct raft_conf {
	raft_id voters[RAFT_NODES_MAX];
	uint32_t n_voters;
	raft_id learners[RAFT_NODES_MAX];
	uint32_t n_learners;
};

enum raft_conf_change_type {
	RAFT_CC_ADD_VOTER = 0, /* as a learner first is the caller's choice; added directly here */
	RAFT_CC_ADD_LEARNER = 1,
	RAFT_CC_PROMOTE = 2, /* learner -> voter; refused until the learner has caught up */
	RAFT_CC_REMOVE = 3,  /* voter or learner */
};

/* ------------------------------------------------------------------------------ messages */
enum raft_msg_type {
	RAFT_MSG_APPEND = 1, /* AppendEntries (also heartbeats: no entries) */
	RAFT_MSG_APPEND_RESP = 2,
	RAFT_MSG_VOTE = 3, /* RequestVote */
	RAFT_MSG_VOTE_RESP = 4,
	RAFT_MSG_PREVOTE = 5, /* PreVote (thesis 9.6): term = the term it would campaign in */
	RAFT_MSG_PREVOTE_RESP = 6,
	RAFT_MSG_HEARTBEAT = 7, /* carries commit and ReadIndex context */
	RAFT_MSG_HEARTBEAT_RESP = 8,
	RAFT_MSG_SNAPSHOT = 9, /* InstallSnapshot chunk */
	RAFT_MSG_SNAPSHOT_RESP = 10,
	RAFT_MSG_TIMEOUT_NOW = 11, /* leadership transfer: campaign now, skipping PreVote */
	RAFT_MSG_TERM_QUERY = 12,  /* a recovering replica asks a voter for its term */
	RAFT_MSG_TERM_RESP = 13,   /* term = the voter's current term (no term rules apply) */
	RAFT_MSG_QUIESCE = 14,     /* the leader's last heartbeat of an idle group (quiesce.c):
				    * index/log_term = its last entry, commit = its commit */
};

struct raft_message {
	uint8_t type; /* enum raft_msg_type */
	raft_id from, to;
	raft_term term;
	raft_term log_term; /* APPEND: term at index; VOTE/PREVOTE: last log term */
	raft_index index;   /* APPEND: prev index; VOTE: last index; *_RESP: match/last index */
	raft_index commit;
	const struct raft_entry
		*entries; /* APPEND: borrowed (valid until advance / step returns) */
	uint32_t n_entries;
	bool reject;
	raft_index hint_index; /* APPEND_RESP reject: follower's conflict index */
	raft_term hint_term;   /* APPEND_RESP reject: term at hint_index (0 = log too short) */
	uint64_t context;      /* HEARTBEAT(_RESP): ReadIndex round; VOTE: RAFT_CTX_TRANSFER */
	/* SNAPSHOT(_RESP) */
	raft_index snap_index;
	raft_term snap_term;
	struct raft_conf snap_conf;
	uint64_t snap_offset;      /* SNAPSHOT: offset of this chunk; RESP: next offset wanted */
	struct raft_buf snap_data; /* borrowed */
	bool snap_done;            /* SNAPSHOT: last chunk */
	bool recovering; /* the sender is a recovering replica (set on every message it sends) */
};

/* VOTE.context of a campaign started by TIMEOUT_NOW (leadership transfer): voters grant it
 * even while they hear from a leader (no leader stickiness). */
#define RAFT_CTX_TRANSFER 1

/* ------------------------------------------------------------------------------ state */
enum raft_role { RAFT_FOLLOWER = 0, RAFT_PRECANDIDATE, RAFT_CANDIDATE, RAFT_LEADER };
const char *raft_role_name(enum raft_role role);

struct raft_hard_state {
	raft_term term;
	raft_id vote;
	raft_index commit;
	/* This replica lost state it may have acknowledged (an emptied or damaged data
	 * directory): it does not vote, campaign or count in any quorum until a leader has
	 * brought it up to date (raft/recovery.c). Persisted so that a restart keeps it. */
	bool recovering;
};

struct raft_soft_state {
	enum raft_role role;
	raft_id leader; /* 0 = unknown */
};

/* A linearizable read that became safe: answer it once applied >= index (thesis 6.4). */
struct raft_read_state {
	uint64_t ctx;     /* the caller's id from raft_read_index */
	raft_index index; /* the read index */
};

/* The leader needs a chunk of its snapshot to send to `to`: the driver answers with
 * raft_snapshot_chunk(). */
struct raft_snapshot_request {
	raft_id to;
	raft_index index; /* the snapshot the core is sending (its last compaction index) */
	raft_term term;
	uint64_t offset;
	uint32_t len_max;
};

/* A follower received a snapshot chunk: the driver writes it into a staging area for
 * (index, term); offset 0 starts a new staging. On `done`, the whole snapshot is complete:
 * the driver installs it atomically (replacing the state machine), persists the snapshot
 * marker with the update, and the core has already reset its log to (index, term, conf). */
struct raft_snapshot_chunk_in {
	raft_index index;
	raft_term term;
	struct raft_conf conf;
	uint64_t offset;
	struct raft_buf data; /* borrowed */
	bool done;
	/* With done: the state machine is already past index (it applied entries that its log
	 * lost in a crash): record the snapshot marker and reset the log, but do NOT install the
	 * staged data, which is older than the state machine. */
	bool skip_install;
};

struct raft_update {
	/* 1. persist, in one WAL batch, in this order */
	bool has_hard_state;
	struct raft_hard_state hard_state;
	raft_index truncate_from;         /* 0 = none; else drop entries >= truncate_from first */
	const struct raft_entry *entries; /* append after the truncation point */
	size_t n_entries;
	const struct raft_snapshot_chunk_in *snap_chunk; /* NULL or a chunk to stage / install */

	/* 2. send */
	const struct raft_message *msgs; /* now */
	size_t n_msgs;
	const struct raft_message *msgs_after_persist; /* once this update is durable */
	size_t n_msgs_after_persist;
	const struct raft_snapshot_request *snap_reqs; /* answer with raft_snapshot_chunk() */
	size_t n_snap_reqs;

	/* 3. apply, in order (committed entries are durable on a majority; conf entries too:
	 *    the core has already taken the new configuration into account) */
	const struct raft_entry *committed;
	size_t n_committed;

	/* 4. reads */
	const struct raft_read_state *reads; /* safe once applied >= index */
	size_t n_reads;
	const uint64_t *reads_dropped; /* ctx of reads that will never be confirmed */
	size_t n_reads_dropped;

	/* 5. soft state (always filled; changed says whether it differs from the last update) */
	struct raft_soft_state soft;
	bool soft_changed;
	struct raft_conf conf; /* the configuration in effect (latest appended conf entry) */
	bool conf_changed;
};

/* ------------------------------------------------------------------------------ lifecycle */
struct raft_config {
	raft_id id;
	uint64_t seed;              /* randomness; different per node */
	uint32_t election_ticks;    /* base election timeout; actual is random in [t, 2t) */
	uint32_t heartbeat_ticks;   /* leader heartbeat interval (< election_ticks) */
	bool pre_vote;              /* thesis 9.6 */
	bool check_quorum;          /* leader steps down without a quorum for an election timeout */
	uint32_t max_inflight_msgs; /* per follower in replicate state */
	uint64_t max_inflight_bytes; /* per follower */
	uint64_t max_msg_bytes;      /* entries per AppendEntries, bytes */
	uint32_t snapshot_chunk_bytes;
	/* Quiescence (raft/quiesce.c): 0 = never. Else a leader whose group has been idle and
	 * fully replicated for this many ticks sends one RAFT_MSG_QUIESCE and stops
	 * heartbeating; followers that hold its whole log stop their election timers. */
	uint32_t quiesce_ticks;
	/* Called (borrowed function, no I/O of the core's own) whenever a quiesced replica wakes
	 * up, so a driver that skips quiesced replicas knows to look at this one again. May be
	 * NULL. Called from inside the event that woke it (step, propose, tick ...). */
	void (*wake_cb)(void *wake_arg);
	void *wake_arg;
	/* Leader leases (raft/lease.c): a leader that a quorum answered within the lease (in
	 * its own ticks, less than an election timeout) serves raft_read_index at once, without
	 * a heartbeat round; followers then refuse (pre)votes for an election timeout after they
	 * last heard from a leader, restarted ones too. Safe only if every replica's ticks run
	 * at rates within the margin of RAFT_LEASE_DRIFT_DIV and the leader's clock keeps pace
	 * with real time: the driver advances the clock (raft_advance_clock) to the ticks due
	 * before it feeds any other event, a stalled or paused process too (see raft_tick). */
	bool lease_reads;
};
void raft_config_default(struct raft_config *cfg, raft_id id, uint64_t seed);

/* What a node had durable when it stopped (from the WAL and the state machine).
 * For a brand new group: all zero, conf = the bootstrap configuration. */
struct raft_restore {
	struct raft_hard_state hard_state;
	raft_index snap_index; /* last compaction / snapshot point (0 = none) */
	raft_term snap_term;
	struct raft_conf conf;            /* configuration as of snap_index (or bootstrap) */
	const struct raft_entry *entries; /* durable entries after snap_index, contiguous; copied */
	size_t n_entries;
	raft_index applied; /* state machine applied index (>= snap_index) */
};

struct raft;
/* Creates a replica. Returns NULL on allocation failure. */
struct raft *raft_new(const struct raft_config *cfg, const struct raft_restore *restore);
void raft_free(struct raft *r);

/* ------------------------------------------------------------------------------ events */
/* Time has two parts. The timers (election, heartbeat, CheckQuorum, transfer, quiescence, and
 * a follower's count of ticks since it heard from a leader) move only by raft_tick_timers;
 * the clock (the core's `now`, read only by leader leases, raft/lease.c) only by
 * raft_advance_clock. raft_tick is both by one tick, clock first: for a driver without
 * leases, or one whose every tick is on time (tests).
 *
 * With cfg.lease_reads, a leader's clock must keep pace with real time (a clock that lags
 * would let the lease outlive a follower's stickiness), while a timer that misses ticks is
 * only late: a follower stays sticky longer, an election starts later. So a driver with
 * leases gives one timer tick per timer callback, however late it runs (no burst of timer
 * ticks after a stall, which would run out election timers before the heartbeats waiting in
 * the socket are read), and, before it feeds any other event, advances the clock to the
 * ticks due by its monotonic clock since raft_new. The clock must never run ahead of real
 * time (a round sent at a clock ahead, checked at one that is not, would lengthen the lease);
 * any advance is O(1). A quiesced replica's clock may stand still: its lease is dropped at
 * quiesce and renewed only by rounds sent after waking. */
void raft_tick(struct raft *r);
void raft_tick_timers(struct raft *r);
void raft_advance_clock(struct raft *r, uint64_t ticks);
/* A message from a peer. Entries and snapshot data are copied if kept. */
int raft_step(struct raft *r, const struct raft_message *m);
/* A client command. On success the core owns data->base (allocated with malloc) and fills
 * *index and *term with the position the entry will have if it commits. On error the caller
 * keeps ownership. */
int raft_propose(struct raft *r, struct raft_buf *data, raft_index *index, raft_term *term);
/* Entries up to (index, term) are durable (completion of a WAL batch, in order). */
void raft_persisted(struct raft *r, raft_index index, raft_term term);
/* A linearizable read: confirmed by one heartbeat round shared by all reads pending at the
 * time (thesis 6.4), or at once while the leader holds a lease (cfg.lease_reads). ctx comes back in a raft_read_state or in reads_dropped (leadership
 * lost). RAFT_ENOTLEADER on a non-leader. A new leader holds reads until an entry of its term
 * has committed; a single voter confirms at once. */
int raft_read_index(struct raft *r, uint64_t ctx);
/* With cfg.lease_reads: true while this leader holds a lease (raft/lease.c); raft_read_index
 * then answers at once with index = commit. False on a non-leader, during a transfer, and for
 * the rest of a term in which it sent a TIMEOUT_NOW. */
bool raft_lease_held(const struct raft *r);
/* The lease length in ticks for an election timeout of election_ticks (0: no lease). */
uint32_t raft_lease_ticks(uint32_t election_ticks);
/* Leadership transfer (thesis 3.10): waits for the target to catch up, then TimeoutNow.
 * RAFT_ELEARNER if the target is not a voter, RAFT_EBUSY if a transfer is under way,
 * RAFT_EINVAL for self. Proposals get RAFT_ETRANSFER until it ends; it is aborted after an
 * election timeout. */
int raft_transfer_leader(struct raft *r, raft_id target);
/* Single-server membership change (thesis 4.1): one at a time, only once an entry of the
 * current term has committed. Errors: RAFT_ENOTLEADER; RAFT_ETRANSFER while transferring;
 * RAFT_EBUSY while the previous change is uncommitted or nothing of this term committed yet
 * (retry); RAFT_EINVAL for a change that makes no sense (adding a member, removing a stranger
 * or the last voter, promoting a non-learner, more than RAFT_NODES_MAX); RAFT_ECATCHUP when a
 * learner to promote does not yet hold the current configuration or lags more than
 * RAFT_PROMOTE_LAG_MAX entries (retry later). The new configuration is in effect at once. */
int raft_propose_conf_change(struct raft *r, enum raft_conf_change_type type, raft_id node,
			     raft_index *index);
/* The peer could not be reached (send failed / queue full, or the node's link to it went down):
 * a leader goes back to probing it. Quiescence: a quiesced leader wakes; a quiesced follower
 * whose leader is `peer` wakes with its leader lease expired, so it campaigns within one
 * election timeout unless the leader speaks first (the node's failure detector standing in
 * for the heartbeats a quiesced group does not send, raft/quiesce.c). */
void raft_report_unreachable(struct raft *r, raft_id peer);
/* The state machine's state up to `index` is durable (checkpoint): the core may drop log
 * entries <= index (keeping a trailing margin for slow followers); followers behind the new
 * first index get a snapshot. */
int raft_compact(struct raft *r, raft_index index, raft_index keep_trailing);
/* Answer to a raft_snapshot_request: a chunk of the state machine snapshot (data borrowed,
 * copied into the outgoing message). `last` ends the snapshot. A zero-length last chunk is
 * allowed. If the driver cannot produce the snapshot, call with len 0 and failed=true. */
void raft_snapshot_chunk(struct raft *r, raft_id to, raft_index index, uint64_t offset,
			 const void *data, size_t len, bool last, bool failed);

/* ------------------------------------------------------------------------------ output */
bool raft_has_ready(const struct raft *r);
/* Fills *u with everything to do since the last advance. */
void raft_ready(struct raft *r, struct raft_update *u);
/* The caller has taken u: persisted-or-queued entries, sent-or-copied messages, applied
 * committed entries. Pointers in u are invalid after this call. */
void raft_advance(struct raft *r, const struct raft_update *u);

/* ------------------------------------------------------------------------------ queries */
raft_id raft_id_of(const struct raft *r);
enum raft_role raft_role_of(const struct raft *r);
raft_id raft_leader_of(const struct raft *r);
raft_term raft_term_of(const struct raft *r);
raft_index raft_commit_of(const struct raft *r);
raft_index raft_applied_of(const struct raft *r); /* last index handed out in committed */
/* How many committed entries the Readies from now on may hand out in all, until the next call
 * (RAFT_APPLY_ALL, the default: no limit). A state machine slower than commit sets it (as
 * etcd's MaxCommittedSizePerReady bounds one Ready's work); apply then lags commit, and
 * raft_has_ready does not report committed entries while the limit is 0. Reads still come out
 * once confirmed, whatever applied is: the caller's wait for applied >= read.index is what
 * keeps them linearizable. */
#define RAFT_APPLY_ALL UINT64_MAX
void raft_set_apply_limit(struct raft *r, uint64_t entries);
raft_index raft_last_index(const struct raft *r);
raft_index raft_first_index(const struct raft *r); /* first entry still in memory */
/* The bytes of entry data the log holds in memory (first_index..last_index): what the host
 * compacts by when entries are large (kvd --snapshot-bytes). */
uint64_t raft_log_bytes_of(const struct raft *r);
const struct raft_conf *raft_conf_of(const struct raft *r);
/* The index of the entry that made the configuration in effect (for a configuration that came
 * with the restore or a snapshot: that snapshot's index, 0 at bootstrap). It never goes down
 * as a replica learns later configurations: of two replicas, the one with the higher index
 * knows the later configuration. */
raft_index raft_conf_index_of(const struct raft *r);
/* The entry at index, or NULL if compacted / beyond the log. Valid until the next event. */
const struct raft_entry *raft_entry_at(const struct raft *r, raft_index index);

/* Our own log is durable up to this index (last raft_persisted that matched the log). */
raft_index raft_persisted_of(const struct raft *r);
/* The last compaction point (what a snapshot sent to a lagging follower covers). */
raft_index raft_snapshot_index_of(const struct raft *r);

/* Quiescence (raft/quiesce.c). True while this replica is quiesced: its ticks do nothing. */
bool raft_quiesced(const struct raft *r);
/* Quiesced and nothing for the driver to do (no Ready, everything committed applied): a driver
 * may skip this replica entirely until cfg.wake_cb says it woke up. */
bool raft_idle(const struct raft *r);

/* Helpers on configurations. */
bool raft_conf_is_voter(const struct raft_conf *c, raft_id id);

/* ------------------------------------------------------------------------------ recovery */
/* A replica restored with hard_state.recovering = true (its directory was emptied, or its log
 * or state machine was damaged) first learns the current term of every other voter (TERM_QUERY
 * / TERM_RESP) and fences its term above any vote it may have cast and forgotten, then stays a
 * silent follower (no vote, no campaign, not counted by the leader for commit, ReadIndex or
 * CheckQuorum, never a transfer target) until it holds, durably, the leader's commit index
 * of the leader's own term. The argument is in docs/DESIGN-NOTES.md, "Replica recovery". */
bool raft_recovering(const struct raft *r);
/* While recovering: true once every other voter answered and the term is fenced. */
bool raft_recovery_fenced(const struct raft *r);
/* Leader's view: the peer said it is recovering in its last answer. */
bool raft_peer_recovering(const struct raft *r, raft_id id);
/* Leader's view: the highest index the peer is known to hold (0 if unknown or not a peer). */
raft_index raft_peer_match(const struct raft *r, raft_id id);
/* The peer's link was (re)established, or it came back with a new data directory: forget what
 * it acknowledged before (match 0) and probe it afresh. Anything it still holds is found
 * again by one probe round trip; anything it lost is then sent again (log or snapshot). */
void raft_peer_reset(struct raft *r, raft_id id);
bool raft_conf_is_learner(const struct raft_conf *c, raft_id id);

#endif
