/* test_segments.c — how segments are made: written in full before they get a name, the spare
 * made ahead by wal_prepare and taken by the roll that needs it (also while it is still being
 * made), and temporary files of a stopped process removed at open without touching the log.
 */
#include <errno.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <sys/ioctl.h>

#include "tests/unit/wal/wal_test_util.h"

enum { SEG_BYTES = 16 << 10 };

static struct wal_options seg_opts(void)
{
	struct wal_options o;
	wal_options_default(&o);
	o.segment_bytes = SEG_BYTES;
	o.no_sync = false;
	return o;
}

static bool exists(const char *dir, const char *name)
{
	char path[600];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	return access(path, F_OK) == 0;
}

static uint64_t segments(struct wal *w)
{
	struct wal_stats st;
	wal_stats_get(w, &st);
	return st.segments;
}

static uint64_t made_on_write(struct wal *w)
{
	struct wal_stats st;
	wal_stats_get(w, &st);
	return st.segments_made_on_write;
}

/* Writes batches of 8 entries of group 1 from *next on until the WAL has one more segment. */
static void write_until_roll(struct wal *w, struct wal_batch *b, raft_index *next)
{
	uint64_t before = segments(w);
	while (segments(w) == before) {
		wal_batch_reset(b);
		add_entries(b, 1, *next, *next + 8, 1);
		write_ok(w, b);
		*next += 8;
	}
}

static void check_all(struct wal *w, raft_index upto)
{
	struct raft_entry *e;
	size_t n;
	ck_assert_int_eq(wal_read_entries(w, 1, 1, upto, SIZE_MAX, &e, &n), WAL_OK);
	ck_assert_uint_eq(n, upto - 1);
	for (size_t i = 0; i < n; i++) {
		ck_assert_uint_eq(e[i].index, 1 + i);
		check_entry(1, &e[i], 1);
	}
	wal_entries_free(e, n);
}

/* 1 if every block of the file is allocated and written (no hole, no "unwritten" extent),
 * 0 if not, -1 if the file system cannot say (FIEMAP unsupported). */
static int fully_written(const char *path)
{
	int fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	struct stat st;
	ck_assert_int_eq(fstat(fd, &st), 0);
	enum { MAX = 64 };
	struct fiemap *fm = calloc(1, sizeof *fm + MAX * sizeof(struct fiemap_extent));
	ck_assert_ptr_nonnull(fm);
	uint64_t covered = 0;
	int verdict = 1;
	for (bool last = false; !last && verdict == 1;) {
		memset(fm, 0, sizeof *fm);
		fm->fm_start = covered;
		fm->fm_length = (uint64_t)st.st_size - covered;
		fm->fm_flags = FIEMAP_FLAG_SYNC;
		fm->fm_extent_count = MAX;
		if (ioctl(fd, FS_IOC_FIEMAP, fm) != 0) {
			verdict = -1;
			break;
		}
		if (fm->fm_mapped_extents == 0)
			break;
		for (uint32_t i = 0; i < fm->fm_mapped_extents; i++) {
			const struct fiemap_extent *x = &fm->fm_extents[i];
			if (x->fe_logical != covered || (x->fe_flags & FIEMAP_EXTENT_UNWRITTEN))
				verdict = 0; /* a hole before it, or not written yet */
			covered = x->fe_logical + x->fe_length;
			last = last || (x->fe_flags & FIEMAP_EXTENT_LAST);
		}
	}
	if (verdict == 1 && covered < (uint64_t)st.st_size)
		verdict = 0;
	free(fm);
	close(fd);
	return verdict;
}

