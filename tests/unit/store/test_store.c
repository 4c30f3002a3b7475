/* test_store.c - records, the writer thread, completions, bounds, disk errors. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store_private.h"
#include "store_test_util.h"
#include "test_alloc.h"

struct fixture {
	char *dir;
	struct store *st;
	struct seen seen;
};

static int open_store(struct fixture *f, const struct store_config *base)
{
	struct store_config cfg = base ? *base : (struct store_config){ 0 };
	char err[256] = "";
	int ret;

	cfg.data_dir = f->dir;
	ret = store_open(&cfg, &f->st, err, sizeof(err));
	if (ret == 0)
		store_set_completion_cb(f->st, seen_cb, &f->seen);
	return ret;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->dir = make_tmpdir();
	assert_non_null(f->dir);
	assert_int_equal(open_store(f, NULL), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	store_close(f->st, NULL);
	rm_rf(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

/* Waits for n more committed records than already seen. */
static void wait_committed(struct fixture *f, size_t n)
{
	struct count_goal g = { .seen = &f->seen, .committed = n };

	assert_true(wait_until(f->st, goal_reached, &g, 5000));
}

/* A second, independent connection: what a restarted gateway would read. */
static long long query_int(struct fixture *f, const char *sql)
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

static const struct store_alarm alarm_active = {
	.alarm_id = "a-1", .cuff = "bay1", .session_id = "s-1", .code = "over_pressure",
	.priority = "high", .kind = "physiological", .state = "active",
	.condition_present = true, .raised_ms = 1000, .message = "pressure above ceiling",
	.values_json = "{\"pressure_mmHg\":262}",
};

static void test_records_commit_in_order(void **state)
{
	struct fixture *f = *state;
	struct store_alarm acked = alarm_active;
	struct store_stats stats;
	size_t k;

	acked.state = "acknowledged";
	acked.acked_ms = 2000;
	acked.acked_by = "nurse-1";
	assert_int_equal(store_session_begin(f->st, "s-1", "{\"exercises\":[]}", "p-42", 100, 1),
			 0);
	assert_int_equal(store_session_event(f->st, "s-1", 1, "started", "{}", 101, 2), 0);
	assert_int_equal(store_session_event(f->st, "s-1", 2, "phase", "{\"phase\":\"lop\"}", 102,
					     3),
			 0);
	assert_int_equal(store_lop_record(f->st, "bay1", "s-1", 182.5, 103, 4), 0);
	assert_int_equal(store_set_figures(f->st, "s-1", 1, 1, "bay1", "{\"mean\":150}", 5), 0);
	assert_int_equal(store_set_figures(f->st, "s-1", 1, 1, "bay1", "{\"mean\":151}", 6), 0);
	assert_int_equal(store_alarm_record(f->st, &alarm_active, 1000, 7), 0);
	assert_int_equal(store_alarm_record(f->st, &acked, 2000, 8), 0);
	assert_int_equal(store_session_state(f->st, "s-1", "{\"phase\":\"set\"}", 9), 0);
	assert_int_equal(store_session_end(f->st, "s-1", "completed", 3000, 10), 0);
	wait_committed(f, 10);

	for (k = 0; k < 10; k++) {
		assert_int_equal(f->seen.c[k].kind, STORE_DONE_COMMITTED);
		assert_int_equal(f->seen.c[k].tag, k + 1);
	}
	assert_int_equal(f->seen.c[6].rec, STORE_REC_ALARM);
	assert_int_equal(query_int(f, "SELECT count(*) FROM session_events"), 2);
	assert_int_equal(query_int(f, "SELECT count(*) FROM set_figures"), 1);
	assert_int_equal(query_int(f, "SELECT json_extract(figures,'$.mean') FROM set_figures"),
			 151);
	assert_int_equal(query_int(f, "SELECT count(*) FROM alarm_history"), 2);
	assert_int_equal(query_int(f, "SELECT acked_ms FROM alarms WHERE alarm_id='a-1'"), 2000);
	assert_int_equal(query_int(f, "SELECT ended_ms FROM sessions"), 3000);
	assert_int_equal(query_int(f, "SELECT lop_mmhg * 10 FROM lop_measurements"), 1825);
	store_get_stats(f->st, &stats);
	assert_int_equal(stats.committed, 10);
	assert_int_equal(stats.queued_records, 0);
	assert_int_equal(stats.queued_bytes, 0);
	assert_true(stats.healthy);
	assert_true(stats.batches >= 1);
}

