/* invariants.c — the safety properties checked after every simulated step.
 *
 * Raft's guarantees (paper fig. 3, thesis 3.6) plus what a driver sees: monotonic commit and
 * applied (also across restarts), exactly-once apply, durable acks, linearizable ReadIndex
 * reads (thesis 6.4). The first violation is recorded with step and time; the run stops.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "tests/sim/sim.h"

#define NOTERM UINT64_MAX

void inv_init(struct invariants *v)
{
	memset(v, 0, sizeof(*v));
}

void inv_destroy(struct invariants *v)
{
	free(v->committed);
	free(v->leader_of_term);
	free(v->lm);
	free(v->uid_index);
	memset(v, 0, sizeof(*v));
}

void sim_fail(struct cluster *c, const char *fmt, ...)
{
	if (c->failed)
		return;
	c->failed = true;
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(c->failure, sizeof(c->failure), "%s (step %" PRIu64 ", time %" PRIu64 ")", msg,
		 c->steps, c->now);
	trace_note(c, "FAILED: %s", c->failure);
}

static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
	if (need < *cap)
		return p;
	size_t nc = *cap ? *cap : 256;
	while (nc <= need)
		nc *= 2;
	p = realloc(p, nc * elem);
	if (!p)
		abort();
	memset((char *)p + *cap * elem, 0, (nc - *cap) * elem);
	*cap = nc;
	return p;
}

static uint64_t entry_hash(const struct raft_entry *e)
{
	uint64_t h = hash64(&e->type, 1, 0);
	return hash64(e->data.base, e->data.len, h);
}

/* Records that (index, term, hash) is committed; any disagreement is a safety violation. */
static void ledger_commit(struct cluster *c, struct node *n, const struct raft_entry *e,
			  const char *how)
{
	struct invariants *v = &c->inv;
	v->committed = grow(v->committed, &v->cap_committed, e->index, sizeof(*v->committed));
	struct ledger_entry *l = &v->committed[e->index];
	uint64_t h = entry_hash(e);
	raft_term seen_in = raft_term_of(n->r);
	if (l->term == 0 || seen_in < l->commit_term)
		l->commit_term = seen_in;
	if (l->term == 0) {
		l->term = e->term;
		l->hash = h;
		if (e->index > v->max_committed)
			v->max_committed = e->index;
		return;
	}
	if (l->term != e->term || l->hash != h)
		sim_fail(c,
			 "state machine safety: node %" PRIu64 " %s index %" PRIu64 " term %" PRIu64
			 " but term %" PRIu64 " (or other data) was committed there",
			 n->id, how, e->index, e->term, l->term);
}

/* Log matching: one (index, term) names one entry with one predecessor term, everywhere. */
static struct lm_slot *lm_find(struct invariants *v, raft_index index, raft_term term)
{
	if (v->n_lm * 2 >= v->cap_lm) {
		size_t oc = v->cap_lm;
		struct lm_slot *old = v->lm;
		v->cap_lm = oc ? 2 * oc : 1024;
		v->lm = calloc(v->cap_lm, sizeof(*v->lm));
		if (!v->lm)
			abort();
		for (size_t i = 0; i < oc; i++)
			if (old[i].index) {
				size_t k = (size_t)(hash64(&old[i].index, 8, old[i].term + 1) &
						    (v->cap_lm - 1));
				while (v->lm[k].index)
					k = (k + 1) & (v->cap_lm - 1);
				v->lm[k] = old[i];
			}
		free(old);
	}
	size_t k = (size_t)(hash64(&index, 8, term + 1) & (v->cap_lm - 1));
	while (v->lm[k].index && (v->lm[k].index != index || v->lm[k].term != term))
		k = (k + 1) & (v->cap_lm - 1);
	return &v->lm[k];
}

/* Checks entries against every (index, term) seen before. A leader's own new entries are
 * registered once durable, not at append: a single-node leader may lose an unpersisted term
 * in a crash and legitimately recreate that (index, term) with other data, as nobody saw it. */
