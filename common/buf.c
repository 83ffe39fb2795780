/*
 * Growable buffers and JSON strings: see buf.h.
 */
#include "common/buf.h"

#include "common/utf8.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CH_BUF_MIN 256

void ch_buf_init(struct ch_buf *b)
{
	memset(b, 0, sizeof(*b));
}

void ch_buf_free(struct ch_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

int ch_buf_reserve(struct ch_buf *b, size_t more)
{
	if (b->failed)
		return -1;
	if (more > SIZE_MAX / 2 - b->len) {
		/* No buffer can be that large; doubling would overflow. */
		b->failed = 1;
		return -1;
	}
	if (b->len + more <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : CH_BUF_MIN;
	while (cap < b->len + more)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p) {
		b->failed = 1;
		return -1;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

void ch_buf_append(struct ch_buf *b, const void *p, size_t n)
{
	if (n == 0 || ch_buf_reserve(b, n) < 0)
		return;
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

void ch_buf_puts(struct ch_buf *b, const char *s)
{
	ch_buf_append(b, s, strlen(s));
}

void ch_buf_printf(struct ch_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || ch_buf_reserve(b, (size_t)n + 1) < 0)
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void ch_buf_u64(struct ch_buf *b, uint64_t v)
{
	char tmp[24];
	int i = (int)sizeof(tmp);
	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	ch_buf_append(b, tmp + i, sizeof(tmp) - (size_t)i);
}

void ch_json_str(struct ch_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";

	/* Worst case: every byte becomes \u00XX. */
	if (n > (SIZE_MAX - 2) / 6) {
		b->failed = 1;
		return;
	}
	if (ch_buf_reserve(b, n * 6 + 2) < 0)
		return;
	char *o = b->p + b->len;
	*o++ = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x80) {
			/* JSON text is UTF-8: a sequence that is not valid UTF-8
			 * becomes U+FFFD, one per bad byte, never raw bytes. */
			size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
			if (len > 1 && i + len <= n && ch_utf8_valid(s + i, len)) {
				memcpy(o, s + i, len);
				o += len;
				i += len - 1;
			} else {
				memcpy(o, "\\ufffd", 6);
				o += 6;
			}
			continue;
		}
		if (c >= 0x20 && c != '"' && c != '\\') {
			*o++ = (char)c;
			continue;
		}
		*o++ = '\\';
		switch (c) {
		case '"': *o++ = '"'; break;
		case '\\': *o++ = '\\'; break;
		case '\n': *o++ = 'n'; break;
		case '\r': *o++ = 'r'; break;
		case '\t': *o++ = 't'; break;
		case '\b': *o++ = 'b'; break;
		case '\f': *o++ = 'f'; break;
		default:
			*o++ = 'u';
			*o++ = '0';
			*o++ = '0';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o++ = '"';
	b->len = (size_t)(o - b->p);
}

void ch_json_key(struct ch_buf *b, const char *key)
{
	ch_json_str(b, key, strlen(key));
	ch_buf_append(b, ":", 1);
}

void ch_hex(const unsigned char *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 0xf];
	}
	out[2 * n] = '\0';
}
