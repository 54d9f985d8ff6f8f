/* repair.c — a replica whose state machine is found damaged while it runs (a stored value
 * failed its checksum on a read, an apply, a snapshot send or the background scrub) is never
 * served: the read gets an error the client retries elsewhere, and the group replica is rebuilt
 * from its peers — its LMDB data and its WAL log reset, its core restarted as a recovering
 * replica (raft/recovery.c) that the leader brings back by log or snapshot. A full disk stops
 * the node cleanly instead (node_stop_disk_full).
 */
#include <stdlib.h>
#include <string.h>

#include "node/node_int.h"

void node_stop_disk_full(struct node *n, uint32_t group, const char *what)
{
	(void)n;
	node_log(NODE_LOG_ERROR, group,
		 "disk full: %s; the node stops (exit %d). Every acknowledged write is in the "
		 "WAL: free space on the data directory's file system and start the node again",
		 what, NODE_EXIT_DISK_FULL);
	_Exit(NODE_EXIT_DISK_FULL);
}

/* A key as log text: printable bytes as they are, others as \xNN, cut at 64 bytes. */
static void key_text(const uint8_t *k, size_t len, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < len && o + 5 < cap && i < 64; i++) {
		if (k[i] >= 0x21 && k[i] < 0x7f && k[i] != '"' && k[i] != '\\')
			out[o++] = (char)k[i];
		else
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", k[i]);
	}
	if (len > 64 && o + 4 < cap) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

void node_group_damaged(struct node *n, struct node_group *g, const char *where)
{
	uint8_t key[KV_KEY_MAX];
	size_t key_len = 0;
	uint32_t kg = 0;
	char text[64 * 4 + 8] = "?";
	if (kv_last_corrupt(n->kv, &kg, key, sizeof key, &key_len) == KV_OK)
		key_text(key, key_len < sizeof key ? key_len : sizeof key, text, sizeof text);
	node_log(NODE_LOG_ERROR, g->id,
		 "stored value failed its checksum during %s key=\"%s\": the replica is not "
		 "served and is rebuilt from its peers",
		 where, text);
	g->damaged = true;
	n->any_damaged = true;
}

static void drop_held_in(struct node_batch *b, uint32_t group)
{
	size_t k = 0;
	for (size_t i = 0; i < b->n_held; i++) {
		if (b->held[i].group == group)
			free(b->held[i].buf);
		else
			b->held[k++] = b->held[i];
	}
	b->n_held = k;
}

void node_drop_held(struct node *n, uint32_t group)
{
	drop_held_in(n->cur, group);
	if (n->inflight != NULL)
		drop_held_in(n->inflight, group);
}

void node_group_empty(struct node *n, struct node_group *g, const struct raft_conf *conf,
		      bool marker, const char *what)
{
	raft_term term = 0;
	if (g->raft != NULL) {
		node_service_group_reset(n, g);
		node_snap_close_all(n, g);
		/* Acknowledgements the old core made must not leave: its log is being discarded. */
		node_drop_held(n, g->id);
		term = raft_term_of(g->raft);
		raft_free(g->raft);
		g->raft = NULL;
	}
	int rc = marker ? kv_group_retire(n->kv, g->id, conf) : kv_group_reset(n->kv, g->id);
	if (rc == KV_ENOSPC)
		node_stop_disk_full(n, g->id, what);
	if (rc != KV_OK)
		node_fatal(n, g->id, "%s failed error=\"%s\"", what, kv_strerror(rc));
	/* the term is kept (a fence only raises it); the flag keeps a restart recovering */
	struct raft_hard_state hs = {.term = term, .recovering = true};
	struct wal_batch *b = n->cur->b;
	if (wal_batch_snapshot(b, g->id, 0, 0, conf) != WAL_OK ||
	    wal_batch_truncate(b, g->id, 1) != WAL_OK ||
	    wal_batch_hard_state(b, g->id, &hs) != WAL_OK)
		node_fatal(n, g->id, "out of memory resetting the group's log (%s)", what);
	node_group_compacted(g, 0);
	g->checkpointed = 0;
	g->state_gen++;
	g->role = RAFT_FOLLOWER;
	g->leader = 0;
	kv_scrub_cursor_init(&g->scrub);
	memset(&g->digest_mine, 0, sizeof g->digest_mine);
}

