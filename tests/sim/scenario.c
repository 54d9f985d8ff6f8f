/* scenario.c — interpreter for the scenario scripts in tests/sim/scenarios/.
 *
 * Small readable scripts in the spirit of etcd's interaction tests: nothing ticks, moves or
 * completes unless a line says so; `expect` lines state what must hold, the invariants run
 * after every step, and any failure names file:line. Language: tests/sim/README.md.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "tests/sim/sim.h"

#define MAX_TOK 32

struct script {
	const char *file;
	int line;
	struct cluster c;
	bool started;
	struct raft_config cfg;
	int compact_threshold;
	bool trace;
	char err[512];
};

static int fail(struct script *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct script *s, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(s->err, sizeof(s->err), "%s:%d: %s", s->file, s->line, msg);
	return -1;
}

static bool parse_u64(const char *t, uint64_t *v)
{
	char *end;
	if (!t || !*t)
		return false;
	*v = strtoull(t, &end, 10);
	return *end == '\0';
}

static int node_arg(struct script *s, const char *t, raft_id *id, bool must_be_alive)
{
	uint64_t v;
	if (!parse_u64(t, &v) || v < 1 || v > SIM_NODES_MAX)
		return fail(s, "bad node id '%s'", t ? t : "");
	if (!s->c.nodes[v].exists)
		return fail(s, "node %" PRIu64 " does not exist", v);
	if (must_be_alive && !s->c.nodes[v].alive)
		return fail(s, "node %" PRIu64 " is crashed", v);
	*id = v;
	return 0;
}

static const char *rc_name(int rc)
{
	return rc == 0 ? "ok" : raft_strerror(rc);
}

/* Completes every pending disk batch of one node (or of all, id 0). */
static void persist_all(struct cluster *c, raft_id id)
{
	for (int i = 1; i <= c->max_id; i++)
		if ((id == 0 || (raft_id)i == id) && c->nodes[i].alive)
			while (c->nodes[i].disk.head && !c->failed)
				cluster_persist_one(c, (raft_id)i);
}

/* Delivers the messages queued now (those to `to` only, if not 0); what they cause waits. */
static void deliver(struct cluster *c, raft_id to)
{
	size_t n = c->net.n;
	struct sim_msg **keep = calloc(n ? n : 1, sizeof(*keep));
	struct sim_msg **go = calloc(n ? n : 1, sizeof(*go));
	size_t nk = 0, ng = 0;
	for (size_t i = 0; i < n; i++) {
		struct sim_msg *m = net_pop(&c->net);
		if (to == 0 || m->m.to == to)
			go[ng++] = m;
		else
			keep[nk++] = m;
	}
	for (size_t i = 0; i < nk; i++) { /* back in their order */
		net_send(&c->net, &c->rng, c->now, &keep[i]->m);
		msg_free(keep[i]);
	}
	size_t i = 0;
	for (; i < ng && !c->failed; i++)
		cluster_deliver_msg(c, go[i]);
	for (; i < ng; i++)
		msg_free(go[i]);
	free(keep);
	free(go);
}

static void stabilize(struct cluster *c)
{
	for (int round = 0; round < 1000 && !c->failed; round++) {
		bool busy = c->net.n > 0;
		for (int i = 1; i <= c->max_id; i++)
			if (c->nodes[i].alive && c->nodes[i].disk.head)
				busy = true;
		if (!busy)
			return;
		persist_all(c, 0);
		deliver(c, 0);
	}
}

static bool compare(uint64_t a, const char *op, uint64_t b, bool *ok)
{
	if (!strcmp(op, "=="))
		*ok = a == b;
	else if (!strcmp(op, ">="))
		*ok = a >= b;
	else if (!strcmp(op, "<="))
		*ok = a <= b;
	else if (!strcmp(op, ">"))
		*ok = a > b;
	else if (!strcmp(op, "<"))
		*ok = a < b;
	else if (!strcmp(op, "!="))
		*ok = a != b;
	else
		return false;
	return true;
}

static enum raft_role role_of(const char *t, bool *ok)
{
	*ok = true;
	for (int r = RAFT_FOLLOWER; r <= RAFT_LEADER; r++)
		if (!strcasecmp(t, raft_role_name((enum raft_role)r)))
			return (enum raft_role)r;
	*ok = false;
	return RAFT_FOLLOWER;
}

