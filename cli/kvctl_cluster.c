/* kvctl_cluster.c — kvctl's cluster commands: status (every node: addresses, health, groups it
 * leads, per-group term/commit/applied, WAL and LMDB size; unreachable nodes shown as such),
 * groups (who leads which group, its replicas) and transfer-leader. The node list is the
 * --endpoints plus every node the ring names, so a node missing from --endpoints still shows.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/conn.h"
#include "cli/kvctl.h"
#include "kv/reshard.h"
#include "kv/ring.h"

struct node_view {
	char endpoint[CLI_ADDR_MAX];
	int rc; /* CLI_OK or why it is unreachable */
	struct cli_node_status st;
};

struct view {
	size_t n;
	struct node_view nodes[CLI_ENDPOINTS_MAX + CLI_NODES_MAX];
	uint32_t groups;
	uint64_t epoch;
	uint32_t vnodes;
	/* the group ids the views walk: the ring's (of the answer with the highest ring epoch),
	 * the meta group, the ids the latest ring change adds (kvctl_groups.c) */
	struct kvctl_group_set set;
	/* the ring of the answer with the highest ring epoch (its group ids, for shares); NULL
	 * when no node answered or out of memory */
	struct kv_ring *ring;
	/* the freshest cluster map among the answers (highest members epoch) */
	const struct cli_node_status *map;
};

static bool have(const struct view *v, const char *addr)
{
	for (size_t i = 0; i < v->n; i++)
		if (strcmp(v->nodes[i].endpoint, addr) == 0)
			return true;
	return false;
}

static void add(struct view *v, const char *addr)
{
	if (addr[0] == '\0' || have(v, addr) || v->n == sizeof v->nodes / sizeof v->nodes[0])
		return;
	snprintf(v->nodes[v->n].endpoint, CLI_ADDR_MAX, "%s", addr);
	v->nodes[v->n].rc = CLI_UNAVAILABLE;
	v->n++;
}

struct ask {
	struct node_view *nv;
	const struct kvctl_args *a;
	uint32_t timeout_ms;
	pthread_t th;
	bool started;
};

/* One STATUS call, on its own client (a client belongs to one thread). */
static void *ask_main(void *arg)
{
	struct ask *k = arg;
	struct cli_options o;
	kvctl_client_options(k->a, &o);
	o.timeout_ms = k->timeout_ms;
	struct cli_client *c;
	k->nv->rc = cli_client_new(k->nv->endpoint, &o, &c);
	if (k->nv->rc == CLI_OK) {
		k->nv->rc = cli_status(c, k->nv->endpoint, &k->nv->st);
		cli_client_free(c);
	}
	return NULL;
}

/* Asks nodes [from, v->n) in parallel, each within timeout_ms (a paused node holds its call
 * for all of it, so asking one after another could exceed --timeout). */
static void ask_all(struct view *v, size_t from, uint32_t timeout_ms, const struct kvctl_args *a)
{
	struct ask asks[sizeof v->nodes / sizeof v->nodes[0]];
	for (size_t i = from; i < v->n; i++) {
		asks[i] = (struct ask){.nv = &v->nodes[i], .a = a, .timeout_ms = timeout_ms};
		asks[i].started = pthread_create(&asks[i].th, NULL, ask_main, &asks[i]) == 0;
		if (!asks[i].started)
			ask_main(&asks[i]);
	}
	for (size_t i = from; i < v->n; i++)
		if (asks[i].started)
			pthread_join(asks[i].th, NULL);
}

static const struct cli_ring_change *latest_change(const struct view *v);

/* Asks every endpoint, then every node the answers name that was not among them; the whole
 * gathering stays within --timeout. */
static struct view *gather(struct cli_client *c, const struct kvctl_args *a)
{
	(void)c;
	struct view *v = calloc(1, sizeof *v);
	if (v == NULL)
		return NULL;
	const char *p = a->endpoints;
	while (*p) {
		char addr[CLI_ADDR_MAX];
		size_t len = strcspn(p, ",");
		snprintf(addr, sizeof addr, "%.*s", (int)(len < CLI_ADDR_MAX ? len : 0), p);
		add(v, addr);
		p += len;
		if (*p == ',')
			p++;
	}
	int64_t deadline = cli_now_ms() + a->timeout_ms;
	size_t asked = 0;
	const struct cli_node_status *ring_st = NULL; /* the answer whose ring is taken */
	for (int round = 0; round < 2 && asked < v->n; round++) {
		int64_t left = deadline - cli_now_ms();
		if (left <= 0)
			break;
		/* The first round leaves time for a second when some node is new to us. */
		uint32_t t = (uint32_t)(round == 0 && left > 1000 ? left * 2 / 3 : left);
		size_t from = asked;
		ask_all(v, from, t, a);
		asked = v->n;
		for (size_t i = from; i < asked; i++) {
			struct node_view *nv = &v->nodes[i];
			if (nv->rc != CLI_OK)
				continue;
			if (nv->st.ring_groups && (!v->groups || nv->st.ring_epoch > v->epoch)) {
				v->groups = nv->st.ring_groups;
				v->epoch = nv->st.ring_epoch;
				v->vnodes = nv->st.ring_vnodes;
				ring_st = &nv->st;
				kv_ring_free(v->ring);
				v->ring = nv->st.n_ring_ids
						  ? kv_ring_from_ids(
							    nv->st.ring_ids, nv->st.n_ring_ids,
							    v->vnodes ? v->vnodes : 1, v->epoch)
						  : NULL;
			}
			if (v->map == NULL || nv->st.members_epoch > v->map->members_epoch)
				v->map = &nv->st;
			for (size_t k = 0; k < nv->st.n_nodes; k++)
				if (!nv->st.nodes[k].removed)
					add(v, nv->st.nodes[k].client_addr);
		}
	}
	if (ring_st != NULL)
		kvctl_group_set_build(&v->set, ring_st->ring_ids, ring_st->n_ring_ids, v->groups,
				      latest_change(v), ring_st->meta_group);
	return v;
}

static void free_view(struct view *v)
{
	for (size_t i = 0; v && i < v->n; i++)
		cli_node_status_free(&v->nodes[i].st);
	if (v)
		kv_ring_free(v->ring);
	free(v);
}

static size_t reachable(const struct view *v)
{
	size_t n = 0;
	for (size_t i = 0; i < v->n; i++)
		n += v->nodes[i].rc == CLI_OK;
	return n;
}

/* Why a node did not answer STATUS, in words for an operator. */
static const char *why(int rc)
{
	switch (rc) {
	case CLI_TIMEOUT:
		return "no answer in time";
	case CLI_ECONN:
		return "connection failed";
	default:
		return cli_strerror(rc);
	}
}

static bool is_leader(const struct cli_node_status *st, const struct cli_group_status *g)
{
	return strcmp(g->role, "leader") == 0 || (g->leader != 0 && g->leader == st->id);
}

static void leads_list(const struct cli_node_status *st, char *buf, size_t cap)
{
	size_t n = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < st->n_groups && n + 12 < cap; i++)
		if (is_leader(st, &st->groups[i]))
			n += (size_t)snprintf(buf + n, cap - n, "%s%u", n ? "," : "",
					      st->groups[i].group);
	if (n == 0)
		snprintf(buf, cap, "-");
}

static const char *uptime(uint64_t ms, char *buf, size_t cap)
{
	uint64_t s = ms / 1000;
	if (s < 60)
		snprintf(buf, cap, "%llus", (unsigned long long)s);
	else if (s < 3600)
		snprintf(buf, cap, "%llum%02llus", (unsigned long long)(s / 60),
			 (unsigned long long)(s % 60));
	else
		snprintf(buf, cap, "%lluh%02llum", (unsigned long long)(s / 3600),
			 (unsigned long long)(s / 60 % 60));
	return buf;
}

