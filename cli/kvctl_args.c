/* kvctl_args.c — kvctl's command line: global flags (--endpoints, --timeout, --serializable,
 * -o, --tls-*) and subcommand flags, accepted before or after the command, each checked at the
 * boundary with a message that names the flag and says what is wanted. Which command accepts which
 * flag is checked in kvctl_main.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/kvctl.h"

static int usage(struct kvctl_args *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(a->err, sizeof a->err, fmt, ap);
	va_end(ap);
	return KVCTL_EXIT_USAGE;
}

int64_t kvctl_parse_duration_ms(const char *s)
{
	if (s == NULL || *s == '\0')
		return -1;
	errno = 0;
	char *end;
	double v = strtod(s, &end);
	if (errno || end == s || v < 0 || v != v)
		return -1;
	double mult;
	if (strcmp(end, "ms") == 0)
		mult = 1;
	else if (strcmp(end, "s") == 0 || *end == '\0')
		mult = 1000;
	else if (strcmp(end, "m") == 0)
		mult = 60000;
	else if (strcmp(end, "h") == 0)
		mult = 3600000;
	else if (strcmp(end, "d") == 0)
		mult = 86400000;
	else
		return -1;
	double ms = v * mult;
	if (ms > 1e12)
		return -1;
	return (int64_t)(ms + 0.5);
}

static int parse_u32(struct kvctl_args *a, const char *flag, const char *s, uint32_t min,
		     uint32_t max, uint32_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end != '\0' || s[0] == '-' || v < min || v > max)
		return usage(a, "%s wants a whole number from %u to %u, not '%s'", flag, min, max,
			     s);
	*out = (uint32_t)v;
	return 0;
}

/* Matches "--name" or "--name=value"; sets *val to the value (inline or the next argument). */
static int flag_value(struct kvctl_args *a, int argc, char **argv, int *i, const char *name,
		      const char *alias, const char **val, bool *matched)
{
	const char *arg = argv[*i];
	size_t n = strlen(name);
	*matched = false;
	if (strncmp(arg, name, n) == 0 && arg[n] == '=') {
		*matched = true;
		*val = arg + n + 1;
		return 0;
	}
	if (strcmp(arg, name) != 0 && !(alias && strcmp(arg, alias) == 0))
		return 0;
	*matched = true;
	if (*i + 1 >= argc)
		return usage(a, "%s needs a value", name);
	*val = argv[++*i];
	return 0;
}

void kvctl_client_options(const struct kvctl_args *a, struct cli_options *o)
{
	cli_options_default(o);
	if (a->tls_ca != NULL) {
		o->tls_ca = a->tls_ca;
		o->tls_cert = a->tls_cert;
		o->tls_key = a->tls_key;
	}
	if (a->user != NULL) {
		/* the password: $RINGRAFT_PASSWORD, else asked on the terminal */
		const char *pw = getenv("RINGRAFT_PASSWORD");
		if (pw == NULL && isatty(STDERR_FILENO))
			pw = getpass("password: ");
		o->user = a->user;
		o->password = pw;
	}
}

