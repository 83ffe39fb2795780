/*
 * Blocking HTTP/1.1 client: see httpc.h. Sockets are non-blocking and every
 * wait goes through poll with what is left of the call's timeout, so a
 * server that stops answering costs at most that timeout.
 */
#include "client/httpc.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "worker/http.h"
#include "worker/ws.h"

#define CH_HTTPC_DEFAULT_PORT "80"
#define CH_HTTPC_READ_CHUNK 16384
#define CH_HTTPC_MAX_REQ_HEAD 4096

/* ------------------------------------------------------------------------
 * Time and sockets
 * ---------------------------------------------------------------------- */

static int64_t ch_httpc_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left until deadline, at least 0. */
static int ch_httpc_left(int64_t deadline)
{
	int64_t left = deadline - ch_httpc_now_ms();

	return left > 0 ? (int)left : 0;
}

int ch_httpc_wait(int fd, short events, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int r;

	do {
		r = poll(&pfd, 1, timeout_ms);
	} while (r < 0 && errno == EINTR);
	return r;
}

int ch_httpc_write_all(int fd, const void *buf, size_t len, int timeout_ms)
{
	const char *p = buf;
	int64_t deadline = ch_httpc_now_ms() + timeout_ms;
	ssize_t n;
	int r;

	while (len > 0) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		r = ch_httpc_wait(fd, POLLOUT, ch_httpc_left(deadline));
		if (r < 0)
			return -1;
		if (r == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
	}
	return 0;
}

/* One connect attempt on a non-blocking socket; the fd, or -1 with errno. */
static int ch_httpc_try(const struct addrinfo *ai, int64_t deadline)
{
	int fd, r, err = 0;
	socklen_t elen = sizeof(err);

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0)
		return -1;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return fd;
	if (errno != EINPROGRESS)
		goto fail;
	r = ch_httpc_wait(fd, POLLOUT, ch_httpc_left(deadline));
	if (r <= 0) {
		if (r == 0)
			errno = ETIMEDOUT;
		goto fail;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
		goto fail;
	if (err != 0) {
		errno = err;
		goto fail;
	}
	return fd;
fail:
	err = errno;
	close(fd);
	errno = err;
	return -1;
}

int ch_httpc_connect(const char *host, const char *port, int timeout_ms)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res, *ai;
	int64_t deadline = ch_httpc_now_ms() + timeout_ms;
	int fd = -1, r;

	r = getaddrinfo(host, port, &hints, &res);
	if (r != 0) {
		errno = r == EAI_SYSTEM ? errno : EHOSTUNREACH;
		return -1;
	}
	for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next)
		fd = ch_httpc_try(ai, deadline);
	freeaddrinfo(res);
	return fd;
}

/* ------------------------------------------------------------------------
 * URLs
 * ---------------------------------------------------------------------- */

/* Copy s[0..n) into out (cap bytes) NUL-terminated; -1 if it does not fit. */
static int ch_httpc_copy(char *out, size_t cap, const char *s, size_t n)
{
	if (n >= cap)
		return -1;
	memcpy(out, s, n);
	out[n] = '\0';
	return 0;
}

int ch_httpc_parse_url(const char *url, struct ch_httpc_url *u, const char **err)
{
	const char *p = url, *end, *colon = NULL, *h;
	size_t hlen;

	memset(u, 0, sizeof(*u));
	if (strncasecmp(p, "https://", 8) == 0 || strncasecmp(p, "wss://", 6) == 0) {
		*err = "TLS is not supported: use http:// (or a local TLS proxy)";
		return -1;
	}
	if (strncasecmp(p, "http://", 7) == 0)
		p += 7;
	else if (strncasecmp(p, "ws://", 5) == 0)
		p += 5;
	end = p + strcspn(p, "/?#");
	h = p;
	if (*p == '[') {	/* [v6addr]:port */
		const char *rb = memchr(p, ']', (size_t)(end - p));

		if (rb == NULL) {
			*err = "unterminated [ in the host";
			return -1;
		}
		h = p + 1;
		hlen = (size_t)(rb - h);
		if (rb + 1 < end && rb[1] == ':')
			colon = rb + 1;
	} else {
		colon = memchr(p, ':', (size_t)(end - p));
		hlen = (size_t)((colon ? colon : end) - h);
	}
	if (hlen == 0 || ch_httpc_copy(u->host, sizeof(u->host), h, hlen) < 0) {
		*err = "missing or too long host";
		return -1;
	}
	if (colon != NULL) {
		size_t plen = (size_t)(end - colon - 1);

		if (plen == 0 || strspn(colon + 1, "0123456789") < plen ||
		    ch_httpc_copy(u->port, sizeof(u->port), colon + 1, plen) < 0 ||
		    atoi(u->port) < 1 || atoi(u->port) > 65535) {
			*err = "bad port";
			return -1;
		}
	} else {
		strcpy(u->port, CH_HTTPC_DEFAULT_PORT);
	}
	snprintf(u->hostport, sizeof(u->hostport), "%s%s%s:%s", *p == '[' ? "[" : "",
		 u->host, *p == '[' ? "]" : "", u->port);
	return 0;
}

