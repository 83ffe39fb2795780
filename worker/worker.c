/*
 * The worker's event loop: see worker.h.
 *
 * One turn of the loop: submit everything queued and wait for at least one
 * completion (or the next timer tick), reap all completions in a batch and
 * advance the completion queue once, then walk the flush list: every
 * connection that gained output this turn gets one send (a sendmsg over up
 * to CH_WORKER_SEND_IOV chunks), every receive that ended gets re-armed.
 * Only then is the next submit made, so a turn costs one io_uring_enter
 * however many connections it touched.
 *
 * Invariants:
 * - At most one send per connection is in flight; its chunks stay alive
 *   until its completion, even when the connection is closed meanwhile
 *   (state CH_CONN_CLOSING holds the slot until then).
 * - Every completion that carries a provided buffer gives it back to the
 *   ring in the same turn, whatever happened to its connection.
 * - A slot's generation changes when it is freed, so completions that
 *   arrive for a closed connection are recognised by user_data alone.
 */
#define _GNU_SOURCE
#include "worker/worker.h"

#include "common/hashmem.h"
#include "common/log.h"
#include "common/sched.h"
#include "worker/api.h"
#include "worker/pool.h"
#include "worker/udata.h"
#include "worker/upload.h"
#include "worker/handoff.h"
#include "worker/ws.h"
#include "worker/wsconn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct ch_sendctx {
	struct msghdr msg;
	struct iovec iov[CH_WORKER_SEND_IOV];
};

static volatile sig_atomic_t worker_stop;

static void on_stop_signal(int sig)
{
	(void)sig;
	worker_stop = 1;
}

static uint64_t monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------------- */
/* Output chunks                                                          */

struct ch_outbuf *ch_outbuf_new(size_t len)
{
	struct ch_outbuf *b = malloc(sizeof(*b) + len);
	if (!b)
		return NULL;
	b->next = NULL;
	b->ptr = b->data;
	b->len = (uint32_t)len;
	b->off = 0;
	b->release = NULL;
	b->owner = NULL;
	return b;
}

struct ch_outbuf *ch_outbuf_ref(const void *ptr, size_t len,
				void (*release)(void *owner), void *owner)
{
	struct ch_outbuf *b = malloc(sizeof(*b));
	if (!b)
		return NULL;
	b->next = NULL;
	b->ptr = ptr;
	b->len = (uint32_t)len;
	b->off = 0;
	b->release = release;
	b->owner = owner;
	return b;
}

void ch_outbuf_free(struct ch_outbuf *b)
{
	if (b->release)
		b->release(b->owner);
	free(b);
}

static void free_output(struct ch_conn *c)
{
	while (c->out_head) {
		struct ch_outbuf *b = c->out_head;
		c->out_head = b->next;
		ch_outbuf_free(b);
	}
	c->out_tail = NULL;
}

/* ---------------------------------------------------------------------- */
/* Timer lists                                                            */

static uint32_t timeout_of(const struct ch_worker *w, enum ch_timer_list t)
{
	switch (t) {
	case CH_TIMER_HEAD:
		return w->cfg->header_timeout_ms;
	case CH_TIMER_IDLE:
		return w->cfg->idle_timeout_ms;
	case CH_TIMER_LINGER:
		return CH_WORKER_LINGER_MS;
	case CH_TIMER_WS:
		return CH_WS_PING_MS;
	default:
		return 0;
	}
}

static void timer_unlink(struct ch_worker *w, struct ch_conn *c)
{
	struct ch_timer_queue *q = &w->timers[c->timer];
	if (c->timer == CH_TIMER_NONE)
		return;
	if (c->timer_prev != CH_NO_INDEX)
		w->conns[c->timer_prev].timer_next = c->timer_next;
	else
		q->head = c->timer_next;
	if (c->timer_next != CH_NO_INDEX)
		w->conns[c->timer_next].timer_prev = c->timer_prev;
	else
		q->tail = c->timer_prev;
	c->timer = CH_TIMER_NONE;
	c->timer_prev = c->timer_next = CH_NO_INDEX;
}

void ch_worker_timer_set(struct ch_worker *w, struct ch_conn *c, enum ch_timer_list t)
{
	timer_unlink(w, c);
	if (t == CH_TIMER_NONE)
		return;
	uint32_t idx = (uint32_t)(c - w->conns);
	struct ch_timer_queue *q = &w->timers[t];
	c->timer = (uint8_t)t;
	c->deadline_ms = w->now_ms + timeout_of(w, t);
	c->timer_prev = q->tail;
	c->timer_next = CH_NO_INDEX;
	if (q->tail != CH_NO_INDEX)
		w->conns[q->tail].timer_next = idx;
	else
		q->head = idx;
	q->tail = idx;
}

