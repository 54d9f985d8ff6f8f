/* network.c — the simulated network: every message in flight, with its delivery time.
 *
 * Faults: random delay (which reorders), loss and duplication, per message; partitions as a
 * matrix of cut links, which covers symmetric splits and one-way cuts. Cuts are checked when
 * a message is delivered, so a partition also loses what was already in flight.
 */
#include <stdlib.h>
#include <string.h>

#include "tests/sim/sim.h"

void net_init(struct network *n)
{
	memset(n, 0, sizeof(*n));
	n->delay_min = 1;
	n->delay_max = 1;
}

void net_destroy(struct network *n)
{
	for (size_t i = 0; i < n->n; i++)
		msg_free(n->heap[i].msg);
	free(n->heap);
	memset(n, 0, sizeof(*n));
}

static bool before(const struct net_item *a, const struct net_item *b)
{
	return a->time < b->time || (a->time == b->time && a->seq < b->seq);
}

static void push(struct network *n, uint64_t time, struct sim_msg *m)
{
	if (n->n == n->cap) {
		n->cap = n->cap ? 2 * n->cap : 64;
		n->heap = realloc(n->heap, n->cap * sizeof(*n->heap));
		if (!n->heap)
			abort();
	}
	size_t i = n->n++;
	n->heap[i] = (struct net_item){.time = time, .seq = n->seq++, .msg = m};
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!before(&n->heap[i], &n->heap[p]))
			break;
		struct net_item t = n->heap[i];
		n->heap[i] = n->heap[p];
		n->heap[p] = t;
		i = p;
	}
}

struct sim_msg *net_pop(struct network *n)
{
	if (n->n == 0)
		return NULL;
	struct sim_msg *m = n->heap[0].msg;
	n->heap[0] = n->heap[--n->n];
	size_t i = 0;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, s = i;
		if (l < n->n && before(&n->heap[l], &n->heap[s]))
			s = l;
		if (r < n->n && before(&n->heap[r], &n->heap[s]))
			s = r;
		if (s == i)
			break;
		struct net_item t = n->heap[i];
		n->heap[i] = n->heap[s];
		n->heap[s] = t;
		i = s;
	}
	return m;
}

void net_requeue(struct network *n, uint64_t time, struct sim_msg *m)
{
	push(n, time, m);
}

uint64_t net_next_time(const struct network *n)
{
	return n->n ? n->heap[0].time : UINT64_MAX;
}

void net_send(struct network *n, struct rng *g, uint64_t now, const struct raft_message *m)
{
	n->sent++;
	if (rng_permille(g, n->loss_pm)) {
		n->lost++;
		return;
	}
	push(n, now + rng_range(g, n->delay_min, n->delay_max), msg_copy(m));
	if (rng_permille(g, n->dup_pm)) {
		n->duplicated++;
		push(n, now + rng_range(g, n->delay_min, 3 * n->delay_max), msg_copy(m));
	}
}

void net_heal(struct network *n)
{
	memset(n->cut, 0, sizeof(n->cut));
}

void net_partition(struct network *n, const int *a, int na, const int *b, int nb)
{
	for (int i = 0; i < na; i++)
		for (int j = 0; j < nb; j++) {
			n->cut[a[i]][b[j]] = true;
			n->cut[b[j]][a[i]] = true;
		}
}
