/*
 * The master's admin socket: see admin.h; the commands and the wire
 * protocol are in admin/commands.h.
 *
 * Owns: the listening socket and its file, the admin clients (at most
 * CH_ADMIN_CLIENTS), and reading the workers' control channels (answers
 * to the questions asked here, and the acknowledgements of a reload's new
 * configuration, recorded in each child's cfg_acked).
 *
 * A client goes READ (collecting its one request line) -> WAIT (a parked
 * command: workers to answer, a reload or a promotion to complete) ->
 * WRITE (its answer) -> closed. Every state has a deadline, so a silent
 * client or a stuck worker never holds a slot for long.
 *
 * Stats come from the per-process blocks in shared memory (shm/shm.h): a
 * few hundred relaxed loads, so `stats` answers in microseconds whatever
 * the load. Every field of CH_STATS_FIELDS is printed, in the section its
 * name puts it in, so a field added there shows up without a change here.
 */
#define _GNU_SOURCE
#include "master/admin.h"

#include "admin/commands.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/version.h"
#include "master/master.h"
#include "worker/handoff.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CH_ADMIN_UMASK 0117		/* the socket file is born 0660 */
#define CH_ADMIN_MODE 0660
#define CH_ADMIN_BACKLOG 16
#define CH_ADMIN_PARK_POLL_MS 50	/* parked commands are looked at this often */
#define CH_ADMIN_TOP_ROOMS 5		/* rooms in `top` */
#define CH_ADMIN_ROOMS_DEFAULT 20	/* rooms without --top */
#define CH_ADMIN_FSYNC_BASE_US 100	/* bucket 0 of the fsync histogram */
#define CH_ADMIN_FORWARD_WAIT_MS 100	/* a worker's channel full: wait this */
#define CH_ADMIN_FORWARD_WAITS 10	/* times, then try another worker */

enum cl_state { CL_FREE, CL_READ, CL_WAIT, CL_WRITE };
enum adm_rc { ADM_DONE, ADM_WAIT };

struct admin_client;
typedef int (*adm_resume_fn)(struct ch_master *m, struct admin_client *c, int timed_out);

struct admin_client {
	int fd;
	enum cl_state state;
	char req[CH_ADMIN_REQUEST_MAX + 1];
	size_t req_len;
	uint64_t deadline_ms;
	struct ch_buf out;
	size_t out_off;
	/* a parked command */
	adm_resume_fn resume;
	uint32_t ctl_id;	/* the id of the question asked the workers */
	uint64_t pending;	/* bit i: worker i has not answered yet */
	cJSON *answers;		/* [{"worker":i,"data":...,"truncated":bool}] */
	int top_n;
	uint64_t role_before;
	uint64_t started_ms;
	int denied;		/* a peer neither root nor us: refused once read */
};

enum poll_kind { PK_LISTEN, PK_CLIENT, PK_WORKER };

struct ch_admin {
	int fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	uint32_t next_id;
	struct admin_client cl[CH_ADMIN_CLIENTS];
	/* what each pollfd of the last ch_admin_pollfds stands for */
	uint8_t kind[CH_ADMIN_POLLFDS];
	uint8_t which[CH_ADMIN_POLLFDS];
};

/* ---------------------------------------------------------------------- */
/* The command table (admin/commands.h)                                   */

#define ADM_DECLARE(name, args, help) \
	static int ch_admin_do_##name(struct ch_master *m, struct admin_client *c, int argc, \
				      char **argv);
CH_ADMIN_COMMANDS(ADM_DECLARE)
#undef ADM_DECLARE

static const struct {
	const char *word;
	const char *args;
	const char *help;
	int (*handler)(struct ch_master *m, struct admin_client *c, int argc, char **argv);
} commands[] = {
#define ADM_ROW(name, args, help) { #name, args, help, ch_admin_do_##name },
	CH_ADMIN_COMMANDS(ADM_ROW)
#undef ADM_ROW
};

#define N_COMMANDS (int)(sizeof(commands) / sizeof(commands[0]))

int ch_admin_find(const char *word)
{
	for (int i = 0; i < N_COMMANDS; i++)
		if (strcmp(commands[i].word, word) == 0)
			return i;
	return -1;
}

int ch_admin_split(char *line, char **words, int max)
{
	int n = 0;
	char *save = NULL;

	if (strlen(line) > CH_ADMIN_REQUEST_MAX)
		return -1;
	for (char *w = strtok_r(line, " \t\r\n", &save); w; w = strtok_r(NULL, " \t\r\n", &save)) {
		if (n == max)
			return -1;
		words[n++] = w;
	}
	return n ? n : -1;
}

int ch_admin_peer_allowed(uid_t peer, uid_t self)
{
	return peer == 0 || peer == self;
}

/* ---------------------------------------------------------------------- */
/* Stats from shared memory                                               */

static const struct {
	const char *name;
	int gauge;
} stat_fields[] = {
#define ADM_FIELD(name, kind, help) { #name, __builtin_strcmp(#kind, "gauge") == 0 },
	CH_STATS_FIELDS(ADM_FIELD)
#undef ADM_FIELD
};

#define N_STATS (int)(sizeof(stat_fields) / sizeof(stat_fields[0]))

static void stat_read(const struct ch_stats *st, uint64_t *v)
{
	int i = 0;
#define ADM_READ(name, kind, help) v[i++] = CH_STAT_GET(st, name);
	CH_STATS_FIELDS(ADM_READ)
#undef ADM_READ
}

static int stat_index(const char *name)
{
	for (int i = 0; i < N_STATS; i++)
		if (strcmp(stat_fields[i].name, name) == 0)
			return i;
	return -1;
}

const char *ch_admin_stat_section(const char *f)
{
	static const struct { const char *prefix, *section; } map[] = {
		{ "journal_", "journal" }, { "repl_", "replication" },
		{ "messages_", "messages" }, { "connections", "clients" },
		{ "accepted", "clients" }, { "refused", "clients" },
		{ "requests", "clients" }, { "responses_", "clients" },
		{ "hash_", "clients" }, { "upload", "uploads" }, { "s3_", "uploads" },
		{ "files_", "uploads" }, { "presence", "clients" }, { "ws_", "clients" },
		{ "conns_", "clients" }, { "history_", "clients" },
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strncmp(f, map[i].prefix, strlen(map[i].prefix)) == 0)
			return map[i].section;
	return "other";
}

