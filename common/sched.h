/*
 * Scheduler hints for this process's threads, so that requests waiting on
 * a wake-up are not held up by CPU-bound work (password hashing) sharing
 * the cores.
 *
 * Under EEVDF (Linux 6.6; the per-thread slice hint since 6.12) a thread
 * that asks for a short slice gets an early deadline when it wakes and may
 * cut short the slice of a thread that is running, so it is served within
 * about that slice. Threads that wait on requests ask for one (the worker
 * loops and their history readers, the journal, and the load generator,
 * whose own wake-ups are part of every latency it measures).
 *
 * Background work (password hashing) runs as SCHED_IDLE: any other thread
 * that wakes preempts it at once, whatever its slice or lag, so a storm
 * of logins costs other requests almost nothing while the machine has
 * CPU to spare. When it has none, SCHED_IDLE work would starve; whoever
 * queues it watches for that (ch_pool_stalled) and raises the starved
 * threads with ch_sched_boost() to a low but fair priority, and starts no
 * more jobs at SCHED_IDLE until its backlog is gone. A job's thread leaves
 * SCHED_IDLE when its slow part ends (ch_sched_background_done), so it
 * never holds a lock shared with a latency thread at idle priority. An
 * unprivileged process may
 * leave SCHED_IDLE only with RLIMIT_NICE >= 20 - CH_SCHED_BOOST_NICE
 * (systemd: LimitNICE=+10) or CAP_SYS_NICE; without that, background work
 * runs at CH_SCHED_BOOST_NICE from the start instead of risking starvation.
 */
#ifndef CH_SCHED_H
#define CH_SCHED_H

#include <sys/types.h>

#define CH_SCHED_SLICE_NS 100000	/* the shortest slice the kernel allows */
#define CH_SCHED_BOOST_NICE 10		/* starved background work: a fair share */

/* Find out, once per process and before any background thread starts,
 * whether a thread can leave SCHED_IDLE here. Returns 1 if so. */
int ch_sched_init(void);

/* What ch_sched_init() found. */
int ch_sched_idle_ok(void);

/* The calling thread: nice 0, a short slice. Once per thread; a refusal
 * is logged at debug level (it is a hint). */
void ch_sched_latency(void);

/* The calling thread: SCHED_IDLE (at CH_SCHED_BOOST_NICE if it could not
 * leave it again). Call it at the start of each job (a boost may have
 * changed it since); a refusal is logged as a warning. */
void ch_sched_background(void);

/* The end of the background part of a job: the calling thread leaves
 * SCHED_IDLE for CH_SCHED_BOOST_NICE. Call it before the thread takes a
 * lock that a latency thread takes too (a pool's queue): an idle thread
 * preempted while holding it would hold up whoever waits for it for as
 * long as the machine is busy. Nothing where SCHED_IDLE is not used. */
void ch_sched_background_done(void);

/* Thread tid (of this process; 0: the caller): SCHED_OTHER at
 * CH_SCHED_BOOST_NICE, a short slice. 0, or -1 (logged once). */
int ch_sched_boost(pid_t tid);

#endif
