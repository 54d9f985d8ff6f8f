/* service.c — the client service (DESIGN.md 7, 8): route each request to its group; propose
 * writes on the leader and answer them when applied; ReadIndex reads once applied >= index;
 * forward to the leader or answer NOT_LEADER; every request answered exactly once, errors saying
 * whether it surely did not happen (never proposed) or may have (TIMEOUT, LEADER_LOST).
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "node/node_int.h"

/* ------------------------------------------------------------------------------ requests */

static void list_push(struct node_list *l, struct node_req *r)
{
	assert(r->glist == NULL);
	r->glist = l;
	l->n++;
	r->gnext = NULL;
	r->gprev = l->tail;
	if (l->tail)
		l->tail->gnext = r;
	else
		l->head = r;
	l->tail = r;
}

static void list_remove(struct node_req *r)
{
	struct node_list *l = r->glist;
	if (l == NULL)
		return;
	if (r->gprev)
		r->gprev->gnext = r->gnext;
	else
		l->head = r->gnext;
	if (r->gnext)
		r->gnext->gprev = r->gprev;
	else
		l->tail = r->gprev;
	assert(l->n > 0);
	l->n--;
	r->glist = NULL;
	r->gprev = r->gnext = NULL;
}

uint32_t node_request_bytes(const Ringraft__Kv__Request *rq)
{
	size_t b = rq->key.len + rq->value.len + rq->expected.len + rq->end_key.len;
	for (size_t i = 0; i < rq->n_kvs; i++)
		b += rq->kvs[i]->key.len + rq->kvs[i]->value.len;
	for (size_t i = 0; i < rq->n_keys; i++)
		b += rq->keys[i].len;
	b += 64; /* the request's fixed fields, roughly */
	return b > UINT32_MAX ? UINT32_MAX : (uint32_t)b;
}

static struct node_req *req_new(struct node *n, enum req_origin origin, uint64_t peer,
				Ringraft__Kv__Request *rq)
{
	struct node_req *r = calloc(1, sizeof *r);
	if (r == NULL)
		return NULL;
	r->iid = ++n->next_iid;
	r->origin = origin;
	r->peer = peer;
	r->rq = rq;
	r->anext = NULL;
	r->aprev = n->reqs_tail;
	if (n->reqs_tail)
		n->reqs_tail->anext = r;
	else
		n->reqs_head = r;
	n->reqs_tail = r;
	size_t b = r->iid & (NODE_REQ_BUCKETS - 1);
	r->hnext = n->buckets[b];
	n->buckets[b] = r;
	uint32_t t = rq->timeout_ms ? rq->timeout_ms : n->cfg.request_timeout_ms;
	if (t > NODE_REQUEST_TIMEOUT_MS_MAX)
		t = NODE_REQUEST_TIMEOUT_MS_MAX;
	r->deadline_ms = node_now_ms(n) + t;
	r->start_ns = node_now_ns(n);
	r->bytes = node_request_bytes(rq);
	n->reqs_held++;
	n->reqs_held_bytes += r->bytes;
	return r;
}

static struct node_req *req_find(struct node *n, uint64_t iid)
{
	for (struct node_req *r = n->buckets[iid & (NODE_REQ_BUCKETS - 1)]; r; r = r->hnext)
		if (r->iid == iid)
			return r;
	return NULL;
}

static void req_free(struct node *n, struct node_req *r)
{
	list_remove(r);
	if (r->aprev)
		r->aprev->anext = r->anext;
	else
		n->reqs_head = r->anext;
	if (r->anext)
		r->anext->aprev = r->aprev;
	else
		n->reqs_tail = r->aprev;
	struct node_req **pp = &n->buckets[r->iid & (NODE_REQ_BUCKETS - 1)];
	while (*pp != r)
		pp = &(*pp)->hnext;
	*pp = r->hnext;
	assert(n->reqs_held > 0 && n->reqs_held_bytes >= r->bytes);
	n->reqs_held--;
	n->reqs_held_bytes -= r->bytes;
	ringraft__kv__request__free_unpacked(r->rq, NULL);
	free(r);
}

/* Sends resp (borrowed) to the request's origin and frees the request. */
static void req_finish(struct node *n, struct node_req *r, Ringraft__Kv__Response *resp)
{
	resp->id = r->rq->id;
	if (r->origin == ORIGIN_LOCAL) {
		node_metrics_request_done(&n->metrics, r->rq->op, resp->code, r->start_ns,
					  node_now_ns(n));
		r->reply(r->client, resp);
	} else {
		int rc = node_peer_send(n, r->peer, NODE_FIELD_FWD_RESP, &resp->base);
		if (rc != 0)
			node_log(NODE_LOG_DEBUG, r->group, "forwarded reply dropped to=%llu",
				 (unsigned long long)r->peer);
	}
	req_free(n, r);
}

static void req_error(struct node *n, struct node_req *r, Ringraft__Kv__Code code, const char *msg)
{
	Ringraft__Kv__Response resp = RINGRAFT__KV__RESPONSE__INIT;
	resp.code = code;
	resp.error = (char *)msg;
	req_finish(n, r, &resp);
}

static const char *client_addr_of(struct node *n, uint64_t id)
{
	return node_client_addr_of(n, id);
}

static void req_not_leader(struct node *n, struct node_req *r, struct node_group *g)
{
	Ringraft__Kv__Response resp = RINGRAFT__KV__RESPONSE__INIT;
	uint64_t leader = g && g->raft ? raft_leader_of(g->raft) : 0;
	if (leader == n->cfg.id)
		leader = 0;
	resp.code = RINGRAFT__KV__CODE__NOT_LEADER;
	resp.error = leader ? "not the leader of this group" : "no leader known for this group";
	resp.leader_hint = leader;
	resp.leader_addr = leader ? (char *)client_addr_of(n, leader) : "";
	req_finish(n, r, &resp);
}

/* ------------------------------------------------------------------------------ status */

static void fill_ring(struct node *n, Ringraft__Kv__RingConfig *ring, Ringraft__Kv__NodeInfo *infos,
		      Ringraft__Kv__NodeInfo **ptrs)
{
	ringraft__kv__ring_config__init(ring);
	ring->epoch = kv_ring_epoch(n->ring);
	ring->groups = n->cfg.groups;
	ring->vnodes = NODE_VNODES;
	/* Borrowed from the ring, which outlives the packing of the reply. */
	size_t n_ids;
	ring->group_ids = (uint32_t *)kv_ring_ids(n->ring, &n_ids);
	ring->n_group_ids = n_ids;
	for (size_t i = 0; i < n->cfg.n_members; i++) {
		ringraft__kv__node_info__init(&infos[i]);
		infos[i].id = n->cfg.members[i].id;
		infos[i].peer_addr = n->cfg.members[i].peer_addr;
		infos[i].client_addr = (char *)client_addr_of(n, infos[i].id);
		infos[i].removed = n->cfg.members[i].removed;
		infos[i].leaving = n->cfg.members[i].leaving && !n->cfg.members[i].removed;
		ptrs[i] = &infos[i];
	}
	ring->nodes = ptrs;
	ring->n_nodes = n->cfg.n_members;
	ring->members_epoch = n->members_epoch;
	ring->meta_group = node_meta_id(n);
	ring->bootstrap = n->bootstrap_str;
	ring->change = n->reshard_pb; /* borrowed; NULL: the ring never changed */
}

