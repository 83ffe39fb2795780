/*
 * Unit tests for client/httpc.c: URL parsing, response heads (status,
 * headers, token lists), and whole requests against a canned server on a
 * loopback socket (a thread that accepts once, records the request and
 * writes the answer it was given): Content-Length, chunked and
 * close-delimited bodies, the Authorization header, a body cut short, a
 * silent server (timeout) and a refused connection.
 */
#include "client/httpc.h"
#include "worker/ws.h"
#include "tests/unit/loopback.h"

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

#define REQ_CAP 8192

/* ------------------------------------------------------------------------
 * A one-shot canned server
 * ---------------------------------------------------------------------- */

struct canned {
	int lfd;
	int port;
	const char *answer;	/* written after the request's head (and body) */
	int hold_ms;		/* keep the socket open this long after writing */
	char req[REQ_CAP];	/* what the client sent */
	size_t req_len;
	pthread_t thread;
};

static void *canned_run(void *arg)
{
	struct canned *s = arg;
	int fd = accept(s->lfd, NULL, NULL);
	ssize_t n;

	if (fd < 0)
		return NULL;
	/* Read until the head has come, then a little more for a body. */
	while (s->req_len < REQ_CAP - 1) {
		n = read(fd, s->req + s->req_len, REQ_CAP - 1 - s->req_len);
		if (n <= 0)
			break;
		s->req_len += (size_t)n;
		s->req[s->req_len] = '\0';
		if (strstr(s->req, "\r\n\r\n") != NULL) {
			const char *cl = strstr(s->req, "Content-Length: ");
			size_t head = (size_t)(strstr(s->req, "\r\n\r\n") + 4 - s->req);

			if (cl == NULL || s->req_len >= head + strtoul(cl + 16, NULL, 10))
				break;
		}
	}
	if (s->answer != NULL && write(fd, s->answer, strlen(s->answer)) < 0)
		perror("canned write");
	if (s->hold_ms > 0)
		usleep((useconds_t)s->hold_ms * 1000);
	close(fd);
	return NULL;
}

static struct canned *canned_start(const char *answer, int hold_ms)
{
	struct canned *s = calloc(1, sizeof(*s));

	ck_assert_ptr_nonnull(s);
	s->answer = answer;
	s->hold_ms = hold_ms;
	s->lfd = loopback_listen(&s->port);
	ck_assert_int_eq(pthread_create(&s->thread, NULL, canned_run, s), 0);
	return s;
}

/* Wait for the exchange to end; s->req stays readable until free(s). */
static void canned_stop(struct canned *s)
{
	pthread_join(s->thread, NULL);
	close(s->lfd);
}

static void url_for(struct ch_httpc_url *u, int port)
{
	char url[64];
	const char *err;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	ck_assert_int_eq(ch_httpc_parse_url(url, u, &err), 0);
}

/* ------------------------------------------------------------------------
 * URLs and heads
 * ---------------------------------------------------------------------- */

START_TEST(test_parse_url)
{
	struct ch_httpc_url u;
	const char *err = NULL;

	ck_assert_int_eq(ch_httpc_parse_url("http://127.0.0.1:8080", &u, &err), 0);
	ck_assert_str_eq(u.host, "127.0.0.1");
	ck_assert_str_eq(u.port, "8080");
	ck_assert_str_eq(u.hostport, "127.0.0.1:8080");
	ck_assert_int_eq(ch_httpc_parse_url("ws://chat.example:81/ws?x=1", &u, &err), 0);
	ck_assert_str_eq(u.host, "chat.example");
	ck_assert_str_eq(u.port, "81");
	ck_assert_int_eq(ch_httpc_parse_url("HTTP://localhost/", &u, &err), 0);
	ck_assert_str_eq(u.host, "localhost");
	ck_assert_str_eq(u.port, "80");
	ck_assert_int_eq(ch_httpc_parse_url("localhost:9", &u, &err), 0);
	ck_assert_str_eq(u.port, "9");
	ck_assert_int_eq(ch_httpc_parse_url("http://[::1]:8080/x", &u, &err), 0);
	ck_assert_str_eq(u.host, "::1");
	ck_assert_str_eq(u.hostport, "[::1]:8080");

	ck_assert_int_eq(ch_httpc_parse_url("https://x:1", &u, &err), -1);
	ck_assert_ptr_nonnull(strstr(err, "TLS"));
	ck_assert_int_eq(ch_httpc_parse_url("http://:80", &u, &err), -1);
	ck_assert_int_eq(ch_httpc_parse_url("http://h:", &u, &err), -1);
	ck_assert_int_eq(ch_httpc_parse_url("http://h:0", &u, &err), -1);
	ck_assert_int_eq(ch_httpc_parse_url("http://h:65536", &u, &err), -1);
	ck_assert_int_eq(ch_httpc_parse_url("http://h:8x", &u, &err), -1);
	ck_assert_int_eq(ch_httpc_parse_url("http://[::1", &u, &err), -1);
}
END_TEST

