/* test_export.c - completed sessions as JSON lines. */
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

static void record_sessions(struct fixture *f)
{
	struct store_alarm a = {
		.alarm_id = "a-1", .cuff = "bay1", .session_id = "s-1", .code = "over_pressure",
		.priority = "high", .kind = "physiological", .state = "active",
		.condition_present = true, .raised_ms = 1500, .message = "too high",
		.values_json = "{\"pressure_mmHg\":262}",
	};
	struct count_goal g = { .seen = &f->seen, .committed = 12 };

	assert_int_equal(store_session_begin(f->st, "s-1", "{\"exercises\":[{\"sets\":[30,15]}]}",
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
	assert_true(wait_until(f->st, goal_reached, &g, 5000));
	assert_int_equal(f->seen.rejected, 0);
}

static void test_export_completed_sessions(void **state)
{
	struct fixture *f = *state;
	char *buf = NULL, *line2;
	size_t len = 0, count = 0;
	FILE *mem = open_memstream(&buf, &len);
	json_error_t jerr;
	json_t *s1, *s2, *alarm;

	record_sessions(f);
	assert_non_null(mem);
	assert_int_equal(store_export_sessions(f->st, mem, &count), 0);
	fclose(mem);
	assert_int_equal(count, 2);
	line2 = strchr(buf, '\n');
	assert_non_null(line2);
	*line2++ = '\0';
	assert_non_null(strchr(line2, '\n'));

	s1 = json_loads(buf, 0, &jerr);
	assert_non_null(s1);
	assert_string_equal(json_string_value(json_object_get(s1, "session_id")), "s-1");
	assert_string_equal(json_string_value(json_object_get(s1, "patient")), "p-7");
	assert_string_equal(json_string_value(json_object_get(s1, "outcome")), "completed");
	assert_int_equal(json_integer_value(json_object_get(s1, "ended_ms")), 2000);
	assert_int_equal(json_array_size(json_object_get(json_object_get(s1, "plan"),
							 "exercises")),
			 1);
	/* Events in seq order whatever the insert order; payload is JSON. */
	assert_int_equal(json_integer_value(json_object_get(
				 json_array_get(json_object_get(s1, "events"), 0), "seq")),
			 1);
	assert_string_equal(
		json_string_value(json_object_get(
			json_object_get(json_array_get(json_object_get(s1, "events"), 1), "payload"),
			"phase")),
		"set");
	assert_int_equal(json_integer_value(json_object_get(
				 json_array_get(json_object_get(s1, "figures"), 0), "set")),
			 1);
	alarm = json_array_get(json_object_get(s1, "alarms"), 0);
	assert_non_null(alarm);
	assert_string_equal(json_string_value(json_object_get(alarm, "state")), "acknowledged");
	assert_string_equal(json_string_value(json_object_get(alarm, "acked_by")), "nurse");
	assert_true(json_is_true(json_object_get(alarm, "condition_present")));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(alarm, "values"),
							    "pressure_mmHg")),
			 262);
	assert_int_equal(json_array_size(json_object_get(alarm, "history")), 2);
	assert_true(json_is_null(json_object_get(alarm, "cleared_ms")));
	assert_true(json_real_value(json_object_get(json_array_get(json_object_get(s1, "lop"), 0),
						    "lop_mmHg")) == 180.0);
	assert_true(json_is_null(json_object_get(s1, "state")));

	s2 = json_loads(line2, 0, &jerr);
	assert_non_null(s2);
	assert_string_equal(json_string_value(json_object_get(s2, "session_id")), "s-2");
	assert_int_equal(json_array_size(json_object_get(s2, "events")), 0);
	assert_true(json_is_array(json_object_get(s2, "plan")));
	json_decref(s1);
	json_decref(s2);
	free(buf);
}

static void test_export_errors(void **state)
{
	struct fixture *f = *state;
	size_t count = 77;
	FILE *ro;

	record_sessions(f);
	assert_int_equal(store_export_sessions(NULL, stdout, &count), -EINVAL);
	assert_int_equal(store_export_sessions(f->st, NULL, &count), -EINVAL);
	/* A stream that cannot be written. */
	ro = fopen("/dev/null", "r");
	assert_non_null(ro);
	assert_int_equal(store_export_sessions(f->st, ro, &count), -EIO);
	fclose(ro);
	/* A damaged JSON column is reported, not exported as garbage. */
	assert_int_equal(store_test_exec(f->st, "UPDATE sessions SET plan = '{bad' WHERE id='s-2'"),
			 0);
	{
		char *buf = NULL;
		size_t len = 0;
		FILE *mem = open_memstream(&buf, &len);

		assert_int_equal(store_export_sessions(f->st, mem, &count), -EBADMSG);
		fclose(mem);
		free(buf);
	}
	assert_int_equal(count, 77);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_export_completed_sessions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_export_errors, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
