/* session.c — client sessions for exactly-once writes (Raft thesis 6.3), kept in the group's
 * meta DBI so that they are replicated state and travel in snapshots.
 *
 * Per client: S+client -> {last index, floor, count}; R+client+seq -> the cached result of
 * one of its KV_SESSION_WINDOW most recent sequences (floor = the highest seq forgotten);
 * L+last index+client orders sessions by last activity for expiry. Expiry is decided only
 * from log indexes, at the entry being applied, so every replica decides alike whatever its
 * batch boundaries: a session idle for session_ttl_entries is treated as absent when next
 * looked at, and when a new session would exceed sessions_max the expired ones are removed
 * first, then the least recently active. kv_session_gc only removes what is already dead.
 */
#include <assert.h>

#include "kv/kv_int.h"

#define REC_BYTES 20

static void key_s(uint8_t k[9], uint64_t client)
{
	k[0] = KV_META_SESSION;
	kv_put_be64(k + 1, client);
}

static void key_r(uint8_t k[17], uint64_t client, uint64_t seq)
{
	k[0] = KV_META_RESULT;
	kv_put_be64(k + 1, client);
	kv_put_be64(k + 9, seq);
}

static void key_l(uint8_t k[17], raft_index last, uint64_t client)
{
	k[0] = KV_META_LRU;
	kv_put_be64(k + 1, last);
	kv_put_be64(k + 9, client);
}

static int rec_get(MDB_txn *txn, MDB_dbi dbi, uint64_t client, struct kv_session *r, bool *found)
{
	uint8_t kb[9];
	key_s(kb, client);
	MDB_val k = {sizeof kb, kb}, v;
	int rc = mdb_get(txn, dbi, &k, &v);
	*found = rc == 0;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	if (v.mv_size != REC_BYTES)
		return MDB_CORRUPTED;
	const uint8_t *p = v.mv_data;
	r->last = kv_get_be64(p);
	r->floor = kv_get_be64(p + 8);
	r->count = (uint32_t)p[16] << 24 | (uint32_t)p[17] << 16 | (uint32_t)p[18] << 8 | p[19];
	return 0;
}

static int rec_put(MDB_txn *txn, MDB_dbi dbi, uint64_t client, const struct kv_session *r)
{
	uint8_t kb[9], vb[REC_BYTES];
	key_s(kb, client);
	kv_put_be64(vb, r->last);
	kv_put_be64(vb + 8, r->floor);
	vb[16] = (uint8_t)(r->count >> 24);
	vb[17] = (uint8_t)(r->count >> 16);
	vb[18] = (uint8_t)(r->count >> 8);
	vb[19] = (uint8_t)r->count;
	MDB_val k = {sizeof kb, kb}, v = {sizeof vb, vb};
	return mdb_put(txn, dbi, &k, &v, 0);
}

static int lru_put(MDB_txn *txn, MDB_dbi dbi, raft_index last, uint64_t client, bool del)
{
	uint8_t kb[17];
	key_l(kb, last, client);
	MDB_val k = {sizeof kb, kb}, v = {0, kb};
	return del ? mdb_del(txn, dbi, &k, NULL) : mdb_put(txn, dbi, &k, &v, 0);
}

static int count_add(MDB_txn *txn, MDB_dbi dbi, int64_t delta, uint64_t *now)
{
	uint8_t tag = KV_META_COUNT, vb[8];
	MDB_val k = {1, &tag}, v;
	uint64_t n = 0;
	int rc = mdb_get(txn, dbi, &k, &v);
	if (rc == 0 && v.mv_size == 8)
		n = kv_get_be64(v.mv_data);
	else if (rc == 0)
		return MDB_CORRUPTED;
	else if (rc != MDB_NOTFOUND)
		return rc;
	assert(delta >= 0 || n >= (uint64_t)-delta);
	n += (uint64_t)delta;
	if (now)
		*now = n;
	if (delta == 0)
		return 0;
	kv_put_be64(vb, n);
	v.mv_size = sizeof vb;
	v.mv_data = vb;
	return mdb_put(txn, dbi, &k, &v, 0);
}