uint64_t ch_admin_fsync_p99_us(const uint64_t *buckets, int n)
{
	uint64_t total = 0, seen = 0;

	for (int b = 0; b < n; b++)
		total += buckets[b];
	if (!total)
		return 0;
	for (int b = 0; b < n; b++) {
		seen += buckets[b];
		/* seen/total >= 99/100, in integers */
		if (seen * 100 >= total * 99)
			return (uint64_t)CH_ADMIN_FSYNC_BASE_US << b;
	}
	return (uint64_t)CH_ADMIN_FSYNC_BASE_US << (n - 1);
}

/* The journal's fsync latency p99 from its histogram in shared memory. */
static uint64_t fsync_p99_us(const struct ch_stats *st)
{
	uint64_t buckets[CH_FSYNC_BUCKETS];

	for (int i = 0; i < CH_FSYNC_BUCKETS; i++)
		buckets[i] = CH_STAT_GET(st, fsync_bucket[i]);
	return ch_admin_fsync_p99_us(buckets, CH_FSYNC_BUCKETS);
}

/* Sum over the processes: counters over every block ever used (a dead
 * worker's messages still happened), gauges over the live ones only. */
static void stat_sum(const struct ch_master *m, uint64_t *sum)
{
	uint64_t v[N_STATS];

	memset(sum, 0, sizeof(uint64_t) * N_STATS);
	for (int p = 0; p < 1 + m->n_children; p++) {
		int live = p == CH_SHM_PROC_MASTER || m->children[p - 1].pid != 0;
		stat_read(ch_shm_stats(&m->shm, p), v);
		for (int i = 0; i < N_STATS; i++)
			if (!stat_fields[i].gauge || live)
				sum[i] += v[i];
	}
}

struct proc_usage {
	double cpu_s;
	uint64_t rss;
};

/* CPU time and resident memory from /proc; zeros if it is gone. */
static struct proc_usage proc_usage(pid_t pid)
{
	struct proc_usage u = { 0 };
	char path[64], line[1024];
	FILE *f;

	if (pid <= 0)
		return u;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "re"))) {
		if (fgets(line, sizeof(line), f)) {
			/* Fields after the command name (which may hold spaces):
			 * state is field 3, utime 14 and stime 15. */
			char *p = strrchr(line, ')');
			unsigned long long ut = 0, st = 0;
			if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
					&ut, &st) == 2)
				u.cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
		}
		fclose(f);
	}
	snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
	if ((f = fopen(path, "re"))) {
		unsigned long long size, rss;
		if (fscanf(f, "%llu %llu", &size, &rss) == 2)
			u.rss = rss * (uint64_t)sysconf(_SC_PAGESIZE);
		fclose(f);
	}
	return u;
}

static uint64_t uptime_s(const struct ch_master *m)
{
	uint64_t now = (uint64_t)time(NULL) * 1000;
	return now > m->started_realtime_ms ? (now - m->started_realtime_ms) / 1000 : 0;
}

static const char *role_name(uint64_t role)
{
	return role ? "standby" : "primary";
}

static const char *child_state(const struct ch_master *m, const struct ch_child *ch)
{
	if (ch->retiring)
		return "retiring";
	if (!ch->pid)
		return ch->restart_at_ms ? "restarting" : "stopped";
	return CH_STAT_GET(ch_shm_stats(&m->shm, ch_master_child_proc(ch)), ready) ? "running"
										      : "starting";
}

/* ---------------------------------------------------------------------- */
/* Answers                                                                */

static void answer_begin(struct admin_client *c)
{
	c->out.len = 0;
	ch_buf_puts(&c->out, "{\"ok\":true");
}

static void answer_end(struct admin_client *c)
{
	ch_buf_puts(&c->out, "}\n");
}

