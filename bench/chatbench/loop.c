/*
 * One io_uring event loop per thread: opening connections (paced over the
 * ramp-up, from several source addresses when there are many), the
 * WebSocket upgrade, multishot receives into a provided buffer ring, one
 * send in flight per connection with everything queued meanwhile sent in
 * the next one, and closing. What the bytes mean is scen.c's business.
 *
 * user_data packs (slot << OP_BITS) | op, slot being the connection's index
 * in its thread's array; the eventfd read has no slot. A connection's fd is
 * closed only when no SQE of it is in flight (ops == 0), so a completion
 * never meets a slot that was reused for another socket.
 */
#include "bench/chatbench/bench.h"
#include "bench/chatbench/loop.h"
#include "bench/chatbench/scen.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench/chatbench/benchmsg.h"
#include "common/log.h"
#include "common/sched.h"

#define RING_ENTRIES	4096
#define CQ_FACTOR	8		/* completions can outnumber submissions (multishot) */
#define BUF_COUNT	1024		/* provided buffers per thread (a power of two) */
#define BUF_SIZE	16384
#define BUF_GROUP	0
#define CONNECT_INFLIGHT 128		/* connects + handshakes at once per thread */
#define TICK_NS		1000000		/* the loop looks at timers at least this often */
#define OUT_MAX		(8u << 20)	/* queued bytes per connection before sends are skipped */
#define IN_MAX		(1u << 20)	/* handshake head or HTTP response being assembled */
#define MAX_MESSAGE	(1u << 20)	/* largest server message accepted */
#define REQ_CAP		(4096 + CH_BENCH_MAX_TOKEN)

#define OP_BITS		8
enum { OP_CONNECT = 1, OP_SEND, OP_RECV, OP_WAKE, OP_CANCEL };

static uint64_t ud(uint32_t slot, int op)
{
	return ((uint64_t)slot << OP_BITS) | (uint64_t)op;
}

static struct io_uring_sqe *sqe_get(struct ch_bench_thread *t)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&t->ring);
	if (!sqe) {
		io_uring_submit(&t->ring);
		sqe = io_uring_get_sqe(&t->ring);
	}
	return sqe;	/* never NULL right after a submit */
}

/* ---- setup --------------------------------------------------------------- */

