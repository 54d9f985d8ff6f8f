/* powercutfs.c — a FUSE pass-through file system that can lose power (LazyFS-style).
 *
 * Mounted over a backing directory, it passes every operation through, except file data:
 * writes (write(2), and pages of a shared mmap, which reach a FUSE daemon as writes when the
 * kernel writes them back, on msync or at close) are kept in memory per file, in 4 KiB pages,
 * until that file is fsync'd or fdatasync'd; only then do they reach the backing file. Reads
 * see the buffered data. Writing "cut KEEP_PER_MILLE SEED" into MNT/.powercut is the power
 * cut: of all buffered (unsynced) pages, a random KEEP_PER_MILLE/1000 subset chosen with SEED
 * is written to the backing files, in random order, the rest is dropped, and from then on
 * every operation fails with EIO until the file system is unmounted and mounted again (the
 * machine is dead). Reading MNT/.powercut gives counters (pages and files buffered, syncs).
 * Writing "delay MS" into it makes a slow disk: from then on every fsync, fdatasync (an
 * msync(MS_SYNC) sends one) and directory fsync first waits MS milliseconds (0 ends it,
 * at most 60000), while reads and writes go on unhindered; the counters say the current
 * delay and how many syncs were delayed.
 *
 * Simplifications, each the kind a test can live with (docs/DURABILITY.md, "The power-cut
 * layer"): metadata (create, mkdir, rename, unlink, link, truncate, fallocate, chmod) is
 * durable at once; the file size grows with buffered writes and falls back to the backing
 * size at a cut; sync(2) and syncfs(2) do not reach a FUSE daemon, so they sync nothing here;
 * the backing files are not fsync'd themselves (the host's durability is not what is tested).
 * Buffered data is bounded by --max-mb: a write beyond it fails with ENOSPC and a line on
 * stderr, so a test never silently runs with a weaker layer.
 *
 * Usage: powercutfs [--max-mb N] BACKING_DIR MOUNTPOINT [FUSE options, e.g. -f]
 * Unmount with fusermount3 -u MOUNTPOINT.
 */
#define FUSE_USE_VERSION 35

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define PAGE_BYTES     4096u
#define CONTROL_PATH   "/.powercut"
#define MAX_MB_DEFAULT 512u
#define DELAY_MS_MAX   60000u

/* One backing inode that has been opened: its buffered pages and its logical size. Lives
 * while it is open or holds unsynced pages. */
struct file {
	struct file *next;
	dev_t dev;
	ino_t ino;
	int fd; /* the backing file, O_RDWR (or O_RDONLY: then never written) */
	bool writable;
	unsigned opens;   /* open handles of the mount on this inode */
	uint64_t seq;     /* order of first use: makes the cut's page order reproducible */
	off_t size;       /* logical size: the backing size, grown by buffered writes */
	uint8_t **pages;  /* pages[i]: buffered copy of page i, or NULL */
	size_t pages_cap; /* entries of pages[] */
	size_t *dirty;    /* indexes of buffered pages (may hold stale ones: check pages[]) */
	size_t ndirty, dirty_cap;
};

/* fi->fh of every open file and directory; 0 is the control file. With nullpath_ok, an
 * operation that has a handle gets no path, so the handle must say everything. */
struct handle {
	struct file *f; /* NULL for a directory */
	int fd;         /* backing fd of this open, with the caller's access mode */
	DIR *dir;       /* a directory's stream (fd is its dirfd) */
};

static struct {
	char backing[PATH_MAX];
	uint64_t max_bytes;
	pthread_mutex_t lock;
	struct file *files;
	uint64_t next_seq;
	uint64_t buffered_pages;
	uint64_t syncs, synced_pages;
	bool dead;
	unsigned delay_ms;      /* slow disk: each sync waits this long first (0: none) */
	uint64_t delayed_syncs; /* syncs that waited */
} g = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* ------------------------------------------------------------------------ helpers */

