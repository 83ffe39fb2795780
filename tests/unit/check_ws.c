/*
 * Unit tests for worker/ws.c: the accept key (RFC 6455's own example),
 * handshake checks, every framing rule of RFC 6455 section 5 (with the
 * examples of 5.7), UTF-8 across fragments, close codes, the size limit,
 * the zero-copy path, memory release, the writers, and the same events for
 * every split of a stream of frames. Every piece handed to the parser is an
 * exact heap copy, so ASan reports any read past the bytes given.
 */
#include "worker/ws.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIT(s) (s), (sizeof(s) - 1)
#define MAX_EVENTS 64
#define MAX_CUTS 3
#define SMALL_MAX 1000
#define STREAM_CAP (200 * 1024)

/* The masking key of RFC 6455 5.7's examples. */
static const uint8_t KEY[CH_WS_MASK_LEN] = { 0x37, 0xfa, 0x21, 0x3d };

/* ------------------------------------------------------------------------
 * Helpers: building streams, running the parser, recording events
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

static void put_raw(struct stream *s, const void *p, size_t n)
{
	ck_assert_uint_le(s->n + n, STREAM_CAP);
	memcpy(s->b + s->n, p, n);
	s->n += n;
}

static void put_frame(struct stream *s, uint8_t first, const void *p, size_t n)
{
	ck_assert_uint_le(s->n + n + CH_WS_MAX_CLIENT_HEADER, STREAM_CAP);
	s->n += ch_ws_client_frame(first, p, n, KEY, s->b + s->n);
}

struct rec {
	enum ch_ws_event_type type;
	uint16_t code;
	const char *error;
	size_t len;
	uint8_t *data;
};

struct recs {
	struct rec r[MAX_EVENTS];
	int n;
	size_t mem_after;	/* ch_ws_parser_mem once all input is fed */
};

static void recs_free(struct recs *rs)
{
	for (int i = 0; i < rs->n; i++)
		free(rs->r[i].data);
	rs->n = 0;
}

static void record(struct recs *rs, const struct ch_ws_event *ev)
{
	struct rec *r;

	ck_assert_int_lt(rs->n, MAX_EVENTS);
	ck_assert_ptr_nonnull(ev->data);
	r = &rs->r[rs->n++];
	r->type = ev->type;
	r->code = ev->code;
	r->error = ev->error;
	r->len = ev->len;
	r->data = malloc(ev->len + 1);
	ck_assert_ptr_nonnull(r->data);
	memcpy(r->data, ev->data, ev->len);
	r->data[ev->len] = '\0';
}

/* Feed in[0..n) to p until it is all consumed or an error comes. */
static int feed_piece(struct ch_ws_parser *p, const uint8_t *src, size_t n, struct recs *rs)
{
	uint8_t *copy = malloc(n ? n : 1);
	struct ch_ws_event ev;
	size_t off = 0;
	int rc = 0;

	ck_assert_ptr_nonnull(copy);
	if (n)
		memcpy(copy, src, n);
	for (;;) {
		size_t used = ch_ws_parse(p, copy + off, n - off, &ev);

		ck_assert_uint_le(used, n - off);
		off += used;
		if (ev.type == CH_WS_EV_NONE) {
			ck_assert_uint_eq(off, n);
			break;
		}
		record(rs, &ev);
		if (ev.type == CH_WS_EV_ERROR) {
			rc = -1;
			break;
		}
	}
	free(copy);
	return rc;
}

/* Parse b[0..n) cut at cuts[0..ncuts) (ascending), recording into rs. */
static void run_cuts(const uint8_t *b, size_t n, size_t max, const size_t *cuts, int ncuts,
		     struct recs *rs)
{
	struct ch_ws_parser p;
	size_t start = 0;

	rs->n = 0;
	ch_ws_parser_init(&p, max);
	for (int i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : n;

		if (feed_piece(&p, b + start, end - start, rs) < 0)
			break;
		start = end;
	}
	rs->mem_after = ch_ws_parser_mem(&p);
	ch_ws_parser_free(&p);
}

static void run_once(const uint8_t *b, size_t n, size_t max, struct recs *rs)
{
	run_cuts(b, n, max, NULL, 0, rs);
}

static void run_bytewise(const uint8_t *b, size_t n, size_t max, struct recs *rs)
{
	struct ch_ws_parser p;

	rs->n = 0;
	ch_ws_parser_init(&p, max);
	for (size_t i = 0; i < n; i++) {
		if (feed_piece(&p, b + i, 1, rs) < 0)
			break;
	}
	rs->mem_after = ch_ws_parser_mem(&p);
	ch_ws_parser_free(&p);
}

static void assert_same(const struct recs *a, const struct recs *b, const char *what)
{
	ck_assert_msg(a->n == b->n, "%s: %d events vs %d", what, a->n, b->n);
	for (int i = 0; i < a->n; i++) {
		const struct rec *x = &a->r[i], *y = &b->r[i];

		ck_assert_msg(x->type == y->type && x->code == y->code && x->len == y->len &&
			      memcmp(x->data, y->data, x->len) == 0,
			      "%s: event %d differs (type %d/%d code %d/%d len %zu/%zu)",
			      what, i, x->type, y->type, x->code, y->code, x->len, y->len);
		ck_assert_msg((x->error == NULL) == (y->error == NULL) &&
			      (x->error == NULL || strcmp(x->error, y->error) == 0),
			      "%s: event %d error text differs", what, i);
	}
}

static void assert_event(const struct recs *rs, int i, enum ch_ws_event_type type,
			 const void *data, size_t len)
{
	ck_assert_int_gt(rs->n, i);
	ck_assert_int_eq(rs->r[i].type, type);
	ck_assert_uint_eq(rs->r[i].len, len);
	ck_assert(memcmp(rs->r[i].data, data, len) == 0);
}

static void assert_error(const struct recs *rs, int i, uint16_t code)
{
	ck_assert_int_eq(rs->n, i + 1);
	ck_assert_int_eq(rs->r[i].type, CH_WS_EV_ERROR);
	ck_assert_uint_eq(rs->r[i].code, code);
	ck_assert_ptr_nonnull(rs->r[i].error);
}

/* Parse b[0..n) whole and byte by byte (must agree); check one error. */
static void expect_error(const uint8_t *b, size_t n, size_t max, int index, uint16_t code)
{
	struct recs a, c;

	run_once(b, n, max, &a);
	assert_error(&a, index, code);
	run_bytewise(b, n, max, &c);
	assert_same(&a, &c, "bytewise");
	recs_free(&a);
	recs_free(&c);
}

/* ------------------------------------------------------------------------
 * Handshake
 * ---------------------------------------------------------------------- */