/* ---------------------------------------------------------------------- */
/* Submission helpers                                                     */

static struct io_uring_sqe *get_sqe(struct ch_worker *w)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
	if (!sqe) {
		/* The queue is full: hand what we have to the kernel now. */
		io_uring_submit(&w->ring);
		sqe = io_uring_get_sqe(&w->ring);
	}
	return sqe;
}

static void arm_accept(struct ch_worker *w, int l)
{
	struct io_uring_sqe *sqe = get_sqe(w);
	if (!sqe)
		return;
	io_uring_prep_multishot_accept(sqe, w->listen_fds[l], NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, ch_udata(CH_OP_ACCEPT, 0, (uint32_t)l));
	w->accept_armed[l] = 1;
}

static void arm_recv(struct ch_worker *w, struct ch_conn *c)
{
	struct io_uring_sqe *sqe = get_sqe(w);
	if (!sqe)
		return;
	io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = CH_WORKER_BUF_GROUP;
	io_uring_sqe_set_data64(sqe, ch_udata(CH_OP_RECV, c->gen, (uint32_t)(c - w->conns)));
	c->flags |= CH_CONN_RECV_ARMED;
	c->flags &= (uint16_t)~CH_CONN_REARM;
}

static void arm_wake(struct ch_worker *w)
{
	struct io_uring_sqe *sqe = get_sqe(w);
	if (!sqe)
		return;
	io_uring_prep_read(sqe, w->bus->efd, &w->bus->efd_value, sizeof(w->bus->efd_value), 0);
	io_uring_sqe_set_data64(sqe, ch_udata(CH_OP_WAKE, 0, 0));
}

/* Pool i: 0 the hashing pool, 1 the I/O pool, 2 the file pool (upload.h). */
static void arm_pool(struct ch_worker *w, uint32_t i)
{
	struct io_uring_sqe *sqe = get_sqe(w);
	if (!sqe)
		return;
	int fd = i == 2 ? ch_upload_pool_fd(w) : ch_pool_eventfd(i ? w->io_pool : w->pool);
	io_uring_prep_poll_multishot(sqe, fd, POLLIN);
	io_uring_sqe_set_data64(sqe, ch_udata(CH_OP_POOL, 0, i));
}

static void cancel_op(struct ch_worker *w, enum ch_op op, struct ch_conn *c)
{
	struct io_uring_sqe *sqe = get_sqe(w);
	if (!sqe)
		return;
	io_uring_prep_cancel64(sqe, ch_udata(op, c->gen, (uint32_t)(c - w->conns)), 0);
	io_uring_sqe_set_data64(sqe, ch_udata(CH_OP_NONE, 0, 0));
}

static void flush_later(struct ch_worker *w, struct ch_conn *c)
{
	if (c->flags & CH_CONN_FLUSH_QUEUED)
		return;
	c->flags |= CH_CONN_FLUSH_QUEUED;
	w->flush[w->n_flush++] = (uint32_t)(c - w->conns);
}

/* ---------------------------------------------------------------------- */
/* Connections                                                            */

static void slot_free(struct ch_worker *w, struct ch_conn *c)
{
	uint32_t idx = (uint32_t)(c - w->conns);
	free_output(c);
	c->out_bytes = 0;
	c->state = CH_CONN_FREE;
	c->flags = 0;
	c->gen = (c->gen + 1) & CH_UDATA_GEN_MASK;
	c->timer_next = w->free_head;
	w->free_head = idx;
	w->n_conns--;
	CH_STAT_SET(w->stats, connections, w->n_conns);
}

void ch_conn_close(struct ch_worker *w, struct ch_conn *c)
{
	if (c->state == CH_CONN_FREE || c->state == CH_CONN_CLOSING)
		return;
	timer_unlink(w, c);
	ch_http_conn_reset(c);
	ch_ws_free(w, c);
	free(c->in);
	c->in = NULL;
	if (c->flags & CH_CONN_RECV_ARMED)
		cancel_op(w, CH_OP_RECV, c);
	/* The in-flight send reads from our chunks: cancel it, and keep the
	 * slot (and the chunks) until its completion says it is done. */
	if (c->flags & CH_CONN_SENDING) {
		cancel_op(w, CH_OP_SEND, c);
		close(c->fd);
		c->fd = -1;
		c->state = CH_CONN_CLOSING;
		return;
	}
	close(c->fd);
	c->fd = -1;
	slot_free(w, c);
}