static void reply_status(struct node *n, struct node_req *r)
{
	Ringraft__Kv__Response resp = RINGRAFT__KV__RESPONSE__INIT;
	Ringraft__Kv__NodeStatus st = RINGRAFT__KV__NODE_STATUS__INIT;
	Ringraft__Kv__RingConfig ring;
	Ringraft__Kv__NodeInfo infos[NODE_NODES_MAX], *iptrs[NODE_NODES_MAX];
	uint32_t G = node_groups_all(n);
	Ringraft__Kv__GroupStatus *gs = calloc(G, sizeof *gs);
	Ringraft__Kv__GroupStatus **gp = calloc(G, sizeof *gp);
	if (gs == NULL || gp == NULL) {
		free(gs);
		free(gp);
		req_error(n, r, RINGRAFT__KV__CODE__INTERNAL, "out of memory");
		return;
	}
	bool all_led = true;
	size_t ng = 0;
	for (uint32_t i = 0; i < G; i++) {
		struct node_group *g = &n->groups[i];
		if (g->raft == NULL)
			continue;
		Ringraft__Kv__GroupStatus *s = &gs[ng];
		ringraft__kv__group_status__init(s);
		s->group = g->id;
		s->leader = raft_leader_of(g->raft);
		s->term = raft_term_of(g->raft);
		s->commit = raft_commit_of(g->raft);
		s->applied = raft_applied_of(g->raft);
		const struct raft_conf *c = raft_conf_of(g->raft);
		s->voters = (uint64_t *)c->voters;
		s->n_voters = c->n_voters;
		s->learners = (uint64_t *)c->learners;
		s->n_learners = c->n_learners;
		s->role = (char *)raft_role_name(raft_role_of(g->raft));
		s->recovering = raft_recovering(g->raft);
		if (s->leader == 0 || s->recovering)
			all_led = false;
		gp[ng++] = s;
	}
	st.id = n->cfg.id;
	st.peer_addr = n->cfg.peer_addr;
	st.client_addr = n->cfg.client_addr;
	st.groups = gp;
	st.n_groups = ng;
	struct wal_stats ws;
	wal_stats_get(n->wal, &ws);
	st.wal_bytes = ws.bytes_on_disk;
	st.lmdb_bytes = kv_size_bytes(n->kv);
	st.health = n->stopping ? "stopping" : all_led ? "ok" : "degraded";
	st.uptime_ms = node_now_ms(n) - n->start_ms;
	st.incarnation = n->incarnation;
	st.auto_balance = n->cfg.auto_balance;
	char moving[256] = "";
	if (n->rebalance.group != 0)
		snprintf(moving, sizeof moving, "group %u: node %llu -> node %llu: %s",
			 n->rebalance.group, (unsigned long long)n->rebalance.from,
			 (unsigned long long)n->rebalance.to,
			 n->rebalance.progress[0] ? n->rebalance.progress : "starting");
	st.rebalancing = moving;
	fill_ring(n, &ring, infos, iptrs);
	resp.code = RINGRAFT__KV__CODE__OK;
	resp.status = &st;
	resp.ring = &ring;
	req_finish(n, r, &resp);
	free(gs);
	free(gp);
}

/* ------------------------------------------------------------------------------ reads */

/* A failed local read: a damaged value is never served (the client tries another replica)
 * and the replica is rebuilt; other kv errors are INVALID or INTERNAL. */
static void read_failed(struct node *n, struct node_req *r, Ringraft__Kv__Response *resp, int rc,
			const char *where)
{
	if (rc == KV_ECORRUPT) {
		resp->code = RINGRAFT__KV__CODE__UNAVAILABLE;
		resp->error = "the replica's copy is damaged and is being rebuilt";
		node_group_damaged(n, node_group(n, r->group), where);
		return;
	}
	if (rc == KV_WRONG_SHARD) {
		/* the key's range moved away (released) or has not opened here yet: the node
		 * routed by a record older or newer than the group's own markers; the client
		 * asks again, by then the record says where the key is served */
		resp->code = RINGRAFT__KV__CODE__WRONG_SHARD;
		resp->error = "the key's range is moving between groups: try again";
		return;
	}
	resp->code = rc == KV_EINVAL ? RINGRAFT__KV__CODE__INVALID : RINGRAFT__KV__CODE__INTERNAL;
	resp->error = (char *)kv_strerror(rc);
}

struct scan_acc {
	Ringraft__Kv__KeyValue *kvs;
	Ringraft__Kv__KeyValue **ptrs;
	size_t n, cap;
	bool oom;
};

static int scan_cb(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	struct scan_acc *a = arg;
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		Ringraft__Kv__KeyValue *kvs = realloc(a->kvs, cap * sizeof *kvs);
		if (kvs == NULL) {
			a->oom = true;
			return 1;
		}
		a->kvs = kvs;
		a->cap = cap;
	}
	Ringraft__Kv__KeyValue *e = &a->kvs[a->n];
	ringraft__kv__key_value__init(e);
	e->key.data = malloc(kl ? kl : 1);
	e->value.data = malloc(vl ? vl : 1);
	if (e->key.data == NULL || e->value.data == NULL) {
		free(e->key.data);
		free(e->value.data);
		a->oom = true;
		return 1;
	}
	memcpy(e->key.data, k, kl);
	memcpy(e->value.data, v, vl);
	e->key.len = kl;
	e->value.len = vl;
	a->n++;
	return 0;
}

/* MGET (RESP's MGET and EXISTS): every key from the same state, in order, with `found`. */
static void serve_mget(struct node *n, struct node_req *r)
{
	Ringraft__Kv__Request *rq = r->rq;
	Ringraft__Kv__Response resp = RINGRAFT__KV__RESPONSE__INIT;
	size_t k = rq->n_keys;
	Ringraft__Kv__KeyValue *kvs = calloc(k, sizeof *kvs);
	Ringraft__Kv__KeyValue **ptrs = calloc(k, sizeof *ptrs);
	int rc = kvs && ptrs ? KV_OK : KV_ENOMEM;
	size_t i;
	for (i = 0; i < k && rc >= 0 && rc != KV_WRONG_SHARD; i++) {
		ringraft__kv__key_value__init(&kvs[i]);
		ptrs[i] = &kvs[i];
		kvs[i].key = rq->keys[i];
		void *v = NULL;
		size_t vl = 0;
		rc = kv_get(n->kv, r->group, rq->keys[i].data, rq->keys[i].len, node_wall_ms(n), &v,
			    &vl, NULL);
		if (rc == KV_OK) {
			kvs[i].found = true;
			kvs[i].value.data = v;
			kvs[i].value.len = vl;
		}
	}
	if (rc < 0 || rc == KV_WRONG_SHARD) {
		read_failed(n, r, &resp, rc, "a read");
	} else {
		resp.code = RINGRAFT__KV__CODE__OK;
		resp.kvs = ptrs;
		resp.n_kvs = k;
	}
	req_finish(n, r, &resp);
	for (size_t j = 0; kvs && j < i; j++)
		free(kvs[j].value.data);
	free(kvs);
	free(ptrs);
}

static void serve_read(struct node *n, struct node_req *r)
{
	/* a ReadIndex read is served only once its group has applied up to the read index */
	assert(r->state != REQ_READ_APPLY ||
	       r->index <= raft_applied_of(node_group(n, r->group)->raft));
	Ringraft__Kv__Request *rq = r->rq;
	Ringraft__Kv__Response resp = RINGRAFT__KV__RESPONSE__INIT;
	if (rq->op == RINGRAFT__KV__OP__GET || rq->op == RINGRAFT__KV__OP__TTL) {
		/* TTL: what is left by this node's clock, -1 with no expiry, -2 when absent */
		bool ttl = rq->op == RINGRAFT__KV__OP__TTL;
		void *v = NULL;
		size_t vl = 0;
		uint64_t now = node_wall_ms(n), e = 0;
		int rc = kv_get(n->kv, r->group, rq->key.data, rq->key.len, now, ttl ? NULL : &v,
				&vl, &e);
		if (rc == KV_OK) {
			resp.code = RINGRAFT__KV__CODE__OK;
			resp.found = true;
			resp.value.data = v;
			resp.value.len = vl;
			resp.expire_at_ms = e;
			resp.number = e == 0 ? -1 : e > now ? (int64_t)(e - now) : 0;
		} else if (rc == KV_NOT_FOUND) {
			resp.code = ttl ? RINGRAFT__KV__CODE__OK : RINGRAFT__KV__CODE__NOT_FOUND;
			resp.number = -2;
		} else {
			read_failed(n, r, &resp, rc, "a read");
		}
		req_finish(n, r, &resp);
		free(v);
		return;
	}
	if (rq->op == RINGRAFT__KV__OP__MGET) {
		serve_mget(n, r);
		return;
	}
	if (rq->op == RINGRAFT__KV__OP__USER_LIST) {
		node_auth_list(n, &resp);
		req_finish(n, r, &resp);
		node_auth_list_free(&resp);
		return;
	}
	if (rq->op == RINGRAFT__KV__OP__BACKUP_BEGIN) {
		/* after the ReadIndex round: every write acknowledged before it is applied */
		node_backup_answer(n, r->group, r->iid, rq, &resp);
		req_finish(n, r, &resp);
		node_backup_answer_free(&resp);
		return;
	}
	assert(rq->op == RINGRAFT__KV__OP__SCAN);
	struct scan_acc a = {0};
	void *next = NULL;
	size_t next_len = 0;
	uint32_t limit = rq->limit ? rq->limit : KV_SCAN_DEFAULT;
	if (limit > KV_SCAN_MAX)
		limit = KV_SCAN_MAX;
	int rc = kv_scan(n->kv, r->group, node_wall_ms(n), rq->key.data, rq->key.len,
			 rq->end_key.len ? rq->end_key.data : NULL, rq->end_key.len, limit, scan_cb,
			 &a, &next, &next_len);
	if (a.oom) {
		resp.code = RINGRAFT__KV__CODE__INTERNAL;
		resp.error = "out of memory";
	} else if (rc < 0) {
		read_failed(n, r, &resp, rc, "a scan");
	} else {
		resp.code = RINGRAFT__KV__CODE__OK;
		a.ptrs = malloc((a.n ? a.n : 1) * sizeof *a.ptrs);
		if (a.ptrs == NULL) {
			resp.code = RINGRAFT__KV__CODE__INTERNAL;
			resp.error = "out of memory";
		} else {
			for (size_t i = 0; i < a.n; i++)
				a.ptrs[i] = &a.kvs[i];
			resp.kvs = a.ptrs;
			resp.n_kvs = a.n;
			resp.next_key.data = next;
			resp.next_key.len = next ? next_len : 0;
		}
	}
	req_finish(n, r, &resp);
	for (size_t i = 0; i < a.n; i++) {
		free(a.kvs[i].key.data);
		free(a.kvs[i].value.data);
	}
	free(a.kvs);
	free(a.ptrs);
	free(next);
}

