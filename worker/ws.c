/*
 * WebSocket handshake, frame parser and frame writers: see ws.h.
 *
 * Invariants of struct ch_ws_parser:
 * - Every read is inside the caller's in[0..len); the header is copied into
 *   hdr (at most CH_WS_MAX_CLIENT_HEADER bytes) and each check runs only
 *   once hdr holds the bytes it needs, so a header split at any byte is
 *   checked exactly as a whole one: the checks run at the same byte of the
 *   stream, in the same order, whatever the split.
 * - Only unmasking writes to in: with masked == 0 (a parser of server
 *   frames) in is never written, which is what lets ch_ws_parse_const
 *   hand read-only input to the same code. The side is one flag tested per
 *   header and per copy, so the server's path keeps its in-place unmasking
 *   and gains no copy.
 * - msg_len <= max_message at all times: a data frame is refused from its
 *   header when msg_len + frame_len would pass it, so the buffer never
 *   grows past max_message and never needs a length check while copying.
 * - msg_opcode != 0 exactly while a data message has begun and its final
 *   frame has not ended; msg_len counts only that message's bytes (0 once
 *   it is delivered). buf may outlive the message, because its bytes back
 *   the event, but is freed by the first call that returns NONE with no
 *   message open, and at once on an error or a close.
 * - One call delivers at most one event, and it is the last thing the call
 *   does, so the event's bytes stay put until the next call.
 */
#include "worker/ws.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum ch_ws_pstate {
	CH_WS_P_HEADER,		/* filling hdr */
	CH_WS_P_PAYLOAD,	/* reading frame_len payload bytes */
	CH_WS_P_CLOSED,		/* the peer's close was delivered; ignore the rest */
	CH_WS_P_ERROR,		/* err_code/err_text, repeated forever */
};

/* Header bit fields (RFC 6455 5.2). */
#define CH_WS_CONTROL_BIT	0x08	/* opcodes 8-F are control frames */
#define CH_WS_MASK_BIT		0x80	/* second byte: a masking key follows */
#define CH_WS_LEN7_BITS		0x7F
#define CH_WS_LEN_16		126	/* 7-bit length value: 16-bit length follows */
#define CH_WS_LEN_64		127	/* 7-bit length value: 64-bit length follows */
#define CH_WS_LEN16_MAX		0xFFFFu
#define CH_WS_LEN64_TOP		(1ull << 63)
#define CH_WS_BASE_HEADER	2

/* A UTF-8 continuation byte is 10xxxxxx. */
#define CH_WS_UTF8_TAIL_BITS	0xC0
#define CH_WS_UTF8_TAIL		0x80

/* First size of a message buffer; it doubles from there. */
#define CH_WS_BUF_MIN		256

/* Sec-WebSocket-Key: 16 bytes in base64 are 22 characters and "==". */
#define CH_WS_KEY_B64_LEN	24
#define CH_WS_KEY_B64_DATA	22
#define CH_WS_SHA1_LEN		20

/* Where a zero-length payload points: never NULL, never written. */
static uint8_t ch_ws_empty[1];

/* ------------------------------------------------------------------------
 * Handshake
 * ---------------------------------------------------------------------- */

int ch_ws_accept_key(const char *client_key, size_t len, char out[CH_WS_ACCEPT_LEN + 1])
{
	unsigned char buf[CH_WS_MAX_KEY + sizeof(CH_WS_GUID)];
	unsigned char digest[CH_WS_SHA1_LEN];

	if (len > CH_WS_MAX_KEY)
		return -1;
	memcpy(buf, client_key, len);
	memcpy(buf + len, CH_WS_GUID, sizeof(CH_WS_GUID) - 1);
	SHA1(buf, len + sizeof(CH_WS_GUID) - 1, digest);
	/* Writes 28 characters and a NUL. */
	EVP_EncodeBlock((unsigned char *)out, digest, CH_WS_SHA1_LEN);
	return 0;
}

static unsigned char ch_ws_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* ASCII case-insensitive equality of p[0..n) and the C string s. */
static bool ch_ws_ieq(const char *p, size_t n, const char *s)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (s[i] == '\0' || ch_ws_lower((unsigned char)p[i]) != ch_ws_lower((unsigned char)s[i]))
			return false;
	}
	return s[n] == '\0';
}

