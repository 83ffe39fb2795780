/*
 * Failpoints: named places in I/O paths where a test build can make a call
 * fail on purpose (EIO, ENOSPC, a short write), to prove the error paths.
 *
 * Compiled in only when CH_FAILPOINTS is defined (the test build:
 * `make FAILPOINTS=1`). Otherwise CH_FAILPOINT(name) is the constant
 * CH_FP_NONE, the compiler drops the branches it guards, and a production
 * binary carries no trace of them; ch_failpoint_set() then returns -ENOTSUP.
 *
 * Use at a call site:
 *
 *	switch (CH_FAILPOINT("log_fsync")) {
 *	case CH_FP_NONE:  rc = fdatasync(fd); break;
 *	default:          errno = EIO; rc = -1; break;
 *	}
 *
 * Spec syntax, from the environment variable CHATD_FAILPOINTS (read on first
 * use) or from ch_failpoint_set():
 *
 *	spec   := entry { "," entry }
 *	entry  := name "=" action [ "@" N ] [ ":" mode ]
 *	action := "eio" | "enospc" | "short"
 *	mode   := "always" | "once"
 *
 * e.g. CHATD_FAILPOINTS="log_write=enospc@3,log_fsync=eio@2:once".
 * The Nth call through the named point (counting from 1; N defaults to 1)
 * fires; with "always" (the default) every later call fires too, with
 * "once" only the Nth. Several entries may name the same point; the first
 * that fires on a call wins. A malformed CHATD_FAILPOINTS aborts the
 * process: a test that asked for failures must not quietly run without them.
 *
 * What an action means is up to the call site; the points placed so far
 * (journal/segment.c) document theirs next to the failpoint names there.
 *
 * Thread safety: ch_failpoint_hit() may run in several threads (the call
 * counters are atomic); ch_failpoint_set() must not run while another thread
 * is inside ch_failpoint_hit().
 */
#ifndef CH_FAILPOINT_H
#define CH_FAILPOINT_H

#include <stdint.h>

enum ch_fp_action {
	CH_FP_NONE = 0,	/* carry on normally */
	CH_FP_EIO,	/* fail the call with EIO */
	CH_FP_ENOSPC,	/* fail the call with ENOSPC */
	CH_FP_SHORT	/* a write writes only part of what it was given */
};

#define CH_FAILPOINT_NAME_MAX 32	/* bytes of a point's name, NUL included */
#define CH_FAILPOINT_MAX_ENTRIES 16	/* entries in one spec */
#define CH_FAILPOINT_ENV "CHATD_FAILPOINTS"

#ifdef CH_FAILPOINTS
#define CH_FAILPOINT(name) ch_failpoint_hit(name)
#else
#define CH_FAILPOINT(name) CH_FP_NONE
#endif

/* 1 when this build has failpoints (CH_FAILPOINTS), 0 otherwise. */
int ch_failpoint_compiled_in(void);

/*
 * Replace every active entry by those of spec (NULL or "" clears them all)
 * and reset the counters. Returns 0, -EINVAL for a malformed spec (logged;
 * nothing changes), or -ENOTSUP in a build without failpoints.
 */
int ch_failpoint_set(const char *spec);

/* ch_failpoint_set(getenv(CHATD_FAILPOINTS)); done on first use anyway. */
int ch_failpoint_load_env(void);

/* Count one call through the point name and say what it must do. */
enum ch_fp_action ch_failpoint_hit(const char *name);

/* How many times the point name has fired since the last set (for tests). */
uint64_t ch_failpoint_fired(const char *name);

/* The errno an action stands for (EIO for CH_FP_SHORT), 0 for none. */
int ch_failpoint_errno(enum ch_fp_action action);

#endif
