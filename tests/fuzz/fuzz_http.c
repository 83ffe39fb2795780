/*
 * libFuzzer target for worker/http.c.
 *
 * Input layout: byte 0 picks the largest piece (1 << (b % 8) bytes), byte 1
 * seeds the generator of piece sizes, the rest is what a client sent. The
 * target checks that
 *  - ch_http_parse_head fed the bytes in pieces, with *scanned carried as
 *    the worker does, gives exactly what one call on all of them gives;
 *  - a parsed head's slices lie inside it and its framing is consistent;
 *  - ch_chunked_feed over the bytes after the head, in pieces, decodes the
 *    same body, consumes the same bytes and fails the same way as one call;
 *  - decoding and normalising the path gives a rooted path with no dot
 *    segments or empty segments left, and normalising again changes nothing.
 * Each call sees its input at the very end of a heap block, so ASan reports
 * any read past the bytes given. Any disagreement aborts.
 */
#include "worker/http.h"
#include "tests/fuzz/fuzz.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CTRL_BYTES 2
#define FUZZ_MAX_PIECE_SHIFT 8

struct fuzz_pieces {
	uint32_t state;
	size_t max;
};

static size_t fuzz_next_piece(struct fuzz_pieces *p)
{
	return 1 + fuzz_next(&p->state) % p->max;
}

/* Copy src[0..n) to the end of the block at scratch[0..cap): ASan guards it. */
static const char *fuzz_at_end(char *scratch, size_t cap, const char *src, size_t n)
{
	memmove(scratch + cap - n, src, n);
	return scratch + cap - n;
}

static void fuzz_same_str(struct ch_str a, const char *abase, struct ch_str b, const char *bbase)
{
	fuzz_check(a.len == b.len);
	fuzz_check((a.p == NULL) == (b.p == NULL));
	if (a.p != NULL)
		fuzz_check(a.p - abase == b.p - bbase);
}

static void fuzz_same_req(const struct ch_http_req *a, const char *abase,
			  const struct ch_http_req *b, const char *bbase)
{
	int i;

	fuzz_check(a->method == b->method);
	fuzz_same_str(a->method_text, abase, b->method_text, bbase);
	fuzz_same_str(a->target, abase, b->target, bbase);
	fuzz_same_str(a->path, abase, b->path, bbase);
	fuzz_same_str(a->query, abase, b->query, bbase);
	fuzz_check(a->minor == b->minor);
	fuzz_check(a->n_headers == b->n_headers);
	for (i = 0; i < a->n_headers; i++) {
		fuzz_same_str(a->headers[i].name, abase, b->headers[i].name, bbase);
		fuzz_same_str(a->headers[i].value, abase, b->headers[i].value, bbase);
	}
	fuzz_check(a->content_length == b->content_length);
	fuzz_check(a->chunked == b->chunked);
	fuzz_check(a->keep_alive == b->keep_alive);
	fuzz_check(a->expect_continue == b->expect_continue);
	fuzz_check(a->upgrade_websocket == b->upgrade_websocket);
	fuzz_same_str(a->host, abase, b->host, bbase);
	fuzz_same_str(a->authorization, abase, b->authorization, bbase);
	fuzz_same_str(a->content_type, abase, b->content_type, bbase);
}

static void fuzz_inside(struct ch_str s, const char *base, size_t len)
{
	if (s.p == NULL)
		return;
	fuzz_check(s.p >= base && (size_t)(s.p - base) + s.len <= len);
}

static void fuzz_check_req(const struct ch_http_req *r, const char *base, size_t hlen)
{
	int i;

	fuzz_check(r->minor == 0 || r->minor == 1);
	fuzz_check(r->n_headers >= 0 && r->n_headers <= CH_HTTP_MAX_HEADERS);
	fuzz_check(r->method_text.len > 0 && r->target.len > 0 && r->path.len > 0);
	fuzz_check(r->content_length >= -1);
	fuzz_check(!(r->chunked && r->content_length >= 0));
	fuzz_inside(r->method_text, base, hlen);
	fuzz_inside(r->target, base, hlen);
	fuzz_inside(r->path, base, hlen);
	fuzz_inside(r->query, base, hlen);
	fuzz_inside(r->host, base, hlen);
	fuzz_inside(r->authorization, base, hlen);
	fuzz_inside(r->content_type, base, hlen);
	for (i = 0; i < r->n_headers; i++) {
		fuzz_check(r->headers[i].name.len > 0);
		fuzz_inside(r->headers[i].name, base, hlen);
		fuzz_inside(r->headers[i].value, base, hlen);
	}
}

/* Parse msg[0..n) in pieces; returns the result, *req as parsed in scratch. */
static int fuzz_parse_pieces(const char *msg, size_t n, struct fuzz_pieces *pp,
			     char *scratch, struct ch_http_req *req, const char **base)
{
	size_t pos = 0, scanned = 0;
	int r;

	for (;;) {
		size_t step = fuzz_next_piece(pp);

		pos = step > n - pos ? n : pos + step;
		*base = fuzz_at_end(scratch, n, msg, pos);
		r = ch_http_parse_head(*base, pos, &scanned, req);
		fuzz_check(scanned <= pos);
		if (r != CH_HTTP_AGAIN || pos == n)
			return r;
	}
}

