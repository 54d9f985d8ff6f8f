/* raft_limits.h — every bound of the consensus core in one place (checked at its boundary). */
#ifndef RINGRAFT_RAFT_LIMITS_H
#define RINGRAFT_RAFT_LIMITS_H

#define RAFT_NODES_MAX                16          /* voters + learners of one group */
#define RAFT_ENTRY_BYTES_MAX          (4u << 20)  /* one proposal */
#define RAFT_MSG_ENTRIES_MAX          1024        /* entries in one AppendEntries */
#define RAFT_SNAPSHOT_CHUNK_BYTES_MAX (16u << 20) /* one InstallSnapshot chunk */
#define RAFT_PROMOTE_LAG_MAX          64 /* a learner is promoted only this close to the leader */

#endif
