/*
 * Unit tests for client/wsc.c: masked client frames at every length
 * boundary (125/126/65535/65536), masking, the opening handshake (request
 * and Sec-WebSocket-Accept check), and the server-frame parser:
 * fragmentation with control frames in between, UTF-8 split across
 * fragments, every error case, close frames, the zero-copy path, and the
 * same events whatever the split (byte by byte, every two-piece cut).
 * Every piece handed to the parser is an exact heap copy, so ASan reports
 * any read past the bytes given. Server frames are written with
 * worker/ws.h's ch_ws_frame_header where it fits, by hand otherwise.
 */
#include "client/wsc.h"

#include <check.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/httpc.h"
#include "worker/ws.h"

#define MAX_EVENTS 64
#define STREAM_CAP (200 * 1024)
#define BIG_MAX (1 << 20)

/* ------------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------- */

struct stream {
	uint8_t b[STREAM_CAP];
	size_t n;
};

static struct stream *stream_new(void)
{
	struct stream *s = calloc(1, sizeof(*s));

	ck_assert_ptr_nonnull(s);
	return s;
}

/*
 * A server frame: first byte as given, the length in the shortest form
 * (or the 64-bit form when long64), no mask unless mask is set (then a
 * zero key, which leaves the payload as is).
 */
static void put_frame_ex(struct stream *s, uint8_t first, const void *p, size_t len,
			 int long64, int mask)
{
	uint8_t *o = s->b + s->n;
	size_t h = 2, i;

	ck_assert_uint_le(s->n + len + 14, STREAM_CAP);
	o[0] = first;
	if (len < 126 && !long64) {
		o[1] = (uint8_t)len;
	} else if (len <= 0xFFFF && !long64) {
		o[1] = 126;
		o[2] = (uint8_t)(len >> 8);
		o[3] = (uint8_t)len;
		h = 4;
	} else {
		o[1] = 127;
		for (i = 0; i < 8; i++)
			o[2 + i] = (uint8_t)((uint64_t)len >> (8 * (7 - i)));
		h = 10;
	}
	if (mask) {
		o[1] |= 0x80;
		memset(o + h, 0, 4);
		h += 4;
	}
	if (len)
		memcpy(o + h, p, len);
	s->n += h + len;
}

static void put_frame(struct stream *s, uint8_t first, const void *p, size_t len)
{
	put_frame_ex(s, first, p, len, 0, 0);
}

#define FIN 0x80
#define PUTS(s, first, str) put_frame((s), (first), (str), strlen(str))

struct rec {
	int type, opcode;
	uint16_t code;
	size_t len;
	uint8_t *data;
};

struct recs {
	struct rec e[MAX_EVENTS];
	int n;
};

static void recs_free(struct recs *r)
{
	for (int i = 0; i < r->n; i++)
		free(r->e[i].data);
	r->n = 0;
}

/*
 * Feed one piece (an exact heap copy of in[0..len)), recording events;
 * returns 1 once an ERROR was seen.
 */
static int feed(struct ch_wsc_parser *p, const uint8_t *in, size_t len, struct recs *r)
{
	uint8_t *copy = malloc(len ? len : 1);
	size_t off = 0, used;
	struct ch_wsc_event ev;
	int type, rc = 0;

	ck_assert_ptr_nonnull(copy);
	memcpy(copy, in, len);
	for (;;) {
		type = ch_wsc_parse(p, copy + off, len - off, &used, &ev);
		ck_assert_uint_le(used, len - off);
		off += used;
		if (type == CH_WSC_NEED_MORE) {
			ck_assert_uint_eq(off, len);
			break;
		}
		ck_assert_int_lt(r->n, MAX_EVENTS);
		ck_assert_int_eq(type, ev.type);
		struct rec *e = &r->e[r->n++];
		e->type = type;
		e->opcode = ev.opcode;
		e->code = ev.close_code;
		e->len = ev.len;
		e->data = malloc(ev.len ? ev.len : 1);
		ck_assert_ptr_nonnull(e->data);
		if (type != CH_WSC_ERROR) {
			ck_assert_ptr_nonnull(ev.data);
			memcpy(e->data, ev.data, ev.len);
		} else {
			ck_assert_ptr_nonnull(ev.error);
			rc = 1;
			break;
		}
	}
	free(copy);
	return rc;
}

/* Parse s cut at the given offsets (ascending), recording events. */
static void run_cuts(const struct stream *s, const size_t *cuts, int ncuts, size_t max,
		     struct recs *r)
{
	struct ch_wsc_parser p;
	size_t start = 0;

	ch_wsc_parser_init(&p, max);
	r->n = 0;
	for (int i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : s->n;

		if (feed(&p, s->b + start, end - start, r))
			break;
		start = end;
	}
	ch_wsc_parser_free(&p);
}

static void run_whole(const struct stream *s, size_t max, struct recs *r)
{
	run_cuts(s, NULL, 0, max, r);
}

