/* sim.h — the deterministic whole-cluster simulator of the Raft core (tests/sim/).
 *
 * One seed drives everything: our own PRNG, one virtual clock, a simulated network and disk
 * per node. One concept per file; this header is the glue. Parallel sweeps fork processes.
 */
#ifndef RINGRAFT_SIM_H
#define RINGRAFT_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "raft/raft.h"
#include "raft/rand.h"

#define SIM_NODES_MAX      12   /* node ids 1..SIM_NODES_MAX */
#define SIM_TICK           100  /* virtual time units per raft tick */
#define SIM_KEYS_MAX       32   /* keys in one node's state machine */
#define SIM_KEY_BYTES      16   /* including the NUL */
#define SIM_VAL_BYTES      32   /* including the NUL */
#define SIM_PENDING_MAX    256  /* proposals / reads a node tracks at once */
#define SIM_SNAP_BYTES_MAX 4096 /* a serialized state machine */

/* ------------------------------------------------------------------------------ rng.c */
/* xoshiro256** seeded through splitmix64: fast, good enough, and ours (same on every libc). */
struct rng {
	struct raft_rand r; /* the core's xoshiro256**: one implementation, tested once */
};
void rng_seed(struct rng *g, uint64_t seed);
uint64_t rng_next(struct rng *g);
uint64_t rng_range(struct rng *g, uint64_t lo, uint64_t hi); /* uniform in [lo, hi] */
bool rng_permille(struct rng *g, uint32_t pm);               /* true with probability pm/1000 */
uint64_t hash64(const void *data, size_t len, uint64_t h);   /* FNV-1a, for digests */

/* ------------------------------------------------------------------------------ copies */
/* A message deep-copied out of an update: its entries and snapshot data are owned here. */
struct sim_msg {
	struct raft_message m;
	struct raft_entry *entries;
	void *snap_data;
};
struct sim_msg *msg_copy(const struct raft_message *m);
void msg_free(struct sim_msg *sm);
struct raft_entry *entries_copy(const struct raft_entry *e, size_t n);
void entries_free(struct raft_entry *e, size_t n);
const char *msg_type_name(uint8_t type);

/* ------------------------------------------------------------------------------ network.c */
struct net_item {
	uint64_t time, seq;
	struct sim_msg *msg;
};

struct network {
	struct net_item *heap; /* ordered by (time, seq): equal delays keep send order */
	size_t n, cap;
	uint64_t seq;
	bool cut[SIM_NODES_MAX + 1][SIM_NODES_MAX + 1]; /* cut[a][b]: a's messages to b are lost */
	uint32_t loss_pm, dup_pm;                       /* per-mille */
	uint64_t delay_min, delay_max;                  /* virtual time units; random in between */
	uint64_t sent, lost, duplicated;
};
void net_init(struct network *n);
void net_destroy(struct network *n);
/* Queues a copy of m (maybe twice, maybe never, with a random delay). */
void net_send(struct network *n, struct rng *g, uint64_t now, const struct raft_message *m);
uint64_t net_next_time(const struct network *n); /* UINT64_MAX when empty */
struct sim_msg *net_pop(struct network *n);      /* the earliest message; caller frees */
void net_requeue(struct network *n, uint64_t time, struct sim_msg *m); /* takes m */
void net_heal(struct network *n);
/* Cuts every link between the two sides (ids in a and b), both ways. */
void net_partition(struct network *n, const int *a, int na, const int *b, int nb);

/* ------------------------------------------------------------------------------ disk.c */
/* One WAL batch: what one update asked to persist, plus the messages waiting for it. */
struct disk_batch {
	uint64_t done_at;
	bool has_hs;
	struct raft_hard_state hs;
	raft_index truncate_from;
	struct raft_entry *entries;
	size_t n_entries;
	raft_index last_index; /* (index, term) handed to raft_persisted; index 0 = none */
	raft_term last_term;
	struct sim_msg **msgs; /* msgs_after_persist */
	size_t n_msgs;
	struct disk_batch *next;
};

