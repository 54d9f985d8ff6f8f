/* test_apply.c — kv_apply: every command and its result, compare-and-set edge cases, replay
 * of already applied entries (WAL replay after a restart), gaps, no-ops, configuration
 * entries, entries that do not decode, and groups kept apart; INCRBY (Redis's integer rules,
 * overflow), MSET/MDEL in one entry, SET XX / SET GET / GETDEL flags.
 */
#include "kv_fixture.h"

/* ------------------------------------------------------------------ commands */
START_TEST(test_put_get_delete)
{
	struct fx f;
	fx_open(&f);
	ck_assert_int_eq(fx_put(&f, 1, "a", "1"), KV_OK);
	fx_expect(&f, 1, "a", "1");
	ck_assert_int_eq(fx_put(&f, 1, "a", "two"), KV_OK);
	fx_expect(&f, 1, "a", "two");
	ck_assert_int_eq(fx_put(&f, 1, "empty", ""), KV_OK);
	fx_expect(&f, 1, "empty", "");
	ck_assert_int_eq(fx_del(&f, 1, "a"), KV_OK);
	fx_expect(&f, 1, "a", NULL);
	ck_assert_int_eq(fx_del(&f, 1, "a"), KV_NOT_FOUND);
	ck_assert_uint_eq(fx_applied(&f, 1), 5);
	fx_close(&f);
}
END_TEST

START_TEST(test_groups_are_separate)
{
	struct fx f;
	fx_open(&f);
	ck_assert_int_eq(fx_put(&f, 1, "k", "one"), KV_OK);
	ck_assert_int_eq(fx_put(&f, 2, "k", "two"), KV_OK);
	fx_expect(&f, 1, "k", "one");
	fx_expect(&f, 2, "k", "two");
	fx_expect(&f, 3, "k", NULL);
	ck_assert_int_eq(fx_put(&f, KV_GROUPS_MAX, "k", "last"), KV_OK);
	struct kv_cmd c = fx_put_cmd("k", "v");
	ck_assert_int_eq(fx_apply_cmd(&f, 0, &c, NULL), KV_ENOGROUP);
	void *v;
	size_t n;
	ck_assert_int_eq(kv_get(f.kv, KV_GROUPS_MAX + 1, "k", 1, 0, &v, &n, NULL), KV_ENOGROUP);
	fx_close(&f);
}
END_TEST

static int cas(struct fx *f, const char *k, const char *expected, bool absent, const char *v,
	       struct fx_res *r)
{
	struct kv_cmd c = {.op = KV_OP_CAS,
			   .key = k,
			   .key_len = strlen(k),
			   .value = v,
			   .value_len = strlen(v),
			   .expect_absent = absent};
	if (expected) {
		c.expected = expected;
		c.expected_len = strlen(expected);
	}
	ck_assert_int_eq(fx_apply_cmd(f, 1, &c, r), KV_OK);
	return r->res.code;
}

START_TEST(test_cas_edges)
{
	struct fx f;
	fx_open(&f);
	struct fx_res r;
	/* against a value, key absent: mismatch, not found */
	ck_assert_int_eq(cas(&f, "k", "x", false, "y", &r), KV_CAS_MISMATCH);
	ck_assert(!r.res.found);
	ck_assert_uint_eq(r.res.value_len, 0);
	fx_expect(&f, 1, "k", NULL);
	/* against absence, key absent: set */
	ck_assert_int_eq(cas(&f, "k", NULL, true, "v1", &r), KV_OK);
	fx_expect(&f, 1, "k", "v1");
	/* against absence, key present: mismatch with the current value */
	ck_assert_int_eq(cas(&f, "k", NULL, true, "v2", &r), KV_CAS_MISMATCH);
	ck_assert(r.res.found);
	ck_assert_uint_eq(r.res.value_len, 2);
	ck_assert(memcmp(r.value, "v1", 2) == 0);
	fx_expect(&f, 1, "k", "v1");
	/* against a value, present and equal: set */
	ck_assert_int_eq(cas(&f, "k", "v1", false, "v3", &r), KV_OK);
	fx_expect(&f, 1, "k", "v3");
	/* against a value, present and different (also a prefix of it): mismatch */
	ck_assert_int_eq(cas(&f, "k", "v", false, "v4", &r), KV_CAS_MISMATCH);
	ck_assert(r.res.found);
	ck_assert(memcmp(r.value, "v3", 2) == 0);
	ck_assert_int_eq(cas(&f, "k", "v33", false, "v4", &r), KV_CAS_MISMATCH);
	fx_expect(&f, 1, "k", "v3");
	/* against the empty value: only an empty value matches */
	ck_assert_int_eq(fx_put(&f, 1, "e", ""), KV_OK);
	ck_assert_int_eq(cas(&f, "e", "", false, "full", &r), KV_OK);
	fx_expect(&f, 1, "e", "full");
	ck_assert_int_eq(cas(&f, "e", "", false, "again", &r), KV_CAS_MISMATCH);
	fx_close(&f);
}
END_TEST

