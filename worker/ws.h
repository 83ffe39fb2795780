/*
 * WebSocket (RFC 6455) with no I/O: the worker's loop feeds the bytes a
 * client sent into a struct ch_ws_parser and gets events back; the frame
 * writers below produce the bytes to send. Like http.h, the unit tests and
 * the fuzzer drive it directly.
 *
 * Three parts:
 *  - the opening handshake: checking an upgrade request's header values
 *    (plain pointers and lengths, so this header does not depend on
 *    worker/http.h) and computing Sec-WebSocket-Accept;
 *  - the frame parser, incremental over any split of the input. It is the
 *    only one in the tree: the server reads masked client frames with it,
 *    and client/wsc.c (chatcli, chatbench) wraps it to read unmasked server
 *    frames, so both sides enforce the same rules the same way;
 *  - frame writers: unmasked server frames, and masked client frames for the
 *    client library, the tests and the load generator.
 *
 * No extension and no subprotocol is ever negotiated: the 101 answer names
 * neither, so every RSV bit must be 0 and Sec-WebSocket-Extensions /
 * Sec-WebSocket-Protocol in the request are ignored (RFC 6455 4.2.2).
 */
#ifndef CH_WS_H
#define CH_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/utf8.h"

/* ------------------------------------------------------------------------
 * Protocol constants (RFC 6455 5.2, 7.4.1, 11.7)
 * ---------------------------------------------------------------------- */

#define CH_WS_OP_CONT	0x0
#define CH_WS_OP_TEXT	0x1
#define CH_WS_OP_BINARY	0x2
#define CH_WS_OP_CLOSE	0x8
#define CH_WS_OP_PING	0x9
#define CH_WS_OP_PONG	0xA
#define CH_WS_FIN	0x80	/* first header byte: last frame of a message */
#define CH_WS_RSV_MASK	0x70	/* first header byte: RSV1..RSV3 */
#define CH_WS_OPCODE_BITS 0x0F	/* first header byte: the opcode */

#define CH_WS_CLOSE_NORMAL	1000
#define CH_WS_CLOSE_GOING_AWAY	1001	/* the server is stopping */
#define CH_WS_CLOSE_PROTOCOL	1002	/* the peer broke the framing rules */
#define CH_WS_CLOSE_UNSUPPORTED	1003
#define CH_WS_CLOSE_NO_STATUS	1005	/* never sent: "the close had no code" */
#define CH_WS_CLOSE_ABNORMAL	1006	/* never sent: "no close frame at all" */
#define CH_WS_CLOSE_BAD_DATA	1007	/* a text message that is not UTF-8 */
#define CH_WS_CLOSE_POLICY	1008	/* no valid token, or it expired */
#define CH_WS_CLOSE_TOO_BIG	1009	/* a message over the size limit */
#define CH_WS_CLOSE_INTERNAL	1011	/* the server failed (out of memory) */
#define CH_WS_CLOSE_TRY_AGAIN	1013	/* the client fell behind */
#define CH_WS_CLOSE_TLS		1015	/* never sent: "the TLS handshake failed" */

#define CH_WS_MAX_CONTROL_PAYLOAD 125	/* RFC 6455 5.5 */
#define CH_WS_MAX_CLOSE_REASON (CH_WS_MAX_CONTROL_PAYLOAD - 2)
#define CH_WS_MAX_CLIENT_HEADER 14	/* 2 + 8 (64-bit length) + 4 (mask) */
#define CH_WS_MAX_SERVER_HEADER 10	/* 2 + 8; server frames carry no mask */
#define CH_WS_MAX_CONTROL_FRAME (2 + CH_WS_MAX_CONTROL_PAYLOAD)
#define CH_WS_MASK_LEN 4
#define CH_WS_CLOSE_CODE_LEN 2	/* a close payload starts with a 16-bit code */

/* Default largest message, all fragments together ([limits] max_message_bytes). */
#define CH_WS_DEFAULT_MAX_MESSAGE (64 * 1024)
/* ch_ws_parser_init treats any larger max_message as this. */
#define CH_WS_MAX_MESSAGE_LIMIT ((size_t)1 << 30)

/* ------------------------------------------------------------------------
 * Opening handshake (RFC 6455 4.2)
 * ---------------------------------------------------------------------- */

