/*
 * test_command.c - MQTT command validation: every bad case refused with its
 * code and a message naming the field, output untouched; good commands for
 * every verb; replies; allocation failures (jansson's too, through the
 * wrapped malloc).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "alarm.h"
#include "command.h"
#include "test_alloc.h"

/* A valid continuous exercise, and a session/start around exercise text. */
#define EX_OK                                                                           \
	"\"name\":\"squat\",\"cuffs\":[\"L\"],\"pct_lop\":50,\"sets\":[30,15,15,15],"     \
	"\"tempo_s\":[2,2],\"rest_s\":30,\"reperfusion_s\":60,\"mode\":\"continuous\""
#define EX_CYCLE                                                                        \
	"\"name\":\"kaatsu\",\"cuffs\":[\"L\",\"R\"],\"pct_lop\":40,\"mode\":\"cycle\","  \
	"\"on_s\":30,\"off_s\":10,\"cycles\":5,\"reperfusion_s\":90"
#define START(ex) "{\"request_id\":\"r1\",\"plan\":{\"exercises\":[{" ex "}]}}"
#define START_TOP(extra) "{\"request_id\":\"r1\",\"plan\":{\"exercises\":[{" EX_OK "}]}," extra "}"
/* EX_OK with one field replaced: the later duplicate would be refused, so
 * these spell the exercise out. */
#define EX_WITH(name, cuffs, pct, sets, tempo, rest, rep, mode)                          \
	START("\"name\":" name ",\"cuffs\":" cuffs ",\"pct_lop\":" pct ",\"sets\":" sets \
	      ",\"tempo_s\":" tempo ",\"rest_s\":" rest ",\"reperfusion_s\":" rep        \
	      ",\"mode\":" mode)
#define N "\"squat\""
#define C "[\"L\"]"
#define P "50"
#define S "[30,15,15,15]"
#define T "[2,2]"
#define R "30"
#define RP "60"
#define M "\"continuous\""

/* 64 ASCII characters; 16 x u-umlaut (32 bytes of UTF-8) as JSON escapes. */
#define BY64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define UE16                                                                            \
	"\\u00fc\\u00fc\\u00fc\\u00fc\\u00fc\\u00fc\\u00fc\\u00fc\\u00fc\\u00fc\\u00fc\\u00fc" \
	"\\u00fc\\u00fc\\u00fc\\u00fc"
/* prescription/set around fields after the plan; RX_OK is a good one. */
#define RX_PLAN "\"plan\":{\"exercises\":[{" EX_OK "}]}"
#define RX(fields) "{\"request_id\":\"r9\"," RX_PLAN "," fields "}"
#define RX_FROM(t) RX("\"valid_from\":\"" t "\",\"valid_until\":\"2030-01-01T00:00:00Z\"," \
		      "\"supervision\":\"none\"")
#define RX_WIN "\"valid_from\":\"2026-11-24T08:00:00Z\",\"valid_until\":\"2026-12-24T08:00:00Z\""
#define RX_OK RX(RX_WIN ",\"supervision\":\"remote\"")

struct bad_case {
	enum command_verb verb;
	const char *payload;
	enum command_error_code code;
	const char *message; /* substring of the message */
	const char *request_id; /* captured request id, "" when none */
};

