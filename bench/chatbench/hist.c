/*
 * Log-linear histogram: see hist.h. Index layout, with S = 2^SUB_BITS and
 * H = S/2: values 0..S-1 map to indexes 0..S-1; a larger value v whose
 * highest set bit is b is shifted right by s = b - (SUB_BITS - 1), which
 * leaves a sub-bucket in [H, S), and lands at S + (s - 1) * H + (sub - H).
 */
#include "bench/chatbench/hist.h"

#include <stdlib.h>
#include <string.h>

#define SUB_COUNT	(UINT64_C(1) << CH_HIST_SUB_BITS)
#define HALF_COUNT	(SUB_COUNT / 2)
/* Shifts run from 1 to TOP_BIT - SUB_BITS (the shift of MAX_VALUE), one band of H each. */
#define NBUCKETS	((size_t)(SUB_COUNT + (CH_HIST_TOP_BIT - CH_HIST_SUB_BITS) * HALF_COUNT))

static unsigned msb(uint64_t v)
{
	return 63u - (unsigned)__builtin_clzll(v);
}

size_t ch_hist_index(uint64_t v)
{
	if (v > CH_HIST_MAX_VALUE)
		v = CH_HIST_MAX_VALUE;
	if (v < SUB_COUNT)
		return (size_t)v;
	unsigned shift = msb(v) - (CH_HIST_SUB_BITS - 1);
	uint64_t sub = v >> shift;
	return (size_t)(SUB_COUNT + (shift - 1) * HALF_COUNT + (sub - HALF_COUNT));
}

uint64_t ch_hist_lowest(size_t idx)
{
	if (idx < SUB_COUNT)
		return idx;
	uint64_t band = (idx - SUB_COUNT) / HALF_COUNT;
	uint64_t sub = (idx - SUB_COUNT) % HALF_COUNT + HALF_COUNT;
	return sub << (band + 1);
}

uint64_t ch_hist_highest(size_t idx)
{
	if (idx < SUB_COUNT)
		return idx;
	uint64_t band = (idx - SUB_COUNT) / HALF_COUNT;
	return ch_hist_lowest(idx) + (UINT64_C(1) << (band + 1)) - 1;
}

int ch_hist_init(struct ch_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->counts = calloc(NBUCKETS, sizeof(*h->counts));
	if (!h->counts)
		return -1;
	h->nbuckets = NBUCKETS;
	h->min = UINT64_MAX;
	return 0;
}

void ch_hist_free(struct ch_hist *h)
{
	free(h->counts);
	h->counts = NULL;
}

void ch_hist_reset(struct ch_hist *h)
{
	memset(h->counts, 0, h->nbuckets * sizeof(*h->counts));
	h->count = 0;
	h->min = UINT64_MAX;
	h->max = 0;
	h->sum = 0;
}

void ch_hist_record_n(struct ch_hist *h, uint64_t v, uint64_t n)
{
	if (n == 0)
		return;
	h->counts[ch_hist_index(v)] += n;
	h->count += n;
	h->sum += (long double)v * (long double)n;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

void ch_hist_record(struct ch_hist *h, uint64_t v)
{
	ch_hist_record_n(h, v, 1);
}

void ch_hist_merge(struct ch_hist *dst, const struct ch_hist *src)
{
	for (size_t i = 0; i < src->nbuckets; i++)
		dst->counts[i] += src->counts[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->count && src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t ch_hist_percentile(const struct ch_hist *h, double p)
{
	if (h->count == 0)
		return 0;
	if (p < 0)
		p = 0;
	if (p > 100)
		p = 100;
	/* The rank of the sample asked for, 1-based; at least the first. */
	uint64_t rank = (uint64_t)(p / 100.0 * (double)h->count + 0.5);
	if (rank < 1)
		rank = 1;
	if (rank > h->count)
		rank = h->count;
	uint64_t seen = 0;
	for (size_t i = 0; i < h->nbuckets; i++) {
		seen += h->counts[i];
		if (seen >= rank) {
			uint64_t v = ch_hist_highest(i);
			return v > h->max ? h->max : v;
		}
	}
	return h->max;
}

double ch_hist_mean(const struct ch_hist *h)
{
	return h->count ? (double)(h->sum / (long double)h->count) : 0.0;
}
