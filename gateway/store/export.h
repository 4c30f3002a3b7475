/*
 * export.h - completed sessions as JSON lines, for
 * `bfr-gateway -c FILE --export-sessions OUT.jsonl`.
 *
 * One line per session that has an end time, oldest first:
 *   {"session_id", "patient", "plan", "started_ms", "ended_ms", "outcome",
 *    "state", "events": [{"seq","type","ts_ms","payload"}...] (seq order),
 *    "figures": [{"exercise","set","cuff","figures"}...],
 *    "alarms": [{alarm record..., "values", "history": [{"state",
 *               "condition_present","acked_by","changed_ms"}...]}...],
 *    "lop": [{"cuff","lop_mmHg","measured_ms"}...]}
 * JSON columns (plan, state, payload, figures, values) are embedded as JSON,
 * not strings. Times are wall-clock ms since the epoch, exactly as recorded.
 *
 * Reads the database on the calling thread (CLI / start-up use only).
 */
#ifndef BFR_STORE_EXPORT_H
#define BFR_STORE_EXPORT_H

#include <stddef.h>
#include <stdio.h>

#include "store.h"

/* Writes every completed session to out; *count (may be NULL) gets the
 * number of lines. Returns 0, -EIO on a write error, -EBADMSG when a stored
 * JSON column does not parse, -ENOMEM, or another -errno from SQLite. On
 * error, lines already written stay written. */
int store_export_sessions(struct store *store, FILE *out, size_t *count);

#endif
