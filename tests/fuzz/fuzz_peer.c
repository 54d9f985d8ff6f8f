/* fuzz_peer.c — libFuzzer harness for what a node does with the bytes of a peer connection:
 * the frame decoder (net/frame.c, fed in pieces as reads arrive, under the Hello limit until
 * the first frame, as net/peer.c does), PeerFrame decoding (protobuf-c), the wire-to-core
 * conversion (node/msg.c node_msg_from_pb) and raft_step into a real Raft core (raft/ is
 * pure: no I/O), whose Ready is then handled the way a driver must (persist, advance).
 *
 * Input: byte 0 chooses the read sizes and whether the replica campaigns first; the rest is
 * the stream from peer 2 to node 1 (group 1, voters 1, 2, 3, three entries in its log).
 * Checked beyond "no crash": every payload the decoder hands out is exactly the bytes of the
 * stream at that frame (never past what was fed), an oversize header is refused before any
 * payload, a converted message borrows the decoded entries (never copies past them) and
 * stays within RAFT_MSG_ENTRIES_MAX / RAFT_NODES_MAX, and the core keeps its invariants
 * (term never decreases, commit <= last index, applied <= commit). Client authentication's
 * pushed state (PeerFrame 11) goes through node_auth_state_from_pb, kvd's own decoder: a state
 * it accepts has at most NODE_AUTH_USERS_MAX users with valid names and records, and packs
 * and decodes back to itself.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/user.h"
#include "net/frame.h"
#include "node/auth.h"
#include "node/msg.h"
#include "proto/raft.pb-c.h"
#include "raft/raft.h"

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "fuzz_peer: check failed: %s (line %d)\n", #c, __LINE__);  \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#define ME         1u
#define PEER       2u
#define FRAMES_MAX 64 /* frames handled per input */

static uint64_t last_term;

static void check_core(const struct raft *r)
{
	CHECK(raft_term_of(r) >= last_term);
	last_term = raft_term_of(r);
	CHECK(raft_commit_of(r) <= raft_last_index(r));
	CHECK(raft_applied_of(r) <= raft_commit_of(r));
}

/* Handles every Ready as the driver does (node/driver.c): entries and snapshot markers are
 * "durable" at once; snapshot requests get a small chunk. */
static void drain(struct raft *r)
{
	for (int round = 0; round < 64 && raft_has_ready(r); round++) {
		struct raft_update u;
		raft_ready(r, &u);
		raft_index last = 0;
		raft_term last_t = 0;
		if (u.n_entries > 0) {
			last = u.entries[u.n_entries - 1].index;
			last_t = u.entries[u.n_entries - 1].term;
		}
		bool snap = u.snap_chunk != NULL && u.snap_chunk->done;
		raft_index snap_i = snap ? u.snap_chunk->index : 0;
		raft_term snap_t = snap ? u.snap_chunk->term : 0;
		struct raft_snapshot_request reqs[4];
		size_t n_reqs = u.n_snap_reqs < 4 ? u.n_snap_reqs : 4;
		if (n_reqs)
			memcpy(reqs, u.snap_reqs, n_reqs * sizeof reqs[0]);
		raft_advance(r, &u);
		if (snap)
			raft_persisted(r, snap_i, snap_t);
		if (last)
			raft_persisted(r, last, last_t);
		for (size_t i = 0; i < n_reqs; i++)
			raft_snapshot_chunk(r, reqs[i].to, reqs[i].index, reqs[i].offset, "snap", 4,
					    true, false);
		check_core(r);
	}
}

static struct raft *new_core(uint8_t ctl)
{
	struct raft_config cfg;
	raft_config_default(&cfg, ME, 0x5eed);
	static char data[3][8] = {"a", "bb", "ccc"};
	struct raft_entry ents[3];
	for (int i = 0; i < 3; i++)
		ents[i] = (struct raft_entry){.term = 1,
					      .index = (raft_index)i + 1,
					      .type = RAFT_ENTRY_NORMAL,
					      .data = {data[i], strlen(data[i])}};
	struct raft_restore rs = {0};
	rs.hard_state.term = 1;
	rs.hard_state.commit = 2;
	rs.conf.voters[0] = 1;
	rs.conf.voters[1] = 2;
	rs.conf.voters[2] = 3;
	rs.conf.n_voters = 3;
	rs.entries = ents;
	rs.n_entries = 3;
	rs.applied = 2;
	struct raft *r = raft_new(&cfg, &rs);
	CHECK(r != NULL);
	last_term = raft_term_of(r);
	if (ctl & 1) /* campaign: the peer's votes then count */
		for (uint32_t t = 0; t < 2 * cfg.election_ticks + 2; t++) {
			raft_tick(r);
			drain(r);
		}
	return r;
}

