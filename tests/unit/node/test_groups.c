/* test_groups.c — groups created and retired at runtime (node/groups.c): one node engine over
 * the real WAL and LMDB in a temporary directory, a WAL write made durable at once (or lost,
 * as a crash before the fsync loses it), restarts by closing and opening everything again.
 * An added group is refused for a bad id or replica list; it elects, serves a write and keeps
 * it across a restart; a creation that reached the WAL comes back and one that did not does
 * not; a group hosted elsewhere comes back as hosts only; a retired group stays retired.
 * The ring change record (issue 18): RESHARD_ADD and RESHARD_REMOVE at this one-node
 * cluster's meta leader create, keep (across a restart) and retire the group, the ring in
 * effect staying the old one; a record pushed by a peer is applied, again idempotently, and
 * an older or damaged one is not. And, on the same fixture, the engine's time in two parts
 * (engine.h): node_advance_clock runs no timer (no election, however far), node_tick_timers
 * does.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kv/kv.h"
#include "kv/ring.h"
#include "node/engine.h"
#include "node/log.h"
#include "node/reshard.h"
#include "proto/kv.pb-c.h"
#include "proto/raft.pb-c.h"
#include "tests/unit/kv/kv_fixture.h"
#include "wal/wal.h"

#define GROUPS 2 /* key groups 1, 2; the meta group 3; added groups from 4 */

/* ------------------------------------------------------------------------------ fixture */

struct gx {
	char dir[256];
	struct wal *wal;
	struct kv *kv;
	struct node *n;
	struct node_config cfg;
	uint64_t now_ms;
	bool lose_writes; /* a crash before the fsync: batches handed out are dropped */
	struct wal_batch *pending;
	/* the last reply */
	int replies;
	Ringraft__Kv__Code code;
	char value[64];
};

static struct gx G;

static uint64_t now_ms_cb(void *arg)
{
	return ((struct gx *)arg)->now_ms;
}
static uint64_t now_ns_cb(void *arg)
{
	return ((struct gx *)arg)->now_ms * 1000000u;
}
static uint64_t wall_ms_cb(void *arg)
{
	return 1700000000000ull + ((struct gx *)arg)->now_ms;
}
static int send_cb(void *arg, uint64_t to, int field, const ProtobufCMessage *m)
{
	(void)arg, (void)to, (void)field, (void)m;
	return -1; /* a single node: no peers */
}
static int send_packed_cb(void *arg, uint64_t to, int field, const uint8_t *b, size_t len)
{
	(void)arg, (void)to, (void)field, (void)b, (void)len;
	return -1;
}
static bool peer_up_cb(void *arg, uint64_t id)
{
	(void)arg, (void)id;
	return false;
}
static void wal_write_cb(void *arg, struct wal_batch *b, bool compact)
{
	(void)compact;
	struct gx *x = arg;
	x->pending = b; /* made durable by gx_settle, outside the engine's turn */
}
static void flush_cb(void *arg)
{
	(void)arg;
}

static void reply_cb(void *client, const Ringraft__Kv__Response *resp)
{
	struct gx *x = client;
	x->replies++;
	x->code = resp->code;
	x->value[0] = 0;
	if (resp->value.len > 0 && resp->value.len < sizeof x->value) {
		memcpy(x->value, resp->value.data, resp->value.len);
		x->value[resp->value.len] = 0;
	}
}

/* The batch handed out: written and durable (or lost, with lose_writes). */
static void gx_settle(void)
{
	while (G.pending != NULL) {
		struct wal_batch *b = G.pending;
		G.pending = NULL;
		if (!G.lose_writes)
			ck_assert_int_eq(wal_batch_write(G.wal, b), WAL_OK);
		if (G.lose_writes)
			return; /* the engine waits for ever: the node "crashes" next */
		node_wal_durable(G.n);
		node_process(G.n);
	}
}

