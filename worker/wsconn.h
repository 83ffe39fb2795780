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
/* A replay (join with since) is read from the log and sent in chunks of
 * about this many bytes, the next once the connection's queue is down to
 * CH_WS_REPLAY_LOW: a long replay never sits whole in memory, and a reader
 * that stops reading stops it. */
#define CH_WS_REPLAY_CHUNK (256u << 10)
#define CH_WS_REPLAY_LOW (CH_WS_SEND_QUEUE / 4)
#define CH_WS_MAX_JOINED 1024		/* rooms one connection may join */

/* GET /ws and /ws/{room}: check the handshake and the token, upgrade. */
void ch_ws_upgrade(struct ch_worker *w, struct ch_conn *c, struct ch_req *r, const char *path);

/* New bytes arrived on an upgraded connection (in c->in). */
void ch_ws_input(struct ch_worker *w, struct ch_conn *c);

/* A send on the connection completed (its queue shrank). */
void ch_ws_sent(struct ch_worker *w, struct ch_conn *c);

/* The connection's WebSocket timer fired. */
void ch_ws_timer(struct ch_worker *w, struct ch_conn *c);

/* Send a close frame with code and reason, then close. */
void ch_ws_close(struct ch_worker *w, struct ch_conn *c, uint16_t code, const char *reason);

/* The connection is going away: leave its rooms, free its state. */
void ch_ws_free(struct ch_worker *w, struct ch_conn *c);

/* The journal woke us: copy new ring entries out to the members. */
void ch_ws_deliver(struct ch_worker *w);

/* Once a tick: connections silent for away_after are reported idle. */
void ch_ws_tick(struct ch_worker *w);

/* An event from the journal (journal/proto.h's enum ch_bus_event). */
struct ch_payload_reader;
void ch_ws_event(struct ch_worker *w, uint32_t kind, struct ch_payload_reader *rd);

/* End of a loop turn: free rooms whose last member left. */
void ch_ws_sweep(struct ch_worker *w);

/* The worker's rooms (called once at start). */
int ch_ws_init(struct ch_worker *w);

/* Admin views for chatadm (worker/handoff.c): the JSON array of this
 * worker's WebSocket connections [{"user","rooms"}] or of its rooms with
 * members [{"room","members","seq"}], stopped once out holds max bytes;
 * and closing every connection of a user (1008), returning how many. */
struct ch_buf;
void ch_ws_admin_users(struct ch_worker *w, struct ch_buf *out, size_t max);
void ch_ws_admin_rooms(struct ch_worker *w, struct ch_buf *out, size_t max);
int ch_ws_admin_kick(struct ch_worker *w, const char *user);

/* Handing a connection to another worker (worker/handoff.c). ready: nothing
 * is in flight for it but requests to the journal, which the caller checks
 * (no replay, no rejoin, no frames held, not closing). export: its state
 * into out (at most cap bytes; -1 if it does not fit), and the user and
 * idleness for the presence report to make later. export_done: forget it
 * here without a close frame or a presence report; the socket is then a
 * plain one for ch_conn_close. presence_gone: that report, once the other
 * worker has the connection. adopt: take a connection exported elsewhere
 * (c freshly set up on its socket); rejoins its rooms from where it
 * stood, silently; -1 if the state is malformed. */
int ch_ws_export_ready(const struct ch_conn *c);
long ch_ws_export(const struct ch_conn *c, char *out, size_t cap, char *user, size_t user_len,
		  int *idle);
void ch_ws_export_done(struct ch_worker *w, struct ch_conn *c);
void ch_ws_presence_gone(struct ch_worker *w, const char *user, int idle);
int ch_ws_adopt(struct ch_worker *w, struct ch_conn *c, const char *p, size_t len);

#endif
