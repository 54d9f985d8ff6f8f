/* metrics_endpoint.c — --metrics-addr on a node: every NODE_METRICS_RENDER_MS the loop
 * collects the gauges (groups, peers, sizes), renders /metrics and decides /health
 * (node/metrics.c), and publishes both to the HTTP thread (node/http.c). All of it on the
 * loop thread: the HTTP thread never reads the node.
 */
#include <stdlib.h>
#include <string.h>

#include "node/http.h"
#include "node/node_int.h" /* read-only: the gauges */
#include "node/shell.h"

struct node_metrics_endpoint {
	struct node_shell *s;
	struct node_http *http;
	uv_timer_t timer;
	struct node_text text;             /* rendered into, then swapped with the server's */
	struct node_metrics_group *groups; /* [cfg.groups] */
	struct node_metrics_peer peers[NODE_NODES_MAX];
	char health[NODE_HEALTH_TEXT_MAX];
};

static void collect(struct node_shell *s, struct node_metrics_endpoint *ep,
		    struct node_metrics_view *v)
{
	struct node *n = s->n;
	memset(v, 0, sizeof *v);
	v->node_id = n->cfg.id;
	v->peer_addr = n->cfg.peer_addr;
	v->client_addr = n->cfg.client_addr;
	size_t ng = 0;
	for (uint32_t i = 0; i < n->cfg.groups; i++) {
		struct node_group *g = &n->groups[i];
		if (g->raft == NULL)
			continue;
		struct node_metrics_group *mg = &ep->groups[ng++];
		mg->id = g->id;
		mg->term = raft_term_of(g->raft);
		mg->commit = raft_commit_of(g->raft);
		mg->applied = raft_applied_of(g->raft);
		mg->leader = raft_leader_of(g->raft);
		mg->role = (int)raft_role_of(g->raft);
		mg->recovering = raft_recovering(g->raft);
	}
	v->groups = ep->groups;
	v->n_groups = ng;
	size_t np = 0;
	for (size_t i = 0; i < n->cfg.n_members; i++) {
		uint64_t id = n->cfg.members[i].id;
		if (id == n->cfg.id)
			continue;
		ep->peers[np].id = id;
		ep->peers[np].up = net_peers_up(s->peers, id);
		ep->peers[np].queue_bytes = net_peers_queue_bytes(s->peers, id);
		np++;
	}
	v->peers = ep->peers;
	v->n_peers = np;
	_Static_assert(NET_PEER_REFUSALS == 3,
		       "node_metrics_view.peer_auth_refused and its labels");
	for (int r = 0; r < NET_PEER_REFUSALS; r++)
		v->peer_auth_refused[r] =
			net_peers_auth_refused(s->peers, (enum net_peer_refusal)r);
	v->connections = s->server ? net_server_connections(s->server) : 0;
	v->uptime_ms = node_now_ms(n) - n->start_ms;
	struct wal_stats ws;
	wal_stats_get(n->wal, &ws);
	v->wal_bytes = ws.bytes_on_disk;
	v->lmdb_bytes = kv_size_bytes(n->kv);
	v->stopping = n->stopping;
	v->inflight = n->reqs_held;
	v->inflight_bytes = n->reqs_held_bytes;
}

static void publish(struct node_metrics_endpoint *ep)
{
	struct node *n = ep->s->n;
	struct node_metrics_view v;
	collect(ep->s, ep, &v);
	node_text_reset(&ep->text);
	node_metrics_render(&n->metrics, &v, &ep->text);
	int status = node_metrics_health(&v, ep->health, sizeof ep->health);
	if (ep->text.oom) {
		node_log(NODE_LOG_WARN, 0, "metrics: out of memory rendering /metrics");
		return; /* the server keeps the last snapshot; /health goes stale */
	}
	node_http_publish(ep->http, &ep->text, status, ep->health);
}

static void timer_cb(uv_timer_t *t)
{
	publish(t->data);
}

int node_metrics_endpoint_open(struct node_shell *s)
{
	if (s->cfg.metrics_addr[0] == '\0')
		return 0;
	struct node_metrics_endpoint *ep = calloc(1, sizeof *ep);
	if (ep == NULL)
		return NODE_ENOMEM;
	ep->s = s;
	ep->groups = calloc(s->cfg.groups, sizeof *ep->groups);
	if (ep->groups == NULL) {
		free(ep);
		return NODE_ENOMEM;
	}
	int rc = node_http_start(s->cfg.metrics_addr, NODE_METRICS_STALE_MS, &ep->http);
	if (rc != NODE_HTTP_OK) {
		node_log(NODE_LOG_ERROR, 0, "cannot serve metrics addr=%s error=\"%s\"",
			 s->cfg.metrics_addr, node_http_strerror(rc));
		free(ep->groups);
		free(ep);
		return NODE_ELISTEN;
	}
	uv_timer_init(&s->loop, &ep->timer);
	ep->timer.data = ep;
	uv_timer_start(&ep->timer, timer_cb, 0, NODE_METRICS_RENDER_MS);
	s->metrics_ep = ep;
	return 0;
}

void node_metrics_endpoint_close(struct node_shell *s)
{
	struct node_metrics_endpoint *ep = s->metrics_ep;
	if (ep == NULL)
		return;
	/* the timer was closed with every other handle when the loop stopped */
	node_http_stop(ep->http);
	node_text_free(&ep->text);
	free(ep->groups);
	free(ep);
	s->metrics_ep = NULL;
}
