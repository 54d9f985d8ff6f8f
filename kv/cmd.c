/* cmd.c — the binary encoding of a write command as it travels in a Raft entry.
 *
 * Layout (little-endian, 31-byte header, then the three byte strings back to back):
 *   u8 version (1) | u8 op | u8 flags (bit 0: expect_absent, 1: if_present, 2: return_old) |
 *   u64 client_id | u64 seq |
 *   u16 key_len | u32 value_len | u32 expected_len | u16 reserved (0) | key | value | expected
 * Version 2 (expiry) adds flag bit 3 (keep_ttl) and 16 bytes after the reserved field:
 *   u64 now_ms | u64 expire_at_ms
 * A command that uses neither (no clock, no expiry) is still written as version 1, which every
 * older ringraft applies; both versions decode.
 * A session (client_id != 0) numbers its commands from seq 1; without one both are 0.
 * Decoding checks every length against the buffer and the absolute limits, and the fields
 * against the op: an entry comes from the disk or the network and is never trusted.
 * MSET/MDEL/REAP pack their items into the value: per item u16 key_len | u32 value_len | key |
 * value (MDEL: value_len 0; REAP: 8, the u64 LE expiry), 1..KV_MULTI_KEYS_MAX items, every key
 * 1..KV_KEY_MAX bytes.
 */
#include <assert.h>
#include <stdlib.h>

#include "kv/kv_int.h"

#define CMD_VERSION      1
#define CMD_VERSION_TTL  2
#define CMD_HEADER       31
#define CMD_HEADER_TTL   47
#define CMD_FLAG_ABSENT  1u
#define CMD_FLAG_PRESENT 2u
#define CMD_FLAG_OLD     4u
#define CMD_FLAG_KEEPTTL 8u
#define CMD_FLAGS        (CMD_FLAG_ABSENT | CMD_FLAG_PRESENT | CMD_FLAG_OLD)
#define CMD_FLAGS_TTL    (CMD_FLAGS | CMD_FLAG_KEEPTTL)
#define ITEM_HEADER      6

/* The value of a resharding op (FENCE .. DROP) is well formed; true for the others. */
static bool value_ok(const struct kv_cmd *c)
{
	if (c->op == KV_OP_FENCE || c->op == KV_OP_UNFENCE)
		return kv_fence_value_ok(c->op, c->value, c->value_len);
	if (c->op >= KV_OP_INGEST && c->op <= KV_OP_DROP)
		return kv_handoff_value_ok(c->op, c->value, c->value_len);
	return true;
}

static bool multi(uint8_t op)
{
	return op == KV_OP_MSET || op == KV_OP_MDEL || op == KV_OP_REAP;
}

/* Walks a packed item list: KV_OK when every item is well formed (value_max per value, MDEL
 * values empty), counting them in *n. */
static int items_check(uint8_t op, const uint8_t *p, size_t len, size_t value_max, size_t *n)
{
	size_t off = 0;
	*n = 0;
	while (off < len) {
		if (len - off < ITEM_HEADER)
			return KV_EINVAL;
		size_t kl = (size_t)p[off] | (size_t)p[off + 1] << 8;
		size_t vl = kv_get_le32(p + off + 2);
		if (kl == 0 || kl > KV_KEY_MAX || (op == KV_OP_MDEL && vl != 0) ||
		    (op == KV_OP_REAP && vl != 8))
			return KV_EINVAL;
		if (vl > value_max)
			return KV_ETOOLARGE;
		if ((uint64_t)kl + vl > len - off - ITEM_HEADER)
			return KV_EINVAL;
		off += ITEM_HEADER + kl + vl;
		if (++*n > KV_MULTI_KEYS_MAX)
			return KV_EINVAL;
	}
	return *n == 0 ? KV_EINVAL : KV_OK;
}

int kv_cmd_item_next(const struct kv_cmd *c, size_t *off, struct kv_item *out)
{
	const uint8_t *p = c->value;
	if (*off >= c->value_len)
		return 0;
	assert(c->value_len - *off >= ITEM_HEADER);
	out->key_len = (size_t)p[*off] | (size_t)p[*off + 1] << 8;
	out->value_len = kv_get_le32(p + *off + 2);
	out->key = p + *off + ITEM_HEADER;
	out->value = p + *off + ITEM_HEADER + out->key_len;
	*off += ITEM_HEADER + out->key_len + out->value_len;
	return 1;
}

/* Field rules shared by encode and decode. value_max is the configured limit when encoding
 * and the absolute one when decoding. */
