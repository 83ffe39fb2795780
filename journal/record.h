/*
 * Journal records: the unit of chatd's on-disk log, of replication, and of
 * recovery. This module only turns records into bytes and back; where the
 * bytes go is journal/segment.h.
 *
 * Layout (all integers little-endian):
 *
 *	off size field
 *	  0   4  len          bytes the record occupies: header + payload +
 *	                      padding, a multiple of 8, at most CH_RECORD_MAX
 *	  4   4  crc          CRC32C of bytes [8, 52 + payload_len)
 *	  8   2  type         enum ch_record_type
 *	 10   2  flags        none defined yet; written as 0
 *	 12   4  epoch        replication epoch of the writer (see EPOCH_BUMPED)
 *	 16   8  pos          log position: this record's byte offset in the
 *	                      whole log stream (which spans segment files)
 *	 24   4  room         numeric room id the journal assigned, 0 for none
 *	 28   4  author       numeric user id, 0 for the system
 *	 32   8  room_seq     the message's seq in its room, 0 when not a message
 *	 40   8  ts_ms        milliseconds since the Unix epoch
 *	 48   4  payload_len  bytes of payload
 *	 52   -  payload      type-specific, see enum ch_record_type
 *	  -   -  padding      0 to 7 zero bytes up to len
 *
 * Why this shape:
 * - Every record starts at a multiple of 8 in the log, so a scan that meets
 *   damage can step forward 8 bytes at a time looking for the next header
 *   whose pos equals its own offset and whose CRC checks; that is how
 *   recovery tells a torn tail from corruption in the middle.
 * - len sits before crc, outside the CRC, but decode checks that it equals
 *   the padded size of payload_len (which is inside), so no bit of a record
 *   can change without decode noticing. Padding must be zero for the same
 *   reason.
 * - pos inside the record makes a record copied to the wrong place (a stale
 *   block, a misdirected write, a replica at the wrong offset) fail to decode.
 *
 * Decode does not judge type or flags: a valid record of a type this build
 * does not know was written by a newer chatd, and must not be mistaken for
 * damage (recovery would cut it away). The journal refuses to start instead.
 */
#ifndef CH_RECORD_H
#define CH_RECORD_H

#include <stddef.h>
#include <stdint.h>

#define CH_RECORD_HDR_SIZE 52u		/* bytes before the payload */
#define CH_RECORD_ALIGN 8u		/* every record's len and pos are multiples */
#define CH_RECORD_MAX (1u << 20)	/* largest record, padding included: 1 MiB */
#define CH_RECORD_PAYLOAD_MAX (CH_RECORD_MAX - CH_RECORD_HDR_SIZE)
#define CH_RECORD_ANY_POS UINT64_MAX	/* decode: do not check pos */

/*
 * Record types. Values are on disk: never renumber, only add.
 * Payload notation: bytes = u32 length + that many bytes (the payload codec
 * below), u32/u64 = little-endian integers, in the order listed.
 */
enum ch_record_type {
	CH_REC_NONE = 0,		/* never written; a zeroed header has it */
	/* The payloads of the next five are laid out in journal/state.h,
	 * next to the code that applies them. */
	CH_REC_USER_CREATED = 1,	/* a user registered */
	CH_REC_PASSWORD_CHANGED = 2,	/* a user's hash replaced (an upgrade at login) */
	CH_REC_ROOM_CREATED = 3,	/* a room with its first participants */
	CH_REC_PARTICIPANTS_CHANGED = 4, /* participants added to a room */
	CH_REC_MESSAGE = 5,		/* a message; room, author, room_seq in the header */
	/* Reserved for uploads: a file was stored. Payload layout to be fixed
	 * by the uploads module (suggested: bytes file id, u64 size, bytes
	 * name, bytes content type, bytes storage key). */
	CH_REC_FILE_STORED = 6,
	/* An operator removed an uploaded file (chatadm rm-file). Payload:
	 * bytes file id. No state: the record is the audit trail, and a
	 * standby learns of the removal from it. */
	CH_REC_FILE_REMOVED = 7,
	/* Replication promotion: this node became primary. The header's epoch
	 * is the new epoch, and every later record carries it (or a later
	 * one), so an old primary coming back cannot append behind us.
	 * Payload: u32 previous epoch. */
	CH_REC_EPOCH_BUMPED = 8,
};

/* Name of a known type ("message", ...), or NULL for an unknown value. */
const char *ch_record_type_name(uint16_t type);

/*
 * A record's fields. For ch_record_encode() the caller fills everything but
 * len; payload/payload_len give the payload. ch_record_decode() fills all,
 * with payload and raw pointing into the decoded buffer (no copy): they are
 * valid as long as that buffer is.
 */
struct ch_record {
	uint32_t len;			/* bytes on disk, padding included */
	uint16_t type;			/* enum ch_record_type */
	uint16_t flags;
	uint32_t epoch;
	uint64_t pos;
	uint32_t room;
	uint32_t author;
	uint64_t room_seq;
	uint64_t ts_ms;
	uint32_t payload_len;
	const uint8_t *payload;
	const uint8_t *raw;		/* decode: the whole record, len bytes */
};