/* A string from a node as JSON: escaped, or null if it is not text. */
static void json_text(const char *str)
{
	if (!kvctl_json_str(stdout, str, strlen(str)))
		fputs("null", stdout);
}

static void json_u64_list(const uint64_t *v, size_t n)
{
	printf("[");
	for (size_t i = 0; i < n; i++)
		printf("%s%llu", i ? ", " : "", (unsigned long long)v[i]);
	printf("]");
}

static uint64_t group_leader(const struct view *v, uint32_t g, uint64_t *term,
			     const struct cli_group_status **info);
static void ids(char *buf, size_t cap, const uint64_t *v, size_t n);

/* Group g's freshest view if the group is between two configurations (a move under way: a
 * learner, or not 3 voters), else NULL. */
static const struct cli_group_status *moving(const struct view *v, uint32_t g)
{
	uint64_t term;
	const struct cli_group_status *info;
	(void)group_leader(v, g, &term, &info);
	return info != NULL && (info->n_voters != 3 || info->n_learners != 0) ? info : NULL;
}

static void status_json(const struct view *v)
{
	printf("{\"ring\": {\"epoch\": %llu, \"groups\": %u, \"vnodes\": %u, \"group_ids\": [",
	       (unsigned long long)v->epoch, v->groups, v->vnodes);
	/* the ids the views walk, by kind (added at the end of "ring": older readers skip them) */
	for (size_t i = 0, k = 0; i < v->set.n; i++)
		if (v->set.kind[i] == KVCTL_GROUP_RING)
			printf("%s%u", k++ ? ", " : "", v->set.ids[i]);
	printf("], \"meta_group\": %u, \"adding\": [", v->set.meta);
	for (size_t i = 0, k = 0; i < v->set.n; i++)
		if (v->set.kind[i] == KVCTL_GROUP_ADDING)
			printf("%s%u", k++ ? ", " : "", v->set.ids[i]);
	printf("]},\n \"nodes\": [");
	for (size_t i = 0; i < v->n; i++) {
		const struct node_view *nv = &v->nodes[i];
		const struct cli_node_status *st = &nv->st;
		printf("%s\n  {\"endpoint\": ", i ? "," : "");
		json_text(nv->endpoint);
		printf(", \"reachable\": %s", nv->rc == CLI_OK ? "true" : "false");
		if (nv->rc != CLI_OK) {
			printf(", \"error\": ");
			json_text(why(nv->rc));
			printf("}");
			continue;
		}
		printf(", \"id\": %llu, \"client_addr\": ", (unsigned long long)st->id);
		json_text(st->client_addr);
		printf(", \"peer_addr\": ");
		json_text(st->peer_addr);
		printf(", \"health\": ");
		json_text(st->health);
		printf(", \"wal_bytes\": %llu, \"lmdb_bytes\": %llu, \"uptime_ms\": %llu, "
		       "\"incarnation\": \"%016llx\"",
		       (unsigned long long)st->wal_bytes, (unsigned long long)st->lmdb_bytes,
		       (unsigned long long)st->uptime_ms, (unsigned long long)st->incarnation);
		printf(", \"leader_of\": [");
		size_t k = 0;
		for (size_t g = 0; g < st->n_groups; g++)
			if (is_leader(st, &st->groups[g]))
				printf("%s%u", k++ ? ", " : "", st->groups[g].group);
		printf("], \"groups\": [");
		for (size_t g = 0; g < st->n_groups; g++) {
			const struct cli_group_status *gs = &st->groups[g];
			printf("%s\n    {\"group\": %u, \"role\": ", g ? "," : "", gs->group);
			json_text(gs->role);
			printf(", \"leader\": %llu, \"term\": %llu, \"commit\": %llu, "
			       "\"applied\": %llu, \"recovering\": %s, \"voters\": ",
			       (unsigned long long)gs->leader, (unsigned long long)gs->term,
			       (unsigned long long)gs->commit, (unsigned long long)gs->applied,
			       gs->recovering ? "true" : "false");
			json_u64_list(gs->voters, gs->n_voters);
			printf(", \"learners\": ");
			json_u64_list(gs->learners, gs->n_learners);
			printf("}");
		}
		printf("]}");
	}
	/* moves in progress (as status_table) */
	printf("\n ],\n \"moves\": [");
	size_t k = 0;
	for (size_t i = 0; i < v->set.n; i++) {
		uint32_t g = v->set.ids[i];
		const struct cli_group_status *info = moving(v, g);
		if (info == NULL)
			continue;
		printf("%s{\"group\": %u, \"voters\": ", k++ ? ", " : "", g);
		json_u64_list(info->voters, info->n_voters);
		printf(", \"learners\": ");
		json_u64_list(info->learners, info->n_learners);
		printf("}");
	}
	printf("],\n \"balancer\": ");
	const char *bal = "";
	for (size_t i = 0; i < v->n; i++)
		if (v->nodes[i].rc == CLI_OK && v->nodes[i].st.rebalancing[0])
			bal = v->nodes[i].st.rebalancing;
	json_text(bal);
	printf("}\n");
}

static void status_table(const struct view *v)
{
	printf("%-5s %-22s %-22s %-12s %-14s %-10s %-10s %s\n", "NODE", "CLIENT", "PEER", "HEALTH",
	       "LEADER-OF", "WAL", "LMDB", "UPTIME");
	for (size_t i = 0; i < v->n; i++) {
		const struct node_view *nv = &v->nodes[i];
		const struct cli_node_status *st = &nv->st;
		if (nv->rc != CLI_OK) {
			printf("%-5s %-22s %-22s unreachable (%s)\n", "?", nv->endpoint, "-",
			       why(nv->rc));
			continue;
		}
		char leads[256], wal[32], lmdb[32], up[32], id[24];
		leads_list(st, leads, sizeof leads);
		snprintf(id, sizeof id, "%llu", (unsigned long long)st->id);
		printf("%-5s %-22s %-22s %-12s %-14s %-10s %-10s %s\n", id, st->client_addr,
		       st->peer_addr, st->health[0] ? st->health : "?", leads,
		       kvctl_human_bytes(st->wal_bytes, wal, sizeof wal),
		       kvctl_human_bytes(st->lmdb_bytes, lmdb, sizeof lmdb),
		       uptime(st->uptime_ms, up, sizeof up));
	}
	/* moves in progress: groups whose configuration is between two (a learner, or not 3
	 * voters), and what the balancer drives */
	bool any = false;
	if (v->set.n > 0 && !kvctl_group_set_plain(&v->set, v->groups)) {
		/* only once groups were added, so that a cluster that never added one prints
		 * what it always did */
		char text[512];
		printf("\ngroups: %s\n", kvctl_group_set_text(&v->set, text, sizeof text));
		any = true;
	}
	for (size_t i = 0; i < v->set.n; i++) {
		uint32_t g = v->set.ids[i];
		const struct cli_group_status *info = moving(v, g);
		if (info == NULL)
			continue;
		char voters[128], learners[128];
		ids(voters, sizeof voters, info->voters, info->n_voters);
		ids(learners, sizeof learners, info->learners, info->n_learners);
		printf("%smove in progress: group %u%s: voters %s, learners %s\n", any ? "" : "\n",
		       g, g == v->set.meta ? " (meta)" : "", voters, learners);
		any = true;
	}
	for (size_t i = 0; i < v->n; i++)
		if (v->nodes[i].rc == CLI_OK && v->nodes[i].st.rebalancing[0]) {
			printf("%sbalancer (node %llu): %s\n", any ? "" : "\n",
			       (unsigned long long)v->nodes[i].st.id, v->nodes[i].st.rebalancing);
			any = true;
		}
	printf("\n%-5s %-6s %-10s %-8s %-10s %-10s %s\n", "NODE", "GROUP", "ROLE", "TERM", "COMMIT",
	       "APPLIED", "LEADER");
	for (size_t i = 0; i < v->n; i++) {
		const struct node_view *nv = &v->nodes[i];
		if (nv->rc != CLI_OK)
			continue;
		for (size_t g = 0; g < nv->st.n_groups; g++) {
			const struct cli_group_status *gs = &nv->st.groups[g];
			printf("%-5llu %-6u %-10s %-8llu %-10llu %-10llu %llu\n",
			       (unsigned long long)nv->st.id, gs->group,
			       gs->recovering ? "recovering"
			       : gs->role[0]  ? gs->role
					      : "?",
			       (unsigned long long)gs->term, (unsigned long long)gs->commit,
			       (unsigned long long)gs->applied, (unsigned long long)gs->leader);
		}
	}
}

