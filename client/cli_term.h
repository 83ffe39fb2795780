/*
 * chatcli's terminal side: reading lines from stdin (libedit line editing
 * and history when stdin is a terminal, plain lines otherwise, so chatcli
 * can be scripted through a pipe), printing lines without breaking the
 * line being edited, and asking for a password without echo.
 *
 * One terminal per process: the state is static here. Lines are handed to
 * the callback given to ch_term_init, NUL-terminated and without the
 * newline; the callback gets NULL once at the end of input.
 */
#ifndef CH_CLI_TERM_H
#define CH_CLI_TERM_H

#include <stdbool.h>

typedef void (*ch_term_line_fn)(char *line, void *arg);

/* Sets up stdin reading; on a terminal, line editing with prompt. */
void ch_term_init(const char *prompt, ch_term_line_fn fn, void *arg);

/* Restores the terminal. */
void ch_term_done(void);

/* Whether stdin is a terminal (line editing on). */
bool ch_term_is_tty(void);

/* Replaces the prompt (terminal only). */
void ch_term_set_prompt(const char *prompt);

/*
 * stdin is readable: read what is there and hand every complete line to
 * the callback (the last one, without a newline, at the end of input).
 */
void ch_term_read(void);

/* Hand over lines already read (after ch_term_password); true if any. */
bool ch_term_dispatch_buffered(void);

/* Whether the end of input was seen. */
bool ch_term_eof(void);

/* One line of output above the line being edited (adds the newline). */
void ch_term_print(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * A password: from /dev/tty without echo when stdin is a terminal, else
 * the first line of stdin (the rest stays buffered for ch_term_read).
 * Returns a malloc'd string, or NULL at the end of input / on error.
 */
char *ch_term_password(const char *prompt);

#endif
