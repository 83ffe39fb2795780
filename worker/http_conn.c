/*
 * HTTP/1.1 on a worker's connection: reading request heads and bodies from
 * the connection's input, handing complete requests to the router, writing
 * responses, keep-alive and pipelining, timeouts and the access log.
 *
 * A parsed head is copied out of the input buffer into the request (heads
 * are small) so the input buffer can grow or move while a body arrives; the
 * header slices are re-pointed at the copy.
 */
#define _GNU_SOURCE
#include "worker/http_conn.h"

#include "common/log.h"
#include "worker/wsconn.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CH_ACCESS_BUF 65536
#define CH_RESPONSE_HEAD_MAX 2048

static const char continue_100[] = "HTTP/1.1 100 Continue\r\n\r\n";

/* ---------------------------------------------------------------------- */
/* Access log                                                             */

void ch_worker_access_log_open(struct ch_worker *w)
{
	const char *dest = w->cfg->access_log;

	if (strcmp(dest, "off") == 0 || dest[0] == '\0')
		return;
	if (strcmp(dest, "stderr") == 0)
		w->access_fd = dup(STDERR_FILENO);
	else
		w->access_fd = open(dest, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (w->access_fd < 0) {
		ch_err("access log %s: %s", dest, strerror(errno));
		return;
	}
	w->access_buf = malloc(CH_ACCESS_BUF);
	if (!w->access_buf) {
		close(w->access_fd);
		w->access_fd = -1;
	}
}

void ch_worker_access_log_flush(struct ch_worker *w)
{
	if (w->access_fd < 0 || w->access_len == 0)
		return;
	/* A regular file or a pipe to the journal: both take this at once. */
	ssize_t n = write(w->access_fd, w->access_buf, w->access_len);
	(void)n;
	w->access_len = 0;
}

static void access_log(struct ch_worker *w, struct ch_conn *c, const struct ch_req *r)
{
	char addr[INET6_ADDRSTRLEN] = "-";
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (w->access_fd < 0)
		return;
	if (CH_ACCESS_BUF - w->access_len < 1024)
		ch_worker_access_log_flush(w);
	if (getpeername(c->fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, addr, sizeof(addr));
		else if (ss.ss_family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, addr, sizeof(addr));
	}
	char stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	int target_len = (int)(r->http.target.len > 512 ? 512 : r->http.target.len);
	int n = snprintf(w->access_buf + w->access_len, CH_ACCESS_BUF - w->access_len,
			 "%s %s worker=%d \"%.*s %.*s HTTP/1.%d\" %d %llu %llums\n", stamp, addr,
			 w->index, (int)r->http.method_text.len,
			 r->http.method_text.p ? r->http.method_text.p : "-", target_len,
			 r->http.target.p ? r->http.target.p : "", r->http.minor, r->status,
			 (unsigned long long)r->bytes_out,
			 (unsigned long long)(w->now_ms - r->start_ms));
	if (n > 0 && (size_t)n < CH_ACCESS_BUF - w->access_len)
		w->access_len += (size_t)n;
}

/* ---------------------------------------------------------------------- */
/* Requests                                                               */

void ch_http_conn_reset(struct ch_conn *c)
{
	struct ch_req *r = c->req;
	if (!r)
		return;
	if (r->sink)
		r->sink->release(r->sink_ctx);
	free(r->body);
	free(r->head_copy);
	free(r);
	c->req = NULL;
}

static void rebase(struct ch_str *s, const char *from, const char *to)
{
	if (s->p)
		s->p = to + (s->p - from);
}

/* Copy the parsed head out of the input buffer and point the slices at
 * the copy. */
static int keep_head(struct ch_req *r, const char *head)
{
	char *copy = malloc(r->head_len);
	if (!copy)
		return -1;
	memcpy(copy, head, r->head_len);
	const char *from = r->http.method_text.p;
	/* The head may start with empty lines the parser skipped. */
	size_t skip = (size_t)(from - head);
	memmove(copy, copy + skip, r->head_len - skip);
	const char *to = copy;
	r->head_copy = copy;
	struct ch_http_req *h = &r->http;
	rebase(&h->method_text, from, to);
	rebase(&h->target, from, to);
	rebase(&h->path, from, to);
	rebase(&h->query, from, to);
	rebase(&h->host, from, to);
	rebase(&h->authorization, from, to);
	rebase(&h->content_type, from, to);
	for (int i = 0; i < h->n_headers; i++) {
		rebase(&h->headers[i].name, from, to);
		rebase(&h->headers[i].value, from, to);
	}
	return 0;
}

/* The request is answered: log it, then get ready for the next one. */
static void request_done(struct ch_worker *w, struct ch_conn *c)
{
	struct ch_req *r = c->req;
	int keep = r && r->http.keep_alive && !w->stopping &&
		   !(c->flags & (CH_CONN_PEER_EOF | CH_CONN_CLOSE_AFTER));

	if (r)
		access_log(w, c, r);
	/* Answered while a streamed body was held back: receive again, so
	 * the linger before close can drain what the client still sends. */
	if (r && r->sink_paused)
		ch_conn_body_resume(w, c);
	ch_http_conn_reset(c);
	c->requests++;
	if (!keep) {
		ch_conn_close_after(w, c);
		return;
	}
	c->state = CH_CONN_HEAD;
	if (c->in && c->in->off < c->in->len)
		ch_worker_timer_set(w, c, CH_TIMER_HEAD);
	else
		ch_worker_timer_set(w, c, CH_TIMER_IDLE);
}

/*
 * Queue a response: the head and a copied body share one chunk (one
 * allocation, one plain send), a body someone else keeps (ref) follows as
 * a chunk of its own.
 */
static void respond_common(struct ch_worker *w, struct ch_conn *c, int status,
			   const char *content_type, const char *copy, size_t body_len,
			   const char *extra_headers, struct ch_outbuf *ref)
{
	struct ch_req *r = c->req;
	int is_head = r && r->http.method == CH_HTTP_HEAD;
	int keep = r && r->http.keep_alive && !w->stopping &&
		   !(c->flags & (CH_CONN_PEER_EOF | CH_CONN_CLOSE_AFTER));
	char extra[CH_RESPONSE_HEAD_MAX];
	char head[CH_RESPONSE_HEAD_MAX + 256];

	snprintf(extra, sizeof(extra), "%sServer: chatd\r\n%s", w->date,
		 extra_headers ? extra_headers : "");
	int n = ch_http_format_head(head, sizeof(head), status, content_type, body_len, keep,
				    extra);
	size_t inline_len = copy && !is_head ? body_len : 0;
	struct ch_outbuf *out = n < 0 ? NULL : ch_outbuf_new((size_t)n + inline_len);
	if (!out) {
		if (ref)
			ch_outbuf_free(ref);
		ch_conn_close(w, c);
		return;
	}
	memcpy(out->data, head, (size_t)n);
	if (inline_len)
		memcpy(out->data + n, copy, inline_len);
	CH_STAT_ADD(w->stats, requests, 1);
	if (status >= 500)
		CH_STAT_ADD(w->stats, responses_5xx, 1);
	else if (status >= 400)
		CH_STAT_ADD(w->stats, responses_4xx, 1);
	else if (status >= 300)
		CH_STAT_ADD(w->stats, responses_3xx, 1);
	else
		CH_STAT_ADD(w->stats, responses_2xx, 1);
	if (r) {
		r->status = status;
		r->bytes_out = (uint64_t)n + (is_head ? 0 : body_len);
		if (!keep)
			r->http.keep_alive = 0;
	}
	ch_conn_queue(w, c, out);
	if (ref && !is_head && c->state != CH_CONN_FREE && c->state != CH_CONN_CLOSING)
		ch_conn_queue(w, c, ref);
	else if (ref)
		ch_outbuf_free(ref);
	if (c->state != CH_CONN_FREE && c->state != CH_CONN_CLOSING)
		request_done(w, c);
}

void ch_respond(struct ch_worker *w, struct ch_conn *c, int status,
		const char *content_type, const char *body, size_t body_len,
		const char *extra_headers)
{
	respond_common(w, c, status, content_type, body, body_len, extra_headers, NULL);
}

void ch_respond_outbuf(struct ch_worker *w, struct ch_conn *c, int status,
		       const char *content_type, size_t body_len, const char *extra_headers,
		       struct ch_outbuf *b)
{
	respond_common(w, c, status, content_type, NULL, body_len, extra_headers, b);
}

void ch_respond_ref(struct ch_worker *w, struct ch_conn *c, int status,
		    const char *content_type, const void *body, size_t body_len,
		    const char *extra_headers)
{
	struct ch_outbuf *b = NULL;

	if (body_len) {
		b = ch_outbuf_ref(body, body_len, NULL, NULL);
		if (!b) {
			ch_conn_close(w, c);
			return;
		}
	}
	respond_common(w, c, status, content_type, NULL, body_len, extra_headers, b);
}

void ch_respond_error(struct ch_worker *w, struct ch_conn *c, int status,
		      const char *code, const char *message)
{
	ch_respond_error_hdr(w, c, status, code, message, NULL);
}

void ch_respond_error_hdr(struct ch_worker *w, struct ch_conn *c, int status,
			  const char *code, const char *message, const char *extra_headers)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *err = cJSON_AddObjectToObject(root, "error");
	cJSON_AddStringToObject(err, "code", code);
	cJSON_AddStringToObject(err, "message", message);
	char *text = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (!text) {
		ch_conn_close(w, c);
		return;
	}
	ch_respond(w, c, status, "application/json", text, strlen(text), extra_headers);
	free(text);
}

