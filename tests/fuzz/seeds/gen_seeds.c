/* gen_seeds.c — writes the seed corpora of the fuzz harnesses (tests/fuzz/corpus/<name>/)
 * from real encodings: PeerFrames and Requests packed by protobuf-c, RESP written by the
 * RESP encoder (net/resp.c), WAL segments written by wal/, snapshot streams read from a
 * kv/ environment, and a cluster.conf written by node_config_load. `make fuzz-seeds` runs it;
 * the output is checked in (each file well under 4 KiB), so this only needs running again
 * when a format changes.
 *
 *   gen_seeds OUT_DIR        (OUT_DIR/<harness>/seed-*; a scratch directory is made in /tmp)
 */
#include <dirent.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kv/kv.h"
#include "kv/user.h"
#include "net/frame.h"
#include "net/resp.h"
#include "node/config.h"
#include "proto/kv.pb-c.h"
#include "proto/raft.pb-c.h"
#include "raft/raft.h"
#include "wal/wal.h"

#define SEED_MAX 4000 /* bytes: seeds stay small */

static const char *out_dir;
static char tmp[64];

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "gen_seeds: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

/* ------------------------------------------------------------------------------ output */

struct buf {
	uint8_t b[1 << 16];
	size_t len;
};

static void put(struct buf *b, const void *p, size_t n)
{
	if (b->len + n > sizeof b->b)
		die("seed buffer full");
	memcpy(b->b + b->len, p, n);
	b->len += n;
}

static void put_byte(struct buf *b, uint8_t c)
{
	put(b, &c, 1);
}

static void save(const char *harness, const char *name, const struct buf *b)
{
	if (b->len > SEED_MAX)
		die("%s/%s: %zu bytes, over %d", harness, name, b->len, SEED_MAX);
	char path[512];
	snprintf(path, sizeof path, "%s/%s", out_dir, harness);
	mkdir(path, 0755);
	snprintf(path, sizeof path, "%s/%s/seed-%s", out_dir, harness, name);
	FILE *f = fopen(path, "wb");
	if (f == NULL || fwrite(b->b, 1, b->len, f) != b->len || fclose(f) != 0)
		die("cannot write %s", path);
}

/* A frame: [u32 BE length][packed message]. */
static void put_frame(struct buf *b, const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t h[NET_FRAME_HEADER];
	net_frame_header(h, (uint32_t)n);
	put(b, h, sizeof h);
	if (b->len + n > sizeof b->b)
		die("seed buffer full");
	protobuf_c_message_pack(m, b->b + b->len);
	b->len += n;
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st, (void)flag, (void)f;
	return remove(path);
}

/* ------------------------------------------------------------------------------ peer */

/* One PeerFrame from node 2 to node 1 in group 1 (fuzz_peer.c's replica: voters 1..3,
 * entries 1..3 of term 1). */
static void peer_frame(struct buf *b, Ringraft__Raft__Message **msgs, size_t n, bool hello)
{
	Ringraft__Raft__PeerFrame f = RINGRAFT__RAFT__PEER_FRAME__INIT;
	Ringraft__Raft__Hello h = RINGRAFT__RAFT__HELLO__INIT;
	if (hello) {
		h.cluster_id = 0xf022;
		h.node_id = 2;
		h.client_addr = "127.0.0.1:9002";
		h.incarnation = 7;
		f.hello = &h;
	}
	f.n_msgs = n;
	f.msgs = msgs;
	put_frame(b, &f.base);
}

static Ringraft__Raft__Message msg(uint32_t type, uint64_t term)
{
	Ringraft__Raft__Message m = RINGRAFT__RAFT__MESSAGE__INIT;
	m.group = 1;
	m.type = type;
	m.from = 2;
	m.to = 1;
	m.term = term;
	return m;
}

