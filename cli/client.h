/* client.h — the blocking C client library of ringraft: kvctl, the integration tests and the
 * jepsen-lite workload clients all talk to the cluster through it.
 *
 * A client learns the ring (groups, vnodes, epoch, nodes' client addresses) and the group
 * leaders with STATUS, routes each key to its group's leader (kv/ring.h), follows NOT_LEADER
 * hints, and retries on other endpoints with bounded backoff until the per-request deadline.
 * Writes carry (client_id, seq); an indeterminate attempt is retried with the SAME pair, so a
 * write is applied at most once (Raft thesis 6.3), and the final answer is definite unless the
 * deadline passed first.
 *
 * Threading: a struct cli_client is used by one thread at a time (it owns its sockets and its
 * caches); give each thread its own. Distinct clients share nothing. Sockets are plain blocking
 * I/O driven by poll(2); no libuv. SIGPIPE is never raised (MSG_NOSIGNAL).
 */
#ifndef RINGRAFT_CLI_CLIENT_H
#define RINGRAFT_CLI_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli/cli_limits.h"

/* ------------------------------------------------------------------------------ results
 * Every call returns an int: >= 0 is an outcome (enum cli_code, the same numbers as kv.proto's
 * Code), < 0 is a local error (nothing was sent, or the library itself failed).
 *
 * Outcomes that can only come from the server (NOT_LEADER, WRONG_SHARD) are handled inside the
 * library and never returned by the routed calls; cli_call_endpoint() returns them as they are.
 * When the deadline passes (or max_retries is used up) without a final answer, a call returns
 * CLI_TIMEOUT if some attempt reached a node and got no final answer (indeterminate: a write
 * may have been applied), else CLI_UNAVAILABLE (definite: e.g. no node reachable at all). */
enum cli_code {
	CLI_OK = 0,
	CLI_NOT_FOUND = 1,    /* definite: get/delete of an absent key */
	CLI_CAS_MISMATCH = 2, /* definite: compare failed (see the current value) */
	CLI_NOT_LEADER = 3,   /* definite (cli_call_endpoint only) */
	CLI_INVALID = 4,      /* definite: malformed request (empty key, unknown group, ...) */
	CLI_TOO_LARGE = 5,    /* definite: key or value over the limit (checked locally too) */
	CLI_WRONG_SHARD = 6,  /* definite (cli_call_endpoint only) */
	CLI_UNAVAILABLE = 7,  /* definite: no node could take it before the deadline */
	CLI_TIMEOUT = 8,      /* indeterminate: the deadline passed, it may have happened */
	CLI_LEADER_LOST = 9,  /* indeterminate (cli_call_endpoint only; routed calls retry) */
	CLI_INTERNAL = 10,    /* indeterminate (cli_call_endpoint only; routed calls retry) */
	CLI_BUSY = 11,        /* definite: the node was over a load bound and refused it before
			       * proposing (cli_call_endpoint only; routed calls retry after a
			       * pause, and end CLI_UNAVAILABLE if it stays busy to the deadline) */
	CLI_MOVING = 12,      /* definite: the key's range is frozen while it moves to another
			       * group; not written (cli_call_endpoint only; routed calls retry
			       * after a pause, as for CLI_BUSY) */
};
/* Client authentication's outcomes (docs/SECURITY.md), final like the definite codes above. */
enum cli_auth_code {
	CLI_UNAUTHENTICATED = 14,   /* authentication is on and the client has no valid user (no
				     * user given, or a wrong password) */
	CLI_PERMISSION_DENIED = 15, /* the user's role does not allow it (ro writing) */
};

enum {
	CLI_EINVAL = -1, /* bad argument to the library (NULL key, zero group, ...) */
	CLI_ENOMEM = -2,
	CLI_EADDR = -3,  /* an endpoint is not "host:port" (IPv4 or [IPv6]) */
	CLI_EPROTO = -4, /* cli_call_endpoint: the node sent an undecodable reply */
	CLI_ECONN = -5,  /* cli_call_endpoint: could not connect, or the connection broke */
	CLI_ETLS = -6,   /* cli_client_new: the TLS files could not be loaded (cli_tls_error) */
};

/* Why this thread's last TLS setup or handshake failed ("" if none did): OpenSSL's reason,
 * e.g. "certificate verify failed: unable to get local issuer certificate". */
