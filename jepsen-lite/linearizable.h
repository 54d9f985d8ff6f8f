/* linearizable.h — per-key linearizability of a register history (read / write / cas).
 *
 * Wing & Gong's search with Lowe's memoization; keys are independent registers, so each is
 * checked alone (linearizability is compositional).
 */
#ifndef RINGRAFT_JEPSEN_LINEARIZABLE_H
#define RINGRAFT_JEPSEN_LINEARIZABLE_H

#include <stddef.h>
#include <stdint.h>

#include "jepsen-lite/history.h"

enum jl_verdict { JL_VALID = 0, JL_INVALID = 1, JL_UNKNOWN = 2 };

/* Why a key is not linearizable: the smallest window of its operations found that is not
 * linearizable on its own. When the window starts after the key's first operation, the value
 * the register held at its start is taken as unknown, and operations that were still running
 * at either edge are taken as indeterminate; a window that fails under those assumptions
 * proves the whole history fails. */
struct jl_lin_witness {
	uint32_t *events; /* history event indices of the window's lines, ascending (owned) */
	size_t nevents;
	size_t nops;       /* operations in the window */
	int unknown_start; /* the window starts after earlier operations on the key */
	int searched_all; /* the shrink finished (else it hit the deadline: window may be larger) */
};

/* Checks the register operations (read, write, cas) on one key; set operations are ignored.
 * A missing key reads as null; info operations take effect at any time after their invocation
 * or never; fail operations are left out. deadline_ns is absolute CLOCK_MONOTONIC time
 * (0 = none); reaching it, or JL_LIN_CACHE_MAX, gives JL_UNKNOWN. *explored (may be NULL)
 * receives the number of configurations visited. */
enum jl_verdict jl_lin_check_key(const struct jl_history *h, uint32_t key, int64_t deadline_ns,
				 uint64_t *explored);

/* For a key jl_lin_check_key found JL_INVALID: shrinks to a small failing window. Returns 0,
 * or JL_ENOMEM; if the key turns out not to be invalid by deadline_ns, the witness holds all of
 * the key's lines and searched_all is 0. Free with jl_lin_witness_free. */
int jl_lin_explain_key(const struct jl_history *h, uint32_t key, int64_t deadline_ns,
		       struct jl_lin_witness *w);
void jl_lin_witness_free(struct jl_lin_witness *w);

/* CLOCK_MONOTONIC now, in ns (for deadlines). */
int64_t jl_now_ns(void);

#endif
