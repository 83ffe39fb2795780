/*
 * Unit tests for common/utf8.c: Markus Kuhn-style cases (boundary code
 * points, overlongs, surrogates, impossible bytes, truncated sequences),
 * the byte at which each error is found, every split point of each case
 * against the one-shot verdict, every 1- to 3-byte string and random longer
 * ones against a decoder written here from RFC 3629, and the 8-byte ASCII
 * step with a bad byte at every position and alignment.
 */
#include "common/utf8.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#define LIT(s) (s), (sizeof(s) - 1)
#define RANDOM_ROUNDS 200000
#define RANDOM_MAX_LEN 12
#define ASCII_RUN 64
#define MISALIGN 8

struct utf8_case {
	const char *name;
	const char *s;
	size_t n;
	enum ch_utf8_status want;
	long fail_at;	/* INVALID: index of the byte that makes it certain */
};

#define VALID(name, s) { name, LIT(s), CH_UTF8_COMPLETE, -1 }
#define PARTIAL(name, s) { name, LIT(s), CH_UTF8_PARTIAL, -1 }
#define INVALID(name, s, at) { name, LIT(s), CH_UTF8_INVALID, at }

static const struct utf8_case cases[] = {
	VALID("empty", ""),
	VALID("ascii", "Hello, world"),
	VALID("kosme", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"),
	VALID("U+0000", "\x00"),
	VALID("U+007F", "\x7f"),
	VALID("U+0080", "\xc2\x80"),
	VALID("U+07FF", "\xdf\xbf"),
	VALID("U+0800", "\xe0\xa0\x80"),
	VALID("U+D7FF", "\xed\x9f\xbf"),
	VALID("U+E000", "\xee\x80\x80"),
	VALID("U+FFFD", "\xef\xbf\xbd"),
	VALID("U+FFFE noncharacter", "\xef\xbf\xbe"),
	VALID("U+FFFF", "\xef\xbf\xbf"),
	VALID("U+10000", "\xf0\x90\x80\x80"),
	VALID("U+FFFFF", "\xf3\xbf\xbf\xbf"),
	VALID("U+100000", "\xf4\x80\x80\x80"),
	VALID("U+10FFFF", "\xf4\x8f\xbf\xbf"),
	VALID("mixed", "a\xc2\x80z\xe0\xa0\x80\xf0\x90\x80\x80!"),

	PARTIAL("lone C2", "\xc2"),
	PARTIAL("E0 A0", "\xe0\xa0"),
	PARTIAL("E1", "\xe1"),
	PARTIAL("ED 9F", "\xed\x9f"),
	PARTIAL("F0 90 80", "\xf0\x90\x80"),
	PARTIAL("F4 8F BF", "\xf4\x8f\xbf"),
	PARTIAL("ascii then F1", "abc\xf1"),

	INVALID("lone 80", "\x80", 0),
	INVALID("lone BF", "\xbf", 0),
	INVALID("80 BF", "\x80\xbf", 0),
	INVALID("ascii then tail", "abcdefghij\x80", 10),
	INVALID("two tails after 2-byte", "\xc2\x80\x80", 2),
	INVALID("C2 then space", "\xc2 ", 1),
	INVALID("E1 80 then space", "\xe1\x80 ", 2),
	INVALID("F1 80 80 then space", "\xf1\x80\x80 ", 3),
	INVALID("truncated then new lead", "\xe1\x80\xc2\x80", 2),
	INVALID("C0", "\xc0", 0),
	INVALID("C1", "\xc1", 0),
	INVALID("F5", "\xf5", 0),
	INVALID("F7", "\xf7", 0),
	INVALID("F8", "\xf8", 0),
	INVALID("FC", "\xfc", 0),
	INVALID("FE", "\xfe", 0),
	INVALID("FF", "\xff", 0),
	INVALID("overlong / 2", "\xc0\xaf", 0),
	INVALID("overlong / 3", "\xe0\x80\xaf", 1),
	INVALID("overlong / 4", "\xf0\x80\x80\xaf", 1),
	INVALID("overlong / 5", "\xf8\x80\x80\x80\xaf", 0),
	INVALID("overlong / 6", "\xfc\x80\x80\x80\x80\xaf", 0),
	INVALID("max overlong 2", "\xc1\xbf", 0),
	INVALID("max overlong 3", "\xe0\x9f\xbf", 1),
	INVALID("max overlong 4", "\xf0\x8f\xbf\xbf", 1),
	INVALID("overlong NUL 2", "\xc0\x80", 0),
	INVALID("overlong NUL 3", "\xe0\x80\x80", 1),
	INVALID("overlong NUL 4", "\xf0\x80\x80\x80", 1),
	INVALID("U+D800", "\xed\xa0\x80", 1),
	INVALID("U+DB7F", "\xed\xad\xbf", 1),
	INVALID("U+DB80", "\xed\xae\x80", 1),
	INVALID("U+DBFF", "\xed\xaf\xbf", 1),
	INVALID("U+DC00", "\xed\xb0\x80", 1),
	INVALID("U+DF80", "\xed\xbe\x80", 1),
	INVALID("U+DFFF", "\xed\xbf\xbf", 1),
	INVALID("surrogate pair", "\xed\xa0\x80\xed\xb0\x80", 1),
	INVALID("U+110000", "\xf4\x90\x80\x80", 1),
	INVALID("U+1FFFFF", "\xf7\xbf\xbf\xbf", 0),
	INVALID("valid then bad", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80" "edited", 12),
};

#define N_CASES (sizeof(cases) / sizeof(cases[0]))

static enum ch_utf8_status feed_pieces(const char *s, size_t n, size_t a, size_t b)
{
	struct ch_utf8 u;

	ch_utf8_init(&u);
	ch_utf8_feed(&u, s, a);
	ch_utf8_feed(&u, s + a, b - a);
	return ch_utf8_feed(&u, s + b, n - b);
}

START_TEST(test_case_one_shot)
{
	const struct utf8_case *c = &cases[_i];
	struct ch_utf8 u;
	enum ch_utf8_status got;

	ch_utf8_init(&u);
	got = ch_utf8_feed(&u, c->s, c->n);
	ck_assert_msg(got == c->want, "%s: got %d want %d", c->name, got, c->want);
	ck_assert_int_eq(ch_utf8_status(&u), got);
	ck_assert_int_eq(ch_utf8_valid(c->s, c->n), c->want == CH_UTF8_COMPLETE);
}
END_TEST

START_TEST(test_case_every_split)
{
	const struct utf8_case *c = &cases[_i];

	for (size_t a = 0; a <= c->n; a++) {
		for (size_t b = a; b <= c->n; b++) {
			enum ch_utf8_status got = feed_pieces(c->s, c->n, a, b);

			ck_assert_msg(got == c->want, "%s split %zu/%zu: got %d want %d",
				      c->name, a, b, got, c->want);
		}
	}
}
END_TEST

/* Byte at a time: INVALID exactly at fail_at (fail fast), never before. */
START_TEST(test_case_fail_position)
{
	const struct utf8_case *c = &cases[_i];
	struct ch_utf8 u;
	long first_bad = -1;

	ch_utf8_init(&u);
	for (size_t i = 0; i < c->n; i++) {
		if (ch_utf8_feed(&u, c->s + i, 1) == CH_UTF8_INVALID && first_bad < 0)
			first_bad = (long)i;
	}
	ck_assert_msg(first_bad == c->fail_at, "%s: failed at %ld, want %ld",
		      c->name, first_bad, c->fail_at);
}
END_TEST

START_TEST(test_invalid_is_sticky)
{
	struct ch_utf8 u;

	ch_utf8_init(&u);
	ck_assert_int_eq(ch_utf8_feed(&u, LIT("\xff")), CH_UTF8_INVALID);
	ck_assert_int_eq(ch_utf8_feed(&u, LIT("plain ascii text")), CH_UTF8_INVALID);
	ck_assert_int_eq(ch_utf8_feed(&u, NULL, 0), CH_UTF8_INVALID);
	ch_utf8_init(&u);
	ck_assert_int_eq(ch_utf8_feed(&u, NULL, 0), CH_UTF8_COMPLETE);
	ck_assert_int_eq(ch_utf8_feed(&u, LIT("\xe2\x82")), CH_UTF8_PARTIAL);
	ck_assert_int_eq(ch_utf8_feed(&u, NULL, 0), CH_UTF8_PARTIAL);
	ck_assert_int_eq(ch_utf8_feed(&u, LIT("\xac")), CH_UTF8_COMPLETE);	/* U+20AC */
}
END_TEST

/*
 * Reference: decode from the definition (RFC 3629 section 3): the lead
 * byte's high bits give the length, each tail is 10xxxxxx, and the code
 * point must need that length, not be a surrogate, and be <= U+10FFFF.
 */
static int ref_valid(const unsigned char *s, size_t n)
{
	static const unsigned long min_cp[] = { 0, 0, 0x80, 0x800, 0x10000 };
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];
		size_t len;
		unsigned long cp;

		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xE0) == 0xC0) {
			len = 2;
			cp = c & 0x1F;
		} else if ((c & 0xF0) == 0xE0) {
			len = 3;
			cp = c & 0x0F;
		} else if ((c & 0xF8) == 0xF0) {
			len = 4;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (n - i < len)
			return 0;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return 0;
		i += len;
	}
	return 1;
}

