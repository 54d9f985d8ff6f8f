/* test_ingest.c — the handoff of a moving range in the state machine (kv/handoff.h, kv/ingest.c,
 * kv/handoff.c): a fenced range read in chunks at the source (kv_copy_*) and applied as INGEST
 * at the target; repeated and resumed chunks; the count and digest checked at the last chunk
 * and a copy that fails them discarded and dropped; client sessions merged so that a write
 * applied at the source is answered from the cache at the target; RELEASE, OPEN and DROP; who
 * serves reads and writes in each state; a reopen; snapshots; ranges that come back or come
 * from another source in a later change; chunks delivered at random; malformed entries.
 *
 * Source and target are two groups of one environment (as two groups hosted on one node).
 */
#include <xxhash.h>

#include "kv/handoff.h"
#include "kv/reshard.h"
#include "kv_fixture.h"

#define SRC   3
#define DST   5
#define EPOCH 2
#define NKEYS 200

/* A quarter of the circle: about 50 of the 200 test keys. */
static const struct kv_ring_range R = {.lo = 0, .hi = UINT64_MAX / 4};

/* ---------------------------------------------------------------- Fixture */

static bool in_r(const char *k)
{
	return kv_ring_range_has(&R, kv_ring_key_hash(k, strlen(k)));
}

static void key_of(int i, char *k)
{
	snprintf(k, 16, "key%03d", i);
}

/* The i-th key of the test keys that are (in = true) or are not in R. */
static const char *pick(bool in, int i)
{
	static char k[16];
	for (int j = 0, seen = 0; j < 100000; j++) {
		snprintf(k, sizeof k, "p%05d", j);
		if (in_r(k) == in && seen++ == i)
			return k;
	}
	ck_abort_msg("no key");
	return NULL;
}

/* NKEYS keys in SRC, "val-<i>"; every 7th with an expiry far ahead. Returns how many are in R. */
static int fill(struct fx *f)
{
	int in = 0;
	for (int i = 0; i < NKEYS; i++) {
		char k[16], v[16];
		key_of(i, k);
		snprintf(v, sizeof v, "val-%03d", i);
		struct kv_cmd c = fx_put_cmd(k, v);
		if (i % 7 == 0)
			c.expire_at_ms = 4000000000000ull + (uint64_t)i;
		struct fx_res res;
		ck_assert_int_eq(fx_apply_cmd(f, SRC, &c, &res), KV_OK);
		ck_assert_int_eq(res.res.code, KV_OK);
		in += in_r(k);
	}
	ck_assert_int_gt(in, 10);
	ck_assert_int_lt(in, NKEYS - 10);
	return in;
}

static int apply_code(struct fx *f, uint32_t g, const struct kv_cmd *c, struct fx_res *out)
{
	struct fx_res local;
	if (out == NULL)
		out = &local;
	ck_assert_int_eq(fx_apply_cmd(f, g, c, out), KV_OK);
	return out->res.code;
}

static int fence(struct fx *f, uint32_t g, uint64_t epoch, const struct kv_ring_range *r, size_t n)
{
	uint8_t *v;
	size_t len;
	ck_assert_int_eq(kv_fence_value(epoch, r, n, &v, &len), 0);
	struct kv_cmd c = {.op = KV_OP_FENCE, .value = v, .value_len = len};
	int code = apply_code(f, g, &c, NULL);
	free(v);
	return code;
}

static int release(struct fx *f, uint32_t g, uint64_t epoch, const struct kv_ring_range *r,
		   size_t n)
{
	uint8_t *v;
	size_t len;
	ck_assert_int_eq(kv_fence_value(epoch, r, n, &v, &len), 0);
	struct kv_cmd c = {.op = KV_OP_RELEASE, .value = v, .value_len = len};
	int code = apply_code(f, g, &c, NULL);
	free(v);
	return code;
}

static int open_copy(struct fx *f, uint32_t g, uint64_t epoch, uint32_t source)
{
	uint8_t v[KV_OPEN_VALUE_BYTES];
	kv_open_value(epoch, source, v);
	struct kv_cmd c = {.op = KV_OP_OPEN, .value = v, .value_len = sizeof v};
	return apply_code(f, g, &c, NULL);
}

/* One DROP; *deleted the count it deleted. */
static int drop(struct fx *f, uint32_t g, uint64_t epoch, uint32_t source, uint32_t max,
		long *deleted)
{
	uint8_t v[KV_DROP_VALUE_BYTES];
	kv_drop_value(epoch, source, max, v);
	struct kv_cmd c = {.op = KV_OP_DROP, .value = v, .value_len = sizeof v};
	struct fx_res res;
	int code = apply_code(f, g, &c, &res);
	if (deleted) {
		res.value[res.res.value_len] = 0;
		*deleted = code == KV_EINVAL ? -1 : atol(res.value);
	}
	return code;
}

/* DROPs of `max` keys until the pass is over; the total deleted. */
static long drop_all(struct fx *f, uint32_t g, uint64_t epoch, uint32_t source, uint32_t max)
{
	long total = 0, d;
	int code, steps = 0;
	do {
		code = drop(f, g, epoch, source, max, &d);
		ck_assert(code == KV_OK || code == KV_NOT_FOUND);
		ck_assert_int_le(d, max);
		total += d;
		ck_assert_int_lt(++steps, 100000);
	} while (code == KV_OK);
	return total;
}

/* Applies one INGEST value at DST: its code, *next the offset in the result. */
static int ingest_at(struct fx *f, uint32_t g, const uint8_t *v, size_t len, struct fx_res *out)
{
	struct kv_cmd c = {.op = KV_OP_INGEST, .value = v, .value_len = len};
	return apply_code(f, g, &c, out);
}

static int ingest(struct fx *f, const uint8_t *v, size_t len, struct fx_res *out)
{
	return ingest_at(f, DST, v, len, out);
}

static uint64_t res_num(struct fx_res *r)
{
	r->value[r->res.value_len] = 0;
	return strtoull(r->value, NULL, 10);
}

/* Reads every chunk of SRC's range R from offset `from` into a list. */
struct chunks {
	size_t n;
	uint8_t *v[4096];
	size_t len[4096];
};

static void read_chunks(struct fx *f, uint64_t from, size_t chunk_bytes, struct chunks *out)
{
	struct kv_copy *c;
	memset(out, 0, sizeof *out);
	ck_assert_int_eq(kv_copy_begin(f->kv, SRC, EPOCH, &R, 1, from, chunk_bytes, &c), KV_OK);
	bool last = false;
	while (!last) {
		ck_assert_uint_lt(out->n, 4096);
		ck_assert_int_eq(kv_copy_next(c, &out->v[out->n], &out->len[out->n], &last), KV_OK);
		out->n++;
	}
	uint8_t *v;
	size_t len;
	ck_assert_int_eq(kv_copy_next(c, &v, &len, &last), KV_NOT_FOUND);
	kv_copy_end(c);
}

static void chunks_free(struct chunks *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->v[i]);
	c->n = 0;
}

/* The whole copy SRC -> DST in chunks of chunk_bytes; the last chunk's code. */
static int copy(struct fx *f, size_t chunk_bytes)
{
	struct chunks ch;
	read_chunks(f, 0, chunk_bytes, &ch);
	int code = KV_OK;
	for (size_t i = 0; i < ch.n; i++) {
		struct fx_res res;
		code = ingest(f, ch.v[i], ch.len[i], &res);
		if (i + 1 < ch.n)
			ck_assert_int_eq(code, KV_OK);
	}
	chunks_free(&ch);
	return code;
}

static int get_code(struct fx *f, uint32_t g, const char *k)
{
	void *v = NULL;
	size_t n;
	int rc = kv_get(f->kv, g, k, strlen(k), 0, &v, &n, NULL);
	free(v);
	return rc;
}

/* The result codes of one batch. */
struct codes {
	int n, code[8];
};

static void codes_cb(const struct raft_entry *e, const struct kv_result *res, void *arg)
{
	(void)e;
	struct codes *c = arg;
	ck_assert_int_lt(c->n, 8);
	c->code[c->n++] = res->code;
}

static void count_cb(const void *key, size_t kl, uint64_t e, void *arg)
{
	(void)key;
	(void)kl;
	(void)e;
	(*(int *)arg)++;
}

/* ---------------------------------------------------------------- Assertions */

/* Every test key of R reads `code` in group g; every other key reads as before in SRC. */
static void assert_range_reads(struct fx *f, uint32_t g, int code)
{
	for (int i = 0; i < NKEYS; i++) {
		char k[16];
		key_of(i, k);
		if (in_r(k))
			ck_assert_msg(get_code(f, g, k) == code, "%s in group %u: %d, want %d", k,
				      g, get_code(f, g, k), code);
	}
}

/* The target holds exactly the source's keys of R, values and expiries (the digests). */
static void assert_same_range(struct fx *f)
{
	uint64_t ks, kd;
	uint8_t ds[KV_RANGE_DIGEST_BYTES], dd[KV_RANGE_DIGEST_BYTES];
	ck_assert_int_eq(kv_range_digest(f->kv, SRC, &R, 1, &ks, ds), KV_OK);
	ck_assert_int_eq(kv_range_digest(f->kv, DST, &R, 1, &kd, dd), KV_OK);
	ck_assert_uint_eq(ks, kd);
	ck_assert(memcmp(ds, dd, sizeof ds) == 0);
}

/* ---------------------------------------------------------------- Suite */