static void fuzz_chunked(const char *body, size_t n, struct fuzz_pieces *pp)
{
	struct ch_chunked c1, c2;
	char *in = malloc(n ? n : 1), *out1 = malloc(n ? n : 1), *out2 = malloc(n ? n : 1);
	size_t len1, len2 = 0, pos = 0;
	int done1, done2 = 0;
	long r1, r = 0;

	fuzz_check(in != NULL && out1 != NULL && out2 != NULL);
	ch_chunked_init(&c1);
	r1 = ch_chunked_feed(&c1, fuzz_at_end(in, n, body, n), n, out1, &len1, &done1);
	fuzz_check(r1 >= -1 && r1 <= (long)n);
	if (r1 >= 0) {
		fuzz_check(len1 <= (size_t)r1 && c1.total == len1);
		fuzz_check(done1 || (size_t)r1 == n);
	}

	ch_chunked_init(&c2);
	while (pos < n && !done2) {
		size_t step = fuzz_next_piece(pp), got;

		if (step > n - pos)
			step = n - pos;
		r = ch_chunked_feed(&c2, fuzz_at_end(in, n, body + pos, step), step,
				    out2 + len2, &got, &done2);
		if (r < 0)
			break;
		fuzz_check((size_t)r <= step && got <= (size_t)r);
		fuzz_check(done2 || (size_t)r == step);	/* all taken unless done */
		pos += (size_t)r;
		len2 += got;
	}
	if (r1 < 0) {
		fuzz_check(r < 0);
	} else {
		fuzz_check(r >= 0);
		fuzz_check(pos == (size_t)r1 && done2 == done1 && len2 == len1);
		fuzz_check(memcmp(out1, out2, len1) == 0);
		fuzz_check(c2.total == len2);
	}
	free(in);
	free(out1);
	free(out2);
}

static void fuzz_path(struct ch_str path)
{
	char *dec = malloc(path.len + 1), *again;
	size_t dlen;

	fuzz_check(dec != NULL);
	if (ch_http_path_decode(path, dec, path.len + 1) != 0)
		goto out;
	dlen = strlen(dec);
	fuzz_check(dlen <= path.len && dec[0] == '/');
	if (ch_http_path_normalize(dec) != 0)
		goto out;
	fuzz_check(dec[0] == '/' && strlen(dec) <= dlen);
	fuzz_check(strstr(dec, "//") == NULL);
	fuzz_check(strstr(dec, "/./") == NULL && strstr(dec, "/../") == NULL);
	dlen = strlen(dec);
	fuzz_check(!(dlen >= 2 && strcmp(dec + dlen - 2, "/.") == 0));
	fuzz_check(!(dlen >= 3 && strcmp(dec + dlen - 3, "/..") == 0));
	again = strdup(dec);
	fuzz_check(again != NULL);
	fuzz_check(ch_http_path_normalize(again) == 0 && strcmp(again, dec) == 0);
	free(again);
out:
	free(dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ch_http_req req1, req2;
	struct fuzz_pieces pp;
	const char *msg = (const char *)data + FUZZ_CTRL_BYTES, *base2;
	char *whole, *scratch;
	size_t n;
	int r1, r2;

	if (size < FUZZ_CTRL_BYTES)
		return 0;
	n = size - FUZZ_CTRL_BYTES;
	pp.max = (size_t)1 << (data[0] % FUZZ_MAX_PIECE_SHIFT);
	pp.state = 0x9e3779b9u ^ ((uint32_t)data[1] << 8 | data[0]);

	whole = malloc(n ? n : 1);
	scratch = malloc(n ? n : 1);
	fuzz_check(whole != NULL && scratch != NULL);
	memcpy(whole, msg, n);
	{
		size_t scanned = 0;

		r1 = ch_http_parse_head(whole, n, &scanned, &req1);
	}
	fuzz_check(r1 == CH_HTTP_AGAIN || r1 == CH_HTTP_E_BAD || r1 == CH_HTTP_E_TOO_LARGE ||
		   r1 == CH_HTTP_E_NOT_IMPL || r1 == CH_HTTP_E_VERSION ||
		   (r1 > 0 && (size_t)r1 <= n && r1 <= CH_HTTP_MAX_HEAD));
	fuzz_check(!(r1 == CH_HTTP_AGAIN && n > CH_HTTP_MAX_HEAD));

	r2 = fuzz_parse_pieces(msg, n, &pp, scratch, &req2, &base2);
	fuzz_check(r1 == r2);
	if (r1 > 0) {
		fuzz_check_req(&req1, whole, (size_t)r1);
		fuzz_same_req(&req1, whole, &req2, base2);
		fuzz_chunked(whole + r1, n - (size_t)r1, &pp);
		fuzz_path(req1.path);
	}
	free(whole);
	free(scratch);
	return 0;
}