static int backing_path(const char *path, char *out)
{
	int n = snprintf(out, PATH_MAX, "%s%s", g.backing, path);
	return n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

static bool is_control(const char *path)
{
	return path != NULL && strcmp(path, CONTROL_PATH) == 0;
}

/* The control file, named by its path or by its handle (fi->fh 0). */
static bool is_control_fi(const char *path, const struct fuse_file_info *fi)
{
	return fi ? fi->fh == 0 : is_control(path);
}

static struct handle *handle_of(const struct fuse_file_info *fi)
{
	return (struct handle *)(uintptr_t)fi->fh;
}

static struct file *file_find(dev_t dev, ino_t ino)
{
	for (struct file *f = g.files; f; f = f->next)
		if (f->dev == dev && f->ino == ino)
			return f;
	return NULL;
}

static void file_drop_pages(struct file *f)
{
	for (size_t i = 0; i < f->pages_cap; i++) {
		if (f->pages[i]) {
			free(f->pages[i]);
			f->pages[i] = NULL;
			g.buffered_pages--;
		}
	}
	f->ndirty = 0;
}

/* Frees f if nothing needs it any more (no open handle, nothing buffered). */
static void file_maybe_free(struct file *f)
{
	if (f->opens > 0 || f->ndirty > 0)
		return;
	for (struct file **p = &g.files; *p; p = &(*p)->next) {
		if (*p == f) {
			*p = f->next;
			break;
		}
	}
	file_drop_pages(f);
	free(f->pages);
	free(f->dirty);
	close(f->fd);
	free(f);
}

/* The file record of the inode behind fd (opened by the caller), created on first use with
 * its own backing descriptor (O_RDWR when possible, so that a sync can always write). */
static int file_get(const char *bpath, int fd, struct file **out)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return -errno;
	struct file *f = file_find(st.st_dev, st.st_ino);
	if (f == NULL) {
		f = calloc(1, sizeof *f);
		if (f == NULL)
			return -ENOMEM;
		char proc[64];
		snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
		f->fd = open(proc, O_RDWR | O_CLOEXEC);
		f->writable = f->fd >= 0;
		if (f->fd < 0)
			f->fd = open(bpath, O_RDONLY | O_CLOEXEC);
		if (f->fd < 0) {
			int err = errno;
			free(f);
			return -err;
		}
		f->dev = st.st_dev;
		f->ino = st.st_ino;
		f->size = st.st_size;
		f->seq = g.next_seq++;
		f->next = g.files;
		g.files = f;
	}
	f->opens++;
	*out = f;
	return 0;
}

static uint8_t *page_get(struct file *f, size_t i)
{
	return i < f->pages_cap ? f->pages[i] : NULL;
}

/* The buffered copy of page i, made from the backing file (or zeroes) when there is none. */
static int page_make(struct file *f, size_t i, bool whole, uint8_t **out)
{
	if (i >= f->pages_cap) {
		size_t cap = f->pages_cap ? f->pages_cap : 64;
		while (cap <= i)
			cap *= 2;
		uint8_t **p = realloc(f->pages, cap * sizeof *p);
		if (p == NULL)
			return -ENOMEM;
		memset(p + f->pages_cap, 0, (cap - f->pages_cap) * sizeof *p);
		f->pages = p;
		f->pages_cap = cap;
	}
	if (f->pages[i]) {
		*out = f->pages[i];
		return 0;
	}
	if ((g.buffered_pages + 1) * PAGE_BYTES > g.max_bytes) {
		fprintf(stderr,
			"powercutfs: more than --max-mb %" PRIu64
			" of unsynced data buffered: write refused (ENOSPC)\n",
			g.max_bytes >> 20);
		return -ENOSPC;
	}
	if (f->ndirty == f->dirty_cap) {
		size_t cap = f->dirty_cap ? f->dirty_cap * 2 : 64;
		size_t *d = realloc(f->dirty, cap * sizeof *d);
		if (d == NULL)
			return -ENOMEM;
		f->dirty = d;
		f->dirty_cap = cap;
	}
	uint8_t *p = calloc(1, PAGE_BYTES);
	if (p == NULL)
		return -ENOMEM;
	if (!whole) {
		ssize_t n = pread(f->fd, p, PAGE_BYTES, (off_t)i * PAGE_BYTES);
		if (n < 0) {
			int err = errno;
			free(p);
			return -err;
		}
	}
	f->pages[i] = p;
	f->dirty[f->ndirty++] = i;
	g.buffered_pages++;
	*out = p;
	return 0;
}

