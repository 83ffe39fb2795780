/*
 * Unit tests for worker/multipart.c: boundary parameters, whole bodies fed
 * at every split point (and byte by byte) with the same events and data,
 * data that looks like a delimiter but is not, limits, syntax errors and a
 * callback that stops the parse.
 */
#include "worker/multipart.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIT(s) (s), (sizeof(s) - 1)

/* A record of the events, as text: "B<name>|<filename>|<type>" per begin,
 * the data bytes as they come, "E" per end. */
struct rec {
	char out[16384];
	size_t len;
	int stop_after;	/* stop at this event number (0: never) */
	int events;
};

static void rec_put(struct rec *r, const char *p, size_t n)
{
	ck_assert_uint_le(r->len + n, sizeof(r->out));
	memcpy(r->out + r->len, p, n);
	r->len += n;
}

static int record(void *ctx, enum ch_mp_event ev, const struct ch_mp_part *part,
		  const char *data, size_t len)
{
	struct rec *r = ctx;
	char line[2048];

	r->events++;
	switch (ev) {
	case CH_MP_PART_BEGIN:
		snprintf(line, sizeof(line), "B%s|%s|%s|", part->name, part->filename,
			 part->content_type);
		rec_put(r, line, strlen(line));
		break;
	case CH_MP_DATA:
		ck_assert_uint_gt(len, 0);
		rec_put(r, data, len);
		break;
	case CH_MP_PART_END:
		rec_put(r, "E", 1);
		break;
	}
	return r->stop_after && r->events >= r->stop_after;
}

/* Feed body in pieces cut at a and b (a <= b), each piece in an exact heap
 * copy so ASan sees any read past it. */
static int feed3(struct ch_multipart *m, const char *body, size_t n, size_t a, size_t b)
{
	size_t cut[4] = { 0, a, b, n };
	int rc = CH_MP_OK;

	for (int i = 0; i < 3 && rc == CH_MP_OK; i++) {
		size_t len = cut[i + 1] - cut[i];
		char *p = malloc(len ? len : 1);
		ck_assert_ptr_nonnull(p);
		memcpy(p, body + cut[i], len);
		rc = ch_mp_feed(m, p, len);
		free(p);
	}
	return rc;
}

static int parse(const char *boundary, const char *body, size_t n, size_t a, size_t b,
		 struct rec *r, int *done)
{
	struct ch_multipart *m = malloc(sizeof(*m));
	ck_assert_ptr_nonnull(m);
	ch_mp_init(m, boundary, record, r);
	int rc = feed3(m, body, n, a, b);
	*done = ch_mp_done(m);
	free(m);
	return rc;
}

/* Every split into two and three pieces gives the same result as one call. */
static void same_at_every_split(const char *boundary, const char *body, size_t n,
				const char *want, size_t want_len, int want_rc, int want_done)
{
	struct rec *whole = calloc(1, sizeof(*whole)), *r = calloc(1, sizeof(*r));
	int done;

	ck_assert_ptr_nonnull(whole);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(parse(boundary, body, n, n, n, whole, &done), want_rc);
	ck_assert_int_eq(done, want_done);
	if (want) {
		ck_assert_uint_eq(whole->len, want_len);
		ck_assert_mem_eq(whole->out, want, want_len);
	}
	for (size_t a = 0; a <= n; a++) {
		for (size_t b = a; b <= n; b += (n > 200 ? 7 : 1)) {
			memset(r, 0, sizeof(*r));
			ck_assert_int_eq(parse(boundary, body, n, a, b, r, &done), want_rc);
			ck_assert_int_eq(done, want_done);
			ck_assert_uint_eq(r->len, whole->len);
			ck_assert_mem_eq(r->out, whole->out, whole->len);
		}
	}
	free(whole);
	free(r);
}

START_TEST(boundary_param)
{
	char b[CH_MP_BOUNDARY_MAX + 1];

	ck_assert_int_eq(ch_mp_boundary(LIT("multipart/form-data; boundary=abc"), b, sizeof(b)), 0);
	ck_assert_str_eq(b, "abc");
	ck_assert_int_eq(ch_mp_boundary(LIT("Multipart/Form-Data;boundary=\"a b:c\""), b,
				       sizeof(b)), 0);
	ck_assert_str_eq(b, "a b:c");
	ck_assert_int_eq(ch_mp_boundary(LIT("multipart/form-data; charset=utf-8; "
					    "boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW"),
				       b, sizeof(b)), 0);
	ck_assert_str_eq(b, "----WebKitFormBoundary7MA4YWxkTrZu0gW");
	/* Refused: another type, no boundary, empty, a CR, too long, trailing space. */
	ck_assert_int_eq(ch_mp_boundary(LIT("multipart/mixed; boundary=abc"), b, sizeof(b)), -1);
	ck_assert_int_eq(ch_mp_boundary(LIT("multipart/form-data"), b, sizeof(b)), -1);
	ck_assert_int_eq(ch_mp_boundary(LIT("multipart/form-data; boundary="), b, sizeof(b)), -1);
	ck_assert_int_eq(ch_mp_boundary(LIT("multipart/form-data; boundary=\"a\rb\""), b,
				       sizeof(b)), -1);
	ck_assert_int_eq(ch_mp_boundary(LIT("multipart/form-data; boundary=\"ab \""), b,
				       sizeof(b)), -1);
	ck_assert_int_eq(ch_mp_boundary(LIT("multipart/form-data; boundary=x"
					    "12345678901234567890123456789012345678901234567890"
					    "12345678901234567890"), b, sizeof(b)), -1);
	ck_assert_int_eq(ch_mp_boundary(LIT("application/json"), b, sizeof(b)), -1);
	ck_assert_int_eq(ch_mp_boundary(LIT("multipart/form-data; boundary=a;"), b, sizeof(b)), -1);
}
END_TEST

