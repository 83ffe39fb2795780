/*
 * The admin commands, listed once (HAProxy's cli.c way): each row has the
 * command's word, its argument synopsis, its help line and whether it
 * changes anything. The master's admin socket (master/admin.c) builds its
 * dispatch table from it, each row's handler being ch_admin_do_<name>;
 * chatadm (admin/chatadm.c) prints `help` and its usage from it and checks
 * the words before it connects; scripts/check-man checks that chatadm(8)
 * has an entry for every row. Adding a command is adding a row here and its
 * handler in master/admin.c.
 *
 * X(name, args, help)
 *   name  the command word, also the C identifier of its handler
 *   args  synopsis of the arguments ("" for none), as in the man page
 *   help  one line
 *
 * The wire protocol (one request, one answer, then the server closes):
 *   request  one line: the words, separated by single spaces, ending in
 *            "\n", at most CH_ADMIN_REQUEST_MAX bytes
 *   answer   one JSON object: {"ok":true,...} or
 *            {"ok":false,"error":"reason"}
 */
#ifndef CH_ADMIN_COMMANDS_H
#define CH_ADMIN_COMMANDS_H

#define CH_ADMIN_REQUEST_MAX 4096
#define CH_ADMIN_MAX_WORDS 8

#define CH_ADMIN_COMMANDS(X) \
	X(help, "", "list the commands") \
	X(status, "", "version, uptime, role, workers and connections") \
	X(stats, "", "counters by section: server, clients, memory, messages, journal, replication, workers") \
	X(workers, "", "one line per worker: pid, state, connections, messages, CPU, RSS") \
	X(rooms, "[--top N]", "rooms with members online, busiest first") \
	X(users, "", "users online, with their connection count") \
	X(top, "", "a live view refreshed every second (chatadm samples stats and workers)") \
	X(kick, "USER", "close every connection of USER") \
	X(check, "", "validate the configuration file without applying it") \
	X(reload, "", "re-read the configuration and apply it; prints what changed") \
	X(reopen, "", "reopen log files (after logrotate moved them)") \
	X(promote, "", "promote this standby: SIGUSR2 to the journal, wait for the new role") \
	X(upgrade, "", "replace every child by the binary now installed, keeping all connections") \
	X(rm, "FILE_ID", "remove an uploaded file: journalled, then deleted from the store") \
	X(stop, "[--timeout S]", "stop chatd gracefully, waiting up to S seconds")

#endif
