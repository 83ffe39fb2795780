/*
 * The journal's log on disk: a directory of segment files holding encoded
 * records (journal/record.h) back to back, and the three ways to use it:
 * a writer (the journal's single appender), readers (replay, history,
 * replication catch-up) and recovery (the scan at startup).
 *
 * Layout and invariants:
 * - A segment file is named by the log position of its first byte,
 *   "%020" PRIu64 ".log", so names sort in log order and a position maps to
 *   a file without an index. Other names in the directory are ignored.
 * - Segments are contiguous: each one starts where the one before ends, and
 *   every record's pos is its segment's start plus its offset in the file.
 *   A record never spans two files.
 * - Only the last segment grows. The writer rolls to a new file between
 *   batches, once the current one has reached the configured size, so a
 *   segment exceeds segment_size by at most one batch.
 * - Before a new segment is created the old one is fdatasync'ed, and after
 *   creation the directory is fsync'ed (so the new name survives a crash),
 *   so after a crash only the last segment can have a torn tail.
 *
 * Errors: functions return 0 (or a count) on success and a negative errno
 * on failure. Failed system calls are logged here, once, with the call, the
 * file and strerror; callers need not log them again.
 *
 * Failpoints (common/failpoint.h), in the test build only:
 *	log_write     each pwrite of an append: eio / enospc fail it; short
 *	              writes only the first half of what is left (a real
 *	              partial write; the append loop then writes the rest, and
 *	              if the point keeps firing the append fails with EIO when
 *	              a write makes no progress)
 *	log_fsync     every fdatasync/fsync the writer makes (segment data and
 *	              the directory): fails with the action's errno
 *	log_truncate  the ftruncate that rolls back a failed append: fails
 *	              with the action's errno, leaving the failed batch in the
 *	              file (see "A failed append" below)
 */
#ifndef CH_SEGMENT_H
#define CH_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "journal/record.h"

#define CH_LOG_SEGMENT_SIZE_DEFAULT (64ull << 20)	/* roll at 64 MiB */
#define CH_LOG_SEGMENT_SIZE_MIN 4096ull			/* smallest allowed */
#define CH_LOG_SEGMENT_NAME_LEN 24			/* 20 digits + ".log" */
#define CH_LOG_MESSAGE_MAX 512				/* recovery report text */

/* Path of the segment starting at start: "dir/%020" PRIu64 ".log".
 * Returns 0, or -ENAMETOOLONG when it does not fit in cap. */
int ch_log_segment_path(char *out, size_t cap, const char *dir, uint64_t start);

/* The start position a segment file name stands for: 0, or -1 when name
 * is not exactly 20 decimal digits and ".log". */
int ch_log_segment_parse(const char *name, uint64_t *start);

/* ---- writer --------------------------------------------------------- */

/*
 * The single appender. Not thread-safe: one thread owns it.
 *
 * Durability: ch_log_append() puts records in the page cache (ack=write);
 * ch_log_sync() makes everything appended so far durable (ack=fsync).
 *
 * Any I/O error (write, fsync, creating a segment) makes the writer
 * unusable: that call and every later one returns the same negative errno,
 * and the journal must stop (DESIGN.md: an fsync error is fatal). In
 * particular fsync is never retried on the same file descriptor: after a
 * failed fsync the kernel may already have dropped the dirty pages it could
 * not write (marking them clean) and reported the error once, so a second
 * fsync can return success while the data is lost. Only a restart, which
 * re-reads the log through recovery, learns what is really on disk.
 *
 * A failed append (an error, or a short write that cannot be completed) is
 * rolled back: the writer ftruncates the segment to the end of the last
 * good append, so recovery finds exactly the records of the appends that
 * succeeded. If that ftruncate fails too, the failed batch stays in the
 * file, as after a crash mid-append: the next ch_log_recover() cuts its
 * incomplete last record as a torn tail, and keeps its complete records,
 * which are valid though never acknowledged (a client retrying with its
 * client id gets them answered as already stored).
 */
