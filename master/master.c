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
#include "master/admin.h"
#include "master/notify.h"
#include "master/proctitle.h"
#include "shm/shm.h"
#include "worker/handoff.h"
#include "worker/static.h"
#include "worker/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <cjson/cJSON.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

static volatile sig_atomic_t sig_child, sig_stop, sig_reload, sig_promote;

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
	case SIGUSR2:
		sig_promote = 1;
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
	{ SIGUSR2, "SIGUSR2", "promote a standby to primary (forwarded to the journal)" },
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

uint64_t ch_master_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

#define monotonic_ms ch_master_now_ms

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

#define LISTEN_FD(m, l, i) ((m)->listen_fds[(l) * CH_MAX_WORKERS + (i)])

/* Worker i's sockets, one per listen address; kept open by the master
 * while the worker slot is in use (see the file comment). */
static int open_worker_listeners(struct ch_master *m, int i)
{
	for (int l = 0; l < m->cfg->n_listen; l++) {
		if (LISTEN_FD(m, l, i) >= 0)
			continue;
		int fd = open_listener(&m->cfg->listen[l]);
		if (fd < 0)
			return -1;
		LISTEN_FD(m, l, i) = fd;
	}
	return 0;
}

static void close_worker_listeners(struct ch_master *m, int i)
{
	for (int l = 0; l < CH_MAX_LISTEN; l++) {
		if (LISTEN_FD(m, l, i) >= 0)
			close(LISTEN_FD(m, l, i));
		LISTEN_FD(m, l, i) = -1;
	}
}

static int open_listeners(struct ch_master *m)
{
	const struct ch_config *cfg = m->cfg;

	for (size_t i = 0; i < sizeof(m->listen_fds) / sizeof(m->listen_fds[0]); i++)
		m->listen_fds[i] = -1;
	for (int i = 0; i < cfg->workers; i++)
		if (open_worker_listeners(m, i) < 0)
			return -1;
	for (int l = 0; l < cfg->n_listen; l++)
		ch_info("listening on %s (%d sockets)", cfg->listen[l].text, cfg->workers);
	return 0;
}

static void close_listeners(struct ch_master *m)
{
	for (int i = 0; i < CH_MAX_WORKERS; i++)
		close_worker_listeners(m, i);
}

/* ---------------------------------------------------------------------- */
/* Children                                                               */

static void child_main(struct ch_master *m, struct ch_child *ch) __attribute__((noreturn));
static void exec_child(const struct ch_master *m, const struct ch_child *ch,
		       const struct ch_config *cfg, const int *fds, int n_fds);

static void child_main(struct ch_master *m, struct ch_child *ch)
{
	const struct ch_config *cfg = m->cfg;
	int fds[CH_MAX_LISTEN];
	char name[32];

	child_name(ch, name, sizeof(name));
	ch_log_set_name(name);
	ch_proctitle_set("chatd: %s", name);
	/* Keep only this worker's sockets; the journal keeps none. */
	for (int l = 0; l < CH_MAX_LISTEN; l++) {
		for (int i = 0; i < CH_MAX_WORKERS; i++) {
			int fd = LISTEN_FD(m, l, i);
			if (fd < 0)
				continue;
			if (ch->kind == CH_CHILD_WORKER && i == ch->index && l < cfg->n_listen)
				fds[l] = fd;
			else
				close(fd);
		}
	}
	/* Nor the admin socket, nor the other children's control channels
	 * (fork keeps them open; close-on-exec does not apply). */
	ch_admin_close_inherited(m->admin);
	for (int i = 0; i < m->n_children; i++)
		if (m->children[i].ctl_fd >= 0 && &m->children[i] != ch)
			close(m->children[i].ctl_fd);
	/* The journal serves journal_serve workers' rings: one more than
	 * `workers` while an upgrade runs a spare worker. */
	static struct ch_config jcfg;
	jcfg = *cfg;
	jcfg.workers = m->journal_serve;
	if (m->exec_children)
		exec_child(m, ch, ch->kind == CH_CHILD_JOURNAL ? &jcfg : cfg, fds, cfg->n_listen);
	int status;
	if (ch->kind == CH_CHILD_JOURNAL)
		status = ch_journal_run(&jcfg, &m->shm, m->repair);
	else
		status = ch_worker_run(cfg, ch->index, fds, cfg->n_listen, &m->web, &m->shm);
	_exit(status);
}

