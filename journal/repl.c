/*
 * Replication, the core (see repl.h for the design, repl_int.h for how the
 * work is split): the entry points the journal calls (but ch_repl_hold and
 * ch_repl_appended, in repl_primary.c), the role and the ROLE file, the
 * secret, the epoch history of the log, the connection slots and their
 * I/O (framing, dispatch by message and kind, heartbeats and timeouts),
 * promotion, fencing (the probe of the peer, at start and while no standby
 * is attached, and the demotion it can cause), and the role and peer
 * stats. It runs on the journal's thread and never blocks on the network
 * (every socket is non-blocking), except for the fencing probe at start,
 * which is bounded by CH_REPL_PROBE_MS.
 *
 * Invariants: the role changes at run time only after the ROLE file says
 * the new role durably (a forgotten promotion would make two primaries);
 * r->epoch is the highest epoch in the log, at least 1, and epochs[] says
 * where each epoch of the log begins, in log order; a message is handled
 * only once it is whole in the input buffer, and nothing but HELLO, AUTH
 * and ERROR is handled before the peer's HELLO (and AUTH, with a secret).
 */
#define _GNU_SOURCE
#include "journal/repl_int.h"

#include "common/log.h"
#include "journal/proto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#define REPL_READ_CHUNK (256u << 10)	/* recv at most this per call */

/* ---------------------------------------------------------------------- */
/* Settings: the secret and the ROLE file                                 */

static int read_secret(struct ch_repl *r, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ch_err("replication: open %s: %s", path, strerror(errno));
		return -1;
	}
	/* A read may return part of a file: read until end of file or the
	 * buffer is full (a longer secret is cut there, as before). */
	ssize_t n = 0, got = 1;
	while (got != 0 && (size_t)n < sizeof(r->secret)) {
		got = read(fd, r->secret + n, sizeof(r->secret) - (size_t)n);
		if (got < 0 && errno != EINTR)
			break;
		n += got > 0 ? got : 0;
	}
	int saved = errno;
	close(fd);
	if (got < 0) {
		ch_err("replication: read %s: %s", path, strerror(saved));
		return -1;
	}
	while (n > 0 && (r->secret[n - 1] == '\n' || r->secret[n - 1] == '\r'))
		n--;
	if (n == 0) {
		ch_err("replication: secret_file %s is empty", path);
		return -1;
	}
	r->secret_len = (size_t)n;
	return 0;
}

/* The role a promotion or a demotion left, or -1 when there is no file. */
static int read_role_file(const struct ch_repl *r)
{
	char path[CH_PATH_MAX + 32], text[16] = "";
	snprintf(path, sizeof(path), "%s/" CH_REPL_ROLE_FILE, r->dir);
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	if (!fgets(text, sizeof(text), f))
		text[0] = '\0';
	fclose(f);
	if (strncmp(text, "primary", 7) == 0)
		return CH_ROLE_PRIMARY;
	if (strncmp(text, "standby", 7) == 0)
		return CH_ROLE_STANDBY;
	ch_warn("replication: %s says neither primary nor standby; ignored", path);
	return -1;
}

/* Durably: a promotion that is forgotten at the next start would make
 * two primaries. Written to a temporary name, synced, renamed. */
static int write_role_file(const struct ch_repl *r, int role)
{
	char path[CH_PATH_MAX + 32], tmp[CH_PATH_MAX + 40];
	int rc = -1;

	snprintf(path, sizeof(path), "%s/" CH_REPL_ROLE_FILE, r->dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		ch_err("replication: open %s: %s", tmp, strerror(errno));
		return -1;
	}
	char text[16];
	int len = snprintf(text, sizeof(text), "%s\n", role_name(role));
	if (write(fd, text, (size_t)len) != len)
		ch_err("replication: write %s: %s", tmp, strerror(errno));
	else if (fsync(fd) != 0)
		ch_err("replication: fsync %s: %s", tmp, strerror(errno));
	else if (rename(tmp, path) != 0)
		ch_err("replication: rename %s: %s", tmp, strerror(errno));
	else
		rc = 0;
	close(fd);
	int dfd = open(r->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		if (rc == 0 && fsync(dfd) != 0) {
			ch_err("replication: fsync %s: %s", r->dir, strerror(errno));
			rc = -1;
		}
		close(dfd);
	}
	return rc;
}

