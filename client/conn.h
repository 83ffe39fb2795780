/*
 * A blocking, poll-friendly WebSocket connection built on client/wsc.h:
 * connect to host:port + path with a token, send text, receive messages
 * with a timeout, answer pings on the way. For chatcli and tests; a load
 * generator with thousands of sockets drives wsc.h from its own loop.
 *
 * Invariants: rbuf[roff..rlen) holds received bytes the parser has not
 * consumed yet; an event returned by ch_wsclient_recv points into rbuf (or the
 * parser's buffer) and stays valid until the next ch_wsclient_recv. After the
 * server's close or any error the connection is dead: every call fails
 * until ch_wsclient_close.
 *
 * For a poll loop: poll ch_wsclient_fd() for POLLIN, but call ch_wsclient_recv
 * with timeout 0 first while ch_wsclient_buffered() is non-zero, because bytes
 * already read do not wake poll again.
 *
 * The prefix is ch_wsclient, not ch_conn: worker/conn.h owns struct
 * ch_conn and ch_conn_close, and both end up in one program's link.
 */
#ifndef CH_CLIENT_CONN_H
#define CH_CLIENT_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "client/wsc.h"

#define CH_WSCLIENT_MAX_MESSAGE (1u << 20)	/* largest message accepted */

struct ch_wsclient {
	int fd;			/* -1 when closed */
	int dead;		/* closed by the server or failed */
	uint16_t close_code;	/* the server's close code, once dead */
	struct ch_wsc_parser parser;
	uint8_t *rbuf;
	size_t roff, rlen, rcap;
	int timeout_ms;		/* for sends */
};

/* What ch_wsclient_recv got. */
enum ch_wsclient_result {
	CH_WSCLIENT_ERROR = -1,	/* the connection failed; errno or close_code says why */
	CH_WSCLIENT_TIMEOUT = 0,	/* nothing within the timeout */
	CH_WSCLIENT_TEXT = 1,	/* a text message: *data, *len */
	CH_WSCLIENT_BINARY = 2,	/* a binary message */
	CH_WSCLIENT_CLOSED = 3,	/* the server closed: close_code */
};

/*
 * Connects to host:port (hostport is the Host header value), upgrades on
 * path (which may carry ?query) with "Authorization: Bearer token" when
 * token is not NULL. Returns 0; or -1 with *status the HTTP status when the
 * server refused the upgrade (401: bad token), 0 with errno when the
 * connection or the handshake failed.
 */
int ch_wsclient_open(struct ch_wsclient *c, const char *host, const char *port, const char *hostport,
		 const char *path, const char *token, int timeout_ms, int *status);

/* One text message; 0, or -1 with errno (the connection is then dead). */
int ch_wsclient_send_text(struct ch_wsclient *c, const char *s, size_t len);

/*
 * Waits up to timeout_ms (negative: forever, 0: only what is already here)
 * for the next message, answering pings meanwhile.
 */
int ch_wsclient_recv(struct ch_wsclient *c, int timeout_ms, const uint8_t **data, size_t *len);

/* Bytes received and not yet parsed. */
size_t ch_wsclient_buffered(const struct ch_wsclient *c);

static inline int ch_wsclient_fd(const struct ch_wsclient *c) { return c->fd; }

/* Sends a close (code) if the connection is alive, and frees everything. */
void ch_wsclient_close(struct ch_wsclient *c, uint16_t code);

#endif
