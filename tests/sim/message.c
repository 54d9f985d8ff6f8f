/* message.c — deep copies of raft messages and entries.
 *
 * Everything in a raft_update is borrowed until raft_advance(), but the simulated network and
 * disk hold messages and entries for a while, so they take owned copies made here.
 */
#include <stdlib.h>
#include <string.h>

#include "tests/sim/sim.h"

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) {
		fprintf(stderr, "sim: out of memory\n");
		abort();
	}
	return p;
}

struct raft_entry *entries_copy(const struct raft_entry *e, size_t n)
{
	if (n == 0)
		return NULL;
	struct raft_entry *out = xmalloc(n * sizeof(*out));
	for (size_t i = 0; i < n; i++) {
		out[i] = e[i];
		out[i].data.base = NULL;
		if (e[i].data.len) {
			out[i].data.base = xmalloc(e[i].data.len);
			memcpy(out[i].data.base, e[i].data.base, e[i].data.len);
		}
	}
	return out;
}

void entries_free(struct raft_entry *e, size_t n)
{
	if (!e)
		return;
	for (size_t i = 0; i < n; i++)
		free(e[i].data.base);
	free(e);
}

struct sim_msg *msg_copy(const struct raft_message *m)
{
	struct sim_msg *sm = xmalloc(sizeof(*sm));
	sm->m = *m;
	sm->entries = entries_copy(m->entries, m->n_entries);
	sm->m.entries = sm->entries;
	sm->snap_data = NULL;
	if (m->snap_data.len) {
		sm->snap_data = xmalloc(m->snap_data.len);
		memcpy(sm->snap_data, m->snap_data.base, m->snap_data.len);
	}
	sm->m.snap_data.base = sm->snap_data;
	return sm;
}

void msg_free(struct sim_msg *sm)
{
	if (!sm)
		return;
	entries_free(sm->entries, sm->m.n_entries);
	free(sm->snap_data);
	free(sm);
}

const char *msg_type_name(uint8_t type)
{
	static const char *names[] = {
		"?",
		"APPEND",
		"APPEND_RESP",
		"VOTE",
		"VOTE_RESP",
		"PREVOTE",
		"PREVOTE_RESP",
		"HEARTBEAT",
		"HEARTBEAT_RESP",
		"SNAPSHOT",
		"SNAPSHOT_RESP",
		"TIMEOUT_NOW",
		"TERM_QUERY",
		"TERM_RESP",
		"QUIESCE",
	};
	return type < sizeof(names) / sizeof(names[0]) ? names[type] : "?";
}
