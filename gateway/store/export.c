/* export.c - see export.h. */
#include "export.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store_private.h"
#include "store_schema.h"

/* --- RFC 3339 times -------------------------------------------------------- */

int export_format_time(int64_t ms, char out[32])
{
	/* Room for any int gcc imagines in the fields; in range the text is 24 long. */
	char buf[96];
	int64_t secs, frac;
	struct tm tm;
	time_t t;
	int n;

	if (ms < EXPORT_TIME_MIN_MS || ms > EXPORT_TIME_MAX_MS)
		return -ERANGE;
	/* Floor division: -1 ms is 1969-12-31T23:59:59.999Z. */
	secs = ms / 1000;
	frac = ms % 1000;
	if (frac < 0) {
		frac += 1000;
		secs--;
	}
	t = (time_t)secs;
	if (!gmtime_r(&t, &tm))
		return -ERANGE;
	n = snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
	if (n != 24)
		return -ERANGE;
	memcpy(out, buf, 25);
	return 0;
}

__attribute__((format(printf, 3, 4))) static int parse_error(char *err, size_t errlen,
							      const char *fmt, ...)
{
	va_list ap;

	if (err && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
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

static int days_in_month(int year, int month)
{
	static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

	return month == 2 && leap ? 29 : days[month - 1];
}

int export_parse_time(const char *text, int64_t *ms, char *err, size_t errlen)
{
	static const char shape[] =
		"expected YYYY-MM-DDTHH:MM:SS[.fff] followed by Z or an offset like +01:00";
	int year, mon, mday, hour, min, sec, off_h = 0, off_m = 0, sign = 0, frac_ms = 0, i;
	bool below_ms = false;
	struct tm tm = { 0 };
	const char *p = text;
	int64_t v;

	if (!text || !ms)
		return parse_error(err, errlen, "no time given");
	if (!take_digits(&p, 4, &year) || !take_char(&p, "-") || !take_digits(&p, 2, &mon) ||
	    !take_char(&p, "-") || !take_digits(&p, 2, &mday) || !take_char(&p, "Tt") ||
	    !take_digits(&p, 2, &hour) || !take_char(&p, ":") || !take_digits(&p, 2, &min) ||
	    !take_char(&p, ":") || !take_digits(&p, 2, &sec))
		return parse_error(err, errlen, "%s", shape);
	if (take_char(&p, ".")) {
		if (*p < '0' || *p > '9')
			return parse_error(err, errlen, "no digits after the '.': %s", shape);
		for (i = 0; *p >= '0' && *p <= '9'; p++, i++) {
			if (i < 3)
				frac_ms = frac_ms * 10 + (*p - '0');
			else if (*p != '0')
				below_ms = true;
		}
		for (; i < 3; i++)
			frac_ms *= 10;
	}
	if (*p == '\0')
		return parse_error(err, errlen,
				   "no time zone: add Z for UTC or an offset like +01:00");
	if (*p == '+' || *p == '-') {
		sign = *p++ == '+' ? 1 : -1;
		if (!take_digits(&p, 2, &off_h) || !take_char(&p, ":") ||
		    !take_digits(&p, 2, &off_m))
			return parse_error(err, errlen, "%s", shape);
	} else if (!take_char(&p, "Zz")) {
		return parse_error(err, errlen, "%s", shape);
	}
	if (*p != '\0')
		return parse_error(err, errlen, "unexpected \"%.20s\" after the time zone", p);
	if (mon < 1 || mon > 12)
		return parse_error(err, errlen, "month %02d is not 01..12", mon);
	if (mday < 1 || mday > days_in_month(year, mon))
		return parse_error(err, errlen, "day %02d does not exist in %04d-%02d", mday, year,
				   mon);
	if (hour > 23)
		return parse_error(err, errlen, "hour %02d is not 00..23", hour);
	if (min > 59)
		return parse_error(err, errlen, "minute %02d is not 00..59", min);
	/* 60: a leap second (RFC 3339 5.7); it counts as the next minute's first. */
	if (sec > 60)
		return parse_error(err, errlen, "second %02d is not 00..60", sec);
	if (off_h > 23 || off_m > 59)
		return parse_error(err, errlen, "offset %c%02d:%02d is not 00:00..23:59",
				   sign > 0 ? '+' : '-', off_h, off_m);
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = mday;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	/* Valid fields of years 0000..9999 always fit a 64-bit time_t. */
	v = (int64_t)timegm(&tm);
	v = v * 1000 + frac_ms + (below_ms ? 1 : 0) -
	    (int64_t)sign * ((int64_t)off_h * 3600 + off_m * 60) * 1000;
	*ms = v;
	return 0;
}

/* --- rows to JSON ------------------------------------------------------------ */

enum col_type { COL_TEXT, COL_INT, COL_REAL, COL_JSON, COL_BOOL, COL_TIME };

struct col {
	const char *name;
	enum col_type type;
};

/* A negative errno for a failed SQLite call, whatever the code. */
static int sql_errno(int rc)
{
	int e = store_sqlite_errno(rc);

	return e < 0 ? e : -EIO;
}

/* Converts one column to JSON; NULL columns become JSON null. */
static int column_json(sqlite3_stmt *st, int i, enum col_type type, json_t **out)
{
	char ts[32];
	json_t *v;
	int ret;

	if (sqlite3_column_type(st, i) == SQLITE_NULL) {
		v = json_null();
	} else {
		switch (type) {
		case COL_TEXT:
			v = json_string((const char *)sqlite3_column_text(st, i));
			break;
		case COL_INT:
			v = json_integer(sqlite3_column_int64(st, i));
			break;
		case COL_REAL:
			v = json_real(sqlite3_column_double(st, i));
			break;
		case COL_BOOL:
			v = json_boolean(sqlite3_column_int(st, i));
			break;
		case COL_TIME:
			ret = export_format_time(sqlite3_column_int64(st, i), ts);
			if (ret < 0)
				return ret;
			v = json_string(ts);
			break;
		case COL_JSON:
		default:
			v = json_loads((const char *)sqlite3_column_text(st, i), JSON_DECODE_ANY,
				       NULL);
			if (!v)
				return -EBADMSG;
			break;
		}
	}
	if (!v)
		return -ENOMEM;
	*out = v;
	return 0;
}

/* Sets one object member per column of the current row. */
static int row_into(sqlite3_stmt *st, const struct col *cols, int ncols, json_t *obj)
{
	json_t *v;
	int i, ret;

	for (i = 0; i < ncols; i++) {
		ret = column_json(st, i, cols[i].type, &v);
		if (ret < 0)
			return ret;
		if (json_object_set_new(obj, cols[i].name, v) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* Runs sql with ?1 = key (and ?2 = num when sql has it) and collects each
 * row as an object of cols. */
static int rows_array(sqlite3 *db, const char *sql, const char *key, int64_t num,
		      const struct col *cols, int ncols, json_t **out)
{
	sqlite3_stmt *st = NULL;
	json_t *arr = json_array(), *obj;
	int rc, ret = 0;

	if (!arr)
		return -ENOMEM;
	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		goto sqlfail;
	rc = sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK && sqlite3_bind_parameter_count(st) >= 2)
		rc = sqlite3_bind_int64(st, 2, num);
	if (rc != SQLITE_OK)
		goto sqlfail;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		obj = json_object();
		if (!obj || json_array_append_new(arr, obj) < 0) {
			ret = -ENOMEM;
			goto fail;
		}
		ret = row_into(st, cols, ncols, obj);
		if (ret < 0)
			goto fail;
	}
	if (rc != SQLITE_DONE)
		goto sqlfail;
	sqlite3_finalize(st);
	*out = arr;
	return 0;
sqlfail:
	ret = sql_errno(rc);
fail:
	sqlite3_finalize(st);
	json_decref(arr);
	return ret;
}

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* The session row; started_ms is read separately as column 7. */
static const struct col session_cols[] = {
	{ "session_id", COL_TEXT }, { "patient", COL_TEXT },  { "plan", COL_JSON },
	{ "started_at", COL_TIME }, { "ended_at", COL_TIME }, { "outcome", COL_TEXT },
	{ "state", COL_JSON },
};
#define SESSION_SQL                                                                            \
	"SELECT id, patient, plan, started_ms, ended_ms, outcome, state, started_ms "          \
	"FROM sessions WHERE ended_ms IS NOT NULL AND started_ms >= ?1 "                       \
	"ORDER BY started_ms, rowid"
#define SESSION_COL_STARTED_MS 7

static const struct col event_cols[] = {
	{ "seq", COL_INT }, { "type", COL_TEXT }, { "ts", COL_TIME }, { "payload", COL_JSON },
};
static const struct col figure_cols[] = {
	{ "exercise", COL_INT }, { "set", COL_INT }, { "cuff", COL_TEXT }, { "figures", COL_JSON },
};
static const struct col alarm_cols[] = {
	{ "alarm_id", COL_TEXT },	   { "cuff", COL_TEXT },       { "session_id", COL_TEXT },
	{ "code", COL_TEXT },		   { "priority", COL_TEXT },   { "kind", COL_TEXT },
	{ "state", COL_TEXT },		   { "condition_present", COL_BOOL },
	{ "raised_at", COL_TIME },	   { "acked_at", COL_TIME },   { "acked_by", COL_TEXT },
	{ "cleared_at", COL_TIME },	   { "message", COL_TEXT },    { "values", COL_JSON },
};
static const struct col history_cols[] = {
	{ "state", COL_TEXT },
	{ "condition_present", COL_BOOL },
	{ "acked_by", COL_TEXT },
	{ "changed_at", COL_TIME },
};
static const struct col lop_cols[] = {
	{ "cuff", COL_TEXT },
	{ "lop_mmHg", COL_REAL },
	{ "measured_at", COL_TIME },
	{ "source", COL_TEXT },
};

/* Adds "history" to every alarm object of alarms. */
static int add_history(sqlite3 *db, json_t *alarms)
{
	json_t *alarm, *hist;
	size_t i;
	int ret;

	json_array_foreach(alarms, i, alarm) {
		ret = rows_array(db,
				 "SELECT state, condition_present, acked_by, changed_ms "
				 "FROM alarm_history WHERE alarm_id = ?1 ORDER BY id",
				 json_string_value(json_object_get(alarm, "alarm_id")), 0,
				 history_cols, N(history_cols), &hist);
		if (ret < 0)
			return ret;
		if (json_object_set_new(alarm, "history", hist) < 0)
			return -ENOMEM;
	}
	return 0;
}

static bool lops_have_cuff(const json_t *lops, const char *cuff)
{
	const json_t *lop;
	size_t i;

	json_array_foreach(lops, i, lop) {
		if (!strcmp(json_string_value(json_object_get(lop, "cuff")), cuff))
			return true;
	}
	return false;
}

/* Appends cuff's last LOP recorded at or before started_ms, or a "none" entry. */
static int add_lop_before(sqlite3 *db, const char *cuff, int64_t started_ms, json_t *lops)
{
	json_t *before, *none;
	int ret;

	ret = rows_array(db,
			 "SELECT cuff, lop_mmhg, measured_ms, 'before' FROM lop_measurements "
			 "WHERE cuff = ?1 AND measured_ms <= ?2 ORDER BY id DESC LIMIT 1",
			 cuff, started_ms, lop_cols, N(lop_cols), &before);
	if (ret < 0)
		return ret;
	if (json_array_size(before) == 0) {
		none = json_pack("{s:s, s:n, s:n, s:s}", "cuff", cuff, "lop_mmHg", "measured_at",
				 "source", "none");
		if (!none || json_array_append_new(before, none) < 0)
			ret = -ENOMEM;
	}
	if (ret == 0 && json_array_extend(lops, before) < 0)
		ret = -ENOMEM;
	json_decref(before);
	return ret;
}

/*
 * For every cuff of plan.exercises[].cuffs without a LOP measured in the
 * session, appends what it had from before. A plan of another shape names no
 * cuffs (the gateway only records plans it validated; this is for damaged rows).
 */
static int add_lops_before(sqlite3 *db, const json_t *plan, int64_t started_ms, json_t *lops)
{
	const json_t *ex, *cuff;
	size_t i, k;
	int ret;

	json_array_foreach(json_object_get(plan, "exercises"), i, ex) {
		json_array_foreach(json_object_get(ex, "cuffs"), k, cuff) {
			const char *id = json_string_value(cuff);

			if (!id || lops_have_cuff(lops, id))
				continue;
			ret = add_lop_before(db, id, started_ms, lops);
			if (ret < 0)
				return ret;
		}
	}
	return 0;
}

/* Builds the full line object of one session row. */
static int session_json(sqlite3 *db, sqlite3_stmt *st, const struct export_options *opt,
			json_t **out)
{
	static const struct {
		const char *name, *sql;
		const struct col *cols;
		int ncols;
	} parts[] = {
		{ "events",
		  "SELECT seq, type, ts_ms, payload FROM session_events "
		  "WHERE session_id = ?1 ORDER BY seq",
		  event_cols, N(event_cols) },
		{ "figures",
		  "SELECT exercise, set_no, cuff, figures FROM set_figures "
		  "WHERE session_id = ?1 ORDER BY exercise, set_no, cuff",
		  figure_cols, N(figure_cols) },
		{ "alarms",
		  "SELECT alarm_id, cuff, session_id, code, priority, kind, state, "
		  "condition_present, raised_ms, acked_ms, acked_by, cleared_ms, message, vals "
		  "FROM alarms WHERE session_id = ?1 ORDER BY raised_ms, alarm_id",
		  alarm_cols, N(alarm_cols) },
		{ "lop",
		  "SELECT cuff, lop_mmhg, measured_ms, 'session' FROM lop_measurements "
		  "WHERE session_id = ?1 ORDER BY id",
		  lop_cols, N(lop_cols) },
	};
	const char *id = (const char *)sqlite3_column_text(st, 0);
	int64_t started_ms = sqlite3_column_int64(st, SESSION_COL_STARTED_MS);
	json_t *obj, *v;
	int i, ret;

	obj = json_pack("{s:i, s:s, s:s}", "v", 1, "gateway", opt->gateway_id, "site", opt->site);
	if (!obj)
		return -ENOMEM;
	ret = row_into(st, session_cols, N(session_cols), obj);
	if (ret < 0)
		goto fail;
	for (i = 0; i < N(parts); i++) {
		ret = rows_array(db, parts[i].sql, id, 0, parts[i].cols, parts[i].ncols, &v);
		if (ret < 0)
			goto fail;
		if (json_object_set_new(obj, parts[i].name, v) < 0) {
			ret = -ENOMEM;
			goto fail;
		}
		if (!strcmp(parts[i].name, "alarms"))
			ret = add_history(db, v);
		else if (!strcmp(parts[i].name, "lop"))
			ret = add_lops_before(db, json_object_get(obj, "plan"), started_ms, v);
		if (ret < 0)
			goto fail;
	}
	*out = obj;
	return 0;
fail:
	json_decref(obj);
	return ret;
}

/* The line's text and its newline in one write: a failed read leaves no half line. */
static int write_line(const json_t *line, FILE *out)
{
	char *text = json_dumps(line, JSON_COMPACT);
	size_t len;
	int ret = 0;

	if (!text)
		return -ENOMEM;
	len = strlen(text);
	text[len] = '\n'; /* json_dumps' NUL becomes the newline */
	if (fwrite(text, 1, len + 1, out) != len + 1)
		ret = -EIO;
	free(text);
	return ret;
}

int store_export_sessions(struct store *store, const struct export_options *opt, FILE *out,
			  size_t *count)
{
	sqlite3_stmt *st = NULL;
	sqlite3 *db;
	json_t *line;
	size_t lines = 0;
	int rc, ret = 0;

	if (!store || !opt || !opt->gateway_id || !opt->site || !out)
		return -EINVAL;
	db = store_db_acquire(store);
	rc = sqlite3_prepare_v2(db, SESSION_SQL, -1, &st, NULL);
	if (rc != SQLITE_OK)
		goto sqlfail;
	rc = sqlite3_bind_int64(st, 1, opt->since_ms);
	if (rc != SQLITE_OK)
		goto sqlfail;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		ret = session_json(db, st, opt, &line);
		if (ret < 0)
			goto fail;
		ret = write_line(line, out);
		json_decref(line);
		if (ret < 0)
			goto fail;
		lines++;
	}
	if (rc != SQLITE_DONE)
		goto sqlfail;
	if (fflush(out) == EOF || ferror(out)) {
		ret = -EIO;
		goto fail;
	}
	sqlite3_finalize(st);
	store_db_release(store);
	if (count)
		*count = lines;
	return 0;
sqlfail:
	ret = sql_errno(rc);
fail:
	sqlite3_finalize(st);
	store_db_release(store);
	return ret;
}
