/*
 * Shared rate limits: see limit.h.
 */
#include "shm/limit.h"

#include <string.h>

#define MINUTE_BITS 24
#define COUNT_BITS 20
#define COUNT_MASK ((1ull << COUNT_BITS) - 1)
#define MINUTE_MASK ((1ull << MINUTE_BITS) - 1)

static uint64_t hash_key(const char *key)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
		h ^= *p;
		h *= 0x100000001b3ull;
	}
	return h | 1;	/* never 0, which marks a free slot */
}

static uint64_t pack(uint64_t minute, uint64_t prev, uint64_t cur)
{
	return (minute & MINUTE_MASK) << (2 * COUNT_BITS) | (prev & COUNT_MASK) << COUNT_BITS |
	       (cur & COUNT_MASK);
}

/* The state as of now: rolled over to the current minute if needed. */
static uint64_t roll(uint64_t s, uint64_t minute)
{
	uint64_t m = s >> (2 * COUNT_BITS);
	uint64_t cur = s & COUNT_MASK;

	minute &= MINUTE_MASK;
	if (m == minute)
		return s;
	if (((m + 1) & MINUTE_MASK) == minute)
		return pack(minute, cur, 0);
	return pack(minute, 0, 0);
}

static struct ch_limit_slot *find(const struct ch_limit *l, const char *key, int claim)
{
	uint64_t h = hash_key(key);
	uint32_t mask = l->n - 1;
	struct ch_limit_slot *stalest = NULL;
	uint64_t stalest_minute = UINT64_MAX;

	for (uint32_t i = 0; i < CH_LIMIT_PROBE; i++) {
		struct ch_limit_slot *s = &l->slots[(h + i) & mask];
		uint64_t k = atomic_load_explicit(&s->key, memory_order_relaxed);
		if (k == h)
			return s;
		if (k == 0) {
			if (!claim)
				return NULL;
			uint64_t expect = 0;
			if (atomic_compare_exchange_strong_explicit(&s->key, &expect, h,
								    memory_order_relaxed,
								    memory_order_relaxed) ||
			    expect == h)
				return s;
			continue;
		}
		uint64_t m = atomic_load_explicit(&s->state, memory_order_relaxed) >> (2 * COUNT_BITS);
		if (m < stalest_minute) {
			stalest_minute = m;
			stalest = s;
		}
	}
	if (!claim || !stalest)
		return NULL;
	atomic_store_explicit(&stalest->state, 0, memory_order_relaxed);
	atomic_store_explicit(&stalest->key, h, memory_order_relaxed);
	return stalest;
}

/* The sliding estimate, and when the next attempt will be allowed. */
static int over(const struct ch_limit *l, uint64_t s, uint64_t now_ms, uint32_t *retry)
{
	uint64_t prev = (s >> COUNT_BITS) & COUNT_MASK;
	uint64_t cur = s & COUNT_MASK;
	uint64_t elapsed = now_ms % CH_LIMIT_WINDOW_MS;
	uint64_t left = CH_LIMIT_WINDOW_MS - elapsed;
	uint64_t limit = l->per_minute;

	/* prev * left / W + cur < limit, without rounding */
	if (prev * left + cur * CH_LIMIT_WINDOW_MS < limit * CH_LIMIT_WINDOW_MS)
		return 0;
	uint64_t wait_ms;
	if (cur >= limit) {
		wait_ms = left;	/* this minute's own attempts fill it */
	} else {
		/* prev * (left - t) / W + cur < limit  <=>  t > left - (limit - cur) * W / prev */
		uint64_t keep = (limit - cur) * CH_LIMIT_WINDOW_MS / prev;
		wait_ms = left > keep ? left - keep + 1 : 1;
	}
	if (retry) {
		uint64_t sec = (wait_ms + 999) / 1000;
		*retry = (uint32_t)(sec < 1 ? 1 : sec > 60 ? 60 : sec);
	}
	return 1;
}

int ch_limit_hit(const struct ch_limit *l, const char *key, uint64_t now_ms,
		 uint32_t *retry_after_s)
{
	uint64_t minute = now_ms / CH_LIMIT_WINDOW_MS;

	if (retry_after_s)
		*retry_after_s = 0;
	if (l->per_minute == 0)
		return 1;
	struct ch_limit_slot *slot = find(l, key, 1);
	if (!slot)
		return 1;
	uint64_t s = atomic_load_explicit(&slot->state, memory_order_relaxed);
	for (;;) {
		uint64_t now = roll(s, minute);
		if (over(l, now, now_ms, retry_after_s))
			return 0;
		uint64_t next = now + 1;	/* cur + 1; cur < limit <= 2^20 - 1 */
		if (atomic_compare_exchange_weak_explicit(&slot->state, &s, next,
							  memory_order_relaxed,
							  memory_order_relaxed))
			return 1;
	}
}

int ch_limit_check(const struct ch_limit *l, const char *key, uint64_t now_ms,
		   uint32_t *retry_after_s)
{
	if (retry_after_s)
		*retry_after_s = 0;
	if (l->per_minute == 0)
		return 1;
	struct ch_limit_slot *slot = find(l, key, 0);
	if (!slot)
		return 1;
	uint64_t s = roll(atomic_load_explicit(&slot->state, memory_order_relaxed),
			  now_ms / CH_LIMIT_WINDOW_MS);
	return !over(l, s, now_ms, retry_after_s);
}

void ch_limit_reset(const struct ch_limit *l, const char *key)
{
	struct ch_limit_slot *slot = find(l, key, 0);
	if (slot)
		atomic_store_explicit(&slot->state, 0, memory_order_relaxed);
}
