/* kvctl_auth.c — kvctl user add/remove/list and auth enable (docs/SECURITY.md "Client
 * authentication"). A new user's password comes from stdin when it is not a terminal (one
 * line), else it is asked twice without echo; it is hashed by the client library. auth enable
 * returns once every member refuses clients without a user, or says which did not.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/kvctl.h"
#include "kv/user.h"

/* How long auth enable waits for every member to enforce (each asked every 100 ms). */
#define AUTH_CONFIRM_MS 10000

/* The new user's password into buf (NUL-terminated): 0, or KVCTL_EXIT_USAGE after saying why. */
static int read_password(char *buf, size_t cap)
{
	if (!isatty(STDIN_FILENO)) {
		if (fgets(buf, (int)cap, stdin) == NULL) {
			fprintf(stderr, "kvctl: user add: no password on stdin\n");
			return KVCTL_EXIT_USAGE;
		}
		size_t l = strlen(buf);
		if (l > 0 && buf[l - 1] != '\n' && !feof(stdin)) {
			fprintf(stderr, "kvctl: user add: the password is longer than %d bytes\n",
				KV_USER_PASSWORD_MAX);
			return KVCTL_EXIT_USAGE;
		}
		while (l > 0 && (buf[l - 1] == '\n' || buf[l - 1] == '\r'))
			buf[--l] = '\0';
	} else {
		const char *p = getpass("new user's password: ");
		snprintf(buf, cap, "%s", p ? p : "");
		p = getpass("again: ");
		if (p == NULL || strcmp(p, buf) != 0) {
			fprintf(stderr, "kvctl: user add: the passwords differ\n");
			return KVCTL_EXIT_USAGE;
		}
	}
	if (buf[0] == '\0') {
		fprintf(stderr, "kvctl: user add: the password is empty\n");
		return KVCTL_EXIT_USAGE;
	}
	return 0;
}

static int refused(const char *what, int rc, const char *why, const struct kvctl_args *a)
{
	if (rc == CLI_INVALID || rc == CLI_NOT_FOUND) {
		fprintf(stderr, "kvctl: %s: refused: %s\n", what, why[0] ? why : cli_strerror(rc));
		return rc == CLI_NOT_FOUND ? KVCTL_EXIT_NOT_FOUND : KVCTL_EXIT_USAGE;
	}
	return kvctl_fail(a, what, rc);
}

int kvctl_cmd_user(struct cli_client *c, const struct kvctl_args *a)
{
	const char *sub = a->pos[1];
	char why[256];
	int rc;
	if (strcmp(sub, "add") == 0 && a->npos == 3) {
		const char *name = a->pos[2];
		if (!kv_user_name_ok(name, strlen(name))) {
			fprintf(stderr,
				"kvctl: user add: a name is 1-%d bytes of A-Z a-z 0-9 _ . -\n",
				KV_USER_NAME_MAX);
			return KVCTL_EXIT_USAGE;
		}
		if (a->role == NULL) {
			fprintf(stderr, "kvctl: user add: give --role ro or --role rw\n");
			return KVCTL_EXIT_USAGE;
		}
		char pw[KV_USER_PASSWORD_MAX + 2];
		if ((rc = read_password(pw, sizeof pw)) != 0)
			return rc;
		rc = cli_user_add(c, name, a->role, pw, strlen(pw), why, sizeof why);
		memset(pw, 0, sizeof pw);
		if (rc != CLI_OK)
			return refused("user add", rc, why, a);
		if (a->output == KVCTL_OUT_JSON)
			printf("{\"user\": \"%s\", \"role\": \"%s\", \"added\": true}\n", name,
			       a->role);
		else
			printf("user %s added (role %s)\n", name, a->role);
		return KVCTL_EXIT_OK;
	}
	if (strcmp(sub, "remove") == 0 && a->npos == 3) {
		rc = cli_user_remove(c, a->pos[2], why, sizeof why);
		if (rc == CLI_EINVAL) {
			fprintf(stderr, "kvctl: user remove: '%s' is not a user name\n", a->pos[2]);
			return KVCTL_EXIT_USAGE;
		}
		if (rc != CLI_OK)
			return refused("user remove", rc, why, a);
		if (a->output != KVCTL_OUT_JSON)
			printf("user %s removed\n", a->pos[2]);
		return KVCTL_EXIT_OK;
	}
	if (strcmp(sub, "list") == 0 && a->npos == 2) {
		struct cli_user *users;
		size_t n;
		bool on;
		rc = cli_user_list(c, &users, &n, &on, why, sizeof why);
		if (rc != CLI_OK)
			return refused("user list", rc, why, a);
		if (a->output == KVCTL_OUT_JSON) {
			printf("{\"auth_enabled\": %s, \"users\": [", on ? "true" : "false");
			for (size_t i = 0; i < n; i++)
				printf("%s{\"name\": \"%s\", \"role\": \"%s\"}", i ? ", " : "",
				       users[i].name, users[i].role);
			printf("]}\n");
		} else {
			printf("authentication %s\n", on ? "on" : "off");
			for (size_t i = 0; i < n; i++)
				printf("%-20s %s\n", users[i].name, users[i].role);
		}
		cli_free(users);
		return KVCTL_EXIT_OK;
	}
	fprintf(stderr, "kvctl: usage: kvctl user add NAME --role ro|rw | user remove NAME | user "
			"list\n");
	return KVCTL_EXIT_USAGE;
}

