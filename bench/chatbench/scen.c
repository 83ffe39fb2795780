/*
 * The scenarios: what a connection sends and when, and what each delivery
 * proves. loop.c calls in on events (open, text message, HTTP response,
 * closed) and once per loop turn (tick); everything here runs on the
 * connection's own thread.
 *
 * Checks: in chatd mode a delivery's room seq must be above the last one
 * seen on that connection (else duplicated or reordered) and should be the
 * next one (else a gap); in raw mode the same holds for the per-sender
 * counter in the payload. Latency is the receive time minus the payload's
 * ts, which in fixed-rate mode is the time the message was due, not the
 * time it went out, so a stalled sender cannot hide the stall
 * (coordinated omission). History at --rate is corrected the same way:
 * requests are due on a fixed schedule whatever the answers do, one at a
 * time per keep-alive connection, and a request's latency runs from when
 * it was due, its wait for a free connection included.
 */
#include "bench/chatbench/bench.h"
#include "bench/chatbench/loop.h"
#include "bench/chatbench/scen.h"

#include <stdio.h>
#include <string.h>

#include "bench/chatbench/benchmsg.h"
#include "common/log.h"

#define NS_PER_S	1000000000.0
#define NS_PER_MS	1000000u
#define BCAST_COUNT_MASK	UINT64_C(0xffffffff)
#define LAG_WINDOWS	2	/* max mode: how far a sender may run ahead of its room */

int ch_scen_wants_ws(const struct ch_bench_run *run)
{
	return run->o.scenario != CH_SCEN_HISTORY;
}

static int measuring(const struct ch_bench_thread *t)
{
	return t->phase == CH_PHASE_RUN;
}

/*
 * Sends one message from c with the intended time ts; 0 when queued. In
 * chatd mode the payload is written straight into its send frame's JSON
 * (it needs no escaping), so nothing is copied twice.
 */
static int send_msg(struct ch_bench_thread *t, struct ch_bench_conn *c, uint64_t ts, uint32_t round)
{
	static const char tail[] = "\"}";
	struct ch_bench_run *run = t->run;
	struct ch_bench_payload pl = { (uint32_t)c->sender, c->counter + 1, round, ts };
	char *out = (char *)t->scratch;
	size_t head = 0, n;
	int rc;

	if (run->o.proto == CH_PROTO_CHATD) {
		int m = snprintf(out, t->scratch_cap, "{\"type\":\"send\",\"room\":\"%s\",\"content\":\"",
				 run->names[c->room]);
		if (m < 0 || (size_t)m >= t->scratch_cap)
			return -1;
		head = (size_t)m;
	}
	n = ch_bench_payload_make(out + head, t->scratch_cap - head - sizeof(tail), run->o.size, &pl);
	if (n == 0)
		return -1;
	if (run->o.proto == CH_PROTO_CHATD) {
		memcpy(out + head + n, tail, sizeof(tail) - 1);
		n += sizeof(tail) - 1;
	}
	rc = ch_bench_conn_queue(t, c, CH_WSC_OP_TEXT, out, head + n);
	if (rc < 0)
		return -1;
	c->counter++;
	c->unanswered++;
	CH_BENCH_ADD(&t->st, total_sent, 1);
	if (measuring(t))
		CH_BENCH_ADD(&t->st, sent, 1);
	/* Senders of one room may be on several threads. Read after join. */
	atomic_fetch_add_explicit(&run->room_sent[c->room], 1, memory_order_relaxed);
	return 0;
}

/*
 * One history request on the idle connection c; sched is the time it was
 * due (at --rate) or now (closed loop). Its latency is measured from
 * sched, so a request that waited for a free connection counts its wait.
 */
