/*
 * chatcli's session: see cli_chat.h.
 */
#include "client/cli_chat.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/cli_term.h"
#include "common/buf.h"

int64_t ch_cli_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------------
 * Output
 * ---------------------------------------------------------------------- */

/* "HH:MM:SS" local time of a message's ts (ms since the epoch). */
void ch_cli_clock(int64_t ts_ms, char out[CH_CLI_CLOCK_LEN])
{
	time_t t = (time_t)(ts_ms / 1000);
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL || strftime(out, CH_CLI_CLOCK_LEN, "%H:%M:%S", &tm) == 0)
		snprintf(out, CH_CLI_CLOCK_LEN, "--:--:--");
}

/*
 * Text from the network made safe for a terminal: C0 and C1 control
 * characters (escape sequences could rewrite the screen) become '?', a
 * newline starts an indented line. Returns a malloc'd string.
 */
static char *ch_cli_sanitize(const char *s)
{
	struct ch_buf b;
	const unsigned char *p;

	ch_buf_init(&b);
	for (p = (const unsigned char *)s; *p; p++) {
		if (*p == '\n')
			ch_buf_puts(&b, "\n    ");
		else if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			ch_buf_append(&b, "?", 1);
		else if (p[0] == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F) {
			ch_buf_append(&b, "?", 1);	/* U+0080..U+009F: C1 controls */
			p++;
		} else {
			ch_buf_append(&b, p, 1);
		}
	}
	ch_buf_append(&b, "", 1);
	if (b.failed) {
		ch_buf_free(&b);
		return strdup("?");
	}
	return b.p;
}

/* The other user of a "dm:A:B" room, or NULL for a normal room. */
static const char *ch_cli_dm_peer(const struct ch_cli *c, const char *room, char out[CH_CLI_MAX_NAME + 1])
{
	const char *a, *b;
	size_t alen;

	if (strncmp(room, "dm:", 3) != 0)
		return NULL;
	a = room + 3;
	b = strchr(a, ':');
	if (b == NULL)
		return NULL;
	alen = (size_t)(b - a);
	b++;
	if (strlen(c->user) == alen && strncmp(a, c->user, alen) == 0)
		snprintf(out, CH_CLI_MAX_NAME + 1, "%s", b);
	else
		snprintf(out, CH_CLI_MAX_NAME + 1, "%.*s", (int)alen, a);
	return out;
}

/* One message line: "[HH:MM:SS] room <from> content", "@peer" for a DM. */
void ch_cli_print_msg(const struct ch_cli *c, const char *room, const char *from,
			  const char *content, int64_t ts)
{
	char clock[CH_CLI_CLOCK_LEN], peer[CH_CLI_MAX_NAME + 1];
	char *safe = ch_cli_sanitize(content), *sfrom = ch_cli_sanitize(from);

	ch_cli_clock(ts, clock);
	if (ch_cli_dm_peer(c, room, peer) != NULL)
		ch_term_print("[%s] @%s <%s> %s", clock, peer, sfrom, safe ? safe : "");
	else
		ch_term_print("[%s] %s <%s> %s", clock, room, sfrom, safe ? safe : "");
	free(safe);
	free(sfrom);
}

void ch_cli_update_prompt(const struct ch_cli *c)
{
	char prompt[CH_CLI_MAX_PROMPT];

	snprintf(prompt, sizeof(prompt), "%s%s> ", c->current[0] ? c->current : "(no room)",
		 c->online ? "" : " (offline)");
	ch_term_set_prompt(prompt);
}

/* ------------------------------------------------------------------------
 * JSON helpers (cJSON for parsing; ch_buf for building)
 * ---------------------------------------------------------------------- */

