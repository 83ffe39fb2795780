/*
 * Replication internals, shared by its three parts and by nothing else
 * (only journal/repl*.c include this; the journal uses journal/repl.h):
 *
 *	repl.c          the public API's entry points (but the two below),
 *	                roles and the ROLE file, the epoch history, the
 *	                connection slots and their I/O (framing, dispatch,
 *	                timers), promotion, fencing (the probe, demotion), the
 *	                role and peer stats
 *	repl_primary.c  serving standbys: the HELLO/AUTH challenge, the
 *	                listener and accept, where a standby starts, streaming
 *	                from the segments then live (ch_repl_appended), ACKs,
 *	                the replies held for ack = replica (ch_repl_hold), the
 *	                lag stats
 *	repl_standby.c  following a primary: connecting with backoff, START
 *	                (and the fencing cut), checking, appending and applying
 *	                RECORDS, the ACK of what it holds durably
 *
 * All of it runs on the journal's one thread, so nothing here is locked
 * or atomic. Invariants shared by the parts: a slot of conns[] is free
 * exactly when its fd is -1 (and then its kind is CH_REPL_CONN_FREE and
 * it owns no buffers or reader); r->standby is -1 or the index of the one
 * ACCEPTED slot in CH_REPL_CONN_STREAM; on a standby conns[0] is the
 * connection to the primary; r->held holds its entries in the order they
 * were held, so (one ack_timeout for all) their deadlines only grow from
 * held_off on, and the first one is the next to fall due.
 */
#ifndef CH_REPL_INT_H
#define CH_REPL_INT_H

#include "common/buf.h"
#include "journal/repl.h"
#include "journal/repl_proto.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#define CH_REPL_LAG_RING 8192		/* committed batches awaiting the standby */
#define CH_REPL_LAG_SAMPLES 4096	/* for the p99 */
#define CH_REPL_WHY_MAX 256		/* a reason in a log line or an ERROR */

enum ch_repl_conn_kind {
	CH_REPL_CONN_FREE = 0,
	CH_REPL_CONN_ACCEPTED,		/* primary: a peer connected to our listener */
	CH_REPL_CONN_FOLLOW,		/* standby: our connection to the primary */
};

enum ch_repl_conn_state {
	CH_REPL_CONN_CONNECTING,	/* FOLLOW: non-blocking connect in progress */
	CH_REPL_CONN_HANDSHAKE,		/* HELLO sent; waiting for HELLO (and AUTH) */
	CH_REPL_CONN_STREAM,		/* records flow */
	CH_REPL_CONN_CLOSING,		/* ERROR queued: close once it is sent */
};

struct ch_repl_conn {
	int fd;
	enum ch_repl_conn_kind kind;
	enum ch_repl_conn_state state;
	struct ch_buf in;		/* received: [in_off, in.len) unparsed */
	size_t in_off;
	struct ch_buf out;		/* to send: [out_off, out.len) */
	size_t out_off;
	uint64_t last_rx_ms, last_tx_ms;
	uint64_t opened_ms;		/* a handshake must end within the peer timeout */
	int got_hello, authed;		/* authed: the peer proved the secret (or none is set) */
	struct ch_repl_hello peer;
	uint8_t nonce[CH_REPL_NONCE_SIZE];
	uint32_t peer_addr, peer_port;	/* IPv4 (host order), for stats */
	/* ACCEPTED standby: the catch-up/live reader and what was sent */
	struct ch_log_reader *reader;
	uint64_t send_pos;
	/* FOLLOW: records appended since the last ACK */
	int need_ack;
	int quiet;			/* the fencing probe: its failures are no news */
	int probe;			/* FOLLOW as a primary: only asks the peer's epoch */
};

struct ch_repl_held {		/* a reply waiting for the standby, in r->held */
	uint64_t pos;		/* the standby must hold the log up to here */
	uint64_t deadline_ms;	/* then it is answered REPLICA_UNAVAILABLE */
	uint64_t req_id;	/* the request's id, for the failure reply */
	uint32_t worker;
	uint32_t len;		/* reply bytes that follow, padded to 8 */
};

