/* kv.c — the LMDB environment of a node and the DBI pair of each group: open/close, error
 * strings, the write-transaction wrapper that grows the map on MDB_MAP_FULL, the applied
 * index and configuration records, and size (the checkpoint is in checkpoint.c).
 *
 * The environment runs with MDB_NOSYNC (the WAL is the source of truth, docs/DURABILITY.md)
 * and MDB_NOTLS (a snapshot's read transaction stays open while the same thread writes).
 * Commits go through pwrite(2), so a full disk is ENOSPC from the commit (KV_ENOSPC), never a
 * SIGBUS; MDB_WRITEMAP is an option that preallocates the whole map (docs/DURABILITY.md).
 * The main DB holds the on-disk format version beside the named DBIs (KV_EFORMAT).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "kv/kv_int.h"

const char *kv_strerror(int err)
{
	switch (err) {
	case KV_OK:
		return "ok";
	case KV_NOT_FOUND:
		return "not found";
	case KV_CAS_MISMATCH:
		return "compare-and-set mismatch";
	case KV_NOT_INTEGER:
		return "value is not an integer or out of range";
	case KV_OVERFLOW:
		return "increment or decrement would overflow";
	case KV_MOVING:
		return "the key's range is moving to another group: not written, retry";
	case KV_WRONG_SHARD:
		return "this group does not serve the key now (its range moved or is not open yet)";
	case KV_DISCARDED:
		return "the copy's key count or digest did not match: discarded, copy again";
	case KV_EINVAL:
		return "invalid command or key";
	case KV_ETOOLARGE:
		return "value too large";
	case KV_EMAPFULL:
		return "LMDB map full (raise map_bytes / map_bytes_max)";
	case KV_EIO:
		return "LMDB failure";
	case KV_ENOMEM:
		return "out of memory";
	case KV_ESESSION:
		return "client session expired: outcome unknown";
	case KV_ECORRUPT:
		return "corrupt data: a stored value failed its checksum, or a bad snapshot stream";
	case KV_ENOGROUP:
		return "group out of range";
	case KV_EUNSAFE:
		return "machine crashed with unsynced LMDB commits: rebuild this replica";
	case KV_EFORMAT:
		return "data directory was written by an older ringraft: its values carry no "
		       "checksums (or its format is unknown); move it aside and rebuild this "
		       "replica from its peers";
	case KV_ENOSPC:
		return "no space left on the data directory's file system";
	default:
		return "unknown kv error";
	}
}

void kv_options_default(struct kv_options *o)
{
	memset(o, 0, sizeof *o);
	o->map_bytes = KV_MAP_BYTES_DEFAULT;
	o->map_bytes_max = KV_MAP_BYTES_MAX_DEFAULT;
	o->value_max = KV_VALUE_MAX_DEFAULT;
	o->groups_max = KV_GROUPS_MAX;
	o->session_ttl_entries = KV_SESSION_TTL_ENTRIES;
	o->sessions_max = KV_SESSIONS_MAX;
	/* pwrite: with the pinned checkpoint a writable map costs a fault per fresh page and a
	 * TLB flush per page at each checkpoint's sync (kv.h, docs/PERFORMANCE.md) */
	o->writemap = false;
	o->cache_ahead_bytes = KV_CACHE_AHEAD_DEFAULT;
}

void kv_log_mdb(uint32_t group, const char *what, int mdb_rc)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	fprintf(stderr, "error %lld.%03ld kv group=%u what=%s err=\"%s\"\n", (long long)ts.tv_sec,
		ts.tv_nsec / 1000000, group, what, mdb_strerror(mdb_rc));
}

static int kv_err_of(int mdb_rc)
{
	switch (mdb_rc) {
	case 0:
		return KV_OK;
	case MDB_MAP_FULL:
		return KV_EMAPFULL;
	case ENOMEM:
		return KV_ENOMEM;
	default:
		return KV_EIO;
	}
}

int kv_err_of_write(const struct kv *kv, int rc)
{
	if (rc == ENOSPC || rc == EDQUOT)
		return KV_ENOSPC;
	if (rc == EIO) {
		/* LMDB turns a short pwrite into EIO; a full file system gives exactly that when
		 * a multi-page write runs out of space part way. The slack covers a WAL segment
		 * whose preallocation (another thread) failed on the same full disk and was
		 * removed between the short write and this check: test_disk_full saw such an
		 * EIO with more than 8 MiB free about one run in four, and the node stopped with
		 * "LMDB failure" (exit 1) instead of "disk full" (75). */
		struct statvfs st;
		if (statvfs(kv->dir, &st) == 0) {
			uint64_t blocks = geteuid() == 0 ? st.f_bfree : st.f_bavail;
			if (blocks * st.f_frsize < KV_ENOSPC_SLACK_BYTES)
				return KV_ENOSPC;
		}
	}
	return kv_err_of(rc);
}

