/*
 * chatbench: the load generator for chatd and for any WebSocket broadcast
 * server (see man/chatbench.1). This file owns the command line and the
 * run's course: prepare through the REST API, open every connection (the
 * ramp-up), measure for the duration, drain what is in flight, stop the
 * loops, then count and report. The loops (loop.c) and scenarios (scen.c)
 * run on their own threads; main only reads their counters and moves the
 * phase on.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench/chatbench/bench.h"
#include "bench/chatbench/loop.h"
#include "bench/chatbench/prep.h"
#include "bench/chatbench/proc.h"
#include "bench/chatbench/report.h"
#include "client/httpc.h"
#include "common/log.h"
#include "common/version.h"

#define EXIT_CLEAN	0	/* measured, no error, nothing lost or duplicated */
#define EXIT_DIRTY	1	/* measured, but with errors, losses or duplicates */
#define EXIT_USAGE	2	/* bad options, or the run could not start */

#define DEFAULT_SERVER	"127.0.0.1:8080"
#define DEFAULT_PASSWORD "bench-password-1"	/* the one bench/lib/prepare.js uses */
#define CONNS_PER_ADDR	20000	/* below Linux's default 28232 ephemeral ports per address */
#define CONNECT_GRACE_MS 30000	/* after the ramp-up, the longest wait for the last connections */
#define ROUND_TIMEOUT_NS (5 * 1000000000ull)	/* a broadcast round left unfinished this long moves on */
#define POLL_NS		(50 * 1000000ull)	/* main's look at the counters */
#define NS_PER_MS	1000000ull
#define NS_PER_S	1000000000ull
#define MAX_THREADS	256
#define MAX_CONNS	1000000
#define NOFILE_SPARE	64	/* files besides the sockets: rings, eventfds, /proc */
#define MAX_ROOM_PREFIX	48	/* PREFIX-N stays within a room id's 64 characters */

static const char usage[] =
"usage: chatbench [options] fanout|broadcast|idle|connect|history\n"
"\n"
"  -s, --server HOST:PORT    the server (default " DEFAULT_SERVER "; ws:// and http:// accepted)\n"
"      --proto chatd|raw     chatd's protocol (default), or a plain broadcast server:\n"
"                            text sent on /ROOM goes to every socket on /ROOM\n"
"  -c, --connections N       WebSocket (history: HTTP) connections (default 100)\n"
"  -t, --threads N           event loops, one per thread (default 1)\n"
"  -r, --rooms N             rooms; connection i is in room i %% N (default 1)\n"
"  -R, --rate N              fanout: messages per second per room, open loop;\n"
"                            0 = as fast as the window allows (default 0)\n"
"                            history: requests per second in all, open loop, each\n"
"                            on an idle connection, latency from when it was due;\n"
"                            0 = closed loop, the next as each answer comes (default 0)\n"
"  -w, --window N            fanout at rate 0: messages per sender not yet\n"
"                            delivered back to it (default 8)\n"
"  -b, --size N              payload bytes (default 64)\n"
"  -d, --duration S          seconds measured (default 10)\n"
"      --ramp S              seconds over which connections are opened (default 1)\n"
"      --drain S             longest wait for messages in flight after (default 5)\n"
"      --ping S              idle: ping interval per connection (default 10)\n"
"      --limit N             history: messages per request (default 50)\n"
"  -p, --server-pid PID      a server process whose CPU time and memory (its\n"
"                            children's included) are measured; repeatable\n"
"      --source-addrs N      spread connections over 127.0.0.1 .. 127.0.0.N\n"
"                            (default: one address per 20000 connections)\n"
"      --prepare             register the users, create the rooms (and --fill them)\n"
"      --fill N              --prepare: messages put in each room (default 0)\n"
"      --user NAME           user name, or prefix with --users > 1 (default bench)\n"
"      --password PW         (default " DEFAULT_PASSWORD ")\n"
"      --users N             users that connections take in turn (default 1)\n"
"      --room-prefix P       rooms are P-0 .. P-(N-1) (default bench)\n"
"      --token TOKEN         a token to use instead of logging in\n"
"      --json                print the result as one JSON object on stdout\n"
"  -v, --verbose             log every error event (server error codes, closes) on stderr\n"
"  -V, --version             print the version\n"
"  -h, --help                this text\n"
"\n"
"Exit status: 0 clean run, 1 errors, losses or duplicates, 2 the run could not start.\n";

