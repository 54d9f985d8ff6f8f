/* auth.c — client authentication on the node: users and the "auth enabled" flag are records
 * of the meta group ("user/<name>" -> kv/user.h's record, "auth/enabled" -> "1"), written by
 * its leader through ordinary entries, so they are in every replica, snapshot and digest of it,
 * and read back from its applied state. A record is made by the client (kvctl hashes the
 * password), so the node's loop never runs PBKDF2 to add a user; it only checks the record's
 * shape. No client reads a record: USER_LIST answers names and roles, and an explicit SCAN
 * of the meta group is refused (service.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/user.h"
#include "node/node_int.h"

#define USER_PREFIX "user/"
#define USER_END    "user0" /* '/' + 1: the end of the prefix's range */
#define ENABLED_KEY "auth/enabled"
/* Every node hosts the meta group (3 replicas) only up to 3 members: beyond, nodes that do
 * not would neither see the users nor the flag (docs/SECURITY.md "Not done"). */
#define AUTH_MEMBERS_MAX 3

bool node_auth_op(Ringraft__Kv__Op op)
{
	return op == RINGRAFT__KV__OP__USER_ADD || op == RINGRAFT__KV__OP__USER_REMOVE ||
	       op == RINGRAFT__KV__OP__USER_LIST || op == RINGRAFT__KV__OP__AUTH_ENABLE;
}

const char *node_auth_check(const Ringraft__Kv__Request *rq)
{
	if (rq->op != RINGRAFT__KV__OP__USER_ADD && rq->op != RINGRAFT__KV__OP__USER_REMOVE)
		return NULL;
	const char *name = rq->user ? rq->user : "";
	if (!kv_user_name_ok(name, strlen(name)))
		return "user: a name is 1-64 bytes of A-Z a-z 0-9 _ . -";
	struct kv_user u;
	if (rq->op == RINGRAFT__KV__OP__USER_ADD &&
	    kv_user_record_decode(rq->user_record.data, rq->user_record.len, &u) != 0)
		return "user add: user_record is not a user record (role, salt, PBKDF2 hash)";
	return NULL;
}

/* Every user record of the meta group's applied state, to cb. */
struct walk {
	Ringraft__Kv__UserInfo *infos;
	size_t n, cap;
	bool oom;
	size_t rw; /* users with role rw */
};

static int user_cb(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	struct walk *w = arg;
	struct kv_user u;
	size_t pl = sizeof USER_PREFIX - 1;
	if (kl <= pl || kv_user_record_decode(v, vl, &u) != 0)
		return 0; /* not a user record: skipped */
	if (u.role == KV_USER_RW)
		w->rw++;
	if (w->infos == NULL && w->cap == 0)
		return 0; /* counting only */
	if (w->n == w->cap) {
		size_t cap = w->cap * 2;
		Ringraft__Kv__UserInfo *ni = realloc(w->infos, cap * sizeof *ni);
		if (ni == NULL) {
			w->oom = true;
			return 1;
		}
		w->infos = ni;
		w->cap = cap;
	}
	Ringraft__Kv__UserInfo init = RINGRAFT__KV__USER_INFO__INIT;
	Ringraft__Kv__UserInfo *ui = &w->infos[w->n];
	*ui = init;
	ui->name = strndup((const char *)k + pl, kl - pl);
	ui->role = (char *)kv_user_role_name(u.role);
	if (ui->name == NULL) {
		w->oom = true;
		return 1;
	}
	w->n++;
	return 0;
}

static int walk_users(struct node *n, struct walk *w)
{
	void *next = NULL;
	size_t next_len = 0;
	int rc = kv_scan(n->kv, node_meta_id(n), 0, USER_PREFIX, sizeof USER_PREFIX - 1, USER_END,
			 sizeof USER_END - 1, KV_SCAN_MAX, user_cb, w, &next, &next_len);
	free(next);
	return rc < 0 ? rc : 0;
}

const char *node_auth_members_check(struct node *n, size_t live)
{
	if (live > AUTH_MEMBERS_MAX && node_auth_enabled(n))
		return "member add: refused while client authentication is on: a 4th node would "
		       "hold no replica of the meta group and could not enforce it (not built "
		       "yet; docs/SECURITY.md)";
	return NULL;
}

bool node_auth_enabled(struct node *n)
{
	struct node_group *g = node_group(n, node_meta_id(n));
	if (g == NULL || g->raft == NULL)
		return false; /* not hosted here: see node_auth_members_check */
	raft_index at = raft_applied_of(g->raft);
	/* a recovering replica's state is not trusted: keep what was read before */
	if (n->auth_known && (at == n->auth_applied || raft_recovering(g->raft)))
		return n->auth_on;
	void *v = NULL;
	size_t vl = 0;
	int rc = kv_get(n->kv, node_meta_id(n), ENABLED_KEY, sizeof ENABLED_KEY - 1, 0, &v, &vl,
			NULL);
	bool on = rc == KV_OK && vl == 1 && ((char *)v)[0] == '1';
	free(v);
	if (rc == KV_OK || rc == KV_NOT_FOUND) {
		n->auth_on = on;
		n->auth_known = true;
		n->auth_applied = at;
	}
	return on;
}

