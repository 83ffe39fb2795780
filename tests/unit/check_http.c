/*
 * Unit tests for worker/http.c: request heads (fed at every split point, in
 * exactly-sized heap copies so ASan catches any read past the bytes given),
 * chunked bodies (at every split point), path decoding and normalisation
 * (traversal attempts), reason phrases and response heads.
 */
#include "worker/http.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIT(s) (s), (sizeof(s) - 1)

/* ------------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------- */

/* A heap copy of exactly n bytes: reading buf[n] is an ASan error. */
static char *exact_copy(const char *s, size_t n)
{
	char *p = malloc(n ? n : 1);

	ck_assert_ptr_nonnull(p);
	memcpy(p, s, n);
	return p;
}

static int parse_once(const char *s, size_t n, struct ch_http_req *req)
{
	char *b = exact_copy(s, n);
	size_t scanned = 0;
	int rc = ch_http_parse_head(b, n, &scanned, req);

	/* Rebase the slices onto s so the caller can look at them. */
	if (rc > 0) {
		ptrdiff_t d = s - b;
		int i;

		req->method_text.p += d;
		req->target.p += d;
		req->path.p += d;
		req->query.p += d;
		for (i = 0; i < req->n_headers; i++) {
			req->headers[i].name.p += d;
			req->headers[i].value.p += d;
		}
		if (req->host.p)
			req->host.p += d;
		if (req->authorization.p)
			req->authorization.p += d;
		if (req->content_type.p)
			req->content_type.p += d;
	}
	free(b);
	return rc;
}

static void same_str(struct ch_str a, const char *abase, struct ch_str b, const char *bbase)
{
	ck_assert_uint_eq(a.len, b.len);
	if (a.p == NULL || b.p == NULL) {
		ck_assert(a.p == NULL && b.p == NULL);
		return;
	}
	ck_assert_int_eq(a.p - abase, b.p - bbase);
}

static void same_req(const struct ch_http_req *a, const char *abase,
		     const struct ch_http_req *b, const char *bbase)
{
	int i;

	ck_assert_int_eq(a->method, b->method);
	same_str(a->method_text, abase, b->method_text, bbase);
	same_str(a->target, abase, b->target, bbase);
	same_str(a->path, abase, b->path, bbase);
	same_str(a->query, abase, b->query, bbase);
	ck_assert_int_eq(a->minor, b->minor);
	ck_assert_int_eq(a->n_headers, b->n_headers);
	for (i = 0; i < a->n_headers; i++) {
		same_str(a->headers[i].name, abase, b->headers[i].name, bbase);
		same_str(a->headers[i].value, abase, b->headers[i].value, bbase);
	}
	ck_assert_int_eq(a->content_length, b->content_length);
	ck_assert_int_eq(a->chunked, b->chunked);
	ck_assert_int_eq(a->keep_alive, b->keep_alive);
	ck_assert_int_eq(a->expect_continue, b->expect_continue);
	ck_assert_int_eq(a->upgrade_websocket, b->upgrade_websocket);
	same_str(a->host, abase, b->host, bbase);
	same_str(a->authorization, abase, b->authorization, bbase);
	same_str(a->content_type, abase, b->content_type, bbase);
}

/*
 * Parse s[0..n) one-shot, then:
 *  - every prefix k from scratch: AGAIN before the point where the result is
 *    decided, the one-shot result from there on;
 *  - every split k: prefix k, then the whole buffer with *scanned carried;
 *  - one byte at a time with *scanned carried (the slow-trickle client).
 * Every run must give the same code and the same request. Returns the code,
 * with *req (sliced onto s) from the one-shot parse.
 */
static int parse_all_splits(const char *s, size_t n, struct ch_http_req *req)
{
	static struct ch_http_req r2;
	int r0 = parse_once(s, n, req);
	size_t k, decided = n + 1;

	for (k = 0; k <= n; k++) {
		int r = parse_once(s, k, &r2);

		if (r == CH_HTTP_AGAIN) {
			ck_assert_msg(decided > n, "AGAIN at %zu after a result at %zu", k, decided);
			continue;
		}
		if (decided > n)
			decided = k;
		ck_assert_msg(r == r0, "prefix %zu: %d, whole: %d", k, r, r0);
		if (r > 0) {
			ck_assert_uint_eq((size_t)r, decided);	/* done exactly at the end */
			same_req(&r2, s, req, s);
		}
	}
	for (k = 0; k <= n; k++) {
		char *b = exact_copy(s, n);
		size_t scanned = 0;
		int r = ch_http_parse_head(b, k, &scanned, &r2);

		ck_assert_uint_le(scanned, k);
		if (k < decided) {
			ck_assert_int_eq(r, CH_HTTP_AGAIN);
			r = ch_http_parse_head(b, n, &scanned, &r2);
		}
		ck_assert_msg(r == r0, "split %zu: %d, whole: %d", k, r, r0);
		if (r > 0 && k < decided)
			same_req(&r2, b, req, s);
		free(b);
	}
	{
		char *b = exact_copy(s, n);
		size_t scanned = 0;
		int r = CH_HTTP_AGAIN;

		for (k = 0; k <= n && r == CH_HTTP_AGAIN; k++) {
			r = ch_http_parse_head(b, k, &scanned, &r2);
			if (r == CH_HTTP_AGAIN && k <= CH_HTTP_MAX_HEAD)
				ck_assert_uint_eq(scanned, k);	/* nothing searched twice */
		}
		ck_assert_int_eq(r, r0);
		if (r > 0)
			same_req(&r2, b, req, s);
		free(b);
	}
	return r0;
}

static int parse_str(const char *s, struct ch_http_req *req)
{
	return parse_all_splits(s, strlen(s), req);
}

static int str_eq(struct ch_str a, const char *s)
{
	return a.len == strlen(s) && memcmp(a.p, s, a.len) == 0;
}

static struct ch_http_req req;	/* 2 KiB: keep it off the test stack */

/* ------------------------------------------------------------------------
 * Request heads: valid
 * ---------------------------------------------------------------------- */

