/*
 * A worker process: one io_uring event loop that accepts connections from
 * its own SO_REUSEPORT listening sockets, receives with a multishot receive
 * into a provided-buffer ring, and sends each connection's queued output in
 * batches submitted once per loop turn. It never blocks: anything slow is
 * handed to another thread or process and its answer comes back as a
 * completion.
 */
#ifndef CH_WORKER_H
#define CH_WORKER_H

#include "master/config.h"
#include "shm/shm.h"
#include "worker/bus.h"
#include "worker/conn.h"
#include "worker/static.h"

#include <liburing.h>
#include <signal.h>
#include <stdint.h>

#define CH_WORKER_RING_ENTRIES 4096
#define CH_WORKER_CQ_ENTRIES 16384
#define CH_WORKER_BUF_COUNT 512		/* provided receive buffers (power of two) */
#define CH_WORKER_BUF_SIZE 4096
#define CH_WORKER_BUF_GROUP 0
#define CH_WORKER_TICK_MS 100		/* timer resolution */
#define CH_WORKER_LINGER_MS 2000	/* drain after a final response */
#define CH_WORKER_SEND_IOV 16		/* chunks gathered into one sendmsg */
#define CH_WORKER_POOL_QUEUE 1024	/* jobs waiting for a thread pool */
#define CH_WORKER_IO_THREADS 2		/* threads reading history from the log */

struct ch_timer_queue {
	uint32_t head, tail;	/* slot indexes, CH_NO_INDEX when empty */
};

/* The iovecs of one in-flight sendmsg; one per connection that is sending. */
struct ch_sendctx;

struct ch_pool;
struct ch_api;
struct ch_wsrooms;
struct ch_uploads;

struct ch_worker {
	const struct ch_config *cfg;
	int index;
	const struct ch_static *web;
	const struct ch_shm *shm;
	struct ch_stats *stats;		/* ours, in shared memory */
	struct ch_bus *bus;		/* requests to the journal */
	struct ch_pool *pool;		/* password hashing, off the loop */
	struct ch_pool *io_pool;	/* disk reads (history), never queued behind hashes */
	struct ch_api *api;		/* keys, limits: see api.h */
	struct ch_wsrooms *rooms;	/* rooms with WebSocket members here */
	struct ch_uploads *uploads;	/* the file store and its pool (upload.h) */

	struct io_uring ring;
	struct io_uring_buf_ring *buf_ring;
	char *bufs;
	size_t buf_ring_bytes;

	const int *listen_fds;
	int n_listen;
	uint8_t *accept_armed;	/* per listener */

	struct ch_conn *conns;	/* max_connections slots */
	uint32_t max_conns;
	uint32_t n_conns;
	uint32_t free_head;	/* free slots, linked through timer_next */
	struct ch_timer_queue timers[CH_TIMER_COUNT];

	uint32_t *flush;	/* connections with output or a re-arm this turn */
	uint32_t n_flush;

	uint64_t now_ms;	/* CLOCK_MONOTONIC, refreshed once per turn */
	time_t date_sec;
	char date[64];		/* "Date: ...\r\n" for this second */

	volatile sig_atomic_t *stop_flag;
	int stopping;
	uint64_t stop_deadline_ms;

	int access_fd;		/* -1 when access logging is off */
	char *access_buf;
	size_t access_len;
};

/* Run worker `index` until it is told to stop; returns the exit status. */
int ch_worker_run(const struct ch_config *cfg, int index, const int *listen_fds,
		  int n_listen, const struct ch_static *web, const struct ch_shm *shm);

/* Queue output on a connection; it goes out with this turn's batch. */
void ch_conn_queue(struct ch_worker *w, struct ch_conn *c, struct ch_outbuf *b);

/* Close after the queued output is sent (with a short drain). */
void ch_conn_close_after(struct ch_worker *w, struct ch_conn *c);

/* Drop queued output that no send has taken yet (a close frame then goes
 * out next). */
void ch_conn_drop_unsent(struct ch_worker *w, struct ch_conn *c);

/* Close now, dropping queued output. */
void ch_conn_close(struct ch_worker *w, struct ch_conn *c);

/* Stop receiving on c (its multishot receive is cancelled; bytes already
 * received still arrive), and start again. Two independent reasons, each
 * with its own flag, so lifting one never lifts the other: recv_pause
 * (a connection about to be handed over) and body_pause (back-pressure
 * for a request body streamed to a slower consumer, worker/http_conn.h).
 * Receiving starts again only when neither holds. */
void ch_conn_recv_pause(struct ch_worker *w, struct ch_conn *c);
void ch_conn_recv_resume(struct ch_worker *w, struct ch_conn *c);
void ch_conn_body_pause(struct ch_worker *w, struct ch_conn *c);
void ch_conn_body_resume(struct ch_worker *w, struct ch_conn *c);

/* ---- implemented in http_conn.c: HTTP on a connection ---- */

/* New bytes arrived on c (already appended to c->in); parse and serve. */
void ch_http_conn_input(struct ch_worker *w, struct ch_conn *c);
/* A deferred answer went out (or could not be deferred after all): serve
 * the next pipelined request, if the connection is waiting for one. */
void ch_http_conn_resume(struct ch_worker *w, struct ch_conn *c);
/* The connection is going away: free per-request state. */
void ch_http_conn_reset(struct ch_conn *c);
/* The header timer fired: answer 408 and close. */
void ch_http_conn_timeout(struct ch_worker *w, struct ch_conn *c);

/* Access log: opened at start, appended per request, written once a turn. */
void ch_worker_access_log_open(struct ch_worker *w);
void ch_worker_access_log_flush(struct ch_worker *w);

/* Move c to timer list t with its deadline; CH_TIMER_NONE removes it. */
void ch_worker_timer_set(struct ch_worker *w, struct ch_conn *c, enum ch_timer_list t);

#endif