static bool ch_ws_is_ows(char c)
{
	return c == ' ' || c == '\t';
}

bool ch_ws_has_token(const char *v, size_t n, const char *token)
{
	size_t i = 0;

	if (v == NULL)
		return false;
	while (i < n) {
		size_t start, end;

		while (i < n && ch_ws_is_ows(v[i]))
			i++;
		start = i;
		while (i < n && v[i] != ',')
			i++;
		end = i;
		while (end > start && ch_ws_is_ows(v[end - 1]))
			end--;
		if (ch_ws_ieq(v + start, end - start, token))
			return true;
		i++;	/* the comma */
	}
	return false;
}

static bool ch_ws_is_b64(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '+' || c == '/';
}

static bool ch_ws_key_ok(const char *k, size_t n)
{
	size_t i;

	if (k == NULL || n != CH_WS_KEY_B64_LEN)
		return false;
	for (i = 0; i < CH_WS_KEY_B64_DATA; i++) {
		if (!ch_ws_is_b64(k[i]))
			return false;
	}
	return k[CH_WS_KEY_B64_DATA] == '=' && k[CH_WS_KEY_B64_DATA + 1] == '=';
}

int ch_ws_check_upgrade(const struct ch_ws_upgrade *u, const char **reason)
{
	/* Methods are case-sensitive (RFC 9110 9.1). */
	if (u->method == NULL || u->method_len != sizeof("GET") - 1 ||
	    memcmp(u->method, "GET", u->method_len) != 0) {
		*reason = "a WebSocket handshake must be a GET";
		return 400;
	}
	if (u->http_minor < 1) {
		*reason = "a WebSocket handshake needs HTTP/1.1";
		return 400;
	}
	if (!ch_ws_has_token(u->upgrade, u->upgrade_len, "websocket")) {
		*reason = "Upgrade: websocket is missing";
		return 400;
	}
	if (!ch_ws_has_token(u->connection, u->connection_len, "upgrade")) {
		*reason = "Connection: Upgrade is missing";
		return 400;
	}
	if (u->version == NULL) {
		*reason = "Sec-WebSocket-Version is missing";
		return 400;
	}
	if (!ch_ws_ieq(u->version, u->version_len, "13")) {
		*reason = "only WebSocket version 13 is supported";
		return 426;
	}
	if (!ch_ws_key_ok(u->key, u->key_len)) {
		*reason = "Sec-WebSocket-Key is missing or not 16 bytes in base64";
		return 400;
	}
	return 0;
}

int ch_ws_format_101(char *out, size_t outlen, const char *client_key, size_t key_len)
{
	char accept[CH_WS_ACCEPT_LEN + 1];
	int n;

	if (ch_ws_accept_key(client_key, key_len, accept) < 0)
		return -1;
	n = snprintf(out, outlen,
		     "HTTP/1.1 101 Switching Protocols\r\n"
		     "Upgrade: websocket\r\n"
		     "Connection: Upgrade\r\n"
		     "Sec-WebSocket-Accept: %s\r\n"
		     "\r\n", accept);
	if (n < 0 || (size_t)n >= outlen)
		return -1;
	return n;
}

/* ------------------------------------------------------------------------
 * Masking
 * ---------------------------------------------------------------------- */

#define CH_WS_WORD 8

void ch_ws_mask(uint8_t *dst, const uint8_t *src, size_t n,
		const uint8_t key[CH_WS_MASK_LEN], uint64_t offset)
{
	uint8_t k[CH_WS_WORD];
	uint64_t kw;
	size_t i;

	/* The key rotated to the offset, twice: one XOR per 8 payload bytes. */
	for (i = 0; i < CH_WS_WORD; i++)
		k[i] = key[(offset + i) % CH_WS_MASK_LEN];
	memcpy(&kw, k, sizeof(kw));
	for (i = 0; n - i >= CH_WS_WORD; i += CH_WS_WORD) {
		uint64_t w;

		memcpy(&w, src + i, sizeof(w));
		w ^= kw;
		memcpy(dst + i, &w, sizeof(w));
	}
	for (; i < n; i++)
		dst[i] = src[i] ^ k[i % CH_WS_MASK_LEN];
}

