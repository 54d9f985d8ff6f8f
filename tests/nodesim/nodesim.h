/* nodesim.h — the whole-node simulator (tests/nodesim/README.md): N node engines
 * (node/engine.h) over the real wal/ and kv/ on a tmpfs directory per node, a simulated network
 * with TCP's per-link order, a disk that writes a WAL batch only when the simulated fsync ends
 * (so a crash loses what was not yet durable), one virtual clock, simulated clients whose
 * history jepsen-lite's checker judges. One 64-bit seed decides everything; a failing seed
 * prints the command that replays it.
 */
#ifndef RINGRAFT_NODESIM_H
#define RINGRAFT_NODESIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NS_NODES_MAX   5
#define NS_CLIENTS_MAX 16 /* clients and the liveness probes (one per node) */
#define NS_KEYS_MAX    8
#define NS_GROUPS_MAX  8 /* a run has 4 to NS_GROUPS_MAX groups */
#define NS_ADDED       2 /* groups created at runtime in an "adds" run (world.c) */
#define NS_GROUP_IDS   (NS_GROUPS_MAX + 2 + NS_ADDED) /* arrays indexed by group id */

struct ns_opts {
	uint64_t seed;
	bool trace;       /* every event on stderr, engines' logs at info */
	const char *root; /* where node directories go (default /dev/shm) */
};

/* What a run exercised (a sweep adds them up, to show which paths its seeds reach). */
enum ns_count {
	NS_C_CRASH,         /* nodes crashed */
	NS_C_WIPE,          /* of those, data directories lost (a new incarnation) */
	NS_C_STRIKE,        /* majority crashes right after an acknowledged write */
	NS_C_PAUSE,         /* nodes paused */
	NS_C_PARTITION,     /* partitions begun */
	NS_C_WAL_BATCH,     /* WAL batches written (made durable) */
	NS_C_WAL_LOST,      /* WAL batches lost in a crash before their fsync ended */
	NS_C_COMPACT,       /* WAL compactions */
	NS_C_CKPT,          /* LMDB checkpoints synced (io.checkpoint, later than their begin) */
	NS_C_SNAP_CHUNK,    /* InstallSnapshot chunks delivered */
	NS_C_TIMEOUT_NOW,   /* leadership transfers (TimeoutNow delivered) */
	NS_C_TERM_QUERY,    /* recovering replicas' term queries delivered */
	NS_C_FWD_REQ,       /* forwarded client requests delivered */
	NS_C_FWD_RESP,      /* forwarded answers delivered */
	NS_C_DIGEST,        /* group digests delivered (scrub) */
	NS_C_QUIESCE,       /* QUIESCE delivered (a leader put an idle group to sleep) */
	NS_C_MOVE_STEP,     /* replica-move steps a leader took (MOVE_REPLICA answered not done) */
	NS_C_MOVE_DONE,     /* replica moves completed (that took at least one step) */
	NS_C_MOVE_REFUSED,  /* moves refused as senseless (a source holding no replica) */
	NS_C_MEMBER_CHANGE, /* members added or removed (the cluster map, node/members.c) */
	NS_C_GROUP_ADD,     /* node_group_add calls that created a group on a node */
	NS_C_GROUP_READD,   /* of those, again after a crash lost the first (not yet durable) */
	NS_C_GROUP_REMOVE,  /* node_group_remove calls that retired a group on a node */
	NS_C_GROUP_CHECK,   /* restarts that found every durably added group (and no removed one) */
	NS_C_GROUP_OK,      /* client operations on the added group's key answered ok */
	NS_C_RING_CHANGE,   /* ring runs: RESHARD_ADD / RESHARD_REMOVE answered ok */
	NS_C_RING_SEEN,     /* ring runs: every running node knows the change ended */
	NS_C_RING_REFUSED,  /* ring runs: client answers MOVING or WRONG_SHARD (definite) */
	NS_C_RING_DONE,     /* ring runs: changes every running node knows complete */
	NS_C_OK_READ,       /* client operations answered ok, by kind */
	NS_C_OK_WRITE,
	NS_C_OK_CAS,
	NS_C_OK_INCR,
	NS_C_FAIL, /* answered with a definite failure */
	NS_C_INFO, /* indeterminate (timeout, leader lost, node crashed) */
	NS_C_COUNT
};
extern const char *const ns_count_names[NS_C_COUNT];

/* What a run found. */
struct ns_result {
	bool ok;
	char why[512];      /* the first failure */
	uint64_t hash;      /* of the history and the event count: replay compares it */
	size_t ops, ok_ops; /* client operations completed, and of those ok */
	size_t events;
	uint64_t count[NS_C_COUNT];
	uint64_t probe_ms; /* the slowest liveness probe: ms from the heal to its ok */
	int nodes, groups;
	const char *mix;
	uint32_t apply_cap; /* committed entries a group applies per tick (0 = no limit) */
	uint32_t apply_commit_ms; /* node_config.apply_commit_ms */
	uint64_t snapshot_bytes;  /* node_config.snapshot_bytes (0: by entries only) */
	bool quiesce;       /* idle groups quiesce (node_config.quiesce) */
	bool lease;         /* leaders serve reads from leases (node_config.lease_reads) */
	bool moves;         /* replicas are moved between nodes during the run */
	bool members;       /* members are added, replaced and removed during the run */
	bool adds;          /* groups are created (and one retired) during the run */
	bool ring;          /* a ring change adds a group and is rolled back (RESHARD_*) */
};

/* Runs one seed (world.c). */
void ns_run(const struct ns_opts *o, struct ns_result *r);

/* The directory a run of seed in process pid keeps its nodes in (root NULL: /dev/shm). */
void ns_root_path(char *buf, size_t len, const char *root, int pid, uint64_t seed);
/* Removes it (the sweep does, for a child that died before it could). */
void ns_remove_root(const char *root, int pid, uint64_t seed);

#endif
