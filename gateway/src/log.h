/*
 * log.h - one-line log messages on stderr ("<level> message"), which
 * journald (or the terminal) records with its own timestamps. Logging never
 * blocks on anything but the stderr write itself.
 */
#ifndef BFR_LOG_H
#define BFR_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_LEVEL_ERROR = 0, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

void log_set_level(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*
 * "<kind> <id>: message": the object names itself, so call sites never
 * write the prefix by hand. Modules wrap it (cuff_log, run_log).
 */
void log_obj(enum log_level level, const char *kind, const char *id, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * At most `burst` lines per `window_ms` for one kind of line: a flood of
 * refused commands must not drown the alarm lines. log_rate_allow() says
 * whether to log now; when a new window opens, *suppressed (may be NULL)
 * gets how many lines the last one swallowed (to say so once).
 */
struct log_rate {
	uint64_t window_ms;
	unsigned burst;
	uint64_t window_start;
	unsigned n;
	uint64_t suppressed;
};

bool log_rate_allow(struct log_rate *r, uint64_t now_ms, uint64_t *suppressed);

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
