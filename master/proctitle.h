/*
 * Process titles, as nginx sets them: each chatd process shows what it is
 * in ps ("chatd: master", "chatd: worker 0", "chatd: journal"). The title
 * is written over the memory of argv, which is what ps reads from
 * /proc/PID/cmdline; the environment strings that follow argv are moved to
 * the heap first so the title may use their space too.
 */
#ifndef CH_PROCTITLE_H
#define CH_PROCTITLE_H

void ch_proctitle_init(int argc, char **argv);
void ch_proctitle_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
