/*
 * chatadm's output: an answer of the admin socket (a JSON object, see
 * admin/commands.h) as text for people and scripts.
 *
 *   scalar member            key: value
 *   "sections" (stats)       each section as "# name", then its fields
 *   object member            "# name", then its members one level down
 *   object one level down    key: a=1,b=2 (as Redis INFO writes replicas)
 *   array of objects         a table: a header row, one row per element,
 *                            columns aligned
 *   array of scalars         key: a,b,c
 *
 * On a terminal, headers are bold; otherwise the output is plain text with
 * no escape sequences, the same lines in the same order.
 */
#ifndef CH_RENDER_H
#define CH_RENDER_H

#include <cjson/cJSON.h>
#include <stdio.h>

/* Everything but "ok". */
void ch_render_answer(FILE *out, const cJSON *answer, int tty);

/* One array of objects as an aligned table (columns from the first row). */
void ch_render_table(FILE *out, const cJSON *rows, int tty);

/* A scalar as text: strings bare, integers without a fraction, true/false. */
void ch_render_scalar(char *buf, size_t len, const cJSON *v);

#endif
