/*
 * The journal process: see journal.h.
 *
 * One turn of the loop:
 *   1. sleep on the journal eventfd until a worker wakes it;
 *   2. drain every ingress ring: each request is checked against the state,
 *      and a valid change becomes a record that is applied to the state and
 *      added to the batch; replies and message frames wait in buffers;
 *   3. release the drained ring space: a request taken is never taken again,
 *      even if this process dies before answering it (the worker times it
 *      out; a send with an id can be retried safely, one without must never
 *      be stored twice);
 *   4. append the batch with one write; with ack = fsync, one fdatasync;
 *   5. publish the message frames to their room rings, post the replies,
 *      and wake each worker that has replies or members in a touched room,
 *      once.
 * A write or fsync error ends the process (never retried on the same file):
 * the master restarts it and recovery reads what really is on disk.
 */
#define _GNU_SOURCE
#include "journal/journal.h"

#include "common/auth.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/sched.h"
#include "journal/frame.h"
#include "journal/presence.h"
#include "journal/proto.h"
#include "journal/record.h"
#include "journal/repl.h"
#include "journal/segment.h"
#include "journal/state.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CH_JOURNAL_POLL_MS 1000

struct journal {
	const struct ch_config *cfg;
	const struct ch_shm *shm;
	struct ch_stats *stats;
	struct ch_state state;
	struct ch_presence presence;	/* who is online: not in the log */
	struct ch_log_writer *log;
	char dir[CH_PATH_MAX + 16];
	int n_workers;
	uint64_t now_ms;

	struct ch_buf batch;		/* encoded records of this turn */
	uint64_t batch_pos;		/* log position of the batch's first byte */
	struct ch_buf replies[CH_MAX_WORKERS];	/* (u32 status, u32 len, payload)... */
	struct ch_buf frames;		/* (u32 ring, u32 len, u64 seq, frame)... */
	uint64_t wake;			/* workers to wake this turn */
	uint32_t free_rings;		/* rings never used yet: [free_rings, n) */
	/* Per ring: history may be read from positions at or above this.
	 * Below it the ring may hold frames of records the log no longer
	 * has (cut by fencing) or never made durable (a journal restart). */
	uint64_t *ring_floor;
	uint64_t ring_full_logged_ms;
	struct ch_repl *repl;		/* replication (journal/repl.h) */
	uint32_t batch_records;		/* records in the batch */
};

static volatile sig_atomic_t journal_stop, journal_promote;

static void on_promote(int sig)
{
	(void)sig;
	journal_promote = 1;
}

static void on_stop(int sig)
{
	(void)sig;
	journal_stop = 1;
}

static uint64_t realtime_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t monotonic_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* ---------------------------------------------------------------------- */
/* Replies                                                                */

struct reply {
	struct ch_payload_writer pw;
	uint8_t buf[512];
};

/* Queue a reply for worker w: status, then the request id and fields. */
static void reply_raw(struct journal *j, int w, uint32_t status, uint64_t req_id,
		      const void *fields, size_t len)
{
	struct ch_buf *b = &j->replies[w];
	uint32_t hdr[2] = { status, (uint32_t)(len + sizeof(uint64_t)) };
	ch_buf_append(b, hdr, sizeof(hdr));
	ch_buf_append(b, &req_id, sizeof(req_id));
	ch_buf_append(b, fields, len);
	j->wake |= 1ull << w;
}

static void reply_status(struct journal *j, int w, uint64_t req_id, uint32_t status)
{
	reply_raw(j, w, status, req_id, NULL, 0);
}

static void reply_begin(struct reply *r)
{
	ch_payload_writer_init(&r->pw, r->buf, sizeof(r->buf));
}

static void reply_end(struct journal *j, int w, uint64_t req_id, uint32_t status,
		      struct reply *r)
{
	size_t len = 0;
	if (ch_payload_writer_finish(&r->pw, &len) < 0) {
		reply_status(j, w, req_id, CH_BUS_UNAVAILABLE);
		return;
	}
	reply_raw(j, w, status, req_id, r->buf, len);
}

/* ---------------------------------------------------------------------- */
/* Records                                                                */

/* Encode a record at the end of the batch and apply it to the state. */
static int add_record(struct journal *j, struct ch_record *rec)
{
	size_t need = ch_record_size(rec->payload_len);

	rec->epoch = ch_repl_epoch(j->repl);
	rec->pos = j->batch_pos + j->batch.len;
	rec->ts_ms = rec->ts_ms ? rec->ts_ms : j->now_ms;
	if (ch_buf_reserve(&j->batch, need) < 0)
		return -ENOMEM;
	size_t n = ch_record_encode(j->batch.p + j->batch.len, need, rec);
	if (n == 0)
		return -EINVAL;
	int rc = ch_state_apply(&j->state, rec);
	if (rc < 0) {
		ch_err("journal: record of type %u refused by the state: %s", rec->type,
		       strerror(-rc));
		return rc;
	}
	j->batch.len += n;
	j->batch_records++;
	CH_STAT_ADD(j->stats, journal_appends, 1);
	return 0;
}

static int payload_record(struct journal *j, uint16_t type, uint32_t room, uint32_t author,
			  uint64_t seq, const struct ch_payload_writer *pw)
{
	size_t len = 0;
	if (ch_payload_writer_finish(pw, &len) < 0)
		return -EMSGSIZE;
	struct ch_record rec = {
		.type = type,
		.room = room,
		.author = author,
		.room_seq = seq,
		.payload = pw->buf,
		.payload_len = (uint32_t)len,
	};
	return add_record(j, &rec);
}

/* ---------------------------------------------------------------------- */
/* Room rings                                                             */

static int ring_for(struct journal *j, struct ch_room *room)
{
	const struct ch_shm *shm = j->shm;
	uint32_t n = ch_shm_header(shm)->n_rings;

	if (room->ring >= 0)
		return room->ring;
	int32_t pick = -1;
	if (j->free_rings < n) {
		pick = (int32_t)j->free_rings++;
	} else {
		/* Reclaim the ring of the room idle longest that no worker
		 * reads: its readers would only be lapped anyway. */
		uint64_t oldest = UINT64_MAX;
		for (uint32_t r = 0; r < n; r++) {
			struct ch_shm_room *sr = ch_shm_room(shm, r);
			if (atomic_load_explicit(&sr->members, memory_order_relaxed))
				continue;
			uint32_t rid = atomic_load_explicit(&sr->room_id, memory_order_relaxed);
			struct ch_room *owner = ch_state_room_by_id(&j->state, rid);
			uint64_t t = owner ? owner->last_active_ms : 0;
			if (t < oldest) {
				oldest = t;
				pick = (int32_t)r;
			}
		}
		if (pick < 0) {
			if (j->now_ms - j->ring_full_logged_ms > 10000) {
				ch_err("journal: all %u room rings are in use by rooms with "
				       "members; raise room_rings (live delivery of room '%s' "
				       "falls back to history)", n, room->name);
				j->ring_full_logged_ms = j->now_ms;
			}
			return -1;
		}
		struct ch_shm_room *sr = ch_shm_room(shm, (uint32_t)pick);
		struct ch_room *owner = ch_state_room_by_id(
			&j->state, atomic_load_explicit(&sr->room_id, memory_order_relaxed));
		if (owner)
			owner->ring = -1;
	}
	struct ch_shm_room *sr = ch_shm_room(shm, (uint32_t)pick);
	/* Readers check room_id (acquire) before trusting the ring: clear it
	 * while the ring is reset, set it (release) once it is ready. */
	atomic_store_explicit(&sr->room_id, 0, memory_order_release);
	j->ring_floor[pick] = ch_mring_reset(ch_shm_ring(shm, (uint32_t)pick));
	atomic_store_explicit(&sr->room_id, room->id, memory_order_release);
	room->ring = pick;
	return pick;
}

