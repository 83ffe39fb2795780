/*
 * The journal's in-memory state (journal/state.h): built only by applying
 * records, so every test here builds records with the payload codec in the
 * layouts state.h documents and applies them.
 *
 * Covered: ids in creation order, lookups by name and by id, refusals
 * (duplicate names, unknown users, bad payloads, seq gaps and repeats)
 * that change nothing, membership and each user's room list, the per-room position
 * index and its growth, the name indexes' growth (past 512 and 1024 names),
 * the dedupe window (found, not found for another user, overlong ids,
 * forgetting the oldest while every one of the newest window stays found
 * after wrapping the FIFO three times), password changes and the message
 * payload decoder.
 *
 * Tests whose name ends in _BUG show a defect of the code under test and
 * fail until it is fixed; the comment above each says what is wrong.
 */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal/record.h"
#include "journal/state.h"

#define PAYLOAD_CAP 4096
#define TEST_TIMEOUT_S 60
#define BASE_TS 1700000000000ull	/* an arbitrary wall-clock ms */
#define POS_STEP 64u			/* synthetic log positions, 8-aligned */

/* ---------------------------------------------------------------------- */
/* Record builders                                                        */

static struct ch_record make_rec(uint16_t type, uint32_t room, uint32_t author,
				 uint64_t seq, uint64_t pos, const uint8_t *payload,
				 size_t len)
{
	struct ch_record rec;

	memset(&rec, 0, sizeof(rec));
	rec.type = type;
	rec.room = room;
	rec.author = author;
	rec.room_seq = seq;
	rec.pos = pos;
	rec.ts_ms = BASE_TS + pos;
	rec.payload = payload;
	rec.payload_len = (uint32_t)len;
	rec.len = (uint32_t)ch_record_size(len);
	return rec;
}

static size_t finish(struct ch_payload_writer *w)
{
	size_t len = 0;

	ck_assert_int_eq(ch_payload_writer_finish(w, &len), 0);
	return len;
}

/* CH_REC_USER_CREATED / CH_REC_PASSWORD_CHANGED: str name, str hash. */
static int apply_named(struct ch_state *s, uint16_t type, const char *name, const char *hash)
{
	uint8_t buf[PAYLOAD_CAP];
	struct ch_payload_writer w;

	ch_payload_writer_init(&w, buf, sizeof(buf));
	ch_payload_put_str(&w, name);
	ch_payload_put_str(&w, hash);
	size_t len = finish(&w);
	struct ch_record rec = make_rec(type, 0, 0, 0, 0, buf, len);
	return ch_state_apply(s, &rec);
}

static int apply_user(struct ch_state *s, const char *name, const char *hash)
{
	return apply_named(s, CH_REC_USER_CREATED, name, hash);
}

/* CH_REC_ROOM_CREATED: str name, u32 n, n x u32 member id. */
static int apply_room(struct ch_state *s, const char *name, uint32_t n, const uint32_t *ids)
{
	uint8_t buf[PAYLOAD_CAP];
	struct ch_payload_writer w;

	ch_payload_writer_init(&w, buf, sizeof(buf));
	ch_payload_put_str(&w, name);
	ch_payload_put_u32(&w, n);
	for (uint32_t i = 0; i < n; i++)
		ch_payload_put_u32(&w, ids[i]);
	size_t len = finish(&w);
	struct ch_record rec = make_rec(CH_REC_ROOM_CREATED, 0, ids ? ids[0] : 0, 0, 0, buf, len);
	return ch_state_apply(s, &rec);
}

/* CH_REC_PARTICIPANTS_CHANGED: u32 n, n x u32 ids; rec.room = room. */
static int apply_participants(struct ch_state *s, uint32_t room, uint32_t n,
			      const uint32_t *ids)
{
	uint8_t buf[PAYLOAD_CAP];
	struct ch_payload_writer w;

	ch_payload_writer_init(&w, buf, sizeof(buf));
	ch_payload_put_u32(&w, n);
	for (uint32_t i = 0; i < n; i++)
		ch_payload_put_u32(&w, ids[i]);
	size_t len = finish(&w);
	struct ch_record rec = make_rec(CH_REC_PARTICIPANTS_CHANGED, room, 0, 0, 0, buf, len);
	return ch_state_apply(s, &rec);
}

/* CH_REC_MESSAGE: str room name, str author name, str client id, bytes content. */
static size_t message_payload(uint8_t *buf, size_t cap, const char *room, const char *from,
			      const char *cid, size_t cid_len, const void *content,
			      size_t content_len)
{
	struct ch_payload_writer w;

	ch_payload_writer_init(&w, buf, cap);
	ch_payload_put_str(&w, room);
	ch_payload_put_str(&w, from);
	ch_payload_put_bytes(&w, cid, cid_len);
	ch_payload_put_bytes(&w, content, content_len);
	return finish(&w);
}

static int apply_msg_id(struct ch_state *s, uint32_t room, uint32_t author, uint64_t seq,
			uint64_t pos, const char *cid)
{
	uint8_t buf[PAYLOAD_CAP];
	size_t len = message_payload(buf, sizeof(buf), "r", "u", cid, strlen(cid), "hi", 2);
	struct ch_record rec = make_rec(CH_REC_MESSAGE, room, author, seq, pos, buf, len);
	return ch_state_apply(s, &rec);
}

static int apply_msg(struct ch_state *s, uint32_t room, uint32_t author, uint64_t seq,
		     uint64_t pos)
{
	return apply_msg_id(s, room, author, seq, pos, "");
}

/* A state with users alice(1), bob(2), carol(3) and room "general"
 * (1: alice, bob). */
static void small_world(struct ch_state *s)
{
	static const uint32_t general[] = { 1, 2 };

	ck_assert_int_eq(ch_state_init(s), 0);
	ck_assert_int_eq(apply_user(s, "alice", "$y$alice"), 0);
	ck_assert_int_eq(apply_user(s, "bob", "$y$bob"), 0);
	ck_assert_int_eq(apply_user(s, "carol", "$y$carol"), 0);
	ck_assert_int_eq(apply_room(s, "general", 2, general), 0);
}

/* ---------------------------------------------------------------------- */
/* Users and rooms                                                        */