static int cmd_expect(struct script *s, char **tok, int nt)
{
	struct cluster *c = &s->c;
	raft_id id;
	if (nt < 2)
		return fail(s, "expect what?");
	const char *what = tok[1];
	if (!strcmp(what, "leader")) {
		if (nt != 3 || node_arg(s, tok[2], &id, true))
			return fail(s, "usage: expect leader N");
		if (raft_role_of(c->nodes[id].r) != RAFT_LEADER)
			return fail(s,
				    "expected node %" PRIu64 " to lead, it is %s (leader: %" PRIu64
				    ")",
				    id, raft_role_name(raft_role_of(c->nodes[id].r)),
				    cluster_leader(c));
		for (int i = 1; i <= c->max_id; i++)
			if (c->nodes[i].alive && (raft_id)i != id &&
			    raft_role_of(c->nodes[i].r) == RAFT_LEADER &&
			    raft_term_of(c->nodes[i].r) >= raft_term_of(c->nodes[id].r))
				return fail(s, "node %d also leads, in term %" PRIu64, i,
					    raft_term_of(c->nodes[i].r));
		return 0;
	}
	if (!strcmp(what, "no-leader")) {
		if (cluster_leader(c))
			return fail(s, "expected no leader, node %" PRIu64 " leads",
				    cluster_leader(c));
		return 0;
	}
	if (!strcmp(what, "role")) {
		bool ok;
		if (nt != 4 || node_arg(s, tok[2], &id, true))
			return fail(s,
				    "usage: expect role N follower|precandidate|candidate|leader");
		enum raft_role want = role_of(tok[3], &ok);
		if (!ok)
			return fail(s, "unknown role '%s'", tok[3]);
		if (raft_role_of(c->nodes[id].r) != want)
			return fail(s, "expected node %" PRIu64 " to be %s, it is %s", id, tok[3],
				    raft_role_name(raft_role_of(c->nodes[id].r)));
		return 0;
	}
	if (!strcmp(what, "commit") || !strcmp(what, "applied") || !strcmp(what, "term") ||
	    !strcmp(what, "last") || !strcmp(what, "first") || !strcmp(what, "installs") ||
	    !strcmp(what, "compactions")) {
		uint64_t want, have = 0;
		bool ok;
		if (nt != 5 || node_arg(s, tok[2], &id, true) || !parse_u64(tok[4], &want))
			return fail(s, "usage: expect %s N OP VALUE", what);
		struct node *n = &c->nodes[id];
		if (!strcmp(what, "commit"))
			have = raft_commit_of(n->r);
		else if (!strcmp(what, "applied"))
			have = n->sm.applied;
		else if (!strcmp(what, "term"))
			have = raft_term_of(n->r);
		else if (!strcmp(what, "last"))
			have = raft_last_index(n->r);
		else if (!strcmp(what, "first"))
			have = raft_first_index(n->r);
		else if (!strcmp(what, "installs"))
			have = n->installs;
		else
			have = n->compactions;
		if (!compare(have, tok[3], want, &ok))
			return fail(s, "bad operator '%s'", tok[3]);
		if (!ok)
			return fail(
				s, "expected %s of node %" PRIu64 " %s %" PRIu64 ", it is %" PRIu64,
				what, id, tok[3], want, have);
		return 0;
	}
	if (!strcmp(what, "term-at")) { /* expect term-at N INDEX OP TERM (0 = no such entry) */
		uint64_t index, want;
		bool ok;
		if (nt != 6 || node_arg(s, tok[2], &id, true) || !parse_u64(tok[3], &index) ||
		    !parse_u64(tok[5], &want))
			return fail(s, "usage: expect term-at N INDEX OP TERM");
		const struct raft_entry *e = raft_entry_at(c->nodes[id].r, index);
		uint64_t have = e ? e->term : 0;
		if (!compare(have, tok[4], want, &ok))
			return fail(s, "bad operator '%s'", tok[4]);
		if (!ok)
			return fail(s,
				    "expected node %" PRIu64 "'s entry %" PRIu64
				    " of term %s %" PRIu64 ", it is %" PRIu64,
				    id, index, tok[4], want, have);
		return 0;
	}
	if (!strcmp(what, "value")) { /* expect value N KEY == V | expect value N KEY none */
		if (nt < 4 || node_arg(s, tok[2], &id, true))
			return fail(s, "usage: expect value N KEY == VALUE | none");
		const struct sm_kv *kv = sm_get(&c->nodes[id].sm, tok[3]);
		if (nt == 5 && !strcmp(tok[4], "none")) {
			if (kv)
				return fail(s, "expected no %s on node %" PRIu64 ", it is %s",
					    tok[3], id, kv->val);
			return 0;
		}
		if (nt != 6 || strcmp(tok[4], "=="))
			return fail(s, "usage: expect value N KEY == VALUE | none");
		if (!kv || strcmp(kv->val, tok[5]))
			return fail(s, "expected %s == %s on node %" PRIu64 ", it is %s", tok[3],
				    tok[5], id, kv ? kv->val : "absent");
		return 0;
	}
	if (!strcmp(what, "log")) { /* expect log N lost-tail */
		if (nt != 4 || node_arg(s, tok[2], &id, true) || strcmp(tok[3], "lost-tail"))
			return fail(s, "usage: expect log N lost-tail");
		struct node *n = &c->nodes[id];
		if (n->incarnation < 2 || n->last_after_restart >= n->last_before_crash)
			return fail(s,
				    "expected node %" PRIu64
				    " to have lost its unsynced tail: last "
				    "index %" PRIu64 " before the crash, %" PRIu64 " after restart",
				    id, n->last_before_crash, n->last_after_restart);
		return 0;
	}
	if (!strcmp(what, "voter") || !strcmp(what, "learner") || !strcmp(what, "not-member")) {
		raft_id who;
		if (nt != 4 || node_arg(s, tok[2], &id, true))
			return fail(s, "usage: expect %s N ID (as node N sees it)", what);
		uint64_t v;
		if (!parse_u64(tok[3], &v))
			return fail(s, "bad id");
		who = v;
		const struct raft_conf *conf = raft_conf_of(c->nodes[id].r);
		bool voter = raft_conf_is_voter(conf, who),
		     learner = raft_conf_is_learner(conf, who);
		bool ok = !strcmp(what, "voter")     ? voter
			  : !strcmp(what, "learner") ? learner
						     : !voter && !learner;
		if (!ok)
			return fail(s,
				    "expected %" PRIu64 " to be %s in node %" PRIu64
				    "'s configuration (voter=%d learner=%d)",
				    who, what, id, voter, learner);
		return 0;
	}
	return fail(s, "unknown expectation '%s'", what);
}

