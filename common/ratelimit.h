/*
 * A rate limiter for login and register attempts, keyed by a string (an
 * IP address's text, a username), in fixed memory with O(1) work per hit.
 *
 * The rule is a token bucket per key: a key starts with `limit` attempts,
 * each attempt takes one, and attempts come back continuously at `limit`
 * per 60 s (one every 60/limit s). So a client may burst `limit` attempts,
 * then goes on at `limit` per minute; within any 60 s window at most
 * 2 * limit - 1 attempts pass (a full bucket plus almost a minute of
 * refill), and over longer spans the average is `limit` per minute. The
 * arithmetic is exact integers (an attempt is CH_RATELIMIT_WINDOW_MS
 * units; a millisecond refills `limit` units), so Retry-After is exact.
 *
 * Memory: `slots` entries and a hash index, allocated once by init and
 * never grown. When every slot holds a key and a new key arrives, the key
 * hit least recently is evicted (an LRU list; limited hits count as use, so
 * a client hammering while limited stays tracked). An entry untouched for a
 * whole window has refilled and carries no information, so eviction only
 * forgets something when more than `slots` keys were active within one
 * window; ch_ratelimit_evictions_live() counts those, for metrics. Size
 * slots above the number of distinct keys expected per minute.
 *
 * Hashing uses SipHash-2-4 with a random per-limiter key, so clients
 * choosing usernames cannot aim for one hash chain.
 *
 * Keys: any bytes, NUL-terminated. The first CH_RATELIMIT_KEY_MAX bytes are
 * stored and compared; longer keys are told apart by their full length and
 * 64-bit hash as well. For IPv6 clients, key by the /64 prefix, since one
 * client usually holds a whole /64.
 *
 * Limit 0 means "no limit": every hit is allowed and nothing is stored
 * (operators turn a limit off with 0 in [limits]).
 *
 * Not thread-safe and process-local: each worker keeps its own limiters,
 * touched only by its loop thread. With W workers and connections spread
 * over them, one client can get up to W times the limit before every
 * worker has refused it; the integrator should either document that the
 * configured limits are per worker or divide them by W (rounding up).
 *
 * Time is the caller's monotonic milliseconds (CLOCK_MONOTONIC), passed in
 * so tests can drive it; a time earlier than a key's last hit counts as no
 * time passing.
 */
#ifndef CH_RATELIMIT_H
#define CH_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#define CH_RATELIMIT_WINDOW_MS  60000u		/* limits are per minute */
#define CH_RATELIMIT_KEY_MAX    64		/* bytes of a key stored */
#define CH_RATELIMIT_MAX_SLOTS  (1u << 20)	/* ~100 MiB of entries */
#define CH_RATELIMIT_MAX_LIMIT  1000000u	/* attempts per minute */

struct ch_ratelimit_entry;

/* Fields are private to ratelimit.c; the struct is here so callers can
 * embed it. */
struct ch_ratelimit {
	struct ch_ratelimit_entry *entries;	/* slots of them */
	uint32_t *buckets;	/* hash heads: entry index + 1, 0 = none */
	size_t slots;
	size_t nbuckets;	/* a power of two, >= 2 * slots */
	size_t taken;		/* entries[0..taken) have been used */
	size_t live;		/* entries holding a key now */
	uint32_t lru_head;	/* most recently hit, index + 1 */
	uint32_t lru_tail;	/* least recently hit (or emptied): reused first */
	unsigned limit;		/* attempts per minute; 0 = no limit */
	uint64_t sip_key[2];
	uint64_t evictions_live;
};

/*
 * Allocate slots (1..CH_RATELIMIT_MAX_SLOTS) entries; limit_per_minute in
 * 0..CH_RATELIMIT_MAX_LIMIT. 0 on success, -1 with errno EINVAL or ENOMEM
 * (not logged: the caller names the limiter in its message).
 */
int ch_ratelimit_init(struct ch_ratelimit *rl, size_t slots,
		      unsigned limit_per_minute);

/* Free what init allocated; rl may then be initialised again. */
void ch_ratelimit_free(struct ch_ratelimit *rl);

/*
 * Change the limit (a config reload). Keys keep their state; a bucket
 * above the new capacity is cut down at its next hit. -1 (EINVAL) when out
 * of range.
 */
int ch_ratelimit_set_limit(struct ch_ratelimit *rl, unsigned limit_per_minute);

/*
 * Count one attempt for key at now_ms. 1 when it is allowed (and counted),
 * 0 when the key is over its limit (not counted). *retry_after_s (may be
 * NULL) gets 0 when allowed, else the whole seconds, at least 1, after
 * which one attempt will be allowed if no other is made: the value for
 * Retry-After.
 */
int ch_ratelimit_hit(struct ch_ratelimit *rl, const char *key, uint64_t now_ms,
		     uint32_t *retry_after_s);

/*
 * Like ch_ratelimit_hit, but only looks: counts nothing, stores nothing,
 * changes no recency. For "refuse before the expensive check, count only
 * failures": check the username first, hash the password, and hit only when
 * the password was wrong.
 */
int ch_ratelimit_check(const struct ch_ratelimit *rl, const char *key,
		       uint64_t now_ms, uint32_t *retry_after_s);

/* Forget key (e.g. its failure count after a successful login). */
void ch_ratelimit_reset(struct ch_ratelimit *rl, const char *key);

/* Keys tracked now (<= slots). */
size_t ch_ratelimit_used(const struct ch_ratelimit *rl);

/* Evictions that dropped a key whose bucket was not yet full again. */
uint64_t ch_ratelimit_evictions_live(const struct ch_ratelimit *rl);

#endif