START_TEST(test_users_in_order)
{
	struct ch_state s;
	const char *names[] = { "alice", "bob", "carol" };

	ck_assert_int_eq(ch_state_init(&s), 0);
	ck_assert_ptr_null(ch_state_user(&s, "alice"));
	ck_assert_ptr_null(ch_state_user_by_id(&s, 0));
	ck_assert_ptr_null(ch_state_user_by_id(&s, 1));
	for (uint32_t i = 0; i < 3; i++) {
		char hash[32];
		snprintf(hash, sizeof(hash), "$y$hash-%s", names[i]);
		ck_assert_int_eq(apply_user(&s, names[i], hash), 0);
	}
	ck_assert_uint_eq(s.n_users, 3);
	ck_assert_uint_eq(s.records, 3);
	for (uint32_t i = 0; i < 3; i++) {
		struct ch_user *u = ch_state_user(&s, names[i]);
		char hash[32];
		snprintf(hash, sizeof(hash), "$y$hash-%s", names[i]);
		ck_assert_ptr_nonnull(u);
		ck_assert_uint_eq(u->id, i + 1);
		ck_assert_str_eq(u->name, names[i]);
		ck_assert_str_eq(u->hash, hash);
		ck_assert_uint_eq(u->n_rooms, 0);
		ck_assert_ptr_eq(ch_state_user_by_id(&s, i + 1), u);
	}
	ck_assert_ptr_null(ch_state_user_by_id(&s, 0));
	ck_assert_ptr_null(ch_state_user_by_id(&s, 4));
	ck_assert_ptr_null(ch_state_user(&s, "dave"));
	ck_assert_ptr_null(ch_state_user(&s, "alic"));
	ck_assert_ptr_null(ch_state_user(&s, "alicee"));
	ck_assert_ptr_null(ch_state_user(&s, ""));
	/* Users and rooms are separate name spaces. */
	ck_assert_ptr_null(ch_state_room(&s, "alice"));
	ch_state_free(&s);
}
END_TEST

START_TEST(test_user_created_ms)
{
	struct ch_state s;
	uint8_t buf[PAYLOAD_CAP];
	struct ch_payload_writer w;

	ck_assert_int_eq(ch_state_init(&s), 0);
	ch_payload_writer_init(&w, buf, sizeof(buf));
	ch_payload_put_str(&w, "alice");
	ch_payload_put_str(&w, "h");
	size_t len = finish(&w);
	struct ch_record rec = make_rec(CH_REC_USER_CREATED, 0, 0, 0, 0, buf, len);
	rec.ts_ms = 123456789;
	ck_assert_int_eq(ch_state_apply(&s, &rec), 0);
	ck_assert_uint_eq(ch_state_user(&s, "alice")->created_ms, 123456789);
	ch_state_free(&s);
}
END_TEST

START_TEST(test_user_duplicate_refused)
{
	struct ch_state s;

	small_world(&s);
	uint64_t records = s.records;
	ck_assert_int_eq(apply_user(&s, "bob", "$y$other"), -EINVAL);
	ck_assert_uint_eq(s.n_users, 3);
	ck_assert_uint_eq(s.records, records);
	struct ch_user *bob = ch_state_user(&s, "bob");
	ck_assert_ptr_nonnull(bob);
	ck_assert_uint_eq(bob->id, 2);
	ck_assert_str_eq(bob->hash, "$y$bob");
	/* The next new user still gets the next id. */
	ck_assert_int_eq(apply_user(&s, "dave", "$y$dave"), 0);
	ck_assert_uint_eq(ch_state_user(&s, "dave")->id, 4);
	ch_state_free(&s);
}
END_TEST

START_TEST(test_user_bad_payload_refused)
{
	struct ch_state s;
	uint8_t buf[PAYLOAD_CAP];
	struct ch_payload_writer w;
	char longname[CH_NAME_MAX + 2];

	ck_assert_int_eq(ch_state_init(&s), 0);
	/* A name over CH_NAME_MAX does not fit the user's name field. */
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	ck_assert_int_eq(apply_user(&s, longname, "h"), -EINVAL);
	/* Trailing bytes after the hash. */
	ch_payload_writer_init(&w, buf, sizeof(buf));
	ch_payload_put_str(&w, "alice");
	ch_payload_put_str(&w, "h");
	ch_payload_put_u32(&w, 7);
	size_t len = finish(&w);
	struct ch_record rec = make_rec(CH_REC_USER_CREATED, 0, 0, 0, 0, buf, len);
	ck_assert_int_eq(ch_state_apply(&s, &rec), -EINVAL);
	/* Missing hash. */
	ch_payload_writer_init(&w, buf, sizeof(buf));
	ch_payload_put_str(&w, "alice");
	len = finish(&w);
	rec = make_rec(CH_REC_USER_CREATED, 0, 0, 0, 0, buf, len);
	ck_assert_int_eq(ch_state_apply(&s, &rec), -EINVAL);
	ck_assert_uint_eq(s.n_users, 0);
	ck_assert_uint_eq(s.records, 0);
	ck_assert_ptr_null(ch_state_user(&s, "alice"));
	/* A name of exactly CH_NAME_MAX bytes fits. */
	longname[CH_NAME_MAX] = '\0';
	ck_assert_int_eq(apply_user(&s, longname, "h"), 0);
	ck_assert_ptr_nonnull(ch_state_user(&s, longname));
	ch_state_free(&s);
}
END_TEST