static int buf_ring_setup(struct ch_bench_thread *t)
{
	struct io_uring_buf_reg reg;
	int rc;

	t->br_bytes = BUF_COUNT * sizeof(struct io_uring_buf);
	void *br = mmap(NULL, t->br_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (br == MAP_FAILED) {
		ch_err_sys("mmap");
		return -1;
	}
	t->br = br;
	io_uring_buf_ring_init(t->br);
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (uint64_t)(uintptr_t)br;
	reg.ring_entries = BUF_COUNT;
	reg.bgid = BUF_GROUP;
	rc = io_uring_register_buf_ring(&t->ring, &reg, 0);
	if (rc < 0) {
		ch_err_code("io_uring_register_buf_ring", -rc);
		return -1;
	}
	t->bufs = malloc((size_t)BUF_COUNT * BUF_SIZE);
	if (!t->bufs) {
		ch_err_sys("malloc");
		return -1;
	}
	for (unsigned i = 0; i < BUF_COUNT; i++)
		io_uring_buf_ring_add(t->br, t->bufs + (size_t)i * BUF_SIZE, BUF_SIZE, (unsigned short)i,
				      io_uring_buf_ring_mask(BUF_COUNT), (int)i);
	io_uring_buf_ring_advance(t->br, BUF_COUNT);
	return 0;
}

static void conn_setup(struct ch_bench_thread *t, struct ch_bench_conn *c, uint32_t slot)
{
	struct ch_bench_run *run = t->run;

	c->fd = -1;
	c->slot = slot;
	c->id = slot * run->o.threads + t->index;
	c->room = c->id % run->o.rooms;
	c->member = c->id / run->o.rooms;
	c->sender = -1;
	if (run->o.scenario == CH_SCEN_BROADCAST)
		c->sender = (int32_t)c->member;
	else if (run->o.scenario == CH_SCEN_FANOUT && c->member == 0)
		c->sender = 0;
	ch_buf_init(&c->in);
	ch_buf_init(&c->out);
	ch_buf_init(&c->inflight);
	ch_wsc_parser_init(&c->parser, MAX_MESSAGE);
}

int ch_bench_thread_init(struct ch_bench_thread *t)
{
	struct ch_bench_run *run = t->run;
	struct io_uring_params p;
	int rc;

	t->efd = -1;
	if (ch_hist_init(&t->hist) < 0) {
		ch_err_sys("calloc");
		return -1;
	}
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN;
	p.cq_entries = RING_ENTRIES * CQ_FACTOR;
	rc = io_uring_queue_init_params(RING_ENTRIES, &t->ring, &p);
	if (rc == -EINVAL) {	/* an older kernel without COOP_TASKRUN */
		p.flags = IORING_SETUP_CQSIZE;
		rc = io_uring_queue_init_params(RING_ENTRIES, &t->ring, &p);
	}
	if (rc < 0) {
		ch_err_code("io_uring_queue_init_params", -rc);
		return -1;
	}
	if (buf_ring_setup(t) < 0)
		return -1;
	t->efd = eventfd(0, EFD_CLOEXEC);
	if (t->efd < 0) {
		ch_err_sys("eventfd");
		return -1;
	}
	/* Slots slot*T + index: threads share every room evenly. */
	t->nconns = run->o.conns / run->o.threads + (t->index < run->o.conns % run->o.threads);
	t->conns = calloc(t->nconns ? t->nconns : 1, sizeof(*t->conns));
	t->dirty = calloc(t->nconns ? t->nconns : 1, sizeof(*t->dirty));
	t->rearm = calloc(t->nconns ? t->nconns : 1, sizeof(*t->rearm));
	t->senders = calloc(t->nconns ? t->nconns : 1, sizeof(*t->senders));
	t->idle = calloc(t->nconns ? t->nconns : 1, sizeof(*t->idle));
	t->scratch_cap = 2 * ((size_t)run->o.size + CH_BENCH_PAYLOAD_MIN) + REQ_CAP + CH_WSC_MAX_HEADER;
	t->scratch = malloc(t->scratch_cap);
	t->room_recv = calloc(run->o.rooms, sizeof(*t->room_recv));
	if (!t->room_recv || !t->conns || !t->dirty || !t->rearm || !t->senders || !t->idle || !t->scratch) {
		ch_err_sys("calloc");
		return -1;
	}
	for (uint32_t i = 0; i < t->nconns; i++)
		t->conns[i].fd = -1;	/* before anything can fail: free closes fds >= 0 */
	for (uint32_t i = 0; i < t->nconns; i++) {
		struct ch_bench_conn *c = &t->conns[i];
		conn_setup(t, c, i);
		if (c->sender >= 0)
			t->senders[t->nsenders++] = i;
		if (c->sender >= 0 || run->o.proto == CH_PROTO_RAW) {
			c->last_ctr = calloc(run->senders_per_room ? run->senders_per_room : 1,
					     sizeof(*c->last_ctr));
			if (!c->last_ctr) {
				ch_err_sys("calloc");
				return -1;
			}
		}
	}
	return 0;
}

void ch_bench_thread_free(struct ch_bench_thread *t)
{
	if (t->ring.ring_fd > 0)
		io_uring_queue_exit(&t->ring);
	for (uint32_t i = 0; t->conns && i < t->nconns; i++) {
		struct ch_bench_conn *c = &t->conns[i];
		if (c->fd >= 0)
			close(c->fd);
		ch_buf_free(&c->in);
		ch_buf_free(&c->out);
		ch_buf_free(&c->inflight);
		ch_wsc_parser_free(&c->parser);
		free(c->last_ctr);
	}
	if (t->efd >= 0)
		close(t->efd);
	if (t->br)
		munmap(t->br, t->br_bytes);
	free(t->bufs);
	free(t->conns);
	free(t->dirty);
	free(t->rearm);
	free(t->senders);
	free(t->idle);
	free(t->scratch);
	free((void *)t->room_recv);
	ch_hist_free(&t->hist);
}

/* ---- connections --------------------------------------------------------- */

static void conn_bind_source(struct ch_bench_thread *t, struct ch_bench_conn *c)
{
	struct ch_bench_run *run = t->run;
	struct sockaddr_in src;
	int one = 1;

	if (!run->conns_per_addr)
		return;
	memset(&src, 0, sizeof(src));
	src.sin_family = AF_INET;
	/* 127.0.0.1, 127.0.0.2, ...: all of 127/8 is loopback. */
	src.sin_addr.s_addr = htonl(INADDR_LOOPBACK + c->id / run->conns_per_addr);
	/* Pick the port at connect(), per destination, not at bind(). */
	setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) < 0)
		ch_warn("bind 127.0.0.%u: %s", 1 + c->id / run->conns_per_addr, strerror(errno));
}

