/* fuzz_client.c — libFuzzer harness for the client port: the frame decoder under the client
 * limit (net/frame.c, fed in pieces), Request decoding (protobuf-c) and everything kvd does
 * with a decoded request (node_submit: the ring epoch, op, key, value, multi-key and group
 * checks of node/service.c, then reads, proposals, apply) in a real node engine over a real
 * WAL and LMDB in a scratch directory: one node, two groups, each led by this node.
 *
 * The engine lives across inputs (opening a WAL and LMDB per input would leave little time to
 * fuzz); inputs are frames of one connection, decoded and submitted in order. Time goes on
 * as in kvd, whose timer ticks whatever its clients do: one tick per input, so the engine's
 * maintenance (checkpoint, log and WAL compaction, every NODE_MAINT_MS) runs, and the Raft
 * logs in memory and the WAL on disk stay bounded (checked after every input). Without it
 * the one long-lived node only grew (libFuzzer's RSS limit stopped a 47-minute run).
 * Checked beyond "no crash": each payload is exactly the stream's bytes at that frame; every
 * submitted request is answered exactly once, with its own id and a known code; a request
 * refused at the boundary (INVALID, TOO_LARGE, answered within node_submit) changed nothing
 * (the WAL got no write for it); an undecodable frame ends the connection as the shell does; no
 * request's memory outlives its answer (LeakSanitizer, per input).
 */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kv/kv.h"
#include "net/frame.h"
#include "node/config.h"
#include "node/engine.h"
#include "node/node_int.h"
#include "proto/kv.pb-c.h"
#include "wal/wal.h"

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "fuzz_client: check failed: %s (line %d)\n", #c,           \
				__LINE__);                                                         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#define REQUESTS_MAX     32 /* requests per input */
#define SNAPSHOT_ENTRIES 1000
/* Compaction runs when a group applied SNAPSHOT_ENTRIES more entries and keeps a quarter of
 * them; maintenance comes every NODE_MAINT_MS / 10 ms = 25 ticks, i.e. at most 25 inputs of
 * at most REQUESTS_MAX requests apart (each at most one entry per group): about 2,050
 * entries. Twice the compaction threshold and then some is a bound no healthy run nears. */
#define LOG_ENTRIES_MAX (4 * SNAPSHOT_ENTRIES)
/* WAL compaction follows the checkpoint (every group's applied state in LMDB): what stays is
 * at most the entries of about two compaction rounds, values of up to 4 KiB: some 16 MiB. */
#define WAL_SEGMENTS_MAX 64 /* of 1 MiB */

static char dir[64];
static struct wal *wal;
static struct kv *kv;
static struct node *node;
static uint64_t now_ms = 1;
static struct wal_batch *pending;
static bool pending_compact;
static uint64_t wal_writes;

struct answer {
	uint64_t id;
	int replies;
	Ringraft__Kv__Code code;
};

/* ------------------------------------------------------------------------------ the shell */

static uint64_t io_now_ms(void *arg)
{
	(void)arg;
	return now_ms;
}
static uint64_t io_now_ns(void *arg)
{
	(void)arg;
	return now_ms * 1000000u;
}
static uint64_t io_wall_ms(void *arg)
{
	(void)arg;
	return 1790000000000ull + now_ms;
}
static int io_peer_send(void *arg, uint64_t to, int field, const ProtobufCMessage *m)
{
	(void)arg, (void)to, (void)field, (void)m;
	return -1; /* a single node has no peer */
}
static int io_peer_send_packed(void *arg, uint64_t to, int field, const uint8_t *p, size_t len)
{
	(void)arg, (void)to, (void)field, (void)p, (void)len;
	return -1;
}
static bool io_peer_up(void *arg, uint64_t id)
{
	(void)arg, (void)id;
	return false;
}
static void io_wal_write(void *arg, struct wal_batch *b, bool compact)
{
	(void)arg;
	CHECK(pending == NULL); /* at most one in flight */
	pending = b;
	pending_compact = compact;
}
static void io_flush(void *arg)
{
	(void)arg;
}

