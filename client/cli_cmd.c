/*
 * chatcli's commands: see cli_cmd.h.
 */
#include "client/cli_cmd.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/cli_chat.h"
#include "client/cli_term.h"
#include "common/buf.h"

/* Whether a command that needs the WebSocket can run now. */
static bool ch_cli_need_online(const struct ch_cli *c)
{
	if (!c->online)
		ch_term_print("! not connected; try again after the reconnect");
	return c->online;
}

/* /join ROOM [USER...]: create the room if needed, join it, make it current. */
static void ch_cli_cmd_join(struct ch_cli *c, char *args)
{
	char *room = strtok(args, " \t"), *u;
	struct ch_cli_room *r;
	struct ch_httpc_resp resp;
	struct ch_buf b;
	bool sep = false;

	if (room == NULL || !ch_cli_valid_room(room)) {
		ch_term_print("! usage: /join ROOM [USER...] (ROOM: letters, digits, _.:-)");
		return;
	}
	r = ch_cli_room_find(c, room);
	if (r != NULL && (r->joined || r->join_sent || !c->online)) {
		/* Known: joined, being joined, or to be joined on reconnect. */
		if (!r->joined)
			snprintf(c->want, sizeof(c->want), "%s", room);
		snprintf(c->current, sizeof(c->current), "%s", room);
		ch_term_print("* current room: %s", room);
		ch_cli_update_prompt(c);
		return;
	}
	ch_buf_init(&b);
	ch_buf_puts(&b, "{\"id\":");
	ch_json_str(&b, room, strlen(room));
	ch_buf_puts(&b, ",\"participants\":[");
	while ((u = strtok(NULL, " \t")) != NULL) {
		if (sep)
			ch_buf_puts(&b, ",");
		ch_json_str(&b, u, strlen(u));
		sep = true;
	}
	ch_buf_puts(&b, "]}");
	ch_buf_append(&b, "", 1);
	if (b.failed || ch_cli_api(c, "POST", "/api/room", b.p, &resp) < 0) {
		ch_buf_free(&b);
		return;
	}
	ch_buf_free(&b);
	if (resp.status == 201) {
		ch_term_print("* created room %s", room);
	} else if (resp.status != 409) {	/* 409: it exists; join it */
		ch_cli_print_api_error("create room", &resp);
		ch_httpc_resp_free(&resp);
		return;
	}
	ch_httpc_resp_free(&resp);
	r = ch_cli_room_add(c, room);
	if (r == NULL)
		return;
	/*
	 * Current at once, so lines typed (or scripted) right after /join go
	 * there: sending needs membership, not the join, which only starts
	 * the stream of messages.
	 */
	snprintf(c->want, sizeof(c->want), "%s", room);
	snprintf(c->current, sizeof(c->current), "%s", room);
	ch_cli_update_prompt(c);
	if (c->online)
		ch_cli_send_join(c, r);
}

static void ch_cli_cmd_leave(struct ch_cli *c, char *args)
{
	const char *room = args[0] ? strtok(args, " \t") : c->current;

	if (room == NULL || room[0] == '\0' || ch_cli_room_find(c, room) == NULL) {
		ch_term_print("! usage: /leave [ROOM] (a room you are in)");
		return;
	}
	if (ch_cli_need_online(c))
		ch_cli_send_simple(c, "leave", "room", room);
}

static void ch_cli_cmd_rooms(struct ch_cli *c, char *args)
{
	cJSON *rooms = ch_cli_fetch_rooms(c);
	const cJSON *it, *p;

	(void)args;
	if (rooms == NULL)
		return;
	ch_cli_merge_rooms(c, rooms, true);
	if (cJSON_GetArraySize(rooms) == 0)
		ch_term_print("* no rooms yet: /join ROOM creates one");
	cJSON_ArrayForEach(it, rooms) {
		const char *id = ch_cli_jstr(it, "id");
		struct ch_buf b;

		if (id == NULL)
			continue;
		ch_buf_init(&b);
		cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(it, "participants"))
			if (cJSON_IsString(p))
				ch_buf_printf(&b, "%s%s", b.len ? " " : "", p->valuestring);
		ch_buf_append(&b, "", 1);
		ch_term_print("* %s %s (last seq %" PRId64 "; %s)",
			      strcmp(id, c->current) == 0 ? ">" : " ", id,
			      ch_cli_jint(it, "last_seq", 0), b.failed ? "?" : b.p);
		ch_buf_free(&b);
	}
	cJSON_Delete(rooms);
}

static void ch_cli_cmd_users(struct ch_cli *c, char *args)
{
	(void)args;
	if (ch_cli_need_online(c))
		ch_cli_send_simple(c, "users", NULL, NULL);
}

static void ch_cli_cmd_who(struct ch_cli *c, char *args)
{
	const char *room = args[0] ? strtok(args, " \t") : c->current;

	if (room == NULL || room[0] == '\0') {
		ch_term_print("! usage: /who [ROOM]");
		return;
	}
	if (ch_cli_need_online(c))
		ch_cli_send_simple(c, "who", "room", room);
}

static void ch_cli_cmd_info(struct ch_cli *c, char *args)
{
	const char *user = strtok(args, " \t");

	if (user == NULL || !ch_cli_valid_user(user)) {
		ch_term_print("! usage: /info USER");
		return;
	}
	if (ch_cli_need_online(c))
		ch_cli_send_simple(c, "info", "user", user);
}

static void ch_cli_cmd_status(struct ch_cli *c, char *args)
{
	const char *st = strtok(args, " \t");

	if (st == NULL || (strcmp(st, "active") != 0 && strcmp(st, "busy") != 0 &&
			   strcmp(st, "away") != 0)) {
		ch_term_print("! usage: /status active|busy|away");
		return;
	}
	if (ch_cli_need_online(c))
		ch_cli_send_simple(c, "status", "status", st);
}

