/* test_disk_full.c — a node whose data directory fills up under load stops cleanly: no signal,
 * exit status 75 and a "disk full" line (again if it is started on the full disk), while the
 * other two nodes keep serving; once the
 * file system has room again the node restarts and no acknowledged write is missing.
 *
 * Node 3's data directory is moved onto a small loop-mounted ext4 (needs root, mkfs.ext4 and
 * loop devices; otherwise the test says it is skipped and passes). The image is grown offline
 * (e2fsck + resize2fs) to give the space back. Mount and image are removed on every exit path
 * of the test process (teardown and atexit).
 */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tests/integration/cluster.h"

#define OK           RINGRAFT__KV__CODE__OK
#define NOT_FOUND    RINGRAFT__KV__CODE__NOT_FOUND
#define VALUE_BYTES  (8 * 1024)
#define DISK_MB      200 /* two 64 MiB WAL segments and some room for LMDB */
#define DISK_MB_MORE 1024
#define EXIT_FULL    75 /* NODE_EXIT_DISK_FULL */

static struct cluster *c;
static char mnt[PATH_MAX], img[PATH_MAX + 16];
static bool mounted;

static void unmount_disk(void)
{
	if (mounted && umount2(mnt, MNT_DETACH) == 0)
		mounted = false;
	if (img[0] != '\0' && !mounted) {
		unlink(img);
		img[0] = '\0';
	}
}

