/* test_recovery.c — replicas that lost or damaged their state rejoin as recovering replicas
 * (raft/recovery.c, node/restore.c): a follower's and a leader's data directory emptied while
 * writes go on, a record in the middle of a stopped follower's WAL corrupted, and an ordinary
 * kill -9 restart that must not be treated as a recovery. Every acknowledged write is tracked;
 * while a rebuilt node catches up it is polled with reads that must never miss one, and its log
 * must show that it led no group before it had recovered it.
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kv/ring.h"
#include "tests/integration/cluster.h"

#define GROUPS      4
#define OK          RINGRAFT__KV__CODE__OK
#define NOT_FOUND   RINGRAFT__KV__CODE__NOT_FOUND
#define NOT_LEADER  RINGRAFT__KV__CODE__NOT_LEADER
#define WRITES_MAX  1200
#define CONVERGE_MS 20000 /* a rebuilt node's digests equal the others' this soon after restart */

/* ------------------------------------------------------------------------------ fixture */
static struct cluster *c;

/* Every acknowledged write: each key is written once, so its value never changes. */
struct write {
	char key[32];
	char val[48];
	uint32_t group;
};
static struct write acked[WRITES_MAX];
static int n_acked;

static void start(uint64_t snapshot_entries)
{
	struct cluster_opts o;
	cluster_opts_default(&o);
	o.groups = GROUPS;
	o.snapshot_entries = snapshot_entries;
	n_acked = 0;
	c = cluster_start(&o);
	ck_assert_msg(c != NULL, "cluster did not start");
}

static void teardown(void)
{
	cluster_teardown(&c);
}

/* How the polled node answered reads while it caught up. */
struct reads {
	int ok, not_leader, unanswered;
};

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------------------ assertions */

/* Writes one new key through any node but `avoid` (retrying through leader changes) and
 * records it once acknowledged. */
static void put_acked(const char *prefix, int avoid)
{
	ck_assert_int_lt(n_acked, WRITES_MAX);
	struct write *w = &acked[n_acked];
	snprintf(w->key, sizeof w->key, "%s%05d", prefix, n_acked);
	snprintf(w->val, sizeof w->val, "%s-value-%d", prefix, n_acked);
	struct kv_ring *ring = kv_ring_new(GROUPS, 128, 1); /* the ring cluster_start makes */
	w->group = kv_ring_group_of(ring, w->key, strlen(w->key));
	kv_ring_free(ring);
	uint64_t deadline = cluster_now_ms() + 8000;
	for (int attempt = 0; cluster_now_ms() < deadline; attempt++) {
		int node = 1 + attempt % CLUSTER_NODES;
		if (node == avoid || !cluster_running(c, node))
			continue;
		/* a timed-out attempt may have happened: the retry writes the same value */
		if (cluster_put(c, node, w->key, w->val, 1000) == OK) {
			n_acked++;
			return;
		}
	}
	ck_abort_msg("write %s not acknowledged within 8 s", w->key);
}

static void put_many(const char *prefix, int n, int avoid)
{
	for (int i = 0; i < n; i++)
		put_acked(prefix, avoid);
}

/* One read of acknowledged write i from `node`: an answer must be the written value; a
 * recovering replica may refuse a serializable read (NOT_LEADER with a hint). */
static void read_one(int node, int i, bool serializable, struct reads *st)
{
	char *got = NULL;
	int code = cluster_get(c, node, acked[i].key, &got, serializable, 300);
	ck_assert_msg(code != NOT_FOUND, "node %d answered NOT_FOUND to a %s read of %s (acked)",
		      node, serializable ? "serializable" : "linearizable", acked[i].key);
	if (code == OK) {
		ck_assert_msg(strcmp(got, acked[i].val) == 0,
			      "node %d answered %s = '%s', acked '%s' (%s read)", node,
			      acked[i].key, got, acked[i].val,
			      serializable ? "serializable" : "linearizable");
		st->ok++;
	} else if (code == NOT_LEADER) {
		st->not_leader++;
	} else {
		st->unanswered++; /* timeout, unavailable, connection refused: no answer */
	}
	free(got);
}

/* Every acknowledged write, read from `node` (serializable: its own state) or through any
 * node (linearizable, node 0). */
