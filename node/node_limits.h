/* node_limits.h — bounds and defaults of kvd, checked where flags, config and requests enter. */
#ifndef RINGRAFT_NODE_LIMITS_H
#define RINGRAFT_NODE_LIMITS_H

#define NODE_NODES_MAX                  16 /* nodes in a cluster (= RAFT_NODES_MAX) */
#define NODE_GROUPS_DEFAULT             8
#define NODE_MAP_PUSH_MS                1000 /* the meta leader re-sends the cluster map */
#define NODE_REPORT_MS                  1000 /* group leaders report configurations */
#define NODE_REPORT_STALE_MS            3000 /* older reports: the balancer waits */
#define NODE_REBALANCE_STEP_MS          2000 /* a balancer move step's deadline */
#define NODE_RESHARD_STEP_MS            5000 /* a ring change step's deadline */
#define NODE_RESHARD_RETRY_MS           200  /* a step that failed is asked again after */
#define NODE_RESHARD_STUCK_MS           30000 /* no progress before any copy is complete:
						* the change is rolled back */
#define NODE_RESHARD_DROP_KEYS          4096 /* keys a DROP batch walks */
#define NODE_REBALANCE_MOVE_MS          60000 /* a balancer move given up after this */
#define NODE_REBALANCE_STUCK_MS         5000 /* a move left half-done this long is finished */
/* Groups created while the cluster runs (issue 18, node/groups.c) take ids after the meta
 * group's, G + 2 onwards, never reused: ids up to G + 1 + this (and at most KV_GROUPS_MAX). The
 * node sizes its group table and LMDB's DBIs for them at start (two DBIs per id). */
#define NODE_GROUPS_ADDED_MAX           32
#define NODE_VNODES                     128 /* ring points per group */
#define NODE_RING_EPOCH                 1
#define NODE_REPLICAS                   3 /* replicas per group when the cluster has more nodes */
#define NODE_TICK_MS_DEFAULT            10
#define NODE_ELECTION_MS_DEFAULT        1000
#define NODE_HEARTBEAT_MS_DEFAULT       100
#define NODE_SNAPSHOT_ENTRIES_DEFAULT   10000
#define NODE_SNAPSHOT_ENTRIES_MIN       16
/* A group's log is also compacted once the entries it holds in memory reach this many bytes
 * (--snapshot-bytes): with large values the entry count alone let 8 groups hold 400 MB of
 * 4 KiB entries (docs/PERFORMANCE.md "The log's bytes") */
#define NODE_SNAPSHOT_BYTES_DEFAULT     (4ull << 20)
/* LMDB is checkpointed at most this long after a write (--checkpoint-ms): it bounds the WAL
 * replayed after a power loss and the pages the pinned checkpoint keeps from reuse
 * (docs/DURABILITY.md, "Rollback to the pinned checkpoint") */
#define NODE_CHECKPOINT_MS_DEFAULT      2000
/* Applied entries wait in LMDB's open transaction at most this long (--apply-commit-ms): a
 * commit writes every page it dirtied, and the longer the batch the more puts share the
 * branch pages of the trees they land in (docs/PERFORMANCE.md "Longer apply batches"). No
 * reply waits for it (the entries are committed in the Raft log) and every read commits it
 * first; the batch is also committed past KV_APPLY_HOLD_ENTRIES or its byte bound. */
#define NODE_APPLY_COMMIT_MS_DEFAULT    100
#define NODE_APPLY_COMMIT_MS_MAX        10000
/* A checkpoint longer than this (begin to end) is logged as slow. */
#define NODE_CKPT_SLOW_MS               1000
#define NODE_REQUEST_TIMEOUT_MS_DEFAULT 5000
#define NODE_REQUEST_TIMEOUT_MS_MAX     60000
#define NODE_FWD_HOPS_MAX               3 /* NOT_LEADER hints followed for a group not hosted here */
#define NODE_REMOVED_IDLE_ELECTIONS     2  /* a replica that applied its own removal retires
					    * after this many election timeouts without a leader's
					    * message (a re-added one keeps getting them) */
#define NODE_UNINIT_IDLE_ELECTIONS      20 /* a replica made for a leader that never made it a
					    * member is retired after this many election timeouts
					    * without a message from a leader (node/move.c) */
