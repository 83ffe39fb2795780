/*
 * Creating and addressing the shared memory: see shm.h for the layout.
 */
#define _GNU_SOURCE
#include "shm/shm.h"

#include "common/log.h"

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define CH_SHM_ALIGN 4096u

static uint64_t align_up(uint64_t v)
{
	return (v + CH_SHM_ALIGN - 1) & ~(uint64_t)(CH_SHM_ALIGN - 1);
}

int ch_shm_create(struct ch_shm *shm, uint32_t n_rings, uint32_t ring_slots,
		  uint32_t ring_slot_size)
{
	struct ch_shm_header h = {
		.magic = CH_SHM_MAGIC,
		.version = CH_SHM_VERSION,
		.n_workers_max = CH_MAX_WORKERS,
		.n_rings = n_rings,
		.ring_slots = ring_slots,
		.ring_slot_size = ring_slot_size,
	};
	uint64_t off = align_up(sizeof(h));

	memset(shm, 0, sizeof(*shm));
	shm->memfd = shm->journal_efd = -1;
	for (int i = 0; i < CH_MAX_WORKERS; i++)
		shm->worker_efd[i] = -1;

	h.stats_off = off;
	off = align_up(off + CH_SHM_PROCS * sizeof(struct ch_stats));
	h.ingress_off = off;
	h.ingress_stride = align_up(ch_spsc_mem_size(CH_SHM_INGRESS_BYTES));
	off += h.ingress_stride * CH_MAX_WORKERS;
	h.reply_off = off;
	h.reply_stride = align_up(ch_spsc_mem_size(CH_SHM_REPLY_BYTES));
	off += h.reply_stride * CH_MAX_WORKERS;
	h.rooms_off = off;
	off = align_up(off + (uint64_t)n_rings * sizeof(struct ch_shm_room));
	h.rings_off = off;
	h.ring_stride = align_up(ch_mring_mem_size(ring_slots, ring_slot_size));
	off += h.ring_stride * n_rings;
	h.limits_off = off;
	off = align_up(off + (uint64_t)CH_SHM_LIMITS * CH_SHM_LIMIT_SLOTS * sizeof(struct ch_limit_slot));
	h.size = off;

	shm->memfd = memfd_create("chatd-shm", MFD_CLOEXEC);
	if (shm->memfd < 0) {
		ch_err_sys("memfd_create");
		goto fail;
	}
	/* Pages are allocated when first touched: a large pool of room rings
	 * costs memory only for the rings in use. */
	if (ftruncate(shm->memfd, (off_t)h.size) < 0) {
		ch_err_sys("ftruncate(shm)");
		goto fail;
	}
	shm->base = mmap(NULL, h.size, PROT_READ | PROT_WRITE, MAP_SHARED, shm->memfd, 0);
	if (shm->base == MAP_FAILED) {
		shm->base = NULL;
		ch_err_sys("mmap(shm)");
		goto fail;
	}
	shm->size = h.size;
	memcpy(shm->base, &h, sizeof(h));
	for (int i = 0; i < CH_MAX_WORKERS; i++) {
		if (ch_spsc_init(ch_shm_ingress(shm, i), CH_SHM_INGRESS_BYTES) < 0 ||
		    ch_spsc_init(ch_shm_reply(shm, i), CH_SHM_REPLY_BYTES) < 0)
			goto fail;
	}
	for (uint32_t r = 0; r < n_rings; r++) {
		if (ch_mring_init(ch_shm_ring(shm, r), ring_slots, ring_slot_size) < 0) {
			ch_err("room ring: %u slots of %u bytes refused", ring_slots,
			       ring_slot_size);
			goto fail;
		}
	}
	shm->journal_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (shm->journal_efd < 0) {
		ch_err_sys("eventfd");
		goto fail;
	}
	for (int i = 0; i < CH_MAX_WORKERS; i++) {
		shm->worker_efd[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (shm->worker_efd[i] < 0) {
			ch_err_sys("eventfd");
			goto fail;
		}
	}
	ch_info("shared memory: %llu MiB mapped (%u room rings of %u x %u bytes)",
		(unsigned long long)(h.size >> 20), n_rings, ring_slots, ring_slot_size);
	return 0;
fail:
	ch_shm_destroy(shm);
	return -1;
}

void ch_shm_destroy(struct ch_shm *shm)
{
	if (shm->base)
		munmap(shm->base, shm->size);
	if (shm->memfd >= 0)
		close(shm->memfd);
	if (shm->journal_efd >= 0)
		close(shm->journal_efd);
	for (int i = 0; i < CH_MAX_WORKERS; i++)
		if (shm->worker_efd[i] >= 0)
			close(shm->worker_efd[i]);
	memset(shm, 0, sizeof(*shm));
	/* -1, not 0: destroying twice must not close descriptor 0. */
	shm->memfd = shm->journal_efd = -1;
	for (int i = 0; i < CH_MAX_WORKERS; i++)
		shm->worker_efd[i] = -1;
}

struct ch_stats *ch_shm_stats(const struct ch_shm *shm, int proc)
{
	const struct ch_shm_header *h = ch_shm_header(shm);
	return (struct ch_stats *)((char *)shm->base + h->stats_off) + proc;
}

struct ch_spsc *ch_shm_ingress(const struct ch_shm *shm, int worker)
{
	const struct ch_shm_header *h = ch_shm_header(shm);
	return (struct ch_spsc *)((char *)shm->base + h->ingress_off +
				  h->ingress_stride * (uint64_t)worker);
}

struct ch_spsc *ch_shm_reply(const struct ch_shm *shm, int worker)
{
	const struct ch_shm_header *h = ch_shm_header(shm);
	return (struct ch_spsc *)((char *)shm->base + h->reply_off +
				  h->reply_stride * (uint64_t)worker);
}

struct ch_shm_room *ch_shm_room(const struct ch_shm *shm, uint32_t ring)
{
	const struct ch_shm_header *h = ch_shm_header(shm);
	return (struct ch_shm_room *)((char *)shm->base + h->rooms_off) + ring;
}

struct ch_mring *ch_shm_ring(const struct ch_shm *shm, uint32_t ring)
{
	const struct ch_shm_header *h = ch_shm_header(shm);
	return (struct ch_mring *)((char *)shm->base + h->rings_off + h->ring_stride * ring);
}

struct ch_limit_slot *ch_shm_limit_slots(const struct ch_shm *shm, enum ch_shm_limit_table t)
{
	const struct ch_shm_header *h = ch_shm_header(shm);
	return (struct ch_limit_slot *)((char *)shm->base + h->limits_off) +
	       (size_t)t * CH_SHM_LIMIT_SLOTS;
}

void ch_shm_wake(int efd)
{
	uint64_t one = 1;
	ssize_t n = write(efd, &one, sizeof(one));
	(void)n;
}
