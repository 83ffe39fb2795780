/*
 * Which handler serves which request. One table maps a path (exact, or a
 * prefix ending in '/') to its handler and the methods it takes; a known
 * path with another method is 405 with an Allow header, an unknown path 404.
 * A route with a begin handler takes its body as a stream (http_conn.h):
 * it is offered the request as soon as the head is parsed.
 */
#include "worker/api.h"
#include "worker/files.h"
#include "worker/upload.h"
#include "worker/http_conn.h"
#include "worker/wsconn.h"

#include "common/log.h"

#include <stdio.h>
#include <string.h>

typedef void (*ch_handler)(struct ch_worker *w, struct ch_conn *c, struct ch_req *r,
			   const char *path);

enum {
	M_GET = 1 << CH_HTTP_GET,
	M_HEAD = 1 << CH_HTTP_HEAD,
	M_POST = 1 << CH_HTTP_POST,
};

typedef int (*ch_begin_handler)(struct ch_worker *w, struct ch_conn *c, struct ch_req *r);

static void serve_healthz(struct ch_worker *w, struct ch_conn *c, struct ch_req *r,
			  const char *path);
static void serve_static(struct ch_worker *w, struct ch_conn *c, struct ch_req *r,
			 const char *path);

static const struct route {
	const char *path;	/* exact, or a prefix when it ends in '/' */
	unsigned methods;
	const char *allow;	/* the Allow header for 405 */
	ch_handler handler;	/* NULL: a streamed route (stream_routes) */
} routes[] = {
	{ "/healthz", M_GET | M_HEAD, "GET, HEAD", serve_healthz },
	{ "/metrics", M_GET | M_HEAD, "GET, HEAD", ch_api_metrics },
	{ "/api/register", M_POST, "POST", ch_api_register },
	{ "/api/login", M_POST, "POST", ch_api_login },
	{ "/api/rooms", M_GET | M_HEAD, "GET, HEAD", ch_api_rooms },
	{ "/api/room", M_POST, "POST", ch_api_room },
	{ "/api/send", M_POST, "POST", ch_api_send },
	{ "/api/history/", M_GET | M_HEAD, "GET, HEAD", ch_api_history },
	{ "/api/upload", M_POST, "POST", NULL },
	{ "/files/", M_GET | M_HEAD, "GET, HEAD", ch_files_get },
	{ "/ws", M_GET, "GET", ch_ws_upgrade },
	{ "/ws/", M_GET, "GET", ch_ws_upgrade },
	{ "/", M_GET | M_HEAD, "GET, HEAD", serve_static },
	{ "/static/", M_GET | M_HEAD, "GET, HEAD", serve_static },
};

/* Routes that take their body as a stream: path (exact) and method. */
static const struct stream_route {
	const char *path;
	enum ch_http_method method;
	ch_begin_handler begin;
} stream_routes[] = {
	{ "/api/upload", CH_HTTP_POST, ch_upload_begin },
};

static void serve_healthz(struct ch_worker *w, struct ch_conn *c, struct ch_req *r,
			  const char *path)
{
	(void)r;
	(void)path;
	if (w->stopping) {
		ch_respond(w, c, 503, "text/plain; charset=utf-8", "stopping\n", 9,
			   "Cache-Control: no-store\r\n");
		return;
	}
	ch_respond(w, c, 200, "text/plain; charset=utf-8", "ok", 2,
		   "Cache-Control: no-store\r\n");
}

static void serve_static(struct ch_worker *w, struct ch_conn *c, struct ch_req *r,
			 const char *path)
{
	const char *name = strcmp(path, "/") == 0 ? "/index.html" : path;
	const struct ch_static_file *f = ch_static_find(w->web, name);
	char extra[256];

	if (!f) {
		ch_respond_error(w, c, 404, "not_found", "no such file");
		return;
	}
	snprintf(extra, sizeof(extra),
		 "ETag: %s\r\nLast-Modified: %s\r\nCache-Control: no-cache\r\n"
		 "X-Content-Type-Options: nosniff\r\n",
		 f->etag, f->last_modified);
	if (ch_http_if_none_match(&r->http, f->etag)) {
		ch_respond(w, c, 304, NULL, NULL, 0, extra);
		return;
	}
	ch_respond_ref(w, c, 200, f->content_type, f->data, f->len, extra);
}

static int route_matches(const struct route *rt, const char *path)
{
	size_t n = strlen(rt->path);
	if (rt->path[n - 1] == '/' && n > 1)
		return strncmp(path, rt->path, n) == 0;
	return strcmp(path, rt->path) == 0;
}

void ch_route(struct ch_worker *w, struct ch_conn *c, struct ch_req *r)
{
	char path[CH_HTTP_MAX_HEAD];

	/* Decode and resolve dot segments before matching, so that no
	 * spelling of a path reaches a handler it should not. A path that
	 * climbs above the root matches nothing. */
	if (ch_http_path_decode(r->http.path, path, sizeof(path)) < 0) {
		ch_respond_error(w, c, 400, "bad_request", "malformed path");
		return;
	}
	if (ch_http_path_normalize(path) < 0) {
		ch_respond_error(w, c, 404, "not_found", "no such file");
		return;
	}
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		const struct route *rt = &routes[i];
		if (!route_matches(rt, path))
			continue;
		if (!(rt->methods & (1u << r->http.method))) {
			char allow[64];
			snprintf(allow, sizeof(allow), "Allow: %s\r\n", rt->allow);
			r->http.keep_alive = r->http.keep_alive && r->body_left == 0;
			ch_respond_error_hdr(w, c, 405, "method_not_allowed",
					     "method not allowed", allow);
			return;
		}
		if (!rt->handler) {
			/* A streamed route always takes its request at the head;
			 * reaching here would be a bug in http_conn.c. */
			ch_respond_error(w, c, 500, "internal", "route without a handler");
			return;
		}
		rt->handler(w, c, r, path);
		return;
	}
	ch_respond_error(w, c, 404, "not_found", "no such resource");
}

int ch_route_begin(struct ch_worker *w, struct ch_conn *c, struct ch_req *r)
{
	char path[CH_HTTP_MAX_HEAD];

	if (ch_http_path_decode(r->http.path, path, sizeof(path)) < 0 ||
	    ch_http_path_normalize(path) < 0)
		return 0;	/* ch_route answers it */
	for (size_t i = 0; i < sizeof(stream_routes) / sizeof(stream_routes[0]); i++) {
		const struct stream_route *sr = &stream_routes[i];
		if (strcmp(path, sr->path) == 0 && r->http.method == sr->method)
			return sr->begin(w, c, r);
	}
	return 0;
}
