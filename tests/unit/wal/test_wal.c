/* test_wal.c — the WAL's behaviour through its API: every record kind round-trips through a
 * close and reopen; many groups interleaved in batches; truncate then append; (group, index)
 * lookups from the cache and from disk after reopen; durable reports; compaction; the lock.
 */
#include <pthread.h>

#include "tests/unit/wal/wal_test_util.h"

static struct wal_options small_opts(void)
{
	struct wal_options o;
	wal_options_default(&o);
	o.segment_bytes = 16 << 10; /* many segments: rolls and compaction get exercised */
	o.no_sync = false;
	return o;
}

static void check_range(struct wal *w, uint64_t group, raft_index lo, raft_index hi, raft_term term)
{
	struct raft_entry *e;
	size_t n;
	ck_assert_int_eq(wal_read_entries(w, group, lo, hi, SIZE_MAX, &e, &n), WAL_OK);
	ck_assert_uint_eq(n, hi - lo);
	for (size_t i = 0; i < n; i++) {
		ck_assert_uint_eq(e[i].index, lo + i);
		check_entry(group, &e[i], term);
	}
	wal_entries_free(e, n);
}

START_TEST(test_every_kind_round_trips)
{
	char *dir = tmp_dir();
	struct wal_options o = small_opts();
	struct wal *w = open_ok(dir, &o);
	ck_assert_uint_eq(wal_group_count(w), 0);
	struct wal_batch *b = wal_batch_new();
	struct raft_hard_state hs = {.term = 7, .vote = 3, .commit = 4};
	struct raft_conf conf = {
		.voters = {1, 2, 3}, .n_voters = 3, .learners = {9}, .n_learners = 1};
	ck_assert_int_eq(wal_batch_snapshot(b, 5, 10, 6, &conf), WAL_OK);
	add_entries(b, 5, 11, 21, 6);
	ck_assert_int_eq(wal_batch_hard_state(b, 5, &hs), WAL_OK);
	ck_assert_int_eq(wal_batch_truncate(b, 5, 18), WAL_OK);
	ck_assert_int_eq(wal_batch_checkpoint(b, 5, 12), WAL_OK);
	write_ok(w, b);
	const struct wal_durable *d;
	ck_assert_uint_eq(wal_batch_durable(b, &d), 1);
	ck_assert_uint_eq(d[0].group, 5);
	ck_assert_uint_eq(d[0].index, 17);
	ck_assert_uint_eq(d[0].term, 6);
	wal_close(w);

	w = open_ok(dir, &o);
	ck_assert_uint_eq(wal_group_count(w), 1);
	const struct wal_group_state *g = wal_group_find(w, 5);
	ck_assert_ptr_nonnull(g);
	ck_assert_ptr_eq(g, wal_group_at(w, 0));
	ck_assert(g->has_hard_state);
	ck_assert_uint_eq(g->hard_state.term, 7);
	ck_assert_uint_eq(g->hard_state.vote, 3);
	ck_assert_uint_eq(g->hard_state.commit, 4);
	ck_assert_uint_eq(g->snap_index, 10);
	ck_assert_uint_eq(g->snap_term, 6);
	ck_assert_uint_eq(g->snap_conf.n_voters, 3);
	ck_assert_uint_eq(g->snap_conf.voters[2], 3);
	ck_assert_uint_eq(g->snap_conf.n_learners, 1);
	ck_assert_uint_eq(g->snap_conf.learners[0], 9);
	ck_assert_uint_eq(g->first_index, 11);
	ck_assert_uint_eq(g->last_index, 17);
	ck_assert_uint_eq(g->checkpoint_index, 12);
	ck_assert(!g->corrupt);
	check_range(w, 5, 11, 18, 6);
	ck_assert_ptr_null(wal_group_find(w, 6));
	wal_batch_free(b);
	wal_close(w);
	tmp_rmdir(dir);
	free(dir);
}
END_TEST

/* 40 groups, entries added in many small interleaved batches with occasional truncations
 * and new terms; a model per group says what must be there. */
