/* test_metrics.c — node/metrics.c: histogram bucketing (le is inclusive, past the last bound
 * is +Inf), the text exposition of a made-up node (HELP/TYPE before the samples of each
 * family, cumulative buckets, seconds from nanoseconds, every name ringraft_*), and the /health
 * verdict with its reasons. The integration test parses a live node's text with a real parser.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/metrics.h"
#include "raft/raft.h"

/* ------------------------------------------------------------------------------ Fixture */

static struct node_metrics_group groups[3];
static struct node_metrics_peer peers[2];
static struct node_metrics_view view;

static void view_healthy(void)
{
	memset(groups, 0, sizeof groups);
	for (int i = 0; i < 3; i++) {
		groups[i].id = (uint32_t)i + 1;
		groups[i].term = 7;
		groups[i].commit = 100 + (uint64_t)i;
		groups[i].applied = 100 + (uint64_t)i;
		groups[i].leader = (uint64_t)i + 1;
		groups[i].role = i == 0 ? RAFT_LEADER : RAFT_FOLLOWER;
	}
	peers[0] = (struct node_metrics_peer){.id = 2, .up = true, .queue_bytes = 123};
	peers[1] = (struct node_metrics_peer){.id = 3, .up = false, .queue_bytes = 0};
	memset(&view, 0, sizeof view);
	view.node_id = 1;
	view.peer_addr = "127.0.0.11:7001";
	view.client_addr = "127.0.0.11:9001";
	view.groups = groups;
	view.n_groups = 3;
	view.peers = peers;
	view.n_peers = 2;
	view.connections = 4;
	view.uptime_ms = 12345;
	view.wal_bytes = 1 << 26;
	view.lmdb_bytes = 94208;
}

/* ------------------------------------------------------------------------------ Assertions */

#define ASSERT_HAS_LINE(text, line)                                                                \
	do {                                                                                       \
		char needle_[512];                                                                 \
		snprintf(needle_, sizeof needle_, "\n%s\n", (line));                               \
		ck_assert_msg(strstr((text), needle_) != NULL, "missing line: %s", (line));        \
	} while (0)

/* ------------------------------------------------------------------------------ Suite */

static const uint64_t bounds[] = {10, 100, 1000};

START_TEST(test_hist_buckets)
{
	struct node_hist h;
	node_hist_init(&h, bounds, 3);
	node_hist_observe(&h, 0);    /* <= 10 */
	node_hist_observe(&h, 10);   /* <= 10: le is inclusive */
	node_hist_observe(&h, 11);   /* <= 100 */
	node_hist_observe(&h, 1000); /* <= 1000 */
	node_hist_observe(&h, 1001); /* +Inf */
	node_hist_observe(&h, UINT64_MAX / 2);
	ck_assert_uint_eq(h.buckets[0], 2);
	ck_assert_uint_eq(h.buckets[1], 1);
	ck_assert_uint_eq(h.buckets[2], 1);
	ck_assert_uint_eq(h.buckets[3], 2);
	ck_assert_uint_eq(h.count, 6);
	ck_assert_uint_eq(h.sum, 0 + 10 + 11 + 1000 + 1001 + UINT64_MAX / 2);
}
END_TEST

START_TEST(test_text_grows)
{
	struct node_text t = {0};
	for (int i = 0; i < 5000; i++)
		node_text_printf(&t, "line %d\n", i);
	ck_assert(!t.oom);
	ck_assert_uint_eq(strlen(t.buf), t.len);
	ck_assert(strncmp(t.buf, "line 0\nline 1\n", 14) == 0);
	ck_assert(strstr(t.buf, "\nline 4999\n") != NULL);
	size_t cap = t.cap;
	node_text_reset(&t);
	ck_assert_uint_eq(t.len, 0);
	node_text_printf(&t, "x");
	ck_assert_uint_eq(t.cap, cap); /* reused, not reallocated */
	ck_assert_str_eq(t.buf, "x");
	node_text_free(&t);
}
END_TEST

