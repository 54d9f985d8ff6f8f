/* test_session.c — exactly-once client sessions (Raft thesis 6.3): a repeated sequence answers
 * its first result without applying again, several requests in flight, the window of
 * remembered results (older: KV_ESESSION), expiry by log-index age and by count (least
 * recently active first), expiry that is the same whatever the batch boundaries, sessions
 * kept across a restart.
 */
#include "kv_fixture.h"

static struct kv_cmd sput(uint64_t client, uint64_t seq, const char *k, const char *v)
{
	struct kv_cmd c = fx_put_cmd(k, v);
	c.client_id = client;
	c.seq = seq;
	return c;
}

static struct fx_res run(struct fx *f, const struct kv_cmd *c)
{
	struct fx_res r;
	ck_assert_int_eq(fx_apply_cmd(f, 1, c, &r), KV_OK);
	return r;
}

START_TEST(test_duplicate_returns_first_result)
{
	struct fx f;
	fx_open(&f);
	struct kv_cmd c = {.op = KV_OP_CAS,
			   .client_id = 7,
			   .seq = 1,
			   .key = "k",
			   .key_len = 1,
			   .expect_absent = true,
			   .value = "first",
			   .value_len = 5};
	struct fx_res r = run(&f, &c);
	ck_assert_int_eq(r.res.code, KV_OK);
	ck_assert(!r.res.duplicate);
	/* Someone else changes the key; the retry of seq 1 must not apply again. */
	ck_assert_int_eq(fx_put(&f, 1, "k", "other"), KV_OK);
	r = run(&f, &c);
	ck_assert_int_eq(r.res.code, KV_OK);
	ck_assert(r.res.duplicate);
	fx_expect(&f, 1, "k", "other");
	/* A mismatch result is cached with the value it saw then. */
	struct kv_cmd m = {.op = KV_OP_CAS,
			   .client_id = 7,
			   .seq = 2,
			   .key = "k",
			   .key_len = 1,
			   .expected = "nope",
			   .expected_len = 4,
			   .value = "x",
			   .value_len = 1};
	r = run(&f, &m);
	ck_assert_int_eq(r.res.code, KV_CAS_MISMATCH);
	ck_assert(memcmp(r.value, "other", 5) == 0);
	ck_assert_int_eq(fx_put(&f, 1, "k", "nope"), KV_OK); /* now it would match */
	r = run(&f, &m);
	ck_assert(r.res.duplicate);
	ck_assert_int_eq(r.res.code, KV_CAS_MISMATCH);
	ck_assert(r.res.found);
	ck_assert_uint_eq(r.res.value_len, 5);
	ck_assert(memcmp(r.value, "other", 5) == 0);
	fx_expect(&f, 1, "k", "nope");
	/* A delete retried after a re-put does not delete again. */
	struct kv_cmd d = {.op = KV_OP_DELETE, .client_id = 7, .seq = 3, .key = "k", .key_len = 1};
	ck_assert_int_eq(run(&f, &d).res.code, KV_OK);
	ck_assert_int_eq(fx_put(&f, 1, "k", "back"), KV_OK);
	r = run(&f, &d);
	ck_assert(r.res.duplicate);
	ck_assert_int_eq(r.res.code, KV_OK);
	fx_expect(&f, 1, "k", "back");
	/* Sessions of other clients and sessionless writes are unaffected. */
	struct kv_cmd o = sput(8, 1, "k", "eight");
	ck_assert(!run(&f, &o).res.duplicate);
	fx_expect(&f, 1, "k", "eight");
	fx_close(&f);
}
END_TEST

START_TEST(test_in_flight_out_of_order)
{
	struct fx f;
	fx_open(&f);
	/* seqs 1..5 committed as 3, 1, 5, 2, 4; then all retried. */
	int order[5] = {3, 1, 5, 2, 4};
	char k[16];
	for (int i = 0; i < 5; i++) {
		snprintf(k, sizeof k, "k%d", order[i]);
		struct kv_cmd c = sput(1, (uint64_t)order[i], k, "v");
		ck_assert(!run(&f, &c).res.duplicate);
	}
	for (int s = 1; s <= 5; s++) {
		snprintf(k, sizeof k, "k%d", s);
		ck_assert_int_eq(fx_del(&f, 1, k), KV_OK);
		struct kv_cmd c = sput(1, (uint64_t)s, k, "v");
		ck_assert(run(&f, &c).res.duplicate);
		fx_expect(&f, 1, k, NULL);
	}
	fx_close(&f);
}
END_TEST

