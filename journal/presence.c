/*
 * The presence table: see presence.h.
 */
#include "journal/presence.h"

#include <stdlib.h>
#include <string.h>

static const char *const status_names[] = {
	[CH_STATUS_OFFLINE] = "offline",
	[CH_STATUS_ACTIVE] = "active",
	[CH_STATUS_BUSY] = "busy",
	[CH_STATUS_AWAY] = "away",
};

const char *ch_status_name(enum ch_status s)
{
	return (unsigned)s < sizeof(status_names) / sizeof(status_names[0]) ? status_names[s]
									      : "offline";
}

int ch_status_parse(const char *s)
{
	for (size_t i = CH_STATUS_ACTIVE; i < sizeof(status_names) / sizeof(status_names[0]); i++)
		if (strcmp(s, status_names[i]) == 0)
			return (int)i;
	return -1;
}

void ch_presence_init(struct ch_presence *p)
{
	memset(p, 0, sizeof(*p));
}

void ch_presence_free(struct ch_presence *p)
{
	for (uint32_t i = 0; i < p->n; i++)
		free(p->users[i].live);
	free(p->users);
	memset(p, 0, sizeof(*p));
}

static struct ch_presence_user *slot(struct ch_presence *p, uint32_t user)
{
	if (user == 0)
		return NULL;
	if (user > p->cap) {
		uint32_t cap = p->cap ? p->cap : 64;
		while (cap < user)
			cap *= 2;
		struct ch_presence_user *u = realloc(p->users, cap * sizeof(*u));
		if (!u)
			return NULL;
		memset(u + p->cap, 0, (cap - p->cap) * sizeof(*u));
		p->users = u;
		p->cap = cap;
	}
	if (user > p->n)
		p->n = user;
	return &p->users[user - 1];
}

static enum ch_status effective(const struct ch_presence_user *u)
{
	if (!u->live || u->live->conns == 0)
		return CH_STATUS_OFFLINE;
	if (u->set != CH_STATUS_ACTIVE)
		return (enum ch_status)u->set;
	return u->live->idle == u->live->conns ? CH_STATUS_AWAY : CH_STATUS_ACTIVE;
}

/* Recompute the user's status; 1 if it changed. Frees the counts of a
 * user who went offline (and forgets the status they set). */
static int settle(struct ch_presence *p, struct ch_presence_user *u, uint64_t now_ms)
{
	enum ch_status s = effective(u);

	if (s == CH_STATUS_OFFLINE && u->live) {
		free(u->live);
		u->live = NULL;
		u->set = CH_STATUS_ACTIVE;
		p->online--;
	}
	if (s == u->shown)
		return 0;
	u->shown = (uint8_t)s;
	u->since_ms = now_ms;
	return 1;
}

int ch_presence_update(struct ch_presence *p, uint32_t user, int w, enum ch_presence_event ev,
		       uint32_t value, uint64_t now_ms)
{
	if (w < 0 || w >= CH_MAX_WORKERS)
		return -1;
	struct ch_presence_user *u = slot(p, user);
	if (!u)
		return -1;
	if (!u->live) {
		if (ev != CH_PRES_OPEN)
			return 0;	/* about a connection we never heard of */
		u->live = calloc(1, sizeof(*u->live));
		if (!u->live)
			return -1;
		u->set = CH_STATUS_ACTIVE;
		p->online++;
	}
	struct ch_presence_live *l = u->live;
	switch (ev) {
	case CH_PRES_OPEN:
		l->conns++;
		l->w_conns[w]++;
		break;
	case CH_PRES_CLOSE:
		if (!l->w_conns[w])
			return -1;
		l->conns--;
		l->w_conns[w]--;
		if (value && l->w_idle[w]) {
			l->idle--;
			l->w_idle[w]--;
		}
		break;
	case CH_PRES_IDLE:
		if (l->w_idle[w] >= l->w_conns[w])
			return -1;
		l->idle++;
		l->w_idle[w]++;
		break;
	case CH_PRES_ACTIVE:
		if (!l->w_idle[w])
			return -1;
		l->idle--;
		l->w_idle[w]--;
		break;
	case CH_PRES_SET:
		if (value < CH_STATUS_ACTIVE || value > CH_STATUS_AWAY)
			return -1;
		u->set = (uint8_t)value;
		break;
	default:
		return -1;
	}
	return settle(p, u, now_ms);
}

void ch_presence_drop_worker(struct ch_presence *p, int w, uint64_t now_ms,
			     void (*changed)(uint32_t user, void *arg), void *arg)
{
	if (w < 0 || w >= CH_MAX_WORKERS)
		return;
	for (uint32_t i = 0; i < p->n; i++) {
		struct ch_presence_user *u = &p->users[i];
		struct ch_presence_live *l = u->live;
		if (!l || !l->w_conns[w])
			continue;
		l->conns -= l->w_conns[w];
		l->idle -= l->w_idle[w];
		l->w_conns[w] = l->w_idle[w] = 0;
		if (settle(p, u, now_ms) && changed)
			changed(i + 1, arg);
	}
}

enum ch_status ch_presence_get(const struct ch_presence *p, uint32_t user, uint64_t *since_ms)
{
	if (user == 0 || user > p->n) {
		*since_ms = 0;
		return CH_STATUS_OFFLINE;
	}
	*since_ms = p->users[user - 1].since_ms;
	return (enum ch_status)p->users[user - 1].shown;
}
