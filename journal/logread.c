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
#include <pthread.h>
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

/* (Re)list the directory's segments. The open fd, if any, stays valid:
 * its segment keeps its start, so open_idx is found again. */
static int scan(struct ch_logread *lr)
{
	DIR *d = opendir(lr->dir);
	struct dirent *e;
	uint64_t *starts = NULL;
	size_t n = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d)) != NULL) {
		uint64_t start;
		if (ch_log_segment_parse(e->d_name, &start) < 0)
			continue;
		if (n == CH_LOGREAD_MAX_SEGMENTS)
			break;
		uint64_t *grown = realloc(starts, (n + 1) * sizeof(*grown));
		if (!grown) {
			free(starts);
			closedir(d);
			return -ENOMEM;
		}
		starts = grown;
		starts[n++] = start;
	}
	closedir(d);
	if (n)
		qsort(starts, n, sizeof(*starts), cmp_u64);
	uint64_t open_start = lr->open_idx < lr->n ? lr->starts[lr->open_idx] : UINT64_MAX;
	free(lr->starts);
	lr->starts = starts;
	lr->n = n;
	lr->open_idx = SIZE_MAX;
	for (size_t i = 0; i < n; i++)
		if (starts[i] == open_start)
			lr->open_idx = i;
	if (lr->open_idx == SIZE_MAX && lr->fd >= 0) {
		close(lr->fd);
		lr->fd = -1;
	}
	return 0;
}

struct ch_logread *ch_logread_open(const char *dir)
{
	struct ch_logread *lr = calloc(1, sizeof(*lr));

	if (!lr)
		return NULL;
	snprintf(lr->dir, sizeof(lr->dir), "%s", dir);
	lr->fd = -1;
	lr->open_idx = SIZE_MAX;
	if (scan(lr) < 0) {
		ch_logread_close(lr);
		return NULL;
	}
	return lr;
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

static int read_at(struct ch_logread *lr, uint64_t pos, void *buf, size_t cap,
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
	if (n == 0)
		return -ENOENT;	/* at or past the end of the segment holding pos */
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

int ch_logread_at(struct ch_logread *lr, uint64_t pos, void *buf, size_t cap,
		  struct ch_record *rec)
{
	int rc = read_at(lr, pos, buf, cap, rec);
	/* A reader kept across requests may not know a segment rolled since
	 * it listed them: list again once before calling anything missing. */
	if ((rc == -EBADMSG || rc == -ENOENT) && scan(lr) == 0)
		rc = read_at(lr, pos, buf, cap, rec);
	return rc;
}

static pthread_key_t thread_key;
static pthread_once_t thread_once = PTHREAD_ONCE_INIT;

static void thread_close(void *lr)
{
	ch_logread_close(lr);
}

static void thread_key_make(void)
{
	pthread_key_create(&thread_key, thread_close);
}

struct ch_logread *ch_logread_thread(const char *dir)
{
	pthread_once(&thread_once, thread_key_make);
	struct ch_logread *lr = pthread_getspecific(thread_key);
	if (lr && strcmp(lr->dir, dir) == 0)
		return lr;
	ch_logread_close(lr);
	lr = ch_logread_open(dir);
	pthread_setspecific(thread_key, lr);
	return lr;
}
