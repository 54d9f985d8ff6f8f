/* node.h — kvd's node: one libuv loop hosting every Raft group of the cluster over one WAL and
 * one LMDB environment, a peer transport and a client service (DESIGN.md sections 2, 3, 7, 8).
 */
#ifndef RINGRAFT_NODE_NODE_H
#define RINGRAFT_NODE_NODE_H

#include "node/config.h"

struct node_shell;

/* Opens the data dir (WAL + LMDB), rebuilds every group from what is durable, binds both
 * ports (node/shell.c). cfg is copied. Returns NODE_OK, or a NODE_E* error (engine.h) after
 * logging what went wrong. */
int node_open(const struct node_config *cfg, struct node_shell **out);
/* Runs until SIGTERM/SIGINT (returns 0 after a clean stop) or a fatal error (the process exits
 * non-zero from inside: a failed fsync never returns). */
int node_run(struct node_shell *s);
/* Closes the stores and frees everything. Only after node_run returned. */
void node_close(struct node_shell *s);

#endif
