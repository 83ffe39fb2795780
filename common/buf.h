/*
 * A growable byte buffer, and writing JSON text into one. The JSON side is
 * the few pieces chatd's hot paths build by hand (message frames, room
 * lists, history pages) without a cJSON tree per message: strings are
 * escaped per RFC 8259, everything else is the caller's literal text.
 *
 * A buffer that failed to grow remembers it (failed = 1) and ignores
 * further appends, so a builder checks once at the end.
 */
#ifndef CH_BUF_H
#define CH_BUF_H

#include <stddef.h>
#include <stdint.h>

struct ch_buf {
	char *p;
	size_t len;
	size_t cap;
	int failed;
};

void ch_buf_init(struct ch_buf *b);
void ch_buf_free(struct ch_buf *b);
int ch_buf_reserve(struct ch_buf *b, size_t more);
void ch_buf_append(struct ch_buf *b, const void *p, size_t n);
void ch_buf_puts(struct ch_buf *b, const char *s);
void ch_buf_printf(struct ch_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ch_buf_u64(struct ch_buf *b, uint64_t v);

/* A JSON string: quotes, escapes, the bytes of s[0..n). */
void ch_json_str(struct ch_buf *b, const char *s, size_t n);

/* p[0..n) as 2n lowercase hex digits and a NUL into out (2n + 1 bytes). */
void ch_hex(const unsigned char *p, size_t n, char *out);
/* "key": as a JSON object member name, followed by the colon. */
void ch_json_key(struct ch_buf *b, const char *key);

#endif