START_TEST(test_many_groups_interleaved)
{
	enum { G = 40, ROUNDS = 60 };
	char *dir = tmp_dir();
	struct wal_options o = small_opts();
	o.no_sync = true;
	o.cache_bytes = 4096; /* a batch or two: most reads come from disk */
	struct wal *w = open_ok(dir, &o);
	raft_index last[G + 1] = {0};
	raft_term terms[G + 1][ROUNDS * 8 + 2];
	memset(terms, 0, sizeof terms);
	struct wal_batch *b = wal_batch_new();
	srand(42);
	for (int r = 0; r < ROUNDS; r++) {
		wal_batch_reset(b);
		for (uint64_t g = 1; g <= G; g++) {
			if (rand() % 3 == 0)
				continue;
			raft_term t = (raft_term)(r / 10 + 1);
			raft_index from = last[g] + 1;
			if (last[g] > 3 && rand() % 5 == 0) {
				from = last[g] - (raft_index)(rand() % 3);
				ck_assert_int_eq(wal_batch_truncate(b, g, from), WAL_OK);
			}
			raft_index to = from + (raft_index)(rand() % 6);
			if (to > from) {
				add_entries(b, g, from, to, t);
				for (raft_index i = from; i < to; i++)
					terms[g][i] = t;
			}
			last[g] = to - 1;
			struct raft_hard_state hs = {.term = t, .vote = g, .commit = last[g] / 2};
			ck_assert_int_eq(wal_batch_hard_state(b, g, &hs), WAL_OK);
		}
		write_ok(w, b);
		const struct wal_durable *d;
		size_t nd = wal_batch_durable(b, &d);
		for (size_t i = 0; i < nd; i++) {
			ck_assert_uint_eq(d[i].index, last[d[i].group]);
			ck_assert(i == 0 || d[i - 1].group < d[i].group);
		}
	}
	for (int pass = 0; pass < 2; pass++) {
		for (uint64_t g = 1; g <= G; g++) {
			const struct wal_group_state *st = wal_group_find(w, g);
			ck_assert_ptr_nonnull(st);
			ck_assert_uint_eq(st->last_index, last[g]);
			if (!last[g])
				continue;
			ck_assert_uint_eq(st->first_index, 1);
			for (raft_index i = 1; i <= last[g]; i++)
				check_range(w, g, i, i + 1, terms[g][i]);
			/* a range read spanning records, with a byte bound */
			struct raft_entry *e;
			size_t n;
			ck_assert_int_eq(wal_read_entries(w, g, 1, last[g] + 5, 200, &e, &n),
					 WAL_OK);
			size_t bytes = 0;
			for (size_t i = 0; i < n; i++) {
				check_entry(g, &e[i], terms[g][e[i].index]);
				bytes += e[i].data.len;
			}
			ck_assert(n >= 1 && (n == 1 || bytes <= 200));
			wal_entries_free(e, n);
		}
		wal_close(w);
		w = open_ok(dir, &o); /* the second pass reads after a reopen */
	}
	struct raft_entry *e;
	size_t n;
	ck_assert_int_eq(wal_read_entries(w, 1, last[1] + 1, last[1] + 2, SIZE_MAX, &e, &n),
			 WAL_ENOTFOUND);
	ck_assert_int_eq(wal_read_entries(w, G + 5, 1, 2, SIZE_MAX, &e, &n), WAL_ENOTFOUND);
	struct wal_stats st;
	wal_stats_get(w, &st);
	ck_assert_uint_gt(st.segments, 3);
	wal_batch_free(b);
	wal_close(w);
	tmp_rmdir(dir);
	free(dir);
}
END_TEST

