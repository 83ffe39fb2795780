/*
 * Unit tests for common/ratelimit: the burst and refill rule, exact
 * Retry-After values, the window sliding, check vs hit, LRU eviction and
 * what it counts, many keys through few slots, limit 0, limit changes,
 * reset, long keys, time going backwards, and a long random run held
 * against a naive model (linear search, same rule) to catch any slip in
 * the hash chains or the LRU list.
 */
#include "common/ratelimit.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEST_TIMEOUT_S 60
#define T0 1000000ull	/* a start time well away from 0 */
#define WIN CH_RATELIMIT_WINDOW_MS
#define TEST_SLOTS 64
#define TEST_KEY_BUF 256

static int hit(struct ch_ratelimit *rl, const char *key, uint64_t now, uint32_t *retry)
{
	*retry = 12345;	/* must be overwritten */
	return ch_ratelimit_hit(rl, key, now, retry);
}

/* Hits key until refused; returns how many were allowed (no key can
 * have more than CH_RATELIMIT_MAX_LIMIT). */
static int drain(struct ch_ratelimit *rl, const char *key, uint64_t now)
{
	uint32_t retry;
	int n = 0, bad_retry = 0;

	/* (ck_assert costs a message to the parent each time: not in loops) */
	while (n <= (int)CH_RATELIMIT_MAX_LIMIT && hit(rl, key, now, &retry)) {
		bad_retry |= retry != 0;
		n++;
	}
	ck_assert_msg(!bad_retry, "allowed hit with a retry-after");
	ck_assert_uint_ne(retry, 0);	/* the refusal says how long */
	return n;
}

START_TEST(test_init_args)
{
	struct ch_ratelimit rl;

	errno = 0;
	ck_assert_int_eq(ch_ratelimit_init(&rl, 0, 5), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(ch_ratelimit_init(&rl, CH_RATELIMIT_MAX_SLOTS + 1, 5), -1);
	ck_assert_int_eq(ch_ratelimit_init(&rl, 4, CH_RATELIMIT_MAX_LIMIT + 1), -1);
	ck_assert_int_eq(ch_ratelimit_init(&rl, 4, CH_RATELIMIT_MAX_LIMIT), 0);
	ck_assert_int_eq(ch_ratelimit_set_limit(&rl, CH_RATELIMIT_MAX_LIMIT + 1), -1);
	/* the largest limit: a minute's burst, no overflow */
	ck_assert_int_eq(drain(&rl, "k", T0), CH_RATELIMIT_MAX_LIMIT);
	ch_ratelimit_free(&rl);
	ch_ratelimit_free(&rl);	/* twice is harmless */
}
END_TEST

START_TEST(test_burst_then_limited)
{
	struct ch_ratelimit rl;
	uint32_t retry;

	ck_assert_int_eq(ch_ratelimit_init(&rl, TEST_SLOTS, 3), 0);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(hit(&rl, "10.0.0.1", T0, &retry), 1);
		ck_assert_uint_eq(retry, 0);
	}
	ck_assert_int_eq(hit(&rl, "10.0.0.1", T0, &retry), 0);
	ck_assert_uint_eq(retry, 20);	/* one attempt back every 60/3 s */
	ck_assert_int_eq(hit(&rl, "10.0.0.1", T0, &retry), 0);	/* refusals are free */
	ck_assert_uint_eq(retry, 20);
	/* other keys are untouched */
	ck_assert_int_eq(drain(&rl, "10.0.0.2", T0), 3);
	ck_assert_int_eq(drain(&rl, "alice", T0), 3);
	ck_assert_uint_eq(ch_ratelimit_used(&rl), 3);
	ch_ratelimit_free(&rl);
}
END_TEST