/* Removes a session and every result it caches. */
static int drop(MDB_txn *txn, MDB_dbi dbi, uint64_t client, const struct kv_session *r)
{
	uint8_t kb[17], prefix[9];
	key_r(kb, client, 0);
	memcpy(prefix, kb, 9);
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, dbi, &cur);
	if (rc != 0)
		return rc;
	MDB_val k = {sizeof kb, kb}, v;
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && k.mv_size == 17 && memcmp(k.mv_data, prefix, 9) == 0) {
		rc = mdb_cursor_del(cur, 0);
		k.mv_size = sizeof kb;
		k.mv_data = kb;
		if (rc == 0)
			rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	}
	mdb_cursor_close(cur);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	key_s(prefix, client);
	k.mv_size = 9;
	k.mv_data = prefix;
	if ((rc = mdb_del(txn, dbi, &k, NULL)) != 0)
		return rc;
	if ((rc = lru_put(txn, dbi, r->last, client, true)) != 0)
		return rc;
	return count_add(txn, dbi, -1, NULL);
}

/* The least recently active session: false when there is none. */
static int oldest(MDB_txn *txn, MDB_dbi dbi, raft_index *last, uint64_t *client, bool *found)
{
	uint8_t kb[1] = {KV_META_LRU};
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, dbi, &cur);
	if (rc != 0)
		return rc;
	MDB_val k = {1, kb}, v;
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	*found = rc == 0 && k.mv_size == 17 && ((const uint8_t *)k.mv_data)[0] == KV_META_LRU;
	if (*found) {
		*last = kv_get_be64((const uint8_t *)k.mv_data + 1);
		*client = kv_get_be64((const uint8_t *)k.mv_data + 9);
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static bool expired(const struct kv *kv, raft_index last, raft_index index)
{
	return index >= last && index - last >= kv->opt.session_ttl_entries;
}

static int drop_client(MDB_txn *txn, MDB_dbi dbi, uint64_t client)
{
	struct kv_session r;
	bool found;
	int rc = rec_get(txn, dbi, client, &r, &found);
	if (rc != 0)
		return rc;
	if (!found)
		return MDB_CORRUPTED; /* an L record without its session */
	return drop(txn, dbi, client, &r);
}

/* Removes expired sessions, oldest first, at most budget (UINT32_MAX: all). */
static int gc(struct kv *kv, MDB_txn *txn, MDB_dbi dbi, raft_index index, uint32_t budget)
{
	for (uint32_t i = 0; i < budget; i++) {
		raft_index last;
		uint64_t client;
		bool found;
		int rc = oldest(txn, dbi, &last, &client, &found);
		if (rc != 0)
			return rc;
		if (!found || !expired(kv, last, index))
			return 0;
		if ((rc = drop_client(txn, dbi, client)) != 0)
			return rc;
	}
	return 0;
}

int kv_session_gc(struct kv *kv, MDB_txn *txn, const struct kv_group *g, raft_index index,
		  uint32_t budget)
{
	return gc(kv, txn, g->meta, index, budget);
}

/* Moves the session to `index` in the expiry order; its record is written by save. */
static int touch(MDB_txn *txn, MDB_dbi dbi, uint64_t client, struct kv_session *r, raft_index index)
{
	int rc = 0;
	if (r->last != index) {
		if ((rc = lru_put(txn, dbi, r->last, client, true)) != 0)
			return rc;
		if ((rc = lru_put(txn, dbi, index, client, false)) != 0)
			return rc;
		r->last = index;
	}
	return 0;
}

static int create(struct kv *kv, MDB_txn *txn, MDB_dbi dbi, uint64_t client, raft_index index,
		  struct kv_session *r)
{
	uint64_t n;
	int rc = count_add(txn, dbi, 0, &n);
	if (rc == 0 && n >= kv->opt.sessions_max) {
		/* Dead sessions go first, all of them, so that the count compared below is the
		 * live count on every replica whatever garbage it still held. */
		rc = gc(kv, txn, dbi, index, UINT32_MAX);
		while (rc == 0 && (rc = count_add(txn, dbi, 0, &n)) == 0 &&
		       n >= kv->opt.sessions_max) {
			raft_index last;
			uint64_t victim;
			bool found;
			if ((rc = oldest(txn, dbi, &last, &victim, &found)) != 0)
				break;
			if (!found)
				return MDB_CORRUPTED;
			rc = drop_client(txn, dbi, victim);
		}
	}
	if (rc != 0)
		return rc;
	r->last = index;
	r->floor = 0;
	r->count = 0;
	if ((rc = lru_put(txn, dbi, index, client, false)) != 0)
		return rc;
	return count_add(txn, dbi, 1, NULL); /* the record itself: kv_session_save */
}

/* The client's session as of index: rec_get, with one that expired by then dropped (found
 * false). */
static int rec_get_live(struct kv *kv, MDB_txn *txn, MDB_dbi dbi, uint64_t client,
			raft_index index, struct kv_session *r, bool *found)
{
	int rc = rec_get(txn, dbi, client, r, found);
	if (rc != 0)
		return rc;
	if (*found && expired(kv, r->last, index)) {
		if ((rc = drop(txn, dbi, client, r)) != 0)
			return rc;
		*found = false;
	}
	return 0;
}

int kv_session_check(struct kv *kv, MDB_txn *txn, const struct kv_group *g, uint64_t client,
		     uint64_t seq, raft_index index, enum kv_session_verdict *verdict,
		     struct kv_result *res, struct kv_session *sess)
{
	assert(client != 0 && seq != 0);
	MDB_dbi dbi = g->meta;
	struct kv_session r;
	bool found;
	int rc = rec_get_live(kv, txn, dbi, client, index, &r, &found);
	if (rc != 0)
		return rc;
	if (!found) {
		*verdict = KV_SESSION_NEW;
		rc = create(kv, txn, dbi, client, index, &r);
		*sess = r;
		return rc;
	}
	if ((rc = touch(txn, dbi, client, &r, index)) != 0)
		return rc;
	*sess = r;
	if (seq <= r.floor) {
		*verdict = KV_SESSION_STALE;
		return 0;
	}
	uint8_t kb[17];
	key_r(kb, client, seq);
	MDB_val k = {sizeof kb, kb}, v;
	rc = mdb_get(txn, dbi, &k, &v);
	if (rc == MDB_NOTFOUND) {
		*verdict = KV_SESSION_NEW;
		return 0;
	}
	if (rc != 0)
		return rc;
	if (v.mv_size < 2)
		return MDB_CORRUPTED;
	const uint8_t *p = v.mv_data;
	memset(res, 0, sizeof *res);
	res->code = (int8_t)p[0];
	res->found = p[1] != 0;
	res->value = p + 2;
	res->value_len = v.mv_size - 2;
	res->duplicate = true;
	*verdict = KV_SESSION_DUP;
	return 0;
}

int kv_session_record(struct kv *kv, MDB_txn *txn, const struct kv_group *g, uint64_t client,
		      uint64_t seq, raft_index index, const struct kv_result *res,
		      struct kv_session *sess)
{
	(void)kv;
	MDB_dbi dbi = g->meta;
	struct kv_session r = *sess;
	int rc;
	assert(r.last == index && seq > r.floor);
	uint8_t kb[17];
	key_r(kb, client, seq);
	MDB_val k = {sizeof kb, kb}, v = {2 + res->value_len, NULL};
	if ((rc = mdb_put(txn, dbi, &k, &v, MDB_RESERVE)) != 0)
		return rc;
	uint8_t *p = v.mv_data;
	p[0] = (uint8_t)(int8_t)res->code;
	p[1] = res->found;
	if (res->value_len)
		memcpy(p + 2, res->value, res->value_len);
	r.count++;
	if (r.count > KV_SESSION_WINDOW) {
		/* Forget the lowest remembered seq; anything at or below it is now stale. */
		MDB_cursor *cur;
		if ((rc = mdb_cursor_open(txn, dbi, &cur)) != 0)
			return rc;
		key_r(kb, client, 0);
		k.mv_size = sizeof kb;
		k.mv_data = kb;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc == 0 && (k.mv_size != 17 || memcmp(k.mv_data, kb, 9) != 0))
			rc = MDB_CORRUPTED;
		if (rc == 0) {
			uint64_t low = kv_get_be64((const uint8_t *)k.mv_data + 9);
			if (low > r.floor)
				r.floor = low;
			rc = mdb_cursor_del(cur, 0);
			r.count--;
		}
		mdb_cursor_close(cur);
		if (rc != 0)
			return rc;
	}
	*sess = r;
	return 0;
}