static void answer_error(struct admin_client *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void answer_error(struct admin_client *c, const char *fmt, ...)
{
	char msg[CH_CONFIG_ERR_MAX + 128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->out.len = 0;
	ch_buf_puts(&c->out, "{\"ok\":false,\"error\":");
	ch_json_str(&c->out, msg, strlen(msg));
	ch_buf_puts(&c->out, "}\n");
}

static void put_u64(struct ch_buf *b, const char *key, uint64_t v)
{
	ch_buf_puts(b, ",");
	ch_json_key(b, key);
	ch_buf_u64(b, v);
}

static void put_str(struct ch_buf *b, const char *key, const char *v)
{
	ch_buf_puts(b, ",");
	ch_json_key(b, key);
	ch_json_str(b, v, strlen(v));
}

/* One worker (or the journal) as an object, leading comma included. */
static void put_child(const struct ch_master *m, struct ch_buf *b, const struct ch_child *ch)
{
	const struct ch_stats *st = ch_shm_stats(&m->shm, ch_master_child_proc(ch));
	struct proc_usage u = proc_usage(ch->pid);
	uint64_t now = ch_master_now_ms();

	ch_buf_puts(b, "{");
	ch_json_key(b, ch->kind == CH_CHILD_JOURNAL ? "process" : "worker");
	if (ch->kind == CH_CHILD_JOURNAL)
		ch_json_str(b, "journal", 7);
	else
		ch_buf_printf(b, "%d", ch->index);
	put_u64(b, "pid", (uint64_t)ch->pid);
	put_str(b, "state", child_state(m, ch));
	put_u64(b, "uptime_s", ch->pid ? (now - ch->started_ms) / 1000 : 0);
	put_u64(b, "restarts", ch->restarts);
	if (ch->kind == CH_CHILD_WORKER) {
		put_u64(b, "connections", CH_STAT_GET(st, connections));
		put_u64(b, "requests", CH_STAT_GET(st, requests));
		put_u64(b, "messages_in", CH_STAT_GET(st, messages_in));
		put_u64(b, "messages_out", CH_STAT_GET(st, messages_out));
	} else {
		put_u64(b, "appends", CH_STAT_GET(st, journal_appends));
		put_u64(b, "fsyncs", CH_STAT_GET(st, journal_fsyncs));
		put_u64(b, "fsync_p99_us", fsync_p99_us(st));
		put_u64(b, "log_end", CH_STAT_GET(st, journal_log_end));
		put_u64(b, "repl_lag_records", CH_STAT_GET(st, repl_lag_records));
	}
	ch_buf_printf(b, ",\"cpu_s\":%.2f", u.cpu_s);
	put_u64(b, "rss_bytes", u.rss);
	ch_buf_puts(b, "}");
}

static uint64_t role_value(const struct ch_master *m)
{
	return CH_STAT_GET(ch_shm_stats(&m->shm, CH_SHM_PROC_JOURNAL), repl_role);
}

/* ---------------------------------------------------------------------- */
/* Asking the workers                                                     */

/* Send the question to at most `most` running workers (the first that take
 * it); the client waits for their answers or the deadline. */
static int ask_some(struct ch_master *m, struct admin_client *c, uint32_t type,
		    const void *payload, size_t len, adm_resume_fn resume, int most)
{
	struct ch_admin *a = m->admin;
	int asked = 0;

	c->ctl_id = ++a->next_id;
	c->pending = 0;
	c->resume = resume;
	c->answers = cJSON_CreateArray();
	for (int i = 0; i < m->cfg->workers && i < CH_MAX_WORKERS && asked < most; i++) {
		struct ch_child *ch = &m->children[1 + i];
		if (!ch->pid || ch->retiring || ch->ctl_fd < 0)
			continue;
		int rc = ch_ctl_send(ch->ctl_fd, type, c->ctl_id, payload, len, 0);
		if (rc < 0) {
			ch_warn("admin: worker %d: control channel: %s", i, strerror(-rc));
		} else {
			c->pending |= 1ull << i;
			asked++;
		}
	}
	c->deadline_ms = ch_master_now_ms() + CH_ADMIN_WORKER_MS;
	if (!c->pending)
		return resume(m, c, 0);
	return ADM_WAIT;
}

static int ask_workers(struct ch_master *m, struct admin_client *c, uint32_t type,
		       const void *payload, size_t len, adm_resume_fn resume)
{
	return ask_some(m, c, type, payload, len, resume, CH_MAX_WORKERS);
}

static void missing_workers(const struct admin_client *c, struct ch_buf *b)
{
	int first = 1;

	ch_buf_puts(b, ",\"missing\":[");
	for (int i = 0; i < CH_MAX_WORKERS; i++) {
		if (!(c->pending & (1ull << i)))
			continue;
		ch_buf_printf(b, "%s%d", first ? "" : ",", i);
		first = 0;
	}
	ch_buf_puts(b, "]");
}

/* ---------------------------------------------------------------------- */
/* Commands                                                               */

static int ch_admin_do_help(struct ch_master *m, struct admin_client *c, int argc, char **argv)
{
	(void)m;
	(void)argc;
	(void)argv;
	answer_begin(c);
	ch_buf_puts(&c->out, ",\"commands\":[");
	for (int i = 0; i < N_COMMANDS; i++) {
		ch_buf_puts(&c->out, i ? ",{" : "{");
		ch_json_key(&c->out, "command");
		ch_json_str(&c->out, commands[i].word, strlen(commands[i].word));
		put_str(&c->out, "args", commands[i].args);
		put_str(&c->out, "help", commands[i].help);
		ch_buf_puts(&c->out, "}");
	}
	ch_buf_puts(&c->out, "]");
	answer_end(c);
	return ADM_DONE;
}

static int ch_admin_do_status(struct ch_master *m, struct admin_client *c, int argc, char **argv)
{
	uint64_t sum[N_STATS];
	int ready = 0;
	uint64_t role = role_value(m);

	(void)argc;
	(void)argv;
	stat_sum(m, sum);
	for (int i = 0; i < m->cfg->workers; i++) {
		const struct ch_child *ch = &m->children[1 + i];
		const struct ch_stats *st = ch_shm_stats(&m->shm, ch_master_child_proc(ch));
		ready += ch->pid && CH_STAT_GET(st, ready);
	}
	answer_begin(c);
	put_str(&c->out, "version", CH_VERSION);
	put_u64(&c->out, "pid", (uint64_t)getpid());
	put_u64(&c->out, "uptime_s", uptime_s(m));
	put_str(&c->out, "role", role_name(role));
	put_u64(&c->out, "workers", (uint64_t)m->cfg->workers);
	put_u64(&c->out, "workers_ready", (uint64_t)ready);
	put_u64(&c->out, "connections", sum[stat_index("connections")]);
	put_str(&c->out, "state", m->stopping ? "stopping" : m->reload_pending ? "reloading"
					      : m->ready_told ? "serving" : "starting");
	put_str(&c->out, "config", m->cfg->path[0] ? m->cfg->path : "(embedded defaults)");
	put_u64(&c->out, "reloads", m->reloads);
	answer_end(c);
	return ADM_DONE;
}

/* `,"section":{"field":n,...}`: the X-macro's fields that belong in it. */
static void stats_section(struct admin_client *c, const char *section, const uint64_t *sum)
{
	int first = 1;

	ch_buf_puts(&c->out, ",");
	ch_json_key(&c->out, section);
	ch_buf_puts(&c->out, "{");
	for (int i = 0; i < N_STATS; i++) {
		if (strcmp(ch_admin_stat_section(stat_fields[i].name), section) != 0)
			continue;
		if (!first)
			ch_buf_puts(&c->out, ",");
		ch_json_key(&c->out, stat_fields[i].name);
		ch_buf_u64(&c->out, sum[i]);
		first = 0;
	}
	ch_buf_puts(&c->out, "}");
}

static int ch_admin_do_stats(struct ch_master *m, struct admin_client *c, int argc, char **argv)
{
	static const char *const sections[] = { "clients", "messages", "journal",
						"replication", "uploads", "other" };
	uint64_t sum[N_STATS], rss_total = 0;

	(void)argc;
	(void)argv;
	stat_sum(m, sum);
	answer_begin(c);
	ch_buf_puts(&c->out, ",\"sections\":{\"server\":{");
	ch_json_key(&c->out, "version");
	ch_json_str(&c->out, CH_VERSION, strlen(CH_VERSION));
	put_u64(&c->out, "pid", (uint64_t)getpid());
	put_u64(&c->out, "uptime_s", uptime_s(m));
	put_str(&c->out, "role", role_name(role_value(m)));
	put_u64(&c->out, "workers", (uint64_t)m->cfg->workers);
	put_u64(&c->out, "reloads", m->reloads);
	put_str(&c->out, "config", m->cfg->path[0] ? m->cfg->path : "(embedded defaults)");
	ch_buf_puts(&c->out, "},\"memory\":{");
	ch_json_key(&c->out, "shm_bytes");
	ch_buf_u64(&c->out, m->shm.size);
	struct proc_usage mu = proc_usage(getpid());
	put_u64(&c->out, "rss_master", mu.rss);
	rss_total += mu.rss;
	for (int i = 0; i < m->n_children; i++) {
		const struct ch_child *ch = &m->children[i];
		if (!ch->pid)
			continue;
		char key[32];
		struct proc_usage u = proc_usage(ch->pid);
		if (ch->kind == CH_CHILD_JOURNAL)
			snprintf(key, sizeof(key), "rss_journal");
		else
			snprintf(key, sizeof(key), "rss_worker%d", ch->index);
		put_u64(&c->out, key, u.rss);
		rss_total += u.rss;
	}
	put_u64(&c->out, "rss_total", rss_total);
	ch_buf_puts(&c->out, "}");
	/* Every section shows, even empty, so scripts find every header. */
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
		stats_section(c, sections[i], sum);
	ch_buf_puts(&c->out, ",\"fsync\":{");
	ch_json_key(&c->out, "p99_us");
	ch_buf_u64(&c->out, fsync_p99_us(ch_shm_stats(&m->shm, CH_SHM_PROC_JOURNAL)));
	put_u64(&c->out, "count", sum[stat_index("journal_fsyncs")]);
	ch_buf_puts(&c->out, "},\"workers\":{");
	for (int i = 0, n = 0; i < m->cfg->workers; i++) {
		const struct ch_child *ch = &m->children[1 + i];
		const struct ch_stats *st = ch_shm_stats(&m->shm, ch_master_child_proc(ch));
		char key[32];
		snprintf(key, sizeof(key), "worker%d", i);
		if (n++)
			ch_buf_puts(&c->out, ",");
		ch_json_key(&c->out, key);
		ch_buf_printf(&c->out, "{\"pid\":%d,\"state\":\"%s\",\"connections\":%llu,"
			      "\"messages_in\":%llu,\"messages_out\":%llu}",
			      (int)ch->pid, child_state(m, ch),
			      (unsigned long long)CH_STAT_GET(st, connections),
			      (unsigned long long)CH_STAT_GET(st, messages_in),
			      (unsigned long long)CH_STAT_GET(st, messages_out));
	}
	ch_buf_puts(&c->out, "}}");
	answer_end(c);
	return ADM_DONE;
}

static int ch_admin_do_workers(struct ch_master *m, struct admin_client *c, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	answer_begin(c);
	ch_buf_puts(&c->out, ",\"workers\":[");
	for (int i = 0, n = 0; i < m->n_children - 1; i++) {
		const struct ch_child *ch = &m->children[1 + i];
		if (i >= m->cfg->workers && !ch->pid)
			continue;
		if (n++)
			ch_buf_puts(&c->out, ",");
		put_child(m, &c->out, ch);
	}
	ch_buf_puts(&c->out, "]");
	answer_end(c);
	return ADM_DONE;
}

/* Merge the workers' room lists: members summed, the highest seq kept;
 * busiest (most members, then most messages) first, at most n. */
static cJSON *merge_rooms(const cJSON *answers, int n)
{
	cJSON *rooms = cJSON_CreateObject(), *list = cJSON_CreateArray();
	const cJSON *a;

	cJSON_ArrayForEach(a, answers) {
		const cJSON *r;
		cJSON_ArrayForEach(r, cJSON_GetObjectItem(a, "data")) {
			const cJSON *name = cJSON_GetObjectItem(r, "room");
			if (!cJSON_IsString(name))
				continue;
			cJSON *have = cJSON_GetObjectItemCaseSensitive(rooms, name->valuestring);
			double members = cJSON_GetNumberValue(cJSON_GetObjectItem(r, "members"));
			double seq = cJSON_GetNumberValue(cJSON_GetObjectItem(r, "seq"));
			if (!have) {
				have = cJSON_AddObjectToObject(rooms, name->valuestring);
				cJSON_AddStringToObject(have, "room", name->valuestring);
				cJSON_AddNumberToObject(have, "members", 0);
				cJSON_AddNumberToObject(have, "workers", 0);
				cJSON_AddNumberToObject(have, "seq", 0);
			}
			cJSON *hm = cJSON_GetObjectItem(have, "members");
			cJSON *hw = cJSON_GetObjectItem(have, "workers");
			cJSON *hs = cJSON_GetObjectItem(have, "seq");
			cJSON_SetNumberValue(hm, hm->valuedouble + members);
			cJSON_SetNumberValue(hw, hw->valuedouble + 1);
			if (seq > hs->valuedouble)
				cJSON_SetNumberValue(hs, seq);
		}
	}
	/* Selection by repeated maximum: room counts are small (rooms with
	 * members online), and n is smaller still. */
	for (int k = 0; k < n; k++) {
		cJSON *best = NULL;
		for (cJSON *r = rooms->child; r; r = r->next) {
			double bm = best ? cJSON_GetObjectItem(best, "members")->valuedouble : -1;
			double rm = cJSON_GetObjectItem(r, "members")->valuedouble;
			if (!best || rm > bm ||
			    (rm == bm && cJSON_GetObjectItem(r, "seq")->valuedouble >
						 cJSON_GetObjectItem(best, "seq")->valuedouble))
				best = r;
		}
		if (!best)
			break;
		cJSON_AddItemToArray(list, cJSON_DetachItemViaPointer(rooms, best));
	}
	cJSON_Delete(rooms);
	return list;
}

static void put_json(struct ch_buf *b, const char *key, const cJSON *v)
{
	char *text = cJSON_PrintUnformatted(v);
	ch_buf_puts(b, ",");
	ch_json_key(b, key);
	ch_buf_puts(b, text ? text : "null");
	free(text);
}

static int rooms_done(struct ch_master *m, struct admin_client *c, int timed_out)
{
	cJSON *list = merge_rooms(c->answers, c->top_n);
	(void)m;
	answer_begin(c);
	put_json(&c->out, "rooms", list);
	if (timed_out)
		missing_workers(c, &c->out);
	answer_end(c);
	cJSON_Delete(list);
	return ADM_DONE;
}

static int parse_count(const char *s, int *out)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v < 1 || v > 100000)
		return -1;
	*out = (int)v;
	return 0;
}

