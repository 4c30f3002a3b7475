/*
 * test_messages.c - the JSON builders (gateway/src/messages.c): every
 * message built from typical and edge-case inputs, fields checked here.
 *
 * With BFR_MESSAGES_OUT=FILE set, every message built is also written to
 * FILE as "<schema kind> <json>" lines; tests/integration/
 * test_messages_schema.py runs this program that way and validates each
 * line against schemas/ (jsonschema, draft 2020-12).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "messages.h"
#include "test_alloc.h"

static FILE *dump;
static struct payload_ctx ctx;
static uint64_t wall = 1795512600123ull;

static uint64_t fixed_wall(void *data)
{
	return *(uint64_t *)data;
}

/* Checks the envelope, dumps the message for the schema check, frees it. */
static void done(const char *kind, json_t *p)
{
	char *text;

	assert_non_null(p);
	assert_int_equal(json_integer_value(json_object_get(p, "v")), 1);
	assert_string_equal(json_string_value(json_object_get(p, "ts")), "2026-11-24T09:30:00.123Z");
	assert_non_null(json_string_value(json_object_get(p, "msg_id")));
	text = json_dumps(p, MSG_JSON_FLAGS);
	assert_non_null(text);
	if (dump)
		fprintf(dump, "%s %s\n", kind, text);
	free(text);
	json_decref(p);
}

static int setup(void **state)
{
	const char *out = getenv("BFR_MESSAGES_OUT");

	assert_int_equal(payload_ctx_init(&ctx, "clinic-a", "gw1", "b00t"), 0);
	ctx.wall_ms = fixed_wall;
	ctx.wall_data = &wall;
	if (out && !dump) {
		dump = fopen(out, "w");
		assert_non_null(dump);
	}
	return 0;
}

static void test_status(void **state)
{
	struct msg_status st = { .state = "online", .gateway = "gw1", .site = "clinic-a",
				 .cuffs = 4, .outbox_depth = 17, .started_wall_ms = wall - 5000 };
	json_t *p = msg_status(&ctx, &st);

	assert_string_equal(json_string_value(json_object_get(p, "state")), "online");
	assert_int_equal(json_integer_value(json_object_get(p, "outbox_depth")), 17);
	assert_string_equal(json_string_value(json_object_get(p, "started_at")),
			    "2026-11-24T09:29:55.123Z");
	done("status", p);
	st.state = "offline";
	done("status", msg_status(&ctx, &st));
}

static void test_sessions(void **state)
{
	const char *ids[2] = { "sb00t-1", "sb00t-2" };
	json_t *p = msg_sessions(&ctx, ids, 2);

	assert_int_equal(json_array_size(json_object_get(p, "active")), 2);
	assert_string_equal(json_string_value(json_array_get(json_object_get(p, "active"), 1)),
			    "sb00t-2");
	done("sessions", p);
	p = msg_sessions(&ctx, NULL, 0);
	assert_int_equal(json_array_size(json_object_get(p, "active")), 0);
	done("sessions", p);
}

