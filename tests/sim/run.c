/* run.c — one random run from a seed: cluster size and fault mix come from the seed.
 *
 * A run has a fault phase (clients propose and read while the mix injects its faults), then
 * heals everything (partitions, loss, crashed nodes) and checks liveness: a leader must appear
 * and a proposal made after healing must commit within a bounded simulated time.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "tests/sim/sim.h"

#define ELECTION_TICKS      10
#define FAULT_TICKS         1000 /* fault phase */
#define LIVENESS_TICKS      300  /* bound on "elect and commit" after healing (30 timeouts) */
#define SLOT                (SIM_TICK / 2) /* clients and the nemesis act every half tick */
#define CATCHUP_TICKS       100 /* then every member of the configuration must have applied it */
#define CATCHUP_WIPED_TICKS 500 /* at most, while a wiped node is still catching up */
#define QUIET_TICKS         60  /* idle after the catch-up: long enough for quiescence */
#define DETECT_TICKS        30  /* failure detector: a silent peer is down after this */

enum {
	F_NET = 1,      /* delay spread, loss, duplication */
	F_PART = 2,     /* symmetric and one-way partitions */
	F_CRASH = 4,    /* crash / restart, slow disks */
	F_MEMBER = 8,   /* add / remove / promote, leadership transfer */
	F_COMPACT = 16, /* aggressive compaction, tiny snapshot chunks */
	F_CHURN = 32,   /* leaders crash often; one entry per message (figure 8 histories) */
	F_WIPE = 64,    /* a crash may lose the node's whole state (cluster_wipe) */
};

struct mix {
	const char *name;
	int faults;
	uint32_t wipe_pm; /* with F_WIPE: share of crash-nemesis strikes that are wipes */
};

static const struct mix mixes[] = {
	{"calm", F_COMPACT, 0},
	{"lossy", F_NET, 0},
	{"partition", F_PART | F_NET, 0},
	{"crash", F_CRASH | F_COMPACT | F_WIPE, 60},
	{"membership", F_MEMBER | F_COMPACT, 0},
	{"partition+crash", F_PART | F_CRASH | F_WIPE, 60},
	{"chaos", F_NET | F_PART | F_CRASH | F_MEMBER | F_COMPACT | F_WIPE, 60},
	{"leader-churn", F_CRASH | F_PART | F_CHURN | F_WIPE, 60},
	{"wipe", F_CRASH | F_PART | F_COMPACT | F_WIPE, 350},
};
#define N_MIXES (int)(sizeof(mixes) / sizeof(mixes[0]))

struct params {
	int nodes;
	const struct mix *mix;
};

static void seed_params(uint64_t seed, struct rng *g, struct params *p)
{
	rng_seed(g, seed * 0x2545f4914f6cdd1dull + 17);
	uint64_t s = rng_range(g, 0, 99);
	p->nodes = s < 10 ? 1 : s < 50 ? 3 : s < 85 ? 5 : 7;
	p->mix = &mixes[rng_range(g, 0, N_MIXES - 1)];
}

static void base_config(struct raft_config *cfg, struct rng *g, bool vary)
{
	raft_config_default(cfg, 0, 0);
	cfg->election_ticks = ELECTION_TICKS;
	cfg->heartbeat_ticks = 1;
	cfg->pre_vote = true;
	cfg->check_quorum = true;
	if (vary) {
		static const uint32_t chunks[] = {16, 64, 4096};
		static const uint32_t inflight[] = {1, 4, 64};
		static const uint64_t msg_bytes[] = {64, 1024, 1 << 20};
		cfg->snapshot_chunk_bytes = chunks[rng_range(g, 0, 2)];
		cfg->max_inflight_msgs = inflight[rng_range(g, 0, 2)];
		cfg->max_msg_bytes = msg_bytes[rng_range(g, 0, 2)];
	}
}

static raft_id random_alive(struct cluster *c, struct rng *g)
{
	raft_id ids[SIM_NODES_MAX];
	int k = 0;
	for (int i = 1; i <= c->max_id; i++)
		if (c->nodes[i].alive)
			ids[k++] = (raft_id)i;
	return k ? ids[rng_range(g, 0, (uint64_t)k - 1)] : 0;
}