void ch_conn_queue(struct ch_worker *w, struct ch_conn *c, struct ch_outbuf *b)
{
	if (!b) {
		/* Out of memory for a response: the connection cannot go on. */
		ch_conn_close(w, c);
		return;
	}
	if (c->state == CH_CONN_CLOSING || c->state == CH_CONN_FREE) {
		ch_outbuf_free(b);
		return;
	}
	if (c->out_tail)
		c->out_tail->next = b;
	else
		c->out_head = b;
	c->out_tail = b;
	c->out_bytes += b->len - b->off;
	flush_later(w, c);
}

void ch_conn_drop_unsent(struct ch_worker *w, struct ch_conn *c)
{
	struct ch_outbuf *keep = NULL, **tail = &c->out_head;
	uint16_t n = (c->flags & CH_CONN_SENDING) ? c->inflight_chunks : 0;

	(void)w;
	/* The chunks the in-flight send reads from stay; the rest go. */
	for (uint16_t i = 0; i < n && *tail; i++) {
		keep = *tail;
		tail = &(*tail)->next;
	}
	struct ch_outbuf *b = *tail;
	*tail = NULL;
	c->out_tail = keep;
	while (b) {
		struct ch_outbuf *next = b->next;
		c->out_bytes -= b->len - b->off;
		ch_outbuf_free(b);
		b = next;
	}
}

static void start_linger(struct ch_worker *w, struct ch_conn *c)
{
	/* Shut our side and drain what the client still sends for a moment,
	 * so its unread request bytes do not turn our close into a reset
	 * that destroys the response before it reads it. */
	if (shutdown(c->fd, SHUT_WR) < 0 || (c->flags & CH_CONN_PEER_EOF)) {
		ch_conn_close(w, c);
		return;
	}
	ch_http_conn_reset(c);
	ch_ws_free(w, c);
	free(c->in);
	c->in = NULL;
	c->state = CH_CONN_LINGER;
	ch_worker_timer_set(w, c, CH_TIMER_LINGER);
}

void ch_conn_close_after(struct ch_worker *w, struct ch_conn *c)
{
	c->flags |= CH_CONN_CLOSE_AFTER;
	if (!c->out_head && !(c->flags & CH_CONN_SENDING))
		start_linger(w, c);
}

static void recv_stop(struct ch_worker *w, struct ch_conn *c, uint16_t why)
{
	c->flags |= why;
	if (c->flags & CH_CONN_RECV_ARMED)
		cancel_op(w, CH_OP_RECV, c);	/* its -ECANCELED completion clears ARMED */
}

static void recv_go(struct ch_worker *w, struct ch_conn *c, uint16_t why)
{
	c->flags &= (uint16_t)~why;
	/* Still armed: the cancel has not completed yet; on_recv re-arms then. */
	if (!(c->flags & (CH_CONN_RECV_ARMED | CH_CONN_PEER_EOF | CH_CONN_RECV_STOPPED))) {
		c->flags |= CH_CONN_REARM;
		flush_later(w, c);
	}
}

void ch_conn_recv_pause(struct ch_worker *w, struct ch_conn *c)
{
	recv_stop(w, c, CH_CONN_RECV_PAUSED);
}

void ch_conn_recv_resume(struct ch_worker *w, struct ch_conn *c)
{
	recv_go(w, c, CH_CONN_RECV_PAUSED);
}

void ch_conn_body_pause(struct ch_worker *w, struct ch_conn *c)
{
	recv_stop(w, c, CH_CONN_BODY_PAUSED);
}

void ch_conn_body_resume(struct ch_worker *w, struct ch_conn *c)
{
	recv_go(w, c, CH_CONN_BODY_PAUSED);
}

static void refuse(int fd)
{
	static const char body[] =
		"{\"error\":{\"code\":\"too_many_connections\",\"message\":\"server is at its limit\"}}";
	static char busy[256];
	static int len;

	if (!len)
		len = snprintf(busy, sizeof(busy),
			       "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
			       "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
			       sizeof(body) - 1, body);
	/* Best effort and non-blocking: the socket buffer of a new
	 * connection is empty, so this fits or the client is gone. */
	ssize_t n = send(fd, busy, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL);
	(void)n;
	close(fd);
}

