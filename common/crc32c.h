/*
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of
 * every journal record.
 *
 * ch_crc32c() picks, once per process, the SSE4.2 crc32 instruction when the
 * CPU has it and a portable slice-by-8 table otherwise; both give the same
 * result for every input (the unit test holds them to that).
 *
 * The value is the standard one: the initial inversion and the final
 * inversion are done inside, so start with 0 and feed pieces in order:
 *
 *	crc = ch_crc32c(0, a, na);
 *	crc = ch_crc32c(crc, b, nb);	// == ch_crc32c(0, "a then b", na + nb)
 *
 * ch_crc32c(0, "123456789", 9) == 0xE3069283.
 */
#ifndef CH_CRC32C_H
#define CH_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC32C of p[0..n) continued from crc (0 to start). Thread-safe. */
uint32_t ch_crc32c(uint32_t crc, const void *p, size_t n);

/* The portable slice-by-8 version, same contract (exported for tests). */
uint32_t ch_crc32c_sw(uint32_t crc, const void *p, size_t n);

/*
 * The SSE4.2 version, same contract. Call it only when
 * ch_crc32c_hw_available() says so (it executes crc32 instructions).
 */
uint32_t ch_crc32c_hw(uint32_t crc, const void *p, size_t n);

/* 1 when this CPU (and this build's target) has the crc32 instruction. */
int ch_crc32c_hw_available(void);

#endif
