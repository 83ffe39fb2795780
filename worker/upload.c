/*
 * POST /api/upload: see upload.h.
 *
 * One struct upload per request. It lives while either side needs it: the
 * request (until ch_http_conn_reset calls release) and the job on the pool
 * (until its done callback). release only marks it detached when a job is
 * in flight; the job's done callback then cleans up. At most one job per
 * upload is in flight, so the store's writes stay in order, and only the
 * pool thread touches the store handle (su) while it runs.
 */
#define _GNU_SOURCE
#include "worker/upload.h"

#include "common/buf.h"
#include "common/log.h"
#include "worker/api.h"
#include "worker/bus.h"
#include "worker/handoff.h"
#include "worker/multipart.h"
#include "worker/pool.h"
#include "worker/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum job_op {
	JOB_WRITE,	/* append buf (opening the spool first if need be) */
	JOB_COMMIT,	/* append buf, then commit */
	JOB_ABORT,	/* the request is gone: drop the spool */
};

struct upload {
	struct ch_job job;		/* the one job in flight, if busy */
	struct ch_worker *w;
	uint32_t conn, gen;
	int busy;			/* job submitted, not yet done */
	int detached;			/* the request is gone */
	int ended;			/* the whole body arrived */

	/* Written by the pool thread while busy, read by done. */
	enum job_op op;
	char *job_buf;
	size_t job_len, job_cap;
	int job_rc;
	struct ch_store_err err;
	struct ch_store_upload *su;

	/* The loop side. */
	struct ch_multipart mp;
	int in_f, got_f;
	uint64_t size, other, max;
	unsigned char sniff[CH_STORE_SNIFF_BYTES];
	size_t sniff_len;
	char *fill;			/* f's bytes not yet handed to the store */
	size_t fill_len, fill_cap;
	struct ch_store_meta meta;
	/* A failure found inside a parser callback, answered after it. */
	int fail_status;
	const char *fail_code, *fail_msg;
};

static void upload_free(struct upload *up)
{
	free(up->fill);
	free(up->job_buf);
	free(up);
}

/* The connection this upload is for, while its request is still there. */
static struct ch_conn *upload_conn(struct upload *up)
{
	struct ch_conn *c = &up->w->conns[up->conn];
	if (up->detached || c->gen != up->gen || !c->req || c->req->sink_ctx != up)
		return NULL;
	return c;
}

/* ---------------------------------------------------------------------- */
/* The pool side                                                          */

static void job_run(struct ch_job *job)
{
	struct upload *up = CH_POOL_CONTAINER_OF(job, struct upload, job);
	struct ch_store *store = up->w->uploads->store;

	up->job_rc = 0;
	if (up->op == JOB_ABORT) {
		ch_store_abort(up->su);
		up->su = NULL;
		return;
	}
	if (!up->su && !(up->su = ch_store_begin(store, &up->err))) {
		up->job_rc = -1;
		return;
	}
	if (up->job_len && ch_store_write(up->su, up->job_buf, up->job_len, &up->err) < 0) {
		up->job_rc = -1;
		return;
	}
	if (up->op == JOB_COMMIT) {
		up->job_rc = ch_store_commit(up->su, &up->meta, &up->err);
		up->su = NULL;	/* freed by commit either way */
	}
}

static void job_done(struct ch_job *job);

