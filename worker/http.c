/*
 * HTTP/1.1 request heads, chunked request bodies, request paths and response
 * heads: see http.h. No I/O, no allocation, no global state.
 *
 * Invariants:
 * - Every read is inside the caller's buf[0..len); look-behind in the
 *   end-of-head search checks its index first.
 * - ch_http_parse_head looks at the head's syntax only once the whole head
 *   is buffered, so its result is a function of the bytes alone and never of
 *   how they were split. The end of the head is "the first empty line after
 *   a non-empty line", decided from at most four bytes behind each LF, which
 *   is what lets *scanned resume the search with no other saved state.
 * - A line ends at LF; one CR right before the LF belongs to the line end.
 *   Any other CR is a control character and refused where it appears, so the
 *   search and the parser always agree on where lines and the head end.
 * - Limits are checked against the bytes buffered (CH_HTTP_MAX_HEAD) before
 *   any syntax, so an endless head is refused as soon as it is too long.
 */
#include "worker/http.h"

#include <stdbool.h>
#include <string.h>

/* Content-Length digits we accept: 18 decimal digits always fit int64_t. */
#define CH_HTTP_MAX_CL_DIGITS 18
/* Chunk-size hex digits: 15 fit in 60 bits, so the size never overflows. */
#define CH_CHUNKED_MAX_SIZE_DIGITS 15
/* Trailer section of a chunked body, all lines together. */
#define CH_CHUNKED_MAX_TRAILER CH_HTTP_MAX_HEAD

/* ------------------------------------------------------------------------
 * Character classes
 * ---------------------------------------------------------------------- */