static int ch_admin_do_rooms(struct ch_master *m, struct admin_client *c, int argc, char **argv)
{
	c->top_n = CH_ADMIN_ROOMS_DEFAULT;
	if (argc == 3 && strcmp(argv[1], "--top") == 0) {
		if (parse_count(argv[2], &c->top_n) < 0) {
			answer_error(c, "rooms: --top wants a count from 1 to 100000, not '%s'",
				     argv[2]);
			return ADM_DONE;
		}
	} else if (argc != 1) {
		answer_error(c, "usage: rooms [--top N]");
		return ADM_DONE;
	}
	return ask_workers(m, c, CH_CTL_ROOMS, NULL, 0, rooms_done);
}

static int users_done(struct ch_master *m, struct admin_client *c, int timed_out)
{
	cJSON *users = cJSON_CreateObject(), *list = cJSON_CreateArray();
	const cJSON *a;
	int truncated = 0;

	(void)m;
	cJSON_ArrayForEach(a, c->answers) {
		const cJSON *u;
		truncated |= cJSON_IsTrue(cJSON_GetObjectItem(a, "truncated"));
		cJSON_ArrayForEach(u, cJSON_GetObjectItem(a, "data")) {
			const cJSON *name = cJSON_GetObjectItem(u, "user");
			if (!cJSON_IsString(name))
				continue;
			cJSON *have = cJSON_GetObjectItemCaseSensitive(users, name->valuestring);
			if (!have) {
				have = cJSON_AddObjectToObject(users, name->valuestring);
				cJSON_AddStringToObject(have, "user", name->valuestring);
				cJSON_AddNumberToObject(have, "connections", 0);
				cJSON_AddNumberToObject(have, "rooms", 0);
			}
			cJSON *hc = cJSON_GetObjectItem(have, "connections");
			cJSON *hr = cJSON_GetObjectItem(have, "rooms");
			double rooms = cJSON_GetNumberValue(cJSON_GetObjectItem(u, "rooms"));
			cJSON_SetNumberValue(hc, hc->valuedouble + 1);
			if (rooms > hr->valuedouble)
				cJSON_SetNumberValue(hr, rooms);
		}
	}
	while (users->child)
		cJSON_AddItemToArray(list, cJSON_DetachItemViaPointer(users, users->child));
	answer_begin(c);
	put_json(&c->out, "users", list);
	if (truncated)
		ch_buf_puts(&c->out, ",\"truncated\":true");
	if (timed_out)
		missing_workers(c, &c->out);
	answer_end(c);
	cJSON_Delete(users);
	cJSON_Delete(list);
	return ADM_DONE;
}

