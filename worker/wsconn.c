/*
 * WebSocket connections and the chat protocol: see wsconn.h.
 */
#define _GNU_SOURCE
#include "worker/wsconn.h"

#include "common/auth.h"
#include "common/buf.h"
#include "common/log.h"
#include "journal/frame.h"
#include "journal/logread.h"
#include "journal/presence.h"
#include "journal/proto.h"
#include "journal/state.h"
#include "worker/api.h"
#include "worker/pool.h"
#include "worker/ws.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A message frame as read from a room ring once, shared by every local
 * member's output queue; freed when the last queue has sent it. */
struct ch_frame {
	uint32_t refs;
	uint32_t len;
	char data[];
};

struct ch_wroom;
struct ws_op;

/* One connection's membership in one room. */
struct ch_sub {
	struct ch_sub *conn_next;		/* the connection's rooms */
	struct ch_sub *room_prev, *room_next;	/* the room's local members */
	struct ch_wroom *room;
	struct ch_conn *conn;
	uint64_t next_seq;			/* the next message it must get */
	int replaying;				/* a replay is being read */
	int resuming;				/* lapped: rejoining from the journal */
	struct ws_op *parked;			/* a replay waiting for the socket */
	int rejoin;				/* missed live frames: rejoin after the replay */
	struct ch_outbuf *held_head, *held_tail;	/* live frames behind it */
	uint32_t held_bytes;
};

/* A room with members on this worker, and where we are in its ring. */
struct ch_wroom {
	struct ch_wroom *next;
	char name[CH_NAME_MAX + 1];
	uint32_t ring;
	uint32_t room_id;
	uint64_t cursor;	/* next ring position to read */
	uint64_t last_seen;	/* highest seq read from the ring */
	struct ch_sub *subs;
};

struct ch_wsconn {
	struct ch_ws_parser parser;
	char user[CH_USERNAME_MAX + 1];
	struct ch_sub *subs;
	uint32_t n_subs;
	uint8_t ping_out;	/* a ping is unanswered */
	uint8_t closing;	/* our close frame is queued */
	uint8_t idle;		/* reported idle to the journal */
	uint8_t status;		/* the status set on this connection, 0: none */
	uint32_t mark;		/* the last presence event it was given */
	uint64_t active_ms;	/* when the client last sent a frame */
	struct ch_conn *act_prev, *act_next;	/* the activity list */
	struct ch_conn *user_next;		/* the user table's bucket */
};

#define CH_WS_USER_BUCKETS 4096	/* a power of two */

struct ch_wsrooms {
	struct ch_wroom *head;
	int empty;		/* some room has no member left: sweep it */
	char *buf;		/* one ring entry, copied out */
	uint32_t cap;
	uint32_t mark;		/* presence events handed out */
	/* Connections not idle, least recently active first: the tick
	 * finds those that have become idle at the head. */
	struct ch_conn *act_head, *act_tail;
	/* Connections by username, to join both ends of a DM. */
	struct ch_conn *users[CH_WS_USER_BUCKETS];
};

/* A request waiting for the journal or the pool. */
struct ws_op {
	struct ch_job job;
	struct ch_worker *w;
	uint32_t conn, gen;
	char room[CH_NAME_MAX + 1];
	char id[CH_CLIENT_ID_MAX + 1];
	int has_id;
	int resume;		/* a lapped member rejoining (implies silent) */
	int silent;		/* no joined frame; missing messages close with 1013 */
	int dm;			/* a dm: the ack names the room the journal chose */
	uint64_t since;
	/* replay */
	uint64_t *pos;
	uint32_t n_pos;
	struct ch_buf frames;	/* one chunk of the replay: (u32 len, u64 seq, frame)... */
	uint32_t done;		/* positions read into earlier chunks */
	uint32_t n_frames;	/* positions in this chunk */
	int failed;
};

/* ---------------------------------------------------------------------- */
/* Frames out                                                             */

static void frame_unref(void *p)
{
	struct ch_frame *f = p;
	if (--f->refs == 0)
		free(f);
}

/* Queue bytes on c; a connection over its bound is cut with 1013. */
static void queue(struct ch_worker *w, struct ch_conn *c, struct ch_outbuf *b)
{
	if (!b) {
		ch_conn_close(w, c);
		return;
	}
	if (c->ws->closing) {
		ch_outbuf_free(b);
		return;
	}
	if (c->out_bytes + b->len > CH_WS_SEND_QUEUE) {
		ch_outbuf_free(b);
		ch_debug("worker %d: %s reads too slowly: closing with 1013", w->index, c->ws->user);
		ch_ws_close(w, c, CH_WS_CLOSE_TRY_AGAIN, "too slow: reconnect and join with since");
		return;
	}
	ch_conn_queue(w, c, b);
}

/* A text frame holding json. */
static void send_json(struct ch_worker *w, struct ch_conn *c, struct ch_buf *json)
{
	struct ch_buf f;
	ch_buf_init(&f);
	ch_text_frame_header(&f, json->len);
	ch_buf_append(&f, json->p, json->len);
	if (f.failed || json->failed) {
		ch_buf_free(&f);
		ch_conn_close(w, c);
		return;
	}
	struct ch_outbuf *b = ch_outbuf_new(f.len);
	if (b)
		memcpy(b->data, f.p, f.len);
	ch_buf_free(&f);
	queue(w, c, b);
}

static void put_id(struct ch_buf *j, const char *id, int has_id)
{
	if (has_id) {
		ch_buf_puts(j, ",\"id\":");
		ch_json_str(j, id, strlen(id));
	}
}

static void send_error(struct ch_worker *w, struct ch_conn *c, const char *code,
		       const char *message, const char *id, int has_id)
{
	struct ch_buf j;
	ch_buf_init(&j);
	ch_buf_puts(&j, "{\"type\":\"error\",\"code\":");
	ch_json_str(&j, code, strlen(code));
	ch_buf_puts(&j, ",\"message\":");
	ch_json_str(&j, message, strlen(message));
	put_id(&j, id, has_id);
	ch_buf_puts(&j, "}");
	send_json(w, c, &j);
	ch_buf_free(&j);
}

void ch_ws_close(struct ch_worker *w, struct ch_conn *c, uint16_t code, const char *reason)
{
	uint8_t frame[CH_WS_MAX_CONTROL_FRAME];

	if (!c->ws || c->ws->closing)
		return;
	/* What the client has not been sent yet is dropped: a slow reader
	 * should learn why it is closed, not first wait for a backlog. */
	ch_conn_drop_unsent(w, c);
	size_t n = ch_ws_close_frame(code, reason, strlen(reason), frame);
	struct ch_outbuf *b = ch_outbuf_new(n);
	if (b) {
		memcpy(b->data, frame, n);
		ch_conn_queue(w, c, b);
	}
	c->ws->closing = 1;
	ch_conn_close_after(w, c);
}

/* ---------------------------------------------------------------------- */
/* Rooms                                                                  */

static struct ch_wroom *room_find(struct ch_worker *w, const char *name)
{
	for (struct ch_wroom *r = w->rooms->head; r; r = r->next)
		if (strcmp(r->name, name) == 0)
			return r;
	return NULL;
}

static struct ch_sub *sub_find(struct ch_wsconn *ws, const char *room)
{
	for (struct ch_sub *s = ws->subs; s; s = s->conn_next)
		if (strcmp(s->room->name, room) == 0)
			return s;
	return NULL;
}

static void unwatched(struct ch_worker *w, struct ch_conn *c, void *ctx, uint32_t status,
		      struct ch_payload_reader *rd)
{
	(void)w;
	(void)c;
	(void)ctx;
	(void)status;
	(void)rd;
}

static void op_free(struct ws_op *op);

