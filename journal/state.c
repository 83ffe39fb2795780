/*
 * The journal's in-memory state: see state.h.
 *
 * Users and rooms live in arrays indexed by id; two open-addressing tables
 * map names to ids (linear probing, kept at most half full, rebuilt when
 * they grow). The dedupe window is a FIFO of CH_DEDUPE_WINDOW entries with
 * its own probing table; an entry that falls out of the FIFO is removed
 * from the table by re-inserting the rest of its probe run.
 */
#include "journal/state.h"

#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CH_INDEX_MIN 1024u

static uint64_t hash_bytes(const void *p, size_t n, uint64_t h)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++) {
		h ^= c[i];
		h *= 0x100000001b3ull;	/* FNV-1a */
	}
	return h;
}

static uint64_t hash_name(const char *s)
{
	return hash_bytes(s, strlen(s), 0xcbf29ce484222325ull);
}

static const char *name_of(const struct ch_state *s, int rooms, uint32_t id)
{
	return rooms ? s->rooms[id - 1]->name : s->users[id - 1]->name;
}

static void index_put(uint32_t *index, uint32_t cap, uint64_t h, uint32_t id)
{
	for (uint32_t i = (uint32_t)h & (cap - 1);; i = (i + 1) & (cap - 1)) {
		if (!index[i]) {
			index[i] = id;
			return;
		}
	}
}

static int index_grow(struct ch_state *s)
{
	uint32_t cap = s->index_cap * 2;
	uint32_t *u = calloc(cap, sizeof(*u));
	uint32_t *r = calloc(cap, sizeof(*r));
	if (!u || !r) {
		free(u);
		free(r);
		return -ENOMEM;
	}
	for (uint32_t id = 1; id <= s->n_users; id++)
		index_put(u, cap, hash_name(s->users[id - 1]->name), id);
	for (uint32_t id = 1; id <= s->n_rooms; id++)
		index_put(r, cap, hash_name(s->rooms[id - 1]->name), id);
	free(s->user_index);
	free(s->room_index);
	s->user_index = u;
	s->room_index = r;
	s->index_cap = cap;
	return 0;
}

static uint32_t index_find(const struct ch_state *s, int rooms, const char *name)
{
	const uint32_t *index = rooms ? s->room_index : s->user_index;
	uint32_t cap = s->index_cap;
	for (uint32_t i = (uint32_t)hash_name(name) & (cap - 1); index[i]; i = (i + 1) & (cap - 1))
		if (strcmp(name_of(s, rooms, index[i]), name) == 0)
			return index[i];
	return 0;
}

int ch_state_init(struct ch_state *s)
{
	memset(s, 0, sizeof(*s));
	s->index_cap = CH_INDEX_MIN;
	s->user_index = calloc(s->index_cap, sizeof(uint32_t));
	s->room_index = calloc(s->index_cap, sizeof(uint32_t));
	s->dedupe = calloc(CH_DEDUPE_WINDOW, sizeof(*s->dedupe));
	s->dedupe_index = calloc(2 * CH_DEDUPE_WINDOW, sizeof(uint32_t));
	if (!s->user_index || !s->room_index || !s->dedupe || !s->dedupe_index) {
		ch_state_free(s);
		return -ENOMEM;
	}
	return 0;
}

void ch_state_free(struct ch_state *s)
{
	for (uint32_t i = 0; i < s->n_users; i++) {
		free(s->users[i]->hash);
		free(s->users[i]->rooms);
		free(s->users[i]);
	}
	for (uint32_t i = 0; i < s->n_rooms; i++) {
		free(s->rooms[i]->members);
		free(s->rooms[i]->pos);
		free(s->rooms[i]);
	}
	free(s->users);
	free(s->rooms);
	free(s->user_index);
	free(s->room_index);
	free(s->dedupe);
	free(s->dedupe_index);
	memset(s, 0, sizeof(*s));
}

struct ch_user *ch_state_user(const struct ch_state *s, const char *name)
{
	uint32_t id = index_find(s, 0, name);
	return id ? s->users[id - 1] : NULL;
}