const char *ch_cli_jstr(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

int64_t ch_cli_jint(const cJSON *o, const char *key, int64_t dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : dflt;
}

/* The human text of an API error body, or the raw body. */
void ch_cli_print_api_error(const char *what, const struct ch_httpc_resp *r)
{
	cJSON *j = cJSON_ParseWithLength(r->body, r->len);
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
	const char *code = ch_cli_jstr(e, "code"), *msg = ch_cli_jstr(e, "message");

	if (code != NULL)
		ch_term_print("! %s: %s (%s, HTTP %d)", what, msg ? msg : "", code, r->status);
	else
		ch_term_print("! %s: HTTP %d", what, r->status);
	cJSON_Delete(j);
}

/* ------------------------------------------------------------------------
 * Rooms and pending sends
 * ---------------------------------------------------------------------- */

struct ch_cli_room *ch_cli_room_find(struct ch_cli *c, const char *id)
{
	for (size_t i = 0; i < c->nrooms; i++)
		if (strcmp(c->rooms[i].id, id) == 0)
			return &c->rooms[i];
	return NULL;
}

struct ch_cli_room *ch_cli_room_add(struct ch_cli *c, const char *id)
{
	struct ch_cli_room *r = ch_cli_room_find(c, id), *grown;

	if (r != NULL)
		return r;
	if (c->nrooms == c->caprooms) {
		size_t cap = c->caprooms ? c->caprooms * 2 : 8;

		grown = realloc(c->rooms, cap * sizeof(*grown));
		if (grown == NULL)
			return NULL;
		c->rooms = grown;
		c->caprooms = cap;
	}
	r = &c->rooms[c->nrooms];
	*r = (struct ch_cli_room){ .id = strdup(id) };
	if (r->id == NULL)
		return NULL;
	c->nrooms++;
	return r;
}

void ch_cli_room_remove(struct ch_cli *c, const char *id)
{
	struct ch_cli_room *r = ch_cli_room_find(c, id);

	if (r == NULL)
		return;
	free(r->id);
	*r = c->rooms[--c->nrooms];
}

static void ch_cli_next_id(struct ch_cli *c, char out[CH_CLI_MAX_ID])
{
	/* Unique per user across this user's processes: the pid is in it. */
	snprintf(out, CH_CLI_MAX_ID, "c%ld-%" PRIu64, (long)getpid(), ++c->next_id);
}

static struct ch_cli_pending *ch_cli_pending_find(struct ch_cli *c, const char *id)
{
	for (size_t i = 0; i < c->npend; i++)
		if (strcmp(c->pend[i].id, id) == 0)
			return &c->pend[i];
	return NULL;
}

static void ch_cli_pending_drop(struct ch_cli *c, const char *id)
{
	struct ch_cli_pending *p = ch_cli_pending_find(c, id);

	if (p == NULL)
		return;
	free(p->frame);
	*p = c->pend[--c->npend];
}

/* Keep a copy of frame (sent or not) until its ack; -1 when out of memory. */
static int ch_cli_pending_add(struct ch_cli *c, const char *id, const struct ch_buf *frame)
{
	struct ch_cli_pending *grown, *p;

	if (c->npend == c->cappend) {
		size_t cap = c->cappend ? c->cappend * 2 : 8;

		grown = realloc(c->pend, cap * sizeof(*grown));
		if (grown == NULL)
			return -1;
		c->pend = grown;
		c->cappend = cap;
	}
	p = &c->pend[c->npend];
	snprintf(p->id, sizeof(p->id), "%s", id);
	p->frame = malloc(frame->len);
	if (p->frame == NULL)
		return -1;
	memcpy(p->frame, frame->p, frame->len);
	p->len = frame->len;
	c->npend++;
	return 0;
}

/* ------------------------------------------------------------------------
 * HTTP: login and the REST calls
 * ---------------------------------------------------------------------- */

/* {"username":..,"password":..} to path; the response in *r. */
static int ch_cli_post_credentials(struct ch_cli *c, const char *path, struct ch_httpc_resp *r)
{
	struct ch_buf b;
	int rc;

	ch_buf_init(&b);
	ch_buf_puts(&b, "{");
	ch_json_key(&b, "username");
	ch_json_str(&b, c->user, strlen(c->user));
	ch_buf_puts(&b, ",");
	ch_json_key(&b, "password");
	ch_json_str(&b, c->password, strlen(c->password));
	ch_buf_puts(&b, "}");
	if (b.failed) {
		ch_buf_free(&b);
		errno = ENOMEM;
		return -1;
	}
	rc = ch_httpc_request(&c->url, "POST", path, NULL, b.p, b.len, CH_CLI_HTTP_TIMEOUT_MS, r);
	ch_buf_free(&b);
	return rc;
}

/* --register: 201, or 409 (already there: go on to log in). */
int ch_cli_register(struct ch_cli *c)
{
	struct ch_httpc_resp r;

	if (ch_cli_post_credentials(c, "/api/register", &r) < 0) {
		ch_term_print("! register: %s: %s", c->url.hostport, strerror(errno));
		return -1;
	}
	if (r.status == 201)
		ch_term_print("* registered %s", c->user);
	else if (r.status == 409)
		ch_term_print("* %s is already registered", c->user);
	else
		ch_cli_print_api_error("register", &r);
	ch_httpc_resp_free(&r);
	return r.status == 201 || r.status == 409 ? 0 : -1;
}

/*
 * Log in and keep the token. Returns 0; -1 when the server could not be
 * reached (worth retrying); -2 when it refused (wrong password: not).
 */
int ch_cli_login(struct ch_cli *c)
{
	struct ch_httpc_resp r;
	cJSON *j;
	const char *tok;
	int rc = -2;

	if (ch_cli_post_credentials(c, "/api/login", &r) < 0) {
		ch_term_print("! login: %s: %s", c->url.hostport, strerror(errno));
		return -1;
	}
	j = cJSON_ParseWithLength(r.body, r.len);
	tok = ch_cli_jstr(j, "token");
	if (r.status == 200 && tok != NULL) {
		free(c->token);
		c->token = strdup(tok);
		rc = c->token ? 0 : -1;
	} else {
		ch_cli_print_api_error("login", &r);
		/* Only a refusal is final; 429 and 5xx pass. */
		rc = r.status == 401 || r.status == 400 ? -2 : -1;
	}
	cJSON_Delete(j);
	ch_httpc_resp_free(&r);
	return rc;
}

/*
 * An API call with the token; a 401 (the token expired) logs in again and
 * retries once. Returns 0 with *r filled (any status), -1 on failure
 * (already printed).
 */
int ch_cli_api(struct ch_cli *c, const char *method, const char *path, const char *body,
		   struct ch_httpc_resp *r)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		if (c->token == NULL && ch_cli_login(c) < 0)
			return -1;
		if (ch_httpc_request(&c->url, method, path, c->token, body, body ? strlen(body) : 0,
				     CH_CLI_HTTP_TIMEOUT_MS, r) < 0) {
			ch_term_print("! %s %s: %s", method, path, strerror(errno));
			return -1;
		}
		if (r->status != 401 || attempt == 1)
			return 0;
		ch_httpc_resp_free(r);
		free(c->token);
		c->token = NULL;
	}
	return -1;
}

