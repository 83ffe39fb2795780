/*
 * The control channel between the master and one worker: a SOCK_SEQPACKET
 * socketpair made by the master before it forks the worker. The master
 * keeps one end, the worker the other. Each datagram is one message: a
 * struct ch_ctl_hdr, then len bytes of payload.
 *
 * Master -> worker: a new configuration to swap in, reopen the log files,
 * retire, connections to adopt, and the questions chatadm asks that only
 * the workers can answer (who is online, which rooms have members here,
 * close a user's connections).
 * Worker -> master: one answer per question, with the same id, its payload
 * a JSON value. The worker looks at the channel once per timer tick
 * (CH_WORKER_TICK_MS), never blocks on it, and answers within that tick, so
 * the master waits at most a tick or two for every worker.
 *
 * Handing connections over: when a reload lowers `workers`, the master
 * closes its copies of the retiring worker's listening sockets and sends it
 * CH_CTL_RETIRE. The worker stops accepting, accepts what is left in its
 * backlog, and sends each HTTP connection that is between requests (or
 * part way through a request head) to the master as CH_CTL_ADOPT with the
 * socket attached (SCM_RIGHTS) and the bytes read so far; the master
 * forwards each to a worker that stays, round robin, which serves it from
 * there; WebSocket connections likewise, with their state (see struct
 * ch_handoff_conn). A connection moves only once no receive is in flight
 * on it (the receive is cancelled first and its completion awaited), so
 * no byte the client sent is lost, and (WebSocket) once nothing is owed to
 * the client. One that cannot move within CH_HANDOFF_WAIT_MS is closed as
 * when stopping. The master reads a retiring worker's channel to the end
 * before closing it, so connections sent just before it exited still go.
 * An upgrade (master.c) uses the same path, with the master naming the
 * worker that takes the connections.
 *
 * Invariant: a worker applies a configuration only after the master has
 * validated it; it takes the whole struct (plain data) and swaps its
 * pointer, so no request ever sees half of an old and half of a new one.
 */
#ifndef CH_HANDOFF_H
#define CH_HANDOFF_H

#include "master/config.h"

#include <stddef.h>
#include <stdint.h>

#define CH_CTL_MSG_MAX (96u * 1024)	/* one datagram; answers are cut to fit */
#define CH_CTL_SOCKBUF (1u << 20)	/* asked for; the kernel may give less */

enum ch_ctl_type {
	CH_CTL_CONFIG = 1,	/* payload: struct ch_config; answer: {"gen":n} */
	CH_CTL_REOPEN,		/* no payload; answer: {"reopened":bool} */
	CH_CTL_USERS,		/* no payload; answer: [{"user","conns","rooms"}] */
	CH_CTL_ROOMS,		/* no payload; answer: [{"room","members","seq"}] */
	CH_CTL_KICK,		/* payload: a user name; answer: {"closed":n} */
	CH_CTL_RETIRE,		/* no payload, no answer: hand over, then exit */
	CH_CTL_ADOPT,		/* a connection, its fd attached (SCM_RIGHTS):
				 * retiring worker -> master -> another worker;
				 * payload struct ch_handoff_conn + input bytes */
	/* New types go last: an upgraded worker talks to the old master. */
	CH_CTL_RMFILE,		/* payload: a file id; answer, once journalled and
				 * deleted: {"removed":bool} or {"error":text} */
	CH_CTL_ANSWER = 0x100,	/* or-ed into the type of an answer */
};

struct ch_ctl_hdr {
	uint32_t type;		/* enum ch_ctl_type */
	uint32_t id;		/* chosen by the master, echoed in the answer */
	uint32_t len;		/* payload bytes after the header */
	uint32_t truncated;	/* 1: the answer was cut to CH_CTL_MSG_MAX */
};

/*
 * A connection handed over. HTTP connections move between requests
 * (keep-alive, accepted and not yet read, or part way through a head):
 * the socket and the head bytes already read. WebSocket connections move
 * once nothing is owed to the client and nothing it sent awaits an
 * answer: the socket, the user, the rooms joined with the next seq each
 * must get, and the frame parser as it stands (a frame may be half read);
 * the new worker rejoins the rooms from there without a word to the
 * client, and replays what came meanwhile.
 */
