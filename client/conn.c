/*
 * Blocking WebSocket connection: see conn.h. Reads go into one growing
 * buffer that is emptied each time the parser has consumed all of it (the
 * parser keeps a partial frame itself), so the buffer stays the size of
 * one read.
 */
#include "client/conn.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client/httpc.h"

#define CH_WSCLIENT_READ_CHUNK 16384
#define CH_WSCLIENT_MAX_REQUEST 4096	/* the upgrade request, token included */
#define CH_WSCLIENT_MAX_HEAD 8192		/* the server's 101 answer */
#define CH_WSCLIENT_STACK_FRAME 4096	/* sends up to this size need no malloc */
#define CH_WSCLIENT_CLOSE_WAIT_MS 1000	/* sending our close never waits longer */
#define CH_WSCLIENT_CLOSE_ABNORMAL 1006	/* no close frame came (never sent) */

static int64_t ch_wsclient_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Make room for a read of CH_WSCLIENT_READ_CHUNK bytes at rlen. */
static int ch_wsclient_reserve(struct ch_wsclient *c)
{
	size_t cap;
	uint8_t *b;

	if (c->rcap - c->rlen >= CH_WSCLIENT_READ_CHUNK)
		return 0;
	cap = c->rlen + CH_WSCLIENT_READ_CHUNK;
	b = realloc(c->rbuf, cap);
	if (b == NULL)
		return -1;
	c->rbuf = b;
	c->rcap = cap;
	return 0;
}

/*
 * One recv into rbuf, waiting up to timeout_ms (negative: forever).
 * Returns bytes read, 0 on timeout, -1 with errno (ECONNRESET when the
 * peer closed).
 */
