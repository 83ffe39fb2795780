/*
 * The shared memory every chatd process maps: one memfd created by the
 * master before it forks, so it is inherited by every child and nothing
 * is left behind in /dev/shm.
 *
 * Layout, version 2 (offsets in the header; every region 4 KiB aligned):
 *
 *   header        struct ch_shm_header: magic, version, sizes, offsets
 *   stats         CH_SHM_PROCS blocks of struct ch_stats, one cache line
 *                 multiple each: [0] master, [1] journal, [2 + i] worker i
 *   ingress       CH_MAX_WORKERS SPSC rings, worker i -> journal
 *   replies       CH_MAX_WORKERS SPSC rings, journal -> worker i
 *   room table    n_rings struct ch_shm_room: which room a ring carries
 *                 and which workers have members in it
 *   room rings    n_rings SPMC rings (shm/ring.h), the journal writes,
 *                 every worker reads with a cursor of its own
 *   limits        CH_SHM_LIMITS tables of CH_SHM_LIMIT_SLOTS rate-limit
 *                 slots (shm/limit.h), updated by CAS from any worker
 *
 * Ownership: every ring has exactly one writer (see ring.h); a stats
 * block is written only by its process; the room table only by the
 * journal; a rate-limit slot by compare-and-swap. No lock is shared between processes, so a process killed at
 * any instruction stops no other.
 *
 * Wake-ups go through eventfds the master also creates before forking:
 * one the workers write to wake the journal, one per worker the journal
 * writes to wake that worker, once per batch.
 */
#ifndef CH_SHM_H
#define CH_SHM_H

#include "master/config.h"
#include "shm/limit.h"
#include "shm/ring.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define CH_SHM_MAGIC 0x316d737464746863ull	/* "chtdtsm1" */
#define CH_SHM_VERSION 3u
#define CH_SHM_PROC_MASTER 0
#define CH_SHM_PROC_JOURNAL 1
#define CH_SHM_PROC_WORKER(i) (2 + (i))
#define CH_SHM_PROCS (2 + CH_MAX_WORKERS)
#define CH_SHM_INGRESS_BYTES (4u << 20)		/* per worker */
#define CH_SHM_REPLY_BYTES (4u << 20)		/* per worker */
#define CH_FSYNC_BUCKETS 12			/* fsync latency histogram */
#define CH_SHM_LIMIT_SLOTS 16384		/* per rate-limit table */

enum ch_shm_limit_table {
	CH_LIMIT_AUTH_PER_IP,		/* register and login attempts per address */
	CH_LIMIT_FAILURES_PER_USER,	/* failed logins per account */
	CH_SHM_LIMITS
};

/*
 * Per-process counters, listed once (memcached's way): the struct, the
 * summing in chatadm and the /metrics names all come from this list.
 * X(name, kind, help): kind is counter (only grows) or gauge.
 */
#define CH_STATS_FIELDS(X) \
	X(connections, gauge, "Client connections open") \
	X(accepted, counter, "Client connections accepted") \
	X(refused, counter, "Connections refused at max_connections") \
	X(requests, counter, "HTTP requests served") \
	X(responses_2xx, counter, "HTTP responses with a 2xx status") \
	X(responses_3xx, counter, "HTTP responses with a 3xx status") \
	X(responses_4xx, counter, "HTTP responses with a 4xx status") \
	X(responses_5xx, counter, "HTTP responses with a 5xx status") \
	X(hash_queue, gauge, "Password hashing jobs queued or running") \
	X(hash_boosts, counter, "Times password hashing was raised from idle priority because logins were starved of CPU") \
	X(hash_memory_reused, counter, "Password hashes that used memory kept mapped from an earlier hash") \
	X(history_ring, counter, "History pages served from the room ring") \
	X(history_log, counter, "History pages read from the log") \
	X(messages_in, counter, "Messages sent by clients and stored") \
	X(messages_out, counter, "Message deliveries written to clients") \
	X(journal_appends, counter, "Records appended to the log") \
	X(journal_bytes, counter, "Bytes appended to the log") \
	X(journal_batches, counter, "Group-commit batches written") \
	X(journal_fsyncs, counter, "fdatasync calls on the log") \
	X(journal_fsync_us, counter, "Microseconds spent in fdatasync") \
	X(journal_log_end, gauge, "Log position after the last record") \
	X(requests_failed, counter, "Requests to the journal answered with an error or timed out") \
	X(conns_handed_over, counter, "Connections a retiring worker handed to the others") \
	X(conns_adopted, counter, "Connections taken over from a retiring worker") \
	X(repl_role, gauge, "Replication role: 0 primary, 1 standby") \
	X(repl_epoch, gauge, "Replication epoch: bumped by each promotion") \
	X(repl_connected, gauge, "1 while a replication peer is attached and streaming") \
	X(repl_peer_addr, gauge, "Replication peer's IPv4 address as a 32-bit number, 0 for none") \
	X(repl_peer_port, gauge, "Replication peer's TCP port, 0 for none") \
	X(repl_sent_pos, gauge, "Log position streamed to the standby (primary) or received (standby)") \
	X(repl_acked_pos, gauge, "Log position the standby has confirmed durable") \
	X(repl_lag_records, gauge, "Records appended here and not yet confirmed by the standby") \
	X(repl_lag_bytes, gauge, "Log bytes appended here and not yet confirmed by the standby") \
	X(repl_lag_ms, gauge, "Milliseconds from the append to the standby's confirmation, last batch") \
	X(repl_lag_p99_ms, gauge, "p99 of that latency over the last 4096 confirmed batches") \
	X(repl_reconnects, counter, "Replication connections made (standby) or accepted (primary)") \
	X(repl_ack_timeouts, counter, "Sends failed because the standby did not confirm in time") \
	X(repl_bytes, counter, "Log bytes streamed (primary) or received (standby)")

