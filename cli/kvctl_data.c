/* kvctl_data.c — kvctl's data commands: get, put, del, cas, scan. `get` writes the raw value
 * (binary-safe); it adds a newline only when stdout is a terminal and the value does not end in
 * one, so `kvctl get k > file` and pipes always see exactly the stored bytes.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/kvctl.h"

static const char *key_of(const struct kvctl_args *a)
{
	return a->pos[1];
}

/* A key as a printable, bounded label for messages. */
static const char *label(const char *key, char *buf, size_t cap)
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)key; *p && n + 5 < cap; p++) {
		if (*p >= 0x20 && *p < 0x7f)
			buf[n++] = (char)*p;
		else
			n += (size_t)snprintf(buf + n, cap - n, "\\x%02x", *p);
	}
	buf[n] = '\0';
	return buf;
}

static void write_all(const void *p, size_t n)
{
	if (n && fwrite(p, 1, n, stdout) != n)
		perror("kvctl: writing to stdout");
}

int kvctl_cmd_get(struct cli_client *c, const struct kvctl_args *a)
{
	const char *key = key_of(a);
	char what[CLI_KEY_MAX * 4 + 16], lb[CLI_KEY_MAX * 4 + 8];
	snprintf(what, sizeof what, "get %s", label(key, lb, sizeof lb));
	void *v;
	size_t n;
	int rc = cli_get(c, key, strlen(key), &v, &n);
	if (a->output == KVCTL_OUT_JSON && (rc == CLI_OK || rc == CLI_NOT_FOUND)) {
		printf("{");
		kvctl_json_bytes(stdout, "key", key, strlen(key));
		printf(", \"found\": %s", rc == CLI_OK ? "true" : "false");
		if (rc == CLI_OK) {
			printf(", ");
			kvctl_json_bytes(stdout, "value", v, n);
		}
		printf("}\n");
	} else if (rc == CLI_OK) {
		write_all(v, n);
		if (isatty(STDOUT_FILENO) && (n == 0 || ((char *)v)[n - 1] != '\n'))
			putchar('\n');
	}
	free(v);
	if (rc == CLI_NOT_FOUND) {
		fprintf(stderr, "kvctl: %s: key not found\n", what);
		return KVCTL_EXIT_NOT_FOUND;
	}
	return rc == CLI_OK ? KVCTL_EXIT_OK : kvctl_fail(a, what, rc);
}

static void json_ok(const char *key, bool ok)
{
	printf("{");
	kvctl_json_bytes(stdout, "key", key, strlen(key));
	printf(", \"ok\": %s}\n", ok ? "true" : "false");
}

int kvctl_cmd_put(struct cli_client *c, const struct kvctl_args *a)
{
	const char *key = key_of(a);
	const char *src = a->npos > 2 ? a->pos[2] : NULL;
	if (src == NULL && isatty(STDIN_FILENO)) {
		fprintf(stderr, "kvctl: put: missing VALUE (give it as an argument, or '-' to read "
				"it from stdin)\n");
		return KVCTL_EXIT_USAGE;
	}
	void *v;
	size_t n;
	int ex = kvctl_read_value(src, &v, &n);
	if (ex)
		return ex;
	char what[CLI_KEY_MAX * 4 + 16], lb[CLI_KEY_MAX * 4 + 8];
	snprintf(what, sizeof what, "put %s", label(key, lb, sizeof lb));
	int rc = cli_put_ttl(c, key, strlen(key), v, n, a->ttl_ms);
	free(v);
	if (rc != CLI_OK)
		return kvctl_fail(a, what, rc);
	if (a->output == KVCTL_OUT_JSON)
		json_ok(key, true);
	return KVCTL_EXIT_OK;
}

/* Prints the ms left (-1: no expiry, -2: absent, exit 1 then, as get does). */
int kvctl_cmd_ttl(struct cli_client *c, const struct kvctl_args *a)
{
	const char *key = key_of(a);
	char what[CLI_KEY_MAX * 4 + 16], lb[CLI_KEY_MAX * 4 + 8];
	snprintf(what, sizeof what, "ttl %s", label(key, lb, sizeof lb));
	int64_t left;
	uint64_t at;
	int rc = cli_ttl(c, key, strlen(key), &left, &at);
	if (rc != CLI_OK)
		return kvctl_fail(a, what, rc);
	if (a->output == KVCTL_OUT_JSON) {
		printf("{");
		kvctl_json_bytes(stdout, "key", key, strlen(key));
		printf(", \"found\": %s, \"ttl_ms\": %lld, \"expire_at_ms\": %llu}\n",
		       left == -2 ? "false" : "true", (long long)left, (unsigned long long)at);
	} else {
		printf("%lld\n", (long long)left);
	}
	if (left == -2) {
		fprintf(stderr, "kvctl: %s: key not found\n", what);
		return KVCTL_EXIT_NOT_FOUND;
	}
	return KVCTL_EXIT_OK;
}