static void gx_open(void)
{
	char sub[300];
	snprintf(sub, sizeof sub, "%s/wal", G.dir);
	mkdir(sub, 0755);
	struct wal_options wo;
	wal_options_default(&wo);
	wo.segment_bytes = 1 << 20;
	wo.no_sync = true;
	wo.no_direct_io = true;
	struct wal_corruption corr;
	ck_assert_int_eq(wal_open(sub, &wo, true, &G.wal, &corr), WAL_OK);
	snprintf(sub, sizeof sub, "%s/kv", G.dir);
	mkdir(sub, 0755);
	struct kv_options ko;
	kv_options_default(&ko);
	ko.writemap = false;
	ko.map_bytes = 2 << 20;
	ko.groups_max = node_group_id_max(GROUPS);
	ck_assert_int_eq(kv_open(sub, &ko, &G.kv), KV_OK);
	struct node_io io = {
		.arg = &G,
		.seed = 42,
		.now_ms = now_ms_cb,
		.now_ns = now_ns_cb,
		.wall_ms = wall_ms_cb,
		.peer_send = send_cb,
		.peer_send_packed = send_packed_cb,
		.peer_up = peer_up_cb,
		.wal_write = wal_write_cb,
		.flush = flush_cb,
	};
	G.pending = NULL;
	G.lose_writes = false;
	ck_assert_int_eq(node_engine_open(&G.cfg, &io, G.wal, G.kv, 0x1234, &G.n), NODE_OK);
}

static void gx_close(void)
{
	node_engine_close(G.n);
	kv_close(G.kv);
	wal_close(G.wal);
	G.n = NULL;
	G.kv = NULL;
	G.wal = NULL;
}

