/*
 * Lock-free shared-memory rings; the contract is in ring.h.
 *
 * This file owns the memory-ordering protocol of both rings. Invariants:
 *
 * ch_spsc: tail <= head <= prod.pos and head - tail <= capacity (all
 *   free-running byte positions). Bytes in [tail, head) are complete
 *   records that only the consumer reads; bytes outside it belong to the
 *   producer. Every record starts 8-byte aligned with a header
 *   {uint32 len, uint32 type} and lies wholly inside the array; the
 *   padding marker's record runs to the end of the array.
 *
 * ch_mring: base <= head <= wpos. Every position in [base, head) belongs
 *   to exactly one entry, whose slots were all stamped with their own
 *   positions before head passed them. A reader trusts a copy only if all
 *   its slots still carry those exact stamps after the copy (seqlock):
 *   positions never repeat, so a stamp cannot come back to an old value.
 */
#include "shm/ring.h"

#include "common/log.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

/* ================================================================== */
/* SPSC byte ring                                                      */
/* ================================================================== */

#define CH_SPSC_NO_RESERVATION UINT32_MAX
/* pop() hands space back by itself once this fraction is waiting. */
#define CH_SPSC_RELEASE_DIV 4u

struct ch_spsc_hdr {
	uint32_t len;	/* payload bytes, without header or alignment */
	uint32_t type;	/* caller's type, or CH_SPSC_TYPE_PAD */
};

_Static_assert(sizeof(struct ch_spsc_hdr) == CH_SPSC_HDR_SIZE, "spsc header size");
_Static_assert(sizeof(struct ch_spsc) % CH_RING_CACHE_LINE == 0, "spsc data alignment");

static int ch_is_pow2(uint64_t x)
{
	return x != 0 && (x & (x - 1)) == 0;
}

/* Bytes a record of len payload bytes takes in the ring. */
static uint32_t spsc_record_size(uint32_t len)
{
	return CH_SPSC_HDR_SIZE + ((len + CH_SPSC_ALIGN - 1) & ~(CH_SPSC_ALIGN - 1));
}

static void spsc_put_hdr(struct ch_spsc *r, uint32_t off, uint32_t type, uint32_t len)
{
	struct ch_spsc_hdr h = { .len = len, .type = type };

	memcpy(r->data + off, &h, sizeof(h));
}

size_t ch_spsc_mem_size(uint32_t capacity)
{
	if (!ch_is_pow2(capacity) || capacity < CH_SPSC_MIN_CAPACITY ||
	    capacity > CH_SPSC_MAX_CAPACITY)
		return 0;
	return sizeof(struct ch_spsc) + capacity;
}

int ch_spsc_init(void *mem, uint32_t capacity)
{
	struct ch_spsc *r = mem;

	if (mem == NULL || (uintptr_t)mem % CH_RING_CACHE_LINE != 0 ||
	    ch_spsc_mem_size(capacity) == 0) {
		errno = EINVAL;
		return -1;
	}
	memset(r, 0, sizeof(*r));
	r->capacity = capacity;
	r->mask = capacity - 1;
	/*
	 * Half the ring less a header: then a record always fits once the
	 * ring is empty, whatever padding it needs at the wrap.
	 */
	r->max_payload = capacity / 2 - CH_SPSC_HDR_SIZE;
	/* Plain initialisation: no other process maps the ring yet (init
	 * runs before fork, and fork orders it before the children). */
	atomic_init(&r->head, 0);
	atomic_init(&r->tail, 0);
	r->prod.reserved = CH_SPSC_NO_RESERVATION;
	return 0;
}

void ch_spsc_producer_attach(struct ch_spsc *r)
{
	/*
	 * Relaxed: head is only ever stored by the producer, i.e. by us or by
	 * our dead predecessor, whose exit the master observed before forking
	 * us. Whatever it committed but did not publish is dropped here.
	 */
	uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);

	r->prod.pos = head;
	r->prod.published = head;
	/* Acquire pairs with the consumer's release store of tail in
	 * ch_spsc_release(): its reads of the bytes below tail are done. */
	r->prod.tail_seen = atomic_load_explicit(&r->tail, memory_order_acquire);
	r->prod.reserved = CH_SPSC_NO_RESERVATION;
}

