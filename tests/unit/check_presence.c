/*
 * The journal's presence table (journal/presence.h): effective status from
 * connections, idleness and the status set; per-worker counts dropped when
 * a worker restarts; the change flag that drives presence events.
 */
#include "journal/presence.h"

#include <check.h>
#include <stdlib.h>

static struct ch_presence p;

static void setup(void)
{
	ch_presence_init(&p);
}

static void teardown(void)
{
	ch_presence_free(&p);
}

static enum ch_status status_of(uint32_t user)
{
	uint64_t since;
	return ch_presence_get(&p, user, &since);
}

START_TEST(test_online_offline)
{
	uint64_t since = 1;

	ck_assert_int_eq(ch_presence_get(&p, 7, &since), CH_STATUS_OFFLINE);
	ck_assert_uint_eq(since, 0);
	ck_assert_int_eq(ch_presence_update(&p, 7, 0, CH_PRES_OPEN, 0, 100), 1);
	ck_assert_int_eq(ch_presence_get(&p, 7, &since), CH_STATUS_ACTIVE);
	ck_assert_uint_eq(since, 100);
	ck_assert_uint_eq(p.online, 1);
	/* A second connection changes nothing visible. */
	ck_assert_int_eq(ch_presence_update(&p, 7, 1, CH_PRES_OPEN, 0, 200), 0);
	ck_assert_int_eq(ch_presence_update(&p, 7, 0, CH_PRES_CLOSE, 0, 300), 0);
	ck_assert_int_eq(status_of(7), CH_STATUS_ACTIVE);
	ck_assert_int_eq(ch_presence_update(&p, 7, 1, CH_PRES_CLOSE, 0, 400), 1);
	ck_assert_int_eq(ch_presence_get(&p, 7, &since), CH_STATUS_OFFLINE);
	ck_assert_uint_eq(since, 400);
	ck_assert_uint_eq(p.online, 0);
	/* A close from a worker with no connection of the user is refused. */
	ck_assert_int_eq(ch_presence_update(&p, 7, 1, CH_PRES_CLOSE, 0, 500), 0);
	ck_assert_int_eq(ch_presence_update(&p, 7, 0, CH_PRES_OPEN, 0, 600), 1);
	ck_assert_int_eq(ch_presence_update(&p, 7, 3, CH_PRES_CLOSE, 0, 600), -1);
}
END_TEST

START_TEST(test_idle_becomes_away)
{
	ch_presence_update(&p, 2, 0, CH_PRES_OPEN, 0, 1);
	ch_presence_update(&p, 2, 1, CH_PRES_OPEN, 0, 1);
	/* One idle connection of two: still active. */
	ck_assert_int_eq(ch_presence_update(&p, 2, 0, CH_PRES_IDLE, 0, 2), 0);
	ck_assert_int_eq(status_of(2), CH_STATUS_ACTIVE);
	ck_assert_int_eq(ch_presence_update(&p, 2, 1, CH_PRES_IDLE, 0, 3), 1);
	ck_assert_int_eq(status_of(2), CH_STATUS_AWAY);
	/* More idle reports than connections are refused. */
	ck_assert_int_eq(ch_presence_update(&p, 2, 1, CH_PRES_IDLE, 0, 3), -1);
	ck_assert_int_eq(ch_presence_update(&p, 2, 1, CH_PRES_ACTIVE, 0, 4), 1);
	ck_assert_int_eq(status_of(2), CH_STATUS_ACTIVE);
	/* Closing the active one leaves only an idle one: away. */
	ck_assert_int_eq(ch_presence_update(&p, 2, 1, CH_PRES_CLOSE, 0, 5), 1);
	ck_assert_int_eq(status_of(2), CH_STATUS_AWAY);
	/* Closing an idle one takes its idle count too. */
	ck_assert_int_eq(ch_presence_update(&p, 2, 0, CH_PRES_CLOSE, 1, 6), 1);
	ck_assert_int_eq(status_of(2), CH_STATUS_OFFLINE);
	ck_assert_int_eq(ch_presence_update(&p, 2, 0, CH_PRES_OPEN, 0, 7), 1);
	ck_assert_int_eq(status_of(2), CH_STATUS_ACTIVE);
}
END_TEST

