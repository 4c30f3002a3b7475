/*
 * test_prescription.c - the rules of a home start (DESIGN section 11) with
 * an injected wall clock: the window, sessions per local day, the gap
 * between sessions, live supervision, the order of the checks and the
 * sentences a patient reads; the prescription's JSON form round-trips
 * through the command parser; the supervisor presence parser refuses every
 * bad payload and changes nothing.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "command.h"
#include "prescription.h"
#include "test_alloc.h"

#define MIN 60000LL
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)
/* 2026-11-24T00:00:00Z: "today" starts here in these tests (a UTC day). */
#define T0 1795478400000LL

static struct prescription rx;

static void rx_init(unsigned per_day, unsigned hours, enum prescription_supervision sup)
{
	memset(&rx, 0, sizeof(rx));
	rx.plan.n_exercises = 1;
	rx.rules.valid_from_ms = T0 - 7 * DAY;
	rx.rules.valid_until_ms = T0 + 7 * DAY;
	rx.rules.max_per_day = per_day;
	rx.rules.min_hours_between = hours;
	rx.rules.supervision = sup;
}

/* now at T0 + at, in the UTC day that contains it. */
static struct prescription_now at(int64_t ms, bool present)
{
	int64_t wall = T0 + ms;
	int64_t day = wall - ((wall - T0) % DAY + DAY) % DAY;

	return (struct prescription_now){ .wall_ms = wall, .day_start_ms = day,
					  .day_end_ms = day + DAY, .supervisor_present = present };
}

static void expect(int ret, const struct prescription_verdict *v,
		   enum prescription_refusal refusal, const char *sentence_part)
{
	if ((refusal == PRESCRIPTION_OK) != (ret == 0) || v->refusal != refusal ||
	    (sentence_part && !strstr(v->sentence, sentence_part)))
		fail_msg("ret %d refusal %s sentence \"%s\"; want %s \"%s\"", ret,
			 prescription_refusal_name(v->refusal), v->sentence,
			 prescription_refusal_name(refusal), sentence_part ? sentence_part : "");
	if (refusal != PRESCRIPTION_OK)
		assert_int_equal(ret, -EPERM);
}

static void test_no_prescription(void **state)
{
	struct prescription_now now = at(10 * HOUR, true);
	struct prescription_verdict v;

	expect(prescription_may_start(NULL, NULL, 0, &now, &v), &v, PRESCRIPTION_REFUSE_NONE,
	       "No session is prescribed");
	assert_string_equal(prescription_refusal_name(v.refusal), "no_prescription");
}

static void test_window_edges(void **state)
{
	struct prescription_now now;
	struct prescription_verdict v;

	rx_init(1, 0, PRESCRIPTION_SUPERVISION_NONE);
	rx.rules.valid_from_ms = T0 + 10 * HOUR;
	rx.rules.valid_until_ms = T0 + 12 * HOUR;
	now = at(10 * HOUR - 1, false);
	expect(prescription_may_start(&rx, NULL, 0, &now, &v), &v,
	       PRESCRIPTION_REFUSE_NOT_YET_VALID, "Your prescription starts in 1 min.");
	assert_int_equal(v.next_start_ms, rx.rules.valid_from_ms);
	now = at(8 * HOUR - 30 * MIN, false);
	expect(prescription_may_start(&rx, NULL, 0, &now, &v), &v,
	       PRESCRIPTION_REFUSE_NOT_YET_VALID, "starts in 2 h 30 min.");
	now = at(10 * HOUR, false); /* valid_from is inclusive */
	expect(prescription_may_start(&rx, NULL, 0, &now, &v), &v, PRESCRIPTION_OK, "");
	assert_string_equal(v.sentence, "");
	now = at(12 * HOUR - 1, false);
	expect(prescription_may_start(&rx, NULL, 0, &now, &v), &v, PRESCRIPTION_OK, NULL);
	now = at(12 * HOUR, false); /* valid_until is not */
	expect(prescription_may_start(&rx, NULL, 0, &now, &v), &v, PRESCRIPTION_REFUSE_EXPIRED,
	       "Your prescription has ended.");
	rx.rules.valid_from_ms = T0 + 5 * DAY;
	rx.rules.valid_until_ms = T0 + 9 * DAY;
	now = at(HOUR, false);
	expect(prescription_may_start(&rx, NULL, 0, &now, &v), &v,
	       PRESCRIPTION_REFUSE_NOT_YET_VALID, "starts in 5 days.");
}