/* GET /api/rooms; the parsed array (cJSON_Delete it), or NULL. */
cJSON *ch_cli_fetch_rooms(struct ch_cli *c)
{
	struct ch_httpc_resp r;
	cJSON *j = NULL;

	if (ch_cli_api(c, "GET", "/api/rooms", NULL, &r) < 0)
		return NULL;
	if (r.status == 200)
		j = cJSON_ParseWithLength(r.body, r.len);
	if (!cJSON_IsArray(j)) {
		ch_cli_print_api_error("rooms", &r);
		cJSON_Delete(j);
		j = NULL;
	}
	ch_httpc_resp_free(&r);
	return j;
}

/* ------------------------------------------------------------------------
 * WebSocket frames
 * ---------------------------------------------------------------------- */

/* Send a built frame if online; a failed send drops the connection. */
static int ch_cli_send_frame(struct ch_cli *c, const char *p, size_t len)
{
	if (!c->online)
		return -1;
	if (c->trace)
		fprintf(stderr, "> %.*s\n", (int)len, p);
	if (ch_wsclient_send_text(&c->conn, p, len) < 0) {
		ch_cli_drop_connection(c, strerror(errno));
		return -1;
	}
	return 0;
}

/* {"type":T} plus one string member, sent at once (not kept for retry). */
int ch_cli_send_simple(struct ch_cli *c, const char *type, const char *key, const char *val)
{
	struct ch_buf b;
	int rc = -1;

	ch_buf_init(&b);
	ch_buf_puts(&b, "{\"type\":");
	ch_json_str(&b, type, strlen(type));
	if (key != NULL) {
		ch_buf_puts(&b, ",");
		ch_json_key(&b, key);
		ch_json_str(&b, val, strlen(val));
	}
	ch_buf_puts(&b, "}");
	if (!b.failed)
		rc = ch_cli_send_frame(c, b.p, b.len);
	ch_buf_free(&b);
	return rc;
}

