/*
 * The web root in memory: see static.h.
 */
#define _GNU_SOURCE
#include "worker/static.h"

#include "common/log.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static const struct {
	const char *ext;
	const char *type;
} mime_types[] = {
	{ "html", "text/html; charset=utf-8" },
	{ "htm", "text/html; charset=utf-8" },
	{ "css", "text/css; charset=utf-8" },
	{ "js", "text/javascript; charset=utf-8" },
	{ "mjs", "text/javascript; charset=utf-8" },
	{ "json", "application/json" },
	{ "map", "application/json" },
	{ "txt", "text/plain; charset=utf-8" },
	{ "svg", "image/svg+xml" },
	{ "png", "image/png" },
	{ "jpg", "image/jpeg" },
	{ "jpeg", "image/jpeg" },
	{ "gif", "image/gif" },
	{ "webp", "image/webp" },
	{ "ico", "image/x-icon" },
	{ "woff", "font/woff" },
	{ "woff2", "font/woff2" },
	{ "wasm", "application/wasm" },
	{ "webmanifest", "application/manifest+json" },
};

const char *ch_mime_type(const char *name)
{
	const char *dot = strrchr(name, '.');
	const char *slash = strrchr(name, '/');

	if (dot && (!slash || dot > slash)) {
		for (size_t i = 0; i < sizeof(mime_types) / sizeof(mime_types[0]); i++)
			if (strcasecmp(dot + 1, mime_types[i].ext) == 0)
				return mime_types[i].type;
	}
	return "application/octet-stream";
}

static int open_beneath(int rootfd, const char *rel)
{
	struct open_how how = {
		.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	return (int)syscall(SYS_openat2, rootfd, rel, &how, sizeof(how));
}

static int read_all(int fd, char *buf, size_t len)
{
	size_t off = 0;
	while (off < len) {
		ssize_t n = read(fd, buf + off, len - off);
		if (n < 0)
			return -1;
		if (n == 0)
			return -1;	/* shrank while we read it */
		off += (size_t)n;
	}
	return 0;
}

static int add_file(struct ch_static *s, int rootfd, const char *rel)
{
	struct stat st;
	int fd = open_beneath(rootfd, rel);

	if (fd < 0) {
		/* EXDEV: a link that leads out of the root. Skipped on purpose. */
		ch_debug("web root: skipping %s: %s", rel, strerror(errno));
		return 0;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return 0;
	}
	if (s->n_files >= CH_STATIC_MAX_FILES ||
	    s->total_bytes + (size_t)st.st_size > CH_STATIC_MAX_BYTES) {
		ch_warn("web root: %s not loaded: over %u files or %u bytes",
			rel, CH_STATIC_MAX_FILES, CH_STATIC_MAX_BYTES);
		close(fd);
		return 0;
	}
	struct ch_static_file f = { 0 };
	f.len = (size_t)st.st_size;
	f.data = malloc(f.len ? f.len : 1);
	if (asprintf(&f.path, "/%s", rel) < 0)
		f.path = NULL;
	if (!f.data || !f.path || read_all(fd, f.data, f.len) < 0) {
		ch_err("web root: reading %s: %s", rel, strerror(errno));
		free(f.data);
		free(f.path);
		close(fd);
		return -1;
	}
	close(fd);
	f.content_type = ch_mime_type(rel);
	snprintf(f.etag, sizeof(f.etag), "\"%zx-%llx\"", f.len,
		 (unsigned long long)st.st_mtim.tv_sec);
	struct tm tm;
	gmtime_r(&st.st_mtim.tv_sec, &tm);
	strftime(f.last_modified, sizeof(f.last_modified),
		 "%a, %d %b %Y %H:%M:%S GMT", &tm);

	struct ch_static_file *grown = realloc(s->files, (s->n_files + 1) * sizeof(*grown));
	if (!grown) {
		free(f.data);
		free(f.path);
		return -1;
	}
	s->files = grown;
	s->files[s->n_files++] = f;
	s->total_bytes += f.len;
	return 0;
}

/* Walk rel (a directory beneath the root, "" for the root itself). */
static int walk(struct ch_static *s, int rootfd, const char *rel, int depth)
{
	if (depth > CH_STATIC_MAX_DEPTH)
		return 0;
	int dfd = rel[0] ? open_beneath(rootfd, rel) : dup(rootfd);
	if (dfd < 0)
		return 0;
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -1;
	}
	int rc = 0;
	struct dirent *e;
	while (rc == 0 && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')	/* ".", "..", and hidden files */
			continue;
		char child[1024];
		if (snprintf(child, sizeof(child), "%s%s%s", rel, rel[0] ? "/" : "",
			     e->d_name) >= (int)sizeof(child))
			continue;
		struct stat st;
		if (fstatat(rootfd, child, &st, 0) < 0)
			continue;	/* dangling link */
		if (S_ISDIR(st.st_mode))
			rc = walk(s, rootfd, child, depth + 1);
		else if (S_ISREG(st.st_mode))
			rc = add_file(s, rootfd, child);
	}
	closedir(d);
	return rc;
}

static int cmp_file(const void *a, const void *b)
{
	return strcmp(((const struct ch_static_file *)a)->path,
		      ((const struct ch_static_file *)b)->path);
}

int ch_static_load(struct ch_static *s, const char *root)
{
	memset(s, 0, sizeof(*s));
	int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) {
		if (errno == ENOENT) {
			ch_warn("web root %s does not exist: / will answer 404", root);
			return 0;
		}
		ch_err("web root %s: %s", root, strerror(errno));
		return -1;
	}
	int rc = walk(s, rootfd, "", 0);
	close(rootfd);
	if (rc < 0) {
		ch_static_free(s);
		return -1;
	}
	qsort(s->files, s->n_files, sizeof(*s->files), cmp_file);
	ch_info("web root %s: %zu files, %zu bytes", root, s->n_files, s->total_bytes);
	return 0;
}

void ch_static_free(struct ch_static *s)
{
	for (size_t i = 0; i < s->n_files; i++) {
		free(s->files[i].data);
		free(s->files[i].path);
	}
	free(s->files);
	memset(s, 0, sizeof(*s));
}

const struct ch_static_file *ch_static_find(const struct ch_static *s, const char *path)
{
	struct ch_static_file key = { .path = (char *)path };
	if (!s->n_files)
		return NULL;
	return bsearch(&key, s->files, s->n_files, sizeof(*s->files), cmp_file);
}
