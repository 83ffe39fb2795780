/*
 * fuzz.h - what the libFuzzer targets in tests/fuzz share: the entry point's
 * prototype, fuzz_next (the generator that cuts inputs into pieces) and
 * fuzz_check, an
 * assertion that stays on in every build (libFuzzer reports the abort as a
 * crash and keeps the input that caused it).
 */
#ifndef CH_FUZZ_H
#define CH_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* libFuzzer's entry point, which each target defines. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define fuzz_check(cond)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "%s:%d: check failed: %s\n",       \
				__FILE__, __LINE__, #cond);                \
			abort();                                           \
		}                                                          \
	} while (0)

/*
 * xorshift32: the next pseudo-random number from *s (never 0 if *s is not
 * 0). Cheap, and seeded from the input so a crash replays with the same
 * piece sizes.
 */
static inline uint32_t fuzz_next(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

#endif