/* Any node that believes it leads (a deposed one too: clients do not know better). */
static raft_id any_leader(struct cluster *c, struct rng *g)
{
	raft_id ids[SIM_NODES_MAX];
	int k = 0;
	for (int i = 1; i <= c->max_id; i++)
		if (c->nodes[i].alive && raft_role_of(c->nodes[i].r) == RAFT_LEADER)
			ids[k++] = (raft_id)i;
	return k ? ids[rng_range(g, 0, (uint64_t)k - 1)] : 0;
}

/* Clients: writes mostly to the current leader, sometimes to any node or to a deposed leader;
 * ReadIndex reads to any node that believes it leads, so stale leaders get reads too. */
static void client_step(struct cluster *c, struct rng *g)
{
	raft_id l = cluster_leader(c);
	if (rng_permille(g, 400)) {
		raft_id to = l;
		if (!to || rng_permille(g, 100))
			to = random_alive(c, g);
		else if (rng_permille(g, 200))
			to = any_leader(c, g);
		char op[64];
		snprintf(op, sizeof(op), "put k%d=v%" PRIu64, (int)rng_range(g, 0, 7), c->next_uid);
		if (to)
			cluster_propose(c, to, op, false, NULL);
	}
	if (rng_permille(g, 250)) {
		raft_id to = rng_permille(g, 500) ? any_leader(c, g) : l;
		char key[8];
		snprintf(key, sizeof(key), "k%d", (int)rng_range(g, 0, 7));
		if (to)
			cluster_read(c, to, key);
	}
}

static bool any_lost_state(const struct cluster *c)
{
	for (int i = 1; i <= c->max_id; i++)
		if (cluster_lost_state(c, (raft_id)i))
			return true;
	return false;
}

/* A member of the leader's configuration (alive, as all are after healing) that has not yet
 * applied the liveness proposal or is still recovering lost state (after healing every voter
 * it must hear from is up, so it must recover); also "not converged" while there is no
 * leader. */
static raft_id lagging_member(struct cluster *c, bool *no_leader)
{
	raft_id l = cluster_leader(c);
	*no_leader = l == 0;
	if (!l)
		return 0;
	const struct raft_conf *cf = raft_conf_of(c->nodes[l].r);
	for (uint32_t k = 0; k < cf->n_voters + cf->n_learners; k++) {
		raft_id id = k < cf->n_voters ? cf->voters[k] : cf->learners[k - cf->n_voters];
		if (id >= 1 && id <= SIM_NODES_MAX && c->nodes[id].alive &&
		    (c->nodes[id].sm.applied < c->liveness_index ||
		     raft_recovering(c->nodes[id].r)))
			return id;
	}
	return 0;
}

static void nemesis_partition(struct cluster *c, struct rng *g)
{
	int a[SIM_NODES_MAX], b[SIM_NODES_MAX], na = 0, nb = 0;
	switch (rng_range(g, 0, 4)) {
	case 0: /* heal */
		net_heal(&c->net);
		trace_ev(c, TR_FAULT, 0, 1, 0, 0);
		break;
	case 1: { /* one-way cut */
		int x = (int)rng_range(g, 1, (uint64_t)c->max_id);
		int y = (int)rng_range(g, 1, (uint64_t)c->max_id);
		if (x != y)
			c->net.cut[x][y] = true;
		trace_ev(c, TR_FAULT, 0, 2, (uint64_t)x, (uint64_t)y);
		break;
	}
	case 2: { /* isolate the leader */
		raft_id l = cluster_leader(c);
		if (!l)
			break;
		net_heal(&c->net);
		a[na++] = (int)l;
		for (int i = 1; i <= c->max_id; i++)
			if ((raft_id)i != l)
				b[nb++] = i;
		net_partition(&c->net, a, na, b, nb);
		trace_ev(c, TR_FAULT, 0, 3, l, 0);
		break;
	}
	default: /* random split */
		net_heal(&c->net);
		for (int i = 1; i <= c->max_id; i++) {
			if (rng_permille(g, 500))
				a[na++] = i;
			else
				b[nb++] = i;
		}
		net_partition(&c->net, a, na, b, nb);
		trace_ev(c, TR_FAULT, 0, 4, (uint64_t)na, (uint64_t)nb);
		break;
	}
}

