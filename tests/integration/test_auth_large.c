/* test_auth_large.c — client authentication in a cluster of more than 3 members (issue 22),
 * where some nodes hold no replica of the meta group (which keeps the users) and learn the
 * auth state from its leader's push (node/auth.c). Four bootstrap members, with the peer
 * secret: `kvctl auth enable` returns once every member refuses clients without a user; on a
 * node without the meta group, no user, a wrong password and a ro user's write are refused,
 * the rw user is served (kvctl, the protocol itself, RESP); a fifth member added while auth is
 * on enforces it; that outsider restarted while every host of the meta group is stopped still
 * refuses clients without a user (DIR/auth.state), with its auth.state damaged refuses
 * everyone, and without one answers UNAVAILABLE (RESP: TRYAGAIN), until the cluster is back;
 * auth enable names a member that does not confirm.
 */
#include <arpa/inet.h>
#include <check.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/frame.h"
#include "tests/integration/cluster.h"
#include "tests/integration/resp_helper.h"

#define SECRET "the-cluster-secret-0123456789abcdef"
#define GROUPS 4
#define NODES  5 /* the fifth joins while authentication is on */
#define BOB    "RINGRAFT_PASSWORD=pw-of-bob"
#define CAROL  "RINGRAFT_PASSWORD=pw-of-carol"

static char root[256]; /* the peer secrets */
static struct cluster *c;
static int outsider; /* a bootstrap member without a replica of the meta group */
static int hosts[3]; /* the meta group's hosts */

/* ------------------------------------------------------------------------------ helpers */

static const char *bin(void)
{
	const char *b = getenv("RINGRAFT_BIN");
	return b && *b ? b : "bin";
}

/* kvctl against node with environment `env` ("K=V ..."), stdin from `in` (NULL: none). */
static char *kvctl_as(int node, const char *env, const char *in, const char *args, int *status)
{
	char cmd[2048];
	snprintf(cmd, sizeof cmd,
		 "%s%s%s env -u RINGRAFT_TLS_CA -u RINGRAFT_USER -u RINGRAFT_PASSWORD %s %s/kvctl "
		 "--endpoints %s --timeout 5s %s 2>&1 %s",
		 in ? "printf '%s\\n' '" : "", in ? in : "", in ? "' |" : "", env ? env : "", bin(),
		 cluster_client_addr(c, node), args, in ? "" : "</dev/null");
	return rh_run_status(cmd, status);
}

/* A GET on a new protobuf connection to node, with a user (NULL: none): the code (-1: no
 * answer), the node's reason in why. */
static int raw_get(int node, const char *user, const char *password, char *why, size_t len)
{
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.id = 7;
	rq.op = RINGRAFT__KV__OP__GET;
	rq.key.data = (uint8_t *)"auth-k";
	rq.key.len = 6;
	if (user != NULL) {
		rq.auth_user = (char *)user;
		rq.password.data = (uint8_t *)password;
		rq.password.len = strlen(password);
	}
	int fd = cluster_dial(cluster_client_addr(c, node));
	size_t n = ringraft__kv__request__get_packed_size(&rq);
	uint8_t frame[512];
	ck_assert_uint_le(n + NET_FRAME_HEADER, sizeof frame);
	net_frame_header(frame, (uint32_t)n);
	ringraft__kv__request__pack(&rq, frame + NET_FRAME_HEADER);
	ck_assert_int_eq(send(fd, frame, NET_FRAME_HEADER + n, MSG_NOSIGNAL),
			 (ssize_t)(NET_FRAME_HEADER + n));
	Ringraft__Kv__Response *rs = cluster_read_response(fd, 5000);
	close(fd);
	snprintf(why, len, "%s", rs && rs->error ? rs->error : "");
	int code = rs ? (int)rs->code : -1;
	if (rs)
		ringraft__kv__response__free_unpacked(rs, NULL);
	return code;
}

/* True if node's client port takes a connection. */
static bool port_open(int node)
{
	char host[64];
	snprintf(host, sizeof host, "%s", cluster_client_addr(c, node));
	char *colon = strrchr(host, ':');
	*colon = '\0';
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)atoi(colon + 1))};
	ck_assert_int_eq(inet_pton(AF_INET, host, &sa.sin_addr), 1);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	bool ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
	close(fd);
	return ok;
}

/* Waits (bounded) until a GET without a user on a new connection to node is answered `want`;
 * returns the last code. */