void ch_cli_send_join(struct ch_cli *c, struct ch_cli_room *r)
{
	struct ch_buf b;

	ch_buf_init(&b);
	ch_buf_puts(&b, "{\"type\":\"join\",\"room\":");
	ch_json_str(&b, r->id, strlen(r->id));
	/* A room seen before: the server replays what was missed meanwhile. */
	if (r->synced)
		ch_buf_printf(&b, ",\"since\":%" PRIu64, r->last_seq);
	ch_buf_puts(&b, ",\"id\":\"join:");
	ch_buf_append(&b, r->id, strlen(r->id));	/* room ids need no escaping */
	ch_buf_puts(&b, "\"}");
	if (!b.failed && ch_cli_send_frame(c, b.p, b.len) == 0)
		r->join_sent = true;
	ch_buf_free(&b);
}

/*
 * A message (send to room, or dm to user): kept until its ack, sent now
 * when online, else after the next reconnect.
 */
void ch_cli_send_message(struct ch_cli *c, const char *room, const char *to, const char *content)
{
	char id[CH_CLI_MAX_ID];
	struct ch_buf b;

	ch_cli_next_id(c, id);
	ch_buf_init(&b);
	if (room != NULL) {
		ch_buf_puts(&b, "{\"type\":\"send\",\"room\":");
		ch_json_str(&b, room, strlen(room));
	} else {
		ch_buf_puts(&b, "{\"type\":\"dm\",\"to\":");
		ch_json_str(&b, to, strlen(to));
	}
	ch_buf_puts(&b, ",\"content\":");
	ch_json_str(&b, content, strlen(content));
	ch_buf_puts(&b, ",\"id\":");
	ch_json_str(&b, id, strlen(id));
	ch_buf_puts(&b, "}");
	if (b.failed || ch_cli_pending_add(c, id, &b) < 0)
		ch_term_print("! out of memory: message not sent");
	else if (!c->online)
		ch_term_print("* offline: the message goes out on reconnect");
	else
		ch_cli_send_frame(c, b.p, b.len);
	ch_buf_free(&b);
}

/* ------------------------------------------------------------------------
 * Frames from the server
 * ---------------------------------------------------------------------- */

static void ch_cli_on_msg(struct ch_cli *c, const cJSON *j)
{
	const char *room = ch_cli_jstr(j, "room"), *from = ch_cli_jstr(j, "from");
	const char *content = ch_cli_jstr(j, "content");
	int64_t seq = ch_cli_jint(j, "seq", -1);
	struct ch_cli_room *r;

	if (room == NULL || from == NULL || content == NULL || seq < 0)
		return;
	r = ch_cli_room_add(c, room);
	if (r != NULL) {
		/* A DM room the server joined us to: its stream starts here. */
		r->joined = r->join_sent = true;
		if (r->synced && (uint64_t)seq <= r->last_seq)
			return;	/* already printed: a replay overlapping what we saw */
		r->last_seq = (uint64_t)seq;
		r->synced = true;
	}
	ch_cli_print_msg(c, room, from, content, ch_cli_jint(j, "ts", 0));
}

