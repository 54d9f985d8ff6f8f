/* snapshot.c — InstallSnapshot on both sides and log compaction (Raft thesis 5.1-5.4): chunks
 * served from one kv_snapshot stream per (group, follower), received into a kv_restore and
 * installed atomically with a WAL marker; after --snapshot-entries applied: checkpoint LMDB,
 * record it in the WAL, compact the core's log (keeping a margin), delete WAL segments.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "node/node_int.h"

static void checkpoint_begin(struct node *n, bool need);

static struct node_snap_out *slot_for(struct node_group *g, uint64_t to)
{
	struct node_snap_out *free_slot = NULL;
	for (size_t i = 0; i < NODE_NODES_MAX; i++) {
		if (g->snaps[i].to == to)
			return &g->snaps[i];
		if (g->snaps[i].to == 0 && free_slot == NULL)
			free_slot = &g->snaps[i];
	}
	if (free_slot != NULL) {
		memset(free_slot, 0, sizeof *free_slot);
		free_slot->to = to;
	}
	return free_slot;
}

static void slot_close(struct node_snap_out *s)
{
	if (s->s != NULL)
		kv_snapshot_end(s->s);
	free(s->last);
	memset(s, 0, sizeof *s);
}

void node_snap_serve(struct node *n, struct node_group *g, const struct raft_snapshot_request *r)
{
	struct node_snap_out *s = slot_for(g, r->to);
	if (s == NULL) {
		raft_snapshot_chunk(g->raft, r->to, r->index, r->offset, NULL, 0, true, true);
		return;
	}
	if (r->offset == 0) {
		if (s->s != NULL)
			kv_snapshot_end(s->s);
		s->s = NULL;
		s->has_last = false;
		int rc = kv_snapshot_begin(n->kv, g->id, &s->s);
		if (rc != KV_OK) {
			node_log(NODE_LOG_WARN, g->id, "snapshot begin failed to=%llu error=\"%s\"",
				 (unsigned long long)r->to, kv_strerror(rc));
			slot_close(s);
			raft_snapshot_chunk(g->raft, r->to, r->index, r->offset, NULL, 0, true,
					    true);
			return;
		}
		s->offset = 0;
		s->index = r->index;
		s->used_ms = node_now_ms(n);
		node_log(NODE_LOG_INFO, g->id, "sending snapshot to=%llu index=%llu data_at=%llu",
			 (unsigned long long)r->to, (unsigned long long)r->index,
			 (unsigned long long)kv_snapshot_index(s->s));
	} else if (s->has_last && s->index == r->index && s->last_off == r->offset) {
		/* the follower did not answer the last chunk: send it again */
		s->used_ms = node_now_ms(n);
		raft_snapshot_chunk(g->raft, r->to, r->index, r->offset, s->last, s->last_len,
				    s->last_done, false);
		return;
	}
	if (s->s == NULL || s->offset != r->offset || s->index != r->index) {
		slot_close(s);
		raft_snapshot_chunk(g->raft, r->to, r->index, r->offset, NULL, 0, true, true);
		return;
	}
	if (s->last == NULL && (s->last = malloc(NODE_SNAP_CHUNK_MAX)) == NULL) {
		slot_close(s);
		raft_snapshot_chunk(g->raft, r->to, r->index, r->offset, NULL, 0, true, true);
		return;
	}
	size_t cap = r->len_max ? r->len_max : NODE_SNAP_CHUNK_MAX;
	if (cap > NODE_SNAP_CHUNK_MAX)
		cap = NODE_SNAP_CHUNK_MAX;
	size_t len = 0;
	bool done = false;
	int rc = kv_snapshot_read(s->s, s->last, cap, &len, &done);
	if (rc == KV_ECORRUPT)
		node_group_damaged(n, g, "a snapshot send"); /* never ship a damaged value */
	if (rc != KV_OK) {
		node_log(NODE_LOG_WARN, g->id, "snapshot read failed to=%llu error=\"%s\"",
			 (unsigned long long)r->to, kv_strerror(rc));
		slot_close(s);
		raft_snapshot_chunk(g->raft, r->to, r->index, r->offset, NULL, 0, true, true);
		return;
	}
	s->has_last = true;
	s->last_off = r->offset;
	s->last_len = len;
	s->last_done = done;
	s->offset += len;
	s->used_ms = node_now_ms(n);
	if (done) {
		/* the read transaction ends now; the last chunk stays for a resend */
		kv_snapshot_end(s->s);
		s->s = NULL;
		node_metrics_snapshot(&n->metrics, true);
	}
	raft_snapshot_chunk(g->raft, r->to, r->index, r->offset, s->last, len, done, false);
}