void node_group_start_recovering(struct node *n, struct node_group *g,
				 const struct raft_conf *conf, raft_term term)
{
	struct raft_restore rs;
	memset(&rs, 0, sizeof rs);
	rs.conf = *conf;
	rs.hard_state.term = term;
	rs.hard_state.recovering = true;
	g->raft = node_group_raft_new(n, g->id, &rs);
	g->role = raft_role_of(g->raft);
	g->leader = raft_leader_of(g->raft);
	g->recovering = true;
}

static void rebuild(struct node *n, struct node_group *g)
{
	g->damaged = false;
	struct raft_conf conf = *raft_conf_of(g->raft);
	raft_term term = raft_term_of(g->raft);
	node_group_empty(n, g, &conf, false, "resetting a damaged replica");
	node_group_start_recovering(n, g, &conf, term);
	node_log(NODE_LOG_WARN, g->id, "replica reset: recovering from its peers term=%llu",
		 (unsigned long long)term);
}

void node_repair(struct node *n)
{
	if (!n->any_damaged)
		return; /* runs every loop turn: nothing to scan in the common case */
	n->any_damaged = false;
	for (uint32_t i = 0; i < node_groups_all(n); i++)
		if (n->groups[i].damaged && n->groups[i].raft != NULL)
			rebuild(n, &n->groups[i]);
}

void node_recovery_watch(struct node *n)
{
	uint64_t stall_ms = (uint64_t)NODE_RECOVER_STALL_ELECTIONS * n->cfg.election_ms;
	uint64_t now = node_now_ms(n);
	for (uint32_t i = 0; i < node_groups_all(n); i++) {
		struct node_group *g = &n->groups[i];
		if (g->raft == NULL || !g->recover_watch || g->recover_stall_warned)
			continue;
		if (!raft_recovering(g->raft)) {
			node_log(NODE_LOG_WARN, g->id,
				 "replica repaired after the machine crash in %llu ms",
				 (unsigned long long)(now - g->recover_since_ms));
			g->recover_watch = false;
			continue;
		}
		if (raft_leader_of(g->raft) != 0 || now - g->recover_since_ms < stall_ms)
			continue;
		g->recover_stall_warned = true;
		node_log(NODE_LOG_ERROR, g->id,
			 "recovering after a machine crash with no leader for %llu ms: if most of "
			 "the group's replicas lost their state machine too (cut at the same time, "
			 "a whole-cluster power loss), the group cannot elect a leader and stays "
			 "down; that case needs --kv-sync on, or an operator (docs/DURABILITY.md, "
			 "\"Self-repair after a machine crash\")",
			 (unsigned long long)(now - g->recover_since_ms));
	}
}

void node_scrub_step(struct node *n)
{
	uint64_t budget = (uint64_t)n->cfg.scrub_rate * NODE_MAINT_MS / 1000;
	uint32_t G = node_groups_all(n);
	uint32_t limit = G < NODE_SCRUB_GROUPS_PER_STEP ? G : NODE_SCRUB_GROUPS_PER_STEP;
	for (uint32_t tries = 0; budget > 0 && tries < limit; tries++) {
		struct node_group *g = &n->groups[n->scrub_next % G];
		if (g->raft == NULL || g->damaged || raft_recovering(g->raft)) {
			n->scrub_next = (n->scrub_next + 1) % G;
			continue;
		}
		uint32_t step = budget > KV_SCAN_MAX ? KV_SCAN_MAX : (uint32_t)budget;
		uint32_t checked = 0;
		bool done = false;
		int rc = kv_scrub_step(n->kv, g->id, &g->scrub, step, &checked, &done);
		budget -= checked < budget ? checked : budget;
		if (rc == KV_ECORRUPT) {
			node_group_damaged(n, g, "the background scrub");
			return;
		}
		if (rc != KV_OK) {
			node_log(NODE_LOG_WARN, g->id, "scrub step failed error=\"%s\"",
				 kv_strerror(rc));
			done = true;
		}
		if (!done)
			return; /* the budget ran out inside this group: go on next time */
		if (checked == 0)
			budget--; /* an empty group costs one unit, so the loop ends */
		n->scrub_next = (n->scrub_next + 1) % G;
	}
}

/* ------------------------------------------------------------------------------ digests */