START_TEST(test_render_counters_and_histograms)
{
	struct node_metrics m;
	node_metrics_init(&m);
	view_healthy();
	uint64_t now = node_metrics_now_ns();
	node_metrics_request_done(&m, 2 /* PUT */, 0 /* OK */, now, now);
	node_metrics_request_done(&m, 2, 0, now, now);
	node_metrics_request_done(&m, 2, 9 /* LEADER_LOST */, now, now);
	node_metrics_request_done(&m, 77, 0, now, now); /* unknown op */
	node_metrics_request_done(&m, 1, 42, now, now); /* unknown code */
	node_metrics_request_done(&m, 1, -3, now, now); /* unknown code */
	node_metrics_forwarded(&m, true);
	node_metrics_forwarded(&m, false);
	node_metrics_forwarded(&m, false);
	node_metrics_proposal(&m, true);
	node_metrics_proposal(&m, false);
	node_metrics_wal_batch(&m, 5000, 3);
	node_metrics_snapshot(&m, true);
	/* the WAL writer's timing, 2 ms */
	atomic_store(&m.wal_write_ns, 2000000);
	node_metrics_wal_write_done(&m);
	node_metrics_apply(&m, 8, now, now);

	struct node_text t = {0};
	node_text_printf(&t, "\n"); /* so ASSERT_HAS_LINE finds the first line too */
	node_metrics_render(&m, &view, &t);
	ck_assert(!t.oom);
	const char *s = t.buf;
	ASSERT_HAS_LINE(s, "ringraft_client_requests_total{op=\"put\",result=\"ok\"} 2");
	ASSERT_HAS_LINE(s, "ringraft_client_requests_total{op=\"put\",result=\"leader_lost\"} 1");
	ASSERT_HAS_LINE(s, "ringraft_client_requests_total{op=\"unknown\",result=\"ok\"} 1");
	ASSERT_HAS_LINE(s, "ringraft_client_requests_total{op=\"get\",result=\"other\"} 2");
	/* data ops are always present, at zero */
	ASSERT_HAS_LINE(s, "ringraft_client_requests_total{op=\"cas\",result=\"ok\"} 0");
	ASSERT_HAS_LINE(s, "ringraft_client_request_duration_seconds_count{op=\"put\"} 3");
	ASSERT_HAS_LINE(
		s, "ringraft_client_request_duration_seconds_bucket{op=\"put\",le=\"+Inf\"} 3");
	ASSERT_HAS_LINE(s, "ringraft_forwarded_requests_total{direction=\"out\"} 1");
	ASSERT_HAS_LINE(s, "ringraft_forwarded_requests_total{direction=\"in\"} 2");
	ASSERT_HAS_LINE(s, "ringraft_proposals_total 1");
	ASSERT_HAS_LINE(s, "ringraft_proposals_refused_total 1");
	ASSERT_HAS_LINE(s, "ringraft_wal_batches_total 1");
	/* cumulative: 5000 bytes is above 4096, within 16384 */
	ASSERT_HAS_LINE(s, "ringraft_wal_batch_size_bytes_bucket{le=\"4096\"} 0");
	ASSERT_HAS_LINE(s, "ringraft_wal_batch_size_bytes_bucket{le=\"16384\"} 1");
	ASSERT_HAS_LINE(s, "ringraft_wal_batch_size_bytes_bucket{le=\"+Inf\"} 1");
	ASSERT_HAS_LINE(s, "ringraft_wal_batch_size_bytes_sum 5000");
	ASSERT_HAS_LINE(s, "ringraft_wal_batch_records_bucket{le=\"2\"} 0");
	ASSERT_HAS_LINE(s, "ringraft_wal_batch_records_bucket{le=\"4\"} 1");
	/* nanoseconds rendered as seconds */
	ASSERT_HAS_LINE(s, "ringraft_wal_fsync_duration_seconds_bucket{le=\"0.001\"} 0");
	ASSERT_HAS_LINE(s, "ringraft_wal_fsync_duration_seconds_bucket{le=\"0.0025\"} 1");
	ASSERT_HAS_LINE(s, "ringraft_wal_fsync_duration_seconds_sum 0.002000000");
	ASSERT_HAS_LINE(s, "ringraft_wal_fsync_duration_seconds_count 1");
	ASSERT_HAS_LINE(s, "ringraft_apply_batch_entries_bucket{le=\"8\"} 1");
	ASSERT_HAS_LINE(s, "ringraft_apply_batch_entries_bucket{le=\"4\"} 0");
	ASSERT_HAS_LINE(s, "ringraft_snapshots_sent_total 1");
	ASSERT_HAS_LINE(s, "ringraft_snapshots_received_total 0");
	/* gauges from the view */
	ASSERT_HAS_LINE(s, "ringraft_node_info{node=\"1\",peer_addr=\"127.0.0.11:7001\","
			   "client_addr=\"127.0.0.11:9001\"} 1");
	ASSERT_HAS_LINE(s, "ringraft_uptime_seconds 12.345");
	ASSERT_HAS_LINE(s, "ringraft_client_connections 4");
	ASSERT_HAS_LINE(s, "ringraft_group_term{group=\"2\"} 7");
	ASSERT_HAS_LINE(s, "ringraft_group_commit_index{group=\"3\"} 102");
	ASSERT_HAS_LINE(s, "ringraft_group_applied_index{group=\"1\"} 100");
	ASSERT_HAS_LINE(s, "ringraft_group_leader_id{group=\"3\"} 3");
	ASSERT_HAS_LINE(s, "ringraft_group_is_leader{group=\"1\"} 1");
	ASSERT_HAS_LINE(s, "ringraft_group_is_leader{group=\"2\"} 0");
	ASSERT_HAS_LINE(s, "ringraft_group_role{group=\"1\",role=\"leader\"} 1");
	ASSERT_HAS_LINE(s, "ringraft_group_role{group=\"1\",role=\"follower\"} 0");
	ASSERT_HAS_LINE(s, "ringraft_group_role{group=\"2\",role=\"follower\"} 1");
	ASSERT_HAS_LINE(s, "ringraft_group_recovering{group=\"2\"} 0");
	ASSERT_HAS_LINE(s, "ringraft_peer_up{peer=\"3\"} 0");
	ASSERT_HAS_LINE(s, "ringraft_peer_queue_bytes{peer=\"2\"} 123");
	ASSERT_HAS_LINE(s, "ringraft_wal_size_bytes 67108864");
	ASSERT_HAS_LINE(s, "ringraft_lmdb_size_bytes 94208");
	node_text_free(&t);
}
END_TEST

