/*
 * Fixed-memory token-bucket rate limiter: see ratelimit.h for the rule.
 *
 * Layout: entries[] is one array of rl->slots; an entry is linked into
 * (a) one hash chain through hnext, starting at buckets[hash & mask], and
 * (b) the LRU list through lru_prev/lru_next, most recent at lru_head.
 * Links are entry index + 1, so 0 means "none" and a zeroed array is a
 * valid empty table.
 *
 * Invariants:
 * - entries[0..taken) are on the LRU list; the rest are untouched.
 * - An entry is on a hash chain iff in_use; live counts them.
 * - Emptied entries (ch_ratelimit_reset) sit at the LRU tail, so they are
 *   reused before any live key is evicted.
 * - credit <= limit * CH_RATELIMIT_WINDOW_MS as of last_ms, except after
 *   a limit was lowered, until the key's next hit clamps it.
 */
#define _GNU_SOURCE
#include "common/ratelimit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define RL_MS_PER_S 1000u
#define RL_BUCKETS_PER_SLOT 2	/* keeps chains short: load <= 0.5 */

struct ch_ratelimit_entry {
	uint64_t hash;		/* SipHash of the whole key */
	uint64_t last_ms;	/* when credit was last brought up to date */
	uint64_t credit;	/* units; an attempt costs CH_RATELIMIT_WINDOW_MS */
	size_t key_len;		/* the whole key's length */
	uint32_t hnext;
	uint32_t lru_prev;
	uint32_t lru_next;
	uint8_t in_use;
	char key[CH_RATELIMIT_KEY_MAX];	/* its first bytes */
};

/* ---------------------------------------------------------------- */
/* SipHash-2-4 (Aumasson and Bernstein), 64-bit output               */
/* ---------------------------------------------------------------- */

#define SIP_ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))

static void sip_round(uint64_t v[4])
{
	v[0] += v[1]; v[1] = SIP_ROTL(v[1], 13); v[1] ^= v[0]; v[0] = SIP_ROTL(v[0], 32);
	v[2] += v[3]; v[3] = SIP_ROTL(v[3], 16); v[3] ^= v[2];
	v[0] += v[3]; v[3] = SIP_ROTL(v[3], 21); v[3] ^= v[0];
	v[2] += v[1]; v[1] = SIP_ROTL(v[1], 17); v[1] ^= v[2]; v[2] = SIP_ROTL(v[2], 32);
}

static void sip_absorb(uint64_t v[4], uint64_t m)
{
	v[3] ^= m;
	sip_round(v);
	sip_round(v);
	v[0] ^= m;
}

