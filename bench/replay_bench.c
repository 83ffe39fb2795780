/*
 * replay_bench: how fast the journal's log is written and replayed.
 *
 * Writes a log of message records with ~100-byte payloads (1 GiB by
 * default) into a fresh temporary directory, in batches the way the
 * journal's group commit would, then times:
 *   - write: encode + ch_log_append, and the final ch_log_sync separately;
 *   - recovery: ch_log_recover over the whole log, every record checked
 *     (CRC, length, position) and passed to a callback, as at startup;
 *   - reader: ch_log_reader from position 0 to the end (replication
 *     catch-up and history reads use this path).
 * Nothing is dropped from the page cache: this measures the CPU cost of
 * replay over cached data, which is what bounds a restart on a machine
 * with the log in memory. Wall time and CPU time (user + sys) are both
 * printed, because shared machines are noisy. Target: replay >= 500 MB/s.
 *
 * Not a unit test; build and run by hand:
 *   gcc -std=gnu11 -O2 -I. -o /tmp/replay_bench bench/replay_bench.c \
 *       journal/segment.c journal/record.c common/crc32c.c \
 *       common/failpoint.c common/log.c
 *   /tmp/replay_bench [-s MiB] [-d parent-dir] [-k]
 * -s: log size in MiB (default 1024); -d: where to make the temporary
 * directory (default /tmp); -k: keep the log afterwards.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "common/log.h"
#include "journal/record.h"
#include "journal/segment.h"

#define BENCH_DEFAULT_MIB 1024
#define BENCH_BATCH_BYTES ((size_t)256 << 10)	/* one group-commit batch */
#define BENCH_PAYLOAD 100			/* bytes of payload per record */
#define BENCH_ROOMS 1000
#define MIB (1024.0 * 1024.0)

struct clock_pair {
	double wall;	/* seconds, monotonic */
	double cpu;	/* seconds, user + sys of this process */
};

