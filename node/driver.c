/* driver.c — the Ready loop of every group (raft/raft.h's driver loop, DESIGN.md 3): per turn,
 * every Ready goes into the turn's one WAL batch, messages out now, msgs_after_persist held with
 * that batch, committed entries applied in one kv_apply; one batch written at a time by the WAL
 * writer thread, then raft_persisted and the held messages; then one frame per peer/client.
 *
 * The writer tells the loop (uv_async) as soon as a batch is durable, before it updates the
 * WAL's in-memory index, so the index update overlaps the loop's wake-up. A thread of its own
 * rather than uv_queue_work: a work item's completion would wake the loop a second time for
 * every batch (measured: about 13% fewer unpipelined puts/s with three nodes on two vCPUs).
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "node/node_int.h"

static int member_index(struct node *n, uint64_t id)
{
	return node_config_member_index(&n->cfg, id);
}

static void mark_unreachable(struct node *n, struct node_group *g, uint64_t to)
{
	int mi = member_index(n, to);
	if (mi >= 0)
		g->unreachable[mi] = true;
}

void node_send_msg(struct node *n, struct node_group *g, const struct raft_message *m)
{
	Ringraft__Raft__Message pb;
	Ringraft__Raft__Configuration conf;
	if (node_msg_to_pb(g->id, m, &n->scratch, &pb, &conf) < 0) {
		mark_unreachable(n, g, m->to);
		return;
	}
	int rc = net_peers_append_msg(n->peers, m->to, NET_PEER_FIELD_MSG, &pb.base);
	if (rc != NET_OK) {
		if (rc == NET_EFULL)
			node_log(NODE_LOG_WARN, g->id, "peer queue full, message dropped to=%llu",
				 (unsigned long long)m->to);
		mark_unreachable(n, g, m->to);
	}
}

static void hold_msg(struct node *n, struct node_group *g, const struct raft_message *m)
{
	struct node_batch *b = n->cur;
	Ringraft__Raft__Message pb;
	Ringraft__Raft__Configuration conf;
	if (node_msg_to_pb(g->id, m, &n->scratch, &pb, &conf) < 0)
		node_fatal(n, g->id, "out of memory holding a message");
	size_t len = ringraft__raft__message__get_packed_size(&pb);
	uint8_t *buf = malloc(len ? len : 1);
	if (buf == NULL)
		node_fatal(n, g->id, "out of memory holding a message");
	ringraft__raft__message__pack(&pb, buf);
	if (b->n_held == b->cap_held) {
		size_t cap = b->cap_held ? b->cap_held * 2 : 64;
		struct node_held *h = realloc(b->held, cap * sizeof *h);
		if (h == NULL)
			node_fatal(n, g->id, "out of memory holding a message");
		b->held = h;
		b->cap_held = cap;
	}
	b->held[b->n_held++] = (struct node_held){m->to, g->id, buf, len};
}

static void release_held(struct node *n, struct node_batch *b)
{
	for (size_t i = 0; i < b->n_held; i++) {
		struct node_held *h = &b->held[i];
		int rc = net_peers_append(n->peers, h->to, NET_PEER_FIELD_MSG, h->buf, h->len);
		if (rc != NET_OK) {
			struct node_group *g = node_group(n, h->group);
			if (g != NULL)
				mark_unreachable(n, g, h->to);
		}
		free(h->buf);
	}
	b->n_held = 0;
}

struct apply_ctx {
	struct node *n;
	struct node_group *g;
};

static void apply_entry_cb(const struct raft_entry *e, const struct kv_result *res, void *arg)
{
	struct apply_ctx *ctx = arg;
	node_service_applied(ctx->n, ctx->g, e, res);
}

static void apply_committed(struct node *n, struct node_group *g, const struct raft_entry *es,
			    size_t count)
{
	if (count == 0)
		return;
	bool has_conf = false;
	for (size_t i = 0; i < count; i++)
		if (es[i].type == RAFT_ENTRY_CONF)
			has_conf = true;
	struct apply_ctx ctx = {n, g};
	uint64_t t0 = node_metrics_now_ns();
	int rc = kv_apply(n->kv, g->id, es, count, has_conf ? raft_conf_of(g->raft) : NULL,
			  apply_entry_cb, &ctx);
	if (rc == KV_ECORRUPT) {
		/* a compare met a damaged value: nothing applied; the replica is rebuilt */
		node_group_damaged(n, g, "an apply");
		return;
	}
	if (rc == KV_ENOSPC)
		node_stop_disk_full(n, g->id, "applying committed entries to LMDB");
	if (rc != KV_OK)
		node_fatal(n, g->id, "apply failed first=%llu last=%llu error=\"%s\"",
			   (unsigned long long)es[0].index, (unsigned long long)es[count - 1].index,
			   kv_strerror(rc));
	node_metrics_apply(&n->metrics, count, t0);
	node_service_apply_done(n, g, es[count - 1].index);
}