START_TEST(test_status_set)
{
	ch_presence_update(&p, 3, 0, CH_PRES_OPEN, 0, 1);
	ck_assert_int_eq(ch_presence_update(&p, 3, 0, CH_PRES_SET, CH_STATUS_BUSY, 2), 1);
	ck_assert_int_eq(status_of(3), CH_STATUS_BUSY);
	/* Busy stays busy when idle. */
	ck_assert_int_eq(ch_presence_update(&p, 3, 0, CH_PRES_IDLE, 0, 3), 0);
	ck_assert_int_eq(status_of(3), CH_STATUS_BUSY);
	/* Back to active while idle: away. */
	ck_assert_int_eq(ch_presence_update(&p, 3, 0, CH_PRES_SET, CH_STATUS_ACTIVE, 4), 1);
	ck_assert_int_eq(status_of(3), CH_STATUS_AWAY);
	ck_assert_int_eq(ch_presence_update(&p, 3, 0, CH_PRES_SET, CH_STATUS_OFFLINE, 4), -1);
	ck_assert_int_eq(ch_presence_update(&p, 3, 0, CH_PRES_SET, 9, 4), -1);
	/* The set status ends with the last connection. */
	ch_presence_update(&p, 3, 0, CH_PRES_SET, CH_STATUS_BUSY, 5);
	ch_presence_update(&p, 3, 0, CH_PRES_CLOSE, 1, 6);
	ch_presence_update(&p, 3, 0, CH_PRES_OPEN, 0, 7);
	ck_assert_int_eq(status_of(3), CH_STATUS_ACTIVE);
}
END_TEST

static uint32_t changed_users[8];
static int n_changed;

static void on_changed(uint32_t user, void *arg)
{
	(void)arg;
	if (n_changed < 8)
		changed_users[n_changed++] = user;
}

START_TEST(test_drop_worker)
{
	ch_presence_update(&p, 1, 0, CH_PRES_OPEN, 0, 1);
	ch_presence_update(&p, 2, 0, CH_PRES_OPEN, 0, 1);
	ch_presence_update(&p, 2, 1, CH_PRES_OPEN, 0, 1);
	ch_presence_update(&p, 2, 1, CH_PRES_IDLE, 0, 1);
	ch_presence_update(&p, 300, 1, CH_PRES_OPEN, 0, 1);
	n_changed = 0;
	ch_presence_drop_worker(&p, 0, 10, on_changed, NULL);
	/* User 1 went offline; user 2 now has only an idle connection. */
	ck_assert_int_eq(n_changed, 2);
	ck_assert_uint_eq(changed_users[0], 1);
	ck_assert_uint_eq(changed_users[1], 2);
	ck_assert_int_eq(status_of(1), CH_STATUS_OFFLINE);
	ck_assert_int_eq(status_of(2), CH_STATUS_AWAY);
	ck_assert_int_eq(status_of(300), CH_STATUS_ACTIVE);
	ck_assert_uint_eq(p.online, 2);
}
END_TEST

START_TEST(test_names)
{
	ck_assert_int_eq(ch_status_parse("busy"), CH_STATUS_BUSY);
	ck_assert_int_eq(ch_status_parse("active"), CH_STATUS_ACTIVE);
	ck_assert_int_eq(ch_status_parse("away"), CH_STATUS_AWAY);
	ck_assert_int_eq(ch_status_parse("offline"), -1);
	ck_assert_int_eq(ch_status_parse("Busy"), -1);
	ck_assert_str_eq(ch_status_name(CH_STATUS_AWAY), "away");
	ck_assert_str_eq(ch_status_name(CH_STATUS_OFFLINE), "offline");
	ck_assert_int_eq(ch_presence_update(&p, 0, 0, CH_PRES_OPEN, 0, 1), -1);
	ck_assert_int_eq(ch_presence_update(&p, 1, CH_MAX_WORKERS, CH_PRES_OPEN, 0, 1), -1);
}
END_TEST

static Suite *presence_suite(void)
{
	Suite *s = suite_create("presence");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_online_offline);
	tcase_add_test(tc, test_idle_becomes_away);
	tcase_add_test(tc, test_status_set);
	tcase_add_test(tc, test_drop_worker);
	tcase_add_test(tc, test_names);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(presence_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