static int via_arg(struct script *s, char **tok, int nt, int at, raft_id *via)
{
	if (nt > at + 1 && !strcmp(tok[at], "via"))
		return node_arg(s, tok[at + 1], via, true);
	*via = cluster_leader(&s->c);
	if (!*via)
		return fail(s, "no leader to send this to (add 'via N')");
	return 0;
}

static int cmd(struct script *s, char **tok, int nt)
{
	struct cluster *c = &s->c;
	raft_id id, id2;
	uint64_t v;
	bool try_ = false;
	if (!strcmp(tok[0], "try")) {
		try_ = true;
		tok++;
		nt--;
		if (nt == 0)
			return fail(s, "try what?");
	}
	const char *op = tok[0];
	if (!strcmp(op, "config")) {
		if (s->started)
			return fail(s, "config must come before nodes");
		for (int i = 1; i < nt; i++) {
			char *eq = strchr(tok[i], '=');
			if (!eq || !parse_u64(eq + 1, &v))
				return fail(s, "config wants key=value");
			*eq = '\0';
			if (!strcmp(tok[i], "election"))
				s->cfg.election_ticks = (uint32_t)v;
			else if (!strcmp(tok[i], "heartbeat"))
				s->cfg.heartbeat_ticks = (uint32_t)v;
			else if (!strcmp(tok[i], "prevote"))
				s->cfg.pre_vote = v != 0;
			else if (!strcmp(tok[i], "checkquorum"))
				s->cfg.check_quorum = v != 0;
			else if (!strcmp(tok[i], "lease"))
				s->cfg.lease_reads = v != 0;
			else if (!strcmp(tok[i], "chunk"))
				s->cfg.snapshot_chunk_bytes = (uint32_t)v;
			else if (!strcmp(tok[i], "msg-bytes"))
				s->cfg.max_msg_bytes = v;
			else if (!strcmp(tok[i], "inflight"))
				s->cfg.max_inflight_msgs = (uint32_t)v;
			else if (!strcmp(tok[i], "compact"))
				s->compact_threshold = (int)v;
			else
				return fail(s, "unknown config key '%s'", tok[i]);
		}
		return 0;
	}
	if (!strcmp(op, "nodes")) {
		if (s->started || nt != 2 || !parse_u64(tok[1], &v) || v < 1 || v > 9)
			return fail(s, "usage (once): nodes N   (1..9)");
		cluster_init(c, 1, (int)v, &s->cfg);
		c->manual = true;
		c->trace = s->trace;
		c->net.delay_min = c->net.delay_max = 0;
		c->disk_lat_min = c->disk_lat_max = 0;
		c->compact_threshold = s->compact_threshold;
		s->started = true;
		cluster_start(c);
		return 0;
	}
	if (!s->started)
		return fail(s, "'nodes N' must come first");
	trace_note(c, "script %s:%d: %s", s->file, s->line, op);
	if (!strcmp(op, "tick")) { /* tick N|all [K] */
		uint64_t k = 1;
		if (nt < 2 || nt > 3 || (nt == 3 && !parse_u64(tok[2], &k)))
			return fail(s, "usage: tick N|all [K]");
		bool all = !strcmp(tok[1], "all");
		if (!all && node_arg(s, tok[1], &id, true))
			return -1;
		for (uint64_t t = 0; t < k && !c->failed; t++)
			for (int i = 1; i <= c->max_id; i++)
				if ((all || (raft_id)i == id) && c->nodes[i].alive)
					cluster_tick(c, (raft_id)i);
		return 0;
	}
	if (!strcmp(op, "campaign")) { /* ticks N until its election timeout fires */
		if (nt != 2 || node_arg(s, tok[1], &id, true))
			return fail(s, "usage: campaign N");
		for (uint32_t t = 0; t < 4 * s->cfg.election_ticks && !c->failed; t++) {
			if (raft_role_of(c->nodes[id].r) != RAFT_FOLLOWER)
				return 0;
			cluster_tick(c, id);
		}
		if (raft_role_of(c->nodes[id].r) != RAFT_FOLLOWER)
			return 0;
		return fail(s, "node %" PRIu64 " did not campaign", id);
	}
	if (!strcmp(op, "propose")) { /* propose N put k=v */
		if (nt < 3 || node_arg(s, tok[1], &id, true))
			return fail(s, "usage: propose N put KEY=VALUE");
		char buf[96] = "";
		for (int i = 2; i < nt; i++) {
			strncat(buf, tok[i], sizeof(buf) - strlen(buf) - 2);
			if (i + 1 < nt)
				strcat(buf, " ");
		}
		int rc = cluster_propose(c, id, buf, false, NULL);
		if (rc && !try_)
			return fail(s, "propose on node %" PRIu64 ": %s", id, rc_name(rc));
		return 0;
	}
	if (!strcmp(op, "read")) {
		if (nt != 3 || node_arg(s, tok[1], &id, true))
			return fail(s, "usage: read N KEY");
		int rc = cluster_read(c, id, tok[2]);
		if (rc && !try_)
			return fail(s, "read on node %" PRIu64 ": %s", id, rc_name(rc));
		return 0;
	}
	if (!strcmp(op, "deliver")) {
		id = 0;
		if (nt == 2 && node_arg(s, tok[1], &id, false))
			return -1;
		deliver(c, id);
		return 0;
	}
	if (!strcmp(op, "persist")) {
		id = 0;
		if (nt == 2 && node_arg(s, tok[1], &id, true))
			return -1;
		persist_all(c, id);
		return 0;
	}
	if (!strcmp(op, "stabilize")) {
		stabilize(c);
		return 0;
	}
	if (!strcmp(op, "drop")) { /* drop every queued message */
		struct sim_msg *m;
		while ((m = net_pop(&c->net)))
			msg_free(m);
		return 0;
	}
	if (!strcmp(op, "partition")) { /* partition 1 2 | 3 4 5 */
		int a[SIM_NODES_MAX], b[SIM_NODES_MAX], na = 0, nb = 0;
		bool right = false;
		for (int i = 1; i < nt; i++) {
			if (!strcmp(tok[i], "|")) {
				right = true;
				continue;
			}
			if (node_arg(s, tok[i], &id, false))
				return -1;
			if (right)
				b[nb++] = (int)id;
			else
				a[na++] = (int)id;
		}
		if (!na || !nb)
			return fail(s, "usage: partition A... | B...");
		net_partition(&c->net, a, na, b, nb);
		return 0;
	}
	if (!strcmp(op, "cut")) { /* cut A -> B: A's messages to B are lost */
		if (nt != 4 || strcmp(tok[2], "->") || node_arg(s, tok[1], &id, false) ||
		    node_arg(s, tok[3], &id2, false))
			return fail(s, "usage: cut A -> B");
		c->net.cut[id][id2] = true;
		return 0;
	}
	if (!strcmp(op, "heal")) {
		net_heal(&c->net);
		return 0;
	}
	if (!strcmp(op, "crash") || !strcmp(op, "restart")) {
		if (nt != 2 || node_arg(s, tok[1], &id, false))
			return fail(s, "usage: %s N", op);
		if (!strcmp(op, "crash"))
			cluster_crash(c, id);
		else
			cluster_restart(c, id);
		return 0;
	}
	if (!strcmp(op, "compact")) { /* compact N INDEX [TRAILING] */
		uint64_t idx, trailing = 0;
		if (nt < 3 || nt > 4 || node_arg(s, tok[1], &id, true) ||
		    !parse_u64(tok[2], &idx) || (nt == 4 && !parse_u64(tok[3], &trailing)))
			return fail(s, "usage: compact N INDEX [TRAILING]");
		int rc = cluster_compact(c, id, idx, trailing);
		if (rc == -2)
			return fail(s,
				    "node %" PRIu64
				    " can only compact at its applied index %" PRIu64,
				    id, c->nodes[id].sm.applied);
		if (rc && !try_)
			return fail(s, "compact on node %" PRIu64 " failed (%d)", id, rc);
		return 0;
	}
	if (!strcmp(op, "transfer")) { /* transfer N TARGET */
		if (nt != 3 || node_arg(s, tok[1], &id, true) || !parse_u64(tok[2], &v))
			return fail(s, "usage: transfer N TARGET");
		int rc = cluster_transfer(c, id, v);
		if (rc && !try_)
			return fail(s, "transfer on node %" PRIu64 ": %s", id, rc_name(rc));
		return 0;
	}
	if (!strcmp(op, "add-learner") || !strcmp(op, "add-voter") || !strcmp(op, "promote") ||
	    !strcmp(op, "remove")) {
		if (nt < 2 || !parse_u64(tok[1], &v) || v < 1 || v > SIM_NODES_MAX ||
		    via_arg(s, tok, nt, 2, &id))
			return fail(s, "usage: %s ID [via N]", op);
		enum raft_conf_change_type t = !strcmp(op, "add-learner") ? RAFT_CC_ADD_LEARNER
					       : !strcmp(op, "add-voter") ? RAFT_CC_ADD_VOTER
					       : !strcmp(op, "promote")   ? RAFT_CC_PROMOTE
									  : RAFT_CC_REMOVE;
		int rc = cluster_conf_change(c, id, t, v);
		if (rc && !try_)
			return fail(s, "%s %" PRIu64 " via node %" PRIu64 ": %s", op, v, id,
				    rc_name(rc));
		return 0;
	}
	if (!strcmp(op, "print")) {
		cluster_dump(c, stdout);
		return 0;
	}
	if (!strcmp(op, "expect"))
		return cmd_expect(s, tok, nt);
	return fail(s, "unknown command '%s'", op);
}