static void send_history_request(struct ch_bench_thread *t, struct ch_bench_conn *c, uint64_t sched)
{
	struct ch_bench_run *run = t->run;
	int n = snprintf((char *)t->scratch, t->scratch_cap,
			 "GET /api/history/%s?limit=%u HTTP/1.1\r\nHost: %s\r\n"
			 "Authorization: Bearer %s\r\n\r\n",
			 run->names[c->room], run->o.limit, run->o.hostport,
			 run->tokens[c->id % run->o.users]);
	if (n < 0 || (size_t)n >= t->scratch_cap)
		return;
	c->t_start = sched;
	if (ch_bench_conn_queue_raw(t, c, t->scratch, (size_t)n) < 0)
		return;
	c->unanswered = 1;
	CH_BENCH_ADD(&t->st, in_flight, 1);
	if (measuring(t))
		CH_BENCH_ADD(&t->st, sent, 1);
}

/* ---- history at a fixed rate --------------------------------------------- */

static int history_open_loop(const struct ch_bench_run *run)
{
	return run->o.scenario == CH_SCEN_HISTORY && run->o.rate > 0;
}

/* When this thread's request k is due (see struct ch_bench_thread). */
static uint64_t history_due(const struct ch_bench_thread *t, uint64_t k)
{
	const struct ch_bench_run *run = t->run;
	double slot = (double)k * run->o.threads + t->index;

	return run->t_run + (uint64_t)(slot * NS_PER_S / run->o.rate);
}

static void idle_push(struct ch_bench_thread *t, struct ch_bench_conn *c)
{
	t->idle[(t->idle_head + t->nidle) % t->nconns] = c->slot;
	t->nidle++;
}

/* The connection idle longest that is still open; NULL when none is. */
static struct ch_bench_conn *idle_pop(struct ch_bench_thread *t)
{
	while (t->nidle) {
		struct ch_bench_conn *c = &t->conns[t->idle[t->idle_head]];
		t->idle_head = (t->idle_head + 1) % t->nconns;
		t->nidle--;
		/* A connection the server closed while idle stays closed. */
		if (c->state == CH_CONN_OPEN && !c->closing)
			return c;
	}
	return NULL;
}

/* Sends the request due first on c: 0 if one was due, -1 if none is yet. */
static int history_send_due(struct ch_bench_thread *t, struct ch_bench_conn *c)
{
	if (t->phase != CH_PHASE_RUN)
		return -1;
	if (!t->hist_due)	/* measuring just began */
		t->hist_due = history_due(t, t->hist_k);
	if (t->hist_due > t->now)
		return -1;
	send_history_request(t, c, t->hist_due);
	t->hist_k++;
	t->hist_due = history_due(t, t->hist_k);
	return 0;
}

/*
 * Sends what is due on idle connections; what is due with none idle waits
 * (on_http sends it when an answer frees a connection) and is counted
 * late, once: the run was saturated at this rate and these connections.
 */
static void tick_history_rate(struct ch_bench_thread *t)
{
	struct ch_bench_conn *c;

	if (!t->hist_due)
		t->hist_due = history_due(t, t->hist_k);
	while (t->hist_due <= t->now && (c = idle_pop(t)) != NULL)
		history_send_due(t, c);
	if (t->late_k < t->hist_k)
		t->late_k = t->hist_k;
	while (history_due(t, t->late_k) <= t->now) {
		CH_BENCH_ADD(&t->st, late, 1);
		t->late_k++;
	}
	if (t->hist_due > t->now)
		t->wake_at = t->hist_due;
}

static void send_ping(struct ch_bench_thread *t, struct ch_bench_conn *c)
{
	static const char chatd_ping[] = "{\"type\":\"ping\"}";

	if (t->run->o.proto == CH_PROTO_CHATD)
		ch_bench_conn_queue(t, c, CH_WSC_OP_TEXT, chatd_ping, sizeof(chatd_ping) - 1);
	else
		ch_bench_conn_queue(t, c, CH_WSC_OP_PING, "p", 1);
}

/* ---- events -------------------------------------------------------------- */