START_TEST(two_parts)
{
	static const char body[] =
		"preamble to ignore\r\n"
		"--XyZ\r\n"
		"Content-Disposition: form-data; name=\"room\"\r\n"
		"\r\n"
		"general\r\n"
		"--XyZ  \r\n"
		"content-disposition: form-data; name=\"f\"; filename=\"C:\\a \\\"b\\\".png\"\r\n"
		"Content-Type:  image/png \r\n"
		"X-Other: x\r\n"
		"\r\n"
		"\x89PNG\r\n\x1a\n\r\n-\r\n--X\r\n--XyY\r\r\n--\0bin\r\n"
		"--XyZ--\r\n"
		"epilogue --XyZ garbage";
	static const char want[] =
		"Broom|||generalE"
		"Bf|C:\\a \"b\".png|image/png|\x89PNG\r\n\x1a\n\r\n-\r\n--X\r\n--XyY\r\r\n--\0binE";

	same_at_every_split("XyZ", LIT(body), LIT(want), CH_MP_OK, 1);
}
END_TEST

START_TEST(empty_and_first_line)
{
	/* No preamble, an empty part, a part whose data is exactly a CR. */
	static const char body[] =
		"--b\r\nContent-Disposition: form-data; name=e\r\n\r\n\r\n"
		"--b\r\nContent-Disposition: form-data; name=\"c\"\r\n\r\n\r\r\n"
		"--b--";
	static const char want[] = "Be|||EBc|||\rE";

	same_at_every_split("b", LIT(body), LIT(want), CH_MP_OK, 1);
}
END_TEST

START_TEST(truncated)
{
	static const char body[] =
		"--b\r\nContent-Disposition: form-data; name=f\r\n\r\nabc\r\n--b";
	static const char want[] = "Bf|||abcE";

	/* Well-formed so far, but not done: the caller answers 400. */
	same_at_every_split("b", LIT(body), LIT(want), CH_MP_OK, 0);
	same_at_every_split("b", LIT("--b\r\nContent-Disposition: form-data; name=f\r\n\r\nab\r\n-"),
			    LIT("Bf|||ab"), CH_MP_OK, 0);
}
END_TEST

START_TEST(syntax_errors)
{
	/* Something other than CRLF or "--" after a delimiter. */
	same_at_every_split("b", LIT("--bX\r\n"), NULL, 0, CH_MP_E_SYNTAX, 0);
	/* A bare LF ending a header line. */
	same_at_every_split("b", LIT("--b\r\nContent-Disposition: form-data; name=f\n\r\n"), NULL,
			    0, CH_MP_E_SYNTAX, 0);
	/* A part without Content-Disposition, or not form-data. */
	same_at_every_split("b", LIT("--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--"), NULL, 0,
			    CH_MP_E_SYNTAX, 0);
	same_at_every_split("b", LIT("--b\r\nContent-Disposition: attachment; name=f\r\n\r\n"),
			    NULL, 0, CH_MP_E_SYNTAX, 0);
	/* A header line without a colon, an unterminated quoted string. */
	same_at_every_split("b", LIT("--b\r\nnocolon\r\n\r\n"), NULL, 0, CH_MP_E_SYNTAX, 0);
	same_at_every_split("b", LIT("--b\r\nContent-Disposition: form-data; name=\"f\r\n\r\n"),
			    NULL, 0, CH_MP_E_SYNTAX, 0);
	/* A single '-' after the delimiter. */
	same_at_every_split("b", LIT("--b-x"), NULL, 0, CH_MP_E_SYNTAX, 0);
}
END_TEST