static void read_back_all(int node)
{
	for (int i = 0; i < n_acked; i++) {
		int code = -1;
		char *got = NULL;
		uint64_t deadline = cluster_now_ms() + 5000;
		for (int attempt = 0; code != OK && cluster_now_ms() < deadline; attempt++) {
			free(got);
			got = NULL;
			int via = node != 0 ? node : 1 + attempt % CLUSTER_NODES;
			code = cluster_get(c, via, acked[i].key, &got, node != 0, 1000);
			ck_assert_msg(code != NOT_FOUND, "acknowledged write %s lost (node %d)",
				      acked[i].key, via);
		}
		ck_assert_msg(code == OK, "acknowledged write %s unreadable (code %d)",
			      acked[i].key, code);
		ck_assert_str_eq(got, acked[i].val);
		free(got);
	}
}

/* The node's status: how many groups say recovering (-1 if it did not answer). */
static int groups_recovering(int node, bool which[GROUPS + 1])
{
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__STATUS;
	Ringraft__Kv__Response *rs;
	if (cluster_call(c, node, &rq, &rs, 1000) < 0)
		return -1;
	if (rs->status == NULL) {
		ringraft__kv__response__free_unpacked(rs, NULL);
		return -1;
	}
	int n = 0;
	for (size_t i = 0; i < rs->status->n_groups; i++) {
		Ringraft__Kv__GroupStatus *gs = rs->status->groups[i];
		if (which != NULL && gs->group >= 1 && gs->group <= GROUPS)
			which[gs->group] = gs->recovering;
		n += gs->recovering;
	}
	ringraft__kv__response__free_unpacked(rs, NULL);
	return n;
}

/* Waits until no group of the node says recovering; false after timeout_ms. */
static bool wait_recovered(int node, int timeout_ms)
{
	uint64_t deadline = cluster_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
	do {
		if (groups_recovering(node, NULL) == 0)
			return true;
		sleep_ms(20);
	} while (cluster_now_ms() < deadline);
	return false;
}

static int log_lines(int node)
{
	FILE *f = fopen(cluster_log_path(c, node), "r");
	if (f == NULL)
		return 0;
	int n = 0, ch;
	while ((ch = fgetc(f)) != EOF)
		n += ch == '\n';
	fclose(f);
	return n;
}

/* Calls fn(line, arg) for each line of the node's log after its first `from` lines. */
static void log_scan(int node, int from, void (*fn)(const char *line, void *arg), void *arg)
{
	FILE *f = fopen(cluster_log_path(c, node), "r");
	ck_assert_ptr_nonnull(f);
	char line[2048];
	for (int i = 0; fgets(line, sizeof line, f) != NULL; i++)
		if (i >= from)
			fn(line, arg);
	fclose(f);
}

/* A log line is "L TIME nNODE GROUP message...": its group (0 for "-") and time. */
static uint32_t line_group(const char *line)
{
	const char *p = line;
	for (int field = 0; field < 3 && p != NULL; field++) {
		p = strchr(p, ' ');
		p = p != NULL ? p + 1 : NULL;
	}
	return p != NULL && *p == 'g' ? (uint32_t)strtoul(p + 1, NULL, 10) : 0;
}

static void line_time(const char *line, char out[32])
{
	snprintf(out, 32, "%.24s", line + 2); /* 2026-12-05T14:16:16.123Z */
}

/* A rebuilt node's log after its restart: per group, when it recovered, and whether it was
 * candidate or leader before. */
struct recovery_log {
	bool recovered[GROUPS + 1];
	char recovered_at[GROUPS + 1][32];
	int led_before[GROUPS + 1]; /* candidate/leader lines before "replica recovered" */
	int damaged[GROUPS + 1];
	int started_recovering[GROUPS + 1]; /* "replica recovering" (restore: no Raft state) */
	int recovering_lines; /* "replica recovering", "replica still recovering", "replica damaged"
			       */
	int snapshots_installed;
	int new_dir; /* "data directory incarnation=... (new)" */
};

