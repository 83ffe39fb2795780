/*
 * The log on disk: writing and reading across segments, recovery from a
 * torn tail cut at every byte of the last records, from flipped bits at the
 * tail and before it (refused, or repaired), from damaged and missing
 * segments, and (test build) injected write, fsync and truncate failures.
 * Each test works in its own mkdtemp directory under /tmp, removed after.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/failpoint.h"
#include "common/log.h"
#include "journal/record.h"
#include "journal/segment.h"

#define MAX_RECS 1024
#define BATCH_MAX (64 << 10)
#define MAX_SEGS 256
#define SMALL_SEG CH_LOG_SEGMENT_SIZE_MIN

/* main() makes basedir and removes it at the end, so what a failed test
 * leaves (its teardown does not run) goes too. */
static char basedir[] = "/tmp/chatd-check-segment-XXXXXX";
static char tmpdir[256];
static char logdir[PATH_MAX];
static uint64_t exp_pos[MAX_RECS];	/* where record i was written */

/* ---- fixture and file helpers ------------------------------------------ */

/* Remove dir and the files in it (the log dir has no subdirectories). */
static void rm_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[PATH_MAX];

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) != 0 && errno == EISDIR)
			rm_dir(path);
	}
	closedir(d);
	rmdir(dir);
}

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "%s/testXXXXXX", basedir);
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(logdir, sizeof(logdir), "%s/log", tmpdir);
	ch_failpoint_set(NULL);
}

static void teardown(void)
{
	ch_failpoint_set(NULL);
	rm_dir(tmpdir);
}

static void seg_path(char *out, uint64_t start)
{
	ck_assert_int_eq(ch_log_segment_path(out, PATH_MAX, logdir, start), 0);
}

static uint8_t *read_whole(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *b;
	int fd = open(path, O_RDONLY);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	b = malloc((size_t)st.st_size + 1);
	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(pread(fd, b, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return b;
}

static void write_whole(const char *path, const void *b, size_t len)
{
	int fd = open(path, O_WRONLY | O_TRUNC);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, b, len, 0), (ssize_t)len);
	close(fd);
}

static uint64_t size_of(const char *path)
{
	struct stat st;

	ck_assert_int_eq(stat(path, &st), 0);
	return (uint64_t)st.st_size;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The segment files, by our own reading of the naming rule. */
static size_t list_segs(uint64_t *starts)
{
	DIR *d = opendir(logdir);
	struct dirent *de;
	size_t n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL) {
		char again[64];

		if (de->d_name[0] == '.')
			continue;
		ck_assert_uint_lt(n, MAX_SEGS);
		starts[n] = strtoull(de->d_name, NULL, 10);
		snprintf(again, sizeof(again), "%020" PRIu64 ".log", starts[n]);
		ck_assert_str_eq(de->d_name, again);
		n++;
	}
	closedir(d);
	qsort(starts, n, sizeof(*starts), cmp_u64);
	return n;
}

/* ---- records the tests write and expect back ----------------------------- */

/* Record i: a message with a client id and 1..90 bytes of content. */
static size_t rec_payload(unsigned i, uint8_t *out, size_t cap)
{
	struct ch_payload_writer w;
	uint8_t content[128];
	char cid[16];
	size_t clen = 1 + (i * 13u) % 90, len = 0;

	for (size_t k = 0; k < clen; k++)
		content[k] = (uint8_t)('a' + (i + k) % 26);
	snprintf(cid, sizeof(cid), "c%u", i);
	ch_payload_writer_init(&w, out, cap);
	ch_payload_put_str(&w, cid);
	ch_payload_put_bytes(&w, content, clen);
	ck_assert_int_eq(ch_payload_writer_finish(&w, &len), 0);
	return len;
}

static size_t encode_rec(unsigned i, uint64_t pos, uint8_t *out, size_t cap)
{
	uint8_t pl[256];
	struct ch_record r = {
		.type = CH_REC_MESSAGE, .epoch = 1, .pos = pos,
		.room = i % 5 + 1, .author = 100 + i % 3, .room_seq = i + 1,
		.ts_ms = 1700000000000ull + i, .payload = pl,
	};
	size_t len;

	r.payload_len = (uint32_t)rec_payload(i, pl, sizeof(pl));
	len = ch_record_encode(out, cap, &r);
	ck_assert_uint_gt(len, 0);
	return len;
}

/* Append records [first, first + count) as one batch. */
static int append_batch(struct ch_log_writer *w, unsigned first, unsigned count)
{
	static uint8_t batch[BATCH_MAX];
	uint64_t pos = ch_log_end(w);
	size_t len = 0;

	for (unsigned k = 0; k < count; k++) {
		exp_pos[first + k] = pos + len;
		len += encode_rec(first + k, pos + len, batch + len, sizeof(batch) - len);
	}
	return ch_log_append(w, batch, len);
}

static struct ch_log_writer *open_writer(uint64_t seg_size)
{
	struct ch_log_writer_opts o = { .segment_size = seg_size };
	struct ch_log_writer *w;

	ck_assert_int_eq(ch_log_writer_open(&w, logdir, &o), 0);
	return w;
}

/* A log of n records in batches of 1..max_batch records; returns its end. */
static uint64_t write_log(unsigned n, unsigned max_batch, uint64_t seg_size)
{
	struct ch_log_writer *w = open_writer(seg_size);
	uint64_t end;

	for (unsigned i = 0, k = 1; i < n; i += k, k = k % max_batch + 1) {
		if (k > n - i)
			k = n - i;
		ck_assert_int_eq(append_batch(w, i, k), 0);
	}
	ck_assert_int_eq(ch_log_sync(w), 0);
	end = ch_log_end(w);
	ch_log_writer_close(w);
	return end;
}