START_TEST(test_window_forgets_oldest)
{
	struct fx f;
	fx_open(&f);
	for (uint64_t s = 1; s <= KV_SESSION_WINDOW + 10; s++) {
		struct kv_cmd c = sput(5, s, "k", "v");
		ck_assert(!run(&f, &c).res.duplicate);
	}
	/* The 10 oldest are forgotten: their retry is KV_ESESSION and does not apply. */
	ck_assert_int_eq(fx_del(&f, 1, "k"), KV_OK);
	for (uint64_t s = 1; s <= 10; s++) {
		struct kv_cmd c = sput(5, s, "k", "v");
		struct fx_res r = run(&f, &c);
		ck_assert_int_eq(r.res.code, KV_ESESSION);
		ck_assert(!r.res.duplicate);
	}
	fx_expect(&f, 1, "k", NULL);
	/* The window still answers its own. */
	struct kv_cmd c = sput(5, 11, "k", "v");
	ck_assert(run(&f, &c).res.duplicate);
	c = sput(5, KV_SESSION_WINDOW + 10, "k", "v");
	ck_assert(run(&f, &c).res.duplicate);
	fx_expect(&f, 1, "k", NULL);
	fx_close(&f);
}
END_TEST

START_TEST(test_expiry_by_index_age)
{
	struct fx f;
	struct kv_options o;
	kv_options_default(&o);
	o.session_ttl_entries = 10;
	fx_open_opts(&f, &o);
	struct kv_cmd c = sput(3, 1, "k", "v"); /* index 1 */
	ck_assert(!run(&f, &c).res.duplicate);
	for (int i = 0; i < 8; i++) /* indexes 2..9 */
		ck_assert_int_eq(fx_put(&f, 1, "other", "x"), KV_OK);
	ck_assert_int_eq(fx_del(&f, 1, "k"), KV_OK); /* index 10 */
	/* Index 11: idle for 10 entries, so the session is gone; the retry is applied as new
	 * (the documented limit of exactly-once: retries must stop well within the TTL). */
	struct fx_res r = run(&f, &c);
	ck_assert(!r.res.duplicate);
	fx_expect(&f, 1, "k", "v");
	/* Activity keeps a session alive: index 12 uses seq 2, index 21 retries it. */
	struct kv_cmd c2 = sput(3, 2, "j", "v");
	ck_assert(!run(&f, &c2).res.duplicate);
	for (int i = 0; i < 8; i++) /* 13..20 */
		ck_assert_int_eq(fx_put(&f, 1, "other", "x"), KV_OK);
	ck_assert(run(&f, &c2).res.duplicate); /* index 21: idle 9 entries */
	fx_close(&f);
}
END_TEST

START_TEST(test_expiry_by_count)
{
	struct fx f;
	struct kv_options o;
	kv_options_default(&o);
	o.sessions_max = 3;
	fx_open_opts(&f, &o);
	for (uint64_t client = 1; client <= 3; client++) {
		struct kv_cmd c = sput(client, 1, "k", "v");
		run(&f, &c);
	}
	/* Client 1 becomes the most recently active; a 4th session evicts client 2. */
	struct kv_cmd c1 = sput(1, 2, "k", "v");
	run(&f, &c1);
	struct kv_cmd c4 = sput(4, 1, "k", "v");
	ck_assert(!run(&f, &c4).res.duplicate);
	struct kv_cmd again;
	again = sput(1, 1, "k", "v");
	ck_assert(run(&f, &again).res.duplicate);
	again = sput(3, 1, "k", "v");
	ck_assert(run(&f, &again).res.duplicate);
	again = sput(4, 1, "k", "v");
	ck_assert(run(&f, &again).res.duplicate);
	again = sput(2, 1, "k", "v");
	ck_assert(!run(&f, &again).res.duplicate); /* forgotten: a new session (evicts 1) */
	again = sput(1, 2, "k", "v");
	ck_assert(!run(&f, &again).res.duplicate);
	fx_close(&f);
}
END_TEST

