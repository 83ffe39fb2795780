/*
 * The master process: see master.h.
 *
 * Signals, as nginx handles them: each handler only sets a flag; the loop
 * sleeps in ppoll() with the signals unblocked only while it sleeps, so a
 * signal can never slip in between checking the flags and going to sleep.
 *
 * Listening sockets: for every listen address the master opens one socket
 * per worker, all bound with SO_REUSEPORT, and worker i accepts only on
 * socket i. The kernel spreads new connections over the sockets by a hash
 * of their addresses, so the workers get an even share without a shared
 * accept queue they would wake each other up for. The master keeps every
 * socket open, so when a worker dies the connections waiting in its
 * socket's backlog are accepted by its replacement instead of being lost.
 */
#define _GNU_SOURCE
#include "master/master.h"

#include "common/auth.h"
#include "common/log.h"
#include "journal/journal.h"
#include "worker/api.h"
#include "master/proctitle.h"
#include "shm/shm.h"
#include "worker/static.h"
#include "worker/worker.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

enum ch_child_kind {
	CH_CHILD_WORKER,	/* serves clients on its listening sockets */
	CH_CHILD_JOURNAL,	/* the single writer of the log */
};

struct ch_child {
	enum ch_child_kind kind;
	int index;
	pid_t pid;		/* 0 while not running */
	uint64_t started_ms;
	uint32_t backoff_ms;	/* wait before the next restart */
	uint64_t restart_at_ms;	/* 0: no restart scheduled */
};

struct ch_master {
	struct ch_config *cfg;
	struct ch_static web;
	struct ch_shm shm;
	int *listen_fds;	/* [listener * workers + worker] */
	/* [0] the journal, [1 + i] worker i */
	struct ch_child children[1 + CH_MAX_WORKERS];
	int n_children;
	int repair;		/* the journal's first start may cut a damaged log */
	int stopping;
	int journal_told;	/* SIGTERM sent to the journal (workers are gone) */
	int exit_status;
	uint64_t stop_deadline_ms;
};

static const char *child_name(const struct ch_child *ch, char *buf, size_t len)
{
	if (ch->kind == CH_CHILD_JOURNAL)
		snprintf(buf, len, "journal");
	else
		snprintf(buf, len, "worker %d", ch->index);
	return buf;
}

/* ---------------------------------------------------------------------- */
/* Signals                                                                */

static volatile sig_atomic_t sig_child, sig_stop, sig_reload;

static void on_signal(int sig)
{
	switch (sig) {
	case SIGCHLD:
		sig_child = 1;
		break;
	case SIGTERM:
	case SIGINT:
		sig_stop = 1;
		break;
	case SIGHUP:
		sig_reload = 1;
		break;
	}
}

static const struct {
	int sig;
	const char *name;
	const char *action;
} master_signals[] = {
	{ SIGCHLD, "SIGCHLD", "reap a child and restart it" },
	{ SIGTERM, "SIGTERM", "stop: finish requests in flight, then exit" },
	{ SIGINT, "SIGINT", "stop, as SIGTERM" },
	{ SIGHUP, "SIGHUP", "re-read and validate the configuration" },
};

static void install_signals(sigset_t *sleep_mask)
{
	struct sigaction sa = { 0 };
	sigset_t block;

	sigemptyset(&block);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(master_signals) / sizeof(master_signals[0]); i++) {
		sigaction(master_signals[i].sig, &sa, NULL);
		sigaddset(&block, master_signals[i].sig);
	}
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sigprocmask(SIG_BLOCK, &block, sleep_mask);
	for (size_t i = 0; i < sizeof(master_signals) / sizeof(master_signals[0]); i++)
		sigdelset(sleep_mask, master_signals[i].sig);
}

static uint64_t monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------------- */
/* Listening sockets                                                      */

