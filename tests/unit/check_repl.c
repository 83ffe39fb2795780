/*
 * Replication's log-side pieces: ch_log_truncate (the cut a fenced old
 * primary makes) inside a segment, at a segment boundary, across removed
 * segments, past the end, on an empty log; the log recovers clean after
 * each cut and a writer appends at the cut; and which bus requests count
 * as writes (refused on a standby, held for ack = replica).
 */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal/proto.h"
#include "journal/record.h"
#include "journal/repl.h"
#include "journal/segment.h"

#define SEG_SIZE 4096u		/* small segments so a log spans several */
#define PAYLOAD 200u

static char dir[256];

static void rm_dir(const char *d)
{
	DIR *dp = opendir(d);
	struct dirent *de;
	char path[512];

	if (!dp)
		return;
	while ((de = readdir(dp)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", d, de->d_name);
		unlink(path);
	}
	closedir(dp);
	rmdir(d);
}

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/check_repl.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	strcat(dir, "/log");
}

static void teardown(void)
{
	char parent[256];

	rm_dir(dir);
	snprintf(parent, sizeof(parent), "%s", dir);
	*strrchr(parent, '/') = '\0';
	rmdir(parent);
}

/* Append n records of one type at the end; returns their positions. */
static void append_records(struct ch_log_writer *w, int n, uint32_t epoch, uint64_t *pos)
{
	uint8_t buf[CH_RECORD_HDR_SIZE + PAYLOAD + 8], payload[PAYLOAD];

	memset(payload, 'x', sizeof(payload));
	for (int i = 0; i < n; i++) {
		struct ch_record rec = { .type = CH_REC_FILE_REMOVED, .epoch = epoch,
					 .pos = ch_log_end(w), .ts_ms = 1,
					 .payload = payload, .payload_len = PAYLOAD };
		size_t len = ch_record_encode(buf, sizeof(buf), &rec);
		ck_assert_uint_gt(len, 0);
		if (pos)
			pos[i] = rec.pos;
		ck_assert_int_eq(ch_log_append(w, buf, len), 0);
	}
	ck_assert_int_eq(ch_log_sync(w), 0);
}

static int count_records(const struct ch_record *rec, void *arg)
{
	(void)rec;
	(*(int *)arg)++;
	return 0;
}

/* Recover dir: 0 records changed, clean; returns the record count. */
static int recover_clean(uint64_t *end)
{
	struct ch_log_recover_report rep;
	int n = 0;

	ck_assert_int_eq(ch_log_recover(dir, 0, count_records, &n, &rep), 0);
	ck_assert_int_eq(rep.outcome, CH_LOG_CLEAN);
	*end = rep.end_pos;
	return n;
}

static struct ch_log_writer *open_writer(void)
{
	struct ch_log_writer *w = NULL;
	struct ch_log_writer_opts o = { .segment_size = SEG_SIZE };

	ck_assert_int_eq(ch_log_writer_open(&w, dir, &o), 0);
	return w;
}

START_TEST(truncate_inside_last_segment)
{
	uint64_t pos[10], end, cut;
	struct ch_log_writer *w = open_writer();

	append_records(w, 10, 1, pos);
	ch_log_writer_close(w);
	ck_assert_int_eq(ch_log_truncate(dir, pos[7], &cut), 0);
	ck_assert_int_eq(recover_clean(&end), 7);
	ck_assert_uint_eq(end, pos[7]);
	ck_assert_uint_eq(cut, 3 * ch_record_size(PAYLOAD));
	/* A writer continues exactly at the cut. */
	w = open_writer();
	ck_assert_uint_eq(ch_log_end(w), pos[7]);
	append_records(w, 2, 2, NULL);
	ch_log_writer_close(w);
	ck_assert_int_eq(recover_clean(&end), 9);
}
END_TEST