static void on_accept(struct ch_worker *w, int fd)
{
	if (w->stopping) {
		/* A retiring worker's late accepts go to the other workers. */
		if (ch_handoff_retiring())
			ch_handoff_offer_fd(w, fd);
		else
			close(fd);
		return;
	}
	if (w->free_head == CH_NO_INDEX) {
		ch_debug("connection refused: %u connections open", w->n_conns);
		CH_STAT_ADD(w->stats, refused, 1);
		refuse(fd);
		return;
	}
	struct ch_conn *c = &w->conns[w->free_head];
	w->free_head = c->timer_next;
	w->n_conns++;
	CH_STAT_ADD(w->stats, accepted, 1);
	CH_STAT_SET(w->stats, connections, w->n_conns);

	int one = 1;
	/* Responses are written whole, so Nagle's delay only adds latency. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->fd = fd;
	c->state = CH_CONN_HEAD;
	c->flags = 0;
	c->requests = 0;
	c->timer = CH_TIMER_NONE;
	c->timer_prev = c->timer_next = CH_NO_INDEX;
	c->in = NULL;
	c->out_head = c->out_tail = NULL;
	c->req = NULL;
	arm_recv(w, c);
	ch_worker_timer_set(w, c, CH_TIMER_HEAD);
}

static int inbuf_append(struct ch_conn *c, const char *p, size_t n);

struct ch_conn *ch_worker_adopt(struct ch_worker *w, int fd, uint32_t requests, const char *in,
				size_t in_len)
{
	if (w->stopping || w->free_head == CH_NO_INDEX) {
		/* Full or going away: closing is all we can do for it. */
		ch_warn("worker %d: cannot adopt a connection (%s)", w->index,
			w->stopping ? "stopping" : "full");
		close(fd);
		return NULL;
	}
	struct ch_conn *c = &w->conns[w->free_head];
	on_accept(w, fd);
	CH_STAT_ADD(w->stats, accepted, (uint64_t)-1);	/* not a new client */
	c->requests = requests;
	if (in_len) {
		if (inbuf_append(c, in, in_len) < 0) {
			ch_conn_close(w, c);
			return NULL;
		}
		ch_http_conn_input(w, c);
	} else if (requests) {
		/* Between requests: the keep-alive timeout, not the head's. */
		ch_worker_timer_set(w, c, CH_TIMER_IDLE);
	}
	return c;
}

static int inbuf_append(struct ch_conn *c, const char *p, size_t n)
{
	struct ch_inbuf *in = c->in;
	if (in && in->off == in->len) {
		in->off = in->len = 0;
	}
	if (!in || in->len + n > in->cap) {
		size_t keep = in ? in->len - in->off : 0;
		size_t cap = in ? in->cap : 0;
		while (cap < keep + n)
			cap = cap ? cap * 2 : CH_WORKER_BUF_SIZE;
		if (in && keep + n <= in->cap) {
			/* Enough room once consumed bytes are dropped. */
			memmove(in->data, in->data + in->off, keep);
		} else {
			struct ch_inbuf *grown = malloc(sizeof(*grown) + cap);
			if (!grown)
				return -1;
			if (in)
				memcpy(grown->data, in->data + in->off, keep);
			free(in);
			in = grown;
			in->cap = cap;
		}
		in->off = 0;
		in->len = keep;
		c->in = in;
	}
	memcpy(in->data + in->len, p, n);
	in->len += n;
	return 0;
}

static void buf_recycle(struct ch_worker *w, unsigned bid)
{
	io_uring_buf_ring_add(w->buf_ring, w->bufs + (size_t)bid * CH_WORKER_BUF_SIZE,
			      CH_WORKER_BUF_SIZE, (unsigned short)bid,
			      io_uring_buf_ring_mask(CH_WORKER_BUF_COUNT), 0);
	io_uring_buf_ring_advance(w->buf_ring, 1);
}

