/*
 * Formatting results: see report.h. The table and the JSON object carry
 * the same numbers; the JSON keys are what bench/run and the e2e test
 * read, so renaming one is an interface change (man/chatbench.1 lists them).
 */
#include "bench/chatbench/report.h"

#include <string.h>
#include <unistd.h>

#define NS_PER_MS	1e6
#define PCT_COUNT	5
static const double pcts[PCT_COUNT] = { 50, 90, 99, 99.9, 100 };
static const char *const pct_names[PCT_COUNT] = { "p50", "p90", "p99", "p99.9", "max" };

const char *ch_bench_scenario_name(enum ch_bench_scenario s)
{
	static const char *const names[] = { "fanout", "broadcast", "idle", "connect", "history" };
	return names[s];
}

static const char *work_name(const struct ch_bench_run *run)
{
	switch (run->o.scenario) {
	case CH_SCEN_CONNECT:
		return "connects";
	case CH_SCEN_HISTORY:
		return "responses";
	case CH_SCEN_IDLE:
		return "pongs";
	default:
		return "deliveries";
	}
}

uint64_t ch_bench_work(const struct ch_bench_run *run, const struct ch_bench_totals *tot)
{
	switch (run->o.scenario) {
	case CH_SCEN_CONNECT:
		return tot->connects;
	case CH_SCEN_HISTORY:
		return tot->responses;
	case CH_SCEN_IDLE:
		return tot->pongs;
	default:
		return tot->delivered;
	}
}

void ch_bench_sum(const struct ch_bench_run *run, struct ch_bench_totals *tot)
{
	memset(tot, 0, sizeof(*tot));
	for (unsigned i = 0; i < run->o.threads; i++) {
		const struct ch_bench_stats *st = &run->threads[i].st;
#define CH_X(name, text) tot->name += CH_BENCH_GET(st, name);
		CH_BENCH_COUNTERS(CH_X)
#undef CH_X
#define CH_X(name, text) tot->err_##name += CH_BENCH_GET(st, err_##name);
		CH_BENCH_ERRORS(CH_X)
#undef CH_X
		tot->open += CH_BENCH_GET(st, open);
		tot->opening += CH_BENCH_GET(st, opening);
		tot->in_flight += CH_BENCH_GET(st, in_flight);
	}
}

uint64_t ch_bench_errors(const struct ch_bench_totals *tot)
{
	uint64_t n = 0;
#define CH_X(name, text) n += tot->err_##name;
	CH_BENCH_ERRORS(CH_X)
#undef CH_X
	return n;
}

void ch_bench_print_header(FILE *f, const struct ch_bench_run *run)
{
	const struct ch_bench_opts *o = &run->o;

	fprintf(f, "chatbench %s, proto %s, server %s\n", ch_bench_scenario_name(o->scenario),
		o->proto == CH_PROTO_CHATD ? "chatd" : "raw", o->hostport);
	fprintf(f, "  %u connections, %u room%s (%u+ members each), %u thread%s",
		o->conns, o->rooms, o->rooms == 1 ? "" : "s", o->conns / o->rooms,
		o->threads, o->threads == 1 ? "" : "s");
	if (run->conns_per_addr)
		fprintf(f, ", from %u source addresses", (o->conns + run->conns_per_addr - 1) / run->conns_per_addr);
	fprintf(f, "\n  ramp-up %.1f s, measure %.1f s", o->ramp_ms / 1e3, o->duration_ms / 1e3);
	if (o->scenario == CH_SCEN_FANOUT) {
		if (o->rate > 0)
			fprintf(f, ", %.1f messages/s per room (open loop)", o->rate);
		else
			fprintf(f, ", as fast as possible (window %u per sender)", o->window);
	}
	if (o->scenario == CH_SCEN_FANOUT || o->scenario == CH_SCEN_BROADCAST)
		fprintf(f, ", %u-byte payloads", o->size);
	if (o->scenario == CH_SCEN_IDLE)
		fprintf(f, ", ping every %.1f s", o->ping_ms / 1e3);
	if (o->scenario == CH_SCEN_HISTORY) {
		if (o->rate > 0)
			fprintf(f, ", %.1f requests/s in all (open loop)", o->rate);
		else
			fprintf(f, ", closed loop");
		fprintf(f, ", limit %u", o->limit);
	}
	fprintf(f, "\n");
	if (o->npids) {
		fprintf(f, "  server pids");
		for (unsigned i = 0; i < o->npids; i++)
			fprintf(f, " %d", o->pids[i]);
		fprintf(f, " (with their children)\n");
	}
}

