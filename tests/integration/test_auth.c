/* test_auth.c — peer authentication (--peer-secret-file; issue 22): a 3-node cluster whose
 * peers prove the shared secret serves kvctl; a stranger speaking the peer protocol as node 1
 * (raw frames with a forged proof, frames before any proof, a Hello without a nonce) and a kvd
 * posing as node 1 with the wrong secret or none are refused with the reason logged and counted
 * in ringraft_peer_auth_refused_total, and no group's term or leader moves; nodes holding
 * "new\nold" interoperate with nodes holding only "old" (rotation), and a rotation step by
 * restart refuses nothing; the secret works inside TLS; kvd refuses to start on a bad secret
 * file, saying why. Run from the repository root (scripts/tls-certs), as make test does.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kv/user.h"
#include "net/frame.h"
#include "net/peer_auth.h"
#include "node/config.h"
#include "proto/raft.pb-c.h"
#include "tests/integration/cluster.h"
#include "tests/integration/resp_helper.h"

#define SECRET       "the-cluster-secret-0123456789abcdef"
#define WRONG_SECRET "not-the-secret-at-all-0123456789"
#define OLD_SECRET   "old-secret-0123456789abcdef"
#define NEW_SECRET   "new-secret-fedcba9876543210"
#define GROUPS       4

static char root[256];    /* everything this test writes */
static char secrets[300]; /* secret1..3 of the cluster under test */
static char certs[300];   /* scripts/tls-certs DIR node1 node2 node3 client */
static struct cluster *c;

/* ------------------------------------------------------------------------------ helpers */

static const char *bin(void)
{
	const char *b = getenv("RINGRAFT_BIN");
	return b && *b ? b : "bin";
}

static void write_file(const char *path, const char *content, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	size_t n = strlen(content);
	ck_assert_int_eq(write(fd, content, n), (ssize_t)n);
	ck_assert_int_eq(fchmod(fd, mode), 0);
	close(fd);
}

static void write_secret(int node, const char *content)
{
	char path[400];
	snprintf(path, sizeof path, "%s/secret%d", secrets, node);
	write_file(path, content, 0600);
}

static char *kvctl(int node, const char *flags, const char *args, int *status)
{
	char cmd[2048];
	snprintf(cmd, sizeof cmd,
		 "env -u RINGRAFT_TLS_CA %s/kvctl --endpoints %s --timeout 5s %s %s 2>&1", bin(),
		 cluster_client_addr(c, node), flags, args);
	return rh_run_status(cmd, status);
}

/* kvctl put through node `via`, get through every node: the cluster serves. */
static void serves(const char *flags, const char *key, const char *value, int via)
{
	char args[256];
	int st;
	snprintf(args, sizeof args, "put %s %s", key, value);
	char *out = kvctl(via, flags, args, &st);
	ck_assert_msg(st == 0, "kvctl put through node %d: exit %d: %s", via, st, out);
	free(out);
	for (int n = 1; n <= 3; n++) {
		if (!cluster_running(c, n))
			continue;
		snprintf(args, sizeof args, "get %s", key);
		out = kvctl(n, flags, args, &st);
		ck_assert_msg(st == 0 && strcmp(out, value) == 0,
			      "kvctl get through node %d: exit %d: [%s]", n, st, out);
		free(out);
	}
}

/* The value of ringraft_peer_auth_refused_total{reason=...} on node (-1: not scraped). */
static long refused_metric(int node, const char *reason)
{
	char cmd[512];
	snprintf(cmd, sizeof cmd,
		 "curl -s --max-time 3 http://%s/metrics | "
		 "grep '^ringraft_peer_auth_refused_total{reason=\"%s\"}' | cut -d' ' -f2",
		 cluster_metrics_addr(c, node), reason);
	char *out = rh_run(cmd);
	long v = out[0] ? strtol(out, NULL, 10) : -1;
	free(out);
	return v;
}

/* Waits (bounded) until the metric reaches at least want on node. */
static long refused_metric_reaches(int node, const char *reason, long want, int timeout_ms)
{
	uint64_t end = cluster_now_ms() + (uint64_t)timeout_ms;
	long v;
	while ((v = refused_metric(node, reason)) < want && cluster_now_ms() < end)
		usleep(100 * 1000);
	return v;
}

/* Waits (bounded) until node's log has more than `before` lines containing needle. */
static bool log_grows(int node, const char *needle, int before, int timeout_ms)
{
	return cluster_wait_log(c, node, needle, before + 1, timeout_ms);
}

/* Every group's term and leader as every node sees them. */
struct view {
	uint64_t term[CLUSTER_NODES][GROUPS + 2], leader[CLUSTER_NODES][GROUPS + 2];
};

static void view_take(struct view *v)
{
	memset(v, 0, sizeof *v);
	for (int n = 1; n <= 3; n++) {
		if (!cluster_running(c, n))
			continue;
		Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
		rq.op = RINGRAFT__KV__OP__STATUS;
		Ringraft__Kv__Response *rs = NULL;
		ck_assert_msg(cluster_call(c, n, &rq, &rs, 3000) == 0 && rs->status != NULL,
			      "STATUS of node %d", n);
		for (size_t i = 0; i < rs->status->n_groups; i++) {
			const Ringraft__Kv__GroupStatus *g = rs->status->groups[i];
			ck_assert_uint_lt(g->group, GROUPS + 2);
			v->term[n - 1][g->group] = g->term;
			v->leader[n - 1][g->group] = g->leader;
		}
		ringraft__kv__response__free_unpacked(rs, NULL);
	}
}

