/*
 * Unit tests for shm/ring: the SPSC byte ring and the SPMC room ring.
 *
 * Single-threaded tests pin down the layout rules (padding, full, lazy
 * release, batching, generations). Concurrent tests run real producers
 * and consumers in threads and in forked processes over a memfd mapping,
 * as chatd does, and check that every record a reader accepts is intact:
 * each payload is a pure function of its sequence number, so a reader
 * regenerates it and compares byte for byte. Kill tests SIGKILL producers
 * mid-stream and start new ones on the same ring.
 */
#define _GNU_SOURCE
#include "shm/ring.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Sanitizers slow the concurrent runs down; they need fewer iterations. */
#if defined(__SANITIZE_ADDRESS__)
#define TEST_SCALE 2
#else
#define TEST_SCALE 1
#endif

#define TEST_TIMEOUT_S 120
#define TEST_SHORT_LEN 64	/* most payloads are chat-sized */
#define TEST_LONG_ODDS 16	/* one in this many may be up to the maximum */
#define TEST_SEQ_BYTES 8	/* kill tests carry their seq in the payload */
#define TEST_DEADLINE_NS (20ull * 1000 * 1000 * 1000)

/* ---------------------------------------------------------------- */
/* helpers                                                           */
/* ---------------------------------------------------------------- */

static uint64_t test_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Payload length for seq, in [0, max]: mostly short, sometimes long. */
static uint32_t test_len(uint64_t seq, uint32_t max)
{
	uint64_t h = test_mix(seq ^ 0x5eed);
	uint32_t lim = max < TEST_SHORT_LEN ? max : TEST_SHORT_LEN;

	if (h % TEST_LONG_ODDS == 0)
		lim = max;
	return (uint32_t)((h >> 8) % ((uint64_t)lim + 1));
}

static void test_fill(uint64_t seq, unsigned char *p, uint32_t len)
{
	for (uint32_t i = 0; i < len; i += 8) {
		uint64_t v = test_mix(seq * 0x10001 + i);
		memcpy(p + i, &v, len - i < 8 ? len - i : 8);
	}
}

/* 1 if p holds exactly what test_fill(seq) writes. */
static int test_same(uint64_t seq, const unsigned char *p, uint32_t len)
{
	for (uint32_t i = 0; i < len; i += 8) {
		uint64_t v = test_mix(seq * 0x10001 + i);
		if (memcmp(p + i, &v, len - i < 8 ? len - i : 8) != 0)
			return 0;
	}
	return 1;
}

/*
 * Wait a moment for the other side: mostly a CPU pause, now and then a
 * yield in case it shares our CPU. (Yielding at every empty poll parks a
 * caught-up reader behind every other process's time slice; on a busy
 * two-core machine that starved one reader for seconds.)
 */
#define TEST_SPINS_PER_YIELD 256

static void test_relax(void)
{
	static __thread unsigned spins;

	if (++spins % TEST_SPINS_PER_YIELD == 0) {
		sched_yield();
		return;
	}
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static uint64_t test_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A MAP_SHARED memfd mapping, as the master makes; inherited over fork. */
static void *test_shm(size_t size)
{
	int fd = memfd_create("check_ring", MFD_CLOEXEC);
	void *p;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ck_assert_ptr_ne(p, MAP_FAILED);
	close(fd);
	return p;
}

static struct ch_spsc *test_spsc(uint32_t capacity, size_t *size)
{
	*size = ch_spsc_mem_size(capacity);
	ck_assert_uint_ne(*size, 0);
	void *mem = test_shm(*size);
	ck_assert_int_eq(ch_spsc_init(mem, capacity), 0);
	return mem;
}

static struct ch_mring *test_mring(uint32_t nslots, uint32_t slot_size, size_t *size)
{
	*size = ch_mring_mem_size(nslots, slot_size);
	ck_assert_uint_ne(*size, 0);
	void *mem = test_shm(*size);
	ck_assert_int_eq(ch_mring_init(mem, nslots, slot_size), 0);
	return mem;
}

static int test_exit_ok(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) != pid)
		return 0;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void test_kill(pid_t pid)
{
	int status;

	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFSIGNALED(status));
}

/* ---------------------------------------------------------------- */
/* SPSC, single-threaded                                             */
/* ---------------------------------------------------------------- */

/* Pop the next record and check it is (type, len, fill(seq)). */
static void spsc_expect(struct ch_spsc *r, uint32_t type, uint32_t len, uint64_t seq)
{
	uint32_t t, l;
	const unsigned char *p = ch_spsc_peek(r, &t, &l);

	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(t, type);
	ck_assert_uint_eq(l, len);
	ck_assert((uintptr_t)p % CH_SPSC_ALIGN == 0);
	ck_assert(p + l <= r->data + r->capacity);	/* never split */
	ck_assert(test_same(seq, p, l));
	ch_spsc_pop(r);
}

static void spsc_push_seq(struct ch_spsc *r, uint32_t type, uint32_t len, uint64_t seq)
{
	unsigned char buf[4096];

	ck_assert_uint_le(len, sizeof(buf));
	test_fill(seq, buf, len);
	ck_assert_int_eq(ch_spsc_push(r, type, buf, len), 0);
}

static void spsc_expect_empty(struct ch_spsc *r)
{
	uint32_t t, l;

	errno = 0;
	ck_assert_ptr_null(ch_spsc_peek(r, &t, &l));
	ck_assert_int_eq(errno, EAGAIN);
}

