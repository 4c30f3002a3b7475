/*
 * test_recovery.c - the gateway's own alarm records and what others write on
 * its alarm topics (gateway/src/recovery.c, alarms.c; issue 9 item 4).
 *
 * Real store (SQLite in a temporary data_dir), publisher and alarm table, no
 * broker: every QoS 1 message stays in the outbox, so the outbox and the
 * store's commit count show everything the gateway would have published.
 *
 *  - A payload on alarm/{id} that is none of the gateway's records (a forged
 *    one with the gateway's id prefix, another gateway's id, junk, a forged
 *    "cleared" over an open alarm of ours) queues no row and changes no alarm.
 *  - An alarm left open in the database is closed once at start, and the
 *    retained copy of its old record the broker sends back changes nothing.
 *  - Crash consistency: in the store's commit order, at every point a crash
 *    could stop it, the database holds open every alarm whose retained record
 *    on the broker would be open (so a restart can close it from the
 *    database, never from what the broker sends).
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "../store/store_test_util.h"
#include "alarms.h"
#include "loop.h"
#include "publisher.h"
#include "recovery.h"
#include "test_alloc.h"

struct fx {
	char *dir;
	uint64_t wall;
	struct loop *loop;
	struct payload_ctx ctx;
	struct store *store;
	struct publisher *pub;
	struct alarms *alarms;
	struct recovery *rec;
};

static uint64_t fixed_wall(void *data)
{
	return *(uint64_t *)data;
}

/* One gateway run on fx->dir (created by the first). */
static void run_start(struct fx *f, const char *boot)
{
	struct store_config cfg = { .data_dir = f->dir };
	struct recovery_deps deps;
	uint64_t first_seq;

	assert_int_equal(loop_new(&f->loop), 0);
	assert_int_equal(payload_ctx_init(&f->ctx, "site", "gw1", boot), 0);
	f->ctx.wall_ms = fixed_wall;
	f->ctx.wall_data = &f->wall;
	assert_int_equal(store_open(&cfg, &f->store, NULL, 0), 0);
	assert_int_equal(publisher_new(f->loop, f->store, 1 << 20, &f->ctx, NULL, NULL, &f->pub),
			 0);
	first_seq = recovery_first_alarm_seq(f->store, "gw1", f->wall);
	assert_int_equal(alarms_new(f->loop, &f->ctx, f->pub, f->store, 2, first_seq, NULL, NULL,
				    &f->alarms),
			 0);
	deps = (struct recovery_deps){ .ctx = &f->ctx, .pub = f->pub, .alarms = f->alarms,
				       .store = f->store };
	assert_int_equal(recovery_new(&deps, &f->rec), 0);
}

