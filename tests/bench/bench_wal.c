/* bench_wal.c — `make bench-wal`: group commit against a plain write+fdatasync loop.
 *
 * 64 appender threads each append one 256-byte entry to their group (thread % groups) and
 * wait until it is durable; one writer thread does group commit as node/ will: everything
 * appended while a write is in flight goes into the next batch (one pwrite + one fdatasync).
 * The reference, measured in the same run on the same disk, is one 256-byte record per
 * pwrite+fdatasync into a preallocated file. Usage: bench_wal [--seconds S] [--dir DIR]
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "wal/wal.h"

enum { APPENDERS = 64, ENTRY_BYTES = 256, PLAIN_FILE_MB = 16 };

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
static void plain_loop(const char *dir, double seconds, double *ops_s)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/plain.dat", dir);
	/* the reference at its best: the file is written (not just fallocated) beforehand, so
	 * each fdatasync flushes data only, never file system metadata */
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	static uint8_t zero[1 << 20];
	for (int i = 0; fd >= 0 && i < PLAIN_FILE_MB; i++) {
		if (pwrite(fd, zero, sizeof zero, (off_t)i << 20) != (ssize_t)sizeof zero) {
			close(fd);
			fd = -1;
		}
	}
	if (fd < 0 || fsync(fd) != 0) {
		perror("bench_wal: plain file");
		exit(2);
	}
	uint8_t rec[ENTRY_BYTES + 32];
	memset(rec, 0xab, sizeof rec);
	uint64_t n = 0, off = 0;
	double t0 = now_s(), t;
	do {
		if (pwrite(fd, rec, sizeof rec, (off_t)off) != (ssize_t)sizeof rec ||
		    fdatasync(fd) != 0) {
			perror("bench_wal: plain write");
			exit(2);
		}
		off = (off + sizeof rec) % ((PLAIN_FILE_MB - 1) << 20);
		n++;
		t = now_s();
	} while (t - t0 < seconds);
	*ops_s = (double)n / (t - t0);
	close(fd);
	unlink(path);
}

/* ---------------------------------------------------------------- group commit */
struct shared {
	struct wal *w;
	pthread_mutex_t mu;
	pthread_cond_t work, done;
	struct wal_batch *pending;
	uint64_t pending_gen; /* generation the pending batch will get */
	uint64_t durable_gen; /* highest generation durable */
	uint64_t next_index[APPENDERS + 1];
	uint64_t groups;
	bool stop, writer_waiting;
	int error;
	uint64_t appends;
	double write_s; /* time spent inside wal_batch_write (writer thread only) */
};

