/*
 * Kept hashing memory (common/hashmem.h), against the real libcrypt:
 * hashes come out the same with the hook as without; after the first hash
 * the region is reused, so a hash no longer faults in 16 MiB of pages; a
 * region busy in one thread is not handed to another; a change of cost
 * replaces the kept region, or takes a slot of its own while keep allows;
 * lowering keep unmaps what no longer fits. Check runs each test in a process of its
 * own, so each starts unhooked.
 */
#define _GNU_SOURCE
#include <check.h>
#include <crypt.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "common/hashmem.h"

#define PASSWORD "correct horse battery staple"

/* A yescrypt setting at cost (0: the default) with a fixed salt. */
static void setting(unsigned long cost, char *out, int size)
{
	static const char salt[16] = "0123456789abcdef";

	ck_assert_ptr_nonnull(crypt_gensalt_rn("$y$", cost, salt, sizeof(salt), out, size));
}

/* crypt_rn of PASSWORD with set into out; returns the minor page faults
 * the calling thread took meanwhile. */
static long hash(const char *set, char *out)
{
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	struct rusage a, b;

	ck_assert_ptr_nonnull(cd);
	getrusage(RUSAGE_THREAD, &a);
	const char *h = crypt_rn(PASSWORD, set, cd, (int)sizeof(*cd));

	getrusage(RUSAGE_THREAD, &b);
	ck_assert_ptr_nonnull(h);
	ck_assert_int_ne(h[0], '*');
	strcpy(out, h);
	free(cd);
	return b.ru_minflt - a.ru_minflt;
}

/* Settings at two costs, for the tests of a cost change (a fixture). */
static char set5[CRYPT_GENSALT_OUTPUT_SIZE], set6[CRYPT_GENSALT_OUTPUT_SIZE];

static void two_costs(void)
{
	setting(5, set5, sizeof(set5));
	setting(6, set6, sizeof(set6));
}

/* hash(), checking the result is want; returns the faults. */
static long hash_is(const char *set, const char *want)
{
	char h[CRYPT_OUTPUT_SIZE];
	long faults = hash(set, h);

	ck_assert_str_eq(h, want);
	return faults;
}

START_TEST(test_same_hash_no_faults)
{
	char set[CRYPT_GENSALT_OUTPUT_SIZE], plain[CRYPT_OUTPUT_SIZE];
	struct ch_hashmem_stats s;

	setting(0, set, sizeof(set));
	/* Unhooked, libcrypt maps its region per hash: the reason for all this. */
	ck_assert_int_gt(hash(set, plain), 2000);
	ch_hashmem_stats(&s);
	ck_assert_uint_eq(s.reused + s.mapped + s.passed, 0);

	ck_assert_int_eq(ch_hashmem_init(1), 0);
	hash_is(set, plain);
	ck_assert_int_lt(hash_is(set, plain), 100);	/* no region to fault in */
	ch_hashmem_stats(&s);
	ck_assert_uint_eq(s.mapped, 1);
	ck_assert_uint_eq(s.reused, 1);
	ck_assert_uint_eq(s.passed, 0);
	ck_assert_uint_ge(s.bytes_kept, 16u << 20);
	ck_assert_int_eq(ch_hashmem_init(1), 0);	/* again: still hooked, nothing lost */
	hash_is(set, plain);
	ch_hashmem_stats(&s);
	ck_assert_uint_eq(s.reused, 2);
}
END_TEST

#define THREADS 3
#define ROUNDS 4

struct worker_arg {
	pthread_barrier_t *go;
	const char *set, *want;
	int bad;
};

static void *hash_main(void *arg)
{
	struct worker_arg *w = arg;
	char h[CRYPT_OUTPUT_SIZE];

	for (int i = 0; i < ROUNDS; i++) {
		pthread_barrier_wait(w->go);	/* all hash at once */
		hash(w->set, h);
		w->bad += strcmp(h, w->want) != 0;
	}
	return NULL;
}

/* More threads than regions kept: each hash gets a region of its own,
 * kept or mapped for it alone, and every result is right. */