const char *cli_tls_error(void);
/* A static string for an outcome or error code ("ok", "not found", "timed out", ...). */
const char *cli_strerror(int code);
/* True when the operation definitely happened (CLI_OK, CLI_NOT_FOUND, CLI_CAS_MISMATCH) or
 * definitely did not (the other definite codes, and every negative error); false for
 * CLI_TIMEOUT, CLI_LEADER_LOST and CLI_INTERNAL, and for CLI_ECONN from cli_call_endpoint (the
 * request may have been sent). jepsen-lite records an indeterminate write as "info". */
bool cli_result_is_definite(int code);

/* ------------------------------------------------------------------------------ options */
struct cli_options {
	uint32_t timeout_ms;  /* deadline of one call, all retries included (default 5000) */
	bool serializable;    /* reads from the contacted replica's state, possibly stale */
	bool forward;         /* let nodes forward to the leader instead of redirecting to it */
	uint32_t max_retries; /* attempts after the first; 0 = retry until the deadline */
	uint64_t client_id;   /* session id for writes; 0 = a random one (getrandom) */
	/* TLS (docs/SECURITY.md): with tls_ca every connection is TLS and the node's
	 * certificate must be signed by that CA; tls_cert + tls_key present a client
	 * certificate (nodes with --client-cert-auth require one). PEM file paths, read only by
	 * cli_client_new (borrowed for that call). NULL = plaintext. */
	const char *tls_ca, *tls_cert, *tls_key;
	/* Client authentication (docs/SECURITY.md): the user and password sent with every
	 * request (a node checks them once per connection). Borrowed: they must outlive the
	 * client. NULL = none. */
	const char *user, *password;
};
/* Fills the defaults above; the TLS paths come from the environment variables
 * RINGRAFT_TLS_CA, RINGRAFT_TLS_CERT and RINGRAFT_TLS_KEY when they are set, the user and
 * password from RINGRAFT_USER and RINGRAFT_PASSWORD. */
void cli_options_default(struct cli_options *o);

/* ------------------------------------------------------------------------------ the client */
struct cli_client;

/* Creates a client for a comma-separated list of "host:port" client endpoints (at most
 * CLI_ENDPOINTS_MAX). Does not connect: the first call does. opts may be NULL (defaults); it is
 * copied. Returns 0 with *out set, CLI_EADDR for a bad or empty list (nothing allocated), or
 * CLI_ENOMEM. */
int cli_client_new(const char *endpoints, const struct cli_options *opts, struct cli_client **out);
/* Closes every connection and frees the client. NULL is a no-op. */
void cli_client_free(struct cli_client *c);

/* Changes the per-call deadline / read consistency for later calls. */
void cli_set_timeout(struct cli_client *c, uint32_t timeout_ms);
void cli_set_serializable(struct cli_client *c, bool serializable);
/* The session id writes carry (fixed for the client's life). */
uint64_t cli_client_id(const struct cli_client *c);

/* Keys are 1..CLI_KEY_MAX bytes, values 0..CLI_VALUE_MAX bytes; all pointers are borrowed for
 * the call only. Values returned through void ** are malloc'd and owned by the caller (free()
 * them, or cli_free()); they are set to NULL / 0 whenever no value is returned. A returned
 * buffer always has one extra NUL byte after len, so text values can be printed directly. */
void cli_free(void *p);

/* CLI_OK, or CLI_TOO_LARGE / CLI_INVALID, CLI_UNAVAILABLE, CLI_TIMEOUT, or a negative error. */
int cli_put(struct cli_client *c, const void *key, size_t key_len, const void *value,
	    size_t value_len);
/* cli_put with an expiry: the key expires ttl_ms after the group leader proposes it
 * (0: no expiry, like cli_put, which also clears an expiry the key had). */
int cli_put_ttl(struct cli_client *c, const void *key, size_t key_len, const void *value,
		size_t value_len, uint64_t ttl_ms);
/* The key's time to live by the serving node's clock: CLI_OK with *ms_left the ms left, -1
 * for a key without expiry, -2 for an absent key; *expire_at_ms (may be NULL) its absolute
 * expiry (ms since the epoch, 0: none). Or an error as above. */
int cli_ttl(struct cli_client *c, const void *key, size_t key_len, int64_t *ms_left,
	    uint64_t *expire_at_ms);
/* CLI_OK with *value set (never NULL: an empty value is a buffer holding just the NUL), or
 * CLI_NOT_FOUND, or an error as above. */