/* No group changed term or leader on any node since `before`. */
static void view_unchanged(const struct view *before, const char *after_what)
{
	struct view now;
	view_take(&now);
	for (int n = 0; n < CLUSTER_NODES; n++)
		for (int g = 1; g < GROUPS + 2 && cluster_running(c, n + 1); g++) {
			ck_assert_msg(now.term[n][g] == before->term[n][g],
				      "after %s: node %d group %d term %llu -> %llu", after_what,
				      n + 1, g, (unsigned long long)before->term[n][g],
				      (unsigned long long)now.term[n][g]);
			ck_assert_msg(now.leader[n][g] == before->leader[n][g],
				      "after %s: node %d group %d leader %llu -> %llu", after_what,
				      n + 1, g, (unsigned long long)before->leader[n][g],
				      (unsigned long long)now.leader[n][g]);
		}
}

/* ------------------------------------------------------------------------------ raw peer */

static void send_peer_frame(int fd, const Ringraft__Raft__PeerFrame *f)
{
	size_t n = ringraft__raft__peer_frame__get_packed_size(f);
	uint8_t *b = malloc(NET_FRAME_HEADER + n);
	net_frame_header(b, (uint32_t)n);
	ringraft__raft__peer_frame__pack(f, b + NET_FRAME_HEADER);
	/* the node may have closed already: a short send is for the caller to notice */
	(void)send(fd, b, NET_FRAME_HEADER + n, MSG_NOSIGNAL);
	free(b);
}

/* Reads one whole frame within timeout_ms and decodes it (NULL on close, timeout, garbage). */
static Ringraft__Raft__PeerFrame *read_peer_frame(int fd, int timeout_ms)
{
	uint8_t buf[8192];
	size_t len = 0;
	uint64_t end = cluster_now_ms() + (uint64_t)timeout_ms;
	while (cluster_now_ms() < end) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, 50) <= 0)
			continue;
		ssize_t r = recv(fd, buf + len, sizeof buf - len, 0);
		if (r <= 0)
			return NULL;
		len += (size_t)r;
		if (len >= NET_FRAME_HEADER) {
			uint32_t flen = ((uint32_t)buf[0] << 24) | ((uint32_t)buf[1] << 16) |
					((uint32_t)buf[2] << 8) | buf[3];
			if (flen > sizeof buf - NET_FRAME_HEADER)
				return NULL;
			if (len >= NET_FRAME_HEADER + flen)
				return ringraft__raft__peer_frame__unpack(NULL, flen,
									  buf + NET_FRAME_HEADER);
		}
	}
	return NULL;
}

static uint64_t cluster_id_of(int node)
{
	static struct node_config cfg;
	char err[512], dir[600];
	snprintf(dir, sizeof dir, "%s", cluster_data_dir(c, node));
	char *argv[] = {"kvd", "--data-dir", dir, NULL};
	ck_assert_msg(node_config_load(3, argv, &cfg, err, sizeof err) == 0, "%s", err);
	return cfg.cluster_id;
}

/* What a leader of term 1000 would send node `to` for every group: a heartbeat that, if it
 * got through, makes `to` a follower of node 1 in term 1000 (raft/step.c). */
static void send_heartbeats(int fd, uint64_t to)
{
	Ringraft__Raft__Message m[GROUPS + 1], *mp[GROUPS + 1];
	for (int g = 0; g < GROUPS + 1; g++) {
		Ringraft__Raft__Message init = RINGRAFT__RAFT__MESSAGE__INIT;
		m[g] = init;
		m[g].group = (uint64_t)g + 1; /* groups 1..GROUPS and the meta group */
		m[g].type = 7;                /* RAFT_MSG_HEARTBEAT */
		m[g].from = 1;
		m[g].to = to;
		m[g].term = 1000;
		mp[g] = &m[g];
	}
	Ringraft__Raft__PeerFrame f = RINGRAFT__RAFT__PEER_FRAME__INIT;
	f.msgs = mp;
	f.n_msgs = GROUPS + 1;
	send_peer_frame(fd, &f);
}

/* ------------------------------------------------------------------------------ fixtures */

static void start(const char *tls_dir)
{
	struct cluster_opts o;
	cluster_opts_default(&o);
	o.groups = GROUPS;
	o.metrics = true;
	o.resp = true;
	o.election_ms = 1000; /* a loaded machine must not move terms by itself */
	o.heartbeat_ms = 100;
	o.peer_secret_dir = secrets;
	o.tls_dir = tls_dir;
	/* leaders and replicas stay where they are: the test compares them */
	o.extra_args = "--balance-leaders off --auto-balance off";
	c = cluster_start(&o);
	ck_assert_msg(c != NULL, "cluster with a peer secret did not start");
}

static void setup(void)
{
	for (int n = 1; n <= 3; n++)
		write_secret(n, SECRET "\n");
	start(NULL);
}

static void setup_rotation(void)
{
	write_secret(1, NEW_SECRET "\n" OLD_SECRET "\n");
	write_secret(2, NEW_SECRET "\r\n" OLD_SECRET); /* CR LF, no final newline */
	write_secret(3, OLD_SECRET "\n");
	start(NULL);
}

static void setup_tls(void)
{
	for (int n = 1; n <= 3; n++)
		write_secret(n, SECRET "\n");
	start(certs);
}

static void teardown(void)
{
	cluster_teardown(&c);
}

/* ------------------------------------------------------------------------------ tests */