START_TEST(test_truncate_then_append)
{
	char *dir = tmp_dir();
	struct wal_options o = small_opts();
	struct wal *w = open_ok(dir, &o);
	struct wal_batch *b = wal_batch_new();
	add_entries(b, 1, 1, 11, 1);
	write_ok(w, b);
	wal_batch_reset(b);
	ck_assert_int_eq(wal_batch_truncate(b, 1, 6), WAL_OK);
	add_entries(b, 1, 6, 9, 2);
	write_ok(w, b);
	/* entries replacing a suffix without an explicit truncation (log matching) */
	wal_batch_reset(b);
	add_entries(b, 1, 8, 10, 3);
	write_ok(w, b);
	for (int pass = 0; pass < 2; pass++) {
		const struct wal_group_state *g = wal_group_find(w, 1);
		ck_assert_uint_eq(g->first_index, 1);
		ck_assert_uint_eq(g->last_index, 9);
		check_range(w, 1, 1, 6, 1);
		check_range(w, 1, 6, 8, 2);
		check_range(w, 1, 8, 10, 3);
		wal_close(w);
		w = open_ok(dir, &o);
	}
	/* truncating everything */
	wal_batch_reset(b);
	ck_assert_int_eq(wal_batch_truncate(b, 1, 1), WAL_OK);
	write_ok(w, b);
	wal_close(w);
	w = open_ok(dir, &o);
	ck_assert_uint_eq(wal_group_find(w, 1)->last_index, 0);
	ck_assert_uint_eq(wal_group_find(w, 1)->first_index, 0);
	wal_batch_free(b);
	wal_close(w);
	tmp_rmdir(dir);
	free(dir);
}
END_TEST

START_TEST(test_lookup_after_reopen_from_disk)
{
	char *dir = tmp_dir();
	struct wal_options o = small_opts();
	o.cache_bytes = 0; /* every read goes to disk through the index */
	struct wal *w = open_ok(dir, &o);
	struct wal_batch *b = wal_batch_new();
	for (raft_index i = 1; i < 500; i += 7) {
		wal_batch_reset(b);
		add_entries(b, 3, i, i + 7, 4);
		add_entries(b, 4, i, i + 7, 5);
		write_ok(w, b);
	}
	wal_close(w);
	w = open_ok(dir, &o);
	for (raft_index i = 1; i < 505; i += 13) {
		check_range(w, 3, i, i + 1, 4);
		check_range(w, 4, i, i + 1, 5);
	}
	check_range(w, 3, 100, 400, 4);
	wal_batch_free(b);
	wal_close(w);
	tmp_rmdir(dir);
	free(dir);
}
END_TEST