static void soft_state(struct node *n, struct node_group *g, const struct raft_update *u)
{
	if (!u->soft_changed)
		return;
	enum raft_role was = g->role;
	g->role = u->soft.role;
	if (g->leader != u->soft.leader || was != g->role)
		node_log(NODE_LOG_INFO, g->id, "role changed role=%s leader=%llu term=%llu",
			 raft_role_name(u->soft.role), (unsigned long long)u->soft.leader,
			 (unsigned long long)raft_term_of(g->raft));
	g->leader = u->soft.leader;
	if (g->role == RAFT_LEADER && was != RAFT_LEADER)
		g->leader_since_ms = node_now_ms();
	if (was == RAFT_LEADER && g->role != RAFT_LEADER)
		node_service_lost_leadership(n, g);
}

static void handle_ready(struct node *n, struct node_group *g)
{
	struct raft_update u;
	raft_ready(g->raft, &u);
	struct wal_batch *b = n->cur->b;
	int rc = 0;
	if (u.has_hard_state)
		rc = wal_batch_hard_state(b, g->id, &u.hard_state);
	if (rc == 0 && u.truncate_from != 0)
		rc = wal_batch_truncate(b, g->id, u.truncate_from);
	if (rc == 0 && u.n_entries > 0)
		rc = wal_batch_entries(b, g->id, u.entries, u.n_entries);
	if (rc != 0)
		node_fatal(n, g->id, "cannot add to the WAL batch error=\"%s\"", wal_strerror(rc));
	if (u.snap_chunk != NULL)
		node_snap_receive(n, g, u.snap_chunk);

	for (size_t i = 0; i < u.n_msgs; i++)
		node_send_msg(n, g, &u.msgs[i]);
	for (size_t i = 0; i < u.n_msgs_after_persist; i++)
		hold_msg(n, g, &u.msgs_after_persist[i]);

	struct raft_snapshot_request reqs[NODE_NODES_MAX];
	size_t n_reqs = 0;
	for (size_t i = 0; i < u.n_snap_reqs && n_reqs < NODE_NODES_MAX; i++)
		reqs[n_reqs++] = u.snap_reqs[i];

	apply_committed(n, g, u.committed, u.n_committed);
	soft_state(n, g, &u);
	node_service_read_states(n, g, u.reads, u.n_reads, u.reads_dropped, u.n_reads_dropped);
	raft_advance(g->raft, &u);
	if (u.has_hard_state && u.hard_state.recovering != g->recovering) {
		g->recovering = u.hard_state.recovering;
		if (g->recovering)
			node_log(NODE_LOG_WARN, g->id,
				 "replica recovering: it does not vote or serve until a leader has "
				 "brought it up to date");
		else
			node_log(NODE_LOG_WARN, g->id,
				 "replica recovered: it votes and serves again term=%llu",
				 (unsigned long long)raft_term_of(g->raft));
	}

	/* Events for the core only after advance. */
	for (size_t i = 0; i < n_reqs; i++)
		node_snap_serve(n, g, &reqs[i]);
	for (size_t i = 0; i < n->cfg.n_members; i++) {
		if (g->unreachable[i]) {
			g->unreachable[i] = false;
			raft_report_unreachable(g->raft, n->cfg.members[i].id);
		}
	}
	node_service_reads_ready(n, g);
}

static void start_write(struct node *n);

/* The next WAL segment is made (written with zeroes and synced, 64 MiB) on the thread pool
 * ahead of need, so the batch that fills a segment does not make it inline (docs/WAL.md). */
static void prep_work_cb(uv_work_t *w)
{
	struct node *n = w->data;
	n->prep_rc = wal_prepare(n->wal);
}

