/* test_tls.c — net/tls.c on a real loop, two ends of a socketpair (no network): the handshake
 * with a write asked for before it finished, large data both ways, write callbacks exactly
 * once, close_notify seen as NET_ECLOSED, a certificate of another CA refused with OpenSSL's
 * verify reason, plaintext bytes refused, and kept writes cancelled by net_tls_free.
 * Certificates come from scripts/tls-certs (run from the repository root, as make test does).
 */
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/frame.h"
#include "net/tls.h"

static char root[256], certs[300], rogue[300];
static SSL_CTX *ctx_good, *ctx_client, *ctx_rogue;

/* One end: a pipe handle on its half of the socketpair, its TLS session, what it received. */
struct end {
	uv_pipe_t pipe;
	struct net_tls *tls;
	uint8_t *got;
	size_t got_len, got_cap;
	int feed_rc; /* the first non-OK net_tls_feed result */
	bool closed;
};

static uv_loop_t loop;
static struct end a, b; /* a accepts (client certificate required), b connects */
static uint8_t rbuf[64 * 1024];
static int writes_done, writes_failed, writes_cancelled;

static int on_plain(void *arg, const uint8_t *data, size_t len)
{
	struct end *e = arg;
	if (e->got_len + len > e->got_cap) {
		e->got_cap = (e->got_len + len) * 2;
		e->got = realloc(e->got, e->got_cap);
		ck_assert_ptr_nonnull(e->got);
	}
	memcpy(e->got + e->got_len, data, len);
	e->got_len += len;
	return NET_OK;
}

static void alloc_cb(uv_handle_t *h, size_t s, uv_buf_t *buf)
{
	(void)h;
	(void)s;
	buf->base = (char *)rbuf;
	buf->len = sizeof rbuf;
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	(void)buf;
	struct end *e = s->data;
	if (n == 0)
		return;
	if (n < 0) {
		if (e->feed_rc == NET_OK)
			e->feed_rc = NET_ECLOSED;
		uv_read_stop(s);
		return;
	}
	int rc = net_tls_feed(e->tls, rbuf, (size_t)n, on_plain, e);
	if (rc != NET_OK && e->feed_rc == NET_OK)
		e->feed_rc = rc;
}

static void write_cb(uv_write_t *req, int status)
{
	if (status == 0)
		writes_done++;
	else if (status == UV_ECANCELED)
		writes_cancelled++;
	else
		writes_failed++;
	free(req);
}

static void closed_cb(uv_handle_t *h)
{
	struct end *e = h->data;
	net_tls_free(e->tls); /* as the owners do: in the close callback */
	e->tls = NULL;
	e->closed = true;
}

static void end_open(struct end *e, int fd, SSL_CTX *ctx, enum net_tls_role role)
{
	memset(e, 0, sizeof *e);
	ck_assert_int_eq(uv_pipe_init(&loop, &e->pipe, 0), 0);
	ck_assert_int_eq(uv_pipe_open(&e->pipe, fd), 0);
	e->pipe.data = e;
	ck_assert_int_eq(net_tls_new(ctx, role, (uv_stream_t *)&e->pipe, &e->tls), NET_OK);
	ck_assert_int_eq(uv_read_start((uv_stream_t *)&e->pipe, alloc_cb, read_cb), 0);
}

static void pair(SSL_CTX *client_ctx)
{
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	writes_done = writes_failed = writes_cancelled = 0;
	end_open(&a, sv[0], ctx_good, NET_TLS_ACCEPT_VERIFY);
	end_open(&b, sv[1], client_ctx, NET_TLS_CONNECT);
}

/* Runs the loop until cond() or 5 s. */
static bool run_until(bool (*cond)(void))
{
	uint64_t end = uv_hrtime() + 5000000000ull;
	while (!cond() && uv_hrtime() < end) {
		uv_run(&loop, UV_RUN_NOWAIT);
		usleep(1000);
	}
	return cond();
}

static void write_plain(struct end *e, const void *p, size_t n)
{
	uv_write_t *req = malloc(sizeof *req);
	uv_buf_t buf = uv_buf_init((char *)p, (unsigned)n);
	ck_assert_int_eq(net_tls_write(e->tls, req, &buf, 1, write_cb), 0);
}