static void test_cuff_state(void **state)
{
	const char *ids[2] = { "gw1-7", "gw1-9" };
	struct msg_cuff_state live = {
		.cuff = "bay1-left", .link = "connected", .pressure_mmhg = 149.96,
		.target_mmhg = 150, .battery_pct = 87, .lop_mmhg = 212.34,
		.session_id = "sb00t-1", .alarm_ids = ids, .n_alarms = 2,
		.cuff_state = "holding", .limb = "leg", .status_bits = 5,
		.label = "Bay 1, left thigh (Jürgen)", .serial = "SN-0042", .model = "BFR-1",
		.firmware = "1.2.3", .lop_measured_wall_ms = 1795000000000, .data_age_ms = 40,
		.lop_search_mmhg = NAN,
	};
	struct msg_cuff_state measuring = {
		.cuff = "bay1-left", .link = "connected", .pressure_mmhg = 182.04,
		.target_mmhg = NAN, .battery_pct = 87, .lop_mmhg = NAN, .cuff_state = "measuring_lop",
		.limb = "leg", .status_bits = 5, .serial = "", .data_age_ms = 0,
		.measuring_lop = true, .lop_search_mmhg = 182.04,
	};
	struct msg_cuff_state unknown = {
		.cuff = "bay2-arm", .link = "error", .link_error = "no Bluetooth",
		.pressure_mmhg = NAN, .target_mmhg = NAN, .battery_pct = -1, .lop_mmhg = NAN,
		.limb = "arm", .status_bits = -1, .data_age_ms = -1, .lop_search_mmhg = NAN,
	};
	json_t *p = msg_cuff_state(&ctx, &live);

	assert_true(json_real_value(json_object_get(p, "pressure_mmHg")) == 150.0);
	assert_int_equal(json_array_size(json_object_get(p, "alarms_active")), 2);
	assert_string_equal(json_string_value(json_object_get(p, "serial")), "SN-0042");
	assert_string_equal(json_string_value(json_object_get(p, "lop_measured_at")),
			    "2026-11-18T11:06:40.000Z");
	assert_int_equal(json_integer_value(json_object_get(p, "data_age_ms")), 40);
	assert_true(json_is_false(json_object_get(p, "measuring_lop")));
	assert_true(json_is_null(json_object_get(p, "lop_search_mmHg")));
	done("cuff-state", p);
	/* A LOP search: its pressure, and no "target". */
	p = msg_cuff_state(&ctx, &measuring);
	assert_true(json_is_true(json_object_get(p, "measuring_lop")));
	assert_true(json_is_null(json_object_get(p, "target_mmHg")));
	assert_true(json_real_value(json_object_get(p, "lop_search_mmHg")) == 182.0);
	assert_true(json_is_null(json_object_get(p, "serial"))); /* "" is not a serial */
	done("cuff-state", p);
	p = msg_cuff_state(&ctx, &unknown);
	assert_true(json_is_null(json_object_get(p, "pressure_mmHg")));
	assert_true(json_is_null(json_object_get(p, "battery_pct")));
	assert_true(json_is_null(json_object_get(p, "session_id")));
	assert_string_equal(json_string_value(json_object_get(p, "link_error")), "no Bluetooth");
	assert_true(json_is_null(json_object_get(p, "data_age_ms")));
	assert_true(json_is_null(json_object_get(p, "lop_measured_at")));
	assert_true(json_is_null(json_object_get(p, "label")));
	done("cuff-state", p);
}

static void test_telemetry(void **state)
{
	struct msg_telemetry_sample s[MSG_TELEMETRY_MAX];
	json_t *p;

	for (size_t i = 0; i < MSG_TELEMETRY_MAX; i++)
		s[i] = (struct msg_telemetry_sample){ .t_ms = 1000 + 20 * (uint32_t)i,
						      .pressure = 150.04f, .target = 150,
						      .pulse = i % 2 ? NAN : 2.5f };
	p = msg_telemetry(&ctx, "bay1-left", s, MSG_TELEMETRY_MAX);
	assert_int_equal(json_array_size(json_object_get(p, "samples")), MSG_TELEMETRY_MAX);
	assert_true(json_is_null(json_array_get(json_array_get(json_object_get(p, "samples"), 1),
						3)));
	done("telemetry", p);
	done("telemetry", msg_telemetry(&ctx, "bay1-left", s, 1));
}

