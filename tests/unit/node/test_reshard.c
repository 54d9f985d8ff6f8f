/* test_reshard.c — the ring change record of the meta group (node/reshard.c): it packs and
 * unpacks unchanged; a stored record that does not match its own id sets, names a bad state
 * or ended both ways is refused; no record means the bootstrap ring; the compare-and-set
 * that stores a change takes the first change from the bootstrap ring, steps of the stored
 * change and a next change once it is final, refuses the rest, and loses to a racing writer.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "node/node_err.h"
#include "node/reshard.h"
#include "proto/kv.pb-c.h"
#include "tests/unit/kv/kv_fixture.h"

#define META   9
#define VNODES 16 /* few ranges: a record stays small */

static const uint32_t ids8[8] = {1, 2, 3, 4, 5, 6, 7, 8};
static const uint32_t ids8_10[9] = {1, 2, 3, 4, 5, 6, 7, 8, 10};

static struct kv_reshard *grow(uint64_t from_epoch, uint64_t to_epoch)
{
	struct kv_reshard *r;
	ck_assert_int_eq(kv_reshard_plan(ids8, 8, from_epoch, ids8_10, 9, to_epoch, VNODES, &r), 0);
	return r;
}

/* Steps range i from PLANNED to s along the forward path. */
static void drive_to(struct kv_reshard *r, size_t i, enum kv_reshard_state s)
{
	for (int st = KV_RESHARD_FENCED; st <= (int)s; st++)
		ck_assert_int_eq(kv_reshard_step(r, i, (enum kv_reshard_state)st), 0);
}

static void assert_same(const struct kv_reshard *a, const struct kv_reshard *b)
{
	ck_assert_uint_eq(a->n_ranges, b->n_ranges);
	ck_assert_uint_eq(kv_ring_epoch(a->from), kv_ring_epoch(b->from));
	ck_assert_uint_eq(kv_ring_epoch(a->to), kv_ring_epoch(b->to));
	ck_assert_uint_eq(kv_ring_groups(a->to), kv_ring_groups(b->to));
	for (size_t i = 0; i < a->n_ranges; i++) {
		const struct kv_reshard_range *x = &a->ranges[i], *y = &b->ranges[i];
		ck_assert(x->lo == y->lo && x->hi == y->hi && x->from == y->from && x->to == y->to);
		ck_assert_int_eq(x->state, y->state);
	}
}

START_TEST(test_roundtrip)
{
	struct kv_reshard *r = grow(1, 2), *back;
	ck_assert_int_eq(kv_reshard_step(r, 0, KV_RESHARD_FENCED), 0);
	ck_assert_int_eq(kv_reshard_step(r, 1, KV_RESHARD_ROLLED_BACK), 0);
	uint8_t *buf;
	size_t len;
	ck_assert_int_eq(node_reshard_encode(r, &buf, &len), 0);
	ck_assert_int_eq(node_reshard_decode(buf, len, &back), 0);
	assert_same(r, back);
	ck_assert_int_eq(back->ranges[1].state, KV_RESHARD_ROLLED_BACK);
	free(buf);
	kv_reshard_free(back);
	kv_reshard_free(r);
}
END_TEST

/* Packs a RingChange made from r, after `edit` has changed it. */
static void pack_edited(const struct kv_reshard *r, void (*edit)(Ringraft__Kv__RingChange *),
			uint8_t **buf, size_t *len)
{
	uint8_t *orig;
	size_t olen;
	ck_assert_int_eq(node_reshard_encode(r, &orig, &olen), 0);
	Ringraft__Kv__RingChange *rc = ringraft__kv__ring_change__unpack(NULL, olen, orig);
	ck_assert_ptr_nonnull(rc);
	edit(rc);
	*len = ringraft__kv__ring_change__get_packed_size(rc);
	*buf = malloc(*len + 1);
	ringraft__kv__ring_change__pack(rc, *buf);
	ringraft__kv__ring_change__free_unpacked(rc, NULL);
	free(orig);
}