static void ch_cli_on_joined(struct ch_cli *c, const cJSON *j)
{
	const char *room = ch_cli_jstr(j, "room"), *id = ch_cli_jstr(j, "id");
	bool asked = id != NULL && strncmp(id, "join:", 5) == 0;
	struct ch_cli_room *r;
	bool first;

	if (room == NULL || (r = ch_cli_room_add(c, room)) == NULL)
		return;
	first = !r->announced;
	r->announced = true;
	/*
	 * Our join with no since: live messages come after the room's
	 * last_seq. A join the server made (a new DM room; it carries no id
	 * of ours) comes with the message that made the room, whose seq may
	 * already be in last_seq: print everything from the start.
	 */
	if (!r->synced) {
		r->last_seq = asked ? (uint64_t)ch_cli_jint(j, "last_seq", 0) : 0;
		r->synced = true;
	}
	r->joined = r->join_sent = true;
	if (strcmp(c->want, room) == 0 || c->current[0] == '\0') {
		snprintf(c->current, sizeof(c->current), "%s", room);
		c->want[0] = '\0';
		ch_term_print("* joined %s (now the current room)", room);
		ch_cli_update_prompt(c);
	} else if (first) {
		ch_term_print("* joined %s", room);
	}
}

static void ch_cli_on_ack(struct ch_cli *c, const cJSON *j)
{
	const char *id = ch_cli_jstr(j, "id"), *room = ch_cli_jstr(j, "room");
	struct ch_cli_room *r;

	if (id != NULL)
		ch_cli_pending_drop(c, id);
	/* A first DM creates its room, and the server joins us to it. */
	if (room != NULL && (r = ch_cli_room_add(c, room)) != NULL)
		r->joined = r->join_sent = true;
}

static void ch_cli_on_error(struct ch_cli *c, const cJSON *j)
{
	const char *id = ch_cli_jstr(j, "id"), *code = ch_cli_jstr(j, "code");
	const char *msg = ch_cli_jstr(j, "message");

	if (id != NULL && ch_cli_pending_find(c, id) != NULL) {
		ch_cli_pending_drop(c, id);
		ch_term_print("! not sent: %s (%s)", msg ? msg : "", code ? code : "?");
	} else if (id != NULL && strncmp(id, "join:", 5) == 0) {
		ch_term_print("! cannot join %s: %s (%s)", id + 5, msg ? msg : "", code ? code : "?");
		if (strcmp(c->want, id + 5) == 0)
			c->want[0] = '\0';
		if (strcmp(c->current, id + 5) == 0) {
			c->current[0] = '\0';
			ch_cli_update_prompt(c);
		}
		ch_cli_room_remove(c, id + 5);
	} else {
		ch_term_print("! %s (%s)", msg ? msg : "", code ? code : "?");
	}
}

/* "alice (active), bob (away)" from [{"user","status"}]. */
static void ch_cli_print_users(const char *title, const cJSON *users)
{
	struct ch_buf b;
	const cJSON *u;

	ch_buf_init(&b);
	cJSON_ArrayForEach(u, users) {
		const char *name = ch_cli_jstr(u, "user"), *st = ch_cli_jstr(u, "status");

		if (name == NULL)
			continue;
		ch_buf_printf(&b, "%s%s (%s)", b.len ? ", " : "", name, st ? st : "?");
	}
	ch_buf_append(&b, "", 1);
	ch_term_print("* %s: %s", title, b.failed ? "?" : (b.len > 1 ? b.p : "nobody"));
	ch_buf_free(&b);
}

static void ch_cli_on_info(const cJSON *j)
{
	const char *user = ch_cli_jstr(j, "user"), *st = ch_cli_jstr(j, "status");
	const cJSON *online = cJSON_GetObjectItemCaseSensitive(j, "online");
	int64_t since = ch_cli_jint(j, "since", 0);
	char when[CH_CLI_CLOCK_LEN] = "";

	if (since > 0)
		ch_cli_clock(since, when);
	ch_term_print("* %s: %s%s%s%s%s", user ? user : "?",
		      cJSON_IsTrue(online) ? "online" : "offline",
		      st && cJSON_IsTrue(online) ? ", " : "", st && cJSON_IsTrue(online) ? st : "",
		      since > 0 ? " since " : "", when);
}