static uint64_t round_up(uint64_t v, uint64_t unit)
{
	return (v + unit - 1) / unit * unit;
}

/* With MDB_WRITEMAP, LMDB makes the data file as long as the map but sparse, and a store into
 * a hole on a full file system raises SIGBUS. Allocating the blocks first turns that into
 * ENOSPC here. Returns 0 or an errno code. */
static int prealloc(struct kv *kv, uint64_t bytes)
{
	if (!kv->opt.writemap)
		return 0;
	int fd;
	int rc = mdb_env_get_fd(kv->env, &fd);
	if (rc == 0)
		rc = posix_fallocate(fd, 0, (off_t)bytes);
	return rc;
}

/* Doubles the map (within map_bytes_max). Returns 0, or MDB_MAP_FULL when it may not grow,
 * or the error that kept it from growing (ENOSPC: no disk to preallocate with writemap). */
static int grow(struct kv *kv, uint32_t group)
{
	if (kv->readers > 0 || kv->map_bytes >= kv->opt.map_bytes_max)
		return MDB_MAP_FULL;
	uint64_t next = kv->map_bytes * 2;
	if (next > kv->opt.map_bytes_max)
		next = round_up(kv->opt.map_bytes_max, kv->page_bytes);
	int rc = prealloc(kv, next);
	if (rc == 0)
		rc = mdb_env_set_mapsize(kv->env, next);
	if (rc != 0) {
		kv_log_mdb(group, "set_mapsize", rc);
		return rc;
	}
	MDB_envinfo info;
	mdb_env_info(kv->env, &info);
	kv->map_bytes = info.me_mapsize;
	return 0;
}

#define FORMAT_KEY "ringraft.kv.format" /* in the main DB, beside the named DBIs */
#define FORMAT_V2  2                    /* values with a CRC but no expiry: upgraded in place */

/* Rewrites every value of one data DBI from format 2 to format 3 (an empty expiry). A value
 * whose format 2 CRC fails keeps failing: it is written with a CRC that cannot match, so the
 * damage is still found (and repaired) as before the upgrade. */
static int upgrade_dbi(MDB_txn *txn, MDB_dbi dbi)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, dbi, &cur);
	if (rc != 0)
		return rc;
	uint8_t key[KV_KEY_MAX], *buf = NULL;
	size_t cap = 0;
	MDB_val k, v;
	rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	while (rc == 0) {
		if (k.mv_size > KV_KEY_MAX) {
			rc = MDB_CORRUPTED;
			break;
		}
		bool good = kv_rec_ok_v2(&k, &v);
		size_t vl = v.mv_size >= KV_REC_CRC ? v.mv_size - KV_REC_CRC : 0;
		if (KV_REC_HEADER + vl > cap) {
			uint8_t *b = realloc(buf, KV_REC_HEADER + vl);
			if (b == NULL) {
				rc = ENOMEM;
				break;
			}
			buf = b;
			cap = KV_REC_HEADER + vl;
		}
		memcpy(key, k.mv_data, k.mv_size);
		MDB_val nk = {k.mv_size, key}, nv = {KV_REC_HEADER + vl, buf};
		kv_rec_encode(&nk, (uint8_t *)v.mv_data + (v.mv_size - vl), vl, 0, buf);
		if (!good)
			kv_put_le32(buf, kv_get_le32(buf) ^ 1u);
		rc = mdb_cursor_put(cur, &nk, &nv, MDB_CURRENT);
		if (rc == 0)
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	free(buf);
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Upgrades a format 2 environment inside txn: every group's data DBI (named "g<N>.data" in
 * the main DB). */
