/* restore.c — receiving a snapshot stream (snapshot.h): chunks are staged in a file in the kv
 * directory (a snapshot may be far larger than memory), the checksum is verified over the
 * whole file before anything is touched, then the group's data and meta DBIs are emptied and
 * refilled in one write transaction. A stream that fails any check (the stream checksum,
 * its structure, any value's CRC) is KV_ECORRUPT and the transaction is aborted, so the group
 * is exactly as before.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <xxhash.h>

#include "kv/kv_int.h"
#include "kv/snapshot.h"
#include "wal/crashpoint.h"

struct kv_restore {
	struct kv *kv;
	uint32_t group;
	char *path;
	FILE *f;
	uint64_t bytes;
	int err; /* first write error: reported by finish */
};

int kv_restore_begin(struct kv *kv, uint32_t group, struct kv_restore **out)
{
	struct kv_group *g;
	int err = kv_group_get(kv, group, &g);
	if (err != KV_OK)
		return err;
	struct kv_restore *r = calloc(1, sizeof *r);
	if (r == NULL)
		return KV_ENOMEM;
	r->kv = kv;
	r->group = group;
	size_t n = strlen(kv->dir) + 32;
	r->path = malloc(n);
	if (r->path == NULL) {
		free(r);
		return KV_ENOMEM;
	}
	snprintf(r->path, n, "%s/restore-g%u.part", kv->dir, group);
	r->f = fopen(r->path, "w+b");
	if (r->f == NULL) {
		int e = errno;
		fprintf(stderr, "error kv group=%u what=restore_begin path=%s err=%m\n", group,
			r->path);
		free(r->path);
		free(r);
		return kv_err_of_write(kv, e);
	}
	*out = r;
	return KV_OK;
}

int kv_restore_write(struct kv_restore *r, const void *data, size_t len)
{
	if (r->err == KV_OK && len > 0 && fwrite(data, 1, len, r->f) != len)
		r->err = kv_err_of_write(r->kv, errno);
	r->bytes += len;
	if (r->err == KV_OK)
		crash_point("snap.chunk-staged");
	return r->err;
}

void kv_restore_abort(struct kv_restore *r)
{
	if (r == NULL)
		return;
	fclose(r->f);
	unlink(r->path);
	free(r->path);
	free(r);
}

/* Reads exactly n bytes, hashing them when h is given. */
static bool get(FILE *f, void *p, size_t n, XXH3_state_t *h)
{
	if (n && fread(p, 1, n, f) != n)
		return false;
	if (h)
		XXH3_64bits_update(h, p, n);
	return true;
}

/* Pass 1: the checksum over everything but its own 8 bytes, and the stream's length. */
static int verify(struct kv_restore *r)
{
	if (r->bytes < SNAP_HEADER + SNAP_TRAILER)
		return KV_ECORRUPT;
	XXH3_state_t *h = XXH3_createState();
	uint8_t *buf = malloc(64 << 10);
	int err = h && buf ? KV_OK : KV_ENOMEM;
	if (err == KV_OK) {
		XXH3_64bits_reset(h);
		rewind(r->f);
		uint64_t left = r->bytes - 8;
		while (left > 0 && err == KV_OK) {
			size_t n = left < (64 << 10) ? (size_t)left : (64 << 10);
			if (!get(r->f, buf, n, h))
				err = KV_EIO;
			left -= n;
		}
		uint8_t sum[8];
		if (err == KV_OK && !get(r->f, sum, 8, NULL))
			err = KV_EIO;
		if (err == KV_OK && kv_get_le64(sum) != XXH3_64bits_digest(h))
			err = KV_ECORRUPT;
	}
	XXH3_freeState(h);
	free(buf);
	return err;
}

struct install {
	struct kv_restore *r;
	struct kv_group *g;
	uint8_t *scratch;
	size_t scratch_cap;
	int err;
};

static int corrupt(struct install *in)
{
	in->err = KV_ECORRUPT;
	return KV_TXN_ABORT;
}

static bool meta_key_ok(const uint8_t *k, size_t n)
{
	switch (k[0]) {
	case KV_META_APPLIED:
	case KV_META_CONF:
	case KV_META_COUNT:
	case KV_META_CLOCK:
	case KV_META_EXPIRES:
		return n == 1;
	case KV_META_EXPIRY:
		return n >= 10 && n <= KV_META_EXPIRY_KEY_MAX;
	case KV_META_FENCE:
	case KV_META_RELEASE:
		return n == 1;
	case KV_META_INGEST:
	case KV_META_DROP:
		return n == 5;
	case KV_META_SESSION:
		return n == 9;
	case KV_META_RESULT:
	case KV_META_LRU:
		return n == 17;
	default:
		return false;
	}
}

/* The handoff's markers (handoff.h) are checked as apply would read them: 0, MDB_CORRUPTED or
 * ENOMEM. A damaged one could make a replica serve a range it must not. */
static int handoff_meta_ok(uint8_t tag, const uint8_t *v, size_t vl)
{
	struct kv_ingest_rec r;
	int rc;
	switch (tag) {
	case KV_META_RELEASE:
		return kv_fence_value_ok(KV_OP_FENCE, v, vl) ? 0 : MDB_CORRUPTED;
	case KV_META_INGEST:
		rc = kv_ingest_rec_parse(v, vl, &r);
		kv_ingest_rec_free(&r);
		return rc;
	case KV_META_DROP:
		return vl >= 1 && vl <= 1 + KV_KEY_MAX && v[0] <= 1 ? 0 : MDB_CORRUPTED;
	default:
		return 0;
	}
}