void ch_bench_progress(const struct ch_bench_run *run, double elapsed, const struct ch_bench_totals *now,
		       const struct ch_bench_totals *before)
{
	static const char *const phases[] = { "ramp-up", "measure", "drain", "done" };
	int phase = atomic_load_explicit(&run->phase, memory_order_relaxed);

	if (!isatty(STDERR_FILENO))
		return;
	fprintf(stderr, "\r\033[K[%5.1fs] %-7s open %llu/%u  sent %llu/s  %s %llu/s  errors %llu",
		elapsed, phases[phase], (unsigned long long)now->open, run->o.conns,
		(unsigned long long)(now->total_sent - before->total_sent), work_name(run),
		(unsigned long long)(ch_bench_work(run, now) - ch_bench_work(run, before)),
		(unsigned long long)ch_bench_errors(now));
	fflush(stderr);
}

static double per(double n, double d)
{
	return d > 0 ? n / d : 0;
}

void ch_bench_print_summary(FILE *f, const struct ch_bench_run *run, const struct ch_bench_result *res)
{
	const struct ch_bench_totals *t = &res->tot;
	uint64_t work = ch_bench_work(run, t);
	const char *unit = work_name(run);

	if (isatty(STDERR_FILENO))
		fprintf(stderr, "\r\033[K");
	fprintf(f, "\n  %-18s %llu of %u (at the start of measuring)\n", "connections open",
		(unsigned long long)res->open_at_run, run->o.conns);
	fprintf(f, "  %-18s %.2f s\n", "measured", res->secs);
	fprintf(f, "  %-18s %llu (%.1f/s)\n", "sent", (unsigned long long)t->sent, per((double)t->sent, res->secs));
	fprintf(f, "  %-18s %llu (%.1f/s)\n", unit, (unsigned long long)work, per((double)work, res->secs));
	if (run->o.scenario == CH_SCEN_FANOUT || run->o.scenario == CH_SCEN_BROADCAST) {
		fprintf(f, "  %-18s %llu\n", "lost", (unsigned long long)res->lost);
		fprintf(f, "  %-18s %llu\n", "duplicated", (unsigned long long)t->dup);
		fprintf(f, "  %-18s %llu\n", "seq gaps", (unsigned long long)t->gaps);
	}
	if (run->o.scenario == CH_SCEN_BROADCAST)
		fprintf(f, "  %-18s %llu (%llu timed out)\n", "rounds", (unsigned long long)res->rounds,
			(unsigned long long)res->round_timeouts);
	if (run->o.scenario == CH_SCEN_HISTORY && run->o.rate > 0)
		fprintf(f, "  %-18s %llu (due with no idle connection: sent late, or not at all)\n", "late",
			(unsigned long long)t->late);
	if (run->o.proto == CH_PROTO_CHATD && t->acks)
		fprintf(f, "  %-18s %llu\n", "acks", (unsigned long long)t->acks);
	if (res->hist.count) {
		fprintf(f, "  %-18s", "latency ms");
		for (int i = 0; i < PCT_COUNT; i++)
			fprintf(f, " %s %.3f ", pct_names[i], ch_hist_percentile(&res->hist, pcts[i]) / NS_PER_MS);
		fprintf(f, "(%llu samples%s)\n", (unsigned long long)res->hist.count,
			run->o.rate > 0 && (run->o.scenario == CH_SCEN_FANOUT || run->o.scenario == CH_SCEN_HISTORY) ?
			", from the intended send times" : "");
	}
	if (res->cpu >= 0) {
		fprintf(f, "  %-18s %.2f s (%u processes)", "server CPU", res->cpu, res->nproc);
		if (work)
			fprintf(f, ": %.0f %s per CPU-second", per((double)work, res->cpu), unit);
		fprintf(f, "\n");
	}
	if (run->o.scenario == CH_SCEN_IDLE && run->o.npids && res->open_at_run)
		fprintf(f, "  %-18s %.0f bytes per connection (%.1f MiB before, %.1f MiB open)\n",
			"server memory", ((double)res->rss_open - (double)res->rss_before) / (double)res->open_at_run,
			res->rss_before / 1048576.0, res->rss_open / 1048576.0);
	fprintf(f, "  %-18s", "errors");
	if (!ch_bench_errors(t))
		fprintf(f, " none");
#define CH_X(name, text) if (t->err_##name) fprintf(f, " %s %llu", #name, (unsigned long long)t->err_##name);
	CH_BENCH_ERRORS(CH_X)
#undef CH_X
	fprintf(f, "\n");
}