/* SR-15: the last recorded LOP of a cuff, for the next start. */
static void test_lop_latest(void **state)
{
	struct fixture *f = *state;
	double lop = -1;
	int64_t at = -1;

	assert_int_equal(store_lop_latest(f->st, "bay1", &lop, &at), -ENOENT);
	assert_true(lop == -1 && at == -1);
	assert_int_equal(store_lop_record(f->st, "bay1", "s-1", 182.5, 103, 1), 0);
	assert_int_equal(store_lop_record(f->st, "bay2", NULL, 150, 104, 2), 0);
	assert_int_equal(store_lop_record(f->st, "bay1", NULL, 190.5, 105, 3), 0);
	wait_committed(f, 3);
	assert_int_equal(store_lop_latest(f->st, "bay1", &lop, &at), 0);
	assert_true(lop == 190.5);
	assert_int_equal(at, 105);
	assert_int_equal(store_lop_latest(f->st, "bay2", &lop, &at), 0);
	assert_true(lop == 150);
	assert_int_equal(store_lop_latest(f->st, NULL, &lop, &at), -EINVAL);
}

static void test_bad_arguments_change_nothing(void **state)
{
	struct fixture *f = *state;
	struct store_alarm bad = alarm_active;
	struct store_outbox_msg m = { .topic = "t", .payload = "x", .len = 1, .qos = 1 };
	struct store_stats stats;
	char *huge = malloc(2 * 1024 * 1024);

	assert_non_null(huge);
	memset(huge, 'a', 2 * 1024 * 1024 - 1);
	huge[2 * 1024 * 1024 - 1] = '\0';
	assert_int_equal(store_session_begin(f->st, "s", "{not json", NULL, 1, 0), -EINVAL);
	assert_int_equal(store_session_begin(f->st, "s", "", NULL, 1, 0), -EINVAL);
	assert_int_equal(store_session_begin(f->st, "s", NULL, NULL, 1, 0), -EINVAL);
	assert_int_equal(store_session_begin(f->st, "", "{}", NULL, 1, 0), -EINVAL);
	assert_int_equal(store_session_begin(f->st, NULL, "{}", NULL, 1, 0), -EINVAL);
	assert_int_equal(store_session_begin(f->st, huge, "{}", NULL, 1, 0), -E2BIG);
	assert_int_equal(store_session_begin(f->st, "s", huge, NULL, 1, 0), -E2BIG);
	assert_int_equal(store_session_begin(NULL, "s", "{}", NULL, 1, 0), -EINVAL);
	assert_int_equal(store_session_state(f->st, "s", "[1,", 0), -EINVAL);
	assert_int_equal(store_session_end(f->st, "s", "exploded", 1, 0), -EINVAL);
	assert_int_equal(store_session_end(f->st, "s", NULL, 1, 0), -EINVAL);
	assert_int_equal(store_session_event(f->st, "s", 0, "rep", "{}", 1, 0), -EINVAL);
	assert_int_equal(store_session_event(f->st, "s", 1, "", "{}", 1, 0), -EINVAL);
	assert_int_equal(store_session_event(f->st, "s", 1, "rep", "{\"a\":}", 1, 0), -EINVAL);
	assert_int_equal(store_set_figures(f->st, "s", 1, 1, NULL, "{}", 0), -EINVAL);
	assert_int_equal(store_set_figures(f->st, "s", 1, 1, "c", "nan", 0), -EINVAL);
	bad.priority = "urgent";
	assert_int_equal(store_alarm_record(f->st, &bad, 1, 0), -EINVAL);
	bad = alarm_active;
	bad.kind = NULL;
	assert_int_equal(store_alarm_record(f->st, &bad, 1, 0), -EINVAL);
	bad = alarm_active;
	bad.state = "gone";
	assert_int_equal(store_alarm_record(f->st, &bad, 1, 0), -EINVAL);
	bad = alarm_active;
	bad.values_json = "{'single':1}";
	assert_int_equal(store_alarm_record(f->st, &bad, 1, 0), -EINVAL);
	assert_int_equal(store_alarm_record(f->st, NULL, 1, 0), -EINVAL);
	assert_int_equal(store_lop_record(f->st, "c", NULL, -3, 1, 0), -EINVAL);
	assert_int_equal(store_lop_record(f->st, "c", NULL, NAN, 1, 0), -EINVAL);
	m.qos = 3;
	assert_int_equal(store_outbox_insert(f->st, &m, 0), -EINVAL);
	m.qos = 1;
	m.payload = NULL;
	assert_int_equal(store_outbox_insert(f->st, &m, 0), -EINVAL);
	m.payload = huge;
	m.len = 2 * 1024 * 1024;
	assert_int_equal(store_outbox_insert(f->st, &m, 0), -E2BIG);
	m.len = 1;
	m.topic = "";
	assert_int_equal(store_outbox_insert(f->st, &m, 0), -EINVAL);
	assert_int_equal(store_outbox_delete(f->st, 0, 0), -EINVAL);
	free(huge);

	store_get_stats(f->st, &stats);
	assert_int_equal(stats.queued_records, 0);
	assert_int_equal(stats.committed, 0);
	assert_int_equal(store_flush(f->st, 1000), 0);
	assert_int_equal(query_int(f, "SELECT count(*) FROM sessions"), 0);
}

