/*
 * The shared memory layout (shm/shm.h), created small: 16 room rings of 16
 * slots x 64 bytes (the ingress and reply rings keep their fixed sizes).
 *
 * Covered: the header (magic, version, geometry, size) against the
 * mapping and the memfd; every region and every object the accessors
 * return (stats blocks, ingress and reply rings, room table, room rings,
 * rate-limit tables) aligned (regions to 4 KiB, stats blocks to 64 bytes),
 * inside the mapping and overlapping nothing else; fresh memory zeroed; rings
 * usable right after create, the first and the last of each kind; the
 * mapping shared with a forked child both ways (stats counter, ingress
 * ring, room ring and room table written by the child, reply ring by the
 * parent after the fork); the eventfds (distinct, non-blocking,
 * close-on-exec, counting wake-ups, across fork); refused geometry leaving
 * no descriptor open; ch_shm_destroy unmapping and closing everything,
 * and safe to call twice.
 */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm/ring.h"
#include "shm/shm.h"

#define N_RINGS 16
#define RING_SLOTS 16
#define SLOT_SIZE 64
#define PAGE 4096u
#define CACHE_LINE 64u
#define CHILD_WORKER 3		/* the worker the forked child plays */
#define CHILD_RING 5		/* the room ring it publishes to */
#define CHILD_ROOM_ID 4242u
#define CHILD_STAT 12345u
#define TEST_TIMEOUT_S 30
#define LIMIT_TABLE_BYTES (CH_SHM_LIMIT_SLOTS * sizeof(struct ch_limit_slot))
#define LIMITS_BYTES ((uint64_t)CH_SHM_LIMITS * LIMIT_TABLE_BYTES)

/* Exit codes of the child in the fork tests (0: all went well). */
enum child_status {
	CHILD_OK = 0,
	CHILD_PUSH_FAILED = 10,
	CHILD_PUBLISH_FAILED,
	CHILD_PIPE_FAILED,
	CHILD_NO_REPLY,
	CHILD_BAD_REPLY,
};

static void create_small(struct ch_shm *shm)
{
	ck_assert_int_eq(ch_shm_create(shm, N_RINGS, RING_SLOTS, SLOT_SIZE), 0);
	ck_assert_ptr_nonnull(shm->base);
}

/* Descriptors open in this process. */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1;	/* the directory's own descriptor */
}

static int fd_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1;
}

/* ---------------------------------------------------------------------- */
/* Layout                                                                 */

START_TEST(test_header)
{
	struct ch_shm shm;
	struct stat st;

	create_small(&shm);
	const struct ch_shm_header *h = ch_shm_header(&shm);
	ck_assert_ptr_eq((void *)h, shm.base);
	ck_assert_uint_eq(h->magic, CH_SHM_MAGIC);
	ck_assert_uint_eq(h->version, CH_SHM_VERSION);
	ck_assert_uint_eq(h->n_workers_max, CH_MAX_WORKERS);
	ck_assert_uint_eq(h->n_rings, N_RINGS);
	ck_assert_uint_eq(h->ring_slots, RING_SLOTS);
	ck_assert_uint_eq(h->ring_slot_size, SLOT_SIZE);
	ck_assert_uint_eq(h->size, shm.size);
	ck_assert_uint_eq(shm.size % PAGE, 0);
	ck_assert_uint_eq((uintptr_t)shm.base % PAGE, 0);
	ck_assert_int_ge(shm.memfd, 0);
	ck_assert_int_eq(fstat(shm.memfd, &st), 0);
	ck_assert_uint_eq((uint64_t)st.st_size, shm.size);
	ch_shm_destroy(&shm);
}
END_TEST

