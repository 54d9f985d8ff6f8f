/* test_checker.c — the checker classifies hand-written histories correctly.
 *
 * Linearizable histories (concurrency, info operations, concurrent CAS) must pass; stale reads,
 * lost acknowledged writes, a CAS applied twice and the like must fail, with a small witness;
 * set histories are judged by the set rules; malformed lines are refused with their number.
 */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jepsen-lite/history.h"
#include "jepsen-lite/linearizable.h"
#include "jepsen-lite/setcheck.h"

/* ------------------------------------------------------------------ Fixture */

/* One event line; t is the time in ns, p the process. */
#define EV(t, p, type, f, key, value)                                                              \
	"{\"time\": " #t ", \"process\": " #p ", \"type\": \"" type "\", \"f\": \"" f              \
	"\", \"key\": \"" key "\", \"value\": " value "}\n"

static struct jl_history parse_ok(const char *text)
{
	struct jl_history h;
	char err[256];
	int rc = jl_history_parse(&h, text, strlen(text), err, sizeof err);
	ck_assert_msg(rc == 0, "parse failed: %s", err);
	return h;
}

/* The verdict on every register key together (invalid beats unknown beats valid). */
static enum jl_verdict check_registers(const char *text)
{
	struct jl_history h = parse_ok(text);
	enum jl_verdict worst = JL_VALID;
	for (uint32_t k = 0; k < h.nkeys; k++) {
		enum jl_verdict v = jl_lin_check_key(&h, k, 0, NULL);
		if (v == JL_INVALID || (v == JL_UNKNOWN && worst == JL_VALID))
			worst = v;
	}
	jl_history_free(&h);
	return worst;
}

/* ------------------------------------------------------------------ Assertions */

#define ASSERT_LINEARIZABLE(text) ck_assert_int_eq(check_registers(text), JL_VALID)
#define ASSERT_VIOLATION(text)    ck_assert_int_eq(check_registers(text), JL_INVALID)

static void assert_parse_error(const char *text, const char *want_prefix)
{
	struct jl_history h;
	char err[256];
	ck_assert_int_eq(jl_history_parse(&h, text, strlen(text), err, sizeof err), JL_EPARSE);
	ck_assert_msg(strncmp(err, want_prefix, strlen(want_prefix)) == 0,
		      "error '%s', want '%s...'", err, want_prefix);
}

/* ------------------------------------------------------------------ Linearizable histories */

START_TEST(test_sequential_write_read)
{
	ASSERT_LINEARIZABLE(
		EV(1, 0, "invoke", "read", "x", "null") EV(2, 0, "ok", "read", "x", "null")
			EV(3, 0, "invoke", "write", "x", "1") EV(4, 0, "ok", "write", "x", "1")
				EV(5, 1, "invoke", "read", "x", "null")
					EV(6, 1, "ok", "read", "x", "1"));
}
END_TEST

START_TEST(test_concurrent_write_read_either_order)
{
	/* a read concurrent with a write may see the old value or the new one */
	ASSERT_LINEARIZABLE(
		EV(1, 0, "invoke", "write", "x", "1") EV(2, 0, "ok", "write", "x", "1") EV(
			3, 1, "invoke", "write", "x", "2") EV(4, 2, "invoke", "read", "x", "null")
			EV(5, 2, "ok", "read", "x", "1") EV(6, 3, "invoke", "read", "x", "null")
				EV(7, 3, "ok", "read", "x", "2") EV(8, 1, "ok", "write", "x", "2"));
}
END_TEST

START_TEST(test_reads_order_inside_overlap)
{
	/* two reads overlapping a write, the later-invoked one sees the old value: fine, as
	 * long as they overlap each other */
	ASSERT_LINEARIZABLE(
		EV(1, 1, "invoke", "write", "x", "2") EV(2, 2, "invoke", "read", "x", "null")
			EV(3, 3, "invoke", "read", "x", "null") EV(4, 2, "ok", "read", "x", "2")
				EV(5, 3, "ok", "read", "x", "null")
					EV(6, 1, "ok", "write", "x", "2"));
}
END_TEST