static void prep_done_cb(uv_work_t *w, int status)
{
	struct node *n = w->data;
	n->preparing = false;
	if (status == 0 && n->prep_rc == WAL_OK) {
		n->prep_retry_ms = 0;
		return;
	}
	if (n->prep_retry_ms == 0) /* logged once per run of failures */
		node_log(NODE_LOG_WARN, 0,
			 "could not make the next WAL segment ahead (the batch that fills the "
			 "active one will make it) error=\"%s\"",
			 status ? uv_strerror(status) : wal_strerror(n->prep_rc));
	n->prep_retry_ms = node_now_ms() + NODE_MAINT_MS;
}

void node_maybe_prepare_wal(struct node *n)
{
	if (n->preparing || n->stopping || node_now_ms() < n->prep_retry_ms ||
	    !wal_prepare_wanted(n->wal))
		return;
	n->prep_work.data = n;
	if (uv_queue_work(&n->loop, &n->prep_work, prep_work_cb, prep_done_cb) == 0)
		n->preparing = true;
}

/* The batch in flight is durable: the cores learn how far, the messages that waited for it
 * go out, and the next batch may be written. */
static void complete_write(struct node *n, struct node_batch *b)
{
	const struct wal_durable *d;
	size_t nd = wal_batch_durable(b->b, &d);
	for (size_t i = 0; i < nd; i++) {
		struct node_group *g = node_group(n, d[i].group);
		if (g != NULL && g->raft != NULL)
			raft_persisted(g->raft, d[i].index, d[i].term);
	}
	node_metrics_wal_write_done(&n->metrics);
	release_held(n, b);
	wal_batch_reset(b->b);
	n->inflight = NULL;
	node_maybe_prepare_wal(n);
	node_process(n);
}

/* The writer's news: a batch is durable, or a write or compaction failed, or segments went. */
static void wal_news_cb(uv_async_t *h)
{
	struct node *n = h->data;
	int failed = atomic_load(&n->wal_failed);
	if (failed != WAL_OK) {
		/* Never retry a failed fsync: what is on disk is unknown (DESIGN.md 4). */
		if (failed == WAL_ENOSPC)
			node_stop_disk_full(n, 0, "a WAL write found no space");
		node_fatal(n, 0, "WAL write failed, stopping error=\"%s\" errno=\"%s\"",
			   wal_strerror(failed), strerror(wal_errno(n->wal)));
	}
	size_t removed = atomic_exchange(&n->wal_compacted, 0);
	if (removed > 0)
		node_log(NODE_LOG_INFO, 0, "wal compacted segments_removed=%zu", removed);
	struct node_batch *b = n->inflight;
	if (b != NULL && atomic_load(&b->durable))
		complete_write(n, b);
}

/* On the writer thread, with the WAL's mutex held: only the news goes over. */
static void durable_cb(struct wal_batch *wb, void *arg)
{
	struct node_batch *b = arg;
	(void)wb;
	node_metrics_wal_write_durable(&b->n->metrics);
	atomic_store(&b->durable, true);
	uv_async_send(&b->n->wal_news);
}

/* The writer thread. One batch at a time, in the order handed over: the loop hands the next
 * one only after the news of the last, so by then the writer has taken it. After the news it
 * still updates the WAL's index and compacts if asked; a batch handed over meanwhile waits. */
static void *wal_writer_main(void *arg)
{
	struct node *n = arg;
	pthread_mutex_lock(&n->wal_mu);
	for (;;) {
		while (n->wal_todo == NULL && !n->wal_quit)
			pthread_cond_wait(&n->wal_cv, &n->wal_mu);
		if (n->wal_todo == NULL)
			break;
		struct node_batch *b = n->wal_todo;
		n->wal_todo = NULL;
		pthread_mutex_unlock(&n->wal_mu);
		bool compact = b->compact; /* b is the loop's again once durable */
		node_metrics_wal_write_begin(&n->metrics);
		int rc = wal_batch_write_notify(n->wal, b->b, durable_cb, b);
		size_t removed = 0;
		if (rc == WAL_OK && compact)
			rc = wal_compact(n->wal, &removed);
		if (removed > 0)
			atomic_fetch_add(&n->wal_compacted, removed);
		if (rc != WAL_OK)
			atomic_store(&n->wal_failed, rc);
		if (rc != WAL_OK || removed > 0) /* before pending drops: the loop may then close */
			uv_async_send(&n->wal_news);
		atomic_fetch_sub(&n->wal_pending, 1);
		pthread_mutex_lock(&n->wal_mu);
	}
	pthread_mutex_unlock(&n->wal_mu);
	return NULL;
}