START_TEST(test_accept_key_rfc)
{
	char out[CH_WS_ACCEPT_LEN + 1];
	char big[CH_WS_MAX_KEY + 1];

	/* RFC 6455 1.3 and 4.2.2. */
	ck_assert_int_eq(ch_ws_accept_key(LIT("dGhlIHNhbXBsZSBub25jZQ=="), out), 0);
	ck_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	/* A second pair, computed independently (Python hashlib + base64). */
	ck_assert_int_eq(ch_ws_accept_key(LIT("x3JJHMbDL1EzLkh9GBhXDw=="), out), 0);
	ck_assert_str_eq(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
	memset(big, 'A', sizeof(big));
	ck_assert_int_eq(ch_ws_accept_key(big, CH_WS_MAX_KEY, out), 0);
	ck_assert_int_eq(ch_ws_accept_key(big, CH_WS_MAX_KEY + 1, out), -1);
}
END_TEST

START_TEST(test_format_101)
{
	char out[CH_WS_MAX_101];
	int n = ch_ws_format_101(out, sizeof(out), LIT("dGhlIHNhbXBsZSBub25jZQ=="));

	ck_assert_int_gt(n, 0);
	ck_assert_uint_eq(strlen(out), (size_t)n);
	ck_assert_str_eq(out, "HTTP/1.1 101 Switching Protocols\r\n"
			      "Upgrade: websocket\r\n"
			      "Connection: Upgrade\r\n"
			      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
	ck_assert_int_eq(ch_ws_format_101(out, (size_t)n, LIT("dGhlIHNhbXBsZSBub25jZQ==")), -1);
	ck_assert_int_eq(ch_ws_format_101(out, (size_t)n + 1, LIT("dGhlIHNhbXBsZSBub25jZQ==")), n);
}
END_TEST

#define S(field, text) .field = (text), .field##_len = sizeof(text) - 1
#define SET(u, field, text) ((u).field = (text), (u).field##_len = sizeof(text) - 1)

static struct ch_ws_upgrade good_upgrade(void)
{
	return (struct ch_ws_upgrade){
		S(method, "GET"), .http_minor = 1, S(upgrade, "websocket"),
		S(connection, "Upgrade"), S(version, "13"), S(key, "dGhlIHNhbXBsZSBub25jZQ=="),
	};
}

static int check_upgrade(struct ch_ws_upgrade u)
{
	const char *reason = NULL;
	int rc = ch_ws_check_upgrade(&u, &reason);

	if (rc != 0)
		ck_assert_ptr_nonnull(reason);
	return rc;
}

START_TEST(test_upgrade_checks)
{
	struct ch_ws_upgrade u;

	ck_assert_int_eq(check_upgrade(good_upgrade()), 0);

	u = good_upgrade(); SET(u, upgrade, "WebSocket");
	ck_assert_int_eq(check_upgrade(u), 0);
	u = good_upgrade(); SET(u, upgrade, "h2c, websocket");
	ck_assert_int_eq(check_upgrade(u), 0);
	u = good_upgrade(); SET(u, connection, "keep-alive, Upgrade");
	ck_assert_int_eq(check_upgrade(u), 0);
	u = good_upgrade(); SET(u, connection, "UPGRADE ,keep-alive");
	ck_assert_int_eq(check_upgrade(u), 0);

	u = good_upgrade(); SET(u, method, "POST");
	ck_assert_int_eq(check_upgrade(u), 400);
	u = good_upgrade(); SET(u, method, "get");
	ck_assert_int_eq(check_upgrade(u), 400);
	u = good_upgrade(); SET(u, method, "GETX");
	ck_assert_int_eq(check_upgrade(u), 400);
	u = good_upgrade(); u.http_minor = 0;
	ck_assert_int_eq(check_upgrade(u), 400);
	u = good_upgrade(); u.upgrade = NULL; u.upgrade_len = 0;
	ck_assert_int_eq(check_upgrade(u), 400);
	u = good_upgrade(); SET(u, upgrade, "h2c");
	ck_assert_int_eq(check_upgrade(u), 400);
	u = good_upgrade(); SET(u, upgrade, "websockets");
	ck_assert_int_eq(check_upgrade(u), 400);
	u = good_upgrade(); u.connection = NULL; u.connection_len = 0;
	ck_assert_int_eq(check_upgrade(u), 400);
	u = good_upgrade(); SET(u, connection, "keep-alive");
	ck_assert_int_eq(check_upgrade(u), 400);
	u = good_upgrade(); SET(u, connection, "upgraded");
	ck_assert_int_eq(check_upgrade(u), 400);
	u = good_upgrade(); u.version = NULL; u.version_len = 0;
	ck_assert_int_eq(check_upgrade(u), 400);
	u = good_upgrade(); SET(u, version, "8");
	ck_assert_int_eq(check_upgrade(u), 426);
	u = good_upgrade(); SET(u, version, "13, 8");
	ck_assert_int_eq(check_upgrade(u), 426);
	u = good_upgrade(); SET(u, version, "");
	ck_assert_int_eq(check_upgrade(u), 426);
	u = good_upgrade(); u.key = NULL; u.key_len = 0;
	ck_assert_int_eq(check_upgrade(u), 400);
	u = good_upgrade(); SET(u, key, "dGhlIHNhbXBsZSBub25jZQ=");	/* 23 */
	ck_assert_int_eq(check_upgrade(u), 400);
	u = good_upgrade(); SET(u, key, "dGhlIHNhbXBsZSBub25jZQ===");	/* 25 */
	ck_assert_int_eq(check_upgrade(u), 400);
	u = good_upgrade(); SET(u, key, "dGhlIHNhbXBsZSBub25jZQAA");	/* 18 bytes */
	ck_assert_int_eq(check_upgrade(u), 400);
	u = good_upgrade(); SET(u, key, "dGhlIHNhbXBsZSBub25j*Q==");
	ck_assert_int_eq(check_upgrade(u), 400);
	u = good_upgrade(); SET(u, key, "");
	ck_assert_int_eq(check_upgrade(u), 400);
}
END_TEST

/* ------------------------------------------------------------------------
 * RFC 6455 5.7 examples
 * ---------------------------------------------------------------------- */

START_TEST(test_rfc_unmasked_text)
{
	static const uint8_t b[] = { 0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f };

	expect_error(b, sizeof(b), SMALL_MAX, 0, CH_WS_CLOSE_PROTOCOL);
	/* Found from the first two bytes, before any payload. */
	expect_error(b, 2, SMALL_MAX, 0, CH_WS_CLOSE_PROTOCOL);
}
END_TEST

START_TEST(test_rfc_masked_text)
{
	static const uint8_t b[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
				     0x7f, 0x9f, 0x4d, 0x51, 0x58 };
	struct stream *s = stream_new();
	struct recs a, c;

	run_once(b, sizeof(b), SMALL_MAX, &a);
	ck_assert_int_eq(a.n, 1);
	assert_event(&a, 0, CH_WS_EV_TEXT, "Hello", 5);
	run_bytewise(b, sizeof(b), SMALL_MAX, &c);
	assert_same(&a, &c, "bytewise");
	/* Our encoder makes exactly the RFC's bytes. */
	put_frame(s, CH_WS_FIN | CH_WS_OP_TEXT, "Hello", 5);
	ck_assert_uint_eq(s->n, sizeof(b));
	ck_assert(memcmp(s->b, b, sizeof(b)) == 0);
	recs_free(&a);
	recs_free(&c);
	free(s);
}
END_TEST

START_TEST(test_rfc_fragmented_text)
{
	/* 5.7's fragments, unmasked as printed there: refused. */
	static const uint8_t unmasked[] = { 0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f };
	struct stream *s = stream_new();
	struct recs a;

	expect_error(unmasked, sizeof(unmasked), SMALL_MAX, 0, CH_WS_CLOSE_PROTOCOL);
	put_frame(s, CH_WS_OP_TEXT, "Hel", 3);
	put_frame(s, CH_WS_FIN | CH_WS_OP_CONT, "lo", 2);
	run_once(s->b, s->n, SMALL_MAX, &a);
	ck_assert_int_eq(a.n, 1);
	assert_event(&a, 0, CH_WS_EV_TEXT, "Hello", 5);
	recs_free(&a);
	free(s);
}
END_TEST

START_TEST(test_rfc_ping_pong)
{
	static const uint8_t unmasked_ping[] = { 0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f };
	static const uint8_t masked_pong[] = { 0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
					       0x7f, 0x9f, 0x4d, 0x51, 0x58 };
	struct stream *s = stream_new();
	struct recs a;

	expect_error(unmasked_ping, sizeof(unmasked_ping), SMALL_MAX, 0, CH_WS_CLOSE_PROTOCOL);
	put_frame(s, CH_WS_FIN | CH_WS_OP_PING, "Hello", 5);
	put_raw(s, masked_pong, sizeof(masked_pong));
	put_frame(s, CH_WS_FIN | CH_WS_OP_PING, "", 0);
	run_once(s->b, s->n, SMALL_MAX, &a);
	ck_assert_int_eq(a.n, 3);
	assert_event(&a, 0, CH_WS_EV_PING, "Hello", 5);
	assert_event(&a, 1, CH_WS_EV_PONG, "Hello", 5);
	assert_event(&a, 2, CH_WS_EV_PING, "", 0);
	recs_free(&a);
	free(s);
}
END_TEST

static uint8_t *pattern(size_t n)
{
	uint8_t *p = malloc(n ? n : 1);

	ck_assert_ptr_nonnull(p);
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 7 + 3);
	return p;
}

START_TEST(test_rfc_long_lengths)
{
	struct stream *s = stream_new();
	uint8_t *pay = pattern(65536);
	struct recs a, c;

	/* 256 bytes: 16-bit length. */
	put_frame(s, CH_WS_FIN | CH_WS_OP_BINARY, pay, 256);
	ck_assert_uint_eq(s->b[1], 0x80 | 126);
	ck_assert_uint_eq(s->b[2], 0x01);
	ck_assert_uint_eq(s->b[3], 0x00);
	/* 64 KiB: 64-bit length. */
	put_frame(s, CH_WS_FIN | CH_WS_OP_BINARY, pay, 65536);
	ck_assert_uint_eq(s->b[8 + 256 + 1], 0x80 | 127);
	{
		static const uint8_t len64[8] = { 0, 0, 0, 0, 0, 1, 0, 0 };

		ck_assert(memcmp(s->b + 8 + 256 + 2, len64, 8) == 0);
	}
	run_once(s->b, s->n, 65536, &a);
	ck_assert_int_eq(a.n, 2);
	assert_event(&a, 0, CH_WS_EV_BINARY, pay, 256);
	assert_event(&a, 1, CH_WS_EV_BINARY, pay, 65536);
	run_bytewise(s->b, s->n, 65536, &c);
	assert_same(&a, &c, "bytewise");
	ck_assert_uint_eq(c.mem_after, 0);
	recs_free(&a);
	recs_free(&c);
	free(pay);
	free(s);
}
END_TEST

/* 126 and 127 length forms used for short payloads: accepted (see ws.h). */
START_TEST(test_non_minimal_lengths)
{
	static const uint8_t hello[5] = { 'H', 'e', 'l', 'l', 'o' };
	uint8_t b[32];
	size_t n = 0;
	struct recs a;

	b[n++] = CH_WS_FIN | CH_WS_OP_TEXT;
	b[n++] = 0x80 | 126;
	b[n++] = 0;
	b[n++] = 5;
	memcpy(b + n, KEY, 4);
	n += 4;
	ch_ws_mask(b + n, hello, 5, KEY, 0);
	n += 5;
	b[n++] = CH_WS_FIN | CH_WS_OP_BINARY;
	b[n++] = 0x80 | 127;
	memset(b + n, 0, 7);
	b[n + 7] = 5;
	n += 8;
	memcpy(b + n, KEY, 4);
	n += 4;
	ch_ws_mask(b + n, hello, 5, KEY, 0);
	n += 5;
	run_once(b, n, SMALL_MAX, &a);
	ck_assert_int_eq(a.n, 2);
	assert_event(&a, 0, CH_WS_EV_TEXT, "Hello", 5);
	assert_event(&a, 1, CH_WS_EV_BINARY, "Hello", 5);
	recs_free(&a);
}
END_TEST

START_TEST(test_len64_top_bit)
{
	uint8_t b[14] = { CH_WS_FIN | CH_WS_OP_BINARY, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 5 };

	memcpy(b + 10, KEY, 4);
	expect_error(b, sizeof(b), CH_WS_MAX_MESSAGE_LIMIT, 0, CH_WS_CLOSE_PROTOCOL);
	/* Decided from the length, before the mask key. */
	expect_error(b, 10, CH_WS_MAX_MESSAGE_LIMIT, 0, CH_WS_CLOSE_PROTOCOL);
	/* Top bit clear but huge: too big, not a protocol error. */
	b[2] = 0x7f;
	expect_error(b, 10, CH_WS_MAX_MESSAGE_LIMIT, 0, CH_WS_CLOSE_TOO_BIG);
}
END_TEST

/* ------------------------------------------------------------------------
 * Framing rules
 * ---------------------------------------------------------------------- */

START_TEST(test_zero_copy)
{
	struct stream *s = stream_new();
	struct ch_ws_parser p;
	struct ch_ws_event ev;
	uint8_t *pay = pattern(300);
	size_t used;

	put_frame(s, CH_WS_FIN | CH_WS_OP_BINARY, pay, 300);
	ch_ws_parser_init(&p, SMALL_MAX);
	used = ch_ws_parse(&p, s->b, s->n, &ev);
	ck_assert_uint_eq(used, s->n);
	ck_assert_int_eq(ev.type, CH_WS_EV_BINARY);
	/* The payload was unmasked where it lay: no copy, no allocation. */
	ck_assert_ptr_eq(ev.data, s->b + 8);
	ck_assert_uint_eq(ev.len, 300);
	ck_assert(memcmp(ev.data, pay, 300) == 0);
	ck_assert_uint_eq(ch_ws_parser_mem(&p), 0);
	ck_assert_uint_eq(ch_ws_parse(&p, NULL, 0, &ev), 0);
	ck_assert_int_eq(ev.type, CH_WS_EV_NONE);

	/* Split: the payload is reassembled in the parser's buffer ... */
	s->n = 0;
	put_frame(s, CH_WS_FIN | CH_WS_OP_BINARY, pay, 300);
	ck_assert_uint_eq(ch_ws_parse(&p, s->b, 100, &ev), 100);
	ck_assert_int_eq(ev.type, CH_WS_EV_NONE);
	ck_assert_uint_gt(ch_ws_parser_mem(&p), 0);
	ck_assert_uint_le(ch_ws_parser_mem(&p), 300);
	ck_assert_uint_eq(ch_ws_parse(&p, s->b + 100, s->n - 100, &ev), s->n - 100);
	ck_assert_int_eq(ev.type, CH_WS_EV_BINARY);
	ck_assert(ev.data < s->b || ev.data >= s->b + s->n);
	ck_assert(memcmp(ev.data, pay, 300) == 0);
	/* ... which the next call that delivers nothing frees. */
	ck_assert_uint_eq(ch_ws_parse(&p, NULL, 0, &ev), 0);
	ck_assert_int_eq(ev.type, CH_WS_EV_NONE);
	ck_assert_uint_eq(ch_ws_parser_mem(&p), 0);
	ch_ws_parser_free(&p);
	free(pay);
	free(s);
}
END_TEST

START_TEST(test_fragments_with_ping)
{
	struct stream *s = stream_new();
	struct recs a, c;

	/* Two fragments, a ping between. */
	put_frame(s, CH_WS_OP_TEXT, "Hello, ", 7);
	put_frame(s, CH_WS_FIN | CH_WS_OP_PING, "p1", 2);
	put_frame(s, CH_WS_FIN | CH_WS_OP_CONT, "world", 5);
	/* Three fragments of binary, a ping and a pong between, an empty one. */
	put_frame(s, CH_WS_OP_BINARY, "ab", 2);
	put_frame(s, CH_WS_FIN | CH_WS_OP_PING, "p2", 2);
	put_frame(s, CH_WS_OP_CONT, "", 0);
	put_frame(s, CH_WS_FIN | CH_WS_OP_PONG, "p3", 2);
	put_frame(s, CH_WS_FIN | CH_WS_OP_CONT, "cd", 2);
	/* Three fragments of text, the last one empty. */
	put_frame(s, CH_WS_OP_TEXT, "x", 1);
	put_frame(s, CH_WS_OP_CONT, "y", 1);
	put_frame(s, CH_WS_FIN | CH_WS_OP_CONT, "", 0);
	run_once(s->b, s->n, SMALL_MAX, &a);
	ck_assert_int_eq(a.n, 6);
	assert_event(&a, 0, CH_WS_EV_PING, "p1", 2);
	assert_event(&a, 1, CH_WS_EV_TEXT, "Hello, world", 12);
	assert_event(&a, 2, CH_WS_EV_PING, "p2", 2);
	assert_event(&a, 3, CH_WS_EV_PONG, "p3", 2);
	assert_event(&a, 4, CH_WS_EV_BINARY, "abcd", 4);
	assert_event(&a, 5, CH_WS_EV_TEXT, "xy", 2);
	ck_assert_uint_eq(a.mem_after, 0);
	run_bytewise(s->b, s->n, SMALL_MAX, &c);
	assert_same(&a, &c, "bytewise");
	recs_free(&a);
	recs_free(&c);
	free(s);
}
END_TEST

START_TEST(test_sequence_errors)
{
	struct stream *s = stream_new();

	/* Continuation with nothing begun. */
	put_frame(s, CH_WS_FIN | CH_WS_OP_CONT, "x", 1);
	expect_error(s->b, s->n, SMALL_MAX, 0, CH_WS_CLOSE_PROTOCOL);
	/* ... also right after a whole message ended. */
	s->n = 0;
	put_frame(s, CH_WS_FIN | CH_WS_OP_TEXT, "a", 1);
	put_frame(s, CH_WS_OP_CONT, "x", 1);
	expect_error(s->b, s->n, SMALL_MAX, 1, CH_WS_CLOSE_PROTOCOL);
	/* New text while a fragmented message is open, even after a ping. */
	s->n = 0;
	put_frame(s, CH_WS_OP_TEXT, "a", 1);
	put_frame(s, CH_WS_FIN | CH_WS_OP_PING, "", 0);
	put_frame(s, CH_WS_FIN | CH_WS_OP_TEXT, "b", 1);
	expect_error(s->b, s->n, SMALL_MAX, 1, CH_WS_CLOSE_PROTOCOL);
	/* New binary inside fragmented text. */
	s->n = 0;
	put_frame(s, CH_WS_OP_TEXT, "a", 1);
	put_frame(s, CH_WS_OP_BINARY, "b", 1);
	expect_error(s->b, s->n, SMALL_MAX, 0, CH_WS_CLOSE_PROTOCOL);
	free(s);
}
END_TEST

START_TEST(test_control_frame_rules)
{
	static const uint8_t ops[] = { CH_WS_OP_PING, CH_WS_OP_PONG, CH_WS_OP_CLOSE };
	struct stream *s = stream_new();
	uint8_t *pay = pattern(126);
	struct recs a;

	for (size_t i = 0; i < sizeof(ops); i++) {
		/* FIN clear. */
		s->n = 0;
		put_frame(s, ops[i], "", 0);
		expect_error(s->b, s->n, SMALL_MAX, 0, CH_WS_CLOSE_PROTOCOL);
		/* 126 bytes, refused from the header alone. */
		s->n = 0;
		put_frame(s, CH_WS_FIN | ops[i], pay, 126);
		expect_error(s->b, s->n, SMALL_MAX, 0, CH_WS_CLOSE_PROTOCOL);
		expect_error(s->b, 2, SMALL_MAX, 0, CH_WS_CLOSE_PROTOCOL);
	}
	/* 125 is fine. */
	s->n = 0;
	put_frame(s, CH_WS_FIN | CH_WS_OP_PING, pay, 125);
	run_once(s->b, s->n, SMALL_MAX, &a);
	ck_assert_int_eq(a.n, 1);
	assert_event(&a, 0, CH_WS_EV_PING, pay, 125);
	recs_free(&a);
	free(pay);
	free(s);
}
END_TEST

START_TEST(test_rsv_bits)
{
	static const uint8_t rsv[] = { 0x40, 0x20, 0x10, 0x70 };
	struct stream *s = stream_new();

	for (size_t i = 0; i < sizeof(rsv); i++) {
		s->n = 0;
		put_frame(s, CH_WS_FIN | rsv[i] | CH_WS_OP_TEXT, "Hello", 5);
		expect_error(s->b, s->n, SMALL_MAX, 0, CH_WS_CLOSE_PROTOCOL);
		s->n = 0;
		put_frame(s, CH_WS_FIN | rsv[i] | CH_WS_OP_PING, "", 0);
		expect_error(s->b, s->n, SMALL_MAX, 0, CH_WS_CLOSE_PROTOCOL);
	}
	free(s);
}
END_TEST

START_TEST(test_unknown_opcodes)
{
	struct stream *s = stream_new();
	uint8_t op = (uint8_t)_i;

	if ((op >= 3 && op <= 7) || op >= 0xB) {
		s->n = 0;
		put_frame(s, CH_WS_FIN | op, "", 0);
		expect_error(s->b, s->n, SMALL_MAX, 0, CH_WS_CLOSE_PROTOCOL);
		/* Also inside a fragmented message. */
		s->n = 0;
		put_frame(s, CH_WS_OP_TEXT, "a", 1);
		put_frame(s, CH_WS_FIN | op, "x", 1);
		expect_error(s->b, s->n, SMALL_MAX, 0, CH_WS_CLOSE_PROTOCOL);
	}
	free(s);
}
END_TEST

START_TEST(test_error_is_sticky)
{
	static const uint8_t bad[] = { 0x81, 0x05, 'H', 'e', 'l', 'l', 'o' };
	uint8_t b[sizeof(bad)];
	struct ch_ws_parser p;
	struct ch_ws_event ev;

	memcpy(b, bad, sizeof(b));
	ch_ws_parser_init(&p, SMALL_MAX);
	ch_ws_parse(&p, b, sizeof(b), &ev);
	ck_assert_int_eq(ev.type, CH_WS_EV_ERROR);
	ck_assert_uint_eq(ch_ws_parse(&p, b, sizeof(b), &ev), 0);
	ck_assert_int_eq(ev.type, CH_WS_EV_ERROR);
	ck_assert_uint_eq(ev.code, CH_WS_CLOSE_PROTOCOL);
	ck_assert_uint_eq(ch_ws_parse(&p, NULL, 0, &ev), 0);
	ck_assert_int_eq(ev.type, CH_WS_EV_ERROR);
	ch_ws_parser_free(&p);
}
END_TEST

/* ------------------------------------------------------------------------
 * UTF-8
 * ---------------------------------------------------------------------- */

START_TEST(test_utf8_single_frame)
{
	struct stream *s = stream_new();

	put_frame(s, CH_WS_FIN | CH_WS_OP_TEXT, LIT("ok \xed\xa0\x80 surrogate"));
	expect_error(s->b, s->n, SMALL_MAX, 0, CH_WS_CLOSE_BAD_DATA);
	s->n = 0;
	put_frame(s, CH_WS_FIN | CH_WS_OP_TEXT, LIT("\xff"));
	expect_error(s->b, s->n, SMALL_MAX, 0, CH_WS_CLOSE_BAD_DATA);
	/* Ends inside a character. */
	s->n = 0;
	put_frame(s, CH_WS_FIN | CH_WS_OP_TEXT, LIT("euro \xe2\x82"));
	expect_error(s->b, s->n, SMALL_MAX, 0, CH_WS_CLOSE_BAD_DATA);
	/* Binary is not checked. */
	{
		struct recs a;

		s->n = 0;
		put_frame(s, CH_WS_FIN | CH_WS_OP_BINARY, LIT("\xff\xe2\x82"));
		run_once(s->b, s->n, SMALL_MAX, &a);
		ck_assert_int_eq(a.n, 1);
		assert_event(&a, 0, CH_WS_EV_BINARY, "\xff\xe2\x82", 3);
		recs_free(&a);
	}
	free(s);
}
END_TEST

START_TEST(test_utf8_across_fragments)
{
	struct stream *s = stream_new();
	struct recs a;

	/* Each fragment alone is bad; together they are U+03BA. */
	put_frame(s, CH_WS_OP_TEXT, LIT("\xce"));
	put_frame(s, CH_WS_FIN | CH_WS_OP_CONT, LIT("\xba"));
	run_once(s->b, s->n, SMALL_MAX, &a);
	ck_assert_int_eq(a.n, 1);
	assert_event(&a, 0, CH_WS_EV_TEXT, "\xce\xba", 2);
	recs_free(&a);
	/* A surrogate split over fragments. */
	s->n = 0;
	put_frame(s, CH_WS_OP_TEXT, LIT("\xed"));
	put_frame(s, CH_WS_FIN | CH_WS_OP_CONT, LIT("\xa0\x80"));
	expect_error(s->b, s->n, SMALL_MAX, 0, CH_WS_CLOSE_BAD_DATA);
	/* Fail fast: the first fragment alone is enough to refuse. */
	s->n = 0;
	put_frame(s, CH_WS_OP_TEXT, LIT("good \xc0\xaf"));
	expect_error(s->b, s->n, SMALL_MAX, 0, CH_WS_CLOSE_BAD_DATA);
	/* Message ends inside a character (last fragment empty). */
	s->n = 0;
	put_frame(s, CH_WS_OP_TEXT, LIT("a"));
	put_frame(s, CH_WS_OP_CONT, LIT("\xf0\x90"));
	put_frame(s, CH_WS_FIN | CH_WS_OP_CONT, "", 0);
	expect_error(s->b, s->n, SMALL_MAX, 0, CH_WS_CLOSE_BAD_DATA);
	free(s);
}
END_TEST

/* Valid text cut into 2 and 3 fragments at every byte: same message. */
START_TEST(test_utf8_every_fragment_split)
{
	static const char text[] = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 "
				   "\xf4\x8f\xbf\xbf \xe2\x82\xac \xf0\x9f\x98\x80!";
	const size_t n = sizeof(text) - 1;
	struct stream *s = stream_new();
	struct recs a;

	for (size_t i = 0; i <= n; i++) {
		for (size_t j = i; j <= n; j++) {
			s->n = 0;
			put_frame(s, CH_WS_OP_TEXT, text, i);
			if (j > i)	/* two fragments when j == i */
				put_frame(s, CH_WS_OP_CONT, text + i, j - i);
			put_frame(s, CH_WS_FIN | CH_WS_OP_CONT, text + j, n - j);
			run_once(s->b, s->n, SMALL_MAX, &a);
			ck_assert_msg(a.n == 1, "split %zu/%zu", i, j);
			assert_event(&a, 0, CH_WS_EV_TEXT, text, n);
			recs_free(&a);
		}
	}
	free(s);
}
END_TEST

/* ------------------------------------------------------------------------
 * Close frames
 * ---------------------------------------------------------------------- */

static void put_close(struct stream *s, unsigned code, const char *reason, size_t rlen)
{
	uint8_t pay[CH_WS_MAX_CONTROL_PAYLOAD];

	pay[0] = (uint8_t)(code >> 8);
	pay[1] = (uint8_t)code;
	memcpy(pay + 2, reason, rlen);
	put_frame(s, CH_WS_FIN | CH_WS_OP_CLOSE, pay, 2 + rlen);
}

START_TEST(test_close_valid_codes)
{
	static const unsigned codes[] = { 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
					  1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999 };
	struct stream *s = stream_new();
	struct recs a;

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		s->n = 0;
		put_close(s, codes[i], LIT("bye \xe2\x82\xac"));
		/* Ignored: nothing comes after a close. */
		put_raw(s, LIT("\x81\x05junk"));
		run_once(s->b, s->n, SMALL_MAX, &a);
		ck_assert_int_eq(a.n, 1);
		assert_event(&a, 0, CH_WS_EV_CLOSE, "bye \xe2\x82\xac", 7);
		ck_assert_uint_eq(a.r[0].code, codes[i]);
		recs_free(&a);
	}
	/* Empty: no status. */
	s->n = 0;
	put_frame(s, CH_WS_FIN | CH_WS_OP_CLOSE, "", 0);
	run_once(s->b, s->n, SMALL_MAX, &a);
	ck_assert_int_eq(a.n, 1);
	assert_event(&a, 0, CH_WS_EV_CLOSE, "", 0);
	ck_assert_uint_eq(a.r[0].code, CH_WS_CLOSE_NO_STATUS);
	recs_free(&a);
	/* Code alone, and the longest reason; inside a fragmented message. */
	{
		char reason[CH_WS_MAX_CLOSE_REASON];

		memset(reason, 'r', sizeof(reason));
		s->n = 0;
		put_frame(s, CH_WS_OP_TEXT, "a", 1);
		put_close(s, 1000, "", 0);
		run_once(s->b, s->n, SMALL_MAX, &a);
		ck_assert_int_eq(a.n, 1);
		assert_event(&a, 0, CH_WS_EV_CLOSE, "", 0);
		ck_assert_uint_eq(a.r[0].code, 1000);
		recs_free(&a);
		s->n = 0;
		put_close(s, 4000, reason, sizeof(reason));
		run_once(s->b, s->n, SMALL_MAX, &a);
		assert_event(&a, 0, CH_WS_EV_CLOSE, reason, sizeof(reason));
		recs_free(&a);
	}
	free(s);
}
END_TEST