struct ch_repl_lag {		/* a committed batch */
	uint64_t end;		/* log end after it */
	uint64_t recs;		/* records appended so far, it included */
	uint64_t t_ms;		/* monotonic, when it was committed */
};

struct ch_repl_epoch_start {
	uint32_t epoch;
	uint64_t start;		/* position of its first record */
};

struct ch_repl {
	const struct ch_config *cfg;
	struct ch_stats *stats;
	struct ch_repl_host host;
	char dir[CH_PATH_MAX + 16];
	struct ch_log_writer **log;
	int role;			/* enum ch_repl_role, now */
	uint8_t secret[CH_REPL_SECRET_MAX];
	size_t secret_len;		/* 0: no secret */
	struct ch_listen_addr primary;	/* [replication] primary, parsed once;
					 * addrlen 0: none configured */

	/* The log's epochs, from ch_repl_observe. */
	struct ch_repl_epoch_start *epochs;
	size_t n_epochs, cap_epochs;
	uint32_t epoch;			/* current: the highest seen, at least 1 */
	uint32_t last_epoch;		/* of the last record, 0 for an empty log */

	struct ch_repl_conn conns[CH_REPL_MAX_CONNS];
	int listen_fd;
	int standby;			/* conns[] index of the streaming standby, -1 */

	/* Primary: what the standby confirmed, and the held replies. */
	uint64_t acked;			/* durable end the standby reported */
	struct ch_buf held;		/* struct ch_repl_held + bytes, FIFO from held_off */
	size_t held_off;
	struct ch_repl_lag lag[CH_REPL_LAG_RING];
	uint32_t lag_head, lag_tail;	/* free-running, tail - head entries */
	uint64_t recs_total, recs_acked;
	uint32_t lag_samples[CH_REPL_LAG_SAMPLES];
	uint32_t n_samples, next_sample;
	uint64_t p99_at_ms;

	/* Primary with a peer and no standby: when to ask the peer again. */
	uint64_t next_probe_ms;

	/* Standby: following the primary. */
	uint64_t next_connect_ms;
	uint32_t backoff_ms;
	uint64_t primary_end;		/* the primary's log end, last told */
	int queued;			/* something for the journal to post */
};

/* ---------------------------------------------------------------------- */
/* Small helpers every part uses                                          */

static inline uint64_t monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline uint64_t realtime_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline const char *role_name(int role)
{
	return role == CH_ROLE_STANDBY ? "standby" : "primary";
}

static inline uint64_t log_end(const struct ch_repl *r)
{
	return ch_log_end(*r->log);
}

static inline void set_role_stats(struct ch_repl *r)
{
	CH_STAT_SET(r->stats, repl_role, (uint64_t)r->role);
	CH_STAT_SET(r->stats, repl_epoch, r->epoch);
}

static inline void peer_stats(struct ch_repl *r, const struct ch_repl_conn *c)
{
	CH_STAT_SET(r->stats, repl_peer_addr, c->peer_addr);
	CH_STAT_SET(r->stats, repl_peer_port, c->peer_port);
}

static inline size_t conn_pending(const struct ch_repl_conn *c)
{
	return c->out.len - c->out_off;
}

/* Standby: a failed connect or a lost primary waits twice as long next
 * time, up to CH_REPL_BACKOFF_MAX_MS (START resets it). */
static inline void backoff_grow(struct ch_repl *r)
{
	r->backoff_ms = r->backoff_ms * 2 > CH_REPL_BACKOFF_MAX_MS ?
			CH_REPL_BACKOFF_MAX_MS : r->backoff_ms * 2;
}

/* ---------------------------------------------------------------------- */
/* repl.c: connection slots, sockets, epochs, fencing                     */

void ch_repl_conn_init(struct ch_repl_conn *c, int fd, enum ch_repl_conn_kind kind,
		       enum ch_repl_conn_state state);
/* Frees the slot (a no-op on a free one); why (NULL: say nothing) is
 * logged unless the connection is the quiet probe. On a standby it also
 * sets the next connect after the backoff, and doubles the backoff. */