START_TEST(spsc_geometry)
{
	static _Alignas(64) unsigned char mem[4096];

	ck_assert_uint_eq(ch_spsc_mem_size(0), 0);
	ck_assert_uint_eq(ch_spsc_mem_size(32), 0);
	ck_assert_uint_eq(ch_spsc_mem_size(100), 0);
	ck_assert_uint_eq(ch_spsc_mem_size(1u << 31), 0);
	ck_assert_uint_eq(ch_spsc_mem_size(256), sizeof(struct ch_spsc) + 256);
	errno = 0;
	ck_assert_int_eq(ch_spsc_init(mem + 8, 256), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(ch_spsc_init(mem, 100), -1);
	ck_assert_int_eq(ch_spsc_init(mem, 256), 0);
	struct ch_spsc *r = (struct ch_spsc *)mem;
	ck_assert_uint_eq(ch_spsc_capacity(r), 256);
	ck_assert_uint_eq(ch_spsc_max_payload(r), 120);
	ck_assert_uint_eq(ch_spsc_used(r), 0);
	/* Indexes on their own cache lines. */
	ck_assert_uint_eq(offsetof(struct ch_spsc, head) % 64, 0);
	ck_assert_uint_eq(offsetof(struct ch_spsc, tail) % 64, 0);
	ck_assert_uint_ge(offsetof(struct ch_spsc, tail) - offsetof(struct ch_spsc, head), 64);
	ck_assert_uint_ge(offsetof(struct ch_spsc, prod) - offsetof(struct ch_spsc, tail), 64);
}
END_TEST

START_TEST(spsc_empty_full)
{
	size_t size;
	struct ch_spsc *r = test_spsc(256, &size);
	int n = 0;

	spsc_expect_empty(r);
	/* 8-byte payloads take 16 bytes: exactly 16 fit. */
	while (n < 100) {
		unsigned char buf[8];
		test_fill((uint64_t)n, buf, sizeof(buf));
		if (ch_spsc_push(r, 1, buf, sizeof(buf)) < 0)
			break;
		n++;
	}
	ck_assert_int_eq(n, 16);
	ck_assert_int_eq(errno, EAGAIN);
	ck_assert_ptr_null(ch_spsc_reserve(r, 0));
	ck_assert_uint_eq(ch_spsc_used(r), 256);

	/* Space comes back lazily: one pop is not released yet... */
	spsc_expect(r, 1, 8, 0);
	ck_assert_int_eq(ch_spsc_push(r, 1, "x", 1), -1);
	ck_assert_uint_eq(ch_spsc_used(r), 256);
	/* ...until release(). */
	ch_spsc_release(r);
	ck_assert_uint_eq(ch_spsc_used(r), 240);
	unsigned char buf[8];
	test_fill(16, buf, sizeof(buf));
	ck_assert_int_eq(ch_spsc_push(r, 1, buf, sizeof(buf)), 0);
	ck_assert_int_eq(ch_spsc_push(r, 1, buf, sizeof(buf)), -1);

	for (int i = 1; i <= 16; i++)
		spsc_expect(r, 1, 8, (uint64_t)i);
	/* An empty peek hands everything back. */
	spsc_expect_empty(r);
	ck_assert_uint_eq(ch_spsc_used(r), 0);
	munmap(r, size);
}
END_TEST

START_TEST(spsc_wrap_padding)
{
	size_t size;
	struct ch_spsc *r = test_spsc(256, &size);
	unsigned char *p;

	spsc_push_seq(r, 1, 96, 1);		/* [0, 104) */
	spsc_push_seq(r, 2, 96, 2);		/* [104, 208) */
	spsc_expect(r, 1, 96, 1);
	ch_spsc_release(r);			/* tail 104: 152 free */
	/* 112 bytes need 120 at 208: pad 48 + 120 = 168 > 152 free, and
	 * only 104 contiguous at the start: must not fit, nor be split. */
	errno = 0;
	ck_assert_ptr_null(ch_spsc_reserve(r, 112));
	ck_assert_int_eq(errno, EAGAIN);
	/* 40 bytes take 48 and end exactly at the array end: no pad. */
	p = ch_spsc_reserve(r, 40);
	ck_assert_ptr_eq(p, r->data + 208 + CH_SPSC_HDR_SIZE);
	test_fill(3, p, 40);
	ch_spsc_commit(r, 3, 40);
	ch_spsc_publish(r);
	/* Now at 256 (offset 0): 56 bytes go at the start, no pad either. */
	spsc_push_seq(r, 4, 56, 4);
	ck_assert_uint_eq(ch_spsc_used(r), 104 + 48 + 64);
	spsc_expect(r, 2, 96, 2);
	spsc_expect(r, 3, 40, 3);
	spsc_expect(r, 4, 56, 4);
	spsc_expect_empty(r);

	/* At 320 (offset 64): the largest record, then one to offset 248. */
	spsc_push_seq(r, 5, 120, 5);		/* [64, 192) */
	spsc_push_seq(r, 6, 48, 6);		/* [192, 248) */
	spsc_expect(r, 5, 120, 5);
	spsc_expect(r, 6, 48, 6);
	spsc_expect_empty(r);
	/* 8 bytes left: the smallest pad, a bare header. */
	p = ch_spsc_reserve(r, 64);
	ck_assert_ptr_eq(p, r->data + CH_SPSC_HDR_SIZE);
	test_fill(7, p, 64);
	ch_spsc_commit(r, 7, 64);
	ch_spsc_publish(r);
	ck_assert_uint_eq(ch_spsc_used(r), 8 + 72);
	{
		uint32_t t, l;
		const void *q = ch_spsc_peek(r, &t, &l);
		ck_assert_ptr_eq(q, r->data + CH_SPSC_HDR_SIZE);
	}
	spsc_expect(r, 7, 64, 7);
	spsc_expect_empty(r);
	ck_assert_uint_eq(ch_spsc_used(r), 0);

	/* Many rounds of mixed sizes: records come out whole, in order. */
	uint64_t in = 100, out = 100;
	for (int round = 0; round < 2000; round++) {
		uint32_t len = test_len(in, ch_spsc_max_payload(r));
		unsigned char buf[256];
		test_fill(in, buf, len);
		if (ch_spsc_push(r, (uint32_t)in, buf, len) == 0) {
			in++;
			continue;
		}
		ck_assert_int_eq(errno, EAGAIN);
		while (out < in) {
			spsc_expect(r, (uint32_t)out, test_len(out, ch_spsc_max_payload(r)), out);
			out++;
		}
		spsc_expect_empty(r);
	}
	ck_assert_uint_gt(in, 1000);
	munmap(r, size);
}
END_TEST

START_TEST(spsc_sizes)
{
	size_t size;
	struct ch_spsc *r = test_spsc(4096, &size);
	uint32_t max = ch_spsc_max_payload(r);

	ck_assert_uint_eq(max, 2040);
	/* Every length, 0 included, round-trips, from drifting offsets. */
	for (uint32_t len = 0; len <= max; len++) {
		spsc_push_seq(r, len, len, len);
		spsc_expect(r, len, len, len);
	}
	/* Too big: refused at once, and says so. */
	errno = 0;
	ck_assert_ptr_null(ch_spsc_reserve(r, max + 1));
	ck_assert_int_eq(errno, EMSGSIZE);
	ck_assert_int_eq(ch_spsc_push(r, 0, "", max + 1), -1);
	ck_assert_int_eq(errno, EMSGSIZE);
	/* The largest record fits an empty ring at any offset. */
	for (uint32_t off = 0; off < 4096; off += CH_SPSC_ALIGN) {
		/* Plain checks: every ck_assert costs a write(2) in fork mode. */
		int moved = 1;
		while (moved && (r->prod.pos & r->mask) != off) {
			uint32_t t, l;
			moved = ch_spsc_push(r, 0, NULL, 0) == 0 &&
				ch_spsc_peek(r, &t, &l) != NULL && t == 0 && l == 0;
			if (moved)
				ch_spsc_pop(r);
		}
		ck_assert(moved);
		spsc_expect_empty(r);
		spsc_push_seq(r, 9, max, off);
		spsc_expect(r, 9, max, off);
		spsc_expect_empty(r);
	}
	munmap(r, size);
}
END_TEST

START_TEST(spsc_batching)
{
	size_t size;
	struct ch_spsc *r = test_spsc(1024, &size);
	unsigned char *p;

	/* Committed but unpublished records are invisible. */
	for (uint32_t i = 0; i < 3; i++) {
		p = ch_spsc_reserve(r, 100);
		ck_assert_ptr_nonnull(p);
		test_fill(i, p, 10 + i);
		ch_spsc_commit(r, i, 10 + i);	/* shorter than reserved */
	}
	spsc_expect_empty(r);
	ck_assert_uint_eq(ch_spsc_used(r), 0);
	ch_spsc_publish(r);
	ck_assert_uint_eq(ch_spsc_used(r), 3 * 24);
	for (uint32_t i = 0; i < 3; i++)
		spsc_expect(r, i, 10 + i, i);
	spsc_expect_empty(r);

	/* A restarted producer drops what it never published. */
	spsc_push_seq(r, 7, 5, 7);
	p = ch_spsc_reserve(r, 30);
	ch_spsc_commit(r, 8, 30);
	ch_spsc_reserve(r, 30);			/* open, never committed */
	ch_spsc_producer_attach(r);
	ch_spsc_publish(r);
	spsc_push_seq(r, 9, 5, 9);
	spsc_expect(r, 7, 5, 7);
	spsc_expect(r, 9, 5, 9);
	spsc_expect_empty(r);

	/* A restarted consumer gets popped-but-unreleased records again. */
	spsc_push_seq(r, 10, 5, 10);
	spsc_push_seq(r, 11, 5, 11);
	spsc_expect(r, 10, 5, 10);		/* popped, not released */
	ch_spsc_consumer_attach(r);
	spsc_expect(r, 10, 5, 10);
	spsc_expect(r, 11, 5, 11);
	ch_spsc_release(r);
	ch_spsc_consumer_attach(r);		/* released: not again */
	spsc_expect_empty(r);

	/* Peek twice without pop: the same record. */
	spsc_push_seq(r, 12, 5, 12);
	uint32_t t, l;
	const void *a = ch_spsc_peek(r, &t, &l);
	const void *b = ch_spsc_peek(r, &t, &l);
	ck_assert_ptr_eq(a, b);
	spsc_expect(r, 12, 5, 12);
	munmap(r, size);
}
END_TEST

START_TEST(spsc_fill_level)
{
	size_t size;
	struct ch_spsc *r = test_spsc(1024, &size);

	spsc_push_seq(r, 1, 10, 1);		/* 8 + 16 */
	ck_assert_uint_eq(ch_spsc_used(r), 24);
	spsc_push_seq(r, 2, 0, 2);		/* 8 */
	ck_assert_uint_eq(ch_spsc_used(r), 32);
	spsc_push_seq(r, 3, 8, 3);		/* 16 */
	ck_assert_uint_eq(ch_spsc_used(r), 48);
	spsc_expect(r, 1, 10, 1);
	ch_spsc_release(r);
	ck_assert_uint_eq(ch_spsc_used(r), 24);
	spsc_expect(r, 2, 0, 2);
	spsc_expect(r, 3, 8, 3);
	ck_assert_uint_eq(ch_spsc_used(r), 24);	/* lazy */
	spsc_expect_empty(r);
	ck_assert_uint_eq(ch_spsc_used(r), 0);
	/* A quarter of the ring popped is released without being asked. */
	for (uint64_t i = 0; i < 16; i++)
		spsc_push_seq(r, 5, 24, i);	/* 32 each, 512 in all */
	for (uint64_t i = 0; i < 8; i++)
		spsc_expect(r, 5, 24, i);
	ck_assert_uint_eq(ch_spsc_used(r), 256);
	munmap(r, size);
}
END_TEST

/* Logs one (expected) error line. */
START_TEST(spsc_corrupt_header)
{
	size_t size;
	struct ch_spsc *r = test_spsc(256, &size);
	uint32_t bad[2] = { 5000, 1 };	/* len beyond the ring */
	uint32_t t, l;

	spsc_push_seq(r, 1, 8, 1);
	memcpy(r->data, bad, sizeof(bad));	/* a stray write */
	errno = 0;
	ck_assert_ptr_null(ch_spsc_peek(r, &t, &l));
	ck_assert_int_eq(errno, EBADMSG);
	ck_assert_ptr_null(ch_spsc_peek(r, &t, &l));
	ck_assert_int_eq(errno, EBADMSG);
	munmap(r, size);
}
END_TEST

/* ---------------------------------------------------------------- */
/* SPSC, concurrent                                                  */
/* ---------------------------------------------------------------- */

#define SPSC_RUN_CAPACITY 4096u
#define SPSC_RUN_RECORDS (2000000u / TEST_SCALE)
#define SPSC_PROC_RECORDS (1000000u / TEST_SCALE)
#define SPSC_MAX_BATCH 16

struct spsc_run {
	struct ch_spsc *r;
	uint64_t n;
	_Atomic int stop;	/* the consumer gave up: do not wait for room */
};

/* Records 0..n-1: type = seq, payload = fill(seq), published in batches. */
static void spsc_produce(struct ch_spsc *r, uint64_t n, _Atomic int *stop)
{
	uint32_t max = ch_spsc_max_payload(r), batch = 0;

	ch_spsc_producer_attach(r);
	for (uint64_t seq = 0; seq < n;) {
		uint32_t len = test_len(seq, max);
		unsigned char *p = ch_spsc_reserve(r, len);

		if (p == NULL) {
			ch_spsc_publish(r);
			/* Relaxed: a plain flag, nothing is read after it. */
			if (stop != NULL && atomic_load_explicit(stop, memory_order_relaxed))
				return;
			test_relax();
			continue;
		}
		test_fill(seq, p, len);
		ch_spsc_commit(r, (uint32_t)seq, len);
		seq++;
		if (++batch >= 1 + test_mix(seq) % SPSC_MAX_BATCH) {
			ch_spsc_publish(r);
			batch = 0;
		}
	}
	ch_spsc_publish(r);
}

static void *spsc_producer_thread(void *arg)
{
	struct spsc_run *run = arg;

	spsc_produce(run->r, run->n, &run->stop);
	return NULL;
}

/* Consume n records; the number of wrong ones (0 = all intact, in order). */
static uint64_t spsc_consume(struct ch_spsc *r, uint64_t n)
{
	uint32_t max = ch_spsc_max_payload(r), type, len;
	uint64_t bad = 0, deadline = test_now_ns() + TEST_DEADLINE_NS;

	ch_spsc_consumer_attach(r);
	for (uint64_t seq = 0; seq < n;) {
		const unsigned char *p = ch_spsc_peek(r, &type, &len);

		if (p == NULL) {
			if (errno == EBADMSG || test_now_ns() > deadline)
				return bad + (n - seq);
			test_relax();
			continue;
		}
		if (type != (uint32_t)seq || len != test_len(seq, max) ||
		    !test_same(seq, p, len))
			bad++;
		ch_spsc_pop(r);
		seq++;
		if (test_mix(seq) % 64 == 0)
			ch_spsc_release(r);
	}
	/* Nothing extra, nothing repeated. */
	if (ch_spsc_peek(r, &type, &len) != NULL)
		bad++;
	return bad;
}

START_TEST(spsc_two_threads)
{
	size_t size;
	struct spsc_run run = { .r = test_spsc(SPSC_RUN_CAPACITY, &size), .n = SPSC_RUN_RECORDS };
	pthread_t th;

	ck_assert_int_eq(pthread_create(&th, NULL, spsc_producer_thread, &run), 0);
	uint64_t bad = spsc_consume(run.r, run.n);
	atomic_store_explicit(&run.stop, 1, memory_order_relaxed);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_uint_eq(bad, 0);
	ck_assert_uint_eq(ch_spsc_used(run.r), 0);
	munmap(run.r, size);
}
END_TEST

START_TEST(spsc_two_processes)
{
	size_t size;
	struct ch_spsc *r = test_spsc(SPSC_RUN_CAPACITY, &size);
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		spsc_produce(r, SPSC_PROC_RECORDS, NULL);
		_exit(0);
	}
	uint64_t bad = spsc_consume(r, SPSC_PROC_RECORDS);
	if (bad != 0)
		kill(pid, SIGKILL);
	ck_assert(test_exit_ok(pid));
	ck_assert_uint_eq(bad, 0);
	munmap(r, size);
}
END_TEST