START_TEST(test_region_offsets)
{
	struct ch_shm shm;

	create_small(&shm);
	const struct ch_shm_header *h = ch_shm_header(&shm);
	const uint64_t offs[] = { h->stats_off, h->ingress_off, h->reply_off, h->rooms_off,
				  h->rings_off, h->limits_off, h->ingress_stride, h->reply_stride,
				  h->ring_stride };
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++)
		ck_assert_msg(offs[i] % PAGE == 0, "offset/stride %zu (%llu) not 4 KiB aligned", i,
			      (unsigned long long)offs[i]);

	/* Regions in order, each big enough, none overlapping the next. */
	ck_assert_uint_ge(h->stats_off, sizeof(*h));
	ck_assert_uint_eq(sizeof(struct ch_stats) % CACHE_LINE, 0);
	ck_assert_uint_ge(h->ingress_off, h->stats_off + CH_SHM_PROCS * sizeof(struct ch_stats));
	ck_assert_uint_ge(h->ingress_stride, ch_spsc_mem_size(CH_SHM_INGRESS_BYTES));
	ck_assert_uint_ge(h->reply_off, h->ingress_off + CH_MAX_WORKERS * h->ingress_stride);
	ck_assert_uint_ge(h->reply_stride, ch_spsc_mem_size(CH_SHM_REPLY_BYTES));
	ck_assert_uint_ge(h->rooms_off, h->reply_off + CH_MAX_WORKERS * h->reply_stride);
	ck_assert_uint_ge(h->rings_off, h->rooms_off + N_RINGS * sizeof(struct ch_shm_room));
	ck_assert_uint_ge(h->ring_stride, ch_mring_mem_size(RING_SLOTS, SLOT_SIZE));
	ck_assert_uint_gt(ch_mring_mem_size(RING_SLOTS, SLOT_SIZE), 0);
	ck_assert_uint_ge(h->limits_off, h->rings_off + N_RINGS * h->ring_stride);
	ck_assert_uint_le(h->limits_off + LIMITS_BYTES, h->size);
	ch_shm_destroy(&shm);
}
END_TEST

struct span {
	uintptr_t lo, hi;	/* [lo, hi) */
	const char *what;
	unsigned idx;
};

