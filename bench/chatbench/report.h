/*
 * What a run prints: the header with its settings, a progress line each
 * second while stderr is a terminal, and the summary, as a table for
 * people or as one JSON object (--json) for scripts such as bench/run.
 * Collecting the numbers (ch_bench_sum, main.c) is kept apart from
 * formatting them (here).
 */
#ifndef CH_BENCH_REPORT_H
#define CH_BENCH_REPORT_H

#include <stdio.h>

#include "bench/chatbench/bench.h"

/* The threads' counters summed: one plain field per counter. */
struct ch_bench_totals {
#define CH_X(name, text) uint64_t name;
	CH_BENCH_COUNTERS(CH_X)
#undef CH_X
#define CH_X(name, text) uint64_t err_##name;
	CH_BENCH_ERRORS(CH_X)
#undef CH_X
	uint64_t open;
	uint64_t opening;
	uint64_t in_flight;
};

struct ch_bench_result {
	struct ch_bench_totals tot;	/* at the end of the run */
	double secs;			/* the measured phase */
	uint64_t lost;			/* sent to a room, never reached a member that was there */
	uint64_t open_at_run;		/* connections open when measuring began */
	struct ch_hist hist;		/* every thread's latencies */
	double cpu;			/* server CPU seconds while measuring; < 0: no --server-pid */
	unsigned nproc;			/* processes in the server trees */
	uint64_t rss_before;		/* server resident bytes before connecting */
	uint64_t rss_open;		/* ... at the end of measuring, connections open */
	uint64_t rounds;		/* broadcast rounds begun */
	uint64_t round_timeouts;
};

void ch_bench_sum(const struct ch_bench_run *run, struct ch_bench_totals *tot);
uint64_t ch_bench_errors(const struct ch_bench_totals *tot);
/* The scenario's unit of work done while measuring (deliveries, connects, responses). */
uint64_t ch_bench_work(const struct ch_bench_run *run, const struct ch_bench_totals *tot);
const char *ch_bench_scenario_name(enum ch_bench_scenario s);

void ch_bench_print_header(FILE *f, const struct ch_bench_run *run);
void ch_bench_progress(const struct ch_bench_run *run, double elapsed, const struct ch_bench_totals *now,
		       const struct ch_bench_totals *before);
void ch_bench_print_summary(FILE *f, const struct ch_bench_run *run, const struct ch_bench_result *res);
void ch_bench_print_json(FILE *f, const struct ch_bench_run *run, const struct ch_bench_result *res);

#endif
