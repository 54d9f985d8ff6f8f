/* test_recovery.c — damage on copies of real WAL files, and injected I/O failures.
 *
 * Torn tails (zeroes or garbage after any cut point of the last batch) are cut off at open
 * and the log keeps working; a bit flipped anywhere before the last batch is reported as
 * WAL_ECORRUPT with its segment, offset and group, never accepted silently; salvage marks the
 * damaged groups for rebuilding. ENOSPC leaves the log unchanged; a failed fdatasync makes
 * the WAL refuse every later write.
 */
#include <errno.h>

#include "tests/unit/wal/wal_test_util.h"
#include "wal/format.h"

struct batch_pos {
	char segment[64];
	uint64_t off, end;
};

struct positions {
	struct batch_pos b[256];
	size_t n;
	size_t bad, torn;
	struct wal_record_info last_bad;
};

static int collect(const struct wal_record_info *r, void *arg)
{
	struct positions *p = arg;
	if (r->type == WAL_REC_BAD) {
		p->bad += !r->torn_tail;
		p->torn += r->torn_tail;
		return 0;
	}
	if (r->type == WAL_REC_BATCH) {
		ck_assert_uint_lt(p->n, 256);
		snprintf(p->b[p->n].segment, sizeof p->b[p->n].segment, "%s", r->segment);
		p->b[p->n].off = r->offset;
		p->n++;
	}
	/* every record extends its batch's end */
	p->b[p->n - 1].end = r->offset + ((20u + r->length + 7u) & ~7u);
	return 0;
}

static struct positions walk_positions(const char *dir)
{
	struct positions p;
	memset(&p, 0, sizeof p);
	ck_assert_int_eq(wal_walk(dir, collect, &p), 0);
	return p;
}

static struct wal_options opts(void)
{
	struct wal_options o;
	wal_options_default(&o);
	o.segment_bytes = 8 << 10;
	o.no_sync = true; /* the damage is made by hand here */
	return o;
}

/* One group per batch (group = 1 + i % 3), entries 1.. per group, 4 per batch. */
static void build(const char *dir, int batches)
{
	struct wal_options o = opts();
	struct wal *w = open_ok(dir, &o);
	struct wal_batch *b = wal_batch_new();
	raft_index next[4] = {1, 1, 1, 1};
	for (int i = 0; i < batches; i++) {
		uint64_t g = 1 + (uint64_t)i % 3;
		wal_batch_reset(b);
		add_entries(b, g, next[g], next[g] + 4, 1);
		next[g] += 4;
		write_ok(w, b);
	}
	wal_batch_free(b);
	wal_close(w);
}

static void patch(const char *dir, const char *segment, uint64_t off, const void *bytes, size_t n)
{
	char path[600];
	snprintf(path, sizeof path, "%s/%s", dir, segment);
	int fd = open(path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, bytes, n, (off_t)off), (ssize_t)n);
	close(fd);
}

static uint8_t peek(const char *dir, const char *segment, uint64_t off)
{
	char path[600];
	snprintf(path, sizeof path, "%s/%s", dir, segment);
	int fd = open(path, O_RDONLY);
	uint8_t v = 0;
	ck_assert_int_eq(pread(fd, &v, 1, (off_t)off), 1);
	close(fd);
	return v;
}

static raft_index last_of(struct wal *w, uint64_t g)
{
	const struct wal_group_state *st = wal_group_find(w, g);
	return st ? st->last_index : 0;
}

START_TEST(test_torn_tail_is_cut)
{
	char *dir = tmp_dir(), *copy;
	build(dir, 10);
	struct positions p = walk_positions(dir);
	ck_assert_uint_eq(p.n, 10);
	ck_assert_uint_eq(p.bad + p.torn, 0);
	struct batch_pos last = p.b[p.n - 1];
	uint64_t g_last = 1 + 9 % 3;
	ck_assert_int_gt(asprintf(&copy, "%s.copy", dir), 0);
	srand(3);
	for (uint64_t cut = last.off; cut < last.end; cut += 3) {
		for (int garbage = 0; garbage < 2; garbage++) {
			copy_dir(dir, copy);
			uint8_t junk[4096];
			for (size_t i = 0; i < sizeof junk; i++)
				junk[i] = garbage ? (uint8_t)rand() : 0;
			if (garbage && cut == last.off)
				junk[4] = 0x77; /* not a BATCH record by chance */
			patch(copy, last.segment, cut, junk, last.end - cut);
			struct positions before = walk_positions(copy);
			ck_assert_uint_eq(before.bad, 0);
			/* all zeroes from the batch's start: it simply never landed */
			ck_assert_uint_eq(before.torn, cut == last.off && !garbage ? 0 : 1);
			struct wal_options o = opts();
			struct wal *w = open_ok(copy, &o);
			ck_assert_uint_eq(last_of(w, g_last),
					  12); /* the last batch (13..16) is gone */
			ck_assert_uint_eq(last_of(w, 2), 12);
			/* the log goes on from there */
			struct wal_batch *b = wal_batch_new();
			add_entries(b, g_last, 13, 15, 2);
			write_ok(w, b);
			wal_batch_free(b);
			wal_close(w);
			struct positions after = walk_positions(copy);
			ck_assert_uint_eq(after.bad + after.torn, 0);
			w = open_ok(copy, &o);
			ck_assert_uint_eq(last_of(w, g_last), 14);
			struct raft_entry *e;
			size_t n;
			ck_assert_int_eq(wal_read_entries(w, g_last, 13, 15, SIZE_MAX, &e, &n), 0);
			ck_assert_uint_eq(n, 2);
			check_entry(g_last, &e[0], 2);
			check_entry(g_last, &e[1], 2);
			wal_entries_free(e, n);
			wal_close(w);
			tmp_rmdir(copy);
		}
	}
	free(copy);
	tmp_rmdir(dir);
	free(dir);
}
END_TEST

