/* config.c — flags, --config file and DIR/cluster.conf (increasing precedence: cluster.conf,
 * file, flags). Identity keys may not differ from the persisted ones; every refusal names the flag
 * to fix. cluster.conf is written as temp file + fsync + rename + fsync of the directory.
 */
#include "node/config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "kv/kv_limits.h"
#include "net/frame.h"
#include "node/backup_load.h"
#include "node/log.h"
#include "node/node_err.h"
#include "node/peer_secret.h"
#include "raft/raft_limits.h"
#include "wal/wal_limits.h"

#define CLUSTER_CONF "cluster.conf"

enum key_kind { K_IDENTITY, K_TUNABLE, K_LOCAL };

static const struct key_def {
	const char *name;
	enum key_kind kind;
	const char *help;
} keys[] = {
	{"id", K_IDENTITY, "this node's id, a member of --cluster (first start)"},
	{"data-dir", K_LOCAL, "directory for the WAL, LMDB and cluster.conf (always required)"},
	{"peer-addr", K_IDENTITY, "host:port for peers (default: this node's entry in --cluster)"},
	{"client-addr", K_IDENTITY, "host:port the client service listens on (first start)"},
	{"resp-addr", K_TUNABLE,
	 "host:port of the Redis protocol (RESP) port; off when not given (docs/CLI.md)"},
	{"cluster", K_IDENTITY, "every member as id=host:port[,id=host:port...] (first start)"},
	{"join", K_IDENTITY,
	 "on|off: this node joins a running cluster (after `kvctl member add`): --id is not in "
	 "--cluster, which lists the cluster's bootstrap members; --peer-addr is required (first "
	 "start; default off)"},
	{"groups", K_IDENTITY,
	 "number of Raft groups holding keys, 1..4095 (default 8; fixed at bootstrap; one more, "
	 "the meta group, holds the cluster map)"},
	{"config", K_LOCAL, "read `key = value` lines with these same keys from FILE"},
	{"log-level", K_TUNABLE, "error|warn|info|debug (default warn: quiet)"},
	{"tick-ms", K_TUNABLE, "Raft logical tick in ms (default 10)"},
	{"election-ms", K_TUNABLE,
	 "base election timeout in ms; actual is random in [t, 2t) "
	 "(default 1000)"},
	{"heartbeat-ms", K_TUNABLE, "leader heartbeat interval in ms (default 100)"},
	{"snapshot-entries", K_TUNABLE,
	 "compact a group's log after this many applied entries "
	 "(default 10000, min 16)"},
	{"snapshot-bytes", K_TUNABLE,
	 "compact a group's log also once the entries it holds in memory reach this many bytes "
	 "(applied entries past it leave memory at once, the WAL at the next checkpoint), "
	 "0 = only by --snapshot-entries (default 4194304)"},
	{"checkpoint-ms", K_TUNABLE,
	 "checkpoint LMDB (a forced sync, the rollback point after a power loss) at most this "
	 "many ms after a write; 0 = only before a compaction (default 2000)"},
	{"apply-commit-ms", K_TUNABLE,
	 "hold applied entries in LMDB's open transaction at most this many ms before committing "
	 "them (a read commits them first; nothing waits for it); 0 = every tick (default 100)"},
	{"value-max", K_TUNABLE, "largest value in bytes (default 1048576)"},
	{"scrub-rate", K_TUNABLE,
	 "stored values checked per second by the background scrub, 0 = off (default 20000); a "
	 "damaged one is rebuilt from the peers"},
	{"request-timeout-ms", K_TUNABLE, "default client request deadline (default 5000)"},
	{"max-inflight", K_TUNABLE,
	 "requests the node holds at once (its clients' and those forwarded to it); beyond, a "
	 "request is answered BUSY (RESP -TRYAGAIN) at once, never proposed; 0 = no bound "
	 "(default 1024)"},
	{"max-inflight-bytes", K_TUNABLE,
	 "key and value bytes of those requests; beyond, BUSY; 0 = no bound (default 67108864)"},
	{"conn-max-inflight", K_TUNABLE,
	 "unanswered requests on one client connection (protobuf or RESP); beyond, BUSY; 0 = "
	 "no bound (default 1024)"},
	{"conn-max-inflight-bytes", K_TUNABLE,
	 "their bytes on one connection; beyond, BUSY; 0 = no bound (default 8388608)"},
	{"group-max-proposals", K_TUNABLE,
	 "writes of one group proposed by its leader and not yet applied; beyond, BUSY "
	 "(0 = no bound, default 256)"},
	{"group-max-wait-ms", K_TUNABLE,
	 "how long the oldest write a group leader proposed may wait unapplied; while it waits "
	 "longer, new writes to the group are answered BUSY, so that the queue in front of a "
	 "group holds no more than this much work (0 = no bound, default 0)"},
	{"quiesce", K_TUNABLE,
	 "on|off: a group idle for an election timeout stops heartbeating until a request or "
	 "a peer wakes it (default on)"},
	{"lease-reads", K_TUNABLE,
	 "on|off: a group leader that a quorum answered within the last election timeout (less "
	 "a 10% margin) serves linearizable reads at once, without a heartbeat round; assumes "
	 "the nodes' clocks run at rates within ~5% of each other and keep running while a "
	 "process or machine is stopped; off: every linearizable read takes a heartbeat round "
	 "(docs/DESIGN-NOTES.md \"Leader leases\"; default on)"},
	{"balance-leaders", K_TUNABLE,
	 "on|off: move group leaders to their preferred nodes "
	 "(default on)"},
	{"auto-balance", K_TUNABLE,
	 "on|off: move replicas between members until each holds the floor or ceiling of "
	 "3(G+1)/N (one move at a time, by the meta group's leader; default on)"},
	{"reshard-pause", K_TUNABLE,
	 "on|off: while this node leads the meta group, ring changes (kvctl groups add/remove) "
	 "are decided and their groups created, but no key moves: a change under way waits "
	 "(to look before keys move, or to hold a move back; default off)"},
	{"wal-no-sync", K_TUNABLE, "on|off: skip fdatasync (benchmarks only; default off)"},
	{"wal-writer", K_TUNABLE,
	 "thread|inline: who writes and syncs each WAL batch: a writer thread of its own, the "
	 "event loop going on meanwhile, or the loop itself at the end of its turn, after the "
	 "turn's messages are sent (no hand-off between threads; docs/PERFORMANCE.md; default "
	 "thread)"},
	{"kv-sync", K_TUNABLE,
	 "on|off: LMDB syncs every applied batch, so that after a power cut this node restarts "
	 "by itself instead of refusing (docs/DURABILITY.md; costs an fsync per batch; default "
	 "off)"},
	{"auto-repair", K_TUNABLE,
	 "on|off: after a machine crash (power cut) left LMDB untrusted, set it aside "
	 "(kv.untrusted-TIME), open a fresh one and rebuild every group from the WAL or from the "
	 "peers, with no operator (docs/DURABILITY.md); off: refuse to start (default on)"},
	{"metrics-addr", K_TUNABLE,
	 "host:port of the HTTP endpoint serving /metrics (Prometheus) and /health (default: "
	 "none)"},
	{"wal-no-direct-io", K_TUNABLE,
	 "on|off: write WAL batches through the page cache, never with O_DIRECT (default off: "
	 "O_DIRECT where the file system supports it)"},
	{"tls-cert", K_TUNABLE,
	 "PEM certificate (chain) of this node; with --tls-key and --tls-ca, TLS on every port "
	 "(default: plaintext)"},
	{"tls-key", K_TUNABLE, "PEM private key of --tls-cert"},
	{"tls-ca", K_TUNABLE,
	 "PEM CA certificate(s): peers must present a certificate it signed (mutual TLS)"},
	{"client-cert-auth", K_TUNABLE,
	 "on|off: clients (protobuf and RESP ports) must present a certificate --tls-ca signed "
	 "(default off)"},
	{"restore", K_LOCAL,
	 "FILE: seed this new node's groups from a backup (kvctl backup) at its first start; "
	 "every node of the new cluster starts so, with the backup's --groups "
	 "(docs/OPERATIONS.md)"},
	{"peer-secret-file", K_TUNABLE,
	 "FILE of 1-4 cluster secrets, one per line (>= 16 bytes each, mode 600): peers must "
	 "prove they hold one; the first is this node's, the others still accepted (rotation; "
	 "default: off)"},
};
#define N_KEYS (sizeof keys / sizeof keys[0])

