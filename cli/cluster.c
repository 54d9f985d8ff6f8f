/* cluster.c — the cluster-facing calls of the client: STATUS of one node, which group owns a
 * key, who leads a group, a group's digest on one node, and leadership transfer. They feed the
 * same routing cache the data calls use.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/client_int.h"

int cli_status(struct cli_client *c, const char *endpoint, struct cli_node_status *out)
{
	memset(out, 0, sizeof *out);
	if (endpoint == NULL)
		return CLI_EINVAL;
	Ringraft__Kv__Request req = RINGRAFT__KV__REQUEST__INIT;
	req.op = RINGRAFT__KV__OP__STATUS;
	Ringraft__Kv__Response *resp;
	bool sent;
	int rc = cli_attempt(c, endpoint, &req, cli_now_ms() + c->o.timeout_ms, &resp, &sent);
	if (rc)
		return rc;
	rc = (int)resp->code;
	if (rc == CLI_OK) {
		cli_learn_status(c, resp);
		rc = cli_codec_status(resp, out);
		if (rc)
			cli_node_status_free(out);
	}
	ringraft__kv__response__free_unpacked(resp, NULL);
	return rc;
}

int cli_group_of(struct cli_client *c, const void *key, size_t key_len, uint32_t *group)
{
	*group = 0;
	if (key == NULL && key_len)
		return CLI_EINVAL;
	if (c->route.ring == NULL) {
		int rc = cli_refresh(c, cli_now_ms() + c->o.timeout_ms);
		if (rc)
			return rc;
	}
	*group = cli_route_group_of(&c->route, key, key_len);
	return CLI_OK;
}

int cli_leader_of(struct cli_client *c, uint32_t group, bool refresh, uint64_t *node_id, char *addr)
{
	*node_id = 0;
	if (group == 0 || group > CLI_GROUPS_MAX)
		return CLI_EINVAL;
	if (refresh || c->route.ring == NULL) {
		int rc = cli_refresh(c, cli_now_ms() + c->o.timeout_ms);
		if (rc)
			return rc;
	}
	const char *a = cli_route_leader_addr(&c->route, group);
	if (a == NULL || c->route.leader[group] == 0)
		return CLI_UNAVAILABLE;
	*node_id = c->route.leader[group];
	if (addr)
		snprintf(addr, CLI_ADDR_MAX, "%s", a);
	return CLI_OK;
}

int cli_digest(struct cli_client *c, const char *endpoint, uint32_t group, void **digest,
	       size_t *digest_len, uint64_t *applied_index)
{
	*digest = NULL;
	*digest_len = 0;
	*applied_index = 0;
	if (endpoint == NULL || group == 0)
		return CLI_EINVAL;
	Ringraft__Kv__Request req = RINGRAFT__KV__REQUEST__INIT;
	req.op = RINGRAFT__KV__OP__DIGEST;
	req.group = group;
	req.redirect = true;
	Ringraft__Kv__Response *resp;
	bool sent;
	int rc = cli_attempt(c, endpoint, &req, cli_now_ms() + c->o.timeout_ms, &resp, &sent);
	if (rc)
		return rc;
	rc = (int)resp->code;
	if (rc == CLI_OK) {
		*digest = cli_dup(resp->value.data, resp->value.len);
		if (*digest == NULL) {
			rc = CLI_ENOMEM;
		} else {
			*digest_len = resp->value.len;
			*applied_index = resp->applied_index;
		}
	}
	ringraft__kv__response__free_unpacked(resp, NULL);
	return rc;
}

static int member_call(struct cli_client *c, Ringraft__Kv__Request *req, char *why, size_t len)
{
	/* any node forwards it to the meta group's leader: routed by a fixed key, to some group's
	 * leader (a request without a key would hash nothing) */
	struct cli_call call = {.write = true, .key = "member", .key_len = 6};
	call.req = *req;
	Ringraft__Kv__Response *resp;
	if (len > 0)
		why[0] = '\0';
	int rc = cli_call_routed(c, &call, &resp);
	if (resp) {
		if (len > 0 && resp->error)
			snprintf(why, len, "%s", resp->error);
		ringraft__kv__response__free_unpacked(resp, NULL);
	}
	return rc;
}

static int reshard_call(struct cli_client *c, Ringraft__Kv__Request *req, char *text, size_t len)
{
	/* like a member change: any node forwards it to the meta group's leader */
	struct cli_call call = {.write = true, .key = "ring", .key_len = 4};
	call.req = *req;
	Ringraft__Kv__Response *resp;
	if (len > 0)
		text[0] = '\0';
	int rc = cli_call_routed(c, &call, &resp);
	if (resp) {
		const char *t = rc == CLI_OK ? resp->progress : resp->error;
		if (len > 0 && t)
			snprintf(text, len, "%s", t);
		ringraft__kv__response__free_unpacked(resp, NULL);
	}
	return rc;
}