START_TEST(truncate_across_segments)
{
	uint64_t pos[60], end, cut;
	struct ch_log_writer *w = open_writer();

	/* Records one at a time: the writer rolls between appends. */
	append_records(w, 60, 1, pos);
	ch_log_writer_close(w);
	/* A position in an early segment: later segments go. */
	ck_assert_int_eq(ch_log_truncate(dir, pos[5], &cut), 0);
	ck_assert_int_eq(recover_clean(&end), 5);
	ck_assert_uint_eq(end, pos[5]);
	ck_assert_uint_eq(cut, 55 * ch_record_size(PAYLOAD));
	w = open_writer();
	ck_assert_uint_eq(ch_log_end(w), pos[5]);
	ch_log_writer_close(w);
}
END_TEST

START_TEST(truncate_at_segment_start)
{
	uint64_t pos[60], end;
	struct ch_log_writer *w = open_writer();
	uint64_t boundary = 0;

	append_records(w, 60, 1, pos);
	ch_log_writer_close(w);
	/* Find a record that starts a segment (its file exists). */
	for (int i = 1; i < 60 && !boundary; i++) {
		char path[512];
		struct stat st;
		ck_assert_int_eq(ch_log_segment_path(path, sizeof(path), dir, pos[i]), 0);
		if (stat(path, &st) == 0)
			boundary = pos[i];
	}
	ck_assert_uint_gt(boundary, 0);
	ck_assert_int_eq(ch_log_truncate(dir, boundary, NULL), 0);
	recover_clean(&end);
	ck_assert_uint_eq(end, boundary);
	char path[512];
	struct stat st;
	ck_assert_int_eq(ch_log_segment_path(path, sizeof(path), dir, boundary), 0);
	ck_assert_int_ne(stat(path, &st), 0);	/* the segment went, not left empty */
}
END_TEST

START_TEST(truncate_past_end_and_empty)
{
	uint64_t pos[3], end, cut = 99;
	struct ch_log_writer *w;

	/* No directory at all: cutting at 0 is nothing to do. */
	ck_assert_int_eq(ch_log_truncate(dir, 0, &cut), 0);
	ck_assert_uint_eq(cut, 0);
	w = open_writer();
	append_records(w, 3, 1, pos);
	uint64_t log_end = ch_log_end(w);
	ch_log_writer_close(w);
	ck_assert_int_eq(ch_log_truncate(dir, log_end, &cut), 0);
	ck_assert_uint_eq(cut, 0);
	ck_assert_int_eq(recover_clean(&end), 3);
	/* Cut everything: an empty log that starts at 0. */
	ck_assert_int_eq(ch_log_truncate(dir, 0, &cut), 0);
	ck_assert_int_eq(recover_clean(&end), 0);
	ck_assert_uint_eq(end, 0);
}
END_TEST

START_TEST(write_requests)
{
	/* Reads a standby serves. */
	static const uint32_t reads[] = {
		CH_REQ_HELLO, CH_REQ_GET_USER, CH_REQ_LIST_ROOMS, CH_REQ_HISTORY,
		CH_REQ_JOIN, CH_REQ_UNWATCH, CH_REQ_PRESENCE, CH_REQ_USERS, CH_REQ_WHO,
		CH_REQ_INFO,
	};
	static const uint32_t writes[] = {
		CH_REQ_REGISTER, CH_REQ_SET_PASSWORD, CH_REQ_CREATE_ROOM, CH_REQ_SEND,
		CH_REQ_DM, 999,	/* unknown: the safe side */
	};
	for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++)
		ck_assert_int_eq(ch_repl_is_write_request(reads[i]), 0);
	for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++)
		ck_assert_int_eq(ch_repl_is_write_request(writes[i]), 1);
}
END_TEST

static Suite *repl_suite(void)
{
	Suite *s = suite_create("repl");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, truncate_inside_last_segment);
	tcase_add_test(tc, truncate_across_segments);
	tcase_add_test(tc, truncate_at_segment_start);
	tcase_add_test(tc, truncate_past_end_and_empty);
	tcase_add_test(tc, write_requests);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(repl_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
