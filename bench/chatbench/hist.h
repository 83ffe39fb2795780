/*
 * A log-linear latency histogram in the manner of HdrHistogram: values
 * below 2^CH_HIST_SUB_BITS are counted exactly, larger ones in buckets
 * whose width is at most 1/2^(CH_HIST_SUB_BITS-1) of their value, so
 * every recorded value is known to about 0.1 % (three significant digits)
 * from 1 ns to CH_HIST_MAX_VALUE with a fixed array of counters.
 *
 * Invariants: count is the sum of counts[]; min and max are the exact
 * smallest and largest values recorded (values above CH_HIST_MAX_VALUE are
 * counted in the top bucket but max keeps the real value). A histogram is
 * owned by one thread; merging is done after the threads have stopped.
 * The units are the caller's (chatbench records nanoseconds).
 */
#ifndef CH_HIST_H
#define CH_HIST_H

#include <stddef.h>
#include <stdint.h>

#define CH_HIST_SUB_BITS	11	/* 2048 exact values, then 1024 per power of two */
#define CH_HIST_TOP_BIT		42	/* ~73 minutes in ns: the largest bucketed value */
#define CH_HIST_MAX_VALUE	((UINT64_C(1) << CH_HIST_TOP_BIT) - 1)

struct ch_hist {
	uint64_t *counts;
	size_t nbuckets;
	uint64_t count;
	uint64_t min;
	uint64_t max;
	long double sum;	/* for the mean; long double keeps ns sums exact enough */
};

int ch_hist_init(struct ch_hist *h);
void ch_hist_free(struct ch_hist *h);
void ch_hist_reset(struct ch_hist *h);
void ch_hist_record(struct ch_hist *h, uint64_t v);
void ch_hist_record_n(struct ch_hist *h, uint64_t v, uint64_t n);
/* Adds every count of src into dst (both initialised). */
void ch_hist_merge(struct ch_hist *dst, const struct ch_hist *src);
/*
 * The value at percentile p (0..100): the highest value equivalent to the
 * bucket holding the p-th percentile sample, capped at max (HdrHistogram's
 * convention, so a reported p99 is never below the true one). 0 when empty.
 */
uint64_t ch_hist_percentile(const struct ch_hist *h, double p);
double ch_hist_mean(const struct ch_hist *h);

/* Exposed for the unit test: the bucket of v and the range it stands for. */
size_t ch_hist_index(uint64_t v);
uint64_t ch_hist_lowest(size_t idx);
uint64_t ch_hist_highest(size_t idx);

#endif
