/* engine.h — the node engine (DESIGN.md 12, docs/DESIGN-NOTES.md "The node engine"): every
 * Raft group of one node with its pending client requests, held messages, waiting reads,
 * snapshot streams, scrub and digests. Pure like raft/: no libuv, thread, socket, clock or
 * randomness of its own. Time comes from node_io.now_ms; everything that leaves the node goes
 * out through node_io; the WAL and LMDB are the backends handed to node_engine_open.
 *
 * Two shells drive it: kvd's libuv shell (node/shell.c: loop, timers, sockets, the WAL writer
 * thread, signals) and the whole-node simulator (tests/nodesim: a virtual clock, a simulated
 * network, a disk that loses what was not yet made durable).
 *
 * The contract, one thread, every call from the shell:
 *   events in:  node_submit        a decoded client request (answered exactly once, by reply)
 *               node_peer_frame    a frame from a connected peer
 *               node_peer_up/down  a peer link came up (with the peer's Hello) / went down
 *               node_tick          every cfg.tick_ms (= node_tick_timers + node_advance_clock
 *                                  by 1; with leases the shell calls the two apart, below)
 *               node_wal_durable   the batch handed out by io.wal_write is durable
 *               node_stop          begin a clean stop (refuse requests, hand leaderships off)
 *   a turn:     node_process       after any event(s): every group's Ready is handled — WAL
 *                                  records go into the turn's batch, messages out through
 *                                  io.peer_send (those that must wait for the batch are held
 *                                  and sent from node_wal_durable), committed entries applied,
 *                                  requests answered; then the batch is handed to
 *                                  io.wal_write when none is in flight, and io.flush.
 * Effects: io.peer_send* and io.reply may be called from any event; io.wal_write only from
 * node_process; io.flush at the end of node_process.
 */
#ifndef RINGRAFT_NODE_ENGINE_H
#define RINGRAFT_NODE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/config.h"
#include "node/node_err.h"
#include "proto/kv.pb-c.h"
#include "proto/raft.pb-c.h"

struct node;
struct wal;
struct wal_batch;
struct kv_ckpt;
struct kv;
struct node_metrics;
struct node_addrbook;

/* The PeerFrame fields a peer_send carries (the same numbers as net/peer.h's
 * NET_PEER_FIELD_*, checked where the shell maps them). */
enum {
	NODE_FIELD_MSG = 2,      /* PeerFrame.msgs: a Raft message */
	NODE_FIELD_FWD_REQ = 3,  /* PeerFrame.forwarded_requests */
	NODE_FIELD_FWD_RESP = 4, /* PeerFrame.forwarded_responses */
	NODE_FIELD_DIGEST = 5,   /* PeerFrame.digests */
	NODE_FIELD_GONE = 6,     /* PeerFrame.gone */
	NODE_FIELD_MEMBERS = 7,  /* PeerFrame.member_maps */
	NODE_FIELD_CONFS = 8,    /* PeerFrame.confs */
	NODE_FIELD_AUTH = 11,    /* PeerFrame.auth_states */
};

/* A client's answer: called exactly once per node_submit, with the response (borrowed: copy
 * what must outlive the call). */
typedef void (*node_reply_fn)(void *client, const Ringraft__Kv__Response *resp);