START_TEST(test_cluster_with_secret_serves)
{
	serves("", "auth-k", "auth-v", 1);
	/* every link came up proved: each node saw both others */
	for (int n = 1; n <= 3; n++)
		ck_assert_msg(cluster_log_grep(c, n, "proved=yes") >= 2,
			      "node %d logged %d proved links", n,
			      cluster_log_grep(c, n, "proved=yes"));
	for (int n = 1; n <= 3; n++)
		ck_assert_int_eq(refused_metric(n, "bad-proof"), 0);
}
END_TEST

START_TEST(test_stranger_with_forged_proof_is_refused)
{
	struct view before;
	ck_assert_int_eq(cluster_wait_leaders(c, 10000), 0);
	view_take(&before);
	uint64_t cid = cluster_id_of(2);
	const char *addr = cluster_peer_addr(c, 2);
	int bad_before = cluster_log_grep(c, 2, "peer refused reason=bad-proof accepted");

	/* 1. The whole exchange as node 1, proving with the wrong secret, then heartbeats of
	 * term 1000 for every group. */
	int fd = cluster_dial(addr);
	uint8_t nonce_d[NET_PEER_NONCE_BYTES];
	ck_assert_int_eq(net_peer_nonce(nonce_d), NET_OK);
	Ringraft__Raft__Hello hello = RINGRAFT__RAFT__HELLO__INIT;
	hello.cluster_id = cid;
	hello.node_id = 1;
	hello.client_addr = (char *)cluster_client_addr(c, 1);
	hello.nonce.data = nonce_d;
	hello.nonce.len = sizeof nonce_d;
	Ringraft__Raft__PeerFrame hf = RINGRAFT__RAFT__PEER_FRAME__INIT;
	hf.hello = &hello;
	send_peer_frame(fd, &hf);
	Ringraft__Raft__PeerFrame *reply = read_peer_frame(fd, 3000);
	ck_assert_msg(reply != NULL && reply->hello != NULL, "node 2 did not answer the Hello");
	/* it answered with a nonce and a proof that the cluster's secret verifies (and the
	 * wrong one does not): the exchange is the one the test means to forge */
	ck_assert_uint_eq(reply->hello->nonce.len, NET_PEER_NONCE_BYTES);
	ck_assert_uint_eq(reply->hello->n_proof, 1);
	ck_assert_uint_eq(reply->n_msgs, 0);
	struct net_peer_transcript t = {cid, 1, 2, nonce_d, reply->hello->nonce.data};
	struct net_peer_secrets right = {0}, wrong = {0};
	right.n = wrong.n = 1;
	memcpy(right.s[0].bytes, SECRET, strlen(SECRET));
	right.s[0].len = strlen(SECRET);
	memcpy(wrong.s[0].bytes, WRONG_SECRET, strlen(WRONG_SECRET));
	wrong.s[0].len = strlen(WRONG_SECRET);
	const uint8_t *pr = reply->hello->proof[0].data;
	size_t prl = reply->hello->proof[0].len;
	ck_assert(net_peer_proof_check(&right, NET_PEER_ACCEPTOR, &t, &pr, &prl, 1));
	ck_assert(!net_peer_proof_check(&wrong, NET_PEER_ACCEPTOR, &t, &pr, &prl, 1));
	/* our proofs: one made with the wrong secret, and node 2's own proof sent back (a
	 * reflection: the direction is bound into the proof, so it must not pass either) */
	uint8_t forged[NET_PEER_PROOF_BYTES], reflected[NET_PEER_PROOF_BYTES];
	net_peer_proof(wrong.s[0].bytes, wrong.s[0].len, NET_PEER_DIALLER, &t, forged);
	memcpy(reflected, pr, sizeof reflected);
	ringraft__raft__peer_frame__free_unpacked(reply, NULL);
	ProtobufCBinaryData proofs[2] = {{sizeof forged, forged}, {sizeof reflected, reflected}};
	Ringraft__Raft__Hello second = RINGRAFT__RAFT__HELLO__INIT;
	second.cluster_id = cid;
	second.node_id = 1;
	second.proof = proofs;
	second.n_proof = 2;
	hf.hello = &second;
	send_peer_frame(fd, &hf);
	send_heartbeats(fd, 2);
	ck_assert_msg(cluster_closed_within(fd, 3000),
		      "node 2 kept a connection with a forged proof");
	close(fd);
	view_unchanged(&before, "a forged proof and heartbeats of term 1000");
	ck_assert_msg(log_grows(2, "peer refused reason=bad-proof accepted", bad_before, 3000),
		      "node 2 did not log the bad proof");
	ck_assert_int_ge(refused_metric_reaches(2, "bad-proof", 1, 5000), 1);

	/* 2. Raft frames before any Hello */
	fd = cluster_dial(addr);
	send_heartbeats(fd, 2);
	ck_assert_msg(cluster_closed_within(fd, 3000),
		      "node 2 kept a connection sending frames first");
	close(fd);
	ck_assert_int_ge(refused_metric_reaches(2, "frame-before-proof", 1, 5000), 1);

	/* 3. The Hello of a node without a secret (no nonce), heartbeats in the same frame */
	fd = cluster_dial(addr);
	Ringraft__Raft__Hello plain = RINGRAFT__RAFT__HELLO__INIT;
	plain.cluster_id = cid;
	plain.node_id = 1;
	plain.client_addr = (char *)cluster_client_addr(c, 1);
	hf.hello = &plain;
	send_peer_frame(fd, &hf);
	send_heartbeats(fd, 2);
	ck_assert_msg(cluster_closed_within(fd, 3000), "node 2 kept a connection without a nonce");
	close(fd);
	ck_assert_int_ge(refused_metric_reaches(2, "no-proof", 1, 5000), 1);

	/* 4. The first Hello with a nonce and, in the same frame, Raft messages */
	fd = cluster_dial(addr);
	hf.hello = &hello;
	Ringraft__Raft__Message m = RINGRAFT__RAFT__MESSAGE__INIT;
	m.group = 1;
	m.type = 7;
	m.from = 1;
	m.to = 2;
	m.term = 1000;
	Ringraft__Raft__Message *mp = &m;
	hf.msgs = &mp;
	hf.n_msgs = 1;
	send_peer_frame(fd, &hf);
	ck_assert_msg(cluster_closed_within(fd, 3000),
		      "node 2 kept a Hello carrying Raft messages");
	close(fd);
	ck_assert_int_ge(refused_metric_reaches(2, "frame-before-proof", 2, 5000), 2);

	/* nothing of it reached Raft: same terms, same leaders, and the cluster serves */
	view_unchanged(&before, "forged peer frames");
	serves("", "after-forgery", "served", 2);
}
END_TEST

