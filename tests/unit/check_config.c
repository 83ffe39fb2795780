/*
 * Unit tests for master/config.c: defaults, every value type, every error
 * path (file:line and message), listen addresses, the -T dump round trip,
 * and that the shipped conf/chatd.conf and man/chatd.conf.5 agree with the
 * key table. Run from the top of the tree (conf/ and man/ are read).
 */
#include "master/config.h"

#include "common/log.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SHIPPED_CONF "conf/chatd.conf"
#define SHIPPED_MAN "man/chatd.conf.5"
#define NAME "t.conf"

static char err[CH_CONFIG_ERR_MAX];

static int expected_workers(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > CH_MAX_WORKERS ? CH_MAX_WORKERS : (int)n;
}

/* Load text over a fresh defaults struct; ck_assert that it worked. */
static void load_ok(struct ch_config *c, const char *text)
{
	ch_config_defaults(c);
	err[0] = '\0';
	ck_assert_msg(ch_config_load_string(c, NAME, text, err, sizeof(err)) == 0,
		      "load failed: %s\n--- text:\n%s", err, text);
}

/*
 * Load text, expect failure at line with a message holding both words
 * (word2 may be NULL), and the struct untouched.
 */
static void load_bad(const char *text, int line, const char *word1, const char *word2)
{
	struct ch_config c, before;
	char prefix[64];

	ch_config_defaults(&c);
	c.max_connections = 4242;	/* not a default: shows *c was left alone */
	before = c;
	err[0] = '\0';
	ck_assert_msg(ch_config_load_string(&c, NAME, text, err, sizeof(err)) == -1,
		      "load of bad text succeeded:\n%s", text);
	snprintf(prefix, sizeof(prefix), NAME ":%d: ", line);
	ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0,
		      "expected prefix '%s', got '%s'", prefix, err);
	ck_assert_msg(strstr(err, word1) != NULL, "'%s' not in '%s'", word1, err);
	if (word2 != NULL)
		ck_assert_msg(strstr(err, word2) != NULL, "'%s' not in '%s'", word2, err);
	ck_assert_msg(memcmp(&c, &before, sizeof(c)) == 0, "failed load changed *c");
}

/* Settings compare with memcmp once the (differing) file names are gone. */
static void clear_path(struct ch_config *c)
{
	memset(c->path, 0, sizeof(c->path));
}

static void assert_v4(const struct ch_listen_addr *a, const char *ip, int port)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->addr;
	char buf[INET_ADDRSTRLEN];

	ck_assert_int_eq(sin->sin_family, AF_INET);
	ck_assert_int_eq(a->addrlen, sizeof(*sin));
	ck_assert_int_eq(ntohs(sin->sin_port), port);
	ck_assert_ptr_nonnull(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf)));
	ck_assert_str_eq(buf, ip);
}

static void assert_v6(const struct ch_listen_addr *a, const char *ip, int port)
{
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->addr;
	char buf[INET6_ADDRSTRLEN];

	ck_assert_int_eq(sin6->sin6_family, AF_INET6);
	ck_assert_int_eq(a->addrlen, sizeof(*sin6));
	ck_assert_int_eq(ntohs(sin6->sin6_port), port);
	ck_assert_ptr_nonnull(inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf)));
	ck_assert_str_eq(buf, ip);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0;

	ck_assert_msg(f != NULL, "cannot open %s (cwd must be the tree top)", path);
	FILE *m = open_memstream(&buf, &len);
	int ch;
	while ((ch = fgetc(f)) != EOF)
		fputc(ch, m);
	fclose(m);
	fclose(f);
	return buf;
}

static char *dump_to_string(const struct ch_config *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);

	ch_config_dump(c, m);
	fclose(m);
	return buf;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

/* ------------------------------------------------------------------ */

START_TEST(test_defaults)
{
	struct ch_config c;

	memset(&c, 0x5a, sizeof(c));
	ch_config_defaults(&c);
	ck_assert_str_eq(c.path, "");
	ck_assert_int_eq(c.n_listen, 1);
	ck_assert_str_eq(c.listen[0].text, "127.0.0.1:8080");
	assert_v4(&c.listen[0], "127.0.0.1", 8080);
	ck_assert_int_eq(c.workers_auto, 1);
	ck_assert_int_eq(c.workers, expected_workers());
	ck_assert_str_eq(c.data_dir, "./var");
	ck_assert_str_eq(c.web_root, "./www");
	ck_assert_int_eq(c.max_connections, 10000);
	ck_assert_uint_eq(c.header_timeout_ms, 10000);
	ck_assert_uint_eq(c.idle_timeout_ms, 60000);
	ck_assert_uint_eq(c.shutdown_timeout_ms, 10000);
	ck_assert_uint_eq(c.max_body_size, 1024 * 1024);
	ck_assert_int_eq(c.log_level, CH_LOG_INFO);
	ck_assert_str_eq(c.access_log, "off");
}
END_TEST

