/*
 * Journal records: see record.h for the layout and why it is so.
 *
 * Invariant: ch_record_decode() returns CH_REC_OK only when every byte of
 * the record's len is accounted for: len by the payload_len cross-check,
 * bytes 8..52+payload_len by the CRC, the padding by the zero check.
 */
#include "journal/record.h"

#include <endian.h>
#include <string.h>

#include "common/crc32c.h"

/* Field offsets; see the table in record.h. */
#define OFF_LEN 0
#define OFF_CRC 4
#define OFF_TYPE 8
#define OFF_FLAGS 10
#define OFF_EPOCH 12
#define OFF_POS 16
#define OFF_ROOM 24
#define OFF_AUTHOR 28
#define OFF_ROOM_SEQ 32
#define OFF_TS 40
#define OFF_PAYLOAD_LEN 48
#define CRC_START 8		/* the CRC covers from here ... */
				/* ... to the end of the payload */

_Static_assert(OFF_PAYLOAD_LEN + 4 == CH_RECORD_HDR_SIZE, "header layout");
_Static_assert(CH_RECORD_MAX % CH_RECORD_ALIGN == 0, "max is aligned");

static const char *const type_names[] = {
	[CH_REC_USER_CREATED] = "user_created",
	[CH_REC_PASSWORD_CHANGED] = "password_changed",
	[CH_REC_ROOM_CREATED] = "room_created",
	[CH_REC_PARTICIPANTS_CHANGED] = "participants_changed",
	[CH_REC_MESSAGE] = "message",
	[CH_REC_FILE_STORED] = "file_stored",
	[CH_REC_FILE_REMOVED] = "file_removed",
	[CH_REC_EPOCH_BUMPED] = "epoch_bumped",
};

static const char *const status_names[] = {
	[CH_REC_OK] = "ok",
	[CH_REC_TRUNCATED] = "truncated record",
	[CH_REC_BAD_LENGTH] = "bad length",
	[CH_REC_TOO_LARGE] = "record too large",
	[CH_REC_BAD_POS] = "wrong log position",
	[CH_REC_BAD_CRC] = "checksum mismatch",
	[CH_REC_BAD_PADDING] = "non-zero padding",
};

const char *ch_record_type_name(uint16_t type)
{
	if (type >= sizeof(type_names) / sizeof(type_names[0]))
		return NULL;
	return type_names[type];
}

const char *ch_record_status_name(enum ch_record_status st)
{
	if ((unsigned)st >= sizeof(status_names) / sizeof(status_names[0]))
		return "unknown status";
	return status_names[st];
}

/* Little-endian stores and loads at any alignment. */
static inline void put16(uint8_t *p, uint16_t v) { v = htole16(v); memcpy(p, &v, 2); }
static inline void put32(uint8_t *p, uint32_t v) { v = htole32(v); memcpy(p, &v, 4); }
static inline void put64(uint8_t *p, uint64_t v) { v = htole64(v); memcpy(p, &v, 8); }
static inline uint16_t get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return le16toh(v); }
static inline uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return le32toh(v); }
static inline uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return le64toh(v); }

size_t ch_record_encode(void *buf, size_t cap, const struct ch_record *rec)
{
	uint8_t *b = buf;
	size_t len, end;

	if (rec->payload_len > CH_RECORD_PAYLOAD_MAX)
		return 0;
	len = ch_record_size(rec->payload_len);
	if (len > cap)
		return 0;
	end = CH_RECORD_HDR_SIZE + rec->payload_len;
	/* memmove: the payload may already be in place (see record.h). */
	if (rec->payload_len > 0 && rec->payload != b + CH_RECORD_HDR_SIZE)
		memmove(b + CH_RECORD_HDR_SIZE, rec->payload, rec->payload_len);
	memset(b + end, 0, len - end);

	put32(b + OFF_LEN, (uint32_t)len);
	put16(b + OFF_TYPE, rec->type);
	put16(b + OFF_FLAGS, rec->flags);
	put32(b + OFF_EPOCH, rec->epoch);
	put64(b + OFF_POS, rec->pos);
	put32(b + OFF_ROOM, rec->room);
	put32(b + OFF_AUTHOR, rec->author);
	put64(b + OFF_ROOM_SEQ, rec->room_seq);
	put64(b + OFF_TS, rec->ts_ms);
	put32(b + OFF_PAYLOAD_LEN, rec->payload_len);
	put32(b + OFF_CRC, ch_crc32c(0, b + CRC_START, end - CRC_START));
	return len;
}

