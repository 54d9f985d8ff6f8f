/* cluster.c — the three-node kvd fixture of the integration tests (see cluster.h): each kvd
 * in its own process group with PR_SET_PDEATHSIG; live clusters registered for atexit and
 * fatal-signal cleanup; a blocking socket with poll() deadlines speaks kv.proto frames (with
 * opts.tls_dir, through the client library's TLS connection, cli/conn.h).
 */
#include "tests/integration/cluster.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/client.h"
#include "cli/conn.h"
#include "kv/ring.h"
#include "net/frame.h"
#include "net/tls.h"

#define MAX_LIVE 8
#define ADDR_LEN 64

struct cnode {
	pid_t pid; /* 0 = not running */
	bool stopped;
	char client_addr[ADDR_LEN], peer_addr[ADDR_LEN], resp_addr[ADDR_LEN];
	char metrics_addr[ADDR_LEN]; /* "" unless opts.metrics */
	char dir[512], log[512];
	int fd;              /* client connection, -1 = none */
	struct cli_conn *tc; /* the same with opts.tls_dir */
	int exit_status;
	struct net_decoder dec;
};

struct cluster {
	struct cluster_opts o;
	char root[400];
	char cluster_arg[CLUSTER_NODES_MAX * (ADDR_LEN + 8)];
	char endpoints[CLUSTER_NODES_MAX * ADDR_LEN];
	int n; /* nodes */
	struct cnode nodes[CLUSTER_NODES_MAX];
	uint64_t next_id;
	uint64_t client_id, seq;
	pid_t owner;
	SSL_CTX *tls; /* opts.tls_dir: cluster_call's TLS context */
};

static struct cluster *live[MAX_LIVE];
static bool handlers_installed;
/* Every cluster's temp dir lives under one base dir made by the test's main process before
 * Check forks the test children, so that the main process removes everything at exit even
 * when a child was killed (a test timeout) before it could clean up. */
static char base_dir[300];
static pid_t base_owner;

uint64_t cluster_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void kill_node_hard(struct cnode *n)
{
	if (n->pid > 0) {
		kill(-n->pid, SIGKILL);
		kill(n->pid, SIGKILL);
		kill(n->pid, SIGCONT);
		waitpid(n->pid, NULL, 0);
		n->pid = 0;
	}
	n->stopped = false;
	if (n->fd >= 0) {
		close(n->fd);
		n->fd = -1;
	}
	cli_conn_close(n->tc);
	n->tc = NULL;
	net_decoder_free(&n->dec);
}

/* Detaches every mount below root (a test may mount a small file system on a data dir), so
 * the tree can be removed and no loop device is left behind, whatever path the test left by. */
static void unmount_under(const char *root)
{
	FILE *f = fopen("/proc/self/mounts", "re");
	if (f == NULL)
		return;
	size_t rl = strlen(root);
	char line[4096], dev[1024], dir[2048];
	while (fgets(line, sizeof line, f) != NULL) {
		if (sscanf(line, "%1023s %2047s", dev, dir) == 2 && strncmp(dir, root, rl) == 0 &&
		    dir[rl] == '/')
			umount2(dir, MNT_DETACH);
	}
	fclose(f);
}