/* A wipe (cluster_wipe): often of the node that last granted a vote or acknowledged an
 * append, as forgetting exactly those is what the recovery rule is about; then it restarts at
 * once or later. cluster_may_wipe refuses a wipe that would lose committed data by
 * definition. */
static void nemesis_wipe(struct cluster *c, struct rng *g)
{
	raft_id v;
	switch (rng_range(g, 0, 2)) {
	case 0:
		v = c->last_granter;
		break;
	case 1:
		v = c->last_acker;
		break;
	default:
		v = (raft_id)rng_range(g, 1, c->boot_conf.n_voters);
		break;
	}
	if (!cluster_may_wipe(c, v))
		return;
	cluster_wipe(c, v);
	if (rng_permille(g, 500))
		cluster_restart(c, v);
}

static void nemesis_crash(struct cluster *c, struct rng *g, bool churn, uint32_t wipe_pm)
{
	if (wipe_pm && rng_permille(g, wipe_pm)) {
		nemesis_wipe(c, g);
		return;
	}
	if (rng_permille(g, 200)) { /* pause a process (the leader half the time) */
		raft_id l = cluster_leader(c);
		raft_id v = l && rng_permille(g, 500) ? l : random_alive(c, g);
		if (v)
			cluster_pause(c, v, c->now + rng_range(g, SIM_TICK, 30 * SIM_TICK));
		return;
	}
	if (rng_permille(g, 500)) {
		raft_id l = cluster_leader(c);
		raft_id v = l && rng_permille(g, churn ? 850 : 400) ? l : random_alive(c, g);
		if (v)
			cluster_crash(c, v);
	} else {
		for (int i = 1; i <= c->max_id; i++)
			if (c->nodes[i].exists && !c->nodes[i].alive && rng_permille(g, 600)) {
				cluster_restart(c, (raft_id)i);
				break;
			}
	}
}

static void nemesis_member(struct cluster *c, struct rng *g)
{
	raft_id l = cluster_leader(c);
	if (!l)
		return;
	const struct raft_conf *conf = raft_conf_of(c->nodes[l].r);
	switch (rng_range(g, 0, 5)) {
	case 0: /* add a learner: a brand new node */
	case 1:
		if (c->max_id < SIM_NODES_MAX - 2)
			cluster_conf_change(c, l, RAFT_CC_ADD_LEARNER, (raft_id)c->max_id + 1);
		break;
	case 2: /* promote a learner */
		if (conf->n_learners && conf->n_voters < 7)
			cluster_conf_change(c, l, RAFT_CC_PROMOTE,
					    conf->learners[rng_range(g, 0, conf->n_learners - 1)]);
		break;
	case 3: { /* remove someone (rarely the leader itself) */
		if (conf->n_voters + conf->n_learners <= 1)
			break;
		uint32_t k = (uint32_t)rng_range(g, 0, conf->n_voters + conf->n_learners - 1);
		raft_id v =
			k < conf->n_voters ? conf->voters[k] : conf->learners[k - conf->n_voters];
		if (v == l && !rng_permille(g, 200))
			break;
		if (k < conf->n_voters && conf->n_voters <= 2)
			break;
		/* with a recovering voter, 2 voters could never elect or commit again */
		if (k < conf->n_voters && conf->n_voters <= 3 && any_lost_state(c))
			break;
		cluster_conf_change(c, l, RAFT_CC_REMOVE, v);
		break;
	}
	default: /* leadership transfer */
		if (conf->n_voters > 1)
			cluster_transfer(c, l, conf->voters[rng_range(g, 0, conf->n_voters - 1)]);
		break;
	}
}

static void nemesis_net(struct cluster *c, struct rng *g)
{
	c->net.loss_pm = (uint32_t)rng_range(g, 0, 250);
	c->net.dup_pm = (uint32_t)rng_range(g, 0, 100);
	c->net.delay_max = rng_range(g, 1, 3 * SIM_TICK);
	trace_ev(c, TR_FAULT, 0, 5, c->net.loss_pm, c->net.dup_pm);
}