int ch_master_child_proc(const struct ch_child *ch)
{
	return ch->kind == CH_CHILD_JOURNAL ? CH_SHM_PROC_JOURNAL : CH_SHM_PROC_WORKER(ch->index);
}

static struct ch_stats *child_stats(const struct ch_master *m, const struct ch_child *ch)
{
	return ch_shm_stats(&m->shm, ch_master_child_proc(ch));
}

static int spawn(struct ch_master *m, struct ch_child *ch)
{
	int peer = -1;

	if (ch->ctl_fd >= 0) {
		close(ch->ctl_fd);	/* a restarted worker gets a fresh channel */
		ch->ctl_fd = -1;
	}
	if (ch->kind == CH_CHILD_WORKER &&
	    (open_worker_listeners(m, ch->index) < 0 || ch_ctl_pair(&ch->ctl_fd, &peer) < 0)) {
		ch->restart_at_ms = monotonic_ms() + CH_RESTART_BACKOFF_MAX_MS;
		return -1;
	}
	CH_STAT_SET(child_stats(m, ch), ready, 0);
	ch->cfg_acked = m->cfg_id;	/* it starts with the current settings */
	pid_t pid = fork();

	if (pid < 0) {
		ch_err_sys("fork");
		if (peer >= 0)
			close(peer);
		ch->restart_at_ms = monotonic_ms() + CH_RESTART_BACKOFF_MAX_MS;
		return -1;
	}
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		signal(SIGCHLD, SIG_DFL);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (peer >= 0) {
			close(ch->ctl_fd);
			ch->ctl_fd = -1;
			ch_handoff_set_ctl(peer);
		}
		child_main(m, ch);
	}
	if (peer >= 0)
		close(peer);
	char name[32];
	ch->pid = pid;
	ch->started_ms = monotonic_ms();
	ch->restart_at_ms = 0;
	if (ch->kind == CH_CHILD_JOURNAL) {
		m->repair = 0;	/* only the first start repairs */
		m->journal_workers = m->journal_serve;
	}
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
static void upgrade_fail(struct ch_master *m, const char *why);

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
		if (ch->retiring) {
			/* A reload lowered `workers`: its slot closes with it. */
			ch_info("%s (pid %d, retired) %s", name, (int)pid, why);
			ch->retiring = 0;
			ch->restart_at_ms = 0;
			/* Its last handed-over connections may still wait in
			 * the channel: forward them before closing it. */
			ch_admin_channel_drain(m, ch);
			if (ch->ctl_fd >= 0)
				close(ch->ctl_fd);
			ch->ctl_fd = -1;
			close_worker_listeners(m, ch->index);
			continue;
		}
		/* An upgrade's new journal died before it got ready: the new
		 * binary does not work here; go back to the old one. */
		if (ch->kind == CH_CHILD_JOURNAL && m->upg_step && ch->started_ms >= m->upg_step_ms &&
		    !CH_STAT_GET(child_stats(m, ch), ready))
			upgrade_fail(m, "the new binary's journal exited before it was ready");
		if (ch->kind == CH_CHILD_JOURNAL && (m->journal_workers != m->journal_serve ||
						     m->upg_step)) {
			/* Told to restart: to serve the rings of new workers,
			 * or to run the new binary. */
			ch_info("journal (pid %d) %s; restarting for %d workers", (int)pid, why,
				m->journal_serve);
			ch->backoff_ms = 0;
			ch->restart_at_ms = now;
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
		ch->restarts++;
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

/*
 * What a reload may change in place: settings the workers read per request
 * (sent to them over their control channels) and `workers` itself. Every
 * other changed key is reported as needing a restart and keeps its running
 * value, so the running configuration is always one coherent set.
 */
static const char *const live_keys[] = {
	"server.workers", "server.header_timeout", "server.idle_timeout",
	"server.shutdown_timeout", "server.max_body_size", "server.log_level",
	"server.access_log", "auth.token_lifetime", NULL,
};

static void apply_live(struct ch_config *run, const struct ch_config *next)
{
	run->workers = next->workers;
	run->workers_auto = next->workers_auto;
	run->header_timeout_ms = next->header_timeout_ms;
	run->idle_timeout_ms = next->idle_timeout_ms;
	run->shutdown_timeout_ms = next->shutdown_timeout_ms;
	run->max_body_size = next->max_body_size;
	run->log_level = next->log_level;
	memcpy(run->access_log, next->access_log, sizeof(run->access_log));
	run->token_lifetime_ms = next->token_lifetime_ms;
}

static int is_live_key(const char *key)
{
	for (int i = 0; live_keys[i]; i++)
		if (strcmp(live_keys[i], key) == 0)
			return 1;
	return 0;
}

/* The value lines of ch_config_dump, as "section.key = value" (a repeated
 * key's lines joined), into a cJSON object keyed by "section.key". */
static cJSON *config_values(const struct ch_config *c)
{
	char *text = NULL, line[CH_PATH_MAX + 256], section[64] = "";
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	cJSON *o = cJSON_CreateObject();

	if (!f || !o)
		goto out;
	ch_config_dump(c, f);
	fflush(f);
	rewind(f);
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		char *eq = strstr(line, " = ");
		if (line[0] == '[') {
			snprintf(section, sizeof(section), "%.*s", (int)strcspn(line + 1, "]"), line + 1);
			continue;
		}
		if (line[0] == '#' || !eq)
			continue;
		char key[160];
		snprintf(key, sizeof(key), "%s.%.*s", section, (int)(eq - line), line);
		cJSON *prev = cJSON_GetObjectItemCaseSensitive(o, key);
		if (prev && cJSON_IsString(prev)) {
			char joined[CH_PATH_MAX * 2];
			snprintf(joined, sizeof(joined), "%s %s", prev->valuestring, eq + 3);
			cJSON_ReplaceItemInObjectCaseSensitive(o, key, cJSON_CreateString(joined));
		} else {
			cJSON_AddStringToObject(o, key, eq + 3);
		}
	}
out:
	if (f)
		fclose(f);
	free(text);
	return o;
}