enum {
	OPT_PROTO = 256, OPT_RAMP, OPT_DRAIN, OPT_PING, OPT_LIMIT, OPT_SOURCE, OPT_PREPARE,
	OPT_FILL, OPT_USER, OPT_PASSWORD, OPT_USERS, OPT_PREFIX, OPT_TOKEN, OPT_JSON
};

static const struct option long_opts[] = {
	{ "server", required_argument, NULL, 's' },
	{ "proto", required_argument, NULL, OPT_PROTO },
	{ "connections", required_argument, NULL, 'c' },
	{ "threads", required_argument, NULL, 't' },
	{ "rooms", required_argument, NULL, 'r' },
	{ "rate", required_argument, NULL, 'R' },
	{ "window", required_argument, NULL, 'w' },
	{ "size", required_argument, NULL, 'b' },
	{ "duration", required_argument, NULL, 'd' },
	{ "ramp", required_argument, NULL, OPT_RAMP },
	{ "drain", required_argument, NULL, OPT_DRAIN },
	{ "ping", required_argument, NULL, OPT_PING },
	{ "limit", required_argument, NULL, OPT_LIMIT },
	{ "server-pid", required_argument, NULL, 'p' },
	{ "source-addrs", required_argument, NULL, OPT_SOURCE },
	{ "prepare", no_argument, NULL, OPT_PREPARE },
	{ "fill", required_argument, NULL, OPT_FILL },
	{ "user", required_argument, NULL, OPT_USER },
	{ "password", required_argument, NULL, OPT_PASSWORD },
	{ "users", required_argument, NULL, OPT_USERS },
	{ "room-prefix", required_argument, NULL, OPT_PREFIX },
	{ "token", required_argument, NULL, OPT_TOKEN },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "verbose", no_argument, NULL, 'v' },
	{ "version", no_argument, NULL, 'V' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* ---- options ------------------------------------------------------------- */

static int num(const char *opt, const char *s, unsigned lo, unsigned hi, unsigned *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi) {
		fprintf(stderr, "chatbench: %s: %s is not a number from %u to %u\n", opt, s, lo, hi);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

/* Seconds (fractions allowed) as milliseconds. */
static int secs(const char *opt, const char *s, unsigned *ms)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || v < 0 || v > 86400) {
		fprintf(stderr, "chatbench: %s: %s is not a number of seconds\n", opt, s);
		return -1;
	}
	*ms = (unsigned)(v * 1000 + 0.5);
	return 0;
}

static int copy(const char *opt, const char *s, char *out, size_t cap)
{
	if (strlen(s) >= cap) {
		fprintf(stderr, "chatbench: %s: too long\n", opt);
		return -1;
	}
	strcpy(out, s);
	return 0;
}

static int parse_scenario(const char *s, enum ch_bench_scenario *out)
{
	for (int i = CH_SCEN_FANOUT; i <= CH_SCEN_HISTORY; i++)
		if (strcmp(s, ch_bench_scenario_name((enum ch_bench_scenario)i)) == 0) {
			*out = (enum ch_bench_scenario)i;
			return 0;
		}
	fprintf(stderr, "chatbench: unknown scenario %s\n", s);
	return -1;
}

static void defaults(struct ch_bench_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->proto = CH_PROTO_CHATD;
	snprintf(o->hostport, sizeof(o->hostport), "%s", DEFAULT_SERVER);
	o->threads = 1;
	o->conns = 100;
	o->rooms = 1;
	o->window = 8;
	o->size = 64;
	o->duration_ms = 10000;
	o->ramp_ms = 1000;
	o->drain_ms = 5000;
	o->ping_ms = 10000;
	o->limit = 50;
	o->users = 1;
	strcpy(o->user, "bench");
	strcpy(o->password, DEFAULT_PASSWORD);
	strcpy(o->prefix, "bench");
}

