/* reshard_drive.c — the driver of a ring change (issue 18; docs/DESIGN-NOTES.md "Resharding",
 * "The driver"): the meta group's leader walks the record's pairs of groups (a source and a
 * target) one at a time through FENCE, the copy (COPY_READ at the source, INGEST at the
 * target), RELEASE and OPEN, writing each step's outcome into the record by compare-and-set,
 * and rolls the change back when it makes no progress before any copy is complete. It asks
 * each step of the group's leader with a RESHARD_STEP request of its own (as the balancer
 * asks MOVE_REPLICA, rebalance.c), one at a time in the whole cluster.
 *
 * It keeps nothing durable of its own. The record says where each pair is, and every step is
 * idempotent at the state machine (kv/handoff.h, kv/fence.c), so a new meta leader, or this
 * one after an error, repeats the step the record says is next. What it keeps in memory is
 * only what saves work: the copy's offset (a new leader starts it again from the target's
 * offset, which INGEST answers), and which OPENs and clean-ups it has seen done.
 *
 * Also here: the source's half of COPY_READ, an open reader of the frozen range kept between
 * chunks (kv_copy, kv/handoff.h), so that a copy reads the range once rather than once per chunk.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/handoff.h"
#include "node/node_int.h"

/* ------------------------------------------------------------------------------ the source */

void node_handoff_copy_close(struct node *n)
{
	struct node_copy_open *o = &n->copy;
	if (o->c != NULL)
		kv_copy_end(o->c);
	memset(o, 0, sizeof *o);
}

Ringraft__Kv__Code node_handoff_read(struct node *n, struct node_group *g,
				     const Ringraft__Kv__Request *rq, uint8_t **chunk, size_t *len,
				     bool *last, uint64_t *next, const char **why)
{
	struct node_copy_open *o = &n->copy;
	*next = 0;
	*chunk = NULL;
	*len = 0;
	*last = false;
	*why = NULL;
	if (raft_recovering(g->raft)) {
		*why = "the source's replica is recovering: try again";
		return RINGRAFT__KV__CODE__UNAVAILABLE;
	}
	uint64_t epoch;
	struct kv_ring_range *ranges;
	size_t nr;
	int rc = kv_fence_value_parse(rq->value.data, rq->value.len, &epoch, &ranges, &nr);
	if (rc != 0) {
		*why = "reshard step: the copy's value is not a fence value";
		return rc == KV_RESHARD_ENOMEM ? RINGRAFT__KV__CODE__UNAVAILABLE
					       : RINGRAFT__KV__CODE__INVALID;
	}
	bool same = o->c != NULL && o->group == g->id && o->epoch == epoch &&
		    o->target == (uint32_t)rq->target && o->state_gen == g->state_gen &&
		    kv_copy_offset(o->c) == rq->handoff_offset;
	if (!same) {
		node_handoff_copy_close(n);
		rc = kv_copy_begin(n->kv, g->id, epoch, ranges, nr, rq->handoff_offset,
				   n->cfg.reshard_chunk_bytes, &o->c);
		if (rc != KV_OK) {
			free(ranges);
			o->c = NULL;
			*why = kv_strerror(rc);
			return rc == KV_EINVAL ? RINGRAFT__KV__CODE__INVALID
					       : RINGRAFT__KV__CODE__UNAVAILABLE;
		}
		o->group = g->id;
		o->epoch = epoch;
		o->target = (uint32_t)rq->target;
		o->state_gen = g->state_gen;
	}
	free(ranges);
	rc = kv_copy_next(o->c, chunk, len, last);
	if (rc != KV_OK) {
		node_handoff_copy_close(n);
		if (rc == KV_ECORRUPT)
			node_group_damaged(n, g, "a copy of a moving range");
		/* KV_EINVAL: the fence of this epoch does not hold here (yet): this leader has
		 * not applied it, or the change was rolled back; KV_NOT_FOUND: asked past the end
		 */
		*why = rc == KV_EINVAL ? "the source has not applied the fence of this change: "
					 "try again"
				       : kv_strerror(rc);
		return rc == KV_EINVAL || rc == KV_ECORRUPT ? RINGRAFT__KV__CODE__UNAVAILABLE
							    : RINGRAFT__KV__CODE__INVALID;
	}
	*next = kv_copy_offset(o->c);
	if (*last)
		node_handoff_copy_close(n);
	return RINGRAFT__KV__CODE__OK;
}