static void gen_peer(void)
{
	struct buf b = {.len = 0};
	/* a follower: a heartbeat, then AppendEntries after its log, then a conflicting one */
	put_byte(&b, 0);
	peer_frame(&b, NULL, 0, true);
	Ringraft__Raft__Message hb = msg(RAFT_MSG_HEARTBEAT, 2);
	hb.commit = 3;
	hb.context = 5;
	Ringraft__Raft__Message *m1[] = {&hb};
	peer_frame(&b, m1, 1, false);
	Ringraft__Raft__Entry e[3];
	Ringraft__Raft__Entry *ep[3];
	const char *data[] = {"put k v", "", "del k"};
	for (int i = 0; i < 3; i++) {
		ringraft__raft__entry__init(&e[i]);
		e[i].term = 2;
		e[i].index = 4 + (uint64_t)i;
		e[i].data.data = (uint8_t *)data[i];
		e[i].data.len = strlen(data[i]);
		ep[i] = &e[i];
	}
	Ringraft__Raft__Message ap = msg(RAFT_MSG_APPEND, 2);
	ap.log_term = 1;
	ap.index = 3;
	ap.commit = 4;
	ap.n_entries = 3;
	ap.entries = ep;
	Ringraft__Raft__Message *m2[] = {&ap};
	peer_frame(&b, m2, 1, false);
	Ringraft__Raft__Message ap2 = msg(RAFT_MSG_APPEND, 3);
	ap2.log_term = 1;
	ap2.index = 2;
	ap2.commit = 2;
	ap2.n_entries = 1;
	e[0].term = 3;
	e[0].index = 3;
	ap2.entries = ep;
	Ringraft__Raft__Message *m3[] = {&ap2};
	peer_frame(&b, m3, 1, false);
	save("peer", "follower-append", &b);

	/* votes asked of the replica, and a TimeoutNow */
	b.len = 0;
	put_byte(&b, 2);
	peer_frame(&b, NULL, 0, true);
	Ringraft__Raft__Message pv = msg(RAFT_MSG_PREVOTE, 2);
	pv.log_term = 1;
	pv.index = 3;
	Ringraft__Raft__Message v = msg(RAFT_MSG_VOTE, 2);
	v.log_term = 1;
	v.index = 3;
	Ringraft__Raft__Message tn = msg(RAFT_MSG_TIMEOUT_NOW, 2);
	Ringraft__Raft__Message *m4[] = {&pv, &v, &tn};
	peer_frame(&b, m4, 3, false);
	save("peer", "votes", &b);

	/* the replica campaigns (fuzz_peer ctl bit 0): the peer grants, then acknowledges */
	b.len = 0;
	put_byte(&b, 1);
	peer_frame(&b, NULL, 0, true);
	Ringraft__Raft__Message pr = msg(RAFT_MSG_PREVOTE_RESP, 2);
	Ringraft__Raft__Message vr = msg(RAFT_MSG_VOTE_RESP, 2);
	Ringraft__Raft__Message *m5[] = {&pr, &vr};
	peer_frame(&b, m5, 2, false);
	Ringraft__Raft__Message ar = msg(RAFT_MSG_APPEND_RESP, 2);
	ar.index = 4;
	Ringraft__Raft__Message hr = msg(RAFT_MSG_HEARTBEAT_RESP, 2);
	hr.context = 1;
	Ringraft__Raft__Message rj = msg(RAFT_MSG_APPEND_RESP, 2);
	rj.reject = true;
	rj.index = 3;
	rj.hint_index = 1;
	rj.hint_term = 1;
	Ringraft__Raft__Message *m6[] = {&ar, &hr, &rj};
	peer_frame(&b, m6, 3, false);
	Ringraft__Raft__Message tq = msg(RAFT_MSG_TERM_QUERY, 2);
	tq.recovering = true;
	Ringraft__Raft__Message *m7[] = {&tq};
	peer_frame(&b, m7, 1, false);
	save("peer", "leader", &b);

	/* a snapshot in two chunks, with its configuration */
	b.len = 0;
	put_byte(&b, 0);
	peer_frame(&b, NULL, 0, true);
	uint64_t voters[] = {1, 2, 3}, learners[] = {4};
	Ringraft__Raft__Configuration conf = RINGRAFT__RAFT__CONFIGURATION__INIT;
	conf.n_voters = 3;
	conf.voters = voters;
	conf.n_learners = 1;
	conf.learners = learners;
	Ringraft__Raft__Message s1 = msg(RAFT_MSG_SNAPSHOT, 2);
	s1.snap_index = 10;
	s1.snap_term = 2;
	s1.snap_conf = &conf;
	s1.snap_data.data = (uint8_t *)"RRKVSNP1";
	s1.snap_data.len = 8;
	Ringraft__Raft__Message s2 = s1;
	s2.snap_offset = 8;
	s2.snap_done = true;
	s2.snap_data.data = (uint8_t *)"rest";
	s2.snap_data.len = 4;
	Ringraft__Raft__Message *m8[] = {&s1};
	Ringraft__Raft__Message *m9[] = {&s2};
	peer_frame(&b, m8, 1, false);
	peer_frame(&b, m9, 1, false);
	save("peer", "snapshot", &b);

	/* forwarded requests and digests ride in the same frames */
	b.len = 0;
	put_byte(&b, 2);
	Ringraft__Raft__PeerFrame f = RINGRAFT__RAFT__PEER_FRAME__INIT;
	Ringraft__Raft__GroupDigest d = RINGRAFT__RAFT__GROUP_DIGEST__INIT;
	Ringraft__Raft__GroupDigest *dp[] = {&d};
	d.group = 1;
	d.applied = 3;
	d.digest.data = (uint8_t *)"0123456789abcdef";
	d.digest.len = 16;
	f.n_digests = 1;
	f.digests = dp;
	ProtobufCBinaryData fwd = {7, (uint8_t *)"\x08\x01\x20\x01\x2a\x01k"};
	f.n_forwarded_requests = 1;
	f.forwarded_requests = &fwd;
	put_frame(&b, &f.base);
	save("peer", "digest-forward", &b);

	/* client authentication's pushed state (PeerFrame 11): on, two users (fixed salt and
	 * hash bytes: the decoder checks the record's shape, never a password) */
	b.len = 0;
	put_byte(&b, 0);
	peer_frame(&b, NULL, 0, true);
	struct kv_user u = {.role = KV_USER_RW, .iterations = KV_USER_ITERATIONS};
	memset(u.salt, 0x5a, sizeof u.salt);
	memset(u.hash, 0xa5, sizeof u.hash);
	uint8_t rec_rw[KV_USER_RECORD_BYTES], rec_ro[KV_USER_RECORD_BYTES];
	kv_user_record_encode(&u, rec_rw);
	u.role = KV_USER_RO;
	kv_user_record_encode(&u, rec_ro);
	Ringraft__Raft__AuthUser u1 = RINGRAFT__RAFT__AUTH_USER__INIT;
	Ringraft__Raft__AuthUser u2 = RINGRAFT__RAFT__AUTH_USER__INIT;
	u1.name = "admin";
	u1.record.data = rec_rw;
	u1.record.len = sizeof rec_rw;
	u2.name = "reader";
	u2.record.data = rec_ro;
	u2.record.len = sizeof rec_ro;
	Ringraft__Raft__AuthUser *up[] = {&u1, &u2};
	Ringraft__Raft__AuthState st = RINGRAFT__RAFT__AUTH_STATE__INIT;
	st.version = 42;
	st.enabled = true;
	st.n_users = 2;
	st.users = up;
	Ringraft__Raft__AuthState *sp[] = {&st};
	Ringraft__Raft__PeerFrame fa = RINGRAFT__RAFT__PEER_FRAME__INIT;
	fa.n_auth_states = 1;
	fa.auth_states = sp;
	put_frame(&b, &fa.base);
	save("peer", "auth-state", &b);
}

