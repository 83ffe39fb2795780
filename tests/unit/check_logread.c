/*
 * Reading single records by log position (journal/logread.h).
 *
 * Each test writes a log with the real writer (journal/segment.h) and
 * small segments, so a few hundred records of varying sizes (empty
 * payloads, every padding length, records larger than a segment, batches
 * of several records) span dozens of files. Every record is a pure
 * function of its index, so a read is compared field by field and byte by
 * byte with what was written.
 *
 * Covered: every record read back in random order and in log order with
 * one reader (so segment files are switched all the time); positions
 * inside a record, at and past the end of the log, and never handed out
 * give an error, never a record; a corrupted byte anywhere in a record
 * gives -EBADMSG while its neighbours still read; a torn last record;
 * buffers too small; stray files in the directory (also names with a sign
 * or a blank before the digits); a segment removed after open; empty and
 * missing directories.
 */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal/logread.h"
#include "journal/record.h"
#include "journal/segment.h"

#define N_RECORDS 400
#define SEGMENT_SIZE CH_LOG_SEGMENT_SIZE_MIN	/* 4096: many segments */
#define BIG_PAYLOAD 6000			/* larger than a segment */
#define MAX_PAYLOAD 8192
#define BATCH_EVERY 7				/* every 7th append is a batch */
#define BATCH_RECORDS 4
#define TEST_TIMEOUT_S 60

static char dir[PATH_MAX];
static uint64_t positions[N_RECORDS + 1];	/* [N_RECORDS]: the log's end */
static uint8_t *readbuf;

/* ---------------------------------------------------------------------- */
/* The log: record k is a pure function of k                              */

static uint32_t payload_len_of(uint32_t k)
{
	if (k % 50 == 17)
		return BIG_PAYLOAD + k % 8;
	if (k % 10 == 3)
		return k % 8;	/* tiny: every padding length, and empty */
	return (k * 2654435761u >> 7) % 1500;
}

static uint8_t payload_byte(uint32_t k, uint32_t i)
{
	return (uint8_t)((k * 31u + i * 7u) ^ (i >> 8) ^ (k >> 3));
}

static struct ch_record record_of(uint32_t k, uint64_t pos, uint8_t *payload)
{
	struct ch_record rec;
	uint32_t len = payload_len_of(k);

	for (uint32_t i = 0; i < len; i++)
		payload[i] = payload_byte(k, i);
	memset(&rec, 0, sizeof(rec));
	rec.type = (uint16_t)(1 + k % CH_REC_EPOCH_BUMPED);
	rec.epoch = 3;
	rec.pos = pos;
	rec.room = k % 13;
	rec.author = k * 3 + 1;
	rec.room_seq = k + 1;
	rec.ts_ms = 1700000000000ull + k;
	rec.payload = payload;
	rec.payload_len = len;
	return rec;
}

/* Append records [0, N_RECORDS) with a writer rolling at SEGMENT_SIZE;
 * fills positions[]. */
static void write_log(void)
{
	struct ch_log_writer *w;
	struct ch_log_writer_opts opts = { .segment_size = SEGMENT_SIZE };
	size_t cap = BATCH_RECORDS * ch_record_size(MAX_PAYLOAD);
	uint8_t *batch = malloc(cap);
	uint8_t *payload = malloc(MAX_PAYLOAD);

	ck_assert_ptr_nonnull(batch);
	ck_assert_ptr_nonnull(payload);
	ck_assert_int_eq(ch_log_writer_open(&w, dir, &opts), 0);
	uint32_t k = 0;
	for (uint32_t append = 0; k < N_RECORDS; append++) {
		uint32_t n = append % BATCH_EVERY == 0 ? BATCH_RECORDS : 1;
		size_t len = 0;
		for (uint32_t i = 0; i < n && k < N_RECORDS; i++, k++) {
			positions[k] = ch_log_end(w) + len;
			struct ch_record rec = record_of(k, positions[k], payload);
			size_t got = ch_record_encode(batch + len, cap - len, &rec);
			ck_assert_uint_gt(got, 0);
			len += got;
		}
		ck_assert_int_eq(ch_log_append(w, batch, len), 0);
	}
	positions[N_RECORDS] = ch_log_end(w);
	ck_assert_int_eq(ch_log_sync(w), 0);
	ch_log_writer_close(w);
	free(batch);
	free(payload);
}