/* ------------------------------------------------------------------------------ the driver */

/* The pairs (source, target) of the record, in the order of their first range, into
 * d->pairs (with d->opened). 0 or NODE_ENOMEM. */
static int pairs_of(struct node_drive *d, const struct kv_reshard *c)
{
	d->pairs = malloc((c->n_ranges ? c->n_ranges : 1) * sizeof *d->pairs);
	d->opened = calloc(c->n_ranges ? c->n_ranges : 1, sizeof *d->opened);
	if (d->pairs == NULL || d->opened == NULL)
		return NODE_ENOMEM;
	size_t np = 0;
	for (size_t i = 0; i < c->n_ranges; i++) {
		size_t k;
		for (k = 0; k < np; k++)
			if (d->pairs[k].from == c->ranges[i].from &&
			    d->pairs[k].to == c->ranges[i].to)
				break;
		if (k == np) {
			d->pairs[np].from = c->ranges[i].from;
			d->pairs[np].to = c->ranges[i].to;
			np++;
		}
	}
	d->np = np;
	return NODE_OK;
}

/* The state of a pair: its ranges move together (kv_reshard_step_pair), so its first. */
static enum kv_reshard_state pair_state(const struct kv_reshard *c, uint32_t from, uint32_t to)
{
	for (size_t i = 0; i < c->n_ranges; i++)
		if (c->ranges[i].from == from && c->ranges[i].to == to)
			return c->ranges[i].state;
	return KV_RESHARD_ROLLED_BACK;
}

/* The fence value (epoch and ranges) of a pair: what FENCE, RELEASE and COPY_READ carry. */
static int pair_value(const struct kv_reshard *c, uint32_t from, uint32_t to, uint8_t **v,
		      size_t *len)
{
	struct kv_ring_range *rr = malloc(c->n_ranges * sizeof *rr);
	if (rr == NULL)
		return KV_RESHARD_ENOMEM;
	size_t k = 0;
	for (size_t i = 0; i < c->n_ranges; i++)
		if (c->ranges[i].from == from && c->ranges[i].to == to) {
			rr[k].lo = c->ranges[i].lo;
			rr[k].hi = c->ranges[i].hi;
			rr[k].from = from;
			rr[k].to = to;
			k++;
		}
	int rc = kv_fence_value(kv_ring_epoch(c->to), rr, k, v, len);
	free(rr);
	return rc;
}

static void drive_reply(void *client, const Ringraft__Kv__Response *resp);

/* Asks one step (answered through drive_reply); false if it could not be asked. */
static bool ask(struct node *n, enum node_drive_step step, uint32_t group,
		Ringraft__Kv__HandoffStep h, const uint8_t *value, size_t len, uint32_t target,
		uint64_t offset)
{
	struct node_drive *d = &n->drive;
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__RESHARD_STEP;
	rq.id = ++d->seq;
	rq.timeout_ms = NODE_RESHARD_STEP_MS;
	rq.group = group;
	rq.handoff = h;
	rq.value.data = (uint8_t *)value;
	rq.value.len = len;
	rq.target = target;
	rq.handoff_offset = offset;
	/* the engine frees requests as unpacked ones */
	size_t plen = ringraft__kv__request__get_packed_size(&rq);
	uint8_t *buf = malloc(plen ? plen : 1);
	if (buf == NULL)
		return false;
	ringraft__kv__request__pack(&rq, buf);
	Ringraft__Kv__Request *own = ringraft__kv__request__unpack(NULL, plen, buf);
	free(buf);
	if (own == NULL)
		return false;
	d->busy = true;
	d->step = step;
	d->step_group = group;
	node_log(NODE_LOG_DEBUG, group, "reshard: asking step %d (%d) offset=%llu", (int)step,
		 (int)h, (unsigned long long)offset);
	node_submit(n, own, drive_reply, n);
	return true;
}

/* Stores the record with the pair (from, to) moved to state next, or, with from 0, every range
 * that is not final rolled back. */
