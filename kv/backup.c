/* backup.c — encoding and checking the fixed parts of a backup file (backup.h). The bytes
 * come from a file an operator hands to kvd --restore: every field is checked here before
 * anything trusts it; the checksum over the whole file is checked by the reader.
 */
#include <stdio.h>
#include <string.h>

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
	if (s->length < SNAP_HEADER + SNAP_TRAILER || (s->index > 0 && s->term == 0) || s->term > s->index)
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

int kv_backup_trailer_decode(const uint8_t in[KV_BACKUP_TRAILER_BYTES],
			     struct kv_backup_trailer *t, char *why, size_t why_len)
{
	if (memcmp(in, KV_BACKUP_END_MAGIC, 8) != 0)
		return bad(why, why_len, "damaged or truncated file (no trailer where it ends)");
	t->sections = kv_get_le64(in + 8);
	t->length = kv_get_le64(in + 16);
	t->checksum = kv_get_le64(in + KV_BACKUP_SUM_OFFSET);
	return 0;
}