/* ------------------------------------------------------------------------------ client */

static Ringraft__Kv__Request req(uint64_t id, Ringraft__Kv__Op op, const char *key)
{
	Ringraft__Kv__Request r = RINGRAFT__KV__REQUEST__INIT;
	r.id = id;
	r.op = op;
	if (key) {
		r.key.data = (uint8_t *)key;
		r.key.len = strlen(key);
	}
	return r;
}

static ProtobufCBinaryData bin(const char *s)
{
	return (ProtobufCBinaryData){strlen(s), (uint8_t *)s};
}

static void gen_client(void)
{
	struct buf b = {.len = 0};
	/* writes and reads of one session */
	put_byte(&b, 0);
	Ringraft__Kv__Request r = req(1, RINGRAFT__KV__OP__PUT, "apple");
	r.value = bin("red");
	r.client_id = 42;
	r.seq = 1;
	put_frame(&b, &r.base);
	r = req(2, RINGRAFT__KV__OP__GET, "apple");
	put_frame(&b, &r.base);
	r = req(3, RINGRAFT__KV__OP__CAS, "apple");
	r.expected = bin("red");
	r.value = bin("green");
	r.client_id = 42;
	r.seq = 2;
	put_frame(&b, &r.base);
	r = req(4, RINGRAFT__KV__OP__GET, "apple");
	r.consistency = RINGRAFT__KV__CONSISTENCY__SERIALIZABLE;
	put_frame(&b, &r.base);
	r = req(5, RINGRAFT__KV__OP__DELETE, "apple");
	r.return_old = true;
	put_frame(&b, &r.base);
	save("client", "put-get-cas-delete", &b);

	/* numbers and expiry */
	b.len = 0;
	put_byte(&b, 1);
	r = req(10, RINGRAFT__KV__OP__INCRBY, "counter");
	r.delta = -5;
	put_frame(&b, &r.base);
	r = req(11, RINGRAFT__KV__OP__PUT, "session");
	r.value = bin("tok");
	r.ttl_ms = 60000;
	put_frame(&b, &r.base);
	r = req(12, RINGRAFT__KV__OP__TTL, "session");
	put_frame(&b, &r.base);
	r = req(13, RINGRAFT__KV__OP__EXPIRE, "counter");
	r.expire_at_ms = 1790000100000ull;
	put_frame(&b, &r.base);
	r = req(14, RINGRAFT__KV__OP__PERSIST, "counter");
	put_frame(&b, &r.base);
	save("client", "incr-expire", &b);

	/* multi-key requests (keys of one group and of two) and a scan */
	b.len = 0;
	put_byte(&b, 0);
	Ringraft__Kv__KeyValue kv1 = RINGRAFT__KV__KEY_VALUE__INIT, kv2 = kv1;
	kv1.key = bin("{u}a");
	kv1.value = bin("1");
	kv2.key = bin("{u}b");
	kv2.value = bin("2");
	Ringraft__Kv__KeyValue *kvs[] = {&kv1, &kv2};
	r = req(20, RINGRAFT__KV__OP__MSET, NULL);
	r.n_kvs = 2;
	r.kvs = kvs;
	put_frame(&b, &r.base);
	ProtobufCBinaryData keys[] = {bin("{u}a"), bin("{u}b"), bin("other")};
	r = req(21, RINGRAFT__KV__OP__MGET, NULL);
	r.n_keys = 2;
	r.keys = keys;
	put_frame(&b, &r.base);
	r = req(22, RINGRAFT__KV__OP__MDEL, NULL);
	r.n_keys = 3;
	r.keys = keys;
	put_frame(&b, &r.base);
	r = req(23, RINGRAFT__KV__OP__SCAN, "");
	r.group = 1;
	r.limit = 10;
	put_frame(&b, &r.base);
	save("client", "multi-scan", &b);

	/* the node's own requests, and ones refused at the boundary */
	b.len = 0;
	put_byte(&b, 2);
	r = req(30, RINGRAFT__KV__OP__STATUS, NULL);
	put_frame(&b, &r.base);
	r = req(31, RINGRAFT__KV__OP__PING, NULL);
	put_frame(&b, &r.base);
	r = req(32, RINGRAFT__KV__OP__DIGEST, NULL);
	r.group = 2;
	put_frame(&b, &r.base);
	r = req(33, RINGRAFT__KV__OP__TRANSFER_LEADER, NULL);
	r.group = 1;
	r.target = 3;
	put_frame(&b, &r.base);
	r = req(34, RINGRAFT__KV__OP__PUT, ""); /* empty key */
	put_frame(&b, &r.base);
	r = req(35, RINGRAFT__KV__OP__REAP, "k"); /* internal op */
	put_frame(&b, &r.base);
	r = req(36, RINGRAFT__KV__OP__GET, "k");
	r.ring_epoch = 99; /* stale */
	put_frame(&b, &r.base);
	char big[600];
	memset(big, 'k', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	r = req(37, RINGRAFT__KV__OP__GET, big); /* key over 511 bytes */
	put_frame(&b, &r.base);
	save("client", "admin-and-refused", &b);
}

/* ------------------------------------------------------------------------------ resp */

static void gen_resp(void)
{
	struct net_resp_buf r = {0};
	struct buf b = {.len = 0};
	/* commands mode (ctl bit 0), pipelined: arrays of bulk strings and an inline command */
	const char *cmds[][4] = {{"SET", "k", "v", NULL},
				 {"GET", "k", NULL, NULL},
				 {"MSET", "a", "1", NULL},
				 {"HELLO", "3", NULL, NULL}};
	for (size_t i = 0; i < 4; i++) {
		size_t n = 0;
		while (n < 4 && cmds[i][n])
			n++;
		net_resp_put_array(&r, n);
		for (size_t k = 0; k < n; k++)
			net_resp_put_str(&r, cmds[i][k]);
	}
	net_resp_put_raw(&r, "PING hello\r\n", 12);
	put_byte(&b, 1);
	put_byte(&b, 7);
	put(&b, r.p, r.len);
	save("resp", "commands", &b);

	/* reply mode: every RESP3 type, nested (depth up to 4) */
	r.len = 0;
	net_resp_put_map(&r, 2, 3);
	net_resp_put_str(&r, "server");
	net_resp_put_str(&r, "ringraft");
	net_resp_put_str(&r, "modules");
	net_resp_put_array(&r, 6);
	net_resp_put_int(&r, -42);
	net_resp_put_null(&r, 3);
	net_resp_put_bool(&r, true, 3);
	net_resp_put_double(&r, 1.5, 3);
	net_resp_put_set(&r, 2, 3);
	net_resp_put_simple(&r, "OK");
	net_resp_put_error(&r, "ERR wrong");
	net_resp_put_verbatim(&r, "a:1\r\n", 5, 3);
	b.len = 0;
	put_byte(&b, 0x60); /* reply mode, depth_max 4 */
	put_byte(&b, 30);
	put(&b, r.p, r.len);
	save("resp", "resp3-values", &b);

	/* reply mode, RESP2 */
	r.len = 0;
	net_resp_put_array(&r, 3);
	net_resp_put_bulk(&r, "x\0y", 3);
	net_resp_put_null(&r, 2);
	net_resp_put_null_array(&r, 2);
	net_resp_put_map(&r, 1, 2);
	net_resp_put_str(&r, "k");
	net_resp_put_int(&r, 7);
	b.len = 0;
	put_byte(&b, 0x20);
	put_byte(&b, 3);
	put(&b, r.p, r.len);
	save("resp", "resp2-values", &b);
	free(r.p);
}

/* ------------------------------------------------------------------------------ wal */

/* The bytes of a segment up to its last non-zero byte (rounded up to 8): segments are
 * preallocated with zeroes, which recovery reads as the end of the data. */
static void put_segment(struct buf *b, const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		die("cannot read %s", path);
	static uint8_t seg[1 << 20];
	size_t n = fread(seg, 1, sizeof seg, f);
	fclose(f);
	while (n > 0 && seg[n - 1] == 0)
		n--;
	n = (n + 7) & ~(size_t)7;
	put(b, seg, n);
}

static void gen_wal(void)
{
	char dir[128];
	snprintf(dir, sizeof dir, "%s/wal", tmp);
	mkdir(dir, 0755);
	struct wal_options o;
	wal_options_default(&o);
	o.segment_bytes = 64u << 10;
	o.cache_bytes = 0;
	o.no_sync = true;
	o.no_direct_io = true;
	struct wal *w;
	if (wal_open(dir, &o, false, &w, NULL) != WAL_OK)
		die("wal_open");
	struct wal_batch *bt = wal_batch_new();
	struct raft_hard_state hs = {.term = 1, .vote = 1, .commit = 0};
	char data[3][16] = {"put a 1", "put b 2", ""};
	struct raft_entry e[3];
	for (int i = 0; i < 3; i++)
		e[i] = (struct raft_entry){.term = 1,
					   .index = (raft_index)i + 1,
					   .type = RAFT_ENTRY_NORMAL,
					   .data = {data[i], strlen(data[i])}};
	struct raft_conf conf = {.voters = {1, 2, 3}, .n_voters = 3};
	/* batch 1: two groups' hard states and entries */
	if (wal_batch_hard_state(bt, 1, &hs) || wal_batch_entries(bt, 1, e, 3) ||
	    wal_batch_hard_state(bt, 2, &hs) || wal_batch_entries(bt, 2, e, 2) ||
	    wal_batch_write(w, bt))
		die("wal batch 1");
	wal_batch_reset(bt);
	/* batch 2: a new term truncates group 1's tail; group 2 records a snapshot and a
	 * checkpoint; the commit moves */
	hs.term = 2;
	hs.commit = 2;
	e[0].term = 2;
	e[0].index = 3;
	if (wal_batch_hard_state(bt, 1, &hs) || wal_batch_truncate(bt, 1, 3) ||
	    wal_batch_entries(bt, 1, e, 1) || wal_batch_snapshot(bt, 2, 5, 1, &conf) ||
	    wal_batch_checkpoint(bt, 2, 5) || wal_batch_write(w, bt))
		die("wal batch 2");
	/* batch 3: the recovering flag (the extended hard state record) */
	wal_batch_reset(bt);
	hs.recovering = true;
	if (wal_batch_hard_state(bt, 3, &hs) || wal_batch_write(w, bt))
		die("wal batch 3");
	wal_batch_free(bt);
	wal_close(w);
	char seg[256];
	snprintf(seg, sizeof seg, "%s/0000000000000001.wal", dir);
	const struct {
		const char *name;
		uint8_t ctl, split;
	} variants[] = {{"three-batches", 0, 0},
			{"three-batches-sealed", 4, 0},
			{"salvage", 1, 0},
			{"two-segments-sealed", 6, 9}};
	for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
		struct buf b = {.len = 0};
		put_byte(&b, variants[i].ctl);
		put_byte(&b, variants[i].split);
		put_segment(&b, seg);
		save("wal", variants[i].name, &b);
	}
}

