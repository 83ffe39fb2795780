/*
 * A client connection as a worker holds it, and its output queue.
 *
 * Memory per connection is what chatd's idle-connection target is about, so
 * the struct holds only what every connection needs; everything that exists
 * only while a request is in progress (input bytes, the parsed head, the
 * body) hangs off pointers that are NULL while the connection is idle. The
 * receive buffers come from the worker's provided-buffer ring and go back to
 * it as soon as their bytes are copied, so an idle connection holds none.
 *
 * Output is a queue of chunks. A chunk either carries its bytes inline or
 * points at bytes someone else keeps alive (the web root cache, a shared
 * message frame) with a reference released when the chunk is sent.
 */
#ifndef CH_CONN_H
#define CH_CONN_H

#include <stddef.h>
#include <stdint.h>

#define CH_NO_INDEX UINT32_MAX

struct ch_outbuf {
	struct ch_outbuf *next;
	const char *ptr;	/* the bytes to send */
	uint32_t len;
	uint32_t off;		/* bytes already sent */
	void (*release)(void *owner);	/* NULL: bytes are inline, freed with the chunk */
	void *owner;
	char data[];		/* inline bytes */
};

/* Bytes received but not yet consumed (a partial head, a body, pipelined requests). */
struct ch_inbuf {
	size_t off;		/* first unconsumed byte */
	size_t len;		/* bytes held */
	size_t cap;
	char data[];
};

enum ch_conn_state {
	CH_CONN_FREE,		/* slot unused */
	CH_CONN_HEAD,		/* waiting for (the rest of) a request head */
	CH_CONN_BODY,		/* reading a request body */
	CH_CONN_BUSY,		/* a request is being served; input waits */
	CH_CONN_LINGER,		/* write side shut after a final response; draining input */
	CH_CONN_CLOSING,	/* fd closed, waiting for an in-flight send to complete */
	CH_CONN_WS,		/* upgraded: WebSocket frames (worker/wsconn.h) */
};

/* Which timer list a connection is on; each list has one timeout, so it
 * stays ordered by deadline when connections are appended. */
enum ch_timer_list {
	CH_TIMER_NONE,
	CH_TIMER_HEAD,		/* header_timeout: slow or absent request heads, slow bodies */
	CH_TIMER_IDLE,		/* idle_timeout: keep-alive between requests */
	CH_TIMER_LINGER,	/* a short drain before close */
	CH_TIMER_WS,		/* WebSocket: ping when quiet, close when dead */
	CH_TIMER_COUNT
};

enum {
	CH_CONN_RECV_ARMED = 1 << 0,	/* a multishot receive is outstanding */
	CH_CONN_SENDING = 1 << 1,	/* a send is in flight */
	CH_CONN_CLOSE_AFTER = 1 << 2,	/* close once the queue is sent */
	CH_CONN_FLUSH_QUEUED = 1 << 3,	/* on the worker's flush list this turn */
	CH_CONN_PEER_EOF = 1 << 4,	/* the client shut its write side */
	CH_CONN_REARM = 1 << 5,		/* receive ended (no buffers): re-arm this turn */
	CH_CONN_RECV_PAUSED = 1 << 6,	/* ch_conn_recv_pause: no receive (handoff) */
	CH_CONN_BODY_PAUSED = 1 << 7,	/* a streamed body's consumer is behind: no receive */
};

/* Either reason to stop receiving; each is lifted on its own. */
enum {
	CH_CONN_RECV_STOPPED = CH_CONN_RECV_PAUSED | CH_CONN_BODY_PAUSED,
};

struct ch_req;
struct ch_sendctx;
struct ch_wsconn;

struct ch_conn {
	int fd;
	uint32_t gen;		/* bumped on close: stale completions are dropped */
	uint32_t timer_prev, timer_next;	/* links in the timer list (slot indexes) */
	uint8_t state;		/* enum ch_conn_state */
	uint8_t timer;		/* enum ch_timer_list */
	uint16_t flags;
	uint32_t requests;	/* served on this connection (keep-alive) */
	uint64_t deadline_ms;
	struct ch_inbuf *in;
	struct ch_outbuf *out_head, *out_tail;
	struct ch_req *req;	/* while a request is in progress */
	struct ch_sendctx *sendctx;	/* iovecs of an in-flight sendmsg */
	struct ch_wsconn *ws;		/* after a WebSocket upgrade */
	uint32_t out_bytes;		/* queued and not yet sent */
	uint16_t inflight_chunks;	/* chunks the in-flight send covers */
};

struct ch_outbuf *ch_outbuf_new(size_t len);
struct ch_outbuf *ch_outbuf_ref(const void *ptr, size_t len,
				void (*release)(void *owner), void *owner);
void ch_outbuf_free(struct ch_outbuf *b);

#endif