START_TEST(test_close_invalid)
{
	static const unsigned codes[] = { 0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100,
					  2000, 2999, 5000, 65535 };
	struct stream *s = stream_new();

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		s->n = 0;
		put_close(s, codes[i], "", 0);
		expect_error(s->b, s->n, SMALL_MAX, 0, CH_WS_CLOSE_PROTOCOL);
	}
	/* One byte. */
	s->n = 0;
	put_frame(s, CH_WS_FIN | CH_WS_OP_CLOSE, "\x03", 1);
	expect_error(s->b, s->n, SMALL_MAX, 0, CH_WS_CLOSE_PROTOCOL);
	/* Reason not UTF-8 (and ending inside a character). */
	s->n = 0;
	put_close(s, 1000, LIT("bad \xff"));
	expect_error(s->b, s->n, SMALL_MAX, 0, CH_WS_CLOSE_BAD_DATA);
	s->n = 0;
	put_close(s, 1000, LIT("cut \xe2\x82"));
	expect_error(s->b, s->n, SMALL_MAX, 0, CH_WS_CLOSE_BAD_DATA);
	free(s);
}
END_TEST

/* ------------------------------------------------------------------------
 * Size limit
 * ---------------------------------------------------------------------- */

START_TEST(test_size_limit)
{
	struct stream *s = stream_new();
	uint8_t *pay = pattern(SMALL_MAX + 1);
	struct recs a, c;

	/* Exactly the limit: fine, split or not. */
	put_frame(s, CH_WS_FIN | CH_WS_OP_BINARY, pay, SMALL_MAX);
	run_once(s->b, s->n, SMALL_MAX, &a);
	assert_event(&a, 0, CH_WS_EV_BINARY, pay, SMALL_MAX);
	run_bytewise(s->b, s->n, SMALL_MAX, &c);
	assert_same(&a, &c, "bytewise");
	recs_free(&a);
	recs_free(&c);
	/* One more: 1009 from the header alone (4 bytes here), before any payload. */
	s->n = 0;
	put_frame(s, CH_WS_FIN | CH_WS_OP_BINARY, pay, SMALL_MAX + 1);
	expect_error(s->b, s->n, SMALL_MAX, 0, CH_WS_CLOSE_TOO_BIG);
	expect_error(s->b, 4, SMALL_MAX, 0, CH_WS_CLOSE_TOO_BIG);
	/* Fragments summing over the limit. */
	s->n = 0;
	memset(pay, 'a', SMALL_MAX + 1);
	put_frame(s, CH_WS_OP_TEXT, pay, 600);
	put_frame(s, CH_WS_FIN | CH_WS_OP_PING, "", 0);
	put_frame(s, CH_WS_FIN | CH_WS_OP_CONT, pay, 401);
	expect_error(s->b, s->n, SMALL_MAX, 1, CH_WS_CLOSE_TOO_BIG);
	/* ... and summing to exactly the limit. */
	s->n = 0;
	put_frame(s, CH_WS_OP_TEXT, pay, 600);
	put_frame(s, CH_WS_FIN | CH_WS_OP_CONT, pay, 400);
	run_bytewise(s->b, s->n, SMALL_MAX, &a);
	ck_assert_int_eq(a.n, 1);
	assert_event(&a, 0, CH_WS_EV_TEXT, pay, SMALL_MAX);
	recs_free(&a);
	/* Control frames do not count towards a message. */
	s->n = 0;
	put_frame(s, CH_WS_OP_TEXT, pay, SMALL_MAX);
	put_frame(s, CH_WS_FIN | CH_WS_OP_PING, pay, 100);
	put_frame(s, CH_WS_FIN | CH_WS_OP_CONT, "", 0);
	run_once(s->b, s->n, SMALL_MAX, &a);
	ck_assert_int_eq(a.n, 2);
	ck_assert_int_eq(a.r[1].type, CH_WS_EV_TEXT);
	recs_free(&a);
	free(pay);
	free(s);
}
END_TEST

