/* snapshot.c — streaming a group's whole state (data, sessions, applied index/term, conf) out
 * of one LMDB read transaction, in chunks, while the apply path keeps committing (MVCC: the
 * reader pins the pages of its version, writers copy-on-write around it). The format is in
 * snapshot.h; the stream ends with an XXH3-64 checksum that restore.c verifies. Each value's
 * CRC is checked before it enters the stream: a damaged value is never shipped to a peer.
 */
#include <assert.h>
#include <stdlib.h>
#include <xxhash.h>

#include "kv/kv_int.h"
#include "kv/snapshot.h"

enum phase { PH_DATA, PH_META, PH_TRAILER, PH_DONE };

struct kv_snapshot {
	struct kv *kv;
	uint32_t group;
	MDB_txn *txn;
	MDB_cursor *cur;
	enum phase phase;
	bool cursor_started;
	raft_index index;
	raft_term term;
	uint64_t records;
	XXH3_state_t *hash;
	uint8_t *buf; /* produced, not yet read: buf[pos, len) */
	size_t pos, len, cap;
	int err; /* the first failure (a damaged value): every later read returns it */
};

static int reserve(struct kv_snapshot *s, size_t more)
{
	if (s->pos == s->len)
		s->pos = s->len = 0;
	if (s->len + more <= s->cap)
		return KV_OK;
	if (s->pos > 0) {
		memmove(s->buf, s->buf + s->pos, s->len - s->pos);
		s->len -= s->pos;
		s->pos = 0;
		if (s->len + more <= s->cap)
			return KV_OK;
	}
	size_t cap = s->cap ? s->cap : 64 << 10;
	while (cap < s->len + more)
		cap *= 2;
	uint8_t *b = realloc(s->buf, cap);
	if (b == NULL)
		return KV_ENOMEM;
	s->buf = b;
	s->cap = cap;
	return KV_OK;
}

/* Appends bytes to the stream, hashing them. */
static void emit(struct kv_snapshot *s, const void *p, size_t n)
{
	assert(s->len + n <= s->cap);
	if (n == 0)
		return;
	memcpy(s->buf + s->len, p, n);
	XXH3_64bits_update(s->hash, p, n);
	s->len += n;
}

static int emit_record(struct kv_snapshot *s, uint8_t tag, const MDB_val *k, const MDB_val *v)
{
	int err = reserve(s, SNAP_REC_HEADER + k->mv_size + v->mv_size);
	if (err != KV_OK)
		return err;
	uint8_t h[SNAP_REC_HEADER];
	h[0] = tag;
	kv_put_le32(h + 1, (uint32_t)k->mv_size);
	kv_put_le32(h + 5, (uint32_t)v->mv_size);
	emit(s, h, sizeof h);
	emit(s, k->mv_data, k->mv_size);
	emit(s, v->mv_data, v->mv_size);
	s->records++;
	return KV_OK;
}

/* Produces the next piece of the stream (a record or the trailer). */
static int produce(struct kv_snapshot *s)
{
	while (s->phase == PH_DATA || s->phase == PH_META) {
		MDB_val k, v;
		int rc = mdb_cursor_get(s->cur, &k, &v, s->cursor_started ? MDB_NEXT : MDB_FIRST);
		s->cursor_started = true;
		if (rc == 0 && s->phase == PH_DATA) {
			/* The record travels as stored, CRC included: restore checks it again. */
			if (!kv_rec_ok(&k, &v)) {
				MDB_val value;
				return kv_rec_check(s->kv, s->group, &k, &v, &value, NULL);
			}
			return emit_record(s, SNAP_TAG_DATA, &k, &v);
		}
		if (rc == 0)
			return emit_record(s, SNAP_TAG_META, &k, &v);
		if (rc != MDB_NOTFOUND) {
			kv_log_mdb(s->group, "snapshot_read", rc);
			return KV_EIO;
		}
		mdb_cursor_close(s->cur);
		s->cur = NULL;
		if (s->phase == PH_DATA) {
			rc = mdb_cursor_open(s->txn, s->kv->groups[s->group].meta, &s->cur);
			if (rc != 0) {
				kv_log_mdb(s->group, "snapshot_read", rc);
				return KV_EIO;
			}
			s->cursor_started = false;
			s->phase = PH_META;
		} else {
			s->phase = PH_TRAILER;
		}
	}
	if (s->phase == PH_TRAILER) {
		int err = reserve(s, SNAP_TRAILER);
		if (err != KV_OK)
			return err;
		uint8_t t[SNAP_TRAILER];
		t[0] = SNAP_TAG_END;
		kv_put_le64(t + 1, s->records);
		emit(s, t, 9);
		kv_put_le64(t + 9, XXH3_64bits_digest(s->hash));
		memcpy(s->buf + s->len, t + 9, 8); /* the checksum is not part of what it covers */
		s->len += 8;
		s->phase = PH_DONE;
	}
	return KV_OK;
}

