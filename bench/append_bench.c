/*
 * append_bench: append throughput of the real journal process, fed through
 * the real shared-memory bus, without HTTP or TCP in the way (issue 3:
 * "Append throughput, 100-byte messages, ack = write and ack = fsync with
 * 256 concurrent senders").
 *
 * What it runs, as chatd's master would: a config (workers = W, the ack
 * mode, data_dir a fresh temporary directory on a real disk), the shared
 * memory from ch_shm_create, and a forked child running ch_journal_run.
 * Once the journal's stats block says ready, it registers one user and
 * creates one room through worker 0's rings, then starts W threads: thread
 * i plays worker i (its ingress ring, its reply ring, its eventfd) and
 * carries senders/W senders, each with exactly one CH_REQ_SEND in flight
 * (a closed loop, like redis-benchmark -c 256). A reply OK counts one ack
 * and sends that sender's next message; the requests made while draining
 * one wake-up are published and signalled to the journal once, as a
 * worker's loop turn does (worker/bus.c). Requests are framed exactly as
 * worker/bus.c frames them: u64 request id, then the payload of
 * journal/proto.h.
 *
 * Warm-up 1 s, then D seconds measured: acked sends/s, records per
 * fdatasync (the journal's own journal_appends / journal_fsyncs), the
 * journal's CPU seconds (/proc/PID/stat), p50/p99 ack latency (log
 * histogram of bench/chatbench/hist.c). Every reply's status is checked; any error
 * makes the exit status 1. At the end every send must have been answered,
 * and acked sends must not exceed the room's last seq (LIST_ROOMS).
 * The last line, "result: key=value ...", is for scripts
 * (bench/append-vs-redis).
 *
 *   append_bench [-a write|fsync] [-s senders] [-w workers] [-d seconds]
 *                [-b bytes] [-D parent-dir] [-k]
 * Defaults: fsync, 256 senders, 2 workers, 10 s, 100 bytes, parent ./var
 * if it is a directory else /var/tmp. A parent on tmpfs or ramfs is
 * refused: fsync is free there. -k keeps the data directory.
 *
 * Build from the top of the tree, after `make` (or make BUILD=dir: then
 * link dir/libchatd.a):
 *   cc -std=gnu11 -O2 -g -Wall -Wextra -I. -o /tmp/append_bench \
 *       bench/append_bench.c bench/chatbench/hist.c bench/chatbench/proc.c \
 *       build/libchatd.a \
 *       $(pkg-config --libs liburing libcjson libjwt libxcrypt inih libcrypto libsystemd) \
 *       -ls3 -lpthread
 */
#define _GNU_SOURCE
#include "bench/chatbench/hist.h"
#include "bench/chatbench/proc.h"
#include "common/log.h"
#include "journal/journal.h"
#include "journal/proto.h"
#include "journal/record.h"
#include "master/config.h"
#include "shm/ring.h"
#include "shm/shm.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BENCH_USER "bench"
#define BENCH_ROOM "bench"
/* The journal stores the hash as given and nobody logs in here, so a
 * fixed, well-formed yescrypt string serves. */