/* ------------------------------------------------------------------ INCRBY, MSET, MDEL, flags */
static int incrby(struct fx *f, const char *k, int64_t d, struct fx_res *r)
{
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)((uint64_t)d >> (8 * i));
	struct kv_cmd c = {
		.op = KV_OP_INCRBY, .key = k, .key_len = strlen(k), .value = b, .value_len = 8};
	ck_assert_int_eq(fx_apply_cmd(f, 1, &c, r), KV_OK);
	if (r->res.code == KV_OK)
		r->value[r->res.value_len] = '\0';
	return r->res.code;
}

START_TEST(test_incrby)
{
	struct fx f;
	fx_open(&f);
	struct fx_res r;
	ck_assert_int_eq(incrby(&f, "n", 1, &r), KV_OK); /* absent = 0 */
	ck_assert_str_eq((char *)r.value, "1");
	ck_assert_int_eq(incrby(&f, "n", -43, &r), KV_OK);
	ck_assert_str_eq((char *)r.value, "-42");
	fx_expect(&f, 1, "n", "-42");
	const char *bad[] = {"x", "", " 1", "+1", "01", "-0", "1 ", "99999999999999999999"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_int_eq(fx_put(&f, 1, "b", bad[i]), KV_OK);
		ck_assert_int_eq(incrby(&f, "b", 1, &r), KV_NOT_INTEGER);
		fx_expect(&f, 1, "b", bad[i]);
	}
	ck_assert_int_eq(fx_put(&f, 1, "m", "9223372036854775807"), KV_OK);
	ck_assert_int_eq(incrby(&f, "m", 1, &r), KV_OVERFLOW);
	ck_assert_int_eq(incrby(&f, "m", -1, &r), KV_OK);
	ck_assert_str_eq((char *)r.value, "9223372036854775806");
	ck_assert_int_eq(fx_put(&f, 1, "m", "-9223372036854775808"), KV_OK);
	ck_assert_int_eq(incrby(&f, "m", -1, &r), KV_OVERFLOW);
	ck_assert_int_eq(incrby(&f, "m", INT64_MAX, &r), KV_OK);
	ck_assert_str_eq((char *)r.value, "-1");
	fx_close(&f);
}
END_TEST