static int option(struct ch_bench_opts *o, int c, const char *arg)
{
	char *end;

	switch (c) {
	case 's': return copy("--server", arg, o->hostport, sizeof(o->hostport));
	case OPT_PROTO:
		if (strcmp(arg, "chatd") && strcmp(arg, "raw")) {
			fprintf(stderr, "chatbench: --proto: chatd or raw\n");
			return -1;
		}
		o->proto = strcmp(arg, "raw") ? CH_PROTO_CHATD : CH_PROTO_RAW;
		return 0;
	case 'c': return num("--connections", arg, 1, MAX_CONNS, &o->conns);
	case 't': return num("--threads", arg, 1, MAX_THREADS, &o->threads);
	case 'r': return num("--rooms", arg, 1, MAX_CONNS, &o->rooms);
	case 'R':
		o->rate = strtod(arg, &end);
		if (end == arg || *end || o->rate < 0 || o->rate > 1e7) {
			fprintf(stderr, "chatbench: --rate: %s is not a rate\n", arg);
			return -1;
		}
		return 0;
	case 'w': return num("--window", arg, 1, 1u << 20, &o->window);
	case 'b': return num("--size", arg, 1, 1u << 20, &o->size);
	case 'd': return secs("--duration", arg, &o->duration_ms);
	case OPT_RAMP: return secs("--ramp", arg, &o->ramp_ms);
	case OPT_DRAIN: return secs("--drain", arg, &o->drain_ms);
	case OPT_PING: return secs("--ping", arg, &o->ping_ms);
	case OPT_LIMIT: return num("--limit", arg, 1, 500, &o->limit);
	case 'p':
		if (o->npids == CH_BENCH_MAX_PIDS) {
			fprintf(stderr, "chatbench: --server-pid: at most %d\n", CH_BENCH_MAX_PIDS);
			return -1;
		}
		return num("--server-pid", arg, 1, 1u << 30, (unsigned *)&o->pids[o->npids++]);
	case OPT_SOURCE: return num("--source-addrs", arg, 1, 254, &o->source_addrs);
	case OPT_PREPARE: o->prepare = 1; return 0;
	case OPT_FILL: return num("--fill", arg, 0, 1000000, &o->fill);
	case OPT_USER: return copy("--user", arg, o->user, sizeof(o->user) - 12);
	case OPT_PASSWORD: return copy("--password", arg, o->password, sizeof(o->password));
	case OPT_USERS: return num("--users", arg, 1, 10000, &o->users);
	case OPT_PREFIX: return copy("--room-prefix", arg, o->prefix, MAX_ROOM_PREFIX);
	case OPT_TOKEN: return copy("--token", arg, o->token, sizeof(o->token));
	case OPT_JSON: o->json = 1; return 0;
	default: return -1;
	}
}

/* The server address: a host:port, with or without a ws:// or http:// in front. */
static int resolve(struct ch_bench_opts *o, struct sockaddr_in *sa)
{
	struct ch_httpc_url u;
	struct addrinfo hints, *ai;
	const char *err;

	if (ch_httpc_parse_url(o->hostport, &u, &err) < 0) {
		fprintf(stderr, "chatbench: --server %s: %s\n", o->hostport, err);
		return -1;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	int rc = getaddrinfo(u.host, u.port, &hints, &ai);
	if (rc) {
		fprintf(stderr, "chatbench: %s: %s (IPv4 only)\n", u.host, gai_strerror(rc));
		return -1;
	}
	memcpy(sa, ai->ai_addr, sizeof(*sa));
	freeaddrinfo(ai);
	snprintf(o->host, sizeof(o->host), "%s", u.host);
	snprintf(o->port, sizeof(o->port), "%s", u.port);
	snprintf(o->hostport, sizeof(o->hostport), "%s", u.hostport);
	o->addr = sa->sin_addr;
	return 0;
}

static int valid_room_prefix(const char *p)
{
	for (; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      strchr("_.:-", *p)))
			return 0;
	return 1;
}

static int check(struct ch_bench_opts *o)
{
	if (o->rooms > o->conns) {
		fprintf(stderr, "chatbench: %u rooms need at least as many connections\n", o->rooms);
		return -1;
	}
	if (o->threads > o->conns)
		o->threads = o->conns;
	if (!o->prefix[0] || !valid_room_prefix(o->prefix)) {
		fprintf(stderr, "chatbench: --room-prefix: letters, digits and _ . : - only\n");
		return -1;
	}
	if (o->proto == CH_PROTO_RAW && (o->scenario == CH_SCEN_HISTORY || o->prepare)) {
		fprintf(stderr, "chatbench: history and --prepare need --proto chatd\n");
		return -1;
	}
	if (o->token[0] && (o->prepare || o->users > 1)) {
		fprintf(stderr, "chatbench: --token is for one existing user: not with --prepare or --users\n");
		return -1;
	}
	if (o->scenario == CH_SCEN_IDLE && o->ping_ms == 0) {
		fprintf(stderr, "chatbench: --ping must be above 0\n");
		return -1;
	}
	return 0;
}

