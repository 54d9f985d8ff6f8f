/* test_kv.c — the environment: limits on keys and values (errors, never crashes), a full map
 * (a clear KV_EMAPFULL that applied nothing; growth within map_bytes_max; no growth under an
 * open snapshot), checkpoint's durable indexes, recovery after a process crash followed by
 * WAL-style replay, refusal of an older on-disk format, and a really full file system (a
 * small tmpfs): KV_ENOSPC, never a signal, and the environment works again once space returns;
 * the page cache kept ahead of the data file's end (no large folios under LMDB's rewrites).
 */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "kv_fixture.h"

START_TEST(test_key_and_value_limits)
{
	struct fx f;
	struct kv_options o;
	kv_options_default(&o);
	o.value_max = 1000;
	fx_open_opts(&f, &o);
	char key[KV_KEY_MAX + 2], *val = malloc(1002);
	memset(key, 'k', sizeof key);
	memset(val, 'v', 1002);
	struct raft_buf b;
	struct kv_cmd c = {.op = KV_OP_PUT, .key = key, .key_len = 0, .value = val, .value_len = 1};
	ck_assert_int_eq(kv_cmd_encode(f.kv, &c, &b), KV_EINVAL);
	c.key_len = KV_KEY_MAX + 1;
	ck_assert_int_eq(kv_cmd_encode(f.kv, &c, &b), KV_EINVAL);
	c.key_len = KV_KEY_MAX;
	c.value_len = 1001;
	ck_assert_int_eq(kv_cmd_encode(f.kv, &c, &b), KV_ETOOLARGE);
	c.value_len = 1000;
	struct fx_res r;
	ck_assert_int_eq(fx_apply_cmd(&f, 1, &c, &r), KV_OK);
	ck_assert_int_eq(r.res.code, KV_OK);
	void *v;
	size_t n;
	ck_assert_int_eq(kv_get(f.kv, 1, key, KV_KEY_MAX, 0, &v, &n, NULL), KV_OK);
	ck_assert_uint_eq(n, 1000);
	free(v);
	ck_assert_int_eq(kv_get(f.kv, 1, key, KV_KEY_MAX + 1, 0, &v, &n, NULL), KV_EINVAL);
	ck_assert_int_eq(kv_get(f.kv, 1, key, 0, 0, &v, &n, NULL), KV_EINVAL);
	/* CAS expected value over the limit */
	struct kv_cmd cas = {.op = KV_OP_CAS,
			     .key = "k",
			     .key_len = 1,
			     .expected = val,
			     .expected_len = 1001,
			     .value = "x",
			     .value_len = 1};
	ck_assert_int_eq(kv_cmd_encode(f.kv, &cas, &b), KV_ETOOLARGE);
	free(val);
	fx_close(&f);
}
END_TEST

START_TEST(test_default_value_max_one_mib)
{
	struct fx f;
	fx_open(&f);
	size_t big = KV_VALUE_MAX_DEFAULT;
	char *val = malloc(big + 1);
	memset(val, 'x', big + 1);
	struct kv_cmd c = {
		.op = KV_OP_PUT, .key = "big", .key_len = 3, .value = val, .value_len = big};
	struct fx_res r;
	ck_assert_int_eq(fx_apply_cmd(&f, 1, &c, &r), KV_OK);
	void *v;
	size_t n;
	ck_assert_int_eq(kv_get(f.kv, 1, "big", 3, 0, &v, &n, NULL), KV_OK);
	ck_assert_uint_eq(n, big);
	free(v);
	struct raft_buf b;
	c.value_len = big + 1;
	ck_assert_int_eq(kv_cmd_encode(f.kv, &c, &b), KV_ETOOLARGE);
	free(val);
	fx_close(&f);
}
END_TEST

static void count_cb(const struct raft_entry *e, const struct kv_result *res, void *arg)
{
	(void)e;
	(void)res;
	(*(int *)arg)++;
}