/* ------------------------------------------------------------------------
 * Parser
 * ---------------------------------------------------------------------- */

void ch_ws_parser_init_peer(struct ch_ws_parser *p, size_t max_message, enum ch_ws_peer peer)
{
	memset(p, 0, sizeof(*p));
	p->max_message = max_message < CH_WS_MAX_MESSAGE_LIMIT ? max_message : CH_WS_MAX_MESSAGE_LIMIT;
	p->state = CH_WS_P_HEADER;
	p->masked = peer == CH_WS_PEER_CLIENT;
	p->hdr_need = CH_WS_BASE_HEADER;
}

void ch_ws_parser_init(struct ch_ws_parser *p, size_t max_message)
{
	ch_ws_parser_init_peer(p, max_message, CH_WS_PEER_CLIENT);
}

static void ch_ws_release(struct ch_ws_parser *p)
{
	free(p->buf);
	p->buf = NULL;
	p->cap = 0;
}

void ch_ws_parser_free(struct ch_ws_parser *p)
{
	ch_ws_release(p);
}

size_t ch_ws_parser_mem(const struct ch_ws_parser *p)
{
	return p->cap;
}

static bool ch_ws_is_control(uint8_t opcode)
{
	return (opcode & CH_WS_CONTROL_BIT) != 0;
}

static bool ch_ws_known_opcode(uint8_t opcode)
{
	switch (opcode) {
	case CH_WS_OP_CONT:
	case CH_WS_OP_TEXT:
	case CH_WS_OP_BINARY:
	case CH_WS_OP_CLOSE:
	case CH_WS_OP_PING:
	case CH_WS_OP_PONG:
		return true;
	default:
		return false;
	}
}

/* RFC 6455 7.4.1/7.4.2 plus IANA's 1012-1014; 1004-1006 and 1015 are never sent. */
static bool ch_ws_close_code_ok(unsigned code)
{
	return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
	       (code >= 3000 && code <= 4999);
}

static void ch_ws_error_event(const struct ch_ws_parser *p, struct ch_ws_event *ev)
{
	ev->type = CH_WS_EV_ERROR;
	ev->data = ch_ws_empty;
	ev->len = 0;
	ev->code = p->err_code;
	ev->error = p->err_text;
}

/* Enter the error state; returns -1 for the callers' convenience. */
static int ch_ws_fail(struct ch_ws_parser *p, uint16_t code, const char *text)
{
	p->state = CH_WS_P_ERROR;
	p->err_code = code;
	p->err_text = text;
	ch_ws_release(p);
	return -1;
}

/* Checks that need only the first two header bytes; they fail fast. */
static int ch_ws_check_base(struct ch_ws_parser *p)
{
	uint8_t b0 = p->hdr[0], b1 = p->hdr[1];
	uint8_t op = b0 & CH_WS_OPCODE_BITS;

	if (b0 & CH_WS_RSV_MASK)
		return ch_ws_fail(p, CH_WS_CLOSE_PROTOCOL, "reserved bit set with no extension");
	if (!ch_ws_known_opcode(op))
		return ch_ws_fail(p, CH_WS_CLOSE_PROTOCOL, "unknown opcode");
	if (p->masked && !(b1 & CH_WS_MASK_BIT))
		return ch_ws_fail(p, CH_WS_CLOSE_PROTOCOL, "client frame not masked");
	if (!p->masked && (b1 & CH_WS_MASK_BIT))
		return ch_ws_fail(p, CH_WS_CLOSE_PROTOCOL, "masked server frame");
	if (ch_ws_is_control(op)) {
		if (!(b0 & CH_WS_FIN))
			return ch_ws_fail(p, CH_WS_CLOSE_PROTOCOL, "fragmented control frame");
		if ((b1 & CH_WS_LEN7_BITS) > CH_WS_MAX_CONTROL_PAYLOAD)
			return ch_ws_fail(p, CH_WS_CLOSE_PROTOCOL, "control frame over 125 bytes");
	} else if (op == CH_WS_OP_CONT && p->msg_opcode == 0) {
		return ch_ws_fail(p, CH_WS_CLOSE_PROTOCOL, "continuation with no message begun");
	} else if (op != CH_WS_OP_CONT && p->msg_opcode != 0) {
		return ch_ws_fail(p, CH_WS_CLOSE_PROTOCOL, "new message inside a fragmented one");
	}
	return 0;
}