static int parse_args(int argc, char **argv, struct ch_bench_opts *o)
{
	int c;

	defaults(o);
	while ((c = getopt_long(argc, argv, "s:c:t:r:R:w:b:d:p:vVh", long_opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(usage, stdout);
			exit(EXIT_CLEAN);
		}
		if (c == 'v') {
			ch_log_set_level(CH_LOG_DEBUG);
			continue;
		}
		if (c == 'V') {
			printf("chatbench %s\n", CH_VERSION);
			exit(EXIT_CLEAN);
		}
		if (c == '?' || option(o, c, optarg) < 0) {
			fputs("Try chatbench --help.\n", stderr);
			return -1;
		}
	}
	if (optind != argc - 1) {
		fputs(usage, stderr);
		return -1;
	}
	if (parse_scenario(argv[optind], &o->scenario) < 0)
		return -1;
	return check(o);
}

/* ---- the run ------------------------------------------------------------- */

/* Thousands of sockets: the soft limit on open files goes up to the hard one. */
static void raise_nofile(unsigned conns)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			ch_warn("setrlimit RLIMIT_NOFILE: %s", strerror(errno));
	}
	if (rl.rlim_cur < (rlim_t)conns + NOFILE_SPARE)
		ch_warn("only %llu open files allowed for %u connections (ulimit -n)",
			(unsigned long long)rl.rlim_cur, conns);
}

static int run_setup(struct ch_bench_run *run)
{
	struct ch_bench_opts *o = &run->o;
	unsigned max_members = (o->conns + o->rooms - 1) / o->rooms;

	if (resolve(o, &run->server) < 0)
		return -1;
	int loopback = (ntohl(run->server.sin_addr.s_addr) >> 24) == 127;
	if (o->source_addrs && !loopback) {
		fprintf(stderr, "chatbench: --source-addrs needs a server on 127.0.0.0/8\n");
		return -1;
	}
	if (o->source_addrs > 1)
		run->conns_per_addr = (o->conns + o->source_addrs - 1) / o->source_addrs;
	else if (!o->source_addrs && loopback && o->conns > CONNS_PER_ADDR)
		run->conns_per_addr = CONNS_PER_ADDR;
	run->tokens = calloc(o->users, sizeof(*run->tokens));
	run->names = calloc(o->rooms, sizeof(*run->names));
	run->paths = calloc(o->rooms, sizeof(*run->paths));
	run->members_run = calloc(o->rooms, sizeof(*run->members_run));
	run->room_open = calloc(o->rooms, sizeof(*run->room_open));
	run->room_sent = calloc(o->rooms, sizeof(*run->room_sent));
	run->threads = calloc(o->threads, sizeof(*run->threads));
	if (!run->tokens || !run->names || !run->paths || !run->members_run ||
	    !run->room_open || !run->room_sent || !run->threads) {
		ch_err_sys("calloc");
		return -1;
	}
	run->senders_per_room = o->scenario == CH_SCEN_BROADCAST ? max_members : 1;
	for (unsigned r = 0; r < o->rooms; r++) {
		snprintf(run->names[r], sizeof(run->names[r]), "%s-%u", o->prefix, r);
		snprintf(run->paths[r], sizeof(run->paths[r]), "%s%s",
			 o->proto == CH_PROTO_CHATD ? "/ws/" : "/", run->names[r]);
	}
	return 0;
}

static void run_free(struct ch_bench_run *run)
{
	for (unsigned i = 0; run->threads && i < run->o.threads; i++)
		ch_bench_thread_free(&run->threads[i]);
	free(run->threads);
	free(run->tokens);
	free(run->names);
	free(run->paths);
	free(run->members_run);
	free((void *)run->room_open);
	free((void *)run->room_sent);
}

static void nap(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / NS_PER_S), (long)(ns % NS_PER_S) };
	nanosleep(&ts, NULL);
}

/* Prints a progress line once a second; returns the totals now. */
static void watch(struct ch_bench_run *run, uint64_t t0, uint64_t *next_line,
		  struct ch_bench_totals *prev, struct ch_bench_totals *now)
{
	uint64_t t = ch_bench_now();
	ch_bench_sum(run, now);
	if (t >= *next_line) {
		ch_bench_progress(run, (double)(t - t0) / NS_PER_S, now, prev);
		*prev = *now;
		*next_line += NS_PER_S;
	}
}