/* Runs a kvd posing as node 1 (the cluster's member list and node 1's peer address, which is
 * free: node 1 is down; its own data directory and client address) with the given secret file
 * (NULL: none) until nodes 2 and 3 each logged `needle` once more than before, and at least
 * 3 s (ten of its election timeouts); returns its log path in log (stdout and stderr). */
static bool run_posing_kvd(const char *name, const char *secret_file, const char *needle, char *log,
			   size_t log_len)
{
	char members[512], client[64], dir[400];
	const char *b = getenv("RINGRAFT_TEST_IP_BASE");
	int base = b && *b ? atoi(b) : 11;
	const char *p1 = cluster_peer_addr(c, 1);
	snprintf(client, sizeof client, "127.0.0.%d:%d", base + 3, atoi(strrchr(p1, ':') + 1));
	snprintf(members, sizeof members, "1=%s,2=%s,3=%s", p1, cluster_peer_addr(c, 2),
		 cluster_peer_addr(c, 3));
	snprintf(dir, sizeof dir, "%s/%s-data", root, name);
	snprintf(log, log_len, "%s/%s.log", root, name);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	int before2 = cluster_log_grep(c, 2, needle), before3 = cluster_log_grep(c, 3, needle);
	char groups[16];
	snprintf(groups, sizeof groups, "%d", GROUPS);
	char kvd[400];
	snprintf(kvd, sizeof kvd, "%s/kvd", bin());
	pid_t parent = getpid();
	fflush(NULL);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		if (secret_file != NULL)
			execl(kvd, kvd, "--id", "1", "--data-dir", dir, "--client-addr", client,
			      "--cluster", members, "--groups", groups, "--election-ms", "300",
			      "--heartbeat-ms", "50", "--log-level", "info", "--peer-secret-file",
			      secret_file, (char *)NULL);
		else
			execl(kvd, kvd, "--id", "1", "--data-dir", dir, "--client-addr", client,
			      "--cluster", members, "--groups", groups, "--election-ms", "300",
			      "--heartbeat-ms", "50", "--log-level", "info", (char *)NULL);
		_exit(127);
	}
	/* several of its election timeouts, and both nodes refused it */
	uint64_t start = cluster_now_ms(), end = start + 15000;
	bool seen2 = false, seen3 = false;
	while (cluster_now_ms() < end && (!seen2 || !seen3 || cluster_now_ms() < start + 3000)) {
		seen2 = seen2 || cluster_log_grep(c, 2, needle) > before2;
		seen3 = seen3 || cluster_log_grep(c, 3, needle) > before3;
		usleep(50 * 1000);
	}
	int status = 0;
	bool alive = waitpid(pid, &status, WNOHANG) == 0;
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	ck_assert_msg(alive, "the posing kvd (%s) exited early (status %d): see %s", name, status,
		      log);
	if (!(seen2 && seen3))
		fprintf(stderr, "%s: nodes 2 and 3 did not both log [%s] (node 2: %d, 3: %d)\n",
			name, needle, seen2, seen3);
	return seen2 && seen3;
}

/* The credentials call() sends (NULL: none). */
static const char *call_user, *call_password;

/* One request through node; returns the code, *error (copied, may be NULL) the message. */
static int call(int node, Ringraft__Kv__Request *rq, char *error, size_t error_len,
		Ringraft__Kv__Response **keep)
{
	if (call_user != NULL) {
		rq->auth_user = (char *)call_user;
		rq->password.data = (uint8_t *)call_password;
		rq->password.len = strlen(call_password);
	}
	Ringraft__Kv__Response *rs = NULL;
	ck_assert_msg(cluster_call(c, node, rq, &rs, 10000) == 0, "no answer from node %d", node);
	int code = rs->code;
	if (error != NULL)
		snprintf(error, error_len, "%s", rs->error ? rs->error : "");
	if (keep != NULL)
		*keep = rs;
	else
		ringraft__kv__response__free_unpacked(rs, NULL);
	return code;
}

static int user_add(int node, const char *name, int role, char *error, size_t error_len)
{
	struct kv_user u;
	ck_assert_int_eq(kv_user_make(role, "pw-of-user", 10, KV_USER_ITERATIONS_MIN, &u), 0);
	uint8_t rec[KV_USER_RECORD_BYTES];
	kv_user_record_encode(&u, rec);
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__USER_ADD;
	rq.user = (char *)name;
	rq.user_record.data = rec;
	rq.user_record.len = sizeof rec;
	return call(node, &rq, error, error_len, NULL);
}

