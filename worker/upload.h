/*
 * POST /api/upload (PROTOCOL.md): a multipart/form-data body whose field
 * `f` is a file, streamed to the store (worker/store.h) as it arrives and
 * answered 201 {"file", "filename", "content_type", "size", "url"}.
 *
 * How the body flows: the connection hands body bytes to the multipart
 * parser (worker/multipart.h) as they arrive; the bytes of `f` collect in a
 * buffer of CH_UPLOAD_CHUNK bytes that a pool thread writes to the store
 * while the next one fills. When both are full the connection stops
 * reading (worker/http_conn.h back-pressure) until the write is done, so a
 * worker holds about two chunks per upload whatever the file's size.
 *
 * Limits: [uploads] max_size for the file; a Content-Length over it plus
 * CH_UPLOAD_OVERHEAD is refused with 413 before the body is read, a body
 * that grows past it is refused mid-stream (and the connection closed).
 * Fields other than `f` are read and ignored, at most CH_UPLOAD_OVERHEAD
 * bytes of them. Only logged-in users upload (401 otherwise, before the
 * body is read).
 *
 * The store's work (spool writes, the S3 PUT) runs on the worker's file
 * pool (CH_UPLOAD_THREADS threads), never on the loop, and never queued
 * behind password hashes or history reads.
 */
#ifndef CH_UPLOAD_H
#define CH_UPLOAD_H

#include "common/auth.h"
#include "worker/http_conn.h"

#define CH_UPLOAD_CHUNK (512 * 1024)	/* bytes handed to the store at a time */
#define CH_UPLOAD_OVERHEAD (64 * 1024)	/* multipart framing and other fields */
#define CH_UPLOAD_THREADS 2		/* per worker: store writes and S3 calls */
#define CH_UPLOAD_QUEUE 1024		/* store jobs waiting for a thread */

struct ch_store;
struct ch_pool;

/* Per worker: the store, its pool, and the key that signs file URLs. */
struct ch_uploads {
	struct ch_store *store;
	struct ch_pool *pool;
	unsigned char key[CH_KEY_MIN_BYTES];
};

/* Open the store and start the file pool (w->uploads). -1 on error, logged. */
int ch_upload_init(struct ch_worker *w);

/* The worker is exiting: stop the pool (jobs still queued are dropped and
 * their spool files removed) and close the store. */
void ch_upload_shutdown(struct ch_worker *w);

/* The file pool's eventfd (for the loop to poll). */
int ch_upload_pool_fd(const struct ch_worker *w);

/* The file pool's eventfd fired: finish the jobs that are done. */
void ch_upload_pool_done(struct ch_worker *w);

/* The URL a client fetches stored file id with (ch_store_url), valid for
 * [uploads] url_expiry from now. 0, or -1 when it does not fit. */
int ch_upload_url(struct ch_worker *w, const char *id, char *out, size_t len);

/* The begin handler of POST /api/upload (see ch_route_begin). */
int ch_upload_begin(struct ch_worker *w, struct ch_conn *c, struct ch_req *r);

/*
 * chatadm rm FILE_ID, asked through the master's control channel (ctl_id):
 * the journal records the removal (CH_REQ_FILE_REMOVE), then the file pool
 * deletes the bytes and the answer goes back with ch_handoff_answer. The
 * record comes first, so a removal is never lost (a crash between the two
 * leaves a file whose removal is on record: removing it again is safe).
 * NULL when started, else why not.
 */
const char *ch_upload_remove(struct ch_worker *w, uint32_t ctl_id, const char *id);

#endif