static void run_stop(struct fx *f)
{
	recovery_free(f->rec);
	alarms_free(f->alarms);
	publisher_free(f->pub, 2000);
	store_close(f->store, NULL);
	loop_free(f->loop);
	f->rec = NULL;
	f->alarms = NULL;
	f->pub = NULL;
	f->store = NULL;
	f->loop = NULL;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->dir = make_tmpdir();
	assert_non_null(f->dir);
	f->wall = 1795512600000ull;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (f->loop)
		run_stop(f);
	rm_rf(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

/* Everything queued is committed; returns how many records were committed so far. */
static uint64_t settle(struct fx *f)
{
	struct store_stats s;

	alarms_flush(f->alarms);
	assert_int_equal(store_flush(f->store, 5000), 0);
	store_get_stats(f->store, &s);
	assert_int_equal(s.queued_records, 0);
	return s.committed;
}

static void retained(struct fx *f, const char *alarm_id, const char *json)
{
	recovery_retained_alarm(f->rec, alarm_id, (const uint8_t *)json, strlen(json), true);
}

/* The same record published just now (an echo of a live message). */
static void live(struct fx *f, const char *alarm_id, const char *json)
{
	recovery_retained_alarm(f->rec, alarm_id, (const uint8_t *)json, strlen(json), false);
}

/* A schema-shaped alarm record the gateway never wrote. */
static void forged(char *buf, size_t cap, const char *alarm_id, const char *msg_id,
		   const char *state)
{
	snprintf(buf, cap,
		 "{\"v\":1,\"ts\":\"2026-01-01T00:00:00.000Z\",\"msg_id\":\"%s\","
		 "\"alarm_id\":\"%s\",\"cuff\":\"c1\",\"session_id\":null,"
		 "\"code\":\"over_pressure_ceiling\",\"priority\":\"high\","
		 "\"kind\":\"physiological\",\"state\":\"%s\",\"condition_present\":true,"
		 "\"raised_at\":\"2026-01-01T00:00:00.000Z\",\"acked_at\":null,"
		 "\"acked_by\":null,\"cleared_at\":null,\"message\":\"forged\",\"values\":{}}",
		 msg_id, alarm_id, state);
}

static void test_foreign_alarm_records_queue_nothing(void **state)
{
	struct fx *f = *state;
	char own[ALARM_ID_MAX], buf[1024];
	uint64_t committed;
	size_t depth;

	run_start(f, "b00t");
	assert_int_equal(alarm_raise(alarms_table(f->alarms), "c1", NULL, ALARM_BATTERY_LOW, NULL,
				     NULL, f->wall, own),
			 0);
	committed = settle(f);
	depth = publisher_outbox_depth(f->pub);
	assert_int_equal(depth, 1);

	for (int round = 0; round < 3; round++) {
		/* Our id prefix, a seq from before this run, a msg_id with our gateway id. */
		forged(buf, sizeof(buf), "gw1-5", "gw1-0123456789abcdef-1", "active");
		retained(f, "gw1-5", buf);
		forged(buf, sizeof(buf), "gw1-1", "gw1-0123456789abcdef-2", "acknowledged");
		retained(f, "gw1-1", buf);
		forged(buf, sizeof(buf), "gw1-99999999999999", "x-1", "active");
		retained(f, "gw1-99999999999999", buf);
		forged(buf, sizeof(buf), "intruder-1", "intruder-1-1", "active");
		retained(f, "intruder-1", buf);
		retained(f, "junk", "{\"state\":\"active\"}");
		retained(f, "junk", "not json at all");
		retained(f, "bad id", "{\"state\":\"active\"}");
		/* A forged "cleared" over our own open alarm. */
		forged(buf, sizeof(buf), own, "gw1-0123456789abcdef-3", "cleared");
		retained(f, own, buf);
	}
	assert_int_equal(settle(f), committed);
	assert_int_equal(publisher_outbox_depth(f->pub), depth);
	assert_int_equal(alarm_open_count(alarms_table(f->alarms)), 1);
	assert_non_null(alarm_find_id(alarms_table(f->alarms), own));
	assert_null(alarm_find_id(alarms_table(f->alarms), "gw1-5"));
}

static void record_open(struct fx *f, const char *id, const char *cuff, const char *code,
			const char *priority)
{
	struct store_alarm a = {
		.alarm_id = id,
		.cuff = cuff,
		.code = code,
		.priority = priority,
		.kind = "technical",
		.state = "active",
		.condition_present = true,
		.raised_ms = (int64_t)f->wall,
		.message = "from before",
		.values_json = "{}",
	};

	assert_int_equal(store_alarm_record(f->store, &a, (int64_t)f->wall, 0), 0);
}

static void test_left_open_closed_once_at_start(void **state)
{
	struct fx *f = *state;
	char buf[1024];
	uint64_t committed;
	size_t depth;

	/* An earlier run left two alarms open: a LOW one and an unacknowledged e-stop. */
	run_start(f, "0ldb00t");
	record_open(f, "gw1-7", "c1", "battery_low", "low");
	record_open(f, "gw1-8", NULL, "estop", "high");
	settle(f);
	run_stop(f);

	f->wall += 60000;
	run_start(f, "n3wb00t");
	recovery_restore_alarms(f->rec);
	committed = settle(f);
	/* gw1-7 closed: its record, then the empty retained payload; gw1-8 latches. */
	depth = publisher_outbox_depth(f->pub);
	assert_int_equal(depth, 2);
	assert_null(alarm_find_id(alarms_table(f->alarms), "gw1-7"));
	assert_non_null(alarm_find_id(alarms_table(f->alarms), "gw1-8"));
	assert_int_equal(alarm_next_seq(alarms_table(f->alarms)), 9);

	/* The broker sends back the old retained records: the latched one is
	 * left alone, live echoes change nothing... */
	forged(buf, sizeof(buf), "gw1-8", "gw1-0ldb00t-4", "active");
	retained(f, "gw1-8", buf);
	forged(buf, sizeof(buf), "gw1-7", "gw1-0ldb00t-3", "active");
	live(f, "gw1-7", buf);
	assert_int_equal(settle(f), committed);
	assert_int_equal(publisher_outbox_depth(f->pub), depth);
	assert_non_null(alarm_find_id(alarms_table(f->alarms), "gw1-8"));
	/* ...and the one closed here but still retained there (a broker that
	 * restarted from a save older than the removal) is removed again, once
	 * per retained delivery: one empty retained payload, nothing else. */
	retained(f, "gw1-7", buf);
	settle(f);
	assert_int_equal(publisher_outbox_depth(f->pub), depth + 1);
	assert_null(alarm_find_id(alarms_table(f->alarms), "gw1-7"));
	assert_int_equal(alarm_open_count(alarms_table(f->alarms)), 1);
}

/* --- alarm ids --------------------------------------------------------------- */

static void raise_one(struct fx *f, char id[ALARM_ID_MAX])
{
	struct alarm_table *t = alarms_table(f->alarms);

	assert_int_equal(alarm_raise(t, "", NULL, ALARM_ESTOP, NULL, NULL, f->wall, id), 0);
	assert_int_equal(alarm_condition_cleared(t, "", ALARM_ESTOP, f->wall), 0);
	settle(f);
}

/*
 * The decision in docs/safety.md (Ids): a database without alarms starts at
 * the wall clock's ms, one with alarms continues after the highest, so no
 * id repeats, not even after the database was wiped.
 */
static void test_alarm_ids_never_repeat_across_a_wiped_database(void **state)
{
	struct fx *f = *state;
	char first[ALARM_ID_MAX], second[ALARM_ID_MAX], third[ALARM_ID_MAX],
		fourth[ALARM_ID_MAX], path[512];
	char want[ALARM_ID_MAX];

	run_start(f, "b1");
	raise_one(f, first);
	snprintf(want, sizeof(want), "gw1-%" PRIu64, f->wall);
	assert_string_equal(first, want);
	run_stop(f);

	/* A clock set back does not matter once the database has an alarm. */
	f->wall -= 86400000;
	run_start(f, "b2");
	raise_one(f, second);
	snprintf(want, sizeof(want), "gw1-%" PRIu64, f->wall + 86400000 + 1);
	assert_string_equal(second, want);
	run_stop(f);

	/* Wiped: a new database file, a minute after the first start. */
	f->wall += 86400000 + 60000;
	snprintf(path, sizeof(path), "%s/%s", f->dir, STORE_DB_NAME);
	assert_int_equal(unlink(path), 0);
	(void)unlink(strcat(path, "-wal")); /* may not exist */
	snprintf(path, sizeof(path), "%s/%s-shm", f->dir, STORE_DB_NAME);
	(void)unlink(path);
	run_start(f, "b3");
	raise_one(f, third);
	run_stop(f);
	run_start(f, "b4");
	raise_one(f, fourth);
	assert_true(strcmp(third, first) != 0 && strcmp(third, second) != 0);
	assert_true(strtoull(third + 4, NULL, 10) > strtoull(second + 4, NULL, 10));
	assert_true(strtoull(fourth + 4, NULL, 10) == strtoull(third + 4, NULL, 10) + 1);
}

/* --- sessions a crash interrupted ------------------------------------------ */

static long long sql_int(struct fx *f, const char *sql)
{
	char path[512];
	sqlite3 *db;
	sqlite3_stmt *st;
	long long v = -1;

	snprintf(path, sizeof(path), "%s/%s", f->dir, STORE_DB_NAME);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* Its summary's ended_at and its row's ended_ms are the time of its last
 * record (here the state snapshot, after the last event), not the restart. */
static void test_interrupted_session_ends_at_its_last_record(void **state)
{
	struct fx *f = *state;
	uint64_t start = f->wall;
	char ts[32], json[256], sql[256];

	run_start(f, "0ldb00t");
	assert_int_equal(store_session_begin(f->store, "s1", "{\"exercises\":[{\"name\":\"x\"}]}",
					     NULL, (int64_t)start, 0),
			 0);
	assert_int_equal(store_session_event(f->store, "s1", 1, "started", "{}",
					     (int64_t)start + 1000, 0),
			 0);
	payload_format_ts(start + 2500, ts);
	snprintf(json, sizeof(json), "{\"ts\":\"%s\",\"phase\":\"set\"}", ts);
	assert_int_equal(store_session_state(f->store, "s1", json, 0), 0);
	settle(f);
	run_stop(f);

	f->wall = start + 3600000; /* restarted an hour later */
	run_start(f, "n3wb00t");
	recovery_close_interrupted_sessions(f->rec);
	settle(f);
	assert_int_equal(sql_int(f, "SELECT ended_ms FROM sessions WHERE id = 's1'"),
			 (long long)start + 2500);
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM outbox WHERE topic LIKE '%%/session/s1/summary' AND "
		 "json_extract(CAST(payload AS TEXT), '$.ended_at') = '%s' AND "
		 "json_extract(CAST(payload AS TEXT), '$.outcome') = 'aborted'",
		 ts);
	assert_int_equal(sql_int(f, sql), 1);
	/* Only the event is later than the state: then the event's time. */
	run_stop(f);
	run_start(f, "thirdb00t");
	assert_int_equal(store_session_begin(f->store, "s2", "{\"exercises\":[]}", NULL,
					     (int64_t)start, 0),
			 0);
	assert_int_equal(store_session_event(f->store, "s2", 7, "rep", "{}",
					     (int64_t)start + 9000, 0),
			 0);
	settle(f);
	run_stop(f);
	run_start(f, "fourthb00t");
	recovery_close_interrupted_sessions(f->rec);
	settle(f);
	assert_int_equal(sql_int(f, "SELECT ended_ms FROM sessions WHERE id = 's2'"),
			 (long long)start + 9000);
}

/* --- crash consistency ------------------------------------------------------ */

#define MAX_IDS 16

struct replay {
	char id[MAX_IDS][ALARM_ID_MAX];
	bool db_open[MAX_IDS], broker_open[MAX_IDS];
	size_t n;
};

static size_t slot(struct replay *r, const char *id)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->id[i], id) == 0)
			return i;
	assert_true(r->n < MAX_IDS);
	snprintf(r->id[r->n], sizeof(r->id[0]), "%s", id);
	return r->n++;
}