void ch_spsc_consumer_attach(struct ch_spsc *r)
{
	/* Relaxed: only the consumer (us, or our dead predecessor) stores
	 * tail. Records popped but not released are read again. */
	uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);

	r->cons.pos = tail;
	r->cons.released = tail;
	/* Acquire pairs with the producer's release store of head in
	 * ch_spsc_publish(): records below head are completely written. */
	r->cons.head_seen = atomic_load_explicit(&r->head, memory_order_acquire);
	r->cons.peeked = 0;
	r->cons.corrupt = 0;
}

/* ---- producer ---- */

/* Is there room for need bytes at pos? Reloads tail only when the cached
 * value says no, so a producer with room never touches the tail line. */
static int spsc_has_room(struct ch_spsc *r, uint64_t pos, uint32_t need)
{
	uint64_t used = pos - r->prod.tail_seen;

	if (used <= r->capacity && r->capacity - used >= need)
		return 1;
	/* Acquire pairs with the consumer's release store of tail in
	 * ch_spsc_release(): the consumer has finished reading the bytes
	 * below tail before we overwrite them. */
	r->prod.tail_seen = atomic_load_explicit(&r->tail, memory_order_acquire);
	used = pos - r->prod.tail_seen;
	return used <= r->capacity && r->capacity - used >= need;
}

void *ch_spsc_reserve(struct ch_spsc *r, uint32_t len)
{
	uint32_t size, off, pad;

	if (len > r->max_payload) {
		errno = EMSGSIZE;
		return NULL;
	}
	size = spsc_record_size(len);
	off = (uint32_t)(r->prod.pos & r->mask);
	/* Never split a record: pad to the end of the array instead. */
	pad = off + size > r->capacity ? r->capacity - off : 0;
	if (!spsc_has_room(r, r->prod.pos, pad + size)) {
		errno = EAGAIN;
		return NULL;
	}
	if (pad != 0) {
		/* The pad joins the pending batch; unpublished, it is
		 * invisible, and a dead producer's pad is simply dropped. */
		spsc_put_hdr(r, off, CH_SPSC_TYPE_PAD, 0);
		r->prod.pos += pad;
		off = 0;
	}
	r->prod.reserved = len;
	return r->data + off + CH_SPSC_HDR_SIZE;
}

void ch_spsc_commit(struct ch_spsc *r, uint32_t type, uint32_t len)
{
	assert(r->prod.reserved != CH_SPSC_NO_RESERVATION);
	assert(len <= r->prod.reserved);
	assert(type != CH_SPSC_TYPE_PAD);
	/* Plain store: published by the release store in ch_spsc_publish(). */
	spsc_put_hdr(r, (uint32_t)(r->prod.pos & r->mask), type, len);
	r->prod.pos += spsc_record_size(len);
	r->prod.reserved = CH_SPSC_NO_RESERVATION;
}

void ch_spsc_publish(struct ch_spsc *r)
{
	if (r->prod.pos == r->prod.published)
		return;
	/*
	 * Release pairs with the consumer's acquire load of head in
	 * spsc_refresh_head(): every header and payload of the batch (plain
	 * stores above) is visible before the new head is. One store per
	 * batch, and a producer that dies before it leaves nothing visible.
	 */
	atomic_store_explicit(&r->head, r->prod.pos, memory_order_release);
	r->prod.published = r->prod.pos;
}

int ch_spsc_push(struct ch_spsc *r, uint32_t type, const void *p, uint32_t len)
{
	void *dst = ch_spsc_reserve(r, len);

	if (dst == NULL)
		return -1;
	if (len != 0)
		memcpy(dst, p, len);
	ch_spsc_commit(r, type, len);
	ch_spsc_publish(r);
	return 0;
}