/* A bit flipped in any batch but the last is corruption, reported with where it is. */
START_TEST(test_bit_flips_are_reported)
{
	char *dir = tmp_dir(), *copy;
	build(dir, 40);
	struct positions p = walk_positions(dir);
	ck_assert_uint_eq(p.n, 40);
	ck_assert_str_ne(p.b[0].segment, p.b[p.n - 1].segment); /* several segments */
	ck_assert_int_gt(asprintf(&copy, "%s.copy", dir), 0);
	size_t tried = 0;
	for (size_t bi = 0; bi + 1 < p.n; bi += 3) {
		const struct batch_pos *bp = &p.b[bi];
		uint64_t g = 1 + bi % 3;
		for (uint64_t off = bp->off; off < bp->end; off += 5 + bi % 7) {
			copy_dir(dir, copy);
			uint8_t v = peek(copy, bp->segment, off) ^ (uint8_t)(1u << (off % 8));
			patch(copy, bp->segment, off, &v, 1);
			struct wal_options o = opts();
			struct wal *w = NULL;
			struct wal_corruption c;
			int rc = wal_open(copy, &o, false, &w, &c);
			ck_assert_msg(rc == WAL_ECORRUPT, "flip at %s+%llu accepted (%s)",
				      bp->segment, (unsigned long long)off, wal_strerror(rc));
			ck_assert_ptr_null(w);
			ck_assert_str_eq(c.segment, bp->segment);
			ck_assert_uint_ge(c.offset, bp->off);
			ck_assert_uint_le(c.offset, off);
			if (c.group_known)
				ck_assert_msg(c.group == g, "flip at %llu: %s at %llu group %llu",
					      (unsigned long long)off, c.reason,
					      (unsigned long long)c.offset,
					      (unsigned long long)c.group);
			ck_assert(strlen(c.reason) > 0);
			struct positions wp = walk_positions(copy);
			ck_assert_uint_ge(wp.bad, 1);

			/* salvage: the damaged group is marked, the others are intact */
			ck_assert_int_eq(wal_open(copy, &o, true, &w, &c), WAL_OK);
			ck_assert(wal_group_find(w, g)->corrupt);
			for (uint64_t h = 1; h <= 3; h++) {
				if (h == g)
					continue;
				const struct wal_group_state *st = wal_group_find(w, h);
				if (!st->corrupt) /* only when the damage said whose it was */
					ck_assert_uint_gt(st->last_index, 0);
				if (c.group_known)
					ck_assert(!st->corrupt);
			}
			wal_close(w);
			tmp_rmdir(copy);
			tried++;
		}
	}
	ck_assert_uint_gt(tried, 100);
	/* the segment header too */
	copy_dir(dir, copy);
	uint8_t v = peek(copy, p.b[0].segment, 3) ^ 1;
	patch(copy, p.b[0].segment, 3, &v, 1);
	struct wal_options o = opts();
	struct wal *w = NULL;
	struct wal_corruption c;
	ck_assert_int_eq(wal_open(copy, &o, false, &w, &c), WAL_ECORRUPT);
	ck_assert_str_eq(c.segment, p.b[0].segment);
	ck_assert_uint_eq(c.offset, 0);
	tmp_rmdir(copy);
	free(copy);
	tmp_rmdir(dir);
	free(dir);
}
END_TEST

/* Where batches are written with O_DIRECT they end with zero padding up to a sector
 * boundary; a byte changed there is damage like any other (the padding is checked to be zero),
 * reported where the batch's records end. */
START_TEST(test_padding_damage_is_corruption)
{
	if (dio_align_of_tmp() == 0) {
		fprintf(stderr,
			"padding test: the temporary file system has no O_DIRECT: no padding "
			"to damage\n");
		return;
	}
	char *dir = tmp_dir(), *copy;
	build(dir, 40);
	struct positions p = walk_positions(dir);
	ck_assert_int_gt(asprintf(&copy, "%s.copy", dir), 0);
	size_t tried = 0;
	for (size_t bi = 0; bi + 2 < p.n; bi++) {
		const struct batch_pos *bp = &p.b[bi], *next = &p.b[bi + 1];
		if (strcmp(bp->segment, next->segment) != 0 || next->off == bp->end)
			continue; /* no padding after this one */
		uint64_t off = bp->end + (next->off - bp->end) / 2;
		copy_dir(dir, copy);
		uint8_t v = 0x40;
		patch(copy, bp->segment, off, &v, 1);
		struct wal_options o = opts();
		struct wal *w = NULL;
		struct wal_corruption c;
		ck_assert_int_eq(wal_open(copy, &o, false, &w, &c), WAL_ECORRUPT);
		ck_assert_str_eq(c.segment, bp->segment);
		ck_assert_uint_eq(c.offset, bp->end);
		ck_assert_str_eq(c.reason, "batch longer than its records");
		struct positions wp = walk_positions(copy);
		ck_assert_uint_ge(wp.bad, 1);
		tmp_rmdir(copy);
		tried++;
	}
	ck_assert_uint_gt(tried, 20);
	free(copy);
	tmp_rmdir(dir);
	free(dir);
}
END_TEST

