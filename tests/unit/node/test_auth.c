/* test_auth.c — client authentication's pushed and saved state (node/auth.c, the pure part):
 * a state decodes with its flag, version and users; one with more than NODE_AUTH_USERS_MAX
 * users, a bad or repeated name, or a record that is not one is refused with a reason and
 * nothing kept; packing and decoding give the same state back; node_auth_state_same compares
 * flag and users, not versions, in any order. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/user.h"
#include "node/auth.h"

#define USERS_MAX (NODE_AUTH_USERS_MAX + 1)

static Ringraft__Raft__AuthUser users[USERS_MAX], *ptrs[USERS_MAX];
static char names[USERS_MAX][24]; /* "u" and any size_t: no truncation warning at -O1 */
static uint8_t recs[USERS_MAX][KV_USER_RECORD_BYTES];

/* A state of n users u0, u1, ... (rw, then ro), version 7, on. */
static Ringraft__Raft__AuthState state_of(size_t n)
{
	Ringraft__Raft__AuthState m = RINGRAFT__RAFT__AUTH_STATE__INIT;
	for (size_t i = 0; i < n; i++) {
		struct kv_user u = {.role = i == 0 ? KV_USER_RW : KV_USER_RO,
				    .iterations = KV_USER_ITERATIONS};
		memset(u.salt, (int)i, sizeof u.salt);
		memset(u.hash, (int)(i * 3), sizeof u.hash);
		kv_user_record_encode(&u, recs[i]);
		snprintf(names[i], sizeof names[i], "u%zu", i);
		ringraft__raft__auth_user__init(&users[i]);
		users[i].name = names[i];
		users[i].record.data = recs[i];
		users[i].record.len = KV_USER_RECORD_BYTES;
		ptrs[i] = &users[i];
	}
	m.version = 7;
	m.enabled = true;
	m.users = ptrs;
	m.n_users = n;
	return m;
}

static void refused(const Ringraft__Raft__AuthState *m, const char *want)
{
	struct node_auth_state s;
	const char *why = NULL;
	ck_assert_int_eq(node_auth_state_from_pb(m, &s, &why), -1);
	ck_assert_msg(why != NULL && strstr(why, want) != NULL, "why: %s, wanted %s", why, want);
	ck_assert(!s.known && s.n == 0 && s.users == NULL);
}

START_TEST(test_state_decodes)
{
	Ringraft__Raft__AuthState m = state_of(3);
	struct node_auth_state s;
	const char *why = NULL;
	ck_assert_int_eq(node_auth_state_from_pb(&m, &s, &why), 0);
	ck_assert(s.known && !s.confirmed && s.on);
	ck_assert_uint_eq(s.version, 7);
	ck_assert_uint_eq(s.n, 3);
	ck_assert_str_eq(s.users[2].name, "u2");
	ck_assert_int_eq(s.users[0].u.role, KV_USER_RW);
	ck_assert_int_eq(s.users[1].u.role, KV_USER_RO);
	ck_assert_uint_eq(s.users[1].u.iterations, KV_USER_ITERATIONS);
	node_auth_state_free(&s);
	/* no users, off */
	m = state_of(0);
	m.enabled = false;
	ck_assert_int_eq(node_auth_state_from_pb(&m, &s, &why), 0);
	ck_assert(s.known && !s.on && s.n == 0 && s.users == NULL);
	node_auth_state_free(&s);
	/* as many users as a cluster may have */
	m = state_of(NODE_AUTH_USERS_MAX);
	ck_assert_int_eq(node_auth_state_from_pb(&m, &s, &why), 0);
	ck_assert_uint_eq(s.n, NODE_AUTH_USERS_MAX);
	node_auth_state_free(&s);
}
END_TEST

START_TEST(test_bad_states_refused)
{
	Ringraft__Raft__AuthState m = state_of(USERS_MAX);
	refused(&m, "more users");
	m = state_of(3);
	users[1].name = "bad/name";
	refused(&m, "bad user name");
	m = state_of(3);
	users[1].name = "";
	refused(&m, "bad user name");
	m = state_of(3);
	users[2].name = "u0";
	refused(&m, "named twice");
	m = state_of(3);
	users[1].record.len = KV_USER_RECORD_BYTES - 1;
	refused(&m, "record");
	m = state_of(3);
	recs[2][1] = 9; /* no such role */
	refused(&m, "record");
	m = state_of(3);
	recs[0][2] = 0xff; /* iterations far above KV_USER_ITERATIONS_MAX */
	refused(&m, "record");
}
END_TEST

START_TEST(test_pack_round_trip_and_same)
{
	Ringraft__Raft__AuthState m = state_of(4);
	struct node_auth_state a, b;
	const char *why = NULL;
	ck_assert_int_eq(node_auth_state_from_pb(&m, &a, &why), 0);
	uint8_t *buf;
	size_t len;
	ck_assert_int_eq(node_auth_state_pack(&a, &buf, &len), 0);
	Ringraft__Raft__AuthState *back = ringraft__raft__auth_state__unpack(NULL, len, buf);
	ck_assert_ptr_nonnull(back);
	ck_assert_int_eq(node_auth_state_from_pb(back, &b, &why), 0);
	ck_assert(node_auth_state_same(&a, &b));
	ck_assert_uint_eq(b.version, a.version);
	ringraft__raft__auth_state__free_unpacked(back, NULL);
	free(buf);
	node_auth_state_free(&b);
	/* the same users in another order, another version: the same state */
	Ringraft__Raft__AuthUser *t = ptrs[0];
	ptrs[0] = ptrs[3];
	ptrs[3] = t;
	m.version = 9;
	ck_assert_int_eq(node_auth_state_from_pb(&m, &b, &why), 0);
	ck_assert(node_auth_state_same(&a, &b));
	node_auth_state_free(&b);
	/* a changed hash, a user fewer, the flag off: not the same */
	m = state_of(4);
	recs[3][KV_USER_RECORD_BYTES - 1] ^= 1;
	ck_assert_int_eq(node_auth_state_from_pb(&m, &b, &why), 0);
	ck_assert(!node_auth_state_same(&a, &b));
	node_auth_state_free(&b);
	m = state_of(3);
	ck_assert_int_eq(node_auth_state_from_pb(&m, &b, &why), 0);
	ck_assert(!node_auth_state_same(&a, &b));
	node_auth_state_free(&b);
	m = state_of(4);
	m.enabled = false;
	ck_assert_int_eq(node_auth_state_from_pb(&m, &b, &why), 0);
	ck_assert(!node_auth_state_same(&a, &b));
	node_auth_state_free(&b);
	node_auth_state_free(&a);
}
END_TEST

int main(void)
{
	Suite *su = suite_create("node_auth");
	TCase *tc = tcase_create("state");
	tcase_add_test(tc, test_state_decodes);
	tcase_add_test(tc, test_bad_states_refused);
	tcase_add_test(tc, test_pack_round_trip_and_same);
	suite_add_tcase(su, tc);
	SRunner *sr = srunner_create(su);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