/* ---- consumer ---- */

void ch_spsc_release(struct ch_spsc *r)
{
	if (r->cons.pos == r->cons.released)
		return;
	/* Release pairs with the producer's acquire load of tail in
	 * spsc_has_room(): our reads of the popped records happen before
	 * the producer may reuse their bytes. */
	atomic_store_explicit(&r->tail, r->cons.pos, memory_order_release);
	r->cons.released = r->cons.pos;
}

/* Reload head; 0 if there is still nothing past cons.pos. */
static int spsc_refresh_head(struct ch_spsc *r)
{
	/* Acquire pairs with the release store in ch_spsc_publish(): the
	 * records below the loaded head are completely written. */
	r->cons.head_seen = atomic_load_explicit(&r->head, memory_order_acquire);
	if (r->cons.head_seen != r->cons.pos)
		return 1;
	/* Idle: a good moment to hand popped space back to the producer. */
	ch_spsc_release(r);
	return 0;
}

static const void *spsc_corrupt(struct ch_spsc *r, const struct ch_spsc_hdr *h)
{
	if (!r->cons.corrupt)
		ch_err("spsc ring: malformed record at %llu (type %u, len %u, head %llu)",
		       (unsigned long long)r->cons.pos, h->type, h->len,
		       (unsigned long long)r->cons.head_seen);
	r->cons.corrupt = 1;
	errno = EBADMSG;
	return NULL;
}

const void *ch_spsc_peek(struct ch_spsc *r, uint32_t *type, uint32_t *len)
{
	struct ch_spsc_hdr h;
	uint64_t avail;
	uint32_t off, size;

	if (r->cons.corrupt) {
		errno = EBADMSG;
		return NULL;
	}
	for (;;) {
		if (r->cons.pos == r->cons.head_seen && !spsc_refresh_head(r)) {
			errno = EAGAIN;
			return NULL;
		}
		off = (uint32_t)(r->cons.pos & r->mask);
		/* Plain read: below head_seen, ordered by the acquire load. */
		memcpy(&h, r->data + off, sizeof(h));
		avail = r->cons.head_seen - r->cons.pos;
		if (avail > r->capacity)
			return spsc_corrupt(r, &h);
		if (h.type == CH_SPSC_TYPE_PAD) {
			if (r->capacity - off > avail)
				return spsc_corrupt(r, &h);
			r->cons.pos += r->capacity - off;
			continue;
		}
		if (h.len > r->max_payload)
			return spsc_corrupt(r, &h);
		size = spsc_record_size(h.len);
		if (size > avail || off + size > r->capacity)
			return spsc_corrupt(r, &h);
		r->cons.peeked = size;
		*type = h.type;
		*len = h.len;
		return r->data + off + CH_SPSC_HDR_SIZE;
	}
}

void ch_spsc_pop(struct ch_spsc *r)
{
	assert(r->cons.peeked != 0);
	r->cons.pos += r->cons.peeked;
	r->cons.peeked = 0;
	if (r->cons.pos - r->cons.released >= r->capacity / CH_SPSC_RELEASE_DIV)
		ch_spsc_release(r);
}

/* ---- either side ---- */

uint32_t ch_spsc_capacity(const struct ch_spsc *r)
{
	return r->capacity;
}

uint32_t ch_spsc_max_payload(const struct ch_spsc *r)
{
	return r->max_payload;
}

uint64_t ch_spsc_used(const struct ch_spsc *r)
{
	/*
	 * Tail first, with acquire: pairs with the consumer's release store
	 * of tail, which it made after loading a head >= tail; so the head
	 * loaded next is >= this tail (read-read coherence). Relaxed head:
	 * a statistic needs no ordering with the data.
	 */
	uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
	uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint64_t used = head - tail;

	return used > r->capacity ? r->capacity : used;
}

/* ================================================================== */
/* SPMC room ring                                                      */
/* ================================================================== */

