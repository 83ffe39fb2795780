/*
 * Client side of WebSocket: see wsc.h. The handshake check and the frame
 * writer reuse worker/ws.c's pieces that are the same for both sides
 * (ch_ws_accept_key, ch_ws_client_frame); the parser is the mirror image of
 * worker/ws.c's, for unmasked server frames and a const input.
 *
 * Invariants of struct ch_wsc_parser:
 * - Every read is inside in[0..len). The header is copied into hdr (at
 *   most 10 bytes) and each check runs once hdr holds the bytes it needs,
 *   so a split header is checked at the same byte as a whole one.
 * - buf_len <= max_message always: a data frame is refused from its header
 *   when buf_len + frame_len would pass it.
 * - msg_opcode != 0 exactly while a fragmented message is open, or a single
 *   frame message is being copied because it did not arrive whole; buf
 *   holds its bytes so far.
 * - One call delivers at most one event, and it is the last thing the call
 *   does; buf is released only by a later call that finds no message open,
 *   so an event's bytes stay put until the next call.
 */
#include "client/wsc.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "client/httpc.h"
#include "worker/ws.h"

enum ch_wsc_pstate {
	CH_WSC_P_HEADER,	/* filling hdr */
	CH_WSC_P_PAYLOAD,	/* reading frame_len payload bytes */
	CH_WSC_P_CLOSED,	/* the server's close was delivered; ignore the rest */
	CH_WSC_P_ERROR,		/* err_code/err_text, repeated forever */
};

#define CH_WSC_FIN		0x80
#define CH_WSC_RSV_BITS		0x70
#define CH_WSC_OPCODE_BITS	0x0F
#define CH_WSC_CONTROL_BIT	0x08
#define CH_WSC_MASK_BIT		0x80
#define CH_WSC_LEN7_BITS	0x7F
#define CH_WSC_LEN_16		126
#define CH_WSC_LEN_64		127
#define CH_WSC_LEN64_TOP	(1ull << 63)
#define CH_WSC_BASE_HEADER	2
#define CH_WSC_CLOSE_CODE_LEN	2
#define CH_WSC_CLOSE_PROTOCOL	1002
#define CH_WSC_CLOSE_BAD_DATA	1007
#define CH_WSC_CLOSE_TOO_BIG	1009
#define CH_WSC_CLOSE_INTERNAL	1011
#define CH_WSC_KEY_RAW		16	/* random bytes in a Sec-WebSocket-Key */
#define CH_WSC_BUF_MIN		256	/* first reassembly buffer; doubles */
#define CH_WSC_MAX_RESPONSE_HEAD 8192	/* a longer 101 answer is refused */

/* Where a zero-length payload points: never NULL, never written. */
static const uint8_t ch_wsc_empty[1];

/* ------------------------------------------------------------------------
 * Randomness: keys and masks
 * ---------------------------------------------------------------------- */

/*
 * Masks must be unpredictable (RFC 6455 10.3), but a getrandom call per
 * frame would cost a load generator a system call per message: each thread
 * keeps a pool of kernel random bytes and refills it when it is used up.
 */
#define CH_WSC_POOL 512
static __thread uint8_t ch_wsc_pool[CH_WSC_POOL];
static __thread size_t ch_wsc_pool_left;

static void ch_wsc_fill(void *buf, size_t n)
{
	uint8_t *p = buf;
	size_t done = 0;
	ssize_t r;

	while (done < n) {
		r = getrandom(p + done, n - done, 0);
		if (r > 0) {
			done += (size_t)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		break;
	}
	/* No getrandom (seccomp, old kernel): weak, but masks still vary. */
	for (; done < n; done++) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		p[done] = (uint8_t)(ts.tv_nsec ^ (ts.tv_nsec >> 8) ^ (long)getpid() ^ (long)rand());
	}
}

void ch_wsc_random(void *buf, size_t n)
{
	uint8_t *out = buf;
	size_t k;

	if (n > CH_WSC_POOL) {
		ch_wsc_fill(buf, n);
		return;
	}
	while (n > 0) {
		if (ch_wsc_pool_left == 0) {
			ch_wsc_fill(ch_wsc_pool, CH_WSC_POOL);
			ch_wsc_pool_left = CH_WSC_POOL;
		}
		k = n < ch_wsc_pool_left ? n : ch_wsc_pool_left;
		memcpy(out, ch_wsc_pool + CH_WSC_POOL - ch_wsc_pool_left, k);
		/* Never hand the same bytes out twice. */
		memset(ch_wsc_pool + CH_WSC_POOL - ch_wsc_pool_left, 0, k);
		ch_wsc_pool_left -= k;
		out += k;
		n -= k;
	}
}

