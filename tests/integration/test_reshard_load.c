/* test_reshard_load.c — a ring change under load (issue 18; docs/DESIGN-NOTES.md
 * "Resharding"): three kvd nodes with 4 groups hold 100,000 keys; 64 clients, each the only
 * writer of its own keys, keep writing and reading them while `kvctl groups add` moves about
 * 1/(G+1) of the keys to a new group and, later, `kvctl groups remove` moves them back. Every
 * write is retried until it is definite, so each key's last acknowledged value is known (half
 * the operations go to keys that move, so that each move's short freeze sees many); a read
 * during a move must return exactly that value (never "not found", never an older one), and
 * once the change is "complete" every key reads back with it. The keys the new group holds are
 * counted by scanning it: exactly the keys the new ring gives it, within 20% of 1/(G+1), as is
 * its share in `kvctl groups -o json`; and after each change every group comes to hold exactly
 * the keys its ring gives it (the sources drop what they gave away, nothing is held twice). The
 * wait for "complete" is bounded (RINGRAFT_RESHARD_WAIT_S, default 60 s): without the driver that
 * moves keys, the change stays "moving" and the test fails saying so. Then the same again (a
 * second new group) with the meta group's leader, which drives the change, stopped (SIGSTOP)
 * for 4 s in the middle of each change; after every change the replicas of every bootstrap
 * group must agree (state digests). A kvd whose source kept
 * taking writes after its fence (kv/apply.c's fence check off) lost 7 and 8 acknowledged writes
 * in the add phase of two runs, and the test failed on them.
 */
#include <check.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "cli/client.h"
#include "kv/ring.h"
#include "tests/integration/cluster.h"

#define GROUPS      4
#define META        (GROUPS + 1) /* the meta group; the first added group is META + 1 */
#define VNODES      128          /* the points per group kvd uses */
#define KEYS        100000
#define CLIENTS     64
#define BATCH       2000  /* keys per MSET of the initial load */
#define CALL_MS     10000 /* one client call's deadline, retries included */
#define DEFINITE_MS 60000 /* a write is retried until definite for at most this long */

static struct cluster *c;

static void setup(void)
{
	struct cluster_opts o;
	cluster_opts_default(&o);
	o.groups = GROUPS;
	c = cluster_start(&o);
	ck_assert_msg(c != NULL, "cluster did not start");
}

static void teardown(void)
{
	cluster_teardown(&c);
}

static void nap_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static void key_name(int k, char *out, size_t cap)
{
	snprintf(out, cap, "rl/%06d", k);
}

/* The value of version v of key k: the version is what the checks compare. */
static int value_of(int k, uint32_t v, char *out, size_t cap)
{
	return snprintf(out, cap, "v%u-k%06d", v, k);
}


/* The latest change as `kvctl groups -o json` reports it: its state ("moving", "complete",
 * "rolled back"; "none" without a change, "?" when kvctl failed), its new epoch, and the share
 * of one group (-1 when the group is not listed). */
struct change {
	char state[32];
	unsigned long long to_epoch;
	double share;
};
static struct change change_of(uint32_t g)
{
	struct change ch = {.share = -1};
	char *out;
	int rc = cluster_kvctl(c, NULL, 20, &out, "-o json groups");
	snprintf(ch.state, sizeof ch.state, "%s", rc == 0 ? "none" : "?");
	const char *p = rc == 0 ? strstr(out, "\"change\": {") : NULL;
	const char *e = p ? strstr(p, "\"to_epoch\": ") : NULL;
	const char *st = p ? strstr(p, "\"state\": \"") : NULL;
	if (e != NULL)
		ch.to_epoch = strtoull(e + strlen("\"to_epoch\": "), NULL, 10);
	if (st != NULL) {
		st += strlen("\"state\": \"");
		int len = (int)strcspn(st, "\"");
		snprintf(ch.state, sizeof ch.state, "%.*s", len, st);
	}
	char want[40];
	snprintf(want, sizeof want, "{\"group\": %u,", g);
	const char *gp = rc == 0 ? strstr(out, want) : NULL;
	const char *sp = gp ? strstr(gp, "\"share\": ") : NULL;
	if (sp != NULL && strncmp(sp + strlen("\"share\": "), "null", 4) != 0)
		ch.share = strtod(sp + strlen("\"share\": "), NULL);
	free(out);
	return ch;
}