static void ask_record(struct node *n, uint32_t from, uint32_t to, enum kv_reshard_state next)
{
	struct node_drive *d = &n->drive;
	uint8_t *buf = NULL, *out = NULL;
	size_t len = 0, olen = 0;
	struct node_reshard *r = NULL;
	if (node_reshard_encode(n->reshard, &buf, &len) != NODE_OK ||
	    node_reshard_decode(buf, len, &r) != NODE_OK)
		goto out;
	if (from == 0) {
		for (size_t i = 0; i < r->change->n_ranges; i++)
			if (r->change->ranges[i].state != KV_RESHARD_DONE &&
			    r->change->ranges[i].state != KV_RESHARD_ROLLED_BACK)
				(void)kv_reshard_step(r->change, i, KV_RESHARD_ROLLED_BACK);
	} else if (kv_reshard_step_pair(r->change, from, to, next) != KV_RESHARD_OK) {
		node_log(NODE_LOG_ERROR, from, "reshard: pair to=%u cannot go to %s", to,
			 kv_reshard_state_name(next));
		d->pause_until_ms = node_now_ms(n) + NODE_RESHARD_RETRY_MS * 10;
		goto out;
	}
	if (node_reshard_encode(r, &out, &olen) != NODE_OK)
		goto out;
	d->rec_from = from;
	d->rec_to = to;
	d->rec_next = next;
	(void)ask(n, DRIVE_RECORD, node_meta_id(n), RINGRAFT__KV__HANDOFF_STEP__HANDOFF_RECORD, out,
		  olen, 0, 0);
out:
	free(buf);
	free(out);
	node_reshard_free(r);
}

static uint64_t parse_u64(const ProtobufCBinaryData *v)
{
	uint64_t x = 0;
	for (size_t i = 0; i < v->len && v->data[i] >= '0' && v->data[i] <= '9'; i++)
		x = x * 10 + (uint64_t)(v->data[i] - '0');
	return x;
}

static void progress(struct node *n)
{
	n->drive.progress_ms = node_now_ms(n);
}

