/*
 * GET /files/{id}: a stored upload, for logged-in users only.
 *
 * Who may fetch: a request with a valid token (Authorization: Bearer), or
 * one whose URL carries ?expires=<unix s>&sig=<hex>, an HMAC-SHA256 of the
 * id and expiry with the server's token key (store.h ch_store_sign), which
 * is what an upload answers with so that an <img> tag can load it.
 *
 * Local backend: Content-Type from the stored metadata (sniffed at upload,
 * never HTML), Content-Disposition with the original name (inline for
 * images, attachment otherwise), X-Content-Type-Options: nosniff and a
 * sandboxing Content-Security-Policy, ETag (the SHA-256) with
 * If-None-Match, and single byte ranges (206, 416). Reading the metadata
 * and mapping the file run on the file pool; the mapping is sent as one
 * chunk and unmapped when the send is done (readahead is started on the
 * pool, so the loop rarely waits for the disk).
 *
 * S3 backend: 302 to a fresh presigned GET URL (or the public URL).
 */
#ifndef CH_FILES_H
#define CH_FILES_H

#include "worker/http_conn.h"

#include <stdint.h>

#define CH_FILES_CACHE "Cache-Control: private, max-age=3600\r\n"
#define CH_FILES_CSP "Content-Security-Policy: default-src 'none'; sandbox\r\n"

void ch_files_get(struct ch_worker *w, struct ch_conn *c, struct ch_req *r, const char *path);

/*
 * A Range header value against a file of size bytes: 1 with [*first,
 * *last] (inclusive) for one satisfiable range, 0 to ignore it (malformed,
 * not bytes, or several ranges: the whole file is served), -1 when no byte
 * of it exists (416).
 */
int ch_files_parse_range(const char *v, size_t len, uint64_t size, uint64_t *first,
			 uint64_t *last);

/* Content-Disposition's value for name into out: an ASCII fallback
 * filename= and the exact filename*=UTF-8''... (RFC 6266). -1 when it
 * does not fit. */
int ch_files_disposition(const char *name, int is_inline, char *out, size_t len);

#endif