static void sub_free(struct ch_worker *w, struct ch_sub *s)
{
	struct ch_wroom *r = s->room;
	struct ch_wsconn *ws = s->conn->ws;

	for (struct ch_sub **p = &ws->subs; *p; p = &(*p)->conn_next) {
		if (*p == s) {
			*p = s->conn_next;
			break;
		}
	}
	ws->n_subs--;
	if (s->room_prev)
		s->room_prev->room_next = s->room_next;
	else
		r->subs = s->room_next;
	if (s->room_next)
		s->room_next->room_prev = s->room_prev;
	while (s->held_head) {
		struct ch_outbuf *b = s->held_head;
		s->held_head = b->next;
		ch_outbuf_free(b);
	}
	if (s->parked)
		op_free(s->parked);
	free(s);
	if (r->subs)
		return;
	/* The last local member left: the journal need not wake us for it. */
	struct ch_payload_writer pw;
	if (ch_bus_begin(w->bus, &pw, 96) == 0) {
		ch_payload_put_str(&pw, r->name);
		ch_payload_put_u32(&pw, (uint32_t)w->index);
		ch_bus_send(w->bus, CH_REQ_UNWATCH, &pw, w, NULL, unwatched, NULL);
	}
	/* The struct itself goes in ch_ws_sweep, at the end of the turn: a
	 * member may leave while its room's members are being walked. */
	w->rooms->empty = 1;
}

void ch_ws_sweep(struct ch_worker *w)
{
	if (!w->rooms->empty)
		return;
	for (struct ch_wroom **p = &w->rooms->head; *p;) {
		struct ch_wroom *r = *p;
		if (r->subs) {
			p = &r->next;
			continue;
		}
		*p = r->next;
		free(r);
	}
	w->rooms->empty = 0;
}

/* Give s the message with this seq (or skip it if s has it). */
static void sub_deliver(struct ch_worker *w, struct ch_sub *s, uint64_t seq, struct ch_frame *f);
static void sub_resume(struct ch_worker *w, struct ch_sub *s);

/*
 * s expects next_seq but the worker's cursor is past it (s joined while
 * the ring was being read): take what s misses from the ring again, oldest
 * first. Returns -1 when the ring no longer holds it.
 */
static int sub_catch_up(struct ch_worker *w, struct ch_sub *s, uint64_t upto)
{
	struct ch_mring *ring = ch_shm_ring(w->shm, s->room->ring);
	uint64_t cur = ch_mring_oldest(ring);
	struct ch_wsrooms *rs = w->rooms;

	while (s->next_seq <= upto && s->conn->state == CH_CONN_WS) {
		uint32_t len;
		uint64_t tag;
		enum ch_mring_status st = ch_mring_read(ring, &cur, rs->buf, rs->cap, &len, &tag);
		if (st != CH_MRING_OK)
			return -1;
		if (tag < s->next_seq)
			continue;
		if (tag > s->next_seq)
			return -1;
		struct ch_frame *f = malloc(sizeof(*f) + len);
		if (!f)
			return -1;
		f->refs = 1;
		f->len = len;
		memcpy(f->data, rs->buf, len);
		sub_deliver(w, s, tag, f);
		frame_unref(f);
	}
	return 0;
}

static void sub_deliver(struct ch_worker *w, struct ch_sub *s, uint64_t seq, struct ch_frame *f)
{
	struct ch_conn *c = s->conn;

	if (seq < s->next_seq || s->resuming || s->rejoin || c->state != CH_CONN_WS ||
	    c->ws->closing)
		return;	/* a resuming member gets these from its rejoin */
	if (seq > s->next_seq) {
		if (sub_catch_up(w, s, seq - 1) < 0 || seq != s->next_seq) {
			sub_resume(w, s);	/* the ring lost them: the log has them */
			return;
		}
	}
	f->refs++;
	struct ch_outbuf *b = ch_outbuf_ref(f->data, f->len, frame_unref, f);
	if (!b) {
		frame_unref(f);
		ch_conn_close(w, c);
		return;
	}
	s->next_seq = seq + 1;
	CH_STAT_ADD(w->stats, messages_out, 1);
	if (s->replaying) {
		if (s->held_bytes + f->len > CH_WS_SEND_QUEUE) {
			ch_outbuf_free(b);
			ch_ws_close(w, c, CH_WS_CLOSE_TRY_AGAIN, "too slow: reconnect and join with since");
			return;
		}
		if (s->held_tail)
			s->held_tail->next = b;
		else
			s->held_head = b;
		s->held_tail = b;
		s->held_bytes += f->len;
		return;
	}
	queue(w, c, b);
}

void ch_ws_deliver(struct ch_worker *w)
{
	struct ch_wsrooms *rs = w->rooms;
	struct ch_wroom *r = rs->head;

	while (r) {
		struct ch_wroom *next = r->next;
		struct ch_mring *ring = ch_shm_ring(w->shm, r->ring);
		/* The journal never gives away a ring a worker watches; if it
		 * did (a bug), its entries are another room's: never send them. */
		uint32_t owner = atomic_load_explicit(&ch_shm_room(w->shm, r->ring)->room_id,
						      memory_order_acquire);
		if (owner != r->room_id && r->subs) {
			ch_err("worker %d: ring %u of room '%s' now carries room %u; closing its "
			       "members with 1013", w->index, r->ring, r->name, owner);
			for (struct ch_sub *s = r->subs, *nx; s; s = nx) {
				nx = s->room_next;
				ch_ws_close(w, s->conn, CH_WS_CLOSE_TRY_AGAIN, "missed messages: join with since");
			}
		}
		for (; owner == r->room_id && r->subs;) {
			uint32_t len;
			uint64_t tag;
			enum ch_mring_status st = ch_mring_read(ring, &r->cursor, rs->buf, rs->cap,
								&len, &tag);
			if (st == CH_MRING_EMPTY)
				break;
			if (st == CH_MRING_OK) {
				struct ch_frame *f = malloc(sizeof(*f) + len);
				if (!f)
					break;
				f->refs = 1;
				f->len = len;
				memcpy(f->data, rs->buf, len);
				if (tag > r->last_seen)
					r->last_seen = tag;
				for (struct ch_sub *s = r->subs, *nx; s; s = nx) {
					nx = s->room_next;	/* s may leave on delivery */
					sub_deliver(w, s, tag, f);
				}
				frame_unref(f);
				continue;
			}
			/* Lapped: more was written than the ring holds since we
			 * last read. Each member rejoins from the journal where
			 * it stands, which replays what it missed from the log. */
			ch_warn("worker %d: fell behind room '%s' (ring %u): its members catch up "
				"from the log", w->index, r->name, r->ring);
			for (struct ch_sub *s = r->subs, *nx; s; s = nx) {
				nx = s->room_next;
				sub_resume(w, s);
			}
			if (ch_mring_resync(ring, &r->cursor) == CH_MRING_RESET)
				r->cursor = ch_mring_oldest(ring);
			break;
		}
		r = next;
	}
}