/* node_process, then the WAL write it handed out (made durable at once), until idle. */
static void settle(void)
{
	node_process(node);
	for (int i = 0; i < 1000 && pending != NULL; i++) {
		struct wal_batch *b = pending;
		pending = NULL;
		CHECK(wal_batch_write(wal, b) == WAL_OK);
		wal_writes++;
		if (pending_compact) {
			size_t removed;
			CHECK(wal_compact(wal, &removed) == WAL_OK);
		}
		node_wal_durable(node);
		node_process(node);
	}
	CHECK(pending == NULL);
}

static void tick(void)
{
	now_ms += 10;
	node_tick(node);
	settle();
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st, (void)flag, (void)f;
	return remove(path);
}

static void cleanup(void)
{
	if (node != NULL)
		node_engine_close(node);
	kv_close(kv);
	wal_close(wal);
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	snprintf(dir, sizeof dir, "/tmp/ringraft-fuzz-client-XXXXXX");
	CHECK(mkdtemp(dir) != NULL);
	char sub[128];
	snprintf(sub, sizeof sub, "%s/wal", dir);
	CHECK(mkdir(sub, 0755) == 0);
	struct wal_options wo;
	wal_options_default(&wo);
	wo.segment_bytes = 1 << 20;
	wo.cache_bytes = 1 << 20;
	wo.no_sync = true;
	wo.no_direct_io = true;
	struct wal_corruption corr;
	CHECK(wal_open(sub, &wo, true, &wal, &corr) == WAL_OK);
	snprintf(sub, sizeof sub, "%s/kv", dir);
	CHECK(mkdir(sub, 0755) == 0);
	struct node_config c;
	memset(&c, 0, sizeof c);
	c.id = 1;
	snprintf(c.data_dir, sizeof c.data_dir, "%s", dir);
	snprintf(c.peer_addr, sizeof c.peer_addr, "127.0.0.1:7001");
	snprintf(c.client_addr, sizeof c.client_addr, "127.0.0.1:9001");
	c.members[0].id = 1;
	snprintf(c.members[0].peer_addr, sizeof c.members[0].peer_addr, "127.0.0.1:7001");
	c.n_members = 1;
	c.n_boot = 1;
	c.groups = 2;
	c.cluster_id = 0xf022;
	c.tick_ms = 10;
	c.election_ms = 100;
	c.heartbeat_ms = 20;
	c.snapshot_entries = SNAPSHOT_ENTRIES;
	c.value_max = 1 << 12;
	c.request_timeout_ms = 1000;
	c.log_level = NODE_LOG_ERROR;
	struct kv_options ko;
	kv_options_default(&ko);
	ko.writemap = false;
	ko.map_bytes = 4 << 20;
	ko.map_bytes_max = 256 << 20;
	ko.groups_max = node_group_id_max(c.groups); /* as kvd: + the meta group, + added groups */
	ko.value_max = c.value_max;
	CHECK(kv_open(sub, &ko, &kv) == KV_OK);
	struct node_io io = {
		.seed = 22,
		.now_ms = io_now_ms,
		.now_ns = io_now_ns,
		.wall_ms = io_wall_ms,
		.peer_send = io_peer_send,
		.peer_send_packed = io_peer_send_packed,
		.peer_up = io_peer_up,
		.wal_write = io_wal_write,
		.flush = io_flush,
	};
	CHECK(node_engine_open(&c, &io, wal, kv, 1, &node) == NODE_OK);
	atexit(cleanup);
	/* until both groups have a leader (this node) that can take writes */
	for (int i = 0; i < 2000; i++) {
		tick();
		bool all = true;
		for (uint32_t g = 1; g <= c.groups; g++) {
			struct node_group *grp = node_group(node, g);
			all = all && grp != NULL && grp->raft != NULL &&
			      raft_role_of(grp->raft) == RAFT_LEADER &&
			      raft_commit_of(grp->raft) >= raft_last_index(grp->raft);
		}
		if (all)
			return 0;
	}
	fprintf(stderr, "fuzz_client: no leader after 2000 ticks\n");
	abort();
}

