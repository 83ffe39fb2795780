/*
 * Where uploaded files live: one interface over the local backend
 * (store_local.h) and the S3 backend (store_s3.h).
 *
 * An upload is written to a spool file under <dir>/tmp as it arrives
 * (ch_store_begin, ch_store_write), hashed (SHA-256) on the way, then
 * committed: the local backend renames it into place beside its metadata,
 * the S3 backend PUTs it (libs3 2.0 has no multipart upload and a PUT needs
 * its length up front, so the spool is what lets it stream without holding
 * the file in memory) and removes the spool.
 *
 * Invariants:
 *  - A file's id is CH_STORE_ID_RAND_BYTES random bytes in hex plus a
 *    sanitised extension ("." and 1..CH_STORE_EXT_MAX of [a-z0-9]); nothing
 *    the client sent reaches a path except through that sanitiser, and
 *    ch_store_valid_id is the one gate for ids coming back in URLs.
 *  - A local file is visible only once its metadata is in place (the
 *    metadata is renamed last), so a reader never sees half a file.
 *  - Blocking calls (marked "pool thread") never run on an event loop.
 *  - The content type is sniffed from the first bytes (images and PDF) and
 *    is otherwise application/octet-stream: never anything a browser would
 *    render as HTML.
 */
#ifndef CH_STORE_H
#define CH_STORE_H

#include "common/auth.h"
#include "master/config.h"

#include <stddef.h>
#include <stdint.h>

#define CH_STORE_ID_RAND_BYTES 16
#define CH_STORE_EXT_MAX 8
#define CH_STORE_ID_MAX (2 * CH_STORE_ID_RAND_BYTES + 1 + CH_STORE_EXT_MAX)
#define CH_STORE_NAME_MAX 255		/* bytes of an original name kept */
#define CH_STORE_TYPE_MAX 63
#define CH_STORE_SNIFF_BYTES 16		/* first bytes the type is sniffed from */
#define CH_STORE_SHA_HEX 64
#define CH_STORE_URL_MAX 4096
#define CH_STORE_DEFAULT_TYPE "application/octet-stream"

struct ch_store_meta {
	char id[CH_STORE_ID_MAX + 1];
	char name[CH_STORE_NAME_MAX + 1];	/* sanitised original name */
	char type[CH_STORE_TYPE_MAX + 1];
	char owner[CH_USERNAME_MAX + 1];
	uint64_t size;
	char sha256[CH_STORE_SHA_HEX + 1];	/* hex; the ETag */
	int64_t created_ms;
};

/* Why a store call failed: the HTTP status, code and message to answer. */
struct ch_store_err {
	int status;		/* 500; 502 from the S3 service, 507 out of disk */
	char code[32];
	char message[256];
};

struct ch_store;
struct ch_store_upload;

/*
 * Open the backend cfg names (at worker start, on the loop thread: it
 * only creates directories and reads the secret key file). NULL on error,
 * logged.
 */
struct ch_store *ch_store_open(const struct ch_config *cfg);
void ch_store_close(struct ch_store *s);
int ch_store_is_s3(const struct ch_store *s);

/* The directory of local files (store_local.h reads from it). */
const char *ch_store_local_dir(const struct ch_store *s);

/* Pool thread: start a spool file. NULL with *err filled. */
struct ch_store_upload *ch_store_begin(struct ch_store *s, struct ch_store_err *err);

/* Pool thread: append. 0, or -1 with *err filled. */
int ch_store_write(struct ch_store_upload *u, const void *p, size_t n, struct ch_store_err *err);

/*
 * Pool thread: finish the upload. meta comes in with name, type, owner set
 * (id from ch_store_make_id); size, sha256 and created_ms are filled here.
 * u is freed either way. 0, or -1 with *err filled and nothing stored.
 */
int ch_store_commit(struct ch_store_upload *u, struct ch_store_meta *meta,
		    struct ch_store_err *err);

/* Any thread: drop an upload and its spool file. NULL is a no-op. */
void ch_store_abort(struct ch_store_upload *u);

/*
 * The URL a client fetches a stored file with (loop thread: no I/O).
 * Local: "/files/<id>?expires=<unix s>&sig=<hex>" signed with key (see
 * ch_store_sign). S3: the public URL, or a presigned GET that expires at
 * expires_s. 0, or -1 when it does not fit.
 */
int ch_store_url(struct ch_store *s, const char *id, int64_t expires_s,
		 const unsigned char *key, size_t keylen, char *out, size_t len);

/*
 * Remove a stored file and its metadata (pool thread, or a process of its
 * own such as chatadm). 0, 1 when there was no such file, -1 on error
 * (logged). The journalled record of a removal is the caller's.
 */
int ch_store_remove(struct ch_store *s, const char *id);

/* ---- helpers shared by the backends, pure, for the tests too ---- */

/* Fill *err (message cut to fit). */
void ch_store_set_err(struct ch_store_err *err, int status, const char *code, const char *msg);

/* 1 when id has the form of ch_store_make_id's ids. */
int ch_store_valid_id(const char *id);

/* A fresh id for a file whose original name is name (its extension,
 * lowercased, kept when it is 1..CH_STORE_EXT_MAX of [a-z0-9]). -1 when
 * there is no randomness. */
int ch_store_make_id(const char *name, char id[CH_STORE_ID_MAX + 1]);

/* The original name as it is kept: the last path component (after '/' or
 * '\'), no control characters or quotes, valid UTF-8, at most
 * CH_STORE_NAME_MAX bytes (cut at a character boundary); "file" when
 * nothing is left. */
void ch_store_clean_name(const char *name, char out[CH_STORE_NAME_MAX + 1]);

/* The content type of a file from its first n bytes. */
const char *ch_store_sniff(const unsigned char *p, size_t n);

/* 1 for the types served inline (images), 0 for attachments. */
int ch_store_type_inline(const char *type);

/* HMAC-SHA256 over "<id>\n<expires_s>" with key, in hex. */
void ch_store_sign(const unsigned char *key, size_t keylen, const char *id, int64_t expires_s,
		   char out[CH_STORE_SHA_HEX + 1]);

/* 1 when sig (hex, sig_len bytes) signs id until expires_s and now_s is
 * before then; compared in constant time. */
int ch_store_check_sig(const unsigned char *key, size_t keylen, const char *id,
		       int64_t expires_s, const char *sig, size_t sig_len, int64_t now_s);

#endif