int ch_ws_init(struct ch_worker *w)
{
	struct ch_wsrooms *rs = calloc(1, sizeof(*rs));
	if (!rs)
		return -1;
	rs->cap = ch_mring_max_entry(ch_shm_ring(w->shm, 0));
	rs->buf = malloc(rs->cap);
	if (!rs->buf) {
		free(rs);
		return -1;
	}
	w->rooms = rs;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Requests                                                               */

static struct ws_op *op_new(struct ch_worker *w, struct ch_conn *c, const cJSON *msg)
{
	struct ws_op *op = calloc(1, sizeof(*op));
	if (!op)
		return NULL;
	op->w = w;
	op->conn = (uint32_t)(c - w->conns);
	op->gen = c->gen;
	ch_buf_init(&op->frames);
	const cJSON *id = msg ? cJSON_GetObjectItemCaseSensitive(msg, "id") : NULL;
	if (cJSON_IsString(id) && strlen(id->valuestring) <= CH_CLIENT_ID_MAX) {
		snprintf(op->id, sizeof(op->id), "%s", id->valuestring);
		op->has_id = 1;
	}
	return op;
}

static void op_free(struct ws_op *op)
{
	free(op->pos);
	ch_buf_free(&op->frames);
	free(op);
}

static void bus_failed(struct ch_worker *w, struct ch_conn *c, uint32_t status, struct ws_op *op)
{
	const struct ch_bus_error *e = ch_bus_error(status);
	send_error(w, c, e->code, e->message, op->id, op->has_id);
}

/* The connection a finished job was for, if it is still open. */
static struct ch_conn *op_conn(struct ws_op *op)
{
	struct ch_conn *c = &op->w->conns[op->conn];
	return c->gen == op->gen && c->state == CH_CONN_WS && c->ws && !c->ws->closing ? c : NULL;
}

static void job_replay(struct ch_job *job)
{
	struct ws_op *op = CH_POOL_CONTAINER_OF(job, struct ws_op, job);
	char dir[CH_PATH_MAX + 16];
	snprintf(dir, sizeof(dir), "%s/journal", op->w->cfg->data_dir);
	struct ch_logread *lr = ch_logread_thread(dir);
	void *buf = malloc(CH_RECORD_MAX);

	op->failed = 1;
	if (!lr || !buf)
		goto out;
	/* One chunk: the replay goes out as the socket takes it, so a long
	 * one never sits whole in memory. */
	op->frames.len = 0;
	op->n_frames = 0;
	for (uint32_t i = op->done; i < op->n_pos && op->frames.len < CH_WS_REPLAY_CHUNK; i++) {
		struct ch_record rec;
		struct ch_message m;
		if (ch_logread_at(lr, op->pos[i], buf, CH_RECORD_MAX, &rec) < 0 ||
		    ch_message_decode(&rec, &m) < 0)
			goto out;
		/* The frame's own length first, then the frame. */
		size_t at = op->frames.len;
		uint32_t len = 0;
		ch_buf_append(&op->frames, &len, sizeof(len));
		ch_buf_append(&op->frames, &rec.room_seq, sizeof(uint64_t));
		ch_msg_frame(&op->frames, m.room, m.room_len, rec.room_seq, m.from, m.from_len,
			     m.content, m.content_len, rec.ts_ms, m.id, m.id_len);
		if (op->frames.failed)
			goto out;
		len = (uint32_t)(op->frames.len - at - sizeof(len) - sizeof(uint64_t));
		memcpy(op->frames.p + at, &len, sizeof(len));
		op->n_frames++;
	}
	op->failed = 0;
out:
	free(buf);
}

static void replay_done(struct ch_job *job);

/* Read the replay's next chunk on the I/O pool. */
static void replay_submit(struct ch_worker *w, struct ch_conn *c, struct ws_op *op)
{
	op->job.fn = job_replay;
	op->job.done = replay_done;
	op->job.cancelled = 0;
	if (ch_pool_submit(w->io_pool, &op->job) < 0) {
		op_free(op);
		ch_ws_close(w, c, CH_WS_CLOSE_TRY_AGAIN, "busy: join again");
	}
}

static void replay_done(struct ch_job *job)
{
	struct ws_op *op = CH_POOL_CONTAINER_OF(job, struct ws_op, job);
	struct ch_conn *c = job->cancelled ? NULL : op_conn(op);
	struct ch_sub *s = c ? sub_find(c->ws, op->room) : NULL;

	if (!s || !s->replaying) {
		op_free(op);
		return;
	}
	struct ch_worker *w = op->w;
	if (op->failed) {
		op_free(op);
		ch_ws_close(w, c, CH_WS_CLOSE_INTERNAL, "could not read the history");
		return;
	}
	/* This chunk of the replay, oldest first; it is paced below, so it
	 * goes past the slow-reader bound, which is for live traffic. */
	for (size_t off = 0; off < op->frames.len && c->state == CH_CONN_WS;) {
		uint32_t len;
		memcpy(&len, op->frames.p + off, sizeof(len));
		off += sizeof(len) + sizeof(uint64_t);
		struct ch_outbuf *b = ch_outbuf_new(len);
		if (b)
			memcpy(b->data, op->frames.p + off, len);
		off += len;
		ch_conn_queue(w, c, b);
		CH_STAT_ADD(w->stats, messages_out, 1);
	}
	op->done += op->n_frames;
	if (c->state != CH_CONN_WS) {
		op_free(op);
		return;
	}
	if (op->done < op->n_pos) {
		/* More to read: now if the socket keeps up, else once it
		 * has taken most of what is queued (ch_ws_sent). */
		if (c->out_bytes <= CH_WS_REPLAY_LOW)
			replay_submit(w, c, op);
		else
			s->parked = op;
		return;
	}
	/* The replay is out (seqs up to the join's last_seq): now what
	 * arrived live meanwhile, after it. */
	s->replaying = 0;
	while (s->held_head && c->state == CH_CONN_WS) {
		struct ch_outbuf *b = s->held_head;
		s->held_head = b->next;
		b->next = NULL;
		ch_conn_queue(w, c, b);
	}
	s->held_head = s->held_tail = NULL;
	s->held_bytes = 0;
	op_free(op);
	if (s->rejoin && c->state == CH_CONN_WS) {
		s->rejoin = 0;
		sub_resume(w, s);
	}
}

void ch_ws_sent(struct ch_worker *w, struct ch_conn *c)
{
	if (c->out_bytes > CH_WS_REPLAY_LOW || !c->ws)
		return;
	for (struct ch_sub *s = c->ws->subs; s && c->state == CH_CONN_WS; s = s->conn_next) {
		struct ws_op *op = s->parked;
		if (op) {
			s->parked = NULL;
			replay_submit(w, c, op);
		}
	}
}

static void joined(struct ch_worker *w, struct ch_conn *c, void *ctx, uint32_t status,
		   struct ch_payload_reader *rd)
{
	struct ws_op *op = ctx;

	if (!c || c->state != CH_CONN_WS || c->ws->closing) {
		op_free(op);
		return;
	}
	if (status != CH_BUS_OK && op->silent) {
		/* Removed from the room meanwhile, or the journal is busy: the
		 * client, which asked nothing, joins again and hears why. */
		op_free(op);
		ch_ws_close(w, c, CH_WS_CLOSE_TRY_AGAIN, "missed messages: join with since");
		return;
	}
	if (status != CH_BUS_OK) {
		bus_failed(w, c, status, op);
		op_free(op);
		return;
	}
	uint32_t ring = ch_payload_get_u32(rd);
	uint32_t room_id = ch_payload_get_u32(rd);
	uint64_t last = ch_payload_get_u64(rd);
	uint64_t first = ch_payload_get_u64(rd);
	uint32_t n = ch_payload_get_u32(rd);
	if (rd->failed || n > CH_WS_REPLAY_MAX || !(op->pos = calloc(n ? n : 1, sizeof(uint64_t)))) {
		send_error(w, c, "unavailable", "malformed answer from the journal", op->id, op->has_id);
		op_free(op);
		return;
	}
	if (op->silent && first > op->since + 1) {
		/* More was missed than a replay holds: the client must
		 * resume by itself, and learn of the truncation there. */
		op_free(op);
		ch_ws_close(w, c, CH_WS_CLOSE_TRY_AGAIN, "missed messages: join with since");
		return;
	}
	for (uint32_t i = 0; i < n; i++)
		op->pos[i] = ch_payload_get_u64(rd);
	op->n_pos = n;

	struct ch_sub *s = sub_find(c->ws, op->room);
	if (op->resume) {
		if (!s || !s->resuming) {
			op_free(op);	/* it left meanwhile */
			return;
		}
		/* Rejoined where it stood: the replay brings it to last,
		 * the ring the rest. Missing more than a replay holds, it
		 * must resume by itself. */
		s->resuming = 0;
		s->next_seq = last + 1;
	}
	if (!s) {
		struct ch_wroom *r = room_find(w, op->room);
		if (r && !r->subs && r->ring != ring) {
			/* Left and joined again within a turn, and the journal
			 * gave the room another ring meanwhile. */
			r->ring = ring;
			r->room_id = room_id;
			r->cursor = ch_mring_oldest(ch_shm_ring(w->shm, ring));
			r->last_seen = 0;
		}
		if (!r) {
			r = calloc(1, sizeof(*r));
			if (!r)
				goto oom;
			snprintf(r->name, sizeof(r->name), "%s", op->room);
			r->ring = ring;
			r->room_id = room_id;
			/* Entries older than this join are skipped by seq. */
			r->cursor = ch_mring_oldest(ch_shm_ring(w->shm, ring));
			r->next = w->rooms->head;
			w->rooms->head = r;
		}
		s = calloc(1, sizeof(*s));
		if (!s)
			goto oom;
		s->room = r;
		s->conn = c;
		s->next_seq = last + 1;
		s->room_next = r->subs;
		if (r->subs)
			r->subs->room_prev = s;
		r->subs = s;
		s->conn_next = c->ws->subs;
		c->ws->subs = s;
		c->ws->n_subs++;
	}
	struct ch_buf j;
	if (!op->silent) {
		ch_buf_init(&j);
		ch_buf_puts(&j, "{\"type\":\"joined\",\"room\":");
		ch_json_str(&j, op->room, strlen(op->room));
		ch_buf_puts(&j, ",\"last_seq\":");
		ch_buf_u64(&j, last);
		put_id(&j, op->id, op->has_id);
		ch_buf_puts(&j, "}");
		send_json(w, c, &j);
		ch_buf_free(&j);
	}
	if (!op->silent && op->since != CH_SINCE_NONE && first > op->since + 1 && c->state == CH_CONN_WS) {
		ch_buf_init(&j);
		ch_buf_puts(&j, "{\"type\":\"truncated\",\"room\":");
		ch_json_str(&j, op->room, strlen(op->room));
		ch_buf_puts(&j, ",\"first_seq\":");
		ch_buf_u64(&j, first);
		ch_buf_puts(&j, "}");
		send_json(w, c, &j);
		ch_buf_free(&j);
	}
	/* With a replay to read, live frames wait behind it, including those
	 * caught up below. */
	if (n)
		s->replaying = 1;
	/* Frames the ring gave this worker before we learnt of the join. */
	if (s->room->last_seen > last && sub_catch_up(w, s, s->room->last_seen) < 0) {
		s->resuming = 0;
		sub_resume(w, s);	/* after the replay, when there is one */
	}
	if (n == 0 || c->state != CH_CONN_WS) {
		op_free(op);
		return;
	}
	replay_submit(w, c, op);
	return;
oom:
	op_free(op);
	ch_ws_close(w, c, CH_WS_CLOSE_INTERNAL, "out of memory");
}

/* Ask the journal to join op->room from op->since; 0, or -1 (op freed)
 * when the bus is full. */
static int join_request(struct ch_worker *w, struct ch_conn *c, struct ws_op *op)
{
	struct ch_payload_writer pw;

	if (ch_bus_begin(w->bus, &pw, 64 + 2 * CH_NAME_MAX) < 0)
		goto busy;
	ch_payload_put_str(&pw, c->ws->user);
	ch_payload_put_str(&pw, op->room);
	ch_payload_put_u32(&pw, (uint32_t)w->index);
	ch_payload_put_u64(&pw, op->since);
	ch_payload_put_u32(&pw, CH_WS_REPLAY_MAX);
	if (ch_bus_send(w->bus, CH_REQ_JOIN, &pw, w, c, joined, op) == 0)
		return 0;
busy:
	op_free(op);
	return -1;
}

static void do_join(struct ch_worker *w, struct ch_conn *c, const cJSON *msg, const char *room,
		    uint64_t since)
{
	struct ws_op *op = op_new(w, c, msg);

	if (!op) {
		ch_ws_close(w, c, CH_WS_CLOSE_INTERNAL, "out of memory");
		return;
	}
	snprintf(op->room, sizeof(op->room), "%s", room);
	op->since = since;
	if (c->ws->n_subs >= CH_WS_MAX_JOINED && !sub_find(c->ws, room)) {
		send_error(w, c, "limit_reached", "too many rooms joined", op->id, op->has_id);
		op_free(op);
		return;
	}
	char id[CH_CLIENT_ID_MAX + 1];
	int has_id = op->has_id;
	snprintf(id, sizeof(id), "%s", op->id);
	if (join_request(w, c, op) < 0)
		send_error(w, c, "unavailable", "the server is busy; retry", id, has_id);
}

/* s misses messages the ring no longer holds (the worker was lapped, or
 * the ring moved on during a join): rejoin s from where it stands. Live
 * frames are dropped for it until the journal answers (the replay and the
 * ring bring them); a connection that cannot rejoin must resume itself. */
static void sub_resume(struct ch_worker *w, struct ch_sub *s)
{
	struct ch_conn *c = s->conn;

	if (s->resuming || c->state != CH_CONN_WS || c->ws->closing)
		return;	/* a rejoin in flight: it catches up after it too */
	if (s->replaying) {
		/* Frames held behind the replay run up to the gap; the
		 * rest comes from a rejoin once the replay is out. */
		s->rejoin = 1;
		return;
	}
	struct ws_op *op = op_new(w, c, NULL);
	if (!op) {
		ch_ws_close(w, c, CH_WS_CLOSE_TRY_AGAIN, "missed messages: join with since");
		return;
	}
	snprintf(op->room, sizeof(op->room), "%s", s->room->name);
	op->since = s->next_seq - 1;
	op->resume = 1;
	op->silent = 1;
	s->resuming = 1;
	if (join_request(w, c, op) < 0)
		ch_ws_close(w, c, CH_WS_CLOSE_TRY_AGAIN, "missed messages: join with since");
}

static void send_ack(struct ch_worker *w, struct ch_conn *c, struct ws_op *op, uint64_t seq,
		     uint64_t ts);

static void acked(struct ch_worker *w, struct ch_conn *c, void *ctx, uint32_t status,
		  struct ch_payload_reader *rd)
{
	struct ws_op *op = ctx;

	if (c && c->state == CH_CONN_WS && !c->ws->closing) {
		if (status != CH_BUS_OK) {
			bus_failed(w, c, status, op);
		} else {
			if (op->dm)	/* the room the journal chose */
				ch_payload_get_str(rd, op->room, sizeof(op->room));
			uint64_t seq = ch_payload_get_u64(rd);
			uint64_t ts = ch_payload_get_u64(rd);
			send_ack(w, c, op, seq, ts);
		}
	}
	op_free(op);
}

static void send_ack(struct ch_worker *w, struct ch_conn *c, struct ws_op *op, uint64_t seq,
		     uint64_t ts)
{
	struct ch_buf j;
	ch_buf_init(&j);
	ch_buf_puts(&j, "{\"type\":\"ack\"");
	put_id(&j, op->id, op->has_id);
	ch_buf_puts(&j, ",\"room\":");
	ch_json_str(&j, op->room, strlen(op->room));
	ch_buf_puts(&j, ",\"seq\":");
	ch_buf_u64(&j, seq);
	ch_buf_puts(&j, ",\"ts\":");
	ch_buf_u64(&j, ts);
	ch_buf_puts(&j, "}");
	send_json(w, c, &j);
	ch_buf_free(&j);
}

/* send {room, content} and dm {to, content}: the same checks, then the
 * journal stores it (a dm in the two users' room) and the ack comes back. */
static void do_message(struct ch_worker *w, struct ch_conn *c, const cJSON *msg, int dm)
{
	const cJSON *target = cJSON_GetObjectItemCaseSensitive(msg, dm ? "to" : "room");
	const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
	struct ws_op *op = op_new(w, c, msg);
	struct ch_payload_writer pw;

	if (!op) {
		ch_ws_close(w, c, CH_WS_CLOSE_INTERNAL, "out of memory");
		return;
	}
	if (!cJSON_IsString(target) || !cJSON_IsString(content)) {
		send_error(w, c, "bad_request", dm ? "dm needs to and content strings"
						  : "send needs room and content strings",
			   op->id, op->has_id);
		goto fail;
	}
	size_t cl = strlen(content->valuestring);
	const char *t = target->valuestring;
	if (cl > w->cfg->max_message_bytes) {
		send_error(w, c, "too_large", "the message is over max_message_bytes", op->id,
			   op->has_id);
		goto fail;
	}
	if (dm ? !ch_valid_username(t, strlen(t)) : !ch_valid_room_id(t, strlen(t))) {
		send_error(w, c, dm ? "unknown_user" : "no_such_room",
			   dm ? "no such user" : "no such room", op->id, op->has_id);
		goto fail;
	}
	if (!dm)
		snprintf(op->room, sizeof(op->room), "%s", t);
	if (ch_bus_begin(w->bus, &pw, (uint32_t)(cl + 512)) < 0)
		goto busy;
	ch_payload_put_str(&pw, c->ws->user);
	ch_payload_put_str(&pw, t);
	ch_payload_put_str(&pw, op->has_id ? op->id : "");
	ch_payload_put_bytes(&pw, content->valuestring, cl);
	op->dm = dm;
	if (ch_bus_send(w->bus, dm ? CH_REQ_DM : CH_REQ_SEND, &pw, w, c, acked, op) == 0)
		return;
busy:
	send_error(w, c, "unavailable", "the server is busy; retry", op->id, op->has_id);
fail:
	op_free(op);
}

/* ---------------------------------------------------------------------- */
/* Presence, users and direct messages                                    */

static uint32_t user_bucket(const char *user)
{
	uint32_t h = 2166136261u;	/* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)user; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h & (CH_WS_USER_BUCKETS - 1);
}

/* Tell the journal about one of this worker's connections of user. */
static void presence_report(struct ch_worker *w, const char *user, enum ch_presence_event ev,
			    uint32_t value)
{
	struct ch_payload_writer pw;

	if (ch_bus_begin(w->bus, &pw, 64 + CH_USERNAME_MAX) < 0) {
		ch_warn("worker %d: bus full: presence of '%s' not reported", w->index, user);
		return;
	}
	ch_payload_put_u32(&pw, (uint32_t)w->index);
	ch_payload_put_str(&pw, user);
	ch_payload_put_u32(&pw, ev);
	ch_payload_put_u32(&pw, value);
	ch_bus_post(w->bus, CH_REQ_PRESENCE, &pw);
}

static void act_unlink(struct ch_worker *w, struct ch_conn *c)
{
	struct ch_wsrooms *rs = w->rooms;
	struct ch_wsconn *ws = c->ws;

	if (ws->act_prev)
		ws->act_prev->ws->act_next = ws->act_next;
	else if (rs->act_head == c)
		rs->act_head = ws->act_next;
	if (ws->act_next)
		ws->act_next->ws->act_prev = ws->act_prev;
	else if (rs->act_tail == c)
		rs->act_tail = ws->act_prev;
	ws->act_prev = ws->act_next = NULL;
}

/* The client sent a frame: it is active now (and no longer idle). */
static void act_touch(struct ch_worker *w, struct ch_conn *c)
{
	struct ch_wsrooms *rs = w->rooms;
	struct ch_wsconn *ws = c->ws;

	ws->active_ms = w->now_ms;
	if (ws->idle) {
		ws->idle = 0;
		presence_report(w, ws->user, CH_PRES_ACTIVE, 0);
	} else if (rs->act_tail == c) {
		return;
	} else {
		act_unlink(w, c);
	}
	ws->act_prev = rs->act_tail;
	if (rs->act_tail)
		rs->act_tail->ws->act_next = c;
	else
		rs->act_head = c;
	rs->act_tail = c;
}

/* Once a tick: connections silent for away_after become idle. */
void ch_ws_tick(struct ch_worker *w)
{
	struct ch_wsrooms *rs = w->rooms;
	struct ch_conn *c;

	while ((c = rs->act_head) != NULL &&
	       c->ws->active_ms + w->cfg->away_after_ms <= w->now_ms) {
		act_unlink(w, c);
		c->ws->idle = 1;
		presence_report(w, c->ws->user, CH_PRES_IDLE, 0);
	}
}

static void presence_open(struct ch_worker *w, struct ch_conn *c)
{
	uint32_t b = user_bucket(c->ws->user);

	c->ws->user_next = w->rooms->users[b];
	w->rooms->users[b] = c;
	presence_report(w, c->ws->user, CH_PRES_OPEN, 0);
	act_touch(w, c);
}

/* Out of the user table and the activity list. */
static void users_unlink(struct ch_worker *w, struct ch_conn *c)
{
	struct ch_wsconn *ws = c->ws;

	for (struct ch_conn **p = &w->rooms->users[user_bucket(ws->user)]; *p;
	     p = &(*p)->ws->user_next) {
		if (*p == c) {
			*p = ws->user_next;
			break;
		}
	}
	act_unlink(w, c);
}

static void presence_close(struct ch_worker *w, struct ch_conn *c)
{
	users_unlink(w, c);
	presence_report(w, c->ws->user, CH_PRES_CLOSE, c->ws->idle);
}

static void put_users(struct ch_buf *j, struct ch_payload_reader *rd)
{
	uint32_t n = ch_payload_get_u32(rd);

	ch_buf_puts(j, ",\"users\":[");
	for (uint32_t i = 0; i < n && !rd->failed; i++) {
		char user[CH_NAME_MAX + 1];
		ch_payload_get_str(rd, user, sizeof(user));
		uint32_t st = ch_payload_get_u32(rd);
		if (rd->failed)
			break;
		ch_buf_puts(j, i ? ",{\"user\":" : "{\"user\":");
		ch_json_str(j, user, strlen(user));
		ch_buf_puts(j, ",\"status\":");
		ch_buf_puts(j, "\"");
		ch_buf_puts(j, ch_status_name(st));
		ch_buf_puts(j, "\"}");
	}
	ch_buf_puts(j, "]");
}

/* The answer to users, who or info: op->room holds the frame type's
 * argument (the room for who, the user for info). */
static void listed(struct ch_worker *w, struct ch_conn *c, void *ctx, uint32_t status,
		   struct ch_payload_reader *rd, const char *type)
{
	struct ws_op *op = ctx;
	struct ch_buf j;

	if (!c || c->state != CH_CONN_WS || c->ws->closing) {
		op_free(op);
		return;
	}
	if (status != CH_BUS_OK) {
		bus_failed(w, c, status, op);
		op_free(op);
		return;
	}
	ch_buf_init(&j);
	ch_buf_puts(&j, "{\"type\":\"");
	ch_buf_puts(&j, type);
	ch_buf_puts(&j, "\"");
	if (type[0] == 'w') {
		ch_buf_puts(&j, ",\"room\":");
		ch_json_str(&j, op->room, strlen(op->room));
	}
	if (type[0] == 'i') {
		uint32_t st = ch_payload_get_u32(rd);
		uint64_t since = ch_payload_get_u64(rd);
		ch_buf_puts(&j, ",\"user\":");
		ch_json_str(&j, op->room, strlen(op->room));
		ch_buf_puts(&j, st == CH_STATUS_OFFLINE ? ",\"online\":false" : ",\"online\":true");
		ch_buf_puts(&j, ",\"status\":\"");
		ch_buf_puts(&j, ch_status_name(st));
		ch_buf_puts(&j, "\",\"since\":");
		ch_buf_u64(&j, since);
	} else {
		put_users(&j, rd);
	}
	put_id(&j, op->id, op->has_id);
	ch_buf_puts(&j, "}");
	if (rd->failed)
		send_error(w, c, "unavailable", "malformed answer from the journal", op->id, op->has_id);
	else
		send_json(w, c, &j);
	ch_buf_free(&j);
	op_free(op);
}

static void users_listed(struct ch_worker *w, struct ch_conn *c, void *ctx, uint32_t status,
			 struct ch_payload_reader *rd)
{
	listed(w, c, ctx, status, rd, "users");
}

static void who_listed(struct ch_worker *w, struct ch_conn *c, void *ctx, uint32_t status,
		       struct ch_payload_reader *rd)
{
	listed(w, c, ctx, status, rd, "who");
}

static void info_listed(struct ch_worker *w, struct ch_conn *c, void *ctx, uint32_t status,
			struct ch_payload_reader *rd)
{
	listed(w, c, ctx, status, rd, "info");
}

/* users, who {room} and info {user}: asked of the journal, which holds
 * presence for every worker. */
static void do_ask(struct ch_worker *w, struct ch_conn *c, const cJSON *msg, uint32_t type)
{
	const char *field = type == CH_REQ_WHO ? "room" : "user";
	const cJSON *arg = cJSON_GetObjectItemCaseSensitive(msg, field);
	struct ws_op *op = op_new(w, c, msg);
	struct ch_payload_writer pw;

	if (!op) {
		ch_ws_close(w, c, CH_WS_CLOSE_INTERNAL, "out of memory");
		return;
	}
	if (type == CH_REQ_WHO &&
	    (!cJSON_IsString(arg) || !ch_valid_room_id(arg->valuestring, strlen(arg->valuestring)))) {
		send_error(w, c, "invalid_room", "who needs a valid room", op->id, op->has_id);
		goto fail;
	}
	if (type == CH_REQ_INFO &&
	    (!cJSON_IsString(arg) || !ch_valid_username(arg->valuestring, strlen(arg->valuestring)))) {
		send_error(w, c, "unknown_user", "info needs a valid username", op->id, op->has_id);
		goto fail;
	}
	if (type != CH_REQ_USERS)
		snprintf(op->room, sizeof(op->room), "%s", arg->valuestring);
	if (ch_bus_begin(w->bus, &pw, 64 + 2 * CH_NAME_MAX) < 0)
		goto busy;
	if (type == CH_REQ_WHO)
		ch_payload_put_str(&pw, c->ws->user);
	if (type != CH_REQ_USERS)
		ch_payload_put_str(&pw, op->room);
	ch_bus_fn fn = type == CH_REQ_WHO ? who_listed : type == CH_REQ_INFO ? info_listed
									       : users_listed;
	if (ch_bus_send(w->bus, type, &pw, w, c, fn, op) == 0)
		return;
busy:
	send_error(w, c, "unavailable", "the server is busy; retry", op->id, op->has_id);
fail:
	op_free(op);
}

static void do_status(struct ch_worker *w, struct ch_conn *c, const cJSON *msg)
{
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(msg, "status");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
	int s = cJSON_IsString(st) ? ch_status_parse(st->valuestring) : -1;

	if (s < 0) {
		send_error(w, c, "bad_request", "status is one of active, busy, away",
			   cJSON_IsString(id) ? id->valuestring : "", cJSON_IsString(id));
		return;
	}
	c->ws->status = (uint8_t)s;
	presence_report(w, c->ws->user, CH_PRES_SET, (uint32_t)s);
	struct ch_buf j;
	ch_buf_init(&j);
	ch_buf_puts(&j, "{\"type\":\"status\",\"status\":\"");
	ch_buf_puts(&j, ch_status_name(s));
	ch_buf_puts(&j, "\"");
	if (cJSON_IsString(id))
		put_id(&j, id->valuestring, 1);
	ch_buf_puts(&j, "}");
	send_json(w, c, &j);
	ch_buf_free(&j);
}

/* A DM arrived in room: join every local connection of its users that
 * has not joined it, replaying from seq so the message is not missed. */
static void ev_autojoin(struct ch_worker *w, struct ch_payload_reader *rd)
{
	char room[CH_NAME_MAX + 1], user[CH_NAME_MAX + 1];

	ch_payload_get_str(rd, room, sizeof(room));
	uint64_t seq = ch_payload_get_u64(rd);
	uint32_t n = ch_payload_get_u32(rd);
	for (uint32_t i = 0; i < n && !rd->failed; i++) {
		ch_payload_get_str(rd, user, sizeof(user));
		if (rd->failed)
			break;
		for (struct ch_conn *c = w->rooms->users[user_bucket(user)], *nx; c; c = nx) {
			nx = c->ws->user_next;
			if (c->state == CH_CONN_WS && !c->ws->closing &&
			    strcmp(c->ws->user, user) == 0 && !sub_find(c->ws, room))
				do_join(w, c, NULL, room, seq ? seq - 1 : 0);
		}
	}
}

/* A user's status changed: the connections that joined one of the listed
 * rooms hear it, once each. */
static void ev_presence(struct ch_worker *w, struct ch_payload_reader *rd)
{
	char user[CH_NAME_MAX + 1];
	struct ch_wsrooms *rs = w->rooms;

	ch_payload_get_str(rd, user, sizeof(user));
	uint32_t st = ch_payload_get_u32(rd);
	uint32_t n = ch_payload_get_u32(rd);
	if (rd->failed)
		return;
	struct ch_buf j;
	ch_buf_init(&j);
	ch_buf_puts(&j, "{\"type\":\"presence\",\"user\":");
	ch_json_str(&j, user, strlen(user));
	ch_buf_puts(&j, ",\"status\":\"");
	ch_buf_puts(&j, ch_status_name(st));
	ch_buf_puts(&j, "\"}");
	uint32_t mark = ++rs->mark;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t room_id = ch_payload_get_u32(rd);
		if (rd->failed)
			break;
		for (struct ch_wroom *r = rs->head; r; r = r->next) {
			if (r->room_id != room_id)
				continue;
			for (struct ch_sub *s = r->subs, *nx; s; s = nx) {
				nx = s->room_next;
				struct ch_conn *c = s->conn;
				if (c->state != CH_CONN_WS || c->ws->closing || c->ws->mark == mark)
					continue;
				c->ws->mark = mark;
				send_json(w, c, &j);
			}
		}
	}
	ch_buf_free(&j);
}

/* The journal restarted with no presence: report every connection. */
static void ev_resync(struct ch_worker *w)
{
	for (uint32_t b = 0; b < CH_WS_USER_BUCKETS; b++) {
		for (struct ch_conn *c = w->rooms->users[b]; c; c = c->ws->user_next) {
			presence_report(w, c->ws->user, CH_PRES_OPEN, 0);
			if (c->ws->idle)
				presence_report(w, c->ws->user, CH_PRES_IDLE, 0);
			if (c->ws->status)
				presence_report(w, c->ws->user, CH_PRES_SET, c->ws->status);
		}
	}
}

void ch_ws_event(struct ch_worker *w, uint32_t kind, struct ch_payload_reader *rd)
{
	switch (kind) {
	case CH_EV_AUTOJOIN:
		ev_autojoin(w, rd);
		break;
	case CH_EV_PRESENCE:
		ev_presence(w, rd);
		break;
	case CH_EV_RESYNC:
		ev_resync(w);
		break;
	default:
		ch_debug("worker %d: unknown event %u from the journal", w->index, kind);
		break;
	}
}

static void reply_simple(struct ch_worker *w, struct ch_conn *c, const char *type,
			 const char *room, const cJSON *msg)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
	struct ch_buf j;
	ch_buf_init(&j);
	ch_buf_puts(&j, "{\"type\":");
	ch_json_str(&j, type, strlen(type));
	if (room) {
		ch_buf_puts(&j, ",\"room\":");
		ch_json_str(&j, room, strlen(room));
	}
	if (cJSON_IsString(id))
		put_id(&j, id->valuestring, 1);
	ch_buf_puts(&j, "}");
	send_json(w, c, &j);
	ch_buf_free(&j);
}

