/* conf.h — configurations: membership tests, single-server changes, and the encoding of a
 * RAFT_ENTRY_CONF entry's data (internal to raft/; the driver treats it as opaque bytes).
 *
 * Encoding (little-endian), version 1; the entry carries the WHOLE resulting configuration so
 * that the configuration at any index can be rebuilt from the last conf entry at or below it:
 *     u8 version (=1) | u8 change type | u16 zero | u64 node changed
 *     u32 n_voters | u32 n_learners | u64 voter ids[n_voters] | u64 learner ids[n_learners]
 */
#ifndef RINGRAFT_RAFT_CONF_H
#define RINGRAFT_RAFT_CONF_H

#include <stddef.h>

#include "raft/raft.h"

#define RAFT_CONF_ENC_VERSION 1
#define RAFT_CONF_ENC_HEADER  20

bool raft_conf_is_member(const struct raft_conf *c, raft_id id);
bool raft_conf_equal(const struct raft_conf *a, const struct raft_conf *b);
/* Applies one change to *c. Returns 0 or RAFT_EINVAL when the change makes no sense
 * (adding a member twice, removing a stranger, promoting a non-learner, too many nodes,
 * removing the last voter). */
int raft_conf_apply(struct raft_conf *c, enum raft_conf_change_type type, raft_id node);
/* Encodes into a malloc'd buffer (transferred to the caller). */
int raft_conf_encode(const struct raft_conf *c, enum raft_conf_change_type type, raft_id node,
		     struct raft_buf *out);
/* Decodes; RAFT_EINVAL on malformed data. */
int raft_conf_decode(const struct raft_buf *in, struct raft_conf *c);

#endif