static int simple(int node, Ringraft__Kv__Op op, const char *name, char *error, size_t error_len)
{
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = op;
	rq.user = (char *)name;
	return call(node, &rq, error, error_len, NULL);
}

START_TEST(test_users_are_kept_in_the_meta_group)
{
	char err[512];
	/* the meta group (where the records live) cannot be scanned */
	Ringraft__Kv__Request scan = RINGRAFT__KV__REQUEST__INIT;
	scan.op = RINGRAFT__KV__OP__SCAN;
	scan.group = GROUPS + 1;
	ck_assert_int_eq(call(1, &scan, err, sizeof err, NULL), RINGRAFT__KV__CODE__INVALID);
	ck_assert_msg(strstr(err, "meta group") != NULL, "%s", err);
	/* no rw user: auth enable refused */
	ck_assert_int_eq(simple(2, RINGRAFT__KV__OP__AUTH_ENABLE, NULL, err, sizeof err),
			 RINGRAFT__KV__CODE__INVALID);
	ck_assert_msg(strstr(err, "no user with role rw") != NULL, "%s", err);
	ck_assert_int_eq(user_add(1, "alice", KV_USER_RO, err, sizeof err), RINGRAFT__KV__CODE__OK);
	ck_assert_int_eq(user_add(2, "alice", KV_USER_RW, err, sizeof err),
			 RINGRAFT__KV__CODE__INVALID);
	ck_assert_msg(strstr(err, "exists") != NULL, "%s", err);
	ck_assert_int_eq(user_add(1, "bad/name", KV_USER_RW, err, sizeof err),
			 RINGRAFT__KV__CODE__INVALID);
	Ringraft__Kv__Request junk = RINGRAFT__KV__REQUEST__INIT;
	junk.op = RINGRAFT__KV__OP__USER_ADD;
	junk.user = "mallory";
	junk.user_record.data = (uint8_t *)"not a record";
	junk.user_record.len = 12;
	ck_assert_int_eq(call(1, &junk, err, sizeof err, NULL), RINGRAFT__KV__CODE__INVALID);
	ck_assert_int_eq(simple(3, RINGRAFT__KV__OP__AUTH_ENABLE, NULL, err, sizeof err),
			 RINGRAFT__KV__CODE__INVALID); /* alice is ro */
	ck_assert_int_eq(user_add(3, "bob", KV_USER_RW, err, sizeof err), RINGRAFT__KV__CODE__OK);
	/* listed from every node, names and roles only */
	for (int n = 1; n <= 3; n++) {
		Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
		rq.op = RINGRAFT__KV__OP__USER_LIST;
		Ringraft__Kv__Response *rs;
		ck_assert_int_eq(call(n, &rq, err, sizeof err, &rs), RINGRAFT__KV__CODE__OK);
		ck_assert_uint_eq(rs->n_users, 2);
		ck_assert_str_eq(rs->users[0]->name, "alice");
		ck_assert_str_eq(rs->users[0]->role, "ro");
		ck_assert_str_eq(rs->users[1]->name, "bob");
		ck_assert_str_eq(rs->users[1]->role, "rw");
		ck_assert(!rs->auth_enabled);
		ck_assert_uint_eq(rs->value.len, 0);
		ringraft__kv__response__free_unpacked(rs, NULL);
	}
	ck_assert_int_eq(simple(1, RINGRAFT__KV__OP__AUTH_ENABLE, NULL, err, sizeof err),
			 RINGRAFT__KV__CODE__OK);
	/* from now on every request needs a user: bob's */
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__USER_LIST;
	/* (each node enforces once it applied the flag: at most a moment after the answer) */
	uint64_t until = cluster_now_ms() + 5000;
	int code;
	while ((code = call(2, &rq, err, sizeof err, NULL)) == RINGRAFT__KV__CODE__OK &&
	       cluster_now_ms() < until)
		usleep(20 * 1000);
	ck_assert_int_eq(code, RINGRAFT__KV__CODE__UNAUTHENTICATED);
	call_user = "bob";
	call_password = "pw-of-user";
	rq = (Ringraft__Kv__Request)RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__USER_LIST;
	Ringraft__Kv__Response *rs;
	ck_assert_int_eq(call(2, &rq, err, sizeof err, &rs), RINGRAFT__KV__CODE__OK);
	ck_assert(rs->auth_enabled);
	ringraft__kv__response__free_unpacked(rs, NULL);
	/* the last rw user stays while auth is on; others go */
	ck_assert_int_eq(simple(2, RINGRAFT__KV__OP__USER_REMOVE, "bob", err, sizeof err),
			 RINGRAFT__KV__CODE__INVALID);
	ck_assert_msg(strstr(err, "last rw user") != NULL, "%s", err);
	ck_assert_int_eq(simple(2, RINGRAFT__KV__OP__USER_REMOVE, "alice", err, sizeof err),
			 RINGRAFT__KV__CODE__OK);
	ck_assert_int_eq(simple(1, RINGRAFT__KV__OP__USER_REMOVE, "alice", err, sizeof err),
			 RINGRAFT__KV__CODE__NOT_FOUND);
	/* a key named like a record is an ordinary key of the ring, not the record */
	Ringraft__Kv__Request get = RINGRAFT__KV__REQUEST__INIT;
	get.op = RINGRAFT__KV__OP__GET;
	get.key.data = (uint8_t *)"user/bob";
	get.key.len = 8;
	ck_assert_int_eq(call(1, &get, err, sizeof err, NULL), RINGRAFT__KV__CODE__NOT_FOUND);
	call_user = call_password = NULL;
}
END_TEST

