/* test_write_paths.c — how a batch reaches the disk and the caller: the early durable report
 * of wal_batch_write_notify (it must equal what the index says afterwards, and reads made as
 * soon as it arrives must see the batch), writes overlapping the previous write's index update
 * (as node/ issues them from the thread pool), and direct writes (sector-aligned batches,
 * zero padding, the same log as through the page cache).
 */
#include <pthread.h>

#include "tests/unit/wal/wal_test_util.h"

static struct wal_options opts(void)
{
	struct wal_options o;
	wal_options_default(&o);
	o.segment_bytes = 64 << 10; /* rolls happen */
	o.cache_bytes = 32 << 10;   /* reads come from memory and from disk */
	return o;
}

/* The last entry's (index, term) of a group as the WAL shows it now; its snapshot point when
 * the log is empty. */
static void log_end(struct wal *w, uint64_t group, raft_index *index, raft_term *term)
{
	struct wal_group_state st;
	if (wal_group_state_copy(w, group, &st) != WAL_OK) {
		*index = *term = 0;
		return;
	}
	if (st.last_index == 0) {
		*index = st.snap_index;
		*term = st.snap_term;
		return;
	}
	struct raft_entry *e;
	size_t n;
	ck_assert_int_eq(
		wal_read_entries(w, group, st.last_index, st.last_index + 1, SIZE_MAX, &e, &n),
		WAL_OK);
	ck_assert_uint_eq(n, 1);
	*index = e[0].index;
	*term = e[0].term;
	wal_entries_free(e, n);
}

struct seen {
	int calls;
	struct wal_durable d[16];
	size_t n;
	bool batch_empty;
};

static void copy_report(struct wal_batch *b, void *arg)
{
	struct seen *s = arg;
	const struct wal_durable *d;
	s->calls++;
	s->n = wal_batch_durable(b, &d);
	ck_assert_uint_le(s->n, 16);
	memcpy(s->d, d, s->n * sizeof *d);
	s->batch_empty = wal_batch_empty(b); /* the caller's again: empty, reusable */
}

/* Random batches of every shape (appends, overwrites with a new term, truncations, hard state
 * alone, checkpoints, snapshots, new groups, several runs of one group): the report given
 * before the index update equals the log's end read back afterwards, for every group. */
START_TEST(test_early_report_matches_the_index)
{
	enum { G = 6, WRITES = 400 };
	char *dir = tmp_dir();
	struct wal_options o = opts();
	o.no_sync = true;
	struct wal *w = open_ok(dir, &o);
	struct wal_batch *b = wal_batch_new();
	raft_index next[G + 1];
	raft_term term[G + 1];
	for (int g = 0; g <= G; g++) {
		next[g] = 1;
		term[g] = 1;
	}
	srand(7);
	for (int k = 0; k < WRITES; k++) {
		wal_batch_reset(b);
		int runs = 1 + rand() % 12; /* repeated groups: the sort must keep their order */
		for (int r = 0; r < runs; r++) {
			uint64_t g = 1 + (uint64_t)(rand() % G);
			int what = rand() % 10;
			if (what < 5) { /* append */
				raft_index lo = next[g], hi = lo + 1 + (raft_index)(rand() % 5);
				add_entries(b, g, lo, hi, term[g]);
				next[g] = hi;
			} else if (what == 5 && next[g] > 3) { /* overwrite a suffix, new term */
				raft_index lo = next[g] - 2;
				term[g]++;
				add_entries(b, g, lo, lo + 3, term[g]);
				next[g] = lo + 3;
			} else if (what == 6 && next[g] > 2) {
				next[g] -= 1;
				ck_assert_int_eq(wal_batch_truncate(b, g, next[g]), WAL_OK);
			} else if (what == 7) {
				struct raft_hard_state hs = {term[g], g, next[g] - 1, false};
				ck_assert_int_eq(wal_batch_hard_state(b, g, &hs), WAL_OK);
			} else if (what == 8) {
				ck_assert_int_eq(wal_batch_checkpoint(b, g, next[g] / 2), WAL_OK);
			} else if (next[g] > 4 && rand() % 4 == 0) {
				/* a snapshot past the log: the log restarts after it */
				term[g]++;
				ck_assert_int_eq(
					wal_batch_snapshot(b, g, next[g] + 3, term[g], NULL),
					WAL_OK);
				next[g] += 4;
			}
		}
		if (wal_batch_empty(b))
			continue;
		struct seen s = {0};
		ck_assert_int_eq(wal_batch_write_notify(w, b, copy_report, &s), WAL_OK);
		ck_assert_int_eq(s.calls, 1);
		ck_assert(s.batch_empty);
		for (size_t i = 0; i < s.n; i++) {
			raft_index index;
			raft_term t;
			log_end(w, s.d[i].group, &index, &t);
			ck_assert_uint_eq(s.d[i].index, index);
			ck_assert_uint_eq(s.d[i].term, t);
			if (i > 0)
				ck_assert_uint_gt(s.d[i].group, s.d[i - 1].group);
		}
		/* the report stays readable on the batch until it is reset */
		const struct wal_durable *d;
		ck_assert_uint_eq(wal_batch_durable(b, &d), s.n);
	}
	wal_batch_free(b);
	wal_close(w);
	tmp_rmdir(dir);
	free(dir);
}
END_TEST

