/* codec.c — struct <-> protobuf conversions for the client (codec.h). Strings from the wire are
 * copied with truncation into fixed buffers (addresses, roles) so a hostile or buggy node can
 * never make the client overflow or allocate without bound.
 */
#include "cli/codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *cli_dup(const void *p, size_t len)
{
	char *d = malloc(len + 1);
	if (d == NULL)
		return NULL;
	if (len)
		memcpy(d, p, len);
	d[len] = '\0';
	return d;
}

static ProtobufCBinaryData bin(const void *p, size_t len)
{
	ProtobufCBinaryData b = {.len = p ? len : 0, .data = (uint8_t *)p};
	return b;
}

void cli_codec_request(const struct cli_request *in, Ringraft__Kv__Request *out)
{
	ringraft__kv__request__init(out);
	out->op = (Ringraft__Kv__Op)in->op;
	out->key = bin(in->key, in->key_len);
	out->value = bin(in->value, in->value_len);
	if (in->op == CLI_OP_CAS) {
		out->expect_absent = in->expected == NULL;
		out->expected = bin(in->expected, in->expected_len);
	}
	out->end_key = bin(in->end_key, in->end_key_len);
	out->limit = in->limit;
	out->group = in->group;
	out->target = in->target;
	out->consistency = in->serializable ? RINGRAFT__KV__CONSISTENCY__SERIALIZABLE
					    : RINGRAFT__KV__CONSISTENCY__LINEARIZABLE;
	out->redirect = in->redirect;
	out->ring_epoch = in->ring_epoch;
	out->timeout_ms = in->timeout_ms;
	if (in->session)
		out->seq = in->seq;
}

int cli_codec_reply(const Ringraft__Kv__Response *in, struct cli_reply *out)
{
	memset(out, 0, sizeof *out);
	out->code = (int)in->code;
	out->found = in->found;
	out->leader_hint = in->leader_hint;
	out->applied_index = in->applied_index;
	out->value_len = in->value.len;
	if (in->error && in->error[0] && !(out->error = cli_dup(in->error, strlen(in->error))))
		goto nomem;
	if (in->leader_addr && in->leader_addr[0] &&
	    !(out->leader_addr = cli_dup(in->leader_addr, strlen(in->leader_addr))))
		goto nomem;
	if (in->value.len && !(out->value = cli_dup(in->value.data, in->value.len)))
		goto nomem;
	if (in->next_key.len) {
		out->next_key_len = in->next_key.len;
		if (!(out->next_key = cli_dup(in->next_key.data, in->next_key.len)))
			goto nomem;
	}
	if (in->n_kvs) {
		out->kvs = calloc(in->n_kvs, sizeof *out->kvs);
		if (out->kvs == NULL)
			goto nomem;
		for (size_t i = 0; i < in->n_kvs; i++) {
			const Ringraft__Kv__KeyValue *kv = in->kvs[i];
			struct cli_kv *o = &out->kvs[out->n_kvs];
			o->key = cli_dup(kv->key.data, kv->key.len);
			o->value = cli_dup(kv->value.data, kv->value.len);
			o->key_len = kv->key.len;
			o->value_len = kv->value.len;
			out->n_kvs++;
			if (o->key == NULL || o->value == NULL)
				goto nomem;
		}
	}
	return 0;
nomem:
	cli_reply_free(out);
	return CLI_ENOMEM;
}

void cli_reply_free(struct cli_reply *rep)
{
	if (rep == NULL)
		return;
	free(rep->error);
	free(rep->leader_addr);
	free(rep->value);
	free(rep->next_key);
	for (size_t i = 0; i < rep->n_kvs; i++) {
		free(rep->kvs[i].key);
		free(rep->kvs[i].value);
	}
	free(rep->kvs);
	memset(rep, 0, sizeof *rep);
}

static void copy_str(char *dst, size_t cap, const char *src)
{
	snprintf(dst, cap, "%s", src ? src : "");
}

size_t cli_codec_ring_nodes(const Ringraft__Kv__RingConfig *rc, struct cli_ring_node *nodes)
{
	size_t n = 0;
	for (size_t i = 0; rc && i < rc->n_nodes && n < CLI_NODES_MAX; i++) {
		nodes[n].id = rc->nodes[i]->id;
		copy_str(nodes[n].peer_addr, CLI_ADDR_MAX, rc->nodes[i]->peer_addr);
		copy_str(nodes[n].client_addr, CLI_ADDR_MAX, rc->nodes[i]->client_addr);
		nodes[n].removed = rc->nodes[i]->removed;
		nodes[n].leaving = rc->nodes[i]->leaving;
		n++;
	}
	return n;
}