/* Retry-After is the least whole number of seconds that is enough. */
static void check_retry_exact(unsigned limit)
{
	struct ch_ratelimit rl;
	uint32_t retry, r2;
	uint64_t wait_ms = (WIN + limit - 1) / limit;	/* ms per attempt, rounded up */

	ck_assert_int_eq(ch_ratelimit_init(&rl, TEST_SLOTS, limit), 0);
	ck_assert_int_eq(drain(&rl, "k", T0), (int)limit);
	ck_assert_int_eq(hit(&rl, "k", T0, &retry), 0);
	ck_assert_uint_eq(retry, (wait_ms + 999) / 1000);
	ck_assert_uint_ge(retry, 1);
	/* one millisecond short of enough: still refused, and says 1 s or more */
	ck_assert_int_eq(hit(&rl, "k", T0 + wait_ms - 1, &r2), 0);
	ck_assert_uint_ge(r2, 1);
	ck_assert_uint_le(r2, retry);
	/* exactly enough */
	ck_assert_int_eq(hit(&rl, "k", T0 + wait_ms, &r2), 1);
	ck_assert_int_eq(hit(&rl, "k", T0 + wait_ms, &r2), 0);
	/* waiting what it said works, waiting a second less does not */
	ck_assert_int_eq(ch_ratelimit_check(&rl, "k", T0 + wait_ms + (uint64_t)r2 * 1000, &retry), 1);
	if (r2 > 1 && wait_ms % 1000 != 0)
		ck_assert_int_eq(ch_ratelimit_check(&rl, "k", T0 + wait_ms + (uint64_t)(r2 - 1) * 1000, &retry), 0);
	ch_ratelimit_free(&rl);
}

START_TEST(test_retry_after_values)
{
	struct ch_ratelimit rl;
	uint32_t retry;

	check_retry_exact(1);	/* 60 s */
	check_retry_exact(3);	/* 20 s */
	check_retry_exact(7);	/* 8571.4 ms -> 9 s */
	check_retry_exact(10);	/* 6 s */
	check_retry_exact(120);	/* 500 ms -> 1 s */
	check_retry_exact(100000);

	/* part of the wait already served */
	ck_assert_int_eq(ch_ratelimit_init(&rl, TEST_SLOTS, 3), 0);
	ck_assert_int_eq(drain(&rl, "k", T0), 3);
	ck_assert_int_eq(hit(&rl, "k", T0 + 5000, &retry), 0);
	ck_assert_uint_eq(retry, 15);
	ck_assert_int_eq(hit(&rl, "k", T0 + 19001, &retry), 0);
	ck_assert_uint_eq(retry, 1);
	ck_assert_int_eq(hit(&rl, "k", T0 + 20000, &retry), 1);
	ch_ratelimit_free(&rl);
}
END_TEST

START_TEST(test_window_sliding)
{
	struct ch_ratelimit rl;
	uint32_t retry;

	ck_assert_int_eq(ch_ratelimit_init(&rl, TEST_SLOTS, 60), 0);
	ck_assert_int_eq(drain(&rl, "k", T0), 60);
	ck_assert_int_eq(hit(&rl, "k", T0 + 500, &retry), 0);
	ck_assert_uint_eq(retry, 1);
	ck_assert_int_eq(drain(&rl, "k", T0 + 1000), 1);	/* one a second */
	ck_assert_int_eq(drain(&rl, "k", T0 + 31000), 30);	/* half a window: half back */
	ck_assert_int_eq(drain(&rl, "k", T0 + 31000 + WIN), 60);	/* never above the cap */
	ck_assert_int_eq(drain(&rl, "k", T0 + 31000 + 10 * WIN), 60);
	ch_ratelimit_free(&rl);
}
END_TEST

/* A client trying every 100 ms for ten minutes: no 60 s window passes more
 * than 2 * limit - 1, and the long-run rate is the limit. */
START_TEST(test_window_bound)
{
	enum { LIMIT = 10, STEP_MS = 100, STEPS = 6000 };
	static uint64_t allowed_at[STEPS];
	struct ch_ratelimit rl;
	size_t n = 0, lo = 0;
	uint32_t retry;

	ck_assert_int_eq(ch_ratelimit_init(&rl, TEST_SLOTS, LIMIT), 0);
	for (int i = 0; i < STEPS; i++) {
		uint64_t now = T0 + (uint64_t)i * STEP_MS;

		if (ch_ratelimit_hit(&rl, "k", now, &retry))
			allowed_at[n++] = now;
	}
	for (size_t hi = 0; hi < n; hi++) {
		while (allowed_at[hi] - allowed_at[lo] >= WIN)
			lo++;
		ck_assert_uint_le(hi - lo + 1, 2 * LIMIT - 1);
	}
	/* 10 minutes at 10/min after a burst of 10 */
	ck_assert_uint_ge(n, 10 * LIMIT);
	ck_assert_uint_le(n, 10 * LIMIT + LIMIT);
	ch_ratelimit_free(&rl);
}
END_TEST