/* ------------------------------------------------------------------------------ snapshot */

static void apply_put(struct kv *kv, raft_index index, const char *key, const char *value,
		      uint64_t expire_at_ms)
{
	struct kv_cmd c;
	memset(&c, 0, sizeof c);
	c.op = KV_OP_PUT;
	c.key = key;
	c.key_len = strlen(key);
	c.value = value;
	c.value_len = strlen(value);
	c.expire_at_ms = expire_at_ms;
	c.client_id = 9;
	c.seq = index;
	struct raft_buf b;
	if (kv_cmd_encode(kv, &c, &b) != KV_OK)
		die("kv_cmd_encode");
	struct raft_entry e = {.term = 1, .index = index, .type = RAFT_ENTRY_NORMAL, .data = b};
	struct raft_conf conf = {.voters = {1}, .n_voters = 1};
	if (kv_apply(kv, 1, &e, 1, &conf, NULL, NULL) != KV_OK)
		die("kv_apply");
	free(b.base);
}

static void gen_snapshot(void)
{
	char dir[128];
	snprintf(dir, sizeof dir, "%s/kv", tmp);
	mkdir(dir, 0755);
	struct kv_options o;
	kv_options_default(&o);
	o.writemap = false;
	o.map_bytes = 4u << 20;
	o.groups_max = 2;
	struct kv *kv;
	if (kv_open(dir, &o, &kv) != KV_OK)
		die("kv_open");
	const char *names[] = {"empty", "three-keys", "five-keys-expiry"};
	raft_index index = 0;
	for (int s = 0; s < 3; s++) {
		if (s == 1) {
			apply_put(kv, ++index, "alpha", "1", 0);
			apply_put(kv, ++index, "beta", "two", 0);
			apply_put(kv, ++index, "gamma", "three", 0);
		}
		if (s == 2) {
			apply_put(kv, ++index, "delta", "4444", 1790000000000ull);
			apply_put(kv, ++index, "epsilon", "", 0);
		}
		struct kv_snapshot *snap;
		if (kv_snapshot_begin(kv, 1, &snap) != KV_OK)
			die("kv_snapshot_begin");
		struct buf b = {.len = 0};
		put_byte(&b, (uint8_t)(s == 2 ? 4 : 0)); /* chunked, or in one piece */
		bool done = false;
		while (!done) {
			size_t got;
			if (b.len + 512 > sizeof b.b ||
			    kv_snapshot_read(snap, b.b + b.len, 512, &got, &done) != KV_OK)
				die("kv_snapshot_read");
			b.len += got;
		}
		kv_snapshot_end(snap);
		save("snapshot", names[s], &b);
	}
	kv_close(kv);
}

