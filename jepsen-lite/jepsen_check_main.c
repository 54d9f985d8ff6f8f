/* jepsen_check_main.c — `jepsen_check HISTORY.jsonl`: the verdict on a recorded history.
 *
 * Register keys are checked for linearizability, set keys with the set check; a violation is
 * shown as the smallest failing window of history lines found. Exit status: 0 valid,
 * 1 invalid, 2 unknown (time limit or search bound reached), 3 unreadable or malformed input.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jepsen-lite/history.h"
#include "jepsen-lite/linearizable.h"
#include "jepsen-lite/setcheck.h"

#define EXPLAIN_KEYS_MAX 3  /* violating keys shrunk and printed */
#define EXPLAIN_SECONDS  20 /* time given to shrinking each of them */
#define EXIT_BAD_INPUT   3

static void usage(FILE *out)
{
	fprintf(out, "usage: jepsen_check [--time-limit SECONDS] [--max-lines N] [--verbose] "
		     "HISTORY.jsonl\n"
		     "  --time-limit S  give up with 'unknown' (exit 2) after S seconds "
		     "(default 120)\n"
		     "  --max-lines N   history lines printed per violation (default 200)\n"
		     "  --verbose       one line per key\n"
		     "exit: 0 valid, 1 invalid, 2 unknown, 3 bad input\n");
}

static void explain(const struct jl_history *h, uint32_t key, size_t max_lines)
{
	struct jl_lin_witness w;
	int64_t deadline = jl_now_ns() + (int64_t)EXPLAIN_SECONDS * 1000000000;
	if (jl_lin_explain_key(h, key, deadline, &w)) {
		printf("  (out of memory while shrinking)\n");
		return;
	}
	printf("  smallest failing window found: %zu operation%s%s\n", w.nops,
	       w.nops == 1 ? "" : "s",
	       w.searched_all ? "" : " (shrinking stopped at its time limit)");
	if (w.unknown_start)
		printf("  (earlier operations on the key are left out: the window fails whatever "
		       "value "
		       "the register held when it began)\n");
	printf("  operations still running at the window's edges count as indeterminate\n");
	for (size_t i = 0; i < w.nevents && i < max_lines; i++) {
		printf("  line %u: ", w.events[i] + 1);
		jl_history_print_event(h, w.events[i], stdout);
		putchar('\n');
	}
	if (w.nevents > max_lines)
		printf("  ... %zu more lines\n", w.nevents - max_lines);
	jl_lin_witness_free(&w);
}