START_TEST(test_check_only_looks)
{
	struct ch_ratelimit rl;
	uint32_t retry, retry_hit;

	ck_assert_int_eq(ch_ratelimit_init(&rl, 2, 2), 0);
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(ch_ratelimit_check(&rl, "a", T0, &retry), 1);
	ck_assert_uint_eq(ch_ratelimit_used(&rl), 0);	/* stored nothing */
	ck_assert_int_eq(drain(&rl, "a", T0), 2);
	ck_assert_int_eq(ch_ratelimit_check(&rl, "a", T0 + 1000, &retry), 0);
	ck_assert_int_eq(hit(&rl, "a", T0 + 1000, &retry_hit), 0);
	ck_assert_uint_eq(retry, retry_hit);
	ck_assert_uint_eq(retry, 29);
	ck_assert_int_eq(ch_ratelimit_check(&rl, "a", T0 + 30000, NULL), 1);
	ck_assert_int_eq(ch_ratelimit_check(&rl, "a", T0 + 30000, NULL), 1);

	/* check does not refresh recency: "a" stays the stalest */
	ck_assert_int_eq(drain(&rl, "b", T0), 2);
	ck_assert_int_eq(ch_ratelimit_check(&rl, "a", T0, NULL), 0);
	ck_assert_int_eq(hit(&rl, "c", T0, &retry), 1);	/* evicts a */
	ck_assert_int_eq(ch_ratelimit_check(&rl, "a", T0, NULL), 1);
	ck_assert_int_eq(ch_ratelimit_check(&rl, "b", T0, NULL), 0);
	ch_ratelimit_free(&rl);
}
END_TEST

START_TEST(test_eviction_lru)
{
	struct ch_ratelimit rl;
	uint32_t retry;

	ck_assert_int_eq(ch_ratelimit_init(&rl, 4, 1), 0);
	ck_assert_int_eq(hit(&rl, "a", T0, &retry), 1);
	ck_assert_int_eq(hit(&rl, "b", T0 + 1, &retry), 1);
	ck_assert_int_eq(hit(&rl, "c", T0 + 2, &retry), 1);
	ck_assert_int_eq(hit(&rl, "d", T0 + 3, &retry), 1);
	ck_assert_uint_eq(ch_ratelimit_used(&rl), 4);
	ck_assert_uint_eq(ch_ratelimit_evictions_live(&rl), 0);

	/* full: a new key is still served, and the stalest (a) goes */
	ck_assert_int_eq(hit(&rl, "e", T0 + 4, &retry), 1);
	ck_assert_uint_eq(ch_ratelimit_used(&rl), 4);
	ck_assert_uint_eq(ch_ratelimit_evictions_live(&rl), 1);
	ck_assert_int_eq(ch_ratelimit_check(&rl, "a", T0 + 4, NULL), 1);
	ck_assert_int_eq(ch_ratelimit_check(&rl, "b", T0 + 4, NULL), 0);
	ck_assert_int_eq(ch_ratelimit_check(&rl, "c", T0 + 4, NULL), 0);
	ck_assert_int_eq(ch_ratelimit_check(&rl, "d", T0 + 4, NULL), 0);

	/* a refused hit counts as use: b moves up, c is now the stalest */
	ck_assert_int_eq(hit(&rl, "b", T0 + 5, &retry), 0);
	ck_assert_int_eq(hit(&rl, "f", T0 + 6, &retry), 1);
	ck_assert_int_eq(ch_ratelimit_check(&rl, "c", T0 + 6, NULL), 1);
	ck_assert_int_eq(ch_ratelimit_check(&rl, "b", T0 + 6, NULL), 0);
	ck_assert_uint_eq(ch_ratelimit_evictions_live(&rl), 2);

	/* a whole window later every bucket is full again: evicting loses
	 * nothing and is not counted */
	ck_assert_int_eq(hit(&rl, "g", T0 + 10 + WIN, &retry), 1);
	ck_assert_int_eq(hit(&rl, "h", T0 + 10 + WIN, &retry), 1);
	ck_assert_uint_eq(ch_ratelimit_evictions_live(&rl), 2);
	ck_assert_uint_eq(ch_ratelimit_used(&rl), 4);
	ch_ratelimit_free(&rl);
}
END_TEST

