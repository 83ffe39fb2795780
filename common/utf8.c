/*
 * Incremental UTF-8 validation: see utf8.h.
 *
 * Design: a deterministic automaton written from the grammar of RFC 3629
 * section 4. Its state says what the next byte must be:
 *
 *	UTF8-2 = %xC2-DF UTF8-tail
 *	UTF8-3 = %xE0 %xA0-BF UTF8-tail / %xE1-EC 2( UTF8-tail ) /
 *		 %xED %x80-9F UTF8-tail / %xEE-EF 2( UTF8-tail )
 *	UTF8-4 = %xF0 %x90-BF 2( UTF8-tail ) / %xF1-F3 3( UTF8-tail ) /
 *		 %xF4 %x80-8F 2( UTF8-tail )
 *
 * The narrowed second-byte ranges are what refuse overlongs (E0 80..9F,
 * F0 80..8F), surrogates (ED A0..BF) and code points past U+10FFFF
 * (F4 90..BF); C0, C1 and F5..FF never start anything.
 *
 * Invariants:
 * - state CH_UTF8_S_ACCEPT (0) is "between characters"; CH_UTF8_S_REJECT is
 *   sticky; every other state expects one continuation byte in [lo, hi].
 * - Reads stay inside p[0..n); the 8-byte ASCII step uses memcpy, so it
 *   needs no alignment.
 */
#include "common/utf8.h"

#include <string.h>

enum ch_utf8_state {
	CH_UTF8_S_ACCEPT = 0,	/* between characters */
	CH_UTF8_S_TAIL1,	/* one more 80..BF, then a character ends */
	CH_UTF8_S_TAIL2,	/* two more 80..BF */
	CH_UTF8_S_TAIL3,	/* three more 80..BF (after F1..F3) */
	CH_UTF8_S_E0,		/* after E0: A0..BF (no overlong 3-byte forms) */
	CH_UTF8_S_ED,		/* after ED: 80..9F (no surrogates) */
	CH_UTF8_S_F0,		/* after F0: 90..BF (no overlong 4-byte forms) */
	CH_UTF8_S_F4,		/* after F4: 80..8F (nothing past U+10FFFF) */
	CH_UTF8_S_REJECT,	/* not UTF-8; stays so */
};

/* What one continuation byte must be in a state, and where it leads. */
struct ch_utf8_step {
	uint8_t lo, hi;
	uint8_t next;
};

static const struct ch_utf8_step ch_utf8_steps[] = {
	[CH_UTF8_S_TAIL1] = { 0x80, 0xBF, CH_UTF8_S_ACCEPT },
	[CH_UTF8_S_TAIL2] = { 0x80, 0xBF, CH_UTF8_S_TAIL1 },
	[CH_UTF8_S_TAIL3] = { 0x80, 0xBF, CH_UTF8_S_TAIL2 },
	[CH_UTF8_S_E0]    = { 0xA0, 0xBF, CH_UTF8_S_TAIL1 },
	[CH_UTF8_S_ED]    = { 0x80, 0x9F, CH_UTF8_S_TAIL1 },
	[CH_UTF8_S_F0]    = { 0x90, 0xBF, CH_UTF8_S_TAIL2 },
	[CH_UTF8_S_F4]    = { 0x80, 0x8F, CH_UTF8_S_TAIL2 },
};

/* The state after the first byte of a character. */
static const uint8_t ch_utf8_lead[256] = {
	[0x00 ... 0x7F] = CH_UTF8_S_ACCEPT,
	[0x80 ... 0xC1] = CH_UTF8_S_REJECT,	/* a tail, or overlong C0/C1 */
	[0xC2 ... 0xDF] = CH_UTF8_S_TAIL1,
	[0xE0]          = CH_UTF8_S_E0,
	[0xE1 ... 0xEC] = CH_UTF8_S_TAIL2,
	[0xED]          = CH_UTF8_S_ED,
	[0xEE ... 0xEF] = CH_UTF8_S_TAIL2,
	[0xF0]          = CH_UTF8_S_F0,
	[0xF1 ... 0xF3] = CH_UTF8_S_TAIL3,
	[0xF4]          = CH_UTF8_S_F4,
	[0xF5 ... 0xFF] = CH_UTF8_S_REJECT,
};

/* The high bit of each byte of a 64-bit word: any set means "not ASCII". */
#define CH_UTF8_HIGH_BITS 0x8080808080808080ull
#define CH_UTF8_WORD 8

void ch_utf8_init(struct ch_utf8 *u)
{
	u->state = CH_UTF8_S_ACCEPT;
}

enum ch_utf8_status ch_utf8_status(const struct ch_utf8 *u)
{
	if (u->state == CH_UTF8_S_ACCEPT)
		return CH_UTF8_COMPLETE;
	if (u->state == CH_UTF8_S_REJECT)
		return CH_UTF8_INVALID;
	return CH_UTF8_PARTIAL;
}

/* Skip the ASCII run at the start of b[i..n); returns the index after it. */
static size_t ch_utf8_skip_ascii(const unsigned char *b, size_t i, size_t n)
{
	while (n - i >= CH_UTF8_WORD) {
		uint64_t w;

		memcpy(&w, b + i, sizeof(w));
		if (w & CH_UTF8_HIGH_BITS)
			break;
		i += CH_UTF8_WORD;
	}
	while (i < n && b[i] < 0x80)
		i++;
	return i;
}

enum ch_utf8_status ch_utf8_feed(struct ch_utf8 *u, const void *p, size_t n)
{
	const unsigned char *b = p;
	uint32_t s = u->state;
	size_t i = 0;

	while (i < n && s != CH_UTF8_S_REJECT) {
		if (s == CH_UTF8_S_ACCEPT) {
			i = ch_utf8_skip_ascii(b, i, n);
			if (i == n)
				break;
			s = ch_utf8_lead[b[i++]];
		} else {
			const struct ch_utf8_step *st = &ch_utf8_steps[s];
			unsigned char c = b[i++];

			s = (c >= st->lo && c <= st->hi) ? st->next : CH_UTF8_S_REJECT;
		}
	}
	u->state = s;
	return ch_utf8_status(u);
}

bool ch_utf8_valid(const void *p, size_t n)
{
	struct ch_utf8 u;

	ch_utf8_init(&u);
	return ch_utf8_feed(&u, p, n) == CH_UTF8_COMPLETE;
}
