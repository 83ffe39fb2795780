/*
 * The master process: owns the configuration, the listening sockets, the
 * shared memory and the children. It forks the journal and the workers,
 * restarts a child that dies, reloads on SIGHUP and stops everything on
 * SIGTERM or SIGINT. It does no client I/O.
 */
#ifndef CH_MASTER_H
#define CH_MASTER_H

#include "common/buf.h"
#include "master/config.h"

#define CH_RESTART_BACKOFF_MIN_MS 100	/* after a child that died young */
#define CH_RESTART_BACKOFF_MAX_MS 10000
#define CH_CHILD_STABLE_MS 5000		/* lived this long: restart at once */
#define CH_STOP_GRACE_MS 2000		/* past shutdown_timeout, then SIGKILL */
#define CH_LISTEN_BACKLOG 4096
#define CH_READY_POLL_MS 20		/* look for ready workers this often */

/* Run chatd with cfg until it is stopped; returns the process exit status. */
int ch_master_run(struct ch_config *cfg, int repair);

/* ---- the master's state, for its admin socket (master/admin.c) ---- */

#include "shm/shm.h"
#include "worker/static.h"

#include <sys/types.h>

#define CH_RELOAD_WAIT_MS 30000	/* reload: new workers ready, old ones gone */

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
	uint32_t restarts;	/* times restarted after dying */
	int ctl_fd;		/* our end of its control channel, -1: none */
	int retiring;		/* a reload lowered `workers`: not restarted */
	uint32_t cfg_acked;	/* last configuration id it applied */
};

struct ch_admin;

struct ch_master {
	struct ch_config *cfg;
	struct ch_static web;
	struct ch_shm shm;
	/* [listener * CH_MAX_WORKERS + worker], -1 when not open */
	int listen_fds[CH_MAX_LISTEN * CH_MAX_WORKERS];
	/* [0] the journal, [1 + i] worker i; worker slots past cfg->workers
	 * are unused, or retiring until their process exits */
	struct ch_child children[1 + CH_MAX_WORKERS];
	int n_children;		/* 1 + the highest worker slot ever used */
	int journal_workers;	/* the workers count the journal was started for */
	int repair;		/* the journal's first start may cut a damaged log */
	int stopping;
	int journal_told;	/* SIGTERM sent to the journal (workers are gone) */
	int ready_told;		/* READY=1 sent to systemd */
	int reload_pending;	/* READY=1 again once the reload is done */
	int exit_status;
	uint64_t stop_deadline_ms;
	uint64_t started_realtime_ms;
	uint32_t cfg_id;	/* bumped by each applied reload */
	int journal_serve;	/* worker rings the journal serves (>= workers) */
	/* Binary upgrade (chatadm upgrade): see ch_master_upgrade. */
	char exe[CH_PATH_MAX];	/* this binary's path at start */
	int exec_children;	/* start children by exec'ing exe (after an upgrade) */
	int handoff_target;	/* -1, or the worker retiring ones hand over to */
	int upg_step;		/* enum in master.c; 0: no upgrade running */
	int upg_index;		/* the worker being replaced */
	uint64_t upg_step_ms;	/* when the step began */
	uint64_t upg_started_ms;
	uint32_t upg_restarts;	/* the new children's restarts, to spot a crash */
	char upg_err[256];	/* why the last upgrade failed, "" if it did not */
	uint32_t reloads;	/* applied reloads */
	struct ch_admin *admin;
};

uint64_t ch_master_now_ms(void);	/* CLOCK_MONOTONIC */

/* Validate the configuration file; 0, or -1 with "file:line: reason". */
int ch_master_check(struct ch_master *m, struct ch_config *out, char *err, size_t errlen);

/*
 * Reload: validate the file (an invalid one changes nothing: -1 with
 * "file:line: reason" in err), then apply it: settings the workers read
 * go to them over their control channels, a changed `workers` starts or
 * retires workers, and settings that need a restart are listed, not
 * applied. changes gets a JSON object's members (no braces) saying what
 * changed. Completion is asynchronous: see ch_master_reload_done.
 */
int ch_master_reload(struct ch_master *m, struct ch_buf *changes, char *err, size_t errlen);

/* 1 once the last reload is complete: every worker runs the new
 * configuration and is ready, and every retired worker has exited. */
int ch_master_reload_done(const struct ch_master *m);

/* Stop gracefully; timeout_ms (0: shutdown_timeout) for requests in flight. */
void ch_master_stop(struct ch_master *m, uint32_t timeout_ms);

/* The worker slots that should run now (not retiring, index < workers). */
int ch_master_worker_active(const struct ch_master *m, int index);
/* The child's stats block in shared memory: CH_SHM_PROC_JOURNAL or
 * CH_SHM_PROC_WORKER(index). */
int ch_master_child_proc(const struct ch_child *ch);

/*
 * Binary upgrade: from now on children are started by exec'ing the binary
 * at the path chatd was started from (so a new build installed there
 * takes over), and each running child is replaced in turn without
 * dropping a connection: the journal is restarted; for each worker, a
 * spare worker of the new binary starts, the old worker hands it its
 * connections and exits, the new worker for that slot starts, and the
 * spare hands them back and exits. The master itself keeps running the
 * binary it was started as. 0 started, -1 (err) refused.
 * ch_master_upgrade_state: 0 running, 1 done, -1 failed (m->upg_err).
 */
int ch_master_upgrade(struct ch_master *m, char *err, size_t errlen);
int ch_master_upgrade_state(const struct ch_master *m);

/* A child started by exec (chatd --child): set up from what the master
 * passed (see master.c) and run; returns the exit status. */
int ch_master_exec_child(int argc, char **argv);

#endif
