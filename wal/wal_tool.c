/* wal_tool.c — `walctl verify|dump DIR` (and `kvctl wal verify|dump DIR`): an offline look at
 * a WAL directory through wal_walk.
 *
 * verify prints, per group, the records and index ranges found and every corrupt spot with
 * its segment and offset; dump prints one line per record. Exit status: 0 no corruption (a
 * torn tail is not corruption: the next open cuts it), 1 corruption, 2 usage or I/O error.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "wal/wal.h"

struct gsum {
	uint64_t group;
	uint64_t records, entry_records, hard_states, truncates, snapshots, checkpoints;
	raft_index lo, hi; /* entry indexes seen (lowest, highest) */
	struct raft_hard_state hs;
	raft_index snap, checkpoint;
};

struct tool {
	bool dump;
	uint64_t batches, records, corrupt, torn;
	struct gsum *g;
	size_t n, cap;
	bool oom;
};

static const char *type_name(uint8_t t)
{
	switch (t) {
	case WAL_REC_ENTRIES:
		return "entries";
	case WAL_REC_HARD_STATE:
		return "hard_state";
	case WAL_REC_TRUNCATE:
		return "truncate";
	case WAL_REC_SNAPSHOT:
		return "snapshot";
	case WAL_REC_CHECKPOINT:
		return "checkpoint";
	case WAL_REC_BATCH:
		return "batch";
	default:
		return "bad";
	}
}

static struct gsum *gsum_of(struct tool *t, uint64_t group)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->g[i].group == group)
			return &t->g[i];
	if (t->n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 16;
		struct gsum *ng = realloc(t->g, cap * sizeof *ng);
		if (!ng)
			return NULL;
		t->g = ng;
		t->cap = cap;
	}
	struct gsum *s = &t->g[t->n++];
	memset(s, 0, sizeof *s);
	s->group = group;
	return s;
}

static int on_record(const struct wal_record_info *r, void *arg)
{
	struct tool *t = arg;
	if (r->type == WAL_REC_BAD) {
		if (r->torn_tail) {
			t->torn++;
			printf("TORN  %s offset %" PRIu64 ": %s (cut off at the next open)\n",
			       r->segment, r->offset, r->problem);
		} else {
			t->corrupt++;
			printf("CORRUPT %s offset %" PRIu64 " group %" PRIu64 ": %s\n", r->segment,
			       r->offset, r->group, r->problem);
		}
		return 0;
	}
	if (t->dump) {
		printf("%s %10" PRIu64 " %-10s", r->segment, r->offset, type_name(r->type));
		if (r->type == WAL_REC_BATCH)
			printf(" seq=%" PRIu64 "\n", r->first_index);
		else if (r->type == WAL_REC_HARD_STATE)
			printf(" group=%" PRIu64 " term=%" PRIu64 " vote=%" PRIu64
			       " commit=%" PRIu64 "%s\n",
			       r->group, r->hard_state->term, r->hard_state->vote,
			       r->hard_state->commit,
			       r->hard_state->recovering ? " recovering" : "");
		else if (r->type == WAL_REC_ENTRIES)
			printf(" group=%" PRIu64 " index=%" PRIu64 "..%" PRIu64 " bytes=%u\n",
			       r->group, r->first_index, r->last_index, r->length);
		else
			printf(" group=%" PRIu64 " index=%" PRIu64 "\n", r->group, r->first_index);
	}
	if (r->type == WAL_REC_BATCH) {
		t->batches++;
		return 0;
	}
	t->records++;
	struct gsum *g = gsum_of(t, r->group);
	if (!g) {
		t->oom = true;
		return 1;
	}
	g->records++;
	switch (r->type) {
	case WAL_REC_ENTRIES:
		g->entry_records++;
		if (!g->lo || r->first_index < g->lo)
			g->lo = r->first_index;
		if (r->last_index > g->hi)
			g->hi = r->last_index;
		break;
	case WAL_REC_HARD_STATE:
		g->hard_states++;
		g->hs = *r->hard_state;
		break;
	case WAL_REC_TRUNCATE:
		g->truncates++;
		break;
	case WAL_REC_SNAPSHOT:
		g->snapshots++;
		g->snap = r->first_index;
		break;
	case WAL_REC_CHECKPOINT:
		g->checkpoints++;
		if (r->first_index > g->checkpoint)
			g->checkpoint = r->first_index;
		break;
	}
	return 0;
}

static int cmp_group(const void *a, const void *b)
{
	uint64_t x = ((const struct gsum *)a)->group, y = ((const struct gsum *)b)->group;
	return x < y ? -1 : x > y;
}

int wal_tool_main(int argc, char **argv)
{
	const char *prog = argc > 0 ? argv[0] : "walctl";
	if (argc != 3 || (strcmp(argv[1], "verify") != 0 && strcmp(argv[1], "dump") != 0)) {
		fprintf(stderr, "usage: %s verify|dump DIR\n", prog);
		return 2;
	}
	/* a wrong path is the commonest mistake: say so, not just "WAL I/O error" */
	struct stat st;
	const char *why = stat(argv[2], &st) != 0 ? strerror(errno)
			  : !S_ISDIR(st.st_mode)  ? "not a directory"
						  : NULL;
	if (why) {
		fprintf(stderr, "%s: %s: %s\n", prog, argv[2], why);
		return 2;
	}
	struct tool t = {.dump = strcmp(argv[1], "dump") == 0};
	int rc = wal_walk(argv[2], on_record, &t);
	if (rc < 0 || t.oom) {
		fprintf(stderr, "%s: %s: %s\n", prog, argv[2],
			t.oom ? "out of memory" : wal_strerror(rc));
		free(t.g);
		return 2;
	}
	qsort(t.g, t.n, sizeof *t.g, cmp_group);
	printf("%s: %" PRIu64 " batches, %" PRIu64 " records, %zu groups\n", argv[2], t.batches,
	       t.records, t.n);
	for (size_t i = 0; i < t.n; i++) {
		const struct gsum *g = &t.g[i];
		printf("group %" PRIu64 ": records=%" PRIu64 " entry_records=%" PRIu64, g->group,
		       g->records, g->entry_records);
		if (g->entry_records)
			printf(" indexes=%" PRIu64 "..%" PRIu64, g->lo, g->hi);
		printf(" hard_states=%" PRIu64 " truncates=%" PRIu64 " snapshots=%" PRIu64
		       " checkpoints=%" PRIu64,
		       g->hard_states, g->truncates, g->snapshots, g->checkpoints);
		if (g->hard_states)
			printf(" term=%" PRIu64 " vote=%" PRIu64 " commit=%" PRIu64, g->hs.term,
			       g->hs.vote, g->hs.commit);
		if (g->snapshots)
			printf(" snapshot=%" PRIu64, g->snap);
		if (g->checkpoints)
			printf(" checkpoint=%" PRIu64, g->checkpoint);
		printf("\n");
	}
	printf("%s: %s (%" PRIu64 " corrupt spots, %" PRIu64 " torn tails)\n", argv[2],
	       t.corrupt ? "CORRUPT" : "ok", t.corrupt, t.torn);
	free(t.g);
	return t.corrupt ? 1 : 0;
}