static void step_frame(struct raft *r, struct node_msg_scratch *s, const uint8_t *p, uint32_t len,
		       bool *stop)
{
	Ringraft__Raft__PeerFrame *f = ringraft__raft__peer_frame__unpack(NULL, len, p);
	if (f == NULL) {
		*stop = true; /* peer.c closes the connection */
		return;
	}
	for (size_t i = 0; i < f->n_msgs; i++) {
		const Ringraft__Raft__Message *pb = f->msgs[i];
		/* the driver's filter (node_peer_frame) */
		if (pb->group != 1 || pb->from != PEER || pb->to != ME)
			continue;
		struct raft_message m;
		int rc = node_msg_from_pb(pb, s, &m);
		if (rc < 0) {
			CHECK(rc == NODE_EMALFORMED || rc == NODE_ENOMEM);
			continue;
		}
		CHECK(m.n_entries == pb->n_entries && m.n_entries <= RAFT_MSG_ENTRIES_MAX);
		for (uint32_t k = 0; k < m.n_entries; k++) {
			CHECK(m.entries[k].data.base == (void *)pb->entries[k]->data.data);
			CHECK(m.entries[k].data.len == pb->entries[k]->data.len);
		}
		CHECK(m.snap_conf.n_voters <= RAFT_NODES_MAX &&
		      m.snap_conf.n_learners <= RAFT_NODES_MAX);
		CHECK(m.snap_data.base == (void *)pb->snap_data.data);
		(void)raft_step(r, &m);
		drain(r);
	}
	/* client authentication's state (PeerFrame 11), checked as node_auth_received does */
	for (size_t i = 0; i < f->n_auth_states; i++) {
		const Ringraft__Raft__AuthState *a = f->auth_states[i];
		struct node_auth_state st;
		const char *why = NULL;
		if (node_auth_state_from_pb(a, &st, &why) != 0) {
			CHECK(why != NULL && st.n == 0 && st.users == NULL && !st.known);
			continue;
		}
		CHECK(st.known && !st.confirmed && st.n == a->n_users &&
		      st.n <= NODE_AUTH_USERS_MAX && st.version == a->version);
		for (size_t k = 0; k < st.n; k++) {
			CHECK(kv_user_name_ok(st.users[k].name, strlen(st.users[k].name)));
			CHECK(strcmp(st.users[k].name, a->users[k]->name) == 0);
			CHECK(st.users[k].u.iterations >= KV_USER_ITERATIONS_MIN &&
			      st.users[k].u.iterations <= KV_USER_ITERATIONS_MAX);
		}
		/* what a node saves and pushes decodes back to the same state */
		uint8_t *buf;
		size_t len;
		CHECK(node_auth_state_pack(&st, &buf, &len) == 0);
		Ringraft__Raft__AuthState *back =
			ringraft__raft__auth_state__unpack(NULL, len, buf);
		CHECK(back != NULL);
		struct node_auth_state st2;
		CHECK(node_auth_state_from_pb(back, &st2, &why) == 0);
		CHECK(node_auth_state_same(&st, &st2) && st2.version == st.version);
		node_auth_state_free(&st2);
		ringraft__raft__auth_state__free_unpacked(back, NULL);
		free(buf);
		node_auth_state_free(&st);
	}
	ringraft__raft__peer_frame__free_unpacked(f, NULL);
	raft_tick(r);
	drain(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t ctl = data[0];
	data++;
	size--;
	struct raft *r = new_core(ctl);
	struct node_msg_scratch scratch;
	memset(&scratch, 0, sizeof scratch);
	struct net_decoder d;
	net_decoder_init(&d, NET_PEER_HELLO_FRAME_MAX);
	size_t fed = 0, framed = 0; /* stream bytes fed, and handed out as frames */
	uint32_t rnd = ctl * 2654435761u + 1;
	int frames = 0;
	bool stop = false;
	while (!stop && fed < size && frames < FRAMES_MAX) {
		rnd = rnd * 1103515245u + 12345u;
		size_t piece = (ctl & 2) ? size - fed : 1 + (rnd >> 16) % 97;
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
				CHECK(fed - framed >= NET_FRAME_HEADER);
				const uint8_t *h = data + framed;
				uint32_t n = ((uint32_t)h[0] << 24) | ((uint32_t)h[1] << 16) |
					     ((uint32_t)h[2] << 8) | h[3];
				CHECK(n > d.max_frame);
				stop = true;
				break;
			}
			/* exactly the stream's bytes at this frame, all of them already fed */
			CHECK(framed + NET_FRAME_HEADER + len <= fed);
			CHECK(memcmp(p, data + framed + NET_FRAME_HEADER, len) == 0);
			framed += NET_FRAME_HEADER + len;
			if (frames++ == 0)
				d.max_frame = NET_PEER_FRAME_MAX; /* the Hello was accepted */
			step_frame(r, &scratch, p, len, &stop);
			if (stop || frames >= FRAMES_MAX)
				break;
		}
	}
	net_decoder_free(&d);
	node_msg_scratch_free(&scratch);
	raft_free(r);
	return 0;
}
