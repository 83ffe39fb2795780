/*
 * /proc readings: see proc.h. The trees are found again at each reading,
 * so a worker restarted during the run is counted from then on (and the
 * time of one that died and was reaped moves into its parent's cutime,
 * which is counted too).
 */
#include "bench/chatbench/proc.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_TREE	256	/* processes followed per reading */
#define STAT_CAP	1024

/* The fields after "pid (comm) " of /proc/PID/stat: f[0] = state, f[1] = ppid ... */
static int stat_fields(int pid, unsigned long long *f, int nf)
{
	char path[64], buf[STAT_CAP];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	FILE *fp = fopen(path, "re");
	if (!fp)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = 0;
	char *p = strrchr(buf, ')');	/* comm may hold spaces and parentheses */
	if (!p)
		return -1;
	p += 2;
	for (int i = 0; i < nf; i++) {
		char *end;
		if (i == 0) {	/* the state letter */
			f[0] = (unsigned long long)*p;
			p = strchr(p, ' ');
			if (!p)
				return -1;
			p++;
			continue;
		}
		f[i] = strtoull(p, &end, 10);
		if (end == p)
			return -1;
		p = end + (*end == ' ');
	}
	return 0;
}

/* The given pids and every descendant: scans /proc until nothing is added. */
static unsigned tree(const int *pids, unsigned npids, int *out)
{
	unsigned n = 0;
	for (unsigned i = 0; i < npids && n < MAX_TREE; i++)
		out[n++] = pids[i];
	for (unsigned before = 0; before != n;) {
		before = n;
		DIR *d = opendir("/proc");
		if (!d)
			return n;
		struct dirent *e;
		while ((e = readdir(d)) && n < MAX_TREE) {
			if (!isdigit((unsigned char)e->d_name[0]))
				continue;
			int pid = atoi(e->d_name);
			unsigned long long f[2];
			if (stat_fields(pid, f, 2) < 0)
				continue;
			int known = 0, parent = 0;
			for (unsigned k = 0; k < n; k++) {
				known |= out[k] == pid;
				parent |= (unsigned long long)out[k] == f[1];
			}
			if (parent && !known)
				out[n++] = pid;
		}
		closedir(d);
	}
	return n;
}

double ch_bench_proc_cpu(const int *pids, unsigned npids)
{
	int t[MAX_TREE];
	unsigned n = tree(pids, npids, t);
	long hz = sysconf(_SC_CLK_TCK);
	unsigned long long ticks = 0;
	int any = 0;

	for (unsigned i = 0; i < n; i++) {
		unsigned long long f[15];
		if (stat_fields(t[i], f, 15) < 0)
			continue;
		any = 1;
		ticks += f[11] + f[12] + f[13] + f[14];	/* utime stime cutime cstime */
	}
	return any ? (double)ticks / (double)(hz > 0 ? hz : 100) : -1.0;
}

uint64_t ch_bench_proc_rss(const int *pids, unsigned npids)
{
	int t[MAX_TREE];
	unsigned n = tree(pids, npids, t);
	uint64_t bytes = 0;
	long page = sysconf(_SC_PAGESIZE);

	for (unsigned i = 0; i < n; i++) {
		char path[64];
		unsigned long long size, resident;
		snprintf(path, sizeof(path), "/proc/%d/statm", t[i]);
		FILE *fp = fopen(path, "re");
		if (!fp)
			continue;
		if (fscanf(fp, "%llu %llu", &size, &resident) == 2)
			bytes += resident * (uint64_t)page;
		fclose(fp);
	}
	return bytes;
}

unsigned ch_bench_proc_count(const int *pids, unsigned npids)
{
	int t[MAX_TREE];
	return npids ? tree(pids, npids, t) : 0;
}
