/* shell.c — kvd's shell (shell.h): opens the data directory (WAL + LMDB), opens the engine on
 * them, binds the ports, and runs one libuv loop: the tick timer, uv_prepare/uv_check run the
 * engine's turn, the WAL writer thread, SIGTERM/SIGINT (refuse new requests, hand leaderships
 * off, write the pending WAL batch, exit 0).
 *
 * The writer tells the loop (uv_async) as soon as a batch is durable, before it updates the
 * WAL's in-memory index, so the index update overlaps the loop's wake-up. A thread of its own
 * rather than uv_queue_work: a work item's completion would wake the loop a second time for
 * every batch (measured: about 13% fewer unpipelined puts/s with three nodes on two vCPUs).
 */
#include <arpa/inet.h>
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kv/kv.h"
#include "kv/user.h"
#include "node/addrbook.h"
#include "node/auth.h"
#include "node/authfile.h"
#include "node/identity.h"
#include "node/log.h"
#include "node/metrics.h"
#include "node/node.h"
#include "node/memberfile.h"
#include "node/peer_secret.h"
#include "node/backup_load.h"
#include "node/shell.h"
#include "wal/wal.h"

_Static_assert(NODE_FIELD_MSG == NET_PEER_FIELD_MSG &&
		       NODE_FIELD_FWD_REQ == NET_PEER_FIELD_FWD_REQ &&
		       NODE_FIELD_FWD_RESP == NET_PEER_FIELD_FWD_RESP &&
		       NODE_FIELD_DIGEST == NET_PEER_FIELD_DIGEST &&
		       NODE_FIELD_GONE == NET_PEER_FIELD_GONE &&
		       NODE_FIELD_MEMBERS == NET_PEER_FIELD_MEMBERS &&
		       NODE_FIELD_CONFS == NET_PEER_FIELD_CONFS &&
		       NODE_FIELD_AUTH == NET_PEER_FIELD_AUTH,
	       "engine.h's PeerFrame fields are net/peer.h's");

uint64_t node_shell_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
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

/* ------------------------------------------------------------------------------ node_io */

static uint64_t io_now_ms(void *arg)
{
	(void)arg;
	return node_shell_now_ms();
}

