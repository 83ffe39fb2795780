/*
 * Replication, the standby's side (see repl.h for the design, repl_int.h
 * for the split): dialling the primary (and the peer a fencing probe
 * asks), the connect with backoff, checking the primary's HELLO, START
 * and the fencing cut it can ask for, checking, appending and applying
 * RECORDS, and the ACK of what this node holds and holds durably.
 *
 * Invariants: a RECORDS body is appended only when every record in it
 * decodes (CRC, position) at this log's end and no epoch goes back, so the
 * log stays a prefix of the primary's at the same positions, byte for
 * byte; the durable end an ACK reports is synced first (unless ack =
 * write); a standby never follows a primary of an older epoch than its
 * own.
 */
#define _GNU_SOURCE
#include "journal/repl_int.h"

#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---------------------------------------------------------------------- */
/* Connecting to the primary (or to the peer a probe asks)                */

/* A non-blocking connect to the peer in c: to follow it (a standby,
 * conns[0]) or to ask its epoch (a probe, any free slot). */
void ch_repl_dial(struct ch_repl *r, struct ch_repl_conn *c, int probe)
{
	const struct ch_listen_addr *a = &r->primary;

	if (!a->addrlen)
		return;		/* none configured: nothing to dial */
	int fd = socket(a->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ch_err_sys("replication: socket");
		return;
	}
	ch_repl_tune_socket(fd);
	int rc = connect(fd, (const struct sockaddr *)&a->addr, a->addrlen);
	if (rc < 0 && errno != EINPROGRESS) {
		ch_debug("replication: connect %s: %s", r->cfg->repl_primary, strerror(errno));
		close(fd);
		if (!probe)
			backoff_grow(r);
		return;
	}
	ch_repl_conn_init(c, fd, CH_REPL_CONN_FOLLOW, CH_REPL_CONN_CONNECTING);
	c->probe = c->quiet = probe;
	ch_repl_addr_of(&a->addr, &c->peer_addr, &c->peer_port);
}

/* Standby: start following the primary. */
void ch_repl_follow_connect(struct ch_repl *r)
{
	if (r->conns[0].fd >= 0)
		return;
	r->next_connect_ms = monotonic_ms() + r->backoff_ms;
	ch_repl_dial(r, &r->conns[0], 0);
}

void ch_repl_follow_connected(struct ch_repl *r, struct ch_repl_conn *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		ch_debug("replication: connect %s: %s", r->cfg->repl_primary, strerror(err));
		ch_repl_conn_close(r, c, NULL);
		return;
	}
	c->state = CH_REPL_CONN_HANDSHAKE;
	c->last_rx_ms = monotonic_ms();
	ch_repl_queue_hello(r, c, c->probe ? CH_ROLE_PRIMARY : CH_ROLE_STANDBY);
	ch_repl_conn_flush(r, c);
}

/* The primary's HELLO (and AUTH) checked: is it one to follow? For a
 * probe: is the peer a newer primary, so that we must step down? */