static uint64_t rec_end(unsigned i)
{
	uint8_t tmp[512];

	return exp_pos[i] + encode_rec(i, exp_pos[i], tmp, sizeof(tmp));
}

struct collected {
	unsigned n;
	unsigned bad;
	unsigned stop_at;		/* return -ECANCELED at this record */
	unsigned id[MAX_RECS];
	uint64_t pos[MAX_RECS];
};

static int collect_cb(const struct ch_record *rec, void *arg)
{
	struct collected *c = arg;
	unsigned i = (unsigned)(rec->room_seq - 1);
	uint8_t want[256];
	size_t wl;

	if (c->n == c->stop_at)
		return -ECANCELED;
	ck_assert_uint_lt(c->n, MAX_RECS);
	wl = i < MAX_RECS ? rec_payload(i, want, sizeof(want)) : 0;
	if (i >= MAX_RECS || rec->type != CH_REC_MESSAGE || rec->room != i % 5 + 1 ||
	    rec->author != 100 + i % 3 || rec->payload_len != wl ||
	    memcmp(rec->payload, want, wl) != 0)
		c->bad++;
	c->id[c->n] = i;
	c->pos[c->n] = rec->pos;
	c->n++;
	return 0;
}

static int recover(unsigned flags, struct collected *c, struct ch_log_recover_report *rep)
{
	memset(c, 0, sizeof(*c));
	c->stop_at = UINT_MAX;
	return ch_log_recover(logdir, flags, collect_cb, c, rep);
}

/* What recovery passed on is exactly records 0..n-1, where they were written. */
static void assert_records(const struct collected *c, unsigned n)
{
	ck_assert_uint_eq(c->bad, 0);
	ck_assert_uint_eq(c->n, n);
	for (unsigned i = 0; i < n; i++) {
		ck_assert_uint_eq(c->id[i], i);
		ck_assert_uint_eq(c->pos[i], exp_pos[i]);
	}
}

/* Read from position from (to limit) and check records first.. in order;
 * returns how many were read. */
static unsigned read_from(uint64_t from, uint64_t limit, unsigned first)
{
	struct ch_log_reader *r;
	struct ch_record rec;
	unsigned n = 0;
	int rc;

	ck_assert_int_eq(ch_log_reader_open(&r, logdir, from), 0);
	ch_log_reader_set_limit(r, limit);
	while ((rc = ch_log_reader_next(r, &rec)) == 1) {
		ck_assert_uint_eq(rec.room_seq, first + n + 1);
		ck_assert_uint_eq(rec.pos, exp_pos[first + n]);
		n++;
	}
	ck_assert_int_eq(rc, 0);
	ch_log_reader_close(r);
	return n;
}

/* ---- writing, reading, segments ------------------------------------------ */

START_TEST(test_write_recover_read)
{
	struct ch_log_recover_report rep;
	struct collected c;
	uint64_t end = write_log(50, 4, 0);
	char path[PATH_MAX];

	seg_path(path, 0);
	ck_assert_uint_eq(size_of(path), end);
	ck_assert_uint_eq(end % CH_RECORD_ALIGN, 0);
	ck_assert_int_eq(recover(0, &c, &rep), 0);
	ck_assert_int_eq(rep.outcome, CH_LOG_CLEAN);
	ck_assert_uint_eq(rep.n_records, 50);
	ck_assert_uint_eq(rep.n_segments, 1);
	ck_assert_uint_eq(rep.end_pos, end);
	ck_assert_uint_eq(rep.bytes_cut, 0);
	assert_records(&c, 50);

	ck_assert_uint_eq(read_from(0, UINT64_MAX, 0), 50);
	ck_assert_uint_eq(read_from(exp_pos[25], UINT64_MAX, 25), 25);
	ck_assert_uint_eq(read_from(exp_pos[25], exp_pos[30], 25), 5);
	ck_assert_uint_eq(read_from(end, UINT64_MAX, 50), 0);
}
END_TEST

START_TEST(test_reader_bad_positions)
{
	struct ch_log_reader *r;
	struct ch_record rec;
	uint64_t end;

	/* An empty directory: position 0 is the (empty) end; others are not. */
	ck_assert_int_eq(ch_log_reader_open(&r, logdir, 8), -ENOENT);
	ck_assert_int_eq(ch_log_reader_open(&r, logdir, 0), 0);
	ck_assert_int_eq(ch_log_reader_next(r, &rec), 0);
	ch_log_reader_close(r);

	end = write_log(20, 3, 0);
	ck_assert_int_eq(ch_log_reader_open(&r, logdir, end + 8), -ERANGE);
	/* Inside a record: refused on the first read. */
	ck_assert_int_eq(ch_log_reader_open(&r, logdir, exp_pos[5] + 8), 0);
	ck_assert_int_eq(ch_log_reader_next(r, &rec), -EBADMSG);
	ch_log_reader_close(r);
}
END_TEST

