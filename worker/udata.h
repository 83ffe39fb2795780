/*
 * How a worker packs io_uring's 64-bit user_data, in one place:
 *
 *   63      56 55                 32 31                  0
 *   +---------+---------------------+--------------------+
 *   |   op    |  generation (24 b)  |  index (32 b)      |
 *   +---------+---------------------+--------------------+
 *
 * op says which kind of request completed; index is the connection slot
 * (or listener) it belongs to; generation is the slot's generation when the
 * request was made. A slot is reused after close, so a late completion for
 * an old connection (a cancelled multishot receive, say) carries a stale
 * generation and is recognised and dropped, instead of touching the new
 * connection in the same slot.
 */
#ifndef CH_UDATA_H
#define CH_UDATA_H

#include <stdint.h>

enum ch_op {
	CH_OP_NONE,	/* cancel requests and other completions we ignore */
	CH_OP_ACCEPT,	/* multishot accept; index = listener */
	CH_OP_RECV,	/* multishot receive; index = connection */
	CH_OP_SEND,	/* send or sendmsg of queued output; index = connection */
	CH_OP_WAKE,	/* eventfd read: the journal has replies or messages for us */
	CH_OP_POOL,	/* poll on the thread pool's eventfd: jobs are done */
};

#define CH_UDATA_GEN_MASK 0xffffffu

static inline uint64_t ch_udata(enum ch_op op, uint32_t gen, uint32_t index)
{
	return ((uint64_t)op << 56) | ((uint64_t)(gen & CH_UDATA_GEN_MASK) << 32) | index;
}

static inline enum ch_op ch_udata_op(uint64_t u)
{
	return (enum ch_op)(u >> 56);
}

static inline uint32_t ch_udata_gen(uint64_t u)
{
	return (uint32_t)(u >> 32) & CH_UDATA_GEN_MASK;
}

static inline uint32_t ch_udata_index(uint64_t u)
{
	return (uint32_t)u;
}

#endif
