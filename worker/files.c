/*
 * GET /files/{id}: see files.h.
 *
 * A request that waits for the pool stays CH_CONN_BUSY; its job remembers
 * the connection's slot and generation, so an answer for a connection that
 * closed meanwhile is dropped (and its mapping released) instead of going
 * to whoever holds the slot now.
 */
#define _GNU_SOURCE
#include "worker/files.h"

#include "common/log.h"
#include "worker/api.h"
#include "worker/pool.h"
#include "worker/store.h"
#include "worker/store_local.h"
#include "worker/upload.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CH_FILES_HDR_MAX 1800		/* extra response headers */
#define CH_FILES_CHUNK_MAX (1u << 30)	/* bytes per output chunk (a uint32_t) */

struct file_op {
	struct ch_job job;
	struct ch_worker *w;
	uint32_t conn, gen;
	char id[CH_STORE_ID_MAX + 1];
	int rc;				/* 0 found, 1 no such file, -1 error */
	struct ch_store_meta meta;
	void *map;
	size_t map_len;
};

/* A mapping shared by the chunks that send it; the last one unmaps it. */
struct file_map {
	void *addr;
	size_t len;
	unsigned refs;
};

static void map_release(void *owner)
{
	struct file_map *m = owner;
	if (--m->refs)
		return;
	munmap(m->addr, m->len);
	free(m);
}

/* ---------------------------------------------------------------------- */
/* Pure helpers                                                           */