static uint64_t siphash24(const uint64_t k[2], const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t v[4] = {
		k[0] ^ 0x736f6d6570736575ull, k[1] ^ 0x646f72616e646f6dull,
		k[0] ^ 0x6c7967656e657261ull, k[1] ^ 0x7465646279746573ull,
	};
	uint64_t last = (uint64_t)len << 56;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		uint64_t m = 0;

		for (int b = 0; b < 8; b++)
			m |= (uint64_t)p[i + b] << (8 * b);
		sip_absorb(v, m);
	}
	for (int b = 0; i + b < len; b++)
		last |= (uint64_t)p[i + b] << (8 * b);
	sip_absorb(v, last);
	v[2] ^= 0xff;
	for (int r = 0; r < 4; r++)
		sip_round(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* ---------------------------------------------------------------- */
/* lists                                                             */
/* ---------------------------------------------------------------- */

static struct ch_ratelimit_entry *entry(const struct ch_ratelimit *rl, uint32_t link)
{
	return &rl->entries[link - 1];
}

static void lru_unlink(struct ch_ratelimit *rl, uint32_t link)
{
	struct ch_ratelimit_entry *e = entry(rl, link);

	if (e->lru_prev)
		entry(rl, e->lru_prev)->lru_next = e->lru_next;
	else
		rl->lru_head = e->lru_next;
	if (e->lru_next)
		entry(rl, e->lru_next)->lru_prev = e->lru_prev;
	else
		rl->lru_tail = e->lru_prev;
	e->lru_prev = e->lru_next = 0;
}

static void lru_push_head(struct ch_ratelimit *rl, uint32_t link)
{
	struct ch_ratelimit_entry *e = entry(rl, link);

	e->lru_prev = 0;
	e->lru_next = rl->lru_head;
	if (rl->lru_head)
		entry(rl, rl->lru_head)->lru_prev = link;
	else
		rl->lru_tail = link;
	rl->lru_head = link;
}

static void lru_push_tail(struct ch_ratelimit *rl, uint32_t link)
{
	struct ch_ratelimit_entry *e = entry(rl, link);

	e->lru_next = 0;
	e->lru_prev = rl->lru_tail;
	if (rl->lru_tail)
		entry(rl, rl->lru_tail)->lru_next = link;
	else
		rl->lru_head = link;
	rl->lru_tail = link;
}

static uint32_t *bucket_of(const struct ch_ratelimit *rl, uint64_t hash)
{
	return &rl->buckets[hash & (rl->nbuckets - 1)];
}

static void hash_unlink(struct ch_ratelimit *rl, uint32_t link)
{
	uint32_t *pp = bucket_of(rl, entry(rl, link)->hash);

	while (*pp != link)
		pp = &entry(rl, *pp)->hnext;
	*pp = entry(rl, link)->hnext;
	entry(rl, link)->hnext = 0;
}

static uint32_t lookup(const struct ch_ratelimit *rl, const char *key,
		       size_t len, uint64_t hash)
{
	size_t stored = len < CH_RATELIMIT_KEY_MAX ? len : CH_RATELIMIT_KEY_MAX;
	uint32_t link = *bucket_of(rl, hash);

	while (link) {
		const struct ch_ratelimit_entry *e = entry(rl, link);

		if (e->hash == hash && e->key_len == len &&
		    memcmp(e->key, key, stored) == 0)
			return link;
		link = e->hnext;
	}
	return 0;
}

/* ---------------------------------------------------------------- */
/* buckets                                                           */
/* ---------------------------------------------------------------- */

static uint64_t capacity(const struct ch_ratelimit *rl)
{
	return (uint64_t)rl->limit * CH_RATELIMIT_WINDOW_MS;
}

/* e's credit brought forward to now_ms, capped at the capacity. */
static uint64_t credit_at(const struct ch_ratelimit *rl,
			  const struct ch_ratelimit_entry *e, uint64_t now_ms)
{
	uint64_t cap = capacity(rl), c = e->credit;

	if (now_ms > e->last_ms) {
		uint64_t dt = now_ms - e->last_ms;

		/* A whole window refills any bucket; stopping here also keeps
		 * dt * limit far from overflow. */
		if (dt >= CH_RATELIMIT_WINDOW_MS)
			return cap;
		c += dt * rl->limit;
	}
	return c < cap ? c : cap;
}

/* 1 when credit pays for an attempt; else 0 and the wait in seconds. */
static int decide(const struct ch_ratelimit *rl, uint64_t credit, uint32_t *retry_after_s)
{
	uint64_t need, wait_ms;

	if (credit >= CH_RATELIMIT_WINDOW_MS) {
		if (retry_after_s)
			*retry_after_s = 0;
		return 1;
	}
	need = CH_RATELIMIT_WINDOW_MS - credit;
	wait_ms = (need + rl->limit - 1) / rl->limit;
	if (retry_after_s)
		*retry_after_s = (uint32_t)((wait_ms + RL_MS_PER_S - 1) / RL_MS_PER_S);
	return 0;
}

/* An entry for a new key: a never-used one, or the LRU tail evicted. */
static uint32_t take_entry(struct ch_ratelimit *rl, uint64_t now_ms)
{
	uint32_t link;
	struct ch_ratelimit_entry *e;

	if (rl->taken < rl->slots) {
		link = (uint32_t)++rl->taken;
		lru_push_head(rl, link);
		return link;
	}
	link = rl->lru_tail;
	e = entry(rl, link);
	if (e->in_use) {
		if (credit_at(rl, e, now_ms) < capacity(rl))
			rl->evictions_live++;
		hash_unlink(rl, link);
		e->in_use = 0;
		rl->live--;
	}
	lru_unlink(rl, link);
	lru_push_head(rl, link);
	return link;
}

/* ---------------------------------------------------------------- */
/* public API                                                        */
/* ---------------------------------------------------------------- */

int ch_ratelimit_init(struct ch_ratelimit *rl, size_t slots,
		      unsigned limit_per_minute)
{
	size_t nb = 1;

	memset(rl, 0, sizeof(*rl));
	if (slots < 1 || slots > CH_RATELIMIT_MAX_SLOTS ||
	    limit_per_minute > CH_RATELIMIT_MAX_LIMIT) {
		errno = EINVAL;
		return -1;
	}
	while (nb < slots * RL_BUCKETS_PER_SLOT)
		nb <<= 1;
	if (getrandom(rl->sip_key, sizeof(rl->sip_key), 0) !=
	    (ssize_t)sizeof(rl->sip_key))
		return -1;	/* errno from getrandom; 16 bytes never come short */
	rl->entries = calloc(slots, sizeof(*rl->entries));
	rl->buckets = calloc(nb, sizeof(*rl->buckets));
	if (!rl->entries || !rl->buckets) {
		ch_ratelimit_free(rl);
		errno = ENOMEM;
		return -1;
	}
	rl->slots = slots;
	rl->nbuckets = nb;
	rl->limit = limit_per_minute;
	return 0;
}

void ch_ratelimit_free(struct ch_ratelimit *rl)
{
	free(rl->entries);
	free(rl->buckets);
	memset(rl, 0, sizeof(*rl));
}

int ch_ratelimit_set_limit(struct ch_ratelimit *rl, unsigned limit_per_minute)
{
	if (limit_per_minute > CH_RATELIMIT_MAX_LIMIT) {
		errno = EINVAL;
		return -1;
	}
	rl->limit = limit_per_minute;
	return 0;
}

int ch_ratelimit_hit(struct ch_ratelimit *rl, const char *key, uint64_t now_ms,
		     uint32_t *retry_after_s)
{
	size_t len;
	uint64_t hash;
	uint32_t link;
	struct ch_ratelimit_entry *e;

	if (rl->limit == 0)
		return decide(rl, CH_RATELIMIT_WINDOW_MS, retry_after_s);
	len = strlen(key);
	hash = siphash24(rl->sip_key, key, len);
	link = lookup(rl, key, len, hash);
	if (link) {
		lru_unlink(rl, link);
		lru_push_head(rl, link);
		e = entry(rl, link);
	} else {
		link = take_entry(rl, now_ms);
		e = entry(rl, link);
		e->hash = hash;
		e->key_len = len;
		memcpy(e->key, key, len < CH_RATELIMIT_KEY_MAX ? len : CH_RATELIMIT_KEY_MAX);
		e->credit = capacity(rl);
		e->last_ms = now_ms;
		e->in_use = 1;
		e->hnext = *bucket_of(rl, hash);
		*bucket_of(rl, hash) = link;
		rl->live++;
	}
	e->credit = credit_at(rl, e, now_ms);
	if (now_ms > e->last_ms)
		e->last_ms = now_ms;
	if (!decide(rl, e->credit, retry_after_s))
		return 0;
	e->credit -= CH_RATELIMIT_WINDOW_MS;
	return 1;
}

int ch_ratelimit_check(const struct ch_ratelimit *rl, const char *key,
		       uint64_t now_ms, uint32_t *retry_after_s)
{
	size_t len;
	uint32_t link;

	if (rl->limit == 0)
		return decide(rl, CH_RATELIMIT_WINDOW_MS, retry_after_s);
	len = strlen(key);
	link = lookup(rl, key, len, siphash24(rl->sip_key, key, len));
	if (!link)
		return decide(rl, capacity(rl), retry_after_s);
	return decide(rl, credit_at(rl, entry(rl, link), now_ms), retry_after_s);
}

void ch_ratelimit_reset(struct ch_ratelimit *rl, const char *key)
{
	size_t len;
	uint32_t link;

	if (!rl->entries)
		return;
	len = strlen(key);
	link = lookup(rl, key, len, siphash24(rl->sip_key, key, len));
	if (!link)
		return;
	hash_unlink(rl, link);
	entry(rl, link)->in_use = 0;
	rl->live--;
	lru_unlink(rl, link);
	lru_push_tail(rl, link);
}

size_t ch_ratelimit_used(const struct ch_ratelimit *rl)
{
	return rl->live;
}

uint64_t ch_ratelimit_evictions_live(const struct ch_ratelimit *rl)
{
	return rl->evictions_live;
}
