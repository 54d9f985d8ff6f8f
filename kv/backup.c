/* backup.c — encoding and checking the fixed parts of a backup file (backup.h). The bytes
 * come from a file an operator hands to kvd --restore: every field is checked here before
 * anything trusts it, and kv_backup_file_walk checks the whole file (structure and checksum).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "kv/backup.h"
#include "kv/kv_int.h"
#include "kv/snapshot.h"

static int bad(char *why, size_t len, const char *msg)
{
	if (len > 0)
		snprintf(why, len, "%s", msg);
	return -1;
}

void kv_backup_header_encode(const struct kv_backup_header *h, uint8_t out[KV_BACKUP_HEADER_BYTES])
{
	memset(out, 0, KV_BACKUP_HEADER_BYTES);
	memcpy(out, KV_BACKUP_MAGIC, 8);
	kv_put_le32(out + 8, KV_BACKUP_VERSION);
	kv_put_le32(out + 12, KV_BACKUP_HEADER_BYTES);
	kv_put_le64(out + 16, h->cluster_id);
	kv_put_le64(out + 24, h->created_ms);
	kv_put_le32(out + 32, h->groups);
	kv_put_le32(out + 36, h->vnodes);
	kv_put_le64(out + 40, h->ring_epoch);
	kv_put_le32(out + 48, h->sections);
}

int kv_backup_header_decode(const uint8_t in[KV_BACKUP_HEADER_BYTES], struct kv_backup_header *h,
			    char *why, size_t why_len)
{
	if (memcmp(in, KV_BACKUP_MAGIC, 8) != 0)
		return bad(why, why_len, "not a ringraft backup file (wrong magic)");
	uint32_t version = kv_get_le32(in + 8);
	if (version != KV_BACKUP_VERSION) {
		if (why_len > 0)
			snprintf(why, why_len,
				 "backup format version %u is not one this kvd reads (%u)", version,
				 KV_BACKUP_VERSION);
		return -1;
	}
	if (kv_get_le32(in + 12) != KV_BACKUP_HEADER_BYTES)
		return bad(why, why_len, "damaged header (its length field is wrong)");
	h->cluster_id = kv_get_le64(in + 16);
	h->created_ms = kv_get_le64(in + 24);
	h->groups = kv_get_le32(in + 32);
	h->vnodes = kv_get_le32(in + 36);
	h->ring_epoch = kv_get_le64(in + 40);
	h->sections = kv_get_le32(in + 48);
	/* the meta group takes one id of the KV_GROUPS_MAX */
	if (h->groups == 0 || h->groups >= KV_GROUPS_MAX)
		return bad(why, why_len, "damaged header (group count out of range)");
	if (h->sections != h->groups)
		return bad(why, why_len, "damaged header (section count differs from groups)");
	if (h->vnodes == 0 || h->ring_epoch == 0)
		return bad(why, why_len, "damaged header (ring settings out of range)");
	if (kv_get_le32(in + 52) != 0 || kv_get_le64(in + 56) != 0)
		return bad(why, why_len, "damaged header (reserved bytes are not zero)");
	return 0;
}

void kv_backup_section_encode(const struct kv_backup_section *s,
			      uint8_t out[KV_BACKUP_SECTION_BYTES])
{
	memset(out, 0, KV_BACKUP_SECTION_BYTES);
	memcpy(out, KV_BACKUP_SECTION_MAGIC, 8);
	kv_put_le32(out + 8, s->group);
	kv_put_le64(out + 16, s->index);
	kv_put_le64(out + 24, s->term);
	kv_put_le64(out + 32, s->length);
}

int kv_backup_section_decode(const uint8_t in[KV_BACKUP_SECTION_BYTES], uint32_t groups,
			     struct kv_backup_section *s, char *why, size_t why_len)
{
	if (memcmp(in, KV_BACKUP_SECTION_MAGIC, 8) != 0)
		return bad(why, why_len, "damaged group section (wrong magic)");
	s->group = kv_get_le32(in + 8);
	s->index = kv_get_le64(in + 16);
	s->term = kv_get_le64(in + 24);
	s->length = kv_get_le64(in + 32);
	if (s->group == 0 || s->group > groups || kv_get_le32(in + 12) != 0)
		return bad(why, why_len, "damaged group section (group id out of range)");
	/* a snapshot stream has at least its header and trailer; an applied group has a term */
	if (s->length < SNAP_HEADER + SNAP_TRAILER || (s->index > 0 && s->term == 0) ||
	    s->term > s->index)
		return bad(why, why_len, "damaged group section (index, term or length)");
	return 0;
}

void kv_backup_trailer_encode(const struct kv_backup_trailer *t,
			      uint8_t out[KV_BACKUP_TRAILER_BYTES])
{
	memcpy(out, KV_BACKUP_END_MAGIC, 8);
	kv_put_le64(out + 8, t->sections);
	kv_put_le64(out + 16, t->length);
	kv_put_le64(out + KV_BACKUP_SUM_OFFSET, t->checksum);
}

int kv_backup_trailer_decode(const uint8_t in[KV_BACKUP_TRAILER_BYTES], struct kv_backup_trailer *t,
			     char *why, size_t why_len)
{
	if (memcmp(in, KV_BACKUP_END_MAGIC, 8) != 0)
		return bad(why, why_len, "damaged or truncated file (no trailer where it ends)");
	t->sections = kv_get_le64(in + 8);
	t->length = kv_get_le64(in + 16);
	t->checksum = kv_get_le64(in + KV_BACKUP_SUM_OFFSET);
	return 0;
}