int kvctl_cmd_auth(struct cli_client *c, const struct kvctl_args *a)
{
	if (strcmp(a->pos[1], "enable") != 0) {
		fprintf(stderr, "kvctl: usage: kvctl auth enable\n");
		return KVCTL_EXIT_USAGE;
	}
	char why[256];
	int rc = cli_auth_enable(c, why, sizeof why);
	if (rc != CLI_OK)
		return refused("auth enable", rc, why, a);
	/* returns once every member enforces it (a node that does not host the meta group
	 * learns it from the meta group's leader a moment later) */
	struct cli_auth_member m[CLI_NODES_MAX];
	size_t n = 0;
	rc = cli_auth_confirm(c, AUTH_CONFIRM_MS, m, CLI_NODES_MAX, &n);
	if (a->output == KVCTL_OUT_JSON) {
		printf("{\"auth_enabled\": true, \"confirmed\": [");
		for (size_t i = 0, k = 0; i < n; i++)
			if (m[i].confirmed)
				printf("%s%llu", k++ ? ", " : "", (unsigned long long)m[i].id);
		printf("], \"unconfirmed\": [");
		for (size_t i = 0, k = 0; i < n; i++)
			if (!m[i].confirmed)
				printf("%s%llu", k++ ? ", " : "", (unsigned long long)m[i].id);
		printf("]}\n");
	} else {
		printf("authentication on: every request needs a user (--user)\n"
		       "confirmed by members:");
		for (size_t i = 0; i < n; i++)
			if (m[i].confirmed)
				printf(" %llu", (unsigned long long)m[i].id);
		printf("\n");
	}
	if (rc == CLI_OK)
		return KVCTL_EXIT_OK;
	fprintf(stderr, "kvctl: auth enable: authentication is on in the cluster, but ");
	if (n == 0)
		fprintf(stderr, "no member was known to ask");
	for (size_t i = 0, k = 0; i < n; i++)
		if (!m[i].confirmed)
			fprintf(stderr, "%smember %llu (%s: %s)", k++ ? ", " : "",
				(unsigned long long)m[i].id,
				m[i].client_addr[0] ? m[i].client_addr : "?", m[i].last);
	fprintf(stderr,
		" did not confirm within %d s that it refuses clients without a user: it may "
		"still serve them; check it, then run kvctl auth enable again to ask again\n",
		AUTH_CONFIRM_MS / 1000);
	return KVCTL_EXIT_UNAVAILABLE;
}