#define BENCH_HASH "$y$j9T$benchbenchbenchbench$0123456789abcdefghijklmnopqrstuvwxyzABCDE"
#define BENCH_WARMUP_MS 1000
#define BENCH_TICK_MS 100		/* main loop and poll granularity */
#define BENCH_READY_MS 15000		/* the journal must be ready by then */
#define BENCH_REPLY_MS 10000		/* a request unanswered this long is lost
					   (worker/bus.h's CH_BUS_TIMEOUT_MS) */
#define BENCH_REQ_SLACK 256		/* payload bytes besides the content */
#define BENCH_REPLY_MAX 4096
#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull

#define TMPFS_MAGIC_ 0x01021994
#define RAMFS_MAGIC_ 0x858458f6

enum bench_phase {
	PHASE_WARMUP,	/* sending, not measuring */
	PHASE_MEASURE,	/* sending, latencies recorded */
	PHASE_STOP,	/* no new sends; drain what is in flight */
};

/* Set by the main thread (release), read by the senders (acquire). */
static _Atomic int bench_phase = PHASE_WARMUP;
static volatile sig_atomic_t bench_interrupted;

struct bench_opts {
	int ack;		/* enum ch_ack_mode */
	int senders;
	int workers;
	int seconds;
	int bytes;
	const char *parent;
	int keep;
};

struct pending {
	uint64_t req_id;	/* 0: free */
	uint64_t sent_ns;
};

/* One thread playing worker `index`. */
struct sender {
	pthread_t tid;
	int index;
	int n_senders;
	struct ch_spsc *in;	/* ours -> journal */
	struct ch_spsc *out;	/* journal -> ours */
	int efd;		/* the journal wakes us here */
	int journal_efd;
	uint32_t incarnation;
	uint32_t next_seq;
	uint32_t mask;		/* pending table size - 1 */
	struct pending *pending;
	uint32_t outstanding;
	const uint8_t *content;
	size_t content_len;
	/* Written by this thread only (relaxed store), summed by main. */
	_Atomic uint64_t acks;
	uint64_t errors;
	uint64_t max_seq;	/* largest room seq an ack named */
	char first_error[160];
	struct ch_hist hist;	/* ack latency, ns (chatbench's histogram) */
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !bench_interrupted)
		;
}

static void on_signal(int sig)
{
	(void)sig;
	bench_interrupted = 1;
}

/* ---------------------------------------------------------------------- */
/* The bus, worker side (framing as worker/bus.c)                         */