/* changes gets "applied":[{"key","old","new"}],"restart_needed":[...]. */
static void describe_changes(const struct ch_config *run, const struct ch_config *next,
			     struct ch_buf *changes)
{
	cJSON *a = config_values(run), *b = config_values(next);
	struct ch_buf restart;
	int n_applied = 0, n_restart = 0;

	ch_buf_init(&restart);
	ch_buf_puts(changes, "\"applied\":[");
	for (cJSON *v = b ? b->child : NULL; v; v = v->next) {
		cJSON *old = cJSON_GetObjectItemCaseSensitive(a, v->string);
		const char *was = old ? old->valuestring : "";
		if (strcmp(was, v->valuestring) == 0)
			continue;
		int live = is_live_key(v->string);
		struct ch_buf *to = live ? changes : &restart;
		int *count = live ? &n_applied : &n_restart;
		ch_buf_puts(to, (*count)++ ? ",{" : "{");
		ch_json_key(to, "key");
		ch_json_str(to, v->string, strlen(v->string));
		ch_buf_puts(to, ",");
		ch_json_key(to, "old");
		ch_json_str(to, was, strlen(was));
		ch_buf_puts(to, ",");
		ch_json_key(to, "new");
		ch_json_str(to, v->valuestring, strlen(v->valuestring));
		ch_buf_puts(to, "}");
		ch_info("reload: %s: %s -> %s%s", v->string, was, v->valuestring,
			live ? "" : " (needs a restart)");
	}
	ch_buf_puts(changes, "],\"restart_needed\":[");
	ch_buf_append(changes, restart.p, restart.len);
	ch_buf_puts(changes, "]");
	ch_buf_free(&restart);
	cJSON_Delete(a);
	cJSON_Delete(b);
}

int ch_master_check(struct ch_master *m, struct ch_config *out, char *err, size_t errlen)
{
	if (!m->cfg->path[0]) {
		snprintf(err, errlen, "chatd runs on the embedded defaults (no -c FILE): "
			 "there is no file to read");
		return -1;
	}
	ch_config_defaults(out);
	return ch_config_load(out, m->cfg->path, err, errlen);
}

int ch_master_worker_active(const struct ch_master *m, int index)
{
	return index < m->cfg->workers && !m->children[1 + index].retiring;
}

