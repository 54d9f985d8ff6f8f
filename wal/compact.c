/* compact.c — deletes the oldest segments once no group needs them.
 *
 * A segment may go when, for every group, the entries it wrote there are at or below the
 * group's checkpoint or snapshot (DESIGN.md section 4). Segments go oldest first, so what
 * remains always replays to the same state, provided nothing only the deleted segments knew
 * is lost: before deleting, every group's hard state, snapshot marker and checkpoint — and
 * its last entry if that lived only in a deleted segment (Raft needs its term) — are written
 * again, in one durable batch, into the active segment.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "wal/crashpoint.h"
#include "wal/wal_internal.h"

static bool deletable(const struct wal *w, uint64_t seq)
{
	/* After a salvage the damaged segment stays, and so (oldest first) does everything after
	 * it: without the damage, a later open would replay what salvage ignored. */
	if (w->corrupt_seg && seq <= w->corrupt_seg)
		return false;
	for (size_t i = 0; i < w->n_groups; i++) {
		const struct wal_group *g = w->groups[i];
		raft_index covered = g->st.checkpoint_index > g->st.snap_index
					     ? g->st.checkpoint_index
					     : g->st.snap_index;
		for (size_t k = g->segmax_head; k < g->n_segmax && g->segmax[k].seg <= seq; k++)
			if (g->segmax[k].seg == seq && g->segmax[k].max > covered)
				return false;
	}
	return true;
}

/* The live state of every group, to survive the deletion of segments < keep_seq. */
static int restate(struct wal *w, struct wal_batch *b, uint64_t keep_seq)
{
	for (size_t i = 0; i < w->n_groups; i++) {
		const struct wal_group *g = w->groups[i];
		const struct wal_group_state *st = &g->st;
		if (st->corrupt)
			continue;
		int rc = WAL_OK;
		if (st->has_hard_state)
			rc = wal_batch_hard_state(b, st->group, &st->hard_state);
		if (!rc && (st->snap_index || st->snap_term || st->snap_conf.n_voters ||
			    st->snap_conf.n_learners))
			rc = wal_batch_snapshot(b, st->group, st->snap_index, st->snap_term,
						&st->snap_conf);
		if (!rc && st->checkpoint_index)
			rc = wal_batch_checkpoint(b, st->group, st->checkpoint_index);
		if (!rc && g->n > g->head && g->slots[g->n - 1].seg < keep_seq) {
			struct raft_entry *e;
			size_t n;
			rc = wal_read_entries_locked(w, st->group, st->last_index,
						     st->last_index + 1, SIZE_MAX, &e, &n);
			if (!rc) {
				rc = wal_batch_entries(b, st->group, e, n);
				wal_entries_free(e, n);
			}
		}
		if (rc)
			return rc;
	}
	return WAL_OK;
}

/* With the writer lock: no segment comes or goes meanwhile; the mutex is taken to read the
 * groups (an earlier write may still be indexing) and to change the segment list. */
static int compact(struct wal *w, size_t *segments_removed)
{
	if (w->failed)
		return w->failed;
	pthread_mutex_lock(&w->mu);
	size_t k = 0;
	while (k + 1 < w->n_segs && deletable(w, w->segs[k].seq))
		k++;
	if (k == 0) {
		pthread_mutex_unlock(&w->mu);
		return WAL_OK;
	}
	uint64_t keep_seq = w->segs[k].seq;
	struct wal_batch *b = wal_batch_new();
	int rc = b ? restate(w, b, keep_seq) : WAL_ENOMEM;
	pthread_mutex_unlock(&w->mu);
	if (!rc)
		rc = wal_batch_write_locked(w, b);
	wal_batch_free(b);
	if (rc)
		return rc;
	crash_point("wal.compact.restated");
	/* the batch may have rolled to a new segment: segs[0..k) are still the ones to go. One
	 * at a time, oldest first, each removal made durable before the next: whatever a crash
	 * leaves is a contiguous run of segments (recovery treats a gap in batch numbers inside
	 * the log as corruption). */
	for (size_t i = 0; i < k; i++) {
		if (unlinkat(w->dir_fd, w->segs[i].name, 0) != 0) {
			w->last_errno = errno;
			w->failed = WAL_EIO;
			return WAL_EIO;
		}
		crash_point("wal.compact.unlinked");
		rc = wal_fsync_dir(w);
		if (rc) {
			w->failed = rc;
			return rc;
		}
		crash_point("wal.compact.removed");
	}
	pthread_mutex_lock(&w->mu);
	for (size_t i = 0; i < k; i++)
		wal_seg_close(&w->segs[i]);
	memmove(w->segs, w->segs + k, (w->n_segs - k) * sizeof *w->segs);
	w->n_segs -= k;
	for (size_t i = 0; i < w->n_groups; i++)
		wal_group_drop_segments_below(w->groups[i], keep_seq);
	pthread_mutex_unlock(&w->mu);
	*segments_removed = k;
	return WAL_OK;
}

int wal_compact(struct wal *w, size_t *segments_removed)
{
	*segments_removed = 0;
	pthread_mutex_lock(&w->wmu);
	int rc = compact(w, segments_removed);
	pthread_mutex_unlock(&w->wmu);
	return rc;
}
