/*
 * Failpoints: see failpoint.h.
 *
 * The table is a small fixed array of entries, replaced whole by
 * ch_failpoint_set(). Each entry counts the calls through its point and the
 * times it fired; those counters are the only state ch_failpoint_hit()
 * writes. Without CH_FAILPOINTS only stubs are built, so code compiled with
 * and without the flag still links.
 */
#include "common/failpoint.h"

#include <errno.h>

#ifdef CH_FAILPOINTS

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define FP_SPEC_MAX 1024	/* bytes of a whole spec */

enum fp_mode {
	FP_ALWAYS,	/* fire on the Nth call and every one after */
	FP_ONCE		/* fire on the Nth call only */
};

struct fp_entry {
	char name[CH_FAILPOINT_NAME_MAX];
	enum ch_fp_action action;
	enum fp_mode mode;
	uint64_t nth;			/* first call that fires, from 1 */
	/* Counters only: relaxed fetch_add gives each call its own number;
	 * no other memory is published through them. */
	_Atomic uint64_t calls;
	_Atomic uint64_t fired;
};

static struct fp_entry fp_table[CH_FAILPOINT_MAX_ENTRIES];
static int fp_count;
static pthread_once_t fp_env_once = PTHREAD_ONCE_INIT;

static const struct {
	const char *word;
	enum ch_fp_action action;
} fp_actions[] = {
	{ "eio", CH_FP_EIO },
	{ "enospc", CH_FP_ENOSPC },
	{ "short", CH_FP_SHORT },
};

static int fp_parse_action(const char *s, enum ch_fp_action *out)
{
	for (size_t i = 0; i < sizeof(fp_actions) / sizeof(fp_actions[0]); i++) {
		if (strcmp(s, fp_actions[i].word) == 0) {
			*out = fp_actions[i].action;
			return 0;
		}
	}
	return -1;
}

/* Parse "name=action[@N][:mode]" (entry is modified in place). */
static int fp_parse_entry(char *entry, struct fp_entry *e)
{
	char *eq = strchr(entry, '=');
	char *colon, *at, *end;

	if (eq == NULL || eq == entry || (size_t)(eq - entry) >= sizeof(e->name))
		return -1;
	*eq = '\0';
	memset(e, 0, sizeof(*e));
	memcpy(e->name, entry, (size_t)(eq - entry) + 1);
	e->mode = FP_ALWAYS;
	e->nth = 1;

	colon = strchr(eq + 1, ':');
	if (colon != NULL) {
		*colon = '\0';
		if (strcmp(colon + 1, "once") == 0)
			e->mode = FP_ONCE;
		else if (strcmp(colon + 1, "always") != 0)
			return -1;
	}
	at = strchr(eq + 1, '@');
	if (at != NULL) {
		*at = '\0';
		if (at[1] < '0' || at[1] > '9')
			return -1;
		errno = 0;
		e->nth = strtoull(at + 1, &end, 10);
		if (errno != 0 || *end != '\0' || e->nth == 0)
			return -1;
	}
	return fp_parse_action(eq + 1, &e->action);
}

static int fp_parse(const char *spec, struct fp_entry *out, int *n_out)
{
	char buf[FP_SPEC_MAX];
	char *save = NULL, *tok;
	int n = 0;

	if (strlen(spec) >= sizeof(buf))
		return -1;
	memcpy(buf, spec, strlen(spec) + 1);
	for (tok = strtok_r(buf, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		if (n == CH_FAILPOINT_MAX_ENTRIES || fp_parse_entry(tok, &out[n]) != 0) {
			ch_err("failpoints: bad entry \"%s\" in \"%s\"", tok, spec);
			return -1;
		}
		n++;
	}
	*n_out = n;
	return 0;
}

static int fp_set(const char *spec)
{
	struct fp_entry parsed[CH_FAILPOINT_MAX_ENTRIES];
	int n = 0;

	if (spec != NULL && fp_parse(spec, parsed, &n) != 0)
		return -EINVAL;
	for (int i = 0; i < n; i++) {
		memcpy(fp_table[i].name, parsed[i].name, sizeof(parsed[i].name));
		fp_table[i].action = parsed[i].action;
		fp_table[i].mode = parsed[i].mode;
		fp_table[i].nth = parsed[i].nth;
		atomic_store_explicit(&fp_table[i].calls, 0, memory_order_relaxed);
		atomic_store_explicit(&fp_table[i].fired, 0, memory_order_relaxed);
	}
	fp_count = n;
	if (n > 0)
		ch_info("failpoints: %s", spec);
	return 0;
}

static void fp_env_init(void)
{
	const char *spec = getenv(CH_FAILPOINT_ENV);

	if (spec != NULL && fp_set(spec) != 0) {
		ch_err("failpoints: %s is malformed; refusing to run without the "
		       "failures it asks for", CH_FAILPOINT_ENV);
		abort();
	}
}

int ch_failpoint_compiled_in(void)
{
	return 1;
}

int ch_failpoint_set(const char *spec)
{
	pthread_once(&fp_env_once, fp_env_init);
	return fp_set(spec);
}

int ch_failpoint_load_env(void)
{
	pthread_once(&fp_env_once, fp_env_init);
	return fp_set(getenv(CH_FAILPOINT_ENV));
}

enum ch_fp_action ch_failpoint_hit(const char *name)
{
	enum ch_fp_action result = CH_FP_NONE;

	pthread_once(&fp_env_once, fp_env_init);
	for (int i = 0; i < fp_count; i++) {
		struct fp_entry *e = &fp_table[i];
		uint64_t call;
		int fires;

		if (strcmp(e->name, name) != 0)
			continue;
		/* Every entry for this point counts the call, fired or not. */
		call = atomic_fetch_add_explicit(&e->calls, 1, memory_order_relaxed) + 1;
		fires = e->mode == FP_ONCE ? call == e->nth : call >= e->nth;
		if (fires && result == CH_FP_NONE) {
			atomic_fetch_add_explicit(&e->fired, 1, memory_order_relaxed);
			result = e->action;
		}
	}
	return result;
}

uint64_t ch_failpoint_fired(const char *name)
{
	uint64_t total = 0;

	for (int i = 0; i < fp_count; i++) {
		if (strcmp(fp_table[i].name, name) == 0)
			total += atomic_load_explicit(&fp_table[i].fired,
						      memory_order_relaxed);
	}
	return total;
}

#else /* !CH_FAILPOINTS */

int ch_failpoint_compiled_in(void)
{
	return 0;
}

int ch_failpoint_set(const char *spec)
{
	(void)spec;
	return -ENOTSUP;
}

int ch_failpoint_load_env(void)
{
	return -ENOTSUP;
}

enum ch_fp_action ch_failpoint_hit(const char *name)
{
	(void)name;
	return CH_FP_NONE;
}

uint64_t ch_failpoint_fired(const char *name)
{
	(void)name;
	return 0;
}

#endif /* CH_FAILPOINTS */

int ch_failpoint_errno(enum ch_fp_action action)
{
	switch (action) {
	case CH_FP_NONE:
		return 0;
	case CH_FP_ENOSPC:
		return ENOSPC;
	case CH_FP_EIO:
	case CH_FP_SHORT:
		break;
	}
	return EIO;
}