void node_service_read_states(struct node *n, struct node_group *g,
			      const struct raft_read_state *rs, size_t nrs, const uint64_t *dropped,
			      size_t ndropped)
{
	for (size_t i = 0; i < nrs; i++) {
		struct node_req *r = req_find(n, rs[i].ctx);
		if (r == NULL || r->state != REQ_READ_INDEX)
			continue;
		list_remove(r);
		r->state = REQ_READ_APPLY;
		r->index = rs[i].index;
		list_push(&g->reads_apply, r);
	}
	for (size_t i = 0; i < ndropped; i++) {
		struct node_req *r = req_find(n, dropped[i]);
		if (r != NULL && r->state == REQ_READ_INDEX)
			req_not_leader(n, r, g);
	}
}

void node_service_reads_ready(struct node *n, struct node_group *g)
{
	if (g->reads_apply.head == NULL)
		return;
	raft_index applied = raft_applied_of(g->raft);
	struct node_req *r = g->reads_apply.head;
	while (r != NULL) {
		struct node_req *next = r->gnext;
		if (r->index <= applied)
			serve_read(n, r);
		r = next;
	}
}

/* ------------------------------------------------------------------------------ writes */

static bool reshard_op(Ringraft__Kv__Op op)
{
	return op == RINGRAFT__KV__OP__RESHARD_ADD || op == RINGRAFT__KV__OP__RESHARD_REMOVE;
}

/* What an applied RESHARD_ADD / RESHARD_REMOVE did, from the record it stored (applied now,
 * at this leader). */
static void reshard_done_text(struct node *n, Ringraft__Kv__Op op, char *buf, size_t cap)
{
	struct node_reshard *r = NULL;
	char what[320];
	if (node_reshard_load(n->kv, node_meta_id(n), &r) != NODE_OK || r == NULL) {
		snprintf(buf, cap, "done");
		return;
	}
	node_reshard_describe(r, what, sizeof what);
	enum kv_reshard_outcome o = kv_reshard_outcome(r->change);
	if (op == RINGRAFT__KV__OP__RESHARD_ADD)
		snprintf(buf, cap,
			 "ring change planned: %s. The new groups are created on every node and "
			 "elect leaders; the meta group's leader then moves their keys to them, pair "
			 "by pair (kvctl groups shows the ranges' states)",
			 what);
	else if (o == KV_RESHARD_ABANDONED)
		snprintf(buf, cap,
			 "ring change rolled back: %s. No copy had completed; the groups it added "
			 "are retired on every node",
			 what);
	else
		snprintf(buf, cap,
			 "ring change planned: %s. The meta group's leader moves the group's keys "
			 "to the others; once complete the group retires (kvctl groups shows the "
			 "ranges' states)",
			 what);
	node_reshard_free(r);
}

static void finish_write(struct node *n, struct node_req *r, const struct kv_result *res)
{
	assert(r->state == REQ_PROPOSED && r->write); /* answered once its entry is applied */
	Ringraft__Kv__Response resp = RINGRAFT__KV__RESPONSE__INIT;
	Ringraft__Kv__Request *rq = r->rq;
	if (rq->return_old || rq->op == RINGRAFT__KV__OP__INCRBY ||
	    rq->op == RINGRAFT__KV__OP__MDEL) {
		/* INCRBY, MDEL: a decimal result; return_old: the previous value */
		resp.found = res->found;
		resp.value.data = (uint8_t *)res->value;
		resp.value.len = res->value_len;
		if (rq->op != RINGRAFT__KV__OP__PUT && rq->op != RINGRAFT__KV__OP__DELETE &&
		    res->code == KV_OK && res->value_len < 24) {
			char num[24];
			if (res->value_len > 0) /* an empty result may have no pointer at all */
				memcpy(num, res->value, res->value_len);
			num[res->value_len] = '\0';
			resp.number = strtoll(num, NULL, 10);
			resp.value.len = 0;
		}
	}
	char what[800];
	if (rq->op == RINGRAFT__KV__OP__RESHARD_STEP) {
		/* the driver reads the state machine's own result (node/reshard_drive.c) */
		resp.code = RINGRAFT__KV__CODE__OK;
		resp.number = res->code;
		resp.found = res->found;
		resp.value.data = (uint8_t *)res->value;
		resp.value.len = res->value_len;
		req_finish(n, r, &resp);
		return;
	}
	switch (res->code) {
	case KV_OK:
		resp.code = RINGRAFT__KV__CODE__OK;
		if (reshard_op(rq->op)) {
			reshard_done_text(n, rq->op, what, sizeof what);
			resp.progress = what;
		}
		break;
	case KV_NOT_FOUND:
		resp.code = RINGRAFT__KV__CODE__NOT_FOUND;
		break;
	case KV_NOT_INTEGER:
	case KV_OVERFLOW:
		resp.code = RINGRAFT__KV__CODE__INVALID;
		resp.error = (char *)kv_strerror(res->code);
		break;
	case KV_MOVING: /* refused by the group's resharding fence: it did not happen */
		resp.code = RINGRAFT__KV__CODE__MOVING;
		resp.error = (char *)kv_strerror(res->code);
		break;
	case KV_WRONG_SHARD: /* the group no longer (or not yet) serves the key: not written */
		resp.code = RINGRAFT__KV__CODE__WRONG_SHARD;
		resp.error = "the key's range is moving between groups: not written, try again";
		break;
	case KV_CAS_MISMATCH:
		if (rq->op == RINGRAFT__KV__OP__MEMBER_ADD ||
		    rq->op == RINGRAFT__KV__OP__MEMBER_REMOVE ||
		    rq->op == RINGRAFT__KV__OP__MEMBER_LEAVE) {
			/* another change of that member's record came first */
			resp.code = RINGRAFT__KV__CODE__INVALID;
			resp.error = rq->op == RINGRAFT__KV__OP__MEMBER_ADD
					     ? "member add: that id is a member already"
					     : "the member's record changed meanwhile: try again";
			break;
		}
		if (rq->op == RINGRAFT__KV__OP__USER_ADD) {
			resp.code = RINGRAFT__KV__CODE__INVALID;
			resp.error = "user add: that user exists (kvctl user remove it first)";
			break;
		}
		if (reshard_op(rq->op)) {
			/* another ring change was written between the plan and its apply */
			resp.code = RINGRAFT__KV__CODE__INVALID;
			resp.error = "the ring change record changed meanwhile (another "
				     "change came first): look at kvctl groups and try again";
			break;
		}
		resp.code = RINGRAFT__KV__CODE__CAS_MISMATCH;
		resp.found = res->found;
		resp.value.data = (uint8_t *)res->value;
		resp.value.len = res->value_len;
		break;
	case KV_EINVAL:
		resp.code = RINGRAFT__KV__CODE__INVALID;
		resp.error = "invalid command";
		break;
	case KV_ESESSION:
		resp.code = RINGRAFT__KV__CODE__INTERNAL;
		resp.error = "session reply expired: outcome unknown";
		break;
	default:
		resp.code = RINGRAFT__KV__CODE__INTERNAL;
		resp.error = (char *)kv_strerror(res->code);
		break;
	}
	req_finish(n, r, &resp);
}

void node_service_applied(struct node *n, struct node_group *g, const struct raft_entry *e,
			  const struct kv_result *res)
{
	struct node_req *r;
	while ((r = g->props.head) != NULL && r->index < e->index)
		req_error(n, r, RINGRAFT__KV__CODE__LEADER_LOST,
			  "entry replaced by another leader: outcome unknown");
	r = g->props.head;
	if (r == NULL || r->index != e->index)
		return;
	if (r->term == e->term)
		finish_write(n, r, res);
	else
		req_error(n, r, RINGRAFT__KV__CODE__LEADER_LOST,
			  "entry replaced by another leader: outcome unknown");
}

void node_service_apply_done(struct node *n, struct node_group *g, raft_index last)
{
	struct node_req *r;
	while ((r = g->props.head) != NULL && r->index <= last)
		req_error(n, r, RINGRAFT__KV__CODE__LEADER_LOST,
			  "entry replaced by another leader: outcome unknown");
}

void node_service_group_reset(struct node *n, struct node_group *g)
{
	node_service_lost_leadership(n, g);
	while (g->reads_apply.head != NULL)
		req_error(n, g->reads_apply.head, RINGRAFT__KV__CODE__UNAVAILABLE,
			  "the replica is being rebuilt");
}