int ch_bench_conn_open(struct ch_bench_thread *t, struct ch_bench_conn *c)
{
	int one = 1;

	CH_BENCH_ADD(&t->st, attempts, 1);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		ch_err_sys("socket");
		CH_BENCH_ADD(&t->st, err_connect, 1);
		return -1;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	conn_bind_source(t, c);
	struct io_uring_sqe *sqe = sqe_get(t);
	io_uring_prep_connect(sqe, c->fd, (struct sockaddr *)&t->run->server, sizeof(t->run->server));
	io_uring_sqe_set_data64(sqe, ud(c->slot, OP_CONNECT));
	c->ops++;
	c->state = CH_CONN_CONNECTING;
	c->t_start = t->now;
	t->connecting++;
	CH_BENCH_ADD(&t->st, opening, 1);
	return 0;
}

void ch_bench_conn_opened(struct ch_bench_thread *t, struct ch_bench_conn *c)
{
	c->state = CH_CONN_OPEN;
	/* Read by main when measuring begins; the phase store orders nothing here. */
	atomic_fetch_add_explicit(&t->run->room_open[c->room], 1, memory_order_relaxed);
	t->connecting--;
	CH_BENCH_ADD(&t->st, opening, (uint64_t)-1);
	CH_BENCH_ADD(&t->st, open, 1);
	ch_scen_on_open(t, c);
}

static void arm_recv(struct ch_bench_thread *t, struct ch_bench_conn *c)
{
	struct io_uring_sqe *sqe = sqe_get(t);
	io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BUF_GROUP;
	io_uring_sqe_set_data64(sqe, ud(c->slot, OP_RECV));
	c->ops++;
	c->recv_armed = 1;
}

static void mark_dirty(struct ch_bench_thread *t, struct ch_bench_conn *c)
{
	if (!c->dirty) {
		c->dirty = 1;
		t->dirty[t->ndirty++] = c->slot;
	}
}

static void send_more(struct ch_bench_thread *t, struct ch_bench_conn *c)
{
	struct io_uring_sqe *sqe = sqe_get(t);
	io_uring_prep_send(sqe, c->fd, c->inflight.p + c->inflight_off,
			   c->inflight.len - c->inflight_off, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, ud(c->slot, OP_SEND));
	c->ops++;
	c->send_busy = 1;
}

/* Hands what is queued to the kernel: the two buffers swap roles. */
static void send_start(struct ch_bench_thread *t, struct ch_bench_conn *c)
{
	struct ch_buf tmp = c->inflight;

	c->inflight = c->out;
	c->out = tmp;
	c->out.len = 0;
	c->inflight_off = 0;
	send_more(t, c);
}