static int upgrade_v2(MDB_txn *txn, MDB_dbi main_dbi)
{
	char names[KV_GROUPS_MAX][32];
	size_t n = 0;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = mdb_cursor_open(txn, main_dbi, &cur);
	if (rc != 0)
		return rc;
	rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	while (rc == 0) {
		unsigned g;
		char name[32];
		if (k.mv_size < sizeof name) {
			memcpy(name, k.mv_data, k.mv_size);
			name[k.mv_size] = '\0';
			char tail[8];
			if (sscanf(name, "g%u.%7s", &g, tail) == 2 && strcmp(tail, "data") == 0 &&
			    n < KV_GROUPS_MAX)
				memcpy(names[n++], name, sizeof name);
		}
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND)
		return rc;
	for (size_t i = 0; i < n; i++) {
		MDB_dbi dbi;
		if ((rc = mdb_dbi_open(txn, names[i], 0, &dbi)) != 0)
			return rc;
		if ((rc = upgrade_dbi(txn, dbi)) != 0)
			return rc;
	}
	return 0;
}

struct format_arg {
	int err;
};

/* Stamps a fresh environment with KV_FORMAT_VERSION, checks the stamp of an existing one, and
 * upgrades format 2 in place. An environment with named DBIs but no stamp was written by
 * ringraft before values carried a CRC (format 1): KV_EFORMAT rather than reading every value
 * as corrupt. Runs in kv_write, so that an upgrade that fills the map grows it once. */
static int format_fn(MDB_txn *txn, void *arg)
{
	struct format_arg *fa = arg;
	MDB_dbi main_dbi;
	MDB_val k = {sizeof FORMAT_KEY - 1, FORMAT_KEY}, v;
	MDB_stat st;
	fa->err = KV_OK;
	int rc = mdb_dbi_open(txn, NULL, 0, &main_dbi);
	if (rc == 0)
		rc = mdb_get(txn, main_dbi, &k, &v);
	if (rc == 0) {
		uint32_t ver = v.mv_size == 4 ? kv_get_le32(v.mv_data) : 0;
		if (ver == KV_FORMAT_VERSION)
			return KV_TXN_ABORT; /* nothing to write */
		if (ver != FORMAT_V2) {
			/* what an operator needs to tell an unknown format from a damaged file (a
			 * power cut with unsynced commits can leave this: docs/DURABILITY.md) */
			fprintf(stderr,
				"error kv group=0 what=format err=\"the format stamp is %zu bytes, "
				"version %u: this build reads %u and %u; another ringraft wrote "
				"it, or the file is damaged\"\n",
				v.mv_size, (unsigned)ver, (unsigned)FORMAT_V2,
				(unsigned)KV_FORMAT_VERSION);
			fa->err = KV_EFORMAT;
			return KV_TXN_ABORT;
		}
		fprintf(stderr, "warn kv group=0 what=format msg=\"upgrading the data directory "
				"from format 2 to 3 (values gain an expiry)\"\n");
		rc = upgrade_v2(txn, main_dbi);
	} else if (rc == MDB_NOTFOUND) {
		rc = mdb_stat(txn, main_dbi, &st);
		if (rc == 0 && st.ms_entries > 0) {
			fprintf(stderr,
				"error kv group=0 what=format err=\"no format stamp beside %zu "
				"entries of the main DB: written before format 2, or the file is "
				"damaged\"\n",
				(size_t)st.ms_entries);
			fa->err = KV_EFORMAT;
			return KV_TXN_ABORT;
		}
	}
	if (rc == 0) {
		uint8_t ver[4];
		kv_put_le32(ver, KV_FORMAT_VERSION);
		v = (MDB_val){sizeof ver, ver};
		rc = mdb_put(txn, main_dbi, &k, &v, 0);
	}
	return rc;
}

static int format_check(struct kv *kv)
{
	struct format_arg fa = {KV_OK};
	int err = kv_write(kv, 0, "format", format_fn, &fa);
	return err != KV_OK ? err : fa.err;
}

/* Keeps the pages of the data file from `used` (the end of what LMDB uses) to at least half
 * of cache_ahead_bytes beyond it in the page cache as single pages, so that LMDB's writes,
 * which reach new pages a commit at a time, find them there (kv.h, cache_ahead_bytes). When
 * the window runs low it is refilled to used + cache_ahead_bytes: the file is extended
 * (ftruncate: sparse, no block is allocated, LMDB never reads past its last page) and the new
 * range read through ahead_fd, whose POSIX_FADV_RANDOM makes the kernel cache exactly the
 * pages read, each on its own. A read of a hole allocates nothing and dirties nothing. Any
 * failure turns it off: it only saves CPU. */