int scenario_run_file(const char *path, bool trace)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "scenario: cannot open %s\n", path);
		return -1;
	}
	static struct script sc;
	struct script *s = &sc;
	memset(s, 0, sizeof(*s));
	s->file = path;
	s->trace = trace;
	raft_config_default(&s->cfg, 0, 0);
	s->cfg.election_ticks = 10;
	s->cfg.heartbeat_ticks = 1;
	s->cfg.pre_vote = true;
	s->cfg.check_quorum = true;
	char line[512];
	int rc = 0;
	while (rc == 0 && fgets(line, sizeof(line), f)) {
		s->line++;
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		char *tok[MAX_TOK];
		int nt = 0;
		char *save = NULL;
		for (char *t = strtok_r(line, " \t\r\n", &save); t && nt < MAX_TOK;
		     t = strtok_r(NULL, " \t\r\n", &save))
			tok[nt++] = t;
		if (nt == 0)
			continue;
		if (trace)
			printf("%s:%d:", path, s->line);
		if (trace) {
			for (int i = 0; i < nt; i++)
				printf(" %s", tok[i]);
			printf("\n");
		}
		rc = cmd(s, tok, nt);
		if (rc == 0 && s->c.failed)
			rc = fail(s, "invariant violated: %s", s->c.failure);
	}
	fclose(f);
	if (rc)
		fprintf(stderr, "FAIL %s\n", s->err);
	if (s->started)
		cluster_destroy(&s->c);
	return rc;
}
