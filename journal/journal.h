/*
 * The journal process: the single writer of chatd's persistent state.
 *
 * It takes requests from every worker's ingress ring, checks them against
 * the state (journal/state.h), turns the valid ones into records, appends a
 * whole batch with one write and, with ack = fsync, one fdatasync (group
 * commit), and only then publishes each new message's WebSocket frame to
 * its room ring and posts the replies. So nothing is acknowledged or
 * delivered before it meets the configured durability.
 */
#ifndef CH_JOURNAL_H
#define CH_JOURNAL_H

#include "master/config.h"
#include "shm/shm.h"

#define CH_JOURNAL_EXIT_REFUSED 3	/* the log is damaged: do not restart */
#define CH_JOURNAL_BATCH_BYTES (4u << 20)	/* records in one write, at most */
#define CH_JOURNAL_BATCH_REQUESTS 8192

/* Log directory under data_dir. */
#define CH_JOURNAL_DIR "journal"

/* Run the journal until SIGTERM; returns the exit status. repair: cut a
 * log damaged before its tail instead of refusing to start. */
int ch_journal_run(const struct ch_config *cfg, const struct ch_shm *shm, int repair);

#endif