static void ch_cli_on_frame(struct ch_cli *c, const uint8_t *data, size_t len)
{
	cJSON *j = cJSON_ParseWithLength((const char *)data, len);
	const char *type = ch_cli_jstr(j, "type"), *room = ch_cli_jstr(j, "room");

	if (c->trace)
		fprintf(stderr, "< %.*s\n", (int)len, (const char *)data);

	if (type == NULL) {
		cJSON_Delete(j);
		return;
	}
	if (strcmp(type, "msg") == 0) {
		ch_cli_on_msg(c, j);
	} else if (strcmp(type, "ack") == 0) {
		ch_cli_on_ack(c, j);
	} else if (strcmp(type, "joined") == 0) {
		ch_cli_on_joined(c, j);
	} else if (strcmp(type, "left") == 0 && room != NULL) {
		ch_cli_room_remove(c, room);
		if (strcmp(c->current, room) == 0) {
			c->current[0] = '\0';
			ch_cli_update_prompt(c);
		}
		ch_term_print("* left %s", room);
	} else if (strcmp(type, "truncated") == 0 && room != NULL) {
		ch_term_print("* %s: messages before seq %" PRId64 " are no longer replayed "
			      "(/history shows them)", room, ch_cli_jint(j, "first_seq", 0));
	} else if (strcmp(type, "error") == 0) {
		ch_cli_on_error(c, j);
	} else if (strcmp(type, "presence") == 0) {
		const char *u = ch_cli_jstr(j, "user"), *st = ch_cli_jstr(j, "status");

		if (u != NULL && st != NULL && strcmp(u, c->user) != 0)
			ch_term_print("* %s is %s", u, st);
	} else if (strcmp(type, "users") == 0) {
		ch_cli_print_users("online", cJSON_GetObjectItemCaseSensitive(j, "users"));
	} else if (strcmp(type, "who") == 0 && room != NULL) {
		char title[CH_CLI_MAX_ROOM + 8];

		snprintf(title, sizeof(title), "in %s", room);
		ch_cli_print_users(title, cJSON_GetObjectItemCaseSensitive(j, "users"));
	} else if (strcmp(type, "info") == 0) {
		ch_cli_on_info(j);
	} else if (strcmp(type, "status") == 0) {
		const char *st = ch_cli_jstr(j, "status");

		ch_term_print("* your status: %s", st ? st : "?");
	}
	/* pong and frames of later protocol versions need nothing. */
	cJSON_Delete(j);
}

/* ------------------------------------------------------------------------
 * Connection life cycle
 * ---------------------------------------------------------------------- */

void ch_cli_schedule_retry(struct ch_cli *c)
{
	int jitter;

	if (c->backoff_ms == 0)
		c->backoff_ms = CH_CLI_BACKOFF_MIN_MS;
	/* +-25%, so clients dropped together do not come back together. */
	jitter = c->backoff_ms / 4 > 0 ? rand() % (c->backoff_ms / 2 + 1) - c->backoff_ms / 4 : 0;
	c->retry_at = ch_cli_now_ms() + c->backoff_ms + jitter;
	c->backoff_ms = c->backoff_ms * 2 > CH_CLI_BACKOFF_MAX_MS ? CH_CLI_BACKOFF_MAX_MS : c->backoff_ms * 2;
}

void ch_cli_drop_connection(struct ch_cli *c, const char *why)
{
	if (!c->online)
		return;
	c->online = false;
	if (c->conn.close_code == 1008) {
		/* The token expired: log in again at once. */
		free(c->token);
		c->token = NULL;
	}
	ch_wsclient_close(&c->conn, CH_WSC_CLOSE_NORMAL);
	for (size_t i = 0; i < c->nrooms; i++)
		c->rooms[i].joined = c->rooms[i].join_sent = false;
	ch_cli_schedule_retry(c);
	ch_term_print("* connection lost (%s); reconnecting", why);
	ch_cli_update_prompt(c);
}

