/*
 * The log on disk: segment files, the writer, readers and recovery. See
 * segment.h for the layout, the invariants and the error contract.
 *
 * Sections: segment names and listing; the scan buffer that readers and
 * recovery share; the writer; readers; recovery.
 */
#include "journal/segment.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/failpoint.h"
#include "common/log.h"

#define SEG_DIGITS 20
#define SEG_SUFFIX ".log"
#define SEG_MODE 0600		/* segment files: the journal's user only */
#define DIR_MODE 0700		/* the log directory, likewise */
/* The scan buffer holds at least one largest record; twice that so a
 * refill moves at most one record's worth of bytes for every buffer read. */
#define SCAN_BUF_SIZE (2 * (size_t)CH_RECORD_MAX)
/* A reader's first read; it doubles up to SCAN_BUF_SIZE, so a history
 * lookup of a few records does not read megabytes, and replay soon reads
 * in large blocks. */
#define SCAN_FIRST_READ ((size_t)64 << 10)

_Static_assert(SEG_DIGITS + sizeof(SEG_SUFFIX) - 1 == CH_LOG_SEGMENT_NAME_LEN,
	       "segment name length");

/* ---- segment names and listing ----------------------------------------- */

int ch_log_segment_path(char *out, size_t cap, const char *dir, uint64_t start)
{
	int n = snprintf(out, cap, "%s/%020" PRIu64 SEG_SUFFIX, dir, start);

	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

/* Parse "%020" PRIu64 ".log" exactly; anything else is not a segment. */
int ch_log_segment_parse(const char *name, uint64_t *start)
{
	uint64_t v = 0;

	if (strlen(name) != CH_LOG_SEGMENT_NAME_LEN ||
	    strcmp(name + SEG_DIGITS, SEG_SUFFIX) != 0)
		return -1;
	for (int i = 0; i < SEG_DIGITS; i++) {
		unsigned d = (unsigned)(name[i] - '0');

		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*start = v;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Start positions of dir's segments, ascending, in a malloc'ed array.
 * -ENOENT (not logged) when dir does not exist. */
static int list_segments(const char *dir, uint64_t **starts, size_t *n)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	uint64_t *v = NULL, start;
	size_t len = 0, cap = 0;
	int rc = 0;

	*starts = NULL;
	*n = 0;
	if (d == NULL) {
		rc = -errno;
		if (rc != -ENOENT)
			ch_err("opendir %s: %s", dir, strerror(errno));
		return rc;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (ch_log_segment_parse(de->d_name, &start) != 0)
			continue;
		if (len == cap) {
			size_t ncap = cap ? 2 * cap : 16;
			uint64_t *nv = realloc(v, ncap * sizeof(*v));

			if (nv == NULL) {
				rc = -ENOMEM;
				goto fail;
			}
			v = nv;
			cap = ncap;
		}
		v[len++] = start;
	}
	if (errno != 0) {
		rc = -errno;
		ch_err("readdir %s: %s", dir, strerror(errno));
		goto fail;
	}
	closedir(d);
	if (len > 1)	/* qsort wants a non-NULL base even for 0 items */
		qsort(v, len, sizeof(*v), cmp_u64);
	*starts = v;
	*n = len;
	return 0;
fail:
	closedir(d);
	free(v);
	return rc;
}

/* fsync a directory (or a file) by path. */
static int fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0) {
		ch_err("open %s: %s", path, strerror(errno));
		return -errno;
	}
	if (fsync(fd) != 0) {
		rc = -errno;
		ch_err("fsync %s: %s", path, strerror(errno));
	}
	close(fd);
	return rc;
}

/* ---- scan buffer: buffered reading of one segment ---------------------- */

struct seg_scan {
	int fd;			/* -1 when no segment is open */
	uint64_t start;		/* log position of the file's byte 0 */
	char path[PATH_MAX];
	uint8_t *buf;
	uint64_t buf_off;	/* file offset of buf[0] */
	size_t buf_len;		/* valid bytes in buf */
	size_t read_size;	/* size of the next read; grows to the buffer */
};

enum scan_result {
	SCAN_END,	/* no bytes at this offset: end of the file */
	SCAN_RECORD,	/* a valid record */
	SCAN_PARTIAL,	/* a record that runs past the end of the file */
	SCAN_BAD	/* bytes that are not a record */
};

static int scan_init(struct seg_scan *s)
{
	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->buf = malloc(SCAN_BUF_SIZE);
	return s->buf != NULL ? 0 : -ENOMEM;
}