void ch_scen_on_open(struct ch_bench_thread *t, struct ch_bench_conn *c)
{
	struct ch_bench_run *run = t->run;

	switch (run->o.scenario) {
	case CH_SCEN_CONNECT:
		if (measuring(t) && c->t_start >= run->t_run) {
			CH_BENCH_ADD(&t->st, connects, 1);
			ch_hist_record(&t->hist, t->now - c->t_start);
		}
		ch_bench_conn_close(t, c);
		break;
	case CH_SCEN_IDLE:
		c->next_ping = t->now + (uint64_t)run->o.ping_ms * NS_PER_MS;
		break;
	case CH_SCEN_HISTORY:
		if (history_open_loop(run))
			idle_push(t, c);	/* its turn comes in tick_history_rate */
		else if (measuring(t))
			send_history_request(t, c, t->now);
		break;
	default:
		break;
	}
}

void ch_scen_on_closed(struct ch_bench_thread *t, struct ch_bench_conn *c)
{
	if (c->unanswered && t->run->o.scenario == CH_SCEN_HISTORY) {
		c->unanswered = 0;	/* its answer will never come */
		CH_BENCH_ADD(&t->st, in_flight, (uint64_t)-1);
	}
	if (t->run->o.scenario == CH_SCEN_CONNECT && t->phase == CH_PHASE_RUN)
		ch_bench_conn_open(t, c);
}

/*
 * A history answer: the connection is idle again. Closed loop, it asks
 * again at once; at --rate it takes the request waiting longest, if one
 * is due, or joins the idle ring.
 */
void ch_scen_on_http(struct ch_bench_thread *t, struct ch_bench_conn *c, int status, size_t bytes)
{
	struct ch_bench_run *run = t->run;
	int was_out = c->unanswered;

	if (was_out) {
		c->unanswered = 0;
		CH_BENCH_ADD(&t->st, in_flight, (uint64_t)-1);
	}
	/* Answers to requests sent while measuring; at --rate the drain waits for them. */
	if (c->t_start >= run->t_run && t->phase >= CH_PHASE_RUN) {
		ch_hist_record(&t->hist, t->now - c->t_start);
		CH_BENCH_ADD(&t->st, responses, 1);
		CH_BENCH_ADD(&t->st, resp_bytes, bytes);
	}
	if (status != 200) {
		ch_debug("history answered %d", status);
		CH_BENCH_ADD(&t->st, err_http, 1);
	}
	if (history_open_loop(run)) {
		/* An answer to nothing must not put c in the ring twice. */
		if (was_out && history_send_due(t, c) < 0)
			idle_push(t, c);
	} else if (measuring(t)) {
		send_history_request(t, c, t->now);
	}
}

/* Broadcast: a delivery of round r counts toward the round barrier. */
static void count_round(struct ch_bench_thread *t, uint32_t r)
{
	if (r == t->bc_round) {
		t->bc_count++;
		return;
	}
	if (r < t->bc_round)
		return;		/* a late delivery of a round that timed out */
	/* Another thread started round r before this one noticed. Pairs with the CAS in ch_scen_flush_round. */
	uint64_t v = atomic_load_explicit(&t->run->bcast, memory_order_acquire);
	if ((v >> 32) == r) {
		t->bc_round = r;
		t->bc_count = 1;
	}
}

/* A message delivery; seq is the room seq (chatd) or 0 (raw). */
static void deliver(struct ch_bench_thread *t, struct ch_bench_conn *c, uint64_t seq,
		    const char *content, size_t len)
{
	struct ch_bench_run *run = t->run;
	struct ch_bench_payload pl;

	if (ch_bench_payload_parse(content, len, &pl) < 0 || pl.sender >= run->senders_per_room) {
		CH_BENCH_ADD(&t->st, err_bad_payload, 1);
		return;
	}
	if (run->o.proto == CH_PROTO_CHATD) {
		if (seq <= c->last_seq) {
			CH_BENCH_ADD(&t->st, dup, 1);
			return;
		}
		if (seq > c->last_seq + 1)
			CH_BENCH_ADD(&t->st, gaps, seq - c->last_seq - 1);
		c->last_seq = seq;
	} else {
		uint64_t *last = &c->last_ctr[pl.sender];
		if (pl.counter <= *last) {
			CH_BENCH_ADD(&t->st, dup, 1);
			return;
		}
		if (pl.counter > *last + 1)
			CH_BENCH_ADD(&t->st, gaps, pl.counter - *last - 1);
		*last = pl.counter;
	}
	CH_BENCH_ADD(&t->st, unique, 1);
	CH_BENCH_ADD(t, room_recv[c->room], 1);
	if (measuring(t))
		CH_BENCH_ADD(&t->st, delivered, 1);
	if (pl.ts >= run->t_run && t->now >= pl.ts && t->phase >= CH_PHASE_RUN)
		ch_hist_record(&t->hist, t->now - pl.ts);
	if (c->sender >= 0 && (uint32_t)c->sender == pl.sender && c->unanswered)
		c->unanswered--;
	if (run->o.scenario == CH_SCEN_BROADCAST)
		count_round(t, pl.round);
}

