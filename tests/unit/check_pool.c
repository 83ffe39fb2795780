/*
 * Unit tests for worker/pool: every job runs once on a pool thread and
 * comes back once through reap, in completion order; the queue bound and
 * the depth count; the eventfd's readiness rules; per-thread crypt_data;
 * destroy with jobs finished, running and queued.
 *
 * Jobs that must be held at a known point wait on a gate (a semaphore the
 * test posts), so no test depends on sleeps or scheduling luck.
 */
#define _GNU_SOURCE
#include "worker/pool.h"

#include <check.h>
#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TEST_TIMEOUT_S 60
#define TEST_WAIT_MS 10000	/* far longer than any job here takes */
#define TEST_MANY_JOBS 20000
#define TEST_MANY_THREADS 4
#define TEST_MAX_ORDER 16

struct test_job {
	struct ch_job job;
	int index;
	sem_t *gate;		/* fn waits on it when set */
	sem_t *started;		/* fn posts it first when set */
	atomic_int ran;		/* how many times fn ran */
	int reaped;		/* how many times done saw it */
	int cancelled_seen;
	struct crypt_data *cd;	/* what fn saw */
	unsigned long checksum;	/* work result, checked in done */
};

static atomic_int fn_calls;
static int order[TEST_MAX_ORDER];
static int norder;

static void test_fn(struct ch_job *job)
{
	struct test_job *tj = CH_POOL_CONTAINER_OF(job, struct test_job, job);
	unsigned long sum = 0;

	if (tj->started)
		sem_post(tj->started);
	if (tj->gate)
		while (sem_wait(tj->gate) < 0 && errno == EINTR)
			;
	tj->cd = ch_pool_thread_crypt_data();
	for (int i = 0; i <= tj->index; i++)
		sum += (unsigned long)i * 2654435761u;
	tj->checksum = sum;
	atomic_fetch_add(&tj->ran, 1);
	atomic_fetch_add(&fn_calls, 1);
}

static unsigned long expected_checksum(int index)
{
	unsigned long sum = 0;

	for (int i = 0; i <= index; i++)
		sum += (unsigned long)i * 2654435761u;
	return sum;
}

static void test_done(struct ch_job *job)
{
	struct test_job *tj = CH_POOL_CONTAINER_OF(job, struct test_job, job);

	tj->reaped++;
	tj->cancelled_seen = job->cancelled;
	if (norder < TEST_MAX_ORDER)
		order[norder++] = tj->index;
}

static void reset_globals(void)
{
	atomic_store(&fn_calls, 0);
	norder = 0;
	memset(order, 0, sizeof(order));
}

static void job_init(struct test_job *tj, int index)
{
	memset(tj, 0, sizeof(*tj));
	tj->job.fn = test_fn;
	tj->index = index;
}

/* 1 when fd becomes readable within ms, 0 on timeout. */
static int wait_readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int rc;

	do
		rc = poll(&p, 1, ms);
	while (rc < 0 && errno == EINTR);
	ck_assert_int_ge(rc, 0);
	return rc == 1 && (p.revents & POLLIN);
}

static void wait_sem(sem_t *s)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += TEST_WAIT_MS / 1000;
	while (sem_timedwait(s, &ts) < 0) {
		ck_assert_int_eq(errno, EINTR);
	}
}

/* Spin (politely) until the pool's depth is want, or fail. */
static void wait_depth(struct ch_pool *pool, size_t want)
{
	for (int i = 0; i < TEST_WAIT_MS; i++) {
		if (ch_pool_queue_depth(pool) == want)
			return;
		usleep(1000);
	}
	ck_abort_msg("depth stayed %zu, wanted %zu", ch_pool_queue_depth(pool), want);
}

/* ---------------------------------------------------------------- */

