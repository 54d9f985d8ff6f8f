/* backup_load.c — `kvd --restore FILE`: seeding a new cluster from a backup (backup_load.h,
 * kv/backup.h, docs/OPERATIONS.md "Backup and restore").
 *
 * The file is untrusted: it is read whole and checked (structure and the XXH3-64 over every
 * byte) before anything is written (node_backup_file_check, from node_config_load, before even
 * cluster.conf), then read again to install the groups; each group's
 * snapshot stream is checked once more by kv_restore_finish (its own checksum and every
 * value's CRC). What makes the restored groups come up as ordinary replicas rather than
 * recovering ones (node/restore.c, raft/recovery.c): each gets the new cluster's bootstrap
 * configuration in LMDB and, in the WAL, a snapshot marker at the backup's applied index with
 * a hard state at its term that is not `recovering`. Every node restored from the same file
 * then holds the same state at the same index, no vote spent in any term: they elect at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kv/backup.h"
#include "kv/kv.h"
#include "kv/ring.h"
#include "node/backup_load.h"
#include "node/log.h"
#include "node/node_err.h"
#include "node/node_limits.h"
#include "wal/wal.h"

#define PENDING_FILE "restore.pending"

/* Reads path through, checking everything (kv_backup_file_walk), then what this kvd needs:
 * the groups of --groups and the bootstrap ring. */
static int walk(const char *path, uint32_t groups, struct kv_backup_header *hdr,
		kv_backup_section_fn fn, void *arg, char *err, size_t n)
{
	char why[512];
	if (kv_backup_file_walk(path, hdr, fn, arg, why, sizeof why) < 0) {
		snprintf(err, n, "--restore %s: %s", path, why);
		return -1;
	}
	if (hdr->groups != groups) {
		snprintf(err, n,
			 "--restore %s: refused: the backup holds %u groups and this cluster "
			 "starts with --groups %u: give --groups %u",
			 path, hdr->groups, groups, hdr->groups);
		return -1;
	}
	if (hdr->ring_epoch != NODE_RING_EPOCH || hdr->vnodes != NODE_VNODES) {
		snprintf(err, n,
			 "--restore %s: refused: the backup's ring (epoch %llu, %u points per "
			 "group) is not the bootstrap ring this kvd starts with (epoch %d, %d)",
			 path, (unsigned long long)hdr->ring_epoch, hdr->vnodes, NODE_RING_EPOCH,
			 NODE_VNODES);
		return -1;
	}
	return 0;
}

int node_backup_file_check(const char *path, uint32_t groups, char *err, size_t err_len)
{
	struct kv_backup_header hdr;
	return walk(path, groups, &hdr, NULL, NULL, err, err_len) < 0 ? NODE_ECONFIG : NODE_OK;
}

/* ------------------------------------------------------------------------------ install */

struct install {
	const struct node_config *cfg;
	struct kv *kv;
	struct kv_restore *kr; /* the section being installed */
	bool hosted[KV_GROUPS_MAX + 1];
	raft_index index[KV_GROUPS_MAX + 1];
	raft_term term[KV_GROUPS_MAX + 1];
	struct raft_conf conf[KV_GROUPS_MAX + 1];
};

/* The bootstrap placement of group g, as node/restore.c computes it. */
static void bootstrap_conf(const struct node_config *cfg, uint32_t g, struct raft_conf *out)
{
	uint64_t ids[NODE_NODES_MAX], hosts[NODE_NODES_MAX];
	size_t nb = cfg->n_boot, nh = nb;
	for (size_t i = 0; i < nb; i++)
		ids[i] = cfg->members[i].id;
	if (nb <= NODE_REPLICAS)
		memcpy(hosts, ids, nb * sizeof *ids);
	else
		nh = kv_ring_place(g, ids, nb, NODE_REPLICAS, hosts);
	memset(out, 0, sizeof *out);
	for (size_t i = 0; i < nh; i++)
		out->voters[i] = hosts[i];
	out->n_voters = (uint32_t)nh;
}

static int install_fn(const struct kv_backup_section *s, const void *data, size_t len, bool last,
		      void *arg)
{
	struct install *in = arg;
	if (!in->hosted[s->group] || s->index == 0)
		return 0; /* another node's group, or one that never applied anything */
	int rc = KV_OK;
	if (in->kr == NULL) {
		rc = kv_restore_begin(in->kv, s->group, &in->kr);
		if (rc != KV_OK)
			in->kr = NULL;
	}
	if (rc == KV_OK)
		rc = kv_restore_write(in->kr, data, len);
	if (rc == KV_OK && last) {
		rc = kv_restore_finish(in->kr); /* frees it: checks the stream once more */
		in->kr = NULL;
		if (rc == KV_OK) {
			struct kv_group_meta km;
			rc = kv_meta(in->kv, s->group, &km);
			if (rc == KV_OK &&
			    (km.applied_index != s->index || km.applied_term != s->term))
				rc = KV_ECORRUPT; /* the section header and its stream disagree */
		}
		if (rc == KV_OK)
			rc = kv_group_conf_set(in->kv, s->group, &in->conf[s->group]);
		if (rc == KV_OK) {
			in->index[s->group] = s->index;
			in->term[s->group] = s->term;
			node_log(NODE_LOG_WARN, s->group,
				 "restored from the backup applied=%llu term=%llu bytes=%llu",
				 (unsigned long long)s->index, (unsigned long long)s->term,
				 (unsigned long long)s->length);
		}
	}
	if (rc != KV_OK) {
		if (in->kr != NULL)
			kv_restore_abort(in->kr);
		in->kr = NULL;
		node_log(NODE_LOG_ERROR, s->group, "cannot restore the group error=\"%s\"",
			 kv_strerror(rc));
		return -1;
	}
	return 0;
}

