/* authfile.h — DIR/auth.state, client authentication's state a node learned (authfile.c). */
#ifndef RINGRAFT_NODE_AUTHFILE_H
#define RINGRAFT_NODE_AUTHFILE_H

#include "node/engine.h"

/* Bytes of the whole file at most: NODE_AUTH_USERS_MAX users of about 130 bytes, and slack. */
#define NODE_AUTHFILE_MAX (64u << 10)

/* Saves n's state (node_auth_saved_state) atomically. 0, -1 (errno set) when it cannot be
 * written; nothing known yet is not an error (nothing written). */
int node_authfile_save(const char *dir, struct node *n);
/* Loads it into n (node_auth_load): 0 when absent or loaded; -1 when unreadable or damaged
 * (logged; n then treats authentication as on with no users known: fail closed). */
int node_authfile_load(const char *dir, struct node *n);

#endif
