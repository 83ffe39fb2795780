/*
 * WebSocket connections and the real-time chat protocol of PROTOCOL.md on
 * a worker: the upgrade, frames in and out, and the rooms a connection has
 * joined.
 *
 * Delivery: the worker watches each room that has members here. The
 * journal writes every message's frame once to the room's shared ring and
 * wakes the workers watching it; the worker copies each new entry out of
 * the ring once, into a reference-counted frame, and queues that same frame
 * on every member connection (no re-encoding, no copy per recipient).
 *
 * Each membership keeps the next seq it expects, so a connection gets every
 * message once and in order: frames it already has (from a replay) are
 * skipped, and while a replay from history is being read, live frames wait
 * behind it. A connection that would miss messages (its queue over the
 * bound, or the worker lapped by the ring) is closed with 1013 and resumes
 * with `since`.
 */
#ifndef CH_WSCONN_H
#define CH_WSCONN_H

#include "worker/http_conn.h"

#define CH_WS_PING_MS 30000		/* ping a connection quiet this long */
#define CH_WS_REPLAY_MAX 1000		/* messages replayed on join with since */
#define CH_WS_SEND_QUEUE (1u << 20)	/* bytes queued for a slow reader, at most */
#define CH_WS_MAX_JOINED 1024		/* rooms one connection may join */

/* GET /ws and /ws/{room}: check the handshake and the token, upgrade. */
void ch_ws_upgrade(struct ch_worker *w, struct ch_conn *c, struct ch_req *r, const char *path);

/* New bytes arrived on an upgraded connection (in c->in). */
void ch_ws_input(struct ch_worker *w, struct ch_conn *c);

/* The connection's WebSocket timer fired. */
void ch_ws_timer(struct ch_worker *w, struct ch_conn *c);

/* Send a close frame with code and reason, then close. */
void ch_ws_close(struct ch_worker *w, struct ch_conn *c, uint16_t code, const char *reason);

/* The connection is going away: leave its rooms, free its state. */
void ch_ws_free(struct ch_worker *w, struct ch_conn *c);

/* The journal woke us: copy new ring entries out to the members. */
void ch_ws_deliver(struct ch_worker *w);

/* End of a loop turn: free rooms whose last member left. */
void ch_ws_sweep(struct ch_worker *w);

/* The worker's rooms (called once at start). */
int ch_ws_init(struct ch_worker *w);

#endif