/* The frame every member's connection gets, encoded once; queued with its
 * ring metadata until the batch is durable. */
static void queue_frame(struct journal *j, struct ch_room *room, uint64_t seq, uint64_t ts,
			const char *from, const char *id, const char *content, size_t content_len)
{
	struct ch_buf f;
	ch_buf_init(&f);
	ch_msg_frame(&f, room->name, strlen(room->name), seq, from, strlen(from), content,
		     content_len, ts, id, strlen(id));
	if (!f.failed) {
		uint32_t meta[2] = { room->id, (uint32_t)f.len };
		static const uint8_t zero[8];
		ch_buf_append(&j->frames, meta, sizeof(meta));
		ch_buf_append(&j->frames, &seq, sizeof(seq));
		ch_buf_append(&j->frames, f.p, f.len);
		/* Keep the stream 8-byte aligned for the next meta. */
		ch_buf_append(&j->frames, zero, (8 - f.len % 8) % 8);
	}
	ch_buf_free(&f);
}

static void publish_frames(struct journal *j)
{
	const struct ch_shm *shm = j->shm;
	uint32_t touched[256];
	size_t n_touched = 0;
	size_t off = 0;

	while (off < j->frames.len) {
		uint32_t meta[2];
		uint64_t seq;
		memcpy(meta, j->frames.p + off, sizeof(meta));
		memcpy(&seq, j->frames.p + off + 8, sizeof(seq));
		const char *frame = j->frames.p + off + 16;
		off += 16 + meta[1] + (8 - meta[1] % 8) % 8;

		struct ch_room *room = ch_state_room_by_id(&j->state, meta[0]);
		int ring = room ? ring_for(j, room) : -1;
		if (ring < 0)
			continue;
		struct ch_mring *r = ch_shm_ring(shm, (uint32_t)ring);
		if (ch_mring_write(r, seq, frame, meta[1]) < 0) {
			ch_warn("journal: message %llu of room '%s' is larger than a room "
				"ring entry; members read it from history",
				(unsigned long long)seq, room->name);
			continue;
		}
		size_t i;
		for (i = 0; i < n_touched && touched[i] != (uint32_t)ring; i++)
			;
		if (i == n_touched) {
			if (n_touched == sizeof(touched) / sizeof(touched[0])) {
				for (i = 0; i < n_touched; i++)
					ch_mring_flush(ch_shm_ring(shm, touched[i]));
				n_touched = 0;
			}
			touched[n_touched++] = (uint32_t)ring;
		}
	}
	for (size_t i = 0; i < n_touched; i++) {
		ch_mring_flush(ch_shm_ring(shm, touched[i]));
		j->wake |= atomic_load_explicit(&ch_shm_room(shm, touched[i])->members,
						memory_order_relaxed);
	}
	j->frames.len = 0;
}

static void post_replies(struct journal *j)
{
	static uint64_t full_logged_ms;

	for (int w = 0; w < j->n_workers; w++) {
		struct ch_buf *b = &j->replies[w];
		struct ch_spsc *ring = ch_shm_reply(j->shm, w);
		size_t off = 0;
		while (off < b->len) {
			uint32_t hdr[2];
			memcpy(hdr, b->p + off, sizeof(hdr));
			off += sizeof(hdr);
			void *dst = ch_spsc_reserve(ring, hdr[1]);
			if (!dst) {
				/* The worker is not draining its replies (stuck or
				 * restarting); it times the request out. */
				if (j->now_ms - full_logged_ms > 10000) {
					ch_warn("journal: reply ring of worker %d is full", w);
					full_logged_ms = j->now_ms;
				}
			} else {
				memcpy(dst, b->p + off, hdr[1]);
				ch_spsc_commit(ring, hdr[0], hdr[1]);
			}
			off += hdr[1];
		}
		if (b->len)
			ch_spsc_publish(ring);
		b->len = 0;
	}
}

/* ---------------------------------------------------------------------- */
/* Requests                                                               */

static void on_register(struct journal *j, int w, uint64_t id, struct ch_payload_reader *rd)
{
	char name[CH_NAME_MAX + 1];
	size_t hash_len;

	ch_payload_get_str(rd, name, sizeof(name));
	const uint8_t *hash = ch_payload_get_bytes(rd, &hash_len);
	if (ch_payload_reader_finish(rd) < 0 || !name[0]) {
		reply_status(j, w, id, CH_BUS_BAD_REQUEST);
		return;
	}
	if (ch_state_user(&j->state, name)) {
		reply_status(j, w, id, CH_BUS_USER_EXISTS);
		return;
	}
	uint8_t buf[512];
	struct ch_payload_writer pw;
	ch_payload_writer_init(&pw, buf, sizeof(buf));
	ch_payload_put_str(&pw, name);
	ch_payload_put_bytes(&pw, hash, hash_len);
	int rc = payload_record(j, CH_REC_USER_CREATED, 0, 0, 0, &pw);
	reply_status(j, w, id, rc < 0 ? CH_BUS_UNAVAILABLE : CH_BUS_OK);
}

static void on_get_user(struct journal *j, int w, uint64_t id, struct ch_payload_reader *rd)
{
	char name[CH_NAME_MAX + 1];
	struct reply r;

	ch_payload_get_str(rd, name, sizeof(name));
	struct ch_user *u = ch_payload_reader_finish(rd) < 0 ? NULL : ch_state_user(&j->state, name);
	if (!u) {
		reply_status(j, w, id, CH_BUS_NO_SUCH_USER);
		return;
	}
	reply_begin(&r);
	ch_payload_put_str(&r.pw, u->hash);
	reply_end(j, w, id, CH_BUS_OK, &r);
}