static uint64_t io_wall_ms(void *arg)
{
	(void)arg;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t io_now_ns(void *arg)
{
	(void)arg;
	return node_metrics_now_ns();
}

static int io_peer_send(void *arg, uint64_t to, int field, const ProtobufCMessage *m)
{
	struct node_shell *s = arg;
	int rc = net_peers_append_msg(s->peers, to, field, m);
	if (rc == NET_EFULL)
		node_log(NODE_LOG_WARN, 0, "peer queue full, message dropped to=%llu",
			 (unsigned long long)to);
	return rc == NET_OK ? 0 : -1;
}

static int io_peer_send_packed(void *arg, uint64_t to, int field, const uint8_t *buf, size_t len)
{
	struct node_shell *s = arg;
	return net_peers_append(s->peers, to, field, buf, len) == NET_OK ? 0 : -1;
}

static bool io_peer_up(void *arg, uint64_t id)
{
	struct node_shell *s = arg;
	return net_peers_up(s->peers, id);
}

static void io_wal_write(void *arg, struct wal_batch *b, bool compact)
{
	struct node_shell *s = arg;
	assert(!s->writing);
	s->writing = true;
	if (s->cfg.wal_inline) { /* written by the loop at the end of this turn (run_turn) */
		s->inline_todo = b;
		s->inline_compact = compact;
		return;
	}
	atomic_store(&s->durable, false);
	atomic_fetch_add(&s->wal_pending, 1);
	pthread_mutex_lock(&s->wal_mu);
	assert(s->wal_todo == NULL);
	s->wal_todo = b;
	s->wal_todo_compact = compact;
	pthread_cond_signal(&s->wal_cv);
	pthread_mutex_unlock(&s->wal_mu);
}

static void io_flush(void *arg)
{
	struct node_shell *s = arg;
	/* the answers first: a client waits on each, a peer's frame only carries work on */
	net_server_flush(s->server);
	node_resp_flush(s);
	net_peers_flush(s->peers);
}

/* ------------------------------------------------------------------------------ WAL */

/* The next WAL segment is made (written with zeroes and synced, 64 MiB) on the thread pool
 * ahead of need, so the batch that fills a segment does not make it inline (docs/WAL.md). */
static void prep_work_cb(uv_work_t *w)
{
	struct node_shell *s = w->data;
	s->prep_rc = wal_prepare(s->wal);
}

static void prep_done_cb(uv_work_t *w, int status)
{
	struct node_shell *s = w->data;
	s->preparing = false;
	if (status == 0 && s->prep_rc == WAL_OK) {
		s->prep_retry_ms = 0;
		return;
	}
	if (s->prep_retry_ms == 0) /* logged once per run of failures */
		node_log(NODE_LOG_WARN, 0,
			 "could not make the next WAL segment ahead (the batch that fills the "
			 "active one will make it) error=\"%s\"",
			 status ? uv_strerror(status) : wal_strerror(s->prep_rc));
	s->prep_retry_ms = node_shell_now_ms() + NODE_MAINT_MS;
}

static void maybe_prepare_wal(struct node_shell *s)
{
	uint64_t now = node_shell_now_ms();
	if (s->preparing || node_stopping(s->n) || now < s->prep_retry_ms ||
	    !wal_prepare_wanted(s->wal))
		return;
	/* Not in the first seconds after a start unless the segment is filling: on a slow disk
	 * (a power-cut test's FUSE layer: 3-6 s) writing the spare then held back the WAL's
	 * fsyncs of the restart's elections (docs/DURABILITY.md). */
	if (now < s->started_ms + NODE_WAL_PREPARE_DELAY_MS && !wal_active_half_used(s->wal))
		return;
	s->prep_work.data = s;
	if (uv_queue_work(&s->loop, &s->prep_work, prep_work_cb, prep_done_cb) == 0)
		s->preparing = true;
}

/* An LMDB checkpoint's syncs (the data file, then kv.checkpoint and its directory) on the
 * thread pool: on a busy disk they take seconds, and the loop must go on ticking and
 * answering meanwhile (node/snapshot.c). The engine ends it on the loop. */
static void ckpt_work_cb(uv_work_t *w)
{
	struct node_shell *s = w->data;
	kv_checkpoint_sync(s->ckpt);
}

static void ckpt_done_cb(uv_work_t *w, int status)
{
	struct node_shell *s = w->data;
	(void)status; /* never cancelled: uv_cancel is not called on it */
	s->ckpt = NULL;
	node_checkpoint_done(s->n);
}

static void io_checkpoint(void *arg, struct kv_ckpt *c)
{
	struct node_shell *s = arg;
	assert(s->ckpt == NULL);
	s->ckpt = c;
	s->ckpt_work.data = s;
	if (uv_queue_work(&s->loop, &s->ckpt_work, ckpt_work_cb, ckpt_done_cb) != 0) {
		s->ckpt = NULL;
		kv_checkpoint_sync(c); /* cannot happen with a live loop; inline then */
		node_checkpoint_done(s->n);
	}
}

/* Never retry a failed fsync: what is on disk is unknown (DESIGN.md 4). */
static void wal_fatal(struct node_shell *s, int failed)
{
	if (failed == WAL_ENOSPC)
		node_stop_disk_full(s->n, 0, "a WAL write found no space");
	node_log(NODE_LOG_ERROR, 0,
		 "fatal, node stops: WAL write failed, stopping error=\"%s\" errno=\"%s\"",
		 wal_strerror(failed), strerror(wal_errno(s->wal)));
	exit(1);
}

/* The writer's news: a batch is durable, or a write or compaction failed, or segments went. */
static void wal_news_cb(uv_async_t *h)
{
	struct node_shell *s = h->data;
	int failed = atomic_load(&s->wal_failed);
	if (failed != WAL_OK)
		wal_fatal(s, failed);
	size_t removed = atomic_exchange(&s->wal_compacted, 0);
	if (removed > 0)
		node_log(NODE_LOG_INFO, 0, "wal compacted segments_removed=%zu", removed);
	if (s->writing && atomic_load(&s->durable)) {
		s->writing = false;
		node_wal_durable(s->n);
		maybe_prepare_wal(s);
		node_process(s->n);
	}
}

/* On the writer thread, with the WAL's mutex held: only the news goes over. */
static void durable_cb(struct wal_batch *wb, void *arg)
{
	struct node_shell *s = arg;
	(void)wb;
	node_metrics_wal_write_durable(node_metrics_of(s->n));
	atomic_store(&s->durable, true);
	uv_async_send(&s->wal_news);
}

/* The writer thread. One batch at a time, in the order handed over: the loop hands the next
 * one only after the news of the last, so by then the writer has taken it. After the news it
 * still updates the WAL's index and compacts if asked; a batch handed over meanwhile waits. */
static void *wal_writer_main(void *arg)
{
	struct node_shell *s = arg;
	pthread_mutex_lock(&s->wal_mu);
	for (;;) {
		while (s->wal_todo == NULL && !s->wal_quit)
			pthread_cond_wait(&s->wal_cv, &s->wal_mu);
		if (s->wal_todo == NULL)
			break;
		struct wal_batch *b = s->wal_todo;
		bool compact = s->wal_todo_compact;
		s->wal_todo = NULL;
		pthread_mutex_unlock(&s->wal_mu);
		node_metrics_wal_write_begin(node_metrics_of(s->n));
		int rc = wal_batch_write_notify(s->wal, b, durable_cb, s);
		size_t removed = 0;
		if (rc == WAL_OK && compact)
			rc = wal_compact(s->wal, &removed);
		if (removed > 0)
			atomic_fetch_add(&s->wal_compacted, removed);
		if (rc != WAL_OK)
			atomic_store(&s->wal_failed, rc);
		if (rc != WAL_OK || removed > 0) /* before pending drops: the loop may then close */
			uv_async_send(&s->wal_news);
		atomic_fetch_sub(&s->wal_pending, 1);
		pthread_mutex_lock(&s->wal_mu);
	}
	pthread_mutex_unlock(&s->wal_mu);
	return NULL;
}

/* --wal-writer inline: the loop writes the batch itself, as a Redis with appendfsync always
 * does before it sleeps. node_process has sent the turn's messages first (its io.flush, which
 * writes to the sockets at once when they take it), so followers work on this batch's entries
 * while the leader syncs; what waited for the batch follows at once (node_process again). */
static void inline_durable_cb(struct wal_batch *wb, void *arg)
{
	struct node_shell *s = arg;
	(void)wb;
	node_metrics_wal_write_durable(node_metrics_of(s->n));
}

static void wal_write_inline(struct node_shell *s)
{
	struct wal_batch *b = s->inline_todo;
	bool compact = s->inline_compact;
	s->inline_todo = NULL;
	node_metrics_wal_write_begin(node_metrics_of(s->n));
	int rc = wal_batch_write_notify(s->wal, b, inline_durable_cb, s);
	size_t removed = 0;
	if (rc == WAL_OK && compact)
		rc = wal_compact(s->wal, &removed);
	if (rc != WAL_OK)
		wal_fatal(s, rc);
	if (removed > 0)
		node_log(NODE_LOG_INFO, 0, "wal compacted segments_removed=%zu", removed);
	s->writing = false;
	node_wal_durable(s->n);
	maybe_prepare_wal(s);
	node_process(s->n);
}

static int wal_writer_start(struct node_shell *s)
{
	if (uv_async_init(&s->loop, &s->wal_news, wal_news_cb) != 0)
		return NODE_EINIT;
	s->wal_news.data = s;
	pthread_mutex_init(&s->wal_mu, NULL);
	pthread_cond_init(&s->wal_cv, NULL);
	if (pthread_create(&s->wal_thread, NULL, wal_writer_main, s) != 0)
		return NODE_EINIT;
	/* named for top -H, perf sched and /proc/PID/task/TID/comm (best effort) */
	(void)pthread_setname_np(s->wal_thread, "kvd-wal");
	s->wal_thread_started = true;
	node_log(NODE_LOG_INFO, 0, "wal_writer=%s", s->cfg.wal_inline ? "inline" : "thread");
	return NODE_OK;
}

static void wal_writer_stop(struct node_shell *s)
{
	if (!s->wal_thread_started)
		return;
	pthread_mutex_lock(&s->wal_mu);
	s->wal_quit = true;
	pthread_cond_signal(&s->wal_cv);
	pthread_mutex_unlock(&s->wal_mu);
	pthread_join(s->wal_thread, NULL);
	s->wal_thread_started = false;
	pthread_cond_destroy(&s->wal_cv);
	pthread_mutex_destroy(&s->wal_mu);
}

/* wal_close must not run beside a write or wal_prepare. */
static bool write_idle(struct node_shell *s)
{
	return node_write_idle(s->n) && !s->writing && atomic_load(&s->wal_pending) == 0 &&
	       !s->preparing;
}

/* ------------------------------------------------------------------------------ clients */

/* A request of a client connection in the engine: the connection (referenced) and the bytes
 * it counts against --conn-max-inflight-bytes. */
struct client_req {
	struct net_conn *c;
	uint32_t bytes;
};

static void client_reply(void *client, const Ringraft__Kv__Response *resp)
{
	struct client_req *cr = client;
	struct net_conn *c = cr->c;
	net_conn_send(c, &resp->base);
	net_conn_hold_bytes(c, -(int64_t)cr->bytes);
	net_conn_request_done(c);
	net_conn_unref(c);
	free(cr);
}

/* The connection's bound (--conn-max-inflight, --conn-max-inflight-bytes): the reason when rq
 * is over it (counted), else NULL. The same ops pass as past the node's bound (service.c);
 * a request larger than the byte bound passes when the connection holds nothing else. */
static const char *conn_over_bound(struct node_shell *s, struct net_conn *c,
				   const Ringraft__Kv__Request *rq, uint32_t bytes)
{
	const struct node_config *cfg = &s->cfg;
	if (rq->op == RINGRAFT__KV__OP__PING || rq->op == RINGRAFT__KV__OP__STATUS ||
	    rq->op == RINGRAFT__KV__OP__DIGEST || rq->op == RINGRAFT__KV__OP__TRANSFER_LEADER ||
	    node_stopping(s->n))
		return NULL;
	/* net_conn_inflight counts this request too */
	if (cfg->conn_max_inflight && net_conn_inflight(c) > cfg->conn_max_inflight) {
		node_metrics_shed(node_metrics_of(s->n), NODE_SHED_CONN_REQUESTS);
		return "busy: too many requests in flight on this connection, not applied";
	}
	uint64_t held = net_conn_held_bytes(c);
	if (cfg->conn_max_inflight_bytes && held > 0 &&
	    held + bytes > cfg->conn_max_inflight_bytes) {
		node_metrics_shed(node_metrics_of(s->n), NODE_SHED_CONN_BYTES);
		return "busy: too many request bytes in flight on this connection, not applied";
	}
	return NULL;
}

/* Answers rq at once from the shell (the engine never sees it); takes rq. */
static void answer_now(struct node_shell *s, struct net_conn *c, Ringraft__Kv__Request *rq,
		       Ringraft__Kv__Code code, const char *error)
{
	Ringraft__Kv__Response resp = RINGRAFT__KV__RESPONSE__INIT;
	resp.id = rq->id;
	resp.code = code;
	resp.error = (char *)error;
	uint64_t now = node_metrics_now_ns();
	node_metrics_request_done(node_metrics_of(s->n), rq->op, resp.code, now, now);
	ringraft__kv__request__free_unpacked(rq, NULL);
	net_conn_send(c, &resp.base);
	net_conn_request_done(c);
}

static void submit_request(struct node_shell *s, struct net_conn *c, Ringraft__Kv__Request *rq);

/* ------------------------------------------------------------------------------ client auth */

/* A connection's authentication state (net_conn_auth): the user's role (kv/user.h), and
 * AUTH_PENDING while its password is being checked. */
#define AUTH_PENDING 0x100u
/* Password checks running at once on the thread pool (each costs tens of ms of a core; the
 * pool also runs the WAL's writes). Beyond, a login is answered BUSY. */
#define AUTH_CHECKS_MAX 2
/* Requests a connection sends while its login is checked: held, then run as its user. */
#define AUTH_HELD_MAX 64

struct auth_check {
	uv_work_t work;
	struct node_shell *s;
	struct net_conn *c;
	Ringraft__Kv__Request *rq;
	Ringraft__Kv__Request *held[AUTH_HELD_MAX];
	size_t n_held;
	struct kv_user u;
	bool found, ok;
};

static struct auth_check *auth_checks[AUTH_CHECKS_MAX]; /* running, by slot */

static bool auth_gate(struct node_shell *s, struct net_conn *c, Ringraft__Kv__Request *rq);

static void auth_check_cb(uv_work_t *w)
{
	struct auth_check *a = w->data;
	/* an unknown user costs the same as a wrong password: a check of a made-up record */
	a->ok = kv_user_password_ok(&a->u, a->rq->password.data, a->rq->password.len) && a->found;
}

static void auth_checked_cb(uv_work_t *w, int status)
{
	struct auth_check *a = w->data;
	struct net_conn *c = a->c;
	for (size_t i = 0; i < AUTH_CHECKS_MAX; i++)
		if (auth_checks[i] == a)
			auth_checks[i] = NULL;
	if (status != 0 || net_conn_closed(c)) {
		ringraft__kv__request__free_unpacked(a->rq, NULL);
		net_conn_request_done(c);
		for (size_t i = 0; i < a->n_held; i++) {
			ringraft__kv__request__free_unpacked(a->held[i], NULL);
			net_conn_request_done(c);
		}
	} else if (!a->ok) {
		net_conn_set_auth(c, 0);
		node_log(NODE_LOG_INFO, 0, "client authentication failed user=%.64s",
			 a->rq->auth_user);
		answer_now(a->s, c, a->rq, RINGRAFT__KV__CODE__UNAUTHENTICATED,
			   "authentication failed: wrong user or password");
		for (size_t i = 0; i < a->n_held; i++)
			answer_now(a->s, c, a->held[i], RINGRAFT__KV__CODE__UNAUTHENTICATED,
				   "authentication failed: wrong user or password");
	} else {
		net_conn_set_auth(c, a->u.role);
		/* the login's own request, then those held, in order, as that user */
		if (!auth_gate(a->s, c, a->rq))
			submit_request(a->s, c, a->rq);
		for (size_t i = 0; i < a->n_held; i++)
			if (!auth_gate(a->s, c, a->held[i]))
				submit_request(a->s, c, a->held[i]);
	}
	net_conn_unref(c);
	free(a);
}

/* With authentication on, a connection's first request must carry a user and password,
 * checked once (off the loop); later ones run with that user's role. True if rq was taken
 * (answered, or held for the check). */
static bool auth_gate(struct node_shell *s, struct net_conn *c, Ringraft__Kv__Request *rq)
{
	uint32_t st = net_conn_auth(c);
	if (st == 0) {
		int mode = node_auth_mode(s->n);
		if (mode == NODE_AUTH_OFF)
			return false;
		if (mode == NODE_AUTH_UNCONFIRMED) {
			answer_now(s, c, rq, RINGRAFT__KV__CODE__UNAVAILABLE,
				   "unavailable: this node has not yet learned whether client "
				   "authentication is on (it holds no replica of the meta group and "
				   "its leader has not reached it since it started): retry");
			return true;
		}
	}
	if (st & AUTH_PENDING) {
		for (size_t i = 0; i < AUTH_CHECKS_MAX; i++) {
			struct auth_check *a = auth_checks[i];
			if (a != NULL && a->c == c && a->n_held < AUTH_HELD_MAX) {
				a->held[a->n_held++] = rq;
				return true;
			}
		}
		answer_now(s, c, rq, RINGRAFT__KV__CODE__BUSY,
			   "busy: too many requests while this connection's login is checked");
		return true;
	}
	if (st != 0) {
		if (node_auth_allows((int)st, rq->op))
			return false;
		answer_now(s, c, rq, RINGRAFT__KV__CODE__PERMISSION_DENIED,
			   "permission denied: the user's role ro allows reads only");
		return true;
	}
	if (rq->auth_user == NULL || rq->auth_user[0] == '\0') {
		answer_now(s, c, rq, RINGRAFT__KV__CODE__UNAUTHENTICATED,
			   "authentication required: give a user and password (kvctl --user NAME)");
		return true;
	}
	size_t slot = 0;
	while (slot < AUTH_CHECKS_MAX && auth_checks[slot] != NULL)
		slot++;
	if (slot == AUTH_CHECKS_MAX) {
		answer_now(s, c, rq, RINGRAFT__KV__CODE__BUSY,
			   "busy: too many logins being checked, not applied");
		return true;
	}
	struct auth_check *a = calloc(1, sizeof *a);
	if (a == NULL) {
		answer_now(s, c, rq, RINGRAFT__KV__CODE__UNAVAILABLE, "out of memory");
		return true;
	}
	a->s = s;
	a->c = c;
	a->rq = rq;
	a->found = node_auth_lookup(s->n, rq->auth_user, &a->u) == 0;
	if (!a->found) {
		a->u.role = KV_USER_RO;
		a->u.iterations = KV_USER_ITERATIONS;
	}
	a->work.data = a;
	if (uv_queue_work(&s->loop, &a->work, auth_check_cb, auth_checked_cb) != 0) {
		free(a);
		answer_now(s, c, rq, RINGRAFT__KV__CODE__UNAVAILABLE, "cannot check the password");
		return true;
	}
	auth_checks[slot] = a;
	net_conn_ref(c);
	net_conn_set_auth(c, AUTH_PENDING);
	return true;
}

/* The same check for the RESP port (resp.c: AUTH, HELLO ... AUTH). */
struct pw_check {
	uv_work_t work;
	struct kv_user u;
	bool found, ok;
	uint8_t pw[KV_USER_PASSWORD_MAX];
	size_t len;
	void (*done)(void *arg, int role);
	void *arg;
};

static int pw_checks_running;

static void pw_check_cb(uv_work_t *w)
{
	struct pw_check *k = w->data;
	k->ok = kv_user_password_ok(&k->u, k->pw, k->len) && k->found;
}

static void pw_checked_cb(uv_work_t *w, int status)
{
	struct pw_check *k = w->data;
	pw_checks_running--;
	k->done(k->arg, status == 0 && k->ok ? k->u.role : 0);
	memset(k->pw, 0, sizeof k->pw);
	free(k);
}

int node_shell_password_check(struct node_shell *s, const char *user, const void *pw, size_t len,
			      void (*done)(void *arg, int role), void *arg)
{
	if (pw_checks_running >= AUTH_CHECKS_MAX)
		return -1;
	struct pw_check *k = calloc(1, sizeof *k);
	if (k == NULL)
		return -1;
	k->found = node_auth_lookup(s->n, user, &k->u) == 0 && len <= sizeof k->pw;
	if (!k->found) { /* a made-up record: the same cost as a wrong password */
		k->u.role = KV_USER_RO;
		k->u.iterations = KV_USER_ITERATIONS;
	}
	k->len = len <= sizeof k->pw ? len : 0;
	memcpy(k->pw, pw, k->len);
	k->done = done;
	k->arg = arg;
	k->work.data = k;
	if (uv_queue_work(&s->loop, &k->work, pw_check_cb, pw_checked_cb) != 0) {
		free(k);
		return -1;
	}
	pw_checks_running++;
	return 0;
}

static int on_client_request(void *arg, struct net_conn *c, const uint8_t *p, size_t len)
{
	struct node_shell *s = arg;
	Ringraft__Kv__Request *rq = ringraft__kv__request__unpack(NULL, len, p);
	if (rq == NULL) {
		node_log(NODE_LOG_INFO, 0, "undecodable client request bytes=%zu", len);
		return -1;
	}
	if (!auth_gate(s, c, rq))
		submit_request(s, c, rq);
	return 0;
}

static void submit_request(struct node_shell *s, struct net_conn *c, Ringraft__Kv__Request *rq)
{
	uint32_t bytes = node_request_bytes(rq);
	const char *busy = conn_over_bound(s, c, rq, bytes);
	struct client_req *cr = busy ? NULL : malloc(sizeof *cr);
	if (cr == NULL) {
		/* Answered here, at once: the engine never sees it. */
		Ringraft__Kv__Response resp = RINGRAFT__KV__RESPONSE__INIT;
		resp.id = rq->id;
		resp.code = busy ? RINGRAFT__KV__CODE__BUSY : RINGRAFT__KV__CODE__UNAVAILABLE;
		resp.error = busy ? (char *)busy : "out of memory";
		uint64_t now = node_metrics_now_ns();
		node_metrics_request_done(node_metrics_of(s->n), rq->op, resp.code, now, now);
		ringraft__kv__request__free_unpacked(rq, NULL);
		net_conn_send(c, &resp.base);
		net_conn_request_done(c);
		return;
	}
	cr->c = c;
	cr->bytes = bytes;
	net_conn_ref(c);
	net_conn_hold_bytes(c, bytes);
	/* a read may be answered from a lease at once; also after an authentication check,
	 * which ends in a callback of its own */
	node_shell_catch_up_ticks(s);
	node_submit(s->n, rq, client_reply, cr);
}

/* ------------------------------------------------------------------------------ peers */

static void peer_up_cb(void *arg, uint64_t id, const char *client_addr, uint64_t incarnation)
{
	struct node_shell *s = arg;
	if (node_peer_up(s->n, id, client_addr, incarnation) &&
	    node_addrbook_save(node_addrbook_of(s->n), node_config_of(s->n)) != 0)
		node_log(NODE_LOG_WARN, 0, "cannot save peers.conf error=\"%s\"", strerror(errno));
}

static void peer_down_cb(void *arg, uint64_t id)
{
	struct node_shell *s = arg;
	node_peer_down(s->n, id);
}

static void peer_log_cb(void *arg, int level, uint64_t peer, const char *msg)
{
	(void)arg;
	node_log(level, 0, "%s peer=%llu", msg, (unsigned long long)peer);
}

static void peer_frame_cb(void *arg, uint64_t from, const Ringraft__Raft__PeerFrame *f)
{
	struct node_shell *s = arg;
	node_shell_catch_up_ticks(s);
	node_peer_frame(s->n, from, f);
}

static void server_log_cb(void *arg, int level, const char *msg)
{
	(void)arg;
	node_log(level, 0, "%s", msg);
}

/* ------------------------------------------------------------------------------ the loop */

/* The cores' time has two parts (raft/raft.h, raft_tick). Their timers get one tick per timer
 * callback however late it runs, with or without leases: after a stall, a follower reads the
 * heartbeats waiting in its socket before its election timer runs out. Leader leases
 * (raft/lease.c) need a leader's clock to keep pace with real time, so with leases the clock
 * is advanced here to the ticks due by the monotonic clock, from the timer and before any
 * request or peer message is handled (after a stall or a SIGSTOP, the loop's I/O callbacks
 * may run before its timers). Due ticks are rounded down: the clock never runs ahead of real
 * time. One uv_hrtime() per call; a gap of any length (a suspended machine) is one advance. */
void node_shell_catch_up_ticks(struct node_shell *s)
{
	if (!s->catch_up)
		return; /* no leases: node_tick moves the clock with the timers, as it always did */
	uint64_t due = (uv_hrtime() - s->tick_origin_ns) / s->tick_ns;
	if (due > s->clock_ticks) {
		node_advance_clock(s->n, due - s->clock_ticks);
		s->clock_ticks = due;
	}
}

static void tick_cb(uv_timer_t *t)
{
	struct node_shell *s = t->data;
	if (s->catch_up) {
		node_shell_catch_up_ticks(s);
		node_tick_timers(s->n);
	} else {
		node_tick(s->n);
	}
}

static void turn_cb(struct node_shell *s)
{
	node_shell_catch_up_ticks(s);
	node_process(s->n);
	/* Each inline write ends with a turn that may hand over the next batch (entries that
	 * arrived meanwhile are still in the sockets: at most one batch per received turn). */
	while (s->inline_todo != NULL)
		wal_write_inline(s);
	if (node_draining(s->n) && !s->stopped && write_idle(s)) {
		s->stopped = true;
		node_log(NODE_LOG_INFO, 0, "stopped: pending writes are durable");
		uv_stop(&s->loop);
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

static void stop_begin(struct node_shell *s)
{
	net_server_stop_accepting(s->server);
	node_resp_stop_accepting(s);
	node_stop(s->n);
	uv_timer_start(&s->stop_poll, stop_poll_cb, 5, 5);
}

static void signal_cb(uv_signal_t *h, int signum)
{
	struct node_shell *s = h->data;
	if (node_stopping(s->n))
		return;
	node_log(NODE_LOG_WARN, 0, "stopping signal=%s", signum == SIGTERM ? "SIGTERM" : "SIGINT");
	stop_begin(s);
}

/* The cluster map changed (node/members.c): new members are dialled, removed ones forgotten,
 * the map saved for the next start; a node that learns it was removed stops. */
static void io_members_changed(void *arg, bool self_removed)
{
	struct node_shell *s = arg;
	if (s->n == NULL)
		return; /* read at open (node_engine_open): open_ports declares every member */
	const struct node_config *cfg = node_config_of(s->n);
	for (size_t i = 0; s->peers != NULL && i < cfg->n_members; i++) {
		const struct node_member *m = &cfg->members[i];
		if (m->id == cfg->id)
			continue;
		if (m->removed)
			net_peers_forget(s->peers, m->id);
		else if (!net_peers_known(s->peers, m->id) &&
			 net_peers_add_live(s->peers, m->id, m->peer_addr) != NET_OK)
			node_log(NODE_LOG_ERROR, 0, "cannot add peer id=%llu addr=%s",
				 (unsigned long long)m->id, m->peer_addr);
	}
	if (node_memberfile_save(cfg->data_dir, s->n) != 0)
		node_log(NODE_LOG_WARN, 0, "cannot save members.conf error=\"%s\"",
			 strerror(errno));
	if (self_removed && s->peers != NULL && !node_stopping(s->n)) {
		node_log(NODE_LOG_ERROR, 0, "stopping: this node was removed from the cluster");
		stop_begin(s);
	}
}

/* Client authentication's state changed (node/auth.c): saved for the next start. */
static void io_auth_changed(void *arg)
{
	struct node_shell *s = arg;
	const char *dir = s->cfg.data_dir;
	if (s->n != NULL && node_authfile_save(dir, s->n) != 0)
		node_log(NODE_LOG_ERROR, 0, "cannot save auth.state error=\"%s\"", strerror(errno));
}

/* ------------------------------------------------------------------------------ lifecycle */

static int make_dir(const char *path)
{
	if (mkdir(path, 0755) != 0 && errno != EEXIST) {
		node_log(NODE_LOG_ERROR, 0, "cannot create directory path=%s error=\"%s\"", path,
			 strerror(errno));
		return NODE_ESTORE;
	}
	return NODE_OK;
}

static int fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

/* Removes a set-aside environment (a flat directory: data.mdb, lock.mdb, kv.state, staging
 * files). Returns 0, or -1 with errno. */
static int remove_flat_dir(const char *path)
{
	DIR *d = opendir(path);
	if (d == NULL)
		return -1;
	struct dirent *e;
	int rc = 0;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		char f[NODE_PATH_MAX + 600];
		snprintf(f, sizeof f, "%s/%s", path, e->d_name);
		if (unlink(f) != 0)
			rc = -1;
	}
	closedir(d);
	return rc == 0 ? rmdir(path) : -1;
}

/* After a machine crash (KV_EUNSAFE) with --auto-repair on: the untrusted LMDB environment is
 * renamed to kv.untrusted-<UTC time> (nothing of it is deleted; an older set-aside one is, so
 * that at most one stays) and an empty kv/ made in its place. The engine is told
 * (kv_set_aside): every group is rebuilt from the WAL where its log still starts at index 1,
 * from its peers as a recovering replica otherwise (node/restore.c, docs/DURABILITY.md). */
static int set_aside_kv(struct node_shell *s, const char *kv_dir)
{
	const char *data_dir = s->cfg.data_dir;
	DIR *d = opendir(data_dir);
	if (d == NULL) {
		node_log(NODE_LOG_ERROR, 0, "cannot read the data directory dir=%s error=\"%s\"",
			 data_dir, strerror(errno));
		return NODE_ESTORE;
	}
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, "kv.untrusted-", 13) != 0)
			continue;
		char old[NODE_PATH_MAX + 300];
		snprintf(old, sizeof old, "%s/%s", data_dir, e->d_name);
		if (remove_flat_dir(old) != 0)
			node_log(NODE_LOG_WARN, 0,
				 "cannot remove an older set-aside state machine path=%s "
				 "error=\"%s\"",
				 old, strerror(errno));
		else
			node_log(NODE_LOG_WARN, 0,
				 "removed an older set-aside state machine (at most one is kept) "
				 "path=%s",
				 old);
	}
	closedir(d);
	char stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
	char aside[NODE_PATH_MAX + 64];
	snprintf(aside, sizeof aside, "%s/kv.untrusted-%s", data_dir, stamp);
	if (rename(kv_dir, aside) != 0 || make_dir(kv_dir) != NODE_OK || fsync_dir(data_dir) != 0) {
		node_log(NODE_LOG_ERROR, 0,
			 "cannot set the untrusted state machine aside from=%s to=%s error=\"%s\"",
			 kv_dir, aside, strerror(errno));
		return NODE_ESTORE;
	}
	node_log(NODE_LOG_ERROR, 0,
		 "the machine went down while LMDB had unsynced commits: its state machine is "
		 "untrusted and was set aside (not deleted) path=%s; a fresh one is rebuilt: "
		 "groups whose WAL log starts at index 1 replay it, the others recover from their "
		 "peers without voting or serving until a leader has brought them back "
		 "(--auto-repair on, docs/DURABILITY.md)",
		 aside);
	s->cfg.kv_set_aside = true;
	return NODE_OK;
}