/* kvctl with environment `env` ("K=V ..."), stdin from `in` (NULL: /dev/null). */
static char *kvctl_as(int node, const char *env, const char *in, const char *args, int *status)
{
	char cmd[2048];
	snprintf(cmd, sizeof cmd,
		 "%s%s%s env -u RINGRAFT_TLS_CA -u RINGRAFT_USER -u RINGRAFT_PASSWORD %s %s/kvctl "
		 "--endpoints %s --timeout 5s %s 2>&1 %s",
		 in ? "printf '%s\\n' '" : "", in ? in : "", in ? "' |" : "", env ? env : "", bin(),
		 cluster_client_addr(c, node), args, in ? "" : "</dev/null");
	return rh_run_status(cmd, status);
}

#define BOB "RINGRAFT_PASSWORD=pw-of-user"

/* After test_users_are_kept_in_the_meta_group: bob (rw, password pw-of-user) is the only
 * user and authentication is on. */
START_TEST(test_auth_enforced)
{
	int st;
	char *out;
	/* no credentials: refused, exit 4, nothing written */
	out = kvctl_as(1, NULL, NULL, "put auth-k no-user", &st);
	ck_assert_msg(st == 4 && strstr(out, "not authenticated") != NULL,
		      "kvctl without a user: exit %d: %s", st, out);
	free(out);
	/* the same on a new connection of the protocol itself, with the node's reason */
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.id = 7;
	rq.op = RINGRAFT__KV__OP__GET;
	rq.key.data = (uint8_t *)"auth-k";
	rq.key.len = 6;
	int fd = cluster_dial(cluster_client_addr(c, 2));
	size_t n = ringraft__kv__request__get_packed_size(&rq);
	uint8_t frame[256];
	net_frame_header(frame, (uint32_t)n);
	ringraft__kv__request__pack(&rq, frame + NET_FRAME_HEADER);
	ck_assert_int_eq(send(fd, frame, NET_FRAME_HEADER + n, MSG_NOSIGNAL),
			 (ssize_t)(NET_FRAME_HEADER + n));
	Ringraft__Kv__Response *rs = cluster_read_response(fd, 5000);
	close(fd);
	ck_assert_ptr_nonnull(rs);
	ck_assert_int_eq(rs->code, RINGRAFT__KV__CODE__UNAUTHENTICATED);
	ck_assert_msg(strstr(rs->error, "authentication required") != NULL, "%s", rs->error);
	ringraft__kv__response__free_unpacked(rs, NULL);
	/* a wrong password, an unknown user */
	out = kvctl_as(1, "RINGRAFT_PASSWORD=not-his", NULL, "--user bob put auth-k wrong-pw", &st);
	ck_assert_msg(st == 4, "kvctl with a wrong password: exit %d: %s", st, out);
	free(out);
	out = kvctl_as(1, BOB, NULL, "--user nobody put auth-k unknown-user", &st);
	ck_assert_msg(st == 4, "kvctl as an unknown user: exit %d: %s", st, out);
	free(out);
	/* the rw user writes, reads, and adds a ro user (its password on stdin) */
	out = kvctl_as(1, BOB, NULL, "--user bob put auth-k by-bob", &st);
	ck_assert_msg(st == 0, "kvctl as bob: exit %d: %s", st, out);
	free(out);
	out = kvctl_as(3, BOB, "carol-pw-1", "--user bob user add carol --role ro", &st);
	ck_assert_msg(st == 0, "user add carol: exit %d: %s", st, out);
	free(out);
	out = kvctl_as(2, BOB, NULL, "--user bob user list", &st);
	ck_assert_msg(st == 0 && strstr(out, "authentication on") && strstr(out, "carol") &&
			      strstr(out, "bob"),
		      "user list: exit %d: %s", st, out);
	free(out);
	/* the ro user reads, and is refused a write and user administration */
	out = kvctl_as(2, "RINGRAFT_PASSWORD=carol-pw-1", NULL, "--user carol get auth-k", &st);
	ck_assert_msg(st == 0 && strcmp(out, "by-bob") == 0, "carol reads: exit %d: [%s]", st, out);
	free(out);
	out = kvctl_as(2, "RINGRAFT_PASSWORD=carol-pw-1", NULL, "--user carol put auth-k by-carol",
		       &st);
	ck_assert_msg(st == 4 && strstr(out, "permission denied") != NULL,
		      "carol writes: exit %d: %s", st, out);
	free(out);
	out = kvctl_as(2, "RINGRAFT_PASSWORD=carol-pw-1", "x-pw",
		       "--user carol user add eve --role rw", &st);
	ck_assert_msg(st == 4, "carol adds a user: exit %d: %s", st, out);
	free(out);
	out = kvctl_as(3, BOB, NULL, "--user bob get auth-k", &st);
	ck_assert_msg(st == 0 && strcmp(out, "by-bob") == 0, "the value after the refusals: [%s]",
		      out);
	free(out);
	/* kvctl bench (its own pipelined requests) logs in too; without a user nothing is done */
	out = kvctl_as(1, BOB, NULL,
		       "--user bob -o json bench --requests 500 --clients 2 --pipeline 4", &st);
	ck_assert_msg(st == 0 && strstr(out, "\"ok\": 500,") != NULL &&
			      strstr(out, "\"errors\": 0,") != NULL,
		      "kvctl bench as bob: exit %d: %s", st, out);
	free(out);
	out = kvctl_as(1, NULL, NULL, "-o json bench --requests 50 --clients 1", &st);
	ck_assert_msg(strstr(out, "\"ok\": 0,") != NULL, "kvctl bench without a user: %s", out);
	free(out);
	/* RESP: nothing without AUTH; AUTH user pass and HELLO 3 AUTH user pass; roles hold */
	char host[64], base[160], cmd[512];
	snprintf(host, sizeof host, "%s", cluster_resp_addr(c, 1));
	char *colon = strrchr(host, ':');
	*colon = '\0';
	snprintf(base, sizeof base, "redis-cli -h %s -p %s", host, colon + 1);
	const struct {
		const char *args, *want, *not_want;
	} resp_cases[] = {
		{"GET auth-k", "NOAUTH", "by-bob"},
		{"--user bob --pass pw-of-user --no-auth-warning GET auth-k", "by-bob", NULL},
		{"--user bob --pass not-his --no-auth-warning GET auth-k", "NOAUTH", "by-bob"},
		{"--user carol --pass carol-pw-1 --no-auth-warning GET auth-k", "by-bob", NULL},
		{"--user carol --pass carol-pw-1 --no-auth-warning SET auth-k by-carol", "NOPERM",
		 NULL},
		{"AUTH bob not-his", "WRONGPASS", NULL},
		{"AUTH only-a-password", "WRONGPASS", NULL},
		{"HELLO 3", "NOAUTH HELLO must be called", "standalone"},
	};
	for (size_t i = 0; i < sizeof resp_cases / sizeof resp_cases[0]; i++) {
		snprintf(cmd, sizeof cmd, "%s %s 2>&1", base, resp_cases[i].args);
		out = rh_run_status(cmd, &st);
		ck_assert_msg(strstr(out, resp_cases[i].want) != NULL &&
				      (resp_cases[i].not_want == NULL ||
				       strstr(out, resp_cases[i].not_want) == NULL),
			      "redis-cli %s: wanted %s: %s", resp_cases[i].args, resp_cases[i].want,
			      out);
		free(out);
	}
	/* HELLO 3 AUTH on one connection, then a command on it */
	snprintf(cmd, sizeof cmd,
		 "printf 'HELLO 3 AUTH bob pw-of-user\\nSET auth-k2 via-hello\\nGET auth-k2\\n' | "
		 "%s 2>&1",
		 base);
	out = rh_run_status(cmd, &st);
	ck_assert_msg(strstr(out, "proto") != NULL && strstr(out, "via-hello") != NULL &&
			      strstr(out, "NOAUTH") == NULL,
		      "HELLO 3 AUTH: %s", out);
	free(out);
	/* the meta group stays unreadable, even to the rw user */
	out = kvctl_as(1, BOB, NULL, "--user bob scan user/", &st);
	ck_assert_msg(strstr(out, "carol") == NULL, "a scan showed a user record: %s", out);
	free(out);
}
END_TEST

