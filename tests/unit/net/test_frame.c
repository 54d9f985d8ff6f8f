/* test_frame.c — the frame decoder: frames split at every byte boundary reassemble exactly, fed
 * (copied) or lent (read in place), whether the reader takes every frame or stops early; a lent
 * stream leaves at most one partial frame in the decoder's buffer and a large buffer is given
 * back once drained; an oversize header is refused before any payload arrives; addresses parse
 * or are refused. */
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

/* Lends the stream in three pieces (every pair of cut points), each from a scratch buffer that
 * is overwritten after net_decoder_keep (a frame read from a stale lend would show it), and
 * takes at most `limit` frames per piece, the rest on later pieces (a paused connection). */
START_TEST(test_lend_split_everywhere)
{
	uint8_t stream[256];
	size_t n = put_frame(stream, "hello");
	n += put_frame(stream + n, "");
	n += put_frame(stream + n, "world!");
	n += put_frame(stream + n, "x");
	const char *want[] = {"hello", "", "world!", "x"};
	size_t whole[sizeof stream + 1]; /* frames wholly inside stream[0, i) */
	for (size_t i = 0, end = 0, f = 0; i <= n; i++) {
		if (f < 4 && i == end + NET_FRAME_HEADER + strlen(want[f]))
			end = i, f++;
		whole[i] = f;
	}
	for (unsigned limit = 1; limit <= 5; limit++) {
		for (size_t a = 0; a <= n; a++) {
			for (size_t b = a; b <= n; b++) {
				struct net_decoder d;
				net_decoder_init(&d, 64);
				size_t got = 0, cuts[4] = {0, a, b, n};
				uint8_t scratch[256];
				const uint8_t *p;
				uint32_t len;
				for (int piece = 0; piece < 3; piece++) {
					size_t plen = cuts[piece + 1] - cuts[piece];
					memcpy(scratch, stream + cuts[piece], plen);
					ck_assert_int_eq(net_decoder_lend(&d, scratch, plen), NET_OK);
					unsigned k = 0;
					for (; k < limit && net_decoder_next(&d, &p, &len) == 1; k++) {
						ck_assert_uint_eq(len, strlen(want[got]));
						ck_assert(memcmp(p, want[got], len) == 0);
						got++;
					}
					/* stopped by the decoder, not the limit: every frame whole so
					 * far was handed out (none waits for a read that may not come) */
					if (k < limit)
						ck_assert_uint_eq(got, whole[cuts[piece + 1]]);
					ck_assert_int_eq(net_decoder_keep(&d), NET_OK);
					memset(scratch, 0xAA, sizeof scratch);
				}
				while (net_decoder_next(&d, &p, &len) == 1) {
					ck_assert_uint_eq(len, strlen(want[got]));
					ck_assert(memcmp(p, want[got], len) == 0);
					got++;
				}
				ck_assert_uint_eq(got, 4);
				net_decoder_free(&d);
			}
		}
	}
}
END_TEST

/* 64 KiB reads of a stream of 4 KiB frames, every frame taken: the decoder never holds more
 * than the one frame a read cut (the copy path grew to twice the read before the lend), and
 * a buffer grown past NET_DECODER_KEEP_BYTES is freed once it is drained. */
START_TEST(test_lend_holds_one_partial_frame)
{
	enum { FRAME = 4096, FRAMES = 200, READ = 64 << 10 };
	size_t total = (size_t)FRAMES * (NET_FRAME_HEADER + FRAME);
	uint8_t *stream = malloc(total);
	ck_assert_ptr_nonnull(stream);
	for (size_t i = 0; i < FRAMES; i++) {
		uint8_t *f = stream + i * (NET_FRAME_HEADER + FRAME);
		net_frame_header(f, FRAME);
		memset(f + NET_FRAME_HEADER, (int)(i & 0xff), FRAME);
	}
	struct net_decoder d;
	net_decoder_init(&d, 1 << 20);
	size_t got = 0;
	for (size_t off = 0; off < total; off += READ) {
		size_t len = total - off < READ ? total - off : READ;
		ck_assert_int_eq(net_decoder_lend(&d, stream + off, len), NET_OK);
		const uint8_t *p;
		uint32_t flen;
		while (net_decoder_next(&d, &p, &flen) == 1) {
			ck_assert_uint_eq(flen, FRAME);
			ck_assert_uint_eq(p[0], got & 0xff);
			ck_assert_uint_eq(p[FRAME - 1], got & 0xff);
			got++;
		}
		ck_assert_int_eq(net_decoder_keep(&d), NET_OK);
		ck_assert_uint_lt(d.len - d.consumed, NET_FRAME_HEADER + FRAME);
		ck_assert_uint_le(d.cap, 2 * (NET_FRAME_HEADER + FRAME));
	}
	ck_assert_uint_eq(got, FRAMES);

	/* the copy path (feed) too stays within a read and a frame: it compacts before growing */
	struct net_decoder f;
	net_decoder_init(&f, 1 << 20);
	got = 0;
	uint32_t rnd = 12345;
	for (size_t off = 0, len; off < total; off += len) {
		rnd = rnd * 1103515245u + 12345u; /* reads of any size up to READ */
		len = 1 + (rnd >> 8) % READ;
		if (len > total - off)
			len = total - off;
		ck_assert_int_eq(net_decoder_feed(&f, stream + off, len), NET_OK);
		const uint8_t *p;
		uint32_t flen;
		while (net_decoder_next(&f, &p, &flen) == 1)
			got++;
		ck_assert_uint_le(f.cap, 2 * (READ + NET_FRAME_HEADER + FRAME));
	}
	ck_assert_uint_eq(got, FRAMES);
	net_decoder_free(&f);
	free(stream);

	/* a 100 KiB frame lent in two halves is completed in the buffer, which is then freed */
	enum { BIG = 100 << 10 };
	uint8_t *big = malloc(NET_FRAME_HEADER + BIG);
	ck_assert_ptr_nonnull(big);
	net_frame_header(big, BIG);
	memset(big + NET_FRAME_HEADER, 7, BIG);
	ck_assert_int_eq(net_decoder_lend(&d, big, 50 << 10), NET_OK);
	const uint8_t *p;
	uint32_t flen;
	ck_assert_int_eq(net_decoder_next(&d, &p, &flen), 0);
	ck_assert_int_eq(net_decoder_keep(&d), NET_OK);
	ck_assert_int_eq(net_decoder_lend(&d, big + (50 << 10), NET_FRAME_HEADER + BIG - (50 << 10)),
			 NET_OK);
	ck_assert_int_eq(net_decoder_next(&d, &p, &flen), 1);
	ck_assert_uint_eq(flen, BIG);
	ck_assert_uint_eq(p[BIG - 1], 7);
	ck_assert_int_eq(net_decoder_next(&d, &p, &flen), 0);
	ck_assert_int_eq(net_decoder_keep(&d), NET_OK);
	ck_assert_ptr_null(d.buf);
	free(big);
	net_decoder_free(&d);
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
	tcase_add_test(tc, test_lend_split_everywhere);
	tcase_add_test(tc, test_lend_holds_one_partial_frame);
	tcase_add_test(tc, test_oversize_refused_from_header);
	tcase_add_test(tc, test_parse_addr);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