/* Segments go once every group's checkpoint passes their entries, and the state survives. */
START_TEST(test_compaction)
{
	enum { N = 1500 };
	char *dir = tmp_dir();
	struct wal_options o = small_opts();
	struct wal *w = open_ok(dir, &o);
	struct wal_batch *b = wal_batch_new();
	struct raft_conf conf = {.voters = {1, 2, 3}, .n_voters = 3};
	wal_batch_reset(b);
	ck_assert_int_eq(wal_batch_snapshot(b, 2, 0, 0, &conf), WAL_OK);
	struct raft_hard_state hs = {.term = 3, .vote = 2, .commit = 1};
	ck_assert_int_eq(wal_batch_hard_state(b, 2, &hs), WAL_OK);
	write_ok(w, b);
	for (raft_index i = 1; i <= N; i += 10) {
		wal_batch_reset(b);
		add_entries(b, 1, i, i + 10, 2);
		if (i < 100)
			add_entries(b, 2, i, i + 10, 3);
		write_ok(w, b);
	}
	struct wal_stats st;
	wal_stats_get(w, &st);
	uint64_t before = st.segments;
	ck_assert_uint_gt(before, 4);
	size_t removed;
	ck_assert_int_eq(wal_compact(w, &removed), WAL_OK);
	ck_assert_uint_eq(removed, 0); /* no checkpoints yet */

	wal_batch_reset(b);
	ck_assert_int_eq(wal_batch_checkpoint(b, 1, N / 2), WAL_OK);
	write_ok(w, b);
	ck_assert_int_eq(wal_compact(w, &removed), WAL_OK);
	ck_assert_uint_eq(removed, 0); /* group 2 still needs the first segment */

	wal_batch_reset(b);
	ck_assert_int_eq(wal_batch_checkpoint(b, 2, 100), WAL_OK);
	write_ok(w, b);
	ck_assert_int_eq(wal_compact(w, &removed), WAL_OK);
	ck_assert_uint_gt(removed, 0);
	const struct wal_group_state *g1 = wal_group_find(w, 1);
	ck_assert_uint_gt(g1->first_index, 1);
	ck_assert_uint_le(g1->first_index, N / 2 + 1); /* nothing past the checkpoint went */
	ck_assert_uint_eq(g1->last_index, N);
	raft_index first1 = g1->first_index;
	wal_stats_get(w, &st);
	ck_assert_uint_lt(st.segments, before);
	struct raft_entry *e;
	size_t n;
	ck_assert_int_eq(wal_read_entries(w, 1, 1, 2, SIZE_MAX, &e, &n), WAL_ENOTFOUND);
	check_range(w, 1, first1, N + 1, 2);
	wal_close(w);

	/* after reopen: same state, group 2's hard state, conf and last entry kept */
	w = open_ok(dir, &o);
	g1 = wal_group_find(w, 1);
	ck_assert_uint_eq(g1->first_index, first1);
	ck_assert_uint_eq(g1->last_index, N);
	ck_assert_uint_eq(g1->checkpoint_index, N / 2);
	check_range(w, 1, first1, N + 1, 2);
	const struct wal_group_state *g2 = wal_group_find(w, 2);
	ck_assert_ptr_nonnull(g2);
	ck_assert(g2->has_hard_state);
	ck_assert_uint_eq(g2->hard_state.term, 3);
	ck_assert_uint_eq(g2->hard_state.vote, 2);
	ck_assert_uint_eq(g2->snap_conf.n_voters, 3);
	ck_assert_uint_eq(g2->checkpoint_index, 100);
	ck_assert_uint_eq(g2->last_index, 100);
	check_range(w, 2, g2->first_index, 101, 3);

	/* everything checkpointed: compaction leaves only what the active segment needs */
	wal_batch_reset(b);
	ck_assert_int_eq(wal_batch_checkpoint(b, 1, N), WAL_OK);
	write_ok(w, b);
	ck_assert_int_eq(wal_compact(w, &removed), WAL_OK);
	wal_stats_get(w, &st);
	ck_assert_uint_le(st.segments, 2);
	wal_close(w);
	w = open_ok(dir, &o);
	ck_assert_uint_eq(wal_group_find(w, 1)->last_index, N);
	check_range(w, 1, wal_group_find(w, 1)->first_index, N + 1, 2);
	ck_assert_uint_eq(wal_group_find(w, 2)->hard_state.term, 3);
	wal_batch_free(b);
	wal_close(w);
	tmp_rmdir(dir);
	free(dir);
}
END_TEST

START_TEST(test_snapshot_resets_log)
{
	char *dir = tmp_dir();
	struct wal_options o = small_opts();
	struct wal *w = open_ok(dir, &o);
	struct wal_batch *b = wal_batch_new();
	add_entries(b, 1, 1, 21, 1);
	write_ok(w, b);
	/* a snapshot matching entry 10: entries after it stay */
	wal_batch_reset(b);
	ck_assert_int_eq(wal_batch_snapshot(b, 1, 10, 1, NULL), WAL_OK);
	write_ok(w, b);
	ck_assert_uint_eq(wal_group_find(w, 1)->first_index, 11);
	ck_assert_uint_eq(wal_group_find(w, 1)->last_index, 20);
	/* a snapshot from another history at 15: the whole log goes */
	wal_batch_reset(b);
	ck_assert_int_eq(wal_batch_snapshot(b, 1, 15, 9, NULL), WAL_OK);
	write_ok(w, b);
	const struct wal_durable *d;
	ck_assert_uint_eq(wal_batch_durable(b, &d), 1);
	ck_assert_uint_eq(d[0].index, 15);
	ck_assert_uint_eq(d[0].term, 9);
	wal_close(w);
	w = open_ok(dir, &o);
	const struct wal_group_state *g = wal_group_find(w, 1);
	ck_assert_uint_eq(g->snap_index, 15);
	ck_assert_uint_eq(g->first_index, 0);
	ck_assert_uint_eq(g->last_index, 0);
	wal_batch_free(b);
	wal_close(w);
	tmp_rmdir(dir);
	free(dir);
}
END_TEST

