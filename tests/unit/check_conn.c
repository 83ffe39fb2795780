/*
 * Unit tests for client/conn.c, the blocking WebSocket connection, against
 * a scripted server on a loopback socket (a thread). The server side is
 * written with worker/ws.h, so the client's masked frames are checked by
 * chatd's own parser: the handshake with its token and path, frames that
 * arrive with the 101 answer, a ping answered while a fragmented message
 * is read, a receive timeout, the server's close (echoed), a refused
 * upgrade, a wrong Sec-WebSocket-Accept, and a connection cut without a
 * close frame.
 */
#include "client/conn.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/httpc.h"
#include "worker/ws.h"
#include "tests/unit/loopback.h"

#define CAP 8192
#define TIMEOUT_MS 5000

struct server {
	int lfd, fd, port;
	void (*script)(struct server *s);
	char req[CAP];		/* the upgrade request */
	size_t req_len;
	char key[CH_WS_MAX_KEY + 1];
	/* What the client sent after the handshake, as server-side events. */
	int types[16];
	char texts[16][64];
	uint16_t codes[16];
	int nev;
	pthread_t thread;
};

/* Read the request head; keep the key. */
static void srv_read_request(struct server *s)
{
	const char *k;
	size_t klen;
	ssize_t n;

	while (strstr(s->req, "\r\n\r\n") == NULL && s->req_len < CAP - 1) {
		n = read(s->fd, s->req + s->req_len, CAP - 1 - s->req_len);
		if (n <= 0)
			return;
		s->req_len += (size_t)n;
		s->req[s->req_len] = '\0';
	}
	k = ch_httpc_header(s->req, s->req_len, "Sec-WebSocket-Key", &klen);
	if (k != NULL && klen <= CH_WS_MAX_KEY) {
		memcpy(s->key, k, klen);
		s->key[klen] = '\0';
	}
}

static void srv_write(struct server *s, const void *p, size_t n)
{
	if (write(s->fd, p, n) != (ssize_t)n)
		perror("server write");
}

/* Append an unmasked frame with the given first byte to out. */
static size_t srv_frame(uint8_t *out, uint8_t first, const char *payload)
{
	size_t n = strlen(payload);

	out[0] = first;
	out[1] = (uint8_t)n;	/* the tests' payloads are short */
	memcpy(out + 2, payload, n);
	return 2 + n;
}

/* Parse what the client sends, until its close or EOF. */
static void srv_collect(struct server *s)
{
	struct ch_ws_parser p;
	struct ch_ws_event ev;
	uint8_t buf[CAP];
	ssize_t n;

	ch_ws_parser_init(&p, CAP);
	while ((n = read(s->fd, buf, sizeof(buf))) > 0) {
		size_t off = 0;

		do {
			off += ch_ws_parse(&p, buf + off, (size_t)n - off, &ev);
			if (ev.type == CH_WS_EV_NONE || s->nev == 16)
				break;
			s->types[s->nev] = ev.type;
			s->codes[s->nev] = ev.code;
			snprintf(s->texts[s->nev], sizeof(s->texts[0]), "%.*s", (int)ev.len, ev.data);
			s->nev++;
		} while (ev.type != CH_WS_EV_CLOSE && ev.type != CH_WS_EV_ERROR);
		if (ev.type == CH_WS_EV_CLOSE || ev.type == CH_WS_EV_ERROR)
			break;
	}
	ch_ws_parser_free(&p);
}

static void *srv_run(void *arg)
{
	struct server *s = arg;

	s->fd = accept(s->lfd, NULL, NULL);
	if (s->fd < 0)
		return NULL;
	srv_read_request(s);
	s->script(s);
	close(s->fd);
	return NULL;
}

static struct server *srv_start(void (*script)(struct server *s))
{
	struct server *s = calloc(1, sizeof(*s));

	ck_assert_ptr_nonnull(s);
	s->script = script;
	s->lfd = loopback_listen(&s->port);
	ck_assert_int_eq(pthread_create(&s->thread, NULL, srv_run, s), 0);
	return s;
}

static void srv_stop(struct server *s)
{
	pthread_join(s->thread, NULL);
	close(s->lfd);
}

static int open_to(struct ch_wsclient *c, struct server *s, const char *token, int *status)
{
	char port[8], hostport[32];

	snprintf(port, sizeof(port), "%d", s->port);
	snprintf(hostport, sizeof(hostport), "127.0.0.1:%d", s->port);
	return ch_wsclient_open(c, "127.0.0.1", port, hostport, "/ws?x=1", token, TIMEOUT_MS, status);
}

/* ------------------------------------------------------------------------
 * Scripts
 * ---------------------------------------------------------------------- */

/*
 * 101 with a first message in the same write; then a ping inside a
 * fragmented message; then wait for the client's "hello", close with 1001.
 */
