/* world.c — one simulated run (nodesim.h): the event queue, the nodes and their node_io, the
 * network, the disk, the nemesis and the clients, then the checks.
 *
 * Time is virtual, in ms. Events sit in one heap ordered by (time, sequence), so equal times
 * keep the order they were made in and a seed replays exactly.
 */
#include <assert.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jepsen-lite/history.h"
#include "jepsen-lite/linearizable.h"
#include "kv/kv.h"
#include "kv/reshard.h"
#include "kv/ring.h"
#include "net/peer.h"
#include "node/engine.h"
#include "node/log.h"
#include "node/node_limits.h"
#include "proto/kv.pb-c.h"
#include "proto/raft.pb-c.h"
#include "raft/raft.h"
#include "raft/rand.h"
#include "tests/nodesim/nodesim.h"
#include "wal/wal.h"

const char *const ns_count_names[NS_C_COUNT] = {
	[NS_C_CRASH] = "crashes",
	[NS_C_WIPE] = "wipes",
	[NS_C_STRIKE] = "crashes-after-ack",
	[NS_C_PAUSE] = "pauses",
	[NS_C_PARTITION] = "partitions",
	[NS_C_WAL_BATCH] = "wal-batches",
	[NS_C_WAL_LOST] = "wal-batches-lost",
	[NS_C_COMPACT] = "wal-compactions",
	[NS_C_CKPT] = "checkpoints",
	[NS_C_SNAP_CHUNK] = "snapshot-chunks",
	[NS_C_TIMEOUT_NOW] = "leader-transfers",
	[NS_C_TERM_QUERY] = "term-queries",
	[NS_C_FWD_REQ] = "forwarded-requests",
	[NS_C_FWD_RESP] = "forwarded-answers",
	[NS_C_DIGEST] = "digests",
	[NS_C_QUIESCE] = "quiesces",
	[NS_C_MOVE_STEP] = "move-steps",
	[NS_C_MOVE_DONE] = "moves-done",
	[NS_C_MOVE_REFUSED] = "moves-refused",
	[NS_C_MEMBER_CHANGE] = "member-changes",
	[NS_C_GROUP_ADD] = "group-adds",
	[NS_C_GROUP_READD] = "group-readds",
	[NS_C_GROUP_REMOVE] = "group-removes",
	[NS_C_GROUP_CHECK] = "group-restart-checks",
	[NS_C_GROUP_OK] = "group-ok-ops",
	[NS_C_RING_CHANGE] = "ring-changes",
	[NS_C_RING_SEEN] = "ring-applied-everywhere",
	[NS_C_RING_REFUSED] = "ring-moving-answers",
	[NS_C_RING_DONE] = "ring-changes-complete",
	[NS_C_OK_READ] = "ok-reads",
	[NS_C_OK_WRITE] = "ok-writes",
	[NS_C_OK_CAS] = "ok-cas",
	[NS_C_OK_INCR] = "ok-increments",
	[NS_C_FAIL] = "fail",
	[NS_C_INFO] = "info",
};

/* Liveness: from the heal on, a put through each node (its probe, following NOT_LEADER hints
 * as any client does, and tried again every PROBE_RETRY_MS while it fails or times out) must
 * be answered ok within PROBE_MS. Seeds 1..2000: the slowest took 943 ms (seed 1901: restarted
 * nodes, elections with timeouts up to 2 x 360 ms). */
#define PROBE_RETRY_MS 100
#define PROBE_MS       2000

/* In the crash mixes, one acknowledged write in STRIKE_ONE_IN (at most one per STRIKE_GAP_MS)
 * is followed at once by a majority crash (EV_STRIKE). */
/* The membership plan's steps after the end of the clients' run, at most (the audit then
 * wants it done). */
#define PLAN_GRACE_MS 60000
/* ring runs: how long after the heal (or the step's start, if later) every running node may
 * take to create, then retire, the group a ring change adds (the record is pushed every
 * NODE_MAP_PUSH_MS) */
#define RING_WAIT_MS 30000

#define STRIKE_ONE_IN 8
#define STRIKE_GAP_MS 300

/* ------------------------------------------------------------------------------ events */

enum ev_type {
	EV_DELIVER,
	EV_DISK,
	EV_TICK,
	EV_CLIENT,
	EV_NEMESIS,
	EV_RESTART,
	EV_RESUME,
	EV_HEAL,
	EV_STRIKE, /* a majority crashes, right after a write was acknowledged */
	EV_MOVE,   /* the membership plan's next step */
	EV_MOVER,  /* the mover's next MOVE_REPLICA step */
	EV_STOP,   /* a node that learned it was removed from the cluster stops for good */
	EV_GROUPS, /* adds runs: the next group creation or removal (node = its action) */
	EV_RING,   /* ring runs: the ring plan's next step */
	EV_CKPT,   /* an LMDB checkpoint's sync is over (io.checkpoint) */
};

struct ev {
	uint64_t t, seq;
	enum ev_type type;
	int node, peer; /* DELIVER: to, from; others: the node */
	uint64_t gen;   /* the node's life (DISK, TICK) or the link's (DELIVER) it belongs to */
	int field;      /* DELIVER */
	uint8_t *buf;   /* DELIVER: packed bytes (owned) */
	size_t len;
	int client; /* CLIENT */
};

struct heap {
	struct ev *v;
	size_t n, cap;
};

static bool ev_less(const struct ev *a, const struct ev *b)
{
	return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static void heap_push(struct heap *h, struct ev e)
{
	if (h->n == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 256;
		h->v = realloc(h->v, h->cap * sizeof *h->v);
		if (h->v == NULL)
			abort();
	}
	size_t i = h->n++;
	h->v[i] = e;
	while (i > 0 && ev_less(&h->v[i], &h->v[(i - 1) / 2])) {
		struct ev t = h->v[i];
		h->v[i] = h->v[(i - 1) / 2];
		h->v[(i - 1) / 2] = t;
		i = (i - 1) / 2;
	}
}

static struct ev heap_pop(struct heap *h)
{
	struct ev top = h->v[0];
	h->v[0] = h->v[--h->n];
	size_t i = 0;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < h->n && ev_less(&h->v[l], &h->v[m]))
			m = l;
		if (r < h->n && ev_less(&h->v[r], &h->v[m]))
			m = r;
		if (m == i)
			break;
		struct ev t = h->v[i];
		h->v[i] = h->v[m];
		h->v[m] = t;
		i = m;
	}
	return top;
}

/* ------------------------------------------------------------------------------ the world */

struct world;

struct simnode {
	struct world *w;
	int id; /* 1..N */
	bool alive, paused;
	uint64_t gen; /* +1 at every crash: stale DISK and TICK events are dropped */
	struct node *n;
	struct wal *wal;
	struct kv *kv;
	struct node_config cfg;
	char dir[256];
	uint64_t incarnation;
	uint32_t rate_pm;       /* its clock runs at rate_pm/1000 of real time */
	uint64_t clock_base_ms; /* its clock at virtual time 0 */
	/* lease runs: the engine's clock (node_advance_clock) counts the ticks due since
	 * clock_first (this life's first tick), period apart, as kvd's shell counts those due
	 * by its monotonic clock; clock_given so far */
	uint64_t clock_first, clock_given, period;
	bool writing;           /* a WAL batch is with the simulated disk */
	bool clean_at_crash;    /* crashed: no hosted group's durable state said recovering */
	/* The membership plan (members seeds): not yet added (not started), dead for good
	 * (crashed and never restarted), removed from the cluster (stopped, or to stop when it
	 * learns it), and whether it was a running member when the faults ended. */
	bool outside, dead, removed, left, member_at_heal;
	struct wal_batch *batch;
	struct kv_ckpt *ckpt; /* a checkpoint whose sync is "on the disk" (io_checkpoint) */
	bool compact;
	/* WAL batches handed out and made durable in this life (adds runs: an action is durable
	 * once a batch handed out after it is) */
	uint64_t batches_out, batches_done;
};

struct client {
	bool busy;
	int node;     /* where the operation in flight went */
	uint64_t gen; /* that node's life then: a crash answers it "info" */
	int fn;       /* JL_READ / JL_WRITE / JL_CAS */
	int key;
	int64_t a, b; /* write: value (JL_NIL = delete); cas: expected, new */
	uint64_t seq;
	int proc;           /* its process id in the history: a new one after an info */
	bool ok_after_heal; /* liveness: an ok write completed after the heal */
	bool write_after_heal;
	uint8_t *rq_buf; /* the operation's request, packed (sent again to a hinted node) */
	size_t rq_len;
	int hints;         /* NOT_LEADER hints followed for this operation */
	int retry_to;      /* the node to try next (a hint being followed), or 0 */
	int probe;         /* a liveness probe: its node (0: an ordinary client) */
	uint64_t probe_ok; /* when the probe's write was answered ok (0: not yet) */
};

struct reply_ctx {
	struct world *w;
	int c;
};

struct world {
	const struct ns_opts *o;
	struct raft_rand rng;
	struct heap q;
	uint64_t now, seq, events;
	uint64_t trace_hash; /* of every event handled (replay compares it) */
	int N, G, C, K;
	int CT; /* clients and probes: clients[0, C) are clients, [C, CT) the probes */
	struct simnode nodes[NS_NODES_MAX + 1];
	bool cut[NS_NODES_MAX + 1][NS_NODES_MAX + 1];    /* a partition: cut[a][b] == cut[b][a] */
	bool linked[NS_NODES_MAX + 1][NS_NODES_MAX + 1]; /* link up as both ends know it */
	uint64_t link_gen[NS_NODES_MAX + 1][NS_NODES_MAX + 1];
	uint64_t link_last[NS_NODES_MAX + 1][NS_NODES_MAX + 1]; /* FIFO: last delivery time */
	uint32_t delay_max;
	uint32_t disk_max;
	const char *mix;
	uint32_t apply_cap; /* node_config.apply_entries_max of every node */
	uint32_t apply_commit_ms; /* node_config.apply_commit_ms of every node */
	uint64_t snapshot_bytes;  /* node_config.snapshot_bytes of every node */
	bool quiesce;       /* node_config.quiesce of every node */
	bool lease;         /* node_config.lease_reads of every node */
	/* Replica moves (5 nodes, one seed in two): one move at a time, a step per request. */
	struct {
		bool on, busy;
		int node;       /* busy: the node the step was sent to */
		uint32_t group; /* the move under way (0: none) */
		int from, to;
		int steps; /* of the move under way */
		uint64_t started; /* when its first step was asked */
		uint64_t seq;
		struct world *w;
	} mover;
	/* Membership changes (members seeds: 5 nodes, 3 of them bootstrap members): a plan of
	 * steps run one after the other, each retried until it is done (plan_step). */
	struct {
		bool on, busy;
		int node; /* busy: the node the request went to */
		uint64_t seq;
		struct plan_act {
			enum { P_ADD, P_MOVE, P_LEAVE, P_EARLY, P_EMPTY, P_REMOVE, P_KILL } kind;
			int node;       /* ADD, REMOVE, KILL: the member; MOVE: the source */
			uint32_t group; /* MOVE */
			int cand[NS_NODES_MAX], n_cand, ci; /* MOVE: targets to try in turn */
		} acts[4 * (NS_GROUPS_MAX + 1) + 8];
		int n, i;
		int boot;  /* the bootstrap members: 1..boot */
		int start; /* a node just added, started at the plan's next event (not from
			    * inside the engine's turn that answered the add) */
		uint64_t done_at; /* when the last step was done */
		bool balance;     /* the nodes run the balancer (--auto-balance): it moves the
				   * replicas; the plan only adds, marks leaving and removes */
		bool settled;     /* after the plan: every group has 3 voters and no learner */
	} plan;
	/* Groups created at runtime (adds runs, one seed in three without the membership plan;
	 * node/groups.c). The ring holds 1..G and A = G + 2 from the start, so A's keys are
	 * refused (UNAVAILABLE) until A exists: action 0 creates A on every node, action 1
	 * creates B = G + 3 (not in the ring), action 2 retires B. Each action is what the meta
	 * group's ring record will drive: applied to every running node at once, to a node that
	 * is down or paused when it comes back, and again to one whose crash lost it before it
	 * was durable. A restart must find every durable creation and no durable removal. */
	struct {
		bool on;
		uint32_t id[NS_ADDED];
		uint32_t ring[NS_GROUPS_MAX + 1];
		size_t n_ring;
		bool asked[3];      /* the action was decided */
		bool ok_after_heal; /* a write to A's key was answered ok after the heal */
		struct ns_act {
			bool done;    /* applied to the node */
			bool skip;    /* retired before it reached the node */
			bool durable; /* known durable (set at a crash that did not lose it) */
			bool redo;    /* a crash or a wipe lost it once */
			/* applied in an earlier life whose crash lost its WAL batch: LMDB may hold
			 * it anyway (a retirement writes LMDB at once, and the simulator closes
			 * LMDB cleanly at a crash), so it may or may not have happened */
			bool tried;
			uint64_t after; /* in this life: durable once batches_done > after */
		} act[NS_NODES_MAX + 1][3];
	} adds;
	/* A ring change (ring runs, node/reshard.c, node/groups.c, node/reshard_drive.c): two
	 * requests kvctl would send, each retried until the cluster says it is done. RESHARD_ADD
	 * during the faults (the meta leader writes the ring record with the new group's
	 * replicas; each node creates group X = G + 2 when it learns the record, from its meta
	 * replica or the meta leader's push; the meta leader's driver moves X's keys to it,
	 * register key 0 among them); after the heal, once every running node knows the change
	 * ended (complete, with X; or rolled back, without it), RESHARD_REMOVE X when it
	 * completed, which moves X's keys back; then every running node must know that change
	 * complete and have retired X. Each wait is bounded by RING_WAIT_MS after the heal. */
	struct {
		bool on;
		/* 0 add, 1 wait for X everywhere, 2 remove, 3 wait for X nowhere, 4 done */
		int step;
		uint32_t id;
		uint64_t seq;
		bool busy;
		int node;       /* the node asked */
		uint64_t since; /* when the step began */
	} ring;
	char keyname[NS_KEYS_MAX][24]; /* what register key k is called on the wire */
	bool crashes, partitions, pauses, drift, wipes;
	uint64_t strike_last; /* the last EV_STRIKE */
	uint64_t fault_end, heal_end, end;
	bool healed;
	struct client clients[NS_CLIENTS_MAX];
	struct reply_ctx rctx[NS_CLIENTS_MAX];
	int64_t next_value;
	/* The counter key "ctr", incremented by INCRBY 1: applying an entry twice, or losing one,
	 * shows in the values the increments return (counter_done). */
	uint64_t ctr_ok, ctr_info, ctr_max;
	uint8_t *ctr_seen; /* [value]: some acknowledged increment returned it */
	size_t ctr_seen_cap;
	int64_t known[NS_KEYS_MAX]; /* the value last read or written ok (JL_NIL: none) */
	char *hist;
	size_t hist_len, hist_cap;
	uint64_t hist_t; /* the last line's time */
	char root[200];
	struct ns_result *r;
};