START_TEST(test_writer_reopen_continues)
{
	struct ch_log_recover_report rep;
	struct collected c;
	struct ch_log_writer *w;

	write_log(10, 3, 0);
	w = open_writer(0);
	ck_assert_uint_eq(ch_log_end(w), rec_end(9));
	ck_assert_uint_eq(ch_log_synced_end(w), ch_log_end(w));
	ck_assert_int_eq(append_batch(w, 10, 5), 0);
	ck_assert_uint_eq(ch_log_synced_end(w), rec_end(9));
	ck_assert_uint_eq(ch_log_end(w), rec_end(14));
	ck_assert_int_eq(ch_log_sync(w), 0);
	ck_assert_uint_eq(ch_log_synced_end(w), rec_end(14));
	ch_log_writer_close(w);
	ck_assert_int_eq(recover(0, &c, &rep), 0);
	assert_records(&c, 15);
}
END_TEST

START_TEST(test_writer_refuses_bad_batch)
{
	struct ch_log_writer *w;
	struct ch_log_writer_opts tiny = { .segment_size = SMALL_SEG - 8 };
	uint8_t b[512];
	size_t len;

	ck_assert_int_eq(ch_log_writer_open(&w, logdir, &tiny), -EINVAL);
	w = open_writer(0);
	ck_assert_int_eq(append_batch(w, 0, 2), 0);
	/* Wrong position. */
	len = encode_rec(2, ch_log_end(w) + 8, b, sizeof(b));
	ck_assert_int_eq(ch_log_append(w, b, len), -EINVAL);
	/* A batch that ends inside a record. */
	len = encode_rec(2, ch_log_end(w), b, sizeof(b));
	ck_assert_int_eq(ch_log_append(w, b, len - 8), -EINVAL);
	/* Garbage length. */
	memset(b, 0xFF, 64);
	ck_assert_int_eq(ch_log_append(w, b, 64), -EINVAL);
	/* Nothing was written and the writer still works. */
	ck_assert_uint_eq(ch_log_end(w), rec_end(1));
	ck_assert_int_eq(ch_log_writer_error(w), 0);
	ck_assert_int_eq(append_batch(w, 2, 1), 0);
	ck_assert_int_eq(ch_log_sync(w), 0);
	ch_log_writer_close(w);
	ck_assert_uint_eq(read_from(0, UINT64_MAX, 0), 3);
}
END_TEST

START_TEST(test_segments_roll_and_read_across)
{
	uint64_t starts[MAX_SEGS], end = write_log(300, 7, SMALL_SEG);
	struct ch_log_recover_report rep;
	struct collected c;
	size_t n = list_segs(starts);
	unsigned first_in_3 = 0;

	ck_assert_uint_gt(n, 4);
	ck_assert_uint_eq(starts[0], 0);
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX];
		uint64_t size;

		seg_path(path, starts[i]);
		size = size_of(path);
		if (i + 1 < n) {
			/* Contiguous, rolled once full, by at most one batch over. */
			ck_assert_uint_eq(starts[i] + size, starts[i + 1]);
			ck_assert_uint_ge(size, SMALL_SEG);
			ck_assert_uint_lt(size, SMALL_SEG + 7 * 160);
		} else {
			ck_assert_uint_eq(starts[i] + size, end);
		}
	}
	ck_assert_int_eq(recover(0, &c, &rep), 0);
	ck_assert_int_eq(rep.outcome, CH_LOG_CLEAN);
	ck_assert_uint_eq(rep.n_segments, n);
	assert_records(&c, 300);

	ck_assert_uint_eq(read_from(0, UINT64_MAX, 0), 300);
	ck_assert_uint_eq(read_from(exp_pos[150], UINT64_MAX, 150), 150);
	/* From exactly the start of the fourth segment. */
	while (exp_pos[first_in_3] != starts[3])
		first_in_3++;
	ck_assert_uint_eq(read_from(starts[3], UINT64_MAX, first_in_3), 300 - first_in_3);
	/* A limit in another segment than the start. */
	ck_assert_uint_eq(read_from(exp_pos[10], exp_pos[200], 10), 190);
}
END_TEST

START_TEST(test_explicit_roll)
{
	struct ch_log_writer *w = open_writer(0);
	uint64_t starts[MAX_SEGS];

	ck_assert_int_eq(ch_log_roll(w), 0);	/* empty: no-op */
	ck_assert_uint_eq(list_segs(starts), 1);
	ck_assert_int_eq(append_batch(w, 0, 3), 0);
	ck_assert_int_eq(ch_log_roll(w), 0);
	ck_assert_uint_eq(ch_log_synced_end(w), rec_end(2));	/* roll syncs */
	ck_assert_int_eq(append_batch(w, 3, 3), 0);
	ck_assert_int_eq(ch_log_sync(w), 0);
	ch_log_writer_close(w);
	ck_assert_uint_eq(list_segs(starts), 2);
	ck_assert_uint_eq(starts[1], exp_pos[3]);
	ck_assert_uint_eq(read_from(0, UINT64_MAX, 0), 6);
}
END_TEST

/* A reader at the end sees what a live writer appends, across a roll. */
START_TEST(test_reader_follows_writer)
{
	struct ch_log_writer *w = open_writer(SMALL_SEG);
	struct ch_log_reader *r;
	struct ch_record rec;
	uint64_t starts[MAX_SEGS];
	unsigned got = 0;

	ck_assert_int_eq(append_batch(w, 0, 5), 0);
	ck_assert_int_eq(ch_log_reader_open(&r, logdir, ch_log_end(w)), 0);
	ck_assert_int_eq(ch_log_reader_next(r, &rec), 0);
	for (unsigned i = 5; i < 105; i += 5) {
		ck_assert_int_eq(append_batch(w, i, 5), 0);
		ch_log_reader_set_limit(r, ch_log_end(w));
		while (ch_log_reader_next(r, &rec) == 1) {
			ck_assert_uint_eq(rec.room_seq, 5 + got + 1);
			got++;
		}
		ck_assert_uint_eq(ch_log_reader_pos(r), ch_log_end(w));
	}
	ck_assert_uint_eq(got, 100);
	ck_assert_uint_gt(list_segs(starts), 1);
	ch_log_reader_close(r);
	ch_log_writer_close(w);
}
END_TEST

