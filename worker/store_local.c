/*
 * Uploaded files on local disk: see store_local.h.
 */
#define _GNU_SOURCE
#include "worker/store_local.h"

#include "common/buf.h"
#include "common/log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CH_STORE_META_MODE 0640

int ch_store_meta_encode(const struct ch_store_meta *m, char *out, size_t len)
{
	struct ch_buf b;
	int n = -1;

	ch_buf_init(&b);
	ch_buf_puts(&b, "{\"id\":");
	ch_json_str(&b, m->id, strlen(m->id));
	ch_buf_puts(&b, ",\"name\":");
	ch_json_str(&b, m->name, strlen(m->name));
	ch_buf_puts(&b, ",\"type\":");
	ch_json_str(&b, m->type, strlen(m->type));
	ch_buf_puts(&b, ",\"owner\":");
	ch_json_str(&b, m->owner, strlen(m->owner));
	ch_buf_printf(&b, ",\"size\":%llu,\"sha256\":\"%s\",\"created\":%lld}\n",
		      (unsigned long long)m->size, m->sha256, (long long)m->created_ms);
	if (!b.failed && b.len < len) {
		memcpy(out, b.p, b.len);
		out[b.len] = '\0';
		n = (int)b.len;
	}
	ch_buf_free(&b);
	return n;
}

static int copy_str(const cJSON *root, const char *name, char *out, size_t len)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
	if (!cJSON_IsString(v) || strlen(v->valuestring) >= len)
		return -1;
	strcpy(out, v->valuestring);
	return 0;
}

int ch_store_meta_decode(const char *text, size_t len, struct ch_store_meta *m)
{
	cJSON *root = cJSON_ParseWithLength(text, len);
	int rc = -1;

	memset(m, 0, sizeof(*m));
	if (!cJSON_IsObject(root))
		goto out;
	const cJSON *size = cJSON_GetObjectItemCaseSensitive(root, "size");
	const cJSON *created = cJSON_GetObjectItemCaseSensitive(root, "created");
	if (copy_str(root, "id", m->id, sizeof(m->id)) < 0 ||
	    copy_str(root, "name", m->name, sizeof(m->name)) < 0 ||
	    copy_str(root, "type", m->type, sizeof(m->type)) < 0 ||
	    copy_str(root, "owner", m->owner, sizeof(m->owner)) < 0 ||
	    copy_str(root, "sha256", m->sha256, sizeof(m->sha256)) < 0 ||
	    !cJSON_IsNumber(size) || size->valuedouble < 0 || !cJSON_IsNumber(created))
		goto out;
	m->size = (uint64_t)size->valuedouble;
	m->created_ms = (int64_t)created->valuedouble;
	rc = ch_store_valid_id(m->id) ? 0 : -1;
out:
	cJSON_Delete(root);
	return rc;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* fsync a directory, so the renames into it survive a crash. */
static void sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		ch_warn("fsync %s: %s", dir, strerror(errno));
	if (fd >= 0)
		close(fd);
}

int ch_store_local_commit(const char *dir, const char *spool, const struct ch_store_meta *meta,
			  struct ch_store_err *err)
{
	char path[CH_PATH_MAX + 64], mtmp[CH_PATH_MAX + 96], mpath[CH_PATH_MAX + 64];
	char text[CH_STORE_META_MAX];
	int n = ch_store_meta_encode(meta, text, sizeof(text));
	int fd = -1;

	if (n < 0 || !ch_store_valid_id(meta->id)) {
		ch_store_set_err(err, 500, "storage_error", "bad file metadata");
		return -1;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, meta->id);
	snprintf(mpath, sizeof(mpath), "%s/%s.meta", dir, meta->id);
	snprintf(mtmp, sizeof(mtmp), "%s/tmp/%s.meta.part", dir, meta->id);
	if (rename(spool, path) < 0) {
		ch_err("rename %s to %s: %s", spool, path, strerror(errno));
		goto fail;
	}
	fd = open(mtmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, CH_STORE_META_MODE);
	if (fd < 0 || write_all(fd, text, (size_t)n) < 0 || fdatasync(fd) < 0) {
		ch_err("writing %s: %s", mtmp, strerror(errno));
		goto fail_data;
	}
	close(fd);
	fd = -1;
	/* The commit point: from here on the file exists. */
	if (rename(mtmp, mpath) < 0) {
		ch_err("rename %s to %s: %s", mtmp, mpath, strerror(errno));
		goto fail_data;
	}
	sync_dir(dir);
	return 0;
fail_data:
	if (fd >= 0)
		close(fd);
	unlink(mtmp);
	unlink(path);
fail:
	ch_store_set_err(err, 500, "storage_error", "could not store the file");
	return -1;
}

int ch_store_local_get(const char *dir, const char *id, struct ch_store_meta *meta, int *fd)
{
	char path[CH_PATH_MAX + 64], text[CH_STORE_META_MAX];

	if (!ch_store_valid_id(id))
		return 1;
	snprintf(path, sizeof(path), "%s/%s.meta", dir, id);
	int mfd = open(path, O_RDONLY | O_CLOEXEC);
	if (mfd < 0) {
		if (errno == ENOENT)
			return 1;
		ch_err("open %s: %s", path, strerror(errno));
		return -1;
	}
	ssize_t n = read(mfd, text, sizeof(text));
	close(mfd);
	if (n < 0 || ch_store_meta_decode(text, (size_t)n, meta) < 0 ||
	    strcmp(meta->id, id) != 0) {
		ch_err("%s: unreadable or malformed metadata", path);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, id);
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0) {
		if (errno == ENOENT)
			return 1;	/* removed between the two opens */
		ch_err("open %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int ch_store_local_remove(const char *dir, const char *id)
{
	char path[CH_PATH_MAX + 64];
	int rc = 0;

	if (!ch_store_valid_id(id))
		return 1;
	/* Metadata first: the file stops existing for readers at once. */
	snprintf(path, sizeof(path), "%s/%s.meta", dir, id);
	if (unlink(path) < 0) {
		if (errno != ENOENT) {
			ch_err("unlink %s: %s", path, strerror(errno));
			return -1;
		}
		rc = 1;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, id);
	if (unlink(path) < 0 && errno != ENOENT) {
		ch_err("unlink %s: %s", path, strerror(errno));
		return -1;
	}
	return rc;
}
