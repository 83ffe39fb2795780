/*
 * Message frames (journal/frame.h): the WebSocket header at each length
 * boundary, the msg frame's JSON, and the history element taken back out
 * of a frame, which must equal the one built from the message itself for
 * every header size, with and without an id, and with text that needs
 * escaping; bytes that are not a msg frame are refused.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "journal/frame.h"

/* The frame of a message whose content is len bytes of c. */
static void make_frame(struct ch_buf *f, size_t len, char c, const char *id)
{
	char *content = malloc(len + 1);

	ck_assert_ptr_nonnull(content);
	memset(content, c, len);
	ch_buf_init(f);
	ch_msg_frame(f, "general", 7, 42, "ann", 3, content, len, 1700000000123ull, id,
		     strlen(id));
	ck_assert(!f->failed);
	free(content);
}

START_TEST(test_header_sizes)
{
	static const struct { size_t len; size_t hl; } cases[] = {
		{ 0, 2 }, { 125, 2 }, { 126, 4 }, { 65535, 4 }, { 65536, 10 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ch_buf b;
		ch_buf_init(&b);
		ch_text_frame_header(&b, cases[i].len);
		ck_assert_uint_eq(b.len, cases[i].hl);
		ck_assert_uint_eq((uint8_t)b.p[0], 0x81);
		ch_buf_free(&b);
	}
}
END_TEST

static void expect_text(const struct ch_buf *b, const char *want)
{
	ck_assert(!b->failed);
	ck_assert_uint_eq(b->len, strlen(want));
	ck_assert(memcmp(b->p, want, b->len) == 0);
}

START_TEST(test_msg_json)
{
	struct ch_buf b;

	ch_buf_init(&b);
	ch_msg_json(&b, 1, "r", 1, 7, "u", 1, "a\"b\n", 4, 5, "c1", 2);
	expect_text(&b, "{\"type\":\"msg\",\"room\":\"r\",\"seq\":7,\"from\":\"u\","
			"\"content\":\"a\\\"b\\n\",\"ts\":5,\"id\":\"c1\"}");
	b.len = 0;
	ch_msg_json(&b, 0, "r", 1, 7, "u", 1, "x", 1, 5, "", 0);
	expect_text(&b, "{\"room\":\"r\",\"seq\":7,\"from\":\"u\",\"content\":\"x\",\"ts\":5}");
	ch_buf_free(&b);
}
END_TEST

/* Content lengths around the 2- and 4-byte header boundaries. */
static const size_t lengths[] = { 0, 1, 40, 60, 200, 1000, 60000 };

START_TEST(test_history_from_frame)
{
	const char *id = _i % 2 ? "client-9" : "";
	size_t len = lengths[_i / 2];
	char *content = malloc(len + 1);
	struct ch_buf f, got, want;

	ck_assert_ptr_nonnull(content);
	memset(content, '"', len);	/* every byte escaped: JSON grows */
	make_frame(&f, len, '"', id);
	ch_buf_init(&got);
	ch_buf_init(&want);
	ck_assert_int_eq(ch_msg_frame_history(&got, f.p, f.len), 0);
	ch_msg_json(&want, 0, "general", 7, 42, "ann", 3, content, len, 1700000000123ull, id,
		    strlen(id));
	ck_assert_uint_eq(got.len, want.len);
	ck_assert(memcmp(got.p, want.p, got.len) == 0);
	ch_buf_free(&f);
	ch_buf_free(&got);
	ch_buf_free(&want);
	free(content);
}
END_TEST

START_TEST(test_not_a_msg_frame)
{
	struct ch_buf f, out;
	static const char pong[] = "\x81\x0f{\"type\":\"pong\"}";

	make_frame(&f, 10, 'x', "");
	ch_buf_init(&out);
	ck_assert_int_eq(ch_msg_frame_history(&out, f.p, f.len - 1), -1);	/* short */
	ck_assert_int_eq(ch_msg_frame_history(&out, f.p, 1), -1);
	ck_assert_int_eq(ch_msg_frame_history(&out, pong, sizeof(pong) - 1), -1);
	f.p[0] = (char)0x82;	/* binary */
	ck_assert_int_eq(ch_msg_frame_history(&out, f.p, f.len), -1);
	ck_assert_uint_eq(out.len, 0);
	ch_buf_free(&f);
	ch_buf_free(&out);
}
END_TEST

static Suite *frame_suite(void)
{
	Suite *s = suite_create("frame");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_header_sizes);
	tcase_add_test(tc, test_msg_json);
	tcase_add_loop_test(tc, test_history_from_frame, 0,
			    (int)(2 * sizeof(lengths) / sizeof(lengths[0])));
	tcase_add_test(tc, test_not_a_msg_frame);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(frame_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
