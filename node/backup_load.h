/* backup_load.h — `kvd --restore FILE` (issue 21): a new cluster's node seeds its groups from
 * a backup file (kv/backup.h) at its first start, before Raft starts. Shell side: it reads the
 * file and writes the data directory.
 */
#ifndef RINGRAFT_NODE_BACKUP_LOAD_H
#define RINGRAFT_NODE_BACKUP_LOAD_H

#include <stddef.h>
#include <stdint.h>

#include "node/config.h"

struct kv;
struct wal;

/* Reads the whole file and checks it: the header, every section's place and group, the
 * trailer and the checksum over the whole file, that it holds `groups` groups (the
 * cluster's --groups) and the bootstrap ring (epoch 1, NODE_VNODES). Touches nothing. 0, or
 * NODE_ECONFIG with a sentence for the operator in err. */
int node_backup_file_check(const char *path, uint32_t groups, char *err, size_t err_len);

/* The restore itself, on a first start with --restore (cfg->restore_file): refuses a data
 * directory whose WAL or LMDB already hold anything; checks the file again; installs every
 * group this node hosts at bootstrap (kv_restore_*) with the new cluster's configuration;
 * syncs LMDB; writes each group's snapshot marker and hard state (term = the backup's applied
 * term, not recovering) into the WAL, so that every replica starts at the same applied index
 * as an ordinary member. A marker file (DIR/restore.pending) exists while it runs: a start that
 * finds it (an interrupted restore) is refused by node_backup_pending_check. NODE_OK, or an
 * error after logging why. */
int node_backup_restore(const struct node_config *cfg, struct wal *wal, struct kv *kv);

/* NODE_ESTORE (logged) when DIR/restore.pending says a restore was interrupted. */
int node_backup_pending_check(const char *data_dir);

#endif