/* What the engine needs from its shell. */
struct node_io {
	void *arg;
	/* Where the groups' randomness comes from (election timeouts): the shell picks it (kvd
	 * from its clock, the simulator from the seed); the engine draws nothing else. */
	uint64_t seed;
	/* A monotonic clock in ms (deadlines, leases of idle streams, balancing) and in ns
	 * (latency metrics only). */
	uint64_t (*now_ms)(void *arg);
	uint64_t (*now_ns)(void *arg);
	/* The wall clock, ms since the Unix epoch: only key expiry is judged by it (expire.c). */
	uint64_t (*wall_ms)(void *arg);
	/* Queues one PeerFrame field (NODE_FIELD_*) for peer `to`: m to be packed, or bytes
	 * already packed. 0, or < 0 when it cannot go (unknown peer, link down, queue full): the
	 * engine then reports the peer unreachable to the group. */
	int (*peer_send)(void *arg, uint64_t to, int field, const ProtobufCMessage *m);
	int (*peer_send_packed)(void *arg, uint64_t to, int field, const uint8_t *buf, size_t len);
	bool (*peer_up)(void *arg, uint64_t id);
	/* Write the batch and make it durable, then call node_wal_durable (later, from the
	 * shell's thread). At most one in flight. compact: then run wal_compact. A failure is the
	 * shell's to handle: a failed fsync is never retried (DESIGN.md 4), the node stops. */
	void (*wal_write)(void *arg, struct wal_batch *b, bool compact);
	/* End of a turn: send what was queued for peers and clients. */
	void (*flush)(void *arg);
	/* An LMDB checkpoint was begun (snapshot.c): run kv_checkpoint_sync(c), off the loop if
	 * it likes (its fsyncs take long on a busy disk, and the loop must keep ticking), then
	 * call node_checkpoint_done from the engine's thread. At most one in flight. NULL: the
	 * engine syncs inline. */
	void (*checkpoint)(void *arg, struct kv_ckpt *c);
	/* The cluster map changed (members.c; node_config_of(n)->members): dial new members,
	 * forget removed ones, save it. self_removed: this node was removed. May be NULL. */
	void (*members_changed)(void *arg, bool self_removed);
	/* Client authentication's state changed (auth.c): save it (node_auth_saved_state) for
	 * the next start. May be NULL. */
	void (*auth_changed)(void *arg);
};

/* Rebuilds every group from the WAL and LMDB (both open, borrowed until node_engine_close;
 * the WAL writer must be the shell's only other user of wal). cfg and io are copied.
 * incarnation: the data directory's id (identity.h). Returns NODE_OK or an error (logged). */
int node_engine_open(const struct node_config *cfg, const struct node_io *io, struct wal *wal,
		     struct kv *kv, uint64_t incarnation, struct node **out);
/* Frees the groups and requests (a request still waiting is dropped unanswered: the shell
 * closes its clients first). Does not close the WAL or LMDB. */
void node_engine_close(struct node *n);

/* Events. rq is taken (freed by the engine). */
void node_submit(struct node *n, Ringraft__Kv__Request *rq, node_reply_fn reply, void *client);
void node_peer_frame(struct node *n, uint64_t from, const Ringraft__Raft__PeerFrame *f);
/* Returns true if the peer's client address changed (the shell then saves the addrbook). */
bool node_peer_up(struct node *n, uint64_t id, const char *client_addr, uint64_t incarnation);
void node_peer_down(struct node *n, uint64_t id);
void node_tick(struct node *n);
/* Time has two parts (raft/raft.h, raft_tick): timers and a clock. node_tick_timers is
 * node_tick without the clock: the groups' Raft timers, request deadlines, maintenance. Call it
 * once per timer callback however late it runs, so that a stalled loop does not run out the
 * election timers before it reads the heartbeats waiting in its sockets. node_advance_clock
 * advances the clock of every awake group by ticks (O(1) per group; quiesced groups hold no
 * lease and are skipped until they wake), and runs nothing else. With cfg.lease_reads a
 * leader's clock must keep pace with real time and never run ahead of it: the shell advances
 * it to the ticks due by its monotonic clock before it hands the engine any other event
 * (node/shell.c). */
void node_tick_timers(struct node *n);
void node_advance_clock(struct node *n, uint64_t ticks);
void node_wal_durable(struct node *n);
/* The checkpoint handed to io.checkpoint is synced (or failed): the engine ends it. */
void node_checkpoint_done(struct node *n);
void node_stop(struct node *n);

/* The data directory's file system is full: logs what failed and ends the process with
 * NODE_EXIT_DISK_FULL. Every acknowledged write is in the WAL already (it was acknowledged
 * only once durable), so freeing space and starting the node again loses nothing. */
void node_stop_disk_full(struct node *n, uint32_t group, const char *what)
	__attribute__((noreturn));

/* The bytes a request counts against the load bounds (--max-inflight-bytes, and the shell's
 * --conn-max-inflight-bytes): its keys and values, plus a little for the rest. */
uint32_t node_request_bytes(const Ringraft__Kv__Request *rq);

/* The turn (see above). */
void node_process(struct node *n);

