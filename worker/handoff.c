/*
 * The master <-> worker control channel: see handoff.h.
 *
 * Owns: the worker's end of the channel; the configurations the worker
 * ran with after reloads (each a copy, never freed: see apply_config);
 * whether the worker retires; the connections it offered to hand over.
 */
#define _GNU_SOURCE
#include "worker/handoff.h"

#include "common/auth.h"
#include "common/buf.h"
#include "common/log.h"
#include "worker/bus.h"
#include "worker/upload.h"
#include "worker/worker.h"
#include "worker/ws.h"
#include "worker/wsconn.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

_Static_assert(sizeof(struct ch_config) + sizeof(struct ch_ctl_hdr) <= CH_CTL_MSG_MAX,
	       "a configuration must fit one control message");

static int ctl_fd = -1;
static int retiring;
/* Connections offered for handover, waiting for their receive to end. */
static struct {
	uint32_t *slot, *gen;
	uint32_t n, cap;
	uint64_t deadline_ms;	/* past it, what has not moved is closed */
} offered;
/* Users of moved WebSocket connections, reported gone a little later. */
struct handoff_gone {
	char user[CH_USERNAME_MAX + 1];
	int idle;
	uint64_t due_ms;
};
static struct {
	struct handoff_gone *v;
	uint32_t n, cap;
} gone;

int ch_ctl_pair(int *master_end, int *worker_end)
{
	int sv[2];
	int size = CH_CTL_SOCKBUF;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0) {
		ch_err_sys("socketpair(control)");
		return -1;
	}
	for (int i = 0; i < 2; i++) {
		/* Best effort: past net.core.wmem_max the kernel caps it,
		 * and answers are cut to CH_CTL_MSG_MAX anyway. */
		setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
		setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	}
	*master_end = sv[0];
	*worker_end = sv[1];
	return 0;
}

int ch_ctl_send_fd(int fd, uint32_t type, uint32_t id, const void *payload, size_t len,
		   int pass_fd)
{
	struct ch_ctl_hdr h = { .type = type, .id = id, .len = (uint32_t)len };
	struct iovec iov[2] = {
		{ .iov_base = &h, .iov_len = sizeof(h) },
		{ .iov_base = (void *)payload, .iov_len = len },
	};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };

	if (pass_fd >= 0) {
		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.buf;
		msg.msg_controllen = sizeof(ctl.buf);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &pass_fd, sizeof(int));
	}
	if (sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		return -errno;
	return 0;
}

int ch_ctl_send(int fd, uint32_t type, uint32_t id, const void *payload, size_t len,
		int truncated)
{
	struct ch_ctl_hdr h = { .type = type, .id = id, .len = (uint32_t)len,
				.truncated = (uint32_t)truncated };
	struct iovec iov[2] = {
		{ .iov_base = &h, .iov_len = sizeof(h) },
		{ .iov_base = (void *)payload, .iov_len = len },
	};
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };

	if (sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		return -errno;
	return 0;
}

long ch_ctl_recv_fd(int fd, struct ch_ctl_hdr *hdr, void *buf, size_t cap, int *passed)
{
	struct iovec iov[2] = {
		{ .iov_base = hdr, .iov_len = sizeof(*hdr) },
		{ .iov_base = buf, .iov_len = cap },
	};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2,
			      .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
	ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

	*passed = -1;
	if (n < 0)
		return -errno;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
		    cm->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(passed, CMSG_DATA(cm), sizeof(int));
	if (n == 0)
		return -EPIPE;	/* the other end closed */
	if ((size_t)n < sizeof(*hdr) || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
	    (size_t)n - sizeof(*hdr) != hdr->len) {
		if (*passed >= 0)
			close(*passed);
		*passed = -1;
		return -EPROTO;
	}
	return (long)hdr->len;
}

long ch_ctl_recv(int fd, struct ch_ctl_hdr *hdr, void *buf, size_t cap)
{
	int passed;
	long n = ch_ctl_recv_fd(fd, hdr, buf, cap, &passed);

	if (passed >= 0)
		close(passed);	/* nobody asked for one */
	return n;
}

void ch_handoff_set_ctl(int fd)
{
	ctl_fd = fd;
}

int ch_handoff_get_ctl(void)
{
	return ctl_fd;
}

/* ---------------------------------------------------------------------- */
/* io_uring set-up                                                        */

#define CH_URING_DISABLED_PATH "/proc/sys/kernel/io_uring_disabled"
#define CH_URING_PROBE_ENTRIES 8