/*
 * The checks that need only the header; cheap, so done before the CRC.
 * pos is checked before "is the whole record here": recovery's forward
 * search tries a candidate at every 8 bytes, and a wrong pos rejects
 * garbage without reading the (garbage) length's worth of bytes.
 */
enum ch_record_status ch_record_check_header(const void *buf, size_t avail,
					     uint64_t expect_pos,
					     struct ch_record *out)
{
	const uint8_t *b = buf;
	uint32_t len;

	out->len = 0;
	if (avail < sizeof(uint32_t))
		return CH_REC_TRUNCATED;
	len = get32(b + OFF_LEN);
	out->len = len;
	if (len < CH_RECORD_HDR_SIZE || len % CH_RECORD_ALIGN != 0)
		return CH_REC_BAD_LENGTH;
	if (len > CH_RECORD_MAX)
		return CH_REC_TOO_LARGE;
	if (avail < CH_RECORD_HDR_SIZE)
		return CH_REC_TRUNCATED;
	out->payload_len = get32(b + OFF_PAYLOAD_LEN);
	if (out->payload_len > CH_RECORD_PAYLOAD_MAX ||
	    ch_record_size(out->payload_len) != len)
		return CH_REC_BAD_LENGTH;
	out->pos = get64(b + OFF_POS);
	if (expect_pos != CH_RECORD_ANY_POS && out->pos != expect_pos)
		return CH_REC_BAD_POS;
	if (avail < len)
		return CH_REC_TRUNCATED;
	return CH_REC_OK;
}

static void fill_fields(const uint8_t *b, struct ch_record *out);

enum ch_record_status ch_record_decode(const void *buf, size_t avail,
				       uint64_t expect_pos, struct ch_record *out)
{
	const uint8_t *b = buf;
	enum ch_record_status st = ch_record_check_header(b, avail, expect_pos, out);
	size_t end;

	if (st != CH_REC_OK)
		return st;
	end = CH_RECORD_HDR_SIZE + out->payload_len;
	if (ch_crc32c(0, b + CRC_START, end - CRC_START) != get32(b + OFF_CRC))
		return CH_REC_BAD_CRC;
	for (size_t i = end; i < out->len; i++) {
		if (b[i] != 0)
			return CH_REC_BAD_PADDING;
	}
	fill_fields(b, out);
	return CH_REC_OK;
}

enum ch_record_status ch_record_decode_checked(const void *buf, size_t avail,
					       uint64_t expect_pos, struct ch_record *out)
{
	enum ch_record_status st = ch_record_check_header(buf, avail, expect_pos, out);

	if (st == CH_REC_OK)
		fill_fields(buf, out);
	return st;
}

/* The fields past the framing, once the record is known good. */
static void fill_fields(const uint8_t *b, struct ch_record *out)
{
	out->type = get16(b + OFF_TYPE);
	out->flags = get16(b + OFF_FLAGS);
	out->epoch = get32(b + OFF_EPOCH);
	out->room = get32(b + OFF_ROOM);
	out->author = get32(b + OFF_AUTHOR);
	out->room_seq = get64(b + OFF_ROOM_SEQ);
	out->ts_ms = get64(b + OFF_TS);
	out->payload = b + CH_RECORD_HDR_SIZE;
	out->raw = b;
}

