/*
 * Memory for password hashing that stays mapped from one hash to the next.
 *
 * Why: libxcrypt's yescrypt maps a fresh 16 MiB region (at the default
 * cost) for every hash and unmaps it afterwards, and its API has no way to
 * hand it memory. Measured here (Linux 6.18 in a VM), the 4,100 page
 * faults that fill the region cost as much CPU as the hash itself: 11-13
 * ms of system time beside 12 ms of user time. That kernel work is what a
 * storm of logins steals from the event loops: SCHED_IDLE (common/sched.h)
 * lets a waking loop preempt a hashing thread's user code at once, not its
 * page faults and unmaps.
 *
 * What: ch_hashmem_init() points libcrypt's own references to mmap and
 * munmap (its GOT slots; nothing else in the process sees a change) at two
 * wrappers. A private anonymous read-write mapping of at least
 * CH_HASHMEM_MIN bytes at no fixed address, which in libcrypt only a
 * yescrypt (or scrypt) region is, comes from a table of regions kept
 * mapped, aligned to a huge page and advised MADV_HUGEPAGE; unmapping it
 * zeroes it (what the kernel would do before handing the pages to anyone)
 * and puts it back. Any other call goes to the real function. At most
 * `keep` regions are kept: beyond that, a region is mapped and unmapped as
 * before.
 *
 * Where it cannot hook libcrypt (another architecture, a libcrypt it does
 * not recognise), hashing works as before; ch_hashmem_init() says so once
 * in the log.
 *
 * Threading: ch_hashmem_init() once per process, before any thread hashes
 * (it writes the slots libcrypt's code reads). The wrappers are
 * thread-safe; each region is used by one hash at a time.
 */
#ifndef CH_HASHMEM_H
#define CH_HASHMEM_H

#include <stddef.h>
#include <stdint.h>

/* A smaller mapping is not a hash's region and is passed through. */
#define CH_HASHMEM_MIN  ((size_t)1 << 20)
/* The most regions a process may keep (one per hashing thread). */
#define CH_HASHMEM_MAX_KEEP 64

/*
 * Hook libcrypt so that up to keep (1..CH_HASHMEM_MAX_KEEP) regions stay
 * mapped between hashes. 0 when hooked (again: a later call only changes
 * keep), -1 when not (logged once; hashing works as before).
 */
int ch_hashmem_init(int keep);

struct ch_hashmem_stats {
	uint64_t reused;	/* hashes served by a region kept from before */
	uint64_t mapped;	/* regions mapped to be kept */
	uint64_t passed;	/* large mappings passed through: every region kept was busy */
	size_t bytes_kept;	/* mapped now in kept regions, busy or not */
};

/* A snapshot of the counters (all zero when not hooked); takes no lock. */
void ch_hashmem_stats(struct ch_hashmem_stats *out);

#endif
