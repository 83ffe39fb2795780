/*
 * The journal's in-memory state: users, rooms, participants, the per-room
 * index of message positions, and the window of recent client ids.
 *
 * It is built by applying records, and only so: recovery applies every
 * record of the log in order, and the live path builds a record, applies
 * it and appends it. The same function doing both is what keeps the state
 * after a restart identical to the state before it.
 *
 * Owned by the journal process; one thread.
 */
#ifndef CH_STATE_H
#define CH_STATE_H

#include "journal/record.h"

#include <stddef.h>
#include <stdint.h>

#define CH_NAME_MAX 68		/* room names (CH_ROOM_NAME_MAX: ids and dm:A:B) */
#define CH_CLIENT_ID_MAX 128	/* a client's message id */
#define CH_DEDUPE_WINDOW 65536	/* recent (user, id) pairs remembered */

struct ch_user {
	uint32_t id;		/* 1-based, in creation order */
	char name[CH_NAME_MAX + 1];
	char *hash;		/* crypt(3) output */
	uint64_t created_ms;
	uint32_t *rooms;	/* ids of the rooms the user is in */
	uint32_t n_rooms, cap_rooms;
};

struct ch_room {
	uint32_t id;		/* 1-based, in creation order */
	char name[CH_NAME_MAX + 1];
	uint32_t created_by;	/* user id */
	uint64_t created_ms;
	uint32_t *members;	/* user ids, in the order they were added */
	uint32_t n_members, cap_members;
	uint64_t last_seq;
	uint64_t *pos;		/* pos[seq - 1]: the message's log position */
	uint64_t cap_pos;
	int32_t ring;		/* room ring in shm, -1 when none */
	uint64_t last_active_ms;
};

struct ch_dedupe_entry {
	uint32_t user;		/* 0: empty */
	uint32_t room;
	uint64_t seq;
	uint64_t ts;
	uint64_t hash;
	char id[CH_CLIENT_ID_MAX + 1];
};

struct ch_state {
	struct ch_user **users;	/* users[id - 1] */
	uint32_t n_users, cap_users;
	struct ch_room **rooms;	/* rooms[id - 1] */
	uint32_t n_rooms, cap_rooms;
	uint32_t *user_index;	/* open addressing: name hash -> user id */
	uint32_t *room_index;	/* name hash -> room id */
	uint32_t index_cap;	/* slots in each index, a power of two */
	struct ch_dedupe_entry *dedupe;	/* CH_DEDUPE_WINDOW, FIFO by next */
	uint32_t *dedupe_index;		/* 2 x window slots, 0 = empty, else entry + 1 */
	uint32_t dedupe_next;
	uint64_t records;	/* applied so far */
};

int ch_state_init(struct ch_state *s);
void ch_state_free(struct ch_state *s);

/* Apply one record (from recovery or the live path). -EINVAL for a record
 * that contradicts the state (a bug or a damaged log): the caller stops. */
int ch_state_apply(struct ch_state *s, const struct ch_record *rec);

struct ch_user *ch_state_user(const struct ch_state *s, const char *name);
struct ch_user *ch_state_user_by_id(const struct ch_state *s, uint32_t id);
struct ch_room *ch_state_room(const struct ch_state *s, const char *name);
struct ch_room *ch_state_room_by_id(const struct ch_state *s, uint32_t id);
int ch_state_is_member(const struct ch_room *room, uint32_t user);

/* A recent send by (user, client id): the first ack's seq and ts. */
const struct ch_dedupe_entry *ch_state_dedupe_find(const struct ch_state *s, uint32_t user,
						   const char *id);

/* ---- record payloads: what each record type carries ---- */

/* CH_REC_USER_CREATED: str name, str hash. CH_REC_PASSWORD_CHANGED: the same. */
/* CH_REC_ROOM_CREATED: str name, u32 n, n x u32 member id (creator first). */
/* CH_REC_MESSAGE: str room name, str author name, str client id, str content. */
struct ch_message {
	const char *room;
	size_t room_len;
	const char *from;
	size_t from_len;
	const char *id;
	size_t id_len;
	const char *content;
	size_t content_len;
};

/* Decode a message record's payload (pointers into the record). */
int ch_message_decode(const struct ch_record *rec, struct ch_message *m);

#endif