/* After a machine crash (KV_EUNSAFE) with --auto-repair on, first: LMDB is rolled back to its
 * last checkpoint (kv_rollback: a synced version whose pages no later commit overwrote, and
 * whose saved meta page is written back), opened, and checked against the applied indexes
 * the checkpoint recorded. Every group is then a replica that restarted after a process crash
 * with an older state machine: the WAL replays what follows (its compaction never went past a
 * checkpoint), nothing forgotten, so it votes and serves as usual (docs/DURABILITY.md). Any
 * refusal leaves the environment as it was, and the caller sets it aside (set_aside_kv). */
static int rollback_kv(struct node_shell *s, const char *kv_dir, const struct kv_options *ko)
{
	struct kv_rollback_info info;
	char why[256];
	int rc = kv_rollback(kv_dir, &info, why, sizeof why);
	if (rc != KV_OK) {
		node_log(NODE_LOG_ERROR, 0,
			 "the machine went down while LMDB had unsynced commits and it cannot be "
			 "rolled back to a checkpoint: %s; setting it aside instead",
			 why);
		return NODE_ESTORE;
	}
	rc = kv_open(kv_dir, ko, &s->kv);
	if (rc != KV_OK) {
		node_log(NODE_LOG_ERROR, 0,
			 "LMDB rolled back to its checkpoint txn=%llu does not open error=\"%s\": "
			 "setting it aside",
			 (unsigned long long)info.txnid, kv_strerror(rc));
		return NODE_ESTORE;
	}
	for (uint32_t g = 1; g <= info.n_groups; g++) {
		struct kv_group_meta m;
		rc = kv_meta(s->kv, g, &m);
		if (rc != KV_OK || m.applied_index != info.applied[g - 1]) {
			node_log(NODE_LOG_ERROR, g,
				 "LMDB rolled back to its checkpoint txn=%llu does not hold the "
				 "group's applied index the checkpoint recorded (%llu, found %llu, "
				 "error=\"%s\"): setting it aside",
				 (unsigned long long)info.txnid,
				 (unsigned long long)info.applied[g - 1],
				 (unsigned long long)m.applied_index, kv_strerror(rc));
			kv_close(s->kv);
			s->kv = NULL;
			return NODE_ESTORE;
		}
	}
	char groups[KV_GROUPS_MAX * 24 + 1] = "";
	size_t off = 0;
	for (uint32_t g = 1; g <= info.n_groups && off < sizeof groups; g++)
		off += (size_t)snprintf(groups + off, sizeof groups - off, "%s%u:%llu",
					g > 1 ? "," : "", g,
					(unsigned long long)info.applied[g - 1]);
	node_log(NODE_LOG_WARN, 0,
		 "the machine went down while LMDB had unsynced commits: rolled it back to its "
		 "last checkpoint txn=%llu applied=%s; the WAL replays every group from there "
		 "(--auto-repair on, docs/DURABILITY.md)",
		 (unsigned long long)info.txnid, info.n_groups ? groups : "-");
	return NODE_OK;
}

