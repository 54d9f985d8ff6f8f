/* peer_auth.h — proving that a peer holds the cluster's secret (--peer-secret-file): the
 * nonces and HMAC-SHA256 proofs of the peer Hello (docs/SECURITY.md "Peer authentication").
 * Pure functions over OpenSSL; net/peer.c runs the exchange, node/peer_secret.c reads the file.
 */
#ifndef RINGRAFT_NET_PEER_AUTH_H
#define RINGRAFT_NET_PEER_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/net_limits.h"

/* The secrets a node holds: the first proves, any is accepted (rotation). */
struct net_peer_secrets {
	size_t n; /* 0 = peer authentication off */
	struct {
		uint8_t bytes[NET_PEER_SECRET_MAX];
		size_t len; /* NET_PEER_SECRET_MIN..NET_PEER_SECRET_MAX */
	} s[NET_PEER_SECRETS_MAX];
};

/* Which side of the connection a proof comes from: the two never verify each other's. */
enum net_peer_side { NET_PEER_DIALLER = 1, NET_PEER_ACCEPTOR = 2 };

/* What both sides agree on for one connection. The nonces are borrowed for the call. */
struct net_peer_transcript {
	uint64_t cluster_id, dialler_id, acceptor_id;
	const uint8_t *dialler_nonce;  /* NET_PEER_NONCE_BYTES */
	const uint8_t *acceptor_nonce; /* NET_PEER_NONCE_BYTES */
};

/* Fills out with NET_PEER_NONCE_BYTES random bytes (OpenSSL's CSPRNG). NET_EIO if it failed. */
int net_peer_nonce(uint8_t out[NET_PEER_NONCE_BYTES]);

/* HMAC-SHA256(secret, "ringraft-peer-v1" side cluster dialler acceptor nonces) into out. */
void net_peer_proof(const uint8_t *secret, size_t secret_len, enum net_peer_side side,
		    const struct net_peer_transcript *t, uint8_t out[NET_PEER_PROOF_BYTES]);

/* True if one of the n proofs (each proofs[i] of lens[i] bytes) was made by `side` with one
 * of the secrets in s. Every pair is compared (CRYPTO_memcmp, no early exit), so the time
 * says nothing about which byte or which secret differed. n > NET_PEER_SECRETS_MAX or a proof
 * of the wrong length is false. */
bool net_peer_proof_check(const struct net_peer_secrets *s, enum net_peer_side side,
			  const struct net_peer_transcript *t, const uint8_t *const *proofs,
			  const size_t *lens, size_t n);

/* Wipes the secrets (OPENSSL_cleanse) and sets n to 0. */
void net_peer_secrets_clear(struct net_peer_secrets *s);

#endif