struct ch_stats {
#define CH_STATS_MEMBER(name, kind, help) _Atomic uint64_t name;
	CH_STATS_FIELDS(CH_STATS_MEMBER)
#undef CH_STATS_MEMBER
	/* fsync latency, bucket b counts calls under 2^b * 100 us (the last
	 * bucket takes the rest). Written by the journal only. */
	_Atomic uint64_t fsync_bucket[CH_FSYNC_BUCKETS];
	_Atomic uint64_t pid;
	_Atomic uint64_t started_ms;	/* CLOCK_REALTIME */
	/* 1 once the process serves (set by it, cleared by the master before
	 * each start): a child that dies before it ever got ready is in a
	 * crash loop and restarted with backoff; one that served is not. */
	_Atomic uint64_t ready;
} __attribute__((aligned(64)));

/* Owner-only update: a relaxed load and store, no read-modify-write, since
 * no other process ever writes the block (readers only sum it). */
#define CH_STAT_ADD(st, field, n) \
	atomic_store_explicit(&(st)->field, \
			      atomic_load_explicit(&(st)->field, memory_order_relaxed) + (n), \
			      memory_order_relaxed)
#define CH_STAT_SET(st, field, v) atomic_store_explicit(&(st)->field, (v), memory_order_relaxed)
#define CH_STAT_GET(st, field) atomic_load_explicit(&(st)->field, memory_order_relaxed)

struct ch_shm_room {
	/* The numeric room id the ring carries, 0 when the ring is free.
	 * Written by the journal (release) after it resets the ring; a worker
	 * reads it (acquire) before trusting a ring index it was told. */
	_Atomic uint32_t room_id;
	uint32_t pad;
	/* Bit i set: worker i has members in this room and is woken when
	 * the ring gets messages. Written by the journal only (relaxed: a
	 * wake-up it misses is re-sent with the next batch). */
	_Atomic uint64_t members;
};

struct ch_shm_header {
	uint64_t magic;
	uint32_t version;
	uint32_t n_workers_max;
	uint64_t size;
	uint64_t stats_off;
	uint64_t ingress_off, ingress_stride;
	uint64_t reply_off, reply_stride;
	uint64_t rooms_off;
	uint64_t rings_off, ring_stride;
	uint64_t limits_off;
	uint32_t n_rings, ring_slots, ring_slot_size;
	uint32_t pad;
};

/* The mapping as a process sees it, plus the eventfds. */
struct ch_shm {
	void *base;
	size_t size;
	int memfd;
	int journal_efd;			/* workers -> journal */
	int worker_efd[CH_MAX_WORKERS];	/* journal -> worker i */
};

/* Master: create, size, map and initialise everything. */
int ch_shm_create(struct ch_shm *shm, uint32_t n_rings, uint32_t ring_slots,
		  uint32_t ring_slot_size);
void ch_shm_destroy(struct ch_shm *shm);

static inline struct ch_shm_header *ch_shm_header(const struct ch_shm *shm)
{
	return (struct ch_shm_header *)shm->base;
}

struct ch_stats *ch_shm_stats(const struct ch_shm *shm, int proc);
struct ch_spsc *ch_shm_ingress(const struct ch_shm *shm, int worker);
struct ch_spsc *ch_shm_reply(const struct ch_shm *shm, int worker);
struct ch_shm_room *ch_shm_room(const struct ch_shm *shm, uint32_t ring);
struct ch_mring *ch_shm_ring(const struct ch_shm *shm, uint32_t ring);
struct ch_limit_slot *ch_shm_limit_slots(const struct ch_shm *shm, enum ch_shm_limit_table t);

/* Wake the process behind an eventfd (a failed write is harmless: the
 * counter is already non-zero, so the reader wakes anyway). */
void ch_shm_wake(int efd);

#endif
