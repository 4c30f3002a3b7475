/* log.c - see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>

static enum log_level max_level = LOG_LEVEL_INFO;

void log_set_level(enum log_level level)
{
	max_level = level;
}

static const char *const level_names[] = { "error", "warning", "info", "debug" };

/* kind and id NULL: a line about the gateway itself. The attribute lets
 * clang's -Wformat-nonliteral see that fmt is checked at the callers. */
static void vlog(enum log_level level, const char *kind, const char *id, const char *fmt,
		 va_list ap) __attribute__((format(printf, 4, 0)));

static void vlog(enum log_level level, const char *kind, const char *id, const char *fmt,
		 va_list ap)
{
	char line[1024];

	vsnprintf(line, sizeof(line), fmt, ap);
	/* One fprintf per line so concurrent writers never interleave mid-line. */
	if (kind)
		fprintf(stderr, "bfr-gateway %s: %s %s: %s\n", level_names[level], kind, id, line);
	else
		fprintf(stderr, "bfr-gateway %s: %s\n", level_names[level], line);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level > max_level)
		return;
	va_start(ap, fmt);
	vlog(level, NULL, NULL, fmt, ap);
	va_end(ap);
}

void log_obj(enum log_level level, const char *kind, const char *id, const char *fmt, ...)
{
	va_list ap;

	if (level > max_level)
		return;
	va_start(ap, fmt);
	vlog(level, kind, id, fmt, ap);
	va_end(ap);
}

bool log_rate_allow(struct log_rate *r, uint64_t now_ms, uint64_t *suppressed)
{
	if (suppressed)
		*suppressed = 0;
	if (r->n == 0 || now_ms - r->window_start >= r->window_ms) {
		if (suppressed)
			*suppressed = r->suppressed;
		r->window_start = now_ms;
		r->n = 0;
		r->suppressed = 0;
	}
	if (r->n < r->burst) {
		r->n++;
		return true;
	}
	r->suppressed++;
	return false;
}
