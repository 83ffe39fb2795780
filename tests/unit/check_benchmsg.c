/*
 * chatbench's wire helpers (bench/chatbench/benchmsg.h).
 *
 * Covered: payloads round-trip through make and parse (padding to the
 * asked size, the fields' own length when the size is smaller, a buffer
 * too small refused), and parse refuses what is not a payload (missing
 * fields or dots, letters, numbers past their type); the frame scanner
 * reads chatd's real msg frames (built by journal/frame.h's
 * ch_msg_frame, the server's own encoder) and joined, ack, error, pong,
 * presence and who frames (nested arrays skipped, escaped quotes in
 * strings, keys in any order), and refuses truncated or malformed JSON;
 * the HTTP splitter tells complete, partial and malformed responses apart
 * and splits pipelined ones.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/chatbench/benchmsg.h"
#include "journal/frame.h"

#define CAP 512

START_TEST(test_payload_round_trip)
{
	char buf[CAP];
	struct ch_bench_payload in = { 7, 123456789012ull, 42, 987654321098765ull }, out;
	size_t n = ch_bench_payload_make(buf, sizeof(buf), 200, &in);

	ck_assert_uint_eq(n, 200);
	ck_assert_int_eq(ch_bench_payload_parse(buf, n, &out), 0);
	ck_assert_uint_eq(out.sender, 7);
	ck_assert_uint_eq(out.counter, 123456789012ull);
	ck_assert_uint_eq(out.round, 42);
	ck_assert_uint_eq(out.ts, 987654321098765ull);
	for (size_t i = strlen("7.123456789012.42.987654321098765."); i < n; i++)
		ck_assert_int_eq(buf[i], 'x');
}
END_TEST

START_TEST(test_payload_sizes)
{
	char buf[CAP];
	struct ch_bench_payload in = { UINT32_MAX, UINT64_MAX, UINT32_MAX, UINT64_MAX }, out;
	size_t fields = strlen("4294967295.18446744073709551615.4294967295.18446744073709551615.");

	/* Smaller size than the fields: the fields' length. */
	ck_assert_uint_eq(ch_bench_payload_make(buf, sizeof(buf), 1, &in), fields);
	ck_assert_int_eq(ch_bench_payload_parse(buf, fields, &out), 0);
	ck_assert_uint_eq(out.counter, UINT64_MAX);
	ck_assert_uint_eq(out.ts, UINT64_MAX);
	ck_assert_uint_le(fields, CH_BENCH_PAYLOAD_MIN);
	/* Too small a buffer. */
	ck_assert_uint_eq(ch_bench_payload_make(buf, fields - 1, 1, &in), 0);
	ck_assert_uint_eq(ch_bench_payload_make(buf, 100, 101, &in), 0);
}
END_TEST

START_TEST(test_payload_refused)
{
	static const char *const bad[] = {
		"", "1.2.3.", "1.2.3.4", "a.2.3.4.", "1..3.4.", ".1.2.3.4.", "1.2.3.4x.",
		"4294967296.1.1.1.",		/* sender past 32 bits */
		"1.1.4294967296.1.",		/* round past 32 bits */
		"1.18446744073709551616.1.1.",	/* counter past 64 bits */
		"hello world",
	};
	struct ch_bench_payload out;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(ch_bench_payload_parse(bad[i], strlen(bad[i]), &out) < 0, "accepted %s", bad[i]);
	/* Cut short: the last dot outside the given length. */
	ck_assert_int_lt(ch_bench_payload_parse("1.2.3.4.", 7, &out), 0);
	ck_assert_int_eq(ch_bench_payload_parse("1.2.3.4.", 8, &out), 0);
}
END_TEST

/* The JSON of a frame built by chatd's own encoder: the WebSocket header stripped. */
static size_t server_msg(char *out, size_t cap, const char *content, const char *id)
{
	struct ch_buf b;
	ch_buf_init(&b);
	ch_msg_frame(&b, "bench-0", 7, 99, "alice", 5, content, strlen(content), 1700000000123ull,
		     id, id ? strlen(id) : 0);
	ck_assert(!b.failed);
	size_t hl = ((uint8_t)b.p[1] & 0x7f) == 126 ? 4 : 2;
	size_t n = b.len - hl;
	ck_assert_uint_lt(n, cap);
	memcpy(out, b.p + hl, n);
	out[n] = 0;
	ch_buf_free(&b);
	return n;
}

START_TEST(test_scan_chatd_msg)
{
	char json[CAP];
	struct ch_bench_frame f;
	size_t n = server_msg(json, sizeof(json), "3.1.0.555.xxxx", NULL);

	ck_assert_int_eq(ch_bench_frame_scan(json, n, &f), 0);
	ck_assert_int_eq(f.type, CH_BENCH_F_MSG);
	ck_assert_uint_eq(f.seq, 99);
	ck_assert_uint_eq(f.room_len, 7);
	ck_assert(memcmp(f.room, "bench-0", 7) == 0);
	ck_assert_uint_eq(f.content_len, 14);
	ck_assert(memcmp(f.content, "3.1.0.555.xxxx", 14) == 0);
	/* With an id, and content that needs escaping. */
	n = server_msg(json, sizeof(json), "say \"hi\"\n}", "c1");
	ck_assert_int_eq(ch_bench_frame_scan(json, n, &f), 0);
	ck_assert_int_eq(f.type, CH_BENCH_F_MSG);
	ck_assert_uint_eq(f.seq, 99);
	ck_assert(f.content_len == strlen("say \\\"hi\\\"\\n}"));
}
END_TEST