struct source {
	char *val[N_KEYS];
	const char *name; /* for messages */
};

static void source_free(struct source *s)
{
	for (size_t i = 0; i < N_KEYS; i++)
		free(s->val[i]);
}

static int key_index(const char *name)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (strcmp(keys[i].name, name) == 0)
			return (int)i;
	return NODE_ECONFIG;
}

static int fail(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, n, fmt, ap);
	va_end(ap);
	return NODE_ECONFIG;
}

void node_config_usage(FILE *out)
{
	fprintf(out, "usage: kvd --id N --data-dir DIR --client-addr HOST:PORT --cluster "
		     "1=HOST:PORT,2=HOST:PORT,... [options]\n"
		     "       kvd --data-dir DIR [options]       (restart: settings come from "
		     "DIR/cluster.conf)\n\n"
		     "kvd hosts every Raft group of a ringraft cluster on this node.\n\n"
		     "flags (also accepted as --flag=value, and as `flag = value` lines in "
		     "--config FILE):\n");
	for (size_t i = 0; i < N_KEYS; i++)
		fprintf(out, "  --%-20s %s\n", keys[i].name, keys[i].help);
	fprintf(out, "  --%-20s %s\n", "help", "print this text");
	fprintf(out, "\nIdentity flags (id, peer-addr, client-addr, cluster, groups) are persisted "
		     "in DIR/cluster.conf at\nthe first start; giving them again with other values "
		     "is refused. See docs/OPERATIONS.md.\n");
}

