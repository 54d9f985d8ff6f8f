/* test_guard.c — kv/guard.c's test override of the boot id (RINGRAFT_TEST_BOOT_ID_FILE): the
 * file's id is what kv.state records and what the machine-crash check compares, so a test can
 * "reboot" a node; a file that does not hold a boot id fails the open. The check itself (a
 * machine crash refused, a process crash accepted) is tested in test_kv.c.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/kv.h"
#include "kv_fixture.h"

#define ENV  "RINGRAFT_TEST_BOOT_ID_FILE"
#define ID_A "0a1b2c3d-0000-4000-8000-00000000000a"
#define ID_B "0a1b2c3d-0000-4000-8000-00000000000b"

/* ---------------------------------------------------------------- fixture */

static void put_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

static void get_file(const char *path, char *out, size_t n)
{
	out[0] = 0;
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	if (fgets(out, (int)n, f) == NULL)
		out[0] = 0;
	fclose(f);
}

struct gx {
	struct fx f;
	char id_file[512], state[512];
	struct kv_options o;
};

static void gx_setup(struct gx *g)
{
	fx_open(&g->f);
	ck_assert_int_eq(fx_put(&g->f, 1, "k", "v"), KV_OK);
	kv_close(g->f.kv);
	g->f.kv = NULL;
	snprintf(g->id_file, sizeof g->id_file, "%s/boot_id", g->f.dir);
	snprintf(g->state, sizeof g->state, "%s/kv.state", g->f.dir);
	kv_options_default(&g->o);
	setenv(ENV, g->id_file, 1);
}

static void gx_teardown(struct gx *g)
{
	unsetenv(ENV);
	fx_close(&g->f);
}

/* ---------------------------------------------------------------- tests */

START_TEST(test_override_is_the_boot_id)
{
	struct gx g;
	gx_setup(&g);
	char line[128];
	put_file(g.id_file, ID_A "\n");
	ck_assert_int_eq(kv_open(g.f.dir, &g.o, &g.f.kv), KV_OK);
	get_file(g.state, line, sizeof line);
	ck_assert_str_eq(line, "open " ID_A "\n"); /* recorded: it was read */
	kv_close(g.f.kv);
	g.f.kv = NULL;

	/* the node dies while open (no clean close) under boot A */
	put_file(g.state, "open " ID_A "\n");
	ck_assert_int_eq(kv_open(g.f.dir, &g.o, &g.f.kv), KV_OK); /* same boot: process crash */
	fx_expect(&g.f, 1, "k", "v");
	kv_close(g.f.kv);
	g.f.kv = NULL;

	put_file(g.state, "open " ID_A "\n");
	put_file(g.id_file, ID_B "\n"); /* the test says: the machine rebooted */
	ck_assert_int_eq(kv_open(g.f.dir, &g.o, &g.f.kv), KV_EUNSAFE);
	get_file(g.state, line, sizeof line);
	ck_assert_str_eq(line, "open " ID_A "\n"); /* a refusal leaves the evidence */

	/* without the override the kernel's id is compared, which is neither A nor B */
	unsetenv(ENV);
	ck_assert_int_eq(kv_open(g.f.dir, &g.o, &g.f.kv), KV_EUNSAFE);
	gx_teardown(&g);
}
END_TEST

START_TEST(test_override_is_validated)
{
	static const char *bad[] = {
		"",
		"\n",
		"not a boot id\n",
		"0a1b2c3d-0000-4000-8000-00000000000\n",   /* 35 characters */
		"0a1b2c3d-0000-4000-8000-00000000000ab\n", /* 37 */
		"0a1b2c3d_0000-4000-8000-00000000000a\n",  /* a dash missing */
		"0a1b2c3d-0000-4000-8000-00000000000g\n",  /* not hexadecimal */
	};
	struct gx g;
	gx_setup(&g);
	put_file(g.state, "open " ID_A "\n");
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		put_file(g.id_file, bad[i]);
		ck_assert_msg(kv_open(g.f.dir, &g.o, &g.f.kv) == KV_EINVAL, "accepted '%s'",
			      bad[i]);
	}
	ck_assert_int_eq(remove(g.id_file), 0); /* a file that is not there */
	ck_assert_int_eq(kv_open(g.f.dir, &g.o, &g.f.kv), KV_EINVAL);
	char line[128];
	get_file(g.state, line, sizeof line);
	ck_assert_str_eq(line, "open " ID_A "\n"); /* none of them was written down */

	put_file(g.id_file, "0A1B2C3D-0000-4000-8000-00000000000A");   /* no newline, upper case */
	ck_assert_int_eq(kv_open(g.f.dir, &g.o, &g.f.kv), KV_EUNSAFE); /* valid, and not A */
	setenv(ENV, "", 1); /* empty is unset: the kernel's id */
	ck_assert_int_eq(kv_open(g.f.dir, &g.o, &g.f.kv), KV_EUNSAFE);
	put_file(g.state, "clean\n");
	ck_assert_int_eq(kv_open(g.f.dir, &g.o, &g.f.kv), KV_OK);
	fx_expect(&g.f, 1, "k", "v");
	gx_teardown(&g);
}
END_TEST

Suite *guard_suite(void)
{
	Suite *s = suite_create("guard");
	TCase *tc = tcase_create("boot id");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_override_is_the_boot_id);
	tcase_add_test(tc, test_override_is_validated);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(guard_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