/* The whole handoff in order, with who serves at each step. */
START_TEST(test_handoff_in_order)
{
	struct fx f;
	fx_open(&f);
	int in = fill(&f);
	ck_assert_int_eq(fx_put(&f, DST, pick(false, 0), "dst-own"), KV_OK);
	ck_assert_int_eq(fence(&f, SRC, EPOCH, &R, 1), KV_OK);
	/* Small chunks: many of them. */
	struct chunks ch;
	read_chunks(&f, 0, 200, &ch);
	ck_assert_uint_gt(ch.n, 10);
	for (size_t i = 0; i < ch.n; i++)
		ck_assert_uint_le(ch.len[i], 200);
	struct fx_res res;
	for (size_t i = 0; i < ch.n; i++) {
		ck_assert_int_eq(ingest(&f, ch.v[i], ch.len[i], &res), KV_OK);
		ck_assert_int_eq(res.res.found, i + 1 == ch.n); /* complete at the last */
		/* From the first chunk on, the target serves none of R. */
		assert_range_reads(&f, DST, KV_WRONG_SHARD);
	}
	chunks_free(&ch);
	ck_assert_uint_eq(res_num(&res), (uint64_t)in); /* the keys (no session at the source) */
	assert_same_range(&f);
	/* Complete, not opened: the target still serves none of it; its own keys it does. */
	ck_assert_int_eq(fx_put(&f, DST, "key000", "x"), in_r("key000") ? KV_WRONG_SHARD : KV_OK);
	fx_expect(&f, DST, pick(false, 0), "dst-own");
	assert_range_reads(&f, SRC, KV_OK); /* the source serves reads until RELEASE */
	ck_assert_int_eq(release(&f, SRC, EPOCH, &R, 1), KV_OK);
	assert_range_reads(&f, SRC, KV_WRONG_SHARD);
	assert_range_reads(&f, DST, KV_WRONG_SHARD);
	ck_assert_int_eq(open_copy(&f, DST, EPOCH, SRC), KV_OK);
	assert_range_reads(&f, DST, KV_OK);
	/* values and expiries as at the source */
	for (int i = 0; i < NKEYS; i++) {
		char k[16], v[16];
		key_of(i, k);
		if (!in_r(k))
			continue;
		snprintf(v, sizeof v, "val-%03d", i);
		fx_expect(&f, DST, k, v);
		uint64_t e = 1;
		ck_assert_int_eq(kv_get(f.kv, DST, k, strlen(k), 0, NULL, NULL, &e), KV_OK);
		ck_assert_uint_eq(e, i % 7 == 0 ? 4000000000000ull + (uint64_t)i : 0);
	}
	struct kv_group_meta m;
	ck_assert_int_eq(kv_meta(f.kv, DST, &m), KV_OK);
	ck_assert_uint_eq(m.keys, (uint64_t)in + 1 + !in_r("key000")); /* + its own */
	/* the target takes writes of R; the source takes none */
	const char *k = pick(true, 0);
	ck_assert_int_eq(fx_put(&f, DST, k, "new"), KV_OK);
	fx_expect(&f, DST, k, "new");
	ck_assert_int_eq(fx_put(&f, SRC, k, "stale"), KV_WRONG_SHARD);
	ck_assert_int_eq(fx_put(&f, SRC, pick(false, 0), "src-own"), KV_OK);
	/* DROP empties the source's copy of R, and only that */
	ck_assert_int_eq(drop_all(&f, SRC, EPOCH, 0, 16), in);
	uint64_t keys;
	uint8_t d[KV_RANGE_DIGEST_BYTES];
	ck_assert_int_eq(kv_range_digest(f.kv, SRC, &R, 1, &keys, d), KV_OK);
	ck_assert_uint_eq(keys, 0);
	ck_assert_int_eq(kv_meta(f.kv, SRC, &m), KV_OK);
	ck_assert_uint_eq(m.keys, (uint64_t)(NKEYS - in) + 1);
	fx_close(&f);
}
END_TEST

/* Repeated chunks rewrite the same keys and count nothing twice; a gap is refused; a copy
 * resumed from the target's offset completes; a chunk after OPEN writes nothing. */
START_TEST(test_ingest_idempotent)
{
	struct fx f;
	fx_open(&f);
	int in = fill(&f);
	ck_assert_int_eq(fence(&f, SRC, EPOCH, &R, 1), KV_OK);
	struct chunks ch;
	read_chunks(&f, 0, 300, &ch);
	ck_assert_uint_gt(ch.n, 6);
	struct fx_res res;
	/* a chunk beyond the start: a gap, nothing written, nothing refused for good */
	ck_assert_int_eq(ingest(&f, ch.v[2], ch.len[2], &res), KV_CAS_MISMATCH);
	ck_assert_uint_eq(res_num(&res), 0);
	assert_range_reads(&f, DST, KV_NOT_FOUND);
	/* each of the first half twice, and the whole first half again */
	size_t half = ch.n / 2;
	for (size_t i = 0; i < half; i++) {
		ck_assert_int_eq(ingest(&f, ch.v[i], ch.len[i], &res), KV_OK);
		uint64_t next = res_num(&res);
		ck_assert_int_eq(ingest(&f, ch.v[i], ch.len[i], &res), KV_OK);
		ck_assert_uint_eq(res_num(&res), next);
	}
	uint64_t next = res_num(&res);
	for (size_t i = 0; i < half; i++)
		ck_assert_int_eq(ingest(&f, ch.v[i], ch.len[i], &res), KV_OK);
	ck_assert_uint_eq(res_num(&res), next);
	/* a gap in the middle */
	ck_assert_int_eq(ingest(&f, ch.v[half + 1], ch.len[half + 1], &res), KV_CAS_MISMATCH);
	ck_assert_uint_eq(res_num(&res), next);
	chunks_free(&ch);
	/* the driver crashed: a new reader resumes from the target's offset, in other sizes */
	read_chunks(&f, next, 500, &ch);
	for (size_t i = 0; i < ch.n; i++)
		ck_assert_int_eq(ingest(&f, ch.v[i], ch.len[i], &res), KV_OK);
	ck_assert(res.res.found);
	/* the last chunk again: complete already, nothing written */
	ck_assert_int_eq(ingest(&f, ch.v[ch.n - 1], ch.len[ch.n - 1], &res), KV_OK);
	ck_assert(res.res.found);
	chunks_free(&ch);
	assert_same_range(&f);
	/* a resume from inside the sessions starts them again: harmless */
	read_chunks(&f, (uint64_t)in + 1, 0, &ch);
	ck_assert_uint_eq(ch.n, 1);
	chunks_free(&ch);
	ck_assert_int_eq(open_copy(&f, DST, EPOCH, SRC), KV_OK);
	ck_assert_int_eq(open_copy(&f, DST, EPOCH, SRC), KV_OK); /* a repeat */
	/* After OPEN the target's keys change: an old chunk must not write them back. */
	read_chunks(&f, 0, 0, &ch);
	for (int i = 0; i < NKEYS; i++) {
		char k[16];
		key_of(i, k);
		if (in_r(k))
			ck_assert_int_eq(fx_put(&f, DST, k, "after-open"), KV_OK);
	}
	for (size_t i = 0; i < ch.n; i++)
		ck_assert_int_eq(ingest(&f, ch.v[i], ch.len[i], &res), KV_EINVAL);
	chunks_free(&ch);
	for (int i = 0; i < NKEYS; i++) {
		char k[16];
		key_of(i, k);
		if (in_r(k))
			fx_expect(&f, DST, k, "after-open");
	}
	fx_close(&f);
}
END_TEST

/* A value changed on the way, or a key lost: the last chunk's digest or count differs, the
 * copy is discarded and must be dropped before it starts again; then it completes. */
START_TEST(test_digest_mismatch_discards)
{
	struct fx f;
	fx_open(&f);
	int in = fill(&f);
	ck_assert_int_eq(fence(&f, SRC, EPOCH, &R, 1), KV_OK);
	struct chunks ch;
	read_chunks(&f, 0, 400, &ch);
	/* flip a byte of a value in the middle chunk */
	size_t mid = ch.n / 2;
	uint8_t *p = memmem(ch.v[mid], ch.len[mid], "val-", 4);
	ck_assert_ptr_nonnull(p);
	p[5] ^= 0x01;
	struct fx_res res;
	for (size_t i = 0; i + 1 < ch.n; i++)
		ck_assert_int_eq(ingest(&f, ch.v[i], ch.len[i], &res), KV_OK);
	ck_assert_int_eq(ingest(&f, ch.v[ch.n - 1], ch.len[ch.n - 1], &res), KV_DISCARDED);
	ck_assert(!res.res.found);
	chunks_free(&ch);
	/* discarded: not openable, still refused, and no restart before DROP */
	ck_assert_int_eq(open_copy(&f, DST, EPOCH, SRC), KV_NOT_FOUND);
	assert_range_reads(&f, DST, KV_WRONG_SHARD);
	read_chunks(&f, 0, 0, &ch);
	ck_assert_int_eq(ingest(&f, ch.v[0], ch.len[0], &res), KV_EINVAL);
	chunks_free(&ch);
	ck_assert_int_eq(drop_all(&f, DST, EPOCH, SRC, 7), in);
	ck_assert_int_eq(drop(&f, DST, EPOCH, SRC, 7, NULL), KV_NOT_FOUND); /* a repeat */
	uint64_t keys;
	uint8_t d[KV_RANGE_DIGEST_BYTES];
	ck_assert_int_eq(kv_range_digest(f.kv, DST, &R, 1, &keys, d), KV_OK);
	ck_assert_uint_eq(keys, 0);
	ck_assert_int_eq(open_copy(&f, DST, EPOCH, SRC), KV_NOT_FOUND);
	/* A key lost on the way (a chunk left out whose offset still joins up: the driver's
	 * own bookkeeping went wrong): the count differs. */
	read_chunks(&f, 0, 400, &ch);
	ck_assert_uint_gt(ch.n, 3);
	uint8_t *last = ch.v[ch.n - 1];
	uint64_t keys_in_last = 0;
	for (int i = 0; i < 8; i++)
		keys_in_last |= (uint64_t)last[32 + i] << (8 * i);
	ck_assert_uint_eq(keys_in_last, (uint64_t)in);
	last[32] ^= 1; /* the count the source claims */
	for (size_t i = 0; i + 1 < ch.n; i++)
		ck_assert_int_eq(ingest(&f, ch.v[i], ch.len[i], &res), KV_OK);
	ck_assert_int_eq(ingest(&f, last, ch.len[ch.n - 1], &res), KV_DISCARDED);
	chunks_free(&ch);
	drop_all(&f, DST, EPOCH, SRC, KV_DROP_KEYS_MAX);
	/* and now whole */
	ck_assert_int_eq(copy(&f, 400), KV_OK);
	assert_same_range(&f);
	ck_assert_int_eq(open_copy(&f, DST, EPOCH, SRC), KV_OK);
	assert_range_reads(&f, DST, KV_OK);
	fx_close(&f);
}
END_TEST