/* The WAL (salvaging: damaged groups are rebuilt from their peers) and LMDB of the data dir. */
static int open_stores(struct node_shell *s)
{
	const struct node_config *cfg = &s->cfg;
	char wal_dir[NODE_PATH_MAX + 8], kv_dir[NODE_PATH_MAX + 8];
	snprintf(wal_dir, sizeof wal_dir, "%s/wal", cfg->data_dir);
	snprintf(kv_dir, sizeof kv_dir, "%s/kv", cfg->data_dir);
	if (make_dir(wal_dir) < 0 || make_dir(kv_dir) < 0)
		return NODE_ESTORE;
	char ierr[NODE_PATH_MAX + 256];
	bool fresh_dir = false;
	if (node_incarnation_load(cfg->data_dir, &s->incarnation, &fresh_dir, ierr, sizeof ierr) <
	    0) {
		node_log(NODE_LOG_ERROR, 0, "%s", ierr);
		return NODE_ESTORE;
	}
	node_log(fresh_dir ? NODE_LOG_WARN : NODE_LOG_INFO, 0,
		 "data directory incarnation=%016llx%s", (unsigned long long)s->incarnation,
		 fresh_dir ? " (new)" : "");
	struct wal_options wo;
	wal_options_default(&wo);
	wo.no_sync = cfg->wal_no_sync;
	wo.no_direct_io = cfg->wal_no_direct_io;
	/* For tests only: smaller segments, so that a short run compacts the WAL (the log of a
	 * group then no longer starts at index 1: tests/powercut/cut_one.sh --small-wal). */
	const char *seg = getenv("RINGRAFT_TEST_WAL_SEGMENT_BYTES");
	if (seg != NULL && seg[0] != '\0') {
		char *end;
		unsigned long long b = strtoull(seg, &end, 10);
		if (*end != '\0' || b < 65536 || b > WAL_SEGMENT_BYTES) {
			node_log(NODE_LOG_ERROR, 0,
				 "RINGRAFT_TEST_WAL_SEGMENT_BYTES=%s is not a size in 65536..%llu "
				 "(it is for tests only: unset it)",
				 seg, (unsigned long long)WAL_SEGMENT_BYTES);
			return NODE_ECONFIG;
		}
		wo.segment_bytes = b;
	}
	struct wal_corruption corr;
	memset(&corr, 0, sizeof corr);
	int rc = wal_open(wal_dir, &wo, true, &s->wal, &corr);
	if (rc == WAL_OK && corr.reason[0] != '\0')
		node_log(NODE_LOG_ERROR, corr.group_known ? (uint32_t)corr.group : 0,
			 "WAL damaged: the groups concerned are rebuilt from their peers "
			 "segment=%s offset=%llu reason=\"%s\"",
			 corr.segment, (unsigned long long)corr.offset, corr.reason);
	if (rc == WAL_ENOSPC) /* started on a full disk: the same stop as at run time */
		node_stop_disk_full(NULL, 0, "opening the WAL");
	if (rc != WAL_OK) {
		if (rc == WAL_ELOCKED)
			node_log(NODE_LOG_ERROR, 0, "the data dir is in use by another kvd dir=%s",
				 cfg->data_dir);
		else
			node_log(NODE_LOG_ERROR, 0, "cannot open the WAL dir=%s error=\"%s\"",
				 wal_dir, wal_strerror(rc));
		return NODE_ESTORE;
	}
	struct kv_options ko;
	kv_options_default(&ko);
	ko.value_max = cfg->value_max;
	ko.groups_max = node_group_id_max(cfg->groups); /* + the meta group, + added groups */
	ko.sync_commits = cfg->kv_sync;
	rc = kv_open(kv_dir, &ko, &s->kv);
	if (rc == KV_EUNSAFE && !cfg->auto_repair)
		node_log(NODE_LOG_ERROR, 0,
			 "the machine went down while LMDB had unsynced commits and --auto-repair "
			 "is off: the node does not start; rebuild this replica from its peers "
			 "(docs/DURABILITY.md)");
	if (rc == KV_EUNSAFE && cfg->auto_repair && rollback_kv(s, kv_dir, &ko) == NODE_OK)
		rc = KV_OK;
	else if (rc == KV_EUNSAFE && cfg->auto_repair && set_aside_kv(s, kv_dir) == NODE_OK)
		rc = kv_open(kv_dir, &ko, &s->kv);
	if (rc == KV_ENOSPC)
		node_stop_disk_full(NULL, 0, "opening LMDB");
	if (rc != KV_OK) {
		node_log(NODE_LOG_ERROR, 0, "cannot open LMDB dir=%s error=\"%s\"", kv_dir,
			 kv_strerror(rc));
		return NODE_ESTORE;
	}
	/* kvd --restore (node/backup_load.c): before the engine reads the stores */
	if (node_backup_pending_check(cfg->data_dir) != NODE_OK)
		return NODE_ESTORE;
	if (cfg->restore_file[0] != '\0')
		return node_backup_restore(cfg, s->wal, s->kv);
	return NODE_OK;
}

