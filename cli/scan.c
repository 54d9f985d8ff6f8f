/* scan.c — a scan over every group, merged in key order. Each group's range is read page by
 * page (the node's `next_key` continuation) from its leader, up to `limit` pairs per group, then
 * the pages are merged by sorting: O(G*limit*log) time and G*limit pairs of memory, fine for the
 * interactive sizes kvctl asks for (a k-way merge would only save the log factor).
 */
#include <stdlib.h>
#include <string.h>

#include "cli/client_int.h"

struct pair {
	uint8_t *key, *value;
	size_t key_len, value_len;
};

struct pairs {
	struct pair *v;
	size_t n, cap;
};

static int key_cmp(const void *a, const void *b)
{
	const struct pair *x = a, *y = b;
	size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
	int c = n ? memcmp(x->key, y->key, n) : 0;
	if (c)
		return c;
	return (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

static int push(struct pairs *ps, const Ringraft__Kv__KeyValue *kv)
{
	if (ps->n == ps->cap) {
		size_t cap = ps->cap ? ps->cap * 2 : 64;
		struct pair *v = realloc(ps->v, cap * sizeof *v);
		if (v == NULL)
			return CLI_ENOMEM;
		ps->v = v;
		ps->cap = cap;
	}
	struct pair *p = &ps->v[ps->n];
	p->key = cli_dup(kv->key.data, kv->key.len);
	p->value = cli_dup(kv->value.data, kv->value.len);
	if (p->key == NULL || p->value == NULL) {
		free(p->key);
		free(p->value);
		return CLI_ENOMEM;
	}
	p->key_len = kv->key.len;
	p->value_len = kv->value.len;
	ps->n++;
	return 0;
}

/* Reads up to limit pairs of [start, end) from one group into ps. */
static int scan_group(struct cli_client *c, uint32_t group, const void *start, size_t start_len,
		      const void *end, size_t end_len, uint32_t limit, struct pairs *ps)
{
	uint8_t *cur = cli_dup(start, start_len);
	size_t cur_len = start_len;
	uint32_t got = 0;
	int rc = cur ? 0 : CLI_ENOMEM;
	while (rc == 0 && got < limit) {
		struct cli_call call = {.write = false};
		ringraft__kv__request__init(&call.req);
		call.req.op = RINGRAFT__KV__OP__SCAN;
		call.req.group = group;
		call.req.key.data = cur;
		call.req.key.len = cur_len;
		call.req.end_key.data = (uint8_t *)end;
		call.req.end_key.len = end ? end_len : 0;
		call.req.limit = limit - got < KV_SCAN_MAX ? limit - got : KV_SCAN_MAX;
		call.req.consistency = c->o.serializable ? RINGRAFT__KV__CONSISTENCY__SERIALIZABLE
							 : RINGRAFT__KV__CONSISTENCY__LINEARIZABLE;
		Ringraft__Kv__Response *resp;
		rc = cli_call_routed(c, &call, &resp);
		if (rc != CLI_OK) {
			if (resp)
				ringraft__kv__response__free_unpacked(resp, NULL);
			break;
		}
		for (size_t i = 0; i < resp->n_kvs && got < limit && rc == 0; i++, got++)
			rc = push(ps, resp->kvs[i]);
		bool more = resp->next_key.len > 0 && resp->n_kvs > 0;
		if (more) {
			uint8_t *next = cli_dup(resp->next_key.data, resp->next_key.len);
			if (next == NULL) {
				rc = CLI_ENOMEM;
			} else {
				free(cur);
				cur = next;
				cur_len = resp->next_key.len;
			}
		}
		ringraft__kv__response__free_unpacked(resp, NULL);
		if (!more)
			break;
	}
	free(cur);
	return rc;
}

int cli_scan(struct cli_client *c, const void *start, size_t start_len, const void *end,
	     size_t end_len, uint32_t limit, cli_scan_cb cb, void *arg)
{
	if (cb == NULL || (start == NULL && start_len) || limit > CLI_SCAN_LIMIT_MAX)
		return CLI_EINVAL;
	if (start_len > CLI_KEY_MAX || end_len > CLI_KEY_MAX)
		return CLI_TOO_LARGE;
	if (limit == 0)
		limit = CLI_SCAN_LIMIT_DEFAULT;
	if (c->route.ring == NULL) {
		int rc = cli_refresh(c, cli_now_ms() + c->o.timeout_ms);
		if (rc)
			return rc;
	}
	/* The ring's group ids, copied: an answer on the way may install a new ring. */
	size_t groups;
	const uint32_t *ring_ids = kv_ring_ids(c->route.ring, &groups);
	uint32_t *ids = malloc(groups * sizeof *ids);
	if (ids == NULL)
		return CLI_ENOMEM;
	memcpy(ids, ring_ids, groups * sizeof *ids);
	struct pairs ps = {0};
	int rc = 0;
	for (size_t i = 0; i < groups && rc == 0; i++)
		rc = scan_group(c, ids[i], start, start_len, end, end_len, limit, &ps);
	free(ids);
	if (rc == 0) {
		qsort(ps.v, ps.n, sizeof *ps.v, key_cmp);
		for (size_t i = 0; i < ps.n && i < limit; i++)
			if (cb(ps.v[i].key, ps.v[i].key_len, ps.v[i].value, ps.v[i].value_len,
			       arg) != 0)
				break;
	}
	for (size_t i = 0; i < ps.n; i++) {
		free(ps.v[i].key);
		free(ps.v[i].value);
	}
	free(ps.v);
	return rc;
}

int cli_scan_prefix(struct cli_client *c, const void *prefix, size_t prefix_len, uint32_t limit,
		    cli_scan_cb cb, void *arg)
{
	if (prefix_len > CLI_KEY_MAX)
		return CLI_TOO_LARGE;
	if (prefix == NULL && prefix_len)
		return CLI_EINVAL;
	/* The end of the prefix range: the prefix with trailing 0xff bytes removed and its last
	 * byte incremented; no end at all for "" or an all-0xff prefix. */
	uint8_t end[CLI_KEY_MAX];
	size_t end_len = prefix_len;
	if (prefix_len)
		memcpy(end, prefix, prefix_len);
	while (end_len > 0 && end[end_len - 1] == 0xff)
		end_len--;
	if (end_len > 0)
		end[end_len - 1]++;
	return cli_scan(c, prefix, prefix_len, end_len ? end : NULL, end_len, limit, cb, arg);
}