START_TEST(test_info_write_takes_effect_late)
{
	/* a timed-out write becomes visible long after its client gave up */
	ASSERT_LINEARIZABLE(
		EV(1, 0, "invoke", "write", "x", "7") EV(2, 0, "info", "write", "x", "7")
			EV(3, 1, "invoke", "read", "x", "null") EV(4, 1, "ok", "read", "x", "null")
				EV(5, 2, "invoke", "write", "x", "8")
					EV(6, 2, "ok", "write", "x", "8")
						EV(7, 3, "invoke", "read", "x", "null")
							EV(8, 3, "ok", "read", "x", "7"));
}
END_TEST

START_TEST(test_info_write_never_happens)
{
	ASSERT_LINEARIZABLE(EV(1, 0, "invoke", "write", "x", "7")
				    EV(2, 0, "info", "write", "x", "7")
					    EV(3, 1, "invoke", "read", "x", "null")
						    EV(4, 1, "ok", "read", "x", "null"));
	/* and one that never completed at all (the run ended) is indeterminate too */
	ASSERT_LINEARIZABLE(EV(1, 0, "invoke", "write", "x", "7") EV(
		3, 1, "invoke", "read", "x", "null") EV(4, 1, "ok", "read", "x", "7"));
}
END_TEST

START_TEST(test_concurrent_cas_one_wins)
{
	ASSERT_LINEARIZABLE(
		EV(1, 0, "invoke", "write", "x", "1") EV(2, 0, "ok", "write", "x", "1") EV(
			3, 1, "invoke", "cas", "x", "[1, 2]") EV(4, 2, "invoke", "cas", "x",
								 "[1, 3]")
			EV(5, 2, "fail", "cas", "x", "[1, 3]") EV(6, 1, "ok", "cas", "x", "[1, 2]")
				EV(7, 3, "invoke", "cas", "x", "[2, 4]")
					EV(8, 4, "invoke", "read", "x", "null")
						EV(9, 3, "info", "cas", "x", "[2, 4]")
							EV(10, 4, "ok", "read", "x", "4"));
}
END_TEST

START_TEST(test_cas_put_if_absent_and_keys_independent)
{
	ASSERT_LINEARIZABLE(
		EV(1, 0, "invoke", "cas", "a", "[null, 5]") EV(2, 0, "ok", "cas", "a", "[null, 5]")
			EV(3, 1, "invoke", "write", "b", "5") EV(4, 1, "ok", "write", "b", "5")
				EV(5, 2, "invoke", "read", "c", "null")
					EV(6, 2, "ok", "read", "c", "null")
						EV(7, 3, "invoke", "read", "a", "null")
							EV(8, 3, "ok", "read", "a", "5"));
}
END_TEST

/* ------------------------------------------------------------------ Violations */

START_TEST(test_stale_read_after_completed_write)
{
	ASSERT_VIOLATION(EV(1, 0, "invoke", "write", "x", "1") EV(2, 0, "ok", "write", "x", "1")
				 EV(3, 0, "invoke", "write", "x", "2")
					 EV(4, 0, "ok", "write", "x", "2")
						 EV(5, 1, "invoke", "read", "x", "null")
							 EV(6, 1, "ok", "read", "x", "1"));
}
END_TEST

START_TEST(test_lost_acknowledged_write)
{
	ASSERT_VIOLATION(EV(1, 0, "invoke", "write", "x", "5") EV(2, 0, "ok", "write", "x", "5") EV(
		3, 1, "invoke", "read", "x", "null") EV(4, 1, "ok", "read", "x", "null"));
}
END_TEST

START_TEST(test_cas_applied_twice)
{
	/* both CAS from 1 succeed one after the other: the second saw a 1 that was gone */
	ASSERT_VIOLATION(EV(1, 0, "invoke", "write", "x", "1") EV(2, 0, "ok", "write", "x", "1")
				 EV(3, 1, "invoke", "cas", "x", "[1, 2]")
					 EV(4, 1, "ok", "cas", "x", "[1, 2]")
						 EV(5, 2, "invoke", "cas", "x", "[1, 3]")
							 EV(6, 2, "ok", "cas", "x", "[1, 3]"));
	/* the same CAS executed twice by a retry: its value comes back after being replaced */
	ASSERT_VIOLATION(EV(1, 0, "invoke", "write", "x", "1") EV(2, 0, "ok", "write", "x", "1") EV(
		3, 1, "invoke", "cas", "x", "[1, 2]") EV(4, 1, "ok", "cas", "x", "[1, 2]")
				 EV(5, 2, "invoke", "write", "x", "1")
					 EV(6, 2, "ok", "write", "x", "1")
						 EV(7, 3, "invoke", "read", "x", "null")
							 EV(8, 3, "ok", "read", "x", "2"));
}
END_TEST

