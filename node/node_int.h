/* node_int.h — the engine's state (engine.h), shared by its files: engine.c (lifecycle, peer
 * and tick events), driver.c (Ready loop, the WAL batch), service.c (requests), restore.c,
 * snapshot.c, repair.c and balance.c. Pure and single-threaded: no libuv, thread, socket or
 * clock here; the shell (shell.h) reaches it through engine.h, and its RESP and metrics views
 * (resp.c, metrics_endpoint.c) read it.
 */
#ifndef RINGRAFT_NODE_INT_H
#define RINGRAFT_NODE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "kv/kv.h"
#include "kv/ring.h"
#include "node/addrbook.h"
#include "node/auth.h"
#include "node/config.h"
#include "node/engine.h"
#include "node/log.h"
#include "node/metrics.h"
#include "node/msg.h"
#include "node/reshard.h"
#include "proto/kv.pb-c.h"
#include "raft/raft.h"
#include "wal/wal.h"

enum req_origin { ORIGIN_LOCAL, ORIGIN_PEER };
enum req_state {
	REQ_NEW,        /* being routed */
	REQ_PROPOSED,   /* write handed to raft: only the apply or a timeout answers it */
	REQ_READ_INDEX, /* ReadIndex asked, waiting for the read state */
	REQ_READ_APPLY, /* read index known, waiting for applied >= index */
	REQ_FORWARDED,  /* sent to the group leader over the peer link */
};

struct node_list;

/* A client request in flight (from a client connection or forwarded by a peer). */
struct node_req {
	uint64_t iid; /* node-unique id: ReadIndex ctx and forwarding id */
	enum req_origin origin;
	node_reply_fn reply;       /* ORIGIN_LOCAL: called once, with the answer ... */
	void *client;              /* ... and this (the shell's) */
	uint64_t peer;             /* ORIGIN_PEER: the node that forwarded it */
	Ringraft__Kv__Request *rq; /* owned */
	uint32_t group;
	enum req_state state;
	bool write;
	uint64_t deadline_ms;
	uint64_t start_ns;              /* arrival, for the latency histogram (metrics.h) */
	uint32_t bytes;                 /* what it counts against --max-inflight-bytes */
	raft_index index;               /* PROPOSED: entry index; READ_APPLY: read index */
	raft_term term;                 /* PROPOSED: entry term */
	uint64_t fwd_to;                /* FORWARDED: leader it went to */
	uint8_t hops;                   /* FORWARDED for a group not hosted here: hints followed */
	struct node_req *aprev, *anext; /* every request */
	struct node_req *hnext;         /* id hash chain */
	struct node_req *gprev, *gnext; /* the group list it waits in */
	struct node_list *glist;
};

struct node_list {
	struct node_req *head, *tail;
	size_t n;
};

/* An outgoing snapshot stream to one follower. */
struct node_snap_out {
	uint64_t to; /* 0 = unused */
	struct kv_snapshot *s;
	uint64_t offset;
	raft_index index;
	uint64_t used_ms; /* last chunk served: idle streams are closed (they pin LMDB pages) */
	uint8_t *last;    /* the last chunk sent, for a resend when its answer was lost */
	size_t last_len;
	uint64_t last_off;
	bool last_done, has_last;
};

/* A replica's digest at an applied index (ours, or a peer's from its last GroupDigest). */
struct node_digest {
	bool valid;
	raft_index applied;
	uint8_t d[KV_DIGEST_BYTES];
};