static int file_grep(const char *path, const char *needle)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "grep -cF -- '%s' '%s' || true", needle, path);
	char *out = rh_run(cmd);
	int n = atoi(out);
	free(out);
	return n;
}

START_TEST(test_kvd_with_wrong_or_no_secret_cannot_join)
{
	/* node 1 down (killed), so that a kvd can take its identity and address; nodes 2 and
	 * 3 lead every group */
	cluster_kill(c, 1);
	ck_assert_int_eq(cluster_wait_leaders(c, 20000), 0);
	struct view before;
	view_take(&before);
	char wrong[400], log[500];
	snprintf(wrong, sizeof wrong, "%s/wrong-secret", root);
	write_file(wrong, WRONG_SECRET "\n", 0600);
	/* the wrong secret: it refuses the nodes' proofs, they refuse its own */
	bool logged = run_posing_kvd("wrong", wrong, "peer refused reason=bad-proof accepted", log,
				     sizeof log);
	ck_assert_msg(file_grep(log, "peer link up") == 0, "a link came up: see %s", log);
	view_unchanged(&before, "a kvd with the wrong secret");
	ck_assert_msg(logged, "nodes 2 and 3 did not both log the bad proof");
	ck_assert_msg(file_grep(log, "peer refused reason=bad-proof dialled") > 0,
		      "the kvd with the wrong secret did not refuse the nodes' proofs: see %s",
		      log);
	/* no secret at all: its Hello has no nonce */
	logged = run_posing_kvd("none", NULL, "peer refused reason=no-proof accepted", log,
				sizeof log);
	ck_assert_msg(file_grep(log, "peer link up") == 0, "a link came up: see %s", log);
	view_unchanged(&before, "a kvd without a secret");
	ck_assert_msg(logged, "nodes 2 and 3 did not both log the missing proof");
	ck_assert_int_ge(refused_metric_reaches(2, "bad-proof", 1, 5000), 1);
	ck_assert_int_ge(refused_metric_reaches(3, "no-proof", 1, 5000), 1);
	/* it campaigned all along, alone: no term or leader moved, the real node 1 kept its
	 * links */
	view_unchanged(&before, "the posing kvds");
	serves("", "after-posers", "served", 3);
	/* the real node 1 comes back and proves itself */
	int proved = cluster_log_grep(c, 2, "proved=yes");
	ck_assert_int_eq(cluster_restart(c, 1), 0);
	ck_assert_msg(log_grows(2, "proved=yes", proved, 10000), "node 1 did not link again");
	ck_assert_int_eq(cluster_wait_leaders(c, 20000), 0);
	serves("", "after-node-1", "served", 1);
}
END_TEST