/* Writes buffered page i of f to the backing file, no further than the logical size. */
static int page_write_back(struct file *f, size_t i)
{
	off_t off = (off_t)i * PAGE_BYTES;
	if (off >= f->size)
		return 0;
	size_t n = (size_t)(f->size - off) < PAGE_BYTES ? (size_t)(f->size - off) : PAGE_BYTES;
	if (pwrite(f->fd, f->pages[i], n, off) != (ssize_t)n)
		return errno ? -errno : -EIO;
	return 0;
}

/* fsync/fdatasync: every buffered page of f reaches the backing file; so does the size. */
static int file_sync(struct file *f)
{
	for (size_t k = 0; k < f->ndirty; k++) {
		size_t i = f->dirty[k];
		if (page_get(f, i) == NULL)
			continue; /* dropped by a truncate */
		int rc = page_write_back(f, i);
		if (rc)
			return rc;
		g.synced_pages++;
	}
	struct stat st;
	if (fstat(f->fd, &st) != 0)
		return -errno;
	if (st.st_size < f->size && ftruncate(f->fd, f->size) != 0)
		return -errno;
	file_drop_pages(f);
	g.syncs++;
	return 0;
}

/* Truncation is metadata, durable at once: the backing file and the buffered pages follow. */
static int file_truncate(struct file *f, off_t size)
{
	if (ftruncate(f->fd, size) != 0)
		return -errno;
	size_t first = (size_t)((size + PAGE_BYTES - 1) / PAGE_BYTES);
	for (size_t i = first; i < f->pages_cap; i++) {
		if (f->pages[i]) {
			free(f->pages[i]);
			f->pages[i] = NULL;
			g.buffered_pages--;
		}
	}
	uint8_t *tail = page_get(f, (size_t)(size / PAGE_BYTES));
	if (tail && size % PAGE_BYTES)
		memset(tail + size % PAGE_BYTES, 0, PAGE_BYTES - size % PAGE_BYTES);
	f->size = size;
	return 0;
}

/* ------------------------------------------------------------------------ the cut */

struct cut_page {
	struct file *f;
	size_t i;
};

static uint64_t rng_next(uint64_t *s) /* splitmix64 */
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static int cut_page_cmp(const void *a, const void *b)
{
	const struct cut_page *x = a, *y = b;
	if (x->f->seq != y->f->seq)
		return x->f->seq < y->f->seq ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

/* The power cut: keep a seeded random keep/1000 of the unsynced pages, in random order. The
 * pages are listed in a reproducible order (file by first use, then page index), shuffled
 * with the seed, and the first round(n * keep / 1000) are written. */
static int power_cut(unsigned keep, uint64_t seed)
{
	size_t n = 0;
	for (struct file *f = g.files; f; f = f->next)
		for (size_t k = 0; k < f->ndirty; k++)
			n += page_get(f, f->dirty[k]) != NULL;
	struct cut_page *all = calloc(n ? n : 1, sizeof *all);
	if (all == NULL)
		return -ENOMEM;
	size_t m = 0;
	for (struct file *f = g.files; f; f = f->next)
		for (size_t k = 0; k < f->ndirty; k++)
			if (page_get(f, f->dirty[k]))
				all[m++] = (struct cut_page){f, f->dirty[k]};
	qsort(all, n, sizeof *all, cut_page_cmp);
	uint64_t s = seed;
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)(rng_next(&s) % i);
		struct cut_page t = all[i - 1];
		all[i - 1] = all[j];
		all[j] = t;
	}
	size_t kept = (size_t)(((uint64_t)n * keep + 500) / 1000);
	size_t files = 0;
	for (struct file *f = g.files; f; f = f->next)
		files += f->ndirty > 0;
	for (size_t k = 0; k < kept; k++) {
		/* the logical size may be past the backing file's: the kept page extends it, as a
		 * disk that wrote the block but not the size would not; the size is part of the
		 * page here (a simplification, docs/DURABILITY.md) */
		int rc = page_write_back(all[k].f, all[k].i);
		if (rc)
			fprintf(stderr, "powercutfs: cut: writing a kept page failed: %s\n",
				strerror(-rc));
	}
	for (struct file *f = g.files; f; f = f->next)
		file_drop_pages(f);
	fprintf(stderr,
		"powercutfs: cut: %zu unsynced pages in %zu files, %zu kept (keep %u/1000, seed "
		"%" PRIu64 "); every operation now fails with EIO\n",
		n, files, kept, keep, seed);
	free(all);
	g.dead = true;
	return 0;
}