#define CH_WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define CH_WS_ACCEPT_LEN 28	/* base64 of a 20-byte SHA-1 digest */
#define CH_WS_MAX_KEY 128	/* longest client key ch_ws_accept_key takes */

/* The extra header line a 426 answer must carry (RFC 6455 4.2.2, 4.4). */
#define CH_WS_VERSION_HEADER "Sec-WebSocket-Version: 13\r\n"

/*
 * out = base64(SHA-1(client_key + CH_WS_GUID)), NUL-terminated (so out has
 * CH_WS_ACCEPT_LEN + 1 bytes). The key is used exactly as given: pass the
 * header value already trimmed of spaces. Returns 0, or -1 when len is over
 * CH_WS_MAX_KEY.
 */
int ch_ws_accept_key(const char *client_key, size_t len, char out[CH_WS_ACCEPT_LEN + 1]);

/*
 * What ch_ws_check_upgrade needs from a request: each header's value (the
 * first line of that name, trimmed as worker/http.c trims), NULL when the
 * header is absent.
 */
struct ch_ws_upgrade {
	const char *method;	size_t method_len;
	int http_minor;			/* HTTP/1.<minor> */
	const char *upgrade;	size_t upgrade_len;
	const char *connection;	size_t connection_len;
	const char *version;	size_t version_len;	/* Sec-WebSocket-Version */
	const char *key;	size_t key_len;		/* Sec-WebSocket-Key */
};

/*
 * Check an opening handshake against RFC 6455 4.2.1. Returns 0 when it is
 * one, else the status to answer and *reason set to a short static text for
 * the body and the log:
 *  - 400 when the method is not GET, the version is not HTTP/1.1, Upgrade has
 *    no "websocket" token, Connection has no "upgrade" token (both lists are
 *    comma-separated and compared case-insensitively), Sec-WebSocket-Version
 *    is missing, or Sec-WebSocket-Key is not 22 base64 characters and "=="
 *    (the encoding of 16 bytes; the unused low bits of the last character
 *    are not checked, as common decoders ignore them);
 *  - 426 Upgrade Required when Sec-WebSocket-Version is present but not
 *    "13": the answer must then carry CH_WS_VERSION_HEADER so the client
 *    learns the version we speak (4.2.2 says "such as 426"; 4.4's example
 *    uses 400, but 426 is the status that means "use another protocol").
 */
int ch_ws_check_upgrade(const struct ch_ws_upgrade *u, const char **reason);

/*
 * Whether token is one of the comma-separated elements of the header value
 * v[0..n) (ASCII case-insensitive, spaces and tabs around elements ignored);
 * false when v is NULL. The client checks a 101's lists with it too.
 */
bool ch_ws_has_token(const char *v, size_t n, const char *token);

/* Longest head ch_ws_format_101 writes, with its NUL. */
#define CH_WS_MAX_101 160

/*
 * Write the whole 101 Switching Protocols head for client_key (Upgrade,
 * Connection and Sec-WebSocket-Accept, then the blank line) into out,
 * NUL-terminated. Returns its length without the NUL, or -1 when the key is
 * too long or outlen too small. Call it only after ch_ws_check_upgrade said 0.
 */
int ch_ws_format_101(char *out, size_t outlen, const char *client_key, size_t key_len);

/* ------------------------------------------------------------------------
 * Frame parser
 * ---------------------------------------------------------------------- */

enum ch_ws_event_type {
	CH_WS_EV_NONE,		/* all input consumed; feed more */
	CH_WS_EV_TEXT,		/* a whole text message, valid UTF-8 */
	CH_WS_EV_BINARY,	/* a whole binary message */
	CH_WS_EV_PING,		/* answer with a pong carrying data[0..len) */
	CH_WS_EV_PONG,
	CH_WS_EV_CLOSE,		/* the peer's close: code, reason = data[0..len) */
	CH_WS_EV_ERROR,		/* send a close with code, then close the socket */
};

struct ch_ws_event {
	enum ch_ws_event_type type;
	/*
	 * TEXT, BINARY: the message; PING, PONG: the payload; CLOSE: the
	 * reason (UTF-8, not NUL-terminated). Never NULL, even when len is 0.
	 * Valid until the next ch_ws_parse or ch_ws_parser_free on the parser,
	 * and, when it points into the caller's input, while that input lives.
	 */
	uint8_t *data;
	size_t len;
	/*
	 * CLOSE: the peer's code, CH_WS_CLOSE_NO_STATUS when its close frame
	 * had no payload. ERROR: the code to close the connection with.
	 */
	uint16_t code;
	const char *error;	/* ERROR: what was wrong (static text) */
};