/* Positions start above 0, so a zeroed cursor reads as CH_MRING_RESET. */
#define CH_MRING_FIRST_POS 1u
#define CH_MRING_WORD 8u

_Static_assert(sizeof(struct ch_mring) % CH_RING_CACHE_LINE == 0, "mring words alignment");
_Static_assert(CH_MRING_MIN_SLOT_SIZE > CH_MRING_HDR_SIZE, "header fits one slot");

size_t ch_mring_mem_size(uint32_t nslots, uint32_t slot_size)
{
	if (!ch_is_pow2(nslots) || nslots < CH_MRING_MIN_SLOTS ||
	    nslots > CH_MRING_MAX_SLOTS || slot_size % CH_MRING_WORD != 0 ||
	    slot_size < CH_MRING_MIN_SLOT_SIZE || slot_size > CH_MRING_MAX_SLOT_SIZE ||
	    (uint64_t)nslots * slot_size > CH_MRING_MAX_BYTES)
		return 0;
	return sizeof(struct ch_mring) + (size_t)nslots * sizeof(uint64_t) +
	       (size_t)nslots * slot_size;
}

int ch_mring_init(void *mem, uint32_t nslots, uint32_t slot_size)
{
	struct ch_mring *r = mem;

	if (mem == NULL || (uintptr_t)mem % CH_RING_CACHE_LINE != 0 ||
	    ch_mring_mem_size(nslots, slot_size) == 0) {
		errno = EINVAL;
		return -1;
	}
	memset(r, 0, sizeof(*r));
	r->nslots = nslots;
	r->mask = nslots - 1;
	r->slot_size = slot_size;
	r->slot_words = slot_size / CH_MRING_WORD;
	r->max_span = nslots / CH_MRING_SPAN_DIV;
	r->max_entry = r->max_span * slot_size - CH_MRING_HDR_SIZE;
	/* Plain initialisation: no reader maps the ring yet (see spsc). */
	atomic_init(&r->head, CH_MRING_FIRST_POS);
	atomic_init(&r->base, CH_MRING_FIRST_POS);
	r->wpos = CH_MRING_FIRST_POS;
	/* BUSY equals no position, so no slot passes a reader's check. */
	for (uint32_t i = 0; i < nslots; i++)
		atomic_init(&r->words[i], CH_MRING_STAMP_BUSY);
	return 0;
}

static _Atomic uint64_t *mring_stamp(struct ch_mring *r, uint64_t pos)
{
	return &r->words[pos & r->mask];
}

static const _Atomic uint64_t *mring_stamp_c(const struct ch_mring *r, uint64_t pos)
{
	return &r->words[pos & r->mask];
}

/* What the stamp of the i-th slot of the entry at pos reads when intact. */
static uint64_t mring_stamp_value(uint64_t pos, uint32_t i)
{
	return (pos + i) | (i != 0 ? CH_MRING_STAMP_CONT : 0);
}

/* Slots used by an entry of len bytes. */
static uint32_t mring_span(const struct ch_mring *r, uint64_t len)
{
	return (uint32_t)((CH_MRING_HDR_SIZE + len + r->slot_size - 1) / r->slot_size);
}

/* Index in words[] of the first data word of pos's slot. */
static uint64_t mring_word_index(const struct ch_mring *r, uint64_t pos)
{
	return r->nslots + (pos & r->mask) * r->slot_words;
}

/* The word after idx, wrapping from the end of the data to its start. */
static uint64_t mring_next_word(const struct ch_mring *r, uint64_t idx)
{
	idx++;
	return idx == (uint64_t)r->nslots * (1 + r->slot_words) ? r->nslots : idx;
}

/* Store len bytes as words from idx on; the last word is zero-padded. */
static void mring_put_bytes(struct ch_mring *r, uint64_t idx, const unsigned char *src,
			    uint32_t len)
{
	while (len > 0) {
		uint32_t n = len < CH_MRING_WORD ? len : CH_MRING_WORD;
		uint64_t v = 0;

		memcpy(&v, src, n);
		/* Relaxed: ordered by the release fence before it and the
		 * release stamp stores after it (ch_mring_write). */
		atomic_store_explicit(&r->words[idx], v, memory_order_relaxed);
		src += n;
		len -= n;
		idx = mring_next_word(r, idx);
	}
}