static void *appender(void *arg)
{
	struct shared *s = ((void **)arg)[0];
	uint64_t group = 1 + (uint64_t)(uintptr_t)((void **)arg)[1] % s->groups;
	uint8_t data[ENTRY_BYTES];
	memset(data, (int)group, sizeof data);
	pthread_mutex_lock(&s->mu);
	while (!s->stop && !s->error) {
		struct raft_entry e = {.index = s->next_index[group]++,
				       .term = 1,
				       .data = {.base = data, .len = sizeof data}};
		if (wal_batch_entries(s->pending, group, &e, 1) != WAL_OK) {
			s->error = 1;
			break;
		}
		uint64_t mine = s->pending_gen;
		if (s->writer_waiting)
			pthread_cond_signal(&s->work);
		while (s->durable_gen < mine && !s->error)
			pthread_cond_wait(&s->done, &s->mu);
		s->appends++;
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static void *writer(void *arg)
{
	struct shared *s = arg;
	struct wal_batch *writing = wal_batch_new();
	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (wal_batch_empty(s->pending) && !s->stop) {
			s->writer_waiting = true;
			pthread_cond_wait(&s->work, &s->mu);
			s->writer_waiting = false;
		}
		if (wal_batch_empty(s->pending) && s->stop)
			break;
		struct wal_batch *b = s->pending; /* swap: appends go on into the other one */
		s->pending = writing;
		writing = b;
		uint64_t gen = s->pending_gen++;
		pthread_mutex_unlock(&s->mu);
		double tw = now_s();
		int rc = wal_batch_write(s->w, writing);
		s->write_s += now_s() - tw;
		wal_batch_reset(writing);
		pthread_mutex_lock(&s->mu);
		if (rc != WAL_OK) {
			fprintf(stderr, "bench_wal: write: %s\n", wal_strerror(rc));
			s->error = 1;
		}
		s->durable_gen = gen;
		if (s->error)
			break;
		/* wake the appenders without holding the lock they all need first */
		pthread_mutex_unlock(&s->mu);
		pthread_cond_broadcast(&s->done);
		pthread_mutex_lock(&s->mu);
	}
	pthread_cond_broadcast(&s->done);
	pthread_mutex_unlock(&s->mu);
	wal_batch_free(writing);
	return NULL;
}

static void group_commit(const char *dir, uint64_t groups, double seconds, double *appends_s,
			 double *fsyncs_s)
{
	char wdir[4096];
	snprintf(wdir, sizeof wdir, "%s/wal-%" PRIu64, dir, groups);
	struct shared s = {.groups = groups, .pending_gen = 1};
	struct wal_options o;
	wal_options_default(&o);
	int rc = wal_open(wdir, &o, false, &s.w, NULL);
	if (rc) {
		fprintf(stderr, "bench_wal: open: %s\n", wal_strerror(rc));
		exit(2);
	}
	for (uint64_t g = 0; g <= APPENDERS; g++)
		s.next_index[g] = 1;
	pthread_mutex_init(&s.mu, NULL);
	pthread_cond_init(&s.work, NULL);
	pthread_cond_init(&s.done, NULL);
	s.pending = wal_batch_new();
	pthread_t wt, at[APPENDERS];
	void *args[APPENDERS][2];
	struct wal_stats st0, st1;
	wal_stats_get(s.w, &st0);
	double t0 = now_s();
	pthread_create(&wt, NULL, writer, &s);
	for (uintptr_t i = 0; i < APPENDERS; i++) {
		args[i][0] = &s;
		args[i][1] = (void *)i;
		pthread_create(&at[i], NULL, appender, args[i]);
	}
	struct timespec ts = {.tv_sec = (time_t)seconds,
			      .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9)};
	nanosleep(&ts, NULL);
	pthread_mutex_lock(&s.mu);
	s.stop = true;
	pthread_cond_broadcast(&s.work);
	pthread_mutex_unlock(&s.mu);
	for (int i = 0; i < APPENDERS; i++)
		pthread_join(at[i], NULL);
	pthread_mutex_lock(&s.mu);
	pthread_cond_broadcast(&s.work);
	pthread_mutex_unlock(&s.mu);
	pthread_join(wt, NULL);
	double t = now_s() - t0;
	wal_stats_get(s.w, &st1);
	if (s.error)
		exit(2);
	*appends_s = (double)s.appends / t;
	*fsyncs_s = (double)(st1.fsyncs - st0.fsyncs) / t;
	fprintf(stderr, "  (writer busy %.0f%% of the run, %.3f ms per batch write)\n",
		100 * s.write_s / t, 1000 * s.write_s / (double)(st1.fsyncs - st0.fsyncs));
	wal_batch_free(s.pending);
	wal_close(s.w);
	rm_dir(wdir);
}

int main(int argc, char **argv)
{
	double seconds = 3;
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
	printf("bench_wal: dir %s, %d appenders, %d-byte entries, %.1f s per run\n", dir, APPENDERS,
	       ENTRY_BYTES, seconds);
	/* the reference runs right before each group-commit run: the machine is shared and its
	 * disk's speed drifts, so each ratio compares runs a few seconds apart */
	const uint64_t groups[] = {1, 8, 64};
	for (size_t i = 0; i < 3; i++) {
		double plain, a, f;
		plain_loop(dir, seconds, &plain);
		group_commit(dir, groups[i], seconds, &a, &f);
		printf("%2" PRIu64 " groups: plain write+fdatasync %7.0f/s | group commit %8.0f "
		       "appends/s %6.0f fsyncs/s %5.1f entries/fsync | %6.1fx appends %5.2fx "
		       "fsyncs\n",
		       groups[i], plain, a, f, f > 0 ? a / f : 0, a / plain, f / plain);
		fflush(stdout);
	}
	rm_dir(dir);
	return 0;
}