static int open_listener(const struct ch_listen_addr *a)
{
	int fd = socket(a->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;

	if (fd < 0) {
		ch_err("listen %s: socket: %s", a->text, strerror(errno));
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
		ch_err("listen %s: setsockopt: %s", a->text, strerror(errno));
		goto fail;
	}
	if (a->addr.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&a->addr, a->addrlen) < 0) {
		ch_err("listen %s: bind: %s", a->text, strerror(errno));
		goto fail;
	}
	if (listen(fd, CH_LISTEN_BACKLOG) < 0) {
		ch_err("listen %s: listen: %s", a->text, strerror(errno));
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

static int open_listeners(struct ch_master *m)
{
	const struct ch_config *cfg = m->cfg;
	size_t n = (size_t)cfg->n_listen * (size_t)cfg->workers;

	m->listen_fds = calloc(n, sizeof(int));
	if (!m->listen_fds)
		return -1;
	for (int l = 0; l < cfg->n_listen; l++) {
		for (int i = 0; i < cfg->workers; i++) {
			int fd = open_listener(&cfg->listen[l]);
			if (fd < 0)
				return -1;
			m->listen_fds[l * cfg->workers + i] = fd;
		}
		ch_info("listening on %s (%d sockets)", cfg->listen[l].text, cfg->workers);
	}
	return 0;
}

static void close_listeners(struct ch_master *m)
{
	size_t n = (size_t)m->cfg->n_listen * (size_t)m->cfg->workers;
	for (size_t i = 0; m->listen_fds && i < n; i++) {
		if (m->listen_fds[i] >= 0)
			close(m->listen_fds[i]);
		m->listen_fds[i] = -1;
	}
}

/* ---------------------------------------------------------------------- */
/* Children                                                               */

static void child_main(struct ch_master *m, struct ch_child *ch) __attribute__((noreturn));

static void child_main(struct ch_master *m, struct ch_child *ch)
{
	const struct ch_config *cfg = m->cfg;
	int fds[CH_MAX_LISTEN];
	char name[32];

	child_name(ch, name, sizeof(name));
	ch_log_set_name(name);
	ch_proctitle_set("chatd: %s", name);
	/* Keep only this worker's sockets; the journal keeps none. */
	for (int l = 0; l < cfg->n_listen; l++) {
		for (int i = 0; i < cfg->workers; i++) {
			int fd = m->listen_fds[l * cfg->workers + i];
			if (ch->kind == CH_CHILD_WORKER && i == ch->index)
				fds[l] = fd;
			else
				close(fd);
		}
	}
	int status;
	if (ch->kind == CH_CHILD_JOURNAL)
		status = ch_journal_run(cfg, &m->shm, m->repair);
	else
		status = ch_worker_run(cfg, ch->index, fds, cfg->n_listen, &m->web, &m->shm);
	_exit(status);
}

static struct ch_stats *child_stats(struct ch_master *m, const struct ch_child *ch)
{
	return ch_shm_stats(&m->shm, ch->kind == CH_CHILD_JOURNAL ? CH_SHM_PROC_JOURNAL
								  : CH_SHM_PROC_WORKER(ch->index));
}

static int spawn(struct ch_master *m, struct ch_child *ch)
{
	CH_STAT_SET(child_stats(m, ch), ready, 0);
	pid_t pid = fork();

	if (pid < 0) {
		ch_err_sys("fork");
		ch->restart_at_ms = monotonic_ms() + CH_RESTART_BACKOFF_MAX_MS;
		return -1;
	}
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		signal(SIGCHLD, SIG_DFL);
		sigprocmask(SIG_SETMASK, &none, NULL);
		child_main(m, ch);
	}
	char name[32];
	ch->pid = pid;
	ch->started_ms = monotonic_ms();
	ch->restart_at_ms = 0;
	if (ch->kind == CH_CHILD_JOURNAL)
		m->repair = 0;	/* only the first start repairs */
	ch_info("%s started, pid %d", child_name(ch, name, sizeof(name)), (int)pid);
	return 0;
}

static void describe_status(int status, char *out, size_t len)
{
	if (WIFEXITED(status))
		snprintf(out, len, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(out, len, "killed by signal %d (%s)%s", WTERMSIG(status),
			 strsignal(WTERMSIG(status)), WCOREDUMP(status) ? ", core dumped" : "");
	else
		snprintf(out, len, "status 0x%x", status);
}

static void begin_stop(struct ch_master *m);

static void reap(struct ch_master *m)
{
	int status;
	pid_t pid;
	uint64_t now = monotonic_ms();

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct ch_child *ch = NULL;
		for (int i = 0; i < m->n_children; i++)
			if (m->children[i].pid == pid)
				ch = &m->children[i];
		if (!ch)
			continue;
		char why[128], name[32];
		describe_status(status, why, sizeof(why));
		child_name(ch, name, sizeof(name));
		ch->pid = 0;
		if (m->stopping) {
			ch_info("%s (pid %d) %s", name, (int)pid, why);
			continue;
		}
		if (ch->kind == CH_CHILD_JOURNAL && WIFEXITED(status) &&
		    WEXITSTATUS(status) == CH_JOURNAL_EXIT_REFUSED) {
			/* Restarting would refuse again: stop, and say why. */
			ch_err("the journal refused the log (see above); chatd stops");
			m->exit_status = 1;
			begin_stop(m);
			continue;
		}
		/* A child that dies before it ever got ready would otherwise
		 * be restarted in a tight loop: back off, doubling each time.
		 * One that served, or lived a while, is restarted at once. */
		if (CH_STAT_GET(child_stats(m, ch), ready) ||
		    now - ch->started_ms >= CH_CHILD_STABLE_MS)
			ch->backoff_ms = 0;
		else if (ch->backoff_ms == 0)
			ch->backoff_ms = CH_RESTART_BACKOFF_MIN_MS;
		else if ((ch->backoff_ms *= 2) > CH_RESTART_BACKOFF_MAX_MS)
			ch->backoff_ms = CH_RESTART_BACKOFF_MAX_MS;
		ch->restart_at_ms = now + ch->backoff_ms;
		ch_warn("%s (pid %d) %s; restarting in %u ms", name, (int)pid, why,
			ch->backoff_ms);
	}
}

static int running_children(const struct ch_master *m)
{
	int n = 0;
	for (int i = 0; i < m->n_children; i++)
		n += m->children[i].pid != 0;
	return n;
}

static void signal_children(struct ch_master *m, int sig)
{
	for (int i = 0; i < m->n_children; i++)
		if (m->children[i].pid)
			kill(m->children[i].pid, sig);
}

/* ---------------------------------------------------------------------- */
/* Reload and stop                                                        */

static void reload(struct ch_master *m)
{
	struct ch_config next = *m->cfg;
	char err[CH_CONFIG_ERR_MAX];

	if (!m->cfg->path[0]) {
		ch_info("reload: running on the embedded defaults, nothing to re-read");
		return;
	}
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
		   (unsigned long long)monotonic_ms() * 1000);
	if (ch_config_load(&next, m->cfg->path, err, sizeof(err)) < 0) {
		ch_err("reload refused, nothing changed: %s", err);
	} else {
		/* Applying a changed file to running workers comes with the
		 * admin socket; for now the file is validated and the log
		 * level, which only the master reads here, takes effect. */
		ch_log_set_level((enum ch_log_level)next.log_level);
		m->cfg->log_level = next.log_level;
		ch_info("reload: %s is valid", m->cfg->path);
	}
	sd_notify(0, "READY=1");
}