/* uniform in [lo, hi], both included */
static uint32_t rnd(struct world *w, uint32_t lo, uint32_t hi)
{
	return raft_rand_range(&w->rng, lo, hi + 1);
}

/* Switches the log lines' node id to the node about to run (one process, many nodes). */
static void enter(struct simnode *s)
{
	node_log_init(s->cfg.id, s->cfg.log_level);
}

/* Lease runs: before node s handles anything, its engine's clock is advanced to the ticks due
 * by now (rounded down: never ahead), as kvd's shell does (node_shell_catch_up_ticks); its
 * timers get one tick per EV_TICK however late. Without leases node_tick moves both. */
static void clock_catch_up(struct simnode *s)
{
	struct world *w = s->w;
	if (!w->lease || !s->alive || w->now < s->clock_first)
		return;
	uint64_t due = (w->now - s->clock_first) / s->period + 1;
	if (due > s->clock_given) {
		node_advance_clock(s->n, due - s->clock_given);
		s->clock_given = due;
	}
}

/* A request handed to node s's engine (the clock first: a read may be answered from a lease). */
static void submit(struct simnode *s, Ringraft__Kv__Request *rq, node_reply_fn reply, void *ctx)
{
	enter(s);
	clock_catch_up(s);
	node_submit(s->n, rq, reply, ctx);
}

static void trace(struct world *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void trace(struct world *w, const char *fmt, ...)
{
	if (!w->o->trace)
		return;
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "[%8" PRIu64 "] ", w->now);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void fail(struct world *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct world *w, const char *fmt, ...)
{
	if (!w->r->ok)
		return; /* the first failure is the one reported */
	w->r->ok = false;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->r->why, sizeof w->r->why, fmt, ap);
	va_end(ap);
}

static void push(struct world *w, struct ev e)
{
	e.seq = ++w->seq;
	heap_push(&w->q, e);
}

/* ------------------------------------------------------------------------------ history */

static void hist_add(struct world *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void hist_add(struct world *w, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int k = vsnprintf(w->hist + w->hist_len, w->hist_cap - w->hist_len, fmt, ap);
		va_end(ap);
		if (k >= 0 && (size_t)k < w->hist_cap - w->hist_len) {
			w->hist_len += (size_t)k;
			return;
		}
		w->hist_cap = w->hist_cap ? w->hist_cap * 2 : 1 << 16;
		w->hist = realloc(w->hist, w->hist_cap);
		if (w->hist == NULL)
			abort();
	}
}

static void hist_op(struct world *w, int c, const char *type, bool with_result, int64_t result)
{
	struct client *cl = &w->clients[c];
	static const char *fns[] = {"read", "write", "cas"};
	if (cl->fn == JL_ADD) {
		/* the counter is checked on its own (counter_done), not by the register model */
		if (strcmp(type, "info") == 0)
			w->ctr_info++;
		return;
	}
	uint64_t t = w->now * 1000000u; /* ns, strictly increasing */
	if (t <= w->hist_t)
		t = w->hist_t + 1;
	w->hist_t = t;
	hist_add(w,
		 "{\"time\": %" PRIu64 ", \"process\": %d, \"type\": \"%s\", \"f\": \"%s\", "
		 "\"key\": \"k%d\", \"value\": ",
		 t, cl->proc, type, fns[cl->fn], cl->key);
	if (cl->fn == JL_CAS)
		hist_add(w, "[%" PRId64 ", %" PRId64 "]}\n", cl->a, cl->b);
	else if (cl->fn == JL_WRITE && cl->a != JL_NIL)
		hist_add(w, "%" PRId64 "}\n", cl->a);
	else if (cl->fn == JL_READ && with_result && result != JL_NIL)
		hist_add(w, "%" PRId64 "}\n", result);
	else
		hist_add(w, "null}\n");
}

/* ------------------------------------------------------------------------------ node_io */

static uint64_t local_ms(struct simnode *s)
{
	return s->clock_base_ms + s->w->now * s->rate_pm / 1000u;
}

static uint64_t io_now_ms(void *arg)
{
	return local_ms(arg);
}

static uint64_t io_wall_ms(void *arg)
{
	return 1790000000000ull + local_ms(arg); /* an epoch time in late 2026 */
}

static uint64_t io_now_ns(void *arg)
{
	return local_ms(arg) * 1000000u;
}

static bool link_up(struct world *w, int a, int b)
{
	return w->linked[a][b];
}

static int send_bytes(struct simnode *s, uint64_t to, int field, uint8_t *buf, size_t len)
{
	struct world *w = s->w;
	if (to < 1 || to > (uint64_t)w->N || (int)to == s->id || !link_up(w, s->id, (int)to)) {
		free(buf);
		return -1;
	}
	uint64_t t = w->now + rnd(w, 1, w->delay_max);
	if (t < w->link_last[s->id][to])
		t = w->link_last[s->id][to]; /* one TCP stream per link: in order */
	w->link_last[s->id][to] = t;
	push(w, (struct ev){.t = t,
			    .type = EV_DELIVER,
			    .node = (int)to,
			    .peer = s->id,
			    .gen = w->link_gen[s->id][to],
			    .field = field,
			    .buf = buf,
			    .len = len});
	return 0;
}

static int io_peer_send(void *arg, uint64_t to, int field, const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(len ? len : 1);
	if (buf == NULL)
		abort();
	protobuf_c_message_pack(m, buf);
	return send_bytes(arg, to, field, buf, len);
}

static int io_peer_send_packed(void *arg, uint64_t to, int field, const uint8_t *p, size_t len)
{
	uint8_t *buf = malloc(len ? len : 1);
	if (buf == NULL)
		abort();
	memcpy(buf, p, len);
	return send_bytes(arg, to, field, buf, len);
}

static bool io_peer_up(void *arg, uint64_t id)
{
	struct simnode *s = arg;
	return id >= 1 && id <= (uint64_t)s->w->N && link_up(s->w, s->id, (int)id);
}

static void io_wal_write(void *arg, struct wal_batch *b, bool compact)
{
	struct simnode *s = arg;
	struct world *w = s->w;
	if (s->writing)
		fail(w, "node %d: a second WAL batch handed out while one is in flight", s->id);
	s->writing = true;
	s->batch = b;
	s->compact = compact;
	s->batches_out++;
	uint32_t ms = rnd(w, 0, w->disk_max);
	if (w->crashes && rnd(w, 0, 7) == 0)
		ms = rnd(w, 30, 120); /* a slow fsync: a longer window for a crash to lose */
	push(w, (struct ev){.t = w->now + ms, .type = EV_DISK, .node = s->id, .gen = s->gen});
}

/* kvd syncs a checkpoint on its thread pool while the loop goes on: here the sync lands
 * a random while later, with the node taking requests and peer messages meanwhile. */
static void io_checkpoint(void *arg, struct kv_ckpt *c)
{
	struct simnode *s = arg;
	struct world *w = s->w;
	if (s->ckpt != NULL)
		fail(w, "node %d: a second checkpoint begun while one is in flight", s->id);
	s->ckpt = c;
	push(w, (struct ev){.t = w->now + rnd(w, 0, 4 * w->disk_max + 20),
			    .type = EV_CKPT,
			    .node = s->id,
			    .gen = s->gen});
}

static void io_flush(void *arg)
{
	(void)arg;
}

/* ------------------------------------------------------------------------------ nodes */

static void rm_tree(const char *path);

static void node_config_for(struct world *w, struct simnode *s, uint32_t election_ms,
			    uint32_t snapshot_entries, bool balance, uint32_t scrub)
{
	struct node_config *c = &s->cfg;
	memset(c, 0, sizeof *c);
	c->id = (uint64_t)s->id;
	snprintf(c->data_dir, sizeof c->data_dir, "%s", s->dir);
	snprintf(c->peer_addr, sizeof c->peer_addr, "10.0.0.%d:7000", s->id);
	snprintf(c->client_addr, sizeof c->client_addr, "10.0.0.%d:9000", s->id);
	int boot = w->plan.on ? w->plan.boot : w->N; /* the others join (kvd --join) */
	for (int i = 1; i <= boot; i++) {
		c->members[i - 1].id = (uint64_t)i;
		snprintf(c->members[i - 1].peer_addr, sizeof c->members[i - 1].peer_addr,
			 "10.0.0.%d:7000", i);
	}
	c->n_members = (size_t)boot;
	c->n_boot = c->n_members;
	c->join = s->id > boot;
	c->groups = (uint32_t)w->G;
	c->cluster_id = 0x5eed;
	c->tick_ms = 10;
	c->election_ms = election_ms;
	c->heartbeat_ms = election_ms / 6;
	c->snapshot_entries = snapshot_entries;
	c->snapshot_bytes = w->snapshot_bytes;
	c->checkpoint_ms = 250; /* rollback points between compactions too, as kvd makes them */
	c->value_max = 1 << 16;
	c->scrub_rate = scrub;
	c->request_timeout_ms = 2000;
	c->log_level = w->o->trace ? NODE_LOG_DEBUG : NODE_LOG_ERROR;
	c->balance_leaders = balance;
	c->auto_balance = w->plan.on && w->plan.balance;
	c->apply_entries_max = w->apply_cap;
	c->apply_commit_ms = w->apply_commit_ms;
	c->quiesce = w->quiesce;
	c->lease_reads = w->lease;
	/* ring runs: a copy of a few keys and sessions spans many INGEST chunks (offsets, gaps
	 * and resends are exercised; a chunk holds one item or two) */
	c->reshard_chunk_bytes = w->ring.on ? 256 : 0;
}

static void links_changed(struct world *w);

/* The engine's cluster map changed (node/members.c); a node removed from the cluster stops,
 * as kvd does. */
static void io_members_changed(void *arg, bool self_removed)
{
	struct simnode *s = arg;
	if (self_removed && !s->removed) {
		s->removed = true;
		push(s->w, (struct ev){.t = s->w->now + 1, .type = EV_STOP, .node = s->id,
				       .gen = s->gen});
	}
}

static void adds_restarted(struct world *w, struct simnode *s);
static void adds_apply(struct world *w, struct simnode *s);
static void ring_next(struct world *w, uint32_t lo, uint32_t hi);

static void node_start(struct world *w, struct simnode *s)
{
	char sub[300];
	snprintf(sub, sizeof sub, "%s/wal", s->dir);
	mkdir(s->dir, 0755);
	mkdir(sub, 0755);
	struct wal_options wo;
	wal_options_default(&wo);
	wo.segment_bytes = 1 << 20;
	wo.cache_bytes = 1 << 20;
	wo.no_sync = true;
	wo.no_direct_io = true;
	struct wal_corruption corr;
	int rc = wal_open(sub, &wo, true, &s->wal, &corr);
	if (rc != WAL_OK) {
		fail(w, "node %d: wal_open: %s", s->id, wal_strerror(rc));
		return;
	}
	snprintf(sub, sizeof sub, "%s/kv", s->dir);
	mkdir(sub, 0755);
	struct kv_options ko;
	kv_options_default(&ko);
	ko.writemap = false;
	ko.map_bytes = 2 << 20;
	ko.map_bytes_max = 256 << 20;
	ko.groups_max = node_group_id_max((uint32_t)w->G); /* + meta, + added groups */
	ko.value_max = s->cfg.value_max;
	rc = kv_open(sub, &ko, &s->kv);
	if (rc != KV_OK) {
		fail(w, "node %d: kv_open: %s", s->id, kv_strerror(rc));
		wal_close(s->wal);
		s->wal = NULL;
		return;
	}
	struct node_io io = {
		.arg = s,
		.seed = raft_rand_next(&w->rng),
		.now_ms = io_now_ms,
		.now_ns = io_now_ns,
		.wall_ms = io_wall_ms,
		.peer_send = io_peer_send,
		.peer_send_packed = io_peer_send_packed,
		.peer_up = io_peer_up,
		.wal_write = io_wal_write,
		.checkpoint = io_checkpoint,
		.flush = io_flush,
		.members_changed = io_members_changed,
	};
	enter(s);
	s->batches_out = s->batches_done = 0;
	rc = node_engine_open(&s->cfg, &io, s->wal, s->kv, s->incarnation, &s->n);
	if (rc != NODE_OK) {
		fail(w, "node %d: node_engine_open: %s", s->id, node_strerror(rc));
		kv_close(s->kv);
		wal_close(s->wal);
		s->kv = NULL;
		s->wal = NULL;
		return;
	}
	s->alive = true;
	s->writing = false;
	if (w->adds.on) {
		/* the run's ring, as the meta group's record would give it at every start */
		if (node_ring_set(s->n, w->adds.ring, w->adds.n_ring, NODE_RING_EPOCH + 1) !=
		    NODE_OK)
			fail(w, "node %d: node_ring_set refused the run's ring", s->id);
		adds_restarted(w, s);
		adds_apply(w, s);
	}
	uint64_t period = 10u * 1000u / s->rate_pm; /* tick_ms of its own clock */
	uint64_t first = w->now + rnd(w, 1, (uint32_t)period);
	push(w, (struct ev){.t = first, .type = EV_TICK, .node = s->id, .gen = s->gen});
	s->clock_first = first;
	s->clock_given = 0;
	s->period = period;
	trace(w, "node %d started", s->id);
	links_changed(w);
}

/* Does node s host group g? (As node/restore.c places groups: every node when there are at
 * most NODE_REPLICAS, else kv_ring_place.) */
static bool hosts(struct world *w, int id, uint32_t g)
{
	uint64_t ids[NS_NODES_MAX], out[NODE_REPLICAS];
	for (int i = 0; i < w->N; i++)
		ids[i] = (uint64_t)i + 1;
	if (w->N <= NODE_REPLICAS)
		return true;
	size_t k = kv_ring_place(g, ids, (size_t)w->N, NODE_REPLICAS, out);
	for (size_t i = 0; i < k; i++)
		if (out[i] == (uint64_t)id)
			return true;
	return false;
}