static void run_bytewise(const struct stream *s, size_t max, struct recs *r)
{
	struct ch_wsc_parser p;

	ch_wsc_parser_init(&p, max);
	r->n = 0;
	for (size_t i = 0; i < s->n; i++)
		if (feed(&p, s->b + i, 1, r))
			break;
	ch_wsc_parser_free(&p);
}

static void assert_same(const struct recs *a, const struct recs *b)
{
	ck_assert_int_eq(a->n, b->n);
	for (int i = 0; i < a->n; i++) {
		ck_assert_int_eq(a->e[i].type, b->e[i].type);
		ck_assert_int_eq(a->e[i].opcode, b->e[i].opcode);
		ck_assert_uint_eq(a->e[i].code, b->e[i].code);
		ck_assert_uint_eq(a->e[i].len, b->e[i].len);
		ck_assert(memcmp(a->e[i].data, b->e[i].data, a->e[i].len) == 0);
	}
}

/* run_whole into r, and check that feeding byte by byte gives the same. */
static void run_agreed(const struct stream *s, size_t max, struct recs *r)
{
	struct recs b = { 0 };

	run_whole(s, max, r);
	run_bytewise(s, max, &b);
	assert_same(r, &b);
	recs_free(&b);
}

static void assert_event(const struct recs *r, int i, int type, const char *text)
{
	ck_assert_int_gt(r->n, i);
	ck_assert_int_eq(r->e[i].type, type);
	if (text != NULL) {
		ck_assert_uint_eq(r->e[i].len, strlen(text));
		ck_assert(memcmp(r->e[i].data, text, r->e[i].len) == 0);
	}
}

/* The stream ends in an ERROR with this close code. */
static void assert_error(const struct stream *s, size_t max, uint16_t code)
{
	struct recs r = { 0 };

	run_agreed(s, max, &r);
	ck_assert_int_gt(r.n, 0);
	ck_assert_int_eq(r.e[r.n - 1].type, CH_WSC_ERROR);
	ck_assert_uint_eq(r.e[r.n - 1].code, code);
	recs_free(&r);
}

/* Unmask a client frame: header length, payload into out. */
static size_t unmask_client(const uint8_t *f, size_t n, uint8_t *out, uint64_t *plen)
{
	size_t h = 2, i;
	uint64_t len = f[1] & 0x7F;
	const uint8_t *key;

	ck_assert(f[1] & 0x80);
	if (len == 126) {
		len = (uint64_t)f[2] << 8 | f[3];
		h = 4;
	} else if (len == 127) {
		len = 0;
		for (i = 0; i < 8; i++)
			len = len << 8 | f[2 + i];
		h = 10;
	}
	key = f + h;
	h += 4;
	ck_assert_uint_eq(h + len, n);
	for (i = 0; i < len; i++)
		out[i] = f[h + i] ^ key[i % 4];
	*plen = len;
	return h;
}

/* ------------------------------------------------------------------------
 * Client frames
 * ---------------------------------------------------------------------- */

static const size_t BOUNDARIES[] = { 0, 1, 124, 125, 126, 127, 65534, 65535, 65536, 65537, 70000 };

START_TEST(test_frame_lengths)
{
	for (size_t k = 0; k < sizeof(BOUNDARIES) / sizeof(BOUNDARIES[0]); k++) {
		size_t len = BOUNDARIES[k], n, h, want_h;
		uint8_t *payload = malloc(len + 1), *out = malloc(len + CH_WSC_MAX_HEADER);
		uint8_t *back = malloc(len + 1);
		uint64_t plen;

		ck_assert(payload && out && back);
		for (size_t i = 0; i < len; i++)
			payload[i] = (uint8_t)(i * 7 + 3);
		/* One byte short of the worst case: refused, nothing written. */
		ck_assert_uint_eq(ch_wsc_frame(out, len + CH_WSC_MAX_HEADER - 1, CH_WSC_OP_BINARY, 1,
					       payload, len), 0);
		n = ch_wsc_frame(out, len + CH_WSC_MAX_HEADER, CH_WSC_OP_BINARY, 1, payload, len);
		want_h = len < 126 ? 6 : len <= 65535 ? 8 : 14;
		ck_assert_uint_eq(n, want_h + len);
		ck_assert_uint_eq(out[0], 0x82);
		ck_assert_uint_eq(out[1] & 0x7F, len < 126 ? len : len <= 65535 ? 126 : 127);
		h = unmask_client(out, n, back, &plen);
		ck_assert_uint_eq(h, want_h);
		ck_assert_uint_eq(plen, len);
		ck_assert(memcmp(back, payload, len) == 0);
		free(payload);
		free(out);
		free(back);
	}
}
END_TEST