static void on_set_password(struct journal *j, int w, uint64_t id, struct ch_payload_reader *rd)
{
	char name[CH_NAME_MAX + 1], old[256], hash[256];

	ch_payload_get_str(rd, name, sizeof(name));
	ch_payload_get_str(rd, old, sizeof(old));
	ch_payload_get_str(rd, hash, sizeof(hash));
	struct ch_user *u = ch_payload_reader_finish(rd) < 0 ? NULL : ch_state_user(&j->state, name);
	/* Only over the hash the login checked: a password changed meanwhile
	 * is never replaced by an upgrade of the old one. */
	if (u && strcmp(u->hash, old) == 0) {
		uint8_t buf[512];
		struct ch_payload_writer pw;
		ch_payload_writer_init(&pw, buf, sizeof(buf));
		ch_payload_put_str(&pw, name);
		ch_payload_put_str(&pw, hash);
		payload_record(j, CH_REC_PASSWORD_CHANGED, 0, u->id, 0, &pw);
	}
	reply_status(j, w, id, CH_BUS_OK);
}

static void on_create_room(struct journal *j, int w, uint64_t id, struct ch_payload_reader *rd)
{
	char user[CH_NAME_MAX + 1], room[CH_NAME_MAX + 1], p[CH_NAME_MAX + 1];
	const struct ch_config *cfg = j->cfg;

	ch_payload_get_str(rd, user, sizeof(user));
	ch_payload_get_str(rd, room, sizeof(room));
	uint32_t n = ch_payload_get_u32(rd);
	struct ch_user *creator = ch_state_user(&j->state, user);
	if (rd->failed || !creator || !room[0]) {
		reply_status(j, w, id, CH_BUS_BAD_REQUEST);
		return;
	}
	if (ch_state_room(&j->state, room)) {
		reply_status(j, w, id, CH_BUS_ROOM_EXISTS);
		return;
	}
	uint32_t created = 0;
	for (uint32_t i = 0; i < creator->n_rooms; i++) {
		struct ch_room *r = ch_state_room_by_id(&j->state, creator->rooms[i]);
		/* DM rooms are made by messaging, not counted as created. */
		created += r && r->created_by == creator->id &&
			   !ch_is_dm_room(r->name, strlen(r->name));
	}
	if (created >= (uint32_t)cfg->max_rooms_per_user || n + 1 > (uint32_t)cfg->max_participants + 1) {
		reply_status(j, w, id, CH_BUS_LIMIT);
		return;
	}
	uint32_t *members = malloc((n + 1) * sizeof(*members));
	uint32_t count = 0;
	if (!members) {
		reply_status(j, w, id, CH_BUS_UNAVAILABLE);
		return;
	}
	members[count++] = creator->id;	/* the caller is always a participant */
	for (uint32_t i = 0; i < n; i++) {
		ch_payload_get_str(rd, p, sizeof(p));
		struct ch_user *u = rd->failed ? NULL : ch_state_user(&j->state, p);
		if (!u) {
			struct reply r;
			reply_begin(&r);
			ch_payload_put_str(&r.pw, rd->failed ? "" : p);
			reply_end(j, w, id, rd->failed ? CH_BUS_BAD_REQUEST : CH_BUS_UNKNOWN_USER, &r);
			free(members);
			return;
		}
		uint32_t k;
		for (k = 0; k < count && members[k] != u->id; k++)
			;
		if (k == count)
			members[count++] = u->id;
	}
	if (count > (uint32_t)cfg->max_participants) {
		free(members);
		reply_status(j, w, id, CH_BUS_LIMIT);
		return;
	}
	struct ch_payload_writer pw;
	size_t cap = 128 + count * 4;
	uint8_t *buf = malloc(cap);
	int rc = -ENOMEM;
	if (buf) {
		ch_payload_writer_init(&pw, buf, cap);
		ch_payload_put_str(&pw, room);
		ch_payload_put_u32(&pw, count);
		for (uint32_t i = 0; i < count; i++)
			ch_payload_put_u32(&pw, members[i]);
		rc = payload_record(j, CH_REC_ROOM_CREATED, 0, creator->id, 0, &pw);
	}
	free(buf);
	free(members);
	reply_status(j, w, id, rc < 0 ? CH_BUS_UNAVAILABLE : CH_BUS_OK);
}

static void on_list_rooms(struct journal *j, int w, uint64_t id, struct ch_payload_reader *rd)
{
	char name[CH_NAME_MAX + 1];
	struct ch_buf out;

	ch_payload_get_str(rd, name, sizeof(name));
	struct ch_user *u = ch_payload_reader_finish(rd) < 0 ? NULL : ch_state_user(&j->state, name);
	ch_buf_init(&out);
	ch_buf_puts(&out, "[");
	for (uint32_t i = 0; u && i < u->n_rooms; i++) {
		struct ch_room *r = ch_state_room_by_id(&j->state, u->rooms[i]);
		struct ch_user *by = ch_state_user_by_id(&j->state, r->created_by);
		ch_buf_puts(&out, i ? ",{\"id\":" : "{\"id\":");
		ch_json_str(&out, r->name, strlen(r->name));
		ch_buf_puts(&out, ",\"participants\":[");
		for (uint32_t k = 0; k < r->n_members; k++) {
			struct ch_user *m = ch_state_user_by_id(&j->state, r->members[k]);
			if (k)
				ch_buf_puts(&out, ",");
			ch_json_str(&out, m->name, strlen(m->name));
		}
		ch_buf_puts(&out, "],\"created_by\":");
		ch_json_str(&out, by ? by->name : "", by ? strlen(by->name) : 0);
		ch_buf_puts(&out, ",\"created_at\":");
		ch_buf_u64(&out, r->created_ms);
		ch_buf_puts(&out, ",\"last_seq\":");
		ch_buf_u64(&out, r->last_seq);
		ch_buf_puts(&out, "}");
	}
	ch_buf_puts(&out, "]");
	if (out.failed) {
		reply_status(j, w, id, CH_BUS_UNAVAILABLE);
	} else {
		/* A length-prefixed string, as the payload codec writes one. */
		uint32_t len = (uint32_t)out.len;
		struct ch_buf f;
		ch_buf_init(&f);
		ch_buf_append(&f, &len, sizeof(len));
		ch_buf_append(&f, out.p, out.len);
		if (f.failed)
			reply_status(j, w, id, CH_BUS_UNAVAILABLE);
		else
			reply_raw(j, w, CH_BUS_OK, id, f.p, f.len);
		ch_buf_free(&f);
	}
	ch_buf_free(&out);
}

static struct ch_room *member_room(struct journal *j, int w, uint64_t id, const char *user,
				   const char *room, struct ch_user **u_out)
{
	struct ch_user *u = ch_state_user(&j->state, user);
	struct ch_room *r = ch_state_room(&j->state, room);

	if (!r) {
		reply_status(j, w, id, CH_BUS_NO_SUCH_ROOM);
		return NULL;
	}
	if (!u || !ch_state_is_member(r, u->id)) {
		reply_status(j, w, id, CH_BUS_NOT_PARTICIPANT);
		return NULL;
	}
	*u_out = u;
	return r;
}

