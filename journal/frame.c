/*
 * Message frames: see frame.h.
 */
#include "journal/frame.h"

#include <string.h>

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

static const char msg_type[] = "\"type\":\"msg\",";

void ch_msg_json(struct ch_buf *out, int with_type, const char *room, size_t room_len,
		 uint64_t seq, const char *from, size_t from_len, const char *content,
		 size_t content_len, uint64_t ts, const char *id, size_t id_len)
{
	ch_buf_puts(out, "{");
	if (with_type)
		ch_buf_puts(out, msg_type);
	ch_buf_puts(out, "\"room\":");
	ch_json_str(out, room, room_len);
	ch_buf_puts(out, ",\"seq\":");
	ch_buf_u64(out, seq);
	ch_buf_puts(out, ",\"from\":");
	ch_json_str(out, from, from_len);
	ch_buf_puts(out, ",\"content\":");
	ch_json_str(out, content, content_len);
	ch_buf_puts(out, ",\"ts\":");
	ch_buf_u64(out, ts);
	if (id_len) {
		ch_buf_puts(out, ",\"id\":");
		ch_json_str(out, id, id_len);
	}
	ch_buf_puts(out, "}");
}

void ch_msg_frame(struct ch_buf *out, const char *room, size_t room_len, uint64_t seq,
		  const char *from, size_t from_len, const char *content, size_t content_len,
		  uint64_t ts, const char *id, size_t id_len)
{
	struct ch_buf json;

	ch_buf_init(&json);
	ch_msg_json(&json, 1, room, room_len, seq, from, from_len, content, content_len, ts, id,
		    id_len);
	if (json.failed)
		out->failed = 1;
	else {
		ch_text_frame_header(out, json.len);
		ch_buf_append(out, json.p, json.len);
	}
	ch_buf_free(&json);
}

int ch_msg_frame_history(struct ch_buf *out, const void *frame, size_t len)
{
	const uint8_t *f = frame;
	size_t hl, plen;

	if (len < 2 || f[0] != 0x81)
		return -1;
	if (f[1] < 126) {
		hl = 2;
		plen = f[1];
	} else {
		hl = f[1] == 126 ? 4 : 10;
		if (f[1] > 127 || len < hl)
			return -1;
		plen = 0;
		for (size_t i = 2; i < hl; i++)
			plen = plen << 8 | f[i];
	}
	if (plen != len - hl || plen < 1 + sizeof(msg_type) || f[hl] != '{' ||
	    memcmp(f + hl + 1, msg_type, sizeof(msg_type) - 1) != 0)
		return -1;
	ch_buf_puts(out, "{");
	ch_buf_append(out, f + hl + 1 + sizeof(msg_type) - 1, plen - 1 - (sizeof(msg_type) - 1));
	return 0;
}
