/* main.c — nodesim's command line (tests/nodesim/README.md):
 *   nodesim run --seed S [--trace]        one seed; exit 1 if it fails
 *   nodesim replay --seed S               the seed twice: the two runs must be identical
 *   nodesim sweep --seeds N [--from S] [--jobs J]
 *                                         seeds S..S+N-1, one forked process each
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/nodesim/nodesim.h"

#define SEED_WALL_S 60 /* a child taking longer is a hang: the seed fails */

static const char *prog = "nodesim";

/* The seed being run in this process, for exit_cb. */
static bool in_run;
static uint64_t run_seed;

/* The engine ends the process on a fatal error (node_fatal: exit(1)); a run that ends so has
 * failed, and says which seed it was and removes its node directories. */
static void exit_cb(int status, void *arg)
{
	(void)arg;
	if (!in_run)
		return;
	in_run = false;
	printf("FAIL seed %" PRIu64 ": the process exited inside the run (status %d)\n"
	       "  replay: build/tests/nodesim/nodesim run --seed %" PRIu64 " --trace\n",
	       run_seed, status, run_seed);
	fflush(stdout);
	ns_remove_root(NULL, (int)getpid(), run_seed);
}

static void run_seed_once(uint64_t seed, bool trace, struct ns_result *r)
{
	struct ns_opts o = {.seed = seed, .trace = trace};
	in_run = true;
	run_seed = seed;
	ns_run(&o, r);
	in_run = false;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s run --seed S [--trace]\n"
		"       %s replay --seed S\n"
		"       %s sweep --seeds N [--from S] [--jobs J]\n"
		"Whole-node simulation: 3 or 5 node engines over the real WAL and LMDB on tmpfs,\n"
		"a simulated network and disk, faults, clients; histories checked linearizable.\n",
		prog, prog, prog);
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-')
		return -1;
	*out = v;
	return 0;
}

/* What a sweep child tells its parent (one write, under PIPE_BUF: atomic). */
struct report {
	uint64_t seed, ops, probe_ms, ok;
	uint64_t count[NS_C_COUNT];
};

_Static_assert(sizeof(struct report) <= PIPE_BUF, "a report must be one atomic pipe write");

static int report_fd = -1; /* a sweep child's end of the pipe */

static void print_counts(const uint64_t *count, const uint64_t *seeds_with)
{
	for (int i = 0; i < NS_C_COUNT; i++) {
		printf("%s%s %" PRIu64,
		       i == 0       ? "  covered: "
		       : i % 4 == 0 ? ",\n    "
				    : ", ",
		       ns_count_names[i], count[i]);
		if (seeds_with != NULL)
			printf(" (%" PRIu64 " seeds)", seeds_with[i]);
	}
	printf("\n");
}

static void print_fail(const struct ns_result *r, uint64_t seed)
{
	printf("FAIL seed %" PRIu64 " (%d nodes, %d groups, mix %s, apply cap %" PRIu32
	       ", apply commit %" PRIu32 " ms, snapshot bytes %" PRIu64 "%s%s%s%s): %s\n"
	       "  replay: build/tests/nodesim/nodesim run --seed %" PRIu64 " --trace\n",
	       seed, r->nodes, r->groups, r->mix, r->apply_cap, r->apply_commit_ms, r->snapshot_bytes,
	       r->members ? ", members"
	       : r->moves ? ", moves"
			  : "",
	       r->quiesce ? ", quiesce" : "", r->lease ? ", lease" : "",
	       r->adds   ? ", adds"
	       : r->ring ? ", ring"
			 : "",
	       r->why, seed);
}

static int cmd_run(uint64_t seed, bool trace)
{
	struct ns_result r;
	run_seed_once(seed, trace, &r);
	if (!r.ok) {
		print_fail(&r, seed);
		return 1;
	}
	printf("ok seed %" PRIu64 " (%d nodes, %d groups, mix %s, apply cap %" PRIu32
	       ", apply commit %" PRIu32 " ms, snapshot bytes %" PRIu64 "%s%s%s%s): %zu operations (%zu ok), "
	       "%zu events, trace %016" PRIx64 "\n",
	       seed, r.nodes, r.groups, r.mix, r.apply_cap, r.apply_commit_ms, r.snapshot_bytes,
	       r.members ? ", members"
	       : r.moves ? ", moves"
			 : "",
	       r.quiesce ? ", quiesce" : "", r.lease ? ", lease" : "",
	       r.adds   ? ", adds"
	       : r.ring ? ", ring"
			: "",
	       r.ops, r.ok_ops, r.events, r.hash);
	printf("  slowest liveness probe: %" PRIu64 " ms\n", r.probe_ms);
	print_counts(r.count, NULL);
	return 0;
}

static int cmd_replay(uint64_t seed)
{
	struct ns_result a, b;
	run_seed_once(seed, false, &a);
	run_seed_once(seed, false, &b);
	if (a.hash != b.hash || a.ok != b.ok || a.events != b.events) {
		printf("FAIL seed %" PRIu64 ": not deterministic (trace %016" PRIx64
		       " then %016" PRIx64 ", events %zu then %zu)\n",
		       seed, a.hash, b.hash, a.events, b.events);
		return 1;
	}
	printf("seed %" PRIu64 " replays identically (trace %016" PRIx64 ", %zu events, %s)\n",
	       seed, a.hash, a.events, a.ok ? "ok" : "failing");
	return 0;
}

