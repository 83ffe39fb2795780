/*
 * chatcli's terminal: see cli_term.h. On a terminal, libedit's readline
 * interface in callback mode, so the main loop can poll the socket and
 * stdin together; elsewhere, lines split out of plain reads.
 *
 * Invariant: in plain mode, in[0..in_len) holds bytes read from stdin that
 * do not yet form a complete line handed to the callback.
 */
#include "client/cli_term.h"

#include <editline/readline.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "common/buf.h"

#define CH_TERM_READ_CHUNK 4096
#define CH_TERM_MAX_PASSWORD 1024	/* longer than PROTOCOL.md's 256 */
#define CH_TERM_MAX_PROMPT 128

static struct {
	bool tty;
	bool editing;		/* the libedit callback handler is installed */
	bool eof;
	bool in_handler;	/* inside the line callback (libedit mid-line) */
	char prompt[CH_TERM_MAX_PROMPT];
	ch_term_line_fn fn;
	void *arg;
	struct ch_buf in;	/* plain mode: bytes not yet handed over */
} ch_term;

/* libedit hands over a malloc'd line (NULL at the end of input). */
static void ch_term_on_line(char *line)
{
	if (line == NULL) {
		ch_term.eof = true;
		/* Leave the prompt line before anything else is printed. */
		putchar('\n');
		rl_callback_handler_remove();
		ch_term.editing = false;
		ch_term.fn(NULL, ch_term.arg);
		return;
	}
	if (line[0] != '\0')
		add_history(line);
	ch_term.in_handler = true;
	ch_term.fn(line, ch_term.arg);
	ch_term.in_handler = false;
	free(line);
	/*
	 * libedit starts the next line only when the next key arrives, and
	 * until then redraws the line just accepted; installing the handler
	 * again starts a fresh line (and draws the prompt) now.
	 */
	if (ch_term.editing)
		rl_callback_handler_install(ch_term.prompt, ch_term_on_line);
}

void ch_term_init(const char *prompt, ch_term_line_fn fn, void *arg)
{
	ch_term.fn = fn;
	ch_term.arg = arg;
	ch_term.tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
	/* ch_term.in may already hold lines read after a password. */
	/* Scripts read our output through a pipe: one line at a time. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	snprintf(ch_term.prompt, sizeof(ch_term.prompt), "%s", prompt);
	if (ch_term.tty) {
		rl_callback_handler_install(prompt, ch_term_on_line);
		ch_term.editing = true;
	}
}

void ch_term_done(void)
{
	if (ch_term.editing) {
		rl_callback_handler_remove();
		putchar('\n');	/* leave the prompt line */
	}
	ch_term.editing = false;
	ch_buf_free(&ch_term.in);
}

bool ch_term_is_tty(void)
{
	return ch_term.tty;
}

bool ch_term_eof(void)
{
	return ch_term.eof;
}

void ch_term_set_prompt(const char *prompt)
{
	snprintf(ch_term.prompt, sizeof(ch_term.prompt), "%s", prompt);
	if (!ch_term.editing || ch_term.in_handler)
		return;	/* in the handler: the fresh line after it shows the prompt */
	rl_set_prompt(prompt);
	fputs("\r\033[K", stdout);	/* the old prompt, which may be longer */
	fflush(stdout);
	rl_forced_update_display();
}

/* Cut the first complete line out of in; NULL when there is none. */
static char *ch_term_take_line(bool at_eof)
{
	char *nl, *line;
	size_t n;

	nl = ch_term.in.len ? memchr(ch_term.in.p, '\n', ch_term.in.len) : NULL;
	if (nl == NULL && !(at_eof && ch_term.in.len > 0))
		return NULL;
	n = nl ? (size_t)(nl - ch_term.in.p) : ch_term.in.len;
	line = malloc(n + 1);
	if (line == NULL)
		return NULL;
	memcpy(line, ch_term.in.p, n);
	line[n] = '\0';
	if (n > 0 && line[n - 1] == '\r')
		line[n - 1] = '\0';
	n += nl ? 1 : 0;
	memmove(ch_term.in.p, ch_term.in.p + n, ch_term.in.len - n);
	ch_term.in.len -= n;
	return line;
}

/* One read into in; 1 with bytes, 0 at the end of input, -1 on error. */
static int ch_term_fill(void)
{
	ssize_t n;

	if (ch_buf_reserve(&ch_term.in, CH_TERM_READ_CHUNK) < 0)
		return -1;
	do {
		n = read(STDIN_FILENO, ch_term.in.p + ch_term.in.len, CH_TERM_READ_CHUNK);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN ? 1 : -1;
	ch_term.in.len += (size_t)n;
	return n > 0;
}

bool ch_term_dispatch_buffered(void)
{
	char *line;
	bool any = false;

	while (!ch_term.eof && (line = ch_term_take_line(false)) != NULL) {
		ch_term.fn(line, ch_term.arg);
		free(line);
		any = true;
	}
	return any;
}

void ch_term_read(void)
{
	char *line;
	int r;

	if (ch_term.eof)
		return;
	if (ch_term.editing) {
		rl_callback_read_char();
		return;
	}
	r = ch_term_fill();
	ch_term_dispatch_buffered();
	if (r > 0 || ch_term.eof)
		return;
	/* End of input (or a read error, treated alike): the last line, then NULL. */
	line = ch_term_take_line(true);
	if (line != NULL) {
		ch_term.fn(line, ch_term.arg);
		free(line);
	}
	ch_term.eof = true;
	ch_term.fn(NULL, ch_term.arg);
}

void ch_term_print(const char *fmt, ...)
{
	va_list ap;

	if (ch_term.editing && !ch_term.in_handler)
		fputs("\r\033[K", stdout);	/* over the prompt and the line being edited */
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	if (ch_term.editing && !ch_term.in_handler)
		rl_forced_update_display();
}

/* Read a line from fd with echo off (it is a terminal). */
static char *ch_term_read_noecho(int fd, const char *prompt)
{
	struct termios old, quiet;
	char buf[CH_TERM_MAX_PASSWORD + 1];
	size_t n = 0;
	ssize_t r;
	char c;

	if (tcgetattr(fd, &old) < 0)
		return NULL;
	quiet = old;
	quiet.c_lflag &= (tcflag_t) ~(ECHO | ECHONL);
	quiet.c_lflag |= ICANON;
	if (write(fd, prompt, strlen(prompt)) < 0 || tcsetattr(fd, TCSAFLUSH, &quiet) < 0)
		return NULL;
	for (;;) {
		r = read(fd, &c, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || c == '\n' || c == '\r')
			break;
		if (n < CH_TERM_MAX_PASSWORD)
			buf[n++] = c;
	}
	tcsetattr(fd, TCSAFLUSH, &old);
	if (write(fd, "\n", 1) < 0) {
		/* Only the cursor's place is at stake. */
	}
	if (r <= 0 && n == 0)
		return NULL;
	buf[n] = '\0';
	return strdup(buf);
}

char *ch_term_password(const char *prompt)
{
	char *line;
	int fd, r;

	if (isatty(STDIN_FILENO)) {
		fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
		if (fd < 0)
			return NULL;
		line = ch_term_read_noecho(fd, prompt);
		close(fd);
		return line;
	}
	/* Not a terminal: the first line of stdin, read through the line buffer. */
	while ((line = ch_term_take_line(false)) == NULL) {
		r = ch_term_fill();
		if (r <= 0)
			return ch_term_take_line(true);
	}
	return line;
}
