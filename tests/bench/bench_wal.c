/* bench_wal.c — `make bench-wal`: group commit against a plain write+fdatasync loop.
 *
 * 64 appender threads each append one 256-byte entry to their group (thread % groups) and
 * wait until it is durable; one writer thread does group commit as node/ will: everything
 * appended while a write is in flight goes into the next batch (one pwrite + one fdatasync).
 * The entries of one group get consecutive indexes, as Raft's would.
 * The reference, measured in the same run on the same disk (alternating slices), is one
 * 256-byte record per pwrite+fdatasync into a file written in full beforehand.
 * Usage: bench_wal [--seconds S] [--dir DIR]   (S: seconds of each, per configuration)
 */
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
static void plain_slice(struct plain *p, double seconds, uint64_t *ops, double *elapsed)
{
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
}

static void plain_close(struct plain *p)
{
	close(p->fd);
	unlink(p->path);
}

/* ---------------------------------------------------------------- group commit
 * Each appender owns a slot: it fills in its entry, marks the slot ready and sleeps on its
 * own semaphore. The writer gathers every ready slot into one batch (assigning each group's
 * next index), writes it, and wakes exactly the appenders whose entries it made durable —
 * a group-commit queue (as in RocksDB's write thread), with no lock the 64 appenders fight
 * over. The appenders' wake-ups run while the next batch is written. */
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
	struct slot slots[APPENDERS];
	sem_t work;
	_Atomic int writer_idle, live, stop;
	uint64_t next_index[APPENDERS + 1];
	uint64_t groups;
	int error;
	double write_s; /* time spent inside wal_batch_write (writer thread only) */
	char dir[4096];
};

struct appender_arg {
	struct shared *s;
	int i;
};

static void *appender(void *arg)
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
static int gather(struct shared *s, struct wal_batch *b, int *inflight)
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

static void *writer(void *arg)
{
	struct shared *s = arg;
	struct wal_batch *b = wal_batch_new();
	int inflight[APPENDERS];
	while (!s->error) {
		wal_batch_reset(b);
		int n = gather(s, b, inflight);
		if (n == 0) {
			if (atomic_load(&s->live) == 0)
				break;
			atomic_store(&s->writer_idle, 1);
			n = gather(s, b, inflight); /* a slot made ready before the flag was seen */
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
	}
	wal_batch_free(b);
	return NULL;
}

static struct shared *gc_open(const char *dir, uint64_t groups)
{
	struct shared *s = calloc(1, sizeof *s);
	snprintf(s->dir, sizeof s->dir, "%s/wal-%" PRIu64, dir, groups);
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
	return s;
}

/* Runs the appenders and the writer for `seconds`; adds what they did. */
static void gc_slice(struct shared *s, double seconds, uint64_t *appends, uint64_t *fsyncs,
		     double *elapsed)
{
	pthread_t wt, at[APPENDERS];
	struct appender_arg args[APPENDERS];
	struct wal_stats st0, st1;
	wal_stats_get(s->w, &st0);
	uint64_t a0 = 0, a1 = 0;
	for (int i = 0; i < APPENDERS; i++)
		a0 += s->slots[i].appends;
	atomic_store(&s->stop, 0);
	atomic_store(&s->live, APPENDERS);
	double t0 = now_s();
	for (int i = 0; i < APPENDERS; i++) {
		args[i] = (struct appender_arg){.s = s, .i = i};
		pthread_create(&at[i], NULL, appender, &args[i]);
	}
	pthread_create(&wt, NULL, writer, s);
	struct timespec ts = {.tv_sec = (time_t)seconds,
			      .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9)};
	nanosleep(&ts, NULL);
	atomic_store(&s->stop, 1);
	for (int i = 0; i < APPENDERS; i++)
		pthread_join(at[i], NULL);
	pthread_join(wt, NULL);
	*elapsed += now_s() - t0;
	wal_stats_get(s->w, &st1);
	for (int i = 0; i < APPENDERS; i++)
		a1 += s->slots[i].appends;
	*appends += a1 - a0;
	*fsyncs += st1.fsyncs - st0.fsyncs;
}

static void gc_close(struct shared *s)
{
	wal_close(s->w);
	rm_dir(s->dir);
	sem_destroy(&s->work);
	for (int i = 0; i < APPENDERS; i++)
		sem_destroy(&s->slots[i].durable);
	free(s);
}

int main(int argc, char **argv)
{
	double seconds = 5; /* per configuration: of the reference, and of group commit */
	const char *dir_arg = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
			seconds = atof(argv[++i]);
		else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
			dir_arg = argv[++i];
		else {
			fprintf(stderr, "usage: %s [--seconds S] [--dir DIR]\n", argv[0]);
			return 2;
		}
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
	       "%.2f s of each\n",
	       dir, APPENDERS, ENTRY_BYTES, SLICES, seconds / SLICES);
	/* The machine is shared and its disk's speed drifts by several times within seconds, so
	 * the reference and group commit run in alternating short slices (SLICES of each per
	 * configuration) and each ratio compares totals measured over the same stretch of time. */
	struct plain p;
	plain_open(&p, dir);
	const uint64_t groups[] = {1, 8, 64};
	for (size_t i = 0; i < 3; i++) {
		struct shared *s = gc_open(dir, groups[i]);
		uint64_t plain_ops = 0, appends = 0, fsyncs = 0;
		double plain_t = 0, gc_t = 0, slice = seconds / SLICES;
		for (int k = 0; k < SLICES; k++) {
			plain_slice(&p, slice, &plain_ops, &plain_t);
			gc_slice(s, slice, &appends, &fsyncs, &gc_t);
		}
		double plain = (double)plain_ops / plain_t, a = (double)appends / gc_t,
		       f = (double)fsyncs / gc_t;
		printf("%2" PRIu64 " groups: plain write+fdatasync %7.0f/s | group commit %8.0f "
		       "appends/s %6.0f fsyncs/s %5.1f entries/fsync | %6.1fx appends %5.2fx "
		       "fsyncs | writer busy %3.0f%%, %.2f ms/batch\n",
		       groups[i], plain, a, f, f > 0 ? a / f : 0, a / plain, f / plain,
		       100 * s->write_s / gc_t, fsyncs ? 1000 * s->write_s / (double)fsyncs : 0);
		fflush(stdout);
		gc_close(s);
	}
	plain_close(&p);
	rm_dir(dir);
	return 0;
}