/* Copy len bytes out of the words from idx on. */
static void mring_get_bytes(const struct ch_mring *r, uint64_t idx, unsigned char *dst,
			    uint32_t len)
{
	while (len > 0) {
		uint32_t n = len < CH_MRING_WORD ? len : CH_MRING_WORD;
		/* Relaxed: may race with an overwrite; mring_intact() decides
		 * afterwards whether the copy can be trusted. */
		uint64_t v = atomic_load_explicit(&r->words[idx], memory_order_relaxed);

		memcpy(dst, &v, n);
		dst += n;
		len -= n;
		idx = mring_next_word(r, idx);
	}
}

/* ---- writer ---- */

void ch_mring_writer_attach(struct ch_mring *r)
{
	/* Relaxed: only the writer stores head and base (us, or our dead
	 * predecessor, whose exit was observed before we were started).
	 * Entries it wrote but never flushed are written over from here. */
	uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint64_t base = atomic_load_explicit(&r->base, memory_order_relaxed);

	if (base > head) {
		/* It died inside ch_mring_reset(): finish the reset. Release
		 * pairs with readers' acquire loads of head (see flush). */
		atomic_store_explicit(&r->head, base, memory_order_release);
		head = base;
	}
	r->wpos = head;
}

int ch_mring_write(struct ch_mring *r, uint64_t tag, const void *data, uint32_t len)
{
	uint64_t pos = r->wpos, idx;
	uint32_t span, i;

	if (len > r->max_entry) {
		errno = EMSGSIZE;
		return -1;
	}
	span = mring_span(r, len);
	/* Relaxed: ordered before the data stores by the fence below. */
	for (i = 0; i < span; i++)
		atomic_store_explicit(mring_stamp(r, pos + i), CH_MRING_STAMP_BUSY,
				      memory_order_relaxed);
	/*
	 * Release fence pairs with the acquire fence in mring_intact(): a
	 * reader whose copy saw any word stored below also sees BUSY (or a
	 * newer stamp) when it re-checks the stamps, and drops the copy.
	 */
	atomic_thread_fence(memory_order_release);
	idx = mring_word_index(r, pos);
	atomic_store_explicit(&r->words[idx], tag, memory_order_relaxed);
	idx = mring_next_word(r, idx);
	atomic_store_explicit(&r->words[idx], len, memory_order_relaxed);
	idx = mring_next_word(r, idx);
	mring_put_bytes(r, idx, data, len);
	/* Release pairs with the acquire stamp loads in mring_oldest_from():
	 * a slot found stamped with its position holds a whole header. */
	for (i = 0; i < span; i++)
		atomic_store_explicit(mring_stamp(r, pos + i), mring_stamp_value(pos, i),
				      memory_order_release);
	r->wpos = pos + span;
	return 0;
}

void ch_mring_flush(struct ch_mring *r)
{
	/* Release pairs with the acquire loads of head in ch_mring_read(),
	 * ch_mring_oldest() and ch_mring_resync(): entries below head are
	 * completely written, data and stamps. */
	atomic_store_explicit(&r->head, r->wpos, memory_order_release);
}

int ch_mring_publish(struct ch_mring *r, uint64_t tag, const void *data, uint32_t len)
{
	if (ch_mring_write(r, tag, data, len) < 0)
		return -1;
	ch_mring_flush(r);
	return 0;
}

