/*
 * Talking to systemd (Type=notify, sd_notify(3)): READY=1 once every worker
 * accepts, STATUS= kept current, RELOADING=1 with MONOTONIC_USEC then
 * READY=1 around a reload, STOPPING=1, and WATCHDOG=1 pings. Without
 * NOTIFY_SOCKET every call is a cheap no-op, so chatd run by hand or by the
 * tests behaves the same.
 *
 * Invariant: the watchdog is pinged only while every child that should run
 * is alive, so a master stuck restarting a crashing child lets systemd see
 * the service as unhealthy.
 */
#ifndef CH_NOTIFY_H
#define CH_NOTIFY_H

#include <stdint.h>

/* Read WATCHDOG_USEC once (at start); 0 when no watchdog is set. */
void ch_notify_init(void);

void ch_notify_ready(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void ch_notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Before a reload: RELOADING=1 with the CLOCK_MONOTONIC time in µs. */
void ch_notify_reloading(void);
void ch_notify_stopping(void);

/* Called from the master's loop; pings at half the watchdog interval,
 * and only when all_alive. now_ms is CLOCK_MONOTONIC. */
void ch_notify_watchdog(uint64_t now_ms, int all_alive);

/* Milliseconds until the next ping is due (-1: no watchdog). */
int ch_notify_watchdog_timeout(uint64_t now_ms);

#endif