static int sput(struct fx *f, uint32_t g, const char *k, const char *v, uint64_t client,
		uint64_t seq, struct fx_res *res)
{
	struct kv_cmd c = fx_put_cmd(k, v);
	c.client_id = client;
	c.seq = seq;
	return apply_code(f, g, &c, res);
}

/* Sessions move with the range: a write applied at the source and retried at the target is
 * answered from the cache; the union per client keeps the KV_SESSION_WINDOW highest seqs. */
START_TEST(test_sessions_merged)
{
	struct fx f;
	fx_open(&f);
	fill(&f);
	struct fx_res res;
	char mk[16], mk2[16];
	strcpy(mk, pick(true, 0));
	strcpy(mk2, pick(true, 1));
	ck_assert_int_eq(fx_put(&f, SRC, mk2, "m2"), KV_OK);
	/* client 9: two writes of moving keys at the source, one a CAS that failed */
	ck_assert_int_eq(sput(&f, SRC, mk, "first", 9, 1, &res), KV_OK);
	struct kv_cmd cas = {.op = KV_OP_CAS,
			     .key = mk2,
			     .key_len = strlen(mk2),
			     .value = "z",
			     .value_len = 1,
			     .expected = "nope",
			     .expected_len = 4,
			     .client_id = 9,
			     .seq = 2};
	ck_assert_int_eq(apply_code(&f, SRC, &cas, &res), KV_CAS_MISMATCH);
	char mk2_value[16];
	memcpy(mk2_value, res.value, res.res.value_len);
	mk2_value[res.res.value_len] = 0;
	/* and one at the target, of its own key */
	ck_assert_int_eq(sput(&f, DST, pick(false, 0), "t", 9, 10, &res), KV_OK);
	/* client 5: 64 results at the source (1..64), 31 at the target (100..130) */
	for (uint64_t s = 1; s <= 64; s++)
		ck_assert_int_eq(sput(&f, SRC, pick(false, 1), "s", 5, s, &res), KV_OK);
	for (uint64_t s = 100; s <= 130; s++)
		ck_assert_int_eq(sput(&f, DST, pick(false, 2), "t", 5, s, &res), KV_OK);
	/* client 6: 70 at the source: it forgot 1..6 */
	for (uint64_t s = 1; s <= 70; s++)
		ck_assert_int_eq(sput(&f, SRC, pick(false, 3), "s", 6, s, &res), KV_OK);
	/* client 8: a write refused by the fence is not in the session and applies later */
	ck_assert_int_eq(fence(&f, SRC, EPOCH, &R, 1), KV_OK);
	ck_assert_int_eq(sput(&f, SRC, mk, "refused", 8, 1, &res), KV_MOVING);
	ck_assert_int_eq(copy(&f, 1000), KV_OK);
	/* a retry at the target before OPEN of a write applied at the source: answered */
	ck_assert_int_eq(sput(&f, DST, mk, "first", 9, 1, &res), KV_OK);
	ck_assert(res.res.duplicate);
	/* a new write at the target before OPEN: refused, not recorded */
	ck_assert_int_eq(sput(&f, DST, mk, "early", 8, 1, &res), KV_WRONG_SHARD);
	ck_assert(!res.res.duplicate);
	ck_assert_int_eq(release(&f, SRC, EPOCH, &R, 1), KV_OK);
	ck_assert_int_eq(open_copy(&f, DST, EPOCH, SRC), KV_OK);
	ck_assert_int_eq(fx_put(&f, DST, mk, "newer"), KV_OK);
	/* client 9's retries: from the cache, not applied again */
	ck_assert_int_eq(sput(&f, DST, mk, "first", 9, 1, &res), KV_OK);
	ck_assert(res.res.duplicate);
	fx_expect(&f, DST, mk, "newer");
	ck_assert_int_eq(apply_code(&f, DST, &cas, &res), KV_CAS_MISMATCH);
	ck_assert(res.res.duplicate);
	ck_assert_str_eq(mk2_value, "m2");
	ck_assert_uint_eq(res.res.value_len, strlen(mk2_value));
	ck_assert(memcmp(res.value, mk2_value, res.res.value_len) == 0);
	ck_assert_int_eq(sput(&f, DST, pick(false, 0), "t", 9, 10, &res), KV_OK);
	ck_assert(res.res.duplicate);
	ck_assert_int_eq(sput(&f, DST, mk, "third", 9, 11, &res), KV_OK);
	ck_assert(!res.res.duplicate);
	fx_expect(&f, DST, mk, "third");
	/* client 8's refused write applies now, once */
	ck_assert_int_eq(sput(&f, DST, mk, "eight", 8, 1, &res), KV_OK);
	ck_assert(!res.res.duplicate);
	ck_assert_int_eq(sput(&f, DST, mk, "eight", 8, 1, &res), KV_OK);
	ck_assert(res.res.duplicate);
	/* client 5: the union 1..64, 100..130 trimmed to the 64 highest: 32..64 and 100..130 */
	ck_assert_int_eq(sput(&f, DST, pick(false, 1), "s", 5, 31, &res), KV_ESESSION);
	for (uint64_t s = 32; s <= 64; s++) {
		ck_assert_int_eq(sput(&f, DST, pick(false, 1), "s", 5, s, &res), KV_OK);
		ck_assert_msg(res.res.duplicate, "client 5 seq %lu", (unsigned long)s);
	}
	for (uint64_t s = 100; s <= 130; s++) {
		ck_assert_int_eq(sput(&f, DST, pick(false, 2), "t", 5, s, &res), KV_OK);
		ck_assert(res.res.duplicate);
	}
	/* client 6: the source's floor came along */
	ck_assert_int_eq(sput(&f, DST, pick(false, 3), "s", 6, 6, &res), KV_ESESSION);
	for (uint64_t s = 7; s <= 70; s++) {
		ck_assert_int_eq(sput(&f, DST, pick(false, 3), "s", 6, s, &res), KV_OK);
		ck_assert(res.res.duplicate);
	}
	fx_close(&f);
}
END_TEST

/* A scan callback: counts keys, and keys of R. */
struct seen {
	int n, bad;
};

static int seen_cb(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	(void)v;
	(void)vl;
	struct seen *s = arg;
	char key[64];
	ck_assert_uint_lt(kl, sizeof key);
	memcpy(key, k, kl);
	key[kl] = 0;
	s->n++;
	s->bad += in_r(key);
	return 0;
}

/* A copy resumed from inside its sessions while the source's sessions move on: the sessions
 * are sent again from their start, each item with the floor of its read, and the target ends
 * up with the source's latest window. */
START_TEST(test_sessions_resumed)
{
	struct fx f;
	fx_open(&f);
	int in = fill(&f);
	struct fx_res res;
	for (uint64_t s = 1; s <= 40; s++) {
		ck_assert_int_eq(sput(&f, SRC, pick(false, 1), "a", 11, s, &res), KV_OK);
		ck_assert_int_eq(sput(&f, SRC, pick(false, 2), "b", 12, s, &res), KV_OK);
	}
	ck_assert_int_eq(fence(&f, SRC, EPOCH, &R, 1), KV_OK);
	struct kv_copy *c;
	ck_assert_int_eq(kv_copy_begin(f.kv, SRC, EPOCH, &R, 1, 0, 300, &c), KV_OK);
	uint64_t next = 0;
	bool last = false;
	while (next <= (uint64_t)in + 10) { /* into the sessions, then the driver stops */
		uint8_t *v;
		size_t len;
		ck_assert_int_eq(kv_copy_next(c, &v, &len, &last), KV_OK);
		ck_assert(!last);
		ck_assert_int_eq(ingest(&f, v, len, &res), KV_OK);
		next = res_num(&res);
		free(v);
	}
	kv_copy_end(c);
	/* client 12 goes on at the source (keys that stay): it forgets 1..36 */
	for (uint64_t s = 41; s <= 100; s++)
		ck_assert_int_eq(sput(&f, SRC, pick(false, 2), "b", 12, s, &res), KV_OK);
	ck_assert_int_eq(kv_copy_begin(f.kv, SRC, EPOCH, &R, 1, next, 300, &c), KV_OK);
	for (last = false; !last;) {
		uint8_t *v;
		size_t len;
		ck_assert_int_eq(kv_copy_next(c, &v, &len, &last), KV_OK);
		ck_assert_int_eq(ingest(&f, v, len, &res), KV_OK);
		free(v);
	}
	kv_copy_end(c);
	ck_assert(res.res.found);
	for (uint64_t s = 1; s <= 40; s++) {
		ck_assert_int_eq(sput(&f, DST, pick(false, 1), "a", 11, s, &res), KV_OK);
		ck_assert_msg(res.res.duplicate, "client 11 seq %lu", (unsigned long)s);
	}
	ck_assert_int_eq(sput(&f, DST, pick(false, 2), "b", 12, 36, &res), KV_ESESSION);
	for (uint64_t s = 37; s <= 100; s++) {
		ck_assert_int_eq(sput(&f, DST, pick(false, 2), "b", 12, s, &res), KV_OK);
		ck_assert_msg(res.res.duplicate, "client 12 seq %lu", (unsigned long)s);
	}
	fx_close(&f);
}
END_TEST

/* RELEASE: only what is fenced at that epoch; repeats, adding up, epochs; refused reads,
 * writes and scans; refused writes not recorded. */
