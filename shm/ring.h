/*
 * Lock-free rings in shared memory (DESIGN.md, "Shared memory").
 *
 * Both rings live inside the master's memfd mapping (MAP_SHARED), which
 * every child inherits at the same address. They hold no pointers, only
 * free-running uint64 positions that are masked into the arrays and
 * compared by unsigned difference, so they never wrap in practice (2^64
 * bytes or 2^62 slots) and mean the same thing in every process.
 *
 * ch_spsc: single producer, single consumer byte ring of variable-length
 *   records (uint32 type + payload). Ingress (worker -> journal) and
 *   replies (journal -> worker). Records are 8-byte aligned and never
 *   split: a record that does not fit before the end of the array is
 *   preceded by a padding marker that fills the rest of it.
 *
 * ch_mring: single producer, many consumers ring of fixed-size slots (one
 *   room). The journal publishes entries (an encoded frame plus a uint64
 *   tag, the room seq); every worker reads with its own cursor, kept in its
 *   own memory. The writer never waits for readers: it overwrites the
 *   oldest slots, and a reader that fell more than a ring behind is told so
 *   (CH_MRING_LAPPED) instead of being handed torn data.
 *
 * Crash safety (no locks anywhere): a producer publishes with one release
 * store of its head after the data is written, so a producer killed at any
 * instruction leaves at most unpublished bytes that no consumer can see.
 * A restarted producer or consumer must call its *_attach() function,
 * which reloads its private state from the shared indexes.
 *
 * Each shared index sits on its own 64-byte cache line, apart from the
 * read-mostly geometry and from each side's private state.
 */
#ifndef CH_RING_H
#define CH_RING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define CH_RING_CACHE_LINE 64

/* ------------------------------------------------------------------ */
/* SPSC byte ring                                                      */
/* ------------------------------------------------------------------ */

#define CH_SPSC_MIN_CAPACITY 64u		/* bytes; smaller is refused */
#define CH_SPSC_MAX_CAPACITY (1u << 30)	/* bytes; larger is refused */
#define CH_SPSC_ALIGN 8u			/* record alignment in the ring */
#define CH_SPSC_HDR_SIZE 8u			/* uint32 len + uint32 type */
#define CH_SPSC_TYPE_PAD UINT32_MAX		/* reserved: padding marker */

struct ch_spsc {
	/* Geometry: written by ch_spsc_init() only, read by both sides. */
	uint32_t capacity;		/* bytes in data[], a power of two */
	uint32_t mask;			/* capacity - 1 */
	uint32_t max_payload;		/* largest len reserve() accepts */

	/*
	 * Bytes published by the producer (free-running). Written by the
	 * producer only (release), read by the consumer (acquire).
	 */
	_Alignas(CH_RING_CACHE_LINE) _Atomic uint64_t head;

	/*
	 * Bytes released by the consumer (free-running). Written by the
	 * consumer only (release), read by the producer (acquire).
	 */
	_Alignas(CH_RING_CACHE_LINE) _Atomic uint64_t tail;

	/* Producer-private: touched only by the producer process. */
	_Alignas(CH_RING_CACHE_LINE) struct {
		uint64_t pos;		/* end of the committed batch */
		uint64_t published;	/* last value stored into head */
		uint64_t tail_seen;	/* last tail loaded; refreshed when full */
		uint32_t reserved;	/* len of the open reservation, or NONE */
	} prod;

	/* Consumer-private: touched only by the consumer process. */
	_Alignas(CH_RING_CACHE_LINE) struct {
		uint64_t pos;		/* start of the next record to peek */
		uint64_t released;	/* last value stored into tail */
		uint64_t head_seen;	/* last head loaded; refreshed when empty */
		uint32_t peeked;	/* size of the peeked record, 0 if none */
		uint32_t corrupt;	/* a bad header was seen and logged */
	} cons;

	_Alignas(CH_RING_CACHE_LINE) unsigned char data[];
};

/* Bytes of shared memory for a ring of capacity bytes; 0 if invalid. */
size_t ch_spsc_mem_size(uint32_t capacity);

/*
 * Lay out a ring in mem (ch_spsc_mem_size(capacity) bytes, 64-byte
 * aligned, normally in the shared mapping). Only when no process uses it.
 * Returns 0, or -1 with errno EINVAL (capacity not a power of two in
 * [CH_SPSC_MIN_CAPACITY, CH_SPSC_MAX_CAPACITY], or mem misaligned).
 */
int ch_spsc_init(void *mem, uint32_t capacity);

/*
 * Take over one side after a (re)start: the producer drops anything it
 * committed but never published and continues at the shared head; the
 * consumer continues at the shared tail, so records it popped but never
 * released are delivered again (at least once). Harmless on a fresh ring.
 */
