/* test_model.c — the state machine against a model: seeded random runs of puts, deletes and
 * compare-and-sets (with and without sessions, with retries) applied in random batch sizes to
 * two environments, checked after every batch against a plain in-memory table for each
 * result, and at the end by get, a paged scan and the digest; the second replica is brought
 * up to date halfway by a snapshot taken from the first. A failure prints its seed.
 */
#include "kv_fixture.h"

#define KEYS  40
#define STEPS 1500

struct model {
	bool present[KEYS];
	char value[KEYS][24];
};

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* The model's answer for c (no session logic: retries are checked separately). */
static int model_apply(struct model *m, const struct kv_cmd *c, int key, bool *found, char *seen)
{
	*found = false;
	switch (c->op) {
	case KV_OP_PUT:
		m->present[key] = true;
		memcpy(m->value[key], c->value, c->value_len);
		m->value[key][c->value_len] = 0;
		return KV_OK;
	case KV_OP_DELETE:
		if (!m->present[key])
			return KV_NOT_FOUND;
		m->present[key] = false;
		return KV_OK;
	default: {
		bool match =
			c->expect_absent
				? !m->present[key]
				: m->present[key] && strlen(m->value[key]) == c->expected_len &&
					  memcmp(m->value[key], c->expected, c->expected_len) == 0;
		if (!match) {
			*found = m->present[key];
			strcpy(seen, m->present[key] ? m->value[key] : "");
			return KV_CAS_MISMATCH;
		}
		m->present[key] = true;
		memcpy(m->value[key], c->value, c->value_len);
		m->value[key][c->value_len] = 0;
		return KV_OK;
	}
	}
}

struct pending {
	int code;
	bool found;
	char seen[24];
	uint64_t client, seq; /* a session command (client != 0), kept in log[] for retries */
	bool retry;           /* a retry: expect the first answer, or KV_ESESSION */
	uint64_t latest;      /* a retry: the client's latest seq applied before it */
};

struct collect {
	struct fx_res res[64];
	int n;
};

static void collect_cb(const struct raft_entry *e, const struct kv_result *res, void *arg)
{
	struct collect *c = arg;
	ck_assert_int_lt(c->n, 64);
	fx_res_cb(e, res, &c->res[c->n++]);
}

static void snapshot_copy(struct fx *from, struct fx *to)
{
	struct kv_snapshot *s;
	struct kv_restore *r;
	ck_assert_int_eq(kv_snapshot_begin(from->kv, 1, &s), KV_OK);
	ck_assert_int_eq(kv_restore_begin(to->kv, 1, &r), KV_OK);
	uint8_t buf[777];
	bool done = false;
	while (!done) {
		size_t n;
		ck_assert_int_eq(kv_snapshot_read(s, buf, sizeof buf, &n, &done), KV_OK);
		ck_assert_int_eq(kv_restore_write(r, buf, n), KV_OK);
	}
	kv_snapshot_end(s);
	ck_assert_int_eq(kv_restore_finish(r), KV_OK);
}

static int page_cb(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	struct model *seen = arg;
	int key;
	ck_assert_int_eq(sscanf(k, "key%02d", &key), 1);
	ck_assert_uint_eq(kl, 5);
	ck_assert(!seen->present[key]);
	seen->present[key] = true;
	memcpy(seen->value[key], v, vl);
	seen->value[key][vl] = 0;
	return 0;
}

static void check_against(struct fx *f, const struct model *m)
{
	char k[16];
	for (int i = 0; i < KEYS; i++) {
		snprintf(k, sizeof k, "key%02d", i);
		fx_expect(f, 1, k, m->present[i] ? m->value[i] : NULL);
	}
	struct model seen;
	memset(&seen, 0, sizeof seen);
	void *next = NULL, *from = NULL;
	size_t next_len = 0, from_len = 0;
	do {
		ck_assert_int_eq(kv_scan(f->kv, 1, 0, from, from_len, NULL, 0, 7, page_cb, &seen,
					 &next, &next_len),
				 KV_OK);
		free(from);
		from = next;
		from_len = next_len;
	} while (from);
	for (int i = 0; i < KEYS; i++) {
		ck_assert_int_eq(seen.present[i], m->present[i]);
		if (m->present[i])
			ck_assert_str_eq(seen.value[i], m->value[i]);
	}
}