/* Every sample's family was announced by a HELP and a TYPE line just before its samples, once;
 * every name is ringraft_*; histogram buckets never decrease and end at +Inf == _count. */
START_TEST(test_render_well_formed)
{
	struct node_metrics m;
	node_metrics_init(&m);
	view_healthy();
	for (int i = 0; i < 100; i++)
		node_metrics_request_done(&m, 1 + i % 5, i % 11, node_metrics_now_ns() - 1000u * i,
					  node_metrics_now_ns());
	struct node_text t = {0};
	node_metrics_render(&m, &view, &t);
	char *copy = strdup(t.buf), *save = NULL;
	char family[128] = "", type[32] = "", seen[64][128];
	size_t n_seen = 0, samples = 0;
	uint64_t last_bucket = 0;
	for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char name[128], kind[32];
		if (sscanf(l, "# HELP %127s", name) == 1) {
			ck_assert_msg(strncmp(name, "ringraft_", 9) == 0, "name %s", name);
			for (size_t i = 0; i < n_seen; i++)
				ck_assert_msg(strcmp(seen[i], name) != 0, "family %s twice", name);
			ck_assert_uint_lt(n_seen, 64);
			snprintf(seen[n_seen++], sizeof seen[0], "%s", name);
			snprintf(family, sizeof family, "%s", name);
			type[0] = '\0';
			last_bucket = 0;
			continue;
		}
		if (sscanf(l, "# TYPE %127s %31s", name, kind) == 2) {
			ck_assert_str_eq(name, family);
			ck_assert(strcmp(kind, "counter") == 0 || strcmp(kind, "gauge") == 0 ||
				  strcmp(kind, "histogram") == 0);
			snprintf(type, sizeof type, "%s", kind);
			continue;
		}
		ck_assert_msg(l[0] != '#', "unexpected comment: %s", l);
		ck_assert_msg(type[0] != '\0', "sample before TYPE: %s", l);
		ck_assert_msg(strncmp(l, family, strlen(family)) == 0, "%s outside %s", l, family);
		samples++;
		if (strcmp(type, "counter") == 0)
			ck_assert_msg(strlen(family) > 6 &&
					      strcmp(family + strlen(family) - 6, "_total") == 0,
				      "counter %s without _total", family);
		if (strcmp(type, "histogram") == 0) {
			const char *v = strrchr(l, ' ');
			ck_assert_ptr_nonnull(v);
			uint64_t x = strtoull(v + 1, NULL, 10);
			if (strstr(l, "_bucket{") != NULL) {
				ck_assert_msg(x >= last_bucket, "bucket decreases: %s", l);
				last_bucket = x;
			} else if (strstr(l, "_count") != NULL) {
				ck_assert_msg(x == last_bucket, "+Inf != count: %s", l);
				last_bucket = 0; /* the next series starts */
			}
		}
	}
	ck_assert_uint_ge(n_seen, 25);
	ck_assert_uint_ge(samples, 100);
	free(copy);
	node_text_free(&t);
}
END_TEST

START_TEST(test_health)
{
	char why[256];
	view_healthy();
	ck_assert_int_eq(node_metrics_health(&view, why, sizeof why), 200);
	ck_assert_str_eq(why, "ok\n");

	groups[2].leader = 0;
	ck_assert_int_eq(node_metrics_health(&view, why, sizeof why), 503);
	ck_assert_str_eq(why, "group 3: no leader\n");

	groups[1].recovering = true;
	view.stopping = true;
	ck_assert_int_eq(node_metrics_health(&view, why, sizeof why), 503);
	ck_assert_str_eq(why, "node stopping\ngroup 2: replica recovering\ngroup 3: no leader\n");

	/* a short buffer cuts the reasons but stays a string and a 503 */
	char tiny[8];
	ck_assert_int_eq(node_metrics_health(&view, tiny, sizeof tiny), 503);
	ck_assert_str_eq(tiny, "node st");

	/* no group hosted here: nothing to be unhealthy about */
	view_healthy();
	view.n_groups = 0;
	ck_assert_int_eq(node_metrics_health(&view, why, sizeof why), 200);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("node_metrics");
	TCase *tc = tcase_create("metrics");
	tcase_add_test(tc, test_hist_buckets);
	tcase_add_test(tc, test_text_grows);
	tcase_add_test(tc, test_render_counters_and_histograms);
	tcase_add_test(tc, test_render_well_formed);
	tcase_add_test(tc, test_health);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