/* Only the starts of the local day count; the day's end is when it may go on. */
static void test_daily_limit(void **state)
{
	const int64_t starts[] = { T0 - 2 * HOUR, T0 + 8 * HOUR, T0 + 13 * HOUR };
	struct prescription_now now = at(20 * HOUR, false);
	struct prescription_verdict v;

	rx_init(2, 0, PRESCRIPTION_SUPERVISION_REMOTE);
	expect(prescription_may_start(&rx, starts, 2, &now, &v), &v, PRESCRIPTION_OK, NULL);
	assert_int_equal(v.started_today, 1);
	expect(prescription_may_start(&rx, starts, 3, &now, &v), &v,
	       PRESCRIPTION_REFUSE_DAILY_LIMIT,
	       "You have already done today's 2 prescribed sessions. You can start the next one "
	       "in 4 h.");
	assert_int_equal(v.started_today, 2);
	assert_int_equal(v.next_start_ms, T0 + DAY);
	/* Tomorrow the same starts count for yesterday. */
	now = at(DAY + 5 * MIN, false);
	expect(prescription_may_start(&rx, starts, 3, &now, &v), &v, PRESCRIPTION_OK, NULL);
	assert_int_equal(v.started_today, 0);
	/* One a day, and the prescription ends before tomorrow. */
	rx_init(1, 0, PRESCRIPTION_SUPERVISION_NONE);
	rx.rules.valid_until_ms = T0 + 23 * HOUR;
	now = at(14 * HOUR, false);
	expect(prescription_may_start(&rx, starts + 1, 1, &now, &v), &v,
	       PRESCRIPTION_REFUSE_DAILY_LIMIT,
	       "today's 1 prescribed session. Your prescription ends before the next one would "
	       "be allowed.");
	assert_int_equal(v.next_start_ms, 0);
}

static void test_min_hours_between(void **state)
{
	const int64_t starts[] = { T0 - 3 * HOUR, T0 + 9 * HOUR };
	struct prescription_now now = at(12 * HOUR + 30 * MIN, false);
	struct prescription_verdict v;
	int64_t future;

	rx_init(10, 4, PRESCRIPTION_SUPERVISION_NONE);
	expect(prescription_may_start(&rx, starts, 2, &now, &v), &v, PRESCRIPTION_REFUSE_TOO_SOON,
	       "Your sessions must be at least 4 hours apart. You can start the next one in "
	       "30 min.");
	assert_int_equal(v.next_start_ms, T0 + 13 * HOUR);
	now = at(13 * HOUR, false); /* exactly min_hours_between later */
	expect(prescription_may_start(&rx, starts, 2, &now, &v), &v, PRESCRIPTION_OK, NULL);
	/* 0 means no gap is needed. */
	rx.rules.min_hours_between = 0;
	now = at(9 * HOUR + 1, false);
	expect(prescription_may_start(&rx, starts, 2, &now, &v), &v, PRESCRIPTION_OK, NULL);
	/* A start after now (the wall clock went back) counts as now. */
	rx.rules.min_hours_between = 1;
	future = T0 + 15 * HOUR;
	now = at(12 * HOUR, false);
	expect(prescription_may_start(&rx, &future, 1, &now, &v), &v, PRESCRIPTION_REFUSE_TOO_SOON,
	       "at least 1 hour apart. You can start the next one in 1 h.");
	/* The gap would end after the prescription. */
	rx.rules.min_hours_between = 48;
	now = at(6 * DAY, false);
	future = T0 + 5 * DAY;
	expect(prescription_may_start(&rx, &future, 1, &now, &v), &v, PRESCRIPTION_REFUSE_TOO_SOON,
	       "Your prescription ends before the next one would be allowed.");
}

