/* test_peer.c — peer links on a real loop: two nodes connect (lower id dials), learn each
 * other's client address from the Hello, get everything appended in one turn as ONE frame,
 * refuse appends past the queue bound, and reconnect after the other side restarts; with peer
 * secrets, sides sharing one link up (also across a rotation) and sides that share none never
 * do, each refusing the other's proof. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/peer.h"

/* ------------------------------------------------------------------------------ fixture */
struct side {
	struct net_peers *p;
	int ups, downs, frames;
	size_t msgs;
	uint64_t last_group;
	uint64_t peer_incarnation; /* from the last Hello */
};

static uv_loop_t loop;
static struct side a, b;
static char addr_a[64], addr_b[64];

static void on_frame(void *arg, uint64_t from, const Ringraft__Raft__PeerFrame *f)
{
	struct side *s = arg;
	(void)from;
	s->frames++;
	s->msgs += f->n_msgs;
	if (f->n_msgs)
		s->last_group = f->msgs[f->n_msgs - 1]->group;
}

static void on_up(void *arg, uint64_t id, const char *client_addr, uint64_t incarnation)
{
	(void)id;
	(void)client_addr;
	((struct side *)arg)->ups++;
	((struct side *)arg)->peer_incarnation = incarnation;
}

static void on_down(void *arg, uint64_t id)
{
	(void)id;
	((struct side *)arg)->downs++;
}

static const struct net_peers_cbs cbs = {on_frame, on_up, on_down, NULL};
/* the secrets of node 1 and node 2 (n == 0: none), set before make_side */
static struct net_peer_secrets secret_of[3];

static int make_side(struct side *s, uint64_t id, const char *self, uint64_t other_id,
		     const char *other, const char *client)
{
	memset(s, 0, sizeof *s);
	ck_assert_int_eq(net_peers_new(&loop, id, 42, self, client, &cbs, s, &s->p), NET_OK);
	ck_assert_int_eq(net_peers_add(s->p, other_id, other), NET_OK);
	net_peers_set_incarnation(s->p, 0xabc0 + id);
	if (secret_of[id].n != 0)
		net_peers_set_secrets(s->p, &secret_of[id]);
	int rc = net_peers_start(s->p);
	if (rc != NET_OK) {
		net_peers_close(s->p, NULL, NULL);
		s->p = NULL;
		uv_run(&loop, UV_RUN_NOWAIT);
	}
	return rc;
}

static bool run_until(bool (*cond)(void), int ms)
{
	uint64_t end = uv_now(&loop) + (uint64_t)ms;
	while (!cond()) {
		uv_run(&loop, UV_RUN_NOWAIT);
		usleep(1000);
		uv_update_time(&loop);
		if (uv_now(&loop) > end)
			return false;
	}
	return true;
}

static bool both_up(void)
{
	return net_peers_up(a.p, 2) && net_peers_up(b.p, 1);
}

static void setup(void)
{
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	/* ports below the ephemeral range; retry elsewhere if one is taken */
	for (int attempt = 0; attempt < 50; attempt++) {
		int base = 20000 + (int)((getpid() * 7 + attempt * 131) % 6000) * 2;
		snprintf(addr_a, sizeof addr_a, "127.0.0.1:%d", base);
		snprintf(addr_b, sizeof addr_b, "127.0.0.1:%d", base + 1);
		if (make_side(&a, 1, addr_a, 2, addr_b, "127.0.0.1:9991") != NET_OK)
			continue;
		if (make_side(&b, 2, addr_b, 1, addr_a, "127.0.0.1:9992") == NET_OK)
			break;
		net_peers_close(a.p, NULL, NULL);
		a.p = NULL;
		uv_run(&loop, UV_RUN_NOWAIT);
	}
	ck_assert_ptr_nonnull(a.p);
	ck_assert_ptr_nonnull(b.p);
	ck_assert(run_until(both_up, 3000));
}

