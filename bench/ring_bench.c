/*
 * ring_bench: latency of one room-ring hop, journal -> worker.
 *
 * A publisher process publishes a timestamped entry into a ch_mring and
 * signals an eventfd; a reader process blocked in read(2) on that eventfd
 * wakes, reads the entry and records now - timestamp. The reader then
 * acks over a second eventfd, so every hop starts with the reader asleep
 * (what a worker idle in io_uring sees), never with a queue of entries.
 *
 *   ring_bench [-n hops] [-b entry_bytes] [-p]     (-p: pin to CPUs 0, 1)
 *
 * Build like the unit tests, from the top of the tree:
 *   gcc -std=gnu11 -O2 -g -Wall -Wextra ... -I. -o /tmp/ring_bench \
 *       bench/ring_bench.c shm/ring.c common/log.c
 */
#define _GNU_SOURCE
#include "common/log.h"
#include "shm/ring.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BENCH_HOPS 100000
#define BENCH_SLOTS 256u
#define BENCH_SLOT_SIZE 256u
#define BENCH_ENTRY_BYTES 200u		/* a typical small chat frame */
#define BENCH_WARMUP 1000		/* hops not counted */
#define BENCH_NS_PER_US 1000.0

struct bench_entry_head {
	uint64_t ts_ns;			/* CLOCK_MONOTONIC at publish */
	uint64_t hop;
};

struct bench {
	struct ch_mring *ring;
	size_t ring_size;
	uint64_t start;			/* reader's first cursor, taken before fork */
	int wake_fd;			/* publisher -> reader */
	int ack_fd;			/* reader -> publisher */
	long hops;
	uint32_t entry_bytes;
	int pin;
};

static uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void bench_pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		ch_err_sys("sched_setaffinity");
}

static int bench_signal(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) != sizeof(one)) {
		ch_err_sys("write eventfd");
		return -1;
	}
	return 0;
}

static int bench_wait(int fd)
{
	uint64_t v;

	for (;;) {
		if (read(fd, &v, sizeof(v)) == sizeof(v))
			return 0;
		if (errno != EINTR) {
			ch_err_sys("read eventfd");
			return -1;
		}
	}
}

static int bench_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double bench_pct(const uint64_t *v, long n, double pct)
{
	long i = (long)(pct / 100.0 * (double)(n - 1));

	return (double)v[i] / BENCH_NS_PER_US;
}

/* The reader process: wake, drain, record, ack. Exit status 0 on success. */
static int bench_reader(struct bench *b)
{
	uint64_t cursor = b->start, tag, *lat;
	unsigned char *buf = malloc(ch_mring_max_entry(b->ring));
	long got = 0, lapped = 0, n = 0;
	uint32_t len;
	int rc = 1;

	lat = calloc((size_t)b->hops, sizeof(*lat));
	if (buf == NULL || lat == NULL) {
		ch_err_sys("malloc");
		goto out;
	}
	if (b->pin)
		bench_pin(1);
	while (got < b->hops) {
		if (bench_wait(b->wake_fd) < 0)
			goto out;
		for (;;) {
			enum ch_mring_status s = ch_mring_read(b->ring, &cursor, buf,
							       ch_mring_max_entry(b->ring),
							       &len, &tag);
			uint64_t now = bench_now_ns();
			struct bench_entry_head h;

			if (s == CH_MRING_EMPTY)
				break;
			if (s != CH_MRING_OK) {
				lapped++;
				ch_mring_resync(b->ring, &cursor);
				continue;
			}
			memcpy(&h, buf, sizeof(h));
			if (got++ >= BENCH_WARMUP)
				lat[n++] = now - h.ts_ns;
		}
		if (bench_signal(b->ack_fd) < 0)
			goto out;
	}
	qsort(lat, (size_t)n, sizeof(*lat), bench_cmp_u64);
	printf("ring hop (publish + eventfd wake + read), %ld hops, %u-byte entries%s:\n",
	       n, b->entry_bytes, b->pin ? ", pinned" : "");
	printf("  p50 %.2f us  p90 %.2f us  p99 %.2f us  p99.9 %.2f us  max %.2f us"
	       "  (lapped %ld)\n",
	       bench_pct(lat, n, 50), bench_pct(lat, n, 90), bench_pct(lat, n, 99),
	       bench_pct(lat, n, 99.9), bench_pct(lat, n, 100), lapped);
	fflush(stdout);			/* the caller leaves with _exit() */
	rc = lapped == 0 ? 0 : 1;
out:
	free(lat);
	free(buf);
	return rc;
}

