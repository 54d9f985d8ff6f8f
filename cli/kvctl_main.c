/* kvctl_main.c — the kvctl program: parses the command line, checks each command's arguments
 * and flags, creates one client and runs the command. Exit codes: 0 ok, 1 not found / compare
 * failed, 2 usage, 3 unavailable or timed out (see usage() below, which is `kvctl --help`).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/kvctl.h"
#include "wal/wal.h" /* wal_tool_main: the WAL tool (bin/walctl) as a function */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: kvctl [flags] COMMAND [ARGS]\n"
		"\n"
		"Data:\n"
		"  get KEY                    print the value (raw bytes; a newline is added only "
		"on a "
		"terminal)\n"
		"  put KEY [VALUE|-]          store VALUE; '-' or no VALUE (stdin not a terminal): "
		"read "
		"stdin\n"
		"  put --ttl DURATION KEY ... the key expires after DURATION (e.g. 500ms, 10s, "
		"2h)\n"
		"  ttl KEY                    time left before KEY expires (ms; -1: none, "
		"-2: absent)\n"
		"  del KEY                    delete KEY\n"
		"  cas KEY EXPECTED NEW|-     store NEW only if KEY holds EXPECTED\n"
		"  cas --absent KEY NEW|-     store NEW only if KEY is absent\n"
		"  scan [PREFIX] [--limit N] [--keys-only]\n"
		"                             keys with PREFIX in key order, over every group "
		"(default limit %u)\n"
		"Users (docs/SECURITY.md):\n"
		"  user add NAME --role ro|rw add a user; its password from stdin (not a terminal) "
		"or asked twice\n"
		"  user remove NAME           remove a user\n"
		"  user list                  users and roles, and whether authentication is on\n"
		"  auth enable                every request needs a user from now on (refused "
		"without a rw user)\n"
		"Cluster:\n"
		"  status                     every node: addresses, health, groups led, "
		"term/commit/"
		"applied, sizes\n"
		"  groups                     which node leads each group, its replicas and "
		"share of the\n"
		"                             keys, and a ring change under way with its ranges\n"
		"  groups add [--count K]     add K (default 1, at most 32 per cluster lifetime) "
		"new\n"
		"                             groups: created on every node, they elect leaders,\n"
		"                             then their share of the keys moves to them (about\n"
		"                             1/(G+1) each; watch it with kvctl groups)\n"
		"  groups remove GROUP        move GROUP's keys to the other groups, then retire it;\n"
		"                             of a group a change under way adds: roll that change\n"
		"                             back (while no copy is complete)\n"
		"  transfer-leader GROUP NODE move leadership of GROUP to node NODE (waits for "
		"it)\n"
		"  digest GROUP               the group's state digest and applied index on every "
		"endpoint\n"
		"                             (exit 0: all equal, 1: they differ, 3: one did not "
		"answer)\n"
		"  group move GROUP FROM TO   move GROUP's replica from node FROM to node TO: "
		"learner,\n"
		"                             catch-up, promotion, removal (waits for it; "
		"--timeout)\n"
		"  member list                the members: addresses, state (up, leaving, removed), "
		"replicas\n"
		"  member add ID PEER CLIENT  add a member (then start it: kvd --join ..., printed); "
		"the\n"
		"                             balancer moves replicas to it\n"
		"  member remove ID           it leaves: its replicas move away, then it is removed "
		"and\n"
		"                             stops (never a member again)\n"
		"  member replace OLD NEW PEER CLIENT\n"
		"                             add NEW, wait for it to answer, then remove OLD (OLD may "
		"be dead)\n"
		"  member drain ID            move every replica node ID holds to the other members "
		"\n"
		"                             (also when ID is down for good; --timeout per move)\n"
		"  member fill ID             move replicas onto node ID (new or drained) until it "
		"holds\n"
		"                             its share of them\n"
		"  backup FILE                an online, consistent copy of every group into FILE "
		"(each\n"
		"                             group at one applied index; --timeout per request)\n"
		"  restore FILE               check a backup file and print how to seed a new "
		"cluster\n"
		"                             with it (kvd --restore FILE; docs/OPERATIONS.md)\n"
		"  wal verify|dump DIR        check or print a node's write-ahead log (DIR: e.g. "
		"data/node1/wal)\n"
		"  bench [--op put|get|mixed] [--clients C] [--requests N] [--value-size B]\n"
		"        [--pipeline P] [--keys K] [--threads T]\n"
		"                             load test: throughput and p50/p99/p999 latency\n"
		"                             (C clients, each P requests in flight, run by T\n"
		"                             event-driven threads)\n"
		"                             (failed requests are counted by kind; exit 3 only "
		"if all fail;\n"
		"                             BUSY answers are counted apart and sent again after "
		"a pause)\n"
		"                             (defaults: put, 4 clients, 10000 requests, 100 B, "
		"pipeline 1, 1000 keys,\n"
		"                             1 thread)\n"
		"\n"
		"Flags:\n"
		"  --endpoints H:P[,H:P...]   nodes to contact (default $%s, else\n"
		"                             %s)\n"
		"  --timeout DURATION         give up after this, retries included (default 5s; "
		"e.g. "
		"500ms, 2s, 1m)\n"
		"  --serializable             read from the contacted replica (may be stale) "
		"instead of "
		"linearizable\n"
		"  -o, --output json|table    output format (default table)\n"
		"  --tls-ca FILE              TLS: trust nodes whose certificate FILE's CA signed "
		"(default\n"
		"                             $RINGRAFT_TLS_CA; unset: plaintext)\n"
		"  --tls-cert FILE, --tls-key FILE\n"
		"                             TLS: present this client certificate (nodes with "
		"--client-cert-auth\n"
		"                             want one; default $RINGRAFT_TLS_CERT, "
		"$RINGRAFT_TLS_KEY)\n"
		"  --user NAME                authenticate as NAME (password: $RINGRAFT_PASSWORD, "
		"else asked)\n"
		"  --                         end of flags (for keys that start with '-')\n"
		"\n"
		"Exit codes:\n"
		"  0  ok\n"
		"  1  not found (get, del) or compare failed (cas)\n"
		"  2  usage: bad arguments or flags, or a key/value the cluster refuses (empty, "
		"too "
		"large)\n"
		"  3  unavailable or timed out: no node could serve the request before --timeout "
		"(for "
		"a\n"
		"     write that timed out the outcome is unknown: it may or may not have been "
		"applied)\n"
		"  4  not authenticated (authentication is on: --user), or the user's role does not "
		"allow it\n",
		CLI_SCAN_LIMIT_DEFAULT, KVCTL_ENDPOINTS_ENV, KVCTL_DEFAULT_ENDPOINTS);
}

