/* node.c — kvd's lifecycle: open WAL + LMDB, rebuild the groups, bind both ports, run one libuv
 * loop (tick timer; uv_prepare/uv_check run the driver once per turn); SIGTERM/SIGINT: refuse new
 * requests, hand leaderships off, write the pending WAL batch, exit 0.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "node/identity.h"
#include "node/node_int.h"

uint64_t node_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

const char *node_client_addr_of(struct node *n, uint64_t id)
{
	if (id == n->cfg.id)
		return n->cfg.client_addr;
	return node_addrbook_get(&n->addrs, &n->cfg, id);
}

void node_fatal(struct node *n, uint32_t group, const char *fmt, ...)
{
	(void)n;
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	node_log(NODE_LOG_ERROR, group, "fatal, node stops: %s", msg);
	exit(1);
}

static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			node_log(NODE_LOG_WARN, 0, "cannot raise the open-file limit error=\"%s\"",
				 strerror(errno));
	}
}

/* ------------------------------------------------------------------------------ callbacks */

static void peer_up_cb(void *arg, uint64_t id, const char *client_addr, uint64_t incarnation)
{
	struct node *n = arg;
	int mi = node_config_member_index(&n->cfg, id);
	if (mi >= 0) {
		n->peer_up_since[mi] = node_now_ms();
		uint64_t was = n->peer_incarnation[mi];
		if (was != 0 && was != incarnation)
			node_log(NODE_LOG_WARN, 0,
				 "peer came back with another data directory peer=%llu "
				 "incarnation=%016llx was=%016llx",
				 (unsigned long long)id, (unsigned long long)incarnation,
				 (unsigned long long)was);
		n->peer_incarnation[mi] = incarnation;
	}
	/* Whatever the peer acknowledged over the last link may be gone (it restarted, perhaps
	 * with an emptied directory): every group probes it afresh (raft_peer_reset). */
	for (uint32_t i = 0; i < n->cfg.groups; i++)
		if (n->groups[i].raft != NULL)
			raft_peer_reset(n->groups[i].raft, id);
	if (node_addrbook_set(&n->addrs, &n->cfg, id, client_addr) &&
	    node_addrbook_save(&n->addrs, &n->cfg) != 0)
		node_log(NODE_LOG_WARN, 0, "cannot save peers.conf error=\"%s\"", strerror(errno));
	node_log(NODE_LOG_INFO, 0, "peer connected peer=%llu client_addr=%s",
		 (unsigned long long)id, client_addr);
}

static void peer_down_cb(void *arg, uint64_t id)
{
	struct node *n = arg;
	int mi = node_config_member_index(&n->cfg, id);
	if (mi >= 0)
		n->peer_up_since[mi] = 0;
	node_log(NODE_LOG_INFO, 0, "peer disconnected peer=%llu", (unsigned long long)id);
	for (uint32_t i = 0; i < n->cfg.groups; i++)
		if (n->groups[i].raft != NULL)
			raft_report_unreachable(n->groups[i].raft, id);
	node_service_peer_down(n, id);
}

static void peer_log_cb(void *arg, int level, uint64_t peer, const char *msg)
{
	(void)arg;
	node_log(level, 0, "%s peer=%llu", msg, (unsigned long long)peer);
}

static void peer_frame_cb(void *arg, uint64_t from, const Ringraft__Raft__PeerFrame *f)
{
	struct node *n = arg;
	if (n->draining)
		return;
	node_on_peer_frame(n, from, f);
}

static void server_log_cb(void *arg, int level, const char *msg)
{
	(void)arg;
	node_log(level, 0, "%s", msg);
}

static void tick_cb(uv_timer_t *t)
{
	struct node *n = t->data;
	if (n->draining)
		return; /* only turns until the last batch is durable */
	n->ticks++;
	for (uint32_t i = 0; i < n->cfg.groups; i++)
		if (n->groups[i].raft != NULL)
			raft_tick(n->groups[i].raft);
	uint64_t every = NODE_MAINT_MS / n->cfg.tick_ms;
	if (every == 0)
		every = 1;
	if (n->ticks % 5 == 0)
		node_service_timeouts(n);
	node_expire_tick(n);
	if (n->ticks % every == 0 && !n->stopping) {
		node_maybe_compact(n);
		node_balance_leaders(n);
		if (n->cfg.scrub_rate > 0)
			node_scrub_step(n);
		node_digest_step(n);
	}
}

