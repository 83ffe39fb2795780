/*
 * Who is online, and how: the journal's table of presence.
 *
 * Presence is not persistent (nothing of it is in the log) but it is
 * global, so one process must hold it: the journal, which every worker
 * already talks to. Each worker reports its own WebSocket connections
 * (opened, closed, idle, active again, status set); this table sums them
 * per user and says when a user's effective status changes, which the
 * journal then announces to the rooms the user is in.
 *
 * Effective status: offline with no connection; else the status the user
 * set (busy, away) when not active; else away when every connection has
 * been idle for the configured time; else active. The status a user set
 * lasts until their last connection closes.
 *
 * Counts are kept per worker, so a worker that restarts (its connections
 * are gone) is subtracted in one call. Invariant: for every user,
 * conns = sum of w_conns and idle = sum of w_idle <= conns.
 *
 * Owned by the journal process; one thread.
 */
#ifndef CH_PRESENCE_H
#define CH_PRESENCE_H

#include "master/config.h"

#include <stdint.h>

enum ch_status {
	CH_STATUS_OFFLINE = 0,
	CH_STATUS_ACTIVE,
	CH_STATUS_BUSY,
	CH_STATUS_AWAY,
};

/* What a worker reports of one connection (CH_REQ_PRESENCE). */
enum ch_presence_event {
	CH_PRES_OPEN = 1,	/* a connection of the user opened (active) */
	CH_PRES_CLOSE,		/* ... closed; value: 1 if it was idle */
	CH_PRES_IDLE,		/* ... has been idle for the configured time */
	CH_PRES_ACTIVE,		/* ... was idle and is active again */
	CH_PRES_SET,		/* the user set a status; value: enum ch_status */
};

struct ch_presence_live {
	uint32_t conns, idle;
	uint16_t w_conns[CH_MAX_WORKERS];
	uint16_t w_idle[CH_MAX_WORKERS];
};

struct ch_presence_user {
	uint8_t set;		/* the status the user chose (ACTIVE by default) */
	uint8_t shown;		/* the effective status last announced */
	uint64_t since_ms;	/* when `shown` last changed */
	struct ch_presence_live *live;	/* NULL while offline */
};

struct ch_presence {
	struct ch_presence_user *users;	/* users[id - 1] */
	uint32_t n, cap;
	uint32_t online;
};

void ch_presence_init(struct ch_presence *p);
void ch_presence_free(struct ch_presence *p);

/*
 * Apply one report about user id (1-based) from worker w. Returns 1 when
 * the user's effective status changed (read it with ch_presence_get), 0
 * when not, -1 for a report that does not fit (out of memory, bad values).
 */
int ch_presence_update(struct ch_presence *p, uint32_t user, int w, enum ch_presence_event ev,
		       uint32_t value, uint64_t now_ms);

/*
 * Worker w restarted: its connections are gone. Calls changed(user, arg)
 * for every user whose effective status changed.
 */
void ch_presence_drop_worker(struct ch_presence *p, int w, uint64_t now_ms,
			     void (*changed)(uint32_t user, void *arg), void *arg);

/* The user's effective status and since when (0: not seen since start). */
enum ch_status ch_presence_get(const struct ch_presence *p, uint32_t user, uint64_t *since_ms);

/* "active", "busy", "away", "offline"; and back (-1 for another word). */
const char *ch_status_name(enum ch_status s);
int ch_status_parse(const char *s);

#endif