START_TEST(test_info_cannot_act_before_invocation)
{
	ASSERT_VIOLATION(EV(1, 0, "invoke", "read", "x", "null") EV(2, 0, "ok", "read", "x", "9")
				 EV(3, 1, "invoke", "write", "x", "9")
					 EV(4, 1, "info", "write", "x", "9"));
}
END_TEST

START_TEST(test_failed_write_never_visible)
{
	ASSERT_VIOLATION(EV(1, 0, "invoke", "write", "x", "3") EV(2, 0, "fail", "write", "x", "3")
				 EV(3, 1, "invoke", "read", "x", "null")
					 EV(4, 1, "ok", "read", "x", "3"));
}
END_TEST

START_TEST(test_nonmonotonic_reads_in_sequence)
{
	/* a write concurrent with two sequential reads: new then old is impossible */
	ASSERT_VIOLATION(
		EV(1, 0, "invoke", "write", "x", "1") EV(2, 0, "ok", "write", "x", "1") EV(
			3, 1, "invoke", "write", "x", "2") EV(4, 2, "invoke", "read", "x", "null")
			EV(5, 2, "ok", "read", "x", "2") EV(6, 2, "invoke", "read", "x", "null")
				EV(7, 2, "ok", "read", "x", "1") EV(8, 1, "ok", "write", "x", "2"));
}
END_TEST

START_TEST(test_witness_is_small)
{
	/* noise on x before the violation; the witness is the write and the stale read */
	const char *text = EV(1, 0, "invoke", "write", "x", "1") EV(2, 0, "ok", "write", "x", "1")
		EV(3, 1, "invoke", "read", "x", "null") EV(4, 1, "ok", "read", "x", "1") EV(
			5, 2, "invoke", "write", "y",
			"1") EV(6, 2, "ok", "write", "y", "1") EV(7, 0, "invoke", "write", "x", "2")
			EV(8, 0, "ok", "write", "x", "2") EV(9, 1, "invoke", "read", "x", "null")
				EV(10, 1, "ok", "read", "x", "2") EV(11, 0, "invoke", "write", "x",
								     "3")
					EV(12, 0, "ok", "write", "x", "3") EV(13, 1, "invoke",
									      "read", "x", "null")
						EV(14, 1, "ok", "read", "x", "2")
							EV(15, 1, "invoke", "read", "x", "null")
								EV(16, 1, "ok", "read", "x", "3");
	struct jl_history h = parse_ok(text);
	ck_assert_int_eq(jl_lin_check_key(&h, 0, 0, NULL), JL_INVALID);
	ck_assert_int_eq(jl_lin_check_key(&h, 1, 0, NULL), JL_VALID);
	struct jl_lin_witness w;
	ck_assert_int_eq(jl_lin_explain_key(&h, 0, 0, &w), 0);
	ck_assert(w.searched_all);
	ck_assert_uint_eq(w.nops, 2);
	ck_assert_uint_eq(w.nevents, 4);
	ck_assert(w.unknown_start);
	/* lines 11-14: write 3 and the read of 2 that followed it (events are 0-based) */
	ck_assert_uint_eq(w.events[0], 10);
	ck_assert_uint_eq(w.events[1], 11);
	ck_assert_uint_eq(w.events[2], 12);
	ck_assert_uint_eq(w.events[3], 13);
	jl_lin_witness_free(&w);
	jl_history_free(&h);
}
END_TEST

