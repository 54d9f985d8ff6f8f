/* setcheck.h — the set workload's check: no acknowledged add lost, nothing from nowhere.
 *
 * Every ok read must hold each add acknowledged before the read was invoked, and nothing never
 * attempted or definitely failed; indeterminate adds may or may not be present.
 */
#ifndef RINGRAFT_JEPSEN_SETCHECK_H
#define RINGRAFT_JEPSEN_SETCHECK_H

#include <stdio.h>

#include "jepsen-lite/history.h"
#include "jepsen-lite/linearizable.h"

struct jl_set_result {
	size_t attempted, acknowledged, failed, indeterminate; /* adds */
	size_t reads;                                          /* ok reads checked */
	size_t lost;        /* acknowledged adds missing from a later read (counted per read) */
	size_t unexpected;  /* elements read that were never attempted */
	size_t resurrected; /* elements read whose add definitely failed */
	size_t duplicated;  /* elements listed twice by one read */
	size_t final_size;  /* elements in the last ok read */
	size_t indeterminate_present; /* indeterminate adds that the last read holds */
};

/* Checks the set on one key. Problems are printed to out (at most a few lines per kind, each
 * citing history lines; out may be NULL). JL_UNKNOWN when the key has no ok read at all. */
enum jl_verdict jl_set_check_key(const struct jl_history *h, uint32_t key, struct jl_set_result *r,
				 FILE *out);

/* Whether the key holds a set (some add, or a read that returned a list). */
int jl_key_is_set(const struct jl_history *h, uint32_t key);

#endif