/* ------------------------------------------------------------------------
 * Response heads
 * ---------------------------------------------------------------------- */

size_t ch_httpc_head_end(const char *buf, size_t len)
{
	size_t i;

	for (i = 0; i + 3 < len; i++)
		if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n')
			return i + 4;
	return 0;
}

int ch_httpc_status(const char *head, size_t len)
{
	/* "HTTP/1.x NNN" */
	if (len < 12 || memcmp(head, "HTTP/1.", 7) != 0 || head[8] != ' ')
		return 0;
	if (head[9] < '1' || head[9] > '5' || head[10] < '0' || head[10] > '9' ||
	    head[11] < '0' || head[11] > '9')
		return 0;
	if (len > 12 && head[12] != ' ' && head[12] != '\r')
		return 0;
	return (head[9] - '0') * 100 + (head[10] - '0') * 10 + (head[11] - '0');
}

static bool ch_httpc_is_space(char c)
{
	return c == ' ' || c == '\t';
}

const char *ch_httpc_header(const char *head, size_t len, const char *name, size_t *vlen)
{
	const char *p = head, *end = head + len, *eol, *v;
	size_t nlen = strlen(name);

	/* Skip the status line, then one header per line. */
	eol = memchr(p, '\n', len);
	while (eol != NULL && eol + 1 < end) {
		p = eol + 1;
		eol = memchr(p, '\n', (size_t)(end - p));
		if (eol == NULL)
			break;
		if ((size_t)(eol - p) <= nlen || p[nlen] != ':' || strncasecmp(p, name, nlen) != 0)
			continue;
		v = p + nlen + 1;
		while (v < eol && ch_httpc_is_space(*v))
			v++;
		while (eol > v && (ch_httpc_is_space(eol[-1]) || eol[-1] == '\r'))
			eol--;
		*vlen = (size_t)(eol - v);
		return v;
	}
	return NULL;
}

/* ------------------------------------------------------------------------
 * Requests
 * ---------------------------------------------------------------------- */

void ch_httpc_resp_free(struct ch_httpc_resp *resp)
{
	free(resp->body);
	resp->body = NULL;
	resp->len = 0;
}