START_TEST(test_frame_fin_and_opcodes)
{
	uint8_t out[64];

	ck_assert_uint_eq(ch_wsc_frame(out, sizeof(out), CH_WSC_OP_TEXT, 0, "ab", 2), 8);
	ck_assert_uint_eq(out[0], 0x01);
	ck_assert_uint_eq(ch_wsc_frame(out, sizeof(out), CH_WSC_OP_CONT, 1, "ab", 2), 8);
	ck_assert_uint_eq(out[0], 0x80);
	ck_assert_uint_eq(ch_wsc_frame(out, sizeof(out), CH_WSC_OP_PING, 1, NULL, 0), 6);
	ck_assert_uint_eq(out[0], 0x89);
	ck_assert_uint_eq(out[1], 0x80);
	ck_assert_uint_eq(ch_wsc_close_frame(out, sizeof(out), 1000), 8);
	ck_assert_uint_eq(out[0], 0x88);
	ck_assert_uint_eq(out[2 + 4 + 0] ^ out[2], 0x03);
	ck_assert_uint_eq(out[2 + 4 + 1] ^ out[3], 0xE8);
}
END_TEST

START_TEST(test_masking)
{
	/* A fresh key per frame: 16 frames with one key would be a 2^-480 fluke. */
	uint8_t zeros[64] = { 0 }, f[16][64 + CH_WSC_MAX_HEADER];
	int distinct = 0, nonzero = 0;

	for (int i = 0; i < 16; i++) {
		ck_assert_uint_eq(ch_wsc_frame(f[i], sizeof(f[i]), CH_WSC_OP_BINARY, 1, zeros, 64), 70);
		/* Masked zeros are the key repeated: the payload shows the key. */
		for (int j = 0; j < 64; j++)
			ck_assert_uint_eq(f[i][6 + j], f[i][2 + j % 4]);
		if (memcmp(f[i] + 2, "\0\0\0\0", 4) != 0)
			nonzero++;
		if (i > 0 && memcmp(f[i] + 2, f[i - 1] + 2, 4) != 0)
			distinct++;
	}
	ck_assert_int_ge(nonzero, 15);
	ck_assert_int_ge(distinct, 14);
}
END_TEST

/* ------------------------------------------------------------------------
 * Handshake
 * ---------------------------------------------------------------------- */

/* The value of a request header line "Name: value\r\n" (copied into out). */
static int req_header(const char *req, const char *name, char *out, size_t cap)
{
	size_t vlen;
	const char *v = ch_httpc_header(req, strlen(req), name, &vlen);

	if (v == NULL || vlen >= cap)
		return -1;
	memcpy(out, v, vlen);
	out[vlen] = '\0';
	return 0;
}

START_TEST(test_request)
{
	char req[1024], key[CH_WSC_KEY_LEN + 1], key2[CH_WSC_KEY_LEN + 1], v[256];
	unsigned char raw[32];
	int n;

	n = ch_wsc_request(req, sizeof(req), "127.0.0.1:8080", "/ws?x=1", "tok.en", key);
	ck_assert_int_gt(n, 0);
	ck_assert_uint_eq(strlen(req), (size_t)n);
	ck_assert(strncmp(req, "GET /ws?x=1 HTTP/1.1\r\n", 22) == 0);
	ck_assert(strcmp(req + n - 4, "\r\n\r\n") == 0);
	ck_assert_uint_eq(strlen(key), CH_WSC_KEY_LEN);
	/* The key is base64 of 16 bytes. */
	ck_assert_int_eq(EVP_DecodeBlock(raw, (const unsigned char *)key, CH_WSC_KEY_LEN), 18);
	ck_assert(strcmp(key + 22, "==") == 0);
	ck_assert_int_eq(req_header(req, "Sec-WebSocket-Key", v, sizeof(v)), 0);
	ck_assert_str_eq(v, key);
	ck_assert_int_eq(req_header(req, "Host", v, sizeof(v)), 0);
	ck_assert_str_eq(v, "127.0.0.1:8080");
	ck_assert_int_eq(req_header(req, "Authorization", v, sizeof(v)), 0);
	ck_assert_str_eq(v, "Bearer tok.en");
	ck_assert_int_eq(req_header(req, "Sec-WebSocket-Version", v, sizeof(v)), 0);
	ck_assert_str_eq(v, "13");
	ck_assert_int_eq(req_header(req, "Upgrade", v, sizeof(v)), 0);
	ck_assert_str_eq(v, "websocket");

	/* No token: no Authorization; a fresh key each time. */
	n = ch_wsc_request(req, sizeof(req), "h:1", "/ws", NULL, key2);
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(req_header(req, "Authorization", v, sizeof(v)), -1);
	ck_assert_str_ne(key, key2);

	/* Too small: -1, for every cap short of the whole request. */
	for (size_t cap = 0; cap <= (size_t)n; cap++)
		ck_assert_int_eq(ch_wsc_request(req, cap, "h:1", "/ws", NULL, key2), -1);
	ck_assert_int_eq(ch_wsc_request(req, (size_t)n + 1, "h:1", "/ws", NULL, key2), n);

	/* No header injection through any argument. */
	ck_assert_int_eq(ch_wsc_request(req, sizeof(req), "h:1\r\nX: y", "/ws", NULL, key2), -1);
	ck_assert_int_eq(ch_wsc_request(req, sizeof(req), "h:1", "/ws\nX: y", NULL, key2), -1);
	ck_assert_int_eq(ch_wsc_request(req, sizeof(req), "h:1", "/ws", "t\r\nX: y", key2), -1);
}
END_TEST