struct ch_user *ch_state_user_by_id(const struct ch_state *s, uint32_t id)
{
	return id && id <= s->n_users ? s->users[id - 1] : NULL;
}

struct ch_room *ch_state_room(const struct ch_state *s, const char *name)
{
	uint32_t id = index_find(s, 1, name);
	return id ? s->rooms[id - 1] : NULL;
}

struct ch_room *ch_state_room_by_id(const struct ch_state *s, uint32_t id)
{
	return id && id <= s->n_rooms ? s->rooms[id - 1] : NULL;
}

int ch_state_is_member(const struct ch_room *room, uint32_t user)
{
	for (uint32_t i = 0; i < room->n_members; i++)
		if (room->members[i] == user)
			return 1;
	return 0;
}

static int grow_u32(uint32_t **arr, uint32_t *cap, uint32_t need)
{
	if (need <= *cap)
		return 0;
	uint32_t c = *cap ? *cap * 2 : 4;
	while (c < need)
		c *= 2;
	uint32_t *p = realloc(*arr, c * sizeof(*p));
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = c;
	return 0;
}

static int grow_ptrs(void ***arr, uint32_t *cap, uint32_t need)
{
	if (need <= *cap)
		return 0;
	uint32_t c = *cap ? *cap * 2 : 64;
	void **p = realloc(*arr, c * sizeof(*p));
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = c;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Dedupe window                                                          */

static uint64_t dedupe_hash(uint32_t user, const char *id, size_t n)
{
	uint64_t h = hash_bytes(&user, sizeof(user), 0xcbf29ce484222325ull);
	return hash_bytes(id, n, h) | 1;
}

#define DEDUPE_SLOTS (2u * CH_DEDUPE_WINDOW)

static void dedupe_unindex(struct ch_state *s, uint32_t entry)
{
	uint32_t mask = DEDUPE_SLOTS - 1;
	uint32_t i = (uint32_t)s->dedupe[entry].hash & mask;
	while (s->dedupe_index[i] != entry + 1)
		i = (i + 1) & mask;
	s->dedupe_index[i] = 0;
	/* Re-insert the rest of the run so lookups do not stop early. */
	for (i = (i + 1) & mask; s->dedupe_index[i]; i = (i + 1) & mask) {
		uint32_t e = s->dedupe_index[i];
		s->dedupe_index[i] = 0;
		uint32_t j = (uint32_t)s->dedupe[e - 1].hash & mask;
		while (s->dedupe_index[j])
			j = (j + 1) & mask;
		s->dedupe_index[j] = e;
	}
}

static void dedupe_add(struct ch_state *s, uint32_t user, const char *id, size_t n,
		       uint32_t room, uint64_t seq, uint64_t ts)
{
	uint32_t e = s->dedupe_next;
	struct ch_dedupe_entry *d = &s->dedupe[e];

	if (n > CH_CLIENT_ID_MAX)
		return;
	if (d->user)
		dedupe_unindex(s, e);
	d->user = user;
	d->room = room;
	d->seq = seq;
	d->ts = ts;
	d->hash = dedupe_hash(user, id, n);
	memcpy(d->id, id, n);
	d->id[n] = '\0';
	uint32_t mask = DEDUPE_SLOTS - 1;
	uint32_t i = (uint32_t)d->hash & mask;
	while (s->dedupe_index[i])
		i = (i + 1) & mask;
	s->dedupe_index[i] = e + 1;
	s->dedupe_next = (e + 1) % CH_DEDUPE_WINDOW;
}

const struct ch_dedupe_entry *ch_state_dedupe_find(const struct ch_state *s, uint32_t user,
						   const char *id)
{
	size_t n = strlen(id);
	uint64_t h = dedupe_hash(user, id, n);
	uint32_t mask = DEDUPE_SLOTS - 1;
	for (uint32_t i = (uint32_t)h & mask; s->dedupe_index[i]; i = (i + 1) & mask) {
		const struct ch_dedupe_entry *d = &s->dedupe[s->dedupe_index[i] - 1];
		if (d->hash == h && d->user == user && strcmp(d->id, id) == 0)
			return d;
	}
	return NULL;
}

/* ---------------------------------------------------------------------- */
/* Applying records                                                       */

/* The payload of USER_CREATED and PASSWORD_CHANGED: str name, str hash. */
static int read_name_hash(const struct ch_record *rec, char name[CH_NAME_MAX + 1],
			  const uint8_t **hash, size_t *hash_len)
{
	struct ch_payload_reader r;

	ch_payload_reader_init(&r, rec->payload, rec->payload_len);
	ch_payload_get_str(&r, name, CH_NAME_MAX + 1);
	*hash = ch_payload_get_bytes(&r, hash_len);
	return ch_payload_reader_finish(&r);
}

static int add_user(struct ch_state *s, const struct ch_record *rec)
{
	char name[CH_NAME_MAX + 1];
	const uint8_t *hash;
	size_t hash_len;

	if (read_name_hash(rec, name, &hash, &hash_len) < 0 || ch_state_user(s, name))
		return -EINVAL;
	if ((s->n_users + 1) * 2 > s->index_cap && index_grow(s) < 0)
		return -ENOMEM;
	if (grow_ptrs((void ***)&s->users, &s->cap_users, s->n_users + 1) < 0)
		return -ENOMEM;
	struct ch_user *u = calloc(1, sizeof(*u));
	if (!u || !(u->hash = strndup((const char *)hash, hash_len))) {
		free(u);
		return -ENOMEM;
	}
	snprintf(u->name, sizeof(u->name), "%s", name);
	u->id = ++s->n_users;
	u->created_ms = rec->ts_ms;
	s->users[u->id - 1] = u;
	index_put(s->user_index, s->index_cap, hash_name(name), u->id);
	return 0;
}

static int set_password(struct ch_state *s, const struct ch_record *rec)
{
	char name[CH_NAME_MAX + 1];
	const uint8_t *hash;
	size_t hash_len;

	if (read_name_hash(rec, name, &hash, &hash_len) < 0)
		return -EINVAL;
	struct ch_user *u = ch_state_user(s, name);
	if (!u)
		return -EINVAL;
	char *copy = strndup((const char *)hash, hash_len);
	if (!copy)
		return -ENOMEM;
	free(u->hash);
	u->hash = copy;
	return 0;
}

static int add_member(struct ch_state *s, struct ch_room *room, uint32_t uid)
{
	struct ch_user *u = ch_state_user_by_id(s, uid);
	if (!u)
		return -EINVAL;
	if (ch_state_is_member(room, uid))
		return 0;
	if (grow_u32(&room->members, &room->cap_members, room->n_members + 1) < 0 ||
	    grow_u32(&u->rooms, &u->cap_rooms, u->n_rooms + 1) < 0)
		return -ENOMEM;
	room->members[room->n_members++] = uid;
	u->rooms[u->n_rooms++] = room->id;
	return 0;
}

/* Read n member ids that must all name existing users: a record that
 * names anyone else changes nothing. */
static int read_members(const struct ch_state *s, struct ch_payload_reader *r, uint32_t n,
			uint32_t **out)
{
	if (n > r->len / sizeof(uint32_t))
		return -EINVAL;
	uint32_t *ids = malloc((n ? n : 1) * sizeof(*ids));
	if (!ids)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		ids[i] = ch_payload_get_u32(r);
		if (r->failed || !ch_state_user_by_id(s, ids[i])) {
			free(ids);
			return -EINVAL;
		}
	}
	if (ch_payload_reader_finish(r) < 0) {
		free(ids);
		return -EINVAL;
	}
	*out = ids;
	return 0;
}