static void close_both(void)
{
	if (!uv_is_closing((uv_handle_t *)&a.pipe))
		uv_close((uv_handle_t *)&a.pipe, closed_cb);
	if (!uv_is_closing((uv_handle_t *)&b.pipe))
		uv_close((uv_handle_t *)&b.pipe, closed_cb);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert(a.closed && b.closed);
	free(a.got);
	free(b.got);
}

static void setup(void)
{
	ck_assert_int_eq(uv_loop_init(&loop), 0);
}

static void teardown(void)
{
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}

/* ------------------------------------------------------------------------------ tests */
static size_t want_a, want_b;
static bool both_got(void)
{
	return a.got_len >= want_a && b.got_len >= want_b;
}
static bool a_failed(void)
{
	return a.feed_rc != NET_OK;
}

START_TEST(test_handshake_data_and_close_notify)
{
	pair(ctx_client);
	ck_assert_int_eq(net_tls_start(b.tls), NET_OK);
	ck_assert(!net_tls_handshake_done(b.tls));
	write_plain(&b, "hello", 5); /* kept until the handshake is over */
	size_t big = 3u << 20;       /* many records, many reads */
	uint8_t *data = malloc(big);
	for (size_t i = 0; i < big; i++)
		data[i] = (uint8_t)(i * 131 + (i >> 9));
	want_a = 5;
	want_b = 0;
	ck_assert(run_until(both_got));
	ck_assert(net_tls_handshake_done(a.tls) && net_tls_handshake_done(b.tls));
	ck_assert_mem_eq(a.got, "hello", 5);
	write_plain(&a, data, big);
	write_plain(&b, data, big);
	want_a = 5 + big;
	want_b = big;
	ck_assert(run_until(both_got));
	ck_assert_uint_eq(a.got_len, 5 + big);
	ck_assert_uint_eq(b.got_len, big);
	ck_assert_int_eq(memcmp(a.got + 5, data, big), 0);
	ck_assert_int_eq(memcmp(b.got, data, big), 0);
	ck_assert_int_eq(writes_done, 3);
	ck_assert_int_eq(writes_failed + writes_cancelled, 0);
	/* close_notify from b: a's feed says the other side closed */
	net_tls_shutdown(b.tls);
	ck_assert(run_until(a_failed));
	ck_assert_int_eq(a.feed_rc, NET_ECLOSED);
	free(data);
	close_both();
}
END_TEST

START_TEST(test_certificate_of_another_ca_is_refused)
{
	pair(ctx_rogue); /* trusts our CA, presents a certificate of another */
	ck_assert_int_eq(net_tls_start(b.tls), NET_OK);
	write_plain(&b, "hello", 5);
	ck_assert(run_until(a_failed));
	ck_assert_int_eq(a.feed_rc, NET_ETLS);
	ck_assert_msg(strstr(net_tls_reason(a.tls), "certificate verify failed") != NULL,
		      "reason: %s", net_tls_reason(a.tls));
	ck_assert_uint_eq(a.got_len, 0); /* nothing of b's reached a */
	/* a failed session takes no more writes (and never calls their callback) */
	uv_write_t *req = malloc(sizeof *req);
	uv_buf_t x = uv_buf_init("x", 1);
	ck_assert_int_ne(net_tls_write(a.tls, req, &x, 1, write_cb), 0);
	free(req);
	close_both();
	/* b's kept or sent write ends one way or the other, exactly once */
	ck_assert_int_eq(writes_done + writes_failed + writes_cancelled, 1);
}
END_TEST

START_TEST(test_no_client_certificate_is_refused)
{
	SSL_CTX *bare; /* the CA only */
	char err[256], ca[320];
	snprintf(ca, sizeof ca, "%s/ca.pem", certs);
	struct net_tls_files f = {NULL, NULL, ca};
	bare = net_tls_ctx_new(&f, err, sizeof err);
	ck_assert_msg(bare != NULL, "%s", err);
	pair(bare);
	ck_assert_int_eq(net_tls_start(b.tls), NET_OK);
	ck_assert(run_until(a_failed));
	ck_assert_int_eq(a.feed_rc, NET_ETLS);
	ck_assert_msg(strstr(net_tls_reason(a.tls), "certificate") != NULL, "reason: %s",
		      net_tls_reason(a.tls));
	close_both();
	SSL_CTX_free(bare);
}
END_TEST