static void drive_reply(void *client, const Ringraft__Kv__Response *resp)
{
	struct node *n = client;
	struct node_drive *d = &n->drive;
	uint64_t now = node_now_ms(n);
	enum node_drive_step step = d->step;
	d->busy = false;
	bool ok = resp->code == RINGRAFT__KV__CODE__OK;
	int kvc = ok ? (int)resp->number : 0;
	if (!ok) {
		/* no leader yet, a timeout, a busy target, a fence not applied yet: again, a
		 * little later (a step is idempotent); a step refused as INVALID (a group that
		 * is gone, a record that does not follow) is logged */
		if (resp->code == RINGRAFT__KV__CODE__INVALID)
			node_log(NODE_LOG_WARN, d->step_group, "reshard: step %d refused: %s",
				 (int)d->step, resp->error ? resp->error : "");
		else
			node_log(NODE_LOG_DEBUG, d->step_group, "reshard: step %d code=%d: %s",
				 (int)d->step, (int)resp->code, resp->error ? resp->error : "");
		d->pause_until_ms =
			now + (resp->code == RINGRAFT__KV__CODE__BUSY ? NODE_RESHARD_RETRY_MS / 4
								      : NODE_RESHARD_RETRY_MS);
		if (d->step == DRIVE_FIN && resp->code == RINGRAFT__KV__CODE__INVALID)
			d->fin_next++; /* a group retired meanwhile: nothing to clean */
		if (d->step == DRIVE_INGEST && resp->code != RINGRAFT__KV__CODE__BUSY) {
			free(d->chunk);
			d->chunk = NULL; /* read it again: the source may have moved on */
		}
		return;
	}
	switch (d->step) {
	case DRIVE_RECORD:
		if (kvc == KV_OK) {
			progress(n);
			/* the next step waits for the record to be read back (groups.c) */
			d->record_wait = true;
		} else {
			d->pause_until_ms = now + NODE_RESHARD_RETRY_MS;
		}
		break;
	case DRIVE_FENCE:
		if (kvc == KV_OK) {
			progress(n);
			ask_record(n, d->from, d->to, KV_RESHARD_FENCED);
		} else {
			node_log(NODE_LOG_WARN, d->from, "reshard: fence refused result=%s",
				 kv_strerror(kvc));
			d->pause_until_ms = now + NODE_RESHARD_RETRY_MS * 10;
		}
		break;
	case DRIVE_READ:
		free(d->chunk);
		d->chunk = malloc(resp->value.len ? resp->value.len : 1);
		if (d->chunk == NULL) {
			d->pause_until_ms = now + NODE_RESHARD_RETRY_MS;
			break;
		}
		memcpy(d->chunk, resp->value.data, resp->value.len);
		d->chunk_len = resp->value.len;
		d->chunk_end = resp->handoff_offset;
		break;
	case DRIVE_INGEST:
		free(d->chunk);
		d->chunk = NULL;
		if (kvc == KV_OK && resp->found) {
			progress(n);
			node_log(NODE_LOG_INFO, d->to, "reshard: copy from=%u complete items=%llu",
				 d->from, (unsigned long long)parse_u64(&resp->value));
			d->copied = true;
			ask_record(n, d->from, d->to, KV_RESHARD_INGESTED);
		} else if (kvc == KV_OK) {
			/* read on from the chunk's end, even when the target is further: a copy
			 * begun again inside the sessions starts them from their first item
			 * (kv/handoff.h), so jumping to the target's offset would read the same
			 * chunk for ever; chunks below the target's offset are applied again,
			 * harmlessly */
			progress(n);
			d->offset = d->chunk_end;
		} else if (kvc == KV_CAS_MISMATCH) {
			d->offset = parse_u64(&resp->value); /* a gap: from where the target is */
		} else if (kvc == KV_DISCARDED) {
			node_log(NODE_LOG_WARN, d->to,
				 "reshard: copy from=%u discarded (count or digest differ): "
				 "dropped and copied again",
				 d->from);
			d->dropping = true;
			d->offset = 0;
		} else {
			node_log(NODE_LOG_WARN, d->to, "reshard: ingest from=%u refused result=%s",
				 d->from, kv_strerror(kvc));
			d->pause_until_ms = now + NODE_RESHARD_RETRY_MS * 10;
		}
		break;
	case DRIVE_DROP_COPY:
		if (kvc != KV_OK) /* KV_NOT_FOUND: the pass is over; KV_EINVAL: nothing there */
			d->dropping = false;
		break;
	case DRIVE_RELEASE:
		if (kvc == KV_OK) {
			progress(n);
			ask_record(n, d->from, d->to, KV_RESHARD_DONE);
		} else {
			node_log(NODE_LOG_ERROR, d->from,
				 "reshard: release to=%u refused result=%s", d->to,
				 kv_strerror(kvc));
			d->pause_until_ms = now + NODE_RESHARD_RETRY_MS * 10;
		}
		break;
	case DRIVE_OPEN:
		if (d->pairs == NULL || d->open_pair >= d->np)
			break;
		if (kvc == KV_OK) {
			progress(n);
			if (d->open_pair < d->np)
				d->opened[d->open_pair] = true;
			node_log(NODE_LOG_INFO, d->pairs[d->open_pair].to,
				 "reshard: serving the ranges from=%u",
				 d->pairs[d->open_pair].from);
		} else {
			node_log(NODE_LOG_ERROR, d->pairs[d->open_pair].to,
				 "reshard: open from=%u refused result=%s",
				 d->pairs[d->open_pair].from, kv_strerror(kvc));
			d->pause_until_ms = now + NODE_RESHARD_RETRY_MS * 10;
		}
		break;
	case DRIVE_FIN:
		/* a clean-up step: a DROP pass goes on while it deletes (KV_OK) */
		if (!(d->fin_drop && kvc == KV_OK))
			d->fin_next++;
		break;
	}
	/* A copy goes on at once rather than at the next tick: a chunk is two steps, and a
	 * tick's wait after each would be most of a copy's time. Not from here: an answer may
	 * come while its group applies (raft_propose is not allowed then). (A record write
	 * waits to be read back; a failure pauses: neither goes on at once.) */
	if (!d->busy && !d->record_wait && now >= d->pause_until_ms &&
	    (step == DRIVE_READ || step == DRIVE_INGEST || step == DRIVE_DROP_COPY ||
	     step == DRIVE_FIN))
		d->kick = true; /* node_process asks the next step, outside any group's Ready */
}

/* Forgets what was kept of another change (or of none). */
static void drive_reset(struct node_drive *d, uint64_t epoch, uint64_t now)
{
	free(d->chunk);
	free(d->pairs);
	free(d->opened);
	uint64_t seq = d->seq;
	memset(d, 0, sizeof *d);
	d->seq = seq;
	d->epoch = epoch;
	d->progress_ms = now;
}