static void send_config(struct ch_master *m)
{
	for (int i = 0; i < m->cfg->workers; i++) {
		struct ch_child *ch = &m->children[1 + i];
		if (!ch->pid || ch->ctl_fd < 0)
			continue;
		int rc = ch_ctl_send(ch->ctl_fd, CH_CTL_CONFIG, m->cfg_id, m->cfg, sizeof(*m->cfg), 0);
		if (rc < 0)
			ch_err("reload: worker %d: control channel: %s", i, strerror(-rc));
	}
}

/* Worker i hands its connections over and exits; its slot is not
 * restarted. */
static void retire_worker(struct ch_master *m, int i)
{
	struct ch_child *ch = &m->children[1 + i];

	if (!ch->pid) {
		ch->restart_at_ms = 0;
		close_worker_listeners(m, i);
		return;
	}
	ch->retiring = 1;
	/* Our copies of its listening sockets first: once it closes its
	 * own, the kernel sends new connections to the others, and it
	 * hands over what was already queued. */
	close_worker_listeners(m, i);
	if (ch->ctl_fd < 0 || ch_ctl_send(ch->ctl_fd, CH_CTL_RETIRE, 0, NULL, 0, 0) < 0)
		kill(ch->pid, SIGTERM);	/* no channel: stop it the old way */
}

static void change_workers(struct ch_master *m, int old, int now)
{
	for (int i = now; i < old; i++)
		retire_worker(m, i);
	for (int i = old; i < now; i++) {
		struct ch_child *ch = &m->children[1 + i];
		ch->kind = CH_CHILD_WORKER;
		ch->index = i;
		ch->backoff_ms = 0;
		spawn(m, ch);
	}
	if (1 + now > m->n_children)
		m->n_children = 1 + now;
	/* The journal serves the rings of the workers it was started for. */
	m->journal_serve = now;
	if (now > m->journal_workers && m->children[0].pid)
		kill(m->children[0].pid, SIGTERM);
	ch_info("reload: workers %d -> %d", old, now);
}

int ch_master_reload(struct ch_master *m, struct ch_buf *changes, char *err, size_t errlen)
{
	struct ch_config next, run = *m->cfg;

	if (ch_master_check(m, &next, err, errlen) < 0) {
		ch_err("reload refused, nothing changed: %s", err);
		return -1;
	}
	for (int i = 0; i < m->n_children; i++) {
		if (m->children[i].retiring && m->children[i].pid) {
			snprintf(err, errlen, "workers retired by the last reload are still "
				 "finishing; nothing changed, try again shortly");
			return -1;
		}
	}
	if (m->upg_step) {
		snprintf(err, errlen, "an upgrade is running; nothing changed, try again after it");
		return -1;
	}
	ch_notify_reloading();
	describe_changes(&run, &next, changes);
	apply_live(&run, &next);
	int old_workers = m->cfg->workers;
	*m->cfg = run;
	m->cfg_id++;
	m->reloads++;
	m->reload_pending = 1;
	ch_log_set_level((enum ch_log_level)run.log_level);
	send_config(m);
	if (run.workers != old_workers)
		change_workers(m, old_workers, run.workers);
	ch_info("reload: %s is valid and applied", m->cfg->path);
	return 0;
}

int ch_master_reload_done(const struct ch_master *m)
{
	for (int i = 0; i < m->n_children; i++) {
		const struct ch_child *ch = &m->children[i];
		const struct ch_stats *st = child_stats(m, ch);
		if (ch->retiring)
			return 0;
		if (ch->kind == CH_CHILD_WORKER && ch->index >= m->cfg->workers)
			continue;
		if (!ch->pid || !CH_STAT_GET(st, ready))
			return 0;
		if (ch->kind == CH_CHILD_WORKER && ch->cfg_acked != m->cfg_id)
			return 0;
		if (ch->kind == CH_CHILD_JOURNAL && m->journal_workers < m->journal_serve)
			return 0;
	}
	return 1;
}

static void reload(struct ch_master *m)
{
	char err[CH_CONFIG_ERR_MAX];
	struct ch_buf changes;

	ch_buf_init(&changes);
	ch_master_reload(m, &changes, err, sizeof(err));
	ch_buf_free(&changes);
}