int main(int argc, char **argv)
{
	double time_limit = 120;
	size_t max_lines = 200;
	int verbose = 0;
	static const struct option longopts[] = {{"time-limit", required_argument, NULL, 't'},
						 {"max-lines", required_argument, NULL, 'm'},
						 {"verbose", no_argument, NULL, 'v'},
						 {"help", no_argument, NULL, 'h'},
						 {NULL, 0, NULL, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "t:m:vh", longopts, NULL)) != -1) {
		char *end;
		switch (c) {
		case 't':
			time_limit = strtod(optarg, &end);
			if (*end || time_limit <= 0) {
				fprintf(stderr, "jepsen_check: bad --time-limit '%s'\n", optarg);
				return EXIT_BAD_INPUT;
			}
			break;
		case 'm':
			max_lines = strtoul(optarg, &end, 10);
			if (*end) {
				fprintf(stderr, "jepsen_check: bad --max-lines '%s'\n", optarg);
				return EXIT_BAD_INPUT;
			}
			break;
		case 'v':
			verbose = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_BAD_INPUT;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return EXIT_BAD_INPUT;
	}
	const char *path = argv[optind];
	int64_t t0 = jl_now_ns();
	int64_t deadline = t0 + (int64_t)(time_limit * 1e9);

	struct jl_history h;
	char err[512];
	if (jl_history_load(&h, path, err, sizeof err)) {
		fprintf(stderr, "jepsen_check: %s: %s\n", path, err);
		printf("verdict: unknown (the history could not be read)\n");
		return EXIT_BAD_INPUT;
	}
	size_t nok = 0, nfail = 0, ninfo = 0;
	for (size_t i = 0; i < h.nops; i++) {
		nok += h.ops[i].status == JL_DONE_OK;
		nfail += h.ops[i].status == JL_DONE_FAIL;
		ninfo += h.ops[i].status == JL_DONE_INFO;
	}
	printf("history %s: %zu operations (%zu ok, %zu fail, %zu info) on %zu keys, %zu nemesis "
	       "events\n",
	       path, h.nops, nok, nfail, ninfo, h.nkeys, h.nnemesis);
	fflush(stdout);

	/* A hard key must not starve the others: each first gets a quarter of the time limit,
	 * then the keys left undecided share what remains. */
	size_t nreg = 0, nset = 0, ninvalid = 0, nunknown = 0, nexplained = 0;
	uint64_t explored = 0;
	enum jl_verdict *verdict = malloc((h.nkeys + 1) * sizeof *verdict);
	if (!verdict) {
		fprintf(stderr, "jepsen_check: out of memory\n");
		jl_history_free(&h);
		return JL_UNKNOWN;
	}
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t k = 0; k < h.nkeys; k++) {
			if (jl_key_is_set(&h, k) || (pass == 1 && verdict[k] != JL_UNKNOWN))
				continue;
			int64_t end = jl_now_ns() + (int64_t)(time_limit * 0.25e9);
			if (pass == 1 || end > deadline)
				end = deadline;
			verdict[k] = jl_lin_check_key(&h, k, end, &explored);
		}
	}
	for (uint32_t k = 0; k < h.nkeys; k++) {
		enum jl_verdict v = verdict[k];
		if (jl_key_is_set(&h, k)) {
			struct jl_set_result r;
			nset++;
			v = jl_set_check_key(&h, k, &r, stdout);
			printf("set %s: %s: %zu adds (%zu ok, %zu fail, %zu info), %zu reads; "
			       "final read holds %zu (%zu of them indeterminate adds); lost %zu, "
			       "never added %zu, failed-but-present %zu\n",
			       h.keys[k],
			       v == JL_VALID     ? "ok"
			       : v == JL_INVALID ? "NOT OK"
						 : "unknown (no successful read)",
			       r.attempted, r.acknowledged, r.failed, r.indeterminate, r.reads,
			       r.final_size, r.indeterminate_present, r.lost, r.unexpected,
			       r.resurrected);
		} else {
			nreg++;
			if (v == JL_INVALID) {
				printf("key %s: NOT linearizable\n", h.keys[k]);
				if (nexplained++ < EXPLAIN_KEYS_MAX)
					explain(&h, k, max_lines);
			} else if (v == JL_UNKNOWN) {
				printf("key %s: unknown (time limit or search bound reached)\n",
				       h.keys[k]);
			} else if (verbose) {
				printf("key %s: linearizable\n", h.keys[k]);
			}
		}
		ninvalid += v == JL_INVALID;
		nunknown += v == JL_UNKNOWN;
		fflush(stdout);
	}
	double secs = (double)(jl_now_ns() - t0) / 1e9;
	printf("checked %zu register keys and %zu sets in %.2f s (%llu configurations explored)\n",
	       nreg, nset, secs, (unsigned long long)explored);
	int rc;
	if (ninvalid) {
		printf("verdict: INVALID (%zu key%s with a violation)\n", ninvalid,
		       ninvalid == 1 ? "" : "s");
		rc = JL_INVALID;
	} else if (nunknown) {
		printf("verdict: unknown (%zu key%s undecided)\n", nunknown,
		       nunknown == 1 ? "" : "s");
		rc = JL_UNKNOWN;
	} else {
		printf("verdict: valid\n");
		rc = JL_VALID;
	}
	free(verdict);
	jl_history_free(&h);
	return rc;
}