int cli_get(struct cli_client *c, const void *key, size_t key_len, void **value, size_t *value_len);
/* CLI_OK (it existed and is gone) or CLI_NOT_FOUND (it was absent), or an error. A delete
 * retried after an indeterminate attempt still reports the first attempt's outcome (the
 * session replays its reply). */
int cli_delete(struct cli_client *c, const void *key, size_t key_len);

/* Compare-and-set: writes value if the key currently holds `expected` (expected != NULL; an
 * empty expected value is a real, empty value) or is absent (expected == NULL). CLI_OK when
 * written, CLI_CAS_MISMATCH when not: then, if current is not NULL, current->found says
 * whether the key existed and current->value (malloc'd, caller frees) holds its value. */
struct cli_current {
	bool found;
	void *value;
	size_t value_len;
};
int cli_cas(struct cli_client *c, const void *key, size_t key_len, const void *expected,
	    size_t expected_len, const void *value, size_t value_len, struct cli_current *current);

/* Scans [start, end) over every group (end == NULL: to the end of the key space) and calls
 * cb for at most `limit` pairs (0 = CLI_SCAN_LIMIT_DEFAULT, at most CLI_SCAN_LIMIT_MAX) in
 * ascending byte order of keys. Pointers given to cb are valid only during the callback; cb
 * returns 0 to continue, anything else to stop (cli_scan then returns CLI_OK). Each page (up
 * to KV_SCAN_MAX pairs of one group) is read at one point in time; pages and groups are not
 * read at one common point (no cross-group snapshot).
 * Memory: up to `limit` pairs of each group are held while merging. */
typedef int (*cli_scan_cb)(const void *key, size_t key_len, const void *value, size_t value_len,
			   void *arg);
int cli_scan(struct cli_client *c, const void *start, size_t start_len, const void *end,
	     size_t end_len, uint32_t limit, cli_scan_cb cb, void *arg);
/* The keys that start with prefix (prefix_len may be 0: every key). */
int cli_scan_prefix(struct cli_client *c, const void *prefix, size_t prefix_len, uint32_t limit,
		    cli_scan_cb cb, void *arg);

/* ------------------------------------------------------------------------------ cluster view */
struct cli_group_status {
	uint32_t group;
	uint64_t leader; /* node id, 0 = none known */
	uint64_t term, commit, applied;
	char role[16];   /* "leader", "follower", "candidate", ... as the node says */
	bool recovering; /* the replica is being rebuilt from its peers */
	size_t n_voters, n_learners;
	uint64_t voters[CLI_NODES_MAX], learners[CLI_NODES_MAX];
};
struct cli_ring_node {
	uint64_t id;
	char peer_addr[CLI_ADDR_MAX], client_addr[CLI_ADDR_MAX];
	bool removed; /* removed from the cluster (kvctl member remove): not asked */
	bool leaving; /* leaving: its replicas move to the others */
};
/* One node's STATUS answer. Strings are NUL-terminated (truncated if longer). */
/* A ring change as a node knows it (RingConfig.change): both id sets and epochs and every
 * moving range with its state (kv/reshard.h: 1 planned .. 5 rolled back). */
struct cli_ring_range {
	uint64_t lo, hi; /* the hashes h with lo < h <= hi (wrapping when lo >= hi) */
	uint32_t from, to, state;
};
struct cli_ring_change {
	bool present; /* false: the node knows of no change (the ring never changed) */
	uint64_t from_epoch, to_epoch;
	size_t n_from, n_to;
	uint32_t *from_ids, *to_ids; /* owned (cli_node_status_free) */
	size_t n_ranges;
	struct cli_ring_range *ranges; /* owned */
};

