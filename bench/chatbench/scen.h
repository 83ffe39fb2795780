/*
 * The scenarios (scen.c): what each connection sends and when, and what
 * each delivery proves. The loop calls these on its events and once per
 * turn; all run on the connection's own thread.
 */
#ifndef CH_BENCH_SCEN_H
#define CH_BENCH_SCEN_H

#include "bench/chatbench/bench.h"

void ch_scen_on_open(struct ch_bench_thread *t, struct ch_bench_conn *c);
void ch_scen_on_text(struct ch_bench_thread *t, struct ch_bench_conn *c, const uint8_t *p, size_t len);
void ch_scen_on_http(struct ch_bench_thread *t, struct ch_bench_conn *c, int status, size_t bytes);
void ch_scen_on_closed(struct ch_bench_thread *t, struct ch_bench_conn *c);
void ch_scen_tick(struct ch_bench_thread *t, int phase);
void ch_scen_flush_round(struct ch_bench_thread *t);
int ch_scen_wants_ws(const struct ch_bench_run *run);

#endif