static void begin_stop(struct ch_master *m)
{
	m->stopping = 1;
	m->stop_deadline_ms = monotonic_ms() + m->cfg->shutdown_timeout_ms + CH_STOP_GRACE_MS;
	ch_notify_stopping();
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

void ch_master_stop(struct ch_master *m, uint32_t timeout_ms)
{
	if (!m->stopping)
		begin_stop(m);
	/* chatadm stop --timeout: children still running then are killed. */
	if (timeout_ms)
		m->stop_deadline_ms = monotonic_ms() + timeout_ms;
}

static int workers_running(const struct ch_master *m)
{
	int n = 0;
	for (int i = 1; i < m->n_children; i++)
		n += m->children[i].pid != 0;
	return n;
}

/* ---------------------------------------------------------------------- */
/* Binary upgrade                                                         */

/*
 * A child started by exec gets, in the environment variable CHATD_CHILD,
 * "kind index cfg ctl memfd journal_efd efd0,...,efd63 lfd0,..." (numbers
 * of descriptors it inherits): its configuration as a struct ch_config in
 * a memfd, its end of the control channel (workers), the shared memory's
 * memfd and eventfds, and its listening sockets. The layout of those
 * structs is the same in both binaries only if they come from the same
 * source: an upgrade is for a rebuilt binary of compatible sources (the
 * shm header's version is checked).
 */
#define CH_CHILD_ENV "CHATD_CHILD"
#define CH_CHILD_ENV_MAX 2048
#define CH_UPGRADE_STEP_MS 30000	/* a step that takes longer fails */

static void keep_fd(int fd)
{
	if (fd >= 0)
		fcntl(fd, F_SETFD, 0);
}

static void exec_child(const struct ch_master *m, const struct ch_child *ch,
		       const struct ch_config *cfg, const int *fds, int n_fds)
{
	char env[CH_CHILD_ENV_MAX];
	size_t len;
	int cfd = memfd_create("chatd-config", 0);

	if (cfd < 0 || write(cfd, cfg, sizeof(*cfg)) != (ssize_t)sizeof(*cfg)) {
		ch_err("exec %s: config memfd: %s", m->exe, strerror(errno));
		_exit(1);
	}
	len = (size_t)snprintf(env, sizeof(env), "%d %d %d %d %d %d ", (int)ch->kind, ch->index,
			       cfd, ch->kind == CH_CHILD_WORKER ? ch_handoff_get_ctl() : -1,
			       m->shm.memfd, m->shm.journal_efd);
	keep_fd(ch_handoff_get_ctl());
	keep_fd(m->shm.memfd);
	keep_fd(m->shm.journal_efd);
	for (int i = 0; i < CH_MAX_WORKERS && len < sizeof(env); i++) {
		len += (size_t)snprintf(env + len, sizeof(env) - len, "%s%d", i ? "," : "",
					m->shm.worker_efd[i]);
		keep_fd(m->shm.worker_efd[i]);
	}
	for (int l = 0; l < (ch->kind == CH_CHILD_WORKER ? n_fds : 0) && len < sizeof(env); l++) {
		len += (size_t)snprintf(env + len, sizeof(env) - len, "%s%d", l ? "," : " ", fds[l]);
		keep_fd(fds[l]);
	}
	if (len >= sizeof(env) || setenv(CH_CHILD_ENV, env, 1) < 0) {
		ch_err("exec %s: environment too large", m->exe);
		_exit(1);
	}
	char *argv[] = { (char *)"chatd", (char *)"--child", NULL };
	execv(m->exe, argv);
	ch_err("exec %s: %s", m->exe, strerror(errno));
	_exit(1);
}

static int parse_ints(const char *s, int *out, int max)
{
	int n = 0;
	char *end;

	while (*s && n < max) {
		out[n++] = (int)strtol(s, &end, 10);
		if (end == s)
			return -1;
		s = *end == ',' ? end + 1 : end;
		if (*end != ',')
			break;
	}
	return n;
}

int ch_master_exec_child(int argc, char **argv)
{
	const char *env = getenv(CH_CHILD_ENV);
	int kind, index, cfd, ctl, memfd, jefd, off = 0;
	static struct ch_config cfg;
	static struct ch_static web;
	struct ch_shm shm;
	struct stat st;
	int efds[CH_MAX_WORKERS], lfds[CH_MAX_LISTEN] = { 0 };
	char name[32];

	if (!env || sscanf(env, "%d %d %d %d %d %d %n", &kind, &index, &cfd, &ctl, &memfd, &jefd,
			   &off) < 6 || index < 0 || index >= CH_MAX_WORKERS) {
		fprintf(stderr, "chatd: --child is for chatd's own use (bad %s)\n", CH_CHILD_ENV);
		return 2;
	}
	const char *rest = env + off;
	if (parse_ints(rest, efds, CH_MAX_WORKERS) != CH_MAX_WORKERS)
		return 2;
	const char *sp = strchr(rest, ' ');
	int n_listen = sp ? parse_ints(sp + 1, lfds, CH_MAX_LISTEN) : 0;
	unsetenv(CH_CHILD_ENV);
	if (pread(cfd, &cfg, sizeof(cfg), 0) != (ssize_t)sizeof(cfg))
		return 1;
	close(cfd);
	ch_proctitle_init(argc, argv);
	snprintf(name, sizeof(name), kind == CH_CHILD_JOURNAL ? "journal" : "worker %d", index);
	ch_log_set_name(name);
	ch_log_set_level((enum ch_log_level)cfg.log_level);
	ch_proctitle_set("chatd: %s", name);
	memset(&shm, 0, sizeof(shm));
	shm.memfd = memfd;
	shm.journal_efd = jefd;
	memcpy(shm.worker_efd, efds, sizeof(efds));
	if (fstat(memfd, &st) < 0 ||
	    (shm.base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd,
			     0)) == MAP_FAILED) {
		ch_err_sys("mmap(shm)");
		return 1;
	}
	shm.size = (size_t)st.st_size;
	if (ch_shm_header(&shm)->magic != CH_SHM_MAGIC ||
	    ch_shm_header(&shm)->version != CH_SHM_VERSION) {
		ch_err("upgrade: the shared memory layout changed; this binary needs a restart");
		return 1;
	}
	if (kind == CH_CHILD_JOURNAL)
		return ch_journal_run(&cfg, &shm, 0);
	if (ch_static_load(&web, cfg.web_root) < 0)
		return 1;
	ch_handoff_set_ctl(ctl);
	return ch_worker_run(&cfg, index, lfds, n_listen, &web, &shm);
}