static int raw_get_until(int node, int want, int timeout_ms, char *why, size_t len)
{
	uint64_t end = cluster_now_ms() + (uint64_t)timeout_ms;
	while (!port_open(node) && cluster_now_ms() < end)
		usleep(50 * 1000);
	int code;
	while ((code = raw_get(node, NULL, NULL, why, len)) != want && cluster_now_ms() < end)
		usleep(50 * 1000);
	return code;
}

static bool hosts_meta(int node)
{
	Ringraft__Kv__Request rq = RINGRAFT__KV__REQUEST__INIT;
	rq.op = RINGRAFT__KV__OP__STATUS;
	Ringraft__Kv__Response *rs;
	ck_assert_int_eq(cluster_call(c, node, &rq, &rs, 5000), 0);
	ck_assert_int_eq(rs->code, RINGRAFT__KV__CODE__OK);
	bool hosted = false;
	for (size_t i = 0; i < rs->status->n_groups; i++)
		hosted |= rs->status->groups[i]->group == GROUPS + 1;
	ringraft__kv__response__free_unpacked(rs, NULL);
	return hosted;
}

static char *redis(int node, const char *args)
{
	char host[64], cmd[512];
	snprintf(host, sizeof host, "%s", cluster_resp_addr(c, node));
	char *colon = strrchr(host, ':');
	*colon = '\0';
	snprintf(cmd, sizeof cmd, "redis-cli -h %s -p %s %s 2>&1", host, colon + 1, args);
	int st;
	return rh_run_status(cmd, &st);
}

/* ------------------------------------------------------------------------------ fixture */

static void setup(void)
{
	for (int n = 1; n <= NODES; n++) {
		char path[400];
		snprintf(path, sizeof path, "%s/secret%d", root, n);
		FILE *f = fopen(path, "w");
		ck_assert_ptr_nonnull(f);
		fputs(SECRET "\n", f);
		fclose(f);
		chmod(path, 0600);
	}
	struct cluster_opts o;
	cluster_opts_default(&o);
	o.groups = GROUPS;
	o.nodes = NODES;
	o.boot_nodes = 4;
	o.resp = true;
	o.election_ms = 1000;
	o.heartbeat_ms = 100;
	o.peer_secret_dir = root;
	/* the meta group's replicas stay where they are: the test picks a node without one */
	o.extra_args = "--balance-leaders off --auto-balance off";
	c = cluster_start(&o);
	ck_assert_msg(c != NULL, "4-node cluster did not start");
}

static void teardown(void)
{
	cluster_teardown(&c);
}

/* ------------------------------------------------------------------------------ tests */

START_TEST(test_enable_is_confirmed_by_every_member)
{
	int k = 0;
	outsider = 0;
	for (int n = 1; n <= 4; n++) {
		if (hosts_meta(n)) {
			ck_assert_int_lt(k, 3);
			hosts[k++] = n;
		} else {
			outsider = n;
		}
	}
	ck_assert_msg(k == 3 && outsider != 0, "the meta group has %d hosts of 4", k);
	int st;
	char *out = kvctl_as(1, NULL, "pw-of-bob", "user add bob --role rw", &st);
	ck_assert_msg(st == 0, "user add bob: exit %d: %s", st, out);
	free(out);
	out = kvctl_as(2, NULL, "pw-of-carol", "user add carol --role ro", &st);
	ck_assert_msg(st == 0, "user add carol: exit %d: %s", st, out);
	free(out);
	/* no longer refused with more than 3 members; returns once every member enforces */
	out = kvctl_as(outsider, NULL, NULL, "auth enable", &st);
	ck_assert_msg(st == 0 && strstr(out, "confirmed by members: 1 2 3 4") != NULL,
		      "auth enable: exit %d: %s", st, out);
	free(out);
}
END_TEST