START_TEST(test_keys)
{
	static const char *const want[] = {
		"server.listen", "server.workers", "server.data_dir", "server.web_root",
		"server.max_connections", "server.header_timeout", "server.idle_timeout",
		"server.shutdown_timeout", "server.away_after", "server.max_body_size",
		"server.log_level", "server.access_log", "admin.socket", "journal.ack",
		"journal.segment_size",
		"journal.room_rings", "journal.ring_slots", "journal.ring_slot_size",
		"replication.role", "replication.listen", "replication.primary",
		"replication.secret_file", "replication.ack_timeout",
		"auth.key_file", "auth.token_lifetime", "auth.hash_method", "auth.hash_cost",
		"auth.hash_threads", "limits.auth_per_ip_per_minute",
		"limits.auth_failures_per_user_per_minute", "limits.max_message_bytes",
		"limits.max_rooms_per_user", "limits.max_participants",
		"uploads.backend", "uploads.dir", "uploads.max_size", "uploads.url_expiry",
		"s3.endpoint", "s3.bucket", "s3.region", "s3.access_key", "s3.secret_key_file",
		"s3.style", "s3.protocol", "s3.public_url", "s3.create_bucket",
	};
	const char *const *keys = ch_config_keys();
	size_t n = 0;

	while (keys[n] != NULL)
		n++;
	ck_assert_uint_eq(n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < n; i++) {
		ck_assert_str_eq(keys[i], want[i]);
		for (size_t j = 0; j < i; j++)
			ck_assert_str_ne(keys[i], keys[j]);
	}
	ck_assert_ptr_eq(ch_config_keys(), keys);	/* stable */
}
END_TEST