static int ch_admin_do_users(struct ch_master *m, struct admin_client *c, int argc, char **argv)
{
	(void)argv;
	if (argc != 1) {
		answer_error(c, "usage: users");
		return ADM_DONE;
	}
	return ask_workers(m, c, CH_CTL_USERS, NULL, 0, users_done);
}

static int top_done(struct ch_master *m, struct admin_client *c, int timed_out)
{
	cJSON *list = merge_rooms(c->answers, CH_ADMIN_TOP_ROOMS);
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	answer_begin(c);
	put_u64(&c->out, "time_ms", (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
	ch_buf_puts(&c->out, ",\"journal\":");
	put_child(m, &c->out, &m->children[0]);
	ch_buf_puts(&c->out, ",\"workers\":[");
	for (int i = 0; i < m->cfg->workers; i++) {
		if (i)
			ch_buf_puts(&c->out, ",");
		put_child(m, &c->out, &m->children[1 + i]);
	}
	ch_buf_puts(&c->out, "]");
	put_json(&c->out, "rooms", list);
	if (timed_out)
		missing_workers(c, &c->out);
	answer_end(c);
	cJSON_Delete(list);
	return ADM_DONE;
}

static int ch_admin_do_top(struct ch_master *m, struct admin_client *c, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return ask_workers(m, c, CH_CTL_ROOMS, NULL, 0, top_done);
}

/* A whole answer of one number. */
static int answer_u64(struct admin_client *c, const char *key, uint64_t v)
{
	answer_begin(c);
	put_u64(&c->out, key, v);
	answer_end(c);
	return ADM_DONE;
}

/* Commands of exactly one argument: 1 if argv[1] is it, else the usage. */
static int one_arg(struct admin_client *c, int argc, const char *usage)
{
	if (argc == 2)
		return 1;
	answer_error(c, "usage: %s", usage);
	return 0;
}

static int kick_done(struct ch_master *m, struct admin_client *c, int timed_out)
{
	const cJSON *a;
	double closed = 0;

	(void)m;
	cJSON_ArrayForEach(a, c->answers)
		closed += cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetObjectItem(a, "data"),
								   "closed"));
	if (closed == 0 && !timed_out) {
		answer_error(c, "kick: no connection of that user is open");
		return ADM_DONE;
	}
	answer_begin(c);
	put_u64(&c->out, "closed", (uint64_t)closed);
	if (timed_out)
		missing_workers(c, &c->out);
	answer_end(c);
	return ADM_DONE;
}

/* rm: one worker journals the removal and deletes the file. */
static int rm_done(struct ch_master *m, struct admin_client *c, int timed_out)
{
	const cJSON *data = cJSON_GetObjectItem(cJSON_GetArrayItem(c->answers, 0), "data");
	const cJSON *err = cJSON_GetObjectItem(data, "error");

	(void)m;
	if (timed_out || !data) {
		answer_error(c, "rm: no worker answered in time; the removal may be on record: "
				"run it again");
	} else if (cJSON_IsString(err)) {
		answer_error(c, "rm: %s", err->valuestring);
	} else if (!cJSON_IsTrue(cJSON_GetObjectItem(data, "removed"))) {
		answer_error(c, "rm: no such file");
	} else {
		return answer_u64(c, "removed", 1);
	}
	return ADM_DONE;
}

static int ch_admin_do_rm(struct ch_master *m, struct admin_client *c, int argc, char **argv)
{
	if (!one_arg(c, argc, "rm FILE_ID"))
		return ADM_DONE;
	return ask_some(m, c, CH_CTL_RMFILE, argv[1], strlen(argv[1]), rm_done, 1);
}

static int ch_admin_do_kick(struct ch_master *m, struct admin_client *c, int argc, char **argv)
{
	if (!one_arg(c, argc, "kick USER"))
		return ADM_DONE;
	return ask_workers(m, c, CH_CTL_KICK, argv[1], strlen(argv[1]), kick_done);
}

static int reopen_done(struct ch_master *m, struct admin_client *c, int timed_out)
{
	(void)m;
	if (timed_out) {
		answer_error(c, "reopen: some workers did not answer");
		return ADM_DONE;
	}
	return answer_u64(c, "workers", (uint64_t)cJSON_GetArraySize(c->answers));
}

static int ch_admin_do_reopen(struct ch_master *m, struct admin_client *c, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	/* The master and the journal write only to stderr (systemd's journal
	 * or the file the shell opened): only the workers' access logs are
	 * files chatd opened itself. */
	return ask_workers(m, c, CH_CTL_REOPEN, NULL, 0, reopen_done);
}

static int ch_admin_do_check(struct ch_master *m, struct admin_client *c, int argc, char **argv)
{
	static struct ch_config next;
	char err[CH_CONFIG_ERR_MAX];

	(void)argc;
	(void)argv;
	if (ch_master_check(m, &next, err, sizeof(err)) < 0) {
		answer_error(c, "%s", err);
		return ADM_DONE;
	}
	answer_begin(c);
	ch_buf_puts(&c->out, ",\"valid\":true");
	put_str(&c->out, "config", m->cfg->path);
	answer_end(c);
	return ADM_DONE;
}

