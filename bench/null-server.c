/*
 * null-server: the floor of request/response benchmarks on this machine.
 * It answers every request at once and does nothing else: no parsing, no
 * storage, no durability. What a load generator gets from it is the most
 * any server can reach with that generator on this machine, since the
 * kernel's loopback TCP work and the generator's own CPU are the same
 * for every server.
 *
 * It speaks just enough of two protocols: a read that starts with '*' is
 * a RESP command (redis-benchmark), answered "+OK"; anything else is an
 * HTTP/1.1 request (wrk), answered 200 with a small JSON body. One answer
 * per read: right for clients with one request in flight per connection,
 * which is how bench/send-vs-redis runs both generators.
 *
 * Usage: null-server PORT [THREADS]   (127.0.0.1; THREADS event loops,
 * default 2, sharing the port with SO_REUSEPORT, like chatd's workers)
 * Build: cc -O2 -pthread -o null-server bench/null-server.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_THREADS 64
#define EVENTS 512
#define READ_BUF 65536

static const char resp_ok[] = "+OK\r\n";
static const char http_ok[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
			      "Content-Length: 11\r\n\r\n{\"ok\":true}";

static int listen_on(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4096) < 0) {
		fprintf(stderr, "null-server: listen on 127.0.0.1:%d: %s\n", port, strerror(errno));
		exit(1);
	}
	return fd;
}

static void accept_all(int ep, int lfd)
{
	int one = 1, fd;

	while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
			close(fd);
	}
}

static void answer(int fd, char *buf)
{
	ssize_t n = read(fd, buf, READ_BUF);

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		close(fd);
		return;
	}
	if (n < 0)
		return;
	const char *a = buf[0] == '*' ? resp_ok : http_ok;
	size_t len = buf[0] == '*' ? sizeof(resp_ok) - 1 : sizeof(http_ok) - 1;
	if (write(fd, a, len) != (ssize_t)len)
		close(fd);	/* a tiny answer that does not fit: the peer is gone */
}

static void *loop(void *arg)
{
	int lfd = listen_on(*(int *)arg), ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = lfd }, evs[EVENTS];
	char *buf = malloc(READ_BUF);

	if (ep < 0 || !buf || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) {
		perror("null-server: epoll");
		exit(1);
	}
	for (;;) {
		int n = epoll_wait(ep, evs, EVENTS, -1);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.fd == lfd)
				accept_all(ep, lfd);
			else
				answer(evs[i].data.fd, buf);
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	static int port;
	int threads = argc > 2 ? atoi(argv[2]) : 2;
	pthread_t t;

	port = argc > 1 ? atoi(argv[1]) : 0;
	if (port <= 0 || port > 65535 || threads < 1 || threads > MAX_THREADS) {
		fprintf(stderr, "usage: null-server PORT [THREADS 1..%d]\n", MAX_THREADS);
		return 2;
	}
	for (int i = 1; i < threads; i++)
		if (pthread_create(&t, NULL, loop, &port) != 0) {
			perror("null-server: pthread_create");
			return 1;
		}
	loop(&port);
	return 0;
}
