/*
 * The "msg" frame of PROTOCOL.md, as the bytes a client receives: one
 * WebSocket text frame (unmasked, FIN set) holding
 *   {"type":"msg","room":R,"seq":n,"from":U,"content":C,"ts":ms,"id":I?}.
 * Built once per message by the journal for the room ring, and by a worker
 * for a replay from history, so both give the same bytes.
 */
#ifndef CH_FRAME_H
#define CH_FRAME_H

#include "common/buf.h"

#include <stddef.h>
#include <stdint.h>

/*
 * Append the message's JSON object to out: with_type 1 gives the frame's
 * payload, 0 an element of a history page (PROTOCOL.md's
 * GET /api/history/{room}), which is the same object without "type".
 */
void ch_msg_json(struct ch_buf *out, int with_type, const char *room, size_t room_len,
		 uint64_t seq, const char *from, size_t from_len, const char *content,
		 size_t content_len, uint64_t ts, const char *id, size_t id_len);

/* Append the frame to out (header, then JSON). */
void ch_msg_frame(struct ch_buf *out, const char *room, size_t room_len, uint64_t seq,
		  const char *from, size_t from_len, const char *content, size_t content_len,
		  uint64_t ts, const char *id, size_t id_len);

/*
 * Append the history element of a frame made by ch_msg_frame() (as the
 * room ring holds it) to out, without decoding it again. Returns -1 for
 * bytes that are not such a frame.
 */
int ch_msg_frame_history(struct ch_buf *out, const void *frame, size_t len);

/* Append a WebSocket text frame header for a payload of len bytes. */
void ch_text_frame_header(struct ch_buf *out, size_t len);

#endif