int node_wal_writer_start(struct node *n)
{
	if (uv_async_init(&n->loop, &n->wal_news, wal_news_cb) != 0)
		return -1;
	n->wal_news.data = n;
	pthread_mutex_init(&n->wal_mu, NULL);
	pthread_cond_init(&n->wal_cv, NULL);
	if (pthread_create(&n->wal_thread, NULL, wal_writer_main, n) != 0)
		return -1;
	n->wal_thread_started = true;
	return 0;
}

void node_wal_writer_stop(struct node *n)
{
	if (!n->wal_thread_started)
		return;
	pthread_mutex_lock(&n->wal_mu);
	n->wal_quit = true;
	pthread_cond_signal(&n->wal_cv);
	pthread_mutex_unlock(&n->wal_mu);
	pthread_join(n->wal_thread, NULL);
	n->wal_thread_started = false;
	pthread_cond_destroy(&n->wal_cv);
	pthread_mutex_destroy(&n->wal_mu);
}

static void start_write(struct node *n)
{
	if (n->inflight != NULL)
		return;
	struct node_batch *b = n->cur;
	if (wal_batch_empty(b->b)) {
		/* Nothing new to make durable: what the held messages depend on already is. */
		release_held(n, b);
		return;
	}
	node_metrics_wal_batch(&n->metrics, wal_batch_bytes(b->b), wal_batch_records(b->b));
	n->inflight = b;
	n->cur = (b == &n->batches[0]) ? &n->batches[1] : &n->batches[0];
	assert(n->cur->n_held == 0 && wal_batch_empty(n->cur->b));
	b->compact = b->checkpoint;
	b->checkpoint = false;
	atomic_store(&b->durable, false);
	atomic_fetch_add(&n->wal_pending, 1);
	pthread_mutex_lock(&n->wal_mu);
	assert(n->wal_todo == NULL);
	n->wal_todo = b;
	pthread_cond_signal(&n->wal_cv);
	pthread_mutex_unlock(&n->wal_mu);
}

bool node_write_idle(struct node *n)
{
	/* wal_close must not run beside a write or wal_prepare */
	return n->inflight == NULL && wal_batch_empty(n->cur->b) && n->cur->n_held == 0 &&
	       atomic_load(&n->wal_pending) == 0 && !n->preparing;
}

void node_process(struct node *n)
{
	if (n->processing)
		return; /* re-entered from a callback: the outer call finishes the turn */
	n->processing = true;
	for (int round = 0; round < 8; round++) {
		bool any = false;
		for (uint32_t i = 0; i < n->cfg.groups; i++) {
			struct node_group *g = &n->groups[i];
			if (g->raft != NULL && raft_has_ready(g->raft)) {
				handle_ready(n, g);
				any = true;
			}
		}
		if (!any)
			break;
	}
	node_repair(n);
	start_write(n);
	net_peers_flush(n->peers);
	net_server_flush(n->server);
	node_resp_flush(n);
	n->processing = false;
}

void node_on_peer_frame(void *arg, uint64_t from, const Ringraft__Raft__PeerFrame *f)
{
	struct node *n = arg;
	for (size_t i = 0; i < f->n_msgs; i++) {
		const Ringraft__Raft__Message *pb = f->msgs[i];
		struct node_group *g = node_group(n, pb->group);
		if (g == NULL || g->raft == NULL || pb->from != from || pb->to != n->cfg.id) {
			node_log(NODE_LOG_DEBUG, 0, "peer message ignored from=%llu group=%llu",
				 (unsigned long long)from, (unsigned long long)pb->group);
			continue;
		}
		struct raft_message m;
		if (node_msg_from_pb(pb, &n->scratch, &m) < 0) {
			node_log(NODE_LOG_WARN, g->id, "malformed peer message from=%llu",
				 (unsigned long long)from);
			continue;
		}
		int rc = raft_step(g->raft, &m);
		if (rc != 0)
			node_log(NODE_LOG_DEBUG, g->id,
				 "step refused from=%llu type=%u error=\"%s\"",
				 (unsigned long long)from, m.type, raft_strerror(rc));
	}
	for (size_t i = 0; i < f->n_digests; i++)
		node_digest_received(n, from, f->digests[i]);
	for (size_t i = 0; i < f->n_forwarded_requests; i++)
		node_service_forwarded(n, from, &f->forwarded_requests[i]);
	for (size_t i = 0; i < f->n_forwarded_responses; i++)
		node_service_forward_reply(n, &f->forwarded_responses[i]);
}