static void sender_error(struct sender *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sender_error(struct sender *s, const char *fmt, ...)
{
	if (s->errors++ == 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(s->first_error, sizeof(s->first_error), fmt, ap);
		va_end(ap);
	}
}

static void sender_attach(struct sender *s, const struct ch_shm *shm, int index)
{
	s->index = index;
	s->in = ch_shm_ingress(shm, index);
	s->out = ch_shm_reply(shm, index);
	s->efd = shm->worker_efd[index];
	s->journal_efd = shm->journal_efd;
	s->incarnation = ((uint32_t)getpid() << 8 | (uint32_t)index) | 1;
	ch_spsc_producer_attach(s->in);
	ch_spsc_consumer_attach(s->out);
}

/* Start a request as ch_bus_begin does: room in the ring for the request
 * id and max_len bytes of fields, which the writer fills in place. NULL
 * when the ring is full (not expected: a few hundred small requests in a
 * 4 MiB ring). */
static uint8_t *bus_begin(struct sender *s, struct ch_payload_writer *pw, uint32_t max_len)
{
	uint8_t *buf = ch_spsc_reserve(s->in, max_len + (uint32_t)sizeof(uint64_t));
	if (!buf)
		return NULL;
	ch_payload_writer_init(pw, buf + sizeof(uint64_t), max_len);
	return buf;
}

/* Commit it as ch_bus_send does: the id before the fields. Returns the
 * id, or 0 when the fields did not fit. */
static uint64_t bus_send(struct sender *s, uint32_t type, const struct ch_payload_writer *pw)
{
	size_t len;
	if (ch_payload_writer_finish(pw, &len) < 0)
		return 0;
	uint64_t id = ((uint64_t)s->incarnation << 32) | s->next_seq++;
	memcpy(pw->buf - sizeof(uint64_t), &id, sizeof(id));
	ch_spsc_commit(s->in, type, (uint32_t)(len + sizeof(id)));
	return id;
}

static void bus_flush(struct sender *s)
{
	ch_spsc_publish(s->in);
	ch_shm_wake(s->journal_efd);
}

/* Wait until the eventfd fires (or a tick passes) and clear it. */
static void bus_wait(struct sender *s)
{
	struct pollfd pfd = { .fd = s->efd, .events = POLLIN };
	uint64_t v;

	if (poll(&pfd, 1, BENCH_TICK_MS) > 0) {
		ssize_t n = read(s->efd, &v, sizeof(v));
		(void)n;	/* EAGAIN: another read took it; harmless */
	}
}

/* Setup and checks, one request at a time: commit the request begun with
 * bus_begin, then wait for its reply (events, request id 0, are skipped).
 * Returns the status, or -1 when the journal did not answer in time. */
static int bus_call(struct sender *s, uint32_t type, const struct ch_payload_writer *pw,
		    uint8_t *reply, size_t cap, size_t *reply_len)
{
	uint64_t id = bus_send(s, type, pw);
	if (!id)
		return -1;
	bus_flush(s);
	uint64_t deadline = now_ns() + BENCH_REPLY_MS * NS_PER_MS;
	while (now_ns() < deadline) {
		const uint8_t *p;
		uint32_t status, n;
		while ((p = ch_spsc_peek(s->out, &status, &n)) != NULL) {
			uint64_t got = 0;
			if (n >= sizeof(got))
				memcpy(&got, p, sizeof(got));
			if (got == id) {
				*reply_len = n - sizeof(got) < cap ? n - sizeof(got) : cap;
				memcpy(reply, p + sizeof(got), *reply_len);
				ch_spsc_pop(s->out);
				ch_spsc_release(s->out);
				return (int)status;
			}
			ch_spsc_pop(s->out);
		}
		ch_spsc_release(s->out);
		bus_wait(s);
	}
	return -1;
}

/* ---------------------------------------------------------------------- */
/* Senders                                                                */

static void send_one(struct sender *s)
{
	struct ch_payload_writer pw;

	/* Replies come back in request order (one ring each way, drained in
	 * order), so the requests in flight are the last n_senders made: a
	 * table of twice that, indexed by sequence, never collides. */
	struct pending *pe = &s->pending[s->next_seq & s->mask];
	if (pe->req_id) {
		sender_error(s, "worker %d: pending slot still taken (replies out of order?)",
			     s->index);
		return;
	}
	if (!bus_begin(s, &pw, (uint32_t)s->content_len + BENCH_REQ_SLACK)) {
		sender_error(s, "worker %d: ingress ring full", s->index);
		return;
	}
	ch_payload_put_str(&pw, BENCH_USER);
	ch_payload_put_str(&pw, BENCH_ROOM);
	ch_payload_put_str(&pw, "");		/* no client id */
	ch_payload_put_bytes(&pw, s->content, s->content_len);
	uint64_t id = bus_send(s, CH_REQ_SEND, &pw);
	if (!id) {
		sender_error(s, "worker %d: a send does not fit its buffer", s->index);
		return;
	}
	pe->req_id = id;
	pe->sent_ns = now_ns();
	s->outstanding++;
}

/* One reply: check it, count it. Returns 1 when it answered one of our
 * sends (that sender is free again), 0 for a reply nobody waits for. */
static int on_reply(struct sender *s, const uint8_t *p, uint32_t status, uint32_t len,
		    int phase)
{
	uint64_t id;
	memcpy(&id, p, sizeof(id));
	struct pending *pe = &s->pending[(uint32_t)id & s->mask];
	if (pe->req_id != id) {
		sender_error(s, "worker %d: reply to an unknown request %#" PRIx64, s->index, id);
		return 0;
	}
	uint64_t lat = now_ns() - pe->sent_ns;
	pe->req_id = 0;
	s->outstanding--;
	if (status != CH_BUS_OK) {
		sender_error(s, "worker %d: send answered with status %u", s->index, status);
		return 1;
	}
	struct ch_payload_reader rd;
	ch_payload_reader_init(&rd, p + sizeof(id), len - sizeof(id));
	uint64_t seq = ch_payload_get_u64(&rd);
	(void)ch_payload_get_u64(&rd);	/* ts */
	if (ch_payload_reader_finish(&rd) < 0 || seq == 0) {
		sender_error(s, "worker %d: malformed send reply", s->index);
		return 1;
	}
	if (seq > s->max_seq)
		s->max_seq = seq;
	atomic_store_explicit(&s->acks, atomic_load_explicit(&s->acks, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	if (phase == PHASE_MEASURE)
		ch_hist_record(&s->hist, lat);
	return 1;
}

static void *sender_main(void *arg)
{
	struct sender *s = arg;
	uint64_t stop_deadline = 0;

	for (int i = 0; i < s->n_senders; i++)
		send_one(s);
	bus_flush(s);
	while (s->outstanding > 0) {
		int phase = atomic_load_explicit(&bench_phase, memory_order_acquire);
		if (phase == PHASE_STOP) {
			uint64_t now = now_ns();
			if (!stop_deadline)
				stop_deadline = now + BENCH_REPLY_MS * NS_PER_MS;
			else if (now > stop_deadline) {
				sender_error(s, "worker %d: %u sends never answered", s->index,
					     s->outstanding);
				break;
			}
		}
		bus_wait(s);
		const uint8_t *p;
		uint32_t status, len;
		int made = 0;
		while ((p = ch_spsc_peek(s->out, &status, &len)) != NULL) {
			if (len < sizeof(uint64_t)) {
				sender_error(s, "worker %d: short reply record", s->index);
			} else {
				uint64_t id;
				memcpy(&id, p, sizeof(id));
				if (id != 0) {	/* 0: an event (journal/proto.h), not ours */
					if (on_reply(s, p, status, len, phase) &&
					    phase != PHASE_STOP) {
						send_one(s);
						made++;
					}
				}
			}
			ch_spsc_pop(s->out);
		}
		ch_spsc_release(s->out);
		if (made)
			bus_flush(s);	/* once per batch, as a worker's loop turn */
	}
	return NULL;
}

/* ---------------------------------------------------------------------- */
/* The journal child and its numbers                                      */

struct snapshot {
	uint64_t ns;
	uint64_t acks;
	uint64_t appends, fsyncs, batches, bytes, fsync_us;
	double journal_cpu;	/* s, user + sys */
	double self_cpu;	/* s, this process (the senders) */
};

static double self_cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void take_snapshot(struct snapshot *sn, const struct ch_stats *js, pid_t journal,
			  struct sender *snd, int n)
{
	sn->ns = now_ns();
	sn->acks = 0;
	for (int i = 0; i < n; i++)
		sn->acks += atomic_load_explicit(&snd[i].acks, memory_order_relaxed);
	sn->appends = CH_STAT_GET(js, journal_appends);
	sn->fsyncs = CH_STAT_GET(js, journal_fsyncs);
	sn->batches = CH_STAT_GET(js, journal_batches);
	sn->bytes = CH_STAT_GET(js, journal_bytes);
	sn->fsync_us = CH_STAT_GET(js, journal_fsync_us);
	int pid = (int)journal;
	sn->journal_cpu = ch_bench_proc_cpu(&pid, 1);
	sn->self_cpu = self_cpu_s();
}

static pid_t start_journal(const struct ch_config *cfg, const struct ch_shm *shm)
{
	pid_t pid = fork();
	if (pid < 0) {
		ch_err_sys("fork");
		return -1;
	}
	if (pid == 0) {
		/* Stop (cleanly: SIGTERM is the journal's stop signal) if the
		 * bench dies without stopping us. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		ch_log_set_name("journal");
		_exit(ch_journal_run(cfg, shm, 0));
	}
	return pid;
}

/* 0 once the journal says ready in its stats block; -1 if it died or took
 * too long. */
static int wait_ready(pid_t pid, const struct ch_stats *js, int *died)
{
	for (int waited = 0; waited < BENCH_READY_MS; waited += 10) {
		if (CH_STAT_GET(js, ready))
			return 0;
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			*died = 1;
			fprintf(stderr, "append_bench: the journal exited before it was ready "
				"(status %d)\n", WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st));
			return -1;
		}
		sleep_ms(10);
	}
	fprintf(stderr, "append_bench: the journal was not ready in %d ms\n", BENCH_READY_MS);
	return -1;
}

/* SIGTERM, as the master stops it; 0 when it stopped cleanly (exit 0). */
static int stop_journal(pid_t pid)
{
	int st = 0;

	kill(pid, SIGTERM);
	if (waitpid(pid, &st, 0) != pid) {
		ch_err_sys("waitpid(journal)");
		return -1;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "append_bench: the journal ended with %s %d\n",
			WIFEXITED(st) ? "exit status" : "signal",
			WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Setup and the final check, over worker 0's rings                       */

static int setup_state(struct sender *s0, struct sender *snd, int n)
{
	uint8_t reply[BENCH_REPLY_MAX];
	struct ch_payload_writer pw;
	size_t rlen;
	int st;

	/* Each worker says hello, as ch_bus_init does (the journal then drops
	 * what it knew of that slot's previous worker). No reply. */
	for (int i = 0; i < n; i++) {
		uint64_t hello[2] = { 0, (uint64_t)i };
		if (ch_spsc_push(snd[i].in, CH_REQ_HELLO, hello, sizeof(hello)) < 0)
			return -1;
		ch_shm_wake(snd[i].journal_efd);
	}
	if (!bus_begin(s0, &pw, 512))
		return -1;
	ch_payload_put_str(&pw, BENCH_USER);
	ch_payload_put_str(&pw, BENCH_HASH);
	if ((st = bus_call(s0, CH_REQ_REGISTER, &pw, reply, sizeof(reply), &rlen)) != CH_BUS_OK) {
		fprintf(stderr, "append_bench: register: status %d\n", st);
		return -1;
	}
	if (!bus_begin(s0, &pw, 512))
		return -1;
	ch_payload_put_str(&pw, BENCH_USER);
	ch_payload_put_str(&pw, BENCH_ROOM);
	ch_payload_put_u32(&pw, 0);	/* no other participants */
	if ((st = bus_call(s0, CH_REQ_CREATE_ROOM, &pw, reply, sizeof(reply), &rlen)) != CH_BUS_OK) {
		fprintf(stderr, "append_bench: create room: status %d\n", st);
		return -1;
	}
	return 0;
}

/* The room's last seq, or -1: from LIST_ROOMS, whose reply is the JSON
 * rooms array clients get (PROTOCOL.md), so its shape is a contract. */
static int64_t room_last_seq(struct sender *s0)
{
	uint8_t reply[BENCH_REPLY_MAX];
	char json[BENCH_REPLY_MAX];
	struct ch_payload_writer pw;
	size_t rlen = 0;
	int64_t seq = -1;

	if (!bus_begin(s0, &pw, 256))
		return -1;
	ch_payload_put_str(&pw, BENCH_USER);
	int st = bus_call(s0, CH_REQ_LIST_ROOMS, &pw, reply, sizeof(reply), &rlen);
	if (st != CH_BUS_OK) {
		fprintf(stderr, "append_bench: list rooms: status %d\n", st);
		return -1;
	}
	struct ch_payload_reader rd;
	ch_payload_reader_init(&rd, reply, rlen);
	ch_payload_get_str(&rd, json, sizeof(json));
	cJSON *rooms = ch_payload_reader_finish(&rd) == 0 ? cJSON_Parse(json) : NULL;
	const cJSON *room;
	cJSON_ArrayForEach(room, rooms) {
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(room, "id");
		const cJSON *last = cJSON_GetObjectItemCaseSensitive(room, "last_seq");
		if (cJSON_IsString(id) && strcmp(id->valuestring, BENCH_ROOM) == 0 &&
		    cJSON_IsNumber(last))
			seq = (int64_t)last->valuedouble;
	}
	cJSON_Delete(rooms);
	if (seq < 0)
		fprintf(stderr, "append_bench: no last_seq for room '%s' in the rooms list\n",
			BENCH_ROOM);
	return seq;
}

/* ---------------------------------------------------------------------- */
/* The data directory                                                     */

static const char *fs_name(long type)
{
	static char hex[24];
	switch ((unsigned long)type) {
	case 0xEF53: return "ext4";
	case 0x58465342: return "xfs";
	case 0x9123683E: return "btrfs";
	case 0x794c7630: return "overlay";
	case 0x2FC12FC1: return "zfs";
	case 0xF2F52010: return "f2fs";
	case 0x6969: return "nfs";
	case 0x65735546: return "fuse";
	case TMPFS_MAGIC_: return "tmpfs";
	case RAMFS_MAGIC_: return "ramfs";
	}
	snprintf(hex, sizeof(hex), "0x%lx", (unsigned long)type);
	return hex;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path) < 0)
		fprintf(stderr, "append_bench: remove %s: %s\n", path, strerror(errno));
	return 0;
}

/* ---------------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr, "usage: append_bench [-a write|fsync] [-s senders] [-w workers] "
		"[-d seconds] [-b bytes] [-D parent-dir] [-k]\n");
	exit(2);
}

static int parse_opts(int argc, char **argv, struct bench_opts *o)
{
	struct stat st;
	int c;

	*o = (struct bench_opts){ .ack = CH_ACK_FSYNC, .senders = 256, .workers = 2,
				  .seconds = 10, .bytes = 100 };
	o->parent = stat("./var", &st) == 0 && S_ISDIR(st.st_mode) ? "./var" : "/var/tmp";
	while ((c = getopt(argc, argv, "a:s:w:d:b:D:k")) != -1) {
		switch (c) {
		case 'a':
			if (strcmp(optarg, "write") == 0)
				o->ack = CH_ACK_WRITE;
			else if (strcmp(optarg, "fsync") == 0)
				o->ack = CH_ACK_FSYNC;
			else
				usage();
			break;
		case 's': o->senders = atoi(optarg); break;
		case 'w': o->workers = atoi(optarg); break;
		case 'd': o->seconds = atoi(optarg); break;
		case 'b': o->bytes = atoi(optarg); break;
		case 'D': o->parent = optarg; break;
		case 'k': o->keep = 1; break;
		default: usage();
		}
	}
	if (optind != argc || o->workers < 1 || o->workers > CH_MAX_WORKERS ||
	    o->senders < o->workers || o->senders > 1 << 20 || o->seconds < 1 ||
	    o->bytes < 1 || o->bytes > 65536)
		usage();
	return 0;
}

/* Attach snd[i] to worker i's rings and give it its share of senders. */
static int make_senders(const struct bench_opts *o, const struct ch_shm *shm,
			struct sender *snd, uint8_t *content)
{
	for (int i = 0; i < o->bytes; i++)
		content[i] = (uint8_t)('a' + i % 26);
	for (int i = 0; i < o->workers; i++) {
		struct sender *s = &snd[i];
		sender_attach(s, shm, i);
		s->n_senders = o->senders / o->workers + (i < o->senders % o->workers);
		uint32_t size = 1;
		while (size < 2u * (uint32_t)s->n_senders)
			size <<= 1;
		s->mask = size - 1;
		s->pending = calloc(size, sizeof(*s->pending));
		if (ch_hist_init(&s->hist) < 0) {
			free(s->pending);
			s->pending = NULL;
		}
		if (!s->pending)
			return -1;
		s->content = content;
		s->content_len = (size_t)o->bytes;
	}
	return 0;
}

/* Run the senders: warm-up, measure, stop. Fills the two snapshots. */
static int run_load(const struct bench_opts *o, struct sender *snd, const struct ch_stats *js,
		    pid_t journal, struct snapshot *a, struct snapshot *b, int *journal_died)
{
	int started = 0, rc = 0;

	for (; started < o->workers; started++)
		if ((errno = pthread_create(&snd[started].tid, NULL, sender_main, &snd[started]))) {
			ch_err_sys("pthread_create");
			rc = -1;
			break;
		}
	uint64_t end_warm = now_ns() + BENCH_WARMUP_MS * NS_PER_MS, end = UINT64_MAX;
	int phase = PHASE_WARMUP;
	while (rc == 0 && !bench_interrupted) {
		int st;
		if (waitpid(journal, &st, WNOHANG) == journal) {
			fprintf(stderr, "append_bench: the journal died during the run\n");
			*journal_died = 1;
			rc = -1;
			break;
		}
		uint64_t now = now_ns();
		if (phase == PHASE_WARMUP && now >= end_warm) {
			take_snapshot(a, js, journal, snd, o->workers);
			end = a->ns + (uint64_t)o->seconds * NS_PER_S;
			phase = PHASE_MEASURE;
			atomic_store_explicit(&bench_phase, phase, memory_order_release);
		} else if (phase == PHASE_MEASURE && now >= end) {
			take_snapshot(b, js, journal, snd, o->workers);
			break;
		}
		sleep_ms(BENCH_TICK_MS / 10);
	}
	if (bench_interrupted) {
		fprintf(stderr, "append_bench: interrupted; no result\n");
		rc = -1;
	}
	atomic_store_explicit(&bench_phase, PHASE_STOP, memory_order_release);
	for (int i = 0; i < started; i++)
		pthread_join(snd[i].tid, NULL);
	return rc;
}

static void report(const struct bench_opts *o, const char *fs, const char *dir,
		   const struct snapshot *a, const struct snapshot *b, const struct ch_hist *hist,
		   uint64_t errors)
{
	double secs = (double)(b->ns - a->ns) / 1e9;
	uint64_t acks = b->acks - a->acks, lat_n = hist->count;
	uint64_t fsyncs = b->fsyncs - a->fsyncs, appends = b->appends - a->appends;
	uint64_t batches = b->batches - a->batches;
	double jcpu = b->journal_cpu - a->journal_cpu, scpu = b->self_cpu - a->self_cpu;
	double rate = (double)acks / secs;
	const char *ack = o->ack == CH_ACK_FSYNC ? "fsync" : "write";

	double p50 = (double)ch_hist_percentile(hist, 50) / (double)NS_PER_MS;
	double p99 = (double)ch_hist_percentile(hist, 99) / (double)NS_PER_MS;
	double per_fsync = fsyncs ? (double)appends / (double)fsyncs : 0;

	printf("append_bench: ack = %s, %d senders over %d workers (one send in flight each), "
	       "%d-byte messages, %.2f s measured after %d ms warm-up\n", ack, o->senders,
	       o->workers, o->bytes, secs, BENCH_WARMUP_MS);
	printf("data dir:            %s on %s\n", dir, fs);
	printf("acked sends/s:       %.0f (%" PRIu64 " acks)\n", rate, acks);
	printf("journal batches:     %" PRIu64 " (%.1f records each, %.1f MB/s appended)\n",
	       batches, batches ? (double)appends / (double)batches : 0,
	       (double)(b->bytes - a->bytes) / 1e6 / secs);
	if (o->ack == CH_ACK_FSYNC)
		printf("fdatasyncs:          %" PRIu64 " (%.1f records and %.1f acks each, "
		       "%.2f ms each on average)\n", fsyncs, per_fsync,
		       fsyncs ? (double)acks / (double)fsyncs : 0,
		       fsyncs ? (double)(b->fsync_us - a->fsync_us) / 1000.0 / (double)fsyncs : 0);
	else
		printf("fdatasyncs:          %" PRIu64 " (ack = write: none expected)\n", fsyncs);
	printf("journal CPU:         %.2f s in %.2f s (%.0f%% of a core), %.0f acks per "
	       "journal CPU-second\n", jcpu, secs, 100.0 * jcpu / secs,
	       jcpu > 0 ? (double)acks / jcpu : 0);
	printf("senders' CPU:        %.2f s (this process, %d threads)\n", scpu, o->workers);
	printf("ack latency:         p50 %.3f ms, p99 %.3f ms (%" PRIu64 " samples)\n", p50,
	       p99, lat_n);
	printf("result: ack=%s senders=%d workers=%d bytes=%d secs=%.2f acked_per_s=%.0f "
	       "records_per_fsync=%.2f fsyncs=%" PRIu64 " journal_cpu_s=%.2f sender_cpu_s=%.2f "
	       "p50_ms=%.3f p99_ms=%.3f fs=%s errors=%" PRIu64 "\n", ack, o->senders, o->workers,
	       o->bytes, secs, rate, per_fsync, fsyncs, jcpu, scpu, p50, p99, fs, errors);
}

/* Everything once the journal is ready: set up, load, check, report.
 * Returns 0 for a clean run. */
static int bench_run(const struct bench_opts *o, struct sender *snd, pid_t journal,
		     const struct ch_stats *js, const char *fs, const char *dir,
		     int *journal_died)
{
	struct ch_hist hist;
	struct snapshot a = { 0 }, b = { 0 };
	uint64_t errors = 0, acked = 0, max_seq = 0;

	if (ch_hist_init(&hist) < 0 || setup_state(&snd[0], snd, o->workers) < 0) {
		ch_hist_free(&hist);
		return -1;
	}
	int rc = run_load(o, snd, js, journal, &a, &b, journal_died);
	for (int i = 0; i < o->workers; i++) {
		errors += snd[i].errors;
		acked += atomic_load_explicit(&snd[i].acks, memory_order_relaxed);
		if (snd[i].max_seq > max_seq)
			max_seq = snd[i].max_seq;
		if (snd[i].errors)
			fprintf(stderr, "append_bench: %" PRIu64 " errors on worker %d; first: %s\n",
				snd[i].errors, i, snd[i].first_error);
		ch_hist_merge(&hist, &snd[i].hist);
	}
	/* Every send was answered (or counted as an error), so the room holds
	 * at least the acked ones; more only if a send failed after storing. */
	int64_t stored = *journal_died ? -1 : room_last_seq(&snd[0]);
	int consistent = stored >= 0 && acked <= (uint64_t)stored && max_seq <= (uint64_t)stored;
	if (rc == 0 && b.ns)
		report(o, fs, dir, &a, &b, &hist, errors);
	printf("stored check:        %" PRIu64 " sends acked in all (warm-up included), room "
	       "last seq %" PRId64 ", largest seq acked %" PRIu64 ": %s\n", acked, stored, max_seq,
	       !consistent ? "MISMATCH" : acked == (uint64_t)stored ?
	       "ok, every stored send was acked" : "ok");
	printf("errors:              %" PRIu64 "\n", errors);
	ch_hist_free(&hist);
	return rc == 0 && errors == 0 && consistent ? 0 : -1;
}

static void free_senders(struct sender *snd, int n)
{
	for (int i = 0; snd && i < n; i++) {
		free(snd[i].pending);
		ch_hist_free(&snd[i].hist);
	}
	free(snd);
}

int main(int argc, char **argv)
{
	struct bench_opts o;
	struct ch_config cfg;
	struct ch_shm shm;
	struct statfs sfs;
	char dir[CH_PATH_MAX], err[CH_CONFIG_ERR_MAX], text[CH_PATH_MAX + 256];
	struct sender *snd = NULL;
	uint8_t *content = NULL;
	int status = 1, journal_died = 0, shm_made = 0;
	pid_t journal = -1;

	parse_opts(argc, argv, &o);
	ch_log_set_name("append_bench");
	if (statfs(o.parent, &sfs) < 0) {
		fprintf(stderr, "append_bench: statfs %s: %s\n", o.parent, strerror(errno));
		return 1;
	}
	const char *fs = fs_name((long)sfs.f_type);
	if ((unsigned long)sfs.f_type == TMPFS_MAGIC_ || (unsigned long)sfs.f_type == RAMFS_MAGIC_) {
		fprintf(stderr, "append_bench: %s is on %s, where fsync is free; give -D a "
			"directory on a disk\n", o.parent, fs);
		return 1;
	}
	snprintf(dir, sizeof(dir), "%s/append_bench.XXXXXX", o.parent);
	if (!mkdtemp(dir)) {
		fprintf(stderr, "append_bench: mkdtemp %s: %s\n", dir, strerror(errno));
		return 1;
	}
	snprintf(text, sizeof(text), "[server]\nworkers = %d\ndata_dir = %s\nlog_level = warn\n"
		 "[journal]\nack = %s\n", o.workers, dir,
		 o.ack == CH_ACK_FSYNC ? "fsync" : "write");
	if (ch_config_load_string(&cfg, "append_bench", text, err, sizeof(err)) < 0) {
		fprintf(stderr, "append_bench: config: %s\n", err);
		goto out;
	}
	ch_log_set_level((enum ch_log_level)cfg.log_level);
	if (ch_shm_create(&shm, (uint32_t)cfg.room_rings, (uint32_t)cfg.ring_slots,
			  (uint32_t)cfg.ring_slot_size) < 0)
		goto out;
	shm_made = 1;
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	content = malloc((size_t)o.bytes);
	snd = calloc((size_t)o.workers, sizeof(*snd));
	if (!content || !snd || make_senders(&o, &shm, snd, content) < 0)
		goto out;
	const struct ch_stats *js = ch_shm_stats(&shm, CH_SHM_PROC_JOURNAL);
	journal = start_journal(&cfg, &shm);
	if (journal < 0 || wait_ready(journal, js, &journal_died) < 0)
		goto out;
	if (bench_run(&o, snd, journal, js, fs, dir, &journal_died) == 0)
		status = 0;
out:
	if (journal > 0 && !journal_died && stop_journal(journal) < 0)
		status = 1;
	free_senders(snd, o.workers);
	free(content);
	if (shm_made)
		ch_shm_destroy(&shm);
	if (o.keep)
		fprintf(stderr, "append_bench: kept %s\n", dir);
	else
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return status;
}