static int parse_u64(const char **p, const char *end, uint64_t *out)
{
	uint64_t n = 0;
	const char *s = *p;

	if (s == end || *s < '0' || *s > '9')
		return -1;
	for (; s < end && *s >= '0' && *s <= '9'; s++) {
		if (n > (UINT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (uint64_t)(*s - '0');
	}
	*p = s;
	*out = n;
	return 0;
}

int ch_files_parse_range(const char *v, size_t len, uint64_t size, uint64_t *first,
			 uint64_t *last)
{
	const char *p = v, *end = v + len;
	uint64_t a = 0, b = UINT64_MAX;

	if (len < 6 || strncmp(v, "bytes=", 6) != 0 || memchr(v, ',', len))
		return 0;
	p += 6;
	if (p < end && *p == '-') {
		/* The last n bytes. */
		p++;
		if (parse_u64(&p, end, &b) < 0 || p != end)
			return 0;
		if (b == 0 || size == 0)
			return -1;
		*first = b >= size ? 0 : size - b;
		*last = size - 1;
		return 1;
	}
	if (parse_u64(&p, end, &a) < 0 || p == end || *p++ != '-')
		return 0;
	if (p < end && (parse_u64(&p, end, &b) < 0 || b < a))
		return 0;
	if (p != end)
		return 0;
	if (a >= size)
		return -1;
	*first = a;
	*last = b >= size ? size - 1 : b;
	return 1;
}

static int attr_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$&+-.^_`|~", c) != NULL);
}

int ch_files_disposition(const char *name, int is_inline, char *out, size_t len)
{
	size_t o;
	int n = snprintf(out, len, "%s; filename=\"", is_inline ? "inline" : "attachment");

	if (n < 0 || (size_t)n >= len)
		return -1;
	o = (size_t)n;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		if (o + 1 >= len)
			return -1;
		out[o++] = (*p < 0x20 || *p >= 0x7f || *p == '"' || *p == '\\') ? '_' : (char)*p;
	}
	n = snprintf(out + o, len - o, "\"; filename*=UTF-8''");
	if (n < 0 || (size_t)n >= len - o)
		return -1;
	o += (size_t)n;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		if (o + 4 >= len)
			return -1;
		if (attr_char(*p))
			out[o++] = (char)*p;
		else
			o += (size_t)snprintf(out + o, len - o, "%%%02X", *p);
	}
	out[o] = '\0';
	return 0;
}

/* ---------------------------------------------------------------------- */
/* The pool side                                                          */

static void job_lookup(struct ch_job *job)
{
	struct file_op *op = CH_POOL_CONTAINER_OF(job, struct file_op, job);
	const char *dir = ch_store_local_dir(op->w->uploads->store);
	struct stat st;
	int fd = -1;

	op->rc = ch_store_local_get(dir, op->id, &op->meta, &fd);
	if (op->rc != 0)
		return;
	if (fstat(fd, &st) < 0) {
		ch_err("fstat %s/%s: %s", dir, op->id, strerror(errno));
		op->rc = -1;
		goto out;
	}
	op->meta.size = (uint64_t)st.st_size;	/* what is there is what we send */
	if (st.st_size > 0) {
		op->map_len = (size_t)st.st_size;
		op->map = mmap(NULL, op->map_len, PROT_READ, MAP_SHARED, fd, 0);
		if (op->map == MAP_FAILED) {
			ch_err("mmap %s/%s: %s", dir, op->id, strerror(errno));
			op->map = NULL;
			op->rc = -1;
			goto out;
		}
		/* Start reading now, here, so the send finds the pages in. */
		madvise(op->map, op->map_len, MADV_SEQUENTIAL);
		madvise(op->map, op->map_len, MADV_WILLNEED);
	}
out:
	close(fd);
}

/* ---------------------------------------------------------------------- */
/* Answers                                                                */

static void send_file(struct ch_worker *w, struct ch_conn *c, struct file_op *op)
{
	struct ch_req *r = c->req;
	char etag[CH_STORE_SHA_HEX + 3], disp[1200], extra[CH_FILES_HDR_MAX];
	uint64_t size = op->meta.size, first = 0, last = size ? size - 1 : 0;
	int status = 200;

	snprintf(etag, sizeof(etag), "\"%s\"", op->meta.sha256);
	if (ch_files_disposition(op->meta.name, ch_store_type_inline(op->meta.type), disp,
				 sizeof(disp)) < 0)
		snprintf(disp, sizeof(disp), "attachment");
	int n = snprintf(extra, sizeof(extra),
			 "ETag: %s\r\nContent-Disposition: %s\r\nX-Content-Type-Options: nosniff\r\n"
			 CH_FILES_CSP CH_FILES_CACHE "Accept-Ranges: bytes\r\n",
			 etag, disp);
	if (ch_http_if_none_match(&r->http, etag)) {
		ch_respond(w, c, 304, NULL, NULL, 0, extra);
		return;
	}
	const struct ch_str *range = ch_http_header(&r->http, "Range");
	const struct ch_str *if_range = ch_http_header(&r->http, "If-Range");
	int rr = 0;
	if (range && (!if_range || (if_range->len == strlen(etag) &&
				    memcmp(if_range->p, etag, if_range->len) == 0)))
		rr = ch_files_parse_range(range->p, range->len, size, &first, &last);
	if (rr < 0) {
		snprintf(extra + n, sizeof(extra) - (size_t)n, "Content-Range: bytes */%llu\r\n",
			 (unsigned long long)size);
		ch_respond_error_hdr(w, c, 416, "range_not_satisfiable",
				     "the range is outside the file", extra);
		return;
	}
	if (rr > 0) {
		status = 206;
		snprintf(extra + n, sizeof(extra) - (size_t)n, "Content-Range: bytes %llu-%llu/%llu\r\n",
			 (unsigned long long)first, (unsigned long long)last,
			 (unsigned long long)size);
	}
	uint64_t len = size ? last - first + 1 : 0;
	if (len == 0 || len > CH_FILES_CHUNK_MAX * 4ull) {
		if (len)
			ch_warn("files: %s is too large to send in one response", op->id);
		ch_respond(w, c, len ? 500 : status, op->meta.type, NULL, 0, extra);
		return;
	}
	struct file_map *m = malloc(sizeof(*m));
	struct ch_outbuf *head = NULL, **tail = &head;
	if (!m) {
		ch_respond_error(w, c, 500, "internal", "out of memory");
		return;
	}
	*m = (struct file_map){ op->map, op->map_len, 0 };
	op->map = NULL;	/* the chunks own it now */
	/* Chunks of at most CH_FILES_CHUNK_MAX bytes (an outbuf's length is
	 * 32 bits), linked so they queue as one. */
	for (uint64_t off = 0; off < len;) {
		uint64_t k = len - off < CH_FILES_CHUNK_MAX ? len - off : CH_FILES_CHUNK_MAX;
		struct ch_outbuf *b = ch_outbuf_ref((char *)m->addr + first + off, (size_t)k,
						    map_release, m);
		if (!b)
			break;
		m->refs++;
		*tail = b;
		tail = &b->next;
		off += k;
	}
	if (!m->refs) {
		munmap(m->addr, m->len);
		free(m);
		ch_respond_error(w, c, 500, "internal", "out of memory");
		return;
	}
	/* The first chunk goes with the head; the rest follow it. */
	struct ch_outbuf *rest = head->next;
	head->next = NULL;
	int is_head = r->http.method == CH_HTTP_HEAD;
	ch_respond_outbuf(w, c, status, op->meta.type, (size_t)len, extra, head);
	while (rest) {
		struct ch_outbuf *next = rest->next;
		rest->next = NULL;
		if (is_head)
			ch_outbuf_free(rest);
		else
			ch_conn_queue(w, c, rest);
		rest = next;
	}
}

static void job_lookup_done(struct ch_job *job)
{
	struct file_op *op = CH_POOL_CONTAINER_OF(job, struct file_op, job);
	struct ch_worker *w = op->w;
	struct ch_conn *c = &w->conns[op->conn];

	if (!job->cancelled && c->gen == op->gen && c->state == CH_CONN_BUSY && c->req) {
		if (op->rc > 0)
			ch_respond_error(w, c, 404, "not_found", "no such file");
		else if (op->rc < 0)
			ch_respond_error(w, c, 500, "internal", "could not read the file");
		else
			send_file(w, c, op);
		ch_http_conn_resume(w, c);
	}
	if (op->map)
		munmap(op->map, op->map_len);
	free(op);
}

/* ---------------------------------------------------------------------- */
/* The request                                                            */

/* Signed URL (?expires=&sig=) or token: 1 when the request may read id. */
static int allowed(struct ch_worker *w, struct ch_req *r, const char *id)
{
	struct ch_str exp, sig;
	char user[CH_USERNAME_MAX + 1];

	if (ch_http_query_param(r->http.query, "sig", &sig) &&
	    ch_http_query_param(r->http.query, "expires", &exp)) {
		const char *p = exp.p, *end = exp.p + exp.len;
		uint64_t e;
		if (parse_u64(&p, end, &e) < 0 || p != end || e > INT64_MAX)
			return 0;
		struct ch_uploads *u = w->uploads;
		return ch_store_check_sig(u->key, sizeof(u->key), id, (int64_t)e, sig.p, sig.len,
					  (int64_t)time(NULL));
	}
	return ch_api_request_user(w, r, 0, user, sizeof(user)) == CH_TOKEN_OK;
}

static void redirect_s3(struct ch_worker *w, struct ch_conn *c, const char *id)
{
	char url[CH_STORE_URL_MAX], extra[CH_STORE_URL_MAX + 64];

	if (ch_upload_url(w, id, url, sizeof(url)) < 0 || strpbrk(url, "\r\n")) {
		ch_respond_error(w, c, 500, "internal", "could not make the file's URL");
		return;
	}
	snprintf(extra, sizeof(extra), "Location: %s\r\nCache-Control: no-store\r\n", url);
	ch_respond(w, c, 302, NULL, NULL, 0, extra);
}

void ch_files_get(struct ch_worker *w, struct ch_conn *c, struct ch_req *r, const char *path)
{
	const char *id = path + strlen("/files/");

	if (!ch_store_valid_id(id)) {
		ch_respond_error(w, c, 404, "not_found", "no such file");
		return;
	}
	if (!allowed(w, r, id)) {
		ch_respond_error_hdr(w, c, 401, "unauthorized",
				     "a valid token or an unexpired signed link is required",
				     "WWW-Authenticate: Bearer\r\n");
		return;
	}
	if (ch_store_is_s3(w->uploads->store)) {
		redirect_s3(w, c, id);
		return;
	}
	struct file_op *op = calloc(1, sizeof(*op));
	if (!op) {
		ch_respond_error(w, c, 500, "internal", "out of memory");
		return;
	}
	op->w = w;
	op->conn = (uint32_t)(c - w->conns);
	op->gen = c->gen;
	snprintf(op->id, sizeof(op->id), "%s", id);
	op->job.fn = job_lookup;
	op->job.done = job_lookup_done;
	if (ch_pool_submit(w->uploads->pool, &op->job) < 0) {
		free(op);
		ch_respond_error_hdr(w, c, 503, "busy", "the server is busy; retry shortly",
				     "Retry-After: 1\r\n");
	}
}