static void chatd_text(struct ch_bench_thread *t, struct ch_bench_conn *c, const uint8_t *p, size_t len)
{
	struct ch_bench_frame f;

	if (ch_bench_frame_scan((const char *)p, len, &f) < 0) {
		CH_BENCH_ADD(&t->st, err_protocol, 1);
		return;
	}
	switch (f.type) {
	case CH_BENCH_F_MSG:
		deliver(t, c, f.seq, f.content, f.content_len);
		break;
	case CH_BENCH_F_JOINED:
		if (c->state == CH_CONN_JOINING) {
			c->last_seq = f.last_seq;
			ch_bench_conn_opened(t, c);
		}
		break;
	case CH_BENCH_F_ACK:
		if (measuring(t))
			CH_BENCH_ADD(&t->st, acks, 1);
		break;
	case CH_BENCH_F_PONG:
		if (measuring(t))
			CH_BENCH_ADD(&t->st, pongs, 1);
		break;
	case CH_BENCH_F_ERROR:
		CH_BENCH_ADD(&t->st, err_server_error, 1);
		ch_debug("connection %u: error %.*s", c->id, (int)f.code_len, f.code);
		if (c->state == CH_CONN_JOINING)	/* it will never join */
			ch_bench_conn_close(t, c);
		break;
	default:
		break;	/* presence, truncated ...: not what is measured */
	}
}

void ch_scen_on_text(struct ch_bench_thread *t, struct ch_bench_conn *c, const uint8_t *p, size_t len)
{
	if (t->run->o.proto == CH_PROTO_CHATD)
		chatd_text(t, c, p, len);
	else if (c->state == CH_CONN_OPEN)
		deliver(t, c, 0, (const char *)p, len);
}

/* ---- ticks --------------------------------------------------------------- */

/*
 * Max mode: how many of a room's messages every member has had, on
 * average, over all threads. A sender's own echo paces it, but members
 * served by a slower server worker or client loop could fall behind
 * without bound (and be cut with 1013); a sender never runs more than
 * LAG_WINDOWS windows ahead of this.
 */
static uint64_t room_delivered(const struct ch_bench_thread *t, uint32_t room)
{
	const struct ch_bench_run *run = t->run;
	uint64_t n = 0;

	if (!run->members_run[room])
		return UINT64_MAX;
	for (unsigned i = 0; i < run->o.threads; i++)
		n += CH_BENCH_GET(&run->threads[i], room_recv[room]);
	return n / run->members_run[room];
}

static void tick_fanout(struct ch_bench_thread *t)
{
	const struct ch_bench_opts *o = &t->run->o;

	for (uint32_t i = 0; i < t->nsenders; i++) {
		struct ch_bench_conn *c = &t->conns[t->senders[i]];
		if (c->state != CH_CONN_OPEN || c->closing)
			continue;
		if (o->rate > 0) {
			uint64_t interval = (uint64_t)(NS_PER_S / o->rate);
			if (interval == 0)
				interval = 1;
			if (!c->next_due)	/* rooms start staggered over one interval */
				c->next_due = t->run->t_run + interval * c->room / o->rooms;
			while (c->next_due <= t->now) {
				if (send_msg(t, c, c->next_due, 0) < 0)
					break;
				c->next_due += interval;
			}
			if (!t->wake_at || c->next_due < t->wake_at)
				t->wake_at = c->next_due;
		} else {
			uint64_t done = room_delivered(t, c->room);
			uint64_t ahead = (uint64_t)o->window * LAG_WINDOWS;
			while (c->unanswered < o->window && (done == UINT64_MAX || c->counter < done + ahead))
				if (send_msg(t, c, t->now, 0) < 0)
					break;
		}
	}
}