static void edit_lo(Ringraft__Kv__RingChange *rc)
{
	rc->ranges[0]->lo++;
}
static void edit_to(Ringraft__Kv__RingChange *rc)
{
	rc->ranges[0]->to = 3;
}
static void edit_state0(Ringraft__Kv__RingChange *rc)
{
	rc->ranges[0]->state = 0;
}
static void edit_state6(Ringraft__Kv__RingChange *rc)
{
	rc->ranges[0]->state = 6;
}
static void edit_both_ways(Ringraft__Kv__RingChange *rc)
{
	rc->ranges[0]->state = KV_RESHARD_DONE;
	rc->ranges[1]->state = KV_RESHARD_ROLLED_BACK;
}
static void edit_drop_range(Ringraft__Kv__RingChange *rc)
{
	rc->n_ranges--;
	ringraft__kv__ring_range__free_unpacked(rc->ranges[rc->n_ranges], NULL);
}
static void edit_vnodes(Ringraft__Kv__RingChange *rc)
{
	rc->vnodes = 0;
}
static void edit_epochs(Ringraft__Kv__RingChange *rc)
{
	rc->to_epoch = rc->from_epoch;
}
static void edit_big_id(Ringraft__Kv__RingChange *rc)
{
	rc->to_ids[rc->n_to_ids - 1] = KV_GROUPS_MAX + 1;
}

START_TEST(test_decode_refuses)
{
	struct kv_reshard *r = grow(1, 2), *out = (struct kv_reshard *)1;
	ck_assert_uint_ge(r->n_ranges, 2);
	const uint8_t garbage[5] = {0xff, 0xff, 0xff, 0xff, 0xff};
	ck_assert_int_eq(node_reshard_decode(garbage, sizeof garbage, &out), NODE_EMALFORMED);
	ck_assert_ptr_null(out);
	void (*edits[])(Ringraft__Kv__RingChange *) = {edit_lo,     edit_to,        edit_state0,
						       edit_state6, edit_both_ways, edit_drop_range,
						       edit_vnodes, edit_epochs,    edit_big_id};
	for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
		uint8_t *buf;
		size_t len;
		pack_edited(r, edits[i], &buf, &len);
		ck_assert_msg(node_reshard_decode(buf, len, &out) == NODE_EMALFORMED,
			      "edit %zu accepted", i);
		ck_assert_ptr_null(out);
		free(buf);
	}
	kv_reshard_free(r);
}
END_TEST

/* Builds and applies the command storing next; returns the command's result code (KV_OK,
 * KV_CAS_MISMATCH) or, when the command was refused, the node error. */
static int store(struct fx *f, const struct kv_ring *boot, const struct kv_reshard *next)
{
	struct kv_cmd c;
	uint8_t *value;
	void *old;
	const char *why;
	int rc = node_reshard_cmd(f->kv, META, boot, next, &c, &value, &old, &why);
	if (rc != NODE_OK) {
		ck_assert_ptr_nonnull(why);
		ck_assert_ptr_null(value);
		ck_assert_ptr_null(old);
		return rc;
	}
	struct fx_res res;
	ck_assert_int_eq(fx_apply_cmd(f, META, &c, &res), KV_OK);
	free(value);
	free(old);
	return res.res.code;
}