static int pending_path(const char *dir, char *out, size_t n)
{
	int l = snprintf(out, n, "%s/%s", dir, PENDING_FILE);
	return l < 0 || (size_t)l >= n ? -1 : 0;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

int node_backup_pending_check(const char *data_dir)
{
	char p[NODE_PATH_MAX + 32];
	if (pending_path(data_dir, p, sizeof p) < 0 || access(p, F_OK) != 0)
		return NODE_OK;
	node_log(NODE_LOG_ERROR, 0,
		 "a kvd --restore into this data directory was interrupted (%s exists): its "
		 "state is incomplete; empty the directory and start again with --restore",
		 p);
	return NODE_ESTORE;
}

/* Whether the stores hold anything at all: --restore seeds only an empty node. */
static bool stores_empty(const struct node_config *cfg, struct wal *wal, struct kv *kv)
{
	if (wal_group_count(wal) > 0)
		return false;
	for (uint32_t g = 1; g <= cfg->groups + 1; g++) {
		struct kv_group_meta km;
		if (kv_meta(kv, g, &km) != KV_OK || km.has_conf || km.applied_index > 0 ||
		    km.keys > 0)
			return false;
	}
	return true;
}

int node_backup_restore(const struct node_config *cfg, struct wal *wal, struct kv *kv)
{
	const char *path = cfg->restore_file;
	if (!stores_empty(cfg, wal, kv)) {
		node_log(NODE_LOG_ERROR, 0,
			 "--restore %s: refused: the data directory already holds state; a "
			 "restore seeds a new node: use an empty --data-dir",
			 path);
		return NODE_ECONFIG;
	}
	/* The whole file was checked by node_config_load (node_backup_file_check) before
	 * cluster.conf was written. The install pass below checks it again as it goes (and its
	 * checksum at the end): should the file have changed since, the start fails with
	 * restore.pending left behind, and the directory is never served. */
	char err[1024], pending[NODE_PATH_MAX + 32];
	struct kv_backup_header hdr;
	if (pending_path(cfg->data_dir, pending, sizeof pending) < 0)
		return NODE_ECONFIG;
	int fd = open(pending, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || fsync(fd) != 0 || close(fd) != 0 || fsync_dir(cfg->data_dir) != 0) {
		node_log(NODE_LOG_ERROR, 0, "cannot create %s: %s", pending, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NODE_ESTORE;
	}
	struct install *in = calloc(1, sizeof *in);
	if (in == NULL)
		return NODE_ENOMEM;
	in->cfg = cfg;
	in->kv = kv;
	for (uint32_t g = 1; g <= cfg->groups && g < KV_GROUPS_MAX; g++) {
		bootstrap_conf(cfg, g, &in->conf[g]);
		for (uint32_t i = 0; i < in->conf[g].n_voters; i++)
			if (in->conf[g].voters[i] == cfg->id)
				in->hosted[g] = true;
	}
	int rc = NODE_ESTORE;
	struct wal_batch *b = NULL;
	if (walk(path, cfg->groups, &hdr, install_fn, in, err, sizeof err) < 0) {
		node_log(NODE_LOG_ERROR, 0, "%s", err);
		goto out;
	}
	/* LMDB durable first: the WAL's markers then say "this state is in LMDB" */
	raft_index *ckpt = calloc(hdr.groups, sizeof *ckpt);
	int krc = ckpt == NULL ? KV_ENOMEM : kv_checkpoint(kv, ckpt, hdr.groups);
	free(ckpt);
	if (krc != KV_OK) {
		node_log(NODE_LOG_ERROR, 0, "cannot sync LMDB after the restore error=\"%s\"",
			 kv_strerror(krc));
		goto out;
	}
	b = wal_batch_new();
	if (b == NULL)
		goto out;
	for (uint32_t g = 1; g <= hdr.groups; g++) {
		if (in->index[g] == 0)
			continue;
		struct raft_hard_state hs = {.term = in->term[g], .commit = in->index[g]};
		if (wal_batch_snapshot(b, g, in->index[g], in->term[g], &in->conf[g]) != 0 ||
		    wal_batch_hard_state(b, g, &hs) != 0 ||
		    wal_batch_checkpoint(b, g, in->index[g]) != 0)
			goto out;
	}
	int wrc = wal_batch_empty(b) ? WAL_OK : wal_batch_write(wal, b);
	if (wrc != WAL_OK) {
		node_log(NODE_LOG_ERROR, 0, "cannot write the WAL after the restore error=\"%s\"",
			 wal_strerror(wrc));
		goto out;
	}
	if (unlink(pending) != 0 || fsync_dir(cfg->data_dir) != 0) {
		node_log(NODE_LOG_ERROR, 0, "cannot remove %s: %s", pending, strerror(errno));
		goto out;
	}
	node_log(NODE_LOG_WARN, 0,
		 "restored %u groups from the backup %s (taken from cluster %016llx); they start "
		 "at the backup's applied indexes",
		 hdr.groups, path, (unsigned long long)hdr.cluster_id);
	rc = NODE_OK;
out:
	if (in->kr != NULL)
		kv_restore_abort(in->kr);
	wal_batch_free(b);
	free(in);
	return rc;
}