static int set_val(struct source *s, const char *key, const char *val, char *err, size_t n)
{
	int k = key_index(key);
	if (k < 0)
		return fail(err, n, "%s: unknown setting '%s' (see kvd --help)", s->name, key);
	if (s->val[k] != NULL && strcmp(s->val[k], val) != 0)
		return fail(err, n, "%s: '%s' given twice with different values", s->name, key);
	free(s->val[k]);
	s->val[k] = strdup(val);
	return 0;
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t l = strlen(s);
	while (l > 0 &&
	       (s[l - 1] == ' ' || s[l - 1] == '\t' || s[l - 1] == '\n' || s[l - 1] == '\r'))
		s[--l] = '\0';
	return s;
}

/* 1 = read, 0 = no such file, -1 = error. */
static int read_file(const char *path, struct source *s, char *err, size_t n)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		if (errno == ENOENT)
			return 0;
		return fail(err, n, "cannot read %s: %s", path, strerror(errno));
	}
	char line[NODE_CONFIG_LINE_MAX];
	int lineno = 0;
	while (fgets(line, sizeof line, f) != NULL) {
		lineno++;
		char *l = trim(line);
		if (*l == '\0' || *l == '#')
			continue;
		char *eq = strchr(l, '=');
		if (eq == NULL) {
			fclose(f);
			return fail(err, n, "%s:%d: expected `key = value`", path, lineno);
		}
		*eq = '\0';
		char *k = trim(l), *v = trim(eq + 1);
		if (strncmp(k, "--", 2) == 0)
			k += 2;
		if (set_val(s, k, v, err, n) < 0) {
			fclose(f);
			return NODE_ECONFIG;
		}
	}
	fclose(f);
	return 1;
}

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	/* digits only: strtoull would also take leading white space and a sign */
	if (s == NULL || *s < '0' || *s > '9')
		return NODE_ECONFIG;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < lo || v > hi)
		return NODE_ECONFIG;
	*out = v;
	return 0;
}

static int parse_bool(const char *s, bool *out)
{
	if (strcmp(s, "on") == 0 || strcmp(s, "true") == 0 || strcmp(s, "1") == 0 ||
	    strcmp(s, "yes") == 0)
		*out = true;
	else if (strcmp(s, "off") == 0 || strcmp(s, "false") == 0 || strcmp(s, "0") == 0 ||
		 strcmp(s, "no") == 0)
		*out = false;
	else
		return NODE_ECONFIG;
	return 0;
}

static int check_addr(const char *flag, const char *a, char *err, size_t n)
{
	struct sockaddr_storage ss;
	if (strlen(a) >= NODE_ADDR_MAX || net_parse_addr(a, &ss) != NET_OK)
		return fail(err, n,
			    "--%s '%s' is not a valid address: use HOST:PORT with an IPv4 "
			    "address (or [IPv6]) and a port 1..65535",
			    flag, a);
	return 0;
}

static int cmp_member(const void *a, const void *b)
{
	const struct node_member *x = a, *y = b;
	return x->id < y->id ? -1 : x->id > y->id;
}

static int parse_cluster(const char *s, struct node_config *cfg, char *err, size_t n)
{
	char *copy = strdup(s);
	if (copy == NULL)
		return fail(err, n, "out of memory");
	char *save = NULL;
	cfg->n_members = 0;
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		tok = trim(tok);
		char *eq = strchr(tok, '=');
		uint64_t id;
		if (eq == NULL) {
			int rc = fail(err, n, "--cluster entry '%s' must be id=host:port", tok);
			free(copy); /* after fail: the message may quote the copy */
			return rc;
		}
		*eq = '\0';
		if (parse_u64(tok, 1, UINT32_MAX, &id) < 0) {
			int rc = fail(err, n, "--cluster: node id '%s' must be a number >= 1", tok);
			free(copy); /* after fail: the message may quote the copy */
			return rc;
		}
		if (cfg->n_members >= NODE_NODES_MAX) {
			int rc = fail(err, n, "--cluster: at most %d nodes", NODE_NODES_MAX);
			free(copy); /* after fail: the message may quote the copy */
			return rc;
		}
		if (check_addr("cluster", eq + 1, err, n) < 0) {
			free(copy);
			return NODE_ECONFIG;
		}
		for (size_t i = 0; i < cfg->n_members; i++) {
			if (cfg->members[i].id == id ||
			    strcmp(cfg->members[i].peer_addr, eq + 1) == 0) {
				int rc = fail(err, n,
					      "--cluster: node %llu or address %s appears twice",
					      (unsigned long long)id, eq + 1);
				free(copy); /* after fail: the message may quote the copy */
				return rc;
			}
		}
		cfg->members[cfg->n_members].id = id;
		snprintf(cfg->members[cfg->n_members].peer_addr, NODE_ADDR_MAX, "%s", eq + 1);
		cfg->n_members++;
	}
	free(copy);
	if (cfg->n_members == 0)
		return fail(err, n, "--cluster is empty: list every member as id=host:port,...");
	qsort(cfg->members, cfg->n_members, sizeof cfg->members[0], cmp_member);
	return 0;
}

int node_config_member_index(const struct node_config *cfg, uint64_t id)
{
	for (size_t i = 0; i < cfg->n_members; i++)
		if (cfg->members[i].id == id)
			return (int)i;
	return -1;
}