int kv_session_save(MDB_txn *txn, const struct kv_group *g, uint64_t client,
		    const struct kv_session *sess)
{
	return rec_put(txn, g->meta, client, sess);
}

/* Forgets the client's cached results at or below r->floor. */
static int forget_to_floor(MDB_txn *txn, MDB_dbi dbi, uint64_t client, struct kv_session *r)
{
	uint8_t kb[17];
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, dbi, &cur);
	if (rc != 0)
		return rc;
	key_r(kb, client, 0);
	MDB_val k = {sizeof kb, kb}, v;
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && k.mv_size == 17 && memcmp(k.mv_data, kb, 9) == 0 &&
	       kv_get_be64((const uint8_t *)k.mv_data + 9) <= r->floor) {
		if ((rc = mdb_cursor_del(cur, 0)) != 0)
			break;
		assert(r->count > 0);
		r->count--;
		k.mv_size = sizeof kb;
		k.mv_data = kb;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Keeps the KV_SESSION_WINDOW highest seqs: the lowest go, and the floor rises to them. */
static int trim_to_window(MDB_txn *txn, MDB_dbi dbi, uint64_t client, struct kv_session *r)
{
	uint8_t kb[17];
	int rc = 0;
	while (rc == 0 && r->count > KV_SESSION_WINDOW) {
		MDB_cursor *cur;
		if ((rc = mdb_cursor_open(txn, dbi, &cur)) != 0)
			return rc;
		key_r(kb, client, 0);
		MDB_val k = {sizeof kb, kb}, v;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc == 0 && (k.mv_size != 17 || memcmp(k.mv_data, kb, 9) != 0))
			rc = MDB_CORRUPTED; /* the count says there are results */
		if (rc == 0) {
			uint64_t low = kv_get_be64((const uint8_t *)k.mv_data + 9);
			if (low > r->floor)
				r->floor = low;
			rc = mdb_cursor_del(cur, 0);
			r->count--;
		}
		mdb_cursor_close(cur);
	}
	return rc;
}

