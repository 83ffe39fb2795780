/*
 * Incremental UTF-8 validation (RFC 3629 section 4), for text that arrives
 * in pieces: WebSocket text messages split across frames and reads, JSON
 * strings, close reasons.
 *
 * A struct ch_utf8 carries one small state from one piece to the next, so
 * the verdict on a byte string never depends on where it was cut. Refused:
 * bytes 0xC0, 0xC1 and 0xF5..0xFF anywhere, a continuation byte where a
 * character should start, a lead byte not followed by enough continuation
 * bytes, overlong forms (a code point encoded in more bytes than it needs),
 * UTF-16 surrogates U+D800..U+DFFF, and code points above U+10FFFF. Every
 * such error is found at the first byte that makes it certain (for example
 * "ED A0" fails at A0, not after a third byte), which is what WebSocket's
 * fail-fast rule needs (RFC 6455 8.1).
 *
 * Usage:
 *
 *	struct ch_utf8 u;
 *	ch_utf8_init(&u);
 *	if (ch_utf8_feed(&u, a, na) == CH_UTF8_INVALID) -> bad
 *	if (ch_utf8_feed(&u, b, nb) != CH_UTF8_COMPLETE) -> bad at the end of
 *		the text (CH_UTF8_PARTIAL: it stops inside a character)
 *
 * Runs of ASCII are checked eight bytes at a time. No allocation, no global
 * state; thread-safe.
 */
#ifndef CH_UTF8_H
#define CH_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Verdict on everything fed so far. */
enum ch_utf8_status {
	CH_UTF8_INVALID = -1,	/* not UTF-8, whatever follows (sticky) */
	CH_UTF8_COMPLETE = 0,	/* valid, and ends between characters */
	CH_UTF8_PARTIAL = 1,	/* valid so far, but ends inside a character */
};

/* Opaque to callers: which bytes may come next. Zero means "complete". */
struct ch_utf8 {
	uint32_t state;
};

void ch_utf8_init(struct ch_utf8 *u);

/* Check p[0..n) as the continuation of what u has seen; n may be 0. */
enum ch_utf8_status ch_utf8_feed(struct ch_utf8 *u, const void *p, size_t n);

/* The verdict so far, without feeding anything. */
enum ch_utf8_status ch_utf8_status(const struct ch_utf8 *u);

/* One-shot: true when p[0..n) is complete, valid UTF-8. */
bool ch_utf8_valid(const void *p, size_t n);

#endif
