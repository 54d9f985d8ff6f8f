/* test_bad_input.c — hostile input on both ports costs the offending connection at most:
 * garbage, truncated and oversize frames, unknown ops, invalid keys, a client that sends
 * without reading, thousands of idle connections, and bogus peer handshakes. After each, the
 * node still serves everyone else (run against the ASan kvd in `make asan`). */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net/frame.h"
#include "node/config.h"
#include "proto/raft.pb-c.h"
#include "tests/integration/cluster.h"

#define OK RINGRAFT__KV__CODE__OK

/* ------------------------------------------------------------------------------ fixture */
static struct cluster *c;

static void setup(void)
{
	struct cluster_opts o;
	cluster_opts_default(&o);
	o.groups = 2;
	c = cluster_start(&o);
	ck_assert_msg(c != NULL, "cluster did not start");
}

static void teardown(void)
{
	cluster_teardown(&c);
}

/* ------------------------------------------------------------------------------ helpers */
static void send_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n > 0) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
		if (w <= 0)
			return; /* the server may already have closed: that is the point */
		b += w;
		n -= (size_t)w;
	}
}

static void send_frame(int fd, const void *p, uint32_t n)
{
	uint8_t h[4];
	net_frame_header(h, n);
	send_all(fd, h, 4);
	send_all(fd, p, n);
}

/* True when the server closes the connection within timeout_ms (reading and discarding). */
static bool closed_by_server(int fd, int timeout_ms, size_t *bytes)
{
	uint64_t end = cluster_now_ms() + (uint64_t)timeout_ms;
	uint8_t buf[65536];
	size_t total = 0;
	for (;;) {
		int left = (int)(end - cluster_now_ms());
		if (left <= 0)
			break;
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, left) <= 0)
			break;
		ssize_t r = recv(fd, buf, sizeof buf, 0);
		if (r == 0 || (r < 0 && errno == ECONNRESET)) {
			if (bytes)
				*bytes = total;
			return true;
		}
		if (r > 0)
			total += (size_t)r;
	}
	if (bytes)
		*bytes = total;
	return false;
}

static void send_request(int fd, Ringraft__Kv__Request *rq)
{
	size_t n = ringraft__kv__request__get_packed_size(rq);
	uint8_t *b = malloc(n + 1);
	ringraft__kv__request__pack(rq, b);
	send_frame(fd, b, (uint32_t)n);
	free(b);
}

static void assert_serving(void)
{
	for (int node = 1; node <= 3; node++) {
		char key[32];
		snprintf(key, sizeof key, "alive-%d", node);
		int code = -1;
		uint64_t end = cluster_now_ms() + 5000;
		while (code != OK && cluster_now_ms() < end)
			code = cluster_put(c, node, key, "yes", 1000);
		ck_assert_msg(code == OK, "node %d stopped serving (code %d)", node, code);
		char *got = NULL;
		ck_assert_int_eq(cluster_get(c, node, key, &got, false, 3000), OK);
		ck_assert_str_eq(got, "yes");
		free(got);
	}
	for (int node = 1; node <= 3; node++)
		ck_assert_msg(cluster_running(c, node), "node %d died", node);
}