/* Applies 4 KiB puts one entry at a time until one fails; returns the failure. */
static int fill_until_error(struct fx *f, int max_puts, int *applied)
{
	char *val = malloc(4096), k[32];
	memset(val, 'm', 4096);
	int err = KV_OK;
	for (*applied = 0; *applied < max_puts; (*applied)++) {
		snprintf(k, sizeof k, "fill%06d", *applied);
		struct kv_cmd c = {.op = KV_OP_PUT,
				   .key = k,
				   .key_len = strlen(k),
				   .value = val,
				   .value_len = 4096};
		struct raft_buf b;
		ck_assert_int_eq(kv_cmd_encode(f->kv, &c, &b), KV_OK);
		struct raft_entry e = {.index = f->next[1], .term = 1, .data = b};
		int calls = 0;
		err = kv_apply(f->kv, 1, &e, 1, NULL, count_cb, &calls);
		free(b.base);
		if (err != KV_OK) {
			ck_assert_int_eq(calls, 0); /* nobody was answered */
			break;
		}
		ck_assert_int_eq(calls, 1);
		f->next[1]++;
	}
	free(val);
	return err;
}

START_TEST(test_full_map_reported)
{
	struct fx f;
	struct kv_options o;
	kv_options_default(&o);
	o.writemap = _i; /* both commit paths */
	o.map_bytes = 256 << 10;
	o.map_bytes_max = o.map_bytes; /* may not grow */
	fx_open_opts(&f, &o);
	int applied;
	ck_assert_int_eq(fill_until_error(&f, 1000, &applied), KV_EMAPFULL);
	ck_assert_int_gt(applied, 5);
	/* The failed batch left no trace; what was applied before is intact. */
	ck_assert_uint_eq(fx_applied(&f, 1), (raft_index)applied);
	struct kv_group_meta m;
	ck_assert_int_eq(kv_meta(f.kv, 1, &m), KV_OK);
	ck_assert_uint_eq(m.keys, (uint64_t)applied);
	ck_assert_str_eq(kv_strerror(KV_EMAPFULL),
			 "LMDB map full (raise map_bytes / map_bytes_max)");
	/* Restarting with a bigger map lets the same entry apply (the node's way out). */
	kv_close(f.kv);
	o.map_bytes = o.map_bytes_max = 4 << 20;
	ck_assert_int_eq(kv_open(f.dir, &o, &f.kv), KV_OK);
	int more;
	ck_assert_int_eq(fill_until_error(&f, 20, &more), KV_OK);
	ck_assert_uint_eq(fx_applied(&f, 1), (raft_index)applied + 20);
	fx_close(&f);
}
END_TEST

START_TEST(test_map_grows)
{
	struct fx f;
	struct kv_options o;
	kv_options_default(&o);
	o.writemap = _i; /* both commit paths */
	o.map_bytes = 256 << 10;
	o.map_bytes_max = 64 << 20;
	fx_open_opts(&f, &o);
	int applied;
	ck_assert_int_eq(fill_until_error(&f, 500, &applied), KV_OK); /* ~2 MB of values */
	ck_assert_uint_gt(kv_size_bytes(f.kv), 2u << 20);
	fx_close(&f);
}
END_TEST

START_TEST(test_no_growth_under_snapshot)
{
	struct fx f;
	struct kv_options o;
	kv_options_default(&o);
	o.writemap = _i; /* both commit paths */
	o.map_bytes = 256 << 10;
	o.map_bytes_max = 64 << 20;
	fx_open_opts(&f, &o);
	ck_assert_int_eq(fx_put(&f, 1, "a", "b"), KV_OK);
	struct kv_snapshot *s;
	ck_assert_int_eq(kv_snapshot_begin(f.kv, 1, &s), KV_OK);
	int applied;
	ck_assert_int_eq(fill_until_error(&f, 1000, &applied), KV_EMAPFULL);
	kv_snapshot_end(s);
	int more;
	ck_assert_int_eq(fill_until_error(&f, 100, &more), KV_OK);
	fx_close(&f);
}
END_TEST

