/* cmd.c — the binary encoding of a write command as it travels in a Raft entry.
 *
 * Layout (little-endian, 31-byte header, then the three byte strings back to back):
 *   u8 version (1) | u8 op | u8 flags (bit 0: expect_absent) | u64 client_id | u64 seq |
 *   u16 key_len | u32 value_len | u32 expected_len | u16 reserved (0) | key | value | expected
 * A session (client_id != 0) numbers its commands from seq 1; without one both are 0.
 * Decoding checks every length against the buffer and the absolute limits, and the fields
 * against the op: an entry comes from the disk or the network and is never trusted.
 */
#include <stdlib.h>

#include "kv/kv_int.h"

#define CMD_VERSION     1
#define CMD_HEADER      31
#define CMD_FLAG_ABSENT 1u

/* Field rules shared by encode and decode. value_max is the configured limit when encoding
 * and the absolute one when decoding. */
static int check(const struct kv_cmd *c, size_t value_max)
{
	if ((c->client_id == 0) != (c->seq == 0))
		return KV_EINVAL;
	switch (c->op) {
	case KV_OP_NOOP:
		if (c->key_len || c->value_len || c->expected_len || c->expect_absent)
			return KV_EINVAL;
		return KV_OK;
	case KV_OP_PUT:
		if (c->expected_len || c->expect_absent)
			return KV_EINVAL;
		break;
	case KV_OP_DELETE:
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
	c = &norm;
	int err = check(c, value_max);
	if (err != KV_OK)
		return err;
	if ((c->key_len && !c->key) || (c->value_len && !c->value) ||
	    (c->expected_len && !c->expected))
		return KV_EINVAL;
	size_t len = CMD_HEADER + c->key_len + c->value_len + c->expected_len;
	uint8_t *p = malloc(len);
	if (p == NULL)
		return KV_ENOMEM;
	p[0] = CMD_VERSION;
	p[1] = c->op;
	p[2] = c->expect_absent ? CMD_FLAG_ABSENT : 0;
	kv_put_le64(p + 3, c->client_id);
	kv_put_le64(p + 11, c->seq);
	p[19] = (uint8_t)c->key_len;
	p[20] = (uint8_t)(c->key_len >> 8);
	kv_put_le32(p + 21, (uint32_t)c->value_len);
	kv_put_le32(p + 25, (uint32_t)c->expected_len);
	p[29] = 0;
	p[30] = 0;
	uint8_t *q = p + CMD_HEADER;
	if (c->key_len)
		memcpy(q, c->key, c->key_len);
	q += c->key_len;
	if (c->value_len)
		memcpy(q, c->value, c->value_len);
	q += c->value_len;
	if (c->expected_len)
		memcpy(q, c->expected, c->expected_len);
	out->base = p;
	out->len = len;
	return KV_OK;
}

int kv_cmd_decode(const void *data, size_t len, struct kv_cmd *c)
{
	const uint8_t *p = data;
	if (p == NULL || len < CMD_HEADER || p[0] != CMD_VERSION || (p[2] & ~CMD_FLAG_ABSENT) ||
	    p[29] || p[30])
		return KV_EINVAL;
	memset(c, 0, sizeof *c);
	c->op = p[1];
	c->expect_absent = p[2] & CMD_FLAG_ABSENT;
	c->client_id = kv_get_le64(p + 3);
	c->seq = kv_get_le64(p + 11);
	c->key_len = (size_t)p[19] | (size_t)p[20] << 8;
	c->value_len = kv_get_le32(p + 21);
	c->expected_len = kv_get_le32(p + 25);
	/* Each length is below 2^32, so the sum cannot overflow a 64-bit size_t. */
	if ((uint64_t)CMD_HEADER + c->key_len + c->value_len + c->expected_len != len)
		return KV_EINVAL;
	if (check(c, KV_VALUE_MAX_HARD) != KV_OK)
		return KV_EINVAL;
	c->key = p + CMD_HEADER;
	c->value = p + CMD_HEADER + c->key_len;
	c->expected = p + CMD_HEADER + c->key_len + c->value_len;
	return KV_OK;
}