struct cli_node_status {
	uint64_t id;
	char peer_addr[CLI_ADDR_MAX], client_addr[CLI_ADDR_MAX];
	char health[32];
	uint64_t wal_bytes, lmdb_bytes, uptime_ms;
	uint64_t incarnation;  /* the node's data directory id */
	bool auto_balance;     /* the node runs with --auto-balance */
	char rebalancing[256]; /* the balancer's move under way, "" if none (the meta leader) */
	uint64_t ring_epoch;
	uint32_t ring_groups, ring_vnodes;
	size_t n_ring_ids;      /* the ring's group ids: RingConfig.group_ids, or 1..ring_groups */
	uint32_t *ring_ids;     /* owned (cli_node_status_free) */
	uint64_t members_epoch; /* the cluster map's epoch this node knows */
	uint32_t meta_group;    /* the group holding the cluster map (0: none) */
	char bootstrap[CLI_NODES_MAX * (CLI_ADDR_MAX + 24)]; /* kvd --cluster of the cluster */
	size_t n_nodes;                                      /* the ring's nodes */
	struct cli_ring_node nodes[CLI_NODES_MAX];
	size_t n_groups; /* the groups this node hosts */
	struct cli_group_status *groups;
	struct cli_ring_change change; /* the latest ring change the node knows */
};
/* STATUS of one endpoint ("host:port"; need not be in the client's list), one attempt, no
 * retries, within the client's timeout. CLI_OK with *out filled (free with
 * cli_node_status_free), else CLI_ECONN / CLI_EPROTO / CLI_TIMEOUT / a server code. The
 * routing caches are refreshed from the answer as a side effect. */
int cli_status(struct cli_client *c, const char *endpoint, struct cli_node_status *out);
void cli_node_status_free(struct cli_node_status *st);

/* Asks the cluster (with retries) which group owns key: an id of the ring (1..G until groups
 * are added), or a negative error / cli_code when no node answered STATUS. */
int cli_group_of(struct cli_client *c, const void *key, size_t key_len, uint32_t *group);
/* The leader of `group` as last learned; refresh = true asks the endpoints again first.
 * CLI_OK with *node_id (and, if addr != NULL, its client address, CLI_ADDR_MAX bytes), or
 * CLI_UNAVAILABLE when no leader is known. */
int cli_leader_of(struct cli_client *c, uint32_t group, bool refresh, uint64_t *node_id,
		  char *addr);
/* The state digest of `group` on ONE endpoint (no retries, no redirect): CLI_OK with *digest
 * (malloc'd, caller frees), its length and the applied index it was taken at. */
int cli_digest(struct cli_client *c, const char *endpoint, uint32_t group, void **digest,
	       size_t *digest_len, uint64_t *applied_index);
/* Moves leadership of `group` to node `target` (sent to the group's leader, retried until the
 * deadline). CLI_OK once the leader accepted the transfer (it completes asynchronously: poll
 * cli_leader_of to see it). */
int cli_transfer_leader(struct cli_client *c, uint32_t group, uint64_t target);
/* One step of moving `group`'s replica from node `source` to node `target` (kv.proto
 * MOVE_REPLICA, sent to the group's leader, retried until the deadline). CLI_OK with *done and
 * the step's description in progress (len bytes); the code INVALID (with the node's reason in
 * progress) when the move makes no sense. Repeat until *done. */
/* The cluster's members (kvctl member add/remove): adds node id with its peer and client
 * addresses, or marks member id removed. CLI_OK, CLI_INVALID with the node's reason in why,
 * or another code. */
/* Client authentication's users (cli/auth.c; docs/SECURITY.md). user add hashes the password
 * here (PBKDF2, KV_USER_ITERATIONS: tens of ms) and sends the record; role is "ro" or "rw".
 * CLI_EINVAL for a bad name, role or password; CLI_INVALID (why says it) when the cluster
 * refuses (the user exists, enabling without a rw user, removing the last rw user). */
struct cli_user {
	char name[72];
	char role[8];
};
int cli_user_add(struct cli_client *c, const char *name, const char *role, const void *password,
		 size_t password_len, char *why, size_t len);
int cli_user_remove(struct cli_client *c, const char *name, char *why, size_t len);
/* *users (n of them, by name; free with cli_free) and whether authentication is on. */
int cli_user_list(struct cli_client *c, struct cli_user **users, size_t *n, bool *enabled,
		  char *why, size_t len);
int cli_auth_enable(struct cli_client *c, char *why, size_t len);
/* After cli_auth_enable: asks every member of the cluster (the ring's nodes as learned before
 * enabling, removed ones aside), each on a new connection without a user, until it refuses
 * the request as CLI_UNAUTHENTICATED, for at most wait_ms. out[0..*n) (at most cap) says
 * which did (confirmed) and, for the others, what they last answered. CLI_OK when every
 * member confirmed, else CLI_UNAVAILABLE. */