enum upgrade_step {
	UPG_NONE,
	UPG_JOURNAL,		/* the journal restarts (serving the spare's rings) */
	UPG_SPARE_UP,		/* the spare starts */
	UPG_OLD_OUT,		/* worker i hands its connections to the spare */
	UPG_NEW_UP,		/* worker i starts again, new */
	UPG_SPARE_OUT,		/* the spare hands them back */
	UPG_JOURNAL_LAST,	/* the journal restarts, serving `workers` again */
};

int ch_master_upgrade(struct ch_master *m, char *err, size_t errlen)
{
	if (m->stopping || m->upg_step || m->reload_pending) {
		snprintf(err, errlen, "chatd is %s; try again after it",
			 m->stopping ? "stopping" : m->upg_step ? "upgrading" : "reloading");
		return -1;
	}
	if (!m->exe[0] || access(m->exe, X_OK) < 0) {
		snprintf(err, errlen, "no executable at %s: %s", m->exe[0] ? m->exe : "(unknown)",
			 strerror(errno));
		return -1;
	}
	if (m->cfg->workers + 1 > CH_MAX_WORKERS) {
		snprintf(err, errlen, "an upgrade needs a spare worker slot (workers < %d)",
			 CH_MAX_WORKERS);
		return -1;
	}
	for (int i = 0; i < m->n_children; i++) {
		if (m->children[i].retiring && m->children[i].pid) {
			snprintf(err, errlen, "workers are still retiring; try again shortly");
			return -1;
		}
	}
	ch_info("upgrade: children will run %s", m->exe);
	m->exec_children = 1;
	m->upg_err[0] = '\0';
	m->upg_started_ms = monotonic_ms();
	m->upg_index = 0;
	m->upg_step = UPG_JOURNAL;
	m->upg_step_ms = m->upg_started_ms;
	m->journal_serve = m->cfg->workers + 1;
	m->upg_restarts = m->children[0].restarts;
	if (m->children[0].pid)
		kill(m->children[0].pid, SIGTERM);
	return 0;
}