/* The buffer never grows past the limit, however the bytes trickle in. */
START_TEST(test_memory_bounded)
{
	struct stream *s = stream_new();
	uint8_t *pay = pattern(SMALL_MAX);
	struct ch_ws_parser p;
	struct ch_ws_event ev;
	size_t peak = 0;

	put_frame(s, CH_WS_OP_BINARY, pay, 500);
	put_frame(s, CH_WS_FIN | CH_WS_OP_CONT, pay + 500, 500);
	ch_ws_parser_init(&p, SMALL_MAX);
	for (size_t i = 0; i < s->n; i++) {
		ch_ws_parse(&p, s->b + i, 1, &ev);
		if (ch_ws_parser_mem(&p) > peak)
			peak = ch_ws_parser_mem(&p);
		if (ev.type != CH_WS_EV_NONE) {
			ck_assert_int_eq(ev.type, CH_WS_EV_BINARY);
			ck_assert_uint_eq(ev.len, SMALL_MAX);
			ck_assert(memcmp(ev.data, pay, SMALL_MAX) == 0);
			ck_assert_uint_eq(i, s->n - 1);
		}
	}
	ck_assert_uint_ge(peak, SMALL_MAX);
	ck_assert_uint_le(peak, SMALL_MAX);
	ch_ws_parse(&p, NULL, 0, &ev);
	ck_assert_uint_eq(ch_ws_parser_mem(&p), 0);
	ch_ws_parser_free(&p);

	/* A header claiming the whole limit, then a trickle: memory follows
	 * the bytes that came, not the length claimed. */
	s->n = 0;
	put_frame(s, CH_WS_OP_BINARY, pay, SMALL_MAX);
	ch_ws_parser_init(&p, SMALL_MAX);
	ck_assert_uint_eq(ch_ws_parse(&p, s->b, 8 + 10, &ev), 8 + 10);
	ck_assert_int_eq(ev.type, CH_WS_EV_NONE);
	ck_assert_uint_ge(ch_ws_parser_mem(&p), 10);
	ck_assert_uint_lt(ch_ws_parser_mem(&p), SMALL_MAX / 2);
	ch_ws_parser_free(&p);
	free(pay);
	free(s);
}
END_TEST

