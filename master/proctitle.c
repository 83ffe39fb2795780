/*
 * Process titles: see proctitle.h. argv[] itself keeps pointing at the old
 * memory, so callers must have finished with their arguments (option
 * parsing copies what it keeps) before the first ch_proctitle_set().
 */
#define _GNU_SOURCE
#include "master/proctitle.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

extern char **environ;

static char *title_start;
static size_t title_space;

void ch_proctitle_init(int argc, char **argv)
{
	char *end = argv[0] + strlen(argv[0]) + 1;

	for (int i = 1; i < argc; i++)
		if (argv[i] == end)
			end = argv[i] + strlen(argv[i]) + 1;
	/* Move the environment away when it lies right after argv. */
	size_t n_env = 0;
	while (environ[n_env])
		n_env++;
	char **env = malloc((n_env + 1) * sizeof(*env));
	if (env) {
		for (size_t i = 0; i < n_env; i++) {
			if (environ[i] == end)
				end = environ[i] + strlen(environ[i]) + 1;
			env[i] = strdup(environ[i]);
		}
		env[n_env] = NULL;
		environ = env;
	}
	title_start = argv[0];
	title_space = (size_t)(end - argv[0]);
}

void ch_proctitle_set(const char *fmt, ...)
{
	char title[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(title, sizeof(title), fmt, ap);
	va_end(ap);
	/* The short name shown by top and in /proc/PID/comm: "chatd-worker0"
	 * would be cut at 15 bytes, so keep it to the part after "chatd: ". */
	const char *comm = strncmp(title, "chatd: ", 7) == 0 ? title + 7 : title;
	prctl(PR_SET_NAME, comm, 0, 0, 0);
	if (!title_start || title_space < 2)
		return;
	size_t len = strlen(title);
	if (len >= title_space)
		len = title_space - 1;
	memcpy(title_start, title, len);
	memset(title_start + len, 0, title_space - len);
}