static void scan_close_file(struct seg_scan *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

static void scan_free(struct seg_scan *s)
{
	scan_close_file(s);
	free(s->buf);
	s->buf = NULL;
}

/* Open the segment starting at start. -ENOENT is returned unlogged. */
static int scan_open(struct seg_scan *s, const char *dir, uint64_t start)
{
	int rc = ch_log_segment_path(s->path, sizeof(s->path), dir, start);

	if (rc != 0)
		return rc;
	scan_close_file(s);
	s->fd = open(s->path, O_RDONLY | O_CLOEXEC);
	if (s->fd < 0) {
		rc = -errno;
		if (rc != -ENOENT)
			ch_err("open %s: %s", s->path, strerror(errno));
		return rc;
	}
	s->start = start;
	s->buf_off = 0;
	s->buf_len = 0;
	s->read_size = SCAN_FIRST_READ;
	return 0;
}

/*
 * Make the file's bytes [off, off + need) available in the buffer, as far
 * as the file has them. *p points at off; *avail is how many bytes from off
 * the buffer holds (less than need only at the end of the file). need is at
 * most CH_RECORD_MAX. Bytes past the buffered ones are always read afresh,
 * so a file that grew since is seen to have grown.
 */
static int scan_view(struct seg_scan *s, uint64_t off, size_t need,
		     const uint8_t **p, size_t *avail)
{
	size_t have = 0;

	if (off >= s->buf_off && off - s->buf_off <= s->buf_len) {
		size_t skip = (size_t)(off - s->buf_off);

		have = s->buf_len - skip;
		if (have >= need) {
			*p = s->buf + skip;
			*avail = have;
			return 0;
		}
		memmove(s->buf, s->buf + skip, have);
	}
	s->buf_off = off;
	s->buf_len = have;
	while (s->buf_len < need) {
		size_t want = s->read_size;
		ssize_t n;

		if (want < need - s->buf_len)
			want = need - s->buf_len;
		if (want > SCAN_BUF_SIZE - s->buf_len)
			want = SCAN_BUF_SIZE - s->buf_len;
		n = pread(s->fd, s->buf + s->buf_len, want, (off_t)(off + s->buf_len));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ch_err("pread %s: %s", s->path, strerror(errno));
			return -errno;
		}
		if (n == 0)
			break;
		s->buf_len += (size_t)n;
		if (s->read_size < SCAN_BUF_SIZE)
			s->read_size *= 2;
	}
	*p = s->buf;
	*avail = s->buf_len;
	return 0;
}

/* Decode the record at file offset off: an enum scan_result, or a negative
 * errno. *st says why on SCAN_BAD and SCAN_PARTIAL. */
static int scan_at(struct seg_scan *s, uint64_t off, struct ch_record *rec,
		   enum ch_record_status *st)
{
	const uint8_t *p;
	size_t avail;
	int rc = scan_view(s, off, CH_RECORD_HDR_SIZE, &p, &avail);

	if (rc != 0)
		return rc;
	if (avail == 0)
		return SCAN_END;
	*st = ch_record_decode(p, avail, s->start + off, rec);
	if (*st == CH_REC_TRUNCATED && rec->len > avail) {
		/* The header told us the length: read the rest. */
		rc = scan_view(s, off, rec->len, &p, &avail);
		if (rc != 0)
			return rc;
		*st = ch_record_decode(p, avail, s->start + off, rec);
	}
	if (*st == CH_REC_OK)
		return SCAN_RECORD;
	return *st == CH_REC_TRUNCATED ? SCAN_PARTIAL : SCAN_BAD;
}

/* Is there a valid record anywhere at or after off (8-byte steps)?
 * 1 yes (*found = its offset), 0 no, or a negative errno. */
static int scan_find_valid(struct seg_scan *s, uint64_t off, uint64_t *found)
{
	struct ch_record rec;
	enum ch_record_status st;

	for (;; off += CH_RECORD_ALIGN) {
		int res = scan_at(s, off, &rec, &st);

		if (res < 0)
			return res;
		if (res == SCAN_END)
			return 0;
		if (res == SCAN_RECORD) {
			*found = off;
			return 1;
		}
	}
}

/* ---- writer ------------------------------------------------------------ */

