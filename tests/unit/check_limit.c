/*
 * Shared rate limits (shm/limit.h): the sliding window, Retry-After, key
 * separation, reset, and counting from two processes at once.
 */
#define _GNU_SOURCE
#include "shm/limit.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define SLOTS 1024u
#define MIN_MS 60000ull

static struct ch_limit_slot *mem;

static void setup(void)
{
	mem = mmap(NULL, SLOTS * sizeof(*mem), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		   -1, 0);
	ck_assert_ptr_ne(mem, MAP_FAILED);
}

static void teardown(void)
{
	munmap(mem, SLOTS * sizeof(*mem));
}

START_TEST(test_limit_and_retry)
{
	struct ch_limit l = { mem, SLOTS, 5 };
	uint64_t t = 10 * MIN_MS + 1000;	/* one second into a minute */
	uint32_t retry = 99;

	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(ch_limit_hit(&l, "1.2.3.4", t + (uint64_t)i, &retry), 1);
	ck_assert_uint_eq(retry, 0);
	ck_assert_int_eq(ch_limit_hit(&l, "1.2.3.4", t + 10, &retry), 0);
	/* All five are this minute's: allowed again when it ends, 59 s on. */
	ck_assert_uint_eq(retry, 59);
	ck_assert_int_eq(ch_limit_check(&l, "1.2.3.4", t + 10, &retry), 0);
	/* Refused attempts are not counted; another key is not affected. */
	ck_assert_int_eq(ch_limit_hit(&l, "5.6.7.8", t + 10, &retry), 1);
}
END_TEST

START_TEST(test_sliding_window)
{
	struct ch_limit l = { mem, SLOTS, 10 };
	uint64_t t = 20 * MIN_MS + 59000;	/* late in a minute */
	uint32_t retry;

	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(ch_limit_hit(&l, "k", t, NULL), 1);
	/* Just past the boundary the last minute still weighs almost fully:
	 * no burst of another ten. */
	ck_assert_int_eq(ch_limit_hit(&l, "k", t + 1000, &retry), 0);
	ck_assert(retry >= 1 && retry <= 60);
	/* Halfway into the new minute half of the old ones count: 5 more. */
	uint64_t half = 21 * MIN_MS + 30000;
	int allowed = 0;
	while (ch_limit_hit(&l, "k", half, NULL))
		allowed++;
	ck_assert_int_eq(allowed, 5);
	/* Two minutes on, nothing of it is left. */
	ck_assert_int_eq(ch_limit_check(&l, "k", 23 * MIN_MS, NULL), 1);
}
END_TEST

START_TEST(test_reset_and_disabled)
{
	struct ch_limit l = { mem, SLOTS, 2 };
	uint64_t t = 5 * MIN_MS;

	ck_assert_int_eq(ch_limit_hit(&l, "bob", t, NULL), 1);
	ck_assert_int_eq(ch_limit_hit(&l, "bob", t, NULL), 1);
	ck_assert_int_eq(ch_limit_hit(&l, "bob", t, NULL), 0);
	ch_limit_reset(&l, "bob");
	ck_assert_int_eq(ch_limit_hit(&l, "bob", t, NULL), 1);
	/* check never claims a slot for an unknown key */
	ck_assert_int_eq(ch_limit_check(&l, "nobody", t, NULL), 1);

	struct ch_limit off = { mem, SLOTS, 0 };
	for (int i = 0; i < 1000; i++)
		ck_assert_int_eq(ch_limit_hit(&off, "x", t, NULL), 1);
}
END_TEST

START_TEST(test_many_keys)
{
	struct ch_limit l = { mem, SLOTS, 1 };
	uint64_t t = 7 * MIN_MS;
	char key[32];

	/* More keys than slots: the table reuses the stalest slots and never
	 * refuses a key it has not seen over its own limit. */
	for (int i = 0; i < 4 * (int)SLOTS; i++) {
		snprintf(key, sizeof(key), "10.0.%d.%d", i / 256, i % 256);
		ck_assert_int_eq(ch_limit_hit(&l, key, t + (uint64_t)i, NULL), 1);
	}
	/* A recent key is still remembered. */
	snprintf(key, sizeof(key), "10.0.%d.%d", (4 * SLOTS - 1) / 256, (4 * SLOTS - 1) % 256);
	ck_assert_int_eq(ch_limit_hit(&l, key, t + 5 * SLOTS, NULL), 0);
}
END_TEST

START_TEST(test_two_processes)
{
	struct ch_limit l = { mem, SLOTS, 100000 };
	uint64_t t = 9 * MIN_MS;
	int per_proc = 30000;

	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		for (int i = 0; i < per_proc; i++)
			ch_limit_hit(&l, "shared", t, NULL);
		_exit(0);
	}
	for (int i = 0; i < per_proc; i++)
		ch_limit_hit(&l, "shared", t, NULL);
	int status;
	waitpid(pid, &status, 0);
	/* Every attempt of both processes was counted, none lost to a race:
	 * exactly limit - 2 * per_proc remain. */
	int left = 0;
	while (ch_limit_hit(&l, "shared", t, NULL))
		left++;
	ck_assert_int_eq(left, 100000 - 2 * per_proc);
}
END_TEST

static Suite *limit_suite(void)
{
	Suite *s = suite_create("limit");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_limit_and_retry);
	tcase_add_test(tc, test_sliding_window);
	tcase_add_test(tc, test_reset_and_disabled);
	tcase_add_test(tc, test_many_keys);
	tcase_add_test(tc, test_two_processes);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(limit_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