static void handle_text(struct ch_worker *w, struct ch_conn *c, const uint8_t *data, size_t len)
{
	cJSON *msg = cJSON_ParseWithLength((const char *)data, len);
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(msg, "type");
	const cJSON *idv = cJSON_GetObjectItemCaseSensitive(msg, "id");
	const char *id = cJSON_IsString(idv) ? idv->valuestring : "";
	int has_id = cJSON_IsString(idv);

	if (!cJSON_IsObject(msg) || !cJSON_IsString(type)) {
		send_error(w, c, "bad_request", "a frame is a JSON object with a type", id, has_id);
		goto out;
	}
	const char *t = type->valuestring;
	if (strcmp(t, "ping") == 0) {
		reply_simple(w, c, "pong", NULL, msg);
	} else if (strcmp(t, "send") == 0) {
		do_message(w, c, msg, 0);
	} else if (strcmp(t, "join") == 0 || strcmp(t, "leave") == 0) {
		const cJSON *room = cJSON_GetObjectItemCaseSensitive(msg, "room");
		const cJSON *since = cJSON_GetObjectItemCaseSensitive(msg, "since");
		if (!cJSON_IsString(room) || !ch_valid_room_id(room->valuestring, strlen(room->valuestring))) {
			send_error(w, c, "invalid_room", "room must be a valid room id", id, has_id);
		} else if (t[0] == 'l') {
			struct ch_sub *s = sub_find(c->ws, room->valuestring);
			if (s)
				sub_free(w, s);
			reply_simple(w, c, "left", room->valuestring, msg);
		} else if (since && !cJSON_IsNull(since) &&
			   (!cJSON_IsNumber(since) || since->valuedouble < 0 ||
			    since->valuedouble > 9007199254740991.0)) {
			send_error(w, c, "bad_request", "since must be a seq (a number >= 0)", id, has_id);
		} else {
			uint64_t s = cJSON_IsNumber(since) ? (uint64_t)since->valuedouble : CH_SINCE_NONE;
			do_join(w, c, msg, room->valuestring, s);
		}
	} else if (strcmp(t, "dm") == 0) {
		do_message(w, c, msg, 1);
	} else if (strcmp(t, "status") == 0) {
		do_status(w, c, msg);
	} else if (strcmp(t, "users") == 0) {
		do_ask(w, c, msg, CH_REQ_USERS);
	} else if (strcmp(t, "who") == 0) {
		do_ask(w, c, msg, CH_REQ_WHO);
	} else if (strcmp(t, "info") == 0) {
		do_ask(w, c, msg, CH_REQ_INFO);
	} else {
		send_error(w, c, "bad_request", "unknown frame type", id, has_id);
	}
out:
	cJSON_Delete(msg);
}