void node_service_lost_leadership(struct node *n, struct node_group *g)
{
	while (g->props.head != NULL)
		req_error(n, g->props.head, RINGRAFT__KV__CODE__LEADER_LOST,
			  "leadership lost after proposing: outcome unknown");
	while (g->reads_idx.head != NULL)
		req_not_leader(n, g->reads_idx.head, g);
}

/* Commits the command: answered when its entry is applied (finish_write). */
static void propose_cmd(struct node *n, struct node_req *r, struct node_group *g,
			const struct kv_cmd *c);

/* MEMBER_ADD, MEMBER_REMOVE at the meta group's leader (members.c). */
static void propose_member(struct node *n, struct node_req *r, struct node_group *g)
{
	struct kv_cmd c = {0};
	char key[MEMBER_KEY_BUF];
	uint8_t *value;
	void *old;
	const char *why = node_members_check(n, r->rq);
	if (why != NULL) {
		req_error(n, r, RINGRAFT__KV__CODE__INVALID, why);
		return;
	}
	if (node_members_cmd(n, r->rq, &c, key, &value, &old, &why) != 0) {
		req_error(n, r, RINGRAFT__KV__CODE__UNAVAILABLE, why);
		return;
	}
	c.client_id = r->rq->client_id;
	c.seq = r->rq->seq;
	propose_cmd(n, r, g, &c);
	free(value);
	free(old);
}

/* RESHARD_ADD, RESHARD_REMOVE at the meta group's leader: plans the change from the record
 * stored now and writes it with a compare-and-set (node/reshard.h). The groups are created
 * when the record is applied, on every node (groups.c). */
static void propose_reshard(struct node *n, struct node_req *r, struct node_group *g)
{
	Ringraft__Kv__Request *rq = r->rq;
	struct node_reshard *stored = NULL, *next = NULL;
	const char *why = NULL;
	int rc = node_reshard_load(n->kv, g->id, &stored);
	if (rc != NODE_OK) {
		req_error(n, r, RINGRAFT__KV__CODE__UNAVAILABLE,
			  rc == NODE_EMALFORMED
				  ? "the stored ring change record does not check out: refused"
				  : "cannot read the stored ring change record: not proposed");
		return;
	}
	if (stored != NULL && kv_reshard_outcome(stored->change) != KV_RESHARD_MOVING &&
	    !node_reshard_drive_clean(n, kv_ring_epoch(stored->change->to))) {
		/* The next change may bring ranges back to a group that gave them away in this
		 * one; the group takes them only once its released keys are dropped (kv/handoff.h).
		 * The driver does that right after a change ends. */
		node_reshard_free(stored);
		req_error(n, r, RINGRAFT__KV__CODE__UNAVAILABLE,
			  "the last ring change is still being cleaned up (the keys it moved are "
			  "being dropped where they were): try again shortly");
		return;
	}
	struct kv_ring *boot = kv_ring_new(n->cfg.groups, NODE_VNODES, NODE_RING_EPOCH);
	if (boot == NULL) {
		node_reshard_free(stored);
		req_error(n, r, RINGRAFT__KV__CODE__UNAVAILABLE, "out of memory");
		return;
	}
	if (rq->op == RINGRAFT__KV__OP__RESHARD_ADD) {
		uint64_t members[NODE_NODES_MAX];
		size_t nm = 0;
		for (size_t i = 0; i < n->cfg.n_members; i++)
			if (!n->cfg.members[i].removed && !n->cfg.members[i].leaving)
				members[nm++] = n->cfg.members[i].id;
		rc = node_reshard_plan_add(stored, boot, node_meta_id(n), n->groups_cap,
					   rq->count ? rq->count : 1, members, nm, &next, &why);
	} else {
		rc = node_reshard_plan_remove(stored, boot, node_meta_id(n), rq->group, &next,
					      &why);
	}
	node_reshard_free(stored);
	if (rc != NODE_OK) {
		kv_ring_free(boot);
		req_error(n, r,
			  rc == NODE_EINVAL ? RINGRAFT__KV__CODE__INVALID
					    : RINGRAFT__KV__CODE__UNAVAILABLE,
			  why != NULL ? why : node_strerror(rc));
		return;
	}
	struct kv_cmd c;
	uint8_t *value;
	void *old;
	rc = node_reshard_cmd(n->kv, g->id, next, boot, &c, &value, &old, &why);
	node_reshard_free(next);
	kv_ring_free(boot);
	if (rc != NODE_OK) {
		req_error(n, r,
			  rc == NODE_EINVAL ? RINGRAFT__KV__CODE__INVALID
					    : RINGRAFT__KV__CODE__UNAVAILABLE,
			  why != NULL ? why : node_strerror(rc));
		return;
	}
	c.client_id = rq->client_id;
	c.seq = rq->seq;
	propose_cmd(n, r, g, &c);
	free(value);
	free(old);
}

static void propose(struct node *n, struct node_req *r, struct node_group *g)
{
	Ringraft__Kv__Request *rq = r->rq;
	struct kv_cmd c = {0};
	struct kv_item *items = NULL;
	uint8_t delta[8];
	if (rq->op == RINGRAFT__KV__OP__MEMBER_ADD || rq->op == RINGRAFT__KV__OP__MEMBER_REMOVE ||
	    rq->op == RINGRAFT__KV__OP__MEMBER_LEAVE) {
		propose_member(n, r, g);
		return;
	}
	if (reshard_op(rq->op)) {
		propose_reshard(n, r, g);
		return;
	}
	if (node_auth_op(rq->op)) {
		/* USER_ADD, USER_REMOVE, AUTH_ENABLE at the meta group's leader (auth.c) */
		char key[AUTH_KEY_BUF];
		const char *why = NULL;
		if (node_auth_cmd(n, rq, &c, key, &why) != 0) {
			req_error(n, r, RINGRAFT__KV__CODE__INVALID, why);
			return;
		}
		c.client_id = rq->client_id;
		c.seq = rq->seq;
		propose_cmd(n, r, g, &c);
		return;
	}
	switch (rq->op) {
	case RINGRAFT__KV__OP__PUT:
		c.op = KV_OP_PUT;
		break;
	case RINGRAFT__KV__OP__DELETE:
		c.op = KV_OP_DELETE;
		break;
	case RINGRAFT__KV__OP__INCRBY:
		c.op = KV_OP_INCRBY;
		break;
	case RINGRAFT__KV__OP__MSET:
	case RINGRAFT__KV__OP__MDEL: {
		bool mset = rq->op == RINGRAFT__KV__OP__MSET;
		c.op = mset ? KV_OP_MSET : KV_OP_MDEL;
		c.n_items = mset ? rq->n_kvs : rq->n_keys;
		if ((items = calloc(c.n_items ? c.n_items : 1, sizeof *items)) == NULL) {
			req_error(n, r, RINGRAFT__KV__CODE__UNAVAILABLE, "out of memory");
			return;
		}
		for (size_t i = 0; i < c.n_items; i++) {
			ProtobufCBinaryData k = mset ? rq->kvs[i]->key : rq->keys[i];
			items[i].key = k.data;
			items[i].key_len = k.len;
			if (mset) {
				items[i].value = rq->kvs[i]->value.data;
				items[i].value_len = rq->kvs[i]->value.len;
			}
		}
		c.items = items;
		break;
	}
	default:
		c.op = KV_OP_CAS;
		break;
	}
	c.if_present = rq->if_present;
	c.return_old = rq->return_old;
	c.client_id = rq->client_id;
	c.seq = rq->seq;
	c.key = rq->key.data;
	c.key_len = rq->key.len;
	c.value = rq->value.data;
	c.value_len = rq->value.len;
	if (c.op == KV_OP_CAS) {
		c.expect_absent = rq->expect_absent;
		if (!rq->expect_absent) {
			c.expected = rq->expected.data ? rq->expected.data : (const void *)"";
			c.expected_len = rq->expected.len;
		}
	}
	if (c.op == KV_OP_INCRBY) {
		for (int i = 0; i < 8; i++)
			delta[i] = (uint8_t)((uint64_t)rq->delta >> (8 * i));
		c.key = rq->key.data;
		c.key_len = rq->key.len;
		c.value = delta;
		c.value_len = 8;
	} else if (c.op == KV_OP_MSET || c.op == KV_OP_MDEL) {
		c.key = NULL;
		c.key_len = 0;
		c.value = NULL;
		c.value_len = 0;
	}
	const char *why = NULL;
	if (node_expire_prepare(n, rq, &c, &why) != 0) {
		free(items);
		req_error(n, r, RINGRAFT__KV__CODE__INVALID, why);
		return;
	}
	propose_cmd(n, r, g, &c);
	free(items);
}

