/*
 * store_schema.h - the SQLite schema of the gateway's store and its forward
 * migrations.
 *
 * The schema version lives in PRAGMA user_version. Version 0 is an empty
 * database. Each migration N -> N+1 runs inside one transaction together with
 * the user_version bump, so a crash mid-migration leaves the previous version
 * intact. A database whose version is newer than STORE_SCHEMA_VERSION was
 * written by a newer gateway: it is refused (-EPROTO) and never touched,
 * because a downgrade that writes into an unknown schema could lose records.
 *
 * Not thread-safe: called on the connection's owning thread before the writer
 * thread starts.
 */
#ifndef BFR_STORE_SCHEMA_H
#define BFR_STORE_SCHEMA_H

#include <stddef.h>
#include <sqlite3.h>

#define STORE_SCHEMA_VERSION 4

/* Reads PRAGMA user_version into *version. */
int store_schema_version(sqlite3 *db, int *version);

/*
 * Migrates db from its current version up to target (<= STORE_SCHEMA_VERSION).
 * Returns 0, -EPROTO when the database is newer than target (nothing changed),
 * or another -errno from the failed step (that migration rolled back). err
 * (may be NULL) receives a human-readable reason on failure.
 */
int store_schema_migrate_to(sqlite3 *db, int target, char *err, size_t errlen);

/* store_schema_migrate_to(db, STORE_SCHEMA_VERSION, ...). */
int store_schema_migrate(sqlite3 *db, char *err, size_t errlen);

/* Maps an SQLite result code (primary or extended) to -errno. */
int store_sqlite_errno(int rc);

#endif