static int child(uint64_t seed)
{
	alarm(SEED_WALL_S);
	struct ns_result r;
	run_seed_once(seed, false, &r);
	struct report rep = {.seed = seed, .ops = r.ops, .probe_ms = r.probe_ms, .ok = r.ok};
	memcpy(rep.count, r.count, sizeof rep.count);
	if (write(report_fd, &rep, sizeof rep) != (ssize_t)sizeof rep)
		perror("nodesim: report");
	if (!r.ok) {
		print_fail(&r, seed);
		fflush(stdout);
		return 1;
	}
	return 0;
}

static int cmd_sweep(uint64_t from, uint64_t n, int jobs)
{
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	uint64_t next = from, done = 0, failed = 0;
	int running = 0;
	pid_t pids[64];
	uint64_t seeds[64];
	memset(pids, 0, sizeof pids);
	int fds[2];
	if (pipe(fds) < 0 || fcntl(fds[0], F_SETFL, O_NONBLOCK) < 0) {
		perror("pipe");
		return 2;
	}
	report_fd = fds[1];
	uint64_t total[NS_C_COUNT] = {0}, with[NS_C_COUNT] = {0}, ops_min = UINT64_MAX,
		 ops_min_seed = 0, reported = 0, probe_max = 0, probe_max_seed = 0;
	fflush(stdout);
	while (done < n) {
		while (running < jobs && next < from + n) {
			int slot = 0;
			while (pids[slot] != 0)
				slot++;
			pid_t p = fork();
			if (p < 0) {
				perror("fork");
				return 2;
			}
			if (p == 0)
				_exit(child(next));
			pids[slot] = p;
			seeds[slot] = next++;
			running++;
		}
		int st;
		pid_t p = wait(&st);
		if (p < 0) {
			perror("wait");
			return 2;
		}
		struct report rep;
		while (read(fds[0], &rep, sizeof rep) == (ssize_t)sizeof rep) {
			reported++;
			for (int i = 0; i < NS_C_COUNT; i++) {
				total[i] += rep.count[i];
				with[i] += rep.count[i] > 0;
			}
			if (rep.probe_ms > probe_max) {
				probe_max = rep.probe_ms;
				probe_max_seed = rep.seed;
			}
			if (rep.ok && rep.ops < ops_min) { /* a failed run may have stopped early */
				ops_min = rep.ops;
				ops_min_seed = rep.seed;
			}
		}
		for (int i = 0; i < jobs; i++) {
			if (pids[i] != p)
				continue;
			pids[i] = 0;
			running--;
			done++;
			if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
				failed++;
				if (WIFSIGNALED(st))
					printf("FAIL seed %" PRIu64
					       ": the run died by signal %d%s\n"
					       "  replay: build/tests/nodesim/nodesim run --seed "
					       "%" PRIu64 " --trace\n",
					       seeds[i], WTERMSIG(st),
					       WTERMSIG(st) == SIGALRM ? " (a hang)" : "",
					       seeds[i]);
				fflush(stdout);
				/* a child killed by a signal left its node directories */
				ns_remove_root(NULL, (int)p, seeds[i]);
			}
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("nodesim sweep: %" PRIu64 " seeds from %" PRIu64 ", %" PRIu64 " failed, %.1f s\n", n,
	       from, failed, s);
	if (reported > 0) {
		printf("  client operations per passing seed: at least %" PRIu64 " (seed %" PRIu64
		       ")\n",
		       ops_min, ops_min_seed);
		printf("  slowest liveness probe: %" PRIu64 " ms (seed %" PRIu64 ")\n", probe_max,
		       probe_max_seed);
		print_counts(total, with);
	}
	close(fds[0]);
	close(fds[1]);
	return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	on_exit(exit_cb, NULL);
	const char *cmd = argv[1];
	uint64_t seed = 0, seeds = 0, from = 1, jobs = 2;
	bool have_seed = false, trace = false;
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		uint64_t *dst = NULL;
		if (strcmp(a, "--trace") == 0) {
			trace = true;
			continue;
		}
		if (strcmp(a, "--seed") == 0) {
			dst = &seed;
			have_seed = true;
		} else if (strcmp(a, "--seeds") == 0)
			dst = &seeds;
		else if (strcmp(a, "--from") == 0)
			dst = &from;
		else if (strcmp(a, "--jobs") == 0)
			dst = &jobs;
		if (dst == NULL || i + 1 >= argc || parse_u64(argv[i + 1], dst) < 0) {
			fprintf(stderr, "%s: bad or unknown argument '%s'\n", prog, a);
			usage(stderr);
			return 2;
		}
		i++;
	}
	if (strcmp(cmd, "run") == 0 && have_seed)
		return cmd_run(seed, trace);
	if (strcmp(cmd, "replay") == 0 && have_seed)
		return cmd_replay(seed);
	if (strcmp(cmd, "sweep") == 0 && seeds > 0 && jobs >= 1 && jobs <= 64)
		return cmd_sweep(from, seeds, (int)jobs);
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
		usage(stdout);
		return 0;
	}
	usage(stderr);
	return 2;
}