struct node_group {
	uint32_t id;
	bool exists;        /* the group exists as far as this node knows: 1..groups + 1 always,
			     * an added one once created here (node/groups.c) */
	bool added;         /* created at runtime: id > the meta group's (node/groups.c) */
	struct node *owner; /* for the core's wake_cb (set by node_group_raft_new) */
	bool awake;         /* listed in node.awake (driver.c) */
	bool hosted;
	uint64_t hosts[NODE_NODES_MAX]; /* the nodes that host the group, preference order */
	size_t n_hosts;
	uint64_t leader_hint; /* not hosted here: the host last known to lead it (0 = none) */
	struct raft *raft;
	struct node_list props;       /* REQ_PROPOSED, ascending index */
	struct node_list reads_idx;   /* REQ_READ_INDEX */
	struct node_list reads_apply; /* REQ_READ_APPLY */
	struct node_snap_out snaps[NODE_NODES_MAX];
	struct kv_restore *restore; /* incoming snapshot being staged */
	raft_index restore_index;
	raft_index compacted;    /* last raft_compact index */
	uint64_t trimmed_bytes;  /* entry bytes node_trim_log dropped since the last compaction */
	raft_index checkpointed; /* last checkpoint recorded in the WAL */
	raft_index ckpt_applied; /* applied index at the last LMDB checkpoint (snapshot.c) */
	/* Bumped whenever the group's state in LMDB is replaced (a snapshot installed, a reset
	 * for repair, a retire): a checkpoint begun before says nothing of the new state. */
	uint32_t state_gen;
	enum raft_role role;
	raft_id leader;
	uint64_t leader_since_ms; /* when this node became its leader */
	uint64_t last_transfer_ms;
	bool unreachable[NODE_NODES_MAX]; /* by member index: report after advance */
	bool recovering;                  /* the replica's last state: logged when it changes */
	/* the term, vote and recovering flag of the hard state last put in a WAL batch (valid
	 * when hs_known; not after the core is made): a change of the commit index alone is
	 * written lazily (wal_batch_hard_state_lazy) */
	struct raft_hard_state hs_logged;
	bool hs_known;
	bool damaged; /* its state machine failed a checksum: rebuilt at the end of the turn */
	bool retire;  /* no longer part of its group: retired at the end of the turn (move.c) */
	bool was_member;        /* this replica has been part of the group's configuration */
	bool created_by_leader; /* made when a leader first sent to it (move.c) */
	uint64_t leader_msg_tick; /* node tick of the last AppendEntries/heartbeat/snapshot to it
				   * (move.c; a tick count, not a clock read per message) */
	struct raft_conf gone_conf; /* the voters a GroupGone named (has_gone_conf) */
	bool has_gone_conf;
	bool removal_seen; /* applied a committed configuration without itself (move.c) */
	struct kv_scrub_cursor scrub;
	struct node_digest digest_mine;
	struct node_digest digest_peer[NODE_NODES_MAX]; /* by member index */
	uint64_t digest_ms;                             /* when digest_mine was computed */
	raft_index digest_warned; /* the applied index a difference was last logged at */
	/* After LMDB was set aside (machine crash, restore.c): the WAL's checkpoint of the old
	 * environment; WAL compaction waits until this group is checkpointed as far (0: none) */
	raft_index ckpt_floor;
	bool recover_watch;          /* recovering since the set-aside (node_recovery_watch) */
	uint64_t recover_since_ms;   /* when it started to */
	bool recover_stall_warned;   /* "cannot elect" said once (repair.c) */
};

/* A message held until the WAL batch it depends on is durable (packed Message bytes). */
struct node_held {
	uint64_t to;
	uint32_t group;
	uint8_t *buf;
	size_t len;
};

struct node_batch {
	struct wal_batch *b;
	struct node_held *held;
	size_t n_held, cap_held;
	bool checkpoint; /* compact the WAL after writing this batch (set while it fills) */
};

/* What the meta group's hosts know of a group's configuration (rebalance.c). */
struct node_conf_report {
	uint64_t at_ms;    /* when reported (0: never, or not committed when reported) */
	uint64_t since_ms; /* since when this configuration (conf_index) has been reported */
	raft_index conf_index;
	raft_term term; /* of the leader that reported it */
	uint64_t leader; /* the node that reported it (it led the group then) */
	uint32_t n_voters, n_learners;
	uint64_t voters[RAFT_NODES_MAX], learners[RAFT_NODES_MAX];
};