/* After the change ended: at every target, OPEN again (a new leader does not know whether the
 * last one's OPENs were applied; a repeat is harmless) and the sources' released keys dropped;
 * or, rolled back, every source unfenced and every target's copy dropped. One step a call. */
static void drive_finish(struct node *n, const struct kv_reshard *c, bool complete)
{
	struct node_drive *d = &n->drive;
	size_t np = d->np;
	uint64_t epoch = kv_ring_epoch(c->to);
	/* steps: complete: per pair OPEN, then per pair DROP at the source (source 0);
	 * rolled back: per pair UNFENCE at the source, then per pair DROP of the copy */
	size_t k = d->fin_next;
	if (k >= 2 * np) { /* np is at least 1: a change moves at least one range */
		if (!d->finished)
			node_log(NODE_LOG_INFO, 0, "reshard: change to epoch %llu %s, cleaned up",
				 (unsigned long long)epoch, complete ? "complete" : "rolled back");
		d->finished = true;
		return;
	}
	uint32_t from = d->pairs[k % np].from, to = d->pairs[k % np].to;
	uint8_t v[KV_DROP_VALUE_BYTES];
	if (complete && k < np) {
		d->fin_drop = false;
		kv_open_value(epoch, from, v);
		(void)ask(n, DRIVE_FIN, to, RINGRAFT__KV__HANDOFF_STEP__HANDOFF_OPEN, v,
			  KV_OPEN_VALUE_BYTES, 0, 0);
	} else if (complete) {
		d->fin_drop = true;
		kv_drop_value(epoch, 0, NODE_RESHARD_DROP_KEYS, v);
		(void)ask(n, DRIVE_FIN, from, RINGRAFT__KV__HANDOFF_STEP__HANDOFF_DROP, v,
			  KV_DROP_VALUE_BYTES, 0, 0);
	} else if (k < np) {
		d->fin_drop = false;
		for (int i = 0; i < 8; i++)
			v[i] = (uint8_t)(epoch >> (8 * i));
		(void)ask(n, DRIVE_FIN, from, RINGRAFT__KV__HANDOFF_STEP__HANDOFF_UNFENCE, v, 8, 0,
			  0);
	} else {
		d->fin_drop = true;
		kv_drop_value(epoch, from, NODE_RESHARD_DROP_KEYS, v);
		(void)ask(n, DRIVE_FIN, to, RINGRAFT__KV__HANDOFF_STEP__HANDOFF_DROP, v,
			  KV_DROP_VALUE_BYTES, 0, 0);
	}
}

