/* recover.c — rebuilds the WAL's in-memory state at open, and repairs a torn tail.
 *
 * Segments are replayed in order, batch by batch. Where replay stops (zeroes or a damaged
 * batch) the rest of the log is searched for a later valid batch: if there is none the damage
 * is a write that never completed (the batch was never acknowledged, since acknowledgement
 * follows fdatasync) and it is cut off; if there is one, acknowledged data was damaged, and
 * the open fails with WAL_ECORRUPT naming the segment, offset and group — or, with salvage,
 * the groups concerned are marked corrupt for node/ to rebuild from peers. In the newest
 * segment nothing but zeroes is left after the end of the data: the next batch goes there.
 * Salvage never rewrites a byte it read, so a salvaged WAL reopens to the same state.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wal/wal_internal.h"

struct replay {
	struct wal *w;
	bool salvage;
	struct wal_corruption *corr;
	bool reported;
	bool cache;        /* this segment's batches may stay in the tail cache (see apply_batch) */
	bool have_seq;     /* a batch was applied since the start or the last skipped damage */
	uint64_t last_seq; /* of that batch */
	uint64_t max_seq;
	/* In the segment being replayed: how far the searches at damaged spots read (0 =
	 * none). A torn tail is not cut before it (see replay_segment). */
	size_t damage_reach;
};

static void mark_all_corrupt(struct wal *w)
{
	for (size_t i = 0; i < w->n_groups; i++)
		wal_group_mark_corrupt(w->groups[i]);
	w->salvage_unknown = true;
}

/* Marks the groups whose records lie in the damaged batch; if any header there is unreadable
 * (or the batch's own is), nobody can say which groups lost data: all are marked. `next` is
 * where replay goes on after the damage (a later valid batch, SIZE_MAX if none). A batch
 * whose stated end lies beyond it is not believed either: batches never overlap, so its
 * length or that batch is not what the writer wrote, and its records cannot be told (walking
 * that extent would read later batches, and the bytes after them, as its records). Marking
 * all keeps every lost record's group marked. */
static int salvage_groups(struct wal *w, const uint8_t *map, const struct wal_scan_bad *bad,
			  size_t next)
{
	if (!bad->batch_known || bad->batch_end > next) {
		mark_all_corrupt(w);
		return WAL_OK;
	}
	size_t p = bad->batch_start + WAL_BATCH_HEADER_RECORD_BYTES;
	while (p < bad->batch_end) {
		struct wal_rec_header h;
		const char *problem;
		enum wal_rec_check rc = wal_rec_check(map + p, bad->batch_end - p, &h, &problem);
		if (rc == WAL_RC_ZERO && bad->batch_end - p < WAL_BATCH_PAD_MAX &&
		    wal_scan_zero(map + p, bad->batch_end - p))
			break; /* the batch's padding: its records were all seen */
		if (rc != WAL_RC_OK && rc != WAL_RC_BAD_RECORD) {
			mark_all_corrupt(w);
			return WAL_OK;
		}
		struct wal_group *g;
		int grc = wal_group_get(w, h.group, true, &g);
		if (grc)
			return grc;
		wal_group_mark_corrupt(g);
		p += wal_rec_size(h.length);
	}
	return WAL_OK;
}

/* Records the damage; returns WAL_ECORRUPT unless salvaging. `next`: where replay goes on
 * (see salvage_groups). */
static int damage(struct replay *r, const char *seg_name, uint64_t seg_seq, const uint8_t *map,
		  const struct wal_scan_bad *bad, size_t next, const char *reason)
{
	if (!r->reported && r->corr) {
		memset(r->corr, 0, sizeof *r->corr);
		snprintf(r->corr->segment, sizeof r->corr->segment, "%s", seg_name);
		r->corr->offset = bad->off;
		r->corr->group = bad->group_known ? bad->group : 0;
		r->corr->group_known = bad->group_known;
		snprintf(r->corr->reason, sizeof r->corr->reason, "%s", reason);
	}
	r->reported = true;
	if (!r->salvage)
		return WAL_ECORRUPT;
	r->w->corrupt_seg = seg_seq;
	r->have_seq = false;
	return map ? salvage_groups(r->w, map, bad, next) : (mark_all_corrupt(r->w), WAL_OK);
}

