/*
 * Growable buffers and JSON strings (common/buf.h).
 *
 * Covered: appends and growth past the first allocation, ch_buf_printf
 * growth, ch_buf_u64 at its edges and against printf, the failed flag (set
 * by a real allocation failure and by hand: every later append is
 * ignored), and ch_json_str: every byte 0x00..0x7F alone, every ASCII
 * control character together, random valid UTF-8, checked three ways: the
 * exact escape, a strict RFC 8259 string checker written here (grammar and
 * UTF-8), and cJSON parsing the output back to the exact input bytes; and
 * input that is not UTF-8, which must still give valid JSON text, each bad
 * byte as U+FFFD. Sizes that overflow ch_buf_reserve are refused.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"

#define FIRST_CAP 256		/* CH_BUF_MIN in buf.c: the first allocation */
#define RANDOM_ROUNDS 3000
#define RANDOM_MAX_CHARS 200
#define HUGE_RESERVE ((size_t)1 << 62)	/* no allocator grants this */
#define HANG_TIMEOUT_S 2

/* The allocation failure test asks for HUGE_RESERVE bytes: under ASan the
 * allocator must say NULL rather than abort. Harmless without ASan. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "allocator_may_return_null=1";
}

/* ---------------------------------------------------------------------- */
/* Helpers: a strict UTF-8 check and a strict JSON string decoder         */

/* Length of the valid UTF-8 character at p (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), or 0 if there is none. */
static size_t utf8_char(const unsigned char *p, size_t n)
{
	uint32_t cp;
	size_t len;

	if (n == 0)
		return 0;
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xC2 && p[0] <= 0xDF) {
		len = 2;
		cp = p[0] & 0x1F;
	} else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
		len = 3;
		cp = p[0] & 0x0F;
	} else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3F);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

