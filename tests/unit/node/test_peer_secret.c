/* test_peer_secret.c — --peer-secret-file (node/peer_secret.c): lines become secrets in order
 * (CR LF and a missing final newline are fine); an empty, short, long, over-full or
 * other-readable file, a blank line, a directory and a missing file are refused with a message
 * naming the file and never the secret. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "node/node_err.h"
#include "node/peer_secret.h"

static char dir[64], path[128];
static struct net_peer_secrets s;
static char err[512];

static void setup(void)
{
	snprintf(dir, sizeof dir, "/tmp/peer-secret-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/secret", dir);
}

static void teardown(void)
{
	unlink(path);
	rmdir(dir);
}

static int load(const char *content, mode_t mode)
{
	unlink(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	size_t n = strlen(content);
	ck_assert_int_eq(write(fd, content, n), (ssize_t)n);
	ck_assert_int_eq(fchmod(fd, mode), 0);
	close(fd);
	err[0] = '\0';
	return node_peer_secret_load(path, &s, err, sizeof err);
}

#define A16 "aaaaaaaaaaaaaaaa"
#define B20 "bbbbbbbbbbbbbbbbbbbb"

START_TEST(test_lines_are_secrets_in_order)
{
	ck_assert_int_eq(load(A16 "\n", 0600), NODE_OK);
	ck_assert_uint_eq(s.n, 1);
	ck_assert_uint_eq(s.s[0].len, 16);
	ck_assert_int_eq(load(B20 "\r\n" A16, 0400), NODE_OK);
	ck_assert_uint_eq(s.n, 2);
	ck_assert_uint_eq(s.s[0].len, 20);
	ck_assert(memcmp(s.s[0].bytes, B20, 20) == 0);
	ck_assert_uint_eq(s.s[1].len, 16);
	ck_assert_int_eq(load(A16 "\n" A16 "\n" A16 "\n" B20 "\n", 0640), NODE_OK);
	ck_assert_uint_eq(s.n, 4);
}
END_TEST

static void refused(const char *content, mode_t mode, const char *want)
{
	ck_assert_int_eq(load(content, mode), NODE_ECONFIG);
	ck_assert_uint_eq(s.n, 0);
	ck_assert_msg(strstr(err, want) != NULL, "wanted [%s] in [%s]", want, err);
	ck_assert_msg(strstr(err, path) != NULL, "the file is not named: %s", err);
	ck_assert_msg(strstr(err, "aaaa") == NULL && strstr(err, "bbbb") == NULL,
		      "a secret in the message: %s", err);
}

START_TEST(test_bad_files_refused)
{
	refused("", 0600, "empty");
	refused("\n", 0600, "line 1 is empty");
	refused(A16 "\n\n", 0600, "line 2 is empty");
	refused("aaaaaaaaaaaaaaa\n", 0600, "line 1 has 15 bytes");
	refused(A16 "\n" A16 "\n" A16 "\n" A16 "\n" A16 "\n", 0600, "more than 4 lines");
	refused(A16 "\n", 0604, "other users may read or write it (mode 604)");
	refused(A16 "\n", 0602, "other users may read or write it");
	char *big = malloc(NET_PEER_SECRET_MAX + 3);
	memset(big, 'a', NET_PEER_SECRET_MAX + 1);
	strcpy(big + NET_PEER_SECRET_MAX + 1, "\n");
	refused(big, 0600, "line 1 has 1025 bytes");
	free(big);
	unlink(path);
	ck_assert_int_eq(node_peer_secret_load(path, &s, err, sizeof err), NODE_ECONFIG);
	ck_assert_ptr_nonnull(strstr(err, "cannot read"));
	ck_assert_int_eq(node_peer_secret_load(dir, &s, err, sizeof err), NODE_ECONFIG);
	ck_assert_ptr_nonnull(strstr(err, "not a regular file"));
}
END_TEST

int main(void)
{
	Suite *su = suite_create("node_peer_secret");
	TCase *tc = tcase_create("load");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_lines_are_secrets_in_order);
	tcase_add_test(tc, test_bad_files_refused);
	suite_add_tcase(su, tc);
	SRunner *sr = srunner_create(su);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