static bool addr_is_loopback(const char *addr)
{
	struct sockaddr_storage sa;
	if (net_parse_addr(addr, &sa) != NET_OK)
		return false;
	if (sa.ss_family == AF_INET)
		return (ntohl(((struct sockaddr_in *)&sa)->sin_addr.s_addr) >> 24) == 127;
	return sa.ss_family == AF_INET6 &&
	       IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&sa)->sin6_addr);
}

/* TLS on every port when the three files are given (docs/SECURITY.md); otherwise plaintext,
 * said loudly for every port reachable from another machine. */
static int open_tls(struct node_shell *s)
{
	const struct node_config *cfg = &s->cfg;
	if (cfg->tls_cert[0] == '\0') {
		const char *ports[][2] = {{"peer", cfg->peer_addr},
					  {"client", cfg->client_addr},
					  {"resp", cfg->resp_addr}};
		for (size_t i = 0; i < sizeof ports / sizeof ports[0]; i++)
			if (ports[i][1][0] != '\0' && !addr_is_loopback(ports[i][1]))
				node_log(
					NODE_LOG_WARN, 0,
					"PLAINTEXT on a non-loopback address: anyone who can reach "
					"it can read and write every key (and speak Raft on the "
					"peer port); use --tls-cert/--tls-key/--tls-ca "
					"port=%s addr=%s",
					ports[i][0], ports[i][1]);
		return NODE_OK;
	}
	char err[512];
	struct net_tls_files f = {cfg->tls_cert, cfg->tls_key, cfg->tls_ca};
	s->tls = net_tls_ctx_new(&f, err, sizeof err);
	if (s->tls == NULL) {
		node_log(NODE_LOG_ERROR, 0, "cannot set up TLS error=\"%s\"", err);
		return NODE_ECONFIG;
	}
	node_log(NODE_LOG_INFO, 0, "TLS on cert=%s ca=%s client_cert_auth=%s", cfg->tls_cert,
		 cfg->tls_ca, cfg->client_cert_auth ? "on" : "off");
	return NODE_OK;
}