/* ---- recovery ------------------------------------------------------------- */

START_TEST(test_recover_missing_dir_and_empty)
{
	struct ch_log_recover_report rep;
	struct collected c;
	struct ch_log_writer *w;

	ck_assert_int_eq(recover(0, &c, &rep), 0);
	ck_assert_uint_eq(rep.n_records, 0);
	ck_assert_uint_eq(rep.end_pos, 0);
	w = open_writer(0);
	ch_log_writer_close(w);
	ck_assert_int_eq(recover(0, &c, &rep), 0);
	ck_assert_uint_eq(rep.n_segments, 1);
	ck_assert_uint_eq(rep.n_records, 0);
	ck_assert_int_eq(rep.outcome, CH_LOG_CLEAN);
}
END_TEST

/*
 * Cut the log at every byte of its last three records: recovery keeps the
 * complete records before the cut, cuts the rest, a second recovery changes
 * nothing, and the writer carries on from there.
 */
START_TEST(test_torn_tail_every_byte)
{
	struct ch_log_recover_report rep;
	struct collected c;
	char path[PATH_MAX];
	uint64_t end = write_log(50, 3, 0);
	size_t len;
	uint8_t *orig;

	seg_path(path, 0);
	orig = read_whole(path, &len);
	ck_assert_uint_eq(len, end);
	for (uint64_t cut = exp_pos[47]; cut < end; cut++) {
		unsigned keep = 47;

		while (keep < 50 && rec_end(keep) <= cut)
			keep++;
		write_whole(path, orig, cut);
		ck_assert_int_eq(recover(0, &c, &rep), 0);
		assert_records(&c, keep);
		ck_assert_uint_eq(rep.end_pos, exp_pos[keep]);
		ck_assert_uint_eq(rep.bytes_cut, cut - exp_pos[keep]);
		ck_assert_int_eq(rep.outcome, cut == exp_pos[keep] ? CH_LOG_CLEAN
								: CH_LOG_TAIL_CUT);
		ck_assert_uint_eq(size_of(path), exp_pos[keep]);

		ck_assert_int_eq(recover(0, &c, &rep), 0);
		ck_assert_int_eq(rep.outcome, CH_LOG_CLEAN);
		ck_assert_uint_eq(rep.bytes_cut, 0);
		assert_records(&c, keep);

		if (cut % 5 == 0) {
			/* Appending goes on at the cut. */
			struct ch_log_writer *w = open_writer(0);

			ck_assert_int_eq(append_batch(w, keep, 1), 0);
			ch_log_writer_close(w);
			ck_assert_int_eq(recover(0, &c, &rep), 0);
			assert_records(&c, keep + 1);
		}
	}
	free(orig);
}
END_TEST

START_TEST(test_garbage_tail)
{
	static const uint8_t zeros[4096];
	struct ch_log_recover_report rep;
	struct collected c;
	char path[PATH_MAX];
	uint64_t end = write_log(20, 2, 0);
	int fd;

	/* What a crash can leave after delayed allocation: zeroes. */
	seg_path(path, 0);
	fd = open(path, O_WRONLY | O_APPEND);
	ck_assert_int_eq(write(fd, zeros, sizeof(zeros)), (ssize_t)sizeof(zeros));
	ck_assert_int_eq(write(fd, "xyz", 3), 3);
	close(fd);
	ck_assert_int_eq(recover(CH_LOG_RECOVER_DRY_RUN, &c, &rep), 0);
	ck_assert_int_eq(rep.outcome, CH_LOG_TAIL_CUT);
	ck_assert_uint_eq(rep.bytes_cut, sizeof(zeros) + 3);
	ck_assert_uint_eq(size_of(path), end + sizeof(zeros) + 3);	/* dry run */
	ck_assert_int_eq(recover(0, &c, &rep), 0);
	ck_assert_int_eq(rep.outcome, CH_LOG_TAIL_CUT);
	ck_assert_uint_eq(rep.bytes_cut, sizeof(zeros) + 3);
	ck_assert_ptr_nonnull(strstr(rep.message, "00000000000000000000.log"));
	assert_records(&c, 20);
	ck_assert_uint_eq(size_of(path), end);
}
END_TEST

/* A flipped bit in the last record: nothing valid follows, a torn tail. */
START_TEST(test_flip_in_last_record_is_tail)
{
	struct ch_log_recover_report rep;
	struct collected c;
	char path[PATH_MAX];
	uint64_t end = write_log(50, 3, 0);
	size_t len;
	uint8_t *orig;

	seg_path(path, 0);
	orig = read_whole(path, &len);
	for (uint64_t b = exp_pos[49]; b < end; b++) {
		orig[b] ^= (uint8_t)(1u << (b % 8));
		write_whole(path, orig, len);
		orig[b] ^= (uint8_t)(1u << (b % 8));
		ck_assert_int_eq(recover(0, &c, &rep), 0);
		ck_assert_int_eq(rep.outcome, CH_LOG_TAIL_CUT);
		ck_assert_uint_eq(rep.bytes_cut, end - exp_pos[49]);
		assert_records(&c, 49);
		ck_assert_uint_eq(size_of(path), exp_pos[49]);
	}
	free(orig);
}
END_TEST