START_TEST(test_segments_are_written_in_full)
{
	char *dir = tmp_dir();
	struct wal_options o = seg_opts();
	struct wal *w = open_ok(dir, &o);
	struct wal_batch *b = wal_batch_new();
	raft_index next = 1;
	write_until_roll(w, b, &next); /* one made on the batch path */
	ck_assert_int_eq(wal_prepare(w), WAL_OK);
	write_until_roll(w, b, &next); /* one from the spare */
	ck_assert_int_eq(wal_prepare(w), WAL_OK);
	char path[600];
	int checked = 0;
	for (size_t i = 0; i < 3; i++) {
		seg_path(dir, i, path, sizeof path);
		ck_assert_str_ne(path, "");
		int v = fully_written(path);
		if (v < 0)
			break; /* this file system has no FIEMAP: nothing to check */
		ck_assert_msg(v == 1, "%s has unwritten or missing blocks", path);
		checked++;
	}
	snprintf(path, sizeof path, "%s/spare.tmp", dir);
	if (checked)
		ck_assert_int_eq(fully_written(path), 1);
	wal_close(w);
	wal_batch_free(b);
	tmp_rmdir(dir);
	free(dir);
}
END_TEST

START_TEST(test_roll_takes_the_spare)
{
	char *dir = tmp_dir();
	struct wal_options o = seg_opts();
	struct wal *w = open_ok(dir, &o);
	struct wal_batch *b = wal_batch_new();
	raft_index next = 1;

	ck_assert(wal_prepare_wanted(w));
	ck_assert(!exists(dir, "spare.tmp"));
	ck_assert_int_eq(wal_prepare(w), WAL_OK);
	ck_assert(!wal_prepare_wanted(w));
	ck_assert(exists(dir, "spare.tmp"));
	ck_assert_int_eq(wal_prepare(w), WAL_OK); /* one is ready: nothing to do */

	write_until_roll(w, b, &next);
	ck_assert_uint_eq(made_on_write(w), 0);
	ck_assert(!exists(dir, "spare.tmp")); /* it became the new segment */
	ck_assert(wal_prepare_wanted(w));

	write_until_roll(w, b, &next); /* no spare: the batch made its segment */
	ck_assert_uint_eq(made_on_write(w), 1);
	ck_assert(!exists(dir, "create.tmp"));

	ck_assert_int_eq(wal_prepare(w), WAL_OK);
	wal_close(w); /* the unused spare goes with the WAL */
	ck_assert(!exists(dir, "spare.tmp"));

	w = open_ok(dir, &o);
	ck_assert_uint_eq(segments(w), 3);
	check_all(w, next);
	wal_close(w);
	wal_batch_free(b);
	tmp_rmdir(dir);
	free(dir);
}
END_TEST

/* wal_active_half_used says when the active segment has used half its bytes: false in a new
 * segment, true once half is written, false again after the roll (kvd's shell waits for it, or
 * for 10 s, before it makes the spare after a start). */
START_TEST(test_active_half_used)
{
	char *dir = tmp_dir();
	struct wal_options o = seg_opts();
	struct wal *w = open_ok(dir, &o);
	struct wal_batch *b = wal_batch_new();
	raft_index next = 1;
	ck_assert(!wal_active_half_used(w));
	uint64_t before = segments(w);
	bool seen = false;
	while (segments(w) == before) {
		wal_batch_reset(b);
		add_entries(b, 1, next, next + 8, 1);
		write_ok(w, b);
		next += 8;
		if (segments(w) == before && wal_active_half_used(w))
			seen = true;
	}
	ck_assert_msg(seen, "never half used before the roll");
	ck_assert(!wal_active_half_used(w)); /* the new segment holds one batch */
	wal_close(w);
	w = open_ok(dir, &o);
	check_all(w, next);
	wal_close(w);
	wal_batch_free(b);
	tmp_rmdir(dir);
	free(dir);
}
END_TEST