static const struct bad_case bad_cases[] = {
	/* not JSON / not an object */
	{CMD_SESSION_START, "", CMD_ERR_BAD_JSON, "payload: invalid JSON", ""},
	{CMD_SESSION_START, "{", CMD_ERR_BAD_JSON, "payload: invalid JSON", ""},
	{CMD_SESSION_START, "{\"request_id\":\"r1\",}", CMD_ERR_BAD_JSON, "invalid JSON", ""},
	{CMD_SESSION_STOP, "{\"request_id\":\"a\",\"request_id\":\"b\",\"session_id\":\"s\"}",
	 CMD_ERR_BAD_JSON, "duplicate", ""},
	{CMD_SESSION_STOP, "{\"request_id\":\"\xff\"}", CMD_ERR_BAD_JSON, "invalid JSON", ""},
	{CMD_SESSION_STOP, "{\"request_id\":\"a\\u0000b\"}", CMD_ERR_BAD_JSON, "invalid JSON", ""},
	{CMD_SESSION_START, "{\"pct\":1e400}", CMD_ERR_BAD_JSON, "invalid JSON", ""},
	{CMD_SESSION_START, "[1,2]", CMD_ERR_BAD_REQUEST,
	 "payload: must be a JSON object, got array", ""},
	{CMD_SESSION_START, "42", CMD_ERR_BAD_REQUEST, "got number", ""},
	{CMD_SESSION_START, "null", CMD_ERR_BAD_REQUEST, "got null", ""},
	{CMD_SESSION_START, "\"start\"", CMD_ERR_BAD_REQUEST, "got string", ""},
	/* request_id */
	{CMD_SESSION_START, "{}", CMD_ERR_MISSING_FIELD, "request_id: missing", ""},
	{CMD_SESSION_START, "{\"request_id\":5}", CMD_ERR_WRONG_TYPE,
	 "request_id: must be a string, got number", ""},
	{CMD_SESSION_START, "{\"request_id\":\"\"}", CMD_ERR_OUT_OF_RANGE,
	 "request_id: must not be empty", ""},
	{CMD_SESSION_START,
	 "{\"request_id\":\"0123456789012345678901234567890123456789012345678901234567890123"
	 "4\"}",
	 CMD_ERR_OUT_OF_RANGE, "request_id: 65 characters, at most 64", ""},
	{CMD_SESSION_START, "{\"request_id\":\"a/b\"}", CMD_ERR_BAD_REQUEST,
	 "request_id: must not contain", ""},
	{CMD_SESSION_START, "{\"request_id\":\"a b\"}", CMD_ERR_BAD_REQUEST, "request_id:", ""},
	{CMD_SESSION_START, "{\"request_id\":\"a\\u00a0b\"}", CMD_ERR_BAD_REQUEST, "request_id:",
	 ""},
	{CMD_SESSION_START, "{\"request_id\":\"a+\"}", CMD_ERR_BAD_REQUEST, "request_id:", ""},
	/* top level of session/start */
	{CMD_SESSION_START, START_TOP("\"foo\":1"), CMD_ERR_UNKNOWN_FIELD, "foo: unknown field",
	 "r1"},
	{CMD_SESSION_START, "{\"request_id\":\"r1\"}", CMD_ERR_MISSING_FIELD, "plan: missing",
	 "r1"},
	{CMD_SESSION_START, "{\"request_id\":\"r1\",\"plan\":[]}", CMD_ERR_WRONG_TYPE,
	 "plan: must be an object, got array", "r1"},
	{CMD_SESSION_START, "{\"request_id\":\"r1\",\"plan\":{\"exercises\":[],\"x\":1}}",
	 CMD_ERR_UNKNOWN_FIELD, "plan.x: unknown field", "r1"},
	{CMD_SESSION_START, "{\"request_id\":\"r1\",\"plan\":{}}", CMD_ERR_MISSING_FIELD,
	 "plan.exercises: missing", "r1"},
	{CMD_SESSION_START, "{\"request_id\":\"r1\",\"plan\":{\"exercises\":{}}}",
	 CMD_ERR_WRONG_TYPE, "plan.exercises: must be an array", "r1"},
	{CMD_SESSION_START, "{\"request_id\":\"r1\",\"plan\":{\"exercises\":[]}}",
	 CMD_ERR_OUT_OF_RANGE, "plan.exercises: 0 exercises, must be 1..10", "r1"},
	{CMD_SESSION_START,
	 "{\"request_id\":\"r1\",\"plan\":{\"exercises\":[{" EX_OK "},{" EX_OK "},{" EX_OK
	 "},{" EX_OK "},{" EX_OK "},{" EX_OK "},{" EX_OK "},{" EX_OK "},{" EX_OK "},{" EX_OK
	 "},{" EX_OK "}]}}",
	 CMD_ERR_OUT_OF_RANGE, "plan.exercises: 11 exercises", "r1"},
	{CMD_SESSION_START, "{\"request_id\":\"r1\",\"plan\":{\"exercises\":[7]}}",
	 CMD_ERR_WRONG_TYPE, "plan.exercises[0]: must be an object, got number", "r1"},
	{CMD_SESSION_START, START(EX_OK ",\"reps\":10"), CMD_ERR_UNKNOWN_FIELD,
	 "plan.exercises[0].reps: unknown field", "r1"},
	{CMD_SESSION_START, START(EX_OK ",\"averyveryveryverylongunknownfieldnamethatgoeson\":1"),
	 CMD_ERR_UNKNOWN_FIELD,
	 "plan.exercises[0].averyveryveryverylongunknownfiel...: unknown field", "r1"},
	/* name */
	{CMD_SESSION_START, START("\"cuffs\":[\"L\"]"), CMD_ERR_MISSING_FIELD,
	 "plan.exercises[0].name: missing", "r1"},
	{CMD_SESSION_START, EX_WITH("\"\"", C, P, S, T, R, RP, M), CMD_ERR_OUT_OF_RANGE,
	 "plan.exercises[0].name: must not be empty", "r1"},
	{CMD_SESSION_START,
	 EX_WITH("\"nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"
		 "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn\"",
		 C, P, S, T, R, RP, M),
	 CMD_ERR_OUT_OF_RANGE, "plan.exercises[0].name: 65 characters, at most 64", "r1"},
	{CMD_SESSION_START, EX_WITH("\"a\\nb\"", C, P, S, T, R, RP, M), CMD_ERR_BAD_REQUEST,
	 "plan.exercises[0].name: must not contain control characters", "r1"},
	{CMD_SESSION_START, EX_WITH("[]", C, P, S, T, R, RP, M), CMD_ERR_WRONG_TYPE,
	 "plan.exercises[0].name: must be a string, got array", "r1"},
	/* cuffs */
	{CMD_SESSION_START, START("\"name\":\"x\""), CMD_ERR_MISSING_FIELD,
	 "plan.exercises[0].cuffs: missing", "r1"},
	{CMD_SESSION_START, EX_WITH(N, "[]", P, S, T, R, RP, M), CMD_ERR_OUT_OF_RANGE,
	 "plan.exercises[0].cuffs: 0 items, must be 1..2", "r1"},
	{CMD_SESSION_START, EX_WITH(N, "[\"a\",\"b\",\"c\"]", P, S, T, R, RP, M),
	 CMD_ERR_OUT_OF_RANGE, "plan.exercises[0].cuffs: 3 items", "r1"},
	{CMD_SESSION_START, EX_WITH(N, "[\"a\",\"a\"]", P, S, T, R, RP, M), CMD_ERR_BAD_REQUEST,
	 "plan.exercises[0].cuffs[1]: duplicate of plan.exercises[0].cuffs[0]", "r1"},
	{CMD_SESSION_START, EX_WITH(N, "\"L\"", P, S, T, R, RP, M), CMD_ERR_WRONG_TYPE,
	 "plan.exercises[0].cuffs: must be an array, got string", "r1"},
	{CMD_SESSION_START, EX_WITH(N, "[1]", P, S, T, R, RP, M), CMD_ERR_WRONG_TYPE,
	 "plan.exercises[0].cuffs[0]: must be a string, got number", "r1"},
	{CMD_SESSION_START, EX_WITH(N, "[\"L\",\"a#\"]", P, S, T, R, RP, M), CMD_ERR_BAD_REQUEST,
	 "plan.exercises[0].cuffs[1]: must not contain", "r1"},
	/* pct_lop */
	{CMD_SESSION_START, EX_WITH(N, C, "120", S, T, R, RP, M), CMD_ERR_OUT_OF_RANGE,
	 "plan.exercises[0].pct_lop: 120 is above 100", "r1"},
	{CMD_SESSION_START, EX_WITH(N, C, "9", S, T, R, RP, M), CMD_ERR_OUT_OF_RANGE,
	 "plan.exercises[0].pct_lop: 9 is below 10", "r1"},
	{CMD_SESSION_START, EX_WITH(N, C, "-5", S, T, R, RP, M), CMD_ERR_OUT_OF_RANGE,
	 "plan.exercises[0].pct_lop: -5 is below 10", "r1"},
	{CMD_SESSION_START, EX_WITH(N, C, "50.5", S, T, R, RP, M), CMD_ERR_WRONG_TYPE,
	 "plan.exercises[0].pct_lop: must be an integer, got 50.5", "r1"},
	{CMD_SESSION_START, EX_WITH(N, C, "1e3", S, T, R, RP, M), CMD_ERR_OUT_OF_RANGE,
	 "plan.exercises[0].pct_lop: 1000 is above 100", "r1"},
	{CMD_SESSION_START, EX_WITH(N, C, "99999999999999999", S, T, R, RP, M),
	 CMD_ERR_OUT_OF_RANGE, "pct_lop: 99999999999999999 is above 100", "r1"},
	{CMD_SESSION_START, EX_WITH(N, C, "\"50\"", S, T, R, RP, M), CMD_ERR_WRONG_TYPE,
	 "plan.exercises[0].pct_lop: must be an integer, got string", "r1"},
	{CMD_SESSION_START, EX_WITH(N, C, "true", S, T, R, RP, M), CMD_ERR_WRONG_TYPE,
	 "pct_lop: must be an integer, got boolean", "r1"},
	{CMD_SESSION_START, EX_WITH(N, C, "null", S, T, R, RP, M), CMD_ERR_WRONG_TYPE,
	 "pct_lop: must be an integer, got null", "r1"},
	/* mode */
	{CMD_SESSION_START, EX_WITH(N, C, P, S, T, R, RP, "\"fast\""), CMD_ERR_OUT_OF_RANGE,
	 "plan.exercises[0].mode: must be \"continuous\", \"intermittent\" or \"cycle\"", "r1"},
	{CMD_SESSION_START, EX_WITH(N, C, P, S, T, R, RP, "1"), CMD_ERR_WRONG_TYPE,
	 "plan.exercises[0].mode: must be a string", "r1"},
	{CMD_SESSION_START, START("\"name\":\"x\",\"cuffs\":[\"L\"],\"pct_lop\":50"),
	 CMD_ERR_MISSING_FIELD, "plan.exercises[0].mode: missing", "r1"},
	/* sets */
	{CMD_SESSION_START, EX_WITH(N, C, P, "[]", T, R, RP, M), CMD_ERR_OUT_OF_RANGE,
	 "plan.exercises[0].sets: 0 sets, must be 1..10", "r1"},
	{CMD_SESSION_START, EX_WITH(N, C, P, "[1,1,1,1,1,1,1,1,1,1,1]", T, R, RP, M),
	 CMD_ERR_OUT_OF_RANGE, "plan.exercises[0].sets: 11 sets", "r1"},
	{CMD_SESSION_START, EX_WITH(N, C, P, "[0]", T, R, RP, M), CMD_ERR_OUT_OF_RANGE,
	 "plan.exercises[0].sets[0]: 0 is below 1", "r1"},
	{CMD_SESSION_START, EX_WITH(N, C, P, "[30,101]", T, R, RP, M), CMD_ERR_OUT_OF_RANGE,
	 "plan.exercises[0].sets[1]: 101 is above 100", "r1"},
	{CMD_SESSION_START, EX_WITH(N, C, P, "[30,15.5]", T, R, RP, M), CMD_ERR_WRONG_TYPE,
	 "plan.exercises[0].sets[1]: must be an integer, got 15.5", "r1"},
	{CMD_SESSION_START, EX_WITH(N, C, P, "30", T, R, RP, M), CMD_ERR_WRONG_TYPE,
	 "plan.exercises[0].sets: must be an array, got number", "r1"},
	{CMD_SESSION_START,
	 START("\"name\":\"x\",\"cuffs\":[\"L\"],\"pct_lop\":50,\"mode\":\"intermittent\""),
	 CMD_ERR_MISSING_FIELD, "plan.exercises[0].sets: missing", "r1"},
	/* tempo, rest, reperfusion */
	{CMD_SESSION_START, EX_WITH(N, C, P, S, "[2]", R, RP, M), CMD_ERR_OUT_OF_RANGE,
	 "plan.exercises[0].tempo_s: 1 items, must be [up, down]", "r1"},
	{CMD_SESSION_START, EX_WITH(N, C, P, S, "[2,11]", R, RP, M), CMD_ERR_OUT_OF_RANGE,
	 "plan.exercises[0].tempo_s[1]: 11 is above 10", "r1"},
	{CMD_SESSION_START, EX_WITH(N, C, P, S, "[0,2]", R, RP, M), CMD_ERR_OUT_OF_RANGE,
	 "plan.exercises[0].tempo_s[0]: 0 is below 1", "r1"},
	{CMD_SESSION_START, EX_WITH(N, C, P, S, "{}", R, RP, M), CMD_ERR_WRONG_TYPE,
	 "plan.exercises[0].tempo_s: must be an array, got object", "r1"},
	{CMD_SESSION_START, EX_WITH(N, C, P, S, T, "601", RP, M), CMD_ERR_OUT_OF_RANGE,
	 "plan.exercises[0].rest_s: 601 is above 600", "r1"},
	{CMD_SESSION_START, EX_WITH(N, C, P, S, T, "-1", RP, M), CMD_ERR_OUT_OF_RANGE,
	 "plan.exercises[0].rest_s: -1 is below 0", "r1"},
	{CMD_SESSION_START, EX_WITH(N, C, P, S, T, R, "59", M), CMD_ERR_OUT_OF_RANGE,
	 "plan.exercises[0].reperfusion_s: 59 is below 60", "r1"},
	{CMD_SESSION_START, EX_WITH(N, C, P, S, T, R, "601", M), CMD_ERR_OUT_OF_RANGE,
	 "plan.exercises[0].reperfusion_s: 601 is above 600", "r1"},
	{CMD_SESSION_START,
	 START("\"name\":\"x\",\"cuffs\":[\"L\"],\"pct_lop\":50,\"mode\":\"continuous\","
	       "\"sets\":[1],\"tempo_s\":[1,1],\"rest_s\":0"),
	 CMD_ERR_MISSING_FIELD, "plan.exercises[0].reperfusion_s: missing", "r1"},
	/* mode-specific fields */
	{CMD_SESSION_START, START(EX_OK ",\"on_s\":30"), CMD_ERR_BAD_REQUEST,
	 "plan.exercises[0].on_s: only allowed in cycle mode", "r1"},
	{CMD_SESSION_START, START(EX_CYCLE ",\"sets\":[1]"), CMD_ERR_BAD_REQUEST,
	 "plan.exercises[0].sets: not allowed in cycle mode", "r1"},
	{CMD_SESSION_START,
	 START("\"name\":\"k\",\"cuffs\":[\"L\"],\"pct_lop\":40,\"mode\":\"cycle\","
	       "\"off_s\":10,\"cycles\":5,\"reperfusion_s\":90"),
	 CMD_ERR_MISSING_FIELD, "plan.exercises[0].on_s: missing", "r1"},
	{CMD_SESSION_START,
	 START("\"name\":\"k\",\"cuffs\":[\"L\"],\"pct_lop\":40,\"mode\":\"cycle\","
	       "\"on_s\":30,\"off_s\":4,\"cycles\":5,\"reperfusion_s\":90"),
	 CMD_ERR_OUT_OF_RANGE, "plan.exercises[0].off_s: 4 is below 5", "r1"},
	{CMD_SESSION_START,
	 START("\"name\":\"k\",\"cuffs\":[\"L\"],\"pct_lop\":40,\"mode\":\"cycle\","
	       "\"on_s\":30,\"off_s\":10,\"cycles\":11,\"reperfusion_s\":90"),
	 CMD_ERR_OUT_OF_RANGE, "plan.exercises[0].cycles: 11 is above 10", "r1"},
	/* the second exercise is checked too */
	{CMD_SESSION_START,
	 "{\"request_id\":\"r1\",\"plan\":{\"exercises\":[{" EX_OK "},{" EX_OK
	 ",\"x\":1}]}}",
	 CMD_ERR_UNKNOWN_FIELD, "plan.exercises[1].x: unknown field", "r1"},
	/* patient and envelope */
	{CMD_SESSION_START, START_TOP("\"patient\":\"\""), CMD_ERR_OUT_OF_RANGE,
	 "patient: must not be empty", "r1"},
	{CMD_SESSION_START, START_TOP("\"patient\":5"), CMD_ERR_WRONG_TYPE,
	 "patient: must be a string", "r1"},
	{CMD_SESSION_START, START_TOP("\"v\":2"), CMD_ERR_OUT_OF_RANGE,
	 "v: 2 is not supported (only 1)", "r1"},
	{CMD_SESSION_START, START_TOP("\"v\":\"1\""), CMD_ERR_WRONG_TYPE,
	 "v: must be an integer, got string", "r1"},
	{CMD_SESSION_START, START_TOP("\"ts\":\"yesterday\""), CMD_ERR_BAD_REQUEST,
	 "ts: must be RFC 3339", "r1"},
	{CMD_SESSION_START, START_TOP("\"ts\":\"2026-11-24T09:30:00Z\""), CMD_ERR_BAD_REQUEST,
	 "ts: must be RFC 3339", "r1"},
	{CMD_SESSION_START, START_TOP("\"ts\":5"), CMD_ERR_WRONG_TYPE, "ts: must be a string",
	 "r1"},
	{CMD_SESSION_START, START_TOP("\"msg_id\":\"a b\""), CMD_ERR_BAD_REQUEST,
	 "msg_id: must not contain white space", "r1"},
	{CMD_SESSION_START, START_TOP("\"msg_id\":\"\""), CMD_ERR_OUT_OF_RANGE,
	 "msg_id: must not be empty", "r1"},
	/* session/pause, resume, stop */
	{CMD_SESSION_PAUSE, "{\"request_id\":\"r2\"}", CMD_ERR_MISSING_FIELD,
	 "session_id: missing", "r2"},
	{CMD_SESSION_PAUSE, "{\"request_id\":\"r2\",\"session_id\":\"\"}", CMD_ERR_OUT_OF_RANGE,
	 "session_id: must not be empty", "r2"},
	{CMD_SESSION_RESUME, "{\"request_id\":\"r2\",\"session_id\":\"s\",\"plan\":{}}",
	 CMD_ERR_UNKNOWN_FIELD, "plan: unknown field", "r2"},
	{CMD_SESSION_STOP, "{\"request_id\":\"r2\",\"session_id\":7}", CMD_ERR_WRONG_TYPE,
	 "session_id: must be a string, got number", "r2"},
	/* estop */
	{CMD_ESTOP, "{\"request_id\":\"r3\",\"cuffs\":[]}", CMD_ERR_OUT_OF_RANGE,
	 "cuffs: 0 items, must be 1..32", "r3"},
	{CMD_ESTOP, "{\"request_id\":\"r3\",\"cuffs\":[\"a\",\"b\",\"a\"]}", CMD_ERR_BAD_REQUEST,
	 "cuffs[2]: duplicate of cuffs[0]", "r3"},
	{CMD_ESTOP, "{\"request_id\":\"r3\",\"cuffs\":\"all\"}", CMD_ERR_WRONG_TYPE,
	 "cuffs: must be an array, got string", "r3"},
	{CMD_ESTOP,
	 "{\"request_id\":\"r3\",\"cuffs\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\","
	 "\"9\",\"10\",\"11\",\"12\",\"13\",\"14\",\"15\",\"16\",\"17\",\"18\",\"19\",\"20\","
	 "\"21\",\"22\",\"23\",\"24\",\"25\",\"26\",\"27\",\"28\",\"29\",\"30\",\"31\",\"32\","
	 "\"33\"]}",
	 CMD_ERR_OUT_OF_RANGE, "cuffs: 33 items", "r3"},
	{CMD_ESTOP, "{\"request_id\":\"r3\",\"session_id\":\"s\"}", CMD_ERR_UNKNOWN_FIELD,
	 "session_id: unknown field", "r3"},
	/* alarm/ack */
	{CMD_ALARM_ACK, "{\"request_id\":\"r4\",\"alarm_id\":\"a1\"}", CMD_ERR_MISSING_FIELD,
	 "by: missing", "r4"},
	{CMD_ALARM_ACK, "{\"request_id\":\"r4\",\"by\":\"nurse\"}", CMD_ERR_MISSING_FIELD,
	 "alarm_id: missing", "r4"},
	{CMD_ALARM_ACK, "{\"request_id\":\"r4\",\"alarm_id\":\"a1\",\"by\":\"\"}",
	 CMD_ERR_OUT_OF_RANGE, "by: must not be empty", "r4"},
	{CMD_ALARM_ACK, "{\"request_id\":\"r4\",\"alarm_id\":\"a1\",\"by\":\"x\\u0007\"}",
	 CMD_ERR_BAD_REQUEST, "by: must not contain control characters", "r4"},
	{CMD_ALARM_ACK, "{\"request_id\":\"r4\",\"alarm_id\":[\"a1\"],\"by\":\"x\"}",
	 CMD_ERR_WRONG_TYPE, "alarm_id: must be a string, got array", "r4"},
	/* by: at most ALARM_BY_MAX - 1 = 64 bytes of UTF-8 (what the alarm record holds) */
	{CMD_ALARM_ACK,
	 "{\"request_id\":\"r4\",\"alarm_id\":\"a1\",\"by\":\"" BY64 "x\"}",
	 CMD_ERR_OUT_OF_RANGE, "by: 65 bytes, at most 64", "r4"},
	{CMD_ALARM_ACK,
	 "{\"request_id\":\"r4\",\"alarm_id\":\"a1\",\"by\":\"" UE16 UE16 "\\u00fc\"}",
	 CMD_ERR_OUT_OF_RANGE, "by: 66 bytes, at most 64", "r4"},
	/* C1 controls (U+0080..U+009F) are control characters too */
	{CMD_ALARM_ACK, "{\"request_id\":\"r4\",\"alarm_id\":\"a1\",\"by\":\"x\\u0085y\"}",
	 CMD_ERR_BAD_REQUEST, "by: must not contain control characters", "r4"},
	/* lop/measure, cuff/identify */
	{CMD_LOP_MEASURE, "{\"request_id\":\"r5\"}", CMD_ERR_MISSING_FIELD, "cuff: missing", "r5"},
	{CMD_LOP_MEASURE, "{\"request_id\":\"r5\",\"cuff\":false}", CMD_ERR_WRONG_TYPE,
	 "cuff: must be a string, got boolean", "r5"},
	{CMD_CUFF_IDENTIFY, "{\"request_id\":\"r5\",\"cuff\":\"a#b\"}", CMD_ERR_BAD_REQUEST,
	 "cuff: must not contain", "r5"},
	{CMD_CUFF_IDENTIFY, "{\"request_id\":\"r5\",\"cuff\":\"L\",\"x\":null}",
	 CMD_ERR_UNKNOWN_FIELD, "x: unknown field", "r5"},
	/* prescription/set: the plan as for session/start */
	{CMD_PRESCRIPTION_SET, "{\"request_id\":\"r9\"," RX_WIN ",\"supervision\":\"none\"}",
	 CMD_ERR_MISSING_FIELD, "plan: missing", "r9"},
	{CMD_PRESCRIPTION_SET,
	 "{\"request_id\":\"r9\",\"plan\":{\"exercises\":[{" EX_OK ",\"pct_lop\":120}]}}",
	 CMD_ERR_BAD_JSON, "duplicate", ""},
	{CMD_PRESCRIPTION_SET,
	 "{\"request_id\":\"r9\",\"plan\":{\"exercises\":[{\"name\":\"squat\",\"cuffs\":[\"L\"],"
	 "\"pct_lop\":120}]}," RX_WIN ",\"supervision\":\"none\"}",
	 CMD_ERR_OUT_OF_RANGE, "plan.exercises[0].pct_lop: 120 is above 100", "r9"},
	{CMD_PRESCRIPTION_SET, RX(RX_WIN ",\"supervision\":\"none\",\"foo\":1"),
	 CMD_ERR_UNKNOWN_FIELD, "foo: unknown field", "r9"},
	{CMD_PRESCRIPTION_SET, RX(RX_WIN ",\"supervision\":\"none\",\"session_id\":\"s\""),
	 CMD_ERR_UNKNOWN_FIELD, "session_id: unknown field", "r9"},
	{CMD_PRESCRIPTION_SET, RX("\"patient\":\"p 1\"," RX_WIN ",\"supervision\":\"none\""),
	 CMD_ERR_BAD_REQUEST, "patient: must not contain", "r9"},
	/* valid_from, valid_until */
	{CMD_PRESCRIPTION_SET, RX("\"valid_until\":\"2026-12-24T08:00:00Z\",\"supervision\":\"none\""),
	 CMD_ERR_MISSING_FIELD, "valid_from: missing", "r9"},
	{CMD_PRESCRIPTION_SET,
	 RX("\"valid_from\":1795478400000,\"valid_until\":\"2026-12-24T08:00:00Z\","
	    "\"supervision\":\"none\""),
	 CMD_ERR_WRONG_TYPE, "valid_from: must be a string, got number", "r9"},
	{CMD_PRESCRIPTION_SET, RX_FROM("2026-11-24"), CMD_ERR_BAD_REQUEST,
	 "valid_from: must be an RFC 3339 date-time", "r9"},
	{CMD_PRESCRIPTION_SET, RX_FROM("2026-11-24 08:00:00Z"), CMD_ERR_BAD_REQUEST,
	 "valid_from: must be an RFC 3339", "r9"},
	{CMD_PRESCRIPTION_SET, RX_FROM("2026-11-24T08:00:00"), CMD_ERR_BAD_REQUEST,
	 "valid_from: must be an RFC 3339", "r9"},
	{CMD_PRESCRIPTION_SET, RX_FROM("2026-11-24t08:00:00z"), CMD_ERR_BAD_REQUEST,
	 "valid_from: must be an RFC 3339", "r9"},
	{CMD_PRESCRIPTION_SET, RX_FROM("2026-11-24T08:00Z"), CMD_ERR_BAD_REQUEST,
	 "valid_from: must be an RFC 3339", "r9"},
	{CMD_PRESCRIPTION_SET, RX_FROM("2026-11-24T08:00:00.Z"), CMD_ERR_BAD_REQUEST,
	 "valid_from: must be an RFC 3339", "r9"},
	{CMD_PRESCRIPTION_SET, RX_FROM("2026-11-24T08:00:00.1234567890Z"), CMD_ERR_BAD_REQUEST,
	 "valid_from: must be an RFC 3339", "r9"},
	{CMD_PRESCRIPTION_SET, RX_FROM("2026-11-24T08:00:00+0100"), CMD_ERR_BAD_REQUEST,
	 "valid_from: must be an RFC 3339", "r9"},
	{CMD_PRESCRIPTION_SET, RX_FROM("2026-11-24T08:00:00Zx"), CMD_ERR_BAD_REQUEST,
	 "valid_from: must be an RFC 3339", "r9"},
	{CMD_PRESCRIPTION_SET, RX_FROM("2026-1-24T08:00:00Z"), CMD_ERR_BAD_REQUEST,
	 "valid_from: must be an RFC 3339", "r9"},
	{CMD_PRESCRIPTION_SET, RX_FROM("\u0662026-11-24T08:00:00Z"), CMD_ERR_BAD_REQUEST,
	 "valid_from: must be an RFC 3339", "r9"},
	{CMD_PRESCRIPTION_SET, RX_FROM("2026-13-01T08:00:00Z"), CMD_ERR_OUT_OF_RANGE,
	 "valid_from: month 13 is not 1..12", "r9"},
	{CMD_PRESCRIPTION_SET, RX_FROM("2026-00-01T08:00:00Z"), CMD_ERR_OUT_OF_RANGE,
	 "valid_from: month 0 is not 1..12", "r9"},
	{CMD_PRESCRIPTION_SET, RX_FROM("2026-02-29T08:00:00Z"), CMD_ERR_OUT_OF_RANGE,
	 "valid_from: day 29 does not exist in 2026-02", "r9"},
	{CMD_PRESCRIPTION_SET, RX_FROM("2100-02-29T08:00:00Z"), CMD_ERR_OUT_OF_RANGE,
	 "valid_from: day 29 does not exist in 2100-02", "r9"},
	{CMD_PRESCRIPTION_SET, RX_FROM("2026-04-31T08:00:00Z"), CMD_ERR_OUT_OF_RANGE,
	 "valid_from: day 31 does not exist in 2026-04", "r9"},
	{CMD_PRESCRIPTION_SET, RX_FROM("2026-11-00T08:00:00Z"), CMD_ERR_OUT_OF_RANGE,
	 "valid_from: day 0 does not exist", "r9"},
	{CMD_PRESCRIPTION_SET, RX_FROM("2026-11-24T24:00:00Z"), CMD_ERR_OUT_OF_RANGE,
	 "valid_from: time of day 24:00:00 is not 00:00:00..23:59:59", "r9"},
	{CMD_PRESCRIPTION_SET, RX_FROM("2026-11-24T08:60:00Z"), CMD_ERR_OUT_OF_RANGE,
	 "valid_from: time of day 08:60:00", "r9"},
	{CMD_PRESCRIPTION_SET, RX_FROM("2026-12-31T23:59:60Z"), CMD_ERR_OUT_OF_RANGE,
	 "valid_from: time of day 23:59:60", "r9"},
	{CMD_PRESCRIPTION_SET, RX_FROM("2026-11-24T08:00:00+24:00"), CMD_ERR_OUT_OF_RANGE,
	 "valid_from: UTC offset 24:00 is not 00:00..23:59", "r9"},
	{CMD_PRESCRIPTION_SET, RX_FROM("2026-11-24T08:00:00-01:60"), CMD_ERR_OUT_OF_RANGE,
	 "valid_from: UTC offset 01:60", "r9"},
	{CMD_PRESCRIPTION_SET, RX_FROM("1969-12-31T23:00:00Z"), CMD_ERR_OUT_OF_RANGE,
	 "valid_from: year 1969 is before 1970", "r9"},
	{CMD_PRESCRIPTION_SET, RX_FROM("1970-01-01T00:30:00+01:00"), CMD_ERR_OUT_OF_RANGE,
	 "valid_from: before 1970-01-01T00:00:00Z", "r9"},
	{CMD_PRESCRIPTION_SET, RX("\"valid_from\":\"2026-11-24T08:00:00Z\",\"supervision\":\"none\""),
	 CMD_ERR_MISSING_FIELD, "valid_until: missing", "r9"},
	{CMD_PRESCRIPTION_SET,
	 RX("\"valid_from\":\"2026-11-24T08:00:00Z\",\"valid_until\":[],\"supervision\":\"none\""),
	 CMD_ERR_WRONG_TYPE, "valid_until: must be a string, got array", "r9"},
	{CMD_PRESCRIPTION_SET,
	 RX("\"valid_from\":\"2026-11-24T08:00:00Z\",\"valid_until\":\"2026-11-24T09:00:00+01:00\","
	    "\"supervision\":\"none\""),
	 CMD_ERR_OUT_OF_RANGE, "valid_until: must be after valid_from", "r9"},
	{CMD_PRESCRIPTION_SET,
	 RX("\"valid_from\":\"2026-11-24T08:00:00Z\",\"valid_until\":\"2026-11-23T08:00:00Z\","
	    "\"supervision\":\"none\""),
	 CMD_ERR_OUT_OF_RANGE, "valid_until: must be after valid_from", "r9"},
	{CMD_PRESCRIPTION_SET,
	 RX("\"valid_from\":\"2026-11-24T08:00:00Z\",\"valid_until\":\"2026-11-24T08:00:00.5Z\","
	    "\"supervision\":\"none\",\"max_per_day\":0"),
	 CMD_ERR_OUT_OF_RANGE, "max_per_day: 0 is below 1", "r9"},
	/* max_per_day, min_hours_between, supervision */
	{CMD_PRESCRIPTION_SET, RX(RX_WIN ",\"max_per_day\":11,\"supervision\":\"none\""),
	 CMD_ERR_OUT_OF_RANGE, "max_per_day: 11 is above 10", "r9"},
	{CMD_PRESCRIPTION_SET, RX(RX_WIN ",\"max_per_day\":2.5,\"supervision\":\"none\""),
	 CMD_ERR_WRONG_TYPE, "max_per_day: must be an integer, got 2.5", "r9"},
	{CMD_PRESCRIPTION_SET, RX(RX_WIN ",\"max_per_day\":\"2\",\"supervision\":\"none\""),
	 CMD_ERR_WRONG_TYPE, "max_per_day: must be an integer, got string", "r9"},
	{CMD_PRESCRIPTION_SET, RX(RX_WIN ",\"max_per_day\":null,\"supervision\":\"none\""),
	 CMD_ERR_WRONG_TYPE, "max_per_day: must be an integer, got null", "r9"},
	{CMD_PRESCRIPTION_SET, RX(RX_WIN ",\"min_hours_between\":-1,\"supervision\":\"none\""),
	 CMD_ERR_OUT_OF_RANGE, "min_hours_between: -1 is below 0", "r9"},
	{CMD_PRESCRIPTION_SET, RX(RX_WIN ",\"min_hours_between\":49,\"supervision\":\"none\""),
	 CMD_ERR_OUT_OF_RANGE, "min_hours_between: 49 is above 48", "r9"},
	{CMD_PRESCRIPTION_SET, RX(RX_WIN ",\"min_hours_between\":true,\"supervision\":\"none\""),
	 CMD_ERR_WRONG_TYPE, "min_hours_between: must be an integer, got boolean", "r9"},
	{CMD_PRESCRIPTION_SET, RX(RX_WIN), CMD_ERR_MISSING_FIELD, "supervision: missing", "r9"},
	{CMD_PRESCRIPTION_SET, RX(RX_WIN ",\"supervision\":1"), CMD_ERR_WRONG_TYPE,
	 "supervision: must be a string, got number", "r9"},
	{CMD_PRESCRIPTION_SET, RX(RX_WIN ",\"supervision\":\"video\""), CMD_ERR_OUT_OF_RANGE,
	 "supervision: must be \"none\", \"remote\" or \"live\"", "r9"},
	{CMD_PRESCRIPTION_SET, RX(RX_WIN ",\"supervision\":\"LIVE\""), CMD_ERR_OUT_OF_RANGE,
	 "supervision: must be", "r9"},
	/* prescription/clear takes nothing but the envelope */
	{CMD_PRESCRIPTION_CLEAR, "{}", CMD_ERR_MISSING_FIELD, "request_id: missing", ""},
	{CMD_PRESCRIPTION_CLEAR, "{\"request_id\":\"r9\"," RX_PLAN "}", CMD_ERR_UNKNOWN_FIELD,
	 "plan: unknown field", "r9"},
	{CMD_PRESCRIPTION_CLEAR, "{\"request_id\":\"r9\",\"ts\":\"yesterday\"}",
	 CMD_ERR_BAD_REQUEST, "ts: must be RFC 3339 UTC", "r9"},
	/* unknown verb */
	{CMD_VERB_COUNT, "{\"request_id\":\"r6\"}", CMD_ERR_UNKNOWN_VERB, "unknown verb", ""},
};

