/* scrub.c — the background scrub: walks a group's data in key order a few records per step,
 * each step in its own short read transaction (so it never pins old pages for long nor holds
 * up the map's growth), and checks every value's CRC (record.c). The node paces the steps
 * from a timer; a damaged value is found even if no client ever reads it (DESIGN.md 16).
 */
#include "kv/kv_int.h"

void kv_scrub_cursor_init(struct kv_scrub_cursor *cur)
{
	memset(cur, 0, sizeof *cur);
}

int kv_scrub_step(struct kv *kv, uint32_t group, struct kv_scrub_cursor *cur, uint32_t max_records,
		  uint32_t *checked, bool *done)
{
	*checked = 0;
	*done = false;
	if (cur->key_len > KV_KEY_MAX)
		return KV_EINVAL;
	if (max_records == 0)
		max_records = KV_SCRUB_RECORDS_DEFAULT;
	if (max_records > KV_SCRUB_RECORDS_MAX)
		max_records = KV_SCRUB_RECORDS_MAX;
	struct kv_group *g;
	int err = kv_group_get(kv, group, &g);
	if (err != KV_OK)
		return err;
	MDB_txn *txn;
	if ((err = kv_read_begin(kv, &txn)) != KV_OK)
		return err;
	MDB_cursor *c = NULL;
	int rc = mdb_cursor_open(txn, g->data, &c);
	MDB_val k = {cur->key_len, cur->key}, rec, v;
	if (rc == 0 && cur->key_len == 0) {
		rc = mdb_cursor_get(c, &k, &rec, MDB_FIRST);
	} else if (rc == 0) {
		/* The first key after the last one checked, wherever writes moved things. */
		rc = mdb_cursor_get(c, &k, &rec, MDB_SET_RANGE);
		if (rc == 0 && k.mv_size == cur->key_len &&
		    memcmp(k.mv_data, cur->key, cur->key_len) == 0)
			rc = mdb_cursor_get(c, &k, &rec, MDB_NEXT);
	}
	while (rc == 0 && *checked < max_records) {
		if ((err = kv_rec_check(kv, group, &k, &rec, &v, NULL)) != KV_OK)
			break;
		(*checked)++;
		memcpy(cur->key, k.mv_data, k.mv_size);
		cur->key_len = k.mv_size;
		rc = mdb_cursor_get(c, &k, &rec, MDB_NEXT);
	}
	if (err == KV_OK && rc == MDB_NOTFOUND) {
		/* The end of the group: this pass is over, the next step starts another. */
		*done = true;
		cur->key_len = 0;
		cur->passes++;
	} else if (err == KV_OK && rc != 0) {
		kv_log_mdb(group, "scrub", rc);
		err = KV_EIO;
	}
	if (c)
		mdb_cursor_close(c);
	mdb_txn_abort(txn);
	return err;
}