struct ch_log_writer {
	char dir[PATH_MAX];
	char path[PATH_MAX];	/* the current segment, for messages */
	int dir_fd;		/* for fsyncing new segment names */
	int fd;			/* the current (last) segment */
	uint64_t seg_start;	/* its first log position */
	uint64_t seg_len;	/* bytes in it: the end of the last good append */
	uint64_t seg_limit;	/* roll once seg_len reaches this */
	uint64_t synced_end;	/* log positions below this are durable */
	int err;		/* 0, or the -errno that broke the writer */
};

/* Every fsync the writer makes goes through the log_fsync failpoint. */
static int writer_fsync(int fd, int datasync)
{
	enum ch_fp_action fp = CH_FAILPOINT("log_fsync");

	if (fp != CH_FP_NONE) {
		errno = ch_failpoint_errno(fp);
		return -1;
	}
	return datasync ? fdatasync(fd) : fsync(fd);
}

/* pwrite through the log_write failpoint (short: a real partial write). */
static ssize_t writer_pwrite(int fd, const void *p, size_t n, uint64_t off)
{
	enum ch_fp_action fp = CH_FAILPOINT("log_write");

	if (fp == CH_FP_SHORT) {
		n /= 2;
	} else if (fp != CH_FP_NONE) {
		errno = ch_failpoint_errno(fp);
		return -1;
	}
	return pwrite(fd, p, n, (off_t)off);
}

/* The writer is unusable from now on; see segment.h for why. */
static int writer_fail(struct ch_log_writer *w, int rc)
{
	if (w->err == 0)
		w->err = rc;
	return rc;
}

/* Create the segment starting at start and make its name durable.
 * Returns the new fd, or a negative errno. */
static int writer_create_segment(struct ch_log_writer *w, uint64_t start,
				 char *path, size_t cap)
{
	int fd, rc = ch_log_segment_path(path, cap, w->dir, start);

	if (rc != 0)
		return rc;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, SEG_MODE);
	if (fd < 0) {
		ch_err("open %s: %s", path, strerror(errno));
		return -errno;
	}
	/* Without this a crash could lose the whole new file, name and all,
	 * even after its data had been fdatasync'ed. */
	if (writer_fsync(w->dir_fd, 0) != 0) {
		rc = -errno;
		ch_err("fsync %s: %s", w->dir, strerror(errno));
		close(fd);
		return rc;
	}
	return fd;
}

/* mkdir dir if needed; a new directory's name is fsync'ed into its parent. */
static int writer_make_dir(const char *dir)
{
	char parent[PATH_MAX];

	if (mkdir(dir, DIR_MODE) != 0) {
		if (errno == EEXIST)
			return 0;
		ch_err("mkdir %s: %s", dir, strerror(errno));
		return -errno;
	}
	snprintf(parent, sizeof(parent), "%s", dir);
	return fsync_path(dirname(parent));
}

/* Continue in the last existing segment, or start the log at 0. */
static int writer_open_last(struct ch_log_writer *w)
{
	uint64_t *starts;
	size_t n;
	struct stat st;
	int rc = list_segments(w->dir, &starts, &n);

	if (rc != 0)
		return rc;
	if (n == 0) {
		w->seg_start = 0;
		w->fd = writer_create_segment(w, 0, w->path, sizeof(w->path));
		return w->fd < 0 ? w->fd : 0;
	}
	w->seg_start = starts[n - 1];
	free(starts);
	rc = ch_log_segment_path(w->path, sizeof(w->path), w->dir, w->seg_start);
	if (rc != 0)
		return rc;
	w->fd = open(w->path, O_WRONLY | O_CLOEXEC);
	if (w->fd < 0) {
		ch_err("open %s: %s", w->path, strerror(errno));
		return -errno;
	}
	if (fstat(w->fd, &st) != 0) {
		ch_err("fstat %s: %s", w->path, strerror(errno));
		return -errno;
	}
	w->seg_len = (uint64_t)st.st_size;
	if (w->seg_len % CH_RECORD_ALIGN != 0) {
		ch_err("%s: size %" PRIu64 " is not a multiple of %u; run recovery "
		       "before opening the log for writing", w->path, w->seg_len,
		       CH_RECORD_ALIGN);
		return -EBADMSG;
	}
	/* What a previous process appended may still be only in the page
	 * cache; sync it so synced_end is true from the start. */
	if (writer_fsync(w->fd, 1) != 0) {
		ch_err("fdatasync %s: %s", w->path, strerror(errno));
		return -errno;
	}
	return 0;
}