/*
 * A flipped bit in record 20 of 50: valid records follow, so it is
 * corruption, not a crash. Refused with the file and offset named, nothing
 * changed; with repair, cut there.
 */
START_TEST(test_flip_before_tail_refused_or_repaired)
{
	struct ch_log_recover_report rep;
	struct collected c;
	char path[PATH_MAX], want[64];
	uint64_t end = write_log(50, 3, 0);
	size_t len, now_len;
	uint8_t *orig, *now;

	seg_path(path, 0);
	orig = read_whole(path, &len);
	snprintf(want, sizeof(want), "offset %" PRIu64 " ", exp_pos[20]);
	for (uint64_t b = exp_pos[20]; b < exp_pos[21]; b++) {
		orig[b] ^= (uint8_t)(1u << (b % 8));
		write_whole(path, orig, len);
		ck_assert_int_eq(recover(0, &c, &rep), -EBADMSG);
		ck_assert_int_eq(rep.outcome, CH_LOG_REFUSED);
		ck_assert_uint_eq(rep.bad_pos, exp_pos[20]);
		ck_assert_uint_eq(rep.bytes_cut, end - exp_pos[20]);	/* would */
		ck_assert_ptr_nonnull(strstr(rep.message, "00000000000000000000.log"));
		ck_assert_msg(strstr(rep.message, want) != NULL, "%s", rep.message);
		assert_records(&c, 20);
		now = read_whole(path, &now_len);
		ck_assert_uint_eq(now_len, len);
		ck_assert_mem_eq(now, orig, len);
		free(now);
		orig[b] ^= (uint8_t)(1u << (b % 8));
	}
	/* The last flip is still on disk: repair. */
	ck_assert_int_eq(recover(CH_LOG_RECOVER_REPAIR | CH_LOG_RECOVER_DRY_RUN, &c, &rep), 0);
	ck_assert_int_eq(rep.outcome, CH_LOG_REPAIRED);
	ck_assert_uint_eq(size_of(path), end);
	ck_assert_int_eq(recover(CH_LOG_RECOVER_REPAIR, &c, &rep), 0);
	ck_assert_int_eq(rep.outcome, CH_LOG_REPAIRED);
	ck_assert_uint_eq(rep.bytes_cut, end - exp_pos[20]);
	ck_assert_uint_eq(rep.end_pos, exp_pos[20]);
	assert_records(&c, 20);
	ck_assert_uint_eq(size_of(path), exp_pos[20]);
	ck_assert_int_eq(recover(0, &c, &rep), 0);
	ck_assert_int_eq(rep.outcome, CH_LOG_CLEAN);
	assert_records(&c, 20);
	free(orig);
}
END_TEST

/* Index of the first record at or after position pos. */
static unsigned first_rec_at(uint64_t pos, unsigned n)
{
	unsigned i = 0;

	while (i < n && exp_pos[i] < pos)
		i++;
	return i;
}

/* A torn record at the end of a segment that is not the last. */
START_TEST(test_damage_in_earlier_segment)
{
	uint64_t starts[MAX_SEGS];
	struct ch_log_recover_report rep;
	struct collected c;
	char path[PATH_MAX];
	size_t n;
	unsigned keep;
	uint64_t size;

	write_log(200, 5, SMALL_SEG);
	n = list_segs(starts);
	ck_assert_uint_gt(n, 3);
	seg_path(path, starts[1]);
	size = size_of(path);
	ck_assert_int_eq(truncate(path, (off_t)size - 8), 0);
	keep = first_rec_at(starts[2], 200) - 1;	/* the torn one goes */

	ck_assert_int_eq(recover(0, &c, &rep), -EBADMSG);
	ck_assert_int_eq(rep.outcome, CH_LOG_REFUSED);
	ck_assert_ptr_nonnull(strstr(rep.message, strrchr(path, '/') + 1));
	ck_assert_uint_eq(rep.bad_pos, exp_pos[keep]);
	ck_assert_uint_eq(list_segs(starts), n);

	ck_assert_int_eq(recover(CH_LOG_RECOVER_REPAIR, &c, &rep), 0);
	ck_assert_int_eq(rep.outcome, CH_LOG_REPAIRED);
	ck_assert_uint_eq(rep.segments_removed, n - 2);
	assert_records(&c, keep);
	ck_assert_uint_eq(list_segs(starts), 2);
	ck_assert_uint_eq(size_of(path), exp_pos[keep] - starts[1]);
	ck_assert_int_eq(recover(0, &c, &rep), 0);
	ck_assert_int_eq(rep.outcome, CH_LOG_CLEAN);
	assert_records(&c, keep);
	ck_assert_uint_eq(read_from(0, UINT64_MAX, 0), keep);
}
END_TEST

