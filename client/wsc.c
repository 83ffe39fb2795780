/*
 * Client side of WebSocket: see wsc.h. Everything that is the same for both
 * sides is worker/ws.c's: the frame parser (run with CH_WS_PEER_SERVER, so
 * it refuses masked frames and never writes to the input), the frame and
 * close payload writers and Sec-WebSocket-Accept. This file keeps what only
 * a client does: random keys and masks, the upgrade request, checking the
 * 101 answer, and the client's event shape.
 *
 * Invariant: one ch_wsc_parse is one ch_ws_parse_const, so the event, the
 * bytes consumed and the lifetime of the event's data are ch_ws_parse's.
 */
#include "client/wsc.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "client/httpc.h"

#define CH_WSC_KEY_RAW		16	/* random bytes in a Sec-WebSocket-Key */
#define CH_WSC_MAX_RESPONSE_HEAD 8192	/* a longer 101 answer is refused */

/* ------------------------------------------------------------------------
 * Randomness: keys and masks
 * ---------------------------------------------------------------------- */

/*
 * Masks must be unpredictable (RFC 6455 10.3), but a getrandom call per
 * frame would cost a load generator a system call per message: each thread
 * keeps a pool of kernel random bytes and refills it when it is used up.
 */
#define CH_WSC_POOL 512
static __thread uint8_t ch_wsc_pool[CH_WSC_POOL];
static __thread size_t ch_wsc_pool_left;

static void ch_wsc_fill(void *buf, size_t n)
{
	uint8_t *p = buf;
	size_t done = 0;
	ssize_t r;

	while (done < n) {
		r = getrandom(p + done, n - done, 0);
		if (r > 0) {
			done += (size_t)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		break;
	}
	/* No getrandom (seccomp, old kernel): weak, but masks still vary. */
	for (; done < n; done++) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		p[done] = (uint8_t)(ts.tv_nsec ^ (ts.tv_nsec >> 8) ^ (long)getpid() ^ (long)rand());
	}
}

void ch_wsc_random(void *buf, size_t n)
{
	uint8_t *out = buf;
	size_t k;

	if (n > CH_WSC_POOL) {
		ch_wsc_fill(buf, n);
		return;
	}
	while (n > 0) {
		if (ch_wsc_pool_left == 0) {
			ch_wsc_fill(ch_wsc_pool, CH_WSC_POOL);
			ch_wsc_pool_left = CH_WSC_POOL;
		}
		k = n < ch_wsc_pool_left ? n : ch_wsc_pool_left;
		memcpy(out, ch_wsc_pool + CH_WSC_POOL - ch_wsc_pool_left, k);
		/* Never hand the same bytes out twice. */
		memset(ch_wsc_pool + CH_WSC_POOL - ch_wsc_pool_left, 0, k);
		ch_wsc_pool_left -= k;
		out += k;
		n -= k;
	}
}

/* ------------------------------------------------------------------------
 * Opening handshake
 * ---------------------------------------------------------------------- */

int ch_wsc_request(char *out, size_t cap, const char *host, const char *path,
		   const char *token, char key[CH_WSC_KEY_LEN + 1])
{
	uint8_t raw[CH_WSC_KEY_RAW];
	int n;

	/* A line break in any of them would end the header early (injection). */
	if (strpbrk(host, "\r\n") || strpbrk(path, "\r\n") || (token && strpbrk(token, "\r\n")))
		return -1;
	ch_wsc_random(raw, sizeof(raw));
	/* 16 bytes encode to exactly 24 characters; EVP adds the NUL. */
	EVP_EncodeBlock((unsigned char *)key, raw, sizeof(raw));
	n = snprintf(out, cap,
		     "GET %s HTTP/1.1\r\n"
		     "Host: %s\r\n"
		     "Upgrade: websocket\r\n"
		     "Connection: Upgrade\r\n"
		     "Sec-WebSocket-Key: %s\r\n"
		     "Sec-WebSocket-Version: 13\r\n"
		     "%s%s%s"
		     "\r\n",
		     path, host, key,
		     token ? "Authorization: Bearer " : "", token ? token : "", token ? "\r\n" : "");
	if (n < 0 || (size_t)n >= cap)
		return -1;
	return n;
}

