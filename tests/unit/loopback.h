/*
 * loopback.h - for the client library's suites (check_conn, check_httpc):
 * a listening TCP socket on 127.0.0.1 at a port the kernel picks, on which
 * each suite's scripted server thread accepts one connection. Header-only so
 * that every suite, which the Makefile links from its one .c, can use it.
 */
#ifndef CH_TEST_LOOPBACK_H
#define CH_TEST_LOOPBACK_H

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* The listening socket; *port is set to its port. Fails the test on error. */
static inline int loopback_listen(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(fd, 1), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

#endif
