/* bench_wal.c — `make bench-wal`: group commit against a plain write+fdatasync loop.
 *
 * 64 concurrent appenders, each with one 256-byte entry outstanding, spread over 1, 8 or 64
 * groups; what counts is entries wal_batch_write reported durable. Three ways to drive them:
 *   inline: one thread owns the appenders and writes the batches itself; each write's durable
 *     callback re-arms the appenders into the next batch. As the reference is one thread
 *     doing pwrite+fdatasync, this compares what group commit through the WAL costs.
 *   loop: as node/ drives the WAL. One loop thread gathers the entries into a batch and hands
 *     it to the writer thread (one write in flight; entries submitted meanwhile wait in the
 *     next batch); each write tells the loop as soon as it is durable
 *     (wal_batch_write_notify), and the loop re-arms the appenders it made durable and hands
 *     over the next batch while the writer updates the WAL's index.
 *   threads: 64 OS threads each block until their entry is durable; one writer thread.
 * The reference, measured in the same run on the same disk (alternating slices), is one
 * 256-byte record per pwrite+fdatasync into a file written in full beforehand. Also printed:
 * how long the thread doing the fdatasyncs waited for a CPU per fsync (a loaded machine), and
 * where a batch's time goes (inline and loop modes), and at the end one line per mode saying
 * whether issue 4's target (appends/s >= 50x the reference's, fsyncs/s >= 0.80x) was met for
 * each configuration. docs/PERFORMANCE.md ("WAL group commit") has the figures and the why.
 * Usage: bench_wal [--seconds S] [--dir DIR] [--mode all|inline|loop|threads]
 *   (S: seconds of each mode and of the reference, per configuration; default 5)
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "wal/wal.h"

enum { APPENDERS = 64, ENTRY_BYTES = 256, PLAIN_FILE_MB = 16, SLICES = 10 };

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Seconds the calling thread has spent runnable but waiting for a CPU (Linux schedstat);
 * 0 where the kernel does not say. On a loaded machine this is what a wake-up costs. */
static double cpu_wait_s(void)
{
	FILE *f = fopen("/proc/thread-self/schedstat", "r");
	unsigned long long run_ns = 0, wait_ns = 0;
	if (f) {
		if (fscanf(f, "%llu %llu", &run_ns, &wait_ns) != 2)
			wait_ns = 0;
		fclose(f);
	}
	return (double)wait_ns / 1e9;
}

/* Removes a flat directory (the WAL's segments and LOCK). */
static void rm_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *de;
		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.')
				unlinkat(dirfd(d), de->d_name, 0);
		closedir(d);
	}
	if (rmdir(dir) != 0)
		fprintf(stderr, "bench_wal: could not remove %s\n", dir);
}

/* ---------------------------------------------------------------- reference loop */
struct plain {
	int fd;
	uint64_t off;
	char path[4096];
};

