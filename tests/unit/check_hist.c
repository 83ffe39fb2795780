/*
 * chatbench's log-linear latency histogram (bench/chatbench/hist.h).
 *
 * Covered: the bucket layout (every value below 2^SUB_BITS exact; for
 * larger ones the bucket holds the value, its width is at most 1/1024 of
 * its lowest value, indexes never go down as values go up, and buckets
 * tile the range without holes), values past the top clamped into the
 * last bucket while max stays exact, count/min/max/mean exact, every
 * percentile of random data compared with the sorted samples (the answer
 * is the highest value of the true sample's bucket, capped at max), merge
 * equal to recording everything in one histogram, record_n equal to n
 * records, reset, and the empty histogram.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "bench/chatbench/hist.h"

#define SUB_COUNT	(UINT64_C(1) << CH_HIST_SUB_BITS)
#define RANDOM_VALUES	20000
#define SEED		12345

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Values spread over many powers of two, as latencies in ns are. */
static uint64_t random_value(void)
{
	unsigned bits = (unsigned)(rand() % 36);
	uint64_t v = ((uint64_t)rand() << 31) ^ (uint64_t)rand();
	return bits ? v & ((UINT64_C(1) << bits) - 1) : 0;
}

START_TEST(test_exact_below_sub_count)
{
	for (uint64_t v = 0; v < SUB_COUNT; v++) {
		size_t i = ch_hist_index(v);
		ck_assert_uint_eq(i, v);
		ck_assert_uint_eq(ch_hist_lowest(i), v);
		ck_assert_uint_eq(ch_hist_highest(i), v);
	}
}
END_TEST

START_TEST(test_buckets_hold_their_values)
{
	srand(SEED);
	for (int k = 0; k < 50000; k++) {
		uint64_t v = random_value() + SUB_COUNT;
		size_t i = ch_hist_index(v);
		uint64_t lo = ch_hist_lowest(i), hi = ch_hist_highest(i);
		ck_assert_uint_le(lo, v);
		ck_assert_uint_ge(hi, v);
		/* Three significant digits: width / lowest <= 2^-(SUB_BITS-1). */
		ck_assert_uint_le((hi - lo + 1) << (CH_HIST_SUB_BITS - 1), lo);
	}
}
END_TEST

START_TEST(test_buckets_tile_the_range)
{
	size_t top = ch_hist_index(CH_HIST_MAX_VALUE);
	for (size_t i = 1; i <= top; i++) {
		ck_assert_uint_eq(ch_hist_lowest(i), ch_hist_highest(i - 1) + 1);
		ck_assert_uint_eq(ch_hist_index(ch_hist_lowest(i)), i);
		ck_assert_uint_eq(ch_hist_index(ch_hist_highest(i)), i);
	}
	ck_assert_uint_eq(ch_hist_highest(top), CH_HIST_MAX_VALUE);
	struct ch_hist h;
	ck_assert_int_eq(ch_hist_init(&h), 0);
	ck_assert_uint_eq(h.nbuckets, top + 1);
	ch_hist_free(&h);
}
END_TEST

START_TEST(test_index_monotonic)
{
	size_t last = 0;
	/* Every value around each power of two, where buckets change width. */
	for (unsigned b = 2; b < CH_HIST_TOP_BIT; b++) {
		uint64_t p = UINT64_C(1) << b;
		for (uint64_t v = p - 2; v <= p + 2; v++) {
			size_t i = ch_hist_index(v);
			ck_assert_uint_ge(i, last);
			last = i;
		}
	}
}
END_TEST

START_TEST(test_clamped_above_max)
{
	struct ch_hist h;
	uint64_t big = CH_HIST_MAX_VALUE * 4;

	ck_assert_int_eq(ch_hist_init(&h), 0);
	ck_assert_uint_eq(ch_hist_index(big), ch_hist_index(CH_HIST_MAX_VALUE));
	ch_hist_record(&h, big);
	ck_assert_uint_eq(h.max, big);
	ck_assert_uint_eq(h.count, 1);
	/* The bucket's top is below the true value; the answer is the bucket's. */
	ck_assert_uint_eq(ch_hist_percentile(&h, 50), CH_HIST_MAX_VALUE);
	ch_hist_free(&h);
}
END_TEST

