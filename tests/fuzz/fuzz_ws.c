/*
 * libFuzzer target for worker/ws.c (and common/utf8.c under it).
 *
 * Input layout: byte 0 picks the largest piece (1 << (b % 9) bytes), byte 1
 * seeds the generator of piece sizes and of a masking key, byte 2 picks the
 * message size limit (b >> 1, from fuzz_limits) and the mode (b & 1): raw,
 * the rest is what a client sent; structured, the rest is a list of
 * (first header byte, length byte, payload) that is encoded with
 * ch_ws_client_frame, so the fuzzer reaches fragmentation, UTF-8 and close
 * rules without having to discover masking first.
 *
 * The target checks that
 *  - the stream fed in random pieces gives exactly the events of one call
 *    on all of it (type, code, error text, bytes);
 *  - every event obeys the rules: text is UTF-8, messages fit the limit,
 *    control payloads fit 125 bytes, close codes are valid, an error is the
 *    last event and nothing follows a close; the parser never holds more
 *    than the limit and always consumes what it says;
 *  - the events re-encoded as client frames parse back to the same events.
 * Each piece sits at the very end of a heap block, so ASan reports any read
 * past the bytes given. Any disagreement aborts.
 */
#include "common/utf8.h"
#include "worker/ws.h"
#include "tests/fuzz/fuzz.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CTRL_BYTES 3
#define FUZZ_MAX_PIECE_SHIFT 9
#define FUZZ_LONG_LEN_STEP 300	/* structured mode: length byte > 250 means (b - 250) * this */
#define FUZZ_SHORT_LEN_MAX 250

static const size_t fuzz_limits[] = {
	0, 1, 5, 64, 125, 126, 1000, 65535, 65536, 1 << 20,
};
#define FUZZ_N_LIMITS (sizeof(fuzz_limits) / sizeof(fuzz_limits[0]))

/* One event, its bytes kept in the owning list's arena. */
struct fuzz_ev {
	enum ch_ws_event_type type;
	uint16_t code;
	const char *error;
	size_t off, len;
};

struct fuzz_evs {
	struct fuzz_ev *ev;
	size_t n, cap;
	uint8_t *arena;
	size_t used, arena_cap;
};

static void fuzz_evs_init(struct fuzz_evs *l, size_t in_len)
{
	/* Each event consumes at least a 6-byte masked header (or is the last). */
	l->cap = in_len / 2 + 2;
	l->ev = malloc(l->cap * sizeof(*l->ev));
	/* Event bytes are unmasked payload bytes, each delivered at most once. */
	l->arena_cap = in_len + 1;
	l->arena = malloc(l->arena_cap);
	fuzz_check(l->ev != NULL && l->arena != NULL);
	l->n = 0;
	l->used = 0;
}

static void fuzz_evs_free(struct fuzz_evs *l)
{
	free(l->ev);
	free(l->arena);
}

static void fuzz_record(struct fuzz_evs *l, const struct ch_ws_event *e, size_t max)
{
	struct fuzz_ev *r;

	fuzz_check(e->data != NULL);
	fuzz_check(l->n < l->cap && l->used + e->len <= l->arena_cap);
	/* Nothing after an error or a close. */
	fuzz_check(l->n == 0 || (l->ev[l->n - 1].type != CH_WS_EV_ERROR &&
				 l->ev[l->n - 1].type != CH_WS_EV_CLOSE));
	switch (e->type) {
	case CH_WS_EV_TEXT:
		fuzz_check(ch_utf8_valid(e->data, e->len));
		fuzz_check(e->len <= max);
		break;
	case CH_WS_EV_BINARY:
		fuzz_check(e->len <= max);
		break;
	case CH_WS_EV_PING:
	case CH_WS_EV_PONG:
		fuzz_check(e->len <= CH_WS_MAX_CONTROL_PAYLOAD);
		break;
	case CH_WS_EV_CLOSE:
		fuzz_check(e->len <= CH_WS_MAX_CLOSE_REASON);
		fuzz_check(ch_utf8_valid(e->data, e->len));
		fuzz_check(e->code == CH_WS_CLOSE_NO_STATUS ||
			   (e->code >= 1000 && e->code <= 1003) ||
			   (e->code >= 1007 && e->code <= 1014) ||
			   (e->code >= 3000 && e->code <= 4999));
		fuzz_check(e->code != CH_WS_CLOSE_NO_STATUS || e->len == 0);
		break;
	case CH_WS_EV_ERROR:
		fuzz_check(e->error != NULL && e->len == 0);
		fuzz_check(e->code == CH_WS_CLOSE_PROTOCOL || e->code == CH_WS_CLOSE_BAD_DATA ||
			   e->code == CH_WS_CLOSE_TOO_BIG || e->code == CH_WS_CLOSE_INTERNAL);
		break;
	default:
		fuzz_check(!"unexpected event type");
	}
	r = &l->ev[l->n++];
	r->type = e->type;
	r->code = e->code;
	r->error = e->error;
	r->off = l->used;
	r->len = e->len;
	memcpy(l->arena + l->used, e->data, e->len);
	l->used += e->len;
}

