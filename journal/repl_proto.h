/*
 * The replication wire protocol between a primary and its standby: message
 * framing, the message bodies, and the HMAC challenge. Pure functions on
 * buffers (no sockets, no state), so the codec is tested on its own
 * (tests/unit/check_repl_proto.c); journal/repl.c, repl_primary.c and repl_standby.c drive the connection.
 *
 * A message is an 8-byte header, then body_len bytes of body:
 *
 *	off size field
 *	  0   4  body_len     bytes after the header, at most CH_REPL_MSG_MAX
 *	  4   2  type         enum ch_repl_msg_type
 *	  6   2  reserved     0 (a non-zero value is refused: a newer peer
 *	                      would bump CH_REPL_VERSION instead)
 *
 * Bodies use the payload codec of journal/record.h (little-endian u32/u64,
 * u32-length-prefixed byte strings), except RECORDS, whose two u64 are
 * followed by whole encoded records exactly as they lie in the log, so the
 * standby appends them without re-encoding and its log is the same bytes.
 *
 * A connection: both sides send HELLO at once. With a secret configured,
 * each then sends AUTH, the HMAC-SHA256 (keyed by the secret) of the
 * other's nonce and its own role, and checks the AUTH it gets; a side
 * configured with a secret accepts nothing else before a good AUTH. Then
 * the primary sends START (where streaming begins: the standby first cuts
 * its log there if it holds more, see journal/repl.h on fencing), then
 * RECORDS as the log grows (an empty one is a heartbeat), and the standby
 * answers ACK with what it holds and what is durable. ERROR carries a
 * reason for people before either side closes.
 */
#ifndef CH_REPL_PROTO_H
#define CH_REPL_PROTO_H

#include "common/buf.h"

#include <stddef.h>
#include <stdint.h>

#define CH_REPL_MAGIC 0x50524843u	/* "CHRP" */
#define CH_REPL_VERSION 1u
#define CH_REPL_HDR_SIZE 8u
#define CH_REPL_MSG_MAX (8u << 20)	/* a RECORDS body: batch + one record */
#define CH_REPL_NONCE_SIZE 32u
#define CH_REPL_MAC_SIZE 32u		/* HMAC-SHA256 */
#define CH_REPL_ERROR_MAX 256u		/* ERROR text, bytes */
#define CH_REPL_RECORDS_HDR 16u		/* RECORDS: u64 end, u64 ms */

enum ch_repl_msg_type {
	CH_REPL_HELLO = 1,	/* who I am and what I hold; struct ch_repl_hello */
	CH_REPL_AUTH = 2,	/* bytes mac: HMAC(secret, peer nonce || my role) */
	CH_REPL_START = 3,	/* primary: u64 from, u32 epoch */
	CH_REPL_RECORDS = 4,	/* primary: u64 log end, u64 ms now, records */
	CH_REPL_ACK = 5,	/* standby: u64 received end, u64 durable end */
	CH_REPL_ERROR = 6,	/* str reason, then the sender closes */
};

/* HELLO flags */
#define CH_REPL_HELLO_AUTH 1u	/* the sender wants an AUTH from us */

struct ch_repl_hello {
	uint32_t role;		/* enum ch_repl_role of master/config.h */
	uint32_t epoch;		/* the sender's current epoch */
	uint64_t end;		/* the sender's log end */
	uint32_t last_epoch;	/* epoch of the sender's last record (0: empty log) */
	uint32_t flags;		/* CH_REPL_HELLO_* */
	uint8_t nonce[CH_REPL_NONCE_SIZE];
};

/* One framed message, pointing into the buffer it was cut from. */
struct ch_repl_msg {
	uint16_t type;
	uint32_t len;		/* body bytes */
	const uint8_t *body;
};

/*
 * Cut the message at the start of buf (avail bytes readable). Returns the
 * bytes it occupies (header + body) and fills *m; 0 when more bytes are
 * needed; -EBADMSG for a header no peer of ours sends (body over
 * CH_REPL_MSG_MAX, reserved bits set): the connection must be dropped.
 */
long ch_repl_msg_cut(const void *buf, size_t avail, struct ch_repl_msg *m);

/* Appenders: each adds one whole message to out (out->failed on ENOMEM). */
void ch_repl_put_hello(struct ch_buf *out, const struct ch_repl_hello *h);
void ch_repl_put_auth(struct ch_buf *out, const uint8_t mac[CH_REPL_MAC_SIZE]);
void ch_repl_put_start(struct ch_buf *out, uint64_t from, uint32_t epoch);
void ch_repl_put_ack(struct ch_buf *out, uint64_t received, uint64_t durable);
void ch_repl_put_error(struct ch_buf *out, const char *reason);
/* RECORDS: the header and the two u64; the caller appends records_len
 * bytes of records right after (so they can be read straight into out). */
void ch_repl_put_records_head(struct ch_buf *out, uint64_t end, uint64_t ms,
			      size_t records_len);
/* Rewrite the body length of the RECORDS head put at out->p + head_off
 * once the records that follow it are known (records_len bytes). */
void ch_repl_set_records_len(struct ch_buf *out, size_t head_off, size_t records_len);

/* Body decoders: 0, or -EBADMSG when the body is not of that shape. */
int ch_repl_get_hello(const struct ch_repl_msg *m, struct ch_repl_hello *h);
int ch_repl_get_auth(const struct ch_repl_msg *m, uint8_t mac[CH_REPL_MAC_SIZE]);
int ch_repl_get_start(const struct ch_repl_msg *m, uint64_t *from, uint32_t *epoch);
int ch_repl_get_ack(const struct ch_repl_msg *m, uint64_t *received, uint64_t *durable);
/* Copies the reason as a C string, cut to fit cap. */
int ch_repl_get_error(const struct ch_repl_msg *m, char *reason, size_t cap);
/* The records of a RECORDS body: *recs, *len point into the body. */
int ch_repl_get_records(const struct ch_repl_msg *m, uint64_t *end, uint64_t *ms,
			const uint8_t **recs, size_t *len);

/* The MAC a side with role `role` sends for the peer's nonce: 0, or -1
 * when the HMAC could not be computed (the caller refuses the peer). */
int ch_repl_mac(const void *secret, size_t secret_len,
		 const uint8_t nonce[CH_REPL_NONCE_SIZE], uint32_t role,
		 uint8_t mac[CH_REPL_MAC_SIZE]);

/* Constant-time comparison of two MACs: 1 when equal. */
int ch_repl_mac_equal(const uint8_t a[CH_REPL_MAC_SIZE], const uint8_t b[CH_REPL_MAC_SIZE]);

#endif