/* ---------------------------------------------------------------------- */
/* Transport                                                              */

void ch_ws_input(struct ch_worker *w, struct ch_conn *c)
{
	struct ch_wsconn *ws = c->ws;

	ws->ping_out = 0;
	if (!ws->closing)
		ch_worker_timer_set(w, c, CH_TIMER_WS);
	while (c->state == CH_CONN_WS && c->in && c->in->off < c->in->len) {
		struct ch_ws_event ev;
		struct ch_inbuf *in = c->in;
		size_t used = ch_ws_parse(&ws->parser, (uint8_t *)in->data + in->off,
					  in->len - in->off, &ev);
		in->off += used;
		if (ev.type == CH_WS_EV_NONE) {
			if (used == 0)
				break;
			continue;
		}
		if (ws->closing && ev.type != CH_WS_EV_CLOSE) {
			/* After our close only its answer matters; a failed
			 * parser repeats its error without consuming, so drop
			 * what is left rather than loop on it. */
			if (used == 0)
				in->off = in->len;
			continue;
		}
		switch (ev.type) {
		case CH_WS_EV_TEXT:
			act_touch(w, c);
			handle_text(w, c, ev.data, ev.len);
			break;
		case CH_WS_EV_BINARY:
			ch_ws_close(w, c, CH_WS_CLOSE_UNSUPPORTED, "frames are JSON text");
			break;
		case CH_WS_EV_PING: {
			uint8_t frame[CH_WS_MAX_CONTROL_FRAME];
			size_t n = ch_ws_pong_frame(ev.data, ev.len, frame);
			struct ch_outbuf *b = n ? ch_outbuf_new(n) : NULL;
			if (b) {
				memcpy(b->data, frame, n);
				queue(w, c, b);
			}
			break;
		}
		case CH_WS_EV_PONG:
			break;
		case CH_WS_EV_CLOSE:
			if (ws->closing) {
				ch_conn_close(w, c);	/* our close, answered */
				return;
			}
			ch_ws_close(w, c, ev.code == CH_WS_CLOSE_NO_STATUS ? CH_WS_CLOSE_NORMAL : ev.code, "");
			break;
		case CH_WS_EV_ERROR:
			ch_debug("worker %d: websocket error from %s: %s", w->index, ws->user, ev.error);
			ch_ws_close(w, c, ev.code, ev.error);
			break;
		default:
			break;
		}
	}
	if (c->state == CH_CONN_WS && c->in && c->in->off == c->in->len) {
		free(c->in);
		c->in = NULL;
	}
}