START_TEST(test_release_rules)
{
	struct fx f;
	fx_open(&f);
	fill(&f);
	struct kv_ring_range half = {.lo = 0, .hi = UINT64_MAX / 8},
			     other = {.lo = UINT64_MAX / 8, .hi = UINT64_MAX / 4};
	ck_assert_int_eq(release(&f, SRC, EPOCH, &half, 1), KV_EINVAL); /* nothing fenced */
	struct kv_ring_range both[2] = {half, other};
	ck_assert_int_eq(fence(&f, SRC, EPOCH, both, 2), KV_OK);
	ck_assert_int_eq(release(&f, SRC, EPOCH + 1, &half, 1), KV_EINVAL); /* another epoch */
	ck_assert_int_eq(release(&f, SRC, EPOCH, &R, 1), KV_EINVAL);        /* not a fenced range */
	assert_range_reads(&f, SRC, KV_OK);
	ck_assert_int_eq(release(&f, SRC, EPOCH, &half, 1), KV_OK);
	ck_assert_int_eq(release(&f, SRC, EPOCH, &half, 1), KV_OK); /* a repeat */
	const char *kh = NULL, *ko = NULL;
	for (int i = 0; kh == NULL || ko == NULL; i++) {
		const char *k = pick(true, i);
		uint64_t h = kv_ring_key_hash(k, strlen(k));
		if (!kh && kv_ring_range_has(&half, h))
			kh = strdup(k);
		if (!ko && kv_ring_range_has(&other, h))
			ko = strdup(k);
	}
	ck_assert_int_eq(fx_put(&f, SRC, kh, "x"), KV_WRONG_SHARD);
	ck_assert_int_eq(get_code(&f, SRC, kh), KV_WRONG_SHARD);
	ck_assert_int_eq(fx_put(&f, SRC, ko, "x"), KV_MOVING); /* fenced, not released */
	ck_assert_int_eq(fx_put(&f, SRC, pick(false, 0), "x"), KV_OK);
	/* releases of one epoch add up */
	ck_assert_int_eq(release(&f, SRC, EPOCH, &other, 1), KV_OK);
	assert_range_reads(&f, SRC, KV_WRONG_SHARD);
	ck_assert_int_eq(fx_put(&f, SRC, ko, "x"), KV_WRONG_SHARD);
	/* every kind of write of a released key, and a multi-key one with one such key */
	uint8_t delta[8] = {1};
	struct kv_item items[2] = {
		{.key = "zz-out", .key_len = 6, .value = "m", .value_len = 1},
		{.key = kh, .key_len = strlen(kh), .value = "m", .value_len = 1}};
	struct kv_item dels[2] = {{.key = pick(false, 0), .key_len = 6},
				  {.key = kh, .key_len = strlen(kh)}};
	struct kv_cmd cmds[] = {
		{.op = KV_OP_DELETE, .key = kh, .key_len = strlen(kh)},
		{.op = KV_OP_INCRBY,
		 .key = kh,
		 .key_len = strlen(kh),
		 .value = delta,
		 .value_len = 8},
		{.op = KV_OP_EXPIRE, .key = kh, .key_len = strlen(kh), .expire_at_ms = 1},
		{.op = KV_OP_CAS,
		 .key = kh,
		 .key_len = strlen(kh),
		 .value = "v",
		 .value_len = 1,
		 .expect_absent = true},
		{.op = KV_OP_MSET, .items = items, .n_items = 2},
		{.op = KV_OP_MDEL, .items = dels, .n_items = 2},
	};
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
		struct fx_res res;
		cmds[i].client_id = 4;
		cmds[i].seq = i + 1;
		ck_assert_int_eq(apply_code(&f, SRC, &cmds[i], &res), KV_WRONG_SHARD);
		/* not recorded: the same seq is refused again, not answered from a cache */
		ck_assert_int_eq(apply_code(&f, SRC, &cmds[i], &res), KV_WRONG_SHARD);
		ck_assert(!res.res.duplicate);
	}
	ck_assert_int_eq(get_code(&f, SRC, "zz-out"), KV_NOT_FOUND);
	ck_assert_int_eq(get_code(&f, SRC, pick(false, 0)), KV_OK);
	/* a scan skips the released keys */
	struct seen seen = {0, 0};
	void *next;
	size_t next_len;
	ck_assert_int_eq(kv_scan(f.kv, SRC, 0, NULL, 0, NULL, 0, KV_SCAN_MAX, seen_cb, &seen, &next,
				 &next_len),
			 KV_OK);
	ck_assert_ptr_null(next);
	ck_assert_int_eq(seen.bad, 0);
	ck_assert_int_gt(seen.n, 0);
	/* a lower epoch is refused; a higher one (a later change) replaces */
	ck_assert_int_eq(release(&f, SRC, EPOCH - 1, &half, 1), KV_EINVAL);
	ck_assert_int_eq(fence(&f, SRC, EPOCH + 2, &half, 1), KV_OK);
	/* ... once the older release's keys are dropped: else they would be served again */
	ck_assert_int_eq(release(&f, SRC, EPOCH + 2, &half, 1), KV_EINVAL);
	ck_assert_int_gt(drop_all(&f, SRC, EPOCH, 0, 64), 0);
	ck_assert_int_eq(release(&f, SRC, EPOCH + 2, &half, 1), KV_OK);
	ck_assert_int_eq(get_code(&f, SRC, kh), KV_WRONG_SHARD);
	ck_assert_int_eq(get_code(&f, SRC, ko), KV_NOT_FOUND); /* not refused, and dropped */
	free((void *)kh);
	free((void *)ko);
	fx_close(&f);
}
END_TEST

/* OPEN only of a complete copy of that epoch; DROP bounded, idempotent, refused where it would
 * delete served keys; copies from two sources are separate. */
START_TEST(test_open_and_drop_rules)
{
	struct fx f;
	fx_open(&f);
	int in = fill(&f);
	ck_assert_int_eq(open_copy(&f, DST, EPOCH, SRC), KV_NOT_FOUND);   /* nothing copied */
	ck_assert_int_eq(drop(&f, SRC, EPOCH, 0, 10, NULL), KV_EINVAL);   /* nothing released */
	ck_assert_int_eq(drop(&f, DST, EPOCH, SRC, 10, NULL), KV_EINVAL); /* no copy */
	ck_assert_int_eq(fence(&f, SRC, EPOCH, &R, 1), KV_OK);
	struct chunks ch;
	read_chunks(&f, 0, 300, &ch);
	struct fx_res res;
	for (size_t i = 0; i + 1 < ch.n; i++)
		ck_assert_int_eq(ingest(&f, ch.v[i], ch.len[i], &res), KV_OK);
	ck_assert_int_eq(open_copy(&f, DST, EPOCH, SRC), KV_NOT_FOUND); /* not complete */
	assert_range_reads(&f, DST, KV_WRONG_SHARD);
	ck_assert_int_eq(ingest(&f, ch.v[ch.n - 1], ch.len[ch.n - 1], &res), KV_OK);
	chunks_free(&ch);
	ck_assert_int_eq(open_copy(&f, DST, EPOCH + 1, SRC), KV_NOT_FOUND); /* another epoch */
	ck_assert_int_eq(open_copy(&f, DST, EPOCH, SRC + 1), KV_NOT_FOUND); /* another source */
	assert_range_reads(&f, DST, KV_WRONG_SHARD);
	/* A second source's copy into the same target (its own range and record). */
	const uint32_t SRC2 = 7;
	struct kv_ring_range r2 = {.lo = UINT64_MAX / 2, .hi = UINT64_MAX / 2 + UINT64_MAX / 8};
	const char *k2 = NULL;
	for (int j = 0; k2 == NULL; j++) {
		static char k[16];
		snprintf(k, sizeof k, "q%05d", j);
		if (kv_ring_range_has(&r2, kv_ring_key_hash(k, strlen(k))))
			k2 = k;
	}
	ck_assert_int_eq(fx_put(&f, SRC2, k2, "from-src2"), KV_OK);
	ck_assert_int_eq(fence(&f, SRC2, EPOCH, &r2, 1), KV_OK);
	struct kv_copy *c;
	ck_assert_int_eq(kv_copy_begin(f.kv, SRC2, EPOCH, &r2, 1, 0, 0, &c), KV_OK);
	uint8_t *v;
	size_t len;
	bool last;
	ck_assert_int_eq(kv_copy_next(c, &v, &len, &last), KV_OK);
	ck_assert(last);
	kv_copy_end(c);
	ck_assert_int_eq(ingest(&f, v, len, &res), KV_OK);
	free(v);
	ck_assert_int_eq(open_copy(&f, DST, EPOCH, SRC), KV_OK);
	assert_range_reads(&f, DST, KV_OK);
	ck_assert_int_eq(get_code(&f, DST, k2), KV_WRONG_SHARD); /* SRC2's: not opened */
	ck_assert_int_eq(open_copy(&f, DST, EPOCH, SRC2), KV_OK);
	fx_expect(&f, DST, k2, "from-src2");
	/* an opened copy is never dropped */
	ck_assert_int_eq(drop(&f, DST, EPOCH, SRC, 10, NULL), KV_EINVAL);
	assert_range_reads(&f, DST, KV_OK);
	/* DROP at the source: each entry walks at most max keys */
	ck_assert_int_eq(release(&f, SRC, EPOCH, &R, 1), KV_OK);
	struct kv_group_meta m0, m;
	ck_assert_int_eq(kv_meta(f.kv, SRC, &m0), KV_OK);
	long d, total = 0;
	int steps = 0, code;
	do {
		code = drop(&f, SRC, EPOCH, 0, 5, &d);
		ck_assert_int_le(d, 5);
		total += d;
		steps++;
	} while (code == KV_OK);
	ck_assert_int_eq(code, KV_NOT_FOUND);
	ck_assert_int_eq(total, in);
	ck_assert_int_ge(steps, (int)(m0.keys / 5)); /* it walked all the keys, 5 at a time */
	ck_assert_int_eq(drop(&f, SRC, EPOCH, 0, 5, &d), KV_NOT_FOUND); /* a repeat */
	ck_assert_int_eq(d, 0);
	ck_assert_int_eq(drop(&f, SRC, EPOCH + 1, 0, 5, NULL), KV_EINVAL); /* another epoch */
	ck_assert_int_eq(kv_meta(f.kv, SRC, &m), KV_OK);
	ck_assert_uint_eq(m.keys, m0.keys - (uint64_t)in);
	/* the expiry index followed: every expiring key left is outside R */
	int exp_left = 0;
	for (int i = 0; i < NKEYS; i += 7) {
		char k[16];
		key_of(i, k);
		exp_left += !in_r(k);
	}
	ck_assert_uint_eq(m.expires, (uint64_t)exp_left);
	fx_close(&f);
}
END_TEST

