/*
 * Scheduler hints (common/sched.h), on real threads: a background thread
 * is SCHED_IDLE; a boost from another thread makes it SCHED_OTHER at the
 * boost's nice value; its next ch_sched_background() makes it SCHED_IDLE
 * again, and ch_sched_background_done() nice 10; a latency thread stays SCHED_OTHER at nice 0. Where a thread may
 * not leave SCHED_IDLE (no CAP_SYS_NICE, RLIMIT_NICE too low), background
 * means nice 10 instead. The slice hint is not checked: kernels before
 * 6.12 refuse it, which is allowed.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/sched.h"

struct bg {
	sem_t ready, go, done;
	pid_t tid;
	int policy_after_boost, nice_after_boost, policy_again, policy_done, nice_done;
};

static void *bg_main(void *arg)
{
	struct bg *b = arg;

	b->tid = gettid();
	ch_sched_background();
	sem_post(&b->ready);
	while (sem_wait(&b->go) < 0 && errno == EINTR)
		;
	b->policy_after_boost = sched_getscheduler(0);
	errno = 0;
	b->nice_after_boost = getpriority(PRIO_PROCESS, 0);
	ch_sched_background();	/* its next job */
	b->policy_again = sched_getscheduler(0);
	ch_sched_background_done();	/* its job's hashing is over */
	b->policy_done = sched_getscheduler(0);
	errno = 0;
	b->nice_done = getpriority(PRIO_PROCESS, 0);
	sem_post(&b->done);
	return NULL;
}

START_TEST(test_background_and_boost)
{
	struct bg b = { 0 };
	pthread_t t;

	if (!ch_sched_init()) {
		/* Unprivileged, RLIMIT_NICE too low: no SCHED_IDLE, nice 10. */
		ch_sched_background();
		ck_assert_int_eq(sched_getscheduler(0), SCHED_OTHER);
		ck_assert_int_eq(getpriority(PRIO_PROCESS, 0), CH_SCHED_BOOST_NICE);
		return;
	}
	ck_assert_int_eq(ch_sched_idle_ok(), 1);
	sem_init(&b.ready, 0, 0);
	sem_init(&b.go, 0, 0);
	sem_init(&b.done, 0, 0);
	ck_assert_int_eq(pthread_create(&t, NULL, bg_main, &b), 0);
	while (sem_wait(&b.ready) < 0 && errno == EINTR)
		;
	ck_assert_int_eq(sched_getscheduler(b.tid), SCHED_IDLE);
	ck_assert_int_eq(ch_sched_boost(b.tid), 0);
	ck_assert_int_eq(sched_getscheduler(b.tid), SCHED_OTHER);
	sem_post(&b.go);
	while (sem_wait(&b.done) < 0 && errno == EINTR)
		;
	pthread_join(t, NULL);
	ck_assert_int_eq(b.policy_after_boost, SCHED_OTHER);
	ck_assert_int_eq(b.nice_after_boost, CH_SCHED_BOOST_NICE);
	ck_assert_int_eq(b.policy_again, SCHED_IDLE);
	ck_assert_int_eq(b.policy_done, SCHED_OTHER);
	ck_assert_int_eq(b.nice_done, CH_SCHED_BOOST_NICE);
}
END_TEST

/* From a lower priority, a thread that asks for latency is back at nice 0
 * under SCHED_OTHER. In a thread of its own: the hint is once per thread. */
static void *latency_main(void *arg)
{
	int *out = arg;
	struct sched_param p = { 0 };

	/* Start where ch_sched_latency() has something to undo. */
	if (sched_setscheduler(0, SCHED_BATCH, &p) < 0 ||
	    setpriority(PRIO_PROCESS, 0, 5) < 0) {
		out[0] = -1;
		return NULL;
	}
	ch_sched_latency();
	out[0] = sched_getscheduler(0);
	errno = 0;
	out[1] = getpriority(PRIO_PROCESS, 0);
	return NULL;
}

START_TEST(test_latency)
{
	int out[2] = { 0, 0 };
	pthread_t t;

	ck_assert_int_eq(pthread_create(&t, NULL, latency_main, out), 0);
	pthread_join(t, NULL);
	ck_assert_int_ne(out[0], -1);
	if (geteuid() != 0)
		return;	/* unprivileged, the kernel refuses the way back to nice 0 */
	ck_assert_int_eq(out[0], SCHED_OTHER);
	ck_assert_int_eq(out[1], 0);
}
END_TEST

START_TEST(test_boost_unknown_thread)
{
	ck_assert_int_eq(ch_sched_boost(-1), -1);
}
END_TEST

static Suite *sched_suite(void)
{
	Suite *s = suite_create("sched");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_background_and_boost);
	tcase_add_test(tc, test_latency);
	tcase_add_test(tc, test_boost_unknown_thread);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(sched_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
