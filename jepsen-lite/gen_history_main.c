/* gen_history_main.c — writes a synthetic register history, deterministic from a seed.
 *
 * Processes run against a linearizable register per key (each operation takes effect once,
 * between invocation and completion; some time out as info and take effect later or never), so
 * the output is linearizable unless --corrupt asks for stale reads: a checker test at scale.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define NIL INT64_MIN

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static bool chance(double p)
{
	return (double)(rnd() >> 11) / 9007199254740992.0 < p;
}

enum fn { READ, WRITE, CAS };
static const char *const fn_names[] = {"read", "write", "cas"};
enum phase { IDLE, PENDING, APPLIED };

struct proc {
	int64_t id;
	enum phase phase;
	enum fn fn;
	int key;
	int64_t a, b, result;
	bool ok;          /* applied cas succeeded */
	bool corrupt;     /* this read returns a stale value */
	int64_t inv_time; /* when invoked */
};

/* What a key's register went through, for making definite stale reads. */
struct reg {
	int64_t value;
	int64_t prev;           /* the value before the last change (NIL if none) */
	int64_t prev_done_time; /* the previous change's writer completed (INT64_MAX: not yet) */
	int64_t last_inv_time;  /* the last change's writer was invoked */
	int64_t last_done_time; /* the last change's writer completed (INT64_MAX: not yet) */
	int last_writer;        /* process slot of the last change's writer, -1 when done/none */
	int prev_writer;
};

/* A timed-out operation that may still take effect. */
struct limbo {
	enum fn fn;
	int key;
	int64_t a, b;
};

static int64_t now;

static void put_value(enum fn fn, int64_t a, int64_t b, bool done_read, int64_t result)
{
	if (fn == CAS) {
		if (a == NIL)
			printf("[null, %lld]", (long long)b);
		else
			printf("[%lld, %lld]", (long long)a, (long long)b);
	} else if (fn == READ) {
		if (!done_read || result == NIL)
			printf("null");
		else
			printf("%lld", (long long)result);
	} else {
		printf("%lld", (long long)a);
	}
}

static void event(const struct proc *p, const char *type, bool done_read)
{
	printf("{\"time\": %lld, \"process\": %lld, \"type\": \"%s\", \"f\": \"%s\", \"key\": "
	       "\"k%d\", "
	       "\"value\": ",
	       (long long)now, (long long)p->id, type, fn_names[p->fn], p->key);
	put_value(p->fn, p->a, p->b, done_read, p->result);
	printf("}\n");
}

static void apply_change(struct reg *r, int64_t v, int writer, int64_t inv_time)
{
	r->prev = r->value;
	r->prev_done_time = r->last_done_time;
	r->prev_writer = r->last_writer;
	r->value = v;
	r->last_inv_time = inv_time;
	r->last_done_time = INT64_MAX;
	r->last_writer = writer;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: gen_history [--ops N] [--keys K] [--processes P] [--window W] [--uniform]\n"
		"                   [--info-rate R] [--fail-rate R] [--corrupt N] [--seed S]\n"
		"Writes a linearizable register history (JSON Lines, DESIGN section 10 format) to\n"
		"stdout, deterministic from the seed. Keys are used W at a time in sequence (all\n"
		"processes on few keys, the hard case) unless --uniform; --corrupt N makes about "
		"N\n"
		"reads definitely stale (not linearizable).\n");
}