int ch_repl_follow_ready(struct ch_repl *r, struct ch_repl_conn *c)
{
	char why[CH_REPL_WHY_MAX];

	if (c->probe) {
		if (c->peer.role == CH_ROLE_PRIMARY && c->peer.epoch > r->epoch)
			return ch_repl_demote(r, c->peer.epoch);
		ch_repl_conn_close(r, c, NULL);
		return 0;
	}
	if (c->peer.role != CH_ROLE_PRIMARY) {
		snprintf(why, sizeof(why), "%s is not a primary (it says %s)",
			 r->cfg->repl_primary, role_name((int)c->peer.role));
		ch_repl_conn_refuse(r, c, why);
	} else if (c->peer.epoch < r->epoch) {
		snprintf(why, sizeof(why), "%s is a primary of epoch %u, older than this node's %u: "
			 "not following a stale primary", r->cfg->repl_primary, c->peer.epoch, r->epoch);
		ch_repl_conn_refuse(r, c, why);
	}
	/* Otherwise START comes next. */
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Applying what the primary sends                                        */

static int standby_cut(struct ch_repl *r, uint64_t from)
{
	uint64_t cut = 0, end = log_end(r);
	int rc;

	ch_warn("replication: fencing: the primary (epoch %u) starts this standby at "
		"%llu, before its end %llu: cutting the records of epoch %u it never had",
		r->epoch, (unsigned long long)from, (unsigned long long)end, r->last_epoch);
	rc = ch_log_sync(*r->log);
	ch_log_writer_close(*r->log);
	*r->log = NULL;
	if (rc == 0)
		rc = ch_log_truncate(r->dir, from, &cut);
	if (rc < 0) {
		ch_err("replication: cutting the log at %llu failed: %s", (unsigned long long)from,
		       strerror(-rc));
		return -1;
	}
	r->n_epochs = 0;
	r->epoch = 1;
	r->last_epoch = 0;
	if (r->host.reload(r->host.arg, r->log) < 0 || !*r->log)
		return -1;
	set_role_stats(r);
	ch_info("replication: cut %llu bytes; the log now ends at %llu",
		(unsigned long long)cut, (unsigned long long)log_end(r));
	r->queued = 1;
	return 0;
}

int ch_repl_on_start(struct ch_repl *r, struct ch_repl_conn *c, const struct ch_repl_msg *m)
{
	uint64_t from;
	uint32_t epoch;
	char why[CH_REPL_WHY_MAX];

	if (ch_repl_get_start(m, &from, &epoch) < 0 || c->state != CH_REPL_CONN_HANDSHAKE ||
	    !c->authed) {
		ch_repl_conn_refuse(r, c, "START out of place or malformed");
		return 0;
	}
	if (from > log_end(r)) {
		snprintf(why, sizeof(why), "the primary starts at %llu, past this standby's end %llu",
			 (unsigned long long)from, (unsigned long long)log_end(r));
		ch_repl_conn_refuse(r, c, why);
		return 0;
	}
	if (from < log_end(r) && standby_cut(r, from) < 0)
		return -1;
	c->state = CH_REPL_CONN_STREAM;
	c->need_ack = 1;
	r->backoff_ms = CH_REPL_BACKOFF_MIN_MS;
	peer_stats(r, c);
	CH_STAT_SET(r->stats, repl_connected, 1);
	CH_STAT_ADD(r->stats, repl_reconnects, 1);
	ch_info("replication: following the primary at %s (epoch %u) from %llu",
		r->cfg->repl_primary, epoch, (unsigned long long)from);
	return 0;
}

/* Check every record of a RECORDS body before anything is appended. */
static int check_records(struct ch_repl *r, const uint8_t *p, size_t len, uint64_t start)
{
	size_t off = 0;
	uint32_t prev = r->last_epoch;

	while (off < len) {
		struct ch_record rec;
		enum ch_record_status st = ch_record_decode(p + off, len - off, start + off, &rec);
		if (st != CH_REC_OK) {
			ch_err("replication: record at %llu from the primary: %s",
			       (unsigned long long)(start + off), ch_record_status_name(st));
			return -1;
		}
		/* Epochs never go back along a log. */
		if (rec.epoch < prev) {
			ch_err("replication: record at %llu has epoch %u after epoch %u",
			       (unsigned long long)(start + off), rec.epoch, prev);
			return -1;
		}
		prev = rec.epoch;
		off += rec.len;
	}
	return 0;
}

int ch_repl_on_records(struct ch_repl *r, struct ch_repl_conn *c, const struct ch_repl_msg *m)
{
	uint64_t end, ms;
	const uint8_t *p;
	size_t len;

	if (ch_repl_get_records(m, &end, &ms, &p, &len) < 0 || c->state != CH_REPL_CONN_STREAM) {
		ch_repl_conn_refuse(r, c, "RECORDS out of place or malformed");
		return 0;
	}
	r->primary_end = end;
	c->need_ack = 1;
	uint64_t now_ms = realtime_ms();
	CH_STAT_SET(r->stats, repl_lag_ms, now_ms > ms ? now_ms - ms : 0);
	if (len == 0)
		return 0;	/* a heartbeat */
	uint64_t start = log_end(r);
	if (check_records(r, p, len, start) < 0) {
		ch_repl_conn_refuse(r, c, "a record failed its checks");
		return 0;
	}
	int rc = ch_log_append(*r->log, p, len);
	if (rc < 0) {
		ch_err("replication: appending %zu bytes at %llu: %s", len,
		       (unsigned long long)start, strerror(-rc));
		return -1;
	}
	for (size_t off = 0; off < len;) {
		struct ch_record rec;
		/* check_records() verified every CRC already. */
		ch_record_decode_checked(p + off, len - off, start + off, &rec);
		ch_repl_observe(r, &rec);
		if (r->host.apply(r->host.arg, &rec) != 0)
			return -1;
		off += rec.len;
	}
	CH_STAT_ADD(r->stats, repl_bytes, len);
	CH_STAT_ADD(r->stats, journal_bytes, len);
	CH_STAT_ADD(r->stats, journal_batches, 1);
	r->queued = 1;
	return 0;
}

/* After a read pass: make what came durable (per ack), then say so. */
int ch_repl_standby_ack(struct ch_repl *r, struct ch_repl_conn *c)
{
	uint64_t end = log_end(r);

	if (!c->need_ack || c->state != CH_REPL_CONN_STREAM)
		return 0;
	c->need_ack = 0;
	if (r->cfg->ack != CH_ACK_WRITE && ch_log_synced_end(*r->log) < end) {
		int rc = ch_log_sync(*r->log);
		if (rc < 0) {
			ch_err("replication: fdatasync failed (%s); stopping so recovery can run",
			       strerror(-rc));
			return -1;
		}
		CH_STAT_ADD(r->stats, journal_fsyncs, 1);
	}
	uint64_t durable = r->cfg->ack == CH_ACK_WRITE ? end : ch_log_synced_end(*r->log);
	ch_repl_put_ack(&c->out, end, durable);
	CH_STAT_SET(r->stats, journal_log_end, end);
	CH_STAT_SET(r->stats, repl_sent_pos, end);
	CH_STAT_SET(r->stats, repl_acked_pos, durable);
	CH_STAT_SET(r->stats, repl_lag_bytes, r->primary_end > durable ? r->primary_end - durable : 0);
	return 0;
}