/* ------------------------------------------------------------------------
 * Opening handshake
 * ---------------------------------------------------------------------- */

int ch_wsc_request(char *out, size_t cap, const char *host, const char *path,
		   const char *token, char key[CH_WSC_KEY_LEN + 1])
{
	uint8_t raw[CH_WSC_KEY_RAW];
	int n;

	/* A line break in any of them would end the header early (injection). */
	if (strpbrk(host, "\r\n") || strpbrk(path, "\r\n") || (token && strpbrk(token, "\r\n")))
		return -1;
	ch_wsc_random(raw, sizeof(raw));
	/* 16 bytes encode to exactly 24 characters; EVP adds the NUL. */
	EVP_EncodeBlock((unsigned char *)key, raw, sizeof(raw));
	n = snprintf(out, cap,
		     "GET %s HTTP/1.1\r\n"
		     "Host: %s\r\n"
		     "Upgrade: websocket\r\n"
		     "Connection: Upgrade\r\n"
		     "Sec-WebSocket-Key: %s\r\n"
		     "Sec-WebSocket-Version: 13\r\n"
		     "%s%s%s"
		     "\r\n",
		     path, host, key,
		     token ? "Authorization: Bearer " : "", token ? token : "", token ? "\r\n" : "");
	if (n < 0 || (size_t)n >= cap)
		return -1;
	return n;
}

int ch_wsc_response(const char *buf, size_t len, const char *key, int *status)
{
	char accept[CH_WS_ACCEPT_LEN + 1];
	const char *v;
	size_t head, vlen;

	*status = 0;
	head = ch_httpc_head_end(buf, len);
	if (head == 0)
		return len > CH_WSC_MAX_RESPONSE_HEAD ? -1 : 0;
	*status = ch_httpc_status(buf, head);
	if (*status != 101)
		return -1;
	v = ch_httpc_header(buf, head, "Upgrade", &vlen);
	if (v == NULL || !ch_httpc_has_token(v, vlen, "websocket"))
		return -1;
	v = ch_httpc_header(buf, head, "Connection", &vlen);
	if (v == NULL || !ch_httpc_has_token(v, vlen, "upgrade"))
		return -1;
	if (ch_ws_accept_key(key, strlen(key), accept) < 0)
		return -1;
	v = ch_httpc_header(buf, head, "Sec-WebSocket-Accept", &vlen);
	if (v == NULL || vlen != CH_WS_ACCEPT_LEN || memcmp(v, accept, vlen) != 0)
		return -1;
	return (int)head;
}

/* ------------------------------------------------------------------------
 * Frame writers
 * ---------------------------------------------------------------------- */

size_t ch_wsc_frame(uint8_t *out, size_t cap, int opcode, int fin,
		    const void *payload, size_t len)
{
	uint8_t mask[CH_WS_MASK_LEN];

	if (cap < CH_WSC_MAX_HEADER || cap - CH_WSC_MAX_HEADER < len)
		return 0;
	ch_wsc_random(mask, sizeof(mask));
	return ch_ws_client_frame((uint8_t)((fin ? CH_WSC_FIN : 0) | (opcode & CH_WSC_OPCODE_BITS)),
				  payload, len, mask, out);
}

size_t ch_wsc_close_frame(uint8_t *out, size_t cap, uint16_t code)
{
	uint8_t payload[CH_WSC_CLOSE_CODE_LEN] = { (uint8_t)(code >> 8), (uint8_t)code };

	return ch_wsc_frame(out, cap, CH_WSC_OP_CLOSE, 1, payload, sizeof(payload));
}

/* ------------------------------------------------------------------------
 * Parser
 * ---------------------------------------------------------------------- */

void ch_wsc_parser_init(struct ch_wsc_parser *p, size_t max_message)
{
	memset(p, 0, sizeof(*p));
	p->max_message = max_message < CH_WS_MAX_MESSAGE_LIMIT ? max_message : CH_WS_MAX_MESSAGE_LIMIT;
	p->state = CH_WSC_P_HEADER;
	p->hdr_need = CH_WSC_BASE_HEADER;
}

static void ch_wsc_release(struct ch_wsc_parser *p)
{
	free(p->buf);
	p->buf = NULL;
	p->buf_cap = 0;
	p->buf_len = 0;
}

void ch_wsc_parser_free(struct ch_wsc_parser *p)
{
	ch_wsc_release(p);
}

static bool ch_wsc_is_control(uint8_t opcode)
{
	return (opcode & CH_WSC_CONTROL_BIT) != 0;
}