/* One batch bigger than the whole map: MDB_MAP_FULL, the map doubles, the batch runs again,
 * and every entry is answered exactly once, in order. */
struct seen_order {
	raft_index last;
	int calls;
};

static void order_cb(const struct raft_entry *e, const struct kv_result *res, void *arg)
{
	struct seen_order *o = arg;
	ck_assert_int_eq(res->code, KV_OK);
	ck_assert_uint_eq(e->index, o->last + 1);
	o->last = e->index;
	o->calls++;
}

START_TEST(test_retry_after_growth_answers_once)
{
	struct fx f;
	struct kv_options o;
	kv_options_default(&o);
	o.writemap = _i;
	o.map_bytes = 256 << 10;
	o.map_bytes_max = 64 << 20;
	fx_open_opts(&f, &o);
	enum { N = 40 }; /* 40 values of 4 KiB: 2 pages each, about 330 KB */
	struct raft_entry e[N];
	char *val = calloc(1, 4096), k[N][16];
	for (int i = 0; i < N; i++) {
		snprintf(k[i], sizeof k[i], "big%02d", i);
		struct kv_cmd c = {.op = KV_OP_PUT,
				   .key = k[i],
				   .key_len = strlen(k[i]),
				   .value = val,
				   .value_len = 4096};
		e[i] = (struct raft_entry){.index = (raft_index)i + 1, .term = 1};
		ck_assert_int_eq(kv_cmd_encode(f.kv, &c, &e[i].data), KV_OK);
	}
	uint64_t before = kv_size_bytes(f.kv);
	struct seen_order seen = {0};
	ck_assert_int_eq(kv_apply(f.kv, 1, e, N, NULL, order_cb, &seen), KV_OK);
	ck_assert_int_eq(seen.calls, N);
	ck_assert_uint_gt(kv_size_bytes(f.kv), 256 << 10);
	ck_assert_uint_lt(before, 256 << 10);
	ck_assert_uint_eq(fx_applied(&f, 1), N);
	for (int i = 0; i < N; i++)
		free(e[i].data.base);
	free(val);
	fx_close(&f);
}
END_TEST

/* The map grows ahead of need, so a snapshot stream leaves room for the writes meanwhile. */
START_TEST(test_headroom_for_snapshots)
{
	struct fx f;
	struct kv_options o;
	kv_options_default(&o);
	o.writemap = _i;
	o.map_bytes = 1 << 20;
	o.map_bytes_max = 64 << 20;
	fx_open_opts(&f, &o);
	int applied;
	ck_assert_int_eq(fill_until_error(&f, 150, &applied), KV_OK); /* 1.3 MB: 2 pages a value */
	struct kv_snapshot *s;
	ck_assert_int_eq(kv_snapshot_begin(f.kv, 1, &s), KV_OK);
	/* 50 more one-put transactions while the map cannot move: with the reader pinning every
	 * freed page, each costs about 7 new pages (1.4 MB in all), more than a map grown only
	 * when full (2 MB, 1.3 MB used) has left; with the headroom the map is at 4 MB. */
	ck_assert_int_eq(fill_until_error(&f, 50, &applied), KV_OK);
	kv_snapshot_end(s);
	fx_close(&f);
}
END_TEST

START_TEST(test_checkpoint_indexes)
{
	struct fx f;
	fx_open(&f);
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(fx_put(&f, 1, "a", "b"), KV_OK);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(fx_put(&f, 3, "a", "b"), KV_OK);
	raft_index out[4] = {9, 9, 9, 9};
	ck_assert_int_eq(kv_checkpoint(f.kv, out, 4), KV_OK);
	ck_assert_uint_eq(out[0], 5);
	ck_assert_uint_eq(out[1], 0);
	ck_assert_uint_eq(out[2], 3);
	ck_assert_uint_eq(out[3], 0);
	fx_close(&f);
}
END_TEST

/* A process crash (no kv_close) loses nothing LMDB committed: the OS holds the pages. The
 * WAL replay that follows re-applies only what is past the applied index. */
