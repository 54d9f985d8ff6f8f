/* peer_secret.h — reading --peer-secret-file: the cluster secret(s) peers prove they hold
 * (docs/SECURITY.md "Peer authentication"; the proofs are net/peer_auth.c's).
 */
#ifndef RINGRAFT_NODE_PEER_SECRET_H
#define RINGRAFT_NODE_PEER_SECRET_H

#include <stddef.h>

#include "net/peer_auth.h"

/* Reads path: 1 to NET_PEER_SECRETS_MAX lines, each one secret of NET_PEER_SECRET_MIN to
 * NET_PEER_SECRET_MAX bytes (a final newline and a CR before each newline are not part of
 * it); the first line is the secret this node proves with, every line one it accepts. The
 * file must be a regular file that other users can neither read nor write. On error returns
 * NODE_ECONFIG, *out holds no secret and err says what to fix (naming the file, never a
 * secret). out is wiped before anything is read. */
int node_peer_secret_load(const char *path, struct net_peer_secrets *out, char *err,
			  size_t err_len);

#endif
