/*
 * The local backend of uploaded files: <dir>/<id> holds the bytes and
 * <dir>/<id>.meta their metadata (a small JSON object: name, type, owner,
 * size, sha256, created). The data file is renamed into place first and the
 * metadata last, so a file exists for readers exactly when its metadata
 * does; removal takes the metadata away first for the same reason. Every
 * function here does file I/O: pool threads only.
 */
#ifndef CH_STORE_LOCAL_H
#define CH_STORE_LOCAL_H

#include "worker/store.h"

#define CH_STORE_META_MAX 4096		/* bytes of a .meta file */

/* Move the finished spool file into place and write its metadata. */
int ch_store_local_commit(const char *dir, const char *spool, const struct ch_store_meta *meta,
			  struct ch_store_err *err);

/* A stored file's metadata and an open read-only descriptor on its bytes:
 * 0; 1 when there is no such file; -1 on error (logged). */
int ch_store_local_get(const char *dir, const char *id, struct ch_store_meta *meta, int *fd);

/* Remove a file: 0; 1 when there was none; -1 on error (logged). */
int ch_store_local_remove(const char *dir, const char *id);

/* The metadata as JSON text into out: its length, or -1 when it does not fit. */
int ch_store_meta_encode(const struct ch_store_meta *m, char *out, size_t len);

/* Parse JSON text made by ch_store_meta_encode: 0, or -1 when malformed. */
int ch_store_meta_decode(const char *text, size_t len, struct ch_store_meta *m);

#endif