struct ch_repl *ch_repl_new(const struct ch_config *cfg, struct ch_stats *stats,
			    const char *log_dir, const struct ch_repl_host *host)
{
	struct ch_repl *r = calloc(1, sizeof(*r));
	if (!r) {
		ch_err("replication: out of memory");
		return NULL;
	}
	r->cfg = cfg;
	r->stats = stats;
	r->host = *host;
	r->listen_fd = -1;
	r->standby = -1;
	r->epoch = 1;
	snprintf(r->dir, sizeof(r->dir), "%s", log_dir);
	for (int i = 0; i < CH_REPL_MAX_CONNS; i++)
		r->conns[i].fd = -1;
	ch_buf_init(&r->held);
	if (cfg->repl_secret_file[0] && read_secret(r, cfg->repl_secret_file) < 0) {
		free(r);
		return NULL;
	}
	/* Parsed once here (the configuration check already refused a bad
	 * one), not again on every reconnect. */
	char why[CH_CONFIG_ERR_MAX];
	if (cfg->repl_primary[0] &&
	    ch_config_parse_listen(cfg->repl_primary, &r->primary, why, sizeof(why)) < 0) {
		ch_err("replication: primary = %s: %s", cfg->repl_primary, why);
		free(r);
		return NULL;
	}
	r->role = cfg->repl_role;
	int file_role = read_role_file(r);
	if (file_role >= 0 && file_role != r->role)
		ch_info("replication: %s/" CH_REPL_ROLE_FILE " says %s (a promotion or a "
			"fencing), over role = %s in the configuration", r->dir,
			role_name(file_role), role_name(r->role));
	if (file_role >= 0)
		r->role = file_role;
	if (r->role == CH_ROLE_STANDBY && !cfg->repl_primary[0]) {
		ch_err("replication: role = standby needs [replication] primary = host:port");
		free(r);
		return NULL;
	}
	return r;
}

/* ---------------------------------------------------------------------- */
/* Epochs                                                                 */

void ch_repl_observe(struct ch_repl *r, const struct ch_record *rec)
{
	if (r->n_epochs == 0 || rec->epoch != r->epochs[r->n_epochs - 1].epoch) {
		if (r->n_epochs == r->cap_epochs) {
			size_t cap = r->cap_epochs ? 2 * r->cap_epochs : 8;
			struct ch_repl_epoch_start *e = realloc(r->epochs, cap * sizeof(*e));
			if (e) {
				r->epochs = e;
				r->cap_epochs = cap;
			}
		}
		/* Without room only where the epoch starts is forgotten (a
		 * fencing cut is then less exact); the epoch itself never is. */
		if (r->n_epochs < r->cap_epochs)
			r->epochs[r->n_epochs++] = (struct ch_repl_epoch_start){ rec->epoch, rec->pos };
		else
			ch_err("replication: out of memory for the epoch history");
	}
	r->last_epoch = rec->epoch;
	if (rec->epoch > r->epoch) {
		r->epoch = rec->epoch;
		CH_STAT_SET(r->stats, repl_epoch, r->epoch);
	}
}

/* Where the log stops being epoch e's: the start of the first later epoch,
 * or the end. What a standby whose last record is of epoch e may keep. */
uint64_t ch_repl_end_of_epoch(const struct ch_repl *r, uint32_t e)
{
	for (size_t i = 0; i < r->n_epochs; i++)
		if (r->epochs[i].epoch > e)
			return r->epochs[i].start;
	return log_end(r);
}

uint32_t ch_repl_epoch(const struct ch_repl *r)
{
	return r->epoch;
}

int ch_repl_is_standby(const struct ch_repl *r)
{
	return r->role == CH_ROLE_STANDBY;
}

int ch_repl_is_write_request(uint32_t type)
{
	switch (type) {
	case CH_REQ_HELLO:
	case CH_REQ_GET_USER:
	case CH_REQ_LIST_ROOMS:
	case CH_REQ_HISTORY:
	case CH_REQ_JOIN:
	case CH_REQ_UNWATCH:
	case CH_REQ_PRESENCE:	/* who is online: memory only, never in the log */
	case CH_REQ_USERS:
	case CH_REQ_WHO:
	case CH_REQ_INFO:
		return 0;
	default:
		return 1;
	}
}

/* ---------------------------------------------------------------------- */
/* Connections                                                            */