START_TEST(test_response_accept)
{
	char head[512], key[CH_WSC_KEY_LEN + 1], req[512], resp[1024];
	int n, status;

	ck_assert_int_gt(ch_wsc_request(req, sizeof(req), "h:1", "/ws", NULL, key), 0);
	n = ch_ws_format_101(head, sizeof(head), key, strlen(key));
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(ch_wsc_response(head, (size_t)n, key, &status), n);
	ck_assert_int_eq(status, 101);
	/* Frames after the head are not part of it. */
	memcpy(resp, head, (size_t)n);
	memcpy(resp + n, "\x81\x02hi", 4);
	ck_assert_int_eq(ch_wsc_response(resp, (size_t)n + 4, key, &status), n);
	/* Every prefix: need more. */
	for (int i = 0; i < n; i++)
		ck_assert_int_eq(ch_wsc_response(head, (size_t)i, key, &status), 0);
	/* Another key's accept: refused, although the status is 101. */
	{
		char other[CH_WSC_KEY_LEN + 1];

		ck_assert_int_gt(ch_wsc_request(req, sizeof(req), "h:1", "/ws", NULL, other), 0);
		ck_assert_int_eq(ch_wsc_response(head, (size_t)n, other, &status), -1);
		ck_assert_int_eq(status, 101);
	}
	/* RFC 6455 1.3's example, with header names in other cases. */
	n = snprintf(resp, sizeof(resp),
		     "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\n"
		     "CONNECTION: keep-alive, Upgrade\r\n"
		     "sec-websocket-accept:  s3pPLMBiTxaQ9kYGzzhZRbK+xOo= \r\n\r\n");
	ck_assert_int_eq(ch_wsc_response(resp, (size_t)n, "dGhlIHNhbXBsZSBub25jZQ==", &status), n);
}
END_TEST

START_TEST(test_response_refused)
{
	const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
	const char *ok_accept = "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n";
	char resp[1024];
	int status, n;

	n = snprintf(resp, sizeof(resp), "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n");
	ck_assert_int_eq(ch_wsc_response(resp, (size_t)n, key, &status), -1);
	ck_assert_int_eq(status, 401);
	n = snprintf(resp, sizeof(resp), "SSH-2.0-OpenSSH\r\n\r\n");
	ck_assert_int_eq(ch_wsc_response(resp, (size_t)n, key, &status), -1);
	ck_assert_int_eq(status, 0);
	/* No Upgrade header. */
	n = snprintf(resp, sizeof(resp), "HTTP/1.1 101 OK\r\nConnection: upgrade\r\n%s\r\n", ok_accept);
	ck_assert_int_eq(ch_wsc_response(resp, (size_t)n, key, &status), -1);
	/* Connection without the upgrade token. */
	n = snprintf(resp, sizeof(resp),
		     "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: upgrades\r\n%s\r\n", ok_accept);
	ck_assert_int_eq(ch_wsc_response(resp, (size_t)n, key, &status), -1);
	/* No accept at all. */
	n = snprintf(resp, sizeof(resp), "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n");
	ck_assert_int_eq(ch_wsc_response(resp, (size_t)n, key, &status), -1);
	/* The same head is accepted with all three. */
	n = snprintf(resp, sizeof(resp),
		     "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: upgrade\r\n%s\r\n", ok_accept);
	ck_assert_int_eq(ch_wsc_response(resp, (size_t)n, key, &status), n);
}
END_TEST

/* ------------------------------------------------------------------------
 * Parser
 * ---------------------------------------------------------------------- */

