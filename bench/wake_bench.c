/*
 * wake_bench: how late a sleeping thread runs again while SCHED_IDLE
 * threads keep every core busy, the way chatd's hashing threads do during
 * a storm of logins. A measuring thread sleeps 1 ms at a time, 3000 times,
 * and records how much later than asked it woke (usleep's own slack
 * included, so compare modes, not absolute values).
 *
 * The busy threads (one per CPU, SCHED_IDLE) either spin in user space, or
 * churn memory the way libxcrypt's yescrypt does for every hash: mmap
 * 16 MiB, touch every page, munmap. Spinning shows that a wake-up preempts
 * an idle-policy thread at once; churning shows what the page faults and
 * unmaps add, since their kernel work is not preempted on a kernel built
 * with preempt=none. -p puts the busy threads in processes of their own,
 * as a hashing process apart from the worker would be.
 *
 *   wake_bench [-c] [-p]     (-c: churn memory; -p: busy processes)
 * Build: cc -O2 -pthread -o wake_bench bench/wake_bench.c
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define SAMPLES 3000
#define SLEEP_US 1000
#define REGION (16u << 20)	/* yescrypt's default: N = 2^14, r = 8 */
#define PAGE 4096u
#define MAX_BUSY 256

static int churn;

static void *busy(void *arg)
{
	struct sched_param p = { 0 };
	volatile unsigned long spins = 0;

	(void)arg;
	if (sched_setscheduler(0, SCHED_IDLE, &p) < 0)
		perror("wake_bench: SCHED_IDLE");
	for (;;) {
		if (!churn) {
			spins++;
			continue;
		}
		char *m = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			       -1, 0);
		if (m == MAP_FAILED)
			continue;
		for (size_t i = 0; i < REGION; i += PAGE)
			m[i] = 1;
		munmap(m, REGION);
	}
	return NULL;
}

static double now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	int procs = 0, opt, n = (int)sysconf(_SC_NPROCESSORS_ONLN);
	pid_t kids[MAX_BUSY];
	static double late[SAMPLES];

	while ((opt = getopt(argc, argv, "cp")) != -1) {
		if (opt == 'c')
			churn = 1;
		else if (opt == 'p')
			procs = 1;
		else {
			fprintf(stderr, "usage: wake_bench [-c] [-p]\n");
			return 2;
		}
	}
	if (n < 1 || n > MAX_BUSY)
		n = 1;
	for (int i = 0; i < n; i++) {
		pthread_t t;
		if (!procs) {
			if (pthread_create(&t, NULL, busy, NULL) != 0)
				return 1;
		} else if ((kids[i] = fork()) == 0) {
			busy(NULL);
		} else if (kids[i] < 0) {
			perror("wake_bench: fork");
			return 1;
		}
	}
	usleep(100000);
	for (int i = 0; i < SAMPLES; i++) {
		double t0 = now_us();
		usleep(SLEEP_US);
		late[i] = now_us() - t0 - SLEEP_US;
	}
	if (procs)
		for (int i = 0; i < n; i++)
			kill(kids[i], SIGKILL);
	qsort(late, SAMPLES, sizeof(late[0]), cmp);
	printf("%d SCHED_IDLE %s %s: wake-up late by p50 %.0f us, p99 %.0f us, "
	       "p99.9 %.0f us, max %.0f us\n", n, procs ? "processes" : "threads",
	       churn ? "churning 16 MiB" : "spinning", late[SAMPLES / 2],
	       late[SAMPLES * 99 / 100], late[SAMPLES * 999 / 1000], late[SAMPLES - 1]);
	return 0;
}