void node_snap_receive(struct node *n, struct node_group *g, const struct raft_snapshot_chunk_in *c)
{
	if (c->offset == 0) {
		if (g->restore != NULL)
			kv_restore_abort(g->restore);
		g->restore = NULL;
		int rc = kv_restore_begin(n->kv, g->id, &g->restore);
		if (rc == KV_ENOSPC)
			node_stop_disk_full(n, g->id, "staging a snapshot");
		if (rc != KV_OK)
			node_fatal(n, g->id, "cannot stage a snapshot error=\"%s\"",
				   kv_strerror(rc));
		g->restore_index = c->index;
		node_log(NODE_LOG_INFO, g->id, "receiving snapshot index=%llu term=%llu",
			 (unsigned long long)c->index, (unsigned long long)c->term);
	}
	if (g->restore == NULL || g->restore_index != c->index) {
		/* The core took a chunk whose beginning this node never staged (a peer's message
		 * it should not have sent, or one damaged on the way): the replica's state no
		 * longer matches its core's, so it is rebuilt from its peers, not trusted. */
		node_log(NODE_LOG_ERROR, g->id,
			 "snapshot chunk without its beginning index=%llu offset=%llu: the replica is "
			 "rebuilt from its peers",
			 (unsigned long long)c->index, (unsigned long long)c->offset);
		node_snap_close_all(n, g);
		g->damaged = true;
		n->any_damaged = true;
		return;
	}
	int rc = KV_OK;
	if (c->data.len > 0)
		rc = kv_restore_write(g->restore, c->data.base, c->data.len);
	if (rc == KV_ENOSPC)
		node_stop_disk_full(n, g->id, "staging a snapshot");
	if (rc != KV_OK)
		node_fatal(n, g->id, "cannot stage a snapshot error=\"%s\"", kv_strerror(rc));
	if (!c->done)
		return;
	if (c->skip_install) {
		/* The state machine is already past the snapshot (it applied entries its log lost
		 * in a crash): keep it, only the log is reset to the marker. */
		kv_restore_abort(g->restore);
		g->restore = NULL;
		node_log(NODE_LOG_INFO, g->id, "snapshot marker recorded, state kept index=%llu",
			 (unsigned long long)c->index);
	} else {
		rc = kv_restore_finish(g->restore);
		g->restore = NULL;
		if (rc == KV_ENOSPC)
			node_stop_disk_full(n, g->id, "installing a snapshot");
		if (rc == KV_ECORRUPT) {
			/* A stream that fails its checksum or structure (damaged on the way, or sent
			 * by a peer that should not have): the core has already taken the snapshot,
			 * so the replica is rebuilt from its peers (repair.c), recovering, rather than
			 * the node stopping. The group's state in LMDB is unchanged (restore.c). */
			node_log(NODE_LOG_ERROR, g->id,
				 "snapshot stream refused index=%llu error=\"%s\": the replica is "
				 "rebuilt from its peers",
				 (unsigned long long)c->index, kv_strerror(rc));
			g->damaged = true;
			n->any_damaged = true;
			return;
		}
		if (rc != KV_OK)
			node_fatal(n, g->id, "snapshot install failed index=%llu error=\"%s\"",
				   (unsigned long long)c->index, kv_strerror(rc));
	}
	rc = wal_batch_snapshot(n->cur->b, g->id, c->index, c->term, &c->conf);
	if (rc != WAL_OK)
		node_fatal(n, g->id, "cannot add a snapshot marker error=\"%s\"", wal_strerror(rc));
	node_group_compacted(g, c->index);
	g->state_gen++;
	/* The installed state is not synced, and the WAL's log now starts after it: a power
	 * loss before the next checkpoint would roll LMDB back below the marker, where the WAL
	 * no longer reaches (the group would be rebuilt from its peers). So it comes soon. */
	n->ckpt_ms = 0;
	node_metrics_snapshot(&n->metrics, false);
	node_log(NODE_LOG_INFO, g->id, "snapshot installed index=%llu",
		 (unsigned long long)c->index);
}

