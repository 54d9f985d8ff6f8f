/* main.c — the `sim` command: run or replay one seed, sweep many, election statistics, and
 * scenario scripts (usage below). A sweep forks one process per seed, J at a time, so a crash
 * or hang of the core is reported with its seed like any invariant violation.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/sim/sim.h"

#define SEED_TIMEOUT_S 60 /* a seed that runs longer is a hang */
#define FAILS_SHOWN    20

static const char *prog = "sim";

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: %s run --seed S [--trace]\n"
		"       %s replay --seed S [--trace]\n"
		"       %s sweep --seeds N [--from S] [--jobs J] [--scenarios DIR] [--elect N]\n"
		"       %s elect-stats --seeds N [--from S]\n"
		"       %s scenario FILE...\n",
		prog, prog, prog, prog, prog);
	return 2;
}

struct args {
	uint64_t seed, seeds, from, jobs, elect;
	bool has_seed, trace;
	const char *scenarios;
};

static int parse_args(int argc, char **argv, struct args *a)
{
	memset(a, 0, sizeof(*a));
	a->seeds = 100;
	a->from = 1;
	a->jobs = 1;
	a->elect = 1000;
	for (int i = 2; i < argc; i++) {
		const char *k = argv[i];
		if (!strcmp(k, "--trace")) {
			a->trace = true;
			continue;
		}
		if (i + 1 >= argc)
			return -1;
		const char *v = argv[++i];
		char *end;
		uint64_t x = strtoull(v, &end, 10);
		if (!strcmp(k, "--scenarios")) {
			a->scenarios = v;
			continue;
		}
		if (*end)
			return -1;
		if (!strcmp(k, "--seed")) {
			a->seed = x;
			a->has_seed = true;
		} else if (!strcmp(k, "--seeds")) {
			a->seeds = x;
		} else if (!strcmp(k, "--from")) {
			a->from = x;
		} else if (!strcmp(k, "--jobs")) {
			a->jobs = x ? x : 1;
		} else if (!strcmp(k, "--elect")) {
			a->elect = x;
		} else {
			return -1;
		}
	}
	return 0;
}

static void print_result(uint64_t seed, const struct run_result *r)
{
	printf("seed %" PRIu64 ": %d nodes, mix %s: %s (%" PRIu64 " steps, %" PRIu64
	       " ticks, trace hash %016" PRIx64 ")\n",
	       seed, r->nodes, r->mix, r->ok ? "ok" : "FAILED", r->steps, r->end_time / SIM_TICK,
	       r->trace_hash);
	printf("  %s\n", r->stats);
	if (!r->ok)
		printf("  %s\n", r->failure);
}

static int cmd_run(const struct args *a)
{
	struct run_opts o = {.trace = a->trace};
	struct run_result r;
	sim_run_seed(a->seed, &o, &r);
	print_result(a->seed, &r);
	return r.ok ? 0 : 1;
}

static int cmd_replay(const struct args *a)
{
	struct run_opts o = {.trace = a->trace};
	struct run_result r1, r2;
	sim_run_seed(a->seed, &o, &r1);
	print_result(a->seed, &r1);
	sim_run_seed(a->seed, &o, &r2);
	print_result(a->seed, &r2);
	bool same = r1.trace_hash == r2.trace_hash && r1.steps == r2.steps && r1.ok == r2.ok;
	printf("replay: trace hashes %016" PRIx64 " and %016" PRIx64 ": %s\n", r1.trace_hash,
	       r2.trace_hash, same ? "identical" : "DIFFERENT (nondeterminism!)");
	return same && r1.ok ? 0 : 1;
}

static int elect_stats(uint64_t from, uint64_t n, bool verbose)
{
	uint64_t ok = 0, hist[21] = {0};
	for (uint64_t s = from; s < from + n; s++) {
		uint64_t ticks;
		if (sim_elect_once(s, &ticks))
			ok++;
		hist[ticks > 20 ? 20 : ticks]++;
	}
	double frac = n ? (double)ok / (double)n : 0;
	printf("elect-stats: %" PRIu64 "/%" PRIu64 " seeds (%.2f%%) elected a leader within 2 "
	       "election timeouts (3 nodes, no faults)\n",
	       ok, n, 100.0 * frac);
	if (verbose) {
		printf("  ticks until a leader:");
		for (int i = 0; i <= 20; i++)
			if (hist[i])
				printf(" %d:%" PRIu64, i, hist[i]);
		printf("\n");
	}
	return frac >= 0.99 ? 0 : 1;
}