/* A missing middle segment: the next one does not start where expected. */
START_TEST(test_missing_segment)
{
	uint64_t starts[MAX_SEGS];
	struct ch_log_recover_report rep;
	struct collected c;
	char path[PATH_MAX], next[PATH_MAX];
	size_t n;
	unsigned keep;

	write_log(200, 5, SMALL_SEG);
	n = list_segs(starts);
	ck_assert_uint_gt(n, 3);
	seg_path(path, starts[2]);
	seg_path(next, starts[3]);
	ck_assert_int_eq(unlink(path), 0);
	keep = first_rec_at(starts[2], 200);

	ck_assert_int_eq(recover(0, &c, &rep), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(rep.message, strrchr(next, '/') + 1));
	ck_assert_ptr_nonnull(strstr(rep.message, "should start at log position"));
	ck_assert_uint_eq(rep.bad_pos, starts[2]);
	ck_assert_uint_eq(rep.segments_removed, n - 3);	/* would */
	assert_records(&c, keep);
	ck_assert_uint_eq(list_segs(starts), n - 1);

	ck_assert_int_eq(recover(CH_LOG_RECOVER_REPAIR, &c, &rep), 0);
	ck_assert_int_eq(rep.outcome, CH_LOG_REPAIRED);
	ck_assert_uint_eq(rep.end_pos, exp_pos[keep]);
	ck_assert_uint_eq(list_segs(starts), 2);
	ck_assert_int_eq(recover(0, &c, &rep), 0);
	assert_records(&c, keep);
	/* The writer continues at the end of what is left. */
	{
		struct ch_log_writer *w = open_writer(SMALL_SEG);

		ck_assert_uint_eq(ch_log_end(w), exp_pos[keep]);
		ch_log_writer_close(w);
	}
}
END_TEST

START_TEST(test_torn_tail_last_of_many_segments)
{
	uint64_t starts[MAX_SEGS];
	struct ch_log_recover_report rep;
	struct collected c;
	char path[PATH_MAX];
	uint64_t end = write_log(200, 5, SMALL_SEG);
	size_t n = list_segs(starts);

	seg_path(path, starts[n - 1]);
	ck_assert_int_eq(truncate(path, (off_t)(rec_end(198) - starts[n - 1] + 20)), 0);
	ck_assert_int_eq(recover(0, &c, &rep), 0);
	ck_assert_int_eq(rep.outcome, CH_LOG_TAIL_CUT);
	ck_assert_uint_eq(rep.bytes_cut, 20);
	ck_assert_uint_lt(rep.end_pos, end);
	assert_records(&c, 199);
}
END_TEST

START_TEST(test_callback_error_stops_and_changes_nothing)
{
	struct ch_log_recover_report rep;
	struct collected c;
	char path[PATH_MAX];
	uint64_t end = write_log(30, 2, 0);

	seg_path(path, 0);
	ck_assert_int_eq(truncate(path, (off_t)end - 4), 0);
	memset(&c, 0, sizeof(c));
	c.stop_at = 10;
	ck_assert_int_eq(ch_log_recover(logdir, 0, collect_cb, &c, &rep), -ECANCELED);
	ck_assert_uint_eq(c.n, 10);
	ck_assert_uint_eq(size_of(path), end - 4);
	ck_assert_int_eq(ch_log_recover(logdir, 0, NULL, NULL, &rep), 0);
	ck_assert_uint_eq(rep.n_records, 29);
}
END_TEST

/* ---- failpoints ------------------------------------------------------------ */

/* Failpoint tests need a build with CH_FAILPOINTS (make FAILPOINTS=1). */
static int have_failpoints(void)
{
	if (ch_failpoint_compiled_in())
		return 1;
	fprintf(stderr, "check_segment: built without CH_FAILPOINTS; "
		"failpoint test skipped\n");
	return 0;
}

START_TEST(test_failpoint_spec)
{
	if (!have_failpoints())
		return;
	ck_assert_int_eq(ch_failpoint_set("tp=eio@3"), 0);
	ck_assert_int_eq(ch_failpoint_hit("tp"), CH_FP_NONE);
	ck_assert_int_eq(ch_failpoint_hit("other"), CH_FP_NONE);
	ck_assert_int_eq(ch_failpoint_hit("tp"), CH_FP_NONE);
	ck_assert_int_eq(ch_failpoint_hit("tp"), CH_FP_EIO);
	ck_assert_int_eq(ch_failpoint_hit("tp"), CH_FP_EIO);	/* always */
	ck_assert_uint_eq(ch_failpoint_fired("tp"), 2);

	ck_assert_int_eq(ch_failpoint_set("tp=short@2:once,tp=enospc@4,x=eio"), 0);
	ck_assert_int_eq(ch_failpoint_hit("tp"), CH_FP_NONE);
	ck_assert_int_eq(ch_failpoint_hit("tp"), CH_FP_SHORT);
	ck_assert_int_eq(ch_failpoint_hit("tp"), CH_FP_NONE);
	ck_assert_int_eq(ch_failpoint_hit("tp"), CH_FP_ENOSPC);
	ck_assert_int_eq(ch_failpoint_hit("x"), CH_FP_EIO);

	ck_assert_int_eq(ch_failpoint_set("tp=eio:always"), 0);
	ck_assert_int_eq(ch_failpoint_hit("tp"), CH_FP_EIO);
	ck_assert_int_eq(ch_failpoint_set(""), 0);
	ck_assert_int_eq(ch_failpoint_hit("tp"), CH_FP_NONE);

	/* Malformed specs are refused and change nothing. */
	ck_assert_int_eq(ch_failpoint_set("tp=eio@2"), 0);
	ck_assert_int_eq(ch_failpoint_set("tp=bogus"), -EINVAL);
	ck_assert_int_eq(ch_failpoint_set("=eio"), -EINVAL);
	ck_assert_int_eq(ch_failpoint_set("tp"), -EINVAL);
	ck_assert_int_eq(ch_failpoint_set("tp=eio@0"), -EINVAL);
	ck_assert_int_eq(ch_failpoint_set("tp=eio@"), -EINVAL);
	ck_assert_int_eq(ch_failpoint_set("tp=eio@x"), -EINVAL);
	ck_assert_int_eq(ch_failpoint_set("tp=eio:sometimes"), -EINVAL);
	ck_assert_int_eq(ch_failpoint_hit("tp"), CH_FP_NONE);
	ck_assert_int_eq(ch_failpoint_hit("tp"), CH_FP_EIO);

	ck_assert_int_eq(setenv(CH_FAILPOINT_ENV, "log_fsync=enospc@2:once", 1), 0);
	ck_assert_int_eq(ch_failpoint_load_env(), 0);
	unsetenv(CH_FAILPOINT_ENV);
	ck_assert_int_eq(ch_failpoint_hit("tp"), CH_FP_NONE);
	ck_assert_int_eq(ch_failpoint_hit("log_fsync"), CH_FP_NONE);
	ck_assert_int_eq(ch_failpoint_hit("log_fsync"), CH_FP_ENOSPC);
	ck_assert_int_eq(ch_failpoint_hit("log_fsync"), CH_FP_NONE);
	ck_assert_int_eq(ch_failpoint_errno(CH_FP_ENOSPC), ENOSPC);
	ck_assert_int_eq(ch_failpoint_errno(CH_FP_SHORT), EIO);
}
END_TEST

