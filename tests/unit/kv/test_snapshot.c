/* test_snapshot.c — snapshot streaming and restore: a snapshot taken while writes keep
 * committing restores to exactly the captured state (equal digest, applied index, conf and
 * sessions) and replaces whatever the receiver held; a damaged, truncated or misdirected
 * stream is KV_ECORRUPT and leaves the receiving group unchanged, and so is a stream carrying
 * a value whose CRC fails; a version 1 stream (no CRCs) installs checksummed values.
 */
#include <xxhash.h>

#include "kv_fixture.h"
#include "wal/crc32c.h"

struct stream {
	uint8_t *data;
	size_t len, cap;
};

static void stream_add(struct stream *s, const void *p, size_t n)
{
	if (s->len + n > s->cap) {
		s->cap = (s->len + n) * 2;
		s->data = realloc(s->data, s->cap);
		ck_assert_ptr_nonnull(s->data);
	}
	memcpy(s->data + s->len, p, n);
	s->len += n;
}

static void fill(struct fx *f, uint32_t group, int n, const char *tag)
{
	char k[32], v[300];
	for (int i = 0; i < n; i++) {
		snprintf(k, sizeof k, "key%05d", i * 7 % 1000);
		snprintf(v, sizeof v, "%s-%d-%0*d", tag, i, i % 250, 0);
		ck_assert_int_eq(fx_put(f, group, k, v), KV_OK);
	}
}

static void restore_all(struct fx *f, uint32_t group, const struct stream *s, size_t chunk,
			int want)
{
	struct kv_restore *r;
	ck_assert_int_eq(kv_restore_begin(f->kv, group, &r), KV_OK);
	for (size_t off = 0; off < s->len; off += chunk) {
		size_t n = s->len - off < chunk ? s->len - off : chunk;
		ck_assert_int_eq(kv_restore_write(r, s->data + off, n), KV_OK);
	}
	ck_assert_int_eq(kv_restore_finish(r), want);
}

