/* auth.c — the client library's calls for client authentication's users (docs/SECURITY.md):
 * add, remove and list users, turn authentication on. Every node forwards them to the meta
 * group's leader, which keeps the users. A new user's password is hashed here (kv/user.h), so
 * the password of a new user never reaches a node's disk or its event loop. After enabling,
 * cli_auth_confirm asks each member, as a client without a user would, until it is refused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/client_int.h"
#include "kv/user.h"

static int user_call(struct cli_client *c, Ringraft__Kv__Request *req, bool write, char *why,
		     size_t len, Ringraft__Kv__Response **keep)
{
	/* any node forwards it to the meta group's leader: routed by a fixed key, to some
	 * group's leader (as member calls are) */
	struct cli_call call = {.write = write, .key = "user", .key_len = 4};
	call.req = *req;
	Ringraft__Kv__Response *resp;
	if (len > 0)
		why[0] = '\0';
	int rc = cli_call_routed(c, &call, &resp);
	if (resp) {
		if (len > 0 && resp->error)
			snprintf(why, len, "%s", resp->error);
		if (keep != NULL && rc == CLI_OK)
			*keep = resp;
		else
			ringraft__kv__response__free_unpacked(resp, NULL);
	}
	return rc;
}

int cli_user_add(struct cli_client *c, const char *name, const char *role, const void *password,
		 size_t password_len, char *why, size_t len)
{
	int r = role ? kv_user_role_parse(role, strlen(role)) : 0;
	if (name == NULL || !kv_user_name_ok(name, strlen(name)) || r == 0)
		return CLI_EINVAL;
	struct kv_user u;
	if (kv_user_make(r, password, password_len, KV_USER_ITERATIONS, &u) != 0)
		return CLI_EINVAL;
	uint8_t rec[KV_USER_RECORD_BYTES];
	kv_user_record_encode(&u, rec);
	Ringraft__Kv__Request req = RINGRAFT__KV__REQUEST__INIT;
	req.op = RINGRAFT__KV__OP__USER_ADD;
	req.user = (char *)name;
	req.user_record.data = rec;
	req.user_record.len = sizeof rec;
	return user_call(c, &req, true, why, len, NULL);
}

int cli_user_remove(struct cli_client *c, const char *name, char *why, size_t len)
{
	if (name == NULL || !kv_user_name_ok(name, strlen(name)))
		return CLI_EINVAL;
	Ringraft__Kv__Request req = RINGRAFT__KV__REQUEST__INIT;
	req.op = RINGRAFT__KV__OP__USER_REMOVE;
	req.user = (char *)name;
	return user_call(c, &req, true, why, len, NULL);
}

int cli_auth_enable(struct cli_client *c, char *why, size_t len)
{
	/* the members as they are now, for cli_auth_confirm: once a node enforces, it answers
	 * STATUS only to a user */
	(void)cli_refresh(c, cli_now_ms() + c->o.timeout_ms);
	Ringraft__Kv__Request req = RINGRAFT__KV__REQUEST__INIT;
	req.op = RINGRAFT__KV__OP__AUTH_ENABLE;
	return user_call(c, &req, true, why, len, NULL);
}

/* One request without a user to addr, on a connection of its own: true when the node refuses
 * it as UNAUTHENTICATED (it enforces); else what it said in last. */
static bool probe(struct cli_client *c, const char *addr, int64_t deadline_ms, char *last,
		  size_t len)
{
	const char *user = c->o.user, *password = c->o.password;
	c->o.user = c->o.password = NULL; /* cli_attempt adds them to a connection's request */
	cli_conn_drop(c, addr);
	Ringraft__Kv__Request req = RINGRAFT__KV__REQUEST__INIT;
	req.op = RINGRAFT__KV__OP__PING;
	Ringraft__Kv__Response *resp = NULL;
	bool sent;
	int rc = cli_attempt(c, addr, &req, deadline_ms, &resp, &sent);
	cli_conn_drop(c, addr); /* the next call logs in afresh */
	c->o.user = user;
	c->o.password = password;
	if (rc != 0) {
		snprintf(last, len, "%s",
			 rc == CLI_TIMEOUT ? "no answer in time" : cli_strerror(rc));
		return false;
	}
	bool ok = resp->code == RINGRAFT__KV__CODE__UNAUTHENTICATED;
	if (resp->code == RINGRAFT__KV__CODE__OK)
		snprintf(last, len, "it served a request without a user");
	else
		snprintf(last, len, "%s",
			 resp->error && resp->error[0] ? resp->error
						       : cli_strerror((int)resp->code));
	ringraft__kv__response__free_unpacked(resp, NULL);
	return ok;
}

int cli_auth_confirm(struct cli_client *c, uint32_t wait_ms, struct cli_auth_member *out,
		     size_t cap, size_t *n)
{
	*n = 0;
	for (size_t i = 0; i < c->route.n_nodes && *n < cap; i++) {
		const struct cli_ring_node *rn = &c->route.nodes[i];
		if (rn->removed)
			continue;
		struct cli_auth_member *m = &out[(*n)++];
		memset(m, 0, sizeof *m);
		m->id = rn->id;
		snprintf(m->client_addr, sizeof m->client_addr, "%s", rn->client_addr);
		snprintf(m->last, sizeof m->last, "not asked");
	}
	if (*n == 0)
		return CLI_UNAVAILABLE; /* no member known: nothing confirmed */
	int64_t deadline = cli_now_ms() + wait_ms;
	for (;;) {
		size_t left = 0;
		for (size_t i = 0; i < *n; i++) {
			struct cli_auth_member *m = &out[i];
			if (m->confirmed)
				continue;
			if (m->client_addr[0] == '\0') {
				snprintf(m->last, sizeof m->last,
					 "its client address is not known");
				left++;
				continue;
			}
			int64_t d = cli_now_ms() + CLI_ATTEMPT_MS_MIN;
			m->confirmed = probe(c, m->client_addr, d < deadline ? d : deadline,
					     m->last, sizeof m->last);
			left += !m->confirmed;
		}
		if (left == 0)
			return CLI_OK;
		if (cli_now_ms() + 100 >= deadline)
			return CLI_UNAVAILABLE;
		struct timespec ts = {.tv_sec = 0, .tv_nsec = 100 * 1000000L};
		nanosleep(&ts, NULL);
	}
}

int cli_user_list(struct cli_client *c, struct cli_user **users, size_t *n, bool *enabled,
		  char *why, size_t len)
{
	*users = NULL;
	*n = 0;
	*enabled = false;
	Ringraft__Kv__Request req = RINGRAFT__KV__REQUEST__INIT;
	req.op = RINGRAFT__KV__OP__USER_LIST;
	Ringraft__Kv__Response *resp = NULL;
	int rc = user_call(c, &req, false, why, len, &resp);
	if (rc != CLI_OK)
		return rc;
	struct cli_user *out = calloc(resp->n_users ? resp->n_users : 1, sizeof *out);
	if (out == NULL) {
		ringraft__kv__response__free_unpacked(resp, NULL);
		return CLI_ENOMEM;
	}
	for (size_t i = 0; i < resp->n_users; i++) {
		snprintf(out[i].name, sizeof out[i].name, "%s",
			 resp->users[i]->name ? resp->users[i]->name : "");
		snprintf(out[i].role, sizeof out[i].role, "%s",
			 resp->users[i]->role ? resp->users[i]->role : "");
	}
	*users = out;
	*n = resp->n_users;
	*enabled = resp->auth_enabled;
	ringraft__kv__response__free_unpacked(resp, NULL);
	return CLI_OK;
}
