/*
 * multipart/form-data parsing: see multipart.h.
 */
#include "worker/multipart.h"

#include <string.h>
#include <strings.h>

enum mp_state {
	MP_PREAMBLE,	/* before the first delimiter: discarded */
	MP_AFTER_DELIM,	/* a delimiter matched: "--", padding or CRLF next */
	MP_PADDING,	/* transport padding (spaces, tabs) before the CRLF */
	MP_CLOSE,	/* one '-' of the closing "--" seen */
	MP_DELIM_LF,	/* the CR after a delimiter seen */
	MP_HEADER,	/* a part's header lines */
	MP_DATA,	/* a part's body */
	MP_EPILOGUE,	/* after the closing delimiter: ignored */
};

/* RFC 2046 5.1.1 bchars: DIGIT / ALPHA / "'()+_,-./:=?" and space (not last). */
static int bchar(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c != '\0' && strchr("'()+_,-./:=? ", c) != NULL);
}

static const char *skip_ows(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

/*
 * One parameter "name=value" (value a token or a quoted-string) at *pp;
 * the value is unquoted into out. Returns 1 with *pp past it, 0 at the end
 * of the list, -1 for bad syntax, -2 when the value does not fit.
 */
static int next_param(const char **pp, const char *end, char *name, size_t nlen, char *out,
		      size_t olen)
{
	const char *p = skip_ows(*pp, end);
	size_t n = 0, o = 0;

	if (p == end)
		return 0;
	if (*p != ';')
		return -1;
	p = skip_ows(p + 1, end);
	while (p < end && *p != '=' && *p != ';' && *p != ' ' && *p != '\t') {
		if (n + 1 >= nlen)
			return -1;
		name[n++] = *p++;
	}
	name[n] = '\0';
	p = skip_ows(p, end);
	if (n == 0 || p == end || *p != '=')
		return -1;
	p = skip_ows(p + 1, end);
	if (p < end && *p == '"') {
		for (p++;; p++) {
			if (p == end)
				return -1;
			if (*p == '"')
				break;
			/* Only \" is an escape: browsers send a backslash
			 * as is (a Windows path keeps its separators) and a
			 * quote as %22, but other clients escape quotes. */
			if (*p == '\\' && p + 1 < end && p[1] == '"')
				p++;
			if (o + 1 >= olen)
				return -2;
			out[o++] = *p;
		}
		p++;
	} else {
		while (p < end && *p != ';' && *p != ' ' && *p != '\t') {
			if (o + 1 >= olen)
				return -2;
			out[o++] = *p++;
		}
	}
	out[o] = '\0';
	*pp = p;
	return 1;
}

int ch_mp_boundary(const char *ct, size_t len, char *out, size_t outlen)
{
	static const char type[] = "multipart/form-data";
	const char *p = ct, *end = ct + len;
	char name[32], value[CH_MP_BOUNDARY_MAX + 2];
	int rc, found = 0;

	if (outlen < CH_MP_BOUNDARY_MAX + 1 || len < sizeof(type) - 1 ||
	    strncasecmp(ct, type, sizeof(type) - 1) != 0)
		return -1;
	p += sizeof(type) - 1;
	while ((rc = next_param(&p, end, name, sizeof(name), value, sizeof(value))) == 1) {
		if (strcasecmp(name, "boundary") != 0)
			continue;
		size_t bl = strlen(value);
		if (bl == 0 || bl > CH_MP_BOUNDARY_MAX || value[bl - 1] == ' ')
			return -1;
		for (size_t i = 0; i < bl; i++)
			if (!bchar(value[i]))
				return -1;
		memcpy(out, value, bl + 1);
		found = 1;
	}
	return rc == 0 && found ? 0 : -1;
}

void ch_mp_init(struct ch_multipart *m, const char *boundary, ch_mp_callback cb, void *ctx)
{
	size_t bl = strlen(boundary);

	memset(m, 0, sizeof(*m));
	if (bl > CH_MP_BOUNDARY_MAX)
		bl = CH_MP_BOUNDARY_MAX;
	memcpy(m->delim, "\r\n--", 4);
	memcpy(m->delim + 4, boundary, bl);
	m->dlen = 4 + bl;
	m->cb = cb;
	m->ctx = ctx;
	m->state = MP_PREAMBLE;
	/* The first delimiter may open the body with no CRLF before it:
	 * start as if that CRLF had just been read. */
	m->match = 2;
}

int ch_mp_done(const struct ch_multipart *m)
{
	return m->error == 0 && m->state == MP_EPILOGUE;
}

/* ---------------------------------------------------------------------- */
/* Part headers                                                           */

static int parse_disposition(struct ch_multipart *m, const char *p, const char *end)
{
	static const char fd[] = "form-data";
	char name[32], value[CH_MP_FILENAME_MAX + 1];
	int rc;

	if ((size_t)(end - p) < sizeof(fd) - 1 || strncasecmp(p, fd, sizeof(fd) - 1) != 0)
		return CH_MP_E_SYNTAX;
	p += sizeof(fd) - 1;
	while ((rc = next_param(&p, end, name, sizeof(name), value, sizeof(value))) == 1) {
		if (strcasecmp(name, "name") == 0) {
			if (strlen(value) > CH_MP_NAME_MAX)
				return CH_MP_E_TOO_LARGE;
			strcpy(m->part.name, value);
			m->has_disposition = 1;
		} else if (strcasecmp(name, "filename") == 0) {
			strcpy(m->part.filename, value);
			m->part.has_filename = 1;
		}
	}
	if (rc == -2)
		return CH_MP_E_TOO_LARGE;
	return rc < 0 ? CH_MP_E_SYNTAX : CH_MP_OK;
}

/* One header line hdr[0..hlen) without its CRLF. */
static int header_line(struct ch_multipart *m)
{
	const char *p = m->hdr, *end = m->hdr + m->hlen;
	const char *colon = memchr(p, ':', m->hlen);

	if (!colon || colon == p)
		return CH_MP_E_SYNTAX;
	size_t nl = (size_t)(colon - p);
	const char *v = skip_ows(colon + 1, end);
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (nl == 19 && strncasecmp(p, "Content-Disposition", nl) == 0)
		return parse_disposition(m, v, end);
	if (nl == 12 && strncasecmp(p, "Content-Type", nl) == 0) {
		size_t vl = (size_t)(end - v);
		if (vl > CH_MP_TYPE_MAX)
			return CH_MP_E_TOO_LARGE;
		memcpy(m->part.content_type, v, vl);
		m->part.content_type[vl] = '\0';
	}
	return CH_MP_OK;	/* other headers are not ours to care about */
}

/* Header bytes: returns how many of in[0..len) were used, or an error. */
static long feed_headers(struct ch_multipart *m, const char *in, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		if (++m->headers_total > CH_MP_HEADERS_MAX)
			return CH_MP_E_TOO_LARGE;
		if (c != '\n') {
			if (m->hlen >= sizeof(m->hdr))
				return CH_MP_E_TOO_LARGE;
			m->hdr[m->hlen++] = c;
			continue;
		}
		if (m->hlen == 0 || m->hdr[m->hlen - 1] != '\r')
			return CH_MP_E_SYNTAX;
		m->hlen--;
		if (m->hlen == 0) {
			/* The blank line: the part's data starts. */
			if (!m->has_disposition)
				return CH_MP_E_SYNTAX;
			m->state = MP_DATA;
			m->match = 0;
			if (m->cb(m->ctx, CH_MP_PART_BEGIN, &m->part, NULL, 0))
				return CH_MP_E_STOPPED;
			return (long)i + 1;
		}
		int rc = header_line(m);
		if (rc != CH_MP_OK)
			return rc;
		m->hlen = 0;
	}
	return (long)len;
}