/*
 * Store a message by u in rm, or, for a retry of a client id seen
 * recently, find the first one. CH_BUS_OK with its seq and ts, else the
 * status to answer.
 */
static uint32_t store_message(struct journal *j, struct ch_user *u, struct ch_room *rm,
			      const char *cid, const uint8_t *content, size_t content_len,
			      uint64_t *seq, uint64_t *ts)
{
	if (cid[0]) {
		const struct ch_dedupe_entry *d = ch_state_dedupe_find(&j->state, u->id, cid);
		if (d) {
			/* A retry: the first answer, nothing stored twice. */
			*seq = d->seq;
			*ts = d->ts;
			return CH_BUS_OK;
		}
	}
	size_t cap = 256 + content_len;
	uint8_t *buf = malloc(cap);
	if (!buf)
		return CH_BUS_UNAVAILABLE;
	struct ch_payload_writer pw;
	ch_payload_writer_init(&pw, buf, cap);
	ch_payload_put_str(&pw, rm->name);
	ch_payload_put_str(&pw, u->name);
	ch_payload_put_str(&pw, cid);
	ch_payload_put_bytes(&pw, content, content_len);
	*seq = rm->last_seq + 1;
	*ts = j->now_ms;
	int rc = payload_record(j, CH_REC_MESSAGE, rm->id, u->id, *seq, &pw);
	free(buf);
	if (rc < 0)
		return CH_BUS_UNAVAILABLE;
	CH_STAT_ADD(j->stats, messages_in, 1);
	queue_frame(j, rm, *seq, *ts, u->name, cid, (const char *)content, content_len);
	return CH_BUS_OK;
}

/* The answer to SEND and DM: the status, or OK with (for a DM, the room's
 * name then) the message's seq and ts. */
static void reply_stored(struct journal *j, int w, uint64_t id, uint32_t status,
			 const char *dm_room, uint64_t seq, uint64_t ts)
{
	struct reply r;

	if (status != CH_BUS_OK) {
		reply_status(j, w, id, status);
		return;
	}
	reply_begin(&r);
	if (dm_room)
		ch_payload_put_str(&r.pw, dm_room);
	ch_payload_put_u64(&r.pw, seq);
	ch_payload_put_u64(&r.pw, ts);
	reply_end(j, w, id, CH_BUS_OK, &r);
}

static void on_send(struct journal *j, int w, uint64_t id, struct ch_payload_reader *rd)
{
	char user[CH_NAME_MAX + 1], room[CH_NAME_MAX + 1], cid[CH_CLIENT_ID_MAX + 1];
	size_t content_len;
	struct ch_user *u;
	uint64_t seq = 0, ts = 0;

	ch_payload_get_str(rd, user, sizeof(user));
	ch_payload_get_str(rd, room, sizeof(room));
	ch_payload_get_str(rd, cid, sizeof(cid));
	const uint8_t *content = ch_payload_get_bytes(rd, &content_len);
	if (ch_payload_reader_finish(rd) < 0 || content_len > j->cfg->max_message_bytes) {
		reply_status(j, w, id, CH_BUS_BAD_REQUEST);
		return;
	}
	struct ch_room *rm = member_room(j, w, id, user, room, &u);
	if (!rm)
		return;
	uint32_t status = store_message(j, u, rm, cid, content, content_len, &seq, &ts);
	reply_stored(j, w, id, status, NULL, seq, ts);
}

static void on_history(struct journal *j, int w, uint64_t id, struct ch_payload_reader *rd)
{
	char user[CH_NAME_MAX + 1], room[CH_NAME_MAX + 1];
	struct ch_user *u;

	ch_payload_get_str(rd, user, sizeof(user));
	ch_payload_get_str(rd, room, sizeof(room));
	uint64_t before = ch_payload_get_u64(rd);
	uint32_t limit = ch_payload_get_u32(rd);
	if (ch_payload_reader_finish(rd) < 0) {
		reply_status(j, w, id, CH_BUS_BAD_REQUEST);
		return;
	}
	struct ch_room *rm = member_room(j, w, id, user, room, &u);
	if (!rm)
		return;
	uint64_t top = before == 0 || before > rm->last_seq ? rm->last_seq : before - 1;
	uint32_t n = top < limit ? (uint32_t)top : limit;
	struct ch_buf f;
	ch_buf_init(&f);
	ch_buf_append(&f, &n, sizeof(n));
	for (uint32_t i = 0; i < n; i++)
		ch_buf_append(&f, &rm->pos[top - 1 - i], sizeof(uint64_t));
	/* Where the worker may find the page's frames without reading the
	 * log: the room's ring, if it has one, and the page's newest seq. */
	uint32_t ring[2] = { rm->ring >= 0 ? (uint32_t)rm->ring : CH_HISTORY_NO_RING, rm->id };
	uint64_t floor = rm->ring >= 0 ? j->ring_floor[rm->ring] : 0;
	ch_buf_append(&f, ring, sizeof(ring));
	ch_buf_append(&f, &floor, sizeof(floor));
	ch_buf_append(&f, &top, sizeof(top));
	if (f.failed)
		reply_status(j, w, id, CH_BUS_UNAVAILABLE);
	else
		reply_raw(j, w, CH_BUS_OK, id, f.p, f.len);
	ch_buf_free(&f);
}

static void on_join(struct journal *j, int w, uint64_t id, struct ch_payload_reader *rd)
{
	char user[CH_NAME_MAX + 1], room[CH_NAME_MAX + 1];
	struct ch_user *u;

	ch_payload_get_str(rd, user, sizeof(user));
	ch_payload_get_str(rd, room, sizeof(room));
	uint32_t worker = ch_payload_get_u32(rd);
	uint64_t since = ch_payload_get_u64(rd);
	uint32_t most = ch_payload_get_u32(rd);
	if (ch_payload_reader_finish(rd) < 0 || worker != (uint32_t)w) {
		reply_status(j, w, id, CH_BUS_BAD_REQUEST);
		return;
	}
	struct ch_room *rm = member_room(j, w, id, user, room, &u);
	if (!rm)
		return;
	int ring = ring_for(j, rm);
	if (ring < 0) {
		reply_status(j, w, id, CH_BUS_UNAVAILABLE);
		return;
	}
	struct ch_shm_room *sr = ch_shm_room(j->shm, (uint32_t)ring);
	uint64_t m = atomic_load_explicit(&sr->members, memory_order_relaxed);
	atomic_store_explicit(&sr->members, m | (1ull << w), memory_order_relaxed);

	uint64_t first = rm->last_seq + 1;
	if (since != CH_SINCE_NONE && since < rm->last_seq) {
		first = since + 1;
		if (rm->last_seq - since > most)
			first = rm->last_seq - most + 1;	/* truncated */
	}
	uint32_t n = (uint32_t)(rm->last_seq + 1 - first);
	struct ch_buf f;
	ch_buf_init(&f);
	uint32_t head[2] = { (uint32_t)ring, rm->id };
	ch_buf_append(&f, head, sizeof(head));
	ch_buf_append(&f, &rm->last_seq, sizeof(uint64_t));
	ch_buf_append(&f, &first, sizeof(first));
	ch_buf_append(&f, &n, sizeof(n));
	for (uint64_t seq = first; seq <= rm->last_seq; seq++)
		ch_buf_append(&f, &rm->pos[seq - 1], sizeof(uint64_t));
	if (f.failed)
		reply_status(j, w, id, CH_BUS_UNAVAILABLE);
	else
		reply_raw(j, w, CH_BUS_OK, id, f.p, f.len);
	ch_buf_free(&f);
}

