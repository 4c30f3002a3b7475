/* store_schema.c - see store_schema.h. */
#include "store_schema.h"

#include <errno.h>
#include <stdio.h>

/*
 * migrations[i] takes the schema from version i to i + 1. Append only: a
 * released migration is never edited, because databases in the field have
 * already run it.
 */
static const char *const migrations[STORE_SCHEMA_VERSION] = {
	/* 0 -> 1: clinical records. */
	"CREATE TABLE sessions ("
	"  id TEXT PRIMARY KEY,"
	"  plan TEXT NOT NULL,"
	"  patient TEXT,"
	"  started_ms INTEGER NOT NULL,"
	"  ended_ms INTEGER,"
	"  outcome TEXT,"
	"  state TEXT"
	");"
	"CREATE TABLE session_events ("
	"  session_id TEXT NOT NULL REFERENCES sessions(id),"
	"  seq INTEGER NOT NULL,"
	"  type TEXT NOT NULL,"
	"  payload TEXT NOT NULL,"
	"  ts_ms INTEGER NOT NULL,"
	"  PRIMARY KEY (session_id, seq)"
	");"
	"CREATE TABLE set_figures ("
	"  session_id TEXT NOT NULL REFERENCES sessions(id),"
	"  exercise INTEGER NOT NULL,"
	"  set_no INTEGER NOT NULL,"
	"  cuff TEXT NOT NULL,"
	"  figures TEXT NOT NULL,"
	"  PRIMARY KEY (session_id, exercise, set_no, cuff)"
	");"
	"CREATE TABLE alarms ("
	"  alarm_id TEXT PRIMARY KEY,"
	"  cuff TEXT,"
	"  session_id TEXT,"
	"  code TEXT NOT NULL,"
	"  priority TEXT NOT NULL,"
	"  kind TEXT NOT NULL,"
	"  state TEXT NOT NULL,"
	"  condition_present INTEGER NOT NULL,"
	"  raised_ms INTEGER NOT NULL,"
	"  acked_ms INTEGER,"
	"  acked_by TEXT,"
	"  cleared_ms INTEGER,"
	"  message TEXT,"
	"  vals TEXT,"
	"  updated_ms INTEGER NOT NULL"
	");"
	"CREATE INDEX alarms_session ON alarms(session_id);"
	/* Every lifecycle change of every alarm, append-only. */
	"CREATE TABLE alarm_history ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  alarm_id TEXT NOT NULL,"
	"  state TEXT NOT NULL,"
	"  condition_present INTEGER NOT NULL,"
	"  acked_by TEXT,"
	"  changed_ms INTEGER NOT NULL"
	");"
	"CREATE INDEX alarm_history_alarm ON alarm_history(alarm_id, id);"
	"CREATE TABLE lop_measurements ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  cuff TEXT NOT NULL,"
	"  session_id TEXT,"
	"  lop_mmhg REAL NOT NULL,"
	"  measured_ms INTEGER NOT NULL"
	");",

	/* 1 -> 2: the MQTT outbox. AUTOINCREMENT so ids never go backwards, even
	 * after the table was drained empty: id order is the global send order. */
	"CREATE TABLE outbox ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  topic TEXT NOT NULL,"
	"  payload BLOB NOT NULL,"
	"  qos INTEGER NOT NULL,"
	"  retain INTEGER NOT NULL,"
	"  droppable INTEGER NOT NULL,"
	"  msg_id TEXT,"
	"  created_ms INTEGER NOT NULL,"
	"  bytes INTEGER NOT NULL"
	");",

	/* 2 -> 3: the reply to every command, by request_id, so a command
	 * delivered again is answered, not executed again (SR-27). */
	"CREATE TABLE command_replies ("
	"  request_id TEXT PRIMARY KEY,"
	"  verb TEXT NOT NULL,"
	"  reply TEXT NOT NULL,"
	"  ts_ms INTEGER NOT NULL"
	");"
	"CREATE INDEX command_replies_ts ON command_replies(ts_ms);",

	/* 3 -> 4: home sessions (issue 11). Every prescription a clinician set,
	 * in force while cleared_ms is NULL (at most one row); body is
	 * prescription_to_json(). home_starts: the sessions a patient started
	 * locally, which the rules of the next start count. */
	"CREATE TABLE prescriptions ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  body TEXT NOT NULL,"
	"  request_id TEXT,"
	"  set_ms INTEGER NOT NULL,"
	"  cleared_ms INTEGER"
	");"
	"CREATE TABLE home_starts ("
	"  session_id TEXT PRIMARY KEY,"
	"  source TEXT NOT NULL,"
	"  started_ms INTEGER NOT NULL"
	");"
	"CREATE INDEX home_starts_time ON home_starts(started_ms);",
};

int store_sqlite_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
		return 0;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -EBADMSG;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_TOOBIG:
		return -E2BIG;
	case SQLITE_MISMATCH:
	case SQLITE_RANGE:
		return -EINVAL;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_CANTOPEN:
		return -ENOENT;
	default:
		return -EIO;
	}
}

int store_schema_version(sqlite3 *db, int *version)
{
	sqlite3_stmt *st = NULL;
	int rc, ret;

	rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		goto fail;
	*version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return 0;
fail:
	ret = store_sqlite_errno(rc);
	sqlite3_finalize(st);
	return ret ? ret : -EIO;
}

static int run_one(sqlite3 *db, int from, char *err, size_t errlen)
{
	char bump[64];
	char *msg = NULL;
	int rc;

	rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		goto fail;
	rc = sqlite3_exec(db, migrations[from], NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		goto rollback;
	/* PRAGMA takes no bound parameters; the value is our own integer. */
	snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", from + 1);
	rc = sqlite3_exec(db, bump, NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		goto rollback;
	rc = sqlite3_exec(db, "COMMIT", NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		goto rollback;
	return 0;
rollback:
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
fail:
	if (err)
		snprintf(err, errlen, "schema migration %d -> %d failed: %s", from, from + 1,
			 msg ? msg : sqlite3_errstr(rc));
	sqlite3_free(msg);
	return store_sqlite_errno(rc) ? store_sqlite_errno(rc) : -EIO;
}

int store_schema_migrate_to(sqlite3 *db, int target, char *err, size_t errlen)
{
	int version, ret;

	if (target < 0 || target > STORE_SCHEMA_VERSION)
		return -EINVAL;
	ret = store_schema_version(db, &version);
	if (ret < 0) {
		if (err)
			snprintf(err, errlen, "cannot read schema version: %s", sqlite3_errmsg(db));
		return ret;
	}
	if (version < 0) {
		if (err)
			snprintf(err, errlen, "database schema version %d is invalid", version);
		return -EPROTO;
	}
	if (version > target) {
		if (err)
			snprintf(err, errlen,
				 "database schema version %d is newer than this gateway supports "
				 "(%d); refusing to open it (upgrade the gateway)",
				 version, target);
		return -EPROTO;
	}
	while (version < target) {
		ret = run_one(db, version, err, errlen);
		if (ret < 0)
			return ret;
		version++;
	}
	return 0;
}

int store_schema_migrate(sqlite3 *db, char *err, size_t errlen)
{
	return store_schema_migrate_to(db, STORE_SCHEMA_VERSION, err, errlen);
}