START_TEST(test_heads)
{
	const char *h = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
			"x-list:  a, Upgrade ,b \r\nContent-Length: 12\r\n\r\nbody";
	size_t vlen, len = strlen(h);
	const char *v;

	ck_assert_uint_eq(ch_httpc_head_end(h, len), len - 4);
	ck_assert_uint_eq(ch_httpc_head_end(h, len - 5), 0);
	ck_assert_int_eq(ch_httpc_status(h, len), 200);
	ck_assert_int_eq(ch_httpc_status("HTTP/1.0 404 Not Found\r\n", 24), 404);
	ck_assert_int_eq(ch_httpc_status("HTTP/1.1 2000 x\r\n", 17), 0);
	ck_assert_int_eq(ch_httpc_status("HTTP/2 200\r\n", 12), 0);
	ck_assert_int_eq(ch_httpc_status("HTTP/1.1 20", 11), 0);
	v = ch_httpc_header(h, len - 4, "content-length", &vlen);
	ck_assert_ptr_nonnull(v);
	ck_assert_uint_eq(vlen, 2);
	ck_assert(memcmp(v, "12", 2) == 0);
	v = ch_httpc_header(h, len - 4, "X-List", &vlen);
	ck_assert_ptr_nonnull(v);
	ck_assert_uint_eq(vlen, strlen("a, Upgrade ,b"));
	ck_assert(ch_ws_has_token(v, vlen, "upgrade"));
	ck_assert(ch_ws_has_token(v, vlen, "B"));
	ck_assert(!ch_ws_has_token(v, vlen, "upgr"));
	ck_assert(!ch_ws_has_token(v, vlen, ""));
	/* The status line is not a header; a prefix of a name is not the name. */
	ck_assert_ptr_null(ch_httpc_header(h, len - 4, "HTTP/1.1 200 OK", &vlen));
	ck_assert_ptr_null(ch_httpc_header(h, len - 4, "Content", &vlen));
	ck_assert_ptr_null(ch_httpc_header(h, len - 4, "Missing", &vlen));
}
END_TEST

/* ------------------------------------------------------------------------
 * Requests
 * ---------------------------------------------------------------------- */

START_TEST(test_request_content_length)
{
	struct canned *s = canned_start("HTTP/1.1 201 Created\r\nContent-Length: 11\r\n\r\n{\"ok\":true}", 0);
	struct ch_httpc_url u;
	struct ch_httpc_resp r;

	url_for(&u, s->port);
	ck_assert_int_eq(ch_httpc_request(&u, "POST", "/api/room", "tok.en", "{\"id\":\"x\"}", 10,
					  5000, &r), 0);
	canned_stop(s);
	ck_assert_int_eq(r.status, 201);
	ck_assert_uint_eq(r.len, 11);
	ck_assert_str_eq(r.body, "{\"ok\":true}");
	ck_assert(strncmp(s->req, "POST /api/room HTTP/1.1\r\n", 25) == 0);
	ck_assert_ptr_nonnull(strstr(s->req, "\r\nAuthorization: Bearer tok.en\r\n"));
	ck_assert_ptr_nonnull(strstr(s->req, "\r\nContent-Length: 10\r\n"));
	ck_assert_ptr_nonnull(strstr(s->req, "\r\nContent-Type: application/json\r\n"));
	ck_assert_ptr_nonnull(strstr(s->req, "\r\n\r\n{\"id\":\"x\"}"));
	ch_httpc_resp_free(&r);
	free(s);
}
END_TEST