static void setup(void)
{
	memset(&G, 0, sizeof G);
	snprintf(G.dir, sizeof G.dir, "/tmp/test_groups.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(G.dir));
	struct node_config *c = &G.cfg;
	c->id = 1;
	snprintf(c->data_dir, sizeof c->data_dir, "%s", G.dir);
	snprintf(c->peer_addr, sizeof c->peer_addr, "127.0.0.101:7000");
	snprintf(c->client_addr, sizeof c->client_addr, "127.0.0.101:9000");
	c->members[0].id = 1;
	snprintf(c->members[0].peer_addr, sizeof c->members[0].peer_addr, "127.0.0.101:7000");
	c->n_members = c->n_boot = 1;
	c->groups = GROUPS;
	c->cluster_id = 0x5eed;
	c->tick_ms = 10;
	c->election_ms = 100;
	c->heartbeat_ms = 20;
	c->snapshot_entries = 100000;
	c->value_max = 1 << 16;
	c->request_timeout_ms = 2000;
	node_log_init(1, NODE_LOG_ERROR);
	gx_open();
}

static void teardown(void)
{
	if (G.n != NULL)
		gx_close();
	fx_rmdir(G.dir);
}

/* Ticks (10 ms each) until cond or 3 s of engine time. */
#define TICK_UNTIL(cond)                                                                           \
	do {                                                                                       \
		for (int t_ = 0; t_ < 300 && !(cond); t_++) {                                      \
			G.now_ms += 10;                                                            \
			node_tick(G.n);                                                            \
			node_process(G.n);                                                         \
			gx_settle();                                                               \
		}                                                                                  \
		ck_assert(cond);                                                                   \
	} while (0)

static void submit_rq(const Ringraft__Kv__Request *rq);

static void submit(Ringraft__Kv__Op op, const char *key, const char *value)
{
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = op;
	rq.id = 1;
	rq.key.data = (uint8_t *)key;
	rq.key.len = strlen(key);
	if (value != NULL) {
		rq.value.data = (uint8_t *)value;
		rq.value.len = strlen(value);
	}
	submit_rq(&rq);
}

static void submit_rq(const Ringraft__Kv__Request *rq)
{
	/* the engine frees what it is given with free_unpacked: hand it an unpacked copy */
	size_t len = ringraft__kv__request__get_packed_size(rq);
	uint8_t *buf = malloc(len + 1);
	ck_assert_ptr_nonnull(buf);
	ringraft__kv__request__pack(rq, buf);
	Ringraft__Kv__Request *own = ringraft__kv__request__unpack(NULL, len, buf);
	free(buf);
	ck_assert_ptr_nonnull(own);
	G.replies = 0;
	node_submit(G.n, own, reply_cb, &G);
	node_process(G.n);
	gx_settle();
}

/* Asks until the answer is OK (the group may still be electing: NOT_LEADER), ticking 50 ms
 * between tries, for at most 3 s of engine time. */
static void until_ok(Ringraft__Kv__Op op, const char *key, const char *value)
{
	for (int tries = 0; tries < 60; tries++) {
		submit(op, key, value);
		TICK_UNTIL(G.replies == 1);
		if (G.code == RINGRAFT__KV__CODE__OK)
			return;
		for (int t = 0; t < 5; t++) {
			G.now_ms += 10;
			node_tick(G.n);
			node_process(G.n);
			gx_settle();
		}
	}
	ck_assert_int_eq(G.code, RINGRAFT__KV__CODE__OK);
}

/* A key the ring {1, 2, g} places in group g. */
static void key_of(uint32_t g, char *key, size_t len)
{
	uint32_t ids[3] = {1, 2, g};
	struct kv_ring *r = kv_ring_from_ids(ids, 3, 128, 2);
	ck_assert_ptr_nonnull(r);
	for (int j = 0;; j++) {
		snprintf(key, len, "key%d", j);
		if (kv_ring_group_of(r, key, strlen(key)) == g)
			break;
	}
	kv_ring_free(r);
}

static void ring_with(uint32_t g)
{
	uint32_t ids[3] = {1, 2, g};
	ck_assert_int_eq(node_ring_set(G.n, ids, 3, 2), NODE_OK);
}

static const uint64_t self[1] = {1};

/* ------------------------------------------------------------------------------ tests */

START_TEST(test_refuses_bad_requests)
{
	const uint64_t dup[2] = {1, 1}, zero[1] = {0};
	ck_assert_int_eq(node_group_add(G.n, 1, self, 1), NODE_EINVAL); /* a key group */
	ck_assert_int_eq(node_group_add(G.n, 3, self, 1), NODE_EINVAL); /* the meta group */
	ck_assert_int_eq(node_group_add(G.n, 0, self, 1), NODE_EINVAL);
	ck_assert_int_eq(node_group_add(G.n, node_group_id_max(GROUPS) + 1, self, 1), NODE_EINVAL);
	ck_assert_int_eq(node_group_add(G.n, 4, self, 0), NODE_EINVAL);
	ck_assert_int_eq(node_group_add(G.n, 4, dup, 2), NODE_EINVAL);
	ck_assert_int_eq(node_group_add(G.n, 4, zero, 1), NODE_EINVAL);
	ck_assert(!node_group_exists(G.n, 4, NULL));
	ck_assert_int_eq(node_group_remove(G.n, 1), NODE_EINVAL); /* not an added group */
	ck_assert_int_eq(node_group_remove(G.n, 4), NODE_EINVAL); /* does not exist */
	uint32_t meta_in[2] = {1, 3};
	ck_assert_int_eq(node_ring_set(G.n, meta_in, 2, 2), NODE_EINVAL);
	/* the largest id there is room for */
	ck_assert_int_eq(node_group_add(G.n, node_group_id_max(GROUPS), self, 1), NODE_OK);
	ck_assert(node_group_exists(G.n, node_group_id_max(GROUPS), NULL));
}
END_TEST

START_TEST(test_added_group_serves_and_survives_restart)
{
	char key[32];
	key_of(4, key, sizeof key);
	ring_with(4);
	submit(RINGRAFT__KV__OP__PUT, key, "v1");
	ck_assert_int_eq(G.replies, 1);
	ck_assert_int_eq(G.code, RINGRAFT__KV__CODE__UNAVAILABLE); /* group 4 does not exist */
	ck_assert_int_eq(node_group_add(G.n, 4, self, 1), NODE_OK);
	ck_assert_int_eq(node_group_add(G.n, 4, self, 1), NODE_OK); /* again: no change */
	bool hosted = false;
	ck_assert(node_group_exists(G.n, 4, &hosted));
	ck_assert(hosted);
	node_process(G.n);
	gx_settle();
	/* it elects (a single voter) and serves */
	until_ok(RINGRAFT__KV__OP__PUT, key, "v1");
	gx_close();
	gx_open();
	ck_assert(node_group_exists(G.n, 4, &hosted));
	ck_assert(hosted);
	ring_with(4);
	until_ok(RINGRAFT__KV__OP__GET, key, NULL);
	ck_assert_str_eq(G.value, "v1");
}
END_TEST

START_TEST(test_creation_durable_only_with_its_batch)
{
	/* handed out but never durable: a crash loses it */
	ck_assert_int_eq(node_group_add(G.n, 5, self, 1), NODE_OK);
	G.lose_writes = true;
	node_process(G.n);
	gx_settle();
	gx_close();
	gx_open();
	ck_assert(!node_group_exists(G.n, 5, NULL));
	/* durable: it comes back, twice */
	ck_assert_int_eq(node_group_add(G.n, 5, self, 1), NODE_OK);
	node_process(G.n);
	gx_settle();
	for (int i = 0; i < 2; i++) {
		gx_close();
		gx_open();
		ck_assert(node_group_exists(G.n, 5, NULL));
	}
}
END_TEST

START_TEST(test_hosted_elsewhere)
{
	const uint64_t others[3] = {7, 8, 9};
	ck_assert_int_eq(node_group_add(G.n, 6, others, 3), NODE_OK);
	bool hosted = true;
	ck_assert(node_group_exists(G.n, 6, &hosted));
	ck_assert(!hosted);
	node_process(G.n);
	gx_settle();
	gx_close();
	gx_open();
	hosted = true;
	ck_assert(node_group_exists(G.n, 6, &hosted));
	ck_assert(!hosted);
	/* its key is forwarded: the answer names a host (none is reachable here) */
	char key[32];
	key_of(6, key, sizeof key);
	ring_with(6);
	submit(RINGRAFT__KV__OP__GET, key, NULL);
	TICK_UNTIL(G.replies == 1);
	ck_assert_int_ne(G.code, RINGRAFT__KV__CODE__OK);
	ck_assert_int_ne(G.code, RINGRAFT__KV__CODE__UNAVAILABLE);
}
END_TEST

START_TEST(test_retired_stays_retired)
{
	ck_assert_int_eq(node_group_add(G.n, 4, self, 1), NODE_OK);
	ck_assert_int_eq(node_group_add(G.n, 5, self, 1), NODE_OK);
	node_process(G.n);
	gx_settle();
	TICK_UNTIL(G.now_ms >= 500);
	ck_assert_int_eq(node_group_remove(G.n, 4), NODE_OK);
	ck_assert(!node_group_exists(G.n, 4, NULL));
	ck_assert_int_eq(node_group_remove(G.n, 4), NODE_EINVAL);
	node_process(G.n);
	gx_settle();
	gx_close();
	gx_open();
	ck_assert(!node_group_exists(G.n, 4, NULL));
	ck_assert(node_group_exists(G.n, 5, NULL)); /* the other one is untouched */
	/* a key group still serves */
	until_ok(RINGRAFT__KV__OP__PUT, "plain", "x");
}
END_TEST

/* A ring change request (RESHARD_ADD of `count`, or RESHARD_REMOVE of `group`), asked until
 * answered with something other than NOT_LEADER (the meta group may still be electing). */
static void reshard(Ringraft__Kv__Op op, uint32_t count, uint32_t group)
{
	for (int tries = 0; tries < 60; tries++) {
		Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
		rq.op = op;
		rq.id = 1;
		rq.client_id = 77;
		rq.seq = (uint64_t)G.now_ms + 1; /* a new write each time */
		rq.count = count;
		rq.group = group;
		submit_rq(&rq);
		TICK_UNTIL(G.replies == 1);
		if (G.code != RINGRAFT__KV__CODE__NOT_LEADER &&
		    G.code != RINGRAFT__KV__CODE__UNAVAILABLE)
			return;
		for (int t = 0; t < 5; t++) {
			G.now_ms += 10;
			node_tick(G.n);
			node_process(G.n);
			gx_settle();
		}
	}
}

/* A record pushed by a peer with the cluster map (PeerFrame.member_maps). */
static void push_record(const struct node_reshard *r)
{
	uint8_t *rec;
	size_t rec_len;
	ck_assert_int_eq(node_reshard_encode(r, &rec, &rec_len), 0);
	Ringraft__Kv__MemberMap map = RINGRAFT__KV__MEMBER_MAP__INIT;
	map.ring_change.data = rec;
	map.ring_change.len = rec_len;
	size_t len = ringraft__kv__member_map__get_packed_size(&map);
	uint8_t *buf = malloc(len + 1);
	ck_assert_ptr_nonnull(buf);
	ringraft__kv__member_map__pack(&map, buf);
	ProtobufCBinaryData b = {.len = len, .data = buf};
	Ringraft__Raft__PeerFrame f = RINGRAFT__RAFT__PEER_FRAME__INIT;
	f.member_maps = &b;
	f.n_member_maps = 1;
	node_peer_frame(G.n, 2, &f);
	node_process(G.n);
	gx_settle();
	free(buf);
	free(rec);
}

/* The change the meta leader of this one-node cluster plans for a first add of one group. */
static struct node_reshard *first_add(void)
{
	struct kv_ring *boot = kv_ring_new(GROUPS, 128, 1);
	struct node_reshard *r;
	const char *why;
	ck_assert_int_eq(node_reshard_plan_add(NULL, boot, GROUPS + 1, node_group_id_max(GROUPS), 1,
					       self, 1, &r, &why),
			 0);
	kv_ring_free(boot);
	return r;
}

START_TEST(test_ring_record_applied)
{
	/* RESHARD_ADD at the meta leader (this node): the record names group 4 on node 1, and
	 * applying it creates the group, which elects and serves nothing yet: the ring in
	 * effect stays {1, 2}, so the key the new ring would give group 4 is served as before. */
	reshard(RINGRAFT__KV__OP__RESHARD_ADD, 0, 0);
	ck_assert_int_eq(G.code, RINGRAFT__KV__CODE__OK);
	bool hosted = false;
	TICK_UNTIL(node_group_exists(G.n, 4, &hosted) && hosted);
	char key[32];
	key_of(4, key, sizeof key);
	until_ok(RINGRAFT__KV__OP__PUT, key, "kept");
	/* one change at a time */
	reshard(RINGRAFT__KV__OP__RESHARD_ADD, 1, 0);
	ck_assert_int_eq(G.code, RINGRAFT__KV__CODE__INVALID);
	/* a restart keeps it */
	gx_close();
	gx_open();
	ck_assert(node_group_exists(G.n, 4, &hosted) && hosted);
	until_ok(RINGRAFT__KV__OP__GET, key, NULL);
	ck_assert_str_eq(G.value, "kept");
	/* removing it rolls the change back: retired here, and after a restart */
	reshard(RINGRAFT__KV__OP__RESHARD_REMOVE, 0, 4);
	ck_assert_int_eq(G.code, RINGRAFT__KV__CODE__OK);
	TICK_UNTIL(!node_group_exists(G.n, 4, NULL));
	gx_close();
	gx_open();
	TICK_UNTIL(G.now_ms >= 1000);
	ck_assert(!node_group_exists(G.n, 4, NULL));
	/* the older record (the change while it moved), pushed by a peer: not taken */
	struct node_reshard *old = first_add();
	push_record(old);
	ck_assert(!node_group_exists(G.n, 4, NULL));
	node_reshard_free(old);
	/* the next add takes a new id */
	reshard(RINGRAFT__KV__OP__RESHARD_ADD, 1, 0);
	ck_assert_int_eq(G.code, RINGRAFT__KV__CODE__OK);
	TICK_UNTIL(node_group_exists(G.n, 5, NULL));
	ck_assert(!node_group_exists(G.n, 4, NULL));
	until_ok(RINGRAFT__KV__OP__GET, key, NULL);
	ck_assert_str_eq(G.value, "kept");
}
END_TEST

/* A node that hosts no meta replica learns the record from the meta leader's push: it creates
 * the group (as hosts only when it is not a replica), and a record is idempotent. */
START_TEST(test_ring_record_pushed)
{
	struct node_reshard *r = first_add();
	/* placed on other nodes: this node records where the group is */
	r->places[0].replicas[0] = 7;
	r->places[0].replicas[1] = 8;
	r->places[0].n_replicas = 2;
	push_record(r);
	bool hosted = true;
	ck_assert(node_group_exists(G.n, 4, &hosted));
	ck_assert(!hosted);
	push_record(r); /* again: nothing changes */
	ck_assert(node_group_exists(G.n, 4, &hosted) && !hosted);
	/* the same change rolled back: the group goes */
	for (size_t i = 0; i < r->change->n_ranges; i++)
		r->change->ranges[i].state = KV_RESHARD_ROLLED_BACK;
	push_record(r);
	ck_assert(!node_group_exists(G.n, 4, NULL));
	node_reshard_free(r);
	/* a damaged record is refused */
	Ringraft__Kv__MemberMap map = RINGRAFT__KV__MEMBER_MAP__INIT;
	uint8_t junk[3] = {0xff, 0xff, 0xff};
	map.ring_change.data = junk;
	map.ring_change.len = sizeof junk;
	uint8_t buf[64];
	size_t len = ringraft__kv__member_map__pack(&map, buf);
	ProtobufCBinaryData b = {.len = len, .data = buf};
	Ringraft__Raft__PeerFrame f = RINGRAFT__RAFT__PEER_FRAME__INIT;
	f.member_maps = &b;
	f.n_member_maps = 1;
	node_peer_frame(G.n, 2, &f);
	ck_assert(!node_group_exists(G.n, 4, NULL));
}
END_TEST

/* The clock alone (leases: the shell advances it to real time after a stall) runs no timer:
 * a hundred election timeouts of it elect no leader; timer ticks alone, no clock, do. */
START_TEST(test_clock_runs_no_timer)
{
	gx_close();
	G.cfg.lease_reads = true;
	gx_open();
	char key[32];
	uint32_t ids[GROUPS] = {1, 2};
	struct kv_ring *ring = kv_ring_from_ids(ids, GROUPS, 128, 1);
	ck_assert_ptr_nonnull(ring);
	for (int j = 0;; j++) {
		snprintf(key, sizeof key, "key%d", j);
		if (kv_ring_group_of(ring, key, strlen(key)) == 1)
			break;
	}
	kv_ring_free(ring);
	node_advance_clock(G.n, 100 * G.cfg.election_ms / G.cfg.tick_ms);
	node_process(G.n);
	gx_settle();
	submit(RINGRAFT__KV__OP__PUT, key, "v1");
	ck_assert_int_eq(G.replies, 1);
	ck_assert_int_eq(G.code, RINGRAFT__KV__CODE__NOT_LEADER); /* nobody campaigned */
	int t = 0;
	for (; t < 300 && G.code != RINGRAFT__KV__CODE__OK; t++) {
		G.now_ms += 10;
		node_tick_timers(G.n);
		node_process(G.n);
		gx_settle();
		submit(RINGRAFT__KV__OP__PUT, key, "v1");
		if (G.replies == 0) /* proposed: until it commits */
			for (int k = 0; k < 100 && G.replies == 0; k++) {
				node_tick_timers(G.n);
				node_process(G.n);
				gx_settle();
			}
	}
	ck_assert_int_eq(G.code, RINGRAFT__KV__CODE__OK);
	ck_assert_int_le(t, 2 * G.cfg.election_ms / G.cfg.tick_ms + 1);
	submit(RINGRAFT__KV__OP__GET, key, NULL); /* a single voter: at once */
	ck_assert_int_eq(G.replies, 1);
	ck_assert_int_eq(G.code, RINGRAFT__KV__CODE__OK);
	ck_assert_str_eq(G.value, "v1");
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("node_groups");
	TCase *tc = tcase_create("groups");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_refuses_bad_requests);
	tcase_add_test(tc, test_added_group_serves_and_survives_restart);
	tcase_add_test(tc, test_creation_durable_only_with_its_batch);
	tcase_add_test(tc, test_hosted_elsewhere);
	tcase_add_test(tc, test_retired_stays_retired);
	tcase_add_test(tc, test_ring_record_applied);
	tcase_add_test(tc, test_ring_record_pushed);
	tcase_add_test(tc, test_clock_runs_no_timer);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