/* ---------------------------------------------------------------------- */
/* Part data                                                              */

static int emit(struct ch_multipart *m, const char *p, size_t n)
{
	if (n == 0)
		return CH_MP_OK;
	return m->cb(m->ctx, CH_MP_DATA, &m->part, p, n) ? CH_MP_E_STOPPED : CH_MP_OK;
}

/*
 * Data bytes (or preamble bytes, discarded): scan for the delimiter. Bytes
 * that may begin a delimiter are held (as m->match) and, when the match
 * fails, handed over from m->delim, which holds the same bytes.
 */
static long feed_data(struct ch_multipart *m, const char *in, size_t len)
{
	int data = m->state == MP_DATA;
	size_t i = 0, run = 0;	/* in[run..i) is data not yet handed over */

	while (i < len) {
		if (m->match == 0) {
			const char *cr = memchr(in + i, '\r', len - i);
			if (!cr) {
				i = len;
				break;
			}
			i = (size_t)(cr - in);
			if (data && emit(m, in + run, i - run) < 0)
				return CH_MP_E_STOPPED;
			m->match = 1;
			run = ++i;
			continue;
		}
		if (in[i] == m->delim[m->match]) {
			run = ++i;
			if (++m->match < m->dlen)
				continue;
			m->match = 0;
			m->state = MP_AFTER_DELIM;
			if (data && m->cb(m->ctx, CH_MP_PART_END, &m->part, NULL, 0))
				return CH_MP_E_STOPPED;
			return (long)i;
		}
		/* Not a delimiter after all: the held bytes were data. A new
		 * match can only start at this byte (see multipart.h). */
		if (data && emit(m, m->delim, m->match) < 0)
			return CH_MP_E_STOPPED;
		m->match = 0;
		run = i;
	}
	if (data && m->match == 0 && emit(m, in + run, i - run) < 0)
		return CH_MP_E_STOPPED;
	return (long)len;
}