/* Answer a request that cannot go on and close the connection after it. */
static void fail(struct ch_worker *w, struct ch_conn *c, int status, const char *code,
		 const char *message)
{
	c->flags |= CH_CONN_CLOSE_AFTER;
	if (!c->req) {
		c->req = calloc(1, sizeof(*c->req));
		if (c->req)
			c->req->start_ms = w->now_ms;
	}
	/* Out of HEAD and BODY: the request goes with the answer, and bytes
	 * still arriving (the rest of a body) must not be read as its body
	 * or as a next request while the answer is sent. */
	c->state = CH_CONN_BUSY;
	ch_worker_timer_set(w, c, CH_TIMER_NONE);
	ch_respond_error(w, c, status, code, message);
}

void ch_http_conn_timeout(struct ch_worker *w, struct ch_conn *c)
{
	ch_debug("worker %d: request timeout on fd %d", w->index, c->fd);
	fail(w, c, 408, "request_timeout", "the request did not arrive in time");
}

void ch_http_body_fail(struct ch_worker *w, struct ch_conn *c, int status, const char *code,
		       const char *message)
{
	fail(w, c, status, code, message);
}

static void parse_error(struct ch_worker *w, struct ch_conn *c, int rc)
{
	switch (rc) {
	case CH_HTTP_E_TOO_LARGE:
		fail(w, c, 431, "headers_too_large", "the request head is over 16 KiB");
		break;
	case CH_HTTP_E_NOT_IMPL:
		fail(w, c, 501, "not_implemented", "unsupported transfer coding");
		break;
	case CH_HTTP_E_VERSION:
		fail(w, c, 505, "version_not_supported", "only HTTP/1.0 and HTTP/1.1 are served");
		break;
	default:
		fail(w, c, 400, "bad_request", "malformed request");
		break;
	}
}

