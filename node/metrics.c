/* metrics.c — kvd's counters and histograms, the Prometheus text exposition (format 0.0.4:
 * HELP, TYPE, then samples; histograms as cumulative _bucket{le} series, _sum and _count) and
 * the /health verdict. Pure: the gauges come in a node_metrics_view, so a test can render any
 * state; node/metrics_endpoint.c collects the view on the loop and publishes the text.
 */
#include "node/metrics.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "raft/raft.h"

/* Upper bounds. Durations in ns: a put waits for a quorum's fdatasync (a few ms on SSDs, tens
 * on slow disks), an apply is one LMDB transaction (tens of us to ms). */
static const uint64_t request_bounds_ns[] = {
	100000,   250000,    500000,    1000000,   2500000,    5000000,    10000000,   25000000,
	50000000, 100000000, 250000000, 500000000, 1000000000, 2500000000, 5000000000, 10000000000,
};
static const uint64_t fsync_bounds_ns[] = {
	25000,    50000,    100000,   250000,    500000,    1000000,   2500000,    5000000,
	10000000, 25000000, 50000000, 100000000, 250000000, 500000000, 1000000000, 2500000000,
};
static const uint64_t apply_bounds_ns[] = {
	10000,   25000,   50000,    100000,   250000,   500000,    1000000,
	2500000, 5000000, 10000000, 25000000, 50000000, 100000000, 250000000,
};
static const uint64_t batch_bounds_bytes[] = {
	512, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
};
static const uint64_t count_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* kv.proto's Op and Code names, as label values. */
static const char *const op_names[NODE_METRICS_OPS] = {
	"unknown",         "get",    "put",  "delete", "cas", "scan", "status",
	"transfer_leader", "digest", "ping",
};
static const char *const result_names[NODE_METRICS_RESULTS] = {
	"ok",        "not_found",   "cas_mismatch", "not_leader", "invalid",
	"too_large", "wrong_shard", "unavailable",  "timeout",    "leader_lost",
	"internal",  "busy",        "other",
};
/* The ops whose series are always present (so rate() has a zero to start from). */
static const int data_ops[] = {1, 2, 3, 4, 5};

/* ------------------------------------------------------------------------------ histogram */

void node_hist_init(struct node_hist *h, const uint64_t *bounds, size_t n_bounds)
{
	assert(n_bounds <= NODE_HIST_BOUNDS_MAX);
	memset(h, 0, sizeof *h);
	h->bounds = bounds;
	h->n_bounds = n_bounds;
}

void node_hist_observe(struct node_hist *h, uint64_t v)
{
	size_t i = 0;
	while (i < h->n_bounds && v > h->bounds[i])
		i++;
	h->buckets[i]++;
	h->count++;
	h->sum += v;
}

/* ------------------------------------------------------------------------------ text */

void node_text_reset(struct node_text *t)
{
	t->len = 0;
	t->oom = false;
	if (t->buf != NULL)
		t->buf[0] = '\0';
}

void node_text_free(struct node_text *t)
{
	free(t->buf);
	memset(t, 0, sizeof *t);
}

void node_text_printf(struct node_text *t, const char *fmt, ...)
{
	if (t->oom)
		return;
	for (;;) {
		size_t room = t->cap - t->len;
		va_list ap;
		va_start(ap, fmt);
		int w = t->buf ? vsnprintf(t->buf + t->len, room, fmt, ap) : -1;
		va_end(ap);
		if (w >= 0 && (size_t)w < room) {
			t->len += (size_t)w;
			return;
		}
		size_t need = t->len + (w > 0 ? (size_t)w : 0) + 1;
		size_t cap = t->cap ? t->cap : 16384;
		while (cap < need)
			cap *= 2;
		char *b = realloc(t->buf, cap);
		if (b == NULL) {
			t->oom = true;
			return;
		}
		t->buf = b;
		t->cap = cap;
	}
}

/* ------------------------------------------------------------------------------ hooks */