static struct command out_before, out_after;

static void test_bad_cases(void **state)
{
	struct command_error err;
	size_t i;
	int ret;

	assert_true(sizeof(bad_cases) / sizeof(bad_cases[0]) >= 40);
	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *bc = &bad_cases[i];

		memset(&out_before, 0xa5, sizeof(out_before));
		out_after = out_before;
		ret = command_parse(bc->verb, bc->payload, strlen(bc->payload), &out_after, &err);
		if (ret != -EINVAL || err.code != bc->code || !strstr(err.message, bc->message) ||
		    strcmp(err.request_id, bc->request_id) != 0)
			fail_msg("case %zu (%s): ret %d, code %s, message \"%s\", "
				 "request_id \"%s\"; want %s, \"%s\"",
				 i, bc->payload, ret, command_error_name(err.code), err.message,
				 err.request_id, command_error_name(bc->code), bc->message);
		assert_memory_equal(&out_after, &out_before, sizeof(out_before));
	}
}

static void test_bad_payload_args(void **state)
{
	static char big[COMMAND_PAYLOAD_MAX + 2];
	struct command_error err;

	memset(big, ' ', sizeof(big));
	assert_int_equal(command_parse(CMD_ESTOP, big, sizeof(big), &out_after, &err), -EINVAL);
	assert_int_equal(err.code, CMD_ERR_BAD_REQUEST);
	assert_non_null(strstr(err.message, "payload: 65538 bytes, at most 65536"));
	assert_int_equal(command_parse(CMD_ESTOP, NULL, 5, &out_after, &err), -EINVAL);
	assert_int_equal(err.code, CMD_ERR_BAD_REQUEST);
	assert_int_equal(command_parse(CMD_ESTOP, "{}", 2, NULL, &err), -EINVAL);
	assert_int_equal(command_parse(CMD_ESTOP, "{}", 2, &out_after, NULL), -EINVAL);
	/* Length is honoured: the bytes after len do not count. */
	assert_int_equal(command_parse(CMD_ESTOP, "{\"request_id\":\"r\"}xx", 18, &out_after, &err),
			 0);
}