void node_snap_close_all(struct node *n, struct node_group *g)
{
	(void)n;
	for (size_t k = 0; k < NODE_NODES_MAX; k++)
		slot_close(&g->snaps[k]);
	if (g->restore != NULL)
		kv_restore_abort(g->restore);
	g->restore = NULL;
}

/* The entries a compaction keeps behind the compaction point for slow followers: a quarter
 * of --snapshot-entries, and no more than about a quarter of --snapshot-bytes at the log's
 * mean entry size (at least one). */
static raft_index compaction_keep(const struct node *n, const struct node_group *g)
{
	raft_index keep = n->cfg.snapshot_entries / 4;
	uint64_t held = raft_last_index(g->raft) + 1 - raft_first_index(g->raft);
	uint64_t bytes = raft_log_bytes_of(g->raft);
	if (n->cfg.snapshot_bytes > 0 && held > 0 && bytes > 0) {
		uint64_t mean = bytes / held ? bytes / held : 1;
		uint64_t fit = n->cfg.snapshot_bytes / 4 / mean;
		if (fit < keep)
			keep = fit ? fit : 1;
	}
	return keep;
}

/* Is a compaction of g's log due: --snapshot-entries applied since the last one, or (with
 * large values) --snapshot-bytes of entries held in memory and more applied since the last
 * one than it would keep (else it would drop nothing: a log whose few newest entries are
 * bigger than the bound would checkpoint at every maintenance turn)? */
static bool compaction_due(const struct node *n, const struct node_group *g)
{
	raft_index applied = raft_applied_of(g->raft);
	if (applied >= g->compacted + n->cfg.snapshot_entries)
		return true;
	return n->cfg.snapshot_bytes > 0 &&
	       raft_log_bytes_of(g->raft) + g->trimmed_bytes >= n->cfg.snapshot_bytes &&
	       applied > g->compacted + compaction_keep(n, g);
}

/* The in-memory log between checkpoints. A compaction waits for a checkpoint (the WAL keeps
 * every entry LMDB may not hold durably), and under a write load a checkpoint takes a second
 * or more: at 4 KiB per entry the logs of 8 groups reached 115 MB per node before it ended
 * (docs/PERFORMANCE.md, "Overload"). Memory need not wait for the disk: an entry applied here
 * is in LMDB (the state a snapshot sends) and in the WAL (what a restart replays), so the core
 * may forget it once no follower needs it from the log. So once the log holds --snapshot-bytes
 * the core drops what is applied, keeping compaction_keep() entries and, on a leader, what a
 * follower has not acknowledged yet, as long as the log stays within twice the budget; a
 * follower further behind is sent a snapshot, as it would be after the next checkpoint. The
 * checkpoint and the WAL's compaction follow later as before (g->compacted is theirs). */
