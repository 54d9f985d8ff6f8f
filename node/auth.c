/* auth.c — client authentication on the node: users and the "auth enabled" flag are records
 * of the meta group ("user/<name>" -> kv/user.h's record, "auth/enabled" -> "1"), written by
 * its leader through ordinary entries, so they are in every replica, snapshot and digest of it.
 * A record is made by the client (kvctl hashes the password), so the node's loop never runs
 * PBKDF2 to add a user; it only checks the record's shape. No client reads a record:
 * USER_LIST answers names and roles, and an explicit SCAN of the meta group is refused
 * (service.c).
 *
 * What a node enforces is n->auth (auth.h), read from its own replica of the meta group at
 * each applied index, or, on a node that holds none (more than 3 members), pushed by the meta
 * group's leader with the cluster map (PeerFrame field 11: on change, on connect, every
 * NODE_MAP_PUSH_MS). A push carries the records as stored, over the peer links only. A state
 * replaces another only when read at a higher applied index (its version), so a deposed
 * leader's late push never undoes a newer one. The shell saves every change in DIR/auth.state
 * (authfile.c), so a restart starts from what was learned; a node that knows nothing yet, or
 * only "off" from its file, refuses clients without a login as UNAVAILABLE until its own
 * replica or the leader confirms (fail closed). Why a push and not a login forwarded to a
 * meta host: a node then checks logins on its own (no extra round trip, none of the meta
 * group's hosts need be up for a login), and the state it saved keeps it closed across a
 * restart in a partition.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/user.h"
#include "node/node_int.h"

#define USER_PREFIX "user/"
#define USER_END    "user0" /* '/' + 1: the end of the prefix's range */
#define ENABLED_KEY "auth/enabled"

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
	size_t rw;    /* users with role rw */
	size_t users; /* users */
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
	w->users++;
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

/* ------------------------------------------------------------------------------ the state */

void node_auth_state_free(struct node_auth_state *s)
{
	if (s->users != NULL)
		OPENSSL_cleanse(s->users, s->n * sizeof *s->users);
	free(s->users);
	memset(s, 0, sizeof *s);
}

static int user_index(const struct node_auth_state *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->users[i].name, name) == 0)
			return (int)i;
	return -1;
}

int node_auth_state_from_pb(const Ringraft__Raft__AuthState *m, struct node_auth_state *out,
			    const char **why)
{
	memset(out, 0, sizeof *out);
	if (m->n_users > NODE_AUTH_USERS_MAX) {
		*why = "more users than NODE_AUTH_USERS_MAX";
		return -1;
	}
	if (m->n_users > 0 && (out->users = calloc(m->n_users, sizeof *out->users)) == NULL) {
		*why = "out of memory";
		return -1;
	}
	for (size_t i = 0; i < m->n_users; i++) {
		const Ringraft__Raft__AuthUser *u = m->users[i];
		size_t nl = u->name != NULL ? strlen(u->name) : 0;
		if (!kv_user_name_ok(u->name, nl)) {
			*why = "a bad user name";
			goto bad;
		}
		memcpy(out->users[i].name, u->name, nl + 1);
		if (user_index(out, u->name) >= 0) { /* the i filled so far */
			*why = "a user named twice";
			goto bad;
		}
		if (kv_user_record_decode(u->record.data, u->record.len, &out->users[i].u) != 0) {
			*why = "a user record that is not one";
			goto bad;
		}
		out->n = i + 1;
	}
	out->n = m->n_users;
	out->known = true;
	out->on = m->enabled;
	out->version = m->version;
	return 0;
bad:
	node_auth_state_free(out);
	return -1;
}

int node_auth_state_pack(const struct node_auth_state *s, uint8_t **buf, size_t *len)
{
	Ringraft__Raft__AuthState m = RINGRAFT__RAFT__AUTH_STATE__INIT;
	Ringraft__Raft__AuthUser *us = calloc(s->n ? s->n : 1, sizeof *us);
	Ringraft__Raft__AuthUser **ptrs = calloc(s->n ? s->n : 1, sizeof *ptrs);
	uint8_t(*recs)[KV_USER_RECORD_BYTES] = calloc(s->n ? s->n : 1, sizeof *recs);
	int rc = -1;
	*buf = NULL;
	*len = 0;
	if (us == NULL || ptrs == NULL || recs == NULL)
		goto out;
	m.version = s->version;
	m.enabled = s->on;
	for (size_t i = 0; i < s->n; i++) {
		ringraft__raft__auth_user__init(&us[i]);
		us[i].name = (char *)s->users[i].name;
		kv_user_record_encode(&s->users[i].u, recs[i]);
		us[i].record.data = recs[i];
		us[i].record.len = KV_USER_RECORD_BYTES;
		ptrs[i] = &us[i];
	}
	m.users = ptrs;
	m.n_users = s->n;
	size_t l = ringraft__raft__auth_state__get_packed_size(&m);
	if ((*buf = malloc(l ? l : 1)) == NULL)
		goto out;
	ringraft__raft__auth_state__pack(&m, *buf);
	*len = l;
	rc = 0;
out:
	if (recs != NULL)
		OPENSSL_cleanse(recs, (s->n ? s->n : 1) * sizeof *recs);
	free(recs);
	free(ptrs);
	free(us);
	return rc;
}