void sim_run_seed(uint64_t seed, const struct run_opts *o, struct run_result *res)
{
	struct rng g;
	struct params p;
	seed_params(seed, &g, &p);
	memset(res, 0, sizeof(*res));
	res->nodes = p.nodes;
	res->mix = p.mix->name;
	int f = p.mix->faults;

	struct raft_config cfg;
	base_config(&cfg, &g, true);
	static struct cluster cl;
	struct cluster *c = &cl;
	if (f & F_CHURN) {
		cfg.max_msg_bytes = 1;
		cfg.max_inflight_msgs = (uint32_t)rng_range(&g, 1, 4);
	}
	/* Quiescence in 7 runs of 8, drawn apart from the other choices so they stay what they
	 * were before it was added; the failure detector with it (it is what wakes a quiesced
	 * follower whose leader died). */
	struct rng qg;
	rng_seed(&qg, seed * 0x9e3779b97f4a7c15ull + 29);
	if (!rng_permille(&qg, 125)) {
		cfg.quiesce_ticks = (uint32_t)rng_range(&qg, 1, 2 * ELECTION_TICKS);
	}
	/* Leader leases in half the runs, drawn from a stream of their own as well. */
	struct rng lg;
	rng_seed(&lg, seed * 0xbf58476d1ce4e5b9ull + 31);
	cfg.lease_reads = rng_permille(&lg, 500);
	cluster_init(c, seed, p.nodes, &cfg);
	if (cfg.quiesce_ticks != 0)
		c->detect_ticks = DETECT_TICKS;
	c->trace = o->trace;
	c->net.delay_min = 1;
	c->net.delay_max = f & F_NET ? rng_range(&g, 10, 2 * SIM_TICK) : rng_range(&g, 5, 40);
	c->disk_lat_min = 1;
	c->disk_lat_max = f & F_CRASH ? rng_range(&g, 20, 3 * SIM_TICK) : rng_range(&g, 2, 40);
	if (f & F_CRASH)
		c->crash_written_pm = (uint32_t)rng_range(&g, 0, 600);
	if (f & F_WIPE)
		c->wipe_after_grant_pm = p.mix->wipe_pm / 2;
	if (f & (F_NET | F_PART | F_CHURN))
		c->clock_drift_pm = (uint32_t)rng_range(&g, 0, 200);
	if (cfg.lease_reads) {
		/* drift-free ticks, and a clock kept at the ticks due: the lease's assumption
		 * (lease.c). SIM_LEASE_DRIFT=1 keeps the drift (up to 20%, beyond the margin). */
		c->lease_clock = true;
		if (getenv("SIM_LEASE_DRIFT") == NULL)
			c->clock_drift_pm = 0;
	}
	if (f & F_COMPACT) {
		c->compact_threshold = (int)rng_range(&g, 4, 30);
		c->compact_trailing = (int)rng_range(&g, 0, 3);
	} else {
		c->compact_threshold = rng_permille(&g, 500) ? 60 : 0;
	}
	trace_note(c,
		   "seed %" PRIu64 ": %d nodes, mix %s, net delay <= %" PRIu64
		   ", disk latency <= %" PRIu64 ", compact every %d",
		   seed, p.nodes, p.mix->name, c->net.delay_max, c->disk_lat_max,
		   c->compact_threshold);
	cluster_start(c);

	uint32_t nemesis_pm =
		(uint32_t)(f & F_CHURN ? rng_range(&g, 100, 250) : rng_range(&g, 30, 120));
	uint64_t end = (uint64_t)FAULT_TICKS * SIM_TICK;
	while (!c->failed && c->now < end) {
		cluster_run_until(c, c->now + SLOT);
		if (c->failed)
			break;
		client_step(c, &g);
		if (!rng_permille(&g, nemesis_pm))
			continue;
		int choice[5], k = 0;
		if (f & F_NET)
			choice[k++] = F_NET;
		if (f & F_PART)
			choice[k++] = F_PART;
		if (f & F_CRASH)
			choice[k++] = F_CRASH;
		if (f & F_MEMBER)
			choice[k++] = F_MEMBER;
		if (!k)
			continue;
		switch (choice[rng_range(&g, 0, (uint64_t)k - 1)]) {
		case F_NET:
			nemesis_net(c, &g);
			break;
		case F_PART:
			nemesis_partition(c, &g);
			break;
		case F_CRASH:
			nemesis_crash(c, &g, f & F_CHURN, f & F_WIPE ? p.mix->wipe_pm : 0);
			break;
		case F_MEMBER:
			nemesis_member(c, &g);
			break;
		}
	}

	/* heal: every fault ends, then a leader must appear and a new proposal commit */
	if (!c->failed) {
		net_heal(&c->net);
		c->net.loss_pm = 0;
		c->net.dup_pm = 0;
		if (c->net.delay_max > SIM_TICK / 2)
			c->net.delay_max = SIM_TICK / 2;
		for (int i = 1; i <= c->max_id; i++) {
			if (c->nodes[i].exists && !c->nodes[i].alive)
				cluster_restart(c, (raft_id)i);
			cluster_pause(c, (raft_id)i, 0);
		}
		trace_note(c, "healed: liveness check begins");
		uint64_t healed = c->now, deadline = healed + (uint64_t)LIVENESS_TICKS * SIM_TICK;
		raft_id proposed_on = 0;
		raft_term proposed_term = 0;
		while (!c->failed && !c->liveness_ok && c->now < deadline) {
			cluster_run_until(c, c->now + SLOT);
			raft_id l = cluster_leader(c);
			if (!l || c->failed)
				continue;
			raft_term t = raft_term_of(c->nodes[l].r);
			if (proposed_on == l && proposed_term == t)
				continue; /* wait for that one */
			if (cluster_propose(c, l, "put live=1", true, NULL) == 0) {
				proposed_on = l;
				proposed_term = t;
			}
		}
		if (!c->failed && !c->liveness_ok)
			sim_fail(c,
				 "liveness: %s within %d ticks after healing (leader now: %" PRIu64
				 ")",
				 cluster_leader(c) ? "no proposal made after healing committed"
						   : "no leader elected",
				 LIVENESS_TICKS, cluster_leader(c));
		/* ... and every member catches up with it (replication, snapshots, learners) */
		uint64_t start = c->now, until = start + (uint64_t)CATCHUP_TICKS * SIM_TICK;
		uint64_t cap = start + (uint64_t)CATCHUP_WIPED_TICKS * SIM_TICK;
		raft_index wiped_applied = 0;
		raft_id lag = 0;
		bool no_leader = false;
		while (!c->failed && c->liveness_ok) {
			lag = lagging_member(c, &no_leader);
			if (!lag && !no_leader)
				break;
			/* A wiped node fetches the whole log again, in leader-churn one entry per
			 * message from a slow disk: it gets more time as long as it progresses. */
			raft_index w = 0;
			for (int i = 1; i <= c->max_id; i++)
				if (c->nodes[i].wipes && c->nodes[i].alive)
					w += c->nodes[i].sm.applied;
			if (w > wiped_applied) {
				wiped_applied = w;
				uint64_t t = c->now + (uint64_t)CATCHUP_TICKS * SIM_TICK;
				until = t > until ? (t < cap ? t : cap) : until;
			}
			if (c->now >= until)
				break;
			cluster_run_until(c, c->now + SLOT);
		}
		int waited = (int)((c->now - start) / SIM_TICK);
		if (!c->failed && c->liveness_ok && lag && raft_recovering(c->nodes[lag].r))
			sim_fail(c,
				 "liveness: node %" PRIu64
				 " is still recovering lost state (%s) %d "
				 "ticks after index %" PRIu64
				 " committed after healing (applied %" PRIu64 ")",
				 lag,
				 raft_recovery_fenced(c->nodes[lag].r)
					 ? "fenced, not caught up"
					 : "not fenced: a voter's term answer is missing",
				 waited, c->liveness_index, c->nodes[lag].sm.applied);
		if (!c->failed && c->liveness_ok && (lag || no_leader))
			sim_fail(c,
				 "liveness: %s%" PRIu64 " has not applied index %" PRIu64
				 " (committed after healing) %d ticks later",
				 no_leader ? "no leader; node " : "node ", lag, c->liveness_index,
				 waited);
	}
	/* Then the cluster idles (the group quiesces), and its leader dies: the others must elect
	 * a new one and commit again within the liveness bound, woken by their failure detector
	 * (raft/quiesce.c) if they were quiesced. */
	bool quiet_leader = false;
	if (!c->failed && c->liveness_ok) {
		c->wipe_after_grant_pm = 0; /* one node down: no other may lose its state now */
		cluster_run_until(c, c->now + (uint64_t)QUIET_TICKS * SIM_TICK);
		raft_id l = cluster_leader(c);
		quiet_leader = l != 0 && raft_quiesced(c->nodes[l].r);
		if (l != 0 && raft_conf_of(c->nodes[l].r)->n_voters >= 3) {
			trace_note(c, "quiet: the leader crashes");
			cluster_crash(c, l);
			c->liveness_ok = false;
			uint64_t deadline = c->now + (uint64_t)LIVENESS_TICKS * SIM_TICK;
			raft_id proposed_on = 0;
			raft_term proposed_term = 0;
			while (!c->failed && !c->liveness_ok && c->now < deadline) {
				cluster_run_until(c, c->now + SLOT);
				raft_id nl = cluster_leader(c);
				if (!nl || c->failed)
					continue;
				raft_term t = raft_term_of(c->nodes[nl].r);
				if (proposed_on == nl && proposed_term == t)
					continue;
				if (cluster_propose(c, nl, "put live=2", true, NULL) == 0) {
					proposed_on = nl;
					proposed_term = t;
				}
			}
			if (!c->failed && !c->liveness_ok)
				sim_fail(c,
					 "liveness: %s within %d ticks after the idle leader "
					 "%" PRIu64 " (%s) crashed",
					 cluster_leader(c) ? "nothing committed"
							   : "no leader elected",
					 LIVENESS_TICKS, l, quiet_leader ? "quiesced" : "awake");
		}
	}
	uint64_t quiesces = 0;
	for (int i = 1; i <= c->max_id; i++)
		quiesces += c->nodes[i].quiesces;
	if (c->failed && c->trace)
		cluster_dump(c, c->trace_out ? c->trace_out : stdout);
	res->ok = !c->failed;
	snprintf(res->failure, sizeof(res->failure), "%s", c->failure);
	res->trace_hash = c->trace_hash;
	res->steps = c->steps;
	res->end_time = c->now;
	const struct invariants *v = &c->inv;
	snprintf(res->stats, sizeof(res->stats),
		 "writes acked %" PRIu64 ", reads %" PRIu64 " (+%" PRIu64 " dropped), msgs %" PRIu64
		 " (lost %" PRIu64 ", dup %" PRIu64 "), crashes %" PRIu64 " (wipes %" PRIu64
		 "), conf changes %" PRIu64 ", transfers %" PRIu64 ", compactions %" PRIu64
		 ", snapshots installed %" PRIu64
		 ", after healing committed and applied everywhere: index %" PRIu64
		 ", quiesce %" PRIu32 " ticks: %" PRIu64 " quiesces%s, lease reads %s%" PRIu64,
		 v->acked, v->reads_done, v->reads_dropped, c->net.sent, c->net.lost,
		 c->net.duplicated, v->crashes, v->wipes, v->conf_changes, v->transfers,
		 v->compactions, v->installs, c->liveness_index, cfg.quiesce_ticks, quiesces,
		 quiet_leader ? ", leader quiesced when it crashed" : "",
		 cfg.lease_reads ? "on: " : "off: ", c->lease_reads);
	cluster_destroy(c);
}

void sim_params_of(uint64_t seed, int *nodes, const char **mix)
{
	struct rng g;
	struct params p;
	seed_params(seed, &g, &p);
	*nodes = p.nodes;
	*mix = p.mix->name;
}

bool sim_elect_once(uint64_t seed, uint64_t *ticks_taken)
{
	struct rng g;
	rng_seed(&g, seed ^ 0xe1ec7);
	struct raft_config cfg;
	base_config(&cfg, &g, false);
	static struct cluster cl;
	struct cluster *c = &cl;
	cluster_init(c, seed, 3, &cfg);
	c->net.delay_min = 1;
	c->net.delay_max = 20;
	c->disk_lat_min = 1;
	c->disk_lat_max = 20;
	cluster_start(c);
	uint64_t limit = 2ull * ELECTION_TICKS * SIM_TICK;
	bool ok = false;
	while (!c->failed && c->now < limit) {
		cluster_run_until(c, c->now + SIM_TICK / 10);
		if (cluster_leader(c)) {
			ok = true;
			break;
		}
	}
	*ticks_taken = c->now / SIM_TICK;
	ok = ok && !c->failed;
	cluster_destroy(c);
	return ok;
}
