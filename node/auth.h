/* auth.h — client authentication's state as a node enforces it (auth.c): the "auth enabled"
 * flag and the users' records, read from this node's replica of the meta group or, where it
 * holds none (clusters of more than 3 members), pushed by the meta group's leader (PeerFrame
 * field 11) and kept in DIR/auth.state (authfile.c) for the next start. Pure: no I/O.
 */
#ifndef RINGRAFT_NODE_AUTH_H
#define RINGRAFT_NODE_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv/user.h"
#include "proto/raft.pb-c.h"

/* Users a cluster may have (USER_ADD refuses more): bounds every push (about 130 bytes a
 * user) and every decode of one. */
#define NODE_AUTH_USERS_MAX 256

struct node_auth_user {
	char name[KV_USER_NAME_MAX + 1];
	struct kv_user u;
};

/* What a node knows. known: learned at all (from the local meta replica, a push, or
 * DIR/auth.state); confirmed: from the local meta replica or a push since this start, not
 * only from the file. version: the meta group's applied index the state was read at; a state
 * replaces another only with a higher version (0: from a damaged file, replaced by any). */
struct node_auth_state {
	bool known, confirmed, on;
	uint64_t version;
	size_t n;
	struct node_auth_user *users; /* owned; n of them, NULL when n is 0 */
};

/* How a node treats clients: OFF serves everyone; ON asks every connection for a user;
 * UNCONFIRMED (nothing known yet, or only "off" from the file since start, on a node the meta
 * group's leader has not yet reached) refuses connections without a login, as UNAVAILABLE. */
enum node_auth_mode { NODE_AUTH_OFF, NODE_AUTH_ON, NODE_AUTH_UNCONFIRMED };

void node_auth_state_free(struct node_auth_state *s);
/* Decodes a pushed or saved state into out (known set, confirmed not): 0, or -1 with *why
 * when it has more than NODE_AUTH_USERS_MAX users, a bad or repeated name, or a record that
 * kv_user_record_decode refuses (out is then empty). */
int node_auth_state_from_pb(const Ringraft__Raft__AuthState *m, struct node_auth_state *out,
			    const char **why);
/* Packs s as an AuthState into *buf (malloc'd, the caller frees): 0, or -1 (out of memory). */
int node_auth_state_pack(const struct node_auth_state *s, uint8_t **buf, size_t *len);
/* True if a and b say the same (flag and users; versions aside). */
bool node_auth_state_same(const struct node_auth_state *a, const struct node_auth_state *b);

#endif