/* ------------------------------------------------------------------------
 * Every split of a stream of frames
 * ---------------------------------------------------------------------- */

static void build_mixed(struct stream *s)
{
	uint8_t *pay = pattern(300);

	put_frame(s, CH_WS_FIN | CH_WS_OP_TEXT, "Hello", 5);
	put_frame(s, CH_WS_FIN | CH_WS_OP_BINARY, pay, 130);		/* 16-bit length */
	put_frame(s, CH_WS_OP_TEXT, LIT("caf\xc3"));			/* split character */
	put_frame(s, CH_WS_FIN | CH_WS_OP_PING, "ping", 4);
	put_frame(s, CH_WS_OP_CONT, LIT("\xa9 \xe2\x82"));
	put_frame(s, CH_WS_FIN | CH_WS_OP_CONT, LIT("\xac"));
	put_frame(s, CH_WS_FIN | CH_WS_OP_PONG, "", 0);
	put_frame(s, CH_WS_FIN | CH_WS_OP_TEXT, "", 0);
	put_frame(s, CH_WS_FIN | CH_WS_OP_BINARY, pay, 7);
	put_close(s, 1000, LIT("done"));
	free(pay);
}

START_TEST(test_every_split_point)
{
	struct stream *s = stream_new();
	struct recs want, got;
	size_t cuts[MAX_CUTS];

	build_mixed(s);
	run_once(s->b, s->n, SMALL_MAX, &want);
	ck_assert_int_eq(want.n, 8);
	assert_event(&want, 0, CH_WS_EV_TEXT, "Hello", 5);
	ck_assert_int_eq(want.r[1].type, CH_WS_EV_BINARY);
	assert_event(&want, 2, CH_WS_EV_PING, "ping", 4);
	assert_event(&want, 3, CH_WS_EV_TEXT, "caf\xc3\xa9 \xe2\x82\xac", 9);
	assert_event(&want, 4, CH_WS_EV_PONG, "", 0);
	assert_event(&want, 5, CH_WS_EV_TEXT, "", 0);
	assert_event(&want, 6, CH_WS_EV_BINARY, "\x03\x0a\x11\x18\x1f\x26\x2d", 7);
	assert_event(&want, 7, CH_WS_EV_CLOSE, "done", 4);
	ck_assert_uint_eq(want.r[7].code, 1000);
	for (size_t i = 0; i <= s->n; i++) {
		for (size_t j = i; j <= s->n; j++) {
			cuts[0] = i;
			cuts[1] = j;
			run_cuts(s->b, s->n, SMALL_MAX, cuts, 2, &got);
			assert_same(&want, &got, "two cuts");
			recs_free(&got);
		}
	}
	run_bytewise(s->b, s->n, SMALL_MAX, &got);
	assert_same(&want, &got, "bytewise");
	recs_free(&got);
	recs_free(&want);
	free(s);
}
END_TEST