START_TEST(test_many_keys)
{
	enum { SLOTS = 1024, KEYS = 200000, HOT_EVERY = 100, LIMIT = 5 };
	struct ch_ratelimit rl;
	char key[TEST_KEY_BUF];
	uint32_t retry;

	ck_assert_int_eq(ch_ratelimit_init(&rl, SLOTS, LIMIT), 0);
	ck_assert_int_eq(drain(&rl, "hot", T0), LIMIT);
	for (int i = 0; i < KEYS; i++) {
		snprintf(key, sizeof(key), "203.0.113.%d/%d", i % 256, i);
		if (hit(&rl, key, T0, &retry) != 1 || ch_ratelimit_used(&rl) > SLOTS)
			ck_abort_msg("new key %d refused or table grew", i);
		/* kept busy, the limited key is never the one evicted */
		if (i % HOT_EVERY == 0 &&
		    (hit(&rl, "hot", T0, &retry) != 0 || retry != 12))
			ck_abort_msg("hot key forgotten after %d new keys", i);
	}
	ck_assert_uint_eq(ch_ratelimit_used(&rl), SLOTS);
	ck_assert_uint_eq(ch_ratelimit_evictions_live(&rl), KEYS + 1 - SLOTS);
	ch_ratelimit_free(&rl);
}
END_TEST

START_TEST(test_limit_zero_disabled)
{
	struct ch_ratelimit rl;
	uint32_t retry;

	ck_assert_int_eq(ch_ratelimit_init(&rl, 4, 0), 0);
	for (int i = 0; i < 10000; i++)
		if (hit(&rl, "k", T0, &retry) != 1 || retry != 0)
			ck_abort_msg("limit 0 refused hit %d", i);
	ck_assert_int_eq(ch_ratelimit_check(&rl, "k", T0, &retry), 1);
	ck_assert_uint_eq(ch_ratelimit_used(&rl), 0);
	/* turned on by a reload, then off again */
	ck_assert_int_eq(ch_ratelimit_set_limit(&rl, 3), 0);
	ck_assert_int_eq(drain(&rl, "k", T0), 3);
	ck_assert_int_eq(ch_ratelimit_set_limit(&rl, 0), 0);
	ck_assert_int_eq(hit(&rl, "k", T0, &retry), 1);
	ch_ratelimit_free(&rl);
}
END_TEST

START_TEST(test_set_limit_keeps_state)
{
	struct ch_ratelimit rl;
	uint32_t retry;

	ck_assert_int_eq(ch_ratelimit_init(&rl, 4, 10), 0);
	ck_assert_int_eq(hit(&rl, "k", T0, &retry), 1);
	ck_assert_int_eq(hit(&rl, "k", T0, &retry), 1);
	/* 8 left, but the new capacity is 3 */
	ck_assert_int_eq(ch_ratelimit_set_limit(&rl, 3), 0);
	ck_assert_int_eq(drain(&rl, "k", T0), 3);
	ck_assert_int_eq(hit(&rl, "k", T0, &retry), 0);
	ck_assert_uint_eq(retry, 20);
	/* raised: refills at the new rate, up to the new capacity */
	ck_assert_int_eq(ch_ratelimit_set_limit(&rl, 60), 0);
	ck_assert_int_eq(drain(&rl, "k", T0 + 5000), 5);
	ck_assert_int_eq(drain(&rl, "k", T0 + 5000 + WIN), 60);
	ch_ratelimit_free(&rl);
}
END_TEST