/* A copy in progress, a release, an open, and a drop under way survive a reopen. */
START_TEST(test_reopen)
{
	struct fx f;
	fx_open(&f);
	int in = fill(&f);
	ck_assert_int_eq(fence(&f, SRC, EPOCH, &R, 1), KV_OK);
	struct chunks ch;
	read_chunks(&f, 0, 300, &ch);
	struct fx_res res;
	size_t half = ch.n / 2;
	for (size_t i = 0; i < half; i++)
		ck_assert_int_eq(ingest(&f, ch.v[i], ch.len[i], &res), KV_OK);
	kv_close(f.kv);
	ck_assert_int_eq(kv_open(f.dir, NULL, &f.kv), KV_OK);
	assert_range_reads(&f, DST, KV_WRONG_SHARD);
	ck_assert_int_eq(ingest(&f, ch.v[half + 1], ch.len[half + 1], &res), KV_CAS_MISMATCH);
	for (size_t i = half; i < ch.n; i++)
		ck_assert_int_eq(ingest(&f, ch.v[i], ch.len[i], &res), KV_OK);
	ck_assert(res.res.found);
	chunks_free(&ch);
	ck_assert_int_eq(release(&f, SRC, EPOCH, &R, 1), KV_OK);
	long d;
	ck_assert_int_eq(drop(&f, SRC, EPOCH, 0, 20, &d), KV_OK);
	long first = d;
	kv_close(f.kv);
	ck_assert_int_eq(kv_open(f.dir, NULL, &f.kv), KV_OK);
	assert_range_reads(&f, SRC, KV_WRONG_SHARD);
	assert_range_reads(&f, DST, KV_WRONG_SHARD);
	ck_assert_int_eq(drop_all(&f, SRC, EPOCH, 0, 20) + first, in); /* resumed, not restarted */
	ck_assert_int_eq(open_copy(&f, DST, EPOCH, SRC), KV_OK);
	kv_close(f.kv);
	ck_assert_int_eq(kv_open(f.dir, NULL, &f.kv), KV_OK);
	assert_range_reads(&f, DST, KV_OK);
	assert_range_reads(&f, SRC, KV_WRONG_SHARD);
	fx_close(&f);
}
END_TEST

static void transfer(struct fx *from, struct fx *to, uint32_t g)
{
	struct kv_snapshot *snap;
	ck_assert_int_eq(kv_snapshot_begin(from->kv, g, &snap), KV_OK);
	struct kv_restore *rs;
	ck_assert_int_eq(kv_restore_begin(to->kv, g, &rs), KV_OK);
	static uint8_t buf[1 << 16];
	bool done = false;
	while (!done) {
		size_t len;
		ck_assert_int_eq(kv_snapshot_read(snap, buf, sizeof buf, &len, &done), KV_OK);
		ck_assert_int_eq(kv_restore_write(rs, buf, len), KV_OK);
	}
	kv_snapshot_end(snap);
	ck_assert_int_eq(kv_restore_finish(rs), KV_OK);
	to->next[g] = fx_applied(to, g) + 1;
}

/* Snapshots carry a copy under way, a release and a drop under way: a replica restored from
 * them refuses the same keys and carries on where the others are. */
START_TEST(test_snapshot_carries)
{
	struct fx f, to;
	fx_open(&f);
	fx_open(&to);
	int in = fill(&f);
	ck_assert_int_eq(fence(&f, SRC, EPOCH, &R, 1), KV_OK);
	struct chunks ch;
	read_chunks(&f, 0, 300, &ch);
	struct fx_res res;
	size_t half = ch.n / 2;
	for (size_t i = 0; i < half; i++)
		ck_assert_int_eq(ingest(&f, ch.v[i], ch.len[i], &res), KV_OK);
	transfer(&f, &to, DST);
	assert_range_reads(&to, DST, KV_WRONG_SHARD);
	for (size_t i = half; i < ch.n; i++) {
		struct kv_cmd c = {.op = KV_OP_INGEST, .value = ch.v[i], .value_len = ch.len[i]};
		ck_assert_int_eq(apply_code(&to, DST, &c, &res), KV_OK);
	}
	ck_assert(res.res.found);
	chunks_free(&ch);
	ck_assert_int_eq(open_copy(&to, DST, EPOCH, SRC), KV_OK);
	assert_range_reads(&to, DST, KV_OK);
	/* the source: released, a drop under way */
	ck_assert_int_eq(release(&f, SRC, EPOCH, &R, 1), KV_OK);
	long d;
	ck_assert_int_eq(drop(&f, SRC, EPOCH, 0, 20, &d), KV_OK);
	transfer(&f, &to, SRC);
	assert_range_reads(&to, SRC, KV_WRONG_SHARD);
	ck_assert_int_eq(fx_put(&to, SRC, pick(true, 0), "x"), KV_WRONG_SHARD);
	ck_assert_int_eq(drop_all(&to, SRC, EPOCH, 0, 20) + d, in);
	fx_close(&to);
	fx_close(&f);
}
END_TEST

/* Each entry of one batch sees the markers of its place in the log: a write before OPEN is
 * refused, one after it is taken. */
START_TEST(test_open_within_a_batch)
{
	struct fx f;
	fx_open(&f);
	fill(&f);
	ck_assert_int_eq(fence(&f, SRC, EPOCH, &R, 1), KV_OK);
	struct chunks ch;
	read_chunks(&f, 0, 0, &ch);
	ck_assert_uint_eq(ch.n, 1);
	uint8_t ov[KV_OPEN_VALUE_BYTES];
	kv_open_value(EPOCH, SRC, ov);
	const char *k = pick(true, 0);
	struct kv_cmd cmds[5] = {
		fx_put_cmd(k, "before-copy"),
		{.op = KV_OP_INGEST, .value = ch.v[0], .value_len = ch.len[0]},
		fx_put_cmd(k, "before-open"),
		{.op = KV_OP_OPEN, .value = ov, .value_len = sizeof ov},
		fx_put_cmd(k, "after-open"),
	};
	struct raft_entry e[5];
	for (int i = 0; i < 5; i++) {
		ck_assert_int_eq(kv_cmd_encode(f.kv, &cmds[i], &e[i].data), KV_OK);
		e[i].term = 1;
		e[i].index = f.next[DST] + (raft_index)i;
		e[i].type = RAFT_ENTRY_NORMAL;
	}
	struct codes got = {0};
	ck_assert_int_eq(kv_apply(f.kv, DST, e, 5, NULL, codes_cb, &got), KV_OK);
	ck_assert_int_eq(got.n, 5);
	ck_assert_int_eq(got.code[0], KV_OK); /* no copy yet: its own key, for now */
	ck_assert_int_eq(got.code[1], KV_OK);
	ck_assert_int_eq(got.code[2], KV_WRONG_SHARD);
	ck_assert_int_eq(got.code[3], KV_OK);
	ck_assert_int_eq(got.code[4], KV_OK);
	fx_expect(&f, DST, k, "after-open");
	for (int i = 0; i < 5; i++)
		free(e[i].data.base);
	chunks_free(&ch);
	fx_close(&f);
}
END_TEST

/* The reaper leaves keys the group does not serve alone: not listed, not reaped; after OPEN
 * they are the target's to reap. */
START_TEST(test_reaper_and_gate)
{
	struct fx f;
	fx_open(&f);
	char k[16];
	strcpy(k, pick(true, 0));
	struct kv_cmd c = fx_put_cmd(k, "v");
	c.now_ms = 500;
	c.expire_at_ms = 1000;
	ck_assert_int_eq(apply_code(&f, SRC, &c, NULL), KV_OK);
	ck_assert_int_eq(fence(&f, SRC, EPOCH, &R, 1), KV_OK);
	ck_assert_int_eq(copy(&f, 0), KV_OK);
	uint32_t found;
	int calls = 0;
	ck_assert_int_eq(kv_expired(f.kv, DST, 5000, 100, count_cb, &calls, &found), KV_OK);
	ck_assert_uint_eq(found, 0);
	uint8_t at[8] = {0xe8, 0x03}; /* 1000 */
	struct kv_item it = {.key = k, .key_len = strlen(k), .value = at, .value_len = 8};
	struct kv_cmd reap = {.op = KV_OP_REAP, .items = &it, .n_items = 1, .now_ms = 5000};
	struct fx_res res;
	ck_assert_int_eq(apply_code(&f, DST, &reap, &res), KV_OK);
	ck_assert_int_eq(res.value[0], '0');
	ck_assert_int_eq(open_copy(&f, DST, EPOCH, SRC), KV_OK);
	ck_assert_int_eq(kv_expired(f.kv, DST, 5000, 100, count_cb, &calls, &found), KV_OK);
	ck_assert_uint_eq(found, 1);
	ck_assert_int_eq(apply_code(&f, DST, &reap, &res), KV_OK);
	ck_assert_int_eq(res.value[0], '1');
	fx_close(&f);
}
END_TEST

/* A snapshot whose copy record is damaged (its checksum made right again) is refused: a
 * wrong marker could make a replica serve a range it must not. */