struct command {
	const char *name;
	int min_pos, max_pos; /* positional arguments after the command */
	uint32_t flags;       /* KVCTL_F_* accepted */
	const char *synopsis;
	int (*run)(struct cli_client *c, const struct kvctl_args *a);
};

static const struct command commands[] = {
	{"get", 1, 1, 0, "get KEY", kvctl_cmd_get},
	{"put", 1, 2, KVCTL_F_TTL, "put [--ttl DURATION] KEY [VALUE|-]", kvctl_cmd_put},
	{"ttl", 1, 1, 0, "ttl KEY", kvctl_cmd_ttl},
	{"del", 1, 1, 0, "del KEY", kvctl_cmd_del},
	{"cas", 2, 3, KVCTL_F_ABSENT, "cas KEY EXPECTED NEW|-  or  cas --absent KEY NEW|-",
	 kvctl_cmd_cas},
	{"scan", 0, 1, KVCTL_F_LIMIT | KVCTL_F_KEYS_ONLY, "scan [PREFIX] [--limit N] [--keys-only]",
	 kvctl_cmd_scan},
	{"status", 0, 0, 0, "status", kvctl_cmd_status},
	{"groups", 0, 2, KVCTL_F_COUNT, "groups  |  groups add [--count K]  |  groups remove GROUP",
	 kvctl_cmd_groups},
	{"transfer-leader", 2, 2, 0, "transfer-leader GROUP NODE", kvctl_cmd_transfer},
	{"digest", 1, 1, 0, "digest GROUP", kvctl_cmd_digest},
	{"group", 4, 4, 0, "group move GROUP FROM TO", kvctl_cmd_group},
	{"member", 1, 5, 0, "member list|add|remove|replace|drain|fill ...", kvctl_cmd_member},
	{"user", 1, 2, KVCTL_F_ROLE, "user add NAME --role ro|rw  |  user remove NAME  |  user list",
	 kvctl_cmd_user},
	{"auth", 1, 1, 0, "auth enable", kvctl_cmd_auth},
	{"backup", 1, 1, 0, "backup FILE", kvctl_cmd_backup},
	{"restore", 1, 1, 0, "restore FILE", kvctl_cmd_restore},
	{"bench", 0, 0,
	 KVCTL_F_OP | KVCTL_F_CLIENTS | KVCTL_F_REQUESTS | KVCTL_F_VALUE_SIZE | KVCTL_F_PIPELINE |
		 KVCTL_F_KEYS | KVCTL_F_THREADS,
	 "bench [--op put|get|mixed] [--clients C] [--requests N] [--value-size B] "
	 "[--pipeline P] [--keys K] [--threads T]",
	 NULL},
};

static const char *flag_name(uint32_t bit)
{
	switch (bit) {
	case KVCTL_F_LIMIT:
		return "--limit";
	case KVCTL_F_KEYS_ONLY:
		return "--keys-only";
	case KVCTL_F_ABSENT:
		return "--absent";
	case KVCTL_F_CLIENTS:
		return "--clients";
	case KVCTL_F_REQUESTS:
		return "--requests";
	case KVCTL_F_VALUE_SIZE:
		return "--value-size";
	case KVCTL_F_PIPELINE:
		return "--pipeline";
	case KVCTL_F_THREADS:
		return "--threads";
	case KVCTL_F_KEYS:
		return "--keys";
	case KVCTL_F_OP:
		return "--op";
	case KVCTL_F_ROLE:
		return "--role";
	case KVCTL_F_TTL:
		return "--ttl";
	case KVCTL_F_COUNT:
		return "--count";
	default:
		return "?";
	}
}

