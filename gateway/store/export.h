/*
 * export.h - ended sessions as JSON lines for clinic records, for
 * `bfr-gateway -c FILE --export-sessions OUT [--since TIME]`.
 *
 * One compact JSON object per line for each session that has an end time
 * and started at or after since_ms, oldest first. The format is
 * schemas/session-export.schema.json, described in docs/storage.md "Export":
 *   {"v":1, "gateway", "site", "session_id", "patient", "plan", "started_at",
 *    "ended_at", "outcome", "state",
 *    "events": [{"seq","type","ts","payload"}...] (seq order),
 *    "figures": [{"exercise","set","cuff","figures"}...],
 *    "alarms": [{alarm record..., "history": [{"state","condition_present",
 *               "acked_by","changed_at"}...]}...],
 *    "lop": [{"cuff","lop_mmHg","measured_at","source"}...]}
 * JSON columns (plan, state, payload, figures, values) are embedded as JSON,
 * not strings. Times are RFC 3339 UTC with milliseconds, as in the MQTT
 * payloads ("2026-11-24T09:30:00.123Z").
 *
 * "lop" says what each cuff's targets were based on: every LOP measured
 * during the session ("source":"session"); for a cuff of the plan without
 * one, the last LOP recorded for it at or before the session's start
 * ("before"); for a cuff with neither, lop_mmHg and measured_at null
 * ("none").
 *
 * Invariant: a session's line is built completely before any of it is
 * written, so a read error never leaves a partial line behind (the lines
 * already written stay). Reads the database on the calling thread (CLI /
 * start-up use only).
 */
#ifndef BFR_STORE_EXPORT_H
#define BFR_STORE_EXPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "store.h"

/* since_ms value that exports every ended session. */
#define EXPORT_SINCE_ALL INT64_MIN

/* Times an RFC 3339 stamp can carry: 0000-01-01T00:00:00.000Z .. 9999-12-31T23:59:59.999Z. */
#define EXPORT_TIME_MIN_MS (-62167219200000LL)
#define EXPORT_TIME_MAX_MS 253402300799999LL

struct export_options {
	const char *gateway_id; /* "gateway" of every line (config gateway.id) */
	const char *site;	/* "site" of every line (config gateway.site) */
	int64_t since_ms;	/* sessions started at or after; EXPORT_SINCE_ALL: all */
};

/*
 * Writes the ended sessions selected by opt to out; *count (may be NULL)
 * gets the number of lines. Returns 0, -EINVAL for a NULL argument, -EIO on
 * a write error, -EBADMSG when a stored JSON column does not parse, -ERANGE
 * when a stored time is outside what RFC 3339 can carry, -ENOMEM, or another
 * -errno from SQLite. *count is untouched on error.
 */
int store_export_sessions(struct store *store, const struct export_options *opt, FILE *out,
			  size_t *count);

/* Formats ms since the epoch as "2026-11-24T09:30:00.123Z" (24 characters
 * and a NUL). -ERANGE (out untouched) outside EXPORT_TIME_MIN_MS..MAX_MS. */
int export_format_time(int64_t ms, char out[32]);

/*
 * Parses an RFC 3339 date-time ("2026-11-24T09:30:00Z",
 * "2026-11-24T10:30:00.5+01:00"; 't' and 'z' also in lower case) into ms
 * since the epoch; fractions below a millisecond round up, so "at or after"
 * stays exact. -EINVAL when text is not one, with a reason in err (may be
 * NULL); *ms is untouched then.
 */
int export_parse_time(const char *text, int64_t *ms, char *err, size_t errlen);

#endif