/* State the shell reads. */
bool node_stopping(const struct node *n);
/* Stopping, and the handoff is over (no group led, or its deadline passed): peers are to be
 * ignored from now on, so the batch pending is the last one. */
bool node_draining(struct node *n);
/* No batch in flight and nothing waiting to be written. */
bool node_write_idle(const struct node *n);
struct node_metrics *node_metrics_of(struct node *n);
const struct node_config *node_config_of(const struct node *n);
/* Client authentication (auth.c): whether it is on as this node knows it (true also while
 * it is UNCONFIRMED: fail closed); the mode (auth.h); the stored record of user `name` (0, or
 * -1 if there is none); whether `role` (kv/user.h) may run op. */
struct kv_user;
bool node_auth_on(struct node *n);
int node_auth_mode(struct node *n); /* enum node_auth_mode */
/* The state to save in DIR/auth.state (authfile.c), packed as an AuthState into *buf
 * (malloc'd): 0, or -1 when nothing confirmed is known (only the file's, or nothing) or out
 * of memory. */
int node_auth_saved_state(struct node *n, uint8_t **buf, size_t *len);
/* At start, before peers connect: the state saved in DIR/auth.state (m), or NULL when the
 * file was damaged (then: on, no users known, until the meta group's leader says more). */
void node_auth_load(struct node *n, const Ringraft__Raft__AuthState *m);
int node_auth_lookup(struct node *n, const char *name, struct kv_user *out);
bool node_auth_allows(int role, Ringraft__Kv__Op op);
/* The cluster map learned from the meta group (members.c), for the shell to save: the records
 * (added members, removed ones; strings borrowed from n) and the epoch. */
size_t node_members_map(struct node *n, Ringraft__Kv__NodeInfo *infos,
			Ringraft__Kv__NodeInfo **ptrs, uint64_t *epoch);
/* Takes a map saved by node_members_map (at start, before peers connect). 0, or -1 when it
 * is malformed (then ignored). */
int node_members_load(struct node *n, const Ringraft__Kv__MemberMap *m);
/* Groups created while the node runs (node/groups.c, issue 18). Each is an event like the
 * others: node_process follows, and the change is durable with the WAL batch it hands out.
 *
 * node_group_add: group `id` (after the meta group's: cfg.groups + 2 .. node_group_id_max)
 * exists from now on, with `replicas` (n_replicas distinct node ids, borrowed) as its initial
 * voters. If this node is one of them it hosts an empty replica that starts as a bootstrap
 * group does (term 0, recovering until the group's first leader), else it only records the
 * hosts (to forward the group's requests). Asking again for an existing group changes nothing
 * (NODE_OK), whatever the replicas; ids are never reused, so asking again for a removed one
 * is the caller's error. NODE_EINVAL: a bad id or replica list, or the node is stopping.
 * node_group_remove: the added group `id` stops existing here: its replica (if any) is emptied,
 * waiting requests are answered, and a restart does not bring it back. NODE_EINVAL if it is
 * not an added group that exists here.
 * node_group_exists: whether group id exists here, and (hosted, may be NULL) has a replica.
 * node_ring_set: the ring keys are placed by from now on: the group ids (borrowed; not the
 * meta group) and the epoch requests are checked against. The engine starts with 1..groups
 * at NODE_RING_EPOCH; a key of a group that does not exist here is answered UNAVAILABLE. */
int node_group_add(struct node *n, uint32_t id, const uint64_t *replicas, size_t n_replicas);
int node_group_remove(struct node *n, uint32_t id);
bool node_group_exists(struct node *n, uint32_t id, bool *hosted);
int node_ring_set(struct node *n, const uint32_t *ids, size_t n_ids, uint64_t epoch);
/* The ring change record this node knows (issue 18): 0 when none, else its outcome (kv/reshard.h
 * enum kv_reshard_outcome: 1 moving, 2 complete, 3 abandoned) and *to_epoch its new epoch. */
int node_ring_change_outcome(struct node *n, uint64_t *to_epoch);
/* Other nodes' client addresses (empty at open: kvd's shell loads peers.conf into it). */
struct node_addrbook *node_addrbook_of(struct node *n);

#endif
