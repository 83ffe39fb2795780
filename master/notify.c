/*
 * sd_notify for the master: see notify.h.
 */
#define _GNU_SOURCE
#include "master/notify.h"

#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#define CH_NOTIFY_TEXT_MAX 256

static uint64_t watchdog_ms;	/* half of WATCHDOG_USEC; 0: off */
static uint64_t next_ping_ms;

void ch_notify_init(void)
{
	uint64_t usec = 0;

	/* 0 = keep the variables: restarted children must not see them,
	 * but they never call sd_notify, so nothing to clean up. */
	if (sd_watchdog_enabled(0, &usec) > 0 && usec >= 2000) {
		watchdog_ms = usec / 2000;
		ch_info("systemd watchdog: pinging every %llu ms",
			(unsigned long long)watchdog_ms);
	}
}

static void notify_text(const char *prefix, const char *fmt, va_list ap)
{
	char text[CH_NOTIFY_TEXT_MAX];

	vsnprintf(text, sizeof(text), fmt, ap);
	sd_notifyf(0, "%sSTATUS=%s", prefix, text);
}

void ch_notify_ready(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	notify_text("READY=1\n", fmt, ap);
	va_end(ap);
}

void ch_notify_status(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	notify_text("", fmt, ap);
	va_end(ap);
}

void ch_notify_reloading(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	/* MONOTONIC_USEC lets systemd tell this reload from an older one
	 * (Type=notify-reload, systemd 253+); older versions ignore it. */
	sd_notifyf(0, "RELOADING=1\nSTATUS=reloading\nMONOTONIC_USEC=%llu",
		   (unsigned long long)ts.tv_sec * 1000000ull +
			   (unsigned long long)ts.tv_nsec / 1000);
}

void ch_notify_stopping(void)
{
	sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}

void ch_notify_watchdog(uint64_t now_ms, int all_alive)
{
	if (!watchdog_ms || now_ms < next_ping_ms)
		return;
	next_ping_ms = now_ms + watchdog_ms;
	if (all_alive)
		sd_notify(0, "WATCHDOG=1");
}

int ch_notify_watchdog_timeout(uint64_t now_ms)
{
	if (!watchdog_ms)
		return -1;
	return next_ping_ms <= now_ms ? 0 : (int)(next_ping_ms - now_ms);
}