static void test_alarm_and_values_round_trip(void **state)
{
	struct alarm_record rec = {
		.alarm_id = "gw1-42", .cuff = "bay1-left", .session_id = "sb00t-1",
		.code = ALARM_OVER_PRESSURE_CEILING, .priority = ALARM_PRIO_HIGH,
		.kind = ALARM_KIND_PHYSIOLOGICAL, .state = ALARM_STATE_ACTIVE,
		.condition_present = true, .raised_at_ms = wall, .message = "over the ceiling",
		.values = { 262.04, 150, 250, NAN },
	};
	struct alarm_values back;
	json_t *p = msg_alarm(&ctx, &rec), *v;
	char *text;

	v = json_object_get(p, "values");
	assert_int_equal(json_object_size(v), 3); /* NAN is left out */
	text = json_dumps(v, JSON_COMPACT);
	back = msg_alarm_values_parse(text);
	free(text);
	assert_true(back.pressure_mmhg == 262.0 && back.target_mmhg == 150 && back.limit == 250);
	assert_true(isnan(back.duration_s));
	assert_true(json_is_null(json_object_get(p, "acked_at")));
	/* Every number has its unit (the ceiling's limit is a pressure). */
	v = json_object_get(p, "units");
	assert_int_equal(json_object_size(v), 3);
	assert_string_equal(json_string_value(json_object_get(v, "limit")), "mmHg");
	assert_string_equal(json_string_value(json_object_get(v, "pressure_mmHg")), "mmHg");
	done("alarm", p);
	/* A time limit is in seconds, and so is the duration. */
	rec.code = ALARM_INFLATION_TIME;
	rec.values = (struct alarm_values){ 150, 150, 600, 600.2 };
	p = msg_alarm(&ctx, &rec);
	v = json_object_get(p, "units");
	assert_string_equal(json_string_value(json_object_get(v, "limit")), "s");
	assert_string_equal(json_string_value(json_object_get(v, "duration_s")), "s");
	done("alarm", p);
	rec.code = ALARM_OVER_PRESSURE_CEILING;
	/* acknowledged, gateway-wide, cleared */
	rec.cuff[0] = '\0';
	rec.session_id[0] = '\0';
	rec.code = ALARM_ESTOP;
	rec.kind = ALARM_KIND_TECHNICAL;
	rec.state = ALARM_STATE_CLEARED;
	rec.acked_at_ms = wall;
	strcpy(rec.acked_by, "Jane");
	rec.cleared_at_ms = wall + 1;
	p = msg_alarm(&ctx, &rec);
	assert_true(json_is_null(json_object_get(p, "cuff")));
	done("alarm", p);
	/* Garbage stored values come back as NAN, never as a crash. */
	back = msg_alarm_values_parse("[1,2]");
	assert_true(isnan(back.pressure_mmhg) && isnan(back.limit));
	back = msg_alarm_values_parse("{\"limit\":\"x\"}");
	assert_true(isnan(back.limit));
	back = msg_alarm_values_parse(NULL);
	assert_true(isnan(back.target_mmhg));
}

static void test_session_event_every_type(void **state)
{
	for (int t = SESSION_EV_STARTED; t <= SESSION_EV_ABORTED; t++) {
		struct session_event e = { .seq = (uint32_t)t + 1, .type = (enum session_event_type)t,
					   .phase = SESSION_PHASE_SET, .exercise = t == 0 ? -1 : 0,
					   .exercise_name = t == 0 ? NULL : "squat",
					   .set = 1, .rep = 2, .cuff = "bay1-left",
					   .lop_mmHg = 201.26 };
		json_t *p;

		if (t == SESSION_EV_ALARM)
			strcpy(e.alarm_id, "gw1-3");
		if (t == SESSION_EV_ABORTED || t == SESSION_EV_STOPPED || t == SESSION_EV_REFUSED)
			strcpy(e.reason, "estop");
		p = msg_session_event(&ctx, "sb00t-1", &e);
		assert_string_equal(json_string_value(json_object_get(p, "type")),
				    session_event_type_name(e.type));
		if (t == SESSION_EV_ALARM)
			assert_string_equal(json_string_value(json_object_get(p, "alarm_id")),
					    "gw1-3");
		done("session-event", p);
	}
}