/* Kill test: record = seq (8 bytes) + fill(seq); seq = incarnation << 32 | i. */
#define SPSC_KILLS 5
#define SPSC_KILL_CAPACITY 65536u
#define SPSC_KILL_MIN_RECORDS 20000u	/* per incarnation before its kill */
#define SPSC_FINAL_RECORDS 50000u
#define SPSC_TYPE_END 0xe0du
#define TEST_INC_SHIFT 32

static uint32_t spsc_kill_len(uint64_t seq, uint32_t max)
{
	return TEST_SEQ_BYTES + test_len(seq, max - TEST_SEQ_BYTES);
}

static void spsc_kill_producer(struct ch_spsc *r, uint32_t inc, uint64_t count)
{
	uint32_t max = ch_spsc_max_payload(r);

	ch_spsc_producer_attach(r);
	for (uint64_t i = 0; i < count;) {
		uint64_t seq = (uint64_t)inc << TEST_INC_SHIFT | i;
		uint32_t len = spsc_kill_len(seq, max);
		unsigned char *p = ch_spsc_reserve(r, len);

		if (p == NULL) {
			ch_spsc_publish(r);
			test_relax();
			continue;
		}
		memcpy(p, &seq, TEST_SEQ_BYTES);
		test_fill(seq, p + TEST_SEQ_BYTES, len - TEST_SEQ_BYTES);
		ch_spsc_commit(r, inc, len);
		i++;
		if (i % 4 == 0)
			ch_spsc_publish(r);
	}
	ch_spsc_publish(r);
	while (ch_spsc_push(r, SPSC_TYPE_END, NULL, 0) < 0)
		test_relax();
	_exit(0);
}

