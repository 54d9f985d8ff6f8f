/* checkpoint.c — the pinned durable checkpoint: what lets a node whose machine went down with
 * unsynced LMDB commits (KV_EUNSAFE) roll its state machine back to a consistent, durable
 * version by itself, and replay the WAL from there (docs/DURABILITY.md, "Rollback to the
 * pinned checkpoint").
 *
 * At each checkpoint a read transaction is opened at the newest committed transaction T, the
 * environment is synced (so every page of T is on disk), the bytes of T's meta page are saved
 * with the per-group applied indexes in kv.checkpoint (tmp, fsync, rename, directory fsync),
 * and only then is the previous checkpoint's read transaction ended. LMDB never hands out a
 * page freed after the oldest live reader's snapshot (mdb_page_alloc takes only free-list
 * records of transactions older than mdb_find_oldest), so no page of T is written again until
 * a newer checkpoint is saved. After any crash, writing the saved meta image into both meta
 * slots (pages 0 and 1) makes LMDB open exactly at T.
 *
 * LMDB has no API for its meta page; its layout is read here from the on-disk format of
 * liblmdb 0.9 (mdb.c: MDB_page, P_META, MDB_meta, MDB_db; data version 1) on LP64, and checked
 * at every use (tests/unit/kv/test_checkpoint.c checks the offsets against mdb_env_info).
 */
#include <assert.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kv/kv_int.h"
#include "wal/crashpoint.h"
#include "wal/crc32c.h"

/* ---------------------------------------------------------------- LMDB's meta page (0.9) */
/* MDB_page header: u64 page number, u16 pad, u16 flags, u16 lower, u16 upper (16 bytes);
 * then MDB_meta: u32 magic, u32 version, void *address, size_t mapsize, two MDB_db of 48 bytes
 * (u32 pad, u16 flags, u16 depth, 4 x pgno/size_t counts, pgno root; the free DB's pad is the
 * page size), pgno last page, txnid. */
_Static_assert(sizeof(size_t) == 8 && sizeof(void *) == 8, "the meta layout below is LP64's");
#define M_PGNO        0
#define M_FLAGS       10
#define M_MAGIC       16
#define M_VERSION     20
#define M_FREE_PSIZE  40
#define M_FREE_ROOT   80
#define M_MAIN_ROOT   128
#define M_LAST_PG     136
#define M_TXNID       144
#define M_END         152
#define P_META_FLAG   0x08
#define LMDB_MAGIC    0xBEEFC0DEu
#define LMDB_DATA_VER 1u
#define P_INVALID_PG  (~(uint64_t)0)

/* ---------------------------------------------------------------- kv.checkpoint */
/* [8 magic][u32 version][u32 page bytes][u64 txnid][u32 n groups][u32 0]
 * [u64 applied index of groups 1..n][the meta page, page bytes][u32 CRC32C of all before],
 * little-endian. */
#define CKPT_FILE      "kv.checkpoint"
#define CKPT_MAGIC     "RRKVCKPT"
#define CKPT_VERSION   1u
#define CKPT_HEAD      32
#define CKPT_PAGE_MIN  4096u
#define CKPT_PAGE_MAX  65536u
#define CKPT_BYTES_MAX (CKPT_HEAD + 8 * KV_GROUPS_MAX + CKPT_PAGE_MAX + 4)

static bool little_endian(void)
{
	const uint16_t one = 1;
	return *(const uint8_t *)&one == 1;
}

/* Whether page (page_bytes long) is a plausible LMDB 0.9 meta page; *why says what failed. */
static bool meta_ok(const uint8_t *page, uint32_t page_bytes, const char **why)
{
	uint16_t flags = (uint16_t)(page[M_FLAGS] | page[M_FLAGS + 1] << 8);
	uint64_t last = kv_get_le64(page + M_LAST_PG);
	if (!(flags & P_META_FLAG))
		*why = "the saved page is not a meta page";
	else if (kv_get_le32(page + M_MAGIC) != LMDB_MAGIC)
		*why = "the saved meta page has no LMDB magic";
	else if (kv_get_le32(page + M_VERSION) != LMDB_DATA_VER)
		*why = "the saved meta page is of another LMDB data version";
	else if (kv_get_le32(page + M_FREE_PSIZE) != page_bytes)
		*why = "the saved meta page's page size differs from the checkpoint's";
	else if (last < 1 || last > UINT64_MAX / page_bytes)
		*why = "the saved meta page's last page is out of range";
	else if ((kv_get_le64(page + M_FREE_ROOT) != P_INVALID_PG &&
		  kv_get_le64(page + M_FREE_ROOT) > last) ||
		 (kv_get_le64(page + M_MAIN_ROOT) != P_INVALID_PG &&
		  kv_get_le64(page + M_MAIN_ROOT) > last))
		*why = "the saved meta page's root pages lie past its last page";
	else
		return true;
	return false;
}