START_TEST(test_crash_then_replay)
{
	struct fx f;
	struct kv_options o;
	kv_options_default(&o);
	o.writemap = _i; /* both commit paths */
	fx_open_opts(&f, &o);
	kv_close(f.kv); /* the child opens its own environment */
	enum { N = 30 };
	struct raft_entry e[N];
	char k[N][16];
	for (int i = 0; i < N; i++) {
		snprintf(k[i], sizeof k[i], "c%02d", i);
		struct kv_cmd c = fx_put_cmd(k[i], k[i]);
		c.client_id = 5;
		c.seq = (uint64_t)i + 1;
		e[i] = (struct raft_entry){.index = (raft_index)i + 1, .term = 1};
		ck_assert_int_eq(kv_cmd_encode(NULL, &c, &e[i].data), KV_OK);
	}
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct kv *kv;
		raft_index idx;
		if (kv_open(f.dir, NULL, &kv) != KV_OK ||
		    kv_apply(kv, 1, e, 10, NULL, NULL, NULL) || kv_checkpoint(kv, &idx, 1) ||
		    idx != 10 || kv_apply(kv, 1, e + 10, 10, NULL, NULL, NULL))
			_exit(1);
		_exit(0); /* no kv_close, no sync: a crash */
	}
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_int_eq(kv_open(f.dir, &o, &f.kv), KV_OK);
	ck_assert_uint_eq(fx_applied(&f, 1), 20);
	int calls = 0;
	ck_assert_int_eq(kv_apply(f.kv, 1, e, N, NULL, count_cb, &calls), KV_OK);
	ck_assert_int_eq(calls, N - 20);
	for (int i = 0; i < N; i++) {
		fx_expect(&f, 1, k[i], k[i]);
		free(e[i].data.base);
	}
	fx_close(&f);
}
END_TEST

