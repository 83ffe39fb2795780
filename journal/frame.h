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

/* Append the frame to out (header, then JSON). */
void ch_msg_frame(struct ch_buf *out, const char *room, size_t room_len, uint64_t seq,
		  const char *from, size_t from_len, const char *content, size_t content_len,
		  uint64_t ts, const char *id, size_t id_len);

/* Append a WebSocket text frame header for a payload of len bytes. */
void ch_text_frame_header(struct ch_buf *out, size_t len);

#endif
