/* kvctl_groups.c — the group ids kvctl's cluster views walk (status, member list, drain, fill,
 * remove). Since groups can be added at runtime (ids G + 2 onwards, never reused), the ids are
 * no longer 1..G plus the meta group: they are the ring's ids as a node reports them
 * (RingConfig.group_ids, or 1..groups from a node that predates them), the ids a ring change
 * adds while it is not rolled back (RingConfig.change), and the meta group.
 */
#include <stdarg.h>
#include <string.h>

#include "cli/kvctl.h"
#include "kv/reshard.h"

static bool has(const struct kvctl_group_set *s, uint32_t g)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->ids[i] == g)
			return true;
	return false;
}

/* Inserts g in order unless it is there already or outside 1..CLI_GROUPS_MAX. Building a set
 * is O(n^2) in its ids, at most CLI_GROUPS_MAX: a few milliseconds once per view, fine. */
static void put(struct kvctl_group_set *s, uint32_t g, enum kvctl_group_kind kind)
{
	if (g == 0 || g > CLI_GROUPS_MAX || has(s, g) || s->n == CLI_GROUPS_MAX)
		return;
	size_t i = s->n;
	while (i > 0 && s->ids[i - 1] > g) {
		s->ids[i] = s->ids[i - 1];
		s->kind[i] = s->kind[i - 1];
		i--;
	}
	s->ids[i] = g;
	s->kind[i] = (uint8_t)kind;
	s->n++;
}

bool kvctl_change_rolled_back(const struct cli_ring_change *ch)
{
	if (ch == NULL || !ch->present || ch->n_ranges == 0)
		return false;
	for (size_t i = 0; i < ch->n_ranges; i++)
		if (ch->ranges[i].state != KV_RESHARD_ROLLED_BACK)
			return false;
	return true;
}

void kvctl_group_set_build(struct kvctl_group_set *s, const uint32_t *ring_ids, size_t n_ring,
			   uint32_t groups, const struct cli_ring_change *ch, uint32_t meta)
{
	s->n = 0;
	s->meta = 0;
	if (ring_ids != NULL && n_ring > 0) {
		for (size_t i = 0; i < n_ring; i++)
			put(s, ring_ids[i], KVCTL_GROUP_RING);
	} else {
		for (uint32_t g = 1; g <= groups && g <= CLI_GROUPS_MAX; g++)
			put(s, g, KVCTL_GROUP_RING);
	}
	/* The meta group before the change's ids: should a record ever name its id, it is still
	 * the meta group. */
	if (meta != 0 && meta <= CLI_GROUPS_MAX && !has(s, meta)) {
		put(s, meta, KVCTL_GROUP_META);
		s->meta = meta;
	}
	/* A rolled-back change's groups are retired on every node; a moving or complete one's
	 * exist (complete: a node answering with the older ring has not installed the new one). */
	if (ch != NULL && ch->present && !kvctl_change_rolled_back(ch))
		for (size_t i = 0; i < ch->n_to; i++)
			put(s, ch->to_ids[i], KVCTL_GROUP_ADDING);
}

bool kvctl_group_set_has(const struct kvctl_group_set *s, uint32_t g)
{
	return has(s, g);
}

/* Appends to buf at *len; the text is cut short at cap, still NUL-terminated. */
static void emit(char *buf, size_t cap, size_t *len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void emit(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
	if (*len + 1 >= cap)
		return;
	va_list ap;
	va_start(ap, fmt);
	int k = vsnprintf(buf + *len, cap - *len, fmt, ap);
	va_end(ap);
	if (k > 0)
		*len += (size_t)k < cap - *len ? (size_t)k : cap - *len - 1;
}

const char *kvctl_group_set_text(const struct kvctl_group_set *s, char *buf, size_t cap)
{
	size_t len = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < s->n;) {
		/* a run of consecutive ids of one kind reads "1-4"; kinds but the ring's are named
		 */
		size_t j = i;
		while (j + 1 < s->n && s->kind[j + 1] == s->kind[i] &&
		       s->ids[j + 1] == s->ids[j] + 1)
			j++;
		emit(buf, cap, &len, "%s%u", i ? ", " : "", s->ids[i]);
		if (j > i)
			emit(buf, cap, &len, "-%u", s->ids[j]);
		if (s->kind[i] == KVCTL_GROUP_META)
			emit(buf, cap, &len, " (meta)");
		else if (s->kind[i] == KVCTL_GROUP_ADDING)
			emit(buf, cap, &len, " (adding)");
		i = j + 1;
	}
	return buf;
}

bool kvctl_group_set_plain(const struct kvctl_group_set *s, uint32_t groups)
{
	/* 1..groups, then the meta group as groups + 1 or none: what every cluster had before
	 * groups could be added */
	for (size_t i = 0; i < s->n; i++) {
		if (s->ids[i] != i + 1)
			return false;
		if (i < groups ? s->kind[i] != KVCTL_GROUP_RING : s->kind[i] != KVCTL_GROUP_META)
			return false;
	}
	return s->n == groups || s->n == (size_t)groups + 1;
}