/* Every group's log in memory, and the WAL, stay bounded (see LOG_ENTRIES_MAX). */
static void check_bounded(void)
{
	for (uint32_t i = 1; i <= node_groups_all(node); i++) {
		struct node_group *g = node_group(node, i);
		if (g == NULL || g->raft == NULL)
			continue;
		raft_index first = raft_first_index(g->raft), last = raft_last_index(g->raft);
		CHECK(last < first || last - first + 1 <= LOG_ENTRIES_MAX);
	}
	struct wal_stats st;
	wal_stats_get(wal, &st);
	CHECK(st.segments <= WAL_SEGMENTS_MAX);
}

/* ------------------------------------------------------------------------------ the input */

static void reply_cb(void *client, const Ringraft__Kv__Response *resp)
{
	struct answer *a = client;
	a->replies++;
	a->code = resp->code;
	CHECK(resp->id == a->id);
	/* a Code the protocol defines (BUSY, MOVING, ... follow INTERNAL) */
	CHECK(protobuf_c_enum_descriptor_get_value(&ringraft__kv__code__descriptor, resp->code) !=
	      NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t ctl = data[0];
	data++;
	size--;
	struct net_decoder d;
	net_decoder_init(&d, NET_CLIENT_FRAME_MAX);
	struct answer answers[REQUESTS_MAX];
	int n = 0;
	size_t fed = 0, framed = 0;
	uint32_t rnd = ctl * 2654435761u + 7;
	bool stop = false;
	while (!stop && fed < size && n < REQUESTS_MAX) {
		rnd = rnd * 1103515245u + 12345u;
		size_t piece = (ctl & 1) ? size - fed : 1 + (rnd >> 16) % 61;
		if (piece > size - fed)
			piece = size - fed;
		CHECK(net_decoder_feed(&d, data + fed, piece) == NET_OK);
		fed += piece;
		for (;;) {
			const uint8_t *p;
			uint32_t len;
			int rc = net_decoder_next(&d, &p, &len);
			if (rc == 0)
				break;
			if (rc < 0) {
				CHECK(rc == NET_ETOOBIG);
				stop = true; /* server.c closes the connection */
				break;
			}
			CHECK(framed + NET_FRAME_HEADER + len <= fed);
			CHECK(memcmp(p, data + framed + NET_FRAME_HEADER, len) == 0);
			framed += NET_FRAME_HEADER + len;
			Ringraft__Kv__Request *rq = ringraft__kv__request__unpack(NULL, len, p);
			if (rq == NULL) {
				stop = true; /* the shell refuses it: the connection is closed */
				break;
			}
			struct answer *a = &answers[n++];
			*a = (struct answer){.id = rq->id};
			uint64_t writes = wal_writes;
			node_submit(node, rq, reply_cb, a);
			/* Refused at the boundary: answered within node_submit, and nothing is
			 * proposed. (INVALID also answers an applied command, e.g. INCRBY of a
			 * value that is not a number: that one comes later, from the apply.) */
			bool refused =
				a->replies == 1 && (a->code == RINGRAFT__KV__CODE__INVALID ||
						    a->code == RINGRAFT__KV__CODE__TOO_LARGE);
			settle();
			if (refused)
				CHECK(wal_writes == writes);
			if (n == REQUESTS_MAX)
				break;
		}
	}
	/* Reads wait for a ReadIndex round, writes for their commit: a few ticks, then every
	 * request must have had its one answer (the request timeout is 1 s = 100 ticks). */
	for (int t = 0; t < 150; t++) {
		bool all = true;
		for (int i = 0; i < n; i++)
			all = all && answers[i].replies > 0;
		if (all)
			break;
		tick();
	}
	for (int i = 0; i < n; i++)
		CHECK(answers[i].replies == 1);
	net_decoder_free(&d);
	tick(); /* time goes on between inputs too */
	check_bounded();
	return 0;
}
