/*
 * A small blocking HTTP/1.1 client for chatd's REST API (register, login,
 * rooms, history), plus the pieces of it the WebSocket client shares: URL
 * parsing, connecting with a timeout, writing everything, and reading a
 * response head. One request per connection ("Connection: close"), so a
 * response ends at Content-Length, at the last chunk, or at the close.
 *
 * Every call that does I/O takes a timeout in milliseconds and fails with
 * -1 and errno = ETIMEDOUT when it passes; nothing here logs: the caller
 * decides what a failure means.
 */
#ifndef CH_HTTPC_H
#define CH_HTTPC_H

#include <stdbool.h>
#include <stddef.h>

#define CH_HTTPC_MAX_HOST 256
#define CH_HTTPC_MAX_PORT 8
#define CH_HTTPC_MAX_HEAD 16384		/* a longer response head is refused */
#define CH_HTTPC_MAX_BODY (64u << 20)	/* a longer response body is refused */

/* Where a server is: from "http://host[:port][/...]" or "host[:port]". */
struct ch_httpc_url {
	char host[CH_HTTPC_MAX_HOST];		/* without brackets for IPv6 */
	char port[CH_HTTPC_MAX_PORT];		/* "80" when the URL has none */
	char hostport[CH_HTTPC_MAX_HOST + CH_HTTPC_MAX_PORT + 3];	/* for Host: */
};

/*
 * Parses url ("http://" or "ws://" or no scheme; "https"/"wss" are refused,
 * as there is no TLS here). A path after the authority is ignored. Returns
 * 0, or -1 with *err set to a static text.
 */
int ch_httpc_parse_url(const char *url, struct ch_httpc_url *u, const char **err);

/* A TCP connection to host:port (every address tried), within timeout_ms. */
int ch_httpc_connect(const char *host, const char *port, int timeout_ms);

/* Write all of buf; 0, or -1 with errno (ETIMEDOUT past the timeout). */
int ch_httpc_write_all(int fd, const void *buf, size_t len, int timeout_ms);

/*
 * Poll fd for events until timeout_ms (negative: forever). Returns 1 when
 * ready, 0 on timeout, -1 with errno.
 */
int ch_httpc_wait(int fd, short events, int timeout_ms);

/* ---- response heads (pure, no I/O) ---- */

/* Length of the head in buf[0..len), blank line included; 0 if incomplete. */
size_t ch_httpc_head_end(const char *buf, size_t len);

/* The status code of a head ("HTTP/1.x NNN ..."); 0 if unparsable. */
int ch_httpc_status(const char *head, size_t len);

/*
 * The value of the first header called name (case-insensitive) in
 * head[0..len), without surrounding spaces, not NUL-terminated; NULL if
 * absent.
 */
const char *ch_httpc_header(const char *head, size_t len, const char *name, size_t *vlen);

/* ---- requests ---- */

struct ch_httpc_resp {
	int status;
	char *body;	/* malloc'd, NUL-terminated (not counted in len) */
	size_t len;
};

/*
 * One request: method and path (already percent-encoded) to u, with
 * "Authorization: Bearer token" when token is not NULL and a JSON body when
 * body is not NULL. Fills *resp (free it with ch_httpc_resp_free) and
 * returns 0 for any HTTP status; -1 with errno when the exchange failed
 * (EPROTO: the answer was not HTTP; EMSGSIZE: it was too long; EINVAL:
 * method or path holds a space, CR or LF, or token a CR or LF).
 */
int ch_httpc_request(const struct ch_httpc_url *u, const char *method, const char *path,
		     const char *token, const char *body, size_t body_len, int timeout_ms,
		     struct ch_httpc_resp *resp);

void ch_httpc_resp_free(struct ch_httpc_resp *resp);

#endif