START_TEST(test_store_and_load)
{
	struct fx f;
	fx_open(&f);
	struct kv_ring *boot = kv_ring_new(8, VNODES, 1);
	struct kv_reshard *loaded = (struct kv_reshard *)1;
	ck_assert_int_eq(node_reshard_load(f.kv, META, &loaded), 0);
	ck_assert_ptr_null(loaded); /* never changed: the bootstrap ring */

	/* Not from the ring in effect: refused, nothing stored. */
	struct kv_reshard *wrong = grow(5, 6);
	ck_assert_int_eq(store(&f, boot, wrong), NODE_EINVAL);
	ck_assert_int_eq(node_reshard_load(f.kv, META, &loaded), 0);
	ck_assert_ptr_null(loaded);

	/* The first change. */
	struct kv_reshard *r = grow(1, 2);
	ck_assert_int_eq(store(&f, boot, r), KV_OK);
	ck_assert_int_eq(node_reshard_load(f.kv, META, &loaded), 0);
	ck_assert_ptr_nonnull(loaded);
	assert_same(r, loaded);
	kv_reshard_free(loaded);

	/* Two writers read the same record; each steps a different range. The first wins; the
	 * second's compare-and-set finds the record changed under it. */
	struct kv_cmd c1, c2;
	uint8_t *v1, *v2;
	void *o1, *o2;
	const char *why;
	struct kv_reshard *a = grow(1, 2), *b = grow(1, 2);
	ck_assert_int_eq(kv_reshard_step(a, 0, KV_RESHARD_FENCED), 0);
	ck_assert_int_eq(kv_reshard_step(b, 1, KV_RESHARD_FENCED), 0);
	ck_assert_int_eq(node_reshard_cmd(f.kv, META, boot, a, &c1, &v1, &o1, &why), 0);
	ck_assert_int_eq(node_reshard_cmd(f.kv, META, boot, b, &c2, &v2, &o2, &why), 0);
	struct fx_res res;
	ck_assert_int_eq(fx_apply_cmd(&f, META, &c1, &res), KV_OK);
	ck_assert_int_eq(res.res.code, KV_OK);
	ck_assert_int_eq(fx_apply_cmd(&f, META, &c2, &res), KV_OK);
	ck_assert_int_eq(res.res.code, KV_CAS_MISMATCH);
	free(v1), free(v2), free(o1), free(o2);
	ck_assert_int_eq(node_reshard_load(f.kv, META, &loaded), 0);
	assert_same(a, loaded);
	kv_reshard_free(loaded);

	/* Illegal steps of the stored change, and a new change while it moves: refused. */
	struct kv_reshard *bad = grow(1, 2);
	ck_assert_int_eq(kv_reshard_step(bad, 0, KV_RESHARD_FENCED), 0);
	ck_assert_int_eq(kv_reshard_step(bad, 0, KV_RESHARD_INGESTED), 0);
	ck_assert_int_eq(kv_reshard_step(bad, 0, KV_RESHARD_DONE), 0);
	bad->ranges[1].state = KV_RESHARD_ROLLED_BACK; /* ends it both ways */
	ck_assert_int_eq(store(&f, boot, bad), NODE_EINVAL);
	struct kv_reshard *skip = grow(1, 2);
	skip->ranges[2].state = KV_RESHARD_INGESTED; /* PLANNED -> INGESTED skips the fence */
	ck_assert_int_eq(store(&f, boot, skip), NODE_EINVAL);
	struct kv_reshard *back_to_planned = grow(1, 2); /* range 0 is FENCED when stored */
	ck_assert_int_eq(store(&f, boot, back_to_planned), NODE_EINVAL);
	struct kv_reshard *next;
	ck_assert_int_eq(kv_reshard_plan(ids8_10, 9, 2, ids8, 8, 3, VNODES, &next), 0);
	ck_assert_int_eq(store(&f, boot, next), NODE_EINVAL);

	/* Two steps of a range in one write: refused (the record follows what happened). */
	struct kv_reshard *jump = grow(1, 2);
	for (size_t i = 0; i < jump->n_ranges; i++)
		drive_to(jump, i, KV_RESHARD_INGESTED);
	ck_assert_int_eq(store(&f, boot, jump), NODE_EINVAL);
	kv_reshard_free(jump);

	/* Every range to DONE, one step per write (all ranges at once), then the next change
	 * is taken. */
	static const enum kv_reshard_state path[] = {KV_RESHARD_FENCED, KV_RESHARD_INGESTED,
						     KV_RESHARD_DONE};
	for (size_t k = 0; k < 3; k++) {
		for (size_t i = 0; i < a->n_ranges; i++)
			ck_assert_int_eq(kv_reshard_step(a, i, path[k]), 0);
		ck_assert_int_eq(store(&f, boot, a), KV_OK);
	}
	ck_assert_int_eq(kv_reshard_outcome(a), KV_RESHARD_COMPLETE);
	ck_assert_int_eq(store(&f, boot, a), KV_OK); /* a repeat changes nothing */
	ck_assert_int_eq(store(&f, boot, next), KV_OK);
	ck_assert_int_eq(node_reshard_load(f.kv, META, &loaded), 0);
	assert_same(next, loaded);
	kv_reshard_free(loaded);

	/* A stored record that does not check out is reported, never used. */
	struct kv_cmd junk = {.op = KV_OP_PUT,
			      .key = NODE_RESHARD_KEY,
			      .key_len = NODE_RESHARD_KEY_LEN,
			      .value = "\xff\xff\xff",
			      .value_len = 3};
	ck_assert_int_eq(fx_apply_cmd(&f, META, &junk, &res), KV_OK);
	ck_assert_int_eq(node_reshard_load(f.kv, META, &loaded), NODE_EMALFORMED);
	ck_assert_ptr_null(loaded);
	ck_assert_int_eq(store(&f, boot, next), NODE_EMALFORMED);

	kv_reshard_free(next);
	kv_reshard_free(back_to_planned);
	kv_reshard_free(skip);
	kv_reshard_free(bad);
	kv_reshard_free(a);
	kv_reshard_free(b);
	kv_reshard_free(r);
	kv_reshard_free(wrong);
	kv_ring_free(boot);
	fx_close(&f);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("node_reshard");
	TCase *tc = tcase_create("reshard");
	tcase_add_test(tc, test_roundtrip);
	tcase_add_test(tc, test_decode_refuses);
	tcase_add_test(tc, test_store_and_load);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