int ch_log_writer_open(struct ch_log_writer **out, const char *dir,
		       const struct ch_log_writer_opts *opts)
{
	struct ch_log_writer *w = calloc(1, sizeof(*w));
	int rc;

	*out = NULL;
	if (w == NULL)
		return -ENOMEM;
	w->fd = -1;
	w->dir_fd = -1;
	w->seg_limit = opts != NULL && opts->segment_size != 0 ?
		       opts->segment_size : CH_LOG_SEGMENT_SIZE_DEFAULT;
	if (w->seg_limit < CH_LOG_SEGMENT_SIZE_MIN) {
		ch_err("log %s: segment size %" PRIu64 " is below the minimum %llu",
		       dir, w->seg_limit, CH_LOG_SEGMENT_SIZE_MIN);
		rc = -EINVAL;
		goto fail;
	}
	if (snprintf(w->dir, sizeof(w->dir), "%s", dir) >= (int)sizeof(w->dir)) {
		rc = -ENAMETOOLONG;
		goto fail;
	}
	rc = writer_make_dir(dir);
	if (rc != 0)
		goto fail;
	w->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (w->dir_fd < 0) {
		rc = -errno;
		ch_err("open %s: %s", dir, strerror(errno));
		goto fail;
	}
	rc = writer_open_last(w);
	if (rc != 0)
		goto fail;
	w->synced_end = ch_log_end(w);
	*out = w;
	return 0;
fail:
	ch_log_writer_close(w);
	return rc;
}

/* Whole records, each at the position after the one before? */
static int check_batch(const struct ch_log_writer *w, const uint8_t *p, size_t len)
{
	uint64_t pos = ch_log_end(w);
	size_t off = 0;

	while (off < len) {
		struct ch_record rec;
		enum ch_record_status st =
			ch_record_check_header(p + off, len - off, pos + off, &rec);

		if (st != CH_REC_OK) {
			ch_err("log append: batch of %zu bytes at %" PRIu64
			       ": record at batch offset %zu: %s", len, pos, off,
			       ch_record_status_name(st));
			return -EINVAL;
		}
		off += rec.len;
	}
	return 0;
}

/* Loop on partial writes: a short count is not an error by itself. */
static int writer_write_all(struct ch_log_writer *w, const uint8_t *p, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = writer_pwrite(w->fd, p + done, len - done, w->seg_len + done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			ch_err("pwrite %s: %s", w->path, strerror(errno));
			return -errno;
		}
		if (n == 0) {
			/* No progress; looping would spin. */
			ch_err("pwrite %s: wrote nothing (%zu of %zu bytes done)",
			       w->path, done, len);
			return -EIO;
		}
		done += (size_t)n;
	}
	return 0;
}

/*
 * Remove a failed append's partial bytes, so the file ends at the last good
 * record again. Not fsync'ed: the writer is finished, and if this is lost
 * in a crash, recovery cuts the same bytes as a torn tail.
 */
static void writer_rollback(struct ch_log_writer *w)
{
	enum ch_fp_action fp = CH_FAILPOINT("log_truncate");
	int rc;

	if (fp != CH_FP_NONE) {
		errno = ch_failpoint_errno(fp);
		rc = -1;
	} else {
		rc = ftruncate(w->fd, (off_t)w->seg_len);
	}
	if (rc != 0)
		ch_err("ftruncate %s to %" PRIu64 ": %s; the failed append stays "
		       "until recovery", w->path, w->seg_len, strerror(errno));
}

int ch_log_append(struct ch_log_writer *w, const void *recs, size_t len)
{
	int rc;

	if (w->err != 0)
		return w->err;
	if (len == 0)
		return 0;
	rc = check_batch(w, recs, len);
	if (rc != 0)
		return rc;
	if (w->seg_len >= w->seg_limit) {
		rc = ch_log_roll(w);
		if (rc != 0)
			return rc;
	}
	rc = writer_write_all(w, recs, len);
	if (rc != 0) {
		writer_rollback(w);
		return writer_fail(w, rc);
	}
	w->seg_len += len;
	return 0;
}

int ch_log_sync(struct ch_log_writer *w)
{
	int rc;

	if (w->err != 0)
		return w->err;
	if (w->synced_end == ch_log_end(w))
		return 0;
	if (writer_fsync(w->fd, 1) != 0) {
		rc = -errno;
		ch_err("fdatasync %s: %s; the journal must stop", w->path,
		       strerror(errno));
		return writer_fail(w, rc);
	}
	w->synced_end = ch_log_end(w);
	return 0;
}

