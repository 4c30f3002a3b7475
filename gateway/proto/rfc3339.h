/*
 * rfc3339.h - RFC 3339 date-times, the one text form of a time in every
 * MQTT payload (`ts`), prescription (`valid_from`, `valid_until`) and
 * export (`started_at`, `--since`).
 *
 * Written: always UTC with milliseconds, "2026-11-24T09:30:00.123Z".
 * Read: an RFC 3339 section 5.6 date-time: a time zone is required (Z or
 * +hh:mm / -hh:mm), 'T' and 'Z' in either case (section 5.6, NOTE), an
 * optional fraction of any length (digits below a millisecond round up, so
 * "at or after" and "before" bounds stay exact), a leap second (:60) counts
 * as the next minute's first. Years 0000..9999, in UTC after the offset.
 * Pure arithmetic (proleptic Gregorian calendar): no time zone database,
 * no libc time functions.
 */
#ifndef BFR_RFC3339_H
#define BFR_RFC3339_H

#include <stddef.h>
#include <stdint.h>

/* "2026-11-24T09:30:00.123Z" and its NUL fit with room to spare. */
#define RFC3339_BUF 32
/* 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z in ms since the epoch. */
#define RFC3339_MIN_MS (-62167219200000LL)
#define RFC3339_MAX_MS 253402300799999LL

/*
 * RFC3339_STRICT: the form the MQTT API's schemas allow (a command's
 * valid_from, valid_until): 'T' and 'Z' upper-case, a fraction of 1..9
 * digits, seconds 00..59 (no leap second).
 */
#define RFC3339_STRICT 0x1

/* Why a text is not a time: its shape, or a field out of its range. */
enum rfc3339_error {
	RFC3339_ERR_FORM = 1,
	RFC3339_ERR_RANGE,
};

/* Formats ms since the epoch (24 characters and a NUL). 0, or -ERANGE
 * outside RFC3339_MIN_MS..RFC3339_MAX_MS with out untouched. */
int rfc3339_format(int64_t ms, char out[RFC3339_BUF]);

/*
 * Parses text into ms since the epoch (flags: 0 or RFC3339_STRICT). 0 with *ms; -EINVAL with *ms
 * untouched, *kind (may be NULL) saying which kind of error and one
 * sentence in why (may be NULL) naming what is wrong, e.g. "month 13 is not
 * 01..12" or "no time zone: add Z for UTC or an offset like +01:00".
 */
int rfc3339_parse(const char *text, unsigned flags, int64_t *ms, enum rfc3339_error *kind,
		  char *why, size_t whylen);

#endif