START_TEST(test_rooms_in_order)
{
	struct ch_state s;
	static const uint32_t r2[] = { 3, 1 };
	static const uint32_t r3[] = { 2 };

	small_world(&s);
	ck_assert_int_eq(apply_room(&s, "random", 2, r2), 0);
	ck_assert_int_eq(apply_room(&s, "bob-only", 1, r3), 0);
	ck_assert_uint_eq(s.n_rooms, 3);

	struct ch_room *g = ch_state_room(&s, "general");
	struct ch_room *r = ch_state_room(&s, "random");
	struct ch_room *b = ch_state_room(&s, "bob-only");
	ck_assert_ptr_nonnull(g);
	ck_assert_ptr_nonnull(r);
	ck_assert_ptr_nonnull(b);
	ck_assert_uint_eq(g->id, 1);
	ck_assert_uint_eq(r->id, 2);
	ck_assert_uint_eq(b->id, 3);
	ck_assert_ptr_eq(ch_state_room_by_id(&s, 1), g);
	ck_assert_ptr_eq(ch_state_room_by_id(&s, 2), r);
	ck_assert_ptr_eq(ch_state_room_by_id(&s, 3), b);
	ck_assert_ptr_null(ch_state_room_by_id(&s, 0));
	ck_assert_ptr_null(ch_state_room_by_id(&s, 4));
	ck_assert_ptr_null(ch_state_room(&s, "nope"));
	ck_assert_ptr_null(ch_state_user(&s, "general"));

	/* Creator first; members in the order listed. */
	ck_assert_uint_eq(g->created_by, 1);
	ck_assert_uint_eq(r->created_by, 3);
	ck_assert_uint_eq(b->created_by, 2);
	ck_assert_uint_eq(r->n_members, 2);
	ck_assert_uint_eq(r->members[0], 3);
	ck_assert_uint_eq(r->members[1], 1);
	ck_assert_int_eq(r->ring, -1);
	ck_assert_uint_eq(r->last_seq, 0);

	ck_assert_int_eq(ch_state_is_member(g, 1), 1);
	ck_assert_int_eq(ch_state_is_member(g, 2), 1);
	ck_assert_int_eq(ch_state_is_member(g, 3), 0);
	ck_assert_int_eq(ch_state_is_member(g, 0), 0);
	ck_assert_int_eq(ch_state_is_member(r, 2), 0);
	ck_assert_int_eq(ch_state_is_member(b, 2), 1);
	ck_assert_int_eq(ch_state_is_member(b, 1), 0);

	/* Each user's rooms, in the order joined. */
	struct ch_user *alice = ch_state_user_by_id(&s, 1);
	struct ch_user *bob = ch_state_user_by_id(&s, 2);
	struct ch_user *carol = ch_state_user_by_id(&s, 3);
	ck_assert_uint_eq(alice->n_rooms, 2);
	ck_assert_uint_eq(alice->rooms[0], 1);
	ck_assert_uint_eq(alice->rooms[1], 2);
	ck_assert_uint_eq(bob->n_rooms, 2);
	ck_assert_uint_eq(bob->rooms[0], 1);
	ck_assert_uint_eq(bob->rooms[1], 3);
	ck_assert_uint_eq(carol->n_rooms, 1);
	ck_assert_uint_eq(carol->rooms[0], 2);
	ch_state_free(&s);
}
END_TEST

START_TEST(test_room_duplicate_refused)
{
	struct ch_state s;
	static const uint32_t ids[] = { 3 };

	small_world(&s);
	uint64_t records = s.records;
	ck_assert_int_eq(apply_room(&s, "general", 1, ids), -EINVAL);
	ck_assert_uint_eq(s.n_rooms, 1);
	ck_assert_uint_eq(s.records, records);
	struct ch_room *g = ch_state_room(&s, "general");
	ck_assert_uint_eq(g->id, 1);
	ck_assert_uint_eq(g->n_members, 2);
	ck_assert_uint_eq(g->created_by, 1);
	ck_assert_int_eq(ch_state_is_member(g, 3), 0);
	ck_assert_uint_eq(ch_state_user_by_id(&s, 3)->n_rooms, 0);
	/* The next room gets id 2. */
	ck_assert_int_eq(apply_room(&s, "other", 1, ids), 0);
	ck_assert_uint_eq(ch_state_room(&s, "other")->id, 2);
	ch_state_free(&s);
}
END_TEST

START_TEST(test_room_duplicate_member_listed_once)
{
	struct ch_state s;
	static const uint32_t ids[] = { 3, 2, 3, 2 };

	small_world(&s);
	ck_assert_int_eq(apply_room(&s, "dups", 4, ids), 0);
	struct ch_room *r = ch_state_room(&s, "dups");
	ck_assert_uint_eq(r->n_members, 2);
	ck_assert_uint_eq(r->members[0], 3);
	ck_assert_uint_eq(r->members[1], 2);
	ck_assert_uint_eq(ch_state_user_by_id(&s, 3)->n_rooms, 1);
	ck_assert_uint_eq(ch_state_user_by_id(&s, 2)->n_rooms, 2);
	ch_state_free(&s);
}
END_TEST

START_TEST(test_room_unknown_member_refused)
{
	struct ch_state s;
	static const uint32_t unknown_first[] = { 9 };
	static const uint32_t zero[] = { 0 };
	static const uint32_t unknown_later[] = { 1, 4 };

	small_world(&s);
	ck_assert_int_eq(apply_room(&s, "r1", 1, unknown_first), -EINVAL);
	ck_assert_int_eq(apply_room(&s, "r2", 1, zero), -EINVAL);
	ck_assert_int_eq(apply_room(&s, "r3", 2, unknown_later), -EINVAL);
	/* No members at all. */
	ck_assert_int_eq(apply_room(&s, "r4", 0, NULL), -EINVAL);
	ck_assert_ptr_null(ch_state_room(&s, "r4"));
	ch_state_free(&s);
}
END_TEST

/*
 * A refused CH_REC_ROOM_CREATED changes nothing: not the room table, not
 * the name index, not the members named before the bad one. The live path
 * (journal.c add_record) answers an error and goes on after a refusal, so
 * a half-made room would live in memory without being in the log: the
 * next room would get an id one higher than after a restart, and a
 * message to the phantom room would be logged with a room id that
 * recovery refuses.
 */
START_TEST(test_room_refused_changes_nothing)
{
	struct ch_state s;
	static const uint32_t unknown_later[] = { 1, 4 };

	small_world(&s);
	uint64_t records = s.records;
	ck_assert_int_eq(apply_room(&s, "phantom", 2, unknown_later), -EINVAL);
	/* Trailing bytes after the member list. */
	uint8_t buf[64];
	struct ch_payload_writer w;
	ch_payload_writer_init(&w, buf, sizeof(buf));
	ch_payload_put_str(&w, "phantom");
	ch_payload_put_u32(&w, 1);
	ch_payload_put_u32(&w, 1);
	ch_payload_put_u32(&w, 0);
	size_t len = finish(&w);
	struct ch_record rec = make_rec(CH_REC_ROOM_CREATED, 0, 1, 0, 0, buf, len);
	ck_assert_int_eq(ch_state_apply(&s, &rec), -EINVAL);
	/* Fewer ids than it says. */
	rec.payload_len -= 8;
	ck_assert_int_eq(ch_state_apply(&s, &rec), -EINVAL);

	ck_assert_uint_eq(s.n_rooms, 1);
	ck_assert_uint_eq(s.records, records);
	ck_assert_ptr_null(ch_state_room(&s, "phantom"));
	ck_assert_ptr_null(ch_state_room_by_id(&s, 2));
	ck_assert_uint_eq(ch_state_user_by_id(&s, 1)->n_rooms, 1);
	/* The next room gets id 2, as it would after a restart. */
	ck_assert_int_eq(apply_room(&s, "phantom", 1, unknown_later), 0);
	ck_assert_uint_eq(ch_state_room(&s, "phantom")->id, 2);
	ch_state_free(&s);
}
END_TEST