static void plain_open(struct plain *p, const char *dir)
{
	snprintf(p->path, sizeof p->path, "%s/plain.dat", dir);
	p->off = 0;
	/* the reference at its best: the file is written (not just fallocated) beforehand, so
	 * each fdatasync flushes data only, never file system metadata */
	p->fd = open(p->path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	static uint8_t zero[1 << 20];
	for (int i = 0; p->fd >= 0 && i < PLAIN_FILE_MB; i++) {
		if (pwrite(p->fd, zero, sizeof zero, (off_t)i << 20) != (ssize_t)sizeof zero) {
			close(p->fd);
			p->fd = -1;
		}
	}
	if (p->fd < 0 || fsync(p->fd) != 0) {
		perror("bench_wal: plain file");
		exit(2);
	}
}

/* One 256-byte record (plus a 32-byte header, as the WAL's) per pwrite + fdatasync. */
static void plain_slice(struct plain *p, double seconds, uint64_t *ops, double *elapsed,
			double *cpu_wait)
{
	double w0 = cpu_wait_s();
	uint8_t rec[ENTRY_BYTES + 32];
	memset(rec, 0xab, sizeof rec);
	uint64_t n = 0;
	double t0 = now_s(), t;
	do {
		if (pwrite(p->fd, rec, sizeof rec, (off_t)p->off) != (ssize_t)sizeof rec ||
		    fdatasync(p->fd) != 0) {
			perror("bench_wal: plain write");
			exit(2);
		}
		p->off = (p->off + sizeof rec) % ((PLAIN_FILE_MB - 1) << 20);
		n++;
		t = now_s();
	} while (t - t0 < seconds);
	*ops += n;
	*elapsed += t - t0;
	*cpu_wait += cpu_wait_s() - w0;
}

static void plain_close(struct plain *p)
{
	close(p->fd);
	unlink(p->path);
}

/* ---------------------------------------------------------------- the segment preparer
 * node/ runs wal_prepare on the thread pool whenever wal_prepare_wanted says so after a
 * write, so a batch that fills a segment finds the next one made (zero-filled and synced).
 * Both modes do the same with this thread; its writes share the disk with the batches'. */
struct preparer {
	struct wal *w;
	pthread_t t;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool go, quit; /* under mu */
};

static void *prep_main(void *arg)
{
	struct preparer *p = arg;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->go && !p->quit)
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->quit)
			break;
		p->go = false;
		pthread_mutex_unlock(&p->mu);
		int rc = wal_prepare(p->w);
		if (rc != WAL_OK)
			fprintf(stderr, "bench_wal: wal_prepare: %s\n", wal_strerror(rc));
		pthread_mutex_lock(&p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* After a write: starts making the next segment if none is ready or being made. */
static void prep_kick(struct preparer *p)
{
	if (!wal_prepare_wanted(p->w))
		return;
	pthread_mutex_lock(&p->mu);
	p->go = true;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

static void prep_start(struct preparer *p, struct wal *w)
{
	p->w = w;
	p->go = p->quit = false;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	pthread_create(&p->t, NULL, prep_main, p);
	prep_kick(p);
}

static void prep_stop(struct preparer *p)
{
	pthread_mutex_lock(&p->mu);
	p->quit = true;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->t, NULL);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
}

/* ---------------------------------------------------------------- mode "loop" (primary)
 * The shape of node/driver.c: this thread plays the libuv loop. It owns the 64 logical
 * appenders and two batches; start_write hands the current batch to the writer thread (one
 * batch in flight at a time) and new entries go into the other one. The write's durable
 * callback wakes the loop (as node/'s uv_async does); the loop reads wal_batch_durable, checks
 * that every entry of the batch is covered, re-arms those appenders, each of which at once
 * submits its next entry (to the next group, round-robin), and the next batch goes out; the
 * writer takes it once it has updated the WAL's index for the last one. The handoffs are a
 * mutex and condition variables, as in node/, with a condition variable standing in for
 * uv_async. */
struct appender {
	uint64_t group;   /* of its outstanding entry */
	raft_index index; /* of its outstanding entry; 0 = none */
	uint64_t appends; /* its entries reported durable */
	uint8_t data[ENTRY_BYTES];
};

struct loop_batch {
	struct wal_batch *b;
	int members[APPENDERS]; /* appenders with their entry in this batch */
	int n;
};

enum { POOL = 1 }; /* writer threads: one, as node/ has */

struct loop {
	struct wal *w;
	uint64_t groups, next_group; /* round-robin over groups 1..groups */
	uint64_t next_index[APPENDERS + 1];
	struct appender app[APPENDERS];
	struct loop_batch batches[2];
	struct loop_batch *cur, *inflight; /* inflight: with the writer, NULL = none */
	pthread_t workers[POOL];
	struct preparer prep;
	pthread_mutex_t mu;
	pthread_cond_t work_cv, done_cv;
	struct loop_batch *todo; /* under mu: handed to the writer, not yet taken */
	bool done, quit;         /* under mu */
	int rc;                  /* under mu: of the write just done */
	double write_t0;         /* under mu: when the write in flight started */
	double write_s;          /* under mu: time from a write's start to its durable news */
	double news_t0, news_s;  /* under mu: durable news sent, and its wait until the loop runs */
	double hand_t0, hand_s;  /* under mu: batch handed over, and its wait until a worker runs */
	double turn_s;           /* the loop's own work per completion (re-arming the appenders) */
	double worker_wait_s;    /* the workers' and the loop thread's cpu_wait_s, per slice */
	double loop_wait_s;
	char dir[4096];
};

/* Called by wal_batch_write_notify on the worker once the batch is durable. */
static void loop_durable(struct wal_batch *b, void *arg)
{
	struct loop *l = arg;
	(void)b;
	pthread_mutex_lock(&l->mu);
	l->news_t0 = now_s();
	l->write_s += l->news_t0 - l->write_t0;
	l->rc = WAL_OK;
	l->done = true;
	pthread_cond_signal(&l->done_cv);
	pthread_mutex_unlock(&l->mu);
}

/* The writer thread: runs wal_batch_write_notify for each batch handed to it. */
static void *loop_worker(void *arg)
{
	struct loop *l = arg;
	double w0 = cpu_wait_s();
	pthread_mutex_lock(&l->mu);
	for (;;) {
		while (l->todo == NULL && !l->quit)
			pthread_cond_wait(&l->work_cv, &l->mu);
		if (l->todo == NULL)
			break;
		struct loop_batch *b = l->todo;
		l->todo = NULL;
		l->write_t0 = now_s();
		l->hand_s += l->write_t0 - l->hand_t0;
		pthread_mutex_unlock(&l->mu);
		int rc = wal_batch_write_notify(l->w, b->b, loop_durable, l);
		pthread_mutex_lock(&l->mu);
		if (rc != WAL_OK) {
			l->rc = rc;
			l->done = true;
			pthread_cond_signal(&l->done_cv);
		}
	}
	l->worker_wait_s += cpu_wait_s() - w0;
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

/* Appender i hands its next entry to the loop: it goes into the batch being filled. */
static void loop_submit(struct loop *l, int i)
{
	struct appender *a = &l->app[i];
	assert(a->index == 0);
	a->group = 1 + l->next_group++ % l->groups;
	a->index = l->next_index[a->group]++;
	struct raft_entry e = {
		.index = a->index, .term = 1, .data = {.base = a->data, .len = sizeof a->data}};
	if (wal_batch_entries(l->cur->b, a->group, &e, 1) != WAL_OK) {
		fprintf(stderr, "bench_wal: cannot add to the batch\n");
		exit(2);
	}
	assert(l->cur->n < APPENDERS);
	l->cur->members[l->cur->n++] = i;
}

static void loop_start_write(struct loop *l)
{
	if (l->inflight != NULL || l->cur->n == 0)
		return;
	l->inflight = l->cur;
	l->cur = (l->cur == &l->batches[0]) ? &l->batches[1] : &l->batches[0];
	assert(l->cur->n == 0 && wal_batch_empty(l->cur->b));
	pthread_mutex_lock(&l->mu);
	l->todo = l->inflight;
	l->hand_t0 = now_s();
	pthread_cond_signal(&l->work_cv);
	pthread_mutex_unlock(&l->mu);
}

/* The write completion, on the loop thread. Only what wal_batch_durable reports counts: an
 * entry of the batch it does not cover stops the benchmark. With `rearm`, each appender made
 * durable submits its next entry. */
static void loop_write_done(struct loop *l, bool rearm)
{
	struct loop_batch *b = l->inflight;
	const struct wal_durable *d;
	size_t nd = wal_batch_durable(b->b, &d);
	raft_index durable[APPENDERS + 1];
	memset(durable, 0, sizeof durable);
	for (size_t k = 0; k < nd; k++) {
		assert(d[k].group >= 1 && d[k].group <= l->groups);
		durable[d[k].group] = d[k].index;
	}
	for (int k = 0; k < b->n; k++) {
		struct appender *a = &l->app[b->members[k]];
		if (a->index == 0 || a->index > durable[a->group]) {
			fprintf(stderr,
				"bench_wal: entry %" PRIu64 " of group %" PRIu64
				" not reported durable\n",
				a->index, a->group);
			exit(2);
		}
		a->index = 0;
		a->appends++;
	}
	wal_batch_reset(b->b);
	int n = b->n;
	b->n = 0;
	l->inflight = NULL;
	prep_kick(&l->prep);
	for (int k = 0; rearm && k < n; k++)
		loop_submit(l, b->members[k]);
}

static struct loop *loop_open(const char *dir, const char *mode, uint64_t groups)
{
	struct loop *l = calloc(1, sizeof *l);
	if (!l) {
		fprintf(stderr, "bench_wal: out of memory\n");
		exit(2);
	}
	snprintf(l->dir, sizeof l->dir, "%s/wal-%s-%" PRIu64, dir, mode, groups);
	l->groups = groups;
	struct wal_options o;
	wal_options_default(&o);
	int rc = wal_open(l->dir, &o, false, &l->w, NULL);
	if (rc) {
		fprintf(stderr, "bench_wal: open: %s\n", wal_strerror(rc));
		exit(2);
	}
	for (uint64_t g = 0; g <= APPENDERS; g++)
		l->next_index[g] = 1;
	for (int i = 0; i < APPENDERS; i++)
		memset(l->app[i].data, i, ENTRY_BYTES);
	for (int k = 0; k < 2; k++)
		l->batches[k].b = wal_batch_new();
	l->cur = &l->batches[0];
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->work_cv, NULL);
	pthread_cond_init(&l->done_cv, NULL);
	prep_start(&l->prep, l->w);
	return l;
}

/* What a slice adds is the difference of these totals taken before and after it. */
static uint64_t fsyncs_of(struct wal *w)
{
	struct wal_stats st;
	wal_stats_get(w, &st);
	return st.fsyncs;
}

static uint64_t loop_appends(const struct loop *l)
{
	uint64_t n = 0;
	for (int i = 0; i < APPENDERS; i++)
		n += l->app[i].appends;
	return n;
}

/* Starts the worker and every appender submits an entry; the loop turns until `seconds` have
 * passed, then lets the last batch complete without re-arming. Adds what was done. */
static void loop_slice(struct loop *l, double seconds, uint64_t *appends, uint64_t *fsyncs,
		       double *elapsed)
{
	uint64_t a0 = loop_appends(l), f0 = fsyncs_of(l->w);
	double w0 = cpu_wait_s(), t0 = now_s(), end = t0 + seconds;
	l->quit = false;
	for (int i = 0; i < POOL; i++)
		pthread_create(&l->workers[i], NULL, loop_worker, l);
	for (int i = 0; i < APPENDERS; i++)
		loop_submit(l, i);
	loop_start_write(l);
	while (l->inflight != NULL) {
		pthread_mutex_lock(&l->mu);
		while (!l->done)
			pthread_cond_wait(&l->done_cv, &l->mu);
		l->done = false;
		int rc = l->rc;
		double t = now_s();
		l->news_s += t - l->news_t0;
		pthread_mutex_unlock(&l->mu);
		if (rc != WAL_OK) {
			fprintf(stderr, "bench_wal: write: %s\n", wal_strerror(rc));
			exit(2);
		}
		loop_write_done(l, t < end);
		l->turn_s += now_s() - t;
		loop_start_write(l);
	}
	*elapsed += now_s() - t0;
	l->loop_wait_s += cpu_wait_s() - w0;
	pthread_mutex_lock(&l->mu);
	l->quit = true;
	pthread_cond_broadcast(&l->work_cv);
	pthread_mutex_unlock(&l->mu);
	for (int i = 0; i < POOL; i++)
		pthread_join(l->workers[i], NULL);
	*appends += loop_appends(l) - a0;
	*fsyncs += fsyncs_of(l->w) - f0;
}

static void loop_close(struct loop *l)
{
	for (int k = 0; k < 2; k++)
		wal_batch_free(l->batches[k].b);
	prep_stop(&l->prep);
	wal_close(l->w);
	rm_dir(l->dir);
	pthread_cond_destroy(&l->work_cv);
	pthread_cond_destroy(&l->done_cv);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

/* ---------------------------------------------------------------- mode "inline"
 * The WAL's own cost, without a thread hand-over: one thread owns the 64 appenders (a struct
 * loop without workers) and writes the batches itself. Each write's durable callback, on this
 * same thread, checks the report and re-arms every appender the batch made durable, into the
 * other batch, which is written as soon as the write returns. As in the plain loop, one
 * thread does everything, so the figure is what group commit through the WAL costs (encoding,
 * the write and fdatasync, the report, the index update) against a plain write+fdatasync. */
struct inline_arg {
	struct loop *l;
	double end, t0;
};

static void inline_durable(struct wal_batch *b, void *arg)
{
	struct inline_arg *a = arg;
	(void)b;
	double t = now_s();
	a->l->write_s += t - a->t0;
	loop_write_done(a->l, t < a->end);
	a->l->turn_s += now_s() - t;
}

static void inline_slice(struct loop *l, double seconds, uint64_t *appends, uint64_t *fsyncs,
			 double *elapsed)
{
	uint64_t a0 = loop_appends(l), f0 = fsyncs_of(l->w);
	double w0 = cpu_wait_s(), t0 = now_s();
	struct inline_arg a = {.l = l, .end = t0 + seconds};
	for (int i = 0; i < APPENDERS; i++)
		loop_submit(l, i);
	while (l->cur->n > 0) {
		l->inflight = l->cur;
		l->cur = (l->cur == &l->batches[0]) ? &l->batches[1] : &l->batches[0];
		a.t0 = now_s();
		int rc = wal_batch_write_notify(l->w, l->inflight->b, inline_durable, &a);
		if (rc != WAL_OK) {
			fprintf(stderr, "bench_wal: write: %s\n", wal_strerror(rc));
			exit(2);
		}
	}
	*elapsed += now_s() - t0;
	l->worker_wait_s += cpu_wait_s() - w0;
	*appends += loop_appends(l) - a0;
	*fsyncs += fsyncs_of(l->w) - f0;
}

/* ---------------------------------------------------------------- mode "threads" (secondary)
 * 64 appender threads, each bound to group (thread % groups). Each appender owns a slot: it
 * fills in its entry, marks the slot ready and sleeps on its own semaphore. The writer gathers
 * every ready slot into one batch (assigning each group's next index), writes it, and wakes exactly
 * the appenders whose entries it made durable — a group-commit queue (as in RocksDB's write
 * thread), with no lock the 64 appenders fight over. The appenders' wake-ups run while the next
 * batch is written. */
struct slot {
	_Atomic int state; /* IDLE, READY (entry handed over), FLIGHT (in the batch) */
	sem_t durable;
	uint64_t group;
	uint8_t data[ENTRY_BYTES];
	uint64_t appends;
};
enum { IDLE, READY, FLIGHT };

struct shared {
	struct wal *w;
	struct preparer prep;
	struct slot slots[APPENDERS];
	sem_t work;
	_Atomic int writer_idle, live, stop;
	uint64_t next_index[APPENDERS + 1];
	uint64_t groups;
	int error;
	double write_s;       /* time spent inside wal_batch_write (writer thread only) */
	double writer_wait_s; /* the writer's cpu_wait_s (writer thread only) */
	char dir[4096];
};

struct appender_arg {
	struct shared *s;
	int i;
};

static void *thr_appender(void *arg)
{
	struct shared *s = ((struct appender_arg *)arg)->s;
	struct slot *me = &s->slots[((struct appender_arg *)arg)->i];
	while (!atomic_load(&s->stop)) {
		atomic_store(&me->state, READY);
		if (atomic_exchange(&s->writer_idle, 0))
			sem_post(&s->work);
		while (sem_wait(&me->durable) != 0)
			;
		me->appends++;
	}
	atomic_fetch_sub(&s->live, 1);
	return NULL;
}

/* Adds every ready slot to b; returns how many. */
static int thr_gather(struct shared *s, struct wal_batch *b, int *inflight)
{
	int n = 0;
	for (int i = 0; i < APPENDERS; i++) {
		struct slot *sl = &s->slots[i];
		if (atomic_load(&sl->state) != READY)
			continue;
		struct raft_entry e = {.index = s->next_index[sl->group]++,
				       .term = 1,
				       .data = {.base = sl->data, .len = sizeof sl->data}};
		if (wal_batch_entries(b, sl->group, &e, 1) != WAL_OK) {
			s->error = 1;
			return 0;
		}
		atomic_store(&sl->state, FLIGHT);
		inflight[n++] = i;
	}
	return n;
}

static void *thr_writer(void *arg)
{
	struct shared *s = arg;
	struct wal_batch *b = wal_batch_new();
	int inflight[APPENDERS];
	double w0 = cpu_wait_s();
	while (!s->error) {
		wal_batch_reset(b);
		int n = thr_gather(s, b, inflight);
		if (n == 0) {
			if (atomic_load(&s->live) == 0)
				break;
			atomic_store(&s->writer_idle, 1);
			n = thr_gather(s, b,
				       inflight); /* a slot made ready before the flag was seen */
			if (n == 0) {
				struct timespec ts;
				clock_gettime(CLOCK_REALTIME, &ts);
				ts.tv_nsec +=
					1000000; /* bounded: notices when the appenders are gone */
				if (ts.tv_nsec >= 1000000000) {
					ts.tv_sec++;
					ts.tv_nsec -= 1000000000;
				}
				sem_timedwait(&s->work, &ts);
				continue;
			}
			atomic_store(&s->writer_idle, 0);
		}
		double tw = now_s();
		int rc = wal_batch_write(s->w, b);
		s->write_s += now_s() - tw;
		if (rc != WAL_OK) {
			fprintf(stderr, "bench_wal: write: %s\n", wal_strerror(rc));
			s->error = 1;
			exit(2);
		}
		for (int k = 0; k < n; k++) {
			atomic_store(&s->slots[inflight[k]].state, IDLE);
			sem_post(&s->slots[inflight[k]].durable);
		}
		prep_kick(&s->prep);
	}
	wal_batch_free(b);
	s->writer_wait_s += cpu_wait_s() - w0;
	return NULL;
}

static struct shared *thr_open(const char *dir, uint64_t groups)
{
	struct shared *s = calloc(1, sizeof *s);
	snprintf(s->dir, sizeof s->dir, "%s/wal-threads-%" PRIu64, dir, groups);
	s->groups = groups;
	struct wal_options o;
	wal_options_default(&o);
	int rc = wal_open(s->dir, &o, false, &s->w, NULL);
	if (rc) {
		fprintf(stderr, "bench_wal: open: %s\n", wal_strerror(rc));
		exit(2);
	}
	for (uint64_t g = 0; g <= APPENDERS; g++)
		s->next_index[g] = 1;
	sem_init(&s->work, 0, 0);
	for (int i = 0; i < APPENDERS; i++) {
		sem_init(&s->slots[i].durable, 0, 0);
		s->slots[i].group = 1 + (uint64_t)i % groups;
		memset(s->slots[i].data, i, ENTRY_BYTES);
	}
	prep_start(&s->prep, s->w);
	return s;
}

static uint64_t thr_appends(const struct shared *s)
{
	uint64_t n = 0;
	for (int i = 0; i < APPENDERS; i++)
		n += s->slots[i].appends;
	return n;
}

/* Runs the appenders and the writer for `seconds`; adds what they did. */
static void thr_slice(struct shared *s, double seconds, uint64_t *appends, uint64_t *fsyncs,
		      double *elapsed)
{
	pthread_t wt, at[APPENDERS];
	struct appender_arg args[APPENDERS];
	uint64_t a0 = thr_appends(s), f0 = fsyncs_of(s->w);
	atomic_store(&s->stop, 0);
	atomic_store(&s->live, APPENDERS);
	double t0 = now_s();
	for (int i = 0; i < APPENDERS; i++) {
		args[i] = (struct appender_arg){.s = s, .i = i};
		pthread_create(&at[i], NULL, thr_appender, &args[i]);
	}
	pthread_create(&wt, NULL, thr_writer, s);
	struct timespec ts = {.tv_sec = (time_t)seconds,
			      .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9)};
	nanosleep(&ts, NULL);
	atomic_store(&s->stop, 1);
	for (int i = 0; i < APPENDERS; i++)
		pthread_join(at[i], NULL);
	pthread_join(wt, NULL);
	*elapsed += now_s() - t0;
	*appends += thr_appends(s) - a0;
	*fsyncs += fsyncs_of(s->w) - f0;
}

static void thr_close(struct shared *s)
{
	prep_stop(&s->prep);
	wal_close(s->w);
	rm_dir(s->dir);
	sem_destroy(&s->work);
	for (int i = 0; i < APPENDERS; i++)
		sem_destroy(&s->slots[i].durable);
	free(s);
}

/* ---------------------------------------------------------------- main */
struct result {
	uint64_t groups;
	double plain, appends, fsyncs; /* per second */
	double write_s;                /* fraction of the time inside wal_batch_write */
	/* waiting for a CPU (cpu_wait_s), ms per fsync: the reference loop, the thread calling
	 * wal_batch_write, and the loop thread (-1: mode threads has none) */
	double plain_wait_ms, writer_wait_ms, loop_wait_ms;
	/* segments the WAL started, and how many of them a batch had to make itself because
	 * no spare (wal_prepare) was ready: each of those stalled the writer */
	uint64_t segments, made_on_write;
	double direct; /* fraction of the batches written with O_DIRECT */
	/* mode loop, ms per batch: the durable news until the loop runs, the loop's turn, the
	 * hand-over until a worker runs (-1: mode threads) */
	double news_ms, turn_ms, hand_ms;
};

static void segment_counts(struct wal *w, struct result *r)
{
	struct wal_stats st;
	wal_stats_get(w, &st);
	r->segments = st.segments;
	r->made_on_write = st.segments_made_on_write;
	r->direct = st.batches_written ? (double)st.direct_writes / (double)st.batches_written : 0;
}

static void print_table(const char *title, const struct result *r, size_t n)
{
	printf("%s\n", title);
	for (size_t i = 0; i < n; i++) {
		double a = r[i].appends, f = r[i].fsyncs;
		printf("%2" PRIu64 " groups: plain write+fdatasync %7.0f/s | group commit %8.0f "
		       "appends/s %6.0f fsyncs/s %5.1f entries/fsync | %6.1fx appends %5.2fx "
		       "fsyncs | writer busy %3.0f%%, %.2f ms/batch\n",
		       r[i].groups, r[i].plain, a, f, f > 0 ? a / f : 0, a / r[i].plain,
		       f / r[i].plain, 100 * r[i].write_s, f > 0 ? 1000 * r[i].write_s / f : 0);
		printf("          waiting for a CPU, ms per fsync: reference %.2f, writer %.2f",
		       r[i].plain_wait_ms, r[i].writer_wait_ms);
		if (r[i].loop_wait_ms >= 0)
			printf(", loop %.2f", r[i].loop_wait_ms);
		printf("; segments %" PRIu64 ", made on the batch path %" PRIu64
		       "; direct writes %.0f%%\n",
		       r[i].segments, r[i].made_on_write, 100 * r[i].direct);
		if (r[i].news_ms >= 0)
			printf("          per batch, ms: plain write+fdatasync %.3f | write until "
			       "durable news %.3f, news until the loop runs %.3f, loop turn %.3f, "
			       "hand-over until a worker runs %.3f\n",
			       1000 / r[i].plain, f > 0 ? 1000 * r[i].write_s / f : 0, r[i].news_ms,
			       r[i].turn_ms, r[i].hand_ms);
		else if (r[i].turn_ms >= 0)
			printf("          per batch, ms: plain write+fdatasync %.3f | write until "
			       "durable news %.3f, re-arming the appenders %.3f, the rest (index "
			       "update) %.3f\n",
			       1000 / r[i].plain, f > 0 ? 1000 * r[i].write_s / f : 0, r[i].turn_ms,
			       f > 0 ? 1000 / f - 1000 * r[i].write_s / f - r[i].turn_ms : 0);
	}
}

/* The target docs/PERFORMANCE.md and issue 4 set: batched appends/s at least TARGET_APPENDS
 * times the plain loop's rate, fsyncs/s at least TARGET_FSYNCS of its rate. */
#define TARGET_APPENDS 50.0
#define TARGET_FSYNCS  0.80

static void print_verdict(const char *mode, const struct result *r, size_t n)
{
	printf("target (appends >= %.0fx the plain loop, fsyncs >= %.2fx), mode %s:",
	       TARGET_APPENDS, TARGET_FSYNCS, mode);
	size_t met = 0;
	for (size_t i = 0; i < n; i++) {
		double a = r[i].appends / r[i].plain, f = r[i].fsyncs / r[i].plain;
		bool ok = a >= TARGET_APPENDS && f >= TARGET_FSYNCS;
		met += ok;
		printf(" %" PRIu64 " groups %s (%.1fx, %.2fx)%s", r[i].groups,
		       ok ? "met" : "MISSED", a, f, i + 1 < n ? ";" : "");
	}
	printf(" -> %s\n", met == n ? "met" : "missed");
}

enum { MODE_INLINE, MODE_LOOP, MODE_THREADS, MODES };
static const char *const mode_names[MODES] = {"inline", "loop", "threads"};
static const char *const mode_titles[MODES] = {
	"mode inline (the WAL's own cost): one thread owns the 64 appenders, writes each batch "
	"and re-arms the appenders from the durable callback",
	"mode loop (as node/ drives the WAL): one loop thread batches the 64 appenders' entries, "
	"a writer thread runs wal_batch_write_notify, the durable news wakes the loop",
	"mode threads: 64 appender threads each block until durable, one writer thread",
};

int main(int argc, char **argv)
{
	double seconds = 5; /* per configuration: of the reference, and of each mode */
	const char *dir_arg = NULL, *mode = "all";
	bool run[MODES] = {false};
	for (int i = 1; i < argc; i++) {
		bool ok = true;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			printf("usage: %s [--seconds S] [--dir DIR] [--mode "
			       "all|inline|loop|threads]\n"
			       "Group commit through the WAL against a plain write+fdatasync loop "
			       "on the "
			       "same disk,\nfor 1, 8 and 64 groups, 64 appenders with one 256-byte "
			       "entry outstanding each.\n"
			       "  --seconds S  of each mode and of the reference, per "
			       "configuration "
			       "(default 5)\n"
			       "  --dir DIR    where the WALs go (default: next to this binary)\n"
			       "  --mode M     inline: one thread, the WAL's own cost; loop: as "
			       "kvd "
			       "drives it;\n"
			       "               threads: 64 appender threads; all (default)\n",
			       argv[0]);
			return 0;
		}
		if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
			seconds = atof(argv[++i]);
		else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
			dir_arg = argv[++i];
		else if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc)
			mode = argv[++i];
		else
			ok = false;
		if (!ok || seconds <= 0) {
			fprintf(stderr,
				"usage: %s [--seconds S] [--dir DIR] [--mode "
				"all|inline|loop|threads]\n"
				"  S: seconds of each mode and of the reference, per configuration "
				"(default 5)\n",
				argv[0]);
			return 2;
		}
	}
	bool any = false;
	for (int m = 0; m < MODES; m++)
		any |= run[m] = strcmp(mode, "all") == 0 || strcmp(mode, mode_names[m]) == 0;
	if (!any) {
		fprintf(stderr, "%s: unknown mode %s (all, inline, loop, threads)\n", argv[0],
			mode);
		return 2;
	}
	/* default: next to the binary, i.e. on the build directory's disk */
	char tmpl[4096], self[4096];
	snprintf(self, sizeof self, "%s", argv[0]);
	snprintf(tmpl, sizeof tmpl, "%s/bench-wal.XXXXXX", dir_arg ? dir_arg : dirname(self));
	char *dir = mkdtemp(tmpl);
	if (!dir) {
		perror("bench_wal: mkdtemp");
		return 2;
	}
	printf("bench_wal: dir %s, %d appenders, %d-byte entries, per configuration %d slices of "
	       "%.2f s of each (reference",
	       dir, APPENDERS, ENTRY_BYTES, SLICES, seconds / SLICES);
	for (int m = 0; m < MODES; m++)
		if (run[m])
			printf(", %s", mode_names[m]);
	printf(")\n");
	fflush(stdout);
	/* The machine is shared and its disk's speed drifts by several times within seconds, so
	 * the reference and the modes run in alternating short slices (reference, then each mode;
	 * SLICES of each per configuration) and each ratio compares totals measured over the
	 * same stretch of time. Every mode is compared with the same reference slices. */
	struct plain p;
	plain_open(&p, dir);
	const uint64_t groups[] = {1, 8, 64};
	struct result res[MODES][3];
	for (size_t i = 0; i < 3; i++) {
		struct loop *in = run[MODE_INLINE] ? loop_open(dir, "inline", groups[i]) : NULL;
		struct loop *l = run[MODE_LOOP] ? loop_open(dir, "loop", groups[i]) : NULL;
		struct shared *s = run[MODE_THREADS] ? thr_open(dir, groups[i]) : NULL;
		uint64_t plain_ops = 0, appends[MODES] = {0}, fsyncs[MODES] = {0};
		double plain_t = 0, plain_wait = 0, t[MODES] = {0}, slice = seconds / SLICES;
		for (int k = 0; k < SLICES; k++) {
			plain_slice(&p, slice, &plain_ops, &plain_t, &plain_wait);
			if (in)
				inline_slice(in, slice, &appends[MODE_INLINE], &fsyncs[MODE_INLINE],
					     &t[MODE_INLINE]);
			if (l)
				loop_slice(l, slice, &appends[MODE_LOOP], &fsyncs[MODE_LOOP],
					   &t[MODE_LOOP]);
			if (s)
				thr_slice(s, slice, &appends[MODE_THREADS], &fsyncs[MODE_THREADS],
					  &t[MODE_THREADS]);
		}
		double plain = (double)plain_ops / plain_t;
		double plain_wait_ms = 1000 * plain_wait / (double)plain_ops;
		for (int m = 0; m < MODES; m++) {
			if (!run[m])
				continue;
			double nf = fsyncs[m] ? (double)fsyncs[m] : 1;
			struct result *r = &res[m][i];
			*r = (struct result){.groups = groups[i],
					     .plain = plain,
					     .appends = (double)appends[m] / t[m],
					     .fsyncs = (double)fsyncs[m] / t[m],
					     .plain_wait_ms = plain_wait_ms,
					     .loop_wait_ms = -1,
					     .news_ms = -1,
					     .turn_ms = -1,
					     .hand_ms = -1};
			struct loop *ll = m == MODE_INLINE ? in : m == MODE_LOOP ? l : NULL;
			if (ll) {
				r->write_s = ll->write_s / t[m];
				r->writer_wait_ms = 1000 * ll->worker_wait_s / nf;
				r->turn_ms = 1000 * ll->turn_s / nf;
				segment_counts(ll->w, r);
			}
			if (m == MODE_LOOP) {
				r->loop_wait_ms = 1000 * l->loop_wait_s / nf;
				r->news_ms = 1000 * l->news_s / nf;
				r->hand_ms = 1000 * l->hand_s / nf;
			}
			if (m == MODE_THREADS) {
				r->write_s = s->write_s / t[m];
				r->writer_wait_ms = 1000 * s->writer_wait_s / nf;
				segment_counts(s->w, r);
			}
		}
		if (in)
			loop_close(in);
		if (l)
			loop_close(l);
		if (s)
			thr_close(s);
	}
	plain_close(&p);
	rm_dir(dir);
	for (int m = 0; m < MODES; m++)
		if (run[m])
			print_table(mode_titles[m], res[m], 3);
	for (int m = 0; m < MODES; m++)
		if (run[m])
			print_verdict(mode_names[m], res[m], 3);
	return 0;
}