static struct command cmd;

static void parse_ok(enum command_verb verb, const char *payload)
{
	struct command_error err;
	int ret;

	memset(&cmd, 0, sizeof(cmd));
	ret = command_parse(verb, payload, strlen(payload), &cmd, &err);
	if (ret != 0)
		fail_msg("%s: %d %s %s", payload, ret, command_error_name(err.code), err.message);
	assert_int_equal(cmd.verb, verb);
}

static void test_good_session_start(void **state)
{
	const struct session_exercise *ex;

	parse_ok(CMD_SESSION_START,
		 "{\"v\":1,\"ts\":\"2026-11-24T09:30:00.123Z\",\"msg_id\":\"dash-1-42\","
		 "\"request_id\":\"req-1\",\"patient\":\"p-0042\",\"plan\":{\"exercises\":["
		 "{" EX_OK "},{" EX_CYCLE "},"
		 "{\"name\":\"Knieextension \\u00e9\\u00e8\",\"cuffs\":[\"R\"],\"pct_lop\":100,"
		 "\"sets\":[100,1,1,1,1,1,1,1,1,1],\"tempo_s\":[10,1],\"rest_s\":0,"
		 "\"reperfusion_s\":600,\"mode\":\"intermittent\"}]}}");
	assert_string_equal(cmd.request_id, "req-1");
	assert_true(cmd.has_patient);
	assert_string_equal(cmd.patient, "p-0042");
	assert_int_equal(cmd.plan.n_exercises, 3);
	ex = &cmd.plan.exercises[0];
	assert_string_equal(ex->name, "squat");
	assert_int_equal(ex->n_cuffs, 1);
	assert_string_equal(ex->cuffs[0], "L");
	assert_int_equal(ex->pct_lop, 50);
	assert_int_equal(ex->mode, SESSION_MODE_CONTINUOUS);
	assert_int_equal(ex->n_sets, 4);
	assert_int_equal(ex->sets[0], 30);
	assert_int_equal(ex->sets[3], 15);
	assert_int_equal(ex->tempo_up_s, 2);
	assert_int_equal(ex->tempo_down_s, 2);
	assert_int_equal(ex->rest_s, 30);
	assert_int_equal(ex->reperfusion_s, 60);
	ex = &cmd.plan.exercises[1];
	assert_int_equal(ex->mode, SESSION_MODE_CYCLE);
	assert_int_equal(ex->n_cuffs, 2);
	assert_string_equal(ex->cuffs[1], "R");
	assert_int_equal(ex->on_s, 30);
	assert_int_equal(ex->off_s, 10);
	assert_int_equal(ex->cycles, 5);
	assert_int_equal(ex->n_sets, 0);
	ex = &cmd.plan.exercises[2];
	assert_string_equal(ex->name, "Knieextension \xc3\xa9\xc3\xa8");
	assert_int_equal(ex->mode, SESSION_MODE_INTERMITTENT);
	assert_int_equal(ex->n_sets, 10);
	assert_int_equal(ex->sets[0], 100);
	assert_int_equal(ex->tempo_up_s, 10);
	assert_int_equal(ex->rest_s, 0);
	assert_int_equal(ex->reperfusion_s, 600);
	/* what the validator accepts, the session accepts */
	assert_int_equal(session_plan_check(&cmd.plan), 0);

	/* 30.0 is an integer (as in JSON Schema); no patient is fine. */
	parse_ok(CMD_SESSION_START, EX_WITH(N, C, "30.0", S, T, R, RP, M));
	assert_int_equal(cmd.plan.exercises[0].pct_lop, 30);
	assert_false(cmd.has_patient);
	/* ids count code points, not bytes: 64 x U+00E9 is 128 bytes and fine */
	parse_ok(CMD_SESSION_STOP,
		 "{\"request_id\":\"r\",\"session_id\":\""
		 "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		 "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		 "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		 "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		 "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		 "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		 "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		 "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"}");
	assert_int_equal(strlen(cmd.session_id), 128);
}