/* ------------------------------------------------------------------------------ client port */
START_TEST(test_client_garbage_truncated_oversize)
{
	const char *addr = cluster_client_addr(c, 1);
	/* garbage payload (wire type 7 is invalid protobuf) */
	int fd = cluster_dial(addr);
	uint8_t junk[64];
	memset(junk, 0x0f, sizeof junk);
	send_frame(fd, junk, sizeof junk);
	ck_assert(closed_by_server(fd, 3000, NULL));
	close(fd);
	/* raw noise that is not even a frame header of a sane size */
	fd = cluster_dial(addr);
	send_all(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
	ck_assert(closed_by_server(fd, 3000, NULL));
	close(fd);
	/* oversize header: refused before any payload */
	fd = cluster_dial(addr);
	uint8_t h[4];
	net_frame_header(h, 0xfffffff0u);
	send_all(fd, h, 4);
	ck_assert(closed_by_server(fd, 3000, NULL));
	close(fd);
	/* truncated frame left hanging: the node keeps serving others meanwhile */
	int hang = cluster_dial(addr);
	net_frame_header(h, 100);
	send_all(hang, h, 4);
	send_all(hang, junk, 10);
	assert_serving();
	shutdown(hang, SHUT_WR);
	ck_assert(closed_by_server(hang, 3000, NULL));
	close(hang);
	assert_serving();
}
END_TEST

START_TEST(test_client_unknown_op_and_invalid_keys)
{
	int fd = cluster_dial(cluster_client_addr(c, 2));
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.id = 7;
	rq.op = 99;
	send_request(fd, &rq);
	Ringraft__Kv__Response *rs = cluster_read_response(fd, 3000);
	ck_assert_ptr_nonnull(rs);
	ck_assert_uint_eq(rs->id, 7);
	ck_assert_int_eq(rs->code, RINGRAFT__KV__CODE__INVALID);
	ringraft__kv__response__free_unpacked(rs, NULL);

	Ringraft__Kv__Request empty = RINGRAFT__KV__REQUEST__INIT;
	empty.id = 8;
	empty.op = RINGRAFT__KV__OP__PUT;
	send_request(fd, &empty);
	rs = cluster_read_response(fd, 3000);
	ck_assert_ptr_nonnull(rs);
	ck_assert_int_eq(rs->code, RINGRAFT__KV__CODE__INVALID);
	ringraft__kv__response__free_unpacked(rs, NULL);

	static uint8_t big_key[600], big_val[(1u << 20) + 100];
	memset(big_key, 'k', sizeof big_key);
	Ringraft__Kv__Request lk = RINGRAFT__KV__REQUEST__INIT;
	lk.id = 9;
	lk.op = RINGRAFT__KV__OP__PUT;
	lk.key.data = big_key;
	lk.key.len = sizeof big_key;
	send_request(fd, &lk);
	rs = cluster_read_response(fd, 3000);
	ck_assert_ptr_nonnull(rs);
	ck_assert_int_eq(rs->code, RINGRAFT__KV__CODE__TOO_LARGE);
	ringraft__kv__response__free_unpacked(rs, NULL);

	Ringraft__Kv__Request lv = RINGRAFT__KV__REQUEST__INIT;
	lv.id = 10;
	lv.op = RINGRAFT__KV__OP__PUT;
	lv.key.data = (uint8_t *)"k";
	lv.key.len = 1;
	lv.value.data = big_val;
	lv.value.len = sizeof big_val;
	send_request(fd, &lv);
	rs = cluster_read_response(fd, 3000);
	ck_assert_ptr_nonnull(rs);
	ck_assert_int_eq(rs->code, RINGRAFT__KV__CODE__TOO_LARGE);
	ringraft__kv__response__free_unpacked(rs, NULL);

	Ringraft__Kv__Request bad_group = RINGRAFT__KV__REQUEST__INIT;
	bad_group.id = 11;
	bad_group.op = RINGRAFT__KV__OP__SCAN;
	bad_group.group = 77;
	send_request(fd, &bad_group);
	rs = cluster_read_response(fd, 3000);
	ck_assert_ptr_nonnull(rs);
	ck_assert_int_eq(rs->code, RINGRAFT__KV__CODE__INVALID);
	ringraft__kv__response__free_unpacked(rs, NULL);

	/* the same connection still works */
	Ringraft__Kv__Request ping = RINGRAFT__KV__REQUEST__INIT;
	ping.id = 12;
	ping.op = RINGRAFT__KV__OP__PING;
	send_request(fd, &ping);
	rs = cluster_read_response(fd, 3000);
	ck_assert_ptr_nonnull(rs);
	ck_assert_uint_eq(rs->id, 12);
	ck_assert_int_eq(rs->code, OK);
	ringraft__kv__response__free_unpacked(rs, NULL);
	close(fd);
	assert_serving();
}
END_TEST

START_TEST(test_client_that_never_reads_is_dropped)
{
	static char big[512 * 1024 + 1];
	memset(big, 'v', sizeof big - 1);
	int code = -1;
	uint64_t end = cluster_now_ms() + 5000;
	while (code != OK && cluster_now_ms() < end)
		code = cluster_put(c, 1, "bigkey", big, 3000);
	ck_assert_int_eq(code, OK);
	int fd = cluster_dial(cluster_client_addr(c, 1));
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__GET;
	rq.key.data = (uint8_t *)"bigkey";
	rq.key.len = 6;
	rq.consistency = RINGRAFT__KV__CONSISTENCY__SERIALIZABLE;
	const int n = 200; /* ~100 MiB of replies, far over NET_CLIENT_OUTBUF_MAX */
	for (int i = 0; i < n; i++) {
		rq.id = (uint64_t)i + 1;
		send_request(fd, &rq);
	}
	/* meanwhile everyone else is served */
	assert_serving();
	size_t got = 0;
	ck_assert_msg(closed_by_server(fd, 10000, &got), "slow reader was not disconnected");
	ck_assert_uint_lt(got, (size_t)n * (sizeof big - 1));
	close(fd);
	assert_serving();
}
END_TEST

START_TEST(test_thousands_of_idle_connections)
{
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	int want = 2000;
	if (rl.rlim_cur < (rlim_t)want + 100)
		want = (int)rl.rlim_cur - 100;
	int *fds = malloc(sizeof(int) * (size_t)want);
	int opened = 0;
	for (int i = 0; i < want; i++) {
		struct sockaddr_storage ss;
		net_parse_addr(cluster_client_addr(c, 3), &ss);
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			break;
		if (connect(fd, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)) != 0) {
			close(fd);
			break;
		}
		fds[opened++] = fd;
	}
	ck_assert_int_ge(opened, 1000);
	assert_serving();
	for (int i = 0; i < opened; i++)
		close(fds[i]);
	free(fds);
	assert_serving();
}
END_TEST

