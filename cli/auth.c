/* auth.c — the client library's calls for client authentication's users (docs/SECURITY.md):
 * add, remove and list users, turn authentication on. Every node forwards them to the meta
 * group's leader, which keeps the users. A new user's password is hashed here (kv/user.h), so
 * the password of a new user never reaches a node's disk or its event loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	Ringraft__Kv__Request req = RINGRAFT__KV__REQUEST__INIT;
	req.op = RINGRAFT__KV__OP__AUTH_ENABLE;
	return user_call(c, &req, true, why, len, NULL);
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