START_TEST(test_every_split_point_close)
{
	struct stream *s = stream_new();
	struct recs want, got;
	size_t cut;

	/* Frames after the close are ignored, wherever the cut falls. */
	build_mixed(s);
	put_frame(s, CH_WS_FIN | CH_WS_OP_PING, "after", 5);
	put_raw(s, LIT("\x81\x05junk"));
	run_once(s->b, s->n, SMALL_MAX, &want);
	ck_assert_int_eq(want.n, 8);
	assert_event(&want, 7, CH_WS_EV_CLOSE, "done", 4);
	ck_assert_uint_eq(want.r[7].code, 1000);
	for (cut = 0; cut <= s->n; cut++) {
		run_cuts(s->b, s->n, SMALL_MAX, &cut, 1, &got);
		assert_same(&want, &got, "one cut");
		recs_free(&got);
	}
	recs_free(&want);
	free(s);
}
END_TEST

/* An error stream split anywhere: the same events up to the same error. */
START_TEST(test_every_split_point_error)
{
	struct stream *s = stream_new();
	struct recs want, got;
	size_t cut;

	put_frame(s, CH_WS_FIN | CH_WS_OP_TEXT, "ok", 2);
	put_frame(s, CH_WS_OP_TEXT, LIT("a\xe2"));
	put_frame(s, CH_WS_FIN | CH_WS_OP_PING, "p", 1);
	put_frame(s, CH_WS_FIN | CH_WS_OP_CONT, LIT("\x82\x28"));	/* bad third byte */
	put_frame(s, CH_WS_FIN | CH_WS_OP_TEXT, "never", 5);
	run_once(s->b, s->n, SMALL_MAX, &want);
	ck_assert_int_eq(want.n, 3);
	ck_assert_int_eq(want.r[2].type, CH_WS_EV_ERROR);
	ck_assert_uint_eq(want.r[2].code, CH_WS_CLOSE_BAD_DATA);
	for (cut = 0; cut <= s->n; cut++) {
		run_cuts(s->b, s->n, SMALL_MAX, &cut, 1, &got);
		assert_same(&want, &got, "one cut");
		recs_free(&got);
	}
	recs_free(&want);
	free(s);
}
END_TEST