static void on_recv(struct ch_worker *w, struct io_uring_cqe *cqe)
{
	uint64_t u = cqe->user_data;
	struct ch_conn *c = &w->conns[ch_udata_index(u)];
	int has_buf = (cqe->flags & IORING_CQE_F_BUFFER) != 0;
	unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
	int stale = c->gen != ch_udata_gen(u) || c->state == CH_CONN_FREE ||
		    c->state == CH_CONN_CLOSING;

	if (!stale && !(cqe->flags & IORING_CQE_F_MORE))
		c->flags &= (uint16_t)~CH_CONN_RECV_ARMED;
	if (stale) {
		if (has_buf)
			buf_recycle(w, bid);
		return;
	}
	if (cqe->res > 0 && has_buf) {
		const char *data = w->bufs + (size_t)bid * CH_WORKER_BUF_SIZE;
		int rc = 0;
		if (c->state != CH_CONN_LINGER)
			rc = inbuf_append(c, data, (size_t)cqe->res);
		buf_recycle(w, bid);
		if (rc < 0) {
			ch_err("worker %d: out of memory for input", w->index);
			ch_conn_close(w, c);
			return;
		}
		if (c->state != CH_CONN_LINGER)
			ch_http_conn_input(w, c);
	} else {
		if (has_buf)
			buf_recycle(w, bid);
		if (cqe->res == -ENOBUFS) {
			/* The buffer ring ran dry this turn; they are all back
			 * by the end of it, so re-arm then. */
			c->flags |= CH_CONN_REARM;
			flush_later(w, c);
			return;
		}
		if (cqe->res == 0) {
			c->flags |= CH_CONN_PEER_EOF;
			if (c->state == CH_CONN_LINGER || (!c->out_head && !(c->flags & CH_CONN_SENDING) &&
							   c->state != CH_CONN_BUSY)) {
				ch_conn_close(w, c);
				return;
			}
			/* Answer what was asked, then close. */
			c->flags |= CH_CONN_CLOSE_AFTER;
			return;
		}
		if (cqe->res == -ECANCELED && !(c->flags & CH_CONN_RECV_ARMED) &&
		    (c->flags & CH_CONN_RECV_STOPPED)) {
			return;	/* stopped by recv_stop: recv_go re-arms */
		}
		if (cqe->res < 0 && cqe->res != -ECANCELED) {
			if (cqe->res != -ECONNRESET)
				ch_debug("recv: %s", strerror(-cqe->res));
			ch_conn_close(w, c);
			return;
		}
		if (cqe->res < 0 && !(c->flags & CH_CONN_RECV_ARMED)) {
			/* Our pause's cancel, after a resume: receive again. */
			c->flags |= CH_CONN_REARM;
			flush_later(w, c);
			return;
		}
	}
	if (c->state != CH_CONN_FREE && c->state != CH_CONN_CLOSING &&
	    !(c->flags & (CH_CONN_RECV_ARMED | CH_CONN_PEER_EOF | CH_CONN_RECV_STOPPED))) {
		c->flags |= CH_CONN_REARM;
		flush_later(w, c);
	}
}

static void start_send(struct ch_worker *w, struct ch_conn *c)
{
	struct io_uring_sqe *sqe = get_sqe(w);
	if (!sqe)
		return;
	uint64_t ud = ch_udata(CH_OP_SEND, c->gen, (uint32_t)(c - w->conns));
	struct ch_outbuf *b = c->out_head;

	if (!b->next) {
		io_uring_prep_send(sqe, c->fd, b->ptr + b->off, b->len - b->off, MSG_NOSIGNAL);
		c->inflight_chunks = 1;
	} else {
		struct ch_sendctx *s = calloc(1, sizeof(*s));
		if (!s) {
			io_uring_prep_nop(sqe);
			io_uring_sqe_set_data64(sqe, ch_udata(CH_OP_NONE, 0, 0));
			ch_conn_close(w, c);
			return;
		}
		int n = 0;
		for (; b && n < CH_WORKER_SEND_IOV; b = b->next, n++) {
			s->iov[n].iov_base = (void *)(b->ptr + b->off);
			s->iov[n].iov_len = b->len - b->off;
		}
		s->msg.msg_iov = s->iov;
		s->msg.msg_iovlen = (size_t)n;
		c->inflight_chunks = (uint16_t)n;
		io_uring_prep_sendmsg(sqe, c->fd, &s->msg, MSG_NOSIGNAL);
		/* The context lives until the completion. */
		c->sendctx = s;
	}
	io_uring_sqe_set_data64(sqe, ud);
	c->flags |= CH_CONN_SENDING;
}

static void on_send(struct ch_worker *w, struct io_uring_cqe *cqe)
{
	uint64_t u = cqe->user_data;
	struct ch_conn *c = &w->conns[ch_udata_index(u)];

	if (c->gen != ch_udata_gen(u) || !(c->flags & CH_CONN_SENDING))
		return;
	c->flags &= (uint16_t)~CH_CONN_SENDING;
	free(c->sendctx);
	c->sendctx = NULL;
	if (c->state == CH_CONN_CLOSING) {
		slot_free(w, c);
		return;
	}
	if (cqe->res < 0) {
		if (cqe->res != -EPIPE && cqe->res != -ECONNRESET)
			ch_debug("send: %s", strerror(-cqe->res));
		ch_conn_close(w, c);
		return;
	}
	/* Drop what was sent; a short send leaves the rest at the head. */
	size_t sent = (size_t)cqe->res;
	c->out_bytes -= (uint32_t)sent;
	while (c->out_head && sent) {
		struct ch_outbuf *b = c->out_head;
		size_t left = b->len - b->off;
		if (sent < left) {
			b->off += (uint32_t)sent;
			break;
		}
		sent -= left;
		c->out_head = b->next;
		ch_outbuf_free(b);
	}
	if (!c->out_head)
		c->out_tail = NULL;
	if (c->state == CH_CONN_WS)
		ch_ws_sent(w, c);	/* a paced replay may go on */
	if (c->out_head)
		flush_later(w, c);
	else if (c->flags & CH_CONN_CLOSE_AFTER)
		start_linger(w, c);
}