int ch_log_roll(struct ch_log_writer *w)
{
	char path[PATH_MAX];
	int fd, rc;

	if (w->err != 0)
		return w->err;
	if (w->seg_len == 0)
		return 0;
	/* Only the last segment may have a torn tail: finish this one first. */
	rc = ch_log_sync(w);
	if (rc != 0)
		return rc;
	fd = writer_create_segment(w, ch_log_end(w), path, sizeof(path));
	if (fd < 0)
		return writer_fail(w, fd);
	close(w->fd);
	w->fd = fd;
	memcpy(w->path, path, sizeof(path));
	w->seg_start += w->seg_len;
	w->seg_len = 0;
	return 0;
}

uint64_t ch_log_end(const struct ch_log_writer *w)
{
	return w->seg_start + w->seg_len;
}

uint64_t ch_log_synced_end(const struct ch_log_writer *w)
{
	return w->synced_end;
}

int ch_log_writer_error(const struct ch_log_writer *w)
{
	return w->err;
}

void ch_log_writer_close(struct ch_log_writer *w)
{
	if (w == NULL)
		return;
	if (w->fd >= 0)
		close(w->fd);
	if (w->dir_fd >= 0)
		close(w->dir_fd);
	free(w);
}

/* ---- readers ----------------------------------------------------------- */

struct ch_log_reader {
	char dir[PATH_MAX];
	struct seg_scan scan;	/* scan.fd < 0 until a segment is open */
	uint64_t pos;		/* the next record's log position */
	uint64_t limit;
};

/* Position the reader in the segment holding from. */
static int reader_seek(struct ch_log_reader *r, uint64_t from)
{
	uint64_t *starts;
	size_t n, i;
	struct stat st;
	int rc = list_segments(r->dir, &starts, &n);

	if (rc == -ENOENT || (rc == 0 && n == 0))
		return from == 0 ? 0 : -ENOENT;	/* next() opens it later */
	if (rc != 0)
		return rc;
	for (i = n; i > 0 && starts[i - 1] > from; i--)
		;
	if (i == 0) {
		rc = -ENOENT;	/* before the first segment */
		goto out;
	}
	rc = scan_open(&r->scan, r->dir, starts[i - 1]);
	if (rc != 0)
		goto out;
	if (fstat(r->scan.fd, &st) != 0) {
		rc = -errno;
		ch_err("fstat %s: %s", r->scan.path, strerror(errno));
		goto out;
	}
	if (from - starts[i - 1] > (uint64_t)st.st_size)
		rc = -ERANGE;
out:
	free(starts);
	return rc;
}

int ch_log_reader_open(struct ch_log_reader **out, const char *dir, uint64_t from)
{
	struct ch_log_reader *r = calloc(1, sizeof(*r));
	int rc;

	*out = NULL;
	if (r == NULL)
		return -ENOMEM;
	rc = scan_init(&r->scan);
	if (rc != 0)
		goto fail;
	if (snprintf(r->dir, sizeof(r->dir), "%s", dir) >= (int)sizeof(r->dir)) {
		rc = -ENAMETOOLONG;
		goto fail;
	}
	r->pos = from;
	r->limit = UINT64_MAX;
	rc = reader_seek(r, from);
	if (rc != 0)
		goto fail;
	*out = r;
	return 0;
fail:
	ch_log_reader_close(r);
	return rc;
}

void ch_log_reader_set_limit(struct ch_log_reader *r, uint64_t limit)
{
	r->limit = limit;
}

uint64_t ch_log_reader_pos(const struct ch_log_reader *r)
{
	return r->pos;
}

/* Start of the first segment after the one open: 0, or -ENOENT if none. */
static int reader_next_segment(struct ch_log_reader *r, uint64_t *next)
{
	uint64_t *starts;
	size_t n;
	int rc = list_segments(r->dir, &starts, &n);

	if (rc != 0)
		return rc;
	rc = -ENOENT;
	for (size_t i = 0; i < n; i++) {
		if (starts[i] > r->scan.start) {
			*next = starts[i];
			rc = 0;
			break;
		}
	}
	free(starts);
	return rc;
}

/*
 * At the end of the open segment (or before a record that runs past it).
 * If no later segment exists, this is the end of the log for now. If one
 * does, the writer has finished with this one (it rolls only after its
 * last write here), so read once more to see those last bytes, and move
 * on only if the next segment starts exactly where this one ends.
 * Returns 1 to go on reading, 0 for the end, or a negative errno.
 */
