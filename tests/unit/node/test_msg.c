/* test_msg.c — raft_message <-> wire Message: every field survives a pack/unpack round trip
 * (entries, snapshot chunk and configuration included); malformed input is refused. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "node/msg.h"

static struct raft_message roundtrip(const struct raft_message *in, struct node_msg_scratch *s,
				     Ringraft__Raft__Message **keep)
{
	Ringraft__Raft__Message pb;
	Ringraft__Raft__Configuration conf;
	ck_assert_int_eq(node_msg_to_pb(7, in, s, &pb, &conf), 0);
	size_t n = ringraft__raft__message__get_packed_size(&pb);
	uint8_t *buf = malloc(n + 1);
	ringraft__raft__message__pack(&pb, buf);
	*keep = ringraft__raft__message__unpack(NULL, n, buf);
	free(buf);
	ck_assert_ptr_nonnull(*keep);
	ck_assert_uint_eq((*keep)->group, 7);
	struct raft_message out;
	ck_assert_int_eq(node_msg_from_pb(*keep, s, &out), 0);
	return out;
}

START_TEST(test_append_roundtrip)
{
	struct raft_entry es[3] = {
		{.term = 4, .index = 10, .type = RAFT_ENTRY_NORMAL, .data = {"abc", 3}},
		{.term = 4, .index = 11, .type = RAFT_ENTRY_NORMAL, .data = {NULL, 0}},
		{.term = 5, .index = 12, .type = RAFT_ENTRY_CONF, .data = {"x", 1}},
	};
	struct raft_message m = {.type = RAFT_MSG_APPEND,
				 .from = 1,
				 .to = 2,
				 .term = 5,
				 .log_term = 4,
				 .index = 9,
				 .commit = 8,
				 .entries = es,
				 .n_entries = 3,
				 .context = 99};
	struct node_msg_scratch s = {0};
	Ringraft__Raft__Message *pb;
	struct raft_message out = roundtrip(&m, &s, &pb);
	ck_assert_uint_eq(out.type, RAFT_MSG_APPEND);
	ck_assert_uint_eq(out.from, 1);
	ck_assert_uint_eq(out.to, 2);
	ck_assert_uint_eq(out.term, 5);
	ck_assert_uint_eq(out.log_term, 4);
	ck_assert_uint_eq(out.index, 9);
	ck_assert_uint_eq(out.commit, 8);
	ck_assert_uint_eq(out.context, 99);
	ck_assert_uint_eq(out.n_entries, 3);
	for (int i = 0; i < 3; i++) {
		ck_assert_uint_eq(out.entries[i].term, es[i].term);
		ck_assert_uint_eq(out.entries[i].index, es[i].index);
		ck_assert_uint_eq(out.entries[i].type, es[i].type);
		ck_assert_uint_eq(out.entries[i].data.len, es[i].data.len);
		if (es[i].data.len)
			ck_assert(memcmp(out.entries[i].data.base, es[i].data.base,
					 es[i].data.len) == 0);
	}
	ringraft__raft__message__free_unpacked(pb, NULL);
	node_msg_scratch_free(&s);
}
END_TEST

START_TEST(test_snapshot_and_reject_roundtrip)
{
	struct raft_message m = {.type = RAFT_MSG_SNAPSHOT,
				 .from = 3,
				 .to = 1,
				 .term = 9,
				 .snap_index = 100,
				 .snap_term = 8,
				 .snap_offset = 4096,
				 .snap_data = {"chunk", 5},
				 .snap_done = true};
	m.snap_conf.voters[0] = 1;
	m.snap_conf.voters[1] = 2;
	m.snap_conf.voters[2] = 3;
	m.snap_conf.n_voters = 3;
	m.snap_conf.learners[0] = 4;
	m.snap_conf.n_learners = 1;
	struct node_msg_scratch s = {0};
	Ringraft__Raft__Message *pb;
	struct raft_message out = roundtrip(&m, &s, &pb);
	ck_assert_uint_eq(out.snap_index, 100);
	ck_assert_uint_eq(out.snap_term, 8);
	ck_assert_uint_eq(out.snap_offset, 4096);
	ck_assert(out.snap_done);
	ck_assert_uint_eq(out.snap_data.len, 5);
	ck_assert(memcmp(out.snap_data.base, "chunk", 5) == 0);
	ck_assert_uint_eq(out.snap_conf.n_voters, 3);
	ck_assert_uint_eq(out.snap_conf.voters[2], 3);
	ck_assert_uint_eq(out.snap_conf.n_learners, 1);
	ck_assert_uint_eq(out.snap_conf.learners[0], 4);
	ringraft__raft__message__free_unpacked(pb, NULL);

	struct raft_message r = {.type = RAFT_MSG_APPEND_RESP,
				 .from = 2,
				 .to = 1,
				 .term = 3,
				 .index = 5,
				 .reject = true,
				 .hint_index = 4,
				 .hint_term = 2};
	out = roundtrip(&r, &s, &pb);
	ck_assert(out.reject);
	ck_assert_uint_eq(out.hint_index, 4);
	ck_assert_uint_eq(out.hint_term, 2);
	ringraft__raft__message__free_unpacked(pb, NULL);
	node_msg_scratch_free(&s);
}
END_TEST

START_TEST(test_malformed_refused)
{
	Ringraft__Raft__Message pb = RINGRAFT__RAFT__MESSAGE__INIT;
	Ringraft__Raft__Configuration conf = RINGRAFT__RAFT__CONFIGURATION__INIT;
	uint64_t many[RAFT_NODES_MAX + 1] = {0};
	conf.voters = many;
	conf.n_voters = RAFT_NODES_MAX + 1;
	pb.snap_conf = &conf;
	struct node_msg_scratch s = {0};
	struct raft_message out;
	ck_assert_int_eq(node_msg_from_pb(&pb, &s, &out), NODE_EMALFORMED);
	/* node 0, or a node twice (as voter and learner too): the core would send a vote to
	 * node 0 (an assertion: tests/fuzz/fuzz_peer, corpus regress-snapshot-conf-node-0) or
	 * count a voter twice */
	uint64_t zero[] = {1, 0, 3}, twice[] = {1, 2, 2}, learner[] = {3};
	conf.voters = zero;
	conf.n_voters = 3;
	ck_assert_int_eq(node_msg_from_pb(&pb, &s, &out), NODE_EMALFORMED);
	conf.voters = twice;
	ck_assert_int_eq(node_msg_from_pb(&pb, &s, &out), NODE_EMALFORMED);
	zero[1] = 2;
	conf.voters = zero;
	conf.learners = learner;
	conf.n_learners = 1;
	ck_assert_int_eq(node_msg_from_pb(&pb, &s, &out), NODE_EMALFORMED);
	learner[0] = 4;
	ck_assert_int_eq(node_msg_from_pb(&pb, &s, &out), 0);
	ck_assert_uint_eq(out.snap_conf.n_voters, 3);
	ck_assert_uint_eq(out.snap_conf.learners[0], 4);
	pb.snap_conf = NULL;
	pb.n_entries = RAFT_MSG_ENTRIES_MAX + 1;
	ck_assert_int_eq(node_msg_from_pb(&pb, &s, &out), NODE_EMALFORMED);
	node_msg_scratch_free(&s);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("node_msg");
	TCase *tc = tcase_create("msg");
	tcase_add_test(tc, test_append_roundtrip);
	tcase_add_test(tc, test_snapshot_and_reject_roundtrip);
	tcase_add_test(tc, test_malformed_refused);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