START_TEST(test_mset_mdel)
{
	struct fx f;
	fx_open(&f);
	struct kv_item it[3] = {{"a", 1, "1", 1}, {"b", 1, "22", 2}, {"a", 1, "3", 1}};
	struct kv_cmd c = {.op = KV_OP_MSET, .items = it, .n_items = 3};
	struct fx_res r;
	ck_assert_int_eq(fx_apply_cmd(&f, 1, &c, &r), KV_OK);
	ck_assert_int_eq(r.res.code, KV_OK);
	fx_expect(&f, 1, "a", "3"); /* in order: the last one wins, as in Redis */
	fx_expect(&f, 1, "b", "22");
	struct kv_item d[3] = {{"a", 1, NULL, 0}, {"zz", 2, NULL, 0}, {"b", 1, NULL, 0}};
	c = (struct kv_cmd){.op = KV_OP_MDEL, .items = d, .n_items = 3};
	ck_assert_int_eq(fx_apply_cmd(&f, 1, &c, &r), KV_OK);
	ck_assert_uint_eq(r.res.value_len, 1);
	ck_assert(r.value[0] == '2');
	fx_expect(&f, 1, "a", NULL);
	fx_expect(&f, 1, "b", NULL);
	/* malformed multi commands are refused at encoding */
	struct raft_buf b;
	c.n_items = 0;
	ck_assert_int_eq(kv_cmd_encode(f.kv, &c, &b), KV_EINVAL);
	struct kv_item e[1] = {{"", 0, NULL, 0}};
	c = (struct kv_cmd){.op = KV_OP_MDEL, .items = e, .n_items = 1};
	ck_assert_int_eq(kv_cmd_encode(f.kv, &c, &b), KV_EINVAL);
	fx_close(&f);
}
END_TEST

START_TEST(test_put_flags)
{
	struct fx f;
	fx_open(&f);
	struct fx_res r;
	struct kv_cmd c = fx_put_cmd("k", "v1");
	c.if_present = true; /* SET XX on an absent key: nothing written */
	ck_assert_int_eq(fx_apply_cmd(&f, 1, &c, &r), KV_OK);
	ck_assert_int_eq(r.res.code, KV_NOT_FOUND);
	fx_expect(&f, 1, "k", NULL);
	c.if_present = false;
	c.return_old = true; /* SET GET on an absent key */
	ck_assert_int_eq(fx_apply_cmd(&f, 1, &c, &r), KV_OK);
	ck_assert_int_eq(r.res.code, KV_OK);
	ck_assert(!r.res.found);
	c = fx_put_cmd("k", "v2");
	c.return_old = c.if_present = true;
	ck_assert_int_eq(fx_apply_cmd(&f, 1, &c, &r), KV_OK);
	ck_assert(r.res.found);
	ck_assert_uint_eq(r.res.value_len, 2);
	ck_assert(memcmp(r.value, "v1", 2) == 0);
	fx_expect(&f, 1, "k", "v2");
	c = (struct kv_cmd){.op = KV_OP_DELETE, .key = "k", .key_len = 1, .return_old = true};
	ck_assert_int_eq(fx_apply_cmd(&f, 1, &c, &r), KV_OK); /* GETDEL */
	ck_assert(r.res.found);
	ck_assert(memcmp(r.value, "v2", 2) == 0);
	fx_expect(&f, 1, "k", NULL);
	ck_assert_int_eq(fx_apply_cmd(&f, 1, &c, &r), KV_OK);
	ck_assert_int_eq(r.res.code, KV_NOT_FOUND);
	ck_assert(!r.res.found);
	fx_close(&f);
}
END_TEST

/* ------------------------------------------------------------------ replay and batches */
static struct raft_entry mk(raft_index i, raft_term t, const struct kv_cmd *c)
{
	struct raft_entry e = {.index = i, .term = t, .type = RAFT_ENTRY_NORMAL};
	if (c)
		ck_assert_int_eq(kv_cmd_encode(NULL, c, &e.data), KV_OK);
	return e;
}

static void count_cb(const struct raft_entry *e, const struct kv_result *res, void *arg)
{
	(void)e;
	(void)res;
	(*(int *)arg)++;
}