static void canonical_cluster(const struct node_config *cfg, char *out, size_t n)
{
	size_t off = 0;
	out[0] = '\0';
	for (size_t i = 0; i < cfg->n_members && off < n; i++)
		off += (size_t)snprintf(out + off, n - off, "%s%llu=%s", i ? "," : "",
					(unsigned long long)cfg->members[i].id,
					cfg->members[i].peer_addr);
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return NODE_ECONFIG;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

static int write_persisted(const struct node_config *cfg, const char *cluster_str, char *err,
			   size_t n)
{
	char path[NODE_PATH_MAX + 32], tmp[NODE_PATH_MAX + 32];
	snprintf(path, sizeof path, "%s/%s", cfg->data_dir, CLUSTER_CONF);
	snprintf(tmp, sizeof tmp, "%s/%s.tmp", cfg->data_dir, CLUSTER_CONF);
	FILE *f = fopen(tmp, "w");
	if (f == NULL)
		return fail(err, n, "cannot write %s: %s", tmp, strerror(errno));
	fprintf(f,
		"# ringraft node identity, written at bootstrap. Do not edit: a restart needs "
		"only\n"
		"# --data-dir; flags that differ from these values are refused.\n"
		"id = %llu\npeer-addr = %s\nclient-addr = %s\ncluster = %s\ngroups = %u\n"
		"join = %s\nsnapshot-entries = %llu\nvalue-max = %u\n",
		(unsigned long long)cfg->id, cfg->peer_addr, cfg->client_addr, cluster_str,
		cfg->groups, cfg->join ? "on" : "off", (unsigned long long)cfg->snapshot_entries,
		cfg->value_max);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		fclose(f);
		return fail(err, n, "cannot write %s: %s", tmp, strerror(errno));
	}
	fclose(f);
	if (rename(tmp, path) != 0 || fsync_dir(cfg->data_dir) != 0)
		return fail(err, n, "cannot install %s: %s", path, strerror(errno));
	return 0;
}