START_TEST(test_random_runs_match_model)
{
	uint64_t seed = 1000 + (uint64_t)_i, s = seed;
	struct kv_options o;
	kv_options_default(&o);
	o.session_ttl_entries = 1u << 30; /* expiry is test_session's subject */
	struct fx a, b;
	fx_open_opts(&a, &o);
	fx_open_opts(&b, &o);
	struct model m;
	memset(&m, 0, sizeof m);
	uint64_t seqs[4] = {0};
	/* Every session command ever applied, to retry one later: (client, seq, cmd bytes). */
	struct raft_buf *log = calloc(STEPS, sizeof *log);
	struct pending *want = calloc(STEPS, sizeof *want);
	raft_index index = 1;
	bool b_synced = false;
	int retries = 0, dups = 0;
	while (index <= STEPS) {
		size_t n = 1 + rnd(&s) % 40;
		if (index + n > STEPS + 1)
			n = STEPS + 1 - index;
		struct raft_entry e[40];
		bool owned[40];
		for (size_t j = 0; j < n; j++, index++) {
			struct pending *p = &want[index - 1];
			uint64_t r = rnd(&s);
			e[j] = (struct raft_entry){.index = index, .term = 1};
			owned[j] = false;
			if (index > 10 && r % 10 == 0) {
				/* Retry an earlier session command: the same bytes again. */
				raft_index old = 1 + rnd(&s) % (index - 1);
				while (old > 1 && log[old - 1].base == NULL)
					old--;
				if (log[old - 1].base) {
					e[j].data = log[old - 1];
					*p = want[old - 1];
					p->retry = true;
					p->latest = seqs[p->client - 100];
					retries++;
					continue;
				}
			}
			int key = (int)((r >> 8) % KEYS);
			char k[16], v[24], x[24];
			snprintf(k, sizeof k, "key%02d", key);
			snprintf(v, sizeof v, "v%llu", (unsigned long long)(rnd(&s) % 1000));
			struct kv_cmd c = {
				.key = k, .key_len = 5, .value = v, .value_len = strlen(v)};
			switch ((r >> 20) % 4) {
			case 0:
				c.op = KV_OP_PUT;
				break;
			case 1:
				c.op = KV_OP_DELETE;
				c.value_len = 0;
				break;
			case 2:
				c.op = KV_OP_CAS;
				c.expect_absent = true;
				break;
			default:
				c.op = KV_OP_CAS;
				/* mostly the current value, sometimes another */
				strcpy(x, m.present[key] && (r >> 30) % 3 ? m.value[key] : "v1");
				c.expected = x;
				c.expected_len = strlen(x);
				break;
			}
			if ((r >> 40) % 2) {
				int client = (int)((r >> 44) % 4);
				c.client_id = 100 + (uint64_t)client;
				c.seq = ++seqs[client];
			}
			memset(p, 0, sizeof *p);
			p->code = model_apply(&m, &c, key, &p->found, p->seen);
			p->client = c.client_id;
			p->seq = c.seq;
			ck_assert_int_eq(kv_cmd_encode(a.kv, &c, &e[j].data), KV_OK);
			if (c.client_id)
				log[index - 1] = e[j].data; /* freed at the end */
			else
				owned[j] = true;
		}
		/* Apply to a; to b too once it was brought up to date by a snapshot. */
		struct collect ca = {0}, cb = {0};
		ck_assert_int_eq(kv_apply(a.kv, 1, e, n, NULL, collect_cb, &ca), KV_OK);
		ck_assert_int_eq(ca.n, (int)n);
		if (b_synced) {
			ck_assert_int_eq(kv_apply(b.kv, 1, e, n, NULL, collect_cb, &cb), KV_OK);
			ck_assert_int_eq(cb.n, (int)n);
		}
		for (size_t j = 0; j < n; j++) {
			struct pending *p = &want[e[j].index - 1];
			const struct fx_res *got = &ca.res[j];
			int code = p->code;
			if (p->retry) {
				/* The window holds the client's KV_SESSION_WINDOW latest seqs. */
				if (p->seq + KV_SESSION_WINDOW <= p->latest) {
					code = KV_ESESSION;
				} else {
					ck_assert(got->res.duplicate);
					dups++;
				}
			} else {
				ck_assert(!got->res.duplicate);
			}
			ck_assert_msg(got->res.code == code,
				      "seed %llu index %llu: code %d, want %d",
				      (unsigned long long)seed, (unsigned long long)e[j].index,
				      got->res.code, code);
			if (code == KV_CAS_MISMATCH) {
				ck_assert_int_eq(got->res.found, p->found);
				ck_assert_uint_eq(got->res.value_len, strlen(p->seen));
				ck_assert(memcmp(got->value, p->seen, got->res.value_len) == 0);
			}
			if (b_synced) {
				ck_assert_int_eq(cb.res[j].res.code, got->res.code);
				ck_assert_int_eq(cb.res[j].res.duplicate, got->res.duplicate);
			}
			if (owned[j])
				free(e[j].data.base);
		}
		if (!b_synced && index > STEPS / 2) {
			snapshot_copy(&a, &b);
			b_synced = true;
		}
	}
	ck_assert_int_gt(retries, 50);
	ck_assert_int_gt(dups, 5);
	check_against(&a, &m);
	check_against(&b, &m);
	uint8_t da[KV_DIGEST_BYTES], db[KV_DIGEST_BYTES];
	ck_assert_int_eq(kv_digest(a.kv, 1, da, NULL), KV_OK);
	ck_assert_int_eq(kv_digest(b.kv, 1, db, NULL), KV_OK);
	ck_assert(memcmp(da, db, sizeof da) == 0);
	for (int i = 0; i < STEPS; i++)
		free(log[i].base);
	free(log);
	free(want);
	fx_close(&a);
	fx_close(&b);
}
END_TEST

Suite *model_suite(void)
{
	Suite *s = suite_create("kv_model");
	TCase *tc = tcase_create("model");
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_random_runs_match_model, 0, 8);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(model_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
