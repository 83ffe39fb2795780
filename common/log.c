/*
 * Logging: see log.h. The level is a plain process-local variable; each
 * process sets it from the config after fork.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static char log_name[32] = "chatd";
static enum ch_log_level log_level = CH_LOG_INFO;

static const char *const level_names[] = {
	[CH_LOG_ERROR] = "error",
	[CH_LOG_WARN] = "warn",
	[CH_LOG_INFO] = "info",
	[CH_LOG_DEBUG] = "debug",
};

void ch_log_set_name(const char *name)
{
	snprintf(log_name, sizeof(log_name), "%s", name);
}

void ch_log_set_level(enum ch_log_level level)
{
	log_level = level;
}

enum ch_log_level ch_log_get_level(void)
{
	return log_level;
}

const char *ch_log_level_name(enum ch_log_level level)
{
	return level_names[level];
}

int ch_log_level_parse(const char *s, enum ch_log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum ch_log_level)i;
			return 0;
		}
	}
	return -1;
}

void ch_log(enum ch_log_level level, const char *fmt, ...)
{
	char line[1024];
	struct timeval tv;
	struct tm tm;
	int saved = errno;

	if (level > log_level)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	int n = snprintf(line, sizeof(line),
			 "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ [%s] %s: ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
			 tm.tm_min, tm.tm_sec, (long)(tv.tv_usec / 1000),
			 log_name, level_names[level]);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	line[len++] = '\n';
	/* One write per line: lines from several processes stay whole. */
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
	errno = saved;
}