/* Has every group the running node s hosts a durable hard state that is not recovering? */
static bool durably_recovered(struct world *w, struct simnode *s)
{
	/* ring runs need the meta group live (it decides the change), so the rule covers it
	 * too there; elsewhere it is left out, as it always was (nothing else checks it) */
	uint32_t last = (uint32_t)w->G + (w->ring.on ? 1u : 0u);
	for (uint32_t g = 1; g <= last; g++) {
		struct wal_group_state st;
		bool has = wal_group_state_copy(s->wal, g, &st) == WAL_OK;
		if (!has && !hosts(w, s->id, g))
			continue; /* never had a replica */
		struct kv_group_meta km;
		if (kv_meta(s->kv, g, &km) == KV_OK && km.has_conf && km.applied_index == 0)
			continue; /* retired (node/move.c): not a replica any more */
		if (!has || st.corrupt || !st.has_hard_state || st.hard_state.recovering)
			return false;
	}
	if (w->adds.on && w->adds.asked[0]) {
		/* the added group that holds keys, once created: as the groups above */
		uint32_t g = w->adds.id[0];
		struct wal_group_state st;
		bool has = wal_group_state_copy(s->wal, g, &st) == WAL_OK;
		struct kv_group_meta km;
		if (!has && !hosts(w, s->id, g))
			return true;
		if (kv_meta(s->kv, g, &km) == KV_OK && km.has_conf && km.applied_index == 0)
			return true;
		if (!has || st.corrupt || !st.has_hard_state || st.hard_state.recovering)
			return false;
	}
	if (w->ring.on) {
		/* the group the ring change adds, once this node made its replica: it holds keys
		 * once the driver moved them, so a wipe must not take two of its replicas */
		uint32_t g = w->ring.id;
		struct wal_group_state st;
		struct kv_group_meta km;
		if (wal_group_state_copy(s->wal, g, &st) != WAL_OK)
			return true;
		if (kv_meta(s->kv, g, &km) == KV_OK && km.has_conf && km.applied_index == 0)
			return true;
		if (st.corrupt || !st.has_hard_state || st.hard_state.recovering)
			return false;
	}
	return true;
}

/* The rule that keeps a wipe from losing acknowledged data by definition (tests/sim/README.md,
 * "Wiped replicas and the recovery rule"): at most one node has lost state and not durably
 * left recovery. Every group has 3 voters here (NODE_REPLICAS), never fewer (4 for a moment
 * while a replica moves). */
static bool may_wipe(struct world *w, int victim)
{
	/* A move whose source was down goes through 2 voters (node/move.c): a wipe then would
	 * leave the group without a quorum of replicas that can vote, for good. The rule keeps
	 * every group with a quorum of good voters; with 2 voters that is both. */
	if (w->mover.group != 0 && w->mover.steps > 0)
		return false;
	for (int i = 1; i <= w->N; i++) {
		struct simnode *u = &w->nodes[i];
		if (i == victim)
			continue;
		if (u->alive ? !durably_recovered(w, u) : !u->clean_at_crash)
			return false;
	}
	return true;
}

static void node_crash(struct world *w, struct simnode *s)
{
	if (!s->alive)
		return;
	trace(w, "node %d crashes%s", s->id, s->writing ? " (a WAL batch is lost)" : "");
	w->r->count[NS_C_CRASH]++;
	if (s->writing)
		w->r->count[NS_C_WAL_LOST]++;
	s->alive = false;
	s->paused = false;
	s->gen++;
	for (int k = 0; w->adds.on && k < 3; k++) {
		/* an action whose WAL batch was not yet durable is lost with the crash: it is
		 * applied again at the restart (the ring record would be) */
		struct ns_act *a = &w->adds.act[s->id][k];
		if (a->done && !a->durable && s->batches_done <= a->after)
			*a = (struct ns_act){.redo = true, .tried = !a->skip};
		else if (a->done)
			a->durable = true;
	}
	links_changed(w); /* its peers see the link go down */
	s->clean_at_crash = durably_recovered(w, s);
	s->ckpt = NULL; /* node_engine_close aborts it */
	node_engine_close(s->n);
	kv_apply_abandon(s->kv); /* the applies LMDB had not committed die with the process */
	kv_close(s->kv);
	wal_close(s->wal);
	s->n = NULL;
	s->kv = NULL;
	s->wal = NULL;
	s->writing = false;
	if (w->plan.busy && w->plan.node == s->id) {
		w->plan.busy = false; /* asked again: adds and removes are in a session */
		push(w, (struct ev){.t = w->now + rnd(w, 20, 150), .type = EV_MOVE});
	}
	if (w->mover.busy && w->mover.node == s->id) {
		w->mover.busy = false; /* the step's outcome is unknown: the next one tells */
		push(w, (struct ev){.t = w->now + rnd(w, 20, 150), .type = EV_MOVER});
	}
	if (w->ring.busy && w->ring.node == s->id) {
		w->ring.busy = false; /* asked again: a retry tells whether it applied */
		ring_next(w, 20, 150);
	}
	/* a client waiting on it learns nothing: its operation stays open (info) */
	for (int c = 0; c < w->CT; c++) {
		struct client *cl = &w->clients[c];
		if (cl->busy && cl->node == s->id) {
			hist_op(w, c, "info", false, 0);
			w->r->count[NS_C_INFO]++;
			cl->proc +=
				NS_CLIENTS_MAX; /* an open operation: the next is another process */
			cl->busy = false;
			cl->retry_to = 0;
			push(w, (struct ev){.t = w->now + rnd(w, 1, 20),
					    .type = EV_CLIENT,
					    .client = c});
		}
	}
}

/* A link is up when both ends are alive and no partition cuts it. Every change is told to
 * the live ends (node_peer_up / node_peer_down), as the transport's Hello and close would. */
static void links_changed(struct world *w)
{
	for (int a = 1; a <= w->N; a++)
		for (int b = a + 1; b <= w->N; b++) {
			struct simnode *x = &w->nodes[a], *y = &w->nodes[b];
			bool up = x->alive && y->alive && !w->cut[a][b];
			if (up == w->linked[a][b])
				continue;
			w->linked[a][b] = w->linked[b][a] = up;
			w->link_gen[a][b]++;
			w->link_gen[b][a]++; /* whatever was in flight on the old link is gone */
			trace(w, "link %d-%d %s", a, b, up ? "up" : "down");
			char addr[64];
			if (up) {
				snprintf(addr, sizeof addr, "10.0.0.%d:9000", b);
				enter(x);
				node_peer_up(x->n, (uint64_t)b, addr, y->incarnation);
				snprintf(addr, sizeof addr, "10.0.0.%d:9000", a);
				enter(y);
				node_peer_up(y->n, (uint64_t)a, addr, x->incarnation);
			} else {
				if (x->alive) {
					enter(x);
					node_peer_down(x->n, (uint64_t)b);
				}
				if (y->alive) {
					enter(y);
					node_peer_down(y->n, (uint64_t)a);
				}
			}
			if (x->alive && !x->paused) {
				enter(x);
				node_process(x->n);
			}
			if (y->alive && !y->paused) {
				enter(y);
				node_process(y->n);
			}
		}
}

/* ------------------------------------------------------------------------------ clients */

static void client_reply(void *arg, const Ringraft__Kv__Response *resp);

static int64_t parse_value(const ProtobufCBinaryData *v, bool *ok)
{
	char buf[32];
	*ok = v->len > 0 && v->len < sizeof buf;
	if (!*ok)
		return 0;
	memcpy(buf, v->data, v->len);
	buf[v->len] = '\0';
	char *end;
	long long x = strtoll(buf, &end, 10);
	*ok = *end == '\0';
	return x;
}

/* Submits the client's operation to node s (an attempt: the first, or a hint followed). */
static void client_send(struct world *w, int c, struct simnode *s)
{
	struct client *cl = &w->clients[c];
	cl->node = s->id;
	cl->gen = s->gen;
	struct reply_ctx *ctx = &w->rctx[c];
	*ctx = (struct reply_ctx){w, c};
	trace(w, "client %d -> node %d", c, s->id);
	/* the engine frees the request with free_unpacked: it must be allocated as one */
	Ringraft__Kv__Request *own = ringraft__kv__request__unpack(NULL, cl->rq_len, cl->rq_buf);
	if (own == NULL)
		abort();
	submit(s, own, client_reply, ctx);
	node_process(s->n);
}

/* The hinted node's attempt (EV_CLIENT with retry_to set): as cli/client.c does, a NOT_LEADER
 * hint is followed at once with the same request (same client_id and seq). A hinted node that
 * is down or paused now ends the operation as the NOT_LEADER did: it did not happen. */
static void client_follow(struct world *w, int c)
{
	struct client *cl = &w->clients[c];
	struct simnode *s = &w->nodes[cl->retry_to];
	cl->retry_to = 0;
	if (s->alive && !s->paused) {
		client_send(w, c, s);
		return;
	}
	hist_op(w, c, "fail", true, JL_NIL);
	w->r->ops++;
	w->r->count[NS_C_FAIL]++;
	cl->busy = false;
	push(w, (struct ev){.t = w->now + (cl->probe != 0 ? PROBE_RETRY_MS : rnd(w, 1, 15)),
			    .type = EV_CLIENT,
			    .client = c});
}

static void client_issue(struct world *w, int c)
{
	struct client *cl = &w->clients[c];
	if (w->now >= w->end)
		return;
	/* any running node (one that is paused would not read the request yet) */
	int live[NS_NODES_MAX], nl = 0;
	for (int i = 1; i <= w->N; i++)
		if (w->nodes[i].alive && !w->nodes[i].paused)
			live[nl++] = i;
	if (cl->probe != 0) {
		/* after the heal every member runs: the probe writes through its own (one removed
		 * since has stopped: its probe ends) */
		if (!w->nodes[cl->probe].alive)
			return;
		live[0] = cl->probe;
		nl = 1;
	}
	if (nl == 0) {
		push(w, (struct ev){.t = w->now + 50, .type = EV_CLIENT, .client = c});
		return;
	}
	struct simnode *s = &w->nodes[live[rnd(w, 0, (uint32_t)nl - 1)]];
	uint32_t p = cl->probe != 0 ? 50 /* a put */ : rnd(w, 0, 99);
	cl->key = (int)rnd(w, 0, (uint32_t)w->K - 1);
	cl->fn = p < 40 ? JL_READ : p < 78 ? JL_WRITE : p < 90 ? JL_CAS : JL_ADD;
	cl->a = cl->b = 0;
	char val[32], exp[32];
	Ringraft__Kv__Request *rq = malloc(sizeof *rq);
	if (rq == NULL)
		abort();
	ringraft__kv__request__init(rq);
	char key[24];
	if (cl->fn == JL_ADD)
		snprintf(key, sizeof key, "ctr");
	else
		snprintf(key, sizeof key, "%s", w->keyname[cl->key]);
	rq->key.data = (uint8_t *)strdup(key);
	rq->key.len = strlen(key);
	rq->id = ++cl->seq;
	rq->client_id = (uint64_t)c + 1;
	rq->seq = cl->seq;
	if (cl->fn == JL_ADD) {
		/* without a session, as a Redis client's INCR: nothing but the apply path's own
		 * bookkeeping keeps a replayed entry from counting twice */
		rq->op = RINGRAFT__KV__OP__INCRBY;
		rq->delta = 1;
		rq->client_id = 0;
		rq->seq = 0;
	} else if (cl->fn == JL_READ) {
		rq->op = RINGRAFT__KV__OP__GET;
	} else if (cl->fn == JL_WRITE && cl->probe == 0 && rnd(w, 0, 9) == 0) {
		rq->op = RINGRAFT__KV__OP__DELETE;
		cl->a = JL_NIL;
	} else if (cl->fn == JL_WRITE) {
		rq->op = RINGRAFT__KV__OP__PUT;
		cl->a = ++w->next_value;
	} else {
		rq->op = RINGRAFT__KV__OP__CAS;
		/* mostly the value last seen, so that many succeed; else any value written */
		cl->a = w->known[cl->key] != JL_NIL && rnd(w, 0, 3) > 0
				? w->known[cl->key]
				: (int64_t)rnd(w, 1, (uint32_t)w->next_value + 1);
		cl->b = ++w->next_value;
		snprintf(exp, sizeof exp, "%" PRId64, cl->a);
		rq->expected.data = (uint8_t *)strdup(exp);
		rq->expected.len = strlen(exp);
	}
	if (rq->op == RINGRAFT__KV__OP__PUT || rq->op == RINGRAFT__KV__OP__CAS) {
		snprintf(val, sizeof val, "%" PRId64, cl->fn == JL_CAS ? cl->b : cl->a);
		rq->value.data = (uint8_t *)strdup(val);
		rq->value.len = strlen(val);
	}
	cl->busy = true;
	cl->hints = 0;
	cl->retry_to = 0;
	hist_op(w, c, "invoke", false, 0);
	trace(w, "client %d op %d key k%d", c, rq->op, cl->key);
	size_t len = ringraft__kv__request__get_packed_size(rq);
	free(cl->rq_buf);
	cl->rq_buf = malloc(len ? len : 1);
	if (cl->rq_buf == NULL)
		abort();
	cl->rq_len = len;
	ringraft__kv__request__pack(rq, cl->rq_buf);
	free(rq->key.data);
	free(rq->value.data);
	free(rq->expected.data);
	free(rq);
	client_send(w, c, s);
}