/* Pass 2, inside the write transaction (run again from the top if the map grew). */
static int install_fn(MDB_txn *txn, void *arg)
{
	struct install *in = arg;
	struct kv_restore *r = in->r;
	FILE *f = r->f;
	in->err = KV_OK;
	rewind(f);
	uint8_t h[SNAP_HEADER];
	if (!get(f, h, sizeof h, NULL))
		return EIO;
	uint32_t version = kv_get_le32(h + 8);
	if (memcmp(h, SNAP_MAGIC, 8) != 0 ||
	    (version != SNAP_VERSION && version != SNAP_VERSION_CRC &&
	     version != SNAP_VERSION_BARE) ||
	    kv_get_le32(h + 12) != r->group)
		return corrupt(in);
	uint32_t crc_bytes = version == SNAP_VERSION       ? KV_REC_HEADER
			     : version == SNAP_VERSION_CRC ? KV_REC_CRC
							   : 0;
	raft_index index = kv_get_le64(h + 16);
	raft_term term = kv_get_le64(h + 24);
	int rc = mdb_drop(txn, in->g->data, 0);
	if (rc == 0)
		rc = mdb_drop(txn, in->g->meta, 0);
	if (rc != 0)
		return rc;
	uint64_t records = 0, pos = SNAP_HEADER;
	bool saw_applied = false, in_meta = false;
	for (;;) {
		uint8_t rh[SNAP_REC_HEADER];
		if (pos + 1 > r->bytes || !get(f, rh, 1, NULL))
			return corrupt(in);
		if (rh[0] == SNAP_TAG_END) {
			if (pos + SNAP_TRAILER != r->bytes || !get(f, rh + 1, 8, NULL))
				return corrupt(in);
			if (kv_get_le64(rh + 1) != records || (!saw_applied && index != 0))
				return corrupt(in);
			break;
		}
		if (pos + SNAP_REC_HEADER > r->bytes || !get(f, rh + 1, 8, NULL))
			return corrupt(in);
		uint32_t kl = kv_get_le32(rh + 1), vl = kv_get_le32(rh + 5);
		bool meta = rh[0] == SNAP_TAG_META;
		if ((rh[0] != SNAP_TAG_DATA && !meta) || (in_meta && !meta) || kl == 0)
			return corrupt(in);
		in_meta = meta;
		if (meta ? kl > SNAP_META_KEY_MAX || vl > SNAP_META_VALUE_MAX
			 : kl > KV_KEY_MAX || vl < crc_bytes || vl > KV_VALUE_MAX_HARD + crc_bytes)
			return corrupt(in);
		pos += SNAP_REC_HEADER;
		if ((uint64_t)kl + vl > r->bytes - pos)
			return corrupt(in);
		if (kl + vl > in->scratch_cap) {
			uint8_t *s = realloc(in->scratch, kl + vl);
			if (s == NULL)
				return ENOMEM;
			in->scratch = s;
			in->scratch_cap = kl + vl;
		}
		if (!get(f, in->scratch, kl + vl, NULL))
			return corrupt(in);
		pos += kl + vl;
		MDB_val k = {kl, in->scratch}, v = {vl, in->scratch + kl};
		if (meta) {
			if (!meta_key_ok(in->scratch, kl))
				return corrupt(in);
			if (in->scratch[0] == KV_META_APPLIED &&
			    (vl != 16 || kv_get_be64(v.mv_data) != index ||
			     kv_get_be64((uint8_t *)v.mv_data + 8) != term))
				return corrupt(in);
			struct raft_conf conf;
			if (in->scratch[0] == KV_META_CONF &&
			    kv_conf_decode(v.mv_data, vl, &conf) != KV_OK)
				return corrupt(in);
			if ((rc = handoff_meta_ok(in->scratch[0], v.mv_data, vl)) != 0)
				return rc == MDB_CORRUPTED ? corrupt(in) : rc;
			saw_applied |= in->scratch[0] == KV_META_APPLIED;
		}
		/* The stream is in key order: appending is both the fast path and an order check.
		 * A data record is installed checksummed: verified as shipped, or (version 1)
		 * given its CRC now, or (version 2) verified, then stored with no expiry. */
		if (meta)
			rc = mdb_put(txn, in->g->meta, &k, &v, MDB_APPEND);
		else if (crc_bytes == 0)
			rc = kv_rec_put(txn, in->g->data, &k, v.mv_data, vl, 0, MDB_APPEND);
		else if (crc_bytes == KV_REC_CRC && kv_rec_ok_v2(&k, &v))
			rc = kv_rec_put(txn, in->g->data, &k, (uint8_t *)v.mv_data + KV_REC_CRC,
					vl - KV_REC_CRC, 0, MDB_APPEND);
		else if (crc_bytes == KV_REC_HEADER && kv_rec_ok(&k, &v))
			rc = mdb_put(txn, in->g->data, &k, &v, MDB_APPEND);
		else
			return corrupt(in);
		if (rc == MDB_KEYEXIST)
			return corrupt(in);
		if (rc != 0)
			return rc;
		records++;
	}
	return 0;
}

int kv_restore_finish(struct kv_restore *r)
{
	int err = r->err;
	if (err == KV_OK && fflush(r->f) != 0)
		err = kv_err_of_write(r->kv, errno);
	if (err == KV_OK)
		err = verify(r);
	if (err == KV_OK) {
		struct install in = {.r = r, .g = &r->kv->groups[r->group]};
		assert(in.g->open);
		err = kv_write(r->kv, r->group, "restore", install_fn, &in);
		if (err == KV_OK)
			err = in.err;
		free(in.scratch);
		if (err == KV_OK)
			crash_point("snap.installed");
	}
	if (err == KV_ECORRUPT)
		fprintf(stderr, "error kv group=%u what=restore err=\"corrupt snapshot stream\"\n",
			r->group);
	kv_restore_abort(r);
	return err;
}