static void test_session_state_and_summary(void **state)
{
	const char *cuffs[2] = { "bay1-left", "bay1-right" };
	struct session_state st = { .phase = SESSION_PHASE_SET, .exercise = 0,
				    .exercise_name = "squat", .n_exercises = 2, .set = 2,
				    .n_sets = 3, .rep = 7, .n_reps = 15, .pct_lop = 60,
				    .n_targets = 2, .target_cuffs = { "bay1-left", "bay1-right" },
				    .targets = { 127.44, NAN }, .seconds_left = 13,
				    .session_left_s = 600, .inflation_s = 61.25 };
	struct msg_session_state ss = { .session_id = "sb00t-1", .st = &st, .cuffs = cuffs,
					.n_cuffs = 2, .patient = "p-0042" };
	struct set_figures f = { .mean_mmHg = 150.04, .min_mmHg = 140, .max_mmHg = 160,
				 .pct_within_10 = 99.5, .pct_within_5 = 90.1,
				 .peak_pct_lop = 75.3, .time_under_pressure_s = 40 };
	struct msg_summary sum = { .session_id = "sb00t-1", .outcome = "completed",
				   .started_wall_ms = wall - 60000, .ended_wall_ms = wall,
				   .inflation_s = 61.25 };
	json_t *alarms = json_pack("[s]", "gw1-3");
	json_t *ex = json_pack("[{s:s, s:[o,o]}]", "name", "squat", "sets",
			       msg_set_figures(&f, 1, "bay1-left"),
			       msg_set_figures(NULL, 2, "bay1-left"));
	json_t *p;

	p = msg_session_state(&ctx, &ss);
	assert_string_equal(json_string_value(json_object_get(p, "patient")), "p-0042");
	assert_int_equal(json_integer_value(json_object_get(p, "n_reps")), 15);
	assert_int_equal(json_integer_value(json_object_get(p, "session_left_s")), 600);
	assert_true(json_real_value(json_object_get(json_object_get(p, "targets"), "bay1-left")) ==
		    127.4);
	assert_true(json_is_null(json_object_get(json_object_get(p, "targets"), "bay1-right")));
	assert_true(json_is_null(json_object_get(p, "resume_at")));
	done("session-state", p);
	/* Paused, waiting for the reperfusion: when a resume is accepted. */
	st.phase = SESSION_PHASE_PAUSED;
	ss.resume_wall_ms = wall + 42000;
	p = msg_session_state(&ctx, &ss);
	assert_non_null(json_string_value(json_object_get(p, "resume_at")));
	done("session-state", p);
	st = (struct session_state){ .phase = SESSION_PHASE_LOP, .exercise = -1,
				     .n_exercises = 1, .seconds_left = -1, .session_left_s = 300 };
	ss = (struct msg_session_state){ .session_id = "sb00t-1", .st = &st, .cuffs = cuffs,
					 .n_cuffs = 1 };
	p = msg_session_state(&ctx, &ss);
	assert_true(json_is_null(json_object_get(p, "set")));
	assert_true(json_is_null(json_object_get(p, "patient")));
	assert_true(json_is_null(json_object_get(p, "n_reps")));
	done("session-state", p);
	sum.alarm_ids = alarms;
	p = msg_session_summary(&ctx, &sum, ex);
	assert_true(json_is_null(json_object_get(p, "reason")));
	done("session-summary", p);
	sum.outcome = "stopped";
	sum.reason = "stopped";
	sum.by = "J. Meyer";
	sum.note = "patient tired";
	p = msg_session_summary(&ctx, &sum, json_array());
	assert_string_equal(json_string_value(json_object_get(p, "by")), "J. Meyer");
	assert_string_equal(json_string_value(json_object_get(p, "note")), "patient tired");
	done("session-summary", p);
	sum.by = sum.note = NULL;
	sum.outcome = "aborted";
	sum.reason = "gateway_restart";
	sum.alarm_ids = NULL;
	done("session-summary", msg_session_summary(&ctx, &sum, json_array()));
	json_decref(alarms);
	/* Out of memory for the exercises: no summary, nothing leaked. */
	assert_null(msg_session_summary(&ctx, &sum, NULL));
}

static void test_out_of_memory(void **state)
{
	struct msg_status st = { .state = "online", .gateway = "gw1", .site = "clinic-a" };

	for (long n = 0; n < 4; n++) {
		json_t *p;

		test_alloc_fail_after(n);
		p = msg_status(&ctx, &st);
		test_alloc_reset();
		json_decref(p); /* NULL or a message: never a crash, never a leak */
	}
}

static int teardown_group(void **state)
{
	if (dump)
		fclose(dump);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_status, setup),
		cmocka_unit_test_setup(test_sessions, setup),
		cmocka_unit_test_setup(test_cuff_state, setup),
		cmocka_unit_test_setup(test_telemetry, setup),
		cmocka_unit_test_setup(test_alarm_and_values_round_trip, setup),
		cmocka_unit_test_setup(test_session_event_every_type, setup),
		cmocka_unit_test_setup(test_session_state_and_summary, setup),
		cmocka_unit_test_setup(test_out_of_memory, setup),
	};

	return cmocka_run_group_tests(tests, NULL, teardown_group);
}