static void propose_cmd(struct node *n, struct node_req *r, struct node_group *g,
			const struct kv_cmd *cmd)
{
	struct kv_cmd c = *cmd;
	struct raft_buf buf = {0};
	int rc = kv_cmd_encode(n->kv, &c, &buf);
	if (rc != KV_OK) {
		req_error(n, r,
			  rc == KV_ETOOLARGE ? RINGRAFT__KV__CODE__TOO_LARGE
			  : rc == KV_EINVAL  ? RINGRAFT__KV__CODE__INVALID
					     : RINGRAFT__KV__CODE__UNAVAILABLE,
			  kv_strerror(rc));
		return;
	}
	raft_index index;
	raft_term term;
	rc = raft_propose(g->raft, &buf, &index, &term);
	node_metrics_proposal(&n->metrics, rc == RAFT_OK);
	if (rc != RAFT_OK) {
		free(buf.base);
		if (rc == RAFT_ENOTLEADER)
			req_not_leader(n, r, g);
		else if (rc == RAFT_ETOOBIG)
			req_error(n, r, RINGRAFT__KV__CODE__TOO_LARGE, raft_strerror(rc));
		else
			req_error(n, r, RINGRAFT__KV__CODE__UNAVAILABLE, raft_strerror(rc));
		return;
	}
	r->state = REQ_PROPOSED;
	r->index = index;
	r->term = term;
	/* Older proposals at or past this index were overwritten by a leader change that this
	 * node went through between two updates: their outcome is unknown. */
	while (g->props.tail != NULL && g->props.tail->index >= index)
		req_error(n, g->props.tail, RINGRAFT__KV__CODE__LEADER_LOST,
			  "entry replaced after a leader change: outcome unknown");
	list_push(&g->props, r);
}

/* ------------------------------------------------------------------------------ routing */

/* The ops whose group comes from their key(s) (route_key). */
static bool key_op(Ringraft__Kv__Op op)
{
	switch (op) {
	case RINGRAFT__KV__OP__GET:
	case RINGRAFT__KV__OP__PUT:
	case RINGRAFT__KV__OP__DELETE:
	case RINGRAFT__KV__OP__CAS:
	case RINGRAFT__KV__OP__INCRBY:
	case RINGRAFT__KV__OP__TTL:
	case RINGRAFT__KV__OP__EXPIRE:
	case RINGRAFT__KV__OP__PERSIST:
	case RINGRAFT__KV__OP__MSET:
	case RINGRAFT__KV__OP__MDEL:
	case RINGRAFT__KV__OP__MGET:
		return true;
	default:
		return false;
	}
}

static void forward(struct node *n, struct node_req *r, uint64_t leader)
{
	Ringraft__Kv__Request *rq = r->rq;
	uint64_t id = rq->id;
	bool redirect = rq->redirect;
	uint32_t timeout = rq->timeout_ms, group = rq->group;
	uint64_t now = node_now_ms(n);
	rq->id = r->iid;
	rq->redirect = true; /* the leader answers NOT_LEADER rather than forwarding again */
	rq->timeout_ms = r->deadline_ms > now ? (uint32_t)(r->deadline_ms - now) : 1;
	if (rq->group == 0 && key_op(rq->op))
		rq->group = r->group; /* served in the group this node chose (route_key) */
	int rc = node_peer_send(n, leader, NODE_FIELD_FWD_REQ, &rq->base);
	rq->id = id;
	rq->redirect = redirect;
	rq->timeout_ms = timeout;
	rq->group = group;
	if (rc != 0) {
		req_error(n, r, RINGRAFT__KV__CODE__UNAVAILABLE,
			  "cannot reach the group leader: not sent");
		return;
	}
	r->state = REQ_FORWARDED;
	r->fwd_to = leader;
	node_metrics_forwarded(&n->metrics, true);
}

/* The group that serves a key now, for a read or a write: the ring's, or while a ring change
 * moves, the record's (kv_reshard_owner): reads go to the group that holds the key's latest
 * value, writes to the group that takes them. 0 for a write to a range frozen for its copy
 * (answered MOVING: it did not happen). A record older or newer than a group's own markers
 * only sends a request to a group that refuses it (MOVING or WRONG_SHARD, definite), never
 * to one that answers wrongly: the markers decide (kv/handoff.h).
 *
 * A request a peer forwarded carries the group the peer chose (forward sets it), and is
 * served there: nodes' records differ for a moment while a change moves, and a node that
 * routed it elsewhere would answer with a host of another group, which the forwarder would
 * take for a host of its own (node_service_forward_reply). A client's request.group is never
 * taken for a key: only peers are trusted to name it. */
static uint32_t route_key(const struct node *n, const struct node_req *r, const void *key,
			  size_t len, bool write)
{
	if (r->origin == ORIGIN_PEER && r->rq->group != 0 && node_group((struct node *)n,
								       r->rq->group) != NULL)
		return r->rq->group;
	if (n->reshard_moving == NULL) /* no change moves: the ring in effect */
		return kv_ring_group_of(n->ring, key, len);
	uint32_t reader, writer;
	kv_reshard_owner(n->reshard_moving, kv_ring_key_hash(key, len), &reader, &writer);
	return write ? writer : reader;
}

static void answer_moving(struct node *n, struct node_req *r)
{
	req_error(n, r, RINGRAFT__KV__CODE__MOVING,
		  "the key's range is frozen while it moves to another group: not written, try "
		  "again shortly");
}

static bool op_writes(Ringraft__Kv__Op op);

static bool key_ok(struct node *n, struct node_req *r)
{
	if (r->rq->key.len == 0) {
		req_error(n, r, RINGRAFT__KV__CODE__INVALID, "empty key");
		return false;
	}
	if (r->rq->key.len > KV_KEY_MAX) {
		req_error(n, r, RINGRAFT__KV__CODE__TOO_LARGE, "key longer than 511 bytes");
		return false;
	}
	return true;
}

/* MSET, MDEL, MGET: 1..KV_MULTI_KEYS_MAX valid keys (and values), all of one group (the
 * group of the first; Redis Cluster's CROSSSLOT otherwise), which goes to r->group. */
static bool multi_ok(struct node *n, struct node_req *r)
{
	Ringraft__Kv__Request *rq = r->rq;
	bool mset = rq->op == RINGRAFT__KV__OP__MSET;
	size_t k = mset ? rq->n_kvs : rq->n_keys;
	if (k == 0 || k > KV_MULTI_KEYS_MAX) {
		req_error(n, r, RINGRAFT__KV__CODE__INVALID, "1..65536 keys per multi-key request");
		return false;
	}
	for (size_t i = 0; i < k; i++) {
		ProtobufCBinaryData key = mset ? rq->kvs[i]->key : rq->keys[i];
		if (key.len == 0 || key.len > KV_KEY_MAX) {
			req_error(n, r,
				  key.len ? RINGRAFT__KV__CODE__TOO_LARGE
					  : RINGRAFT__KV__CODE__INVALID,
				  key.len ? "key longer than 511 bytes" : "empty key");
			return false;
		}
		if (mset && rq->kvs[i]->value.len > n->cfg.value_max) {
			req_error(n, r, RINGRAFT__KV__CODE__TOO_LARGE, "value over --value-max");
			return false;
		}
		uint32_t g = route_key(n, r, key.data, key.len, rq->op != RINGRAFT__KV__OP__MGET);
		if (g == 0) {
			answer_moving(n, r);
			return false;
		}
		if (i == 0) {
			r->group = g;
		} else if (g != r->group) {
			ProtobufCBinaryData k0 = mset ? rq->kvs[0]->key : rq->keys[0];
			if (kv_ring_group_of(n->ring, key.data, key.len) ==
			    kv_ring_group_of(n->ring, k0.data, k0.len)) {
				/* one group's keys that a move splits for now: again shortly */
				answer_moving(n, r);
				return false;
			}
			req_error(n, r, RINGRAFT__KV__CODE__INVALID,
				  "CROSSSLOT Keys in request don't hash to the same slot");
			return false;
		}
	}
	return true;
}

static struct node_group *explicit_group(struct node *n, struct node_req *r)
{
	struct node_group *g = node_group(n, r->rq->group);
	if (g == NULL) {
		req_error(n, r, RINGRAFT__KV__CODE__INVALID, "request.group must be 1..groups");
		return NULL;
	}
	r->group = g->id;
	return g;
}

static bool op_writes(Ringraft__Kv__Op op)
{
	return op == RINGRAFT__KV__OP__PUT || op == RINGRAFT__KV__OP__DELETE ||
	       op == RINGRAFT__KV__OP__CAS || op == RINGRAFT__KV__OP__INCRBY ||
	       op == RINGRAFT__KV__OP__MSET || op == RINGRAFT__KV__OP__MDEL ||
	       op == RINGRAFT__KV__OP__EXPIRE || op == RINGRAFT__KV__OP__PERSIST ||
	       op == RINGRAFT__KV__OP__MEMBER_ADD || op == RINGRAFT__KV__OP__MEMBER_REMOVE ||
	       op == RINGRAFT__KV__OP__MEMBER_LEAVE || op == RINGRAFT__KV__OP__USER_ADD ||
	       op == RINGRAFT__KV__OP__USER_REMOVE || op == RINGRAFT__KV__OP__AUTH_ENABLE ||
	       op == RINGRAFT__KV__OP__RESHARD_ADD || op == RINGRAFT__KV__OP__RESHARD_REMOVE ||
	       op == RINGRAFT__KV__OP__RESHARD_STEP;
}

