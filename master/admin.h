/*
 * The master's admin socket: the server side of chatadm(8).
 *
 * A Unix stream socket at [admin] socket (default <data_dir>/chatd.sock),
 * created under umask 0117 and chmod-ed to 0660, so it is never reachable
 * by others even between bind and chmod. Each peer's credentials are read
 * with SO_PEERCRED; only root and chatd's own uid are served.
 *
 * One request per connection (admin/commands.h has the protocol and the
 * command table). The master's loop polls the socket, its clients and the
 * workers' control channels; nothing here blocks: a command that needs
 * the workers (users, rooms, kick, reopen, top) or waits for something
 * (reload, promote) parks its client until the answers are in or its
 * deadline passes.
 */
#ifndef CH_ADMIN_H
#define CH_ADMIN_H

#include <poll.h>
#include <stdint.h>
#include <sys/types.h>

#define CH_ADMIN_CLIENTS 16		/* connections served at once */
#define CH_ADMIN_POLLFDS (1 + CH_ADMIN_CLIENTS + 64)	/* + a channel per worker */
#define CH_ADMIN_IO_MS 5000		/* a client must send its request within */
#define CH_ADMIN_WORKER_MS 3000		/* workers must answer within */
#define CH_ADMIN_PROMOTE_MS 30000	/* promote waits for the new role */
#define CH_ADMIN_UPGRADE_MS 600000	/* upgrade waits for every worker */
#define CH_ADMIN_SOCKET_NAME "chatd.sock"

struct ch_master;
struct ch_admin;

/* Create the socket (replacing a stale one); -1 if it cannot be made or
 * another chatd answers on it. */
int ch_admin_open(struct ch_master *m);

/* Close it and remove the file (the master, at exit). */
void ch_admin_close(struct ch_master *m);

/* In a forked child: close the inherited descriptors, keep the file. */
void ch_admin_close_inherited(struct ch_admin *a);

/* The descriptors to poll: the socket, its clients, the workers' channels. */
int ch_admin_pollfds(struct ch_master *m, struct pollfd *fds, int max);

/* Serve what is ready (fds as filled by ch_admin_pollfds, n of them; n = 0:
 * only look at parked commands and deadlines). */
void ch_admin_process(struct ch_master *m, const struct pollfd *fds, int n);

/* A worker exited: read what it sent before it went (a retiring worker's
 * last connections), before its channel is closed. */
struct ch_child;
void ch_admin_channel_drain(struct ch_master *m, struct ch_child *ch);

/* Milliseconds until a parked command should be looked at again (-1: none). */
int ch_admin_timeout_ms(const struct ch_admin *a, uint64_t now_ms);

/* The peer check, apart for tests: may a peer with this uid use the socket? */
int ch_admin_peer_allowed(uid_t peer, uid_t self);

/* Split a request line into words (in place); the count, or -1 if the line
 * is empty, too long or has too many words. */
int ch_admin_split(char *line, char **words, int max);

/* Find a command by its word; -1 if none. */
int ch_admin_find(const char *word);

/* fsync p99 from the histogram of shm/shm.h (bucket b: < 2^b * 100 us), in
 * microseconds: the upper bound of the bucket holding the 99th percentile;
 * 0 with no samples. */
uint64_t ch_admin_fsync_p99_us(const uint64_t *buckets, int n);

/* The stats section a counter of the shm X-macro belongs in, by its name. */
const char *ch_admin_stat_section(const char *field);

#endif