/* The balancer (rebalance.c): the move it drives, one at a time. */
struct node_rebalance {
	struct node_conf_report *reports; /* [groups + 1] */
	uint32_t group;                   /* the move under way (0: none) */
	uint64_t from, to, started_ms, idle_until_ms, seq, moves;
	bool busy; /* a step asked and not answered */
	uint32_t transfer_group; /* a leadership transfer asked (0: none) */
	char progress[160];
};

/* reshard_drive.c: the meta leader's driver of a ring change. Nothing here is durable: the
 * record (n->reshard) says where each pair is; this only saves work between steps. */
enum node_drive_step {
	DRIVE_RECORD = 1, /* the record stored with a pair's next state */
	DRIVE_FENCE,
	DRIVE_READ, /* a chunk read at the source */
	DRIVE_INGEST,
	DRIVE_DROP_COPY, /* a discarded copy dropped at the target before it starts again */
	DRIVE_RELEASE,
	DRIVE_OPEN,
	DRIVE_FIN, /* a clean-up step after the change ended */
};
struct node_drive_pair {
	uint32_t from, to;
};
struct node_drive {
	uint64_t epoch; /* the change (its new epoch) the rest is about; 0: none */
	uint64_t seq;
	bool busy; /* a step asked and not answered */
	bool kick; /* the next step is asked at the next round of node_process, not a tick */
	enum node_drive_step step;
	uint32_t step_group;
	uint64_t pause_until_ms;
	uint64_t progress_ms; /* the last step that moved the change on */
	bool record_wait;     /* a record write applied: wait until it is read back */
	struct node_drive_pair *pairs; /* the record's (source, target) pairs */
	bool *opened;                  /* by pair: its OPEN seen applied by this leader */
	size_t np, open_pair;
	/* the pair being copied */
	uint32_t from, to;
	uint64_t offset; /* the next item the target wants */
	uint8_t *chunk;  /* read at the source, not yet ingested */
	size_t chunk_len;
	uint64_t chunk_end; /* the source's reading position after the chunk */
	bool dropping; /* a discarded copy is being dropped */
	bool copied;
	/* the record write asked */
	uint32_t rec_from, rec_to;
	enum kv_reshard_state rec_next;
	/* after the change ended: the clean-up steps done, and whether the one asked is a DROP
	 * pass (repeated while it deletes) */
	size_t fin_next;
	bool fin_drop, finished;
};

/* reshard_drive.c: the source's reader of a frozen range, kept between COPY_READ chunks. */
struct node_copy_open {
	struct kv_copy *c; /* NULL: none */
	uint32_t group, target, state_gen;
	uint64_t epoch;
};

/* An open backup of one group (backup.c): a snapshot streamed to a client chunk by chunk. */
struct node_backup {
	uint64_t id; /* 0: a free slot */
	uint32_t group;
	struct kv_snapshot *snap; /* owned */
	uint64_t offset;          /* stream bytes handed out */
	uint64_t last_ms;         /* last BEGIN/CHUNK: idle expiry */
};

/* The LMDB checkpoint under way (snapshot.c). */
struct node_ckpt {
	struct kv_ckpt *kv;
	bool need;         /* a compaction is due: record the checkpoint in the WAL */
	uint32_t groups;   /* slots at the begin */
	uint64_t begun_ms;
	struct {
		bool core;          /* the group had a Raft core here at the begin */
		uint32_t gen;       /* the group's state_gen at the begin */
		raft_index applied; /* its applied index then */
	} g[];
};

