/* test_export.c - ended sessions as JSON lines (export.h): fields, times, --since, LOP sources. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>

#include "export.h"
#include "store_test_util.h"

struct fixture {
	char *dir;
	struct store *st;
	struct seen seen;
};

static const struct export_options all = {
	.gateway_id = "gw-7", .site = "clinic-b", .since_ms = EXPORT_SINCE_ALL
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct store_config cfg = { 0 };

	assert_non_null(f);
	f->dir = make_tmpdir();
	assert_non_null(f->dir);
	cfg.data_dir = f->dir;
	assert_int_equal(store_open(&cfg, &f->st, NULL, 0), 0);
	store_set_completion_cb(f->st, seen_cb, &f->seen);
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

static void wait_committed(struct fixture *f, size_t n)
{
	struct count_goal g = { .seen = &f->seen, .committed = n };

	assert_true(wait_until(f->st, goal_reached, &g, 5000));
	assert_int_equal(f->seen.rejected, 0);
}

/* s-1 (1000..2000, completed, one alarm, a LOP measured in it), s-open (never
 * ended), s-2 (4000..4500, aborted, nothing else). */
static void record_sessions(struct fixture *f)
{
	struct store_alarm a = {
		.alarm_id = "a-1", .cuff = "bay1", .session_id = "s-1", .code = "over_pressure",
		.priority = "high", .kind = "physiological", .state = "active",
		.condition_present = true, .raised_ms = 1500, .message = "too high",
		.values_json = "{\"pressure_mmHg\":262}",
	};

	assert_int_equal(store_session_begin(f->st, "s-1",
					     "{\"exercises\":[{\"cuffs\":[\"bay1\"],"
					     "\"sets\":[30,15]}]}",
					     "p-7", 1000, 0),
			 0);
	assert_int_equal(store_lop_record(f->st, "bay1", "s-1", 180, 1100, 0), 0);
	assert_int_equal(store_session_event(f->st, "s-1", 2, "phase", "{\"phase\":\"set\"}",
					     1300, 0),
			 0);
	assert_int_equal(store_session_event(f->st, "s-1", 1, "started", "{}", 1200, 0), 0);
	assert_int_equal(store_set_figures(f->st, "s-1", 1, 2, "bay1", "{\"mean\":140.5}", 0), 0);
	assert_int_equal(store_set_figures(f->st, "s-1", 1, 1, "bay1", "{\"mean\":139}", 0), 0);
	assert_int_equal(store_alarm_record(f->st, &a, 1500, 0), 0);
	a.state = "acknowledged";
	a.acked_ms = 1600;
	a.acked_by = "nurse";
	assert_int_equal(store_alarm_record(f->st, &a, 1600, 0), 0);
	assert_int_equal(store_session_end(f->st, "s-1", "completed", 2000, 0), 0);
	assert_int_equal(store_session_begin(f->st, "s-open", "{}", NULL, 3000, 0), 0);
	assert_int_equal(store_session_begin(f->st, "s-2", "[]", NULL, 4000, 0), 0);
	assert_int_equal(store_session_end(f->st, "s-2", "aborted", 4500, 0), 0);
	wait_committed(f, 12);
}

/* Exports with opt and parses every line (at most max) into lines[]. */
static size_t export_lines(struct fixture *f, const struct export_options *opt, json_t **lines,
			   size_t max)
{
	char *buf = NULL, *p, *nl;
	size_t len = 0, count = 99, n = 0;
	FILE *mem = open_memstream(&buf, &len);
	json_error_t jerr;

	assert_non_null(mem);
	assert_int_equal(store_export_sessions(f->st, opt, mem, &count), 0);
	fclose(mem);
	for (p = buf; *p; p = nl + 1) {
		nl = strchr(p, '\n');
		assert_non_null(nl); /* every line is complete */
		*nl = '\0';
		assert_true(n < max);
		lines[n] = json_loads(p, 0, &jerr);
		assert_non_null(lines[n]);
		n++;
	}
	free(buf);
	assert_int_equal(count, n);
	return n;
}

