/*
 * Getting ready through chatd's REST API (PROTOCOL.md, "HTTP"), before any
 * loop starts and with client/httpc.h's blocking client: logging the
 * users in for their tokens and, with --prepare, registering them,
 * creating the rooms (every user a participant) and filling each room.
 */
#ifndef CH_BENCH_PREP_H
#define CH_BENCH_PREP_H

#include "bench/chatbench/bench.h"

/* Fills run->tokens (o.users of them). 0, or -1 after printing why. */
int ch_bench_prepare(struct ch_bench_run *run);

/* The name of user i: o.user when there is one user, else "o.user-i". */
void ch_bench_user_name(const struct ch_bench_opts *o, unsigned i, char *out, size_t cap);

#endif
