/*
 * ctl.h - `cuffsim ctl`: a client for cuffsim's control socket, so nobody
 * needs socat (docs/cuffsim.md "Control socket").
 *
 *   cuffsim ctl (--dir DIR | --socket PATH) [--timeout S] [COMMAND WORDS...]
 *
 * With command words: they are joined with single spaces into one control
 * line, sent, and the reply line is printed. Without: control lines are read
 * from `in` one by one (blank lines and lines starting with '#' skipped),
 * each is sent and its reply printed before the next is sent, so replies
 * pair with lines.
 *
 * Exit status (returned, not exit()ed, so tests can call it): 0 every reply
 * was "ok ...", 1 cuffsim answered "error: ..." to at least one line, 2 bad
 * usage, no connection, or no reply within the timeout (message on `err`).
 *
 * Invariants: blocking I/O with a deadline per reply; nothing global is
 * touched (no getopt), so it may run any number of times in one process.
 */
#ifndef CUFFSIM_CTL_H
#define CUFFSIM_CTL_H

#include <stdio.h>

#define CTL_EXIT_OK 0
#define CTL_EXIT_REFUSED 1
#define CTL_EXIT_FAILED 2
#define CTL_DEFAULT_TIMEOUT_S 5.0

/* argv[0] is "ctl"; the options and command words follow. */
int cuffsim_ctl_main(int argc, char **argv, FILE *in, FILE *out, FILE *err);

#endif