static void recovery_line(const char *line, void *arg)
{
	struct recovery_log *rl = arg;
	uint32_t g = line_group(line);
	if (strstr(line, "snapshot installed") != NULL)
		rl->snapshots_installed++;
	if (strstr(line, "data directory incarnation=") != NULL && strstr(line, "(new)") != NULL)
		rl->new_dir++;
	if (strstr(line, "replica recovering") != NULL ||
	    strstr(line, "replica still recovering") != NULL ||
	    strstr(line, "replica damaged") != NULL)
		rl->recovering_lines++;
	if (g < 1 || g > GROUPS)
		return;
	if (strstr(line, "replica damaged") != NULL)
		rl->damaged[g]++;
	if (strstr(line, "replica recovering") != NULL)
		rl->started_recovering[g]++;
	if (strstr(line, "replica recovered") != NULL && !rl->recovered[g]) {
		rl->recovered[g] = true;
		line_time(line, rl->recovered_at[g]);
	}
	if (!rl->recovered[g] &&
	    (strstr(line, "role=leader") != NULL || strstr(line, "role=candidate") != NULL ||
	     strstr(line, "role=precandidate") != NULL))
		rl->led_before[g]++;
}

/* Another node's log: leadership it tried to hand to the rebuilt node before it recovered. */
struct transfer_scan {
	const struct recovery_log *rl;
	char needle[2][48];
	int early;
};

static void transfer_line(const char *line, void *arg)
{
	struct transfer_scan *ts = arg;
	uint32_t g = line_group(line);
	if (g < 1 || g > GROUPS)
		return;
	if (strstr(line, ts->needle[0]) == NULL && strstr(line, ts->needle[1]) == NULL)
		return;
	char at[32];
	line_time(line, at);
	if (!ts->rl->recovered[g] || strcmp(at, ts->rl->recovered_at[g]) < 0) {
		fprintf(stderr, "recovery: transfer before the target recovered: %s", line);
		ts->early++;
	}
}

/* Reads the node's log after its first `from` lines. */
static void scan_recovery(int node, int from, struct recovery_log *rl)
{
	memset(rl, 0, sizeof *rl);
	log_scan(node, from, recovery_line, rl);
}

/* Group g of the rebuilt node `node` (rl: its log since the restart) recovered, and neither
 * campaigned or led before, nor was any other node's leadership of g handed to it before
 * (their logs from the line numbers in from[]). */
static void assert_recovered_without_leading(int node, const int from[CLUSTER_NODES + 1],
					     const struct recovery_log *rl, uint32_t g)
{
	if (!rl->recovered[g])
		cluster_dump_logs(c, 60);
	ck_assert_msg(rl->recovered[g], "node %d: no \"replica recovered\" for group %u", node, g);
	ck_assert_msg(rl->led_before[g] == 0,
		      "node %d campaigned or led group %u before it had recovered it", node, g);
	struct transfer_scan ts = {.rl = rl};
	snprintf(ts.needle[0], sizeof ts.needle[0], "leadership transfer to=%d ", node);
	snprintf(ts.needle[1], sizeof ts.needle[1], "handoff to=%d ", node);
	for (int other = 1; other <= CLUSTER_NODES; other++)
		if (other != node)
			log_scan(other, from[other], transfer_line, &ts);
	ck_assert_msg(ts.early == 0, "%d leadership transfer(s) to node %d before it recovered",
		      ts.early, node);
}

static void read_incarnation(int node, char out[64])
{
	char path[600];
	snprintf(path, sizeof path, "%s/incarnation", cluster_data_dir(c, node));
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(out, 64, f));
	fclose(f);
}

/* ------------------------------------------------------------------------------ scenarios */

/* Asks (through another node, which forwards it to the leader) to move group g's leadership
 * to `target`. Returns the response code, -1 without an answer. */
static int transfer_leader(uint32_t g, int target)
{
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__TRANSFER_LEADER;
	rq.group = g;
	rq.target = (uint64_t)target;
	Ringraft__Kv__Response *rs;
	if (cluster_call(c, target % CLUSTER_NODES + 1, &rq, &rs, 1000) < 0)
		return -1;
	int code = rs->code;
	ringraft__kv__response__free_unpacked(rs, NULL);
	return code;
}