/* Why some bytes are not a valid record. */
enum ch_record_status {
	CH_REC_OK = 0,
	CH_REC_TRUNCATED,	/* the buffer ends before the record does */
	CH_REC_BAD_LENGTH,	/* len below the header, not a multiple of 8, or
				 * not the padded size of payload_len */
	CH_REC_TOO_LARGE,	/* len over CH_RECORD_MAX */
	CH_REC_BAD_POS,		/* pos is not the position expected */
	CH_REC_BAD_CRC,		/* checksum mismatch */
	CH_REC_BAD_PADDING,	/* padding bytes are not zero */
};

const char *ch_record_status_name(enum ch_record_status st);

/* Bytes a record with payload_len bytes of payload occupies. */
static inline size_t ch_record_size(size_t payload_len)
{
	return (CH_RECORD_HDR_SIZE + payload_len + CH_RECORD_ALIGN - 1) &
	       ~(size_t)(CH_RECORD_ALIGN - 1);
}

/*
 * Encode rec into buf[0..cap). Returns the bytes written (the record's len,
 * a multiple of 8), or 0 when the payload is over CH_RECORD_PAYLOAD_MAX or
 * the record does not fit in cap (nothing past cap is touched).
 *
 * rec->payload may already sit at buf + CH_RECORD_HDR_SIZE (built there
 * with a ch_payload_writer), which saves a copy; it must not overlap the
 * header otherwise.
 */
size_t ch_record_encode(void *buf, size_t cap, const struct ch_record *rec);

/*
 * Check and decode the record at the start of buf, of which avail bytes are
 * readable. expect_pos is the log position the record must carry
 * (CH_RECORD_ANY_POS to skip the check). On CH_REC_OK, *out is filled and
 * points into buf. On CH_REC_TRUNCATED, out->len is the length the record
 * claims (0 when fewer than 4 bytes were given), so a reader knows how much
 * to read before trying again. On other statuses *out is unspecified.
 */
enum ch_record_status ch_record_decode(const void *buf, size_t avail,
				       uint64_t expect_pos, struct ch_record *out);

/*
 * ch_record_decode() for bytes that already passed it in this process
 * (e.g. a replicated batch checked whole before it was appended): the
 * framing and pos are checked again, the CRC and padding are not.
 */
enum ch_record_status ch_record_decode_checked(const void *buf, size_t avail,
					       uint64_t expect_pos, struct ch_record *out);

/*
 * The same checks as ch_record_decode() minus the CRC and the padding:
 * framing (len, payload_len) and pos. Fills out->len, payload_len and pos.
 * For checking a batch's framing cheaply (the writer does, before it
 * appends); never a substitute for decode when reading.
 */
enum ch_record_status ch_record_check_header(const void *buf, size_t avail,
					     uint64_t expect_pos,
					     struct ch_record *out);

/*
 * Payload codec: a sequence of u32, u64 and length-prefixed byte strings.
 * Errors are sticky: after the first overflow or short read every later
 * call does nothing (gets return 0 / NULL), so a caller makes its calls and
 * checks once at the end.
 */
struct ch_payload_writer {
	uint8_t *buf;
	size_t cap;
	size_t len;
	int failed;		/* 1 once something did not fit */
};

struct ch_payload_reader {
	const uint8_t *buf;
	size_t len;
	size_t off;
	int failed;		/* 1 once a read went past the end */
};

void ch_payload_writer_init(struct ch_payload_writer *w, void *buf, size_t cap);
void ch_payload_put_u32(struct ch_payload_writer *w, uint32_t v);
void ch_payload_put_u64(struct ch_payload_writer *w, uint64_t v);
/* u32 length, then the n bytes. */
void ch_payload_put_bytes(struct ch_payload_writer *w, const void *p, size_t n);
void ch_payload_put_str(struct ch_payload_writer *w, const char *s);
/* 0 and *len = bytes written, or -1 if anything did not fit. */
int ch_payload_writer_finish(const struct ch_payload_writer *w, size_t *len);

void ch_payload_reader_init(struct ch_payload_reader *r, const void *buf, size_t len);
uint32_t ch_payload_get_u32(struct ch_payload_reader *r);
uint64_t ch_payload_get_u64(struct ch_payload_reader *r);
/* A byte string: a pointer into the payload (not NUL-terminated) and its
 * length in *n; NULL and *n = 0 on error. An empty string is a valid
 * non-NULL pointer with *n = 0. */
const uint8_t *ch_payload_get_bytes(struct ch_payload_reader *r, size_t *n);
/* A byte string copied into dst as a C string. Fails (returns -1, sticky)
 * when it does not fit in cap with its NUL or contains a NUL byte. */
int ch_payload_get_str(struct ch_payload_reader *r, char *dst, size_t cap);
/* 0 when every read succeeded and the payload was consumed exactly; -1 on
 * a failed read or trailing bytes. */
int ch_payload_reader_finish(const struct ch_payload_reader *r);

#endif