int kvctl_parse(int argc, char **argv, const char *env_endpoints, struct kvctl_args *a)
{
	memset(a, 0, sizeof *a);
	a->endpoints = env_endpoints && *env_endpoints ? env_endpoints : KVCTL_DEFAULT_ENDPOINTS;
	a->timeout_ms = CLI_TIMEOUT_MS_DEFAULT;
	a->output = KVCTL_OUT_TABLE;
	a->clients = 4;
	a->requests = 10000;
	a->value_size = 100;
	a->pipeline = 1;
	a->threads = 1;
	a->keys = 1000;
	a->op = "put";
	a->rest_index = -1;
	bool flags_done = false;
	for (int i = 1; i < argc; i++) {
		char *arg = argv[i];
		if (flags_done || arg[0] != '-' || strcmp(arg, "-") == 0) {
			if (a->npos == KVCTL_POS_MAX)
				return usage(a, "too many arguments (at '%s')", arg);
			a->pos[a->npos++] = arg;
			if (a->npos == 1 && strcmp(arg, "wal") == 0) {
				a->rest_index = i;
				return 0; /* everything after `wal` belongs to the WAL tool */
			}
			continue;
		}
		if (strcmp(arg, "--") == 0) {
			flags_done = true;
			continue;
		}
		if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
			a->help = true;
			continue;
		}
		if (strcmp(arg, "--version") == 0) {
			a->version = true;
			continue;
		}
		if (strcmp(arg, "--serializable") == 0) {
			a->serializable = true;
			continue;
		}
		if (strcmp(arg, "--keys-only") == 0) {
			a->keys_only = true;
			a->seen |= KVCTL_F_KEYS_ONLY;
			continue;
		}
		if (strcmp(arg, "--absent") == 0) {
			a->absent = true;
			a->seen |= KVCTL_F_ABSENT;
			continue;
		}
		const char *v;
		bool m;
		int rc;
		if ((rc = flag_value(a, argc, argv, &i, "--endpoints", NULL, &v, &m)) || m) {
			if (rc)
				return rc;
			if (*v == '\0')
				return usage(a, "--endpoints wants host:port[,host:port...]");
			a->endpoints = v;
			continue;
		}
		const char *tls_flags[3] = {"--tls-ca", "--tls-cert", "--tls-key"};
		const char **tls_dst[3] = {&a->tls_ca, &a->tls_cert, &a->tls_key};
		bool tls_seen = false;
		for (int t = 0; t < 3 && !tls_seen; t++) {
			if ((rc = flag_value(a, argc, argv, &i, tls_flags[t], NULL, &v, &m)) || m) {
				if (rc)
					return rc;
				if (*v == '\0')
					return usage(a, "%s wants a PEM file", tls_flags[t]);
				*tls_dst[t] = v;
				tls_seen = true;
			}
		}
		if (tls_seen)
			continue;
		if ((rc = flag_value(a, argc, argv, &i, "--user", NULL, &v, &m)) || m) {
			if (rc)
				return rc;
			if (*v == '\0')
				return usage(a, "--user wants a user name");
			a->user = v;
			continue;
		}
		if ((rc = flag_value(a, argc, argv, &i, "--role", NULL, &v, &m)) || m) {
			if (rc)
				return rc;
			if (strcmp(v, "ro") != 0 && strcmp(v, "rw") != 0)
				return usage(a, "--role wants ro or rw, not '%s'", v);
			a->role = v;
			a->seen |= KVCTL_F_ROLE;
			continue;
		}
		if ((rc = flag_value(a, argc, argv, &i, "--timeout", NULL, &v, &m)) || m) {
			if (rc)
				return rc;
			int64_t ms = kvctl_parse_duration_ms(v);
			if (ms <= 0 || ms > CLI_TIMEOUT_MS_MAX)
				return usage(a,
					     "--timeout wants a duration such as 5s, 500ms or 1m "
					     "(more than 0, at most 1h), not '%s'",
					     v);
			a->timeout_ms = (uint32_t)ms;
			continue;
		}
		if ((rc = flag_value(a, argc, argv, &i, "--ttl", NULL, &v, &m)) || m) {
			if (rc)
				return rc;
			int64_t ms = kvctl_parse_duration_ms(v);
			if (ms <= 0 || (uint64_t)ms > CLI_TTL_MS_MAX)
				return usage(a,
					     "--ttl wants a duration such as 500ms, 10s, 5m, 2h or "
					     "7d (more than 0), not '%s'",
					     v);
			a->ttl_ms = (uint64_t)ms;
			a->seen |= KVCTL_F_TTL;
			continue;
		}
		if ((rc = flag_value(a, argc, argv, &i, "--output", "-o", &v, &m)) || m) {
			if (rc)
				return rc;
			if (strcmp(v, "json") == 0)
				a->output = KVCTL_OUT_JSON;
			else if (strcmp(v, "table") == 0)
				a->output = KVCTL_OUT_TABLE;
			else
				return usage(a, "-o wants json or table, not '%s'", v);
			continue;
		}
		if ((rc = flag_value(a, argc, argv, &i, "--op", NULL, &v, &m)) || m) {
			if (rc)
				return rc;
			if (strcmp(v, "put") && strcmp(v, "get") && strcmp(v, "mixed"))
				return usage(a, "--op wants put, get or mixed, not '%s'", v);
			a->op = v;
			a->seen |= KVCTL_F_OP;
			continue;
		}
		static const struct {
			const char *name;
			uint32_t bit, min, max;
			size_t off;
		} nums[] = {
			{"--limit", KVCTL_F_LIMIT, 1, CLI_SCAN_LIMIT_MAX,
			 offsetof(struct kvctl_args, limit)},
			{"--clients", KVCTL_F_CLIENTS, 1, CLI_BENCH_CLIENTS_MAX,
			 offsetof(struct kvctl_args, clients)},
			{"--requests", KVCTL_F_REQUESTS, 1, CLI_BENCH_REQUESTS_MAX,
			 offsetof(struct kvctl_args, requests)},
			{"--value-size", KVCTL_F_VALUE_SIZE, 0, CLI_VALUE_MAX,
			 offsetof(struct kvctl_args, value_size)},
			{"--pipeline", KVCTL_F_PIPELINE, 1, CLI_PIPELINE_MAX,
			 offsetof(struct kvctl_args, pipeline)},
			{"--threads", KVCTL_F_THREADS, 1, CLI_BENCH_THREADS_MAX,
			 offsetof(struct kvctl_args, threads)},
			{"--keys", KVCTL_F_KEYS, 1, CLI_BENCH_REQUESTS_MAX,
			 offsetof(struct kvctl_args, keys)},
			{"--count", KVCTL_F_COUNT, 1, CLI_GROUPS_ADD_MAX,
			 offsetof(struct kvctl_args, count)},
		};
		bool found = false;
		for (size_t k = 0; k < sizeof nums / sizeof nums[0] && !found; k++) {
			if ((rc = flag_value(a, argc, argv, &i, nums[k].name, NULL, &v, &m)))
				return rc;
			if (!m)
				continue;
			found = true;
			uint32_t *dst = (uint32_t *)((char *)a + nums[k].off);
			if ((rc = parse_u32(a, nums[k].name, v, nums[k].min, nums[k].max, dst)))
				return rc;
			a->seen |= nums[k].bit;
		}
		if (!found)
			return usage(a, "unknown flag '%s' (see kvctl --help)", arg);
	}
	if ((a->tls_cert != NULL) != (a->tls_key != NULL))
		return usage(a, "--tls-cert and --tls-key go together (a client certificate and "
				"its key)");
	if (a->tls_cert != NULL && a->tls_ca == NULL)
		return usage(a, "--tls-cert needs --tls-ca (the CA that signed the nodes' "
				"certificates)");
	return 0;
}

int kvctl_exit_of(int code)
{
	switch (code) {
	case CLI_OK:
		return KVCTL_EXIT_OK;
	case CLI_NOT_FOUND:
	case CLI_CAS_MISMATCH:
		return KVCTL_EXIT_NOT_FOUND;
	case CLI_INVALID:
	case CLI_TOO_LARGE:
	case CLI_EINVAL:
	case CLI_EADDR:
		return KVCTL_EXIT_USAGE;
	case CLI_UNAUTHENTICATED:
	case CLI_PERMISSION_DENIED:
		return KVCTL_EXIT_AUTH;
	default:
		return KVCTL_EXIT_UNAVAILABLE;
	}
}