static void on_unwatch(struct journal *j, int w, uint64_t id, struct ch_payload_reader *rd)
{
	char room[CH_NAME_MAX + 1];

	ch_payload_get_str(rd, room, sizeof(room));
	ch_payload_get_u32(rd);
	struct ch_room *rm = ch_payload_reader_finish(rd) < 0 ? NULL : ch_state_room(&j->state, room);
	if (rm && rm->ring >= 0) {
		struct ch_shm_room *sr = ch_shm_room(j->shm, (uint32_t)rm->ring);
		uint64_t m = atomic_load_explicit(&sr->members, memory_order_relaxed);
		atomic_store_explicit(&sr->members, m & ~(1ull << w), memory_order_relaxed);
	}
	reply_status(j, w, id, CH_BUS_OK);
}

static void announce(uint32_t user_id, void *arg);

static void on_hello(struct journal *j, int w)
{
	/* Its predecessor's connections are gone, and with them their
	 * presence. */
	ch_presence_drop_worker(&j->presence, w, j->now_ms, announce, j);
	/* A new worker in slot w: its predecessor's rooms are no longer read
	 * there. It tells us again which rooms it reads. */
	uint32_t n = ch_shm_header(j->shm)->n_rings;
	for (uint32_t r = 0; r < n; r++) {
		struct ch_shm_room *sr = ch_shm_room(j->shm, r);
		uint64_t m = atomic_load_explicit(&sr->members, memory_order_relaxed);
		atomic_store_explicit(&sr->members, m & ~(1ull << w), memory_order_relaxed);
	}
}

/* ---------------------------------------------------------------------- */
/* Direct messages and presence                                           */

/* The DM room of u and t, created (with its record) on first use. */
static struct ch_room *dm_room(struct journal *j, struct ch_user *u, struct ch_user *t)
{
	char name[CH_NAME_MAX + 1];
	uint8_t buf[CH_NAME_MAX + 64];
	struct ch_payload_writer pw;

	ch_dm_room(name, u->name, t->name);
	struct ch_room *rm = ch_state_room(&j->state, name);
	if (rm)
		return rm;
	ch_payload_writer_init(&pw, buf, sizeof(buf));
	ch_payload_put_str(&pw, name);
	ch_payload_put_u32(&pw, u == t ? 1 : 2);
	ch_payload_put_u32(&pw, u->id);
	if (u != t)
		ch_payload_put_u32(&pw, t->id);
	if (payload_record(j, CH_REC_ROOM_CREATED, 0, u->id, 0, &pw) < 0)
		return NULL;
	return ch_state_room(&j->state, name);
}

/* Every worker: join the connections of the room's two users to it,
 * replaying from seq, so a DM reaches them without asking. */
static void post_autojoin(struct journal *j, struct ch_room *rm, uint64_t seq)
{
	struct reply r;

	reply_begin(&r);
	ch_payload_put_str(&r.pw, rm->name);
	ch_payload_put_u64(&r.pw, seq);
	ch_payload_put_u32(&r.pw, rm->n_members);
	for (uint32_t i = 0; i < rm->n_members; i++) {
		struct ch_user *m = ch_state_user_by_id(&j->state, rm->members[i]);
		ch_payload_put_str(&r.pw, m ? m->name : "");
	}
	size_t len;
	if (ch_payload_writer_finish(&r.pw, &len) < 0)
		return;
	for (int w = 0; w < j->n_workers; w++)
		reply_raw(j, w, CH_EV_AUTOJOIN, 0, r.buf, len);
}

static void on_dm(struct journal *j, int w, uint64_t id, struct ch_payload_reader *rd)
{
	char user[CH_NAME_MAX + 1], to[CH_NAME_MAX + 1], cid[CH_CLIENT_ID_MAX + 1];
	size_t content_len;
	struct reply r;
	uint64_t seq = 0, ts = 0;

	ch_payload_get_str(rd, user, sizeof(user));
	ch_payload_get_str(rd, to, sizeof(to));
	ch_payload_get_str(rd, cid, sizeof(cid));
	const uint8_t *content = ch_payload_get_bytes(rd, &content_len);
	struct ch_user *u = ch_state_user(&j->state, user);
	if (ch_payload_reader_finish(rd) < 0 || !u || content_len > j->cfg->max_message_bytes) {
		reply_status(j, w, id, CH_BUS_BAD_REQUEST);
		return;
	}
	struct ch_user *t = ch_state_user(&j->state, to);
	if (!t) {
		reply_begin(&r);
		ch_payload_put_str(&r.pw, to);
		reply_end(j, w, id, CH_BUS_UNKNOWN_USER, &r);
		return;
	}
	struct ch_room *rm = dm_room(j, u, t);
	uint32_t status = rm ? store_message(j, u, rm, cid, content, content_len, &seq, &ts)
			     : CH_BUS_UNAVAILABLE;
	reply_stored(j, w, id, status, rm ? rm->name : NULL, seq, ts);
	if (status == CH_BUS_OK)
		post_autojoin(j, rm, seq);
}

/*
 * The user's status changed: each worker learns it with the user's rooms
 * it has members in, and tells the connections that joined one of them.
 */
static void announce(uint32_t user_id, void *arg)
{
	struct journal *j = arg;
	struct ch_user *u = ch_state_user_by_id(&j->state, user_id);
	uint64_t since;

	if (!u)
		return;
	uint32_t status = ch_presence_get(&j->presence, user_id, &since);
	size_t cap = 64 + CH_NAME_MAX + (size_t)u->n_rooms * sizeof(uint32_t);
	uint8_t *buf = malloc(cap);
	if (!buf)
		return;
	for (int w = 0; w < j->n_workers; w++) {
		struct ch_payload_writer pw;
		uint32_t n = 0;
		for (uint32_t i = 0; i < u->n_rooms; i++) {
			struct ch_room *rm = ch_state_room_by_id(&j->state, u->rooms[i]);
			n += rm && rm->ring >= 0 &&
			     (atomic_load_explicit(&ch_shm_room(j->shm, (uint32_t)rm->ring)->members,
						   memory_order_relaxed) & (1ull << w));
		}
		if (!n)
			continue;
		ch_payload_writer_init(&pw, buf, cap);
		ch_payload_put_str(&pw, u->name);
		ch_payload_put_u32(&pw, status);
		ch_payload_put_u32(&pw, n);
		for (uint32_t i = 0; i < u->n_rooms; i++) {
			struct ch_room *rm = ch_state_room_by_id(&j->state, u->rooms[i]);
			if (rm && rm->ring >= 0 &&
			    (atomic_load_explicit(&ch_shm_room(j->shm, (uint32_t)rm->ring)->members,
						  memory_order_relaxed) & (1ull << w)))
				ch_payload_put_u32(&pw, rm->id);
		}
		size_t len;
		if (ch_payload_writer_finish(&pw, &len) == 0)
			reply_raw(j, w, CH_EV_PRESENCE, 0, buf, len);
	}
	free(buf);
}

