/*
 * chatcli's commands: a typed line is a message to the current room,
 * "@user text" a direct message, or a /command from one table (name,
 * arguments, help, handler) that /help prints.
 */
#ifndef CH_CLI_CMD_H
#define CH_CLI_CMD_H

/* One line typed (or read from a script); NULL at the end of input. arg: the struct ch_cli. */
void ch_cli_on_line(char *line, void *arg);

#endif