void ch_repl_conn_init(struct ch_repl_conn *c, int fd, enum ch_repl_conn_kind kind,
		       enum ch_repl_conn_state state)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->kind = kind;
	c->state = state;
	ch_buf_init(&c->in);
	ch_buf_init(&c->out);
	c->last_rx_ms = c->last_tx_ms = c->opened_ms = monotonic_ms();
	if (getrandom(c->nonce, sizeof(c->nonce), 0) != (ssize_t)sizeof(c->nonce)) {
		/* The nonce only has to be fresh; never fail a connection on it. */
		uint64_t t = monotonic_ms() ^ (uint64_t)getpid() << 32;
		memcpy(c->nonce, &t, sizeof(t));
	}
}

void ch_repl_conn_close(struct ch_repl *r, struct ch_repl_conn *c, const char *why)
{
	int idx = (int)(c - r->conns);

	if (c->fd < 0)
		return;
	if (why && !c->quiet)
		ch_info("replication: %s connection %s: %s",
			c->kind == CH_REPL_CONN_FOLLOW ? "primary" : "standby",
			c->state == CH_REPL_CONN_STREAM ? "closed" : "dropped", why);
	close(c->fd);
	c->fd = -1;
	ch_buf_free(&c->in);
	ch_buf_free(&c->out);
	if (c->reader)
		ch_log_reader_close(c->reader);
	c->reader = NULL;
	c->kind = CH_REPL_CONN_FREE;
	if (idx == r->standby) {
		r->standby = -1;
		CH_STAT_SET(r->stats, repl_connected, 0);
	}
	if (r->role == CH_ROLE_STANDBY) {
		CH_STAT_SET(r->stats, repl_connected, 0);
		r->next_connect_ms = monotonic_ms() + r->backoff_ms;
		backoff_grow(r);
	}
}

/* Queue ERROR, then close once it is out (or at once if it cannot be). */
void ch_repl_conn_refuse(struct ch_repl *r, struct ch_repl_conn *c, const char *why)
{
	ch_warn("replication: refusing the %s: %s",
		c->kind == CH_REPL_CONN_FOLLOW ? "primary" : "peer", why);
	ch_repl_put_error(&c->out, why);
	c->state = CH_REPL_CONN_CLOSING;
	if (c->out.failed)
		ch_repl_conn_close(r, c, NULL);
}

/* Send what is queued; 0, or -1 when the connection was closed. */
int ch_repl_conn_flush(struct ch_repl *r, struct ch_repl_conn *c)
{
	while (conn_pending(c) > 0) {
		ssize_t n = send(c->fd, c->out.p + c->out_off, conn_pending(c),
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			char why[CH_REPL_WHY_MAX];
			snprintf(why, sizeof(why), "send: %s", strerror(errno));
			ch_repl_conn_close(r, c, why);
			return -1;
		}
		c->out_off += (size_t)n;
		c->last_tx_ms = monotonic_ms();
	}
	c->out.len = c->out_off = 0;
	if (c->state == CH_REPL_CONN_CLOSING) {
		ch_repl_conn_close(r, c, "refused");
		return -1;
	}
	return 0;
}

static int handle_msg(struct ch_repl *r, struct ch_repl_conn *c, const struct ch_repl_msg *m)
{
	char why[CH_REPL_WHY_MAX];
	int ready_before = c->got_hello && c->authed;

	switch (m->type) {
	case CH_REPL_HELLO:
		ch_repl_on_hello(r, c, m);
		break;
	case CH_REPL_AUTH:
		ch_repl_on_auth(r, c, m);
		break;
	case CH_REPL_ERROR:
		if (ch_repl_get_error(m, why, sizeof(why)) < 0)
			snprintf(why, sizeof(why), "(malformed ERROR)");
		if (c->quiet)
			ch_debug("replication: the peer answered the probe: %s", why);
		else
			ch_warn("replication: the peer refused: %s", why);
		ch_repl_conn_close(r, c, "the peer refused");
		return 0;
	default:
		if (!c->got_hello || !c->authed) {
			ch_repl_conn_refuse(r, c, "a message before the handshake completed");
			return 0;
		}
		if (c->kind == CH_REPL_CONN_FOLLOW && m->type == CH_REPL_START)
			return ch_repl_on_start(r, c, m);
		if (c->kind == CH_REPL_CONN_FOLLOW && m->type == CH_REPL_RECORDS)
			return ch_repl_on_records(r, c, m);
		if (c->kind == CH_REPL_CONN_ACCEPTED && m->type == CH_REPL_ACK &&
		    c->state == CH_REPL_CONN_STREAM)
			return ch_repl_on_ack(r, c, m);
		snprintf(why, sizeof(why), "unexpected message type %u", m->type);
		ch_repl_conn_refuse(r, c, why);
		return 0;
	}
	if (c->fd >= 0 && c->state == CH_REPL_CONN_HANDSHAKE && !ready_before &&
	    c->got_hello && c->authed) {
		if (c->kind == CH_REPL_CONN_ACCEPTED)
			ch_repl_accepted_ready(r, c);
		else
			return ch_repl_follow_ready(r, c);
	}
	return 0;
}

