/*
 * libFuzzer target for client/wsc.c, the client side's parser of server
 * frames (and common/utf8.c under it).
 *
 * Input layout: byte 0 picks the largest piece (1 << (b % 9) bytes), byte 1
 * seeds the generator of piece sizes, byte 2 picks the message size limit;
 * the rest is what a server sent.
 *
 * The target checks that
 *  - the stream fed in random pieces gives exactly the events of feeding
 *    it in one buffer (type, opcode, close code, error text, bytes);
 *  - every event obeys the rules: a text message is UTF-8, a message fits
 *    the limit, a control payload fits 125 bytes, nothing but the same
 *    error follows an error;
 *  - the parser never claims more bytes than it was given, and asks for
 *    more only once it has taken everything.
 * Each piece sits at the very end of a heap block, so ASan reports any read
 * past the bytes given. Any disagreement aborts.
 */
#include "client/wsc.h"
#include "common/utf8.h"
#include "tests/fuzz/fuzz.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CTRL_BYTES 3
#define FUZZ_MAX_PIECE_SHIFT 9
#define FUZZ_MAX_EVENTS 4096

static const size_t fuzz_limits[] = { 0, 1, 5, 125, 126, 1000, 65536, 1 << 20 };
#define FUZZ_N_LIMITS (sizeof(fuzz_limits) / sizeof(fuzz_limits[0]))

/* One event as recorded: its fields and a copy of its bytes. */
struct fuzz_event {
	int type, opcode;
	uint16_t code;
	const char *error;
	uint8_t *bytes;
	size_t len;
};

struct fuzz_log {
	struct fuzz_event ev[FUZZ_MAX_EVENTS];
	size_t n;
	int errored;
};

static void fuzz_log_free(struct fuzz_log *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->ev[i].bytes);
	l->n = 0;
}

static void fuzz_record(struct fuzz_log *l, const struct ch_wsc_event *ev, size_t limit)
{
	if (ev->type == CH_WSC_MESSAGE) {
		fuzz_check(ev->len <= limit);
		fuzz_check(ev->data != NULL);
		if (ev->opcode == CH_WSC_OP_TEXT)
			fuzz_check(ch_utf8_valid(ev->data, ev->len));
	}
	if (ev->type == CH_WSC_PING || ev->type == CH_WSC_PONG || ev->type == CH_WSC_CLOSE)
		fuzz_check(ev->len <= CH_WSC_MAX_CONTROL);
	if (l->errored)
		fuzz_check(ev->type == CH_WSC_ERROR);
	if (ev->type == CH_WSC_ERROR) {
		fuzz_check(ev->error != NULL);
		if (l->errored)
			return;	/* sticky: the same error again */
		l->errored = 1;
	}
	if (l->n == FUZZ_MAX_EVENTS)
		return;
	struct fuzz_event *e = &l->ev[l->n++];
	e->type = ev->type;
	e->opcode = ev->type == CH_WSC_MESSAGE ? ev->opcode : 0;
	e->code = ev->type == CH_WSC_CLOSE || ev->type == CH_WSC_ERROR ? ev->close_code : 0;
	e->error = ev->type == CH_WSC_ERROR ? ev->error : NULL;
	e->len = ev->type == CH_WSC_ERROR ? 0 : ev->len;
	e->bytes = malloc(e->len ? e->len : 1);
	fuzz_check(e->bytes != NULL);
	if (e->len)
		memcpy(e->bytes, ev->data, e->len);
}

/* Feed piece (at the end of its own heap block) until it is used up or the
 * parser stops on an error. */
static void fuzz_feed(struct ch_wsc_parser *p, struct fuzz_log *l, const uint8_t *src, size_t n,
		      size_t limit)
{
	uint8_t *piece = malloc(n ? n : 1);
	fuzz_check(piece != NULL);
	if (n)
		memcpy(piece, src, n);
	size_t off = 0;
	for (;;) {
		struct ch_wsc_event ev;
		size_t used = 0;
		int t = ch_wsc_parse(p, piece + off, n - off, &used, &ev);
		fuzz_check(used <= n - off);
		fuzz_check(t == ev.type);
		off += used;
		if (t == CH_WSC_NEED_MORE) {
			fuzz_check(off == n);
			break;
		}
		fuzz_record(l, &ev, limit);
		if (t == CH_WSC_ERROR)
			break;
	}
	free(piece);
}

static void fuzz_same(const struct fuzz_log *a, const struct fuzz_log *b)
{
	fuzz_check(a->n == b->n);
	for (size_t i = 0; i < a->n; i++) {
		const struct fuzz_event *x = &a->ev[i], *y = &b->ev[i];
		fuzz_check(x->type == y->type && x->opcode == y->opcode && x->code == y->code);
		fuzz_check(x->error == y->error || (x->error && y->error &&
						    strcmp(x->error, y->error) == 0));
		fuzz_check(x->len == y->len && memcmp(x->bytes, y->bytes, x->len) == 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fuzz_log whole, pieces;

	if (size < FUZZ_CTRL_BYTES)
		return 0;
	size_t max_piece = (size_t)1 << (data[0] % FUZZ_MAX_PIECE_SHIFT);
	uint32_t rng = data[1] * 2654435761u + 1;
	size_t limit = fuzz_limits[data[2] % FUZZ_N_LIMITS];
	const uint8_t *s = data + FUZZ_CTRL_BYTES;
	size_t n = size - FUZZ_CTRL_BYTES;

	struct ch_wsc_parser p;
	ch_wsc_parser_init(&p, limit);
	whole.errored = 0;
	fuzz_feed(&p, &whole, s, n, limit);
	ch_wsc_parser_free(&p);

	ch_wsc_parser_init(&p, limit);
	pieces.errored = 0;
	for (size_t off = 0; off < n && !pieces.errored;) {
		size_t k = 1 + fuzz_next(&rng) % max_piece;
		if (k > n - off)
			k = n - off;
		fuzz_feed(&p, &pieces, s + off, k, limit);
		off += k;
	}
	ch_wsc_parser_free(&p);

	fuzz_same(&whole, &pieces);
	fuzz_log_free(&whole);
	fuzz_log_free(&pieces);
	return 0;
}