/* Decides once our digest and the peers' are known at the same applied index. */
static void digest_compare(struct node *n, struct node_group *g)
{
	const struct node_digest *me = &g->digest_mine;
	if (!me->valid || g->damaged || raft_recovering(g->raft))
		return;
	size_t same = 0, other = 0;
	const struct node_digest *first_other = NULL;
	bool others_agree = true;
	for (size_t i = 0; i < n->cfg.n_members; i++) {
		const struct node_digest *p = &g->digest_peer[i];
		if (!p->valid || p->applied != me->applied)
			continue;
		if (memcmp(p->d, me->d, KV_DIGEST_BYTES) == 0) {
			same++;
		} else {
			if (first_other != NULL &&
			    memcmp(p->d, first_other->d, KV_DIGEST_BYTES) != 0)
				others_agree = false;
			if (first_other == NULL)
				first_other = p;
			other++;
		}
	}
	if (other >= 2 && same == 0 && others_agree) {
		node_log(NODE_LOG_ERROR, g->id,
			 "state digest differs from every other replica's at applied=%llu: the "
			 "replica is not served and is rebuilt from its peers",
			 (unsigned long long)me->applied);
		g->damaged = true;
		n->any_damaged = true;
	} else if (other > 0 && g->digest_warned != me->applied) {
		g->digest_warned = me->applied;
		node_log(NODE_LOG_WARN, g->id,
			 "state digests differ at applied=%llu agreeing=%zu differing=%zu (the odd "
			 "replica rebuilds itself)",
			 (unsigned long long)me->applied, same + 1, other);
	}
	for (size_t i = 0; i < n->cfg.n_members; i++)
		if (g->digest_peer[i].valid && g->digest_peer[i].applied < me->applied)
			g->digest_peer[i].valid = false; /* too old to be compared ever */
}

static bool quiescent(const struct node_group *g)
{
	raft_index c = raft_commit_of(g->raft);
	return !raft_recovering(g->raft) && raft_applied_of(g->raft) == c &&
	       raft_last_index(g->raft) == c;
}

/* Computes our digest now (at whatever LMDB has applied) and sends it to the group's other
 * replicas. */
static void digest_publish(struct node *n, struct node_group *g)
{
	raft_index at = 0;
	int rc = kv_digest(n->kv, g->id, g->digest_mine.d, &at);
	g->digest_ms = node_now_ms(n);
	if (rc == KV_ECORRUPT) {
		node_group_damaged(n, g, "a digest");
		return;
	}
	if (rc != KV_OK) {
		node_log(NODE_LOG_WARN, g->id, "digest failed error=\"%s\"", kv_strerror(rc));
		return;
	}
	g->digest_mine.valid = true;
	g->digest_mine.applied = at;
	Ringraft__Raft__GroupDigest gd = RINGRAFT__RAFT__GROUP_DIGEST__INIT;
	gd.group = g->id;
	gd.applied = at;
	gd.digest.data = g->digest_mine.d;
	gd.digest.len = KV_DIGEST_BYTES;
	for (size_t i = 0; i < g->n_hosts; i++)
		if (g->hosts[i] != n->cfg.id)
			(void)node_peer_send(n, g->hosts[i], NODE_FIELD_DIGEST,
					     &gd.base); /* lost if the link is down: fine */
	digest_compare(n, g);
}

void node_digest_step(struct node *n)
{
	uint32_t G = node_groups_all(n);
	uint64_t now = node_now_ms(n);
	for (uint32_t tries = 0; tries < G; tries++) {
		struct node_group *g = &n->groups[n->digest_next];
		n->digest_next = (n->digest_next + 1) % G;
		if (g->raft == NULL || g->damaged || !quiescent(g) ||
		    now < g->digest_ms + NODE_DIGEST_INTERVAL_MS)
			continue;
		digest_publish(n, g);
		return; /* one group per step: a digest reads the whole group */
	}
}

void node_digest_received(struct node *n, uint64_t from, const Ringraft__Raft__GroupDigest *gd)
{
	struct node_group *g = node_group(n, gd->group);
	int mi = node_config_member_index(&n->cfg, from);
	if (g == NULL || g->raft == NULL || mi < 0 || gd->digest.len != KV_DIGEST_BYTES)
		return;
	struct node_digest *p = &g->digest_peer[mi];
	p->valid = true;
	p->applied = gd->applied;
	memcpy(p->d, gd->digest.data, KV_DIGEST_BYTES);
	/* Ours at the same index as theirs: compare now (computing ours once for that index). */
	if (g->damaged || raft_applied_of(g->raft) != gd->applied || !quiescent(g))
		return;
	if (g->digest_mine.valid && g->digest_mine.applied == gd->applied)
		digest_compare(n, g);
	else
		digest_publish(n, g);
}