static int control_write(const char *buf, size_t size)
{
	char cmd[128];
	if (size >= sizeof cmd)
		return -EINVAL;
	memcpy(cmd, buf, size);
	cmd[size] = 0;
	unsigned keep, ms;
	uint64_t seed;
	char extra;
	if (sscanf(cmd, "delay %u %c", &ms, &extra) == 1) {
		if (ms > DELAY_MS_MAX)
			return -EINVAL;
		g.delay_ms = ms;
		if (ms)
			fprintf(stderr, "powercutfs: every sync now waits %u ms first\n", ms);
		else
			fprintf(stderr, "powercutfs: syncs no longer wait\n");
		return (int)size;
	}
	if (sscanf(cmd, "cut %u %" SCNu64 " %c", &keep, &seed, &extra) != 2 || keep > 1000)
		return -EINVAL;
	int rc = power_cut(keep, seed);
	return rc ? rc : (int)size;
}

static int control_read(char *buf, size_t size, off_t off)
{
	char text[320];
	size_t files = 0;
	for (struct file *f = g.files; f; f = f->next)
		files += f->ndirty > 0;
	int n = snprintf(
		text, sizeof text,
		"unsynced_pages %" PRIu64 "\nunsynced_files %zu\nsyncs %" PRIu64
		"\nsynced_pages %" PRIu64 "\nsync_delay_ms %u\ndelayed_syncs %" PRIu64 "\n",
		g.buffered_pages, files, g.syncs, g.synced_pages, g.delay_ms, g.delayed_syncs);
	if (off >= n)
		return 0;
	size_t len = (size_t)(n - off) < size ? (size_t)(n - off) : size;
	memcpy(buf, text + off, len);
	return (int)len;
}

/* ------------------------------------------------------------------------ operations */

#define LOCKED(expr)                                                                               \
	do {                                                                                       \
		pthread_mutex_lock(&g.lock);                                                       \
		int rc_ = g.dead ? -EIO : (expr);                                                  \
		pthread_mutex_unlock(&g.lock);                                                     \
		return rc_;                                                                        \
	} while (0)

#define BPATH(path, b)                                                                             \
	char b[PATH_MAX];                                                                          \
	do {                                                                                       \
		int e_ = backing_path(path, b);                                                    \
		if (e_)                                                                            \
			return e_;                                                                 \
	} while (0)

static int do_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	if (is_control_fi(path, fi)) {
		memset(st, 0, sizeof *st);
		st->st_mode = S_IFREG | 0600;
		st->st_nlink = 1;
		st->st_uid = getuid();
		st->st_gid = getgid();
		return 0;
	}
	int rc;
	if (fi) {
		rc = fstat(handle_of(fi)->fd, st) == 0 ? 0 : -errno;
	} else {
		BPATH(path, b);
		rc = lstat(b, st) == 0 ? 0 : -errno;
	}
	if (rc == 0 && S_ISREG(st->st_mode)) {
		struct file *f = file_find(st->st_dev, st->st_ino);
		if (f) {
			st->st_size = f->size;
			st->st_blocks = (f->size + 511) / 512 > st->st_blocks
						? (f->size + 511) / 512
						: st->st_blocks;
		}
	}
	return rc;
}