/* Waits (bounded) until the latest change is one after epoch `before` and is `want`; how it
 * stood last in *last. */
static bool wait_change(unsigned long long before, const char *want, int timeout_s,
			struct change *last)
{
	uint64_t end = cluster_now_ms() + (uint64_t)timeout_s * 1000;
	do {
		*last = change_of(0);
		if (last->to_epoch > before && strcmp(last->state, want) == 0)
			return true;
		nap_ms(500); /* a poll of a bounded wait */
	} while (cluster_now_ms() < end);
	return false;
}

static int wait_s(void)
{
	const char *e = getenv("RINGRAFT_RESHARD_WAIT_S");
	int s = e && *e ? atoi(e) : 60;
	return s > 0 ? s : 60;
}

/* ------------------------------------------------------------------ the clients
 * Client i is the only writer of the keys k with k % CLIENTS == i, and it writes each key only
 * after its previous write to it was definite, so acked[k] (the last acknowledged version) is
 * the only value the key may hold, for its own reads and for the checks after a change. */
static uint32_t acked[KEYS];
static atomic_bool stop_load;
/* The keys that move (the new group's in the added ring), by worker: half of each worker's
 * operations go to them, so that the short window of each move sees many of them. */
static int moving[CLIENTS][KEYS / CLIENTS + 1];
static int n_moving[CLIENTS];

struct worker {
	pthread_t tid;
	int index;
	struct cli_client *cli;
	unsigned rng;
	uint64_t puts, gets, put_retries, get_errors;
	uint64_t put_max_ms; /* the longest write, retries included */
	uint64_t not_found, wrong_value, put_failed, not_answered; /* the failures */
	char first[200];                                           /* the first failure */
};
static struct worker workers[CLIENTS];

static struct cli_client *new_client(void)
{
	struct cli_options o;
	cli_options_default(&o);
	o.timeout_ms = CALL_MS;
	struct cli_client *cl;
	ck_assert_int_eq(cli_client_new(cluster_endpoints(c), &o, &cl), 0);
	return cl;
}

static void failure(struct worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void failure(struct worker *w, const char *fmt, ...)
{
	if (w->first[0] != '\0')
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->first, sizeof w->first, fmt, ap);
	va_end(ap);
}

/* Writes version v of key k until the outcome is definite: an indeterminate attempt (TIMEOUT)
 * is sent again with the same value, a refused one (UNAVAILABLE: MOVING or BUSY until the
 * deadline) too. True once it is written. */
static bool put_definite(struct worker *w, int k, uint32_t v)
{
	char key[32], val[48];
	key_name(k, key, sizeof key);
	int vl = value_of(k, v, val, sizeof val);
	uint64_t t0 = cluster_now_ms(), end = t0 + DEFINITE_MS;
	int rc;
	while ((rc = cli_put(w->cli, key, strlen(key), val, (size_t)vl)) != CLI_OK) {
		w->put_retries++;
		if (cluster_now_ms() >= end || rc == CLI_INVALID || rc == CLI_TOO_LARGE) {
			w->put_failed++;
			failure(w, "put %s v%u: %s (retried for %d ms)", key, v, cli_strerror(rc),
				DEFINITE_MS);
			return false;
		}
	}
	w->puts++;
	if (cluster_now_ms() - t0 > w->put_max_ms)
		w->put_max_ms = cluster_now_ms() - t0;
	return true;
}

/* Reads key k and compares it with its last acknowledged version. A read that fails (no
 * answer within the deadline) is counted, not a failure: it said nothing about the key. */
static void get_check(struct worker *w, int k, const char *when)
{
	char key[32], want[48];
	key_name(k, key, sizeof key);
	int wl = value_of(k, acked[k], want, sizeof want);
	void *got = NULL;
	size_t gl = 0;
	int rc = cli_get(w->cli, key, strlen(key), &got, &gl);
	if (rc == CLI_OK) {
		w->gets++;
		if (gl != (size_t)wl || memcmp(got, want, gl) != 0) {
			w->wrong_value++;
			failure(w, "%s: get %s = '%.*s', its last acknowledged value is '%s'", when,
				key, (int)gl, (const char *)got, want);
		}
	} else if (rc == CLI_NOT_FOUND) {
		w->gets++;
		w->not_found++;
		failure(w, "%s: get %s: not found; its last acknowledged value is '%s'", when, key,
			want);
	} else {
		w->get_errors++;
	}
	free(got);
}

