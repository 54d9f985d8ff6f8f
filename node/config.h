/* config.h — kvd's settings: command-line flags, an optional --config file with the same keys
 * (`key = value` lines), and DIR/cluster.conf, which the first start writes atomically so that
 * a restart needs only --data-dir. Identity settings (id, addresses, cluster, groups) given
 * again must match the persisted ones; tunables (timings, log level, ...) may change.
 */
#ifndef RINGRAFT_NODE_CONFIG_H
#define RINGRAFT_NODE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kv/kv_limits.h"
#include "node/node_err.h"
#include "node/node_limits.h"

struct node_member {
	uint64_t id;
	char peer_addr[NODE_ADDR_MAX];
	bool removed; /* removed from the cluster (node/members.c): its slot stays */
	bool leaving; /* leaving (or removed): its replicas move to the others */
};

struct node_config {
	uint64_t id;
	char data_dir[NODE_PATH_MAX];
	char peer_addr[NODE_ADDR_MAX];
	char client_addr[NODE_ADDR_MAX];
	char resp_addr[NODE_ADDR_MAX];              /* "" = no RESP port (node/resp.c) */
	char metrics_addr[NODE_ADDR_MAX];           /* HTTP /metrics and /health; "" = off */
	/* The bootstrap members (--cluster, sorted by id) in [0, n_boot), then those added since,
	 * as the cluster map (node/members.c) names them: the engine appends to this list. */
	struct node_member members[NODE_NODES_MAX];
	size_t n_members, n_boot;
	bool join; /* --join: not a bootstrap member; added with kvctl member add */
	uint32_t groups;
	uint64_t cluster_id; /* hash of the membership and groups: peers must agree */
	/* tunables */
	uint32_t tick_ms, election_ms, heartbeat_ms;
	uint64_t snapshot_entries;
	uint64_t snapshot_bytes; /* ... or once its log holds this many bytes in memory (0: off) */
	uint32_t value_max;
	uint32_t checkpoint_ms; /* LMDB checkpointed this long after a write (0: by compaction) */
	/* applied entries are held in LMDB's open write transaction (kv.h "Batched applies") at
	 * most this long before it commits (0: every tick); any read commits it first */
	uint32_t apply_commit_ms;
	uint32_t scrub_rate; /* stored values checked per second (0 = no scrub) */
	uint32_t request_timeout_ms;
	/* committed entries a group applies per tick (0 = no limit): kvd leaves it 0; the
	 * whole-node simulator sets it small in some seeds, a state machine slower than commit,
	 * so that apply lags commit (tests/nodesim) */
	uint32_t apply_entries_max;
	/* Load bounds (0 = none): beyond them a request is answered BUSY at once, before it is
	 * proposed or forwarded (service.c for the node and groups, shell.c and resp.c for
	 * one connection). */
	uint32_t max_inflight;            /* requests held by the node (local + forwarded in) */
	uint64_t max_inflight_bytes;      /* their bytes */
	uint32_t conn_max_inflight;       /* requests unanswered on one client connection */
	uint64_t conn_max_inflight_bytes; /* their bytes */
	uint32_t group_max_proposals;     /* proposals of one group waiting to be applied */
	uint32_t group_max_wait_ms;       /* how long the oldest of them may have waited */
	int log_level;
	bool balance_leaders;
	bool auto_balance; /* the meta leader moves replicas to even them out (rebalance.c) */
	bool reshard_pause; /* the meta leader's driver moves no keys (reshard_drive.c) */
	/* Tests only (no flag): the bytes of a copy's INGEST chunks (0: KV_SNAPSHOT_CHUNK_DEFAULT),
	 * so that a simulated copy of a few keys spans many chunks. */
	uint32_t reshard_chunk_bytes;
	bool quiesce;          /* idle groups stop heartbeating (raft/quiesce.c) */
	bool lease_reads;      /* leaders answer linearizable reads from a lease (raft/lease.c;
				* default on, --lease-reads off for clocks that cannot be trusted) */
	bool wal_no_sync;      /* benchmarks only: skip fdatasync (loses durability) */
	bool wal_inline;       /* --wal-writer inline: the loop writes and syncs each batch itself */
	bool kv_sync;          /* LMDB syncs every applied batch (survives a machine crash) */
	bool auto_repair;      /* after a machine crash, LMDB is set aside and rebuilt (shell.c) */
	/* Not a flag: set by the shell when it set an untrusted LMDB aside at this start (the
	 * engine opened on an empty one; node/restore.c says per group how it comes back). */
	bool kv_set_aside;
	bool wal_no_direct_io; /* write WAL batches through the page cache, never O_DIRECT */
	/* TLS on the peer, client and RESP ports (docs/SECURITY.md): all three paths or none
	 * ("" = plaintext). Tunables: a restart may change them (certificate rotation). */
	char tls_cert[NODE_PATH_MAX], tls_key[NODE_PATH_MAX], tls_ca[NODE_PATH_MAX];
	bool client_cert_auth; /* clients must present a certificate of tls_ca */
	/* Peer authentication (docs/SECURITY.md): the file of cluster secrets ("" = off); read
	 * and checked by node_config_load, loaded again by the shell. A tunable (rotation). */
	char peer_secret_file[NODE_PATH_MAX];
	/* --restore FILE (node/backup_load.c): seed this new node's groups from a backup at its
	 * first start; "" = none. Never persisted: a restart does not restore again. */
	char restore_file[NODE_PATH_MAX];
};

/* Parses argv, the --config file and DIR/cluster.conf into *cfg; on a first start writes
 * DIR/cluster.conf. On error returns NODE_ECONFIG with a message saying what to fix in err. Returns
 * 1 when --help was printed (exit 0). */
int node_config_load(int argc, char **argv, struct node_config *cfg, char *err, size_t err_len);
void node_config_usage(FILE *out);

/* The index (0-based) of node id in members, or -1. */
int node_config_member_index(const struct node_config *cfg, uint64_t id);
/* The highest group id a node of `groups` key groups can host: 1..groups hold keys, groups + 1
 * is the meta group, and the ids after it are for groups created at runtime (node/groups.c,
 * NODE_GROUPS_ADDED_MAX of them). The shell sizes LMDB's DBIs (kv_options.groups_max) to it. */
static inline uint32_t node_group_id_max(uint32_t groups)
{
	uint64_t m = (uint64_t)groups + 1 + NODE_GROUPS_ADDED_MAX;
	return m > KV_GROUPS_MAX ? KV_GROUPS_MAX : (uint32_t)m;
}

#endif