void node_trim_log(struct node *n, struct node_group *g)
{
	uint64_t budget = n->cfg.snapshot_bytes;
	if (budget == 0 || g->raft == NULL)
		return;
	uint64_t bytes = raft_log_bytes_of(g->raft);
	if (bytes < budget)
		return;
	raft_index applied = raft_applied_of(g->raft), first = raft_first_index(g->raft);
	raft_index keep = compaction_keep(n, g);
	raft_index upto = applied > keep ? applied - keep : 0; /* the new first index - 1 */
	if (raft_role_of(g->raft) == RAFT_LEADER && bytes < 2 * budget) {
		const struct raft_conf *c = raft_conf_of(g->raft);
		raft_id self = raft_id_of(g->raft);
		for (uint32_t i = 0; i < c->n_voters + c->n_learners; i++) {
			raft_id id = i < c->n_voters ? c->voters[i] : c->learners[i - c->n_voters];
			raft_index m = id == self ? applied : raft_peer_match(g->raft, id);
			if (m < upto)
				upto = m;
		}
	}
	if (upto < first)
		return; /* nothing to drop */
	int rc = raft_compact(g->raft, applied, applied - upto);
	if (rc != RAFT_OK)
		return; /* applied ahead of the log (after a restart): the checkpoint's turn */
	g->trimmed_bytes += bytes - raft_log_bytes_of(g->raft);
}

void node_maybe_compact(struct node *n)
{
	uint32_t G = node_groups_all(n);
	uint64_t now = node_now_ms(n);
	for (uint32_t i = 0; i < G; i++)
		for (size_t k = 0; k < NODE_NODES_MAX; k++) {
			struct node_snap_out *s = &n->groups[i].snaps[k];
			if (s->to != 0 && now > s->used_ms + NODE_SNAP_IDLE_MS) {
				node_log(NODE_LOG_INFO, n->groups[i].id,
					 "idle snapshot stream closed to=%llu",
					 (unsigned long long)s->to);
				slot_close(s);
			}
		}
	/* A checkpoint is due before a compaction, and otherwise --checkpoint-ms after the
	 * last one once something was applied since: it is the rollback point after a power
	 * loss, so this bounds the WAL replayed then and the pages the pinned checkpoint keeps
	 * from reuse (kv/checkpoint.c, docs/DURABILITY.md). One at a time. */
	if (n->ckpt != NULL)
		return;
	bool need = false, written = false;
	for (uint32_t i = 0; i < G; i++) {
		struct node_group *g = &n->groups[i];
		if (g->raft == NULL)
			continue;
		if (compaction_due(n, g))
			need = true;
		if (raft_applied_of(g->raft) != g->ckpt_applied)
			written = true;
	}
	if (!need && !(written && n->cfg.checkpoint_ms > 0 &&
		       now >= n->ckpt_ms + n->cfg.checkpoint_ms))
		return;
	checkpoint_begin(n, need);
}

/* The checkpoint's begin, on this thread: what T (the newest commit) holds of each group, and
 * which state of each group that was. Its syncs run in the shell (io.checkpoint), so the loop
 * keeps ticking, taking requests and answering peers while the disk works: on a busy disk a
 * sync of the pages a restart's replay wrote took seconds, long enough for elections. */
static void checkpoint_begin(struct node *n, bool need)
{
	uint32_t G = node_groups_all(n);
	struct node_ckpt *c = calloc(1, sizeof *c + (size_t)G * sizeof c->g[0]);
	if (c == NULL)
		return;
	int rc = kv_checkpoint_begin(n->kv, G, &c->kv);
	if (rc == KV_ENOSPC)
		node_stop_disk_full(n, 0, "beginning an LMDB checkpoint");
	if (rc != KV_OK) {
		node_log(NODE_LOG_WARN, 0, "checkpoint failed error=\"%s\"", kv_strerror(rc));
		free(c);
		return;
	}
	c->need = need;
	c->groups = G;
	c->begun_ms = node_now_ms(n);
	for (uint32_t i = 0; i < G; i++) {
		struct node_group *g = &n->groups[i];
		c->g[i].core = g->raft != NULL;
		c->g[i].gen = g->state_gen;
		c->g[i].applied = g->raft != NULL ? raft_applied_of(g->raft) : 0;
	}
	/* Counted from the begin: a snapshot installed meanwhile sets it to 0 (checkpoint soon) */
	n->ckpt_ms = c->begun_ms;
	n->ckpt = c;
	if (n->io.checkpoint != NULL) {
		n->io.checkpoint(n->io.arg, c->kv);
		return;
	}
	kv_checkpoint_sync(c->kv);
	node_checkpoint_done(n);
}