/* ------------------------------------------------------------------------------ config */

static void put_args(struct buf *b, const char *const *args)
{
	for (size_t i = 0; args[i]; i++) {
		if (i > 0)
			put_byte(b, 0);
		put(b, args[i], strlen(args[i]));
	}
}

static void gen_config(void)
{
	const char *first[] = {"--id",
			       "2",
			       "--cluster",
			       "1=127.0.0.1:7001,2=127.0.0.1:7002,3=[::1]:7003",
			       "--client-addr",
			       "127.0.0.1:9002",
			       "--resp-addr=127.0.0.1:6379",
			       "--groups",
			       "16",
			       "--election-ms",
			       "500",
			       "--heartbeat-ms",
			       "50",
			       "--log-level",
			       "info",
			       NULL};
	static struct buf b;
	put_args(&b, first);
	save("config", "first-start", &b);

	/* flags and a --config file (the harness writes the file) */
	b.len = 0;
	const char *flags[] = {"--id=1", "--balance-leaders", "off", NULL};
	put_args(&b, flags);
	put(&b, "\0\0", 2);
	const char *file = "# kvd settings\n"
			   "cluster = 1=10.0.0.1:7000, 2=10.0.0.2:7000\n"
			   "--client-addr = 10.0.0.1:9000\n"
			   "value-max = 65536\n"
			   "metrics-addr = 10.0.0.1:9100\n"
			   "wal-no-sync = yes\n";
	put(&b, file, strlen(file));
	save("config", "config-file", &b);

	/* a restart: the cluster.conf a first start wrote, and one tunable flag */
	char data_dir[128];
	snprintf(data_dir, sizeof data_dir, "%s/node", tmp);
	char *argv[] = {"kvd",
			"--data-dir",
			data_dir,
			"--id",
			"1",
			"--cluster",
			"1=127.0.0.1:7001,2=127.0.0.1:7002",
			"--client-addr",
			"127.0.0.1:9001",
			NULL};
	struct node_config cfg;
	char err[256];
	if (node_config_load(9, argv, &cfg, err, sizeof err) != 0)
		die("node_config_load: %s", err);
	char path[256];
	snprintf(path, sizeof path, "%s/cluster.conf", data_dir);
	b.len = 0;
	const char *restart[] = {"--tick-ms", "5", NULL};
	put_args(&b, restart);
	put(&b, "\0\0\0\0", 4); /* no --config file */
	size_t persisted = b.len;
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		die("no %s", path);
	b.len += fread(b.b + b.len, 1, sizeof b.b - b.len, f);
	fclose(f);
	save("config", "restart-persisted", &b);

	/* a conflicting identity flag at restart */
	const char *conflict[] = {"--groups", "4", NULL};
	static struct buf c;
	put_args(&c, conflict);
	put(&c, "\0\0\0\0", 4);
	put(&c, b.b + persisted, b.len - persisted);
	save("config", "restart-conflict", &c);
}

int main(int argc, char **argv)
{
	if (argc != 2)
		die("usage: gen_seeds OUT_DIR");
	out_dir = argv[1];
	mkdir(out_dir, 0755);
	snprintf(tmp, sizeof tmp, "/tmp/ringraft-seeds-XXXXXX");
	if (mkdtemp(tmp) == NULL)
		die("mkdtemp");
	gen_peer();
	gen_client();
	gen_resp();
	gen_wal();
	gen_snapshot();
	gen_config();
	nftw(tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}
