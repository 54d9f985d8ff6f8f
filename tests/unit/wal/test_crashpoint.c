/* test_crashpoint.c — the crash-point hook (wal/crashpoint.h). Each case runs the hook in a
 * child process with its environment set, counts through a pipe the calls that returned, and
 * checks how the child ended: killed by SIGKILL at exactly the armed hit of the armed name
 * (after writing the cut command into the control file, when one is named), or never when
 * the setting is missing or malformed, or before the arm file exists.
 */
#include <signal.h>
#include <sys/wait.h>

#include "tests/unit/wal/wal_test_util.h"
#include "wal/crashpoint.h"

struct outcome {
	int returned;   /* calls of crash_point that returned */
	bool killed;    /* ended by SIGKILL */
	int exit_code;  /* when it exited */
	bool armed;     /* what crash_point_armed said in the child */
};

/* In a child: sets the environment (NULL values unset), then makes the calls named in
 * `calls` (one name per entry, NULL-terminated); `make_file` is created before call number
 * `make_at` (0: never). */
static struct outcome run_child(const char *at, const char *ctl, const char *cmd,
				const char *arm_file, const char *const *calls,
				const char *make_file, int make_at)
{
	int fds[2];
	ck_assert_int_eq(pipe(fds), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(fds[0]);
		const char *names[] = {"RINGRAFT_TEST_CRASH_AT", "RINGRAFT_TEST_CRASH_CTL",
				       "RINGRAFT_TEST_CRASH_CMD", "RINGRAFT_TEST_CRASH_ARM_FILE"};
		const char *vals[] = {at, ctl, cmd, arm_file};
		for (int i = 0; i < 4; i++) {
			if (vals[i])
				setenv(names[i], vals[i], 1);
			else
				unsetenv(names[i]);
		}
		char a = crash_point_armed() ? 'A' : 'N';
		if (write(fds[1], &a, 1) != 1)
			_exit(3);
		for (int i = 0; calls[i] != NULL; i++) {
			if (make_file && make_at == i + 1)
				close(open(make_file, O_WRONLY | O_CREAT, 0644));
			crash_point(calls[i]);
			if (write(fds[1], "x", 1) != 1)
				_exit(3);
		}
		_exit(0);
	}
	close(fds[1]);
	struct outcome o = {0};
	char c;
	ssize_t n;
	bool first = true;
	while ((n = read(fds[0], &c, 1)) == 1) {
		if (first)
			o.armed = c == 'A';
		else
			o.returned++;
		first = false;
	}
	close(fds[0]);
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	o.killed = WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
	o.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	return o;
}

static const char *const CALLS[] = {"b", "a", "b", "a", "a", "a", "b", NULL};

START_TEST(test_unset_never_fires)
{
	struct outcome o = run_child(NULL, NULL, NULL, NULL, CALLS, NULL, 0);
	ck_assert(!o.armed);
	ck_assert(!o.killed);
	ck_assert_int_eq(o.exit_code, 0);
	ck_assert_int_eq(o.returned, 7);
}
END_TEST

START_TEST(test_first_hit_by_default)
{
	struct outcome o = run_child("a", NULL, NULL, NULL, CALLS, NULL, 0);
	ck_assert(o.armed);
	ck_assert(o.killed);
	ck_assert_int_eq(o.returned, 1); /* "b" returned; the first "a" did not */
}
END_TEST

START_TEST(test_nth_hit_of_the_named_point_only)
{
	struct outcome o = run_child("a:3", NULL, NULL, NULL, CALLS, NULL, 0);
	ck_assert(o.killed);
	ck_assert_int_eq(o.returned, 4); /* b a b a, then the third "a" */
	o = run_child("a:5", NULL, NULL, NULL, CALLS, NULL, 0);
	ck_assert(!o.killed); /* only four hits of "a" */
	ck_assert_int_eq(o.returned, 7);
	o = run_child("c", NULL, NULL, NULL, CALLS, NULL, 0);
	ck_assert(!o.killed);
	o = run_child("ab", NULL, NULL, NULL, CALLS, NULL, 0); /* whole names, not prefixes */
	ck_assert(!o.killed);
}
END_TEST

START_TEST(test_malformed_settings_disarm)
{
	const char *bad[] = {"a:0", "a:", "a:x", "a:3x", ":2", "", NULL};
	for (int i = 0; bad[i] != NULL; i++) {
		struct outcome o = run_child(bad[i], NULL, NULL, NULL, CALLS, NULL, 0);
		ck_assert_msg(!o.armed && !o.killed && o.returned == 7, "\"%s\" armed", bad[i]);
	}
	/* a control file without a command */
	struct outcome o = run_child("a", "/tmp/nowhere", NULL, NULL, CALLS, NULL, 0);
	ck_assert(!o.armed && !o.killed);
}
END_TEST

START_TEST(test_writes_the_cut_command_before_dying)
{
	char *dir = tmp_dir(), ctl[512];
	snprintf(ctl, sizeof ctl, "%s/powercut-ctl", dir);
	close(open(ctl, O_WRONLY | O_CREAT, 0644));
	struct outcome o = run_child("b:2", ctl, "cut 500 7", NULL, CALLS, NULL, 0);
	ck_assert(o.killed);
	ck_assert_int_eq(o.returned, 2);
	char buf[64] = {0};
	FILE *f = fopen(ctl, "r");
	ck_assert_ptr_nonnull(f);
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	tmp_rmdir(dir);
	free(dir);
	ck_assert_uint_eq(n, 9);
	ck_assert_str_eq(buf, "cut 500 7");
}
END_TEST

START_TEST(test_hits_count_only_once_armed_by_the_file)
{
	char *dir = tmp_dir(), arm[512];
	snprintf(arm, sizeof arm, "%s/armed", dir);
	/* "a" at calls 2, 4, 5, 6; the file appears before call 5: hit 1 is call 5 */
	struct outcome o = run_child("a", NULL, NULL, arm, CALLS, arm, 5);
	ck_assert(o.killed);
	ck_assert_int_eq(o.returned, 4);
	unlink(arm);
	/* never made: never fires */
	o = run_child("a", NULL, NULL, arm, CALLS, NULL, 0);
	ck_assert(o.armed && !o.killed);
	ck_assert_int_eq(o.returned, 7);
	tmp_rmdir(dir);
	free(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("wal_crashpoint");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_unset_never_fires);
	tcase_add_test(tc, test_first_hit_by_default);
	tcase_add_test(tc, test_nth_hit_of_the_named_point_only);
	tcase_add_test(tc, test_malformed_settings_disarm);
	tcase_add_test(tc, test_writes_the_cut_command_before_dying);
	tcase_add_test(tc, test_hits_count_only_once_armed_by_the_file);
	suite_add_tcase(s, tc);
	return wal_test_run(s);
}