static int open_ports(struct node_shell *s)
{
	const struct node_config *cfg = &s->cfg;
	int rc = open_tls(s);
	if (rc != NODE_OK)
		return rc;
	struct net_peers_cbs pc = {peer_frame_cb, peer_up_cb, peer_down_cb, peer_log_cb};
	if (net_peers_new(&s->loop, cfg->id, cfg->cluster_id, cfg->peer_addr, cfg->client_addr, &pc,
			  s, &s->peers) != NET_OK)
		return NODE_ENOMEM;
	net_peers_set_incarnation(s->peers, s->incarnation);
	if (s->tls != NULL)
		net_peers_set_tls(s->peers, s->tls);
	if (cfg->peer_secret_file[0] != '\0') {
		static struct net_peer_secrets secrets; /* wiped once copied */
		char err[NODE_PATH_MAX + 256];
		if (node_peer_secret_load(cfg->peer_secret_file, &secrets, err, sizeof err) !=
		    NODE_OK) {
			node_log(NODE_LOG_ERROR, 0, "cannot load the peer secret error=\"%s\"",
				 err);
			return NODE_ECONFIG;
		}
		net_peers_set_secrets(s->peers, &secrets);
		node_log(NODE_LOG_INFO, 0, "peer authentication on file=%s secrets=%zu",
			 cfg->peer_secret_file, secrets.n);
		net_peer_secrets_clear(&secrets);
	} else if (!addr_is_loopback(cfg->peer_addr)) {
		node_log(NODE_LOG_WARN, 0,
			 "peer port without --peer-secret-file: whoever can reach it and knows the "
			 "member list can speak Raft to this node%s addr=%s",
			 s->tls != NULL ? " if it holds a certificate of --tls-ca" : "",
			 cfg->peer_addr);
	}
	/* every member the map names (bootstrap ones and those added since), removed ones
	 * declared and marked (dialled rarely, to be told they were removed) */
	const struct node_config *map = node_config_of(s->n);
	for (size_t i = 0; i < map->n_members; i++) {
		const struct node_member *m = &map->members[i];
		if (m->id == cfg->id)
			continue;
		if (net_peers_add(s->peers, m->id, m->peer_addr) != NET_OK)
			return NODE_ECONFIG;
		if (m->removed)
			net_peers_forget(s->peers, m->id);
	}
	if (net_peers_start(s->peers) != NET_OK) {
		node_log(NODE_LOG_ERROR, 0, "cannot listen for peers addr=%s", cfg->peer_addr);
		return NODE_ELISTEN;
	}
	struct net_server_cbs sc = {on_client_request, server_log_cb};
	if (net_server_new(&s->loop, cfg->client_addr, &sc, s, &s->server) != NET_OK)
		return NODE_ENOMEM;
	if (s->tls != NULL)
		net_server_set_tls(s->server, s->tls, cfg->client_cert_auth);
	if (net_server_start(s->server) != NET_OK) {
		node_log(NODE_LOG_ERROR, 0, "cannot listen for clients addr=%s", cfg->client_addr);
		return NODE_ELISTEN;
	}
	if (node_resp_open(s) < 0)
		return NODE_ELISTEN;
	return NODE_OK;
}