/* A record the database refuses fails alone; the rest of its batch commits. */
static void test_rejected_record_does_not_block_batch(void **state)
{
	struct fixture *f = *state;
	struct count_goal g = { .seen = &f->seen, .committed = 3, .rejected = 3 };

	assert_int_equal(store_session_begin(f->st, "s-1", "{}", NULL, 1, 1), 0);
	assert_int_equal(store_session_event(f->st, "s-1", 1, "started", "{}", 2, 2), 0);
	assert_int_equal(store_session_event(f->st, "nope", 1, "started", "{}", 2, 3), 0);
	assert_int_equal(store_session_event(f->st, "s-1", 1, "started", "{}", 2, 4), 0);
	assert_int_equal(store_session_state(f->st, "nope", "{}", 5), 0);
	assert_int_equal(store_session_event(f->st, "s-1", 2, "phase", "{}", 3, 6), 0);
	assert_true(wait_until(f->st, goal_reached, &g, 5000));
	assert_int_equal(f->seen.c[2].kind, STORE_DONE_REJECTED);
	assert_int_equal(f->seen.c[2].error, -EEXIST); /* foreign key */
	assert_int_equal(f->seen.c[3].kind, STORE_DONE_REJECTED);
	assert_int_equal(f->seen.c[3].error, -EEXIST); /* duplicate seq */
	assert_int_equal(f->seen.c[4].kind, STORE_DONE_REJECTED);
	assert_int_equal(f->seen.c[4].error, -ENOENT);
	assert_int_equal(f->seen.c[5].kind, STORE_DONE_COMMITTED);
	assert_int_equal(query_int(f, "SELECT group_concat(seq, '') FROM session_events"), 12);
}