static int run_scenarios(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d) {
		fprintf(stderr, "sweep: cannot open scenario directory %s: %s\n", dir,
			strerror(errno));
		return 1;
	}
	char *names[256];
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < 256) {
		size_t l = strlen(e->d_name);
		if (l > 4 && !strcmp(e->d_name + l - 4, ".txt"))
			names[n++] = strdup(e->d_name);
	}
	closedir(d);
	for (int i = 0; i < n; i++) /* sorted, so the order is the same everywhere */
		for (int j = i + 1; j < n; j++)
			if (strcmp(names[j], names[i]) < 0) {
				char *t = names[i];
				names[i] = names[j];
				names[j] = t;
			}
	int failed = 0;
	for (int i = 0; i < n; i++) {
		char path[1024];
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		int rc = scenario_run_file(path, false);
		printf("scenario %s: %s\n", path, rc ? "FAILED" : "ok");
		failed += rc != 0;
		free(names[i]);
	}
	printf("scenarios: %d run, %d failed\n", n, failed);
	return failed ? 1 : 0;
}

struct child {
	pid_t pid;
	uint64_t seed;
};

static int cmd_sweep(const struct args *a)
{
	double t0 = now_s();
	int rc = 0;
	if (a->scenarios)
		rc |= run_scenarios(a->scenarios);
	if (a->elect)
		rc |= elect_stats(1, a->elect, false);
	fflush(stdout);

	struct child kids[64];
	uint64_t jobs = a->jobs > 64 ? 64 : a->jobs;
	uint64_t running = 0, next = a->from, end = a->from + a->seeds, failed = 0;
	uint64_t by_size_fail[8] = {0};
	while (next < end || running) {
		while (running < jobs && next < end) {
			fflush(stdout);
			pid_t pid = fork();
			if (pid < 0) {
				perror("fork");
				return 1;
			}
			if (pid == 0) {
				alarm(SEED_TIMEOUT_S);
				struct run_opts o = {0};
				struct run_result r;
				sim_run_seed(next, &o, &r);
				if (!r.ok) {
					printf("FAIL seed %" PRIu64 " (%d nodes, mix %s): %s\n",
					       next, r.nodes, r.mix, r.failure);
					fflush(stdout);
				}
				_exit(r.ok ? 0 : 1);
			}
			kids[running++] = (struct child){pid, next++};
		}
		int status;
		pid_t pid = wait(&status);
		if (pid < 0)
			break;
		for (uint64_t i = 0; i < running; i++) {
			if (kids[i].pid != pid)
				continue;
			uint64_t seed = kids[i].seed;
			kids[i] = kids[--running];
			if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
				break;
			int nodes;
			const char *mix;
			sim_params_of(seed, &nodes, &mix);
			failed++;
			by_size_fail[nodes]++;
			if (WIFSIGNALED(status))
				printf("FAIL seed %" PRIu64
				       " (%d nodes, mix %s): killed by signal %d%s\n",
				       seed, nodes, mix, WTERMSIG(status),
				       WTERMSIG(status) == SIGALRM ? " (timeout: a hang?)" : "");
			if (failed <= FAILS_SHOWN)
				printf("  replay: %s run --seed %" PRIu64 " --trace\n", prog, seed);
			break;
		}
	}
	double dt = now_s() - t0;
	printf("sweep: seeds %" PRIu64 "..%" PRIu64 ", %" PRIu64 " failed (1/3/5/7 nodes: %" PRIu64
	       "/%" PRIu64 "/%" PRIu64 "/%" PRIu64 "), %.1f s with %" PRIu64 " jobs\n",
	       a->from, end - 1, failed, by_size_fail[1], by_size_fail[3], by_size_fail[5],
	       by_size_fail[7], dt, jobs);
	return rc || failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	prog = argv[0];
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		return usage();
	const char *cmd = argv[1];
	if (!strcmp(cmd, "scenario")) {
		int failed = 0;
		bool trace = false;
		for (int i = 2; i < argc; i++) {
			if (!strcmp(argv[i], "--trace")) {
				trace = true;
				continue;
			}
			int rc = scenario_run_file(argv[i], trace);
			printf("scenario %s: %s\n", argv[i], rc ? "FAILED" : "ok");
			failed += rc != 0;
		}
		return failed ? 1 : 0;
	}
	struct args a;
	if (parse_args(argc, argv, &a) != 0)
		return usage();
	if (!strcmp(cmd, "run") || !strcmp(cmd, "replay")) {
		if (!a.has_seed)
			return usage();
		return !strcmp(cmd, "run") ? cmd_run(&a) : cmd_replay(&a);
	}
	if (!strcmp(cmd, "sweep"))
		return cmd_sweep(&a);
	if (!strcmp(cmd, "elect-stats"))
		return elect_stats(a.from, a.seeds, true);
	return usage();
}