START_TEST(test_parse_lengths)
{
	for (size_t k = 0; k < sizeof(BOUNDARIES) / sizeof(BOUNDARIES[0]); k++) {
		size_t len = BOUNDARIES[k], h, used;
		struct stream *s = stream_new();
		uint8_t *payload = malloc(len + 1);
		struct ch_wsc_parser p;
		struct ch_wsc_event ev;
		struct recs a = { 0 }, b = { 0 };

		for (size_t i = 0; i < len; i++)
			payload[i] = (uint8_t)('a' + i % 26);
		h = ch_ws_frame_header(CH_WS_OP_TEXT, len, s->b);
		memcpy(s->b + h, payload, len);
		s->n = h + len;
		/* Whole: no copy, data points into the input. */
		ch_wsc_parser_init(&p, BIG_MAX);
		ck_assert_int_eq(ch_wsc_parse(&p, s->b, s->n, &used, &ev), CH_WSC_MESSAGE);
		ck_assert_uint_eq(used, s->n);
		ck_assert_int_eq(ev.opcode, CH_WSC_OP_TEXT);
		ck_assert_uint_eq(ev.len, len);
		if (len > 0)
			ck_assert_ptr_eq(ev.data, s->b + h);
		ck_assert_ptr_null(p.ws.buf);
		ck_assert_int_eq(ch_wsc_parse(&p, s->b + used, 0, &used, &ev), CH_WSC_NEED_MORE);
		ch_wsc_parser_free(&p);
		/* Byte by byte: the same message. */
		run_whole(s, BIG_MAX, &a);
		run_bytewise(s, BIG_MAX, &b);
		ck_assert_int_eq(a.n, 1);
		ck_assert(memcmp(a.e[0].data, payload, len) == 0);
		assert_same(&a, &b);
		/* The 64-bit form for a short length is accepted too. */
		s->n = 0;
		put_frame_ex(s, FIN | CH_WSC_OP_BINARY, payload, len, 1, 0);
		recs_free(&a);
		run_whole(s, BIG_MAX, &a);
		ck_assert_int_eq(a.n, 1);
		ck_assert_int_eq(a.e[0].opcode, CH_WSC_OP_BINARY);
		ck_assert_uint_eq(a.e[0].len, len);
		recs_free(&a);
		recs_free(&b);
		free(payload);
		free(s);
	}
}
END_TEST

START_TEST(test_fragments_with_ping)
{
	struct stream *s = stream_new();
	struct recs a = { 0 };

	PUTS(s, CH_WSC_OP_TEXT, "Hel");
	PUTS(s, FIN | CH_WSC_OP_PING, "p1");
	PUTS(s, CH_WSC_OP_CONT, "lo ");
	PUTS(s, FIN | CH_WSC_OP_PONG, "");
	PUTS(s, CH_WSC_OP_CONT, "");
	PUTS(s, FIN | CH_WSC_OP_CONT, "world");
	PUTS(s, FIN | CH_WSC_OP_TEXT, "next");
	run_agreed(s, BIG_MAX, &a);
	ck_assert_int_eq(a.n, 4);
	assert_event(&a, 0, CH_WSC_PING, "p1");
	assert_event(&a, 1, CH_WSC_PONG, "");
	assert_event(&a, 2, CH_WSC_MESSAGE, "Hello world");
	ck_assert_int_eq(a.e[2].opcode, CH_WSC_OP_TEXT);
	assert_event(&a, 3, CH_WSC_MESSAGE, "next");
	recs_free(&a);
	free(s);
}
END_TEST

START_TEST(test_utf8_split_across_fragments)
{
	/* U+00E9 (C3 A9) and U+1F600 (F0 9F 98 80) cut inside the character. */
	struct stream *s = stream_new();
	struct recs a = { 0 };

	PUTS(s, CH_WSC_OP_TEXT, "a\xC3");
	PUTS(s, CH_WSC_OP_CONT, "\xA9" "b\xF0\x9F");
	PUTS(s, FIN | CH_WSC_OP_PING, "");
	PUTS(s, CH_WSC_OP_CONT, "\x98");
	PUTS(s, FIN | CH_WSC_OP_CONT, "\x80!");
	run_agreed(s, BIG_MAX, &a);
	ck_assert_int_eq(a.n, 2);
	assert_event(&a, 1, CH_WSC_MESSAGE, "a\xC3\xA9" "b\xF0\x9F\x98\x80!");
	recs_free(&a);
	free(s);
}
END_TEST

START_TEST(test_utf8_invalid)
{
	struct stream *s = stream_new();
	struct recs r = { 0 };

	PUTS(s, FIN | CH_WSC_OP_TEXT, "ok\xFF");
	assert_error(s, BIG_MAX, 1007);

	/* Found at the bad continuation, before the message ends. */
	s->n = 0;
	PUTS(s, CH_WSC_OP_TEXT, "a\xC3");
	PUTS(s, CH_WSC_OP_CONT, "(");
	assert_error(s, BIG_MAX, 1007);
	run_whole(s, BIG_MAX, &r);
	ck_assert_int_eq(r.n, 1);
	recs_free(&r);

	/* A surrogate (ED A0 80) and an overlong form (C0 AF). */
	s->n = 0;
	PUTS(s, FIN | CH_WSC_OP_TEXT, "\xED\xA0\x80");
	assert_error(s, BIG_MAX, 1007);
	s->n = 0;
	PUTS(s, FIN | CH_WSC_OP_TEXT, "\xC0\xAF");
	assert_error(s, BIG_MAX, 1007);

	/* Ending inside a character. */
	s->n = 0;
	PUTS(s, CH_WSC_OP_TEXT, "a");
	PUTS(s, FIN | CH_WSC_OP_CONT, "\xE2\x82");
	assert_error(s, BIG_MAX, 1007);

	/* Binary messages are not checked. */
	s->n = 0;
	PUTS(s, FIN | CH_WSC_OP_BINARY, "\xFF\xFE");
	run_whole(s, BIG_MAX, &r);
	ck_assert_int_eq(r.n, 1);
	ck_assert_int_eq(r.e[0].type, CH_WSC_MESSAGE);
	ck_assert_int_eq(r.e[0].opcode, CH_WSC_OP_BINARY);
	recs_free(&r);
	free(s);
}
END_TEST