int ch_bench_conn_queue_raw(struct ch_bench_thread *t, struct ch_bench_conn *c, const void *p, size_t len)
{
	if (c->closing || c->fd < 0)
		return -1;
	if (c->out.len + len > OUT_MAX) {
		CH_BENCH_ADD(&t->st, err_backlog, 1);
		return -1;
	}
	ch_buf_append(&c->out, p, len);
	if (c->out.failed) {
		ch_err("out of memory queueing %zu bytes", len);
		ch_bench_conn_close(t, c);
		return -1;
	}
	mark_dirty(t, c);
	return 0;
}

int ch_bench_conn_queue(struct ch_bench_thread *t, struct ch_bench_conn *c, int opcode,
			const void *payload, size_t len)
{
	if (c->closing || c->fd < 0)
		return -1;
	if (c->out.len + len + CH_WSC_MAX_HEADER > OUT_MAX) {
		CH_BENCH_ADD(&t->st, err_backlog, 1);
		return -1;
	}
	if (ch_buf_reserve(&c->out, len + CH_WSC_MAX_HEADER) < 0) {
		ch_err("out of memory queueing %zu bytes", len);
		ch_bench_conn_close(t, c);
		return -1;
	}
	c->out.len += ch_wsc_frame((uint8_t *)c->out.p + c->out.len, c->out.cap - c->out.len,
				   opcode, 1, payload, len);
	mark_dirty(t, c);
	return 0;
}

/* The last step of a close, once nothing of the connection is in flight. */
static void conn_finish(struct ch_bench_thread *t, struct ch_bench_conn *c)
{
	if (c->state == CH_CONN_OPEN) {
		CH_BENCH_ADD(&t->st, open, (uint64_t)-1);
		atomic_fetch_sub_explicit(&t->run->room_open[c->room], 1, memory_order_relaxed);
	}
	else if (c->state != CH_CONN_IDLE) {
		t->connecting--;
		CH_BENCH_ADD(&t->st, opening, (uint64_t)-1);
	}
	close(c->fd);
	c->fd = -1;
	c->state = CH_CONN_IDLE;
	c->closing = 0;
	c->send_busy = 0;
	c->recv_armed = 0;
	c->in.len = 0;
	c->out.len = 0;
	c->inflight.len = 0;
	c->inflight_off = 0;
	ch_wsc_parser_free(&c->parser);
	ch_wsc_parser_init(&c->parser, MAX_MESSAGE);
	ch_scen_on_closed(t, c);
}

/*
 * Starts closing: shutdown() ends the pending receive (it completes with
 * 0) and any send; the cancel covers a receive that shutdown did not wake.
 * The fd itself is closed by conn_finish when the last completion is in.
 */
void ch_bench_conn_close(struct ch_bench_thread *t, struct ch_bench_conn *c)
{
	if (c->fd < 0 || c->closing)
		return;
	c->closing = 1;
	shutdown(c->fd, SHUT_RDWR);
	if (c->recv_armed) {
		struct io_uring_sqe *sqe = sqe_get(t);
		io_uring_prep_cancel64(sqe, ud(c->slot, OP_RECV), 0);
		io_uring_sqe_set_data64(sqe, ud(c->slot, OP_CANCEL));
	}
	if (c->ops == 0)
		conn_finish(t, c);
}

void ch_bench_wake_all(struct ch_bench_run *run, unsigned except)
{
	uint64_t one = 1;

	for (unsigned i = 0; i < run->o.threads; i++)
		if (i != except && write(run->threads[i].efd, &one, sizeof(one)) < 0)
			ch_err_sys("write eventfd");
}

/* ---- receiving ----------------------------------------------------------- */

static void close_frame_seen(struct ch_bench_thread *t, struct ch_bench_conn *c, uint16_t code)
{
	if (t->phase != CH_PHASE_DONE) {
		if (code == 1013)
			CH_BENCH_ADD(&t->st, err_slow_consumer, 1);
		else
			CH_BENCH_ADD(&t->st, err_closed, 1);
		ch_debug("connection %u closed by the server with %u", c->id, code);
	}
	ch_bench_conn_close(t, c);
}