/* Hand the filled buffer (and, with op JOB_COMMIT, the end) to the pool. */
static int submit(struct upload *up, enum job_op op)
{
	char *b = up->job_buf;
	size_t cap = up->job_cap;

	/* Swap buffers: the job takes what was filled, filling goes on in the
	 * job's previous buffer (two buffers per upload, reused). */
	up->job_buf = up->fill;
	up->job_cap = up->fill_cap;
	up->job_len = up->fill_len;
	up->fill = b;
	up->fill_cap = cap;
	up->fill_len = 0;
	up->op = op;
	up->job.fn = job_run;
	up->job.done = job_done;
	up->busy = 1;
	if (ch_pool_submit(up->w->uploads->pool, &up->job) < 0) {
		up->busy = 0;
		up->job_rc = -1;
		ch_store_set_err(&up->err, 503, "busy", "the server is busy; retry shortly");
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Answers                                                                */

static void answer_error(struct ch_worker *w, struct ch_conn *c, struct upload *up, int status,
			 const char *code, const char *msg)
{
	if (!up->ended) {
		ch_http_body_fail(w, c, status, code, msg);	/* body unread: close */
		return;
	}
	ch_respond_error(w, c, status, code, msg);
	ch_http_conn_resume(w, c);
}

int ch_upload_url(struct ch_worker *w, const char *id, char *out, size_t len)
{
	struct ch_uploads *u = w->uploads;
	int64_t expires = (int64_t)time(NULL) + (int64_t)(w->cfg->upload_url_expiry_ms / 1000);

	return ch_store_url(u->store, id, expires, u->key, sizeof(u->key), out, len);
}

static void answer_created(struct ch_worker *w, struct ch_conn *c, struct upload *up)
{
	char url[CH_STORE_URL_MAX];
	struct ch_buf b;

	if (ch_upload_url(w, up->meta.id, url, sizeof(url)) < 0) {
		answer_error(w, c, up, 500, "internal", "could not make the file's URL");
		return;
	}
	ch_buf_init(&b);
	ch_buf_puts(&b, "{\"file\":");
	ch_json_str(&b, up->meta.id, strlen(up->meta.id));
	ch_buf_puts(&b, ",\"filename\":");
	ch_json_str(&b, up->meta.name, strlen(up->meta.name));
	ch_buf_puts(&b, ",\"content_type\":");
	ch_json_str(&b, up->meta.type, strlen(up->meta.type));
	ch_buf_printf(&b, ",\"size\":%llu,\"url\":", (unsigned long long)up->meta.size);
	ch_json_str(&b, url, strlen(url));
	ch_buf_puts(&b, "}");
	if (b.failed) {
		answer_error(w, c, up, 500, "internal", "out of memory");	/* resumes input */
	} else {
		ch_respond(w, c, 201, "application/json", b.p, b.len, "Cache-Control: no-store\r\n");
		ch_http_conn_resume(w, c);
	}
	ch_buf_free(&b);
}

/* Everything is in: give the store the rest and the metadata. */
static void finish(struct ch_worker *w, struct ch_conn *c, struct upload *up)
{
	const char *type = ch_store_sniff(up->sniff, up->sniff_len);

	snprintf(up->meta.type, sizeof(up->meta.type), "%s", type);
	if (ch_store_make_id(up->meta.name, up->meta.id) < 0) {
		answer_error(w, c, up, 500, "internal", "no randomness for a file id");
		return;
	}
	if (submit(up, JOB_COMMIT) < 0)
		answer_error(w, c, up, up->err.status, up->err.code, up->err.message);
}

static void job_done(struct ch_job *job)
{
	struct upload *up = CH_POOL_CONTAINER_OF(job, struct upload, job);
	struct ch_worker *w = up->w;
	struct ch_conn *c = job->cancelled ? NULL : upload_conn(up);

	up->busy = 0;
	if (job->cancelled && !up->detached) {
		/* The worker is exiting with the request still open: the
		 * request's release frees us, if it ever runs. */
		ch_store_abort(up->su);
		up->su = NULL;
		return;
	}
	if (!c) {
		/* Nobody waits (cancelled, detached, or the connection is
		 * gone): drop the spool (off the loop), then ourselves. */
		if (up->su && !job->cancelled && up->op != JOB_ABORT && submit(up, JOB_ABORT) == 0)
			return;
		ch_store_abort(up->su);
		upload_free(up);
		return;
	}
	if (up->job_rc < 0) {
		answer_error(w, c, up, up->err.status, up->err.code, up->err.message);
		return;
	}
	if (up->op == JOB_COMMIT) {
		answer_created(w, c, up);
		return;
	}
	if (up->fill_len >= CH_UPLOAD_CHUNK && submit(up, JOB_WRITE) < 0) {
		answer_error(w, c, up, up->err.status, up->err.code, up->err.message);
		return;
	}
	if (up->ended && !up->busy) {
		finish(w, c, up);
		return;
	}
	if (up->fill_len < CH_UPLOAD_CHUNK)
		ch_http_body_resume(w, c);
}

/* ---------------------------------------------------------------------- */
/* The body                                                               */

static int stop(struct upload *up, int status, const char *code, const char *msg)
{
	up->fail_status = status;
	up->fail_code = code;
	up->fail_msg = msg;
	return 1;
}

static int fill_append(struct upload *up, const char *p, size_t n)
{
	if (up->fill_len + n > up->fill_cap) {
		size_t cap = up->fill_cap ? up->fill_cap : CH_UPLOAD_CHUNK;
		while (cap < up->fill_len + n)
			cap *= 2;
		char *grown = realloc(up->fill, cap);
		if (!grown)
			return -1;
		up->fill = grown;
		up->fill_cap = cap;
	}
	memcpy(up->fill + up->fill_len, p, n);
	up->fill_len += n;
	return 0;
}

static int on_part(void *ctx, enum ch_mp_event ev, const struct ch_mp_part *part,
		   const char *data, size_t len)
{
	struct upload *up = ctx;

	switch (ev) {
	case CH_MP_PART_BEGIN:
		up->in_f = strcmp(part->name, "f") == 0;
		if (up->in_f && up->got_f)
			return stop(up, 400, "bad_request", "only one file per upload");
		if (up->in_f) {
			up->got_f = 1;
			ch_store_clean_name(part->has_filename ? part->filename : "", up->meta.name);
		}
		return 0;
	case CH_MP_DATA:
		if (!up->in_f) {
			up->other += len;
			return up->other > CH_UPLOAD_OVERHEAD
				       ? stop(up, 413, "too_large", "form fields over the limit")
				       : 0;
		}
		up->size += len;
		if (up->size > up->max)
			return stop(up, 413, "too_large", "the file is over [uploads] max_size");
		if (up->sniff_len < sizeof(up->sniff)) {
			size_t k = sizeof(up->sniff) - up->sniff_len;
			k = k < len ? k : len;
			memcpy(up->sniff + up->sniff_len, data, k);
			up->sniff_len += k;
		}
		if (fill_append(up, data, len) < 0)
			return stop(up, 500, "internal", "out of memory");
		return 0;
	case CH_MP_PART_END:
		up->in_f = 0;
		return 0;
	}
	return 0;
}

static int sink_data(struct ch_worker *w, struct ch_conn *c, const char *p, size_t n)
{
	struct upload *up = c->req->sink_ctx;
	int rc = ch_mp_feed(&up->mp, p, n);

	if (rc != CH_MP_OK) {
		/* The parser's own errors answer like a callback's stop. */
		if (rc == CH_MP_E_TOO_LARGE)
			stop(up, 413, "too_large", "a multipart header is over the limit");
		else if (rc != CH_MP_E_STOPPED)
			stop(up, 400, "bad_request", "malformed multipart body");
		/* up may be freed inside (release): nothing of it after this
		 * (the code and message are literals, not up's). */
		ch_http_body_fail(w, c, up->fail_status, up->fail_code, up->fail_msg);
		return CH_SINK_ERROR;
	}
	if (up->fill_len < CH_UPLOAD_CHUNK)
		return CH_SINK_MORE;
	if (up->busy)
		return CH_SINK_FULL;	/* resumed by job_done */
	if (submit(up, JOB_WRITE) < 0) {
		ch_http_body_fail(w, c, up->err.status, up->err.code, up->err.message);
		return CH_SINK_ERROR;
	}
	return CH_SINK_MORE;
}

static void sink_end(struct ch_worker *w, struct ch_conn *c)
{
	struct upload *up = c->req->sink_ctx;

	up->ended = 1;
	if (!ch_mp_done(&up->mp)) {
		answer_error(w, c, up, 400, "bad_request", "the multipart body is incomplete");
		return;
	}
	if (!up->got_f) {
		answer_error(w, c, up, 400, "bad_request", "no file in field f");
		return;
	}
	if (!up->busy)
		finish(w, c, up);
	/* else job_done finishes once the write in flight is done */
}

static void sink_release(void *ctx)
{
	struct upload *up = ctx;

	up->detached = 1;
	if (up->busy)
		return;	/* job_done cleans up */
	if (up->su && submit(up, JOB_ABORT) == 0)
		return;
	ch_store_abort(up->su);
	upload_free(up);
}

static const struct ch_body_sink upload_sink = { sink_data, sink_end, sink_release };

/* ---------------------------------------------------------------------- */
/* The request                                                            */

int ch_upload_begin(struct ch_worker *w, struct ch_conn *c, struct ch_req *r)
{
	char user[CH_USERNAME_MAX + 1], boundary[CH_MP_BOUNDARY_MAX + 1];
	uint64_t max = w->cfg->upload_max_size;

	if (!ch_api_auth(w, c, r, user, sizeof(user)))
		return -1;
	if (!r->http.content_type.p ||
	    ch_mp_boundary(r->http.content_type.p, r->http.content_type.len, boundary,
			   sizeof(boundary)) < 0) {
		ch_respond_error(w, c, 400, "bad_request",
				 "the body must be multipart/form-data with a boundary");
		return -1;
	}
	if (r->http.content_length > 0 &&
	    (uint64_t)r->http.content_length > max + CH_UPLOAD_OVERHEAD) {
		ch_respond_error(w, c, 413, "too_large", "the file is over [uploads] max_size");
		return -1;
	}
	struct upload *up = calloc(1, sizeof(*up));
	if (!up) {
		ch_respond_error(w, c, 500, "internal", "out of memory");
		return -1;
	}
	up->w = w;
	up->conn = (uint32_t)(c - w->conns);
	up->gen = c->gen;
	up->max = max;
	snprintf(up->meta.owner, sizeof(up->meta.owner), "%s", user);
	ch_mp_init(&up->mp, boundary, on_part, up);
	ch_http_body_stream(r, &upload_sink, up);
	return 1;
}

/* ---------------------------------------------------------------------- */
/* Removal (chatadm rm)                                                   */

struct removal {
	struct ch_job job;
	struct ch_worker *w;
	uint32_t ctl_id;
	int result;		/* ch_store_remove's */
	char id[CH_STORE_ID_MAX + 1];
};

static void removal_answer(struct removal *rm, const char *error, int removed)
{
	struct ch_buf j;

	ch_buf_init(&j);
	if (error) {
		ch_buf_puts(&j, "{\"error\":");
		ch_json_str(&j, error, strlen(error));
		ch_buf_puts(&j, "}");
	} else {
		ch_buf_puts(&j, removed ? "{\"removed\":true}" : "{\"removed\":false}");
	}
	if (!j.failed)
		ch_handoff_answer(rm->w, CH_CTL_RMFILE, rm->ctl_id, j.p, j.len);
	ch_buf_free(&j);
	free(rm);
}

static void job_remove(struct ch_job *job)
{
	struct removal *rm = CH_POOL_CONTAINER_OF(job, struct removal, job);
	rm->result = ch_store_remove(rm->w->uploads->store, rm->id);
}

static void remove_done(struct ch_job *job)
{
	struct removal *rm = CH_POOL_CONTAINER_OF(job, struct removal, job);

	if (job->cancelled)
		removal_answer(rm, "the worker stopped first; the removal is on record: "
				   "run it again", 0);
	else if (rm->result < 0)
		removal_answer(rm, "the store could not remove it (see chatd's log)", 0);
	else
		removal_answer(rm, NULL, rm->result == 0);
}

static void removal_journalled(struct ch_worker *w, struct ch_conn *c, void *ctx, uint32_t status,
			       struct ch_payload_reader *rd)
{
	struct removal *rm = ctx;

	(void)c;
	(void)rd;
	if (status != CH_BUS_OK) {
		removal_answer(rm, ch_bus_error(status)->message, 0);
		return;
	}
	rm->job.fn = job_remove;
	rm->job.done = remove_done;
	if (ch_pool_submit(w->uploads->pool, &rm->job) < 0)
		removal_answer(rm, "the file pool is full; the removal is on record: run it again",
			       0);
}

const char *ch_upload_remove(struct ch_worker *w, uint32_t ctl_id, const char *id)
{
	struct ch_payload_writer pw;
	struct removal *rm;

	if (!ch_store_valid_id(id))
		return "not a file id (the \"file\" of an upload's answer)";
	if (!(rm = calloc(1, sizeof(*rm))))
		return "out of memory";
	rm->w = w;
	rm->ctl_id = ctl_id;
	snprintf(rm->id, sizeof(rm->id), "%s", id);
	if (ch_bus_begin(w->bus, &pw, 64 + CH_STORE_ID_MAX) < 0)
		goto busy;
	ch_payload_put_str(&pw, rm->id);
	if (ch_bus_send(w->bus, CH_REQ_FILE_REMOVE, &pw, w, NULL, removal_journalled, rm) == 0)
		return NULL;
busy:
	free(rm);
	return "the journal is busy; retry";
}

/* ---------------------------------------------------------------------- */
/* Set-up                                                                 */

int ch_upload_init(struct ch_worker *w)
{
	struct ch_uploads *u = calloc(1, sizeof(*u));
	char path[CH_PATH_MAX + 16];

	if (!u)
		return -1;
	ch_api_key_path(w->cfg, path, sizeof(path));
	if (ch_key_load_or_create(path, u->key, sizeof(u->key)) < 0)
		goto fail;
	u->store = ch_store_open(w->cfg);
	if (!u->store)
		goto fail;
	u->pool = ch_pool_create(CH_UPLOAD_THREADS, CH_UPLOAD_QUEUE);
	if (!u->pool)
		goto fail;
	w->uploads = u;
	return 0;
fail:
	ch_err("worker %d: uploads cannot start", w->index);
	ch_store_close(u->store);
	free(u);
	return -1;
}

int ch_upload_pool_fd(const struct ch_worker *w)
{
	return ch_pool_eventfd(w->uploads->pool);
}

void ch_upload_pool_done(struct ch_worker *w)
{
	/* Every job carries its own done (job->done). */
	ch_pool_reap(w->uploads->pool, NULL);
}

void ch_upload_shutdown(struct ch_worker *w)
{
	struct ch_uploads *u = w->uploads;

	if (!u)
		return;
	ch_pool_destroy(u->pool, NULL);
	ch_store_close(u->store);
	explicit_bzero(u->key, sizeof(u->key));
	free(u);
	w->uploads = NULL;
}
