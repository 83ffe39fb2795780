/*
 * CRC32C: published check values, the hardware and table versions against
 * each other and against a bit-at-a-time reference written here from the
 * definition, at every length 0..300 and every misalignment, and pieces fed
 * incrementally against one call.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/crc32c.h"

#define MAX_LEN 300
#define MISALIGN 8
#define BIG_LEN (1u << 20)

typedef uint32_t crc_fn(uint32_t crc, const void *p, size_t n);

/* Straight from the definition: reflected, poly 0x82F63B78, ~ in and out. */
static uint32_t crc_reference(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint32_t c = 0xFFFFFFFFu;

	for (size_t i = 0; i < n; i++) {
		c ^= b[i];
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
	}
	return ~c;
}

static void fill_random(unsigned char *b, size_t n, unsigned seed)
{
	srand(seed);
	for (size_t i = 0; i < n; i++)
		b[i] = (unsigned char)(rand() >> 7);
}

/* Each implementation the test can run on this machine. */
static int impl_count(void)
{
	return ch_crc32c_hw_available() ? 3 : 2;
}

static crc_fn *impl(int i)
{
	crc_fn *fns[] = { ch_crc32c, ch_crc32c_sw, ch_crc32c_hw };

	return fns[i];
}

static void check_vectors(crc_fn *f)
{
	unsigned char buf[32];

	ck_assert_uint_eq(f(0, "123456789", 9), 0xE3069283u);
	ck_assert_uint_eq(f(0, "", 0), 0);
	ck_assert_uint_eq(f(0, "a", 1), 0xC1D04330u);
	/* RFC 3720 (iSCSI), appendix B.4. */
	memset(buf, 0, sizeof(buf));
	ck_assert_uint_eq(f(0, buf, sizeof(buf)), 0x8A9136AAu);
	memset(buf, 0xFF, sizeof(buf));
	ck_assert_uint_eq(f(0, buf, sizeof(buf)), 0x62A8AB43u);
	for (int i = 0; i < 32; i++)
		buf[i] = (unsigned char)i;
	ck_assert_uint_eq(f(0, buf, sizeof(buf)), 0x46DD794Eu);
	for (int i = 0; i < 32; i++)
		buf[i] = (unsigned char)(31 - i);
	ck_assert_uint_eq(f(0, buf, sizeof(buf)), 0x113FDB5Cu);
}

START_TEST(test_vectors)
{
	check_vectors(impl(_i));
}
END_TEST

START_TEST(test_reference_itself)
{
	/* The reference must agree with the published value too, or the
	 * comparisons below would prove nothing. */
	ck_assert_uint_eq(crc_reference("123456789", 9), 0xE3069283u);
}
END_TEST

START_TEST(test_every_length_and_alignment)
{
	static unsigned char buf[MAX_LEN + MISALIGN];
	crc_fn *f = impl(_i);

	fill_random(buf, sizeof(buf), 42);
	for (size_t a = 0; a < MISALIGN; a++) {
		for (size_t n = 0; n <= MAX_LEN; n++) {
			uint32_t want = crc_reference(buf + a, n);

			ck_assert_msg(f(0, buf + a, n) == want,
				      "impl %d, align %zu, len %zu", _i, a, n);
		}
	}
}
END_TEST

START_TEST(test_hw_equals_sw_random)
{
	static unsigned char buf[MAX_LEN + MISALIGN];

	if (!ch_crc32c_hw_available())
		return;
	for (unsigned seed = 1; seed <= 20; seed++) {
		fill_random(buf, sizeof(buf), seed);
		for (size_t a = 0; a < MISALIGN; a++)
			for (size_t n = 0; n <= MAX_LEN; n++)
				ck_assert_uint_eq(ch_crc32c_hw(seed, buf + a, n),
						  ch_crc32c_sw(seed, buf + a, n));
	}
}
END_TEST

START_TEST(test_incremental)
{
	static unsigned char buf[MAX_LEN];
	crc_fn *f = impl(_i);
	uint32_t whole;

	fill_random(buf, sizeof(buf), 7);
	whole = f(0, buf, sizeof(buf));
	for (size_t cut = 0; cut <= MAX_LEN; cut++) {
		uint32_t c = f(0, buf, cut);

		ck_assert_uint_eq(f(c, buf + cut, MAX_LEN - cut), whole);
	}
	/* Three pieces, the middle one at odd offsets and lengths. */
	for (size_t a = 0; a < 40; a++) {
		for (size_t b = a; b < a + 40; b++) {
			uint32_t c = f(0, buf, a);

			c = f(c, buf + a, b - a);
			ck_assert_uint_eq(f(c, buf + b, MAX_LEN - b), whole);
		}
	}
	/* One byte at a time. */
	{
		uint32_t c = 0;

		for (size_t i = 0; i < MAX_LEN; i++)
			c = f(c, buf + i, 1);
		ck_assert_uint_eq(c, whole);
	}
}
END_TEST

START_TEST(test_big_buffer)
{
	unsigned char *buf = malloc(BIG_LEN + 1);
	uint32_t want;

	ck_assert_ptr_nonnull(buf);
	fill_random(buf, BIG_LEN + 1, 99);
	want = crc_reference(buf + 1, BIG_LEN);
	ck_assert_uint_eq(ch_crc32c_sw(0, buf + 1, BIG_LEN), want);
	ck_assert_uint_eq(ch_crc32c(0, buf + 1, BIG_LEN), want);
	if (ch_crc32c_hw_available())
		ck_assert_uint_eq(ch_crc32c_hw(0, buf + 1, BIG_LEN), want);
	free(buf);
}
END_TEST

static Suite *crc32c_suite(void)
{
	Suite *s = suite_create("crc32c");
	TCase *tc = tcase_create("core");
	int n = impl_count();

	tcase_add_loop_test(tc, test_vectors, 0, n);
	tcase_add_test(tc, test_reference_itself);
	tcase_add_loop_test(tc, test_every_length_and_alignment, 0, n);
	tcase_add_test(tc, test_hw_equals_sw_random);
	tcase_add_loop_test(tc, test_incremental, 0, n);
	tcase_add_test(tc, test_big_buffer);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(crc32c_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