static int check(const struct kv_cmd *c, size_t value_max)
{
	if ((c->client_id == 0) != (c->seq == 0))
		return KV_EINVAL;
	if ((c->if_present || c->return_old) && c->op != KV_OP_PUT && c->op != KV_OP_DELETE)
		return KV_EINVAL;
	if (c->if_present && c->op != KV_OP_PUT)
		return KV_EINVAL;
	if ((c->keep_ttl || c->expire_at_ms) && c->op != KV_OP_PUT && c->op != KV_OP_CAS &&
	    c->op != KV_OP_EXPIRE)
		return KV_EINVAL;
	if (c->keep_ttl && (c->expire_at_ms || c->op == KV_OP_EXPIRE))
		return KV_EINVAL;
	switch (c->op) {
	case KV_OP_INCRBY:
		if (c->value_len != 8 || c->expected_len || c->expect_absent)
			return KV_EINVAL;
		break;
	case KV_OP_MSET:
	case KV_OP_MDEL:
	case KV_OP_REAP:
		/* the items are checked by items_check */
		if (c->key_len || c->expected_len || c->expect_absent)
			return KV_EINVAL;
		return c->value_len > KV_VALUE_MAX_HARD ? KV_ETOOLARGE : KV_OK;
	case KV_OP_NOOP:
		if (c->key_len || c->value_len || c->expected_len || c->expect_absent)
			return KV_EINVAL;
		return KV_OK;
	case KV_OP_FENCE:
	case KV_OP_UNFENCE:
	case KV_OP_INGEST:
	case KV_OP_RELEASE:
	case KV_OP_OPEN:
	case KV_OP_DROP:
		/* the value's layout is checked by value_ok once it is in place */
		if (c->key_len || c->expected_len || c->expect_absent || c->client_id)
			return KV_EINVAL;
		return c->value_len > KV_VALUE_MAX_HARD ? KV_ETOOLARGE : KV_OK;
	case KV_OP_PUT:
		if (c->expected_len || c->expect_absent)
			return KV_EINVAL;
		break;
	case KV_OP_DELETE:
	case KV_OP_EXPIRE:
		if (c->value_len || c->expected_len || c->expect_absent)
			return KV_EINVAL;
		break;
	case KV_OP_CAS:
		if (c->expect_absent && c->expected_len)
			return KV_EINVAL;
		break;
	default:
		return KV_EINVAL;
	}
	if (c->key_len == 0 || c->key_len > KV_KEY_MAX)
		return KV_EINVAL;
	if (c->value_len > value_max || c->expected_len > value_max)
		return KV_ETOOLARGE;
	return KV_OK;
}

