/* test_proto.c — the wire schema round-trips: what a node packs, a peer unpacks unchanged.
 * Also checks that a truncated or garbage buffer is refused rather than misread. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "proto/kv.pb-c.h"
#include "proto/raft.pb-c.h"

START_TEST(test_request_roundtrip)
{
	Ringraft__Kv__Request req = RINGRAFT__KV__REQUEST__INIT;
	req.id = 42;
	req.client_id = 7;
	req.seq = 9;
	req.op = RINGRAFT__KV__OP__CAS;
	req.key.data = (uint8_t *)"k1";
	req.key.len = 2;
	req.expected.data = (uint8_t *)"old";
	req.expected.len = 3;
	req.value.data = (uint8_t *)"new";
	req.value.len = 3;

	size_t n = ringraft__kv__request__get_packed_size(&req);
	uint8_t *buf = malloc(n);
	ck_assert_uint_eq(ringraft__kv__request__pack(&req, buf), n);
	Ringraft__Kv__Request *got = ringraft__kv__request__unpack(NULL, n, buf);
	ck_assert_ptr_nonnull(got);
	ck_assert_uint_eq(got->id, 42);
	ck_assert_uint_eq(got->seq, 9);
	ck_assert_int_eq(got->op, RINGRAFT__KV__OP__CAS);
	ck_assert_mem_eq(got->key.data, "k1", 2);
	ck_assert_mem_eq(got->expected.data, "old", 3);
	ringraft__kv__request__free_unpacked(got, NULL);

	/* A buffer cut in the middle of the key is refused. */
	ck_assert_ptr_null(ringraft__kv__request__unpack(NULL, n - 4, buf));
	free(buf);
}
END_TEST

START_TEST(test_peer_frame_roundtrip)
{
	Ringraft__Raft__Entry e = RINGRAFT__RAFT__ENTRY__INIT;
	Ringraft__Raft__Entry *ents[1] = {&e};
	e.term = 3;
	e.index = 17;
	e.data.data = (uint8_t *)"cmd";
	e.data.len = 3;
	Ringraft__Raft__Message m = RINGRAFT__RAFT__MESSAGE__INIT;
	Ringraft__Raft__Message *msgs[1] = {&m};
	m.group = 5;
	m.type = 1;
	m.term = 3;
	m.n_entries = 1;
	m.entries = ents;
	Ringraft__Raft__PeerFrame f = RINGRAFT__RAFT__PEER_FRAME__INIT;
	f.n_msgs = 1;
	f.msgs = msgs;

	size_t n = ringraft__raft__peer_frame__get_packed_size(&f);
	uint8_t *buf = malloc(n);
	ringraft__raft__peer_frame__pack(&f, buf);
	Ringraft__Raft__PeerFrame *got = ringraft__raft__peer_frame__unpack(NULL, n, buf);
	ck_assert_ptr_nonnull(got);
	ck_assert_uint_eq(got->n_msgs, 1);
	ck_assert_uint_eq(got->msgs[0]->group, 5);
	ck_assert_uint_eq(got->msgs[0]->n_entries, 1);
	ck_assert_uint_eq(got->msgs[0]->entries[0]->index, 17);
	ck_assert_mem_eq(got->msgs[0]->entries[0]->data.data, "cmd", 3);
	ringraft__raft__peer_frame__free_unpacked(got, NULL);
	free(buf);

	/* Garbage is refused (field 1 of wire type 7 does not exist). */
	uint8_t junk[] = {0x0f, 0xff, 0xff, 0xff};
	ck_assert_ptr_null(ringraft__raft__peer_frame__unpack(NULL, sizeof junk, junk));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("proto");
	TCase *tc = tcase_create("roundtrip");
	tcase_add_test(tc, test_request_roundtrip);
	tcase_add_test(tc, test_peer_frame_roundtrip);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