static size_t count_segments(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) != NULL)
		n += strlen(e->d_name) == CH_LOG_SEGMENT_NAME_LEN &&
		     strcmp(e->d_name + CH_LOG_SEGMENT_NAME_LEN - 4, ".log") == 0;
	closedir(d);
	return n;
}

/* The segment holding pos: its start (largest start <= pos). */
static uint64_t segment_of(uint64_t pos)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	uint64_t best = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) != NULL) {
		uint64_t start;
		if (strlen(e->d_name) != CH_LOG_SEGMENT_NAME_LEN ||
		    sscanf(e->d_name, "%" SCNu64, &start) != 1)
			continue;
		if (start <= pos && start >= best)
			best = start;
	}
	closedir(d);
	return best;
}

/* XOR one byte of the log at position at with mask (twice restores it). */
static void flip_byte(uint64_t at, uint8_t mask)
{
	char path[PATH_MAX + 64];
	uint64_t start = segment_of(at);
	uint8_t c;

	ck_assert_int_eq(ch_log_segment_path(path, sizeof(path), dir, start), 0);
	int fd = open(path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &c, 1, (off_t)(at - start)), 1);
	c ^= mask;
	ck_assert_int_eq(pwrite(fd, &c, 1, (off_t)(at - start)), 1);
	close(fd);
}

/* The record read for k is exactly the one written. */
static void check_record(uint32_t k, const struct ch_record *got, const void *buf)
{
	static uint8_t payload[MAX_PAYLOAD];
	struct ch_record want = record_of(k, positions[k], payload);

	ck_assert_uint_eq(got->pos, positions[k]);
	ck_assert_uint_eq(got->len, ch_record_size(want.payload_len));
	ck_assert_uint_eq(got->len, positions[k + 1] - positions[k]);
	ck_assert_uint_eq(got->type, want.type);
	ck_assert_uint_eq(got->flags, 0);
	ck_assert_uint_eq(got->epoch, want.epoch);
	ck_assert_uint_eq(got->room, want.room);
	ck_assert_uint_eq(got->author, want.author);
	ck_assert_uint_eq(got->room_seq, want.room_seq);
	ck_assert_uint_eq(got->ts_ms, want.ts_ms);
	ck_assert_uint_eq(got->payload_len, want.payload_len);
	ck_assert_ptr_eq(got->raw, buf);
	ck_assert_ptr_eq(got->payload, (const uint8_t *)buf + CH_RECORD_HDR_SIZE);
	ck_assert_int_eq(memcmp(got->payload, payload, want.payload_len), 0);
}

/* Remove everything in the log directory (files, and the empty
 * subdirectory one test makes). */
static void empty_dir(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		char path[PATH_MAX + 300];
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (unlink(path) != 0)
			rmdir(path);
	}
	closedir(d);
}

/*
 * The directory is made and removed by unchecked fixtures, in the runner
 * process, once per test case: Check skips a checked teardown when a test
 * fails, and a failed run must not leave logs behind. Each test's checked
 * setup (in the test's own process) starts from an empty directory.
 */
static void case_setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/check_logread.XXXXXX");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		exit(EXIT_FAILURE);
	}
}

static void case_teardown(void)
{
	empty_dir();
	rmdir(dir);
}

static void setup(void)
{
	empty_dir();
	readbuf = malloc(CH_RECORD_MAX);
	ck_assert_ptr_nonnull(readbuf);
	write_log();
}

static void teardown(void)
{
	free(readbuf);
	readbuf = NULL;
}

/* ---------------------------------------------------------------------- */
/* Tests                                                                  */

START_TEST(test_log_shape)
{
	/* The log really spans many segments, and has records bigger than a
	 * segment, so the reads below cross files. */
	ck_assert_uint_gt(count_segments(), 20);
	ck_assert_uint_gt(positions[N_RECORDS], 20 * SEGMENT_SIZE);
	for (uint32_t k = 0; k < N_RECORDS; k++) {
		ck_assert_uint_eq(positions[k] % CH_RECORD_ALIGN, 0);
		ck_assert_uint_lt(positions[k], positions[k + 1]);
	}
}
END_TEST