static void cache_ahead(struct kv *kv, uint64_t used)
{
	uint64_t ahead = kv->opt.cache_ahead_bytes;
	if (kv->ahead_fd < 0 || kv->ahead_end >= used + ahead / 2)
		return;
	uint64_t end = round_up(used + ahead, kv->page_bytes);
	uint64_t from = kv->ahead_end > used ? kv->ahead_end : used; /* both page multiples */
	int lfd;
	struct stat st;
	bool ok = mdb_env_get_fd(kv->env, &lfd) == 0 && fstat(lfd, &st) == 0 &&
		  ((uint64_t)st.st_size >= end || ftruncate(lfd, (off_t)end) == 0);
	/* in pieces of 64 pages: each a single read, the kernel still caching page by page */
	size_t piece = 64 * kv->page_bytes;
	uint8_t *sink = ok ? malloc(piece) : NULL;
	ok = ok && sink != NULL;
	for (uint64_t off = from; ok && off < end; off += piece) {
		size_t n = end - off < piece ? (size_t)(end - off) : piece;
		errno = EIO; /* for a short read */
		ok = pread(kv->ahead_fd, sink, n, (off_t)off) == (ssize_t)n;
	}
	free(sink);
	if (!ok) {
		kv_log_mdb(0, "cache ahead (turned off)", errno);
		close(kv->ahead_fd);
		kv->ahead_fd = -1;
		return;
	}
	kv->ahead_end = end;
}

/* Opens ahead_fd and fills the first window (kv_open). Off with writemap: its pages come in
 * through faults on the map, not through writes. */
static void cache_ahead_open(struct kv *kv)
{
	kv->ahead_fd = -1;
	if (kv->opt.cache_ahead_bytes == 0 || kv->opt.writemap)
		return;
	char path[4096];
	snprintf(path, sizeof path, "%s/data.mdb", kv->dir);
	kv->ahead_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (kv->ahead_fd >= 0 && posix_fadvise(kv->ahead_fd, 0, 0, POSIX_FADV_RANDOM) != 0) {
		close(kv->ahead_fd);
		kv->ahead_fd = -1;
	}
	cache_ahead(kv, kv_size_bytes(kv));
}

int kv_open(const char *dir, const struct kv_options *o, struct kv **out)
{
	struct kv_options def;
	if (o == NULL) {
		kv_options_default(&def);
		o = &def;
	}
	if (dir == NULL || o->groups_max == 0 || o->groups_max > KV_GROUPS_MAX ||
	    o->value_max == 0 || o->value_max > KV_VALUE_MAX_HARD || o->sessions_max == 0 ||
	    o->session_ttl_entries == 0)
		return KV_EINVAL;
	struct kv *kv = calloc(1, sizeof *kv);
	if (kv == NULL)
		return KV_ENOMEM;
	kv->ahead_fd = -1; /* cache_ahead_open, once the environment is ready */
	kv->opt = *o;
	kv->dir = strdup(dir);
	long ps = sysconf(_SC_PAGESIZE);
	kv->page_bytes = ps > 0 ? (size_t)ps : 4096;
	kv->map_bytes =
		round_up(o->map_bytes ? o->map_bytes : KV_MAP_BYTES_DEFAULT, kv->page_bytes);
	if (kv->dir == NULL) {
		free(kv);
		return KV_ENOMEM;
	}
	/* With synced commits LMDB is consistent after any later crash: nothing to guard from
	 * now on. But syncing from now on does not repair what an earlier machine crash did to
	 * a file that ran without it, so the check comes first in both modes. */
	int err = kv_guard_open(dir, true);
	if (err == KV_OK && o->sync_commits)
		err = kv_guard_close(dir);
	if (err != KV_OK) {
		free(kv->dir);
		free(kv);
		return err;
	}
	unsigned flags =
		MDB_NOTLS | (o->sync_commits ? 0 : MDB_NOSYNC) | (o->writemap ? MDB_WRITEMAP : 0);
	int rc = mdb_env_create(&kv->env);
	if (rc == 0)
		rc = mdb_env_set_maxdbs(kv->env, 2 * o->groups_max + 1);
	if (rc == 0)
		rc = mdb_env_set_mapsize(kv->env, kv->map_bytes);
	if (rc == 0)
		rc = mdb_env_open(kv->env, dir, flags, 0644);
	/* An existing environment may have grown beyond map_bytes in an earlier life. */
	MDB_envinfo info;
	if (rc == 0 && (rc = mdb_env_info(kv->env, &info)) == 0)
		kv->map_bytes = info.me_mapsize;
	if (rc == 0)
		rc = prealloc(kv, kv->map_bytes);
	err = rc != 0 ? kv_err_of_write(kv, rc) : format_check(kv);
	if (err != KV_OK) {
		if (rc != 0)
			kv_log_mdb(0, "env_open", rc);
		if (kv->env)
			mdb_env_close(kv->env);
		free(kv->dir);
		free(kv);
		return err;
	}
	/* The first checkpoint: from here on kv.checkpoint names a synced version whose pages
	 * no later commit overwrites (checkpoint.c). It names no group: none is open yet. */
	if ((err = kv_checkpoint_pin(kv, NULL, 0)) != KV_OK) {
		kv_checkpoint_unpin(kv);
		mdb_env_close(kv->env);
		free(kv->dir);
		free(kv);
		return err;
	}
	/* A restore staging file left by a crash is garbage: the restore never installed. */
	for (uint32_t g = 1; g <= o->groups_max; g++) {
		char path[4096];
		snprintf(path, sizeof path, "%s/restore-g%u.part", dir, g);
		unlink(path);
	}
	cache_ahead_open(kv);
	*out = kv;
	return KV_OK;
}