START_TEST(test_restore_checks_markers)
{
	struct fx f, to;
	fx_open(&f);
	fx_open(&to);
	fill(&f);
	ck_assert_int_eq(fence(&f, SRC, EPOCH, &R, 1), KV_OK);
	ck_assert_int_eq(copy(&f, 0), KV_OK);
	struct kv_snapshot *snap;
	ck_assert_int_eq(kv_snapshot_begin(f.kv, DST, &snap), KV_OK);
	static uint8_t buf[1 << 20];
	size_t len;
	bool done;
	ck_assert_int_eq(kv_snapshot_read(snap, buf, sizeof buf, &len, &done), KV_OK);
	ck_assert(done);
	kv_snapshot_end(snap);
	/* the meta record 'M' | kl 5 | vl | 'I' | be32 SRC, and its state byte */
	uint8_t rec[10] = {'M', 5, 0, 0, 0};
	uint8_t key[5] = {'I', 0, 0, 0, SRC};
	uint8_t *p = NULL;
	for (size_t i = 0; i + 14 < len && p == NULL; i++)
		if (memcmp(buf + i, rec, 5) == 0 && memcmp(buf + i + 9, key, 5) == 0)
			p = buf + i + 14;
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(p[8], 2); /* complete */
	p[8] = 9;                  /* no such state */
	uint64_t sum = XXH3_64bits(buf, len - 8);
	for (int i = 0; i < 8; i++)
		buf[len - 8 + i] = (uint8_t)(sum >> (8 * i));
	struct kv_restore *rs;
	ck_assert_int_eq(kv_restore_begin(to.kv, DST, &rs), KV_OK);
	ck_assert_int_eq(kv_restore_write(rs, buf, len), KV_OK);
	ck_assert_int_eq(kv_restore_finish(rs), KV_ECORRUPT);
	/* as shipped, it is taken */
	p[8] = 2;
	sum = XXH3_64bits(buf, len - 8);
	for (int i = 0; i < 8; i++)
		buf[len - 8 + i] = (uint8_t)(sum >> (8 * i));
	ck_assert_int_eq(kv_restore_begin(to.kv, DST, &rs), KV_OK);
	ck_assert_int_eq(kv_restore_write(rs, buf, len), KV_OK);
	ck_assert_int_eq(kv_restore_finish(rs), KV_OK);
	to.next[DST] = fx_applied(&to, DST) + 1;
	assert_range_reads(&to, DST, KV_WRONG_SHARD);
	ck_assert_int_eq(open_copy(&to, DST, EPOCH, SRC), KV_OK);
	fx_close(&to);
	fx_close(&f);
}
END_TEST

/* Several ranges, one of them wrapping past 0: exactly their keys move. */
START_TEST(test_two_ranges_one_wrapping)
{
	struct fx f;
	fx_open(&f);
	fill(&f);
	struct kv_ring_range rs[2] = {
		{.lo = UINT64_MAX - UINT64_MAX / 8, .hi = UINT64_MAX / 16},
		{.lo = UINT64_MAX / 2, .hi = UINT64_MAX / 2 + UINT64_MAX / 16},
	};
	ck_assert_int_eq(fence(&f, SRC, EPOCH, rs, 2), KV_OK);
	struct kv_copy *c;
	ck_assert_int_eq(kv_copy_begin(f.kv, SRC, EPOCH, rs, 2, 0, 250, &c), KV_OK);
	bool last = false;
	struct fx_res res;
	int chunks = 0;
	while (!last) {
		uint8_t *v;
		size_t len;
		ck_assert_int_eq(kv_copy_next(c, &v, &len, &last), KV_OK);
		ck_assert_int_eq(ingest(&f, v, len, &res), KV_OK);
		free(v);
		chunks++;
	}
	kv_copy_end(c);
	ck_assert_int_gt(chunks, 3);
	ck_assert(res.res.found);
	uint64_t ks, kd;
	uint8_t ds[KV_RANGE_DIGEST_BYTES], dd[KV_RANGE_DIGEST_BYTES];
	ck_assert_int_eq(kv_range_digest(f.kv, SRC, rs, 2, &ks, ds), KV_OK);
	ck_assert_int_eq(kv_range_digest(f.kv, DST, rs, 2, &kd, dd), KV_OK);
	ck_assert_uint_gt(ks, 10);
	ck_assert_uint_eq(ks, kd);
	ck_assert(memcmp(ds, dd, sizeof ds) == 0);
	struct kv_group_meta m;
	ck_assert_int_eq(kv_meta(f.kv, DST, &m), KV_OK);
	ck_assert_uint_eq(m.keys, kd); /* nothing else came */
	ck_assert_int_eq(open_copy(&f, DST, EPOCH, SRC), KV_OK);
	for (int i = 0; i < NKEYS; i++) {
		char k[16];
		key_of(i, k);
		uint64_t h = kv_ring_key_hash(k, strlen(k));
		bool moved = kv_ring_range_has(&rs[0], h) || kv_ring_range_has(&rs[1], h);
		ck_assert_int_eq(get_code(&f, DST, k), moved ? KV_OK : KV_NOT_FOUND);
	}
	fx_close(&f);
}
END_TEST

/* A range that comes back (a group added, then removed): the old source takes it in again once
 * its old copy is dropped, and then serves it, writes included (its old fence and release are
 * gone). */
START_TEST(test_range_comes_back)
{
	struct fx f;
	fx_open(&f);
	int in = fill(&f);
	ck_assert_int_eq(fence(&f, SRC, EPOCH, &R, 1), KV_OK);
	ck_assert_int_eq(copy(&f, 0), KV_OK);
	ck_assert_int_eq(release(&f, SRC, EPOCH, &R, 1), KV_OK);
	ck_assert_int_eq(open_copy(&f, DST, EPOCH, SRC), KV_OK);
	char k[16];
	strcpy(k, pick(true, 0));
	ck_assert_int_eq(fx_put(&f, DST, k, "at-dst"), KV_OK);
	/* the next change gives R back */
	ck_assert_int_eq(fence(&f, DST, EPOCH + 1, &R, 1), KV_OK);
	struct kv_copy *c;
	ck_assert_int_eq(kv_copy_begin(f.kv, DST, EPOCH + 1, &R, 1, 0, 0, &c), KV_OK);
	uint8_t *v;
	size_t len;
	bool last;
	ck_assert_int_eq(kv_copy_next(c, &v, &len, &last), KV_OK);
	ck_assert(last);
	kv_copy_end(c);
	struct fx_res res;
	ck_assert_int_eq(ingest_at(&f, SRC, v, len, &res), KV_EINVAL); /* not dropped yet */
	ck_assert_int_eq(drop_all(&f, SRC, EPOCH, 0, 64), in);
	ck_assert_int_eq(ingest_at(&f, SRC, v, len, &res), KV_OK);
	ck_assert(res.res.found);
	free(v);
	ck_assert_int_eq(get_code(&f, SRC, k), KV_WRONG_SHARD); /* not opened yet */
	ck_assert_int_eq(release(&f, DST, EPOCH + 1, &R, 1), KV_OK);
	ck_assert_int_eq(open_copy(&f, SRC, EPOCH + 1, DST), KV_OK);
	fx_expect(&f, SRC, k, "at-dst");
	assert_range_reads(&f, SRC, KV_OK);
	ck_assert_int_eq(fx_put(&f, SRC, k, "back"), KV_OK);
	fx_expect(&f, SRC, k, "back");
	ck_assert_int_eq(get_code(&f, DST, k), KV_WRONG_SHARD);
	ck_assert_int_eq(drop_all(&f, DST, EPOCH + 1, 0, 64), in + 1);
	fx_close(&f);
}
END_TEST

/* A copy rolled back (dropped at the target), then the same range from another source in a
 * later change: the newer copy waits until the older one is dropped, then clears it, and once
 * opened the range is served. */
START_TEST(test_older_copy_from_another_source)
{
	struct fx f;
	fx_open(&f);
	int in = fill(&f);
	const uint32_t SRC2 = 7;
	char k2[16];
	strcpy(k2, pick(true, 3));
	ck_assert_int_eq(fx_put(&f, SRC2, k2, "from-src2"), KV_OK);
	/* epoch 2: SRC into DST, stopped after its first chunk */
	ck_assert_int_eq(fence(&f, SRC, EPOCH, &R, 1), KV_OK);
	struct chunks ch;
	read_chunks(&f, 0, 300, &ch);
	struct fx_res res;
	ck_assert_int_eq(ingest(&f, ch.v[0], ch.len[0], &res), KV_OK);
	chunks_free(&ch);
	/* epoch 3: SRC2 into DST, while the older copy is neither opened nor dropped */
	ck_assert_int_eq(fence(&f, SRC2, EPOCH + 1, &R, 1), KV_OK);
	struct kv_copy *c;
	ck_assert_int_eq(kv_copy_begin(f.kv, SRC2, EPOCH + 1, &R, 1, 0, 0, &c), KV_OK);
	uint8_t *v;
	size_t len;
	bool last;
	ck_assert_int_eq(kv_copy_next(c, &v, &len, &last), KV_OK);
	ck_assert(last);
	kv_copy_end(c);
	ck_assert_int_eq(ingest(&f, v, len, &res), KV_EINVAL);
	/* the rollback: DROP at the target */
	ck_assert_int_gt(drop_all(&f, DST, EPOCH, SRC, 64), 0);
	assert_range_reads(&f, DST, KV_WRONG_SHARD); /* still not served here */
	ck_assert_int_eq(ingest(&f, v, len, &res), KV_OK);
	ck_assert(res.res.found);
	free(v);
	ck_assert_int_eq(open_copy(&f, DST, EPOCH + 1, SRC2), KV_OK);
	fx_expect(&f, DST, k2, "from-src2");
	assert_range_reads(&f, DST, KV_NOT_FOUND); /* served, and none of SRC's copy is left */
	ck_assert_int_eq(fx_put(&f, DST, k2, "w"), KV_OK);
	ck_assert_int_lt(in, NKEYS);
	fx_close(&f);
}
END_TEST

