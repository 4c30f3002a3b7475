/* rfc3339.c - see rfc3339.h. */
#include "rfc3339.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static bool leap_year(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int year, int month)
{
	static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	return month == 2 && leap_year(year) ? 29 : days[month - 1];
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; eras of 400 years). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* The inverse of days_from_civil. */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

int rfc3339_format(int64_t ms, char out[RFC3339_BUF])
{
	int64_t days, rem, year;
	int mon, mday;

	if (ms < RFC3339_MIN_MS || ms > RFC3339_MAX_MS)
		return -ERANGE;
	/* Floor division: -1 ms is 1969-12-31T23:59:59.999Z. */
	days = ms / 86400000;
	rem = ms % 86400000;
	if (rem < 0) {
		rem += 86400000;
		days--;
	}
	civil_from_days(days, &year, &mon, &mday);
	/* Every field is bounded above, so the text is always 24 characters; the
	 * casts tell the compiler so (-Wformat-truncation). */
	snprintf(out, RFC3339_BUF, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ", (unsigned)year % 10000u,
		 (unsigned)mon % 100u, (unsigned)mday % 100u, (unsigned)(rem / 3600000),
		 (unsigned)(rem / 60000 % 60), (unsigned)(rem / 1000 % 60), (unsigned)(rem % 1000));
	return 0;
}

/* Where a refusal's sentence goes. */
struct reason {
	enum rfc3339_error *kind;
	char *why;
	size_t whylen;
};

__attribute__((format(printf, 3, 4))) static int fail(const struct reason *r,
						       enum rfc3339_error kind, const char *fmt, ...)
{
	va_list ap;

	if (r->kind)
		*r->kind = kind;
	if (r->why && r->whylen > 0) {
		va_start(ap, fmt);
		vsnprintf(r->why, r->whylen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* Exactly n decimal digits at *p; advances *p past them. Stops at the NUL. */
static bool take_digits(const char **p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		char c = (*p)[i];

		if (c < '0' || c > '9')
			return false;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*out = v;
	return true;
}

/* One character of set at *p; advances *p past it. */
static bool take_char(const char **p, const char *set)
{
	if (**p == '\0' || !strchr(set, **p))
		return false;
	(*p)++;
	return true;
}

int rfc3339_parse(const char *text, unsigned flags, int64_t *ms, enum rfc3339_error *kind,
		  char *why, size_t whylen)
{
	static const char shape[] =
		"expected YYYY-MM-DDTHH:MM:SS[.fff] followed by Z or an offset like +01:00";
	const struct reason r = { kind, why, whylen };
	const bool strict = flags & RFC3339_STRICT;
	int year, mon, mday, hour, min, sec, off_h = 0, off_m = 0, sign = 0, frac_ms = 0, i;
	bool below_ms = false;
	const char *p = text;
	int64_t v;

	if (!text || !ms)
		return fail(&r, RFC3339_ERR_FORM, "no time given");
	if (!take_digits(&p, 4, &year) || !take_char(&p, "-") || !take_digits(&p, 2, &mon) ||
	    !take_char(&p, "-") || !take_digits(&p, 2, &mday) || !take_char(&p, strict ? "T" : "Tt") ||
	    !take_digits(&p, 2, &hour) || !take_char(&p, ":") || !take_digits(&p, 2, &min) ||
	    !take_char(&p, ":") || !take_digits(&p, 2, &sec))
		return fail(&r, RFC3339_ERR_FORM, "%s", shape);
	if (take_char(&p, ".")) {
		if (*p < '0' || *p > '9')
			return fail(&r, RFC3339_ERR_FORM, "no digits after the '.': %s", shape);
		for (i = 0; *p >= '0' && *p <= '9'; p++, i++) {
			if (i < 3)
				frac_ms = frac_ms * 10 + (*p - '0');
			else if (*p != '0')
				below_ms = true;
		}
		if (strict && i > 9)
			return fail(&r, RFC3339_ERR_FORM, "more than 9 digits after the '.': %s",
				    shape);
		for (; i < 3; i++)
			frac_ms *= 10;
	}
	if (*p == '\0')
		return fail(&r, RFC3339_ERR_FORM,
			    "no time zone: add Z for UTC or an offset like +01:00");
	if (*p == '+' || *p == '-') {
		sign = *p++ == '+' ? 1 : -1;
		if (!take_digits(&p, 2, &off_h) || !take_char(&p, ":") ||
		    !take_digits(&p, 2, &off_m))
			return fail(&r, RFC3339_ERR_FORM, "%s", shape);
	} else if (!take_char(&p, strict ? "Z" : "Zz")) {
		return fail(&r, RFC3339_ERR_FORM, "%s", shape);
	}
	if (*p != '\0')
		return fail(&r, RFC3339_ERR_FORM, "unexpected \"%.20s\" after the time zone", p);
	if (mon < 1 || mon > 12)
		return fail(&r, RFC3339_ERR_RANGE, "month %02d is not 01..12", mon);
	if (mday < 1 || mday > days_in_month(year, mon))
		return fail(&r, RFC3339_ERR_RANGE, "day %02d does not exist in %04d-%02d", mday,
			    year, mon);
	if (hour > 23)
		return fail(&r, RFC3339_ERR_RANGE, "hour %02d is not 00..23", hour);
	if (min > 59)
		return fail(&r, RFC3339_ERR_RANGE, "minute %02d is not 00..59", min);
	/* 60: a leap second (RFC 3339 5.7); it counts as the next minute's first. */
	if (sec > (strict ? 59 : 60))
		return fail(&r, RFC3339_ERR_RANGE, "second %02d is not 00..%d", sec,
			    strict ? 59 : 60);
	if (off_h > 23 || off_m > 59)
		return fail(&r, RFC3339_ERR_RANGE, "offset %c%02d:%02d is not 00:00..23:59",
			    sign > 0 ? '+' : '-', off_h, off_m);
	v = ((days_from_civil(year, mon, mday) * 24 + hour) * 60 + min) * 60 + sec;
	v = v * 1000 + frac_ms + (below_ms ? 1 : 0) -
	    (int64_t)sign * ((int64_t)off_h * 60 + off_m) * 60000;
	if (v < RFC3339_MIN_MS || v > RFC3339_MAX_MS)
		return fail(&r, RFC3339_ERR_RANGE, "%.40s is outside years 0000..9999 in UTC",
			    text);
	*ms = v;
	return 0;
}