static int phase_connect(struct ch_bench_run *run, uint64_t t0, uint64_t *next_line, struct ch_bench_totals *prev)
{
	const struct ch_bench_opts *o = &run->o;
	struct ch_bench_totals now;
	uint64_t ramp_end = t0 + (uint64_t)o->ramp_ms * NS_PER_MS;
	uint64_t deadline = ramp_end + CONNECT_GRACE_MS * NS_PER_MS;

	if (o->scenario == CH_SCEN_CONNECT)
		return 0;	/* connections open and close while measuring */
	for (;;) {
		watch(run, t0, next_line, prev, &now);
		uint64_t t = ch_bench_now();
		if (now.attempts >= o->conns && now.opening == 0 && t >= ramp_end)
			break;
		if (t >= deadline || interrupted) {
			fprintf(stderr, "chatbench: %llu of %u connections open; going on without the rest\n",
				(unsigned long long)now.open, o->conns);
			break;
		}
		nap(POLL_NS);
	}
	if (now.open == 0) {
		fprintf(stderr, "chatbench: no connection could be opened to %s\n", o->hostport);
		return -1;
	}
	return 0;
}

/* Broadcast: a round that did not finish in time moves on (as a thread would). */
static void round_watch(struct ch_bench_run *run, uint64_t *last_round, uint64_t *since, uint64_t *timeouts)
{
	uint64_t t = ch_bench_now();
	/* Pairs with the threads' CAS in ch_scen_flush_round. */
	uint64_t v = atomic_load_explicit(&run->bcast, memory_order_acquire);

	if ((v >> 32) != *last_round) {
		*last_round = v >> 32;
		*since = t;
		return;
	}
	if (t - *since < ROUND_TIMEOUT_NS)
		return;
	if (atomic_compare_exchange_strong_explicit(&run->bcast, &v, ((v >> 32) + 1) << 32,
						    memory_order_acq_rel, memory_order_acquire)) {
		(*timeouts)++;
		ch_bench_wake_all(run, run->o.threads);
	}
	*since = t;
}

static uint64_t expected_unique(struct ch_bench_run *run)
{
	uint64_t n = 0;
	for (unsigned r = 0; r < run->o.rooms; r++)
		n += atomic_load_explicit(&run->room_sent[r], memory_order_relaxed) * run->members_run[r];
	return n;
}

static void phase_measure(struct ch_bench_run *run, struct ch_bench_result *res, uint64_t t0,
			  uint64_t *next_line, struct ch_bench_totals *prev)
{
	const struct ch_bench_opts *o = &run->o;
	struct ch_bench_totals now;
	uint64_t last_round = 0, since = ch_bench_now();

	ch_bench_sum(run, &now);
	res->open_at_run = now.open;
	/*
	 * Who is in each room from now on: the members a message must reach
	 * (a connection that never opened is a connect error, not a loss)
	 * and the deliveries a broadcast round waits for.
	 */
	for (unsigned r = 0; r < o->rooms; r++) {
		run->members_run[r] = atomic_load_explicit(&run->room_open[r], memory_order_relaxed);
		run->bcast_need += (uint64_t)run->members_run[r] * run->members_run[r];
	}
	res->cpu = ch_bench_proc_cpu(o->pids, o->npids);
	run->t_run = ch_bench_now();
	/* Pairs with the threads' acquire load: they see t_run. */
	atomic_store_explicit(&run->phase, CH_PHASE_RUN, memory_order_release);
	uint64_t end = run->t_run + (uint64_t)o->duration_ms * NS_PER_MS;
	while (ch_bench_now() < end && !interrupted) {
		watch(run, t0, next_line, prev, &now);
		if (o->scenario == CH_SCEN_BROADCAST)
			round_watch(run, &last_round, &since, &res->round_timeouts);
		nap(POLL_NS);
	}
	double cpu1 = ch_bench_proc_cpu(o->pids, o->npids);
	/* Every connection has been open, and pinged, for the whole duration. */
	res->rss_open = ch_bench_proc_rss(o->pids, o->npids);
	uint64_t t_end = ch_bench_now();
	res->nproc = ch_bench_proc_count(o->pids, o->npids);
	atomic_store_explicit(&run->phase, CH_PHASE_DRAIN, memory_order_release);
	res->secs = (double)(t_end - run->t_run) / NS_PER_S;
	res->cpu = res->cpu >= 0 && cpu1 >= 0 ? cpu1 - res->cpu : -1;
}