/* Read until the peer closes, the body is complete, or the deadline. */
static int ch_httpc_read_more(int fd, struct ch_buf *in, int64_t deadline)
{
	ssize_t n;
	int r;

	for (;;) {
		if (ch_buf_reserve(in, CH_HTTPC_READ_CHUNK) < 0) {
			errno = ENOMEM;
			return -1;
		}
		n = recv(fd, in->p + in->len, CH_HTTPC_READ_CHUNK, 0);
		if (n >= 0) {
			in->len += (size_t)n;
			return (int)(n > 0);	/* 0: the peer closed */
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		r = ch_httpc_wait(fd, POLLIN, ch_httpc_left(deadline));
		if (r < 0)
			return -1;
		if (r == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
	}
}

/*
 * The body after a head of head_len bytes in in, read to its end: by
 * Content-Length, chunked decoding, or the close. Moves it into resp.
 */
static int ch_httpc_read_body(int fd, struct ch_buf *in, size_t head_len, int64_t deadline,
			      struct ch_httpc_resp *resp)
{
	const char *v;
	size_t vlen, want = SIZE_MAX;
	bool chunked = false;
	int r = 1;

	v = ch_httpc_header(in->p, head_len, "Transfer-Encoding", &vlen);
	if (v != NULL && ch_ws_has_token(v, vlen, "chunked"))
		chunked = true;
	v = ch_httpc_header(in->p, head_len, "Content-Length", &vlen);
	if (!chunked && v != NULL)
		want = (size_t)strtoull(v, NULL, 10);
	if (resp->status == 204 || resp->status == 304 || resp->status < 200)
		want = 0;
	if (want != SIZE_MAX && want > CH_HTTPC_MAX_BODY) {
		errno = EMSGSIZE;
		return -1;
	}
	while ((want == SIZE_MAX || in->len - head_len < want) && r > 0) {
		if (in->len - head_len > CH_HTTPC_MAX_BODY) {
			errno = EMSGSIZE;
			return -1;
		}
		r = ch_httpc_read_more(fd, in, deadline);
		if (r < 0)
			return -1;
	}
	if (want != SIZE_MAX && in->len - head_len < want) {
		errno = EPROTO;	/* closed before Content-Length bytes came */
		return -1;
	}
	resp->len = want != SIZE_MAX ? want : in->len - head_len;
	if (chunked) {
		struct ch_chunked c;
		size_t out_len = 0;
		int done = 0;

		ch_chunked_init(&c);
		if (ch_chunked_feed(&c, in->p + head_len, in->len - head_len, in->p + head_len,
				    &out_len, &done) < 0 || !done) {
			errno = EPROTO;
			return -1;
		}
		resp->len = out_len;
	}
	resp->body = malloc(resp->len + 1);
	if (resp->body == NULL)
		return -1;
	memcpy(resp->body, in->p + head_len, resp->len);
	resp->body[resp->len] = '\0';
	return 0;
}

static int ch_httpc_exchange(int fd, const char *req, size_t req_len, const char *body,
			     size_t body_len, int64_t deadline, struct ch_httpc_resp *resp)
{
	struct ch_buf in;
	size_t head = 0;
	int r, rc = -1;

	ch_buf_init(&in);
	if (ch_httpc_write_all(fd, req, req_len, ch_httpc_left(deadline)) < 0)
		goto out;
	if (body_len > 0 && ch_httpc_write_all(fd, body, body_len, ch_httpc_left(deadline)) < 0)
		goto out;
	while ((head = ch_httpc_head_end(in.p, in.len)) == 0) {
		if (in.len > CH_HTTPC_MAX_HEAD) {
			errno = EMSGSIZE;
			goto out;
		}
		r = ch_httpc_read_more(fd, &in, deadline);
		if (r <= 0) {
			if (r == 0)
				errno = EPROTO;
			goto out;
		}
	}
	resp->status = ch_httpc_status(in.p, head);
	if (resp->status == 0) {
		errno = EPROTO;
		goto out;
	}
	rc = ch_httpc_read_body(fd, &in, head, deadline, resp);
out:
	ch_buf_free(&in);
	return rc;
}

int ch_httpc_request(const struct ch_httpc_url *u, const char *method, const char *path,
		     const char *token, const char *body, size_t body_len, int timeout_ms,
		     struct ch_httpc_resp *resp)
{
	char req[CH_HTTPC_MAX_REQ_HEAD];
	int64_t deadline = ch_httpc_now_ms() + timeout_ms;
	int fd, n, rc, err;

	memset(resp, 0, sizeof(*resp));
	/* A line break would end the header early (injection). */
	if (strpbrk(method, "\r\n ") || strpbrk(path, "\r\n ") || (token && strpbrk(token, "\r\n"))) {
		errno = EINVAL;
		return -1;
	}
	n = snprintf(req, sizeof(req),
		     "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n"
		     "Accept: application/json\r\n%s%s%s",
		     method, path, u->hostport,
		     token ? "Authorization: Bearer " : "", token ? token : "", token ? "\r\n" : "");
	if (n > 0 && (size_t)n < sizeof(req)) {
		if (body != NULL)
			n += snprintf(req + n, sizeof(req) - (size_t)n,
				      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
				      body_len);
		else
			n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n");
	}
	if (n < 0 || (size_t)n >= sizeof(req)) {
		errno = EMSGSIZE;
		return -1;
	}
	fd = ch_httpc_connect(u->host, u->port, timeout_ms);
	if (fd < 0)
		return -1;
	rc = ch_httpc_exchange(fd, req, (size_t)n, body, body ? body_len : 0, deadline, resp);
	err = errno;
	close(fd);
	if (rc < 0)
		ch_httpc_resp_free(resp);
	errno = err;
	return rc;
}
