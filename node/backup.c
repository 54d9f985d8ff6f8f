/* backup.c — the serving side of `kvctl backup` (issue 21, docs/OPERATIONS.md "Backup and
 * restore"): a group's leader streams a snapshot of the group to a client, chunk by chunk.
 *
 * BACKUP_BEGIN travels the path of a linearizable read (service.c): the leader confirms its
 * leadership with a ReadIndex round and waits until it has applied up to the read index, so
 * the snapshot holds every write acknowledged before the request arrived. The snapshot is an
 * LMDB read transaction (kv_snapshot_begin): writes go on meanwhile, and every chunk comes from
 * that one version, so the copy is the group at one applied index. The open snapshot waits here
 * under an id for the client's BACKUP_CHUNK requests, each naming the offset it expects (a
 * retry or a reordered request is refused rather than answered with the wrong bytes). A node
 * keeps at most NODE_BACKUPS_MAX open (an open snapshot pins LMDB pages and stops the map from
 * growing, kv.h) and closes one idle for NODE_BACKUP_IDLE_MS.
 */
#include <stdlib.h>
#include <string.h>

#include "node/node_int.h"

static struct node_backup *find(struct node *n, uint64_t id)
{
	for (size_t i = 0; id != 0 && i < NODE_BACKUPS_MAX; i++)
		if (n->backups[i].id == id)
			return &n->backups[i];
	return NULL;
}

static void close_one(struct node_backup *b)
{
	kv_snapshot_end(b->snap);
	memset(b, 0, sizeof *b);
}

/* The next chunk of b into resp; closes b after the last one or on a failure. */
static void chunk(struct node *n, struct node_backup *b, Ringraft__Kv__Response *resp)
{
	uint8_t *buf = malloc(NODE_BACKUP_CHUNK_BYTES);
	if (buf == NULL) {
		resp->code = RINGRAFT__KV__CODE__INTERNAL;
		resp->error = "out of memory";
		close_one(b);
		return;
	}
	size_t len = 0;
	bool done = false;
	int rc = kv_snapshot_read(b->snap, buf, NODE_BACKUP_CHUNK_BYTES, &len, &done);
	if (rc != KV_OK) {
		free(buf);
		struct node_group *g = node_group(n, b->group);
		if (rc == KV_ECORRUPT && g != NULL)
			node_group_damaged(n, g, "a backup");
		node_log(NODE_LOG_ERROR, b->group, "backup failed id=%llu error=\"%s\"",
			 (unsigned long long)b->id, kv_strerror(rc));
		resp->code = RINGRAFT__KV__CODE__INTERNAL;
		resp->error = (char *)kv_strerror(rc);
		close_one(b);
		return;
	}
	resp->code = RINGRAFT__KV__CODE__OK;
	resp->backup_id = b->id;
	resp->backup_offset = b->offset;
	resp->applied_index = kv_snapshot_index(b->snap);
	resp->backup_term = kv_snapshot_term(b->snap);
	resp->value.data = buf;
	resp->value.len = len;
	resp->done = done;
	b->offset += len;
	b->last_ms = node_now_ms(n);
	if (done) {
		node_log(NODE_LOG_INFO, b->group, "backup sent id=%llu applied=%llu bytes=%llu",
			 (unsigned long long)b->id, (unsigned long long)resp->applied_index,
			 (unsigned long long)b->offset);
		close_one(b);
	}
}

static void begin(struct node *n, uint32_t group, uint64_t id, Ringraft__Kv__Response *resp)
{
	struct node_backup *b = NULL;
	for (size_t i = 0; i < NODE_BACKUPS_MAX && b == NULL; i++)
		if (n->backups[i].id == 0)
			b = &n->backups[i];
	if (b == NULL) {
		resp->code = RINGRAFT__KV__CODE__BUSY;
		resp->error = "busy: too many backups open on this node, retry later";
		return;
	}
	struct kv_snapshot *s;
	int rc = kv_snapshot_begin(n->kv, group, &s);
	if (rc != KV_OK) {
		resp->code = RINGRAFT__KV__CODE__INTERNAL;
		resp->error = (char *)kv_strerror(rc);
		return;
	}
	*b = (struct node_backup){.id = id, .group = group, .snap = s};
	node_log(NODE_LOG_INFO, group, "backup begins id=%llu applied=%llu", (unsigned long long)id,
		 (unsigned long long)kv_snapshot_index(s));
	chunk(n, b, resp);
}

void node_backup_answer(struct node *n, uint32_t group, uint64_t id,
			const Ringraft__Kv__Request *rq, Ringraft__Kv__Response *resp)
{
	if (rq->op == RINGRAFT__KV__OP__BACKUP_BEGIN) {
		begin(n, group, id, resp);
		return;
	}
	struct node_backup *b = find(n, rq->backup_id);
	if (b == NULL) {
		resp->code = RINGRAFT__KV__CODE__INVALID;
		resp->error = "no such backup on this node (finished, expired, or begun on another "
			      "node): begin again";
		return;
	}
	if (rq->op == RINGRAFT__KV__OP__BACKUP_END) {
		close_one(b);
		resp->code = RINGRAFT__KV__CODE__OK;
		return;
	}
	if (rq->backup_offset != b->offset) {
		/* a chunk was lost or asked twice: the stream cannot go back; begin again */
		resp->code = RINGRAFT__KV__CODE__INVALID;
		resp->error = "backup_offset differs from what this backup sent: begin again";
		close_one(b);
		return;
	}
	chunk(n, b, resp);
}

void node_backup_answer_free(Ringraft__Kv__Response *resp)
{
	free(resp->value.data);
	resp->value.data = NULL;
	resp->value.len = 0;
}

void node_backup_tick(struct node *n)
{
	uint64_t now = node_now_ms(n);
	for (size_t i = 0; i < NODE_BACKUPS_MAX; i++) {
		struct node_backup *b = &n->backups[i];
		if (b->id != 0 && now - b->last_ms >= NODE_BACKUP_IDLE_MS) {
			node_log(NODE_LOG_WARN, b->group, "backup expired (idle) id=%llu",
				 (unsigned long long)b->id);
			close_one(b);
		}
	}
}

void node_backup_close_all(struct node *n)
{
	for (size_t i = 0; i < NODE_BACKUPS_MAX; i++)
		if (n->backups[i].id != 0)
			close_one(&n->backups[i]);
}
