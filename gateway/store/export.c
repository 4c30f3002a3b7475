/* export.c - see export.h. */
#include "export.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "store_private.h"
#include "store_schema.h"

enum col_type { COL_TEXT, COL_INT, COL_REAL, COL_JSON, COL_BOOL };

struct col {
	const char *name;
	enum col_type type;
};

/* Converts one column to JSON; NULL columns become JSON null. */
static int column_json(sqlite3_stmt *st, int i, enum col_type type, json_t **out)
{
	json_t *v;

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

/* Runs sql with ?1 = key and collects each row as an object of cols. */
static int rows_array(sqlite3 *db, const char *sql, const char *key, const struct col *cols,
		      int ncols, json_t **out)
{
	sqlite3_stmt *st = NULL;
	json_t *arr = json_array(), *obj = NULL, *v;
	int rc, i, ret = 0;

	if (!arr)
		return -ENOMEM;
	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		goto sqlfail;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		obj = json_object();
		if (!obj || json_array_append_new(arr, obj) < 0) {
			ret = -ENOMEM;
			goto fail;
		}
		for (i = 0; i < ncols; i++) {
			ret = column_json(st, i, cols[i].type, &v);
			if (ret < 0)
				goto fail;
			if (json_object_set_new(obj, cols[i].name, v) < 0) {
				ret = -ENOMEM;
				goto fail;
			}
		}
	}
	if (rc != SQLITE_DONE)
		goto sqlfail;
	sqlite3_finalize(st);
	*out = arr;
	return 0;
sqlfail:
	ret = store_sqlite_errno(rc) ? store_sqlite_errno(rc) : -EIO;
fail:
	sqlite3_finalize(st);
	json_decref(arr);
	return ret;
}

static const struct col session_cols[] = {
	{ "session_id", COL_TEXT }, { "patient", COL_TEXT },  { "plan", COL_JSON },
	{ "started_ms", COL_INT },   { "ended_ms", COL_INT },  { "outcome", COL_TEXT },
	{ "state", COL_JSON },
};
static const struct col event_cols[] = {
	{ "seq", COL_INT }, { "type", COL_TEXT }, { "ts_ms", COL_INT }, { "payload", COL_JSON },
};
static const struct col figure_cols[] = {
	{ "exercise", COL_INT }, { "set", COL_INT }, { "cuff", COL_TEXT }, { "figures", COL_JSON },
};
static const struct col alarm_cols[] = {
	{ "alarm_id", COL_TEXT },	   { "cuff", COL_TEXT },       { "session_id", COL_TEXT },
	{ "code", COL_TEXT },		   { "priority", COL_TEXT },   { "kind", COL_TEXT },
	{ "state", COL_TEXT },		   { "condition_present", COL_BOOL },
	{ "raised_ms", COL_INT },	   { "acked_ms", COL_INT },    { "acked_by", COL_TEXT },
	{ "cleared_ms", COL_INT },	   { "message", COL_TEXT },    { "values", COL_JSON },
};
static const struct col history_cols[] = {
	{ "state", COL_TEXT },
	{ "condition_present", COL_BOOL },
	{ "acked_by", COL_TEXT },
	{ "changed_ms", COL_INT },
};
static const struct col lop_cols[] = {
	{ "cuff", COL_TEXT }, { "lop_mmHg", COL_REAL }, { "measured_ms", COL_INT },
};

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

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
				 json_string_value(json_object_get(alarm, "alarm_id")), history_cols,
				 N(history_cols), &hist);
		if (ret < 0)
			return ret;
		if (json_object_set_new(alarm, "history", hist) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* Builds the full line object of one session row. */
static int session_json(sqlite3 *db, sqlite3_stmt *st, json_t **out)
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
		  "SELECT cuff, lop_mmhg, measured_ms FROM lop_measurements "
		  "WHERE session_id = ?1 ORDER BY id",
		  lop_cols, N(lop_cols) },
	};
	const char *id = (const char *)sqlite3_column_text(st, 0);
	json_t *obj = json_object(), *v;
	int i, ret;

	if (!obj)
		return -ENOMEM;
	for (i = 0; i < N(session_cols); i++) {
		ret = column_json(st, i, session_cols[i].type, &v);
		if (ret < 0)
			goto fail;
		if (json_object_set_new(obj, session_cols[i].name, v) < 0) {
			ret = -ENOMEM;
			goto fail;
		}
	}
	for (i = 0; i < N(parts); i++) {
		ret = rows_array(db, parts[i].sql, id, parts[i].cols, parts[i].ncols, &v);
		if (ret < 0)
			goto fail;
		if (json_object_set_new(obj, parts[i].name, v) < 0) {
			ret = -ENOMEM;
			goto fail;
		}
		if (!strcmp(parts[i].name, "alarms")) {
			ret = add_history(db, v);
			if (ret < 0)
				goto fail;
		}
	}
	*out = obj;
	return 0;
fail:
	json_decref(obj);
	return ret;
}

int store_export_sessions(struct store *store, FILE *out, size_t *count)
{
	sqlite3_stmt *st = NULL;
	sqlite3 *db;
	json_t *line;
	size_t lines = 0;
	int rc, ret = 0;

	if (!store || !out)
		return -EINVAL;
	db = store_db_acquire(store);
	rc = sqlite3_prepare_v2(db,
				"SELECT id, patient, plan, started_ms, ended_ms, outcome, state "
				"FROM sessions WHERE ended_ms IS NOT NULL ORDER BY started_ms, rowid",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		goto sqlfail;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		ret = session_json(db, st, &line);
		if (ret < 0)
			goto fail;
		ret = json_dumpf(line, out, JSON_COMPACT) < 0 || fputc('\n', out) == EOF ? -EIO : 0;
		json_decref(line);
		if (ret < 0)
			goto fail;
		lines++;
	}
	if (rc != SQLITE_DONE)
		goto sqlfail;
	if (fflush(out) == EOF) {
		ret = -EIO;
		goto fail;
	}
	sqlite3_finalize(st);
	store_db_release(store);
	if (count)
		*count = lines;
	return 0;
sqlfail:
	ret = store_sqlite_errno(rc) ? store_sqlite_errno(rc) : -EIO;
fail:
	sqlite3_finalize(st);
	store_db_release(store);
	return ret;
}