static bool ch_wsc_known_opcode(uint8_t op)
{
	return op == CH_WSC_OP_CONT || op == CH_WSC_OP_TEXT || op == CH_WSC_OP_BINARY ||
	       op == CH_WSC_OP_CLOSE || op == CH_WSC_OP_PING || op == CH_WSC_OP_PONG;
}

/* RFC 6455 7.4.1/7.4.2 plus IANA's 1012-1014; 1004-1006 and 1015 are never sent. */
static bool ch_wsc_close_code_ok(unsigned code)
{
	return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
	       (code >= 3000 && code <= 4999);
}

static int ch_wsc_error_event(const struct ch_wsc_parser *p, struct ch_wsc_event *ev)
{
	ev->type = CH_WSC_ERROR;
	ev->data = ch_wsc_empty;
	ev->len = 0;
	ev->close_code = p->err_code;
	ev->error = p->err_text;
	return CH_WSC_ERROR;
}

/* Enter the error state; returns -1 for the callers' convenience. */
static int ch_wsc_fail(struct ch_wsc_parser *p, uint16_t code, const char *text)
{
	p->state = CH_WSC_P_ERROR;
	p->err_code = code;
	p->err_text = text;
	ch_wsc_release(p);
	return -1;
}

/* Checks that need only the first two header bytes; they fail fast. */
static int ch_wsc_check_base(struct ch_wsc_parser *p)
{
	uint8_t b0 = p->hdr[0], b1 = p->hdr[1];
	uint8_t op = b0 & CH_WSC_OPCODE_BITS;

	if (b0 & CH_WSC_RSV_BITS)
		return ch_wsc_fail(p, CH_WSC_CLOSE_PROTOCOL, "reserved bit set with no extension");
	if (!ch_wsc_known_opcode(op))
		return ch_wsc_fail(p, CH_WSC_CLOSE_PROTOCOL, "unknown opcode");
	if (b1 & CH_WSC_MASK_BIT)
		return ch_wsc_fail(p, CH_WSC_CLOSE_PROTOCOL, "masked server frame");
	if (ch_wsc_is_control(op)) {
		if (!(b0 & CH_WSC_FIN))
			return ch_wsc_fail(p, CH_WSC_CLOSE_PROTOCOL, "fragmented control frame");
		if ((b1 & CH_WSC_LEN7_BITS) > CH_WSC_MAX_CONTROL)
			return ch_wsc_fail(p, CH_WSC_CLOSE_PROTOCOL, "control frame over 125 bytes");
	} else if (op == CH_WSC_OP_CONT && p->msg_opcode == 0) {
		return ch_wsc_fail(p, CH_WSC_CLOSE_PROTOCOL, "continuation with no message begun");
	} else if (op != CH_WSC_OP_CONT && p->msg_opcode != 0) {
		return ch_wsc_fail(p, CH_WSC_CLOSE_PROTOCOL, "new message inside a fragmented one");
	}
	return 0;
}

static size_t ch_wsc_ext_len(uint8_t b1)
{
	switch (b1 & CH_WSC_LEN7_BITS) {
	case CH_WSC_LEN_16:
		return 2;
	case CH_WSC_LEN_64:
		return 8;
	default:
		return 0;
	}
}

/* The whole header is in hdr: check the length and set up the frame. */
static int ch_wsc_begin_frame(struct ch_wsc_parser *p)
{
	uint8_t op = p->hdr[0] & CH_WSC_OPCODE_BITS;
	uint64_t n = p->hdr[1] & CH_WSC_LEN7_BITS;
	size_t i, ext = ch_wsc_ext_len(p->hdr[1]);

	if (ext != 0) {
		n = 0;
		for (i = 0; i < ext; i++)
			n = (n << 8) | p->hdr[CH_WSC_BASE_HEADER + i];
	}
	if (n & CH_WSC_LEN64_TOP)
		return ch_wsc_fail(p, CH_WSC_CLOSE_PROTOCOL, "64-bit length with its top bit set");
	/* buf_len <= max_message always, so the subtraction cannot wrap. */
	if (!ch_wsc_is_control(op) &&
	    n > p->max_message - (op == CH_WSC_OP_CONT ? p->buf_len : 0))
		return ch_wsc_fail(p, CH_WSC_CLOSE_TOO_BIG, "message over the size limit");
	p->opcode = op;
	p->fin = (p->hdr[0] & CH_WSC_FIN) != 0;
	p->frame_len = n;
	p->frame_done = 0;
	p->hdr_len = 0;
	p->hdr_need = CH_WSC_BASE_HEADER;
	p->state = CH_WSC_P_PAYLOAD;
	return 0;
}