static size_t ch_ws_ext_len(uint8_t b1)
{
	switch (b1 & CH_WS_LEN7_BITS) {
	case CH_WS_LEN_16:
		return 2;
	case CH_WS_LEN_64:
		return 8;
	default:
		return 0;
	}
}

/* Once the length is known: refuse what is too long before any payload. */
static int ch_ws_check_length(struct ch_ws_parser *p)
{
	uint8_t len7 = p->hdr[1] & CH_WS_LEN7_BITS, op;
	uint64_t n = len7;
	size_t i, so_far;

	if (len7 == CH_WS_LEN_16 || len7 == CH_WS_LEN_64) {
		n = 0;
		for (i = 0; i < ch_ws_ext_len(p->hdr[1]); i++)
			n = (n << 8) | p->hdr[CH_WS_BASE_HEADER + i];
	}
	if (n & CH_WS_LEN64_TOP)
		return ch_ws_fail(p, CH_WS_CLOSE_PROTOCOL, "64-bit length with its top bit set");
	/* msg_len <= max_message always, so the subtraction cannot wrap. */
	op = p->hdr[0] & CH_WS_OPCODE_BITS;
	so_far = op == CH_WS_OP_CONT ? p->msg_len : 0;
	if (!ch_ws_is_control(op) && n > p->max_message - so_far)
		return ch_ws_fail(p, CH_WS_CLOSE_TOO_BIG, "message over the size limit");
	p->frame_len = n;
	return 0;
}

/* The whole header is in hdr: set up the frame (and a new message). */
static void ch_ws_begin_frame(struct ch_ws_parser *p)
{
	uint8_t op = p->hdr[0] & CH_WS_OPCODE_BITS;

	p->opcode = op;
	p->fin = (p->hdr[0] & CH_WS_FIN) != 0;
	if (p->masked)
		memcpy(p->mask, p->hdr + p->hdr_len - CH_WS_MASK_LEN, CH_WS_MASK_LEN);
	p->frame_done = 0;
	if (op == CH_WS_OP_TEXT || op == CH_WS_OP_BINARY) {
		p->msg_opcode = op;
		p->msg_len = 0;
		ch_utf8_init(&p->utf8);
	}
	p->hdr_len = 0;
	p->hdr_need = CH_WS_BASE_HEADER;
	p->state = CH_WS_P_PAYLOAD;
}

/*
 * hdr holds hdr_need bytes: run the checks they allow and say how many
 * bytes the next step needs. Stages: 2 bytes (base checks), 2 + extended
 * length (length checks), then, for masked frames, 2 + extended length +
 * mask; the frame begins once the last stage's bytes are in.
 */
static int ch_ws_header_step(struct ch_ws_parser *p)
{
	/* hdr_need >= 2, so hdr[1] is in. */
	uint8_t with_len = (uint8_t)(CH_WS_BASE_HEADER + ch_ws_ext_len(p->hdr[1]));

	if (p->hdr_need == CH_WS_BASE_HEADER) {
		if (ch_ws_check_base(p) < 0)
			return -1;
		if (with_len != CH_WS_BASE_HEADER) {
			p->hdr_need = with_len;
			return 0;
		}
	}
	if (p->hdr_need == with_len) {
		if (ch_ws_check_length(p) < 0)
			return -1;
		if (p->masked) {
			p->hdr_need = (uint8_t)(with_len + CH_WS_MASK_LEN);
			return 0;
		}
	}
	ch_ws_begin_frame(p);
	return 0;
}

/* Grow buf so n more bytes fit after msg_len (msg_len + n <= max_message). */
static int ch_ws_reserve(struct ch_ws_parser *p, size_t n)
{
	size_t need = p->msg_len + n, cap, final;
	uint8_t *b;

	if (need <= p->cap)
		return 0;
	/* Grow with what arrives, not with what a header claims. */
	cap = p->cap ? p->cap * 2 : CH_WS_BUF_MIN;
	final = p->max_message;
	if (p->fin)
		final = p->msg_len + (size_t)(p->frame_len - p->frame_done);
	if (cap > final)
		cap = final;
	if (cap < need)
		cap = need;
	b = realloc(p->buf, cap);
	if (b == NULL)
		return -1;
	p->buf = b;
	p->cap = cap;
	return 0;
}

