/*
 * A worker's side of the bus: see bus.h.
 */
#define _GNU_SOURCE
#include "worker/bus.h"

#include "common/log.h"
#include "worker/worker.h"
#include "worker/wsconn.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static uint64_t monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The journal's stats block, for the replication peer a standby names
 * in its read_only error (set by ch_bus_init, read only). */
static const struct ch_stats *bus_journal_stats;

/* "... the primary at a.b.c.d:port": the peer the standby's journal
 * follows now (it changes on promotion and fencing), from its stats. */
static const char *bus_read_only_message(void)
{
	static __thread char msg[160];
	uint64_t addr = bus_journal_stats ? CH_STAT_GET(bus_journal_stats, repl_peer_addr) : 0;
	uint64_t port = bus_journal_stats ? CH_STAT_GET(bus_journal_stats, repl_peer_port) : 0;

	if (!addr || !port)
		return "this node is a read-only standby; send writes to the primary";
	snprintf(msg, sizeof(msg), "this node is a read-only standby; send writes to the "
		 "primary (replication address %u.%u.%u.%u:%u)", (unsigned)(addr >> 24) & 255,
		 (unsigned)(addr >> 16) & 255, (unsigned)(addr >> 8) & 255, (unsigned)addr & 255,
		 (unsigned)port);
	return msg;
}

const struct ch_bus_error *ch_bus_error(uint32_t status)
{
	static __thread struct ch_bus_error read_only;

	static const struct ch_bus_error errors[] = {
		[CH_BUS_USER_EXISTS] = { 409, "user_exists", "that username is taken" },
		[CH_BUS_NO_SUCH_USER] = { 401, "invalid_credentials", "wrong username or password" },
		[CH_BUS_ROOM_EXISTS] = { 409, "room_exists", "a room with that id exists" },
		[CH_BUS_UNKNOWN_USER] = { 400, "unknown_user", "a participant does not exist" },
		[CH_BUS_NO_SUCH_ROOM] = { 404, "no_such_room", "no such room" },
		[CH_BUS_NOT_PARTICIPANT] = { 403, "not_a_participant", "you are not in this room" },
		[CH_BUS_LIMIT] = { 403, "limit_reached", "a configured limit was reached" },
		[CH_BUS_BAD_REQUEST] = { 400, "bad_request", "the request was refused as malformed" },
		[CH_BUS_UNAVAILABLE] = { 503, "unavailable", "the journal cannot serve this now; retry" },
		[CH_BUS_READ_ONLY] = { 503, "read_only", "this node is a read-only standby" },
		[CH_BUS_REPLICA_UNAVAILABLE] = { 503, "replica_unavailable",
			"stored here, but the standby did not confirm it in time (ack = replica); "
			"retry with the same id" },
	};
	if (status == CH_BUS_READ_ONLY) {
		read_only = errors[status];
		read_only.message = bus_read_only_message();
		return &read_only;
	}
	if (status >= sizeof(errors) / sizeof(errors[0]) || !errors[status].code)
		status = CH_BUS_UNAVAILABLE;
	return &errors[status];
}

int ch_bus_init(struct ch_bus *bus, const struct ch_shm *shm, int index)
{
	memset(bus, 0, sizeof(*bus));
	bus->in = ch_shm_ingress(shm, index);
	bus->out = ch_shm_reply(shm, index);
	bus->journal_efd = shm->journal_efd;
	bus->efd = shm->worker_efd[index];
	bus_journal_stats = ch_shm_stats(shm, CH_SHM_PROC_JOURNAL);
	ch_spsc_producer_attach(bus->in);
	ch_spsc_consumer_attach(bus->out);
	/* A new incarnation number: replies meant for a predecessor in this
	 * slot carry another one and are dropped. */
	if (getrandom(&bus->incarnation, sizeof(bus->incarnation), 0) < 0)
		bus->incarnation = (uint32_t)getpid() ^ (uint32_t)monotonic_ms();
	bus->incarnation |= 1;
	/* Drop what a predecessor left unread. */
	uint32_t type, len;
	while (ch_spsc_peek(bus->out, &type, &len))
		ch_spsc_pop(bus->out);
	ch_spsc_release(bus->out);

	uint64_t hello[2] = { 0, (uint64_t)index };
	if (ch_spsc_push(bus->in, CH_REQ_HELLO, hello, sizeof(hello)) < 0)
		return -1;
	bus->dirty = 1;
	return 0;
}

int ch_bus_begin(struct ch_bus *bus, struct ch_payload_writer *pw, uint32_t max_len)
{
	struct ch_bus_pending *p = &bus->pending[bus->next_seq % CH_BUS_PENDING];
	if (p->req_id)
		return -1;	/* CH_BUS_PENDING requests already in flight */
	uint8_t *buf = ch_spsc_reserve(bus->in, max_len + (uint32_t)sizeof(uint64_t));
	if (!buf)
		return -1;
	ch_payload_writer_init(pw, buf + sizeof(uint64_t), max_len);
	return 0;
}