struct ch_log_writer;

struct ch_log_writer_opts {
	uint64_t segment_size;	/* roll once a segment reaches this many
				 * bytes; 0 = CH_LOG_SEGMENT_SIZE_DEFAULT,
				 * at least CH_LOG_SEGMENT_SIZE_MIN */
};

/*
 * Open the log in dir for appending, creating the directory (mode 0700) and
 * a first segment at position 0 when there is none. Appends continue at the
 * end of the last segment, so run ch_log_recover() first: the writer does
 * not check the records already there (it refuses only a last segment whose
 * size is not a multiple of 8). opts may be NULL for the defaults.
 */
int ch_log_writer_open(struct ch_log_writer **out, const char *dir,
		       const struct ch_log_writer_opts *opts);

/*
 * Append len bytes of encoded records (one or more whole records, the
 * first at ch_log_end(), each at the position after the one before) with
 * one write, after rolling to a new segment if the current one is full.
 * The batch's framing and positions are checked first (not the CRCs);
 * -EINVAL for a malformed batch, which writes nothing and leaves the writer
 * usable. On an I/O error the batch is rolled back (see above) and the
 * writer is unusable. Records of a failed append must not be acknowledged.
 */
int ch_log_append(struct ch_log_writer *w, const void *recs, size_t len);

/* fdatasync the current segment if anything was appended since the last
 * sync. Earlier segments were synced when the writer rolled off them. */
int ch_log_sync(struct ch_log_writer *w);

/* Start a new segment now (no-op when the current one is empty). */
int ch_log_roll(struct ch_log_writer *w);

/* Position where the next record goes (the log's end). */
uint64_t ch_log_end(const struct ch_log_writer *w);

/* Everything before this position is durable (the last successful sync). */
uint64_t ch_log_synced_end(const struct ch_log_writer *w);

/* 0, or the negative errno that made the writer unusable. */
int ch_log_writer_error(const struct ch_log_writer *w);

/* Close the files. Does not sync: call ch_log_sync() first for that. */
void ch_log_writer_close(struct ch_log_writer *w);

/* ---- reader --------------------------------------------------------- */

/*
 * Iterates records from a position onwards, across segments, with large
 * buffered reads and no allocation per record. Any number of readers may
 * run beside the writer (in other threads or processes); each reader is
 * used by one thread at a time.
 *
 * At the end of the log ch_log_reader_next() returns 0; called again later
 * it returns the records appended since. A reader beside a live writer
 * should be given the writer's end (or synced end) as its limit, so it never
 * looks at a record that is still being written.
 */
struct ch_log_reader;

/*
 * Open a reader at log position from, which must be a record boundary: the
 * pos of a record, or the end of the log. -ERANGE when from is past the end
 * of the log, -ENOENT when no segment holds it (before the first segment, or
 * an empty directory and from > 0). A from inside a record is not detected
 * here: the first ch_log_reader_next() fails with -EBADMSG.
 */
int ch_log_reader_open(struct ch_log_reader **out, const char *dir, uint64_t from);

/* Stop before this position (UINT64_MAX, the default, means no limit). */
void ch_log_reader_set_limit(struct ch_log_reader *r, uint64_t limit);

/*
 * The next record into *rec, pointing into the reader's buffer (valid until
 * the next call or close). Returns 1 for a record, 0 at the end of the log
 * or the limit, -EBADMSG for a damaged record or a gap between segments
 * (logged with the file and offset), or another negative errno.
 */
int ch_log_reader_next(struct ch_log_reader *r, struct ch_record *rec);

/* Log position of the record the next call returns. */
uint64_t ch_log_reader_pos(const struct ch_log_reader *r);

void ch_log_reader_close(struct ch_log_reader *r);

/* ---- recovery ------------------------------------------------------- */

/*
 * Called for every valid record, in log order, during recovery's single
 * pass. rec points into a buffer reused for the next record. Return 0 to
 * go on, or a negative errno to stop recovery, which then returns it
 * (-ECANCELED for a positive value) and changes nothing on disk.
 */
typedef int ch_log_record_fn(const struct ch_record *rec, void *arg);

enum ch_log_recover_flags {
	/* Corruption before the tail: truncate there (and remove every later
	 * segment) instead of refusing. Loses the records after the damage;
	 * for an operator who chose that (e.g. chatd --repair-journal). */
	CH_LOG_RECOVER_REPAIR = 1 << 0,
	/* Change nothing on disk; report what would be done. */
	CH_LOG_RECOVER_DRY_RUN = 1 << 1,
};

/* What recovery found, and what it did. */
enum ch_log_recover_outcome {
	CH_LOG_CLEAN = 0,	/* every byte of every segment is a valid record */
	CH_LOG_TAIL_CUT,	/* a torn tail (a crash mid-append) was cut off */
	CH_LOG_REPAIRED,	/* corruption before the tail; REPAIR cut there */
	CH_LOG_REFUSED,		/* corruption before the tail; nothing changed */
};

struct ch_log_recover_report {
	enum ch_log_recover_outcome outcome;
	uint64_t n_segments;	/* segment files found */
	uint64_t n_records;	/* valid records kept (and passed to fn) */
	uint64_t first_pos;	/* start of the first segment */
	uint64_t end_pos;	/* the log's end after recovery (REFUSED:
				 * where the valid prefix ends) */
	uint64_t bad_pos;	/* log position of the damage (if any) */
	uint64_t bytes_cut;	/* bytes removed (DRY_RUN, REFUSED: that
				 * would be removed) */
	uint64_t segments_removed;	/* segment files removed (likewise) */
	char message[CH_LOG_MESSAGE_MAX];	/* one line for people: what was
						 * found where (file, offset,
						 * why) and what was done */
};

/*
 * Scan every segment of dir in order, checking each record (length, CRC,
 * position) and that segments are contiguous, and call fn (may be NULL) for
 * each valid record so the caller rebuilds its state in the same pass.
 *
 * When a record is bad, recovery searches the rest of that segment, 8 bytes
 * at a time, for a valid record (one whose pos equals its offset and whose
 * CRC checks):
 * - the last segment, nothing valid after the bad record: a torn tail from
 *   a crash mid-append. It is cut (ftruncate + fsync), always, and logged;
 *   outcome CH_LOG_TAIL_CUT.
 * - a valid record later on, a bad record in any segment but the last, or a
 *   segment that does not start where the previous one ended: corruption
 *   that a crash cannot explain, and cutting there would lose records that
 *   were acknowledged. Refused (-EBADMSG, outcome CH_LOG_REFUSED, message
 *   names the segment file and offset), unless flags has
 *   CH_LOG_RECOVER_REPAIR: then the segment is cut there, the later
 *   segments are removed, and the outcome is CH_LOG_REPAIRED.
 * fn has then been called for exactly the records before the damage.
 *
 * A missing directory is an empty log. Returns 0 (the log is ready for
 * ch_log_writer_open), -EBADMSG when refused, a negative errno on I/O error,
 * or what fn returned. rep is always filled.
 */
int ch_log_recover(const char *dir, unsigned flags, ch_log_record_fn *fn,
		   void *arg, struct ch_log_recover_report *rep);

/* ---- truncation ----------------------------------------------------- */

/*
 * Cut the log in dir at pos, a record boundary (no writer may be open):
 * segments wholly past pos are removed (last first), the one holding pos
 * is cut there, durably (fsync of the file, and of the directory when a
 * segment went). For replication fencing: a returning old primary drops
 * the records the new primary never had (journal/repl.h). A pos at or
 * past the end changes nothing. *bytes_cut (may be NULL) gets the bytes
 * removed. Returns 0 or a negative errno (logged).
 */
int ch_log_truncate(const char *dir, uint64_t pos, uint64_t *bytes_cut);

#endif
