/* cluster.h — integration-test fixture: three (up to five) real kvd processes on 127.0.0.11-13
 * (11-15).
 * Starts kvd from $RINGRAFT_BIN in temp dirs, waits (bounded) for leaders, kills / stops /
 * restarts nodes, and talks kv.proto to one node (cluster_call); every process and temp dir is
 * removed at exit, on fatal signals and after failed or timed-out tests. Nodes are 1..3
 * (1..opts.nodes).
 */
#ifndef RINGRAFT_TESTS_CLUSTER_H
#define RINGRAFT_TESTS_CLUSTER_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/kv.pb-c.h"

#define CLUSTER_NODES     3 /* the default size */
#define CLUSTER_NODES_MAX 5

struct cluster_opts {
	uint32_t groups;           /* --groups (default 4) */
	uint32_t election_ms;      /* --election-ms (default 400) */
	uint32_t heartbeat_ms;     /* --heartbeat-ms (default 50) */
	uint64_t snapshot_entries; /* --snapshot-entries (0 = kvd default) */
	const char *extra_args; /* appended to every kvd command line (space-separated), or NULL */
	bool keep_logs;         /* leave node logs on stderr of the test (default: in data dir) */
	bool resp;              /* give every node a RESP port (--resp-addr, cluster_resp_addr) */
	const char *env;        /* extra environment for every kvd, "K=V K2=V2", or NULL; each kvd
				 * also gets CLUSTER_NODE=<its number> */
	bool metrics;           /* every kvd serves --metrics-addr (cluster_metrics_addr) */
	int nodes;              /* 3 (0 = default) to CLUSTER_NODES_MAX; with more than 3, each
				 * group has 3 replicas and some nodes host none of a group's */
	int boot_nodes;         /* the bootstrap members, started by cluster_start (0 = every
				 * node); the others join later (cluster_join) */
	const char *tls_dir;    /* TLS on every port: node N runs with DIR/nodeN.pem/.key and
				 * DIR/ca.pem, cluster_call presents DIR/client.pem/.key (made by
				 * scripts/tls-certs DIR node1 node2 node3 client); NULL = plaintext */
	const char *peer_secret_dir; /* peer authentication: node N runs with
				      * --peer-secret-file DIR/secretN (read at every start);
				      * NULL = none */
};
void cluster_opts_default(struct cluster_opts *o);

struct cluster;

/* Starts the nodes and waits up to 20 s for every group to have a leader known to every node.
 * Returns NULL (after cleaning up) on failure, with the reason on stderr. opts may be NULL. */
struct cluster *cluster_start(const struct cluster_opts *opts);
/* Kills every node (SIGKILL) and removes the temp dirs. NULL is a no-op. */
void cluster_destroy(struct cluster *c);
/* Checks that every started node is still alive, then stops each with SIGTERM and checks it
 * exits 0 (under ASan this catches memory errors and leaks). Prints the log of every node that
 * died or exited non-zero; returns how many did. Call before cluster_destroy. */
int cluster_shutdown(struct cluster *c);
/* A test fixture's teardown: cluster_shutdown, cluster_destroy, *cp = NULL, then a Check
 * failure naming how many nodes crashed or did not stop cleanly. */
void cluster_teardown(struct cluster **cp);

/* Addresses ("127.0.0.1N:port", valid until cluster_destroy) and data dir of node 1..3. */
const char *cluster_client_addr(const struct cluster *c, int node);
const char *cluster_peer_addr(const struct cluster *c, int node);
/* The node's RESP address ("127.0.0.1N:port"; "" unless opts.resp). */
const char *cluster_resp_addr(const struct cluster *c, int node);
const char *cluster_data_dir(const struct cluster *c, int node);
/* The node's --metrics-addr when opts.metrics was set ("127.0.0.1N:port"), else "". */
const char *cluster_metrics_addr(const struct cluster *c, int node);
/* "addr1,addr2,addr3": the client endpoints of every node (valid until cluster_destroy). */
const char *cluster_endpoints(const struct cluster *c);
uint32_t cluster_groups(const struct cluster *c);
int cluster_nodes(const struct cluster *c);

/* Runs `$RINGRAFT_BIN/kvctl --endpoints E --timeout T ARGS` (E: endpoints, or every node's
 * when NULL; T: timeout_s seconds; ARGS: fmt, a shell command line's tail) and returns its exit
 * status (-1: it did not exit). Its stdout and stderr go to *out (malloc'd, whole, the caller
 * frees) when out is not NULL, else to this process's stderr. */
