/*
 * The S3 backend of uploaded files, with libs3 (Debian's 2.0: AWS signature
 * version 2, which MinIO, Ceph and s3rver accept; AWS itself wants version 4
 * in newer regions). Every call that talks to the service blocks (libcurl
 * inside): pool threads only. Building a presigned URL is local computation
 * and may run anywhere.
 *
 * A file's object key is its id. Its original name and type travel as the
 * object's Content-Disposition and Content-Type, so the service serves the
 * presigned URL with them; the owner and SHA-256 go in x-amz-meta-*.
 */
#ifndef CH_STORE_S3_H
#define CH_STORE_S3_H

#include "worker/store.h"

#define CH_S3_RETRIES 2			/* more tries of a retryable failure */
#define CH_S3_SECRET_MAX 256
#define CH_S3_USER_AGENT "chatd"

struct ch_store_s3;

/* Initialise libs3 (once per process) and read the secret key file. NULL
 * on error, logged. */
struct ch_store_s3 *ch_store_s3_open(const struct ch_config *cfg);
void ch_store_s3_close(struct ch_store_s3 *s3);

/* PUT the meta->size bytes of the readable file fd (from its start; fd
 * stays the caller's) as meta->id, creating the bucket first when it is
 * missing and create_bucket is on. 0, or -1 with *err: 502 and the S3
 * error code in the message. */
int ch_store_s3_put(struct ch_store_s3 *s3, int fd, const struct ch_store_meta *meta,
		    struct ch_store_err *err);

/* public_url/<id>, or a presigned GET URL valid until expires_s. */
int ch_store_s3_url(struct ch_store_s3 *s3, const char *id, int64_t expires_s, char *out,
		    size_t len);

/* DELETE the object: 0, or -1 (logged). */
int ch_store_s3_remove(struct ch_store_s3 *s3, const char *id);

#endif