bool node_auth_state_same(const struct node_auth_state *a, const struct node_auth_state *b)
{
	if (a->known != b->known || a->on != b->on || a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		int k = user_index(b, a->users[i].name);
		if (k < 0 || memcmp(&a->users[i].u, &b->users[k].u, sizeof a->users[i].u) != 0)
			return false;
	}
	return true;
}

/* Takes `s` (moved into n->auth, or freed) when it is newer than what n has: a version above
 * n's, or anything when n knows nothing. The same version only confirms (same log index,
 * same state). A change is saved by the shell and, at the meta leader, pushed at once. */
static void take_state(struct node *n, struct node_auth_state *s, const char *source)
{
	struct node_auth_state *cur = &n->auth;
	if (cur->known && s->version <= cur->version) {
		if (s->version == cur->version && s->confirmed)
			cur->confirmed = true;
		node_auth_state_free(s);
		return;
	}
	bool changed = !node_auth_state_same(cur, s);
	if (changed || !cur->confirmed)
		node_log(changed ? NODE_LOG_WARN : NODE_LOG_INFO, 0,
			 "client authentication state from=%s on=%s users=%zu version=%llu", source,
			 s->on ? "yes" : "no", s->n, (unsigned long long)s->version);
	node_auth_state_free(cur);
	*cur = *s;
	memset(s, 0, sizeof *s);
	if (changed && n->io.auth_changed != NULL)
		n->io.auth_changed(n->io.arg);
	if (changed)
		node_auth_push(n);
}

/* The users' records of the local replica of the meta group. */
struct state_walk {
	struct node_auth_state *s;
	bool bad;
};

static int state_cb(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	struct state_walk *w = arg;
	size_t pl = sizeof USER_PREFIX - 1;
	struct kv_user u;
	if (kl <= pl || kl - pl > KV_USER_NAME_MAX ||
	    !kv_user_name_ok((const char *)k + pl, kl - pl) ||
	    kv_user_record_decode(v, vl, &u) != 0)
		return 0; /* not a user record: skipped, as user_cb does */
	if (w->s->n >= NODE_AUTH_USERS_MAX) {
		w->bad = true;
		return 1;
	}
	struct node_auth_user *nu = &w->s->users[w->s->n++];
	memcpy(nu->name, (const char *)k + pl, kl - pl);
	nu->name[kl - pl] = '\0';
	nu->u = u;
	return 0;
}

void node_auth_refresh(struct node *n)
{
	struct node_group *g = node_group(n, node_meta_id(n));
	if (g == NULL || g->raft == NULL || raft_recovering(g->raft))
		return; /* no replica here, or one not to be trusted: pushes and the file decide */
	raft_index at = raft_applied_of(g->raft);
	if (n->auth_local_read && at == n->auth_local_applied)
		return;
	if (n->auth.known && at < n->auth.version)
		return; /* e.g. a new learner still catching up: what we know is newer */
	if (n->auth.known && at == 0) {
		n->auth_local_read = true; /* a fresh replica says nothing over what we know */
		n->auth_local_applied = 0;
		return;
	}
	/* read once per applied index, also when it fails (then what we know stays, and the
	 * next index is read again): never a scan per request */
	n->auth_local_read = true;
	n->auth_local_applied = at;
	struct node_auth_state s = {0};
	void *v = NULL;
	size_t vl = 0;
	int rc = kv_get(n->kv, node_meta_id(n), ENABLED_KEY, sizeof ENABLED_KEY - 1, 0, &v, &vl,
			NULL);
	s.on = rc == KV_OK && vl == 1 && ((char *)v)[0] == '1';
	free(v);
	if (rc != KV_OK && rc != KV_NOT_FOUND) {
		node_log(NODE_LOG_ERROR, g->id,
			 "cannot read client authentication's flag error=\"%s\"", kv_strerror(rc));
		return;
	}
	struct state_walk w = {.s = &s};
	if ((s.users = calloc(NODE_AUTH_USERS_MAX, sizeof *s.users)) == NULL)
		return;
	void *next = NULL;
	size_t next_len = 0;
	rc = kv_scan(n->kv, node_meta_id(n), 0, USER_PREFIX, sizeof USER_PREFIX - 1, USER_END,
		     sizeof USER_END - 1, NODE_AUTH_USERS_MAX + 1, state_cb, &w, &next, &next_len);
	free(next);
	if (rc != KV_OK || w.bad) {
		node_log(NODE_LOG_ERROR, g->id,
			 "cannot read client authentication's users error=\"%s\"",
			 w.bad ? "more users than NODE_AUTH_USERS_MAX" : kv_strerror(rc));
		node_auth_state_free(&s);
		return;
	}
	s.known = true;
	s.confirmed = true;
	s.version = at;
	take_state(n, &s, "local");
}