START_TEST(test_plaintext_is_refused)
{
	pair(ctx_client);
	/* b's session is never started: write raw bytes on its socket instead */
	uv_write_t *req = malloc(sizeof *req);
	uv_buf_t buf = uv_buf_init("*1\r\n$4\r\nPING\r\n", 14);
	ck_assert_int_eq(uv_write(req, (uv_stream_t *)&b.pipe, &buf, 1, write_cb), 0);
	ck_assert(run_until(a_failed));
	ck_assert_int_eq(a.feed_rc, NET_ETLS);
	ck_assert_str_ne(net_tls_reason(a.tls), "");
	close_both();
}
END_TEST

START_TEST(test_kept_writes_cancelled_on_free)
{
	pair(ctx_client);
	ck_assert_int_eq(net_tls_start(b.tls), NET_OK);
	write_plain(&b, "one", 3);
	write_plain(&b, "two", 3);
	close_both(); /* before the handshake could finish */
	ck_assert_int_eq(writes_cancelled, 2);
	ck_assert_int_eq(writes_done + writes_failed, 0);
}
END_TEST

START_TEST(test_ctx_errors_name_the_file)
{
	char err[256], ca[320], cert[320], key[320];
	snprintf(ca, sizeof ca, "%s/ca.pem", certs);
	snprintf(cert, sizeof cert, "%s/node1.pem", certs);
	snprintf(key, sizeof key, "%s/client.key", certs); /* not node1's key */
	struct net_tls_files f = {cert, key, ca};
	ck_assert_ptr_null(net_tls_ctx_new(&f, err, sizeof err));
	ck_assert_msg(strstr(err, "client.key") != NULL && strstr(err, "mismatch") != NULL, "%s",
		      err);
	struct net_tls_files g = {cert, NULL, ca};
	ck_assert_ptr_null(net_tls_ctx_new(&g, err, sizeof err));
	struct net_tls_files h = {NULL, NULL, "/nonexistent/ca.pem"};
	ck_assert_ptr_null(net_tls_ctx_new(&h, err, sizeof err));
	ck_assert_msg(strstr(err, "/nonexistent/ca.pem") != NULL, "%s", err);
}
END_TEST

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static SSL_CTX *ctx_of(const char *dir, const char *name, const char *ca_dir)
{
	char err[256], cert[320], key[320], ca[320];
	snprintf(cert, sizeof cert, "%s/%s.pem", dir, name);
	snprintf(key, sizeof key, "%s/%s.key", dir, name);
	snprintf(ca, sizeof ca, "%s/ca.pem", ca_dir);
	struct net_tls_files f = {cert, key, ca};
	SSL_CTX *ctx = net_tls_ctx_new(&f, err, sizeof err);
	if (ctx == NULL)
		fprintf(stderr, "test_tls: %s\n", err);
	return ctx;
}

int main(void)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(root, sizeof root, "%s/ringraft-tlsunit-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(root) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(certs, sizeof certs, "%s/certs", root);
	snprintf(rogue, sizeof rogue, "%s/rogue", root);
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "scripts/tls-certs %s node1 client && scripts/tls-certs %s rogue",
		 certs, rogue);
	int rc = system(cmd);
	if (rc == 0) {
		ctx_good = ctx_of(certs, "node1", certs);
		ctx_client = ctx_of(certs, "client", certs);
		ctx_rogue = ctx_of(rogue, "rogue", certs);
	}
	if (rc != 0 || !ctx_good || !ctx_client || !ctx_rogue) {
		fprintf(stderr, "test_tls: no certificates (run from the repository root)\n");
		nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
		return 1;
	}
	Suite *s = suite_create("net_tls");
	TCase *tc = tcase_create("tls");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_handshake_data_and_close_notify);
	tcase_add_test(tc, test_certificate_of_another_ca_is_refused);
	tcase_add_test(tc, test_no_client_certificate_is_refused);
	tcase_add_test(tc, test_plaintext_is_refused);
	tcase_add_test(tc, test_kept_writes_cancelled_on_free);
	tcase_add_test(tc, test_ctx_errors_name_the_file);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	SSL_CTX_free(ctx_good);
	SSL_CTX_free(ctx_client);
	SSL_CTX_free(ctx_rogue);
	nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return failed ? 1 : 0;
}