void ch_ws_timer(struct ch_worker *w, struct ch_conn *c)
{
	struct ch_wsconn *ws = c->ws;

	if (ws->ping_out) {
		/* Nothing came back for a whole interval: the peer is gone. */
		ch_conn_close(w, c);
		return;
	}
	uint8_t frame[CH_WS_MAX_CONTROL_FRAME];
	size_t n = ch_ws_ping_frame(NULL, 0, frame);
	struct ch_outbuf *b = ch_outbuf_new(n);
	if (b)
		memcpy(b->data, frame, n);
	queue(w, c, b);
	ws->ping_out = 1;
	if (c->state == CH_CONN_WS)
		ch_worker_timer_set(w, c, CH_TIMER_WS);
}

void ch_ws_free(struct ch_worker *w, struct ch_conn *c)
{
	struct ch_wsconn *ws = c->ws;
	if (!ws)
		return;
	presence_close(w, c);
	while (ws->subs)
		sub_free(w, ws->subs);
	ch_ws_parser_free(&ws->parser);
	free(ws);
	c->ws = NULL;
}

void ch_ws_upgrade(struct ch_worker *w, struct ch_conn *c, struct ch_req *r, const char *path)
{
	const struct ch_str *ver = ch_http_header(&r->http, "Sec-WebSocket-Version");
	const struct ch_str *key = ch_http_header(&r->http, "Sec-WebSocket-Key");
	const struct ch_str *upg = ch_http_header(&r->http, "Upgrade");
	const struct ch_str *con = ch_http_header(&r->http, "Connection");
	struct ch_ws_upgrade u = {
		.method = r->http.method_text.p, .method_len = r->http.method_text.len,
		.http_minor = r->http.minor,
		.upgrade = upg ? upg->p : NULL, .upgrade_len = upg ? upg->len : 0,
		.connection = con ? con->p : NULL, .connection_len = con ? con->len : 0,
		.version = ver ? ver->p : NULL, .version_len = ver ? ver->len : 0,
		.key = key ? key->p : NULL, .key_len = key ? key->len : 0,
	};
	const char *reason;
	const char *room = strncmp(path, "/ws/", 4) == 0 ? path + 4 : NULL;
	char user[CH_USERNAME_MAX + 1];

	int status = ch_ws_check_upgrade(&u, &reason);
	if (status) {
		ch_respond_error_hdr(w, c, status, "bad_handshake", reason,
				     status == 426 ? CH_WS_VERSION_HEADER : NULL);
		return;
	}
	if (ch_api_request_user(w, r, 1, user, sizeof(user)) != CH_TOKEN_OK) {
		ch_respond_error_hdr(w, c, 401, "unauthorized", "a valid token is required",
				     "WWW-Authenticate: Bearer\r\n");
		return;
	}
	if (room && !ch_valid_room_id(room, strlen(room))) {
		ch_respond_error(w, c, 404, "no_such_room", "no such room");
		return;
	}
	char head[CH_WS_MAX_101];
	int n = ch_ws_format_101(head, sizeof(head), key->p, key->len);
	struct ch_wsconn *ws = calloc(1, sizeof(*ws));
	struct ch_outbuf *b = n > 0 ? ch_outbuf_new((size_t)n) : NULL;
	if (!ws || !b) {
		free(ws);
		if (b)
			ch_outbuf_free(b);
		ch_respond_error(w, c, 500, "internal", "out of memory");
		return;
	}
	memcpy(b->data, head, (size_t)n);
	ch_conn_queue(w, c, b);
	CH_STAT_ADD(w->stats, requests, 1);
	/* Frames may be up to six times a message's content (JSON escapes). */
	size_t max = (size_t)w->cfg->max_message_bytes * 6 + 4096;
	ch_ws_parser_init(&ws->parser, max);
	snprintf(ws->user, sizeof(ws->user), "%s", user);
	ch_http_conn_reset(c);
	c->ws = ws;
	c->state = CH_CONN_WS;
	ch_worker_timer_set(w, c, CH_TIMER_WS);
	presence_open(w, c);
	if (room) {
		/* /ws/{room}: joined at once, as a join with no since. */
		cJSON *none = cJSON_CreateObject();
		do_join(w, c, none, room, CH_SINCE_NONE);
		cJSON_Delete(none);
	}
}