/* Read what the socket has and handle every whole message. -1: fatal. */
static int conn_input(struct ch_repl *r, struct ch_repl_conn *c)
{
	for (;;) {
		if (ch_buf_reserve(&c->in, REPL_READ_CHUNK) < 0) {
			ch_repl_conn_close(r, c, "out of memory");
			return 0;
		}
		ssize_t n = recv(c->fd, c->in.p + c->in.len, REPL_READ_CHUNK, MSG_DONTWAIT);
		if (n == 0) {
			ch_repl_conn_close(r, c, "the peer closed the connection");
			return 0;
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			char why[CH_REPL_WHY_MAX];
			snprintf(why, sizeof(why), "recv: %s", strerror(errno));
			ch_repl_conn_close(r, c, why);
			return 0;
		}
		c->in.len += (size_t)n;
		c->last_rx_ms = monotonic_ms();
		/* Apply what came before reading more: the buffer stays near
		 * one message's size whatever the primary's pace. */
		if ((size_t)n < REPL_READ_CHUNK || c->in.len - c->in_off >= CH_REPL_MSG_MAX)
			break;
	}
	while (c->fd >= 0 && c->state != CH_REPL_CONN_CLOSING) {
		struct ch_repl_msg m;
		long used = ch_repl_msg_cut(c->in.p + c->in_off, c->in.len - c->in_off, &m);
		if (used < 0) {
			ch_repl_conn_close(r, c, "a malformed message header");
			return 0;
		}
		if (used == 0)
			break;
		c->in_off += (size_t)used;
		if (handle_msg(r, c, &m) < 0)
			return -1;
	}
	if (c->fd < 0)
		return 0;
	if (c->in_off == c->in.len) {
		c->in.len = c->in_off = 0;
	} else if (c->in_off > 0) {
		memmove(c->in.p, c->in.p + c->in_off, c->in.len - c->in_off);
		c->in.len -= c->in_off;
		c->in_off = 0;
	}
	if (c->kind == CH_REPL_CONN_FOLLOW && ch_repl_standby_ack(r, c) < 0)
		return -1;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Sockets                                                                */

struct ch_repl_conn *ch_repl_conn_slot(struct ch_repl *r)
{
	for (int i = 0; i < CH_REPL_MAX_CONNS; i++)
		if (r->conns[i].fd < 0)
			return &r->conns[i];
	return NULL;
}

void ch_repl_addr_of(const struct sockaddr_storage *ss, uint32_t *addr, uint32_t *port)
{
	*addr = *port = 0;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
		*addr = ntohl(sin->sin_addr.s_addr);
		*port = ntohs(sin->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		*port = ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	}
}

void ch_repl_tune_socket(int fd)
{
	int one = 1;
	/* Small ACK and heartbeat messages must not wait for Nagle. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Primary with a peer and no standby: is the peer a newer primary? */
static void probe_start(struct ch_repl *r, uint64_t now)
{
	struct ch_repl_conn *c;

	if (r->role != CH_ROLE_PRIMARY || !r->cfg->repl_primary[0] || r->standby >= 0 ||
	    now < r->next_probe_ms)
		return;
	r->next_probe_ms = now + CH_REPL_PROBE_EVERY_MS;
	for (int i = 0; i < CH_REPL_MAX_CONNS; i++)
		if (r->conns[i].fd >= 0 && r->conns[i].probe)
			return;		/* one at a time */
	c = ch_repl_conn_slot(r);
	if (c)
		ch_repl_dial(r, c, 1);
}

int ch_repl_pollfds(struct ch_repl *r, struct pollfd *pfds, int *timeout_ms)
{
	int n = 0;
	uint64_t now = monotonic_ms();
	uint64_t next = now + CH_REPL_HEARTBEAT_MS;

	if (r->listen_fd >= 0)
		pfds[n++] = (struct pollfd){ .fd = r->listen_fd, .events = POLLIN };
	for (int i = 0; i < CH_REPL_MAX_CONNS; i++) {
		struct ch_repl_conn *c = &r->conns[i];
		if (c->fd < 0)
			continue;
		short ev = c->state == CH_REPL_CONN_CONNECTING ? POLLOUT : POLLIN;
		/* Queued bytes, or log the standby has yet to get (catch-up
		 * refills once the socket takes more). */
		if (conn_pending(c) > 0 ||
		    (c->kind == CH_REPL_CONN_ACCEPTED && c->state == CH_REPL_CONN_STREAM &&
		     c->send_pos < ch_repl_stream_limit(r)))
			ev |= POLLOUT;
		pfds[n++] = (struct pollfd){ .fd = c->fd, .events = ev };
	}
	if (r->role == CH_ROLE_STANDBY && r->conns[0].fd < 0 && r->next_connect_ms < next)
		next = r->next_connect_ms;
	if (r->role == CH_ROLE_PRIMARY && r->cfg->repl_primary[0] && r->standby < 0 &&
	    r->next_probe_ms < next)
		next = r->next_probe_ms;
	if (r->held_off < r->held.len) {
		struct ch_repl_held h;
		memcpy(&h, r->held.p + r->held_off, sizeof(h));
		if (h.deadline_ms < next)
			next = h.deadline_ms;
	}
	int ms = next > now ? (int)(next - now) : 0;
	if (ms < *timeout_ms)
		*timeout_ms = ms;
	return n;
}

/* Heartbeats and silent peers. -1 when the log could not be synced: the
 * journal stops, as for any failed fsync. */
static int conn_timers(struct ch_repl *r, struct ch_repl_conn *c, uint64_t now)
{
	if (c->fd < 0)
		return 0;
	if (now - c->last_rx_ms > CH_REPL_PEER_TIMEOUT_MS) {
		ch_repl_conn_close(r, c, "the peer has been silent too long (network cut?)");
		return 0;
	}
	/* A peer that trickles bytes must not hold a slot without ever
	 * proving the secret. */
	if (c->state != CH_REPL_CONN_STREAM && now - c->opened_ms > 2 * CH_REPL_PEER_TIMEOUT_MS) {
		ch_repl_conn_close(r, c, "the handshake did not complete in time");
		return 0;
	}
	if (c->state != CH_REPL_CONN_STREAM || now - c->last_tx_ms < CH_REPL_HEARTBEAT_MS ||
	    conn_pending(c) > 0)
		return 0;
	/* Quiet for a heartbeat: the primary sends an empty RECORDS, the
	 * standby an ACK. */
	if (c->kind == CH_REPL_CONN_ACCEPTED) {
		ch_repl_put_records_head(&c->out, ch_repl_stream_limit(r), realtime_ms(), 0);
	} else {
		c->need_ack = 1;
		if (ch_repl_standby_ack(r, c) < 0)
			return -1;
	}
	ch_repl_conn_flush(r, c);
	return 0;
}

int ch_repl_process(struct ch_repl *r, const struct pollfd *pfds, int n)
{
	uint64_t now;

	for (int k = 0; k < n; k++) {
		if (!pfds[k].revents)
			continue;
		if (pfds[k].fd == r->listen_fd) {
			ch_repl_on_accept(r);
			continue;
		}
		for (int i = 0; i < CH_REPL_MAX_CONNS; i++) {
			struct ch_repl_conn *c = &r->conns[i];
			if (c->fd != pfds[k].fd)
				continue;
			if (c->state == CH_REPL_CONN_CONNECTING) {
				ch_repl_follow_connected(r, c);
				break;
			}
			if ((pfds[k].revents & (POLLIN | POLLHUP | POLLERR)) && conn_input(r, c) < 0)
				return -1;
			if (c->fd >= 0 && c->kind == CH_REPL_CONN_ACCEPTED &&
			    c->state == CH_REPL_CONN_STREAM)
				ch_repl_stream_fill(r, c);
			if (c->fd >= 0)
				ch_repl_conn_flush(r, c);
			break;
		}
	}
	now = monotonic_ms();
	for (int i = 0; i < CH_REPL_MAX_CONNS; i++)
		if (conn_timers(r, &r->conns[i], now) < 0)
			return -1;
	if (r->role == CH_ROLE_STANDBY && r->conns[0].fd < 0 && now >= r->next_connect_ms)
		ch_repl_follow_connect(r);
	probe_start(r, now);
	ch_repl_release_held(r, now);
	int queued = r->queued;
	r->queued = 0;
	return queued;
}

/* ---------------------------------------------------------------------- */
/* Start, promotion, fencing probe                                        */

/* Wait for fd to be ready for ev until deadline; 1 ready, 0 timed out. */
static int wait_fd(int fd, short ev, uint64_t deadline)
{
	for (;;) {
		uint64_t now = monotonic_ms();
		if (now >= deadline)
			return 0;
		struct pollfd p = { .fd = fd, .events = ev };
		int rc = poll(&p, 1, (int)(deadline - now));
		if (rc > 0)
			return 1;
		if (rc < 0 && errno != EINTR)
			return 0;
	}
}

/*
 * A primary whose configuration names a peer asks it, once at start,
 * whether it is a primary of a newer epoch (it was promoted while we were
 * away). 1 yes (its HELLO, authenticated when a secret is set), 0 no or
 * no answer in CH_REPL_PROBE_MS.
 */
static int probe_peer(struct ch_repl *r, uint32_t *peer_epoch)
{
	struct ch_repl_conn *c = &r->conns[0];
	uint64_t deadline = monotonic_ms() + CH_REPL_PROBE_MS;
	int newer = 0;

	/* The same non-blocking connect as the periodic probe's (probe_start);
	 * here we wait for it ourselves (POLLOUT below), not in the journal's
	 * poll. */
	ch_repl_dial(r, c, 1);
	if (c->fd < 0)
		return 0;
	c->state = CH_REPL_CONN_HANDSHAKE;
	ch_repl_queue_hello(r, c, CH_ROLE_PRIMARY);
	while (c->fd >= 0 && !(c->got_hello && c->authed)) {
		if (conn_pending(c) && wait_fd(c->fd, POLLOUT, deadline) && ch_repl_conn_flush(r, c) < 0)
			break;
		if (!wait_fd(c->fd, POLLIN, deadline))
			break;
		char buf[4096];
		ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR)))
			break;
		if (n > 0)
			ch_buf_append(&c->in, buf, (size_t)n);
		struct ch_repl_msg m;
		long used;
		while (c->fd >= 0 && !(c->got_hello && c->authed) &&
		       (used = ch_repl_msg_cut(c->in.p + c->in_off, c->in.len - c->in_off, &m)) > 0) {
			c->in_off += (size_t)used;
			if (m.type == CH_REPL_HELLO)
				ch_repl_on_hello(r, c, &m);
			else if (m.type == CH_REPL_AUTH)
				ch_repl_on_auth(r, c, &m);
			else
				break;
		}
		if (c->state == CH_REPL_CONN_CLOSING)
			break;
	}
	if (c->fd >= 0 && c->got_hello && c->authed && c->peer.role == CH_ROLE_PRIMARY &&
	    c->peer.epoch > r->epoch) {
		newer = 1;
		*peer_epoch = c->peer.epoch;
	} else if (c->fd >= 0 && c->got_hello && c->authed) {
		ch_info("replication: the peer %s is a %s at epoch %u: this node stays primary",
			r->cfg->repl_primary, role_name((int)c->peer.role), c->peer.epoch);
	} else {
		ch_info("replication: no answer from the peer %s: this node starts as primary",
			r->cfg->repl_primary);
	}
	ch_repl_conn_close(r, c, NULL);
	return newer;
}