START_TEST(test_lock_and_bad_arguments)
{
	char *dir = tmp_dir();
	struct wal *w = open_ok(dir, NULL), *w2 = NULL;
	ck_assert_int_eq(wal_open(dir, NULL, false, &w2, NULL), WAL_ELOCKED);
	ck_assert_ptr_null(w2);
	struct wal_batch *b = wal_batch_new();
	struct raft_entry e[2] = {{.index = 1, .term = 1}, {.index = 3, .term = 1}};
	ck_assert_int_eq(wal_batch_entries(b, 1, e, 2), WAL_EINVAL); /* not contiguous */
	e[0].index = 0;
	ck_assert_int_eq(wal_batch_entries(b, 1, e, 1), WAL_EINVAL);
	ck_assert_int_eq(wal_batch_truncate(b, 1, 0), WAL_EINVAL);
	ck_assert(wal_batch_empty(b));
	write_ok(w, b); /* an empty batch is a no-op */
	struct raft_entry *out;
	size_t n;
	ck_assert_int_eq(wal_read_entries(w, 1, 0, 1, 10, &out, &n), WAL_EINVAL);
	wal_close(w);
	ck_assert_int_eq(wal_open(dir, NULL, false, &w2, NULL), WAL_OK);
	wal_close(w2);
	wal_batch_free(b);
	tmp_rmdir(dir);
	free(dir);
}
END_TEST

/* node/ reads from the event loop while a worker thread writes: reads see whole batches. */
struct writer_arg {
	struct wal *w;
	raft_index upto;
};

static void *write_loop(void *arg)
{
	struct writer_arg *a = arg;
	struct wal_batch *b = wal_batch_new();
	for (raft_index i = 1; i <= a->upto; i += 5) {
		wal_batch_reset(b);
		add_entries(b, 1 + i % 7, i, i + 5, 1);
		add_entries(b, 100, i, i + 5, 2);
		ck_assert_int_eq(wal_batch_write(a->w, b), WAL_OK);
	}
	wal_batch_free(b);
	return NULL;
}

START_TEST(test_reads_while_writing)
{
	char *dir = tmp_dir();
	struct wal_options o = small_opts();
	o.no_sync = true;
	o.cache_bytes = 16 << 10; /* reads hit both the cache and the disk */
	struct wal *w = open_ok(dir, &o);
	struct writer_arg a = {.w = w, .upto = 2000};
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, write_loop, &a), 0);
	raft_index seen = 0;
	while (seen < a.upto) {
		struct wal_group_state g;
		raft_index last = wal_group_state_copy(w, 100, &g) == WAL_OK ? g.last_index : 0;
		ck_assert_uint_ge(last, seen);  /* never goes back */
		ck_assert_uint_eq(last % 5, 0); /* whole batches only */
		if (last) {
			raft_index lo = 1 + (last * 7919) % last;
			struct raft_entry *e;
			size_t n;
			ck_assert_int_eq(wal_read_entries(w, 100, lo, last + 1, SIZE_MAX, &e, &n),
					 0);
			ck_assert_uint_ge(n, 1);
			for (size_t i = 0; i < n; i++)
				check_entry(100, &e[i], 2);
			wal_entries_free(e, n);
		}
		seen = last;
		wal_group_count(w);
	}
	pthread_join(t, NULL);
	wal_close(w);
	tmp_rmdir(dir);
	free(dir);
}
END_TEST

/* Overwrites the data bytes of every entry of every group on disk (the records' CRCs then
 * fail): a read that still returns the right bytes came from the tail cache. */
static void damage_segments(const char *dir)
{
	DIR *d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);
		if (n < 4 || strcmp(de->d_name + n - 4, ".wal") != 0)
			continue;
		char path[512];
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		int fd = open(path, O_RDWR);
		ck_assert_int_ge(fd, 0);
		struct stat st;
		ck_assert_int_eq(fstat(fd, &st), 0);
		uint8_t *buf = malloc((size_t)st.st_size);
		ck_assert_int_eq(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
		for (off_t k = 64; k < st.st_size; k += 61) /* every record is hit */
			buf[k] ^= 0x5a;
		ck_assert_int_eq(pwrite(fd, buf, (size_t)st.st_size, 0), st.st_size);
		free(buf);
		close(fd);
	}
	closedir(d);
}