START_TEST(test_read_random_order)
{
	struct ch_logread *lr = ch_logread_open(dir);
	uint32_t order[N_RECORDS];
	unsigned seed = 4242;

	ck_assert_ptr_nonnull(lr);
	for (uint32_t k = 0; k < N_RECORDS; k++)
		order[k] = k;
	for (int pass = 0; pass < 3; pass++) {
		for (uint32_t k = N_RECORDS - 1; k > 0; k--) {
			uint32_t j = (uint32_t)rand_r(&seed) % (k + 1);
			uint32_t t = order[k];
			order[k] = order[j];
			order[j] = t;
		}
		for (uint32_t i = 0; i < N_RECORDS; i++) {
			struct ch_record rec;
			uint32_t k = order[i];
			int rc = ch_logread_at(lr, positions[k], readbuf, CH_RECORD_MAX, &rec);
			ck_assert_msg(rc == 0, "record %u at %" PRIu64 ": %s", k, positions[k],
				      strerror(-rc));
			check_record(k, &rec, readbuf);
		}
	}
	ch_logread_close(lr);
}
END_TEST

START_TEST(test_read_in_order_and_back)
{
	struct ch_logread *lr = ch_logread_open(dir);
	struct ch_record rec;

	ck_assert_ptr_nonnull(lr);
	for (uint32_t k = 0; k < N_RECORDS; k++) {
		ck_assert_int_eq(ch_logread_at(lr, positions[k], readbuf, CH_RECORD_MAX, &rec), 0);
		check_record(k, &rec, readbuf);
	}
	for (uint32_t k = N_RECORDS; k-- > 0;) {
		ck_assert_int_eq(ch_logread_at(lr, positions[k], readbuf, CH_RECORD_MAX, &rec), 0);
		check_record(k, &rec, readbuf);
	}
	/* The same record twice in a row, and a second reader beside it. */
	struct ch_logread *lr2 = ch_logread_open(dir);
	ck_assert_ptr_nonnull(lr2);
	for (uint32_t k = 0; k < N_RECORDS; k += 37) {
		ck_assert_int_eq(ch_logread_at(lr, positions[k], readbuf, CH_RECORD_MAX, &rec), 0);
		ck_assert_int_eq(ch_logread_at(lr2, positions[N_RECORDS - 1 - k], readbuf,
					       CH_RECORD_MAX, &rec), 0);
		check_record(N_RECORDS - 1 - k, &rec, readbuf);
		ck_assert_int_eq(ch_logread_at(lr, positions[k], readbuf, CH_RECORD_MAX, &rec), 0);
		check_record(k, &rec, readbuf);
	}
	ch_logread_close(lr2);
	ch_logread_close(lr);
}
END_TEST

/* Every 8-aligned position strictly inside a record, and unaligned ones:
 * an error, never a record. */
START_TEST(test_positions_inside_records)
{
	struct ch_logread *lr = ch_logread_open(dir);
	struct ch_record rec;

	ck_assert_ptr_nonnull(lr);
	for (uint32_t k = 0; k < N_RECORDS; k++) {
		for (uint64_t p = positions[k] + 1; p < positions[k + 1]; p++) {
			if (p % CH_RECORD_ALIGN != 0 && p > positions[k] + 16)
				continue;	/* a sample of unaligned ones */
			memset(&rec, 0, sizeof(rec));
			int rc = ch_logread_at(lr, p, readbuf, CH_RECORD_MAX, &rec);
			if (rc >= 0)
				ck_abort_msg("position %" PRIu64 " inside record %u (at %" PRIu64
					     ") read as a record of type %u", p, k, positions[k],
					     rec.type);
		}
	}
	/* The records themselves are still fine afterwards. */
	ck_assert_int_eq(ch_logread_at(lr, positions[5], readbuf, CH_RECORD_MAX, &rec), 0);
	check_record(5, &rec, readbuf);
	ch_logread_close(lr);
}
END_TEST