int kv_snapshot_begin(struct kv *kv, uint32_t group, struct kv_snapshot **out)
{
	struct kv_group *g;
	int err = kv_group_get(kv, group, &g);
	if (err != KV_OK)
		return err;
	struct kv_snapshot *s = calloc(1, sizeof *s);
	if (s == NULL || (s->hash = XXH3_createState()) == NULL) {
		free(s);
		return KV_ENOMEM;
	}
	XXH3_64bits_reset(s->hash);
	s->kv = kv;
	s->group = group;
	if ((err = kv_read_begin(kv, &s->txn)) != KV_OK) {
		XXH3_freeState(s->hash);
		free(s);
		return err;
	}
	kv->readers++;
	int rc = kv_applied_get(s->txn, g, &s->index, &s->term);
	if (rc == 0)
		rc = mdb_cursor_open(s->txn, g->data, &s->cur);
	if (rc == 0)
		err = reserve(s, SNAP_HEADER);
	if (rc != 0 || err != KV_OK) {
		if (rc != 0)
			kv_log_mdb(group, "snapshot_begin", rc);
		kv_snapshot_end(s);
		return rc != 0 ? KV_EIO : err;
	}
	uint8_t h[SNAP_HEADER];
	memcpy(h, SNAP_MAGIC, 8);
	kv_put_le32(h + 8, SNAP_VERSION);
	kv_put_le32(h + 12, group);
	kv_put_le64(h + 16, s->index);
	kv_put_le64(h + 24, s->term);
	emit(s, h, sizeof h);
	*out = s;
	return KV_OK;
}

raft_index kv_snapshot_index(const struct kv_snapshot *s)
{
	return s->index;
}

raft_term kv_snapshot_term(const struct kv_snapshot *s)
{
	return s->term;
}

int kv_snapshot_read(struct kv_snapshot *s, void *buf, size_t cap, size_t *len, bool *done)
{
	assert(cap > 0);
	size_t n = 0;
	if (s->err != KV_OK)
		return s->err;
	while (n < cap) {
		if (s->pos == s->len) {
			if (s->phase == PH_DONE)
				break;
			if ((s->err = produce(s)) != KV_OK)
				return s->err;
			continue;
		}
		size_t take = s->len - s->pos;
		if (take > cap - n)
			take = cap - n;
		memcpy((uint8_t *)buf + n, s->buf + s->pos, take);
		s->pos += take;
		n += take;
	}
	/* Look ahead so that a stream ending exactly at a chunk boundary marks that chunk done. */
	while (s->pos == s->len && s->phase != PH_DONE) {
		if ((s->err = produce(s)) != KV_OK)
			return s->err;
	}
	*len = n;
	*done = s->phase == PH_DONE && s->pos == s->len;
	return KV_OK;
}

void kv_snapshot_end(struct kv_snapshot *s)
{
	if (s == NULL)
		return;
	if (s->cur)
		mdb_cursor_close(s->cur);
	if (s->txn) {
		mdb_txn_abort(s->txn);
		assert(s->kv->readers > 0);
		s->kv->readers--;
	}
	XXH3_freeState(s->hash);
	free(s->buf);
	free(s);
}