int ch_master_upgrade_state(const struct ch_master *m)
{
	if (m->upg_step)
		return 0;
	return m->upg_err[0] ? -1 : 1;
}

static int child_ready(struct ch_master *m, const struct ch_child *ch)
{
	return ch->pid && CH_STAT_GET(child_stats(m, ch), ready) && ch->started_ms >= m->upg_step_ms;
}

static void upgrade_next(struct ch_master *m, int step, uint64_t now)
{
	m->upg_step = step;
	m->upg_step_ms = now;
}

static void upgrade_fail(struct ch_master *m, const char *why)
{
	snprintf(m->upg_err, sizeof(m->upg_err), "upgrade failed at worker %d: %s", m->upg_index,
		 why);
	ch_err("%s; children run the old binary again", m->upg_err);
	/* Children that start from now on are forks of this master. */
	m->exec_children = 0;
	m->handoff_target = -1;
	m->journal_serve = m->cfg->workers;
	m->upg_step = UPG_NONE;
}

/* Start slot i's worker (a new process of the new binary). */
static void upgrade_spawn(struct ch_master *m, int i)
{
	struct ch_child *ch = &m->children[1 + i];

	ch->kind = CH_CHILD_WORKER;
	ch->index = i;
	ch->backoff_ms = 0;
	ch->retiring = 0;
	if (1 + i + 1 > m->n_children)
		m->n_children = 1 + i + 1;
	spawn(m, ch);
}

static void upgrade_step(struct ch_master *m, uint64_t now)
{
	int spare = m->cfg->workers, i = m->upg_index;
	struct ch_child *old = &m->children[1 + i], *sp = &m->children[1 + spare];

	if (now - m->upg_step_ms > CH_UPGRADE_STEP_MS) {
		upgrade_fail(m, "a step took too long (see the log)");
		return;
	}
	switch (m->upg_step) {
	case UPG_JOURNAL:
	case UPG_JOURNAL_LAST:
		if (m->children[0].restarts > m->upg_restarts + 1) {
			upgrade_fail(m, "the new journal does not start");
			return;
		}
		if (!child_ready(m, &m->children[0]))
			return;
		if (m->upg_step == UPG_JOURNAL_LAST) {
			ch_info("upgrade: done in %llu ms",
				(unsigned long long)(now - m->upg_started_ms));
			m->upg_step = UPG_NONE;
			return;
		}
		upgrade_next(m, UPG_SPARE_UP, now);
		m->upg_restarts = sp->restarts;
		upgrade_spawn(m, spare);
		return;
	case UPG_SPARE_UP:
		if (sp->restarts > m->upg_restarts) {
			upgrade_fail(m, "the new binary's worker does not start");
			retire_worker(m, spare);
			return;
		}
		if (!child_ready(m, sp))
			return;
		upgrade_next(m, UPG_OLD_OUT, now);
		m->handoff_target = spare;
		retire_worker(m, i);
		return;
	case UPG_OLD_OUT:
		if (old->pid)
			return;
		upgrade_next(m, UPG_NEW_UP, now);
		m->upg_restarts = old->restarts;
		upgrade_spawn(m, i);
		return;
	case UPG_NEW_UP:
		if (old->restarts > m->upg_restarts) {
			upgrade_fail(m, "the new binary's worker does not start");
			retire_worker(m, spare);	/* its connections go to the others */
			return;
		}
		if (!child_ready(m, old))
			return;
		upgrade_next(m, UPG_SPARE_OUT, now);
		m->handoff_target = i;
		retire_worker(m, spare);
		return;
	case UPG_SPARE_OUT:
		if (sp->pid)
			return;
		ch_info("upgrade: worker %d runs the new binary", i);
		if (++m->upg_index < m->cfg->workers) {
			upgrade_next(m, UPG_SPARE_UP, now);
			m->upg_restarts = sp->restarts;
			upgrade_spawn(m, spare);
			return;
		}
		m->handoff_target = -1;
		m->journal_serve = m->cfg->workers;
		upgrade_next(m, UPG_JOURNAL_LAST, now);
		m->upg_restarts = m->children[0].restarts;
		if (m->children[0].pid)
			kill(m->children[0].pid, SIGTERM);
		return;
	default:
		m->upg_step = UPG_NONE;
		return;
	}
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
	/* Until READY=1 (at start, after a reload) and while an upgrade
	 * runs, look at the workers often. */
	if ((!m->ready_told || m->reload_pending || m->upg_step) && now + CH_READY_POLL_MS < next)
		next = now + CH_READY_POLL_MS;
	int wd = ch_notify_watchdog_timeout(now);
	if (wd >= 0 && now + (uint64_t)wd < next)
		next = now + (uint64_t)wd;
	int adm = ch_admin_timeout_ms(m->admin, now);
	if (adm >= 0 && now + (uint64_t)adm < next)
		next = now + (uint64_t)adm;
	if (next == UINT64_MAX)
		return -1;
	return next <= now ? 0 : (int)(next - now);
}

