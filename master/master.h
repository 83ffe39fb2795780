/*
 * The master process: owns the configuration, the listening sockets, the
 * shared memory and the children. It forks the journal and the workers,
 * restarts a child that dies, reloads on SIGHUP and stops everything on
 * SIGTERM or SIGINT. It does no client I/O.
 */
#ifndef CH_MASTER_H
#define CH_MASTER_H

#include "master/config.h"

#define CH_RESTART_BACKOFF_MIN_MS 100	/* after a child that died young */
#define CH_RESTART_BACKOFF_MAX_MS 10000
#define CH_CHILD_STABLE_MS 5000		/* lived this long: restart at once */
#define CH_STOP_GRACE_MS 2000		/* past shutdown_timeout, then SIGKILL */
#define CH_LISTEN_BACKLOG 4096

/* Run chatd with cfg until it is stopped; returns the process exit status. */
int ch_master_run(struct ch_config *cfg, int repair);

#endif