struct spsc_kill_state {
	uint64_t last;		/* last seq seen, for order */
	uint64_t from_inc;	/* records of the current incarnation */
	uint64_t bad;
	int ended;
};

/* Consume one record if any; 0 if the ring was empty. */
static int spsc_kill_consume(struct ch_spsc *r, uint32_t inc, struct spsc_kill_state *st)
{
	uint32_t max = ch_spsc_max_payload(r), type, len;
	const unsigned char *p = ch_spsc_peek(r, &type, &len);
	uint64_t seq;

	if (p == NULL) {
		st->bad += errno == EBADMSG;
		return 0;
	}
	if (type == SPSC_TYPE_END) {
		st->ended = 1;
	} else if (len < TEST_SEQ_BYTES) {
		st->bad++;
	} else {
		memcpy(&seq, p, TEST_SEQ_BYTES);
		/* Each incarnation's records arrive gap-free from i = 0. */
		uint64_t want = (seq >> TEST_INC_SHIFT) == (st->last >> TEST_INC_SHIFT) ?
				st->last + 1 : (seq & ~((1ull << TEST_INC_SHIFT) - 1));
		if (seq != want || seq <= st->last || type != seq >> TEST_INC_SHIFT ||
		    len != spsc_kill_len(seq, max) ||
		    !test_same(seq, p + TEST_SEQ_BYTES, len - TEST_SEQ_BYTES))
			st->bad++;
		st->last = seq;
		if (type == inc)
			st->from_inc++;
	}
	ch_spsc_pop(r);
	return 1;
}

START_TEST(spsc_producer_killed)
{
	size_t size;
	struct ch_spsc *r = test_spsc(SPSC_KILL_CAPACITY, &size);
	struct spsc_kill_state st = { 0 };
	uint64_t deadline = test_now_ns() + TEST_DEADLINE_NS;

	ch_spsc_consumer_attach(r);
	for (uint32_t inc = 1; inc <= SPSC_KILLS + 1; inc++) {
		int final = inc == SPSC_KILLS + 1;
		pid_t pid = fork();

		ck_assert_int_ge(pid, 0);
		if (pid == 0)
			spsc_kill_producer(r, inc, final ? SPSC_FINAL_RECORDS : UINT64_MAX);
		st.from_inc = 0;
		/* Let it run a varying while, consuming so it keeps writing. */
		uint64_t want = SPSC_KILL_MIN_RECORDS + test_mix(inc) % SPSC_KILL_MIN_RECORDS;
		while (final ? !st.ended : st.from_inc < want) {
			if (!spsc_kill_consume(r, inc, &st))
				test_relax();
			if (st.bad != 0 || test_now_ns() > deadline)
				break;
		}
		if (final) {
			ck_assert(test_exit_ok(pid));
			break;
		}
		test_kill(pid);
		/* Whatever the dead producer published is still whole. */
		while (spsc_kill_consume(r, inc, &st))
			;
		ck_assert_uint_eq(st.bad, 0);
	}
	ck_assert_uint_eq(st.bad, 0);
	ck_assert(st.ended);
	ck_assert_uint_eq(st.from_inc, SPSC_FINAL_RECORDS);
	ck_assert_uint_eq(st.last, ((uint64_t)(SPSC_KILLS + 1) << TEST_INC_SHIFT) +
				   SPSC_FINAL_RECORDS - 1);
	munmap(r, size);
}
END_TEST

/* ---------------------------------------------------------------- */
/* SPMC, single-threaded                                             */
/* ---------------------------------------------------------------- */

#define MRING_BUF 65536

static void mring_pub(struct ch_mring *r, uint64_t tag, uint32_t len)
{
	static unsigned char buf[MRING_BUF];

	test_fill(tag, buf, len);
	ck_assert_int_eq(ch_mring_publish(r, tag, buf, len), 0);
}

static void mring_expect(const struct ch_mring *r, uint64_t *cursor, uint64_t tag, uint32_t len)
{
	static unsigned char buf[MRING_BUF];
	uint32_t l = UINT32_MAX;
	uint64_t t = 0;

	ck_assert_int_eq(ch_mring_read(r, cursor, buf, sizeof(buf), &l, &t), CH_MRING_OK);
	ck_assert_uint_eq(t, tag);
	ck_assert_uint_eq(l, len);
	ck_assert(test_same(tag, buf, l));
}

static enum ch_mring_status mring_try(const struct ch_mring *r, uint64_t *cursor)
{
	static unsigned char buf[MRING_BUF];
	uint32_t l;
	uint64_t t;

	return ch_mring_read(r, cursor, buf, sizeof(buf), &l, &t);
}