static int add_room(struct ch_state *s, const struct ch_record *rec)
{
	struct ch_payload_reader r;
	char name[CH_NAME_MAX + 1];
	uint32_t *ids;

	ch_payload_reader_init(&r, rec->payload, rec->payload_len);
	ch_payload_get_str(&r, name, sizeof(name));
	uint32_t n = ch_payload_get_u32(&r);
	if (r.failed || ch_state_room(s, name) || n == 0)
		return -EINVAL;
	int rc = read_members(s, &r, n, &ids);
	if (rc < 0)
		return rc;
	rc = -ENOMEM;
	if ((s->n_rooms + 1) * 2 > s->index_cap && index_grow(s) < 0)
		goto out;
	if (grow_ptrs((void ***)&s->rooms, &s->cap_rooms, s->n_rooms + 1) < 0)
		goto out;
	struct ch_room *room = calloc(1, sizeof(*room));
	if (!room)
		goto out;
	snprintf(room->name, sizeof(room->name), "%s", name);
	room->id = s->n_rooms + 1;
	room->created_ms = rec->ts_ms;
	room->created_by = ids[0];
	room->ring = -1;
	s->rooms[room->id - 1] = room;
	s->n_rooms++;
	index_put(s->room_index, s->index_cap, hash_name(name), room->id);
	rc = 0;
	for (uint32_t i = 0; i < n && rc == 0; i++)
		rc = add_member(s, room, ids[i]);
out:
	free(ids);
	return rc;
}