static void write_state(const char *dir, const char *text)
{
	char path[512];
	snprintf(path, sizeof path, "%s/kv.state", dir);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

/* A process crash is harmless (tested above); a machine crash with unsynced commits is
 * refused, also when the next open syncs its commits (that cannot repair the file); a node
 * that synced its commits is accepted after any crash. Another boot id stands in for a
 * reboot. */
START_TEST(test_machine_crash_refused)
{
	struct fx f;
	fx_open(&f);
	ck_assert_int_eq(fx_put(&f, 1, "k", "v"), KV_OK);
	kv_close(f.kv);
	write_state(f.dir, "open 00000000-0000-0000-0000-000000000000\n");
	struct kv_options o;
	kv_options_default(&o);
	ck_assert_int_eq(kv_open(f.dir, &o, &f.kv), KV_EUNSAFE);
	ck_assert_int_eq(kv_open(f.dir, &o, &f.kv), KV_EUNSAFE); /* and stays refused */
	o.sync_commits = true;
	ck_assert_int_eq(kv_open(f.dir, &o, &f.kv), KV_EUNSAFE); /* too late to sync */
	write_state(f.dir, "clean\n"); /* the operator accepts the risk (DURABILITY.md) */
	ck_assert_int_eq(kv_open(f.dir, &o, &f.kv), KV_OK);
	fx_expect(&f, 1, "k", "v");
	ck_assert_int_eq(fx_put(&f, 1, "k", "w"), KV_OK);
	/* synced commits: a machine crash now (no kv_close) leaves "clean" behind */
	char line[128] = {0}, path[512];
	snprintf(path, sizeof path, "%s/kv.state", f.dir);
	FILE *st = fopen(path, "r");
	ck_assert_ptr_nonnull(st);
	ck_assert_ptr_nonnull(fgets(line, sizeof line, st));
	fclose(st);
	ck_assert_str_eq(line, "clean\n");
	kv_close(f.kv);
	/* A clean close records it: the next open is fine whatever the boot. */
	o.sync_commits = false;
	ck_assert_int_eq(kv_open(f.dir, &o, &f.kv), KV_OK);
	kv_close(f.kv);
	write_state(f.dir, "clean\n");
	ck_assert_int_eq(kv_open(f.dir, &o, &f.kv), KV_OK);
	fx_expect(&f, 1, "k", "w");
	fx_close(&f);
}
END_TEST

START_TEST(test_bad_options_and_strerror)
{
	struct kv_options o;
	kv_options_default(&o);
	o.groups_max = KV_GROUPS_MAX + 1;
	struct kv *kv;
	ck_assert_int_eq(kv_open("/nonexistent-dir-for-kv-test", NULL, &kv), KV_EIO);
	ck_assert_int_eq(kv_open(".", &o, &kv), KV_EINVAL);
	for (int e = KV_ENOSPC; e <= KV_CAS_MISMATCH; e++)
		ck_assert_str_ne(kv_strerror(e), "unknown kv error");
	ck_assert_str_eq(kv_strerror(12345), "unknown kv error");
}
END_TEST

/* An environment as ringraft wrote it before the format stamp: a named DBI, no stamp (or
 * the given stamp when version > 0). */
static void make_env(const char *dir, uint32_t version)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi, main_dbi;
	ck_assert_int_eq(mdb_env_create(&env), 0);
	ck_assert_int_eq(mdb_env_set_maxdbs(env, 4), 0);
	ck_assert_int_eq(mdb_env_open(env, dir, 0, 0644), 0);
	ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
	ck_assert_int_eq(mdb_dbi_open(txn, "g1.data", MDB_CREATE, &dbi), 0);
	MDB_val k = {1, "k"}, v = {5, "value"};
	ck_assert_int_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
	if (version > 0) {
		uint8_t ver[4] = {(uint8_t)version, 0, 0, 0};
		MDB_val fk = {18, "ringraft.kv.format"}, fv = {4, ver};
		ck_assert_int_eq(mdb_dbi_open(txn, NULL, 0, &main_dbi), 0);
		ck_assert_int_eq(mdb_put(txn, main_dbi, &fk, &fv, 0), 0);
	}
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

START_TEST(test_older_format_refused)
{
	struct fx f;
	fx_open(&f);
	ck_assert_int_eq(fx_put(&f, 1, "k", "v"), KV_OK);
	kv_close(f.kv);
	/* Reopening our own format works. */
	ck_assert_int_eq(kv_open(f.dir, NULL, &f.kv), KV_OK);
	fx_expect(&f, 1, "k", "v");
	fx_close(&f);
	const uint32_t versions[] = {0, 1, KV_FORMAT_VERSION + 1};
	for (int i = 0; i < 3; i++) {
		char dir[256];
		const char *tmp = getenv("TMPDIR");
		snprintf(dir, sizeof dir, "%s/kvtest.XXXXXX", tmp && *tmp ? tmp : "/tmp");
		ck_assert_ptr_nonnull(mkdtemp(dir));
		make_env(dir, versions[i]);
		struct kv *kv = NULL;
		ck_assert_int_eq(kv_open(dir, NULL, &kv), KV_EFORMAT);
		ck_assert_ptr_null(kv);
		fx_rmdir(dir);
	}
	ck_assert(strncmp(kv_strerror(KV_EFORMAT),
			  "data directory was written by an older ringraft:", 48) == 0);
}
END_TEST

/* ---------------------------------------------------------------- a full file system */
/* An 8 MiB tmpfs, mounted by the parent process (unchecked fixture) so that it is unmounted
 * even when a test fails or dies; without the right to mount, the tests pass, saying so. */
static char mnt[200];
static bool mounted;

static void tmpfs_setup(void)
{
	snprintf(mnt, sizeof mnt, "/tmp/kvtest-enospc.XXXXXX");
	if (mkdtemp(mnt) == NULL) {
		mnt[0] = 0;
		return;
	}
	mounted = mount("tmpfs", mnt, "tmpfs", 0, "size=8m") == 0;
	if (!mounted)
		printf("kv enospc tests skipped: cannot mount a tmpfs on %s: %s\n", mnt,
		       strerror(errno));
}

static void tmpfs_teardown(void)
{
	if (mounted)
		umount2(mnt, MNT_DETACH);
	mounted = false;
	if (mnt[0])
		rmdir(mnt);
}

/* A put of a 8 KiB value as the group's next entry: the apply error. */
static int put_big(struct fx *f, uint32_t group, int i)
{
	char k[16], *v = malloc(8192);
	snprintf(k, sizeof k, "big%05d", i);
	memset(v, 'a' + i % 26, 8192);
	struct kv_cmd c = {
		.op = KV_OP_PUT, .key = k, .key_len = strlen(k), .value = v, .value_len = 8192};
	int err = fx_apply_cmd(f, group, &c, NULL);
	free(v);
	return err;
}

START_TEST(test_full_disk_then_space_again)
{
	if (!mounted)
		return;
	setenv("TMPDIR", mnt, 1);
	char ballast[300];
	snprintf(ballast, sizeof ballast, "%s/ballast", mnt);
	int fd = open(ballast, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ck_assert_int_ge(fd, 0);
	char *mib = calloc(1, 1 << 20);
	ck_assert_int_eq(write(fd, mib, 1 << 20), 1 << 20);
	close(fd);
	struct fx f;
	struct kv_options o;
	kv_options_default(&o);
	o.writemap = false; /* pwrite: ENOSPC comes back from the commit (writemap: below) */
	o.map_bytes = o.map_bytes_max = 64 << 20;
	fx_open_opts(&f, &o);
	int n = 0, err;
	while ((err = put_big(&f, 1, n)) == KV_OK && n < 5000)
		n++;
	ck_assert_int_eq(err, KV_ENOSPC);
	ck_assert_int_gt(n, 100);
	ck_assert_uint_eq(fx_applied(&f, 1), (raft_index)n);
	fx_expect(&f, 1, "k", NULL);
	void *v;
	size_t vl;
	ck_assert_int_eq(kv_get(f.kv, 1, "big00000", 8, 0, &v, &vl, NULL), KV_OK);
	free(v);
	ck_assert_str_eq(kv_strerror(KV_ENOSPC),
			 "no space left on the data directory's file system");
	/* The restore staging file meets the same full disk. */
	struct kv_restore *r;
	ck_assert_int_eq(kv_restore_begin(f.kv, 2, &r), KV_OK);
	err = KV_OK;
	for (int i = 0; i < 8 && err == KV_OK; i++)
		err = kv_restore_write(r, mib, 1 << 20);
	if (err == KV_OK)
		err = kv_restore_finish(r);
	else
		kv_restore_abort(r);
	ck_assert_int_eq(err, KV_ENOSPC);
	/* Space comes back: the same entry applies, and more after it. */
	ck_assert_int_eq(unlink(ballast), 0);
	for (int i = 0; i < 20; i++)
		ck_assert_int_eq(put_big(&f, 1, n++), KV_OK);
	raft_index durable;
	ck_assert_int_eq(kv_checkpoint(f.kv, &durable, 1), KV_OK);
	ck_assert_uint_eq(durable, (raft_index)n);
	kv_close(f.kv);
	ck_assert_int_eq(kv_open(f.dir, &o, &f.kv), KV_OK);
	ck_assert_uint_eq(fx_applied(&f, 1), (raft_index)n);
	ck_assert_int_eq(kv_get(f.kv, 1, "big00000", 8, 0, &v, &vl, NULL), KV_OK);
	ck_assert_uint_eq(vl, 8192);
	free(v);
	free(mib);
	fx_close(&f);
}
END_TEST

/* With MDB_WRITEMAP the data file is preallocated: no SIGBUS, KV_ENOSPC at open or growth. */
START_TEST(test_full_disk_with_writemap)
{
	if (!mounted)
		return;
	setenv("TMPDIR", mnt, 1);
	struct fx f;
	struct kv_options o;
	kv_options_default(&o);
	o.writemap = true;
	o.map_bytes = o.map_bytes_max = 64 << 20; /* more than the file system holds */
	memset(&f, 0, sizeof f);
	snprintf(f.dir, sizeof f.dir, "%s/kvtest.XXXXXX", mnt);
	ck_assert_ptr_nonnull(mkdtemp(f.dir));
	ck_assert_int_eq(kv_open(f.dir, &o, &f.kv), KV_ENOSPC);
	fx_rmdir(f.dir);
	o.map_bytes = 2 << 20; /* fits; growing to 64 MiB will not */
	fx_open_opts(&f, &o);
	int n = 0, err;
	while ((err = put_big(&f, 1, n)) == KV_OK && n < 5000)
		n++;
	ck_assert_int_eq(err, KV_ENOSPC);
	ck_assert_int_gt(n, 10);
	ck_assert_uint_eq(fx_applied(&f, 1), (raft_index)n);
	fx_close(&f);
}
END_TEST

/* ------------------------------------------------------------ the page cache ahead of the end */
/* Of the cached pages of the file at path: how many sit in large (compound) folios, through
 * /proc/self/pagemap and /proc/kpageflags (root only). -1 when they cannot be read. */
static long large_folio_pages(const char *path, long *cached)
{
	int fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	struct stat st;
	ck_assert_int_eq(fstat(fd, &st), 0);
	size_t len = (size_t)st.st_size, n = len / 4096;
	long large = -1;
	*cached = 0;
	int pm = open("/proc/self/pagemap", O_RDONLY), kf = open("/proc/kpageflags", O_RDONLY);
	uint8_t *m = len ? mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
	unsigned char *vec = malloc(n + 1);
	if (pm >= 0 && kf >= 0 && m != MAP_FAILED && vec &&
	    madvise(m, len, MADV_RANDOM) == 0 && mincore(m, len, vec) == 0) {
		large = 0;
		for (size_t i = 0; i < n && large >= 0; i++) {
			if (!(vec[i] & 1))
				continue; /* not cached: touching it would read it in */
			volatile uint8_t touch = m[i * 4096];
			(void)touch;
			(*cached)++;
			uint64_t e, flags;
			off_t at = (off_t)((uintptr_t)(m + i * 4096) / 4096 * 8);
			if (pread(pm, &e, 8, at) != 8 || !(e >> 63) ||
			    pread(kf, &flags, 8, (off_t)((e & ((1ull << 55) - 1)) * 8)) != 8 ||
			    (e & ((1ull << 55) - 1)) == 0)
				large = -1; /* no page frame numbers for us: not root */
			else if (flags & (1ull << 15 | 1ull << 16)) /* KPF_COMPOUND_HEAD, _TAIL */
				large++;
		}
	}
	free(vec);
	if (m != MAP_FAILED)
		munmap(m, len);
	if (pm >= 0)
		close(pm);
	if (kf >= 0)
		close(kf);
	close(fd);
	return large;
}

/* 120 puts of 200 KiB values, each its own commit: runs of ~50 new pages, one writev each. */
static void write_runs(struct fx *f)
{
	size_t len = 200 << 10;
	char *val = malloc(len + 1), key[32];
	memset(val, 'v', len);
	val[len] = 0;
	for (int i = 0; i < 120; i++) {
		snprintf(key, sizeof key, "big%03d", i);
		struct kv_cmd c = {.op = KV_OP_PUT,
				   .key = key,
				   .key_len = strlen(key),
				   .value = val,
				   .value_len = len};
		struct fx_res r;
		ck_assert_int_eq(fx_apply_cmd(f, 1 + i % 3, &c, &r), KV_OK);
		ck_assert_int_eq(r.res.code, KV_OK);
	}
	free(val);
}

/* With cache_ahead_bytes (the default), the pages past the end of what LMDB uses are cached,
 * and LMDB's multi-page writes land in single-page folios. Where this kernel and file system
 * cache such writes in large folios (the control: the same writes with it off), none of the
 * data file's pages may be in one with it on. */
START_TEST(test_cache_ahead_keeps_small_folios)
{
	struct kv_options o;
	kv_options_default(&o);
	ck_assert_uint_eq(o.cache_ahead_bytes, KV_CACHE_AHEAD_DEFAULT);
	long large[2], cached[2];
	for (int on = 0; on <= 1; on++) {
		o.cache_ahead_bytes = on ? KV_CACHE_AHEAD_DEFAULT : 0;
		struct fx f;
		fx_open_opts(&f, &o);
		write_runs(&f);
		char path[300];
		snprintf(path, sizeof path, "%s/data.mdb", f.dir);
		uint64_t used = kv_size_bytes(f.kv);
		ck_assert_uint_gt(used, 20 << 20);
		struct stat st;
		ck_assert_int_eq(stat(path, &st), 0);
		if (on) {
			/* the window: the file reaches at least half of it past the end, cached */
			uint64_t want = used + KV_CACHE_AHEAD_DEFAULT / 2;
			ck_assert_uint_ge((uint64_t)st.st_size, want);
			int fd = open(path, O_RDONLY);
			uint8_t *m = mmap(NULL, want, PROT_READ, MAP_SHARED, fd, 0);
			ck_assert(m != MAP_FAILED);
			size_t pages = (want - used / 4096 * 4096) / 4096;
			unsigned char *vec = malloc(want / 4096 + 1);
			ck_assert_int_eq(mincore(m, want, vec), 0);
			size_t resident = 0;
			for (size_t i = used / 4096; i < want / 4096; i++)
				resident += vec[i] & 1;
			ck_assert_uint_eq(resident, pages);
			free(vec);
			munmap(m, want);
			close(fd);
		} else {
			/* off: LMDB's own file, at most its used pages rounded to a page */
			ck_assert_uint_le((uint64_t)st.st_size, used + 4096);
		}
		large[on] = large_folio_pages(path, &cached[on]);
		fx_close(&f);
	}
	printf("cache ahead: off %ld of %ld cached pages in large folios, on %ld of %ld\n",
	       large[0], cached[0], large[1], cached[1]);
	if (large[0] < 0 || large[0] * 4 < cached[0]) {
		printf("cache ahead: this kernel or file system caches these writes in small "
		       "folios anyway (or /proc/kpageflags is closed): the folios are not checked\n");
		return;
	}
	ck_assert_int_ge(large[1], 0);
	ck_assert_int_le(large[1] * 100, cached[1]); /* under 1% (LMDB's first pages) */
}
END_TEST

Suite *kv_suite(void)
{
	Suite *s = suite_create("kv");
	TCase *tc = tcase_create("kv");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_key_and_value_limits);
	tcase_add_test(tc, test_default_value_max_one_mib);
	tcase_add_loop_test(tc, test_full_map_reported, 0, 2);
	tcase_add_loop_test(tc, test_map_grows, 0, 2);
	tcase_add_loop_test(tc, test_no_growth_under_snapshot, 0, 2);
	tcase_add_loop_test(tc, test_retry_after_growth_answers_once, 0, 2);
	tcase_add_loop_test(tc, test_headroom_for_snapshots, 0, 2);
	tcase_add_test(tc, test_checkpoint_indexes);
	tcase_add_loop_test(tc, test_crash_then_replay, 0, 2);
	tcase_add_test(tc, test_machine_crash_refused);
	tcase_add_test(tc, test_bad_options_and_strerror);
	tcase_add_test(tc, test_older_format_refused);
	tcase_add_test(tc, test_cache_ahead_keeps_small_folios);
	suite_add_tcase(s, tc);
	tc = tcase_create("enospc");
	tcase_set_timeout(tc, 60);
	tcase_add_unchecked_fixture(tc, tmpfs_setup, tmpfs_teardown);
	tcase_add_test(tc, test_full_disk_then_space_again);
	tcase_add_test(tc, test_full_disk_with_writemap);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(kv_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