static void test_database_holds_open_what_the_broker_may(void **state)
{
	struct fx *f = *state;
	struct alarm_table *t;
	struct replay r = { 0 };
	char path[512], estop[ALARM_ID_MAX];
	sqlite3 *db;
	sqlite3_stmt *st;
	size_t rows = 0;

	run_start(f, "b00t");
	/* The commit order of outbox rows and alarm history rows. */
	assert_int_equal(
		store_test_exec(f->store,
				"CREATE TABLE commit_order (id INTEGER PRIMARY KEY, kind TEXT,"
				" what TEXT, retain INTEGER, len INTEGER, state TEXT);"
				"CREATE TRIGGER co_outbox AFTER INSERT ON outbox BEGIN"
				" INSERT INTO commit_order (kind, what, retain, len, state) VALUES"
				" ('outbox', NEW.topic, NEW.retain, length(NEW.payload),"
				"  CASE WHEN length(NEW.payload) > 0 THEN"
				"   json_extract(CAST(NEW.payload AS TEXT), '$.state') END); END;"
				"CREATE TRIGGER co_alarm AFTER INSERT ON alarm_history BEGIN"
				" INSERT INTO commit_order (kind, what, state) VALUES"
				" ('db', NEW.alarm_id, NEW.state); END;"),
		0);
	t = alarms_table(f->alarms);
	/* A LOW alarm raised and cleared, a latched HIGH raised, acknowledged, cleared. */
	assert_int_equal(alarm_raise(t, "c1", NULL, ALARM_BATTERY_LOW, NULL, NULL, f->wall, NULL),
			 0);
	alarms_flush(f->alarms);
	assert_int_equal(alarm_condition_cleared(t, "c1", ALARM_BATTERY_LOW, f->wall + 1), 0);
	alarms_flush(f->alarms);
	assert_int_equal(alarm_raise(t, "", NULL, ALARM_ESTOP, NULL, NULL, f->wall + 2, estop), 0);
	assert_int_equal(alarm_condition_cleared(t, "", ALARM_ESTOP, f->wall + 2), 0);
	alarms_flush(f->alarms);
	assert_int_equal(alarm_ack(t, estop, "Jürgen", f->wall + 3), 0);
	alarms_flush(f->alarms);
	settle(f);

	snprintf(path, sizeof(path), "%s/%s", f->dir, STORE_DB_NAME);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db,
					    "SELECT kind, what, retain, len, state FROM commit_order"
					    " ORDER BY id",
					    -1, &st, NULL),
			 SQLITE_OK);
	/* A crash after any row leaves exactly the rows up to it. */
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *kind = (const char *)sqlite3_column_text(st, 0);
		const char *what = (const char *)sqlite3_column_text(st, 1);
		const char *rstate = (const char *)sqlite3_column_text(st, 4);

		rows++;
		if (strcmp(kind, "db") == 0) {
			r.db_open[slot(&r, what)] = strcmp(rstate, "cleared") != 0;
		} else if (sqlite3_column_int(st, 2)) {
			const char *id = strrchr(what, '/') + 1;

			r.broker_open[slot(&r, id)] = sqlite3_column_int(st, 3) > 0 &&
						      strcmp(rstate, "cleared") != 0;
		}
		for (size_t i = 0; i < r.n; i++)
			if (r.broker_open[i] && !r.db_open[i])
				fail_msg("after commit row %zu the broker holds %s open, the "
					 "database does not",
					 rows, r.id[i]);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	/* 2 alarms: LOW (active, closing x2) and HIGH (active, latched, acked, closing x2). */
	assert_int_equal(r.n, 2);
	assert_true(rows >= 11);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_foreign_alarm_records_queue_nothing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_left_open_closed_once_at_start, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_database_holds_open_what_the_broker_may, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_interrupted_session_ends_at_its_last_record,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_alarm_ids_never_repeat_across_a_wiped_database,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