int ch_wsc_response(const char *buf, size_t len, const char *key, int *status)
{
	char accept[CH_WS_ACCEPT_LEN + 1];
	const char *v;
	size_t head, vlen;

	*status = 0;
	head = ch_httpc_head_end(buf, len);
	if (head == 0)
		return len > CH_WSC_MAX_RESPONSE_HEAD ? -1 : 0;
	*status = ch_httpc_status(buf, head);
	if (*status != 101)
		return -1;
	v = ch_httpc_header(buf, head, "Upgrade", &vlen);
	if (v == NULL || !ch_ws_has_token(v, vlen, "websocket"))
		return -1;
	v = ch_httpc_header(buf, head, "Connection", &vlen);
	if (v == NULL || !ch_ws_has_token(v, vlen, "upgrade"))
		return -1;
	if (ch_ws_accept_key(key, strlen(key), accept) < 0)
		return -1;
	v = ch_httpc_header(buf, head, "Sec-WebSocket-Accept", &vlen);
	if (v == NULL || vlen != CH_WS_ACCEPT_LEN || memcmp(v, accept, vlen) != 0)
		return -1;
	return (int)head;
}

/* ------------------------------------------------------------------------
 * Frame writers
 * ---------------------------------------------------------------------- */

size_t ch_wsc_frame(uint8_t *out, size_t cap, int opcode, int fin,
		    const void *payload, size_t len)
{
	uint8_t mask[CH_WS_MASK_LEN];

	if (cap < CH_WSC_MAX_HEADER || cap - CH_WSC_MAX_HEADER < len)
		return 0;
	ch_wsc_random(mask, sizeof(mask));
	return ch_ws_client_frame((uint8_t)((fin ? CH_WS_FIN : 0) | (opcode & CH_WS_OPCODE_BITS)),
				  payload, len, mask, out);
}

size_t ch_wsc_close_frame(uint8_t *out, size_t cap, uint16_t code)
{
	uint8_t payload[CH_WS_MAX_CONTROL_PAYLOAD];
	size_t n = ch_ws_close_payload(code, NULL, 0, payload);

	return ch_wsc_frame(out, cap, CH_WSC_OP_CLOSE, 1, payload, n);
}

/* ------------------------------------------------------------------------
 * Parser: worker/ws.c's, with the client's event shape
 * ---------------------------------------------------------------------- */

void ch_wsc_parser_init(struct ch_wsc_parser *p, size_t max_message)
{
	ch_ws_parser_init_peer(&p->ws, max_message, CH_WS_PEER_SERVER);
}

void ch_wsc_parser_free(struct ch_wsc_parser *p)
{
	ch_ws_parser_free(&p->ws);
}

/* ch_wsc_event's type and opcode for each ch_ws_event type. */
static const struct {
	int type, opcode;
} ch_wsc_event_map[] = {
	[CH_WS_EV_NONE] = { CH_WSC_NEED_MORE, 0 },
	[CH_WS_EV_TEXT] = { CH_WSC_MESSAGE, CH_WSC_OP_TEXT },
	[CH_WS_EV_BINARY] = { CH_WSC_MESSAGE, CH_WSC_OP_BINARY },
	[CH_WS_EV_PING] = { CH_WSC_PING, CH_WSC_OP_PING },
	[CH_WS_EV_PONG] = { CH_WSC_PONG, CH_WSC_OP_PONG },
	[CH_WS_EV_CLOSE] = { CH_WSC_CLOSE, CH_WSC_OP_CLOSE },
	[CH_WS_EV_ERROR] = { CH_WSC_ERROR, 0 },
};

int ch_wsc_parse(struct ch_wsc_parser *p, const uint8_t *in, size_t len,
		 size_t *used, struct ch_wsc_event *ev)
{
	struct ch_ws_event e;

	*used = ch_ws_parse_const(&p->ws, in, len, &e);
	*ev = (struct ch_wsc_event){
		.type = ch_wsc_event_map[e.type].type,
		.opcode = ch_wsc_event_map[e.type].opcode,
		.data = e.data,
		.len = e.len,
		.close_code = e.type == CH_WS_EV_CLOSE || e.type == CH_WS_EV_ERROR ? e.code : 0,
		.error = e.type == CH_WS_EV_ERROR ? e.error : NULL,
	};
	return ev->type;
}