struct node {
	struct node_config cfg;
	/* Groups whose core may have work: not quiesced, or quiesced with a Ready or entries to
	 * apply left (driver.c). Indexes into groups[], each at most once ([cfg.groups]). */
	uint32_t *awake;
	uint32_t n_awake;
	struct node_io io;
	struct wal *wal; /* the backends (borrowed: the shell opens and closes them) */
	struct kv *kv;
	struct kv_ring *ring;
	/* Group g at groups[g - 1], for g in 1..groups_cap (node_group_id_max): the key groups,
	 * the meta group, then slots for groups added at runtime (node/groups.c). Slots past
	 * groups_end are unused; below it a slot may still not exist (g->exists). The array is
	 * never reallocated: cores keep a pointer to their slot (wake_arg). */
	struct node_group *groups;
	uint32_t groups_cap;
	uint32_t groups_end; /* the highest id that exists: loops run over slots [0, groups_end) */
	struct node_batch batches[2];
	struct node_batch *cur, *inflight; /* inflight: handed to io.wal_write, not yet durable */
	struct node_msg_scratch scratch;
	struct node_req *reqs_head, *reqs_tail;
	struct node_req *buckets[NODE_REQ_BUCKETS];
	/* Every request held (local and forwarded to us), and their bytes: the node's load
	 * bound (--max-inflight, --max-inflight-bytes; service.c admits or answers BUSY). */
	size_t reqs_held;
	uint64_t reqs_held_bytes;
	uint64_t next_iid;
	uint64_t start_ms;
	uint64_t ticks;
	uint64_t apply_commit_tick; /* the tick of the last timed commit of applies (engine.c) */
	uint64_t ckpt_ms; /* when LMDB was last checkpointed (snapshot.c) */
	/* The checkpoint under way (snapshot.c): begun on this thread, synced by the shell
	 * (io.checkpoint), ended in node_checkpoint_done. NULL when none. */
	struct node_ckpt *ckpt;
	uint64_t rafts_made; /* raft cores created: each draws its own seed from io.seed */
	uint64_t peer_up_since[NODE_NODES_MAX];    /* by member index; 0 = down */
	uint64_t incarnation;                      /* our data directory's id (identity.h) */
	uint64_t peer_incarnation[NODE_NODES_MAX]; /* by member index: from its last Hello */
	struct node_addrbook addrs;                /* other nodes' client addresses */
	bool stopping; /* node_stop: no new requests, leaderships handed off */
	bool draining; /* handoff over: peers ignored, waiting for the last WAL batch */
	uint64_t handoff_deadline_ms;
	bool processing;
	uint32_t scrub_next;         /* the group the scrub walks now (0-based) */
	uint32_t digest_next;        /* the group whose digest is compared next (0-based) */
	bool any_damaged;            /* some group's damaged flag is set (node_repair) */
	bool any_retire;             /* some group's retire flag is set (node_move_maintain) */
	struct node_metrics metrics; /* metrics.h: the counters the hooks bump */
	struct node_expire *expire;  /* expire.c's state (NULL until its first tick) */
	uint64_t members_epoch;      /* the cluster map's epoch (members.c); 0 = bootstrap */
	struct node_rebalance rebalance;
	uint64_t meta_leader_hint; /* the last node that sent us the cluster map (members.c) */
	raft_index members_applied;  /* the meta group's applied index it was read at */
	/* auth.c: client authentication's state as enforced here (auth.h), and the meta group's
	 * applied index it was last read at from the local replica (re-read only when that
	 * moves: it is asked for every request) */
	struct node_auth_state auth;
	raft_index auth_local_applied;
	bool auth_local_read;
	char bootstrap_str[NODE_NODES_MAX * (NODE_ADDR_MAX + 24)]; /* --cluster's members */
	struct node_backup backups[NODE_BACKUPS_MAX]; /* backup.c: open backup snapshots */
	/* groups.c: the ring change record this node knows (the meta group's "ring"; NULL:
	 * none known yet), its packed form (pushed with the cluster map) and its protobuf form
	 * (STATUS's RingConfig.change); the meta group's applied index it was last read at */
	struct node_drive drive;    /* reshard_drive.c */
	struct node_copy_open copy; /* reshard_drive.c */
	struct node_reshard *reshard;
	/* reshard's change while some range of it is not final, else NULL: what every key
	 * request routes by (service.c route_key), set once when a record is taken rather than
	 * worked out from the ranges per request */
	const struct kv_reshard *reshard_moving;
	uint8_t *reshard_bytes;
	size_t reshard_len;
	Ringraft__Kv__RingChange *reshard_pb;
	raft_index reshard_applied;
};