/* Async-signal-safe enough for our use: kill + waitpid + nftw on exit paths. */
static void destroy_one(struct cluster *c)
{
	if (c == NULL || c->owner != getpid())
		return;
	for (int i = 0; i < c->n; i++)
		kill_node_hard(&c->nodes[i]);
	if (c->root[0] != '\0')
		unmount_under(c->root);
	if (getenv("CLUSTER_KEEP_DIRS") == NULL && c->root[0] != '\0')
		nftw(c->root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	c->root[0] = '\0';
}

static void base_cleanup(void)
{
	if (base_owner == getpid() && base_dir[0] != '\0')
		unmount_under(base_dir);
	if (base_owner == getpid() && base_dir[0] != '\0' && getenv("CLUSTER_KEEP_DIRS") == NULL)
		nftw(base_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void cleanup_all(void)
{
	for (int i = 0; i < MAX_LIVE; i++) {
		if (live[i] != NULL && live[i]->owner == getpid()) {
			destroy_one(live[i]);
			live[i] = NULL;
		}
	}
}

static void fatal_signal(int sig)
{
	cleanup_all();
	base_cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void install_handlers(void)
{
	if (handlers_installed)
		return;
	handlers_installed = true;
	atexit(cleanup_all);
	signal(SIGINT, fatal_signal);
	signal(SIGTERM, fatal_signal);
	signal(SIGABRT, fatal_signal);
	signal(SIGSEGV, fatal_signal);
	signal(SIGHUP, fatal_signal);
	signal(SIGPIPE, SIG_IGN);
}

__attribute__((constructor)) static void base_init(void)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(base_dir, sizeof base_dir, "%s/ringraft-it-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(base_dir) == NULL) {
		base_dir[0] = '\0';
		return;
	}
	base_owner = getpid();
	atexit(base_cleanup);
	install_handlers();
}

void cluster_opts_default(struct cluster_opts *o)
{
	memset(o, 0, sizeof *o);
	o->groups = 4;
	o->election_ms = 400;
	o->heartbeat_ms = 50;
	o->nodes = CLUSTER_NODES;
}

static bool port_free(const char *ip, int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return false;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	inet_pton(AF_INET, ip, &a.sin_addr);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
	close(fd);
	return ok;
}

static const char *bin_dir(void)
{
	const char *b = getenv("RINGRAFT_BIN");
	return b && *b ? b : "bin";
}

static void add_arg(char **argv, int *argc, const char *s)
{
	argv[(*argc)++] = strdup(s);
}

static int spawn(struct cluster *c, int i, bool first)
{
	struct cnode *n = &c->nodes[i - 1];
	char *argv[64];
	int argc = 0;
	char kvd[600], buf[64];
	snprintf(kvd, sizeof kvd, "%s/kvd", bin_dir());
	add_arg(argv, &argc, kvd);
	add_arg(argv, &argc, "--data-dir");
	add_arg(argv, &argc, n->dir);
	if (first) {
		snprintf(buf, sizeof buf, "%d", i);
		add_arg(argv, &argc, "--id");
		add_arg(argv, &argc, buf);
		add_arg(argv, &argc, "--client-addr");
		add_arg(argv, &argc, n->client_addr);
		add_arg(argv, &argc, "--cluster");
		add_arg(argv, &argc, c->cluster_arg);
		if (i > c->o.boot_nodes) { /* not a bootstrap member: it joins */
			add_arg(argv, &argc, "--join");
			add_arg(argv, &argc, "--peer-addr");
			add_arg(argv, &argc, n->peer_addr);
		}
		snprintf(buf, sizeof buf, "%u", c->o.groups);
		add_arg(argv, &argc, "--groups");
		add_arg(argv, &argc, buf);
		if (c->o.snapshot_entries) {
			snprintf(buf, sizeof buf, "%llu",
				 (unsigned long long)c->o.snapshot_entries);
			add_arg(argv, &argc, "--snapshot-entries");
			add_arg(argv, &argc, buf);
		}
	}
	snprintf(buf, sizeof buf, "%u", c->o.election_ms);
	add_arg(argv, &argc, "--election-ms");
	add_arg(argv, &argc, buf);
	snprintf(buf, sizeof buf, "%u", c->o.heartbeat_ms);
	add_arg(argv, &argc, "--heartbeat-ms");
	add_arg(argv, &argc, buf);
	add_arg(argv, &argc, "--log-level");
	add_arg(argv, &argc, "info");
	if (n->resp_addr[0] != '\0') {
		add_arg(argv, &argc, "--resp-addr");
		add_arg(argv, &argc, n->resp_addr);
	}
	if (n->metrics_addr[0] != '\0') { /* not persisted: given at every start */
		add_arg(argv, &argc, "--metrics-addr");
		add_arg(argv, &argc, n->metrics_addr);
	}
	if (c->o.tls_dir != NULL) { /* tunables: given at every start */
		char path[600];
		const char *flag[3] = {"--tls-cert", "--tls-key", "--tls-ca"};
		for (int k = 0; k < 3; k++) {
			if (k < 2)
				snprintf(path, sizeof path, "%s/node%d.%s", c->o.tls_dir, i,
					 k == 0 ? "pem" : "key");
			else
				snprintf(path, sizeof path, "%s/ca.pem", c->o.tls_dir);
			add_arg(argv, &argc, flag[k]);
			add_arg(argv, &argc, path);
		}
	}
	if (c->o.peer_secret_dir != NULL) { /* a tunable: given at every start */
		char path[600];
		snprintf(path, sizeof path, "%s/secret%d", c->o.peer_secret_dir, i);
		add_arg(argv, &argc, "--peer-secret-file");
		add_arg(argv, &argc, path);
	}
	if (c->o.extra_args != NULL) {
		char *copy = strdup(c->o.extra_args), *save = NULL;
		for (char *t = strtok_r(copy, " ", &save); t && argc < 60;
		     t = strtok_r(NULL, " ", &save))
			add_arg(argv, &argc, t);
		free(copy);
	}
	argv[argc] = NULL;
	pid_t parent = getpid();
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return -1;
	}
	if (pid == 0) {
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		if (!c->o.keep_logs) {
			int fd = open(n->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
			if (fd >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
				close(fd);
			}
		}
		signal(SIGPIPE, SIG_DFL);
		char nodevar[32];
		snprintf(nodevar, sizeof nodevar, "%d", i);
		setenv("CLUSTER_NODE", nodevar, 1);
		if (c->o.env != NULL) {
			char *copy = strdup(c->o.env), *save = NULL;
			for (char *t = strtok_r(copy, " ", &save); t;
			     t = strtok_r(NULL, " ", &save))
				putenv(strdup(t));
		}
		execv(argv[0], argv);
		fprintf(stderr, "cluster: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	for (int k = 0; k < argc; k++)
		free(argv[k]);
	n->pid = pid;
	n->stopped = false;
	return 0;
}

static void dump_log(const struct cnode *n, int lines)
{
	char cmd[700];
	snprintf(cmd, sizeof cmd, "tail -n %d '%s' 1>&2", lines, n->log);
	if (system(cmd) != 0)
		fprintf(stderr, "(no log)\n");
}

/* The nodes' loopback addresses: 127.0.0.<base>, <base>+1, ... <base>+4, with base 11 unless
 * RINGRAFT_TEST_IP_BASE says otherwise (so that two people's tests can run side by side). */
static int ip_base(void)
{
	const char *e = getenv("RINGRAFT_TEST_IP_BASE");
	int b = e && *e ? atoi(e) : 11;
	return b >= 1 && b <= 250 ? b : 11;
}

struct cluster *cluster_start(const struct cluster_opts *opts)
{
	install_handlers();
	struct cluster *c = calloc(1, sizeof *c);
	if (c == NULL)
		return NULL;
	if (opts)
		c->o = *opts;
	else
		cluster_opts_default(&c->o);
	if (c->o.groups == 0)
		c->o.groups = 4;
	if (c->o.election_ms == 0)
		c->o.election_ms = 400;
	if (c->o.heartbeat_ms == 0)
		c->o.heartbeat_ms = 50;
	if (c->o.nodes == 0)
		c->o.nodes = CLUSTER_NODES;
	if (c->o.nodes < 1 || c->o.nodes > CLUSTER_NODES_MAX) {
		fprintf(stderr, "cluster: opts.nodes must be 1..%d\n", CLUSTER_NODES_MAX);
		free(c);
		return NULL;
	}
	c->n = c->o.nodes;
	if (c->o.boot_nodes <= 0 || c->o.boot_nodes > c->n)
		c->o.boot_nodes = c->n;
	c->owner = getpid();
	for (int i = 0; i < c->n; i++) {
		c->nodes[i].fd = -1;
		net_decoder_init(&c->nodes[i].dec, NET_CLIENT_FRAME_MAX * 2);
	}
	int slot = -1;
	for (int i = 0; i < MAX_LIVE; i++)
		if (live[i] == NULL) {
			slot = i;
			break;
		}
	if (slot < 0) {
		fprintf(stderr, "cluster: too many live clusters\n");
		free(c);
		return NULL;
	}
	live[slot] = c;
	const char *tmp = getenv("TMPDIR");
	if (base_dir[0] != '\0')
		snprintf(c->root, sizeof c->root, "%s/cluster-XXXXXX", base_dir);
	else
		snprintf(c->root, sizeof c->root, "%s/ringraft-it-XXXXXX",
			 tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(c->root) == NULL) {
		perror("mkdtemp");
		c->root[0] = '\0';
		goto fail;
	}
	srand((unsigned)(getpid() ^ cluster_now_ms()));
	c->client_id = ((uint64_t)rand() << 32) ^ (uint64_t)rand() ^ 1;
	int base = 0;
	for (int attempt = 0; attempt < 100 && base == 0; attempt++) {
		/* 4 ports each: client, peer, metrics, one spare; below the ephemeral range */
		int b = 20000 + (rand() % 3000) * 4;
		bool ok = true;
		for (int i = 1; i <= c->n && ok; i++) {
			char ip[32];
			snprintf(ip, sizeof ip, "127.0.0.%d", ip_base() + i - 1);
			ok = port_free(ip, b) && port_free(ip, b + 1) &&
			     (!c->o.resp || port_free(ip, b + 2)) &&
			     (!c->o.metrics || port_free(ip, b + 3));
		}
		if (ok)
			base = b;
	}
	if (base == 0) {
		fprintf(stderr, "cluster: no free ports\n");
		goto fail;
	}
	size_t off = 0, eoff = 0;
	for (int i = 1; i <= c->n; i++) {
		struct cnode *n = &c->nodes[i - 1];
		snprintf(n->client_addr, ADDR_LEN, "127.0.0.%d:%d", ip_base() + i - 1, base);
		snprintf(n->peer_addr, ADDR_LEN, "127.0.0.%d:%d", ip_base() + i - 1, base + 1);
		if (c->o.resp)
			snprintf(n->resp_addr, ADDR_LEN, "127.0.0.%d:%d", ip_base() + i - 1,
				 base + 2);
		if (c->o.metrics)
			snprintf(n->metrics_addr, ADDR_LEN, "127.0.0.%d:%d", ip_base() + i - 1,
				 base + 3);
		snprintf(n->dir, sizeof n->dir, "%s/n%d", c->root, i);
		snprintf(n->log, sizeof n->log, "%s/n%d.log", c->root, i);
		if (i <= c->o.boot_nodes)
			off += (size_t)snprintf(c->cluster_arg + off, sizeof c->cluster_arg - off,
						"%s%d=%s", i > 1 ? "," : "", i, n->peer_addr);
		eoff += (size_t)snprintf(c->endpoints + eoff, sizeof c->endpoints - eoff, "%s%s",
					 i > 1 ? "," : "", n->client_addr);
	}
	if (c->o.tls_dir != NULL) {
		char ca[600], cert[600], key[600], err[300];
		snprintf(ca, sizeof ca, "%s/ca.pem", c->o.tls_dir);
		snprintf(cert, sizeof cert, "%s/client.pem", c->o.tls_dir);
		snprintf(key, sizeof key, "%s/client.key", c->o.tls_dir);
		struct net_tls_files f = {cert, key, ca};
		c->tls = net_tls_ctx_new(&f, err, sizeof err);
		if (c->tls == NULL) {
			fprintf(stderr, "cluster: TLS: %s\n", err);
			goto fail;
		}
	}
	for (int i = 1; i <= c->o.boot_nodes; i++)
		if (spawn(c, i, true) < 0)
			goto fail;
	if (cluster_wait_leaders(c, 20000) < 0) {
		fprintf(stderr, "cluster: no leader for every group within 20 s\n");
		for (int i = 0; i < c->n; i++)
			dump_log(&c->nodes[i], 20);
		goto fail;
	}
	return c;
fail:
	cluster_destroy(c);
	return NULL;
}

int cluster_join(struct cluster *c, int node)
{
	if (node <= c->o.boot_nodes || node > c->n || c->nodes[node - 1].pid > 0)
		return -1;
	return spawn(c, node, true);
}

void cluster_destroy(struct cluster *c)
{
	if (c == NULL)
		return;
	destroy_one(c);
	for (int i = 0; i < MAX_LIVE; i++)
		if (live[i] == c)
			live[i] = NULL;
	SSL_CTX_free(c->tls);
	free(c);
}

const char *cluster_client_addr(const struct cluster *c, int node)
{
	return c->nodes[node - 1].client_addr;
}

const char *cluster_resp_addr(const struct cluster *c, int node)
{
	return c->nodes[node - 1].resp_addr;
}

const char *cluster_metrics_addr(const struct cluster *c, int node)
{
	return c->nodes[node - 1].metrics_addr;
}

const char *cluster_peer_addr(const struct cluster *c, int node)
{
	return c->nodes[node - 1].peer_addr;
}

const char *cluster_data_dir(const struct cluster *c, int node)
{
	return c->nodes[node - 1].dir;
}

const char *cluster_log_path(const struct cluster *c, int node)
{
	return c->nodes[node - 1].log;
}

const char *cluster_endpoints(const struct cluster *c)
{
	return c->endpoints;
}

int cluster_kvctlv(const struct cluster *c, const char *endpoints, unsigned timeout_s, char **out,
		   const char *fmt, va_list ap)
{
	const char *bin = getenv("RINGRAFT_BIN");
	ck_assert_ptr_nonnull(bin);
	char args[1024], cmd[2048];
	int n = vsnprintf(args, sizeof args, fmt, ap);
	ck_assert(n >= 0 && (size_t)n < sizeof args);
	n = snprintf(cmd, sizeof cmd, "%s/kvctl --endpoints %s --timeout %us %s %s", bin,
		     endpoints ? endpoints : c->endpoints, timeout_s, args, out ? "2>&1" : ">&2");
	ck_assert(n >= 0 && (size_t)n < sizeof cmd);
	FILE *p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	/* read to the end whatever its length: a child left blocked on a full pipe would never
	 * exit, and pclose would wait for it for ever */
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	ck_assert_ptr_nonnull(buf);
	for (size_t got; (got = fread(buf + len, 1, cap - 1 - len, p)) > 0;) {
		len += got;
		if (cap - 1 - len == 0) {
			buf = realloc(buf, cap *= 2);
			ck_assert_ptr_nonnull(buf);
		}
	}
	buf[len] = '\0';
	int st = pclose(p);
	if (out != NULL)
		*out = buf;
	else
		free(buf);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int cluster_kvctl(const struct cluster *c, const char *endpoints, unsigned timeout_s, char **out,
		  const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = cluster_kvctlv(c, endpoints, timeout_s, out, fmt, ap);
	va_end(ap);
	return rc;
}

uint32_t cluster_groups(const struct cluster *c)
{
	return c->o.groups;
}

int cluster_nodes(const struct cluster *c)
{
	return c->n;
}

bool cluster_running(const struct cluster *c, int node)
{
	return c->nodes[node - 1].pid > 0;
}

bool cluster_died(struct cluster *c, int node)
{
	struct cnode *n = &c->nodes[node - 1];
	if (n->pid <= 0)
		return false;
	int status;
	if (waitpid(n->pid, &status, WNOHANG) != n->pid)
		return false;
	n->exit_status = WIFEXITED(status) ? WEXITSTATUS(status)
					   : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	fprintf(stderr, "cluster: node %d died on its own (exit status %d)\n", node,
		n->exit_status);
	dump_log(n, 40);
	n->pid = 0;
	return true;
}

int cluster_exit_status(const struct cluster *c, int node)
{
	return c->nodes[node - 1].exit_status;
}

int cluster_shutdown(struct cluster *c)
{
	int bad = 0;
	if (c == NULL)
		return 0;
	for (int i = 1; i <= c->n; i++)
		if (cluster_died(c, i))
			bad++;
	for (int i = 1; i <= c->n; i++) {
		if (c->nodes[i - 1].pid <= 0)
			continue;
		int st = cluster_term(c, i);
		if (st != 0) {
			fprintf(stderr, "cluster: node %d exited with %d after SIGTERM\n", i, st);
			dump_log(&c->nodes[i - 1], 40);
			bad++;
		}
	}
	return bad;
}

void cluster_kill(struct cluster *c, int node)
{
	kill_node_hard(&c->nodes[node - 1]);
}

void cluster_stop(struct cluster *c, int node)
{
	struct cnode *n = &c->nodes[node - 1];
	if (n->pid > 0) {
		kill(n->pid, SIGSTOP);
		n->stopped = true;
	}
}

void cluster_cont(struct cluster *c, int node)
{
	struct cnode *n = &c->nodes[node - 1];
	if (n->pid > 0) {
		kill(n->pid, SIGCONT);
		n->stopped = false;
	}
}

int cluster_term(struct cluster *c, int node)
{
	struct cnode *n = &c->nodes[node - 1];
	if (n->pid <= 0)
		return -1;
	if (n->stopped)
		cluster_cont(c, node);
	kill(n->pid, SIGTERM);
	uint64_t deadline = cluster_now_ms() + 20000;
	int status = 0;
	for (;;) {
		pid_t r = waitpid(n->pid, &status, WNOHANG);
		if (r == n->pid)
			break;
		if (cluster_now_ms() > deadline) {
			kill_node_hard(n);
			return -1;
		}
		sleep_ms(10);
	}
	n->pid = 0;
	if (n->fd >= 0) {
		close(n->fd);
		n->fd = -1;
	}
	net_decoder_free(&n->dec);
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

static int connect_node(struct cnode *n, int timeout_ms)
{
	struct sockaddr_storage ss;
	if (net_parse_addr(n->client_addr, &ss) != NET_OK)
		return -1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)) != 0) {
		if (errno != EINPROGRESS) {
			close(fd);
			return -1;
		}
		struct pollfd p = {fd, POLLOUT, 0};
		int err = 0;
		socklen_t el = sizeof err;
		if (poll(&p, 1, timeout_ms) != 1 ||
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0) {
			close(fd);
			return -1;
		}
	}
	return fd;
}

static int restart_node(struct cluster *c, int node, bool first)
{
	struct cnode *n = &c->nodes[node - 1];
	if (n->pid > 0)
		return -1;
	/* a node that died on its own may have left a partial reply buffered */
	net_decoder_free(&n->dec);
	net_decoder_init(&n->dec, NET_CLIENT_FRAME_MAX * 2);
	if (spawn(c, node, first) < 0)
		return -1;
	uint64_t deadline = cluster_now_ms() + 20000;
	while (cluster_now_ms() < deadline) {
		int fd = connect_node(n, 200);
		if (fd >= 0) {
			close(fd);
			return 0;
		}
		int status;
		if (waitpid(n->pid, &status, WNOHANG) == n->pid) {
			n->pid = 0;
			n->exit_status = WIFEXITED(status)
						 ? WEXITSTATUS(status)
						 : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
			fprintf(stderr, "cluster: node %d exited on restart (status %d)\n", node,
				n->exit_status);
			dump_log(n, 20);
			return -1;
		}
		sleep_ms(20);
	}
	return -1;
}

int cluster_restart(struct cluster *c, int node)
{
	return restart_node(c, node, false);
}

int cluster_restart_fresh(struct cluster *c, int node)
{
	return restart_node(c, node, true);
}

int cluster_wipe(struct cluster *c, int node)
{
	struct cnode *n = &c->nodes[node - 1];
	if (n->pid > 0)
		return -1;
	if (nftw(n->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS) != 0 || mkdir(n->dir, 0755) != 0)
		return -1;
	return 0;
}

static void drop_conn(struct cnode *n)
{
	if (n->fd >= 0)
		close(n->fd);
	n->fd = -1;
	cli_conn_close(n->tc);
	n->tc = NULL;
	net_decoder_free(&n->dec);
	net_decoder_init(&n->dec, NET_CLIENT_FRAME_MAX * 2);
}

/* cluster_call over TLS: the client library's connection (same deadlines, cli/conn.h). */
static int call_tls(struct cluster *c, struct cnode *n, Ringraft__Kv__Request *req,
		    Ringraft__Kv__Response **resp, uint64_t deadline)
{
	int64_t dl = (int64_t)deadline; /* both clocks are CLOCK_MONOTONIC in ms */
	if (n->tc == NULL && cli_conn_open(n->client_addr, c->tls, dl, &n->tc) != 0)
		return -1;
	req->id = ++c->next_id;
	size_t len = ringraft__kv__request__get_packed_size(req);
	uint8_t *buf = malloc(len);
	if (buf == NULL)
		return -1;
	ringraft__kv__request__pack(req, buf);
	int rc = cli_conn_send(n->tc, buf, (uint32_t)len, dl);
	free(buf);
	while (rc == 0) {
		const uint8_t *payload;
		uint32_t plen;
		rc = cli_conn_recv(n->tc, dl, &payload, &plen);
		if (rc != 0)
			break;
		Ringraft__Kv__Response *rs = ringraft__kv__response__unpack(NULL, plen, payload);
		if (rs == NULL)
			break;
		if (rs->id == req->id) {
			*resp = rs;
			return 0;
		}
		ringraft__kv__response__free_unpacked(rs, NULL);
	}
	drop_conn(n);
	return -1;
}

int cluster_call(struct cluster *c, int node, Ringraft__Kv__Request *req,
		 Ringraft__Kv__Response **resp, int timeout_ms)
{
	struct cnode *n = &c->nodes[node - 1];
	*resp = NULL;
	if (n->pid <= 0)
		return -1;
	uint64_t deadline = cluster_now_ms() + (uint64_t)timeout_ms;
	if (c->tls != NULL)
		return call_tls(c, n, req, resp, deadline);
	if (n->fd < 0) {
		n->fd = connect_node(n, timeout_ms);
		if (n->fd < 0)
			return -1;
	}
	req->id = ++c->next_id;
	size_t len = ringraft__kv__request__get_packed_size(req);
	uint8_t *buf = malloc(len + NET_FRAME_HEADER);
	if (buf == NULL)
		return -1;
	net_frame_header(buf, (uint32_t)len);
	ringraft__kv__request__pack(req, buf + NET_FRAME_HEADER);
	size_t sent = 0, total = len + NET_FRAME_HEADER;
	while (sent < total) {
		ssize_t w = send(n->fd, buf + sent, total - sent, MSG_NOSIGNAL);
		if (w > 0) {
			sent += (size_t)w;
			continue;
		}
		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			int left = (int)(deadline - cluster_now_ms());
			struct pollfd p = {n->fd, POLLOUT, 0};
			if (left <= 0 || poll(&p, 1, left) <= 0) {
				free(buf);
				drop_conn(n);
				return -1;
			}
			continue;
		}
		free(buf);
		drop_conn(n);
		return -1;
	}
	free(buf);
	uint8_t rbuf[65536];
	for (;;) {
		const uint8_t *payload;
		uint32_t plen;
		int r = net_decoder_next(&n->dec, &payload, &plen);
		if (r < 0) {
			drop_conn(n);
			return -1;
		}
		if (r == 1) {
			Ringraft__Kv__Response *rs =
				ringraft__kv__response__unpack(NULL, plen, payload);
			if (rs == NULL) {
				drop_conn(n);
				return -1;
			}
			if (rs->id == req->id) {
				*resp = rs;
				return 0;
			}
			ringraft__kv__response__free_unpacked(rs, NULL);
			continue;
		}
		int64_t left = (int64_t)deadline - (int64_t)cluster_now_ms();
		if (left <= 0) {
			drop_conn(n);
			return -1;
		}
		struct pollfd p = {n->fd, POLLIN, 0};
		int pr = poll(&p, 1, (int)left);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0) {
			drop_conn(n);
			return -1;
		}
		ssize_t got = recv(n->fd, rbuf, sizeof rbuf, 0);
		if (got <= 0) {
			if (got < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			drop_conn(n);
			return -1;
		}
		if (net_decoder_feed(&n->dec, rbuf, (size_t)got) != NET_OK) {
			drop_conn(n);
			return -1;
		}
	}
}

int cluster_put(struct cluster *c, int node, const char *key, const char *value, int timeout_ms)
{
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__PUT;
	rq.client_id = c->client_id;
	rq.seq = ++c->seq;
	rq.key.data = (uint8_t *)key;
	rq.key.len = strlen(key);
	rq.value.data = (uint8_t *)value;
	rq.value.len = strlen(value);
	rq.timeout_ms = (uint32_t)timeout_ms;
	Ringraft__Kv__Response *rs;
	if (cluster_call(c, node, &rq, &rs, timeout_ms + 500) < 0)
		return -1;
	int code = rs->code;
	ringraft__kv__response__free_unpacked(rs, NULL);
	return code;
}

int cluster_get(struct cluster *c, int node, const char *key, char **value, bool serializable,
		int timeout_ms)
{
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__GET;
	rq.key.data = (uint8_t *)key;
	rq.key.len = strlen(key);
	rq.timeout_ms = (uint32_t)timeout_ms;
	rq.consistency = serializable ? RINGRAFT__KV__CONSISTENCY__SERIALIZABLE
				      : RINGRAFT__KV__CONSISTENCY__LINEARIZABLE;
	if (value)
		*value = NULL;
	Ringraft__Kv__Response *rs;
	if (cluster_call(c, node, &rq, &rs, timeout_ms + 500) < 0)
		return -1;
	int code = rs->code;
	if (code == RINGRAFT__KV__CODE__OK && value != NULL) {
		*value = malloc(rs->value.len + 1);
		if (rs->value.len)
			memcpy(*value, rs->value.data, rs->value.len);
		(*value)[rs->value.len] = '\0';
	}
	ringraft__kv__response__free_unpacked(rs, NULL);
	return code;
}

static Ringraft__Kv__Response *status_of(struct cluster *c, int node, int timeout_ms)
{
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__STATUS;
	Ringraft__Kv__Response *rs;
	if (cluster_call(c, node, &rq, &rs, timeout_ms) < 0)
		return NULL;
	if (rs->status == NULL) {
		ringraft__kv__response__free_unpacked(rs, NULL);
		return NULL;
	}
	return rs;
}

bool cluster_put_any(struct cluster *c, const char *key, const char *value, int avoid)
{
	uint64_t deadline = cluster_now_ms() + 8000;
	for (int attempt = 0; cluster_now_ms() < deadline; attempt++) {
		int node = 1 + attempt % c->n;
		if (node == avoid || !cluster_running(c, node))
			continue;
		if (cluster_put(c, node, key, value, 1000) == RINGRAFT__KV__CODE__OK)
			return true;
	}
	return false;
}

static void acked_pair(const char *prefix, int i, char *key, char *val, size_t cap)
{
	snprintf(key, cap, "%s%04d", prefix, i);
	snprintf(val, cap, "%s-value-%d", prefix, i);
}

void cluster_write_acked(struct cluster *c, const char *prefix, int n, int avoid)
{
	char key[96], val[96];
	for (int i = 0; i < n; i++) {
		acked_pair(prefix, i, key, val, sizeof key);
		ck_assert_msg(cluster_put_any(c, key, val, avoid), "write %s not acknowledged", key);
	}
}

void cluster_read_back(struct cluster *c, const char *prefix, int n, int via)
{
	char key[96], val[96];
	for (int i = 0; i < n; i++) {
		acked_pair(prefix, i, key, val, sizeof key);
		char *got = NULL;
		int code = -1, node = via;
		uint64_t deadline = cluster_now_ms() + 8000;
		for (int attempt = 0; cluster_now_ms() < deadline; attempt++) {
			if (via == 0 && !cluster_running(c, (node = 1 + attempt % c->n)))
				continue;
			code = cluster_get(c, node, key, &got, false, 1000);
			if (code == RINGRAFT__KV__CODE__OK || code == RINGRAFT__KV__CODE__NOT_FOUND)
				break;
		}
		ck_assert_msg(code == RINGRAFT__KV__CODE__OK,
			      "acknowledged write %s lost (code %d via %d)", key, code, node);
		ck_assert_str_eq(got, val);
		free(got);
	}
}

uint64_t cluster_leader_seen(struct cluster *c, int node, uint32_t g)
{
	Ringraft__Kv__Response *rs = status_of(c, node, 1000);
	if (rs == NULL)
		return 0;
	uint64_t leader = 0;
	for (size_t i = 0; i < rs->status->n_groups; i++)
		if (rs->status->groups[i]->group == g)
			leader = rs->status->groups[i]->leader;
	ringraft__kv__response__free_unpacked(rs, NULL);
	return leader;
}

static bool usable(const struct cluster *c, int i)
{
	return c->nodes[i - 1].pid > 0 && !c->nodes[i - 1].stopped;
}

/* Fills leaders[g-1] with the agreed leader (0 = no agreement). Returns true if every group
 * has one. */
static bool agreed_leaders(struct cluster *c, uint64_t *leaders)
{
	uint32_t G = c->o.groups + 1; /* the meta group too (node/members.c) */
	bool all = true;
	uint64_t seen[CLUSTER_NODES_MAX][256];
	char roles_leader[CLUSTER_NODES_MAX][256];
	char hosts[CLUSTER_NODES_MAX][256]; /* node i+1 reports group g+1 */
	memset(seen, 0, sizeof seen);
	memset(roles_leader, 0, sizeof roles_leader);
	memset(hosts, 0, sizeof hosts);
	for (int i = 1; i <= c->n; i++) {
		if (!usable(c, i))
			continue;
		Ringraft__Kv__Response *rs = status_of(c, i, 1000);
		if (rs == NULL)
			return false;
		for (size_t k = 0; k < rs->status->n_groups; k++) {
			Ringraft__Kv__GroupStatus *gs = rs->status->groups[k];
			if (gs->group >= 1 && gs->group <= G && gs->group <= 256) {
				seen[i - 1][gs->group - 1] = gs->leader;
				hosts[i - 1][gs->group - 1] = 1;
				roles_leader[i - 1][gs->group - 1] =
					gs->role && strcmp(gs->role, "leader") == 0;
			}
		}
		ringraft__kv__response__free_unpacked(rs, NULL);
	}
	for (uint32_t g = 0; g < G && g < 256; g++) {
		uint64_t l = 0;
		bool ok = true;
		for (int i = 1; i <= c->n; i++) {
			if (!usable(c, i) || !hosts[i - 1][g])
				continue;
			if (seen[i - 1][g] == 0 || (l != 0 && seen[i - 1][g] != l))
				ok = false;
			l = seen[i - 1][g];
		}
		if (ok &&
		    (l < 1 || l > (uint64_t)c->n || !usable(c, (int)l) || !roles_leader[l - 1][g]))
			ok = false;
		leaders[g] = ok ? l : 0;
		if (!ok)
			all = false;
	}
	return all;
}

int cluster_wait_leaders(struct cluster *c, int timeout_ms)
{
	uint64_t deadline = cluster_now_ms() + (uint64_t)timeout_ms;
	uint64_t leaders[256];
	while (cluster_now_ms() < deadline) {
		if (agreed_leaders(c, leaders))
			return 0;
		sleep_ms(50);
	}
	return -1;
}

uint64_t cluster_leader_of(struct cluster *c, uint32_t g, int timeout_ms)
{
	uint64_t deadline = cluster_now_ms() + (uint64_t)timeout_ms;
	uint64_t leaders[256];
	do {
		agreed_leaders(c, leaders);
		if (g >= 1 && g <= c->o.groups + 1 && leaders[g - 1] != 0) /* + the meta group */
			return leaders[g - 1];
		sleep_ms(50);
	} while (cluster_now_ms() < deadline);
	return 0;
}

static int digest_of(struct cluster *c, int node, uint32_t g, uint8_t out[16], uint64_t *applied)
{
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__DIGEST;
	rq.group = g;
	Ringraft__Kv__Response *rs;
	if (cluster_call(c, node, &rq, &rs, 1000) < 0)
		return -1;
	int rc = -1;
	if (rs->code == RINGRAFT__KV__CODE__OK && rs->value.len == 16) {
		memcpy(out, rs->value.data, 16);
		*applied = rs->applied_index;
		rc = 0;
	} else if (rs->code == RINGRAFT__KV__CODE__NOT_LEADER && rs->error != NULL &&
		   strcmp(rs->error, "group not hosted on this node") == 0) {
		rc = 1;
	}
	ringraft__kv__response__free_unpacked(rs, NULL);
	return rc;
}

int cluster_wait_digests_equal(struct cluster *c, int timeout_ms)
{
	uint64_t deadline = cluster_now_ms() + (uint64_t)timeout_ms;
	while (cluster_now_ms() < deadline) {
		bool same = true;
		for (uint32_t g = 1; g <= c->o.groups && same; g++) {
			uint8_t first[16], d[16];
			uint64_t first_applied = 0, applied;
			bool have = false;
			for (int i = 1; i <= c->n && same; i++) {
				if (!usable(c, i))
					continue;
				int rc = digest_of(c, i, g, d, &applied);
				if (rc == 1)
					continue; /* the node hosts no replica of g */
				if (rc < 0) {
					same = false;
					break;
				}
				if (!have) {
					memcpy(first, d, 16);
					first_applied = applied;
					have = true;
				} else if (memcmp(first, d, 16) != 0 || applied != first_applied) {
					same = false;
				}
			}
		}
		if (same)
			return 0;
		sleep_ms(100);
	}
	return -1;
}

void cluster_key_in_group(const struct cluster *c, uint32_t g, const char *prefix, char *out,
			  size_t out_len)
{
	struct kv_ring *ring = kv_ring_new(c->o.groups, 128, 1);
	for (unsigned i = 0;; i++) {
		snprintf(out, out_len, "%s-%u", prefix, i);
		if (kv_ring_group_of(ring, out, strlen(out)) == g)
			break;
	}
	kv_ring_free(ring);
}

int cluster_log_grep(const struct cluster *c, int node, const char *needle)
{
	FILE *f = fopen(c->nodes[node - 1].log, "r");
	if (f == NULL)
		return 0;
	char line[2048];
	int count = 0;
	while (fgets(line, sizeof line, f) != NULL)
		if (strstr(line, needle) != NULL)
			count++;
	fclose(f);
	return count;
}

bool cluster_wait_log(const struct cluster *c, int node, const char *needle, int count,
		      int timeout_ms)
{
	uint64_t deadline = cluster_now_ms() + (uint64_t)timeout_ms;
	while (cluster_log_grep(c, node, needle) < count) {
		if (cluster_now_ms() >= deadline)
			return false;
		struct timespec ts = {0, 50 * 1000000L};
		nanosleep(&ts, NULL);
	}
	return true;
}

void cluster_dump_logs(const struct cluster *c, int lines)
{
	for (int i = 0; i < c->n; i++) {
		fprintf(stderr, "---- node %d log (%s)\n", i + 1, c->nodes[i].log);
		dump_log(&c->nodes[i], lines);
	}
}

void cluster_teardown(struct cluster **cp)
{
	int bad = cluster_shutdown(*cp);
	cluster_destroy(*cp);
	*cp = NULL;
	ck_assert_msg(bad == 0, "%d node(s) crashed or did not stop cleanly", bad);
}

int cluster_dial(const char *addr)
{
	struct sockaddr_storage ss;
	ck_assert_int_eq(net_parse_addr(addr, &ss), NET_OK);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)), 0);
	return fd;
}

