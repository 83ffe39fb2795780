/*
 * chatcli, the terminal client (man/chatcli.1): options, the password,
 * start-up, and the poll loop over stdin and the WebSocket with its
 * timers (reconnect, keep-alive ping, the wait for acks at the end of
 * input). The session is client/cli_chat.c; the commands client/cli_cmd.c.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/cli_chat.h"
#include "client/cli_cmd.h"
#include "client/cli_term.h"
#include "common/version.h"

static volatile sig_atomic_t ch_cli_stop;

static void ch_cli_on_signal(int sig)
{
	(void)sig;
	ch_cli_stop = 1;
}

/* No SA_RESTART: a signal must wake the poll in ch_cli_loop. */
static void ch_cli_signals(void)
{
	struct sigaction sa = { .sa_handler = ch_cli_on_signal };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

/* ------------------------------------------------------------------------
 * Main loop
 * ---------------------------------------------------------------------- */

/* How long poll may sleep before a timer is due. */
static int ch_cli_poll_timeout(const struct ch_cli *c)
{
	int64_t now = ch_cli_now_ms(), due;

	if (!c->online)
		due = c->retry_at;
	else if (c->ping_sent)
		due = c->ping_sent + CH_CLI_PING_DEAD_MS;
	else
		due = c->last_rx + CH_CLI_PING_IDLE_MS;
	if (c->eof_at && c->eof_at + CH_CLI_EOF_WAIT_MS < due)
		due = c->eof_at + CH_CLI_EOF_WAIT_MS;
	return due > now ? (int)(due - now) : 0;
}

static void ch_cli_timers(struct ch_cli *c)
{
	int64_t now = ch_cli_now_ms();
	int rc;

	if (!c->online && now >= c->retry_at) {
		rc = ch_cli_connect(c);
		if (rc == 0) {
			ch_term_print("* reconnected");
			ch_cli_update_prompt(c);
		} else if (rc == -2) {
			c->quit = true;
			c->exit_code = CH_CLI_EXIT_FAIL;
		} else {
			ch_cli_schedule_retry(c);
		}
	} else if (c->online && c->ping_sent && now >= c->ping_sent + CH_CLI_PING_DEAD_MS) {
		ch_cli_drop_connection(c, "no answer to a ping");
	} else if (c->online && !c->ping_sent && now >= c->last_rx + CH_CLI_PING_IDLE_MS) {
		c->ping_sent = now;
		ch_cli_send_simple(c, "ping", NULL, NULL);
	}
	if (c->eof_at && c->npend == 0) {
		c->quit = true;
	} else if (c->eof_at && now >= c->eof_at + CH_CLI_EOF_WAIT_MS) {
		ch_term_print("! %zu message%s not confirmed by the server", c->npend,
			      c->npend == 1 ? "" : "s");
		c->quit = true;
		c->exit_code = CH_CLI_EXIT_FAIL;
	}
}

static void ch_cli_loop(struct ch_cli *c)
{
	struct pollfd pfd[2];
	int r;

	ch_term_dispatch_buffered();
	while (!c->quit && !ch_cli_stop) {
		if (c->online && ch_wsclient_buffered(&c->conn) > 0)
			ch_cli_read_ws(c);
		pfd[0] = (struct pollfd){ .fd = c->eof_at ? -1 : STDIN_FILENO, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = c->online ? ch_wsclient_fd(&c->conn) : -1, .events = POLLIN };
		r = poll(pfd, 2, ch_cli_poll_timeout(c));
		if (r < 0 && errno != EINTR) {
			ch_term_print("! poll: %s", strerror(errno));
			c->exit_code = CH_CLI_EXIT_FAIL;
			break;
		}
		if (r > 0 && pfd[1].revents)
			ch_cli_read_ws(c);
		if (r > 0 && pfd[0].revents)
			ch_term_read();
		if (!c->quit)
			ch_cli_timers(c);
	}
}

/* ------------------------------------------------------------------------
 * Start-up
 * ---------------------------------------------------------------------- */

static void ch_cli_usage(FILE *f)
{
	fprintf(f,
		"usage: chatcli [-s URL] [-u USER] [-r ROOM] [--register]\n"
		"  -s, --server URL   chatd to talk to (default $CHATCLI_SERVER, else %s)\n"
		"  -u, --user USER    user name (default $CHATCLI_USER, else $USER)\n"
		"  -r, --room ROOM    start in ROOM (joined, and created if new)\n"
		"      --register     create the account first (an existing one is fine)\n"
		"  -h, --help         this text;  -V, --version  the version\n"
		"The password comes from $CHATCLI_PASSWORD, else is asked for without echo\n"
		"on a terminal, else is the first line of standard input.\n"
		"Type /help inside for the commands.\n",
		CH_CLI_DEFAULT_SERVER);
}

struct ch_cli_opts {
	const char *server, *user, *room;
	bool reg;
};

/* Returns -1 to exit with the usage status, 1 to exit 0 (help/version). */
static int ch_cli_parse_args(int argc, char **argv, struct ch_cli_opts *o)
{
	static const struct option longopts[] = {
		{ "server", required_argument, NULL, 's' },
		{ "user", required_argument, NULL, 'u' },
		{ "room", required_argument, NULL, 'r' },
		{ "register", no_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	o->server = getenv("CHATCLI_SERVER");
	o->user = getenv("CHATCLI_USER");
	if (o->user == NULL)
		o->user = getenv("USER");
	while ((ch = getopt_long(argc, argv, "s:u:r:hV", longopts, NULL)) != -1) {
		switch (ch) {
		case 's': o->server = optarg; break;
		case 'u': o->user = optarg; break;
		case 'r': o->room = optarg; break;
		case 'R': o->reg = true; break;
		case 'h': ch_cli_usage(stdout); return 1;
		case 'V': printf("chatcli %s\n", CH_VERSION); return 1;
		default: ch_cli_usage(stderr); return -1;
		}
	}
	if (optind != argc) {
		ch_cli_usage(stderr);
		return -1;
	}
	if (o->server == NULL)
		o->server = CH_CLI_DEFAULT_SERVER;
	if (o->user == NULL || !ch_cli_valid_user(o->user)) {
		fprintf(stderr, "chatcli: %s: a user name is 1 to 32 of a-z 0-9 _ . - (use -u)\n",
			o->user ? o->user : "no user");
		return -1;
	}
	if (o->room != NULL && !ch_cli_valid_room(o->room)) {
		fprintf(stderr, "chatcli: %s: not a valid room id\n", o->room);
		return -1;
	}
	return 0;
}

static char *ch_cli_get_password(void)
{
	const char *env = getenv("CHATCLI_PASSWORD");

	if (env != NULL)
		return strdup(env);
	return ch_term_password("password: ");
}

/* Log in, connect, join. 0, or the exit status. */
static int ch_cli_start(struct ch_cli *c, const struct ch_cli_opts *o)
{
	char join[CH_CLI_MAX_ROOM + 8];
	int rc;

	if (o->reg && ch_cli_register(c) < 0)
		return CH_CLI_EXIT_FAIL;
	rc = ch_cli_login(c);
	if (rc < 0)
		return CH_CLI_EXIT_FAIL;
	if (ch_cli_connect(c) < 0)
		return CH_CLI_EXIT_FAIL;
	ch_term_print("* connected to %s as %s (/help for commands)", c->url.hostport, c->user);
	if (o->room != NULL) {
		snprintf(join, sizeof(join), "/join %s", o->room);
		ch_cli_on_line(join, c);
	} else if (c->nrooms > 0) {
		snprintf(c->want, sizeof(c->want), "%s", c->rooms[0].id);
	}
	ch_cli_update_prompt(c);
	return 0;
}

int main(int argc, char **argv)
{
	struct ch_cli c = { 0 };
	struct ch_cli_opts o = { 0 };
	const char *err;
	int rc;

	rc = ch_cli_parse_args(argc, argv, &o);
	if (rc != 0)
		return rc > 0 ? CH_CLI_EXIT_OK : CH_CLI_EXIT_USAGE;
	if (ch_httpc_parse_url(o.server, &c.url, &err) < 0) {
		fprintf(stderr, "chatcli: %s: %s\n", o.server, err);
		return CH_CLI_EXIT_USAGE;
	}
	c.user = o.user;
	c.trace = getenv("CHATCLI_TRACE") != NULL;
	srand((unsigned)(getpid() ^ time(NULL)));
	ch_cli_signals();
	c.password = ch_cli_get_password();
	if (c.password == NULL) {
		fprintf(stderr, "chatcli: no password given\n");
		return CH_CLI_EXIT_FAIL;
	}
	ch_term_init("> ", ch_cli_on_line, &c);
	rc = ch_cli_start(&c, &o);
	if (rc == 0) {
		ch_cli_loop(&c);
		rc = c.exit_code;
	}
	ch_term_done();
	ch_cli_free(&c);
	return rc;
}