static void test_good_other_verbs(void **state)
{
	parse_ok(CMD_SESSION_PAUSE, "{\"request_id\":\"r2\",\"session_id\":\"s-1\"}");
	assert_string_equal(cmd.session_id, "s-1");
	parse_ok(CMD_SESSION_RESUME, "{\"request_id\":\"r2\",\"session_id\":\"s-1\",\"v\":1.0}");
	assert_string_equal(cmd.session_id, "s-1");
	parse_ok(CMD_SESSION_STOP, "{\"session_id\":\"s-1\",\"request_id\":\"r2\"}");
	assert_string_equal(cmd.request_id, "r2");
	parse_ok(CMD_ESTOP, "{\"request_id\":\"r3\"}");
	assert_int_equal(cmd.n_cuffs, 0);
	parse_ok(CMD_ESTOP, "{\"request_id\":\"r3\",\"cuffs\":[\"bay1-left-thigh\",\"b\"]}");
	assert_int_equal(cmd.n_cuffs, 2);
	assert_string_equal(cmd.cuffs[0], "bay1-left-thigh");
	parse_ok(CMD_ALARM_ACK,
		 "{\"request_id\":\"r4\",\"alarm_id\":\"a-17\",\"by\":\"Dr. M\\u00fcller\"}");
	assert_string_equal(cmd.alarm_id, "a-17");
	assert_string_equal(cmd.by, "Dr. M\xc3\xbcller");
	parse_ok(CMD_LOP_MEASURE, "{\"request_id\":\"r5\",\"cuff\":\"L\"}");
	assert_string_equal(cmd.cuff, "L");
	parse_ok(CMD_CUFF_IDENTIFY, "{\"request_id\":\"r5\",\"cuff\":\"R\",\"msg_id\":\"m1\"}");
	assert_string_equal(cmd.cuff, "R");
}