START_TEST(test_reset)
{
	struct ch_ratelimit rl;
	uint32_t retry;

	ck_assert_int_eq(ch_ratelimit_init(&rl, 2, 1), 0);
	ck_assert_int_eq(hit(&rl, "a", T0, &retry), 1);
	ck_assert_int_eq(hit(&rl, "a", T0, &retry), 0);
	ch_ratelimit_reset(&rl, "a");
	ck_assert_uint_eq(ch_ratelimit_used(&rl), 0);
	ck_assert_int_eq(hit(&rl, "a", T0, &retry), 1);
	ch_ratelimit_reset(&rl, "nobody");	/* no-op */
	ck_assert_uint_eq(ch_ratelimit_used(&rl), 1);

	/* an emptied slot is reused before any live key is evicted */
	ck_assert_int_eq(hit(&rl, "b", T0, &retry), 1);
	ch_ratelimit_reset(&rl, "b");
	ck_assert_int_eq(hit(&rl, "c", T0, &retry), 1);
	ck_assert_uint_eq(ch_ratelimit_evictions_live(&rl), 0);
	ck_assert_int_eq(ch_ratelimit_check(&rl, "a", T0, NULL), 0);
	ck_assert_int_eq(ch_ratelimit_check(&rl, "c", T0, NULL), 0);
	ch_ratelimit_free(&rl);
}
END_TEST

START_TEST(test_long_and_odd_keys)
{
	struct ch_ratelimit rl;
	char k1[TEST_KEY_BUF], k2[TEST_KEY_BUF];
	uint32_t retry;

	ck_assert_int_eq(ch_ratelimit_init(&rl, TEST_SLOTS, 1), 0);
	memset(k1, 'x', 200);
	k1[200] = '\0';
	memcpy(k2, k1, sizeof(k1));
	k2[150] = 'y';	/* differs past the stored prefix */
	ck_assert_int_eq(hit(&rl, k1, T0, &retry), 1);
	ck_assert_int_eq(hit(&rl, k1, T0, &retry), 0);
	ck_assert_int_eq(hit(&rl, k2, T0, &retry), 1);
	k2[150] = 'x';
	k2[199] = '\0';	/* a prefix of k1 */
	ck_assert_int_eq(hit(&rl, k2, T0, &retry), 1);
	ck_assert_uint_eq(ch_ratelimit_used(&rl), 3);
	/* the empty key is a key like any other */
	ck_assert_int_eq(hit(&rl, "", T0, &retry), 1);
	ck_assert_int_eq(hit(&rl, "", T0, &retry), 0);
	ck_assert_int_eq(hit(&rl, "2001:db8::/64", T0, &retry), 1);
	ch_ratelimit_free(&rl);
}
END_TEST

START_TEST(test_time_backwards)
{
	struct ch_ratelimit rl;
	uint32_t retry;

	ck_assert_int_eq(ch_ratelimit_init(&rl, 4, 1), 0);
	ck_assert_int_eq(hit(&rl, "k", T0 + WIN, &retry), 1);
	ck_assert_int_eq(hit(&rl, "k", T0, &retry), 0);	/* earlier: no refill */
	ck_assert_uint_eq(retry, 60);
	ck_assert_int_eq(hit(&rl, "k", T0 + 2 * WIN - 1, &retry), 0);
	ck_assert_int_eq(hit(&rl, "k", T0 + 2 * WIN, &retry), 1);
	ch_ratelimit_free(&rl);
}
END_TEST

/*
 * The naive model: an array searched linearly, the same token bucket, LRU
 * by a use counter; a new key takes a free slot if any, else evicts the
 * least recently hit. check changes nothing; reset frees the slot.
 */
#define MODEL_SLOTS 8
#define MODEL_KEYS 24
#define MODEL_OPS 300000

struct model_entry {
	int key;	/* -1 = free */
	uint64_t credit, last, used;
};

static uint64_t model_credit(const struct model_entry *e, unsigned limit, uint64_t now)
{
	uint64_t cap = (uint64_t)limit * WIN, c = e->credit;

	if (now > e->last)
		c = now - e->last >= WIN ? cap : c + (now - e->last) * limit;
	return c < cap ? c : cap;
}

