/* peer_secret.c — --peer-secret-file: one secret per line, the first the current one. A secret
 * guards Raft itself, so the file is refused when other users may read or change it, and a
 * secret shorter than NET_PEER_SECRET_MIN bytes is refused rather than trusted (a short secret
 * could be guessed offline from one recorded handshake).
 */
#include "node/peer_secret.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "node/node_err.h"

/* The whole file: NET_PEER_SECRETS_MAX lines of NET_PEER_SECRET_MAX bytes plus CR LF. */
#define FILE_MAX (NET_PEER_SECRETS_MAX * (NET_PEER_SECRET_MAX + 2))

static int fail(struct net_peer_secrets *out, char *err, size_t n, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(struct net_peer_secrets *out, char *err, size_t n, const char *fmt, ...)
{
	net_peer_secrets_clear(out);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, n, fmt, ap);
	va_end(ap);
	return NODE_ECONFIG;
}

int node_peer_secret_load(const char *path, struct net_peer_secrets *out, char *err, size_t err_len)
{
	net_peer_secrets_clear(out);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return fail(out, err, err_len, "--peer-secret-file %s: cannot read: %s", path,
			    strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return fail(out, err, err_len, "--peer-secret-file %s: not a regular file", path);
	}
	if (st.st_mode & (S_IROTH | S_IWOTH)) {
		close(fd);
		return fail(out, err, err_len,
			    "--peer-secret-file %s: other users may read or write it (mode %03o); "
			    "chmod 600 it",
			    path, (unsigned)(st.st_mode & 0777));
	}
	static char buf[FILE_MAX + 1]; /* one reader: kvd loads its file once, at start */
	size_t len = 0;
	for (;;) {
		ssize_t r = read(fd, buf + len, sizeof buf - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			close(fd);
			OPENSSL_cleanse(buf, sizeof buf);
			return fail(out, err, err_len, "--peer-secret-file %s: cannot read: %s",
				    path, strerror(e));
		}
		if (r == 0 || len + (size_t)r == sizeof buf) {
			len += (size_t)r;
			break;
		}
		len += (size_t)r;
	}
	close(fd);
	int rc = NODE_OK;
	if (len > FILE_MAX) {
		rc = fail(out, err, err_len,
			  "--peer-secret-file %s: longer than %d bytes (at most %d secrets of at "
			  "most %d bytes, one per line)",
			  path, FILE_MAX, NET_PEER_SECRETS_MAX, NET_PEER_SECRET_MAX);
		goto out;
	}
	if (len == 0) {
		rc = fail(out, err, err_len,
			  "--peer-secret-file %s: empty (write one secret of "
			  "at least %d bytes per line)",
			  path, NET_PEER_SECRET_MIN);
		goto out;
	}
	size_t pos = 0, line = 0;
	while (pos < len) {
		const char *start = buf + pos;
		const char *nl = memchr(start, '\n', len - pos);
		size_t l = nl ? (size_t)(nl - start) : len - pos;
		pos += l + (nl ? 1 : 0);
		line++;
		if (l > 0 && start[l - 1] == '\r')
			l--;
		if (line > NET_PEER_SECRETS_MAX) {
			rc = fail(out, err, err_len,
				  "--peer-secret-file %s: more than %d lines (one secret per line: "
				  "the current one first, then those still accepted)",
				  path, NET_PEER_SECRETS_MAX);
			goto out;
		}
		if (l == 0) {
			rc = fail(out, err, err_len, "--peer-secret-file %s: line %zu is empty",
				  path, line);
			goto out;
		}
		if (l < NET_PEER_SECRET_MIN || l > NET_PEER_SECRET_MAX) {
			rc = fail(out, err, err_len,
				  "--peer-secret-file %s: the secret on line %zu has %zu bytes; it "
				  "must have %d to %d (e.g. openssl rand -hex 32)",
				  path, line, l, NET_PEER_SECRET_MIN, NET_PEER_SECRET_MAX);
			goto out;
		}
		memcpy(out->s[out->n].bytes, start, l);
		out->s[out->n].len = l;
		out->n++;
	}
out:
	OPENSSL_cleanse(buf, sizeof buf);
	return rc;
}