/* A primary learned of a newer one (at start or while running): step
 * down and follow it. */
int ch_repl_demote(struct ch_repl *r, uint32_t peer_epoch)
{
	ch_warn("replication: fencing: the peer %s is primary at epoch %u, newer than this "
		"node's %u; stepping down to standby: writes are refused from now on and "
		"what the new primary never had will be cut", r->cfg->repl_primary, peer_epoch,
		r->epoch);
	if (write_role_file(r, CH_ROLE_STANDBY) < 0)
		return -1;
	for (int i = 0; i < CH_REPL_MAX_CONNS; i++)
		ch_repl_conn_close(r, &r->conns[i], NULL);
	if (r->listen_fd >= 0)
		close(r->listen_fd);
	r->listen_fd = -1;
	r->role = CH_ROLE_STANDBY;
	set_role_stats(r);
	/* No standby will confirm them now: every held reply fails. */
	ch_repl_release_held(r, UINT64_MAX);
	r->backoff_ms = CH_REPL_BACKOFF_MIN_MS;
	r->next_connect_ms = monotonic_ms();
	return 0;
}

int ch_repl_start(struct ch_repl *r, struct ch_log_writer **log)
{
	uint32_t peer_epoch = 0;

	r->log = log;
	r->backoff_ms = CH_REPL_BACKOFF_MIN_MS;
	/* Nothing is attached or held yet: demoting is writing ROLE. */
	if (r->role == CH_ROLE_PRIMARY && r->cfg->repl_primary[0] && probe_peer(r, &peer_epoch) &&
	    ch_repl_demote(r, peer_epoch) < 0)
		return -1;
	r->next_connect_ms = monotonic_ms();
	r->next_probe_ms = monotonic_ms() + CH_REPL_PROBE_EVERY_MS;
	set_role_stats(r);
	CH_STAT_SET(r->stats, repl_sent_pos, log_end(r));
	if (r->role == CH_ROLE_PRIMARY)
		return ch_repl_open_listener(r);
	ch_info("replication: standby at epoch %u, log end %llu, following %s", r->epoch,
		(unsigned long long)log_end(r), r->cfg->repl_primary);
	ch_repl_follow_connect(r);
	return 0;
}