START_TEST(test_snapshot_restore_while_writing)
{
	struct fx a, b;
	fx_open(&a);
	fx_open(&b);
	fill(&a, 1, 1500, "a");
	/* A big value (several LMDB overflow pages), a session and a configuration. */
	char *big = malloc(200000);
	memset(big, 'B', 199999);
	big[199999] = 0;
	ck_assert_int_eq(fx_put(&a, 1, "big", big), KV_OK);
	struct kv_cmd sc = fx_put_cmd("sess", "s1");
	sc.client_id = 77;
	sc.seq = 1;
	ck_assert_int_eq(fx_apply_cmd(&a, 1, &sc, NULL), KV_OK);
	struct raft_conf conf = {.voters = {1, 2, 3}, .n_voters = 3};
	struct kv_cmd nop = {.op = KV_OP_NOOP};
	struct raft_buf nb;
	ck_assert_int_eq(kv_cmd_encode(a.kv, &nop, &nb), KV_OK);
	struct raft_entry ce = {.index = a.next[1]++, .term = 2, .data = nb};
	ck_assert_int_eq(kv_apply(a.kv, 1, &ce, 1, &conf, NULL, NULL), KV_OK);
	free(nb.base);
	a.term = 2;

	uint8_t want[KV_DIGEST_BYTES], now[KV_DIGEST_BYTES];
	raft_index want_index;
	ck_assert_int_eq(kv_digest(a.kv, 1, want, &want_index), KV_OK);
	struct kv_snapshot *s;
	ck_assert_int_eq(kv_snapshot_begin(a.kv, 1, &s), KV_OK);
	ck_assert_uint_eq(kv_snapshot_index(s), want_index);
	ck_assert_uint_eq(kv_snapshot_term(s), 2);

	/* Stream in odd-sized chunks; between chunks, writes commit on the same group. */
	struct stream st = {0};
	uint8_t chunk[4093];
	bool done = false;
	int rounds = 0;
	while (!done) {
		size_t n;
		ck_assert_int_eq(kv_snapshot_read(s, chunk, sizeof chunk, &n, &done), KV_OK);
		ck_assert(done || n == sizeof chunk);
		stream_add(&st, chunk, n);
		if (rounds++ % 8 == 0) {
			char k[32];
			snprintf(k, sizeof k, "key%05d", rounds % 1000);
			ck_assert_int_eq(fx_put(&a, 1, k, "changed during the snapshot"), KV_OK);
			ck_assert_int_eq(fx_del(&a, 1, "big") >= 0, 1);
		}
	}
	size_t n;
	ck_assert_int_eq(kv_snapshot_read(s, chunk, sizeof chunk, &n, &done), KV_OK);
	ck_assert_uint_eq(n, 0);
	ck_assert(done);
	kv_snapshot_end(s);
	ck_assert_int_gt(rounds, 40);
	ck_assert_uint_gt(fx_applied(&a, 1), want_index); /* the writes did commit */
	ck_assert_int_eq(kv_digest(a.kv, 1, now, NULL), KV_OK);
	ck_assert(memcmp(want, now, sizeof want) != 0);

	/* The receiver holds other data and sessions: all of it is replaced. */
	fill(&b, 1, 300, "b");
	ck_assert_int_eq(fx_put(&b, 1, "only-on-b", "x"), KV_OK);
	struct kv_cmd bs = fx_put_cmd("sess", "b");
	bs.client_id = 78;
	bs.seq = 1;
	ck_assert_int_eq(fx_apply_cmd(&b, 1, &bs, NULL), KV_OK);
	restore_all(&b, 1, &st, 1000, KV_OK);
	ck_assert_int_eq(kv_digest(b.kv, 1, now, NULL), KV_OK);
	ck_assert(memcmp(want, now, sizeof want) == 0);
	fx_expect(&b, 1, "only-on-b", NULL);
	fx_expect(&b, 1, "big", big);
	struct kv_group_meta m;
	ck_assert_int_eq(kv_meta(b.kv, 1, &m), KV_OK);
	ck_assert_uint_eq(m.applied_index, want_index);
	ck_assert_uint_eq(m.applied_term, 2);
	ck_assert(m.has_conf);
	ck_assert_uint_eq(m.conf.n_voters, 3);
	/* Sessions came along: A's client 77 seq 1 is a duplicate on B; B's own 78 is gone. */
	b.next[1] = want_index + 1;
	struct fx_res r;
	ck_assert_int_eq(fx_apply_cmd(&b, 1, &sc, &r), KV_OK);
	ck_assert(r.res.duplicate);
	ck_assert_int_eq(fx_apply_cmd(&b, 1, &bs, &r), KV_OK);
	ck_assert(!r.res.duplicate);
	free(big);
	free(st.data);
	fx_close(&a);
	fx_close(&b);
}
END_TEST

static void take(struct fx *f, uint32_t group, struct stream *st)
{
	struct kv_snapshot *s;
	ck_assert_int_eq(kv_snapshot_begin(f->kv, group, &s), KV_OK);
	uint8_t chunk[512];
	bool done = false;
	while (!done) {
		size_t n;
		ck_assert_int_eq(kv_snapshot_read(s, chunk, sizeof chunk, &n, &done), KV_OK);
		stream_add(st, chunk, n);
	}
	kv_snapshot_end(s);
}