void node_auth_push(struct node *n)
{
	struct node_group *g = node_group(n, node_meta_id(n));
	if (g == NULL || g->raft == NULL || raft_role_of(g->raft) != RAFT_LEADER ||
	    !n->auth.known || !n->auth.confirmed || n->auth.version == 0)
		return;
	uint8_t *buf;
	size_t len;
	if (node_auth_state_pack(&n->auth, &buf, &len) != 0)
		return;
	for (size_t i = 0; i < n->cfg.n_members; i++) {
		uint64_t to = n->cfg.members[i].id;
		if (to != n->cfg.id && !n->cfg.members[i].removed && node_peer_is_up(n, to))
			(void)n->io.peer_send_packed(n->io.arg, to, NODE_FIELD_AUTH, buf, len);
	}
	OPENSSL_cleanse(buf, len);
	free(buf);
}

void node_auth_received(struct node *n, uint64_t from, const Ringraft__Raft__AuthState *m)
{
	struct node_auth_state s;
	const char *why = NULL;
	if (node_auth_state_from_pb(m, &s, &why) != 0) {
		node_log(NODE_LOG_WARN, 0, "malformed client authentication state from=%llu: %s",
			 (unsigned long long)from, why);
		return;
	}
	s.confirmed = true;
	take_state(n, &s, "meta-leader");
}

void node_auth_load(struct node *n, const Ringraft__Raft__AuthState *m)
{
	struct node_auth_state s;
	const char *why = NULL;
	if (m == NULL || node_auth_state_from_pb(m, &s, &why) != 0) {
		/* fail closed: on, no users known; any state the cluster sends replaces it */
		if (m != NULL)
			node_log(NODE_LOG_ERROR, 0,
				 "auth.state is damaged, refused: %s; client authentication is "
				 "taken as on with no users known until the meta group's leader "
				 "sends the state",
				 why);
		memset(&s, 0, sizeof s);
		s.known = true;
		s.on = true;
	}
	take_state(n, &s, m == NULL ? "damaged-file" : "file");
}

int node_auth_saved_state(struct node *n, uint8_t **buf, size_t *len)
{
	if (!n->auth.known || !n->auth.confirmed)
		return -1; /* only what the meta group said: never a damaged file's stand-in */
	return node_auth_state_pack(&n->auth, buf, len);
}

int node_auth_mode(struct node *n)
{
	node_auth_refresh(n);
	if (!n->auth.known)
		return NODE_AUTH_UNCONFIRMED;
	if (n->auth.on)
		return NODE_AUTH_ON;
	return n->auth.confirmed ? NODE_AUTH_OFF : NODE_AUTH_UNCONFIRMED;
}

bool node_auth_enabled(struct node *n)
{
	return node_auth_mode(n) != NODE_AUTH_OFF;
}
int node_auth_cmd(struct node *n, const Ringraft__Kv__Request *rq, struct kv_cmd *c,
		  char key[AUTH_KEY_BUF], const char **why)
{
	if (rq->op == RINGRAFT__KV__OP__AUTH_ENABLE) {
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
		struct walk w = {0};
		if (walk_users(n, &w) != 0) {
			*why = "user add: the users could not be read";
			return -1;
		}
		if (w.users >= NODE_AUTH_USERS_MAX) {
			*why = "user add: refused: the cluster has the most users it may have "
			       "(256)";
			return -1;
		}
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
	memset(out, 0, sizeof *out);
	if (name == NULL || !kv_user_name_ok(name, strlen(name)))
		return -1;
	node_auth_refresh(n);
	int i = user_index(&n->auth, name);
	if (i < 0)
		return -1;
	*out = n->auth.users[i].u;
	return 0;
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