static void log_matching(struct cluster *c, struct node *n, const struct raft_entry *e, size_t cnt,
			 raft_term prev_of_first, bool own_only_if_durable)
{
	struct invariants *v = &c->inv;
	for (size_t i = 0; i < cnt && !c->failed; i++) {
		raft_term prev = NOTERM;
		if (i > 0) {
			prev = e[i - 1].term;
			if (e[i].index != e[i - 1].index + 1)
				sim_fail(c,
					 "node %" PRIu64 " appends index %" PRIu64
					 " after %" PRIu64,
					 n->id, e[i].index, e[i - 1].index);
		} else if (e[i].index == 1) {
			prev = 0;
		} else {
			prev = prev_of_first;
		}
		if (own_only_if_durable && e[i].term < v->cap_terms &&
		    v->leader_of_term[e[i].term] == n->id)
			continue;
		if (prev != NOTERM && prev > e[i].term)
			sim_fail(c,
				 "log matching: node %" PRIu64 " entry %" PRIu64 " term %" PRIu64
				 " follows an entry of term %" PRIu64,
				 n->id, e[i].index, e[i].term, prev);
		struct lm_slot *s = lm_find(v, e[i].index, e[i].term);
		uint64_t h = entry_hash(&e[i]);
		if (!s->index) {
			s->index = e[i].index;
			s->term = e[i].term;
			s->hash = h;
			s->prev_term = prev;
			v->n_lm++;
			continue;
		}
		if (s->hash != h)
			sim_fail(c,
				 "log matching: node %" PRIu64 " has other data at index %" PRIu64
				 " term %" PRIu64 " than another log had",
				 n->id, e[i].index, e[i].term);
		if (prev != NOTERM && s->prev_term != NOTERM && s->prev_term != prev)
			sim_fail(c,
				 "log matching: node %" PRIu64 " entry (%" PRIu64 ", term %" PRIu64
				 ") follows term %" PRIu64 ", elsewhere term %" PRIu64,
				 n->id, e[i].index, e[i].term, prev, s->prev_term);
		if (s->prev_term == NOTERM)
			s->prev_term = prev;
	}
}

void inv_on_append(struct cluster *c, struct node *n, const struct raft_entry *e, size_t cnt)
{
	raft_term prev = NOTERM;
	if (cnt && e[0].index > 1) {
		const struct raft_entry *p = raft_entry_at(n->r, e[0].index - 1);
		if (p)
			prev = p->term;
	}
	log_matching(c, n, e, cnt, prev, true);
}

void inv_on_durable(struct cluster *c, struct node *n, size_t cnt)
{
	const struct disk *d = &n->disk;
	if (cnt == 0 || cnt > d->n_log)
		return;
	size_t k = d->n_log - cnt;
	log_matching(c, n, d->log + k, cnt, k ? d->log[k - 1].term : NOTERM, false);
}

void inv_on_apply(struct cluster *c, struct node *n, const struct raft_entry *e)
{
	struct invariants *v = &c->inv;
	if (e->index != n->sm.applied + 1) {
		sim_fail(c,
			 "exactly-once apply: node %" PRIu64 " applies index %" PRIu64
			 " after applying %" PRIu64,
			 n->id, e->index, n->sm.applied);
		return;
	}
	if (e->index > n->seen_commit && e->index > raft_commit_of(n->r))
		sim_fail(c, "node %" PRIu64 " applies index %" PRIu64 " beyond its commit %" PRIu64,
			 n->id, e->index, raft_commit_of(n->r));
	ledger_commit(c, n, e, "applies");
	uint64_t uid = 0;
	if (e->type == RAFT_ENTRY_NORMAL && e->data.len > 1 && ((char *)e->data.base)[0] == '#') {
		char tmp[24];
		size_t l = e->data.len < sizeof(tmp) - 1 ? e->data.len : sizeof(tmp) - 1;
		memcpy(tmp, e->data.base, l);
		tmp[l] = '\0';
		uid = strtoull(tmp + 1, NULL, 10);
	}
	if (uid) {
		v->uid_index = grow(v->uid_index, &v->cap_uid, uid, sizeof(*v->uid_index));
		if (v->uid_index[uid] == 0)
			v->uid_index[uid] = e->index;
		else if (v->uid_index[uid] != e->index)
			sim_fail(c,
				 "exactly-once apply: command #%" PRIu64
				 " applied at index %" PRIu64 " and at %" PRIu64,
				 uid, v->uid_index[uid], e->index);
	}
}