/* The same for CH_REC_PARTICIPANTS_CHANGED: ids before an unknown one are
 * not added either. */
START_TEST(test_participants_refused_changes_nothing)
{
	struct ch_state s;
	static const uint32_t ids[] = { 3, 42 };

	small_world(&s);
	ck_assert_int_eq(apply_participants(&s, 1, 2, ids), -EINVAL);
	struct ch_room *g = ch_state_room_by_id(&s, 1);
	ck_assert_uint_eq(g->n_members, 2);
	ck_assert_int_eq(ch_state_is_member(g, 3), 0);
	ck_assert_uint_eq(ch_state_user_by_id(&s, 3)->n_rooms, 0);
	/* An empty list is a valid no-op. */
	ck_assert_int_eq(apply_participants(&s, 1, 0, NULL), 0);
	ck_assert_uint_eq(g->n_members, 2);
	ch_state_free(&s);
}
END_TEST

START_TEST(test_participants_added)
{
	struct ch_state s;
	static const uint32_t add3[] = { 3 };
	static const uint32_t again[] = { 1, 3, 2 };
	static const uint32_t unknown[] = { 42 };

	small_world(&s);
	ck_assert_int_eq(apply_participants(&s, 1, 1, add3), 0);
	struct ch_room *g = ch_state_room_by_id(&s, 1);
	ck_assert_uint_eq(g->n_members, 3);
	ck_assert_uint_eq(g->members[2], 3);
	ck_assert_int_eq(ch_state_is_member(g, 3), 1);
	ck_assert_uint_eq(ch_state_user_by_id(&s, 3)->n_rooms, 1);
	ck_assert_uint_eq(ch_state_user_by_id(&s, 3)->rooms[0], 1);

	/* Adding members again changes nothing. */
	ck_assert_int_eq(apply_participants(&s, 1, 3, again), 0);
	ck_assert_uint_eq(g->n_members, 3);
	ck_assert_uint_eq(ch_state_user_by_id(&s, 1)->n_rooms, 1);
	ck_assert_uint_eq(ch_state_user_by_id(&s, 3)->n_rooms, 1);

	/* Unknown room, unknown user, short payload. */
	ck_assert_int_eq(apply_participants(&s, 2, 1, add3), -EINVAL);
	ck_assert_int_eq(apply_participants(&s, 0, 1, add3), -EINVAL);
	ck_assert_int_eq(apply_participants(&s, 1, 1, unknown), -EINVAL);
	uint8_t buf[16];
	struct ch_payload_writer w;
	ch_payload_writer_init(&w, buf, sizeof(buf));
	ch_payload_put_u32(&w, 2);
	ch_payload_put_u32(&w, 3);
	size_t len = finish(&w);
	struct ch_record rec = make_rec(CH_REC_PARTICIPANTS_CHANGED, 1, 0, 0, 0, buf, len);
	ck_assert_int_eq(ch_state_apply(&s, &rec), -EINVAL);
	ch_state_free(&s);
}
END_TEST

START_TEST(test_many_members)
{
	struct ch_state s;
	enum { N = 300 };
	uint32_t ids[N];

	ck_assert_int_eq(ch_state_init(&s), 0);
	for (uint32_t i = 0; i < N; i++) {
		char name[32];
		snprintf(name, sizeof(name), "m%u", i);
		ck_assert_int_eq(apply_user(&s, name, "h"), 0);
		ids[i] = N - i;	/* creator is the last user */
	}
	ck_assert_int_eq(apply_room(&s, "big", N, ids), 0);
	struct ch_room *r = ch_state_room(&s, "big");
	ck_assert_uint_eq(r->n_members, N);
	ck_assert_uint_eq(r->created_by, N);
	for (uint32_t i = 0; i < N; i++) {
		ck_assert_uint_eq(r->members[i], N - i);
		ck_assert_int_eq(ch_state_is_member(r, i + 1), 1);
		ck_assert_uint_eq(ch_state_user_by_id(&s, i + 1)->n_rooms, 1);
	}
	ck_assert_int_eq(ch_state_is_member(r, N + 1), 0);
	ch_state_free(&s);
}
END_TEST

START_TEST(test_user_in_many_rooms)
{
	struct ch_state s;
	enum { N = 100 };
	static const uint32_t ids[] = { 2, 1 };

	small_world(&s);
	for (uint32_t i = 0; i < N; i++) {
		char name[32];
		snprintf(name, sizeof(name), "room-%u", i);
		ck_assert_int_eq(apply_room(&s, name, 2, ids), 0);
	}
	struct ch_user *bob = ch_state_user(&s, "bob");
	struct ch_user *alice = ch_state_user(&s, "alice");
	ck_assert_uint_eq(bob->n_rooms, N + 1);
	ck_assert_uint_eq(alice->n_rooms, N + 1);
	for (uint32_t i = 0; i <= N; i++) {
		ck_assert_uint_eq(bob->rooms[i], i + 1);
		ck_assert_uint_eq(alice->rooms[i], i + 1);
	}
	ck_assert_uint_eq(ch_state_user(&s, "carol")->n_rooms, 0);
	ch_state_free(&s);
}
END_TEST

/* Past 512 users and rooms the 1024-slot indexes grow (at half full), and
 * again past 1024; every name must still map to its id. */