/* A zeroed block in the middle of the log (lost write) is corruption, not an end. */
START_TEST(test_zeroed_hole_is_corruption)
{
	char *dir = tmp_dir();
	build(dir, 6);
	struct positions p = walk_positions(dir);
	uint8_t z[4096] = {0};
	patch(dir, p.b[2].segment, p.b[2].off, z, p.b[2].end - p.b[2].off);
	struct wal_options o = opts();
	struct wal *w = NULL;
	struct wal_corruption c;
	ck_assert_int_eq(wal_open(dir, &o, false, &w, &c), WAL_ECORRUPT);
	ck_assert_uint_eq(c.offset, p.b[2].off);
	ck_assert(!c.group_known);
	/* salvage without knowing whose data was lost: every group must be rebuilt */
	ck_assert_int_eq(wal_open(dir, &o, true, &w, &c), WAL_OK);
	for (uint64_t g = 1; g <= 3; g++)
		ck_assert(wal_group_find(w, g)->corrupt);
	/* rebuilding group 1 from a peer: a snapshot marker makes it whole again */
	struct wal_batch *b = wal_batch_new();
	ck_assert_int_eq(wal_batch_snapshot(b, 1, 0, 0, NULL), WAL_OK);
	add_entries(b, 1, 1, 4, 5);
	write_ok(w, b);
	wal_close(w);
	ck_assert_int_eq(wal_open(dir, &o, false, &w, &c), WAL_ECORRUPT); /* still there */
	ck_assert_int_eq(wal_open(dir, &o, true, &w, &c), WAL_OK);
	ck_assert(!wal_group_find(w, 1)->corrupt);
	ck_assert_uint_eq(last_of(w, 1), 3);
	ck_assert(wal_group_find(w, 2)->corrupt);
	/* even with every group rebuilt and checkpointed, the damaged segment is kept */
	wal_batch_reset(b);
	for (uint64_t g = 1; g <= 3; g++) {
		ck_assert_int_eq(wal_batch_snapshot(b, g, 100, 5, NULL), WAL_OK);
		ck_assert_int_eq(wal_batch_checkpoint(b, g, 100), WAL_OK);
	}
	for (int i = 0; i < 40; i++) /* fill a few segments */
		add_entries(b, 1, 101 + 4 * (raft_index)i, 105 + 4 * (raft_index)i, 5);
	write_ok(w, b);
	size_t removed;
	ck_assert_int_eq(wal_compact(w, &removed), WAL_OK);
	ck_assert_uint_eq(removed, 0);
	wal_close(w);
	ck_assert_int_eq(wal_open(dir, &o, false, &w, &c), WAL_ECORRUPT);
	wal_batch_free(b);
	tmp_rmdir(dir);
	free(dir);
}
END_TEST

/* The group states an open recovered, to compare two opens. */
struct states {
	struct wal_group_state g[16];
	size_t n;
};

static struct states salvaged_states(const char *dir)
{
	struct wal_options o = opts();
	struct wal *w = NULL;
	struct wal_corruption c;
	ck_assert_int_eq(wal_open(dir, &o, true, &w, &c), WAL_OK);
	struct states s;
	memset(&s, 0, sizeof s);
	s.n = wal_group_count(w);
	ck_assert_uint_le(s.n, 16);
	for (size_t i = 0; i < s.n; i++)
		s.g[i] = *wal_group_at(w, i);
	wal_close(w);
	return s;
}

/* A damaged batch whose BATCH record (valid) states a length running past the next batch and
 * over a damaged last batch. Salvage used to walk that whole extent for the groups to mark:
 * the first open marked group 3, named only in the last batch, then cut that batch off as a
 * torn tail; the second open walked zeroes there and had no group 3. Such an extent is not
 * believed (every group is marked), nothing inside it is cut, and every open recovers the
 * same. */
