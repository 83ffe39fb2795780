/*
 * chatadm's output (admin/render.h).
 *
 * Covered: scalars (strings bare, integers without a fraction, rates with
 * two decimals, booleans, null as "-"); "ok" never printed; stats'
 * sections each under "# name" with their fields, a nested object one
 * level down flattened to key: a=1,b=2; an array of objects as an aligned
 * table (header from the first row, a missing cell as "-", an empty array
 * as "(none)"); an array of scalars as a comma list; plain lines before
 * the blocks whatever the JSON order; and plain output
 * (no escape sequence) when not on a terminal, bold headers when on one.
 */
#define _GNU_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/render.h"

static char *render(const char *json, int tty)
{
	static char out[8192];
	cJSON *a = cJSON_Parse(json);
	FILE *f = fmemopen(out, sizeof(out), "w");

	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(f);
	ch_render_answer(f, a, tty);
	fclose(f);
	cJSON_Delete(a);
	return out;
}

START_TEST(scalars)
{
	char buf[64];
	cJSON *v = cJSON_CreateNumber(12345678901.0);
	ch_render_scalar(buf, sizeof(buf), v);
	ck_assert_str_eq(buf, "12345678901");
	cJSON_SetNumberValue(v, 2.5);
	ch_render_scalar(buf, sizeof(buf), v);
	ck_assert_str_eq(buf, "2.50");
	cJSON_Delete(v);

	char *out = render("{\"ok\":true,\"version\":\"0.1.0\",\"workers\":2,\"up\":true,"
			   "\"x\":null}", 0);
	ck_assert_str_eq(out, "version: 0.1.0\nworkers: 2\nup: true\nx: -\n");
}
END_TEST

START_TEST(sections)
{
	char *out = render("{\"ok\":true,\"sections\":{\"server\":{\"pid\":7},"
			   "\"clients\":{\"connections\":3,\"accepted\":10},"
			   "\"workers\":{\"worker0\":{\"pid\":8,\"state\":\"running\"}}}}", 0);
	ck_assert_str_eq(out, "# server\npid: 7\n\n# clients\nconnections: 3\naccepted: 10\n\n"
			      "# workers\nworker0: pid=8,state=running\n");
}
END_TEST

START_TEST(table)
{
	char *out = render("{\"ok\":true,\"rooms\":[{\"room\":\"general\",\"members\":12},"
			   "{\"room\":\"a\",\"members\":3},{\"room\":\"b\"}]}", 0);
	ck_assert_str_eq(out, "# rooms\n"
			      "room     members\n"
			      "general  12\n"
			      "a        3\n"
			      "b        -\n");
	out = render("{\"ok\":true,\"users\":[]}", 0);
	ck_assert_str_eq(out, "# users\n(none)\n");
}
END_TEST

START_TEST(nested_and_lists)
{
	char *out = render("{\"ok\":true,\"changes\":{\"applied\":{\"server.workers\":\"2 -> 4\"},"
			   "\"restart_needed\":{}},\"workers\":4,\"missing\":[1,3]}", 0);
	/* the plain lines first, then the blocks */
	ck_assert_str_eq(out, "workers: 4\nmissing: 1,3\n\n"
			      "# changes\napplied: server.workers=2 -> 4\nrestart_needed:\n");
}
END_TEST

START_TEST(terminal_or_not)
{
	const char *json = "{\"ok\":true,\"sections\":{\"server\":{\"pid\":7}},"
			   "\"rows\":[{\"a\":1}]}";
	char *plain = strdup(render(json, 0));
	char *tty = render(json, 1);

	ck_assert_ptr_null(strchr(plain, '\033'));
	ck_assert_ptr_nonnull(strstr(tty, "\033[1m# server\033[0m"));
	ck_assert_ptr_nonnull(strstr(tty, "\033[1ma\033[0m"));
	free(plain);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("admin_render");
	TCase *tc = tcase_create("render");
	tcase_add_test(tc, scalars);
	tcase_add_test(tc, sections);
	tcase_add_test(tc, table);
	tcase_add_test(tc, nested_and_lists);
	tcase_add_test(tc, terminal_or_not);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