void ch_bench_print_json(FILE *f, const struct ch_bench_run *run, const struct ch_bench_result *res)
{
	const struct ch_bench_opts *o = &run->o;
	const struct ch_bench_totals *t = &res->tot;
	uint64_t work = ch_bench_work(run, t);

	fprintf(f, "{\"scenario\":\"%s\",\"proto\":\"%s\",\"server\":\"%s\",", ch_bench_scenario_name(o->scenario),
		o->proto == CH_PROTO_CHATD ? "chatd" : "raw", o->hostport);
	fprintf(f, "\"connections\":%u,\"rooms\":%u,\"threads\":%u,\"rate\":%g,\"window\":%u,\"size\":%u,",
		o->conns, o->rooms, o->threads, o->rate, o->window, o->size);
	fprintf(f, "\"open\":%llu,\"seconds\":%.3f,", (unsigned long long)res->open_at_run, res->secs);
#define CH_X(name, text) fprintf(f, "\"%s\":%llu,", #name, (unsigned long long)t->name);
	CH_BENCH_COUNTERS(CH_X)
#undef CH_X
	fprintf(f, "\"lost\":%llu,\"duplicated\":%llu,\"work\":\"%s\",\"per_second\":%.1f,",
		(unsigned long long)res->lost, (unsigned long long)t->dup, work_name(run),
		per((double)work, res->secs));
	fprintf(f, "\"deliveries_per_second\":%.1f,", per((double)t->delivered, res->secs));
	fprintf(f, "\"broadcast_rounds\":%llu,\"round_timeouts\":%llu,", (unsigned long long)res->rounds,
		(unsigned long long)res->round_timeouts);
	fprintf(f, "\"latency_ms\":{\"count\":%llu,\"mean\":%.4f", (unsigned long long)res->hist.count,
		ch_hist_mean(&res->hist) / NS_PER_MS);
	for (int i = 0; i < PCT_COUNT; i++)
		fprintf(f, ",\"%s\":%.4f", pct_names[i], ch_hist_percentile(&res->hist, pcts[i]) / NS_PER_MS);
	fprintf(f, "},");
	if (res->cpu >= 0)
		fprintf(f, "\"server_cpu_seconds\":%.3f,\"server_processes\":%u,\"per_cpu_second\":%.1f,",
			res->cpu, res->nproc, per((double)work, res->cpu));
	else
		fprintf(f, "\"server_cpu_seconds\":null,\"per_cpu_second\":null,");
	if (o->scenario == CH_SCEN_IDLE && o->npids && res->open_at_run)
		fprintf(f, "\"server_rss_before\":%llu,\"server_rss_open\":%llu,\"server_bytes_per_connection\":%.0f,",
			(unsigned long long)res->rss_before, (unsigned long long)res->rss_open,
			((double)res->rss_open - (double)res->rss_before) / (double)res->open_at_run);
	fprintf(f, "\"errors\":{");
	const char *sep = "";
#define CH_X(name, text) fprintf(f, "%s\"%s\":%llu", sep, #name, (unsigned long long)t->err_##name); sep = ",";
	CH_BENCH_ERRORS(CH_X)
#undef CH_X
	fprintf(f, "},\"error_total\":%llu}\n", (unsigned long long)ch_bench_errors(t));
}
