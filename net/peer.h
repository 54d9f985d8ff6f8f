/* peer.h — the peer transport: one TCP connection per pair of nodes carrying every group.
 * The lower id dials, Hello first; everything appended for a peer in one loop turn leaves as ONE
 * PeerFrame at net_peers_flush(); outbound bytes per peer are bounded (NET_PEER_QUEUE_BYTES_MAX:
 * then NET_EFULL, the caller reports the peer unreachable); broken links redial with backoff.
 */
#ifndef RINGRAFT_NET_PEER_H
#define RINGRAFT_NET_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "net/frame.h"
#include "net/peer_auth.h"
#include "net/tls.h"
#include "proto/raft.pb-c.h"

#define NET_PEER_FIELD_MSG      2 /* PeerFrame.msgs */
#define NET_PEER_FIELD_FWD_REQ  3 /* PeerFrame.forwarded_requests */
#define NET_PEER_FIELD_FWD_RESP 4 /* PeerFrame.forwarded_responses */
#define NET_PEER_FIELD_DIGEST   5 /* PeerFrame.digests */
#define NET_PEER_FIELD_GONE     6 /* PeerFrame.gone */
#define NET_PEER_FIELD_MEMBERS  7 /* PeerFrame.member_maps */
#define NET_PEER_FIELD_CONFS    8 /* PeerFrame.confs */
#define NET_PEER_FIELD_AUTH     11 /* PeerFrame.auth_states */

struct net_peers_cbs {
	/* A whole PeerFrame from peer `from` (hello already checked). Borrowed for the call. */
	void (*on_frame)(void *arg, uint64_t from, const Ringraft__Raft__PeerFrame *f);
	/* The link to `id` came up; client_addr is borrowed for the call; incarnation is the
	 * identity of the peer's data directory (0 if it sent none). Called before any frame of
	 * the new link is delivered. */
	void (*on_up)(void *arg, uint64_t id, const char *client_addr, uint64_t incarnation);
	void (*on_down)(void *arg, uint64_t id);
	/* An event worth a log line (level 0 = error .. 3 = debug); msg borrowed. */
	void (*on_log)(void *arg, int level, uint64_t peer, const char *msg);
};

struct net_peers;

/* Creates the transport on `loop` (borrowed; must outlive it). Strings are copied. */
int net_peers_new(uv_loop_t *loop, uint64_t self_id, uint64_t cluster_id, const char *listen_addr,
		  const char *self_client_addr, const struct net_peers_cbs *cbs, void *arg,
		  struct net_peers **out);
/* The identity of our data directory, sent in every Hello (before net_peers_start). */
void net_peers_set_incarnation(struct net_peers *p, uint64_t incarnation);
/* Mutual TLS on every link (before net_peers_start; ctx borrowed, must outlive p): a link is
 * up only when both sides' certificates verify against ctx's CA; a refusal is logged with
 * OpenSSL's reason. */
void net_peers_set_tls(struct net_peers *p, SSL_CTX *ctx);
/* Peer authentication (before net_peers_start; s copied): every link must prove it holds one
 * of the secrets (net/peer_auth.h) in its Hello before any frame crosses it; a refusal closes
 * the connection, is counted (net_peers_auth_refused) and logged, at most once a second per
 * reason. s->n == 0 leaves it off. */
void net_peers_set_secrets(struct net_peers *p, const struct net_peer_secrets *s);
enum net_peer_refusal {
	NET_PEER_REFUSED_NO_PROOF,    /* a Hello without the nonce or proof it must carry */
	NET_PEER_REFUSED_BAD_PROOF,   /* proofs made with none of our secrets */
	NET_PEER_REFUSED_EARLY_FRAME, /* anything but the Hello before the peer proved */
	NET_PEER_REFUSALS
};
const char *net_peer_refusal_name(enum net_peer_refusal r); /* "no-proof", ... (static) */
/* Connections refused for reason r since the transport was made. */
uint64_t net_peers_auth_refused(const struct net_peers *p, enum net_peer_refusal r);
/* Declares a peer (before net_peers_start). NET_EADDR on a bad address. */
int net_peers_add(struct net_peers *p, uint64_t id, const char *addr);
/* Declares a peer while running (a member added to the cluster): dialled at once when its id is
 * higher than ours (the lower id dials). NET_EADDR, NET_EPROTO (known already, or full). */
int net_peers_add_live(struct net_peers *p, uint64_t id, const char *addr);
bool net_peers_known(const struct net_peers *p, uint64_t id);
/* A peer removed from the cluster: dialled only every NET_PEER_BACKOFF_MAX_MS, so that a
 * removed node that comes back is told it was removed (the engine sends it the cluster map)
 * and stops, at little cost while it is gone for good. */
void net_peers_forget(struct net_peers *p, uint64_t id);
/* Binds the listener and starts dialling. NET_EIO (with uv's message logged) on bind failure. */
int net_peers_start(struct net_peers *p);
/* Appends one length-delimited field (field number + bytes, copied) to this turn's frame for
 * `to`. NET_ECLOSED when the link is down, NET_EFULL when the bound would be exceeded,
 * NET_EINVAL-like NET_EPROTO for an unknown peer. */
int net_peers_append(struct net_peers *p, uint64_t to, uint32_t field, const void *data,
		     size_t len);
/* Same, packing a protobuf message straight into the frame buffer. */
int net_peers_append_msg(struct net_peers *p, uint64_t to, uint32_t field,
			 const ProtobufCMessage *m);
/* Writes every peer's gathered frame (one uv_write per peer). */
void net_peers_flush(struct net_peers *p);
bool net_peers_up(const struct net_peers *p, uint64_t id);
/* Outbound bytes for the peer not yet written to its socket (this turn's frame + writes in
 * flight); 0 for an unknown peer. */
size_t net_peers_queue_bytes(const struct net_peers *p, uint64_t id);
/* The client address the peer announced ("" until its first Hello). Borrowed. */
const char *net_peers_client_addr(const struct net_peers *p, uint64_t id);
/* Closes every handle; `done` (may be NULL) is called once all are closed. The structure is
 * freed then. */
void net_peers_close(struct net_peers *p, void (*done)(void *arg), void *arg);

/* Encodes a protobuf field key + length prefix (for callers building frames by hand). */
size_t net_pb_field_header(uint8_t out[16], uint32_t field, size_t len);

#endif
