/*
 * Rate limits shared by every worker: how many attempts one key (a client
 * address, an account) made in the last minute, counted in shared memory
 * so that a limit holds however the kernel spreads connections over the
 * workers.
 *
 * Each key hashes to a slot (64-bit hash, linear probing over
 * CH_LIMIT_PROBE slots; when all are taken the stalest is reused). A slot
 * keeps the attempts of the current and the previous minute, and the count
 * that decides is the sliding-window estimate
 *     previous * (time left in this minute / one minute) + current,
 * so there is no burst at a minute's boundary. The whole state of a slot is
 * one 64-bit word updated by compare-and-swap: no lock, and a process that
 * dies between two instructions leaves every slot consistent.
 */
#ifndef CH_LIMIT_H
#define CH_LIMIT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define CH_LIMIT_WINDOW_MS 60000u
#define CH_LIMIT_PROBE 8
#define CH_LIMIT_MAX 1000000u		/* per minute; counts are 20 bits */

struct ch_limit_slot {
	/* The key's hash, 0 when free. Claimed by CAS from 0; replaced
	 * (relaxed store) only when reusing the stalest slot of a probe run,
	 * where a race costs at most one key's count. */
	_Atomic uint64_t key;
	/* minute (24 bits) | previous minute's count (20) | this minute's (20).
	 * Every change is one CAS on the whole word (relaxed: no other memory
	 * depends on it). */
	_Atomic uint64_t state;
};

struct ch_limit {
	struct ch_limit_slot *slots;	/* in shared memory */
	uint32_t n;			/* a power of two */
	unsigned per_minute;		/* 0: no limit */
};

/* Count one attempt by key at now_ms (CLOCK_MONOTONIC). 1: allowed and
 * counted; 0: over the limit (not counted), *retry_after_s set to the
 * seconds after which one attempt will be allowed (1 to 60). */
int ch_limit_hit(const struct ch_limit *l, const char *key, uint64_t now_ms,
		 uint32_t *retry_after_s);

/* The same verdict without counting. */
int ch_limit_check(const struct ch_limit *l, const char *key, uint64_t now_ms,
		   uint32_t *retry_after_s);

/* Forget key's attempts (a successful login clears its failures). */
void ch_limit_reset(const struct ch_limit *l, const char *key);

#endif