/* Every string of 1, 2 and 3 bytes (16.8 million) against the reference. */
START_TEST(test_exhaustive_short)
{
	unsigned char b[3];
	unsigned long mismatches = 0;

	for (unsigned x = 0; x < 256; x++) {
		b[0] = (unsigned char)x;
		mismatches += ch_utf8_valid(b, 1) != ref_valid(b, 1);
		for (unsigned y = 0; y < 256; y++) {
			b[1] = (unsigned char)y;
			mismatches += ch_utf8_valid(b, 2) != ref_valid(b, 2);
			for (unsigned z = 0; z < 256; z++) {
				b[2] = (unsigned char)z;
				mismatches += ch_utf8_valid(b, 3) != ref_valid(b, 3);
			}
		}
	}
	ck_assert_uint_eq(mismatches, 0);
}
END_TEST

/* Random strings drawn mostly from interesting bytes, fed in random pieces. */
START_TEST(test_random_against_reference)
{
	static const unsigned char pool[] = {
		'a', 0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2,
		0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff,
	};
	unsigned char s[RANDOM_MAX_LEN];
	int valid_seen = 0;

	srand(1234);
	for (int r = 0; r < RANDOM_ROUNDS; r++) {
		size_t n = (size_t)rand() % (RANDOM_MAX_LEN + 1);
		size_t a, b;
		int want;
		enum ch_utf8_status got;

		for (size_t i = 0; i < n; i++) {
			s[i] = (rand() & 1) ? pool[rand() % (int)sizeof(pool)]
					    : (unsigned char)rand();
		}
		want = ref_valid(s, n);
		valid_seen += want;
		ck_assert_int_eq(ch_utf8_valid(s, n), want);
		a = n ? (size_t)rand() % (n + 1) : 0;
		b = a + (n - a ? (size_t)rand() % (n - a + 1) : 0);
		got = feed_pieces((const char *)s, n, a, b);
		ck_assert_int_eq(got == CH_UTF8_COMPLETE, want);
	}
	/* The generator must reach both verdicts, or the test proves little. */
	ck_assert_int_gt(valid_seen, RANDOM_ROUNDS / 100);
	ck_assert_int_lt(valid_seen, RANDOM_ROUNDS - RANDOM_ROUNDS / 100);
}
END_TEST