static long read_sysctl(const char *path)
{
	char buf[32];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return strtol(buf, NULL, 10);
}

void ch_uring_explain(int err)
{
	long disabled = read_sysctl(CH_URING_DISABLED_PATH);
	struct rlimit rl;

	ch_err("io_uring_queue_init: %s", strerror(-err));
	switch (-err) {
	case EPERM:
	case EACCES:
		if (disabled == 2)
			ch_err("io_uring is disabled on this machine (kernel.io_uring_disabled = 2): "
			       "run 'sysctl -w kernel.io_uring_disabled=0' (and set it in "
			       "/etc/sysctl.d/ to keep it)");
		else if (disabled == 1)
			ch_err("io_uring is limited to one group (kernel.io_uring_disabled = 1): add "
			       "chatd's user to the group kernel.io_uring_group names, or set "
			       "kernel.io_uring_disabled=0");
		else
			ch_err("io_uring was refused: a seccomp filter (a container runtime's or a "
			       "unit's SystemCallFilter=) may block io_uring_setup; allow it");
		break;
	case ENOMEM:
		if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
			ch_err("io_uring needs locked memory on this kernel and RLIMIT_MEMLOCK is "
			       "%llu KiB: raise it (LimitMEMLOCK=64M in the unit, 'ulimit -l 65536', "
			       "or memlock in /etc/security/limits.conf)",
			       (unsigned long long)rl.rlim_cur / 1024);
		else
			ch_err("io_uring ran out of memory: free some, or lower max_connections");
		break;
	case ENOSYS:
		ch_err("this kernel has no io_uring (or it is blocked as ENOSYS): chatd needs "
		       "Linux 5.19 or later");
		break;
	default:
		break;
	}
}

