/* history.h — a recorded jepsen-lite history (DESIGN.md section 10), parsed and paired.
 *
 * Each client invocation is paired with its completion into an operation; the checkers
 * (linearizable.h, setcheck.h) work on operations. The folder is jepsen-lite: prefix jl_.
 */
#ifndef RINGRAFT_JEPSEN_HISTORY_H
#define RINGRAFT_JEPSEN_HISTORY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "jepsen-lite/jl_limits.h"

/* Register values are int64; these two never occur in a history (the parser refuses them). */
#define JL_NIL  INT64_MIN       /* null: the key is missing */
#define JL_ANY  (INT64_MIN + 1) /* model only: a register whose value is not known yet */
#define JL_NONE UINT32_MAX      /* no event / no key */

enum {
	JL_OK = 0,
	JL_EPARSE = -1, /* malformed line; the message names it */
	JL_ENOMEM = -2,
	JL_EIO = -3,
};

enum jl_type { JL_INVOKE, JL_DONE_OK, JL_DONE_FAIL, JL_DONE_INFO };
enum jl_fn { JL_READ, JL_WRITE, JL_CAS, JL_ADD, JL_NEMESIS };

/* One line of the file. */
struct jl_event {
	int64_t time_ns;
	int64_t process; /* -1 for "nemesis" */
	enum jl_type type;
	enum jl_fn fn;   /* JL_NEMESIS for every nemesis line, whatever its f */
	uint32_t key;    /* index into jl_history.keys; JL_NONE for nemesis lines */
	uint32_t op;     /* the operation this line belongs to; JL_NONE for nemesis lines */
	size_t text_off; /* the line's text: jl_history.text + text_off, text_len bytes */
	uint32_t text_len;
};

/* An invocation and its completion. A client that never completed is JL_DONE_INFO. */
struct jl_op {
	uint32_t key;
	enum jl_fn fn;
	enum jl_type status; /* JL_DONE_OK, JL_DONE_FAIL or JL_DONE_INFO */
	int64_t process;
	int64_t arg[2]; /* write: arg[0] (JL_NIL = delete); cas: expected, new; add: element */
	int64_t result; /* an ok register read: the value read (JL_NIL = missing) */
	int64_t *elems; /* an ok set read: the elements (owned by the history) */
	size_t nelems;
	int set_read;     /* the ok read returned a list (set workload) */
	uint32_t inv_ev;  /* event index of the invocation */
	uint32_t done_ev; /* event index of the completion; JL_NONE if it never completed */
};

struct jl_history {
	char *text; /* the whole file (owned) */
	size_t text_len;
	struct jl_event *ev;
	size_t nev;
	struct jl_op *ops;
	size_t nops;
	char **keys; /* interned key strings (owned) */
	size_t nkeys;
	/* per-key index: the client events of key k, in history order, are
	 * key_events[key_start[k]] .. key_events[key_start[k + 1] - 1] (owned) */
	uint32_t *key_start;
	uint32_t *key_events;
	size_t nnemesis;
};

/* Parses a history held in memory (copied). On JL_EPARSE, err holds "line N: what is wrong";
 * the history is then empty and needs no free (jl_history_free is harmless though). */
int jl_history_parse(struct jl_history *h, const char *text, size_t len, char *err, size_t errlen);
/* Reads and parses a file; JL_EIO if it cannot be read. */
int jl_history_load(struct jl_history *h, const char *path, char *err, size_t errlen);
void jl_history_free(struct jl_history *h);

/* Writes event i's original line (without newline) to out. */
void jl_history_print_event(const struct jl_history *h, size_t i, FILE *out);
const char *jl_fn_name(enum jl_fn fn);

#endif