/* hdr holds hdr_need bytes: run the checks they allow, or begin the frame. */
static int ch_wsc_header_step(struct ch_wsc_parser *p)
{
	size_t ext = ch_wsc_ext_len(p->hdr[1]);

	if (p->hdr_need == CH_WSC_BASE_HEADER) {
		if (ch_wsc_check_base(p) < 0)
			return -1;
		if (ext != 0) {
			p->hdr_need = (uint8_t)(CH_WSC_BASE_HEADER + ext);
			return 0;
		}
	}
	return ch_wsc_begin_frame(p);
}

/* A data frame starts: a new message unless it continues one. */
static void ch_wsc_begin_message(struct ch_wsc_parser *p)
{
	if (p->opcode == CH_WSC_OP_CONT)
		return;
	p->msg_opcode = p->opcode;
	p->buf_len = 0;
	ch_utf8_init(&p->utf8);
}

/* Grow buf so n more bytes fit (buf_len + n <= max_message was checked). */
static int ch_wsc_reserve(struct ch_wsc_parser *p, size_t n)
{
	size_t need = p->buf_len + n, cap;
	uint8_t *b;

	if (need <= p->buf_cap)
		return 0;
	/* Grow with what arrives, not with what a header claims. */
	cap = p->buf_cap ? p->buf_cap * 2 : CH_WSC_BUF_MIN;
	if (cap > p->max_message)
		cap = p->max_message;
	if (cap < need)
		cap = need;
	b = realloc(p->buf, cap);
	if (b == NULL)
		return -1;
	p->buf = b;
	p->buf_cap = cap;
	return 0;
}

static int ch_wsc_close_event(struct ch_wsc_parser *p, const uint8_t *data, size_t len,
			      struct ch_wsc_event *ev)
{
	uint16_t code = CH_WSC_CLOSE_NO_STATUS;

	if (len == 1)
		return ch_wsc_fail(p, CH_WSC_CLOSE_PROTOCOL, "close frame with a 1-byte payload");
	if (len >= CH_WSC_CLOSE_CODE_LEN) {
		code = (uint16_t)(data[0] << 8 | data[1]);
		if (!ch_wsc_close_code_ok(code))
			return ch_wsc_fail(p, CH_WSC_CLOSE_PROTOCOL, "invalid close code");
		data += CH_WSC_CLOSE_CODE_LEN;
		len -= CH_WSC_CLOSE_CODE_LEN;
		if (!ch_utf8_valid(data, len))
			return ch_wsc_fail(p, CH_WSC_CLOSE_BAD_DATA, "close reason is not UTF-8");
	}
	p->state = CH_WSC_P_CLOSED;
	ev->type = CH_WSC_CLOSE;
	ev->data = data;
	ev->len = len;
	ev->close_code = code;
	return 1;
}

/*
 * The frame's payload is all in data[0..len) (for a data frame, the
 * message so far). in_place: a whole message that was not copied, so its
 * UTF-8 is still unchecked. Returns 1 with an event, 0 with none (a
 * fragment ended), -1 on error.
 */
static int ch_wsc_end_frame(struct ch_wsc_parser *p, const uint8_t *data, size_t len,
			    bool in_place, struct ch_wsc_event *ev)
{
	p->state = CH_WSC_P_HEADER;
	switch (p->opcode) {
	case CH_WSC_OP_PING:
	case CH_WSC_OP_PONG:
		ev->type = p->opcode == CH_WSC_OP_PING ? CH_WSC_PING : CH_WSC_PONG;
		ev->opcode = p->opcode;
		ev->data = data;
		ev->len = len;
		return 1;
	case CH_WSC_OP_CLOSE:
		ev->opcode = p->opcode;
		return ch_wsc_close_event(p, data, len, ev);
	default:
		break;
	}
	if (in_place && p->msg_opcode == CH_WSC_OP_TEXT)
		ch_utf8_feed(&p->utf8, data, len);
	if (ch_utf8_status(&p->utf8) == CH_UTF8_INVALID)
		return ch_wsc_fail(p, CH_WSC_CLOSE_BAD_DATA, "text message is not UTF-8");
	if (!p->fin)
		return 0;
	if (ch_utf8_status(&p->utf8) != CH_UTF8_COMPLETE)
		return ch_wsc_fail(p, CH_WSC_CLOSE_BAD_DATA, "text message ends inside a character");
	ev->type = CH_WSC_MESSAGE;
	ev->opcode = p->msg_opcode;
	ev->data = data;
	ev->len = len;
	p->msg_opcode = 0;
	return 1;
}