START_TEST(test_rotation_new_and_old_interoperate)
{
	/* nodes 1 and 2 prove with "new" and accept "old"; node 3 has only "old" */
	serves("", "rot-k", "mixed", 3);
	for (int n = 1; n <= 3; n++) {
		ck_assert_msg(cluster_log_grep(c, n, "proved=yes") >= 2, "node %d: %d proved links",
			      n, cluster_log_grep(c, n, "proved=yes"));
		ck_assert_int_eq(refused_metric(n, "bad-proof"), 0);
	}
	/* the next step: node 3 restarts with "new" first, then with only "new" */
	ck_assert_int_eq(cluster_term(c, 3), 0);
	write_secret(3, NEW_SECRET "\n");
	ck_assert_int_eq(cluster_restart(c, 3), 0);
	ck_assert_int_eq(cluster_wait_leaders(c, 20000), 0);
	serves("", "rot-k2", "new-only", 3);
	ck_assert_msg(cluster_log_grep(c, 3, "proved=yes") >= 2, "node 3 after its restart");
	for (int n = 1; n <= 3; n++)
		ck_assert_int_eq(refused_metric(n, "bad-proof"), 0);
}
END_TEST

START_TEST(test_secret_inside_tls)
{
	char flags[1024];
	snprintf(flags, sizeof flags,
		 "--tls-ca %s/ca.pem --tls-cert %s/client.pem --tls-key %s/client.key", certs,
		 certs, certs);
	serves(flags, "tls-auth-k", "both", 2);
	for (int n = 1; n <= 3; n++)
		ck_assert_msg(cluster_log_grep(c, n, "proved=yes") >= 2, "node %d: %d proved links",
			      n, cluster_log_grep(c, n, "proved=yes"));
}
END_TEST

/* kvd with this secret file content (NULL: no file) and mode: exit 2 with `want` in its
 * message. */
static void bad_secret_file(const char *content, mode_t mode, const char *want)
{
	char dir[400], path[400], cmd[2048];
	snprintf(dir, sizeof dir, "%s/bad-start", root);
	mkdir(dir, 0700);
	snprintf(path, sizeof path, "%s/bad-secret", root);
	unlink(path);
	if (content != NULL)
		write_file(path, content, mode);
	snprintf(cmd, sizeof cmd,
		 "%s/kvd --id 1 --data-dir %s --client-addr 127.0.0.1:1 --cluster "
		 "1=127.0.0.1:2 --peer-secret-file %s 2>&1",
		 bin(), dir, path);
	int st;
	char *out = rh_run_status(cmd, &st);
	ck_assert_msg(st == 2 && strstr(out, want) != NULL,
		      "kvd with a bad secret file: exit %d, wanted [%s]: %s", st, want, out);
	ck_assert_msg(strstr(out, "0123456789") == NULL, "the message shows a secret: %s", out);
	free(out);
}

START_TEST(test_bad_secret_files_stop_kvd)
{
	bad_secret_file(NULL, 0, "cannot read: No such file or directory");
	bad_secret_file(SECRET "\n", 0644, "other users may read or write it (mode 644)");
	bad_secret_file("", 0600, "empty");
	bad_secret_file("\n", 0600, "line 1 is empty");
	bad_secret_file("short-secret\n", 0600, "the secret on line 1 has 12 bytes");
	bad_secret_file(SECRET "\n\n" OLD_SECRET "\n", 0600, "line 2 is empty");
	bad_secret_file(SECRET "\n" SECRET "\n" SECRET "\n" SECRET "\n" SECRET "\n", 0600,
			"more than 4 lines");
	if (geteuid() != 0) /* root reads whatever the mode says */
		bad_secret_file(SECRET "\n", 0200, "cannot read: Permission denied");
}
END_TEST

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int main(void)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(root, sizeof root, "%s/ringraft-auth-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(root) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(secrets, sizeof secrets, "%s/secrets", root);
	snprintf(certs, sizeof certs, "%s/certs", root);
	char cmd[2048];
	snprintf(cmd, sizeof cmd,
		 "mkdir -m 700 %s && scripts/tls-certs %s node1 node2 node3 client", secrets,
		 certs);
	if (system(cmd) != 0) {
		fprintf(stderr, "test_auth: setup failed (run from the repository root)\n");
		nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
		return 1;
	}
	Suite *s = suite_create("auth");
	TCase *tf = tcase_create("secret_files");
	tcase_add_test(tf, test_bad_secret_files_stop_kvd);
	suite_add_tcase(s, tf);
	TCase *tc = tcase_create("peer_secret");
	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_cluster_with_secret_serves);
	tcase_add_test(tc, test_stranger_with_forged_proof_is_refused);
	tcase_add_test(tc, test_kvd_with_wrong_or_no_secret_cannot_join);
	suite_add_tcase(s, tc);
	TCase *tr = tcase_create("rotation");
	tcase_add_unchecked_fixture(tr, setup_rotation, teardown);
	tcase_set_timeout(tr, 120);
	tcase_add_test(tr, test_rotation_new_and_old_interoperate);
	suite_add_tcase(s, tr);
	TCase *tu = tcase_create("client_auth");
	tcase_add_unchecked_fixture(tu, setup, teardown);
	tcase_set_timeout(tu, 180);
	tcase_add_test(tu, test_users_are_kept_in_the_meta_group);
	tcase_add_test(tu, test_auth_enforced);
	suite_add_tcase(s, tu);
	TCase *tt = tcase_create("inside_tls");
	tcase_add_unchecked_fixture(tt, setup_tls, teardown);
	tcase_set_timeout(tt, 120);
	tcase_add_test(tt, test_secret_inside_tls);
	suite_add_tcase(s, tt);
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (getenv("CLUSTER_KEEP_DIRS") == NULL)
		nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return failed ? 1 : 0;
}