int kv_session_merge(struct kv *kv, MDB_txn *txn, const struct kv_group *g, uint64_t client,
		     uint64_t floor, uint64_t seq, const struct kv_result *res, raft_index index)
{
	assert(client != 0);
	MDB_dbi dbi = g->meta;
	struct kv_session r;
	bool found;
	int rc = rec_get_live(kv, txn, dbi, client, index, &r, &found);
	if (rc != 0)
		return rc;
	rc = found ? touch(txn, dbi, client, &r, index) : create(kv, txn, dbi, client, index, &r);
	if (rc == 0 && floor > r.floor) {
		r.floor = floor;
		rc = forget_to_floor(txn, dbi, client, &r);
	}
	if (rc == 0 && seq != 0 && seq > r.floor) {
		uint8_t kb[17];
		key_r(kb, client, seq);
		MDB_val k = {sizeof kb, kb}, v;
		rc = mdb_get(txn, dbi, &k, &v);
		if (rc == MDB_NOTFOUND) {
			/* the target lacks it: add it (one it has is the same command's result) */
			v.mv_size = 2 + res->value_len;
			v.mv_data = NULL;
			if ((rc = mdb_put(txn, dbi, &k, &v, MDB_RESERVE)) == 0) {
				uint8_t *p = v.mv_data;
				p[0] = (uint8_t)(int8_t)res->code;
				p[1] = res->found;
				if (res->value_len)
					memcpy(p + 2, res->value, res->value_len);
				r.count++;
				rc = trim_to_window(txn, dbi, client, &r);
			}
		}
	}
	if (rc == 0)
		rc = rec_put(txn, dbi, client, &r);
	return rc;
}