bool cluster_closed_within(int fd, int timeout_ms)
{
	uint64_t end = cluster_now_ms() + (uint64_t)timeout_ms;
	char buf[4096];
	while (cluster_now_ms() < end) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, 50) <= 0)
			continue;
		ssize_t r = recv(fd, buf, sizeof buf, 0);
		if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN))
			return true;
	}
	return false;
}

Ringraft__Kv__Response *cluster_read_response(int fd, int timeout_ms)
{
	struct net_decoder d;
	net_decoder_init(&d, NET_CLIENT_FRAME_MAX * 2);
	uint64_t end = cluster_now_ms() + (uint64_t)timeout_ms;
	uint8_t buf[65536];
	Ringraft__Kv__Response *rs = NULL;
	while (rs == NULL) {
		const uint8_t *p;
		uint32_t len;
		if (net_decoder_next(&d, &p, &len) == 1) {
			rs = ringraft__kv__response__unpack(NULL, len, p);
			break;
		}
		int left = (int)(end - cluster_now_ms());
		struct pollfd pf = {fd, POLLIN, 0};
		if (left <= 0 || poll(&pf, 1, left) <= 0)
			break;
		ssize_t r = recv(fd, buf, sizeof buf, 0);
		if (r <= 0)
			break;
		net_decoder_feed(&d, buf, (size_t)r);
	}
	net_decoder_free(&d);
	return rs;
}