/* Groups 1..cfg.groups hold the keys (the ring); group cfg.groups + 1 is the meta group, which
 * holds the cluster map (members.c) and no keys. Every replica mechanism (recovery, moves,
 * snapshots, scrub, digests) treats it as any other group; only the ring, key expiry and the
 * per-group metrics and RESP views leave it out. Groups created at runtime (node/groups.c)
 * take ids after the meta group's; they hold no keys until a ring change gives them some.
 *
 * node_groups_all is the end of the slots in use: a loop over groups[0 .. node_groups_all)
 * sees every group, and must skip a slot whose group does not exist (!exists: it has no core,
 * is not hosted and has no hosts, so the usual raft == NULL / hosted checks skip it). Until a
 * group is added it is cfg.groups + 1, as before. */
static inline uint32_t node_groups_all(const struct node *n)
{
	return n->groups_end;
}
static inline uint32_t node_meta_id(const struct node *n)
{
	return n->cfg.groups + 1;
}
/* The group of id g, NULL if it does not exist here. O(1): the id is the slot. */
static inline struct node_group *node_group(struct node *n, uint64_t g)
{
	return (g >= 1 && g <= n->groups_end && n->groups[g - 1].exists) ? &n->groups[g - 1] : NULL;
}
/* The slot of id g whether or not the group exists (NULL: no slot for that id). For the peer
 * message path, where a leader's message may create the replica of an added group. */
static inline struct node_group *node_group_slot(struct node *n, uint64_t g)
{
	return (g >= 1 && g <= n->groups_cap) ? &n->groups[g - 1] : NULL;
}

/* The engine's clock and its peers, through the shell (engine.h). */
static inline uint64_t node_now_ms(const struct node *n)
{
	return n->io.now_ms(n->io.arg);
}
static inline uint64_t node_now_ns(const struct node *n)
{
	return n->io.now_ns(n->io.arg);
}
static inline bool node_peer_is_up(const struct node *n, uint64_t id)
{
	return n->io.peer_up(n->io.arg, id);
}
static inline int node_peer_send(struct node *n, uint64_t to, int field, const ProtobufCMessage *m)
{
	return n->io.peer_send(n->io.arg, to, field, m);
}
/* A node's client address: ours, else the last one it announced ("" if never). */
const char *node_client_addr_of(struct node *n, uint64_t id);
/* Logs and exits the process with status 1 (a failed fsync, a failed apply, ...). */
void node_fatal(struct node *n, uint32_t group, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));

/* driver.c */
void node_send_msg(struct node *n, struct node_group *g, const struct raft_message *m);

/* service.c */
void node_service_forwarded(struct node *n, uint64_t from, const ProtobufCBinaryData *rq);
/* An answer from peer `from` to a request this node forwarded: taken only by the request of
 * that id which went to that peer. */
void node_service_forward_reply(struct node *n, uint64_t from, const ProtobufCBinaryData *resp);
void node_service_applied(struct node *n, struct node_group *g, const struct raft_entry *e,
			  const struct kv_result *res);
void node_service_apply_done(struct node *n, struct node_group *g, raft_index last);
void node_service_read_states(struct node *n, struct node_group *g,
			      const struct raft_read_state *rs, size_t nrs, const uint64_t *dropped,
			      size_t ndropped);
