/* test_server.c — the client listener on a real loop: framed requests reach the handler and
 * replies come back framed; an oversize frame closes only its connection; at
 * NET_CLIENT_INFLIGHT_MAX unanswered requests the server stops reading that connection and
 * resumes once answers drain; a closed connection drops late replies without harm; replies far
 * larger than what the socket takes at once (the first try writes part, the rest is queued)
 * arrive whole and in order at a client that reads slowly. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/server.h"
#include "proto/kv.pb-c.h"

/* ------------------------------------------------------------------------------ fixture */
static uv_loop_t loop;
static struct net_server *srv;
static char addr[64];
static int port;
static struct net_conn *pending[NET_CLIENT_INFLIGHT_MAX + 16];
static size_t n_pending;
static bool answer_now;
static size_t reply_value_bytes; /* > 0: each reply carries this many bytes of (id & 0xff) */
static uint8_t *reply_value;

static int on_request(void *arg, struct net_conn *c, const uint8_t *p, size_t len)
{
	(void)arg;
	Ringraft__Kv__Request *rq = ringraft__kv__request__unpack(NULL, len, p);
	if (rq == NULL)
		return -1;
	if (answer_now) {
		Ringraft__Kv__Response rs = RINGRAFT__KV__RESPONSE__INIT;
		rs.id = rq->id;
		if (reply_value_bytes > 0) {
			memset(reply_value, (int)(rq->id & 0xff), reply_value_bytes);
			rs.value.data = reply_value;
			rs.value.len = reply_value_bytes;
		}
		net_conn_send(c, &rs.base);
		net_conn_request_done(c);
	} else {
		net_conn_ref(c);
		pending[n_pending++] = c;
	}
	ringraft__kv__request__free_unpacked(rq, NULL);
	return 0;
}

static void setup(void)
{
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	struct net_server_cbs cbs = {on_request, NULL};
	for (int attempt = 0; attempt < 50; attempt++) {
		port = 20000 + (int)((getpid() * 7 + attempt * 131) % 12000); /* < ephemeral */
		snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
		ck_assert_int_eq(net_server_new(&loop, addr, &cbs, NULL, &srv), NET_OK);
		if (net_server_start(srv) == NET_OK)
			break;
		net_server_close(srv);
		uv_run(&loop, UV_RUN_NOWAIT);
		net_server_free(srv);
		srv = NULL;
	}
	ck_assert_ptr_nonnull(srv);
	n_pending = 0;
	answer_now = true;
	reply_value_bytes = 0;
}

static void teardown(void)
{
	for (size_t i = 0; i < n_pending; i++)
		net_conn_unref(pending[i]);
	net_server_close(srv);
	uv_run(&loop, UV_RUN_DEFAULT);
	net_server_free(srv);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}

/* ------------------------------------------------------------------------------ helpers */
static void spin(int ms)
{
	for (int i = 0; i < ms; i++) {
		uv_run(&loop, UV_RUN_NOWAIT);
		net_server_flush(srv);
		usleep(1000);
	}
}

static int dial(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	connect(fd, (struct sockaddr *)&a, sizeof a);
	spin(20);
	return fd;
}

static void send_req(int fd, uint64_t id)
{
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.id = id;
	rq.op = RINGRAFT__KV__OP__PING;
	uint8_t buf[64];
	size_t n = ringraft__kv__request__pack(&rq, buf + 4);
	net_frame_header(buf, (uint32_t)n);
	ck_assert_int_eq(send(fd, buf, n + 4, MSG_NOSIGNAL), (ssize_t)(n + 4));
}

/* Reads replies for up to ms; returns how many arrived (ids checked ascending from first). */
static size_t read_replies(int fd, struct net_decoder *d, int ms, uint64_t *next_id)
{
	size_t got = 0;
	uint8_t buf[65536];
	for (int i = 0; i < ms; i++) {
		spin(1);
		ssize_t r = recv(fd, buf, sizeof buf, 0);
		if (r > 0)
			net_decoder_feed(d, buf, (size_t)r);
		const uint8_t *p;
		uint32_t len;
		while (net_decoder_next(d, &p, &len) == 1) {
			Ringraft__Kv__Response *rs = ringraft__kv__response__unpack(NULL, len, p);
			ck_assert_ptr_nonnull(rs);
			ck_assert_uint_eq(rs->id, *next_id);
			(*next_id)++;
			ringraft__kv__response__free_unpacked(rs, NULL);
			got++;
		}
	}
	return got;
}

static bool peer_closed(int fd, int ms)
{
	uint8_t buf[4096];
	for (int i = 0; i < ms; i++) {
		spin(1);
		ssize_t r = recv(fd, buf, sizeof buf, 0);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
			return true;
	}
	return false;
}

/* ------------------------------------------------------------------------------ tests */
START_TEST(test_request_reply)
{
	int fd = dial();
	for (uint64_t id = 1; id <= 50; id++)
		send_req(fd, id);
	struct net_decoder d;
	net_decoder_init(&d, 1 << 20);
	uint64_t next = 1;
	ck_assert_uint_eq(read_replies(fd, &d, 200, &next), 50);
	net_decoder_free(&d);
	ck_assert_uint_eq(net_server_connections(srv), 1);
	close(fd);
	spin(50);
	ck_assert_uint_eq(net_server_connections(srv), 0);
}
END_TEST