START_TEST(test_simple_get)
{
	const char *s = "GET /room/1?since=5&x HTTP/1.1\r\n"
			"Host: example.com\r\n"
			"User-Agent:  curl/8  \r\n"
			"Authorization: Bearer abc\r\n"
			"X-Empty:\r\n"
			"\r\n";
	const struct ch_str *v;

	ck_assert_int_eq(parse_str(s, &req), (int)strlen(s));
	ck_assert_int_eq(req.method, CH_HTTP_GET);
	ck_assert(str_eq(req.method_text, "GET"));
	ck_assert(str_eq(req.target, "/room/1?since=5&x"));
	ck_assert(str_eq(req.path, "/room/1"));
	ck_assert(str_eq(req.query, "since=5&x"));
	ck_assert_int_eq(req.minor, 1);
	ck_assert_int_eq(req.n_headers, 4);
	ck_assert(str_eq(req.headers[1].name, "User-Agent"));
	ck_assert(str_eq(req.headers[1].value, "curl/8"));
	ck_assert(str_eq(req.headers[3].value, ""));
	ck_assert(str_eq(req.host, "example.com"));
	ck_assert(str_eq(req.authorization, "Bearer abc"));
	ck_assert_ptr_null(req.content_type.p);
	ck_assert_int_eq(req.content_length, -1);
	ck_assert_int_eq(req.chunked, 0);
	ck_assert_int_eq(req.keep_alive, 1);
	ck_assert_int_eq(req.upgrade_websocket, 0);
	ck_assert_int_eq(req.expect_continue, 0);

	v = ch_http_header(&req, "user-agent");
	ck_assert_ptr_nonnull(v);
	ck_assert(str_eq(*v, "curl/8"));
	v = ch_http_header(&req, "HOST");
	ck_assert_ptr_nonnull(v);
	ck_assert(str_eq(*v, "example.com"));
	ck_assert_ptr_null(ch_http_header(&req, "Cookie"));
	ck_assert_ptr_null(ch_http_header(&req, "Hos"));
	ck_assert_ptr_null(ch_http_header(&req, "Hostx"));
}
END_TEST

START_TEST(test_query_forms)
{
	ck_assert_int_gt(parse_str("GET /a? HTTP/1.1\r\n\r\n", &req), 0);
	ck_assert(str_eq(req.path, "/a"));
	ck_assert_uint_eq(req.query.len, 0);
	ck_assert(str_eq(req.target, "/a?"));
	ck_assert_int_gt(parse_str("GET /a?b?c HTTP/1.1\r\n\r\n", &req), 0);
	ck_assert(str_eq(req.path, "/a"));
	ck_assert(str_eq(req.query, "b?c"));
	ck_assert_int_gt(parse_str("GET / HTTP/1.0\r\n\r\n", &req), 0);
	ck_assert(str_eq(req.path, "/"));
	ck_assert_uint_eq(req.query.len, 0);
	ck_assert_int_eq(req.minor, 0);
	ck_assert_int_eq(req.keep_alive, 0);
	ck_assert_int_gt(parse_str("OPTIONS * HTTP/1.1\r\n\r\n", &req), 0);
	ck_assert_int_eq(req.method, CH_HTTP_OPTIONS);
	ck_assert(str_eq(req.path, "*"));
}
END_TEST

START_TEST(test_bare_lf_and_leading_blank_lines)
{
	const char *lf = "POST /x HTTP/1.1\nHost: h\nContent-Length: 3\n\nabc";
	const char *lead = "\r\n\n\r\nGET /y HTTP/1.1\r\nHost: h\r\n\r\nGET /z";
	const char *mixed = "GET / HTTP/1.1\r\nA: 1\n\r\n";

	ck_assert_int_eq(parse_str(lf, &req), (int)strlen(lf) - 3);
	ck_assert_int_eq(req.method, CH_HTTP_POST);
	ck_assert_int_eq(req.content_length, 3);
	ck_assert(str_eq(req.host, "h"));

	ck_assert_int_eq(parse_str(lead, &req), (int)strlen(lead) - 6);
	ck_assert(str_eq(req.path, "/y"));
	ck_assert_int_eq(req.n_headers, 1);

	ck_assert_int_eq(parse_str(mixed, &req), (int)strlen(mixed));
	ck_assert_int_eq(req.n_headers, 1);
	ck_assert(str_eq(req.headers[0].value, "1"));

	/* Only blank lines so far: still waiting for a request line. */
	ck_assert_int_eq(parse_str("\r\n\r\n\n\n", &req), CH_HTTP_AGAIN);
}
END_TEST

START_TEST(test_pipelined_returns_first_head)
{
	const char *s = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: b\r\n\r\n";
	size_t first = strlen("GET /1 HTTP/1.1\r\nHost: a\r\n\r\n");
	size_t scanned = 0;
	int rc;

	ck_assert_int_eq(parse_str(s, &req), (int)first);
	ck_assert(str_eq(req.path, "/1"));
	rc = ch_http_parse_head(s + first, strlen(s) - first, &scanned, &req);
	ck_assert_int_eq(rc, (int)(strlen(s) - first));
	ck_assert(str_eq(req.path, "/2"));
	ck_assert(str_eq(req.host, "b"));
}
END_TEST

START_TEST(test_methods)
{
	static const struct {
		const char *line;
		enum ch_http_method m;
	} cases[] = {
		{ "GET / HTTP/1.1\r\n\r\n", CH_HTTP_GET },
		{ "HEAD / HTTP/1.1\r\n\r\n", CH_HTTP_HEAD },
		{ "POST / HTTP/1.1\r\n\r\n", CH_HTTP_POST },
		{ "PUT / HTTP/1.1\r\n\r\n", CH_HTTP_PUT },
		{ "DELETE / HTTP/1.1\r\n\r\n", CH_HTTP_DELETE },
		{ "OPTIONS / HTTP/1.1\r\n\r\n", CH_HTTP_OPTIONS },
		{ "PATCH / HTTP/1.1\r\n\r\n", CH_HTTP_OTHER },
		{ "get / HTTP/1.1\r\n\r\n", CH_HTTP_OTHER },
		{ "GETS / HTTP/1.1\r\n\r\n", CH_HTTP_OTHER },
		{ "M-SEARCH / HTTP/1.1\r\n\r\n", CH_HTTP_OTHER },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_int_eq(parse_str(cases[i].line, &req), (int)strlen(cases[i].line));
		ck_assert_int_eq(req.method, cases[i].m);
		ck_assert_uint_eq(req.method_text.len, strcspn(cases[i].line, " "));
	}
}
END_TEST