static int op_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	LOCKED(do_getattr(path, st, fi));
}

static int do_readlink(const char *path, char *buf, size_t size)
{
	BPATH(path, b);
	ssize_t n = readlink(b, buf, size - 1);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	return 0;
}

static int op_readlink(const char *path, char *buf, size_t size)
{
	LOCKED(do_readlink(path, buf, size));
}

static int do_mknod(const char *path, mode_t mode, dev_t rdev)
{
	BPATH(path, b);
	int rc = S_ISFIFO(mode) ? mkfifo(b, mode) : mknod(b, mode, rdev);
	return rc == 0 ? 0 : -errno;
}

static int op_mknod(const char *path, mode_t mode, dev_t rdev)
{
	LOCKED(do_mknod(path, mode, rdev));
}

static int do_mkdir(const char *path, mode_t mode)
{
	BPATH(path, b);
	return mkdir(b, mode) == 0 ? 0 : -errno;
}

static int op_mkdir(const char *path, mode_t mode)
{
	LOCKED(do_mkdir(path, mode));
}

/* A file whose last name went away while nothing has it open can no longer be read or
 * synced: its buffered pages are dropped (a cut would lose them anyway) and its record freed,
 * which closes the backing descriptor. Kept, the descriptor held the deleted file's blocks
 * until the next cut: a wiped node's LMDB file with unsynced pages (moved out of the data
 * dir) went on filling the node's small file system unseen (jepsen-lite seeds 711 and 713). */
static void forget_if_gone(dev_t dev, ino_t ino)
{
	struct file *f = file_find(dev, ino);
	struct stat st;
	if (f == NULL || f->opens > 0 || fstat(f->fd, &st) != 0 || st.st_nlink > 0)
		return;
	file_drop_pages(f);
	file_maybe_free(f);
}

static int do_unlink(const char *path)
{
	BPATH(path, b);
	struct stat st;
	bool known = lstat(b, &st) == 0;
	if (unlink(b) != 0)
		return -errno;
	if (known)
		forget_if_gone(st.st_dev, st.st_ino);
	return 0;
}

static int op_unlink(const char *path)
{
	LOCKED(do_unlink(path));
}

static int do_rmdir(const char *path)
{
	BPATH(path, b);
	return rmdir(b) == 0 ? 0 : -errno;
}

static int op_rmdir(const char *path)
{
	LOCKED(do_rmdir(path));
}

static int do_symlink(const char *target, const char *path)
{
	BPATH(path, b);
	return symlink(target, b) == 0 ? 0 : -errno;
}

static int op_symlink(const char *target, const char *path)
{
	LOCKED(do_symlink(target, path));
}

static int do_rename(const char *from, const char *to, unsigned int flags)
{
	BPATH(from, a);
	BPATH(to, b);
	struct stat st;
	bool replaced = lstat(b, &st) == 0; /* the target's inode loses that name */
	if (renameat2(AT_FDCWD, a, AT_FDCWD, b, flags) != 0)
		return -errno;
	if (replaced)
		forget_if_gone(st.st_dev, st.st_ino);
	return 0;
}

static int op_rename(const char *from, const char *to, unsigned int flags)
{
	LOCKED(do_rename(from, to, flags));
}

static int do_link(const char *from, const char *to)
{
	BPATH(from, a);
	BPATH(to, b);
	return link(a, b) == 0 ? 0 : -errno;
}

static int op_link(const char *from, const char *to)
{
	LOCKED(do_link(from, to));
}