START_TEST(test_oversize_and_garbage_close_only_that_connection)
{
	int good = dial();
	int bad = dial();
	uint8_t h[4];
	net_frame_header(h, NET_CLIENT_FRAME_MAX + 1);
	send(bad, h, 4, MSG_NOSIGNAL);
	ck_assert(peer_closed(bad, 500));
	close(bad);
	int junk = dial();
	uint8_t j[8] = {0, 0, 0, 4, 0x0f, 0x0f, 0x0f, 0x0f};
	send(junk, j, sizeof j, MSG_NOSIGNAL);
	ck_assert(peer_closed(junk, 500));
	close(junk);
	send_req(good, 1);
	struct net_decoder d;
	net_decoder_init(&d, 1 << 20);
	uint64_t next = 1;
	ck_assert_uint_eq(read_replies(good, &d, 200, &next), 1);
	net_decoder_free(&d);
	close(good);
}
END_TEST

START_TEST(test_inflight_limit_pauses_reading)
{
	answer_now = false;
	int fd = dial();
	const size_t total = NET_CLIENT_INFLIGHT_MAX + 10;
	for (uint64_t id = 1; id <= total; id++)
		send_req(fd, id);
	spin(300);
	ck_assert_uint_eq(n_pending, NET_CLIENT_INFLIGHT_MAX);
	/* answer them all: reading resumes and the last 10 arrive */
	size_t answered = 0;
	while (answered < n_pending) {
		struct net_conn *c = pending[answered];
		Ringraft__Kv__Response rs = RINGRAFT__KV__RESPONSE__INIT;
		rs.id = answered + 1;
		net_conn_send(c, &rs.base);
		net_conn_request_done(c);
		net_conn_unref(c);
		pending[answered] = NULL;
		answered++;
		if (answered % 512 == 0)
			spin(2);
	}
	spin(300);
	ck_assert_uint_eq(n_pending, total);
	for (size_t i = answered; i < n_pending; i++) {
		Ringraft__Kv__Response rs = RINGRAFT__KV__RESPONSE__INIT;
		rs.id = i + 1;
		net_conn_send(pending[i], &rs.base);
		net_conn_request_done(pending[i]);
		net_conn_unref(pending[i]);
	}
	n_pending = 0;
	struct net_decoder d;
	net_decoder_init(&d, 1 << 24);
	uint64_t next = 1;
	ck_assert_uint_eq(read_replies(fd, &d, 500, &next), total);
	net_decoder_free(&d);
	close(fd);
}
END_TEST

START_TEST(test_large_replies_to_a_slow_reader_arrive_whole_and_in_order)
{
	reply_value_bytes = 300 << 10;
	reply_value = malloc(reply_value_bytes);
	ck_assert_ptr_nonnull(reply_value);
	/* a small receive buffer, set before connecting, so the socket takes little at once */
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	int small = 65536;
	ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	connect(fd, (struct sockaddr *)&a, sizeof a);
	spin(20);
	/* One request a turn, nothing read yet: each reply is flushed alone, so one of them meets
	 * the socket nearly full and is written in part, the rest queued behind it. */
	const uint64_t n = 20; /* 6 MiB of replies, under NET_CLIENT_OUTBUF_MAX */
	for (uint64_t id = 1; id <= n; id++) {
		send_req(fd, id);
		spin(5);
	}
	struct net_decoder d;
	net_decoder_init(&d, 1 << 20);
	uint64_t next = 1;
	uint8_t buf[32768];
	for (int i = 0; i < 20000 && next <= n; i++) {
		ssize_t r = recv(fd, buf, sizeof buf, 0); /* 32 KiB a loop turn: slower than sent */
		if (r > 0)
			net_decoder_feed(&d, buf, (size_t)r);
		if (r > 0) { /* one loop turn without sleeping */
			uv_run(&loop, UV_RUN_NOWAIT);
			net_server_flush(srv);
		} else {
			spin(1);
		}
		const uint8_t *p;
		uint32_t len;
		while (net_decoder_next(&d, &p, &len) == 1) {
			Ringraft__Kv__Response *rs = ringraft__kv__response__unpack(NULL, len, p);
			ck_assert_ptr_nonnull(rs);
			ck_assert_uint_eq(rs->id, next);
			ck_assert_uint_eq(rs->value.len, reply_value_bytes);
			size_t k = 0;
			while (k < rs->value.len && rs->value.data[k] == (next & 0xff))
				k++;
			ck_assert_msg(k == rs->value.len, "reply %llu: byte %zu of %zu is %u",
				      (unsigned long long)next, k, rs->value.len,
				      k < rs->value.len ? rs->value.data[k] : 0);
			ringraft__kv__response__free_unpacked(rs, NULL);
			next++;
		}
	}
	ck_assert_uint_eq(next, n + 1);
	net_decoder_free(&d);
	close(fd);
	spin(50);
	free(reply_value);
	reply_value = NULL;
}
END_TEST

START_TEST(test_late_reply_after_close_is_dropped)
{
	answer_now = false;
	int fd = dial();
	send_req(fd, 1);
	spin(50);
	ck_assert_uint_eq(n_pending, 1);
	close(fd);
	spin(50);
	ck_assert(net_conn_closed(pending[0]));
	Ringraft__Kv__Response rs = RINGRAFT__KV__RESPONSE__INIT;
	net_conn_send(pending[0], &rs.base);
	net_conn_request_done(pending[0]);
	net_conn_unref(pending[0]);
	n_pending = 0;
	spin(10);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("net_server");
	TCase *tc = tcase_create("server");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_request_reply);
	tcase_add_test(tc, test_oversize_and_garbage_close_only_that_connection);
	tcase_add_test(tc, test_inflight_limit_pauses_reading);
	tcase_add_test(tc, test_late_reply_after_close_is_dropped);
	tcase_add_test(tc, test_large_replies_to_a_slow_reader_arrive_whole_and_in_order);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