/* /history [N]: the last N messages of the current room, oldest first. */
static void ch_cli_cmd_history(struct ch_cli *c, char *args)
{
	char path[CH_CLI_MAX_PATH];
	long n = CH_CLI_HISTORY_DEFAULT;
	struct ch_httpc_resp r;
	cJSON *j;
	int count;

	if (args[0] != '\0') {
		char *end;

		n = strtol(args, &end, 10);
		if (*end != '\0' || n < 1 || n > CH_CLI_HISTORY_MAX) {
			ch_term_print("! usage: /history [N] (1..%d)", CH_CLI_HISTORY_MAX);
			return;
		}
	}
	if (c->current[0] == '\0') {
		ch_term_print("! no current room: /join ROOM first");
		return;
	}
	snprintf(path, sizeof(path), "/api/history/%s?limit=%ld", c->current, n);
	if (ch_cli_api(c, "GET", path, NULL, &r) < 0)
		return;
	j = r.status == 200 ? cJSON_ParseWithLength(r.body, r.len) : NULL;
	if (!cJSON_IsArray(j)) {
		ch_cli_print_api_error("history", &r);
	} else {
		count = cJSON_GetArraySize(j);
		ch_term_print("* last %d message%s of %s:", count, count == 1 ? "" : "s", c->current);
		/* Newest first on the wire; a chat reads oldest first. */
		for (int i = count - 1; i >= 0; i--) {
			const cJSON *m = cJSON_GetArrayItem(j, i);
			const char *from = ch_cli_jstr(m, "from"), *content = ch_cli_jstr(m, "content");

			if (from != NULL && content != NULL)
				ch_cli_print_msg(c, c->current, from, content, ch_cli_jint(m, "ts", 0));
		}
	}
	cJSON_Delete(j);
	ch_httpc_resp_free(&r);
}

/* Like the end of input: read no more, leave once every message is acked. */
static void ch_cli_cmd_quit(struct ch_cli *c, char *args)
{
	(void)args;
	if (c->eof_at == 0)
		c->eof_at = ch_cli_now_ms();
}

static void ch_cli_cmd_help(struct ch_cli *c, char *args);

/* The commands, in the order /help lists them. */
static const struct ch_cli_command {
	const char *name;
	const char *args;
	const char *help;
	void (*fn)(struct ch_cli *c, char *args);
} ch_cli_commands[] = {
	{ "join", "ROOM [USER...]", "join ROOM (created with USERs if new) and make it current", ch_cli_cmd_join },
	{ "leave", "[ROOM]", "leave ROOM (default: the current room)", ch_cli_cmd_leave },
	{ "rooms", "", "list your rooms (and join any new one)", ch_cli_cmd_rooms },
	{ "users", "", "who is online", ch_cli_cmd_users },
	{ "who", "[ROOM]", "who of ROOM's members is online", ch_cli_cmd_who },
	{ "info", "USER", "USER's presence and status", ch_cli_cmd_info },
	{ "status", "active|busy|away", "set your status", ch_cli_cmd_status },
	{ "history", "[N]", "the last N (20) messages of the current room", ch_cli_cmd_history },
	{ "help", "", "this list", ch_cli_cmd_help },
	{ "quit", "", "leave chatcli", ch_cli_cmd_quit },
};

static void ch_cli_cmd_help(struct ch_cli *c, char *args)
{
	(void)c;
	(void)args;
	ch_term_print("* TEXT                send TEXT to the current room");
	ch_term_print("* @USER TEXT          send TEXT to USER only");
	for (size_t i = 0; i < sizeof(ch_cli_commands) / sizeof(ch_cli_commands[0]); i++) {
		char usage[64];

		snprintf(usage, sizeof(usage), "/%s %s", ch_cli_commands[i].name, ch_cli_commands[i].args);
		ch_term_print("* %-19s %s", usage, ch_cli_commands[i].help);
	}
}

static void ch_cli_command(struct ch_cli *c, char *line)
{
	char *name = line + 1, *args;
	size_t n = strcspn(name, " \t");

	args = name + n;
	if (*args != '\0')
		*args++ = '\0';
	args += strspn(args, " \t");
	for (size_t i = 0; i < sizeof(ch_cli_commands) / sizeof(ch_cli_commands[0]); i++) {
		if (strcmp(name, ch_cli_commands[i].name) == 0) {
			ch_cli_commands[i].fn(c, args);
			return;
		}
	}
	ch_term_print("! unknown command /%s (/help lists them)", name);
}

/* @user text */
static void ch_cli_direct(struct ch_cli *c, char *line)
{
	char *to = line + 1, *text;
	size_t n = strcspn(to, " \t");

	text = to + n;
	if (*text != '\0')
		*text++ = '\0';
	text += strspn(text, " \t");
	if (!ch_cli_valid_user(to) || *text == '\0') {
		ch_term_print("! usage: @USER TEXT");
		return;
	}
	ch_cli_send_message(c, NULL, to, text);
}

void ch_cli_on_line(char *line, void *arg)
{
	struct ch_cli *c = arg;

	if (line == NULL) {
		c->eof_at = ch_cli_now_ms();
		return;
	}
	if (line[0] == '\0')
		return;
	if (line[0] == '/' && line[1] != '/') {
		ch_cli_command(c, line);
	} else if (line[0] == '@') {
		ch_cli_direct(c, line);
	} else if (c->current[0] == '\0') {
		ch_term_print("! no current room: /join ROOM first");
	} else {
		/* "//text" sends "/text". */
		ch_cli_send_message(c, c->current, NULL, line[0] == '/' ? line + 1 : line);
	}
}