/* The load: a random key of its own (half the time one that moves), read (one time in three)
 * or written with the next version, until stop_load. */
static void *load_main(void *arg)
{
	struct worker *w = arg;
	int mine = (KEYS - w->index + CLIENTS - 1) / CLIENTS, nm = n_moving[w->index];
	while (!atomic_load(&stop_load)) {
		int k = w->index + CLIENTS * (int)((unsigned)rand_r(&w->rng) % (unsigned)mine);
		if (nm > 0 && rand_r(&w->rng) % 2 == 0)
			k = moving[w->index][(unsigned)rand_r(&w->rng) % (unsigned)nm];
		if (rand_r(&w->rng) % 3 == 0)
			get_check(w, k, "during the change");
		else if (put_definite(w, k, acked[k] + 1))
			acked[k]++;
	}
	return NULL;
}

/* After a change: every key of its own reads back with its last acknowledged version. */
static void *verify_main(void *arg)
{
	struct worker *w = arg;
	for (int k = w->index; k < KEYS; k += CLIENTS) {
		uint64_t end = cluster_now_ms() + DEFINITE_MS;
		for (;;) { /* retried while it fails without an answer */
			uint64_t errors = w->get_errors;
			get_check(w, k, "after the change");
			if (w->get_errors == errors)
				break;
			if (cluster_now_ms() >= end) {
				w->not_answered++;
				failure(w, "after the change: get rl/%06d: no answer for %d ms", k,
					DEFINITE_MS);
				break;
			}
		}
	}
	return NULL;
}

static void run_workers(void *(*fn)(void *))
{
	for (int i = 0; i < CLIENTS; i++)
		ck_assert_int_eq(pthread_create(&workers[i].tid, NULL, fn, &workers[i]), 0);
}

static void join_workers(void)
{
	for (int i = 0; i < CLIENTS; i++)
		pthread_join(workers[i].tid, NULL);
}

/* The sums of every worker's counters; the first failure any of them met (NULL: none). */
struct totals {
	uint64_t puts, gets, put_retries, get_errors, not_found, wrong_value, put_failed;
	uint64_t not_answered, put_max_ms;
	const char *first;
};
static struct totals totals(void)
{
	struct totals t = {0};
	for (int i = 0; i < CLIENTS; i++) {
		struct worker *w = &workers[i];
		t.puts += w->puts;
		t.gets += w->gets;
		t.put_retries += w->put_retries;
		t.get_errors += w->get_errors;
		t.not_found += w->not_found;
		t.wrong_value += w->wrong_value;
		t.put_failed += w->put_failed;
		t.not_answered += w->not_answered;
		if (w->put_max_ms > t.put_max_ms)
			t.put_max_ms = w->put_max_ms;
		if (t.first == NULL && w->first[0] != '\0')
			t.first = w->first;
	}
	return t;
}

static void assert_clean(const char *phase)
{
	struct totals t = totals();
	fprintf(stderr,
		"%s: %llu puts (%llu attempts retried, the longest %llu ms), %llu gets (%llu "
		"without an answer); not found %llu, wrong value %llu, puts never definite "
		"%llu, gets never answered %llu\n",
		phase, (unsigned long long)t.puts, (unsigned long long)t.put_retries,
		(unsigned long long)t.put_max_ms, (unsigned long long)t.gets,
		(unsigned long long)t.get_errors, (unsigned long long)t.not_found,
		(unsigned long long)t.wrong_value, (unsigned long long)t.put_failed,
		(unsigned long long)t.not_answered);
	ck_assert_msg(t.not_found == 0 && t.wrong_value == 0 && t.put_failed == 0 &&
			      t.not_answered == 0,
		      "%s: %llu reads not found, %llu with a value other than the last "
		      "acknowledged one, %llu writes never definite, %llu reads never answered; "
		      "the first: %s",
		      phase, (unsigned long long)t.not_found, (unsigned long long)t.wrong_value,
		      (unsigned long long)t.put_failed, (unsigned long long)t.not_answered,
		      t.first ? t.first : "-");
}

