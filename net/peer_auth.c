/* peer_auth.c — the proofs of peer authentication. A proof binds the secret to this one
 * connection (both fresh nonces), to the cluster, to both node ids and to the direction, so it
 * can be neither replayed on another connection nor reflected back at its sender. OpenSSL does
 * the cryptography (HMAC-SHA256, RAND_bytes, CRYPTO_memcmp); nothing is hand-rolled.
 */
#include "net/peer_auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "net/frame.h"

#define LABEL "ringraft-peer-v1"

int net_peer_nonce(uint8_t out[NET_PEER_NONCE_BYTES])
{
	return RAND_bytes(out, NET_PEER_NONCE_BYTES) == 1 ? NET_OK : NET_EIO;
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

void net_peer_proof(const uint8_t *secret, size_t secret_len, enum net_peer_side side,
		    const struct net_peer_transcript *t, uint8_t out[NET_PEER_PROOF_BYTES])
{
	/* label, side (1 byte), cluster, dialler, acceptor (8 bytes each, big-endian), nonces */
	uint8_t msg[sizeof LABEL - 1 + 1 + 24 + 2 * NET_PEER_NONCE_BYTES];
	size_t off = 0;
	memcpy(msg, LABEL, sizeof LABEL - 1);
	off += sizeof LABEL - 1;
	msg[off++] = (uint8_t)side;
	put_u64(msg + off, t->cluster_id);
	put_u64(msg + off + 8, t->dialler_id);
	put_u64(msg + off + 16, t->acceptor_id);
	off += 24;
	memcpy(msg + off, t->dialler_nonce, NET_PEER_NONCE_BYTES);
	off += NET_PEER_NONCE_BYTES;
	memcpy(msg + off, t->acceptor_nonce, NET_PEER_NONCE_BYTES);
	off += NET_PEER_NONCE_BYTES;
	unsigned int len = 0;
	unsigned char *r = HMAC(EVP_sha256(), secret, (int)secret_len, msg, off, out, &len);
	/* HMAC-SHA256 over memory fails only with a broken library: stop rather than go on
	 * with a proof nobody can check */
	if (r == NULL || len != NET_PEER_PROOF_BYTES)
		abort();
}

bool net_peer_proof_check(const struct net_peer_secrets *s, enum net_peer_side side,
			  const struct net_peer_transcript *t, const uint8_t *const *proofs,
			  const size_t *lens, size_t n)
{
	if (s->n == 0 || n == 0 || n > NET_PEER_SECRETS_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (lens[i] != NET_PEER_PROOF_BYTES)
			return false;
	int match = 0;
	for (size_t k = 0; k < s->n; k++) {
		uint8_t want[NET_PEER_PROOF_BYTES];
		net_peer_proof(s->s[k].bytes, s->s[k].len, side, t, want);
		for (size_t i = 0; i < n; i++)
			match |= CRYPTO_memcmp(want, proofs[i], NET_PEER_PROOF_BYTES) == 0;
		OPENSSL_cleanse(want, sizeof want);
	}
	return match != 0;
}

void net_peer_secrets_clear(struct net_peer_secrets *s)
{
	OPENSSL_cleanse(s, sizeof *s);
	s->n = 0;
}