/* ------------------------------------------------------------------------------ peer port */
static void send_peer_frame(int fd, const Ringraft__Raft__PeerFrame *f)
{
	size_t n = ringraft__raft__peer_frame__get_packed_size(f);
	uint8_t *b = malloc(n + 1);
	ringraft__raft__peer_frame__pack(f, b);
	send_frame(fd, b, (uint32_t)n);
	free(b);
}

START_TEST(test_peer_port_bogus_input)
{
	const char *addr = cluster_peer_addr(c, 2);
	uint8_t junk[64];
	memset(junk, 0x0f, sizeof junk);
	int fd = cluster_dial(addr);
	send_frame(fd, junk, sizeof junk);
	ck_assert(closed_by_server(fd, 3000, NULL));
	close(fd);

	fd = cluster_dial(addr);
	uint8_t h[4];
	net_frame_header(h, 0x7fffffffu);
	send_all(fd, h, 4);
	ck_assert(closed_by_server(fd, 3000, NULL));
	close(fd);

	/* a frame of messages without a Hello first */
	Ringraft__Raft__Message m = RINGRAFT__RAFT__MESSAGE__INIT;
	m.group = 1;
	m.type = 1;
	m.from = 1;
	m.to = 2;
	m.term = 1000000;
	Ringraft__Raft__Message *mp = &m;
	Ringraft__Raft__PeerFrame f = RINGRAFT__RAFT__PEER_FRAME__INIT;
	f.msgs = &mp;
	f.n_msgs = 1;
	fd = cluster_dial(addr);
	send_peer_frame(fd, &f);
	ck_assert(closed_by_server(fd, 3000, NULL));
	close(fd);

	/* a Hello from the wrong cluster */
	Ringraft__Raft__Hello hello = RINGRAFT__RAFT__HELLO__INIT;
	hello.cluster_id = 12345;
	hello.node_id = 1;
	hello.client_addr = "127.0.0.1:1";
	Ringraft__Raft__PeerFrame hf = RINGRAFT__RAFT__PEER_FRAME__INIT;
	hf.hello = &hello;
	fd = cluster_dial(addr);
	send_peer_frame(fd, &hf);
	ck_assert(closed_by_server(fd, 3000, NULL));
	close(fd);

	/* a huge-but-allowed header before the Hello is still refused (pre-hello limit) */
	fd = cluster_dial(addr);
	net_frame_header(h, 1u << 20);
	send_all(fd, h, 4);
	ck_assert(closed_by_server(fd, 3000, NULL));
	close(fd);

	ck_assert_int_eq(cluster_wait_leaders(c, 10000), 0);
	assert_serving();
}
END_TEST