void node_service_reads_ready(struct node *n, struct node_group *g);
void node_service_lost_leadership(struct node *n, struct node_group *g);
void node_service_peer_down(struct node *n, uint64_t peer);
void node_service_timeouts(struct node *n);
void node_service_fail_all(struct node *n);
/* The group's replica is being reset (repair.c): every request waiting on it is answered. */
void node_service_group_reset(struct node *n, struct node_group *g);

/* expire.c — key expiry (kv.h "Expiry") */
/* The clock expiry is judged by: ms since the Unix epoch, through the shell (node_io). */
static inline uint64_t node_wall_ms(const struct node *n)
{
	return n->io.wall_ms(n->io.arg);
}
/* On the leader, as it proposes rq: stamps c with the clock and turns the request's expiry
 * (ttl_ms, expire_at_ms, keep_ttl; the EXPIRE and PERSIST ops) into c's. -1 and *why when
 * the request's expiry fields make no sense. */
int node_expire_prepare(struct node *n, const Ringraft__Kv__Request *rq, struct kv_cmd *c,
			const char **why);
void node_expire_tick(struct node *n); /* every tick: the background expirer (leaders) */
void node_expire_free(struct node *n);

/* restore.c */
int node_restore_groups(struct node *n);
/* A group's core with the node's timing (never NULL: out of memory is fatal). */
struct raft *node_group_raft_new(struct node *n, uint32_t group, const struct raft_restore *rs);
/* driver.c: the group's core may have work (a new core, or one that woke from quiescence). */
void node_group_awake(struct node *n, struct node_group *g);
void node_group_wake_cb(void *arg); /* raft_config.wake_cb; arg = the node_group */
/* driver.c: ticks the timers of every awake group's core (quiesced ones are not looked at). */
void node_tick_groups(struct node *n);
/* driver.c: advances the clock of every awake group's core by ticks (engine.h
 * node_advance_clock). */
void node_advance_group_clocks(struct node *n, uint64_t ticks);

/* snapshot.c */
void node_snap_serve(struct node *n, struct node_group *g, const struct raft_snapshot_request *r);
void node_snap_receive(struct node *n, struct node_group *g,
		       const struct raft_snapshot_chunk_in *c);
void node_maybe_compact(struct node *n);
/* After g applied entries: the in-memory log held near --snapshot-bytes (snapshot.c). */
void node_trim_log(struct node *n, struct node_group *g);
/* g's log is compacted (or reset) at idx: what node_trim_log dropped before counts no more. */
static inline void node_group_compacted(struct node_group *g, raft_index idx)
{
	g->compacted = idx;
	g->trimmed_bytes = 0;
}
/* Frees the checkpoint under way, if any (node_engine_close: the shell finished its sync). */
void node_checkpoint_close(struct node *n);
/* Ends every outgoing snapshot stream and an incoming staging of the group. */
void node_snap_close_all(struct node *n, struct node_group *g);

/* repair.c */
/* The group's state machine returned KV_ECORRUPT in `where`: logs the group and key (as
 * kv_last_corrupt names them) and marks it damaged; node_repair runs the rebuild outside the
 * group's Ready/Advance. */
void node_group_damaged(struct node *n, struct node_group *g, const char *where);
void node_repair(struct node *n);
/* Groups recovering since LMDB was set aside at start (restore.c): says once when each is
 * repaired, and once when one has had no leader for NODE_RECOVER_STALL_ELECTIONS election
 * timeouts (its majority may be recovering too: it cannot elect). Every NODE_MAINT_MS. */
void node_recovery_watch(struct node *n);
/* Empties group g's replica: the old core (if any) goes with its requests, snapshot streams
 * and held messages; LMDB's copy is emptied (with `conf` left as the retired marker when
 * `marker`, kv_group_retire); the WAL log restarts at 0 with `conf`, the term kept and the
 * recovering flag set. Storage failures stop the node (`what` names the operation). */
void node_group_empty(struct node *n, struct node_group *g, const struct raft_conf *conf,
		      bool marker, const char *what);
