/*
 * The master's admin socket (master/admin.h) and the master <-> worker
 * control channel (worker/handoff.h).
 *
 * Covered: splitting request lines (blanks, too many words, too long,
 * empty); finding commands, every row of admin/commands.h reachable and
 * unknown words refused; the peer check (root and our own uid only); the
 * fsync p99 from the shm histogram (empty, all in one bucket, a slow tail
 * over and under 1%); the stats section of every X-macro field (known
 * prefixes, and a field nobody claimed landing in "other"); the socket
 * file (mode 0660 whatever the umask, a stale file replaced, a live one
 * refusing a second master, removed at close); whole requests over the
 * socket driven through ch_admin_pollfds/ch_admin_process (help lists
 * every command, status and stats answer from shm, an unknown command and
 * an over-long line refused, check on a valid and an invalid file with
 * its file:line reason, a worker question answered by a fake worker over
 * the control channel); and the control channel itself (a message and its
 * payload round-trip, nothing waiting is -EAGAIN, a closed peer -EPIPE);
 * and the io_uring set-up explanations (each names its fix) and probe.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "admin/commands.h"
#include "master/admin.h"
#include "master/master.h"
#include "worker/handoff.h"

#define TEST_RINGS 16
#define TEST_SLOTS 16
#define TEST_SLOT_SIZE 64
#define TEST_TURNS 200		/* loop turns a request may take */

/* ---------------------------------------------------------------------- */
/* Pure helpers                                                           */

START_TEST(split_words)
{
	char line[] = "  rooms\t--top  5 \r\n";
	char *w[CH_ADMIN_MAX_WORDS];

	ck_assert_int_eq(ch_admin_split(line, w, CH_ADMIN_MAX_WORDS), 3);
	ck_assert_str_eq(w[0], "rooms");
	ck_assert_str_eq(w[1], "--top");
	ck_assert_str_eq(w[2], "5");

	char empty[] = "   \n";
	ck_assert_int_eq(ch_admin_split(empty, w, CH_ADMIN_MAX_WORDS), -1);

	char many[] = "a b c d";
	ck_assert_int_eq(ch_admin_split(many, w, 3), -1);

	char *longline = malloc(CH_ADMIN_REQUEST_MAX + 2);
	memset(longline, 'x', CH_ADMIN_REQUEST_MAX + 1);
	longline[CH_ADMIN_REQUEST_MAX + 1] = '\0';
	ck_assert_int_eq(ch_admin_split(longline, w, CH_ADMIN_MAX_WORDS), -1);
	free(longline);
}
END_TEST

START_TEST(find_commands)
{
	static const char *const words[] = {
#define ROW(name, args, help) #name,
		CH_ADMIN_COMMANDS(ROW)
#undef ROW
	};
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		ck_assert_int_eq(ch_admin_find(words[i]), (int)i);
	ck_assert_int_eq(ch_admin_find("statu"), -1);
	ck_assert_int_eq(ch_admin_find("STATUS"), -1);
	ck_assert_int_eq(ch_admin_find(""), -1);
}
END_TEST

START_TEST(peer_check)
{
	ck_assert(ch_admin_peer_allowed(0, 1000));
	ck_assert(ch_admin_peer_allowed(1000, 1000));
	ck_assert(!ch_admin_peer_allowed(1001, 1000));
	ck_assert(!ch_admin_peer_allowed(65534, 0));
	ck_assert(ch_admin_peer_allowed(0, 0));
}
END_TEST

START_TEST(fsync_p99)
{
	uint64_t b[CH_FSYNC_BUCKETS] = { 0 };

	ck_assert_uint_eq(ch_admin_fsync_p99_us(b, CH_FSYNC_BUCKETS), 0);
	b[3] = 500;		/* all under 800 us */
	ck_assert_uint_eq(ch_admin_fsync_p99_us(b, CH_FSYNC_BUCKETS), 800);
	b[0] = 9900;		/* 10400 samples, 500 of them slow: p99 is slow */
	ck_assert_uint_eq(ch_admin_fsync_p99_us(b, CH_FSYNC_BUCKETS), 800);
	b[0] = 99000;		/* 99500 samples, 500 slow (0.5%): p99 is fast */
	ck_assert_uint_eq(ch_admin_fsync_p99_us(b, CH_FSYNC_BUCKETS), 100);
	memset(b, 0, sizeof(b));
	b[CH_FSYNC_BUCKETS - 1] = 1;	/* the open-ended last bucket */
	ck_assert_uint_eq(ch_admin_fsync_p99_us(b, CH_FSYNC_BUCKETS),
			  100ull << (CH_FSYNC_BUCKETS - 1));
}
END_TEST