static int apply_batch(struct replay *r, uint64_t seg, const uint8_t *map,
		       const struct wal_scan_batch *b)
{
	size_t cur = 0;
	struct wal_rec_view v;
	while (wal_scan_next_record(map, b, &cur, &v)) {
		int rc = wal_apply_record(r->w, seg, b->seq, &v);
		if (rc)
			return rc;
	}
	/* the newest batches go to the tail cache, as after a write */
	if (r->cache)
		wal_cache_add(r->w, b->seq, seg, b->off, map + b->off, b->bytes);
	r->have_seq = true;
	r->last_seq = b->seq;
	if (b->seq > r->max_seq)
		r->max_seq = b->seq;
	return WAL_OK;
}

/* Replays one segment; on return s->end is where the next batch would go. */
static int replay_segment(struct replay *r, struct wal_segment *s, const uint8_t *map, bool is_last)
{
	struct wal *w = r->w;
	size_t size = (size_t)s->size, off = WAL_SEG_HEADER_BYTES;
	r->damage_reach = 0;
	for (;;) {
		struct wal_scan_batch b;
		struct wal_scan_bad bad;
		enum wal_scan_outcome o = wal_scan_batch(map, size, off, s->nonce, &b, &bad);
		if (o == WAL_SCAN_OK) {
			if (r->have_seq && b.seq != r->last_seq + 1) {
				char why[128];
				snprintf(why, sizeof why, "batch sequence gap: %llu after %llu",
					 (unsigned long long)b.seq,
					 (unsigned long long)r->last_seq);
				bad.off = off;
				int rc = damage(r, s->name, s->seq, NULL, &bad, off, why);
				if (rc)
					return rc;
			}
			int rc = apply_batch(r, s->seq, map, &b);
			if (rc)
				return rc;
			off += b.bytes;
			continue;
		}
		size_t next = wal_scan_find(map, size, off + WAL_REC_ALIGN,
					    r->have_seq ? r->last_seq + 1 : 0, s->nonce);
		if (o == WAL_SCAN_END && next == SIZE_MAX) {
			/* The end of this segment's data. In the newest segment, non-zero bytes
			 * after it (no valid batch among them) are a torn tail too: the later part
			 * of a batch whose start never landed, or bytes of a batch that was not
			 * the next one. The next batch is written here, and the bytes left after
			 * its end would then follow it: read as a damaged batch, or as a valid one
			 * out of sequence, they would make the next open refuse (or, salvaging,
			 * mark every group). They go now, as any torn tail. Not inside an extent
			 * that searches at damaged spots read (below): no batch goes there. */
			size_t lo, hi;
			if (is_last && off >= r->damage_reach &&
			    wal_scan_nonzero(map, size, off, &lo, &hi)) {
				int rc = wal_cut_back(w, s, lo, hi - lo);
				if (rc)
					return rc;
			}
			break;
		}
		/* The searches at damaged spots before read whole batch extents, some of which may
		 * reach past this point: cutting those bytes off would make the next open judge
		 * them otherwise (a damaged batch, or one passed over by the search for the next
		 * valid batch, could pass once junk in it is zeroed, and replay would take it).
		 * Only a valid batch inside such an extent (never written so: batches do not
		 * overlap) brings replay there; then the damage is not a torn tail. */
		if (o == WAL_SCAN_BAD && next == SIZE_MAX && is_last && off >= r->damage_reach) {
			/* torn tail: a batch that was being written when the process stopped */
			int rc = wal_cut_back(w, s, off, s->size - off);
			if (rc)
				return rc;
			break;
		}
		size_t reach =
			wal_scan_reach(map, size, off, next == SIZE_MAX ? size : next, s->nonce);
		if (reach > r->damage_reach)
			r->damage_reach = reach;
		const char *reason = o == WAL_SCAN_END  ? "zeroed region followed by valid batches"
				     : next != SIZE_MAX ? bad.problem
				     : is_last          ? "damage inside an earlier batch's extent"
							: "damaged batch in a sealed segment";
		char why[128];
		if (o == WAL_SCAN_BAD && next == SIZE_MAX)
			snprintf(why, sizeof why, "%s (%s)", reason, bad.problem);
		else
			snprintf(why, sizeof why, "%s", reason);
		int rc = damage(r, s->name, s->seq, map, &bad, next, why);
		if (rc)
			return rc;
		if (next == SIZE_MAX) {
			off = size;
			break;
		}
		off = next;
	}
	/* Nor is the next batch written there: it would change what those searches find at the
	 * next open (junk left after it would be damage, marking every group, the new batch's
	 * too). The segment is taken as full; the next batch starts a new one. */
	if (off < r->damage_reach)
		off = size;
	s->end = off;
	return WAL_OK;
}

