/*
 * The event loops: one io_uring per thread, its connections' sockets,
 * sends and receives (loop.c). Scenarios (scen.h) call back in to open,
 * queue on and close connections, and to wake the other loops.
 */
#ifndef CH_BENCH_LOOP_H
#define CH_BENCH_LOOP_H

#include "bench/chatbench/bench.h"

/* Ring, buffer ring, eventfd and connection slots of t (t->run, t->index set). */
int ch_bench_thread_init(struct ch_bench_thread *t);
/* Everything of t, its sockets included; after the thread has returned. */
void ch_bench_thread_free(struct ch_bench_thread *t);
/* The loop (pthread start routine): runs until the phase is DONE. */
void *ch_bench_thread_main(void *arg);
/* Queue a frame (or raw bytes); -1 when the connection is closing or its queue is full. */
int ch_bench_conn_queue(struct ch_bench_thread *t, struct ch_bench_conn *c, int opcode,
			const void *payload, size_t len);
int ch_bench_conn_queue_raw(struct ch_bench_thread *t, struct ch_bench_conn *c,
			    const void *p, size_t len);
/* Starts closing c; ch_scen_on_closed follows once nothing of it is in flight. */
void ch_bench_conn_close(struct ch_bench_thread *t, struct ch_bench_conn *c);
/* A new socket and connect for the idle slot c; -1 (counted) if none could be made. */
int ch_bench_conn_open(struct ch_bench_thread *t, struct ch_bench_conn *c);
/* c is ready for its scenario (upgraded, and joined in chatd mode). */
void ch_bench_conn_opened(struct ch_bench_thread *t, struct ch_bench_conn *c);
/* Wakes every loop but except's (a broadcast round moved on). */
void ch_bench_wake_all(struct ch_bench_run *run, unsigned except);

#endif