static void teardown(void)
{
	int bad = cluster_shutdown(c);
	unmount_disk();
	cluster_destroy(c);
	c = NULL;
	ck_assert_msg(bad == 0, "%d node(s) crashed or did not stop cleanly", bad);
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[4 * PATH_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	int rc = system(cmd);
	if (rc != 0)
		fprintf(stderr, "disk_full: `%s` failed (%d)\n", cmd, rc);
	return rc;
}

static bool loop_mounts_possible(void)
{
	return geteuid() == 0 && system("command -v mkfs.ext4 resize2fs e2fsck >/dev/null") == 0 &&
	       access("/dev/loop-control", F_OK) == 0;
}

static int mount_disk(void)
{
	if (sh("mount -o loop '%s' '%s'", img, mnt) != 0)
		return -1;
	mounted = true;
	return 0;
}

/* Moves node 3's (stopped) data directory onto a fresh DISK_MB ext4 image. */
static int move_node3_to_small_disk(void)
{
	snprintf(mnt, sizeof mnt, "%s", cluster_data_dir(c, 3));
	snprintf(img, sizeof img, "%s.img", mnt);
	char orig[PATH_MAX + 8];
	snprintf(orig, sizeof orig, "%s.orig", mnt);
	if (rename(mnt, orig) != 0 || mkdir(mnt, 0755) != 0)
		return -1;
	if (sh("truncate -s %dM '%s' && mkfs.ext4 -q -F '%s'", DISK_MB, img, img) != 0)
		return -1;
	if (mount_disk() != 0)
		return -1;
	return sh("cp -a '%s/.' '%s/' && rm -rf '%s'", orig, mnt, orig);
}

static int grow_disk(void)
{
	if (!mounted || umount2(mnt, 0) != 0)
		return -1;
	mounted = false;
	/* e2fsck exits 1 when it fixed something: still a usable file system */
	if (sh("truncate -s %dM '%s' && { e2fsck -f -y '%s' >/dev/null 2>&1; [ $? -le 1 ]; } && "
	       "resize2fs -f '%s' >/dev/null 2>&1",
	       DISK_MB_MORE, img, img, img) != 0)
		return -1;
	return mount_disk();
}

static bool put_avoiding_3(const char *key, const char *val)
{
	uint64_t deadline = cluster_now_ms() + 8000;
	for (int attempt = 0; cluster_now_ms() < deadline; attempt++)
		if (cluster_put(c, 1 + attempt % 2, key, val, 2000) == OK)
			return true;
	return false;
}

START_TEST(test_full_disk_is_a_clean_stop)
{
	if (!loop_mounts_possible()) {
		printf("disk_full: skipped: needs root, mkfs.ext4/resize2fs/e2fsck and loop "
		       "devices\n");
		return;
	}
	atexit(unmount_disk);
	struct cluster_opts o;
	cluster_opts_default(&o);
	o.groups = 4;
	o.snapshot_entries = 2000;
	c = cluster_start(&o);
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(cluster_term(c, 3), 0);
	ck_assert_int_eq(move_node3_to_small_disk(), 0);
	ck_assert_int_eq(cluster_restart(c, 3), 0);
	ck_assert_int_eq(cluster_wait_leaders(c, 20000), 0);

	static char val[VALUE_BYTES + 1];
	char key[64];
	int acked = 0;
	uint64_t deadline = cluster_now_ms() + 120000;
	bool died = false;
	while (!died && cluster_now_ms() < deadline && acked < 100000) {
		snprintf(key, sizeof key, "full%06d", acked);
		memset(val, 'a' + acked % 26, VALUE_BYTES);
		snprintf(val, 16, "%08d", acked);
		val[8] = '-';
		ck_assert_msg(put_avoiding_3(key, val), "write %s not acknowledged", key);
		acked++;
		if (acked % 50 == 0)
			died = cluster_died(c, 3);
	}
	ck_assert_msg(died, "node 3 did not stop on its full disk after %d writes", acked);
	int st = cluster_exit_status(c, 3);
	ck_assert_msg(st == EXIT_FULL, "node 3 ended with status %d (want %d; >128 = signal)", st,
		      EXIT_FULL);
	ck_assert_int_gt(cluster_log_grep(c, 3, "disk full"), 0);
	printf("disk_full: node 3 stopped cleanly after %d acknowledged 8 KiB writes\n", acked);

	/* the other two keep serving */
	for (int i = 0; i < 100; i++, acked++) {
		snprintf(key, sizeof key, "full%06d", acked);
		snprintf(val, sizeof val, "%08d-after", acked);
		ck_assert_msg(put_avoiding_3(key, val), "write %s after node 3 stopped", key);
	}

	/* started again on the disk filled to the last block, it stops the same way at its open
	 * (or at its first write there), not with "cannot open LMDB" (exit 1) */
	ck_assert_int_eq(sh("dd if=/dev/zero of='%s/filler' bs=1M >/dev/null 2>&1; "
			    "dd if=/dev/zero of='%s/filler2' bs=4k >/dev/null 2>&1; sync; true",
			    mnt, mnt),
			 0);
	int rs = cluster_restart(c, 3);
	deadline = cluster_now_ms() + 30000;
	for (int i = 0; rs == 0 && !cluster_died(c, 3) && cluster_now_ms() < deadline; i++, acked++) {
		snprintf(key, sizeof key, "full%06d", acked);
		snprintf(val, sizeof val, "%08d-again", acked);
		ck_assert_msg(put_avoiding_3(key, val), "write %s while node 3 restarts", key);
	}
	st = cluster_exit_status(c, 3);
	ck_assert_msg(st == EXIT_FULL, "node 3 restarted on its full disk ended with status %d",
		      st);
	ck_assert_int_eq(sh("rm -f '%s/filler' '%s/filler2'", mnt, mnt), 0);

	/* space returns: node 3 comes back with everything acknowledged */
	ck_assert_int_eq(grow_disk(), 0);
	ck_assert_int_eq(cluster_restart(c, 3), 0);
	ck_assert_int_eq(cluster_wait_digests_equal(c, 60000), 0);
	for (int i = 0; i < acked; i++) {
		snprintf(key, sizeof key, "full%06d", i);
		char *got = NULL;
		/* a read refused without being served (the leadership moving, as the balancer
		 * hands node 3 its groups back) is asked again */
		int code;
		uint64_t until = cluster_now_ms() + 10000;
		while ((code = cluster_get(c, 3, key, &got, false, 3000)) != OK &&
		       code != NOT_FOUND && cluster_now_ms() < until)
			usleep(20000);
		ck_assert_msg(code == OK, "acknowledged %s missing (code %d)", key, code);
		ck_assert_int_eq(atoi(got), i);
		free(got);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("disk_full");
	TCase *tc = tcase_create("disk_full");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_full_disk_is_a_clean_stop);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