int kvctl_cmd_del(struct cli_client *c, const struct kvctl_args *a)
{
	const char *key = key_of(a);
	char what[CLI_KEY_MAX * 4 + 16], lb[CLI_KEY_MAX * 4 + 8];
	snprintf(what, sizeof what, "del %s", label(key, lb, sizeof lb));
	int rc = cli_delete(c, key, strlen(key));
	if (a->output == KVCTL_OUT_JSON && (rc == CLI_OK || rc == CLI_NOT_FOUND)) {
		printf("{");
		kvctl_json_bytes(stdout, "key", key, strlen(key));
		printf(", \"deleted\": %s}\n", rc == CLI_OK ? "true" : "false");
	}
	if (rc == CLI_NOT_FOUND) {
		fprintf(stderr, "kvctl: %s: key not found\n", what);
		return KVCTL_EXIT_NOT_FOUND;
	}
	return rc == CLI_OK ? KVCTL_EXIT_OK : kvctl_fail(a, what, rc);
}

int kvctl_cmd_cas(struct cli_client *c, const struct kvctl_args *a)
{
	const char *key = key_of(a);
	const char *expected = a->absent ? NULL : a->pos[2];
	const char *src = a->absent ? a->pos[2] : a->pos[3];
	if (expected && strcmp(expected, "-") == 0) {
		fprintf(stderr, "kvctl: cas: EXPECTED cannot come from stdin (only NEW can)\n");
		return KVCTL_EXIT_USAGE;
	}
	void *v;
	size_t n;
	int ex = kvctl_read_value(src, &v, &n);
	if (ex)
		return ex;
	char what[CLI_KEY_MAX * 4 + 16], lb[CLI_KEY_MAX * 4 + 8];
	snprintf(what, sizeof what, "cas %s", label(key, lb, sizeof lb));
	struct cli_current cur;
	int rc =
		cli_cas(c, key, strlen(key), expected, expected ? strlen(expected) : 0, v, n, &cur);
	free(v);
	if (a->output == KVCTL_OUT_JSON && (rc == CLI_OK || rc == CLI_CAS_MISMATCH)) {
		printf("{");
		kvctl_json_bytes(stdout, "key", key, strlen(key));
		printf(", \"ok\": %s", rc == CLI_OK ? "true" : "false");
		if (rc == CLI_CAS_MISMATCH) {
			printf(", \"found\": %s", cur.found ? "true" : "false");
			if (cur.found) {
				printf(", ");
				kvctl_json_bytes(stdout, "value", cur.value, cur.value_len);
			}
		}
		printf("}\n");
	}
	if (rc == CLI_CAS_MISMATCH) {
		if (!cur.found)
			fprintf(stderr, "kvctl: %s: compare failed: the key is absent\n", what);
		else if (a->absent)
			fprintf(stderr, "kvctl: %s: compare failed: the key exists\n", what);
		else
			fprintf(stderr, "kvctl: %s: compare failed: the key holds another value\n",
				what);
		free(cur.value);
		return KVCTL_EXIT_NOT_FOUND;
	}
	return rc == CLI_OK ? KVCTL_EXIT_OK : kvctl_fail(a, what, rc);
}

struct scan_out {
	const struct kvctl_args *a;
	size_t count;
};

/* Table output: bytes outside printable ASCII (and backslash, tab) as \xNN escapes. */
static void put_escaped(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\')
			putchar(s[i]);
		else
			printf("\\x%02x", s[i]);
	}
}

static int scan_cb(const void *key, size_t key_len, const void *value, size_t value_len, void *arg)
{
	struct scan_out *o = arg;
	if (o->a->output == KVCTL_OUT_JSON) {
		printf("%s\n    {", o->count ? "," : "");
		kvctl_json_bytes(stdout, "key", key, key_len);
		if (!o->a->keys_only) {
			printf(", ");
			kvctl_json_bytes(stdout, "value", value, value_len);
		}
		printf("}");
	} else {
		put_escaped(key, key_len);
		if (!o->a->keys_only) {
			putchar('\t');
			put_escaped(value, value_len);
		}
		putchar('\n');
	}
	o->count++;
	return 0;
}

int kvctl_cmd_scan(struct cli_client *c, const struct kvctl_args *a)
{
	const char *prefix = a->npos > 1 ? a->pos[1] : "";
	struct scan_out o = {.a = a};
	if (a->output == KVCTL_OUT_JSON)
		printf("{\"kvs\": [");
	int rc = cli_scan_prefix(c, prefix, strlen(prefix), a->limit, scan_cb, &o);
	if (a->output == KVCTL_OUT_JSON)
		printf("%s], \"count\": %zu, \"complete\": %s}\n", o.count ? "\n  " : "", o.count,
		       rc == CLI_OK ? "true" : "false");
	if (rc != CLI_OK)
		return kvctl_fail(a, "scan", rc);
	return KVCTL_EXIT_OK;
}