int kv_cmd_encode(const struct kv *kv, const struct kv_cmd *c, struct raft_buf *out)
{
	size_t value_max = kv ? kv->opt.value_max : KV_VALUE_MAX_DEFAULT;
	struct kv_cmd norm = *c;
	if (norm.client_id == 0 || norm.seq == 0)
		norm.client_id = norm.seq = 0; /* no session: the format carries 0, 0 */
	uint8_t *packed = NULL;
	if (multi(c->op)) {
		if (c->n_items == 0 || c->n_items > KV_MULTI_KEYS_MAX || c->items == NULL)
			return KV_EINVAL;
		uint64_t total = 0;
		for (size_t i = 0; i < c->n_items; i++) {
			const struct kv_item *it = &c->items[i];
			if (it->key_len == 0 || it->key_len > KV_KEY_MAX || it->key == NULL ||
			    (c->op == KV_OP_MDEL && it->value_len) ||
			    (c->op == KV_OP_REAP && it->value_len != 8) ||
			    (it->value_len && !it->value))
				return KV_EINVAL;
			if (it->value_len > value_max)
				return KV_ETOOLARGE;
			total += ITEM_HEADER + it->key_len + it->value_len;
		}
		if (total > KV_VALUE_MAX_HARD)
			return KV_ETOOLARGE;
		if ((packed = malloc(total)) == NULL)
			return KV_ENOMEM;
		size_t off = 0;
		for (size_t i = 0; i < c->n_items; i++) {
			const struct kv_item *it = &c->items[i];
			packed[off] = (uint8_t)it->key_len;
			packed[off + 1] = (uint8_t)(it->key_len >> 8);
			kv_put_le32(packed + off + 2, (uint32_t)it->value_len);
			memcpy(packed + off + ITEM_HEADER, it->key, it->key_len);
			if (it->value_len)
				memcpy(packed + off + ITEM_HEADER + it->key_len, it->value,
				       it->value_len);
			off += ITEM_HEADER + it->key_len + it->value_len;
		}
		norm.value = packed;
		norm.value_len = (size_t)total;
	}
	c = &norm;
	int err = check(c, value_max);
	if (err != KV_OK) {
		free(packed);
		return err;
	}
	if ((c->key_len && !c->key) || (c->value_len && !c->value) ||
	    (c->expected_len && !c->expected) || !value_ok(c)) {
		free(packed);
		return KV_EINVAL;
	}
	bool ttl = c->now_ms || c->expire_at_ms || c->keep_ttl || c->op > KV_OP_MDEL;
	size_t header = ttl ? CMD_HEADER_TTL : CMD_HEADER;
	size_t len = header + c->key_len + c->value_len + c->expected_len;
	uint8_t *p = malloc(len);
	if (p == NULL) {
		free(packed);
		return KV_ENOMEM;
	}
	p[0] = ttl ? CMD_VERSION_TTL : CMD_VERSION;
	p[1] = c->op;
	p[2] = (uint8_t)((c->expect_absent ? CMD_FLAG_ABSENT : 0) |
			 (c->if_present ? CMD_FLAG_PRESENT : 0) |
			 (c->return_old ? CMD_FLAG_OLD : 0) | (c->keep_ttl ? CMD_FLAG_KEEPTTL : 0));
	kv_put_le64(p + 3, c->client_id);
	kv_put_le64(p + 11, c->seq);
	p[19] = (uint8_t)c->key_len;
	p[20] = (uint8_t)(c->key_len >> 8);
	kv_put_le32(p + 21, (uint32_t)c->value_len);
	kv_put_le32(p + 25, (uint32_t)c->expected_len);
	p[29] = 0;
	p[30] = 0;
	if (ttl) {
		kv_put_le64(p + CMD_HEADER, c->now_ms);
		kv_put_le64(p + CMD_HEADER + 8, c->expire_at_ms);
	}
	uint8_t *q = p + header;
	if (c->key_len)
		memcpy(q, c->key, c->key_len);
	q += c->key_len;
	if (c->value_len)
		memcpy(q, c->value, c->value_len);
	q += c->value_len;
	if (c->expected_len)
		memcpy(q, c->expected, c->expected_len);
	free(packed);
	out->base = p;
	out->len = len;
	return KV_OK;
}

int kv_cmd_decode(const void *data, size_t len, struct kv_cmd *c)
{
	const uint8_t *p = data;
	if (p == NULL || len < CMD_HEADER || (p[0] != CMD_VERSION && p[0] != CMD_VERSION_TTL) ||
	    p[29] || p[30])
		return KV_EINVAL;
	bool ttl = p[0] == CMD_VERSION_TTL;
	size_t header = ttl ? CMD_HEADER_TTL : CMD_HEADER;
	if (len < header || (p[2] & ~(ttl ? CMD_FLAGS_TTL : CMD_FLAGS)) ||
	    (!ttl && p[1] > KV_OP_MDEL))
		return KV_EINVAL;
	memset(c, 0, sizeof *c);
	c->op = p[1];
	c->expect_absent = p[2] & CMD_FLAG_ABSENT;
	c->if_present = p[2] & CMD_FLAG_PRESENT;
	c->return_old = p[2] & CMD_FLAG_OLD;
	c->keep_ttl = p[2] & CMD_FLAG_KEEPTTL;
	if (ttl) {
		c->now_ms = kv_get_le64(p + CMD_HEADER);
		c->expire_at_ms = kv_get_le64(p + CMD_HEADER + 8);
	}
	c->client_id = kv_get_le64(p + 3);
	c->seq = kv_get_le64(p + 11);
	c->key_len = (size_t)p[19] | (size_t)p[20] << 8;
	c->value_len = kv_get_le32(p + 21);
	c->expected_len = kv_get_le32(p + 25);
	/* Each length is below 2^32, so the sum cannot overflow a 64-bit size_t. */
	if ((uint64_t)header + c->key_len + c->value_len + c->expected_len != len)
		return KV_EINVAL;
	if (check(c, KV_VALUE_MAX_HARD) != KV_OK)
		return KV_EINVAL;
	c->key = p + header;
	c->value = p + header + c->key_len;
	c->expected = p + header + c->key_len + c->value_len;
	size_t n;
	if (multi(c->op) &&
	    items_check(c->op, c->value, c->value_len, KV_VALUE_MAX_HARD, &n) != KV_OK)
		return KV_EINVAL;
	if (!value_ok(c))
		return KV_EINVAL;
	return KV_OK;
}
