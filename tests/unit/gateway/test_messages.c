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

static void test_cuff_state(void **state)
{
	const char *ids[2] = { "gw1-7", "gw1-9" };
	struct msg_cuff_state live = {
		.cuff = "bay1-left", .link = "connected", .pressure_mmhg = 149.96,
		.target_mmhg = 150, .battery_pct = 87, .lop_mmhg = 212.34,
		.session_id = "sb00t-1", .alarm_ids = ids, .n_alarms = 2,
		.cuff_state = "holding", .limb = "leg", .status_bits = 5,
	};
	struct msg_cuff_state unknown = {
		.cuff = "bay2-arm", .link = "error", .link_error = "no Bluetooth",
		.pressure_mmhg = NAN, .target_mmhg = NAN, .battery_pct = -1, .lop_mmhg = NAN,
		.limb = "arm", .status_bits = -1,
	};
	json_t *p = msg_cuff_state(&ctx, &live);

	assert_true(json_real_value(json_object_get(p, "pressure_mmHg")) == 150.0);
	assert_int_equal(json_array_size(json_object_get(p, "alarms_active")), 2);
	done("cuff-state", p);
	p = msg_cuff_state(&ctx, &unknown);
	assert_true(json_is_null(json_object_get(p, "pressure_mmHg")));
	assert_true(json_is_null(json_object_get(p, "battery_pct")));
	assert_true(json_is_null(json_object_get(p, "session_id")));
	assert_string_equal(json_string_value(json_object_get(p, "link_error")), "no Bluetooth");
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
	done("alarm", p);
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
				    .exercise_name = "squat", .set = 2, .rep = 7,
				    .seconds_left = 13, .inflation_s = 61.25 };
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

	done("session-state", msg_session_state(&ctx, "sb00t-1", &st, cuffs, 2));
	st = (struct session_state){ .phase = SESSION_PHASE_LOP, .exercise = -1,
				     .seconds_left = -1 };
	p = msg_session_state(&ctx, "sb00t-1", &st, cuffs, 1);
	assert_true(json_is_null(json_object_get(p, "set")));
	done("session-state", p);
	sum.alarm_ids = alarms;
	p = msg_session_summary(&ctx, &sum, ex);
	assert_true(json_is_null(json_object_get(p, "reason")));
	done("session-summary", p);
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
		cmocka_unit_test_setup(test_cuff_state, setup),
		cmocka_unit_test_setup(test_telemetry, setup),
		cmocka_unit_test_setup(test_alarm_and_values_round_trip, setup),
		cmocka_unit_test_setup(test_session_event_every_type, setup),
		cmocka_unit_test_setup(test_session_state_and_summary, setup),
		cmocka_unit_test_setup(test_out_of_memory, setup),
	};

	return cmocka_run_group_tests(tests, NULL, teardown_group);
}
