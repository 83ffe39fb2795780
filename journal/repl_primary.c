/*
 * Replication, the primary's side (see repl.h for the design, repl_int.h
 * for the split): the HELLO/AUTH challenge (both ways, on every
 * connection: the standby's and the fencing probe's run the same
 * exchange), the listener and accept, where a standby starts (the fencing
 * point), RECORDS from the segment files (catch-up) then as batches commit
 * (live), the standby's ACKs, the replies held for ack = replica and the
 * lag stats. Catch-up reads the segment files with a buffered reader
 * (journal/segment.h), at most CH_REPL_OUT_HIGH bytes ahead of the socket,
 * so a standby far behind cannot make the journal read the whole log in
 * one turn.
 *
 * Invariants: a standby is sent only what this node will not lose
 * (ch_repl_stream_limit); a held reply is posted as a success only while a
 * standby is attached and its durable end (r->acked, 0 from each attach
 * until its first ACK) covers the reply's record, else it is answered
 * CH_BUS_REPLICA_UNAVAILABLE at its deadline; held replies leave in the
 * order they were held.
 */
#define _GNU_SOURCE
#include "journal/repl_int.h"

#include "common/log.h"
#include "journal/proto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define REPL_P99_EVERY_MS 1000
#define HELD_FRAME_HDR 8	/* a reply's ring frame header: u32 status, u32 length */

/* ---------------------------------------------------------------------- */
/* The challenge: HELLO and AUTH, on every connection, both ways          */

void ch_repl_queue_hello(struct ch_repl *r, struct ch_repl_conn *c, uint32_t role)
{
	struct ch_repl_hello h = {
		.role = role,
		.epoch = r->epoch,
		.end = log_end(r),
		.last_epoch = r->last_epoch,
		.flags = r->secret_len ? CH_REPL_HELLO_AUTH : 0,
	};
	memcpy(h.nonce, c->nonce, sizeof(h.nonce));
	ch_repl_put_hello(&c->out, &h);
}

static int send_auth_if_asked(struct ch_repl *r, struct ch_repl_conn *c)
{
	uint8_t mac[CH_REPL_MAC_SIZE];

	if (!(c->peer.flags & CH_REPL_HELLO_AUTH))
		return 0;
	if (!r->secret_len) {
		ch_repl_conn_refuse(r, c, "the peer wants a shared secret and this node "
				    "has no secret_file");
		return -1;
	}
	if (ch_repl_mac(r->secret, r->secret_len, c->peer.nonce, (uint32_t)r->role, mac) < 0) {
		ch_repl_conn_refuse(r, c, "cannot compute the HMAC");
		return -1;
	}
	ch_repl_put_auth(&c->out, mac);
	return 0;
}

void ch_repl_on_hello(struct ch_repl *r, struct ch_repl_conn *c, const struct ch_repl_msg *m)
{
	if (c->got_hello || ch_repl_get_hello(m, &c->peer) < 0) {
		ch_repl_conn_refuse(r, c, "HELLO malformed or repeated");
		return;
	}
	c->got_hello = 1;
	c->authed = r->secret_len == 0;
	send_auth_if_asked(r, c);
}

void ch_repl_on_auth(struct ch_repl *r, struct ch_repl_conn *c, const struct ch_repl_msg *m)
{
	uint8_t got[CH_REPL_MAC_SIZE], want[CH_REPL_MAC_SIZE];

	if (!c->got_hello || ch_repl_get_auth(m, got) < 0) {
		ch_repl_conn_refuse(r, c, "AUTH out of place or malformed");
		return;
	}
	if (!r->secret_len)
		return;		/* we asked for nothing; the peer was being polite */
	if (ch_repl_mac(r->secret, r->secret_len, c->nonce, c->peer.role, want) < 0 ||
	    !ch_repl_mac_equal(got, want)) {
		ch_repl_conn_refuse(r, c, "wrong shared secret");
		return;
	}
	c->authed = 1;
}

/* ---------------------------------------------------------------------- */
/* Accepting standbys                                                     */

