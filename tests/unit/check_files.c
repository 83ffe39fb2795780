/*
 * Unit tests for the pure parts of worker/files.c: Range header values
 * against a file size, and the Content-Disposition value for a name.
 */
#include "worker/files.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static int range(const char *v, uint64_t size, uint64_t *a, uint64_t *b)
{
	*a = *b = 12345;
	return ch_files_parse_range(v, strlen(v), size, a, b);
}

START_TEST(ranges)
{
	uint64_t a, b;

	ck_assert_int_eq(range("bytes=0-99", 1000, &a, &b), 1);
	ck_assert_uint_eq(a, 0);
	ck_assert_uint_eq(b, 99);
	ck_assert_int_eq(range("bytes=900-", 1000, &a, &b), 1);
	ck_assert_uint_eq(a, 900);
	ck_assert_uint_eq(b, 999);
	ck_assert_int_eq(range("bytes=990-5000", 1000, &a, &b), 1);	/* clamped */
	ck_assert_uint_eq(b, 999);
	ck_assert_int_eq(range("bytes=-10", 1000, &a, &b), 1);
	ck_assert_uint_eq(a, 990);
	ck_assert_uint_eq(b, 999);
	ck_assert_int_eq(range("bytes=-5000", 1000, &a, &b), 1);	/* the whole file */
	ck_assert_uint_eq(a, 0);
	/* Unsatisfiable: 416. */
	ck_assert_int_eq(range("bytes=1000-", 1000, &a, &b), -1);
	ck_assert_int_eq(range("bytes=-0", 1000, &a, &b), -1);
	ck_assert_int_eq(range("bytes=0-", 0, &a, &b), -1);
	/* Ignored (the whole file is served): malformed, other units, several. */
	ck_assert_int_eq(range("bytes=5-1", 1000, &a, &b), 0);
	ck_assert_int_eq(range("bytes=0-1,5-6", 1000, &a, &b), 0);
	ck_assert_int_eq(range("items=0-1", 1000, &a, &b), 0);
	ck_assert_int_eq(range("bytes=", 1000, &a, &b), 0);
	ck_assert_int_eq(range("bytes=-", 1000, &a, &b), 0);
	ck_assert_int_eq(range("bytes=a-b", 1000, &a, &b), 0);
	ck_assert_int_eq(range("bytes=1-2x", 1000, &a, &b), 0);
	ck_assert_int_eq(range("bytes=99999999999999999999-", 1000, &a, &b), 0);
}
END_TEST

START_TEST(disposition)
{
	char out[512];

	ck_assert_int_eq(ch_files_disposition("a b.txt", 0, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "attachment; filename=\"a b.txt\"; filename*=UTF-8''a%20b.txt");
	ck_assert_int_eq(ch_files_disposition("pic.png", 1, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "inline; filename=\"pic.png\"; filename*=UTF-8''pic.png");
	/* Non-ASCII and quotes: replaced in the fallback, encoded in filename*. */
	ck_assert_int_eq(ch_files_disposition("é\"\\.txt", 0, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "attachment; filename=\"____.txt\"; filename*=UTF-8''%C3%A9%22%5C.txt");
	ck_assert_int_eq(ch_files_disposition("a\r\nb", 0, out, sizeof(out)), 0);
	ck_assert_ptr_null(strpbrk(out, "\r\n"));
	ck_assert_int_eq(ch_files_disposition("long name", 0, out, 20), -1);
}
END_TEST

static Suite *files_suite(void)
{
	Suite *s = suite_create("files");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, ranges);
	tcase_add_test(tc, disposition);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(files_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