START_TEST(test_name_index_growth)
{
	struct ch_state s;
	enum { N = 2100 };
	char name[32];

	ck_assert_int_eq(ch_state_init(&s), 0);
	uint32_t first_cap = s.index_cap;
	for (uint32_t i = 1; i <= N; i++) {
		snprintf(name, sizeof(name), "user%u", i);
		ck_assert_int_eq(apply_user(&s, name, "h"), 0);
		/* Rooms lag behind users, so both tables are checked while
		 * the other one triggers the growth. */
		if (i % 2 == 0) {
			uint32_t member = i;
			snprintf(name, sizeof(name), "room%u", i / 2);
			ck_assert_int_eq(apply_room(&s, name, 1, &member), 0);
		}
		/* The table is never more than half full. */
		ck_assert_uint_le(2 * s.n_users, s.index_cap);
	}
	ck_assert_uint_gt(s.index_cap, first_cap * 2);
	for (uint32_t i = 1; i <= N; i++) {
		snprintf(name, sizeof(name), "user%u", i);
		struct ch_user *u = ch_state_user(&s, name);
		ck_assert_msg(u != NULL, "user %s lost after index growth", name);
		ck_assert_uint_eq(u->id, i);
		ck_assert_str_eq(ch_state_user_by_id(&s, i)->name, name);
	}
	for (uint32_t i = 1; i <= N / 2; i++) {
		snprintf(name, sizeof(name), "room%u", i);
		struct ch_room *r = ch_state_room(&s, name);
		ck_assert_msg(r != NULL, "room %s lost after index growth", name);
		ck_assert_uint_eq(r->id, i);
		ck_assert_uint_eq(r->created_by, 2 * i);
	}
	ck_assert_ptr_null(ch_state_user(&s, "user0"));
	snprintf(name, sizeof(name), "user%u", N + 1);
	ck_assert_ptr_null(ch_state_user(&s, name));
	ck_assert_ptr_null(ch_state_room(&s, "room0"));
	/* Duplicates are still caught through the grown index. */
	ck_assert_int_eq(apply_user(&s, "user777", "h"), -EINVAL);
	uint32_t one = 1;
	ck_assert_int_eq(apply_room(&s, "room555", 1, &one), -EINVAL);
	ch_state_free(&s);
}
END_TEST

/* More rooms than users: the room table alone drives the growth. */
START_TEST(test_room_index_growth_alone)
{
	struct ch_state s;
	enum { N = 1500 };
	char name[32];
	uint32_t one = 1;

	ck_assert_int_eq(ch_state_init(&s), 0);
	ck_assert_int_eq(apply_user(&s, "owner", "h"), 0);
	for (uint32_t i = 1; i <= N; i++) {
		snprintf(name, sizeof(name), "r-%u", i);
		ck_assert_int_eq(apply_room(&s, name, 1, &one), 0);
		ck_assert_uint_le(2 * s.n_rooms, s.index_cap);
	}
	for (uint32_t i = 1; i <= N; i++) {
		snprintf(name, sizeof(name), "r-%u", i);
		struct ch_room *r = ch_state_room(&s, name);
		ck_assert_msg(r != NULL, "room %s lost", name);
		ck_assert_uint_eq(r->id, i);
	}
	ck_assert_ptr_nonnull(ch_state_user(&s, "owner"));
	ck_assert_uint_eq(ch_state_user(&s, "owner")->n_rooms, N);
	ch_state_free(&s);
}
END_TEST

START_TEST(test_password_change)
{
	struct ch_state s;

	small_world(&s);
	ck_assert_int_eq(apply_named(&s, CH_REC_PASSWORD_CHANGED, "bob", "$y$new-bob"), 0);
	ck_assert_str_eq(ch_state_user(&s, "bob")->hash, "$y$new-bob");
	ck_assert_str_eq(ch_state_user(&s, "alice")->hash, "$y$alice");
	ck_assert_str_eq(ch_state_user(&s, "carol")->hash, "$y$carol");
	/* Again, to a longer and then a shorter hash. */
	ck_assert_int_eq(apply_named(&s, CH_REC_PASSWORD_CHANGED, "bob",
				     "$y$j9T$a-much-longer-hash-than-before"), 0);
	ck_assert_str_eq(ch_state_user(&s, "bob")->hash, "$y$j9T$a-much-longer-hash-than-before");
	ck_assert_int_eq(apply_named(&s, CH_REC_PASSWORD_CHANGED, "bob", "x"), 0);
	ck_assert_str_eq(ch_state_user(&s, "bob")->hash, "x");
	/* Unknown user: refused, nothing changes. */
	ck_assert_int_eq(apply_named(&s, CH_REC_PASSWORD_CHANGED, "mallory", "h"), -EINVAL);
	ck_assert_ptr_null(ch_state_user(&s, "mallory"));
	ck_assert_uint_eq(s.n_users, 3);
	ch_state_free(&s);
}
END_TEST