static void test_live_supervision(void **state)
{
	struct prescription_now now = at(10 * HOUR, false);
	struct prescription_verdict v;

	rx_init(1, 0, PRESCRIPTION_SUPERVISION_LIVE);
	expect(prescription_may_start(&rx, NULL, 0, &now, &v), &v,
	       PRESCRIPTION_REFUSE_SUPERVISOR_ABSENT, "needs your clinician to be connected");
	now.supervisor_present = true;
	expect(prescription_may_start(&rx, NULL, 0, &now, &v), &v, PRESCRIPTION_OK, NULL);
	/* remote and none never need a presence */
	now.supervisor_present = false;
	rx.rules.supervision = PRESCRIPTION_SUPERVISION_REMOTE;
	expect(prescription_may_start(&rx, NULL, 0, &now, &v), &v, PRESCRIPTION_OK, NULL);
	rx.rules.supervision = PRESCRIPTION_SUPERVISION_NONE;
	expect(prescription_may_start(&rx, NULL, 0, &now, &v), &v, PRESCRIPTION_OK, NULL);
}

/* The first rule broken is the one reported: window, day, gap, presence. */
static void test_order_of_checks(void **state)
{
	const int64_t starts[] = { T0 + 9 * HOUR };
	struct prescription_now now = at(10 * HOUR, false);
	struct prescription_verdict v;

	rx_init(1, 4, PRESCRIPTION_SUPERVISION_LIVE);
	expect(prescription_may_start(&rx, starts, 1, &now, &v), &v,
	       PRESCRIPTION_REFUSE_DAILY_LIMIT, NULL);
	rx.rules.max_per_day = 2;
	expect(prescription_may_start(&rx, starts, 1, &now, &v), &v, PRESCRIPTION_REFUSE_TOO_SOON,
	       NULL);
	rx.rules.min_hours_between = 0;
	expect(prescription_may_start(&rx, starts, 1, &now, &v), &v,
	       PRESCRIPTION_REFUSE_SUPERVISOR_ABSENT, NULL);
	rx.rules.valid_until_ms = now.wall_ms;
	expect(prescription_may_start(&rx, starts, 1, &now, &v), &v, PRESCRIPTION_REFUSE_EXPIRED,
	       NULL);
}

static void test_bad_arguments(void **state)
{
	struct prescription_now now = at(HOUR, true);
	struct prescription_verdict v, before;

	rx_init(1, 0, PRESCRIPTION_SUPERVISION_NONE);
	memset(&v, 0x5a, sizeof(v));
	before = v;
	assert_int_equal(prescription_may_start(&rx, NULL, 1, &now, &v), -EINVAL);
	assert_int_equal(prescription_may_start(&rx, NULL, 0, NULL, &v), -EINVAL);
	assert_int_equal(prescription_may_start(&rx, NULL, 0, &now, NULL), -EINVAL);
	now.day_end_ms = now.wall_ms; /* a day that does not contain now */
	assert_int_equal(prescription_may_start(&rx, NULL, 0, &now, &v), -EINVAL);
	now = at(HOUR, true);
	now.day_start_ms = now.wall_ms + 1;
	assert_int_equal(prescription_may_start(&rx, NULL, 0, &now, &v), -EINVAL);
	assert_memory_equal(&v, &before, sizeof(v));
}

static void test_names_and_sentences(void **state)
{
	enum prescription_supervision s = PRESCRIPTION_SUPERVISION_NONE;

	for (unsigned i = 0; i < PRESCRIPTION_REFUSE_COUNT; i++)
		assert_string_not_equal(prescription_refusal_name((enum prescription_refusal)i),
					"unknown");
	assert_string_equal(prescription_refusal_name(PRESCRIPTION_REFUSE_COUNT), "unknown");
	assert_int_equal(prescription_supervision_parse("live", &s), 0);
	assert_int_equal(s, PRESCRIPTION_SUPERVISION_LIVE);
	assert_int_equal(prescription_supervision_parse("Live", &s), -EINVAL);
	assert_int_equal(prescription_supervision_parse(NULL, &s), -EINVAL);
	assert_int_equal(s, PRESCRIPTION_SUPERVISION_LIVE);
	assert_string_equal(prescription_supervision_name(PRESCRIPTION_SUPERVISION_REMOTE),
			    "remote");
	assert_non_null(strstr(prescription_start_error_sentence("not_connected"),
			       "not connected"));
	assert_non_null(strstr(prescription_start_error_sentence("battery_low"), "charge"));
	assert_non_null(strstr(prescription_start_error_sentence("limit_exceeded"),
			       "safety limits"));
	assert_non_null(strstr(prescription_start_error_sentence("internal"),
			       "technical problem"));
	assert_non_null(strstr(prescription_start_error_sentence(NULL), "technical problem"));
}