static void script_chat(struct server *s)
{
	uint8_t out[CAP];
	size_t n;
	int len = ch_ws_format_101((char *)out, sizeof(out), s->key, strlen(s->key));

	if (len < 0)
		return;
	n = (size_t)len;
	n += srv_frame(out + n, CH_WS_FIN | CH_WS_OP_TEXT, "first");
	srv_write(s, out, n);
	n = srv_frame(out, CH_WS_OP_TEXT, "frag");
	n += srv_frame(out + n, CH_WS_FIN | CH_WS_OP_PING, "pp");
	srv_write(s, out, n);
	usleep(50 * 1000);	/* the rest in a later read */
	n = srv_frame(out, CH_WS_FIN | CH_WS_OP_CONT, "ment");
	srv_write(s, out, n);
	/* The pong and "hello", then our close, then the client's echo. */
	{
		struct ch_ws_parser p;
		struct ch_ws_event ev;
		uint8_t in[CAP];
		ssize_t r;
		int got = 0;

		ch_ws_parser_init(&p, CAP);
		while (got < 2 && (r = read(s->fd, in, sizeof(in))) > 0) {
			size_t off = 0;

			do {
				off += ch_ws_parse(&p, in + off, (size_t)r - off, &ev);
				if (ev.type == CH_WS_EV_NONE)
					break;
				s->types[s->nev] = ev.type;
				snprintf(s->texts[s->nev], sizeof(s->texts[0]), "%.*s", (int)ev.len, ev.data);
				s->nev++;
				got++;
			} while (got < 2);
		}
		ch_ws_parser_free(&p);
	}
	n = ch_ws_close_frame(1001, "bye", 3, out);
	srv_write(s, out, n);
	srv_collect(s);
}

static void script_401(struct server *s)
{
	const char *a = "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n";

	srv_write(s, a, strlen(a));
}

static void script_bad_accept(struct server *s)
{
	char out[512];
	int n = ch_ws_format_101(out, sizeof(out), "dGhlIHNhbXBsZSBub25jZQ==", 24);

	if (n > 0)
		srv_write(s, out, (size_t)n);
}

static void script_cut(struct server *s)
{
	char out[512];
	int n = ch_ws_format_101(out, sizeof(out), s->key, strlen(s->key));

	if (n > 0)
		srv_write(s, out, (size_t)n);
	/* close(2) without a close frame, right away. */
}

/* ------------------------------------------------------------------------
 * Tests
 * ---------------------------------------------------------------------- */

START_TEST(test_chat)
{
	struct server *s = srv_start(script_chat);
	struct ch_wsclient c;
	const uint8_t *data;
	size_t len;
	int status;

	ck_assert_int_eq(open_to(&c, s, "tok.en", &status), 0);
	ck_assert_int_eq(ch_wsclient_recv(&c, TIMEOUT_MS, &data, &len), CH_WSCLIENT_TEXT);
	ck_assert_uint_eq(len, 5);
	ck_assert(memcmp(data, "first", 5) == 0);
	ck_assert_int_eq(ch_wsclient_recv(&c, TIMEOUT_MS, &data, &len), CH_WSCLIENT_TEXT);
	ck_assert_uint_eq(len, 8);
	ck_assert(memcmp(data, "fragment", 8) == 0);
	ck_assert_int_eq(ch_wsclient_recv(&c, 100, &data, &len), CH_WSCLIENT_TIMEOUT);
	ck_assert_int_eq(ch_wsclient_send_text(&c, "hello", 5), 0);
	ck_assert_int_eq(ch_wsclient_recv(&c, TIMEOUT_MS, &data, &len), CH_WSCLIENT_CLOSED);
	ck_assert_uint_eq(c.close_code, 1001);
	/* Dead now: no more sends. */
	ck_assert_int_eq(ch_wsclient_send_text(&c, "late", 4), -1);
	ch_wsclient_close(&c, 1000);
	srv_stop(s);

	ck_assert_ptr_nonnull(strstr(s->req, "GET /ws?x=1 HTTP/1.1\r\n"));
	ck_assert_ptr_nonnull(strstr(s->req, "\r\nAuthorization: Bearer tok.en\r\n"));
	ck_assert_int_eq(s->nev, 3);
	ck_assert_int_eq(s->types[0], CH_WS_EV_PONG);
	ck_assert_str_eq(s->texts[0], "pp");
	ck_assert_int_eq(s->types[1], CH_WS_EV_TEXT);
	ck_assert_str_eq(s->texts[1], "hello");
	ck_assert_int_eq(s->types[2], CH_WS_EV_CLOSE);
	ck_assert_uint_eq(s->codes[2], 1001);	/* our close, echoed */
	free(s);
}
END_TEST

START_TEST(test_refused)
{
	struct server *s = srv_start(script_401);
	struct ch_wsclient c;
	int status;

	ck_assert_int_eq(open_to(&c, s, NULL, &status), -1);
	ck_assert_int_eq(status, 401);
	ck_assert_int_eq(c.fd, -1);
	srv_stop(s);
	ck_assert_ptr_null(strstr(s->req, "Authorization"));
	free(s);

	s = srv_start(script_bad_accept);
	ck_assert_int_eq(open_to(&c, s, NULL, &status), -1);
	ck_assert_int_eq(status, 101);
	srv_stop(s);
	free(s);
}
END_TEST

START_TEST(test_cut)
{
	struct server *s = srv_start(script_cut);
	struct ch_wsclient c;
	const uint8_t *data;
	size_t len;
	int status;

	ck_assert_int_eq(open_to(&c, s, NULL, &status), 0);
	ck_assert_int_eq(ch_wsclient_recv(&c, TIMEOUT_MS, &data, &len), CH_WSCLIENT_ERROR);
	ck_assert_uint_eq(c.close_code, 1006);
	ck_assert_int_eq(ch_wsclient_recv(&c, 0, &data, &len), CH_WSCLIENT_ERROR);
	ch_wsclient_close(&c, 1000);
	srv_stop(s);
	free(s);
}
END_TEST

static Suite *conn_suite(void)
{
	Suite *s = suite_create("conn");
	TCase *tc = tcase_create("wsclient");

	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_chat);
	tcase_add_test(tc, test_refused);
	tcase_add_test(tc, test_cut);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(conn_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