int ch_repl_open_listener(struct ch_repl *r)
{
	struct ch_listen_addr a;
	char why[CH_CONFIG_ERR_MAX];
	int one = 1;

	if (!r->cfg->repl_listen[0] || r->listen_fd >= 0)
		return 0;
	if (ch_config_parse_listen(r->cfg->repl_listen, &a, why, sizeof(why)) < 0) {
		ch_err("replication: listen = %s: %s", r->cfg->repl_listen, why);
		return -1;
	}
	int fd = socket(a.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ch_err_sys("replication: socket");
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a.addr, a.addrlen) < 0 || listen(fd, 8) < 0) {
		ch_err("replication: cannot listen on %s: %s", r->cfg->repl_listen, strerror(errno));
		close(fd);
		return -1;
	}
	r->listen_fd = fd;
	ch_info("replication: primary at epoch %u, standbys connect to %s", r->epoch,
		r->cfg->repl_listen);
	return 0;
}

void ch_repl_on_accept(struct ch_repl *r)
{
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd = accept4(r->listen_fd, (struct sockaddr *)&ss, &len,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				ch_err_sys("replication: accept4");
			return;
		}
		struct ch_repl_conn *c = ch_repl_conn_slot(r);
		if (!c) {
			/* Handshakes that never finish time out and free slots. */
			ch_warn("replication: too many replication connections; one refused");
			close(fd);
			continue;
		}
		ch_repl_tune_socket(fd);
		ch_repl_conn_init(c, fd, CH_REPL_CONN_ACCEPTED, CH_REPL_CONN_HANDSHAKE);
		ch_repl_addr_of(&ss, &c->peer_addr, &c->peer_port);
		ch_repl_queue_hello(r, c, (uint32_t)r->role);
		ch_repl_conn_flush(r, c);
	}
}

/* A standby proved itself: decide where it starts and begin streaming. */
static void accept_standby(struct ch_repl *r, struct ch_repl_conn *c)
{
	char why[CH_REPL_WHY_MAX];
	const struct ch_repl_hello *p = &c->peer;

	if (p->last_epoch > r->epoch || p->epoch > r->epoch) {
		snprintf(why, sizeof(why), "the standby holds epoch %u, newer than this "
			 "primary's %u: this primary is stale and will not feed it",
			 p->epoch > p->last_epoch ? p->epoch : p->last_epoch, r->epoch);
		ch_repl_conn_refuse(r, c, why);
		return;
	}
	uint64_t from = p->last_epoch ? ch_repl_end_of_epoch(r, p->last_epoch) : 0;
	if (p->end < from)
		from = p->end;
	if (from > log_end(r))
		from = log_end(r);
	int rc = ch_log_reader_open(&c->reader, r->dir, from);
	if (rc < 0) {
		snprintf(why, sizeof(why), "cannot read this primary's log from %llu: %s",
			 (unsigned long long)from, strerror(-rc));
		ch_repl_conn_refuse(r, c, why);
		return;
	}
	if (r->standby >= 0)
		ch_repl_conn_close(r, &r->conns[r->standby],
				   "replaced by a newer connection from a standby");
	r->standby = (int)(c - r->conns);
	c->state = CH_REPL_CONN_STREAM;
	c->send_pos = from;
	r->acked = 0;	/* until this standby says what it holds durably */
	ch_repl_put_start(&c->out, from, r->epoch);
	peer_stats(r, c);
	CH_STAT_SET(r->stats, repl_connected, 1);
	CH_STAT_ADD(r->stats, repl_reconnects, 1);
	ch_info("replication: standby %u.%u.%u.%u:%u attached: it holds %llu (epoch %u); "
		"streaming from %llu%s", c->peer_addr >> 24, (c->peer_addr >> 16) & 255,
		(c->peer_addr >> 8) & 255, c->peer_addr & 255, c->peer_port,
		(unsigned long long)p->end, p->last_epoch, (unsigned long long)from,
		from < p->end ? " (it cuts what this primary never had)" : "");
	ch_repl_stream_fill(r, c);
}

/* An accepted peer finished its handshake: a standby, or a primary asking
 * whether we are newer (the fencing probe): it has our HELLO already. */
void ch_repl_accepted_ready(struct ch_repl *r, struct ch_repl_conn *c)
{
	char why[CH_REPL_WHY_MAX];

	if (c->peer.role == CH_ROLE_STANDBY) {
		accept_standby(r, c);
		return;
	}
	snprintf(why, sizeof(why), "this node is the primary, at epoch %u", r->epoch);
	ch_repl_conn_refuse(r, c, why);
}

/* ---------------------------------------------------------------------- */
/* Streaming: catch-up from the segments, then live                       */