START_TEST(test_masked_server_frame)
{
	struct stream *s = stream_new();

	put_frame_ex(s, FIN | CH_WSC_OP_TEXT, "hi", 2, 0, 1);
	assert_error(s, BIG_MAX, 1002);
	s->n = 0;
	put_frame_ex(s, FIN | CH_WSC_OP_PING, "", 0, 0, 1);
	assert_error(s, BIG_MAX, 1002);
	/* Found from the first two bytes, not from what follows. */
	{
		struct ch_wsc_parser p;
		struct ch_wsc_event ev;
		size_t used;

		ch_wsc_parser_init(&p, BIG_MAX);
		ck_assert_int_eq(ch_wsc_parse(&p, s->b, 2, &used, &ev), CH_WSC_ERROR);
		ck_assert_str_eq(ev.error, "masked server frame");
		ch_wsc_parser_free(&p);
	}
	free(s);
}
END_TEST

START_TEST(test_protocol_errors)
{
	struct stream *s = stream_new();
	uint8_t big[130] = { 0 };

	PUTS(s, FIN | 0x40 | CH_WSC_OP_TEXT, "x");		/* RSV1 */
	assert_error(s, BIG_MAX, 1002);
	s->n = 0;
	PUTS(s, FIN | 0x3, "x");				/* unknown opcode */
	assert_error(s, BIG_MAX, 1002);
	s->n = 0;
	PUTS(s, FIN | 0xB, "");					/* unknown control */
	assert_error(s, BIG_MAX, 1002);
	s->n = 0;
	PUTS(s, CH_WSC_OP_PING, "x");				/* fragmented control */
	assert_error(s, BIG_MAX, 1002);
	s->n = 0;
	put_frame(s, FIN | CH_WSC_OP_PING, big, 126);		/* control over 125 */
	assert_error(s, BIG_MAX, 1002);
	s->n = 0;
	PUTS(s, FIN | CH_WSC_OP_CONT, "x");			/* nothing to continue */
	assert_error(s, BIG_MAX, 1002);
	s->n = 0;
	PUTS(s, CH_WSC_OP_TEXT, "a");
	PUTS(s, FIN | CH_WSC_OP_TEXT, "b");			/* new message inside one */
	assert_error(s, BIG_MAX, 1002);
	s->n = 0;
	/* A 64-bit length with the top bit set. */
	memcpy(s->b, "\x82\x7F\x80\0\0\0\0\0\0\x01", 10);
	s->n = 10;
	assert_error(s, BIG_MAX, 1002);
	free(s);
}
END_TEST

START_TEST(test_size_limit)
{
	struct stream *s = stream_new();
	uint8_t buf[200];
	struct recs r = { 0 };

	memset(buf, 'x', sizeof(buf));
	put_frame(s, FIN | CH_WSC_OP_TEXT, buf, 100);
	run_whole(s, 100, &r);
	ck_assert_int_eq(r.n, 1);
	ck_assert_int_eq(r.e[0].type, CH_WSC_MESSAGE);
	recs_free(&r);
	s->n = 0;
	put_frame(s, FIN | CH_WSC_OP_TEXT, buf, 101);
	assert_error(s, 100, 1009);
	/* Fragments summed; refused from the header, before the payload. */
	s->n = 0;
	put_frame(s, CH_WSC_OP_TEXT, buf, 60);
	put_frame(s, FIN | CH_WSC_OP_CONT, buf, 41);
	assert_error(s, 100, 1009);
	s->n = 0;
	put_frame(s, CH_WSC_OP_TEXT, buf, 60);
	put_frame(s, FIN | CH_WSC_OP_CONT, buf, 40);
	run_whole(s, 100, &r);
	ck_assert_int_eq(r.n, 1);
	ck_assert_uint_eq(r.e[0].len, 100);
	recs_free(&r);
	free(s);
}
END_TEST