static void fuzz_same(const struct fuzz_evs *a, const struct fuzz_evs *b, size_t n)
{
	fuzz_check(a->n >= n && b->n >= n);
	for (size_t i = 0; i < n; i++) {
		const struct fuzz_ev *x = &a->ev[i], *y = &b->ev[i];

		fuzz_check(x->type == y->type && x->code == y->code && x->len == y->len);
		fuzz_check(memcmp(a->arena + x->off, b->arena + y->off, x->len) == 0);
		fuzz_check((x->error == NULL) == (y->error == NULL));
		fuzz_check(x->error == NULL || strcmp(x->error, y->error) == 0);
	}
}

/* Feed one piece, already at the end of its heap block; 1 after an error. */
static int fuzz_feed(struct ch_ws_parser *p, uint8_t *in, size_t n, size_t max,
		     struct fuzz_evs *out)
{
	struct ch_ws_event e;
	size_t off = 0;

	for (;;) {
		size_t used = ch_ws_parse(p, in + off, n - off, &e);

		fuzz_check(used <= n - off);
		fuzz_check(ch_ws_parser_mem(p) <= max);
		off += used;
		if (e.type == CH_WS_EV_NONE) {
			fuzz_check(off == n);
			return 0;
		}
		fuzz_record(out, &e, max);
		if (e.type == CH_WS_EV_ERROR) {
			/* Sticky, and consumes nothing. */
			fuzz_check(ch_ws_parse(p, in + off, n - off, &e) == 0);
			fuzz_check(e.type == CH_WS_EV_ERROR && e.code == out->ev[out->n - 1].code);
			return 1;
		}
	}
}

static void fuzz_parse(const uint8_t *s, size_t n, size_t max, uint32_t *rng,
		       size_t max_piece, struct fuzz_evs *out)
{
	struct ch_ws_parser p;
	uint8_t *block = malloc(n ? n : 1);
	size_t pos = 0;

	fuzz_check(block != NULL);
	ch_ws_parser_init(&p, max);
	do {
		size_t step = rng ? 1 + fuzz_next(rng) % max_piece : n;
		uint8_t *piece;

		if (step > n - pos)
			step = n - pos;
		piece = block + n - step;
		memcpy(piece, s + pos, step);
		pos += step;
		if (fuzz_feed(&p, piece, step, max, out))
			break;
	} while (pos < n);
	ch_ws_parser_free(&p);
	free(block);
}

/* Structured mode: (first byte, length byte, payload)* -> masked frames. */
static uint8_t *fuzz_build(const uint8_t *d, size_t n, const uint8_t key[CH_WS_MASK_LEN],
			   size_t *out_len)
{
	size_t cap = (n / 2 + 1) * CH_WS_MAX_CLIENT_HEADER + n + 1, len = 0, i = 0;
	uint8_t *out = malloc(cap);

	fuzz_check(out != NULL);
	while (i + 2 <= n) {
		uint8_t first = d[i];
		size_t plen = d[i + 1];

		i += 2;
		if (plen > FUZZ_SHORT_LEN_MAX)
			plen = (plen - FUZZ_SHORT_LEN_MAX) * FUZZ_LONG_LEN_STEP;
		if (plen > n - i)
			plen = n - i;
		fuzz_check(len + plen + CH_WS_MAX_CLIENT_HEADER <= cap);
		len += ch_ws_client_frame(first, d + i, plen, key, out + len);
		i += plen;
	}
	*out_len = len;
	return out;
}