/* ch_mring_find: recent entries found by tag, lost or missing ones not. */
START_TEST(mring_find)
{
	size_t size;
	struct ch_mring *r = test_mring(16, 64, &size);
	uint64_t c;

	ck_assert_int_eq(ch_mring_find(r, 1, 0, &c), -1);	/* empty */
	/* Tags 1..12, lengths spanning 1 to 3 slots: 24 slots in all, so
	 * the oldest are overwritten. */
	for (uint64_t t = 1; t <= 12; t++)
		mring_pub(r, t, (uint32_t)(t % 3) * 48 + 8);
	for (uint64_t t = 1; t <= 12; t++) {
		if (ch_mring_find(r, t, 0, &c) < 0) {
			ck_assert_uint_lt(t, 6);	/* only old ones may be gone */
			continue;
		}
		mring_expect(r, &c, t, (uint32_t)(t % 3) * 48 + 8);
		if (t < 12)
			mring_expect(r, &c, t + 1, (uint32_t)((t + 1) % 3) * 48 + 8);
	}
	ck_assert_int_eq(ch_mring_find(r, 12, 0, &c), 0);
	ck_assert_int_eq(ch_mring_find(r, 1, 0, &c), -1);
	ck_assert_int_eq(ch_mring_find(r, 13, 0, &c), -1);	/* not written yet */

	/* A gap in the tags is not found, and neither is what lies beyond
	 * a slot being overwritten. */
	mring_pub(r, 14, 8);
	ck_assert_int_eq(ch_mring_find(r, 13, 0, &c), -1);
	ck_assert_int_eq(ch_mring_find(r, 12, 0, &c), 0);
	uint64_t at12 = c;
	ck_assert_int_eq(ch_mring_find(r, 11, 0, &c), 0);
	atomic_store(&r->words[at12 & r->mask], CH_MRING_STAMP_BUSY);
	ck_assert_int_eq(ch_mring_find(r, 14, 0, &c), 0);
	ck_assert_int_eq(ch_mring_find(r, 11, 0, &c), -1);

	/* Nothing below a floor is found, even a tag that is there. */
	uint64_t floor = ch_mring_head(r);
	mring_pub(r, 15, 8);
	ck_assert_int_eq(ch_mring_find(r, 14, floor, &c), -1);
	ck_assert_int_eq(ch_mring_find(r, 15, floor, &c), 0);
	ck_assert_uint_eq(c, floor);
	ck_assert_int_eq(ch_mring_find(r, 14, 0, &c), 0);

	/* After a reset, the old generation's tags are gone. */
	ch_mring_reset(r);
	ck_assert_int_eq(ch_mring_find(r, 14, 0, &c), -1);
	mring_pub(r, 1, 8);
	ck_assert_int_eq(ch_mring_find(r, 1, 0, &c), 0);
	mring_expect(r, &c, 1, 8);
	munmap(r, size);
}
END_TEST