static void tick_broadcast(struct ch_bench_thread *t)
{
	/* Pairs with the CAS that moves the round on (ch_scen_flush_round, main). */
	uint64_t r = atomic_load_explicit(&t->run->bcast, memory_order_acquire) >> 32;

	if (r > t->bc_round) {
		t->bc_round = r;
		t->bc_count = 0;
	}
	if (t->bc_sent == r + 1)
		return;
	t->bc_sent = r + 1;
	for (uint32_t i = 0; i < t->nsenders; i++) {
		struct ch_bench_conn *c = &t->conns[t->senders[i]];
		if (c->state == CH_CONN_OPEN && !c->closing)
			send_msg(t, c, t->now, (uint32_t)r);
	}
}

static void tick_idle(struct ch_bench_thread *t)
{
	uint64_t every = (uint64_t)t->run->o.ping_ms * NS_PER_MS;

	/* Connections opened in slot order, so their ping times are in slot order too. */
	for (uint32_t k = 0; k < t->nconns; k++) {
		struct ch_bench_conn *c = &t->conns[t->ping_cursor];
		if (c->state == CH_CONN_OPEN && !c->closing) {
			if (c->next_ping > t->now)
				break;
			send_ping(t, c);
			c->next_ping = t->now + every;
		}
		t->ping_cursor = (t->ping_cursor + 1) % t->nconns;
	}
}

void ch_scen_tick(struct ch_bench_thread *t, int phase)
{
	t->wake_at = 0;
	switch (t->run->o.scenario) {
	case CH_SCEN_FANOUT:
		if (phase == CH_PHASE_RUN)
			tick_fanout(t);
		break;
	case CH_SCEN_BROADCAST:
		if (phase == CH_PHASE_RUN)
			tick_broadcast(t);
		break;
	case CH_SCEN_IDLE:
		if (t->nconns)
			tick_idle(t);
		break;
	case CH_SCEN_HISTORY:
		if (phase != CH_PHASE_RUN)
			break;
		if (t->run->o.rate > 0) {
			tick_history_rate(t);
		} else if (!t->kicked) {
			t->kicked = 1;
			for (uint32_t i = 0; i < t->nconns; i++)
				if (t->conns[i].state == CH_CONN_OPEN)
					send_history_request(t, &t->conns[i], t->now);
		}
		break;
	default:
		break;
	}
}

/*
 * Adds this batch's deliveries of the current round to the run's count;
 * the add that completes the round starts the next one and wakes the
 * other threads. acq_rel: pairs with the acquire loads in tick_broadcast
 * and count_round, and with the other threads' CAS here.
 */
void ch_scen_flush_round(struct ch_bench_thread *t)
{
	struct ch_bench_run *run = t->run;

	if (run->o.scenario != CH_SCEN_BROADCAST || t->bc_count == 0)
		return;
	uint64_t v = atomic_load_explicit(&run->bcast, memory_order_acquire);
	for (;;) {
		if ((v >> 32) != t->bc_round)
			break;	/* the round moved on (timeout): these are late */
		uint64_t nv = v + t->bc_count;
		int done = (nv & BCAST_COUNT_MASK) >= run->bcast_need;
		if (done)
			nv = (t->bc_round + 1) << 32;
		if (atomic_compare_exchange_weak_explicit(&run->bcast, &v, nv, memory_order_acq_rel,
							  memory_order_acquire)) {
			if (done) {
				CH_BENCH_ADD(&t->st, rounds, 1);
				ch_bench_wake_all(run, t->index);
			}
			break;
		}
	}
	t->bc_count = 0;
}
