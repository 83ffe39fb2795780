/*
 * chatcli's session: the state of one logged-in user (rooms, messages not
 * yet acknowledged, the WebSocket), the REST calls, the frames sent and
 * received, and the connection's life cycle with reconnect and resume.
 * client/cli_cmd.c turns typed lines into calls here; client/chatcli.c
 * holds main() and the poll loop.
 *
 * Invariants:
 * - rooms[] holds every room the user is known to be in; once synced,
 *   last_seq is the highest seq printed (or, for a room joined fresh, the
 *   room's last_seq at that join), so a reconnect joins with since =
 *   last_seq and loses nothing, and a msg at or below it (a replay
 *   overlap) is not printed twice. One join per room per connection, so
 *   each room's frames form one ordered stream.
 * - pend[] holds every send and dm frame not yet acked or refused, with
 *   its id; a reconnect sends them again and the server's id check keeps
 *   them from being stored twice.
 * - online is true exactly while conn is open and usable.
 */
#ifndef CH_CLI_CHAT_H
#define CH_CLI_CHAT_H

#include <cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "client/conn.h"
#include "client/httpc.h"

#define CH_CLI_DEFAULT_SERVER	"http://127.0.0.1:8080"
#define CH_CLI_HTTP_TIMEOUT_MS	10000
#define CH_CLI_WS_TIMEOUT_MS	10000
#define CH_CLI_BACKOFF_MIN_MS	250		/* first reconnect delay; doubles */
#define CH_CLI_BACKOFF_MAX_MS	30000
#define CH_CLI_PING_IDLE_MS	30000		/* ping after this long without a frame */
#define CH_CLI_PING_DEAD_MS	20000		/* no answer to the ping: reconnect */
#define CH_CLI_EOF_WAIT_MS		10000		/* at the end of input, wait for acks */
#define CH_CLI_HISTORY_DEFAULT	20
#define CH_CLI_HISTORY_MAX		500
#define CH_CLI_MAX_ID		32
#define CH_CLI_MAX_PATH		512
#define CH_CLI_MAX_PROMPT		96
#define CH_CLI_MAX_NAME		32		/* PROTOCOL.md: usernames */
#define CH_CLI_MAX_ROOM		64		/* PROTOCOL.md: room ids */
#define CH_CLI_CLOCK_LEN	16		/* "HH:MM:SS" and its NUL, with room to spare */

#define CH_CLI_EXIT_OK		0
#define CH_CLI_EXIT_FAIL		1
#define CH_CLI_EXIT_USAGE		2

struct ch_cli_room {
	char *id;
	uint64_t last_seq;	/* meaningful once synced */
	bool synced;		/* last_seq is a position in the room: join with since */
	bool join_sent;		/* on this connection */
	bool joined;		/* on this connection */
	bool announced;		/* "joined" was printed once */
};

struct ch_cli_pending {
	char id[CH_CLI_MAX_ID];
	char *frame;
	size_t len;
};

struct ch_cli {
	struct ch_httpc_url url;
	const char *user;
	char *password;
	char *token;

	struct ch_wsclient conn;
	bool online;
	int64_t last_rx;	/* when the last frame came */
	int64_t ping_sent;	/* 0: no ping outstanding */
	int backoff_ms;
	int64_t retry_at;	/* while offline: next connection attempt */

	struct ch_cli_room *rooms;
	size_t nrooms, caprooms;
	char current[CH_CLI_MAX_ROOM + 1];	/* "" when in no room */
	char want[CH_CLI_MAX_ROOM + 1];	/* becomes current once joined */

	struct ch_cli_pending *pend;
	size_t npend, cappend;
	uint64_t next_id;

	bool trace;		/* CHATCLI_TRACE: frames in and out on stderr */
	bool quit;
	int64_t eof_at;		/* 0 until the end of input */
	int exit_code;
};

int64_t ch_cli_now_ms(void);

/* ---- output ---- */

/* "HH:MM:SS" local time of ts (ms since the epoch). */
void ch_cli_clock(int64_t ts_ms, char out[CH_CLI_CLOCK_LEN]);
/* One message line: "[HH:MM:SS] room <from> content", "@peer" for a DM. */
void ch_cli_print_msg(const struct ch_cli *c, const char *room, const char *from,
		      const char *content, int64_t ts);
/* The prompt: the current room, and whether we are offline. */
void ch_cli_update_prompt(const struct ch_cli *c);
/* "! what: message (code, HTTP status)" from an API error answer. */
void ch_cli_print_api_error(const char *what, const struct ch_httpc_resp *r);

/* ---- JSON ---- */

const char *ch_cli_jstr(const cJSON *o, const char *key);
int64_t ch_cli_jint(const cJSON *o, const char *key, int64_t dflt);

/* ---- names (PROTOCOL.md) ---- */

bool ch_cli_valid_room(const char *s);
bool ch_cli_valid_user(const char *s);

/* ---- rooms ---- */

struct ch_cli_room *ch_cli_room_find(struct ch_cli *c, const char *id);
/* The room, added (not joined) if new; NULL when out of memory. */
struct ch_cli_room *ch_cli_room_add(struct ch_cli *c, const char *id);
void ch_cli_room_remove(struct ch_cli *c, const char *id);
/* Add the rooms of a GET /api/rooms answer; join the new ones if join. */
void ch_cli_merge_rooms(struct ch_cli *c, const cJSON *rooms, bool join);

/* ---- REST ---- */

/* --register: 0 when registered or already there, else -1 (printed). */
int ch_cli_register(struct ch_cli *c);
/* Log in: 0; -1 unreachable (retry); -2 refused (do not). */
int ch_cli_login(struct ch_cli *c);
/*
 * A call with the token, logging in again once on 401. 0 with *r filled
 * (any status; free it), -1 on failure (printed). body: JSON or NULL.
 */
int ch_cli_api(struct ch_cli *c, const char *method, const char *path, const char *body,
	       struct ch_httpc_resp *r);
/* GET /api/rooms as a cJSON array (delete it), or NULL (printed). */
cJSON *ch_cli_fetch_rooms(struct ch_cli *c);

/* ---- WebSocket ---- */

/* {"type":type[,key:val]} now, if online; 0 or -1. Not kept for retry. */
int ch_cli_send_simple(struct ch_cli *c, const char *type, const char *key, const char *val);
/* join, with since once the room is synced. */
void ch_cli_send_join(struct ch_cli *c, struct ch_cli_room *r);
/* send to room, or dm to user: kept until acked, sent now or on reconnect. */
void ch_cli_send_message(struct ch_cli *c, const char *room, const char *to, const char *content);

/* ---- connection ---- */

/*
 * Log in if needed, learn the rooms, open /ws, join every room and send
 * again what was not acked. 0; -1 retry later; -2 pointless (login refused).
 */
int ch_cli_connect(struct ch_cli *c);
/* Handle everything received so far; a lost connection schedules a retry. */
void ch_cli_read_ws(struct ch_cli *c);
void ch_cli_drop_connection(struct ch_cli *c, const char *why);
/* Next attempt after the back-off, which then doubles. */
void ch_cli_schedule_retry(struct ch_cli *c);

void ch_cli_free(struct ch_cli *c);

#endif