/* One bad byte at every position of an ASCII run, at every alignment. */
START_TEST(test_ascii_fast_path)
{
	char buf[ASCII_RUN + MISALIGN];

	for (size_t off = 0; off < MISALIGN; off++) {
		char *s = buf + off;

		memset(s, 'x', ASCII_RUN);
		ck_assert(ch_utf8_valid(s, ASCII_RUN));
		for (size_t bad = 0; bad < ASCII_RUN; bad++) {
			s[bad] = (char)0x80;
			ck_assert_msg(!ch_utf8_valid(s, ASCII_RUN), "off %zu bad %zu", off, bad);
			/* A whole character there is fine. */
			if (bad + 1 < ASCII_RUN) {
				s[bad] = (char)0xc3;
				s[bad + 1] = (char)0xa9;
				ck_assert(ch_utf8_valid(s, ASCII_RUN));
				s[bad + 1] = 'x';
				/* A lead at the end of the run is PARTIAL, not OK. */
				ck_assert(!ch_utf8_valid(s, bad + 1));
			}
			s[bad] = 'x';
		}
	}
}
END_TEST

static Suite *utf8_suite(void)
{
	Suite *s = suite_create("utf8");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_case_one_shot, 0, N_CASES);
	tcase_add_loop_test(tc, test_case_every_split, 0, N_CASES);
	tcase_add_loop_test(tc, test_case_fail_position, 0, N_CASES);
	tcase_add_test(tc, test_invalid_is_sticky);
	tcase_add_test(tc, test_exhaustive_short);
	tcase_add_test(tc, test_random_against_reference);
	tcase_add_test(tc, test_ascii_fast_path);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(utf8_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
