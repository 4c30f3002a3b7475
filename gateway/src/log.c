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

void log_msg(enum log_level level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (level > max_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One fprintf per line so concurrent writers never interleave mid-line. */
	fprintf(stderr, "bfr-gateway %s: %s\n", level_names[level], line);
}

void log_obj(enum log_level level, const char *kind, const char *id, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (level > max_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "bfr-gateway %s: %s %s: %s\n", level_names[level], kind, id, line);
}