int ch_repl_promote(struct ch_repl *r)
{
	uint64_t t0 = monotonic_ms();
	uint8_t buf[CH_RECORD_HDR_SIZE + 16];
	uint8_t payload[4];
	struct ch_payload_writer pw;
	size_t plen = 0;

	if (r->role == CH_ROLE_PRIMARY) {
		ch_info("replication: promote asked, but this node is already primary (epoch %u)",
			r->epoch);
		return 0;
	}
	/* What came whole is appended and applied already; a message cut
	 * in the middle is dropped with the connection. */
	ch_repl_conn_close(r, &r->conns[0], "promoted to primary");
	ch_payload_writer_init(&pw, payload, sizeof(payload));
	ch_payload_put_u32(&pw, r->epoch);
	ch_payload_writer_finish(&pw, &plen);
	struct ch_record rec = {
		.type = CH_REC_EPOCH_BUMPED,
		.epoch = r->epoch + 1,
		.pos = log_end(r),
		.ts_ms = realtime_ms(),
		.payload = payload,
		.payload_len = (uint32_t)plen,
	};
	size_t n = ch_record_encode(buf, sizeof(buf), &rec);
	int rc = n ? ch_log_append(*r->log, buf, n) : -EINVAL;
	if (rc == 0)
		rc = ch_log_sync(*r->log);
	if (rc < 0) {
		ch_err("replication: promotion: writing the epoch record failed: %s", strerror(-rc));
		return -1;
	}
	ch_record_decode(buf, n, rec.pos, &rec);
	ch_repl_observe(r, &rec);
	if (r->host.apply(r->host.arg, &rec) != 0)
		return -1;
	/* The ROLE file after the record: a crash between the two leaves a
	 * standby whose log has the new epoch, which no old primary can feed. */
	if (write_role_file(r, CH_ROLE_PRIMARY) < 0)
		return -1;
	r->role = CH_ROLE_PRIMARY;
	r->acked = 0;
	r->lag_head = r->lag_tail = 0;
	r->recs_acked = r->recs_total;
	set_role_stats(r);
	CH_STAT_SET(r->stats, journal_log_end, log_end(r));
	CH_STAT_SET(r->stats, repl_peer_addr, 0);
	CH_STAT_SET(r->stats, repl_peer_port, 0);
	ch_info("replication: promoted to primary at epoch %u, log end %llu, in %llu ms",
		r->epoch, (unsigned long long)log_end(r), (unsigned long long)(monotonic_ms() - t0));
	return ch_repl_open_listener(r) < 0 ? -1 : 0;
}

void ch_repl_free(struct ch_repl *r)
{
	if (!r)
		return;
	for (int i = 0; i < CH_REPL_MAX_CONNS; i++)
		ch_repl_conn_close(r, &r->conns[i], NULL);
	if (r->listen_fd >= 0)
		close(r->listen_fd);
	ch_buf_free(&r->held);
	free(r->epochs);
	explicit_bzero(r->secret, sizeof(r->secret));
	free(r);
}