int node_config_load(int argc, char **argv, struct node_config *cfg, char *err, size_t n)
{
	struct source flags = {.name = "command line"}, file = {.name = "--config file"},
		      persisted = {.name = CLUSTER_CONF};
	int rc = NODE_ECONFIG;
	memset(cfg, 0, sizeof *cfg);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			node_config_usage(stdout);
			rc = 1;
			goto out;
		}
		if (strncmp(a, "--", 2) != 0) {
			fail(err, n,
			     "unexpected argument '%s' (flags start with --; see kvd --help)", a);
			goto out;
		}
		char key[64];
		const char *val;
		const char *eq = strchr(a, '=');
		if (eq != NULL) {
			snprintf(key, sizeof key, "%.*s", (int)(eq - a - 2), a + 2);
			val = eq + 1;
		} else {
			snprintf(key, sizeof key, "%s", a + 2);
			if (strcmp(key, "join") == 0 &&
			    (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0)) {
				val = "on"; /* --join alone: a switch */
			} else if (i + 1 >= argc) {
				fail(err, n, "--%s needs a value (see kvd --help)", key);
				goto out;
			} else {
				val = argv[++i];
			}
		}
		if (set_val(&flags, key, val, err, n) < 0)
			goto out;
	}
	int k_cfg = key_index("config"), k_dir = key_index("data-dir");
	if (flags.val[k_cfg] != NULL) {
		int r = read_file(flags.val[k_cfg], &file, err, n);
		if (r < 0)
			goto out;
		if (r == 0) {
			fail(err, n, "--config %s: no such file", flags.val[k_cfg]);
			goto out;
		}
	}
	const char *dir = flags.val[k_dir] ? flags.val[k_dir] : file.val[k_dir];
	if (dir == NULL || *dir == '\0') {
		fail(err, n, "--data-dir is required (see kvd --help)");
		goto out;
	}
	if (strlen(dir) >= NODE_PATH_MAX - 64) {
		fail(err, n, "--data-dir is too long");
		goto out;
	}
	snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s", dir);
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		fail(err, n, "--data-dir %s: cannot create: %s", dir, strerror(errno));
		goto out;
	}
	char ppath[NODE_PATH_MAX + 32];
	snprintf(ppath, sizeof ppath, "%s/%s", dir, CLUSTER_CONF);
	int have_persisted = read_file(ppath, &persisted, err, n);
	if (have_persisted < 0)
		goto out;
	int k_restore = key_index("restore");
	const char *restore = flags.val[k_restore] ? flags.val[k_restore] : file.val[k_restore];
	if (have_persisted && restore != NULL && restore[0] != '\0') {
		/* before the identity checks: the flags of a new cluster differ from these */
		fail(err, n,
		     "--restore %s: refused: %s already holds a node (cluster.conf); a restore "
		     "seeds a new cluster: use an empty --data-dir",
		     restore, dir);
		goto out;
	}
	/* cluster.conf is written whole at bootstrap (write_persisted, tmp + rename): one that
	 * lacks an identity key was damaged or edited. Taking the key from a flag instead would
	 * run the node on settings a restart with only --data-dir no longer finds (or, for
	 * groups, on the default), so it is refused. */
	for (size_t i = 0; have_persisted && i < N_KEYS; i++) {
		/* join came later: a cluster.conf without it is a bootstrap member's */
		if (keys[i].kind == K_IDENTITY && persisted.val[i] == NULL &&
		    strcmp(keys[i].name, "join") != 0) {
			fail(err, n,
			     "%s lacks '%s': the file is written whole at the first start, so it "
			     "was damaged or edited; restore it, or use a fresh data dir",
			     ppath, keys[i].name);
			goto out;
		}
	}

	/* A cluster.conf without join was written before --join existed: a bootstrap member's.
	 * It reads as "join = off", so that a --join given now conflicts with it below instead of
	 * making a node that a restart with only --data-dir no longer accepts (found by
	 * fuzz_config). */
	int k_join = key_index("join");
	if (have_persisted && persisted.val[k_join] == NULL &&
	    (persisted.val[k_join] = strdup("off")) == NULL) {
		fail(err, n, "out of memory");
		goto out;
	}

	/* kvd writes only the identity keys, snapshot-entries and value-max there: any other key
	 * was added by hand, and would become this node's setting at every restart with only
	 * --data-dir while a flag may hide it at this one (found by fuzz_config: a damaged
	 * kv-sync, or client-cert-auth, in cluster.conf overridden at the first start refused
	 * the restart). */
	for (size_t i = 0; have_persisted && i < N_KEYS; i++) {
		if (persisted.val[i] != NULL && keys[i].kind != K_IDENTITY &&
		    strcmp(keys[i].name, "snapshot-entries") != 0 &&
		    strcmp(keys[i].name, "value-max") != 0) {
			fail(err, n,
			     "%s holds '%s', which kvd never writes there: the file was edited; "
			     "give the setting as a flag or in the --config file, and restore the "
			     "file (or use a fresh data dir)",
			     ppath, keys[i].name);
			goto out;
		}
	}

	/* The tunables cluster.conf records must hold on their own too: a flag or the --config
	 * file may override them now, but a restart with only --data-dir reads them (found by
	 * fuzz_config: a damaged value-max, overridden at the first start, refused the restart). */
	if (have_persisted) {
		const struct {
			const char *name;
			uint64_t lo, hi;
		} recorded[] = {
			{"snapshot-entries", NODE_SNAPSHOT_ENTRIES_MIN, UINT32_MAX},
			{"value-max", 1, NET_CLIENT_FRAME_MAX - (uint64_t)KV_KEY_MAX - 1024},
		};
		for (size_t r = 0; r < sizeof recorded / sizeof recorded[0]; r++) {
			int i = key_index(recorded[r].name);
			uint64_t x;
			if (i >= 0 && persisted.val[i] != NULL &&
			    parse_u64(persisted.val[i], recorded[r].lo, recorded[r].hi, &x) != 0) {
				fail(err, n,
				     "%s has a bad '%s' (want a number in %llu..%llu): the file is "
				     "written whole at the first start, so it was damaged or edited; "
				     "restore it, or use a fresh data dir",
				     ppath, recorded[r].name, (unsigned long long)recorded[r].lo,
				     (unsigned long long)recorded[r].hi);
				goto out;
			}
		}
	}

	/* Resolve: flags > file > persisted; identity keys must not conflict with persisted. */
	const char *v[N_KEYS];
	for (size_t i = 0; i < N_KEYS; i++) {
		const char *given = flags.val[i] ? flags.val[i] : file.val[i];
		if (have_persisted && keys[i].kind == K_IDENTITY && given != NULL &&
		    persisted.val[i] != NULL && strcmp(given, persisted.val[i]) != 0) {
			/* --cluster may be spelled differently (order, spaces): compare parsed */
			bool same = false;
			if (strcmp(keys[i].name, "cluster") == 0) {
				struct node_config a, b;
				char ca[2048], cb[2048], e2[64];
				if (parse_cluster(given, &a, e2, sizeof e2) == 0 &&
				    parse_cluster(persisted.val[i], &b, e2, sizeof e2) == 0) {
					canonical_cluster(&a, ca, sizeof ca);
					canonical_cluster(&b, cb, sizeof cb);
					same = strcmp(ca, cb) == 0;
				}
			}
			if (!same) {
				fail(err, n,
				     "--%s %s conflicts with the value %s persisted in %s at "
				     "bootstrap: drop the flag (a restart needs only --data-dir), "
				     "or "
				     "use a fresh data dir for a new cluster",
				     keys[i].name, given, persisted.val[i], ppath);
				goto out;
			}
		}
		v[i] = given ? given : persisted.val[i];
	}
