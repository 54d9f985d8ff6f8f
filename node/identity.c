/* identity.c — DIR/incarnation: one line, the id in 16 hex digits. Drawn from getrandom(2)
 * (never 0) the first time a directory is used; a torn write can leave only the temp file,
 * which the next start overwrites.
 */
#include "node/identity.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "node/node_err.h"
#include "node/node_limits.h"

#define INCARNATION_FILE "incarnation"

static int fail(char *err, size_t n, const char *fmt, const char *path, int e)
{
	snprintf(err, n, fmt, path, strerror(e));
	return NODE_ESTORE;
}

static int write_new(const char *dir, const char *path, uint64_t id, char *err, size_t n)
{
	char tmp[NODE_PATH_MAX + 32], line[32];
	snprintf(tmp, sizeof tmp, "%s/" INCARNATION_FILE ".tmp", dir);
	int len = snprintf(line, sizeof line, "%016" PRIx64 "\n", id);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return fail(err, n, "cannot create %s: %s", tmp, errno);
	if (write(fd, line, (size_t)len) != len || fsync(fd) != 0) {
		int e = errno ? errno : EIO;
		close(fd);
		return fail(err, n, "cannot write %s: %s", tmp, e);
	}
	close(fd);
	if (rename(tmp, path) != 0)
		return fail(err, n, "cannot install %s: %s", path, errno);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) != 0) {
		int e = errno;
		if (dfd >= 0)
			close(dfd);
		return fail(err, n, "cannot sync the directory of %s: %s", path, e);
	}
	close(dfd);
	return 0;
}

int node_incarnation_load(const char *dir, uint64_t *out, bool *created, char *err, size_t n)
{
	char path[NODE_PATH_MAX + 32];
	snprintf(path, sizeof path, "%s/" INCARNATION_FILE, dir);
	FILE *f = fopen(path, "re");
	if (f != NULL) {
		char line[64];
		uint64_t id = 0;
		char *end = NULL;
		bool ok = fgets(line, sizeof line, f) != NULL;
		fclose(f);
		if (ok) {
			errno = 0;
			id = strtoull(line, &end, 16);
			ok = errno == 0 && end != line && (*end == '\n' || *end == '\0') && id != 0;
		}
		if (!ok) {
			snprintf(
				err, n,
				"%s is malformed (expected one line of 16 hex digits); it names "
				"this "
				"data directory: restore it, or move the directory away to rebuild "
				"the node from its peers",
				path);
			return NODE_ESTORE;
		}
		*out = id;
		*created = false;
		return 0;
	}
	if (errno != ENOENT)
		return fail(err, n, "cannot read %s: %s", path, errno);
	uint64_t id = 0;
	while (id == 0) {
		if (getrandom(&id, sizeof id, 0) != (ssize_t)sizeof id)
			return fail(err, n, "cannot draw an id for %s: %s", path, errno);
	}
	if (write_new(dir, path, id, err, n) != 0)
		return NODE_ESTORE;
	*out = id;
	*created = true;
	return 0;
}
