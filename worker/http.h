/*
 * HTTP/1.1 request parsing and response heads, with no I/O: the worker's
 * loop feeds bytes in, this module says what they mean. Pure functions over
 * caller-owned memory, so the unit tests and the fuzzer drive it directly.
 *
 * Incremental by construction: the caller accumulates the bytes of a request
 * head and calls ch_http_parse_head() on all of them each time more arrive.
 * The result depends only on the bytes, never on how they were split; the
 * caller passes back *scanned so the search for the blank line never
 * re-reads a byte (linear, not quadratic, in a slow trickle).
 *
 * Request bodies: Content-Length is taken from the head; chunked bodies are
 * decoded by struct ch_chunked, a byte-at-a-time state machine that can stop
 * and resume at any byte boundary.
 */
#ifndef CH_HTTP_H
#define CH_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CH_HTTP_MAX_HEAD (16 * 1024)	/* request line + headers; past it: 431 */
#define CH_HTTP_MAX_HEADERS 64		/* header lines kept; past it: 431 */

enum ch_http_method {
	CH_HTTP_OTHER,	/* a syntactically valid method we do not serve: 405 */
	CH_HTTP_GET,
	CH_HTTP_HEAD,
	CH_HTTP_POST,
	CH_HTTP_PUT,
	CH_HTTP_DELETE,
	CH_HTTP_OPTIONS,
};

/* A slice of the caller's buffer (not NUL-terminated). */
struct ch_str {
	const char *p;
	size_t len;
};

struct ch_http_header {
	struct ch_str name;
	struct ch_str value;	/* leading and trailing spaces/tabs trimmed */
};

struct ch_http_req {
	enum ch_http_method method;
	struct ch_str method_text;
	struct ch_str target;	/* as sent: path plus "?query" */
	struct ch_str path;	/* target up to '?' (still percent-encoded) */
	struct ch_str query;	/* after '?', without it; len 0 when absent */
	int minor;		/* HTTP/1.<minor>: 0 or 1 */

	struct ch_http_header headers[CH_HTTP_MAX_HEADERS];
	int n_headers;

	/* Derived from the headers while parsing: */
	int64_t content_length;	/* -1 when absent */
	unsigned chunked:1;	/* Transfer-Encoding: chunked (last coding) */
	unsigned keep_alive:1;	/* 1.1 default on, "Connection: close" off;
				   1.0 default off, "Connection: keep-alive" on */
	unsigned expect_continue:1;	/* Expect: 100-continue */
	unsigned upgrade_websocket:1;	/* Upgrade: websocket + Connection: upgrade */
	struct ch_str host;
	struct ch_str authorization;
	struct ch_str content_type;
};

/*
 * Result codes of ch_http_parse_head (negative: the status to answer, then
 * close the connection).
 */
#define CH_HTTP_AGAIN 0			/* no complete head yet */
#define CH_HTTP_E_BAD (-400)		/* malformed */
#define CH_HTTP_E_TOO_LARGE (-431)	/* head over CH_HTTP_MAX_HEAD or too many headers */
#define CH_HTTP_E_NOT_IMPL (-501)	/* a Transfer-Encoding other than chunked */
#define CH_HTTP_E_VERSION (-505)	/* not HTTP/1.0 or HTTP/1.1 */

/*
 * Parse a request head from buf[0..len). *scanned is how many bytes earlier
 * calls already searched for the end of the head (start it at 0 for each new
 * request). Returns the length of the head including its final CRLF CRLF
 * (> 0) with *req filled, CH_HTTP_AGAIN, or a CH_HTTP_E_* code.
 *
 * Rules: request line "METHOD SP target SP HTTP/1.x CRLF"; a bare LF is
 * accepted as a line end (as nginx does); empty lines before the request
 * line are skipped (RFC 9112 2.2); header names are tokens, with no space
 * before the colon; obsolete line folding is refused (400); both
 * Content-Length and Transfer-Encoding, conflicting Content-Length values,
 * or a Content-Length that is not a plain decimal number are refused (400);
 * the target must start with '/' (origin form) or be "*" for OPTIONS.
 * Transfer-Encoding in an HTTP/1.0 request, or "chunked" named twice, is
 * refused (400); any coding but a single final "chunked" is 501. A request
 * line without a version (HTTP/0.9) or another HTTP/x.y is 505. On AGAIN
 * *req is untouched; on an error its contents are unspecified.
 */
