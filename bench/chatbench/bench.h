/*
 * chatbench's shared types: the settings of a run, the run every thread
 * sees, one event loop per thread with its connections, and the counters.
 *
 * Ownership: a thread alone touches its loop, its connections, its
 * histogram and its counters; the main thread reads the counters while the
 * threads run (relaxed loads of single-writer atomics: a progress line may
 * be a few events stale) and everything else only after pthread_join.
 * Cross-thread state is in struct ch_bench_run, each atomic commented with
 * the access it pairs with. The functions are in loop.h (the event loops)
 * and scen.h (the scenarios).
 */
#ifndef CH_BENCH_H
#define CH_BENCH_H

#include <liburing.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "bench/chatbench/hist.h"
#include "client/wsc.h"
#include "common/buf.h"

#define CH_BENCH_MAX_PIDS	16	/* --server-pid may be given this often */
#define CH_BENCH_MAX_NAME	64	/* a room id or user name, NUL included */
#define CH_BENCH_MAX_TOKEN	1024

enum ch_bench_scenario {
	CH_SCEN_FANOUT,		/* R rooms x M members, one sender per room */
	CH_SCEN_BROADCAST,	/* every member sends once per round; rounds wait for all */
	CH_SCEN_IDLE,		/* hold connections, ping; server memory per connection */
	CH_SCEN_CONNECT,	/* connect + handshake + join, close, again */
	CH_SCEN_HISTORY		/* GET /api/history/ROOM, keep-alive; closed loop, or open at --rate */
};

enum ch_bench_proto {
	CH_PROTO_CHATD,		/* PROTOCOL.md: /ws/ROOM, send frames, msg frames with seq */
	CH_PROTO_RAW		/* /ROOM on a broadcast server: text in, text to all */
};

struct ch_bench_opts {
	enum ch_bench_scenario scenario;
	enum ch_bench_proto proto;
	char host[256];			/* for connect(2): a numeric IPv4 address */
	char port[8];
	char hostport[272];		/* for Host: and the REST calls */
	struct in_addr addr;
	unsigned threads;
	unsigned conns;
	unsigned rooms;
	double rate;			/* fanout: messages/s per room; history: requests/s in all;
					   0 = closed loop (as fast as the window or answers allow) */
	unsigned window;		/* max mode: unanswered messages per sender */
	unsigned size;			/* payload bytes */
	unsigned duration_ms;
	unsigned ramp_ms;
	unsigned drain_ms;
	unsigned ping_ms;
	unsigned limit;			/* history: ?limit= */
	unsigned fill;			/* --prepare: messages put in each room first */
	int prepare;
	char user[CH_BENCH_MAX_NAME];
	char password[257];
	unsigned users;			/* connections use users in turn */
	char prefix[CH_BENCH_MAX_NAME];	/* rooms are PREFIX-0 .. PREFIX-(R-1) */
	char token[CH_BENCH_MAX_TOKEN];	/* --token: skip the login */
	int pids[CH_BENCH_MAX_PIDS];
	unsigned npids;
	unsigned source_addrs;		/* 0 = as many as -c needs */
	int json;
};

/*
 * Counters, X-macro style (memcached's habit): one list makes the struct,
 * the summing and the printing. Measured ones count only during the
 * measured phase; the others over the whole run.
 */
#define CH_BENCH_COUNTERS(X) \
	X(sent,      "messages (or requests) sent while measuring") \
	X(delivered, "messages received while measuring") \
	X(acks,      "chatd acks received while measuring") \
	X(pongs,     "pongs received while measuring") \
	X(connects,  "connections completed (scenario connect) while measuring") \
	X(responses, "history responses to requests sent while measuring") \
	X(resp_bytes, "history response bytes of those") \
	X(late,      "history at --rate: requests due while no connection was free") \
	X(rounds,    "broadcast rounds completed by this thread") \
	X(dup,       "duplicated or reordered deliveries, whole run") \
	X(gaps,      "seq gaps seen on arrival, whole run") \
	X(unique,    "distinct messages received, whole run") \
	X(total_sent, "messages sent, whole run") \
	X(attempts,  "connection attempts, whole run")