int node_open(const struct node_config *cfg, struct node_shell **out)
{
	struct node_shell *s = calloc(1, sizeof *s);
	*out = s; /* even on failure: node_close frees what was made */
	if (s == NULL)
		return NODE_ENOMEM;
	s->cfg = *cfg;
	node_log_init(cfg->id, cfg->log_level);
	raise_nofile();
	if (uv_loop_init(&s->loop) != 0)
		return NODE_EINIT;
	int rc = open_stores(s);
	if (rc != NODE_OK)
		return rc;
	struct node_io io = {
		.arg = s,
		.seed = uv_hrtime() ^ (uint64_t)getpid() << 32,
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
		.auth_changed = io_auth_changed,
	};
	rc = node_engine_open(&s->cfg, &io, s->wal, s->kv, s->incarnation, &s->n);
	if (rc != NODE_OK)
		return rc;
	(void)node_memberfile_load(cfg->data_dir, s->n);
	(void)node_authfile_load(cfg->data_dir, s->n);
	io_auth_changed(s); /* what the meta replica here said at open, if anything */
	const struct node_config *map = node_config_of(s->n);
	int me = node_config_member_index(map, cfg->id);
	if (me >= 0 && map->members[me].removed) {
		node_log(NODE_LOG_ERROR, 0,
			 "this node was removed from the cluster (members.conf): its data directory "
			 "does not rejoin; add a new node with a new id (kvctl member add)");
		return NODE_ECONFIG;
	}
	node_addrbook_load(node_addrbook_of(s->n), map);
	if ((rc = open_ports(s)) != NODE_OK)
		return rc;
	if (wal_writer_start(s) != NODE_OK) {
		node_log(NODE_LOG_ERROR, 0, "cannot start the WAL writer thread");
		return NODE_EINIT;
	}
	if (node_metrics_endpoint_open(s) < 0)
		return NODE_ELISTEN;
	uv_timer_init(&s->loop, &s->tick);
	s->tick.data = s;
	s->tick_origin_ns = uv_hrtime();
	s->tick_ns = (uint64_t)cfg->tick_ms * 1000000u;
	s->clock_ticks = 0;
	/* Only leases need the clock to keep pace with real time (node_shell_catch_up_ticks). */
	s->catch_up = cfg->lease_reads;
	uv_timer_start(&s->tick, tick_cb, cfg->tick_ms, cfg->tick_ms);
	uv_timer_init(&s->loop, &s->stop_poll);
	s->stop_poll.data = s;
	uv_prepare_init(&s->loop, &s->prepare);
	s->prepare.data = s;
	uv_prepare_start(&s->prepare, prepare_cb);
	uv_check_init(&s->loop, &s->check);
	s->check.data = s;
	uv_check_start(&s->check, check_cb);
	uv_signal_init(&s->loop, &s->sigterm);
	s->sigterm.data = s;
	uv_signal_start(&s->sigterm, signal_cb, SIGTERM);
	uv_signal_init(&s->loop, &s->sigint);
	s->sigint.data = s;
	uv_signal_start(&s->sigint, signal_cb, SIGINT);
	node_log(NODE_LOG_WARN, 0,
		 "started peer_addr=%s client_addr=%s groups=%u nodes=%zu election_ms=%u "
		 "heartbeat_ms=%u",
		 cfg->peer_addr, cfg->client_addr, cfg->groups, cfg->n_members, cfg->election_ms,
		 cfg->heartbeat_ms);
	s->started_ms = node_shell_now_ms();
	maybe_prepare_wal(s); /* at once only if the active segment is half used */
	return NODE_OK;
}

static void close_walk_cb(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h) && h->type != UV_TCP)
		uv_close(h, NULL);
}

int node_run(struct node_shell *s)
{
	uv_run(&s->loop, UV_RUN_DEFAULT);
	/* Stopped: close every handle, let the close callbacks run, then free. */
	net_peers_close(s->peers, NULL, NULL);
	s->peers = NULL;
	net_server_close(s->server);
	node_resp_close(s);
	uv_walk(&s->loop, close_walk_cb, NULL);
	uv_run(&s->loop, UV_RUN_DEFAULT);
	net_server_free(s->server);
	s->server = NULL;
	node_resp_free(s);
	if (uv_loop_close(&s->loop) != 0)
		node_log(NODE_LOG_WARN, 0, "loop closed with handles open");
	return 0;
}

void node_close(struct node_shell *s)
{
	if (s == NULL)
		return;
	node_metrics_endpoint_close(s);
	wal_writer_stop(s);
	node_engine_close(s->n);
	kv_close(s->kv);
	wal_close(s->wal);
	SSL_CTX_free(s->tls);
	free(s);
}