int cli_codec_status(const Ringraft__Kv__Response *in, struct cli_node_status *out)
{
	memset(out, 0, sizeof *out);
	const Ringraft__Kv__NodeStatus *s = in->status;
	if (s == NULL)
		return CLI_EPROTO;
	out->id = s->id;
	copy_str(out->peer_addr, sizeof out->peer_addr, s->peer_addr);
	copy_str(out->client_addr, sizeof out->client_addr, s->client_addr);
	copy_str(out->health, sizeof out->health, s->health);
	out->auto_balance = s->auto_balance;
	copy_str(out->rebalancing, sizeof out->rebalancing, s->rebalancing);
	out->wal_bytes = s->wal_bytes;
	out->lmdb_bytes = s->lmdb_bytes;
	out->uptime_ms = s->uptime_ms;
	out->incarnation = s->incarnation;
	if (in->ring) {
		out->ring_epoch = in->ring->epoch;
		out->ring_groups = in->ring->groups;
		out->members_epoch = in->ring->members_epoch;
		out->meta_group = in->ring->meta_group;
		copy_str(out->bootstrap, sizeof out->bootstrap, in->ring->bootstrap);
		out->ring_vnodes = in->ring->vnodes;
		out->n_nodes = cli_codec_ring_nodes(in->ring, out->nodes);
		/* The ring's ids; a node that sends none has 1..groups. */
		size_t ni = in->ring->n_group_ids ? in->ring->n_group_ids : in->ring->groups;
		if (ni > CLI_GROUPS_MAX)
			ni = CLI_GROUPS_MAX;
		if (ni) {
			out->ring_ids = malloc(ni * sizeof *out->ring_ids);
			if (out->ring_ids == NULL)
				return CLI_ENOMEM;
			for (size_t i = 0; i < ni; i++)
				out->ring_ids[i] = in->ring->n_group_ids ? in->ring->group_ids[i]
									 : (uint32_t)i + 1;
			out->n_ring_ids = ni;
		}
		const Ringraft__Kv__RingChange *rc = in->ring->change;
		if (rc != NULL && rc->n_from_ids <= CLI_GROUPS_MAX &&
		    rc->n_to_ids <= CLI_GROUPS_MAX) {
			struct cli_ring_change *ch = &out->change;
			ch->from_epoch = rc->from_epoch;
			ch->to_epoch = rc->to_epoch;
			ch->from_ids = malloc((rc->n_from_ids + 1) * sizeof *ch->from_ids);
			ch->to_ids = malloc((rc->n_to_ids + 1) * sizeof *ch->to_ids);
			ch->ranges = malloc((rc->n_ranges + 1) * sizeof *ch->ranges);
			if (ch->from_ids == NULL || ch->to_ids == NULL || ch->ranges == NULL)
				return CLI_ENOMEM;
			memcpy(ch->from_ids, rc->from_ids, rc->n_from_ids * sizeof *ch->from_ids);
			ch->n_from = rc->n_from_ids;
			memcpy(ch->to_ids, rc->to_ids, rc->n_to_ids * sizeof *ch->to_ids);
			ch->n_to = rc->n_to_ids;
			for (size_t i = 0; i < rc->n_ranges; i++)
				ch->ranges[i] = (struct cli_ring_range){
					.lo = rc->ranges[i]->lo,
					.hi = rc->ranges[i]->hi,
					.from = rc->ranges[i]->from,
					.to = rc->ranges[i]->to,
					.state = rc->ranges[i]->state,
				};
			ch->n_ranges = rc->n_ranges;
			ch->present = true;
		}
	}
	size_t ng = s->n_groups < CLI_GROUPS_MAX ? s->n_groups : CLI_GROUPS_MAX;
	if (ng) {
		out->groups = calloc(ng, sizeof *out->groups);
		if (out->groups == NULL)
			return CLI_ENOMEM;
	}
	for (size_t i = 0; i < ng; i++) {
		const Ringraft__Kv__GroupStatus *g = s->groups[i];
		struct cli_group_status *o = &out->groups[i];
		o->group = g->group;
		o->leader = g->leader;
		o->term = g->term;
		o->commit = g->commit;
		o->applied = g->applied;
		copy_str(o->role, sizeof o->role, g->role);
		o->recovering = g->recovering;
		for (size_t j = 0; j < g->n_voters && o->n_voters < CLI_NODES_MAX; j++)
			o->voters[o->n_voters++] = g->voters[j];
		for (size_t j = 0; j < g->n_learners && o->n_learners < CLI_NODES_MAX; j++)
			o->learners[o->n_learners++] = g->learners[j];
	}
	out->n_groups = ng;
	return 0;
}

void cli_node_status_free(struct cli_node_status *st)
{
	if (st == NULL)
		return;
	free(st->groups);
	st->groups = NULL;
	st->n_groups = 0;
	free(st->ring_ids);
	st->ring_ids = NULL;
	st->n_ring_ids = 0;
	free(st->change.from_ids);
	free(st->change.to_ids);
	free(st->change.ranges);
	memset(&st->change, 0, sizeof st->change);
}
