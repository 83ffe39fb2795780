/*
 * chatadm: talks to a running chatd over its admin socket (chatadm(8)).
 *
 * Owns: finding the socket, sending one request per command, and turning
 * the JSON answer into output (admin/render.h) or, with --json, passing it
 * through. The commands and their help come from admin/commands.h, the
 * table the server dispatches from, so `chatadm help` and the server can
 * never disagree about which commands exist.
 *
 * Exit status: 0 on success; 1 when chatd refused or failed the command,
 * or could not be reached (the reason on stderr); 2 for a usage error.
 */
#define _GNU_SOURCE
#include "admin/commands.h"
#include "admin/render.h"
#include "common/buf.h"
#include "common/version.h"
#include "master/config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CHATADM_DEFAULT_CONFIG "/etc/chatd/chatd.conf"
#define CHATADM_DEFAULT_SOCKET "./var/chatd.sock"
#define CHATADM_ANSWER_MAX (64u << 20)	/* larger answers are refused */
#define CHATADM_TIMEOUT_MS 660000	/* reload, promote, upgrade wait on the server */
#define CHATADM_TOP_INTERVAL_MS 1000
#define CHATADM_STOP_GRACE_S 15		/* stop: wait this long past --timeout */
#define CHATADM_EXIT_FAIL 1
#define CHATADM_EXIT_USAGE 2

static const struct {
	const char *word, *args, *help;
} commands[] = {
#define CHATADM_ROW(name, args, help) { #name, args, help },
	CH_ADMIN_COMMANDS(CHATADM_ROW)
#undef CHATADM_ROW
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

struct opts {
	const char *socket;
	const char *config;
	int json;
	int tty;
	int iterations;		/* top: samples to show; 0 = until interrupted */
};

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: chatadm [-s SOCKET | -c FILE] [--json] COMMAND [ARGS]\n"
		"Control a running chatd over its admin socket.\n"
		"\n"
		"  -s, --socket PATH   the admin socket (default: $CHATD_SOCKET, else the\n"
		"                      [admin] socket of -c FILE or " CHATADM_DEFAULT_CONFIG ",\n"
		"                      else " CHATADM_DEFAULT_SOCKET ")\n"
		"  -c, --config FILE   read the socket's path from this configuration\n"
		"  -j, --json          print chatd's answer as JSON\n"
		"  -n, --iterations N  top: show N samples, then exit\n"
		"  -h, --help          show this help\n"
		"  -V, --version       show the version\n"
		"\n"
		"Commands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++) {
		char left[64];
		snprintf(left, sizeof(left), "%s %s", commands[i].word, commands[i].args);
		fprintf(out, "  %-20s %s\n", left, commands[i].help);
	}
	fprintf(out, "\nSee chatadm(8).\n");
}

static int known_command(const char *word)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (strcmp(commands[i].word, word) == 0)
			return 1;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Finding the socket                                                     */

static int socket_from_config(const char *path, char *out, size_t len, int must)
{
	static struct ch_config cfg;
	char err[CH_CONFIG_ERR_MAX];

	if (!must && access(path, R_OK) < 0)
		return -1;
	ch_config_defaults(&cfg);
	if (ch_config_load(&cfg, path, err, sizeof(err)) < 0) {
		fprintf(stderr, "chatadm: %s\n", err);
		return must ? -2 : -1;
	}
	if (cfg.admin_socket[0])
		snprintf(out, len, "%s", cfg.admin_socket);
	else
		snprintf(out, len, "%.*s/chatd.sock", (int)(len - 12), cfg.data_dir);
	return 0;
}