struct ch_handoff_conn {
	uint32_t kind;		/* CH_HANDOFF_HTTP */
	uint32_t requests;	/* served on it so far */
	uint32_t in_len;	/* input bytes after this struct */
	uint32_t pad;
};

#define CH_HANDOFF_HTTP 1	/* input bytes follow */
#define CH_HANDOFF_WS 2		/* no input bytes; wsconn.c's state follows */
#define CH_HANDOFF_PER_TICK 4096	/* connections moved per tick, at most */
#define CH_HANDOFF_WAIT_MS 3000		/* then what could not move is closed */
/* A moved WebSocket's user is reported gone here this much later, after
 * the new worker has reported it there (a tick or two), so the user's
 * presence does not blink offline. */
#define CH_HANDOFF_PRESENCE_DELAY_MS 500

struct ch_worker;
struct ch_conn;

/* Master: make the pair; *master_end and *worker_end are close-on-exec. */
int ch_ctl_pair(int *master_end, int *worker_end);

/* Send one message (non-blocking); 0 or -errno. */
int ch_ctl_send(int fd, uint32_t type, uint32_t id, const void *payload, size_t len,
		int truncated);

/* The same with a descriptor attached (pass_fd >= 0), sent with SCM_RIGHTS. */
int ch_ctl_send_fd(int fd, uint32_t type, uint32_t id, const void *payload, size_t len,
		   int pass_fd);

/* Receive one message into buf (cap bytes, header included); returns the
 * payload length and fills *hdr, or -errno (-EAGAIN: nothing waiting).
 * A descriptor passed with it is closed (see ch_ctl_recv_fd). */
long ch_ctl_recv(int fd, struct ch_ctl_hdr *hdr, void *buf, size_t cap);

/* The same, giving the passed descriptor (close-on-exec) in *passed, or
 * -1 when the message carried none. */
long ch_ctl_recv_fd(int fd, struct ch_ctl_hdr *hdr, void *buf, size_t cap, int *passed);

/*
 * io_uring set-up problems, said once with their fix: ch_uring_explain logs
 * why io_uring_queue_init failed with err (-errno) and what to change
 * (kernel.io_uring_disabled, RLIMIT_MEMLOCK on kernels that charge rings to
 * it, a seccomp filter or an old kernel). ch_uring_probe sets up and tears
 * down a small ring: the master calls it before forking, so a machine that
 * cannot run io_uring stops chatd at once with the reason instead of
 * sending its workers into a restart loop. 0, or -1 (explained).
 */
void ch_uring_explain(int err);
int ch_uring_probe(void);

/* Worker: the channel end it inherited (set before ch_worker_run). */
void ch_handoff_set_ctl(int fd);
int ch_handoff_get_ctl(void);

/* Worker: answer whatever the master sent since the last tick, adopt the
 * connections it forwarded, and (retiring) hand over those ready to go. */
void ch_handoff_tick(struct ch_worker *w);

/* Answer the master's question id of this type later than the tick it
 * came in (the question started work that finishes on its own). */
void ch_handoff_answer(struct ch_worker *w, uint32_t type, uint32_t id, const char *json,
		       size_t len);

/* Worker: 1 once the master asked it to retire (hand over, then exit). */
int ch_handoff_retiring(void);

/* Worker, retiring: take c to hand over if it is an HTTP connection
 * between requests (its receive is paused; it goes at the next tick once
 * the kernel confirms no receive is in flight). 1 if taken, 0 if the
 * caller should deal with it as when stopping. */
int ch_handoff_offer(struct ch_worker *w, struct ch_conn *c);

/* Worker, retiring: a socket accepted but not read (the rest of our
 * listening socket's backlog): hand it over at once. */
void ch_handoff_offer_fd(struct ch_worker *w, int fd);

/* Worker, retiring: accept what waits in a listening socket's backlog and
 * hand it over, before the socket is closed. */
void ch_handoff_drain_listener(struct ch_worker *w, int listen_fd);

/* Worker: 1 while connections wait to move or presence reports to go
 * (a retiring worker stays until then). */
int ch_handoff_busy(void);

/* worker.c: serve a connection handed to us, with the input bytes the
 * other worker had read; the connection, or NULL (closed) when we are
 * full or stopping. */
struct ch_conn *ch_worker_adopt(struct ch_worker *w, int fd, uint32_t requests, const char *in,
				size_t in_len);

#endif