START_TEST(test_time_limit_gives_unknown)
{
	/* 24 concurrent writes, then a read of a value nobody wrote: proving that takes
	 * 2^24 configurations, so a deadline already past must answer unknown, not hang */
	char *text = malloc(64 * 1024);
	size_t n = 0;
	for (int i = 0; i < 24; i++)
		n += (size_t)sprintf(text + n, EV(1, % d, "invoke", "write", "x", "%d"), i, i + 1);
	for (int i = 0; i < 24; i++)
		n += (size_t)sprintf(text + n, EV(2, % d, "ok", "write", "x", "%d"), i, i + 1);
	n += (size_t)sprintf(text + n, EV(3, 99, "invoke", "read", "x", "null")
					       EV(4, 99, "ok", "read", "x", "1000"));
	/* the read is preceded by all writes: it must be the last write's value */
	n += (size_t)sprintf(text + n, EV(5, 98, "invoke", "read", "x", "null")
					       EV(6, 98, "ok", "read", "x", "3"));
	struct jl_history h = parse_ok(text);
	ck_assert_int_eq(jl_lin_check_key(&h, 0, jl_now_ns() - 1, NULL), JL_UNKNOWN);
	jl_history_free(&h);
	free(text);
}
END_TEST

/* ------------------------------------------------------------------ Against a brute force */

/* Tiny random single-key histories with values from a small set (so many are not
 * linearizable), checked by exhaustive search over every order that respects real time and
 * every choice of which info operations took effect; the checker must agree on each. */

struct bop {
	int fn;        /* 0 read, 1 write, 2 cas */
	int64_t a, b;  /* read: value read; write: a; cas: a -> b */
	int status;    /* 0 ok, 1 fail, 2 info */
	int call, ret; /* event positions */
};

static bool brute(const struct bop *ops, int n, unsigned done, int64_t state)
{
	bool all = true;
	for (int i = 0; i < n; i++)
		if (ops[i].status == 0 && !(done & (1u << i)))
			all = false;
	if (all)
		return true;
	for (int i = 0; i < n; i++) {
		if ((done & (1u << i)) || ops[i].status == 1 ||
		    (ops[i].status == 2 && ops[i].fn == 0))
			continue;
		bool blocked =
			false; /* an ok op that returned before i was called must come first */
		for (int j = 0; j < n; j++)
			if (j != i && !(done & (1u << j)) && ops[j].status == 0 &&
			    ops[j].ret < ops[i].call)
				blocked = true;
		if (blocked)
			continue;
		const struct bop *o = &ops[i];
		int64_t ns = state;
		if (o->fn == 0 && state != o->a)
			continue;
		if (o->fn == 1)
			ns = o->a;
		if (o->fn == 2) {
			if (state != o->a)
				continue;
			ns = o->b;
		}
		if (brute(ops, n, done | (1u << i), ns))
			return true;
	}
	return false;
}

static uint64_t rng = 12345;
static unsigned rnd(unsigned n)
{
	rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
	return (unsigned)((rng >> 33) % n);
}

static void put_val(char *out, int64_t v)
{
	if (v == JL_NIL)
		strcpy(out, "null");
	else
		sprintf(out, "%lld", (long long)v);
}

START_TEST(test_agrees_with_brute_force)
{
	int nvalid = 0, ninvalid = 0;
	for (int iter = 0; iter < 4000; iter++) {
		int n = 2 + (int)rnd(6);
		struct bop ops[8];
		int slot_op[16], slot_ret[16];
		/* a random interleaving of 2n events: each op's call before its return */
		int pending[8], np = 0, next = 0, pos = 0;
		while (pos < 2 * n) {
			bool call = next < n && (np == 0 || rnd(2));
			if (call) {
				slot_op[pos] = next;
				slot_ret[pos] = 0;
				ops[next].call = pos;
				pending[np++] = next++;
			} else {
				int k = (int)rnd((unsigned)np), o = pending[k];
				pending[k] = pending[--np];
				slot_op[pos] = o;
				slot_ret[pos] = 1;
				ops[o].ret = pos;
			}
			pos++;
		}
		for (int i = 0; i < n; i++) {
			struct bop *o = &ops[i];
			o->fn = (int)rnd(3);
			int64_t vals[4] = {JL_NIL, 1, 2, 3};
			o->a = o->fn == 1 ? 1 + rnd(3) : vals[rnd(4)];
			o->b = 1 + rnd(3);
			unsigned st = rnd(10);
			o->status = st < 7 ? 0 : st < 8 ? 1 : 2;
		}
		char text[4096], a[32], b[32];
		size_t len = 0;
		static const char *const fns[] = {"read", "write", "cas"};
		static const char *const types[] = {"ok", "fail", "info"};
		for (int p = 0; p < 2 * n; p++) {
			const struct bop *o = &ops[slot_op[p]];
			const char *type = slot_ret[p] ? types[o->status] : "invoke";
			put_val(a, o->a);
			put_val(b, o->b);
			char value[80];
			if (o->fn == 0)
				strcpy(value, slot_ret[p] && o->status == 0 ? a : "null");
			else if (o->fn == 1)
				strcpy(value, a);
			else
				sprintf(value, "[%s, %s]", a, b);
			len += (size_t)sprintf(text + len,
					       "{\"time\": %d, \"process\": %d, \"type\": \"%s\", "
					       "\"f\": \"%s\", \"key\": \"x\", \"value\": %s}\n",
					       p, slot_op[p], type, fns[o->fn], value);
		}
		bool want = brute(ops, n, 0, JL_NIL);
		struct jl_history h = parse_ok(text);
		enum jl_verdict v = jl_lin_check_key(&h, 0, 0, NULL);
		ck_assert_msg(
			v == (want ? JL_VALID : JL_INVALID),
			"iteration %d: checker verdict %d, brute force says linearizable=%d:\n%s",
			iter, v, want, text);
		if (!want) {
			struct jl_lin_witness w;
			ck_assert_int_eq(jl_lin_explain_key(&h, 0, 0, &w), 0);
			ck_assert(w.searched_all);
			ck_assert_uint_ge(w.nops, 1);
			for (size_t i = 1; i < w.nevents; i++)
				ck_assert_uint_lt(w.events[i - 1], w.events[i]);
			jl_lin_witness_free(&w);
		}
		jl_history_free(&h);
		want ? nvalid++ : ninvalid++;
	}
	/* both kinds must have been exercised for the comparison to mean anything */
	ck_assert_int_gt(nvalid, 500);
	ck_assert_int_gt(ninvalid, 500);
}
END_TEST

/* ------------------------------------------------------------------ Sets */

static enum jl_verdict check_set(const char *text, struct jl_set_result *r)
{
	struct jl_history h = parse_ok(text);
	ck_assert_uint_eq(h.nkeys, 1);
	ck_assert(jl_key_is_set(&h, 0));
	enum jl_verdict v = jl_set_check_key(&h, 0, r, NULL);
	jl_history_free(&h);
	return v;
}

START_TEST(test_set_valid_with_info_adds)
{
	struct jl_set_result r;
	ck_assert_int_eq(
		check_set(EV(1, 0, "invoke", "add", "s", "1") EV(2, 0, "ok", "add", "s", "1") EV(
				  3, 1, "invoke", "add", "s", "2") EV(4, 1, "info", "add", "s", "2")
				  EV(5, 2, "invoke", "add", "s", "3") EV(6, 2, "info", "add", "s",
									 "3")
					  EV(7, 3, "invoke", "add", "s", "4") EV(8, 3, "fail",
										 "add", "s", "4")
						  EV(9, 4, "invoke", "read", "s", "null")
							  EV(10, 4, "ok", "read", "s", "[2, 1]"),
			  &r),
		JL_VALID);
	ck_assert_uint_eq(r.acknowledged, 1);
	ck_assert_uint_eq(r.indeterminate, 2);
	ck_assert_uint_eq(r.final_size, 2);
	ck_assert_uint_eq(r.indeterminate_present, 1);
}
END_TEST

START_TEST(test_set_lost_add)
{
	struct jl_set_result r;
	ck_assert_int_eq(
		check_set(EV(1, 0, "invoke", "add", "s", "1") EV(2, 0, "ok", "add", "s", "1") EV(
				  3, 1, "invoke", "add", "s", "2") EV(4, 1, "ok", "add", "s", "2")
				  EV(5, 4, "invoke", "read", "s", "null")
					  EV(6, 4, "ok", "read", "s", "[2]"),
			  &r),
		JL_INVALID);
	ck_assert_uint_eq(r.lost, 1);
	/* an add still running when the read began may be missing */
	ck_assert_int_eq(check_set(EV(1, 0, "invoke", "add", "s", "1")
					   EV(2, 4, "invoke", "read", "s", "null")
						   EV(3, 0, "ok", "add", "s", "1")
							   EV(4, 4, "ok", "read", "s", "[]"),
				   &r),
			 JL_VALID);
}
END_TEST

START_TEST(test_set_from_nowhere_and_failed)
{
	struct jl_set_result r;
	ck_assert_int_eq(check_set(EV(1, 0, "invoke", "add", "s", "1")
					   EV(2, 0, "ok", "add", "s", "1")
						   EV(3, 4, "invoke", "read", "s", "null")
							   EV(4, 4, "ok", "read", "s", "[1, 77]"),
				   &r),
			 JL_INVALID);
	ck_assert_uint_eq(r.unexpected, 1);
	ck_assert_int_eq(check_set(EV(1, 0, "invoke", "add", "s", "1")
					   EV(2, 0, "fail", "add", "s", "1")
						   EV(3, 4, "invoke", "read", "s", "null")
							   EV(4, 4, "ok", "read", "s", "[1]"),
				   &r),
			 JL_INVALID);
	ck_assert_uint_eq(r.resurrected, 1);
}
END_TEST

START_TEST(test_set_without_read_is_unknown)
{
	struct jl_set_result r;
	ck_assert_int_eq(check_set(EV(1, 0, "invoke", "add", "s", "1")
					   EV(2, 0, "ok", "add", "s", "1")
						   EV(3, 4, "invoke", "read", "s", "null")
							   EV(4, 4, "info", "read", "s", "null"),
				   &r),
			 JL_UNKNOWN);
}
END_TEST

/* ------------------------------------------------------------------ Parsing */

START_TEST(test_parse_pairs_and_nemesis)
{
	struct jl_history h = parse_ok(
		EV(1, 3, "invoke", "write", "k1",
		   "5") "{\"time\": 2, \"process\": "
			"\"nemesis\", \"type\": \"info\", "
			"\"f\": \"kill\", \"value\": \"n2\"}\n" EV(3, 3, "ok", "write", "k1", "5")
				EV(4, 4, "invoke", "cas", "k1", "[5, 6]")
					EV(5, 4, "fail", "cas", "k1", "[5, 6]"));
	ck_assert_uint_eq(h.nev, 5);
	ck_assert_uint_eq(h.nops, 2);
	ck_assert_uint_eq(h.nnemesis, 1);
	ck_assert_int_eq(h.ops[0].status, JL_DONE_OK);
	ck_assert_int_eq(h.ops[0].arg[0], 5);
	ck_assert_uint_eq(h.ops[0].inv_ev, 0);
	ck_assert_uint_eq(h.ops[0].done_ev, 2);
	ck_assert_int_eq(h.ops[1].status, JL_DONE_FAIL);
	ck_assert_int_eq(h.ops[1].arg[1], 6);
	jl_history_free(&h);
}
END_TEST