static int reload_done(struct ch_master *m, struct admin_client *c, int timed_out)
{
	if (timed_out) {
		answer_error(c, "reload: applied, but the workers were not all ready after %d s",
			     CH_RELOAD_WAIT_MS / 1000);
		return ADM_DONE;
	}
	if (!ch_master_reload_done(m))
		return ADM_WAIT;
	put_u64(&c->out, "workers", (uint64_t)m->cfg->workers);
	put_u64(&c->out, "elapsed_ms", ch_master_now_ms() - c->started_ms);
	answer_end(c);
	return ADM_DONE;
}

static int ch_admin_do_reload(struct ch_master *m, struct admin_client *c, int argc, char **argv)
{
	char err[CH_CONFIG_ERR_MAX];
	struct ch_buf changes;

	(void)argc;
	(void)argv;
	if (m->stopping) {
		answer_error(c, "reload: chatd is stopping");
		return ADM_DONE;
	}
	ch_buf_init(&changes);
	if (ch_master_reload(m, &changes, err, sizeof(err)) < 0) {
		answer_error(c, "%s", err);
		ch_buf_free(&changes);
		return ADM_DONE;
	}
	/* The answer is built now (what changed) and sent when it is done. */
	answer_begin(c);
	ch_buf_puts(&c->out, ",");
	ch_buf_append(&c->out, changes.p, changes.len);
	ch_buf_free(&changes);
	c->started_ms = ch_master_now_ms();
	c->deadline_ms = c->started_ms + CH_RELOAD_WAIT_MS;
	c->resume = reload_done;
	return reload_done(m, c, 0);
}

static int promote_done(struct ch_master *m, struct admin_client *c, int timed_out)
{
	uint64_t role = role_value(m);

	if (role == c->role_before && !timed_out)
		return ADM_WAIT;
	if (role == c->role_before) {
		answer_error(c, "promote: the role is still %s after %d s (see chatd's log)",
			     role_name(role), CH_ADMIN_PROMOTE_MS / 1000);
		return ADM_DONE;
	}
	answer_begin(c);
	put_str(&c->out, "role", role_name(role));
	put_str(&c->out, "was", role_name(c->role_before));
	answer_end(c);
	return ADM_DONE;
}

static int ch_admin_do_promote(struct ch_master *m, struct admin_client *c, int argc, char **argv)
{
	pid_t journal = m->children[0].pid;

	(void)argc;
	(void)argv;
	c->role_before = role_value(m);
	if (!journal) {
		answer_error(c, "promote: the journal is not running; try again once it is");
		return ADM_DONE;
	}
	if (c->role_before == CH_ROLE_PRIMARY) {
		answer_error(c, "promote: this node is already the primary");
		return ADM_DONE;
	}
	if (kill(journal, SIGUSR2) < 0) {
		answer_error(c, "promote: kill(journal, SIGUSR2): %s", strerror(errno));
		return ADM_DONE;
	}
	ch_info("admin: promote: SIGUSR2 sent to the journal (pid %d)", (int)journal);
	c->deadline_ms = ch_master_now_ms() + CH_ADMIN_PROMOTE_MS;
	c->resume = promote_done;
	return ADM_WAIT;
}

static int upgrade_done(struct ch_master *m, struct admin_client *c, int timed_out)
{
	int state = ch_master_upgrade_state(m);

	if (state == 0 && !timed_out)
		return ADM_WAIT;
	if (state <= 0) {
		answer_error(c, "%s", state < 0 ? m->upg_err : "upgrade: still running (see the log)");
		return ADM_DONE;
	}
	answer_begin(c);
	put_str(&c->out, "binary", m->exe);
	put_u64(&c->out, "workers", (uint64_t)m->cfg->workers);
	put_u64(&c->out, "elapsed_ms", ch_master_now_ms() - c->started_ms);
	answer_end(c);
	return ADM_DONE;
}

static int ch_admin_do_upgrade(struct ch_master *m, struct admin_client *c, int argc, char **argv)
{
	char err[CH_CONFIG_ERR_MAX];

	(void)argc;
	(void)argv;
	if (ch_master_upgrade(m, err, sizeof(err)) < 0) {
		answer_error(c, "upgrade: %s", err);
		return ADM_DONE;
	}
	c->started_ms = ch_master_now_ms();
	c->deadline_ms = c->started_ms + CH_ADMIN_UPGRADE_MS;
	c->resume = upgrade_done;
	return ADM_WAIT;
}

static int ch_admin_do_stop(struct ch_master *m, struct admin_client *c, int argc, char **argv)
{
	int timeout_s = 0;

	if (argc == 3 && strcmp(argv[1], "--timeout") == 0) {
		if (parse_count(argv[2], &timeout_s) < 0 || timeout_s > 3600) {
			answer_error(c, "stop: --timeout wants seconds from 1 to 3600, not '%s'",
				     argv[2]);
			return ADM_DONE;
		}
	} else if (argc != 1) {
		answer_error(c, "usage: stop [--timeout S]");
		return ADM_DONE;
	}
	ch_info("admin: stop requested%s", timeout_s ? " with a timeout" : "");
	ch_master_stop(m, (uint32_t)timeout_s * 1000);
	answer_begin(c);
	ch_buf_puts(&c->out, ",\"stopping\":true");
	put_u64(&c->out, "pid", (uint64_t)getpid());
	answer_end(c);
	return ADM_DONE;
}

/* ---------------------------------------------------------------------- */
/* The socket                                                             */

static void admin_path(const struct ch_config *cfg, char *out, size_t len)
{
	const char *dir = cfg->admin_socket[0] ? "" : cfg->data_dir;
	const char *name = cfg->admin_socket[0] ? cfg->admin_socket : "/" CH_ADMIN_SOCKET_NAME;
	size_t n = strlen(dir);

	/* Too long a path is refused below, against sun_path's size. */
	if (n >= len)
		n = len - 1;
	memcpy(out, dir, n);
	snprintf(out + n, len - n, "%s", name);
}

/* A socket file left by a crashed chatd refuses connections: replace it.
 * One that answers belongs to a running chatd: leave it alone. */