static void ws_feed(struct ch_bench_thread *t, struct ch_bench_conn *c, const uint8_t *p, size_t len)
{
	struct ch_wsc_event ev;
	size_t used;

	while (len && !c->closing) {
		int r = ch_wsc_parse(&c->parser, p, len, &used, &ev);
		p += used;
		len -= used;
		switch (r) {
		case CH_WSC_NEED_MORE:
			return;
		case CH_WSC_MESSAGE:
			/* A raw peer may well echo text as binary; chatd sends text only. */
			if (ev.opcode == CH_WSC_OP_TEXT || t->run->o.proto == CH_PROTO_RAW)
				ch_scen_on_text(t, c, ev.data, ev.len);
			else
				CH_BENCH_ADD(&t->st, err_protocol, 1);
			break;
		case CH_WSC_PING:
			ch_bench_conn_queue(t, c, CH_WSC_OP_PONG, ev.data, ev.len);
			break;
		case CH_WSC_PONG:
			if (t->phase == CH_PHASE_RUN)
				CH_BENCH_ADD(&t->st, pongs, 1);
			break;
		case CH_WSC_CLOSE:
			close_frame_seen(t, c, ev.close_code);
			return;
		default:
			ch_debug("connection %u: %s", c->id, ev.error);
			CH_BENCH_ADD(&t->st, err_protocol, 1);
			ch_bench_conn_close(t, c);
			return;
		}
	}
}

static void handshake_feed(struct ch_bench_thread *t, struct ch_bench_conn *c, const uint8_t *p, size_t len)
{
	int status = 0;

	ch_buf_append(&c->in, p, len);
	int r = ch_wsc_response(c->in.p, c->in.len, c->key, &status);
	if (r == 0 && c->in.len < IN_MAX && !c->in.failed)
		return;
	if (r <= 0) {
		ch_debug("connection %u: upgrade refused (%d)", c->id, status);
		CH_BENCH_ADD(&t->st, err_handshake, 1);
		ch_bench_conn_close(t, c);
		return;
	}
	size_t rest = c->in.len - (size_t)r;
	if (t->run->o.proto == CH_PROTO_CHATD && t->run->o.scenario != CH_SCEN_HISTORY)
		c->state = CH_CONN_JOINING;	/* /ws/ROOM: open once "joined" comes */
	else
		ch_bench_conn_opened(t, c);
	/* Frames right behind the head: feed them from a copy, in is reused. */
	if (rest) {
		uint8_t *tmp = malloc(rest);
		if (!tmp) {
			ch_err_sys("malloc");
			ch_bench_conn_close(t, c);
			return;
		}
		memcpy(tmp, c->in.p + r, rest);
		c->in.len = 0;
		ws_feed(t, c, tmp, rest);
		free(tmp);
	}
	c->in.len = 0;
}

static void http_feed(struct ch_bench_thread *t, struct ch_bench_conn *c, const uint8_t *p, size_t len)
{
	int status;
	size_t total;

	ch_buf_append(&c->in, p, len);
	while (c->in.len && !c->closing) {
		int r = ch_bench_http_response(c->in.p, c->in.len, &status, &total);
		if (r == 0 && c->in.len < IN_MAX && !c->in.failed)
			return;
		if (r <= 0) {
			CH_BENCH_ADD(&t->st, err_protocol, 1);
			ch_bench_conn_close(t, c);
			return;
		}
		memmove(c->in.p, c->in.p + total, c->in.len - total);
		c->in.len -= total;
		ch_scen_on_http(t, c, status, total);
	}
}

static void data_in(struct ch_bench_thread *t, struct ch_bench_conn *c, const uint8_t *p, size_t len)
{
	if (c->closing)
		return;
	if (c->state == CH_CONN_HANDSHAKE)
		handshake_feed(t, c, p, len);
	else if (!ch_scen_wants_ws(t->run))
		http_feed(t, c, p, len);
	else
		ws_feed(t, c, p, len);
}

/* ---- completions --------------------------------------------------------- */