/* RFC 9110 5.6.2 tchar: what method names and header names are made of. */
static const unsigned char ch_tchar[256] = {
	['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
	['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1,
	['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1,
	['`'] = 1, ['|'] = 1, ['~'] = 1,
};

static bool ch_is_tchar(unsigned char c)
{
	return ch_tchar[c] != 0;
}

/* Request targets: visible ASCII only (no space, no control, no 8-bit). */
static bool ch_is_target_char(unsigned char c)
{
	return c > ' ' && c < 0x7f;
}

/* Field values: visible, SP, HTAB and obs-text; never CR, LF, NUL or DEL. */
static bool ch_is_field_char(unsigned char c)
{
	return c == '\t' || (c >= ' ' && c != 0x7f);
}

static bool ch_is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static unsigned char ch_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* ASCII case-insensitive equality of p[0..n) and the C string s. */
static bool ch_ieq(const char *p, size_t n, const char *s)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (s[i] == '\0' || ch_lower((unsigned char)p[i]) != ch_lower((unsigned char)s[i]))
			return false;
	}
	return s[n] == '\0';
}

static int ch_hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = ch_lower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* ------------------------------------------------------------------------
 * Finding the end of the head
 * ---------------------------------------------------------------------- */

/* Is the line ending with the LF at buf[lf] empty (nothing, or a lone CR)? */
static bool ch_line_empty(const char *buf, size_t lf)
{
	if (lf == 0 || buf[lf - 1] == '\n')
		return true;
	return buf[lf - 1] == '\r' && (lf == 1 || buf[lf - 2] == '\n');
}

/*
 * Does the LF at buf[j] end the head? It does when its line is empty and
 * the line before it is not: empty lines before the request line are
 * skipped, and the first empty line after it ends the head.
 */
static bool ch_ends_head(const char *buf, size_t j)
{
	size_t prev;

	if (!ch_line_empty(buf, j))
		return false;
	if (j >= 1 && buf[j - 1] == '\n')
		prev = j - 1;
	else if (j >= 2 && buf[j - 1] == '\r' && buf[j - 2] == '\n')
		prev = j - 2;
	else
		return false;	/* the very first line of the buffer */
	return !ch_line_empty(buf, prev);
}

/*
 * Search buf[*scanned..min(len, CH_HTTP_MAX_HEAD)) for the end of the head.
 * Returns the head length, or 0 when it is not there yet. Each position is
 * tested once over all calls, since testing it reads only bytes before it.
 */
static size_t ch_find_head_end(const char *buf, size_t len, size_t *scanned)
{
	size_t limit = len < CH_HTTP_MAX_HEAD ? len : CH_HTTP_MAX_HEAD;
	size_t j = *scanned;

	while (j < limit) {
		const char *lf = memchr(buf + j, '\n', limit - j);

		if (lf == NULL)
			break;
		j = (size_t)(lf - buf);
		if (ch_ends_head(buf, j)) {
			*scanned = j + 1;
			return j + 1;
		}
		j++;
	}
	*scanned = limit;
	return 0;
}

/* ------------------------------------------------------------------------
 * Request line
 * ---------------------------------------------------------------------- */

struct ch_method_name {
	const char *name;
	enum ch_http_method method;
};

static const struct ch_method_name ch_methods[] = {
	{ "GET", CH_HTTP_GET },
	{ "HEAD", CH_HTTP_HEAD },
	{ "POST", CH_HTTP_POST },
	{ "PUT", CH_HTTP_PUT },
	{ "DELETE", CH_HTTP_DELETE },
	{ "OPTIONS", CH_HTTP_OPTIONS },
};

/* Method names are case-sensitive (RFC 9110 9.1): "get" is just a token. */
static enum ch_http_method ch_method_lookup(struct ch_str m)
{
	size_t i;

	for (i = 0; i < sizeof(ch_methods) / sizeof(ch_methods[0]); i++) {
		const char *n = ch_methods[i].name;

		if (strlen(n) == m.len && memcmp(n, m.p, m.len) == 0)
			return ch_methods[i].method;
	}
	return CH_HTTP_OTHER;
}

/* "HTTP/" DIGIT+ [ "." DIGIT+ ]: a version, if not one we speak. */
static bool ch_looks_like_version(const char *v, size_t n)
{
	size_t i = sizeof("HTTP/") - 1, digits = 0;

	if (n < i || memcmp(v, "HTTP/", i) != 0)
		return false;
	for (; i < n && v[i] >= '0' && v[i] <= '9'; i++)
		digits++;
	if (digits == 0)
		return false;
	if (i == n)
		return true;
	if (v[i++] != '.')
		return false;
	digits = 0;
	for (; i < n && v[i] >= '0' && v[i] <= '9'; i++)
		digits++;
	return digits > 0 && i == n;
}

/* "METHOD SP target SP HTTP/1.x", the line end already stripped. */
static int ch_parse_request_line(const char *p, size_t n, struct ch_http_req *req)
{
	size_t i = 0, t0, q;
	const char *v;
	size_t vlen;

	while (i < n && ch_is_tchar((unsigned char)p[i]))
		i++;
	if (i == 0 || i == n || p[i] != ' ')
		return CH_HTTP_E_BAD;
	req->method_text = (struct ch_str){ p, i };
	req->method = ch_method_lookup(req->method_text);

	t0 = ++i;
	while (i < n && ch_is_target_char((unsigned char)p[i]))
		i++;
	if (i == t0 || (i < n && p[i] != ' '))
		return CH_HTTP_E_BAD;	/* empty target, or a control byte in it */
	req->target = (struct ch_str){ p + t0, i - t0 };
	if (req->target.p[0] != '/' &&
	    !(req->target.len == 1 && req->target.p[0] == '*' &&
	      req->method == CH_HTTP_OPTIONS))
		return CH_HTTP_E_BAD;
	q = 0;
	while (q < req->target.len && req->target.p[q] != '?')
		q++;
	req->path = (struct ch_str){ req->target.p, q };
	if (q < req->target.len)
		req->query = (struct ch_str){ req->target.p + q + 1, req->target.len - q - 1 };
	else
		req->query = (struct ch_str){ req->target.p + q, 0 };

	if (i == n)
		return CH_HTTP_E_VERSION;	/* "GET /": HTTP/0.9 */
	v = p + i + 1;
	vlen = n - i - 1;
	if (vlen == sizeof("HTTP/1.x") - 1 && memcmp(v, "HTTP/1.", vlen - 1) == 0 &&
	    (v[vlen - 1] == '0' || v[vlen - 1] == '1')) {
		req->minor = v[vlen - 1] - '0';
		return 0;
	}
	return ch_looks_like_version(v, vlen) ? CH_HTTP_E_VERSION : CH_HTTP_E_BAD;
}

/* ------------------------------------------------------------------------
 * Header fields
 * ---------------------------------------------------------------------- */

/* What the headers said, gathered before the final checks. */
struct ch_head_facts {
	bool have_cl;
	bool have_te;
	bool te_chunked;	/* the last coding seen so far is chunked */
	bool te_chunked_seen;
	bool te_chunked_twice;
	bool te_other;		/* a coding we do not implement */
	bool conn_close;
	bool conn_keep_alive;
	bool conn_upgrade;
	bool upgrade_ws;
	bool have_host;
};

/*
 * Next element of a comma-separated list in [*pos, end), OWS trimmed;
 * empty elements are skipped (RFC 9110 5.6.1). False at the end.
 */
static bool ch_list_next(const char **pos, const char *end, struct ch_str *elem)
{
	const char *p = *pos;

	while (p < end) {
		const char *s, *e;

		while (p < end && (ch_is_ows(*p) || *p == ','))
			p++;
		s = p;
		while (p < end && *p != ',')
			p++;
		e = p;
		while (e > s && ch_is_ows(e[-1]))
			e--;
		if (e > s) {
			*pos = p;
			*elem = (struct ch_str){ s, (size_t)(e - s) };
			return true;
		}
	}
	*pos = p;
	return false;
}

static int ch_take_content_length(struct ch_str v, struct ch_http_req *req,
				  struct ch_head_facts *f)
{
	int64_t n = 0;
	size_t i;

	/* Even an identical repeat is refused: two framings, one of them a lie. */
	if (f->have_cl || v.len == 0 || v.len > CH_HTTP_MAX_CL_DIGITS)
		return CH_HTTP_E_BAD;
	for (i = 0; i < v.len; i++) {
		if (v.p[i] < '0' || v.p[i] > '9')
			return CH_HTTP_E_BAD;
		n = n * 10 + (v.p[i] - '0');
	}
	f->have_cl = true;
	req->content_length = n;
	return 0;
}

static int ch_take_transfer_encoding(struct ch_str v, struct ch_head_facts *f)
{
	const char *pos = v.p;
	struct ch_str c;

	f->have_te = true;
	while (ch_list_next(&pos, v.p + v.len, &c)) {
		if (ch_ieq(c.p, c.len, "chunked")) {
			/* RFC 9112 7: chunked is applied at most once. */
			if (f->te_chunked_seen)
				f->te_chunked_twice = true;
			f->te_chunked_seen = f->te_chunked = true;
		} else {
			f->te_chunked = false;
			f->te_other = true;
		}
	}
	return 0;
}

static void ch_take_connection(struct ch_str v, struct ch_head_facts *f)
{
	const char *pos = v.p;
	struct ch_str t;

	while (ch_list_next(&pos, v.p + v.len, &t)) {
		if (ch_ieq(t.p, t.len, "close"))
			f->conn_close = true;
		else if (ch_ieq(t.p, t.len, "keep-alive"))
			f->conn_keep_alive = true;
		else if (ch_ieq(t.p, t.len, "upgrade"))
			f->conn_upgrade = true;
	}
}

static void ch_take_upgrade(struct ch_str v, struct ch_head_facts *f)
{
	const char *pos = v.p;
	struct ch_str t;

	while (ch_list_next(&pos, v.p + v.len, &t)) {
		if (ch_ieq(t.p, t.len, "websocket"))
			f->upgrade_ws = true;
	}
}

/* Note what a header means for framing, connection handling and routing. */
static int ch_take_header(const struct ch_http_header *h, struct ch_http_req *req,
			  struct ch_head_facts *f)
{
	struct ch_str n = h->name, v = h->value;

	if (ch_ieq(n.p, n.len, "content-length"))
		return ch_take_content_length(v, req, f);
	if (ch_ieq(n.p, n.len, "transfer-encoding"))
		return ch_take_transfer_encoding(v, f);
	if (ch_ieq(n.p, n.len, "connection")) {
		ch_take_connection(v, f);
	} else if (ch_ieq(n.p, n.len, "upgrade")) {
		ch_take_upgrade(v, f);
	} else if (ch_ieq(n.p, n.len, "expect")) {
		if (ch_ieq(v.p, v.len, "100-continue"))
			req->expect_continue = 1;
	} else if (ch_ieq(n.p, n.len, "host")) {
		/* Two Hosts could route one request two ways (RFC 9112 3.2). */
		if (f->have_host)
			return CH_HTTP_E_BAD;
		f->have_host = true;
		req->host = v;
	} else if (ch_ieq(n.p, n.len, "authorization")) {
		if (req->authorization.p == NULL)
			req->authorization = v;
	} else if (ch_ieq(n.p, n.len, "content-type")) {
		if (req->content_type.p == NULL)
			req->content_type = v;
	}
	return 0;
}

/* "name: value", the line end already stripped. */
static int ch_parse_header_line(const char *p, size_t n, struct ch_http_header *h)
{
	size_t i = 0, s, e;

	/* A leading SP/HTAB is obs-fold (or junk before the first field). */
	while (i < n && ch_is_tchar((unsigned char)p[i]))
		i++;
	if (i == 0 || i == n || p[i] != ':')
		return CH_HTTP_E_BAD;	/* empty name, space in it, or no colon */
	h->name = (struct ch_str){ p, i };
	s = i + 1;
	e = n;
	while (s < e && ch_is_ows(p[s]))
		s++;
	while (e > s && ch_is_ows(p[e - 1]))
		e--;
	for (i = s; i < e; i++) {
		if (!ch_is_field_char((unsigned char)p[i]))
			return CH_HTTP_E_BAD;
	}
	h->value = (struct ch_str){ p + s, e - s };
	return 0;
}

/* Framing and connection rules that need every header seen first. */
static int ch_finish_head(struct ch_http_req *req, const struct ch_head_facts *f)
{
	if (f->have_te) {
		/* CL with TE is the classic request-smuggling shape; 1.0 has no TE. */
		if (f->have_cl || req->minor == 0 || f->te_chunked_twice)
			return CH_HTTP_E_BAD;
		if (f->te_other)
			return CH_HTTP_E_NOT_IMPL;
		if (!f->te_chunked)
			return CH_HTTP_E_BAD;	/* no coding named at all */
		req->chunked = 1;
	}
	if (req->minor >= 1)
		req->keep_alive = !f->conn_close;
	else
		req->keep_alive = f->conn_keep_alive && !f->conn_close;
	req->upgrade_websocket = f->upgrade_ws && f->conn_upgrade;
	return 0;
}

/* The next line of buf[*pos..end): its content without CR LF or LF. */
static struct ch_str ch_next_line(const char *buf, size_t end, size_t *pos)
{
	const char *s = buf + *pos;
	const char *lf = memchr(s, '\n', end - *pos);
	size_t n;

	/* The head ends with an LF, so there always is one; be safe anyway. */
	n = lf != NULL ? (size_t)(lf - s) : end - *pos;
	*pos += n + (lf != NULL);
	if (n > 0 && s[n - 1] == '\r')
		n--;
	return (struct ch_str){ s, n };
}

/* Parse a complete head buf[0..hlen). */
static int ch_parse_complete_head(const char *buf, size_t hlen, struct ch_http_req *req)
{
	struct ch_head_facts f;
	struct ch_str line;
	size_t pos = 0;
	int rc;

	memset(&f, 0, sizeof(f));
	do
		line = ch_next_line(buf, hlen, &pos);
	while (line.len == 0 && pos < hlen);
	rc = ch_parse_request_line(line.p, line.len, req);
	if (rc < 0)
		return rc;
	for (;;) {
		struct ch_http_header *h;

		line = ch_next_line(buf, hlen, &pos);
		if (line.len == 0)
			break;
		if (req->n_headers == CH_HTTP_MAX_HEADERS)
			return CH_HTTP_E_TOO_LARGE;
		h = &req->headers[req->n_headers];
		rc = ch_parse_header_line(line.p, line.len, h);
		if (rc < 0)
			return rc;
		req->n_headers++;
		rc = ch_take_header(h, req, &f);
		if (rc < 0)
			return rc;
	}
	return ch_finish_head(req, &f);
}

static void ch_req_reset(struct ch_http_req *req)
{
	/* Only the scalar part: the header array is filled as far as n_headers. */
	req->method = CH_HTTP_OTHER;
	req->method_text = req->target = req->path = req->query = (struct ch_str){ NULL, 0 };
	req->minor = 0;
	req->n_headers = 0;
	req->content_length = -1;
	req->chunked = 0;
	req->keep_alive = 0;
	req->expect_continue = 0;
	req->upgrade_websocket = 0;
	req->host = req->authorization = req->content_type = (struct ch_str){ NULL, 0 };
}

int ch_http_parse_head(const char *buf, size_t len, size_t *scanned,
		       struct ch_http_req *req)
{
	size_t hlen;
	int rc;

	if (*scanned > len)
		*scanned = len;	/* the caller shrank the buffer: search it again */
	hlen = ch_find_head_end(buf, len, scanned);
	if (hlen == 0)
		return len > CH_HTTP_MAX_HEAD ? CH_HTTP_E_TOO_LARGE : CH_HTTP_AGAIN;
	ch_req_reset(req);
	rc = ch_parse_complete_head(buf, hlen, req);
	return rc < 0 ? rc : (int)hlen;
}

const struct ch_str *ch_http_header(const struct ch_http_req *req, const char *name)
{
	int i;

	for (i = 0; i < req->n_headers; i++) {
		const struct ch_http_header *h = &req->headers[i];

		if (ch_ieq(h->name.p, h->name.len, name))
			return &h->value;
	}
	return NULL;
}

bool ch_http_if_none_match(const struct ch_http_req *req, const char *etag)
{
	const struct ch_str *v = ch_http_header(req, "If-None-Match");
	size_t tl = strlen(etag);
	struct ch_str e;

	if (!v)
		return false;
	const char *pos = v->p;
	while (ch_list_next(&pos, v->p + v->len, &e)) {
		/* Weak comparison (RFC 9110 13.1.2): a W/ prefix does not count. */
		if (e.len > 2 && e.p[0] == 'W' && e.p[1] == '/') {
			e.p += 2;
			e.len -= 2;
		}
		if ((e.len == tl && memcmp(e.p, etag, tl) == 0) || (e.len == 1 && e.p[0] == '*'))
			return true;
	}
	return false;
}

/* ------------------------------------------------------------------------
 * Paths
 * ---------------------------------------------------------------------- */

int ch_http_path_decode(struct ch_str path, char *out, size_t outlen)
{
	size_t i, o = 0;

	if (path.len == 0 || path.p[0] != '/' || outlen == 0)
		return -1;
	for (i = 0; i < path.len; i++) {
		unsigned char c = (unsigned char)path.p[i];

		if (c == '%') {
			int hi, lo;

			if (path.len - i < 3)
				return -1;
			hi = ch_hex_value((unsigned char)path.p[i + 1]);
			lo = ch_hex_value((unsigned char)path.p[i + 2]);
			if (hi < 0 || lo < 0 || (hi | lo) == 0)
				return -1;	/* bad escape, or an encoded NUL */
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
		} else if (c == '\0') {
			return -1;
		}
		if (o + 1 >= outlen)
			return -1;	/* no room for c and the NUL */
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

/*
 * RFC 3986 5.2.4 remove_dot_segments, plus collapsing empty segments. The
 * output never outruns the input (each "/seg" written was read as at least
 * "/seg"), so it works in place; a trailing "/", "/." or "/.." leaves a
 * trailing slash ("/a/b/.." is the directory "/a/").
 */
int ch_http_path_normalize(char *path)
{
	size_t r = 0, w = 1;
	bool dir = false;

	if (path[0] != '/')
		return -1;
	while (path[r] != '\0') {
		size_t s, n;

		while (path[r] == '/')
			r++;
		s = r;
		while (path[r] != '\0' && path[r] != '/')
			r++;
		n = r - s;
		dir = n == 0 || (n == 1 && path[s] == '.') ||
		      (n == 2 && path[s] == '.' && path[s + 1] == '.');
		if (n == 2 && path[s] == '.' && path[s + 1] == '.') {
			if (w == 1)
				return -1;	/* above the root */
			while (w > 1 && path[w - 1] != '/')
				w--;
			if (w > 1)
				w--;	/* drop the separator too */
		} else if (!dir) {
			if (w > 1)
				path[w++] = '/';
			memmove(path + w, path + s, n);
			w += n;
		}
	}
	if (dir && w > 1)
		path[w++] = '/';
	path[w] = '\0';
	return 0;
}

/* ------------------------------------------------------------------------
 * Chunked bodies
 * ---------------------------------------------------------------------- */

enum ch_chunked_state {
	CH_CK_SIZE,		/* hex digits of a chunk size; line_len counts them */
	CH_CK_SIZE_WS,		/* BWS after the size, before ';' or the line end */
	CH_CK_EXT,		/* a chunk extension: skipped to the line end */
	CH_CK_SIZE_LF,		/* CR ended the size line: LF must follow */
	CH_CK_DATA,		/* chunk data; remaining bytes to go */
	CH_CK_DATA_CR,		/* after the data: CR LF (or a bare LF) */
	CH_CK_DATA_LF,		/* CR after the data seen: LF must follow */
	CH_CK_TRAILER_START,	/* start of a trailer line or the final empty line */
	CH_CK_TRAILER,		/* inside a trailer line */
	CH_CK_TRAILER_LF,	/* CR inside a trailer line: LF must follow */
	CH_CK_END_LF,		/* CR of the final empty line: LF must follow */
	CH_CK_DONE,		/* body complete; nothing more is consumed */
	CH_CK_ERROR,		/* malformed; every later call fails too */
};

void ch_chunked_init(struct ch_chunked *c)
{
	memset(c, 0, sizeof(*c));
	c->state = CH_CK_SIZE;
}

/* The size line ended: a data chunk follows, or the last-chunk's trailers. */
static int ch_chunked_size_done(struct ch_chunked *c)
{
	c->line_len = 0;
	return c->remaining == 0 ? CH_CK_TRAILER_START : CH_CK_DATA;
}

static int ch_chunked_size_byte(struct ch_chunked *c, unsigned char b)
{
	int d = ch_hex_value(b);

	if (d >= 0) {
		if (c->line_len == CH_CHUNKED_MAX_SIZE_DIGITS)
			return CH_CK_ERROR;
		c->remaining = c->remaining << 4 | (uint64_t)d;
		c->line_len++;
		return CH_CK_SIZE;
	}
	if (c->line_len == 0)
		return CH_CK_ERROR;	/* no digits at all */
	if (b == '\n')
		return ch_chunked_size_done(c);
	if (b == '\r')
		return CH_CK_SIZE_LF;
	if (b == ';')
		return CH_CK_EXT;
	return ch_is_ows((char)b) ? CH_CK_SIZE_WS : CH_CK_ERROR;
}

/* One byte of framing (anything but chunk data); returns the next state. */
static int ch_chunked_step(struct ch_chunked *c, unsigned char b)
{
	switch (c->state) {
	case CH_CK_SIZE:
		return ch_chunked_size_byte(c, b);
	case CH_CK_SIZE_WS:
	case CH_CK_EXT:
		if (b == '\n')
			return ch_chunked_size_done(c);
		if (b == '\r')
			return CH_CK_SIZE_LF;
		if (c->state == CH_CK_EXT || b == ';')
			return ch_is_field_char(b) ? CH_CK_EXT : CH_CK_ERROR;
		return ch_is_ows((char)b) ? CH_CK_SIZE_WS : CH_CK_ERROR;
	case CH_CK_SIZE_LF:
		return b == '\n' ? ch_chunked_size_done(c) : CH_CK_ERROR;
	case CH_CK_DATA_CR:
		if (b == '\n')
			return CH_CK_SIZE;
		return b == '\r' ? CH_CK_DATA_LF : CH_CK_ERROR;
	case CH_CK_DATA_LF:
		return b == '\n' ? CH_CK_SIZE : CH_CK_ERROR;
	case CH_CK_TRAILER_START:
		if (b == '\n')
			return CH_CK_DONE;
		if (b == '\r')
			return CH_CK_END_LF;
		return ch_is_field_char(b) ? CH_CK_TRAILER : CH_CK_ERROR;
	case CH_CK_TRAILER:
		if (b == '\n')
			return CH_CK_TRAILER_START;
		if (b == '\r')
			return CH_CK_TRAILER_LF;
		return ch_is_field_char(b) ? CH_CK_TRAILER : CH_CK_ERROR;
	case CH_CK_TRAILER_LF:
		return b == '\n' ? CH_CK_TRAILER_START : CH_CK_ERROR;
	case CH_CK_END_LF:
		return b == '\n' ? CH_CK_DONE : CH_CK_ERROR;
	default:
		return CH_CK_ERROR;
	}
}

/* Count a framing byte against the line and trailer limits. */
static bool ch_chunked_count(struct ch_chunked *c, unsigned char b)
{
	bool trailer = c->state >= CH_CK_TRAILER_START && c->state <= CH_CK_END_LF;

	if (trailer && ++c->trailer_len > CH_CHUNKED_MAX_TRAILER)
		return false;
	if (b == '\n' || c->state == CH_CK_DATA_CR || c->state == CH_CK_DATA_LF)
		return true;
	if (c->state != CH_CK_SIZE)	/* CH_CK_SIZE counts its digits itself */
		c->line_len++;
	return c->line_len <= CH_CHUNKED_MAX_LINE;
}

long ch_chunked_feed(struct ch_chunked *c, const char *in, size_t len,
		     char *out, size_t *out_len, int *done)
{
	size_t i = 0, o = 0;

	while (i < len && c->state != CH_CK_DONE && c->state != CH_CK_ERROR) {
		unsigned char b = (unsigned char)in[i];

		if (c->state == CH_CK_DATA) {
			size_t n = len - i;

			if ((uint64_t)n > c->remaining)
				n = (size_t)c->remaining;
			/* memmove: decoding in place (out == in) is allowed. */
			memmove(out + o, in + i, n);
			o += n;
			i += n;
			c->remaining -= n;
			c->total += n;
			if (c->remaining == 0)
				c->state = CH_CK_DATA_CR;
			continue;
		}
		if (!ch_chunked_count(c, b)) {
			c->state = CH_CK_ERROR;
			break;
		}
		c->state = ch_chunked_step(c, b);
		if (b == '\n')
			c->line_len = 0;
		i++;
	}
	*out_len = o;
	*done = c->state == CH_CK_DONE;
	return c->state == CH_CK_ERROR ? -1 : (long)i;
}

/* ------------------------------------------------------------------------
 * Responses
 * ---------------------------------------------------------------------- */

const char *ch_http_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 412: return "Precondition Failed";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 416: return "Range Not Satisfiable";
	case 417: return "Expectation Failed";
	case 422: return "Unprocessable Content";
	case 426: return "Upgrade Required";
	case 428: return "Precondition Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	case 507: return "Insufficient Storage";
	default: return "Unknown";
	}
}

/* An append-only writer over a fixed buffer that remembers overflowing. */
struct ch_head_writer {
	char *p;
	size_t len, cap;
	bool overflow;
};

static void ch_w_bytes(struct ch_head_writer *w, const char *s, size_t n)
{
	if (w->overflow || n > w->cap - w->len) {
		w->overflow = true;
		return;
	}
	memcpy(w->p + w->len, s, n);
	w->len += n;
}

static void ch_w_str(struct ch_head_writer *w, const char *s)
{
	ch_w_bytes(w, s, strlen(s));
}

static void ch_w_u64(struct ch_head_writer *w, uint64_t v)
{
	char digits[20];	/* UINT64_MAX has 20 decimal digits */
	size_t i = sizeof(digits);

	do {
		digits[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	ch_w_bytes(w, digits + i, sizeof(digits) - i);
}

int ch_http_format_head(char *out, size_t outlen, int status,
			const char *content_type, uint64_t content_length,
			int keep_alive, const char *extra)
{
	struct ch_head_writer w = { out, 0, outlen, false };

	/* Keep one byte for the NUL; refuse header injection via content_type. */
	if (outlen == 0 || status < 100 || status > 999 ||
	    (content_type != NULL && strpbrk(content_type, "\r\n") != NULL))
		return -1;
	w.cap = outlen - 1;
	ch_w_str(&w, "HTTP/1.1 ");
	ch_w_u64(&w, (uint64_t)status);
	ch_w_str(&w, " ");
	ch_w_str(&w, ch_http_reason(status));
	ch_w_str(&w, "\r\n");
	if (content_type != NULL) {
		ch_w_str(&w, "Content-Type: ");
		ch_w_str(&w, content_type);
		ch_w_str(&w, "\r\n");
	}
	/* RFC 9110 8.6: never a Content-Length on a 1xx or a 204. */
	if (status >= 200 && status != 204) {
		ch_w_str(&w, "Content-Length: ");
		ch_w_u64(&w, content_length);
		ch_w_str(&w, "\r\n");
	}
	if (!keep_alive)
		ch_w_str(&w, "Connection: close\r\n");
	if (extra != NULL)
		ch_w_str(&w, extra);
	ch_w_str(&w, "\r\n");
	if (w.overflow || w.len > (size_t)INT32_MAX)
		return -1;
	out[w.len] = '\0';
	return (int)w.len;
}

int ch_http_query_param(struct ch_str query, const char *name, struct ch_str *value)
{
	size_t nl = strlen(name);
	int found = 0;

	for (size_t i = 0; query.p && i < query.len;) {
		size_t end = i;
		while (end < query.len && query.p[end] != '&')
			end++;
		if (end - i > nl && memcmp(query.p + i, name, nl) == 0 && query.p[i + nl] == '=') {
			value->p = query.p + i + nl + 1;
			value->len = end - i - nl - 1;
			found = 1;
		}
		i = end + 1;
	}
	return found;
}