static void begin_stop(struct ch_master *m)
{
	m->stopping = 1;
	m->stop_deadline_ms = monotonic_ms() + m->cfg->shutdown_timeout_ms + CH_STOP_GRACE_MS;
	sd_notify(0, "STOPPING=1");
	ch_info("stopping: %d children to finish", running_children(m));
	/* Close our copies of the listening sockets: once the workers close
	 * theirs, the kernel refuses new connections instead of queueing
	 * them for nobody. */
	close_listeners(m);
	/* Workers first: the journal stays to answer their last requests
	 * and is told to stop once they are gone (see the main loop). */
	for (int i = 1; i < m->n_children; i++)
		if (m->children[i].pid)
			kill(m->children[i].pid, SIGTERM);
}

static int workers_running(const struct ch_master *m)
{
	int n = 0;
	for (int i = 1; i < m->n_children; i++)
		n += m->children[i].pid != 0;
	return n;
}

/* ---------------------------------------------------------------------- */
/* Start-up                                                               */

static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			ch_warn("setrlimit(RLIMIT_NOFILE): %s", strerror(errno));
	}
}

static int make_data_dir(const char *dir)
{
	if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
		ch_err("data_dir %s: mkdir: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

static int next_timeout_ms(const struct ch_master *m)
{
	uint64_t now = monotonic_ms();
	uint64_t next = UINT64_MAX;

	for (int i = 0; i < m->n_children; i++)
		if (!m->children[i].pid && m->children[i].restart_at_ms)
			next = m->children[i].restart_at_ms < next ? m->children[i].restart_at_ms : next;
	if (m->stopping && m->stop_deadline_ms < next)
		next = m->stop_deadline_ms;
	if (next == UINT64_MAX)
		return -1;
	return next <= now ? 0 : (int)(next - now);
}

int ch_master_run(struct ch_config *cfg, int repair)
{
	static struct ch_master m;
	m.cfg = cfg;
	m.repair = repair;
	sigset_t sleep_mask;

	ch_log_set_name("master");
	ch_proctitle_set("chatd: master");
	raise_fd_limit();
	if (make_data_dir(cfg->data_dir) < 0)
		return 1;
	/* The token key: created once here, before any worker reads it. */
	char key_path[CH_PATH_MAX + 16];
	unsigned char key[CH_KEY_MIN_BYTES];
	ch_api_key_path(cfg, key_path, sizeof(key_path));
	if (ch_key_load_or_create(key_path, key, sizeof(key)) < 0)
		return 1;
	explicit_bzero(key, sizeof(key));
	if (ch_static_load(&m.web, cfg->web_root) < 0)
		return 1;
	install_signals(&sleep_mask);
	if (ch_shm_create(&m.shm, (uint32_t)cfg->room_rings, (uint32_t)cfg->ring_slots,
			  (uint32_t)cfg->ring_slot_size) < 0)
		return 1;
	CH_STAT_SET(ch_shm_stats(&m.shm, CH_SHM_PROC_MASTER), pid, (uint64_t)getpid());
	if (open_listeners(&m) < 0)
		return 1;

	m.n_children = 1 + cfg->workers;
	m.children[0].kind = CH_CHILD_JOURNAL;
	for (int i = 0; i < cfg->workers; i++) {
		m.children[1 + i].kind = CH_CHILD_WORKER;
		m.children[1 + i].index = i;
	}
	for (int i = 0; i < m.n_children; i++)
		if (spawn(&m, &m.children[i]) < 0)
			return 1;
	sd_notifyf(0, "READY=1\nSTATUS=serving with %d workers\nMAINPID=%d", cfg->workers,
		   (int)getpid());
	ch_info("chatd started: %d workers, pid %d", cfg->workers, (int)getpid());

	for (;;) {
		int timeout = next_timeout_ms(&m);
		struct timespec ts = { timeout / 1000, (long)(timeout % 1000) * 1000000 };
		if (!sig_child && !sig_stop && !sig_reload)
			ppoll(NULL, 0, timeout < 0 ? NULL : &ts, &sleep_mask);

		if (sig_child) {
			sig_child = 0;
			reap(&m);
		}
		if (sig_stop) {
			/* A second SIGTERM while stopping changes nothing, but must
			 * be cleared, or the loop would never sleep in ppoll again
			 * and SIGCHLD (unblocked only there) would never arrive. */
			sig_stop = 0;
			if (!m.stopping)
				begin_stop(&m);
		}
		if (sig_reload) {
			sig_reload = 0;
			if (!m.stopping)
				reload(&m);
		}
		if (m.stopping) {
			if (running_children(&m) == 0)
				break;
			if (!workers_running(&m) && m.children[0].pid && !m.journal_told) {
				kill(m.children[0].pid, SIGTERM);
				m.journal_told = 1;
			}
			if (monotonic_ms() >= m.stop_deadline_ms) {
				ch_warn("children still running after the shutdown timeout: SIGKILL");
				signal_children(&m, SIGKILL);
				m.stop_deadline_ms = UINT64_MAX;
			}
			continue;
		}
		uint64_t now = monotonic_ms();
		for (int i = 0; i < m.n_children; i++) {
			struct ch_child *ch = &m.children[i];
			if (!ch->pid && ch->restart_at_ms && ch->restart_at_ms <= now)
				spawn(&m, ch);
		}
	}
	ch_static_free(&m.web);
	ch_shm_destroy(&m.shm);
	free(m.listen_fds);
	ch_info("chatd stopped");
	return m.exit_status;
}