static int ch_ws_close_event(struct ch_ws_parser *p, uint8_t *data, size_t len,
			     struct ch_ws_event *ev)
{
	uint16_t code = CH_WS_CLOSE_NO_STATUS;

	if (len == 1)
		return ch_ws_fail(p, CH_WS_CLOSE_PROTOCOL, "close frame with a 1-byte payload");
	if (len >= CH_WS_CLOSE_CODE_LEN) {
		code = (uint16_t)(data[0] << 8 | data[1]);
		if (!ch_ws_close_code_ok(code))
			return ch_ws_fail(p, CH_WS_CLOSE_PROTOCOL, "invalid close code");
		data += CH_WS_CLOSE_CODE_LEN;
		len -= CH_WS_CLOSE_CODE_LEN;
		if (!ch_utf8_valid(data, len))
			return ch_ws_fail(p, CH_WS_CLOSE_BAD_DATA, "close reason is not UTF-8");
	}
	p->state = CH_WS_P_CLOSED;
	ch_ws_release(p);	/* data is in ctrl or in the input, never in buf */
	ev->type = CH_WS_EV_CLOSE;
	ev->data = data;
	ev->len = len;
	ev->code = code;
	return 1;
}

/*
 * The current frame's payload is all read into data[0..len) (unmasked; for
 * a data frame, the message so far). in_place: a whole message that was not
 * copied, so its UTF-8 is still unchecked. Returns 1 with an event, 0 with
 * none (a fragment ended), -1 on error.
 */
static int ch_ws_end_frame(struct ch_ws_parser *p, uint8_t *data, size_t len,
			   bool in_place, struct ch_ws_event *ev)
{
	p->state = CH_WS_P_HEADER;
	switch (p->opcode) {
	case CH_WS_OP_PING:
	case CH_WS_OP_PONG:
		ev->type = p->opcode == CH_WS_OP_PING ? CH_WS_EV_PING : CH_WS_EV_PONG;
		ev->data = data;
		ev->len = len;
		return 1;
	case CH_WS_OP_CLOSE:
		return ch_ws_close_event(p, data, len, ev);
	default:
		break;
	}
	if (in_place && p->msg_opcode == CH_WS_OP_TEXT)
		ch_utf8_feed(&p->utf8, data, len);
	if (ch_utf8_status(&p->utf8) == CH_UTF8_INVALID)
		return ch_ws_fail(p, CH_WS_CLOSE_BAD_DATA, "text message is not UTF-8");
	if (!p->fin)
		return 0;
	if (ch_utf8_status(&p->utf8) != CH_UTF8_COMPLETE)
		return ch_ws_fail(p, CH_WS_CLOSE_BAD_DATA, "text message ends inside a character");
	ev->type = p->msg_opcode == CH_WS_OP_TEXT ? CH_WS_EV_TEXT : CH_WS_EV_BINARY;
	ev->data = data;
	ev->len = len;
	p->msg_opcode = 0;
	p->msg_len = 0;
	return 1;
}

/* Move n payload bytes from src to dst (not overlapping), unmasking masked frames. */
static void ch_ws_move_payload(const struct ch_ws_parser *p, uint8_t *dst, const uint8_t *src,
			       size_t n)
{
	if (p->masked)
		ch_ws_mask(dst, src, n, p->mask, p->frame_done);
	else
		memcpy(dst, src, n);
}

/* Copy (unmasking) payload bytes from in[0..n) into ctrl or buf. */
static int ch_ws_copy_payload(struct ch_ws_parser *p, const uint8_t *in, size_t n)
{
	uint8_t *dst;

	if (ch_ws_is_control(p->opcode)) {
		/* frame_len <= 125 was checked, so this stays inside ctrl. */
		ch_ws_move_payload(p, p->ctrl + p->frame_done, in, n);
	} else {
		if (ch_ws_reserve(p, n) < 0)
			return ch_ws_fail(p, CH_WS_CLOSE_INTERNAL, "out of memory");
		dst = p->buf + p->msg_len;
		ch_ws_move_payload(p, dst, in, n);
		if (p->msg_opcode == CH_WS_OP_TEXT &&
		    ch_utf8_feed(&p->utf8, dst, n) == CH_UTF8_INVALID)
			return ch_ws_fail(p, CH_WS_CLOSE_BAD_DATA, "text message is not UTF-8");
		p->msg_len += n;
	}
	p->frame_done += n;
	return 0;
}