static void teardown(void)
{
	if (a.p)
		net_peers_close(a.p, NULL, NULL);
	if (b.p)
		net_peers_close(b.p, NULL, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}

/* ------------------------------------------------------------------------------ tests */
static bool b_got_three(void)
{
	return b.msgs >= 3;
}

START_TEST(test_hello_and_one_frame_per_turn)
{
	ck_assert_str_eq(net_peers_client_addr(a.p, 2), "127.0.0.1:9992");
	ck_assert_str_eq(net_peers_client_addr(b.p, 1), "127.0.0.1:9991");
	ck_assert_int_eq(a.ups, 1);
	ck_assert_int_eq(b.ups, 1);
	ck_assert_uint_eq(a.peer_incarnation, 0xabc2); /* each learns the other's directory id */
	ck_assert_uint_eq(b.peer_incarnation, 0xabc1);
	int frames_before = b.frames;
	for (uint64_t g = 1; g <= 3; g++) {
		Ringraft__Raft__Message m = RINGRAFT__RAFT__MESSAGE__INIT;
		m.group = g;
		m.from = 1;
		m.to = 2;
		m.type = 7;
		ck_assert_int_eq(net_peers_append_msg(a.p, 2, NET_PEER_FIELD_MSG, &m.base), NET_OK);
	}
	net_peers_flush(a.p);
	ck_assert(run_until(b_got_three, 2000));
	ck_assert_int_eq(b.frames - frames_before, 1); /* three groups, one frame */
	ck_assert_uint_eq(b.msgs, 3);
	ck_assert_uint_eq(b.last_group, 3);
}
END_TEST

START_TEST(test_queue_bound_and_unknown_peer)
{
	static uint8_t big[1 << 20];
	int rc = NET_OK;
	size_t appended = 0;
	while (rc == NET_OK && appended < 2 * (size_t)NET_PEER_QUEUE_BYTES_MAX) {
		rc = net_peers_append(a.p, 2, NET_PEER_FIELD_MSG, big, sizeof big);
		if (rc == NET_OK)
			appended += sizeof big;
	}
	ck_assert_int_eq(rc, NET_EFULL);
	ck_assert_uint_le(appended, NET_PEER_QUEUE_BYTES_MAX);
	ck_assert_int_eq(net_peers_append(a.p, 9, NET_PEER_FIELD_MSG, big, 1), NET_EPROTO);
}
END_TEST

static bool a_down(void)
{
	return a.downs >= 1;
}

static bool a_up_again(void)
{
	return a.ups >= 2 && net_peers_up(a.p, 2);
}

START_TEST(test_reconnect_after_restart)
{
	net_peers_close(b.p, NULL, NULL);
	b.p = NULL;
	ck_assert(run_until(a_down, 3000));
	ck_assert(!net_peers_up(a.p, 2));
	Ringraft__Raft__Message m = RINGRAFT__RAFT__MESSAGE__INIT;
	ck_assert_int_eq(net_peers_append_msg(a.p, 2, NET_PEER_FIELD_MSG, &m.base), NET_ECLOSED);
	uv_run(&loop, UV_RUN_NOWAIT);
	ck_assert_int_eq(make_side(&b, 2, addr_b, 1, addr_a, "127.0.0.1:9993"), NET_OK);
	ck_assert(run_until(a_up_again, 5000));
	ck_assert_str_eq(net_peers_client_addr(a.p, 2), "127.0.0.1:9993");
}
END_TEST

static void set_secrets(struct net_peer_secrets *out, const char *a, const char *b)
{
	memset(out, 0, sizeof *out);
	const char *v[2] = {a, b};
	for (int i = 0; i < 2 && v[i] != NULL; i++) {
		out->s[i].len = strlen(v[i]);
		memcpy(out->s[i].bytes, v[i], out->s[i].len);
		out->n++;
	}
}

static void setup_rotating(void)
{
	set_secrets(&secret_of[1], "new-secret-0123456789", "old-secret-0123456789");
	set_secrets(&secret_of[2], "old-secret-0123456789", NULL);
	setup();
}

START_TEST(test_shared_secret_links_up)
{
	/* setup waited for both sides up: frames flow as without a secret */
	Ringraft__Raft__Message m = RINGRAFT__RAFT__MESSAGE__INIT;
	m.group = 3;
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(net_peers_append_msg(a.p, 2, NET_PEER_FIELD_MSG, &m.base), NET_OK);
	net_peers_flush(a.p);
	ck_assert(run_until(b_got_three, 2000));
	for (int r = 0; r < NET_PEER_REFUSALS; r++) {
		ck_assert_uint_eq(net_peers_auth_refused(a.p, (enum net_peer_refusal)r), 0);
		ck_assert_uint_eq(net_peers_auth_refused(b.p, (enum net_peer_refusal)r), 0);
	}
	ck_assert_str_eq(net_peers_client_addr(a.p, 2), "127.0.0.1:9992");
}
END_TEST

static bool both_refused(void)
{
	return a.p != NULL && b.p != NULL &&
	       net_peers_auth_refused(a.p, NET_PEER_REFUSED_BAD_PROOF) >= 2 &&
	       net_peers_auth_refused(b.p, NET_PEER_REFUSED_BAD_PROOF) >= 2;
}

static void setup_mismatch(void)
{
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	set_secrets(&secret_of[1], "one-secret-0123456789", NULL);
	set_secrets(&secret_of[2], "two-secret-0123456789", NULL);
	for (int attempt = 0; attempt < 50; attempt++) {
		int base = 20000 + (int)((getpid() * 7 + attempt * 131 + 1) % 6000) * 2;
		snprintf(addr_a, sizeof addr_a, "127.0.0.1:%d", base);
		snprintf(addr_b, sizeof addr_b, "127.0.0.1:%d", base + 1);
		if (make_side(&a, 1, addr_a, 2, addr_b, "127.0.0.1:9991") != NET_OK)
			continue;
		if (make_side(&b, 2, addr_b, 1, addr_a, "127.0.0.1:9992") == NET_OK)
			break;
		net_peers_close(a.p, NULL, NULL);
		a.p = NULL;
		uv_run(&loop, UV_RUN_NOWAIT);
	}
	ck_assert_ptr_nonnull(a.p);
	ck_assert_ptr_nonnull(b.p);
}

static void teardown_secrets(void)
{
	teardown();
	memset(secret_of, 0, sizeof secret_of);
}

START_TEST(test_no_shared_secret_never_up)
{
	/* node 1 dials again and again; each time both refuse the other's proof */
	ck_assert(run_until(both_refused, 5000));
	ck_assert_int_eq(a.ups, 0);
	ck_assert_int_eq(b.ups, 0);
	ck_assert_int_eq(b.frames, 0);
	ck_assert(!net_peers_up(a.p, 2));
	Ringraft__Raft__Message m = RINGRAFT__RAFT__MESSAGE__INIT;
	ck_assert_int_eq(net_peers_append_msg(a.p, 2, NET_PEER_FIELD_MSG, &m.base), NET_ECLOSED);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("net_peer");
	TCase *tc = tcase_create("peer");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_hello_and_one_frame_per_turn);
	tcase_add_test(tc, test_queue_bound_and_unknown_peer);
	tcase_add_test(tc, test_reconnect_after_restart);
	suite_add_tcase(s, tc);
	TCase *tr = tcase_create("rotating_secret");
	tcase_add_checked_fixture(tr, setup_rotating, teardown_secrets);
	tcase_set_timeout(tr, 60);
	tcase_add_test(tr, test_shared_secret_links_up);
	tcase_add_test(tr, test_reconnect_after_restart);
	suite_add_tcase(s, tr);
	TCase *tm = tcase_create("no_shared_secret");
	tcase_add_checked_fixture(tm, setup_mismatch, teardown_secrets);
	tcase_set_timeout(tm, 60);
	tcase_add_test(tm, test_no_shared_secret_never_up);
	suite_add_tcase(s, tm);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
