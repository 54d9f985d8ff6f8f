/* test_resp_fault.c — the RESP port under faults: a group leader killed (SIGKILL) while
 * redis-benchmark runs against another node: the run completes, and every error it saw is of a
 * documented kind (docs/CLI.md: -TRYAGAIN and -CLUSTERDOWN, not applied; "-ERR outcome
 * unknown", a write that may have been applied); the cluster serves again once the node is
 * back. And malformed input beyond test_resp.c's (negative and non-numeric lengths, a bulk
 * longer than announced, a command split at every byte) costing its connection only.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/resp_helper.h"

static struct cluster *c;

static void setup(void)
{
	struct cluster_opts o;
	cluster_opts_default(&o);
	o.resp = true;
	o.extra_args = "--balance-leaders off";
	c = cluster_start(&o);
	ck_assert_msg(c != NULL, "cluster did not start");
}

static void teardown(void)
{
	cluster_teardown(&c);
}

/* Whether an error line of redis-benchmark is of a kind docs/CLI.md lists. */
static bool documented(const char *msg)
{
	return strncmp(msg, "TRYAGAIN ", 9) == 0 || strncmp(msg, "CLUSTERDOWN ", 12) == 0 ||
	       strncmp(msg, "ERR outcome unknown", 19) == 0;
}

START_TEST(test_leader_killed_during_benchmark)
{
	/* the victim leads some group; the benchmark talks to another node */
	int victim = 0;
	for (uint32_t g = 1; g <= cluster_groups(c) && victim == 0; g++) {
		uint64_t l = cluster_leader_of(c, g, 5000);
		ck_assert_uint_ne(l, 0);
		victim = (int)l;
	}
	int target = victim % CLUSTER_NODES + 1;
	char host[64], cmd[1024], path[] = "/tmp/ringraft-bench-XXXXXX";
	int port;
	rh_host_port(c, target, host, sizeof host, &port);
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	close(fd);
	snprintf(cmd, sizeof cmd,
		 "redis-benchmark -h %s -p %d -t set,get,incr -n 30000 -c 20 -q > %s 2>&1", host,
		 port, path);
	uint64_t t0 = cluster_now_ms();
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	usleep(1500 * 1000);
	cluster_kill(c, victim);
	uint64_t t_kill = cluster_now_ms();
	int status = 0;
	pid_t w = 0;
	uint64_t end = cluster_now_ms() + 240000;
	while ((w = waitpid(pid, &status, WNOHANG)) == 0 && cluster_now_ms() < end)
		usleep(100000);
	if (w == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	ck_assert_msg(w == pid, "redis-benchmark did not finish within 240 s");
	snprintf(cmd, sizeof cmd, "tr '\\r' '\\n' < %s | grep -v 'rps=' | grep -v '^ *$'", path);
	char *out = rh_run(cmd);
	unlink(path);
	fprintf(stderr,
		"redis-benchmark against node %d, node %d killed after %.1f s, run took %.1f s:\n"
		"%s\n",
		target, victim, (double)(t_kill - t0) / 1000,
		(double)(cluster_now_ms() - t0) / 1000, out);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "redis-benchmark status %d",
		      status);
	int errors = 0, done = 0;
	char *save = NULL;
	for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		const char *e = strstr(line, "Error from server: ");
		if (e != NULL) {
			errors++;
			ck_assert_msg(documented(e + 19), "undocumented error: %s", line);
			continue;
		}
		ck_assert_msg(strstr(line, "rror") == NULL, "other failure: %s", line);
		done += strstr(line, "requests per second") != NULL;
	}
	ck_assert_msg(done == 3, "the run did not complete its 3 tests (%d)", done);
	fprintf(stderr, "%d error lines, all of documented kinds\n", errors);
	free(out);
	/* back to full service once the node returns */
	ck_assert_int_eq(cluster_restart(c, victim), 0);
	ck_assert_int_eq(cluster_wait_leaders(c, 20000), 0);
	for (int node = 1; node <= CLUSTER_NODES; node++) {
		rh_cli_is(c, node, "SET after-kill v", "OK");
		rh_cli_is(c, node, "GET after-kill", "v");
	}
}
END_TEST

/* ------------------------------------------------------------------------------ bad input */
static void expect_error_and_close(int node, const char *input, size_t len, const char *want)
{
	int fd = rh_dial(c, node);
	rh_send_all(fd, input, len);
	char out[512];
	char t = rh_reply(fd, out, sizeof out, 5000);
	ck_assert_msg(t == '-' && strncmp(out, want, strlen(want)) == 0, "got %c[%s] want [%s]",
		      t ? t : '0', out, want);
	/* then the server closes: a read sees the end, not another reply */
	ck_assert_int_eq(rh_reply(fd, out, sizeof out, 2000), 0);
	close(fd);
}

START_TEST(test_more_bad_input)
{
	const char *neg = "*2\r\n$3\r\nGET\r\n$-5\r\n";
	expect_error_and_close(1, neg, strlen(neg), "ERR Protocol error: invalid bulk length");
	const char *alpha = "*2\r\n$3\r\nGET\r\n$abc\r\n";
	expect_error_and_close(2, alpha, strlen(alpha), "ERR Protocol error: invalid bulk length");
	const char *mneg = "*-7\r\n";
	expect_error_and_close(3, mneg, strlen(mneg), "ERR Protocol error");
	const char *malpha = "*x1\r\n";
	expect_error_and_close(1, malpha, strlen(malpha),
			       "ERR Protocol error: invalid multibulk length");
	const char *longer = "*1\r\n$4\r\nPINGPONG\r\n";
	expect_error_and_close(2, longer, strlen(longer), "ERR Protocol error");
	const char *huge_arr = "*2\r\n$3\r\nGET\r\n$4294967296\r\n";
	expect_error_and_close(3, huge_arr, strlen(huge_arr),
			       "ERR Protocol error: invalid bulk length");
	/* a command delivered one byte at a time is still one command */
	int fd = rh_dial(c, 1);
	const char *set = "*3\r\n$3\r\nSET\r\n$5\r\nslow1\r\n$3\r\nyes\r\n";
	for (size_t i = 0; i < strlen(set); i++) {
		rh_send_all(fd, set + i, 1);
		usleep(2000);
	}
	char out[128];
	ck_assert_int_eq(rh_reply(fd, out, sizeof out, 5000), '+');
	ck_assert_str_eq(out, "OK");
	close(fd);
	rh_cli_is(c, 2, "GET slow1", "yes");
	/* and everyone else is served throughout */
	for (int node = 1; node <= CLUSTER_NODES; node++)
		rh_cli_is(c, node, "PING", "PONG");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("resp_fault");
	TCase *tc = tcase_create("resp_fault");
	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_more_bad_input);
	tcase_add_test(tc, test_leader_killed_during_benchmark);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