void node_checkpoint_done(struct node *n)
{
	struct node_ckpt *c = n->ckpt;
	assert(c != NULL);
	n->ckpt = NULL;
	uint32_t G = c->groups;
	raft_index *durable = calloc(G ? G : 1, sizeof *durable);
	int rc = kv_checkpoint_end(n->kv, c->kv, durable);
	if (rc == KV_ENOSPC)
		node_stop_disk_full(n, 0, "syncing LMDB for a checkpoint");
	if (rc != KV_OK || durable == NULL) {
		node_log(NODE_LOG_WARN, 0, "checkpoint failed error=\"%s\"",
			 kv_strerror(rc != KV_OK ? rc : KV_ENOMEM));
		n->ckpt_ms = 0; /* again at the next maintenance */
		free(durable);
		free(c);
		return;
	}
	uint64_t took = node_now_ms(n) - c->begun_ms;
	node_metrics_checkpoint(&n->metrics, took);
	if (took >= NODE_CKPT_SLOW_MS)
		node_log(NODE_LOG_WARN, 0, "slow checkpoint took_ms=%llu groups=%u",
			 (unsigned long long)took, G);
	bool need = c->need, held = false;
	for (uint32_t i = 0; i < G && i < node_groups_all(n); i++) {
		struct node_group *g = &n->groups[i];
		/* a group whose state was replaced after the begin: T held its old state */
		if (g->raft == NULL || !c->g[i].core || g->state_gen != c->g[i].gen)
			continue;
		g->ckpt_applied = c->g[i].applied;
		if (!need)
			continue; /* a rollback point only: the WAL and the logs are compacted later */
		raft_index idx = durable[i];
		if (idx > g->checkpointed) {
			rc = wal_batch_checkpoint(n->cur->b, g->id, idx);
			if (rc != WAL_OK)
				node_fatal(n, g->id, "cannot add a checkpoint error=\"%s\"",
					   wal_strerror(rc));
			g->checkpointed = idx;
			n->cur->checkpoint = true;
		}
		if (g->ckpt_floor != 0 && g->checkpointed >= g->ckpt_floor) {
			node_log(NODE_LOG_INFO, g->id,
				 "the rebuilt state machine is checkpointed past the set-aside "
				 "one's checkpoint=%llu",
				 (unsigned long long)g->ckpt_floor);
			g->ckpt_floor = 0;
		}
		if (g->ckpt_floor != 0)
			held = true;
		raft_index applied = raft_applied_of(g->raft);
		if (idx > applied)
			idx = applied;
		if (!compaction_due(n, g) || idx <= g->compacted)
			continue;
		raft_index keep = compaction_keep(n, g);
		rc = raft_compact(g->raft, idx, keep);
		if (rc != RAFT_OK) {
			node_log(NODE_LOG_WARN, g->id, "compaction refused index=%llu error=\"%s\"",
				 (unsigned long long)idx, raft_strerror(rc));
			continue;
		}
		node_log(NODE_LOG_INFO, g->id, "log compacted index=%llu keep=%llu",
			 (unsigned long long)idx, (unsigned long long)keep);
		node_group_compacted(g, idx);
	}
	free(durable);
	free(c);
	/* After LMDB was set aside (a machine crash), the WAL still counts the old environment's
	 * checkpoints: deleting segments by them would drop entries the new one holds unsynced,
	 * so no segment goes until every group is checkpointed as far again (restore.c). */
	if (held)
		n->cur->checkpoint = false;
}

void node_checkpoint_close(struct node *n)
{
	if (n->ckpt == NULL)
		return;
	kv_checkpoint_abort(n->kv, n->ckpt->kv);
	free(n->ckpt);
	n->ckpt = NULL;
}