void ch_spsc_producer_attach(struct ch_spsc *r);
void ch_spsc_consumer_attach(struct ch_spsc *r);

/* ---- producer side ---- */

/*
 * Room for a payload of len bytes, contiguous and 8-byte aligned; write the
 * payload there, then ch_spsc_commit(). NULL with errno EAGAIN when the
 * ring is full (try later), EMSGSIZE when len > ch_spsc_max_payload().
 * A new reserve() replaces an uncommitted one.
 */
void *ch_spsc_reserve(struct ch_spsc *r, uint32_t len);

/* Close the reservation with the payload's real type and len (<= reserved).
 * The record joins the batch that the next ch_spsc_publish() releases. */
void ch_spsc_commit(struct ch_spsc *r, uint32_t type, uint32_t len);

/* Make every committed record visible to the consumer (one release store). */
void ch_spsc_publish(struct ch_spsc *r);

/* reserve + copy + commit + publish. 0, or -1 with errno as reserve(). */
int ch_spsc_push(struct ch_spsc *r, uint32_t type, const void *p, uint32_t len);

/* ---- consumer side ---- */

/*
 * The oldest published record, or NULL when there is none (errno EAGAIN),
 * or NULL with errno EBADMSG if the ring holds a malformed header (only a
 * bug or a stray write can cause it; it is logged once and the ring stays
 * stuck). The pointer stays valid until ch_spsc_pop(). Peeking again
 * without a pop returns the same record. When the ring is empty, peek
 * also releases the space of popped records to the producer.
 */
const void *ch_spsc_peek(struct ch_spsc *r, uint32_t *type, uint32_t *len);

/*
 * Consume the peeked record. Its space goes back to the producer lazily:
 * on ch_spsc_release(), when a peek finds the ring empty, or once a
 * quarter of the ring is waiting to be released.
 */
void ch_spsc_pop(struct ch_spsc *r);

/* Return the space of all popped records to the producer (release store). */
void ch_spsc_release(struct ch_spsc *r);

/* ---- either side, or a stats reader ---- */

uint32_t ch_spsc_capacity(const struct ch_spsc *r);
uint32_t ch_spsc_max_payload(const struct ch_spsc *r);
/* Bytes published and not yet released (records, headers, padding). */
uint64_t ch_spsc_used(const struct ch_spsc *r);

/* ------------------------------------------------------------------ */
/* SPMC room ring                                                      */
/* ------------------------------------------------------------------ */

#define CH_MRING_MIN_SLOTS 4u
#define CH_MRING_MAX_SLOTS (1u << 24)
#define CH_MRING_MIN_SLOT_SIZE 32u		/* bytes, a multiple of 8 */
#define CH_MRING_MAX_SLOT_SIZE (1u << 16)
#define CH_MRING_MAX_BYTES (1ull << 31)	/* nslots * slot_size at most */
#define CH_MRING_HDR_SIZE 16u			/* uint64 tag + uint64 len */
/* One entry spans at most nslots / CH_MRING_SPAN_DIV slots, so publishing
 * it never wipes the whole ring. */
#define CH_MRING_SPAN_DIV 2u
/* ch_mring_oldest() skips nslots / CH_MRING_RESYNC_DIV slots past the
 * strict oldest, so that a resynced reader is not lapped again at once. */
#define CH_MRING_RESYNC_DIV 4u
/* Stamp flags; positions stay below 2^62 (146 years at 10^9 slots/s). */
#define CH_MRING_STAMP_CONT (1ull << 62)	/* not the entry's first slot */
#define CH_MRING_STAMP_BUSY UINT64_MAX		/* being overwritten */

/* ch_mring_read() results. */
enum ch_mring_status {
	CH_MRING_OK = 0,	/* one entry copied, cursor advanced past it */
	CH_MRING_EMPTY,		/* cursor is at the head: nothing new */
	CH_MRING_LAPPED,	/* the entry at cursor was overwritten: catch up
				   elsewhere, then ch_mring_resync() */
	CH_MRING_TOOSMALL,	/* cap < entry len; *len says how much is needed,
				   cursor unchanged */
	CH_MRING_RESET		/* cursor predates the ring's last reset (the ring
				   now serves another room) or was never taken
				   from this ring: drop it */
};

struct ch_mring {
	/* Geometry: written by ch_mring_init() only. */
	uint32_t nslots;		/* a power of two */
	uint32_t mask;			/* nslots - 1 */
	uint32_t slot_size;		/* bytes, a multiple of 8 */
	uint32_t slot_words;		/* slot_size / 8 */
	uint32_t max_span;		/* slots one entry may use */
	uint32_t max_entry;		/* bytes of entry data, see above */