START_TEST(test_connection_and_upgrade)
{
	static const struct {
		const char *head;
		int keep_alive, ws;
	} cases[] = {
		{ "GET / HTTP/1.1\r\n\r\n", 1, 0 },
		{ "GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 0, 0 },
		{ "GET / HTTP/1.1\r\nConnection: CLOSE\r\n\r\n", 0, 0 },
		{ "GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n", 0, 0 },
		{ "GET / HTTP/1.1\r\nConnection: closed\r\n\r\n", 1, 0 },
		{ "GET / HTTP/1.0\r\n\r\n", 0, 0 },
		{ "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 1, 0 },
		{ "GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", 0, 0 },
		{ "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", 1, 1 },
		{ "GET / HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n\r\n", 1, 1 },
		{ "GET / HTTP/1.1\r\nConnection: keep-alive,upgrade\r\nUpgrade: h2c, websocket\r\n\r\n", 1, 1 },
		{ "GET / HTTP/1.1\r\nConnection: keep-alive\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", 1, 1 },
		{ "GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", 1, 0 },
		{ "GET / HTTP/1.1\r\nConnection: Upgrade\r\n\r\n", 1, 0 },
		{ "GET / HTTP/1.1\r\nUpgrade: websockets\r\nConnection: Upgrade\r\n\r\n", 1, 0 },
		{ "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgraded\r\n\r\n", 1, 0 },
		{ "GET / HTTP/1.1\r\nUpgrade: web socket\r\nConnection: upgrade\r\n\r\n", 1, 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_int_gt(parse_str(cases[i].head, &req), 0);
		ck_assert_msg(req.keep_alive == cases[i].keep_alive, "case %zu keep_alive", i);
		ck_assert_msg(req.upgrade_websocket == cases[i].ws, "case %zu websocket", i);
	}
}
END_TEST

START_TEST(test_body_framing)
{
	ck_assert_int_gt(parse_str("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &req), 0);
	ck_assert_int_eq(req.content_length, 0);
	ck_assert_int_gt(parse_str("POST / HTTP/1.1\r\nContent-Length:  123 \r\n\r\n", &req), 0);
	ck_assert_int_eq(req.content_length, 123);
	ck_assert_int_gt(parse_str("POST / HTTP/1.1\r\nContent-Length: 999999999999999999\r\n\r\n", &req), 0);
	ck_assert_int_eq(req.content_length, 999999999999999999LL);
	ck_assert_int_gt(parse_str("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &req), 0);
	ck_assert_int_eq(req.chunked, 1);
	ck_assert_int_eq(req.content_length, -1);
	ck_assert_int_gt(parse_str("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n", &req), 0);
	ck_assert_int_eq(req.chunked, 1);
	ck_assert_int_gt(parse_str("POST / HTTP/1.1\r\nTransfer-Encoding: ,chunked,\r\n\r\n", &req), 0);
	ck_assert_int_eq(req.chunked, 1);
	ck_assert_int_gt(parse_str("POST / HTTP/1.1\r\nExpect: 100-Continue\r\n"
				   "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n", &req), 0);
	ck_assert_int_eq(req.expect_continue, 1);
	ck_assert(str_eq(req.content_type, "application/json"));
	ck_assert_int_gt(parse_str("POST / HTTP/1.1\r\nExpect: something\r\n\r\n", &req), 0);
	ck_assert_int_eq(req.expect_continue, 0);
}
END_TEST

/* ------------------------------------------------------------------------
 * Request heads: refused
 * ---------------------------------------------------------------------- */

struct bad_case {
	const char *head;
	int rc;
};

static const struct bad_case bad_cases[] = {
	/* request line */
	{ "GET\r\n\r\n", CH_HTTP_E_BAD },
	{ " GET / HTTP/1.1\r\n\r\n", CH_HTTP_E_BAD },
	{ "GET  / HTTP/1.1\r\n\r\n", CH_HTTP_E_BAD },
	{ "GET /  HTTP/1.1\r\n\r\n", CH_HTTP_E_BAD },
	{ "GET / HTTP/1.1 \r\n\r\n", CH_HTTP_E_BAD },
	{ "GET\t/ HTTP/1.1\r\n\r\n", CH_HTTP_E_BAD },
	{ "G(T / HTTP/1.1\r\n\r\n", CH_HTTP_E_BAD },
	{ "GÉT / HTTP/1.1\r\n\r\n", CH_HTTP_E_BAD },
	{ "GET /a\x01z HTTP/1.1\r\n\r\n", CH_HTTP_E_BAD },
	{ "GET /a\x7fz HTTP/1.1\r\n\r\n", CH_HTTP_E_BAD },
	{ "GET /a\tz HTTP/1.1\r\n\r\n", CH_HTTP_E_BAD },
	{ "GET /\xc3\xa9 HTTP/1.1\r\n\r\n", CH_HTTP_E_BAD },
	{ "GET /a\rz HTTP/1.1\r\n\r\n", CH_HTTP_E_BAD },
	{ "GET a HTTP/1.1\r\n\r\n", CH_HTTP_E_BAD },
	{ "GET * HTTP/1.1\r\n\r\n", CH_HTTP_E_BAD },
	{ "OPTIONS *x HTTP/1.1\r\n\r\n", CH_HTTP_E_BAD },
	{ "GET http://h/ HTTP/1.1\r\n\r\n", CH_HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\r\n\r\n", CH_HTTP_E_BAD },
	{ "GET / http/1.1\r\n\r\n", CH_HTTP_E_BAD },
	{ "GET / HTTP/1.1x\r\n\r\n", CH_HTTP_E_BAD },
	{ "GET / HTTP/1.\r\n\r\n", CH_HTTP_E_BAD },
	{ "GET / HTTP/\r\n\r\n", CH_HTTP_E_BAD },
	{ "GET / HTTP/1.1 x\r\n\r\n", CH_HTTP_E_BAD },
	/* versions */
	{ "GET / HTTP/2.0\r\n\r\n", CH_HTTP_E_VERSION },
	{ "GET / HTTP/1.2\r\n\r\n", CH_HTTP_E_VERSION },
	{ "GET / HTTP/0.9\r\n\r\n", CH_HTTP_E_VERSION },
	{ "GET / HTTP/3\r\n\r\n", CH_HTTP_E_VERSION },
	{ "GET / HTTP/1.10\r\n\r\n", CH_HTTP_E_VERSION },
	{ "GET /\r\n\r\n", CH_HTTP_E_VERSION },
	{ "GET /index.html\n\n", CH_HTTP_E_VERSION },
	/* header lines */
	{ "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", CH_HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\nName : x\r\n\r\n", CH_HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\nName\t: x\r\n\r\n", CH_HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\nNoColon\r\n\r\n", CH_HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\n: x\r\n\r\n", CH_HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\n X: y\r\n\r\n", CH_HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\nX: a\r\n  b\r\n\r\n", CH_HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", CH_HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", CH_HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\nX: a\r\r\n\r\n", CH_HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n", CH_HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\nX(: a\r\n\r\n", CH_HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", CH_HTTP_E_BAD },
	/* Content-Length */
	{ "POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", CH_HTTP_E_BAD },
	{ "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", CH_HTTP_E_BAD },
	{ "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", CH_HTTP_E_BAD },
	{ "POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", CH_HTTP_E_BAD },
	{ "POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n", CH_HTTP_E_BAD },
	{ "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", CH_HTTP_E_BAD },
	{ "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", CH_HTTP_E_BAD },
	{ "POST / HTTP/1.1\r\nContent-Length: 9999999999999999999\r\n\r\n", CH_HTTP_E_BAD },
	{ "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", CH_HTTP_E_BAD },
	{ "POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\n", CH_HTTP_E_BAD },
	/* Transfer-Encoding */
	{ "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", CH_HTTP_E_BAD },
	{ "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", CH_HTTP_E_BAD },
	{ "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", CH_HTTP_E_BAD },
	{ "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", CH_HTTP_E_BAD },
	{ "POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n", CH_HTTP_E_BAD },
	{ "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", CH_HTTP_E_BAD },
	{ "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", CH_HTTP_E_NOT_IMPL },
	{ "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", CH_HTTP_E_NOT_IMPL },
	{ "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", CH_HTTP_E_NOT_IMPL },
	{ "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", CH_HTTP_E_NOT_IMPL },
	{ "POST / HTTP/1.1\r\nTransfer-Encoding: chunkedx\r\n\r\n", CH_HTTP_E_NOT_IMPL },
};

START_TEST(test_refused)
{
	const struct bad_case *c = &bad_cases[_i];

	ck_assert_msg(parse_str(c->head, &req) == c->rc, "case %d: \"%s\" gave %d, want %d",
		      _i, c->head, parse_str(c->head, &req), c->rc);
}
END_TEST

START_TEST(test_nul_in_head)
{
	static const char s[] = "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n";
	static const char t[] = "GET /\0 HTTP/1.1\r\n\r\n";

	ck_assert_int_eq(parse_all_splits(s, sizeof(s) - 1, &req), CH_HTTP_E_BAD);
	ck_assert_int_eq(parse_all_splits(t, sizeof(t) - 1, &req), CH_HTTP_E_BAD);
}
END_TEST

/* ------------------------------------------------------------------------
 * Limits
 * ---------------------------------------------------------------------- */

/* A request whose head is exactly total bytes, padded with one header. */
static char *head_of_size(size_t total)
{
	const char *pre = "GET / HTTP/1.1\r\nX-Pad: ";
	const char *post = "\r\n\r\n";
	size_t pad = total - strlen(pre) - strlen(post);
	char *s = malloc(total + 1);

	ck_assert_ptr_nonnull(s);
	strcpy(s, pre);
	memset(s + strlen(pre), 'a', pad);
	strcpy(s + strlen(pre) + pad, post);
	ck_assert_uint_eq(strlen(s), total);
	return s;
}

/* Byte-at-a-time with *scanned carried; returns the first non-AGAIN code. */
static int trickle(const char *s, size_t n, size_t *at)
{
	char *b = exact_copy(s, n);
	size_t k, scanned = 0;
	int r = CH_HTTP_AGAIN;

	for (k = 0; k <= n && r == CH_HTTP_AGAIN; k++)
		r = ch_http_parse_head(b, k, &scanned, &req);
	*at = k - 1;
	free(b);
	return r;
}

START_TEST(test_head_size_limit)
{
	char *fits = head_of_size(CH_HTTP_MAX_HEAD);
	char *over = head_of_size(CH_HTTP_MAX_HEAD + 1);
	size_t at;

	ck_assert_int_eq(parse_once(fits, CH_HTTP_MAX_HEAD, &req), CH_HTTP_MAX_HEAD);
	ck_assert_int_eq(trickle(fits, CH_HTTP_MAX_HEAD, &at), CH_HTTP_MAX_HEAD);
	ck_assert_uint_eq(at, CH_HTTP_MAX_HEAD);

	ck_assert_int_eq(parse_once(over, CH_HTTP_MAX_HEAD + 1, &req), CH_HTTP_E_TOO_LARGE);
	ck_assert_int_eq(trickle(over, CH_HTTP_MAX_HEAD + 1, &at), CH_HTTP_E_TOO_LARGE);
	ck_assert_uint_eq(at, CH_HTTP_MAX_HEAD + 1);
	/* Exactly the limit buffered, no end yet: still waiting. */
	ck_assert_int_eq(parse_once(over, CH_HTTP_MAX_HEAD, &req), CH_HTTP_AGAIN);

	/* An endless header: refused as soon as one byte over, not later. */
	memset(over, 'a', CH_HTTP_MAX_HEAD + 1);
	ck_assert_int_eq(parse_once(over, CH_HTTP_MAX_HEAD, &req), CH_HTTP_AGAIN);
	ck_assert_int_eq(parse_once(over, CH_HTTP_MAX_HEAD + 1, &req), CH_HTTP_E_TOO_LARGE);
	ck_assert_int_eq(trickle(over, CH_HTTP_MAX_HEAD + 1, &at), CH_HTTP_E_TOO_LARGE);
	ck_assert_uint_eq(at, CH_HTTP_MAX_HEAD + 1);
	free(fits);
	free(over);
}
END_TEST

/* A request with n headers "H<i>: v". */
static size_t head_with_headers(char *buf, size_t cap, int n)
{
	size_t len = (size_t)snprintf(buf, cap, "GET / HTTP/1.1\r\n");
	int i;

	for (i = 0; i < n; i++)
		len += (size_t)snprintf(buf + len, cap - len, "H%d: v%d\r\n", i, i);
	len += (size_t)snprintf(buf + len, cap - len, "\r\n");
	ck_assert_uint_lt(len, cap);
	return len;
}

START_TEST(test_header_count_limit)
{
	static char buf[4096];
	size_t n;

	n = head_with_headers(buf, sizeof(buf), CH_HTTP_MAX_HEADERS);
	ck_assert_int_eq(parse_all_splits(buf, n, &req), (int)n);
	ck_assert_int_eq(req.n_headers, CH_HTTP_MAX_HEADERS);
	ck_assert(str_eq(req.headers[CH_HTTP_MAX_HEADERS - 1].name, "H63"));
	ck_assert(str_eq(req.headers[CH_HTTP_MAX_HEADERS - 1].value, "v63"));

	n = head_with_headers(buf, sizeof(buf), CH_HTTP_MAX_HEADERS + 1);
	ck_assert_int_eq(parse_all_splits(buf, n, &req), CH_HTTP_E_TOO_LARGE);
}
END_TEST

START_TEST(test_scanned_clamped)
{
	const char *s = "GET / HTTP/1.1\r\n\r\n";
	size_t scanned = 1000;

	/* A *scanned past the buffer (a caller bug) must not read past it. */
	ck_assert_int_eq(ch_http_parse_head(s, 5, &scanned, &req), CH_HTTP_AGAIN);
	ck_assert_uint_eq(scanned, 5);
}
END_TEST

/* ------------------------------------------------------------------------
 * Chunked bodies
 * ---------------------------------------------------------------------- */

/* Feed in[0..n) in the pieces cut at cuts[]; returns -1 on error or consumed. */
static long chunk_run(const char *in, size_t n, const size_t *cuts, int ncuts,
		      char *body, size_t *body_len, int *done)
{
	struct ch_chunked c;
	size_t pos = 0;
	int i;

	ch_chunked_init(&c);
	*body_len = 0;
	*done = 0;
	for (i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : n;
		char *piece, *out;
		size_t out_len;
		long r;

		if (end < pos)
			continue;
		piece = exact_copy(in + pos, end - pos);
		out = malloc(end - pos + 1);
		ck_assert_ptr_nonnull(out);
		r = ch_chunked_feed(&c, piece, end - pos, out, &out_len, done);
		free(piece);
		if (r < 0) {
			free(out);
			ck_assert_int_eq(ch_chunked_feed(&c, "0", 1, body, &out_len, done), -1);
			return -1;
		}
		ck_assert_uint_le(out_len, (size_t)r);
		memcpy(body + *body_len, out, out_len);
		free(out);
		*body_len += out_len;
		pos += (size_t)r;
		ck_assert_uint_eq(c.total, *body_len);
		if (*done)
			break;
		ck_assert_uint_eq(pos, end);	/* not done: everything consumed */
	}
	return (long)pos;
}

/*
 * Decode one-shot, then with one cut at every point, then (for short inputs)
 * with two cuts at every pair of points: the body, the bytes consumed and
 * whether it ended must not change.
 */
static long chunk_all_splits(const char *in, size_t n, char *body, size_t *body_len, int *done)
{
	char *b2 = malloc(n + 1);
	size_t l2, i, j;
	long r0, r;
	int d2;

	ck_assert_ptr_nonnull(b2);
	r0 = chunk_run(in, n, NULL, 0, body, body_len, done);
	for (i = 0; i <= n; i++) {
		r = chunk_run(in, n, &i, 1, b2, &l2, &d2);
		ck_assert_msg(r == r0, "cut at %zu: %ld, whole: %ld", i, r, r0);
		if (r0 >= 0) {
			ck_assert_int_eq(d2, *done);
			ck_assert_uint_eq(l2, *body_len);
			ck_assert(memcmp(b2, body, l2) == 0);
		}
	}
	for (i = 0; n <= 200 && i <= n; i++) {
		for (j = i; j <= n; j++) {
			size_t cuts[2] = { i, j };

			r = chunk_run(in, n, cuts, 2, b2, &l2, &d2);
			ck_assert_int_eq(r, r0);
			if (r0 >= 0) {
				ck_assert_uint_eq(l2, *body_len);
				ck_assert(memcmp(b2, body, l2) == 0);
			}
		}
	}
	{
		/* Byte by byte. */
		size_t *cuts = malloc((n + 1) * sizeof(*cuts));

		ck_assert_ptr_nonnull(cuts);
		for (i = 0; i < n; i++)
			cuts[i] = i + 1;
		r = chunk_run(in, n, cuts, (int)n, b2, &l2, &d2);
		ck_assert_int_eq(r, r0);
		if (r0 >= 0) {
			ck_assert_uint_eq(l2, *body_len);
			ck_assert(memcmp(b2, body, l2) == 0);
		}
		free(cuts);
	}
	free(b2);
	return r0;
}

struct chunk_case {
	const char *in;
	long consumed;		/* -1: malformed */
	int done;
	const char *body;
};

static const struct chunk_case chunk_cases[] = {
	{ "5\r\nhello\r\n0\r\n\r\n", 15, 1, "hello" },
	{ "5\nhello\n0\n\n", 11, 1, "hello" },
	{ "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", 26, 1, "hello world" },
	{ "A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n", 35, 1, "0123456789abcdefghij" },
	{ "005;name=val;x=\"q\"\r\nhello\r\n0;last\r\n\r\n", 37, 1, "hello" },
	{ "5 ;x\r\nhello\r\n0\t\r\n\r\n", 19, 1, "hello" },
	{ "3\r\na\r\n\r\n0\r\n\r\n", 13, 1, "a\r\n" },
	{ "5\r\nhello\r\n0\r\nX-Sum: 1\r\nY: z\r\n\r\n", 31, 1, "hello" },
	{ "5\r\nhello\r\n0\r\nX: 1\n\n", 19, 1, "hello" },
	{ "0\r\n\r\n", 5, 1, "" },
	/* Bytes after the end belong to the next request: not consumed. */
	{ "2\r\nhi\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n", 12, 1, "hi" },
	{ "0\r\n\r\n0\r\n\r\n", 5, 1, "" },
	/* Incomplete: everything consumed, not done. */
	{ "5\r\nhel", 6, 0, "hel" },
	{ "5\r\nhello\r\n0\r\nX: 1\r\n", 19, 0, "hello" },
	{ "fffffffffffffff\r\nab", 19, 0, "ab" },
	{ "", 0, 0, "" },
	/* Malformed. */
	{ "g\r\n", -1, 0, NULL },
	{ "\r\n", -1, 0, NULL },
	{ ";x\r\n", -1, 0, NULL },
	{ " 5\r\nhello\r\n0\r\n\r\n", -1, 0, NULL },
	{ "-5\r\n", -1, 0, NULL },
	{ "0x5\r\nhello\r\n0\r\n\r\n", -1, 0, NULL },
	{ "5\r\nhelloX\r\n0\r\n\r\n", -1, 0, NULL },
	{ "5\r\nhello\rX0\r\n\r\n", -1, 0, NULL },
	{ "5\rhello\r\n0\r\n\r\n", -1, 0, NULL },
	{ "5 5\r\nhello\r\n0\r\n\r\n", -1, 0, NULL },
	{ "1000000000000000\r\n", -1, 0, NULL },
	{ "0000000000000001\r\nx\r\n0\r\n\r\n", -1, 0, NULL },
	{ "5;a\x01\r\nhello\r\n0\r\n\r\n", -1, 0, NULL },
	{ "0\r\nX: a\rb\r\n\r\n", -1, 0, NULL },
	{ "0\r\n\rX", -1, 0, NULL },
};

START_TEST(test_chunked_cases)
{
	const struct chunk_case *c = &chunk_cases[_i];
	size_t n = strlen(c->in);
	char *body = malloc(n + 1);
	size_t body_len;
	int done;
	long r;

	ck_assert_ptr_nonnull(body);
	r = chunk_all_splits(c->in, n, body, &body_len, &done);
	ck_assert_msg(r == c->consumed, "case %d: consumed %ld, want %ld", _i, r, c->consumed);
	if (c->consumed >= 0) {
		ck_assert_int_eq(done, c->done);
		ck_assert_uint_eq(body_len, strlen(c->body));
		ck_assert(memcmp(body, c->body, body_len) == 0);
	}
	free(body);
}
END_TEST

START_TEST(test_chunked_nul)
{
	static const char trailer[] = "0\r\nX: \0\r\n\r\n";
	static const char ext[] = "1;\0\r\nx\r\n0\r\n\r\n";
	static const char data[] = "3\r\na\0b\r\n0\r\n\r\n";
	char body[sizeof(data)];
	size_t body_len;
	int done;

	ck_assert_int_eq(chunk_all_splits(trailer, sizeof(trailer) - 1, body, &body_len, &done), -1);
	ck_assert_int_eq(chunk_all_splits(ext, sizeof(ext) - 1, body, &body_len, &done), -1);
	/* Chunk data is opaque: a NUL there is just a byte. */
	ck_assert_int_eq(chunk_all_splits(data, sizeof(data) - 1, body, &body_len, &done),
			 (long)sizeof(data) - 1);
	ck_assert_int_eq(done, 1);
	ck_assert_uint_eq(body_len, 3);
	ck_assert(memcmp(body, "a\0b", 3) == 0);
}
END_TEST

START_TEST(test_chunked_in_place_and_done)
{
	char buf[] = "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\nNEXT";
	struct ch_chunked c;
	size_t out_len;
	int done;
	long r;

	ch_chunked_init(&c);
	r = ch_chunked_feed(&c, buf, strlen(buf), buf, &out_len, &done);
	ck_assert_int_eq(r, (long)strlen(buf) - 4);
	ck_assert_int_eq(done, 1);
	ck_assert_uint_eq(out_len, 7);
	ck_assert(memcmp(buf, "abcdefg", 7) == 0);
	ck_assert_uint_eq(c.total, 7);
	/* Once done, nothing more is consumed. */
	r = ch_chunked_feed(&c, "5\r\n", 3, buf, &out_len, &done);
	ck_assert_int_eq(r, 0);
	ck_assert_int_eq(done, 1);
	ck_assert_uint_eq(out_len, 0);
}
END_TEST

START_TEST(test_chunked_long_lines)
{
	size_t n = CH_CHUNKED_MAX_LINE + 64;
	char *in = malloc(n + 16), *out = malloc(n + 16);
	struct ch_chunked c;
	size_t out_len, ext;
	int done;

	ck_assert_ptr_nonnull(in);
	ck_assert_ptr_nonnull(out);
	/* A size line of exactly the limit is fine... */
	ext = CH_CHUNKED_MAX_LINE - 2;	/* "1;" + ext bytes */
	in[0] = '1';
	in[1] = ';';
	memset(in + 2, 'e', ext - 2);
	memcpy(in + ext, "\r\nx\r\n0\r\n\r\n", 10);
	ch_chunked_init(&c);
	ck_assert_int_eq(ch_chunked_feed(&c, in, ext + 10, out, &out_len, &done), (long)ext + 10);
	ck_assert_int_eq(done, 1);
	ck_assert_uint_eq(out_len, 1);

	/* ... a longer one is refused, even fed a byte at a time. */
	memset(in + 2, 'e', n);
	ch_chunked_init(&c);
	ck_assert_int_eq(ch_chunked_feed(&c, in, n, out, &out_len, &done), -1);
	{
		size_t i;
		long r = 0;

		ch_chunked_init(&c);
		for (i = 0; i < n && r >= 0; i++)
			r = ch_chunked_feed(&c, in + i, 1, out, &out_len, &done);
		ck_assert_int_eq(r, -1);
		ck_assert_uint_le(i, CH_CHUNKED_MAX_LINE + 2);
	}

	/* A trailer line past the limit too. */
	memcpy(in, "0\r\nX: ", 6);
	memset(in + 6, 'v', n - 6);
	ch_chunked_init(&c);
	ck_assert_int_eq(ch_chunked_feed(&c, in, n, out, &out_len, &done), -1);
	free(in);
	free(out);
}
END_TEST

START_TEST(test_chunked_trailer_section_limit)
{
	/* Many short trailer lines: each fits, their sum does not. */
	size_t lines = CH_HTTP_MAX_HEAD / 8 + 8, i, n = 3 + lines * 8;
	char *in = malloc(n), *out = malloc(n);
	struct ch_chunked c;
	size_t out_len;
	int done;

	ck_assert_ptr_nonnull(in);
	ck_assert_ptr_nonnull(out);
	memcpy(in, "0\r\n", 3);
	for (i = 0; i < lines; i++)
		memcpy(in + 3 + i * 8, "X: abc\r\n", 8);
	ch_chunked_init(&c);
	ck_assert_int_eq(ch_chunked_feed(&c, in, n, out, &out_len, &done), -1);
	/* A few of them are fine. */
	ch_chunked_init(&c);
	ck_assert_int_eq(ch_chunked_feed(&c, in, 3 + 10 * 8, out, &out_len, &done), 3 + 10 * 8);
	ck_assert_int_eq(done, 0);
	free(in);
	free(out);
}
END_TEST

START_TEST(test_chunked_big_size)
{
	/* The largest size we take: 15 hex digits, data counted exactly. */
	struct ch_chunked c;
	char out[8];
	size_t out_len;
	int done;

	ch_chunked_init(&c);
	ck_assert_int_eq(ch_chunked_feed(&c, LIT("FFFFFFFFFFFFFFF\r\n"), out, &out_len, &done), 17);
	ck_assert_uint_eq(c.remaining, 0xFFFFFFFFFFFFFFFULL);
	ck_assert_int_eq(ch_chunked_feed(&c, LIT("abcd"), out, &out_len, &done), 4);
	ck_assert_uint_eq(c.remaining, 0xFFFFFFFFFFFFFFFULL - 4);
	ck_assert_uint_eq(out_len, 4);
}
END_TEST

/* ------------------------------------------------------------------------
 * Paths
 * ---------------------------------------------------------------------- */

static int decode(const char *in, char *out, size_t outlen)
{
	char *b = exact_copy(in, strlen(in));
	struct ch_str s = { b, strlen(in) };
	int rc = ch_http_path_decode(s, out, outlen);

	free(b);
	return rc;
}

START_TEST(test_path_decode)
{
	char out[64];

	ck_assert_int_eq(decode("/a%20b", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "/a b");
	ck_assert_int_eq(decode("/%41%62%7e", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "/Ab~");
	ck_assert_int_eq(decode("/%2F%2f%c3%A9", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "///\xc3\xa9");
	ck_assert_int_eq(decode("/a+b%2B", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "/a+b+");
	ck_assert_int_eq(decode("/", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "/");
	ck_assert_int_eq(decode("/%01", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "/\x01");

	ck_assert_int_eq(decode("/%00", out, sizeof(out)), -1);
	ck_assert_int_eq(decode("/a%00b", out, sizeof(out)), -1);
	ck_assert_int_eq(decode("/%", out, sizeof(out)), -1);
	ck_assert_int_eq(decode("/%4", out, sizeof(out)), -1);
	ck_assert_int_eq(decode("/%g1", out, sizeof(out)), -1);
	ck_assert_int_eq(decode("/%1g", out, sizeof(out)), -1);
	ck_assert_int_eq(decode("/% 1", out, sizeof(out)), -1);
	ck_assert_int_eq(decode("a/b", out, sizeof(out)), -1);
	ck_assert_int_eq(decode("%2fa", out, sizeof(out)), -1);
	ck_assert_int_eq(decode("", out, sizeof(out)), -1);

	/* Output size: "/abc" needs 5 bytes with its NUL. */
	ck_assert_int_eq(decode("/abc", out, 5), 0);
	ck_assert_str_eq(out, "/abc");
	ck_assert_int_eq(decode("/abc", out, 4), -1);
	ck_assert_int_eq(decode("/%61bc", out, 5), 0);
	ck_assert_str_eq(out, "/abc");
	ck_assert_int_eq(decode("/abc", out, 0), -1);
}
END_TEST

struct norm_case {
	const char *in;
	const char *out;	/* NULL: refused */
};

static const struct norm_case norm_cases[] = {
	{ "/", "/" },
	{ "//", "/" },
	{ "/a", "/a" },
	{ "/a/", "/a/" },
	{ "//a///b", "/a/b" },
	{ "/a//b//", "/a/b/" },
	{ "/./a/./b/.", "/a/b/" },
	{ "/.", "/" },
	{ "/a/b/../c", "/a/c" },
	{ "/a/b/..", "/a/" },
	{ "/a/b/../", "/a/" },
	{ "/a/..", "/" },
	{ "/a/../b/../c/", "/c/" },
	{ "/...", "/..." },
	{ "/..a/b..", "/..a/b.." },
	{ "/.a/.b", "/.a/.b" },
	{ "/static/../index.html", "/index.html" },
	{ "/..", NULL },
	{ "/../", NULL },
	{ "/../etc/passwd", NULL },
	{ "/a/b/../../../x", NULL },
	{ "/a/../..", NULL },
	{ "//../x", NULL },
	{ "/./../x", NULL },
	{ "a/b", NULL },
	{ "", NULL },
};

START_TEST(test_path_normalize)
{
	const struct norm_case *c = &norm_cases[_i];
	char buf[64];

	snprintf(buf, sizeof(buf), "%s", c->in);
	if (c->out == NULL) {
		ck_assert_msg(ch_http_path_normalize(buf) == -1, "\"%s\" not refused", c->in);
		return;
	}
	ck_assert_msg(ch_http_path_normalize(buf) == 0, "\"%s\" refused", c->in);
	ck_assert_str_eq(buf, c->out);
	/* Normalising again changes nothing. */
	ck_assert_int_eq(ch_http_path_normalize(buf), 0);
	ck_assert_str_eq(buf, c->out);
}
END_TEST

/* What a static file handler does: decode, then normalise. */
static int resolve(const char *path, char *out, size_t outlen)
{
	if (decode(path, out, outlen) != 0)
		return -1;
	return ch_http_path_normalize(out);
}

START_TEST(test_path_traversal)
{
	char out[64];

	ck_assert_int_eq(resolve("/../etc/passwd", out, sizeof(out)), -1);
	ck_assert_int_eq(resolve("/static/%2e%2e/%2e%2e/x", out, sizeof(out)), -1);
	ck_assert_int_eq(resolve("/static/%2E%2E/%2e%2E/x", out, sizeof(out)), -1);
	ck_assert_int_eq(resolve("/a/b/../../../x", out, sizeof(out)), -1);
	/* Decodes to "/../etc": refused only once decoded. */
	ck_assert_int_eq(decode("/%2e%2e%2fetc", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "/../etc");
	ck_assert_int_eq(resolve("/%2e%2e%2fetc", out, sizeof(out)), -1);
	ck_assert_int_eq(resolve("/%2e%2e%2f%2e%2e%2fetc%2fpasswd", out, sizeof(out)), -1);
	ck_assert_int_eq(resolve("/a%2f..%2f..%2fb", out, sizeof(out)), -1);
	ck_assert_int_eq(resolve("/..%00/x", out, sizeof(out)), -1);

	/* Inside the root: allowed, and resolved. */
	ck_assert_int_eq(resolve("/static/%2e%2e/app.js", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "/app.js");
	ck_assert_int_eq(resolve("/static/./css//site.css", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "/static/css/site.css");
	ck_assert_int_eq(resolve("/a%2fb", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "/a/b");
}
END_TEST

/* If-None-Match: whole list elements, weak comparison, "*", no substrings. */
static bool inm(const char *value, const char *etag)
{
	static struct ch_http_req q;	/* 2 KiB: off the stack too */
	char head[256];

	if (value)
		snprintf(head, sizeof(head), "GET / HTTP/1.1\r\nHost: h\r\nIf-None-Match: %s\r\n\r\n",
			 value);
	else
		snprintf(head, sizeof(head), "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
	ck_assert_int_gt(parse_str(head, &q), 0);
	return ch_http_if_none_match(&q, etag);
}

START_TEST(test_if_none_match)
{
	ck_assert(inm("\"a1\"", "\"a1\""));
	ck_assert(inm("\"x\",\t\"a1\" , \"y\"", "\"a1\""));
	ck_assert(inm(" , \"a1\",", "\"a1\""));
	ck_assert(inm("W/\"a1\"", "\"a1\""));
	ck_assert(inm("*", "\"a1\""));
	ck_assert(!inm(NULL, "\"a1\""));
	ck_assert(!inm("\"A1\"", "\"a1\""));
	ck_assert(!inm("\"xa1\"", "\"a1\""));
	ck_assert(!inm("\"x,\"a1\"\"", "\"a1\""));
	ck_assert(!inm("\"a1\"x", "\"a1\""));
}
END_TEST

/* ------------------------------------------------------------------------
 * Responses
 * ---------------------------------------------------------------------- */

START_TEST(test_reason)
{
	static const int codes[] = {
		100, 101, 200, 201, 204, 206, 301, 302, 304, 400, 401, 403, 404, 405,
		408, 409, 411, 413, 414, 415, 416, 426, 429, 431, 500, 501, 502, 503,
		504, 505,
	};
	size_t i;

	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		ck_assert_msg(strcmp(ch_http_reason(codes[i]), "Unknown") != 0, "%d", codes[i]);
	ck_assert_str_eq(ch_http_reason(200), "OK");
	ck_assert_str_eq(ch_http_reason(101), "Switching Protocols");
	ck_assert_str_eq(ch_http_reason(404), "Not Found");
	ck_assert_str_eq(ch_http_reason(431), "Request Header Fields Too Large");
	ck_assert_str_eq(ch_http_reason(505), "HTTP Version Not Supported");
	ck_assert_str_eq(ch_http_reason(299), "Unknown");
	ck_assert_str_eq(ch_http_reason(0), "Unknown");
	ck_assert_str_eq(ch_http_reason(-1), "Unknown");
}
END_TEST

START_TEST(test_format_head)
{
	char out[256];
	int n;

	n = ch_http_format_head(out, sizeof(out), 200, "text/html; charset=utf-8", 1234, 1, NULL);
	ck_assert_str_eq(out, "HTTP/1.1 200 OK\r\n"
			      "Content-Type: text/html; charset=utf-8\r\n"
			      "Content-Length: 1234\r\n\r\n");
	ck_assert_int_eq(n, (int)strlen(out));

	n = ch_http_format_head(out, sizeof(out), 404, NULL, 0, 0, "Cache-Control: no-store\r\n");
	ck_assert_str_eq(out, "HTTP/1.1 404 Not Found\r\n"
			      "Content-Length: 0\r\n"
			      "Connection: close\r\n"
			      "Cache-Control: no-store\r\n\r\n");
	ck_assert_int_eq(n, (int)strlen(out));

	n = ch_http_format_head(out, sizeof(out), 101, NULL, 0, 1,
				"Upgrade: websocket\r\nConnection: Upgrade\r\n");
	ck_assert_str_eq(out, "HTTP/1.1 101 Switching Protocols\r\n"
			      "Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
	ck_assert_int_eq(n, (int)strlen(out));

	n = ch_http_format_head(out, sizeof(out), 204, NULL, 0, 1, NULL);
	ck_assert_str_eq(out, "HTTP/1.1 204 No Content\r\n\r\n");
	ck_assert_int_eq(n, (int)strlen(out));

	n = ch_http_format_head(out, sizeof(out), 599, NULL, UINT64_MAX, 1, NULL);
	ck_assert_str_eq(out, "HTTP/1.1 599 Unknown\r\n"
			      "Content-Length: 18446744073709551615\r\n\r\n");
	ck_assert_int_eq(n, (int)strlen(out));

	ck_assert_int_eq(ch_http_format_head(out, sizeof(out), 200, "a\r\nX: y", 0, 1, NULL), -1);
	ck_assert_int_eq(ch_http_format_head(out, sizeof(out), 99, NULL, 0, 1, NULL), -1);
	ck_assert_int_eq(ch_http_format_head(out, sizeof(out), 1000, NULL, 0, 1, NULL), -1);
}
END_TEST

START_TEST(test_format_head_fit)
{
	const char *want = "HTTP/1.1 413 Content Too Large\r\nContent-Type: text/plain\r\n"
			   "Content-Length: 17\r\nConnection: close\r\n\r\n";
	size_t need = strlen(want) + 1, cap;

	/* Every size short of the head plus its NUL fails, and never overruns. */
	for (cap = 0; cap <= need; cap++) {
		char *out = malloc(cap ? cap : 1);
		int n;

		ck_assert_ptr_nonnull(out);
		n = ch_http_format_head(out, cap, 413, "text/plain", 17, 0, NULL);
		if (cap < need) {
			ck_assert_int_eq(n, -1);
		} else {
			ck_assert_int_eq(n, (int)strlen(want));
			ck_assert_str_eq(out, want);
		}
		free(out);
	}
}
END_TEST

/* ------------------------------------------------------------------------ */

static Suite *http_suite(void)
{
	Suite *s = suite_create("http");
	TCase *head = tcase_create("head");
	TCase *limits = tcase_create("limits");
	TCase *chunked = tcase_create("chunked");
	TCase *path = tcase_create("path");
	TCase *resp = tcase_create("response");

	tcase_add_test(head, test_simple_get);
	tcase_add_test(head, test_query_forms);
	tcase_add_test(head, test_bare_lf_and_leading_blank_lines);
	tcase_add_test(head, test_pipelined_returns_first_head);
	tcase_add_test(head, test_methods);
	tcase_add_test(head, test_connection_and_upgrade);
	tcase_add_test(head, test_if_none_match);
	tcase_add_test(head, test_body_framing);
	tcase_add_loop_test(head, test_refused, 0, (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
	tcase_add_test(head, test_nul_in_head);
	suite_add_tcase(s, head);

	tcase_set_timeout(limits, 60);
	tcase_add_test(limits, test_head_size_limit);
	tcase_add_test(limits, test_header_count_limit);
	tcase_add_test(limits, test_scanned_clamped);
	suite_add_tcase(s, limits);

	tcase_set_timeout(chunked, 60);
	tcase_add_loop_test(chunked, test_chunked_cases, 0,
			    (int)(sizeof(chunk_cases) / sizeof(chunk_cases[0])));
	tcase_add_test(chunked, test_chunked_nul);
	tcase_add_test(chunked, test_chunked_in_place_and_done);
	tcase_add_test(chunked, test_chunked_long_lines);
	tcase_add_test(chunked, test_chunked_trailer_section_limit);
	tcase_add_test(chunked, test_chunked_big_size);
	suite_add_tcase(s, chunked);

	tcase_add_test(path, test_path_decode);
	tcase_add_loop_test(path, test_path_normalize, 0,
			    (int)(sizeof(norm_cases) / sizeof(norm_cases[0])));
	tcase_add_test(path, test_path_traversal);
	suite_add_tcase(s, path);

	tcase_add_test(resp, test_reason);
	tcase_add_test(resp, test_format_head);
	tcase_add_test(resp, test_format_head_fit);
	suite_add_tcase(s, resp);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(http_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