/*
 * Whose frames a parser reads (RFC 6455 5.1): a client masks every frame it
 * sends and a server masks none, and each side must refuse the other form.
 */
enum ch_ws_peer {
	CH_WS_PEER_CLIENT,	/* the server's parser: frames must be masked */
	CH_WS_PEER_SERVER,	/* the client library's: frames must not be */
};

/*
 * One connection's receiving side. All fields are internal; the struct is
 * public only so it can be embedded in the connection. It holds no heap
 * memory while no message is partly received (see ch_ws_parse).
 */
struct ch_ws_parser {
	size_t max_message;	/* largest message, fragments summed */
	uint8_t state;		/* enum ch_ws_pstate in ws.c */
	uint8_t masked;		/* 1: frames must carry a mask; 0: must not */

	/* Header of the frame being read (copied: at most 14 bytes, 10 unmasked). */
	uint8_t hdr[CH_WS_MAX_CLIENT_HEADER];
	uint8_t hdr_len;	/* bytes of hdr filled */
	uint8_t hdr_need;	/* bytes hdr must hold for the next check */

	/* The frame whose payload is being read. */
	uint8_t opcode;
	uint8_t fin;
	uint8_t mask[CH_WS_MASK_LEN];
	uint64_t frame_len;
	uint64_t frame_done;	/* payload bytes read (and unmasked) so far */

	/* The data message being received (opcode 0: none). */
	uint8_t msg_opcode;
	size_t msg_len;		/* bytes in buf */
	struct ch_utf8 utf8;	/* text messages: verdict on buf so far */
	uint8_t *buf;		/* malloc'd; NULL while no message is split */
	size_t cap;

	/* A control frame split across reads. */
	uint8_t ctrl[CH_WS_MAX_CONTROL_PAYLOAD];

	/* Sticky error, repeated by every later call. */
	uint16_t err_code;
	const char *err_text;
};

/*
 * Start a parser of frames sent by peer that refuses (1009) any message
 * over max_message bytes, fragments summed. Allocates nothing.
 */
void ch_ws_parser_init_peer(struct ch_ws_parser *p, size_t max_message, enum ch_ws_peer peer);

/* The server's parser: ch_ws_parser_init_peer(p, max_message, CH_WS_PEER_CLIENT). */
void ch_ws_parser_init(struct ch_ws_parser *p, size_t max_message);

/* Release the parser's memory; init it again before any further use. */
void ch_ws_parser_free(struct ch_ws_parser *p);

/* Heap bytes the parser holds now (for per-connection memory accounting). */
size_t ch_ws_parser_mem(const struct ch_ws_parser *p);

/*
 * Feed in[0..len) and get the next event. Returns how many bytes were
 * consumed; call again with the rest until the event is CH_WS_EV_NONE
 * (then all of in was consumed and nothing is pending in it):
 *
 *	size_t off = 0;
 *	do {
 *		off += ch_ws_parse(p, in + off, len - off, &ev);
 *		... handle ev ...
 *	} while (ev.type != CH_WS_EV_NONE && ev.type != CH_WS_EV_ERROR &&
 *		 ev.type != CH_WS_EV_CLOSE);
 *
 * The events depend only on the bytes, never on how they were split.
 * A frame that is a whole message (or a control frame) and lies entirely
 * in in is delivered pointing into in, with no copy; masked frames are
 * unmasked in place for that, so the parser rewrites the bytes it consumes
 * (only when they are masked: a parser of server frames never writes to
 * in). Other payloads are unmasked (or copied) into the parser's buffer,
 * which grows with the bytes received, never past max_message, and is
 * freed by the call that returns CH_WS_EV_NONE once no message is partly
 * received.
 *
 * Rules enforced (RFC 6455 5.1-5.6, 7.4, 8.1), with the close code:
 *  - client frames must be masked and server frames must not be (as the
 *    parser was started); RSV bits must be 0; opcodes 3-7 and
 *    B-F are unknown; a control frame must have FIN and a 7-bit length of at
 *    most 125; a continuation needs an open fragmented message, and a text
 *    or binary frame needs none open; a 64-bit length must have its top bit
 *    clear: 1002.
 *  - A message whose length so far plus the frame's declared length is
 *    over max_message: 1009, decided from the header, before any payload.
 *  - Text must be UTF-8 across all its fragments, and must not end inside a
 *    character: 1007, as soon as the first bad byte arrives.
 *  - A close payload is empty, or a code (1000-1003, 1007-1014, 3000-4999)
 *    and a UTF-8 reason; a 1-byte payload or another code: 1002; a bad
 *    reason: 1007. 1012-1014 are accepted although RFC 6455 predates them:
 *    IANA registered them since, and a client echoes our own 1013.
 *  - A length not in the shortest form (126 for <126 bytes, 127 for <64 KiB)
 *    is accepted on data frames: 5.2 requires the shortest form of senders,
 *    but nothing makes receivers refuse it. A control frame's length must be
 *    in the 7-bit field, as it can never need more.
 * Control frames may come between the fragments of a message.
 *
 * After CH_WS_EV_CLOSE, later input is consumed and ignored (5.5.1: the
 * peer sends nothing after its close). After CH_WS_EV_ERROR, every call
 * returns the same error and consumes nothing. Running out of memory is an
 * ERROR with code 1011. The parser reads only in[0..len); in may be NULL
 * when len is 0.
 */
