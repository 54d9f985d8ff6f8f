/* trace.c — the run's trace: a hash of every event, and the events as text with --trace.
 *
 * The hash is always computed (cheaply, from numbers), so `sim replay` can show that one seed
 * gives the same run twice; the text is only formatted when asked for.
 */
#include <inttypes.h>
#include <stdarg.h>

#include "tests/sim/sim.h"

static uint64_t mix(uint64_t h, uint64_t x)
{
	h ^= x + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	return h * 0xff51afd7ed558ccdull;
}

static const char *role_name(uint64_t r)
{
	return raft_role_name((enum raft_role)r);
}

void trace_ev(struct cluster *c, enum trace_kind k, raft_id node, uint64_t a, uint64_t b,
	      uint64_t d)
{
	uint64_t h = c->trace_hash;
	h = mix(h, c->now);
	h = mix(h, (uint64_t)k << 32 | node);
	h = mix(h, a);
	h = mix(h, b);
	h = mix(h, d);
	c->trace_hash = h;
	c->trace_events++;
	if (!c->trace)
		return;
	FILE *f = c->trace_out ? c->trace_out : stdout;
	fprintf(f, "t=%-7" PRIu64 " n%-2" PRIu64 " ", c->now, node);
	switch (k) {
	case TR_TICK:
		fprintf(f, "tick term=%" PRIu64 " %s\n", a, role_name(b));
		break;
	case TR_RECV:
	case TR_DROP:
		fprintf(f,
			"%s %s from=%" PRIu64 " term=%" PRIu64 " index=%" PRIu64 " n=%" PRIu64
			"%s\n",
			k == TR_RECV ? "recv" : "DROP", msg_type_name((uint8_t)(a & 0xff)), a >> 8,
			b, k == TR_RECV ? d >> 16 : d, k == TR_RECV ? d & 0x7fff : 0,
			k == TR_RECV && (d & 0x8000) ? " REJECT" : "");
		break;
	case TR_SEND:
		fprintf(f, "send %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", a, b, d);
		break;
	case TR_PERSIST:
		fprintf(f, "persisted last=%" PRIu64 " term=%" PRIu64 " then-send=%" PRIu64 "\n", a,
			b, d);
		break;
	case TR_ROLE:
		fprintf(f, "role %s term=%" PRIu64 " leader=%" PRIu64 "\n", role_name(a), b, d);
		break;
	case TR_APPLY:
		fprintf(f, "apply index=%" PRIu64 " term=%" PRIu64 "%s\n", a, b, d ? " conf" : "");
		break;
	case TR_PROPOSE:
		fprintf(f, "propose #%" PRIu64 " -> index=%" PRIu64 " rc=%d\n", a, b, (int)d);
		break;
	case TR_READ:
		fprintf(f, "read ctx=%" PRIu64 " floor=%" PRIu64 " rc=%d\n", a, b, (int)d);
		break;
	case TR_READ_DONE:
		fprintf(f,
			"read ctx=%" PRIu64 " answered, read index=%" PRIu64 " applied=%" PRIu64
			"\n",
			a, b, d);
		break;
	case TR_CRASH:
		fprintf(f,
			"CRASH last=%" PRIu64 " durable-last=%" PRIu64 " pending-batches=%" PRIu64
			" (written anyway: %" PRIu64 ")\n",
			a, b, d >> 16, d & 0xffff);
		break;
	case TR_RESTART:
		fprintf(f, "RESTART last=%" PRIu64 " commit=%" PRIu64 " term=%" PRIu64 "\n", a, b,
			d);
		break;
	case TR_FAULT:
		fprintf(f, "fault %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", a, b, d);
		break;
	case TR_CONF:
		fprintf(f,
			"conf-change type=%" PRIu64 " node=%" PRIu64 " index=%" PRIu64 " rc=%d\n",
			a >> 8, a & 0xff, b, (int)d);
		break;
	case TR_COMPACT:
		fprintf(f, "compact at=%" PRIu64 " term=%" PRIu64 " trailing=%" PRIu64 "\n", a, b,
			d);
		break;
	case TR_INSTALL:
		fprintf(f, "snapshot installed index=%" PRIu64 " term=%" PRIu64 "%s\n", a, b,
			d ? " (log only: state machine already past it)" : "");
		break;
	case TR_TRANSFER:
		fprintf(f, "transfer to=%" PRIu64 " rc=%d\n", a, (int)d);
		break;
	case TR_COMMIT:
		fprintf(f, "commit=%" PRIu64 " term=%" PRIu64 "\n", a, b);
		break;
	case TR_WIPE:
		fprintf(f,
			"WIPE data directory lost: durable-last=%" PRIu64 " applied=%" PRIu64
			" (wipe #%" PRIu64 "); restarts empty, recovering\n",
			a, b, d);
		break;
	case TR_PAUSE:
		fprintf(f, "PAUSE until t=%" PRIu64 "\n", a);
		break;
	case TR_NOTE:
		fprintf(f, "note %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", a, b, d);
		break;
	case TR_CLOCK:
		fprintf(f, "clock +%" PRIu64 " to %" PRIu64 "\n", a, b);
		break;
	}
}

void trace_note(struct cluster *c, const char *fmt, ...)
{
	if (!c->trace)
		return;
	FILE *f = c->trace_out ? c->trace_out : stdout;
	fprintf(f, "t=%-7" PRIu64 " --  ", c->now);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
}