START_TEST(test_unknown_type_ignored)
{
	struct ch_state s;
	uint8_t buf[8] = { 0 };

	small_world(&s);
	uint64_t records = s.records;
	struct ch_record rec = make_rec(CH_REC_EPOCH_BUMPED, 0, 0, 0, 0, buf, 4);
	ck_assert_int_eq(ch_state_apply(&s, &rec), 0);
	rec = make_rec(999, 0, 0, 0, 0, buf, 0);
	ck_assert_int_eq(ch_state_apply(&s, &rec), 0);
	ck_assert_uint_eq(s.records, records + 2);
	ck_assert_uint_eq(s.n_users, 3);
	ck_assert_uint_eq(s.n_rooms, 1);
	ch_state_free(&s);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Messages                                                               */

START_TEST(test_message_seq_rules)
{
	struct ch_state s;

	small_world(&s);
	struct ch_room *g = ch_state_room(&s, "general");
	uint64_t records = s.records;
	/* Seq must start at 1. */
	ck_assert_int_eq(apply_msg(&s, 1, 1, 0, 1000), -EINVAL);
	ck_assert_int_eq(apply_msg(&s, 1, 1, 2, 1000), -EINVAL);
	ck_assert_uint_eq(g->last_seq, 0);
	ck_assert_int_eq(apply_msg(&s, 1, 1, 1, 1000), 0);
	ck_assert_uint_eq(g->last_seq, 1);
	ck_assert_uint_eq(g->pos[0], 1000);
	ck_assert_uint_eq(g->last_active_ms, BASE_TS + 1000);
	/* A repeat and a gap are refused and change nothing. */
	ck_assert_int_eq(apply_msg(&s, 1, 2, 1, 2000), -EINVAL);
	ck_assert_int_eq(apply_msg(&s, 1, 2, 3, 2000), -EINVAL);
	ck_assert_int_eq(apply_msg(&s, 1, 2, UINT64_MAX, 2000), -EINVAL);
	ck_assert_uint_eq(g->last_seq, 1);
	ck_assert_uint_eq(g->pos[0], 1000);
	ck_assert_uint_eq(g->last_active_ms, BASE_TS + 1000);
	ck_assert_int_eq(apply_msg(&s, 1, 2, 2, 2000), 0);
	ck_assert_uint_eq(g->last_seq, 2);
	ck_assert_uint_eq(g->pos[1], 2000);
	/* Unknown room. */
	ck_assert_int_eq(apply_msg(&s, 2, 1, 1, 3000), -EINVAL);
	ck_assert_int_eq(apply_msg(&s, 0, 1, 1, 3000), -EINVAL);
	ck_assert_uint_eq(s.records, records + 2);
	ch_state_free(&s);
}
END_TEST

START_TEST(test_message_seq_per_room)
{
	struct ch_state s;
	static const uint32_t ids[] = { 3 };

	small_world(&s);
	ck_assert_int_eq(apply_room(&s, "second", 1, ids), 0);
	/* Interleaved rooms: each has its own seq. */
	for (uint64_t i = 1; i <= 10; i++) {
		ck_assert_int_eq(apply_msg(&s, 1, 1, i, i * 2 * POS_STEP), 0);
		ck_assert_int_eq(apply_msg(&s, 2, 3, i, (i * 2 + 1) * POS_STEP), 0);
	}
	struct ch_room *a = ch_state_room_by_id(&s, 1), *b = ch_state_room_by_id(&s, 2);
	ck_assert_uint_eq(a->last_seq, 10);
	ck_assert_uint_eq(b->last_seq, 10);
	for (uint64_t i = 1; i <= 10; i++) {
		ck_assert_uint_eq(a->pos[i - 1], i * 2 * POS_STEP);
		ck_assert_uint_eq(b->pos[i - 1], (i * 2 + 1) * POS_STEP);
	}
	ch_state_free(&s);
}
END_TEST

/* The position index grows past 64, 128, ... entries; every pos stays. */
START_TEST(test_message_pos_growth)
{
	struct ch_state s;
	enum { N = 5000 };

	small_world(&s);
	struct ch_room *g = ch_state_room(&s, "general");
	for (uint64_t seq = 1; seq <= N; seq++) {
		ck_assert_int_eq(apply_msg(&s, 1, 1 + (uint32_t)(seq % 2), seq,
					   seq * POS_STEP + 8 * (seq % 3)), 0);
		ck_assert_uint_ge(g->cap_pos, g->last_seq);
	}
	ck_assert_uint_eq(g->last_seq, N);
	for (uint64_t seq = 1; seq <= N; seq++)
		ck_assert_uint_eq(g->pos[seq - 1], seq * POS_STEP + 8 * (seq % 3));
	ch_state_free(&s);
}
END_TEST

START_TEST(test_message_bad_payload_refused)
{
	struct ch_state s;
	uint8_t buf[PAYLOAD_CAP];
	struct ch_payload_writer w;

	small_world(&s);
	/* Content missing. */
	ch_payload_writer_init(&w, buf, sizeof(buf));
	ch_payload_put_str(&w, "general");
	ch_payload_put_str(&w, "alice");
	ch_payload_put_str(&w, "id");
	size_t len = finish(&w);
	struct ch_record rec = make_rec(CH_REC_MESSAGE, 1, 1, 1, 0, buf, len);
	ck_assert_int_eq(ch_state_apply(&s, &rec), -EINVAL);
	ck_assert_uint_eq(ch_state_room(&s, "general")->last_seq, 0);
	ck_assert_ptr_null(ch_state_dedupe_find(&s, 1, "id"));
	ch_state_free(&s);
}
END_TEST

START_TEST(test_message_decode_roundtrip)
{
	uint8_t buf[PAYLOAD_CAP];
	static const char content[] = "h\0llo \xe2\x82\xac \"quoted\"\n";
	struct ch_message m;

	size_t len = message_payload(buf, sizeof(buf), "general", "alice", "cid-1", 5,
				     content, sizeof(content) - 1);
	struct ch_record rec = make_rec(CH_REC_MESSAGE, 1, 1, 1, 0, buf, len);
	ck_assert_int_eq(ch_message_decode(&rec, &m), 0);
	ck_assert_uint_eq(m.room_len, 7);
	ck_assert_int_eq(memcmp(m.room, "general", 7), 0);
	ck_assert_uint_eq(m.from_len, 5);
	ck_assert_int_eq(memcmp(m.from, "alice", 5), 0);
	ck_assert_uint_eq(m.id_len, 5);
	ck_assert_int_eq(memcmp(m.id, "cid-1", 5), 0);
	ck_assert_uint_eq(m.content_len, sizeof(content) - 1);
	ck_assert_int_eq(memcmp(m.content, content, sizeof(content) - 1), 0);
	/* Pointers into the payload, no copy. */
	ck_assert_ptr_eq((const uint8_t *)m.room, buf + 4);

	/* Empty client id and empty content. */
	len = message_payload(buf, sizeof(buf), "r", "u", "", 0, "", 0);
	rec = make_rec(CH_REC_MESSAGE, 1, 1, 1, 0, buf, len);
	ck_assert_int_eq(ch_message_decode(&rec, &m), 0);
	ck_assert_uint_eq(m.id_len, 0);
	ck_assert_uint_eq(m.content_len, 0);
	ck_assert_ptr_nonnull(m.id);
	ck_assert_ptr_nonnull(m.content);

	/* Every truncation fails; so do trailing bytes. */
	len = message_payload(buf, sizeof(buf), "general", "alice", "cid-1", 5,
			      content, sizeof(content) - 1);
	for (size_t cut = 0; cut < len; cut++) {
		rec = make_rec(CH_REC_MESSAGE, 1, 1, 1, 0, buf, cut);
		ck_assert_int_eq(ch_message_decode(&rec, &m), -EINVAL);
	}
	buf[len] = 0;
	rec = make_rec(CH_REC_MESSAGE, 1, 1, 1, 0, buf, len + 1);
	ck_assert_int_eq(ch_message_decode(&rec, &m), -EINVAL);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Dedupe window                                                          */

START_TEST(test_dedupe_found)
{
	struct ch_state s;

	small_world(&s);
	ck_assert_int_eq(apply_msg_id(&s, 1, 1, 1, 4096, "x"), 0);
	ck_assert_int_eq(apply_msg_id(&s, 1, 2, 2, 8192, "y"), 0);
	ck_assert_int_eq(apply_msg(&s, 1, 1, 3, 9000), 0);	/* no id */

	const struct ch_dedupe_entry *d = ch_state_dedupe_find(&s, 1, "x");
	ck_assert_ptr_nonnull(d);
	ck_assert_uint_eq(d->user, 1);
	ck_assert_uint_eq(d->room, 1);
	ck_assert_uint_eq(d->seq, 1);
	ck_assert_uint_eq(d->ts, BASE_TS + 4096);
	ck_assert_str_eq(d->id, "x");
	/* (user, id) pairs: another user's "x" is not a retry of this one. */
	ck_assert_ptr_null(ch_state_dedupe_find(&s, 2, "x"));
	ck_assert_ptr_null(ch_state_dedupe_find(&s, 1, "y"));
	d = ch_state_dedupe_find(&s, 2, "y");
	ck_assert_ptr_nonnull(d);
	ck_assert_uint_eq(d->seq, 2);
	ck_assert_uint_eq(d->ts, BASE_TS + 8192);
	/* Prefixes and extensions of an id are other ids; an empty id is
	 * never remembered. */
	ck_assert_ptr_null(ch_state_dedupe_find(&s, 1, "xx"));
	ck_assert_ptr_null(ch_state_dedupe_find(&s, 1, ""));
	ck_assert_ptr_null(ch_state_dedupe_find(&s, 3, "x"));
	ch_state_free(&s);
}
END_TEST

START_TEST(test_dedupe_id_lengths)
{
	struct ch_state s;
	char max_id[CH_CLIENT_ID_MAX + 1];
	char long_id[CH_CLIENT_ID_MAX + 2];

	small_world(&s);
	memset(max_id, 'm', CH_CLIENT_ID_MAX);
	max_id[CH_CLIENT_ID_MAX] = '\0';
	memset(long_id, 'l', CH_CLIENT_ID_MAX + 1);
	long_id[CH_CLIENT_ID_MAX + 1] = '\0';

	ck_assert_int_eq(apply_msg_id(&s, 1, 1, 1, 0, max_id), 0);
	/* An id over the limit: the message is stored, the id not kept. */
	ck_assert_int_eq(apply_msg_id(&s, 1, 1, 2, POS_STEP, long_id), 0);
	ck_assert_uint_eq(ch_state_room(&s, "general")->last_seq, 2);

	const struct ch_dedupe_entry *d = ch_state_dedupe_find(&s, 1, max_id);
	ck_assert_ptr_nonnull(d);
	ck_assert_uint_eq(d->seq, 1);
	ck_assert_str_eq(d->id, max_id);
	ck_assert_ptr_null(ch_state_dedupe_find(&s, 1, long_id));
	/* The over-long id took no slot: the next id lands in slot 1. */
	ck_assert_uint_eq(s.dedupe_next, 1);
	ch_state_free(&s);
}
END_TEST

static void dedupe_id(char *out, size_t cap, uint64_t k)
{
	snprintf(out, cap, "msg-%" PRIu64 "-%" PRIx64, k, k * 2654435761u);
}

/* Author of the k-th message: a few users, so (user, id) pairs differ. */
static uint32_t dedupe_author(uint64_t k)
{
	return 1 + (uint32_t)(k % 3);
}

/* Every one of the last CH_DEDUPE_WINDOW ids (up to total) is found with
 * its seq and ts; the ones before are gone. Plain comparisons inside the
 * loops (a Check assertion per id would dominate the run time); the first
 * mismatch is reported. */
static void check_window(const struct ch_state *s, uint64_t total)
{
	char id[64];
	uint64_t oldest = total > CH_DEDUPE_WINDOW ? total - CH_DEDUPE_WINDOW + 1 : 1;

	for (uint64_t k = oldest; k <= total; k++) {
		dedupe_id(id, sizeof(id), k);
		const struct ch_dedupe_entry *d = ch_state_dedupe_find(s, dedupe_author(k), id);
		if (d == NULL || d->seq != k || d->ts != BASE_TS + k * POS_STEP ||
		    d->user != dedupe_author(k) || strcmp(d->id, id) != 0)
			ck_abort_msg("id %s (message %" PRIu64 " of %" PRIu64 "): %s", id, k,
				     total, d ? "wrong entry" : "not found");
		/* Another user's pair is not this one. */
		if (ch_state_dedupe_find(s, dedupe_author(k + 1), id) != NULL)
			ck_abort_msg("id %s found for the wrong user", id);
	}
	/* A sample of the forgotten ones, the newest of them included. */
	for (uint64_t k = oldest - 1; k >= 1; k = k > 997 ? k - 997 : 0) {
		dedupe_id(id, sizeof(id), k);
		if (ch_state_dedupe_find(s, dedupe_author(k), id) != NULL)
			ck_abort_msg("id %s (message %" PRIu64 " of %" PRIu64 ") still found",
				     id, k, total);
	}
}

/* Wrap the FIFO three times: every eviction goes through dedupe_unindex,
 * whose re-insertion of the rest of the probe run must keep every newer
 * entry reachable. */
START_TEST(test_dedupe_window_wraps)
{
	struct ch_state s;
	char id[64];
	const uint64_t total = 3ull * CH_DEDUPE_WINDOW + 12345;
	const uint64_t checkpoints[] = {
		CH_DEDUPE_WINDOW, CH_DEDUPE_WINDOW + 1, 2ull * CH_DEDUPE_WINDOW + 777, total,
	};
	size_t next_check = 0;

	small_world(&s);
	for (uint64_t k = 1; k <= total; k++) {
		dedupe_id(id, sizeof(id), k);
		if (apply_msg_id(&s, 1, dedupe_author(k), k, k * POS_STEP, id) != 0)
			ck_abort_msg("message %" PRIu64 " refused", k);
		if (next_check < sizeof(checkpoints) / sizeof(checkpoints[0]) &&
		    k == checkpoints[next_check]) {
			check_window(&s, k);
			next_check++;
		}
	}
	ck_assert_uint_eq(next_check, sizeof(checkpoints) / sizeof(checkpoints[0]));
	/* The index holds exactly one slot per remembered entry. */
	uint32_t used = 0;
	for (uint32_t i = 0; i < 2u * CH_DEDUPE_WINDOW; i++)
		used += s.dedupe_index[i] != 0;
	ck_assert_uint_eq(used, CH_DEDUPE_WINDOW);
	ch_state_free(&s);
}
END_TEST

/* The same id reused by one user after it fell out of the window is
 * remembered again, with the new seq. */
START_TEST(test_dedupe_reuse_after_eviction)
{
	struct ch_state s;
	char id[64];
	uint64_t seq = 0;

	small_world(&s);
	seq++;
	ck_assert_int_eq(apply_msg_id(&s, 1, 1, seq, 0, "again"), 0);
	for (uint32_t k = 0; k < CH_DEDUPE_WINDOW; k++) {
		snprintf(id, sizeof(id), "filler-%u", k);
		seq++;
		if (apply_msg_id(&s, 1, 2, seq, seq * POS_STEP, id) != 0)
			ck_abort_msg("message %" PRIu64 " refused", seq);
	}
	ck_assert_ptr_null(ch_state_dedupe_find(&s, 1, "again"));
	ck_assert_ptr_nonnull(ch_state_dedupe_find(&s, 2, "filler-0"));
	seq++;
	ck_assert_int_eq(apply_msg_id(&s, 1, 1, seq, seq * POS_STEP, "again"), 0);
	const struct ch_dedupe_entry *d = ch_state_dedupe_find(&s, 1, "again");
	ck_assert_ptr_nonnull(d);
	ck_assert_uint_eq(d->seq, seq);
	/* That pushed out filler-0 and nothing else. */
	ck_assert_ptr_null(ch_state_dedupe_find(&s, 2, "filler-0"));
	for (uint32_t k = 1; k < CH_DEDUPE_WINDOW; k++) {
		snprintf(id, sizeof(id), "filler-%u", k);
		if (ch_state_dedupe_find(&s, 2, id) == NULL)
			ck_abort_msg("%s lost", id);
	}
	ch_state_free(&s);
}
END_TEST

/*
 * BUG (journal/state.c, dedupe_add): an entry with user 0 counts as empty
 * ("if (d->user) dedupe_unindex(...)"), but ch_state_apply accepts a
 * CH_REC_MESSAGE whose author is 0 (no check that the author is a known
 * user) and remembers its client id under user 0. When the FIFO comes
 * round to that entry it is overwritten without being removed from the
 * index, so the index keeps a stale slot for every such message: after
 * 2 x CH_DEDUPE_WINDOW of them the index is full and the next dedupe_add
 * (or a lookup) loops forever, stopping the journal, and recovery of the
 * same log hangs the same way. Expected: refuse a message whose author is
 * not a user (-EINVAL), or mark empty entries apart from user 0; either
 * way the index never holds more than CH_DEDUPE_WINDOW slots. This test
 * stops at one wrap, so it fails instead of hanging.
 */
START_TEST(test_dedupe_author_zero_BUG)
{
	struct ch_state s;
	char id[64];
	uint64_t seq = 0;

	small_world(&s);
	for (uint32_t k = 0; k < CH_DEDUPE_WINDOW + 100; k++) {
		snprintf(id, sizeof(id), "sys-%u", k);
		if (apply_msg_id(&s, 1, 0, seq + 1, (seq + 1) * POS_STEP, id) == 0)
			seq++;
	}
	uint32_t used = 0;
	for (uint32_t i = 0; i < 2u * CH_DEDUPE_WINDOW; i++)
		used += s.dedupe_index[i] != 0;
	ck_assert_msg(used <= CH_DEDUPE_WINDOW, "dedupe index holds %u slots for a window of %u",
		      used, CH_DEDUPE_WINDOW);
	ch_state_free(&s);
}
END_TEST

static Suite *state_suite(void)
{
	Suite *s = suite_create("state");
	TCase *users = tcase_create("users_rooms");
	TCase *msgs = tcase_create("messages");
	TCase *dedupe = tcase_create("dedupe");
	TCase *bugs = tcase_create("bugs");

	tcase_set_timeout(users, TEST_TIMEOUT_S);
	tcase_add_test(users, test_users_in_order);
	tcase_add_test(users, test_user_created_ms);
	tcase_add_test(users, test_user_duplicate_refused);
	tcase_add_test(users, test_user_bad_payload_refused);
	tcase_add_test(users, test_rooms_in_order);
	tcase_add_test(users, test_room_duplicate_refused);
	tcase_add_test(users, test_room_duplicate_member_listed_once);
	tcase_add_test(users, test_room_unknown_member_refused);
	tcase_add_test(users, test_room_refused_changes_nothing);
	tcase_add_test(users, test_participants_refused_changes_nothing);
	tcase_add_test(users, test_participants_added);
	tcase_add_test(users, test_many_members);
	tcase_add_test(users, test_user_in_many_rooms);
	tcase_add_test(users, test_name_index_growth);
	tcase_add_test(users, test_room_index_growth_alone);
	tcase_add_test(users, test_password_change);
	tcase_add_test(users, test_unknown_type_ignored);
	suite_add_tcase(s, users);

	tcase_set_timeout(msgs, TEST_TIMEOUT_S);
	tcase_add_test(msgs, test_message_seq_rules);
	tcase_add_test(msgs, test_message_seq_per_room);
	tcase_add_test(msgs, test_message_pos_growth);
	tcase_add_test(msgs, test_message_bad_payload_refused);
	tcase_add_test(msgs, test_message_decode_roundtrip);
	suite_add_tcase(s, msgs);

	tcase_set_timeout(dedupe, TEST_TIMEOUT_S);
	tcase_add_test(dedupe, test_dedupe_found);
	tcase_add_test(dedupe, test_dedupe_id_lengths);
	tcase_add_test(dedupe, test_dedupe_window_wraps);
	tcase_add_test(dedupe, test_dedupe_reuse_after_eviction);
	suite_add_tcase(s, dedupe);

	tcase_set_timeout(bugs, TEST_TIMEOUT_S);
	tcase_add_test(bugs, test_dedupe_author_zero_BUG);
	suite_add_tcase(s, bugs);

	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(state_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