int ch_bus_send(struct ch_bus *bus, uint32_t type, struct ch_payload_writer *pw,
		struct ch_worker *w, struct ch_conn *c, ch_bus_fn fn, void *ctx)
{
	size_t len;
	if (ch_payload_writer_finish(pw, &len) < 0)
		return -1;
	uint32_t seq = bus->next_seq++;
	uint64_t id = ((uint64_t)bus->incarnation << 32) | seq;
	memcpy(pw->buf - sizeof(uint64_t), &id, sizeof(id));
	ch_spsc_commit(bus->in, type, (uint32_t)(len + sizeof(uint64_t)));
	bus->dirty = 1;

	struct ch_bus_pending *p = &bus->pending[seq % CH_BUS_PENDING];
	p->req_id = id;
	p->deadline_ms = monotonic_ms() + CH_BUS_TIMEOUT_MS;
	p->conn = c ? (uint32_t)(c - w->conns) : CH_NO_INDEX;
	p->gen = c ? c->gen : 0;
	p->fn = fn;
	p->ctx = ctx;
	return 0;
}

int ch_bus_post(struct ch_bus *bus, uint32_t type, struct ch_payload_writer *pw)
{
	size_t len;
	uint64_t id = 0;

	if (ch_payload_writer_finish(pw, &len) < 0)
		return -1;
	memcpy(pw->buf - sizeof(uint64_t), &id, sizeof(id));
	ch_spsc_commit(bus->in, type, (uint32_t)(len + sizeof(uint64_t)));
	bus->dirty = 1;
	return 0;
}

void ch_bus_flush(struct ch_bus *bus)
{
	if (!bus->dirty)
		return;
	ch_spsc_publish(bus->in);
	ch_shm_wake(bus->journal_efd);
	bus->dirty = 0;
}

static void complete(struct ch_bus *bus, struct ch_worker *w, struct ch_bus_pending *p,
		     uint32_t status, struct ch_payload_reader *rd)
{
	struct ch_conn *c = NULL;
	if (p->conn != CH_NO_INDEX) {
		struct ch_conn *cand = &w->conns[p->conn];
		if (cand->gen == p->gen && cand->state != CH_CONN_FREE &&
		    cand->state != CH_CONN_CLOSING)
			c = cand;
	}
	ch_bus_fn fn = p->fn;
	void *ctx = p->ctx;
	p->req_id = 0;
	if (status != CH_BUS_OK)
		CH_STAT_ADD(w->stats, requests_failed, 1);
	/* Advance past answered requests so the table's tail is the oldest. */
	while (bus->oldest_seq != bus->next_seq &&
	       !bus->pending[bus->oldest_seq % CH_BUS_PENDING].req_id)
		bus->oldest_seq++;
	fn(w, c, ctx, status, rd);
}

void ch_bus_drain(struct ch_bus *bus, struct ch_worker *w)
{
	const uint8_t *p;
	uint32_t status, len;

	while ((p = ch_spsc_peek(bus->out, &status, &len)) != NULL) {
		uint64_t id;
		if (len >= sizeof(id)) {
			memcpy(&id, p, sizeof(id));
			if (id == 0) {
				struct ch_payload_reader rd;
				ch_payload_reader_init(&rd, p + sizeof(id), len - sizeof(id));
				ch_ws_event(w, status, &rd);
				ch_spsc_pop(bus->out);
				continue;
			}
			struct ch_bus_pending *pe = &bus->pending[(uint32_t)id % CH_BUS_PENDING];
			if (pe->req_id == id) {
				struct ch_payload_reader rd;
				ch_payload_reader_init(&rd, p + sizeof(id), len - sizeof(id));
				complete(bus, w, pe, status, &rd);
			}
		}
		ch_spsc_pop(bus->out);
	}
	ch_spsc_release(bus->out);
}

void ch_bus_expire(struct ch_bus *bus, struct ch_worker *w, uint64_t now_ms)
{
	while (bus->oldest_seq != bus->next_seq) {
		struct ch_bus_pending *p = &bus->pending[bus->oldest_seq % CH_BUS_PENDING];
		if (!p->req_id) {
			bus->oldest_seq++;
			continue;
		}
		if (p->deadline_ms > now_ms)
			break;
		ch_warn("journal did not answer request %u in %d ms", bus->oldest_seq,
			CH_BUS_TIMEOUT_MS);
		complete(bus, w, p, CH_BUS_UNAVAILABLE, NULL);
	}
}