void node_metrics_init(struct node_metrics *m)
{
	memset(m, 0, sizeof *m);
	for (size_t i = 0; i < NODE_METRICS_OPS; i++)
		node_hist_init(&m->request_ns[i], request_bounds_ns, N_OF(request_bounds_ns));
	node_hist_init(&m->wal_batch_bytes, batch_bounds_bytes, N_OF(batch_bounds_bytes));
	node_hist_init(&m->wal_batch_records, count_bounds, N_OF(count_bounds));
	node_hist_init(&m->wal_fsync_ns, fsync_bounds_ns, N_OF(fsync_bounds_ns));
	node_hist_init(&m->apply_entries, count_bounds, N_OF(count_bounds));
	node_hist_init(&m->apply_ns, apply_bounds_ns, N_OF(apply_bounds_ns));
	node_hist_init(&m->checkpoint_ns, request_bounds_ns, N_OF(request_bounds_ns));
	atomic_init(&m->wal_write_begin_ns, 0);
	atomic_init(&m->wal_write_ns, 0);
}

uint64_t node_metrics_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void node_metrics_request_done(struct node_metrics *m, int op, int code, uint64_t start_ns,
			       uint64_t now)
{
	if (op < 0 || op >= NODE_METRICS_OPS)
		op = 0;
	if (code < 0 || code >= NODE_METRICS_RESULTS - 1)
		code = NODE_METRICS_RESULTS - 1;
	m->requests[op][code]++;
	node_hist_observe(&m->request_ns[op], now > start_ns ? now - start_ns : 0);
}

void node_metrics_forwarded(struct node_metrics *m, bool out)
{
	if (out)
		m->forwarded_out++;
	else
		m->forwarded_in++;
}

void node_metrics_proposal(struct node_metrics *m, bool accepted)
{
	if (accepted)
		m->proposals++;
	else
		m->proposals_refused++;
}

void node_metrics_shed(struct node_metrics *m, enum node_shed_reason why)
{
	assert(why < NODE_SHED_REASONS);
	m->shed[why]++;
}

void node_metrics_wal_batch(struct node_metrics *m, size_t bytes, size_t records)
{
	m->wal_batches++;
	node_hist_observe(&m->wal_batch_bytes, bytes);
	node_hist_observe(&m->wal_batch_records, records);
}

void node_metrics_wal_write_begin(struct node_metrics *m)
{
	atomic_store_explicit(&m->wal_write_begin_ns, node_metrics_now_ns(), memory_order_relaxed);
}

void node_metrics_wal_write_durable(struct node_metrics *m)
{
	/* Published to the loop by the batch's `durable` flag, stored after this. */
	uint64_t b = atomic_load_explicit(&m->wal_write_begin_ns, memory_order_relaxed);
	uint64_t now = node_metrics_now_ns();
	atomic_store_explicit(&m->wal_write_ns, now > b ? now - b : 0, memory_order_relaxed);
}

void node_metrics_wal_write_done(struct node_metrics *m)
{
	node_hist_observe(&m->wal_fsync_ns,
			  atomic_load_explicit(&m->wal_write_ns, memory_order_relaxed));
}

void node_metrics_checkpoint(struct node_metrics *m, uint64_t took_ms)
{
	node_hist_observe(&m->checkpoint_ns, took_ms * 1000000u);
}

void node_metrics_apply(struct node_metrics *m, size_t entries, uint64_t start_ns, uint64_t now)
{
	node_hist_observe(&m->apply_entries, entries);
	node_hist_observe(&m->apply_ns, now > start_ns ? now - start_ns : 0);
}

void node_metrics_snapshot(struct node_metrics *m, bool sent)
{
	if (sent)
		m->snapshots_sent++;
	else
		m->snapshots_received++;
}

/* ------------------------------------------------------------------------------ rendering */

