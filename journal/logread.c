/*
 * Reading records by position: see logread.h.
 */
#define _GNU_SOURCE
#include "journal/logread.h"

#include "common/log.h"
#include "journal/segment.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct ch_logread {
	char dir[1024];
	uint64_t *starts;	/* segment start positions, sorted */
	size_t n;
	size_t open_idx;	/* the segment fd holds, or SIZE_MAX */
	int fd;
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

struct ch_logread *ch_logread_open(const char *dir)
{
	struct ch_logread *lr = calloc(1, sizeof(*lr));
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!lr || !d)
		goto fail;
	snprintf(lr->dir, sizeof(lr->dir), "%s", dir);
	lr->fd = -1;
	lr->open_idx = SIZE_MAX;
	while ((e = readdir(d)) != NULL) {
		uint64_t start;
		if (ch_log_segment_parse(e->d_name, &start) < 0)
			continue;
		if (lr->n == CH_LOGREAD_MAX_SEGMENTS)
			break;
		uint64_t *grown = realloc(lr->starts, (lr->n + 1) * sizeof(*grown));
		if (!grown)
			goto fail;
		lr->starts = grown;
		lr->starts[lr->n++] = start;
	}
	closedir(d);
	if (lr->n)
		qsort(lr->starts, lr->n, sizeof(*lr->starts), cmp_u64);
	return lr;
fail:
	if (d)
		closedir(d);
	ch_logread_close(lr);
	return NULL;
}

void ch_logread_close(struct ch_logread *lr)
{
	if (!lr)
		return;
	if (lr->fd >= 0)
		close(lr->fd);
	free(lr->starts);
	free(lr);
}

/* The segment that holds pos: the last one starting at or before it. */
static int segment_fd(struct ch_logread *lr, uint64_t pos, uint64_t *start)
{
	size_t lo = 0, hi = lr->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (lr->starts[mid] <= pos)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return -ENOENT;
	size_t idx = lo - 1;
	*start = lr->starts[idx];
	if (idx == lr->open_idx)
		return lr->fd;
	char path[1100];
	if (ch_log_segment_path(path, sizeof(path), lr->dir, *start) < 0)
		return -ENAMETOOLONG;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (lr->fd >= 0)
		close(lr->fd);
	lr->fd = fd;
	lr->open_idx = idx;
	return fd;
}

int ch_logread_at(struct ch_logread *lr, uint64_t pos, void *buf, size_t cap,
		  struct ch_record *rec)
{
	uint64_t start;
	int fd = segment_fd(lr, pos, &start);
	if (fd < 0)
		return fd;
	if (cap < CH_RECORD_HDR_SIZE)
		return -ENOBUFS;
	ssize_t n = pread(fd, buf, CH_RECORD_HDR_SIZE, (off_t)(pos - start));
	if (n < 0)
		return -errno;
	/* Decoding just the header says how long the whole record is (a
	 * record is longer than its header: it is padded to 8 bytes). */
	struct ch_record hdr;
	if (ch_record_decode(buf, (size_t)n, pos, &hdr) != CH_REC_TRUNCATED ||
	    hdr.len <= CH_RECORD_HDR_SIZE)
		return -EBADMSG;
	if (hdr.len > cap)
		return -ENOBUFS;
	n = pread(fd, buf, hdr.len, (off_t)(pos - start));
	if (n < 0)
		return -errno;
	if ((size_t)n != hdr.len || ch_record_decode(buf, hdr.len, pos, rec) != CH_REC_OK)
		return -EBADMSG;
	return 0;
}