static void test_format_time(void **state)
{
	char buf[PRESCRIPTION_TIME_BUF] = "untouched";

	assert_int_equal(prescription_format_time(0, buf), 0);
	assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
	assert_int_equal(prescription_format_time(T0 + 9 * HOUR + 30 * MIN + 123, buf), 0);
	assert_string_equal(buf, "2026-11-24T09:30:00.123Z");
	assert_int_equal(prescription_format_time(253402300799999LL, buf), 0);
	assert_string_equal(buf, "9999-12-31T23:59:59.999Z");
	strcpy(buf, "untouched");
	assert_int_equal(prescription_format_time(-1, buf), -EINVAL);
	assert_int_equal(prescription_format_time(253402300800000LL, buf), -EINVAL);
	assert_string_equal(buf, "untouched");
}

#define RX_PAYLOAD                                                                            \
	"{\"request_id\":\"r1\",\"patient\":\"p-7\",\"plan\":{\"exercises\":["                 \
	"{\"name\":\"knee\",\"cuffs\":[\"L\"],\"pct_lop\":50,\"mode\":\"intermittent\","       \
	"\"sets\":[30,15],\"tempo_s\":[2,1],\"rest_s\":30,\"reperfusion_s\":60},"               \
	"{\"name\":\"walk\",\"cuffs\":[\"L\",\"R\"],\"pct_lop\":40,\"mode\":\"cycle\","         \
	"\"on_s\":30,\"off_s\":10,\"cycles\":3,\"reperfusion_s\":90}]},"                        \
	"\"valid_from\":\"2026-11-24T08:00:00+01:00\",\"valid_until\":\"2026-12-24T00:00:00Z\"," \
	"\"max_per_day\":2,\"min_hours_between\":4,\"supervision\":\"live\"}"

/* The stored and published form parses back to the same prescription. */
static void test_json_round_trip(void **state)
{
	struct command *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	struct command_error err;
	struct prescription p = { 0 };
	json_t *j;
	char *text;

	assert_int_equal(command_parse(CMD_PRESCRIPTION_SET, RX_PAYLOAD, strlen(RX_PAYLOAD), a,
				       &err),
			 0);
	p.plan = a->plan;
	p.has_patient = a->has_patient;
	memcpy(p.patient, a->patient, sizeof(p.patient));
	p.rules = a->rules;
	j = prescription_to_json(&p);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "valid_from")),
			    "2026-11-24T07:00:00.000Z");
	assert_string_equal(json_string_value(json_object_get(j, "supervision")), "live");
	/* a cycle exercise carries no sets, tempo_s or rest_s */
	assert_null(json_object_get(json_array_get(json_object_get(json_object_get(j, "plan"),
								   "exercises"),
						   1),
				    "sets"));
	json_object_set_new(j, "request_id", json_string("r1"));
	text = json_dumps(j, JSON_COMPACT);
	assert_non_null(text);
	if (command_parse(CMD_PRESCRIPTION_SET, text, strlen(text), b, &err) != 0)
		fail_msg("%s: %s", text, err.message);
	assert_memory_equal(&a->plan, &b->plan, sizeof(a->plan));
	assert_memory_equal(&a->rules, &b->rules, sizeof(a->rules));
	assert_string_equal(b->patient, "p-7");
	free(text);
	json_decref(j);
	free(a);
	free(b);
}

static void test_json_alloc_failures(void **state)
{
	struct command *a = calloc(1, sizeof(*a));
	struct command_error err;
	struct prescription p = { 0 };
	json_t *j;
	long n;

	assert_int_equal(command_parse(CMD_PRESCRIPTION_SET, RX_PAYLOAD, strlen(RX_PAYLOAD), a,
				       &err),
			 0);
	p.plan = a->plan;
	p.rules = a->rules;
	for (n = 0;; n++) {
		test_alloc_fail_after(n);
		j = prescription_to_json(&p);
		test_alloc_reset();
		if (j)
			break;
		assert_true(n < 2000);
	}
	assert_true(n > 10);
	json_decref(j);
	p.rules.valid_until_ms = -5; /* not representable: no JSON */
	assert_null(prescription_to_json(&p));
	free(a);
}