#define V(name) v[key_index(name)]
	uint64_t x;
	if (V("id") == NULL) {
		fail(err, n, "--id is required on the first start (this node's id in --cluster)");
		goto out;
	}
	if (parse_u64(V("id"), 1, UINT32_MAX, &cfg->id) < 0) {
		fail(err, n, "--id '%s' must be a number >= 1", V("id"));
		goto out;
	}
	if (V("cluster") == NULL) {
		fail(err, n,
		     "--cluster is required on the first start, e.g. "
		     "--cluster 1=127.0.0.11:7001,2=127.0.0.12:7001,3=127.0.0.13:7001");
		goto out;
	}
	if (parse_cluster(V("cluster"), cfg, err, n) < 0)
		goto out;
	cfg->n_boot = cfg->n_members;
	cfg->join = false;
	if (V("join") != NULL && parse_bool(V("join"), &cfg->join) < 0) {
		fail(err, n, "--join must be on or off");
		goto out;
	}
	int me = node_config_member_index(cfg, cfg->id);
	if (cfg->join) {
		/* A node added after bootstrap (node/members.c): the cluster map names it. */
		if (me >= 0) {
			fail(err, n,
			     "--join: --id %llu is a bootstrap member in --cluster; a joining node "
			     "has a new id (kvctl member add)",
			     (unsigned long long)cfg->id);
			goto out;
		}
		if (V("peer-addr") == NULL) {
			fail(err, n, "--join needs --peer-addr (HOST:PORT for peers)");
			goto out;
		}
		if (check_addr("peer-addr", V("peer-addr"), err, n) < 0)
			goto out;
		for (size_t i = 0; i < cfg->n_members; i++)
			if (strcmp(cfg->members[i].peer_addr, V("peer-addr")) == 0) {
				fail(err, n, "--peer-addr %s is bootstrap member %llu's address",
				     V("peer-addr"), (unsigned long long)cfg->members[i].id);
				goto out;
			}
		snprintf(cfg->peer_addr, sizeof cfg->peer_addr, "%s", V("peer-addr"));
	} else if (me < 0) {
		fail(err, n,
		     "--id %llu is not a member of --cluster %s: add it or fix the id (a node "
		     "joining a running cluster: kvctl member add, then kvd --join)",
		     (unsigned long long)cfg->id, V("cluster"));
		goto out;
	}
	if (cfg->join) {
		/* peer-addr taken above */
	} else if (V("peer-addr") != NULL) {
		if (check_addr("peer-addr", V("peer-addr"), err, n) < 0)
			goto out;
		if (strcmp(V("peer-addr"), cfg->members[me].peer_addr) != 0) {
			fail(err, n,
			     "--peer-addr %s differs from node %llu's address %s in --cluster",
			     V("peer-addr"), (unsigned long long)cfg->id,
			     cfg->members[me].peer_addr);
			goto out;
		}
	}
	if (!cfg->join)
		snprintf(cfg->peer_addr, sizeof cfg->peer_addr, "%s", cfg->members[me].peer_addr);
	if (V("client-addr") == NULL) {
		fail(err, n,
		     "--client-addr is required on the first start (HOST:PORT for clients)");
		goto out;
	}
	if (check_addr("client-addr", V("client-addr"), err, n) < 0)
		goto out;
	snprintf(cfg->client_addr, sizeof cfg->client_addr, "%s", V("client-addr"));
	if (strcmp(cfg->client_addr, cfg->peer_addr) == 0) {
		fail(err, n, "--client-addr and --peer-addr must differ");
		goto out;
	}
	cfg->resp_addr[0] = '\0';
	if (V("resp-addr") != NULL && V("resp-addr")[0] != '\0') {
		if (check_addr("resp-addr", V("resp-addr"), err, n) < 0)
			goto out;
		snprintf(cfg->resp_addr, sizeof cfg->resp_addr, "%s", V("resp-addr"));
		if (strcmp(cfg->resp_addr, cfg->peer_addr) == 0 ||
		    strcmp(cfg->resp_addr, cfg->client_addr) == 0) {
			fail(err, n, "--resp-addr must differ from --client-addr and --peer-addr");
			goto out;
		}
	}
	if (V("metrics-addr") != NULL) {
		if (check_addr("metrics-addr", V("metrics-addr"), err, n) < 0)
			goto out;
		if (strcmp(V("metrics-addr"), cfg->client_addr) == 0 ||
		    strcmp(V("metrics-addr"), cfg->peer_addr) == 0) {
			fail(err, n,
			     "--metrics-addr must differ from --client-addr and --peer-addr");
			goto out;
		}
		snprintf(cfg->metrics_addr, sizeof cfg->metrics_addr, "%s", V("metrics-addr"));
	}
	cfg->groups = NODE_GROUPS_DEFAULT;
	if (V("groups") != NULL) {
		/* one group id is the meta group's (node_int.h) */
		uint64_t maxg = (KV_GROUPS_MAX < WAL_GROUPS_MAX ? KV_GROUPS_MAX : WAL_GROUPS_MAX) - 1;
		if (parse_u64(V("groups"), 1, maxg, &x) < 0) {
			fail(err, n, "--groups '%s' must be 1..%llu", V("groups"),
			     (unsigned long long)maxg);
			goto out;
		}
		cfg->groups = (uint32_t)x;
	}
	struct {
		const char *name;
		uint64_t lo, hi, def;
		uint64_t *out64;
		uint32_t *out32;
	} nums[] = {
		{"tick-ms", 1, 1000, NODE_TICK_MS_DEFAULT, NULL, &cfg->tick_ms},
		{"election-ms", 10, 600000, NODE_ELECTION_MS_DEFAULT, NULL, &cfg->election_ms},
		{"heartbeat-ms", 1, 60000, NODE_HEARTBEAT_MS_DEFAULT, NULL, &cfg->heartbeat_ms},
		{"snapshot-entries", NODE_SNAPSHOT_ENTRIES_MIN, UINT32_MAX,
		 NODE_SNAPSHOT_ENTRIES_DEFAULT, &cfg->snapshot_entries, NULL},
		{"snapshot-bytes", 0, UINT64_MAX, NODE_SNAPSHOT_BYTES_DEFAULT, &cfg->snapshot_bytes,
		 NULL},
		{"checkpoint-ms", 0, 3600000, NODE_CHECKPOINT_MS_DEFAULT, NULL,
		 &cfg->checkpoint_ms},
		{"apply-commit-ms", 0, NODE_APPLY_COMMIT_MS_MAX, NODE_APPLY_COMMIT_MS_DEFAULT, NULL,
		 &cfg->apply_commit_ms},
		{"value-max", 1, 64u << 20, KV_VALUE_MAX_DEFAULT, NULL, &cfg->value_max},
		{"scrub-rate", 0, NODE_SCRUB_RATE_MAX, NODE_SCRUB_RATE_DEFAULT, NULL,
		 &cfg->scrub_rate},
		{"request-timeout-ms", 1, NODE_REQUEST_TIMEOUT_MS_MAX,
		 NODE_REQUEST_TIMEOUT_MS_DEFAULT, NULL, &cfg->request_timeout_ms},
		{"max-inflight", 0, UINT32_MAX, NODE_MAX_INFLIGHT_DEFAULT, NULL,
		 &cfg->max_inflight},
		{"max-inflight-bytes", 0, UINT64_MAX, NODE_MAX_INFLIGHT_BYTES_DEFAULT,
		 &cfg->max_inflight_bytes, NULL},
		{"conn-max-inflight", 0, UINT32_MAX, NODE_CONN_MAX_INFLIGHT_DEFAULT, NULL,
		 &cfg->conn_max_inflight},
		{"conn-max-inflight-bytes", 0, UINT64_MAX, NODE_CONN_MAX_INFLIGHT_BYTES_DEFAULT,
		 &cfg->conn_max_inflight_bytes, NULL},
		{"group-max-proposals", 0, UINT32_MAX, NODE_GROUP_MAX_PROPOSALS_DEFAULT, NULL,
		 &cfg->group_max_proposals},
		{"group-max-wait-ms", 0, NODE_GROUP_MAX_WAIT_MS_MAX, NODE_GROUP_MAX_WAIT_MS_DEFAULT,
		 NULL, &cfg->group_max_wait_ms},
	};
	for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
		x = nums[i].def;
		if (V(nums[i].name) != NULL &&
		    parse_u64(V(nums[i].name), nums[i].lo, nums[i].hi, &x) < 0) {
			fail(err, n, "--%s '%s' must be a number in %llu..%llu", nums[i].name,
			     V(nums[i].name), (unsigned long long)nums[i].lo,
			     (unsigned long long)nums[i].hi);
			goto out;
		}
		if (nums[i].out64)
			*nums[i].out64 = x;
		else
			*nums[i].out32 = (uint32_t)x;
	}
	if (cfg->heartbeat_ms < cfg->tick_ms || cfg->election_ms < 2 * cfg->heartbeat_ms) {
		fail(err, n,
		     "timing: need --tick-ms (%u) <= --heartbeat-ms (%u) and 2 x --heartbeat-ms <= "
		     "--election-ms (%u)",
		     cfg->tick_ms, cfg->heartbeat_ms, cfg->election_ms);
		goto out;
	}
	if (cfg->value_max + (size_t)KV_KEY_MAX + 1024 > RAFT_ENTRY_BYTES_MAX ||
	    cfg->value_max + (size_t)KV_KEY_MAX + 1024 > NET_CLIENT_FRAME_MAX) {
		fail(err, n, "--value-max %u is too large: a request must fit a %u-byte frame",
		     cfg->value_max, NET_CLIENT_FRAME_MAX);
		goto out;
	}
	cfg->log_level = NODE_LOG_WARN;
	if (V("log-level") != NULL && (cfg->log_level = node_log_level_parse(V("log-level"))) < 0) {
		fail(err, n, "--log-level '%s' must be error, warn, info or debug", V("log-level"));
		goto out;
	}
	cfg->auto_balance = true;
	if (V("auto-balance") != NULL && parse_bool(V("auto-balance"), &cfg->auto_balance) < 0) {
		fail(err, n, "--auto-balance must be on or off");
		goto out;
	}
	if (V("reshard-pause") != NULL &&
	    parse_bool(V("reshard-pause"), &cfg->reshard_pause) < 0) {
		fail(err, n, "--reshard-pause must be on or off");
		goto out;
	}
	cfg->quiesce = true;
	if (V("quiesce") != NULL && parse_bool(V("quiesce"), &cfg->quiesce) < 0) {
		fail(err, n, "--quiesce must be on or off");
		goto out;
	}
	cfg->lease_reads = true;
	if (V("lease-reads") != NULL && parse_bool(V("lease-reads"), &cfg->lease_reads) < 0) {
		fail(err, n, "--lease-reads must be on or off");
		goto out;
	}
	cfg->balance_leaders = true;
	if (V("balance-leaders") != NULL &&
	    parse_bool(V("balance-leaders"), &cfg->balance_leaders) < 0) {
		fail(err, n, "--balance-leaders must be on or off");
		goto out;
	}
	if (V("wal-no-direct-io") != NULL &&
	    parse_bool(V("wal-no-direct-io"), &cfg->wal_no_direct_io) < 0) {
		fail(err, n, "--wal-no-direct-io must be on or off");
		goto out;
	}
	if (V("wal-no-sync") != NULL && parse_bool(V("wal-no-sync"), &cfg->wal_no_sync) < 0) {
		fail(err, n, "--wal-no-sync must be on or off");
		goto out;
	}
	if (V("wal-writer") != NULL) {
		if (strcmp(V("wal-writer"), "inline") == 0) {
			cfg->wal_inline = true;
		} else if (strcmp(V("wal-writer"), "thread") != 0) {
			fail(err, n, "--wal-writer must be thread or inline");
			goto out;
		}
	}
	if (V("kv-sync") != NULL && parse_bool(V("kv-sync"), &cfg->kv_sync) < 0) {
		fail(err, n, "--kv-sync must be on or off");
		goto out;
	}
	cfg->auto_repair = true;
	if (V("auto-repair") != NULL && parse_bool(V("auto-repair"), &cfg->auto_repair) < 0) {
		fail(err, n, "--auto-repair must be on or off");
		goto out;
	}
	/* TLS (docs/SECURITY.md): the three files together; readable now, loaded by the shell. */
	{
		const char *tls_keys[3] = {"tls-cert", "tls-key", "tls-ca"};
		char *tls_dst[3] = {cfg->tls_cert, cfg->tls_key, cfg->tls_ca};
		int given = 0;
		for (int i = 0; i < 3; i++) {
			const char *path = V(tls_keys[i]);
			if (path == NULL || path[0] == '\0')
				continue;
			given++;
			if (strlen(path) >= NODE_PATH_MAX) {
				fail(err, n, "--%s is too long", tls_keys[i]);
				goto out;
			}
			if (access(path, R_OK) != 0) {
				fail(err, n, "--%s %s: cannot read: %s", tls_keys[i], path,
				     strerror(errno));
				goto out;
			}
			snprintf(tls_dst[i], NODE_PATH_MAX, "%s", path);
		}
		if (given != 0 && given != 3) {
			fail(err, n,
			     "--tls-cert, --tls-key and --tls-ca go together: give all three "
			     "(TLS) or none (plaintext)");
			goto out;
		}
		if (V("client-cert-auth") != NULL &&
		    parse_bool(V("client-cert-auth"), &cfg->client_cert_auth) < 0) {
			fail(err, n, "--client-cert-auth must be on or off");
			goto out;
		}
		if (cfg->client_cert_auth && given == 0) {
			fail(err, n,
			     "--client-cert-auth needs TLS: give --tls-cert, --tls-key and "
			     "--tls-ca");
			goto out;
		}
	}
	/* Peer authentication: the file is checked now (a bad one stops kvd with its reason),
	 * loaded again when the peer port opens (node/shell.c). */
	if (V("peer-secret-file") != NULL && V("peer-secret-file")[0] != '\0') {
		const char *path = V("peer-secret-file");
		if (strlen(path) >= NODE_PATH_MAX) {
			fail(err, n, "--peer-secret-file is too long");
			goto out;
		}
		static struct net_peer_secrets check;
		if (node_peer_secret_load(path, &check, err, n) != NODE_OK)
			goto out;
		net_peer_secrets_clear(&check);
		snprintf(cfg->peer_secret_file, NODE_PATH_MAX, "%s", path);
	}
	/* --restore (node/backup_load.c): only into a node that has never started, and only
	 * from a file checked whole now, before cluster.conf is written */
	if (V("restore") != NULL && V("restore")[0] != '\0') {
		const char *path = V("restore");
		if (strlen(path) >= NODE_PATH_MAX) {
			fail(err, n, "--restore is too long");
			goto out;
		}
		if (cfg->join) {
			fail(err, n,
			     "--restore and --join do not go together: a joining node gets its "
			     "replicas from the running cluster");
			goto out;
		}
		if (node_backup_file_check(path, cfg->groups, err, n) != NODE_OK)
			goto out;
		snprintf(cfg->restore_file, NODE_PATH_MAX, "%s", path);
	}
	char canon[2048];
	canonical_cluster(cfg, canon, sizeof canon);
	char idbuf[2100];
	int l = snprintf(idbuf, sizeof idbuf, "%s/groups=%u", canon, cfg->groups);
	cfg->cluster_id = XXH64(idbuf, (size_t)l, 0x72696e67);
	if (!have_persisted && write_persisted(cfg, canon, err, n) < 0)
		goto out;
#undef V
	rc = 0;
out:
	source_free(&flags);
	source_free(&file);
	source_free(&persisted);
	return rc;
}