static uint64_t rnd(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static uint64_t le64_at(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Chunks of three readers of different sizes delivered in a random order, repeated, ahead of
 * time, across reopens: every answer follows the offset rule, and the copy ends complete and
 * equal to the source. */
START_TEST(test_random_delivery)
{
	for (uint64_t seed = 1; seed <= 12; seed++) {
		struct fx f;
		fx_open(&f);
		uint64_t x = seed * 0x9E3779B97F4A7C15ull;
		int n = 40 + (int)(rnd(&x) % 120);
		for (int i = 0; i < n; i++) {
			char k[32], v[301];
			snprintf(k, sizeof k, "r%llu-%d", (unsigned long long)seed, i);
			size_t vl = rnd(&x) % 300;
			for (size_t j = 0; j < vl; j++)
				v[j] = (char)('a' + rnd(&x) % 26);
			v[vl] = 0;
			struct kv_cmd c = fx_put_cmd(k, v);
			if (rnd(&x) % 4 == 0)
				c.expire_at_ms = 4000000000000ull + rnd(&x) % 1000;
			c.client_id = 1 + rnd(&x) % 3;
			c.seq = (uint64_t)i + 1;
			ck_assert_int_eq(apply_code(&f, SRC, &c, NULL), KV_OK);
		}
		ck_assert_int_eq(fence(&f, SRC, EPOCH, &R, 1), KV_OK);
		static struct chunks lists[3];
		for (int l = 0; l < 3; l++)
			read_chunks(&f, 0, 100 + rnd(&x) % 900, &lists[l]);
		uint64_t next = 0;
		bool complete = false;
		for (int steps = 0; !complete; steps++) {
			ck_assert_int_lt(steps, 20000);
			struct chunks *L = &lists[rnd(&x) % 3];
			size_t i = rnd(&x) % L->n;
			if (rnd(&x) % 2) /* half the time, the chunk the target needs */
				for (i = 0; i + 1 < L->n && le64_at(L->v[i + 1] + 16) <= next; i++)
					;
			uint64_t off = le64_at(L->v[i] + 16),
				 items = L->v[i][24] | L->v[i][25] << 8;
			struct fx_res res;
			int code = ingest(&f, L->v[i], L->len[i], &res);
			if (off > next) {
				ck_assert_int_eq(code, KV_CAS_MISMATCH);
				ck_assert_uint_eq(res_num(&res), next);
			} else {
				ck_assert_int_eq(code, KV_OK);
				if (off + items > next)
					next = off + items;
				ck_assert_uint_eq(res_num(&res), next);
				complete = res.res.found;
				ck_assert(complete == (i + 1 == L->n));
			}
			if (rnd(&x) % 50 == 0) {
				kv_close(f.kv);
				ck_assert_int_eq(kv_open(f.dir, NULL, &f.kv), KV_OK);
			}
		}
		for (int l = 0; l < 3; l++)
			chunks_free(&lists[l]);
		assert_same_range(&f);
		ck_assert_int_eq(open_copy(&f, DST, EPOCH, SRC), KV_OK);
		fx_close(&f);
	}
}
END_TEST

/* An empty range: one last chunk, at offset 0, with no item; a source with no session. */
START_TEST(test_empty_range)
{
	struct fx f;
	fx_open(&f);
	ck_assert_int_eq(fx_put(&f, SRC, pick(false, 0), "v"), KV_OK);
	ck_assert_int_eq(fence(&f, SRC, EPOCH, &R, 1), KV_OK);
	struct chunks ch;
	read_chunks(&f, 0, 0, &ch);
	ck_assert_uint_eq(ch.n, 1);
	struct fx_res res;
	ck_assert_int_eq(ingest(&f, ch.v[0], ch.len[0], &res), KV_OK);
	ck_assert(res.res.found);
	ck_assert_uint_eq(res_num(&res), 0);
	chunks_free(&ch);
	ck_assert_int_eq(open_copy(&f, DST, EPOCH, SRC), KV_OK);
	ck_assert_int_eq(fx_put(&f, DST, pick(true, 0), "v"), KV_OK);
	fx_close(&f);
}
END_TEST

/* The reader reads only a frozen range. */
START_TEST(test_copy_needs_fence)
{
	struct fx f;
	fx_open(&f);
	fill(&f);
	struct kv_copy *c;
	uint8_t *v;
	size_t len;
	bool last;
	ck_assert_int_eq(kv_copy_begin(f.kv, SRC, EPOCH, &R, 0, 0, 0, &c), KV_EINVAL);
	ck_assert_int_eq(kv_copy_begin(f.kv, SRC, EPOCH, &R, 1, 0, 0, &c), KV_OK);
	ck_assert_int_eq(kv_copy_next(c, &v, &len, &last), KV_EINVAL); /* not fenced */
	ck_assert_int_eq(fence(&f, SRC, EPOCH + 1, &R, 1), KV_OK);
	ck_assert_int_eq(kv_copy_next(c, &v, &len, &last), KV_EINVAL); /* another epoch */
	kv_copy_end(c);
	fx_close(&f);
}
END_TEST

/* A chunk encoder for malformed values: header fields as given, items raw. */
static size_t chunk(uint8_t *p, uint64_t epoch, uint32_t source, uint32_t n_ranges, uint64_t offset,
		    uint32_t n_items, uint32_t flags, uint64_t keys, const void *items,
		    size_t items_len)
{
	memset(p, 0, KV_INGEST_HEADER);
	for (int i = 0; i < 8; i++) {
		p[i] = (uint8_t)(epoch >> (8 * i));
		p[16 + i] = (uint8_t)(offset >> (8 * i));
		p[32 + i] = (uint8_t)(keys >> (8 * i));
	}
	for (int i = 0; i < 4; i++) {
		p[8 + i] = (uint8_t)(source >> (8 * i));
		p[12 + i] = (uint8_t)(n_ranges >> (8 * i));
		p[24 + i] = (uint8_t)(n_items >> (8 * i));
		p[28 + i] = (uint8_t)(flags >> (8 * i));
	}
	size_t off = KV_INGEST_HEADER;
	for (uint32_t r = 0; r < n_ranges; r++) {
		for (int i = 0; i < 8; i++) {
			p[off + i] = (uint8_t)(R.lo >> (8 * i));
			p[off + 8 + i] = (uint8_t)(R.hi >> (8 * i));
		}
		off += 16;
	}
	if (items_len)
		memcpy(p + off, items, items_len);
	return off + items_len;
}

/* One 'K' item of key k, value v (no expiry). */
static size_t key_item(uint8_t *p, const char *k, const char *v)
{
	size_t kl = strlen(k), vl = strlen(v);
	memset(p, 0, 15);
	p[0] = 'K';
	p[1] = (uint8_t)kl;
	p[3] = (uint8_t)vl;
	memcpy(p + 15, k, kl);
	memcpy(p + 15 + kl, v, vl);
	return 15 + kl + vl;
}

static int encode(uint8_t op, const void *v, size_t len)
{
	struct kv_cmd c = {.op = op, .value = v, .value_len = len};
	struct raft_buf b;
	int rc = kv_cmd_encode(NULL, &c, &b);
	if (rc == KV_OK)
		free(b.base);
	return rc;
}

/* The same entries give the same state however the apply batches them (replicas batch what is
 * committed when they apply, so a lagging replica applies a whole copy, its OPEN and the writes
 * after it in one batch): a copy's first chunk lifts the group's older fence, and a write in
 * the same batch after the OPEN must see that. (It did not: the fence was loaded once per batch
 * and not again after a handoff entry, so the lagging replica refused the write as MOVING that
 * the others applied; jepsen-lite found the replicas' digests differ and lost writes.) */
START_TEST(test_batching_same_state)
{
	struct fx a, b;
	fx_open(&a);
	fx_open(&b);
	const char *k = pick(true, 0);
	/* DST gave R away once (epoch 1): fenced; now it gets R back (epoch EPOCH) from SRC */
	ck_assert_int_eq(fence(&a, DST, 1, &R, 1), KV_OK);
	ck_assert_int_eq(fence(&b, DST, 1, &R, 1), KV_OK);
	uint8_t item[600], first[1024];
	size_t il = key_item(item, k, "copied");
	/* one chunk, the last: the key, its count and digest */
	uint64_t keys;
	uint8_t dg[KV_RANGE_DIGEST_BYTES];
	ck_assert_int_eq(fx_put(&a, SRC, k, "copied"), KV_OK);
	ck_assert_int_eq(kv_range_digest(a.kv, SRC, &R, 1, &keys, dg), KV_OK);
	ck_assert_uint_eq(keys, 1);
	size_t fl = chunk(first, EPOCH, SRC, 1, 0, 1, 1, keys, item, il);
	memcpy(first + 40, dg, sizeof dg);
	uint8_t ov[KV_OPEN_VALUE_BYTES];
	kv_open_value(EPOCH, SRC, ov);
	struct kv_cmd cmds[3] = {
		{.op = KV_OP_INGEST, .value = first, .value_len = fl},
		{.op = KV_OP_OPEN, .value = ov, .value_len = sizeof ov},
		fx_put_cmd(k, "written after"),
	};
	/* a: one entry per batch */
	for (int i = 0; i < 3; i++) {
		struct fx_res r;
		ck_assert_int_eq(fx_apply_cmd(&a, DST, &cmds[i], &r), KV_OK);
		ck_assert_int_eq(r.res.code, KV_OK);
	}
	/* b: the three in one batch */
	struct raft_entry e[3];
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(kv_cmd_encode(b.kv, &cmds[i], &e[i].data), KV_OK);
		e[i].term = b.term;
		e[i].index = b.next[DST] + (raft_index)i;
		e[i].type = RAFT_ENTRY_NORMAL;
	}
	struct codes acc = {0};
	ck_assert_int_eq(kv_apply(b.kv, DST, e, 3, NULL, codes_cb, &acc), KV_OK);
	for (int i = 0; i < 3; i++)
		free(e[i].data.base);
	ck_assert_int_eq(acc.n, 3);
	for (int i = 0; i < 3; i++)
		ck_assert_msg(acc.code[i] == KV_OK, "entry %d of the batch: %d", i, acc.code[i]);
	uint8_t da[KV_DIGEST_BYTES], db[KV_DIGEST_BYTES];
	raft_index ia, ib;
	ck_assert_int_eq(kv_digest(a.kv, DST, da, &ia), KV_OK);
	ck_assert_int_eq(kv_digest(b.kv, DST, db, &ib), KV_OK);
	ck_assert_uint_eq(ia, ib);
	ck_assert(memcmp(da, db, sizeof da) == 0);
	fx_close(&a);
	fx_close(&b);
}
END_TEST

/* Malformed entries never enter the log, never decode, and a well-formed chunk with a key
 * outside its ranges writes nothing. */
START_TEST(test_malformed)
{
	static uint8_t p[4096], it[1024];
	size_t il = key_item(it, pick(true, 0), "v");
	size_t good = chunk(p, EPOCH, SRC, 1, 0, 1, 0, 0, it, il);
	ck_assert_int_eq(encode(KV_OP_INGEST, p, good), KV_OK);
	ck_assert_int_eq(encode(KV_OP_INGEST, p, good - 1), KV_EINVAL); /* cut short */
	ck_assert_int_eq(encode(KV_OP_INGEST, p, KV_INGEST_HEADER - 1), KV_EINVAL);
	struct {
		uint64_t epoch, offset, keys;
		uint32_t source, n_ranges, n_items, flags;
	} bad[] = {
		{0, 0, 0, SRC, 1, 1, 0},     /* epoch 0 */
		{EPOCH, 0, 0, 0, 1, 1, 0},   /* source 0 */
		{EPOCH, 0, 0, SRC, 0, 1, 0}, /* the first chunk without ranges */
		{EPOCH, 5, 0, SRC, 1, 1, 0}, /* ranges in a later chunk */
		{EPOCH, 0, 0, SRC, 1, 2, 0}, /* an item count that disagrees */
		{EPOCH, 0, 0, SRC, 1, 1, 2}, /* an unknown flag */
		{EPOCH, 0, 7, SRC, 1, 1, 0}, /* a key count in a chunk that is not the last */
		{EPOCH, 0, 0, SRC, KV_RESHARD_RANGES_MAX + 1, 1, 0}, /* too many ranges */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		size_t len = chunk(p, bad[i].epoch, bad[i].source,
				   bad[i].n_ranges > 1 ? 1 : bad[i].n_ranges, bad[i].offset,
				   bad[i].n_items, bad[i].flags, bad[i].keys, it, il);
		if (bad[i].n_ranges > 1)
			for (int b = 0; b < 4; b++)
				p[12 + b] = (uint8_t)(bad[i].n_ranges >> (8 * b));
		ck_assert_msg(encode(KV_OP_INGEST, p, len) == KV_EINVAL, "bad chunk %zu taken", i);
	}
	/* no item and not the last; a key of length 0; a session item with seq <= floor */
	size_t len = chunk(p, EPOCH, SRC, 1, 0, 0, 0, 0, NULL, 0);
	ck_assert_int_eq(encode(KV_OP_INGEST, p, len), KV_EINVAL);
	uint8_t k0[15] = {'K'};
	len = chunk(p, EPOCH, SRC, 1, 0, 1, 0, 0, k0, sizeof k0);
	ck_assert_int_eq(encode(KV_OP_INGEST, p, len), KV_EINVAL);
	uint8_t s[31] = {'S', 1};
	s[9] = 5;  /* floor 5 */
	s[17] = 5; /* seq 5 */
	len = chunk(p, EPOCH, SRC, 1, 0, 1, 0, 0, s, sizeof s);
	ck_assert_int_eq(encode(KV_OP_INGEST, p, len), KV_EINVAL);
	s[17] = 6;
	len = chunk(p, EPOCH, SRC, 1, 0, 1, 0, 0, s, sizeof s);
	ck_assert_int_eq(encode(KV_OP_INGEST, p, len), KV_OK);
	uint8_t x[1] = {'X'}; /* an unknown item */
	len = chunk(p, EPOCH, SRC, 1, 0, 1, 0, 0, x, 1);
	ck_assert_int_eq(encode(KV_OP_INGEST, p, len), KV_EINVAL);
	/* OPEN, DROP, RELEASE */
	uint8_t ov[KV_OPEN_VALUE_BYTES], dv[KV_DROP_VALUE_BYTES];
	kv_open_value(EPOCH, SRC, ov);
	ck_assert_int_eq(encode(KV_OP_OPEN, ov, sizeof ov), KV_OK);
	ck_assert_int_eq(encode(KV_OP_OPEN, ov, sizeof ov - 1), KV_EINVAL);
	kv_open_value(EPOCH, 0, ov);
	ck_assert_int_eq(encode(KV_OP_OPEN, ov, sizeof ov), KV_EINVAL);
	kv_drop_value(EPOCH, 0, KV_DROP_KEYS_MAX, dv);
	ck_assert_int_eq(encode(KV_OP_DROP, dv, sizeof dv), KV_OK);
	kv_drop_value(EPOCH, 0, 0, dv);
	ck_assert_int_eq(encode(KV_OP_DROP, dv, sizeof dv), KV_EINVAL);
	kv_drop_value(EPOCH, 0, KV_DROP_KEYS_MAX + 1, dv);
	ck_assert_int_eq(encode(KV_OP_DROP, dv, sizeof dv), KV_EINVAL);
	kv_drop_value(0, 0, 1, dv);
	ck_assert_int_eq(encode(KV_OP_DROP, dv, sizeof dv), KV_EINVAL);
	uint8_t *rv;
	size_t rl;
	ck_assert_int_eq(kv_fence_value(EPOCH, &R, 1, &rv, &rl), 0);
	ck_assert_int_eq(encode(KV_OP_RELEASE, rv, rl), KV_OK);
	ck_assert_int_eq(encode(KV_OP_RELEASE, rv, 12), KV_EINVAL); /* no range */
	/* no key, no session on any of them */
	struct raft_buf b;
	struct kv_cmd withkey = {
		.op = KV_OP_RELEASE, .key = "k", .key_len = 1, .value = rv, .value_len = rl};
	ck_assert_int_eq(kv_cmd_encode(NULL, &withkey, &b), KV_EINVAL);
	struct kv_cmd withsession = {
		.op = KV_OP_OPEN, .value = ov, .value_len = sizeof ov, .client_id = 1, .seq = 1};
	kv_open_value(EPOCH, SRC, ov);
	ck_assert_int_eq(kv_cmd_encode(NULL, &withsession, &b), KV_EINVAL);
	/* sneaked past the encoder: refused on decode, applied as a no-op answering KV_EINVAL */
	good = chunk(p, EPOCH, SRC, 1, 0, 1, 0, 0, it, il);
	struct kv_cmd c = {.op = KV_OP_INGEST, .value = p, .value_len = good};
	ck_assert_int_eq(kv_cmd_encode(NULL, &c, &b), KV_OK);
	((uint8_t *)b.base)[b.len - il + 1] = 0; /* the key length: 0 */
	struct kv_cmd d;
	ck_assert_int_eq(kv_cmd_decode(b.base, b.len, &d), KV_EINVAL);
	struct fx f;
	fx_open(&f);
	struct raft_entry e = {.term = 1, .index = 1, .type = RAFT_ENTRY_NORMAL, .data = b};
	struct fx_res res = {0};
	ck_assert_int_eq(kv_apply(f.kv, DST, &e, 1, NULL, fx_res_cb, &res), KV_OK);
	ck_assert_int_eq(res.res.code, KV_EINVAL);
	free(b.base);
	f.next[DST] = 2;
	/* a copy from the group itself: refused, no record */
	il = key_item(it, pick(true, 0), "v");
	len = chunk(p, EPOCH, DST, 1, 0, 1, 0, 0, it, il);
	ck_assert_int_eq(ingest(&f, p, len, &res), KV_EINVAL);
	/* a key outside the chunk's ranges: refused, nothing written, no record */
	il = key_item(it, pick(false, 0), "v");
	len = chunk(p, EPOCH, SRC, 1, 0, 1, 0, 0, it, il);
	ck_assert_int_eq(ingest(&f, p, len, &res), KV_EINVAL);
	ck_assert_int_eq(get_code(&f, DST, pick(false, 0)), KV_NOT_FOUND);
	ck_assert_int_eq(fx_put(&f, DST, pick(true, 0), "v"), KV_OK); /* no copy started */
	free(rv);
	fx_close(&f);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("kv_ingest");
	TCase *tc = tcase_create("ingest");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_handoff_in_order);
	tcase_add_test(tc, test_ingest_idempotent);
	tcase_add_test(tc, test_digest_mismatch_discards);
	tcase_add_test(tc, test_sessions_merged);
	tcase_add_test(tc, test_sessions_resumed);
	tcase_add_test(tc, test_release_rules);
	tcase_add_test(tc, test_open_and_drop_rules);
	tcase_add_test(tc, test_reopen);
	tcase_add_test(tc, test_snapshot_carries);
	tcase_add_test(tc, test_open_within_a_batch);
	tcase_add_test(tc, test_reaper_and_gate);
	tcase_add_test(tc, test_restore_checks_markers);
	tcase_add_test(tc, test_two_ranges_one_wrapping);
	tcase_add_test(tc, test_range_comes_back);
	tcase_add_test(tc, test_older_copy_from_another_source);
	tcase_add_test(tc, test_random_delivery);
	tcase_add_test(tc, test_empty_range);
	tcase_add_test(tc, test_copy_needs_fence);
	tcase_add_test(tc, test_malformed);
	tcase_add_test(tc, test_batching_same_state);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