static int add_participants(struct ch_state *s, const struct ch_record *rec)
{
	struct ch_payload_reader r;
	struct ch_room *room = ch_state_room_by_id(s, rec->room);
	uint32_t *ids = NULL;

	if (!room)
		return -EINVAL;
	ch_payload_reader_init(&r, rec->payload, rec->payload_len);
	uint32_t n = ch_payload_get_u32(&r);
	if (r.failed)
		return -EINVAL;
	int rc = read_members(s, &r, n, &ids);
	for (uint32_t i = 0; rc == 0 && i < n; i++)
		rc = add_member(s, room, ids[i]);
	free(ids);
	return rc;
}

int ch_message_decode(const struct ch_record *rec, struct ch_message *m)
{
	struct ch_payload_reader r;

	ch_payload_reader_init(&r, rec->payload, rec->payload_len);
	m->room = (const char *)ch_payload_get_bytes(&r, &m->room_len);
	m->from = (const char *)ch_payload_get_bytes(&r, &m->from_len);
	m->id = (const char *)ch_payload_get_bytes(&r, &m->id_len);
	m->content = (const char *)ch_payload_get_bytes(&r, &m->content_len);
	return ch_payload_reader_finish(&r) < 0 ? -EINVAL : 0;
}

static int add_message(struct ch_state *s, const struct ch_record *rec)
{
	struct ch_room *room = ch_state_room_by_id(s, rec->room);
	struct ch_message m;

	/* Seq is the room's next, always: no gap and no repeat. The author
	 * is a user (0 would also read as a free slot of the dedupe window). */
	if (!room || rec->room_seq != room->last_seq + 1 || !ch_state_user_by_id(s, rec->author) ||
	    ch_message_decode(rec, &m) < 0)
		return -EINVAL;
	if (room->last_seq == room->cap_pos) {
		uint64_t cap = room->cap_pos ? room->cap_pos * 2 : 64;
		uint64_t *p = realloc(room->pos, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		room->pos = p;
		room->cap_pos = cap;
	}
	room->pos[room->last_seq++] = rec->pos;
	room->last_active_ms = rec->ts_ms;
	if (m.id_len)
		dedupe_add(s, rec->author, m.id, m.id_len, room->id, rec->room_seq, rec->ts_ms);
	return 0;
}

int ch_state_apply(struct ch_state *s, const struct ch_record *rec)
{
	int rc;

	switch (rec->type) {
	case CH_REC_USER_CREATED:
		rc = add_user(s, rec);
		break;
	case CH_REC_PASSWORD_CHANGED:
		rc = set_password(s, rec);
		break;
	case CH_REC_ROOM_CREATED:
		rc = add_room(s, rec);
		break;
	case CH_REC_PARTICIPANTS_CHANGED:
		rc = add_participants(s, rec);
		break;
	case CH_REC_MESSAGE:
		rc = add_message(s, rec);
		break;
	default:
		rc = 0;	/* types this version does not keep state for */
		break;
	}
	if (rc == 0)
		s->records++;
	return rc;
}