static int fsync_dir(const char *dir)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	if (dfd < 0)
		return -1;
	int rc = fsync(dfd);
	close(dfd);
	return rc;
}

static bool write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

static bool pread_all(int fd, uint8_t *p, size_t n, off_t off)
{
	while (n > 0) {
		ssize_t r = pread(fd, p, n, off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		p += r;
		n -= (size_t)r;
		off += r;
	}
	return true;
}

static bool pwrite_all(int fd, const uint8_t *p, size_t n, off_t off)
{
	while (n > 0) {
		ssize_t w = pwrite(fd, p, n, off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
		off += w;
	}
	return true;
}

enum save_result { SAVE_OK, SAVE_NOT_WRITTEN, SAVE_MAYBE_WRITTEN };

/* Writes kv.checkpoint for transaction `txnid` whose meta page is `page`. */
static enum save_result save_file(struct kv *kv, uint64_t txnid, const uint8_t *page,
				  uint32_t page_bytes, const raft_index *applied, uint32_t n,
				  int *err)
{
	size_t len = CKPT_HEAD + 8 * (size_t)n + page_bytes + 4;
	uint8_t *buf = calloc(1, len);
	if (buf == NULL) {
		*err = ENOMEM;
		return SAVE_NOT_WRITTEN;
	}
	memcpy(buf, CKPT_MAGIC, 8);
	kv_put_le32(buf + 8, CKPT_VERSION);
	kv_put_le32(buf + 12, page_bytes);
	kv_put_le64(buf + 16, txnid);
	kv_put_le32(buf + 24, n);
	for (uint32_t i = 0; i < n; i++)
		kv_put_le64(buf + CKPT_HEAD + 8 * (size_t)i, applied[i]);
	memcpy(buf + CKPT_HEAD + 8 * (size_t)n, page, page_bytes);
	kv_put_le32(buf + len - 4, wal_crc32c(0, buf, len - 4));
	char path[4096], tmp[4096];
	snprintf(path, sizeof path, "%s/%s", kv->dir, CKPT_FILE);
	snprintf(tmp, sizeof tmp, "%s/%s.tmp", kv->dir, CKPT_FILE);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	bool ok = fd >= 0 && write_all(fd, buf, len) && fsync(fd) == 0;
	*err = ok ? 0 : errno;
	if (fd >= 0 && close(fd) != 0 && ok) {
		ok = false;
		*err = errno;
	}
	free(buf);
	if (ok)
		crash_point("ckpt.tmp-synced");
	if (!ok || rename(tmp, path) != 0) {
		if (ok)
			*err = errno;
		unlink(tmp);
		return SAVE_NOT_WRITTEN;
	}
	crash_point("ckpt.renamed");
	if (fsync_dir(kv->dir) != 0) {
		*err = errno;
		return SAVE_MAYBE_WRITTEN;
	}
	return SAVE_OK;
}

static void pins_release(struct kv *kv, size_t keep_from)
{
	for (size_t i = 0; i < keep_from; i++)
		mdb_txn_abort(kv->pins[i]);
	memmove(kv->pins, kv->pins + keep_from, (kv->n_pins - keep_from) * sizeof kv->pins[0]);
	kv->n_pins -= keep_from;
}

/* One checkpoint from begin to end (kv.h): what the loop read at the begin, what the sync
 * (on any thread) did. */
struct kv_ckpt {
	struct kv *kv;
	MDB_txn *txn;      /* pins T from the begin on; the pin only if the save succeeds */
	uint64_t txnid;    /* T */
	uint32_t n_groups;
	bool same;         /* kv.checkpoint already names T: only the sync is left to do */
	bool synced;       /* the sync was done at the begin (MDB_WRITEMAP: see there) */
	uint32_t page_bytes;
	uint8_t *page;     /* T's meta page */
	int rc;            /* the sync's: 0 or an errno code */
	const char *what;  /* what failed */
	enum save_result sr;
	raft_index applied[]; /* per group, as of T */
};

static void ckpt_free(struct kv_ckpt *c)
{
	free(c->page);
	free(c);
}

/* kv_checkpoint_begin once groups 1..n_groups are open. */
static int ckpt_begin(struct kv *kv, uint32_t n_groups, struct kv_ckpt **out)
{
	*out = NULL;
	assert(!kv->ckpt_busy);
	if (kv->n_pins == KV_PINS_MAX) {
		/* earlier saves failed after their rename: each may be the file on disk, so each
		 * keeps its snapshot pinned; no more until one succeeds fully (never, then) */
		fprintf(stderr,
			"error kv group=0 what=checkpoint err=\"%u checkpoints in a row "
			"could not be made durable: refusing more\"\n",
			(unsigned)kv->n_pins);
		return KV_EIO;
	}
	struct kv_ckpt *c = calloc(1, sizeof *c + (size_t)n_groups * sizeof c->applied[0]);
	if (c == NULL)
		return KV_ENOMEM;
	c->kv = kv;
	c->n_groups = n_groups;
	c->sr = SAVE_NOT_WRITTEN;
	/* The read transaction first: it holds T (the newest commit) from here on, so no page
	 * of T is written again, whatever commits while the sync runs. */
	int err = kv_read_begin(kv, &c->txn);
	if (err != KV_OK) {
		free(c);
		return err;
	}
	c->txnid = mdb_txn_id(c->txn);
	int rc = 0;
	for (uint32_t g = 1; g <= n_groups && rc == 0; g++) {
		raft_term term;
		rc = kv_applied_get(c->txn, &kv->groups[g], &c->applied[g - 1], &term);
	}
	c->same = kv->n_pins > 0 && kv->pin_txnid == c->txnid && kv->pin_groups >= n_groups;
	/* T's meta page, read now: T is the newest commit, so its slot (T % 2) holds it until
	 * the loop commits twice more, which it may do while the sync runs. */
	MDB_stat st;
	int fd = -1;
	c->what = "env_stat";
	if (rc == 0 && !c->same && (rc = mdb_env_stat(kv->env, &st)) == 0 &&
	    (rc = mdb_env_get_fd(kv->env, &fd)) == 0) {
		c->what = "read meta";
		c->page_bytes = st.ms_psize;
		if (st.ms_psize < CKPT_PAGE_MIN || st.ms_psize > CKPT_PAGE_MAX || !little_endian())
			rc = ENOTSUP;
		else if ((c->page = malloc(st.ms_psize)) == NULL)
			rc = ENOMEM;
		else if (!pread_all(fd, c->page, st.ms_psize, (off_t)(c->txnid & 1) * st.ms_psize))
			rc = errno ? errno : EIO;
	}
	const char *why = "";
	if (rc == 0 && !c->same &&
	    (kv_get_le64(c->page + M_TXNID) != c->txnid || !meta_ok(c->page, c->page_bytes, &why))) {
		fprintf(stderr,
			"error kv group=0 what=checkpoint err=\"meta slot %u does not hold "
			"transaction %llu (%s): unknown LMDB layout\"\n",
			(unsigned)(c->txnid & 1), (unsigned long long)c->txnid, why);
		rc = ENOTSUP;
	}
	/* With MDB_WRITEMAP the sync is an msync of the map, which a map resize on the loop
	 * (grow) would pull from under another thread: that mode syncs here, on the loop. */
	if (rc == 0 && kv->opt.writemap) {
		c->what = "sync";
		rc = mdb_env_sync(kv->env, 1);
		c->synced = rc == 0;
	}
	if (rc != 0) {
		if (strcmp(c->what, "sync") == 0)
			kv_log_mdb(0, "checkpoint", rc);
		else
			fprintf(stderr, "error kv group=0 what=%s err=\"%s\"\n", c->what,
				strerror(rc));
		mdb_txn_abort(c->txn);
		err = kv_err_of_write(kv, rc);
		ckpt_free(c);
		return err;
	}
	kv->ckpt_busy = true;
	*out = c;
	return KV_OK;
}

void kv_checkpoint_sync(struct kv_ckpt *c)
{
	/* Only the file descriptor and the directory name of kv are used here: the loop goes on
	 * committing meanwhile, and an fdatasync covers every page written before it began,
	 * T's among them (written before the begin). */
	if (!c->synced) {
		c->rc = mdb_env_sync(c->kv->env, 1);
		if (c->rc != 0) {
			c->what = "sync";
			return;
		}
	}
	crash_point("ckpt.lmdb-synced");
	if (c->same)
		return; /* nothing committed since the last checkpoint: kv.checkpoint names T */
	c->what = "save kv.checkpoint";
	c->sr = save_file(c->kv, c->txnid, c->page, c->page_bytes, c->applied, c->n_groups,
			  &c->rc);
}

int kv_checkpoint_end(struct kv *kv, struct kv_ckpt *c, raft_index *out)
{
	assert(c->kv == kv && kv->ckpt_busy);
	kv->ckpt_busy = false;
	if (c->rc == 0 && (c->same || c->sr == SAVE_OK)) {
		if (out != NULL)
			memcpy(out, c->applied, (size_t)c->n_groups * sizeof *out);
		if (c->same) {
			mdb_txn_abort(c->txn);
		} else {
			pins_release(kv, kv->n_pins); /* only now: the file names T */
			kv->pins[kv->n_pins++] = c->txn;
			kv->pin_txnid = c->txnid;
			kv->pin_groups = c->n_groups;
			crash_point("ckpt.pinned");
		}
		ckpt_free(c);
		return KV_OK;
	}
	if (c->sr == SAVE_MAYBE_WRITTEN) {
		kv->pins[kv->n_pins++] = c->txn; /* the file may name T, or the previous one */
		kv->pin_txnid = 0;
	} else {
		mdb_txn_abort(c->txn);
	}
	if (strcmp(c->what, "sync") == 0)
		kv_log_mdb(0, "checkpoint", c->rc);
	else
		fprintf(stderr, "error kv group=0 what=%s err=\"%s\"\n", c->what,
			strerror(c->rc));
	int err = kv_err_of_write(kv, c->rc);
	ckpt_free(c);
	return err;
}

void kv_checkpoint_abort(struct kv *kv, struct kv_ckpt *c)
{
	if (c == NULL)
		return;
	assert(c->kv == kv && kv->ckpt_busy);
	kv->ckpt_busy = false;
	if (c->sr != SAVE_NOT_WRITTEN) {
		/* kv.checkpoint may name T now: T stays pinned while the environment is open, as
		 * after a failed directory fsync (begin left a free slot for it) */
		kv->pins[kv->n_pins++] = c->txn;
		kv->pin_txnid = 0;
	} else {
		mdb_txn_abort(c->txn);
	}
	ckpt_free(c);
}

int kv_checkpoint_pin(struct kv *kv, raft_index *out, uint32_t n_groups)
{
	struct kv_ckpt *c;
	int err = ckpt_begin(kv, n_groups, &c);
	if (err != KV_OK)
		return err;
	kv_checkpoint_sync(c);
	return kv_checkpoint_end(kv, c, out);
}

void kv_checkpoint_unpin(struct kv *kv)
{
	pins_release(kv, kv->n_pins);
}

/* Opens groups 1..n_groups (their applied indexes are read from their meta DBIs). */
static int groups_open(struct kv *kv, uint32_t n_groups)
{
	assert(n_groups <= KV_GROUPS_MAX);
	if (n_groups > kv->opt.groups_max)
		return KV_ENOGROUP;
	struct kv_group *grp;
	int err;
	for (uint32_t g = 1; g <= n_groups; g++)
		if ((err = kv_group_get(kv, g, &grp)) != KV_OK)
			return err;
	return KV_OK;
}

int kv_checkpoint_begin(struct kv *kv, uint32_t n_groups, struct kv_ckpt **out)
{
	*out = NULL;
	int err = groups_open(kv, n_groups);
	return err != KV_OK ? err : ckpt_begin(kv, n_groups, out);
}

int kv_checkpoint(struct kv *kv, raft_index *out, uint32_t n_groups)
{
	int err = groups_open(kv, n_groups);
	return err != KV_OK ? err : kv_checkpoint_pin(kv, out, n_groups);
}

/* ---------------------------------------------------------------- rollback */

static int refuse(char *why, size_t why_len, const char *text)
{
	snprintf(why, why_len, "%s", text);
	return KV_ECORRUPT;
}

int kv_rollback(const char *dir, struct kv_rollback_info *info, char *why, size_t why_len)
{
	memset(info, 0, sizeof *info);
	snprintf(why, why_len, "ok");
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, CKPT_FILE);
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		snprintf(why, why_len, "no %s (%s)", CKPT_FILE, strerror(errno));
		return errno == ENOENT ? KV_NOT_FOUND : KV_EIO;
	}
	uint8_t *buf = malloc(CKPT_BYTES_MAX + 1);
	ssize_t len = 0;
	if (buf != NULL) {
		while (len <= (ssize_t)CKPT_BYTES_MAX) {
			ssize_t r = read(fd, buf + len, CKPT_BYTES_MAX + 1 - (size_t)len);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				if (r < 0)
					len = -1;
				break;
			}
			len += r;
		}
	}
	close(fd);
	if (buf == NULL)
		return refuse(why, why_len, "out of memory");
	int err = KV_ECORRUPT;
	const char *bad = NULL;
	uint32_t page_bytes = 0, n = 0;
	if (len < 0)
		bad = "cannot read it";
	else if (!little_endian())
		bad = "this platform is not little-endian";
	else if (len < CKPT_HEAD + 4 || memcmp(buf, CKPT_MAGIC, 8) != 0)
		bad = "it is not a checkpoint file (magic)";
	else if (kv_get_le32(buf + 8) != CKPT_VERSION)
		bad = "unknown checkpoint version";
	else if ((page_bytes = kv_get_le32(buf + 12)) < CKPT_PAGE_MIN ||
		 page_bytes > CKPT_PAGE_MAX || (page_bytes & (page_bytes - 1)) != 0)
		bad = "its page size is out of range";
	else if ((n = kv_get_le32(buf + 24)) > KV_GROUPS_MAX)
		bad = "its group count is out of range";
	else if ((size_t)len != CKPT_HEAD + 8 * (size_t)n + page_bytes + 4)
		bad = "its length does not match its header (truncated?)";
	else if (wal_crc32c(0, buf, (size_t)len - 4) != kv_get_le32(buf + len - 4))
		bad = "its CRC32C does not match";
	uint8_t *page = buf + CKPT_HEAD + 8 * (size_t)n;
	uint64_t txnid = bad == NULL ? kv_get_le64(buf + 16) : 0;
	if (bad == NULL && kv_get_le64(page + M_TXNID) != txnid)
		bad = "the saved meta page is of another transaction";
	if (bad == NULL)
		(void)meta_ok(page, page_bytes, &bad); /* sets bad when it fails */
	if (bad != NULL) {
		snprintf(why, why_len, "%s refused: %s", CKPT_FILE, bad);
		free(buf);
		return err;
	}
	uint64_t last = kv_get_le64(page + M_LAST_PG);
	snprintf(path, sizeof path, "%s/data.mdb", dir);
	fd = open(path, O_RDWR);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) != 0) {
		snprintf(why, why_len, "cannot open the data file (%s)", strerror(errno));
		if (fd >= 0)
			close(fd);
		free(buf);
		return KV_EIO;
	}
	if ((uint64_t)sb.st_size < (last + 1) * page_bytes) {
		snprintf(why, why_len,
			 "the data file is %llu bytes, shorter than the checkpoint's last page "
			 "(%llu bytes)",
			 (unsigned long long)sb.st_size,
			 (unsigned long long)((last + 1) * page_bytes));
		close(fd);
		free(buf);
		return KV_ECORRUPT;
	}
	/* The slots may hold anything after the crash; a well-formed one older than the
	 * checkpoint (T - 1 is the other slot's at the sync) says the file is not the one the
	 * checkpoint was taken of. */
	uint8_t *cur = malloc(page_bytes);
	uint64_t newest = 0;
	bool any = false;
	for (int slot = 0; cur != NULL && slot < 2; slot++) {
		const char *ignored;
		if (pread_all(fd, cur, page_bytes, (off_t)slot * page_bytes) &&
		    meta_ok(cur, page_bytes, &ignored)) {
			uint64_t t = kv_get_le64(cur + M_TXNID);
			newest = any && newest > t ? newest : t;
			any = true;
		}
	}
	free(cur);
	if (any && newest + 1 < txnid) {
		snprintf(why, why_len,
			 "the data file's newest meta page is transaction %llu, older than the "
			 "checkpoint's %llu: not the file it was taken of",
			 (unsigned long long)newest, (unsigned long long)txnid);
		close(fd);
		free(buf);
		return KV_ECORRUPT;
	}
	bool ok = true;
	for (uint64_t slot = 0; slot < 2 && ok; slot++) {
		kv_put_le64(page + M_PGNO, slot);
		ok = pwrite_all(fd, page, page_bytes, (off_t)(slot * page_bytes));
	}
	ok = ok && fdatasync(fd) == 0;
	int e = errno;
	close(fd);
	if (!ok) {
		snprintf(why, why_len, "cannot write the meta pages (%s)", strerror(e));
		free(buf);
		return KV_EIO;
	}
	info->txnid = txnid;
	info->n_groups = n;
	for (uint32_t i = 0; i < n; i++)
		info->applied[i] = kv_get_le64(buf + CKPT_HEAD + 8 * (size_t)i);
	free(buf);
	/* Consistent and durable again: what kv_close records after its sync. */
	if (kv_guard_close(dir) != KV_OK) {
		snprintf(why, why_len, "cannot record kv.state");
		return KV_EIO;
	}
	return KV_OK;
}