int ch_uring_probe(void)
{
	struct io_uring ring;
	int rc = io_uring_queue_init(CH_URING_PROBE_ENTRIES, &ring, 0);

	if (rc < 0) {
		ch_uring_explain(rc);
		return -1;
	}
	io_uring_queue_exit(&ring);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Worker side                                                            */

static void reopen_access_log(struct ch_worker *w)
{
	ch_worker_access_log_flush(w);
	if (w->access_fd >= 0)
		close(w->access_fd);
	free(w->access_buf);
	w->access_fd = -1;
	w->access_buf = NULL;
	w->access_len = 0;
	ch_worker_access_log_open(w);
}

static void apply_config(struct ch_worker *w, const void *p, size_t len, struct ch_buf *ans)
{
	if (len != sizeof(struct ch_config)) {
		ch_buf_puts(ans, "{\"error\":\"configuration of the wrong size\"}");
		return;
	}
	/* A fresh copy each time, and the old ones kept: a pool thread may
	 * still be reading one (a reload is rare; each costs one struct). */
	struct ch_config *next = malloc(sizeof(*next));
	int access_changed;

	if (!next) {
		ch_buf_puts(ans, "{\"error\":\"out of memory\"}");
		return;
	}
	memcpy(next, p, sizeof(*next));
	access_changed = strcmp(next->access_log, w->cfg->access_log) != 0;
	/* Settings the loop reads per request (timeouts, body size, token
	 * lifetime) take effect from the next request on. */
	w->cfg = next;
	ch_log_set_level((enum ch_log_level)next->log_level);
	if (access_changed)
		reopen_access_log(w);
	ch_buf_printf(ans, "{\"applied\":true,\"access_log_reopened\":%s}",
		      access_changed ? "true" : "false");
}

/* The answer to question `id` of `type`; the master waits for it. */
static void send_answer(const struct ch_worker *w, uint32_t type, uint32_t id, const char *json,
			size_t len, int truncated)
{
	int rc = ch_ctl_send(ctl_fd, type | CH_CTL_ANSWER, id, json, len, truncated);

	if (rc < 0)
		ch_warn("worker %d: control answer: %s", w->index, strerror(-rc));
}

static void handle(struct ch_worker *w, const struct ch_ctl_hdr *h, const char *p, size_t len)
{
	struct ch_buf ans;
	size_t max = CH_CTL_MSG_MAX - 64;	/* room to close the JSON */
	int truncated = 0;

	ch_buf_init(&ans);
	switch (h->type) {
	case CH_CTL_CONFIG:
		apply_config(w, p, len, &ans);
		break;
	case CH_CTL_REOPEN:
		reopen_access_log(w);
		ch_buf_printf(&ans, "{\"reopened\":%s}", w->access_fd >= 0 ? "true" : "false");
		break;
	case CH_CTL_USERS:
		ch_ws_admin_users(w, &ans, max);
		truncated = ans.len >= max;
		break;
	case CH_CTL_ROOMS:
		ch_ws_admin_rooms(w, &ans, max);
		truncated = ans.len >= max;
		break;
	case CH_CTL_KICK: {
		char user[CH_PATH_MAX];
		snprintf(user, sizeof(user), "%.*s", (int)len, p);
		ch_buf_printf(&ans, "{\"closed\":%d}", ch_ws_admin_kick(w, user));
		break;
	}
	case CH_CTL_RMFILE: {
		char id[CH_PATH_MAX];
		snprintf(id, sizeof(id), "%.*s", (int)len, p);
		const char *why = ch_upload_remove(w, h->id, id);
		if (!why) {
			ch_buf_free(&ans);
			return;	/* answered when the removal is done */
		}
		ch_buf_puts(&ans, "{\"error\":");
		ch_json_str(&ans, why, strlen(why));
		ch_buf_puts(&ans, "}");
		break;
	}
	default:
		ch_buf_puts(&ans, "{\"error\":\"unknown control message\"}");
		break;
	}
	if (ans.failed) {
		ans.len = 0;
		ans.failed = 0;
		ch_buf_puts(&ans, "{\"error\":\"out of memory\"}");
	}
	send_answer(w, h->type, h->id, ans.p, ans.len, truncated);
	ch_buf_free(&ans);
}

void ch_handoff_answer(struct ch_worker *w, uint32_t type, uint32_t id, const char *json,
		       size_t len)
{
	send_answer(w, type, id, json, len, 0);
}

/* ---------------------------------------------------------------------- */
/* Handing connections over                                               */

int ch_handoff_retiring(void)
{
	return retiring;
}

/* Send one connection to the master, who forwards it; 0 or -errno. The
 * message: struct ch_handoff_conn, in_len input bytes, then (WebSocket)
 * the connection's state as wsconn.c wrote it. */
static int send_conn(int fd, uint32_t kind, uint32_t requests, const char *in, size_t in_len,
		     const char *state, size_t state_len)
{
	static char *msg;
	struct ch_handoff_conn hc = { .kind = kind, .requests = requests,
				      .in_len = (uint32_t)in_len };

	if (!msg && !(msg = malloc(CH_CTL_MSG_MAX)))
		return -ENOMEM;
	if (sizeof(hc) + in_len + state_len > CH_CTL_MSG_MAX - sizeof(struct ch_ctl_hdr))
		return -EMSGSIZE;	/* a head that large is an attack; let it go */
	memcpy(msg, &hc, sizeof(hc));
	if (in_len)
		memcpy(msg + sizeof(hc), in, in_len);
	if (state_len)
		memcpy(msg + sizeof(hc) + in_len, state, state_len);
	return ch_ctl_send_fd(ctl_fd, CH_CTL_ADOPT, 0, msg, sizeof(hc) + in_len + state_len, fd);
}

/* Between requests, or reading a request head: nothing is owed to the
 * client, and the head bytes read so far travel with the socket (the new
 * worker parses them again; its header clock starts anew). */
static int idle_http(const struct ch_conn *c)
{
	return c->state == CH_CONN_HEAD && !c->out_head && !(c->flags & CH_CONN_SENDING) &&
	       !(c->flags & (CH_CONN_CLOSE_AFTER | CH_CONN_PEER_EOF)) && !c->ws;
}

static int movable_ws(const struct ch_conn *c)
{
	return c->state == CH_CONN_WS && c->ws &&
	       !(c->flags & (CH_CONN_CLOSE_AFTER | CH_CONN_PEER_EOF));
}

int ch_handoff_offer(struct ch_worker *w, struct ch_conn *c)
{
	if (!retiring || ctl_fd < 0 || !(idle_http(c) || movable_ws(c)))
		return 0;
	if (offered.n == offered.cap) {
		uint32_t cap = offered.cap ? offered.cap * 2 : 1024;
		uint32_t *s = realloc(offered.slot, cap * sizeof(*s));
		if (s)
			offered.slot = s;
		uint32_t *g = s ? realloc(offered.gen, cap * sizeof(*g)) : NULL;
		if (!g)
			return 0;
		offered.gen = g;
		offered.cap = cap;
	}
	/* No receive may be in flight when the socket moves, or bytes it
	 * takes would be lost: pause it and wait for its cancellation. */
	ch_conn_recv_pause(w, c);
	offered.slot[offered.n] = (uint32_t)(c - w->conns);
	offered.gen[offered.n++] = c->gen;
	if (!offered.deadline_ms)
		offered.deadline_ms = w->now_ms + CH_HANDOFF_WAIT_MS;
	return 1;
}

void ch_handoff_offer_fd(struct ch_worker *w, int fd)
{
	int rc = ctl_fd >= 0 ? send_conn(fd, CH_HANDOFF_HTTP, 0, NULL, 0, NULL, 0) : -EPIPE;

	if (rc < 0)
		ch_warn("worker %d: handing over a new connection: %s", w->index, strerror(-rc));
	else
		CH_STAT_ADD(w->stats, conns_handed_over, 1);
	close(fd);
}

void ch_handoff_drain_listener(struct ch_worker *w, int listen_fd)
{
	int fd;

	while ((fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC)) >= 0)
		ch_handoff_offer_fd(w, fd);
}