START_TEST(test_positions_past_end)
{
	struct ch_logread *lr = ch_logread_open(dir);
	struct ch_record rec;
	const uint64_t end = positions[N_RECORDS];
	const uint64_t bad[] = {
		end, end + 8, end + SEGMENT_SIZE, end + 100 * SEGMENT_SIZE,
		(uint64_t)INT64_MAX & ~7ull, UINT64_MAX & ~7ull, UINT64_MAX,
	};

	ck_assert_ptr_nonnull(lr);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = ch_logread_at(lr, bad[i], readbuf, CH_RECORD_MAX, &rec);
		ck_assert_msg(rc < 0, "position %" PRIu64 " past the end (%" PRIu64 ") read",
			      bad[i], end);
	}
	ck_assert_int_eq(ch_logread_at(lr, positions[N_RECORDS - 1], readbuf, CH_RECORD_MAX,
				       &rec), 0);
	check_record(N_RECORDS - 1, &rec, readbuf);
	ch_logread_close(lr);
}
END_TEST

/* Flip every byte of a few records, one at a time: each gives -EBADMSG,
 * the neighbours still read, and the record reads again once restored. */
START_TEST(test_corrupt_byte)
{
	struct ch_logread *lr = ch_logread_open(dir);
	struct ch_record rec;
	const uint32_t victims[] = { 0, 3, 13, 17, 150, N_RECORDS - 1 };

	ck_assert_ptr_nonnull(lr);
	for (size_t v = 0; v < sizeof(victims) / sizeof(victims[0]); v++) {
		uint32_t k = victims[v];
		uint64_t len = positions[k + 1] - positions[k];
		uint64_t step = len > 512 ? 61 : 1;	/* big records: a sample */
		for (uint64_t off = 0; off < len; off += off < 64 ? 1 : step) {
			for (int bit = 0; bit < 8; bit += off < CH_RECORD_HDR_SIZE ? 1 : 7) {
				uint8_t mask = (uint8_t)(1u << bit);
				flip_byte(positions[k] + off, mask);
				int rc = ch_logread_at(lr, positions[k], readbuf, CH_RECORD_MAX, &rec);
				flip_byte(positions[k] + off, mask);
				ck_assert_msg(rc == -EBADMSG, "record %u, byte %" PRIu64 " bit %d "
					      "flipped: got %d, want -EBADMSG", k, off, bit, rc);
			}
			if (off == 0 || off == len - 1) {
				if (k > 0) {
					ck_assert_int_eq(ch_logread_at(lr, positions[k - 1], readbuf,
								       CH_RECORD_MAX, &rec), 0);
					check_record(k - 1, &rec, readbuf);
				}
				ck_assert_int_eq(ch_logread_at(lr, positions[k + 1 < N_RECORDS ?
									    k + 1 : 0],
							       readbuf, CH_RECORD_MAX, &rec), 0);
			}
		}
		ck_assert_int_eq(ch_logread_at(lr, positions[k], readbuf, CH_RECORD_MAX, &rec), 0);
		check_record(k, &rec, readbuf);
	}
	ch_logread_close(lr);
}
END_TEST

/* The last record cut short (a torn tail): -EBADMSG at every cut, even
 * when the buffer still holds the whole record from the read before (a
 * short read must not be topped up by stale bytes). */
START_TEST(test_torn_last_record)
{
	uint32_t k = N_RECORDS - 1;
	uint64_t start = segment_of(positions[k]);
	size_t len = positions[N_RECORDS] - positions[k];
	char path[PATH_MAX + 64];
	struct ch_record rec;
	uint8_t *whole = malloc(len);

	ck_assert_ptr_nonnull(whole);
	ck_assert_int_eq(ch_log_segment_path(path, sizeof(path), dir, start), 0);
	int fd = open(path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, whole, len, (off_t)(positions[k] - start)), (ssize_t)len);
	for (uint64_t cut = positions[N_RECORDS]; cut > positions[k]; cut -= 3) {
		struct ch_logread *lr = ch_logread_open(dir);
		ck_assert_ptr_nonnull(lr);
		/* Whole again, read into readbuf; then cut. */
		ck_assert_int_eq(pwrite(fd, whole, len, (off_t)(positions[k] - start)),
				 (ssize_t)len);
		ck_assert_int_eq(ch_logread_at(lr, positions[k], readbuf, CH_RECORD_MAX, &rec), 0);
		check_record(k, &rec, readbuf);
		ck_assert_int_eq(ftruncate(fd, (off_t)(cut - start)), 0);
		int rc = ch_logread_at(lr, positions[k], readbuf, CH_RECORD_MAX, &rec);
		if (cut == positions[N_RECORDS])
			ck_assert_int_eq(rc, 0);
		else
			ck_assert_msg(rc == -EBADMSG, "cut at %" PRIu64 ": got %d", cut, rc);
		/* The one before is whole. */
		ck_assert_int_eq(ch_logread_at(lr, positions[k - 1], readbuf, CH_RECORD_MAX,
					       &rec), 0);
		check_record(k - 1, &rec, readbuf);
		ch_logread_close(lr);
	}
	close(fd);
	free(whole);
}
END_TEST