/* Moves every group node `node` leads to another node and waits until it leads none. */
static void lead_nothing(int node)
{
	uint64_t deadline = cluster_now_ms() + 10000;
	for (uint32_t g = 1; g <= GROUPS; g++) {
		while (cluster_leader_of(c, g, 5000) == (uint64_t)node) {
			ck_assert_msg(cluster_now_ms() < deadline, "node %d keeps leading group %u",
				      node, g);
			transfer_leader(g, node % CLUSTER_NODES + 1);
			sleep_ms(100);
		}
	}
}

/* The wiped-directory scenario: ~1,000 acknowledged writes; after the first 300 the victim
 * (the leader of group 1, or node 3 once it leads nothing) is killed, its data directory
 * emptied, and after 200 more it restarts with its first-start flags and is polled with
 * serializable and linearizable reads while 500 more go on. */
static void wipe_during_writes(bool leader)
{
	put_many("pre", 300, 0);
	int victim = 3;
	if (leader)
		victim = (int)cluster_leader_of(c, 1, 5000);
	else
		lead_nothing(victim);
	ck_assert_int_ne(victim, 0);
	char old_incarnation[64], now_incarnation[64];
	read_incarnation(victim, old_incarnation);

	cluster_kill(c, victim);
	put_many("down", 200, victim);
	/* the survivors compacted their logs (at the maintenance turn after a checkpoint: the
	 * writes can be quicker), so the victim needs InstallSnapshot to catch up */
	for (int i = 1; i <= CLUSTER_NODES; i++)
		ck_assert_msg(i == victim || cluster_wait_log(c, i, "log compacted", 1, 20000),
			      "node %d did not compact its logs within 20 s", i);
	ck_assert_int_eq(cluster_wipe(c, victim), 0);
	int from[CLUSTER_NODES + 1];
	for (int i = 1; i <= CLUSTER_NODES; i++)
		from[i] = log_lines(i);
	uint64_t t0 = cluster_now_ms();
	ck_assert_int_eq(cluster_restart_fresh(c, victim), 0);
	int before_restart = n_acked;
	/* Its client port first (bounded: 10 s): on a quiet machine the loop below can end
	 * before the restarted kvd listens, and then polls nothing. Any answer will do, an
	 * UNAVAILABLE while it recovers included: it has barely started catching up. */
	int answer = -1;
	for (uint64_t d = cluster_now_ms() + 10000; answer == -1 && cluster_now_ms() < d;) {
		char *got = NULL;
		answer = cluster_get(c, victim, acked[0].key, &got, true, 300);
		free(got);
		if (answer == -1)
			usleep(20 * 1000);
	}
	ck_assert_msg(answer != -1, "node %d did not answer on its client port within 10 s of "
				    "its restart", victim);

	struct reads ser = {0}, lin = {0};
	unsigned seed = (unsigned)t0;
	int polls_recovering = 0, transfers_refused = 0;
	/* 500 rounds, and on until it has answered each kind of read once (bounded: half the
	 * convergence budget): until its peer links are up, a read it must forward fails at
	 * once (UNAVAILABLE, "not sent"), so 500 rounds can all pass before the links are, on a
	 * loaded machine (CI saw 500 of 500 unanswered; locally 0-456). */
	for (int i = 0; i < 500 || ((ser.ok + ser.not_leader == 0 || lin.ok == 0) &&
				    cluster_now_ms() < t0 + CONVERGE_MS / 2);
	     i++) {
		/* reads first: the first ones come while it has barely started catching up.
		 * Serializable: only writes acknowledged before the restart must be there once it
		 * serves again; linearizable: every write acknowledged so far. */
		read_one(victim, rand_r(&seed) % before_restart, true, &ser);
		read_one(victim, rand_r(&seed) % n_acked, false, &lin);
		if (i < 500)
			put_acked("catchup", victim);
		bool which[GROUPS + 1] = {false};
		if (i % 10 == 0 && groups_recovering(victim, which) > 0) {
			polls_recovering++;
			/* ask for it as leader: the log check below says whether it ever led */
			for (uint32_t g = 1; g <= GROUPS; g++)
				if (which[g])
					transfers_refused += transfer_leader(g, victim) != OK;
		}
	}
	int left = CONVERGE_MS - (int)(cluster_now_ms() - t0);
	ck_assert_msg(left > 0, "the writes alone took %d ms", CONVERGE_MS - left);
	ck_assert_msg(cluster_wait_digests_equal(c, left) == 0 &&
			      wait_recovered(victim, CONVERGE_MS - (int)(cluster_now_ms() - t0)),
		      "node %d did not converge and recover within %d ms of its restart", victim,
		      CONVERGE_MS);
	fprintf(stderr,
		"recovery: node %d wiped, converged %llu ms after restart; serializable reads "
		"ok=%d "
		"not_leader=%d unanswered=%d, linearizable ok=%d not_leader=%d unanswered=%d, "
		"status polls that saw it recovering: %d, transfers to it refused: %d\n",
		victim, (unsigned long long)(cluster_now_ms() - t0), ser.ok, ser.not_leader,
		ser.unanswered, lin.ok, lin.not_leader, lin.unanswered, polls_recovering,
		transfers_refused);

	struct recovery_log rl;
	scan_recovery(victim, from[victim], &rl);
	for (uint32_t g = 1; g <= GROUPS; g++) {
		ck_assert_msg(rl.started_recovering[g] == 1,
			      "node %d did not say group %u starts recovering", victim, g);
		assert_recovered_without_leading(victim, from, &rl, g);
	}
	ck_assert_int_eq(groups_recovering(victim, NULL), 0);
	ck_assert_msg(rl.snapshots_installed > 0, "node %d caught up without InstallSnapshot",
		      victim);
	ck_assert_int_eq(rl.new_dir, 1);
	read_incarnation(victim, now_incarnation);
	ck_assert_str_ne(now_incarnation, old_incarnation);
	/* it answered reads at all (the polling exercised something) */
	ck_assert_int_gt(ser.ok + ser.not_leader, 0);
	ck_assert_int_gt(lin.ok, 0);

	read_back_all(victim); /* its own state holds every acknowledged write */
	read_back_all(0);
}