/*
 * Waits for what is in flight: messages not yet delivered to every member,
 * or, for history at --rate, answers to requests sent while measuring (a
 * slow last answer is a latency too; closed loop keeps its old count).
 */
static void phase_drain(struct ch_bench_run *run, uint64_t t0, uint64_t *next_line, struct ch_bench_totals *prev)
{
	const struct ch_bench_opts *o = &run->o;
	struct ch_bench_totals now;
	uint64_t end = ch_bench_now() + (uint64_t)o->drain_ms * NS_PER_MS;
	int history = o->scenario == CH_SCEN_HISTORY && o->rate > 0;

	if (o->scenario != CH_SCEN_FANOUT && o->scenario != CH_SCEN_BROADCAST && !history)
		return;
	while (ch_bench_now() < end && !interrupted) {
		watch(run, t0, next_line, prev, &now);
		if (history ? now.in_flight == 0 : now.unique >= expected_unique(run))
			break;
		nap(POLL_NS / 5);
	}
}

static int start_threads(struct ch_bench_run *run, unsigned *started)
{
	for (unsigned i = 0; i < run->o.threads; i++) {
		struct ch_bench_thread *t = &run->threads[i];
		t->run = run;
		t->index = i;
		if (ch_bench_thread_init(t) < 0)
			return -1;
	}
	for (unsigned i = 0; i < run->o.threads; i++) {
		int rc = pthread_create(&run->threads[i].tid, NULL, ch_bench_thread_main, &run->threads[i]);
		if (rc) {
			ch_err_code("pthread_create", rc);
			return -1;	/* the ones started stop at DONE */
		}
		(*started)++;
	}
	return 0;
}

static void stop_threads(struct ch_bench_run *run, unsigned started)
{
	atomic_store_explicit(&run->phase, CH_PHASE_DONE, memory_order_release);
	for (unsigned i = 0; i < started; i++)
		pthread_join(run->threads[i].tid, NULL);
}

static int collect(struct ch_bench_run *run, struct ch_bench_result *res)
{
	ch_bench_sum(run, &res->tot);
	res->tot.err_round_timeout += res->round_timeouts;
	uint64_t want = expected_unique(run);
	res->lost = want > res->tot.unique ? want - res->tot.unique : 0;
	res->rounds = atomic_load_explicit(&run->bcast, memory_order_acquire) >> 32;
	for (unsigned i = 0; i < run->o.threads; i++) {
		ch_hist_merge(&res->hist, &run->threads[i].hist);
		if (run->threads[i].failed)
			return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct ch_bench_run run;
	struct ch_bench_result res;
	struct ch_bench_totals prev;
	int status = EXIT_USAGE, measured = 0;
	unsigned started = 0;

	memset(&run, 0, sizeof(run));
	memset(&res, 0, sizeof(res));
	memset(&prev, 0, sizeof(prev));
	ch_log_set_name("chatbench");
	ch_log_set_level(CH_LOG_WARN);	/* -v: debug */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (parse_args(argc, argv, &run.o) < 0 || ch_hist_init(&res.hist) < 0)
		return EXIT_USAGE;
	raise_nofile(run.o.conns);
	if (run_setup(&run) < 0)
		goto out;
	if (run.o.proto == CH_PROTO_CHATD && ch_bench_prepare(&run) < 0)
		goto out;
	ch_bench_print_header(run.o.json ? stderr : stdout, &run);
	fflush(stdout);
	res.rss_before = ch_bench_proc_rss(run.o.pids, run.o.npids);
	atomic_store_explicit(&run.phase, CH_PHASE_CONNECT, memory_order_release);
	if (start_threads(&run, &started) < 0)
		goto stop;
	uint64_t t0 = ch_bench_now(), next_line = t0 + NS_PER_S;
	if (phase_connect(&run, t0, &next_line, &prev) < 0)
		goto stop;
	phase_measure(&run, &res, t0, &next_line, &prev);
	phase_drain(&run, t0, &next_line, &prev);
	measured = 1;
stop:
	stop_threads(&run, started);
	if (!measured || collect(&run, &res) < 0)
		goto out;
	if (run.o.json)
		ch_bench_print_json(stdout, &run, &res);
	else
		ch_bench_print_summary(stdout, &run, &res);
	status = ch_bench_errors(&res.tot) || res.lost || res.tot.dup ? EXIT_DIRTY : EXIT_CLEAN;
	if (interrupted)
		status = EXIT_DIRTY;
out:
	run_free(&run);
	ch_hist_free(&res.hist);
	return status;
}