struct disk {
	/* durable */
	struct raft_hard_state hs;
	struct raft_entry *log; /* contiguous, log[0].index is the first durable entry */
	size_t n_log, cap_log;
	/* in flight, completing in order */
	struct disk_batch *head, *tail;
	size_t n_pending;
	uint64_t lat_min, lat_max;
};
void disk_init(struct disk *d);
void disk_destroy(struct disk *d);
/* Takes ownership of b; it completes at or after every earlier batch. */
void disk_submit(struct disk *d, struct rng *g, uint64_t now, struct disk_batch *b);
uint64_t disk_next_time(const struct disk *d);
/* Makes the head batch durable and returns it (caller sends its msgs and frees it). */
struct disk_batch *disk_complete(struct disk *d);
void disk_batch_free(struct disk_batch *b);
/* A crash: every batch not yet reported durable is lost, except that the disk may already have
 * written some of them, in order (each with probability written_pm/1000; the last one written
 * may be torn: its hard state and a prefix of its entries). Their messages are never sent.
 * Returns how many batches were (partly) written. */
size_t disk_crash(struct disk *d, struct rng *g, uint32_t written_pm);
/* The state machine snapshot at (index) is durable: entries <= index are no longer needed. */
void disk_compact(struct disk *d, raft_index index);
/* A snapshot at index was installed (durable at once, as if every pending batch had been
 * written before it): the hard states of the pending batches become durable; the durable log,
 * every append of an earlier pending batch and the entries <= index of `current` are
 * superseded. */
void disk_install(struct disk *d, raft_index index, const struct disk_batch *current);
raft_index disk_last_index(const struct disk *d);

/* ------------------------------------------------------------------------------ statemachine.c */
/* A tiny KV: commands are "#<uid> put <key>=<value>"; each key remembers the index that wrote
 * it. It is durable: applying an entry and recording the applied index are one atomic step (as
 * one LMDB transaction is in kv/). */
struct sm_kv {
	char key[SIM_KEY_BYTES];
	char val[SIM_VAL_BYTES];
	raft_index ver;
};
struct sm {
	raft_index applied;
	struct sm_kv kv[SIM_KEYS_MAX];
	int n;
};
void sm_reset(struct sm *s);
/* Applies a command; returns its uid (0 if none). */
uint64_t sm_apply(struct sm *s, raft_index index, const void *data, size_t len);
const struct sm_kv *sm_get(const struct sm *s, const char *key);
size_t sm_serialize(const struct sm *s, char *buf, size_t cap);
int sm_deserialize(struct sm *s, const char *buf, size_t len);
/* Builds a command's bytes (malloc'd, for raft_propose). */
char *sm_command(uint64_t uid, const char *op, size_t *len);

/* ------------------------------------------------------------------------------ cluster.c */
struct proposal {
	uint64_t uid;
	raft_index index;
	raft_term term;
	bool liveness; /* made after healing: its commit is the liveness check */
};

struct read_req {
	uint64_t ctx;
	raft_index index; /* 0 until the core said it is safe */
	raft_index floor; /* every write acknowledged before the read began is <= floor */
	char key[SIM_KEY_BYTES];
	uint64_t begun;
};

struct snapshot {
	raft_index index;
	raft_term term;
	struct raft_conf conf;
	char *data;
	size_t len;
};

struct node {
	raft_id id;
	bool exists, alive;
	struct raft *r;
	struct disk disk;
	struct sm sm;         /* durable */
	struct snapshot snap; /* durable: the last compaction or installed snapshot */
	char *stage;          /* incoming snapshot chunks */
	size_t stage_len;
	raft_index stage_index;
	uint64_t next_tick;
	uint64_t paused_until; /* a paused process (SIGSTOP): no ticks, no I/O until then */
	uint64_t tick_period;  /* SIM_TICK, or off by the clock drift */
	/* lease runs: the core's clock (raft_advance_clock) counts this node's ticks due in real
	 * time, tick_period apart from clock_first (its first tick); clock_given so far */
	uint64_t clock_first, clock_given;
	uint32_t incarnation;
	struct proposal props[SIM_PENDING_MAX];
	int n_props;
	struct read_req reads[SIM_PENDING_MAX];
	int n_reads;
	/* what the invariants remember about this node */
	raft_index seen_commit;
	raft_term leader_checked_term;
	raft_index last_before_crash;
	raft_index last_after_restart;
	enum raft_role last_role;
	raft_term last_term;
	uint64_t compactions, installs;
	raft_index acked_index;         /* highest index this node acknowledged (APPEND_RESP) ... */
	raft_term acked_term;           /* ... in this term: it must keep that entry while in it */
	uint32_t wipes;                 /* times its whole state was lost (cluster_wipe) */
	struct raft_conf conf_at_crash; /* its configuration when it last crashed */
	/* its failure detector (cluster.c detect): since when each peer looked down, and
	 * whether that was reported (raft_report_unreachable) */
	uint64_t down_since[SIM_NODES_MAX + 1];
	bool down_seen[SIM_NODES_MAX + 1];
	uint64_t quiesces; /* times it went quiescent */
	bool was_quiesced;
};