START_TEST(test_error_sticky)
{
	struct ch_wsc_parser p;
	struct ch_wsc_event ev;
	const uint8_t bad[] = { 0x83, 0x00 }, good[] = { 0x81, 0x01, 'a' };
	size_t used;

	ch_wsc_parser_init(&p, BIG_MAX);
	ck_assert_int_eq(ch_wsc_parse(&p, bad, sizeof(bad), &used, &ev), CH_WSC_ERROR);
	ck_assert_uint_eq(ev.close_code, 1002);
	ck_assert_int_eq(ch_wsc_parse(&p, good, sizeof(good), &used, &ev), CH_WSC_ERROR);
	ck_assert_uint_eq(used, 0);
	ck_assert_uint_eq(ev.close_code, 1002);
	ch_wsc_parser_free(&p);
}
END_TEST

START_TEST(test_close)
{
	struct stream *s = stream_new();
	struct recs r = { 0 };

	PUTS(s, FIN | CH_WSC_OP_CLOSE, "\x03\xE9" "bye");	/* 1001 */
	PUTS(s, FIN | CH_WSC_OP_TEXT, "after");			/* ignored */
	run_whole(s, BIG_MAX, &r);
	ck_assert_int_eq(r.n, 1);
	assert_event(&r, 0, CH_WSC_CLOSE, "bye");
	ck_assert_uint_eq(r.e[0].code, 1001);
	recs_free(&r);
	run_bytewise(s, BIG_MAX, &r);
	ck_assert_int_eq(r.n, 1);
	ck_assert_uint_eq(r.e[0].code, 1001);
	recs_free(&r);

	s->n = 0;
	PUTS(s, FIN | CH_WSC_OP_CLOSE, "");
	run_whole(s, BIG_MAX, &r);
	ck_assert_int_eq(r.n, 1);
	ck_assert_uint_eq(r.e[0].code, CH_WSC_CLOSE_NO_STATUS);
	recs_free(&r);

	s->n = 0;
	PUTS(s, FIN | CH_WSC_OP_CLOSE, "\x03");			/* 1 byte */
	assert_error(s, BIG_MAX, 1002);
	s->n = 0;
	PUTS(s, FIN | CH_WSC_OP_CLOSE, "\x03\xED");		/* 1005: never sent */
	assert_error(s, BIG_MAX, 1002);
	s->n = 0;
	PUTS(s, FIN | CH_WSC_OP_CLOSE, "\x03\xE8\xFF");		/* bad reason */
	assert_error(s, BIG_MAX, 1007);
	free(s);
}
END_TEST

/* The close frames the client writes: a code that must never be sent
 * (RFC 6455 7.4.1) gives an empty close, as the server's writer does. */
START_TEST(test_close_frame_writer)
{
	uint8_t out[CH_WSC_MAX_HEADER + 8];
	uint8_t plain[8];

	size_t n = ch_wsc_close_frame(out, sizeof(out), 1000);
	ck_assert_uint_eq(n, 2 + 4 + 2);	/* header, mask, code */
	ck_assert_uint_eq(out[0], FIN | CH_WSC_OP_CLOSE);
	ck_assert_uint_eq(out[1], 0x80 | 2);
	for (int i = 0; i < 2; i++)
		plain[i] = out[6 + i] ^ out[2 + i];
	ck_assert_uint_eq(plain[0], 0x03);
	ck_assert_uint_eq(plain[1], 0xE8);
	static const uint16_t never[] = { 0, 1005, 1006, 1015 };
	for (size_t k = 0; k < sizeof(never) / sizeof(never[0]); k++) {
		n = ch_wsc_close_frame(out, sizeof(out), never[k]);
		ck_assert_uint_eq(n, 2 + 4);
		ck_assert_uint_eq(out[1], 0x80);
	}
}
END_TEST

/* The read-only entry point never writes to its input, so a parser of
 * masked frames (which unmasks in place) refuses it. */
START_TEST(test_parse_const_refuses_masked_side)
{
	struct ch_ws_parser p;
	struct ch_ws_event ev;
	const uint8_t frame[] = { 0x81, 0x81, 1, 2, 3, 4, 'a' ^ 1 };

	ch_ws_parser_init(&p, BIG_MAX);
	(void)ch_ws_parse_const(&p, frame, sizeof(frame), &ev);
	ck_assert_int_eq(ev.type, CH_WS_EV_ERROR);
	ck_assert_uint_eq(ev.code, CH_WS_CLOSE_INTERNAL);
	ch_ws_parser_free(&p);
}
END_TEST

/* A stream with every kind of event; the same events for every split. */
static void mixed_stream(struct stream *s, size_t big)
{
	uint8_t *payload = malloc(big);

	for (size_t i = 0; i < big; i++)
		payload[i] = (uint8_t)('A' + i % 50);
	PUTS(s, FIN | CH_WSC_OP_TEXT, "{\"type\":\"msg\"}");
	PUTS(s, FIN | CH_WSC_OP_PING, "ping!");
	PUTS(s, CH_WSC_OP_TEXT, "fr\xC3");
	PUTS(s, FIN | CH_WSC_OP_PONG, "x");
	PUTS(s, FIN | CH_WSC_OP_CONT, "\xA9");
	put_frame(s, FIN | CH_WSC_OP_BINARY, payload, big);
	PUTS(s, FIN | CH_WSC_OP_TEXT, "");
	put_frame(s, CH_WSC_OP_BINARY, payload, big / 2);
	put_frame(s, FIN | CH_WSC_OP_CONT, payload, big - big / 2);
	PUTS(s, FIN | CH_WSC_OP_CLOSE, "\x03\xE8" "done");
	free(payload);
}

