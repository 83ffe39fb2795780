/*
 * REST preparation: see prep.h. A 409 (user_exists, room_exists) counts as
 * done, so --prepare can be repeated against the same server; any other
 * answer stops the run, since a benchmark on a half-prepared server
 * measures errors.
 */
#include "bench/chatbench/prep.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "client/httpc.h"
#include "common/buf.h"
#include "common/log.h"

#define PREP_TIMEOUT_MS	30000	/* a registration waits for a password hash */
#define FILL_CONTENT	'h'

void ch_bench_user_name(const struct ch_bench_opts *o, unsigned i, char *out, size_t cap)
{
	/* --user is limited so that "-N" always fits; checked, not assumed. */
	int n = o->users == 1 ? snprintf(out, cap, "%s", o->user) : snprintf(out, cap, "%s-%u", o->user, i);
	if (n < 0 || (size_t)n >= cap)
		out[0] = 0;
}

/* One call; 0 when the status is want (or also_ok), else -1 with the answer logged. */
static int call(const struct ch_httpc_url *u, const char *method, const char *path, const char *token,
		const struct ch_buf *body, int want, int also_ok, struct ch_httpc_resp *resp)
{
	memset(resp, 0, sizeof(*resp));
	if (body && body->failed) {
		ch_err("out of memory building %s %s", method, path);
		return -1;
	}
	if (ch_httpc_request(u, method, path, token, body ? body->p : NULL, body ? body->len : 0,
			     PREP_TIMEOUT_MS, resp) < 0) {
		ch_err("%s %s: %s", method, path, strerror(errno));
		return -1;
	}
	if (resp->status != want && resp->status != also_ok) {
		ch_err("%s %s: %d %s", method, path, resp->status, resp->body ? resp->body : "");
		ch_httpc_resp_free(resp);
		return -1;
	}
	return 0;
}

static void credentials(struct ch_buf *b, const char *user, const char *password)
{
	ch_buf_puts(b, "{\"username\":");
	ch_json_str(b, user, strlen(user));
	ch_buf_puts(b, ",\"password\":");
	ch_json_str(b, password, strlen(password));
	ch_buf_puts(b, "}");
}

/* The token from a login answer {"token":"...",...}. */
static int take_token(const char *body, char *out, size_t cap)
{
	cJSON *j = cJSON_Parse(body ? body : "");
	const cJSON *tok = cJSON_GetObjectItemCaseSensitive(j, "token");
	int rc = -1;

	if (cJSON_IsString(tok) && strlen(tok->valuestring) < cap) {
		strcpy(out, tok->valuestring);
		rc = 0;
	}
	cJSON_Delete(j);
	return rc;
}

static int user_ready(struct ch_bench_run *run, const struct ch_httpc_url *u, unsigned i)
{
	const struct ch_bench_opts *o = &run->o;
	struct ch_httpc_resp resp;
	struct ch_buf b;
	char name[CH_BENCH_MAX_NAME];
	int rc = -1;

	ch_bench_user_name(o, i, name, sizeof(name));
	ch_buf_init(&b);
	credentials(&b, name, o->password);
	if (o->prepare) {
		if (call(u, "POST", "/api/register", NULL, &b, 201, 409, &resp) < 0)
			goto out;
		ch_httpc_resp_free(&resp);
	}
	if (call(u, "POST", "/api/login", NULL, &b, 200, 200, &resp) < 0)
		goto out;
	rc = take_token(resp.body, run->tokens[i], sizeof(run->tokens[i]));
	if (rc < 0)
		ch_err("POST /api/login: no token in %s", resp.body);
	ch_httpc_resp_free(&resp);
out:
	ch_buf_free(&b);
	return rc;
}

static int room_ready(struct ch_bench_run *run, const struct ch_httpc_url *u, unsigned r)
{
	const struct ch_bench_opts *o = &run->o;
	struct ch_httpc_resp resp;
	struct ch_buf b;
	char name[CH_BENCH_MAX_NAME];
	int rc = -1;

	ch_buf_init(&b);
	ch_buf_puts(&b, "{\"id\":");
	ch_json_str(&b, run->names[r], strlen(run->names[r]));
	ch_buf_puts(&b, ",\"participants\":[");
	for (unsigned i = 0; i < o->users; i++) {
		ch_bench_user_name(o, i, name, sizeof(name));
		if (i)
			ch_buf_puts(&b, ",");
		ch_json_str(&b, name, strlen(name));
	}
	ch_buf_puts(&b, "]}");
	if (call(u, "POST", "/api/room", run->tokens[0], &b, 201, 409, &resp) < 0)
		goto out;
	ch_httpc_resp_free(&resp);
	for (unsigned k = 0; k < o->fill; k++) {
		b.len = 0;
		ch_buf_puts(&b, "{\"room\":");
		ch_json_str(&b, run->names[r], strlen(run->names[r]));
		ch_buf_puts(&b, ",\"content\":\"");
		for (unsigned i = 0; i < o->size; i++)
			ch_buf_append(&b, (char[]){ FILL_CONTENT }, 1);
		ch_buf_puts(&b, "\"}");
		if (call(u, "POST", "/api/send", run->tokens[0], &b, 200, 200, &resp) < 0)
			goto out;
		ch_httpc_resp_free(&resp);
	}
	rc = 0;
out:
	ch_buf_free(&b);
	return rc;
}

int ch_bench_prepare(struct ch_bench_run *run)
{
	const struct ch_bench_opts *o = &run->o;
	struct ch_httpc_url u;
	const char *err;

	if (o->token[0]) {
		for (unsigned i = 0; i < o->users; i++)
			snprintf(run->tokens[i], sizeof(run->tokens[i]), "%s", o->token);
		return 0;	/* main refuses --token with --prepare */
	}
	if (ch_httpc_parse_url(o->hostport, &u, &err) < 0) {
		ch_err("%s: %s", o->hostport, err);
		return -1;
	}
	for (unsigned i = 0; i < o->users; i++)
		if (user_ready(run, &u, i) < 0)
			return -1;
	if (!o->prepare)
		return 0;
	for (unsigned r = 0; r < o->rooms; r++)
		if (room_ready(run, &u, r) < 0)
			return -1;
	return 0;
}