static int do_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	if (is_control_fi(path, fi))
		return -EPERM;
	if (fi)
		return fchmod(handle_of(fi)->fd, mode) == 0 ? 0 : -errno;
	BPATH(path, b);
	return chmod(b, mode) == 0 ? 0 : -errno;
}

static int op_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	LOCKED(do_chmod(path, mode, fi));
}

static int do_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	if (is_control_fi(path, fi))
		return -EPERM;
	if (fi)
		return fchown(handle_of(fi)->fd, uid, gid) == 0 ? 0 : -errno;
	BPATH(path, b);
	return lchown(b, uid, gid) == 0 ? 0 : -errno;
}

static int op_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	LOCKED(do_chown(path, uid, gid, fi));
}

static int do_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	if (is_control_fi(path, fi))
		return 0;
	if (fi)
		return handle_of(fi)->f ? file_truncate(handle_of(fi)->f, size) : -EISDIR;
	BPATH(path, b);
	struct stat st;
	if (lstat(b, &st) != 0)
		return -errno;
	struct file *f = file_find(st.st_dev, st.st_ino);
	if (f)
		return file_truncate(f, size);
	return truncate(b, size) == 0 ? 0 : -errno;
}

static int op_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	LOCKED(do_truncate(path, size, fi));
}

static int do_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	if (is_control_fi(path, fi))
		return 0;
	if (fi)
		return futimens(handle_of(fi)->fd, tv) == 0 ? 0 : -errno;
	BPATH(path, b);
	return utimensat(AT_FDCWD, b, tv, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
}

static int op_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	LOCKED(do_utimens(path, tv, fi));
}

static int open_handle(const char *path, int flags, mode_t mode, bool create,
		       struct fuse_file_info *fi)
{
	if (is_control(path)) {
		fi->fh = 0;
		fi->direct_io = 1; /* reads reach us whatever the size says */
		return 0;
	}
	BPATH(path, b);
	bool trunc = flags & O_TRUNC;
	/* O_DIRECT, O_SYNC and O_DSYNC are the kernel's business between it and us; the backing
	 * file is opened plainly (a synchronous open still buffers here: kvd uses fdatasync) */
	flags &= ~(O_TRUNC | O_DIRECT | O_SYNC | O_DSYNC);
	if ((flags & O_ACCMODE) == O_WRONLY)
		flags = (flags & ~O_ACCMODE) | O_RDWR;
	int fd = create ? open(b, flags | O_CREAT, mode) : open(b, flags);
	if (fd < 0)
		return -errno;
	struct handle *h = calloc(1, sizeof *h);
	if (h == NULL) {
		close(fd);
		return -ENOMEM;
	}
	h->fd = fd;
	int rc = file_get(b, fd, &h->f);
	if (rc == 0 && trunc)
		rc = file_truncate(h->f, 0);
	if (rc) {
		if (h->f) {
			h->f->opens--;
			file_maybe_free(h->f);
		}
		close(fd);
		free(h);
		return rc;
	}
	fi->fh = (uint64_t)(uintptr_t)h;
	return 0;
}

static int op_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	LOCKED(open_handle(path, fi->flags, mode, true, fi));
}

static int op_open(const char *path, struct fuse_file_info *fi)
{
	LOCKED(open_handle(path, fi->flags, 0, false, fi));
}

static int do_read(char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	if (fi->fh == 0)
		return control_read(buf, size, off);
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct file *f = h->f;
	if (off >= f->size)
		return 0;
	if ((off_t)size > f->size - off)
		size = (size_t)(f->size - off);
	ssize_t n = pread(f->fd, buf, size, off);
	if (n < 0)
		return -errno;
	memset(buf + n, 0, size - (size_t)n); /* grown by buffered writes: holes read as zero */
	for (off_t pos = off; pos < off + (off_t)size;) {
		size_t i = (size_t)(pos / PAGE_BYTES);
		off_t in = pos % PAGE_BYTES;
		size_t len = PAGE_BYTES - (size_t)in;
		if (pos + (off_t)len > off + (off_t)size)
			len = (size_t)(off + (off_t)size - pos);
		uint8_t *p = page_get(f, i);
		if (p)
			memcpy(buf + (pos - off), p + in, len);
		pos += (off_t)len;
	}
	return (int)size;
}