/* 1 if a read of [lo, hi) of group returns the right entries, 0 if it reports corruption. */
static int read_back(struct wal *w, uint64_t group, raft_index lo, raft_index hi, raft_term term)
{
	struct raft_entry *e;
	size_t n;
	int rc = wal_read_entries(w, group, lo, hi, SIZE_MAX, &e, &n);
	if (rc == WAL_ECORRUPT)
		return 0;
	ck_assert_int_eq(rc, WAL_OK);
	ck_assert_uint_eq(n, hi - lo);
	for (size_t i = 0; i < n; i++)
		check_entry(group, &e[i], term);
	wal_entries_free(e, n);
	return 1;
}

/* One tail cache for the whole WAL: the newest batches of every group, within cache_bytes
 * however many groups write; it is filled again at reopen. Entries of batches in it are read
 * from memory (their disk copy is damaged below and they still read right), older ones from
 * disk (the damage is reported, never returned). */
START_TEST(test_tail_cache_holds_the_newest_batches)
{
	enum { G = 8, PER = 50, ROUNDS = 8 };
	char *dir = tmp_dir();
	struct wal_options o = small_opts();
	o.segment_bytes = 1 << 20;
	o.cache_bytes = 64 << 10;
	struct wal *w = open_ok(dir, &o);
	struct wal_batch *b = wal_batch_new();
	struct wal_stats st;
	for (int r = 0; r < ROUNDS; r++) {
		for (uint64_t g = 1; g <= G; g++) { /* one batch per group and round */
			wal_batch_reset(b);
			add_entries(b, g, 1 + (raft_index)r * PER, 1 + (raft_index)(r + 1) * PER,
				    1);
			write_ok(w, b);
		}
		wal_stats_get(w, &st);
		ck_assert_uint_le(st.cache_bytes, o.cache_bytes);
	}
	ck_assert_uint_gt(st.cache_bytes, o.cache_bytes / 2); /* and it is used */
	for (int pass = 0; pass < 2; pass++) {
		damage_segments(dir);
		/* the newest round of every group is cached, the oldest is not */
		for (uint64_t g = 1; g <= G; g++) {
			ck_assert_int_eq(
				read_back(w, g, 1 + (ROUNDS - 1) * PER, 1 + ROUNDS * PER, 1), 1);
			ck_assert_int_eq(read_back(w, g, 1, 1 + PER, 1), 0);
		}
		if (pass == 1)
			break;
		wal_close(w);
		tmp_rmdir(dir);
		ck_assert_int_eq(mkdir(dir, 0755), 0);
		/* again, and this time the cache is filled by the reopen */
		w = open_ok(dir, &o);
		for (int r = 0; r < ROUNDS; r++)
			for (uint64_t g = 1; g <= G; g++) {
				wal_batch_reset(b);
				add_entries(b, g, 1 + (raft_index)r * PER,
					    1 + (raft_index)(r + 1) * PER, 1);
				write_ok(w, b);
			}
		wal_close(w);
		w = open_ok(dir, &o);
		wal_stats_get(w, &st);
		ck_assert_uint_le(st.cache_bytes, o.cache_bytes);
		ck_assert_uint_gt(st.cache_bytes, o.cache_bytes / 2);
	}
	wal_close(w);
	wal_batch_free(b);
	tmp_rmdir(dir);
	free(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("wal");
	TCase *tc = tcase_create("wal");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_every_kind_round_trips);
	tcase_add_test(tc, test_many_groups_interleaved);
	tcase_add_test(tc, test_truncate_then_append);
	tcase_add_test(tc, test_lookup_after_reopen_from_disk);
	tcase_add_test(tc, test_compaction);
	tcase_add_test(tc, test_snapshot_resets_log);
	tcase_add_test(tc, test_lock_and_bad_arguments);
	tcase_add_test(tc, test_reads_while_writing);
	tcase_add_test(tc, test_tail_cache_holds_the_newest_batches);
	suite_add_tcase(s, tc);
	return wal_test_run(s);
}
