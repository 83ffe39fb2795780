/*
 * The worker's thread pool: see pool.h for the contract.
 *
 * Invariants, all under pool->lock:
 * - queue holds the jobs not yet started, oldest first; queued is its
 *   length and never exceeds max_queue.
 * - running counts jobs whose fn is executing now.
 * - done holds finished jobs not yet reaped, in the order they finished.
 * - A job is on at most one list, and on none while its fn runs.
 * - stopping, once set, is never cleared; no job starts after it is set.
 * - a thread's job_ms is non-zero exactly while its fn runs.
 *
 * Wake-up rule: a thread writes the eventfd only when it puts a job on an
 * empty done list, so a burst of completions costs one write. This cannot
 * lose a wake-up because ch_pool_reap reads (clears) the eventfd BEFORE it
 * takes the done list: a job pushed after the take finds the list empty and
 * writes again; a job pushed before the take is in what was taken. The
 * other order (take, then clear) could clear the write of a job that
 * arrived in between and leave it stranded.
 */
#define _GNU_SOURCE
#include "worker/pool.h"

#include <crypt.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

#define POOL_THREAD_NAME_FMT "ch-pool-%u"
#define POOL_THREAD_NAME_MAX 16	/* Linux limit, NUL included */
/* Thread indexes fit a uint8_t, so the name never truncates. */
_Static_assert(CH_POOL_MAX_THREADS <= 256, "thread index must fit uint8_t");

struct pool_list {
	struct ch_job *head;
	struct ch_job *tail;
};

struct pool_thread {
	pthread_t tid;
	struct ch_pool *pool;
	pid_t ktid;		/* the kernel's thread id; under pool->lock */
	uint64_t job_ms;	/* when its job started, 0 when idle; likewise */
	struct crypt_data cd;	/* this thread's only; zeroed by calloc */
};

struct ch_pool {
	pthread_mutex_t lock;	/* guards the fields down to stopping */
	pthread_cond_t work;	/* queue gained a job, or stopping was set */
	struct pool_list queue;
	struct pool_list done;
	size_t queued;
	size_t running;
	size_t max_queue;
	int stopping;

	int efd;
	int nthreads;		/* threads started and not yet joined */
	int nalloc;		/* entries in threads[] */
	struct pool_thread *threads;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Set once by each pool thread before it takes its first job. */
static __thread struct crypt_data *pool_tls_cd;

/* ---------------------------------------------------------------- */
/* lists                                                             */
/* ---------------------------------------------------------------- */

static void list_push(struct pool_list *l, struct ch_job *job)
{
	job->next = NULL;
	if (l->tail)
		l->tail->next = job;
	else
		l->head = job;
	l->tail = job;
}

static struct ch_job *list_pop(struct pool_list *l)
{
	struct ch_job *job = l->head;