static int cmp_span(const void *a, const void *b)
{
	const struct span *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Every object the accessors hand out, as address ranges: aligned, inside
 * the mapping past the header, and pairwise disjoint. */
START_TEST(test_objects_disjoint)
{
	struct ch_shm shm;
	enum { MAX_SPANS = CH_SHM_PROCS + 2 * CH_MAX_WORKERS + 2 * N_RINGS + CH_SHM_LIMITS };
	static struct span spans[MAX_SPANS];
	size_t n = 0;

	create_small(&shm);
	uintptr_t base = (uintptr_t)shm.base;
	for (int p = 0; p < CH_SHM_PROCS; p++) {
		uintptr_t a = (uintptr_t)ch_shm_stats(&shm, p);
		ck_assert_msg(a % CACHE_LINE == 0, "stats block %d not 64-byte aligned", p);
		spans[n++] = (struct span){ a, a + sizeof(struct ch_stats), "stats", (unsigned)p };
	}
	for (int w = 0; w < CH_MAX_WORKERS; w++) {
		uintptr_t a = (uintptr_t)ch_shm_ingress(&shm, w);
		ck_assert_uint_eq(a % PAGE, 0);
		spans[n++] = (struct span){ a, a + ch_spsc_mem_size(CH_SHM_INGRESS_BYTES),
					    "ingress", (unsigned)w };
		a = (uintptr_t)ch_shm_reply(&shm, w);
		ck_assert_uint_eq(a % PAGE, 0);
		spans[n++] = (struct span){ a, a + ch_spsc_mem_size(CH_SHM_REPLY_BYTES),
					    "reply", (unsigned)w };
	}
	for (uint32_t r = 0; r < N_RINGS; r++) {
		uintptr_t a = (uintptr_t)ch_shm_room(&shm, r);
		ck_assert_uint_eq(a % _Alignof(struct ch_shm_room), 0);
		spans[n++] = (struct span){ a, a + sizeof(struct ch_shm_room), "room", r };
		a = (uintptr_t)ch_shm_ring(&shm, r);
		ck_assert_uint_eq(a % PAGE, 0);
		spans[n++] = (struct span){ a, a + ch_mring_mem_size(RING_SLOTS, SLOT_SIZE),
					    "ring", r };
	}
	for (int t = 0; t < CH_SHM_LIMITS; t++) {
		uintptr_t a = (uintptr_t)ch_shm_limit_slots(&shm, (enum ch_shm_limit_table)t);
		ck_assert_uint_eq(a % _Alignof(struct ch_limit_slot), 0);
		spans[n++] = (struct span){ a, a + LIMIT_TABLE_BYTES, "limits", (unsigned)t };
	}
	ck_assert_uint_eq(n, MAX_SPANS);
	qsort(spans, n, sizeof(spans[0]), cmp_span);
	ck_assert_uint_ge(spans[0].lo, base + sizeof(struct ch_shm_header));
	ck_assert_uint_le(spans[n - 1].hi, base + shm.size);
	for (size_t i = 1; i < n; i++)
		ck_assert_msg(spans[i - 1].hi <= spans[i].lo, "%s %u overlaps %s %u",
			      spans[i - 1].what, spans[i - 1].idx, spans[i].what, spans[i].idx);
	/* The stats blocks are consecutive: [2 + i] is worker i. */
	ck_assert_ptr_eq(ch_shm_stats(&shm, CH_SHM_PROC_WORKER(0)),
			 ch_shm_stats(&shm, CH_SHM_PROC_MASTER) + 2);
	ch_shm_destroy(&shm);
}
END_TEST

START_TEST(test_fresh_memory_zeroed)
{
	struct ch_shm shm;

	create_small(&shm);
	for (int p = 0; p < CH_SHM_PROCS; p++) {
		struct ch_stats *st = ch_shm_stats(&shm, p);
		static const struct ch_stats zero;
		ck_assert_int_eq(memcmp(st, &zero, sizeof(zero)), 0);
	}
	for (uint32_t r = 0; r < N_RINGS; r++) {
		struct ch_shm_room *room = ch_shm_room(&shm, r);
		ck_assert_uint_eq(atomic_load(&room->room_id), 0);
		ck_assert_uint_eq(atomic_load(&room->members), 0);
	}
	for (int t = 0; t < CH_SHM_LIMITS; t++) {
		struct ch_limit_slot *slot = ch_shm_limit_slots(&shm, (enum ch_shm_limit_table)t);
		for (uint32_t i = 0; i < CH_SHM_LIMIT_SLOTS; i++)
			if (atomic_load(&slot[i].key) != 0 || atomic_load(&slot[i].state) != 0)
				ck_abort_msg("limit table %d slot %u not zero", t, i);
	}
	ch_shm_destroy(&shm);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Rings usable after create                                              */

static void spsc_roundtrip(struct ch_spsc *r, uint32_t type, const char *msg)
{
	uint32_t t, l;

	ck_assert_uint_eq(ch_spsc_used(r), 0);
	ck_assert_ptr_null(ch_spsc_peek(r, &t, &l));
	ck_assert_int_eq(ch_spsc_push(r, type, msg, (uint32_t)strlen(msg)), 0);
	const char *p = ch_spsc_peek(r, &t, &l);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(t, type);
	ck_assert_uint_eq(l, strlen(msg));
	ck_assert_int_eq(memcmp(p, msg, l), 0);
	ch_spsc_pop(r);
	ck_assert_ptr_null(ch_spsc_peek(r, &t, &l));
}

START_TEST(test_spsc_usable)
{
	struct ch_shm shm;

	create_small(&shm);
	for (int w = 0; w < CH_MAX_WORKERS; w++) {
		ck_assert_uint_eq(ch_spsc_capacity(ch_shm_ingress(&shm, w)), CH_SHM_INGRESS_BYTES);
		ck_assert_uint_eq(ch_spsc_capacity(ch_shm_reply(&shm, w)), CH_SHM_REPLY_BYTES);
	}
	spsc_roundtrip(ch_shm_ingress(&shm, 0), 7, "first ingress");
	spsc_roundtrip(ch_shm_ingress(&shm, CH_MAX_WORKERS - 1), 8, "last ingress");
	spsc_roundtrip(ch_shm_reply(&shm, 0), 9, "first reply");
	spsc_roundtrip(ch_shm_reply(&shm, CH_MAX_WORKERS - 1), 10, "last reply");

	/* The largest payload fits, in the last reply ring, which sits right
	 * before the room table: it must not write into it. */
	struct ch_spsc *r = ch_shm_reply(&shm, CH_MAX_WORKERS - 1);
	uint32_t max = ch_spsc_max_payload(r);
	char *big = malloc(max);
	ck_assert_ptr_nonnull(big);
	memset(big, 0xA5, max);
	ck_assert_int_eq(ch_spsc_push(r, 1, big, max), 0);
	uint32_t t, l;
	const unsigned char *p = ch_spsc_peek(r, &t, &l);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(l, max);
	ck_assert_int_eq(memcmp(p, big, max), 0);
	ch_spsc_pop(r);
	free(big);
	ck_assert_uint_eq(atomic_load(&ch_shm_room(&shm, 0)->room_id), 0);
	ck_assert_uint_eq(atomic_load(&ch_shm_room(&shm, 0)->members), 0);
	ch_shm_destroy(&shm);
}
END_TEST

/* Fill every room ring past its size: the entries read back are intact
 * and no ring disturbs its neighbours. */
START_TEST(test_mring_usable)
{
	struct ch_shm shm;
	uint8_t buf[SLOT_SIZE * RING_SLOTS];

	create_small(&shm);
	for (uint32_t r = 0; r < N_RINGS; r++) {
		struct ch_mring *m = ch_shm_ring(&shm, r);
		ck_assert_uint_eq(ch_mring_nslots(m), RING_SLOTS);
		ck_assert_uint_gt(ch_mring_max_entry(m), 0);
		ck_assert_uint_eq(ch_mring_head(m), ch_mring_base(m));
	}
	for (uint32_t r = 0; r < N_RINGS; r++) {
		struct ch_mring *m = ch_shm_ring(&shm, r);
		uint32_t len = ch_mring_max_entry(m);
		for (uint32_t i = 0; i < 2 * RING_SLOTS; i++) {
			memset(buf, (int)(r * 16 + i), len);
			ck_assert_int_eq(ch_mring_publish(m, r * 1000 + i, buf, len), 0);
		}
	}
	for (uint32_t r = 0; r < N_RINGS; r++) {
		struct ch_mring *m = ch_shm_ring(&shm, r);
		uint64_t cursor = ch_mring_oldest(m);
		uint32_t len, got = 0;
		uint64_t tag, last = 0;
		enum ch_mring_status st;
		while ((st = ch_mring_read(m, &cursor, buf, sizeof(buf), &len, &tag)) ==
		       CH_MRING_OK) {
			ck_assert_uint_ge(tag, r * 1000);
			ck_assert_uint_lt(tag, r * 1000 + 2 * RING_SLOTS);
			if (got)
				ck_assert_uint_eq(tag, last + 1);
			uint8_t want = (uint8_t)(r * 16 + (uint32_t)(tag - r * 1000));
			for (uint32_t i = 0; i < len; i++)
				ck_assert_uint_eq(buf[i], want);
			last = tag;
			got++;
		}
		ck_assert_int_eq(st, CH_MRING_EMPTY);
		ck_assert_uint_gt(got, 0);
		ck_assert_uint_eq(last, r * 1000 + 2 * RING_SLOTS - 1);
	}
	ch_shm_destroy(&shm);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Shared with a forked child                                             */

/* The child: plays worker CHILD_WORKER. Writes its stats, pushes to its
 * ingress ring, publishes to a room ring, wakes the journal, then waits
 * for the parent's reply on its reply ring. */
static int child_main(struct ch_shm *shm, int go_fd)
{
	struct ch_stats *st = ch_shm_stats(shm, CH_SHM_PROC_WORKER(CHILD_WORKER));
	static const char msg[] = "hello from the child";
	char c;
	uint32_t t, l;

	CH_STAT_ADD(st, requests, CHILD_STAT);
	CH_STAT_SET(st, pid, (uint64_t)getpid());
	if (ch_spsc_push(ch_shm_ingress(shm, CHILD_WORKER), 77, msg, sizeof(msg)) < 0)
		return CHILD_PUSH_FAILED;
	if (ch_mring_publish(ch_shm_ring(shm, CHILD_RING), 99, msg, sizeof(msg)) < 0)
		return CHILD_PUBLISH_FAILED;
	atomic_store_explicit(&ch_shm_room(shm, CHILD_RING)->room_id, CHILD_ROOM_ID,
			      memory_order_release);
	ch_shm_wake(shm->journal_efd);
	/* The parent writes the reply after the fork, then says go. */
	if (read(go_fd, &c, 1) != 1)
		return CHILD_PIPE_FAILED;
	const char *p = ch_spsc_peek(ch_shm_reply(shm, CHILD_WORKER), &t, &l);
	if (p == NULL)
		return CHILD_NO_REPLY;
	if (t != 55 || l != 5 || memcmp(p, "reply", 5) != 0)
		return CHILD_BAD_REPLY;
	ch_spsc_pop(ch_shm_reply(shm, CHILD_WORKER));
	return CHILD_OK;
}

START_TEST(test_shared_with_child)
{
	struct ch_shm shm;
	int go[2];
	uint64_t v;
	uint32_t t, l;

	create_small(&shm);
	ck_assert_int_eq(pipe(go), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(go[1]);
		_exit(child_main(&shm, go[0]));
	}
	close(go[0]);

	/* The child's wake-up arrives on the journal's eventfd. */
	struct ch_stats *st = ch_shm_stats(&shm, CH_SHM_PROC_WORKER(CHILD_WORKER));
	int efd_flags = fcntl(shm.journal_efd, F_GETFL);
	ck_assert_int_ge(efd_flags, 0);
	ck_assert_int_eq(fcntl(shm.journal_efd, F_SETFL, efd_flags & ~O_NONBLOCK), 0);
	ck_assert_int_eq(read(shm.journal_efd, &v, sizeof(v)), (ssize_t)sizeof(v));
	ck_assert_uint_eq(v, 1);
	ck_assert_int_eq(fcntl(shm.journal_efd, F_SETFL, efd_flags), 0);

	/* Everything written before the wake is visible here. */
	uint64_t requests = CH_STAT_GET(st, requests), child_pid = CH_STAT_GET(st, pid);
	uint64_t neighbour = CH_STAT_GET(ch_shm_stats(&shm, CH_SHM_PROC_WORKER(CHILD_WORKER - 1)),
					 requests);
	ck_assert_uint_eq(requests, CHILD_STAT);
	ck_assert_uint_eq(child_pid, (uint64_t)pid);
	ck_assert_uint_eq(neighbour, 0);
	const char *p = ch_spsc_peek(ch_shm_ingress(&shm, CHILD_WORKER), &t, &l);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(t, 77);
	ck_assert_uint_eq(l, sizeof("hello from the child"));
	ck_assert_str_eq(p, "hello from the child");
	ch_spsc_pop(ch_shm_ingress(&shm, CHILD_WORKER));
	ck_assert_ptr_null(ch_spsc_peek(ch_shm_ingress(&shm, CHILD_WORKER), &t, &l));
	ck_assert_uint_eq(atomic_load_explicit(&ch_shm_room(&shm, CHILD_RING)->room_id,
					       memory_order_acquire), CHILD_ROOM_ID);
	char buf[SLOT_SIZE * RING_SLOTS];
	uint64_t cursor = ch_mring_base(ch_shm_ring(&shm, CHILD_RING)), tag;
	ck_assert_int_eq(ch_mring_read(ch_shm_ring(&shm, CHILD_RING), &cursor, buf, sizeof(buf),
				       &l, &tag), CH_MRING_OK);
	ck_assert_uint_eq(tag, 99);
	ck_assert_str_eq(buf, "hello from the child");

	/* The other way: written here after the fork, seen there. */
	ck_assert_int_eq(ch_spsc_push(ch_shm_reply(&shm, CHILD_WORKER), 55, "reply", 5), 0);
	ck_assert_int_eq(write(go[1], "g", 1), 1);
	close(go[1]);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), CHILD_OK);
	/* The child consumed the reply in the shared ring. */
	ck_assert_ptr_null(ch_spsc_peek(ch_shm_reply(&shm, CHILD_WORKER), &t, &l));
	ch_shm_destroy(&shm);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Eventfds                                                               */

START_TEST(test_eventfds)
{
	struct ch_shm shm;
	uint64_t v;

	create_small(&shm);
	int fds[CH_MAX_WORKERS + 2];
	fds[0] = shm.journal_efd;
	fds[1] = shm.memfd;
	for (int i = 0; i < CH_MAX_WORKERS; i++)
		fds[2 + i] = shm.worker_efd[i];
	for (int i = 0; i < CH_MAX_WORKERS + 2; i++) {
		ck_assert_int_gt(fds[i], 2);	/* never stdin, stdout, stderr */
		ck_assert(fd_open(fds[i]));
		ck_assert_int_eq(fcntl(fds[i], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
		for (int j = 0; j < i; j++)
			ck_assert_int_ne(fds[i], fds[j]);
	}
	for (int i = 0; i < CH_MAX_WORKERS + 1; i++) {
		int fd = i == 0 ? shm.journal_efd : shm.worker_efd[i - 1];
		ck_assert_int_ne(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
		/* Nothing pending: a read does not block. */
		ck_assert_int_eq(read(fd, &v, sizeof(v)), -1);
		ck_assert_int_eq(errno, EAGAIN);
		/* Wake-ups add up until read. */
		ch_shm_wake(fd);
		ch_shm_wake(fd);
		ch_shm_wake(fd);
		ck_assert_int_eq(read(fd, &v, sizeof(v)), (ssize_t)sizeof(v));
		ck_assert_uint_eq(v, 3);
		ck_assert_int_eq(read(fd, &v, sizeof(v)), -1);
		ck_assert_int_eq(errno, EAGAIN);
	}
	/* Waking one worker wakes no other. */
	ch_shm_wake(shm.worker_efd[7]);
	for (int i = 0; i < CH_MAX_WORKERS; i++)
		ck_assert_int_eq(read(shm.worker_efd[i], &v, sizeof(v)) == (ssize_t)sizeof(v), i == 7);
	ck_assert_int_eq(read(shm.journal_efd, &v, sizeof(v)), -1);
	ch_shm_destroy(&shm);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Create refused, destroy                                                */

START_TEST(test_bad_geometry_refused)
{
	struct ch_shm shm;
	const uint32_t bad[][2] = {
		{ 3, SLOT_SIZE },		/* slots not a power of two */
		{ 2, SLOT_SIZE },		/* too few slots */
		{ RING_SLOTS, 60 },		/* slot size not a multiple of 8 */
		{ RING_SLOTS, 16 },		/* slot too small */
	};
	int before = count_fds();

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(ch_shm_create(&shm, N_RINGS, bad[i][0], bad[i][1]), -1);
		ck_assert_ptr_null(shm.base);
		ck_assert_int_eq(shm.memfd, -1);
		ck_assert_int_eq(shm.journal_efd, -1);
		ck_assert_int_eq(count_fds(), before);
	}
	/* And a good one afterwards still works. */
	create_small(&shm);
	ch_shm_destroy(&shm);
	ck_assert_int_eq(count_fds(), before);
}
END_TEST

START_TEST(test_destroy_releases)
{
	struct ch_shm shm;
	unsigned char vec;
	int before = count_fds();

	create_small(&shm);
	ck_assert_int_eq(count_fds(), before + 2 + CH_MAX_WORKERS);
	void *base = shm.base;
	size_t size = shm.size;
	int memfd = shm.memfd, jefd = shm.journal_efd, wefd = shm.worker_efd[CH_MAX_WORKERS - 1];
	/* Touch a page so it is certainly resident while mapped. */
	ch_shm_stats(&shm, CH_SHM_PROC_MASTER)->pid = 1;
	ck_assert_int_eq(mincore(base, PAGE, &vec), 0);

	ch_shm_destroy(&shm);
	ck_assert_ptr_null(shm.base);
	ck_assert_uint_eq(shm.size, 0);
	ck_assert_int_eq(shm.memfd, -1);
	ck_assert_int_eq(shm.journal_efd, -1);
	ck_assert(!fd_open(memfd));
	ck_assert(!fd_open(jefd));
	ck_assert(!fd_open(wefd));
	ck_assert_int_eq(count_fds(), before);
	/* Unmapped: mincore says ENOMEM for the first and the last page. */
	ck_assert_int_eq(mincore(base, PAGE, &vec), -1);
	ck_assert_int_eq(errno, ENOMEM);
	ck_assert_int_eq(mincore((char *)base + size - PAGE, PAGE, &vec), -1);
	ck_assert_int_eq(errno, ENOMEM);

	/* Create and destroy many times: nothing accumulates. */
	for (int i = 0; i < 20; i++) {
		create_small(&shm);
		ch_shm_destroy(&shm);
	}
	ck_assert_int_eq(count_fds(), before);
}
END_TEST

/*
 * Destroy is idempotent: every descriptor field is -1 afterwards, so a
 * second ch_shm_destroy (or the caller's own cleanup after a failed
 * ch_shm_create, which already destroyed) closes nothing. worker_efd[]
 * was once left at 0 by the memset, and the second call closed descriptor
 * 0 CH_MAX_WORKERS times: stdin, or whatever the process held as 0 by then
 * (a socket, a file).
 */
START_TEST(test_destroy_twice_keeps_fd0)
{
	struct ch_shm shm;
	int p[2];

	/* Make descriptor 0 one of ours, to see whether it is closed. */
	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(dup2(p[0], 0), 0);
	create_small(&shm);
	ch_shm_destroy(&shm);
	ch_shm_destroy(&shm);
	ck_assert_msg(fd_open(0), "descriptor 0 closed by a second ch_shm_destroy");
	for (int i = 0; i < CH_MAX_WORKERS; i++)
		ck_assert_msg(shm.worker_efd[i] == -1, "worker_efd[%d] is %d after destroy", i,
			      shm.worker_efd[i]);

	/* A failed create, then the caller's own cleanup. */
	ck_assert_int_eq(ch_shm_create(&shm, N_RINGS, 3, SLOT_SIZE), -1);
	ch_shm_destroy(&shm);
	ck_assert_msg(fd_open(0), "descriptor 0 closed by destroy after a failed create");
	close(p[0]);
	close(p[1]);
}
END_TEST

static Suite *shm_suite(void)
{
	Suite *s = suite_create("shm");
	TCase *tc = tcase_create("shm");

	tcase_set_timeout(tc, TEST_TIMEOUT_S);
	tcase_add_test(tc, test_header);
	tcase_add_test(tc, test_region_offsets);
	tcase_add_test(tc, test_objects_disjoint);
	tcase_add_test(tc, test_fresh_memory_zeroed);
	tcase_add_test(tc, test_spsc_usable);
	tcase_add_test(tc, test_mring_usable);
	tcase_add_test(tc, test_shared_with_child);
	tcase_add_test(tc, test_eventfds);
	tcase_add_test(tc, test_bad_geometry_refused);
	tcase_add_test(tc, test_destroy_releases);
	tcase_add_test(tc, test_destroy_twice_keeps_fd0);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(shm_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