static void on_connect(struct ch_bench_thread *t, struct ch_bench_conn *c, int res)
{
	struct ch_bench_run *run = t->run;

	if (c->closing)
		return;
	if (res < 0) {
		ch_debug("connect: %s", strerror(-res));
		CH_BENCH_ADD(&t->st, err_connect, 1);
		ch_bench_conn_close(t, c);
		return;
	}
	arm_recv(t, c);
	if (!ch_scen_wants_ws(run)) {
		ch_bench_conn_opened(t, c);
		return;
	}
	const char *token = run->o.proto == CH_PROTO_CHATD ? run->tokens[c->id % run->o.users] : NULL;
	int n = ch_wsc_request((char *)t->scratch, t->scratch_cap, run->o.hostport,
			       run->paths[c->room], token, c->key);
	if (n < 0) {
		ch_err("upgrade request too long");
		CH_BENCH_ADD(&t->st, err_handshake, 1);
		ch_bench_conn_close(t, c);
		return;
	}
	c->state = CH_CONN_HANDSHAKE;
	ch_bench_conn_queue_raw(t, c, t->scratch, (size_t)n);
}

static void on_send(struct ch_bench_thread *t, struct ch_bench_conn *c, int res)
{
	c->send_busy = 0;
	if (c->closing)
		return;
	if (res < 0) {
		if (t->phase != CH_PHASE_DONE)
			CH_BENCH_ADD(&t->st, err_io, 1);
		ch_debug("send: %s", strerror(-res));
		ch_bench_conn_close(t, c);
		return;
	}
	c->inflight_off += (size_t)res;
	if (c->inflight_off < c->inflight.len) {
		send_more(t, c);
		return;
	}
	c->inflight.len = 0;
	c->inflight_off = 0;
	if (c->out.len)
		mark_dirty(t, c);
}

static void on_recv(struct ch_bench_thread *t, struct ch_bench_conn *c, struct io_uring_cqe *cqe)
{
	int res = cqe->res;
	int more = cqe->flags & IORING_CQE_F_MORE;

	if (res > 0) {
		unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
		data_in(t, c, t->bufs + (size_t)bid * BUF_SIZE, (size_t)res);
		io_uring_buf_ring_add(t->br, t->bufs + (size_t)bid * BUF_SIZE, BUF_SIZE,
				      (unsigned short)bid, io_uring_buf_ring_mask(BUF_COUNT), 0);
		io_uring_buf_ring_advance(t->br, 1);
	}
	if (more)
		return;
	c->ops--;
	c->recv_armed = 0;
	if (c->closing)
		return;
	if (res > 0 || res == -ENOBUFS) {
		/* Ended, not failed: arm again once this batch gave buffers back. */
		t->rearm[t->nrearm++] = c->slot;
		c->ops++;	/* held for the re-arm, so the slot is not finished meanwhile */
		return;
	}
	if (t->phase != CH_PHASE_DONE) {
		if (res == 0)
			CH_BENCH_ADD(&t->st, err_closed, 1);
		else
			CH_BENCH_ADD(&t->st, err_io, 1);
	}
	ch_debug("connection %u: receive ended: %s", c->id, res ? strerror(-res) : "EOF");
	ch_bench_conn_close(t, c);
}

static void arm_wake(struct ch_bench_thread *t)
{
	struct io_uring_sqe *sqe = sqe_get(t);
	io_uring_prep_read(sqe, t->efd, &t->efd_val, sizeof(t->efd_val), 0);
	io_uring_sqe_set_data64(sqe, ud(0, OP_WAKE));
}