/* A new empty core for g, recovering (raft/recovery.c), with conf and term. */
void node_group_start_recovering(struct node *n, struct node_group *g,
				 const struct raft_conf *conf, raft_term term);
/* Drops the messages held for durability of group `group` (its log is being discarded). */
void node_drop_held(struct node *n, uint32_t group);

/* move.c: replicas that come and go (moves, creation on a leader's first message, retiring). */
bool node_conf_has(const struct raft_conf *c, uint64_t id);
void node_group_hosts_from(struct node_group *g, const struct raft_conf *c);
bool node_group_create(struct node *n, struct node_group *g, uint64_t from,
		       enum raft_msg_type type, raft_term term);
void node_move_after_update(struct node *n, struct node_group *g);
void node_move_maintain(struct node *n);
void node_move_tick(struct node *n);
void node_gone_maybe_send(struct node *n, struct node_group *g, uint64_t from);
void node_gone_received(struct node *n, uint64_t from, const Ringraft__Raft__GroupGone *gone);
int node_move_step(struct node *n, struct node_group *g, uint64_t source, uint64_t target,
		   char *progress, size_t len);
/* groups.c: groups created and retired while the node runs (issue 18; engine.h) */
/* Marks slot g as an existing group (its id, owner), moving groups_end past it. */
void node_group_slot_open(struct node *n, struct node_group *g);
/* At start (restore.c): checks that every added group the WAL names has a slot here. */
int node_groups_restore_added(struct node *n);
/* A Raft message for an added group that does not exist here: a leader's message makes this
 * node's replica of it (node_group_create, as for a moved replica). The group, or NULL. */
struct node_group *node_group_added_for_msg(struct node *n, uint64_t group, uint64_t from,
					    enum raft_msg_type type, raft_term term);
/* The ring change record (issue 18): read again from the local meta replica when its applied
 * index moved (with the cluster map, node_members_reload), or taken from a map a peer pushed
 * (packed RingChange). A record newer than the one known (node_reshard_newer) is applied:
 * the groups it adds are created (node_group_add, with the replicas the record names), those
 * a rolled-back change added or a complete removal took away are retired, and the ring is
 * set to the one in effect. */
void node_ring_record_reload(struct node *n);
void node_ring_record_received(struct node *n, uint64_t from, const void *data, size_t len);
void node_ring_record_free(struct node *n);

/* reshard_drive.c: the driver of a ring change at the meta group's leader (every tick; it
 * asks one step at a time), and the source's half of a copy (RESHARD_STEP COPY_READ at the
 * source group's leader: the next chunk of the frozen range, from rq->handoff_offset; a Code,
 * with *chunk malloc'd, *last on the last one, *next the reading position after it, *why on
 * an error). */
void node_reshard_drive_tick(struct node *n);
/* Whether a local request with this reply function is one of the driver's steps (RESHARD_STEP
 * is refused from anyone else but a peer forwarding one). */
bool node_reshard_drive_asked(node_reply_fn reply);
/* Whether this (meta leader's) driver has cleaned up after the change to `epoch`, which ended:
 * OPENs repeated and released keys dropped, or, rolled back, sources unfenced and copies
 * dropped. The next change is planned only then. */
bool node_reshard_drive_clean(const struct node *n, uint64_t epoch);
void node_reshard_drive_free(struct node *n);
Ringraft__Kv__Code node_handoff_read(struct node *n, struct node_group *g,
				     const Ringraft__Kv__Request *rq, uint8_t **chunk, size_t *len,
				     bool *last, uint64_t *next, const char **why);
void node_handoff_copy_close(struct node *n);

/* One step of the background scrub (every NODE_MAINT_MS, --scrub-rate values per second). */
void node_scrub_step(struct node *n);

/* backup.c. BACKUP_BEGIN (once its ReadIndex round is done and the group applied up to it),
 * BACKUP_CHUNK and BACKUP_END: fills resp (code, error, and for a chunk a malloc'd value:
 * node_backup_answer_free after sending). group is the request's group (BEGIN). */