/* ------------------------------------------------------------------------
 * Writers
 * ---------------------------------------------------------------------- */

START_TEST(test_frame_header)
{
	uint8_t h[CH_WS_MAX_SERVER_HEADER];

	ck_assert_uint_eq(ch_ws_frame_header(CH_WS_OP_TEXT, 0, h), 2);
	ck_assert(memcmp(h, "\x81\x00", 2) == 0);
	ck_assert_uint_eq(ch_ws_frame_header(CH_WS_OP_TEXT, 125, h), 2);
	ck_assert(memcmp(h, "\x81\x7d", 2) == 0);
	ck_assert_uint_eq(ch_ws_frame_header(CH_WS_OP_BINARY, 126, h), 4);
	ck_assert(memcmp(h, "\x82\x7e\x00\x7e", 4) == 0);
	ck_assert_uint_eq(ch_ws_frame_header(CH_WS_OP_BINARY, 65535, h), 4);
	ck_assert(memcmp(h, "\x82\x7e\xff\xff", 4) == 0);
	ck_assert_uint_eq(ch_ws_frame_header(CH_WS_OP_TEXT, 65536, h), 10);
	ck_assert(memcmp(h, "\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10) == 0);
	ck_assert_uint_eq(ch_ws_frame_header(CH_WS_OP_TEXT, 0x0102030405060708ull, h), 10);
	ck_assert(memcmp(h, "\x81\x7f\x01\x02\x03\x04\x05\x06\x07\x08", 10) == 0);
}
END_TEST

START_TEST(test_control_writers)
{
	uint8_t f[CH_WS_MAX_CONTROL_FRAME];
	char reason[CH_WS_MAX_CLOSE_REASON + 10];
	uint8_t big[CH_WS_MAX_CONTROL_PAYLOAD + 1] = { 0 };

	ck_assert_uint_eq(ch_ws_close_frame(1000, LIT("bye"), f), 7);
	ck_assert(memcmp(f, "\x88\x05\x03\xe8" "bye", 7) == 0);
	ck_assert_uint_eq(ch_ws_close_frame(CH_WS_CLOSE_TOO_BIG, NULL, 0, f), 4);
	ck_assert(memcmp(f, "\x88\x02\x03\xf1", 4) == 0);
	/* Codes that never go on the wire: an empty close. */
	ck_assert_uint_eq(ch_ws_close_frame(CH_WS_CLOSE_NO_STATUS, LIT("x"), f), 2);
	ck_assert(memcmp(f, "\x88\x00", 2) == 0);
	ck_assert_uint_eq(ch_ws_close_frame(CH_WS_CLOSE_ABNORMAL, LIT("x"), f), 2);
	/* A long reason is cut to 123 bytes, not inside a character. */
	memset(reason, 'r', sizeof(reason));
	ck_assert_uint_eq(ch_ws_close_frame(1001, reason, sizeof(reason), f),
			  CH_WS_MAX_CONTROL_FRAME);
	ck_assert_uint_eq(f[1], CH_WS_MAX_CONTROL_PAYLOAD);
	reason[CH_WS_MAX_CLOSE_REASON - 1] = (char)0xc3;	/* "é" straddles the limit */
	reason[CH_WS_MAX_CLOSE_REASON] = (char)0xa9;
	ck_assert_uint_eq(ch_ws_close_frame(1001, reason, sizeof(reason), f),
			  CH_WS_MAX_CONTROL_FRAME - 1);
	ck_assert_uint_eq(f[1], CH_WS_MAX_CONTROL_PAYLOAD - 1);
	ck_assert(ch_utf8_valid(f + 4, f[1] - 2u));

	ck_assert_uint_eq(ch_ws_ping_frame("abc", 3, f), 5);
	ck_assert(memcmp(f, "\x89\x03" "abc", 5) == 0);
	ck_assert_uint_eq(ch_ws_pong_frame("abc", 3, f), 5);
	ck_assert(memcmp(f, "\x8a\x03" "abc", 5) == 0);
	ck_assert_uint_eq(ch_ws_pong_frame(NULL, 0, f), 2);
	ck_assert(memcmp(f, "\x8a\x00", 2) == 0);
	ck_assert_uint_eq(ch_ws_ping_frame(big, sizeof(big), f), 0);
	ck_assert_uint_eq(ch_ws_pong_frame(big, sizeof(big) - 1, f), CH_WS_MAX_CONTROL_FRAME);
}
END_TEST

/* The word-at-a-time mask against the definition, at every offset. */
START_TEST(test_mask)
{
	uint8_t src[64], dst[64 + 8];

	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(i * 13 + 1);
	for (uint64_t off = 0; off < 8; off++) {
		for (size_t n = 0; n <= sizeof(src) - 8; n++) {
			for (size_t a = 0; a < 8; a++) {
				ch_ws_mask(dst + a, src, n, KEY, off);
				for (size_t i = 0; i < n; i++)
					ck_assert_uint_eq(dst[a + i], src[i] ^ KEY[(off + i) % 4]);
			}
		}
	}
	/* In place, twice: back where it started. */
	memcpy(dst, src, sizeof(src));
	ch_ws_mask(dst, dst, sizeof(src), KEY, 3);
	ck_assert(memcmp(dst, src, sizeof(src)) != 0);
	ch_ws_mask(dst, dst, sizeof(src), KEY, 3);
	ck_assert(memcmp(dst, src, sizeof(src)) == 0);
}
END_TEST

static Suite *ws_suite(void)
{
	Suite *s = suite_create("ws");
	TCase *hs = tcase_create("handshake");
	TCase *fr = tcase_create("frames");
	TCase *wr = tcase_create("writers");

	tcase_add_test(hs, test_accept_key_rfc);
	tcase_add_test(hs, test_format_101);
	tcase_add_test(hs, test_upgrade_checks);
	suite_add_tcase(s, hs);

	tcase_set_timeout(fr, 120);
	tcase_add_test(fr, test_rfc_unmasked_text);
	tcase_add_test(fr, test_rfc_masked_text);
	tcase_add_test(fr, test_rfc_fragmented_text);
	tcase_add_test(fr, test_rfc_ping_pong);
	tcase_add_test(fr, test_rfc_long_lengths);
	tcase_add_test(fr, test_non_minimal_lengths);
	tcase_add_test(fr, test_len64_top_bit);
	tcase_add_test(fr, test_zero_copy);
	tcase_add_test(fr, test_fragments_with_ping);
	tcase_add_test(fr, test_sequence_errors);
	tcase_add_test(fr, test_control_frame_rules);
	tcase_add_test(fr, test_rsv_bits);
	tcase_add_loop_test(fr, test_unknown_opcodes, 0, 16);
	tcase_add_test(fr, test_error_is_sticky);
	tcase_add_test(fr, test_utf8_single_frame);
	tcase_add_test(fr, test_utf8_across_fragments);
	tcase_add_test(fr, test_utf8_every_fragment_split);
	tcase_add_test(fr, test_close_valid_codes);
	tcase_add_test(fr, test_close_invalid);
	tcase_add_test(fr, test_size_limit);
	tcase_add_test(fr, test_memory_bounded);
	tcase_add_test(fr, test_every_split_point);
	tcase_add_test(fr, test_every_split_point_close);
	tcase_add_test(fr, test_every_split_point_error);
	suite_add_tcase(s, fr);

	tcase_add_test(wr, test_frame_header);
	tcase_add_test(wr, test_control_writers);
	tcase_add_test(wr, test_mask);
	suite_add_tcase(s, wr);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(ws_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