static int resolve_socket(const struct opts *o, char *out, size_t len)
{
	const char *env = getenv("CHATD_SOCKET");
	int rc;

	if (o->socket) {
		snprintf(out, len, "%s", o->socket);
		return 0;
	}
	if (o->config)
		return socket_from_config(o->config, out, len, 1) == 0 ? 0 : -1;
	if (env && env[0]) {
		snprintf(out, len, "%s", env);
		return 0;
	}
	rc = socket_from_config(CHATADM_DEFAULT_CONFIG, out, len, 0);
	if (rc == 0)
		return 0;
	if (rc == -2)
		return -1;
	snprintf(out, len, "%s", CHATADM_DEFAULT_SOCKET);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* One request                                                            */

static int connect_to(const char *path, int quiet)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "chatadm: socket path too long: %s\n", path);
		return -1;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "chatadm: socket: %s\n", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (!quiet)
			fprintf(stderr, "chatadm: cannot connect to %s: %s (is chatd running? "
				"see -s and -c)\n", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read the answer until chatd closes; NULL (with the reason printed) on
 * failure. */
static cJSON *read_answer(int fd)
{
	enum { CHUNK = 4096 };
	struct ch_buf buf;
	cJSON *answer = NULL;

	ch_buf_init(&buf);
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, CHATADM_TIMEOUT_MS);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0) {
			fprintf(stderr, "chatadm: no answer from chatd in %d s\n",
				CHATADM_TIMEOUT_MS / 1000);
			goto out;
		}
		/* Room for a chunk and the terminating NUL. */
		if (buf.len >= CHATADM_ANSWER_MAX || ch_buf_reserve(&buf, CHUNK + 1) < 0) {
			fprintf(stderr, "chatadm: answer too large\n");
			goto out;
		}
		ssize_t n = read(fd, buf.p + buf.len, CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "chatadm: read: %s\n", strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		buf.len += (size_t)n;
	}
	if (ch_buf_reserve(&buf, 1) < 0)
		goto out;
	buf.p[buf.len] = '\0';
	answer = cJSON_Parse(buf.p);
	if (!cJSON_IsObject(answer)) {
		fprintf(stderr, "chatadm: chatd sent no valid answer%s\n",
			buf.len ? "" : " (the connection closed)");
		cJSON_Delete(answer);
		answer = NULL;
	}
out:
	ch_buf_free(&buf);
	return answer;
}

/* Send the words, return chatd's answer (NULL: failed, reason printed). */
static cJSON *request(const char *sock, int argc, char **argv)
{
	char line[CH_ADMIN_REQUEST_MAX + 2];
	size_t len = 0;
	int fd;

	for (int i = 0; i < argc; i++) {
		int n = snprintf(line + len, sizeof(line) - len, "%s%s", i ? " " : "", argv[i]);
		if (n < 0 || (size_t)n >= sizeof(line) - len - 1) {
			fprintf(stderr, "chatadm: request too long\n");
			return NULL;
		}
		if (strpbrk(argv[i], " \t\r\n")) {
			fprintf(stderr, "chatadm: arguments may not contain blanks: '%s'\n", argv[i]);
			return NULL;
		}
		len += (size_t)n;
	}
	line[len++] = '\n';
	if ((fd = connect_to(sock, 0)) < 0)
		return NULL;
	/* chatd may answer and close before reading (a refused peer): its
	 * answer is still there to read after a failed write. */
	int werr = write_all(fd, line, len) < 0 ? errno : 0;
	cJSON *answer = read_answer(fd);
	if (!answer && werr)
		fprintf(stderr, "chatadm: write: %s\n", strerror(werr));
	close(fd);
	return answer;
}

/* 1 if the answer says ok; otherwise the reason goes to stderr. */
static int answer_ok(const cJSON *answer)
{
	if (cJSON_IsTrue(cJSON_GetObjectItem(answer, "ok")))
		return 1;
	const cJSON *err = cJSON_GetObjectItem(answer, "error");
	fprintf(stderr, "chatadm: %s\n", cJSON_IsString(err) ? err->valuestring : "failed");
	return 0;
}

static void print_json(const cJSON *answer)
{
	char *text = cJSON_Print(answer);
	if (text)
		printf("%s\n", text);
	cJSON_free(text);
}

/* ---------------------------------------------------------------------- */
/* top                                                                    */