uint64_t ch_mring_reset(struct ch_mring *r)
{
	/*
	 * Past every position handed out so far (every old cursor is <= wpos
	 * and so below base), with a ring to spare: stamps never repeat a
	 * value, so an old reader's stamp check fails on any new entry.
	 */
	uint64_t base = r->wpos + r->nslots;

	/*
	 * Release, and before head: pairs with the acquire load of base that
	 * readers make after their acquire load of head, so a reader that
	 * sees the new head also sees the new base and its old cursor fails.
	 */
	atomic_store_explicit(&r->base, base, memory_order_release);
	/* Release pairs with readers' acquire loads of head (see flush). */
	atomic_store_explicit(&r->head, base, memory_order_release);
	r->wpos = base;
	return base;
}

/* ---- readers ---- */

/*
 * Load head, then base, both acquire. Head pairs with the release stores
 * in ch_mring_flush() and ch_mring_reset(): entries below it are complete.
 * Base pairs with the release store in ch_mring_reset(), made before its
 * head store: a reader that sees a new generation's head sees its base.
 * A head below base (a writer died inside reset) means the generation is
 * empty so far.
 */
static void mring_snapshot(const struct ch_mring *r, uint64_t *head, uint64_t *base)
{
	*head = atomic_load_explicit(&r->head, memory_order_acquire);
	*base = atomic_load_explicit(&r->base, memory_order_acquire);
	if (*head < *base)
		*head = *base;
}

uint64_t ch_mring_head(const struct ch_mring *r)
{
	uint64_t head, base;

	mring_snapshot(r, &head, &base);
	return head;
}

uint64_t ch_mring_base(const struct ch_mring *r)
{
	/* Acquire pairs with the release store in ch_mring_reset(). */
	return atomic_load_explicit(&r->base, memory_order_acquire);
}

/*
 * After copying from the entry at pos: were its span slots left alone?
 * The seqlock's second half; the first is the acquire load of head that
 * made the entry's words visible.
 */
static int mring_intact(const struct ch_mring *r, uint64_t pos, uint32_t span)
{
	/* Acquire fence pairs with the release fence in ch_mring_write(): if
	 * any word copied before this came from an overwrite, the stamp loads
	 * after it see BUSY or a newer position. */
	atomic_thread_fence(memory_order_acquire);
	for (uint32_t i = 0; i < span; i++) {
		/* Relaxed: ordered by the fence above. */
		uint64_t s = atomic_load_explicit(mring_stamp_c(r, pos + i),
						  memory_order_relaxed);
		if (s != mring_stamp_value(pos, i))
			return 0;
	}
	return 1;
}

/* The entry at pos is gone: overwritten, or the whole ring was reset. */
static enum ch_mring_status mring_lost(const struct ch_mring *r, uint64_t pos)
{
	uint64_t head, base;

	/* A reset not seen yet is caught by the next read or by resync. */
	mring_snapshot(r, &head, &base);
	return pos < base ? CH_MRING_RESET : CH_MRING_LAPPED;
}

static enum ch_mring_status mring_bad_header(const struct ch_mring *r, uint64_t pos,
					     uint64_t len)
{
	static atomic_int logged;	/* per process: one line is enough */

	/* Relaxed: only decides whether this thread logs; orders nothing. */
	if (!atomic_exchange_explicit(&logged, 1, memory_order_relaxed))
		ch_err("room ring: malformed entry at %llu (len %llu, max %u)",
		       (unsigned long long)pos, (unsigned long long)len, r->max_entry);
	/* The reader catches up elsewhere, as if lapped. */
	return CH_MRING_LAPPED;
}