enum trace_kind {
	TR_TICK,
	TR_RECV,
	TR_DROP,
	TR_SEND,
	TR_PERSIST,
	TR_ROLE,
	TR_APPLY,
	TR_PROPOSE,
	TR_READ,
	TR_READ_DONE,
	TR_CRASH,
	TR_RESTART,
	TR_FAULT,
	TR_CONF,
	TR_COMPACT,
	TR_INSTALL,
	TR_TRANSFER,
	TR_COMMIT,
	TR_PAUSE,
	TR_WIPE,
	TR_NOTE,
	TR_CLOCK, /* lease runs: a clock advance of more than one tick (a, to b) */
};

struct ledger_entry {
	raft_term term;
	uint64_t hash;
	raft_term commit_term; /* >= the term in which it committed (lowest observer's term) */
};

struct lm_slot { /* log matching: one (index, term) ever seen anywhere */
	raft_index index;
	raft_term term;
	uint64_t hash;
	raft_term prev_term;
};

struct invariants {
	struct ledger_entry *committed; /* by index: what was committed there */
	size_t cap_committed;
	raft_index max_committed;
	raft_id *leader_of_term; /* by term */
	size_t cap_terms;
	struct lm_slot *lm; /* open addressing on (index, term) */
	size_t cap_lm, n_lm;
	raft_index *uid_index; /* by uid: where that command was first applied */
	size_t cap_uid;
	raft_index max_acked; /* highest index of a write acknowledged to its client */
	uint64_t acked, reads_done, reads_dropped;
	uint64_t crashes, wipes, conf_changes, transfers, compactions, installs;
};

struct cluster {
	uint64_t seed;
	struct rng rng;
	uint64_t now, steps;
	struct raft_config cfg; /* base config; id and seed set per node */
	struct network net;
	struct node nodes[SIM_NODES_MAX + 1];
	int max_id;                          /* highest id ever created */
	struct raft_conf boot_conf;          /* the bootstrap configuration (voters 1..n) */
	raft_id last_granter;                /* the node whose granted vote left last ... */
	raft_id last_acker;                  /* ... and whose append acknowledgement did */
	bool manual;                         /* scenario: no automatic ticks or disk completions */
	uint64_t disk_lat_min, disk_lat_max; /* for nodes started from now on */
	uint32_t crash_written_pm;           /* see disk_crash() */
	uint32_t clock_drift_pm;             /* each node's tick period is off by up to this */
	uint32_t wipe_after_grant_pm; /* a node wipes (and restarts) right after granting a vote */
	uint64_t next_uid, next_read;
	struct invariants inv;
	/* trace */
	bool trace;
	FILE *trace_out;
	uint64_t trace_hash, trace_events;
	/* failure */
	bool failed;
	char failure[512];
	int compact_threshold; /* compact when applied - first >= this (0 = never) */
	int compact_trailing;
	/* The nodes' failure detector (0 = none): a crashed peer is seen down at the next tick,
	 * one cut off or paused after this many ticks (net/peer.c's keepalive). */
	uint32_t detect_ticks;
	/* Leader leases (cfg.lease_reads): timer ticks never burst (raft_tick_timers, one per
	 * tick however late), and a node's clock is advanced to its ticks due in real time before
	 * anything else it handles, as raft.h asks of a driver with leases (kvd's shell does the
	 * same). Without: raft_tick, the clock moving with the timers. */
	bool lease_clock;
	uint64_t lease_reads; /* reads the leader answered at once, from its lease */
	/* liveness */
	bool liveness_ok;
	raft_index liveness_index; /* where the first post-healing proposal committed */
};

void cluster_init(struct cluster *c, uint64_t seed, int n_voters, const struct raft_config *cfg);
/* Starts the bootstrap nodes (after the caller set latencies and faults). */
void cluster_start(struct cluster *c);
void cluster_destroy(struct cluster *c);
/* Creates node id as a brand new empty member (for membership changes); not yet a voter. */
void cluster_add_node(struct cluster *c, raft_id id);
void cluster_crash(struct cluster *c, raft_id id);
/* Restarts a crashed node from its durable state; every other running node is told that the
 * link to it came back (raft_peer_reset), as kvd's transport does on reconnect. */