void inv_on_read(struct cluster *c, struct node *n, const struct read_req *rr)
{
	if (n->sm.applied < rr->floor)
		sim_fail(c,
			 "linearizable read: node %" PRIu64 " answered read %" PRIu64
			 " (read index %" PRIu64 ") at applied %" PRIu64
			 " but a write at index %" PRIu64 " was acknowledged before it began",
			 n->id, rr->ctx, rr->index, n->sm.applied, rr->floor);
}

void inv_on_restart(struct cluster *c, struct node *n, const struct raft_restore *rs)
{
	/* The durable commit index, as far as the durable log reaches: a torn WAL batch may keep
	 * a hard state whose commit covers entries that did not reach the disk; those come back
	 * from the leader (and the applied index keeps them from being applied twice). */
	raft_index commit = raft_commit_of(n->r);
	raft_index last = rs->n_entries ? rs->entries[rs->n_entries - 1].index : rs->snap_index;
	raft_index floor = rs->hard_state.commit < last ? rs->hard_state.commit : last;
	if (floor < rs->snap_index)
		floor = rs->snap_index;
	if (commit < floor)
		sim_fail(c,
			 "commit went back across restart: node %" PRIu64 " durable %" PRIu64
			 " (log to %" PRIu64 "), restarted with %" PRIu64,
			 n->id, rs->hard_state.commit, last, commit);
	if (raft_applied_of(n->r) < rs->applied)
		sim_fail(c,
			 "applied went back across restart: node %" PRIu64
			 " state machine at %" PRIu64 ", core restarted at %" PRIu64,
			 n->id, rs->applied, raft_applied_of(n->r));
	if (raft_term_of(n->r) < rs->hard_state.term)
		sim_fail(c, "term went back across restart: node %" PRIu64, n->id);
	n->seen_commit = commit;
}

/* Leader completeness (paper 5.4.3): an entry committed in term T is in the log of every leader
 * of a term > T. (A leader of an older term may appear late, e.g. a candidate paused before it
 * counted its votes: it need not hold what later terms committed.) */
static void check_leader_complete(struct cluster *c, struct node *n, raft_term term)
{
	struct invariants *v = &c->inv;
	raft_index first = raft_first_index(n->r);
	for (raft_index i = first ? first : 1; i <= v->max_committed && !c->failed; i++) {
		const struct ledger_entry *l = &v->committed[i];
		if (l->term == 0 || l->commit_term >= term)
			continue;
		const struct raft_entry *e = raft_entry_at(n->r, i);
		if (!e) {
			sim_fail(c,
				 "leader completeness: node %" PRIu64 " leads term %" PRIu64
				 " without committed entry %" PRIu64 " (its last index %" PRIu64
				 ")",
				 n->id, term, i, raft_last_index(n->r));
			return;
		}
		if (e->term != l->term || entry_hash(e) != l->hash)
			sim_fail(c,
				 "leader completeness: node %" PRIu64 " leads term %" PRIu64
				 " with entry %" PRIu64 " of term %" PRIu64
				 ", committed was term %" PRIu64,
				 n->id, term, i, e->term, l->term);
	}
}

/* Quiescence (raft/quiesce.c): a quiesced leader and a quiesced follower of it in its term hold
 * the same log and commit index. Both went quiet on that state, and anything that changes
 * either (a proposal, a message) wakes the one it reaches first. */
