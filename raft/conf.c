/* conf.c — configuration helpers and the conf entry encoding described in conf.h.
 * Single-server changes (thesis 4.1): each change adds or removes one server, so any majority
 * of the old configuration overlaps any majority of the new one.
 */
#include "raft/conf.h"

#include <stdlib.h>
#include <string.h>

static bool in_list(const raft_id *ids, uint32_t n, raft_id id)
{
	for (uint32_t i = 0; i < n; i++)
		if (ids[i] == id)
			return true;
	return false;
}

static void list_remove(raft_id *ids, uint32_t *n, raft_id id)
{
	for (uint32_t i = 0; i < *n; i++) {
		if (ids[i] == id) {
			memmove(&ids[i], &ids[i + 1], (*n - i - 1) * sizeof(*ids));
			(*n)--;
			return;
		}
	}
}

bool raft_conf_is_voter(const struct raft_conf *c, raft_id id)
{
	return id != 0 && in_list(c->voters, c->n_voters, id);
}

bool raft_conf_is_learner(const struct raft_conf *c, raft_id id)
{
	return id != 0 && in_list(c->learners, c->n_learners, id);
}

bool raft_conf_is_member(const struct raft_conf *c, raft_id id)
{
	return raft_conf_is_voter(c, id) || raft_conf_is_learner(c, id);
}

bool raft_conf_equal(const struct raft_conf *a, const struct raft_conf *b)
{
	return a->n_voters == b->n_voters && a->n_learners == b->n_learners &&
	       memcmp(a->voters, b->voters, a->n_voters * sizeof(raft_id)) == 0 &&
	       memcmp(a->learners, b->learners, a->n_learners * sizeof(raft_id)) == 0;
}

int raft_conf_apply(struct raft_conf *c, enum raft_conf_change_type type, raft_id node)
{
	if (node == 0)
		return RAFT_EINVAL;
	uint32_t total = c->n_voters + c->n_learners;
	switch (type) {
	case RAFT_CC_ADD_VOTER:
		if (raft_conf_is_member(c, node) || total >= RAFT_NODES_MAX)
			return RAFT_EINVAL;
		c->voters[c->n_voters++] = node;
		return 0;
	case RAFT_CC_ADD_LEARNER:
		if (raft_conf_is_member(c, node) || total >= RAFT_NODES_MAX)
			return RAFT_EINVAL;
		c->learners[c->n_learners++] = node;
		return 0;
	case RAFT_CC_PROMOTE:
		if (!raft_conf_is_learner(c, node))
			return RAFT_EINVAL;
		list_remove(c->learners, &c->n_learners, node);
		c->voters[c->n_voters++] = node;
		return 0;
	case RAFT_CC_REMOVE:
		if (raft_conf_is_voter(c, node)) {
			if (c->n_voters == 1)
				return RAFT_EINVAL;
			list_remove(c->voters, &c->n_voters, node);
			return 0;
		}
		if (raft_conf_is_learner(c, node)) {
			list_remove(c->learners, &c->n_learners, node);
			return 0;
		}
		return RAFT_EINVAL;
	}
	return RAFT_EINVAL;
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

int raft_conf_encode(const struct raft_conf *c, enum raft_conf_change_type type, raft_id node,
		     struct raft_buf *out)
{
	size_t len = RAFT_CONF_ENC_HEADER + 8 * (size_t)(c->n_voters + c->n_learners);
	uint8_t *p = calloc(1, len);
	if (p == NULL)
		return RAFT_ENOMEM;
	p[0] = RAFT_CONF_ENC_VERSION;
	p[1] = (uint8_t)type;
	put_u64(p + 4, node);
	put_u32(p + 12, c->n_voters);
	put_u32(p + 16, c->n_learners);
	uint8_t *q = p + RAFT_CONF_ENC_HEADER;
	for (uint32_t i = 0; i < c->n_voters; i++, q += 8)
		put_u64(q, c->voters[i]);
	for (uint32_t i = 0; i < c->n_learners; i++, q += 8)
		put_u64(q, c->learners[i]);
	out->base = p;
	out->len = len;
	return 0;
}

int raft_conf_decode(const struct raft_buf *in, struct raft_conf *c)
{
	const uint8_t *p = in->base;
	if (in->len < RAFT_CONF_ENC_HEADER || p[0] != RAFT_CONF_ENC_VERSION)
		return RAFT_EINVAL;
	uint32_t nv = get_u32(p + 12), nl = get_u32(p + 16);
	if (nv > RAFT_NODES_MAX || nl > RAFT_NODES_MAX || nv + nl > RAFT_NODES_MAX ||
	    in->len != RAFT_CONF_ENC_HEADER + 8 * (size_t)(nv + nl))
		return RAFT_EINVAL;
	memset(c, 0, sizeof(*c));
	const uint8_t *q = p + RAFT_CONF_ENC_HEADER;
	for (uint32_t i = 0; i < nv; i++, q += 8)
		c->voters[i] = get_u64(q);
	for (uint32_t i = 0; i < nl; i++, q += 8)
		c->learners[i] = get_u64(q);
	c->n_voters = nv;
	c->n_learners = nl;
	return 0;
}