#define NODE_TRANSFER_INTERVAL_MS       5000 /* per group, between leadership transfers */
#define NODE_LEADER_SETTLE_MS           2000 /* lead this long before handing leadership away */
#define NODE_PEER_SETTLE_MS             1000 /* a peer up this long may take leadership */
#define NODE_HANDOFF_MS_MAX             2000 /* SIGTERM: at most this long handing leaderships off */
/* After a start, the next WAL segment is made ahead (64 MiB of zeroes, synced) only this long
 * after it, or once the active segment is half used: a restarted node's disk is busiest with
 * its recovery (replay, checkpoint, the hard states of its elections) in the first seconds. */
#define NODE_WAL_PREPARE_DELAY_MS       10000
#define NODE_MAINT_MS                   250  /* compaction / balancing check interval */
#define NODE_REQ_BUCKETS                4096 /* request id hash buckets (power of two) */
#define NODE_CONFIG_LINE_MAX            4096
#define NODE_PATH_MAX                   4096
#define NODE_ADDR_MAX                   64
#define NODE_SNAP_CHUNK_MAX             (1u << 20) /* snapshot bytes per InstallSnapshot chunk */
#define NODE_SNAP_IDLE_MS               30000 /* close a snapshot stream nobody asked for this long */
#define NODE_READ_BATCH_BYTES           (64u << 20) /* WAL entries read at once on restart */
#define NODE_SCRUB_RATE_DEFAULT         20000       /* stored values checked per second */
#define NODE_SCRUB_RATE_MAX             10000000
#define NODE_SCRUB_GROUPS_PER_STEP      16 /* groups the scrub visits per step at most: each
					    * visit is a read transaction, whose LMDB cost grows with
					    * the DBIs open (two per group) */
#define NODE_DIGEST_INTERVAL_MS         10000 /* per group, between digest comparisons */
#define NODE_RECOVER_STALL_ELECTIONS    20    /* then repair.c says it may get no leader */
#define NODE_EXIT_DISK_FULL             75    /* EX_TEMPFAIL: free space and start the node again */
#define NODE_EXPIRE_MS                  100   /* the leader's expirer runs this often (expire.c) */
#define NODE_EXPIRE_BATCH               512   /* due keys per REAP entry (one per group and run) */
#define NODE_EXPIRE_QUIET_GROUPS        4     /* quiesced groups the expirer looks at per run */
#define NODE_EXPIRE_TTL_MS_MAX          (100ull * 365 * 24 * 3600 * 1000) /* 100 years */

/* --metrics-addr (node/metrics_endpoint.c, node/http.c) */
#define NODE_METRICS_RENDER_MS    500  /* the loop publishes /metrics and /health this often */
#define NODE_METRICS_STALE_MS     5000 /* /health is 503 when the loop published nothing since */
#define NODE_HTTP_CONNECTIONS_MAX 16   /* concurrent connections to --metrics-addr */
#define NODE_HTTP_TIMEOUT_S       10   /* an idle HTTP connection is closed after this */
#define NODE_HEALTH_TEXT_MAX      2048 /* bytes of /health's reasons (more are cut) */

/* Load bounds (flags; 0 = none): beyond them a request is answered BUSY at once (service.c,
 * shell.c, resp.c; docs/OPERATIONS.md "Overload"). */
#define NODE_MAX_INFLIGHT_DEFAULT            1024        /* --max-inflight */
#define NODE_MAX_INFLIGHT_BYTES_DEFAULT      (64u << 20) /* --max-inflight-bytes */
#define NODE_CONN_MAX_INFLIGHT_DEFAULT       1024        /* --conn-max-inflight */
#define NODE_CONN_MAX_INFLIGHT_BYTES_DEFAULT (8u << 20)  /* --conn-max-inflight-bytes */
#define NODE_GROUP_MAX_PROPOSALS_DEFAULT     256         /* --group-max-proposals */
#define NODE_GROUP_MAX_WAIT_MS_DEFAULT       0           /* --group-max-wait-ms */
#define NODE_GROUP_MAX_WAIT_MS_MAX           60000

/* Backups (node/backup.c, issue 21): snapshots a node keeps open for BACKUP_CHUNK requests. */
#define NODE_BACKUPS_MAX         4            /* open at once; one more is answered BUSY */
#define NODE_BACKUP_CHUNK_BYTES  (256u << 10) /* stream bytes per answer (< NET_CLIENT_FRAME_MAX) */
#define NODE_BACKUP_IDLE_MS      30000        /* an open backup not read for this long closes */

#endif