START_TEST(test_replay_is_idempotent)
{
	struct fx f;
	fx_open(&f);
	/* A counter-like history that replay would visibly break: put, cas, delete, put. */
	struct kv_cmd c1 = fx_put_cmd("k", "1");
	struct kv_cmd c2 = {.op = KV_OP_CAS,
			    .key = "k",
			    .key_len = 1,
			    .expected = "1",
			    .expected_len = 1,
			    .value = "2",
			    .value_len = 1};
	struct kv_cmd c3 = {.op = KV_OP_DELETE, .key = "k", .key_len = 1};
	struct kv_cmd c4 = {.op = KV_OP_CAS,
			    .key = "k",
			    .key_len = 1,
			    .expect_absent = true,
			    .value = "4",
			    .value_len = 1};
	struct raft_entry e[5] = {mk(1, 1, NULL), mk(2, 1, &c1), mk(3, 1, &c2), mk(4, 2, &c3),
				  mk(5, 2, &c4)};
	int calls = 0;
	ck_assert_int_eq(kv_apply(f.kv, 1, e, 3, NULL, count_cb, &calls), KV_OK);
	ck_assert_int_eq(calls, 3);
	fx_expect(&f, 1, "k", "2");
	/* Replay everything from the start: 1..3 are skipped, 4..5 apply once. */
	calls = 0;
	ck_assert_int_eq(kv_apply(f.kv, 1, e, 5, NULL, count_cb, &calls), KV_OK);
	ck_assert_int_eq(calls, 2);
	fx_expect(&f, 1, "k", "4");
	uint8_t d1[KV_DIGEST_BYTES], d2[KV_DIGEST_BYTES];
	ck_assert_int_eq(kv_digest(f.kv, 1, d1, NULL), KV_OK);
	/* A full replay again changes nothing and calls nothing. */
	calls = 0;
	ck_assert_int_eq(kv_apply(f.kv, 1, e, 5, NULL, count_cb, &calls), KV_OK);
	ck_assert_int_eq(calls, 0);
	ck_assert_int_eq(kv_digest(f.kv, 1, d2, NULL), KV_OK);
	ck_assert(memcmp(d1, d2, sizeof d1) == 0);
	struct kv_group_meta m;
	ck_assert_int_eq(kv_meta(f.kv, 1, &m), KV_OK);
	ck_assert_uint_eq(m.applied_index, 5);
	ck_assert_uint_eq(m.applied_term, 2);
	/* After a restart the applied index is still there, so replay is still skipped. */
	kv_close(f.kv);
	ck_assert_int_eq(kv_open(f.dir, NULL, &f.kv), KV_OK);
	calls = 0;
	ck_assert_int_eq(kv_apply(f.kv, 1, e, 5, NULL, count_cb, &calls), KV_OK);
	ck_assert_int_eq(calls, 0);
	fx_expect(&f, 1, "k", "4");
	for (int i = 0; i < 5; i++)
		free(e[i].data.base);
	fx_close(&f);
}
END_TEST

START_TEST(test_gap_refused)
{
	struct fx f;
	fx_open(&f);
	struct kv_cmd c = fx_put_cmd("k", "v");
	struct raft_entry e = mk(2, 1, &c);
	int calls = 0;
	ck_assert_int_eq(kv_apply(f.kv, 1, &e, 1, NULL, count_cb, &calls), KV_EINVAL);
	ck_assert_int_eq(calls, 0);
	fx_expect(&f, 1, "k", NULL);
	ck_assert_uint_eq(fx_applied(&f, 1), 0);
	free(e.data.base);
	fx_close(&f);
}
END_TEST

/* Batched applies (kv_apply_batching): the applies of every group go into one open
 * transaction, and whatever reads or writes in between sees every apply made before it (the
 * open transaction commits first). A refused apply (a gap) leaves the others alone; what was
 * not committed is what a crash loses (kv_apply_abandon), and applying it again works. */