int cli_groups_add(struct cli_client *c, uint32_t count, char *text, size_t len)
{
	if (count == 0 || count > CLI_GROUPS_ADD_MAX)
		return CLI_EINVAL;
	Ringraft__Kv__Request req = RINGRAFT__KV__REQUEST__INIT;
	req.op = RINGRAFT__KV__OP__RESHARD_ADD;
	req.count = count;
	return reshard_call(c, &req, text, len);
}

int cli_groups_remove(struct cli_client *c, uint32_t group, char *text, size_t len)
{
	if (group == 0 || group > CLI_GROUPS_MAX)
		return CLI_EINVAL;
	Ringraft__Kv__Request req = RINGRAFT__KV__REQUEST__INIT;
	req.op = RINGRAFT__KV__OP__RESHARD_REMOVE;
	req.group = group;
	return reshard_call(c, &req, text, len);
}

void cli_learn_members_epoch(struct cli_client *c, uint64_t epoch)
{
	if (epoch > c->members_epoch)
		c->members_epoch = epoch;
}

int cli_member_add(struct cli_client *c, uint64_t id, const char *peer_addr,
		   const char *client_addr, char *why, size_t len)
{
	if (id == 0 || peer_addr == NULL || client_addr == NULL)
		return CLI_EINVAL;
	Ringraft__Kv__NodeInfo m = RINGRAFT__KV__NODE_INFO__INIT;
	m.id = id;
	m.peer_addr = (char *)peer_addr;
	m.client_addr = (char *)client_addr;
	Ringraft__Kv__Request req = RINGRAFT__KV__REQUEST__INIT;
	req.op = RINGRAFT__KV__OP__MEMBER_ADD;
	req.member = &m;
	return member_call(c, &req, why, len);
}

static int member_target_call(struct cli_client *c, Ringraft__Kv__Op op, uint64_t id, char *why,
			      size_t len)
{
	if (id == 0)
		return CLI_EINVAL;
	Ringraft__Kv__Request req = RINGRAFT__KV__REQUEST__INIT;
	req.op = op;
	req.target = id;
	return member_call(c, &req, why, len);
}

int cli_member_remove(struct cli_client *c, uint64_t id, char *why, size_t len)
{
	return member_target_call(c, RINGRAFT__KV__OP__MEMBER_REMOVE, id, why, len);
}

int cli_member_leave(struct cli_client *c, uint64_t id, char *why, size_t len)
{
	return member_target_call(c, RINGRAFT__KV__OP__MEMBER_LEAVE, id, why, len);
}

int cli_move_replica_step(struct cli_client *c, uint32_t group, uint64_t source, uint64_t target,
			  bool *done, char *progress, size_t len)
{
	*done = false;
	if (len > 0)
		progress[0] = '\0';
	if (group == 0 || group > CLI_GROUPS_MAX || source == 0 || target == 0)
		return CLI_EINVAL;
	struct cli_call call = {.write = false};
	ringraft__kv__request__init(&call.req);
	call.req.op = RINGRAFT__KV__OP__MOVE_REPLICA;
	call.req.group = group;
	call.req.source = source;
	call.req.target = target;
	call.req.members_epoch = c->members_epoch;
	Ringraft__Kv__Response *resp;
	int rc = cli_call_routed(c, &call, &resp);
	if (resp) {
		*done = resp->done;
		const char *text = rc == CLI_OK ? resp->progress : resp->error;
		if (len > 0)
			snprintf(progress, len, "%s", text ? text : "");
		ringraft__kv__response__free_unpacked(resp, NULL);
	}
	return rc;
}

int cli_transfer_leader(struct cli_client *c, uint32_t group, uint64_t target)
{
	if (group == 0 || group > CLI_GROUPS_MAX || target == 0)
		return CLI_EINVAL;
	struct cli_call call = {.write = false};
	ringraft__kv__request__init(&call.req);
	call.req.op = RINGRAFT__KV__OP__TRANSFER_LEADER;
	call.req.group = group;
	call.req.target = target;
	Ringraft__Kv__Response *resp;
	int rc = cli_call_routed(c, &call, &resp);
	if (resp)
		ringraft__kv__response__free_unpacked(resp, NULL);
	return rc;
}
