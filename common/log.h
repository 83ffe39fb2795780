/*
 * Logging for every chatd process: one line per event on stderr, prefixed
 * with the time, the process name ("master", "worker 0", "journal") and the
 * level. stderr is what systemd's journal captures, so chatd never opens a
 * log file of its own for errors. Lines are written with one write(2) each,
 * so lines from different processes never interleave mid-line.
 */
#ifndef CH_LOG_H
#define CH_LOG_H

#include <errno.h>
#include <string.h>

enum ch_log_level {
	CH_LOG_ERROR,	/* something failed; the process may go on */
	CH_LOG_WARN,	/* unexpected, but handled */
	CH_LOG_INFO,	/* life-cycle events: start, stop, restart, reload */
	CH_LOG_DEBUG	/* per-connection detail; off in production */
};

void ch_log_set_name(const char *name);
void ch_log_set_level(enum ch_log_level level);
enum ch_log_level ch_log_get_level(void);
int ch_log_level_parse(const char *s, enum ch_log_level *out);
const char *ch_log_level_name(enum ch_log_level level);

void ch_log(enum ch_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define ch_log_enabled(lvl) ((lvl) <= ch_log_get_level())
#define ch_err(...)   ch_log(CH_LOG_ERROR, __VA_ARGS__)
#define ch_warn(...)  ch_log(CH_LOG_WARN, __VA_ARGS__)
#define ch_info(...)  ch_log(CH_LOG_INFO, __VA_ARGS__)
#define ch_debug(...) \
	do { if (ch_log_enabled(CH_LOG_DEBUG)) ch_log(CH_LOG_DEBUG, __VA_ARGS__); } while (0)

/* A failed system call: its name and errno's text, logged once where handled. */
#define ch_err_sys(call) ch_err("%s: %s", (call), strerror(errno))
#define ch_err_code(call, code) ch_err("%s: %s", (call), strerror(code))

#endif