static int reader_at_segment_end(struct ch_log_reader *r, struct ch_record *rec,
				 int *have_record)
{
	enum ch_record_status st = CH_REC_OK;
	uint64_t next, off = r->pos - r->scan.start;
	int res, rc = reader_next_segment(r, &next);

	*have_record = 0;
	if (rc == -ENOENT)
		return 0;
	if (rc != 0)
		return rc;
	res = scan_at(&r->scan, off, rec, &st);
	if (res < 0)
		return res;
	if (res == SCAN_RECORD) {
		*have_record = 1;
		return 1;
	}
	if (res != SCAN_END || next != r->pos) {
		ch_err("log %s at offset %" PRIu64 ": %s", r->scan.path, off,
		       res == SCAN_END ? "next segment does not start here"
				       : ch_record_status_name(st));
		return -EBADMSG;
	}
	rc = scan_open(&r->scan, r->dir, next);
	return rc != 0 ? rc : 1;
}

int ch_log_reader_next(struct ch_log_reader *r, struct ch_record *rec)
{
	enum ch_record_status st = CH_REC_OK;
	int res, rc, have;

	for (;;) {
		if (r->pos >= r->limit)
			return 0;
		if (r->scan.fd < 0) {
			rc = scan_open(&r->scan, r->dir, r->pos);
			if (rc != 0)
				return rc == -ENOENT ? 0 : rc;
		}
		res = scan_at(&r->scan, r->pos - r->scan.start, rec, &st);
		if (res < 0)
			return res;
		have = res == SCAN_RECORD;
		if (res == SCAN_BAD) {
			ch_err("log %s at offset %" PRIu64 ": %s", r->scan.path,
			       r->pos - r->scan.start, ch_record_status_name(st));
			return -EBADMSG;
		}
		if (res != SCAN_RECORD) {
			rc = reader_at_segment_end(r, rec, &have);
			if (rc <= 0)
				return rc;
		}
		if (have) {
			if (rec->len > r->limit - r->pos)
				return 0;	/* a limit inside a record */
			r->pos += rec->len;
			return 1;
		}
	}
}

void ch_log_reader_close(struct ch_log_reader *r)
{
	if (r == NULL)
		return;
	scan_free(&r->scan);
	free(r);
}

/* ---- recovery ---------------------------------------------------------- */

struct recovery {
	const char *dir;
	unsigned flags;
	ch_log_record_fn *fn;
	void *arg;
	struct ch_log_recover_report *rep;
	uint64_t *starts;
	size_t n;
	struct seg_scan scan;
};

/* Cut segment start to keep bytes, durably. */
static int cut_segment(const char *dir, uint64_t start, uint64_t keep)
{
	char path[PATH_MAX];
	int fd, rc = ch_log_segment_path(path, sizeof(path), dir, start);

	if (rc != 0)
		return rc;
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		ch_err("open %s: %s", path, strerror(errno));
		return -errno;
	}
	if (ftruncate(fd, (off_t)keep) != 0) {
		rc = -errno;
		ch_err("ftruncate %s: %s", path, strerror(errno));
	} else if (fsync(fd) != 0) {
		rc = -errno;
		ch_err("fsync %s: %s", path, strerror(errno));
	}
	close(fd);
	return rc;
}

/* Size of segment start in bytes, or a negative errno. */
static int64_t segment_size(const char *dir, uint64_t start)
{
	char path[PATH_MAX];
	struct stat st;
	int rc = ch_log_segment_path(path, sizeof(path), dir, start);

	if (rc != 0)
		return rc;
	if (stat(path, &st) != 0) {
		ch_err("stat %s: %s", path, strerror(errno));
		return -errno;
	}
	return st.st_size;
}

/*
 * Cut the log at segment i, offset off: segments after i are removed
 * (last first, so a crash half-way leaves a shorter but consistent log),
 * then segment i is cut to off. With remove_i, segment i goes too.
 * Counts bytes_cut and segments_removed; with act 0 it only counts.
 */
