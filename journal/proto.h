/*
 * The bus protocol between the workers and the journal: what a worker asks
 * on its ingress ring and what the journal answers on that worker's reply
 * ring. Both directions are SPSC rings (shm/ring.h) whose record type is
 * the request type (ingress) or the status (replies).
 *
 * Every record's payload starts with the u64 request id the worker chose;
 * the rest is encoded with the payload codec of journal/record.h (u32, u64
 * and length-prefixed strings), fields in the order listed below.
 *
 * A request id is (worker incarnation << 32) | sequence, so a worker that
 * restarts drops replies meant for its predecessor.
 */
#ifndef CH_PROTO_H
#define CH_PROTO_H

#include <stdint.h>

enum ch_req_type {
	CH_REQ_NONE = 0,
	/* A worker (re)started. Payload: u32 worker index. No reply. */
	CH_REQ_HELLO = 1,
	/* str username, str password hash. Reply: OK | USER_EXISTS | LIMIT. */
	CH_REQ_REGISTER = 2,
	/* str username. Reply: OK with str hash | NO_SUCH_USER. */
	CH_REQ_GET_USER = 3,
	/* str username, str old hash, str new hash: a hash upgraded at
	 * login, stored only if the old one is still current. Reply: OK. */
	CH_REQ_SET_PASSWORD = 4,
	/* str user, str room, u32 n, n x str participant.
	 * Reply: OK | ROOM_EXISTS | UNKNOWN_USER (str name) | LIMIT. */
	CH_REQ_CREATE_ROOM = 5,
	/* str user. Reply: OK with str JSON body (the rooms array). */
	CH_REQ_LIST_ROOMS = 6,
	/* str user, str room, str client id ("" for none), str content.
	 * Reply: OK with u64 seq, u64 ts | NO_SUCH_ROOM | NOT_PARTICIPANT |
	 * UNAVAILABLE. Sent only once the record meets the ack setting. */
	CH_REQ_SEND = 7,
	/* str user, str room, u64 before (0 = none), u32 limit.
	 * Reply: OK with u32 n, n x u64 log position (newest first), u32
	 * ring (CH_HISTORY_NO_RING: none), u32 room id, u64 the lowest ring
	 * position history may trust, u64 the page's newest seq |
	 * NO_SUCH_ROOM | NOT_PARTICIPANT. The worker takes the page
	 * from the ring if it is all there, else reads the records. */
	CH_REQ_HISTORY = 8,
	/* str user, str room, u32 worker, u64 since (CH_SINCE_NONE: no
	 * replay), u32 most messages to replay. Sets the worker's bit on the
	 * room's ring. Reply: OK with u32 ring, u32 room id, u64 last seq,
	 * u64 first replayed seq, u32 n, n x u64 log position (oldest first) |
	 * NO_SUCH_ROOM | NOT_PARTICIPANT | UNAVAILABLE (no room ring free). */
	CH_REQ_JOIN = 9,
	/* str room, u32 worker: no member of the room is left on the worker,
	 * stop waking it for the room. Reply: OK. */
	CH_REQ_UNWATCH = 10,
	/* str user, str to, str client id, str content: a direct message.
	 * Creates room dm:A:B (common/auth.h) on first use, then stores the
	 * message as a send to it would, and tells every worker to join both
	 * users' connections to the room (CH_EV_AUTOJOIN). Reply: OK with
	 * str room, u64 seq, u64 ts | UNKNOWN_USER | UNAVAILABLE. */
	CH_REQ_DM = 11,
	/* u32 worker, str user, u32 event (enum ch_presence_event), u32
	 * value: one connection's presence (journal/presence.h). No reply
	 * (request id 0). */
	CH_REQ_PRESENCE = 12,
	/* No fields. Reply: OK with u32 n, n x (str user, u32 status): every
	 * user online. */
	CH_REQ_USERS = 13,
	/* str user, str room. Reply: OK with u32 n, n x (str user, u32
	 * status): the room's participants online | NO_SUCH_ROOM |
	 * NOT_PARTICIPANT. */
	CH_REQ_WHO = 14,
	/* str user. Reply: OK with u32 status, u64 since ms | UNKNOWN_USER. */
	CH_REQ_INFO = 15,
	/* str file id (worker/store.h's form): an operator removes an
	 * uploaded file. Stores CH_REC_FILE_REMOVED; the worker deletes the
	 * bytes once this is acked, so a removal is never lost, at worst
	 * replayed. Reply: OK | BAD_REQUEST. */
	CH_REQ_FILE_REMOVE = 16,
};

/*
 * Events: records the journal puts on a worker's reply ring unasked, with
 * request id 0 and one of these as the status.
 */
enum ch_bus_event {
	/* str room, u64 seq, u32 n, n x str user: join every connection of
	 * these users to the room, replaying from seq (a DM arrived). */
	CH_EV_AUTOJOIN = 0x100,
	/* str user, u32 status, u32 n, n x u32 room id: the user's status
	 * changed; tell the connections that joined one of these rooms. */
	CH_EV_PRESENCE = 0x101,
	/* No fields: the journal (re)started and knows no presence: report
	 * every connection again (CH_PRES_OPEN, and IDLE / SET as they are). */
	CH_EV_RESYNC = 0x102,
};

#define CH_SINCE_NONE UINT64_MAX
#define CH_HISTORY_NO_RING UINT32_MAX

enum ch_bus_status {
	CH_BUS_OK = 0,
	CH_BUS_USER_EXISTS = 1,		/* 409 user_exists */
	CH_BUS_NO_SUCH_USER = 2,	/* login: 401 invalid_credentials */
	CH_BUS_ROOM_EXISTS = 3,		/* 409 room_exists */
	CH_BUS_UNKNOWN_USER = 4,	/* 400 unknown_user */
	CH_BUS_NO_SUCH_ROOM = 5,	/* 404 no_such_room */
	CH_BUS_NOT_PARTICIPANT = 6,	/* 403 not_a_participant */
	CH_BUS_LIMIT = 7,		/* a configured limit: 403 limit_reached */
	CH_BUS_BAD_REQUEST = 8,		/* malformed request: 400 */
	CH_BUS_UNAVAILABLE = 9,		/* the journal cannot store: 503 */
	/* Replication (journal/repl.h): a write sent to a standby, which
	 * serves reads only: 503 read_only, the message names the primary. */
	CH_BUS_READ_ONLY = 10,
	/* ack = replica and the standby did not confirm the record within
	 * ack_timeout (none attached, or cut off): 503 replica_unavailable.
	 * The record is stored here; a retry with the same client id is
	 * answered once the standby has it. */
	CH_BUS_REPLICA_UNAVAILABLE = 11,
};

#endif
