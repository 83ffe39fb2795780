/*
 * libFuzzer target for worker/multipart.c.
 *
 * Input layout: byte 0 picks the largest piece (1 << (b % 8) bytes), byte 1
 * seeds the generator of piece sizes, the rest is a request body parsed with
 * the boundary "b0undary". The target checks that feeding the body in
 * pieces gives exactly the events, data and result of one call on all of
 * it, that data is only reported inside a part, that each piece is read
 * only within its bounds (it sits at the very end of a heap block, so ASan
 * reports any read past it), and that an error is sticky.
 */
#include "worker/multipart.h"
#include "tests/fuzz/fuzz.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CTRL_BYTES 2
#define FUZZ_MAX_PIECE_SHIFT 8
#define FUZZ_BOUNDARY "b0undary"

/* What the callback saw: a running hash of events and bytes, and counts. */
struct fuzz_log {
	uint64_t hash;
	size_t bytes, begins, ends;
	int in_part;
};

static void fuzz_mix(struct fuzz_log *l, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		l->hash = (l->hash ^ b[i]) * 0x100000001b3ull;
}

static int fuzz_cb(void *ctx, enum ch_mp_event ev, const struct ch_mp_part *part,
		   const char *data, size_t len)
{
	struct fuzz_log *l = ctx;
	unsigned char tag = (unsigned char)ev;

	if (ev != CH_MP_DATA)	/* data may be cut anywhere: only its bytes count */
		fuzz_mix(l, &tag, 1);
	switch (ev) {
	case CH_MP_PART_BEGIN:
		fuzz_check(!l->in_part);
		fuzz_check(strlen(part->name) <= CH_MP_NAME_MAX);
		fuzz_check(strlen(part->filename) <= CH_MP_FILENAME_MAX);
		fuzz_mix(l, part->name, strlen(part->name) + 1);
		fuzz_mix(l, part->filename, strlen(part->filename) + 1);
		fuzz_mix(l, part->content_type, strlen(part->content_type) + 1);
		l->in_part = 1;
		l->begins++;
		break;
	case CH_MP_DATA:
		fuzz_check(l->in_part && len > 0);
		fuzz_mix(l, data, len);
		l->bytes += len;
		break;
	case CH_MP_PART_END:
		fuzz_check(l->in_part);
		l->in_part = 0;
		l->ends++;
		break;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ch_multipart m1, m2;
	struct fuzz_log l1 = { 0 }, l2 = { 0 };

	if (size < FUZZ_CTRL_BYTES)
		return 0;
	size_t max = (size_t)1 << (data[0] % FUZZ_MAX_PIECE_SHIFT);
	uint32_t seed = 0x9e3779b9u ^ ((uint32_t)data[1] << 8 | data[0]);
	const char *body = (const char *)data + FUZZ_CTRL_BYTES;
	size_t n = size - FUZZ_CTRL_BYTES;

	char *whole = malloc(n ? n : 1);
	fuzz_check(whole != NULL);
	memcpy(whole, body, n);
	ch_mp_init(&m1, FUZZ_BOUNDARY, fuzz_cb, &l1);
	int r1 = ch_mp_feed(&m1, whole, n);
	free(whole);
	fuzz_check(r1 == CH_MP_OK || r1 == CH_MP_E_SYNTAX || r1 == CH_MP_E_TOO_LARGE);
	fuzz_check(l1.begins <= CH_MP_MAX_PARTS);

	ch_mp_init(&m2, FUZZ_BOUNDARY, fuzz_cb, &l2);
	int r2 = CH_MP_OK;
	for (size_t pos = 0; pos < n && r2 == CH_MP_OK;) {
		size_t step = 1 + fuzz_next(&seed) % max;
		if (step > n - pos)
			step = n - pos;
		char *piece = malloc(step);
		fuzz_check(piece != NULL);
		memcpy(piece, body + pos, step);
		r2 = ch_mp_feed(&m2, piece, step);
		free(piece);
		pos += step;
	}
	fuzz_check(r1 == r2);
	fuzz_check(ch_mp_done(&m1) == ch_mp_done(&m2));
	fuzz_check(l1.begins == l2.begins && l1.ends == l2.ends && l1.bytes == l2.bytes);
	if (r1 == CH_MP_OK)
		fuzz_check(l1.hash == l2.hash);
	if (ch_mp_done(&m1))
		fuzz_check(!l1.in_part);
	if (r1 != CH_MP_OK)	/* sticky */
		fuzz_check(ch_mp_feed(&m1, "--", 2) == r1);
	return 0;
}