int node_auth_cmd(struct node *n, const Ringraft__Kv__Request *rq, struct kv_cmd *c,
		  char key[AUTH_KEY_BUF], const char **why)
{
	if (rq->op == RINGRAFT__KV__OP__AUTH_ENABLE) {
		size_t live = 0;
		for (size_t i = 0; i < n->cfg.n_members; i++)
			live += !n->cfg.members[i].removed;
		if (live > AUTH_MEMBERS_MAX) {
			*why = "auth enable: refused: the cluster has more than 3 members, and a "
			       "node without a replica of the meta group would not enforce it (not "
			       "built yet; docs/SECURITY.md)";
			return -1;
		}
		struct walk w = {0};
		if (walk_users(n, &w) != 0) {
			*why = "auth enable: the users could not be read";
			return -1;
		}
		if (w.rw == 0) {
			*why = "auth enable: refused: no user with role rw (kvctl user add NAME "
			       "--role rw) would be left to administer the cluster";
			return -1;
		}
		c->op = KV_OP_PUT;
		snprintf(key, AUTH_KEY_BUF, "%s", ENABLED_KEY);
		c->key = key;
		c->key_len = strlen(key);
		c->value = "1";
		c->value_len = 1;
		return 0;
	}
	snprintf(key, AUTH_KEY_BUF, USER_PREFIX "%s", rq->user);
	c->key = key;
	c->key_len = strlen(key);
	if (rq->op == RINGRAFT__KV__OP__USER_ADD) {
		c->op = KV_OP_CAS; /* put if absent: a name is added once */
		c->expect_absent = true;
		c->value = rq->user_record.data;
		c->value_len = rq->user_record.len;
		return 0;
	}
	/* USER_REMOVE: never the last rw user while authentication is on (no one could
	 * administer the cluster any more) */
	if (node_auth_enabled(n)) {
		void *v = NULL;
		size_t vl = 0;
		struct kv_user u;
		int rc = kv_get(n->kv, node_meta_id(n), key, c->key_len, 0, &v, &vl, NULL);
		bool is_rw = rc == KV_OK && kv_user_record_decode(v, vl, &u) == 0 &&
			     u.role == KV_USER_RW;
		free(v);
		struct walk w = {0};
		if (is_rw && (walk_users(n, &w) != 0 || w.rw <= 1)) {
			*why = "user remove: refused: the last rw user while authentication is on";
			return -1;
		}
	}
	c->op = KV_OP_DELETE;
	return 0;
}

void node_auth_list(struct node *n, Ringraft__Kv__Response *resp)
{
	struct walk w = {0};
	w.cap = 8;
	w.infos = malloc(w.cap * sizeof *w.infos);
	if (w.infos == NULL || walk_users(n, &w) != 0 || w.oom) {
		for (size_t i = 0; i < w.n; i++)
			free(w.infos[i].name);
		free(w.infos);
		resp->code = RINGRAFT__KV__CODE__INTERNAL;
		resp->error = "user list: the users could not be read";
		return;
	}
	Ringraft__Kv__UserInfo **ptrs = malloc((w.n ? w.n : 1) * sizeof *ptrs);
	if (ptrs == NULL) {
		for (size_t i = 0; i < w.n; i++)
			free(w.infos[i].name);
		free(w.infos);
		resp->code = RINGRAFT__KV__CODE__INTERNAL;
		resp->error = "out of memory";
		return;
	}
	for (size_t i = 0; i < w.n; i++)
		ptrs[i] = &w.infos[i];
	if (w.n == 0) /* node_auth_list_free finds the array through users[0]: none here */
		free(w.infos);
	resp->code = RINGRAFT__KV__CODE__OK;
	resp->users = ptrs;
	resp->n_users = w.n;
	resp->auth_enabled = node_auth_enabled(n);
}

void node_auth_list_free(Ringraft__Kv__Response *resp)
{
	if (resp->users == NULL)
		return;
	Ringraft__Kv__UserInfo *infos = resp->n_users ? resp->users[0] : NULL;
	for (size_t i = 0; i < resp->n_users; i++)
		free(resp->users[i]->name);
	free(infos);
	free(resp->users);
	resp->users = NULL;
	resp->n_users = 0;
}

bool node_auth_on(struct node *n)
{
	return node_auth_enabled(n);
}

int node_auth_lookup(struct node *n, const char *name, struct kv_user *out)
{
	char key[AUTH_KEY_BUF];
	if (name == NULL || !kv_user_name_ok(name, strlen(name)))
		return -1;
	snprintf(key, sizeof key, USER_PREFIX "%s", name);
	void *v = NULL;
	size_t vl = 0;
	int rc = kv_get(n->kv, node_meta_id(n), key, strlen(key), 0, &v, &vl, NULL);
	int ok = rc == KV_OK && kv_user_record_decode(v, vl, out) == 0 ? 0 : -1;
	free(v);
	return ok;
}

bool node_auth_allows(int role, Ringraft__Kv__Op op)
{
	if (role == KV_USER_RW)
		return true;
	if (role != KV_USER_RO)
		return false;
	/* read-only: reads and looking at the cluster, nothing that changes it */
	switch (op) {
	case RINGRAFT__KV__OP__GET:
	case RINGRAFT__KV__OP__SCAN:
	case RINGRAFT__KV__OP__MGET:
	case RINGRAFT__KV__OP__TTL:
	case RINGRAFT__KV__OP__PING:
	case RINGRAFT__KV__OP__STATUS:
	case RINGRAFT__KV__OP__DIGEST:
		return true;
	default:
		return false;
	}
}