#define CH_BENCH_ERRORS(X) \
	X(connect,       "connect(2) failed") \
	X(handshake,     "upgrade refused or malformed") \
	X(protocol,      "malformed WebSocket frame or JSON from the server") \
	X(closed,        "connection closed by the server") \
	X(slow_consumer, "closed by the server with 1013 (read too slowly)") \
	X(server_error,  "chatd error frame") \
	X(bad_payload,   "a delivery whose content is not a chatbench payload") \
	X(round_timeout, "broadcast round not complete within the timeout") \
	X(http,          "history answer that is not 200") \
	X(backlog,       "a send skipped: the connection's queue was full") \
	X(io,            "send or receive failed")

struct ch_bench_stats {
#define CH_X(name, text) _Atomic uint64_t name;
	CH_BENCH_COUNTERS(CH_X)
#undef CH_X
#define CH_X(name, text) _Atomic uint64_t err_##name;
	CH_BENCH_ERRORS(CH_X)
#undef CH_X
	_Atomic uint64_t open;		/* connections open now (a gauge) */
	_Atomic uint64_t opening;	/* connects and handshakes in progress (a gauge) */
	_Atomic uint64_t in_flight;	/* history requests sent, not answered (a gauge) */
};

/* Single writer: a plain add without a locked instruction. */
#define CH_BENCH_ADD(st, field, n) \
	atomic_store_explicit(&(st)->field, \
		atomic_load_explicit(&(st)->field, memory_order_relaxed) + (n), memory_order_relaxed)
#define CH_BENCH_GET(st, field) atomic_load_explicit(&(st)->field, memory_order_relaxed)

enum ch_bench_phase {
	CH_PHASE_CONNECT,	/* opening connections (the ramp-up) */
	CH_PHASE_RUN,		/* measuring */
	CH_PHASE_DRAIN,		/* no new sends; waiting for what is in flight */
	CH_PHASE_DONE		/* loops return */
};

enum ch_bench_conn_state {
	CH_CONN_IDLE,		/* no socket (not opened yet, or closed) */
	CH_CONN_CONNECTING,
	CH_CONN_HANDSHAKE,	/* upgrade request sent, waiting for 101 */
	CH_CONN_JOINING,	/* chatd: waiting for "joined" */
	CH_CONN_OPEN
};

struct ch_bench_conn {
	int fd;
	uint32_t id;		/* global: 0 .. conns-1 */
	uint32_t slot;		/* index in its thread's array (user_data) */
	uint32_t room;
	uint32_t member;	/* index among the room's members */
	int32_t sender;		/* index among the room's senders; -1: only receives */
	uint8_t state;
	uint8_t closing;	/* shut down; the fd is closed when ops reaches 0 */
	uint8_t send_busy;	/* a send is in flight (from inflight) */
	uint8_t recv_armed;	/* a multishot receive is armed */
	uint8_t dirty;		/* on the thread's flush list */
	uint16_t ops;		/* SQEs in flight for this connection */
	char key[CH_WSC_KEY_LEN + 1];
	struct ch_wsc_parser parser;
	struct ch_buf in;	/* handshake or HTTP bytes not consumed yet */
	struct ch_buf out;	/* queued, not yet handed to the kernel */
	struct ch_buf inflight;	/* being sent */
	size_t inflight_off;
	uint64_t t_start;	/* connect or request start, ns */
	/* receiving: duplicate and loss checks */
	uint64_t last_seq;	/* chatd: the room seq last seen */
	uint64_t *last_ctr;	/* raw: per sender of the room, the counter last seen */
	/* sending */
	uint64_t counter;	/* payload counter, last used */
	uint32_t unanswered;	/* max mode: sent, own delivery not back yet; history: 1 while a request is out */
	uint32_t round_sent;	/* broadcast: round + 1 last sent for */
	uint64_t next_due;	/* fixed rate: intended time of the next message */
	uint64_t next_ping;
};

struct ch_bench_run;