static void free_lines(json_t **lines, size_t n)
{
	for (size_t i = 0; i < n; i++)
		json_decref(lines[i]);
}

static const char *str(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	assert_non_null(s);
	return s;
}

static void test_export_completed_sessions(void **state)
{
	struct fixture *f = *state;
	json_t *lines[4], *s1, *s2, *alarm, *hist, *lop;
	size_t n;

	record_sessions(f);
	n = export_lines(f, &all, lines, 4);
	assert_int_equal(n, 2);
	s1 = lines[0];
	s2 = lines[1];

	assert_int_equal(json_integer_value(json_object_get(s1, "v")), 1);
	assert_string_equal(str(s1, "gateway"), "gw-7");
	assert_string_equal(str(s1, "site"), "clinic-b");
	assert_string_equal(str(s1, "session_id"), "s-1");
	assert_string_equal(str(s1, "patient"), "p-7");
	assert_string_equal(str(s1, "outcome"), "completed");
	/* RFC 3339 UTC ms, like the MQTT payloads; the epoch-ms fields are gone. */
	assert_string_equal(str(s1, "started_at"), "1970-01-01T00:00:01.000Z");
	assert_string_equal(str(s1, "ended_at"), "1970-01-01T00:00:02.000Z");
	assert_null(json_object_get(s1, "started_ms"));
	assert_null(json_object_get(s1, "ended_ms"));
	assert_int_equal(json_array_size(json_object_get(json_object_get(s1, "plan"),
							 "exercises")),
			 1);
	/* Events in seq order whatever the insert order; payload is JSON. */
	assert_int_equal(json_integer_value(json_object_get(
				 json_array_get(json_object_get(s1, "events"), 0), "seq")),
			 1);
	assert_string_equal(str(json_array_get(json_object_get(s1, "events"), 0), "ts"),
			    "1970-01-01T00:00:01.200Z");
	assert_string_equal(str(json_object_get(json_array_get(json_object_get(s1, "events"), 1),
						"payload"),
				"phase"),
			    "set");
	assert_int_equal(json_integer_value(json_object_get(
				 json_array_get(json_object_get(s1, "figures"), 0), "set")),
			 1);
	alarm = json_array_get(json_object_get(s1, "alarms"), 0);
	assert_non_null(alarm);
	assert_string_equal(str(alarm, "state"), "acknowledged");
	assert_string_equal(str(alarm, "acked_by"), "nurse");
	assert_string_equal(str(alarm, "raised_at"), "1970-01-01T00:00:01.500Z");
	assert_string_equal(str(alarm, "acked_at"), "1970-01-01T00:00:01.600Z");
	assert_true(json_is_null(json_object_get(alarm, "cleared_at")));
	assert_true(json_is_true(json_object_get(alarm, "condition_present")));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(alarm, "values"),
							    "pressure_mmHg")),
			 262);
	hist = json_object_get(alarm, "history");
	assert_int_equal(json_array_size(hist), 2);
	assert_string_equal(str(json_array_get(hist, 1), "changed_at"),
			    "1970-01-01T00:00:01.600Z");
	/* The LOP measured in the session. */
	assert_int_equal(json_array_size(json_object_get(s1, "lop")), 1);
	lop = json_array_get(json_object_get(s1, "lop"), 0);
	assert_string_equal(str(lop, "cuff"), "bay1");
	assert_true(json_real_value(json_object_get(lop, "lop_mmHg")) == 180.0);
	assert_string_equal(str(lop, "measured_at"), "1970-01-01T00:00:01.100Z");
	assert_string_equal(str(lop, "source"), "session");
	assert_true(json_is_null(json_object_get(s1, "state")));

	assert_string_equal(str(s2, "session_id"), "s-2");
	assert_string_equal(str(s2, "gateway"), "gw-7");
	assert_int_equal(json_array_size(json_object_get(s2, "events")), 0);
	assert_int_equal(json_array_size(json_object_get(s2, "lop")), 0);
	assert_true(json_is_array(json_object_get(s2, "plan")));
	free_lines(lines, n);
}

static const json_t *lop_of(const json_t *session, const char *cuff, size_t nth)
{
	const json_t *lop;
	size_t i, seen = 0;

	json_array_foreach(json_object_get(session, "lop"), i, lop) {
		if (!strcmp(str(lop, "cuff"), cuff) && seen++ == nth)
			return lop;
	}
	return NULL;
}

/*
 * What each cuff's targets were based on: bay1 only has LOPs from before the
 * start (the last one counts, not one recorded after the start); bay2 was
 * measured in the session (an older LOP does not show); bay3 never had one.
 */
static void test_export_lop_sources(void **state)
{
	struct fixture *f = *state;
	const json_t *lop;
	json_t *lines[2];

	assert_int_equal(store_lop_record(f->st, "bay1", NULL, 170, 500, 0), 0);
	assert_int_equal(store_lop_record(f->st, "bay2", NULL, 150, 600, 0), 0);
	assert_int_equal(store_lop_record(f->st, "bay1", "s-0", 175.5, 800, 0), 0);
	assert_int_equal(store_session_begin(f->st, "s-1",
					     "{\"exercises\":[{\"cuffs\":[\"bay1\",\"bay2\"]},"
					     "{\"cuffs\":[\"bay2\",\"bay3\"]}]}",
					     NULL, 1000, 0),
			 0);
	assert_int_equal(store_lop_record(f->st, "bay2", "s-1", 190, 1100, 0), 0);
	assert_int_equal(store_lop_record(f->st, "bay2", "s-1", 192, 1900, 0), 0);
	assert_int_equal(store_session_end(f->st, "s-1", "completed", 3000, 0), 0);
	/* After the start, outside the session: not what s-1 used. */
	assert_int_equal(store_lop_record(f->st, "bay1", NULL, 200, 2000, 0), 0);
	assert_int_equal(store_lop_record(f->st, "bay3", NULL, 210, 2500, 0), 0);
	wait_committed(f, 9);

	assert_int_equal(export_lines(f, &all, lines, 2), 1);
	assert_int_equal(json_array_size(json_object_get(lines[0], "lop")), 4);

	lop = lop_of(lines[0], "bay1", 0);
	assert_non_null(lop);
	assert_string_equal(str(lop, "source"), "before");
	assert_true(json_real_value(json_object_get(lop, "lop_mmHg")) == 175.5);
	assert_string_equal(str(lop, "measured_at"), "1970-01-01T00:00:00.800Z");
	assert_null(lop_of(lines[0], "bay1", 1));

	/* Both measurements of the session, in order, and not the one before. */
	lop = lop_of(lines[0], "bay2", 0);
	assert_string_equal(str(lop, "source"), "session");
	assert_true(json_real_value(json_object_get(lop, "lop_mmHg")) == 190.0);
	lop = lop_of(lines[0], "bay2", 1);
	assert_non_null(lop);
	assert_string_equal(str(lop, "source"), "session");
	assert_string_equal(str(lop, "measured_at"), "1970-01-01T00:00:01.900Z");
	assert_null(lop_of(lines[0], "bay2", 2));

	lop = lop_of(lines[0], "bay3", 0);
	assert_non_null(lop);
	assert_string_equal(str(lop, "source"), "none");
	assert_true(json_is_null(json_object_get(lop, "lop_mmHg")));
	assert_true(json_is_null(json_object_get(lop, "measured_at")));
	assert_null(lop_of(lines[0], "bay3", 1));
	free_lines(lines, 1);
}

/* A LOP recorded in the very millisecond the session started counts as before it. */
static void test_export_lop_at_start(void **state)
{
	struct fixture *f = *state;
	const json_t *lop;
	json_t *lines[1];

	assert_int_equal(store_lop_record(f->st, "bay1", NULL, 160, 1000, 0), 0);
	assert_int_equal(store_session_begin(f->st, "s-1",
					     "{\"exercises\":[{\"cuffs\":[\"bay1\"]}]}", NULL, 1000,
					     0),
			 0);
	assert_int_equal(store_session_end(f->st, "s-1", "stopped", 1500, 0), 0);
	wait_committed(f, 3);
	assert_int_equal(export_lines(f, &all, lines, 1), 1);
	lop = lop_of(lines[0], "bay1", 0);
	assert_non_null(lop);
	assert_string_equal(str(lop, "source"), "before");
	assert_string_equal(str(lop, "measured_at"), "1970-01-01T00:00:01.000Z");
	free_lines(lines, 1);
}

/* --since: sessions started at or after the time; open sessions never. */
static void test_export_since(void **state)
{
	struct fixture *f = *state;
	static const struct {
		int64_t since_ms;
		size_t n;
		const char *first;
	} cases[] = {
		{ EXPORT_SINCE_ALL, 2, "s-1" }, { 0, 2, "s-1" },    { 1000, 2, "s-1" },
		{ 1001, 1, "s-2" },		{ 3000, 1, "s-2" }, { 4000, 1, "s-2" },
		{ 4001, 0, NULL },
	};
	struct export_options opt = all;
	json_t *lines[3];

	record_sessions(f);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n;

		opt.since_ms = cases[i].since_ms;
		n = export_lines(f, &opt, lines, 3);
		assert_int_equal(n, cases[i].n);
		if (n)
			assert_string_equal(str(lines[0], "session_id"), cases[i].first);
		free_lines(lines, n);
	}
}

static void test_export_format_time(void **state)
{
	static const struct {
		int64_t ms;
		const char *text;
	} good[] = {
		{ 0, "1970-01-01T00:00:00.000Z" },
		{ 1, "1970-01-01T00:00:00.001Z" },
		{ -1, "1969-12-31T23:59:59.999Z" },
		{ 1795512600123LL, "2026-11-24T09:30:00.123Z" },
		{ 951782400000LL, "2000-02-29T00:00:00.000Z" },
		{ EXPORT_TIME_MAX_MS, "9999-12-31T23:59:59.999Z" },
		{ EXPORT_TIME_MIN_MS, "0000-01-01T00:00:00.000Z" },
	};
	char out[32];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(export_format_time(good[i].ms, out), 0);
		assert_string_equal(out, good[i].text);
	}
	strcpy(out, "untouched");
	assert_int_equal(export_format_time(EXPORT_TIME_MAX_MS + 1, out), -ERANGE);
	assert_int_equal(export_format_time(EXPORT_TIME_MIN_MS - 1, out), -ERANGE);
	assert_int_equal(export_format_time(INT64_MAX, out), -ERANGE);
	assert_int_equal(export_format_time(INT64_MIN, out), -ERANGE);
	assert_string_equal(out, "untouched");
}

static void test_export_parse_time(void **state)
{
	static const struct {
		const char *text;
		int64_t ms;
	} good[] = {
		{ "1970-01-01T00:00:00Z", 0 },
		{ "2026-11-24T09:30:00.123Z", 1795512600123LL },
		{ "2026-11-24t09:30:00.123z", 1795512600123LL },
		{ "2026-11-24T10:30:00.123+01:00", 1795512600123LL },
		{ "2026-11-24T04:00:00.123-05:30", 1795512600123LL },
		{ "2026-11-24T09:30:00.1Z", 1795512600100LL },
		{ "2026-11-24T09:30:00.12Z", 1795512600120LL },
		/* Below a millisecond rounds up: "at or after" stays exact. */
		{ "2026-11-24T09:30:00.1231Z", 1795512600124LL },
		{ "2026-11-24T09:30:00.123000000Z", 1795512600123LL },
		{ "2000-02-29T00:00:00Z", 951782400000LL },
		{ "1969-12-31T23:59:59.999Z", -1 },
		/* A leap second counts as the next minute's first. */
		{ "2016-12-31T23:59:60Z", 1483228800000LL },
		{ "9999-12-31T23:59:59.999Z", EXPORT_TIME_MAX_MS },
		{ "0000-01-01T00:00:00Z", EXPORT_TIME_MIN_MS },
	};
	char out[32], err[128];
	int64_t ms;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ms = 77;
		err[0] = '\0';
		if (export_parse_time(good[i].text, &ms, err, sizeof(err)) != 0)
			fail_msg("%s: %s", good[i].text, err);
		assert_int_equal(ms, good[i].ms);
	}
	/* What the export writes reads back as the same time. */
	assert_int_equal(export_format_time(1795512600123LL, out), 0);
	assert_int_equal(export_parse_time(out, &ms, NULL, 0), 0);
	assert_int_equal(ms, 1795512600123LL);
}

static void test_export_parse_time_bad(void **state)
{
	static const struct {
		const char *text, *why;
	} bad[] = {
		{ "", "expected YYYY-MM-DDTHH:MM:SS" },
		{ "yesterday", "expected YYYY-MM-DDTHH:MM:SS" },
		{ "1795512600123", "expected YYYY-MM-DDTHH:MM:SS" },
		{ "2026-11-24", "expected YYYY-MM-DDTHH:MM:SS" },
		{ "2026-11-24 09:30:00Z", "expected YYYY-MM-DDTHH:MM:SS" },
		{ "2026-1-24T09:30:00Z", "expected YYYY-MM-DDTHH:MM:SS" },
		{ "26-11-24T09:30:00Z", "expected YYYY-MM-DDTHH:MM:SS" },
		{ "+2026-11-24T09:30:00Z", "expected YYYY-MM-DDTHH:MM:SS" },
		{ "2026-11-24T09:30Z", "expected YYYY-MM-DDTHH:MM:SS" },
		{ "2026-11-24T09:30:00", "no time zone" },
		{ "2026-11-24T09:30:00.123", "no time zone" },
		{ "2026-11-24T09:30:00.Z", "no digits after the '.'" },
		{ "2026-11-24T09:30:00+0100", "expected YYYY-MM-DDTHH:MM:SS" },
		{ "2026-11-24T09:30:00+01", "expected YYYY-MM-DDTHH:MM:SS" },
		{ "2026-11-24T09:30:00UTC", "expected YYYY-MM-DDTHH:MM:SS" },
		{ "2026-11-24T09:30:00Z ", "unexpected \" \" after the time zone" },
		{ "2026-11-24T09:30:00ZZ", "unexpected \"Z\" after the time zone" },
		{ "2026-13-01T00:00:00Z", "month 13 is not 01..12" },
		{ "2026-00-01T00:00:00Z", "month 00 is not 01..12" },
		{ "2026-11-00T00:00:00Z", "day 00 does not exist in 2026-11" },
		{ "2026-04-31T00:00:00Z", "day 31 does not exist in 2026-04" },
		{ "2025-02-29T00:00:00Z", "day 29 does not exist in 2025-02" },
		{ "1900-02-29T00:00:00Z", "day 29 does not exist in 1900-02" },
		{ "2026-11-24T24:00:00Z", "hour 24 is not 00..23" },
		{ "2026-11-24T09:60:00Z", "minute 60 is not 00..59" },
		{ "2026-11-24T09:30:61Z", "second 61 is not 00..60" },
		{ "2026-11-24T09:30:00+24:00", "offset +24:00 is not 00:00..23:59" },
		{ "2026-11-24T09:30:00-01:60", "offset -01:60 is not 00:00..23:59" },
	};
	char err[128];
	int64_t ms = 77;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (export_parse_time(bad[i].text, &ms, err, sizeof(err)) != -EINVAL)
			fail_msg("\"%s\" was accepted", bad[i].text);
		if (!strstr(err, bad[i].why))
			fail_msg("\"%s\": \"%s\" does not say \"%s\"", bad[i].text, err,
				 bad[i].why);
		assert_int_equal(ms, 77);
	}
	assert_int_equal(export_parse_time(NULL, &ms, err, sizeof(err)), -EINVAL);
	assert_int_equal(export_parse_time("2026-11-24T09:30:00Z", NULL, NULL, 0), -EINVAL);
	/* No room for a reason is fine too. */
	assert_int_equal(export_parse_time("nope", &ms, NULL, 0), -EINVAL);
	assert_int_equal(ms, 77);
}

/* Exports into memory; returns the result and leaves the text in *text. */
static int export_to_mem(struct fixture *f, const struct export_options *opt, char **text,
			 size_t *count)
{
	size_t len = 0;
	FILE *mem = open_memstream(text, &len);
	int r;

	assert_non_null(mem);
	r = store_export_sessions(f->st, opt, mem, count);
	fclose(mem);
	return r;
}

static void test_export_errors(void **state)
{
	struct fixture *f = *state;
	struct export_options opt = all;
	size_t count = 77;
	char *text = NULL;
	FILE *ro;

	record_sessions(f);
	assert_int_equal(store_export_sessions(NULL, &all, stdout, &count), -EINVAL);
	assert_int_equal(store_export_sessions(f->st, NULL, stdout, &count), -EINVAL);
	assert_int_equal(store_export_sessions(f->st, &all, NULL, &count), -EINVAL);
	opt.gateway_id = NULL;
	assert_int_equal(store_export_sessions(f->st, &opt, stdout, &count), -EINVAL);
	opt = all;
	opt.site = NULL;
	assert_int_equal(store_export_sessions(f->st, &opt, stdout, &count), -EINVAL);
	/* A stream that cannot be written. */
	ro = fopen("/dev/null", "r");
	assert_non_null(ro);
	assert_int_equal(store_export_sessions(f->st, &all, ro, &count), -EIO);
	fclose(ro);
	assert_int_equal(count, 77);

	/* A stored time RFC 3339 cannot carry is reported, not written as garbage;
	 * the line before it stays whole. */
	assert_int_equal(store_test_exec(f->st, "UPDATE sessions SET ended_ms = 253402300800000 "
						"WHERE id='s-2'"),
			 0);
	assert_int_equal(export_to_mem(f, &all, &text, &count), -ERANGE);
	assert_non_null(strstr(text, "\"session_id\":\"s-1\""));
	assert_ptr_equal(strchr(text, '\n'), text + strlen(text) - 1);
	free(text);
	text = NULL;
	assert_int_equal(store_test_exec(f->st, "UPDATE sessions SET ended_ms = 4500 "
						"WHERE id='s-2'"),
			 0);
	assert_int_equal(store_test_exec(f->st, "UPDATE alarm_history "
						"SET changed_ms = -62167219200001"),
			 0);
	assert_int_equal(export_to_mem(f, &all, &text, &count), -ERANGE);
	assert_string_equal(text, "");
	free(text);
	text = NULL;
	assert_int_equal(store_test_exec(f->st, "UPDATE alarm_history SET changed_ms = 1600"), 0);

	/* A damaged JSON column is reported, not exported as garbage ... */
	assert_int_equal(store_test_exec(f->st, "UPDATE sessions SET plan = '{bad' WHERE id='s-1'"),
			 0);
	assert_int_equal(export_to_mem(f, &all, &text, &count), -EBADMSG);
	assert_string_equal(text, "");
	free(text);
	text = NULL;
	assert_int_equal(count, 77);
	/* ... unless --since leaves that session out. */
	opt = all;
	opt.since_ms = 1001;
	assert_int_equal(export_to_mem(f, &opt, &text, &count), 0);
	assert_non_null(strstr(text, "\"session_id\":\"s-2\""));
	assert_int_equal(count, 1);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_export_completed_sessions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_export_lop_sources, setup, teardown),
		cmocka_unit_test_setup_teardown(test_export_lop_at_start, setup, teardown),
		cmocka_unit_test_setup_teardown(test_export_since, setup, teardown),
		cmocka_unit_test(test_export_format_time),
		cmocka_unit_test(test_export_parse_time),
		cmocka_unit_test(test_export_parse_time_bad),
		cmocka_unit_test_setup_teardown(test_export_errors, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