void cluster_restart(struct cluster *c, raft_id id);
/* The node crashes and its data directory is replaced by an empty one: its durable log, hard
 * state, state machine and snapshot are gone. It stays down until cluster_restart, which
 * starts it as kvd would with its original flags: the bootstrap configuration and
 * hard_state.recovering (durable from the start). Only members of the bootstrap configuration
 * can be wiped; see cluster_may_wipe for the rule that keeps a run from losing data by
 * definition. */
void cluster_wipe(struct cluster *c, raft_id id);
/* Whether wiping id now keeps what the cluster committed recoverable: see cluster.c. */
bool cluster_may_wipe(const struct cluster *c, raft_id id);
/* The node lost its state and has not durably left recovery (its durable hard state still
 * says recovering). */
bool cluster_lost_state(const struct cluster *c, raft_id id);
/* Stops a node's process for a while (no ticks, disk completions or deliveries), keeping its
 * state; what arrives meanwhile waits. until 0 resumes it at once. */
void cluster_pause(struct cluster *c, raft_id id, uint64_t until);
/* One event each; each handles the resulting updates and checks the invariants. */
void cluster_tick(struct cluster *c, raft_id id);
bool cluster_deliver_one(struct cluster *c); /* false when the network is empty */
void cluster_deliver_msg(struct cluster *c, struct sim_msg *sm); /* takes sm */
void cluster_persist_one(struct cluster *c, raft_id id);
/* Runs everything due up to time `until` (ticks, messages, disks) in time order. */
void cluster_run_until(struct cluster *c, uint64_t until);
int cluster_propose(struct cluster *c, raft_id id, const char *op, bool liveness, raft_index *idx);
int cluster_read(struct cluster *c, raft_id id, const char *key);
int cluster_conf_change(struct cluster *c, raft_id via, enum raft_conf_change_type t, raft_id id);
int cluster_transfer(struct cluster *c, raft_id via, raft_id target);
int cluster_compact(struct cluster *c, raft_id id, raft_index index, raft_index trailing);
raft_id cluster_leader(const struct cluster *c); /* the leader of the highest term, or 0 */
/* One line per node: role, term, indexes, configuration (for traces and scenario `print`). */
void cluster_dump(const struct cluster *c, FILE *f);
/* Processes every pending update of node id (after an event fed from outside). */
void cluster_drive(struct cluster *c, struct node *n);

/* ------------------------------------------------------------------------------ invariants.c */
void inv_init(struct invariants *v);
void inv_destroy(struct invariants *v);
/* A node appends entries (from its update, before advance): log matching. */
void inv_on_append(struct cluster *c, struct node *n, const struct raft_entry *e, size_t cnt);
/* The last cnt entries of a node's durable log just became durable: log matching. */
void inv_on_durable(struct cluster *c, struct node *n, size_t cnt);
/* A node applies one entry: order, exactly once, state machine safety. */
void inv_on_apply(struct cluster *c, struct node *n, const struct raft_entry *e);
/* A read is answered: it must see every write acknowledged before it began. */
void inv_on_read(struct cluster *c, struct node *n, const struct read_req *rr);
void inv_on_restart(struct cluster *c, struct node *n, const struct raft_restore *rs);
/* After every step: one leader per term, commit monotonic, committed entries agree, leader
 * completeness. */
void inv_check(struct cluster *c);
/* Records a failure (first one wins); the run stops at the next step. */
void sim_fail(struct cluster *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------------------------ trace.c */
void trace_ev(struct cluster *c, enum trace_kind k, raft_id node, uint64_t a, uint64_t b,
	      uint64_t d);
void trace_note(struct cluster *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------------------------ run.c */
struct run_opts {
	bool trace;
	bool quiet;
};
struct run_result {
	bool ok;
	char failure[600];
	uint64_t trace_hash, steps, end_time;
	int nodes;
	const char *mix;
	char stats[512];
};
/* One random run from a seed: size and fault mix derived from it, then healing and a liveness
 * check. */
void sim_run_seed(uint64_t seed, const struct run_opts *o, struct run_result *res);
void sim_params_of(uint64_t seed, int *nodes, const char **mix);
/* Elects without faults: returns true if a leader appeared within 2 election timeouts. */
bool sim_elect_once(uint64_t seed, uint64_t *ticks_taken);

/* ------------------------------------------------------------------------------ scenario.c */
/* Runs one scenario script; returns 0 if every expect held. */
int scenario_run_file(const char *path, bool trace);

#endif