static int model_decide(uint64_t credit, unsigned limit, uint32_t *retry)
{
	if (credit >= WIN) {
		*retry = 0;
		return 1;
	}
	*retry = (uint32_t)((((WIN - credit) + limit - 1) / limit + 999) / 1000);
	return 0;
}

START_TEST(test_against_model)
{
	struct model_entry m[MODEL_SLOTS];
	struct ch_ratelimit rl;
	uint64_t now = T0, clock = 0;
	unsigned limit = 3;
	char key[TEST_KEY_BUF];

	ck_assert_int_eq(ch_ratelimit_init(&rl, MODEL_SLOTS, limit), 0);
	for (int i = 0; i < MODEL_SLOTS; i++)
		m[i].key = -1;
	srand(12345);
	for (int op = 0; op < MODEL_OPS; op++) {
		int k = rand() % MODEL_KEYS, what = rand() % 100, slot = -1;
		uint32_t got_retry = 0, want_retry = 0;
		int got, want;

		now += (uint64_t)(rand() % 3000);
		/* a long key now and then, to mix prefix-stored keys in */
		snprintf(key, sizeof(key), k % 5 == 0 ?
			 "key-%d-................................................................" :
			 "key-%d", k);
		for (int i = 0; i < MODEL_SLOTS; i++)
			if (m[i].key == k)
				slot = i;
		if (what < 70) {
			got = ch_ratelimit_hit(&rl, key, now, &got_retry);
			if (slot < 0) {
				for (int i = 0; i < MODEL_SLOTS; i++)
					if (m[i].key == -1 && slot < 0)
						slot = i;
				if (slot < 0) {
					slot = 0;
					for (int i = 1; i < MODEL_SLOTS; i++)
						if (m[i].used < m[slot].used)
							slot = i;
				}
				m[slot].key = k;
				m[slot].credit = (uint64_t)limit * WIN;
				m[slot].last = now;
			}
			m[slot].credit = model_credit(&m[slot], limit, now);
			if (now > m[slot].last)
				m[slot].last = now;
			m[slot].used = ++clock;
			want = model_decide(m[slot].credit, limit, &want_retry);
			if (want)
				m[slot].credit -= WIN;
		} else if (what < 90) {
			got = ch_ratelimit_check(&rl, key, now, &got_retry);
			want = model_decide(slot < 0 ? (uint64_t)limit * WIN :
					    model_credit(&m[slot], limit, now), limit, &want_retry);
		} else if (what < 99) {
			ch_ratelimit_reset(&rl, key);
			if (slot >= 0)
				m[slot].key = -1;
			got = want = 1;
		} else {
			limit = 1 + (unsigned)(rand() % 6);
			ck_assert_int_eq(ch_ratelimit_set_limit(&rl, limit), 0);
			got = want = 1;
		}
		if (got != want || got_retry != want_retry)
			ck_abort_msg("op %d key %d kind %d: got %d/%u want %d/%u", op,
				     k, what, got, got_retry, want, want_retry);
	}
	ch_ratelimit_free(&rl);
}
END_TEST

static Suite *ratelimit_suite(void)
{
	Suite *s = suite_create("ratelimit");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, TEST_TIMEOUT_S);
	tcase_add_test(tc, test_init_args);
	tcase_add_test(tc, test_burst_then_limited);
	tcase_add_test(tc, test_retry_after_values);
	tcase_add_test(tc, test_window_sliding);
	tcase_add_test(tc, test_window_bound);
	tcase_add_test(tc, test_check_only_looks);
	tcase_add_test(tc, test_eviction_lru);
	tcase_add_test(tc, test_many_keys);
	tcase_add_test(tc, test_limit_zero_disabled);
	tcase_add_test(tc, test_set_limit_keeps_state);
	tcase_add_test(tc, test_reset);
	tcase_add_test(tc, test_long_and_odd_keys);
	tcase_add_test(tc, test_time_backwards);
	tcase_add_test(tc, test_against_model);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(ratelimit_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
