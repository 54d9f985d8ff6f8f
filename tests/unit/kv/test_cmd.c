/* test_cmd.c — the command encoding: every op round-trips; decoding refuses every truncation,
 * trailing bytes, unknown ops and versions, fields that do not belong to the op, bad key
 * lengths and session fields, so a damaged entry can never reach LMDB as a command.
 */
#include "kv_fixture.h"

static void round_trip(const struct kv_cmd *c)
{
	struct raft_buf b;
	ck_assert_int_eq(kv_cmd_encode(NULL, c, &b), KV_OK);
	struct kv_cmd d;
	ck_assert_int_eq(kv_cmd_decode(b.base, b.len, &d), KV_OK);
	ck_assert_uint_eq(d.op, c->op);
	ck_assert_uint_eq(d.client_id, c->client_id);
	ck_assert_uint_eq(d.seq, c->seq);
	ck_assert_uint_eq(d.key_len, c->key_len);
	ck_assert_uint_eq(d.value_len, c->value_len);
	ck_assert_uint_eq(d.expected_len, c->expected_len);
	ck_assert_int_eq(d.expect_absent, c->expect_absent);
	ck_assert(c->key_len == 0 || memcmp(d.key, c->key, c->key_len) == 0);
	ck_assert(c->value_len == 0 || memcmp(d.value, c->value, c->value_len) == 0);
	ck_assert(c->expected_len == 0 || memcmp(d.expected, c->expected, c->expected_len) == 0);
	/* Every strict prefix and one byte more are refused. */
	for (size_t n = 0; n < b.len; n++)
		ck_assert_int_eq(kv_cmd_decode(b.base, n, &d), KV_EINVAL);
	uint8_t *longer = malloc(b.len + 1);
	memcpy(longer, b.base, b.len);
	longer[b.len] = 0;
	ck_assert_int_eq(kv_cmd_decode(longer, b.len + 1, &d), KV_EINVAL);
	free(longer);
	free(b.base);
}

START_TEST(test_round_trips)
{
	struct kv_cmd put = {.op = KV_OP_PUT,
			     .client_id = 1ull << 60,
			     .seq = 12345,
			     .key = "key",
			     .key_len = 3,
			     .value = "value",
			     .value_len = 5};
	round_trip(&put);
	struct kv_cmd del = {.op = KV_OP_DELETE, .key = "key", .key_len = 3};
	round_trip(&del);
	struct kv_cmd cas = {.op = KV_OP_CAS,
			     .client_id = 9,
			     .seq = 1,
			     .key = "k",
			     .key_len = 1,
			     .value = "new",
			     .value_len = 3,
			     .expected = "old",
			     .expected_len = 3};
	round_trip(&cas);
	struct kv_cmd absent = {.op = KV_OP_CAS,
				.key = "k",
				.key_len = 1,
				.value = "",
				.value_len = 0,
				.expect_absent = true};
	round_trip(&absent);
	struct kv_cmd noop = {.op = KV_OP_NOOP, .client_id = 4, .seq = 4};
	round_trip(&noop);
}
END_TEST

START_TEST(test_refusals)
{
	struct raft_buf b;
	struct kv_cmd bad[] = {
		{.op = 0, .key = "k", .key_len = 1},
		{.op = 9, .key = "k", .key_len = 1},
		{.op = KV_OP_PUT, .key = "k", .key_len = 1, .expect_absent = true},
		{.op = KV_OP_PUT, .key = "k", .key_len = 1, .expected = "e", .expected_len = 1},
		{.op = KV_OP_DELETE, .key = "k", .key_len = 1, .value = "v", .value_len = 1},
		{.op = KV_OP_CAS,
		 .key = "k",
		 .key_len = 1,
		 .expected = "e",
		 .expected_len = 1,
		 .expect_absent = true},
		{.op = KV_OP_NOOP, .key = "k", .key_len = 1},
		{.op = KV_OP_PUT, .key = NULL, .key_len = 1},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_int_eq(kv_cmd_encode(NULL, &bad[i], &b), KV_EINVAL);
	/* Half a session (an id without a seq, or the reverse) is encoded as no session. */
	struct kv_cmd half = {.op = KV_OP_PUT, .key = "k", .key_len = 1, .client_id = 5};
	struct kv_cmd d;
	ck_assert_int_eq(kv_cmd_encode(NULL, &half, &b), KV_OK);
	ck_assert_int_eq(kv_cmd_decode(b.base, b.len, &d), KV_OK);
	ck_assert_uint_eq(d.client_id, 0);
	ck_assert_uint_eq(d.seq, 0);
	/* ... and the format itself refuses it. */
	((uint8_t *)b.base)[3] = 1;
	ck_assert_int_eq(kv_cmd_decode(b.base, b.len, &d), KV_EINVAL);
	free(b.base);
	half.client_id = 0;
	half.seq = 5;
	ck_assert_int_eq(kv_cmd_encode(NULL, &half, &b), KV_OK);
	ck_assert_int_eq(kv_cmd_decode(b.base, b.len, &d), KV_OK);
	ck_assert_uint_eq(d.seq, 0);
	free(b.base);
	/* Hand-damaged encodings: version, flags, reserved bytes, a key length over the limit. */
	struct kv_cmd put = {
		.op = KV_OP_PUT, .key = "key", .key_len = 3, .value = "v", .value_len = 1};
	ck_assert_int_eq(kv_cmd_encode(NULL, &put, &b), KV_OK);
	uint8_t *p = b.base;
	const size_t pos[] = {0, 1, 2, 29, 30};
	for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++) {
		p[pos[i]] ^= 0x40;
		ck_assert_int_eq(kv_cmd_decode(p, b.len, &d), KV_EINVAL);
		p[pos[i]] ^= 0x40;
	}
	ck_assert_int_eq(kv_cmd_decode(p, b.len, &d), KV_OK);
	ck_assert_int_eq(kv_cmd_decode(NULL, 0, &d), KV_EINVAL);
	free(b.base);
	size_t big = KV_KEY_MAX + 1;
	uint8_t *raw = calloc(1, 31 + big);
	raw[0] = 1;
	raw[1] = KV_OP_DELETE;
	raw[19] = (uint8_t)big;
	raw[20] = (uint8_t)(big >> 8);
	ck_assert_int_eq(kv_cmd_decode(raw, 31 + big, &d), KV_EINVAL);
	raw[19] = 1;
	raw[20] = 0;
	ck_assert_int_eq(kv_cmd_decode(raw, 31 + 1, &d), KV_OK);
	/* A value length near 4 GiB must not wrap the length check. */
	raw[1] = KV_OP_PUT;
	raw[21] = raw[22] = raw[23] = raw[24] = 0xff;
	ck_assert_int_eq(kv_cmd_decode(raw, 31 + 1, &d), KV_EINVAL);
	free(raw);
}
END_TEST

Suite *cmd_suite(void)
{
	Suite *s = suite_create("kv_cmd");
	TCase *tc = tcase_create("cmd");
	tcase_add_test(tc, test_round_trips);
	tcase_add_test(tc, test_refusals);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(cmd_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