START_TEST(test_busy_region_not_shared)
{
	char set[CRYPT_GENSALT_OUTPUT_SIZE], plain[CRYPT_OUTPUT_SIZE];
	pthread_barrier_t go;
	pthread_t t[THREADS];
	struct worker_arg w[THREADS];
	struct ch_hashmem_stats s;

	setting(0, set, sizeof(set));
	hash(set, plain);
	ck_assert_int_eq(ch_hashmem_init(1), 0);
	pthread_barrier_init(&go, NULL, THREADS);
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker_arg){ .go = &go, .set = set, .want = plain };
		ck_assert_int_eq(pthread_create(&t[i], NULL, hash_main, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		ck_assert_int_eq(w[i].bad, 0);
	}
	ch_hashmem_stats(&s);
	ck_assert_uint_eq(s.mapped, 1);
	ck_assert_uint_eq(s.reused + s.mapped + s.passed, THREADS * ROUNDS);
	ck_assert_uint_ge(s.reused, 1);
	ck_assert_uint_lt(s.bytes_kept, 2 * (16u << 20) + (4u << 20));	/* one region */
	pthread_barrier_destroy(&go);
}
END_TEST

/* A new cost needs a bigger region: the kept one gives way to it. */
START_TEST(test_cost_change_replaces_region)
{
	char plain5[CRYPT_OUTPUT_SIZE], plain6[CRYPT_OUTPUT_SIZE];
	struct ch_hashmem_stats s;

	hash(set5, plain5);
	hash(set6, plain6);
	ck_assert_int_eq(ch_hashmem_init(1), 0);
	hash_is(set5, plain5);
	ch_hashmem_stats(&s);
	size_t small = s.bytes_kept;

	hash_is(set6, plain6);
	hash_is(set6, plain6);
	ch_hashmem_stats(&s);
	ck_assert_uint_eq(s.mapped, 2);
	ck_assert_uint_eq(s.reused, 1);
	ck_assert_uint_gt(s.bytes_kept, small);
	ck_assert_uint_lt(s.bytes_kept, 2 * small + (4u << 20));	/* only the new one */
}
END_TEST

/* Two costs with room for two regions: each keeps its own (an empty slot
 * is taken before a free region of another length gives way); lowering
 * keep to one unmaps the second. */
START_TEST(test_keep_lowered)
{
	char plain5[CRYPT_OUTPUT_SIZE], plain6[CRYPT_OUTPUT_SIZE];
	struct ch_hashmem_stats s;

	ck_assert_int_eq(ch_hashmem_init(2), 0);
	hash(set5, plain5);	/* each first hash maps, and is checked once reused */
	ch_hashmem_stats(&s);
	size_t small = s.bytes_kept;

	hash(set6, plain6);
	hash_is(set5, plain5);
	hash_is(set6, plain6);
	ch_hashmem_stats(&s);
	ck_assert_uint_eq(s.mapped, 2);
	ck_assert_uint_eq(s.reused, 2);
	size_t both = s.bytes_kept;

	ck_assert_uint_gt(both, 2 * small);
	ck_assert_int_eq(ch_hashmem_init(1), 0);
	ch_hashmem_stats(&s);
	ck_assert_uint_eq(s.bytes_kept, small);	/* slot 0 holds the cost-5 region */
}
END_TEST

START_TEST(test_keep_range)
{
	ck_assert_int_eq(ch_hashmem_init(0), -1);
	ck_assert_int_eq(ch_hashmem_init(CH_HASHMEM_MAX_KEEP + 1), -1);
}
END_TEST

static Suite *hashmem_suite(void)
{
	Suite *s = suite_create("hashmem");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);	/* yescrypt under ASan */
	tcase_add_checked_fixture(tc, two_costs, NULL);
	tcase_add_test(tc, test_same_hash_no_faults);
	tcase_add_test(tc, test_busy_region_not_shared);
	tcase_add_test(tc, test_cost_change_replaces_region);
	tcase_add_test(tc, test_keep_lowered);
	tcase_add_test(tc, test_keep_range);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(hashmem_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