static void client_reply(void *arg, const Ringraft__Kv__Response *resp)
{
	struct reply_ctx *ctx = arg;
	struct world *w = ctx->w;
	struct client *cl = &w->clients[ctx->c];
	int c = ctx->c;
	if (!cl->busy) {
		fail(w, "client %d got an answer (request %" PRIu64 ") with nothing in flight", c,
		     (uint64_t)resp->id);
		return;
	}
	if (resp->id != cl->seq)
		fail(w, "client %d got the answer to request %" PRIu64 " for its request %" PRIu64,
		     c, (uint64_t)resp->id, cl->seq);
	if (resp->code == RINGRAFT__KV__CODE__NOT_LEADER && resp->leader_hint >= 1 &&
	    resp->leader_hint <= (uint64_t)w->N && (int)resp->leader_hint != cl->node &&
	    cl->hints < 3) {
		cl->hints++;
		cl->retry_to = (int)resp->leader_hint;
		trace(w, "client %d <- NOT_LEADER, hint: node %d", c, cl->retry_to);
		push(w, (struct ev){.t = w->now + 1, .type = EV_CLIENT, .client = c});
		return;
	}
	const char *type;
	int64_t result = JL_NIL;
	switch (resp->code) {
	case RINGRAFT__KV__CODE__OK:
		type = "ok";
		if (cl->fn == JL_ADD) {
			/* each acknowledged increment returns a new value, never more than the
			 * increments that may have happened */
			w->ctr_ok++;
			uint64_t v = (uint64_t)resp->number;
			if (v > w->ctr_ok + w->ctr_info + (uint64_t)w->C)
				fail(w,
				     "counter: an increment returned %" PRIu64
				     " but at most %" PRIu64
				     " increments were acknowledged or unknown (%" PRIu64
				     " in flight): one was applied twice",
				     v, w->ctr_ok + w->ctr_info, (uint64_t)w->C);
			if (v > w->ctr_max)
				w->ctr_max = v;
			if (v >= w->ctr_seen_cap) {
				size_t cap = (size_t)v * 2 + 64;
				w->ctr_seen = realloc(w->ctr_seen, cap);
				if (w->ctr_seen == NULL)
					abort();
				memset(w->ctr_seen + w->ctr_seen_cap, 0, cap - w->ctr_seen_cap);
				w->ctr_seen_cap = cap;
			}
			if (w->ctr_seen[v])
				fail(w,
				     "counter: two acknowledged increments both returned %" PRIu64
				     ": one was lost",
				     v);
			w->ctr_seen[v] = 1;
		} else if (cl->fn == JL_READ) {
			bool okv;
			result = resp->found ? parse_value(&resp->value, &okv) : JL_NIL;
			if (resp->found && !okv)
				fail(w, "client %d read a value that is not a number", c);
		}
		break;
	case RINGRAFT__KV__CODE__NOT_FOUND:
		/* a read of a missing key, or a delete of one: both happened */
		type = "ok";
		if (cl->fn == JL_CAS || (cl->fn == JL_WRITE && cl->a != JL_NIL))
			fail(w, "client %d: NOT_FOUND to a put or cas", c);
		break;
	case RINGRAFT__KV__CODE__CAS_MISMATCH:
		type = "fail";
		if (cl->fn != JL_CAS)
			fail(w, "client %d: CAS_MISMATCH to an operation that is not a cas", c);
		break;
	case RINGRAFT__KV__CODE__NOT_LEADER:
	case RINGRAFT__KV__CODE__UNAVAILABLE:
		type = "fail";
		break;
	case RINGRAFT__KV__CODE__WRONG_SHARD:
	case RINGRAFT__KV__CODE__MOVING:
		/* ring runs: the key's range is moving (frozen for its copy: MOVING; released at
		 * the source or not yet opened at the target, asked by a node whose record is
		 * behind or ahead: WRONG_SHARD); definite: nothing was written */
		if (w->ring.on) {
			type = "fail";
			w->r->count[NS_C_RING_REFUSED]++;
			break;
		}
		/* fall through */
	case RINGRAFT__KV__CODE__INVALID:
	case RINGRAFT__KV__CODE__TOO_LARGE:
		/* definite, but the clients send only well-formed requests without a ring
		 * epoch: such an answer is a bug (in the engine or here) */
		type = "fail";
		fail(w, "client %d: unexpected answer code %d (%s)", c, resp->code,
		     resp->error ? resp->error : "");
		break;
	default:
		type = "info";
		break;
	}
	hist_op(w, c, type, true, result);
	if (strcmp(type, "ok") == 0 && cl->fn != JL_READ && w->crashes && w->now < w->fault_end &&
	    w->now >= w->strike_last + STRIKE_GAP_MS && rnd(w, 0, STRIKE_ONE_IN - 1) == 0) {
		/* the moment a write acknowledged too early is most likely still in flight to
		 * the disks of the nodes that acknowledged it (after this event: the engine that
		 * answered is in its turn) */
		w->strike_last = w->now;
		push(w, (struct ev){.t = w->now,
				    .type = EV_STRIKE,
				    .node = (int)rnd(w, 1, (uint32_t)w->N)});
	}
	if (strcmp(type, "ok") == 0 && cl->fn != JL_ADD)
		w->known[cl->key] = cl->fn == JL_READ ? result : cl->fn == JL_CAS ? cl->b : cl->a;
	if (strcmp(type, "ok") == 0)
		w->r->count[cl->fn == JL_READ    ? NS_C_OK_READ
			    : cl->fn == JL_WRITE ? NS_C_OK_WRITE
			    : cl->fn == JL_CAS   ? NS_C_OK_CAS
						 : NS_C_OK_INCR]++;
	else
		w->r->count[strcmp(type, "fail") == 0 ? NS_C_FAIL : NS_C_INFO]++;
	if (strcmp(type, "info") == 0)
		cl->proc += NS_CLIENTS_MAX;
	w->r->ops++;
	if (strcmp(type, "ok") == 0) {
		w->r->ok_ops++;
		if (w->healed && cl->fn != JL_READ && cl->write_after_heal)
			cl->ok_after_heal = true;
		if (w->adds.on && cl->fn != JL_ADD && cl->key == 0) {
			/* register key 0 is in the added group A */
			w->r->count[NS_C_GROUP_OK]++;
			w->adds.ok_after_heal |= w->healed && cl->fn != JL_READ;
		}
	}
	trace(w, "client %d <- code %d (%s) %s", c, resp->code, type, resp->error ? resp->error : "");
	cl->busy = false;
	if (cl->probe != 0 && strcmp(type, "ok") == 0) {
		cl->probe_ok = w->now;
		return; /* its one write is done */
	}
	push(w, (struct ev){.t = w->now + (cl->probe != 0 ? PROBE_RETRY_MS : rnd(w, 1, 15)),
			    .type = EV_CLIENT,
			    .client = c});
}

/* ------------------------------------------------------------------------------ nemesis */

/* Crashes k running nodes from victim on (ids wrapping around); each restarts 50-1500 ms
 * later, and a crash may also lose the node's data directory (a wipe) when may_wipe allows. */
static void crash_nodes(struct world *w, int victim, int k)
{
	for (int j = 0; j < k; j++) {
		struct simnode *x = &w->nodes[(victim - 1 + j) % w->N + 1];
		if (!x->alive)
			continue;
		node_crash(w, x);
		if (w->wipes && rnd(w, 0, 3) == 0 && may_wipe(w, x->id)) {
			/* the crash took the data directory too: the node comes back empty, with
			 * a new incarnation, and recovers from its peers */
			rm_tree(x->dir);
			x->clean_at_crash = false;
			for (int k = 0; k < 3; k++) /* every group creation is gone with it */
				w->adds.act[x->id][k] = (struct ns_act){.redo = true};
			x->incarnation = raft_rand_next(&w->rng) | 1;
			w->r->count[NS_C_WIPE]++;
			trace(w, "nemesis: node %d's data directory is lost (wipe)", x->id);
		}
		push(w, (struct ev){
				.t = w->now + rnd(w, 50, 1500), .type = EV_RESTART, .node = x->id});
	}
}

/* ------------------------------------------------------------------------------ added groups */

static bool in_ring(const struct world *w, uint32_t g)
{
	for (size_t i = 0; i < w->adds.n_ring; i++)
		if (w->adds.ring[i] == g)
			return true;
	return false;
}

static bool act_durable(const struct simnode *s, const struct ns_act *a)
{
	return a->done && !a->skip && (a->durable || s->batches_done > a->after);
}

/* Just after a node's engine opened: every creation that was durable at its crash is there,
 * and no durable removal came back (node/groups.c keeps them in the WAL). */
static void adds_restarted(struct world *w, struct simnode *s)
{
	const struct ns_act *act = w->adds.act[s->id];
	bool checked = false;
	for (int k = 0; k < NS_ADDED; k++) {
		uint32_t g = w->adds.id[k];
		/* a retirement whose WAL batch was lost may still have happened (tried) */
		bool removed = k == 1 && (act_durable(s, &act[2]) || act[2].tried);
		if (act_durable(s, &act[k]) && !removed) {
			checked = true;
			if (!node_group_exists(s->n, g, NULL))
				fail(w,
				     "node %d lost group %u across a restart (its creation was "
				     "durable)",
				     s->id, g);
		}
	}
	if (act_durable(s, &act[2])) {
		checked = true;
		if (node_group_exists(s->n, w->adds.id[1], NULL))
			fail(w, "node %d: group %u came back at a restart after it was retired",
			     s->id, w->adds.id[1]);
	}
	if (checked)
		w->r->count[NS_C_GROUP_CHECK]++;
}

/* The actions decided so far that node s has not applied yet (running and not paused). */
static void adds_apply(struct world *w, struct simnode *s)
{
	if (!w->adds.on || !s->alive || s->paused || !w->r->ok)
		return;
	bool any = false;
	for (int k = 0; k < 3; k++) {
		struct ns_act *a = &w->adds.act[s->id][k];
		if (!w->adds.asked[k] || a->done)
			continue;
		bool redo = a->redo, tried = a->tried;
		*a = (struct ns_act){
			.done = true, .after = s->batches_out, .redo = redo, .tried = tried};
		enter(s);
		if (k == 1 && w->adds.asked[2]) {
			a->skip = true; /* retired before it reached this node */
			continue;
		}
		if (k == 2 && w->adds.act[s->id][1].skip) {
			a->skip = true;
			continue;
		}
		uint32_t g = w->adds.id[k == 2 ? 1 : k];
		int rc;
		if (k < 2) {
			uint64_t ids[NS_NODES_MAX], reps[NS_NODES_MAX];
			size_t nr = 0;
			for (int i = 1; i <= w->N; i++)
				ids[i - 1] = (uint64_t)i;
			if (w->N <= NODE_REPLICAS) {
				memcpy(reps, ids, sizeof(uint64_t) * (size_t)w->N);
				nr = (size_t)w->N;
			} else {
				nr = kv_ring_place(g, ids, (size_t)w->N, NODE_REPLICAS, reps);
			}
			bool existed = node_group_exists(s->n, g, NULL);
			rc = node_group_add(s->n, g, reps, nr);
			if (!existed && rc == NODE_OK) {
				w->r->count[NS_C_GROUP_ADD]++;
				w->r->count[NS_C_GROUP_READD] += redo;
			}
		} else {
			rc = node_group_remove(s->n, g);
			if (rc == NODE_EINVAL && tried && !node_group_exists(s->n, g, NULL))
				rc = NODE_OK; /* asked again: the lost batch's retirement held */
			w->r->count[NS_C_GROUP_REMOVE] += rc == NODE_OK;
		}
		trace(w, "node %d: group %u %s: %s", s->id, g, k < 2 ? "added" : "retired",
		      node_strerror(rc));
		if (rc != NODE_OK)
			fail(w, "node %d: %s group %u: %s", s->id,
			     k < 2 ? "node_group_add" : "node_group_remove", g, node_strerror(rc));
		any = true;
	}
	if (any)
		node_process(s->n);
}

/* EV_GROUPS: action k is decided; every running node applies it now. */
static void adds_action(struct world *w, int k)
{
	w->adds.asked[k] = true;
	trace(w, "groups: action %d (%s group %u)", k, k < 2 ? "create" : "retire",
	      w->adds.id[k == 2 ? 1 : k]);
	for (int i = 1; i <= w->N; i++)
		adds_apply(w, &w->nodes[i]);
}

/* ------------------------------------------------------------------------------ moves */

/* A copy of rq the engine may own: it frees requests with free_unpacked, so they must be
 * allocated as unpacked ones. */
static Ringraft__Kv__Request *owned_request(const Ringraft__Kv__Request *rq)
{
	uint8_t buf[256];
	size_t len = ringraft__kv__request__get_packed_size(rq);
	if (len > sizeof buf)
		abort();
	ringraft__kv__request__pack(rq, buf);
	Ringraft__Kv__Request *own = ringraft__kv__request__unpack(NULL, len, buf);
	if (own == NULL)
		abort();
	return own;
}

static void mover_reply(void *arg, const Ringraft__Kv__Response *resp)
{
	struct world *w = arg;
	if (!w->mover.busy) {
		fail(w, "the mover got an answer (request %" PRIu64 ") with nothing in flight",
		     (uint64_t)resp->id);
		return;
	}
	if (resp->id != w->mover.seq)
		fail(w, "the mover got the answer to request %" PRIu64 " for its request %" PRIu64,
		     (uint64_t)resp->id, w->mover.seq);
	w->mover.busy = false;
	trace(w, "mover <- %d %s%s", resp->code, resp->progress ? resp->progress : "",
	      resp->error ? resp->error : "");
	if (resp->code == RINGRAFT__KV__CODE__OK && resp->done) {
		if (w->mover.steps > 0)
			w->r->count[NS_C_MOVE_DONE]++; /* not one that was done before it began */
		w->mover.group = 0;
	} else if (resp->code == RINGRAFT__KV__CODE__OK) {
		w->r->count[NS_C_MOVE_STEP]++;
		w->mover.steps++;
	} else if (resp->code == RINGRAFT__KV__CODE__INVALID) {
		w->r->count[NS_C_MOVE_REFUSED]++;
		w->mover.group = 0; /* a move that makes no sense (source holds none): another */
	}
	push(w, (struct ev){.t = w->now + rnd(w, 20, 150), .type = EV_MOVER});
}

/* One step of the move under way, or a new move (random group, source and target: a source
 * that holds no replica is refused, which is checked too), through a random running node. */