void kv_close(struct kv *kv)
{
	if (kv == NULL)
		return;
	assert(kv->readers == 0 && !kv->ckpt_busy);
	(void)kv_apply_commit(kv); /* logged if it fails; the WAL has every entry it held */
	kv_checkpoint_unpin(kv);
	int rc = mdb_env_sync(kv->env, 1);
	if (rc != 0)
		kv_log_mdb(0, "env_sync", rc);
	else
		kv_guard_close(kv->dir);
	mdb_env_close(kv->env);
	if (kv->ahead_fd >= 0)
		close(kv->ahead_fd);
	free(kv->pend);
	free(kv->arena);
	free(kv->dir);
	free(kv);
}

int kv_group_get(struct kv *kv, uint32_t group, struct kv_group **out)
{
	if (group == 0 || group > kv->opt.groups_max)
		return KV_ENOGROUP;
	struct kv_group *g = &kv->groups[group];
	if (!g->open) {
		/* Handles opened in a write transaction become visible to every later transaction
		 * once it commits; a group's DBIs are opened once per environment. */
		char name[32];
		MDB_txn *txn;
		int err = kv_apply_commit(kv);
		if (err != KV_OK)
			return err;
		int rc = mdb_txn_begin(kv->env, NULL, 0, &txn);
		if (rc == 0) {
			snprintf(name, sizeof name, "g%u.data", group);
			rc = mdb_dbi_open(txn, name, MDB_CREATE, &g->data);
		}
		if (rc == 0) {
			snprintf(name, sizeof name, "g%u.meta", group);
			rc = mdb_dbi_open(txn, name, MDB_CREATE, &g->meta);
		}
		if (rc == 0)
			rc = mdb_txn_commit(txn);
		else if (txn)
			mdb_txn_abort(txn);
		/* Rare: the very first write of a group into a full map. */
		if (rc == MDB_MAP_FULL && grow(kv, group) == 0)
			return kv_group_get(kv, group, out);
		if (rc != 0) {
			kv_log_mdb(group, "dbi_open", rc);
			return kv_err_of_write(kv, rc);
		}
		g->open = true;
	}
	*out = g;
	return KV_OK;
}

/* After every write commit: grows the map ahead of need when more than half of it is used
 * and it can move now (while a snapshot stream is open it cannot, and the half left is what
 * writes may use meanwhile), and keeps the page cache ahead of the file's end. */
static void headroom(struct kv *kv, uint32_t group)
{
	MDB_envinfo info;
	if (mdb_env_info(kv->env, &info) != 0)
		return;
	uint64_t used = (uint64_t)(info.me_last_pgno + 1) * kv->page_bytes;
	cache_ahead(kv, used);
	if (kv->readers > 0 || kv->map_bytes >= kv->opt.map_bytes_max ||
	    kv->headroom_failed_at == kv->map_bytes)
		return;
	if (used > kv->map_bytes / 2 && grow(kv, group) != 0)
		kv->headroom_failed_at = kv->map_bytes;
}

void kv_apply_batching(struct kv *kv, bool on)
{
	/* MDB_WRITEMAP has no nested transactions: there every apply commits on its own. */
	(void)kv_apply_commit(kv);
	kv->batch_on = on && !kv->opt.writemap;
}

