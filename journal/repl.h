/*
 * Replication: a hot standby that follows the primary's log over TCP, the
 * ack = replica durability, promotion and fencing. Runs inside the journal
 * process, on its one thread: the journal polls the sockets this module
 * hands it and calls in at a few points (journal/journal.c, "repl hooks").
 *
 * Roles. The role at start is [replication] role, unless the file ROLE in
 * the log directory (written durably at each promotion and demotion) says
 * otherwise: a promoted standby must stay primary across a restart of its
 * journal, and a fenced primary must stay standby.
 *
 * Primary: listens on [replication] listen. A standby that connects and
 * proves the secret says its log end and the epoch of its last record;
 * the primary answers where streaming starts (see fencing) and sends
 * RECORDS from the segment files (catch-up) and then as batches are
 * committed (live), up to the synced end (ack = fsync or replica) or the
 * end (ack = write), in messages of at most CH_REPL_BATCH_BYTES. An empty
 * RECORDS every CH_REPL_HEARTBEAT_MS tells the standby the link is alive;
 * a peer silent for CH_REPL_PEER_TIMEOUT_MS is dropped (a cut network
 * shows as silence, not as an error).
 *
 * Standby: connects to [replication] primary with backoff, checks every
 * record (CRC, position) before appending it at the same position with the
 * same bytes, fsyncs each received batch unless its ack = write, applies
 * the records to the state (so reads, joins and live delivery work there)
 * and reports its received and durable ends. Writes are refused
 * (CH_BUS_READ_ONLY). A restart of either side resumes from the standby's
 * end: positions are the same on both sides.
 *
 * ack = replica: the reply to a write is held until the standby reports
 * that position durable; after ack_timeout it is answered
 * CH_BUS_REPLICA_UNAVAILABLE instead (the record stays in the log and
 * reaches the standby later; a retry with its client id then gets the ack).
 *
 * Epochs and fencing. Every record carries the epoch of the primary that
 * wrote it; promotion appends CH_REC_EPOCH_BUMPED with epoch + 1, so the
 * log itself says where each epoch began. When a standby connects with
 * (end, last epoch E), the primary starts it at min(end, where the first
 * epoch after E begins in the primary's log): records past that point
 * were written by an old primary the new one never heard from, and the
 * standby cuts them (ch_log_truncate) and rebuilds its state before it
 * takes anything. A primary whose config names a peer asks that peer at
 * start (CH_REPL_PROBE_MS at most), and again every CH_REPL_PROBE_EVERY_MS
 * while no standby is attached (without blocking); a peer that is primary
 * in a newer epoch makes it a standby (ROLE = standby) that follows the
 * peer, and the same cut applies. Replies held for ack = replica fail at
 * that moment. A standby never follows a peer older than itself.
 *
 * Invariants: the standby's log is always a prefix of the primary's at
 * the same positions; a reply held for ack = replica is never sent as a
 * success unless the standby's durable end is past its record.
 *
 * The code is in three parts, journal/repl.c (the core), repl_primary.c
 * and repl_standby.c, which share journal/repl_int.h; that header says
 * what each part owns.
 */
#ifndef CH_REPL_H
#define CH_REPL_H

#include "journal/record.h"
#include "journal/segment.h"
#include "master/config.h"
#include "shm/shm.h"

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#define CH_REPL_BATCH_BYTES (1u << 20)	/* records per RECORDS message, about */
#define CH_REPL_OUT_HIGH (4u << 20)	/* stop reading the log past this queued */
#define CH_REPL_HEARTBEAT_MS 500
#define CH_REPL_PEER_TIMEOUT_MS 3000
#define CH_REPL_BACKOFF_MIN_MS 100
#define CH_REPL_BACKOFF_MAX_MS 3000
#define CH_REPL_PROBE_MS 1000		/* the blocking probe at start, at most */
#define CH_REPL_PROBE_EVERY_MS 2000	/* then, while no standby is attached */
#define CH_REPL_MAX_CONNS 4		/* standby + peers still in handshake */
#define CH_REPL_MAX_FDS (CH_REPL_MAX_CONNS + 1)
#define CH_REPL_SECRET_MAX 4096
#define CH_REPL_ROLE_FILE "ROLE"

/* What the journal does for this module. */
struct ch_repl_host {
	void *arg;
	/* A record the standby received and appended: apply it to the state
	 * and queue its frame for the room ring. Non-zero stops the journal. */
	int (*apply)(void *arg, const struct ch_record *rec);
	/* The log was cut (the writer had been closed): rebuild the state
	 * from the log (calling ch_repl_observe for each record) and reopen
	 * the writer into *log. */
	int (*reload)(void *arg, struct ch_log_writer **log);
	/* A held reply is due for worker w: bytes as the journal queued them. */
	void (*reply)(void *arg, int w, const void *bytes, size_t len);
};

struct ch_repl;

/* Before recovery: settings, the secret, the ROLE file. NULL on error
 * (logged). log_dir is the segment directory. */
struct ch_repl *ch_repl_new(const struct ch_config *cfg, struct ch_stats *stats,
			    const char *log_dir, const struct ch_repl_host *host);
void ch_repl_free(struct ch_repl *r);

/* Every record of the log, in order: at recovery and as it is added. */
void ch_repl_observe(struct ch_repl *r, const struct ch_record *rec);

/* After recovery, with the journal's writer (kept: this module appends
 * through it on a standby, and replaces it through host->reload when the
 * log is cut): the fencing probe, then listen (primary) or start
 * following (standby). 0, or -1 to stop the journal. */
int ch_repl_start(struct ch_repl *r, struct ch_log_writer **log);

uint32_t ch_repl_epoch(const struct ch_repl *r);
int ch_repl_is_standby(const struct ch_repl *r);

/* Whether a bus request (enum ch_req_type) changes state: a standby
 * refuses it; ack = replica holds its reply. Types this module does not
 * know count as writes (the safe side). */
int ch_repl_is_write_request(uint32_t type);

/* Sockets to poll (at most CH_REPL_MAX_FDS); lowers *timeout_ms to the
 * next deadline. Returns the number filled. */
int ch_repl_pollfds(struct ch_repl *r, struct pollfd *pfds, int *timeout_ms);

/* After poll, with the same array: socket I/O, timers. Returns 1 when
 * replies or frames were queued for the journal to post (call its commit),
 * 0 when not, -1 on a fatal log error. */
int ch_repl_process(struct ch_repl *r, const struct pollfd *pfds, int n);

/* Primary: a batch of n records is in the log (and synced, per ack). */
void ch_repl_appended(struct ch_repl *r, uint32_t n);

/* ack = replica: hold this reply (worker w) until the standby holds pos. */
void ch_repl_hold(struct ch_repl *r, int w, const void *bytes, size_t len, uint64_t pos);

/* SIGUSR2: a standby becomes primary in a new epoch. 0, or -1 on a log
 * error (fatal). A primary logs and ignores it. */
int ch_repl_promote(struct ch_repl *r);

#endif
