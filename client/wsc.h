/*
 * The client side of WebSocket (RFC 6455) with no I/O, shared by chatcli
 * and chatbench: building the opening handshake and checking the server's
 * answer, writing masked client frames, and an incremental parser for the
 * server's (unmasked) frames. The caller owns the socket; client/conn.h is
 * a blocking connection built on this.
 *
 * The frame parser and the frame writers are worker/ws.h's, so the two
 * sides cannot drift apart: struct ch_wsc_parser is a struct ch_ws_parser
 * reading server frames, and this module only gives it the client's event
 * shape and const input. The constants below are worker/ws.h's under the
 * client's names.
 *
 * Invariants: the parser's events depend only on the bytes fed, never on
 * how they were split; it never reads past in[0..len) and never writes to
 * it; a server frame that is masked, uses RSV bits or an unknown opcode, a
 * control frame that is fragmented or over 125 bytes, a continuation with
 * no message open (or a data frame while one is open), text that is not
 * UTF-8 and a message over max_message are errors, after which every call
 * repeats the error. No extension and no subprotocol is ever asked for.
 */
#ifndef CH_WSC_H
#define CH_WSC_H

#include <stddef.h>
#include <stdint.h>

#include "worker/ws.h"

/* Opcodes (RFC 6455 5.2). */
#define CH_WSC_OP_CONT		CH_WS_OP_CONT
#define CH_WSC_OP_TEXT		CH_WS_OP_TEXT
#define CH_WSC_OP_BINARY	CH_WS_OP_BINARY
#define CH_WSC_OP_CLOSE		CH_WS_OP_CLOSE
#define CH_WSC_OP_PING		CH_WS_OP_PING
#define CH_WSC_OP_PONG		CH_WS_OP_PONG

#define CH_WSC_CLOSE_NORMAL	CH_WS_CLOSE_NORMAL
#define CH_WSC_CLOSE_NO_STATUS	CH_WS_CLOSE_NO_STATUS	/* the close frame had no code */
#define CH_WSC_MAX_CONTROL	CH_WS_MAX_CONTROL_PAYLOAD	/* largest control payload (5.5) */

/* Sec-WebSocket-Key: base64 of 16 random bytes. */
#define CH_WSC_KEY_LEN 24

/*
 * Builds the upgrade request for path (may include ?query) on host
 * ("host:port"); token may be NULL, else sent as "Authorization: Bearer".
 * Writes a fresh random Sec-WebSocket-Key (NUL-terminated) into key.
 * Returns bytes written (out is NUL-terminated too, not counted) or -1 if
 * cap is too small (or host, path or token holds a CR or LF).
 */
int ch_wsc_request(char *out, size_t cap, const char *host, const char *path,
		   const char *token, char key[CH_WSC_KEY_LEN + 1]);

/*
 * Checks the server's answer in buf[0..len): >0 = length of the response
 * head consumed (status 101, Upgrade: websocket, Connection: upgrade,
 * Sec-WebSocket-Accept matches key); 0 = need more bytes (the head is not
 * complete yet); -1 = refused (*status gets the HTTP status, 0 if the head
 * is unparsable). On success *status is 101. Bytes after the head are
 * already WebSocket frames.
 */
int ch_wsc_response(const char *buf, size_t len, const char *key, int *status);

/* Largest client frame header: 2 + 8 (64-bit length) + 4 (mask). */
#define CH_WSC_MAX_HEADER CH_WS_MAX_CLIENT_HEADER

/*
 * One masked client frame (header + masked payload) with a fresh random
 * mask, the shortest length form, FIN set when fin is non-zero. Returns
 * bytes written or 0 if cap < len + CH_WSC_MAX_HEADER. out must not
 * overlap payload.
 */
size_t ch_wsc_frame(uint8_t *out, size_t cap, int opcode, int fin,
		    const void *payload, size_t len);

/*
 * A masked close frame carrying code (and no reason); 0 if cap is too
 * small (it needs 2 + CH_WSC_MAX_HEADER). Like ch_ws_close_frame, a code
 * that must not be sent (0, 1005, 1006, 1015) gives an empty close.
 */
size_t ch_wsc_close_frame(uint8_t *out, size_t cap, uint16_t code);

/* Fills buf with n random bytes (getrandom, with a fallback). */
void ch_wsc_random(void *buf, size_t n);

/*
 * Incremental parser for server frames (unmasked; a masked server frame is
 * an error), reassembling fragments, validating UTF-8 of text
 * incrementally across fragments, control frames allowed between
 * fragments.
 */
struct ch_wsc_event {
	int type;		/* CH_WSC_NEED_MORE .. CH_WSC_ERROR */
	int opcode;		/* MESSAGE: CH_WSC_OP_TEXT or CH_WSC_OP_BINARY */
	/*
	 * MESSAGE: the message; PING, PONG: the payload; CLOSE: the reason.
	 * Never NULL when type is not NEED_MORE/ERROR, even when len is 0.
	 */
	const uint8_t *data;
	size_t len;
	uint16_t close_code;	/* CLOSE: the code, CH_WSC_CLOSE_NO_STATUS if none;
				   ERROR: the code to close with (1002, 1007, 1009) */
	const char *error;	/* ERROR: static text */
};

enum { CH_WSC_NEED_MORE, CH_WSC_MESSAGE, CH_WSC_PING, CH_WSC_PONG, CH_WSC_CLOSE, CH_WSC_ERROR };

/* All fields internal; public so callers can embed the parser. */
struct ch_wsc_parser {
	struct ch_ws_parser ws;	/* started with CH_WS_PEER_SERVER */
};

/* A parser refusing (1009) any message over max_message bytes. */
void ch_wsc_parser_init(struct ch_wsc_parser *p, size_t max_message);
void ch_wsc_parser_free(struct ch_wsc_parser *p);

/*
 * Consumes bytes from in; returns the event type; *used = bytes consumed;
 * ev->data stays valid until the next call (and, when it points into in,
 * while in lives). Call again with the rest while it returns something
 * other than NEED_MORE (NEED_MORE means all of in was consumed). The
 * common case (one unfragmented frame fully in `in`) does not copy: data
 * points into in. After CLOSE, later bytes are consumed and ignored; after
 * ERROR every call returns ERROR and consumes nothing.
 */
int ch_wsc_parse(struct ch_wsc_parser *p, const uint8_t *in, size_t len,
		 size_t *used, struct ch_wsc_event *ev);

#endif