static void check_quiesced(struct cluster *c)
{
	for (int i = 1; i <= c->max_id && !c->failed; i++) {
		struct node *l = &c->nodes[i];
		if (!l->alive || !raft_quiesced(l->r) || raft_role_of(l->r) != RAFT_LEADER)
			continue;
		for (int j = 1; j <= c->max_id && !c->failed; j++) {
			struct node *f = &c->nodes[j];
			/* (a replica the leader removed may sleep on an older state for ever) */
			const struct raft_conf *lc = raft_conf_of(l->r);
			if (j == i || !f->alive || !raft_quiesced(f->r) ||
			    raft_leader_of(f->r) != l->id ||
			    raft_term_of(f->r) != raft_term_of(l->r) ||
			    !(raft_conf_is_voter(lc, f->id) || raft_conf_is_learner(lc, f->id)))
				continue;
			if (raft_last_index(f->r) != raft_last_index(l->r) ||
			    raft_commit_of(f->r) != raft_commit_of(l->r))
				sim_fail(c,
					 "quiescence: leader %d and follower %d of term %" PRIu64
					 " are both quiesced with last %" PRIu64 "/%" PRIu64
					 " commit %" PRIu64 "/%" PRIu64,
					 i, j, raft_term_of(l->r), raft_last_index(l->r),
					 raft_last_index(f->r), raft_commit_of(l->r),
					 raft_commit_of(f->r));
		}
	}
}

void inv_check(struct cluster *c)
{
	struct invariants *v = &c->inv;
	for (int i = 1; i <= c->max_id && !c->failed; i++) {
		struct node *n = &c->nodes[i];
		if (!n->alive)
			continue;
		enum raft_role role = raft_role_of(n->r);
		raft_term term = raft_term_of(n->r);
		if (role != n->last_role || term != n->last_term) {
			if (term < n->last_term)
				sim_fail(c, "node %d: term went back from %" PRIu64 " to %" PRIu64,
					 i, n->last_term, term);
			trace_ev(c, TR_ROLE, n->id, role, term, raft_leader_of(n->r));
			n->last_role = role;
			n->last_term = term;
		}
		if (role == RAFT_LEADER) {
			v->leader_of_term = grow(v->leader_of_term, &v->cap_terms, term,
						 sizeof(*v->leader_of_term));
			if (v->leader_of_term[term] == 0)
				v->leader_of_term[term] = n->id;
			else if (v->leader_of_term[term] != n->id)
				sim_fail(c,
					 "election safety: nodes %" PRIu64 " and %" PRIu64
					 " both lead term %" PRIu64,
					 v->leader_of_term[term], n->id, term);
			if (n->leader_checked_term != term) {
				n->leader_checked_term = term;
				check_leader_complete(c, n, term);
			}
		}
		/* Durability of acknowledgements: in the term it acknowledged index i, a follower
		 * keeps entry i (only a new leader may truncate it; a crash cannot, as acks leave
		 * only once durable). */
		if (term == n->acked_term && raft_last_index(n->r) < n->acked_index)
			sim_fail(c,
				 "durability: node %d acknowledged index %" PRIu64
				 " in term %" PRIu64 " but its log now ends at %" PRIu64,
				 i, n->acked_index, term, raft_last_index(n->r));
		raft_index commit = raft_commit_of(n->r);
		if (commit < n->seen_commit) {
			sim_fail(c, "node %d: commit went back from %" PRIu64 " to %" PRIu64, i,
				 n->seen_commit, commit);
			return;
		}
		/* Raft section 5.4.2 / thesis 3.6.2: a leader advances its commit index only to an
		 * entry of its own term (earlier ones commit indirectly, below it). */
		if (role == RAFT_LEADER && commit > n->seen_commit) {
			const struct raft_entry *e = raft_entry_at(n->r, commit);
			if (e && e->term != term)
				sim_fail(c,
					 "commit rule: leader %d of term %" PRIu64
					 " advanced commit to %" PRIu64
					 ", an entry of term %" PRIu64,
					 i, term, commit, e->term);
		}
		for (raft_index k = n->seen_commit + 1; k <= commit && !c->failed; k++) {
			const struct raft_entry *e = raft_entry_at(n->r, k);
			if (e)
				ledger_commit(c, n, e, "commits");
		}
		if (commit > n->seen_commit)
			trace_ev(c, TR_COMMIT, n->id, commit, term, 0);
		n->seen_commit = commit;
		if (raft_quiesced(n->r) && !n->was_quiesced)
			n->quiesces++;
		n->was_quiesced = raft_quiesced(n->r);
	}
	check_quiesced(c);
}
