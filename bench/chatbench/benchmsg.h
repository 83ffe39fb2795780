/*
 * What chatbench reads and writes on the wire, apart from WebSocket framing
 * (client/wsc.h): the payload it puts in each message, a scanner for
 * chatd's JSON server frames, and an HTTP response splitter for the history
 * scenario. All pure functions over caller buffers, so they are unit-tested
 * (tests/unit/check_benchmsg.c) and cost no allocation per message.
 *
 * The payload is ASCII digits, dots and 'x' padding, so it needs no JSON
 * escaping and comes back in a msg frame byte for byte:
 *   "<sender>.<counter>.<round>.<ts>." then 'x' up to the asked size,
 * sender = the sender's index among its room's senders, counter = 1, 2, ...
 * per sender, round = the broadcast round (0 elsewhere), ts = the intended
 * send time in ns of CLOCK_MONOTONIC (one process, so every thread's clock
 * agrees).
 */
#ifndef CH_BENCHMSG_H
#define CH_BENCHMSG_H

#include <stddef.h>
#include <stdint.h>

#define CH_BENCH_PAYLOAD_MIN	64	/* room for four 20-digit fields and dots */

struct ch_bench_payload {
	uint32_t sender;
	uint64_t counter;
	uint32_t round;
	uint64_t ts;
};

/*
 * Writes the payload into out (cap bytes): the fields, then padding up to
 * size. Returns its length (max(size, the fields' length)), 0 when cap is
 * too small.
 */
size_t ch_bench_payload_make(char *out, size_t cap, size_t size, const struct ch_bench_payload *pl);
/* 0 and *pl filled, or -1 when p[0..len) is not a chatbench payload. */
int ch_bench_payload_parse(const char *p, size_t len, struct ch_bench_payload *pl);

/* Server frame types chatbench tells apart (PROTOCOL.md, "WebSocket"). */
enum ch_bench_ftype {
	CH_BENCH_F_OTHER,	/* any other type: presence, left, status ... */
	CH_BENCH_F_MSG,
	CH_BENCH_F_ACK,
	CH_BENCH_F_JOINED,
	CH_BENCH_F_ERROR,
	CH_BENCH_F_PONG,
	CH_BENCH_F_TRUNCATED
};

/* A scanned frame; strings point into the frame, still JSON-escaped. */
struct ch_bench_frame {
	enum ch_bench_ftype type;
	const char *room;
	size_t room_len;
	const char *content;
	size_t content_len;
	const char *code;	/* error frames */
	size_t code_len;
	uint64_t seq;		/* msg, ack; 0 if absent */
	uint64_t last_seq;	/* joined */
};

/*
 * Scans one JSON object (a server text frame): 0 with *f filled, -1 if it
 * is not a well-formed flat object (nested values are skipped, not read).
 */
int ch_bench_frame_scan(const char *json, size_t len, struct ch_bench_frame *f);

/*
 * One HTTP/1.1 response at the start of buf[0..len): 1 when it is complete
 * (*status, *total = head + body bytes), 0 when more bytes are needed, -1
 * when it is malformed or has no Content-Length (chatd always sends one).
 */
int ch_bench_http_response(const char *buf, size_t len, int *status, size_t *total);

#endif