static bool read_frame_any(int fd, int timeout_ms)
{
	uint8_t buf[4096];
	struct pollfd p = {fd, POLLIN, 0};
	return poll(&p, 1, timeout_ms) == 1 && recv(fd, buf, sizeof buf, 0) > 0;
}

START_TEST(test_peer_port_unknown_and_malformed_messages)
{
	/* the real cluster id, from node 2's persisted settings */
	static struct node_config cfg;
	char err[512], dir[600];
	snprintf(dir, sizeof dir, "%s", cluster_data_dir(c, 2));
	char *argv[] = {"kvd", "--data-dir", dir, NULL};
	ck_assert_msg(node_config_load(3, argv, &cfg, err, sizeof err) == 0, "%s", err);

	/* pose as node 1 (lower ids dial higher ones): node 2 accepts and answers its Hello */
	int fd = cluster_dial(cluster_peer_addr(c, 2));
	Ringraft__Raft__Hello hello = RINGRAFT__RAFT__HELLO__INIT;
	hello.cluster_id = cfg.cluster_id;
	hello.node_id = 1;
	hello.client_addr = (char *)cluster_client_addr(c, 1);
	Ringraft__Raft__PeerFrame hf = RINGRAFT__RAFT__PEER_FRAME__INIT;
	hf.hello = &hello;
	send_peer_frame(fd, &hf);
	ck_assert_msg(read_frame_any(fd, 3000), "node 2 did not answer a valid Hello");

	Ringraft__Raft__Message m[6];
	Ringraft__Raft__Message *mp[6];
	for (int i = 0; i < 6; i++) {
		ringraft__raft__message__init(&m[i]);
		m[i].from = 1;
		m[i].to = 2;
		m[i].group = 1;
		mp[i] = &m[i];
	}
	m[0].type = 99; /* unknown message type */
	m[1].type = 1;
	m[1].group = 0; /* no such group */
	m[2].type = 1;
	m[2].group = 100000;
	m[3].type = 1;
	m[3].from = 3; /* spoofed sender */
	static Ringraft__Raft__Entry e;
	static Ringraft__Raft__Entry *ep[2000];
	ringraft__raft__entry__init(&e);
	for (int i = 0; i < 2000; i++)
		ep[i] = &e;
	m[4].type = 1; /* more entries than one AppendEntries may carry */
	m[4].entries = ep;
	m[4].n_entries = 2000;
	m[5].type = 0; /* type zero */
	uint8_t junk[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	ProtobufCBinaryData fwd[2] = {{sizeof junk, junk}, {sizeof junk, junk}};
	Ringraft__Raft__PeerFrame f = RINGRAFT__RAFT__PEER_FRAME__INIT;
	f.msgs = mp;
	f.n_msgs = 6;
	f.forwarded_requests = fwd;
	f.n_forwarded_requests = 2;
	f.forwarded_responses = fwd;
	f.n_forwarded_responses = 2;
	send_peer_frame(fd, &f);
	/* a forwarded request with an unknown op is answered over the link, never fatal */
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.id = 5;
	rq.op = 77;
	size_t n = ringraft__kv__request__get_packed_size(&rq);
	uint8_t rb[64];
	ringraft__kv__request__pack(&rq, rb);
	ProtobufCBinaryData one = {n, rb};
	Ringraft__Raft__PeerFrame f2 = RINGRAFT__RAFT__PEER_FRAME__INIT;
	f2.forwarded_requests = &one;
	f2.n_forwarded_requests = 1;
	send_peer_frame(fd, &f2);
	struct timespec ts = {0, 300 * 1000000L};
	nanosleep(&ts, NULL);
	close(fd);
	ck_assert_msg(!cluster_died(c, 2), "node 2 died on bad peer messages");
	ck_assert_int_eq(cluster_wait_leaders(c, 15000), 0);
	assert_serving();
}
END_TEST

/* A snapshot that the Raft core takes (it comes from a "leader" of a higher term, at offset 0,
 * complete, past the follower's commit) but whose bytes are no snapshot stream: the follower
 * must not stop; it rebuilds that replica from its peers (node/snapshot.c). Found by reading
 * the code during the fuzzing work (docs/SECURITY.md): before, node_fatal stopped the node. */
START_TEST(test_peer_snapshot_stream_damaged)
{
	static struct node_config cfg;
	char err[512], dir[600];
	snprintf(dir, sizeof dir, "%s", cluster_data_dir(c, 2));
	char *argv[] = {"kvd", "--data-dir", dir, NULL};
	ck_assert_msg(node_config_load(3, argv, &cfg, err, sizeof err) == 0, "%s", err);
	/* node 1 down, so that node 2 takes this connection as node 1's (a node keeps one
	 * link per peer and ignores frames from any other) */
	cluster_kill(c, 1);
	int fd = -1;
	uint64_t until = cluster_now_ms() + 10000;
	for (;;) {
		fd = cluster_dial(cluster_peer_addr(c, 2));
		Ringraft__Raft__Hello hello = RINGRAFT__RAFT__HELLO__INIT;
		hello.cluster_id = cfg.cluster_id;
		hello.node_id = 1;
		hello.client_addr = (char *)cluster_client_addr(c, 1);
		Ringraft__Raft__PeerFrame hf = RINGRAFT__RAFT__PEER_FRAME__INIT;
		hf.hello = &hello;
		send_peer_frame(fd, &hf);
		if (read_frame_any(fd, 3000))
			break;
		close(fd);
		ck_assert_msg(cluster_now_ms() < until, "node 2 did not answer a valid Hello");
	}

	uint64_t voters[3] = {1, 2, 3};
	Ringraft__Raft__Configuration conf = RINGRAFT__RAFT__CONFIGURATION__INIT;
	conf.voters = voters;
	conf.n_voters = 3;
	uint8_t junk[64];
	memset(junk, 0x5a, sizeof junk);
	Ringraft__Raft__Message m = RINGRAFT__RAFT__MESSAGE__INIT;
	m.type = 9; /* RAFT_MSG_SNAPSHOT */
	m.from = 1;
	m.to = 2;
	m.group = 1;
	m.term = 1000;
	m.snap_index = 1000000;
	m.snap_term = 999;
	m.snap_conf = &conf;
	m.snap_offset = 0;
	m.snap_data.data = junk;
	m.snap_data.len = sizeof junk;
	m.snap_done = true;
	Ringraft__Raft__Message *mp = &m;
	Ringraft__Raft__PeerFrame f = RINGRAFT__RAFT__PEER_FRAME__INIT;
	f.msgs = &mp;
	f.n_msgs = 1;
	send_peer_frame(fd, &f);
	uint64_t deadline = cluster_now_ms() + 10000;
	bool died = false; /* cluster_died reports a death once */
	while (cluster_log_grep(c, 2, "snapshot stream refused") == 0 &&
	       !(died = cluster_died(c, 2)) && cluster_now_ms() < deadline) {
		struct timespec ts = {0, 50 * 1000000L};
		nanosleep(&ts, NULL);
	}
	close(fd);
	ck_assert_msg(!died && !cluster_died(c, 2), "node 2 stopped on a damaged snapshot stream");
	ck_assert_msg(cluster_log_grep(c, 2, "snapshot stream refused") > 0,
		      "node 2 did not say it refused the stream");
	ck_assert_int_eq(cluster_restart(c, 1), 0);
	ck_assert_int_eq(cluster_wait_leaders(c, 20000), 0);
	assert_serving();
	ck_assert_int_eq(cluster_wait_digests_equal(c, 20000), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("bad_input");
	TCase *tc = tcase_create("bad input");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_client_garbage_truncated_oversize);
	tcase_add_test(tc, test_client_unknown_op_and_invalid_keys);
	tcase_add_test(tc, test_client_that_never_reads_is_dropped);
	tcase_add_test(tc, test_thousands_of_idle_connections);
	tcase_add_test(tc, test_peer_port_bogus_input);
	tcase_add_test(tc, test_peer_port_unknown_and_malformed_messages);
	tcase_add_test(tc, test_peer_snapshot_stream_damaged);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