static void on_presence(struct journal *j, int w, struct ch_payload_reader *rd)
{
	char user[CH_NAME_MAX + 1];

	uint32_t worker = ch_payload_get_u32(rd);
	ch_payload_get_str(rd, user, sizeof(user));
	uint32_t ev = ch_payload_get_u32(rd);
	uint32_t value = ch_payload_get_u32(rd);
	struct ch_user *u = ch_payload_reader_finish(rd) < 0 || worker != (uint32_t)w
				    ? NULL : ch_state_user(&j->state, user);
	if (!u)
		return;
	int rc = ch_presence_update(&j->presence, u->id, w, ev, value, j->now_ms);
	if (rc > 0)
		announce(u->id, j);
	else if (rc < 0)
		ch_debug("journal: presence report %u of '%s' from worker %d does not fit", ev,
			 user, w);
}

/* u32 n, then (str user, u32 status) for each online member of ids[]. */
static void reply_online(struct journal *j, int w, uint64_t id, const uint32_t *ids, uint32_t n)
{
	struct ch_buf f;
	uint32_t count = 0;

	ch_buf_init(&f);
	ch_buf_append(&f, &count, sizeof(count));
	for (uint32_t i = 0; i < n; i++) {
		uint64_t since;
		uint32_t st = ch_presence_get(&j->presence, ids[i], &since);
		struct ch_user *u = ch_state_user_by_id(&j->state, ids[i]);
		if (st == CH_STATUS_OFFLINE || !u)
			continue;
		uint32_t len = (uint32_t)strlen(u->name);
		ch_buf_append(&f, &len, sizeof(len));
		ch_buf_append(&f, u->name, len);
		ch_buf_append(&f, &st, sizeof(st));
		count++;
	}
	if (f.failed) {
		reply_status(j, w, id, CH_BUS_UNAVAILABLE);
	} else {
		memcpy(f.p, &count, sizeof(count));
		reply_raw(j, w, CH_BUS_OK, id, f.p, f.len);
	}
	ch_buf_free(&f);
}

static void on_users(struct journal *j, int w, uint64_t id)
{
	uint32_t n = 0;
	uint32_t *ids = malloc((j->presence.online + 1) * sizeof(*ids));

	if (!ids) {
		reply_status(j, w, id, CH_BUS_UNAVAILABLE);
		return;
	}
	for (uint32_t i = 0; i < j->presence.n && n < j->presence.online; i++)
		if (j->presence.users[i].live)
			ids[n++] = i + 1;
	reply_online(j, w, id, ids, n);
	free(ids);
}

static void on_who(struct journal *j, int w, uint64_t id, struct ch_payload_reader *rd)
{
	char user[CH_NAME_MAX + 1], room[CH_NAME_MAX + 1];
	struct ch_user *u;

	ch_payload_get_str(rd, user, sizeof(user));
	ch_payload_get_str(rd, room, sizeof(room));
	if (ch_payload_reader_finish(rd) < 0) {
		reply_status(j, w, id, CH_BUS_BAD_REQUEST);
		return;
	}
	struct ch_room *rm = member_room(j, w, id, user, room, &u);
	if (rm)
		reply_online(j, w, id, rm->members, rm->n_members);
}

static void on_info(struct journal *j, int w, uint64_t id, struct ch_payload_reader *rd)
{
	char user[CH_NAME_MAX + 1];
	struct reply r;
	uint64_t since;

	ch_payload_get_str(rd, user, sizeof(user));
	struct ch_user *u = ch_payload_reader_finish(rd) < 0 ? NULL : ch_state_user(&j->state, user);
	reply_begin(&r);
	if (!u) {
		ch_payload_put_str(&r.pw, user);
		reply_end(j, w, id, CH_BUS_UNKNOWN_USER, &r);
		return;
	}
	ch_payload_put_u32(&r.pw, ch_presence_get(&j->presence, u->id, &since));
	ch_payload_put_u64(&r.pw, since);
	reply_end(j, w, id, CH_BUS_OK, &r);
}

static void on_file_remove(struct journal *j, int w, uint64_t id, struct ch_payload_reader *rd)
{
	char file[CH_NAME_MAX + 1];
	uint8_t buf[CH_NAME_MAX + 16];
	struct ch_payload_writer pw;

	ch_payload_get_str(rd, file, sizeof(file));
	if (ch_payload_reader_finish(rd) < 0 || !file[0]) {
		reply_status(j, w, id, CH_BUS_BAD_REQUEST);
		return;
	}
	ch_payload_writer_init(&pw, buf, sizeof(buf));
	ch_payload_put_str(&pw, file);
	int rc = payload_record(j, CH_REC_FILE_REMOVED, 0, 0, 0, &pw);
	reply_status(j, w, id, rc < 0 ? CH_BUS_UNAVAILABLE : CH_BUS_OK);
}

static void handle(struct journal *j, int w, uint32_t type, const void *p, uint32_t len)
{
	struct ch_payload_reader rd;
	uint64_t id;

	if (len < sizeof(id))
		return;
	memcpy(&id, p, sizeof(id));
	ch_payload_reader_init(&rd, (const uint8_t *)p + sizeof(id), len - sizeof(id));
	switch (type) {
	case CH_REQ_HELLO:
		on_hello(j, w);
		break;
	case CH_REQ_REGISTER:
		on_register(j, w, id, &rd);
		break;
	case CH_REQ_GET_USER:
		on_get_user(j, w, id, &rd);
		break;
	case CH_REQ_SET_PASSWORD:
		on_set_password(j, w, id, &rd);
		break;
	case CH_REQ_CREATE_ROOM:
		on_create_room(j, w, id, &rd);
		break;
	case CH_REQ_LIST_ROOMS:
		on_list_rooms(j, w, id, &rd);
		break;
	case CH_REQ_SEND:
		on_send(j, w, id, &rd);
		break;
	case CH_REQ_HISTORY:
		on_history(j, w, id, &rd);
		break;
	case CH_REQ_JOIN:
		on_join(j, w, id, &rd);
		break;
	case CH_REQ_UNWATCH:
		on_unwatch(j, w, id, &rd);
		break;
	case CH_REQ_DM:
		on_dm(j, w, id, &rd);
		break;
	case CH_REQ_PRESENCE:
		on_presence(j, w, &rd);
		break;
	case CH_REQ_USERS:
		on_users(j, w, id);
		break;
	case CH_REQ_WHO:
		on_who(j, w, id, &rd);
		break;
	case CH_REQ_INFO:
		on_info(j, w, id, &rd);
		break;
	case CH_REQ_FILE_REMOVE:
		on_file_remove(j, w, id, &rd);
		break;
	default:
		reply_status(j, w, id, CH_BUS_BAD_REQUEST);
		break;
	}
}