START_TEST(test_request_no_token_no_body)
{
	struct canned *s = canned_start("HTTP/1.1 204 No Content\r\n\r\n", 2000);
	struct ch_httpc_url u;
	struct ch_httpc_resp r;

	url_for(&u, s->port);
	/* 204 has no body: done at the head, not at the close 2 s later. */
	ck_assert_int_eq(ch_httpc_request(&u, "GET", "/x", NULL, NULL, 0, 1000, &r), 0);
	ck_assert_int_eq(r.status, 204);
	ck_assert_uint_eq(r.len, 0);
	ck_assert_str_eq(r.body, "");
	canned_stop(s);
	ck_assert_ptr_null(strstr(s->req, "Authorization"));
	ck_assert_ptr_null(strstr(s->req, "Content-Length"));
	ch_httpc_resp_free(&r);
	free(s);
}
END_TEST

START_TEST(test_request_chunked)
{
	struct canned *s = canned_start("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
					"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n", 0);
	struct ch_httpc_url u;
	struct ch_httpc_resp r;

	url_for(&u, s->port);
	ck_assert_int_eq(ch_httpc_request(&u, "GET", "/c", NULL, NULL, 0, 5000, &r), 0);
	canned_stop(s);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body, "hello, world");
	ck_assert_uint_eq(r.len, 12);
	ch_httpc_resp_free(&r);
	free(s);
}
END_TEST

START_TEST(test_request_until_close)
{
	struct canned *s = canned_start("HTTP/1.0 200 OK\r\n\r\nall of it", 0);
	struct ch_httpc_url u;
	struct ch_httpc_resp r;

	url_for(&u, s->port);
	ck_assert_int_eq(ch_httpc_request(&u, "GET", "/", NULL, NULL, 0, 5000, &r), 0);
	canned_stop(s);
	ck_assert_str_eq(r.body, "all of it");
	ch_httpc_resp_free(&r);
	free(s);
}
END_TEST

START_TEST(test_request_failures)
{
	struct canned *s = canned_start("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", 0);
	struct ch_httpc_url u;
	struct ch_httpc_resp r;
	int port;

	url_for(&u, s->port);
	errno = 0;
	ck_assert_int_eq(ch_httpc_request(&u, "GET", "/", NULL, NULL, 0, 5000, &r), -1);
	ck_assert_int_eq(errno, EPROTO);
	ck_assert_ptr_null(r.body);
	canned_stop(s);
	free(s);

	/* Not HTTP at all. */
	s = canned_start("SSH-2.0-OpenSSH_9.2\r\n\r\n", 0);
	url_for(&u, s->port);
	ck_assert_int_eq(ch_httpc_request(&u, "GET", "/", NULL, NULL, 0, 5000, &r), -1);
	ck_assert_int_eq(errno, EPROTO);
	canned_stop(s);
	free(s);

	/* A server that never answers: the timeout. */
	s = canned_start(NULL, 1500);
	url_for(&u, s->port);
	ck_assert_int_eq(ch_httpc_request(&u, "GET", "/", NULL, NULL, 0, 300, &r), -1);
	ck_assert_int_eq(errno, ETIMEDOUT);
	canned_stop(s);
	port = s->port;
	free(s);

	/* Nobody listening (the port the canned server had, now closed). */
	url_for(&u, port);
	ck_assert_int_eq(ch_httpc_request(&u, "GET", "/", NULL, NULL, 0, 1000, &r), -1);
	ck_assert_int_eq(errno, ECONNREFUSED);

	/* No header injection (refused before connecting). */
	ck_assert_int_eq(ch_httpc_request(&u, "GET", "/ HTTP/1.1\r\nX: y", NULL, NULL, 0, 1000, &r), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(ch_httpc_request(&u, "GET", "/", "t\r\nX: y", NULL, 0, 1000, &r), -1);
	ck_assert_int_eq(errno, EINVAL);
}
END_TEST

static Suite *httpc_suite(void)
{
	Suite *s = suite_create("httpc");
	TCase *pure = tcase_create("parsing");
	TCase *io = tcase_create("requests");

	tcase_add_test(pure, test_parse_url);
	tcase_add_test(pure, test_heads);
	suite_add_tcase(s, pure);
	tcase_set_timeout(io, 20);
	tcase_add_test(io, test_request_content_length);
	tcase_add_test(io, test_request_no_token_no_body);
	tcase_add_test(io, test_request_chunked);
	tcase_add_test(io, test_request_until_close);
	tcase_add_test(io, test_request_failures);
	suite_add_tcase(s, io);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(httpc_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
