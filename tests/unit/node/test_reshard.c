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

/* The change 1..8 -> 1..8 + 10 (id 10 placed on nodes 1, 2, 3), every range PLANNED. */
static struct node_reshard *grow(uint64_t from_epoch, uint64_t to_epoch)
{
	struct node_reshard *r = calloc(1, sizeof *r);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(
		kv_reshard_plan(ids8, 8, from_epoch, ids8_10, 9, to_epoch, VNODES, &r->change), 0);
	r->id_high = 10;
	r->n_places = 1;
	r->places[0] =
		(struct node_reshard_place){.group = 10, .n_replicas = 3, .replicas = {1, 2, 3}};
	return r;
}

/* Steps range i from PLANNED to s along the forward path. */
static void drive_to(struct node_reshard *r, size_t i, enum kv_reshard_state s)
{
	for (int st = KV_RESHARD_FENCED; st <= (int)s; st++)
		ck_assert_int_eq(kv_reshard_step(r->change, i, (enum kv_reshard_state)st), 0);
}

static void assert_same(const struct node_reshard *na, const struct node_reshard *nb)
{
	const struct kv_reshard *a = na->change, *b = nb->change;
	ck_assert_uint_eq(na->id_high, nb->id_high);
	ck_assert_uint_eq(na->n_places, nb->n_places);
	for (size_t i = 0; i < na->n_places; i++) {
		ck_assert_uint_eq(na->places[i].group, nb->places[i].group);
		ck_assert_uint_eq(na->places[i].n_replicas, nb->places[i].n_replicas);
		for (uint32_t k = 0; k < na->places[i].n_replicas; k++)
			ck_assert_uint_eq(na->places[i].replicas[k], nb->places[i].replicas[k]);
	}
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

static bool same_places(const struct node_reshard *a, const struct node_reshard *b)
{
	if (a->n_places != b->n_places || a->id_high != b->id_high)
		return false;
	for (size_t i = 0; i < a->n_places; i++)
		if (a->places[i].group != b->places[i].group ||
		    a->places[i].n_replicas != b->places[i].n_replicas ||
		    memcmp(a->places[i].replicas, b->places[i].replicas,
			   a->places[i].n_replicas * sizeof(uint64_t)) != 0)
			return false;
	return true;
}

/* A copy of r through its encoding. */
static int node_reshard_decode_copy(const struct node_reshard *r, struct node_reshard **out)
{
	uint8_t *buf;
	size_t len;
	ck_assert_int_eq(node_reshard_encode(r, &buf, &len), 0);
	int rc = node_reshard_decode(buf, len, out);
	free(buf);
	return rc;
}

START_TEST(test_roundtrip)
{
	struct node_reshard *r = grow(1, 2), *back;
	ck_assert_int_eq(kv_reshard_step(r->change, 0, KV_RESHARD_FENCED), 0);
	ck_assert_int_eq(kv_reshard_step(r->change, 1, KV_RESHARD_ROLLED_BACK), 0);
	uint8_t *buf;
	size_t len;
	ck_assert_int_eq(node_reshard_encode(r, &buf, &len), 0);
	ck_assert_int_eq(node_reshard_decode(buf, len, &back), 0);
	assert_same(r, back);
	ck_assert_int_eq(back->change->ranges[1].state, KV_RESHARD_ROLLED_BACK);
	free(buf);
	node_reshard_free(back);
	node_reshard_free(r);
}
END_TEST

/* Packs a RingChange made from r, after `edit` has changed it. */
static void pack_edited(const struct node_reshard *r, void (*edit)(Ringraft__Kv__RingChange *),
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

static void edit_no_place(Ringraft__Kv__RingChange *rc)
{
	/* group 10 added with no replicas */
	for (size_t i = 0; i < rc->n_placements; i++)
		ringraft__kv__group_placement__free_unpacked(rc->placements[i], NULL);
	rc->n_placements = 0;
}
static void edit_place_other(Ringraft__Kv__RingChange *rc)
{
	rc->placements[0]->group = 3; /* a group of the old ring */
}
static void edit_place_dup(Ringraft__Kv__RingChange *rc)
{
	rc->placements[0]->replicas[1] = rc->placements[0]->replicas[0];
}
static void edit_place_zero(Ringraft__Kv__RingChange *rc)
{
	rc->placements[0]->replicas[2] = 0;
}
static void edit_place_empty(Ringraft__Kv__RingChange *rc)
{
	rc->placements[0]->n_replicas = 0;
}
static void edit_id_high(Ringraft__Kv__RingChange *rc)
{
	rc->id_high = 9; /* below id 10, which the record names */
}

START_TEST(test_decode_refuses)
{
	struct node_reshard *r = grow(1, 2), *out = (struct node_reshard *)1;
	ck_assert_uint_ge(r->change->n_ranges, 2);
	const uint8_t garbage[5] = {0xff, 0xff, 0xff, 0xff, 0xff};
	ck_assert_int_eq(node_reshard_decode(garbage, sizeof garbage, &out), NODE_EMALFORMED);
	ck_assert_ptr_null(out);
	void (*edits[])(Ringraft__Kv__RingChange *) = {
		edit_lo,          edit_to,        edit_state0,     edit_state6,      edit_both_ways,
		edit_drop_range,  edit_vnodes,    edit_epochs,     edit_big_id,      edit_no_place,
		edit_place_other, edit_place_dup, edit_place_zero, edit_place_empty, edit_id_high};
	for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
		uint8_t *buf;
		size_t len;
		pack_edited(r, edits[i], &buf, &len);
		ck_assert_msg(node_reshard_decode(buf, len, &out) == NODE_EMALFORMED,
			      "edit %zu accepted", i);
		ck_assert_ptr_null(out);
		free(buf);
	}
	node_reshard_free(r);
}
END_TEST

/* Builds and applies the command storing next; returns the command's result code (KV_OK,
 * KV_CAS_MISMATCH) or, when the command was refused, the node error. */
static int store(struct fx *f, const struct kv_ring *boot, const struct node_reshard *next)
{
	struct kv_cmd c;
	uint8_t *value;
	void *old;
	const char *why;
	int rc = node_reshard_cmd(f->kv, META, next, boot, &c, &value, &old, &why);
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
	struct node_reshard *loaded = (struct node_reshard *)1;
	ck_assert_int_eq(node_reshard_load(f.kv, META, &loaded), 0);
	ck_assert_ptr_null(loaded); /* never changed: the bootstrap ring */

	/* Not from the ring in effect: refused, nothing stored. */
	struct node_reshard *wrong = grow(5, 6);
	ck_assert_int_eq(store(&f, boot, wrong), NODE_EINVAL);
	ck_assert_int_eq(node_reshard_load(f.kv, META, &loaded), 0);
	ck_assert_ptr_null(loaded);

	/* The first change. */
	struct node_reshard *r = grow(1, 2);
	ck_assert_int_eq(store(&f, boot, r), KV_OK);
	ck_assert_int_eq(node_reshard_load(f.kv, META, &loaded), 0);
	ck_assert_ptr_nonnull(loaded);
	assert_same(r, loaded);
	node_reshard_free(loaded);

	/* Two writers read the same record; each steps a different range. The first wins; the
	 * second's compare-and-set finds the record changed under it. */
	struct kv_cmd c1, c2;
	uint8_t *v1, *v2;
	void *o1, *o2;
	const char *why;
	struct node_reshard *a = grow(1, 2), *b = grow(1, 2);
	ck_assert_int_eq(kv_reshard_step(a->change, 0, KV_RESHARD_FENCED), 0);
	ck_assert_int_eq(kv_reshard_step(b->change, 1, KV_RESHARD_FENCED), 0);
	ck_assert_int_eq(node_reshard_cmd(f.kv, META, a, boot, &c1, &v1, &o1, &why), 0);
	ck_assert_int_eq(node_reshard_cmd(f.kv, META, b, boot, &c2, &v2, &o2, &why), 0);
	struct fx_res res;
	ck_assert_int_eq(fx_apply_cmd(&f, META, &c1, &res), KV_OK);
	ck_assert_int_eq(res.res.code, KV_OK);
	ck_assert_int_eq(fx_apply_cmd(&f, META, &c2, &res), KV_OK);
	ck_assert_int_eq(res.res.code, KV_CAS_MISMATCH);
	free(v1), free(v2), free(o1), free(o2);
	ck_assert_int_eq(node_reshard_load(f.kv, META, &loaded), 0);
	assert_same(a, loaded);
	node_reshard_free(loaded);

	/* Illegal steps of the stored change, and a new change while it moves: refused. */
	struct node_reshard *bad = grow(1, 2);
	ck_assert_int_eq(kv_reshard_step(bad->change, 0, KV_RESHARD_FENCED), 0);
	ck_assert_int_eq(kv_reshard_step(bad->change, 0, KV_RESHARD_INGESTED), 0);
	ck_assert_int_eq(kv_reshard_step(bad->change, 0, KV_RESHARD_DONE), 0);
	bad->change->ranges[1].state = KV_RESHARD_ROLLED_BACK; /* ends it both ways */
	ck_assert_int_eq(store(&f, boot, bad), NODE_EINVAL);
	struct node_reshard *skip = grow(1, 2);
	skip->change->ranges[2].state =
		KV_RESHARD_INGESTED; /* PLANNED -> INGESTED skips the fence */
	ck_assert_int_eq(store(&f, boot, skip), NODE_EINVAL);
	struct node_reshard *back_to_planned = grow(1, 2); /* range 0 is FENCED when stored */
	ck_assert_int_eq(store(&f, boot, back_to_planned), NODE_EINVAL);
	struct node_reshard *next = calloc(1, sizeof *next); /* then group 10 goes again */
	ck_assert_int_eq(kv_reshard_plan(ids8_10, 9, 2, ids8, 8, 3, VNODES, &next->change), 0);
	next->id_high = 10;
	ck_assert_int_eq(store(&f, boot, next), NODE_EINVAL);

	/* Two steps of a range in one write: refused (the record follows what happened). */
	struct node_reshard *jump = grow(1, 2);
	for (size_t i = 0; i < jump->change->n_ranges; i++)
		drive_to(jump, i, KV_RESHARD_INGESTED);
	ck_assert_int_eq(store(&f, boot, jump), NODE_EINVAL);
	node_reshard_free(jump);

	/* Every range to DONE, one step per write (all ranges at once), then the next change
	 * is taken. */
	static const enum kv_reshard_state path[] = {KV_RESHARD_FENCED, KV_RESHARD_INGESTED,
						     KV_RESHARD_DONE};
	for (size_t k = 0; k < 3; k++) {
		for (size_t i = 0; i < a->change->n_ranges; i++)
			ck_assert_int_eq(kv_reshard_step(a->change, i, path[k]), 0);
		ck_assert_int_eq(store(&f, boot, a), KV_OK);
	}
	ck_assert_int_eq(kv_reshard_outcome(a->change), KV_RESHARD_COMPLETE);
	ck_assert_int_eq(store(&f, boot, a), KV_OK); /* a repeat changes nothing */
	ck_assert_int_eq(store(&f, boot, next), KV_OK);
	ck_assert_int_eq(node_reshard_load(f.kv, META, &loaded), 0);
	assert_same(next, loaded);
	node_reshard_free(loaded);

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

	node_reshard_free(next);
	node_reshard_free(back_to_planned);
	node_reshard_free(skip);
	node_reshard_free(bad);
	node_reshard_free(a);
	node_reshard_free(b);
	node_reshard_free(r);
	node_reshard_free(wrong);
	kv_ring_free(boot);
	fx_close(&f);
}
END_TEST

/* A record written before id_high existed reads it as the highest id named. */
static void edit_no_id_high(Ringraft__Kv__RingChange *rc)
{
	rc->id_high = 0;
}

START_TEST(test_id_high_default)
{
	struct node_reshard *r = grow(1, 2), *back;
	uint8_t *buf;
	size_t len;
	pack_edited(r, edit_no_id_high, &buf, &len);
	ck_assert_int_eq(node_reshard_decode(buf, len, &back), 0);
	ck_assert_uint_eq(back->id_high, 10);
	free(buf);
	node_reshard_free(back);
	node_reshard_free(r);
}
END_TEST

static const uint64_t members5[5] = {1, 2, 3, 4, 5};

/* Adding: ids after the meta group's, replicas from kv_ring_place, the next epoch, all
 * PLANNED; the record stores and reads back; one change at a time; the id limit. */
START_TEST(test_plan_add)
{
	struct fx f;
	fx_open(&f);
	struct kv_ring *boot = kv_ring_new(8, VNODES, 1);
	struct node_reshard *r, *r2, *loaded;
	const char *why;
	ck_assert_int_eq(
		node_reshard_plan_add(NULL, boot, META, META + 32, 2, members5, 5, &r, &why), 0);
	ck_assert_uint_eq(r->n_places, 2);
	ck_assert_uint_eq(r->id_high, META + 2);
	for (size_t i = 0; i < 2; i++) {
		uint64_t want[3];
		ck_assert_uint_eq(r->places[i].group, META + 1 + i);
		ck_assert_uint_eq(kv_ring_place(META + 1 + (uint32_t)i, members5, 5, 3, want), 3);
		ck_assert_uint_eq(r->places[i].n_replicas, 3);
		ck_assert_mem_eq(r->places[i].replicas, want, sizeof want);
	}
	ck_assert_uint_eq(kv_ring_epoch(r->change->from), 1);
	ck_assert_uint_eq(kv_ring_epoch(r->change->to), 2);
	ck_assert(kv_ring_has(r->change->to, META + 1) && kv_ring_has(r->change->to, META + 2));
	ck_assert(!kv_ring_has(r->change->from, META + 1));
	ck_assert_uint_gt(r->change->n_ranges, 0);
	for (size_t i = 0; i < r->change->n_ranges; i++)
		ck_assert_int_eq(r->change->ranges[i].state, KV_RESHARD_PLANNED);
	ck_assert_int_eq(store(&f, boot, r), KV_OK);
	ck_assert_int_eq(node_reshard_load(f.kv, META, &loaded), 0);
	assert_same(r, loaded);
	/* while it moves, no other change */
	ck_assert_int_eq(
		node_reshard_plan_add(loaded, boot, META, META + 32, 1, members5, 5, &r2, &why),
		NODE_EINVAL);
	ck_assert_ptr_null(r2);
	ck_assert_ptr_nonnull(strstr(why, "under way"));
	/* bad counts, no members, no ids left */
	ck_assert_int_eq(
		node_reshard_plan_add(NULL, boot, META, META + 32, 0, members5, 5, &r2, &why),
		NODE_EINVAL);
	ck_assert_int_eq(
		node_reshard_plan_add(NULL, boot, META, META + 32, 33, members5, 5, &r2, &why),
		NODE_EINVAL);
	ck_assert_int_eq(
		node_reshard_plan_add(NULL, boot, META, META + 32, 1, members5, 0, &r2, &why),
		NODE_EINVAL);
	ck_assert_int_eq(
		node_reshard_plan_add(NULL, boot, META, META + 2, 3, members5, 5, &r2, &why),
		NODE_EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "no group ids left"));
	ck_assert_int_eq(
		node_reshard_plan_add(NULL, boot, META, META + 2, 2, members5, 5, &r2, &why), 0);
	node_reshard_free(r2);
	/* fewer members than replicas: every member */
	ck_assert_int_eq(
		node_reshard_plan_add(NULL, boot, META, META + 32, 1, members5, 2, &r2, &why), 0);
	ck_assert_uint_eq(r2->places[0].n_replicas, 2);
	node_reshard_free(r2);
	node_reshard_free(loaded);
	node_reshard_free(r);
	kv_ring_free(boot);
	fx_close(&f);
}
END_TEST