void node_reshard_drive_tick(struct node *n)
{
	struct node_drive *d = &n->drive;
	struct node_group *meta = node_group(n, node_meta_id(n));
	bool leads_meta = meta != NULL && meta->raft != NULL &&
			  raft_role_of(meta->raft) == RAFT_LEADER && !raft_recovering(meta->raft);
	uint64_t now = node_now_ms(n);
	if (!leads_meta || n->stopping || n->reshard == NULL || n->cfg.reshard_pause) {
		if (!d->busy && d->epoch != 0)
			drive_reset(d, 0, now);
		return;
	}
	const struct kv_reshard *c = n->reshard->change;
	uint64_t epoch = kv_ring_epoch(c->to);
	if (d->busy)
		return;
	if (epoch != d->epoch) {
		drive_reset(d, epoch, now);
		if (pairs_of(d, c) != NODE_OK) {
			drive_reset(d, 0, now); /* out of memory: again next tick */
			return;
		}
	}
	if (now < d->pause_until_ms)
		return;
	if (d->record_wait) {
		/* our last record write applied; the next step is planned from the record read
		 * back from the meta replica (node_ring_record_reload), not from a guess */
		if (n->reshard_applied < raft_applied_of(meta->raft)) {
			d->pause_until_ms = now + NODE_RESHARD_RETRY_MS / 10;
			return;
		}
		d->record_wait = false;
	}
	size_t np = d->np;
	enum kv_reshard_outcome o = kv_reshard_outcome(c);
	if (o != KV_RESHARD_MOVING) {
		if (!d->finished)
			drive_finish(n, c, o == KV_RESHARD_COMPLETE);
		return;
	}
	/* Rolled back only while no copy is complete: once a pair is INGESTED its source may
	 * have applied RELEASE (a step asked and not answered), after which only going forward
	 * keeps the range served. */
	bool any_ingested = false;
	for (size_t i = 0; i < c->n_ranges; i++)
		any_ingested |= c->ranges[i].state == KV_RESHARD_INGESTED ||
				c->ranges[i].state == KV_RESHARD_DONE;
	if (!any_ingested && now > d->progress_ms + NODE_RESHARD_STUCK_MS) {
		node_log(NODE_LOG_WARN, 0,
			 "reshard: no progress in %d ms before any copy was complete: rolling the "
			 "change to epoch %llu back",
			 NODE_RESHARD_STUCK_MS, (unsigned long long)epoch);
		d->progress_ms = now;
		ask_record(n, 0, 0, KV_RESHARD_ROLLED_BACK);
		return;
	}
	/* OPEN first where a pair is DONE and this leader has not seen it open: the target serves
	 * nothing of the pair's ranges until then */
	for (size_t k = 0; k < np; k++) {
		const struct node_drive_pair *p = &d->pairs[k];
		if (pair_state(c, p->from, p->to) != KV_RESHARD_DONE || d->opened[k])
			continue;
		d->open_pair = k;
		uint8_t v[KV_OPEN_VALUE_BYTES];
		kv_open_value(epoch, p->from, v);
		(void)ask(n, DRIVE_OPEN, p->to, RINGRAFT__KV__HANDOFF_STEP__HANDOFF_OPEN, v,
			  sizeof v, 0, 0);
		return;
	}
	for (size_t k = 0; k < np; k++) {
		uint32_t from = d->pairs[k].from, to = d->pairs[k].to;
		enum kv_reshard_state st = pair_state(c, from, to);
		if (st == KV_RESHARD_DONE || st == KV_RESHARD_ROLLED_BACK)
			continue;
		if (d->from != from || d->to != to) {
			/* a new pair: its copy starts from the target's offset (0, or where an
			 * earlier leader's copy stopped: INGEST answers it) */
			free(d->chunk);
			d->chunk = NULL;
			d->offset = 0;
			d->dropping = false;
			d->copied = false;
			d->from = from;
			d->to = to;
		}
		uint8_t *v = NULL;
		size_t len = 0;
		if (st != KV_RESHARD_FENCED || d->dropping || d->chunk == NULL) {
			if (pair_value(c, from, to, &v, &len) != 0) {
				d->pause_until_ms = now + NODE_RESHARD_RETRY_MS;
				return;
			}
		}
		if (st == KV_RESHARD_PLANNED) {
			(void)ask(n, DRIVE_FENCE, from, RINGRAFT__KV__HANDOFF_STEP__HANDOFF_FENCE,
				  v, len, 0, 0);
		} else if (st == KV_RESHARD_INGESTED) {
			(void)ask(n, DRIVE_RELEASE, from,
				  RINGRAFT__KV__HANDOFF_STEP__HANDOFF_RELEASE, v, len, 0, 0);
		} else if (d->dropping) {
			uint8_t dv[KV_DROP_VALUE_BYTES];
			kv_drop_value(epoch, from, NODE_RESHARD_DROP_KEYS, dv);
			(void)ask(n, DRIVE_DROP_COPY, to, RINGRAFT__KV__HANDOFF_STEP__HANDOFF_DROP,
				  dv, sizeof dv, 0, 0);
		} else if (d->chunk == NULL) {
			(void)ask(n, DRIVE_READ, from,
				  RINGRAFT__KV__HANDOFF_STEP__HANDOFF_COPY_READ, v, len, to,
				  d->offset);
		} else {
			(void)ask(n, DRIVE_INGEST, to, RINGRAFT__KV__HANDOFF_STEP__HANDOFF_INGEST,
				  d->chunk, d->chunk_len, 0, 0);
		}
		free(v);
		return;
	}
}

bool node_reshard_drive_asked(node_reply_fn reply)
{
	return reply == drive_reply;
}

bool node_reshard_drive_clean(const struct node *n, uint64_t epoch)
{
	/* paused: nothing moves here, so nothing is cleaned either; the operator decides */
	return n->cfg.reshard_pause || (n->drive.epoch == epoch && n->drive.finished);
}

void node_reshard_drive_free(struct node *n)
{
	drive_reset(&n->drive, 0, 0);
	node_handoff_copy_close(n);
}
