/*
 * JSON answers as text: see render.h.
 */
#define _GNU_SOURCE
#include "admin/render.h"

#include <string.h>

#define CH_RENDER_CELL_MAX 256		/* a table cell or a value, as printed */
#define CH_RENDER_COLS_MAX 32		/* columns of a table */
#define CH_RENDER_BOLD "\033[1m"
#define CH_RENDER_RESET "\033[0m"

void ch_render_scalar(char *buf, size_t len, const cJSON *v)
{
	if (cJSON_IsString(v)) {
		snprintf(buf, len, "%s", v->valuestring);
	} else if (cJSON_IsNumber(v)) {
		double d = v->valuedouble;
		/* Counters are integers; only rates and CPU seconds are not. */
		if (d > -9.0e15 && d < 9.0e15 && d == (double)(long long)d)
			snprintf(buf, len, "%.0f", d);
		else
			snprintf(buf, len, "%.2f", d);
	} else if (cJSON_IsBool(v)) {
		snprintf(buf, len, "%s", cJSON_IsTrue(v) ? "true" : "false");
	} else if (!v || cJSON_IsNull(v)) {	/* a cell its row lacks, or null */
		snprintf(buf, len, "-");
	} else {
		char *text = cJSON_PrintUnformatted(v);
		snprintf(buf, len, "%s", text ? text : "?");
		cJSON_free(text);
	}
}

static int is_scalar(const cJSON *v)
{
	return !cJSON_IsObject(v) && !cJSON_IsArray(v);
}

static void header(FILE *out, const char *name, int tty)
{
	fprintf(out, "%s# %s%s\n", tty ? CH_RENDER_BOLD : "", name, tty ? CH_RENDER_RESET : "");
}

void ch_render_table(FILE *out, const cJSON *rows, int tty)
{
	const cJSON *first = cJSON_GetArrayItem(rows, 0);
	const char *cols[CH_RENDER_COLS_MAX];
	size_t width[CH_RENDER_COLS_MAX];
	char cell[CH_RENDER_CELL_MAX];
	int n = 0;

	if (!first) {
		fprintf(out, "(none)\n");
		return;
	}
	for (const cJSON *c = first->child; c && n < CH_RENDER_COLS_MAX; c = c->next) {
		cols[n] = c->string;
		width[n++] = strlen(c->string);
	}
	const cJSON *row;
	cJSON_ArrayForEach(row, rows) {
		for (int i = 0; i < n; i++) {
			ch_render_scalar(cell, sizeof(cell), cJSON_GetObjectItemCaseSensitive(row, cols[i]));
			if (strlen(cell) > width[i])
				width[i] = strlen(cell);
		}
	}
	if (tty)
		fputs(CH_RENDER_BOLD, out);
	for (int i = 0; i < n; i++)
		fprintf(out, "%-*s%s", i + 1 < n ? (int)width[i] : 0, cols[i], i + 1 < n ? "  " : "");
	fprintf(out, "%s\n", tty ? CH_RENDER_RESET : "");
	cJSON_ArrayForEach(row, rows) {
		for (int i = 0; i < n; i++) {
			ch_render_scalar(cell, sizeof(cell), cJSON_GetObjectItemCaseSensitive(row, cols[i]));
			fprintf(out, "%-*s%s", i + 1 < n ? (int)width[i] : 0, cell,
				i + 1 < n ? "  " : "");
		}
		fputc('\n', out);
	}
}

/* key: a=1,b=2 for an object, key: a,b for an array of scalars. */
static void flat(FILE *out, const cJSON *v)
{
	char cell[CH_RENDER_CELL_MAX];
	const cJSON *m;
	int first = 1;

	fprintf(out, "%s:%s", v->string, v->child ? " " : "");
	cJSON_ArrayForEach(m, v) {
		ch_render_scalar(cell, sizeof(cell), m);
		if (cJSON_IsObject(v))
			fprintf(out, "%s%s=%s", first ? "" : ",", m->string, cell);
		else
			fprintf(out, "%s%s", first ? "" : ",", cell);
		first = 0;
	}
	fputc('\n', out);
}

/* *printed: something is already out, so a new block starts with a blank
 * line (between blocks, never before the first). */
static void render_members(FILE *out, const cJSON *obj, int depth, int tty, int *printed)
{
	char cell[CH_RENDER_CELL_MAX];
	const cJSON *v;

	cJSON_ArrayForEach(v, obj) {
		if (depth == 0 && strcmp(v->string, "ok") == 0)
			continue;
		if (is_scalar(v)) {
			ch_render_scalar(cell, sizeof(cell), v);
			fprintf(out, "%s: %s\n", v->string, cell);
		} else if (cJSON_IsArray(v) && (!v->child || cJSON_IsObject(v->child))) {
			if (*printed)
				fputc('\n', out);
			header(out, v->string, tty);
			ch_render_table(out, v, tty);
		} else if (depth == 0 && cJSON_IsObject(v)) {
			/* stats' sections are each a block of their own */
			int sections = strcmp(v->string, "sections") == 0;
			const cJSON *first = sections ? v->child : v;
			for (const cJSON *s = first; s; s = sections ? s->next : NULL) {
				if (*printed)
					fputc('\n', out);
				header(out, s->string, tty);
				*printed = 1;
				if (!s->child)
					fprintf(out, "(none)\n");
				render_members(out, s, 1, tty, printed);
			}
		} else {
			flat(out, v);
		}
		*printed = 1;
	}
}

void ch_render_answer(FILE *out, const cJSON *answer, int tty)
{
	cJSON *scalars = cJSON_CreateObject(), *blocks = cJSON_CreateObject();
	const cJSON *v;
	int printed = 0;

	/* The plain key: value lines first, then the blocks, so a summary
	 * line never reads as a row of the table before it. */
	cJSON_ArrayForEach(v, answer) {
		int block = cJSON_IsObject(v) || (cJSON_IsArray(v) && (!v->child || cJSON_IsObject(v->child)));
		cJSON *to = block ? blocks : scalars;
		cJSON_AddItemReferenceToObject(to, v->string, (cJSON *)v);
	}
	render_members(out, scalars, 0, tty, &printed);
	render_members(out, blocks, 0, tty, &printed);
	cJSON_Delete(scalars);
	cJSON_Delete(blocks);
}