/* Removing: a group of the ring in effect moves its keys to the others (a plan of the ring
 * without it); a group a moving change adds rolls that change back while no copy is
 * complete; the rest is refused. After the rollback the id is retired and the next add takes
 * a new id and epoch. */
START_TEST(test_plan_remove)
{
	struct fx f;
	fx_open(&f);
	struct kv_ring *boot = kv_ring_new(8, VNODES, 1);
	struct node_reshard *r, *back, *loaded, *next;
	const char *why;
	/* nothing stored: the meta group, a bootstrap group, an unknown id */
	ck_assert_int_eq(node_reshard_plan_remove(NULL, boot, META, META, &back, &why),
			 NODE_EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "meta group"));
	ck_assert_int_eq(node_reshard_plan_remove(NULL, boot, META, 3, &back, &why), 0);
	{
		/* group 3's keys go to the others: the ring without 3, one epoch on, no
		 * placements, every moving range from 3, the ids used unchanged */
		ck_assert(!kv_ring_has(back->change->to, 3) && kv_ring_has(back->change->from, 3));
		ck_assert_uint_eq(kv_ring_epoch(back->change->to), 2);
		ck_assert_uint_eq(back->n_places, 0);
		ck_assert_uint_eq(back->id_high, META);
		ck_assert_uint_gt(back->change->n_ranges, 0);
		for (size_t i = 0; i < back->change->n_ranges; i++) {
			ck_assert_uint_eq(back->change->ranges[i].from, 3);
			ck_assert_uint_ne(back->change->ranges[i].to, 3);
			ck_assert_int_eq(back->change->ranges[i].state, KV_RESHARD_PLANNED);
		}
		ck_assert_int_eq(store(&f, boot, back), KV_OK); /* it follows the boot ring */
		node_reshard_free(back);
		/* a group alone in its ring cannot go */
		struct kv_ring *one = kv_ring_new(1, VNODES, 1);
		ck_assert_int_eq(node_reshard_plan_remove(NULL, one, META, 1, &back, &why),
				 NODE_EINVAL);
		ck_assert_ptr_nonnull(strstr(why, "only group"));
		kv_ring_free(one);
		fx_close(&f);
		fx_open(&f);
	}
	ck_assert_int_eq(node_reshard_plan_remove(NULL, boot, META, 50, &back, &why), NODE_EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "no such group"));

	ck_assert_int_eq(
		node_reshard_plan_add(NULL, boot, META, META + 32, 1, members5, 3, &r, &why), 0);
	ck_assert_int_eq(store(&f, boot, r), KV_OK);
	ck_assert_int_eq(node_reshard_load(f.kv, META, &loaded), 0);
	/* while it moves: a bootstrap group is refused, the added one rolls it back */
	ck_assert_int_eq(node_reshard_plan_remove(loaded, boot, META, 3, &back, &why), NODE_EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "under way"));
	ck_assert_int_eq(node_reshard_plan_remove(loaded, boot, META, META + 1, &back, &why), 0);
	ck_assert_int_eq(kv_reshard_outcome(back->change), KV_RESHARD_ABANDONED);
	ck_assert(same_places(r, back));
	/* while ranges are fenced (copies under way) it still rolls back; not once a copy is
	 * complete (its source may have released the range: only forward from there) */
	struct node_reshard *fenced;
	ck_assert_int_eq(node_reshard_decode_copy(loaded, &fenced), 0);
	ck_assert_int_eq(kv_reshard_step(fenced->change, 0, KV_RESHARD_FENCED), 0);
	ck_assert_int_eq(node_reshard_plan_remove(fenced, boot, META, META + 1, &next, &why), 0);
	ck_assert_int_eq(kv_reshard_outcome(next->change), KV_RESHARD_ABANDONED);
	node_reshard_free(next);
	ck_assert_int_eq(kv_reshard_step(fenced->change, 0, KV_RESHARD_INGESTED), 0);
	ck_assert_int_eq(node_reshard_plan_remove(fenced, boot, META, META + 1, &next, &why),
			 NODE_EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "only go forward"));
	node_reshard_free(fenced);
	ck_assert_int_eq(store(&f, boot, back), KV_OK); /* every range one legal step */
	node_reshard_free(loaded);
	ck_assert_int_eq(node_reshard_load(f.kv, META, &loaded), 0);
	ck_assert_int_eq(kv_reshard_outcome(loaded->change), KV_RESHARD_ABANDONED);
	/* retired for good; the ring in effect is the bootstrap one again */
	ck_assert_int_eq(node_reshard_plan_remove(loaded, boot, META, META + 1, &next, &why),
			 NODE_EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "retired already"));
	ck_assert_uint_eq(kv_ring_epoch(node_reshard_ring(loaded, boot)), 1);
	struct node_reshard *reuse = grow(1, 3); /* id 10 again, from the ring in effect */
	ck_assert_int_eq(store(&f, boot, reuse), NODE_EINVAL);
	node_reshard_free(reuse);
	ck_assert_int_eq(
		node_reshard_plan_add(loaded, boot, META, META + 32, 1, members5, 3, &next, &why),
		0);
	ck_assert_uint_eq(next->places[0].group, META + 2);
	ck_assert_uint_eq(kv_ring_epoch(next->change->from), 1);
	ck_assert_uint_eq(kv_ring_epoch(next->change->to), 3);
	ck_assert_int_eq(store(&f, boot, next), KV_OK);
	/* the order nodes take records in */
	ck_assert(node_reshard_newer(r, NULL) && !node_reshard_newer(NULL, r));
	ck_assert(node_reshard_newer(back, r) && !node_reshard_newer(r, back));
	ck_assert(node_reshard_newer(next, back) && !node_reshard_newer(back, next));
	ck_assert(!node_reshard_newer(r, r));
	char text[512];
	node_reshard_describe(back, text, sizeof text);
	ck_assert_ptr_nonnull(strstr(text, "epoch 1 -> 2, adding group 10 on nodes "));
	ck_assert_ptr_nonnull(strstr(text, "rolled-back"));
	node_reshard_free(next);
	node_reshard_free(loaded);
	node_reshard_free(back);
	node_reshard_free(r);
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
	tcase_add_test(tc, test_id_high_default);
	tcase_add_test(tc, test_plan_add);
	tcase_add_test(tc, test_plan_remove);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