static int run_wal(int argc, char **argv, const struct kvctl_args *a)
{
	int sub_argc = argc - a->rest_index;
	char **sub_argv = argv + a->rest_index;
	if (sub_argc < 2 || (strcmp(sub_argv[1], "verify") && strcmp(sub_argv[1], "dump") &&
			     strcmp(sub_argv[1], "-h") && strcmp(sub_argv[1], "--help"))) {
		fprintf(stderr, "kvctl: usage: kvctl wal verify|dump DIR\n");
		return KVCTL_EXIT_USAGE;
	}
	return wal_tool_main(sub_argc, sub_argv);
}

int main(int argc, char **argv)
{
	struct kvctl_args a;
	if (kvctl_parse(argc, argv, getenv(KVCTL_ENDPOINTS_ENV), &a) != 0) {
		fprintf(stderr, "kvctl: %s\n", a.err);
		return KVCTL_EXIT_USAGE;
	}
	if (a.help || (a.npos > 0 && strcmp(a.pos[0], "help") == 0)) {
		usage(stdout);
		return KVCTL_EXIT_OK;
	}
	if (a.version) {
		printf("kvctl (ringraft)\n");
		return KVCTL_EXIT_OK;
	}
	if (a.npos == 0) {
		usage(stderr);
		return KVCTL_EXIT_USAGE;
	}
	if (strcmp(a.pos[0], "wal") == 0)
		return run_wal(argc, argv, &a);
	const struct command *cmd = NULL;
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (strcmp(commands[i].name, a.pos[0]) == 0)
			cmd = &commands[i];
	if (cmd == NULL) {
		fprintf(stderr, "kvctl: unknown command '%s' (see kvctl --help)\n", a.pos[0]);
		return KVCTL_EXIT_USAGE;
	}
	int nargs = a.npos - 1;
	int max = cmd->max_pos, min = cmd->min_pos;
	if (cmd->run == kvctl_cmd_cas) /* --absent drops EXPECTED */
		min = max = a.absent ? 2 : 3;
	if (nargs < min || nargs > max) {
		fprintf(stderr, "kvctl: %s: %s arguments; usage: kvctl %s\n", cmd->name,
			nargs < min ? "missing" : "too many", cmd->synopsis);
		return KVCTL_EXIT_USAGE;
	}
	uint32_t extra = a.seen & ~cmd->flags;
	if (extra) {
		fprintf(stderr, "kvctl: %s: %s is not a flag of this command; usage: kvctl %s\n",
			cmd->name, flag_name(extra & -extra), cmd->synopsis);
		return KVCTL_EXIT_USAGE;
	}
	for (int i = 1; i < a.npos; i++) {
		size_t n = strlen(a.pos[i]);
		bool is_key = i == 1 && cmd->run != kvctl_cmd_transfer &&
			      cmd->run != kvctl_cmd_backup && cmd->run != kvctl_cmd_restore &&
			      cmd->run != kvctl_cmd_group && cmd->run != kvctl_cmd_member &&
			      cmd->run != kvctl_cmd_groups;
		if (is_key && cmd->run != kvctl_cmd_scan && n == 0) {
			fprintf(stderr, "kvctl: %s: the key is empty (keys are 1..%u bytes)\n",
				cmd->name, CLI_KEY_MAX);
			return KVCTL_EXIT_USAGE;
		}
		if (is_key && n > CLI_KEY_MAX) {
			fprintf(stderr, "kvctl: %s: the key is %zu bytes; at most %u are allowed\n",
				cmd->name, n, CLI_KEY_MAX);
			return KVCTL_EXIT_USAGE;
		}
	}
	if (cmd->run == NULL)
		return kvctl_cmd_bench(&a);
	struct cli_options o;
	kvctl_client_options(&a, &o);
	o.timeout_ms = a.timeout_ms;
	o.serializable = a.serializable;
	struct cli_client *c;
	int rc = cli_client_new(a.endpoints, &o, &c);
	if (rc == CLI_EADDR) {
		fprintf(stderr,
			"kvctl: bad endpoints '%s': want host:port[,host:port...] (IPv4 or [IPv6], "
			"at most %u)\n",
			a.endpoints, CLI_ENDPOINTS_MAX);
		return KVCTL_EXIT_USAGE;
	}
	if (rc) {
		fprintf(stderr, "kvctl: %s%s%s\n", cli_strerror(rc), rc == CLI_ETLS ? ": " : "",
			rc == CLI_ETLS ? cli_tls_error() : "");
		return KVCTL_EXIT_UNAVAILABLE;
	}
	int ex = cmd->run(c, &a);
	cli_client_free(c);
	if (ex != 0 && cli_tls_error()[0] != '\0')
		fprintf(stderr, "kvctl: TLS: %s\n", cli_tls_error());
	if (fflush(stdout) != 0) {
		perror("kvctl: writing output");
		return ex ? ex : KVCTL_EXIT_UNAVAILABLE;
	}
	return ex;
}