	/*
	 * Written by the writer only, read by every reader. head: position
	 * after the last published entry (release store / acquire load).
	 * base: first position of the current generation; ch_mring_reset()
	 * raises it above every earlier position (release store, before
	 * head; readers load it after head).
	 */
	_Alignas(CH_RING_CACHE_LINE) _Atomic uint64_t head;
	_Atomic uint64_t base;

	/* Writer-private: position after the last entry written (may be
	 * ahead of head while a batch is open). */
	_Alignas(CH_RING_CACHE_LINE) uint64_t wpos;

	/*
	 * nslots stamps, then nslots * slot_words data words. A stamp is the
	 * position its slot was last written for, with CH_MRING_STAMP_CONT
	 * set on every slot of an entry but the first, or CH_MRING_STAMP_BUSY
	 * while the writer is overwriting it. Data words are accessed with
	 * relaxed atomics, because readers copy them while the writer may be
	 * overwriting them (the stamps tell afterwards whether that happened).
	 */
	_Alignas(CH_RING_CACHE_LINE) _Atomic uint64_t words[];
};

/* Bytes of shared memory for the ring; 0 if the geometry is invalid. */
size_t ch_mring_mem_size(uint32_t nslots, uint32_t slot_size);

/*
 * Lay out a ring in mem (64-byte aligned, ch_mring_mem_size() bytes).
 * nslots: a power of two in [CH_MRING_MIN_SLOTS, CH_MRING_MAX_SLOTS];
 * slot_size: a multiple of 8 in [CH_MRING_MIN_SLOT_SIZE,
 * CH_MRING_MAX_SLOT_SIZE]; nslots * slot_size <= CH_MRING_MAX_BYTES.
 * Returns 0, or -1 with errno EINVAL.
 */
int ch_mring_init(void *mem, uint32_t nslots, uint32_t slot_size);

/* ---- writer (one process at a time) ---- */

/* Take over as writer after a (re)start: continue at the shared head. */
void ch_mring_writer_attach(struct ch_mring *r);

/*
 * Write one entry without publishing it (batch); readers see it after
 * ch_mring_flush(). Never blocks: overwrites the oldest slots. Returns 0,
 * or -1 with errno EMSGSIZE when len > ch_mring_max_entry().
 */
int ch_mring_write(struct ch_mring *r, uint64_t tag, const void *data, uint32_t len);

/* Publish every written entry (one release store of head). */
void ch_mring_flush(struct ch_mring *r);

/* write + flush. */
int ch_mring_publish(struct ch_mring *r, uint64_t tag, const void *data, uint32_t len);

/*
 * Start a new generation (the ring now serves another room). Every cursor
 * taken before gets CH_MRING_RESET. Written but unflushed entries are
 * dropped. Returns the new generation's first position.
 */
uint64_t ch_mring_reset(struct ch_mring *r);

/* ---- readers (any number, each with its own cursor) ---- */

/* Position after the last published entry: a new reader starts here. */
uint64_t ch_mring_head(const struct ch_mring *r);

/* First position of the current generation. */
uint64_t ch_mring_base(const struct ch_mring *r);

/*
 * Copy the entry at *cursor into buf (cap bytes): its length to *len and
 * its tag to *tag. See enum ch_mring_status. An entry is returned only if
 * none of its slots was overwritten while it was copied; on any result
 * but CH_MRING_OK, buf may have been scribbled on.
 */
enum ch_mring_status ch_mring_read(const struct ch_mring *r, uint64_t *cursor,
				   void *buf, uint32_t cap, uint32_t *len,
				   uint64_t *tag);

/*
 * The start of an old entry still in the ring (a quarter of a ring newer
 * than the oldest, see CH_MRING_RESYNC_DIV), or the head if there is none.
 * Not generation-safe by itself: a reader holding a cursor should use
 * ch_mring_resync().
 */
uint64_t ch_mring_oldest(const struct ch_mring *r);

/*
 * After CH_MRING_LAPPED: move *cursor to ch_mring_oldest(). Returns
 * CH_MRING_OK, or CH_MRING_RESET (cursor unchanged) if *cursor belongs to
 * an earlier generation, so a reset ring never passes for the old room.
 */
enum ch_mring_status ch_mring_resync(const struct ch_mring *r, uint64_t *cursor);

/*
 * For rings whose tags grow with position (a room's seqs): the position of
 * the entry tagged tag, searched back from the head down to floor (an
 * entry boundary, e.g. an earlier ch_mring_head(); 0 for the whole ring),
 * so a recent entry is found in few steps. Returns 0 with *cursor set
 * (read it with ch_mring_read(), which still checks it was not overwritten
 * since), or -1 when no intact entry at or above floor has that tag.
 */
int ch_mring_find(const struct ch_mring *r, uint64_t tag, uint64_t floor, uint64_t *cursor);

uint32_t ch_mring_max_entry(const struct ch_mring *r);
uint32_t ch_mring_nslots(const struct ch_mring *r);

#endif