static int all_alive(const struct ch_master *m)
{
	if (!m->children[0].pid)
		return 0;
	for (int i = 0; i < m->cfg->workers; i++)
		if (!m->children[1 + i].pid)
			return 0;
	return 1;
}

/* READY=1 only once every worker accepts (and again after a reload). */
static void tell_systemd(struct ch_master *m, uint64_t now)
{
	if (!m->ready_told || m->reload_pending) {
		if (ch_master_reload_done(m)) {
			/* Logged first: whoever sees READY finds the line. */
			if (!m->ready_told)
				ch_info("chatd ready: %d workers accepting", m->cfg->workers);
			ch_notify_ready("serving with %d workers", m->cfg->workers);
			m->ready_told = 1;
			m->reload_pending = 0;
		}
	}
	ch_notify_watchdog(now, all_alive(m));
}

int ch_master_run(struct ch_config *cfg, int repair)
{
	static struct ch_master m;
	m.cfg = cfg;
	m.repair = repair;
	sigset_t sleep_mask;

	for (int i = 0; i < 1 + CH_MAX_WORKERS; i++)
		m.children[i].ctl_fd = -1;
	m.journal_serve = cfg->workers;
	m.handoff_target = -1;
	/* Where the binary is now: an upgrade execs what is there then. */
	ssize_t n = readlink("/proc/self/exe", m.exe, sizeof(m.exe) - 1);
	m.exe[n > 0 ? n : 0] = '\0';
	m.started_realtime_ms = (uint64_t)time(NULL) * 1000;
	ch_notify_init();

	ch_log_set_name("master");
	ch_proctitle_set("chatd: master");
	raise_fd_limit();
	if (ch_uring_probe() < 0)
		return 1;	/* said why; workers would only crash-loop */
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
	if (ch_admin_open(&m) < 0)
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
	ch_notify_status("starting %d workers", cfg->workers);
	ch_info("chatd started: %d workers, pid %d", cfg->workers, (int)getpid());

	for (;;) {
		int timeout = next_timeout_ms(&m);
		struct timespec ts = { timeout / 1000, (long)(timeout % 1000) * 1000000 };
		struct pollfd pfds[CH_ADMIN_POLLFDS];
		int npfd = ch_admin_pollfds(&m, pfds, CH_ADMIN_POLLFDS);
		int ready = 0;
		if (!sig_child && !sig_stop && !sig_reload && !sig_promote)
			ready = ppoll(pfds, (nfds_t)npfd, timeout < 0 ? NULL : &ts, &sleep_mask);
		/* Admin requests and workers' answers; a stop it asks for is
		 * acted on below, like a signal. */
		ch_admin_process(&m, pfds, ready > 0 ? npfd : 0);

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
		if (sig_promote) {
			/* The journal does the promotion (journal/repl.h). */
			sig_promote = 0;
			if (m.children[0].pid)
				kill(m.children[0].pid, SIGUSR2);
			else
				ch_warn("SIGUSR2: the journal is not running; promote again once it is");
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
		if (m.upg_step)
			upgrade_step(&m, now);
		tell_systemd(&m, now);
	}
	ch_admin_close(&m);
	for (int i = 0; i < m.n_children; i++)
		if (m.children[i].ctl_fd >= 0)
			close(m.children[i].ctl_fd);
	ch_static_free(&m.web);
	ch_shm_destroy(&m.shm);
	ch_info("chatd stopped");
	return m.exit_status;
}