struct presence_case {
	const char *payload;
	const char *message;
};

static void test_presence_bad(void **state)
{
	static char big[SUPERVISOR_PAYLOAD_MAX + 2];
	static const struct presence_case cases[] = {
		{ "{", "payload: invalid JSON" },
		{ "[]", "payload: must be a JSON object" },
		{ "\"online\"", "payload: invalid JSON" },
		{ "{}", "state: must be" },
		{ "{\"state\":1}", "state: must be" },
		{ "{\"state\":\"away\",\"by\":\"x\"}", "state: must be" },
		{ "{\"state\":\"ONLINE\",\"by\":\"x\"}", "state: must be" },
		{ "{\"state\":\"online\"}", "by: required when online" },
		{ "{\"state\":\"online\",\"by\":\"\"}", "by: must be 1..64" },
		{ "{\"state\":\"online\",\"by\":7}", "by: must be 1..64" },
		{ "{\"state\":\"online\",\"by\":\"dr\\nlee\"}", "by: must be 1..64" },
		{ "{\"state\":\"online\",\"by\":\"0123456789012345678901234567890123456789"
		  "01234567890123456789012345\"}",
		  "by: must be 1..64" },
		{ "{\"state\":\"online\",\"state\":\"offline\",\"by\":\"x\"}",
		  "payload: invalid JSON (or a duplicate key)" },
		{ "{\"state\":\"online\",\"by\":\"a\\u0000b\"}", "payload: invalid JSON" },
	};
	struct supervisor_presence out, before;
	char err[128];

	memset(&before, 0x5a, sizeof(before));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		out = before;
		err[0] = '\0';
		if (supervisor_presence_parse(cases[i].payload, strlen(cases[i].payload), &out, err,
					      sizeof(err)) != -EINVAL ||
		    !strstr(err, cases[i].message))
			fail_msg("case %zu %s: \"%s\"", i, cases[i].payload, err);
		assert_memory_equal(&out, &before, sizeof(out));
	}
	memset(big, ' ', sizeof(big));
	assert_int_equal(supervisor_presence_parse(big, sizeof(big), &out, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "larger than 4096"));
	assert_int_equal(supervisor_presence_parse(NULL, 3, &out, err, sizeof(err)), -EINVAL);
	assert_int_equal(supervisor_presence_parse("{}", 2, NULL, err, sizeof(err)), -EINVAL);
	assert_memory_equal(&out, &before, sizeof(out));
}

static void test_presence_good(void **state)
{
	static const char online[] = "{\"state\":\"online\",\"by\":\"Dr. M\\u00fcller\","
				     "\"v\":1,\"console\":\"ward-3\"}";
	struct supervisor_presence out;

	assert_int_equal(supervisor_presence_parse(online, strlen(online), &out, NULL, 0), 0);
	assert_true(out.online);
	assert_string_equal(out.by, "Dr. M\xc3\xbcller");
	assert_int_equal(supervisor_presence_parse("{\"state\":\"offline\"}", 19, &out, NULL, 0),
			 0);
	assert_false(out.online);
	assert_string_equal(out.by, "");
	out.online = true;
	/* The retained presence removed: nobody is there. */
	assert_int_equal(supervisor_presence_parse("", 0, &out, NULL, 0), 0);
	assert_false(out.online);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_prescription),
		cmocka_unit_test(test_window_edges),
		cmocka_unit_test(test_daily_limit),
		cmocka_unit_test(test_min_hours_between),
		cmocka_unit_test(test_live_supervision),
		cmocka_unit_test(test_order_of_checks),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_names_and_sentences),
		cmocka_unit_test(test_format_time),
		cmocka_unit_test(test_json_round_trip),
		cmocka_unit_test(test_json_alloc_failures),
		cmocka_unit_test(test_presence_bad),
		cmocka_unit_test(test_presence_good),
	};

	json_set_alloc_funcs(malloc, free);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