/* Every `by` the parser accepts, the alarm table takes (it used to accept 64
 * characters and the table then refused: a wrong "control characters" reply). */
static void test_ack_by_fits_the_alarm_record(void **state)
{
	static const char *const payloads[] = {
		"{\"request_id\":\"r4\",\"alarm_id\":\"gw-1\",\"by\":\"" BY64 "\"}",
		"{\"request_id\":\"r4\",\"alarm_id\":\"gw-1\",\"by\":\"" UE16 UE16 "\"}",
		"{\"request_id\":\"r4\",\"alarm_id\":\"gw-1\",\"by\":\"J\\u00fcrgen\"}",
		"{\"request_id\":\"r4\",\"alarm_id\":\"gw-1\",\"by\":\"\\u674e\\u533b\\u751f\"}",
	};

	for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
		struct alarm_table *t;
		char id[ALARM_ID_MAX];

		parse_ok(CMD_ALARM_ACK, payloads[i]);
		assert_int_equal(alarm_table_new("gw", 8, 1, NULL, NULL, &t), 0);
		assert_int_equal(alarm_raise(t, "", NULL, ALARM_ESTOP, NULL, NULL, 1000, id), 0);
		assert_string_equal(id, "gw-1");
		if (alarm_ack(t, cmd.alarm_id, cmd.by, 2000) != 0)
			fail_msg("%s: parsed, but the alarm table refuses by \"%s\"", payloads[i],
				 cmd.by);
		assert_string_equal(alarm_find_id(t, "gw-1")->acked_by, cmd.by);
		alarm_table_free(t);
	}
	assert_int_equal(strlen(cmd.by), 9); /* three CJK characters: 9 bytes */
}

