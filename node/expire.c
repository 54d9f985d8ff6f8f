/* expire.c — the node's side of key expiry (kv.h "Expiry", docs/CLI.md): the wall clock that
 * expiry is judged by (node_io.wall_ms); turning a request's expiry (relative or absolute) into the
 * command's absolute time on the group leader as it proposes, so every replica applies the same
 * time; and the background expirer: every NODE_EXPIRE_MS the leader of each group proposes one REAP
 * entry for at most NODE_EXPIRE_BATCH due keys, each carrying the expiry it saw, so that a
 * key set again before the entry applies is left alone. Replicas delete only what that entry
 * says, so they never disagree; reads hide due keys meanwhile (kv_get judges at now).
 *
 * Bounded work per step: one short read transaction and one entry per group, and never a new
 * REAP for a group while its previous one is not applied yet. Quiesced groups (raft/quiesce.c)
 * are looked at NODE_EXPIRE_QUIET_GROUPS per run, in turn: a read transaction costs LMDB time in
 * proportion to the DBIs open (two per group), so looking at every idle group every run was
 * the largest cost of an idle node with many groups. Their due keys are reaped later (at 1,024
 * groups, within about 26 s), which only delays reclaiming the space: reads already hide them.
 */
#include <stdlib.h>
#include <string.h>

#include "node/node_int.h"

int node_expire_prepare(struct node *n, const Ringraft__Kv__Request *rq, struct kv_cmd *c,
			const char **why)
{
	uint64_t now = node_wall_ms(n);
	bool expire = rq->op == RINGRAFT__KV__OP__EXPIRE,
	     persist = rq->op == RINGRAFT__KV__OP__PERSIST;
	int given = (rq->ttl_ms != 0) + (rq->expire_at_ms != 0) + rq->keep_ttl;
	c->now_ms = now;
	if (expire || persist) {
		c->op = KV_OP_EXPIRE;
		c->value = c->expected = NULL;
		c->value_len = c->expected_len = 0;
		c->expect_absent = false;
	}
	if (given == 0 && !expire)
		return 0;
	if (given > 1 || persist || (expire && (given == 0 || rq->keep_ttl)) ||
	    (c->op != KV_OP_PUT && c->op != KV_OP_CAS && c->op != KV_OP_EXPIRE)) {
		*why = "expiry: at most one of ttl_ms, expire_at_ms, keep_ttl, and only on "
		       "PUT, CAS or EXPIRE (which needs one of the first two)";
		return -1;
	}
	if (rq->ttl_ms > NODE_EXPIRE_TTL_MS_MAX) {
		*why = "expiry: ttl_ms over 100 years";
		return -1;
	}
	c->keep_ttl = rq->keep_ttl;
	c->expire_at_ms = rq->ttl_ms ? now + rq->ttl_ms : rq->expire_at_ms;
	return 0;
}

/* The REAP being built (reused). */
struct reap {
	struct kv_item items[NODE_EXPIRE_BATCH];
	uint8_t at[NODE_EXPIRE_BATCH][8];
	uint8_t keys[NODE_EXPIRE_BATCH][KV_KEY_MAX];
	size_t n;
};

/* Per group: the REAP entry in flight (0: none). */
struct node_expire {
	raft_index inflight[KV_GROUPS_MAX];
	raft_term term[KV_GROUPS_MAX];
	uint64_t last_ms;
	uint32_t quiet_next; /* the next group to look at among the quiesced ones */
	struct reap reap;
};

static void due_cb(const void *k, size_t kl, uint64_t expire_at_ms, void *arg)
{
	struct reap *r = arg;
	uint8_t *key = r->keys[r->n];
	memcpy(key, k, kl);
	for (int i = 0; i < 8; i++)
		r->at[r->n][i] = (uint8_t)(expire_at_ms >> (8 * i));
	r->items[r->n] = (struct kv_item){key, kl, r->at[r->n], 8};
	r->n++;
}

/* One REAP for the group, if it has due keys and none is in flight. */
static void reap_group(struct node *n, struct node_group *g, struct reap *r, uint64_t now)
{
	struct node_expire *x = n->expire;
	size_t gi = g->id - 1;
	if (x->inflight[gi] != 0 && raft_term_of(g->raft) == x->term[gi] &&
	    raft_applied_of(g->raft) < x->inflight[gi])
		return;
	/* The committed state is enough (and commits nothing: kv_expired_committed), except
	 * right after our own REAP applied: its deletions may be in the open transaction only,
	 * and listing those keys again would propose a REAP that finds nothing to do. */
	bool reaped = x->inflight[gi] != 0;
	x->inflight[gi] = 0;
	r->n = 0;
	uint32_t found;
	int rc = reaped ? kv_expired(n->kv, g->id, now, NODE_EXPIRE_BATCH, due_cb, r, &found)
			: kv_expired_committed(n->kv, g->id, now, NODE_EXPIRE_BATCH, due_cb, r,
					       &found);
	if (rc != KV_OK) {
		node_log(NODE_LOG_WARN, g->id, "expirer cannot list due keys error=\"%s\"",
			 kv_strerror(rc));
		return;
	}
	if (r->n == 0)
		return;
	struct kv_cmd c = {.op = KV_OP_REAP, .items = r->items, .n_items = r->n, .now_ms = now};
	struct raft_buf buf;
	if (kv_cmd_encode(n->kv, &c, &buf) != KV_OK)
		return;
	raft_index index;
	raft_term term;
	rc = raft_propose(g->raft, &buf, &index, &term);
	node_metrics_proposal(&n->metrics, rc == RAFT_OK);
	if (rc != RAFT_OK) {
		free(buf.base); /* not the leader any more, or transferring: the next one will */
		return;
	}
	x->inflight[gi] = index;
	x->term[gi] = term;
	node_log(NODE_LOG_DEBUG, g->id, "expirer proposed keys=%zu index=%llu", r->n,
		 (unsigned long long)index);
}

void node_expire_tick(struct node *n)
{
	if (n->stopping)
		return;
	uint64_t ms = node_now_ms(n);
	if (n->expire == NULL && (n->expire = calloc(1, sizeof *n->expire)) == NULL)
		return;
	if (ms - n->expire->last_ms < NODE_EXPIRE_MS)
		return;
	n->expire->last_ms = ms;
	uint64_t now = node_wall_ms(n);
	/* every awake group this node leads ... */
	for (uint32_t i = 0; i < n->n_awake; i++) {
		struct node_group *g = &n->groups[n->awake[i]];
		if (g->raft != NULL && g->role == RAFT_LEADER && !raft_quiesced(g->raft) &&
		    !raft_recovering(g->raft) && g->id != node_meta_id(n)) /* no keys expire there */
			reap_group(n, g, &n->expire->reap, now);
	}
	/* ... and a few quiesced ones, in turn (g->role, kept by the driver, spares a look into
	 * every core) */
	uint32_t seen = 0;
	for (uint32_t k = 0; k < n->cfg.groups && seen < NODE_EXPIRE_QUIET_GROUPS; k++) {
		struct node_group *g = &n->groups[n->expire->quiet_next];
		n->expire->quiet_next = (n->expire->quiet_next + 1) % n->cfg.groups;
		if (g->raft == NULL || g->role != RAFT_LEADER || !raft_quiesced(g->raft) ||
		    raft_recovering(g->raft))
			continue;
		seen++;
		reap_group(n, g, &n->expire->reap, now); /* wakes the group if it proposes */
	}
}

void node_expire_free(struct node *n)
{
	free(n->expire);
	n->expire = NULL;
}
