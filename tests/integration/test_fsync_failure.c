/* test_fsync_failure.c — a failed fsync stops the node (DESIGN.md 4: never retry a failed
 * fsync): an LD_PRELOAD shim makes fdatasync/fsync fail with EIO for one node once a trigger
 * file exists; that node must log a fatal line and exit 1, and the other two keep serving. */
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/integration/cluster.h"

#define OK RINGRAFT__KV__CODE__OK

static const char shim_src[] =
	"#define _GNU_SOURCE\n"
	"#include <dlfcn.h>\n#include <errno.h>\n#include <stdio.h>\n#include <stdlib.h>\n"
	"#include <unistd.h>\n"
	"static int armed(void) {\n"
	"  const char *d = getenv(\"RR_FAIL_FSYNC_DIR\"), *n = getenv(\"CLUSTER_NODE\");\n"
	"  char p[512];\n"
	"  if (!d || !n) return 0;\n"
	"  snprintf(p, sizeof p, \"%s/fail-%s\", d, n);\n"
	"  return access(p, F_OK) == 0;\n"
	"}\n"
	"int fdatasync(int fd) {\n"
	"  static int (*real)(int);\n"
	"  if (armed()) { errno = EIO; return -1; }\n"
	"  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, \"fdatasync\");\n"
	"  return real(fd);\n"
	"}\n"
	"int fsync(int fd) {\n"
	"  static int (*real)(int);\n"
	"  if (armed()) { errno = EIO; return -1; }\n"
	"  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, \"fsync\");\n"
	"  return real(fd);\n"
	"}\n";

/* ------------------------------------------------------------------------------ fixture */
static struct cluster *c;
static char shim_dir[256];

static int rm_cb(const char *p, const struct stat *s, int f, struct FTW *w)
{
	(void)s;
	(void)f;
	(void)w;
	return remove(p);
}

static void teardown(void)
{
	int bad = cluster_shutdown(c);
	cluster_destroy(c);
	c = NULL;
	if (shim_dir[0])
		nftw(shim_dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
	ck_assert_msg(bad == 0, "%d other node(s) crashed or did not stop cleanly", bad);
}

/* ------------------------------------------------------------------------------ tests */
START_TEST(test_failed_fsync_stops_the_node)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(shim_dir, sizeof shim_dir, "%s/ringraft-shim-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(shim_dir));
	char src[300], so[300], cmd[1024];
	snprintf(src, sizeof src, "%s/shim.c", shim_dir);
	snprintf(so, sizeof so, "%s/shim.so", shim_dir);
	FILE *f = fopen(src, "w");
	ck_assert_ptr_nonnull(f);
	fputs(shim_src, f);
	fclose(f);
	snprintf(cmd, sizeof cmd, "cc -shared -fPIC -o '%s' '%s' -ldl", so, src);
	ck_assert_msg(system(cmd) == 0, "cannot build the fsync shim with cc");

	char env[1024];
	snprintf(env, sizeof env,
		 "LD_PRELOAD=%s RR_FAIL_FSYNC_DIR=%s ASAN_OPTIONS=verify_asan_link_order=0", so,
		 shim_dir);
	struct cluster_opts o;
	cluster_opts_default(&o);
	o.groups = 2;
	o.env = env;
	c = cluster_start(&o);
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(cluster_put(c, 1, "before", "x", 3000), OK);

	char trigger[300];
	snprintf(trigger, sizeof trigger, "%s/fail-2", shim_dir);
	f = fopen(trigger, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	/* every node writes its WAL (heartbeats do not, entries do): keep writing */
	uint64_t end = cluster_now_ms() + 10000;
	bool died = false;
	for (int i = 0; !died && cluster_now_ms() < end; i++) {
		char key[32];
		snprintf(key, sizeof key, "k%d", i);
		cluster_put(c, 1 + (i % 2) * 2, key, "v", 500);
		died = cluster_died(c, 2);
	}
	ck_assert_msg(died, "node 2 kept running with a failing fsync");
	ck_assert_int_eq(cluster_exit_status(c, 2), 1);
	ck_assert_int_gt(cluster_log_grep(c, 2, "fatal, node stops"), 0);
	ck_assert_int_gt(cluster_log_grep(c, 2, "WAL write failed"), 0);
	/* the majority keeps serving */
	int code = -1;
	end = cluster_now_ms() + 5000;
	while (code != OK && cluster_now_ms() < end)
		code = cluster_put(c, 1, "after", "y", 1000);
	ck_assert_int_eq(code, OK);
	char *got = NULL;
	ck_assert_int_eq(cluster_get(c, 3, "after", &got, false, 3000), OK);
	ck_assert_str_eq(got, "y");
	free(got);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("fsync_failure");
	TCase *tc = tcase_create("fsync");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_failed_fsync_stops_the_node);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
