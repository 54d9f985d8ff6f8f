/* test_peer_auth.c — the proofs of peer authentication (net/peer_auth.c): a proof made with a
 * secret verifies with that secret only, for that direction, those nodes, that cluster and
 * those nonces only; any of up to four secrets may prove or verify (rotation); proofs of the
 * wrong length or too many are refused. */
#include <check.h>
#include <string.h>

#include "net/frame.h"
#include "net/peer_auth.h"

static struct net_peer_secrets one(const char *s)
{
	struct net_peer_secrets out;
	memset(&out, 0, sizeof out);
	out.n = 1;
	out.s[0].len = strlen(s);
	memcpy(out.s[0].bytes, s, out.s[0].len);
	return out;
}

static uint8_t nd[NET_PEER_NONCE_BYTES], na[NET_PEER_NONCE_BYTES];

static struct net_peer_transcript base(void)
{
	struct net_peer_transcript t = {0xc1, 1, 2, nd, na};
	return t;
}

static bool check(const struct net_peer_secrets *s, enum net_peer_side side,
		  const struct net_peer_transcript *t, const uint8_t *proof)
{
	const uint8_t *p = proof;
	size_t l = NET_PEER_PROOF_BYTES;
	return net_peer_proof_check(s, side, t, &p, &l, 1);
}

START_TEST(test_proof_binds_everything)
{
	ck_assert_int_eq(net_peer_nonce(nd), NET_OK);
	ck_assert_int_eq(net_peer_nonce(na), NET_OK);
	ck_assert(memcmp(nd, na, sizeof nd) != 0);
	struct net_peer_secrets s = one("0123456789abcdef"), other = one("0123456789abcdeF");
	struct net_peer_transcript t = base();
	uint8_t p[NET_PEER_PROOF_BYTES];
	net_peer_proof(s.s[0].bytes, s.s[0].len, NET_PEER_DIALLER, &t, p);
	ck_assert(check(&s, NET_PEER_DIALLER, &t, p));
	ck_assert(!check(&other, NET_PEER_DIALLER, &t, p)); /* another secret */
	ck_assert(!check(&s, NET_PEER_ACCEPTOR, &t, p));    /* reflected */
	struct net_peer_transcript u = t;
	u.cluster_id = 0xc2;
	ck_assert(!check(&s, NET_PEER_DIALLER, &u, p));
	u = t;
	u.dialler_id = 3;
	ck_assert(!check(&s, NET_PEER_DIALLER, &u, p));
	u = t;
	u.acceptor_id = 3;
	ck_assert(!check(&s, NET_PEER_DIALLER, &u, p));
	u = t;
	u.dialler_nonce = na; /* nonces swapped: a replay on another connection */
	u.acceptor_nonce = nd;
	ck_assert(!check(&s, NET_PEER_DIALLER, &u, p));
	for (size_t i = 0; i < sizeof p; i++) { /* any flipped bit */
		p[i] ^= 0x10;
		ck_assert(!check(&s, NET_PEER_DIALLER, &t, p));
		p[i] ^= 0x10;
	}
	struct net_peer_secrets none = {0};
	ck_assert(!check(&none, NET_PEER_DIALLER, &t, p));
}
END_TEST

START_TEST(test_rotation_and_limits)
{
	struct net_peer_transcript t = base();
	struct net_peer_secrets old = one("old-secret-0123456789");
	struct net_peer_secrets both = one("new-secret-0123456789");
	both.n = 2;
	both.s[1] = old.s[0];
	/* a node holding new+old proves with both; a node with only old accepts */
	uint8_t p_new[NET_PEER_PROOF_BYTES], p_old[NET_PEER_PROOF_BYTES];
	net_peer_proof(both.s[0].bytes, both.s[0].len, NET_PEER_ACCEPTOR, &t, p_new);
	net_peer_proof(both.s[1].bytes, both.s[1].len, NET_PEER_ACCEPTOR, &t, p_old);
	const uint8_t *ps[2] = {p_new, p_old};
	size_t ls[2] = {NET_PEER_PROOF_BYTES, NET_PEER_PROOF_BYTES};
	ck_assert(net_peer_proof_check(&old, NET_PEER_ACCEPTOR, &t, ps, ls, 2));
	ck_assert(!net_peer_proof_check(&old, NET_PEER_ACCEPTOR, &t, ps, ls, 1)); /* new only */
	/* and the other way round: old's proof is accepted by new+old */
	ck_assert(check(&both, NET_PEER_ACCEPTOR, &t, p_old));
	/* a proof of the wrong length, none, or more than NET_PEER_SECRETS_MAX */
	ls[1] = NET_PEER_PROOF_BYTES - 1;
	ck_assert(!net_peer_proof_check(&old, NET_PEER_ACCEPTOR, &t, ps, ls, 2));
	ck_assert(!net_peer_proof_check(&old, NET_PEER_ACCEPTOR, &t, ps, ls, 0));
	const uint8_t *many[NET_PEER_SECRETS_MAX + 1];
	size_t many_l[NET_PEER_SECRETS_MAX + 1];
	for (int i = 0; i <= NET_PEER_SECRETS_MAX; i++) {
		many[i] = p_old;
		many_l[i] = NET_PEER_PROOF_BYTES;
	}
	ck_assert(net_peer_proof_check(&old, NET_PEER_ACCEPTOR, &t, many, many_l,
				       NET_PEER_SECRETS_MAX));
	ck_assert(!net_peer_proof_check(&old, NET_PEER_ACCEPTOR, &t, many, many_l,
					NET_PEER_SECRETS_MAX + 1));
	net_peer_secrets_clear(&both);
	ck_assert_uint_eq(both.n, 0);
	ck_assert_uint_eq(both.s[0].bytes[0], 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("net_peer_auth");
	TCase *tc = tcase_create("proofs");
	tcase_add_test(tc, test_proof_binds_everything);
	tcase_add_test(tc, test_rotation_and_limits);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