/* Slots with a request to the journal in flight (its answer would come
 * here, and the client would miss it): marked in busy[], one pass. */
static void mark_busy(const struct ch_worker *w, uint8_t *busy)
{
	memset(busy, 0, w->max_conns);
	for (uint32_t i = 0; i < CH_BUS_PENDING; i++) {
		const struct ch_bus_pending *p = &w->bus->pending[i];
		if (p->req_id && p->conn < w->max_conns && w->conns[p->conn].gen == p->gen)
			busy[p->conn] = 1;
	}
}

/* The user to report gone once the other worker has reported it there. */
static void presence_later(struct ch_worker *w, const char *user, int idle)
{
	if (gone.n == gone.cap) {
		uint32_t cap = gone.cap ? gone.cap * 2 : 256;
		struct handoff_gone *g = realloc(gone.v, cap * sizeof(*g));
		if (!g) {
			ch_ws_presence_gone(w, user, idle);	/* now, then */
			return;
		}
		gone.v = g;
		gone.cap = cap;
	}
	struct handoff_gone *g = &gone.v[gone.n++];
	snprintf(g->user, sizeof(g->user), "%s", user);
	g->idle = idle;
	g->due_ms = w->now_ms + CH_HANDOFF_PRESENCE_DELAY_MS;
}

static void presence_due(struct ch_worker *w)
{
	uint32_t kept = 0;

	for (uint32_t i = 0; i < gone.n; i++) {
		if (gone.v[i].due_ms <= w->now_ms)
			ch_ws_presence_gone(w, gone.v[i].user, gone.v[i].idle);
		else
			gone.v[kept++] = gone.v[i];
	}
	gone.n = kept;
}

/* 0 sent (the connection is forgotten here), 1 not yet, -1 failed. */
static int move_one(struct ch_worker *w, struct ch_conn *c, const uint8_t *busy)
{
	static char *state;
	const char *in = c->in ? c->in->data + c->in->off : NULL;
	size_t in_len = c->in ? c->in->len - c->in->off : 0;
	char user[CH_USERNAME_MAX + 1];
	int idle = 0, rc;

	if (c->flags & CH_CONN_RECV_ARMED)
		return 1;	/* the cancellation is on its way */
	if (idle_http(c)) {
		rc = send_conn(c->fd, CH_HANDOFF_HTTP, c->requests, in, in_len, NULL, 0);
	} else {
		/* WebSocket: once everything owed to the client is out, and
		 * nothing it sent waits for an answer. */
		if (!movable_ws(c) || c->out_head || (c->flags & CH_CONN_SENDING) || in_len ||
		    busy[c - w->conns] || !ch_ws_export_ready(c))
			return 1;
		if (!state && !(state = malloc(CH_CTL_MSG_MAX)))
			return -1;
		long n = ch_ws_export(c, state, CH_CTL_MSG_MAX - 256, user, sizeof(user), &idle);
		if (n < 0)
			return -1;
		rc = send_conn(c->fd, CH_HANDOFF_WS, c->requests, NULL, 0, state, (size_t)n);
		if (rc == 0) {
			ch_ws_export_done(w, c);
			presence_later(w, user, idle);
		}
	}
	if (rc == -EAGAIN)
		return 1;
	if (rc < 0) {
		ch_warn("worker %d: handing over a connection: %s", w->index, strerror(-rc));
		return -1;
	}
	ch_conn_close(w, c);	/* our descriptor; the socket lives on */
	return 0;
}

/* The offered connections that are ready go; the others wait for the
 * next tick, up to CH_HANDOFF_WAIT_MS, then close as when stopping. */