/* How far a standby may be sent: only what this node will not lose. */
uint64_t ch_repl_stream_limit(const struct ch_repl *r)
{
	return r->cfg->ack == CH_ACK_WRITE ? ch_log_end(*r->log) : ch_log_synced_end(*r->log);
}

/* Queue RECORDS from the log until CH_REPL_OUT_HIGH is queued or the
 * limit is reached. -1 when the connection was closed. */
int ch_repl_stream_fill(struct ch_repl *r, struct ch_repl_conn *c)
{
	uint64_t limit = ch_repl_stream_limit(r);

	ch_log_reader_set_limit(c->reader, limit);
	while (c->send_pos < limit && conn_pending(c) < CH_REPL_OUT_HIGH) {
		size_t hoff = c->out.len;
		size_t n = 0;
		struct ch_record rec;
		int rc = 0;

		ch_repl_put_records_head(&c->out, limit, realtime_ms(), 0);
		while (n < CH_REPL_BATCH_BYTES && (rc = ch_log_reader_next(c->reader, &rec)) > 0) {
			ch_buf_append(&c->out, rec.raw, rec.len);
			n += rec.len;
		}
		if (rc < 0 || c->out.failed) {
			char why[CH_REPL_WHY_MAX];
			snprintf(why, sizeof(why), "reading the log at %llu for the standby: %s",
				 (unsigned long long)c->send_pos,
				 c->out.failed ? "out of memory" : strerror(-rc));
			ch_repl_conn_close(r, c, why);
			return -1;
		}
		if (n == 0) {
			c->out.len = hoff;	/* nothing new after all */
			break;
		}
		ch_repl_set_records_len(&c->out, hoff, n);
		c->send_pos += n;
		CH_STAT_ADD(r->stats, repl_bytes, n);
	}
	CH_STAT_SET(r->stats, repl_sent_pos, c->send_pos);
	return 0;
}

/* How far the standby's durable end trails the log, after either moved. */
static void lag_stats(struct ch_repl *r)
{
	uint64_t end = log_end(r);

	CH_STAT_SET(r->stats, repl_lag_bytes, end > r->acked ? end - r->acked : 0);
	CH_STAT_SET(r->stats, repl_lag_records, r->recs_total - r->recs_acked);
}

void ch_repl_appended(struct ch_repl *r, uint32_t n)
{
	uint64_t now = monotonic_ms();

	if (n == 0)
		return;
	r->recs_total += n;
	r->last_epoch = r->epoch;
	if (r->lag_tail - r->lag_head == CH_REPL_LAG_RING)
		r->lag_head++;	/* no standby for a long while: forget the oldest */
	r->lag[r->lag_tail++ % CH_REPL_LAG_RING] =
		(struct ch_repl_lag){ log_end(r), r->recs_total, now };
	lag_stats(r);
	if (r->standby >= 0) {
		struct ch_repl_conn *c = &r->conns[r->standby];
		if (ch_repl_stream_fill(r, c) == 0)
			ch_repl_conn_flush(r, c);
	}
}

/* ---------------------------------------------------------------------- */
/* ack = replica: held replies, ACKs, lag                                 */

/* Bytes after a held reply of len bytes, so the next entry is aligned. */
static size_t held_pad(size_t len)
{
	return (8 - len % 8) % 8;
}

/* The reply a held one becomes when the standby does not confirm it: its
 * status changes, its request id stays, so the worker matches it. */
static void post_unavailable(struct ch_repl *r, int w, uint64_t req_id)
{
	uint8_t fail[HELD_FRAME_HDR + sizeof(req_id)];
	uint32_t hdr[2] = { CH_BUS_REPLICA_UNAVAILABLE, sizeof(req_id) };

	memcpy(fail, hdr, sizeof(hdr));
	memcpy(fail + HELD_FRAME_HDR, &req_id, sizeof(req_id));
	r->host.reply(r->host.arg, w, fail, sizeof(fail));
}