static void header(struct node_text *t, const char *name, const char *type, const char *help)
{
	node_text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A plain sample; labels is "" or `a="b",c="d"`. */
static void sample_u64(struct node_text *t, const char *name, const char *labels, uint64_t v)
{
	if (labels[0] != '\0')
		node_text_printf(t, "%s{%s} %llu\n", name, labels, (unsigned long long)v);
	else
		node_text_printf(t, "%s %llu\n", name, (unsigned long long)v);
}

static void one(struct node_text *t, const char *name, const char *type, const char *help,
		uint64_t v)
{
	header(t, name, type, help);
	sample_u64(t, name, "", v);
}

/* A number of `scale` units as a decimal (ns -> seconds with scale 1e9), exact for integers. */
static void print_scaled(char *out, size_t n, uint64_t v, uint64_t scale)
{
	if (scale == 1)
		snprintf(out, n, "%llu", (unsigned long long)v);
	else
		snprintf(out, n, "%.9g", (double)v / (double)scale);
}

/* The samples of one histogram (the header is written once per family by the caller). */
static void hist_samples(struct node_text *t, const char *name, const char *labels,
			 const struct node_hist *h, uint64_t scale)
{
	const char *sep = labels[0] != '\0' ? "," : "";
	uint64_t cum = 0;
	char le[48];
	for (size_t i = 0; i < h->n_bounds; i++) {
		cum += h->buckets[i];
		print_scaled(le, sizeof le, h->bounds[i], scale);
		node_text_printf(t, "%s_bucket{%s%sle=\"%s\"} %llu\n", name, labels, sep, le,
				 (unsigned long long)cum);
	}
	cum += h->buckets[h->n_bounds];
	node_text_printf(t, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
			 (unsigned long long)cum);
	if (scale == 1)
		node_text_printf(t, "%s_sum%s%s%s %llu\n", name, labels[0] ? "{" : "", labels,
				 labels[0] ? "}" : "", (unsigned long long)h->sum);
	else
		node_text_printf(t, "%s_sum%s%s%s %.9f\n", name, labels[0] ? "{" : "", labels,
				 labels[0] ? "}" : "", (double)h->sum / (double)scale);
	node_text_printf(t, "%s_count%s%s%s %llu\n", name, labels[0] ? "{" : "", labels,
			 labels[0] ? "}" : "", (unsigned long long)h->count);
}

static void hist(struct node_text *t, const char *name, const char *help, const struct node_hist *h,
		 uint64_t scale)
{
	header(t, name, "histogram", help);
	hist_samples(t, name, "", h, scale);
}

static bool is_data_op(int op)
{
	for (size_t i = 0; i < N_OF(data_ops); i++)
		if (data_ops[i] == op)
			return true;
	return false;
}

static void render_requests(const struct node_metrics *m, struct node_text *t)
{
	char labels[96];
	header(t, "ringraft_client_requests_total", "counter",
	       "Requests from client connections answered by this node, by op and result code.");
	for (int op = 0; op < NODE_METRICS_OPS; op++)
		for (int rc = 0; rc < NODE_METRICS_RESULTS; rc++) {
			uint64_t v = m->requests[op][rc];
			if (v == 0 && !(rc == 0 && is_data_op(op)))
				continue;
			snprintf(labels, sizeof labels, "op=\"%s\",result=\"%s\"", op_names[op],
				 result_names[rc]);
			sample_u64(t, "ringraft_client_requests_total", labels, v);
		}
	header(t, "ringraft_client_request_duration_seconds", "histogram",
	       "Time from a client request's arrival to its answer, by op.");
	for (int op = 0; op < NODE_METRICS_OPS; op++) {
		if (m->request_ns[op].count == 0 && !is_data_op(op))
			continue;
		snprintf(labels, sizeof labels, "op=\"%s\"", op_names[op]);
		hist_samples(t, "ringraft_client_request_duration_seconds", labels,
			     &m->request_ns[op], 1000000000u);
	}
	header(t, "ringraft_forwarded_requests_total", "counter",
	       "Requests forwarded to a group leader (direction=\"out\") or received from a "
	       "peer that forwarded them (direction=\"in\").");
	sample_u64(t, "ringraft_forwarded_requests_total", "direction=\"out\"", m->forwarded_out);
	sample_u64(t, "ringraft_forwarded_requests_total", "direction=\"in\"", m->forwarded_in);
}

static void render_groups(const struct node_metrics_view *v, struct node_text *t)
{
	static const struct {
		const char *name, *help;
	} fams[] = {
		{"ringraft_group_term", "The group's current Raft term on this replica."},
		{"ringraft_group_commit_index", "The highest log index known committed."},
		{"ringraft_group_applied_index", "The highest log index applied to LMDB."},
		{"ringraft_group_leader_id",
		 "The node id of the leader this replica knows, 0 = none."},
		{"ringraft_group_is_leader", "1 if this node leads the group, else 0."},
		{"ringraft_group_recovering",
		 "1 while this replica is recovering lost state (it neither votes nor serves)."},
	};
	for (size_t f = 0; f < N_OF(fams); f++) {
		header(t, fams[f].name, "gauge", fams[f].help);
		for (size_t i = 0; i < v->n_groups; i++) {
			const struct node_metrics_group *g = &v->groups[i];
			uint64_t x = f == 0   ? g->term
				     : f == 1 ? g->commit
				     : f == 2 ? g->applied
				     : f == 3 ? g->leader
				     : f == 4 ? (g->role == RAFT_LEADER)
					      : g->recovering;
			char labels[32];
			snprintf(labels, sizeof labels, "group=\"%u\"", g->id);
			sample_u64(t, fams[f].name, labels, x);
		}
	}
	static const enum raft_role roles[] = {RAFT_FOLLOWER, RAFT_PRECANDIDATE, RAFT_CANDIDATE,
					       RAFT_LEADER};
	header(t, "ringraft_group_role", "gauge",
	       "This replica's Raft role: 1 for the current role, 0 for the others.");
	for (size_t i = 0; i < v->n_groups; i++)
		for (size_t r = 0; r < N_OF(roles); r++) {
			char labels[64];
			snprintf(labels, sizeof labels, "group=\"%u\",role=\"%s\"", v->groups[i].id,
				 raft_role_name(roles[r]));
			sample_u64(t, "ringraft_group_role", labels,
				   v->groups[i].role == (int)roles[r]);
		}
}

void node_metrics_render(const struct node_metrics *m, const struct node_metrics_view *v,
			 struct node_text *t)
{
	header(t, "ringraft_node_info", "gauge", "This node's identity (always 1).");
	node_text_printf(
		t, "ringraft_node_info{node=\"%llu\",peer_addr=\"%s\",client_addr=\"%s\"} 1\n",
		(unsigned long long)v->node_id, v->peer_addr ? v->peer_addr : "",
		v->client_addr ? v->client_addr : "");
	header(t, "ringraft_uptime_seconds", "gauge", "Seconds since this kvd process started.");
	node_text_printf(t, "ringraft_uptime_seconds %.3f\n", (double)v->uptime_ms / 1000.0);
	one(t, "ringraft_client_connections", "gauge", "Open client connections.", v->connections);
	render_requests(m, t);
	one(t, "ringraft_proposals_total", "counter",
	    "Client writes appended to a group's log as its leader.", m->proposals);
	one(t, "ringraft_proposals_refused_total", "counter",
	    "Client writes the Raft core refused (not leader, too large, busy).",
	    m->proposals_refused);
	static const char *const shed_names[NODE_SHED_REASONS] = {
		[NODE_SHED_NODE_REQUESTS] = "node_requests",
		[NODE_SHED_NODE_BYTES] = "node_bytes",
		[NODE_SHED_CONN_REQUESTS] = "conn_requests",
		[NODE_SHED_CONN_BYTES] = "conn_bytes",
		[NODE_SHED_GROUP_PROPOSALS] = "group_proposals",
		[NODE_SHED_GROUP_WAIT] = "group_wait",
	};
	header(t, "ringraft_requests_shed_total", "counter",
	       "Requests answered BUSY (RESP: -TRYAGAIN) at once, never proposed, by the load "
	       "bound they hit.");
	for (int i = 0; i < NODE_SHED_REASONS; i++) {
		char labels[48];
		snprintf(labels, sizeof labels, "bound=\"%s\"", shed_names[i]);
		sample_u64(t, "ringraft_requests_shed_total", labels, m->shed[i]);
	}
	one(t, "ringraft_inflight_requests", "gauge",
	    "Requests this node holds (from clients and forwarded by peers), not yet answered.",
	    v->inflight);
	one(t, "ringraft_inflight_bytes", "gauge",
	    "Key and value bytes of the requests this node holds.", v->inflight_bytes);
	one(t, "ringraft_wal_batches_total", "counter",
	    "WAL batches (one per loop turn with something to persist) written.", m->wal_batches);
	hist(t, "ringraft_wal_batch_size_bytes", "Bytes of one WAL batch.", &m->wal_batch_bytes, 1);
	hist(t, "ringraft_wal_batch_records",
	     "Records (entries, hard states, markers) of one WAL batch.", &m->wal_batch_records, 1);
	hist(t, "ringraft_wal_fsync_duration_seconds",
	     "Write plus fdatasync of one WAL batch, on the WAL writer thread.", &m->wal_fsync_ns,
	     1000000000u);
	hist(t, "ringraft_checkpoint_duration_seconds",
	     "One LMDB checkpoint (the rollback point after a power loss), its sync and save "
	     "off the loop, begin to end.",
	     &m->checkpoint_ns, 1000000000u);
	hist(t, "ringraft_apply_batch_entries",
	     "Committed entries applied to LMDB in one transaction (one group, one turn).",
	     &m->apply_entries, 1);
	hist(t, "ringraft_apply_duration_seconds", "Time of one apply transaction.", &m->apply_ns,
	     1000000000u);
	render_groups(v, t);
	one(t, "ringraft_snapshots_sent_total", "counter",
	    "Snapshots streamed completely to a follower.", m->snapshots_sent);
	one(t, "ringraft_snapshots_received_total", "counter",
	    "Snapshots received and installed (or recorded) from a leader.", m->snapshots_received);
	header(t, "ringraft_peer_up", "gauge", "1 while the link to the peer is up.");
	for (size_t i = 0; i < v->n_peers; i++) {
		char labels[32];
		snprintf(labels, sizeof labels, "peer=\"%llu\"",
			 (unsigned long long)v->peers[i].id);
		sample_u64(t, "ringraft_peer_up", labels, v->peers[i].up);
	}
	header(t, "ringraft_peer_queue_bytes", "gauge",
	       "Outbound bytes queued for the peer and not yet written to its socket.");
	for (size_t i = 0; i < v->n_peers; i++) {
		char labels[32];
		snprintf(labels, sizeof labels, "peer=\"%llu\"",
			 (unsigned long long)v->peers[i].id);
		sample_u64(t, "ringraft_peer_queue_bytes", labels, v->peers[i].queue_bytes);
	}
	header(t, "ringraft_peer_auth_refused_total", "counter",
	       "Peer connections refused by peer authentication (--peer-secret-file), by reason: "
	       "no-proof, bad-proof, frame-before-proof.");
	static const char *reasons[3] = {"no-proof", "bad-proof", "frame-before-proof"};
	for (size_t i = 0; i < 3; i++) {
		char labels[48];
		snprintf(labels, sizeof labels, "reason=\"%s\"", reasons[i]);
		sample_u64(t, "ringraft_peer_auth_refused_total", labels, v->peer_auth_refused[i]);
	}
	one(t, "ringraft_wal_size_bytes", "gauge", "Bytes of the WAL's segment files on disk.",
	    v->wal_bytes);
	one(t, "ringraft_lmdb_size_bytes", "gauge", "Bytes of the LMDB data file.", v->lmdb_bytes);
}

/* ------------------------------------------------------------------------------ health */

int node_metrics_health(const struct node_metrics_view *v, char *reason, size_t reason_len)
{
	assert(reason_len > 0);
	size_t off = 0;
	reason[0] = '\0';
#define ADD(...)                                                                                   \
	do {                                                                                       \
		if (off < reason_len) {                                                            \
			int w_ = snprintf(reason + off, reason_len - off, __VA_ARGS__);            \
			off += w_ > 0 ? (size_t)w_ : 0;                                            \
		}                                                                                  \
	} while (0)
	if (v->stopping)
		ADD("node stopping\n");
	for (size_t i = 0; i < v->n_groups; i++) {
		const struct node_metrics_group *g = &v->groups[i];
		if (g->leader == 0)
			ADD("group %u: no leader\n", g->id);
		if (g->recovering)
			ADD("group %u: replica recovering\n", g->id);
	}
#undef ADD
	if (reason[0] != '\0')
		return 503;
	snprintf(reason, reason_len, "ok\n");
	return 200;
}