void ch_repl_conn_close(struct ch_repl *r, struct ch_repl_conn *c, const char *why);
/* Queue ERROR why, then close once it is out (or at once if it cannot be). */
void ch_repl_conn_refuse(struct ch_repl *r, struct ch_repl_conn *c, const char *why);
/* Send what is queued; 0, or -1 when the connection was closed. */
int ch_repl_conn_flush(struct ch_repl *r, struct ch_repl_conn *c);
/* A free slot of r->conns, or NULL. */
struct ch_repl_conn *ch_repl_conn_slot(struct ch_repl *r);
void ch_repl_addr_of(const struct sockaddr_storage *ss, uint32_t *addr, uint32_t *port);
void ch_repl_tune_socket(int fd);
/* Where the log stops being epoch e's: the start of the first later
 * epoch, or the end. */
uint64_t ch_repl_end_of_epoch(const struct ch_repl *r, uint32_t e);
/* A primary learned of a newer one (the probe at start or a later one):
 * step down and follow it.
 * 0, or -1 when the ROLE file could not be written (fatal). */
int ch_repl_demote(struct ch_repl *r, uint32_t peer_epoch);

/* ---------------------------------------------------------------------- */
/* repl_primary.c: the challenge, serving standbys, held replies          */

/* Queue our HELLO, saying role (a probe says primary on a FOLLOW slot). */
void ch_repl_queue_hello(struct ch_repl *r, struct ch_repl_conn *c, uint32_t role);
void ch_repl_on_hello(struct ch_repl *r, struct ch_repl_conn *c, const struct ch_repl_msg *m);
void ch_repl_on_auth(struct ch_repl *r, struct ch_repl_conn *c, const struct ch_repl_msg *m);
/* An ACCEPTED peer finished its handshake. */
void ch_repl_accepted_ready(struct ch_repl *r, struct ch_repl_conn *c);
/* ACK from the streaming standby; 0 (a bad one refuses the peer). */
int ch_repl_on_ack(struct ch_repl *r, struct ch_repl_conn *c, const struct ch_repl_msg *m);
/* Post the held replies the standby now covers, and fail the overdue
 * (all of them with now = UINT64_MAX). */
void ch_repl_release_held(struct ch_repl *r, uint64_t now);
/* How far a standby may be sent: only what this node will not lose. */
uint64_t ch_repl_stream_limit(const struct ch_repl *r);
/* Queue RECORDS up to the limit or CH_REPL_OUT_HIGH queued; -1 when the
 * connection was closed. */
int ch_repl_stream_fill(struct ch_repl *r, struct ch_repl_conn *c);
/* Listen on [replication] listen (none set: nothing); 0 or -1. */
int ch_repl_open_listener(struct ch_repl *r);
void ch_repl_on_accept(struct ch_repl *r);

/* ---------------------------------------------------------------------- */
/* repl_standby.c: following a primary                                    */

/* START and RECORDS from the primary: 0 (a bad one refuses the peer), or
 * -1 on a log error (fatal). */
int ch_repl_on_start(struct ch_repl *r, struct ch_repl_conn *c, const struct ch_repl_msg *m);
int ch_repl_on_records(struct ch_repl *r, struct ch_repl_conn *c, const struct ch_repl_msg *m);
/* After a read pass: make what came durable (per ack), then ACK it.
 * -1 when the sync failed (fatal). */
int ch_repl_standby_ack(struct ch_repl *r, struct ch_repl_conn *c);
/* The HELLO (and AUTH) of the peer we dialled were checked. 0, or -1
 * when a probe's demotion failed (fatal). */
int ch_repl_follow_ready(struct ch_repl *r, struct ch_repl_conn *c);
/* A non-blocking connect: to follow the primary or, probe, to ask its
 * epoch. */
void ch_repl_dial(struct ch_repl *r, struct ch_repl_conn *c, int probe);
void ch_repl_follow_connect(struct ch_repl *r);
/* A dialled connect finished (or failed): send HELLO. */
void ch_repl_follow_connected(struct ch_repl *r, struct ch_repl_conn *c);

#endif