static struct clock_pair clock_now(void)
{
	struct timespec ts;
	struct rusage ru;
	struct clock_pair c;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	getrusage(RUSAGE_SELF, &ru);
	c.wall = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	c.cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
		(double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
	return c;
}

static void report(const char *what, struct clock_pair t0, struct clock_pair t1,
		   uint64_t bytes, uint64_t records)
{
	double wall = t1.wall - t0.wall, cpu = t1.cpu - t0.cpu;

	printf("%-10s %8.1f MiB in %6.3f s wall, %6.3f s cpu: %7.0f MB/s "
	       "(%6.0f MB per cpu-s), %5.2f M records/s\n", what,
	       (double)bytes / MIB, wall, cpu, (double)bytes / 1e6 / wall,
	       cpu > 0 ? (double)bytes / 1e6 / cpu : 0.0,
	       (double)records / 1e6 / wall);
}

/* One message record at pos: a client id and content, ~BENCH_PAYLOAD bytes. */
static size_t encode_message(uint8_t *out, size_t cap, uint64_t pos, uint64_t n)
{
	static const char text[] = "The quick brown fox jumps over the lazy dog; "
				   "pack my box with five dozen liquor jugs!!";
	struct ch_payload_writer w;
	struct ch_record r = {
		.type = CH_REC_MESSAGE, .epoch = 1, .pos = pos,
		.room = (uint32_t)(n % BENCH_ROOMS) + 1,
		.author = (uint32_t)(n % 7919) + 1,
		.room_seq = n / BENCH_ROOMS + 1, .ts_ms = 1700000000000ull + n,
	};
	char cid[24];
	size_t len = 0, cid_len;

	if (cap < CH_RECORD_HDR_SIZE)
		return 0;
	cid_len = (size_t)snprintf(cid, sizeof(cid), "%" PRIu64, n);
	/* Built in place after the header: no copy in ch_record_encode. */
	ch_payload_writer_init(&w, out + CH_RECORD_HDR_SIZE, cap - CH_RECORD_HDR_SIZE);
	ch_payload_put_bytes(&w, cid, cid_len);
	ch_payload_put_bytes(&w, text, BENCH_PAYLOAD - 8 - cid_len);
	if (ch_payload_writer_finish(&w, &len) != 0)
		return 0;
	r.payload = out + CH_RECORD_HDR_SIZE;
	r.payload_len = (uint32_t)len;
	return ch_record_encode(out, cap, &r);
}

static int write_log(const char *dir, uint64_t target, uint64_t *records)
{
	static uint8_t batch[BENCH_BATCH_BYTES];
	struct ch_log_writer *w;
	struct clock_pair t0, t1, t2;
	uint64_t n = 0;
	int rc = ch_log_writer_open(&w, dir, NULL);

	if (rc != 0)
		return rc;
	t0 = clock_now();
	while (ch_log_end(w) < target) {
		uint64_t pos = ch_log_end(w);
		size_t len = 0, k;

		while ((k = encode_message(batch + len, sizeof(batch) - len,
					   pos + len, n)) > 0) {
			len += k;
			n++;
		}
		rc = ch_log_append(w, batch, len);
		if (rc != 0)
			goto out;
	}
	t1 = clock_now();
	rc = ch_log_sync(w);
	t2 = clock_now();
	report("write", t0, t1, ch_log_end(w), n);
	report("+ fsync", t0, t2, ch_log_end(w), n);
	*records = n;
out:
	ch_log_writer_close(w);
	return rc;
}

struct replay_state {
	uint64_t records;
	uint64_t payload_bytes;
	uint64_t last_seq[BENCH_ROOMS + 1];	/* what a rebuild would track */
};

static int replay_record(const struct ch_record *rec, void *arg)
{
	struct replay_state *st = arg;

	if (rec->type == CH_REC_MESSAGE && rec->room <= BENCH_ROOMS)
		st->last_seq[rec->room] = rec->room_seq;
	st->payload_bytes += rec->payload_len;
	st->records++;
	return 0;
}

static int bench_recover(const char *dir, uint64_t want)
{
	static struct replay_state st;
	struct ch_log_recover_report rep;
	struct clock_pair t0, t1;
	int rc;

	t0 = clock_now();
	rc = ch_log_recover(dir, 0, replay_record, &st, &rep);
	t1 = clock_now();
	if (rc != 0 || st.records != want || rep.outcome != CH_LOG_CLEAN) {
		fprintf(stderr, "recovery: rc %d, %" PRIu64 " of %" PRIu64
			" records: %s\n", rc, st.records, want, rep.message);
		return rc != 0 ? rc : -EIO;
	}
	report("recovery", t0, t1, rep.end_pos, st.records);
	return 0;
}

static int bench_reader(const char *dir, uint64_t want)
{
	struct ch_log_reader *r;
	struct ch_record rec;
	struct clock_pair t0, t1;
	uint64_t n = 0;
	int rc;

	t0 = clock_now();
	rc = ch_log_reader_open(&r, dir, 0);
	if (rc != 0)
		return rc;
	while ((rc = ch_log_reader_next(r, &rec)) == 1)
		n++;
	t1 = clock_now();
	if (rc == 0 && n != want)
		rc = -EIO;
	if (rc == 0)
		report("reader", t0, t1, ch_log_reader_pos(r), n);
	ch_log_reader_close(r);
	return rc;
}

static void remove_log(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[PATH_MAX + 256];

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

int main(int argc, char **argv)
{
	const char *parent = "/tmp";
	uint64_t mib = BENCH_DEFAULT_MIB, records = 0;
	char top[PATH_MAX / 2], dir[PATH_MAX / 2 + 8];
	int opt, keep = 0, rc;

	while ((opt = getopt(argc, argv, "s:d:k")) != -1) {
		switch (opt) {
		case 's': mib = strtoull(optarg, NULL, 10); break;
		case 'd': parent = optarg; break;
		case 'k': keep = 1; break;
		default:
			fprintf(stderr, "usage: %s [-s MiB] [-d parent-dir] [-k]\n", argv[0]);
			return 2;
		}
	}
	snprintf(top, sizeof(top), "%s/chatd-replay-bench-XXXXXX", parent);
	if (mib == 0 || mkdtemp(top) == NULL) {
		fprintf(stderr, "bad size, or mkdtemp %s: %s\n", top, strerror(errno));
		return 1;
	}
	snprintf(dir, sizeof(dir), "%s/log", top);
	printf("log %s: %" PRIu64 " MiB of %d-byte-payload messages, crc32c %s\n",
	       dir, mib, BENCH_PAYLOAD,
	       ch_crc32c_hw_available() ? "sse4.2" : "table (no sse4.2)");
	rc = write_log(dir, mib << 20, &records);
	if (rc == 0)
		rc = bench_recover(dir, records);
	if (rc == 0)
		rc = bench_reader(dir, records);
	if (rc != 0)
		fprintf(stderr, "failed: %s\n", strerror(-rc));
	if (!keep) {
		remove_log(dir);
		rmdir(top);
	}
	return rc == 0 ? 0 : 1;
}