static void open_clear(struct kv *kv)
{
	kv->open = NULL;
	kv->open_entries = 0;
	kv->open_bytes = 0;
}

int kv_apply_commit(struct kv *kv)
{
	if (kv->open == NULL)
		return kv->open_err;
	MDB_txn *txn = kv->open;
	open_clear(kv);
	int rc = mdb_txn_commit(txn);
	if (rc != 0) {
		kv_log_mdb(0, "apply commit", rc);
		if (kv->open_err == KV_OK)
			kv->open_err = kv_err_of_write(kv, rc);
		return kv->open_err;
	}
	headroom(kv, 0);
	return kv->open_err;
}

void kv_apply_abandon(struct kv *kv)
{
	if (kv->open != NULL)
		mdb_txn_abort(kv->open);
	open_clear(kv);
}

int kv_apply_write(struct kv *kv, kv_write_fn fn, void *arg)
{
	int rc;
	if (kv->open == NULL && (rc = mdb_txn_begin(kv->env, NULL, 0, &kv->open)) != 0) {
		kv->open = NULL;
		return rc;
	}
	/* The first apply runs in the open transaction itself (aborting it then loses nothing
	 * else); later ones in a child, which costs no system call: LMDB merges a committed
	 * child's pages into its parent in memory. */
	MDB_txn *txn = kv->open;
	bool nested = kv->open_entries > 0; /* kv_apply counts what each call added */
	if (nested && (rc = mdb_txn_begin(kv->env, kv->open, 0, &txn)) != 0)
		return rc;
	rc = fn(txn, arg);
	if (rc == 0 && nested)
		rc = mdb_txn_commit(txn); /* in memory: only ENOMEM; the child is freed either way */
	else if (rc != 0 && nested)
		mdb_txn_abort(txn);
	if (rc != 0 && !nested) {
		mdb_txn_abort(kv->open);
		open_clear(kv);
	}
	return rc;
}

int kv_write(struct kv *kv, uint32_t group, const char *what, kv_write_fn fn, void *arg)
{
	int err = kv_apply_commit(kv);
	if (err != KV_OK)
		return err;
	for (int attempt = 0;; attempt++) {
		MDB_txn *txn;
		int rc = mdb_txn_begin(kv->env, NULL, 0, &txn);
		if (rc == 0) {
			rc = fn(txn, arg);
			if (rc == 0)
				rc = mdb_txn_commit(txn);
			else
				mdb_txn_abort(txn);
			if (rc == KV_TXN_ABORT)
				return KV_OK;
		}
		if (rc == 0) {
			headroom(kv, group);
			return KV_OK;
		}
		if (rc == MDB_MAP_FULL && attempt == 0) {
			int grc = grow(kv, group);
			if (grc == 0)
				continue;
			if (grc != MDB_MAP_FULL && kv_err_of_write(kv, grc) == KV_ENOSPC)
				rc = grc; /* no disk for the bigger map (writemap) */
		}
		kv_log_mdb(group, what, rc);
		return kv_err_of_write(kv, rc);
	}
}

int kv_read_begin(struct kv *kv, MDB_txn **out)
{
	int err = kv_apply_commit(kv);
	if (err != KV_OK)
		return err;
	int rc = mdb_txn_begin(kv->env, NULL, MDB_RDONLY, out);
	if (rc != 0) {
		kv_log_mdb(0, "read_begin", rc);
		return kv_err_of(rc);
	}
	return KV_OK;
}

int kv_applied_get(MDB_txn *txn, const struct kv_group *g, raft_index *index, raft_term *term)
{
	uint8_t tag = KV_META_APPLIED;
	MDB_val k = {1, &tag}, v;
	int rc = mdb_get(txn, g->meta, &k, &v);
	if (rc == MDB_NOTFOUND) {
		*index = 0;
		*term = 0;
		return 0;
	}
	if (rc != 0)
		return rc;
	if (v.mv_size != 16)
		return MDB_CORRUPTED;
	*index = kv_get_be64(v.mv_data);
	*term = kv_get_be64((const uint8_t *)v.mv_data + 8);
	return 0;
}

