/*
 * Scheduler hints: see sched.h.
 */
#define _GNU_SOURCE
#include "common/sched.h"

#include "common/log.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/*
 * The kernel's struct sched_attr (sched_setattr(2)), declared here because
 * glibc has no wrapper and <linux/sched/types.h> clashes with <sched.h>.
 */
struct ch_sched_attr {
	uint32_t size;
	uint32_t sched_policy;
	uint64_t sched_flags;
	int32_t sched_nice;
	uint32_t sched_priority;
	uint64_t sched_runtime;	/* SCHED_OTHER: the requested slice, in ns (EEVDF) */
	uint64_t sched_deadline;
	uint64_t sched_period;
};

void ch_sched_latency(void)
{
	static __thread int done;
	struct ch_sched_attr a = {
		.size = sizeof(a), .sched_policy = SCHED_OTHER, .sched_runtime = CH_SCHED_SLICE_NS,
	};

	if (!done && syscall(SYS_sched_setattr, 0, &a, 0) < 0)
		ch_debug("sched_setattr (a short slice): %s", strerror(errno));
	done = 1;
}

/* Boost attributes: SCHED_OTHER at CH_SCHED_BOOST_NICE with a short
 * slice, or without the slice on a kernel that refuses it. */
static int boost(pid_t tid)
{
	struct ch_sched_attr a = {
		.size = sizeof(a), .sched_policy = SCHED_OTHER,
		.sched_nice = CH_SCHED_BOOST_NICE, .sched_runtime = CH_SCHED_SLICE_NS,
	};

	if (syscall(SYS_sched_setattr, tid, &a, 0) == 0)
		return 0;
	a.sched_runtime = 0;
	return (int)syscall(SYS_sched_setattr, tid, &a, 0);
}

/* 1 when background threads may run SCHED_IDLE: a thread can leave it
 * again. Written by ch_sched_init() before the threads it concerns are
 * started (pthread_create orders it), read-only afterwards. */
static int idle_ok;

static void *probe_main(void *arg)
{
	struct ch_sched_attr a = { .size = sizeof(a), .sched_policy = SCHED_IDLE };

	*(int *)arg = syscall(SYS_sched_setattr, 0, &a, 0) == 0 && boost(0) == 0;
	return NULL;
}

int ch_sched_init(void)
{
	pthread_t t;
	int ok = 0;

	/* A thread of its own: should the way back fail, only it is stuck. */
	if (pthread_create(&t, NULL, probe_main, &ok) == 0)
		pthread_join(t, NULL);
	idle_ok = ok;
	if (!ok)
		ch_info("background work runs at nice %d: leaving SCHED_IDLE needs "
			"RLIMIT_NICE >= %d (LimitNICE=+%d) or CAP_SYS_NICE",
			CH_SCHED_BOOST_NICE, 20 - CH_SCHED_BOOST_NICE, CH_SCHED_BOOST_NICE);
	return ok;
}

int ch_sched_idle_ok(void)
{
	return idle_ok;
}

/* 1 while the calling thread runs background work as SCHED_IDLE (or,
 * where it may not leave it, once it has been lowered to nice 10). */
static __thread int in_background;

void ch_sched_background(void)
{
	/* SCHED_IDLE takes no nice value or slice: it runs when nothing else
	 * wants the CPU, and every wake-up of another thread preempts it. */
	struct ch_sched_attr a = { .size = sizeof(a), .sched_policy = SCHED_IDLE };

	if (idle_ok ? syscall(SYS_sched_setattr, 0, &a, 0) == 0 : in_background || boost(0) == 0) {
		in_background = 1;
		return;
	}
	/* Without sched_setattr at all: the lower priority matters most. */
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), CH_SCHED_BOOST_NICE) < 0)
		ch_warn("setpriority for a background thread: %s", strerror(errno));
	else
		in_background = 1;
}

void ch_sched_background_done(void)
{
	/* Where the thread may not leave SCHED_IDLE it is at nice 10 already. */
	if (!idle_ok || !in_background)
		return;
	if (boost(0) < 0)
		ch_debug("sched_setattr (leaving SCHED_IDLE): %s", strerror(errno));
	in_background = 0;
}

int ch_sched_boost(pid_t tid)
{
	static _Atomic int warned;	/* once per process: it would repeat */

	if (boost(tid) == 0)
		return 0;
	if (!atomic_exchange_explicit(&warned, 1, memory_order_relaxed))
		ch_warn("sched_setattr (raising thread %d): %s", (int)tid, strerror(errno));
	return -1;
}
