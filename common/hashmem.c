/*
 * Memory kept for password hashing: see hashmem.h.
 *
 * The hook: libcrypt reaches mmap and munmap through slots of its global
 * offset table (Debian builds it with -fno-plt and -z now, so they are
 * R_*_GLOB_DAT relocations filled at load; a lazy-binding build has
 * R_*_JUMP_SLOT ones instead, handled the same way). We find libcrypt
 * with dl_iterate_phdr, walk its relocations for those two symbols, and
 * write our wrappers into the slots, lifting the RELRO protection for the
 * moment of the write. The functions the wrappers call onwards are what
 * the dynamic linker gives the name in the global scope, so a sanitizer's
 * interceptor still sees every call that reaches the kernel.
 */
#define _GNU_SOURCE
#include "common/hashmem.h"

#include "common/log.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__x86_64__) && __SIZEOF_POINTER__ == 8
#define CH_R_GLOB_DAT  R_X86_64_GLOB_DAT
#define CH_R_JUMP_SLOT R_X86_64_JUMP_SLOT
#elif defined(__aarch64__)
#define CH_R_GLOB_DAT  R_AARCH64_GLOB_DAT
#define CH_R_JUMP_SLOT R_AARCH64_JUMP_SLOT
#endif

#define HUGE_PAGE ((size_t)2 << 20)	/* x86-64 and arm64 with 4 KiB pages */

typedef void *mmap_fn(void *, size_t, int, int, int, off_t);
typedef int munmap_fn(void *, size_t);

struct region {
	void *p;	/* NULL: a free slot */
	size_t len;	/* the length libcrypt asked for */
	int busy;	/* handed out, not yet given back */
};

static struct {
	pthread_mutex_t mu;	/* guards r[] and keep */
	struct region r[CH_HASHMEM_MAX_KEEP];
	int keep;
	int hooked;		/* set once by ch_hashmem_init, before any hash */
	mmap_fn *mmap;		/* where the wrappers go on */
	munmap_fn *munmap;
	_Atomic uint64_t reused, mapped, passed;	/* counters, relaxed */
	_Atomic size_t kept_bytes;	/* mapped in r[]: written under mu, read without */
} hm = { .mu = PTHREAD_MUTEX_INITIALIZER };

/* ---------------------------------------------------------------------- */
/* Regions                                                                */

static size_t page_round(size_t n)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	return (n + page - 1) & ~(page - 1);
}

/* A mapping of len bytes starting on a huge-page boundary (so all of it
 * but a tail under 2 MiB can be huge pages), or NULL. */