START_TEST(test_salvage_reopens_the_same)
{
	char *dir = tmp_dir();
	struct wal_options o = opts();
	o.segment_bytes = 64 << 10;
	o.no_direct_io = true; /* batches back to back, no padding between them */
	struct wal *w = open_ok(dir, &o);
	struct wal_batch *b = wal_batch_new();
	for (uint64_t g = 1; g <= 3; g++) { /* batches A, B, C: groups 1, 2, 3 */
		wal_batch_reset(b);
		add_entries(b, g, 1, 5, 1);
		write_ok(w, b);
	}
	wal_batch_free(b);
	wal_close(w);
	struct positions p = walk_positions(dir);
	ck_assert_uint_eq(p.n, 3);
	ck_assert_str_eq(p.b[0].segment, p.b[2].segment);
	ck_assert_uint_eq(p.b[1].off, p.b[0].end);
	ck_assert_uint_eq(p.b[2].off, p.b[1].end);
	const char *seg = p.b[0].segment;
	uint64_t entries_payload = WAL_BATCH_HEADER_RECORD_BYTES + WAL_REC_HEADER_BYTES;

	/* A: its entries record damaged (group still known), its length stretched to C's end and
	 * its BATCH record sealed again, as a writer would have sealed it */
	uint8_t v = peek(dir, seg, p.b[0].off + entries_payload) ^ 1;
	patch(dir, seg, p.b[0].off + entries_payload, &v, 1);
	char path[600];
	snprintf(path, sizeof path, "%s/%s", dir, seg);
	int fd = open(path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	uint8_t rec[WAL_BATCH_HEADER_RECORD_BYTES];
	ck_assert_int_eq(pread(fd, rec, sizeof rec, (off_t)p.b[0].off), (ssize_t)sizeof rec);
	close(fd);
	wal_put32(rec + WAL_REC_HEADER_BYTES + 8, (uint32_t)(p.b[2].end - p.b[0].off));
	wal_rec_seal(rec, WAL_REC_BATCH, wal_get64(rec + 8), WAL_BATCH_BYTES); /* the nonce kept */
	patch(dir, seg, p.b[0].off, rec, sizeof rec);
	/* C: damaged, and last: it would be a torn tail, but it lies inside A's stated extent */
	v = peek(dir, seg, p.b[2].off + entries_payload) ^ 1;
	patch(dir, seg, p.b[2].off + entries_payload, &v, 1);
	struct positions damaged = walk_positions(dir);
	ck_assert_uint_eq(damaged.torn, 0);
	ck_assert_uint_ge(damaged.bad, 2);

	struct wal_corruption c;
	ck_assert_int_eq(wal_open(dir, &o, false, &w, &c), WAL_ECORRUPT);
	ck_assert_uint_eq(c.offset, p.b[0].off + WAL_BATCH_HEADER_RECORD_BYTES);
	ck_assert(c.group_known && c.group == 1);

	struct states first = salvaged_states(dir);
	ck_assert_uint_eq(peek(dir, seg, p.b[2].off + entries_payload), v); /* not cut */
	struct states second = salvaged_states(dir);
	ck_assert_uint_eq(second.n, first.n);
	for (size_t i = 0; i < first.n; i++) {
		ck_assert_uint_eq(second.g[i].group, first.g[i].group);
		ck_assert_int_eq(second.g[i].corrupt, first.g[i].corrupt);
		ck_assert_uint_eq(second.g[i].first_index, first.g[i].first_index);
		ck_assert_uint_eq(second.g[i].last_index, first.g[i].last_index);
		ck_assert_int_eq(second.g[i].has_hard_state, first.g[i].has_hard_state);
	}
	/* nothing of the three batches is taken as healthy: A is damaged, B lies inside A's
	 * stated extent, C is damaged (an absent group starts empty, as a rebuilt one) */
	w = NULL;
	ck_assert_int_eq(wal_open(dir, &o, true, &w, &c), WAL_OK);
	for (uint64_t g = 1; g <= 3; g++) {
		const struct wal_group_state *st = wal_group_find(w, g);
		ck_assert(st == NULL || (st->corrupt && st->last_index == 0));
	}
	wal_close(w);
	tmp_rmdir(dir);
	free(dir);
}
END_TEST

/* A batch D whose last entry holds, 8-aligned, the image of a valid batch B that ends where
 * D's records end, with junk in D's padding (counted in its stated length): D is damaged
 * ("batch longer than its records"). With `lead`, a batch A with a damaged BATCH record comes
 * first, so that D is not met by replay but passed over by the search for the next valid
 * batch. Either way replay went on at B, then took the junk after B for a torn tail and
 * zeroed it: the second open found D whole (taking it in place of B), and recovered other
 * groups. The junk lies inside an extent the first open read, so it is not cut: every open
 * sees it again and recovers the same. */
static void check_batch_holding_batch(bool lead, bool zeroes_first)
{
	char *dir = tmp_dir(), *other = tmp_dir();
	struct wal_options o = opts();
	o.segment_bytes = 64 << 10;
	o.no_direct_io = true;
	/* B: a batch of group 2, written by the WAL in another directory */
	struct wal *w = open_ok(other, &o);
	struct wal_batch *b = wal_batch_new();
	add_entries(b, 2, 1, 3, 1);
	write_ok(w, b);
	wal_close(w);
	struct positions pb = walk_positions(other);
	ck_assert_uint_eq(pb.n, 1);
	size_t blen = (size_t)(pb.b[0].end - pb.b[0].off);
	ck_assert_uint_eq(blen % 8, 0);
	uint8_t data[4 + 512];
	ck_assert_uint_le(blen, sizeof data - 4);
	char path[600];
	snprintf(path, sizeof path, "%s/%s", other, pb.b[0].segment);
	int fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	memset(data, 0x5a, 4); /* B starts 8-aligned after the entry's 52 bytes of headers */
	ck_assert_int_eq(pread(fd, data + 4, blen, (off_t)pb.b[0].off), (ssize_t)blen);
	close(fd);

	/* A (group 3, with `lead`), then D: one entry of group 1 holding B. B's BATCH record
	 * gets the nonce of this directory's segment, as if the writer of the value knew it
	 * (or in a format-1 segment): batch images that pass as batches of the segment. */
	w = open_ok(dir, &o);
	char seg0[600];
	seg_path(dir, 0, seg0, sizeof seg0);
	uint32_t nonce = 0;
	for (int k = 3; k >= 0; k--)
		nonce = nonce << 8 | peek(dir, strrchr(seg0, '/') + 1, 12 + (uint64_t)k);
	ck_assert_uint_ne(nonce, 0);
	wal_rec_seal(data + 4, WAL_REC_BATCH, nonce, WAL_BATCH_BYTES);
	if (lead) {
		wal_batch_reset(b);
		add_entries(b, 3, 1, 5, 1);
		write_ok(w, b);
	}
	wal_batch_reset(b);
	struct raft_entry e = {.index = 1, .term = 1, .data = {.base = data, .len = 4 + blen}};
	ck_assert_int_eq(wal_batch_entries(b, 1, &e, 1), WAL_OK);
	write_ok(w, b);
	wal_batch_free(b);
	wal_close(w);
	struct positions p = walk_positions(dir);
	ck_assert_uint_eq(p.n, lead ? 2 : 1);
	const struct batch_pos d = p.b[p.n - 1];
	const char *seg = p.b[0].segment;
	ck_assert_uint_eq(d.end - d.off, WAL_BATCH_HEADER_RECORD_BYTES + WAL_REC_HEADER_BYTES +
						 WAL_ENTRIES_HEADER_BYTES + WAL_ENTRY_HEADER_BYTES +
						 4 + blen);
	/* junk after D's records, counted in its length (sealed again); with `zeroes_first`,
	 * 48 zero bytes come first, and replay ends cleanly after B, inside D's extent */
	uint8_t junk[48 + 200];
	memset(junk, 0xa5, sizeof junk);
	size_t njunk = zeroes_first ? 48 + 200 : 48;
	if (zeroes_first)
		memset(junk, 0, 48);
	patch(dir, seg, d.end, junk, njunk);
	snprintf(path, sizeof path, "%s/%s", dir, seg);
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	uint8_t rec[WAL_BATCH_HEADER_RECORD_BYTES];
	ck_assert_int_eq(pread(fd, rec, sizeof rec, (off_t)d.off), (ssize_t)sizeof rec);
	close(fd);
	wal_put32(rec + WAL_REC_HEADER_BYTES + 8, (uint32_t)(d.end + njunk - d.off));
	wal_rec_seal(rec, WAL_REC_BATCH, nonce, WAL_BATCH_BYTES);
	patch(dir, seg, d.off, rec, sizeof rec);
	if (lead) { /* A's BATCH record fails its CRC */
		uint8_t v = peek(dir, seg, p.b[0].off + WAL_REC_HEADER_BYTES) ^ 1;
		patch(dir, seg, p.b[0].off + WAL_REC_HEADER_BYTES, &v, 1);
	}

	struct wal_corruption c;
	struct positions damaged = walk_positions(dir);
	ck_assert_uint_eq(damaged.torn, 0); /* the junk is no torn tail: it is inside D */
	ck_assert_uint_ge(damaged.bad, zeroes_first ? 1 : 2); /* after zeroes: a clean end */
	ck_assert_int_eq(wal_open(dir, &o, false, &w, &c), WAL_ECORRUPT);
	ck_assert_str_eq(c.reason,
			 lead ? "record CRC32C mismatch" : "batch longer than its records");
	struct states first = salvaged_states(dir);
	struct states second = salvaged_states(dir);
	ck_assert_uint_eq(second.n, first.n);
	for (size_t i = 0; i < first.n; i++) {
		ck_assert_uint_eq(second.g[i].group, first.g[i].group);
		ck_assert_int_eq(second.g[i].corrupt, first.g[i].corrupt);
		ck_assert_uint_eq(second.g[i].last_index, first.g[i].last_index);
	}
	ck_assert_uint_eq(peek(dir, seg, d.end + njunk - 1), 0xa5); /* not cut */
	w = NULL;
	ck_assert_int_eq(wal_open(dir, &o, true, &w, &c), WAL_OK);
	for (uint64_t g = 1; g <= 3; g++) {
		const struct wal_group_state *st = wal_group_find(w, g);
		ck_assert(st == NULL || (st->corrupt && st->last_index == 0));
	}
	/* a group started after the salvage (as node/ starts one: a snapshot marker first) is
	 * found by the next open: the batch is not written among bytes those searches read */
	b = wal_batch_new();
	struct raft_hard_state hs = {.term = 77, .vote = 1};
	ck_assert_int_eq(wal_batch_snapshot(b, 9, 0, 0, NULL), WAL_OK);
	ck_assert_int_eq(wal_batch_hard_state(b, 9, &hs), WAL_OK);
	write_ok(w, b);
	wal_batch_free(b);
	wal_close(w);
	ck_assert_int_eq(wal_open(dir, &o, true, &w, &c), WAL_OK);
	const struct wal_group_state *st = wal_group_find(w, 9);
	ck_assert(st != NULL && !st->corrupt && st->has_hard_state && st->hard_state.term == 77);
	wal_close(w);
	tmp_rmdir(other);
	free(other);
	tmp_rmdir(dir);
	free(dir);
}

START_TEST(test_salvage_keeps_bytes_of_a_damaged_batch)
{
	check_batch_holding_batch(false, false);
}
END_TEST

START_TEST(test_salvage_keeps_bytes_the_search_read)
{
	check_batch_holding_batch(true, false);
}
END_TEST

/* The same with zeroes between B's end and the junk: replay ends cleanly after B, inside D's
 * extent. A batch written there used to leave the junk behind it, where the next open found
 * damage marking every group, the new one too. */
START_TEST(test_salvage_writes_past_bytes_the_search_read)
{
	check_batch_holding_batch(true, true);
}
END_TEST

/* Bytes of an old batch left after the end of the newest segment's data, beyond a run of
 * zeroes (here: a copy of the first batch, where the next batch will end). They are a torn
 * tail: the walk says so, and the open cuts them. Left there, the next batch written at the
 * end of the data would be followed by them, and the open after it would find an old batch
 * out of sequence and refuse (fuzz_wal, tests/fuzz/corpus/wal/regress-stale-batch-after-end). */
START_TEST(test_stale_batch_after_the_end_is_cut)
{
	char *dir = tmp_dir(), *copy;
	build(dir, 6);
	struct positions p = walk_positions(dir);
	ck_assert_uint_eq(p.n, 6);
	ck_assert_str_eq(p.b[0].segment, p.b[5].segment);
	struct wal_options o = opts();

	/* where the next batch ends, learnt on a copy */
	ck_assert_int_gt(asprintf(&copy, "%s.copy", dir), 0);
	copy_dir(dir, copy);
	struct wal *w = open_ok(copy, &o);
	struct wal_batch *b = wal_batch_new();
	add_entries(b, 1, 9, 13, 2);
	write_ok(w, b);
	wal_close(w);
	struct positions q = walk_positions(copy);
	ck_assert_uint_eq(q.n, 7);
	uint64_t align = dio_align_of_tmp(); /* a direct write ends on a sector: its padding */
	if (align < 8)
		align = 8;
	uint64_t at = (q.b[6].end + align - 1) / align * align;
	tmp_rmdir(copy);

	/* the first batch's bytes, again, from there */
	size_t len = (size_t)(p.b[0].end - p.b[0].off);
	uint8_t *old = malloc(len);
	ck_assert_ptr_nonnull(old);
	for (size_t i = 0; i < len; i++)
		old[i] = peek(dir, p.b[0].segment, p.b[0].off + i);
	patch(dir, p.b[5].segment, at, old, len);
	free(old);
	struct positions before = walk_positions(dir);
	ck_assert_uint_eq(before.n, 6);
	ck_assert_uint_eq(before.bad, 0);
	ck_assert_uint_eq(before.torn, 1); /* the next open cuts them */

	w = open_ok(dir, &o);
	ck_assert_uint_eq(last_of(w, 1), 8);
	add_entries(b, 1, 9, 13, 2); /* the same batch as on the copy */
	write_ok(w, b);
	wal_batch_free(b);
	wal_close(w);
	struct positions after = walk_positions(dir);
	ck_assert_uint_eq(after.n, 7);
	ck_assert_uint_eq(after.bad + after.torn, 0);

	w = open_ok(dir, &o);
	ck_assert_uint_eq(last_of(w, 1), 12);
	struct raft_entry *e;
	size_t n;
	ck_assert_int_eq(wal_read_entries(w, 1, 9, 13, SIZE_MAX, &e, &n), 0);
	ck_assert_uint_eq(n, 4);
	for (size_t i = 0; i < n; i++)
		check_entry(1, &e[i], 2);
	wal_entries_free(e, n);
	wal_close(w);
	free(copy);
	tmp_rmdir(dir);
	free(dir);
}
END_TEST

/* A whole batch as a format-1 writer made it (BATCH record, group field 0): seq, then a
 * SNAPSHOT of group 1 at (100, term 666) and its hard state at term 666. Returns its length. */
static size_t forged_batch(uint8_t *out, uint64_t seq)
{
	size_t snap = wal_rec_size(WAL_SNAPSHOT_FIXED_BYTES + 8);
	size_t hs = wal_rec_size(WAL_HARD_STATE_BYTES);
	size_t total = WAL_BATCH_HEADER_RECORD_BYTES + snap + hs;
	memset(out, 0, total);
	uint8_t *p = out + WAL_REC_HEADER_BYTES;
	wal_put64(p, seq);
	wal_put32(p + 8, (uint32_t)total);
	wal_put32(p + 12, 2);
	wal_rec_seal(out, WAL_REC_BATCH, 0, WAL_BATCH_BYTES);
	uint8_t *r = out + WAL_BATCH_HEADER_RECORD_BYTES;
	p = r + WAL_REC_HEADER_BYTES;
	wal_put64(p, 100);
	wal_put64(p + 8, 666);
	wal_put32(p + 16, 1); /* one voter: node 1 */
	wal_put64(p + 24, 1);
	wal_rec_seal(r, WAL_REC_SNAPSHOT, 1, WAL_SNAPSHOT_FIXED_BYTES + 8);
	r += snap;
	p = r + WAL_REC_HEADER_BYTES;
	wal_put64(p, 666);
	wal_put64(p + 8, 1);
	wal_put64(p + 16, 100);
	wal_rec_seal(r, WAL_REC_HARD_STATE, 1, WAL_HARD_STATE_BYTES);
	return total;
}

/* A client's value holding the image of a whole batch, on an 8-byte boundary of the segment,
 * in the last batch, whose first sector never reached the disk (a torn write through the page
 * cache). The search for a later valid batch used to find the image: the open refused the
 * WAL as corrupt, and with salvage replayed the image (group 1 at term 666, healed by its
 * snapshot marker). A format-2 segment's batches carry its nonce, which the image lacks: it
 * is part of the torn tail, cut off (docs/WAL.md, "A batch image inside entry data"). */
START_TEST(test_batch_image_in_entry_data_is_not_replayed)
{
	char *dir = tmp_dir(), *copy;
	build(dir, 3); /* groups 1, 2, 3: entries 1..4 each, batches 1..3 */
	struct wal_options o = opts();
	struct wal *w = open_ok(dir, &o);
	/* the entry's data starts 4 bytes past an 8-byte boundary (its record is aligned) */
	size_t data_at = WAL_BATCH_HEADER_RECORD_BYTES + WAL_REC_HEADER_BYTES +
			 WAL_ENTRIES_HEADER_BYTES + WAL_ENTRY_HEADER_BYTES;
	ck_assert_uint_eq(data_at % 8, 4);
	uint8_t value[4 + 1024 + 256];
	memset(value, 'v', sizeof value);
	size_t image = forged_batch(value + 4 + 1024, 4); /* the seq the search wants next */
	ck_assert_uint_le(4 + 1024 + image, sizeof value);
	struct raft_entry e = {.index = 5, .term = 1, .type = 0};
	e.data.base = value;
	e.data.len = sizeof value;
	struct wal_batch *b = wal_batch_new();
	ck_assert_int_eq(wal_batch_entries(b, 1, &e, 1), WAL_OK);
	write_ok(w, b);
	wal_close(w);
	struct positions p = walk_positions(dir);
	ck_assert_uint_eq(p.n, 4);
	ck_assert_uint_eq(p.bad + p.torn, 0);
	ck_assert_uint_eq((p.b[3].off + data_at + 4 + 1024) % 8, 0);
	static const uint8_t zero[512];
	patch(dir, p.b[3].segment, p.b[3].off, zero, sizeof zero);
	struct positions torn = walk_positions(dir);
	ck_assert_uint_eq(torn.n, 3); /* the image is no batch */
	ck_assert_uint_eq(torn.bad, 0);
	ck_assert_uint_eq(torn.torn, 1);

	ck_assert_int_gt(asprintf(&copy, "%s.copy", dir), 0);
	for (int salvage = 1; salvage >= 0; salvage--) {
		const char *d = salvage ? copy : dir;
		if (salvage)
			copy_dir(dir, copy);
		struct wal_corruption c;
		w = NULL;
		int rc = wal_open(d, &o, salvage, &w, &c);
		ck_assert_msg(rc == WAL_OK, "salvage %d: %s (%s @%llu: %s)", salvage,
			      wal_strerror(rc), c.segment, (unsigned long long)c.offset, c.reason);
		for (size_t i = 0; i < wal_group_count(w); i++) {
			const struct wal_group_state *g = wal_group_at(w, i);
			ck_assert(!g->corrupt);
			ck_assert_uint_ne(g->hard_state.term, 666);
			ck_assert_uint_eq(g->snap_index, 0);
		}
		ck_assert_uint_eq(last_of(w, 1), 4);
		/* the log goes on */
		wal_batch_reset(b);
		add_entries(b, 1, 5, 7, 2);
		write_ok(w, b);
		wal_close(w);
		w = open_ok(d, &o);
		ck_assert_uint_eq(last_of(w, 1), 6);
		wal_close(w);
	}
	wal_batch_free(b);
	tmp_rmdir(copy);
	free(copy);
	tmp_rmdir(dir);
	free(dir);
}
END_TEST

/* Segments written before the nonce (format 1: no nonce in the header, 0 in the BATCH
 * records' group field) are read as before, and the active one takes new batches so. */
START_TEST(test_format_1_segments_are_read)
{
	char *dir = tmp_dir();
	build(dir, 12);
	struct positions p = walk_positions(dir);
	ck_assert_uint_eq(p.n, 12);
	char path[600];
	for (size_t k = 0; seg_path(dir, k, path, sizeof path), path[0]; k++) {
		const char *name = strrchr(path, '/') + 1;
		uint8_t h[WAL_SEG_HEADER_BYTES];
		wal_seg_header_encode(h, strtoull(name, NULL, 16), 0);
		patch(dir, name, 0, h, sizeof h);
	}
	for (size_t i = 0; i < p.n; i++) {
		uint8_t rec[WAL_BATCH_HEADER_RECORD_BYTES];
		for (size_t k = 0; k < sizeof rec; k++)
			rec[k] = peek(dir, p.b[i].segment, p.b[i].off + k);
		ck_assert_uint_ne(wal_get64(rec + 8), 0); /* format 2: the nonce */
		wal_rec_seal(rec, WAL_REC_BATCH, 0, WAL_BATCH_BYTES);
		patch(dir, p.b[i].segment, p.b[i].off, rec, sizeof rec);
	}
	struct positions p1 = walk_positions(dir);
	ck_assert_uint_eq(p1.n, 12);
	ck_assert_uint_eq(p1.bad + p1.torn, 0);

	struct wal_options o = opts();
	o.segment_bytes = 1 << 20; /* the next batch fits in the active (format-1) segment */
	struct wal *w = open_ok(dir, &o);
	ck_assert_uint_eq(last_of(w, 1), 16);
	ck_assert_uint_eq(last_of(w, 2), 16);
	ck_assert_uint_eq(last_of(w, 3), 16);
	struct raft_entry *e;
	size_t n;
	ck_assert_int_eq(wal_read_entries(w, 2, 1, 17, SIZE_MAX, &e, &n), 0);
	ck_assert_uint_eq(n, 16);
	for (size_t i = 0; i < n; i++)
		check_entry(2, &e[i], 1);
	wal_entries_free(e, n);
	struct wal_batch *b = wal_batch_new();
	add_entries(b, 1, 17, 21, 2);
	write_ok(w, b);
	wal_batch_free(b);
	wal_close(w);
	struct positions p2 = walk_positions(dir);
	ck_assert_uint_eq(p2.n, 13);
	ck_assert_uint_eq(p2.bad + p2.torn, 0);
	ck_assert_str_eq(p2.b[12].segment, p.b[11].segment);
	ck_assert_uint_eq(peek(dir, p2.b[12].segment, 8), WAL_SEG_VERSION_1);
	for (size_t k = 8; k < 16; k++)
		ck_assert_uint_eq(peek(dir, p2.b[12].segment, p2.b[12].off + k), 0);
	w = open_ok(dir, &o);
	ck_assert_uint_eq(last_of(w, 1), 20);
	wal_close(w);
	tmp_rmdir(dir);
	free(dir);
}
END_TEST

/* ---------------------------------------------------------------- injected I/O failures */
struct faults {
	int pwrite_enospc_after; /* >0: the write after this many bytes fails with ENOSPC */
	bool fallocate_enospc;
	bool fdatasync_fail;
	int pwrites, fdatasyncs;
};

static ssize_t f_pwrite(int fd, const void *buf, size_t n, off_t off, void *arg)
{
	struct faults *f = arg;
	f->pwrites++;
	if (f->pwrite_enospc_after > 0) {
		size_t part =
			(size_t)f->pwrite_enospc_after < n ? (size_t)f->pwrite_enospc_after : n;
		f->pwrite_enospc_after = -1;
		return pwrite(fd, buf, part, off); /* a short write; the next call fails */
	}
	if (f->pwrite_enospc_after < 0) {
		errno = ENOSPC;
		return -1;
	}
	return pwrite(fd, buf, n, off);
}

static int f_fdatasync(int fd, void *arg)
{
	struct faults *f = arg;
	f->fdatasyncs++;
	if (f->fdatasync_fail) {
		errno = EIO;
		return -1;
	}
	return fdatasync(fd);
}

static int f_fallocate(int fd, off_t len, void *arg)
{
	struct faults *f = arg;
	if (f->fallocate_enospc) {
		errno = ENOSPC;
		return -1;
	}
	return fallocate(fd, 0, 0, len);
}

START_TEST(test_enospc_changes_nothing)
{
	char *dir = tmp_dir();
	struct faults f = {0};
	struct wal_io io = {
		.pwrite = f_pwrite, .fdatasync = f_fdatasync, .fallocate = f_fallocate, .arg = &f};
	struct wal_options o = opts();
	o.no_sync = false;
	o.io = &io;
	struct wal *w = open_ok(dir, &o);
	struct wal_batch *b = wal_batch_new();
	add_entries(b, 1, 1, 5, 1);
	write_ok(w, b);

	wal_batch_reset(b);
	add_entries(b, 1, 5, 9, 1);
	f.pwrite_enospc_after = 50; /* half a batch lands, then the disk is full */
	ck_assert_int_eq(wal_batch_write(w, b), WAL_ENOSPC);
	const struct wal_durable *d;
	ck_assert_uint_eq(wal_batch_durable(b, &d), 0);
	ck_assert_uint_eq(last_of(w, 1), 4);
	struct positions p = walk_positions(dir); /* the partial batch was cut back */
	ck_assert_uint_eq(p.bad + p.torn, 0);
	ck_assert_uint_eq(p.n, 1);

	/* a new segment that cannot be preallocated: ENOSPC, no file left behind */
	f.pwrite_enospc_after = 0;
	f.fallocate_enospc = true;
	wal_batch_reset(b);
	uint8_t big[8000] = {0}; /* does not fit the active segment */
	struct raft_entry e = {.index = 5, .term = 1, .data = {.base = big, .len = sizeof big}};
	ck_assert_int_eq(wal_batch_entries(b, 1, &e, 1), WAL_OK);
	struct wal_stats st;
	wal_stats_get(w, &st);
	ck_assert_int_eq(wal_batch_write(w, b), WAL_ENOSPC);
	struct wal_stats st2;
	wal_stats_get(w, &st2);
	ck_assert_uint_eq(st2.segments, st.segments);
	char path[600];
	seg_path(dir, st.segments, path, sizeof path);
	ck_assert_str_eq(path, "");

	/* space comes back: writing goes on */
	f.fallocate_enospc = false;
	ck_assert_int_eq(wal_batch_write(w, b), WAL_OK);
	wal_batch_reset(b);
	add_entries(b, 1, 6, 9, 1);
	write_ok(w, b);
	wal_close(w);
	o.io = NULL;
	w = open_ok(dir, &o);
	ck_assert_uint_eq(last_of(w, 1), 8);
	struct raft_entry *out;
	size_t n;
	ck_assert_int_eq(wal_read_entries(w, 1, 1, 9, SIZE_MAX, &out, &n), WAL_OK);
	ck_assert_uint_eq(n, 8);
	ck_assert_uint_eq(out[4].data.len, sizeof big);
	check_entry(1, &out[7], 1);
	wal_entries_free(out, n);
	wal_close(w);
	wal_batch_free(b);
	tmp_rmdir(dir);
	free(dir);
}
END_TEST

START_TEST(test_fsync_failure_is_final)
{
	char *dir = tmp_dir();
	struct faults f = {0};
	struct wal_io io = {
		.pwrite = f_pwrite, .fdatasync = f_fdatasync, .fallocate = f_fallocate, .arg = &f};
	struct wal_options o = opts();
	o.no_sync = false;
	o.io = &io;
	struct wal *w = open_ok(dir, &o);
	struct wal_batch *b = wal_batch_new();
	add_entries(b, 1, 1, 3, 1);
	int synced_at_open = f.fdatasyncs; /* making the first segment syncs it */
	write_ok(w, b);
	ck_assert_int_eq(f.fdatasyncs, synced_at_open + 1); /* one per batch */
	f.fdatasync_fail = true;
	wal_batch_reset(b);
	add_entries(b, 1, 3, 5, 1);
	ck_assert_int_eq(wal_batch_write(w, b), WAL_EFSYNC);
	ck_assert_int_eq(wal_errno(w), EIO);
	ck_assert_uint_eq(last_of(w, 1), 2); /* not reported durable */
	/* never retried, even once the disk would work again */
	f.fdatasync_fail = false;
	int pw = f.pwrites, fs = f.fdatasyncs;
	ck_assert_int_eq(wal_batch_write(w, b), WAL_EFSYNC);
	ck_assert_int_eq(f.pwrites, pw);
	ck_assert_int_eq(f.fdatasyncs, fs);
	size_t removed;
	ck_assert_int_eq(wal_compact(w, &removed), WAL_EFSYNC);
	wal_close(w);
	wal_batch_free(b);
	tmp_rmdir(dir);
	free(dir);
}
END_TEST

/* ---------------------------------------------------------------- the offline tool */
static int tool(const char *cmd, const char *dir)
{
	char *argv[] = {"walctl", (char *)cmd, (char *)dir, NULL};
	fflush(stdout);
	int saved = dup(1), null = open("/dev/null", O_WRONLY);
	dup2(null, 1);
	int rc = wal_tool_main(dir ? 3 : 2, argv);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	close(null);
	return rc;
}

/* The tool's exit status with its stderr in err (NUL-terminated, cut to n - 1 bytes). */
static int tool_stderr(const char *cmd, const char *dir, char *err, size_t n)
{
	FILE *f = tmpfile();
	ck_assert_ptr_nonnull(f);
	fflush(stderr);
	int saved = dup(2);
	dup2(fileno(f), 2);
	int rc = tool(cmd, dir);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(f);
	size_t k = fread(err, 1, n - 1, f);
	err[k] = '\0';
	fclose(f);
	return rc;
}

START_TEST(test_tool_bad_path)
{
	char *dir = tmp_dir(), err[512], path[4096];
	snprintf(path, sizeof path, "%s/missing", dir);
	ck_assert_int_eq(tool_stderr("verify", path, err, sizeof err), 2);
	ck_assert_msg(strstr(err, "No such file or directory") && strstr(err, path), "%s", err);
	snprintf(path, sizeof path, "%s/plain-file", dir);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	ck_assert_int_eq(tool_stderr("dump", path, err, sizeof err), 2);
	ck_assert_msg(strstr(err, "not a directory"), "%s", err);
	tmp_rmdir(dir);
	free(dir);
}
END_TEST

START_TEST(test_tool_exit_codes)
{
	char *dir = tmp_dir();
	build(dir, 9);
	ck_assert_int_eq(tool("verify", dir), 0);
	ck_assert_int_eq(tool("dump", dir), 0);
	ck_assert_int_eq(tool("frobnicate", dir), 2);
	ck_assert_int_eq(tool("verify", NULL), 2);
	struct positions p = walk_positions(dir);
	/* torn tail: not corruption */
	uint8_t junk[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	patch(dir, p.b[8].segment, p.b[8].off + 24, junk, sizeof junk);
	ck_assert_int_eq(tool("verify", dir), 0);
	/* mid-log damage: corruption */
	patch(dir, p.b[3].segment, p.b[3].off + 60, junk, sizeof junk);
	ck_assert_int_eq(tool("verify", dir), 1);
	ck_assert_int_eq(tool("dump", dir), 1);
	tmp_rmdir(dir);
	free(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("wal_recovery");
	TCase *tc = tcase_create("recovery");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_torn_tail_is_cut);
	tcase_add_test(tc, test_tool_bad_path);
	tcase_add_test(tc, test_bit_flips_are_reported);
	tcase_add_test(tc, test_zeroed_hole_is_corruption);
	tcase_add_test(tc, test_salvage_reopens_the_same);
	tcase_add_test(tc, test_salvage_keeps_bytes_of_a_damaged_batch);
	tcase_add_test(tc, test_salvage_keeps_bytes_the_search_read);
	tcase_add_test(tc, test_salvage_writes_past_bytes_the_search_read);
	tcase_add_test(tc, test_stale_batch_after_the_end_is_cut);
	tcase_add_test(tc, test_batch_image_in_entry_data_is_not_replayed);
	tcase_add_test(tc, test_format_1_segments_are_read);
	tcase_add_test(tc, test_padding_damage_is_corruption);
	tcase_add_test(tc, test_enospc_changes_nothing);
	tcase_add_test(tc, test_fsync_failure_is_final);
	tcase_add_test(tc, test_tool_exit_codes);
	suite_add_tcase(s, tc);
	return wal_test_run(s);
}
