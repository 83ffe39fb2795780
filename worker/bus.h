/*
 * A worker's side of the bus to the journal (journal/proto.h): requests go
 * out on this worker's ingress ring, published and signalled once per loop
 * turn; replies come back on its reply ring, and the journal's eventfd
 * write completes an io_uring read that makes the loop drain them.
 *
 * Pending requests sit in a fixed table indexed by sequence number, in the
 * order they were made, so the oldest is always at the tail: a request the
 * journal never answers (it died and lost it) is failed with
 * CH_BUS_UNAVAILABLE after CH_BUS_TIMEOUT_MS, and the table never grows.
 */
#ifndef CH_BUS_H
#define CH_BUS_H

#include "journal/proto.h"
#include "journal/record.h"
#include "shm/shm.h"

#include <stdint.h>

#define CH_BUS_PENDING 16384		/* requests in flight per worker */
#define CH_BUS_TIMEOUT_MS 10000

struct ch_worker;
struct ch_conn;

/* Called on the loop with the reply; c is NULL when the connection that
 * asked is gone (the callback then only frees what ctx holds). */
typedef void (*ch_bus_fn)(struct ch_worker *w, struct ch_conn *c, void *ctx,
			  uint32_t status, struct ch_payload_reader *reply);

struct ch_bus_pending {
	uint64_t req_id;	/* 0: free */
	uint64_t deadline_ms;
	uint32_t conn;
	uint32_t gen;
	ch_bus_fn fn;
	void *ctx;
};

struct ch_bus {
	struct ch_spsc *in;	/* ours -> journal */
	struct ch_spsc *out;	/* journal -> ours */
	int journal_efd;
	int efd;		/* the journal wakes us here */
	uint64_t efd_value;	/* the io_uring read's buffer */
	uint32_t incarnation;
	uint32_t next_seq;
	uint32_t oldest_seq;
	int dirty;		/* requests committed, not yet published */
	struct ch_bus_pending pending[CH_BUS_PENDING];
};

/* What a client is told for a status other than OK: one table for the
 * REST answers and the WebSocket error frames alike. */
struct ch_bus_error {
	int http;		/* the HTTP status */
	const char *code;	/* the error code of PROTOCOL.md */
	const char *message;
};
const struct ch_bus_error *ch_bus_error(uint32_t status);

/* Attach to worker index's rings and say hello to the journal. */
int ch_bus_init(struct ch_bus *bus, const struct ch_shm *shm, int index);

/*
 * Start a request: the payload writer gets a buffer in the ring to fill
 * (after the request id); ch_bus_send() then commits it. Returns -1 when
 * the ring or the pending table is full (answer 503).
 */
int ch_bus_begin(struct ch_bus *bus, struct ch_payload_writer *pw, uint32_t max_len);
int ch_bus_send(struct ch_bus *bus, uint32_t type, struct ch_payload_writer *pw,
		struct ch_worker *w, struct ch_conn *c, ch_bus_fn fn, void *ctx);

/* Commit a request begun with ch_bus_begin that has no reply (request
 * id 0). Returns -1 when the payload did not fit. */
int ch_bus_post(struct ch_bus *bus, uint32_t type, struct ch_payload_writer *pw);

/* End of a loop turn: publish what was committed and wake the journal. */
void ch_bus_flush(struct ch_bus *bus);

/* The eventfd fired: hand every reply to its callback, and every event
 * (request id 0, journal/proto.h's enum ch_bus_event) to ch_ws_event. */
void ch_bus_drain(struct ch_bus *bus, struct ch_worker *w);

/* Fail requests older than the timeout. */
void ch_bus_expire(struct ch_bus *bus, struct ch_worker *w, uint64_t now_ms);

#endif