START_TEST(test_bytewise_and_every_split)
{
	struct stream *s = stream_new();
	struct recs a = { 0 }, b = { 0 };

	mixed_stream(s, 300);
	run_whole(s, BIG_MAX, &a);
	ck_assert_int_eq(a.n, 8);
	assert_event(&a, 0, CH_WSC_MESSAGE, "{\"type\":\"msg\"}");
	assert_event(&a, 1, CH_WSC_PING, "ping!");
	assert_event(&a, 2, CH_WSC_PONG, "x");
	assert_event(&a, 3, CH_WSC_MESSAGE, "fr\xC3\xA9");
	ck_assert_uint_eq(a.e[4].len, 300);
	assert_event(&a, 5, CH_WSC_MESSAGE, "");
	ck_assert_uint_eq(a.e[6].len, 300);
	ck_assert(memcmp(a.e[6].data, a.e[4].data, 150) == 0);
	assert_event(&a, 7, CH_WSC_CLOSE, "done");
	run_bytewise(s, BIG_MAX, &b);
	assert_same(&a, &b);
	recs_free(&b);
	for (size_t cut = 0; cut <= s->n; cut++) {
		run_cuts(s, &cut, 1, BIG_MAX, &b);
		assert_same(&a, &b);
		recs_free(&b);
	}
	recs_free(&a);
	free(s);
}
END_TEST

START_TEST(test_big_stream_bytewise)
{
	/* 65536-byte frames (the 64-bit length form) fed one byte at a time. */
	struct stream *s = stream_new();
	struct recs a = { 0 };

	mixed_stream(s, 65536);
	run_agreed(s, BIG_MAX, &a);
	ck_assert_int_eq(a.n, 8);
	ck_assert_uint_eq(a.e[4].len, 65536);
	recs_free(&a);
	free(s);
}
END_TEST

START_TEST(test_memory_released)
{
	struct stream *s = stream_new();
	struct ch_wsc_parser p;
	struct ch_wsc_event ev;
	size_t used;

	PUTS(s, CH_WSC_OP_TEXT, "ab");
	PUTS(s, FIN | CH_WSC_OP_CONT, "cd");
	ch_wsc_parser_init(&p, BIG_MAX);
	ck_assert_int_eq(ch_wsc_parse(&p, s->b, s->n, &used, &ev), CH_WSC_MESSAGE);
	ck_assert_ptr_nonnull(p.ws.buf);
	ck_assert_ptr_eq(ev.data, p.ws.buf);
	ck_assert_int_eq(ch_wsc_parse(&p, s->b + used, s->n - used, &used, &ev), CH_WSC_NEED_MORE);
	ck_assert_ptr_null(p.ws.buf);
	ch_wsc_parser_free(&p);
	free(s);
}
END_TEST

static Suite *wsc_suite(void)
{
	Suite *s = suite_create("wsc");
	TCase *fr = tcase_create("frames");
	TCase *hs = tcase_create("handshake");
	TCase *pa = tcase_create("parser");

	tcase_add_test(fr, test_frame_lengths);
	tcase_add_test(fr, test_frame_fin_and_opcodes);
	tcase_add_test(fr, test_masking);
	suite_add_tcase(s, fr);

	tcase_add_test(hs, test_request);
	tcase_add_test(hs, test_response_accept);
	tcase_add_test(hs, test_response_refused);
	suite_add_tcase(s, hs);

	tcase_set_timeout(pa, 60);
	tcase_add_test(pa, test_parse_lengths);
	tcase_add_test(pa, test_fragments_with_ping);
	tcase_add_test(pa, test_utf8_split_across_fragments);
	tcase_add_test(pa, test_utf8_invalid);
	tcase_add_test(pa, test_masked_server_frame);
	tcase_add_test(pa, test_protocol_errors);
	tcase_add_test(pa, test_size_limit);
	tcase_add_test(pa, test_error_sticky);
	tcase_add_test(pa, test_close);
	tcase_add_test(pa, test_bytewise_and_every_split);
	tcase_add_test(pa, test_big_stream_bytewise);
	tcase_add_test(pa, test_memory_released);
	tcase_add_test(pa, test_close_frame_writer);
	tcase_add_test(pa, test_parse_const_refuses_masked_side);
	suite_add_tcase(s, pa);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(wsc_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