void node_backup_answer(struct node *n, uint32_t group, uint64_t id,
			const Ringraft__Kv__Request *rq, Ringraft__Kv__Response *resp);
void node_backup_answer_free(Ringraft__Kv__Response *resp);
/* Closes backups idle for NODE_BACKUP_IDLE_MS (every few ticks), or all of them (close). */
void node_backup_tick(struct node *n);
void node_backup_close_all(struct node *n);
/* Replicas compare digests: one quiescent group per call sends its digest to the group's
 * other replicas (at most every NODE_DIGEST_INTERVAL_MS per group); a replica whose digest
 * differs from every other replica's at the same applied index, when those agree, rebuilds
 * itself. */
void node_digest_step(struct node *n);
void node_digest_received(struct node *n, uint64_t from, const Ringraft__Raft__GroupDigest *gd);

/* members.c: the cluster map (kept in the meta group) */
#define MEMBER_KEY_BUF 28
bool node_member_live(const struct node *n, uint64_t id);
/* After the meta group's turn: takes a change of its applied state into cfg.members. */
void node_members_reload(struct node *n);
/* The meta leader sends the map to every connected member (on change, and every tick below). */
void node_members_push(struct node *n);
void node_members_tick(struct node *n);
/* A removed member connected: it is sent the map, so that it stops (any node sends it). */
void node_members_tell_removed(struct node *n, uint64_t id);
void node_members_received(struct node *n, uint64_t from, const ProtobufCBinaryData *b);
const char *node_members_check(struct node *n, const Ringraft__Kv__Request *rq);
int node_members_cmd(struct node *n, const Ringraft__Kv__Request *rq, struct kv_cmd *c,
		     char key[MEMBER_KEY_BUF], uint8_t **value, void **old, const char **why);

/* auth.c: client authentication's users, kept in the meta group (docs/SECURITY.md) */
#define AUTH_KEY_BUF 72 /* "user/" + a name of KV_USER_NAME_MAX bytes + NUL */
bool node_auth_op(Ringraft__Kv__Op op); /* USER_ADD, USER_REMOVE, USER_LIST, AUTH_ENABLE */
/* Checks such a request where it arrives: NULL, or why it is INVALID. */
const char *node_auth_check(const Ringraft__Kv__Request *rq);
/* At the meta leader: the command of a USER_ADD, USER_REMOVE or AUTH_ENABLE (key in key).
 * 0, or -1 with *why (INVALID: refused, e.g. enabling without a rw user). */
int node_auth_cmd(struct node *n, const Ringraft__Kv__Request *rq, struct kv_cmd *c,
		  char key[AUTH_KEY_BUF], const char **why);
/* USER_LIST from the meta group's applied state: fills resp (users and auth_enabled; free
 * with node_auth_list_free). */
void node_auth_list(struct node *n, Ringraft__Kv__Response *resp);
void node_auth_list_free(Ringraft__Kv__Response *resp);
/* Whether AUTH_ENABLE is applied in the meta group here. */
bool node_auth_enabled(struct node *n);
/* Re-reads the state from the local replica of the meta group when its applied index moved
 * (after the meta group's turn, and before every use). */
void node_auth_refresh(struct node *n);
/* The meta leader sends the state to every connected member (with the cluster map). */
void node_auth_push(struct node *n);
/* A state pushed by a peer (PeerFrame.auth_states). */
void node_auth_received(struct node *n, uint64_t from, const Ringraft__Raft__AuthState *m);

/* rebalance.c: replicas spread over the members by the meta group's leader */
void node_rebalance_tick(struct node *n);
void node_rebalance_report(struct node *n);
void node_rebalance_received(struct node *n, uint64_t from,
			     const Ringraft__Raft__ConfReports *rep);

/* balance.c */
void node_balance_leaders(struct node *n);

#endif