static void dispatch(struct ch_worker *w, struct ch_conn *c)
{
	c->state = CH_CONN_BUSY;
	ch_worker_timer_set(w, c, CH_TIMER_NONE);
	if (c->req->http.method == CH_HTTP_OTHER) {
		c->req->http.keep_alive = c->req->http.keep_alive && !c->req->body_left;
		ch_respond_error(w, c, 405, "method_not_allowed", "method not allowed");
		return;
	}
	ch_route(w, c, c->req);
}

static int body_reserve(struct ch_req *r, size_t more)
{
	if (r->body_len + more <= r->body_cap)
		return 0;
	size_t cap = r->body_cap ? r->body_cap : 1024;
	while (cap < r->body_len + more)
		cap *= 2;
	char *grown = realloc(r->body, cap);
	if (!grown)
		return -1;
	r->body = grown;
	r->body_cap = cap;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Streamed bodies                                                        */

void ch_http_body_stream(struct ch_req *r, const struct ch_body_sink *sink, void *ctx)
{
	r->sink = sink;
	r->sink_ctx = ctx;
}

/* "100 Continue" when the client waits for it before sending its body. */
static void send_continue(struct ch_worker *w, struct ch_conn *c)
{
	struct ch_req *r = c->req;
	if (r->http.expect_continue && r->http.minor >= 1) {
		struct ch_outbuf *b = ch_outbuf_ref(continue_100, sizeof(continue_100) - 1,
						    NULL, NULL);
		ch_conn_queue(w, c, b);
	}
}

/* The whole body went to the sink: it answers, now or later. */
static void stream_end(struct ch_worker *w, struct ch_conn *c)
{
	c->state = CH_CONN_BUSY;
	ch_worker_timer_set(w, c, CH_TIMER_NONE);
	c->req->sink->end(w, c);
}

/* A route's begin handler took the body: read it as a stream. */
static void begin_stream(struct ch_worker *w, struct ch_conn *c)
{
	struct ch_req *r = c->req;

	if (r->http.chunked) {
		ch_chunked_init(&r->chunked);
	} else if (r->http.content_length > 0) {
		r->body_left = (uint64_t)r->http.content_length;
	} else {
		stream_end(w, c);
		return;
	}
	c->state = CH_CONN_BODY;
	ch_worker_timer_set(w, c, CH_TIMER_HEAD);
	send_continue(w, c);
}

/* Hand the body bytes held in the input to the sink, one step. */
static void read_body_stream(struct ch_worker *w, struct ch_conn *c)
{
	struct ch_req *r = c->req;
	struct ch_inbuf *in = c->in;
	char *p = in->data + in->off;
	size_t avail = in->len - in->off, n;
	int done = 0;

	if (!r->http.chunked) {
		n = avail < r->body_left ? avail : (size_t)r->body_left;
		r->body_left -= n;
		in->off += n;
		done = r->body_left == 0;
	} else {
		/* Decoded in place: the output never overtakes the input. */
		long used = ch_chunked_feed(&r->chunked, p, avail, p, &n, &done);
		if (used < 0) {
			fail(w, c, 400, "bad_request", "malformed chunked body");
			return;
		}
		in->off += (size_t)used;
	}
	int rc = n ? r->sink->data(w, c, p, n) : CH_SINK_MORE;
	if (rc == CH_SINK_ERROR)
		return;
	if (done) {
		stream_end(w, c);
	} else if (rc == CH_SINK_FULL) {
		r->sink_paused = 1;
		ch_worker_timer_set(w, c, CH_TIMER_NONE);
		ch_conn_body_pause(w, c);
	}
}

void ch_http_body_resume(struct ch_worker *w, struct ch_conn *c)
{
	struct ch_req *r = c->req;

	if (!r || !r->sink_paused || c->state != CH_CONN_BODY)
		return;
	r->sink_paused = 0;
	ch_worker_timer_set(w, c, CH_TIMER_HEAD);
	ch_conn_body_resume(w, c);
	ch_http_conn_input(w, c);
}

/*
 * Offer a request with a body to the streaming routes before anything of
 * the body is read. 1: taken (streamed, or answered), 0: not theirs.
 */
static int offer_stream(struct ch_worker *w, struct ch_conn *c)
{
	struct ch_req *r = c->req;
	int keep = r->http.keep_alive;

	if (r->http.method != CH_HTTP_POST && r->http.method != CH_HTTP_PUT)
		return 0;
	/* An answer given now comes before the body is read: the
	 * connection cannot be reused after it. */
	if (r->http.chunked || r->http.content_length > 0)
		r->http.keep_alive = 0;
	c->state = CH_CONN_BUSY;
	int rc = ch_route_begin(w, c, r);
	if (rc < 0)
		return 1;	/* answered; c->req is gone */
	r->http.keep_alive = keep;
	c->state = CH_CONN_HEAD;
	if (rc == 0)
		return 0;
	begin_stream(w, c);
	return 1;
}

/* Start a request whose head parsed: decide how its body comes. */
static int begin_body(struct ch_worker *w, struct ch_conn *c)
{
	struct ch_req *r = c->req;
	uint64_t limit = w->cfg->max_body_size;

	if (offer_stream(w, c))
		return 0;
	if (r->http.chunked) {
		ch_chunked_init(&r->chunked);
	} else if (r->http.content_length > 0) {
		if ((uint64_t)r->http.content_length > limit) {
			/* Refuse before reading the body; we close, since the
			 * body's bytes would otherwise be read as a request. */
			fail(w, c, 413, "too_large", "the request body is over the limit");
			return -1;
		}
		r->body_left = (uint64_t)r->http.content_length;
		if (body_reserve(r, (size_t)r->body_left) < 0) {
			fail(w, c, 500, "internal", "out of memory");
			return -1;
		}
	} else {
		dispatch(w, c);
		return 0;
	}
	c->state = CH_CONN_BODY;
	send_continue(w, c);
	return 0;
}

/* Move body bytes from the input into the request; dispatch when complete. */
static void read_body(struct ch_worker *w, struct ch_conn *c)
{
	struct ch_req *r = c->req;
	struct ch_inbuf *in = c->in;
	size_t avail = in ? in->len - in->off : 0;

	if (!r->http.chunked) {
		size_t n = avail < r->body_left ? avail : (size_t)r->body_left;
		memcpy(r->body + r->body_len, in->data + in->off, n);
		r->body_len += n;
		r->body_left -= n;
		in->off += n;
		if (r->body_left == 0)
			dispatch(w, c);
		return;
	}
	if (body_reserve(r, avail) < 0) {
		fail(w, c, 500, "internal", "out of memory");
		return;
	}
	size_t out = 0;
	int done = 0;
	long used = ch_chunked_feed(&r->chunked, in->data + in->off, avail,
				    r->body + r->body_len, &out, &done);
	if (used < 0) {
		fail(w, c, 400, "bad_request", "malformed chunked body");
		return;
	}
	in->off += (size_t)used;
	r->body_len += out;
	if (r->body_len > w->cfg->max_body_size) {
		fail(w, c, 413, "too_large", "the request body is over the limit");
		return;
	}
	if (done)
		dispatch(w, c);
}

void ch_http_conn_resume(struct ch_worker *w, struct ch_conn *c)
{
	if (c->state == CH_CONN_HEAD)
		ch_http_conn_input(w, c);
}

void ch_http_conn_input(struct ch_worker *w, struct ch_conn *c)
{
	if (c->state == CH_CONN_WS) {
		ch_ws_input(w, c);
		return;
	}
	while (c->state == CH_CONN_HEAD || c->state == CH_CONN_BODY) {
		struct ch_inbuf *in = c->in;
		if (!in || in->off == in->len)
			break;
		if (c->state == CH_CONN_BODY) {
			if (c->req->sink && c->req->sink_paused)
				break;	/* the sink resumes us */
			ch_worker_timer_set(w, c, CH_TIMER_HEAD);	/* progress: renew */
			if (c->req->sink)
				read_body_stream(w, c);
			else
				read_body(w, c);
			continue;
		}
		if (!c->req) {
			c->req = calloc(1, sizeof(*c->req));
			if (!c->req) {
				ch_conn_close(w, c);
				return;
			}
			c->req->start_ms = w->now_ms;
			/* The first byte of a request starts its header clock. */
			ch_worker_timer_set(w, c, CH_TIMER_HEAD);
		}
		struct ch_req *r = c->req;
		int rc = ch_http_parse_head(in->data + in->off, in->len - in->off, &r->scanned,
					    &r->http);
		if (rc == CH_HTTP_AGAIN)
			break;
		if (rc < 0) {
			parse_error(w, c, rc);
			return;
		}
		r->head_len = (size_t)rc;
		if (keep_head(r, in->data + in->off) < 0) {
			ch_conn_close(w, c);
			return;
		}
		in->off += r->head_len;
		if (begin_body(w, c) < 0)
			return;
	}
	if (c->state == CH_CONN_WS) {
		/* Upgraded: frames sent right behind the handshake. */
		ch_ws_input(w, c);
		return;
	}
	if (c->in && c->in->off == c->in->len) {
		/* Nothing held: an idle connection keeps no input buffer. */
		free(c->in);
		c->in = NULL;
	}
	if ((c->flags & CH_CONN_PEER_EOF) && c->state == CH_CONN_HEAD && !c->req)
		ch_conn_close_after(w, c);
}