static int remove_stale(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, rc;

	if (access(path, F_OK) < 0)
		return 0;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	if (rc == 0) {
		ch_err("admin socket %s: another chatd answers on it", path);
		return -1;
	}
	if (unlink(path) < 0) {
		ch_err("admin socket %s: unlink: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int ch_admin_open(struct ch_master *m)
{
	struct ch_admin *a = calloc(1, sizeof(*a));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char path[CH_PATH_MAX];

	if (!a) {
		ch_err("admin socket: out of memory");
		return -1;
	}
	a->fd = -1;
	for (int i = 0; i < CH_ADMIN_CLIENTS; i++)
		a->cl[i].fd = -1;
	m->admin = a;
	admin_path(m->cfg, path, sizeof(path));
	if (strlen(path) >= sizeof(sa.sun_path)) {
		ch_err("admin socket %s: path longer than %zu bytes", path, sizeof(sa.sun_path) - 1);
		return -1;
	}
	snprintf(a->path, sizeof(a->path), "%s", path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (remove_stale(path) < 0)
		return -1;
	a->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (a->fd < 0) {
		ch_err("admin socket: socket: %s", strerror(errno));
		return -1;
	}
	/* The umask makes bind create the file 0660 at most, so it is never
	 * open to others, not even between bind and chmod. */
	mode_t old = umask(CH_ADMIN_UMASK);
	int rc = bind(a->fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0) {
		ch_err("admin socket %s: bind: %s", path, strerror(errno));
		goto fail;
	}
	if (chmod(path, CH_ADMIN_MODE) < 0) {
		ch_err("admin socket %s: chmod: %s", path, strerror(errno));
		goto fail;
	}
	if (listen(a->fd, CH_ADMIN_BACKLOG) < 0) {
		ch_err("admin socket %s: listen: %s", path, strerror(errno));
		goto fail;
	}
	ch_info("admin socket %s", path);
	return 0;
fail:
	close(a->fd);
	a->fd = -1;
	a->path[0] = '\0';
	return -1;
}

static void client_free(struct admin_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	ch_buf_free(&c->out);
	cJSON_Delete(c->answers);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

void ch_admin_close(struct ch_master *m)
{
	struct ch_admin *a = m->admin;

	if (!a)
		return;
	for (int i = 0; i < CH_ADMIN_CLIENTS; i++)
		if (a->cl[i].state != CL_FREE)
			client_free(&a->cl[i]);
	if (a->fd >= 0) {
		close(a->fd);
		unlink(a->path);
	}
	free(a);
	m->admin = NULL;
}

void ch_admin_close_inherited(struct ch_admin *a)
{
	if (!a)
		return;
	if (a->fd >= 0)
		close(a->fd);
	for (int i = 0; i < CH_ADMIN_CLIENTS; i++)
		if (a->cl[i].fd >= 0)
			close(a->cl[i].fd);
}

static void accept_clients(struct ch_master *m)
{
	struct ch_admin *a = m->admin;

	for (;;) {
		int fd = accept4(a->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				ch_warn("admin socket: accept: %s", strerror(errno));
			return;
		}
		struct ucred cred = { .uid = (uid_t)-1 };
		socklen_t len = sizeof(cred);
		/* A refused peer still has its request read before it is
		 * answered: closing with its bytes unread would reset the
		 * connection and lose the answer that says why. */
		int denied = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
			     !ch_admin_peer_allowed(cred.uid, geteuid());
		if (denied)
			ch_warn("admin socket: refused a peer with uid %d", (int)cred.uid);
		struct admin_client *c = NULL;
		for (int i = 0; i < CH_ADMIN_CLIENTS && !c; i++)
			if (a->cl[i].state == CL_FREE)
				c = &a->cl[i];
		if (!c) {
			static const char busy[] = "{\"ok\":false,\"error\":\"busy: too many admin "
						   "connections\"}\n";
			ssize_t n = write(fd, busy, sizeof(busy) - 1);
			(void)n;
			close(fd);
			continue;
		}
		c->fd = fd;
		c->denied = denied;
		c->state = CL_READ;
		c->req_len = 0;
		ch_buf_init(&c->out);
		c->deadline_ms = ch_master_now_ms() + CH_ADMIN_IO_MS;
	}
}

static void run_command(struct ch_master *m, struct admin_client *c)
{
	char *words[CH_ADMIN_MAX_WORDS];
	int n = ch_admin_split(c->req, words, CH_ADMIN_MAX_WORDS);
	int cmd = n > 0 ? ch_admin_find(words[0]) : -1;
	int rc = ADM_DONE;

	if (c->denied)
		answer_error(c, "permission denied: only root and chatd's own user may use the "
			     "admin socket");
	else if (n < 0)
		answer_error(c, "empty or malformed request");
	else if (cmd < 0)
		answer_error(c, "unknown command '%s' (try help)", words[0]);
	else
		rc = commands[cmd].handler(m, c, n, words);
	if (rc == ADM_WAIT) {
		c->state = CL_WAIT;
	} else {
		c->state = CL_WRITE;
		c->deadline_ms = ch_master_now_ms() + CH_ADMIN_IO_MS;
	}
}

static void client_read(struct ch_master *m, struct admin_client *c)
{
	ssize_t n = read(c->fd, c->req + c->req_len, CH_ADMIN_REQUEST_MAX - c->req_len);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		client_free(c);
		return;
	}
	c->req_len += (size_t)n;
	c->req[c->req_len] = '\0';
	char *nl = memchr(c->req, '\n', c->req_len);
	if (!nl && c->req_len < CH_ADMIN_REQUEST_MAX)
		return;
	if (!nl) {
		answer_error(c, "request longer than %d bytes", CH_ADMIN_REQUEST_MAX);
		c->state = CL_WRITE;
		return;
	}
	*nl = '\0';
	run_command(m, c);
}

static void client_write(struct admin_client *c)
{
	while (c->out_off < c->out.len) {
		ssize_t n = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0)
			break;
		c->out_off += (size_t)n;
	}
	client_free(c);
}

static struct admin_client *client_by_id(struct ch_admin *a, uint32_t id)
{
	for (int i = 0; i < CH_ADMIN_CLIENTS; i++)
		if (a->cl[i].state == CL_WAIT && a->cl[i].ctl_id == id && a->cl[i].answers)
			return &a->cl[i];
	return NULL;
}

static void worker_answer(struct ch_master *m, struct ch_child *ch, const struct ch_ctl_hdr *h,
			  const char *p, size_t len)
{
	uint32_t type = h->type & ~(uint32_t)CH_CTL_ANSWER;

	if (type == CH_CTL_CONFIG) {
		/* A reload's configuration is applied: see ch_master_reload_done. */
		if (len && memmem(p, len, "\"applied\":true", 14))
			ch->cfg_acked = h->id;
		return;
	}
	struct admin_client *c = client_by_id(m->admin, h->id);
	if (!c || !(c->pending & (1ull << ch->index)))
		return;	/* a late answer to a question that timed out */
	c->pending &= ~(1ull << ch->index);
	cJSON *item = cJSON_CreateObject();
	cJSON_AddNumberToObject(item, "worker", ch->index);
	cJSON *data = cJSON_ParseWithLength(p, len);
	cJSON_AddItemToObject(item, "data", data ? data : cJSON_CreateNull());
	cJSON_AddBoolToObject(item, "truncated", h->truncated != 0);
	cJSON_AddItemToArray(c->answers, item);
}

/* A retiring worker's connection: on to the next worker that stays, in
 * turn, so they share them evenly. */
static void forward_conn(struct ch_master *m, const struct ch_child *from, const char *p,
			 size_t len, int fd)
{
	static int next;

	/* An upgrade names the worker; otherwise the ones that stay, in turn. */
	for (int tries = m->handoff_target >= 0 ? -1 : 0; tries < m->cfg->workers; tries++) {
		int i = tries < 0 ? m->handoff_target : next++ % m->cfg->workers;
		struct ch_child *to = &m->children[1 + i];
		if (to == from || !to->pid || to->retiring || to->ctl_fd < 0)
			continue;
		int rc = ch_ctl_send_fd(to->ctl_fd, CH_CTL_ADOPT, 0, p, len, fd);
		/* Its channel is full (thousands moving at once): it empties
		 * it every tick, so wait for room rather than drop the
		 * connection. The master serves no client meanwhile. */
		for (int waits = 0; rc == -EAGAIN && waits < CH_ADMIN_FORWARD_WAITS; waits++) {
			struct pollfd pfd = { .fd = to->ctl_fd, .events = POLLOUT };
			poll(&pfd, 1, CH_ADMIN_FORWARD_WAIT_MS);
			rc = ch_ctl_send_fd(to->ctl_fd, CH_CTL_ADOPT, 0, p, len, fd);
		}
		if (rc == 0) {
			close(fd);
			return;
		}
		ch_warn("admin: handing a connection to worker %d: %s", i, strerror(-rc));
	}
	ch_warn("admin: no worker could take a connection of worker %d; it is closed",
		from->index);
	close(fd);
}

static void read_channel(struct ch_master *m, struct ch_child *ch)
{
	static char buf[CH_CTL_MSG_MAX];
	struct ch_ctl_hdr h;

	for (;;) {
		int passed;
		long n = ch_ctl_recv_fd(ch->ctl_fd, &h, buf, sizeof(buf), &passed);
		if (n >= 0 && h.type == CH_CTL_ADOPT && passed >= 0) {
			forward_conn(m, ch, buf, (size_t)n, passed);
			continue;
		}
		if (passed >= 0)
			close(passed);
		if (n == -EAGAIN || n == -EINTR)
			return;
		if (n < 0) {
			/* The worker died (its SIGCHLD follows) or sent garbage:
			 * stop polling this end until it is restarted. */
			if (n != -EPIPE)
				ch_warn("admin: worker %d: control channel: %s", ch->index,
					strerror((int)-n));
			close(ch->ctl_fd);
			ch->ctl_fd = -1;
			return;
		}
		worker_answer(m, ch, &h, buf, (size_t)n);
	}
}

void ch_admin_channel_drain(struct ch_master *m, struct ch_child *ch)
{
	if (m->admin && ch->ctl_fd >= 0)
		read_channel(m, ch);
}

int ch_admin_pollfds(struct ch_master *m, struct pollfd *fds, int max)
{
	struct ch_admin *a = m->admin;
	int n = 0;

	if (!a)
		return 0;
	if (a->fd >= 0 && n < max) {
		fds[n] = (struct pollfd){ .fd = a->fd, .events = POLLIN };
		a->kind[n++] = PK_LISTEN;
	}
	for (int i = 0; i < CH_ADMIN_CLIENTS && n < max; i++) {
		struct admin_client *c = &a->cl[i];
		if (c->state != CL_READ && c->state != CL_WRITE)
			continue;
		fds[n] = (struct pollfd){ .fd = c->fd,
					  .events = c->state == CL_READ ? POLLIN : POLLOUT };
		a->kind[n] = PK_CLIENT;
		a->which[n++] = (uint8_t)i;
	}
	for (int i = 1; i < m->n_children && n < max; i++) {
		if (m->children[i].ctl_fd < 0)
			continue;
		fds[n] = (struct pollfd){ .fd = m->children[i].ctl_fd, .events = POLLIN };
		a->kind[n] = PK_WORKER;
		a->which[n++] = (uint8_t)i;
	}
	return n;
}

/* Parked commands: complete those whose answers are in or whose deadline
 * passed; drop clients stuck reading or writing. */
static void check_parked(struct ch_master *m, uint64_t now)
{
	struct ch_admin *a = m->admin;

	for (int i = 0; i < CH_ADMIN_CLIENTS; i++) {
		struct admin_client *c = &a->cl[i];
		if (c->state == CL_WAIT) {
			/* A worker that died will not answer. */
			for (int w = 0; w < CH_MAX_WORKERS; w++)
				if ((c->pending & (1ull << w)) && !m->children[1 + w].pid)
					c->pending &= ~(1ull << w);
			int timed_out = now >= c->deadline_ms;
			int rc = c->answers && c->pending && !timed_out
					 ? ADM_WAIT : c->resume(m, c, timed_out);
			if (rc == ADM_DONE) {
				c->state = CL_WRITE;
				c->deadline_ms = now + CH_ADMIN_IO_MS;
				client_write(c);
			}
		} else if (c->state != CL_FREE && now >= c->deadline_ms) {
			client_free(c);
		}
	}
}

void ch_admin_process(struct ch_master *m, const struct pollfd *fds, int n)
{
	struct ch_admin *a = m->admin;

	if (!a)
		return;
	for (int i = 0; i < n; i++) {
		if (!fds[i].revents)
			continue;
		switch (a->kind[i]) {
		case PK_LISTEN:
			accept_clients(m);
			break;
		case PK_CLIENT: {
			struct admin_client *c = &a->cl[a->which[i]];
			if (c->state == CL_READ)
				client_read(m, c);
			if (c->state == CL_WRITE)
				client_write(c);
			break;
		}
		case PK_WORKER: {
			struct ch_child *ch = &m->children[a->which[i]];
			if (ch->ctl_fd >= 0)
				read_channel(m, ch);
			break;
		}
		}
	}
	check_parked(m, ch_master_now_ms());
}

int ch_admin_timeout_ms(const struct ch_admin *a, uint64_t now_ms)
{
	int t = -1;

	if (!a)
		return -1;
	for (int i = 0; i < CH_ADMIN_CLIENTS; i++) {
		const struct admin_client *c = &a->cl[i];
		if (c->state == CL_FREE)
			continue;
		int left = c->deadline_ms > now_ms ? (int)(c->deadline_ms - now_ms) : 0;
		if (c->state == CL_WAIT && left > CH_ADMIN_PARK_POLL_MS)
			left = CH_ADMIN_PARK_POLL_MS;
		if (t < 0 || left < t)
			t = left;
	}
	return t;
}