/* node/'s pattern: a loop thread fills the next batch while one is written; each write tells
 * the loop as soon as it is durable and the loop hands the next batch to another worker
 * thread at once, so writes overlap the previous write's index update. Right after each
 * report the loop reads the newest entries of the batch: they must be there. */
struct job {
	struct wal_batch *b;
	int rc;
	bool ready, durable, finished;
};

struct pool {
	struct wal *w;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct job *todo; /* handed out, not yet taken */
	bool quit;
};

static struct job *current; /* the job being written, for the callback (one in flight) */

static void durable_cb(struct wal_batch *b, void *arg)
{
	struct pool *p = arg;
	(void)b;
	pthread_mutex_lock(&p->mu);
	current->durable = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

static void *worker(void *arg)
{
	struct pool *p = arg;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->todo && !p->quit)
			pthread_cond_wait(&p->cv, &p->mu);
		if (!p->todo)
			break;
		struct job *j = p->todo;
		p->todo = NULL;
		current = j;
		pthread_mutex_unlock(&p->mu);
		int rc = wal_batch_write_notify(p->w, j->b, durable_cb, p);
		pthread_mutex_lock(&p->mu);
		j->rc = rc;
		j->finished = true;
		pthread_cond_broadcast(&p->cv);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

START_TEST(test_writes_overlap_the_index_update)
{
	enum { G = 8, BATCHES = 1500 };
	char *dir = tmp_dir();
	struct wal_options o = opts();
	o.no_sync = true;
	struct pool p = {.w = open_ok(dir, &o)};
	pthread_mutex_init(&p.mu, NULL);
	pthread_cond_init(&p.cv, NULL);
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, worker, &p), 0);
	struct job jobs[2];
	for (int i = 0; i < 2; i++)
		jobs[i] = (struct job){.b = wal_batch_new()};
	raft_index next[G + 1];
	for (int g = 0; g <= G; g++)
		next[g] = 1;
	raft_index first_of[2][G + 1];
	int overlapped = 0;
	for (int k = 0; k < BATCHES; k++) {
		struct job *j = &jobs[k % 2];
		/* the batch this job held last time may still be indexing: that is the point */
		pthread_mutex_lock(&p.mu);
		while (j->ready && !j->durable)
			pthread_cond_wait(&p.cv, &p.mu);
		pthread_mutex_unlock(&p.mu);
		wal_batch_reset(j->b);
		memset(first_of[k % 2], 0, sizeof first_of[k % 2]);
		for (int r = 0; r < 3; r++) {
			uint64_t g = 1 + (uint64_t)((k * 3 + r) % G);
			first_of[k % 2][g] = next[g];
			add_entries(j->b, g, next[g], next[g] + 4, 1);
			next[g] += 4;
		}
		/* the previous batch must be durable before this one goes (one in flight) */
		struct job *prev = &jobs[(k + 1) % 2];
		pthread_mutex_lock(&p.mu);
		while (k > 0 && !prev->durable)
			pthread_cond_wait(&p.cv, &p.mu);
		if (k > 0 && !prev->finished)
			overlapped++; /* its writer is still indexing while we go on */
		j->ready = true;
		j->durable = j->finished = false;
		p.todo = j;
		pthread_cond_broadcast(&p.cv);
		pthread_mutex_unlock(&p.mu);
		if (k > 0) { /* the reported batch reads back at once, from any thread */
			for (uint64_t g = 1; g <= G; g++) {
				raft_index lo = first_of[(k + 1) % 2][g];
				if (!lo)
					continue;
				struct raft_entry *e;
				size_t n;
				ck_assert_int_eq(
					wal_read_entries(p.w, g, lo, lo + 4, SIZE_MAX, &e, &n),
					WAL_OK);
				ck_assert_uint_eq(n, 4);
				for (size_t i = 0; i < n; i++)
					check_entry(g, &e[i], 1);
				wal_entries_free(e, n);
			}
		}
	}
	pthread_mutex_lock(&p.mu);
	for (int i = 0; i < 2; i++)
		while (jobs[i].ready && !jobs[i].finished)
			pthread_cond_wait(&p.cv, &p.mu);
	p.quit = true;
	pthread_cond_broadcast(&p.cv);
	pthread_mutex_unlock(&p.mu);
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		ck_assert_int_eq(jobs[i].rc, WAL_OK);
		wal_batch_free(jobs[i].b);
	}
	/* everything is there, in memory and after a reopen */
	for (int pass = 0; pass < 2; pass++) {
		for (uint64_t g = 1; g <= G; g++) {
			struct raft_entry *e;
			size_t n;
			for (raft_index lo = 1; lo < next[g]; lo += n) {
				ck_assert_int_eq(
					wal_read_entries(p.w, g, lo, next[g], 4096, &e, &n),
					WAL_OK);
				for (size_t i = 0; i < n; i++) {
					ck_assert_uint_eq(e[i].index, lo + i);
					check_entry(g, &e[i], 1);
				}
				wal_entries_free(e, n);
			}
		}
		wal_close(p.w);
		if (pass == 0)
			p.w = open_ok(dir, &o);
	}
	fprintf(stderr,
		"overlapping writes: %d of %d batches started while the previous one "
		"was still indexing\n",
		overlapped, BATCHES - 1);
	pthread_cond_destroy(&p.cv);
	pthread_mutex_destroy(&p.mu);
	tmp_rmdir(dir);
	free(dir);
}
END_TEST