/* ---------------------------------------------------------------------- */
/* Admin views: chatadm's users, rooms and kick (through worker/handoff.c) */

void ch_ws_admin_users(struct ch_worker *w, struct ch_buf *out, size_t max)
{
	int first = 1;

	ch_buf_puts(out, "[");
	for (uint32_t i = 0; i < w->max_conns && out->len < max; i++) {
		const struct ch_conn *c = &w->conns[i];
		if (c->state != CH_CONN_WS || !c->ws)
			continue;
		ch_buf_puts(out, first ? "{" : ",{");
		ch_json_key(out, "user");
		ch_json_str(out, c->ws->user, strlen(c->ws->user));
		ch_buf_printf(out, ",\"rooms\":%u}", c->ws->n_subs);
		first = 0;
	}
	ch_buf_puts(out, "]");
}

void ch_ws_admin_rooms(struct ch_worker *w, struct ch_buf *out, size_t max)
{
	int first = 1;

	ch_buf_puts(out, "[");
	for (const struct ch_wroom *r = w->rooms->head; r && out->len < max; r = r->next) {
		uint32_t members = 0;
		for (const struct ch_sub *s = r->subs; s; s = s->room_next)
			members++;
		if (!members)
			continue;
		ch_buf_puts(out, first ? "{" : ",{");
		ch_json_key(out, "room");
		ch_json_str(out, r->name, strlen(r->name));
		ch_buf_printf(out, ",\"members\":%u,\"seq\":%llu}", members,
			      (unsigned long long)r->last_seen);
		first = 0;
	}
	ch_buf_puts(out, "]");
}