static void test_open_sessions_survive_restart(void **state)
{
	struct fixture *f = *state;
	char **ids = NULL;
	size_t n = 99;

	assert_int_equal(store_session_begin(f->st, "s-old", "{}", NULL, 10, 1), 0);
	assert_int_equal(store_session_begin(f->st, "s-done", "{}", NULL, 20, 2), 0);
	assert_int_equal(store_session_begin(f->st, "s-new", "{}", NULL, 30, 3), 0);
	assert_int_equal(store_session_end(f->st, "s-done", "stopped", 25, 4), 0);
	wait_committed(f, 4);
	store_close(f->st, NULL);
	assert_int_equal(open_store(f, NULL), 0);
	assert_int_equal(store_list_open_sessions(f->st, &ids, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(ids[0], "s-old");
	assert_string_equal(ids[1], "s-new");
	assert_null(ids[2]);
	store_strv_free(ids);
}

static int collect_alarm(const struct store_alarm *a, void *user_data)
{
	char *ids = user_data;

	strcat(ids, a->alarm_id);
	strcat(ids, a->acked_by ? "+" : ";");
	return 0;
}

/* What a restarting gateway reads back: open alarms, the id counter, a session. */
static void test_restart_reads(void **state)
{
	struct fixture *f = *state;
	struct store_alarm a = alarm_active;
	char ids[256] = "";
	uint64_t max = 99;
	json_t *rec = NULL, *plan;

	assert_int_equal(store_alarm_max_seq(f->st, "gw", &max), 0);
	assert_int_equal(max, 0);
	a.alarm_id = "gw-7";
	assert_int_equal(store_alarm_record(f->st, &a, 1000, 1), 0);
	a.alarm_id = "gw-12";
	a.state = "cleared";
	a.cleared_ms = 2000;
	assert_int_equal(store_alarm_record(f->st, &a, 2000, 2), 0);
	a.alarm_id = "gw-9";
	a.state = "acknowledged";
	a.cleared_ms = 0;
	a.acked_ms = 1500;
	a.acked_by = "anna";
	assert_int_equal(store_alarm_record(f->st, &a, 1500, 3), 0);
	a.alarm_id = "gwx-500"; /* another gateway's prefix does not count */
	assert_int_equal(store_alarm_record(f->st, &a, 1500, 4), 0);
	assert_int_equal(store_session_begin(f->st, "s-1", "{\"exercises\":[{\"name\":\"a\"}]}",
					     NULL, 10, 5), 0);
	assert_int_equal(store_session_event(f->st, "s-1", 1, "started", "{}", 11, 6), 0);
	assert_int_equal(store_session_event(f->st, "s-1", 2, "phase", "{}", 12, 7), 0);
	assert_int_equal(store_set_figures(f->st, "s-1", 0, 1, "bay1", "{\"set\":1}", 8), 0);
	wait_committed(f, 8);

	assert_int_equal(store_alarm_max_seq(f->st, "gw", &max), 0);
	assert_int_equal(max, 12);
	assert_int_equal(store_load_open_alarms(f->st, collect_alarm, ids), 0);
	assert_string_equal(ids, "gw-7;gw-9+gwx-500+"); /* not the cleared gw-12 */
	assert_int_equal(store_session_load(f->st, "s-1", &rec), 0);
	assert_int_equal(json_integer_value(json_object_get(
				 json_array_get(json_object_get(rec, "events"), 0), "last_seq")),
			 2);
	plan = json_object_get(json_array_get(json_object_get(rec, "session"), 0), "plan");
	assert_string_equal(
		json_string_value(json_object_get(json_array_get(json_object_get(plan, "exercises"), 0),
						  "name")),
		"a");
	assert_int_equal(json_integer_value(json_object_get(
				 json_array_get(json_object_get(rec, "figures"), 0), "set")),
			 1);
	json_decref(rec);
	assert_int_equal(store_session_load(f->st, "nope", &rec), -ENOENT);
	assert_int_equal(store_session_load(f->st, NULL, &rec), -EINVAL);
	assert_int_equal(store_load_open_alarms(f->st, NULL, NULL), -EINVAL);
}

/* Issue 11: the prescription in force and the local starts survive a
 * restart; a new prescription ends the old one, a clear ends it too. */
static void test_home_records_survive_restart(void **state)
{
	struct fixture *f = *state;
	struct count_goal rejected = { .seen = &f->seen, .rejected = 1 };
	int64_t starts[STORE_HOME_STARTS_MAX] = { 0 }, set_ms = 0;
	char *body = NULL;
	size_t n = 99;

	assert_int_equal(store_prescription_current(f->st, &body, &set_ms), -ENOENT);
	assert_int_equal(store_home_starts_recent(f->st, starts, 4, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(store_prescription_set(f->st, "{\"n\":1}", "rx-1", 100, 1), 0);
	assert_int_equal(store_prescription_set(f->st, "{\"n\":2}", NULL, 200, 2), 0);
	assert_int_equal(store_home_start(f->st, "s-1", "button", 1000, 3), 0);
	assert_int_equal(store_home_start(f->st, "s-2", "console", 3000, 4), 0);
	assert_int_equal(store_home_start(f->st, "s-3", "button", 2000, 5), 0);
	wait_committed(f, 5);
	store_close(f->st, NULL);
	assert_int_equal(open_store(f, NULL), 0);
	assert_int_equal(store_prescription_current(f->st, &body, &set_ms), 0);
	assert_string_equal(body, "{\"n\":2}");
	assert_int_equal(set_ms, 200);
	free(body);
	assert_int_equal(query_int(f, "SELECT cleared_ms FROM prescriptions WHERE id = 1"), 200);
	assert_int_equal(store_home_starts_recent(f->st, starts, 2, &n), 0);
	assert_int_equal(n, 2); /* the newest two, newest first */
	assert_int_equal(starts[0], 3000);
	assert_int_equal(starts[1], 2000);
	assert_int_equal(store_home_starts_recent(f->st, starts, STORE_HOME_STARTS_MAX, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(store_prescription_clear(f->st, 4000, 6), 0);
	wait_committed(f, 6);
	assert_int_equal(store_prescription_current(f->st, &body, &set_ms), -ENOENT);
	assert_int_equal(query_int(f, "SELECT count(*) FROM prescriptions WHERE cleared_ms = 4000"),
			 1);
	/* The same session twice is a database refusal, not a retry. */
	assert_int_equal(store_home_start(f->st, "s-1", "button", 5000, 7), 0);
	assert_true(wait_until(f->st, goal_reached, &rejected, 5000));
	assert_int_equal(query_int(f, "SELECT started_ms FROM home_starts WHERE session_id = 's-1'"),
			 1000);
}

static void test_home_records_bad_arguments(void **state)
{
	struct fixture *f = *state;
	int64_t starts[2] = { 7, 7 }, set_ms = 7;
	char *body = (char *)0x1;
	size_t n = 7;

	assert_int_equal(store_prescription_set(f->st, "{not json", NULL, 1, 1), -EINVAL);
	assert_int_equal(store_prescription_set(f->st, NULL, NULL, 1, 1), -EINVAL);
	assert_int_equal(store_prescription_set(NULL, "{}", NULL, 1, 1), -EINVAL);
	assert_int_equal(store_prescription_clear(NULL, 1, 1), -EINVAL);
	assert_int_equal(store_home_start(f->st, "", "button", 1, 1), -EINVAL);
	assert_int_equal(store_home_start(f->st, "s-1", NULL, 1, 1), -EINVAL);
	assert_int_equal(store_home_starts_recent(f->st, starts, STORE_HOME_STARTS_MAX + 1, &n),
			 -EINVAL);
	assert_int_equal(store_home_starts_recent(f->st, NULL, 2, &n), -EINVAL);
	assert_int_equal(store_prescription_current(f->st, NULL, &set_ms), -EINVAL);
	assert_int_equal(n, 7);
	assert_int_equal(starts[0], 7);
	assert_ptr_equal(body, (char *)0x1);
	assert_int_equal(set_ms, 7);
}

/* Above half the bound only critical records get in; at the bound nothing. */
static void test_queue_bound(void **state)
{
	struct fixture *f = *state;
	struct store_config cfg = { .queue_max_bytes = 64 * 1024, .queue_max_records = 100000 };
	struct store_outbox_msg snap = { .topic = "cuff/1/state", .qos = 1, .retain = true,
					 .droppable = true };
	struct store_outbox_msg ev = { .topic = "session/1/event", .qos = 1 };
	char payload[1000];
	struct store_stats stats;
	int k, ret, droppable_ok = 0, critical_ok = 0;

	memset(payload, 'x', sizeof(payload));
	snap.payload = ev.payload = payload;
	snap.len = ev.len = sizeof(payload);
	store_close(f->st, NULL);
	assert_int_equal(open_store(f, &cfg), 0);
	/* A read-only database keeps every batch failing, so the queue fills. */
	assert_int_equal(store_test_exec(f->st, "PRAGMA query_only = 1"), 0);
	for (k = 0; k < 200; k++) {
		ret = store_outbox_insert(f->st, &snap, 1);
		if (ret == -EAGAIN)
			break;
		assert_int_equal(ret, 0);
		droppable_ok++;
	}
	for (k = 0; k < 200; k++) {
		ret = store_outbox_insert(f->st, &ev, 2);
		if (ret == -EAGAIN)
			break;
		assert_int_equal(ret, 0);
		critical_ok++;
	}
	store_get_stats(f->st, &stats);
	assert_true(droppable_ok > 20 && droppable_ok < 33);
	assert_true(critical_ok > 20 && critical_ok < 33);
	assert_true(stats.queued_bytes <= cfg.queue_max_bytes);
	assert_int_equal(stats.rejected_full, 2);
	assert_int_equal(store_outbox_insert(f->st, &ev, 2), -EAGAIN);
	/* The disk comes back: everything queued is committed, in order. */
	assert_int_equal(store_test_exec(f->st, "PRAGMA query_only = 0"), 0);
	{
		struct count_goal g = { .seen = &f->seen,
					.committed = (size_t)(droppable_ok + critical_ok) };

		assert_true(wait_until(f->st, goal_reached, &g, 10000));
	}
	assert_int_equal(query_int(f, "SELECT count(*) FROM outbox"), droppable_ok + critical_ok);
	assert_int_equal(store_outbox_insert(f->st, &ev, 2), 0);
}

/* SQLITE_FULL: nothing is lost, the caller is told, the retry commits it all. */
static void test_disk_full_then_recovery(void **state)
{
	struct fixture *f = *state;
	struct count_goal g = { .seen = &f->seen, .disk_errors = 1 };
	struct store_stats stats;
	char payload[2048];
	int k;

	memset(payload, '7', sizeof(payload) - 1);
	payload[sizeof(payload) - 1] = '\0';
	assert_int_equal(store_session_begin(f->st, "s-1", "{}", NULL, 1, 1), 0);
	wait_committed(f, 1);
	{
		char sql[64];
		long long pages = query_int(f, "PRAGMA page_count");

		snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %lld", pages + 1);
		assert_int_equal(store_test_exec(f->st, sql), 0);
	}
	for (k = 1; k <= 40; k++) {
		char json[2100];

		snprintf(json, sizeof(json), "\"%s\"", payload);
		assert_int_equal(store_session_event(f->st, "s-1", (uint32_t)k, "rep", json, k,
						     (uint64_t)k + 100),
				 0);
	}
	assert_true(wait_until(f->st, goal_reached, &g, 5000));
	assert_int_equal(f->seen.last_disk_error, -ENOSPC);
	store_get_stats(f->st, &stats);
	assert_false(stats.healthy);
	assert_int_equal(stats.last_error, -ENOSPC);
	assert_true(stats.queued_records > 0);

	assert_int_equal(store_test_exec(f->st, "PRAGMA max_page_count = 1073741823"), 0);
	g.committed = 41;
	g.disk_ok = 1;
	assert_true(wait_until(f->st, goal_reached, &g, 10000));
	assert_int_equal(query_int(f, "SELECT count(*) FROM session_events"), 40);
	assert_int_equal(query_int(f, "SELECT max(seq) = count(*) FROM session_events"), 1);
	{
		/* Completions arrive in enqueue order, after the error report. */
		uint64_t want = 101;
		size_t i;

		for (i = 0; i < f->seen.n; i++) {
			if (f->seen.c[i].kind == STORE_DONE_COMMITTED && f->seen.c[i].tag > 100)
				assert_int_equal(f->seen.c[i].tag, want++);
		}
		assert_int_equal(want, 141);
	}
	assert_true(f->seen.c[f->seen.n - 1].kind == STORE_DONE_DISK_OK);
}

/* Closing while the disk fails gives up after one attempt and says how much. */
static void test_close_while_failing_reports_loss(void **state)
{
	struct fixture *f = *state;
	size_t lost = 0;
	int k;

	assert_int_equal(store_test_exec(f->st, "PRAGMA query_only = 1"), 0);
	for (k = 1; k <= 5; k++)
		assert_int_equal(store_lop_record(f->st, "c", NULL, 150, k, 0), 0);
	store_close(f->st, &lost);
	assert_int_equal(lost, 5);
	assert_int_equal(open_store(f, NULL), 0);
}

/*
 * The loop's enqueue must not wait for the disk. Holding the connection lock
 * stands in for a writer stuck in a long fsync: if enqueueing needed it, this
 * test would deadlock (and hit ctest's timeout) instead of passing.
 */
static void test_enqueue_does_not_wait_for_disk(void **state)
{
	struct fixture *f = *state;
	struct store_stats stats;
	int k;

	assert_int_equal(store_session_begin(f->st, "s-1", "{}", NULL, 1, 1), 0);
	wait_committed(f, 1);
	(void)store_db_acquire(f->st);
	for (k = 1; k <= 2000; k++)
		assert_int_equal(store_session_event(f->st, "s-1", (uint32_t)k, "rep", "{}", k,
						     (uint64_t)k + 1),
				 0);
	store_get_stats(f->st, &stats);
	assert_true(stats.queued_records >= 1000); /* at most one batch was taken */
	assert_int_equal(store_dispatch_completions(f->st), 0);
	store_db_release(f->st);
	wait_committed(f, 2001);
	assert_int_equal(query_int(f, "SELECT count(*) FROM session_events"), 2000);
}

static void test_enqueue_allocation_failure(void **state)
{
	struct fixture *f = *state;
	struct store_stats stats;

	test_alloc_fail_after(0);
	assert_int_equal(store_session_begin(f->st, "s-1", "{}", NULL, 1, 1), -ENOMEM);
	assert_int_equal(store_outbox_delete(f->st, 5, 1), -ENOMEM);
	test_alloc_reset();
	store_get_stats(f->st, &stats);
	assert_int_equal(stats.queued_records, 0);
}

/* --- outbox reads ------------------------------------------------------------ */

struct read_result {
	struct seen *seen; /* everything else goes there */
	size_t done;	   /* read completions seen */
	enum store_done_kind kind;
	int error;
	size_t n;
	int64_t ids[64];
	char msg_ids[64][16];
	char payloads[64][16];
	int64_t read_to;
};

static void read_cb(const struct store_completion *c, void *user_data)
{
	struct read_result *r = user_data;

	if (c->rec != STORE_REC_OUTBOX_READ) {
		seen_cb(c, r->seen);
		return;
	}
	r->done++;
	r->kind = c->kind;
	r->error = c->error;
	r->n = c->n_rows;
	r->read_to = c->read_to;
	for (size_t i = 0; i < c->n_rows && i < 64; i++) {
		const struct store_outbox_row *row = &c->rows[i];

		r->ids[i] = row->id;
		snprintf(r->msg_ids[i], sizeof(r->msg_ids[i]), "%s", row->msg_id ? row->msg_id : "-");
		snprintf(r->payloads[i], sizeof(r->payloads[i]), "%.*s", (int)row->len,
			 (const char *)row->payload);
	}
}

static bool read_done(void *arg)
{
	struct read_result *r = arg;

	return r->done > 0;
}

/* One read, its result in *r. */
static void read_once(struct fixture *f, struct read_result *r, int64_t after, int64_t up_to,
		      size_t max_rows, size_t budget)
{
	struct seen *seen = r->seen;

	memset(r, 0, sizeof(*r));
	r->seen = seen;
	assert_int_equal(store_outbox_read(f->st, after, up_to, max_rows, budget, 77), 0);
	assert_true(wait_until(f->st, read_done, r, 5000));
}

static void insert_rows(struct fixture *f, int n)
{
	char payload[16], msg_id[16];

	for (int k = 1; k <= n; k++) {
		struct store_outbox_msg m = { .topic = "t/1", .payload = payload, .qos = 1,
					      .msg_id = k % 2 ? msg_id : NULL, .created_ms = k };

		snprintf(payload, sizeof(payload), "p%d", k);
		snprintf(msg_id, sizeof(msg_id), "m%d", k);
		m.len = strlen(payload);
		assert_int_equal(store_outbox_insert(f->st, &m, (uint64_t)k), 0);
	}
	wait_committed(f, (size_t)n);
}

/* Reads return rows in id order, cut by the row count, the byte budget or
 * the range, and read_to says how far the range was covered. */
static void test_outbox_read_ranges(void **state)
{
	struct fixture *f = *state;
	struct read_result r = { .seen = &f->seen };

	store_set_completion_cb(f->st, read_cb, &r);
	insert_rows(f, 10);
	read_once(f, &r, 0, 10, 3, 1 << 20);
	assert_int_equal(r.kind, STORE_DONE_COMMITTED);
	assert_int_equal(r.n, 3);
	assert_int_equal(r.ids[0], 1);
	assert_int_equal(r.ids[2], 3);
	assert_int_equal(r.read_to, 3);
	assert_string_equal(r.msg_ids[0], "m1");
	assert_string_equal(r.msg_ids[1], "-"); /* NULL msg_id stays NULL */
	assert_string_equal(r.payloads[2], "p3");
	/* A budget of one byte still returns one row. */
	read_once(f, &r, 3, 10, 100, 1);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.ids[0], 4);
	assert_int_equal(r.read_to, 4);
	read_once(f, &r, 4, 7, 100, 1 << 20);
	assert_int_equal(r.n, 3);
	assert_int_equal(r.ids[2], 7);
	assert_int_equal(r.read_to, 7);
	/* The whole rest of the range: read_to is its end. */
	read_once(f, &r, 7, 100, 100, 1 << 20);
	assert_int_equal(r.n, 3);
	assert_int_equal(r.ids[2], 10);
	assert_int_equal(r.read_to, 100);
	read_once(f, &r, 10, 20, 100, 1 << 20);
	assert_int_equal(r.kind, STORE_DONE_COMMITTED);
	assert_int_equal(r.n, 0);
	assert_int_equal(r.read_to, 20);
	/* Bad arguments: nothing queued. */
	assert_int_equal(store_outbox_read(f->st, -1, 5, 1, 1, 0), -EINVAL);
	assert_int_equal(store_outbox_read(f->st, 5, 5, 1, 1, 0), -EINVAL);
	assert_int_equal(store_outbox_read(f->st, 0, 5, 0, 1, 0), -EINVAL);
	assert_int_equal(store_outbox_read(f->st, 0, 5, STORE_READ_MAX_ROWS + 1, 1, 0), -EINVAL);
	assert_int_equal(store_outbox_read(f->st, 0, 5, 1, 0, 0), -EINVAL);
	assert_int_equal(store_outbox_read(f->st, 0, 5, 1, STORE_READ_MAX_BYTES + 1, 0), -EINVAL);
	assert_int_equal(store_outbox_read(NULL, 0, 5, 1, 1, 0), -EINVAL);
	test_alloc_fail_after(0);
	assert_int_equal(store_outbox_read(f->st, 0, 5, 1, 1, 0), -ENOMEM);
	test_alloc_reset();
	{
		struct store_stats st;

		store_get_stats(f->st, &st);
		assert_int_equal(st.reads, 5);
		assert_int_equal(st.read_rows, 10);
		assert_int_equal(st.read_failed, 0);
	}
}

/* The reader has its own connection: committed rows are read while the
 * writer cannot write (and while it holds the connection lock). */
static void test_outbox_read_while_writes_fail(void **state)
{
	struct fixture *f = *state;
	struct read_result r = { .seen = &f->seen };
	struct count_goal g = { .seen = &f->seen, .disk_errors = 1 };
	struct store_outbox_msg m = { .topic = "t/2", .payload = "x", .len = 1, .qos = 1 };

	store_set_completion_cb(f->st, read_cb, &r);
	insert_rows(f, 4);
	assert_int_equal(store_test_exec(f->st, "PRAGMA query_only = 1"), 0);
	assert_int_equal(store_outbox_insert(f->st, &m, 99), 0);
	assert_true(wait_until(f->st, goal_reached, &g, 5000));
	read_once(f, &r, 0, 100, 100, 1 << 20);
	assert_int_equal(r.kind, STORE_DONE_COMMITTED);
	assert_int_equal(r.n, 4);
	/* And while the writer's connection is locked (a long fsync). */
	{
		sqlite3 *db = store_db_acquire(f->st);

		assert_non_null(db);
		read_once(f, &r, 0, 100, 100, 1 << 20);
		store_db_release(f->st);
	}
	assert_int_equal(r.n, 4);
	assert_int_equal(store_test_exec(f->st, "PRAGMA query_only = 0"), 0);
}

/* A row bigger than any the store writes cannot be read: the read fails
 * (-EBADMSG), the rows before it come in the read before. */
static void test_outbox_read_of_an_impossible_row(void **state)
{
	struct fixture *f = *state;
	struct read_result r = { .seen = &f->seen };

	store_set_completion_cb(f->st, read_cb, &r);
	insert_rows(f, 1);
	assert_int_equal(store_test_exec(f->st, "INSERT INTO outbox (topic, payload, qos, retain, "
						"droppable, created_ms, bytes) VALUES ('big', "
						"zeroblob(3 * 1024 * 1024), 1, 0, 0, 0, 0)"),
			 0);
	insert_rows(f, 1);
	read_once(f, &r, 0, 100, 100, 1024);
	assert_int_equal(r.kind, STORE_DONE_COMMITTED);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.read_to, 1);
	read_once(f, &r, 1, 100, 100, 1024);
	assert_int_equal(r.kind, STORE_DONE_REJECTED);
	assert_int_equal(r.error, -EBADMSG);
	assert_int_equal(r.n, 0);
	read_once(f, &r, 2, 100, 100, 1024);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.ids[0], 3);
}

struct scanned {
	size_t n, bytes;
	int64_t last_id;
	char topics[8][32];
	size_t n_topics;
};

static int scan_cb(const struct store_outbox_meta *m, void *user_data)
{
	struct scanned *s = user_data;

	assert_true(m->id > s->last_id);
	s->last_id = m->id;
	s->n++;
	s->bytes += m->bytes;
	if (m->droppable) {
		assert_non_null(m->topic);
		snprintf(s->topics[s->n_topics++], sizeof(s->topics[0]), "%s", m->topic);
	} else {
		assert_null(m->topic);
	}
	return s->n == 100 ? -ECANCELED : 0;
}

/* Start-up scan: every row's size as the outbox counts it, topics of the
 * droppable ones only. */
static void test_outbox_scan(void **state)
{
	struct fixture *f = *state;
	struct store_outbox_msg ev = { .topic = "ev/1", .payload = "12345", .len = 5, .qos = 1,
				       .msg_id = "mid" };
	struct store_outbox_msg snap = { .topic = "st/ä", .payload = "{}", .len = 2, .qos = 1,
					 .retain = true, .droppable = true };
	struct store_outbox_msg empty = { .topic = "al/1", .qos = 1, .retain = true };
	struct scanned s = { 0 };

	assert_int_equal(store_outbox_insert(f->st, &ev, 1), 0);
	assert_int_equal(store_outbox_insert(f->st, &snap, 2), 0);
	assert_int_equal(store_outbox_insert(f->st, &empty, 3), 0);
	wait_committed(f, 3);
	assert_int_equal(store_outbox_scan(f->st, scan_cb, &s), 0);
	assert_int_equal(s.n, 3);
	/* 4 + 5 + 3, 5 (UTF-8 bytes) + 2, 4 + 0 */
	assert_int_equal(s.bytes, 12 + 7 + 4);
	assert_int_equal(s.n_topics, 1);
	assert_string_equal(s.topics[0], "st/ä");
	assert_int_equal(store_outbox_scan(f->st, NULL, &s), -EINVAL);
	s = (struct scanned){ .n = 99 };
	assert_int_equal(store_outbox_scan(f->st, scan_cb, &s), -ECANCELED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_records_commit_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_arguments_change_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lop_latest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rejected_record_does_not_block_batch, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_open_sessions_survive_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_reads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_home_records_survive_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_home_records_bad_arguments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disk_full_then_recovery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_while_failing_reports_loss, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_enqueue_does_not_wait_for_disk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enqueue_allocation_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outbox_read_ranges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outbox_read_while_writes_fail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outbox_read_of_an_impossible_row, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_outbox_scan, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