static int op_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)path;
	LOCKED(do_read(buf, size, off, fi));
}

static int do_write(const char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	if (fi->fh == 0)
		return control_write(buf, size);
	struct file *f = ((struct handle *)(uintptr_t)fi->fh)->f;
	if (!f->writable)
		return -EBADF;
	for (off_t pos = off; pos < off + (off_t)size;) {
		size_t i = (size_t)(pos / PAGE_BYTES);
		off_t in = pos % PAGE_BYTES;
		size_t len = PAGE_BYTES - (size_t)in;
		if (pos + (off_t)len > off + (off_t)size)
			len = (size_t)(off + (off_t)size - pos);
		uint8_t *p = NULL;
		int rc = page_make(f, i, len == PAGE_BYTES, &p);
		if (rc)
			return pos > off ? (int)(pos - off) : rc;
		memcpy(p + in, buf + (pos - off), len);
		pos += (off_t)len;
		if (pos > f->size)
			f->size = pos;
	}
	return (int)size;
}

static int op_write(const char *path, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	(void)path;
	LOCKED(do_write(buf, size, off, fi));
}

static int do_statfs(const char *path, struct statvfs *st)
{
	(void)path;
	return statvfs(g.backing, st) == 0 ? 0 : -errno;
}

static int op_statfs(const char *path, struct statvfs *st)
{
	LOCKED(do_statfs(path, st));
}

static int op_flush(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	if (fi->fh == 0)
		return 0; /* closing the control file after a cut is not an error */
	LOCKED(0);
}

static int op_release(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	if (fi->fh == 0)
		return 0;
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	pthread_mutex_lock(&g.lock);
	h->f->opens--;
	file_maybe_free(h->f);
	close(h->fd);
	free(h);
	pthread_mutex_unlock(&g.lock);
	return 0;
}

/* The slow disk: a sync waits g.delay_ms before it starts, without the lock, so that other
 * threads' reads and writes (FUSE runs each request on its own thread) go on meanwhile; the
 * data is not durable until the wait is over, and a cut during it makes the sync fail. */
static void sync_delay(void)
{
	pthread_mutex_lock(&g.lock);
	unsigned ms = g.dead ? 0 : g.delay_ms;
	g.delayed_syncs += ms > 0;
	pthread_mutex_unlock(&g.lock);
	if (ms > 0) {
		struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
}

static int op_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	(void)path;
	(void)datasync;
	if (fi->fh == 0)
		LOCKED(0);
	sync_delay();
	LOCKED(file_sync(((struct handle *)(uintptr_t)fi->fh)->f));
}

static int do_fallocate(int mode, off_t off, off_t len, struct fuse_file_info *fi)
{
	if (fi->fh == 0)
		return -EOPNOTSUPP;
	struct file *f = ((struct handle *)(uintptr_t)fi->fh)->f;
	if (mode != 0)
		return -EOPNOTSUPP; /* punching holes would have to reach the buffered pages */
	if (fallocate(f->fd, 0, off, len) != 0)
		return -errno;
	if (off + len > f->size)
		f->size = off + len;
	return 0;
}

static int op_fallocate(const char *path, int mode, off_t off, off_t len, struct fuse_file_info *fi)
{
	(void)path;
	LOCKED(do_fallocate(mode, off, len, fi));
}

static int do_opendir(const char *path, struct fuse_file_info *fi)
{
	BPATH(path, b);
	struct handle *h = calloc(1, sizeof *h);
	if (h == NULL)
		return -ENOMEM;
	h->dir = opendir(b);
	if (h->dir == NULL) {
		int err = errno;
		free(h);
		return -err;
	}
	h->fd = dirfd(h->dir);
	fi->fh = (uint64_t)(uintptr_t)h;
	return 0;
}