int kvctl_cmd_status(struct cli_client *c, const struct kvctl_args *a)
{
	struct view *v = gather(c, a);
	if (v == NULL) {
		fprintf(stderr, "kvctl: status: out of memory\n");
		return KVCTL_EXIT_UNAVAILABLE;
	}
	if (a->output == KVCTL_OUT_JSON)
		status_json(v);
	else
		status_table(v);
	int ex = KVCTL_EXIT_OK;
	if (reachable(v) == 0) {
		fprintf(stderr,
			"kvctl: status: no node answered (endpoints %s; is the cluster "
			"running? try scripts/cluster status)\n",
			a->endpoints);
		ex = KVCTL_EXIT_UNAVAILABLE;
	}
	free_view(v);
	return ex;
}

/* The leader of group g across the views: a node that says it leads, highest term first;
 * failing that, the leader most nodes name. */
static uint64_t group_leader(const struct view *v, uint32_t g, uint64_t *term,
			     const struct cli_group_status **info)
{
	uint64_t best = 0, best_term = 0;
	*info = NULL;
	for (size_t i = 0; i < v->n; i++) {
		const struct node_view *nv = &v->nodes[i];
		for (size_t k = 0; nv->rc == CLI_OK && k < nv->st.n_groups; k++) {
			const struct cli_group_status *gs = &nv->st.groups[k];
			if (gs->group != g)
				continue;
			/* the freshest view of the group: the highest term, in it the leader's own
			 * report, else the replica that applied the most (a lagging one may not
			 * have applied the last configuration change) */
			if (*info == NULL || gs->term > (*info)->term ||
			    (gs->term == (*info)->term &&
			     (is_leader(&nv->st, gs) || (strcmp((*info)->role, "leader") != 0 &&
							 gs->applied > (*info)->applied))))
				*info = gs;
			if (is_leader(&nv->st, gs) && gs->term >= best_term) {
				best = nv->st.id;
				best_term = gs->term;
			}
		}
	}
	if (best == 0 && *info != NULL) {
		best = (*info)->leader;
		best_term = (*info)->term;
	}
	*term = best_term;
	return best;
}

static const char *addr_of(const struct view *v, uint64_t id)
{
	for (size_t i = 0; i < v->n; i++)
		if (v->nodes[i].rc == CLI_OK && v->nodes[i].st.id == id)
			return v->nodes[i].st.client_addr;
	for (size_t i = 0; i < v->n; i++)
		for (size_t k = 0; v->nodes[i].rc == CLI_OK && k < v->nodes[i].st.n_nodes; k++)
			if (v->nodes[i].st.nodes[k].id == id)
				return v->nodes[i].st.nodes[k].client_addr;
	return "-";
}

/* Whether node id answered STATUS in this view. */
static bool answered(const struct view *v, uint64_t id)
{
	for (size_t i = 0; i < v->n; i++)
		if (v->nodes[i].rc == CLI_OK && v->nodes[i].st.id == id)
			return true;
	return false;
}

static void ids(char *buf, size_t cap, const uint64_t *v, size_t n)
{
	size_t len = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < n && len + 24 < cap; i++)
		len += (size_t)snprintf(buf + len, cap - len, "%s%llu", i ? "," : "",
					(unsigned long long)v[i]);
	if (n == 0)
		snprintf(buf, cap, "-");
}

/* The freshest ring change among the answers: the highest new epoch, then the furthest on
 * (range states only grow). NULL when no node knows of one. */
static const struct cli_ring_change *latest_change(const struct view *v)
{
	const struct cli_ring_change *best = NULL;
	uint64_t best_sum = 0;
	for (size_t i = 0; i < v->n; i++) {
		const struct cli_ring_change *ch = &v->nodes[i].st.change;
		if (v->nodes[i].rc != CLI_OK || !ch->present)
			continue;
		uint64_t sum = 0;
		for (size_t k = 0; k < ch->n_ranges; k++)
			sum += ch->ranges[k].state;
		if (best == NULL || ch->to_epoch > best->to_epoch ||
		    (ch->to_epoch == best->to_epoch && sum > best_sum)) {
			best = ch;
			best_sum = sum;
		}
	}
	return best;
}

static bool in_u32(const uint32_t *v, size_t n, uint32_t x)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == x)
			return true;
	return false;
}

/* How a change stands: "moving" while some range is not final, else "complete" (all done) or
 * "rolled back". */
static const char *change_outcome(const struct cli_ring_change *ch)
{
	size_t done = 0, back = 0;
	for (size_t i = 0; i < ch->n_ranges; i++) {
		done += ch->ranges[i].state == KV_RESHARD_DONE;
		back += ch->ranges[i].state == KV_RESHARD_ROLLED_BACK;
	}
	if (done == ch->n_ranges)
		return "complete";
	if (back == ch->n_ranges)
		return "rolled back";
	return "moving";
}

static const char *state_name(uint32_t s)
{
	return s >= KV_RESHARD_PLANNED && s <= KV_RESHARD_ROLLED_BACK
		       ? kv_reshard_state_name((enum kv_reshard_state)s)
		       : "unknown";
}

static double range_fraction(const struct cli_ring_range *r)
{
	return (double)(r->hi - r->lo) / 18446744073709551616.0; /* wraps when lo >= hi */
}

/* The change's ranges, grouped by (source, target, state), for the table view. */
static void change_text(const struct cli_ring_change *ch)
{
	const char *outcome = change_outcome(ch);
	printf("\n%s ring change: epoch %llu -> %llu", strcmp(outcome, "moving") ? "last" : "a",
	       (unsigned long long)ch->from_epoch, (unsigned long long)ch->to_epoch);
	for (size_t i = 0, k = 0; i < ch->n_to; i++)
		if (!in_u32(ch->from_ids, ch->n_from, ch->to_ids[i]))
			printf("%s%u", k++ ? "," : ", adding group ", ch->to_ids[i]);
	for (size_t i = 0, k = 0; i < ch->n_from; i++)
		if (!in_u32(ch->to_ids, ch->n_to, ch->from_ids[i]))
			printf("%s%u", k++ ? "," : ", removing group ", ch->from_ids[i]);
	printf(": %s, %zu range(s)\n", outcome, ch->n_ranges);
	if (strcmp(outcome, "moving") != 0)
		return;
	/* one line per (source, target, state), in the order first met */
	bool *shown = calloc(ch->n_ranges ? ch->n_ranges : 1, sizeof *shown);
	for (size_t i = 0; shown != NULL && i < ch->n_ranges; i++) {
		if (shown[i])
			continue;
		const struct cli_ring_range *r = &ch->ranges[i];
		size_t count = 0;
		double frac = 0;
		for (size_t k = i; k < ch->n_ranges; k++) {
			const struct cli_ring_range *x = &ch->ranges[k];
			if (!shown[k] && x->from == r->from && x->to == r->to &&
			    x->state == r->state) {
				shown[k] = true;
				count++;
				frac += range_fraction(x);
			}
		}
		printf("  group %u -> group %u: %zu range(s), %.2f%% of the keys: %s\n", r->from,
		       r->to, count, 100 * frac, state_name(r->state));
	}
	free(shown);
	printf("  the meta group's leader moves one pair of groups at a time (planned -> fenced "
	       "-> ingested -> done); keys of a done range are served by their new group, the "
	       "others by the old one (ring epoch %llu) until every range is done; writes to a "
	       "fenced range wait (MOVING) while it is copied. kvctl groups remove on an added "
	       "group rolls the change back while no copy is complete\n",
	       (unsigned long long)ch->from_epoch);
}