START_TEST(test_create_args)
{
	struct test_job tj;
	struct ch_pool *pool;

	errno = 0;
	ck_assert_ptr_null(ch_pool_create(0, 1));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_null(ch_pool_create(1, 0));
	ck_assert_ptr_null(ch_pool_create(CH_POOL_MAX_THREADS + 1, 1));
	ck_assert_ptr_null(ch_pool_create(1, CH_POOL_MAX_QUEUE + 1));

	pool = ch_pool_create(1, 1);
	ck_assert_ptr_nonnull(pool);
	job_init(&tj, 0);
	tj.job.fn = NULL;
	errno = 0;
	ck_assert_int_eq(ch_pool_submit(pool, &tj.job), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_uint_eq(ch_pool_queue_depth(pool), 0);
	ch_pool_destroy(pool, NULL);
	ch_pool_destroy(NULL, NULL);	/* no-op */
}
END_TEST

START_TEST(test_many_jobs)
{
	struct test_job *jobs = calloc(TEST_MANY_JOBS, sizeof(*jobs));
	struct ch_pool *pool = ch_pool_create(TEST_MANY_THREADS, TEST_MANY_JOBS);
	size_t reaped = 0;

	ck_assert_ptr_nonnull(jobs);
	ck_assert_ptr_nonnull(pool);
	reset_globals();
	for (int i = 0; i < TEST_MANY_JOBS; i++) {
		job_init(&jobs[i], i);
		ck_assert_int_eq(ch_pool_submit(pool, &jobs[i].job), 0);
	}
	while (reaped < TEST_MANY_JOBS) {
		ck_assert_msg(wait_readable(ch_pool_eventfd(pool), TEST_WAIT_MS),
			      "eventfd silent with %zu of %d reaped", reaped,
			      TEST_MANY_JOBS);
		reaped += ch_pool_reap(pool, test_done);
	}
	ck_assert_uint_eq(reaped, TEST_MANY_JOBS);
	ck_assert_int_eq(atomic_load(&fn_calls), TEST_MANY_JOBS);
	for (int i = 0; i < TEST_MANY_JOBS; i++) {
		ck_assert_int_eq(atomic_load(&jobs[i].ran), 1);
		ck_assert_int_eq(jobs[i].reaped, 1);
		ck_assert_int_eq(jobs[i].cancelled_seen, 0);
		ck_assert_ptr_nonnull(jobs[i].cd);
		/* fn's writes are visible to done's thread */
		ck_assert_uint_eq(jobs[i].checksum, expected_checksum(i));
	}
	ck_assert_uint_eq(ch_pool_queue_depth(pool), 0);
	/* Nothing left: the eventfd is quiet and reap finds nothing. */
	ck_assert_int_eq(ch_pool_reap(pool, test_done), 0);
	ck_assert(!wait_readable(ch_pool_eventfd(pool), 0));
	ch_pool_destroy(pool, test_done);
	free(jobs);
}
END_TEST

/*
 * Many short rounds with reaps racing the completions: a wake-up lost
 * between a reap's clear and its take would leave a finished job behind
 * a silent eventfd, and the round would time out.
 */
START_TEST(test_no_lost_wakeup)
{
	enum { ROUNDS = 3000, PER_ROUND = 8, LOST_MS = 2000 };
	struct test_job jobs[PER_ROUND];
	struct ch_pool *pool = ch_pool_create(TEST_MANY_THREADS, PER_ROUND);

	ck_assert_ptr_nonnull(pool);
	for (int r = 0; r < ROUNDS; r++) {
		size_t reaped = 0;

		reset_globals();
		for (int i = 0; i < PER_ROUND; i++) {
			job_init(&jobs[i], i);
			if (ch_pool_submit(pool, &jobs[i].job) != 0)
				ck_abort_msg("submit failed in round %d", r);
		}
		while (reaped < PER_ROUND) {
			if (!wait_readable(ch_pool_eventfd(pool), LOST_MS))
				ck_abort_msg("round %d: %zu of %d reaped, eventfd silent",
					     r, reaped, PER_ROUND);
			reaped += ch_pool_reap(pool, NULL);
		}
	}
	ch_pool_destroy(pool, NULL);
}
END_TEST

/* Two threads: B finishes before A, so B is reaped first, and a reap sees
 * only what has finished. */
START_TEST(test_completion_order)
{
	struct ch_pool *pool = ch_pool_create(2, 4);
	struct test_job a, b, c;
	sem_t gate_a, gate_b, started;

	ck_assert_ptr_nonnull(pool);
	reset_globals();
	sem_init(&gate_a, 0, 0);
	sem_init(&gate_b, 0, 0);
	sem_init(&started, 0, 0);
	job_init(&a, 1);
	job_init(&b, 2);
	a.gate = &gate_a;
	b.gate = &gate_b;
	a.started = b.started = &started;
	ck_assert_int_eq(ch_pool_submit(pool, &a.job), 0);
	ck_assert_int_eq(ch_pool_submit(pool, &b.job), 0);
	wait_sem(&started);
	wait_sem(&started);
	ck_assert_uint_eq(ch_pool_queue_depth(pool), 2);

	sem_post(&gate_b);
	ck_assert(wait_readable(ch_pool_eventfd(pool), TEST_WAIT_MS));
	ck_assert_uint_eq(ch_pool_reap(pool, test_done), 1);
	ck_assert_int_eq(order[0], 2);
	ck_assert_uint_eq(ch_pool_queue_depth(pool), 1);
	ck_assert_int_eq(atomic_load(&a.ran), 0);

	/* Both finish before one reap: completion order is kept in it. */
	job_init(&c, 3);
	c.gate = &gate_b;
	ck_assert_int_eq(ch_pool_submit(pool, &c.job), 0);
	sem_post(&gate_b);
	wait_depth(pool, 1);	/* c finished, a still held */
	sem_post(&gate_a);
	wait_depth(pool, 0);
	ck_assert_uint_eq(ch_pool_reap(pool, test_done), 2);
	ck_assert_int_eq(order[1], 3);
	ck_assert_int_eq(order[2], 1);
	ch_pool_destroy(pool, NULL);
	sem_destroy(&gate_a);
	sem_destroy(&gate_b);
	sem_destroy(&started);
}
END_TEST

/* One thread held busy: exactly max_queue more jobs are accepted. */
/* Submit job 0, which holds its thread until gate is posted; returns
 * once it runs. */
static void start_blocker(struct ch_pool *pool, struct test_job *blocker, sem_t *gate,
			  sem_t *started)
{
	sem_init(gate, 0, 0);
	sem_init(started, 0, 0);
	job_init(blocker, 0);
	blocker->gate = gate;
	blocker->started = started;
	ck_assert_int_eq(ch_pool_submit(pool, &blocker->job), 0);
	wait_sem(started);
}

START_TEST(test_queue_limit_and_depth)
{
	enum { MAXQ = 3 };
	struct ch_pool *pool = ch_pool_create(1, MAXQ);
	struct test_job blocker, queued[MAXQ], extra;
	sem_t gate, started;
	size_t reaped = 0;

	ck_assert_ptr_nonnull(pool);
	reset_globals();
	start_blocker(pool, &blocker, &gate, &started);
	ck_assert_uint_eq(ch_pool_queue_depth(pool), 1);	/* running only */

	for (int i = 0; i < MAXQ; i++) {
		job_init(&queued[i], i + 1);
		ck_assert_int_eq(ch_pool_submit(pool, &queued[i].job), 0);
		ck_assert_uint_eq(ch_pool_queue_depth(pool), (size_t)i + 2);
	}
	job_init(&extra, 99);
	errno = 0;
	ck_assert_int_eq(ch_pool_submit(pool, &extra.job), -1);
	ck_assert_int_eq(errno, EAGAIN);
	ck_assert_uint_eq(ch_pool_queue_depth(pool), MAXQ + 1);

	sem_post(&gate);
	while (reaped < MAXQ + 1) {
		ck_assert(wait_readable(ch_pool_eventfd(pool), TEST_WAIT_MS));
		reaped += ch_pool_reap(pool, test_done);
	}
	ck_assert_uint_eq(ch_pool_queue_depth(pool), 0);
	ck_assert_int_eq(atomic_load(&extra.ran), 0);
	/* One thread: completion order is submission order. */
	for (int i = 0; i <= MAXQ; i++)
		ck_assert_int_eq(order[i], i);
	/* Room again once drained. */
	ck_assert_int_eq(ch_pool_submit(pool, &extra.job), 0);
	ck_assert(wait_readable(ch_pool_eventfd(pool), TEST_WAIT_MS));
	ck_assert_uint_eq(ch_pool_reap(pool, test_done), 1);
	ck_assert_int_eq(atomic_load(&extra.ran), 1);
	ch_pool_destroy(pool, NULL);
	sem_destroy(&gate);
	sem_destroy(&started);
}
END_TEST

/* A wake-up, not a count; readable after a finish; quiet after a reap;
 * an earlier read of the eventfd (as io_uring does) loses nothing. */
START_TEST(test_eventfd_semantics)
{
	struct ch_pool *pool = ch_pool_create(1, 8);
	struct test_job a, b;
	int efd, fl;
	uint64_t v = 0;

	ck_assert_ptr_nonnull(pool);
	reset_globals();
	efd = ch_pool_eventfd(pool);
	ck_assert_int_ge(efd, 0);
	fl = fcntl(efd, F_GETFL);
	ck_assert(fl & O_NONBLOCK);
	ck_assert(fcntl(efd, F_GETFD) & FD_CLOEXEC);
	ck_assert(!wait_readable(efd, 0));
	ck_assert_uint_eq(ch_pool_reap(pool, test_done), 0);	/* no block */

	job_init(&a, 1);
	ck_assert_int_eq(ch_pool_submit(pool, &a.job), 0);
	ck_assert(wait_readable(efd, TEST_WAIT_MS));
	ck_assert_uint_eq(ch_pool_reap(pool, test_done), 1);
	ck_assert(!wait_readable(efd, 0));
	errno = 0;
	ck_assert_int_eq(read(efd, &v, sizeof(v)), -1);
	ck_assert_int_eq(errno, EAGAIN);

	/* The loop consumes the counter itself, then reaps. */
	job_init(&b, 2);
	ck_assert_int_eq(ch_pool_submit(pool, &b.job), 0);
	ck_assert(wait_readable(efd, TEST_WAIT_MS));
	ck_assert_int_eq(read(efd, &v, sizeof(v)), (ssize_t)sizeof(v));
	ck_assert_uint_ge(v, 1);
	ck_assert_uint_eq(ch_pool_reap(pool, test_done), 1);
	ck_assert_int_eq(b.reaped, 1);
	ck_assert(!wait_readable(efd, 0));
	ch_pool_destroy(pool, NULL);
}
END_TEST

static struct ch_pool *resubmit_pool;
static struct test_job resubmit_second;

static void resubmit_done(struct ch_job *job)
{
	struct test_job *tj = CH_POOL_CONTAINER_OF(job, struct test_job, job);

	test_done(job);
	if (tj->index == 1) {
		job_init(&resubmit_second, 2);
		ck_assert_int_eq(ch_pool_submit(resubmit_pool, &resubmit_second.job), 0);
	}
}

START_TEST(test_done_may_submit)
{
	struct test_job first;
	size_t reaped = 0;

	resubmit_pool = ch_pool_create(1, 2);
	ck_assert_ptr_nonnull(resubmit_pool);
	reset_globals();
	job_init(&first, 1);
	ck_assert_int_eq(ch_pool_submit(resubmit_pool, &first.job), 0);
	while (reaped < 2) {
		ck_assert(wait_readable(ch_pool_eventfd(resubmit_pool), TEST_WAIT_MS));
		reaped += ch_pool_reap(resubmit_pool, resubmit_done);
	}
	ck_assert_int_eq(atomic_load(&resubmit_second.ran), 1);
	ck_assert_int_eq(order[1], 2);
	ch_pool_destroy(resubmit_pool, NULL);
}
END_TEST

/* Each pool thread has its own zeroed crypt_data; other threads have none. */
static pthread_barrier_t cd_barrier;

static void cd_fn(struct ch_job *job)
{
	struct test_job *tj = CH_POOL_CONTAINER_OF(job, struct test_job, job);
	const unsigned char *p;

	/* Both jobs are inside fn at once, so they are on two threads. */
	pthread_barrier_wait(&cd_barrier);
	tj->cd = ch_pool_thread_crypt_data();
	p = (const unsigned char *)tj->cd;
	tj->checksum = 0;
	for (size_t i = 0; p && i < sizeof(*tj->cd); i++)
		tj->checksum |= p[i];
	atomic_fetch_add(&tj->ran, 1);
}

START_TEST(test_thread_crypt_data)
{
	struct ch_pool *pool = ch_pool_create(2, 2);
	struct test_job a, b;
	size_t reaped = 0;

	ck_assert_ptr_nonnull(pool);
	ck_assert_ptr_null(ch_pool_thread_crypt_data());
	pthread_barrier_init(&cd_barrier, NULL, 2);
	job_init(&a, 1);
	job_init(&b, 2);
	a.job.fn = b.job.fn = cd_fn;
	ck_assert_int_eq(ch_pool_submit(pool, &a.job), 0);
	ck_assert_int_eq(ch_pool_submit(pool, &b.job), 0);
	while (reaped < 2) {
		ck_assert(wait_readable(ch_pool_eventfd(pool), TEST_WAIT_MS));
		reaped += ch_pool_reap(pool, test_done);
	}
	ck_assert_ptr_nonnull(a.cd);
	ck_assert_ptr_nonnull(b.cd);
	ck_assert_ptr_ne(a.cd, b.cd);
	ck_assert_uint_eq(a.checksum, 0);	/* zeroed before first use */
	ck_assert_uint_eq(b.checksum, 0);
	ch_pool_destroy(pool, NULL);
	pthread_barrier_destroy(&cd_barrier);
}
END_TEST

/*
 * Destroy with one job finished but unreaped, one running and three
 * queued: the running one completes, the queued ones never run, and all
 * five come back through done exactly once, finished ones first.
 */
struct destroy_ctx {
	struct ch_pool *pool;
	sem_t *gate;
};

static void *destroy_releaser(void *arg)
{
	struct destroy_ctx *ctx = arg;
	struct test_job probe;

	/* The queue is full, so submits fail with EAGAIN until destroy has
	 * set stopping; then ESHUTDOWN. Only then release the running job,
	 * so it cannot pick up a queued one after finishing. */
	job_init(&probe, 100);
	for (;;) {
		errno = 0;
		ck_assert_int_eq(ch_pool_submit(ctx->pool, &probe.job), -1);
		if (errno == ESHUTDOWN)
			break;
		ck_assert_int_eq(errno, EAGAIN);
		usleep(1000);
	}
	sem_post(ctx->gate);
	return NULL;
}

START_TEST(test_destroy_pending)
{
	enum { MAXQ = 3 };
	struct ch_pool *pool = ch_pool_create(1, MAXQ);
	struct test_job finished, running, queued[MAXQ];
	struct destroy_ctx ctx;
	sem_t gate, started;
	pthread_t releaser;

	ck_assert_ptr_nonnull(pool);
	reset_globals();
	sem_init(&gate, 0, 0);
	sem_init(&started, 0, 0);

	job_init(&finished, 0);
	ck_assert_int_eq(ch_pool_submit(pool, &finished.job), 0);
	ck_assert(wait_readable(ch_pool_eventfd(pool), TEST_WAIT_MS));
	wait_depth(pool, 0);

	job_init(&running, 1);
	running.gate = &gate;
	running.started = &started;
	ck_assert_int_eq(ch_pool_submit(pool, &running.job), 0);
	wait_sem(&started);
	for (int i = 0; i < MAXQ; i++) {
		job_init(&queued[i], i + 2);
		ck_assert_int_eq(ch_pool_submit(pool, &queued[i].job), 0);
	}
	ck_assert_uint_eq(ch_pool_queue_depth(pool), MAXQ + 1);

	ctx.pool = pool;
	ctx.gate = &gate;
	ck_assert_int_eq(pthread_create(&releaser, NULL, destroy_releaser, &ctx), 0);
	ch_pool_destroy(pool, test_done);
	pthread_join(releaser, NULL);

	ck_assert_int_eq(norder, MAXQ + 2);
	for (int i = 0; i < MAXQ + 2; i++)
		ck_assert_int_eq(order[i], i);
	ck_assert_int_eq(atomic_load(&finished.ran), 1);
	ck_assert_int_eq(finished.cancelled_seen, 0);
	ck_assert_int_eq(atomic_load(&running.ran), 1);
	ck_assert_int_eq(running.cancelled_seen, 0);
	ck_assert_int_eq(running.reaped, 1);
	for (int i = 0; i < MAXQ; i++) {
		ck_assert_int_eq(atomic_load(&queued[i].ran), 0);
		ck_assert_int_eq(queued[i].cancelled_seen, 1);
		ck_assert_int_eq(queued[i].reaped, 1);
	}
	sem_destroy(&gate);
	sem_destroy(&started);
}
END_TEST

/* A job held past the limit, running or queued behind one, makes the pool
 * stalled, naming the threads running jobs; a quick one does not. */
START_TEST(test_stalled)
{
	enum { LIMIT_MS = 50 };
	struct ch_pool *pool = ch_pool_create(1, 4);
	struct test_job blocker, behind;
	sem_t gate, started;
	pid_t tids[4];
	char path[64];
	size_t reaped = 0;

	ck_assert_ptr_nonnull(pool);
	reset_globals();
	ck_assert_int_eq(ch_pool_stalled(pool, LIMIT_MS, tids, 4), 0);	/* idle */
	start_blocker(pool, &blocker, &gate, &started);
	ck_assert_int_eq(ch_pool_stalled(pool, 10 * TEST_WAIT_MS, tids, 4), 0);
	job_init(&behind, 1);
	ck_assert_int_eq(ch_pool_submit(pool, &behind.job), 0);
	usleep(2 * LIMIT_MS * 1000);
	ck_assert_int_eq(ch_pool_stalled(pool, LIMIT_MS, tids, 4), 1);
	ck_assert_int_eq(ch_pool_stalled(pool, LIMIT_MS, tids, 0), 0);	/* max 0 */
	/* The id is a thread of this process, not the caller's. */
	ck_assert_int_ne(tids[0], gettid());
	snprintf(path, sizeof(path), "/proc/self/task/%d", (int)tids[0]);
	ck_assert_int_eq(access(path, F_OK), 0);

	sem_post(&gate);
	while (reaped < 2) {
		ck_assert(wait_readable(ch_pool_eventfd(pool), TEST_WAIT_MS));
		reaped += ch_pool_reap(pool, test_done);
	}
	ck_assert_int_eq(ch_pool_stalled(pool, LIMIT_MS, tids, 4), 0);	/* drained */
	ch_pool_destroy(pool, NULL);
	sem_destroy(&gate);
	sem_destroy(&started);
}
END_TEST

static Suite *pool_suite(void)
{
	Suite *s = suite_create("pool");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, TEST_TIMEOUT_S);
	tcase_add_test(tc, test_create_args);
	tcase_add_test(tc, test_many_jobs);
	tcase_add_test(tc, test_no_lost_wakeup);
	tcase_add_test(tc, test_completion_order);
	tcase_add_test(tc, test_queue_limit_and_depth);
	tcase_add_test(tc, test_eventfd_semantics);
	tcase_add_test(tc, test_done_may_submit);
	tcase_add_test(tc, test_thread_crypt_data);
	tcase_add_test(tc, test_destroy_pending);
	tcase_add_test(tc, test_stalled);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(pool_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