START_TEST(test_outsider_enforces)
{
	char why[256];
	int st;
	char *out = kvctl_as(outsider, NULL, NULL, "put auth-k no-user", &st);
	ck_assert_msg(st == 4 && strstr(out, "not authenticated") != NULL,
		      "kvctl without a user on node %d: exit %d: %s", outsider, st, out);
	free(out);
	ck_assert_int_eq(raw_get(outsider, NULL, NULL, why, sizeof why),
			 RINGRAFT__KV__CODE__UNAUTHENTICATED);
	ck_assert_msg(strstr(why, "authentication required") != NULL, "%s", why);
	ck_assert_int_eq(raw_get(outsider, "bob", "not-his", why, sizeof why),
			 RINGRAFT__KV__CODE__UNAUTHENTICATED);
	ck_assert_msg(strstr(why, "wrong user or password") != NULL, "%s", why);
	out = kvctl_as(outsider, "RINGRAFT_PASSWORD=not-his", NULL, "--user bob put auth-k x", &st);
	ck_assert_msg(st == 4, "kvctl with a wrong password: exit %d: %s", st, out);
	free(out);
	out = kvctl_as(outsider, BOB, NULL, "--user bob put auth-k by-bob", &st);
	ck_assert_msg(st == 0, "bob writes through node %d: exit %d: %s", outsider, st, out);
	free(out);
	out = kvctl_as(outsider, CAROL, NULL, "--user carol put auth-k by-carol", &st);
	ck_assert_msg(st == 4 && strstr(out, "permission denied") != NULL,
		      "carol writes: exit %d: %s", st, out);
	free(out);
	out = kvctl_as(outsider, CAROL, NULL, "--user carol get auth-k", &st);
	ck_assert_msg(st == 0 && strcmp(out, "by-bob") == 0, "carol reads: exit %d: [%s]", st, out);
	free(out);
	ck_assert_int_eq(raw_get(outsider, "bob", "pw-of-bob", why, sizeof why),
			 RINGRAFT__KV__CODE__OK);
	/* RESP on the same node */
	out = redis(outsider, "GET auth-k");
	ck_assert_msg(strstr(out, "NOAUTH") != NULL && strstr(out, "by-bob") == NULL, "%s", out);
	free(out);
	out = redis(outsider, "--user bob --pass not-his --no-auth-warning GET auth-k");
	ck_assert_msg(strstr(out, "by-bob") == NULL, "a wrong password on RESP: %s", out);
	free(out);
	out = redis(outsider, "--user carol --pass pw-of-carol --no-auth-warning SET auth-k c");
	ck_assert_msg(strstr(out, "NOPERM") != NULL, "carol SET on RESP: %s", out);
	free(out);
	out = redis(outsider, "--user bob --pass pw-of-bob --no-auth-warning GET auth-k");
	ck_assert_msg(strcmp(out, "by-bob") == 0, "bob GET on RESP: %s", out);
	free(out);
}
END_TEST

START_TEST(test_member_added_while_auth_is_on_enforces)
{
	char args[512], why[256];
	int st;
	snprintf(args, sizeof args, "--user bob member add 5 %s %s", cluster_peer_addr(c, 5),
		 cluster_client_addr(c, 5));
	char *out = kvctl_as(1, BOB, NULL, args, &st);
	ck_assert_msg(st == 0, "member add 5 with auth on: exit %d: %s", st, out);
	free(out);
	ck_assert_int_eq(cluster_join(c, 5), 0);
	/* it knows nothing before the meta leader reaches it (UNAVAILABLE), then enforces */
	int code = raw_get_until(5, RINGRAFT__KV__CODE__UNAUTHENTICATED, 20000, why, sizeof why);
	ck_assert_msg(code == RINGRAFT__KV__CODE__UNAUTHENTICATED,
		      "node 5 without a user: code %d: %s", code, why);
	out = kvctl_as(5, BOB, NULL, "--user bob get auth-k", &st);
	ck_assert_msg(st == 0 && strcmp(out, "by-bob") == 0, "bob reads through node 5: %d [%s]",
		      st, out);
	free(out);
	out = kvctl_as(5, CAROL, NULL, "--user carol put auth-k by-carol", &st);
	ck_assert_msg(st == 4, "carol writes through node 5: exit %d: %s", st, out);
	free(out);
}
END_TEST

