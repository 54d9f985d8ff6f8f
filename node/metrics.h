/* metrics.h — kvd's Prometheus metrics (docs/OPERATIONS.md lists every one): counters and
 * fixed-bucket histograms bumped by one-line hooks on the loop thread (no lock, no allocation),
 * the text exposition rendered from them plus the node's gauges, and the /health verdict.
 * The loop publishes a rendered snapshot to the HTTP thread (node/http.h) every
 * NODE_METRICS_RENDER_MS; nothing here is touched from another thread except where noted.
 */
#ifndef RINGRAFT_NODE_METRICS_H
#define RINGRAFT_NODE_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NODE_HIST_BOUNDS_MAX 20
#define NODE_METRICS_OPS     10 /* kv.proto Op values 0..9 (0 = unknown) */
#define NODE_METRICS_RESULTS 13 /* kv.proto Code values 0..11, then "other" */

/* ------------------------------------------------------------------------------ histogram */

/* A histogram with fixed upper bounds (Prometheus `le`), in integer units: nanoseconds for
 * durations (rendered as seconds), bytes or counts otherwise. Observing is a short scan of
 * the bounds and three additions. */
struct node_hist {
	const uint64_t *bounds;                     /* ascending, borrowed (static tables) */
	size_t n_bounds;                            /* <= NODE_HIST_BOUNDS_MAX */
	uint64_t buckets[NODE_HIST_BOUNDS_MAX + 1]; /* per bucket, not cumulative; last = +Inf */
	uint64_t count, sum;
};

void node_hist_init(struct node_hist *h, const uint64_t *bounds, size_t n_bounds);
void node_hist_observe(struct node_hist *h, uint64_t v);

/* ------------------------------------------------------------------------------ text */

/* A growable text buffer for the exposition; reused between renders, so it stops allocating
 * once it is large enough. On out of memory `oom` is set and appends are dropped. */
struct node_text {
	char *buf;
	size_t len, cap;
	bool oom;
};

void node_text_reset(struct node_text *t);
void node_text_free(struct node_text *t);
void node_text_printf(struct node_text *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------------------------ counters */

/* Why a request was answered BUSY (the load bounds, docs/OPERATIONS.md "Overload"). */
enum node_shed_reason {
	NODE_SHED_NODE_REQUESTS,   /* --max-inflight */
	NODE_SHED_NODE_BYTES,      /* --max-inflight-bytes */
	NODE_SHED_CONN_REQUESTS,   /* --conn-max-inflight */
	NODE_SHED_CONN_BYTES,      /* --conn-max-inflight-bytes */
	NODE_SHED_GROUP_PROPOSALS, /* --group-max-proposals */
	NODE_SHED_GROUP_WAIT,      /* --group-max-wait-ms */
	NODE_SHED_REASONS
};

struct node_metrics {
	uint64_t requests[NODE_METRICS_OPS][NODE_METRICS_RESULTS]; /* client requests answered */
	struct node_hist request_ns[NODE_METRICS_OPS];
	uint64_t forwarded_out, forwarded_in;
	uint64_t proposals, proposals_refused;
	uint64_t shed[NODE_SHED_REASONS]; /* requests answered BUSY, by the bound they hit */
	uint64_t wal_batches;
	struct node_hist wal_batch_bytes, wal_batch_records, wal_fsync_ns;
	struct node_hist apply_entries, apply_ns;
	struct node_hist checkpoint_ns; /* LMDB checkpoints, begin to end (node/snapshot.c) */
	uint64_t snapshots_sent, snapshots_received;
	/* The WAL writer thread's timing of the batch in flight (one at a time): begin and the
	 * duration, stored by the writer, read by the loop once it learns the batch is durable. */
	_Atomic uint64_t wal_write_begin_ns, wal_write_ns;
};

void node_metrics_init(struct node_metrics *m);
uint64_t node_metrics_now_ns(void);

/* Hooks (loop thread unless said otherwise). op and code are kv.proto enum values; any value
 * out of range is counted as op "unknown" / result "other". Times are ns of the engine's
 * clock (node_io.now_ns). */
void node_metrics_request_done(struct node_metrics *m, int op, int code, uint64_t start_ns,
			       uint64_t now);
void node_metrics_forwarded(struct node_metrics *m, bool out);
void node_metrics_proposal(struct node_metrics *m, bool accepted);
void node_metrics_shed(struct node_metrics *m, enum node_shed_reason why);
/* A batch handed to the WAL writer. */
void node_metrics_wal_batch(struct node_metrics *m, size_t bytes, size_t records);
/* Writer thread: around the write + fdatasync of the batch in flight. */
void node_metrics_wal_write_begin(struct node_metrics *m);
void node_metrics_wal_write_durable(struct node_metrics *m);
/* Loop: the batch in flight is known durable; records the writer's timing. */
void node_metrics_wal_write_done(struct node_metrics *m);
void node_metrics_apply(struct node_metrics *m, size_t entries, uint64_t start_ns, uint64_t now);
void node_metrics_snapshot(struct node_metrics *m, bool sent);
void node_metrics_checkpoint(struct node_metrics *m, uint64_t took_ms);

/* ------------------------------------------------------------------------------ rendering */

/* The node's gauges at one instant, collected on the loop by node/metrics_endpoint.c, or made
 * up by a test. */
struct node_metrics_group {
	uint32_t id;
	uint64_t term, commit, applied, leader; /* leader: node id, 0 = none known */
	int role;                               /* enum raft_role */
	bool recovering;
};

struct node_metrics_peer {
	uint64_t id;
	bool up;
	uint64_t queue_bytes;
};

struct node_metrics_view {
	uint64_t node_id;
	const char *peer_addr, *client_addr;     /* borrowed */
	const struct node_metrics_group *groups; /* the groups hosted here, borrowed */
	size_t n_groups;
	const struct node_metrics_peer *peers; /* borrowed */
	size_t n_peers;
	uint64_t connections, uptime_ms, wal_bytes, lmdb_bytes;
	uint64_t inflight, inflight_bytes; /* requests the node holds, and their bytes */
	/* peer connections refused by peer authentication, by reason (enum net_peer_refusal) */
	uint64_t peer_auth_refused[3];
	bool stopping;
};

/* Appends the whole exposition (HELP, TYPE and samples of every metric) to out. */
void node_metrics_render(const struct node_metrics *m, const struct node_metrics_view *v,
			 struct node_text *out);
/* The /health verdict: 200 with "ok", or 503 with every reason, one per line ("group 3: no
 * leader"). reason is always NUL-terminated (truncated to reason_len). */
int node_metrics_health(const struct node_metrics_view *v, char *reason, size_t reason_len);

#endif