size_t ch_ws_parse(struct ch_ws_parser *p, uint8_t *in, size_t len, struct ch_ws_event *ev);

/*
 * ch_ws_parse for read-only input, on a parser of server frames (which
 * never writes to in); event data pointing into in must then be treated
 * as const. On a parser of masked frames it is an ERROR (1011).
 */
size_t ch_ws_parse_const(struct ch_ws_parser *p, const uint8_t *in, size_t len,
			 struct ch_ws_event *ev);

/* ------------------------------------------------------------------------
 * Frame writers
 * ---------------------------------------------------------------------- */

/*
 * XOR src[0..n) with the masking key into dst (which may equal src); offset
 * is the payload position of src[0], as the key repeats every 4 bytes of
 * the payload (RFC 6455 5.3).
 */
void ch_ws_mask(uint8_t *dst, const uint8_t *src, size_t n,
		const uint8_t key[CH_WS_MASK_LEN], uint64_t offset);

/*
 * The header of an unmasked server frame with FIN set and the shortest
 * length form; the payload follows it. Returns its length: 2, 4 or 10.
 */
size_t ch_ws_frame_header(uint8_t opcode, uint64_t payload_len,
			  uint8_t out[CH_WS_MAX_SERVER_HEADER]);

/*
 * A close frame's payload: code then reason, the reason cut to at most
 * CH_WS_MAX_CLOSE_REASON bytes, at a character boundary (it must be UTF-8).
 * A code that must not be sent (0, 1005, 1006, 1015) gives an empty payload,
 * so a peer's CH_WS_CLOSE_NO_STATUS can be echoed as is. Returns its length.
 */
size_t ch_ws_close_payload(uint16_t code, const char *reason, size_t reason_len,
			   uint8_t out[CH_WS_MAX_CONTROL_PAYLOAD]);

/* A whole server close frame with ch_ws_close_payload's payload. Returns the length. */
size_t ch_ws_close_frame(uint16_t code, const char *reason, size_t reason_len,
			 uint8_t out[CH_WS_MAX_CONTROL_FRAME]);

/* Whole ping / pong frames; 0 when len is over 125 (nothing written). */
size_t ch_ws_ping_frame(const void *payload, size_t len, uint8_t out[CH_WS_MAX_CONTROL_FRAME]);
size_t ch_ws_pong_frame(const void *payload, size_t len, uint8_t out[CH_WS_MAX_CONTROL_FRAME]);

/*
 * A whole masked client frame: first_byte is the frame's first header byte
 * (an opcode ORed with CH_WS_FIN for the last frame of a message; tests may
 * set RSV bits or unknown opcodes too), then the shortest length form, the
 * mask key and payload[0..len) masked. out needs len + CH_WS_MAX_CLIENT_HEADER
 * bytes and must not overlap payload. Returns the frame's length.
 */
size_t ch_ws_client_frame(uint8_t first_byte, const void *payload, size_t len,
			  const uint8_t mask_key[CH_WS_MASK_LEN], uint8_t *out);

#endif