struct cli_auth_member {
	uint64_t id;
	char client_addr[CLI_ADDR_MAX];
	bool confirmed;
	char last[128]; /* the last answer of a member that did not confirm */
};
int cli_auth_confirm(struct cli_client *c, uint32_t wait_ms, struct cli_auth_member *out,
		     size_t cap, size_t *n);
int cli_member_add(struct cli_client *c, uint64_t id, const char *peer_addr,
		   const char *client_addr, char *why, size_t len);
int cli_member_remove(struct cli_client *c, uint64_t id, char *why, size_t len);
/* Ring changes (kvctl groups add/remove), decided by the meta group's leader. add: `count`
 * new groups (1..CLI_GROUPS_ADD_MAX); remove: group `group`. CLI_OK with what was done in
 * text; CLI_INVALID with why it was refused in text; else a client code (for a write that
 * timed out the outcome is unknown: look at kvctl groups). */
int cli_groups_add(struct cli_client *c, uint32_t count, char *text, size_t len);
int cli_groups_remove(struct cli_client *c, uint32_t group, char *text, size_t len);
int cli_member_leave(struct cli_client *c, uint64_t id, char *why, size_t len);
/* The cluster map epoch a caller saw (kvctl's STATUS view): sent with moves, so that a node
 * with an older map answers "try again" rather than refusing a member it has not learned. */
void cli_learn_members_epoch(struct cli_client *c, uint64_t epoch);
int cli_move_replica_step(struct cli_client *c, uint32_t group, uint64_t source, uint64_t target,
			  bool *done, char *progress, size_t len);

/* ------------------------------------------------------------------------------ raw calls
 * One request to one specific endpoint, exactly one attempt, no routing, no retry: for tests
 * that must talk to a given node (stale reads, NOT_LEADER answers, ...). The reply is returned
 * as the node sent it. */
enum cli_op {
	CLI_OP_GET = 1,
	CLI_OP_PUT = 2,
	CLI_OP_DELETE = 3,
	CLI_OP_CAS = 4,
	CLI_OP_SCAN = 5,
	CLI_OP_STATUS = 6,
	CLI_OP_TRANSFER_LEADER = 7,
	CLI_OP_DIGEST = 8,
	CLI_OP_PING = 9,
};
struct cli_request { /* all pointers borrowed for the call */
	enum cli_op op;
	const void *key;
	size_t key_len;
	const void *value;
	size_t value_len;
	const void *expected; /* CAS; NULL = expect absent */
	size_t expected_len;
	const void *end_key; /* SCAN */
	size_t end_key_len;
	uint32_t limit;      /* SCAN */
	uint32_t group;      /* SCAN / DIGEST / TRANSFER_LEADER; 0 = by key */
	uint64_t target;     /* TRANSFER_LEADER */
	bool serializable;   /* reads */
	bool redirect;       /* NOT_LEADER instead of forwarding */
	bool session;        /* attach (client_id, seq): set seq below */
	uint64_t seq;        /* with session: the sequence number to send */
	uint64_t ring_epoch; /* 0 = unchecked */
	uint32_t timeout_ms; /* server-side timeout; 0 = the server's default */
};
struct cli_kv {
	void *key, *value; /* malloc'd, owned by the reply */
	size_t key_len, value_len;
};
struct cli_reply {   /* everything owned by the reply: cli_reply_free */
	int code;    /* enum cli_code as the node sent it */
	char *error; /* detail, may be NULL */
	bool found;
	void *value; /* GET value / CAS_MISMATCH current / DIGEST digest; may be NULL */
	size_t value_len;
	struct cli_kv *kvs; /* SCAN */
	size_t n_kvs;
	void *next_key; /* SCAN continuation; NULL when done */
	size_t next_key_len;
	uint64_t leader_hint; /* NOT_LEADER */
	char *leader_addr;
	uint64_t applied_index; /* DIGEST */
};
/* Sends req to endpoint within the client's timeout and waits for its reply. Returns 0 with
 * *rep filled (inspect rep->code), or CLI_ECONN (connect failed or the connection broke: the
 * request may or may not have been sent), CLI_TIMEOUT (no reply in time), CLI_EPROTO,
 * CLI_EADDR, CLI_ENOMEM; *rep is zeroed on error. */
int cli_call_endpoint(struct cli_client *c, const char *endpoint, const struct cli_request *req,
		      struct cli_reply *rep);
void cli_reply_free(struct cli_reply *rep);

#endif