START_TEST(test_bad_streams_change_nothing)
{
	struct fx a, b;
	fx_open(&a);
	fx_open(&b);
	fill(&a, 2, 200, "a");
	fill(&b, 2, 50, "b");
	struct stream st = {0};
	take(&a, 2, &st);
	uint8_t before[KV_DIGEST_BYTES], after[KV_DIGEST_BYTES];
	ck_assert_int_eq(kv_digest(b.kv, 2, before, NULL), KV_OK);
	raft_index applied = fx_applied(&b, 2);
	/* Every single flipped byte (a sample across the stream) is caught. */
	for (size_t pos = 0; pos < st.len; pos += st.len / 37 + 1) {
		st.data[pos] ^= 0x20;
		restore_all(&b, 2, &st, 333, KV_ECORRUPT);
		st.data[pos] ^= 0x20;
	}
	/* Truncated at the end, in the middle, empty. */
	struct stream cut = st;
	cut.len = st.len - 1;
	restore_all(&b, 2, &cut, 333, KV_ECORRUPT);
	cut.len = st.len / 2;
	restore_all(&b, 2, &cut, 333, KV_ECORRUPT);
	cut.len = 0;
	restore_all(&b, 2, &cut, 333, KV_ECORRUPT);
	/* A valid stream of another group. */
	restore_all(&b, 3, &st, 333, KV_ECORRUPT);
	/* An aborted restore leaves nothing behind either. */
	struct kv_restore *r;
	ck_assert_int_eq(kv_restore_begin(b.kv, 2, &r), KV_OK);
	ck_assert_int_eq(kv_restore_write(r, st.data, st.len / 3), KV_OK);
	kv_restore_abort(r);
	/* A staging file left by a crash is removed at the next open. */
	char path[512];
	snprintf(path, sizeof path, "%s/restore-g2.part", b.dir);
	FILE *stale = fopen(path, "w");
	ck_assert_ptr_nonnull(stale);
	fputs("half a snapshot", stale);
	fclose(stale);
	kv_close(b.kv);
	ck_assert_int_eq(kv_open(b.dir, NULL, &b.kv), KV_OK);
	ck_assert_int_ne(access(path, F_OK), 0);
	ck_assert_int_eq(kv_digest(b.kv, 2, after, NULL), KV_OK);
	ck_assert(memcmp(before, after, sizeof before) == 0);
	ck_assert_uint_eq(fx_applied(&b, 2), applied);
	/* And the good stream still installs. */
	restore_all(&b, 2, &st, 4096, KV_OK);
	ck_assert_int_eq(kv_digest(a.kv, 2, before, NULL), KV_OK);
	ck_assert_int_eq(kv_digest(b.kv, 2, after, NULL), KV_OK);
	ck_assert(memcmp(before, after, sizeof before) == 0);
	free(st.data);
	fx_close(&a);
	fx_close(&b);
}
END_TEST

START_TEST(test_empty_group_round_trip)
{
	struct fx a, b;
	fx_open(&a);
	fx_open(&b);
	fill(&b, 5, 10, "b");
	struct stream st = {0};
	take(&a, 5, &st);
	restore_all(&b, 5, &st, 7, KV_OK);
	struct kv_group_meta m;
	ck_assert_int_eq(kv_meta(b.kv, 5, &m), KV_OK);
	ck_assert_uint_eq(m.keys, 0);
	ck_assert_uint_eq(m.applied_index, 0);
	free(st.data);
	fx_close(&a);
	fx_close(&b);
}
END_TEST