START_TEST(mring_geometry)
{
	static _Alignas(64) unsigned char mem[65536];

	ck_assert_uint_eq(ch_mring_mem_size(0, 64), 0);
	ck_assert_uint_eq(ch_mring_mem_size(2, 64), 0);
	ck_assert_uint_eq(ch_mring_mem_size(12, 64), 0);
	ck_assert_uint_eq(ch_mring_mem_size(16, 60), 0);
	ck_assert_uint_eq(ch_mring_mem_size(16, 16), 0);
	ck_assert_uint_eq(ch_mring_mem_size(1u << 24, 1u << 16), 0);
	ck_assert_uint_eq(ch_mring_mem_size(256, 256),
			  sizeof(struct ch_mring) + 256 * 8 + 256 * 256);
	errno = 0;
	ck_assert_int_eq(ch_mring_init(mem + 8, 16, 64), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(ch_mring_init(mem, 16, 64), 0);
	struct ch_mring *r = (struct ch_mring *)mem;
	ck_assert_uint_eq(ch_mring_max_entry(r), 8 * 64 - CH_MRING_HDR_SIZE);
	ck_assert_uint_eq(ch_mring_nslots(r), 16);
	ck_assert_uint_eq(offsetof(struct ch_mring, head) % 64, 0);
	ck_assert_uint_ge(offsetof(struct ch_mring, wpos) - offsetof(struct ch_mring, head), 64);
	/* A zeroed cursor was never taken from the ring. */
	uint64_t zero = 0;
	ck_assert_int_eq(mring_try(r, &zero), CH_MRING_RESET);
	ck_assert_uint_eq(zero, 0);
}
END_TEST

START_TEST(mring_basic)
{
	size_t size;
	struct ch_mring *r = test_mring(16, 64, &size);
	uint64_t c = ch_mring_head(r), c0;
	unsigned char small[10];
	uint32_t len;
	uint64_t tag;

	ck_assert_int_eq(mring_try(r, &c), CH_MRING_EMPTY);
	mring_pub(r, 7, 5);
	mring_expect(r, &c, 7, 5);
	ck_assert_uint_eq(c, ch_mring_head(r));
	ck_assert_int_eq(mring_try(r, &c), CH_MRING_EMPTY);

	/* 100 bytes + 16 of header: two slots. */
	c0 = c;
	mring_pub(r, 8, 100);
	mring_expect(r, &c, 8, 100);
	ck_assert_uint_eq(c - c0, 2);
	/* Exactly one slot, then one byte more. */
	mring_pub(r, 9, 64 - CH_MRING_HDR_SIZE);
	mring_pub(r, 10, 64 - CH_MRING_HDR_SIZE + 1);
	c0 = c;
	mring_expect(r, &c, 9, 64 - CH_MRING_HDR_SIZE);
	ck_assert_uint_eq(c - c0, 1);
	mring_expect(r, &c, 10, 64 - CH_MRING_HDR_SIZE + 1);
	ck_assert_uint_eq(c - c0, 3);

	/* Too small a buffer: the needed length, cursor unchanged. */
	mring_pub(r, 11, 50);
	c0 = c;
	ck_assert_int_eq(ch_mring_read(r, &c, small, sizeof(small), &len, &tag),
			 CH_MRING_TOOSMALL);
	ck_assert_uint_eq(len, 50);
	ck_assert_uint_eq(c, c0);
	mring_expect(r, &c, 11, 50);

	/* Empty entries, and the largest. */
	mring_pub(r, 12, 0);
	ck_assert_int_eq(ch_mring_read(r, &c, NULL, 0, &len, &tag), CH_MRING_OK);
	ck_assert_uint_eq(len, 0);
	ck_assert_uint_eq(tag, 12);
	mring_pub(r, 13, ch_mring_max_entry(r));
	c0 = c;
	mring_expect(r, &c, 13, ch_mring_max_entry(r));
	ck_assert_uint_eq(c - c0, 16 / CH_MRING_SPAN_DIV);
	errno = 0;
	ck_assert_int_eq(ch_mring_publish(r, 14, small, ch_mring_max_entry(r) + 1), -1);
	ck_assert_int_eq(errno, EMSGSIZE);
	ck_assert_int_eq(mring_try(r, &c), CH_MRING_EMPTY);
	munmap(r, size);
}
END_TEST

START_TEST(mring_wrap)
{
	size_t size;
	struct ch_mring *r = test_mring(8, 32, &size);
	uint32_t max = ch_mring_max_entry(r);
	uint64_t c = ch_mring_head(r), tag = 1;

	ck_assert_uint_eq(max, 4 * 32 - CH_MRING_HDR_SIZE);
	/* Many laps; the reader keeps up, one or two entries (at most a
	 * ring) behind. */
	for (int round = 0; round < 3000; round++) {
		uint32_t k = 1 + (uint32_t)(test_mix((uint64_t)round) % 2);
		for (uint32_t i = 0; i < k; i++)
			mring_pub(r, tag + i, test_len(tag + i, max));
		for (uint32_t i = 0; i < k; i++, tag++)
			mring_expect(r, &c, tag, test_len(tag, max));
		ck_assert_int_eq(mring_try(r, &c), CH_MRING_EMPTY);
	}
	ck_assert_uint_gt(ch_mring_head(r), 100 * 8);
	munmap(r, size);
}
END_TEST

START_TEST(mring_span_end)
{
	size_t size;
	struct ch_mring *r = test_mring(8, 32, &size);
	uint64_t c = ch_mring_head(r), tag = 1;

	/* Walk to the last slot of the array... */
	while ((ch_mring_head(r) & 7) != 7) {
		mring_pub(r, tag, 0);
		mring_expect(r, &c, tag, 0);
		tag++;
	}
	/* ...and publish three slots: 7, 0 and 1. */
	uint64_t start = ch_mring_head(r);
	mring_pub(r, tag, 80);
	ck_assert_uint_eq(ch_mring_head(r) - start, 3);
	ck_assert_uint_gt((start & 7) + 3, 8);
	mring_expect(r, &c, tag, 80);
	/* Same with the header slot at the end and the payload wrapping. */
	mring_pub(r, tag + 1, 112);			/* slots 2..5 */
	mring_pub(r, tag + 2, 40);			/* 6..7 */
	mring_expect(r, &c, tag + 1, 112);
	mring_pub(r, tag + 3, 112);			/* 0..3 */
	mring_expect(r, &c, tag + 2, 40);
	mring_expect(r, &c, tag + 3, 112);
	munmap(r, size);
}
END_TEST

START_TEST(mring_lapped)
{
	size_t size;
	struct ch_mring *r = test_mring(16, 64, &size);
	uint64_t c = ch_mring_head(r), late;

	/* Exactly a ring behind is still fine. */
	for (uint64_t t = 1; t <= 16; t++)
		mring_pub(r, t, 10);
	late = c;
	for (uint64_t t = 1; t <= 16; t++)
		mring_expect(r, &late, t, 10);

	/* One more: the oldest is gone. */
	for (uint64_t t = 17; t <= 40; t++)
		mring_pub(r, t, 10);
	ck_assert_int_eq(mring_try(r, &c), CH_MRING_LAPPED);
	/* Resync lands on a whole entry a quarter ring past the oldest. */
	ck_assert_int_eq(ch_mring_resync(r, &c), CH_MRING_OK);
	ck_assert_uint_eq(c, ch_mring_oldest(r));
	ck_assert_uint_eq(c, ch_mring_head(r) - 12);
	for (uint64_t t = 29; t <= 40; t++)
		mring_expect(r, &c, t, 10);
	ck_assert_int_eq(mring_try(r, &c), CH_MRING_EMPTY);
	/* Resync never moves a cursor back. */
	ck_assert_int_eq(ch_mring_resync(r, &c), CH_MRING_OK);
	ck_assert_uint_eq(c, ch_mring_head(r));

	/* Overwritten but not yet published (a batch in flight, or a writer
	 * that died mid-entry): head alone says fine, the stamps say no. */
	late = ch_mring_head(r) - 16;		/* the oldest, tag 25 */
	mring_expect(r, &(uint64_t){ late }, 25, 10);
	ck_assert_int_eq(ch_mring_write(r, 41, "abcdefgh", 8), 0);
	ck_assert_uint_eq(ch_mring_head(r) - late, 16);
	ck_assert_int_eq(mring_try(r, &late), CH_MRING_LAPPED);
	ch_mring_flush(r);

	/* Every slot of a multi-slot entry is checked, not just the first. */
	for (uint64_t t = 42; t <= 60; t++)
		mring_pub(r, t, 10);
	uint64_t at = ch_mring_head(r);
	mring_pub(r, 61, 150);			/* three slots */
	uint64_t probe = at;
	mring_expect(r, &probe, 61, 150);
	atomic_store(&r->words[(at + 2) & 15], CH_MRING_STAMP_BUSY);
	probe = at;
	ck_assert_int_eq(mring_try(r, &probe), CH_MRING_LAPPED);
	ck_assert_uint_eq(probe, at);
	munmap(r, size);
}
END_TEST

START_TEST(mring_oldest_multislot)
{
	size_t size;
	struct ch_mring *r = test_mring(16, 64, &size);
	uint64_t c;

	/* Entries of 5 slots: oldest() must land on an entry's first slot,
	 * not on head - 12, which is mid-entry here. */
	for (uint64_t t = 1; t <= 20; t++)
		mring_pub(r, t, 300);
	ck_assert_uint_eq(ch_mring_head(r), ch_mring_base(r) + 100);
	c = ch_mring_oldest(r);
	ck_assert_uint_eq(c, ch_mring_head(r) - 10);
	for (uint64_t t = 19; t <= 20; t++)
		mring_expect(r, &c, t, 300);
	ck_assert_int_eq(mring_try(r, &c), CH_MRING_EMPTY);
	/* A fresh ring: oldest is the base. */
	ck_assert_int_eq(ch_mring_init(r, 16, 64), 0);
	ck_assert_uint_eq(ch_mring_oldest(r), ch_mring_base(r));
	ck_assert_uint_eq(ch_mring_oldest(r), ch_mring_head(r));
	munmap(r, size);
}
END_TEST

START_TEST(mring_batch_and_reset)
{
	size_t size;
	struct ch_mring *r = test_mring(16, 64, &size);
	uint64_t c = ch_mring_head(r), old, fresh;
	unsigned char buf[64];

	/* A batch is invisible until flushed. */
	for (uint64_t t = 1; t <= 3; t++) {
		test_fill(t, buf, 20);
		ck_assert_int_eq(ch_mring_write(r, t, buf, 20), 0);
	}
	ck_assert_int_eq(mring_try(r, &c), CH_MRING_EMPTY);
	ch_mring_flush(r);
	for (uint64_t t = 1; t <= 3; t++)
		mring_expect(r, &c, t, 20);

	/* Reset: the ring serves another room; old cursors are refused. */
	mring_pub(r, 4, 20);
	old = c;
	uint64_t before = ch_mring_base(r);
	uint64_t base = ch_mring_reset(r);
	ck_assert_uint_gt(base, before);
	ck_assert_uint_eq(ch_mring_base(r), base);
	ck_assert_uint_eq(ch_mring_head(r), base);
	ck_assert_int_eq(mring_try(r, &old), CH_MRING_RESET);
	fresh = ch_mring_head(r);
	for (uint64_t t = 100; t < 140; t++)
		mring_pub(r, t, 20);
	/* However far behind, an old cursor never reads the new room. */
	ck_assert_int_eq(mring_try(r, &old), CH_MRING_RESET);
	ck_assert_int_eq(ch_mring_resync(r, &old), CH_MRING_RESET);
	ck_assert_uint_eq(old, c);
	/* A cursor from the new generation works, and resyncs. */
	ck_assert_int_eq(mring_try(r, &fresh), CH_MRING_LAPPED);
	ck_assert_int_eq(ch_mring_resync(r, &fresh), CH_MRING_OK);
	ck_assert_uint_ge(fresh, base);
	mring_expect(r, &fresh, 140 - 12, 20);

	/* A writer that dies inside reset (base stored, head not): readers
	 * see an empty new generation, the next writer finishes the reset. */
	uint64_t mid = fresh;
	uint64_t cut = r->wpos + 16;
	atomic_store(&r->base, cut);
	ck_assert_uint_eq(ch_mring_head(r), cut);
	ck_assert_int_eq(mring_try(r, &mid), CH_MRING_RESET);
	uint64_t next = ch_mring_head(r);
	ck_assert_int_eq(mring_try(r, &next), CH_MRING_EMPTY);
	ck_assert_uint_eq(ch_mring_oldest(r), cut);
	ch_mring_writer_attach(r);
	ck_assert_uint_eq(r->wpos, cut);
	mring_pub(r, 200, 20);
	mring_expect(r, &next, 200, 20);
	munmap(r, size);
}
END_TEST

START_TEST(mring_writer_restart)
{
	size_t size;
	struct ch_mring *r = test_mring(16, 64, &size);
	uint64_t c = ch_mring_head(r);

	for (uint64_t t = 1; t <= 21; t++)
		mring_pub(r, t, 30);		/* one slot each */
	uint64_t head = ch_mring_head(r);
	/* A writer dies with a batch half done: two entries written, a third
	 * cut short (its three slots busy, their data garbage), head never
	 * stored. */
	ck_assert_int_eq(ch_mring_write(r, 900, "dead", 4), 0);
	ck_assert_int_eq(ch_mring_write(r, 901, "dead", 4), 0);
	for (uint64_t p = r->wpos; p < r->wpos + 3; p++) {
		atomic_store(&r->words[p & 15], CH_MRING_STAMP_BUSY);
		memset((void *)&r->words[16 + (p & 15) * 8], 0xee, 64);
	}
	/* Readers see no trace of it: nothing new at the head... */
	uint64_t at_head = head;
	ck_assert_int_eq(mring_try(r, &at_head), CH_MRING_EMPTY);
	/* ...the five entries it wrote over are gone, though head is only
	 * a ring ahead of the oldest of them... */
	ck_assert_int_eq(mring_try(r, &c), CH_MRING_LAPPED);
	for (uint64_t p = head - 16; p < head - 11; p++) {
		uint64_t q = p;
		ck_assert_int_eq(mring_try(r, &q), CH_MRING_LAPPED);
	}
	/* ...and the rest are intact. */
	for (uint64_t p = head - 11; p < head; p++) {
		uint64_t q = p;
		mring_expect(r, &q, 21 - (head - 1 - p), 30);
	}
	/* The next writer continues from the shared head. */
	ch_mring_writer_attach(r);
	ck_assert_uint_eq(r->wpos, head);
	for (uint64_t t = 22; t <= 35; t++)
		mring_pub(r, t, 30);
	for (uint64_t t = 22; t <= 35; t++)
		mring_expect(r, &at_head, t, 30);
	ck_assert_int_eq(ch_mring_resync(r, &c), CH_MRING_OK);
	mring_expect(r, &c, 35 - 11, 30);
	munmap(r, size);
}
END_TEST

/* ---------------------------------------------------------------- */
/* SPMC, concurrent                                                  */
/* ---------------------------------------------------------------- */

#define MRING_RUN_SLOTS 64u
#define MRING_RUN_SLOT_SIZE 64u
#define MRING_RUN_ENTRIES (1000000u / TEST_SCALE)	/* at least */
#define MRING_RUN_CHUNK 10000u
#define MRING_MIN_READS (10000u / TEST_SCALE)	/* each reader, concurrently */
#define MRING_MAX_BATCH 4
#define MRING_THREADS 2

/* Shared between the test and a reader process: results, and "done". */
struct mring_ctl {
	_Atomic int started;		/* readers that took their cursor */
	_Atomic int done;
	/* Each reader's OK count so far: the writer keeps writing until
	 * every reader has read enough while it wrote (the scheduler may
	 * leave one reader idle for a whole short run). */
	_Atomic uint64_t progress[MRING_THREADS + 1];
	uint64_t ok, lapped, bad;	/* the reader process's results */
};

struct mring_reader {
	const struct ch_mring *r;
	struct mring_ctl *ctl;
	int idx;			/* in ctl->progress */
	uint64_t ok, lapped, bad;
};

/* Read until the writer is done and the cursor is at the head. */
static void *mring_reader_run(void *arg)
{
	struct mring_reader *rd = arg;
	uint32_t max = ch_mring_max_entry(rd->r), len;
	uint64_t cursor = ch_mring_head(rd->r), last = 0, tag;
	uint64_t deadline = test_now_ns() + TEST_DEADLINE_NS;
	unsigned char *buf = malloc(max);

	/* Relaxed: the writer only waits for the count, no data rides on it. */
	atomic_fetch_add_explicit(&rd->ctl->started, 1, memory_order_relaxed);

	for (;;) {
		/* Acquire pairs with the writer's release store of done: a
		 * read that then finds nothing is at the final head. */
		int done = atomic_load_explicit(&rd->ctl->done, memory_order_acquire);

		switch (ch_mring_read(rd->r, &cursor, buf, max, &len, &tag)) {
		case CH_MRING_OK:
			if (tag <= last || len != test_len(tag, max) || !test_same(tag, buf, len))
				rd->bad++;
			last = tag;
			rd->ok++;
			/* Relaxed: a counter for the writer's stop rule only. */
			atomic_store_explicit(&rd->ctl->progress[rd->idx], rd->ok,
					      memory_order_relaxed);
			break;
		case CH_MRING_EMPTY:
			if (done || test_now_ns() > deadline)
				goto out;
			test_relax();
			break;
		case CH_MRING_LAPPED:
			rd->lapped++;
			if (ch_mring_resync(rd->r, &cursor) != CH_MRING_OK)
				rd->bad++;
			break;
		default:
			rd->bad++;
			goto out;
		}
	}
out:
	free(buf);
	return NULL;
}

/* Entries tag = first..first+n-1, fill(tag), in batches of 1..4. */
static void mring_write_run(struct ch_mring *r, uint64_t first, uint64_t n)
{
	uint32_t max = ch_mring_max_entry(r);
	unsigned char *buf = malloc(max);

	for (uint64_t tag = first; tag < first + n; tag++) {
		uint32_t len = test_len(tag, max);

		test_fill(tag, buf, len);
		(void)ch_mring_write(r, tag, buf, len);
		if (test_mix(tag) % MRING_MAX_BATCH == 0)
			ch_mring_flush(r);
	}
	ch_mring_flush(r);
	free(buf);
}

/* Write until MRING_RUN_ENTRIES are out and every reader read enough. */
static void mring_write_while_read(struct ch_mring *r, struct mring_ctl *ctl)
{
	uint64_t deadline = test_now_ns() + TEST_DEADLINE_NS, tag = 1;
	int more = 1;

	while (more && test_now_ns() < deadline) {
		mring_write_run(r, tag, MRING_RUN_CHUNK);
		tag += MRING_RUN_CHUNK;
		more = tag <= MRING_RUN_ENTRIES;
		for (int i = 0; i <= MRING_THREADS; i++)
			more |= atomic_load_explicit(&ctl->progress[i], memory_order_relaxed) <
				MRING_MIN_READS;
	}
}

START_TEST(mring_concurrent)
{
	size_t size, ctl_size = sizeof(struct mring_ctl);
	struct ch_mring *r = test_mring(MRING_RUN_SLOTS, MRING_RUN_SLOT_SIZE, &size);
	struct mring_ctl *ctl = test_shm(ctl_size);
	struct mring_reader rd[MRING_THREADS];
	pthread_t th[MRING_THREADS];
	pid_t pid;

	/* The reader process first, while this process has one thread. */
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct mring_reader prd = { .r = r, .ctl = ctl, .idx = MRING_THREADS };
		mring_reader_run(&prd);
		ctl->ok = prd.ok;
		ctl->lapped = prd.lapped;
		ctl->bad = prd.bad;
		_exit(prd.bad == 0 ? 0 : 1);
	}
	for (int i = 0; i < MRING_THREADS; i++) {
		rd[i] = (struct mring_reader){ .r = r, .ctl = ctl, .idx = i };
		ck_assert_int_eq(pthread_create(&th[i], NULL, mring_reader_run, &rd[i]), 0);
	}
	while (atomic_load_explicit(&ctl->started, memory_order_relaxed) < MRING_THREADS + 1)
		test_relax();
	mring_write_while_read(r, ctl);
	/* Release pairs with the readers' acquire load of done. */
	atomic_store_explicit(&ctl->done, 1, memory_order_release);
	for (int i = 0; i < MRING_THREADS; i++)
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
	ck_assert(test_exit_ok(pid));
	for (int i = 0; i < MRING_THREADS; i++) {
		ck_assert_uint_eq(rd[i].bad, 0);
		ck_assert_uint_ge(rd[i].ok, MRING_MIN_READS);
	}
	ck_assert_uint_eq(ctl->bad, 0);
	ck_assert_uint_ge(ctl->ok, MRING_MIN_READS);
	munmap(ctl, ctl_size);
	munmap(r, size);
}
END_TEST