/* Add the rooms the server lists; join the new ones when online. */
void ch_cli_merge_rooms(struct ch_cli *c, const cJSON *rooms, bool join)
{
	const cJSON *it;

	cJSON_ArrayForEach(it, rooms) {
		const char *id = ch_cli_jstr(it, "id");
		struct ch_cli_room *r;

		if (id == NULL || ch_cli_room_find(c, id) != NULL)
			continue;
		r = ch_cli_room_add(c, id);
		if (r != NULL && join && c->online)
			ch_cli_send_join(c, r);
	}
}

/*
 * Log in if needed, learn the rooms, open /ws, join every room (with since
 * for those seen before) and send again what was not acked. Returns 0, -1
 * to retry later, -2 when retrying is pointless (login refused).
 */
int ch_cli_connect(struct ch_cli *c)
{
	int status = 0, rc;
	cJSON *rooms;

	for (int attempt = 0; attempt < 2; attempt++) {
		if (c->token == NULL && (rc = ch_cli_login(c)) < 0)
			return rc;
		rooms = ch_cli_fetch_rooms(c);
		if (rooms == NULL)
			return -1;
		ch_cli_merge_rooms(c, rooms, false);
		cJSON_Delete(rooms);
		if (ch_wsclient_open(&c->conn, c->url.host, c->url.port, c->url.hostport, "/ws",
				 c->token, CH_CLI_WS_TIMEOUT_MS, &status) == 0)
			break;
		if (status != 401) {
			if (status != 0)
				ch_term_print("! connect %s/ws: the upgrade was answered with HTTP %d",
					      c->url.hostport, status);
			else
				ch_term_print("! connect %s/ws: %s", c->url.hostport, strerror(errno));
			return -1;
		}
		free(c->token);	/* expired meanwhile: log in again */
		c->token = NULL;
	}
	if (status == 401)
		return -1;
	c->online = true;
	c->backoff_ms = 0;
	c->last_rx = ch_cli_now_ms();
	c->ping_sent = 0;
	for (size_t i = 0; i < c->nrooms && c->online; i++)
		ch_cli_send_join(c, &c->rooms[i]);
	for (size_t i = 0; i < c->npend && c->online; i++)
		ch_cli_send_frame(c, c->pend[i].frame, c->pend[i].len);
	return c->online ? 0 : -1;
}

/* Everything the server sent that has arrived. */
void ch_cli_read_ws(struct ch_cli *c)
{
	const uint8_t *data;
	size_t len;
	int r;
	char why[48];

	while (c->online) {
		r = ch_wsclient_recv(&c->conn, 0, &data, &len);
		if (r == CH_WSCLIENT_TIMEOUT)
			return;
		c->last_rx = ch_cli_now_ms();
		c->ping_sent = 0;
		if (r == CH_WSCLIENT_TEXT) {
			ch_cli_on_frame(c, data, len);
		} else if (r == CH_WSCLIENT_CLOSED) {
			snprintf(why, sizeof(why), "closed by the server with %u", c->conn.close_code);
			ch_cli_drop_connection(c, why);
		} else if (r == CH_WSCLIENT_ERROR) {
			ch_cli_drop_connection(c, c->conn.close_code == 1006 ? "connection closed"
								      : strerror(errno));
		}
	}
}

/* ------------------------------------------------------------------------
 * Names (PROTOCOL.md)
 * ---------------------------------------------------------------------- */

bool ch_cli_valid_room(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= CH_CLI_MAX_ROOM &&
	       strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-") == n;
}

bool ch_cli_valid_user(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= CH_CLI_MAX_NAME &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

void ch_cli_free(struct ch_cli *c)
{
	if (c->online)
		ch_wsclient_close(&c->conn, CH_WSC_CLOSE_NORMAL);
	for (size_t i = 0; i < c->nrooms; i++)
		free(c->rooms[i].id);
	free(c->rooms);
	for (size_t i = 0; i < c->npend; i++)
		free(c->pend[i].frame);
	free(c->pend);
	if (c->password != NULL)
		explicit_bzero(c->password, strlen(c->password));
	free(c->password);
	free(c->token);
}