static void change_json(const struct cli_ring_change *ch)
{
	printf(",\n \"change\": {\"from_epoch\": %llu, \"to_epoch\": %llu, \"from_ids\": [",
	       (unsigned long long)ch->from_epoch, (unsigned long long)ch->to_epoch);
	for (size_t i = 0; i < ch->n_from; i++)
		printf("%s%u", i ? ", " : "", ch->from_ids[i]);
	printf("], \"to_ids\": [");
	for (size_t i = 0; i < ch->n_to; i++)
		printf("%s%u", i ? ", " : "", ch->to_ids[i]);
	printf("], \"state\": \"%s\", \"ranges\": [", change_outcome(ch));
	for (size_t i = 0; i < ch->n_ranges; i++) {
		const struct cli_ring_range *r = &ch->ranges[i];
		printf("%s\n   {\"lo\": %llu, \"hi\": %llu, \"from\": %u, \"to\": %u, \"share\": "
		       "%.6f, \"state\": \"%s\"}",
		       i ? "," : "", (unsigned long long)r->lo, (unsigned long long)r->hi, r->from,
		       r->to, range_fraction(r), state_name(r->state));
	}
	printf("]}");
}

/* kvctl groups add [--count K] / kvctl groups remove GROUP. */
static int groups_change(struct cli_client *c, const struct kvctl_args *a)
{
	bool add = strcmp(a->pos[1], "add") == 0;
	if (!add && strcmp(a->pos[1], "remove") != 0) {
		fprintf(stderr,
			"kvctl: groups: unknown subcommand '%s'; usage: kvctl groups  |  "
			"groups add [--count K]  |  groups remove GROUP\n",
			a->pos[1]);
		return KVCTL_EXIT_USAGE;
	}
	if (add && a->npos != 2) {
		fprintf(stderr, "kvctl: groups add: takes no argument but --count K; usage: kvctl "
				"groups add [--count K]\n");
		return KVCTL_EXIT_USAGE;
	}
	if (!add && (a->npos != 3 || (a->seen & KVCTL_F_COUNT))) {
		fprintf(stderr, "kvctl: groups remove: usage: kvctl groups remove GROUP\n");
		return KVCTL_EXIT_USAGE;
	}
	uint32_t group = 0;
	if (!add) {
		char *end;
		unsigned long long x = strtoull(a->pos[2], &end, 10);
		if (*end || a->pos[2][0] == '-' || x == 0 || x > CLI_GROUPS_MAX) {
			fprintf(stderr,
				"kvctl: groups remove: wants a group id (1..%u), not '%s'\n",
				CLI_GROUPS_MAX, a->pos[2]);
			return KVCTL_EXIT_USAGE;
		}
		group = (uint32_t)x;
	}
	char text[1024];
	int rc = add ? cli_groups_add(c, a->count ? a->count : 1, text, sizeof text)
		     : cli_groups_remove(c, group, text, sizeof text);
	const char *what = add ? "groups add" : "groups remove";
	const char *t = text;
	if (strncmp(t, what, strlen(what)) == 0 && strncmp(t + strlen(what), ": ", 2) == 0)
		t += strlen(what) + 2; /* the node's message names the command too */
	if (rc == CLI_INVALID) {
		fprintf(stderr, "kvctl: %s: refused: %s\n", what, t);
		return KVCTL_EXIT_USAGE;
	}
	if (rc != CLI_OK) {
		if (text[0])
			fprintf(stderr, "kvctl: %s: %s\n", what, text);
		return kvctl_fail(a, what, rc);
	}
	if (a->output == KVCTL_OUT_JSON) {
		printf("{\"ok\": true, \"result\": ");
		json_text(text);
		printf("}\n");
	} else {
		printf("%s\n", text);
	}
	return KVCTL_EXIT_OK;
}

int kvctl_cmd_groups(struct cli_client *c, const struct kvctl_args *a)
{
	if (a->npos >= 2)
		return groups_change(c, a);
	if (a->seen & KVCTL_F_COUNT) {
		fprintf(stderr, "kvctl: groups: --count goes with groups add\n");
		return KVCTL_EXIT_USAGE;
	}
	struct view *v = gather(c, a);
	if (v == NULL)
		return KVCTL_EXIT_UNAVAILABLE;
	if (reachable(v) == 0) {
		free_view(v);
		fprintf(stderr, "kvctl: groups: no node answered (endpoints %s)\n", a->endpoints);
		return KVCTL_EXIT_UNAVAILABLE;
	}
	if (a->output == KVCTL_OUT_JSON)
		printf("{\"groups\": [");
	else
		printf("%-6s %-7s %-34s %-8s %-12s %-9s %s\n", "GROUP", "LEADER", "LEADER-ADDR",
		       "TERM", "VOTERS", "LEARNERS", "SHARE");
	/* The ring's groups (its ids; 1..G from a node that sends none), each with its share of
	 * the hash space, then the groups a change adds that are not in the ring in effect yet
	 * (share 0: they own no keys until their ranges are done). SHARE is last so scripts
	 * reading GROUP and LEADER keep working. */
	size_t n_ids = v->groups;
	const uint32_t *ring_ids = v->ring ? kv_ring_ids(v->ring, &n_ids) : NULL;
	const struct cli_ring_change *ch = latest_change(v);
	size_t n_extra = 0;
	uint32_t extra[CLI_GROUPS_ADD_MAX];
	for (size_t i = 0; i < v->set.n && n_extra < CLI_GROUPS_ADD_MAX; i++) {
		uint32_t g = v->set.ids[i];
		if (v->set.kind[i] == KVCTL_GROUP_ADDING &&
		    !(ring_ids ? in_u32(ring_ids, n_ids, g) : g <= n_ids))
			extra[n_extra++] = g;
	}
	for (size_t i = 0; i < n_ids + n_extra; i++) {
		uint32_t g = i >= n_ids ? extra[i - n_ids]
			     : ring_ids ? ring_ids[i]
					: (uint32_t)i + 1;
		double share = i >= n_ids ? 0 : v->ring ? kv_ring_share(v->ring, g) : -1;
		uint64_t term;
		const struct cli_group_status *info;
		uint64_t leader = group_leader(v, g, &term, &info);
		char voters[256], learners[256];
		ids(voters, sizeof voters, info ? info->voters : NULL, info ? info->n_voters : 0);
		ids(learners, sizeof learners, info ? info->learners : NULL,
		    info ? info->n_learners : 0);
		if (a->output == KVCTL_OUT_JSON) {
			printf("%s\n  {\"group\": %u, \"leader\": %llu, \"leader_addr\": ",
			       i > 0 ? "," : "", g, (unsigned long long)leader);
			json_text(leader ? addr_of(v, leader) : "");
			printf(", \"leader_reachable\": %s, \"term\": %llu, \"voters\": ",
			       leader && answered(v, leader) ? "true" : "false",
			       (unsigned long long)term);
			json_u64_list(info ? info->voters : NULL, info ? info->n_voters : 0);
			printf(", \"learners\": ");
			json_u64_list(info ? info->learners : NULL, info ? info->n_learners : 0);
			if (i >= n_ids)
				printf(", \"adding\": true");
			if (share >= 0)
				printf(", \"share\": %.4f}", share);
			else
				printf(", \"share\": null}");
		} else {
			/* Right after a crash the others still name the dead leader until
			 * they elect a new one: say so rather than show it as healthy. */
			char lid[24], addr[CLI_ADDR_MAX + 16];
			snprintf(lid, sizeof lid, "%llu", (unsigned long long)leader);
			snprintf(addr, sizeof addr, "%s%s", leader ? addr_of(v, leader) : "-",
				 leader && !answered(v, leader) ? " (unreachable)" : "");
			char sh[24] = "-";
			if (share >= 0)
				snprintf(sh, sizeof sh, "%.2f%%%s", 100 * share,
					 i >= n_ids ? " (adding)" : "");
			printf("%-6u %-7s %-34s %-8llu %-12s %-9s %s\n", g, leader ? lid : "none",
			       addr, (unsigned long long)term, voters, learners, sh);
		}
	}
	if (a->output == KVCTL_OUT_JSON) {
		printf("\n]");
		if (ch != NULL)
			change_json(ch);
		printf("}\n");
	} else if (ch != NULL) {
		change_text(ch);
	}
	free_view(v);
	return KVCTL_EXIT_OK;
}