static bool leads_any(struct node *n)
{
	for (uint32_t i = 0; i < n->cfg.groups; i++)
		if (n->groups[i].raft != NULL && raft_role_of(n->groups[i].raft) == RAFT_LEADER)
			return true;
	return false;
}

static void turn_cb(struct node *n)
{
	node_process(n);
	if (n->stopping && !n->draining &&
	    (!leads_any(n) || node_now_ms() >= n->handoff_deadline_ms)) {
		/* Handoff over: ignore peers from now on, so the pending batch is the last one. */
		n->draining = true;
		node_log(NODE_LOG_INFO, 0, "handoff done, draining still_leading=%d", leads_any(n));
	}
	if (n->draining && !n->stopped && node_write_idle(n)) {
		n->stopped = true;
		node_log(NODE_LOG_INFO, 0, "stopped: pending writes are durable");
		uv_stop(&n->loop);
	}
}

static void prepare_cb(uv_prepare_t *h)
{
	turn_cb(h->data);
}

static void check_cb(uv_check_t *h)
{
	turn_cb(h->data);
}

static void stop_poll_cb(uv_timer_t *t)
{
	turn_cb(t->data);
}

static void signal_cb(uv_signal_t *s, int signum)
{
	struct node *n = s->data;
	if (n->stopping)
		return;
	node_log(NODE_LOG_WARN, 0, "stopping signal=%s", signum == SIGTERM ? "SIGTERM" : "SIGINT");
	n->stopping = true;
	net_server_stop_accepting(n->server);
	node_resp_stop_accepting(n);
	node_service_fail_all(n);
	/* Hand every group this node leads to a connected voter, so clients wait for a transfer
	 * instead of an election timeout; then drain (turn_cb) and stop once the pending WAL
	 * batch is durable. */
	uint64_t budget =
		n->cfg.election_ms < NODE_HANDOFF_MS_MAX ? n->cfg.election_ms : NODE_HANDOFF_MS_MAX;
	n->handoff_deadline_ms = node_now_ms() + budget;
	for (uint32_t i = 0; i < n->cfg.groups; i++) {
		struct node_group *g = &n->groups[i];
		if (g->raft == NULL || raft_role_of(g->raft) != RAFT_LEADER)
			continue;
		const struct raft_conf *c = raft_conf_of(g->raft);
		for (uint32_t k = 0; k < c->n_voters; k++) {
			uint64_t to = c->voters[k];
			if (to != n->cfg.id && net_peers_up(n->peers, to) &&
			    !raft_peer_recovering(g->raft, to)) {
				int rc = raft_transfer_leader(g->raft, to);
				node_log(NODE_LOG_INFO, g->id, "handoff to=%llu result=\"%s\"",
					 (unsigned long long)to, raft_strerror(rc));
				break;
			}
		}
	}
	uv_timer_start(&n->stop_poll, stop_poll_cb, 5, 5);
}

/* ------------------------------------------------------------------------------ lifecycle */

/* The open node, so a fatal exit() leaves its memory reachable (no leak noise under ASan). */
struct node *node_the_node;

static int make_dir(const char *path)
{
	if (mkdir(path, 0755) != 0 && errno != EEXIST) {
		node_log(NODE_LOG_ERROR, 0, "cannot create directory path=%s error=\"%s\"", path,
			 strerror(errno));
		return -1;
	}
	return 0;
}