/* ---------------------------------------------------------------------- */
/* After a delimiter                                                      */

static void part_reset(struct ch_multipart *m)
{
	memset(&m->part, 0, sizeof(m->part));
	m->has_disposition = 0;
	m->hlen = 0;
	m->headers_total = 0;
}

static int after_delim(struct ch_multipart *m, char c)
{
	switch (m->state) {
	case MP_AFTER_DELIM:
		if (c == '-') {
			m->state = MP_CLOSE;
			return CH_MP_OK;
		}
		/* fall through */
	case MP_PADDING:
		if (c == ' ' || c == '\t') {
			m->state = MP_PADDING;
			return CH_MP_OK;
		}
		if (c != '\r')
			return CH_MP_E_SYNTAX;
		m->state = MP_DELIM_LF;
		return CH_MP_OK;
	case MP_CLOSE:
		if (c != '-')
			return CH_MP_E_SYNTAX;
		m->state = MP_EPILOGUE;
		return CH_MP_OK;
	case MP_DELIM_LF:
		if (c != '\n')
			return CH_MP_E_SYNTAX;
		if (++m->parts > CH_MP_MAX_PARTS)
			return CH_MP_E_TOO_LARGE;
		part_reset(m);
		m->state = MP_HEADER;
		return CH_MP_OK;
	default:
		return CH_MP_E_SYNTAX;
	}
}

int ch_mp_feed(struct ch_multipart *m, const char *in, size_t len)
{
	size_t i = 0;

	while (m->error == 0 && i < len) {
		long used;
		switch (m->state) {
		case MP_PREAMBLE:
		case MP_DATA:
			used = feed_data(m, in + i, len - i);
			break;
		case MP_HEADER:
			used = feed_headers(m, in + i, len - i);
			break;
		case MP_EPILOGUE:
			return CH_MP_OK;
		default:
			used = after_delim(m, in[i]);
			if (used == CH_MP_OK)
				used = 1;
			break;
		}
		if (used < 0) {
			m->error = (int)used;
			break;
		}
		i += (size_t)used;
	}
	return m->error;
}