START_TEST(test_batched_applies)
{
	struct fx f;
	fx_open(&f);
	kv_apply_batching(f.kv, true);
	ck_assert_int_eq(fx_put(&f, 1, "a", "1"), KV_OK);
	ck_assert_int_eq(fx_put(&f, 2, "b", "2"), KV_OK);
	fx_expect(&f, 1, "a", "1"); /* a read: the applies before it show */
	fx_expect(&f, 2, "b", "2");
	ck_assert_int_eq(fx_put(&f, 1, "a", "one"), KV_OK);
	ck_assert_int_eq(fx_put(&f, 2, "c", "3"), KV_OK);
	struct kv_cmd c = fx_put_cmd("gap", "v");
	struct raft_entry e = mk(5, 1, &c);
	int calls = 0;
	ck_assert_int_eq(kv_apply(f.kv, 3, &e, 1, NULL, count_cb, &calls), KV_EINVAL);
	ck_assert_int_eq(calls, 0);
	ck_assert_int_eq(fx_put(&f, 2, "d", "4"), KV_OK);
	fx_expect(&f, 1, "a", "one");
	ck_assert_int_eq(kv_apply_commit(f.kv), KV_OK);
	fx_expect(&f, 2, "c", "3");
	fx_expect(&f, 2, "d", "4");
	fx_expect(&f, 3, "gap", NULL);
	ck_assert_uint_eq(fx_applied(&f, 1), 2);
	ck_assert_uint_eq(fx_applied(&f, 2), 3);
	ck_assert_uint_eq(fx_applied(&f, 3), 0);
	free(e.data.base);
	/* A crash loses the open transaction: the applied index is where it committed, and the
	 * same entries apply again (as the WAL's replay does). */
	ck_assert_int_eq(fx_put(&f, 1, "lost", "x"), KV_OK);
	kv_apply_abandon(f.kv);
	kv_close(f.kv);
	ck_assert_int_eq(kv_open(f.dir, NULL, &f.kv), KV_OK);
	ck_assert_uint_eq(fx_applied(&f, 1), 2);
	fx_expect(&f, 1, "lost", NULL);
	f.next[1]--;
	ck_assert_int_eq(fx_put(&f, 1, "lost", "x"), KV_OK);
	fx_expect(&f, 1, "lost", "x");
	/* kv_close commits what is open */
	kv_apply_batching(f.kv, true);
	ck_assert_int_eq(fx_put(&f, 2, "kept", "y"), KV_OK);
	kv_close(f.kv);
	ck_assert_int_eq(kv_open(f.dir, NULL, &f.kv), KV_OK);
	fx_expect(&f, 2, "kept", "y");
	fx_close(&f);
}
END_TEST

/* The open transaction commits on its own once it holds KV_APPLY_HOLD_ENTRIES entries. */
START_TEST(test_batched_applies_bounded)
{
	struct fx f;
	fx_open(&f);
	kv_apply_batching(f.kv, true);
	char k[32];
	for (int i = 0; i <= KV_APPLY_HOLD_ENTRIES; i++) {
		snprintf(k, sizeof k, "k%d", i);
		ck_assert_int_eq(fx_put(&f, 1, k, "v"), KV_OK);
	}
	kv_apply_abandon(f.kv); /* loses only the last one, applied after the commit */
	kv_close(f.kv);
	ck_assert_int_eq(kv_open(f.dir, NULL, &f.kv), KV_OK);
	ck_assert_uint_eq(fx_applied(&f, 1), KV_APPLY_HOLD_ENTRIES);
	fx_close(&f);
}
END_TEST

START_TEST(test_noop_and_bad_entries)
{
	struct fx f;
	fx_open(&f);
	struct fx_res r = {0};
	struct raft_entry e[3] = {mk(1, 3, NULL)};
	/* A garbage payload (from a buggy or hostile peer) is applied as a no-op, KV_EINVAL. */
	static uint8_t junk[7] = {1, 2, 3, 4, 5, 6, 7};
	e[1] = (struct raft_entry){.index = 2, .term = 3, .data = {junk, sizeof junk}};
	struct kv_cmd noop = {.op = KV_OP_NOOP};
	e[2] = mk(3, 3, &noop);
	ck_assert_int_eq(kv_apply(f.kv, 1, e, 1, NULL, fx_res_cb, &r), KV_OK);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(r.res.code, KV_OK);
	ck_assert_int_eq(kv_apply(f.kv, 1, e + 1, 1, NULL, fx_res_cb, &r), KV_OK);
	ck_assert_int_eq(r.res.code, KV_EINVAL);
	ck_assert_int_eq(kv_apply(f.kv, 1, e + 2, 1, NULL, fx_res_cb, &r), KV_OK);
	ck_assert_int_eq(r.res.code, KV_OK);
	struct kv_group_meta m;
	ck_assert_int_eq(kv_meta(f.kv, 1, &m), KV_OK);
	ck_assert_uint_eq(m.applied_index, 3);
	ck_assert_uint_eq(m.applied_term, 3);
	ck_assert_uint_eq(m.keys, 0);
	free(e[2].data.base);
	fx_close(&f);
}
END_TEST