static int utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < n) {
		size_t len = utf8_char(p + i, n - i);
		if (len == 0)
			return 0;
		i += len;
	}
	return 1;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static size_t put_utf8(char *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	out[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/*
 * Decode the JSON string literal j[0..n) (exactly one string, nothing
 * around it) into out (cap at least n). Strict RFC 8259: valid UTF-8, no
 * raw control character, only the defined escapes; \u escapes of BMP
 * characters only (ch_json_str makes no others). Returns the decoded
 * length, or -1 with a reason in *why.
 */
static long json_decode(const char *j, size_t n, char *out, const char **why)
{
	size_t i = 1, o = 0;

	*why = "not a string";
	if (n < 2 || j[0] != '"' || j[n - 1] != '"')
		return -1;
	if (!utf8_valid(j, n)) {
		*why = "not valid UTF-8";
		return -1;
	}
	while (i < n - 1) {
		unsigned char c = (unsigned char)j[i];
		if (c < 0x20) {
			*why = "raw control character";
			return -1;
		}
		if (c == '"') {
			*why = "unescaped quote";
			return -1;
		}
		if (c != '\\') {
			out[o++] = (char)c;
			i++;
			continue;
		}
		if (i + 1 >= n - 1) {
			*why = "backslash escapes the closing quote";
			return -1;
		}
		char e = j[i + 1];
		i += 2;
		switch (e) {
		case '"': out[o++] = '"'; break;
		case '\\': out[o++] = '\\'; break;
		case '/': out[o++] = '/'; break;
		case 'b': out[o++] = '\b'; break;
		case 'f': out[o++] = '\f'; break;
		case 'n': out[o++] = '\n'; break;
		case 'r': out[o++] = '\r'; break;
		case 't': out[o++] = '\t'; break;
		case 'u': {
			uint32_t cp = 0;
			if (i + 4 > n - 1) {
				*why = "short \\u escape";
				return -1;
			}
			for (int k = 0; k < 4; k++) {
				int h = hexval(j[i + (size_t)k]);
				if (h < 0) {
					*why = "bad hex digit";
					return -1;
				}
				cp = cp << 4 | (uint32_t)h;
			}
			if (cp >= 0xD800 && cp <= 0xDFFF) {
				*why = "surrogate escape";
				return -1;
			}
			i += 4;
			o += put_utf8(out + o, cp);
			break;
		}
		default:
			*why = "unknown escape";
			return -1;
		}
	}
	return (long)o;
}

/* ch_json_str(s, n) alone is a valid JSON string that decodes to s[0..n),
 * by the strict decoder above and, when s has no NUL (cJSON's strings are
 * C strings), by cJSON. */
static void check_json_roundtrip(const char *s, size_t n)
{
	struct ch_buf b;
	const char *why = "";

	ch_buf_init(&b);
	ch_json_str(&b, s, n);
	ck_assert_int_eq(b.failed, 0);
	ck_assert_uint_ge(b.len, n + 2);
	char *dec = malloc(b.len + 1);
	ck_assert_ptr_nonnull(dec);
	long got = json_decode(b.p, b.len, dec, &why);
	ck_assert_msg(got >= 0, "ch_json_str output %.*s is not a JSON string: %s",
		      (int)b.len, b.p, why);
	ck_assert_uint_eq((size_t)got, n);
	ck_assert_int_eq(memcmp(dec, s, n), 0);
	free(dec);

	if (memchr(s, '\0', n) == NULL) {
		cJSON *j = cJSON_ParseWithLength(b.p, b.len);
		ck_assert_msg(j != NULL, "cJSON refused %.*s", (int)b.len, b.p);
		ck_assert(cJSON_IsString(j));
		ck_assert_uint_eq(strlen(j->valuestring), n);
		ck_assert_int_eq(memcmp(j->valuestring, s, n), 0);
		cJSON_Delete(j);
	}
	ch_buf_free(&b);
}

/* Random valid UTF-8 of up to max_chars characters from every length
 * class; NUL only when allow_nul. Returns the byte length. */
static size_t random_utf8(char *out, size_t max_chars, int allow_nul, unsigned *seed)
{
	size_t chars = (size_t)rand_r(seed) % (max_chars + 1), o = 0;

	for (size_t i = 0; i < chars; i++) {
		uint32_t cp;
		switch (rand_r(seed) % 6) {
		case 0: cp = (uint32_t)rand_r(seed) % 0x20; break;		/* controls */
		case 1: cp = 0x20 + (uint32_t)rand_r(seed) % 0x60; break;	/* ASCII */
		case 2: cp = "\"\\/\x7f"[rand_r(seed) % 4]; break;
		case 3: cp = 0x80 + (uint32_t)rand_r(seed) % (0x800 - 0x80); break;
		case 4:
			do
				cp = 0x800 + (uint32_t)rand_r(seed) % (0x10000 - 0x800);
			while (cp >= 0xD800 && cp <= 0xDFFF);
			break;
		default: cp = 0x10000 + (uint32_t)rand_r(seed) % (0x110000 - 0x10000); break;
		}
		if (cp == 0 && !allow_nul)
			cp = 1;
		o += put_utf8(out + o, cp);
	}
	return o;
}

/* ---------------------------------------------------------------------- */
/* Buffers                                                                */

START_TEST(test_append_and_grow)
{
	struct ch_buf b;
	char expect[10000];
	size_t n = 0;

	ch_buf_init(&b);
	ck_assert_ptr_null(b.p);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_uint_eq(b.cap, 0);
	ck_assert_int_eq(b.failed, 0);
	/* An empty append allocates nothing, even with a NULL pointer. */
	ch_buf_append(&b, NULL, 0);
	ch_buf_puts(&b, "");
	ck_assert_uint_eq(b.len, 0);

	for (unsigned i = 0; n + 64 < sizeof(expect); i++) {
		char piece[64];
		int len = snprintf(piece, sizeof(piece), "<%u:%.*s>", i, (int)(i % 37),
				   "abcdefghijklmnopqrstuvwxyz0123456789!");
		if (i % 2)
			ch_buf_append(&b, piece, (size_t)len);
		else
			ch_buf_puts(&b, piece);
		memcpy(expect + n, piece, (size_t)len);
		n += (size_t)len;
		ck_assert_uint_eq(b.len, n);
		ck_assert_uint_ge(b.cap, b.len);
	}
	ck_assert_uint_gt(b.cap, 4 * FIRST_CAP);
	ck_assert_int_eq(memcmp(b.p, expect, n), 0);
	ck_assert_int_eq(b.failed, 0);
	ch_buf_free(&b);
	ck_assert_ptr_null(b.p);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_uint_eq(b.cap, 0);
}
END_TEST

START_TEST(test_reserve)
{
	struct ch_buf b;

	ch_buf_init(&b);
	ck_assert_int_eq(ch_buf_reserve(&b, 1), 0);
	ck_assert_uint_ge(b.cap, 1);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_int_eq(ch_buf_reserve(&b, 5000), 0);
	ck_assert_uint_ge(b.cap, 5000);
	/* The reserved space is writable (ASan would see otherwise). */
	memset(b.p, 'x', 5000);
	size_t cap = b.cap;
	ch_buf_append(&b, b.p, 0);
	ck_assert_int_eq(ch_buf_reserve(&b, cap), 0);	/* fits exactly */
	ck_assert_uint_eq(b.cap, cap);
	ch_buf_append(&b, "abc", 3);
	ck_assert_int_eq(ch_buf_reserve(&b, cap - 3), 0);
	ck_assert_uint_eq(b.cap, cap);
	ck_assert_int_eq(ch_buf_reserve(&b, cap - 2), 0);
	ck_assert_uint_ge(b.cap, cap + 1);
	ck_assert_int_eq(memcmp(b.p, "abc", 3), 0);
	ch_buf_free(&b);
}
END_TEST

START_TEST(test_printf_growth)
{
	struct ch_buf b;
	char expect[20000];
	char big[3000];
	size_t n = 0;

	memset(big, 'q', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ch_buf_init(&b);
	/* An empty result changes nothing. */
	ch_buf_printf(&b, "%s", "");
	ck_assert_uint_eq(b.len, 0);
	for (unsigned i = 0; i < 40; i++) {
		size_t w = (size_t)(i * 97) % 1000;
		int len = snprintf(expect + n, sizeof(expect) - n, "[%u|%.*s|%" PRIu64 "]", i,
				   (int)w, big, (uint64_t)i * 1000003u);
		ck_assert_int_gt(len, 0);
		ck_assert_uint_lt(n + (size_t)len, sizeof(expect));
		ch_buf_printf(&b, "[%u|%.*s|%" PRIu64 "]", i, (int)w, big,
			      (uint64_t)i * 1000003u);
		n += (size_t)len;
		ck_assert_uint_eq(b.len, n);
		ck_assert_int_eq(memcmp(b.p, expect, n), 0);
	}
	/* A result exactly filling the spare room, and one a byte over. */
	ch_buf_free(&b);
	ch_buf_init(&b);
	ch_buf_printf(&b, "%.*s", FIRST_CAP - 1, big);
	ck_assert_uint_eq(b.len, FIRST_CAP - 1);
	ch_buf_printf(&b, "%s", "Z");
	ck_assert_uint_eq(b.len, FIRST_CAP);
	ck_assert_int_eq(b.p[FIRST_CAP - 1], 'Z');
	ch_buf_printf(&b, "%s", "Y");
	ck_assert_uint_eq(b.len, FIRST_CAP + 1);
	ck_assert_int_eq(b.p[FIRST_CAP], 'Y');
	ck_assert_int_eq(b.failed, 0);
	ch_buf_free(&b);
}
END_TEST

static void check_u64(uint64_t v)
{
	struct ch_buf b;
	char expect[32];

	ch_buf_init(&b);
	ch_buf_puts(&b, "x=");
	ch_buf_u64(&b, v);
	ch_buf_puts(&b, ";");
	int n = snprintf(expect, sizeof(expect), "x=%" PRIu64 ";", v);
	ck_assert_uint_eq(b.len, (size_t)n);
	ck_assert_msg(memcmp(b.p, expect, (size_t)n) == 0, "%" PRIu64 " written as %.*s", v,
		      (int)b.len, b.p);
	ch_buf_free(&b);
}

START_TEST(test_u64)
{
	struct ch_buf b;
	unsigned seed = 12345;

	ch_buf_init(&b);
	ch_buf_u64(&b, 0);
	ck_assert_uint_eq(b.len, 1);
	ck_assert_int_eq(b.p[0], '0');
	ch_buf_u64(&b, 1);
	ch_buf_u64(&b, UINT64_MAX);
	ck_assert_uint_eq(b.len, 2 + 20);
	ck_assert_int_eq(memcmp(b.p, "0118446744073709551615", b.len), 0);
	ch_buf_free(&b);

	check_u64(0);
	check_u64(1);
	check_u64(UINT64_MAX);
	check_u64(UINT64_MAX - 1);
	for (uint64_t p = 1; p <= UINT64_MAX / 10; p *= 10) {
		check_u64(p - 1);
		check_u64(p);
		check_u64(p * 10 - 1);
	}
	for (int i = 0; i < 1000; i++) {
		uint64_t v = (uint64_t)rand_r(&seed) << 33 ^ (uint64_t)rand_r(&seed) << 11 ^
			     (uint64_t)rand_r(&seed);
		check_u64(v >> (rand_r(&seed) % 64));
	}
}
END_TEST

/* A buffer that failed ignores every later append, whatever kind, and
 * keeps what it held. */
static void check_ignores_appends(struct ch_buf *b)
{
	size_t len = b->len, cap = b->cap;
	char *p = b->p;

	ch_buf_append(b, "abc", 3);
	ch_buf_puts(b, "def");
	ch_buf_printf(b, "%d", 42);
	ch_buf_u64(b, 7);
	ch_json_str(b, "x", 1);
	ch_json_key(b, "k");
	ck_assert_int_eq(ch_buf_reserve(b, 1), -1);
	ck_assert_int_eq(b->failed, 1);
	ck_assert_uint_eq(b->len, len);
	ck_assert_uint_eq(b->cap, cap);
	ck_assert_ptr_eq(b->p, p);
}

START_TEST(test_failed_flag_set_by_hand)
{
	struct ch_buf b;

	ch_buf_init(&b);
	ch_buf_puts(&b, "kept");
	b.failed = 1;
	check_ignores_appends(&b);
	ck_assert_int_eq(memcmp(b.p, "kept", 4), 0);
	/* Free resets it: the buffer is usable again. */
	ch_buf_free(&b);
	ck_assert_int_eq(b.failed, 0);
	ch_buf_puts(&b, "again");
	ck_assert_uint_eq(b.len, 5);
	ch_buf_free(&b);
}
END_TEST

START_TEST(test_failed_flag_on_alloc_failure)
{
	struct ch_buf b;

	ch_buf_init(&b);
	ch_buf_puts(&b, "kept");
	ck_assert_int_eq(ch_buf_reserve(&b, HUGE_RESERVE), -1);
	ck_assert_int_eq(b.failed, 1);
	ck_assert_uint_eq(b.len, 4);
	ck_assert_int_eq(memcmp(b.p, "kept", 4), 0);
	check_ignores_appends(&b);
	ch_buf_free(&b);

	/* The same through an append that cannot grow an empty buffer. */
	ch_buf_init(&b);
	ck_assert_int_eq(ch_buf_reserve(&b, HUGE_RESERVE), -1);
	ck_assert_int_eq(b.failed, 1);
	ck_assert_ptr_null(b.p);
	check_ignores_appends(&b);
	ch_buf_free(&b);
}
END_TEST

/*
 * A size that would wrap "len + more" around is refused (-1, failed set),
 * not granted: ch_buf_reserve(b, SIZE_MAX) on a non-empty buffer once
 * returned 0 without any space, and a caller trusting it wrote past the
 * allocation.
 */
START_TEST(test_reserve_size_overflow)
{
	struct ch_buf b;

	ch_buf_init(&b);
	ch_buf_puts(&b, "0123456789");
	ck_assert_int_eq(ch_buf_reserve(&b, SIZE_MAX), -1);
	ck_assert_int_eq(b.failed, 1);
	ch_buf_free(&b);
}
END_TEST

/*
 * A size above SIZE_MAX / 2 is refused rather than looping: the doubling
 * "cap *= 2" once wrapped to 0 and the call never returned. A regression
 * fails by timing out.
 */
START_TEST(test_reserve_doubling_overflow)
{
	struct ch_buf b;

	ch_buf_init(&b);
	ck_assert_int_eq(ch_buf_reserve(&b, SIZE_MAX / 2 + 2), -1);
	ck_assert_int_eq(b.failed, 1);
	ch_buf_free(&b);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* JSON strings                                                           */

/* Every byte below 0x80 alone: the exact escape, then the round trip. */
START_TEST(test_json_str_each_ascii_byte)
{
	for (unsigned c = 0; c < 0x80; c++) {
		struct ch_buf b;
		char in = (char)c;

		ch_buf_init(&b);
		ch_json_str(&b, &in, 1);
		ck_assert_uint_ge(b.len, 3);
		ck_assert_int_eq(b.p[0], '"');
		ck_assert_int_eq(b.p[b.len - 1], '"');
		const char *body = b.p + 1;
		size_t blen = b.len - 2;
		const char *shortesc = NULL;
		switch (c) {
		case '"': shortesc = "\\\""; break;
		case '\\': shortesc = "\\\\"; break;
		case '\b': shortesc = "\\b"; break;
		case '\f': shortesc = "\\f"; break;
		case '\n': shortesc = "\\n"; break;
		case '\r': shortesc = "\\r"; break;
		case '\t': shortesc = "\\t"; break;
		default: break;
		}
		if (shortesc) {
			ck_assert_uint_eq(blen, 2);
			ck_assert_int_eq(memcmp(body, shortesc, 2), 0);
		} else if (c < 0x20) {
			/* \u00XX, hex digits either case. */
			ck_assert_msg(blen == 6 && memcmp(body, "\\u00", 4) == 0,
				      "byte 0x%02x written as %.*s", c, (int)b.len, b.p);
			ck_assert_int_eq(hexval(body[4]) * 16 + hexval(body[5]), (int)c);
		} else if (c == 0x7F) {
			/* DEL may stay raw or be escaped; both are JSON. */
			ck_assert(blen == 1 || (blen == 6 && memcmp(body, "\\u007", 5) == 0));
		} else {
			ck_assert_msg(blen == 1 && body[0] == (char)c,
				      "printable byte 0x%02x written as %.*s", c, (int)b.len, b.p);
		}
		ch_buf_free(&b);
		check_json_roundtrip(&in, 1);
	}
}
END_TEST

START_TEST(test_json_str_all_controls)
{
	char s[256];
	size_t n = 0;

	n += (size_t)snprintf(s + n, sizeof(s) - n, "start ");
	for (unsigned c = 1; c < 0x20; c++) {
		s[n++] = (char)c;
		s[n++] = 'a';
	}
	s[n++] = 0x7F;
	n += (size_t)snprintf(s + n, sizeof(s) - n, " \"q\" \\b\\ / \\u0041 end");
	check_json_roundtrip(s, n);

	/* With NULs, at the start, the middle and the end. */
	static const char nuls[] = "\0a\0\0b\"\\\0";
	check_json_roundtrip(nuls, sizeof(nuls) - 1);
	struct ch_buf b;
	ch_buf_init(&b);
	ch_json_str(&b, nuls, 1);
	ck_assert_uint_eq(b.len, 8);
	ck_assert_int_eq(memcmp(b.p, "\"\\u0000\"", 8), 0);
	/* Empty string. */
	ch_buf_free(&b);
	ch_json_str(&b, "", 0);
	ck_assert_uint_eq(b.len, 2);
	ck_assert_int_eq(memcmp(b.p, "\"\"", 2), 0);
	ch_buf_free(&b);
}
END_TEST

START_TEST(test_json_str_random_utf8)
{
	unsigned seed = 20240601;
	char s[RANDOM_MAX_CHARS * 4];

	for (int round = 0; round < RANDOM_ROUNDS; round++) {
		size_t n = random_utf8(s, RANDOM_MAX_CHARS, round % 2, &seed);
		ck_assert(utf8_valid(s, n));
		check_json_roundtrip(s, n);
	}
}
END_TEST

/* Strings appended after other content, inside a larger document that
 * cJSON parses: the escaping is correct wherever the buffer stands, also
 * when the string makes it grow. */
START_TEST(test_json_document)
{
	struct ch_buf b;
	unsigned seed = 77;
	char vals[50][400];
	size_t lens[50];

	ch_buf_init(&b);
	ch_buf_puts(&b, "{");
	for (int i = 0; i < 50; i++) {
		char key[32];
		snprintf(key, sizeof(key), "k\"%d\n", i);
		lens[i] = random_utf8(vals[i], 90, 0, &seed);
		if (i)
			ch_buf_puts(&b, ",");
		ch_json_key(&b, key);
		ch_buf_puts(&b, "[");
		ch_json_str(&b, vals[i], lens[i]);
		ch_buf_puts(&b, ",");
		ch_buf_u64(&b, UINT64_MAX - (uint64_t)i);
		ch_buf_puts(&b, "]");
	}
	ch_buf_puts(&b, "}");
	ck_assert_int_eq(b.failed, 0);
	ck_assert(utf8_valid(b.p, b.len));

	cJSON *root = cJSON_ParseWithLength(b.p, b.len);
	ck_assert_msg(root != NULL, "cJSON refused the document");
	ck_assert_int_eq(cJSON_GetArraySize(root), 50);
	for (int i = 0; i < 50; i++) {
		char key[32];
		snprintf(key, sizeof(key), "k\"%d\n", i);
		cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, key);
		ck_assert_msg(cJSON_IsArray(arr), "member %d missing", i);
		cJSON *str = cJSON_GetArrayItem(arr, 0);
		ck_assert(cJSON_IsString(str));
		ck_assert_uint_eq(strlen(str->valuestring), lens[i]);
		ck_assert_int_eq(memcmp(str->valuestring, vals[i], lens[i]), 0);
		ck_assert(cJSON_IsNumber(cJSON_GetArrayItem(arr, 1)));
	}
	cJSON_Delete(root);
	ch_buf_free(&b);
}
END_TEST

START_TEST(test_json_key)
{
	struct ch_buf b;

	ch_buf_init(&b);
	ch_json_key(&b, "a\"b");
	ck_assert_uint_eq(b.len, 7);
	ck_assert_int_eq(memcmp(b.p, "\"a\\\"b\":", 7), 0);
	ch_buf_free(&b);
}
END_TEST

/*
 * The output is valid UTF-8 (so valid JSON text, RFC 8259 section 8.1)
 * whatever the input: bytes 0x80..0xFF that do not form a valid UTF-8
 * character each become U+FFFD. They once went out raw, and a WebSocket
 * text frame carrying them is refused by every browser (close 1007), which
 * would drop every member of the room; POST /api/send takes "content"
 * from cJSON, which does not check UTF-8.
 */
START_TEST(test_json_str_high_bytes_valid_utf8)
{
	for (unsigned c = 0x80; c <= 0xFF; c++) {
		struct ch_buf b;
		char in[3] = { 'a', (char)c, 'z' };

		ch_buf_init(&b);
		ch_json_str(&b, in, sizeof(in));
		ck_assert_msg(utf8_valid(b.p, b.len),
			      "input byte 0x%02x: output is not valid UTF-8", c);
		ch_buf_free(&b);
	}
}
END_TEST

/* Reference for the rule above: valid characters kept, every byte that
 * does not start one replaced by U+FFFD (EF BF BD). */
static size_t replace_invalid(const char *s, size_t n, char *out)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, o = 0;

	while (i < n) {
		size_t len = utf8_char(p + i, n - i);
		if (len == 0) {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		} else {
			memcpy(out + o, s + i, len);
			o += len;
			i += len;
		}
	}
	return o;
}

/* Random bytes, rich in lead and continuation bytes and in valid
 * characters: the output is a valid JSON string and decodes to the input
 * with each invalid byte replaced. */
START_TEST(test_hex)
{
	static const unsigned char in[] = { 0x00, 0x0f, 0xa5, 0xff };
	char out[2 * sizeof(in) + 1];

	memset(out, 'x', sizeof(out));
	ch_hex(in, sizeof(in), out);
	ck_assert_str_eq(out, "000fa5ff");
	ch_hex(in, 0, out);
	ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(test_json_str_invalid_utf8_replaced)
{
	static const unsigned char tricky[] = {
		0x80, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF,
		0xA0, 0x9F, 0x8F, 0x90,
	};
	unsigned seed = 99;
	char in[256], want[256 * 3], *dec = malloc(256 * 6 + 2);
	const char *why = "";

	ck_assert_ptr_nonnull(dec);
	for (int round = 0; round < RANDOM_ROUNDS; round++) {
		size_t n = 0, len = (size_t)rand_r(&seed) % 40;
		while (n < len) {
			int kind = rand_r(&seed) % 4;
			if (kind == 0)
				in[n++] = (char)tricky[(size_t)rand_r(&seed) % sizeof(tricky)];
			else if (kind == 1)
				in[n++] = (char)(0x80 | rand_r(&seed) % 0x80);
			else if (kind == 2)
				in[n++] = (char)(0x20 + rand_r(&seed) % 0x5F);
			else
				n += random_utf8(in + n, 1, 0, &seed);
		}
		size_t wn = replace_invalid(in, n, want);
		struct ch_buf b;
		ch_buf_init(&b);
		ch_json_str(&b, in, n);
		long got = json_decode(b.p, b.len, dec, &why);
		ck_assert_msg(got >= 0, "round %d: not a JSON string: %s", round, why);
		ck_assert_uint_eq((size_t)got, wn);
		ck_assert_msg(memcmp(dec, want, wn) == 0, "round %d: wrong replacement", round);
		cJSON *j = cJSON_ParseWithLength(b.p, b.len);
		ck_assert_ptr_nonnull(j);
		ck_assert_uint_eq(strlen(j->valuestring), wn);
		ck_assert_int_eq(memcmp(j->valuestring, want, wn), 0);
		cJSON_Delete(j);
		ch_buf_free(&b);
	}
	free(dec);
}
END_TEST

static Suite *buf_suite(void)
{
	Suite *s = suite_create("buf");
	TCase *bufs = tcase_create("buffers");
	TCase *json = tcase_create("json");
	TCase *limits = tcase_create("limits");

	tcase_add_test(bufs, test_append_and_grow);
	tcase_add_test(bufs, test_reserve);
	tcase_add_test(bufs, test_printf_growth);
	tcase_add_test(bufs, test_u64);
	tcase_add_test(bufs, test_failed_flag_set_by_hand);
	tcase_add_test(bufs, test_failed_flag_on_alloc_failure);
	suite_add_tcase(s, bufs);

	tcase_add_test(json, test_json_str_each_ascii_byte);
	tcase_add_test(json, test_json_str_all_controls);
	tcase_add_test(json, test_json_str_random_utf8);
	tcase_add_test(json, test_json_document);
	tcase_add_test(json, test_json_key);
	tcase_add_test(json, test_json_str_high_bytes_valid_utf8);
	tcase_add_test(json, test_json_str_invalid_utf8_replaced);
	suite_add_tcase(s, json);

	tcase_set_timeout(limits, HANG_TIMEOUT_S);
	tcase_add_test(limits, test_reserve_size_overflow);
	tcase_add_test(bufs, test_hex);
	tcase_add_test(limits, test_reserve_doubling_overflow);
	suite_add_tcase(s, limits);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(buf_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