START_TEST(test_small_buffer)
{
	struct ch_logread *lr = ch_logread_open(dir);
	struct ch_record rec;
	uint32_t k = 17;	/* a big one */
	size_t len = positions[k + 1] - positions[k];

	ck_assert_uint_gt(len, BIG_PAYLOAD);
	ck_assert_ptr_nonnull(lr);
	ck_assert_int_eq(ch_logread_at(lr, positions[k], readbuf, len - 8, &rec), -ENOBUFS);
	ck_assert_int_eq(ch_logread_at(lr, positions[k], readbuf, CH_RECORD_HDR_SIZE, &rec),
			 -ENOBUFS);
	ck_assert_int_eq(ch_logread_at(lr, positions[k], readbuf, CH_RECORD_HDR_SIZE - 1, &rec),
			 -ENOBUFS);
	ck_assert_int_eq(ch_logread_at(lr, positions[k], readbuf, 0, &rec), -ENOBUFS);
	/* Exactly the record's length is enough; nothing past it is touched. */
	uint8_t *exact = malloc(len);
	ck_assert_ptr_nonnull(exact);
	ck_assert_int_eq(ch_logread_at(lr, positions[k], exact, len, &rec), 0);
	check_record(k, &rec, exact);
	free(exact);
	ch_logread_close(lr);
}
END_TEST

/* Other names in the directory are not segments. */
START_TEST(test_stray_files_ignored)
{
	static const char *const names[] = {
		"junk", "00000000000000000000.log.tmp", "0000000000000000000.log",
		"0000000000000000000x.log", "00000000000000000000.lo", "lost+found.log..........",
	};
	struct ch_record rec;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char path[PATH_MAX + 64];
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(write(fd, "garbage!", 8), 8);
		close(fd);
	}
	struct ch_logread *lr = ch_logread_open(dir);
	ck_assert_ptr_nonnull(lr);
	for (uint32_t k = 0; k < N_RECORDS; k += 11) {
		ck_assert_int_eq(ch_logread_at(lr, positions[k], readbuf, CH_RECORD_MAX, &rec), 0);
		check_record(k, &rec, readbuf);
	}
	ch_logread_close(lr);
}
END_TEST

/* A record at a position the log never had, written into a segment by
 * hand at a valid-looking place (a misdirected write): its pos field
 * differs from where it sits, so it is refused. */
START_TEST(test_record_at_wrong_place)
{
	struct ch_logread *lr = ch_logread_open(dir);
	struct ch_record rec;
	uint8_t payload[MAX_PAYLOAD];
	uint8_t enc[MAX_PAYLOAD + 64];
	uint32_t k = 20, src = 21;
	char path[PATH_MAX + 64];

	ck_assert_ptr_nonnull(lr);
	/* Record src encoded for its own position, written over record k. */
	struct ch_record r = record_of(src, positions[src], payload);
	size_t n = ch_record_encode(enc, sizeof(enc), &r);
	ck_assert_uint_gt(n, 0);
	uint64_t start = segment_of(positions[k]);
	ck_assert_int_eq(ch_log_segment_path(path, sizeof(path), dir, start), 0);
	int fd = open(path, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, enc, n, (off_t)(positions[k] - start)), (ssize_t)n);
	close(fd);
	ck_assert_int_eq(ch_logread_at(lr, positions[k], readbuf, CH_RECORD_MAX, &rec),
			 -EBADMSG);
	ch_logread_close(lr);
}
END_TEST