enum ch_mring_status ch_mring_read(const struct ch_mring *r, uint64_t *cursor,
				   void *buf, uint32_t cap, uint32_t *len,
				   uint64_t *tag)
{
	uint64_t c = *cursor, head, base, idx, etag, elen;
	uint32_t span;

	mring_snapshot(r, &head, &base);
	if (c < base)
		return CH_MRING_RESET;
	if (c == head)
		return CH_MRING_EMPTY;
	/* More than a ring behind (or a cursor past head): surely gone. */
	if (head - c > r->nslots)
		return CH_MRING_LAPPED;

	/* Header first (seqlock on the first slot), to trust len. Relaxed:
	 * checked by mring_intact(). */
	idx = mring_word_index(r, c);
	etag = atomic_load_explicit(&r->words[idx], memory_order_relaxed);
	idx = mring_next_word(r, idx);
	elen = atomic_load_explicit(&r->words[idx], memory_order_relaxed);
	idx = mring_next_word(r, idx);
	if (!mring_intact(r, c, 1))
		return mring_lost(r, c);
	if (elen > r->max_entry)
		return mring_bad_header(r, c, elen);
	span = mring_span(r, elen);
	if (span > head - c)
		return mring_bad_header(r, c, elen);
	*len = (uint32_t)elen;
	if (elen > cap)
		return CH_MRING_TOOSMALL;

	mring_get_bytes(r, idx, buf, (uint32_t)elen);
	if (!mring_intact(r, c, span))
		return mring_lost(r, c);
	*tag = etag;
	*cursor = c + span;
	return CH_MRING_OK;
}

/* The first entry start at or after a quarter ring past the oldest slot. */
static uint64_t mring_oldest_from(const struct ch_mring *r, uint64_t head, uint64_t base)
{
	uint32_t keep = r->nslots - r->nslots / CH_MRING_RESYNC_DIV;
	uint64_t pos = head - base > keep ? head - keep : base;

	for (; pos < head; pos++) {
		/* Acquire pairs with the release stamp stores in
		 * ch_mring_write(): the entry's header is written. */
		uint64_t s = atomic_load_explicit(mring_stamp_c(r, pos),
						  memory_order_acquire);
		if (s == pos)
			return pos;
	}
	return head;
}

uint64_t ch_mring_oldest(const struct ch_mring *r)
{
	uint64_t head, base;

	mring_snapshot(r, &head, &base);
	return mring_oldest_from(r, head, base);
}

enum ch_mring_status ch_mring_resync(const struct ch_mring *r, uint64_t *cursor)
{
	uint64_t head, base, pos;

	/* If the head seen is a new generation's, so is the base, and an
	 * old cursor fails here. */
	mring_snapshot(r, &head, &base);
	if (*cursor < base)
		return CH_MRING_RESET;
	pos = mring_oldest_from(r, head, base);
	/* Only ever forward (a cursor past head is bogus: take pos). */
	if (head - *cursor > head - pos)
		*cursor = pos;
	return CH_MRING_OK;
}

/*
 * Walk back from head over entry starts. Only a slot stamped with its own
 * position starts an entry; one stamped (q | CONT) belongs to the entry
 * before it; any other stamp means the slot was overwritten (or is being),
 * and everything older is gone too.
 */
int ch_mring_find(const struct ch_mring *r, uint64_t tag, uint64_t floor, uint64_t *cursor)
{
	uint64_t head, base, pos, lo;

	mring_snapshot(r, &head, &base);
	lo = floor > base ? floor : base;
	pos = head;
	while (pos > lo && head - pos < r->nslots) {
		uint64_t q = pos - 1, s;

		for (;;) {
			/* Acquire pairs with the release stamp stores in
			 * ch_mring_write(): a start's header is written. */
			s = atomic_load_explicit(mring_stamp_c(r, q), memory_order_acquire);
			if (s != (q | CH_MRING_STAMP_CONT) || q == lo || head - q >= r->nslots)
				break;
			q--;
		}
		if (s != q)
			return -1;
		/* Relaxed: checked by mring_intact(). */
		uint64_t etag = atomic_load_explicit(&r->words[mring_word_index(r, q)],
						     memory_order_relaxed);
		if (!mring_intact(r, q, 1) || etag < tag)
			return -1;
		if (etag == tag) {
			*cursor = q;
			return 0;
		}
		pos = q;
	}
	return -1;
}

uint32_t ch_mring_max_entry(const struct ch_mring *r)
{
	return r->max_entry;
}

uint32_t ch_mring_nslots(const struct ch_mring *r)
{
	return r->nslots;
}