START_TEST(test_parse_size)
{
	static const struct { const char *s; uint64_t v; } ok[] = {
		{ "0", 0 }, { "512", 512 }, { "1K", 1024 }, { "1k", 1024 },
		{ "25M", 25ULL << 20 }, { "2m", 2ULL << 20 }, { "1G", 1ULL << 30 },
		{ "3g", 3ULL << 30 }, { "99999999999999999999", UINT64_MAX },
		{ "17179869184G", UINT64_MAX },
	};
	static const char *const bad[] = {
		"", "K", "1KB", "1.5M", "-1", " 1", "1 K", "1T", "0x10", "1K1",
	};
	uint64_t v;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		v = 7;
		ck_assert_msg(ch_config_parse_size(ok[i].s, &v) == 0, "%s", ok[i].s);
		ck_assert_msg(v == ok[i].v, "%s gave %llu", ok[i].s, (unsigned long long)v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(ch_config_parse_size(bad[i], &v) == -1, "'%s' accepted", bad[i]);
}
END_TEST

START_TEST(test_parse_duration)
{
	static const struct { const char *s; uint64_t ms; } ok[] = {
		{ "0", 0 }, { "10", 10000 }, { "10s", 10000 }, { "250ms", 250 },
		{ "5m", 300000 }, { "2h", 7200000 }, { "0ms", 0 },
		{ "99999999999999999999h", UINT64_MAX },
	};
	static const char *const bad[] = {
		"", "s", "10x", "1.5s", "10 s", "-1", "10S", "10ms5", "10sec", "1d",
	};
	uint64_t v;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		v = 7;
		ck_assert_msg(ch_config_parse_duration(ok[i].s, &v) == 0, "%s", ok[i].s);
		ck_assert_msg(v == ok[i].ms, "%s gave %llu", ok[i].s, (unsigned long long)v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(ch_config_parse_duration(bad[i], &v) == -1, "'%s' accepted", bad[i]);
}
END_TEST

START_TEST(test_parse_bool)
{
	static const char *const yes[] = { "on", "yes", "true", "1", "ON", "True" };
	static const char *const no[] = { "off", "no", "false", "0", "OFF", "No" };
	static const char *const bad[] = { "", "2", "onn", "y", "enable", "01" };
	int v;

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		v = -1;
		ck_assert_int_eq(ch_config_parse_bool(yes[i], &v), 0);
		ck_assert_int_eq(v, 1);
		v = -1;
		ck_assert_int_eq(ch_config_parse_bool(no[i], &v), 0);
		ck_assert_int_eq(v, 0);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(ch_config_parse_bool(bad[i], &v) == -1, "'%s' accepted", bad[i]);
}
END_TEST

START_TEST(test_parse_listen)
{
	struct ch_listen_addr a;
	char why[256];

	ck_assert_int_eq(ch_config_parse_listen("10.1.2.3:80", &a, why, sizeof(why)), 0);
	assert_v4(&a, "10.1.2.3", 80);
	ck_assert_str_eq(a.text, "10.1.2.3:80");
	ck_assert_int_eq(ch_config_parse_listen("*:8080", &a, why, sizeof(why)), 0);
	assert_v4(&a, "0.0.0.0", 8080);
	ck_assert_str_eq(a.text, "*:8080");
	ck_assert_int_eq(ch_config_parse_listen("0.0.0.0:65535", &a, why, sizeof(why)), 0);
	assert_v4(&a, "0.0.0.0", 65535);
	ck_assert_int_eq(ch_config_parse_listen("[::1]:8443", &a, why, sizeof(why)), 0);
	assert_v6(&a, "::1", 8443);
	ck_assert_int_eq(ch_config_parse_listen("[::]:1", &a, why, sizeof(why)), 0);
	assert_v6(&a, "::", 1);
	ck_assert_int_eq(ch_config_parse_listen("[2001:db8::7]:443", &a, NULL, 0), 0);
	assert_v6(&a, "2001:db8::7", 443);
}
END_TEST

START_TEST(test_parse_listen_errors)
{
	static const struct { const char *s, *word; } bad[] = {
		{ "127.0.0.1", "missing ':port'" },
		{ "127.0.0.1:", "missing port" },
		{ ":8080", "missing host" },
		{ "1.2.3.4:0", "out of range (1 to 65535)" },
		{ "1.2.3.4:70000", "out of range (1 to 65535)" },
		{ "1.2.3.4:99999999999999999999999", "out of range" },
		{ "1.2.3.4:8x", "not a number" },
		{ "1.2.3.4:-1", "not a number" },
		{ "localhost:80", "not an IPv4 address" },
		{ "256.1.1.1:80", "not an IPv4 address" },
		{ "::1:80", "brackets" },
		{ "[::1]", "missing ':port'" },
		{ "[::1]8080", "missing ':port'" },
		{ "[::1:80", "missing ']'" },
		{ "[1.2.3.4]:80", "not an IPv6 address" },
		{ "[fe80::1%eth0]:80", "not an IPv6 address" },
		{ "[::1]:0", "out of range" },
		{ "", "missing ':port'" },
	};
	struct ch_listen_addr a;
	char why[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		ck_assert_msg(ch_config_parse_listen(bad[i].s, &a, why, sizeof(why)) == -1,
			      "'%s' accepted", bad[i].s);
		ck_assert_msg(strstr(why, bad[i].word) != NULL, "'%s': '%s' not in '%s'",
			      bad[i].s, bad[i].word, why);
	}
	/* A too-long address is refused, not truncated. */
	char longaddr[CH_ADDR_MAX + 8];
	memset(longaddr, '1', sizeof(longaddr) - 1);
	longaddr[sizeof(longaddr) - 1] = '\0';
	ck_assert_int_eq(ch_config_parse_listen(longaddr, &a, why, sizeof(why)), -1);
	ck_assert_ptr_nonnull(strstr(why, "longer than"));
}
END_TEST

START_TEST(test_load_all_keys)
{
	struct ch_config c;

	load_ok(&c,
		"[server]\n"
		"listen = 10.0.0.1:81\n"
		"workers = 3\n"
		"data_dir = /srv/chat/var\n"
		"web_root = /srv/chat/www\n"
		"max_connections = 1000000\n"
		"header_timeout = 100ms\n"
		"idle_timeout = 24h\n"
		"shutdown_timeout = 0\n"
		"max_body_size = 1G\n"
		"log_level = debug\n"
		"access_log = /var/log/chatd/access.log\n");
	ck_assert_str_eq(c.path, NAME);
	ck_assert_int_eq(c.n_listen, 1);
	assert_v4(&c.listen[0], "10.0.0.1", 81);
	ck_assert_int_eq(c.workers, 3);
	ck_assert_int_eq(c.workers_auto, 0);
	ck_assert_str_eq(c.data_dir, "/srv/chat/var");
	ck_assert_str_eq(c.web_root, "/srv/chat/www");
	ck_assert_int_eq(c.max_connections, 1000000);
	ck_assert_uint_eq(c.header_timeout_ms, 100);
	ck_assert_uint_eq(c.idle_timeout_ms, 24u * 3600 * 1000);
	ck_assert_uint_eq(c.shutdown_timeout_ms, 0);
	ck_assert_uint_eq(c.max_body_size, 1ULL << 30);
	ck_assert_int_eq(c.log_level, CH_LOG_DEBUG);
	ck_assert_str_eq(c.access_log, "/var/log/chatd/access.log");
}
END_TEST

START_TEST(test_load_values)
{
	struct ch_config c;

	load_ok(&c, "[server]\nworkers = auto\nlog_level = WARN\nmax_connections = 1\n"
		"idle_timeout = 1s\nheader_timeout = 1h\nshutdown_timeout = 60m\n"
		"max_body_size = 1024\naccess_log = stderr\n");
	ck_assert_int_eq(c.workers_auto, 1);
	ck_assert_int_eq(c.workers, expected_workers());
	ck_assert_int_eq(c.log_level, CH_LOG_WARN);
	ck_assert_int_eq(c.max_connections, 1);
	ck_assert_uint_eq(c.idle_timeout_ms, 1000);
	ck_assert_uint_eq(c.header_timeout_ms, 3600000);
	ck_assert_uint_eq(c.shutdown_timeout_ms, 3600000);
	ck_assert_uint_eq(c.max_body_size, 1024);
	ck_assert_str_eq(c.access_log, "stderr");

	load_ok(&c, "[server]\nworkers = 64\nlog_level = error\nidle_timeout = 90\n"
		"max_body_size = 25m\n");
	ck_assert_int_eq(c.workers, CH_MAX_WORKERS);
	ck_assert_int_eq(c.workers_auto, 0);
	ck_assert_int_eq(c.log_level, CH_LOG_ERROR);
	ck_assert_uint_eq(c.idle_timeout_ms, 90000);
	ck_assert_uint_eq(c.max_body_size, 25u << 20);
	/* Keys not given keep their defaults. */
	ck_assert_str_eq(c.data_dir, "./var");
	ck_assert_int_eq(c.max_connections, 10000);

	/* An empty file and a bare section are both the defaults. */
	struct ch_config d;
	ch_config_defaults(&d);
	load_ok(&c, "");
	clear_path(&c);
	ck_assert_int_eq(memcmp(&c, &d, sizeof(c)), 0);
	load_ok(&c, "[server]\n");
	clear_path(&c);
	ck_assert_int_eq(memcmp(&c, &d, sizeof(c)), 0);
}
END_TEST

START_TEST(test_value_errors)
{
	/* int */
	load_bad("[server]\nworkers = 0\n", 2, "workers", "out of range (1 to 64, or auto)");
	load_bad("[server]\nworkers = 65\n", 2, "workers", "out of range");
	load_bad("[server]\n\nworkers = many\n", 3, "workers", "expected auto or an integer");
	load_bad("[server]\nworkers = 4x\n", 2, "workers", "'4x'");
	load_bad("[server]\nworkers = -\n", 2, "workers", "expected");
	load_bad("[server]\nmax_connections = 0\n", 2, "max_connections",
		 "out of range (1 to 1000000)");
	load_bad("[server]\nmax_connections = 1000001\n", 2, "max_connections", "out of range");
	load_bad("[server]\nmax_connections = -5\n", 2, "max_connections", "out of range");
	load_bad("[server]\nmax_connections = 99999999999999999999\n", 2,
		 "max_connections", "out of range");
	load_bad("[server]\nmax_connections = auto\n", 2, "max_connections", "integer");
	/* duration */
	load_bad("[server]\nheader_timeout = 99ms\n", 2, "header_timeout",
		 "out of range (100ms to 1h)");
	load_bad("[server]\nheader_timeout = 3601\n", 2, "header_timeout", "out of range");
	load_bad("[server]\nidle_timeout = 999ms\n", 2, "idle_timeout", "(1s to 24h)");
	load_bad("[server]\nidle_timeout = 25h\n", 2, "idle_timeout", "out of range");
	load_bad("[server]\nshutdown_timeout = 61m\n", 2, "shutdown_timeout", "(0s to 1h)");
	load_bad("[server]\nshutdown_timeout = 10 s\n", 2, "shutdown_timeout",
		 "expected a duration");
	load_bad("[server]\nidle_timeout = 1d\n", 2, "idle_timeout", "expected a duration");
	/* size */
	load_bad("[server]\nmax_body_size = 1023\n", 2, "max_body_size",
		 "out of range (1K to 1G)");
	load_bad("[server]\nmax_body_size = 1025M\n", 2, "max_body_size", "out of range");
	load_bad("[server]\nmax_body_size = 2T\n", 2, "max_body_size", "expected a size");
	load_bad("[server]\nmax_body_size = lots\n", 2, "max_body_size", "'lots'");
	/* enum */
	load_bad("[server]\nlog_level = verbose\n", 2, "log_level",
		 "one of error, warn, info, debug");
	/* path */
	load_bad("[server]\ndata_dir =\n", 2, "data_dir", "empty");
	load_bad("[server]\naccess_log = ; nothing\n", 2, "access_log", "empty");
	/* listen, through the file */
	load_bad("[server]\nlisten = 127.0.0.1\n", 2, "listen", "missing ':port'");
	load_bad("[server]\nlisten = 1.2.3.4:0\n", 2, "listen", "out of range (1 to 65535)");
	load_bad("[server]\nlisten = 1.2.3.4:70000\n", 2, "listen", "out of range");
	load_bad("[server]\nlisten = example.com:80\n", 2, "listen", "not an IPv4 address");
	load_bad("[server]\nlisten = [::1]\n", 2, "listen", "port");
	load_bad("[server]\nlisten = [zz::1]:80\n", 2, "listen", "not an IPv6 address");
}
END_TEST

START_TEST(test_listen_lines)
{
	struct ch_config c;

	load_ok(&c, "[server]\nlisten = *:8080\nlisten = [::1]:8081\nlisten = 10.0.0.2:8082\n");
	ck_assert_int_eq(c.n_listen, 3);	/* default replaced, not added to */
	assert_v4(&c.listen[0], "0.0.0.0", 8080);
	assert_v6(&c.listen[1], "::1", 8081);
	assert_v4(&c.listen[2], "10.0.0.2", 8082);
	ck_assert_str_eq(c.listen[1].text, "[::1]:8081");

	/* The file's line may equal the default; it is still only one. */
	load_ok(&c, "[server]\nlisten = 127.0.0.1:8080\n");
	ck_assert_int_eq(c.n_listen, 1);

	char text[1024];
	size_t n = (size_t)snprintf(text, sizeof(text), "[server]\n");
	for (int i = 0; i < CH_MAX_LISTEN; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "listen = 10.0.0.1:%d\n",
				      9000 + i);
	load_ok(&c, text);
	ck_assert_int_eq(c.n_listen, CH_MAX_LISTEN);
	assert_v4(&c.listen[CH_MAX_LISTEN - 1], "10.0.0.1", 9000 + CH_MAX_LISTEN - 1);
	snprintf(text + n, sizeof(text) - n, "listen = 10.0.0.1:9999\n");
	load_bad(text, CH_MAX_LISTEN + 2, "too many listen lines", "at most 8");

	load_bad("[server]\nlisten = *:80\nworkers = 2\nlisten = 0.0.0.0:80\n", 4,
		 "listen", "same address");
}
END_TEST

START_TEST(test_structure_errors)
{
	load_bad("[server]\nworkers = 2\nworkers = 3\n", 3, "workers", "given twice");
	load_bad("[server]\nworkers = 2\n\n\nworkers = 2\n", 5, "first on line 2", NULL);
	load_bad("[server]\nfoo = 1\n", 2, "unknown key 'foo' in [server]", NULL);
	load_bad("[server]\nWorkers = 1\n", 2, "unknown key 'Workers'", NULL);
	load_bad("[server]\nworkers = 1\n[nosuch]\nx = 1\n", 3, "unknown section [nosuch]", NULL);
	/* An unknown section with nothing in it is still an error. */
	load_bad("[server]\n[nosuch]\n", 2, "unknown section [nosuch]", NULL);
	load_bad("workers = 2\n[server]\n", 1, "workers", "before any [section]");
	load_bad("[server\nworkers = 2\n", 1, "expected ']'", NULL);
	load_bad("[server]\nworkers 2\n", 2, "expected 'key = value'", NULL);
	load_bad("[server]\n# fine\njust some words\n", 3, "expected 'key = value'", NULL);
	load_bad("[server]\n= 3\n", 2, "unknown key ''", NULL);
	/* Only the first error counts. */
	load_bad("[server]\nworkers = 0\nfoo = 1\n", 2, "workers", NULL);

	/* Longer than inih's line buffer: refused, not split into two lines. */
	char text[600];
	char path[400];
	memset(path, 'a', sizeof(path) - 1);
	path[sizeof(path) - 1] = '\0';
	snprintf(text, sizeof(text), "[server]\n\ndata_dir = /%s\nworkers = 2\n", path);
	load_bad(text, 3, "line longer than", NULL);
}
END_TEST

/* inih reads lines into a 200-byte buffer: 198 characters, '\n', '\0'. */
START_TEST(test_line_length)
{
	enum { LIMIT = 198 };
	struct ch_config c;
	char text[512], line[LIMIT + 2];
	const char *key = "data_dir = /";

	memset(line, 'd', sizeof(line));
	memcpy(line, key, strlen(key));
	line[LIMIT] = '\0';
	snprintf(text, sizeof(text), "[server]\n%s\n", line);
	load_ok(&c, text);
	ck_assert_uint_eq(strlen(c.data_dir), LIMIT - strlen("data_dir = "));

	/* Leading blanks do not count: they are gone before inih sees the line. */
	snprintf(text, sizeof(text), "[server]\n    %s\n", line);
	load_ok(&c, text);

	memset(line, 'd', sizeof(line));
	memcpy(line, key, strlen(key));
	line[LIMIT + 1] = '\0';
	snprintf(text, sizeof(text), "[server]\n%s\nworkers = 1\n", line);
	load_bad(text, 2, "line longer than 198 characters", NULL);
}
END_TEST

START_TEST(test_comments)
{
	struct ch_config c;

	load_ok(&c,
		"\xEF\xBB\xBF# leading BOM, then a comment\n"
		"; another comment\n"
		"   # an indented comment\n"
		"\n"
		"[server]   ; the only section\n"
		"workers = 4 ; four workers\n"
		"   max_connections = 77\n"	/* indented: not a continuation */
		"data_dir = /a;b\n"		/* no blank before ';': part of the value */
		"web_root = /x#y\n"		/* '#' inside a value: part of it */
		"log_level = debug\t; tab before the comment\r\n"
		"access_log = /var/log/a b.log\n"
		"idle_timeout = 5m");		/* last line without newline */
	ck_assert_int_eq(c.workers, 4);
	ck_assert_int_eq(c.max_connections, 77);
	ck_assert_str_eq(c.data_dir, "/a;b");
	ck_assert_str_eq(c.web_root, "/x#y");
	ck_assert_int_eq(c.log_level, CH_LOG_DEBUG);
	ck_assert_str_eq(c.access_log, "/var/log/a b.log");
	ck_assert_uint_eq(c.idle_timeout_ms, 300000);

	/* An indented line with no '=' is an error, not a continuation. */
	load_bad("[server]\ndata_dir = /a\n   more\n", 3, "expected 'key = value'", NULL);
	/* Line numbers count comment and blank lines. */
	load_bad("# one\n\n; three\n[server]\n# five\nworkers = zero\n", 6, "workers", NULL);
}
END_TEST

/* Every key set away from its default, then dump, reload, compare. */
START_TEST(test_dump_round_trip)
{
	static const char *const texts[] = {
		"",
		"[server]\n"
		"listen = *:80\nlisten = [::1]:8443\nlisten = [2001:db8::1]:9\n"
		"workers = 7\ndata_dir = /srv/var\nweb_root = www2\n"
		"max_connections = 12345\nheader_timeout = 1500ms\nidle_timeout = 90\n"
		"shutdown_timeout = 0\nmax_body_size = 1536\nlog_level = error\n"
		"access_log = stderr\n",
		"[server]\nworkers = auto\nheader_timeout = 61s\nmax_body_size = 512M\n"
		"idle_timeout = 86400s\nlog_level = DEBUG\n",
	};

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		struct ch_config a, b;
		char *out;

		load_ok(&a, texts[i]);
		out = dump_to_string(&a);
		ch_config_defaults(&b);
		b.workers = 99;
		ck_assert_msg(ch_config_load_string(&b, "dump", out, err, sizeof(err)) == 0,
			      "dump does not load: %s\n%s", err, out);
		clear_path(&a);
		clear_path(&b);
		ck_assert_msg(memcmp(&a, &b, sizeof(a)) == 0, "round trip differs:\n%s", out);
		ck_assert_int_eq(b.n_listen, a.n_listen);
		for (int j = 0; j < a.n_listen; j++)
			ck_assert_str_eq(b.listen[j].text, a.listen[j].text);
		ck_assert_uint_eq(b.max_body_size, a.max_body_size);
		/* Every key is in the dump, as "name = ". */
		for (const char *const *k = ch_config_keys(); *k; k++) {
			char line[128];
			snprintf(line, sizeof(line), "\n%s = ", strchr(*k, '.') + 1);
			ck_assert_msg(strstr(out, line) != NULL, "%s missing from dump", *k);
		}
		free(out);
	}
}
END_TEST

START_TEST(test_dump_content)
{
	struct ch_config c;
	char *out;

	load_ok(&c, "[server]\nlisten = *:80\nlisten = [::1]:81\nidle_timeout = 120s\n"
		"max_body_size = 2048K\nworkers = 5\n");
	out = dump_to_string(&c);
	ck_assert_ptr_nonnull(strstr(out, "\n[server]\n"));
	ck_assert_ptr_nonnull(strstr(out, "\nlisten = *:80\nlisten = [::1]:81\n"));
	ck_assert_ptr_nonnull(strstr(out, "\nidle_timeout = 2m\n"));
	ck_assert_ptr_nonnull(strstr(out, "\nmax_body_size = 2M\n"));
	ck_assert_ptr_nonnull(strstr(out, "\nworkers = 5\n"));
	ck_assert_ptr_nonnull(strstr(out, "\nshutdown_timeout = 10s\n"));
	ck_assert_ptr_nonnull(strstr(out, "\nlog_level = info\n"));
	ck_assert_ptr_nonnull(strstr(out, "\nmax_connections = 10000\n"));
	ck_assert_ptr_nonnull(strstr(out, "1 to 1000000"));	/* ranges as comments */
	free(out);
}
END_TEST

START_TEST(test_shipped_conf)
{
	struct ch_config c, d;

	ch_config_defaults(&d);
	memset(&c, 0x11, sizeof(c));
	ck_assert_msg(ch_config_load(&c, SHIPPED_CONF, err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(c.path, SHIPPED_CONF);
	clear_path(&c);
	ck_assert_int_eq(memcmp(&c, &d, sizeof(c)), 0);

	/*
	 * Its "#key = value" lines, uncommented, must be the defaults, and
	 * every key must be there: the file documents what it claims.
	 */
	char *text = slurp(SHIPPED_CONF);
	char *p = text;
	while ((p = strstr(p, "\n#")) != NULL) {
		p++;
		if (p[1] >= 'a' && p[1] <= 'z' && strstr(p, " =") != NULL &&
		    strstr(p, " =") < strchr(p, '\n'))
			*p = ' ';
	}
	for (const char *const *k = ch_config_keys(); *k; k++) {
		char line[128];
		snprintf(line, sizeof(line), "\n %s =", strchr(*k, '.') + 1);
		ck_assert_msg(strstr(text, line) != NULL, "%s not in " SHIPPED_CONF, *k);
	}
	ck_assert_msg(ch_config_load_string(&c, "uncommented", text, err, sizeof(err)) == 0,
		      "%s", err);
	clear_path(&c);
	ck_assert_int_eq(memcmp(&c, &d, sizeof(c)), 0);
	free(text);
}
END_TEST

/* The man page documents every key as ".TP" then ".B <name>". */
START_TEST(test_man_page)
{
	char *text = slurp(SHIPPED_MAN);

	for (const char *const *k = ch_config_keys(); *k; k++) {
		char entry[128];
		snprintf(entry, sizeof(entry), "\n.TP\n.B %s\n", strchr(*k, '.') + 1);
		ck_assert_msg(strstr(text, entry) != NULL, "%s not in " SHIPPED_MAN, *k);
		snprintf(entry, sizeof(entry), "[%.*s]", (int)(strchr(*k, '.') - *k), *k);
		ck_assert_msg(strstr(text, entry) != NULL, "section %s not in man page", entry);
	}
	free(text);
}
END_TEST

START_TEST(test_files)
{
	struct ch_config c, before;
	char path[] = "/tmp/check_config_XXXXXX";
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	close(fd);

	/* A missing file. */
	ch_config_defaults(&c);
	before = c;
	ck_assert_int_eq(ch_config_load(&c, "/nonexistent/chatd.conf", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "/nonexistent/chatd.conf:0: cannot open: No such file or directory");
	ck_assert_int_eq(memcmp(&c, &before, sizeof(c)), 0);

	/* A directory opens but cannot be read. */
	ck_assert_int_eq(ch_config_load(&c, "/tmp", err, sizeof(err)), -1);
	ck_assert_msg(strncmp(err, "/tmp:0: cannot read", 19) == 0, "%s", err);
	ck_assert_int_eq(memcmp(&c, &before, sizeof(c)), 0);

	/* Loaded twice: the second starts from the defaults, not the first. */
	write_file(path, "[server]\nworkers = 2\ndata_dir = /first\n");
	ck_assert_msg(ch_config_load(&c, path, err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(c.path, path);
	ck_assert_int_eq(c.workers, 2);
	ck_assert_str_eq(c.data_dir, "/first");
	before = c;

	/* A bad file: error with the path and line; c as it was. */
	write_file(path, "[server]\nworkers = 3\ndata_dir = /second\nmax_body_size = 1\n");
	ck_assert_int_eq(ch_config_load(&c, path, err, sizeof(err)), -1);
	char prefix[64];
	snprintf(prefix, sizeof(prefix), "%s:4: max_body_size", path);
	ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "%s", err);
	ck_assert_int_eq(memcmp(&c, &before, sizeof(c)), 0);

	write_file(path, "[server]\nmax_connections = 5\n");
	ck_assert_msg(ch_config_load(&c, path, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(c.max_connections, 5);
	ck_assert_int_eq(c.workers, expected_workers());	/* back to auto */
	ck_assert_int_eq(c.workers_auto, 1);
	ck_assert_str_eq(c.data_dir, "./var");

	/* Same file twice gives the same bytes. */
	struct ch_config again;
	ch_config_defaults(&again);
	ck_assert_int_eq(ch_config_load(&again, path, err, sizeof(err)), 0);
	ck_assert_int_eq(memcmp(&c, &again, sizeof(c)), 0);
	unlink(path);
}
END_TEST

START_TEST(test_man_example_loads)
{
	struct ch_config c;

	/* The example in chatd.conf(5), EXAMPLES. */
	load_ok(&c,
		"[server]\n"
		"listen = *:8080\n"
		"listen = [::1]:8080\n"
		"workers = 4          ; one per core on this box\n"
		"log_level = debug\n"
		"max_body_size = 2M\n"
		"idle_timeout = 5m\n"
		"access_log = /var/log/chatd/access.log\n");
	ck_assert_int_eq(c.n_listen, 2);
	ck_assert_int_eq(c.workers, 4);
	load_bad("[server]\n\n\nmax_connections = 0\n", 4,
		 "max_connections = 0 is out of range (1 to 1000000)", NULL);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_keys);
	tcase_add_test(tc, test_parse_size);
	tcase_add_test(tc, test_parse_duration);
	tcase_add_test(tc, test_parse_bool);
	tcase_add_test(tc, test_parse_listen);
	tcase_add_test(tc, test_parse_listen_errors);
	tcase_add_test(tc, test_load_all_keys);
	tcase_add_test(tc, test_load_values);
	tcase_add_test(tc, test_value_errors);
	tcase_add_test(tc, test_listen_lines);
	tcase_add_test(tc, test_structure_errors);
	tcase_add_test(tc, test_line_length);
	tcase_add_test(tc, test_comments);
	tcase_add_test(tc, test_dump_round_trip);
	tcase_add_test(tc, test_dump_content);
	tcase_add_test(tc, test_shipped_conf);
	tcase_add_test(tc, test_man_page);
	tcase_add_test(tc, test_files);
	tcase_add_test(tc, test_man_example_loads);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(config_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