static void mover_step(struct world *w)
{
	if (!w->mover.on || w->mover.busy)
		return;
	if (w->mover.group == 0) {
		if (w->now >= w->fault_end)
			return; /* no new move after the faults; the one under way finishes */
		w->mover.group = rnd(w, 1, (uint32_t)w->G);
		w->mover.steps = 0;
		w->mover.from = (int)rnd(w, 1, (uint32_t)w->N);
		w->mover.to = (int)rnd(w, 1, (uint32_t)w->N - 1);
		if (w->mover.to >= w->mover.from)
			w->mover.to++;
		trace(w, "mover: group %u from node %d to node %d", w->mover.group, w->mover.from,
		      w->mover.to);
	}
	/* (membership seeds) a move to or from a node not added yet, dead or removed: none; and,
	 * as kvctl's --timeout, a move that the balancer keeps undoing (its target leaving) is
	 * given up after 3 s */
	struct simnode *f = &w->nodes[w->mover.from], *t = &w->nodes[w->mover.to];
	if (w->mover.steps == 0)
		w->mover.started = w->now;
	if (f->outside || f->dead || f->left || t->outside || t->dead || t->left ||
	    (w->plan.on && w->now > w->mover.started + 3000)) {
		w->mover.group = 0;
		push(w, (struct ev){.t = w->now + rnd(w, 20, 150), .type = EV_MOVER});
		return;
	}
	struct simnode *s = &w->nodes[rnd(w, 1, (uint32_t)w->N)];
	if (!s->alive || s->paused) {
		push(w, (struct ev){.t = w->now + rnd(w, 20, 150), .type = EV_MOVER});
		return;
	}
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.id = ++w->mover.seq;
	rq.op = RINGRAFT__KV__OP__MOVE_REPLICA;
	rq.group = w->mover.group;
	rq.source = (uint64_t)w->mover.from;
	rq.target = (uint64_t)w->mover.to;
	rq.timeout_ms = 1000;
	Ringraft__Kv__Request *own = owned_request(&rq);
	w->mover.busy = true;
	w->mover.node = s->id;
	submit(s, own, mover_reply, w);
	node_process(s->n);
}

/* ------------------------------------------------------------------------------ ring */

static void ring_next(struct world *w, uint32_t lo, uint32_t hi)
{
	push(w, (struct ev){.t = w->now + rnd(w, lo, hi), .type = EV_RING});
}

static bool says(const Ringraft__Kv__Response *resp, const char *what);

static void ring_reply(void *arg, const Ringraft__Kv__Response *resp)
{
	struct world *w = arg;
	if (!w->ring.busy || resp->id != w->ring.seq) {
		fail(w, "the ring plan got an answer (request %" PRIu64 ") it did not wait for",
		     (uint64_t)resp->id);
		return;
	}
	w->ring.busy = false;
	bool ok = resp->code == RINGRAFT__KV__CODE__OK;
	bool invalid = resp->code == RINGRAFT__KV__CODE__INVALID;
	trace(w, "ring <- %d %s%s", resp->code, resp->progress ? resp->progress : "",
	      resp->error ? resp->error : "");
	/* an earlier try that was answered indeterminate (timeout, leader lost) may have
	 * applied: then the retry is refused with what it did */
	bool done_already = invalid && (says(resp, "under way") ||
					(w->ring.step != 0 && says(resp, "retired already")));
	if (ok || done_already) {
		w->r->count[NS_C_RING_CHANGE] += ok;
		w->ring.step++;
		w->ring.since = w->now;
	} else if (invalid && !says(resp, "changed meanwhile")) {
		fail(w, "ring: %s refused: %s", w->ring.step == 0 ? "groups add" : "groups remove",
		     resp->error ? resp->error : "");
	}
	ring_next(w, 10, 100);
}

static void ring_step(struct world *w)
{
	if (!w->ring.on || w->ring.busy || w->ring.step >= 4)
		return;
	if (w->ring.step == 1 || w->ring.step == 3) {
		if (!w->healed) {
			ring_next(w, 50, 150);
			return;
		}
		/* every running node must know the change ended, the same way: an add complete
		 * with X, or rolled back without it; the removal complete without X */
		int lag = 0, outcome = 0;
		uint64_t epoch = 0;
		for (int i = 1; i <= w->N && lag == 0; i++) {
			struct simnode *s = &w->nodes[i];
			if (!s->alive || s->paused)
				continue;
			uint64_t e;
			int o = node_ring_change_outcome(s->n, &e);
			if (o == KV_RESHARD_MOVING || o == 0 || (outcome != 0 && (o != outcome || e != epoch)))
				lag = i;
			outcome = o;
			epoch = e;
			bool want = w->ring.step == 1 && o == KV_RESHARD_COMPLETE;
			if (lag == 0 && node_group_exists(s->n, w->ring.id, NULL) != want)
				lag = i;
		}
		if (lag == 0 && outcome != 0) {
			bool has = w->ring.step == 1 && outcome == KV_RESHARD_COMPLETE;
			trace(w, "ring: every running node knows the change to epoch %" PRIu64
				 " %s and %s group %u",
			      epoch, outcome == KV_RESHARD_COMPLETE ? "complete" : "rolled back",
			      has ? "has" : "retired", w->ring.id);
			w->r->count[NS_C_RING_SEEN]++;
			w->r->count[NS_C_RING_DONE] += outcome == KV_RESHARD_COMPLETE;
			/* a rolled-back add leaves nothing to remove */
			w->ring.step = has ? w->ring.step + 1 : 4;
			w->ring.since = w->now;
			ring_next(w, 10, 100);
			return;
		}
		bool want = w->ring.step == 1;
		uint64_t from = w->ring.since > w->fault_end ? w->ring.since : w->fault_end;
		if (w->now > from + RING_WAIT_MS)
			fail(w, "ring: node %d does not know the change %s (group %u) %d ms after "
				"the heal",
			     lag, want ? "to add" : "to remove", w->ring.id, RING_WAIT_MS);
		else
			ring_next(w, 50, 150);
		return;
	}
	if (w->ring.step == 2 && !w->healed) {
		ring_next(w, 50, 150);
		return;
	}
	int live[NS_NODES_MAX], nl = 0;
	for (int i = 1; i <= w->N; i++)
		if (w->nodes[i].alive && !w->nodes[i].paused)
			live[nl++] = i;
	if (nl == 0) {
		ring_next(w, 20, 150);
		return;
	}
	struct simnode *s = &w->nodes[live[rnd(w, 0, (uint32_t)nl - 1)]];
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.id = ++w->ring.seq;
	rq.timeout_ms = 1000;
	rq.client_id = 2000; /* the plan's session */
	rq.seq = w->ring.seq;
	rq.op = w->ring.step == 0 ? RINGRAFT__KV__OP__RESHARD_ADD
				  : RINGRAFT__KV__OP__RESHARD_REMOVE;
	rq.count = 1;
	rq.group = w->ring.step == 0 ? 0 : w->ring.id;
	trace(w, "ring: %s through node %d", w->ring.step == 0 ? "groups add" : "groups remove",
	      s->id);
	Ringraft__Kv__Request *own = owned_request(&rq);
	w->ring.busy = true;
	w->ring.node = s->id;
	submit(s, own, ring_reply, w);
	node_process(s->n);
}

/* ------------------------------------------------------------------------------ members */

/* The membership plan (members seeds): bootstrap members 1..3; node 4 is added and given
 * some replicas; node 5 is added and replaces a bootstrap member V (dead for good in some
 * seeds: crashed, its directory lost when the recovery rule allows, never restarted), whose
 * replicas all move away before it is removed; then node 4 is drained and removed. Every step
 * is a request a client (kvctl) would send, retried until the cluster says it is done, under
 * the seed's faults. The audit then wants 3 voters in every group, all of them members. */
static void plan_build(struct world *w)
{
	int B = w->plan.boot;
	uint32_t all = (uint32_t)w->G + 1; /* the meta group moves like the others */
	struct plan_act *a = w->plan.acts;
	int n = 0;
	a[n++] = (struct plan_act){.kind = P_ADD, .node = 4};
	if (w->plan.balance) {
		/* the balancer moves replicas to the new members and off the leaving ones */
		a[n++] = (struct plan_act){.kind = P_ADD, .node = 5};
		int V = (int)rnd(w, 1, (uint32_t)B);
		if (w->crashes && rnd(w, 0, 1))
			a[n++] = (struct plan_act){.kind = P_KILL, .node = V};
		for (int k = 0; k < 2; k++) {
			int src = k == 0 ? V : 4;
			a[n++] = (struct plan_act){.kind = P_LEAVE, .node = src};
			/* an operator's mistake: removing it before its replicas moved */
			a[n++] = (struct plan_act){.kind = P_EARLY, .node = src};
			a[n++] = (struct plan_act){.kind = P_EMPTY, .node = src};
			a[n++] = (struct plan_act){.kind = P_REMOVE, .node = src};
		}
		w->plan.n = n;
		return;
	}
	for (uint32_t g = 1; g <= all; g++)
		if (rnd(w, 0, 1))
			a[n++] = (struct plan_act){.kind = P_MOVE, .node = (int)rnd(w, 1, (uint32_t)B),
						   .group = g, .cand = {4}, .n_cand = 1};
	a[n++] = (struct plan_act){.kind = P_ADD, .node = 5};
	int V = (int)rnd(w, 1, (uint32_t)B);
	if (w->crashes && rnd(w, 0, 1))
		a[n++] = (struct plan_act){.kind = P_KILL, .node = V};
	for (int drain = 0; drain < 2; drain++) {
		int src = drain == 0 ? V : 4;
		a[n++] = (struct plan_act){.kind = P_LEAVE, .node = src};
		for (uint32_t g = 1; g <= all; g++) {
			struct plan_act m = {.kind = P_MOVE, .node = src, .group = g};
			m.cand[m.n_cand++] = 5;
			for (int k = 1; k <= B + 1; k++)
				if (k != V && k != src)
					m.cand[m.n_cand++] = k;
			a[n++] = m;
		}
		a[n++] = (struct plan_act){.kind = P_REMOVE, .node = src};
	}
	w->plan.n = n;
}

static int plan_holds(struct world *w, int node);
static bool plan_settled(struct world *w);
static void plan_check_majorities(struct world *w);

/* May node v lose its data directory now? As may_wipe, over the members that run. */
static bool plan_may_wipe(struct world *w, int v)
{
	for (int i = 1; i <= w->N; i++) {
		struct simnode *u = &w->nodes[i];
		if (i == v || u->outside || u->dead || u->removed)
			continue;
		if (u->alive ? !durably_recovered(w, u) : !u->clean_at_crash)
			return false;
	}
	return true;
}

static void plan_next(struct world *w, uint32_t lo, uint32_t hi)
{
	push(w, (struct ev){.t = w->now + rnd(w, lo, hi), .type = EV_MOVE});
}

static bool says(const Ringraft__Kv__Response *resp, const char *what)
{
	return resp->error != NULL && strstr(resp->error, what) != NULL;
}

static void plan_reply(void *arg, const Ringraft__Kv__Response *resp)
{
	struct world *w = arg;
	if (!w->plan.busy || resp->id != w->plan.seq) {
		fail(w, "the membership plan got an answer (request %" PRIu64 ") it did not wait for",
		     (uint64_t)resp->id);
		return;
	}
	w->plan.busy = false;
	struct plan_act *a = &w->plan.acts[w->plan.i];
	bool ok = resp->code == RINGRAFT__KV__CODE__OK;
	bool invalid = resp->code == RINGRAFT__KV__CODE__INVALID;
	trace(w, "plan <- %d %s%s", resp->code, resp->progress ? resp->progress : "",
	      resp->error ? resp->error : "");
	bool next = false;
	switch (a->kind) {
	case P_ADD:
		if (ok || (invalid && says(resp, "a member already"))) {
			w->r->count[NS_C_MEMBER_CHANGE] += ok;
			if (w->nodes[a->node].outside)
				w->plan.start = a->node;
			next = true;
		} else if (invalid) {
			fail(w, "plan: adding node %d refused: %s", a->node, resp->error);
		}
		break;
	case P_LEAVE:
		if (ok || (invalid && says(resp, "leaving already"))) {
			w->r->count[NS_C_MEMBER_CHANGE] += ok;
			next = true;
		} else if (invalid && !says(resp, "changed meanwhile")) {
			fail(w, "plan: node %d may not leave: %s", a->node, resp->error);
		}
		break;
	case P_EARLY:
		/* a removal asked while the member holds replicas must be refused; one that
		 * went through is checked against what the groups say */
		if (ok && plan_holds(w, a->node) > 0)
			fail(w, "plan: node %d was removed while it still held replicas", a->node);
		if (ok)
			w->nodes[a->node].left = true;
		next = ok || invalid;
		break;
	case P_EMPTY:
		break;
	case P_REMOVE:
		if (ok || (invalid && says(resp, "removed already"))) {
			w->r->count[NS_C_MEMBER_CHANGE] += ok;
			w->nodes[a->node].left = true;
			next = true;
		}
		/* "still holds replicas": a move of the drain is not seen as done here yet, or a
		 * node's map is behind; asked again */
		break;
	case P_MOVE:
		if (ok && resp->done) {
			w->r->count[NS_C_MOVE_DONE]++;
			next = true;
		} else if (ok) {
			w->r->count[NS_C_MOVE_STEP]++;
		} else if (invalid && says(resp, "holds no replica")) {
			next = true; /* the source holds none of this group: nothing to move */
		} else if (invalid && says(resp, "already holds a voting replica")) {
			w->r->count[NS_C_MOVE_REFUSED]++;
			if (++a->ci >= a->n_cand)
				fail(w, "plan: group %u: no target takes node %d's replica", a->group,
				     a->node);
		}
		/* anything else (no leader yet, a map not learned yet, a timeout): again */
		break;
	case P_KILL:
		break;
	}
	if (next && ++w->plan.i == w->plan.n)
		w->plan.done_at = w->now;
	plan_next(w, 10, 100);
}