int cluster_kvctl(const struct cluster *c, const char *endpoints, unsigned timeout_s, char **out,
		  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
int cluster_kvctlv(const struct cluster *c, const char *endpoints, unsigned timeout_s, char **out,
		   const char *fmt, va_list ap);

/* Process control. kill = SIGKILL + reap; stop/cont = SIGSTOP/SIGCONT; term = SIGTERM and wait
 * (bounded, 20 s) for the exit status (returned; -1 if it had to be killed). restart starts a
 * stopped/killed node again with only --data-dir (plus the timing flags) and waits until its
 * client port answers. */
/* Starts node (beyond opts.boot_nodes) with kvd --join, after `kvctl member add` added it. */
int cluster_join(struct cluster *c, int node);
void cluster_kill(struct cluster *c, int node);
void cluster_stop(struct cluster *c, int node);
void cluster_cont(struct cluster *c, int node);
int cluster_term(struct cluster *c, int node);
int cluster_restart(struct cluster *c, int node);
/* The same with the node's first-start flags (--id, --client-addr, --cluster, --groups,
 * --snapshot-entries), for a node whose data directory was emptied (cluster.conf gone). */
int cluster_restart_fresh(struct cluster *c, int node);
/* Removes everything in a killed or stopped-by-term node's data directory (the directory
 * itself stays, empty). Returns 0, or -1 if the node is running or removal failed. */
int cluster_wipe(struct cluster *c, int node);
bool cluster_running(const struct cluster *c, int node); /* started and not killed */
/* True if the node's process exited on its own (crash, fatal error); reaps it. */
bool cluster_died(struct cluster *c, int node);
/* After cluster_died: the exit status (128 + signal if killed by a signal). */
int cluster_exit_status(const struct cluster *c, int node);

/* One request to one node, blocking, with a deadline. The request's id is filled in. On 0,
 * *resp is owned by the caller (ringraft__kv__response__free_unpacked(*resp, NULL)).
 * Returns -1 on connect/IO/decode error or timeout. */
int cluster_call(struct cluster *c, int node, Ringraft__Kv__Request *req,
		 Ringraft__Kv__Response **resp, int timeout_ms);

/* Convenience calls through node `node` (forwarding enabled). Return the response Code, or
 * -1 on transport error. get: *value malloc'd (NUL-terminated) when OK. */
int cluster_put(struct cluster *c, int node, const char *key, const char *value, int timeout_ms);
int cluster_get(struct cluster *c, int node, const char *key, char **value, bool serializable,
		int timeout_ms);

/* Acknowledged writes and their reads, for the durability tests. put_any: a definite OK within
 * 8 s from any running node but `avoid` (0: none), trying them in turn (a client retries
 * NOT_LEADER and UNAVAILABLE while a leader is elected). write_acked: keys prefix0000 ..
 * prefix<n-1> with values "prefix-value-i" through put_any, each asserted acknowledged.
 * read_back: each of them read (linearizable) through node `via`, or any running node when
 * via is 0, within 8 s a key, and asserted to hold its value. */
bool cluster_put_any(struct cluster *c, const char *key, const char *value, int avoid);
void cluster_write_acked(struct cluster *c, const char *prefix, int n, int avoid);
void cluster_read_back(struct cluster *c, const char *prefix, int n, int via);

/* The leader of group g as node `node` sees it (0 = none / unreachable). */
uint64_t cluster_leader_seen(struct cluster *c, int node, uint32_t g);
/* Waits until every running, non-stopped node agrees on a leader for every group (the leader
 * itself among them). Returns 0, or -1 after timeout_ms. */
int cluster_wait_leaders(struct cluster *c, int timeout_ms);
/* The agreed leader of group g (waiting up to timeout_ms), 0 if none. */
uint64_t cluster_leader_of(struct cluster *c, uint32_t g, int timeout_ms);
/* Waits until every group's DIGEST (and applied index) is identical on every running node.
 * Returns 0, or -1 after timeout_ms. */
int cluster_wait_digests_equal(struct cluster *c, int timeout_ms);

/* Milliseconds of a monotonic clock. */
uint64_t cluster_now_ms(void);
/* A blocking TCP connection to "host:port" (a raw client for tests that speak bytes);
 * fails the test if it cannot connect. */
int cluster_dial(const char *addr);
/* Waits up to timeout_ms for the server to close fd (EOF or reset), reading and discarding
 * whatever comes first (a TLS alert, a reply). True if it closed. */
bool cluster_closed_within(int fd, int timeout_ms);
/* Reads one whole client Response frame from a raw connection within timeout_ms: the
 * decoded response (free with ringraft__kv__response__free_unpacked), or NULL on close,
 * timeout or bytes that do not decode. */
Ringraft__Kv__Response *cluster_read_response(int fd, int timeout_ms);

/* A key ("prefix-N") that the ring (groups, 128 vnodes, epoch 1) maps to group g. */
void cluster_key_in_group(const struct cluster *c, uint32_t g, const char *prefix, char *out,
			  size_t out_len);
/* The node's log file (kvd runs with --log-level info), and how many lines contain needle. */
const char *cluster_log_path(const struct cluster *c, int node);
int cluster_log_grep(const struct cluster *c, int node, const char *needle);
/* Waits (bounded: timeout_ms) until node's log has at least `count` lines containing needle,
 * for what a node does in the background (a compaction, a scrub, a refusal); true if it has. */
bool cluster_wait_log(const struct cluster *c, int node, const char *needle, int count,
		      int timeout_ms);
/* Prints the last `lines` lines of every node's log to stderr (for failing tests). */
void cluster_dump_logs(const struct cluster *c, int lines);

#endif
