/*
 * The web UI's files, served from memory. The master loads the web root
 * once before it forks the workers (and again on reload), so every worker
 * shares the same pages copy-on-write and serving a file never touches the
 * disk from an event loop. Only what lies beneath the root is loaded: each
 * file is opened with openat2(RESOLVE_BENEATH), so a symlink or ".." that
 * leads out of the root is skipped, whatever the request later asks for.
 */
#ifndef CH_STATIC_H
#define CH_STATIC_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define CH_STATIC_MAX_BYTES (64u << 20)	/* all files together */
#define CH_STATIC_MAX_FILES 4096
#define CH_STATIC_MAX_DEPTH 16

struct ch_static_file {
	char *path;		/* "/index.html", "/static/app.js" (from the root) */
	char *data;
	size_t len;
	const char *content_type;
	char etag[40];		/* "\"<size hex>-<mtime hex>\"" */
	char last_modified[40];	/* IMF-fixdate */
};

struct ch_static {
	struct ch_static_file *files;	/* sorted by path */
	size_t n_files;
	size_t total_bytes;
};

/* Load every regular file beneath root. An unreadable root is an error;
 * a missing one gives an empty set (then every page is 404). */
int ch_static_load(struct ch_static *s, const char *root);
void ch_static_free(struct ch_static *s);

/* Look up a decoded, normalised path ("/static/app.js"). */
const struct ch_static_file *ch_static_find(const struct ch_static *s, const char *path);

/* Content type from a file name's extension; application/octet-stream when unknown. */
const char *ch_mime_type(const char *name);

#endif
