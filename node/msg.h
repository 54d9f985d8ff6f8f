/* msg.h — conversion between struct raft_message (raft/raft.h) and the wire Message of
 * proto/raft.proto, field for field. Kept apart so that the driver reads as a driver.
 */
#ifndef RINGRAFT_NODE_MSG_H
#define RINGRAFT_NODE_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "node/node_err.h"
#include "proto/raft.pb-c.h"
#include "raft/raft.h"

/* Scratch memory reused across conversions (owned by the caller; node_msg_scratch_free). */
struct node_msg_scratch {
	Ringraft__Raft__Entry *pb_entries;
	Ringraft__Raft__Entry **pb_entry_ptrs;
	struct raft_entry *entries;
	size_t cap_pb, cap_entries;
	uint64_t voters[RAFT_NODES_MAX], learners[RAFT_NODES_MAX];
};
void node_msg_scratch_free(struct node_msg_scratch *s);

/* Fills *out (and conf) from m; out borrows m's entry data and the scratch arrays until the
 * next conversion. Returns 0, or NODE_ENOMEM (node_err.h). */
int node_msg_to_pb(uint64_t group, const struct raft_message *m, struct node_msg_scratch *s,
		   Ringraft__Raft__Message *out, Ringraft__Raft__Configuration *conf);
/* Fills *out from a received message; borrows pb's data and the scratch arrays. Returns 0,
 * or NODE_EMALFORMED (too many entries or nodes, a bad type, a snapshot configuration naming
 * node 0 or a node twice) or NODE_ENOMEM. */
int node_msg_from_pb(const Ringraft__Raft__Message *pb, struct node_msg_scratch *s,
		     struct raft_message *out);

#endif