/* Copy payload bytes from in[0..n) into ctrl or buf, checking text as it comes. */
static int ch_wsc_copy_payload(struct ch_wsc_parser *p, const uint8_t *in, size_t n)
{
	uint8_t *dst;

	if (ch_wsc_is_control(p->opcode)) {
		/* frame_len <= 125 was checked, so this stays inside ctrl. */
		memcpy(p->ctrl + p->frame_done, in, n);
	} else {
		if (ch_wsc_reserve(p, n) < 0)
			return ch_wsc_fail(p, CH_WSC_CLOSE_INTERNAL, "out of memory");
		dst = p->buf + p->buf_len;
		memcpy(dst, in, n);
		if (p->msg_opcode == CH_WSC_OP_TEXT &&
		    ch_utf8_feed(&p->utf8, dst, n) == CH_UTF8_INVALID)
			return ch_wsc_fail(p, CH_WSC_CLOSE_BAD_DATA, "text message is not UTF-8");
		p->buf_len += n;
	}
	p->frame_done += n;
	return 0;
}

/*
 * Read payload from in[*pos..len). Returns 1 with an event, 0 when the
 * frame ended with none or the input ran out, -1 on error.
 */
static int ch_wsc_read_payload(struct ch_wsc_parser *p, const uint8_t *in, size_t len,
			       size_t *pos, struct ch_wsc_event *ev)
{
	size_t avail = len - *pos, n;
	bool control = ch_wsc_is_control(p->opcode);

	if (!control && p->frame_done == 0)
		ch_wsc_begin_message(p);
	/* The common case: a whole message or control frame is here: no copy. */
	if (p->frame_done == 0 && p->frame_len <= avail &&
	    (control || (p->fin && p->opcode != CH_WSC_OP_CONT))) {
		const uint8_t *d = p->frame_len ? in + *pos : ch_wsc_empty;

		n = (size_t)p->frame_len;
		*pos += n;
		p->frame_done = n;
		return ch_wsc_end_frame(p, d, n, true, ev);
	}
	n = p->frame_len - p->frame_done < avail ? (size_t)(p->frame_len - p->frame_done) : avail;
	if (n > 0) {
		if (ch_wsc_copy_payload(p, in + *pos, n) < 0)
			return -1;
		*pos += n;
	}
	if (p->frame_done < p->frame_len)
		return 0;
	if (control)
		return ch_wsc_end_frame(p, p->ctrl, (size_t)p->frame_len, false, ev);
	return ch_wsc_end_frame(p, p->buf ? p->buf : ch_wsc_empty, p->buf_len, false, ev);
}

/* Copy header bytes from in[*pos..len) until hdr holds hdr_need of them. */
static void ch_wsc_take_header(struct ch_wsc_parser *p, const uint8_t *in, size_t len,
			       size_t *pos)
{
	size_t want = (size_t)(p->hdr_need - p->hdr_len);
	size_t n = len - *pos < want ? len - *pos : want;

	if (n == 0)
		return;
	memcpy(p->hdr + p->hdr_len, in + *pos, n);
	p->hdr_len = (uint8_t)(p->hdr_len + n);
	*pos += n;
}

int ch_wsc_parse(struct ch_wsc_parser *p, const uint8_t *in, size_t len,
		 size_t *used, struct ch_wsc_event *ev)
{
	size_t pos = 0;
	int rc;

	*ev = (struct ch_wsc_event){ .type = CH_WSC_NEED_MORE, .data = ch_wsc_empty };
	*used = 0;
	if (p->state == CH_WSC_P_ERROR)
		return ch_wsc_error_event(p, ev);
	if (p->state == CH_WSC_P_CLOSED) {
		ch_wsc_release(p);
		*used = len;
		return CH_WSC_NEED_MORE;
	}
	/* The last event may have pointed into buf; it is no longer needed. */
	if (p->msg_opcode == 0 && p->buf != NULL)
		ch_wsc_release(p);
	for (;;) {
		if (p->state == CH_WSC_P_HEADER) {
			ch_wsc_take_header(p, in, len, &pos);
			if (p->hdr_len < p->hdr_need)
				break;
			rc = ch_wsc_header_step(p);
		} else {
			rc = ch_wsc_read_payload(p, in, len, &pos, ev);
			if (rc == 0 && p->state == CH_WSC_P_PAYLOAD)
				break;
		}
		*used = pos;
		if (rc < 0)
			return ch_wsc_error_event(p, ev);
		if (rc > 0)
			return ev->type;
	}
	*used = pos;
	return CH_WSC_NEED_MORE;
}