/*
 * Batches 0-9 and 10-19 go in; the third append (records 20-29) meets the
 * failpoint and reports want_rc; later appends and syncs fail without
 * touching the disk. Returns what recovery found then.
 */
static void write_fails(const char *spec, int want_rc, struct collected *c,
			struct ch_log_recover_report *rep)
{
	struct ch_log_writer *w = open_writer(0);
	uint64_t fired;

	ck_assert_int_eq(ch_failpoint_set(spec), 0);
	ck_assert_int_eq(append_batch(w, 0, 10), 0);
	ck_assert_int_eq(append_batch(w, 10, 10), 0);
	ck_assert_int_eq(append_batch(w, 20, 10), want_rc);
	ck_assert_uint_ge(ch_failpoint_fired("log_write"), 1);
	ck_assert_int_eq(ch_log_writer_error(w), want_rc);
	ck_assert_uint_eq(ch_log_end(w), rec_end(19));
	fired = ch_failpoint_fired("log_write");
	ck_assert_int_eq(append_batch(w, 20, 1), want_rc);
	ck_assert_int_eq(ch_log_sync(w), want_rc);
	ck_assert_int_eq(ch_log_roll(w), want_rc);
	ck_assert_uint_eq(ch_failpoint_fired("log_write"), fired);
	ch_log_writer_close(w);
	ch_failpoint_set(NULL);
	ck_assert_int_eq(recover(0, c, rep), 0);
}

/* The failed append was rolled back: exactly the first 20 records. */
static void write_fails_cleanly(const char *spec, int want_rc)
{
	struct ch_log_recover_report rep;
	struct collected c;

	write_fails(spec, want_rc, &c, &rep);
	ck_assert_int_eq(rep.outcome, CH_LOG_CLEAN);
	ck_assert_uint_eq(rep.bytes_cut, 0);
	assert_records(&c, 20);
}

START_TEST(test_write_eio)
{
	if (have_failpoints())
		write_fails_cleanly("log_write=eio@3", -EIO);
}
END_TEST

START_TEST(test_write_enospc)
{
	if (have_failpoints())
		write_fails_cleanly("log_write=enospc@3", -ENOSPC);
}
END_TEST

START_TEST(test_write_short_rolled_back)
{
	/* Partial writes until one makes no progress, then the rollback. */
	if (have_failpoints())
		write_fails_cleanly("log_write=short@3", -EIO);
}
END_TEST

START_TEST(test_write_short_not_rolled_back)
{
	struct ch_log_recover_report rep;
	struct collected c;
	char path[PATH_MAX];

	if (!have_failpoints())
		return;
	/*
	 * The rollback fails too, so the failed batch stays, less its last
	 * byte (each short write halves what is left): like a crash
	 * mid-append. Recovery cuts the incomplete record; the complete ones
	 * before it (20-28, never acknowledged) are valid and stay.
	 */
	write_fails("log_write=short@3,log_truncate=eio", -EIO, &c, &rep);
	ck_assert_int_eq(rep.outcome, CH_LOG_TAIL_CUT);
	ck_assert_uint_eq(rep.bytes_cut, rec_end(29) - exp_pos[29] - 1);
	assert_records(&c, 29);
	seg_path(path, 0);
	ck_assert_uint_eq(size_of(path), exp_pos[29]);
}
END_TEST

START_TEST(test_write_short_once_completes)
{
	struct ch_log_recover_report rep;
	struct collected c;
	struct ch_log_writer *w;

	if (!have_failpoints())
		return;
	/* One partial write: the append loop writes the rest. */
	w = open_writer(0);
	ck_assert_int_eq(ch_failpoint_set("log_write=short@2:once"), 0);
	ck_assert_int_eq(append_batch(w, 0, 10), 0);
	ck_assert_int_eq(append_batch(w, 10, 10), 0);
	ck_assert_int_eq(append_batch(w, 20, 10), 0);
	ck_assert_uint_eq(ch_failpoint_fired("log_write"), 1);
	ck_assert_int_eq(ch_log_sync(w), 0);
	ch_log_writer_close(w);
	ck_assert_int_eq(recover(0, &c, &rep), 0);
	ck_assert_int_eq(rep.outcome, CH_LOG_CLEAN);
	assert_records(&c, 30);
}
END_TEST