/* Repeats MOVE_REPLICA steps of (g, from, to) until done, refused or past the deadline;
 * prints each new step unless quiet. KVCTL_EXIT_OK when done. */
static int move_until_done(struct cli_client *c, const struct kvctl_args *a, uint32_t g,
			   uint64_t from, uint64_t to, int64_t deadline, bool quiet)
{
	char last[200] = "", progress[200];
	for (;;) {
		bool done = false;
		int rc = cli_move_replica_step(c, g, from, to, &done, progress, sizeof progress);
		if (rc == CLI_INVALID) {
			fprintf(stderr,
				"kvctl: group %u: move from node %llu to node %llu refused: %s\n",
				g, (unsigned long long)from, (unsigned long long)to, progress);
			return KVCTL_EXIT_USAGE;
		}
		if (rc != CLI_OK)
			return kvctl_fail(a, "group move", rc);
		if (!quiet && strcmp(progress, last) != 0 && a->output != KVCTL_OUT_JSON)
			printf("group %u: %s\n", g, progress);
		snprintf(last, sizeof last, "%s", progress);
		if (done)
			return KVCTL_EXIT_OK;
		if (cli_now_ms() >= deadline) {
			fprintf(stderr,
				"kvctl: group %u: move not done within %u ms; last step: %s (run "
				"the "
				"same command again to go on)\n",
				g, a->timeout_ms, last);
			return KVCTL_EXIT_UNAVAILABLE;
		}
		struct timespec ts = {0, 100 * 1000000L};
		nanosleep(&ts, NULL);
	}
}

static bool in_ids(const uint64_t *v, size_t n, uint64_t id)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == id)
			return true;
	return false;
}

/* kvctl group move GROUP FROM TO: one MOVE_REPLICA step after another (each a Raft
 * configuration change at the group's leader) until the group says done, printing each new
 * step; bounded by --timeout. Interrupted (a crash, ^C, a timeout), it is simply run again:
 * the group's configuration says where the move is. */
int kvctl_cmd_group(struct cli_client *c, const struct kvctl_args *a)
{
	if (strcmp(a->pos[1], "move") != 0) {
		fprintf(stderr,
			"kvctl: group: unknown subcommand '%s'; usage: kvctl group move "
			"GROUP FROM TO\n",
			a->pos[1]);
		return KVCTL_EXIT_USAGE;
	}
	char *end;
	unsigned long g = strtoul(a->pos[2], &end, 10);
	if (*end || a->pos[2][0] == '-' || g == 0 || g > CLI_GROUPS_MAX) {
		fprintf(stderr, "kvctl: group move: GROUP wants a group number 1..%u, not '%s'\n",
			CLI_GROUPS_MAX, a->pos[2]);
		return KVCTL_EXIT_USAGE;
	}
	unsigned long long ids[2];
	for (int i = 0; i < 2; i++) {
		const char *s = a->pos[3 + i];
		ids[i] = strtoull(s, &end, 10);
		if (*end || s[0] == '-' || ids[i] == 0) {
			fprintf(stderr,
				"kvctl: group move: %s wants a node id (1, 2, ...), not '%s'\n",
				i == 0 ? "FROM" : "TO", s);
			return KVCTL_EXIT_USAGE;
		}
	}
	int rc = move_until_done(c, a, (uint32_t)g, ids[0], ids[1], cli_now_ms() + a->timeout_ms,
				 false);
	if (rc == KVCTL_EXIT_OK && a->output == KVCTL_OUT_JSON)
		printf("{\"group\": %lu, \"from\": %llu, \"to\": %llu, \"done\": true}\n", g,
		       ids[0], ids[1]);
	return rc;
}

/* kvctl member drain ID: every replica node ID holds goes to another member, one group after
 * the other (a group move each: learner, catch-up, promotion, removal), each to the member that
 * holds the fewest replicas among those holding none of that group, a reachable one first. It
 * works with ID down, even gone for good (a dead machine: its replicas are rebuilt on the
 * others from the two live copies). Refused when fewer than 3 other members are left. Each
 * move is bounded by --timeout; run again to go on after a timeout. */
static int member_fill(struct cli_client *c, const struct kvctl_args *a, struct view *v,
		       const uint64_t *members, size_t nm, size_t *count, uint64_t id);

static int member_list(const struct kvctl_args *a, struct view *v)
{
	const struct cli_node_status *m = v->map;
	if (a->output == KVCTL_OUT_JSON)
		printf("{\"members_epoch\": %llu, \"members\": [",
		       (unsigned long long)m->members_epoch);
	else
		printf("%-6s %-24s %-24s %-8s %-10s %s\n", "ID", "PEER-ADDR", "CLIENT-ADDR",
		       "STATE", "ANSWERS", "REPLICAS");
	for (size_t k = 0; k < m->n_nodes; k++) {
		const struct cli_ring_node *nd = &m->nodes[k];
		size_t replicas = 0;
		for (size_t gi = 0; gi < v->set.n; gi++) {
			uint32_t g = v->set.ids[gi];
			uint64_t term;
			const struct cli_group_status *info;
			(void)group_leader(v, g, &term, &info);
			replicas += info && (in_ids(info->voters, info->n_voters, nd->id) ||
					     in_ids(info->learners, info->n_learners, nd->id));
		}
		if (a->output == KVCTL_OUT_JSON) {
			printf("%s\n  {\"id\": %llu, \"peer_addr\": ", k ? "," : "",
			       (unsigned long long)nd->id);
			json_text(nd->peer_addr);
			printf(", \"client_addr\": ");
			json_text(nd->client_addr);
			printf(", \"state\": \"%s\", \"answers\": %s, \"replicas\": %zu}",
			       nd->removed   ? "removed"
			       : nd->leaving ? "leaving"
					     : "up",
			       answered(v, nd->id) ? "true" : "false", replicas);
		} else {
			printf("%-6llu %-24s %-24s %-8s %-10s %zu\n", (unsigned long long)nd->id,
			       nd->peer_addr, nd->client_addr[0] ? nd->client_addr : "-",
			       nd->removed   ? "removed"
			       : nd->leaving ? "leaving"
					     : "up",
			       answered(v, nd->id) ? "yes" : "no", replicas);
		}
	}
	if (a->output == KVCTL_OUT_JSON)
		printf("\n]}\n");
	return KVCTL_EXIT_OK;
}