static int open_segment(struct wal *w, uint64_t seq, struct wal_segment *s, uint8_t **map)
{
	memset(s, 0, sizeof *s);
	s->seq = seq;
	s->dfd = -1;
	snprintf(s->name, sizeof s->name, WAL_SEG_NAME_FMT, seq);
	s->fd = openat(w->dir_fd, s->name, O_RDWR | O_CLOEXEC);
	if (s->fd < 0) {
		w->last_errno = errno;
		return WAL_EIO;
	}
	struct stat st;
	if (fstat(s->fd, &st) != 0) {
		w->last_errno = errno;
		close(s->fd);
		return WAL_EIO;
	}
	s->size = (uint64_t)st.st_size;
	*map = NULL;
	if (s->size > 0) {
		void *m = mmap(NULL, s->size, PROT_READ, MAP_SHARED, s->fd, 0);
		if (m == MAP_FAILED) {
			w->last_errno = errno;
			close(s->fd);
			return WAL_EIO;
		}
		*map = m;
	}
	return WAL_OK;
}

int wal_recover(struct wal *w, bool salvage, struct wal_corruption *corr)
{
	uint64_t *seqs;
	size_t n;
	int rc = wal_seg_list(w->dir, &seqs, &n);
	if (rc)
		return rc;
	struct replay r = {.w = w, .salvage = salvage, .corr = corr};
	for (size_t i = 0; i < n && rc == WAL_OK; i++) {
		bool is_last = i + 1 == n;
		struct wal_segment s;
		uint8_t *map;
		rc = open_segment(w, seqs[i], &s, &map);
		if (rc)
			break;
		if (!wal_seg_header_valid(map, (size_t)s.size, s.seq, &s.nonce)) {
			bool data = map && wal_scan_has_batch(map, (size_t)s.size);
			if (map)
				munmap(map, s.size);
			close(s.fd);
			if (is_last && !data) { /* crashed while creating it: nothing was in it */
				if (unlinkat(w->dir_fd, s.name, 0) != 0) {
					w->last_errno = errno;
					rc = WAL_EIO;
				} else {
					rc = wal_fsync_dir(w);
				}
				break;
			}
			struct wal_scan_bad bad = {.off = 0};
			rc = damage(&r, s.name, s.seq, NULL, &bad, SIZE_MAX, "bad segment header");
			continue; /* salvage: the whole segment is skipped */
		}
		/* Only the last segments' batches can stay in the cache: copying the older ones
		 * would be undone by the newer. Estimated with the configured segment size. */
		r.cache = w->opts.cache_bytes &&
			  (uint64_t)(n - i - 1) * w->opts.segment_bytes < w->opts.cache_bytes;
		rc = replay_segment(&r, &s, map, is_last);
		if (map)
			munmap(map, s.size);
		if (rc == WAL_OK && is_last)
			wal_seg_open_direct(w, &s); /* the active segment, unless it is full */
		if (rc == WAL_OK)
			rc = wal_segs_push(w, &s);
		if (rc)
			wal_seg_close(&s);
	}
	uint64_t next_seg = n ? seqs[n - 1] + 1 : 1;
	free(seqs);
	if (rc)
		return rc;
	w->salvage_unknown = false; /* groups created from now on are healthy */
	w->next_batch_seq = r.max_seq + 1;
	const struct wal_segment *last = w->n_segs ? &w->segs[w->n_segs - 1] : NULL;
	if (!last || last->seq + 1 != next_seg || last->end >= last->size) {
		/* no usable active segment: none yet, the newest file was dropped or skipped,
		 * or it is full. Names above every existing file keep the order clear. */
		struct wal_segment s;
		rc = wal_seg_create(w, next_seg, w->opts.segment_bytes, &s);
		if (rc)
			return rc;
		rc = wal_segs_push(w, &s);
		if (rc) {
			wal_seg_close(&s);
			return rc;
		}
	}
	return WAL_OK;
}
