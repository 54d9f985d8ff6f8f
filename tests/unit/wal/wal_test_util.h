/* wal_test_util.h — fixtures shared by the wal/ unit tests (header-only: each test file is
 * its own Check binary). Temporary directories, deterministic entry contents, file copies.
 */
#ifndef RINGRAFT_WAL_TEST_UTIL_H
#define RINGRAFT_WAL_TEST_UTIL_H

#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wal/wal.h"

/* Runs a suite; the process's exit status: 0 if every test passed. */
static inline int wal_test_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

/* A fresh directory under $TMPDIR (or /tmp); free the string after tmp_rmdir. */
static inline char *tmp_dir(void)
{
	const char *base = getenv("TMPDIR");
	char *p;
	ck_assert(asprintf(&p, "%s/ringraft-wal-XXXXXX", base ? base : "/tmp") > 0);
	ck_assert_ptr_nonnull(mkdtemp(p));
	return p;
}

/* The O_DIRECT alignment the temporary directory's file system asks for, 0 if it has none
 * (then the WAL writes through the page cache): what wal/segment.c finds out the same way. */
static inline uint32_t dio_align_of_tmp(void)
{
	const char *base = getenv("TMPDIR");
	char *p;
	ck_assert(asprintf(&p, "%s/ringraft-dio-XXXXXX", base ? base : "/tmp") > 0);
	int fd = mkstemp(p);
	ck_assert_int_ge(fd, 0);
	uint32_t align = 0;
	struct statx sx;
	int dfd = open(p, O_WRONLY | O_DIRECT);
	if (dfd >= 0 && statx(dfd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
	    (sx.stx_mask & STATX_DIOALIGN) && sx.stx_dio_mem_align <= 4096 &&
	    sx.stx_dio_offset_align <= 4096)
		align = sx.stx_dio_offset_align < 8 ? 8 : sx.stx_dio_offset_align;
	if (dfd >= 0)
		close(dfd);
	close(fd);
	unlink(p);
	free(p);
	return align;
}

/* Removes the files of a (flat) directory and the directory. */
static inline void tmp_rmdir(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char path[512];
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

/* Copies every file of src into dst (created). */
static inline void copy_dir(const char *src, const char *dst)
{
	mkdir(dst, 0755);
	DIR *d = opendir(src);
	ck_assert_ptr_nonnull(d);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char a[512], b[512];
		snprintf(a, sizeof a, "%s/%s", src, de->d_name);
		snprintf(b, sizeof b, "%s/%s", dst, de->d_name);
		int in = open(a, O_RDONLY), out = open(b, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		ck_assert(in >= 0 && out >= 0);
		char buf[65536];
		ssize_t k;
		while ((k = read(in, buf, sizeof buf)) > 0)
			ck_assert_int_eq(write(out, buf, (size_t)k), k);
		close(in);
		close(out);
	}
	closedir(d);
}

/* Deterministic entry content: the reader can check any entry from (group, index, term). */
static inline size_t entry_fill(uint64_t group, raft_index index, raft_term term, uint8_t *buf,
				size_t len)
{
	uint64_t x = group * 0x9E3779B97F4A7C15ull ^ index * 0xC2B2AE3D27D4EB4Full ^ term;
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (uint8_t)x;
	}
	return len;
}

static inline size_t entry_len(uint64_t group, raft_index index, raft_term term)
{
	return (size_t)((group * 7 + index * 13 + term) % 97);
}

/* Adds entries [lo, hi) of group with term, deterministic contents; false if that failed.
 * Calls nothing of check's: a forked child that is SIGKILLed uses it (see add_entries). */
static inline bool try_add_entries(struct wal_batch *b, uint64_t group, raft_index lo,
				   raft_index hi, raft_term term)
{
	size_t n = (size_t)(hi - lo);
	struct raft_entry *e = calloc(n, sizeof *e);
	if (!e)
		return false;
	bool ok = true;
	for (size_t i = 0; i < n; i++) {
		raft_index idx = lo + i;
		size_t len = entry_len(group, idx, term);
		e[i].index = idx;
		e[i].term = term;
		e[i].type = (uint8_t)(idx % 2);
		e[i].data.base = malloc(len + 1);
		ok = ok && e[i].data.base;
		if (e[i].data.base)
			e[i].data.len = entry_fill(group, idx, term, e[i].data.base, len);
	}
	ok = ok && wal_batch_entries(b, group, e, n) == WAL_OK;
	for (size_t i = 0; i < n; i++)
		free(e[i].data.base);
	free(e);
	return ok;
}

/* try_add_entries, asserted. Not for a child that may be killed: every passing ck_assert
 * writes a record into the file check shares with the test's process, and a kill in the
 * middle of one leaves that file unreadable ("Bad message type"), failing the test. */
static inline void add_entries(struct wal_batch *b, uint64_t group, raft_index lo, raft_index hi,
			       raft_term term)
{
	ck_assert(try_add_entries(b, group, lo, hi, term));
}

/* Checks that entry e is what add_entries wrote for (group, index, term). */
static inline void check_entry(uint64_t group, const struct raft_entry *e, raft_term term)
{
	ck_assert_uint_eq(e->term, term);
	ck_assert_uint_eq(e->type, e->index % 2);
	size_t len = entry_len(group, e->index, term);
	ck_assert_uint_eq(e->data.len, len);
	uint8_t want[128];
	entry_fill(group, e->index, term, want, len);
	ck_assert(memcmp(e->data.base, want, len) == 0);
}

static inline struct wal *open_ok(const char *dir, const struct wal_options *o)
{
	struct wal *w = NULL;
	struct wal_corruption c;
	int rc = wal_open(dir, o, false, &w, &c);
	ck_assert_msg(rc == WAL_OK, "wal_open: %s (%s @%llu: %s)", wal_strerror(rc), c.segment,
		      (unsigned long long)c.offset, c.reason);
	return w;
}

static inline void write_ok(struct wal *w, struct wal_batch *b)
{
	int rc = wal_batch_write(w, b);
	ck_assert_msg(rc == WAL_OK, "wal_batch_write: %s", wal_strerror(rc));
}

/* The path of the n-th segment file (sorted), or "" if fewer. */
static inline void seg_path(const char *dir, size_t n, char *out, size_t cap)
{
	struct dirent **names;
	int k = scandir(dir, &names, NULL, alphasort);
	size_t seen = 0;
	out[0] = 0;
	for (int i = 0; i < k; i++) {
		const char *nm = names[i]->d_name;
		size_t l = strlen(nm);
		if (l > 4 && strcmp(nm + l - 4, ".wal") == 0 && seen++ == n)
			snprintf(out, cap, "%s/%s", dir, nm);
		free(names[i]);
	}
	free(names);
}

#endif