static bool hosts_group(const struct node_group *g, uint64_t id)
{
	for (size_t i = 0; i < g->n_hosts; i++)
		if (g->hosts[i] == id)
			return true;
	return false;
}

/* A host of g learned from a hint: first in preference order (the list is at most
 * NODE_NODES_MAX: the last one falls off). */
static void learn_host(struct node_group *g, uint64_t id)
{
	size_t n = g->n_hosts < NODE_NODES_MAX ? g->n_hosts : NODE_NODES_MAX - 1;
	memmove(&g->hosts[1], &g->hosts[0], n * sizeof g->hosts[0]);
	g->hosts[0] = id;
	g->n_hosts = n + 1;
}

/* A group not hosted here: the host it last knew as the leader, if reachable, else the first
 * reachable host in preference order; 0 if none is reachable. */
static uint64_t host_to_ask(struct node *n, const struct node_group *g)
{
	if (g->leader_hint != 0 && node_peer_is_up(n, g->leader_hint))
		return g->leader_hint;
	for (size_t i = 0; i < g->n_hosts; i++)
		if (node_peer_is_up(n, g->hosts[i]))
			return g->hosts[i];
	return 0;
}

/* One step of a replica move at g's leader (move.c): OK with `done` and `progress`. */
static void move_step(struct node *n, struct node_req *r, struct node_group *g)
{
	char progress[160];
	if (((r->rq->source != 0 && node_config_member_index(&n->cfg, r->rq->source) < 0) ||
	     !node_member_live(n, r->rq->target)) &&
	    r->rq->members_epoch > n->members_epoch) {
		/* The client has seen a newer cluster map than this node (which learns it from
		 * the meta group's leader): a member added a moment ago may not have reached it
		 * yet. Retryable, unlike a refusal. */
		req_error(n, r, RINGRAFT__KV__CODE__UNAVAILABLE,
			  "a node of the move is not in this node's cluster map yet: try again");
		return;
	}
	int rc = node_move_step(n, g, r->rq->source, r->rq->target, progress, sizeof progress);
	if (rc == NODE_ENOTLEADER) {
		req_not_leader(n, r, g);
		return;
	}
	if (rc < 0) {
		req_error(n, r, RINGRAFT__KV__CODE__INVALID, progress);
		return;
	}
	Ringraft__Kv__Response resp = RINGRAFT__KV__RESPONSE__INIT;
	resp.code = RINGRAFT__KV__CODE__OK;
	resp.done = rc == 1;
	resp.progress = progress;
	req_finish(n, r, &resp);
}

/* One step of a ring change at g's leader, asked by the meta leader's driver
 * (node/reshard_drive.c): a handoff entry proposed as it is (its value is checked where it is
 * applied: kv/handoff.h), a chunk read at the source, or the record stored in the meta group. */
static void handoff_step(struct node *n, struct node_req *r, struct node_group *g)
{
	Ringraft__Kv__Request *rq = r->rq;
	struct kv_cmd c = {0};
	switch (rq->handoff) {
	case RINGRAFT__KV__HANDOFF_STEP__HANDOFF_COPY_READ: {
		Ringraft__Kv__Response resp = RINGRAFT__KV__RESPONSE__INIT;
		uint8_t *chunk = NULL;
		size_t len = 0;
		bool last = false;
		const char *why = NULL;
		uint64_t next = 0;
		resp.code = node_handoff_read(n, g, rq, &chunk, &len, &last, &next, &why);
		resp.handoff_offset = next;
		resp.error = (char *)why;
		resp.value.data = chunk;
		resp.value.len = len;
		resp.done = last;
		req_finish(n, r, &resp);
		free(chunk);
		return;
	}
	case RINGRAFT__KV__HANDOFF_STEP__HANDOFF_RECORD: {
		struct node_reshard *next = NULL;
		uint8_t *value = NULL;
		void *old = NULL;
		const char *why = NULL;
		struct kv_ring *boot = kv_ring_new(n->cfg.groups, NODE_VNODES, NODE_RING_EPOCH);
		int rc = boot == NULL ? NODE_ENOMEM
				      : node_reshard_decode(rq->value.data, rq->value.len, &next);
		if (rc == NODE_OK)
			rc = node_reshard_cmd(n->kv, g->id, next, boot, &c, &value, &old, &why);
		node_reshard_free(next);
		kv_ring_free(boot);
		if (rc != NODE_OK) {
			req_error(n, r,
				  rc == NODE_EINVAL || rc == NODE_EMALFORMED
					  ? RINGRAFT__KV__CODE__INVALID
					  : RINGRAFT__KV__CODE__UNAVAILABLE,
				  why != NULL ? why : node_strerror(rc));
			return;
		}
		propose_cmd(n, r, g, &c);
		free(value);
		free(old);
		return;
	}
	case RINGRAFT__KV__HANDOFF_STEP__HANDOFF_INGEST:
		/* the throttle: a copy waits while the target's own writes queue up, so that
		 * foreground writes keep at least half of the group's proposals */
		if (n->cfg.group_max_proposals && g->props.n >= n->cfg.group_max_proposals / 2) {
			req_error(n, r, RINGRAFT__KV__CODE__BUSY,
				  "busy: the target's proposals are queued: the copy waits");
			return;
		}
		c.op = KV_OP_INGEST;
		break;
	case RINGRAFT__KV__HANDOFF_STEP__HANDOFF_FENCE:
		c.op = KV_OP_FENCE;
		break;
	case RINGRAFT__KV__HANDOFF_STEP__HANDOFF_UNFENCE:
		c.op = KV_OP_UNFENCE;
		break;
	case RINGRAFT__KV__HANDOFF_STEP__HANDOFF_RELEASE:
		c.op = KV_OP_RELEASE;
		break;
	case RINGRAFT__KV__HANDOFF_STEP__HANDOFF_OPEN:
		c.op = KV_OP_OPEN;
		break;
	default:
		c.op = KV_OP_DROP;
		break;
	}
	c.value = rq->value.data;
	c.value_len = rq->value.len;
	propose_cmd(n, r, g, &c);
}