/* ---------------------------------------------------------------------- */
/* Replication hooks (journal/repl.h)                                     */

/* A request, as replication allows it: a standby refuses writes; with
 * ack = replica a successful write's reply waits for the standby. */
static void repl_handle(struct journal *j, int w, uint32_t type, const void *p, uint32_t len)
{
	uint64_t id = 0;
	uint32_t status;

	if (ch_repl_is_standby(j->repl) && ch_repl_is_write_request(type)) {
		if (len >= sizeof(id))
			memcpy(&id, p, sizeof(id));
		/* A hash upgrade at login is best effort: the login stands. */
		if (id)
			reply_status(j, w, id, type == CH_REQ_SET_PASSWORD ? CH_BUS_OK :
					       CH_BUS_READ_ONLY);
		return;
	}
	size_t r0 = j->replies[w].len;
	handle(j, w, type, p, len);
	if (j->cfg->ack != CH_ACK_REPLICA || !ch_repl_is_write_request(type) ||
	    j->replies[w].len <= r0)
		return;
	memcpy(&status, j->replies[w].p + r0, sizeof(status));
	if (status != CH_BUS_OK)
		return;		/* nothing stored: an error needs no standby */
	ch_repl_hold(j->repl, w, j->replies[w].p + r0, j->replies[w].len - r0,
		     j->batch_pos + j->batch.len);
	j->replies[w].len = r0;
}

/* A record the standby received: the state, and its frame for the ring. */
static int repl_apply(void *arg, const struct ch_record *rec)
{
	struct journal *j = arg;
	struct ch_message m;
	char from[CH_NAME_MAX + 1], id[CH_CLIENT_ID_MAX + 1];

	int rc = ch_state_apply(&j->state, rec);
	if (rc < 0) {
		ch_err("journal: replicated record at %llu refused by the state: %s",
		       (unsigned long long)rec->pos, strerror(-rc));
		return rc;
	}
	CH_STAT_ADD(j->stats, journal_appends, 1);
	struct ch_room *room = rec->type == CH_REC_MESSAGE ?
			       ch_state_room_by_id(&j->state, rec->room) : NULL;
	if (room && ch_message_decode(rec, &m) == 0 && m.from_len < sizeof(from) &&
	    m.id_len < sizeof(id)) {
		memcpy(from, m.from, m.from_len);
		from[m.from_len] = '\0';
		memcpy(id, m.id, m.id_len);
		id[m.id_len] = '\0';
		queue_frame(j, room, rec->room_seq, rec->ts_ms, from, id, m.content, m.content_len);
		/* As on the primary: both users' connections join a DM room. */
		if (ch_is_dm_room(room->name, strlen(room->name)))
			post_autojoin(j, room, rec->room_seq);
	}
	return 0;
}

static int recover(struct journal *j, int repair);
static int adopt_rings(struct journal *j);

/* The standby's log was cut (fencing): the state again from the log. */
static int repl_reload(void *arg, struct ch_log_writer **log)
{
	struct journal *j = arg;
	struct ch_log_writer_opts opts = { .segment_size = j->cfg->segment_size };

	ch_state_free(&j->state);
	if (ch_state_init(&j->state) < 0 || recover(j, 0) < 0)
		return -1;
	int rc = ch_log_writer_open(log, j->dir, &opts);
	if (rc < 0) {
		ch_err("journal: cannot open the log in %s: %s", j->dir, strerror(-rc));
		return -1;
	}
	if (adopt_rings(j) < 0)
		return -1;
	CH_STAT_SET(j->stats, journal_log_end, ch_log_end(*log));
	return 0;
}

/* A reply held for ack = replica is due. */
static void repl_reply(void *arg, int w, const void *bytes, size_t len)
{
	struct journal *j = arg;

	ch_buf_append(&j->replies[w], bytes, len);
	j->wake |= 1ull << w;
}

/* ---------------------------------------------------------------------- */
/* The loop                                                               */

static int drain(struct journal *j)
{
	int taken = 0;

	j->now_ms = realtime_ms();
	j->batch_pos = ch_log_end(j->log);
	for (int w = 0; w < j->n_workers; w++) {
		struct ch_spsc *in = ch_shm_ingress(j->shm, w);
		const void *p;
		uint32_t type, len;
		while (taken < CH_JOURNAL_BATCH_REQUESTS && j->batch.len < CH_JOURNAL_BATCH_BYTES &&
		       (p = ch_spsc_peek(in, &type, &len)) != NULL) {
			repl_handle(j, w, type, p, len);
			ch_spsc_pop(in);
			taken++;
		}
		ch_spsc_release(in);
	}
	return taken;
}

static int commit(struct journal *j)
{
	if (j->batch.failed) {
		ch_err("journal: out of memory for a batch");
		return -ENOMEM;
	}
	if (j->batch.len) {
		int rc = ch_log_append(j->log, j->batch.p, j->batch.len);
		if (rc < 0) {
			ch_err("journal: append failed (%s); stopping so recovery can run",
			       strerror(-rc));
			return rc;
		}
		CH_STAT_ADD(j->stats, journal_bytes, j->batch.len);
		CH_STAT_ADD(j->stats, journal_batches, 1);
		if (j->cfg->ack != CH_ACK_WRITE) {
			uint64_t t0 = monotonic_us();
			rc = ch_log_sync(j->log);
			uint64_t us = monotonic_us() - t0;
			if (rc < 0) {
				ch_err("journal: fdatasync failed (%s); nothing more is acked, "
				       "stopping so recovery can run", strerror(-rc));
				return rc;
			}
			CH_STAT_ADD(j->stats, journal_fsyncs, 1);
			CH_STAT_ADD(j->stats, journal_fsync_us, us);
			int b = 0;
			while (b < CH_FSYNC_BUCKETS - 1 && us >= (100ull << b))
				b++;
			CH_STAT_ADD(j->stats, fsync_bucket[b], 1);
		}
		CH_STAT_SET(j->stats, journal_log_end, ch_log_end(j->log));
		j->batch.len = 0;
		ch_repl_appended(j->repl, j->batch_records);
		j->batch_records = 0;
	}
	publish_frames(j);
	post_replies(j);
	for (int w = 0; w < j->n_workers; w++)
		if (j->wake & (1ull << w))
			ch_shm_wake(j->shm->worker_efd[w]);
	j->wake = 0;
	return 0;
}

