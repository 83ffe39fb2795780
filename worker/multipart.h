/*
 * multipart/form-data (RFC 7578 over RFC 2046) as an incremental parser with
 * no I/O and no allocation: the upload handler feeds it request body bytes
 * as they arrive and it calls back with each part's headers and data.
 *
 * Invariants:
 *  - The events and the concatenated data of each part depend only on the
 *    bytes, never on how they were split between calls (the unit test and
 *    the fuzzer feed every split and compare).
 *  - Data is handed over as slices of the caller's input (or of the parser's
 *    own copy of the delimiter, for bytes that looked like the start of a
 *    delimiter and turned out not to be); nothing is buffered beyond one
 *    part's header section (at most CH_MP_HEADERS_MAX bytes).
 *  - Once an error is returned, every later call returns it again.
 *
 * Delimiters are found with a one-byte-of-state matcher: the delimiter is
 * CRLF "--" boundary, and a boundary cannot hold a CR (RFC 2046 5.1.1), so
 * when a partial match fails the only place a new match can start is the
 * failing byte itself. That keeps the scan linear however the input is cut.
 */
#ifndef CH_MULTIPART_H
#define CH_MULTIPART_H

#include <stddef.h>
#include <stdint.h>

#define CH_MP_BOUNDARY_MAX 70		/* RFC 2046 5.1.1 */
#define CH_MP_HEADERS_MAX 8192		/* one part's header section */
#define CH_MP_NAME_MAX 255		/* a field name */
#define CH_MP_FILENAME_MAX 1024		/* a filename as sent (before sanitising) */
#define CH_MP_TYPE_MAX 127		/* a part's Content-Type */
#define CH_MP_MAX_PARTS 64		/* parts in one body */
/* Parameter values (name=, filename=) are tokens or quoted strings in
 * which \" stands for a quote; any other backslash is itself. */

/* A part's headers, valid from CH_MP_PART_BEGIN to CH_MP_PART_END. */
struct ch_mp_part {
	char name[CH_MP_NAME_MAX + 1];		/* Content-Disposition name= */
	char filename[CH_MP_FILENAME_MAX + 1];	/* filename=, "" when absent */
	char content_type[CH_MP_TYPE_MAX + 1];	/* "" when absent */
	unsigned has_filename:1;
};

enum ch_mp_event {
	CH_MP_PART_BEGIN,	/* headers parsed: part is filled in */
	CH_MP_DATA,		/* data[0..len) of the current part */
	CH_MP_PART_END,		/* the part's delimiter was found */
};

/* Return 0 to go on, anything else to stop: feed then returns CH_MP_E_STOPPED. */
typedef int (*ch_mp_callback)(void *ctx, enum ch_mp_event ev, const struct ch_mp_part *part,
			      const char *data, size_t len);

#define CH_MP_OK 0
#define CH_MP_E_SYNTAX (-1)	/* malformed body */
#define CH_MP_E_TOO_LARGE (-2)	/* a header section or a value over its limit, too many parts */
#define CH_MP_E_STOPPED (-3)	/* the callback asked to stop */

struct ch_multipart {
	int state;			/* internal */
	int error;			/* sticky: 0 or a CH_MP_E_* */
	size_t match;			/* delimiter bytes matched so far */
	size_t dlen;			/* length of delim */
	char delim[CH_MP_BOUNDARY_MAX + 4];	/* CR LF "--" boundary */
	size_t hlen;			/* bytes in hdr */
	char hdr[CH_MP_HEADERS_MAX];	/* the current header line */
	size_t headers_total;		/* header section bytes so far */
	unsigned parts;
	int has_disposition;
	struct ch_mp_part part;
	ch_mp_callback cb;
	void *ctx;
};

/*
 * The boundary parameter of a Content-Type value ("multipart/form-data;
 * boundary=xyz", quoted or not) into out (NUL-terminated, outlen at least
 * CH_MP_BOUNDARY_MAX + 1). 0, or -1 when the type is not
 * multipart/form-data or the boundary is missing, empty, too long or holds
 * a character RFC 2046 does not allow.
 */
int ch_mp_boundary(const char *ct, size_t len, char *out, size_t outlen);

/* Start parsing a body with this boundary (as ch_mp_boundary gave it). */
void ch_mp_init(struct ch_multipart *m, const char *boundary, ch_mp_callback cb, void *ctx);

/*
 * Feed in[0..len). Returns CH_MP_OK or a CH_MP_E_* code. Bytes after the
 * closing delimiter (the epilogue) are ignored.
 */
int ch_mp_feed(struct ch_multipart *m, const char *in, size_t len);

/* 1 once the closing delimiter has been read: the body was complete. */
int ch_mp_done(const struct ch_multipart *m);

#endif