static void on_accept_cqe(struct ch_worker *w, struct io_uring_cqe *cqe)
{
	int l = (int)ch_udata_index(cqe->user_data);
	if (!(cqe->flags & IORING_CQE_F_MORE))
		w->accept_armed[l] = 0;	/* re-armed at the end of the turn */
	if (cqe->res >= 0) {
		on_accept(w, cqe->res);
	} else if (cqe->res != -ECANCELED) {
		static uint64_t last_logged;
		/* EMFILE and friends repeat for every connection: log once a second. */
		if (w->now_ms - last_logged >= 1000) {
			ch_err("worker %d: accept: %s", w->index, strerror(-cqe->res));
			last_logged = w->now_ms;
		}
	}
}

/* The end of a turn: one send per connection with new output, re-armed
 * receives and accepts. All of it goes to the kernel in the next submit. */
static void flush(struct ch_worker *w)
{
	for (uint32_t i = 0; i < w->n_flush; i++) {
		struct ch_conn *c = &w->conns[w->flush[i]];
		c->flags &= (uint16_t)~CH_CONN_FLUSH_QUEUED;
		if (c->state == CH_CONN_FREE || c->state == CH_CONN_CLOSING)
			continue;
		if ((c->flags & CH_CONN_REARM) &&
		    !(c->flags & (CH_CONN_RECV_ARMED | CH_CONN_RECV_STOPPED)))
			arm_recv(w, c);
		if (c->out_head && !(c->flags & CH_CONN_SENDING))
			start_send(w, c);
	}
	w->n_flush = 0;
	if (!w->stopping) {
		for (int l = 0; l < w->n_listen; l++)
			if (!w->accept_armed[l])
				arm_accept(w, l);
	}
}