/* bad_json messages give the kind of error and where, never payload text. */
static void test_bad_json_never_quotes_the_payload(void **state)
{
	static const char *const payloads[] = {
		"{\"request_id\":\"r1\" SECRET}",
		"{\"request_id\":SECRET}",
		"{\"SECRET\":1,\"SECRET\":2}",
		"{\"request_id\":\"SECRET\\u0000\"}",
		"{\"n\":1e400,\"SECRET\":1}",
		"{\"n\":\"SECRET\xff\"}",
		"SECRET",
		"{\"request_id\":\"r1\"} SECRET",
		"{\"SECRET\":[1,2,",
		"{\"a\":\"SECRET\\x\"}",
	};
	struct command_error err;

	for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
		assert_int_equal(command_parse(CMD_ESTOP, payloads[i], strlen(payloads[i]), &cmd,
					       &err),
				 -EINVAL);
		if (err.code != CMD_ERR_BAD_JSON || strstr(err.message, "SEC") ||
		    strstr(err.message, "near") || strchr(err.message, '\'') ||
		    !strstr(err.message, "payload: invalid JSON") || !strstr(err.message, "line") ||
		    !strstr(err.message, "column"))
			fail_msg("%s: %s \"%s\"", payloads[i], command_error_name(err.code),
				 err.message);
	}
}

static void test_good_prescription(void **state)
{
	/* 2026-11-24T08:00:00Z and 2026-12-24T08:00:00Z */
	const int64_t from = 1795507200000LL, until = from + 30LL * 86400000;

	parse_ok(CMD_PRESCRIPTION_SET, RX_OK);
	assert_int_equal(cmd.plan.n_exercises, 1);
	assert_string_equal(cmd.plan.exercises[0].cuffs[0], "L");
	assert_false(cmd.has_patient);
	assert_int_equal(cmd.rules.valid_from_ms, from);
	assert_int_equal(cmd.rules.valid_until_ms, until);
	assert_int_equal(cmd.rules.max_per_day, PRESCRIPTION_MAX_PER_DAY_DEFAULT);
	assert_int_equal(cmd.rules.min_hours_between, PRESCRIPTION_MIN_HOURS_DEFAULT);
	assert_int_equal(cmd.rules.supervision, PRESCRIPTION_SUPERVISION_REMOTE);
	/* offsets, fractions (cut to ms), a leap day, every optional field */
	parse_ok(CMD_PRESCRIPTION_SET,
		 RX("\"patient\":\"p-0042\",\"valid_from\":\"2026-11-24T09:30:00.5+01:30\","
		    "\"valid_until\":\"2028-02-29T23:59:59.123456789-05:30\",\"max_per_day\":10,"
		    "\"min_hours_between\":48.0,\"supervision\":\"live\",\"v\":1"));
	assert_string_equal(cmd.patient, "p-0042");
	assert_int_equal(cmd.rules.valid_from_ms, from + 500);
	/* 2028-03-01T05:29:59.123Z */
	assert_int_equal(cmd.rules.valid_until_ms, 1835501399123LL);
	assert_int_equal(cmd.rules.max_per_day, 10);
	assert_int_equal(cmd.rules.min_hours_between, 48);
	assert_int_equal(cmd.rules.supervision, PRESCRIPTION_SUPERVISION_LIVE);
	parse_ok(CMD_PRESCRIPTION_SET, RX("\"valid_from\":\"1970-01-01T00:00:00Z\","
					  "\"valid_until\":\"9999-12-31T23:59:59.999Z\","
					  "\"supervision\":\"none\""));
	assert_int_equal(cmd.rules.valid_from_ms, 0);
	assert_int_equal(cmd.rules.valid_until_ms, 253402300799999LL);
	parse_ok(CMD_PRESCRIPTION_CLEAR, "{\"request_id\":\"r10\",\"msg_id\":\"m-1\"}");
	assert_string_equal(cmd.request_id, "r10");
}

static void test_verb_names(void **state)
{
	enum command_verb v = CMD_ESTOP;
	unsigned i;

	for (i = 0; i < CMD_VERB_COUNT; i++) {
		assert_int_equal(command_verb_parse(command_verb_name((enum command_verb)i), &v),
				 0);
		assert_int_equal(v, i);
	}
	v = CMD_ESTOP;
	assert_int_equal(command_verb_parse("session/start/", &v), -ENOENT);
	assert_int_equal(command_verb_parse("", &v), -ENOENT);
	assert_int_equal(command_verb_parse(NULL, &v), -EINVAL);
	assert_int_equal(v, CMD_ESTOP);
	assert_string_equal(command_verb_name(CMD_VERB_COUNT), "unknown");
	/* the stable strings */
	assert_string_equal(command_error_name(CMD_ERR_BAD_JSON), "bad_json");
	assert_string_equal(command_error_name(CMD_ERR_OUT_OF_RANGE), "out_of_range");
	assert_string_equal(command_error_name(CMD_ERR_LIMIT_EXCEEDED), "limit_exceeded");
	assert_string_equal(command_error_name(CMD_ERR_BAD_STATE), "bad_state");
	for (i = 0; i < CMD_ERR_COUNT; i++)
		assert_non_null(command_error_name((enum command_error_code)i));
	assert_string_equal(command_error_name(CMD_ERR_COUNT), "internal");
}