START_TEST(test_percentiles_random)
{
	static uint64_t v[RANDOM_VALUES];
	static const double ps[] = { 0, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 100 };
	struct ch_hist h;
	long double sum = 0;

	srand(SEED + 1);
	ck_assert_int_eq(ch_hist_init(&h), 0);
	for (int i = 0; i < RANDOM_VALUES; i++) {
		v[i] = random_value();
		sum += v[i];
		ch_hist_record(&h, v[i]);
	}
	qsort(v, RANDOM_VALUES, sizeof(v[0]), cmp_u64);
	ck_assert_uint_eq(h.count, RANDOM_VALUES);
	ck_assert_uint_eq(h.min, v[0]);
	ck_assert_uint_eq(h.max, v[RANDOM_VALUES - 1]);
	ck_assert_double_eq_tol(ch_hist_mean(&h), (double)(sum / RANDOM_VALUES), 1e-6 * (double)(sum / RANDOM_VALUES));
	for (size_t k = 0; k < sizeof(ps) / sizeof(ps[0]); k++) {
		uint64_t rank = (uint64_t)(ps[k] / 100.0 * RANDOM_VALUES + 0.5);
		if (rank < 1)
			rank = 1;
		uint64_t truth = v[rank - 1];
		uint64_t want = ch_hist_highest(ch_hist_index(truth));
		if (want > h.max)
			want = h.max;
		uint64_t got = ch_hist_percentile(&h, ps[k]);
		ck_assert_uint_eq(got, want);
		ck_assert_uint_ge(got, truth);
	}
	ck_assert_uint_eq(ch_hist_percentile(&h, 100), h.max);
	ch_hist_free(&h);
}
END_TEST

START_TEST(test_small_exact_percentiles)
{
	struct ch_hist h;

	ck_assert_int_eq(ch_hist_init(&h), 0);
	for (uint64_t i = 1; i <= 100; i++)
		ch_hist_record(&h, i);
	ck_assert_uint_eq(ch_hist_percentile(&h, 50), 50);
	ck_assert_uint_eq(ch_hist_percentile(&h, 90), 90);
	ck_assert_uint_eq(ch_hist_percentile(&h, 99), 99);
	ck_assert_uint_eq(ch_hist_percentile(&h, 99.9), 100);
	ck_assert_uint_eq(ch_hist_percentile(&h, 0), 1);
	ck_assert_double_eq_tol(ch_hist_mean(&h), 50.5, 1e-9);
	ch_hist_free(&h);
}
END_TEST

START_TEST(test_merge_and_record_n)
{
	struct ch_hist a, b, all, n;

	ck_assert_int_eq(ch_hist_init(&a), 0);
	ck_assert_int_eq(ch_hist_init(&b), 0);
	ck_assert_int_eq(ch_hist_init(&all), 0);
	ck_assert_int_eq(ch_hist_init(&n), 0);
	srand(SEED + 2);
	for (int i = 0; i < 5000; i++) {
		uint64_t v = random_value();
		ch_hist_record(i % 3 ? &a : &b, v);
		ch_hist_record(&all, v);
	}
	ch_hist_merge(&a, &b);
	ck_assert_uint_eq(a.count, all.count);
	ck_assert_uint_eq(a.min, all.min);
	ck_assert_uint_eq(a.max, all.max);
	for (size_t i = 0; i < a.nbuckets; i++)
		ck_assert_uint_eq(a.counts[i], all.counts[i]);
	ch_hist_record_n(&n, 777777, 40);
	ch_hist_record_n(&n, 5, 0);	/* n = 0 records nothing, not even min */
	ck_assert_uint_eq(n.count, 40);
	ck_assert_uint_eq(n.min, 777777);
	ck_assert_uint_eq(n.counts[ch_hist_index(777777)], 40);
	ch_hist_reset(&n);
	ck_assert_uint_eq(n.count, 0);
	ck_assert_uint_eq(n.max, 0);
	ck_assert_uint_eq(ch_hist_percentile(&n, 99), 0);
	ck_assert_double_eq(ch_hist_mean(&n), 0.0);
	ch_hist_free(&a);
	ch_hist_free(&b);
	ch_hist_free(&all);
	ch_hist_free(&n);
}
END_TEST

START_TEST(test_merge_empty_keeps_min)
{
	struct ch_hist a, empty;

	ck_assert_int_eq(ch_hist_init(&a), 0);
	ck_assert_int_eq(ch_hist_init(&empty), 0);
	ch_hist_record(&a, 42);
	ch_hist_merge(&a, &empty);
	ck_assert_uint_eq(a.min, 42);
	ck_assert_uint_eq(a.count, 1);
	ch_hist_merge(&empty, &a);
	ck_assert_uint_eq(empty.min, 42);
	ck_assert_uint_eq(empty.max, 42);
	ch_hist_free(&a);
	ch_hist_free(&empty);
}
END_TEST

static Suite *hist_suite(void)
{
	Suite *s = suite_create("hist");
	TCase *layout = tcase_create("layout");
	TCase *stats = tcase_create("stats");

	tcase_set_timeout(layout, 20);
	tcase_add_test(layout, test_exact_below_sub_count);
	tcase_add_test(layout, test_buckets_hold_their_values);
	tcase_add_test(layout, test_buckets_tile_the_range);
	tcase_add_test(layout, test_index_monotonic);
	tcase_add_test(layout, test_clamped_above_max);
	suite_add_tcase(s, layout);
	tcase_set_timeout(stats, 20);
	tcase_add_test(stats, test_percentiles_random);
	tcase_add_test(stats, test_small_exact_percentiles);
	tcase_add_test(stats, test_merge_and_record_n);
	tcase_add_test(stats, test_merge_empty_keeps_min);
	suite_add_tcase(s, stats);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(hist_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