START_TEST(test_fsync_eio_not_retried)
{
	struct ch_log_recover_report rep;
	struct collected c;
	struct ch_log_writer *w;

	if (!have_failpoints())
		return;
	w = open_writer(0);
	ck_assert_int_eq(ch_failpoint_set("log_fsync=eio@2"), 0);
	ck_assert_int_eq(append_batch(w, 0, 10), 0);
	ck_assert_int_eq(ch_log_sync(w), 0);
	ck_assert_uint_eq(ch_log_synced_end(w), rec_end(9));
	ck_assert_int_eq(append_batch(w, 10, 10), 0);
	ck_assert_int_eq(ch_log_sync(w), -EIO);
	ck_assert_uint_eq(ch_failpoint_fired("log_fsync"), 1);
	/* Never fsync the same fd again, never claim durability. */
	ck_assert_int_eq(ch_log_sync(w), -EIO);
	ck_assert_uint_eq(ch_failpoint_fired("log_fsync"), 1);
	ck_assert_uint_eq(ch_log_synced_end(w), rec_end(9));
	ck_assert_int_eq(append_batch(w, 20, 10), -EIO);
	ch_log_writer_close(w);
	ch_failpoint_set(NULL);

	/* The second batch was written (page cache) before the sync failed. */
	ck_assert_int_eq(recover(0, &c, &rep), 0);
	ck_assert_int_eq(rep.outcome, CH_LOG_CLEAN);
	assert_records(&c, 20);
}
END_TEST

START_TEST(test_fsync_eio_on_roll)
{
	struct ch_log_recover_report rep;
	struct collected c;
	struct ch_log_writer *w;
	uint64_t starts[MAX_SEGS];
	unsigned i = 0;

	if (!have_failpoints())
		return;
	w = open_writer(SMALL_SEG);
	/* Fill the first segment without syncing, so the roll must. */
	while (ch_log_end(w) < SMALL_SEG) {
		ck_assert_int_eq(append_batch(w, i, 4), 0);
		i += 4;
	}
	ck_assert_int_eq(ch_failpoint_set("log_fsync=eio"), 0);
	ck_assert_int_eq(append_batch(w, i, 4), -EIO);
	ck_assert_int_eq(append_batch(w, i, 4), -EIO);
	ck_assert_uint_eq(ch_failpoint_fired("log_fsync"), 1);
	ch_log_writer_close(w);
	ch_failpoint_set(NULL);
	ck_assert_uint_eq(list_segs(starts), 1);
	ck_assert_int_eq(recover(0, &c, &rep), 0);
	assert_records(&c, i);
}
END_TEST

static Suite *segment_suite(void)
{
	Suite *s = suite_create("segment");
	TCase *io = tcase_create("write_read");
	TCase *rec = tcase_create("recovery");
	TCase *fp = tcase_create("failpoints");

	tcase_add_checked_fixture(io, setup, teardown);
	tcase_add_test(io, test_write_recover_read);
	tcase_add_test(io, test_reader_bad_positions);
	tcase_add_test(io, test_writer_reopen_continues);
	tcase_add_test(io, test_writer_refuses_bad_batch);
	tcase_add_test(io, test_segments_roll_and_read_across);
	tcase_add_test(io, test_explicit_roll);
	tcase_add_test(io, test_reader_follows_writer);
	suite_add_tcase(s, io);

	tcase_add_checked_fixture(rec, setup, teardown);
	tcase_set_timeout(rec, 60);
	tcase_add_test(rec, test_recover_missing_dir_and_empty);
	tcase_add_test(rec, test_torn_tail_every_byte);
	tcase_add_test(rec, test_garbage_tail);
	tcase_add_test(rec, test_flip_in_last_record_is_tail);
	tcase_add_test(rec, test_flip_before_tail_refused_or_repaired);
	tcase_add_test(rec, test_damage_in_earlier_segment);
	tcase_add_test(rec, test_missing_segment);
	tcase_add_test(rec, test_torn_tail_last_of_many_segments);
	tcase_add_test(rec, test_callback_error_stops_and_changes_nothing);
	suite_add_tcase(s, rec);

	tcase_add_checked_fixture(fp, setup, teardown);
	tcase_add_test(fp, test_failpoint_spec);
	tcase_add_test(fp, test_write_eio);
	tcase_add_test(fp, test_write_enospc);
	tcase_add_test(fp, test_write_short_rolled_back);
	tcase_add_test(fp, test_write_short_not_rolled_back);
	tcase_add_test(fp, test_write_short_once_completes);
	tcase_add_test(fp, test_fsync_eio_not_retried);
	tcase_add_test(fp, test_fsync_eio_on_roll);
	suite_add_tcase(s, fp);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	if (mkdtemp(basedir) == NULL) {
		perror("mkdtemp");
		return EXIT_FAILURE;
	}
	/* Recovery warns about every tail it cuts; the tests cut hundreds. */
	ch_log_set_level(CH_LOG_ERROR);
	sr = srunner_create(segment_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	rm_dir(basedir);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
