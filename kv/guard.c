/* guard.c — notices that the machine went down (OS crash, power loss) while the environment
 * was open with commits not yet forced to disk. With MDB_NOSYNC, LMDB survives a process crash
 * whole (its pages are in the kernel's cache), but after a machine crash the file may hold a
 * newer meta page whose data pages never reached the disk: it cannot be trusted
 * (docs/DURABILITY.md). The file kv.state says "open <boot id>" while the environment is open
 * and "clean" after kv_close synced it; finding "open" with another boot id means exactly that
 * case, and kv_open refuses with KV_EUNSAFE.
 *
 * For tests only: RINGRAFT_TEST_BOOT_ID_FILE names a file whose first line is used as the boot
 * id instead of the kernel's. A simulated power cut (tests/powercut) keeps the kernel's boot
 * id, so without it a node "rebooted" by a test would look like a process crash; a test writes
 * a new id into the file to say the machine went down. The content must look like a boot id
 * (8-4-4-4-12 hexadecimal digits): anything else, or an unreadable file, fails the open rather
 * than silently weakening the check.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "kv/kv_int.h"

#define STATE_FILE   "kv.state"
#define BOOT_ID_PATH "/proc/sys/kernel/random/boot_id"
#define BOOT_ID_ENV  "RINGRAFT_TEST_BOOT_ID_FILE"

static void read_line(const char *path, char out[64])
{
	out[0] = 0;
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return;
	if (fgets(out, 64, f) == NULL)
		out[0] = 0;
	out[strcspn(out, "\n")] = 0;
	fclose(f);
}

/* 8-4-4-4-12 hexadecimal digits, as the kernel writes its boot id. */
static bool boot_id_valid(const char *id)
{
	if (strlen(id) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? id[i] != '-' : !isxdigit((unsigned char)id[i]))
			return false;
	}
	return true;
}

/* The boot id into out ("" if the kernel does not say); KV_EINVAL if the test override is set
 * and does not hold a valid one. */
static int boot_id(char out[64])
{
	const char *test_file = getenv(BOOT_ID_ENV);
	if (test_file == NULL || test_file[0] == 0) {
		read_line(BOOT_ID_PATH, out);
		return KV_OK;
	}
	read_line(test_file, out);
	if (!boot_id_valid(out)) {
		fprintf(stderr,
			"error kv group=0 what=open err=\"%s=%s does not hold a boot id "
			"(8-4-4-4-12 hex digits)\" fix=\"unset it: it is for tests only\"\n",
			BOOT_ID_ENV, test_file);
		return KV_EINVAL;
	}
	return KV_OK;
}

/* KV_ENOSPC when the file system is full (a node started on a full disk stops as at run time,
 * exit 75, not with "LMDB failure"), KV_EIO for any other failure. */
static int write_state(const char *dir, const char *text)
{
	char path[4096], tmp[4096];
	snprintf(path, sizeof path, "%s/%s", dir, STATE_FILE);
	snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, STATE_FILE);
	int e = 0, fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		e = errno;
	} else {
		size_t n = strlen(text);
		ssize_t w = write(fd, text, n);
		if (w != (ssize_t)n)
			e = w < 0 ? errno : ENOSPC; /* short: no room for the rest */
		if (e == 0 && fsync(fd) != 0)
			e = errno;
		if (close(fd) != 0 && e == 0)
			e = errno;
		if (e == 0 && rename(tmp, path) != 0)
			e = errno;
		int dfd = open(dir, O_RDONLY | O_DIRECTORY);
		if (dfd >= 0) {
			if (fsync(dfd) != 0 && e == 0)
				e = errno;
			close(dfd);
		}
	}
	if (e == 0)
		return KV_OK;
	return e == ENOSPC || e == EDQUOT ? KV_ENOSPC : KV_EIO;
}

int kv_guard_open(const char *dir, bool check)
{
	char path[4096], prev[128] = {0}, now[64];
	snprintf(path, sizeof path, "%s/%s", dir, STATE_FILE);
	FILE *f = fopen(path, "r");
	if (f) {
		if (fgets(prev, sizeof prev, f) == NULL)
			prev[0] = 0;
		fclose(f);
	}
	prev[strcspn(prev, "\n")] = 0;
	int rc = boot_id(now);
	if (rc != KV_OK)
		return rc;
	if (check && strncmp(prev, "open ", 5) == 0 && now[0] && strcmp(prev + 5, now) != 0) {
		fprintf(stderr,
			"error kv group=0 what=open err=\"the machine went down while the LMDB "
			"environment had unsynced commits: its state cannot be trusted\" "
			"fix=\"kvd --auto-repair on sets it aside and rebuilds it; otherwise "
			"rebuild this replica from a peer (see docs/DURABILITY.md)\"\n");
		return KV_EUNSAFE;
	}
	char text[80];
	snprintf(text, sizeof text, "open %s\n", now);
	return write_state(dir, text);
}

int kv_guard_close(const char *dir)
{
	return write_state(dir, "clean\n");
}