/* The same log applied in different batch sizes leaves the same sessions: equal answers. */
static void apply_log(struct fx *f, size_t batch, struct fx_res *last)
{
	enum { N = 60 };
	struct raft_entry e[N];
	for (int i = 0; i < N; i++) {
		char k[16];
		snprintf(k, sizeof k, "k%d", i % 7);
		/* 4 clients, ttl 12: some sessions expire between their uses. */
		uint64_t client = 1 + (uint64_t)(i * 7 % 4), seq = 1 + (uint64_t)i / 20;
		struct kv_cmd c = sput(client, seq, k, i % 2 ? "odd" : "even");
		e[i] = (struct raft_entry){.index = (raft_index)i + 1, .term = 1};
		ck_assert_int_eq(kv_cmd_encode(f->kv, &c, &e[i].data), KV_OK);
	}
	for (size_t i = 0; i < N; i += batch) {
		size_t n = N - i < batch ? N - i : batch;
		ck_assert_int_eq(kv_apply(f->kv, 1, e + i, n, NULL, fx_res_cb, last), KV_OK);
	}
	for (int i = 0; i < N; i++)
		free(e[i].data.base);
}

START_TEST(test_expiry_independent_of_batching)
{
	struct kv_options o;
	kv_options_default(&o);
	o.session_ttl_entries = 12;
	o.sessions_max = 3;
	struct fx a, b;
	fx_open_opts(&a, &o);
	fx_open_opts(&b, &o);
	struct fx_res ra = {0}, rb = {0};
	apply_log(&a, 1, &ra);
	apply_log(&b, 60, &rb);
	ck_assert_int_eq(ra.calls, 60);
	ck_assert_int_eq(rb.calls, 60);
	uint8_t da[KV_DIGEST_BYTES], db[KV_DIGEST_BYTES];
	ck_assert_int_eq(kv_digest(a.kv, 1, da, NULL), KV_OK);
	ck_assert_int_eq(kv_digest(b.kv, 1, db, NULL), KV_OK);
	ck_assert(memcmp(da, db, sizeof da) == 0);
	/* Probe every client's seqs 1..3 on both: the same duplicate/new answers. */
	a.next[1] = b.next[1] = 61;
	for (uint64_t client = 1; client <= 4; client++) {
		for (uint64_t seq = 1; seq <= 3; seq++) {
			struct kv_cmd c = sput(client, seq, "probe", "p");
			struct fx_res x, y;
			ck_assert_int_eq(fx_apply_cmd(&a, 1, &c, &x), KV_OK);
			ck_assert_int_eq(fx_apply_cmd(&b, 1, &c, &y), KV_OK);
			ck_assert_int_eq(x.res.duplicate, y.res.duplicate);
			ck_assert_int_eq(x.res.code, y.res.code);
		}
	}
	fx_close(&a);
	fx_close(&b);
}
END_TEST

START_TEST(test_sessions_survive_restart)
{
	struct fx f;
	fx_open(&f);
	struct kv_cmd c = sput(9, 1, "k", "v");
	run(&f, &c);
	kv_close(f.kv);
	ck_assert_int_eq(kv_open(f.dir, NULL, &f.kv), KV_OK);
	ck_assert(run(&f, &c).res.duplicate);
	fx_close(&f);
}
END_TEST

Suite *session_suite(void)
{
	Suite *s = suite_create("kv_session");
	TCase *tc = tcase_create("session");
	tcase_add_test(tc, test_duplicate_returns_first_result);
	tcase_add_test(tc, test_in_flight_out_of_order);
	tcase_add_test(tc, test_window_forgets_oldest);
	tcase_add_test(tc, test_expiry_by_index_age);
	tcase_add_test(tc, test_expiry_by_count);
	tcase_add_test(tc, test_expiry_independent_of_batching);
	tcase_add_test(tc, test_sessions_survive_restart);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(session_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