static void plan_step(struct world *w)
{
	plan_check_majorities(w);
	if (w->plan.i >= w->plan.n && !w->plan.start) {
		/* the plan is done: with the balancer on, wait for its last move to end */
		if (w->plan.balance && !w->plan.settled) {
			w->plan.settled = plan_settled(w);
			if (!w->plan.settled)
				plan_next(w, 200, 300);
		}
		return;
	}
	if (w->plan.start != 0) {
		struct simnode *j = &w->nodes[w->plan.start];
		w->plan.start = 0;
		j->outside = false;
		trace(w, "plan: node %d joins", j->id);
		node_start(w, j); /* kvd --join */
	}
	if (w->plan.busy || w->plan.i >= w->plan.n)
		return;
	struct plan_act *a = &w->plan.acts[w->plan.i];
	if (a->kind == P_KILL) {
		struct simnode *v = &w->nodes[a->node];
		trace(w, "plan: node %d dies for good", a->node);
		node_crash(w, v);
		v->dead = true;
		if (plan_may_wipe(w, a->node)) {
			rm_tree(v->dir);
			w->r->count[NS_C_WIPE]++;
		}
		w->plan.i++;
		plan_next(w, 10, 100);
		return;
	}
	if (a->kind == P_EMPTY) {
		/* kvctl member remove waits so: until no group's leader names the member */
		int held = plan_holds(w, a->node);
		trace(w, "plan: node %d is in %d group(s)", a->node, held);
		if (held == 0)
			w->plan.i++;
		plan_next(w, 100, 200);
		return;
	}
	/* through a running member, as kvctl would go through any node it knows */
	int live[NS_NODES_MAX], nl = 0;
	for (int i = 1; i <= w->N; i++) {
		struct simnode *u = &w->nodes[i];
		if (u->alive && !u->paused && !u->left && !u->removed)
			live[nl++] = i;
	}
	if (nl == 0) {
		plan_next(w, 20, 150);
		return;
	}
	struct simnode *s = &w->nodes[live[rnd(w, 0, (uint32_t)nl - 1)]];
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	Ringraft__Kv__NodeInfo m = RINGRAFT__KV__NODE_INFO__INIT;
	char peer[32], client[32];
	rq.id = ++w->plan.seq;
	rq.timeout_ms = 1000;
	rq.client_id = 1000; /* the plan's session: a retried add or remove is applied once */
	rq.seq = w->plan.seq;
	switch (a->kind) {
	case P_ADD:
		rq.op = RINGRAFT__KV__OP__MEMBER_ADD;
		snprintf(peer, sizeof peer, "10.0.0.%d:7000", a->node);
		snprintf(client, sizeof client, "10.0.0.%d:9000", a->node);
		m.id = (uint64_t)a->node;
		m.peer_addr = peer;
		m.client_addr = client;
		rq.member = &m;
		break;
	case P_REMOVE:
	case P_EARLY:
		rq.op = RINGRAFT__KV__OP__MEMBER_REMOVE;
		rq.target = (uint64_t)a->node;
		break;
	case P_LEAVE:
		rq.op = RINGRAFT__KV__OP__MEMBER_LEAVE;
		rq.target = (uint64_t)a->node;
		break;
	default:
		rq.op = RINGRAFT__KV__OP__MOVE_REPLICA;
		rq.group = a->group;
		rq.source = (uint64_t)a->node;
		rq.target = (uint64_t)a->cand[a->ci];
		rq.client_id = 0;
		rq.seq = 0;
		break;
	}
	trace(w, "plan: step %d of %d (%s) through node %d", w->plan.i + 1, w->plan.n,
	      a->kind == P_ADD      ? "add"
	      : a->kind == P_EARLY  ? "remove too early"
	      : a->kind == P_REMOVE ? "remove"
	      : a->kind == P_LEAVE  ? "leave"
				    : "move",
	      s->id);
	Ringraft__Kv__Request *own = owned_request(&rq);
	w->plan.busy = true;
	w->plan.node = s->id;
	submit(s, own, plan_reply, w);
	node_process(s->n);
}

static void nemesis(struct world *w)
{
	if (w->now >= w->fault_end)
		return;
	uint32_t pick = rnd(w, 0, 99);
	int victim = (int)rnd(w, 1, (uint32_t)w->N);
	struct simnode *s = &w->nodes[victim];
	if (w->crashes && pick < 30) {
		/* one node, or (a third of the time) a majority at once, as a rack losing power
		 * would: only then can a write acknowledged too early be lost */
		crash_nodes(w, victim, rnd(w, 0, 2) == 0 ? w->N / 2 + 1 : 1);
	} else if (w->partitions && pick < 60) {
		memset(w->cut, 0, sizeof w->cut);
		if (rnd(w, 0, 2) > 0) {
			/* a random side against the rest */
			uint32_t side = rnd(w, 1, (1u << w->N) - 2);
			for (int a = 1; a <= w->N; a++)
				for (int b = 1; b <= w->N; b++)
					w->cut[a][b] =
						((side >> (a - 1)) & 1) != ((side >> (b - 1)) & 1);
			trace(w, "nemesis: partition %#x", side);
			w->r->count[NS_C_PARTITION]++;
		} else {
			trace(w, "nemesis: heal");
		}
		links_changed(w);
	} else if (w->pauses && pick < 80) {
		if (s->alive && !s->paused) {
			s->paused = true;
			w->r->count[NS_C_PAUSE]++;
			trace(w, "nemesis: pause node %d", victim);
			push(w, (struct ev){.t = w->now + rnd(w, 50, 1200),
					    .type = EV_RESUME,
					    .node = victim,
					    .gen = s->gen});
		}
	}
	push(w, (struct ev){.t = w->now + rnd(w, 100, 600), .type = EV_NEMESIS});
}

static void heal(struct world *w)
{
	trace(w, "heal: every node up, no partition");
	w->healed = true;
	memset(w->cut, 0, sizeof w->cut);
	for (int i = 1; i <= w->N; i++) {
		struct simnode *s = &w->nodes[i];
		s->member_at_heal = !s->outside && !s->dead && !s->left;
		if (s->outside || s->dead || s->removed)
			continue; /* not added yet, dead for good, or stopped as removed */
		if (!s->alive)
			node_start(w, s); /* one removed while down learns it now, and stops */
		else if (s->paused) {
			s->paused = false;
			adds_apply(w, s);
			node_process(s->n);
		}
	}
	links_changed(w);
	for (int c = 0; c < w->C; c++)
		w->clients[c].write_after_heal = true;
	for (int c = w->C; c < w->CT; c++)
		if (w->nodes[w->clients[c].probe].member_at_heal)
			push(w, (struct ev){.t = w->now, .type = EV_CLIENT, .client = c});
}

/* ------------------------------------------------------------------------------ the run */

static void deliver(struct world *w, struct ev *e)
{
	struct simnode *s = &w->nodes[e->node];
	if (e->gen != w->link_gen[e->peer][e->node] || !s->alive)
		return; /* the link it travelled on is gone */
	enter(s);
	if ((e->field < NODE_FIELD_MSG || e->field > NODE_FIELD_CONFS) &&
	    e->field != NODE_FIELD_AUTH) {
		fail(w, "node %d sent unknown field %d", e->peer, e->field);
		return;
	}
	/* one field of a PeerFrame, decoded as the transport decodes a whole frame */
	uint8_t hdr[16];
	size_t hl = net_pb_field_header(hdr, (uint32_t)e->field, e->len);
	uint8_t *buf = malloc(hl + e->len + 1);
	if (buf == NULL)
		abort();
	memcpy(buf, hdr, hl);
	if (e->len > 0)
		memcpy(buf + hl, e->buf, e->len);
	Ringraft__Raft__PeerFrame *f = ringraft__raft__peer_frame__unpack(NULL, hl + e->len, buf);
	free(buf);
	if (f == NULL) {
		fail(w, "a PeerFrame field %d from %d does not decode", e->field, e->peer);
		return;
	}
	for (size_t i = 0; i < f->n_msgs; i++) {
		if (f->msgs[i]->type == RAFT_MSG_SNAPSHOT)
			w->r->count[NS_C_SNAP_CHUNK]++;
		else if (f->msgs[i]->type == RAFT_MSG_TIMEOUT_NOW)
			w->r->count[NS_C_TIMEOUT_NOW]++;
		else if (f->msgs[i]->type == RAFT_MSG_TERM_QUERY)
			w->r->count[NS_C_TERM_QUERY]++;
		else if (f->msgs[i]->type == RAFT_MSG_QUIESCE)
			w->r->count[NS_C_QUIESCE]++;
	}
	w->r->count[NS_C_FWD_REQ] += f->n_forwarded_requests;
	w->r->count[NS_C_FWD_RESP] += f->n_forwarded_responses;
	w->r->count[NS_C_DIGEST] += f->n_digests;
	node_peer_frame(s->n, (uint64_t)e->peer, f);
	ringraft__raft__peer_frame__free_unpacked(f, NULL);
	node_process(s->n);
}

static void disk_done(struct world *w, struct simnode *s)
{
	int rc = wal_batch_write(s->wal, s->batch);
	if (rc != WAL_OK) {
		fail(w, "node %d: WAL write: %s", s->id, wal_strerror(rc));
		return;
	}
	w->r->count[NS_C_WAL_BATCH]++;
	if (s->compact) {
		w->r->count[NS_C_COMPACT]++;
		size_t removed;
		rc = wal_compact(s->wal, &removed);
		if (rc != WAL_OK)
			fail(w, "node %d: WAL compaction: %s", s->id, wal_strerror(rc));
	}
	s->writing = false;
	s->batches_done++;
	node_wal_durable(s->n);
	node_process(s->n);
}

static void step(struct world *w, struct ev *e)
{
	struct simnode *s = e->node >= 1 && e->node <= w->N ? &w->nodes[e->node] : NULL;
	if (s != NULL && s->alive)
		enter(s);
	/* a paused node handles nothing: its events wait until it resumes */
	bool held = s != NULL && s->alive && s->paused &&
		    (e->type == EV_DELIVER || e->type == EV_DISK || e->type == EV_TICK ||
		     e->type == EV_CKPT);
	if (held) {
		struct ev again = *e;
		again.t = w->now + 5;
		push(w, again);
		return;
	}
	if (s != NULL && s->alive)
		clock_catch_up(s);
	switch (e->type) {
	case EV_DELIVER:
		deliver(w, e);
		free(e->buf);
		break;
	case EV_DISK:
		if (s->alive && e->gen == s->gen && s->writing)
			disk_done(w, s);
		break;
	case EV_CKPT:
		if (s->alive && e->gen == s->gen && s->ckpt != NULL) {
			w->r->count[NS_C_CKPT]++;
			kv_checkpoint_sync(s->ckpt);
			s->ckpt = NULL;
			node_checkpoint_done(s->n);
			node_process(s->n);
		}
		break;
	case EV_TICK:
		if (!s->alive || e->gen != s->gen)
			break;
		if (w->lease)
			node_tick_timers(s->n); /* the clock caught up above */
		else
			node_tick(s->n);
		node_process(s->n);
		push(w, (struct ev){.t = w->now + 10u * 1000u / s->rate_pm,
				    .type = EV_TICK,
				    .node = s->id,
				    .gen = s->gen});
		break;
	case EV_CLIENT:
		if (w->clients[e->client].busy && w->clients[e->client].retry_to != 0)
			client_follow(w, e->client);
		else if (!w->clients[e->client].busy)
			client_issue(w, e->client);
		break;
	case EV_NEMESIS:
		nemesis(w);
		break;
	case EV_MOVE:
		plan_step(w);
		break;
	case EV_MOVER:
		mover_step(w);
		break;
	case EV_RESTART:
		if (!s->alive && !w->healed && !s->dead && !s->removed)
			node_start(w, s);
		break;
	case EV_STOP:
		if (s->alive && e->gen == s->gen) {
			trace(w, "node %d stops: removed from the cluster", s->id);
			node_crash(w, s);
		}
		break;
	case EV_HEAL:
		heal(w);
		break;
	case EV_GROUPS:
		adds_action(w, e->client);
		break;
	case EV_RING:
		ring_step(w);
		break;
	case EV_STRIKE:
		trace(w, "nemesis: a majority crashes right after an acknowledged write");
		w->r->count[NS_C_STRIKE]++;
		crash_nodes(w, e->node, w->N / 2 + 1);
		break;
	case EV_RESUME:
		if (s->alive && s->paused && e->gen == s->gen) {
			s->paused = false;
			trace(w, "node %d resumes", s->id);
			adds_apply(w, s);
			node_process(s->n);
		}
		break;
	}
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	remove(p);
	return 0;
}