/*
 * Read payload from in[*pos..len). Returns 1 with an event, 0 when the
 * frame ended with none or the input ran out, -1 on error.
 */
static int ch_ws_read_payload(struct ch_ws_parser *p, uint8_t *in, size_t len,
			      size_t *pos, struct ch_ws_event *ev)
{
	size_t avail = len - *pos;
	bool control = ch_ws_is_control(p->opcode);
	bool whole = control || (p->fin && p->opcode != CH_WS_OP_CONT);
	size_t n;

	/* The common case: the whole message is here: no copy (unmask in place). */
	if (whole && p->frame_done == 0 && p->frame_len <= avail) {
		uint8_t *d = avail ? in + *pos : ch_ws_empty;

		n = (size_t)p->frame_len;
		if (p->masked)
			ch_ws_mask(d, d, n, p->mask, 0);
		*pos += n;
		p->frame_done = n;
		return ch_ws_end_frame(p, d, n, true, ev);
	}
	n = p->frame_len - p->frame_done < avail ? (size_t)(p->frame_len - p->frame_done) : avail;
	if (n > 0) {
		if (ch_ws_copy_payload(p, in + *pos, n) < 0)
			return -1;
		*pos += n;
	}
	if (p->frame_done < p->frame_len)
		return 0;
	if (control)
		return ch_ws_end_frame(p, p->ctrl, (size_t)p->frame_len, false, ev);
	return ch_ws_end_frame(p, p->buf ? p->buf : ch_ws_empty, p->msg_len, false, ev);
}

/* Copy header bytes from in[*pos..len) until hdr holds hdr_need of them. */
static void ch_ws_take_header(struct ch_ws_parser *p, const uint8_t *in, size_t len, size_t *pos)
{
	size_t want = (size_t)(p->hdr_need - p->hdr_len);
	size_t n = len - *pos < want ? len - *pos : want;

	if (n == 0)
		return;
	memcpy(p->hdr + p->hdr_len, in + *pos, n);
	p->hdr_len = (uint8_t)(p->hdr_len + n);
	*pos += n;
}

size_t ch_ws_parse(struct ch_ws_parser *p, uint8_t *in, size_t len, struct ch_ws_event *ev)
{
	size_t pos = 0;
	int rc;

	*ev = (struct ch_ws_event){ .type = CH_WS_EV_NONE, .data = ch_ws_empty };
	if (p->state == CH_WS_P_ERROR) {
		ch_ws_error_event(p, ev);
		return 0;
	}
	if (p->state == CH_WS_P_CLOSED)
		return len;
	for (;;) {
		if (p->state == CH_WS_P_HEADER) {
			ch_ws_take_header(p, in, len, &pos);
			if (p->hdr_len < p->hdr_need)
				break;
			rc = ch_ws_header_step(p);
		} else {
			rc = ch_ws_read_payload(p, in, len, &pos, ev);
			if (rc == 0 && p->state == CH_WS_P_PAYLOAD)
				break;
		}
		if (rc < 0) {
			ch_ws_error_event(p, ev);
			return pos;
		}
		if (rc > 0)
			return pos;
	}
	/* Nothing delivered now: no event can point into buf any more. */
	if (p->msg_opcode == 0)
		ch_ws_release(p);
	return pos;
}

size_t ch_ws_parse_const(struct ch_ws_parser *p, const uint8_t *in, size_t len,
			 struct ch_ws_event *ev)
{
	/* Unmasking in place would write to in: refuse rather than do it. */
	if (p->masked && p->state != CH_WS_P_ERROR)
		ch_ws_fail(p, CH_WS_CLOSE_INTERNAL, "read-only input for masked frames");
	/* Safe: with masked == 0, ch_ws_parse never writes to in (see the top). */
	return ch_ws_parse(p, (uint8_t *)in, len, ev);
}

