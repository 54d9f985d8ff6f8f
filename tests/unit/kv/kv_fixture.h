/* kv_fixture.h — shared by the kv/ test suites (header-only: tests/lib/ is linked into every
 * module's tests, and only kv/'s link libkv). A fresh environment in a temporary directory,
 * and helpers that encode a command, apply it as the next log entry and keep its result.
 */
#ifndef RINGRAFT_TEST_KV_FIXTURE_H
#define RINGRAFT_TEST_KV_FIXTURE_H

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kv/kv.h"

struct fx {
	char dir[256];
	struct kv *kv;
	raft_index next[KV_GROUPS_MAX + 1]; /* next index to apply, per group */
	raft_term term;
};

/* A copy of the last result the apply callback saw. */
struct fx_res {
	int calls;
	struct kv_result res;
	char value[4096];
	raft_index index;
};

/* Removes dir and everything under it. */
static inline void fx_rmdir(const char *dir)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return;
	struct dirent *e;
	char path[512];
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		int n = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		if (n < 0 || (size_t)n >= sizeof path)
			continue;
		if (unlink(path) != 0)
			fx_rmdir(path); /* a directory (a node's wal/ and kv/) */
	}
	closedir(d);
	rmdir(dir);
}

static inline void fx_open_opts(struct fx *f, const struct kv_options *o)
{
	const char *tmp = getenv("TMPDIR");
	memset(f, 0, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "%s/kvtest.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(f->dir));
	ck_assert_int_eq(kv_open(f->dir, o, &f->kv), KV_OK);
	for (int g = 0; g <= KV_GROUPS_MAX; g++)
		f->next[g] = 1;
	f->term = 1;
}

static inline void fx_open(struct fx *f)
{
	fx_open_opts(f, NULL);
}

static inline void fx_close(struct fx *f)
{
	kv_close(f->kv);
	f->kv = NULL;
	fx_rmdir(f->dir);
}

static inline void fx_res_cb(const struct raft_entry *e, const struct kv_result *res, void *arg)
{
	struct fx_res *r = arg;
	r->calls++;
	r->res = *res;
	r->index = e->index;
	ck_assert_uint_le(res->value_len, sizeof r->value);
	if (res->value_len)
		memcpy(r->value, res->value, res->value_len);
	r->res.value = r->value;
}

/* Encodes c, applies it as the group's next entry, returns the apply error; *out the result. */
static inline int fx_apply_cmd(struct fx *f, uint32_t group, const struct kv_cmd *c,
			       struct fx_res *out)
{
	struct raft_buf b;
	ck_assert_int_eq(kv_cmd_encode(f->kv, c, &b), KV_OK);
	struct raft_entry e = {
		.term = f->term, .index = f->next[group], .type = RAFT_ENTRY_NORMAL, .data = b};
	struct fx_res local;
	memset(&local, 0, sizeof local);
	int err = kv_apply(f->kv, group, &e, 1, NULL, fx_res_cb, &local);
	free(b.base);
	if (err == KV_OK) {
		ck_assert_int_eq(local.calls, 1);
		f->next[group]++;
	}
	if (out)
		*out = local;
	return err;
}

static inline struct kv_cmd fx_put_cmd(const char *k, const char *v)
{
	struct kv_cmd c = {.op = KV_OP_PUT,
			   .key = k,
			   .key_len = strlen(k),
			   .value = v,
			   .value_len = strlen(v)};
	return c;
}

static inline int fx_put(struct fx *f, uint32_t group, const char *k, const char *v)
{
	struct kv_cmd c = fx_put_cmd(k, v);
	struct fx_res r;
	int err = fx_apply_cmd(f, group, &c, &r);
	return err == KV_OK ? r.res.code : err;
}

static inline int fx_del(struct fx *f, uint32_t group, const char *k)
{
	struct kv_cmd c = {.op = KV_OP_DELETE, .key = k, .key_len = strlen(k)};
	struct fx_res r;
	int err = fx_apply_cmd(f, group, &c, &r);
	return err == KV_OK ? r.res.code : err;
}

/* Asserts the key's value (NULL: absent). */
static inline void fx_expect(struct fx *f, uint32_t group, const char *k, const char *want)
{
	void *v = NULL;
	size_t n = 0;
	int err = kv_get(f->kv, group, k, strlen(k), 0, &v, &n, NULL);
	if (want == NULL) {
		ck_assert_int_eq(err, KV_NOT_FOUND);
		return;
	}
	ck_assert_int_eq(err, KV_OK);
	ck_assert_uint_eq(n, strlen(want));
	ck_assert(memcmp(v, want, n) == 0);
	free(v);
}

/* Closes the environment, flips one bit in every copy of `pattern` found in data.mdb (LMDB's
 * copy-on-write may have left older copies in free pages; the live one is among them), and
 * reopens it with the default options. The pattern must be distinctive. Returns how many
 * copies were damaged (asserted > 0). */
static inline int fx_damage(struct fx *f, const char *pattern)
{
	kv_close(f->kv);
	f->kv = NULL;
	char path[512];
	snprintf(path, sizeof path, "%s/data.mdb", f->dir);
	FILE *fp = fopen(path, "r+b");
	ck_assert_ptr_nonnull(fp);
	ck_assert_int_eq(fseek(fp, 0, SEEK_END), 0);
	long size = ftell(fp);
	ck_assert_int_gt(size, 0);
	char *buf = malloc((size_t)size);
	ck_assert_ptr_nonnull(buf);
	rewind(fp);
	ck_assert_uint_eq(fread(buf, 1, (size_t)size, fp), (size_t)size);
	size_t pl = strlen(pattern);
	int hits = 0;
	for (char *p = buf; (p = memmem(p, (size_t)(buf + size - p), pattern, pl)) != NULL;
	     p += pl) {
		long off = (long)(p - buf) + (long)pl / 2;
		char c = (char)(buf[off] ^ 0x01);
		ck_assert_int_eq(fseek(fp, off, SEEK_SET), 0);
		ck_assert_int_eq(fputc(c, fp), (unsigned char)c);
		hits++;
	}
	ck_assert_int_eq(fclose(fp), 0);
	free(buf);
	ck_assert_int_gt(hits, 0);
	ck_assert_int_eq(kv_open(f->dir, NULL, &f->kv), KV_OK);
	return hits;
}

/* Asserts that kv_last_corrupt() names (group, key). */
static inline void fx_expect_corrupt(struct fx *f, uint32_t group, const char *key)
{
	uint32_t g = 0;
	char k[KV_KEY_MAX];
	size_t kl = 0;
	ck_assert_int_eq(kv_last_corrupt(f->kv, &g, k, sizeof k, &kl), KV_OK);
	ck_assert_uint_eq(g, group);
	ck_assert_uint_eq(kl, strlen(key));
	ck_assert(memcmp(k, key, kl) == 0);
}

static inline raft_index fx_applied(struct fx *f, uint32_t group)
{
	struct kv_group_meta m;
	ck_assert_int_eq(kv_meta(f->kv, group, &m), KV_OK);
	return m.applied_index;
}

#endif
