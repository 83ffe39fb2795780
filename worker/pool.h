/*
 * A small bounded thread pool for the slow work a worker's event loop must
 * never do itself: password hashing (yescrypt, ~16 MiB and ~20-30 ms each),
 * S3 calls, reads of old history.
 *
 * How it is used, all from the loop thread except job->fn:
 *
 *	struct login_job { struct ch_job job; ...inputs and results... };
 *
 *	lj->job.fn = login_job_run;		// runs on a pool thread
 *	if (ch_pool_submit(pool, &lj->job) < 0)	// EAGAIN: queue full -> 503
 *		...
 *	// the loop reads ch_pool_eventfd(pool) with io_uring (or polls it);
 *	// when that completes:
 *	ch_pool_reap(pool, login_job_done);	// done() per finished job
 *
 * and done() finds its struct with CH_POOL_CONTAINER_OF(job, struct
 * login_job, job).
 *
 * Contract:
 * - fn(job) runs on exactly one pool thread; done(job) runs later on the
 *   thread that calls ch_pool_reap, once per job, in the order the jobs
 *   finished. Between submit and done the pool owns job->next and the
 *   caller must not touch the job; fn and done may use the rest freely.
 *   Everything fn wrote is visible to done (the done list's mutex orders it).
 * - The eventfd is a wake-up, not a count: after one or more jobs finish it
 *   becomes readable at least once; one ch_pool_reap then hands over every
 *   job finished so far. Its counter value means nothing. Reading the
 *   eventfd before calling ch_pool_reap (an io_uring read does) is fine:
 *   ch_pool_reap reads it again without blocking and ignores EAGAIN.
 * - At most max_queue jobs wait for a thread; a submit beyond that fails
 *   with EAGAIN at once (back-pressure, never blocking the loop). Running
 *   jobs are not counted in max_queue, so threads + max_queue jobs can be
 *   in the pool at once.
 * - Pool threads block every signal, so signals reach the loop thread.
 * - Each pool thread owns one zeroed struct crypt_data (~32 KiB) for
 *   libxcrypt's crypt_rn; a job gets it from ch_pool_thread_crypt_data().
 * - ch_pool_destroy: jobs already running finish; jobs still queued are
 *   NOT run (a stopping worker should not sit through a queue of hashes).
 *   Every job the pool still holds is then handed to done() (finished jobs
 *   first, in completion order, then unrun jobs in submission order, with
 *   job->cancelled set), so callers free their memory on one path.
 */
#ifndef CH_POOL_H
#define CH_POOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct crypt_data;
struct ch_pool;

struct ch_job {
	void (*fn)(struct ch_job *job);	/* set by the caller; runs on a pool thread */
	/* Optional: when set, reap and destroy call it for this job instead
	 * of their done argument (one pool serving several kinds of job). */
	void (*done)(struct ch_job *job);
	struct ch_job *next;		/* the pool's queue / done-list link */
	uint64_t queued_ms;		/* the pool's: when it was submitted */
	int cancelled;			/* 1: destroyed before fn ran (fn never ran) */
};

/* The struct a job is embedded in, from a pointer to the embedded job. */
#define CH_POOL_CONTAINER_OF(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* Limits on ch_pool_create's arguments. */
#define CH_POOL_MAX_THREADS 256
#define CH_POOL_MAX_QUEUE   (1 << 20)

/*
 * Start threads (1..CH_POOL_MAX_THREADS) pool threads; at most max_queue
 * (1..CH_POOL_MAX_QUEUE) jobs may wait for one. Returns NULL with errno
 * set (EINVAL for arguments out of range), the failing call logged.
 */
struct ch_pool *ch_pool_create(int threads, int max_queue);

/* The eventfd (EFD_NONBLOCK | EFD_CLOEXEC) that wakes the loop; owned by
 * the pool, closed by ch_pool_destroy. */
int ch_pool_eventfd(const struct ch_pool *pool);

/*
 * Queue job (job->fn must be set). 0 on success; -1 with errno EAGAIN when
 * max_queue jobs are already waiting, EINVAL for a job without fn, or
 * ESHUTDOWN while the pool is being destroyed. Never blocks for long: it
 * takes the queue mutex, which is only held for list operations.
 */
int ch_pool_submit(struct ch_pool *pool, struct ch_job *job);

/*
 * On the loop thread, after the eventfd fired: clear the eventfd and call
 * done(job) for every job finished so far, in completion order. Returns
 * how many. done may submit new jobs. Jobs finishing while done runs are
 * left for the next call (the eventfd will fire again for them).
 */
size_t ch_pool_reap(struct ch_pool *pool, void (*done)(struct ch_job *job));

/* Jobs queued plus jobs running now (not finished-but-unreaped), for
 * metrics. A snapshot: it may change as soon as it is returned. */
size_t ch_pool_queue_depth(struct ch_pool *pool);

/*
 * Whether the pool is starved of CPU: a job has waited in the queue, or
 * has been running, for more than limit_ms. If so, the kernel thread ids
 * of the threads running a job now (at most max, in tids), so the caller
 * can raise their priority; 0 otherwise. A thread's job sets its own
 * scheduling when it starts, so how long a raise lasts is the caller's
 * to decide (worker/api.c: until the pool has no work).
 */
int ch_pool_stalled(struct ch_pool *pool, uint64_t limit_ms, pid_t *tids, int max);

/*
 * The calling pool thread's struct crypt_data (zeroed at pool creation,
 * reused by every job on that thread), or NULL when called from a thread
 * that is not a pool thread.
 */
struct crypt_data *ch_pool_thread_crypt_data(void);

/*
 * Stop and free the pool: wait for running jobs, join the threads, then
 * hand every job still held to done (may be NULL when callers own nothing
 * in their jobs): finished jobs with cancelled == 0, then never-run jobs
 * with cancelled == 1. Call from the loop thread; cancel any io_uring read
 * of the eventfd first (the fd is closed here). NULL pool is a no-op.
 */
void ch_pool_destroy(struct ch_pool *pool, void (*done)(struct ch_job *job));

#endif