#define MRING_KILLS 5
#define MRING_KILL_MIN_ENTRIES 2000u	/* read per incarnation before its kill */
#define MRING_FINAL_ENTRIES 20000u
#define MRING_INC_SHIFT 40

static void mring_kill_writer(struct ch_mring *r, uint32_t inc, uint64_t count)
{
	ch_mring_writer_attach(r);
	mring_write_run(r, (uint64_t)inc << MRING_INC_SHIFT, count);
	_exit(0);
}

struct mring_kill_state {
	uint64_t cursor, last, from_inc, bad;
};

/* One read; returns the status. */
static enum ch_mring_status mring_kill_read(const struct ch_mring *r, uint32_t inc,
					    unsigned char *buf, struct mring_kill_state *st)
{
	uint32_t max = ch_mring_max_entry(r), len;
	uint64_t tag;
	enum ch_mring_status s = ch_mring_read(r, &st->cursor, buf, max, &len, &tag);

	if (s == CH_MRING_OK) {
		if (tag <= st->last || len != test_len(tag, max) || !test_same(tag, buf, len))
			st->bad++;
		st->last = tag;
		st->from_inc += (tag >> MRING_INC_SHIFT) == inc;
	} else if (s == CH_MRING_LAPPED) {
		st->bad += ch_mring_resync(r, &st->cursor) != CH_MRING_OK;
	} else if (s != CH_MRING_EMPTY) {
		st->bad++;
	}
	return s;
}