static void on_cqe(struct ch_bench_thread *t, struct io_uring_cqe *cqe)
{
	uint64_t data = io_uring_cqe_get_data64(cqe);
	int op = (int)(data & ((1u << OP_BITS) - 1));
	struct ch_bench_conn *c = &t->conns[data >> OP_BITS];

	switch (op) {
	case OP_WAKE:
		arm_wake(t);
		return;
	case OP_CANCEL:
		return;
	case OP_RECV:
		on_recv(t, c, cqe);
		break;
	case OP_CONNECT:
		c->ops--;
		on_connect(t, c, cqe->res);
		break;
	case OP_SEND:
		c->ops--;
		on_send(t, c, cqe->res);
		break;
	default:
		return;
	}
	if (c->closing && c->ops == 0)
		conn_finish(t, c);
}

/* ---- the loop ------------------------------------------------------------ */

static void after_batch(struct ch_bench_thread *t)
{
	for (uint32_t i = 0; i < t->nrearm; i++) {
		struct ch_bench_conn *c = &t->conns[t->rearm[i]];
		c->ops--;	/* the hold taken in on_recv */
		if (c->closing) {
			if (c->ops == 0)
				conn_finish(t, c);
			continue;
		}
		arm_recv(t, c);
	}
	t->nrearm = 0;
	for (uint32_t i = 0; i < t->ndirty; i++) {
		struct ch_bench_conn *c = &t->conns[t->dirty[i]];
		c->dirty = 0;
		if (!c->send_busy && c->out.len && !c->closing && c->fd >= 0 &&
		    c->state != CH_CONN_CONNECTING)
			send_start(t, c);
	}
	t->ndirty = 0;
}

/* Opens connections at the pace of the ramp-up, CONNECT_INFLIGHT at most at once. */
static void ramp(struct ch_bench_thread *t)
{
	const struct ch_bench_opts *o = &t->run->o;
	uint64_t want = t->nconns;

	if (o->ramp_ms) {
		uint64_t el = t->now - t->t_ramp;
		uint64_t span = (uint64_t)o->ramp_ms * 1000000u;
		if (el < span)
			want = (uint64_t)t->nconns * el / span + 1;
	}
	if (want > t->nconns)
		want = t->nconns;
	while (t->next_open < want && t->connecting < CONNECT_INFLIGHT)
		ch_bench_conn_open(t, &t->conns[t->next_open++]);
}

void *ch_bench_thread_main(void *arg)
{
	struct ch_bench_thread *t = arg;
	struct ch_bench_run *run = t->run;
	struct __kernel_timespec tick;
	struct io_uring_cqe *cqe;
	int ramp_phase = run->o.scenario == CH_SCEN_CONNECT ? CH_PHASE_RUN : CH_PHASE_CONNECT;

	/* Its own wake-ups are part of every latency it measures. */
	ch_sched_latency();
	t->now = ch_bench_now();
	arm_wake(t);
	for (;;) {
		/* Pairs with main's release store: t_run is valid once RUN is seen. */
		t->phase = atomic_load_explicit(&run->phase, memory_order_acquire);
		if (t->phase == CH_PHASE_DONE)
			break;
		t->now = ch_bench_now();
		if (t->phase == ramp_phase) {
			if (!t->t_ramp)
				t->t_ramp = ramp_phase == CH_PHASE_RUN ? run->t_run : t->now;
			ramp(t);
		}
		ch_scen_tick(t, t->phase);
		after_batch(t);
		/* Sleep until the next message is due, so a fixed rate is kept to the µs. */
		tick.tv_sec = 0;
		tick.tv_nsec = TICK_NS;
		if (t->wake_at > t->now && t->wake_at - t->now < TICK_NS)
			tick.tv_nsec = (long long)(t->wake_at - t->now);
		int rc = io_uring_submit_and_wait_timeout(&t->ring, &cqe, 1, &tick, NULL);
		if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY) {
			ch_err_code("io_uring_submit_and_wait_timeout", -rc);
			t->failed = 1;
			break;
		}
		t->now = ch_bench_now();
		unsigned head, n = 0;
		io_uring_for_each_cqe(&t->ring, head, cqe) {
			on_cqe(t, cqe);
			n++;
		}
		io_uring_cq_advance(&t->ring, n);
		ch_scen_flush_round(t);
		after_batch(t);
	}
	return NULL;
}