START_TEST(stat_sections)
{
	ck_assert_str_eq(ch_admin_stat_section("journal_appends"), "journal");
	ck_assert_str_eq(ch_admin_stat_section("connections"), "clients");
	ck_assert_str_eq(ch_admin_stat_section("responses_4xx"), "clients");
	ck_assert_str_eq(ch_admin_stat_section("requests_failed"), "clients");
	ck_assert_str_eq(ch_admin_stat_section("messages_in"), "messages");
	ck_assert_str_eq(ch_admin_stat_section("repl_lag_bytes"), "replication");
	ck_assert_str_eq(ch_admin_stat_section("zz_new_counter"), "other");
	/* Every field of the X-macro lands in a named section: "other" is for
	 * a field added to shm.h without a line in the section map. */
#define SEC(name, kind, help) \
	ck_assert_msg(strcmp(ch_admin_stat_section(#name), "other") != 0, \
		      "stat %s has no section", #name);
	CH_STATS_FIELDS(SEC)
#undef SEC
}
END_TEST

/* ---------------------------------------------------------------------- */
/* The socket, with a master that has shared memory but no children      */

static char dir[64];
static struct ch_config cfg;
static struct ch_master m;

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

static void master_setup(void)
{
	char path[128];

	snprintf(dir, sizeof(dir), "/tmp/check_admin.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/chatd.conf", dir);
	char text[512];
	snprintf(text, sizeof(text), "[server]\nworkers = 1\ndata_dir = %s\n", dir);
	write_file(path, text);
	char err[CH_CONFIG_ERR_MAX];
	ch_config_defaults(&cfg);
	ck_assert_int_eq(ch_config_load(&cfg, path, err, sizeof(err)), 0);
	memset(&m, 0, sizeof(m));
	m.cfg = &cfg;
	for (int i = 0; i < 1 + CH_MAX_WORKERS; i++)
		m.children[i].ctl_fd = -1;
	m.children[0].kind = CH_CHILD_JOURNAL;
	m.children[1].kind = CH_CHILD_WORKER;
	m.n_children = 2;
	ck_assert_int_eq(ch_shm_create(&m.shm, TEST_RINGS, TEST_SLOTS, TEST_SLOT_SIZE), 0);
}

static void master_teardown(void)
{
	char cmd[128];

	ch_admin_close(&m);
	for (int i = 0; i < m.n_children; i++)
		if (m.children[i].ctl_fd >= 0)
			close(m.children[i].ctl_fd);
	ch_shm_destroy(&m.shm);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static int connect_admin(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/chatd.sock", dir);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Drive the master's side until the answer is complete (chatd closes). */
static char *exchange(const char *req, void (*between)(void))
{
	int fd = connect_admin();
	static char answer[1 << 16];
	size_t len = 0;

	ck_assert_int_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	for (int turn = 0; turn < TEST_TURNS; turn++) {
		struct pollfd pfds[CH_ADMIN_POLLFDS];
		int n = ch_admin_pollfds(&m, pfds, CH_ADMIN_POLLFDS);
		int r = poll(pfds, (nfds_t)n, 10);
		ch_admin_process(&m, pfds, r > 0 ? n : 0);
		if (between)
			between();
		struct pollfd me = { .fd = fd, .events = POLLIN };
		if (poll(&me, 1, 0) > 0) {
			ssize_t got = read(fd, answer + len, sizeof(answer) - 1 - len);
			if (got <= 0)
				break;
			len += (size_t)got;
		}
	}
	close(fd);
	answer[len] = '\0';
	return answer;
}

START_TEST(socket_mode_and_stale)
{
	char path[128];
	struct stat st;

	snprintf(path, sizeof(path), "%s/chatd.sock", dir);
	/* A stale file (no one listening) is replaced. */
	write_file(path, "stale");
	mode_t old = umask(0);	/* the widest umask: the mode must not follow it */
	ck_assert_int_eq(ch_admin_open(&m), 0);
	umask(old);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_int_eq(st.st_mode & 0777, 0660);

	/* A second master finds this one answering and refuses. */
	struct ch_master other = m;
	other.admin = NULL;
	ck_assert_int_eq(ch_admin_open(&other), -1);
	free(other.admin);
	ck_assert_int_eq(stat(path, &st), 0);

	ch_admin_close(&m);
	ck_assert_int_eq(stat(path, &st), -1);
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

START_TEST(requests)
{
	ck_assert_int_eq(ch_admin_open(&m), 0);

	char *a = exchange("help\n", NULL);
#define HAS(name, args, help) ck_assert_ptr_nonnull(strstr(a, "\"command\":\"" #name "\""));
	CH_ADMIN_COMMANDS(HAS)
#undef HAS
	ck_assert_ptr_nonnull(strstr(a, "{\"ok\":true"));

	CH_STAT_SET(ch_shm_stats(&m.shm, CH_SHM_PROC_MASTER), connections, 7);
	a = exchange("status\n", NULL);
	ck_assert_ptr_nonnull(strstr(a, "\"ok\":true"));
	ck_assert_ptr_nonnull(strstr(a, "\"connections\":7"));
	ck_assert_ptr_nonnull(strstr(a, "\"workers\":1"));

	CH_STAT_SET(ch_shm_stats(&m.shm, CH_SHM_PROC_JOURNAL), journal_appends, 41);
	a = exchange("stats\n", NULL);
	ck_assert_ptr_nonnull(strstr(a, "\"journal\":{"));
	ck_assert_ptr_nonnull(strstr(a, "\"journal_appends\":41"));
	ck_assert_ptr_nonnull(strstr(a, "\"clients\":{"));
	ck_assert_ptr_nonnull(strstr(a, "\"replication\":{"));
	/* every X-macro field is printed */
#define FIELD(name, kind, help) ck_assert_ptr_nonnull(strstr(a, "\"" #name "\":"));
	CH_STATS_FIELDS(FIELD)
#undef FIELD

	a = exchange("frobnicate\n", NULL);
	ck_assert_ptr_nonnull(strstr(a, "\"ok\":false"));
	ck_assert_ptr_nonnull(strstr(a, "unknown command"));

	a = exchange("rooms --top zero\n", NULL);
	ck_assert_ptr_nonnull(strstr(a, "\"ok\":false"));

	char *big = malloc(CH_ADMIN_REQUEST_MAX + 16);
	memset(big, 'x', CH_ADMIN_REQUEST_MAX + 8);
	big[CH_ADMIN_REQUEST_MAX + 8] = '\0';
	a = exchange(big, NULL);
	free(big);
	ck_assert_ptr_nonnull(strstr(a, "longer than"));
}
END_TEST

START_TEST(check_config)
{
	char path[128];

	ck_assert_int_eq(ch_admin_open(&m), 0);
	char *a = exchange("check\n", NULL);
	ck_assert_ptr_nonnull(strstr(a, "\"valid\":true"));

	snprintf(path, sizeof(path), "%s/chatd.conf", dir);
	write_file(path, "[server]\nworkers = 1\n\nmax_connections = lots\n");
	a = exchange("check\n", NULL);
	ck_assert_ptr_nonnull(strstr(a, "\"ok\":false"));
	char where[160];
	snprintf(where, sizeof(where), "%s:4: ", path);
	ck_assert_msg(strstr(a, where), "no file:line in %s", a);
	/* check never applies anything */
	ck_assert_int_eq(cfg.workers, 1);
	ck_assert_int_eq(cfg.max_connections, 10000);
}
END_TEST

/* A fake worker 0: answers the master's question over the channel. */
static int fake_worker = -1;

static void fake_worker_turn(void)
{
	static char buf[CH_CTL_MSG_MAX];
	struct ch_ctl_hdr h;
	long n = ch_ctl_recv(fake_worker, &h, buf, sizeof(buf));

	if (n < 0)
		return;
	ck_assert_uint_eq(h.type, CH_CTL_USERS);
	static const char users[] = "[{\"user\":\"alice\",\"rooms\":2},{\"user\":\"alice\",\"rooms\":1},"
				    "{\"user\":\"bob\",\"rooms\":0}]";
	ck_assert_int_eq(ch_ctl_send(fake_worker, h.type | CH_CTL_ANSWER, h.id, users,
				     sizeof(users) - 1, 0), 0);
}

START_TEST(worker_question)
{
	ck_assert_int_eq(ch_admin_open(&m), 0);
	ck_assert_int_eq(ch_ctl_pair(&m.children[1].ctl_fd, &fake_worker), 0);
	m.children[1].pid = getpid();	/* "running": any live pid will do */
	char *a = exchange("users\n", fake_worker_turn);
	m.children[1].pid = 0;
	close(fake_worker);
	ck_assert_ptr_nonnull(strstr(a, "\"ok\":true"));
	ck_assert_ptr_nonnull(strstr(a, "{\"user\":\"alice\",\"connections\":2,\"rooms\":2}"));
	ck_assert_ptr_nonnull(strstr(a, "{\"user\":\"bob\",\"connections\":1,\"rooms\":0}"));
	ck_assert_ptr_null(strstr(a, "missing"));
}
END_TEST

START_TEST(control_channel)
{
	int a, b;
	struct ch_ctl_hdr h;
	char buf[256];

	ck_assert_int_eq(ch_ctl_pair(&a, &b), 0);
	ck_assert_int_eq(ch_ctl_recv(b, &h, buf, sizeof(buf)), -EAGAIN);
	ck_assert_int_eq(ch_ctl_send(a, CH_CTL_KICK, 42, "alice", 5, 0), 0);
	ck_assert_int_eq(ch_ctl_send(a, CH_CTL_REOPEN, 43, NULL, 0, 1), 0);
	ck_assert_int_eq(ch_ctl_recv(b, &h, buf, sizeof(buf)), 5);
	ck_assert_uint_eq(h.type, CH_CTL_KICK);
	ck_assert_uint_eq(h.id, 42);
	ck_assert_mem_eq(buf, "alice", 5);
	ck_assert_int_eq(ch_ctl_recv(b, &h, buf, sizeof(buf)), 0);
	ck_assert_uint_eq(h.id, 43);
	ck_assert_uint_eq(h.truncated, 1);
	/* a message larger than the receiver's buffer is refused, not cut */
	char big[512];
	memset(big, 'x', sizeof(big));
	ck_assert_int_eq(ch_ctl_send(a, CH_CTL_USERS, 44, big, sizeof(big), 0), 0);
	ck_assert_int_eq(ch_ctl_recv(b, &h, buf, sizeof(buf)), -EPROTO);
	close(a);
	ck_assert_int_eq(ch_ctl_recv(b, &h, buf, sizeof(buf)), -EPIPE);
	close(b);
}
END_TEST

/* What ch_uring_explain writes to stderr for err. */
static char *explained(int err)
{
	static char text[4096];
	char path[] = "/tmp/check_admin_err.XXXXXX";
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);

	ck_assert_int_ge(fd, 0);
	dup2(fd, STDERR_FILENO);
	ch_uring_explain(err);
	dup2(saved, STDERR_FILENO);
	close(saved);
	ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
	text[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(path);
	return text;
}

START_TEST(uring_explain)
{
	char *t = explained(-ENOMEM);
	ck_assert_ptr_nonnull(strstr(t, "io_uring_queue_init: Cannot allocate memory"));
	/* the fix is named: the limit's value and where to raise it */
	ck_assert_msg(strstr(t, "RLIMIT_MEMLOCK is") || strstr(t, "out of memory"), "%s", t);
	t = explained(-EPERM);
	ck_assert_ptr_nonnull(strstr(t, "Operation not permitted"));
	ck_assert_msg(strstr(t, "kernel.io_uring_disabled") || strstr(t, "seccomp"), "%s", t);
	t = explained(-ENOSYS);
	ck_assert_ptr_nonnull(strstr(t, "Linux 5.19"));
	/* this machine runs io_uring: the probe passes */
	ck_assert_int_eq(ch_uring_probe(), 0);
}
END_TEST

static Suite *admin_suite(void)
{
	Suite *s = suite_create("admin");
	TCase *pure = tcase_create("helpers");
	tcase_add_test(pure, split_words);
	tcase_add_test(pure, find_commands);
	tcase_add_test(pure, peer_check);
	tcase_add_test(pure, fsync_p99);
	tcase_add_test(pure, stat_sections);
	tcase_add_test(pure, control_channel);
	tcase_add_test(pure, uring_explain);
	suite_add_tcase(s, pure);

	TCase *sock = tcase_create("socket");
	tcase_add_checked_fixture(sock, master_setup, master_teardown);
	tcase_add_test(sock, socket_mode_and_stale);
	tcase_add_test(sock, requests);
	tcase_add_test(sock, check_config);
	tcase_add_test(sock, worker_question);
	tcase_set_timeout(sock, 30);
	suite_add_tcase(s, sock);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(admin_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
