/* kvctl.h — the pieces of the kvctl program shared between its files: parsed arguments
 * (kvctl_args.c), the subcommands (kvctl_data.c, kvctl_cluster.c, kvctl_bench.c), output
 * helpers (kvctl_out.c) and the exit codes that `kvctl --help` documents.
 */
#ifndef RINGRAFT_CLI_KVCTL_H
#define RINGRAFT_CLI_KVCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cli/client.h"

enum {
	KVCTL_EXIT_OK = 0,
	KVCTL_EXIT_NOT_FOUND = 1,   /* get/del of an absent key, cas whose compare failed */
	KVCTL_EXIT_USAGE = 2,       /* bad arguments (also a key/value the server refuses) */
	KVCTL_EXIT_UNAVAILABLE = 3, /* no node could serve it in time / outcome unknown */
	KVCTL_EXIT_AUTH = 4,        /* not authenticated, or the user's role does not allow it */
};

#define KVCTL_DEFAULT_ENDPOINTS "127.0.0.11:9001,127.0.0.12:9001,127.0.0.13:9001"
#define KVCTL_ENDPOINTS_ENV     "RINGRAFT_ENDPOINTS"
#define KVCTL_POS_MAX           8

enum kvctl_output { KVCTL_OUT_TABLE, KVCTL_OUT_JSON };

/* Flags a subcommand may accept (bit set in kvctl_args.seen when given). */
enum {
	KVCTL_F_LIMIT = 1u << 0,
	KVCTL_F_KEYS_ONLY = 1u << 1,
	KVCTL_F_ABSENT = 1u << 2,
	KVCTL_F_CLIENTS = 1u << 3,
	KVCTL_F_REQUESTS = 1u << 4,
	KVCTL_F_VALUE_SIZE = 1u << 5,
	KVCTL_F_PIPELINE = 1u << 6,
	KVCTL_F_KEYS = 1u << 7,
	KVCTL_F_OP = 1u << 8,
	KVCTL_F_TTL = 1u << 9,
	KVCTL_F_ROLE = 1u << 10,
	KVCTL_F_COUNT = 1u << 11,
	KVCTL_F_THREADS = 1u << 12,
};

struct kvctl_args {
	const char *endpoints; /* borrowed from argv / the environment / a literal */
	const char *tls_ca, *tls_cert, *tls_key; /* --tls-*, borrowed from argv; NULL = not given */
	const char *user; /* --user (its password: $RINGRAFT_PASSWORD or a prompt); NULL = none */
	const char *role; /* user add --role ro|rw */
	uint32_t timeout_ms;
	bool serializable;
	enum kvctl_output output;
	bool help, version;
	uint32_t seen; /* KVCTL_F_* given */
	uint32_t limit;
	bool keys_only, absent;
	uint32_t clients, requests, value_size, pipeline, keys;
	uint32_t threads; /* bench: threads running the clients */
	uint32_t count;  /* groups add --count (0: not given, 1) */
	const char *op;  /* bench: put, get or mixed */
	uint64_t ttl_ms; /* put --ttl */
	int npos;        /* positional arguments; pos[0] is the command */
	char *pos[KVCTL_POS_MAX];
	int rest_index; /* for "wal": argv index of the command, the rest is passed through */
	char err[256];  /* why parsing failed */
};

/* Parses argv (argv[0] is the program). env_endpoints is $RINGRAFT_ENDPOINTS or NULL. Returns 0
 * or KVCTL_EXIT_USAGE with a->err set. Flags may come before or after the command; "--" ends
 * the flags (so keys may start with '-'); a lone "-" is a positional (stdin). */
int kvctl_parse(int argc, char **argv, const char *env_endpoints, struct kvctl_args *a);
/* "5s", "500ms", "2m", "1.5s", "2h", "7d", or a plain number of seconds -> milliseconds;
 * -1 if bad (or over 10^12 ms). */
int64_t kvctl_parse_duration_ms(const char *s);
/* The client options every kvctl client starts from: the library's defaults (which read
 * $RINGRAFT_TLS_CA/CERT/KEY) with the --tls-* flags over them. */
void kvctl_client_options(const struct kvctl_args *a, struct cli_options *o);
/* Maps a client result code to the process exit code. */
int kvctl_exit_of(int code);