static void reset_counters(void)
{
	for (int i = 0; i < CLIENTS; i++) {
		struct worker *w = &workers[i];
		*w = (struct worker){.index = i, .cli = w->cli, .rng = w->rng};
	}
}

/* ------------------------------------------------------------------ the initial load */

/* Writes keys (version 1) with one MSET per group and batch, through node 1 (which forwards
 * to each group's leader), retried until OK. The ring is the bootstrap one. */
static void load_keys(void)
{
	struct kv_ring *ring = kv_ring_new(GROUPS, VNODES, 1);
	ck_assert_ptr_nonnull(ring);
	static char keys[KEYS][16], vals[KEYS][24];
	static int by_group[GROUPS + 1][KEYS];
	int n[GROUPS + 1] = {0};
	for (int k = 0; k < KEYS; k++) {
		key_name(k, keys[k], sizeof keys[k]);
		value_of(k, 1, vals[k], sizeof vals[k]);
		acked[k] = 1;
		uint32_t g = kv_ring_group_of(ring, keys[k], strlen(keys[k]));
		ck_assert(g >= 1 && g <= GROUPS);
		by_group[g][n[g]++] = k;
	}
	kv_ring_free(ring);
	Ringraft__Kv__KeyValue *kv = calloc(BATCH, sizeof *kv);
	Ringraft__Kv__KeyValue **kvp = calloc(BATCH, sizeof *kvp);
	ck_assert(kv != NULL && kvp != NULL);
	for (uint32_t g = 1; g <= GROUPS; g++) {
		for (int off = 0; off < n[g]; off += BATCH) {
			int m = n[g] - off < BATCH ? n[g] - off : BATCH;
			for (int i = 0; i < m; i++) {
				int k = by_group[g][off + i];
				ringraft__kv__key_value__init(&kv[i]);
				kv[i].key =
					(ProtobufCBinaryData){strlen(keys[k]), (uint8_t *)keys[k]};
				kv[i].value =
					(ProtobufCBinaryData){strlen(vals[k]), (uint8_t *)vals[k]};
				kvp[i] = &kv[i];
			}
			uint64_t end = cluster_now_ms() + DEFINITE_MS;
			int code = -1;
			while (code != RINGRAFT__KV__CODE__OK && cluster_now_ms() < end) {
				Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
				rq.op = RINGRAFT__KV__OP__MSET;
				rq.n_kvs = (size_t)m;
				rq.kvs = kvp;
				Ringraft__Kv__Response *rs = NULL;
				code = cluster_call(c, 1, &rq, &rs, 10000) == 0 ? (int)rs->code
										: -1;
				if (rs != NULL)
					ringraft__kv__response__free_unpacked(rs, NULL);
				if (code != RINGRAFT__KV__CODE__OK)
					nap_ms(100);
			}
			ck_assert_msg(code == RINGRAFT__KV__CODE__OK,
				      "MSET of %d keys of group %u: code %d", m, g, code);
		}
	}
	free(kv);
	free(kvp);
}

/* How many keys a SCAN of group g (from its leader, through node 1) finds, page by page; -1
 * if a page was not answered within the bounded retries. */
static long group_keys(uint32_t g)
{
	long count = 0;
	uint8_t *cur = NULL;
	size_t cur_len = 0;
	for (;;) {
		Ringraft__Kv__Response *rs = NULL;
		uint64_t end = cluster_now_ms() + 20000;
		for (;;) {
			Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
			rq.op = RINGRAFT__KV__OP__SCAN;
			rq.group = g;
			rq.key = (ProtobufCBinaryData){cur_len, cur};
			if (cluster_call(c, 1, &rq, &rs, 10000) == 0 &&
			    rs->code == RINGRAFT__KV__CODE__OK)
				break;
			if (rs != NULL)
				ringraft__kv__response__free_unpacked(rs, NULL);
			rs = NULL;
			if (cluster_now_ms() >= end) {
				free(cur);
				return -1;
			}
			nap_ms(200);
		}
		count += (long)rs->n_kvs;
		free(cur);
		cur = NULL;
		cur_len = rs->next_key.len;
		if (cur_len > 0) {
			cur = malloc(cur_len);
			ck_assert_ptr_nonnull(cur);
			memcpy(cur, rs->next_key.data, cur_len);
		}
		ringraft__kv__response__free_unpacked(rs, NULL);
		if (cur_len == 0)
			return count;
	}
}