static double num(const cJSON *o, const char *key)
{
	return cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

static const cJSON *worker_in(const cJSON *snap, double index)
{
	const cJSON *w;
	cJSON_ArrayForEach(w, cJSON_GetObjectItem(snap, "workers"))
		if (num(w, "worker") == index)
			return w;
	return NULL;
}

/* The view between two samples: per-second rates and CPU percentages. */
static cJSON *top_view(const cJSON *prev, const cJSON *cur)
{
	double dt = (num(cur, "time_ms") - num(prev, "time_ms")) / 1000.0;
	cJSON *view = cJSON_CreateObject(), *workers = cJSON_AddArrayToObject(view, "workers");
	const cJSON *w;

	if (dt <= 0)
		dt = 1;
	cJSON_ArrayForEach(w, cJSON_GetObjectItem(cur, "workers")) {
		const cJSON *p = worker_in(prev, num(w, "worker"));
		int same = p && num(p, "pid") == num(w, "pid");
		cJSON *row = cJSON_CreateObject();
		cJSON_AddNumberToObject(row, "worker", num(w, "worker"));
		cJSON_AddNumberToObject(row, "pid", num(w, "pid"));
		cJSON_AddStringToObject(row, "state", cJSON_GetStringValue(cJSON_GetObjectItem(w, "state")));
		cJSON_AddNumberToObject(row, "connections", num(w, "connections"));
		cJSON_AddNumberToObject(row, "msgs_in_s",
					same ? (num(w, "messages_in") - num(p, "messages_in")) / dt : 0);
		cJSON_AddNumberToObject(row, "msgs_out_s",
					same ? (num(w, "messages_out") - num(p, "messages_out")) / dt : 0);
		cJSON_AddNumberToObject(row, "cpu_pct",
					same ? 100.0 * (num(w, "cpu_s") - num(p, "cpu_s")) / dt : 0);
		cJSON_AddNumberToObject(row, "rss_kib", (double)((long long)num(w, "rss_bytes") / 1024));
		cJSON_AddItemToArray(workers, row);
	}
	const cJSON *jc = cJSON_GetObjectItem(cur, "journal"), *jp = cJSON_GetObjectItem(prev, "journal");
	int same = num(jc, "pid") == num(jp, "pid");
	cJSON *j = cJSON_AddObjectToObject(view, "journal");
	cJSON_AddNumberToObject(j, "pid", num(jc, "pid"));
	cJSON_AddNumberToObject(j, "appends_s", same ? (num(jc, "appends") - num(jp, "appends")) / dt : 0);
	cJSON_AddNumberToObject(j, "fsyncs_s", same ? (num(jc, "fsyncs") - num(jp, "fsyncs")) / dt : 0);
	cJSON_AddNumberToObject(j, "fsync_p99_us", num(jc, "fsync_p99_us"));
	cJSON_AddNumberToObject(j, "lag_records", num(jc, "repl_lag_records"));
	cJSON_AddNumberToObject(j, "cpu_pct", same ? 100.0 * (num(jc, "cpu_s") - num(jp, "cpu_s")) / dt : 0);
	cJSON_AddNumberToObject(j, "rss_kib", (double)((long long)num(jc, "rss_bytes") / 1024));
	cJSON *rooms = cJSON_Duplicate(cJSON_GetObjectItem(cur, "rooms"), 1);
	cJSON_AddItemToObject(view, "rooms", rooms ? rooms : cJSON_CreateArray());
	return view;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !interrupted)
		;
}