static int parse_id(const struct kvctl_args *a, int i, uint64_t *id)
{
	char *end;
	unsigned long long x = strtoull(a->pos[i], &end, 10);
	if (*end || a->pos[i][0] == '-' || x == 0 || x > UINT32_MAX) {
		fprintf(stderr, "kvctl: member %s: wants a node id (1, 2, ...), not '%s'\n",
			a->pos[1], a->pos[i]);
		return -1;
	}
	*id = x;
	return 0;
}

static bool addr_ok(const char *s)
{
	const char *colon = strrchr(s, ':');
	return colon != NULL && colon != s && colon[1] != '\0' && strlen(s) < CLI_ADDR_MAX;
}

/* Adds member id (kvctl member add, replace); 0, or an exit code. */
static int member_add(struct cli_client *c, const struct kvctl_args *a, struct view *v, uint64_t id,
		      const char *peer, const char *client)
{
	if (!addr_ok(peer) || !addr_ok(client)) {
		fprintf(stderr, "kvctl: member %s: PEER-ADDR and CLIENT-ADDR want host:port\n",
			a->pos[1]);
		return KVCTL_EXIT_USAGE;
	}
	char why[256];
	int rc = cli_member_add(c, id, peer, client, why, sizeof why);
	if (rc == CLI_INVALID) {
		fprintf(stderr, "kvctl: member %s: refused: %s\n", a->pos[1], why);
		return KVCTL_EXIT_USAGE;
	}
	if (rc != CLI_OK)
		return kvctl_fail(a, "member add", rc);
	char cmd[CLI_NODES_MAX * (CLI_ADDR_MAX + 24) + 3 * CLI_ADDR_MAX + 160];
	snprintf(cmd, sizeof cmd,
		 "kvd --join --id %llu --peer-addr %s --client-addr %s --cluster %s --groups %u "
		 "--data-dir DIR",
		 (unsigned long long)id, peer, client, v->map->bootstrap, v->groups);
	if (a->output == KVCTL_OUT_JSON && strcmp(a->pos[1], "add") == 0) {
		printf("{\"id\": %llu, \"added\": true, \"start\": ", (unsigned long long)id);
		json_text(cmd);
		printf("}\n");
	} else if (a->output != KVCTL_OUT_JSON) {
		printf("member %llu added; start it with:\n  %s\n", (unsigned long long)id, cmd);
	}
	return KVCTL_EXIT_OK;
}

/* Replicas (voting or learning) node id holds, over every group. */
static size_t replicas_of(const struct view *v, uint64_t id)
{
	size_t k = 0;
	for (size_t gi = 0; gi < v->set.n; gi++) {
		uint32_t g = v->set.ids[gi];
		uint64_t term;
		const struct cli_group_status *info;
		(void)group_leader(v, g, &term, &info);
		k += info && (in_ids(info->voters, info->n_voters, id) ||
			      in_ids(info->learners, info->n_learners, id));
	}
	return k;
}

/* kvctl member remove/replace, first half: the member is marked leaving; when the cluster
 * balances by itself (--auto-balance), its replicas move away by themselves and this waits
 * until it holds none (each replica moved within --timeout of the one before); otherwise
 * the caller drains it. *vp is gathered again (it may be NULL after a failure). */
static int member_leave_wait(struct cli_client *c, const struct kvctl_args *a, struct view **vp,
			     uint64_t id)
{
	char why[256];
	int rc = cli_member_leave(c, id, why, sizeof why);
	if (rc == CLI_INVALID && strstr(why, "leaving already") == NULL) {
		fprintf(stderr, "kvctl: member %s: refused: %s\n", a->pos[1], why);
		return KVCTL_EXIT_USAGE;
	}
	if (rc != CLI_OK && rc != CLI_INVALID)
		return kvctl_fail(a, "member leave", rc);
	struct view *v = *vp;
	bool auto_balance = false;
	for (size_t i = 0; i < v->n; i++)
		auto_balance |= v->nodes[i].rc == CLI_OK && v->nodes[i].st.auto_balance;
	if (!auto_balance)
		return KVCTL_EXIT_OK; /* the caller moves the replicas itself */
	size_t left = replicas_of(v, id), last = (size_t)-1;
	int64_t deadline = cli_now_ms() + a->timeout_ms;
	while (left > 0) {
		if (left != last && a->output != KVCTL_OUT_JSON)
			printf("node %llu is leaving: %zu replica(s) still to move\n",
			       (unsigned long long)id, left);
		if (left != last)
			deadline = cli_now_ms() + a->timeout_ms;
		last = left;
		if (cli_now_ms() >= deadline) {
			fprintf(stderr,
				"kvctl: member %s: node %llu still holds %zu replica(s) after %u "
				"ms "
				"without progress (it stays leaving; run the command again to wait "
				"more)\n",
				a->pos[1], (unsigned long long)id, left, a->timeout_ms);
			return KVCTL_EXIT_UNAVAILABLE;
		}
		struct timespec ts = {0, 300 * 1000000L};
		nanosleep(&ts, NULL);
		free_view(v);
		*vp = v = gather(c, a);
		if (v == NULL || reachable(v) == 0)
			return KVCTL_EXIT_UNAVAILABLE;
		left = replicas_of(v, id);
	}
	return KVCTL_EXIT_OK;
}

static bool map_has(const struct view *v, uint64_t id, bool *removed)
{
	for (size_t k = 0; k < v->map->n_nodes; k++)
		if (v->map->nodes[k].id == id) {
			*removed = v->map->nodes[k].removed;
			return true;
		}
	return false;
}

