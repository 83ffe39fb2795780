/*
 * One HTTP request in progress on a connection, and the helpers that
 * answer it. A connection serves its requests one at a time and in order,
 * so pipelined requests get their responses in the order they were sent:
 * the next request is not parsed until the current one has its response
 * queued (or, for requests answered later by another process, until the
 * answer comes back).
 */
#ifndef CH_HTTP_CONN_H
#define CH_HTTP_CONN_H

#include "worker/http.h"
#include "worker/worker.h"

struct ch_body_sink;

struct ch_req {
	struct ch_http_req http;	/* slices point into conn->in */
	size_t head_len;
	char *head_copy;		/* owns the bytes the slices point at */
	size_t scanned;			/* for ch_http_parse_head */
	struct ch_chunked chunked;
	char *body;
	size_t body_len;
	size_t body_cap;
	uint64_t body_left;		/* Content-Length bytes still to come */
	const struct ch_body_sink *sink;	/* a streamed body's consumer, or NULL */
	void *sink_ctx;
	int sink_paused;		/* the consumer is behind: not reading */
	uint64_t start_ms;
	int status;			/* of the response, for the access log */
	uint64_t bytes_out;
};

/* Queue a complete response. body may be NULL with body_len 0. */
void ch_respond(struct ch_worker *w, struct ch_conn *c, int status,
		const char *content_type, const char *body, size_t body_len,
		const char *extra_headers);

/* The same with a body someone else keeps alive (the web root cache). */
void ch_respond_ref(struct ch_worker *w, struct ch_conn *c, int status,
		    const char *content_type, const void *body, size_t body_len,
		    const char *extra_headers);

/* An error response: {"error": {"code": code, "message": message}}. */
void ch_respond_error(struct ch_worker *w, struct ch_conn *c, int status,
		      const char *code, const char *message);

void ch_respond_error_hdr(struct ch_worker *w, struct ch_conn *c, int status,
			  const char *code, const char *message, const char *extra_headers);

/* The same with a body chunk of the caller's making (its release frees
 * what it points at: a file mapping, say); b may be NULL when body_len is 0. */
void ch_respond_outbuf(struct ch_worker *w, struct ch_conn *c, int status,
		       const char *content_type, size_t body_len, const char *extra_headers,
		       struct ch_outbuf *b);

/* Serve c->req (implemented in routes.c). */
void ch_route(struct ch_worker *w, struct ch_conn *c, struct ch_req *r);

/* ---- streamed request bodies ----
 *
 * A route that must not hold a body in memory (uploads) takes it chunk by
 * chunk instead. Its begin handler runs as soon as the head is parsed,
 * before any body byte is read, and either answers at once (the connection
 * then closes after the answer, since the body was not read) or calls
 * ch_http_body_stream. Chunked coding is removed before the sink sees the
 * bytes; the size limit of [server] max_body_size does not apply (the
 * route has its own).
 *
 * Back-pressure: data() returns CH_SINK_FULL when it took the bytes but
 * its consumer is behind; the connection then stops receiving (and its
 * header timer stops) until the sink calls ch_http_body_resume. Memory per
 * streamed request is the sink's buffer plus what arrives while the
 * receive is being cancelled.
 */
enum ch_sink_status {
	CH_SINK_MORE = 0,	/* took the bytes; keep them coming */
	CH_SINK_FULL = 1,	/* took the bytes; pause until ch_http_body_resume */
	CH_SINK_ERROR = -1,	/* answered with ch_http_body_fail: c->req is gone */
};

struct ch_body_sink {
	/* Body bytes p[0..n), valid during the call only. */
	int (*data)(struct ch_worker *w, struct ch_conn *c, const char *p, size_t n);
	/* The whole body arrived (the connection is CH_CONN_BUSY): answer,
	 * now or later. */
	void (*end)(struct ch_worker *w, struct ch_conn *c);
	/* The request is over (answered, or the connection closed): let go
	 * of ctx. Called exactly once, from ch_http_conn_reset. */
	void (*release)(void *ctx);
};

/* Take r's body through sink (from a begin handler). */
void ch_http_body_stream(struct ch_req *r, const struct ch_body_sink *sink, void *ctx);

/* The sink caught up: read again, starting with bytes already held. */
void ch_http_body_resume(struct ch_worker *w, struct ch_conn *c);

/* Answer a request whose body is not (all) read, and close after it. */
void ch_http_body_fail(struct ch_worker *w, struct ch_conn *c, int status, const char *code,
		       const char *message);

/*
 * Routes whose handler takes the body as a stream (routes.c): 0 when r's
 * route is not one; 1 when its begin handler took the body; -1 when it
 * answered instead.
 */
int ch_route_begin(struct ch_worker *w, struct ch_conn *c, struct ch_req *r);

#endif
