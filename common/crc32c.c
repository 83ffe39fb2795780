/*
 * CRC32C: see crc32c.h.
 *
 * Invariants: crc_tables is written once, under table_once, before any
 * reader uses it; crc_impl is chosen once, under impl_once. pthread_once
 * gives the ordering both need, so no other synchronisation is used.
 */
#include "common/crc32c.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#define CH_CRC32C_HAVE_X86 1
#endif

/* Reflected Castagnoli polynomial. */
#define CRC32C_POLY 0x82F63B78u
#define CRC_TABLE_SLICES 8
#define CRC_TABLE_ENTRIES 256

static uint32_t crc_tables[CRC_TABLE_SLICES][CRC_TABLE_ENTRIES];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

typedef uint32_t crc_fn(uint32_t crc, const void *p, size_t n);
static crc_fn *crc_impl;
static pthread_once_t impl_once = PTHREAD_ONCE_INIT;

/*
 * crc_tables[0] is the classic byte-at-a-time table; slice k holds the
 * effect of a byte followed by k zero bytes, so eight table lookups fold in
 * eight bytes at once.
 */
static void crc_tables_init(void)
{
	for (uint32_t i = 0; i < CRC_TABLE_ENTRIES; i++) {
		uint32_t c = i;

		for (int bit = 0; bit < 8; bit++)
			c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
		crc_tables[0][i] = c;
	}
	for (int k = 1; k < CRC_TABLE_SLICES; k++) {
		for (uint32_t i = 0; i < CRC_TABLE_ENTRIES; i++) {
			uint32_t prev = crc_tables[k - 1][i];

			crc_tables[k][i] = (prev >> 8) ^ crc_tables[0][prev & 0xff];
		}
	}
}

/* Little-endian load written byte by byte, so it is right on any host;
 * gcc turns it into one load on x86. */
static inline uint32_t load_le32(const unsigned char *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
	       (uint32_t)b[3] << 24;
}

uint32_t ch_crc32c_sw(uint32_t crc, const void *p, size_t n)
{
	const unsigned char *b = p;
	const uint32_t (*t)[CRC_TABLE_ENTRIES] = crc_tables;
	uint32_t c = ~crc;

	pthread_once(&table_once, crc_tables_init);
	while (n >= 8) {
		uint32_t lo = load_le32(b) ^ c;
		uint32_t hi = load_le32(b + 4);

		c = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^
		    t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^
		    t[3][hi & 0xff] ^ t[2][(hi >> 8) & 0xff] ^
		    t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
		b += 8;
		n -= 8;
	}
	while (n-- > 0)
		c = t[0][(c ^ *b++) & 0xff] ^ (c >> 8);
	return ~c;
}

#ifdef CH_CRC32C_HAVE_X86
__attribute__((target("sse4.2")))
uint32_t ch_crc32c_hw(uint32_t crc, const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t c = (uint32_t)~crc;

	/* Align so the 8-byte loads never straddle a cache line needlessly. */
	while (n > 0 && ((uintptr_t)b & 7) != 0) {
		c = _mm_crc32_u8((uint32_t)c, *b++);
		n--;
	}
	while (n >= 8) {
		uint64_t w;

		memcpy(&w, b, sizeof(w));
		c = _mm_crc32_u64(c, w);
		b += 8;
		n -= 8;
	}
	while (n-- > 0)
		c = _mm_crc32_u8((uint32_t)c, *b++);
	return ~(uint32_t)c;
}

int ch_crc32c_hw_available(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("sse4.2") ? 1 : 0;
}
#else
/* No crc32 instruction on this architecture: the table does the work. */
uint32_t ch_crc32c_hw(uint32_t crc, const void *p, size_t n)
{
	return ch_crc32c_sw(crc, p, n);
}

int ch_crc32c_hw_available(void)
{
	return 0;
}
#endif

static void crc_impl_init(void)
{
	crc_impl = ch_crc32c_hw_available() ? ch_crc32c_hw : ch_crc32c_sw;
}

uint32_t ch_crc32c(uint32_t crc, const void *p, size_t n)
{
	pthread_once(&impl_once, crc_impl_init);
	return crc_impl(crc, p, n);
}