static int op_opendir(const char *path, struct fuse_file_info *fi)
{
	LOCKED(do_opendir(path, fi));
}

static int do_readdir(void *buf, fuse_fill_dir_t fill, off_t off, struct fuse_file_info *fi)
{
	DIR *d = handle_of(fi)->dir;
	if (off == 0)
		rewinddir(d);
	else
		seekdir(d, off);
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		struct stat st = {.st_ino = e->d_ino, .st_mode = (mode_t)DTTOIF(e->d_type)};
		if (fill(buf, e->d_name, &st, telldir(d), 0))
			break;
	}
	return 0;
}

static int op_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
		      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	(void)path;
	(void)flags;
	LOCKED(do_readdir(buf, fill, off, fi));
}

static int op_releasedir(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	struct handle *h = handle_of(fi);
	closedir(h->dir);
	free(h);
	return 0;
}

static int op_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
	(void)path;
	(void)datasync;
	(void)fi;
	sync_delay();
	LOCKED(0); /* metadata is durable at once */
}

static int do_access(const char *path, int mask)
{
	if (is_control(path))
		return 0;
	BPATH(path, b);
	return access(b, mask) == 0 ? 0 : -errno;
}

static int op_access(const char *path, int mask)
{
	LOCKED(do_access(path, mask));
}

static void *op_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE; /* every write() must reach us */
	cfg->use_ino = 1;
	cfg->nullpath_ok = 1;
	cfg->hard_remove = 1; /* no .fuse_hidden files: open handles carry their own fd */
	cfg->entry_timeout = 0;
	cfg->attr_timeout = 0;
	cfg->negative_timeout = 0;
	cfg->direct_io = 0;    /* the page cache stays: shared mmap must work (LMDB) */
	cfg->kernel_cache = 0; /* and is dropped at every open */
	return NULL;
}

static const struct fuse_operations ops = {
	.init = op_init,
	.getattr = op_getattr,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.chmod = op_chmod,
	.chown = op_chown,
	.truncate = op_truncate,
	.utimens = op_utimens,
	.open = op_open,
	.create = op_create,
	.read = op_read,
	.write = op_write,
	.statfs = op_statfs,
	.flush = op_flush,
	.release = op_release,
	.fsync = op_fsync,
	.fallocate = op_fallocate,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsyncdir,
	.access = op_access,
};

static void usage(void)
{
	fprintf(stderr, "usage: powercutfs [--max-mb N] BACKING_DIR MOUNTPOINT [FUSE options]\n"
			"  write \"cut KEEP_PER_MILLE SEED\" into MOUNTPOINT/.powercut to cut the "
			"power,\n"
			"  \"delay MS\" to make every fsync wait MS milliseconds (0: none)\n");
}

int main(int argc, char **argv)
{
	uint64_t max_mb = MAX_MB_DEFAULT;
	int i = 1;
	if (i + 1 < argc && strcmp(argv[i], "--max-mb") == 0) {
		char *end;
		unsigned long long v = strtoull(argv[i + 1], &end, 10);
		if (*end || v == 0 || v > (1ull << 20)) {
			usage();
			return 2;
		}
		max_mb = v;
		i += 2;
	}
	if (argc - i < 2) {
		usage();
		return 2;
	}
	if (realpath(argv[i], g.backing) == NULL) {
		fprintf(stderr, "powercutfs: %s: %s\n", argv[i], strerror(errno));
		return 2;
	}
	g.max_bytes = max_mb << 20;
	/* fuse_main gets: program name, the mount point, then the caller's FUSE options */
	char **fargv = calloc((size_t)argc + 1, sizeof *fargv);
	if (fargv == NULL)
		return 1;
	int fargc = 0;
	fargv[fargc++] = argv[0];
	for (int k = i + 1; k < argc; k++)
		fargv[fargc++] = argv[k];
	int rc = fuse_main(fargc, fargv, &ops, NULL);
	free(fargv);
	return rc;
}