int kvctl_cmd_member(struct cli_client *c, const struct kvctl_args *a)
{
	static const struct {
		const char *name;
		int npos; /* positional arguments after the subcommand */
		const char *usage;
	} subs[] = {
		{"list", 0, "member list"},
		{"add", 3, "member add ID PEER-ADDR CLIENT-ADDR"},
		{"remove", 1, "member remove ID"},
		{"replace", 4, "member replace OLD NEW PEER-ADDR CLIENT-ADDR"},
		{"drain", 1, "member drain ID"},
		{"fill", 1, "member fill ID"},
	};
	size_t si = 0;
	while (si < sizeof subs / sizeof subs[0] && strcmp(a->pos[1], subs[si].name) != 0)
		si++;
	if (si == sizeof subs / sizeof subs[0]) {
		fprintf(stderr,
			"kvctl: member: unknown subcommand '%s'; usage: kvctl member "
			"list|add|remove|replace|drain|fill ...\n",
			a->pos[1]);
		return KVCTL_EXIT_USAGE;
	}
	if (a->npos - 2 != subs[si].npos) {
		fprintf(stderr, "kvctl: member %s: %s arguments; usage: kvctl %s\n", a->pos[1],
			a->npos - 2 < subs[si].npos ? "missing" : "too many", subs[si].usage);
		return KVCTL_EXIT_USAGE;
	}
	bool fill = strcmp(a->pos[1], "fill") == 0;
	bool list = strcmp(a->pos[1], "list") == 0;
	bool add_cmd = strcmp(a->pos[1], "add") == 0;
	bool remove_cmd = strcmp(a->pos[1], "remove") == 0;
	bool replace = strcmp(a->pos[1], "replace") == 0;
	uint64_t id = 0, newid = 0;
	if (!list && parse_id(a, 2, &id) < 0)
		return KVCTL_EXIT_USAGE;
	if (replace && parse_id(a, 3, &newid) < 0)
		return KVCTL_EXIT_USAGE;
	if ((add_cmd || replace) &&
	    (!addr_ok(a->pos[add_cmd ? 3 : 4]) || !addr_ok(a->pos[add_cmd ? 4 : 5]))) {
		fprintf(stderr, "kvctl: member %s: PEER-ADDR and CLIENT-ADDR want host:port\n",
			a->pos[1]);
		return KVCTL_EXIT_USAGE;
	}
	struct view *v = gather(c, a);
	if (v == NULL || reachable(v) == 0 || v->map == NULL) {
		free_view(v);
		fprintf(stderr, "kvctl: member %s: no node answered (endpoints %s)\n", a->pos[1],
			a->endpoints);
		return KVCTL_EXIT_UNAVAILABLE;
	}
	if (list) {
		int lrc = member_list(a, v);
		free_view(v);
		return lrc;
	}
	bool removed = false;
	if (add_cmd) {
		int arc = member_add(c, a, v, id, a->pos[3], a->pos[4]);
		free_view(v);
		return arc;
	}
	if (replace) {
		/* add NEW (again: a re-run after a timeout finds it added), wait until it answers,
		 * then OLD's replicas move (to NEW first: it holds none) and OLD is removed */
		bool was = map_has(v, newid, &removed);
		if (was && removed) {
			free_view(v);
			fprintf(stderr,
				"kvctl: member replace: node %llu was removed; give the new "
				"node a new id\n",
				(unsigned long long)newid);
			return KVCTL_EXIT_USAGE;
		}
		if (!was) {
			int arc = member_add(c, a, v, newid, a->pos[4], a->pos[5]);
			if (arc != KVCTL_EXIT_OK) {
				free_view(v);
				return arc;
			}
		}
		int64_t deadline = cli_now_ms() + a->timeout_ms;
		while (!answered(v, newid)) {
			if (cli_now_ms() >= deadline) {
				free_view(v);
				fprintf(stderr,
					"kvctl: member replace: node %llu does not answer yet: "
					"start it "
					"(kvd --join ...), then run the same command again\n",
					(unsigned long long)newid);
				return KVCTL_EXIT_UNAVAILABLE;
			}
			struct timespec ts = {0, 200 * 1000000L};
			nanosleep(&ts, NULL);
			free_view(v);
			if ((v = gather(c, a)) == NULL || v->map == NULL) {
				free_view(v);
				return KVCTL_EXIT_UNAVAILABLE;
			}
		}
	}
	cli_learn_members_epoch(c, v->map->members_epoch);
	uint64_t members[CLI_NODES_MAX];
	size_t nm = 0;
	for (size_t k = 0; k < v->map->n_nodes; k++)
		if (!v->map->nodes[k].removed)
			members[nm++] = v->map->nodes[k].id;
	if (!in_ids(members, nm, id)) {
		free_view(v);
		fprintf(stderr, "kvctl: member %s: node %llu is not a member of the cluster\n",
			a->pos[1], (unsigned long long)id);
		return KVCTL_EXIT_USAGE;
	}
	size_t staying = 0;
	for (size_t k = 0; k < v->map->n_nodes; k++)
		staying += !v->map->nodes[k].removed && !v->map->nodes[k].leaving &&
			   v->map->nodes[k].id != id;
	if (!fill && staying < 3) {
		free_view(v);
		fprintf(stderr,
			"kvctl: member %s: refused: the other %zu member(s) cannot hold 3 replicas "
			"of every group\n",
			a->pos[1], staying);
		return KVCTL_EXIT_USAGE;
	}
	if (remove_cmd || replace) {
		int lrc = member_leave_wait(c, a, &v, id);
		if (lrc != KVCTL_EXIT_OK || v == NULL) {
			free_view(v);
			return lrc;
		}
	}
	/* replicas per member, from the freshest view of each group */
	size_t count[CLI_NODES_MAX] = {0};
	for (size_t gi = 0; gi < v->set.n; gi++) {
		uint32_t g = v->set.ids[gi];
		uint64_t term;
		const struct cli_group_status *info;
		(void)group_leader(v, g, &term, &info);
		for (size_t k = 0; info && k < info->n_voters; k++)
			for (size_t m = 0; m < nm; m++)
				count[m] += members[m] == info->voters[k];
	}
	if (fill) {
		int frc = member_fill(c, a, v, members, nm, count, id);
		free_view(v);
		return frc;
	}
	(void)remove_cmd;
	int rc = KVCTL_EXIT_OK;
	size_t moved = 0;
	for (size_t gi = 0; gi < v->set.n && rc == KVCTL_EXIT_OK; gi++) {
		uint32_t g = v->set.ids[gi];
		uint64_t term;
		const struct cli_group_status *info;
		(void)group_leader(v, g, &term, &info);
		if (info == NULL || !(in_ids(info->voters, info->n_voters, id) ||
				      in_ids(info->learners, info->n_learners, id)))
			continue;
		size_t best = nm;
		for (size_t m = 0; m < nm; m++) {
			if (members[m] == id || in_ids(info->voters, info->n_voters, members[m]))
				continue;
			bool better = best == nm ||
				      (answered(v, members[m]) && !answered(v, members[best])) ||
				      (answered(v, members[m]) == answered(v, members[best]) &&
				       count[m] < count[best]);
			if (better)
				best = m;
		}
		if (best == nm) {
			fprintf(stderr, "kvctl: member drain: group %u has no member to move to\n",
				g);
			rc = KVCTL_EXIT_UNAVAILABLE;
			break;
		}
		if (a->output != KVCTL_OUT_JSON)
			printf("group %u: moving node %llu's replica to node %llu\n", g,
			       (unsigned long long)id, (unsigned long long)members[best]);
		rc = move_until_done(c, a, g, id, members[best], cli_now_ms() + a->timeout_ms,
				     false);
		if (rc == KVCTL_EXIT_OK) {
			count[best]++;
			moved++;
		}
	}
	free_view(v);
	if (rc != KVCTL_EXIT_OK)
		return rc;
	if (remove_cmd || replace) {
		/* every replica moved away: the member leaves the map (the meta leader checks
		 * again that no group it knows names it) */
		char why[256];
		/* the meta leader learns the groups' configurations from their leaders' reports,
		 * a second or so behind the moves just made: asked again until --timeout */
		int64_t deadline = cli_now_ms() + a->timeout_ms;
		int mrc;
		while ((mrc = cli_member_remove(c, id, why, sizeof why)) == CLI_INVALID &&
		       (strstr(why, "still holds replicas") || strstr(why, "try again")) &&
		       cli_now_ms() < deadline) {
			struct timespec ts = {0, 500 * 1000000L};
			nanosleep(&ts, NULL);
		}
		if (mrc == CLI_INVALID) {
			fprintf(stderr, "kvctl: member %s: refused: %s\n", a->pos[1], why);
			return KVCTL_EXIT_USAGE;
		}
		if (mrc != CLI_OK)
			return kvctl_fail(a, "member remove", mrc);
	}
	if (a->output == KVCTL_OUT_JSON)
		printf("{\"node\": %llu, \"groups_moved\": %zu, \"removed\": %s, \"done\": "
		       "true}\n",
		       (unsigned long long)id, moved, remove_cmd || replace ? "true" : "false");
	else if (remove_cmd || replace)
		printf("node %llu holds no replica and was removed from the cluster (%zu group(s) "
		       "moved)\n",
		       (unsigned long long)id, moved);
	else
		printf("node %llu holds no replica now (%zu group(s) moved)\n",
		       (unsigned long long)id, moved);
	return KVCTL_EXIT_OK;
}