int main(int argc, char **argv)
{
	long ops = 100000, keys = 100, procs = 10, window = 3, corrupt = 0;
	double info_rate = 0.01, fail_rate = 0.01;
	uint64_t seed = 1;
	bool uniform = false;
	static const struct option longopts[] = {{"ops", required_argument, NULL, 'n'},
						 {"keys", required_argument, NULL, 'k'},
						 {"processes", required_argument, NULL, 'p'},
						 {"window", required_argument, NULL, 'w'},
						 {"info-rate", required_argument, NULL, 'i'},
						 {"fail-rate", required_argument, NULL, 'f'},
						 {"seed", required_argument, NULL, 's'},
						 {"corrupt", required_argument, NULL, 'c'},
						 {"uniform", no_argument, NULL, 'u'},
						 {"help", no_argument, NULL, 'h'},
						 {NULL, 0, NULL, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			ops = atol(optarg);
			break;
		case 'k':
			keys = atol(optarg);
			break;
		case 'p':
			procs = atol(optarg);
			break;
		case 'w':
			window = atol(optarg);
			break;
		case 'i':
			info_rate = atof(optarg);
			break;
		case 'f':
			fail_rate = atof(optarg);
			break;
		case 's':
			seed = strtoull(optarg, NULL, 10);
			break;
		case 'c':
			corrupt = atol(optarg);
			break;
		case 'u':
			uniform = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (ops < 1 || keys < 1 || procs < 1 || window < 1) {
		fprintf(stderr, "gen_history: counts must be positive\n");
		return 2;
	}
	rng_state = seed;
	struct proc *ps = calloc((size_t)procs, sizeof *ps);
	struct reg *regs = calloc((size_t)keys, sizeof *regs);
	struct limbo *limbo = calloc((size_t)ops + 1, sizeof *limbo);
	if (!ps || !regs || !limbo)
		return 1;
	for (long k = 0; k < keys; k++)
		regs[k] = (struct reg){NIL, NIL, 0, 0, 0, -1, -1};
	int64_t next_id = 0, next_value = 1;
	for (long i = 0; i < procs; i++)
		ps[i].id = next_id++;
	long invoked = 0, completed = 0, nlimbo = 0, corrupt_left = corrupt;
	/* Stale reads are spread over the history: one chance every ops/(corrupt+1) reads. */
	long corrupt_every = corrupt ? ops / (corrupt + 1) : 0;

	while (completed < ops) {
		now += 1 + (int64_t)(rnd() % 1000);
		/* a timed-out operation takes effect late */
		if (nlimbo && chance(0.02)) {
			size_t j = rnd() % (size_t)nlimbo;
			struct limbo *l = &limbo[j];
			struct reg *r = &regs[l->key];
			if (l->fn == WRITE || (l->fn == CAS && r->value == l->a)) {
				apply_change(r, l->fn == WRITE ? l->a : l->b, -1, 0);
				r->last_done_time = INT64_MAX; /* never completes */
			}
			limbo[j] = limbo[--nlimbo];
		}
		int pi = (int)(rnd() % (uint64_t)procs);
		struct proc *p = &ps[pi];
		switch (p->phase) {
		case IDLE: {
			if (invoked >= ops)
				break;
			long base = uniform ? 0 : invoked * (keys - window + 1) / ops;
			p->key = (int)(uniform ? (long)(rnd() % (uint64_t)keys)
					       : base + (long)(rnd() % (uint64_t)window));
			if (p->key >= keys)
				p->key = (int)keys - 1;
			struct reg *r = &regs[p->key];
			uint64_t x = rnd() % 10;
			p->fn = x < 5 ? READ : x < 8 ? WRITE : CAS;
			p->a = p->b = 0;
			p->result = NIL;
			p->corrupt = false;
			if (p->fn == WRITE) {
				p->a = next_value++;
			} else if (p->fn == CAS) {
				p->a = chance(0.7) ? r->value : (r->prev == NIL ? 0 : r->prev);
				p->b = next_value++;
			} else if (corrupt_left &&
				   invoked / corrupt_every > corrupt - corrupt_left) {
				p->corrupt = true;
			}
			p->inv_time = now;
			event(p, "invoke", false);
			p->phase = PENDING;
			invoked++;
			break;
		}
		case PENDING: {
			if (chance(fail_rate)) { /* refused before taking effect */
				event(p, "fail", false);
				p->phase = IDLE;
				completed++;
				break;
			}
			if (chance(info_rate)) { /* timed out before taking effect */
				if (p->fn != READ && chance(0.5))
					limbo[nlimbo++] = (struct limbo){p->fn, p->key, p->a, p->b};
				event(p, "info", false);
				p->phase = IDLE;
				p->id = next_id++;
				completed++;
				break;
			}
			struct reg *r = &regs[p->key];
			if (p->fn == READ) {
				p->result = r->value;
				/* stale only when the overwrite is certain: the last change's
				 * writer began after the one before it ended, and ended before
				 * this read began */
				if (p->corrupt && r->prev != NIL && r->last_writer == -1 &&
				    r->last_done_time < p->inv_time &&
				    r->prev_done_time < r->last_inv_time) {
					p->result = r->prev;
					corrupt_left--;
				}
			} else if (p->fn == WRITE) {
				apply_change(r, p->a, pi, p->inv_time);
			} else {
				p->ok = r->value == p->a;
				if (p->ok)
					apply_change(r, p->b, pi, p->inv_time);
			}
			p->phase = APPLIED;
			break;
		}
		case APPLIED: {
			bool info = chance(info_rate);
			if (info) {
				event(p, "info", false);
			} else if (p->fn == CAS && !p->ok) {
				event(p, "fail", false);
			} else {
				event(p, "ok", true);
			}
			if (p->fn != READ) {
				/* mark this writer's change (current or previous) as completed */
				struct reg *r = &regs[p->key];
				if (r->last_writer == pi) {
					r->last_writer = -1;
					r->last_done_time = info ? INT64_MAX : now;
				}
				if (r->prev_writer == pi) {
					r->prev_writer = -1;
					r->prev_done_time = info ? INT64_MAX : now;
				}
			}
			if (info)
				p->id = next_id++;
			p->phase = IDLE;
			completed++;
			break;
		}
		}
	}
	if (corrupt && corrupt_left == corrupt)
		fprintf(stderr, "gen_history: no stale read could be made; try more --ops\n");
	free(ps);
	free(regs);
	free(limbo);
	return 0;
}