static void rm_tree(const char *path)
{
	nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

void ns_root_path(char *buf, size_t len, const char *root, int pid, uint64_t seed)
{
	snprintf(buf, len, "%s/nodesim-%d-%" PRIu64, root ? root : "/dev/shm", pid, seed);
}

void ns_remove_root(const char *root, int pid, uint64_t seed)
{
	char path[256];
	ns_root_path(path, sizeof path, root, pid, seed);
	rm_tree(path);
}

static uint64_t fnv(const void *p, size_t n, uint64_t h)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

static void check_history(struct world *w)
{
	struct jl_history h;
	char err[256];
	if (jl_history_parse(&h, w->hist, w->hist_len, err, sizeof err) != JL_OK) {
		fail(w, "history does not parse: %s", err);
		return;
	}
	for (uint32_t k = 0; k < h.nkeys; k++) {
		enum jl_verdict v = jl_lin_check_key(&h, k, jl_now_ns() + 20000000000ll, NULL);
		if (v == JL_INVALID) {
			struct jl_lin_witness wi;
			char ops[200] = "";
			if (jl_lin_explain_key(&h, k, jl_now_ns() + 5000000000ll, &wi) == 0) {
				snprintf(ops, sizeof ops, " (a failing window of %zu operations)",
					 wi.nops);
				if (w->o->trace)
					for (size_t i = 0; i < wi.nevents; i++) {
						jl_history_print_event(&h, wi.events[i], stderr);
						fputc('\n', stderr);
					}
				jl_lin_witness_free(&wi);
			}
			fail(w, "history not linearizable on key %s%s", h.keys[k], ops);
			break;
		}
		if (v == JL_UNKNOWN) {
			fail(w, "linearizability of key %s not decided in time", h.keys[k]);
			break;
		}
	}
	jl_history_free(&h);
}

/* ------------------------------------------------------------------------------ the audit */

/* What STATUS says of one group on one node (audit). */
struct audit_group {
	bool hosted, leader, recovering;
	uint64_t term;
	uint32_t n_voters, n_learners;
	uint64_t voters[NS_NODES_MAX], learners[NS_NODES_MAX];
};

struct audit_ctx {
	struct world *w;
	int node;
	bool answered;
	uint64_t members_epoch; /* the cluster map's epoch it knows */
	struct audit_group g[NS_GROUP_IDS]; /* by group id: + the meta group, + added ones */
};

static void audit_reply(void *arg, const Ringraft__Kv__Response *resp)
{
	struct audit_ctx *a = arg;
	a->answered = true;
	if (resp->code != RINGRAFT__KV__CODE__OK || resp->status == NULL)
		return;
	if (resp->ring != NULL)
		a->members_epoch = resp->ring->members_epoch;
	for (size_t i = 0; i < resp->status->n_groups; i++) {
		const Ringraft__Kv__GroupStatus *gs = resp->status->groups[i];
		if (gs->group < 1 || gs->group >= NS_GROUP_IDS)
			continue;
		struct audit_group *x = &a->g[gs->group];
		x->hosted = true;
		x->leader = gs->role != NULL && strcmp(gs->role, "leader") == 0;
		x->recovering = gs->recovering;
		x->term = gs->term;
		for (size_t k = 0; k < gs->n_voters && k < NS_NODES_MAX; k++)
			x->voters[x->n_voters++] = gs->voters[k];
		for (size_t k = 0; k < gs->n_learners && k < NS_NODES_MAX; k++)
			x->learners[x->n_learners++] = gs->learners[k];
	}
}

/* Every running node's STATUS, as the audit reads it. */
static void status_all(struct world *w, struct audit_ctx *a)
{
	memset(a, 0, sizeof *a * (NS_NODES_MAX + 1));
	for (int i = 1; i <= w->N; i++) {
		struct simnode *s = &w->nodes[i];
		a[i].w = w;
		a[i].node = i;
		if (!s->alive || s->paused)
			continue;
		Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
		rq.op = RINGRAFT__KV__OP__STATUS;
		Ringraft__Kv__Request *own = owned_request(&rq);
		submit(s, own, audit_reply, &a[i]);
		node_process(s->n);
	}
}

/* The configuration of group g as its leader of the highest term reports it (NULL: none). */
static const struct audit_group *leader_view(struct world *w, struct audit_ctx *a, uint32_t g)
{
	int L = 0;
	for (int i = 1; i <= w->N; i++)
		if (a[i].g[g].leader && (L == 0 || a[i].g[g].term > a[L].g[g].term))
			L = i;
	return L ? &a[L].g[g] : NULL;
}

/* Groups whose leader names node as a voter or learner; a group with no leader counts. */
static int plan_holds(struct world *w, int node)
{
	static struct audit_ctx a[NS_NODES_MAX + 1];
	status_all(w, a);
	int k = 0;
	for (uint32_t g = 1; g <= (uint32_t)w->G + 1; g++) {
		const struct audit_group *c = leader_view(w, a, g);
		bool in = c == NULL;
		for (uint32_t v = 0; c != NULL && v < c->n_voters; v++)
			in |= c->voters[v] == (uint64_t)node;
		for (uint32_t v = 0; c != NULL && v < c->n_learners; v++)
			in |= c->learners[v] == (uint64_t)node;
		k += in;
	}
	return k;
}

/* Through every step of the plan: each group's leader has a majority of voters that are
 * members still able to come back (not dead for good, not removed), and no voter that is not
 * yet a member. A removal of a voter before its replicas moved, or a move that took two
 * voters out, shows here. */
static void plan_check_majorities(struct world *w)
{
	static struct audit_ctx a[NS_NODES_MAX + 1];
	status_all(w, a);
	for (uint32_t g = 1; g <= (uint32_t)w->G + 1 && w->r->ok; g++) {
		const struct audit_group *c = leader_view(w, a, g);
		if (c == NULL)
			continue;
		uint32_t good = 0;
		for (uint32_t k = 0; k < c->n_voters; k++) {
			int v = (int)c->voters[k];
			if (v < 1 || v > w->N || w->nodes[v].outside)
				fail(w, "group %u: voter %d was never added to the cluster", g, v);
			else
				good += !w->nodes[v].dead && !w->nodes[v].left;
		}
		if (w->r->ok && good <= c->n_voters / 2)
			fail(w, "group %u: only %u of its %u voters are members that can vote", g, good,
			     c->n_voters);
		if (w->r->ok && (c->n_voters + c->n_learners > NODE_REPLICAS + 1))
			fail(w, "group %u: %u voters and %u learners: two moves at once", g,
			     c->n_voters, c->n_learners);
	}
}

/* Every group's leader has 3 voters and no learner (the balancer has nothing under way). */
static bool plan_settled(struct world *w)
{
	static struct audit_ctx a[NS_NODES_MAX + 1];
	status_all(w, a);
	for (uint32_t g = 1; g <= (uint32_t)w->G + 1; g++) {
		const struct audit_group *c = leader_view(w, a, g);
		if (c == NULL || c->n_voters != 3 || c->n_learners != 0)
			return false;
	}
	return true;
}

/* After the run: each group's leader (when it has one) has 3 voters (while the group's move is
 * under way: 4 after the promotion, or 2 when the source was down and went first), no learner left over from a move,
 * and every voter holds a replica. A move that removed before it promoted, or a replica
 * retired or never created, shows here. */
static void audit_groups(struct world *w)
{
	static struct audit_ctx a[NS_NODES_MAX + 1];
	status_all(w, a);
	for (int i = 1; i <= w->N; i++)
		if (w->nodes[i].alive && !w->nodes[i].paused && !a[i].answered)
			fail(w, "audit: node %d did not answer STATUS at once", i);
	/* The move under way at the heal has had 3 s or more of a healed cluster since. */
	if (w->mover.group != 0)
		fail(w, "audit: the move of group %u from node %d to node %d never finished",
		     w->mover.group, w->mover.from, w->mover.to);
	if (w->plan.on && w->plan.i < w->plan.n)
		fail(w, "audit: the membership plan stopped at step %d of %d (kind %d, node %d, "
			"group %u)",
		     w->plan.i + 1, w->plan.n, (int)w->plan.acts[w->plan.i].kind,
		     w->plan.acts[w->plan.i].node, w->plan.acts[w->plan.i].group);
	/* Members: a removed node has stopped (it learned it was removed); every running member
	 * knows the same cluster map. */
	uint64_t epoch = 0;
	for (int i = 1; i <= w->N && w->r->ok; i++) {
		struct simnode *s = &w->nodes[i];
		if (s->left && s->alive)
			fail(w, "audit: node %d was removed from the cluster and still runs", i);
		if (s->alive && a[i].answered && epoch != 0 && a[i].members_epoch != epoch)
			fail(w, "audit: node %d knows cluster map epoch %" PRIu64 ", another %" PRIu64,
			     i, a[i].members_epoch, epoch);
		if (s->alive && a[i].answered)
			epoch = a[i].members_epoch;
	}
	/* Replicas that have applied the same index hold the same keys and values: every replica
	 * applies the same log, so a difference is a bug (a non-deterministic apply, a snapshot
	 * or a handoff marker that does not carry the whole state). */
	uint32_t ids_end = (uint32_t)w->G + 2 + NS_ADDED;
	for (uint32_t g = 1; g <= ids_end && w->r->ok; g++) {
		int first[NS_NODES_MAX + 1] = {0};
		raft_index at[NS_NODES_MAX + 1];
		uint8_t d[NS_NODES_MAX + 1][KV_DIGEST_BYTES];
		for (int i = 1; i <= w->N && w->r->ok; i++) {
			struct simnode *s = &w->nodes[i];
			bool hosted = false;
			if (!s->alive || s->paused || !node_group_exists(s->n, g, &hosted) || !hosted)
				continue;
			if (kv_digest(s->kv, g, d[i], &at[i]) != KV_OK)
				continue;
			first[i] = 1;
			for (int j = 1; j < i; j++)
				if (first[j] && at[j] == at[i] && memcmp(d[i], d[j], KV_DIGEST_BYTES) != 0)
					fail(w,
					     "audit: the replicas of group %u on nodes %d and %d differ at "
					     "applied index %" PRIu64,
					     g, j, i, (uint64_t)at[i]);
		}
	}
	/* the key groups, the meta group, and (adds runs) the added ones: the retired one has no
	 * leader left, so only the one that holds keys is judged */
	uint32_t last = (uint32_t)w->G + 1 + (w->adds.on ? NS_ADDED : 0);
	for (uint32_t g = 1; g <= last && w->r->ok; g++) {
		int L = 0;
		for (int i = 1; i <= w->N; i++)
			if (a[i].g[g].leader && (L == 0 || a[i].g[g].term > a[L].g[g].term))
				L = i;
		if (L == 0)
			continue;
		const struct audit_group *c = &a[L].g[g];
		bool moving = w->mover.group == g;
		if (c->n_voters != 3 && !(moving && c->n_voters >= 2 && c->n_voters <= 4))
			fail(w, "audit: group %u has %u voters (leader node %d)%s", g, c->n_voters, L,
			     moving ? ", a move under way" : "");
		else if (c->n_learners > 0 && !moving)
			fail(w, "audit: group %u keeps %u learner(s) with no move under way", g,
			     c->n_learners);
		for (uint32_t k = 0; k < c->n_voters && w->r->ok; k++) {
			int v = (int)c->voters[k];
			if (v >= 1 && v <= w->N && w->nodes[v].alive && !a[v].g[g].hosted)
				fail(w, "audit: node %d, a voter of group %u, holds no replica of it", v,
				     g);
			if (v >= 1 && v <= w->N &&
			    (w->nodes[v].left || w->nodes[v].dead || w->nodes[v].outside))
				fail(w, "audit: node %d votes in group %u and is not a member", v, g);
		}
	}
}

/* ------------------------------------------------------------------------------ quiet phase */

/* One event: the clock moves to it, it goes into the trace hash (replay compares it), it runs. */
static void handle(struct world *w, struct ev *e)
{
	w->now = e->t;
	w->events++;
	uint64_t sig[6] = {e->t,	      (uint64_t)e->type,  (uint64_t)e->node,
			   (uint64_t)e->peer, (uint64_t)e->field, (uint64_t)e->len};
	w->trace_hash = fnv(sig, sizeof sig, w->trace_hash);
	if (e->type == EV_DELIVER)
		w->trace_hash = fnv(e->buf, e->len, w->trace_hash);
	step(w, e);
}

/* Handles the events due up to `until` (the run's loop, without its end conditions). */
static void run_until(struct world *w, uint64_t until)
{
	while (w->r->ok && w->q.n > 0 && w->q.v[0].t <= until) {
		struct ev e = heap_pop(&w->q);
		handle(w, &e);
	}
	if (w->now < until)
		w->now = until;
}

/* One put of the quiet phase: to a key of `group`, answered ok or not yet. */
struct quiet_put {
	struct world *w;
	uint32_t group;
	char key[32];
	bool busy, ok;
	int hint;      /* a NOT_LEADER's leader hint: where to send next (0: none) */
	uint64_t id;   /* of the request in flight */
	uint64_t t_ok; /* when it was answered ok */
};

static void quiet_reply(void *arg, const Ringraft__Kv__Response *resp)
{
	struct quiet_put *q = arg;
	if (!q->busy || resp->id != q->id)
		return;
	q->busy = false;
	if (resp->code == RINGRAFT__KV__CODE__OK) {
		q->ok = true;
		q->t_ok = q->w->now;
	} else if (resp->code == RINGRAFT__KV__CODE__NOT_LEADER && resp->leader_hint >= 1 &&
		   resp->leader_hint <= (uint64_t)q->w->N) {
		q->hint = (int)resp->leader_hint;
	}
}

/* Quiescence's liveness (raft/quiesce.c, docs/DESIGN-NOTES.md "Quiescence"): after the audit
 * the cluster idles until its groups sleep; then the node that leads most groups crashes for
 * good, and a put to every group it led, sent through the other nodes (following NOT_LEADER
 * hints, tried again every 50 ms), must be answered ok within QUIET_ANSWER_ELECTIONS election
 * timeouts. Their sleeping followers learn of the crash only from their failure detector
 * (node_peer_down): without it they would sleep for ever. */
#define QUIET_IDLE_ELECTIONS   8
#define QUIET_ANSWER_ELECTIONS 20 /* generous: split votes between two survivors repeat */
static void quiet_phase(struct world *w)
{
	if (w->N < 3)
		return;
	uint64_t election_ms = w->nodes[1].cfg.election_ms;
	/* the clients are done (w->end has passed): only ticks, heartbeats and QUIESCEs go on */
	run_until(w, w->now + QUIET_IDLE_ELECTIONS * election_ms);
	if (!w->r->ok)
		return;
	static struct audit_ctx a[NS_NODES_MAX + 1];
	memset(a, 0, sizeof a);
	int led[NS_NODES_MAX + 1] = {0};
	bool recovering[NS_GROUP_IDS] = {0};
	for (int i = 1; i <= w->N; i++) {
		struct simnode *s = &w->nodes[i];
		a[i].w = w;
		a[i].node = i;
		if (!s->alive || s->paused)
			return; /* every node runs after the heal */
		Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
		rq.op = RINGRAFT__KV__OP__STATUS;
		submit(s, owned_request(&rq), audit_reply, &a[i]);
		node_process(s->n);
		for (int g = 1; g < NS_GROUP_IDS; g++) {
			if (!in_ring(w, (uint32_t)g))
				continue;
			led[i] += a[i].g[g].hosted && a[i].g[g].leader;
			recovering[g] |= a[i].g[g].hosted && a[i].g[g].recovering;
		}
	}
	int victim = 1;
	for (int i = 2; i <= w->N; i++)
		if (led[i] > led[victim])
			victim = i;
	if (led[victim] == 0)
		return;
	static struct quiet_put q[NS_GROUP_IDS];
	memset(q, 0, sizeof q);
	struct kv_ring *ring =
		kv_ring_from_ids(w->adds.ring, w->adds.n_ring, NODE_VNODES, NODE_RING_EPOCH);
	if (ring == NULL)
		abort();
	int n_puts = 0;
	for (int g = 1; g < NS_GROUP_IDS; g++) {
		/* a group with a replica still recovering may have no quorum without the victim */
		if (!in_ring(w, (uint32_t)g) || !a[victim].g[g].leader || recovering[g])
			continue;
		q[g].w = w;
		q[g].group = (uint32_t)g;
		for (int k = 0;; k++) {
			snprintf(q[g].key, sizeof q[g].key, "quiet%d", k);
			if (kv_ring_group_of(ring, q[g].key, strlen(q[g].key)) == (uint32_t)g)
				break;
		}
		n_puts++;
	}
	kv_ring_free(ring);
	if (n_puts == 0)
		return;
	trace(w, "quiet: node %d, leading %d groups, crashes for good", victim, led[victim]);
	uint64_t t0 = w->now, deadline = t0 + QUIET_ANSWER_ELECTIONS * election_ms;
	node_crash(w, &w->nodes[victim]);
	int next = 0;
	uint64_t id = 1u << 30;
	for (;;) {
		int open = 0;
		for (int g = 1; g < NS_GROUP_IDS; g++) {
			struct quiet_put *p = &q[g];
			if (p->group == 0 || p->ok)
				continue;
			open++;
			if (p->busy)
				continue;
			int to = p->hint;
			p->hint = 0;
			if (to < 1 || to > w->N || !w->nodes[to].alive)
				do
					to = next++ % w->N + 1;
				while (to == victim);
			struct simnode *s = &w->nodes[to];
			Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
			rq.op = RINGRAFT__KV__OP__PUT;
			rq.id = p->id = ++id;
			rq.key.data = (uint8_t *)p->key;
			rq.key.len = strlen(p->key);
			rq.value.data = (uint8_t *)"q";
			rq.value.len = 1;
			p->busy = true;
			submit(s, owned_request(&rq), quiet_reply, p);
			node_process(s->n);
		}
		if (open == 0 || w->now >= deadline || !w->r->ok)
			break;
		run_until(w, w->now + 50);
	}
	for (int g = 1; g < NS_GROUP_IDS && w->r->ok; g++)
		if (q[g].group != 0 && !q[g].ok)
			fail(w,
			     "liveness: quiet phase: a put to group %d, led by node %d when it "
			     "crashed after %d election timeouts of idling, was not answered ok "
			     "within %d election timeouts (%" PRIu64 " ms)",
			     g, victim, QUIET_IDLE_ELECTIONS, QUIET_ANSWER_ELECTIONS,
			     QUIET_ANSWER_ELECTIONS * election_ms);
}

void ns_run(const struct ns_opts *o, struct ns_result *r)
{
	static const char *mixes[] = {"calm", "partition", "crash", "pause", "all"};
	struct world *w = calloc(1, sizeof *w);
	if (w == NULL)
		abort();
	memset(r, 0, sizeof *r);
	r->ok = true;
	w->o = o;
	w->r = r;
	raft_rand_seed(&w->rng, o->seed);
	w->trace_hash = 0xcbf29ce484222325ull;
	w->N = rnd(w, 0, 2) == 0 ? 5 : 3;
	w->G = (int)rnd(w, 4, NS_GROUPS_MAX);
	w->C = (int)rnd(w, 3, 6);
	w->K = (int)rnd(w, 2, 5);
	for (int k = 0; k < NS_KEYS_MAX; k++)
		w->known[k] = JL_NIL;
	uint32_t mix = rnd(w, 0, 4);
	w->mix = mixes[mix];
	w->partitions = mix == 1 || mix == 4;
	w->crashes = mix == 2 || mix == 4;
	w->pauses = mix == 3 || mix == 4;
	w->wipes = w->crashes; /* a quarter of the crashes, when may_wipe allows */
	w->drift = rnd(w, 0, 1) == 1;
	w->delay_max = rnd(w, 1, 20);
	w->disk_max = rnd(w, 1, 30);
	uint32_t election_ms = rnd(w, 2, 6) * 60;
	uint32_t snapshot_entries = rnd(w, 0, 1) ? rnd(w, 20, 80) : 100000;
	bool balance = rnd(w, 0, 1) == 1;
	uint32_t scrub = rnd(w, 0, 3) == 0 ? 500 : 0;
	w->fault_end = rnd(w, 2000, 4000);
	w->heal_end = w->fault_end + 3000;
	w->end = w->heal_end;
	r->nodes = w->N;
	r->groups = w->G;
	r->mix = w->mix;
	/* In two seeds of three the state machine is slow: a group applies at most 1, 2 or 4
	 * committed entries per tick, so apply lags commit and a read confirmed by ReadIndex has
	 * to wait for it. Drawn from the seed apart from the world's stream, so every other
	 * choice of a seed stays what it was before the cap. */
	uint64_t h = (o->seed + 0x9e3779b97f4a7c15ull) * 0xbf58476d1ce4e5b9ull;
	h ^= h >> 31;
	w->apply_cap = h % 3 == 0 ? 0 : 1u << ((h >> 8) % 3);
	r->apply_cap = w->apply_cap;
	/* Idle groups quiesce (raft/quiesce.c) in 7 seeds of 8, as kvd does by default. */
	w->quiesce = ((h >> 24) & 7) != 0;
	r->quiesce = w->quiesce;
	/* Leader leases (node_config.lease_reads, kvd's default) in half the seeds, drawn apart
	 * too: the engine's clock advanced apart from its timers, as kvd's shell does. */
	w->lease = ((h >> 40) & 1) != 0;
	r->lease = w->lease;
	/* Applied entries held in LMDB's open transaction before a timed commit: every tick in
	 * a quarter of the seeds, kvd's default 100 ms in half, a second in a quarter (a crash
	 * then abandons up to a second of applies, which the WAL gives back). */
	static const uint32_t commit_ms[4] = {0, 100, 100, 1000};
	w->apply_commit_ms = commit_ms[(h >> 44) & 3];
	r->apply_commit_ms = w->apply_commit_ms;
	/* Compaction by the bytes the log holds (kvd --snapshot-bytes) in half the seeds, at a
	 * few KiB, so that it, not the entry count, triggers most compactions there. */
	w->snapshot_bytes = ((h >> 46) & 1) ? 2048u << ((h >> 47) & 3) : 0;
	r->snapshot_bytes = w->snapshot_bytes;
	/* Replicas move in half of the 5-node seeds (with 3 nodes every node hosts every group:
	 * there is nowhere to move to); drawn apart from the world's stream too. */
	w->mover.on = w->N == 5 && ((h >> 20) & 1) == 1;
	/* In half of those, the members change instead (the plan above plan_build): 3
	 * bootstrap members, nodes 4 and 5 added later, one replaced, one removed. */
	w->plan.on = w->mover.on && ((h >> 21) & 1) == 1;
	w->plan.balance = w->plan.on && ((h >> 22) & 1) == 1;
	if (w->plan.on) {
		/* with the balancer, the random mover goes on too: two movers on one group must
		 * not both get their replica in (move.c's one-move rule) */
		w->mover.on = w->plan.balance;
		w->plan.boot = 3;
		w->heal_end += 3000; /* more of the plan runs with clients (see PLAN_GRACE_MS) */
		w->end = w->heal_end;
	}
	r->moves = w->mover.on;
	r->members = w->plan.on;
	/* Groups created at runtime in one seed of three without the membership plan (drawn
	 * apart from the world's stream too; its own draws come after every other choice). */
	w->adds.on = !w->plan.on && ((h >> 26) % 3) == 0;
	r->adds = w->adds.on;
	/* A ring change in one seed of three of the rest (drawn apart too; its own draws come
	 * after every other choice). */
	w->ring.on = !w->plan.on && !w->adds.on && ((h >> 29) % 3) == 0;
	w->ring.id = (uint32_t)w->G + 2; /* the first id after the meta group's */
	r->ring = w->ring.on;
	for (int g = 1; g <= w->G; g++)
		w->adds.ring[w->adds.n_ring++] = (uint32_t)g;
	for (int k = 0; k < NS_ADDED; k++)
		w->adds.id[k] = (uint32_t)w->G + 2 + (uint32_t)k; /* after the meta group's */
	if (w->adds.on)
		w->adds.ring[w->adds.n_ring++] = w->adds.id[0];
	for (int k = 0; k < NS_KEYS_MAX; k++)
		snprintf(w->keyname[k], sizeof w->keyname[k], "k%d", k);
	if (w->adds.on || w->ring.on) {
		/* register key 0 is one of the added group's keys (ring runs: of the ring the
		 * change makes, so that key 0 moves to X and back during the run) */
		uint32_t ids[NS_GROUPS_MAX + 2];
		size_t n_ids = 0;
		for (int g = 1; g <= w->G; g++)
			ids[n_ids++] = (uint32_t)g;
		uint32_t to = w->adds.on ? w->adds.id[0] : w->ring.id;
		ids[n_ids++] = to;
		struct kv_ring *ring = kv_ring_from_ids(ids, n_ids, NODE_VNODES, NODE_RING_EPOCH + 1);
		if (ring == NULL)
			abort();
		for (int j = 0;; j++) {
			snprintf(w->keyname[0], sizeof w->keyname[0], "k0.%d", j);
			if (kv_ring_group_of(ring, w->keyname[0], strlen(w->keyname[0])) == to)
				break;
		}
		kv_ring_free(ring);
	}
	ns_root_path(w->root, sizeof w->root, o->root, (int)getpid(), o->seed);
	rm_tree(w->root);
	mkdir(w->root, 0755);
	for (int i = 1; i <= w->N; i++) {
		struct simnode *s = &w->nodes[i];
		s->w = w;
		s->id = i;
		snprintf(s->dir, sizeof s->dir, "%s/n%d", w->root, i);
		s->incarnation = raft_rand_next(&w->rng) | 1;
		s->rate_pm = w->drift ? rnd(w, 950, 1050) : 1000;
		/* lease runs: one tick period for all (the drift, drawn all the same so that the
		 * other choices stay, is 9 or 10 ms periods, 11%: beyond the lease's margin at
		 * some election timeouts; tests/sim keeps drift-free lease runs too) */
		if (w->lease)
			s->rate_pm = 1000;
		s->clock_base_ms = 1000000 + rnd(w, 0, 100000);
		node_config_for(w, s, election_ms, snapshot_entries, balance, scrub);
	}
	for (int i = 1; i <= w->N; i++)
		w->nodes[i].outside = w->plan.on && i > w->plan.boot; /* added by the plan */
	if (w->plan.on)
		plan_build(w);
	for (int i = 1; i <= w->N && r->ok; i++)
		if (!w->nodes[i].outside)
			node_start(w, &w->nodes[i]);
	for (int c = 0; c < w->C; c++) {
		w->clients[c].proc = c;
		push(w, (struct ev){.t = rnd(w, 200, 600), .type = EV_CLIENT, .client = c});
	}
	w->CT = w->C + w->N;
	for (int c = w->C; c < w->CT; c++) {
		w->clients[c].proc = c;
		w->clients[c].probe = c - w->C + 1;
	}
	if (w->partitions || w->crashes || w->pauses)
		push(w, (struct ev){.t = 500, .type = EV_NEMESIS});
	if (w->mover.on)
		push(w, (struct ev){.t = 700, .type = EV_MOVER});
	if (w->plan.on)
		push(w, (struct ev){.t = 700, .type = EV_MOVE});
	if (w->adds.on) {
		uint64_t tb = rnd(w, 400, (uint32_t)w->fault_end - 1000);
		push(w, (struct ev){.t = rnd(w, 100, 900), .type = EV_GROUPS, .client = 0});
		push(w, (struct ev){.t = tb, .type = EV_GROUPS, .client = 1});
		push(w, (struct ev){.t = tb + rnd(w, 200, 800), .type = EV_GROUPS, .client = 2});
	}
	if (w->ring.on)
		push(w,
		     (struct ev){.t = rnd(w, 100, (uint32_t)w->fault_end - 500), .type = EV_RING});
	push(w, (struct ev){.t = w->fault_end, .type = EV_HEAL});
	while (r->ok && w->q.n > 0) {
		struct ev e = heap_pop(&w->q);
		/* virtual time never goes back: the nodes' clocks are monotonic */
		assert(e.t >= w->now);
		/* the membership plan may go on after the clients stop (up to PLAN_GRACE_MS) */
		bool planning = (w->plan.on && (w->plan.i < w->plan.n ||
						 e.t < w->plan.done_at + 2 * NODE_MAP_PUSH_MS ||
						 (w->plan.balance && !w->plan.settled))) ||
				(w->ring.on && w->ring.step < 4);
		if (e.t > w->end + (planning ? PLAN_GRACE_MS : 5000)) {
			if (e.type == EV_DELIVER)
				free(e.buf);
			break; /* every client has stopped; only ticks and heartbeats go on */
		}
		handle(w, &e);
		bool waiting = false;
		for (int c = 0; c < w->CT; c++)
			waiting |= w->clients[c].busy;
		/* after the plan, time for every node to learn the last map (the meta leader sends
		 * it every NODE_MAP_PUSH_MS) and for a removed one to stop */
		bool settling = (w->plan.on && (w->plan.i < w->plan.n ||
						w->now < w->plan.done_at + 2 * NODE_MAP_PUSH_MS ||
						(w->plan.balance && !w->plan.settled))) ||
				(w->ring.on && w->ring.step < 4);
		if (w->now >= w->end && !waiting && !settling)
			break;
	}
	/* safety first: a lost write may stall a node too; the history says more */
	if (r->ok)
		check_history(w);
	for (int c = w->C; c < w->CT && r->ok; c++) {
		struct client *cl = &w->clients[c];
		struct simnode *pn = &w->nodes[cl->probe];
		if (!pn->member_at_heal || pn->left)
			continue; /* not a member at the heal, or removed since */
		if (cl->probe_ok != 0 && cl->probe_ok - w->fault_end > r->probe_ms)
			r->probe_ms = cl->probe_ok - w->fault_end;
		if (cl->probe_ok == 0 || cl->probe_ok > w->fault_end + PROBE_MS)
			fail(w,
			     "liveness: no write through node %d was answered ok within %d ms of "
			     "the heal",
			     cl->probe, PROBE_MS);
	}
	for (int c = 0; c < w->CT && r->ok; c++) {
		if (w->clients[c].busy)
			fail(w,
			     "client %d: its last operation was never answered (5 s past the end)",
			     c);
		else if (c < w->C && !w->clients[c].ok_after_heal)
			fail(w,
			     "liveness: client %d completed no write in the %" PRIu64
			     " ms after the heal",
			     c, w->heal_end - w->fault_end);
	}
	if (r->ok && w->ring.on && w->ring.step < 4)
		fail(w, "ring: the plan did not finish (step %d of 4)", w->ring.step);
	if (r->ok && w->adds.on && !w->adds.ok_after_heal)
		fail(w,
		     "liveness: no write to the added group %u's key was answered ok after the "
		     "heal",
		     w->adds.id[0]);
	if (r->ok)
		audit_groups(w);
	if (r->ok)
		quiet_phase(w);
	while (w->q.n > 0) {
		struct ev e = heap_pop(&w->q);
		if (e.type == EV_DELIVER)
			free(e.buf);
	}
	r->events = w->events;
	r->hash = fnv(w->hist, w->hist_len, w->trace_hash ^ w->events);
	for (int i = 1; i <= w->N; i++)
		if (w->nodes[i].alive) {
			struct simnode *s = &w->nodes[i];
			node_engine_close(s->n);
			kv_close(s->kv);
			wal_close(s->wal);
		}
	rm_tree(w->root);
	free(w->q.v);
	free(w->hist);
	free(w->ctr_seen);
	for (int c = 0; c < NS_CLIENTS_MAX; c++)
		free(w->clients[c].rq_buf);
	free(w);
}