/* kvctl member fill ID: replicas move onto node ID (a new or drained node) until it holds its
 * share, floor(3 * groups / N), counting every group the view walks (the ring's, the meta
 * group, those a ring change adds): each time from the member holding the most replicas, of a
 * group ID does not hold. The counterpart of drain: drain a dead machine's node, start a new
 * machine with the same id and an empty data directory, fill it. */
static int member_fill(struct cli_client *c, const struct kvctl_args *a, struct view *v,
		       const uint64_t *members, size_t nm, size_t *count, uint64_t id)
{
	size_t me = 0;
	while (members[me] != id)
		me++;
	if (!answered(v, id)) {
		fprintf(stderr, "kvctl: member fill: node %llu does not answer: start it first\n",
			(unsigned long long)id);
		return KVCTL_EXIT_UNAVAILABLE;
	}
	size_t share = 3 * v->set.n / nm;
	bool taken[CLI_GROUPS_MAX + 1] = {0};
	size_t moved = 0;
	while (count[me] < share) {
		uint32_t best_g = 0;
		size_t best_donor = nm;
		for (size_t gi = 0; gi < v->set.n; gi++) {
			uint32_t g = v->set.ids[gi];
			uint64_t term;
			const struct cli_group_status *info;
			(void)group_leader(v, g, &term, &info);
			if (taken[g] || info == NULL || in_ids(info->voters, info->n_voters, id) ||
			    in_ids(info->learners, info->n_learners, id))
				continue;
			for (size_t m = 0; m < nm; m++)
				if (m != me && in_ids(info->voters, info->n_voters, members[m]) &&
				    (best_donor == nm || count[m] > count[best_donor])) {
					best_donor = m;
					best_g = g;
				}
		}
		if (best_g == 0 || count[best_donor] <= count[me] + 1)
			break; /* nothing to take that would even things out */
		taken[best_g] = true;
		if (a->output != KVCTL_OUT_JSON)
			printf("group %u: moving node %llu's replica to node %llu\n", best_g,
			       (unsigned long long)members[best_donor], (unsigned long long)id);
		int rc = move_until_done(c, a, best_g, members[best_donor], id,
					 cli_now_ms() + a->timeout_ms, false);
		if (rc != KVCTL_EXIT_OK)
			return rc;
		count[best_donor]--;
		count[me]++;
		moved++;
	}
	if (a->output == KVCTL_OUT_JSON)
		printf("{\"node\": %llu, \"groups_moved\": %zu, \"replicas\": %zu, \"done\": "
		       "true}\n",
		       (unsigned long long)id, moved, count[me]);
	else
		printf("node %llu holds %zu replica(s) now (%zu group(s) moved)\n",
		       (unsigned long long)id, count[me], moved);
	return KVCTL_EXIT_OK;
}

int kvctl_cmd_transfer(struct cli_client *c, const struct kvctl_args *a)
{
	char *end;
	unsigned long g = strtoul(a->pos[1], &end, 10);
	if (*end || a->pos[1][0] == '-' || g == 0 || g > CLI_GROUPS_MAX) {
		fprintf(stderr,
			"kvctl: transfer-leader: GROUP wants a group number 1..%u, not '%s'\n",
			CLI_GROUPS_MAX, a->pos[1]);
		return KVCTL_EXIT_USAGE;
	}
	unsigned long long node = strtoull(a->pos[2], &end, 10);
	if (*end || a->pos[2][0] == '-' || node == 0) {
		fprintf(stderr,
			"kvctl: transfer-leader: NODE wants a node id (1, 2, ...), not '%s'\n",
			a->pos[2]);
		return KVCTL_EXIT_USAGE;
	}
	int rc = cli_transfer_leader(c, (uint32_t)g, node);
	if (rc != CLI_OK)
		return kvctl_fail(a, "transfer-leader", rc);
	/* The transfer completes asynchronously: wait (bounded) until the group says so. */
	int64_t deadline = cli_now_ms() + a->timeout_ms;
	for (;;) {
		uint64_t leader = 0;
		int lr = cli_leader_of(c, (uint32_t)g, true, &leader, NULL);
		if (lr == CLI_OK && leader == node) {
			if (a->output == KVCTL_OUT_JSON)
				printf("{\"group\": %lu, \"leader\": %llu, \"ok\": true}\n", g,
				       node);
			else
				printf("group %lu: node %llu is now the leader\n", g, node);
			return KVCTL_EXIT_OK;
		}
		if (cli_now_ms() >= deadline) {
			fprintf(stderr,
				"kvctl: transfer-leader: the leader of group %lu accepted the "
				"transfer, "
				"but node %llu did not become leader within %u ms (leader now: "
				"%llu)\n",
				g, node, a->timeout_ms, (unsigned long long)leader);
			return KVCTL_EXIT_UNAVAILABLE;
		}
		struct timespec ts = {0, 50 * 1000000L};
		nanosleep(&ts, NULL);
	}
}

/* digest GROUP: the group's state digest on every endpoint, each at its own applied index
 * (one DIGEST request per endpoint, answered by that node's replica). Replicas agree when they
 * show the same digest at the same applied index: exit 0 then, 1 when they differ, 3 when an
 * endpoint did not answer. Comparing replicas after a repair is what it is for (cut_one.sh). */
int kvctl_cmd_digest(struct cli_client *c, const struct kvctl_args *a)
{
	char *end;
	unsigned long g = strtoul(a->pos[1], &end, 10);
	if (*end || a->pos[1][0] == '-' || g == 0 || g > CLI_GROUPS_MAX) {
		fprintf(stderr, "kvctl: digest: GROUP wants a group number 1..%u, not '%s'\n",
			CLI_GROUPS_MAX, a->pos[1]);
		return KVCTL_EXIT_USAGE;
	}
	char eps[4096];
	snprintf(eps, sizeof eps, "%s", a->endpoints);
	int rc_all = KVCTL_EXIT_OK, n = 0;
	char first[2 * 64 + 1] = "";
	uint64_t first_applied = 0;
	char *save = NULL;
	for (char *ep = strtok_r(eps, ",", &save); ep != NULL; ep = strtok_r(NULL, ",", &save)) {
		void *d = NULL;
		size_t len = 0;
		uint64_t applied = 0;
		int rc = cli_digest(c, ep, (uint32_t)g, &d, &len, &applied);
		if (rc != CLI_OK) {
			printf("%lu %s - error=\"%s\"\n", g, ep, cli_strerror(rc));
			rc_all = KVCTL_EXIT_UNAVAILABLE;
			free(d);
			continue;
		}
		char hex[2 * 64 + 1];
		size_t k = len < 64 ? len : 64;
		for (size_t i = 0; i < k; i++)
			snprintf(hex + 2 * i, 3, "%02x", ((const uint8_t *)d)[i]);
		hex[2 * k] = '\0';
		free(d);
		printf("%lu %s %llu %s\n", g, ep, (unsigned long long)applied, hex);
		if (n++ == 0) {
			snprintf(first, sizeof first, "%s", hex);
			first_applied = applied;
		} else if ((strcmp(first, hex) != 0 || applied != first_applied) &&
			   rc_all == KVCTL_EXIT_OK) {
			rc_all = KVCTL_EXIT_NOT_FOUND;
		}
	}
	return rc_all;
}