static void refresh_date(struct ch_worker *w)
{
	time_t now = time(NULL);
	if (now == w->date_sec)
		return;
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(w->date, sizeof(w->date), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
	w->date_sec = now;
}

static void run_timers(struct ch_worker *w)
{
	for (int t = CH_TIMER_HEAD; t < CH_TIMER_COUNT; t++) {
		struct ch_timer_queue *q = &w->timers[t];
		while (q->head != CH_NO_INDEX) {
			struct ch_conn *c = &w->conns[q->head];
			if (c->deadline_ms > w->now_ms)
				break;
			timer_unlink(w, c);
			if (t == CH_TIMER_LINGER)
				ch_conn_close(w, c);
			else if (t == CH_TIMER_WS)
				ch_ws_timer(w, c);
			else
				ch_http_conn_timeout(w, c);
		}
	}
}

/* ---------------------------------------------------------------------- */
/* Stopping                                                               */

static void begin_stop(struct ch_worker *w)
{
	w->stopping = 1;
	w->stop_deadline_ms = w->now_ms + w->cfg->shutdown_timeout_ms;
	ch_info("worker %d stopping: %u connections to finish", w->index, w->n_conns);
	/* Stop accepting: our listening sockets close with us, and the master
	 * has closed its copies, so the kernel refuses new connections. */
	for (int l = 0; l < w->n_listen; l++) {
		struct io_uring_sqe *sqe = get_sqe(w);
		if (sqe) {
			io_uring_prep_cancel64(sqe, ch_udata(CH_OP_ACCEPT, 0, (uint32_t)l), 0);
			io_uring_sqe_set_data64(sqe, ch_udata(CH_OP_NONE, 0, 0));
		}
		/* Retiring (a reload lowered `workers`): the master has closed
		 * its copy, so what waits in the backlog is all there is. */
		if (ch_handoff_retiring())
			ch_handoff_drain_listener(w, w->listen_fds[l]);
		close(w->listen_fds[l]);
	}
	/* Retiring: every connection that can move is offered to the other
	 * workers first (worker/handoff.h). Otherwise idle keep-alive
	 * connections have nothing in flight: close them now. Busy ones
	 * finish their request and close after its response. */
	for (uint32_t i = 0; i < w->max_conns; i++) {
		struct ch_conn *c = &w->conns[i];
		if (ch_handoff_offer(w, c))
			continue;
		if (c->state == CH_CONN_HEAD && (!c->in || c->in->off == c->in->len) &&
		    !c->out_head && !(c->flags & CH_CONN_SENDING))
			ch_conn_close(w, c);
		else if (c->state == CH_CONN_WS)
			ch_ws_close(w, c, CH_WS_CLOSE_GOING_AWAY, "server stopping");
	}
}

static int stop_done(struct ch_worker *w)
{
	if (w->n_conns == 0 && !ch_handoff_busy())
		return 1;
	if (w->now_ms >= w->stop_deadline_ms) {
		ch_warn("worker %d: shutdown timeout, closing %u connections", w->index,
			w->n_conns);
		return 1;
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Set-up                                                                 */

static int setup_ring(struct ch_worker *w)
{
	struct io_uring_params p;
	static const unsigned flag_sets[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_COOP_TASKRUN,
		0,
	};
	int rc = -EINVAL;

	for (size_t i = 0; i < sizeof(flag_sets) / sizeof(flag_sets[0]); i++) {
		memset(&p, 0, sizeof(p));
		p.flags = flag_sets[i] | IORING_SETUP_CQSIZE;
		p.cq_entries = CH_WORKER_CQ_ENTRIES;
		rc = io_uring_queue_init_params(CH_WORKER_RING_ENTRIES, &w->ring, &p);
		if (rc != -EINVAL)
			break;	/* older kernels lack some flags: try fewer */
	}
	if (rc < 0) {
		ch_uring_explain(rc);	/* what failed, and how to fix it */
		return -1;
	}
	io_uring_register_ring_fd(&w->ring);

	w->buf_ring_bytes = CH_WORKER_BUF_COUNT * sizeof(struct io_uring_buf);
	void *br = mmap(NULL, w->buf_ring_bytes, PROT_READ | PROT_WRITE,
			MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (br == MAP_FAILED) {
		ch_err_sys("mmap");
		return -1;
	}
	w->buf_ring = br;
	io_uring_buf_ring_init(w->buf_ring);
	struct io_uring_buf_reg reg = {
		.ring_addr = (unsigned long)br,
		.ring_entries = CH_WORKER_BUF_COUNT,
		.bgid = CH_WORKER_BUF_GROUP,
	};
	rc = io_uring_register_buf_ring(&w->ring, &reg, 0);
	if (rc < 0) {
		ch_err("worker %d: io_uring_register_buf_ring: %s", w->index, strerror(-rc));
		return -1;
	}
	w->bufs = malloc((size_t)CH_WORKER_BUF_COUNT * CH_WORKER_BUF_SIZE);
	if (!w->bufs)
		return -1;
	for (unsigned i = 0; i < CH_WORKER_BUF_COUNT; i++)
		io_uring_buf_ring_add(w->buf_ring, w->bufs + (size_t)i * CH_WORKER_BUF_SIZE,
				      CH_WORKER_BUF_SIZE, (unsigned short)i,
				      io_uring_buf_ring_mask(CH_WORKER_BUF_COUNT), (int)i);
	io_uring_buf_ring_advance(w->buf_ring, CH_WORKER_BUF_COUNT);
	return 0;
}

static int setup(struct ch_worker *w)
{
	w->max_conns = (uint32_t)w->cfg->max_connections;
	/* calloc of a large table maps zero pages lazily: only the slots
	 * that hold connections cost resident memory. */
	w->conns = calloc(w->max_conns, sizeof(*w->conns));
	w->flush = calloc(w->max_conns, sizeof(*w->flush));
	w->accept_armed = calloc((size_t)w->n_listen, 1);
	if (!w->conns || !w->flush || !w->accept_armed) {
		ch_err("worker %d: out of memory for %u connections", w->index, w->max_conns);
		return -1;
	}
	w->free_head = CH_NO_INDEX;
	for (uint32_t i = w->max_conns; i-- > 0;) {
		w->conns[i].fd = -1;
		w->conns[i].timer_next = w->free_head;
		w->free_head = i;
	}
	for (int t = 0; t < CH_TIMER_COUNT; t++)
		w->timers[t].head = w->timers[t].tail = CH_NO_INDEX;
	return setup_ring(w);
}

static void install_signals(void)
{
	struct sigaction sa = { 0 };
	sigset_t all;

	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);	/* the master reloads; workers follow it */
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
}

/* ---------------------------------------------------------------------- */
/* The loop                                                               */

static void handle_cqe(struct ch_worker *w, struct io_uring_cqe *cqe)
{
	switch (ch_udata_op(cqe->user_data)) {
	case CH_OP_ACCEPT:
		on_accept_cqe(w, cqe);
		break;
	case CH_OP_RECV:
		on_recv(w, cqe);
		break;
	case CH_OP_SEND:
		on_send(w, cqe);
		break;
	case CH_OP_WAKE:
		if (cqe->res < 0 && cqe->res != -EAGAIN && cqe->res != -EINTR)
			ch_err("worker %d: eventfd read: %s", w->index, strerror(-cqe->res));
		ch_bus_drain(w->bus, w);
		ch_ws_deliver(w);
		arm_wake(w);
		break;
	case CH_OP_POOL:
		if (ch_udata_index(cqe->user_data) == 2)
			ch_upload_pool_done(w);
		else
			ch_api_pool_done(w);
		if (!(cqe->flags & IORING_CQE_F_MORE))
			arm_pool(w, ch_udata_index(cqe->user_data));
		break;
	default:
		break;
	}
}

int ch_worker_run(const struct ch_config *cfg, int index, const int *listen_fds,
		  int n_listen, const struct ch_static *web, const struct ch_shm *shm)
{
	struct ch_worker w = {
		.cfg = cfg,
		.index = index,
		.web = web,
		.listen_fds = listen_fds,
		.n_listen = n_listen,
		.access_fd = -1,
	};

	install_signals();
	w.shm = shm;
	w.stats = ch_shm_stats(shm, CH_SHM_PROC_WORKER(index));
	CH_STAT_SET(w.stats, pid, (uint64_t)getpid());
	CH_STAT_SET(w.stats, connections, 0);
	w.bus = calloc(1, sizeof(*w.bus));
	if (!w.bus || ch_bus_init(w.bus, shm, index) < 0) {
		ch_err("worker %d: cannot attach to the journal's rings", index);
		return 1;
	}
	ch_sched_init();	/* before the hashing threads start */
	ch_hashmem_init(cfg->hash_threads);	/* the same; hashing works either way */
	w.pool = ch_pool_create(cfg->hash_threads, CH_WORKER_POOL_QUEUE);
	w.io_pool = ch_pool_create(CH_WORKER_IO_THREADS, CH_WORKER_POOL_QUEUE);
	if (!w.pool || !w.io_pool)
		return 1;
	if (setup(&w) < 0 || ch_api_init(&w) < 0 || ch_ws_init(&w) < 0 || ch_upload_init(&w) < 0)
		return 1;
	ch_worker_access_log_open(&w);
	w.now_ms = monotonic_ms();
	refresh_date(&w);
	uint64_t next_tick = w.now_ms + CH_WORKER_TICK_MS;
	for (int l = 0; l < n_listen; l++)
		arm_accept(&w, l);
	arm_wake(&w);
	arm_pool(&w, 0);
	arm_pool(&w, 1);
	arm_pool(&w, 2);
	CH_STAT_SET(w.stats, ready, 1);
	ch_debug("worker %d ready", index);

	for (;;) {
		struct io_uring_cqe *cqe;
		struct __kernel_timespec ts = {
			.tv_sec = 0,
			.tv_nsec = (long long)(next_tick > w.now_ms ? next_tick - w.now_ms : 0) * 1000000,
		};
		int rc = io_uring_submit_and_wait_timeout(&w.ring, &cqe, 1, &ts, NULL);
		if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
			ch_err("worker %d: io_uring_submit_and_wait_timeout: %s", index, strerror(-rc));
			return 1;
		}
		w.now_ms = monotonic_ms();

		unsigned head, n = 0;
		io_uring_for_each_cqe(&w.ring, head, cqe) {
			handle_cqe(&w, cqe);
			n++;
		}
		io_uring_cq_advance(&w.ring, n);

		if (w.now_ms >= next_tick) {
			refresh_date(&w);
			run_timers(&w);
			ch_bus_expire(w.bus, &w, w.now_ms);
			ch_ws_tick(&w);
			ch_api_tick(&w);
			ch_handoff_tick(&w);	/* the master's control messages */
			next_tick = w.now_ms + CH_WORKER_TICK_MS;
		}
		if ((worker_stop || ch_handoff_retiring()) && !w.stopping)
			begin_stop(&w);
		ch_ws_sweep(&w);
		flush(&w);
		ch_bus_flush(w.bus);
		ch_worker_access_log_flush(&w);
		if (w.stopping && stop_done(&w))
			break;
	}
	ch_worker_access_log_flush(&w);
	ch_upload_shutdown(&w);
	ch_api_shutdown(&w);
	ch_info("worker %d stopped", index);
	return 0;
}