static void *map_aligned(size_t len)
{
	size_t want = page_round(len) + HUGE_PAGE;
	char *raw = hm.mmap(NULL, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (raw == MAP_FAILED)
		return NULL;
	char *p = (char *)(((uintptr_t)raw + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
	char *end = p + page_round(len);

	if (p > raw)
		hm.munmap(raw, (size_t)(p - raw));
	if (raw + want > end)
		hm.munmap(end, (size_t)(raw + want - end));
	/* A hint: with THP off (or "never") the region is small pages. */
	(void)madvise(p, page_round(len), MADV_HUGEPAGE);
	return p;
}

/* Unmaps a kept region and empties its slot; under hm.mu. */
static void region_unmap(struct region *r)
{
	hm.munmap(r->p, page_round(r->len));
	atomic_fetch_sub_explicit(&hm.kept_bytes, page_round(r->len), memory_order_relaxed);
	r->p = NULL;
}

/* A kept region of len bytes for one hash, or NULL to map as usual. */
static void *region_take(size_t len)
{
	struct region *spare = NULL;
	void *p = NULL;

	pthread_mutex_lock(&hm.mu);
	for (int i = 0; i < hm.keep; i++) {
		struct region *r = &hm.r[i];

		if (r->p && !r->busy && r->len == len) {
			r->busy = 1;
			p = r->p;
			atomic_fetch_add_explicit(&hm.reused, 1, memory_order_relaxed);
			goto out;
		}
		if (!r->p && (!spare || spare->p))
			spare = r;	/* an empty slot is best */
		else if (r->p && !r->busy && !spare)
			spare = r;	/* else a free region of another length */
	}
	if (!spare) {
		atomic_fetch_add_explicit(&hm.passed, 1, memory_order_relaxed);
		goto out;
	}
	/* A free region of another length (the cost was changed) gives way. */
	if (spare->p)
		region_unmap(spare);
	spare->p = map_aligned(len);
	if (spare->p) {
		atomic_fetch_add_explicit(&hm.kept_bytes, page_round(len), memory_order_relaxed);
		spare->len = len;
		spare->busy = 1;
		p = spare->p;
		atomic_fetch_add_explicit(&hm.mapped, 1, memory_order_relaxed);
	}
out:
	pthread_mutex_unlock(&hm.mu);
	return p;
}

/* 1 when [p, p + len) was a kept region: it is zeroed and free again. */
static int region_give_back(void *p, size_t len)
{
	struct region *found = NULL;

	pthread_mutex_lock(&hm.mu);
	for (int i = 0; i < CH_HASHMEM_MAX_KEEP && !found; i++)
		if (hm.r[i].p == p && hm.r[i].busy && hm.r[i].len == len)
			found = &hm.r[i];
	pthread_mutex_unlock(&hm.mu);
	if (!found)
		return 0;
	/* Still busy, so ours alone: no lock while zeroing 16 MiB. */
	explicit_bzero(p, len);
	pthread_mutex_lock(&hm.mu);
	found->busy = 0;
	if (found - hm.r >= hm.keep)	/* keep was lowered since */
		region_unmap(found);
	pthread_mutex_unlock(&hm.mu);
	return 1;
}

static void *hook_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if (!addr && fd == -1 && len >= CH_HASHMEM_MIN && prot == (PROT_READ | PROT_WRITE) &&
	    flags == (MAP_PRIVATE | MAP_ANONYMOUS)) {
		void *p = region_take(len);

		if (p)
			return p;
	}
	return hm.mmap(addr, len, prot, flags, fd, off);
}

static int hook_munmap(void *p, size_t len)
{
	if (len >= CH_HASHMEM_MIN && region_give_back(p, len))
		return 0;
	return hm.munmap(p, len);
}

/* ---------------------------------------------------------------------- */
/* The hook                                                               */

#ifdef CH_R_GLOB_DAT

struct lib {
	uintptr_t base;
	const ElfW(Phdr) *phdr;
	int phnum;
	int found;
};

static int find_libcrypt(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct lib *l = arg;

	(void)size;
	if (!info->dlpi_name || !strstr(info->dlpi_name, "/libcrypt.so"))
		return 0;
	l->base = info->dlpi_addr;
	l->phdr = info->dlpi_phdr;
	l->phnum = info->dlpi_phnum;
	l->found = 1;
	return 1;
}

/* glibc rewrites a library's dynamic pointers to addresses on most
 * architectures, not on all: an offset is below the load address. */
static uintptr_t dyn_addr(const struct lib *l, ElfW(Addr) v)
{
	return v < l->base ? l->base + v : v;
}

/* Write fn into the slot at addr, which may lie in the RELRO segment. */
static int patch_slot(const struct lib *l, void **slot, void *fn)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	uintptr_t pg = (uintptr_t)slot & ~(uintptr_t)(page - 1);
	int relro = 0;

	for (int i = 0; i < l->phnum; i++) {
		const ElfW(Phdr) *ph = &l->phdr[i];
		uintptr_t s = l->base + ph->p_vaddr;

		if (ph->p_type == PT_GNU_RELRO && (uintptr_t)slot >= s &&
		    (uintptr_t)slot < s + ph->p_memsz)
			relro = 1;
	}
	if (relro && mprotect((void *)pg, page, PROT_READ | PROT_WRITE) < 0) {
		ch_warn("mprotect (libcrypt's offset table): %s", strerror(errno));
		return -1;
	}
	*slot = fn;
	if (relro && mprotect((void *)pg, page, PROT_READ) < 0)
		ch_warn("mprotect (libcrypt's offset table, back to read-only): %s",
			strerror(errno));
	return 0;
}

/* Points every slot among libcrypt's relocations in [rela, rela + size)
 * that names the symbol name at fn; counts them in *n. */
static int patch_table(const struct lib *l, const ElfW(Rela) *rela, size_t size,
		       const ElfW(Sym) *symtab, const char *strtab, const char *name, void *fn,
		       int *n)
{
	for (size_t i = 0; rela && i < size / sizeof(*rela); i++) {
		uint32_t type = (uint32_t)ELF64_R_TYPE(rela[i].r_info);

		if ((type != CH_R_GLOB_DAT && type != CH_R_JUMP_SLOT) ||
		    strcmp(strtab + symtab[ELF64_R_SYM(rela[i].r_info)].st_name, name) != 0)
			continue;
		if (patch_slot(l, (void **)(l->base + rela[i].r_offset), fn) < 0)
			return -1;
		(*n)++;
	}
	return 0;
}

static int hook(void)
{
	struct lib l = { 0 };
	const ElfW(Sym) *symtab = NULL;
	const char *strtab = NULL;
	const ElfW(Rela) *rela = NULL, *jmprel = NULL;
	size_t relasz = 0, pltrelsz = 0;
	const ElfW(Dyn) *dyn = NULL;
	int n = 0;

	dl_iterate_phdr(find_libcrypt, &l);
	if (!l.found) {
		ch_info("password hashing maps its memory per hash: libcrypt is not a shared library here");
		return -1;
	}
	hm.mmap = (mmap_fn *)dlsym(RTLD_DEFAULT, "mmap");
	hm.munmap = (munmap_fn *)dlsym(RTLD_DEFAULT, "munmap");
	for (int i = 0; i < l.phnum; i++)
		if (l.phdr[i].p_type == PT_DYNAMIC)
			dyn = (const ElfW(Dyn) *)(l.base + l.phdr[i].p_vaddr);
	for (; dyn && dyn->d_tag != DT_NULL; dyn++) {
		switch (dyn->d_tag) {
		case DT_SYMTAB: symtab = (const void *)dyn_addr(&l, dyn->d_un.d_ptr); break;
		case DT_STRTAB: strtab = (const void *)dyn_addr(&l, dyn->d_un.d_ptr); break;
		case DT_RELA: rela = (const void *)dyn_addr(&l, dyn->d_un.d_ptr); break;
		case DT_RELASZ: relasz = dyn->d_un.d_val; break;
		case DT_JMPREL: jmprel = (const void *)dyn_addr(&l, dyn->d_un.d_ptr); break;
		case DT_PLTRELSZ: pltrelsz = dyn->d_un.d_val; break;
		case DT_PLTREL:
			if (dyn->d_un.d_val != DT_RELA)
				jmprel = NULL, pltrelsz = 0;
			break;
		}
	}
	if (!hm.mmap || !hm.munmap || !symtab || !strtab) {
		ch_warn("password hashing maps its memory per hash: libcrypt's dynamic section is not as expected");
		return -1;
	}
	/* munmap first, and mmap only once it is hooked: the munmap wrapper
	 * passes on what it did not hand out, so nothing is ever half hooked. */
	int u = 0;

	if (patch_table(&l, rela, relasz, symtab, strtab, "munmap", (void *)hook_munmap, &u) < 0 ||
	    patch_table(&l, jmprel, pltrelsz, symtab, strtab, "munmap", (void *)hook_munmap, &u) < 0)
		return -1;
	if (u > 0 &&
	    (patch_table(&l, rela, relasz, symtab, strtab, "mmap", (void *)hook_mmap, &n) < 0 ||
	     patch_table(&l, jmprel, pltrelsz, symtab, strtab, "mmap", (void *)hook_mmap, &n) < 0))
		return -1;
	if (n == 0) {
		ch_info("password hashing maps its memory per hash: libcrypt calls no mmap and munmap");
		return -1;
	}
	return 0;
}

#else	/* no relocation types known for this architecture */

static int hook(void)
{
	ch_info("password hashing maps its memory per hash on this architecture");
	return -1;
}

#endif

int ch_hashmem_init(int keep)
{
	if (keep < 1 || keep > CH_HASHMEM_MAX_KEEP) {
		ch_err("ch_hashmem_init: keep %d out of range (1..%d)", keep, CH_HASHMEM_MAX_KEEP);
		return -1;
	}
	pthread_mutex_lock(&hm.mu);
	hm.keep = keep;
	for (int i = keep; i < CH_HASHMEM_MAX_KEEP; i++) {	/* busy ones on return */
		struct region *r = &hm.r[i];

		if (r->p && !r->busy)
			region_unmap(r);
	}
	pthread_mutex_unlock(&hm.mu);
	if (!hm.hooked && hook() == 0)
		hm.hooked = 1;
	return hm.hooked ? 0 : -1;
}

void ch_hashmem_stats(struct ch_hashmem_stats *out)
{
	/* No lock: the worker's loop reads this on every tick, and hashing
	 * threads at idle priority hold hm.mu. */
	out->reused = atomic_load_explicit(&hm.reused, memory_order_relaxed);
	out->mapped = atomic_load_explicit(&hm.mapped, memory_order_relaxed);
	out->passed = atomic_load_explicit(&hm.passed, memory_order_relaxed);
	out->bytes_kept = atomic_load_explicit(&hm.kept_bytes, memory_order_relaxed);
}