START_TEST(limits)
{
	size_t n = CH_MP_HEADERS_MAX + 64;
	char *body = malloc(n + 64);
	ck_assert_ptr_nonnull(body);
	int k = snprintf(body, 64, "--b\r\nX-Long: ");
	memset(body + k, 'a', n - (size_t)k);
	struct rec *r = calloc(1, sizeof(*r));
	int done;
	ck_assert_int_eq(parse("b", body, n, 1, 100, r, &done), CH_MP_E_TOO_LARGE);

	/* A filename over CH_MP_FILENAME_MAX. */
	k = snprintf(body, 64, "--b\r\nContent-Disposition: form-data; name=f; filename=");
	memset(body + k, 'n', CH_MP_FILENAME_MAX + 1);
	memcpy(body + k + CH_MP_FILENAME_MAX + 1, "\r\n\r\n", 4);
	memset(r, 0, sizeof(*r));
	ck_assert_int_eq(parse("b", body, (size_t)k + CH_MP_FILENAME_MAX + 5, 3, 50, r, &done),
			 CH_MP_E_TOO_LARGE);

	/* More than CH_MP_MAX_PARTS parts. */
	size_t pos = 0, cap = (CH_MP_MAX_PARTS + 2) * 64;
	char *many = malloc(cap);
	ck_assert_ptr_nonnull(many);
	for (int i = 0; i < CH_MP_MAX_PARTS + 1; i++)
		pos += (size_t)snprintf(many + pos, cap - pos,
					"--b\r\nContent-Disposition: form-data; name=p\r\n\r\n\r\n");
	memset(r, 0, sizeof(*r));
	ck_assert_int_eq(parse("b", many, pos, pos / 2, pos, r, &done), CH_MP_E_TOO_LARGE);
	free(many);
	free(body);
	free(r);
}
END_TEST

START_TEST(stop_and_sticky)
{
	static const char body[] =
		"--b\r\nContent-Disposition: form-data; name=f\r\n\r\nabc\r\n--b--";
	struct rec r = { .stop_after = 2 };
	struct ch_multipart *m = malloc(sizeof(*m));

	ck_assert_ptr_nonnull(m);
	ch_mp_init(m, "b", record, &r);
	ck_assert_int_eq(ch_mp_feed(m, LIT(body)), CH_MP_E_STOPPED);
	ck_assert_int_eq(r.events, 2);
	/* Sticky: nothing more is parsed or reported. */
	ck_assert_int_eq(ch_mp_feed(m, LIT("--b--")), CH_MP_E_STOPPED);
	ck_assert_int_eq(r.events, 2);
	ck_assert_int_eq(ch_mp_done(m), 0);
	free(m);
}
END_TEST

struct sink {
	size_t len;
	char *p;
};

static int collect(void *ctx, enum ch_mp_event ev, const struct ch_mp_part *part,
		   const char *data, size_t len)
{
	struct sink *got = ctx;
	(void)part;
	if (ev == CH_MP_DATA) {
		ck_assert_uint_le(got->len + len, 65536);
		memcpy(got->p + got->len, data, len);
		got->len += len;
	}
	return 0;
}

START_TEST(large_binary)
{
	/* 64 KiB of every byte value, with CR LF '-' runs mixed in, fed in
	 * uneven pieces: the data comes out unchanged. */
	size_t dn = 65536;
	const char *head = "--0123456789abcdef\r\nContent-Disposition: form-data; name=f; "
			   "filename=x.bin\r\n\r\n";
	const char *tail = "\r\n--0123456789abcdef--\r\n";
	size_t hn = strlen(head), tn = strlen(tail), n = hn + dn + tn;
	char *body = malloc(n);
	ck_assert_ptr_nonnull(body);
	memcpy(body, head, hn);
	for (size_t i = 0; i < dn; i++)
		body[hn + i] = (i % 97 < 8) ? "\r\n--0123"[i % 97] : (char)(i * 31 + 7);
	memcpy(body + hn + dn, tail, tn);

	struct sink got = { 0, malloc(dn) };
	ck_assert_ptr_nonnull(got.p);
	struct ch_multipart *m = malloc(sizeof(*m));
	ck_assert_ptr_nonnull(m);
	for (size_t step = 1; step <= 4099; step = step * 3 + 1) {
		got.len = 0;
		ch_mp_init(m, "0123456789abcdef", collect, &got);
		for (size_t i = 0; i < n; i += step)
			ck_assert_int_eq(ch_mp_feed(m, body + i, i + step > n ? n - i : step), 0);
		ck_assert_int_eq(ch_mp_done(m), 1);
		ck_assert_uint_eq(got.len, dn);
		ck_assert_mem_eq(got.p, body + hn, dn);
	}
	free(m);
	free(got.p);
	free(body);
}
END_TEST

static Suite *multipart_suite(void)
{
	Suite *s = suite_create("multipart");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, boundary_param);
	tcase_add_test(tc, two_parts);
	tcase_add_test(tc, empty_and_first_line);
	tcase_add_test(tc, truncated);
	tcase_add_test(tc, syntax_errors);
	tcase_add_test(tc, limits);
	tcase_add_test(tc, stop_and_sticky);
	tcase_add_test(tc, large_binary);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(multipart_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