int node_open(const struct node_config *cfg, struct node **out)
{
	struct node *n = calloc(1, sizeof *n);
	if (n == NULL)
		return -1;
	node_the_node = n;
	n->cfg = *cfg;
	n->start_ms = node_now_ms();
	node_metrics_init(&n->metrics);
	node_log_init(cfg->id, cfg->log_level);
	raise_nofile();
	if (uv_loop_init(&n->loop) != 0)
		return -1;
	char wal_dir[NODE_PATH_MAX + 8], kv_dir[NODE_PATH_MAX + 8];
	snprintf(wal_dir, sizeof wal_dir, "%s/wal", cfg->data_dir);
	snprintf(kv_dir, sizeof kv_dir, "%s/kv", cfg->data_dir);
	if (make_dir(wal_dir) < 0 || make_dir(kv_dir) < 0)
		return -1;
	char ierr[NODE_PATH_MAX + 256];
	bool fresh_dir = false;
	if (node_incarnation_load(cfg->data_dir, &n->incarnation, &fresh_dir, ierr, sizeof ierr) <
	    0) {
		node_log(NODE_LOG_ERROR, 0, "%s", ierr);
		return -1;
	}
	node_log(fresh_dir ? NODE_LOG_WARN : NODE_LOG_INFO, 0,
		 "data directory incarnation=%016llx%s", (unsigned long long)n->incarnation,
		 fresh_dir ? " (new)" : "");
	struct wal_options wo;
	wal_options_default(&wo);
	wo.no_sync = cfg->wal_no_sync;
	wo.no_direct_io = cfg->wal_no_direct_io;
	struct wal_corruption corr;
	memset(&corr, 0, sizeof corr);
	/* Salvage: damaged groups are marked corrupt instead of refusing to start; restore.c
	 * rebuilds them from their peers (recovering replicas) while the others serve. */
	int rc = wal_open(wal_dir, &wo, true, &n->wal, &corr);
	if (rc == WAL_OK && corr.reason[0] != '\0')
		node_log(NODE_LOG_ERROR, corr.group_known ? (uint32_t)corr.group : 0,
			 "WAL damaged: the groups concerned are rebuilt from their peers "
			 "segment=%s offset=%llu reason=\"%s\"",
			 corr.segment, (unsigned long long)corr.offset, corr.reason);
	if (rc != WAL_OK) {
		if (rc == WAL_ELOCKED)
			node_log(NODE_LOG_ERROR, 0, "the data dir is in use by another kvd dir=%s",
				 cfg->data_dir);
		else
			node_log(NODE_LOG_ERROR, 0, "cannot open the WAL dir=%s error=\"%s\"",
				 wal_dir, wal_strerror(rc));
		return -1;
	}
	struct kv_options ko;
	kv_options_default(&ko);
	ko.value_max = cfg->value_max;
	ko.groups_max = cfg->groups;
	rc = kv_open(kv_dir, &ko, &n->kv);
	if (rc != KV_OK) {
		node_log(NODE_LOG_ERROR, 0, "cannot open LMDB dir=%s error=\"%s\"", kv_dir,
			 kv_strerror(rc));
		return -1;
	}
	node_addrbook_load(&n->addrs, cfg);
	n->ring = kv_ring_new(cfg->groups, NODE_VNODES, NODE_RING_EPOCH);
	n->groups = calloc(cfg->groups, sizeof *n->groups);
	n->batches[0].b = wal_batch_new();
	n->batches[1].b = wal_batch_new();
	if (n->ring == NULL || n->groups == NULL || n->batches[0].b == NULL ||
	    n->batches[1].b == NULL)
		return -1;
	n->batches[0].n = n->batches[1].n = n;
	n->cur = &n->batches[0];
	if (node_restore_groups(n) < 0)
		return -1;

	struct net_peers_cbs pc = {peer_frame_cb, peer_up_cb, peer_down_cb, peer_log_cb};
	if (net_peers_new(&n->loop, cfg->id, cfg->cluster_id, cfg->peer_addr, cfg->client_addr, &pc,
			  n, &n->peers) != NET_OK)
		return -1;
	net_peers_set_incarnation(n->peers, n->incarnation);
	for (size_t i = 0; i < cfg->n_members; i++)
		if (cfg->members[i].id != cfg->id &&
		    net_peers_add(n->peers, cfg->members[i].id, cfg->members[i].peer_addr) !=
			    NET_OK)
			return -1;
	if (net_peers_start(n->peers) != NET_OK) {
		node_log(NODE_LOG_ERROR, 0, "cannot listen for peers addr=%s", cfg->peer_addr);
		return -1;
	}
	struct net_server_cbs sc = {node_on_client_request, server_log_cb};
	if (net_server_new(&n->loop, cfg->client_addr, &sc, n, &n->server) != NET_OK ||
	    net_server_start(n->server) != NET_OK) {
		node_log(NODE_LOG_ERROR, 0, "cannot listen for clients addr=%s", cfg->client_addr);
		return -1;
	}
	if (node_resp_open(n) < 0)
		return -1;
	if (node_wal_writer_start(n) < 0) {
		node_log(NODE_LOG_ERROR, 0, "cannot start the WAL writer thread");
		return -1;
	}
	if (node_metrics_endpoint_open(n) < 0)
		return -1;
	uv_timer_init(&n->loop, &n->tick);
	n->tick.data = n;
	uv_timer_start(&n->tick, tick_cb, cfg->tick_ms, cfg->tick_ms);
	uv_timer_init(&n->loop, &n->stop_poll);
	n->stop_poll.data = n;
	uv_prepare_init(&n->loop, &n->prepare);
	n->prepare.data = n;
	uv_prepare_start(&n->prepare, prepare_cb);
	uv_check_init(&n->loop, &n->check);
	n->check.data = n;
	uv_check_start(&n->check, check_cb);
	uv_signal_init(&n->loop, &n->sigterm);
	n->sigterm.data = n;
	uv_signal_start(&n->sigterm, signal_cb, SIGTERM);
	uv_signal_init(&n->loop, &n->sigint);
	n->sigint.data = n;
	uv_signal_start(&n->sigint, signal_cb, SIGINT);
	node_log(NODE_LOG_WARN, 0,
		 "started peer_addr=%s client_addr=%s groups=%u nodes=%zu election_ms=%u "
		 "heartbeat_ms=%u",
		 cfg->peer_addr, cfg->client_addr, cfg->groups, cfg->n_members, cfg->election_ms,
		 cfg->heartbeat_ms);
	node_maybe_prepare_wal(n);
	*out = n;
	return 0;
}