int ch_http_parse_head(const char *buf, size_t len, size_t *scanned,
		       struct ch_http_req *req);

/*
 * A query parameter's raw value (not percent-decoded) from a query string
 * ("a=1&b=2"): 1 and *value set when name= is there (the last one wins), 0
 * when it is not.
 */
int ch_http_query_param(struct ch_str query, const char *name, struct ch_str *value);

/* Case-insensitive header lookup; NULL when absent. */
const struct ch_str *ch_http_header(const struct ch_http_req *req, const char *name);

/*
 * Does the request's If-None-Match name this entity tag (with its quotes),
 * or "*"? A list is searched element by element, and the comparison is the
 * weak one the header calls for: W/"x" matches "x". False when absent.
 */
bool ch_http_if_none_match(const struct ch_http_req *req, const char *etag);

/*
 * Decode a percent-encoded path into out (NUL-terminated). Returns 0, or
 * -1 for an encoded NUL, a bad escape, a path that does not start with '/',
 * or one that does not fit in outlen bytes with its NUL. '+' stays '+'.
 * Does not resolve dot segments: see ch_http_path_normalize.
 */
int ch_http_path_decode(struct ch_str path, char *out, size_t outlen);

/*
 * Resolve "." and ".." segments and repeated slashes in place in a decoded
 * path. Returns 0, or -1 when ".." would climb above "/" (the caller answers
 * 404, never serving anything outside the root) or the path does not start
 * with '/'. A trailing "/", "/." or "/.." leaves a trailing '/'.
 */
int ch_http_path_normalize(char *path);

/* ---- chunked request bodies ---- */

struct ch_chunked {
	int state;		/* internal */
	uint64_t remaining;	/* bytes left in the current chunk */
	uint64_t total;		/* body bytes decoded so far */
	size_t line_len;	/* bytes in the current size or trailer line */
	size_t trailer_len;	/* trailer section bytes so far (internal) */
};

#define CH_CHUNKED_MAX_LINE 4096	/* a chunk-size or trailer line */

void ch_chunked_init(struct ch_chunked *c);

/*
 * Decode in[0..len). Body bytes are written to out (which the caller sizes
 * at least len; decoding never grows the data, so out may equal in),
 * *out_len set to how many.
 * Returns the number of input bytes consumed; *done is set when the final
 * chunk and trailers have been read (input after that is not consumed: it
 * belongs to the next pipelined request). Returns -1 on malformed input
 * (400), and again on every later call. Chunk extensions are ignored;
 * trailers are read and discarded (at most CH_HTTP_MAX_HEAD bytes of them).
 */
long ch_chunked_feed(struct ch_chunked *c, const char *in, size_t len,
		     char *out, size_t *out_len, int *done);

/* ---- responses ---- */

/* The reason phrase of a status code ("Not Found"); "Unknown" if unknown. */
const char *ch_http_reason(int status);

/*
 * Write a response head into out: status line, Date is NOT included (the
 * worker adds a cached one), Content-Type when given, Content-Length (not
 * for 1xx and 204, RFC 9110 8.6), Connection: close when !keep_alive, extra
 * (already CRLF-terminated header lines, may be NULL), then the blank line.
 * out is NUL-terminated. Returns the length without the NUL, or -1 when it
 * does not fit, the status is not three digits, or content_type holds a CR
 * or LF.
 */
int ch_http_format_head(char *out, size_t outlen, int status,
			const char *content_type, uint64_t content_length,
			int keep_alive, const char *extra);

#endif