static void handle(struct node *n, struct node_req *r)
{
	Ringraft__Kv__Request *rq = r->rq;
	if (n->stopping) {
		req_error(n, r, RINGRAFT__KV__CODE__UNAVAILABLE, "node shutting down");
		return;
	}
	if (rq->ring_epoch != 0 && rq->ring_epoch != kv_ring_epoch(n->ring)) {
		Ringraft__Kv__Response resp = RINGRAFT__KV__RESPONSE__INIT;
		Ringraft__Kv__RingConfig ring;
		Ringraft__Kv__NodeInfo infos[NODE_NODES_MAX], *iptrs[NODE_NODES_MAX];
		fill_ring(n, &ring, infos, iptrs);
		resp.code = RINGRAFT__KV__CODE__WRONG_SHARD;
		resp.error = "stale ring epoch";
		resp.ring = &ring;
		req_finish(n, r, &resp);
		return;
	}
	struct node_group *g = NULL;
	switch (rq->op) {
	case RINGRAFT__KV__OP__PING:
		req_error(n, r, RINGRAFT__KV__CODE__OK, "");
		return;
	case RINGRAFT__KV__OP__STATUS:
		reply_status(n, r);
		return;
	case RINGRAFT__KV__OP__DIGEST: {
		if ((g = explicit_group(n, r)) == NULL)
			return;
		if (g->raft == NULL)
			break; /* not hosted here: answered below */
		uint8_t d[KV_DIGEST_BYTES];
		raft_index at = 0;
		int rc = kv_digest(n->kv, g->id, d, &at);
		if (rc == KV_ECORRUPT)
			node_group_damaged(n, g, "a digest");
		if (rc != KV_OK) {
			req_error(n, r, RINGRAFT__KV__CODE__INTERNAL, kv_strerror(rc));
			return;
		}
		Ringraft__Kv__Response resp = RINGRAFT__KV__RESPONSE__INIT;
		resp.code = RINGRAFT__KV__CODE__OK;
		resp.value.data = d;
		resp.value.len = sizeof d;
		resp.applied_index = at;
		req_finish(n, r, &resp);
		return;
	}
	case RINGRAFT__KV__OP__TRANSFER_LEADER:
	case RINGRAFT__KV__OP__MOVE_REPLICA:
		if ((g = explicit_group(n, r)) == NULL)
			return;
		break;
	case RINGRAFT__KV__OP__RESHARD_STEP:
		/* The driver's own steps (and those a peer forwards for it) only: a step from a
		 * client could fence, release or drop ranges, or step the record past a copy. */
		if (r->origin != ORIGIN_PEER && !node_reshard_drive_asked(r->reply)) {
			req_error(n, r, RINGRAFT__KV__CODE__INVALID,
				  "reshard step: internal to the cluster (use kvctl groups add/remove)");
			return;
		}
		if (rq->handoff == RINGRAFT__KV__HANDOFF_STEP__HANDOFF_RECORD)
			rq->group = node_meta_id(n);
		if (rq->handoff == RINGRAFT__KV__HANDOFF_STEP__HANDOFF_NONE ||
		    rq->handoff > RINGRAFT__KV__HANDOFF_STEP__HANDOFF_RECORD ||
		    rq->value.len == 0) {
			req_error(n, r, RINGRAFT__KV__CODE__INVALID,
				  "reshard step: a step and its value are needed");
			return;
		}
		if ((g = explicit_group(n, r)) == NULL)
			return;
		break;
	case RINGRAFT__KV__OP__SCAN:
		if ((g = explicit_group(n, r)) == NULL)
			return;
		if (g->id == node_meta_id(n)) {
			/* the meta group holds the cluster map and the users' password records,
			 * no keys of the ring: no client reads it */
			req_error(n, r, RINGRAFT__KV__CODE__INVALID,
				  "request.group must be 1..groups: the meta group holds no keys");
			return;
		}
		break;
	case RINGRAFT__KV__OP__BACKUP_BEGIN:
		/* served by the leader itself (backup.c): the snapshot stays open there, and the
		 * client asks that node for the chunks */
		rq->redirect = true;
		if ((g = explicit_group(n, r)) == NULL)
			return;
		if (g->id == node_meta_id(n)) {
			req_error(n, r, RINGRAFT__KV__CODE__INVALID,
				  "request.group must be 1..groups: the meta group is not backed up");
			return;
		}
		break;
	case RINGRAFT__KV__OP__BACKUP_CHUNK:
	case RINGRAFT__KV__OP__BACKUP_END: {
		Ringraft__Kv__Response resp = RINGRAFT__KV__RESPONSE__INIT;
		node_backup_answer(n, 0, 0, rq, &resp);
		req_finish(n, r, &resp);
		node_backup_answer_free(&resp);
		return;
	}
	case RINGRAFT__KV__OP__USER_ADD:
	case RINGRAFT__KV__OP__USER_REMOVE:
	case RINGRAFT__KV__OP__USER_LIST:
	case RINGRAFT__KV__OP__AUTH_ENABLE: {
		const char *why = node_auth_check(rq);
		if (why != NULL) {
			req_error(n, r, RINGRAFT__KV__CODE__INVALID, why);
			return;
		}
		r->group = node_meta_id(n);
		g = node_group(n, r->group);
		break;
	}
	case RINGRAFT__KV__OP__MEMBER_ADD:
	case RINGRAFT__KV__OP__MEMBER_REMOVE:
	case RINGRAFT__KV__OP__MEMBER_LEAVE: {
		/* checked by the meta group's leader as it proposes (propose_member): its map
		 * has every change it acknowledged; another node's may be a moment behind */
		r->group = node_meta_id(n);
		g = node_group(n, r->group);
		break;
	}
	case RINGRAFT__KV__OP__RESHARD_ADD:
	case RINGRAFT__KV__OP__RESHARD_REMOVE:
		/* planned by the meta group's leader (propose_reshard): any node forwards */
		if (rq->op == RINGRAFT__KV__OP__RESHARD_ADD && rq->count > NODE_GROUPS_ADDED_MAX) {
			req_error(n, r, RINGRAFT__KV__CODE__INVALID,
				  "groups add: --count must be 1..32");
			return;
		}
		if (rq->op == RINGRAFT__KV__OP__RESHARD_REMOVE && rq->group == 0) {
			req_error(n, r, RINGRAFT__KV__CODE__INVALID,
				  "groups remove: request.group must name the group");
			return;
		}
		r->group = node_meta_id(n);
		g = node_group(n, r->group);
		break;
	case RINGRAFT__KV__OP__MSET:
	case RINGRAFT__KV__OP__MDEL:
	case RINGRAFT__KV__OP__MGET:
		if (!multi_ok(n, r))
			return;
		g = node_group(n, r->group);
		break;
	case RINGRAFT__KV__OP__INCRBY:
	case RINGRAFT__KV__OP__GET:
	case RINGRAFT__KV__OP__TTL:
	case RINGRAFT__KV__OP__EXPIRE:
	case RINGRAFT__KV__OP__PERSIST:
	case RINGRAFT__KV__OP__PUT:
	case RINGRAFT__KV__OP__DELETE:
	case RINGRAFT__KV__OP__CAS:
		if (!key_ok(n, r))
			return;
		if (rq->value.len > n->cfg.value_max) {
			req_error(n, r, RINGRAFT__KV__CODE__TOO_LARGE, "value over --value-max");
			return;
		}
		r->group = route_key(n, r, rq->key.data, rq->key.len, op_writes(rq->op));
		if (r->group == 0) {
			answer_moving(n, r);
			return;
		}
		g = node_group(n, r->group);
		break;
	default:
		req_error(n, r, RINGRAFT__KV__CODE__INVALID, "unknown op");
		return;
	}
	if (g != NULL && g->raft == NULL && g->n_hosts > 0) {
		/* More nodes than replicas: this node does not host the group. It forwards the
		 * request to the host it last knew as the leader, else to a host it can reach, and
		 * follows that host's NOT_LEADER hint (node_service_forward_reply), so that a
		 * client that knows nothing of placement is served by any node. A request that
		 * asked not to be forwarded (or was forwarded here already) and a DIGEST (of this
		 * node's own replica) are answered with a host to ask instead. */
		uint64_t host = host_to_ask(n, g);
		if (!rq->redirect && rq->op != RINGRAFT__KV__OP__DIGEST && host != 0) {
			r->write = op_writes(rq->op);
			r->hops = 0;
			forward(n, r, host);
			return;
		}
		Ringraft__Kv__Response resp = RINGRAFT__KV__RESPONSE__INIT;
		if (host == 0)
			host = g->hosts[0];
		resp.code = RINGRAFT__KV__CODE__NOT_LEADER;
		resp.error = "group not hosted on this node";
		resp.leader_hint = host;
		resp.leader_addr = (char *)client_addr_of(n, host);
		req_finish(n, r, &resp);
		return;
	}
	if (g == NULL || g->raft == NULL) {
		req_error(n, r, RINGRAFT__KV__CODE__UNAVAILABLE, "group not hosted on this node");
		return;
	}
	r->write = op_writes(rq->op);
	if ((rq->op == RINGRAFT__KV__OP__GET || rq->op == RINGRAFT__KV__OP__SCAN ||
	     rq->op == RINGRAFT__KV__OP__MGET || rq->op == RINGRAFT__KV__OP__TTL) &&
	    rq->consistency == RINGRAFT__KV__CONSISTENCY__SERIALIZABLE) {
		/* A recovering replica's state may lack acknowledged writes: the client goes to
		 * the leader instead (the hint), never to what this replica holds. */
		if (raft_recovering(g->raft))
			req_not_leader(n, r, g);
		else
			serve_read(n, r);
		return;
	}
	uint64_t leader = raft_leader_of(g->raft);
	if (leader != n->cfg.id || raft_role_of(g->raft) != RAFT_LEADER) {
		if (rq->redirect || leader == 0 || leader == n->cfg.id ||
		    !node_peer_is_up(n, leader))
			req_not_leader(n, r, g);
		else
			forward(n, r, leader);
		return;
	}
	if (rq->op == RINGRAFT__KV__OP__TRANSFER_LEADER) {
		int rc = raft_transfer_leader(g->raft, rq->target);
		if (rc == RAFT_OK)
			req_error(n, r, RINGRAFT__KV__CODE__OK, "");
		else
			req_error(n, r, RINGRAFT__KV__CODE__INVALID, raft_strerror(rc));
		return;
	}
	if (rq->op == RINGRAFT__KV__OP__MOVE_REPLICA) {
		move_step(n, r, g);
		return;
	}
	if (rq->op == RINGRAFT__KV__OP__RESHARD_STEP) {
		handoff_step(n, r, g);
		return;
	}
	if (r->write) {
		/* Proposals this group has not applied yet: past the bound the log grows faster
		 * than it is applied, and every later write would only wait longer. */
		if (n->cfg.group_max_proposals && g->props.n >= n->cfg.group_max_proposals) {
			node_metrics_shed(&n->metrics, NODE_SHED_GROUP_PROPOSALS);
			req_error(n, r, RINGRAFT__KV__CODE__BUSY,
				  "busy: too many proposals waiting in this group, not proposed");
			return;
		}
		/* The queue bounded by time: while the oldest proposal not yet applied (the list
		 * is in log order) has waited longer than the bound, a new write would wait longer
		 * still. Its age is arrival to now at this node, so it adapts to what the group
		 * commits per second, where a count fits one machine's speed only. */
		if (n->cfg.group_max_wait_ms && g->props.head != NULL &&
		    node_now_ns(n) - g->props.head->start_ns >
			    (uint64_t)n->cfg.group_max_wait_ms * 1000000u) {
			node_metrics_shed(&n->metrics, NODE_SHED_GROUP_WAIT);
			req_error(n, r, RINGRAFT__KV__CODE__BUSY,
				  "busy: this group's oldest proposal has waited over "
				  "--group-max-wait-ms, not proposed");
			return;
		}
		propose(n, r, g);
		return;
	}
	int rc = raft_read_index(g->raft, r->iid);
	if (rc != RAFT_OK) {
		req_not_leader(n, r, g);
		return;
	}
	r->state = REQ_READ_INDEX;
	list_push(&g->reads_idx, r);
}

