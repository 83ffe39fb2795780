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

/* Serve c->req (implemented in routes.c). */
void ch_route(struct ch_worker *w, struct ch_conn *c, struct ch_req *r);

#endif
