/* addrbook.h — the client addresses of the other nodes, learned from their Hellos and kept in
 * DIR/peers.conf (`id = host:port` lines, written atomically), so that STATUS and NOT_LEADER
 * hints can name every node's client address even right after a restart, before the peers
 * have reconnected.
 */
#ifndef RINGRAFT_NODE_ADDRBOOK_H
#define RINGRAFT_NODE_ADDRBOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/config.h"

struct node_addrbook {
	char client_addr[NODE_NODES_MAX][NODE_ADDR_MAX]; /* by member index; "" = unknown */
};

/* Loads DIR/peers.conf if it exists (unknown ids and bad lines are ignored). */
void node_addrbook_load(struct node_addrbook *b, const struct node_config *cfg);
/* Records id's address; returns true if it changed (then node_addrbook_save). */
bool node_addrbook_set(struct node_addrbook *b, const struct node_config *cfg, uint64_t id,
		       const char *client_addr);
/* Writes DIR/peers.conf (temp file, fsync, rename). Returns 0 or NODE_ESTORE (errno set). */
int node_addrbook_save(const struct node_addrbook *b, const struct node_config *cfg);
/* The address of node id ("" if unknown); borrowed. */
const char *node_addrbook_get(const struct node_addrbook *b, const struct node_config *cfg,
			      uint64_t id);

#endif
