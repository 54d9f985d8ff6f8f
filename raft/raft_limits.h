/* raft_limits.h — every bound of the consensus core in one place (checked at its boundary). */
#ifndef RINGRAFT_RAFT_LIMITS_H
#define RINGRAFT_RAFT_LIMITS_H

#define RAFT_NODES_MAX                16          /* voters + learners of one group */
#define RAFT_ENTRY_BYTES_MAX          (4u << 20)  /* one proposal */
#define RAFT_MSG_ENTRIES_MAX          1024        /* entries in one AppendEntries */
#define RAFT_SNAPSHOT_CHUNK_BYTES_MAX (16u << 20) /* one InstallSnapshot chunk */
#define RAFT_PROMOTE_LAG_MAX          64 /* a learner is promoted only this close to the leader */
/* Heartbeat rounds whose send tick the leader remembers (raft/lease.c): an answer to an older
 * round extends no lease (the read falls back to a ReadIndex round, always safe). */
#define RAFT_LEASE_ROUNDS             256
/* The lease's safety margin for clock-rate drift, as a divisor of the election timeout:
 * lease = election_ticks - 1 - ceil(election_ticks / RAFT_LEASE_DRIFT_DIV) ticks (raft/lease.c,
 * docs/DESIGN-NOTES.md "Leader leases"). 10 tolerates tick rates about 5% apart. */
#define RAFT_LEASE_DRIFT_DIV          10

#endif