static int run_top(const struct opts *o, const char *sock, int argc, char **argv)
{
	cJSON *prev = request(sock, argc, argv);
	int shown = 0, status = 0;

	if (!prev || !answer_ok(prev)) {
		cJSON_Delete(prev);
		return CHATADM_EXIT_FAIL;
	}
	signal(SIGINT, on_interrupt);
	signal(SIGTERM, on_interrupt);
	/* Off a terminal, top shows one sample (rates need two) unless -n. */
	int want = o->iterations ? o->iterations : (o->tty ? 0 : 1);
	while (!interrupted && (!want || shown < want)) {
		sleep_ms(CHATADM_TOP_INTERVAL_MS);
		if (interrupted)
			break;
		cJSON *cur = request(sock, argc, argv);
		if (!cur || !answer_ok(cur)) {
			cJSON_Delete(cur);
			status = CHATADM_EXIT_FAIL;
			break;
		}
		cJSON *view = top_view(prev, cur);
		if (o->json) {
			char *text = cJSON_PrintUnformatted(view);
			printf("%s\n", text ? text : "{}");
			cJSON_free(text);
		} else {
			if (o->tty)
				fputs("\033[H\033[2J", stdout);
			time_t now = time(NULL);
			char when[32];
			strftime(when, sizeof(when), "%H:%M:%S", localtime(&now));
			printf("chatd top, %s (every %d s; Ctrl-C quits)\n\n", when,
			       CHATADM_TOP_INTERVAL_MS / 1000);
			ch_render_answer(stdout, view, o->tty);
			if (!o->tty && (!want || shown + 1 < want))
				fputc('\n', stdout);
		}
		fflush(stdout);
		cJSON_Delete(view);
		cJSON_Delete(prev);
		prev = cur;
		shown++;
	}
	cJSON_Delete(prev);
	return status;
}

/* ---------------------------------------------------------------------- */
/* stop: wait until chatd is gone                                         */

static int wait_stopped(const char *sock, int timeout_s)
{
	long waited = 0, limit = (long)(timeout_s + CHATADM_STOP_GRACE_S) * 1000;
	const long step = 100;

	while (waited < limit) {
		int fd = connect_to(sock, 1);
		if (fd < 0)
			return 0;	/* the socket is gone or refuses: chatd exited */
		close(fd);
		sleep_ms(step);
		waited += step;
	}
	fprintf(stderr, "chatadm: chatd still answers %ld s after stop\n", limit / 1000);
	return -1;
}

/* ---------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	static const struct option long_opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "iterations", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	struct opts o = { .tty = isatty(STDOUT_FILENO) };
	char sock[CH_PATH_MAX];
	int c;

	/* "+": options stop at the command, so `stop --timeout 5` keeps its own. */
	while ((c = getopt_long(argc, argv, "+s:c:jn:hV", long_opts, NULL)) != -1) {
		switch (c) {
		case 's':
			o.socket = optarg;
			break;
		case 'c':
			o.config = optarg;
			break;
		case 'j':
			o.json = 1;
			break;
		case 'n':
			o.iterations = atoi(optarg);
			if (o.iterations < 1) {
				fprintf(stderr, "chatadm: -n wants a positive count\n");
				return CHATADM_EXIT_USAGE;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("chatadm %s\n", CH_VERSION);
			return 0;
		default:
			usage(stderr);
			return CHATADM_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return CHATADM_EXIT_USAGE;
	}
	/* --json after the command is accepted too (chatadm stats --json). */
	int nargs = 0;
	char **args = argv + optind;
	for (int i = optind; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0 || strcmp(argv[i], "-j") == 0)
			o.json = 1;
		else
			args[nargs++] = argv[i];
	}
	if (nargs == 0 || !known_command(args[0])) {
		fprintf(stderr, "chatadm: unknown command '%s' (chatadm help lists them)\n",
			nargs ? args[0] : "");
		return CHATADM_EXIT_USAGE;
	}
	if (strcmp(args[0], "help") == 0 && !o.json) {
		usage(stdout);
		return 0;
	}
	if (resolve_socket(&o, sock, sizeof(sock)) < 0)
		return CHATADM_EXIT_FAIL;
	if (strcmp(args[0], "top") == 0)
		return run_top(&o, sock, nargs, args);

	cJSON *answer = request(sock, nargs, args);
	int status = CHATADM_EXIT_FAIL;
	if (!answer)
		return status;
	if (o.json)
		print_json(answer);
	if (answer_ok(answer)) {
		status = 0;
		if (!o.json)
			ch_render_answer(stdout, answer, o.tty);
		if (strcmp(args[0], "stop") == 0) {
			int timeout_s = nargs == 3 ? atoi(args[2]) : 0;
			if (wait_stopped(sock, timeout_s ? timeout_s : CHATADM_STOP_GRACE_S) < 0)
				status = CHATADM_EXIT_FAIL;
			else if (!o.json)
				printf("stopped\n");
		}
	}
	cJSON_Delete(answer);
	return status;
}