/* How many of the keys the ring of ids gives to group g. */
static long ring_keys(const uint32_t *ids, size_t n, uint32_t g)
{
	struct kv_ring *ring = kv_ring_from_ids(ids, n, VNODES, 2);
	ck_assert_ptr_nonnull(ring);
	long count = 0;
	for (int k = 0; k < KEYS; k++) {
		char key[32];
		key_name(k, key, sizeof key);
		count += kv_ring_group_of(ring, key, strlen(key)) == g;
	}
	kv_ring_free(ring);
	return count;
}

/* Waits (bounded) until every group of the ring of ids holds exactly the keys that ring gives
 * it, by scanning each: the sources have dropped what they gave away, and nothing is held
 * twice. */
static void wait_groups_hold(const uint32_t *ids, size_t n, const char *label)
{
	long want[GROUPS + 2], held = 0;
	for (size_t i = 0; i < n; i++)
		want[i] = ring_keys(ids, n, ids[i]);
	uint64_t end = cluster_now_ms() + 30000;
	size_t i = 0;
	while (i < n) {
		held = group_keys(ids[i]);
		if (held == want[i]) {
			fprintf(stderr, "%s: group %u holds %ld keys, as the ring gives it\n",
				label, ids[i], held);
			i++;
			continue;
		}
		if (cluster_now_ms() >= end)
			break;
		nap_ms(500); /* a poll of a bounded wait: the source drops in batches */
	}
	ck_assert_msg(i == n,
		      "%s: 30 s after the change, group %u holds %ld keys; the ring gives it %ld",
		      label, i < n ? ids[i] : 0, held, i < n ? want[i] : 0);
}

/* Runs the load while `kvctl <change>` runs and until the change is "complete" (bounded);
 * then stops the load, checks what the clients saw, and reads every key back. */
static void change_under_load(const char *change, const char *label, bool pause_meta)
{
	reset_counters();
	atomic_store(&stop_load, false);
	run_workers(load_main);
	nap_ms(2000); /* the load before the change */
	char *out;
	struct change last, before = change_of(0);
	uint64_t t0 = cluster_now_ms();
	int rc = cluster_kvctl(c, NULL, 20, &out, "%s", change);
	fprintf(stderr, "$ kvctl %s\n%s", change, out);
	bool ok = rc == 0;
	free(out);
	if (ok && pause_meta) {
		/* the meta leader, which drives the change, stops for 4 s in the middle of it: a
		 * new one takes the change over, and the old one catches up when it wakes */
		uint64_t m = cluster_leader_of(c, META, 5000);
		if (m != 0) {
			fprintf(stderr, "%s: node %llu (the meta leader) stopped for 4 s\n", label,
				(unsigned long long)m);
			cluster_stop(c, (int)m);
			nap_ms(4000);
			cluster_cont(c, (int)m);
		}
	}
	bool done = ok && wait_change(before.to_epoch, "complete", wait_s(), &last);
	uint64_t took = cluster_now_ms() - t0;
	nap_ms(2000); /* the load after it */
	atomic_store(&stop_load, true);
	join_workers();
	ck_assert_msg(ok, "kvctl %s: exit %d", change, rc);
	fprintf(stderr, "%s: %s after %llu ms\n", label, done ? "complete" : last.state,
		(unsigned long long)took);
	assert_clean(label);
	ck_assert_msg(done,
		      "%s: the change is still '%s' %d s after kvctl %s: no key moved (the "
		      "resharding driver, issue 18 item 3, is not built, or it is stuck); "
		      "RINGRAFT_RESHARD_WAIT_S sets the wait",
		      label, last.state, wait_s(), change);
	reset_counters();
	run_workers(verify_main);
	join_workers();
	char what[64];
	snprintf(what, sizeof what, "%s: every key read back", label);
	assert_clean(what);
	ck_assert_msg(cluster_wait_digests_equal(c, 30000) == 0,
		      "%s: the replicas of some group do not agree (state digests) 30 s after",
		      label);
}

