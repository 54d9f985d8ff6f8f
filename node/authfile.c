/* authfile.c — DIR/auth.state: client authentication's state (node/auth.c) as this node last
 * learned it, saved by the shell at every change, so that a node holding no replica of the
 * meta group starts again enforcing what it knew, before the meta group's leader reaches it.
 * It holds the users' salted PBKDF2 hashes, as the meta group's LMDB does: mode 0600.
 *
 *   bytes 0-7   "RRAUTH01"
 *   bytes 8-11  payload length, big-endian (at most NODE_AUTHFILE_MAX - 16)
 *   bytes 12-15 CRC32C of the payload, big-endian
 *   then        the payload: a packed ringraft.raft.AuthState
 *
 * Written atomically (temp file, fsync, rename, fsync of the directory). A file that cannot
 * be read, or fails any check, is refused with a log line and the node treats authentication
 * as on with no users known (it refuses every client) until the leader sends the state: a
 * damaged file never opens a node up.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node/authfile.h"
#include "node/log.h"
#include "wal/crc32c.h"

#define AUTH_STATE   "auth.state"
#define MAGIC        "RRAUTH01"
#define HEADER_BYTES 16

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int node_authfile_save(const char *dir, struct node *n)
{
	uint8_t *payload;
	size_t len;
	if (node_auth_saved_state(n, &payload, &len) != 0)
		return 0; /* nothing known yet (or no memory: the next change saves again) */
	int rc = -1;
	char path[NODE_PATH_MAX + 32], tmp[NODE_PATH_MAX + 32];
	snprintf(path, sizeof path, "%s/%s", dir, AUTH_STATE);
	snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, AUTH_STATE);
	if (len > NODE_AUTHFILE_MAX - HEADER_BYTES) {
		errno = EFBIG;
		goto out;
	}
	uint8_t head[HEADER_BYTES];
	memcpy(head, MAGIC, 8);
	put32(head + 8, (uint32_t)len);
	put32(head + 12, wal_crc32c(0, payload, len));
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		goto out;
	rc = write_all(fd, head, sizeof head) == 0 && write_all(fd, payload, len) == 0 &&
			     fsync(fd) == 0
		     ? 0
		     : -1;
	if (close(fd) != 0)
		rc = -1;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -1;
	if (rc == 0) {
		int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0 || fsync(dfd) != 0)
			rc = -1;
		if (dfd >= 0)
			close(dfd);
	}
out:
	memset(payload, 0, len);
	free(payload);
	return rc;
}

/* Reads and checks the file: 0 with *m, 1 when absent, -1 with *why. */
static int read_state(const char *path, Ringraft__Raft__AuthState **m, const char **why)
{
	*m = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 1;
		*why = strerror(errno);
		return -1;
	}
	static uint8_t buf[NODE_AUTHFILE_MAX + 1];
	size_t got = 0;
	for (;;) {
		ssize_t r = read(fd, buf + got, sizeof buf - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			*why = strerror(errno);
			close(fd);
			return -1;
		}
		if (r == 0 || (got += (size_t)r) == sizeof buf)
			break;
	}
	close(fd);
	int rc = -1;
	if (got > NODE_AUTHFILE_MAX)
		*why = "larger than any state";
	else if (got < HEADER_BYTES || memcmp(buf, MAGIC, 8) != 0)
		*why = "not an auth.state file (header)";
	else if (get32(buf + 8) != got - HEADER_BYTES)
		*why = "its length is not the one in its header (cut short or extended)";
	else if (wal_crc32c(0, buf + HEADER_BYTES, got - HEADER_BYTES) != get32(buf + 12))
		*why = "checksum mismatch";
	else if ((*m = ringraft__raft__auth_state__unpack(NULL, got - HEADER_BYTES,
							  buf + HEADER_BYTES)) == NULL)
		*why = "undecodable";
	else
		rc = 0;
	memset(buf, 0, got < sizeof buf ? got : sizeof buf);
	return rc;
}

int node_authfile_load(const char *dir, struct node *n)
{
	char path[NODE_PATH_MAX + 32];
	snprintf(path, sizeof path, "%s/%s", dir, AUTH_STATE);
	Ringraft__Raft__AuthState *m;
	const char *why = NULL;
	int rc = read_state(path, &m, &why);
	if (rc == 1)
		return 0;
	if (rc != 0) {
		node_log(NODE_LOG_ERROR, 0,
			 "%s is damaged, refused: %s; client authentication is taken as on with no "
			 "users known (every client refused) until the meta group's leader sends "
			 "the state",
			 path, why);
		node_auth_load(n, NULL);
		return -1;
	}
	node_auth_load(n, m);
	ringraft__raft__auth_state__free_unpacked(m, NULL);
	return 0;
}