struct ch_bench_thread {
	struct ch_bench_run *run;
	unsigned index;
	pthread_t tid;
	struct io_uring ring;
	struct io_uring_buf_ring *br;
	size_t br_bytes;
	uint8_t *bufs;
	int efd;		/* woken by another thread: a broadcast round began */
	uint64_t efd_val;
	struct ch_bench_conn *conns;
	uint32_t nconns;
	uint32_t next_open;	/* ramp-up: the next slot to open */
	uint32_t connecting;	/* connects and handshakes in progress */
	int phase;		/* the run's phase, loaded once per batch */
	uint64_t t_ramp;	/* ns: when this thread began opening connections */
	int kicked;		/* history: first requests sent */
	/*
	 * History at --rate (open loop): request k of this thread is due at
	 * t_run + (k * threads + index) / rate seconds, so the threads'
	 * schedules interleave into one of the total rate. Idle keep-alive
	 * connections wait in a FIFO ring (each gets its turn, so none sits
	 * idle long enough for the server to close it); a request due while
	 * the ring is empty waits for the next connection that frees up.
	 */
	uint64_t hist_k;	/* the next request to send */
	uint64_t hist_due;	/* ns: when request hist_k is due */
	uint64_t late_k;	/* requests below this one have been counted late */
	uint32_t *idle;		/* the ring of idle connections' slots (nconns long) */
	uint32_t idle_head;
	uint32_t nidle;
	uint32_t ping_cursor;	/* idle: the next slot to ping */
	uint32_t *dirty;	/* slots with output to flush */
	uint32_t ndirty;
	uint32_t *senders;	/* slots that send */
	uint32_t nsenders;
	uint32_t *rearm;	/* slots whose multishot receive ended */
	uint32_t nrearm;
	uint64_t now;		/* ns, CLOCK_MONOTONIC, once per batch */
	uint64_t wake_at;	/* ns: the next timer a scenario needs (0: none), set by its tick */
	uint64_t bc_round;	/* broadcast: the round this thread works on */
	uint64_t bc_count;	/* deliveries of bc_round not yet added to the run */
	uint64_t bc_sent;	/* broadcast: round + 1 this thread's members sent for */
	uint8_t *scratch;	/* payload + frame building */
	size_t scratch_cap;
	struct ch_hist hist;
	struct ch_bench_stats st;
	/*
	 * Per room, distinct deliveries to this thread's members: written by
	 * this thread alone (relaxed), read relaxed by the fanout senders of
	 * every thread to see how far behind the slowest loop is.
	 */
	_Atomic uint64_t *room_recv;
	int failed;		/* setup failed: the run is void */
};

struct ch_bench_run {
	struct ch_bench_opts o;
	char (*tokens)[CH_BENCH_MAX_TOKEN];	/* o.users of them */
	char (*names)[CH_BENCH_MAX_NAME];	/* per room: its id */
	char (*paths)[CH_BENCH_MAX_TOKEN + 2 * CH_BENCH_MAX_NAME];	/* per room: the upgrade path */
	/* Per room, connections open now: relaxed adds by the loops, read by main at RUN. */
	_Atomic uint32_t *room_open;
	/* Per room, members open when measuring began: main writes before storing RUN. */
	uint32_t *members_run;
	uint32_t senders_per_room;		/* fanout 1, broadcast members */
	struct ch_bench_thread *threads;
	struct sockaddr_in server;
	uint32_t conns_per_addr;		/* source addresses: 127.0.0.(1 + id / this) */
	/* Written by main before storing phase (release); read after the load. */
	uint64_t t_run;				/* ns: the measured phase began */
	/* Main stores (release), threads load (acquire) each batch. */
	_Atomic int phase;
	/*
	 * Broadcast: round in the high 32 bits, deliveries of that round in
	 * the low ones. Threads add with compare-and-swap (acq_rel); the one
	 * whose add completes the round moves it on and wakes the others;
	 * main moves a round on that timed out the same way.
	 */
	_Atomic uint64_t bcast;
	uint64_t bcast_need;			/* deliveries per round; main sets it before RUN */
	/* Per room, messages sent over the whole run (relaxed adds; read after join). */
	_Atomic uint64_t *room_sent;
};

static inline uint64_t ch_bench_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif
