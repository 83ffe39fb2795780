/*
 * Reading single records of the log by position, for pages of history:
 * the journal knows where a room's messages are (its per-room index), a
 * worker's pool thread reads them here with pread, so neither the
 * journal's write path nor a worker's loop waits on the disk.
 *
 * Records are immutable once written, so reading them needs no lock and
 * no word with the writer; only positions the journal has handed out
 * (records already appended) may be asked for.
 */
#ifndef CH_LOGREAD_H
#define CH_LOGREAD_H

#include "journal/record.h"

#include <stddef.h>
#include <stdint.h>

#define CH_LOGREAD_MAX_SEGMENTS 65536

struct ch_logread;

/* Open the log directory: lists its segments once. NULL on failure. */
struct ch_logread *ch_logread_open(const char *dir);
void ch_logread_close(struct ch_logread *lr);

/*
 * The calling thread's reader for dir, kept between calls (a pool thread
 * serving many history pages lists the directory and opens a segment once,
 * not per page); closed when the thread exits. NULL on failure.
 */
struct ch_logread *ch_logread_thread(const char *dir);

/*
 * Read and check the record at pos into buf (sized CH_RECORD_MAX at most;
 * the record's own length is used). On success *rec points into buf.
 * Returns 0, -EBADMSG for a record that does not check, -ENOENT when no
 * segment holds pos, or another negative errno. A miss lists the segments
 * again once, so a reader kept open sees segments rolled after it opened.
 */
int ch_logread_at(struct ch_logread *lr, uint64_t pos, void *buf, size_t cap,
		  struct ch_record *rec);

#endif