static int recovery_cut(struct recovery *r, size_t i, uint64_t off, int remove_i,
			int act)
{
	struct ch_log_recover_report *rep = r->rep;
	char path[PATH_MAX];
	int rc;

	for (size_t j = r->n; j-- > i + (remove_i ? 0 : 1);) {
		int64_t size = segment_size(r->dir, r->starts[j]);

		if (size < 0)
			return (int)size;
		rep->bytes_cut += (uint64_t)size;
		rep->segments_removed++;
		if (!act)
			continue;
		rc = ch_log_segment_path(path, sizeof(path), r->dir, r->starts[j]);
		if (rc == 0 && unlink(path) != 0) {
			rc = -errno;
			ch_err("unlink %s: %s", path, strerror(errno));
		}
		if (rc != 0)
			return rc;
	}
	if (rep->segments_removed > 0 && act) {
		rc = fsync_path(r->dir);
		if (rc != 0)
			return rc;
	}
	if (!remove_i) {
		int64_t size = segment_size(r->dir, r->starts[i]);

		if (size < 0)
			return (int)size;
		rep->bytes_cut += (uint64_t)size - off;
		if (act)
			return cut_segment(r->dir, r->starts[i], off);
	}
	return 0;
}

/* "in X at offset O (log position P): why", or for a misplaced segment
 * "X should start at log position P, where the one before ends". */
static void describe_damage(const struct recovery *r, uint64_t off,
			    const char *why, int gap, char *out, size_t cap)
{
	const char *name = strrchr(r->scan.path, '/') + 1;

	if (gap)
		snprintf(out, cap, "in the segment list: %s should start at "
			 "log position %" PRIu64
			 ", where the segment before ends (one is missing or "
			 "misnamed)", name, r->rep->bad_pos);
	else
		snprintf(out, cap, "in %s at offset %" PRIu64 " (log position %"
			 PRIu64 "): %s", name, off, r->rep->bad_pos, why);
}

/*
 * Damage in segment i at offset off (why says what). With gap, segment i
 * itself is misplaced (off is 0) and the valid log ends at gap_pos, the end
 * of the segment before. Decide torn tail / refuse / repair, act, report.
 */
static int recovery_damage(struct recovery *r, size_t i, uint64_t off,
			   const char *why, int gap, uint64_t gap_pos)
{
	struct ch_log_recover_report *rep = r->rep;
	int dry = (r->flags & CH_LOG_RECOVER_DRY_RUN) != 0;
	const char *dry_note = dry ? " (dry run: nothing changed)" : "";
	char where[CH_LOG_MESSAGE_MAX / 2];
	uint64_t found = 0;
	int rc, later = 0;

	rep->bad_pos = gap ? gap_pos : r->starts[i] + off;
	rep->end_pos = rep->bad_pos;
	describe_damage(r, off, why, gap, where, sizeof(where));
	if (!gap) {
		later = scan_find_valid(&r->scan, off + CH_RECORD_ALIGN, &found);
		if (later < 0)
			return later;
	}
	if (!gap && !later && i == r->n - 1) {
		rep->outcome = CH_LOG_TAIL_CUT;
		rc = recovery_cut(r, i, off, 0, !dry);
		snprintf(rep->message, sizeof(rep->message), "torn tail %s: cut %"
			 PRIu64 " bytes%s", where, rep->bytes_cut, dry_note);
		ch_warn("log %s: %s", r->dir, rep->message);
		return rc;
	}
	if (!(r->flags & CH_LOG_RECOVER_REPAIR)) {
		rep->outcome = CH_LOG_REFUSED;
		rc = recovery_cut(r, i, off, gap, 0);
		if (rc != 0)
			return rc;
		snprintf(rep->message, sizeof(rep->message), "corruption %s%s; "
			 "refusing to start (a repair would cut %" PRIu64 " bytes, "
			 "%" PRIu64 " segment file(s) of them whole)", where,
			 later ? ", with valid records after it" : "",
			 rep->bytes_cut, rep->segments_removed);
		ch_err("log %s: %s", r->dir, rep->message);
		return -EBADMSG;
	}
	rep->outcome = CH_LOG_REPAIRED;
	rc = recovery_cut(r, i, off, gap, !dry);
	snprintf(rep->message, sizeof(rep->message), "corruption %s; repaired: "
		 "cut %" PRIu64 " bytes, removed %" PRIu64 " segment file(s)%s",
		 where, rep->bytes_cut, rep->segments_removed, dry_note);
	ch_warn("log %s: %s", r->dir, rep->message);
	return rc;
}

/* Scan segment i. 0: valid to its end (*end = its size); 1: damage at
 * *bad (*st says why); or a negative errno / what fn returned. */