START_TEST(test_outsider_restarted_alone_fails_closed)
{
	char why[256], path[512];
	snprintf(path, sizeof path, "%s/auth.state", cluster_data_dir(c, outsider));
	struct stat sb;
	ck_assert_msg(stat(path, &sb) == 0, "%s was not written", path);
	ck_assert_int_eq(sb.st_mode & 077, 0);
	/* the outsider restarts while no host of the meta group runs: its file decides */
	ck_assert_int_eq(cluster_term(c, outsider), 0);
	for (int i = 0; i < 3; i++)
		cluster_stop(c, hosts[i]);
	ck_assert_int_eq(cluster_restart(c, outsider), 0);
	int code = raw_get(outsider, NULL, NULL, why, sizeof why);
	ck_assert_msg(code == RINGRAFT__KV__CODE__UNAUTHENTICATED,
		      "restarted without the meta group: no user: code %d: %s", code, why);
	ck_assert_int_ge(cluster_log_grep(c, outsider,
					  "client authentication state from=file on=yes users=2"),
			 1);
	/* damaged: refused at load, and everyone is refused (no user is known) */
	ck_assert_int_eq(cluster_term(c, outsider), 0);
	FILE *f = fopen(path, "r+b");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fseek(f, -3, SEEK_END), 0);
	int ch = fgetc(f);
	ck_assert_int_eq(fseek(f, -3, SEEK_END), 0);
	fputc(ch ^ 0x5a, f);
	fclose(f);
	ck_assert_int_eq(cluster_restart(c, outsider), 0);
	ck_assert_int_ge(cluster_log_grep(c, outsider, "auth.state is damaged, refused"), 1);
	code = raw_get(outsider, NULL, NULL, why, sizeof why);
	ck_assert_msg(code == RINGRAFT__KV__CODE__UNAUTHENTICATED, "damaged file, no user: %d %s",
		      code, why);
	code = raw_get(outsider, "bob", "pw-of-bob", why, sizeof why);
	ck_assert_msg(code == RINGRAFT__KV__CODE__UNAUTHENTICATED, "damaged file, bob: %d %s", code,
		      why);
	/* no file at all: it knows nothing, and serves no one without a login */
	ck_assert_int_eq(cluster_term(c, outsider), 0);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(cluster_restart(c, outsider), 0);
	code = raw_get(outsider, NULL, NULL, why, sizeof why);
	ck_assert_msg(code == RINGRAFT__KV__CODE__UNAVAILABLE && strstr(why, "not yet learned"),
		      "no file, no user: %d %s", code, why);
	char *out = redis(outsider, "GET auth-k");
	ck_assert_msg(strstr(out, "TRYAGAIN") != NULL && strstr(out, "by-bob") == NULL,
		      "no file, RESP: %s", out);
	free(out);
	/* the cluster back: the leader's push brings the users again */
	for (int i = 0; i < 3; i++)
		cluster_cont(c, hosts[i]);
	uint64_t end = cluster_now_ms() + 20000;
	while ((code = raw_get(outsider, "bob", "pw-of-bob", why, sizeof why)) !=
		       RINGRAFT__KV__CODE__OK &&
	       cluster_now_ms() < end)
		usleep(100 * 1000);
	ck_assert_msg(code == RINGRAFT__KV__CODE__OK, "bob after the cluster came back: %d %s",
		      code, why);
	ck_assert_int_eq(raw_get(outsider, NULL, NULL, why, sizeof why),
			 RINGRAFT__KV__CODE__UNAUTHENTICATED);
}
END_TEST

START_TEST(test_enable_names_a_member_that_does_not_confirm)
{
	cluster_stop(c, 5);
	int st;
	uint64_t t0 = cluster_now_ms();
	/* (--timeout: the cluster has just come back from test_outsider_restarted_alone_...) */
	char *out = kvctl_as(1, BOB, NULL, "--user bob --timeout 15s auth enable", &st);
	uint64_t took = cluster_now_ms() - t0;
	cluster_cont(c, 5);
	ck_assert_msg(st == 3 && strstr(out, "member 5 (") != NULL &&
			      strstr(out, "did not confirm") != NULL &&
			      strstr(out, "member 1 (") == NULL,
		      "auth enable with node 5 stopped: exit %d after %llu ms: %s", st,
		      (unsigned long long)took, out);
	free(out);
	char why[256];
	int code = raw_get_until(5, RINGRAFT__KV__CODE__UNAUTHENTICATED, 20000, why, sizeof why);
	ck_assert_msg(code == RINGRAFT__KV__CODE__UNAUTHENTICATED, "node 5 resumed: %d %s", code,
		      why);
	out = kvctl_as(1, BOB, NULL, "--user bob --timeout 15s auth enable", &st);
	ck_assert_msg(st == 0 && strstr(out, "confirmed by members: 1 2 3 4 5") != NULL,
		      "auth enable again: exit %d: %s", st, out);
	free(out);
}
END_TEST

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int main(void)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(root, sizeof root, "%s/ringraft-auth-large-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(root) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	chmod(root, 0700);
	Suite *s = suite_create("auth_large");
	TCase *tc = tcase_create("outside_the_meta_group");
	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	/* in order, on one cluster: each test starts where the one before left it */
	tcase_add_test(tc, test_enable_is_confirmed_by_every_member);
	tcase_add_test(tc, test_outsider_enforces);
	tcase_add_test(tc, test_member_added_while_auth_is_on_enforces);
	tcase_add_test(tc, test_outsider_restarted_alone_fails_closed);
	tcase_add_test(tc, test_enable_names_a_member_that_does_not_confirm);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return failed ? 1 : 0;
}