void ch_repl_hold(struct ch_repl *r, int w, const void *bytes, size_t len, uint64_t pos)
{
	struct ch_repl_held h = {
		.pos = pos,
		.deadline_ms = monotonic_ms() + r->cfg->repl_ack_timeout_ms,
		.worker = (uint32_t)w,
		.len = (uint32_t)len,
	};
	static const uint8_t zero[8];

	/* A reply is a frame header then a payload that starts with the
	 * request id (journal/proto.h); one too short to carry it keeps 0. */
	if (len >= HELD_FRAME_HDR + sizeof(h.req_id))
		memcpy(&h.req_id, (const uint8_t *)bytes + HELD_FRAME_HDR, sizeof(h.req_id));
	size_t pad = held_pad(len);
	/* Room for the whole entry first, so a failure leaves no half of one. */
	if (ch_buf_reserve(&r->held, sizeof(h) + len + pad) < 0) {
		/* Never a silent ack: without memory to hold it, answer now
		 * as a timeout would. */
		ch_err("replication: out of memory holding a reply for ack = replica");
		r->held.failed = 0;
		post_unavailable(r, w, h.req_id);
		r->queued = 1;
		return;
	}
	ch_buf_append(&r->held, &h, sizeof(h));
	ch_buf_append(&r->held, bytes, len);
	ch_buf_append(&r->held, zero, pad);
}

/* Post the held replies the standby now covers, and fail the overdue. */
void ch_repl_release_held(struct ch_repl *r, uint64_t now)
{
	while (r->held_off < r->held.len) {
		struct ch_repl_held h;
		memcpy(&h, r->held.p + r->held_off, sizeof(h));
		uint8_t *bytes = (uint8_t *)r->held.p + r->held_off + sizeof(h);
		if (h.pos <= r->acked && r->standby >= 0) {
			r->host.reply(r->host.arg, (int)h.worker, bytes, h.len);
		} else if (h.deadline_ms <= now) {
			post_unavailable(r, (int)h.worker, h.req_id);
			CH_STAT_ADD(r->stats, repl_ack_timeouts, 1);
		} else {
			break;
		}
		r->held_off += sizeof(h) + h.len + held_pad(h.len);
		r->queued = 1;
	}
	if (r->held_off == r->held.len) {
		r->held.len = r->held_off = 0;
	} else if (r->held_off > r->held.len / 2) {
		memmove(r->held.p, r->held.p + r->held_off, r->held.len - r->held_off);
		r->held.len -= r->held_off;
		r->held_off = 0;
	}
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static void update_p99(struct ch_repl *r, uint64_t now)
{
	static uint32_t sorted[CH_REPL_LAG_SAMPLES];

	if (r->n_samples == 0 || now - r->p99_at_ms < REPL_P99_EVERY_MS)
		return;
	r->p99_at_ms = now;
	memcpy(sorted, r->lag_samples, r->n_samples * sizeof(sorted[0]));
	qsort(sorted, r->n_samples, sizeof(sorted[0]), cmp_u32);
	CH_STAT_SET(r->stats, repl_lag_p99_ms, sorted[(r->n_samples * 99) / 100]);
}

/* The standby confirmed the log durable up to r->acked: lag figures. */
static void account_ack(struct ch_repl *r, uint64_t now)
{
	while (r->lag_tail != r->lag_head && r->lag[r->lag_head % CH_REPL_LAG_RING].end <= r->acked) {
		const struct ch_repl_lag *e = &r->lag[r->lag_head % CH_REPL_LAG_RING];
		uint64_t ms = now - e->t_ms;
		r->recs_acked = e->recs;
		CH_STAT_SET(r->stats, repl_lag_ms, ms);
		r->lag_samples[r->next_sample] = ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
		r->next_sample = (r->next_sample + 1) % CH_REPL_LAG_SAMPLES;
		if (r->n_samples < CH_REPL_LAG_SAMPLES)
			r->n_samples++;
		r->lag_head++;
	}
	update_p99(r, now);
	CH_STAT_SET(r->stats, repl_acked_pos, r->acked);
	lag_stats(r);
}

/* ACK from the streaming standby: what it holds durably releases the
 * replies held for it. Claiming more than was sent refuses the peer. */
int ch_repl_on_ack(struct ch_repl *r, struct ch_repl_conn *c, const struct ch_repl_msg *m)
{
	uint64_t received, durable;

	if (ch_repl_get_ack(m, &received, &durable) < 0 || durable > c->send_pos) {
		ch_repl_conn_refuse(r, c, "ACK malformed or past what was sent");
		return 0;
	}
	uint64_t now = monotonic_ms();
	r->acked = durable;
	ch_repl_release_held(r, now);
	account_ack(r, now);
	return 0;
}