/* ------------------------------------------------------------------------------ reading */

#define READ_BYTES (1u << 20)

struct reader {
	FILE *f;
	XXH3_state_t *hash;
	uint64_t off, size;
};

/* Reads exactly len bytes, hashing the first `hashed` of them. */
static int rd(struct reader *r, void *buf, size_t len, size_t hashed)
{
	if (len > r->size - r->off || fread(buf, 1, len, r->f) != len)
		return -1;
	XXH3_64bits_update(r->hash, buf, hashed);
	r->off += len;
	return 0;
}

int kv_backup_file_walk(const char *path, struct kv_backup_header *hdr, kv_backup_section_fn fn,
			void *arg, char *why, size_t n)
{
	char what[200];
	struct reader r = {0};
	int rc = -1;
	uint8_t *buf = malloc(READ_BYTES);
	r.hash = XXH3_createState();
	if (buf == NULL || r.hash == NULL) {
		snprintf(why, n, "out of memory");
		goto out;
	}
	XXH3_64bits_reset(r.hash);
	/* O_NONBLOCK: a FIFO or a device given by mistake must not hang the open */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		snprintf(why, n, "cannot open: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, n, "not a regular file");
		close(fd);
		goto out;
	}
	if (fcntl(fd, F_SETFL, 0) != 0 || (r.f = fdopen(fd, "rb")) == NULL) {
		snprintf(why, n, "cannot open: %s", strerror(errno));
		close(fd);
		goto out;
	}
	r.size = (uint64_t)st.st_size;
	if (r.size < KV_BACKUP_HEADER_BYTES + KV_BACKUP_TRAILER_BYTES) {
		snprintf(why, n, "refused: too short to be a backup (%llu bytes): truncated?",
			 (unsigned long long)r.size);
		goto out;
	}
	uint8_t h[KV_BACKUP_HEADER_BYTES];
	if (rd(&r, h, sizeof h, sizeof h) < 0) {
		snprintf(why, n, "cannot read the header: %s", strerror(errno));
		goto out;
	}
	if (kv_backup_header_decode(h, hdr, what, sizeof what) < 0) {
		snprintf(why, n, "refused: %s", what);
		goto out;
	}
	uint64_t body_end = r.size - KV_BACKUP_TRAILER_BYTES;
	for (uint32_t i = 0; i < hdr->sections; i++) {
		uint8_t sh[KV_BACKUP_SECTION_BYTES];
		struct kv_backup_section s;
		if (r.off + sizeof sh > body_end || rd(&r, sh, sizeof sh, sizeof sh) < 0) {
			snprintf(why, n,
				 "refused: truncated (the file ends before group %u's section)",
				 i + 1);
			goto out;
		}
		if (kv_backup_section_decode(sh, hdr->groups, &s, what, sizeof what) < 0) {
			snprintf(why, n, "refused at byte %llu: %s",
				 (unsigned long long)(r.off - sizeof sh), what);
			goto out;
		}
		if (s.group != i + 1) {
			snprintf(why, n, "refused at byte %llu: damaged (groups out of order)",
				 (unsigned long long)(r.off - sizeof sh));
			goto out;
		}
		if (s.length > body_end - r.off) {
			snprintf(why, n,
				 "refused: truncated or damaged (group %u's section says %llu "
				 "bytes, the file has %llu left)",
				 s.group, (unsigned long long)s.length,
				 (unsigned long long)(body_end - r.off));
			goto out;
		}
		uint64_t left = s.length;
		do {
			size_t take = left < READ_BYTES ? (size_t)left : READ_BYTES;
			if (rd(&r, buf, take, take) < 0) {
				snprintf(why, n, "read error: %s", strerror(errno));
				goto out;
			}
			left -= take;
			if (fn != NULL && fn(&s, buf, take, left == 0, arg) < 0) {
				snprintf(why, n, "group %u could not be installed", s.group);
				goto out;
			}
		} while (left > 0);
	}
	if (r.off != body_end) {
		snprintf(why, n, "refused: damaged (%llu unexpected bytes before the trailer)",
			 (unsigned long long)(body_end - r.off));
		goto out;
	}
	uint8_t t[KV_BACKUP_TRAILER_BYTES];
	struct kv_backup_trailer tr;
	if (rd(&r, t, sizeof t, KV_BACKUP_SUM_OFFSET) < 0) {
		snprintf(why, n, "cannot read the trailer: %s", strerror(errno));
		goto out;
	}
	if (kv_backup_trailer_decode(t, &tr, what, sizeof what) < 0) {
		snprintf(why, n, "refused: %s", what);
		goto out;
	}
	if (tr.sections != hdr->sections || tr.length != body_end) {
		snprintf(why, n, "refused: damaged trailer (its counts differ from the file's)");
		goto out;
	}
	if (tr.checksum != XXH3_64bits_digest(r.hash)) {
		snprintf(why, n,
			 "refused: checksum mismatch: the file is damaged (bytes changed since "
			 "kvctl backup wrote it)");
		goto out;
	}
	rc = 0;
out:
	if (r.f != NULL)
		fclose(r.f);
	XXH3_freeState(r.hash);
	free(buf);
	return rc;
}