/* ------------------------------------------------------------------------
 * Writers
 * ---------------------------------------------------------------------- */

/* First byte, length in its shortest form; returns the bytes written. */
static size_t ch_ws_put_header(uint8_t *out, uint8_t first, uint8_t mask_bit, uint64_t len)
{
	size_t n = CH_WS_BASE_HEADER, i, ext;

	out[0] = first;
	if (len < CH_WS_LEN_16) {
		out[1] = (uint8_t)(mask_bit | len);
		return n;
	}
	if (len <= CH_WS_LEN16_MAX) {
		out[1] = mask_bit | CH_WS_LEN_16;
		ext = 2;
	} else {
		out[1] = mask_bit | CH_WS_LEN_64;
		ext = 8;
	}
	for (i = 0; i < ext; i++)
		out[n + i] = (uint8_t)(len >> (8 * (ext - 1 - i)));
	return n + ext;
}

size_t ch_ws_frame_header(uint8_t opcode, uint64_t payload_len,
			  uint8_t out[CH_WS_MAX_SERVER_HEADER])
{
	return ch_ws_put_header(out, (uint8_t)(CH_WS_FIN | (opcode & CH_WS_OPCODE_BITS)), 0,
				payload_len);
}

static size_t ch_ws_control_frame(uint8_t opcode, const void *payload, size_t len,
				  uint8_t out[CH_WS_MAX_CONTROL_FRAME])
{
	size_t n;

	if (len > CH_WS_MAX_CONTROL_PAYLOAD)
		return 0;
	n = ch_ws_frame_header(opcode, len, out);
	if (len > 0)
		memcpy(out + n, payload, len);
	return n + len;
}

size_t ch_ws_ping_frame(const void *payload, size_t len, uint8_t out[CH_WS_MAX_CONTROL_FRAME])
{
	return ch_ws_control_frame(CH_WS_OP_PING, payload, len, out);
}

size_t ch_ws_pong_frame(const void *payload, size_t len, uint8_t out[CH_WS_MAX_CONTROL_FRAME])
{
	return ch_ws_control_frame(CH_WS_OP_PONG, payload, len, out);
}

size_t ch_ws_close_payload(uint16_t code, const char *reason, size_t reason_len,
			   uint8_t payload[CH_WS_MAX_CONTROL_PAYLOAD])
{
	/* 7.4.1: these only report what happened; they never go on the wire. */
	if (code == 0 || code == CH_WS_CLOSE_NO_STATUS || code == CH_WS_CLOSE_ABNORMAL ||
	    code == CH_WS_CLOSE_TLS)
		return 0;
	if (reason == NULL)
		reason_len = 0;
	if (reason_len > CH_WS_MAX_CLOSE_REASON) {
		/* Cut before the character that straddles the limit. */
		reason_len = CH_WS_MAX_CLOSE_REASON;
		while (reason_len > 0 &&
		       ((unsigned char)reason[reason_len] & CH_WS_UTF8_TAIL_BITS) == CH_WS_UTF8_TAIL)
			reason_len--;
	}
	payload[0] = (uint8_t)(code >> 8);
	payload[1] = (uint8_t)code;
	if (reason_len > 0)
		memcpy(payload + CH_WS_CLOSE_CODE_LEN, reason, reason_len);
	return CH_WS_CLOSE_CODE_LEN + reason_len;
}

size_t ch_ws_close_frame(uint16_t code, const char *reason, size_t reason_len,
			 uint8_t out[CH_WS_MAX_CONTROL_FRAME])
{
	uint8_t payload[CH_WS_MAX_CONTROL_PAYLOAD];
	size_t n = ch_ws_close_payload(code, reason, reason_len, payload);

	return ch_ws_control_frame(CH_WS_OP_CLOSE, payload, n, out);
}

size_t ch_ws_client_frame(uint8_t first_byte, const void *payload, size_t len,
			  const uint8_t mask_key[CH_WS_MASK_LEN], uint8_t *out)
{
	size_t n = ch_ws_put_header(out, first_byte, CH_WS_MASK_BIT, len);

	memcpy(out + n, mask_key, CH_WS_MASK_LEN);
	n += CH_WS_MASK_LEN;
	ch_ws_mask(out + n, payload, len, mask_key, 0);
	return n + len;
}