START_TEST(test_parse_errors_name_the_line)
{
	const char *good = EV(1, 0, "invoke", "write", "x", "1");
	char buf[1024];
#define BAD(second, prefix)                                                                        \
	do {                                                                                       \
		snprintf(buf, sizeof buf, "%s%s", good, second);                                   \
		assert_parse_error(buf, prefix);                                                   \
	} while (0)
	BAD("{\"time\": 2, \"process\": 0, \"type\": \"ok\", \"f\": \"write\", \"key\": \"x\"}\n",
	    "line 2: a client operation needs a \"value\"");
	BAD("{\"time\": 2, \"process\": 0, \"type\": \"ok\", \"f\": \"write\", \"key\": \"x\", "
	    "\"value\": 1, \"extra\": 1}\n",
	    "line 2: unknown field");
	BAD("{\"time\": 2, \"process\": 0, \"type\": \"ok\", \"f\": \"write\", \"key\": \"x\", "
	    "\"value\": 1} x\n",
	    "line 2: trailing");
	BAD("{\"time\": 0, \"process\": 0, \"type\": \"ok\", \"f\": \"write\", \"key\": \"x\", "
	    "\"value\": 1}\n",
	    "line 2: time goes backwards");
	BAD("{\"time\": 2, \"process\": 0, \"type\": \"ok\", \"f\": \"write\", \"key\": \"x\", "
	    "\"value\": 2}\n",
	    "line 2: a write completes with the value");
	BAD("{\"time\": 2, \"process\": 1, \"type\": \"ok\", \"f\": \"write\", \"key\": \"x\", "
	    "\"value\": 1}\n",
	    "line 2: process 1 completes an operation it never invoked");
	BAD("{\"time\": 2, \"process\": 0, \"type\": \"invoke\", \"f\": \"read\", \"key\": \"x\", "
	    "\"value\": null}\n",
	    "line 2: process 0 invokes while");
	BAD("{\"time\": 2, \"process\": 0, \"type\": \"ok\", \"f\": \"write\", \"key\": \"x\", "
	    "\"value\": 1.5}\n",
	    "line 2: numbers must be integers");
	BAD("{\"time\": 2, \"process\": 0, \"type\": \"done\", \"f\": \"write\", \"key\": \"x\", "
	    "\"value\": 1}\n",
	    "line 2: unknown type");
	BAD("\n", "line 2: empty line");
	BAD("{\"time\": 2, \"process\": 0, \"type\": \"ok\", \"f\": \"write\", \"key\": \"x\", "
	    "\"value\": 1\n",
	    "line 2: expected '}'");
	BAD("{\"time\": 2, \"process\": 0, \"type\": \"info\", \"f\": \"write\", \"key\": \"x\", "
	    "\"value\": 1}\n" EV(3, 0, "invoke", "read", "x", "null"),
	    "line 3: process 0 invokes again after an info");
#undef BAD
}
END_TEST

static Suite *checker_suite(void)
{
	Suite *s = suite_create("jepsen-lite checker");
	TCase *lin = tcase_create("linearizable");
	tcase_add_test(lin, test_sequential_write_read);
	tcase_add_test(lin, test_concurrent_write_read_either_order);
	tcase_add_test(lin, test_reads_order_inside_overlap);
	tcase_add_test(lin, test_info_write_takes_effect_late);
	tcase_add_test(lin, test_info_write_never_happens);
	tcase_add_test(lin, test_concurrent_cas_one_wins);
	tcase_add_test(lin, test_cas_put_if_absent_and_keys_independent);
	suite_add_tcase(s, lin);
	TCase *bad = tcase_create("violations");
	tcase_add_test(bad, test_stale_read_after_completed_write);
	tcase_add_test(bad, test_lost_acknowledged_write);
	tcase_add_test(bad, test_cas_applied_twice);
	tcase_add_test(bad, test_info_cannot_act_before_invocation);
	tcase_add_test(bad, test_failed_write_never_visible);
	tcase_add_test(bad, test_nonmonotonic_reads_in_sequence);
	tcase_add_test(bad, test_witness_is_small);
	tcase_add_test(bad, test_time_limit_gives_unknown);
	suite_add_tcase(s, bad);
	TCase *brute_tc = tcase_create("brute force");
	/* compute-bound: Check's 4 s default was exceeded under ASan on a loaded machine */
	tcase_set_timeout(brute_tc, 60);
	tcase_add_test(brute_tc, test_agrees_with_brute_force);
	suite_add_tcase(s, brute_tc);
	TCase *set = tcase_create("set");
	tcase_add_test(set, test_set_valid_with_info_adds);
	tcase_add_test(set, test_set_lost_add);
	tcase_add_test(set, test_set_from_nowhere_and_failed);
	tcase_add_test(set, test_set_without_read_is_unknown);
	suite_add_tcase(s, set);
	TCase *parse = tcase_create("parse");
	tcase_add_test(parse, test_parse_pairs_and_nemesis);
	tcase_add_test(parse, test_parse_errors_name_the_line);
	suite_add_tcase(s, parse);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(checker_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