START_TEST(test_scan_other_frames)
{
	struct ch_bench_frame f;
	const char *j;

	j = "{\"type\":\"joined\",\"room\":\"r\",\"last_seq\":17}";
	ck_assert_int_eq(ch_bench_frame_scan(j, strlen(j), &f), 0);
	ck_assert_int_eq(f.type, CH_BENCH_F_JOINED);
	ck_assert_uint_eq(f.last_seq, 17);
	j = " { \"seq\" : 5 , \"room\":\"r\", \"ts\":1, \"type\" : \"ack\", \"id\":\"x\" } ";
	ck_assert_int_eq(ch_bench_frame_scan(j, strlen(j), &f), 0);
	ck_assert_int_eq(f.type, CH_BENCH_F_ACK);
	ck_assert_uint_eq(f.seq, 5);
	j = "{\"type\":\"error\",\"code\":\"not_a_participant\",\"message\":\"no \\\"way\\\"\"}";
	ck_assert_int_eq(ch_bench_frame_scan(j, strlen(j), &f), 0);
	ck_assert_int_eq(f.type, CH_BENCH_F_ERROR);
	ck_assert_uint_eq(f.code_len, strlen("not_a_participant"));
	j = "{\"type\":\"pong\"}";
	ck_assert_int_eq(ch_bench_frame_scan(j, strlen(j), &f), 0);
	ck_assert_int_eq(f.type, CH_BENCH_F_PONG);
	j = "{\"type\":\"who\",\"room\":\"r\",\"users\":[{\"user\":\"a]}\",\"status\":\"active\"},{}],\"seq\":3}";
	ck_assert_int_eq(ch_bench_frame_scan(j, strlen(j), &f), 0);
	ck_assert_int_eq(f.type, CH_BENCH_F_OTHER);
	ck_assert_uint_eq(f.seq, 3);
	j = "{\"type\":\"presence\",\"user\":\"u\",\"status\":\"away\",\"online\":true,\"x\":null,\"y\":-1.5e3}";
	ck_assert_int_eq(ch_bench_frame_scan(j, strlen(j), &f), 0);
	ck_assert_int_eq(f.type, CH_BENCH_F_OTHER);
	j = "{\"type\":\"truncated\",\"room\":\"r\",\"first_seq\":4}";
	ck_assert_int_eq(ch_bench_frame_scan(j, strlen(j), &f), 0);
	ck_assert_int_eq(f.type, CH_BENCH_F_TRUNCATED);
}
END_TEST

START_TEST(test_scan_refused)
{
	static const char *const bad[] = {
		"", "[]", "{}", "{\"room\":\"r\"}", "{\"type\":\"msg\"", "{\"type\":\"msg\",}",
		"{\"type\":\"msg\"} x", "{\"type\" \"msg\"}", "{\"type\":\"ms", "{type:\"msg\"}",
		"{\"type\":\"msg\",\"users\":[1,2}", "{\"type\":\"msg\",\"seq\":}",
	};
	struct ch_bench_frame f;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(ch_bench_frame_scan(bad[i], strlen(bad[i]), &f) < 0, "accepted %s", bad[i]);
	/* Every prefix of a real frame is refused, the whole is accepted. */
	char json[CAP];
	size_t n = server_msg(json, sizeof(json), "1.1.0.1.", "id");
	for (size_t k = 0; k < n; k++)
		ck_assert_int_lt(ch_bench_frame_scan(json, k, &f), 0);
	ck_assert_int_eq(ch_bench_frame_scan(json, n, &f), 0);
}
END_TEST

START_TEST(test_http_split)
{
	const char *r1 = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ncontent-length: 2\r\n\r\n[]";
	const char *r2 = "HTTP/1.1 404 Not Found\r\nContent-Length:  5\r\n\r\nnope!";
	char both[CAP];
	int status = 0;
	size_t total = 0;

	snprintf(both, sizeof(both), "%s%s", r1, r2);
	ck_assert_int_eq(ch_bench_http_response(both, strlen(both), &status, &total), 1);
	ck_assert_int_eq(status, 200);
	ck_assert_uint_eq(total, strlen(r1));
	ck_assert_int_eq(ch_bench_http_response(both + total, strlen(r2), &status, &total), 1);
	ck_assert_int_eq(status, 404);
	ck_assert_uint_eq(total, strlen(r2));
	/* Every prefix of a response needs more. */
	for (size_t k = 0; k < strlen(r1); k++)
		ck_assert_int_eq(ch_bench_http_response(r1, k, &status, &total), 0);
}
END_TEST

START_TEST(test_http_refused)
{
	static const char *const bad[] = {
		"HTTP/1.1 200 OK\r\n\r\n",				/* no Content-Length */
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\nab",
		"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999\r\n\r\n",
		"SMTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
	};
	int status;
	size_t total;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(ch_bench_http_response(bad[i], strlen(bad[i]), &status, &total) < 0,
			      "accepted %s", bad[i]);
}
END_TEST

static Suite *benchmsg_suite(void)
{
	Suite *s = suite_create("benchmsg");
	TCase *payload = tcase_create("payload");
	TCase *frame = tcase_create("frame");
	TCase *http = tcase_create("http");

	tcase_add_test(payload, test_payload_round_trip);
	tcase_add_test(payload, test_payload_sizes);
	tcase_add_test(payload, test_payload_refused);
	suite_add_tcase(s, payload);
	tcase_add_test(frame, test_scan_chatd_msg);
	tcase_add_test(frame, test_scan_other_frames);
	tcase_add_test(frame, test_scan_refused);
	suite_add_tcase(s, frame);
	tcase_add_test(http, test_http_split);
	tcase_add_test(http, test_http_refused);
	suite_add_tcase(s, http);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(benchmsg_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