START_TEST(test_conf_stored)
{
	struct fx f;
	fx_open(&f);
	struct kv_group_meta m;
	ck_assert_int_eq(kv_meta(f.kv, 4, &m), KV_OK);
	ck_assert(!m.has_conf);
	struct raft_conf conf = {
		.voters = {1, 2, 3}, .n_voters = 3, .learners = {9}, .n_learners = 1};
	static uint8_t cc[4] = {0};
	struct raft_entry e[2] = {
		{.index = 1, .term = 1, .type = RAFT_ENTRY_CONF, .data = {cc, sizeof cc}}};
	struct kv_cmd c = fx_put_cmd("x", "y");
	e[1] = mk(2, 1, &c);
	int calls = 0;
	ck_assert_int_eq(kv_apply(f.kv, 4, e, 2, &conf, count_cb, &calls), KV_OK);
	ck_assert_int_eq(calls, 1); /* the CONF entry gets no callback */
	ck_assert_int_eq(kv_meta(f.kv, 4, &m), KV_OK);
	ck_assert(m.has_conf);
	ck_assert_uint_eq(m.conf.n_voters, 3);
	ck_assert_uint_eq(m.conf.voters[2], 3);
	ck_assert_uint_eq(m.conf.n_learners, 1);
	ck_assert_uint_eq(m.conf.learners[0], 9);
	ck_assert_uint_eq(m.keys, 1);
	ck_assert_uint_eq(m.applied_index, 2);
	free(e[1].data.base);
	fx_close(&f);
}
END_TEST

/* Results come after the commit, in order, each with its own entry. */
struct order {
	raft_index seen[8];
	int codes[8];
	int n;
};

static void order_cb(const struct raft_entry *e, const struct kv_result *res, void *arg)
{
	struct order *o = arg;
	o->seen[o->n] = e->index;
	o->codes[o->n++] = res->code;
}

START_TEST(test_batch_results_in_order)
{
	struct fx f;
	fx_open(&f);
	struct kv_cmd put = fx_put_cmd("k", "v");
	struct kv_cmd del = {.op = KV_OP_DELETE, .key = "k", .key_len = 1};
	struct raft_entry e[4] = {mk(1, 1, &put), mk(2, 1, &del), mk(3, 1, &del), mk(4, 1, &put)};
	struct order o = {0};
	ck_assert_int_eq(kv_apply(f.kv, 1, e, 4, NULL, order_cb, &o), KV_OK);
	ck_assert_int_eq(o.n, 4);
	int want[4] = {KV_OK, KV_OK, KV_NOT_FOUND, KV_OK};
	for (int i = 0; i < 4; i++) {
		ck_assert_uint_eq(o.seen[i], (raft_index)i + 1);
		ck_assert_int_eq(o.codes[i], want[i]);
		free(e[i].data.base);
	}
	fx_expect(&f, 1, "k", "v");
	fx_close(&f);
}
END_TEST

Suite *apply_suite(void)
{
	Suite *s = suite_create("kv_apply");
	TCase *tc = tcase_create("apply");
	tcase_add_test(tc, test_put_get_delete);
	tcase_add_test(tc, test_groups_are_separate);
	tcase_add_test(tc, test_cas_edges);
	tcase_add_test(tc, test_replay_is_idempotent);
	tcase_add_test(tc, test_gap_refused);
	tcase_add_test(tc, test_batched_applies);
	tcase_add_test(tc, test_batched_applies_bounded);
	tcase_add_test(tc, test_noop_and_bad_entries);
	tcase_add_test(tc, test_conf_stored);
	tcase_add_test(tc, test_batch_results_in_order);
	tcase_add_test(tc, test_incrby);
	tcase_add_test(tc, test_mset_mdel);
	tcase_add_test(tc, test_put_flags);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(apply_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