/* Recomputes the stream's XXH3-64 trailer (its last 8 bytes) after an edit. */
static void reseal(struct stream *st)
{
	uint64_t h = XXH3_64bits(st->data, st->len - 8);
	for (int i = 0; i < 8; i++)
		st->data[st->len - 8 + i] = (uint8_t)(h >> (8 * i));
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The same stream as an older ringraft wrote it: version 1, data values without their CRC;
 * version 2, data values with a CRC of (key || value) and no expiry. */
static void to_version(const struct stream *in, struct stream *out, int version)
{
	stream_add(out, in->data, 32);
	out->data[8] = (uint8_t)version;
	size_t pos = 32;
	while (in->data[pos] != 'E') {
		uint8_t h[9];
		memcpy(h, in->data + pos, 9);
		uint32_t kl = le32(h + 1), vl = le32(h + 5);
		size_t skip = h[0] == 'D' ? 12 : 0;
		uint32_t nvl = vl - (uint32_t)skip;
		uint32_t crc_len = h[0] == 'D' && version == 2 ? 4 : 0;
		for (int i = 0; i < 4; i++)
			h[5 + i] = (uint8_t)((nvl + crc_len) >> (8 * i));
		stream_add(out, h, 9);
		stream_add(out, in->data + pos + 9, kl);
		if (crc_len) {
			const uint8_t *key = in->data + pos + 9, *val = key + kl + skip;
			uint32_t crc = wal_crc32c(wal_crc32c(0, key, kl), val, nvl);
			uint8_t c[4];
			for (int i = 0; i < 4; i++)
				c[i] = (uint8_t)(crc >> (8 * i));
			stream_add(out, c, 4);
		}
		stream_add(out, in->data + pos + 9 + kl + skip, nvl);
		pos += 9 + kl + vl;
	}
	stream_add(out, in->data + pos, in->len - pos);
	reseal(out);
}

/* A value damaged inside a stream whose own checksum is right (damaged before it was summed)
 * is still caught by the value's CRC; a version 1 stream installs with CRCs computed. */
START_TEST(test_stream_values_checked)
{
	struct fx a, b;
	fx_open(&a);
	fx_open(&b);
	fill(&a, 2, 20, "a");
	ck_assert_int_eq(fx_put(&a, 2, "v", "stream-victim-0123456789"), KV_OK);
	struct stream st = {0};
	take(&a, 2, &st);
	uint8_t *p = memmem(st.data, st.len, "stream-victim-0123456789", 24);
	ck_assert_ptr_nonnull(p);
	p[10] ^= 0x01;
	reseal(&st);
	restore_all(&b, 2, &st, 100, KV_ECORRUPT);
	ck_assert_uint_eq(fx_applied(&b, 2), 0);
	p[10] ^= 0x01;
	reseal(&st);
	struct stream v1 = {0};
	to_version(&st, &v1, 1);
	ck_assert_uint_eq(v1.len, st.len - 21 * 12);
	struct stream v2 = {0};
	to_version(&st, &v2, 2);
	ck_assert_uint_eq(v2.len, st.len - 21 * 8);
	restore_all(&b, 2, &v2, 100, KV_OK);
	fx_expect(&b, 2, "v", "stream-victim-0123456789");
	/* a version 2 stream's CRC is checked too */
	uint8_t *q = memmem(v2.data, v2.len, "stream-victim-0123456789", 24);
	ck_assert_ptr_nonnull(q);
	q[3] ^= 0x01;
	reseal(&v2);
	restore_all(&b, 2, &v2, 100, KV_ECORRUPT);
	free(v2.data);
	restore_all(&b, 2, &v1, 100, KV_OK);
	uint8_t da[KV_DIGEST_BYTES], db[KV_DIGEST_BYTES];
	ck_assert_int_eq(kv_digest(a.kv, 2, da, NULL), KV_OK);
	ck_assert_int_eq(kv_digest(b.kv, 2, db, NULL), KV_OK);
	ck_assert(memcmp(da, db, sizeof da) == 0);
	fx_expect(&b, 2, "v", "stream-victim-0123456789");
	/* And what it installed is checksummed like everything else. */
	struct kv_scrub_cursor cur;
	kv_scrub_cursor_init(&cur);
	uint32_t checked;
	bool done;
	ck_assert_int_eq(kv_scrub_step(b.kv, 2, &cur, 0, &checked, &done), KV_OK);
	ck_assert_uint_eq(checked, 21);
	ck_assert(done);
	free(st.data);
	free(v1.data);
	fx_close(&a);
	fx_close(&b);
}
END_TEST

Suite *snapshot_suite(void)
{
	Suite *s = suite_create("kv_snapshot");
	TCase *tc = tcase_create("snapshot");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_snapshot_restore_while_writing);
	tcase_add_test(tc, test_bad_streams_change_nothing);
	tcase_add_test(tc, test_empty_group_round_trip);
	tcase_add_test(tc, test_stream_values_checked);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(snapshot_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