static void close_walk_cb(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h) && h->type != UV_TCP)
		uv_close(h, NULL);
}

int node_run(struct node *n)
{
	uv_run(&n->loop, UV_RUN_DEFAULT);
	/* Stopped: close every handle, let the close callbacks run, then free. */
	net_peers_close(n->peers, NULL, NULL);
	n->peers = NULL;
	net_server_close(n->server);
	node_resp_close(n);
	uv_walk(&n->loop, close_walk_cb, NULL);
	uv_run(&n->loop, UV_RUN_DEFAULT);
	net_server_free(n->server);
	n->server = NULL;
	node_resp_free(n);
	node_expire_free(n);
	if (uv_loop_close(&n->loop) != 0)
		node_log(NODE_LOG_WARN, 0, "loop closed with handles open");
	return 0;
}

void node_close(struct node *n)
{
	if (n == NULL)
		return;
	for (uint32_t i = 0; i < n->cfg.groups; i++) {
		struct node_group *g = &n->groups[i];
		for (size_t k = 0; k < NODE_NODES_MAX; k++) {
			if (g->snaps[k].s != NULL)
				kv_snapshot_end(g->snaps[k].s);
			free(g->snaps[k].last);
		}
		if (g->restore != NULL)
			kv_restore_abort(g->restore);
		raft_free(g->raft);
	}
	node_metrics_endpoint_close(n);
	node_wal_writer_stop(n);
	kv_close(n->kv);
	wal_close(n->wal);
	kv_ring_free(n->ring);
	for (int i = 0; i < 2; i++) {
		for (size_t k = 0; k < n->batches[i].n_held; k++)
			free(n->batches[i].held[k].buf);
		free(n->batches[i].held);
		wal_batch_free(n->batches[i].b);
	}
	node_msg_scratch_free(&n->scratch);
	free(n->groups);
	free(n);
	node_the_node = NULL;
}