int kv_applied_put(MDB_txn *txn, const struct kv_group *g, raft_index index, raft_term term)
{
	uint8_t tag = KV_META_APPLIED, buf[16];
	kv_put_be64(buf, index);
	kv_put_be64(buf + 8, term);
	MDB_val k = {1, &tag}, v = {sizeof buf, buf};
	return mdb_put(txn, g->meta, &k, &v, 0);
}

int kv_meta_u64_get(MDB_txn *txn, const struct kv_group *g, uint8_t tag, uint64_t *v)
{
	MDB_val k = {1, &tag}, d;
	int rc = mdb_get(txn, g->meta, &k, &d);
	*v = 0;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	if (d.mv_size != 8)
		return MDB_CORRUPTED;
	*v = kv_get_be64(d.mv_data);
	return 0;
}

int kv_meta_u64_put(MDB_txn *txn, const struct kv_group *g, uint8_t tag, uint64_t v)
{
	uint8_t buf[8];
	kv_put_be64(buf, v);
	MDB_val k = {1, &tag}, d = {sizeof buf, buf};
	return mdb_put(txn, g->meta, &k, &d, 0);
}

int kv_clock_get(MDB_txn *txn, const struct kv_group *g, uint64_t *clock_ms)
{
	return kv_meta_u64_get(txn, g, KV_META_CLOCK, clock_ms);
}

size_t kv_conf_encode(const struct raft_conf *c, uint8_t *out)
{
	assert(c->n_voters <= RAFT_NODES_MAX && c->n_learners <= RAFT_NODES_MAX);
	uint8_t *p = out;
	kv_put_le32(p, c->n_voters);
	kv_put_le32(p + 4, c->n_learners);
	p += 8;
	for (uint32_t i = 0; i < c->n_voters; i++, p += 8)
		kv_put_le64(p, c->voters[i]);
	for (uint32_t i = 0; i < c->n_learners; i++, p += 8)
		kv_put_le64(p, c->learners[i]);
	return (size_t)(p - out);
}

int kv_conf_decode(const void *data, size_t len, struct raft_conf *c)
{
	const uint8_t *p = data;
	if (len < 8)
		return KV_EINVAL;
	uint32_t nv = kv_get_le32(p), nl = kv_get_le32(p + 4);
	if (nv > RAFT_NODES_MAX || nl > RAFT_NODES_MAX || len != 8 + 8 * (size_t)(nv + nl))
		return KV_EINVAL;
	memset(c, 0, sizeof *c);
	c->n_voters = nv;
	c->n_learners = nl;
	p += 8;
	for (uint32_t i = 0; i < nv; i++, p += 8)
		c->voters[i] = kv_get_le64(p);
	for (uint32_t i = 0; i < nl; i++, p += 8)
		c->learners[i] = kv_get_le64(p);
	return KV_OK;
}

int kv_meta(struct kv *kv, uint32_t group, struct kv_group_meta *out)
{
	struct kv_group *g;
	int err = kv_group_get(kv, group, &g);
	if (err != KV_OK)
		return err;
	MDB_txn *txn;
	if ((err = kv_read_begin(kv, &txn)) != KV_OK)
		return err;
	memset(out, 0, sizeof *out);
	int rc = kv_applied_get(txn, g, &out->applied_index, &out->applied_term);
	uint8_t tag = KV_META_CONF;
	MDB_val k = {1, &tag}, v;
	if (rc == 0) {
		rc = mdb_get(txn, g->meta, &k, &v);
		if (rc == 0) {
			if (kv_conf_decode(v.mv_data, v.mv_size, &out->conf) != KV_OK)
				rc = MDB_CORRUPTED;
			out->has_conf = rc == 0;
		} else if (rc == MDB_NOTFOUND) {
			rc = 0;
		}
	}
	MDB_stat st;
	if (rc == 0 && (rc = mdb_stat(txn, g->data, &st)) == 0)
		out->keys = st.ms_entries;
	if (rc == 0)
		rc = kv_meta_u64_get(txn, g, KV_META_EXPIRES, &out->expires);
	if (rc == 0)
		rc = kv_clock_get(txn, g, &out->clock_ms);
	mdb_txn_abort(txn);
	if (rc != 0) {
		kv_log_mdb(group, "meta", rc);
		return kv_err_of(rc);
	}
	return KV_OK;
}

uint64_t kv_size_bytes(const struct kv *kv)
{
	MDB_envinfo info;
	MDB_stat st;
	if (mdb_env_info(kv->env, &info) != 0 || mdb_env_stat(kv->env, &st) != 0)
		return 0;
	return (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
}
