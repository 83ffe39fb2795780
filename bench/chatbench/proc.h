/*
 * The server's side of a measurement, read from /proc: the CPU time and
 * resident memory of the processes given with --server-pid and of all
 * their descendants (chatd's workers and journal, Node's single process).
 * Read by the main thread only, at the edges of the measured phase.
 */
#ifndef CH_BENCH_PROC_H
#define CH_BENCH_PROC_H

#include <stddef.h>
#include <stdint.h>

/* utime + stime (+ reaped children's) of the trees, in seconds; -1 if no pid is readable. */
double ch_bench_proc_cpu(const int *pids, unsigned npids);
/* Resident bytes of the trees summed; 0 if none is readable. */
uint64_t ch_bench_proc_rss(const int *pids, unsigned npids);
/* How many processes the trees hold now. */
unsigned ch_bench_proc_count(const int *pids, unsigned npids);

#endif
