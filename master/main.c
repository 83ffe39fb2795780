/*
 * chatd's entry point: options, the configuration, then the master.
 */
#define _GNU_SOURCE
#include "common/log.h"
#include "common/version.h"
#include "master/config.h"
#include "master/master.h"
#include "master/proctitle.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: chatd [-c FILE] [-t | -T]\n"
		"A self-hosted chat server: HTTP/1.1 and WebSocket on one port.\n"
		"\n"
		"  -c, --config FILE   read the configuration from FILE\n"
		"                      (default: the embedded defaults, see chatd.conf(5))\n"
		"  -t, --test          check the configuration and exit: 0 valid, 1 not\n"
		"  -T, --test-print    check it and print the resolved settings\n"
		"      --repair        start even if the log is damaged before its end,\n"
		"                      cutting it at the damage (losing what follows)\n"
		"  -h, --help          show this help\n"
		"  -V, --version       show the version\n"
		"\n"
		"chatd stays in the foreground and logs to stderr.\n"
		"Signals: SIGTERM/SIGINT stop gracefully, SIGHUP re-reads the configuration.\n"
		"See chatd(8) and chatd.conf(5).\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "test", no_argument, NULL, 't' },
		{ "test-print", no_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "repair", no_argument, NULL, 'R' },
		{ 0 },
	};
	const char *path = NULL;
	int test = 0, print = 0, repair = 0, c;
	char pathbuf[CH_PATH_MAX];

	/* A child the master started by exec (after chatadm upgrade). */
	if (argc == 2 && strcmp(argv[1], "--child") == 0)
		return ch_master_exec_child(argc, argv);

	while ((c = getopt_long(argc, argv, "c:tThV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			snprintf(pathbuf, sizeof(pathbuf), "%s", optarg);
			path = pathbuf;
			break;
		case 't':
			test = 1;
			break;
		case 'T':
			test = print = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("chatd %s\n", CH_VERSION);
			return 0;
		case 'R':
			repair = 1;
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "chatd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}

	static struct ch_config cfg;
	char err[CH_CONFIG_ERR_MAX];
	ch_config_defaults(&cfg);
	if (path && ch_config_load(&cfg, path, err, sizeof(err)) < 0) {
		fprintf(stderr, "chatd: %s\n", err);
		if (test)
			fprintf(stderr, "chatd: configuration file %s test failed\n", path);
		return 1;
	}
	if (test) {
		if (print)
			ch_config_dump(&cfg, stdout);
		fprintf(stderr, "chatd: configuration %s%s test is successful\n",
			path ? "file " : "(embedded defaults)", path ? path : "");
		return 0;
	}
	ch_log_set_level((enum ch_log_level)cfg.log_level);
	ch_proctitle_init(argc, argv);
	return ch_master_run(&cfg, repair);
}