int ch_ws_admin_kick(struct ch_worker *w, const char *user)
{
	int n = 0;

	for (uint32_t i = 0; i < w->max_conns; i++) {
		struct ch_conn *c = &w->conns[i];
		if (c->state != CH_CONN_WS || !c->ws || c->ws->closing ||
		    strcmp(c->ws->user, user) != 0)
			continue;
		ch_ws_close(w, c, CH_WS_CLOSE_POLICY, "closed by the administrator");
		n++;
	}
	return n;
}

/* ---------------------------------------------------------------------- */
/* Handing a WebSocket connection to another worker (worker/handoff.c)    */

/* What travels with the socket: the user, the connection's flags, the
 * parser as it stands (a frame may be half read), then each joined room
 * with the next seq it must get, then the bytes of a split message. */
struct ws_export_head {
	uint32_t n_subs;
	uint32_t msg_len;
	uint8_t status, idle, ping_out, pad;
	char user[CH_USERNAME_MAX + 1];
	struct ch_ws_parser parser;	/* buf is rebuilt from the bytes after */
};

struct ws_export_sub {
	char room[CH_NAME_MAX + 1];
	uint64_t next_seq;
};

int ch_ws_export_ready(const struct ch_conn *c)
{
	const struct ch_wsconn *ws = c->ws;

	if (!ws || ws->closing || ws->parser.err_code)
		return 0;
	for (const struct ch_sub *s = ws->subs; s; s = s->conn_next)
		if (s->replaying || s->resuming || s->parked || s->rejoin || s->held_head)
			return 0;
	return 1;
}

long ch_ws_export(const struct ch_conn *c, char *out, size_t cap, char *user, size_t user_len,
		  int *idle)
{
	const struct ch_wsconn *ws = c->ws;
	struct ws_export_head h;
	size_t len = sizeof(h) + (size_t)ws->n_subs * sizeof(struct ws_export_sub) +
		     ws->parser.msg_len;

	if (len > cap)
		return -1;
	memset(&h, 0, sizeof(h));
	h.n_subs = ws->n_subs;
	h.msg_len = (uint32_t)ws->parser.msg_len;
	h.status = ws->status;
	h.idle = ws->idle;
	h.ping_out = ws->ping_out;
	snprintf(h.user, sizeof(h.user), "%s", ws->user);
	h.parser = ws->parser;
	h.parser.buf = NULL;
	h.parser.cap = 0;
	memcpy(out, &h, sizeof(h));
	char *p = out + sizeof(h);
	for (const struct ch_sub *s = ws->subs; s; s = s->conn_next) {
		struct ws_export_sub e;
		memset(&e, 0, sizeof(e));
		snprintf(e.room, sizeof(e.room), "%s", s->room->name);
		e.next_seq = s->next_seq;
		memcpy(p, &e, sizeof(e));
		p += sizeof(e);
	}
	if (ws->parser.msg_len)
		memcpy(p, ws->parser.buf, ws->parser.msg_len);
	snprintf(user, user_len, "%s", ws->user);
	*idle = ws->idle;
	return (long)len;
}

void ch_ws_export_done(struct ch_worker *w, struct ch_conn *c)
{
	struct ch_wsconn *ws = c->ws;

	/* As ch_ws_free, but the user stays online: the worker that takes
	 * the connection reports it open, and ours reports it closed only
	 * after that (ch_ws_presence_gone), so the user never blinks. */
	users_unlink(w, c);
	while (ws->subs)
		sub_free(w, ws->subs);
	ch_ws_parser_free(&ws->parser);
	free(ws);
	c->ws = NULL;
	c->state = CH_CONN_HEAD;	/* a plain socket again, for ch_conn_close */
}

void ch_ws_presence_gone(struct ch_worker *w, const char *user, int idle)
{
	presence_report(w, user, CH_PRES_CLOSE, (uint32_t)idle);
}

/* An adopted connection rejoins a room where it stood: silently (it
 * never left); what it missed while moving comes as the replay. */
static int adopt_join(struct ch_worker *w, struct ch_conn *c, const char *room, uint64_t since)
{
	struct ws_op *op = op_new(w, c, NULL);

	if (!op)
		return -1;
	snprintf(op->room, sizeof(op->room), "%s", room);
	op->since = since;
	op->silent = 1;
	return join_request(w, c, op);
}

int ch_ws_adopt(struct ch_worker *w, struct ch_conn *c, const char *p, size_t len)
{
	struct ws_export_head h;
	struct ch_wsconn *ws;

	if (len < sizeof(h))
		return -1;
	memcpy(&h, p, sizeof(h));
	if (h.n_subs > CH_WS_MAX_JOINED ||
	    len != sizeof(h) + (size_t)h.n_subs * sizeof(struct ws_export_sub) + h.msg_len ||
	    !memchr(h.user, '\0', sizeof(h.user)))
		return -1;
	if (!(ws = calloc(1, sizeof(*ws))))
		return -1;
	ws->parser = h.parser;
	ws->parser.buf = NULL;
	ws->parser.cap = 0;
	if (h.msg_len) {
		ws->parser.buf = malloc(h.msg_len);
		if (!ws->parser.buf) {
			free(ws);
			return -1;
		}
		memcpy(ws->parser.buf, p + len - h.msg_len, h.msg_len);
		ws->parser.cap = h.msg_len;
	}
	snprintf(ws->user, sizeof(ws->user), "%s", h.user);
	ws->status = h.status;
	ws->ping_out = h.ping_out;
	ch_http_conn_reset(c);
	c->ws = ws;
	c->state = CH_CONN_WS;
	ch_worker_timer_set(w, c, CH_TIMER_WS);
	presence_open(w, c);
	const char *sp = p + sizeof(h);
	for (uint32_t i = 0; i < h.n_subs; i++, sp += sizeof(struct ws_export_sub)) {
		struct ws_export_sub e;
		memcpy(&e, sp, sizeof(e));
		e.room[sizeof(e.room) - 1] = '\0';
		if (adopt_join(w, c, e.room, e.next_seq ? e.next_seq - 1 : 0) < 0) {
			ch_ws_close(w, c, CH_WS_CLOSE_TRY_AGAIN, "busy: join again");
			break;
		}
	}
	return 0;
}