struct offsets {
	uint64_t batch_off[4096];
	char seg[4096][32];
	size_t n;
};

static int collect_batches(const struct wal_record_info *r, void *arg)
{
	struct offsets *o = arg;
	ck_assert_int_ne(r->type, WAL_REC_BAD);
	if (r->type == WAL_REC_BATCH && o->n < 4096) {
		o->batch_off[o->n] = r->offset;
		snprintf(o->seg[o->n], sizeof o->seg[o->n], "%s", r->segment);
		o->n++;
	}
	return 0;
}

/* Writes the same batches with and without O_DIRECT. Direct: every batch but the first of a
 * segment starts on a sector boundary (the one before it is padded with zeroes). Both logs read
 * back the same, after a reopen too. */
START_TEST(test_direct_writes_are_sector_aligned)
{
	uint32_t align = dio_align_of_tmp();
	for (int direct = 0; direct < 2; direct++) {
		char *dir = tmp_dir();
		struct wal_options o = opts();
		o.no_direct_io = !direct;
		struct wal *w = open_ok(dir, &o);
		struct wal_batch *b = wal_batch_new();
		raft_index next[4] = {1, 1, 1, 1};
		for (int k = 0; k < 300; k++) {
			uint64_t g = 1 + (uint64_t)k % 3;
			raft_index hi = next[g] + 1 + (raft_index)(k * 7 % 13);
			wal_batch_reset(b);
			add_entries(b, g, next[g], hi, 1);
			next[g] = hi;
			write_ok(w, b);
		}
		struct wal_stats st;
		wal_stats_get(w, &st);
		if (!direct || align == 0) {
			ck_assert_uint_eq(st.direct_writes, 0);
		} else { /* all but the first batch of each segment */
			ck_assert_uint_ge(st.direct_writes, 300 - st.segments);
		}
		wal_close(w);
		static struct offsets offs;
		memset(&offs, 0, sizeof offs);
		ck_assert_int_eq(wal_walk(dir, collect_batches, &offs), 0);
		ck_assert_uint_eq(offs.n, 300);
		size_t aligned = 0;
		for (size_t i = 0; i < offs.n; i++) {
			bool first_in_seg = i == 0 || strcmp(offs.seg[i], offs.seg[i - 1]) != 0;
			if (direct && align && !first_in_seg)
				ck_assert_uint_eq(offs.batch_off[i] % align, 0);
			aligned += align && offs.batch_off[i] % align == 0;
		}
		if (!direct) /* back to back: most batches end off a sector boundary */
			ck_assert_uint_lt(aligned, offs.n / 2);
		w = open_ok(dir, &o);
		for (uint64_t g = 1; g <= 3; g++) {
			for (raft_index lo = 1; lo < next[g]; lo++) {
				struct raft_entry *e;
				size_t n;
				ck_assert_int_eq(
					wal_read_entries(w, g, lo, lo + 1, SIZE_MAX, &e, &n),
					WAL_OK);
				ck_assert_uint_eq(e[0].index, lo);
				check_entry(g, &e[0], 1);
				wal_entries_free(e, n);
			}
		}
		wal_close(w);
		wal_batch_free(b);
		tmp_rmdir(dir);
		free(dir);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("wal_write_paths");
	TCase *tc = tcase_create("write_paths");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_early_report_matches_the_index);
	tcase_add_test(tc, test_writes_overlap_the_index_update);
	tcase_add_test(tc, test_direct_writes_are_sector_aligned);
	suite_add_tcase(s, tc);
	return wal_test_run(s);
}