/* A spare the size of a segment is left for later when a batch needs a bigger segment. */
START_TEST(test_spare_too_small_for_a_big_batch)
{
	char *dir = tmp_dir();
	struct wal_options o = seg_opts();
	struct wal *w = open_ok(dir, &o);
	struct wal_batch *b = wal_batch_new();
	ck_assert_int_eq(wal_prepare(w), WAL_OK);
	static uint8_t big[3 * SEG_BYTES];
	struct raft_entry e = {.index = 1, .term = 1, .data = {.base = big, .len = sizeof big}};
	ck_assert_int_eq(wal_batch_entries(b, 2, &e, 1), WAL_OK);
	write_ok(w, b);
	ck_assert_uint_eq(made_on_write(w), 1);
	ck_assert(!wal_prepare_wanted(w)); /* still there */
	raft_index next = 1;
	write_until_roll(w, b, &next);
	ck_assert_uint_eq(made_on_write(w), 1);
	wal_close(w);
	w = open_ok(dir, &o);
	check_all(w, next);
	struct raft_entry *out;
	size_t n;
	ck_assert_int_eq(wal_read_entries(w, 2, 1, 2, SIZE_MAX, &out, &n), WAL_OK);
	ck_assert_uint_eq(out[0].data.len, sizeof big);
	wal_entries_free(out, n);
	wal_close(w);
	wal_batch_free(b);
	tmp_rmdir(dir);
	free(dir);
}
END_TEST

/* What a process killed while making a segment leaves: a half-made spare.tmp and create.tmp,
 * here even with a valid segment's bytes in them. They are not part of the log. */
START_TEST(test_leftover_temporary_files)
{
	char *dir = tmp_dir();
	struct wal_options o = seg_opts();
	struct wal *w = open_ok(dir, &o);
	struct wal_batch *b = wal_batch_new();
	raft_index next = 1;
	write_until_roll(w, b, &next);
	wal_close(w);

	char seg[600], tmp[600];
	seg_path(dir, 1, seg, sizeof seg);
	for (int i = 0; i < 2; i++) {
		snprintf(tmp, sizeof tmp, "%s/%s", dir, i ? "create.tmp" : "spare.tmp");
		char cmd[1400];
		snprintf(cmd, sizeof cmd, "cp '%s' '%s'", seg, tmp);
		ck_assert_int_eq(system(cmd), 0);
	}
	w = open_ok(dir, &o);
	ck_assert(!exists(dir, "spare.tmp"));
	ck_assert(!exists(dir, "create.tmp"));
	ck_assert_uint_eq(segments(w), 2);
	check_all(w, next);
	wal_close(w);
	wal_batch_free(b);
	tmp_rmdir(dir);
	free(dir);
}
END_TEST

/* Lazy hard states (wal_batch_hard_state_lazy): a batch of nothing else is written without an
 * fdatasync; anything else in the batch brings it back; a roll syncs the segment it leaves
 * while a lazy batch there is unsynced; every record reads back after a reopen. */
static atomic_int syncs;
static ino_t last_written;  /* the file of the last pwrite */
static ino_t watched;       /* a file whose sync is awaited (0: none) */
static bool watched_synced; /* it was synced since */