/* Whether the node is over its load bound for rq (--max-inflight, --max-inflight-bytes);
 * then the reason's message, and the shed is counted. Cheap requests that report or steer the
 * node (PING, STATUS, DIGEST, TRANSFER_LEADER, MOVE_REPLICA) always pass: an overloaded node
 * must still be observable, and its leaderships and replicas movable. A request larger than the
 * byte bound passes when nothing else is held, so that no request is refused for ever. */
static const char *over_bound(struct node *n, const Ringraft__Kv__Request *rq)
{
	switch (rq->op) {
	case RINGRAFT__KV__OP__PING:
	case RINGRAFT__KV__OP__STATUS:
	case RINGRAFT__KV__OP__DIGEST:
	case RINGRAFT__KV__OP__TRANSFER_LEADER:
	case RINGRAFT__KV__OP__MOVE_REPLICA:
	case RINGRAFT__KV__OP__MEMBER_ADD:
	case RINGRAFT__KV__OP__MEMBER_REMOVE:
	case RINGRAFT__KV__OP__MEMBER_LEAVE:
	case RINGRAFT__KV__OP__RESHARD_STEP:
		return NULL;
	default:
		break;
	}
	if (n->cfg.max_inflight && n->reqs_held >= n->cfg.max_inflight) {
		node_metrics_shed(&n->metrics, NODE_SHED_NODE_REQUESTS);
		return "busy: too many requests in flight on this node, not applied";
	}
	uint64_t b = node_request_bytes(rq);
	if (n->cfg.max_inflight_bytes && n->reqs_held_bytes > 0 &&
	    n->reqs_held_bytes + b > n->cfg.max_inflight_bytes) {
		node_metrics_shed(&n->metrics, NODE_SHED_NODE_BYTES);
		return "busy: too many request bytes in flight on this node, not applied";
	}
	return NULL;
}

void node_submit(struct node *n, Ringraft__Kv__Request *rq, node_reply_fn reply, void *client)
{
	const char *busy = n->stopping ? NULL : over_bound(n, rq);
	if (busy != NULL) {
		uint64_t now = node_now_ns(n);
		Ringraft__Kv__Response resp = RINGRAFT__KV__RESPONSE__INIT;
		resp.id = rq->id;
		resp.code = RINGRAFT__KV__CODE__BUSY;
		resp.error = (char *)busy;
		node_metrics_request_done(&n->metrics, rq->op, resp.code, now, now);
		ringraft__kv__request__free_unpacked(rq, NULL);
		reply(client, &resp);
		return;
	}
	struct node_req *r = req_new(n, ORIGIN_LOCAL, 0, rq);
	if (r == NULL) {
		Ringraft__Kv__Response resp = RINGRAFT__KV__RESPONSE__INIT;
		resp.id = rq->id;
		resp.code = RINGRAFT__KV__CODE__UNAVAILABLE;
		resp.error = "out of memory";
		ringraft__kv__request__free_unpacked(rq, NULL);
		reply(client, &resp);
		return;
	}
	r->reply = reply;
	r->client = client;
	handle(n, r);
}

void node_service_forwarded(struct node *n, uint64_t from, const ProtobufCBinaryData *b)
{
	Ringraft__Kv__Request *rq = ringraft__kv__request__unpack(NULL, b->len, b->data);
	if (rq == NULL) {
		node_log(NODE_LOG_WARN, 0, "undecodable forwarded request from=%llu",
			 (unsigned long long)from);
		return;
	}
	rq->redirect = true;
	node_metrics_forwarded(&n->metrics, false);
	const char *busy = n->stopping ? NULL : over_bound(n, rq);
	if (busy != NULL) {
		/* The forwarding node answers its client with this, as with any other answer. */
		Ringraft__Kv__Response resp = RINGRAFT__KV__RESPONSE__INIT;
		resp.id = rq->id;
		resp.code = RINGRAFT__KV__CODE__BUSY;
		resp.error = (char *)busy;
		if (node_peer_send(n, from, NODE_FIELD_FWD_RESP, &resp.base) != 0)
			node_log(NODE_LOG_DEBUG, 0, "forwarded busy reply dropped to=%llu",
				 (unsigned long long)from);
		ringraft__kv__request__free_unpacked(rq, NULL);
		return;
	}
	struct node_req *r = req_new(n, ORIGIN_PEER, from, rq);
	if (r == NULL) {
		ringraft__kv__request__free_unpacked(rq, NULL);
		return;
	}
	handle(n, r);
}

void node_service_forward_reply(struct node *n, uint64_t from, const ProtobufCBinaryData *b)
{
	Ringraft__Kv__Response *resp = ringraft__kv__response__unpack(NULL, b->len, b->data);
	if (resp == NULL)
		return;
	struct node_req *r = req_find(n, resp->id);
	if (r != NULL && r->state == REQ_FORWARDED && r->fwd_to == from) {
		struct node_group *g = node_group(n, r->group);
		if (g != NULL && g->raft == NULL) {
			/* Forwarded for a group this node does not host (handle). NOT_LEADER means
			 * the host did not propose it (a write answered so was never proposed), so
			 * it may go to the host named in the hint, a few hops at most. */
			uint64_t hint = resp->leader_hint;
			if (resp->code == RINGRAFT__KV__CODE__NOT_LEADER) {
				/* The hosts this node knows for a group it does not host may be
				 * stale (the group moved since): a hint naming another member is
				 * taken, and remembered as a host. */
				bool usable =
					hint != 0 && hint != n->cfg.id && node_member_live(n, hint);
				if (usable && !hosts_group(g, hint))
					learn_host(g, hint);
				g->leader_hint = usable ? hint : 0;
				if (usable && hint != from && r->hops < NODE_FWD_HOPS_MAX &&
				    node_peer_is_up(n, hint)) {
					r->hops++;
					r->state = REQ_NEW;
					forward(n, r, hint);
					ringraft__kv__response__free_unpacked(resp, NULL);
					return;
				}
			} else if (resp->code == RINGRAFT__KV__CODE__OK && r->write) {
				g->leader_hint = from; /* it applied a write: it led the group */
			}
		}
		req_finish(n, r, resp);
	}
	ringraft__kv__response__free_unpacked(resp, NULL);
}

/* ------------------------------------------------------------------------------ failures */

static void fail_req(struct node *n, struct node_req *r, const char *why)
{
	bool maybe = r->state == REQ_PROPOSED || (r->state == REQ_FORWARDED && r->write);
	if (maybe)
		req_error(n, r, RINGRAFT__KV__CODE__TIMEOUT, why);
	else if (r->state == REQ_NEW || r->state == REQ_FORWARDED)
		req_error(n, r, RINGRAFT__KV__CODE__UNAVAILABLE, why);
	else
		req_error(n, r, RINGRAFT__KV__CODE__TIMEOUT, why);
}

void node_service_peer_down(struct node *n, uint64_t peer)
{
	struct node_req *r = n->reqs_head;
	while (r != NULL) {
		struct node_req *next = r->anext;
		if (r->state == REQ_FORWARDED && r->fwd_to == peer)
			fail_req(n, r, "link to the group leader lost: outcome unknown");
		else if (r->origin == ORIGIN_PEER && r->peer == peer && r->state != REQ_PROPOSED)
			req_free(n, r); /* nobody left to answer */
		r = next;
	}
}

void node_service_timeouts(struct node *n)
{
	uint64_t now = node_now_ms(n);
	struct node_req *r = n->reqs_head;
	while (r != NULL) {
		struct node_req *next = r->anext;
		if (now >= r->deadline_ms)
			fail_req(n, r, "deadline passed: outcome unknown");
		r = next;
	}
}

void node_service_fail_all(struct node *n)
{
	while (n->reqs_head != NULL)
		fail_req(n, n->reqs_head, "node shutting down");
}