/* The subcommands: each returns the exit code and prints its own messages. */
int kvctl_cmd_get(struct cli_client *c, const struct kvctl_args *a);
int kvctl_cmd_put(struct cli_client *c, const struct kvctl_args *a);
int kvctl_cmd_del(struct cli_client *c, const struct kvctl_args *a);
int kvctl_cmd_cas(struct cli_client *c, const struct kvctl_args *a);
int kvctl_cmd_ttl(struct cli_client *c, const struct kvctl_args *a);
int kvctl_cmd_scan(struct cli_client *c, const struct kvctl_args *a);
int kvctl_cmd_digest(struct cli_client *c, const struct kvctl_args *a);
int kvctl_cmd_status(struct cli_client *c, const struct kvctl_args *a);
int kvctl_cmd_groups(struct cli_client *c, const struct kvctl_args *a);
int kvctl_cmd_transfer(struct cli_client *c, const struct kvctl_args *a);
int kvctl_cmd_group(struct cli_client *c, const struct kvctl_args *a);
int kvctl_cmd_member(struct cli_client *c, const struct kvctl_args *a);
int kvctl_cmd_user(struct cli_client *c, const struct kvctl_args *a); /* kvctl_auth.c */
int kvctl_cmd_auth(struct cli_client *c, const struct kvctl_args *a);
int kvctl_cmd_bench(const struct kvctl_args *a);
int kvctl_cmd_backup(struct cli_client *c, const struct kvctl_args *a);  /* backup.c */
int kvctl_cmd_restore(struct cli_client *c, const struct kvctl_args *a); /* backup.c */

/* The group ids a cluster view walks (kvctl_groups.c): the ring's ids, the meta group, and
 * the ids a ring change adds while it is not rolled back, in ascending order, each once. */
enum kvctl_group_kind { KVCTL_GROUP_RING, KVCTL_GROUP_META, KVCTL_GROUP_ADDING };
struct kvctl_group_set {
	size_t n;
	uint32_t meta; /* the meta group's id, 0: none */
	uint32_t ids[CLI_GROUPS_MAX];
	uint8_t kind[CLI_GROUPS_MAX]; /* enum kvctl_group_kind of ids[i] */
};
/* Fills *s from one view of the cluster: ring_ids (borrowed; RingConfig.group_ids, or NULL / 0
 * for a node that sends none: then 1..groups), the latest ring change known (borrowed, may be
 * NULL), and the meta group's id (0: none). Ids outside 1..CLI_GROUPS_MAX are left out. */
void kvctl_group_set_build(struct kvctl_group_set *s, const uint32_t *ring_ids, size_t n_ring,
			   uint32_t groups, const struct cli_ring_change *ch, uint32_t meta);
bool kvctl_group_set_has(const struct kvctl_group_set *s, uint32_t g);
/* Whether s is 1..groups, plus groups + 1 as the meta group or no meta group: the ids of a
 * cluster that never added a group. */
bool kvctl_group_set_plain(const struct kvctl_group_set *s, uint32_t groups);
/* "1-4, 5 (meta), 6 (adding)" into buf (cut short at cap); returns buf. */
const char *kvctl_group_set_text(const struct kvctl_group_set *s, char *buf, size_t cap);
/* Whether every range of the change is rolled back (its groups retired); false for NULL or
 * a change not present. */
bool kvctl_change_rolled_back(const struct cli_ring_change *ch);

/* Output helpers. */
/* Writes data as a JSON string literal (quotes included); false (nothing written) when it is
 * not valid UTF-8. */
bool kvctl_json_str(FILE *f, const void *data, size_t len);
/* Writes "name": "text" when data is valid UTF-8, else "name": null, "name_base64": "...". */
void kvctl_json_bytes(FILE *f, const char *name, const void *data, size_t len);
/* Prints "kvctl: <what>: <reason>" to stderr for a failed call, with a hint for the
 * unavailable cases, and returns the exit code. */
int kvctl_fail(const struct kvctl_args *a, const char *what, int code);
/* Reads a value: the argument itself, or stdin for "-" (binary-safe, at most CLI_VALUE_MAX
 * bytes). 0 with *out (malloc'd, caller frees) or KVCTL_EXIT_USAGE after printing why. */
int kvctl_read_value(const char *arg, void **out, size_t *len);
/* "1.5 KiB"-style size into buf. */
const char *kvctl_human_bytes(uint64_t n, char *buf, size_t cap);

#endif