START_TEST(mring_writer_killed)
{
	size_t size;
	struct ch_mring *r = test_mring(MRING_RUN_SLOTS, MRING_RUN_SLOT_SIZE, &size);
	struct mring_kill_state st = { .cursor = ch_mring_head(r) };
	unsigned char *buf = malloc(ch_mring_max_entry(r));
	uint64_t deadline = test_now_ns() + TEST_DEADLINE_NS;
	uint64_t final_tag = ((uint64_t)(MRING_KILLS + 1) << MRING_INC_SHIFT) +
			     MRING_FINAL_ENTRIES - 1;

	for (uint32_t inc = 1; inc <= MRING_KILLS + 1; inc++) {
		int final = inc == MRING_KILLS + 1;
		pid_t pid = fork();

		ck_assert_int_ge(pid, 0);
		if (pid == 0)
			mring_kill_writer(r, inc, final ? MRING_FINAL_ENTRIES : UINT64_MAX >> 24);
		st.from_inc = 0;
		uint64_t want = MRING_KILL_MIN_ENTRIES + test_mix(inc) % MRING_KILL_MIN_ENTRIES;
		while (final ? st.last != final_tag : st.from_inc < want) {
			if (mring_kill_read(r, inc, buf, &st) == CH_MRING_EMPTY)
				test_relax();
			if (st.bad != 0 || test_now_ns() > deadline)
				break;
		}
		if (final) {
			ck_assert(test_exit_ok(pid));
			break;
		}
		test_kill(pid);
		/* The ring stays readable: no torn entry, and it drains. */
		while (mring_kill_read(r, inc, buf, &st) != CH_MRING_EMPTY)
			if (st.bad != 0)
				break;
		ck_assert_uint_eq(st.bad, 0);
		ck_assert_uint_ge(st.from_inc, want);
	}
	ck_assert_uint_eq(st.bad, 0);
	ck_assert_uint_eq(st.last, final_tag);
	free(buf);
	munmap(r, size);
}
END_TEST

/* ---------------------------------------------------------------- */

static Suite *ring_suite(void)
{
	Suite *s = suite_create("ring");
	TCase *spsc = tcase_create("spsc");
	TCase *spsc_run = tcase_create("spsc_concurrent");
	TCase *mring = tcase_create("mring");
	TCase *mring_run = tcase_create("mring_concurrent");

	tcase_add_test(spsc, spsc_geometry);
	tcase_add_test(spsc, spsc_empty_full);
	tcase_add_test(spsc, spsc_wrap_padding);
	tcase_add_test(spsc, spsc_sizes);
	tcase_add_test(spsc, spsc_batching);
	tcase_add_test(spsc, spsc_fill_level);
	tcase_add_test(spsc, spsc_corrupt_header);
	tcase_add_test(spsc_run, spsc_two_threads);
	tcase_add_test(spsc_run, spsc_two_processes);
	tcase_add_test(spsc_run, spsc_producer_killed);
	tcase_add_test(mring, mring_geometry);
	tcase_add_test(mring, mring_basic);
	tcase_add_test(mring, mring_wrap);
	tcase_add_test(mring, mring_span_end);
	tcase_add_test(mring, mring_lapped);
	tcase_add_test(mring, mring_oldest_multislot);
	tcase_add_test(mring, mring_batch_and_reset);
	tcase_add_test(mring, mring_writer_restart);
	tcase_add_test(mring, mring_find);
	tcase_add_test(mring_run, mring_concurrent);
	tcase_add_test(mring_run, mring_writer_killed);
	tcase_set_timeout(spsc, TEST_TIMEOUT_S);
	tcase_set_timeout(spsc_run, TEST_TIMEOUT_S);
	tcase_set_timeout(mring, TEST_TIMEOUT_S);
	tcase_set_timeout(mring_run, TEST_TIMEOUT_S);
	suite_add_tcase(s, spsc);
	suite_add_tcase(s, spsc_run);
	suite_add_tcase(s, mring);
	suite_add_tcase(s, mring_run);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(ring_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