static ssize_t ch_wsclient_read(struct ch_wsclient *c, int timeout_ms)
{
	ssize_t n;
	int r;

	if (ch_wsclient_reserve(c) < 0)
		return -1;
	for (;;) {
		n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
		if (n > 0) {
			c->rlen += (size_t)n;
			return n;
		}
		if (n == 0) {
			errno = ECONNRESET;
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		r = ch_httpc_wait(c->fd, POLLIN, timeout_ms);
		if (r <= 0)
			return r;
	}
}

/* Read the 101 answer; leftover bytes stay in rbuf as the first frames. */
static int ch_wsclient_handshake(struct ch_wsclient *c, const char *key, int64_t deadline, int *status)
{
	int64_t left;
	ssize_t n;
	int head;

	for (;;) {
		head = ch_wsc_response((const char *)c->rbuf, c->rlen, key, status);
		if (head > 0) {
			c->roff = (size_t)head;
			return 0;
		}
		if (head < 0) {
			errno = ECONNREFUSED;
			return -1;
		}
		if (c->rlen > CH_WSCLIENT_MAX_HEAD) {
			errno = EMSGSIZE;
			return -1;
		}
		left = deadline - ch_wsclient_now_ms();
		n = ch_wsclient_read(c, left > 0 ? (int)left : 0);
		if (n < 0)
			return -1;
		if (n == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
	}
}

int ch_wsclient_open(struct ch_wsclient *c, const char *host, const char *port, const char *hostport,
		 const char *path, const char *token, int timeout_ms, int *status)
{
	char req[CH_WSCLIENT_MAX_REQUEST], key[CH_WSC_KEY_LEN + 1];
	int64_t deadline = ch_wsclient_now_ms() + timeout_ms;
	int n, err;

	memset(c, 0, sizeof(*c));
	c->timeout_ms = timeout_ms;
	*status = 0;
	ch_wsc_parser_init(&c->parser, CH_WSCLIENT_MAX_MESSAGE);
	n = ch_wsc_request(req, sizeof(req), hostport, path, token, key);
	if (n < 0) {
		errno = EMSGSIZE;
		goto fail_nofd;
	}
	c->fd = ch_httpc_connect(host, port, timeout_ms);
	if (c->fd < 0)
		goto fail_nofd;
	if (ch_httpc_write_all(c->fd, req, (size_t)n, timeout_ms) < 0)
		goto fail;
	if (ch_wsclient_handshake(c, key, deadline, status) < 0)
		goto fail;
	return 0;
fail:
	err = errno;
	close(c->fd);
	errno = err;
fail_nofd:
	c->fd = -1;
	c->dead = 1;
	free(c->rbuf);
	c->rbuf = NULL;
	ch_wsc_parser_free(&c->parser);
	return -1;
}

/* Send one frame of any opcode; marks the connection dead on failure. */
static int ch_wsclient_send_frame(struct ch_wsclient *c, int opcode, const void *p, size_t len,
			      int timeout_ms)
{
	uint8_t stack[CH_WSCLIENT_STACK_FRAME], *out = stack;
	size_t cap = sizeof(stack), n;
	int rc;

	if (c->dead || c->fd < 0) {
		errno = ENOTCONN;
		return -1;
	}
	if (len > cap - CH_WSC_MAX_HEADER) {
		cap = len + CH_WSC_MAX_HEADER;
		out = malloc(cap);
		if (out == NULL)
			return -1;
	}
	n = ch_wsc_frame(out, cap, opcode, 1, p, len);
	rc = ch_httpc_write_all(c->fd, out, n, timeout_ms);
	if (out != stack)
		free(out);
	if (rc < 0)
		c->dead = 1;
	return rc;
}

int ch_wsclient_send_text(struct ch_wsclient *c, const char *s, size_t len)
{
	return ch_wsclient_send_frame(c, CH_WSC_OP_TEXT, s, len, c->timeout_ms);
}

/*
 * Send our close (an empty one for CH_WSC_CLOSE_NO_STATUS, as 1005 must
 * not be sent) and mark the connection dead; the socket stays open until
 * ch_wsclient_close.
 */
static void ch_wsclient_close_reply(struct ch_wsclient *c, uint16_t code)
{
	uint8_t frame[CH_WSC_MAX_HEADER + 2];
	size_t n;

	if (c->dead || c->fd < 0)
		return;
	if (code == CH_WSC_CLOSE_NO_STATUS || code == CH_WSCLIENT_CLOSE_ABNORMAL)
		n = ch_wsc_frame(frame, sizeof(frame), CH_WSC_OP_CLOSE, 1, NULL, 0);
	else
		n = ch_wsc_close_frame(frame, sizeof(frame), code);
	/* Best effort: the connection ends either way. */
	(void)ch_httpc_write_all(c->fd, frame, n, CH_WSCLIENT_CLOSE_WAIT_MS);
	c->dead = 1;
}

size_t ch_wsclient_buffered(const struct ch_wsclient *c)
{
	return c->rlen - c->roff;
}

/*
 * Parse what is buffered. Returns a ch_wsclient_result for an event the caller
 * gets, or CH_WSCLIENT_TIMEOUT when the buffer ran dry (and was emptied).
 */
static int ch_wsclient_drain(struct ch_wsclient *c, const uint8_t **data, size_t *len)
{
	struct ch_wsc_event ev;
	size_t used;
	int type;

	for (;;) {
		type = ch_wsc_parse(&c->parser, c->rbuf + c->roff, c->rlen - c->roff, &used, &ev);
		c->roff += used;
		switch (type) {
		case CH_WSC_NEED_MORE:
			c->roff = c->rlen = 0;
			return CH_WSCLIENT_TIMEOUT;
		case CH_WSC_MESSAGE:
			*data = ev.data;
			*len = ev.len;
			return ev.opcode == CH_WSC_OP_TEXT ? CH_WSCLIENT_TEXT : CH_WSCLIENT_BINARY;
		case CH_WSC_PING:
			if (ch_wsclient_send_frame(c, CH_WSC_OP_PONG, ev.data, ev.len, c->timeout_ms) < 0)
				return CH_WSCLIENT_ERROR;
			break;
		case CH_WSC_PONG:
			break;
		case CH_WSC_CLOSE:
			c->close_code = ev.close_code;
			/* Echo the close (RFC 6455 5.5.1); the server then closes TCP. */
			ch_wsclient_close_reply(c, ev.close_code);
			return CH_WSCLIENT_CLOSED;
		default:
			c->close_code = ev.close_code;
			ch_wsclient_close_reply(c, ev.close_code);
			errno = EPROTO;
			return CH_WSCLIENT_ERROR;
		}
	}
}

int ch_wsclient_recv(struct ch_wsclient *c, int timeout_ms, const uint8_t **data, size_t *len)
{
	int64_t deadline = ch_wsclient_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	int64_t left;
	ssize_t n;
	int r;

	for (;;) {
		if (c->dead || c->fd < 0) {
			errno = ENOTCONN;
			return CH_WSCLIENT_ERROR;
		}
		r = ch_wsclient_drain(c, data, len);
		if (r != CH_WSCLIENT_TIMEOUT)
			return r;
		left = deadline - ch_wsclient_now_ms();
		n = ch_wsclient_read(c, timeout_ms < 0 ? -1 : (left > 0 ? (int)left : 0));
		if (n == 0)
			return CH_WSCLIENT_TIMEOUT;
		if (n < 0) {
			c->dead = 1;
			c->close_code = CH_WSCLIENT_CLOSE_ABNORMAL;
			return CH_WSCLIENT_ERROR;
		}
	}
}

void ch_wsclient_close(struct ch_wsclient *c, uint16_t code)
{
	if (c->fd >= 0) {
		ch_wsclient_close_reply(c, code);
		close(c->fd);
	}
	c->fd = -1;
	c->dead = 1;
	free(c->rbuf);
	c->rbuf = NULL;
	c->roff = c->rlen = c->rcap = 0;
	ch_wsc_parser_free(&c->parser);
}