static void hand_over(struct ch_worker *w)
{
	static uint8_t *busy;
	uint32_t kept = 0, moved = 0;
	int late = w->now_ms >= offered.deadline_ms;

	if (!busy && !(busy = malloc(w->max_conns)))
		return;
	mark_busy(w, busy);
	for (uint32_t i = 0; i < offered.n; i++) {
		struct ch_conn *c = &w->conns[offered.slot[i]];
		if (c->gen != offered.gen[i] || c->state == CH_CONN_FREE || c->state == CH_CONN_CLOSING)
			continue;	/* closed meanwhile */
		int rc = moved < CH_HANDOFF_PER_TICK ? move_one(w, c, busy) : 1;
		if (rc == 0) {
			moved++;
			continue;
		}
		if (rc < 0 || late) {
			/* Could not move: as when stopping (the client of a
			 * WebSocket resumes with since). */
			if (c->state == CH_CONN_WS)
				ch_ws_close(w, c, CH_WS_CLOSE_GOING_AWAY, "server stopping");
			else if (idle_http(c))
				ch_conn_close(w, c);
			continue;
		}
		/* A resume elsewhere (flow control) may have re-armed it. */
		if (!(c->flags & CH_CONN_RECV_PAUSED))
			ch_conn_recv_pause(w, c);
		offered.slot[kept] = offered.slot[i];
		offered.gen[kept++] = offered.gen[i];
	}
	offered.n = kept;
	CH_STAT_ADD(w->stats, conns_handed_over, moved);
	if (moved)
		ch_debug("worker %d: handed over %u connections", w->index, moved);
}

int ch_handoff_busy(void)
{
	return offered.n || gone.n;
}

static void adopt(struct ch_worker *w, const char *p, size_t len, int fd)
{
	struct ch_handoff_conn hc;

	if (fd < 0)
		return;
	if (len < sizeof(hc)) {
		close(fd);
		return;
	}
	memcpy(&hc, p, sizeof(hc));
	if ((hc.kind != CH_HANDOFF_HTTP && hc.kind != CH_HANDOFF_WS) ||
	    hc.in_len > len - sizeof(hc) || (hc.kind == CH_HANDOFF_WS && hc.in_len)) {
		ch_warn("worker %d: malformed connection handed over", w->index);
		close(fd);
		return;
	}
	if (hc.kind == CH_HANDOFF_HTTP) {
		if (ch_worker_adopt(w, fd, hc.requests, p + sizeof(hc), hc.in_len))
			CH_STAT_ADD(w->stats, conns_adopted, 1);
		return;
	}
	struct ch_conn *c = ch_worker_adopt(w, fd, hc.requests, NULL, 0);
	if (!c)
		return;
	if (ch_ws_adopt(w, c, p + sizeof(hc), len - sizeof(hc)) < 0) {
		ch_warn("worker %d: malformed WebSocket state handed over", w->index);
		ch_conn_close(w, c);
		return;
	}
	CH_STAT_ADD(w->stats, conns_adopted, 1);
}

void ch_handoff_tick(struct ch_worker *w)
{
	static char *buf;
	struct ch_ctl_hdr h;

	if (ctl_fd < 0)
		return;
	if (!buf && !(buf = malloc(CH_CTL_MSG_MAX)))
		return;
	if (retiring && offered.n)
		hand_over(w);
	if (gone.n)
		presence_due(w);
	/* Adopted connections come many at once (a retiring worker's whole
	 * set); questions are few. */
	for (int i = 0; i < CH_HANDOFF_PER_TICK; i++) {
		int passed;
		long n = ch_ctl_recv_fd(ctl_fd, &h, buf, CH_CTL_MSG_MAX, &passed);
		if (n >= 0 && h.type == CH_CTL_ADOPT) {
			adopt(w, buf, (size_t)n, passed);
			continue;
		}
		if (passed >= 0)
			close(passed);
		if (n >= 0 && h.type == CH_CTL_RETIRE) {
			retiring = 1;	/* the loop begins stopping; see worker.c */
			ch_info("worker %d retiring: handing its connections over", w->index);
			continue;
		}
		if (n == -EAGAIN)
			break;
		if (n == -EPIPE) {
			/* The master is gone; our parent's death is handled
			 * elsewhere, the channel just goes quiet. */
			close(ctl_fd);
			ctl_fd = -1;
			break;
		}
		if (n < 0) {
			ch_warn("worker %d: control message: %s", w->index, strerror((int)-n));
			continue;
		}
		handle(w, &h, buf, (size_t)n);
	}
}