static int apply_recovered(const struct ch_record *rec, void *arg)
{
	struct journal *j = arg;

	ch_repl_observe(j->repl, rec);
	return ch_state_apply(&j->state, rec);
}

static int recover(struct journal *j, int repair)
{
	struct ch_log_recover_report rep;
	int rc = ch_log_recover(j->dir, repair ? CH_LOG_RECOVER_REPAIR : 0, apply_recovered,
				j, &rep);
	if (rep.outcome != CH_LOG_CLEAN)
		ch_warn("journal: %s", rep.message);
	if (rc < 0) {
		if (rep.outcome == CH_LOG_REFUSED)
			ch_err("journal: the log is damaged before its end; chatd will not "
			       "start on it. Inspect %s, or run chatd --repair to cut the "
			       "log at the damage (losing what follows it)", j->dir);
		else
			ch_err("journal: recovery failed: %s", strerror(-rc));
		return -1;
	}
	ch_info("journal: recovered %llu records (%llu bytes) in %llu segments: "
		"%u users, %u rooms", (unsigned long long)rep.n_records,
		(unsigned long long)rep.end_pos, (unsigned long long)rep.n_segments,
		j->state.n_users, j->state.n_rooms);
	return 0;
}

/* After a restart the room rings still carry their rooms: take them back. */
/*
 * Take over the rings (at start, and after fencing cut the log): their
 * frames stay for the members reading them, but none of them is trusted
 * for history, which reads the log until newer frames are published.
 */
static int adopt_rings(struct journal *j)
{
	uint32_t n = ch_shm_header(j->shm)->n_rings;

	if (!j->ring_floor && !(j->ring_floor = calloc(n, sizeof(*j->ring_floor)))) {
		ch_err("journal: out of memory for %u room rings", n);
		return -1;
	}
	j->free_rings = 0;
	for (uint32_t r = 0; r < n; r++) {
		struct ch_shm_room *sr = ch_shm_room(j->shm, r);
		uint32_t rid = atomic_load_explicit(&sr->room_id, memory_order_acquire);
		struct ch_mring *ring = ch_shm_ring(j->shm, r);
		ch_mring_writer_attach(ring);
		j->ring_floor[r] = ch_mring_head(ring);
		struct ch_room *room = ch_state_room_by_id(&j->state, rid);
		if (room)
			room->ring = (int32_t)r;
		if (rid)
			j->free_rings = r + 1;
	}
	return 0;
}

int ch_journal_run(const struct ch_config *cfg, const struct ch_shm *shm, int repair)
{
	static struct journal j;
	struct sigaction sa = { 0 };
	sigset_t none;

	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_promote;
	sigaction(SIGUSR2, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGPIPE, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	ch_sched_latency();	/* every request waits on this loop */
	j.cfg = cfg;
	j.shm = shm;
	j.n_workers = cfg->workers;
	j.stats = ch_shm_stats(shm, CH_SHM_PROC_JOURNAL);
	CH_STAT_SET(j.stats, pid, (uint64_t)getpid());
	snprintf(j.dir, sizeof(j.dir), "%s/" CH_JOURNAL_DIR, cfg->data_dir);
	if (ch_state_init(&j.state) < 0)
		return 1;
	struct ch_repl_host host = { .arg = &j, .apply = repl_apply, .reload = repl_reload,
				     .reply = repl_reply };
	j.repl = ch_repl_new(cfg, j.stats, j.dir, &host);
	if (!j.repl)
		return 1;
	if (recover(&j, repair) < 0)
		return CH_JOURNAL_EXIT_REFUSED;
	struct ch_log_writer_opts opts = { .segment_size = cfg->segment_size };
	int rc = ch_log_writer_open(&j.log, j.dir, &opts);
	if (rc < 0) {
		ch_err("journal: cannot open the log in %s: %s", j.dir, strerror(-rc));
		return 1;
	}
	if (ch_repl_start(j.repl, &j.log) < 0)
		return 1;
	ch_presence_init(&j.presence);
	for (int w = 0; w < j.n_workers; w++) {
		ch_spsc_consumer_attach(ch_shm_ingress(shm, w));
		ch_spsc_producer_attach(ch_shm_reply(shm, w));
		/* Presence is not in the log: ask the workers for it again. */
		reply_raw(&j, w, CH_EV_RESYNC, 0, NULL, 0);
	}
	post_replies(&j);
	for (int w = 0; w < j.n_workers; w++)
		ch_shm_wake(shm->worker_efd[w]);
	j.wake = 0;
	if (adopt_rings(&j) < 0)
		return 1;
	CH_STAT_SET(j.stats, journal_log_end, ch_log_end(j.log));
	ch_info("journal ready: log end %llu, ack = %s, %s at epoch %u",
		(unsigned long long)ch_log_end(j.log),
		cfg->ack == CH_ACK_REPLICA ? "replica" : cfg->ack == CH_ACK_FSYNC ? "fsync" : "write",
		ch_repl_is_standby(j.repl) ? "standby" : "primary", ch_repl_epoch(j.repl));
	CH_STAT_SET(j.stats, ready, 1);
	/* Workers may have asked while we were down: look before sleeping. */
	ch_shm_wake(shm->journal_efd);

	int status = 0;
	while (!journal_stop) {
		struct pollfd pfds[1 + CH_REPL_MAX_FDS] = { { .fd = shm->journal_efd, .events = POLLIN } };
		int timeout = CH_JOURNAL_POLL_MS;
		int n_repl = ch_repl_pollfds(j.repl, pfds + 1, &timeout);
		if (poll(pfds, 1 + (nfds_t)n_repl, timeout) > 0 && pfds[0].revents) {
			uint64_t v;
			ssize_t n = read(shm->journal_efd, &v, sizeof(v));
			(void)n;
		}
		if (journal_promote) {
			journal_promote = 0;
			if (ch_repl_promote(j.repl) < 0) {
				status = 1;
				goto out;
			}
		}
		/* Replication I/O; what it queued (replicated frames, replies
		 * the standby confirmed) is posted by a commit. */
		rc = ch_repl_process(j.repl, pfds + 1, n_repl);
		if (rc < 0 || (rc > 0 && commit(&j) < 0)) {
			status = 1;
			goto out;
		}
		/* Keep taking until the rings are empty: requests that came
		 * during the last fsync form the next batch (group commit). */
		while (drain(&j) > 0 || j.batch.len) {
			if (commit(&j) < 0) {
				status = 1;
				goto out;
			}
		}
	}
out:
	if (status == 0) {
		rc = ch_log_sync(j.log);
		if (rc < 0)
			status = 1;
	}
	if (j.log)
		ch_log_writer_close(j.log);
	ch_repl_free(j.repl);
	free(j.ring_floor);
	ch_info("journal stopped");
	return status;
}