START_TEST(test_empty_and_missing_dir)
{
	char empty[PATH_MAX + 16];
	struct ch_record rec;

	snprintf(empty, sizeof(empty), "%s/empty", dir);
	ck_assert_int_eq(mkdir(empty, 0700), 0);
	struct ch_logread *lr = ch_logread_open(empty);
	ck_assert_ptr_nonnull(lr);
	ck_assert_int_eq(ch_logread_at(lr, 0, readbuf, CH_RECORD_MAX, &rec), -ENOENT);
	ck_assert_int_eq(ch_logread_at(lr, 4096, readbuf, CH_RECORD_MAX, &rec), -ENOENT);
	ch_logread_close(lr);
	ck_assert_int_eq(rmdir(empty), 0);
	ck_assert_ptr_null(ch_logread_open(empty));
	ch_logread_close(NULL);
}
END_TEST

/* A segment listed at open but removed since: an error, not a crash. */
START_TEST(test_segment_removed_after_open)
{
	struct ch_logread *lr = ch_logread_open(dir);
	struct ch_record rec;
	char path[PATH_MAX + 64];
	uint32_t k = N_RECORDS / 2;
	uint64_t start = segment_of(positions[k]);

	ck_assert_ptr_nonnull(lr);
	ck_assert_int_eq(ch_log_segment_path(path, sizeof(path), dir, start), 0);
	ck_assert_int_eq(unlink(path), 0);
	int rc = ch_logread_at(lr, positions[k], readbuf, CH_RECORD_MAX, &rec);
	ck_assert_int_eq(rc, -ENOENT);
	ck_assert_int_eq(ch_logread_at(lr, positions[0], readbuf, CH_RECORD_MAX, &rec), 0);
	check_record(0, &rec, readbuf);
	ch_logread_close(lr);
}
END_TEST

/*
 * Names that only look like segments are ignored, as the writer and
 * recovery ignore them (segment.h: "other names in the directory are
 * ignored"). logread once parsed names with sscanf, which also takes a
 * sign or leading blanks, so "+0000000000000000048.log" counted as a
 * segment starting at 48: every position from 48 to the next real segment
 * then mapped to "00000000000000000048.log", which does not exist, and
 * reads there failed with -ENOENT.
 */
START_TEST(test_signed_segment_name_ignored)
{
	static const char *const names[] = {
		"+0000000000000000048.log", " 0000000000000000048.log",
	};
	struct ch_record rec;

	ck_assert_uint_lt(positions[0], 48);
	ck_assert_uint_gt(positions[2], 48);
	ck_assert_uint_eq(segment_of(positions[2]), 0);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char path[PATH_MAX + 64];
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
		ck_assert_int_ge(fd, 0);
		close(fd);
		struct ch_logread *lr = ch_logread_open(dir);
		ck_assert_ptr_nonnull(lr);
		int rc = ch_logread_at(lr, positions[2], readbuf, CH_RECORD_MAX, &rec);
		ck_assert_msg(rc == 0, "with a file named \"%s\": %s", names[i], strerror(-rc));
		check_record(2, &rec, readbuf);
		ch_logread_close(lr);
		unlink(path);
	}
}
END_TEST

static Suite *logread_suite(void)
{
	Suite *s = suite_create("logread");
	TCase *tc = tcase_create("logread");

	tcase_set_timeout(tc, TEST_TIMEOUT_S);
	tcase_add_unchecked_fixture(tc, case_setup, case_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_log_shape);
	tcase_add_test(tc, test_read_random_order);
	tcase_add_test(tc, test_read_in_order_and_back);
	tcase_add_test(tc, test_positions_inside_records);
	tcase_add_test(tc, test_positions_past_end);
	tcase_add_test(tc, test_corrupt_byte);
	tcase_add_test(tc, test_torn_last_record);
	tcase_add_test(tc, test_small_buffer);
	tcase_add_test(tc, test_stray_files_ignored);
	tcase_add_test(tc, test_signed_segment_name_ignored);
	tcase_add_test(tc, test_record_at_wrong_place);
	tcase_add_test(tc, test_empty_and_missing_dir);
	tcase_add_test(tc, test_segment_removed_after_open);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(logread_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