/* The publisher: one entry, one wake, wait for the ack; repeat. */
static int bench_publisher(struct bench *b)
{
	unsigned char *buf = calloc(1, b->entry_bytes);
	struct bench_entry_head h;

	if (buf == NULL) {
		ch_err_sys("calloc");
		return -1;
	}
	if (b->pin)
		bench_pin(0);
	ch_mring_writer_attach(b->ring);
	for (long i = 0; i < b->hops; i++) {
		h.hop = (uint64_t)i;
		h.ts_ns = bench_now_ns();
		memcpy(buf, &h, sizeof(h));
		if (ch_mring_publish(b->ring, (uint64_t)i + 1, buf, b->entry_bytes) < 0 ||
		    bench_signal(b->wake_fd) < 0 || bench_wait(b->ack_fd) < 0) {
			free(buf);
			return -1;
		}
	}
	free(buf);
	return 0;
}

static int bench_setup(struct bench *b)
{
	int fd;
	void *mem;

	b->ring_size = ch_mring_mem_size(BENCH_SLOTS, BENCH_SLOT_SIZE);
	fd = memfd_create("ring_bench", MFD_CLOEXEC);
	if (fd < 0) {
		ch_err_sys("memfd_create");
		return -1;
	}
	if (ftruncate(fd, (off_t)b->ring_size) < 0) {
		ch_err_sys("ftruncate");
		close(fd);
		return -1;
	}
	mem = mmap(NULL, b->ring_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (mem == MAP_FAILED) {
		ch_err_sys("mmap");
		return -1;
	}
	if (ch_mring_init(mem, BENCH_SLOTS, BENCH_SLOT_SIZE) < 0) {
		ch_err_sys("ch_mring_init");
		return -1;
	}
	b->ring = mem;
	b->start = ch_mring_head(b->ring);
	b->wake_fd = eventfd(0, EFD_CLOEXEC);
	b->ack_fd = eventfd(0, EFD_CLOEXEC);
	if (b->wake_fd < 0 || b->ack_fd < 0) {
		ch_err_sys("eventfd");
		return -1;
	}
	return 0;
}

static int bench_args(struct bench *b, int argc, char **argv)
{
	int c;

	b->hops = BENCH_HOPS;
	b->entry_bytes = BENCH_ENTRY_BYTES;
	while ((c = getopt(argc, argv, "n:b:p")) != -1) {
		switch (c) {
		case 'n':
			b->hops = strtol(optarg, NULL, 10);
			break;
		case 'b':
			b->entry_bytes = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'p':
			b->pin = 1;
			break;
		default:
			return -1;
		}
	}
	if (b->hops <= BENCH_WARMUP || b->entry_bytes < sizeof(struct bench_entry_head) ||
	    b->entry_bytes > (BENCH_SLOTS / CH_MRING_SPAN_DIV) * BENCH_SLOT_SIZE -
			     CH_MRING_HDR_SIZE)
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	struct bench b = { 0 };
	pid_t pid;
	int status, rc;

	ch_log_set_name("ring_bench");
	if (bench_args(&b, argc, argv) < 0) {
		fprintf(stderr, "usage: ring_bench [-n hops > %d] [-b entry_bytes] [-p]\n",
			BENCH_WARMUP);
		return 2;
	}
	if (bench_setup(&b) < 0)
		return 1;
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		ch_err_sys("fork");
		return 1;
	}
	if (pid == 0)
		_exit(bench_reader(&b));
	rc = bench_publisher(&b);
	if (rc < 0)
		kill(pid, SIGKILL);
	if (waitpid(pid, &status, 0) < 0) {
		ch_err_sys("waitpid");
		return 1;
	}
	return rc == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