/* Re-encode a's events (but a final error) as client frames; must parse back the same. */
static void fuzz_roundtrip(const struct fuzz_evs *a, size_t max, const uint8_t key[CH_WS_MASK_LEN])
{
	size_t n = a->n, cap, len = 0;
	uint8_t *out;
	struct fuzz_evs b;

	if (n > 0 && a->ev[n - 1].type == CH_WS_EV_ERROR)
		n--;
	cap = n * (CH_WS_MAX_CLIENT_HEADER + 2) + a->used + 1;
	out = malloc(cap);
	fuzz_check(out != NULL);
	for (size_t i = 0; i < n; i++) {
		const struct fuzz_ev *e = &a->ev[i];
		const uint8_t *bytes = a->arena + e->off;
		uint8_t close[CH_WS_MAX_CONTROL_PAYLOAD];
		uint8_t op;

		switch (e->type) {
		case CH_WS_EV_TEXT: op = CH_WS_OP_TEXT; break;
		case CH_WS_EV_BINARY: op = CH_WS_OP_BINARY; break;
		case CH_WS_EV_PING: op = CH_WS_OP_PING; break;
		case CH_WS_EV_PONG: op = CH_WS_OP_PONG; break;
		default: op = CH_WS_OP_CLOSE; break;
		}
		if (e->type == CH_WS_EV_CLOSE) {
			size_t cl = 0;

			if (e->code != CH_WS_CLOSE_NO_STATUS) {
				close[0] = (uint8_t)(e->code >> 8);
				close[1] = (uint8_t)e->code;
				memcpy(close + 2, bytes, e->len);
				cl = 2 + e->len;
			}
			len += ch_ws_client_frame(CH_WS_FIN | op, close, cl, key, out + len);
		} else {
			len += ch_ws_client_frame(CH_WS_FIN | op, bytes, e->len, key, out + len);
		}
		fuzz_check(len <= cap);
	}
	fuzz_evs_init(&b, len);
	fuzz_parse(out, len, max, NULL, 0, &b);
	fuzz_check(b.n == n);
	fuzz_same(a, &b, n);
	fuzz_evs_free(&b);
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_evs one, pieces;
	uint32_t rng;
	uint8_t key[CH_WS_MASK_LEN];
	const uint8_t *stream;
	uint8_t *built = NULL;
	size_t n, max, max_piece;

	if (size < FUZZ_CTRL_BYTES)
		return 0;
	max_piece = (size_t)1 << (data[0] % FUZZ_MAX_PIECE_SHIFT);
	rng = 0x9e3779b9u ^ ((uint32_t)data[1] << 8 | data[0]);
	max = fuzz_limits[(data[2] >> 1) % FUZZ_N_LIMITS];
	for (size_t i = 0; i < CH_WS_MASK_LEN; i++)
		key[i] = (uint8_t)fuzz_next(&rng);
	stream = data + FUZZ_CTRL_BYTES;
	n = size - FUZZ_CTRL_BYTES;
	if (data[2] & 1) {
		built = fuzz_build(stream, n, key, &n);
		stream = built;
	}

	fuzz_evs_init(&one, n);
	fuzz_evs_init(&pieces, n);
	fuzz_parse(stream, n, max, NULL, 0, &one);
	fuzz_parse(stream, n, max, &rng, max_piece, &pieces);
	fuzz_check(one.n == pieces.n);
	fuzz_same(&one, &pieces, one.n);
	fuzz_roundtrip(&one, max, key);

	fuzz_evs_free(&one);
	fuzz_evs_free(&pieces);
	free(built);
	return 0;
}