	if (job) {
		l->head = job->next;
		if (!l->head)
			l->tail = NULL;
		job->next = NULL;
	}
	return job;
}

/* Hand each job of a detached list to its own done, else to done (if
 * any); returns how many. */
static size_t list_drain(struct ch_job *job, void (*done)(struct ch_job *))
{
	size_t n = 0;

	while (job) {
		struct ch_job *next = job->next;	/* done may free job */

		job->next = NULL;
		if (job->done)
			job->done(job);
		else if (done)
			done(job);
		n++;
		job = next;
	}
	return n;
}

/* ---------------------------------------------------------------- */
/* threads                                                           */
/* ---------------------------------------------------------------- */

static void pool_wake(struct ch_pool *pool)
{
	uint64_t one = 1;

	/* EAGAIN means the counter is already huge, so the loop will wake. */
	if (write(pool->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		ch_err_sys("write(pool eventfd)");
}

static void *pool_thread_main(void *arg)
{
	struct pool_thread *self = arg;
	struct ch_pool *pool = self->pool;

	pool_tls_cd = &self->cd;
	pthread_mutex_lock(&pool->lock);
	self->ktid = gettid();
	for (;;) {
		struct ch_job *job;
		int first_done;

		while (!pool->queue.head && !pool->stopping)
			pthread_cond_wait(&pool->work, &pool->lock);
		if (pool->stopping)
			break;
		job = list_pop(&pool->queue);
		pool->queued--;
		pool->running++;
		self->job_ms = now_ms();
		pthread_mutex_unlock(&pool->lock);

		job->fn(job);

		pthread_mutex_lock(&pool->lock);
		self->job_ms = 0;
		pool->running--;
		first_done = pool->done.head == NULL;
		list_push(&pool->done, job);
		if (first_done) {
			/* Write outside the lock; see "Wake-up rule" above. */
			pthread_mutex_unlock(&pool->lock);
			pool_wake(pool);
			pthread_mutex_lock(&pool->lock);
		}
	}
	pthread_mutex_unlock(&pool->lock);
	return NULL;
}

/* Stop and join every started thread; the pool's lists are left as is. */
static void pool_stop_threads(struct ch_pool *pool)
{
	pthread_mutex_lock(&pool->lock);
	pool->stopping = 1;
	pthread_cond_broadcast(&pool->work);
	pthread_mutex_unlock(&pool->lock);
	for (int i = 0; i < pool->nthreads; i++)
		pthread_join(pool->threads[i].tid, NULL);
	pool->nthreads = 0;
}

/*
 * Start the threads with every signal blocked (they inherit the mask), so
 * SIGTERM, SIGCHLD and friends go to the loop thread, never to a thread
 * in the middle of a hash.
 */
static int pool_start_threads(struct ch_pool *pool, int threads)
{
	sigset_t all, old;
	int rc = 0;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (int i = 0; i < threads; i++) {
		struct pool_thread *t = &pool->threads[i];
		char name[POOL_THREAD_NAME_MAX];

		t->pool = pool;
		rc = pthread_create(&t->tid, NULL, pool_thread_main, t);
		if (rc != 0) {
			ch_err_code("pthread_create", rc);
			break;
		}
		pool->nthreads++;
		snprintf(name, sizeof(name), POOL_THREAD_NAME_FMT, (unsigned)(uint8_t)i);
		pthread_setname_np(t->tid, name);	/* cosmetic: ignore failure */
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		errno = rc;
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- */
/* public API                                                        */
/* ---------------------------------------------------------------- */

struct ch_pool *ch_pool_create(int threads, int max_queue)
{
	struct ch_pool *pool;
	int saved;

	if (threads < 1 || threads > CH_POOL_MAX_THREADS || max_queue < 1 ||
	    max_queue > CH_POOL_MAX_QUEUE) {
		ch_err("ch_pool_create: threads %d (1..%d) or max_queue %d (1..%d) out of range",
		       threads, CH_POOL_MAX_THREADS, max_queue, CH_POOL_MAX_QUEUE);
		errno = EINVAL;
		return NULL;
	}
	pool = calloc(1, sizeof(*pool));
	if (!pool) {
		ch_err_sys("calloc(pool)");
		return NULL;
	}
	pool->efd = -1;
	pool->max_queue = (size_t)max_queue;
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->work, NULL);
	pool->threads = calloc((size_t)threads, sizeof(*pool->threads));
	if (!pool->threads) {
		ch_err_sys("calloc(pool threads)");
		goto fail;
	}
	pool->nalloc = threads;
	pool->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (pool->efd < 0) {
		ch_err_sys("eventfd");
		goto fail;
	}
	if (pool_start_threads(pool, threads) < 0)
		goto fail;
	return pool;
fail:
	saved = errno;
	ch_pool_destroy(pool, NULL);
	errno = saved;
	return NULL;
}

int ch_pool_eventfd(const struct ch_pool *pool)
{
	return pool->efd;
}

int ch_pool_submit(struct ch_pool *pool, struct ch_job *job)
{
	int err = 0;

	if (!job || !job->fn) {
		errno = EINVAL;
		return -1;
	}
	job->cancelled = 0;
	pthread_mutex_lock(&pool->lock);
	if (pool->stopping) {
		err = ESHUTDOWN;
	} else if (pool->queued >= pool->max_queue) {
		err = EAGAIN;
	} else {
		job->queued_ms = now_ms();
		list_push(&pool->queue, job);
		pool->queued++;
		pthread_cond_signal(&pool->work);
	}
	pthread_mutex_unlock(&pool->lock);
	if (err) {
		errno = err;
		return -1;
	}
	return 0;
}

size_t ch_pool_reap(struct ch_pool *pool, void (*done)(struct ch_job *job))
{
	struct ch_job *list;
	uint64_t count;

	/* Clear first, then take: see "Wake-up rule" at the top. */
	if (read(pool->efd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		ch_err_sys("read(pool eventfd)");
	pthread_mutex_lock(&pool->lock);
	list = pool->done.head;
	pool->done.head = pool->done.tail = NULL;
	pthread_mutex_unlock(&pool->lock);
	return list_drain(list, done);
}

int ch_pool_stalled(struct ch_pool *pool, uint64_t limit_ms, pid_t *tids, int max)
{
	uint64_t t = now_ms();
	int stalled, n = 0;

	pthread_mutex_lock(&pool->lock);
	stalled = pool->queue.head && t - pool->queue.head->queued_ms > limit_ms;
	for (int i = 0; i < pool->nthreads; i++) {
		const struct pool_thread *th = &pool->threads[i];
		if (th->job_ms && t - th->job_ms > limit_ms)
			stalled = 1;
	}
	for (int i = 0; stalled && i < pool->nthreads && n < max; i++)
		if (pool->threads[i].job_ms)
			tids[n++] = pool->threads[i].ktid;
	pthread_mutex_unlock(&pool->lock);
	return n;
}

size_t ch_pool_queue_depth(struct ch_pool *pool)
{
	size_t depth;

	pthread_mutex_lock(&pool->lock);
	depth = pool->queued + pool->running;
	pthread_mutex_unlock(&pool->lock);
	return depth;
}

struct crypt_data *ch_pool_thread_crypt_data(void)
{
	return pool_tls_cd;
}

void ch_pool_destroy(struct ch_pool *pool, void (*done)(struct ch_job *job))
{
	struct ch_job *job;

	if (!pool)
		return;
	if (pool->threads)
		pool_stop_threads(pool);
	/* No thread is left, so the lists need no lock from here on. */
	list_drain(pool->done.head, done);
	for (job = pool->queue.head; job; job = job->next)
		job->cancelled = 1;
	list_drain(pool->queue.head, done);
	if (pool->efd >= 0)
		close(pool->efd);
	pthread_cond_destroy(&pool->work);
	pthread_mutex_destroy(&pool->lock);
	/* Hashing may leave password-derived state in crypt_data. */
	if (pool->threads)
		explicit_bzero(pool->threads,
			       sizeof(*pool->threads) * (size_t)pool->nalloc);
	free(pool->threads);
	free(pool);
}