/* ------------------------------------------------------------------------------ tests */

/* (a) */
START_TEST(test_follower_dir_emptied_during_writes)
{
	start(64);
	wipe_during_writes(false);
}
END_TEST

/* (b) */
START_TEST(test_leader_dir_emptied_during_writes)
{
	start(64);
	wipe_during_writes(true);
}
END_TEST

/* (c) a damaged value in LMDB: TODO once values carry checksums (the state machine then
 * notices the damage and the replica is rebuilt as in (d)). */

/* (d) */

/* An ENTRIES record of `walctl dump` (segment, offset, group, payload bytes), and the groups
 * with a record in its batch (bit g): recovery skips a damaged batch whole, so all of them
 * lose records (wal/recover.c, salvage_groups). */
struct wal_spot {
	char segment[64];
	long offset;
	uint32_t group;
	uint32_t bytes;
	uint32_t batch_groups;
	int batch;
};

/* From `walctl dump` of the WAL in wal_dir: the middle one of the ENTRIES records that carry
 * a client command (more than a no-op's 32 bytes) in a batch that leaves some group intact;
 * records of every group follow it. */
static void pick_wal_record(const char *wal_dir, struct wal_spot *out)
{
	const char *bin = getenv("RINGRAFT_BIN");
	char cmd[900], line[512];
	snprintf(cmd, sizeof cmd, "'%s/walctl' dump '%s'", bin && *bin ? bin : "bin", wal_dir);
	FILE *p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	enum { SPOTS_MAX = 8192, BATCHES_MAX = 65536 };
	static struct wal_spot spots[SPOTS_MAX];
	static uint32_t batch_groups[BATCHES_MAX];
	int n = 0, batch = -1;
	memset(batch_groups, 0, sizeof batch_groups);
	while (fgets(line, sizeof line, p) != NULL) {
		struct wal_spot w = {.batch = batch};
		char type[16];
		unsigned group;
		if (sscanf(line, "%63s %ld %15s", w.segment, &w.offset, type) != 3)
			continue;
		if (strcmp(type, "batch") == 0) {
			batch++;
			ck_assert_int_lt(batch, BATCHES_MAX);
			continue;
		}
		const char *gp = strstr(line, " group=");
		if (gp == NULL || sscanf(gp, " group=%u", &group) != 1 || group > GROUPS ||
		    batch < 0)
			continue;
		batch_groups[batch] |= 1u << group;
		w.group = group;
		if (strcmp(type, "entries") == 0 && n < SPOTS_MAX &&
		    sscanf(gp, " group=%*u index=%*u..%*u bytes=%u", &w.bytes) == 1 && w.bytes > 64)
			spots[n++] = w;
	}
	ck_assert_int_eq(pclose(p), 0);
	int usable = 0;
	for (int i = 0; i < n; i++) {
		spots[i].batch_groups = batch_groups[spots[i].batch];
		if (spots[i].batch_groups != ((1u << (GROUPS + 1)) - 2))
			spots[usable++] = spots[i];
	}
	ck_assert_msg(usable >= 3, "only %d usable ENTRIES records in %s", usable, wal_dir);
	*out = spots[usable / 2];
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Inverts 4 bytes in the data of the record's first entry (docs/WAL.md: 20-byte record
 * header, 16-byte ENTRIES header, 16-byte entry header, then the entry's data). */
static void corrupt_entry(const char *wal_dir, const struct wal_spot *w)
{
	char path[800];
	snprintf(path, sizeof path, "%s/%s", wal_dir, w->segment);
	int fd = open(path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	uint8_t h[52], b[4];
	ck_assert_int_eq(pread(fd, h, sizeof h, w->offset), (ssize_t)sizeof h);
	ck_assert_uint_eq(le32(h), w->bytes);        /* the record's payload length */
	ck_assert_uint_ge(le32(h + 20 + 16 + 8), 8); /* the first entry's data length */
	off_t at = w->offset + 52 + 2;
	ck_assert_int_eq(pread(fd, b, sizeof b, at), (ssize_t)sizeof b);
	for (int i = 0; i < 4; i++)
		b[i] ^= 0xff;
	ck_assert_int_eq(pwrite(fd, b, sizeof b, at), (ssize_t)sizeof b);
	ck_assert_int_eq(fsync(fd), 0);
	close(fd);
}

START_TEST(test_follower_wal_record_corrupted)
{
	start(0); /* no compaction: the whole history stays in the WAL */
	const int victim = 3;
	put_many("wal", 300, 0);
	int before_stop = n_acked;
	ck_assert_int_eq(cluster_term(c, victim), 0); /* hands its leaderships off */
	put_many("stopped", 100, victim);

	char wal_dir[600];
	snprintf(wal_dir, sizeof wal_dir, "%s/wal", cluster_data_dir(c, victim));
	struct wal_spot w;
	pick_wal_record(wal_dir, &w);
	corrupt_entry(wal_dir, &w);
	const uint32_t damaged = w.batch_groups; /* bit g: group g lost records */
	fprintf(stderr,
		"recovery: corrupted %s offset %ld (group %u, %u bytes; groups in its batch: "
		"%#x)\n",
		w.segment, w.offset, w.group, w.bytes, damaged);
	const char *bin = getenv("RINGRAFT_BIN");
	char cmd[900];
	snprintf(cmd, sizeof cmd, "'%s/walctl' verify '%s' >/dev/null", bin && *bin ? bin : "bin",
		 wal_dir);
	int st = system(cmd);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 1, "walctl verify saw no corruption");

	int from[CLUSTER_NODES + 1];
	for (int i = 1; i <= CLUSTER_NODES; i++)
		from[i] = log_lines(i);
	uint64_t t0 = cluster_now_ms();
	ck_assert_msg(cluster_restart(c, victim) == 0, "node %d refused to start", victim);

	/* Its intact groups serve at once (writes acknowledged well before the stop are in its
	 * own state machine); the damaged one refuses serializable reads until it is rebuilt. */
	bool which[GROUPS + 1] = {false};
	ck_assert_int_ge(groups_recovering(victim, which), 0);
	for (uint32_t g = 1; g <= GROUPS; g++) {
		if (!(damaged & 1u << g) && which[g])
			cluster_dump_logs(c, 40);
		ck_assert_msg((damaged & 1u << g) || !which[g], "intact group %u is recovering", g);
	}
	struct reads intact = {0}, rebuilt = {0};
	for (int i = 0; i < before_stop - 20; i++) {
		if (!(damaged & 1u << acked[i].group)) {
			char *got = NULL;
			int code = cluster_get(c, victim, acked[i].key, &got, true, 1000);
			ck_assert_msg(code == OK, "intact group %u of node %d: read of %s gave %d",
				      acked[i].group, victim, acked[i].key, code);
			ck_assert_str_eq(got, acked[i].val);
			free(got);
			intact.ok++;
		} else {
			read_one(victim, i, true, &rebuilt);
		}
	}
	put_many("after", 100, 0);
	int left = CONVERGE_MS - (int)(cluster_now_ms() - t0);
	ck_assert_msg(left > 0 && cluster_wait_digests_equal(c, left) == 0 &&
			      wait_recovered(victim, CONVERGE_MS - (int)(cluster_now_ms() - t0)),
		      "node %d did not converge and recover within %d ms of its restart", victim,
		      CONVERGE_MS);
	fprintf(stderr,
		"recovery: WAL-damaged node converged %llu ms after restart; intact groups' reads "
		"ok=%d, damaged groups' ok=%d not_leader=%d unanswered=%d\n",
		(unsigned long long)(cluster_now_ms() - t0), intact.ok, rebuilt.ok,
		rebuilt.not_leader, rebuilt.unanswered);

	struct recovery_log rl;
	scan_recovery(victim, from[victim], &rl);
	ck_assert_int_gt(cluster_log_grep(c, victim, "WAL damaged"), 0);
	for (uint32_t g = 1; g <= GROUPS; g++) {
		if (damaged & 1u << g) {
			ck_assert_msg(rl.damaged[g] > 0, "no \"replica damaged\" for group %u", g);
			assert_recovered_without_leading(victim, from, &rl, g);
		} else {
			ck_assert_msg(rl.damaged[g] == 0 && !rl.recovered[g],
				      "intact group %u was rebuilt", g);
		}
	}
	ck_assert_int_eq(groups_recovering(victim, NULL), 0);
	read_back_all(victim);
	read_back_all(0);
}
END_TEST

/* (g) kill -9 with the data directory intact: an ordinary restart, nothing rebuilt. */
START_TEST(test_kill9_restart_is_not_a_recovery)
{
	start(64);
	const int victim = 2;
	put_many("plain", 200, 0);
	char old_incarnation[64], now_incarnation[64];
	read_incarnation(victim, old_incarnation);
	cluster_kill(c, victim);
	put_many("down", 100, victim);
	int from[CLUSTER_NODES + 1];
	for (int i = 1; i <= CLUSTER_NODES; i++)
		from[i] = log_lines(i);
	ck_assert_int_eq(cluster_restart(c, victim), 0);
	/* from its first answer on, no group says recovering */
	uint64_t t0 = cluster_now_ms();
	int polls = 0;
	while (cluster_now_ms() < t0 + 1000) {
		int r = groups_recovering(victim, NULL);
		ck_assert_msg(r <= 0, "%d group(s) of node %d recovering after a plain restart", r,
			      victim);
		polls += r == 0;
	}
	ck_assert_int_gt(polls, 0);
	put_many("after", 100, 0);
	ck_assert_int_eq(cluster_wait_digests_equal(c, CONVERGE_MS), 0);
	struct recovery_log rl;
	scan_recovery(victim, from[victim], &rl);
	ck_assert_msg(rl.recovering_lines == 0, "node %d logged a recovery after a plain restart",
		      victim);
	for (uint32_t g = 1; g <= GROUPS; g++)
		ck_assert(!rl.recovered[g]);
	ck_assert_int_eq(rl.new_dir, 0);
	read_incarnation(victim, now_incarnation);
	ck_assert_str_eq(now_incarnation, old_incarnation);
	read_back_all(victim);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("recovery");
	struct {
		const char *name;
		const TTest *test;
	} cases[] = {
		{"follower wiped", test_follower_dir_emptied_during_writes},
		{"leader wiped", test_leader_dir_emptied_during_writes},
		{"wal damaged", test_follower_wal_record_corrupted},
		{"plain restart", test_kill9_restart_is_not_a_recovery},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		TCase *tc = tcase_create(cases[i].name);
		tcase_add_checked_fixture(tc, NULL, teardown);
		tcase_set_timeout(tc, 120);
		tcase_add_test(tc, cases[i].test);
		suite_add_tcase(s, tc);
	}
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