static void test_id_valid(void **state)
{
	assert_true(command_id_valid("bay1-left-thigh"));
	assert_true(command_id_valid("\xc3\xa9"));
	assert_false(command_id_valid(""));
	assert_false(command_id_valid(NULL));
	assert_false(command_id_valid("a b"));
	assert_false(command_id_valid("a\tb"));
	assert_false(command_id_valid("a/b"));
	assert_false(command_id_valid("\xe3\x80\x80"));  /* U+3000 ideographic space */
	assert_false(command_id_valid("\xc3"));          /* truncated UTF-8 */
	assert_false(command_id_valid("\xc0\xaf"));      /* overlong '/' */
	assert_false(command_id_valid("\xed\xa0\x80"));  /* surrogate */
	assert_false(command_id_valid("\xf4\x90\x80\x80")); /* above U+10FFFF */
}

static void check_reply(const char *text, const char *want_json)
{
	json_t *got = json_loads(text, 0, NULL), *want = json_loads(want_json, 0, NULL);

	assert_non_null(got);
	assert_non_null(want);
	if (!json_equal(got, want))
		fail_msg("reply %s, want %s", text, want_json);
	json_decref(got);
	json_decref(want);
}

static void test_reply(void **state)
{
	struct command_error err;
	char *text = (char *)0x1;

	assert_int_equal(command_reply_build("r1", "2026-11-24T09:30:00.123Z", "gw-1-7", "s-9",
					     NULL, &text),
			 0);
	check_reply(text, "{\"v\":1,\"ts\":\"2026-11-24T09:30:00.123Z\",\"msg_id\":\"gw-1-7\","
			  "\"request_id\":\"r1\",\"ok\":true,\"session_id\":\"s-9\"}");
	free(text);

	command_error_set(&err, CMD_ERR_LIMIT_EXCEEDED, "r2",
			  "plan.exercises[%d].pct_lop: %d %% of LOP is above the arm limit %d %%",
			  0, 70, 60);
	assert_string_equal(err.request_id, "r2");
	assert_int_equal(command_reply_build(err.request_id, "2026-11-24T09:30:00.123Z", "gw-1-8",
					     "s-ignored", &err, &text),
			 0);
	check_reply(text, "{\"v\":1,\"ts\":\"2026-11-24T09:30:00.123Z\",\"msg_id\":\"gw-1-8\","
			  "\"request_id\":\"r2\",\"ok\":false,"
			  "\"error\":{\"code\":\"limit_exceeded\","
			  "\"message\":\"plan.exercises[0].pct_lop: 70 % of LOP is above the arm "
			  "limit 60 %\"}}");
	free(text);

	/* no request id known (bad JSON): null */
	assert_int_equal(command_parse(CMD_ESTOP, "{", 1, &cmd, &err), -EINVAL);
	assert_int_equal(command_reply_build(err.request_id, "t", "m", NULL, &err, &text), 0);
	check_reply(text, "{\"v\":1,\"ts\":\"t\",\"msg_id\":\"m\",\"request_id\":null,\"ok\":false,"
			  "\"error\":{\"code\":\"bad_json\",\"message\":\"payload: invalid JSON "
			  "(unexpected end of input) at line 1 column 1, byte 1\"}}");
	free(text);

	/* an empty message becomes the code, so the reply always explains */
	command_error_set(&err, CMD_ERR_NOT_FOUND, "r3", "%s", "");
	assert_int_equal(command_reply_build(err.request_id, "t", "m", NULL, &err, &text), 0);
	check_reply(text, "{\"v\":1,\"ts\":\"t\",\"msg_id\":\"m\",\"request_id\":\"r3\","
			  "\"ok\":false,"
			  "\"error\":{\"code\":\"not_found\",\"message\":\"not_found\"}}");
	free(text);

	/* a hostile payload never makes the message invalid UTF-8 */
	command_error_set(&err, CMD_ERR_BAD_REQUEST, "not a valid/id", "bad \xff\x01 bytes");
	assert_string_equal(err.request_id, "");
	assert_string_equal(err.message, "bad ?? bytes");

	text = (char *)0x1;
	assert_int_equal(command_reply_build("r", NULL, "m", NULL, NULL, &text), -EINVAL);
	assert_int_equal(command_reply_build("r", "", "m", NULL, NULL, &text), -EINVAL);
	assert_int_equal(command_reply_build("r", "t", NULL, NULL, NULL, &text), -EINVAL);
	assert_int_equal(command_reply_build("r", "t\xff", "m", NULL, NULL, &text), -EINVAL);
	assert_int_equal(command_reply_build("a/b", "t", "m", NULL, NULL, &text), -EINVAL);
	assert_int_equal(command_reply_build("r", "t", "m", "bad id", NULL, &text), -EINVAL);
	assert_int_equal(command_reply_build("r", "t", "m", NULL, NULL, NULL), -EINVAL);
	assert_ptr_equal(text, (char *)0x1);
}

/* Every allocation (ours and jansson's, routed through the wrapped malloc
 * in main) fails in turn: -ENOMEM with code "internal", output untouched,
 * nothing leaked (LSan). */
static void test_alloc_failures(void **state)
{
	static const char payload[] = START_TOP("\"patient\":\"p1\",\"v\":1");
	struct command_error err;
	long n, n_nomem = 0;
	bool failed;
	char *text;
	int ret;

	for (n = 0;; n++) {
		memset(&out_before, 0x5a, sizeof(out_before));
		out_after = out_before;
		test_alloc_fail_after(n);
		ret = command_parse(CMD_SESSION_START, payload, strlen(payload), &out_after, &err);
		failed = test_alloc_count() > n;
		test_alloc_reset();
		if (ret == 0)
			break;
		assert_true(failed);
		/* jansson's lexer turns a failed string allocation into a syntax
		 * error ("string or '}' expected"), indistinguishable from bad
		 * input; the command is still refused and nothing changes. */
		if (!(ret == -ENOMEM && err.code == CMD_ERR_INTERNAL) &&
		    !(ret == -EINVAL && err.code == CMD_ERR_BAD_JSON))
			fail_msg("n=%ld: ret %d code %s (%s)", n, ret, command_error_name(err.code),
				 err.message);
		n_nomem += ret == -ENOMEM;
		assert_memory_equal(&out_after, &out_before, sizeof(out_before));
		assert_true(n < 1000);
	}
	assert_true(n > 3); /* jansson's allocations were really exercised */
	assert_true(n_nomem >= 2); /* lex_init and our own calloc at least */
	assert_int_equal(out_after.plan.n_exercises, 1);

	command_error_set(&err, CMD_ERR_NOT_FOUND, "r1", "session_id: no session s-1");
	for (n = 0;; n++) {
		text = (char *)0x1;
		test_alloc_fail_after(n);
		ret = command_reply_build("r1", "t", "m", NULL, &err, &text);
		test_alloc_reset();
		if (ret == 0)
			break;
		assert_int_equal(ret, -ENOMEM);
		assert_ptr_equal(text, (char *)0x1);
		assert_true(n < 1000);
	}
	assert_true(n > 3);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_cases),
		cmocka_unit_test(test_bad_payload_args),
		cmocka_unit_test(test_good_session_start),
		cmocka_unit_test(test_good_other_verbs),
		cmocka_unit_test(test_ack_by_fits_the_alarm_record),
		cmocka_unit_test(test_bad_json_never_quotes_the_payload),
		cmocka_unit_test(test_good_prescription),
		cmocka_unit_test(test_verb_names),
		cmocka_unit_test(test_id_valid),
		cmocka_unit_test(test_reply),
		cmocka_unit_test(test_alloc_failures),
	};

	/* `malloc` here is the wrapped one (-Wl,--wrap=malloc), so jansson's
	 * allocations can be failed too. */
	json_set_alloc_funcs(malloc, free);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