/* The keys the ring of ids gives group g that the bootstrap ring does not: they move. */
static void set_moving(const uint32_t *ids, size_t n, uint32_t g)
{
	struct kv_ring *ring = kv_ring_from_ids(ids, n, VNODES, 2);
	ck_assert_ptr_nonnull(ring);
	memset(n_moving, 0, sizeof n_moving);
	for (int k = 0; k < KEYS; k++) {
		char key[32];
		key_name(k, key, sizeof key);
		if (kv_ring_group_of(ring, key, strlen(key)) == g)
			moving[k % CLIENTS][n_moving[k % CLIENTS]++] = k;
	}
	kv_ring_free(ring);
}

START_TEST(test_add_and_remove_under_load)
{
	uint64_t t0 = cluster_now_ms();
	load_keys();
	fprintf(stderr, "loaded %d keys in %llu ms\n", KEYS,
		(unsigned long long)(cluster_now_ms() - t0));
	for (uint32_t g = 1; g <= GROUPS; g++)
		fprintf(stderr, "group %u: %ld keys\n", g, group_keys(g));
	for (int i = 0; i < CLIENTS; i++) {
		workers[i].cli = new_client();
		workers[i].rng = 0x5eed0000u + (unsigned)i;
	}

	/* Add a group: the first id after the meta group's. The keys the new ring gives it
	 * move, and only those: a scan of the new group finds exactly them. */
	const uint32_t g = META + 1;
	const uint32_t after[] = {1, 2, 3, 4, g};
	set_moving(after, 5, g);
	change_under_load("groups add", "add", false);
	double ideal = 1.0 / (GROUPS + 1), share = change_of(g).share;
	long want = ring_keys(after, 5, g), held = group_keys(g);
	fprintf(stderr,
		"group %u: share %.4f, holds %ld keys, the ring gives it %ld (ideal %.0f)\n", g,
		share, held, want, ideal * KEYS);
	ck_assert_msg(share >= 0.8 * ideal && share <= 1.2 * ideal,
		      "group %u's share %.4f is not within 20%% of 1/%d", g, share, GROUPS + 1);
	ck_assert_msg(held == want, "group %u holds %ld keys; the new ring gives it %ld", g, held,
		      want);
	ck_assert_msg(held >= 0.8 * ideal * KEYS && held <= 1.2 * ideal * KEYS,
		      "group %u holds %ld keys: not within 20%% of %d/%d", g, held, KEYS,
		      GROUPS + 1);
	wait_groups_hold(after, 5, "after the add");

	/* Remove it again: its keys go back to the groups they came from. */
	char cmd[32];
	snprintf(cmd, sizeof cmd, "groups remove %u", g);
	change_under_load(cmd, "remove", false);
	share = change_of(g).share;
	ck_assert_msg(share < 0, "group %u is still listed (share %.4f) after its removal", g,
		      share);
	const uint32_t boot[] = {1, 2, 3, 4};
	wait_groups_hold(boot, 4, "after the removal");

	/* The same again with the meta leader stopped for 4 s in the middle of each change. */
	const uint32_t g2 = g + 1, after2[] = {1, 2, 3, 4, g2};
	set_moving(after2, 5, g2);
	change_under_load("groups add", "add, meta leader stopped", true);
	held = group_keys(g2);
	ck_assert_msg(held == ring_keys(after2, 5, g2),
		      "group %u holds %ld keys; its ring gives it %ld", g2, held,
		      ring_keys(after2, 5, g2));
	wait_groups_hold(after2, 5, "after the add, meta leader stopped");
	snprintf(cmd, sizeof cmd, "groups remove %u", g2);
	change_under_load(cmd, "remove, meta leader stopped", true);
	wait_groups_hold(boot, 4, "after the removal, meta leader stopped");
	for (int i = 0; i < CLIENTS; i++)
		cli_client_free(workers[i].cli);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("reshard_load");
	TCase *tc = tcase_create("reshard_load");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 400);
	tcase_add_test(tc, test_add_and_remove_under_load);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