static ino_t ino_of(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

static ssize_t c_pwrite(int fd, const void *buf, size_t n, off_t off, void *arg)
{
	(void)arg;
	last_written = ino_of(fd); /* a direct write's fd is another open of the same file */
	return pwrite(fd, buf, n, off);
}

static int c_fdatasync(int fd, void *arg)
{
	(void)arg;
	atomic_fetch_add(&syncs, 1);
	if (watched != 0 && ino_of(fd) == watched)
		watched_synced = true;
	return fdatasync(fd);
}

static int c_fallocate(int fd, off_t len, void *arg)
{
	(void)arg;
	return fallocate(fd, 0, 0, len);
}

START_TEST(test_lazy_hard_state_not_synced)
{
	char *dir = tmp_dir();
	struct wal_io io = {
		.pwrite = c_pwrite, .fdatasync = c_fdatasync, .fallocate = c_fallocate};
	struct wal_options o = seg_opts();
	o.io = &io;
	struct wal *w = open_ok(dir, &o);
	struct wal_batch *b = wal_batch_new();
	struct raft_hard_state hs = {.term = 3, .vote = 2, .commit = 1};
	ck_assert_int_eq(wal_batch_hard_state(b, 1, &hs), WAL_OK);
	add_entries(b, 1, 1, 4, 3);
	ck_assert(wal_batch_needs_sync(b));
	int before = atomic_load(&syncs);
	write_ok(w, b);
	ck_assert_int_eq(atomic_load(&syncs), before + 1);
	/* the commit index alone: written, not synced */
	wal_batch_reset(b);
	hs.commit = 4;
	ck_assert_int_eq(wal_batch_hard_state_lazy(b, 1, &hs), WAL_OK);
	ck_assert(!wal_batch_needs_sync(b));
	write_ok(w, b);
	ck_assert_int_eq(atomic_load(&syncs), before + 1);
	/* a lazy record beside entries: synced */
	wal_batch_reset(b);
	ck_assert_int_eq(wal_batch_hard_state_lazy(b, 1, &hs), WAL_OK);
	add_entries(b, 1, 5, 6, 3);
	ck_assert(wal_batch_needs_sync(b));
	write_ok(w, b);
	ck_assert_int_eq(atomic_load(&syncs), before + 2);
	/* a lazy batch last in a segment: the roll syncs that segment before the next one is
	 * used (the batch after it does not fit) */
	wal_batch_reset(b);
	hs.commit = 6;
	ck_assert_int_eq(wal_batch_hard_state_lazy(b, 1, &hs), WAL_OK);
	uint64_t segs = segments(w);
	write_ok(w, b);
	watched = last_written;
	watched_synced = false;
	wal_batch_reset(b);
	static uint8_t big[SEG_BYTES];
	struct raft_entry e = {.index = 7, .term = 3, .data = {big, sizeof big}};
	ck_assert_int_eq(wal_batch_entries(b, 1, &e, 1), WAL_OK);
	write_ok(w, b);
	ck_assert_uint_eq(segments(w), segs + 1);
	ck_assert(watched_synced);
	watched = 0;
	wal_batch_free(b);
	wal_close(w);
	w = open_ok(dir, &o);
	const struct wal_group_state *gs = wal_group_find(w, 1);
	ck_assert_ptr_nonnull(gs);
	ck_assert(gs->has_hard_state);
	ck_assert_uint_eq(gs->hard_state.commit, 6);
	ck_assert_uint_eq(gs->hard_state.term, 3);
	wal_close(w);
	tmp_rmdir(dir);
	free(dir);
}
END_TEST

/* The io hooks hold the spare's making (its fallocate) until the test lets it go, so a roll
 * meets a spare that is still being made and must wait for it rather than make another. */
struct gate {
	sem_t entered, go;
	atomic_bool hold;
};

static ssize_t g_pwrite(int fd, const void *buf, size_t n, off_t off, void *arg)
{
	(void)arg;
	return pwrite(fd, buf, n, off);
}

static int g_fdatasync(int fd, void *arg)
{
	(void)arg;
	return fdatasync(fd);
}

static int g_fallocate(int fd, off_t len, void *arg)
{
	struct gate *g = arg;
	if (atomic_exchange(&g->hold, false)) {
		sem_post(&g->entered);
		while (sem_wait(&g->go) != 0 && errno == EINTR)
			;
	}
	return fallocate(fd, 0, 0, len);
}

struct prep_arg {
	struct wal *w;
	struct gate *g;
	atomic_bool *rolling;
	int rc;
};

static void *prep_thread(void *arg)
{
	struct prep_arg *a = arg;
	a->rc = wal_prepare(a->w);
	return NULL;
}

/* Lets the held fallocate go once the writer has started the batch that rolls. */
static void *release_thread(void *arg)
{
	struct prep_arg *a = arg;
	while (!atomic_load(a->rolling))
		sched_yield();
	sem_post(&a->g->go);
	return NULL;
}

START_TEST(test_roll_waits_for_a_spare_being_made)
{
	char *dir = tmp_dir();
	struct gate g;
	sem_init(&g.entered, 0, 0);
	sem_init(&g.go, 0, 0);
	atomic_init(&g.hold, false);
	struct wal_io io = {
		.pwrite = g_pwrite, .fdatasync = g_fdatasync, .fallocate = g_fallocate, .arg = &g};
	struct wal_options o = seg_opts();
	o.io = &io;
	struct wal *w = open_ok(dir, &o);
	struct wal_batch *b = wal_batch_new();

	atomic_store(&g.hold, true);
	atomic_bool rolling;
	atomic_init(&rolling, false);
	struct prep_arg pa = {.w = w, .g = &g, .rolling = &rolling, .rc = -100};
	pthread_t t, r;
	ck_assert_int_eq(pthread_create(&t, NULL, prep_thread, &pa), 0);
	while (sem_wait(&g.entered) != 0 && errno == EINTR)
		;
	ck_assert(!wal_prepare_wanted(w)); /* being made */
	ck_assert_int_eq(pthread_create(&r, NULL, release_thread, &pa), 0);

	/* two batches of more than half a segment each: the second one rolls */
	add_entries(b, 1, 1, 151, 1);
	write_ok(w, b);
	ck_assert_uint_eq(segments(w), 1);
	wal_batch_reset(b);
	add_entries(b, 1, 151, 301, 1);
	atomic_store(&rolling, true);
	write_ok(w, b); /* waits in the roll until the spare is made */
	ck_assert_uint_eq(segments(w), 2);
	pthread_join(t, NULL);
	pthread_join(r, NULL);
	ck_assert_int_eq(pa.rc, WAL_OK);
	ck_assert_uint_eq(made_on_write(w), 0); /* it took the spare, made none itself */
	ck_assert(!exists(dir, "spare.tmp"));
	wal_close(w);
	o.io = NULL;
	w = open_ok(dir, &o);
	check_all(w, 301);
	wal_close(w);
	wal_batch_free(b);
	sem_destroy(&g.entered);
	sem_destroy(&g.go);
	tmp_rmdir(dir);
	free(dir);
}
END_TEST

/* A preparer thread beside a writer that rolls every few batches: whatever interleaving, every
 * entry is there after a reopen and every roll was served by a spare or made on the spot. */
struct writer {
	struct wal *w;
	raft_index upto;
	atomic_bool done;
};

static void *writer_thread(void *arg)
{
	struct writer *a = arg;
	struct wal_batch *b = wal_batch_new();
	for (raft_index i = 1; i < a->upto; i += 8) {
		wal_batch_reset(b);
		add_entries(b, 1, i, i + 8, 1);
		write_ok(a->w, b);
	}
	wal_batch_free(b);
	atomic_store(&a->done, true);
	return NULL;
}

START_TEST(test_prepare_beside_writes)
{
	char *dir = tmp_dir();
	struct wal_options o = seg_opts();
	o.no_sync = true;
	struct wal *w = open_ok(dir, &o);
	struct writer a = {.w = w, .upto = 1 + 8 * 600};
	atomic_init(&a.done, false);
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, writer_thread, &a), 0);
	size_t prepared = 0;
	while (!atomic_load(&a.done)) {
		if (wal_prepare_wanted(w)) {
			ck_assert_int_eq(wal_prepare(w), WAL_OK);
			prepared++;
		} else {
			sched_yield();
		}
	}
	pthread_join(t, NULL);
	uint64_t segs = segments(w);
	ck_assert_uint_gt(segs, 10);
	/* every roll took a spare or made its segment; a last spare may be left unused */
	uint64_t rolls = segs - 1, made = made_on_write(w);
	ck_assert_uint_ge(prepared + made, rolls);
	ck_assert_uint_le(prepared + made, rolls + 1);
	wal_close(w);
	w = open_ok(dir, &o);
	check_all(w, a.upto);
	wal_close(w);
	tmp_rmdir(dir);
	free(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("wal_segments");
	TCase *tc = tcase_create("segments");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_segments_are_written_in_full);
	tcase_add_test(tc, test_roll_takes_the_spare);
	tcase_add_test(tc, test_active_half_used);
	tcase_add_test(tc, test_spare_too_small_for_a_big_batch);
	tcase_add_test(tc, test_leftover_temporary_files);
	tcase_add_test(tc, test_roll_waits_for_a_spare_being_made);
	tcase_add_test(tc, test_prepare_beside_writes);
	tcase_add_test(tc, test_lazy_hard_state_not_synced);
	suite_add_tcase(s, tc);
	return wal_test_run(s);
}
