/*
 * Message frames: see frame.h.
 */
#include "journal/frame.h"

void ch_text_frame_header(struct ch_buf *out, size_t len)
{
	uint8_t hdr[10];
	size_t hl;

	hdr[0] = 0x81;	/* FIN, text */
	if (len < 126) {
		hdr[1] = (uint8_t)len;
		hl = 2;
	} else if (len <= 0xffff) {
		hdr[1] = 126;
		hdr[2] = (uint8_t)(len >> 8);
		hdr[3] = (uint8_t)len;
		hl = 4;
	} else {
		hdr[1] = 127;
		for (int i = 0; i < 8; i++)
			hdr[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
		hl = 10;
	}
	ch_buf_append(out, hdr, hl);
}

void ch_msg_frame(struct ch_buf *out, const char *room, size_t room_len, uint64_t seq,
		  const char *from, size_t from_len, const char *content, size_t content_len,
		  uint64_t ts, const char *id, size_t id_len)
{
	struct ch_buf json;

	ch_buf_init(&json);
	ch_buf_puts(&json, "{\"type\":\"msg\",\"room\":");
	ch_json_str(&json, room, room_len);
	ch_buf_puts(&json, ",\"seq\":");
	ch_buf_u64(&json, seq);
	ch_buf_puts(&json, ",\"from\":");
	ch_json_str(&json, from, from_len);
	ch_buf_puts(&json, ",\"content\":");
	ch_json_str(&json, content, content_len);
	ch_buf_puts(&json, ",\"ts\":");
	ch_buf_u64(&json, ts);
	if (id_len) {
		ch_buf_puts(&json, ",\"id\":");
		ch_json_str(&json, id, id_len);
	}
	ch_buf_puts(&json, "}");
	if (json.failed)
		out->failed = 1;
	else {
		ch_text_frame_header(out, json.len);
		ch_buf_append(out, json.p, json.len);
	}
	ch_buf_free(&json);
}