/* ---- payload codec ---------------------------------------------------- */

void ch_payload_writer_init(struct ch_payload_writer *w, void *buf, size_t cap)
{
	w->buf = buf;
	w->cap = cap;
	w->len = 0;
	w->failed = 0;
}

/* Room for n more bytes? Marks the writer failed if not. */
static int writer_room(struct ch_payload_writer *w, size_t n)
{
	if (w->failed || w->cap - w->len < n) {
		w->failed = 1;
		return 0;
	}
	return 1;
}

void ch_payload_put_u32(struct ch_payload_writer *w, uint32_t v)
{
	if (!writer_room(w, sizeof(v)))
		return;
	put32(w->buf + w->len, v);
	w->len += sizeof(v);
}

void ch_payload_put_u64(struct ch_payload_writer *w, uint64_t v)
{
	if (!writer_room(w, sizeof(v)))
		return;
	put64(w->buf + w->len, v);
	w->len += sizeof(v);
}

void ch_payload_put_bytes(struct ch_payload_writer *w, const void *p, size_t n)
{
	if (n > UINT32_MAX || !writer_room(w, sizeof(uint32_t)) ||
	    w->cap - w->len - sizeof(uint32_t) < n) {
		w->failed = 1;
		return;
	}
	put32(w->buf + w->len, (uint32_t)n);
	if (n > 0)
		memcpy(w->buf + w->len + sizeof(uint32_t), p, n);
	w->len += sizeof(uint32_t) + n;
}

void ch_payload_put_str(struct ch_payload_writer *w, const char *s)
{
	ch_payload_put_bytes(w, s, strlen(s));
}

int ch_payload_writer_finish(const struct ch_payload_writer *w, size_t *len)
{
	if (w->failed)
		return -1;
	*len = w->len;
	return 0;
}

void ch_payload_reader_init(struct ch_payload_reader *r, const void *buf, size_t len)
{
	r->buf = buf;
	r->len = len;
	r->off = 0;
	r->failed = 0;
}

/* n more bytes to read? Marks the reader failed if not. */
static int reader_has(struct ch_payload_reader *r, size_t n)
{
	if (r->failed || r->len - r->off < n) {
		r->failed = 1;
		return 0;
	}
	return 1;
}

uint32_t ch_payload_get_u32(struct ch_payload_reader *r)
{
	uint32_t v;

	if (!reader_has(r, sizeof(v)))
		return 0;
	v = get32(r->buf + r->off);
	r->off += sizeof(v);
	return v;
}

uint64_t ch_payload_get_u64(struct ch_payload_reader *r)
{
	uint64_t v;

	if (!reader_has(r, sizeof(v)))
		return 0;
	v = get64(r->buf + r->off);
	r->off += sizeof(v);
	return v;
}

const uint8_t *ch_payload_get_bytes(struct ch_payload_reader *r, size_t *n)
{
	const uint8_t *p;
	uint32_t len;

	*n = 0;
	if (!reader_has(r, sizeof(len)))
		return NULL;
	len = get32(r->buf + r->off);
	if (r->len - r->off - sizeof(len) < len) {
		r->failed = 1;
		return NULL;
	}
	p = r->buf + r->off + sizeof(len);
	r->off += sizeof(len) + len;
	*n = len;
	return p;
}

int ch_payload_get_str(struct ch_payload_reader *r, char *dst, size_t cap)
{
	size_t n;
	const uint8_t *p = ch_payload_get_bytes(r, &n);

	if (p == NULL || n >= cap || memchr(p, '\0', n) != NULL) {
		r->failed = 1;
		if (cap > 0)
			dst[0] = '\0';
		return -1;
	}
	memcpy(dst, p, n);
	dst[n] = '\0';
	return 0;
}

int ch_payload_reader_finish(const struct ch_payload_reader *r)
{
	return r->failed || r->off != r->len ? -1 : 0;
}
