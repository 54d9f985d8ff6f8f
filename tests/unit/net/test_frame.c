/* test_frame.c — the frame decoder: frames split at every byte boundary reassemble exactly;
 * an oversize header is refused before any payload arrives; addresses parse or are refused. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "net/frame.h"

static size_t put_frame(uint8_t *out, const char *payload)
{
	uint32_t n = (uint32_t)strlen(payload);
	net_frame_header(out, n);
	memcpy(out + NET_FRAME_HEADER, payload, n);
	return NET_FRAME_HEADER + n;
}

START_TEST(test_split_everywhere)
{
	uint8_t stream[256];
	size_t n = put_frame(stream, "hello");
	n += put_frame(stream + n, "");
	n += put_frame(stream + n, "world!");
	const char *want[] = {"hello", "", "world!"};
	for (size_t cut = 0; cut <= n; cut++) {
		struct net_decoder d;
		net_decoder_init(&d, 64);
		size_t got = 0;
		const uint8_t *p;
		uint32_t len;
		ck_assert_int_eq(net_decoder_feed(&d, stream, cut), NET_OK);
		while (net_decoder_next(&d, &p, &len) == 1) {
			ck_assert_uint_eq(len, strlen(want[got]));
			ck_assert(memcmp(p, want[got], len) == 0);
			got++;
		}
		ck_assert_int_eq(net_decoder_feed(&d, stream + cut, n - cut), NET_OK);
		while (net_decoder_next(&d, &p, &len) == 1) {
			ck_assert_uint_eq(len, strlen(want[got]));
			ck_assert(memcmp(p, want[got], len) == 0);
			got++;
		}
		ck_assert_uint_eq(got, 3);
		net_decoder_free(&d);
	}
}
END_TEST

START_TEST(test_oversize_refused_from_header)
{
	struct net_decoder d;
	net_decoder_init(&d, 1024);
	uint8_t h[NET_FRAME_HEADER];
	net_frame_header(h, 1025);
	ck_assert_int_eq(net_decoder_feed(&d, h, sizeof h), NET_OK);
	const uint8_t *p;
	uint32_t len;
	ck_assert_int_eq(net_decoder_next(&d, &p, &len), NET_ETOOBIG);
	net_decoder_free(&d);
}
END_TEST

START_TEST(test_parse_addr)
{
	struct sockaddr_storage ss;
	ck_assert_int_eq(net_parse_addr("127.0.0.11:7001", &ss), NET_OK);
	ck_assert_int_eq(ss.ss_family, AF_INET);
	ck_assert_int_eq(net_parse_addr("[::1]:9000", &ss), NET_OK);
	ck_assert_int_eq(ss.ss_family, AF_INET6);
	ck_assert_int_eq(net_parse_addr("127.0.0.11", &ss), NET_EADDR);
	ck_assert_int_eq(net_parse_addr("127.0.0.11:0", &ss), NET_EADDR);
	ck_assert_int_eq(net_parse_addr("127.0.0.11:70000", &ss), NET_EADDR);
	ck_assert_int_eq(net_parse_addr("nothost:80", &ss), NET_EADDR);
	ck_assert_int_eq(net_parse_addr("1.2.3.4:80x", &ss), NET_EADDR);
	/* the port is digits only: a newline in it reached cluster.conf and broke the file
	 * (tests/fuzz/fuzz_config, regress-newline-in-cluster-port) */
	ck_assert_int_eq(net_parse_addr("1.2.3.4:\n7", &ss), NET_EADDR);
	ck_assert_int_eq(net_parse_addr("1.2.3.4: 7", &ss), NET_EADDR);
	ck_assert_int_eq(net_parse_addr("1.2.3.4:+7", &ss), NET_EADDR);
	ck_assert_int_eq(net_parse_addr("1.2.3.4:-7", &ss), NET_EADDR);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("net_frame");
	TCase *tc = tcase_create("frame");
	tcase_add_test(tc, test_split_everywhere);
	tcase_add_test(tc, test_oversize_refused_from_header);
	tcase_add_test(tc, test_parse_addr);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