static int recovery_scan_segment(struct recovery *r, size_t i, uint64_t *end,
				 uint64_t *bad, enum ch_record_status *st)
{
	struct ch_record rec;
	uint64_t off = 0;
	int rc = scan_open(&r->scan, r->dir, r->starts[i]);

	if (rc != 0)
		return rc;
	for (;;) {
		int res = scan_at(&r->scan, off, &rec, st);

		if (res < 0)
			return res;
		if (res == SCAN_END) {
			*end = off;
			return 0;
		}
		if (res != SCAN_RECORD) {
			*bad = off;
			return 1;
		}
		if (r->fn != NULL) {
			rc = r->fn(&rec, r->arg);
			if (rc != 0)	/* a positive rc would read as damage */
				return rc < 0 ? rc : -ECANCELED;
		}
		r->rep->n_records++;
		off += rec.len;
	}
}

static int recovery_run(struct recovery *r)
{
	struct ch_log_recover_report *rep = r->rep;
	uint64_t expect = r->n > 0 ? r->starts[0] : 0;

	rep->first_pos = expect;
	for (size_t i = 0; i < r->n; i++) {
		enum ch_record_status st = CH_REC_OK;
		uint64_t end = 0, bad = 0;
		int rc;

		if (r->starts[i] != expect) {
			/* Name the misplaced file in the message. */
			rc = ch_log_segment_path(r->scan.path, sizeof(r->scan.path),
						 r->dir, r->starts[i]);
			if (rc != 0)
				return rc;
			return recovery_damage(r, i, 0, "misplaced segment", 1, expect);
		}
		rc = recovery_scan_segment(r, i, &end, &bad, &st);
		if (rc < 0)
			return rc;
		if (rc == 1)
			return recovery_damage(r, i, bad,
					       st == CH_REC_TRUNCATED ?
					       "record runs past the end of the file" :
					       ch_record_status_name(st), 0, 0);
		expect = r->starts[i] + end;
	}
	rep->end_pos = expect;
	snprintf(rep->message, sizeof(rep->message), "%" PRIu64 " records in %"
		 PRIu64 " segment(s), end at log position %" PRIu64,
		 rep->n_records, rep->n_segments, rep->end_pos);
	return 0;
}

int ch_log_recover(const char *dir, unsigned flags, ch_log_record_fn *fn,
		   void *arg, struct ch_log_recover_report *rep)
{
	struct recovery r = {
		.dir = dir, .flags = flags, .fn = fn, .arg = arg, .rep = rep,
	};
	int rc;

	memset(rep, 0, sizeof(*rep));
	rc = list_segments(dir, &r.starts, &r.n);
	if (rc == -ENOENT) {
		snprintf(rep->message, sizeof(rep->message),
			 "no log directory: an empty log");
		return 0;
	}
	if (rc != 0)
		return rc;
	rep->n_segments = r.n;
	rc = scan_init(&r.scan);
	if (rc == 0)
		rc = recovery_run(&r);
	scan_free(&r.scan);
	free(r.starts);
	return rc;
}

/* ---- truncation (replication fencing) -------------------------------- */

int ch_log_truncate(const char *dir, uint64_t pos, uint64_t *bytes_cut)
{
	uint64_t *starts = NULL, cut = 0;
	size_t n = 0;
	char path[PATH_MAX];
	int rc = list_segments(dir, &starts, &n), removed = 0;

	if (bytes_cut)
		*bytes_cut = 0;
	if (rc != 0)
		return rc == -ENOENT && pos == 0 ? 0 : rc;
	/* Last segment first, as recovery cuts: a crash half-way leaves a
	 * shorter log that is still contiguous. The first segment is cut to
	 * empty rather than removed, so the log keeps its start. */
	for (size_t j = n; j-- > 0;) {
		int64_t size = segment_size(dir, starts[j]);

		if (size < 0) {
			rc = (int)size;
			goto out;
		}
		if (starts[j] + (uint64_t)size <= pos)
			break;
		if (starts[j] >= pos && j > 0) {
			rc = ch_log_segment_path(path, sizeof(path), dir, starts[j]);
			if (rc == 0 && unlink(path) != 0) {
				rc = -errno;
				ch_err("unlink %s: %s", path, strerror(errno));
			}
			if (rc != 0)
				goto out;
			cut += (uint64_t)size;
			removed = 1;
			continue;
		}
		uint64_t keep = pos > starts[j] ? pos - starts[j] : 0;
		rc = cut_segment(dir, starts[j], keep);
		if (rc != 0)
			goto out;
		cut += (uint64_t)size - keep;
		break;
	}
	if (removed)
		rc = fsync_path(dir);
	if (bytes_cut)
		*bytes_cut = cut;
out:
	free(starts);
	return rc;
}
