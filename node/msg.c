/* msg.c — raft_message <-> protobuf Message, one field to one field (see proto/raft.proto).
 * Entry arrays live in caller-owned scratch buffers that only grow, so a steady stream of
 * messages costs no allocation. */
#include "node/msg.h"
#include "node/node_err.h"

#include <stdlib.h>
#include <string.h>

void node_msg_scratch_free(struct node_msg_scratch *s)
{
	free(s->pb_entries);
	free(s->pb_entry_ptrs);
	free(s->entries);
	memset(s, 0, sizeof *s);
}

static int grow_pb(struct node_msg_scratch *s, size_t n)
{
	if (n <= s->cap_pb)
		return 0;
	size_t cap = s->cap_pb ? s->cap_pb : 64;
	while (cap < n)
		cap *= 2;
	Ringraft__Raft__Entry *e = realloc(s->pb_entries, cap * sizeof *e);
	if (e == NULL)
		return NODE_ENOMEM;
	s->pb_entries = e;
	Ringraft__Raft__Entry **p = realloc(s->pb_entry_ptrs, cap * sizeof *p);
	if (p == NULL)
		return NODE_ENOMEM;
	s->pb_entry_ptrs = p;
	s->cap_pb = cap;
	return 0;
}

int node_msg_to_pb(uint64_t group, const struct raft_message *m, struct node_msg_scratch *s,
		   Ringraft__Raft__Message *out, Ringraft__Raft__Configuration *conf)
{
	ringraft__raft__message__init(out);
	out->group = group;
	out->type = m->type;
	out->from = m->from;
	out->to = m->to;
	out->term = m->term;
	out->log_term = m->log_term;
	out->index = m->index;
	out->commit = m->commit;
	out->reject = m->reject;
	out->recovering = m->recovering;
	out->hint_index = m->hint_index;
	out->hint_term = m->hint_term;
	out->context = m->context;
	if (m->n_entries > 0) {
		if (grow_pb(s, m->n_entries) < 0)
			return NODE_ENOMEM;
		for (uint32_t i = 0; i < m->n_entries; i++) {
			Ringraft__Raft__Entry *e = &s->pb_entries[i];
			ringraft__raft__entry__init(e);
			e->term = m->entries[i].term;
			e->index = m->entries[i].index;
			e->type = m->entries[i].type;
			e->data.data = m->entries[i].data.base;
			e->data.len = m->entries[i].data.len;
			s->pb_entry_ptrs[i] = e;
		}
		out->entries = s->pb_entry_ptrs;
		out->n_entries = m->n_entries;
	}
	if (m->type == RAFT_MSG_SNAPSHOT || m->type == RAFT_MSG_SNAPSHOT_RESP) {
		out->snap_index = m->snap_index;
		out->snap_term = m->snap_term;
		out->snap_offset = m->snap_offset;
		out->snap_done = m->snap_done;
		out->snap_data.data = m->snap_data.base;
		out->snap_data.len = m->snap_data.len;
		ringraft__raft__configuration__init(conf);
		conf->voters = (uint64_t *)m->snap_conf.voters;
		conf->n_voters = m->snap_conf.n_voters;
		conf->learners = (uint64_t *)m->snap_conf.learners;
		conf->n_learners = m->snap_conf.n_learners;
		out->snap_conf = conf;
	}
	return 0;
}

/* A configuration from the wire names each node once, and never node 0 (no node): the core
 * asserts both (a vote sent to node 0; a voter listed twice would count twice). O(n^2) over
 * at most 2 x RAFT_NODES_MAX ids. */
static bool conf_ids_ok(const Ringraft__Raft__Configuration *c)
{
	size_t n = c->n_voters + c->n_learners;
	for (size_t i = 0; i < n; i++) {
		uint64_t id = i < c->n_voters ? c->voters[i] : c->learners[i - c->n_voters];
		if (id == 0)
			return false;
		for (size_t j = 0; j < i; j++) {
			uint64_t other =
				j < c->n_voters ? c->voters[j] : c->learners[j - c->n_voters];
			if (other == id)
				return false;
		}
	}
	return true;
}

int node_msg_from_pb(const Ringraft__Raft__Message *pb, struct node_msg_scratch *s,
		     struct raft_message *out)
{
	memset(out, 0, sizeof *out);
	if (pb->n_entries > RAFT_MSG_ENTRIES_MAX)
		return NODE_EMALFORMED;
	out->type = (uint8_t)pb->type;
	out->from = pb->from;
	out->to = pb->to;
	out->term = pb->term;
	out->log_term = pb->log_term;
	out->index = pb->index;
	out->commit = pb->commit;
	out->reject = pb->reject;
	out->recovering = pb->recovering;
	out->hint_index = pb->hint_index;
	out->hint_term = pb->hint_term;
	out->context = pb->context;
	if (pb->n_entries > 0) {
		if (pb->n_entries > s->cap_entries) {
			size_t cap = s->cap_entries ? s->cap_entries : 64;
			while (cap < pb->n_entries)
				cap *= 2;
			struct raft_entry *e = realloc(s->entries, cap * sizeof *e);
			if (e == NULL)
				return NODE_ENOMEM;
			s->entries = e;
			s->cap_entries = cap;
		}
		for (size_t i = 0; i < pb->n_entries; i++) {
			const Ringraft__Raft__Entry *pe = pb->entries[i];
			if (pe->type > 255)
				return NODE_EMALFORMED;
			s->entries[i].term = pe->term;
			s->entries[i].index = pe->index;
			s->entries[i].type = (uint8_t)pe->type;
			s->entries[i].data.base = pe->data.data;
			s->entries[i].data.len = pe->data.len;
		}
		out->entries = s->entries;
		out->n_entries = (uint32_t)pb->n_entries;
	}
	out->snap_index = pb->snap_index;
	out->snap_term = pb->snap_term;
	out->snap_offset = pb->snap_offset;
	out->snap_done = pb->snap_done;
	out->snap_data.base = pb->snap_data.data;
	out->snap_data.len = pb->snap_data.len;
	if (pb->snap_conf != NULL) {
		if (pb->snap_conf->n_voters > RAFT_NODES_MAX ||
		    pb->snap_conf->n_learners > RAFT_NODES_MAX || !conf_ids_ok(pb->snap_conf))
			return NODE_EMALFORMED;
		if (pb->snap_conf->n_voters > 0)
			memcpy(out->snap_conf.voters, pb->snap_conf->voters,
			       pb->snap_conf->n_voters * sizeof(uint64_t));
		out->snap_conf.n_voters = (uint32_t)pb->snap_conf->n_voters;
		if (pb->snap_conf->n_learners > 0)
			memcpy(out->snap_conf.learners, pb->snap_conf->learners,
			       pb->snap_conf->n_learners * sizeof(uint64_t));
		out->snap_conf.n_learners = (uint32_t)pb->snap_conf->n_learners;
	}
	return 0;
}
