/*
 * fuzz_command.c - libFuzzer target: the MQTT command parser and the reply
 * builder (gateway/logic/command.c).
 *
 * Input byte 0 picks the mode:
 *   < 0xF0  command: verb = byte 0 % (CMD_VERB_COUNT + 1) (command.h order;
 *           CMD_VERB_COUNT itself is an invalid verb number), the rest is
 *           the payload as it arrives on cmd/{verb};
 *   >= 0xF0 reply only: byte 1 an error code, byte 2 flags (bits 0-3 see
 *           fuzz_reply; bit 4 sets a retry_after_s, bits 5-7 pick it), then
 *           NUL-separated request_id, session_id and message, as the wiring
 *           (gw_command.c, runner.c) hands them to command_reply_build after
 *           its own checks (unknown cuff, busy, a reperfusion wait, ...).
 * Invariants:
 *   - a refused command changes nothing: *out keeps every byte it had; the
 *     error has a code, a non-empty printable ASCII message, and a
 *     request_id that is "" or a valid id;
 *   - an accepted command is within the documented bounds (ids valid, plan
 *     sizes and ranges as in docs/sessions.md) and the error is cleared;
 *   - prescription/set's valid_from and valid_until: what command.c accepts
 *     a reference written here (the C library's timegm and gmtime_r, not the
 *     project's calendar arithmetic) accepts too, with the same milliseconds;
 *     what command.c refuses as a bad or out-of-range date-time, the
 *     reference refuses;
 *   - parsing the same payload twice gives the same result;
 *   - every reply command_reply_build returns is valid JSON that satisfies
 *     schemas/reply.schema.json, checked here in C with jansson (required
 *     fields, types, the `ok`/`error`/`session_id` rule, no other fields,
 *     lengths in code points, patterns, the error code enum, retry_after_s
 *     an integer >= 1), and carries the request_id, outcome and
 *     retry_after_s it was given.
 * ts and msg_id are not from outside: the gateway makes them
 * (payload_format_ts, payload_new) and command_reply_build takes them as
 * given, so the target passes ones of that form.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "fuzz.h"
#include "command.h"

#define TS "2026-11-24T09:30:00.123Z"
#define MSG_ID "clinic-a-gw1-1f2e-42"

/* --- schemas/reply.schema.json, by hand ---------------------------------------------- */

/* Decodes UTF-8 into code points; jansson only hands out valid UTF-8. */
static size_t code_points(const char *s, uint32_t *out, size_t cap)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = 0;

	while (*p) {
		uint32_t c;
		size_t len = *p < 0x80 ? 1 : *p < 0xE0 ? 2 : *p < 0xF0 ? 3 : 4;

		c = len == 1 ? *p : len == 2 ? *p & 0x1Fu : len == 3 ? *p & 0x0Fu : *p & 0x07u;
		for (size_t i = 1; i < len; i++) {
			CHECK((p[i] & 0xC0) == 0x80);
			c = c << 6 | (p[i] & 0x3Fu);
		}
		if (n < cap)
			out[n] = c;
		n++;
		p += len;
	}
	return n;
}

/* `\s` of the schemas' regular expressions (Python: str.isspace()). */
static bool schema_space(uint32_t c)
{
	static const uint32_t more[] = { 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000 };

	if ((c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || (c >= 0x2000 && c <= 0x200A))
		return true;
	for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++)
		if (c == more[i])
			return true;
	return false;
}

/* $defs/id: 1..64 characters, none of / # + or white space. */
static bool schema_id(const json_t *v)
{
	uint32_t cp[70];
	size_t n;

	if (!json_is_string(v))
		return false;
	n = code_points(json_string_value(v), cp, 70);
	if (n < 1 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (cp[i] == '/' || cp[i] == '#' || cp[i] == '+' || schema_space(cp[i]))
			return false;
	return true;
}

/* $defs/timestamp: ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$ */
static bool schema_ts(const json_t *v)
{
	const char *s = json_string_value(v);
	const char *form = "dddd-dd-ddTdd:dd:dd.dddZ";

	if (!s || strlen(s) != 24)
		return false;
	for (size_t i = 0; i < 24; i++)
		if (form[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != form[i])
			return false;
	return true;
}

/* $defs/msg_id: 1..200 characters, no white space. */
static bool schema_msg_id(const json_t *v)
{
	uint32_t cp[210];
	size_t n;

	if (!json_is_string(v))
		return false;
	n = code_points(json_string_value(v), cp, 210);
	if (n < 1 || n > 200)
		return false;
	for (size_t i = 0; i < n; i++)
		if (schema_space(cp[i]))
			return false;
	return true;
}

/* The codes are schemas/reply.schema.json's error.code enum. */
static bool schema_error(const json_t *e)
{
	static const char *const codes[] = {
		"bad_json",	  "bad_request",   "unknown_field", "missing_field", "wrong_type",
		"out_of_range",	  "unknown_verb",  "unknown_cuff",  "cuff_busy",	    "limit_exceeded",
		"alarm_unacked",  "reperfusion",   "session_total", "lop_invalid",   "battery_low",
		"not_found",	  "bad_state",	   "not_connected", "internal",	    "cuff_fault",
		"rate_limited",	  "overloaded",	   "outbox_full",
	};
	const json_t *code = json_object_get(e, "code"), *msg = json_object_get(e, "message");
	const json_t *retry = json_object_get(e, "retry_after_s");
	uint32_t cp[260];
	bool known = false;
	size_t n;

	if (!json_is_object(e) || json_object_size(e) != 2u + (retry != NULL) ||
	    !json_is_string(code) || !json_is_string(msg))
		return false;
	if (retry && (!json_is_integer(retry) || json_integer_value(retry) < 1))
		return false;
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		known |= strcmp(json_string_value(code), codes[i]) == 0;
	n = code_points(json_string_value(msg), cp, 260);
	return known && n >= 1 && n <= 255;
}

/*
 * The reply text must satisfy the schema and say what was asked:
 * request_id (NULL: null), ok, the error code's name, session_id.
 */
/* retry_after_s: what the refusal carried, 0 for none (the field is absent). */
static void check_reply(const char *text, const char *request_id, bool ok, const char *code,
			const char *session_id, uint32_t retry_after_s)
{
	static const char *const allowed[] = { "v",  "ts",	   "msg_id", "request_id",
					       "ok", "session_id", "error",  NULL };
	json_error_t jerr;
	json_t *r = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	const json_t *v, *rid, *e;
	const char *key;
	json_t *val;

	CHECK(r && json_is_object(r));
	json_object_foreach(r, key, val) {
		bool known = false;

		for (const char *const *a = allowed; *a; a++)
			known |= strcmp(key, *a) == 0;
		CHECK(known);
	}
	v = json_object_get(r, "v");
	CHECK(json_is_integer(v) && json_integer_value(v) == 1);
	CHECK(schema_ts(json_object_get(r, "ts")) &&
	      strcmp(json_string_value(json_object_get(r, "ts")), TS) == 0);
	CHECK(schema_msg_id(json_object_get(r, "msg_id")));
	rid = json_object_get(r, "request_id");
	CHECK(rid && (json_is_null(rid) || schema_id(rid)));
	if (request_id)
		CHECK(json_is_string(rid) && strcmp(json_string_value(rid), request_id) == 0);
	else
		CHECK(json_is_null(rid));
	CHECK(json_is_boolean(json_object_get(r, "ok")));
	CHECK(json_is_true(json_object_get(r, "ok")) == ok);
	e = json_object_get(r, "error");
	if (json_object_get(r, "session_id"))
		CHECK(schema_id(json_object_get(r, "session_id")));
	if (ok) {
		CHECK(!e);
		if (session_id)
			CHECK(strcmp(json_string_value(json_object_get(r, "session_id")),
				     session_id) == 0);
		else
			CHECK(!json_object_get(r, "session_id"));
	} else {
		CHECK(e && schema_error(e) && !json_object_get(r, "session_id"));
		CHECK(strcmp(json_string_value(json_object_get(e, "code")), code) == 0);
		if (retry_after_s)
			CHECK(json_integer_value(json_object_get(e, "retry_after_s")) ==
			      (json_int_t)retry_after_s);
		else
			CHECK(!json_object_get(e, "retry_after_s"));
	}
	json_decref(r);
}

/* --- the parser ---------------------------------------------------------------------------- */

static bool printable_ascii(const char *s, size_t cap)
{
	const char *end = memchr(s, '\0', cap);

	if (!end || end == s)
		return false;
	for (; s < end; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7F)
			return false;
	return true;
}

static void check_plan(const struct session_plan *p)
{
	CHECK(p->n_exercises >= 1 && p->n_exercises <= SESSION_MAX_EXERCISES);
	for (unsigned i = 0; i < p->n_exercises; i++) {
		const struct session_exercise *e = &p->exercises[i];

		CHECK(e->name[0] && memchr(e->name, '\0', sizeof(e->name)));
		CHECK(e->n_cuffs >= 1 && e->n_cuffs <= SESSION_MAX_CUFFS);
		for (unsigned c = 0; c < e->n_cuffs; c++) {
			CHECK(command_id_valid(e->cuffs[c]));
			for (unsigned d = 0; d < c; d++)
				CHECK(strcmp(e->cuffs[c], e->cuffs[d]) != 0);
		}
		CHECK(e->pct_lop >= SESSION_PCT_LOP_MIN && e->pct_lop <= SESSION_PCT_LOP_MAX);
		CHECK(e->reperfusion_s >= SESSION_REPERFUSION_MIN_S &&
		      e->reperfusion_s <= SESSION_REPERFUSION_MAX_S);
		if (e->mode == SESSION_MODE_CYCLE) {
			CHECK(e->on_s >= SESSION_CYCLE_MIN_S && e->on_s <= SESSION_CYCLE_MAX_S);
			CHECK(e->off_s >= SESSION_CYCLE_MIN_S && e->off_s <= SESSION_CYCLE_MAX_S);
			CHECK(e->cycles >= 1 && e->cycles <= SESSION_MAX_SETS);
			continue;
		}
		CHECK(e->mode == SESSION_MODE_CONTINUOUS || e->mode == SESSION_MODE_INTERMITTENT);
		CHECK(e->n_sets >= 1 && e->n_sets <= SESSION_MAX_SETS);
		for (unsigned s = 0; s < e->n_sets; s++)
			CHECK(e->sets[s] >= SESSION_REPS_MIN && e->sets[s] <= SESSION_REPS_MAX);
		CHECK(e->tempo_up_s >= SESSION_TEMPO_MIN_S && e->tempo_up_s <= SESSION_TEMPO_MAX_S);
		CHECK(e->tempo_down_s >= SESSION_TEMPO_MIN_S &&
		      e->tempo_down_s <= SESSION_TEMPO_MAX_S);
		CHECK(e->rest_s <= SESSION_REST_MAX_S);
	}
}

static void check_accepted(const struct command *c)
{
	CHECK(command_id_valid(c->request_id));
	switch (c->verb) {
	case CMD_SESSION_START:
		check_plan(&c->plan);
		CHECK(!c->has_patient || command_id_valid(c->patient));
		break;
	case CMD_SESSION_PAUSE:
	case CMD_SESSION_RESUME:
	case CMD_SESSION_STOP:
		CHECK(command_id_valid(c->session_id));
		break;
	case CMD_ESTOP:
		CHECK(c->n_cuffs <= COMMAND_ESTOP_MAX_CUFFS);
		for (unsigned i = 0; i < c->n_cuffs; i++)
			CHECK(command_id_valid(c->cuffs[i]));
		break;
	case CMD_ALARM_ACK:
		CHECK(command_id_valid(c->alarm_id) && c->by[0] &&
		      memchr(c->by, '\0', sizeof(c->by)));
		break;
	case CMD_LOP_MEASURE:
	case CMD_CUFF_IDENTIFY:
		CHECK(command_id_valid(c->cuff));
		break;
	case CMD_SNAPSHOT:
	case CMD_PRESCRIPTION_CLEAR:
		break;
	case CMD_PRESCRIPTION_SET:
		check_plan(&c->plan);
		CHECK(!c->has_patient || command_id_valid(c->patient));
		CHECK(c->rules.valid_until_ms > c->rules.valid_from_ms);
		CHECK(c->rules.max_per_day >= 1 && c->rules.max_per_day <= 10);
		CHECK(c->rules.min_hours_between <= 48);
		CHECK(c->rules.supervision <= PRESCRIPTION_SUPERVISION_LIVE);
		break;
	default:
		CHECK(0);
	}
}

/* --- prescription/set's date-times, by reference ------------------------------------------ */

/* n ASCII digits at s. */
static bool ref_digits(const char *s, int n, int *out)
{
	*out = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		*out = *out * 10 + (s[i] - '0');
	}
	return true;
}

/*
 * docs/sessions.md: an RFC 3339 date-time with upper-case T and Z, an
 * optional fraction of 1..9 digits (digits below a millisecond round up),
 * an offset, a date
 * that exists, seconds 00..59, years from 1970, not before the epoch. The
 * calendar is the C library's: timegm for the value, gmtime_r to see that
 * the date and time were not normalised (2026-02-30 becomes March 2).
 */
static bool ref_time(const char *s, int64_t *ms)
{
	struct tm tm = { 0 }, back;
	int y, mo, d, h, mi, sec, oh = 0, om = 0, frac = 0, nfrac = 0, below_ms = 0;
	int64_t offset_s = 0;
	time_t t;
	size_t i = 19, len = strlen(s);

	if (len < 20 || !ref_digits(s, 4, &y) || s[4] != '-' || !ref_digits(s + 5, 2, &mo) ||
	    s[7] != '-' || !ref_digits(s + 8, 2, &d) || s[10] != 'T' ||
	    !ref_digits(s + 11, 2, &h) || s[13] != ':' || !ref_digits(s + 14, 2, &mi) ||
	    s[16] != ':' || !ref_digits(s + 17, 2, &sec))
		return false;
	if (s[i] == '.') {
		for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, nfrac++)
			if (nfrac < 3)
				frac = frac * 10 + (s[i] - '0');
			else if (s[i] != '0')
				below_ms = 1;
		if (nfrac < 1 || nfrac > 9)
			return false;
		for (; nfrac < 3; nfrac++)
			frac *= 10;
	}
	if (i + 1 == len && s[i] == 'Z') {
		offset_s = 0;
	} else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && ref_digits(s + i + 1, 2, &oh) &&
		   s[i + 3] == ':' && ref_digits(s + i + 4, 2, &om) && oh <= 23 && om <= 59) {
		offset_s = (s[i] == '+' ? 1 : -1) * (int64_t)(oh * 3600 + om * 60);
	} else {
		return false;
	}
	if (y < 1970 || sec > 59)
		return false;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	if (!gmtime_r(&t, &back) || back.tm_year != y - 1900 || back.tm_mon != mo - 1 ||
	    back.tm_mday != d || back.tm_hour != h || back.tm_min != mi || back.tm_sec != sec)
		return false;
	*ms = ((int64_t)t - offset_s) * 1000 + frac + below_ms;
	/* 9999-12-31T23:59:59.999Z is the last time the text can carry. */
	return *ms >= 0 && *ms <= 253402300799999LL;
}

/* The payload's valid_from and valid_until against the reference, given
 * command_parse's outcome (cmd when r == 0, err otherwise). */
static void check_prescription_times(const uint8_t *payload, size_t len, int r,
				     const struct command *cmd, const struct command_error *err)
{
	json_t *root = json_loadb((const char *)payload, len, JSON_REJECT_DUPLICATES, NULL);
	const json_t *from = json_object_get(root, "valid_from");
	const json_t *until = json_object_get(root, "valid_until");
	bool from_ok = false, until_ok = false;
	int64_t from_ms = -1, until_ms = -1;

	if (json_is_string(from))
		from_ok = ref_time(json_string_value(from), &from_ms);
	if (json_is_string(until))
		until_ok = ref_time(json_string_value(until), &until_ms);
	if (r == 0) {
		CHECK(root && from_ok && until_ok);
		CHECK(cmd->rules.valid_from_ms == from_ms && cmd->rules.valid_until_ms == until_ms);
	} else if (root && (err->code == CMD_ERR_BAD_REQUEST || err->code == CMD_ERR_OUT_OF_RANGE)) {
		if (!strncmp(err->message, "valid_from: ", 12))
			CHECK(json_is_string(from) && !from_ok);
		else if (!strcmp(err->message, "valid_until: must be after valid_from"))
			CHECK(from_ok && until_ok && until_ms <= from_ms);
		else if (!strncmp(err->message, "valid_until: ", 13))
			CHECK(json_is_string(until) && !until_ok);
	}
	json_decref(root);
}

static void fuzz_parse(enum command_verb verb, const uint8_t *payload, size_t len)
{
	static struct command cmd, before, cmd2;
	struct command_error err, err2, wiring;
	char *text = NULL;
	int r;

	memset(&cmd, 0xA5, sizeof(cmd));
	memcpy(&before, &cmd, sizeof(cmd));
	memset(&err, 0xA5, sizeof(err));
	r = command_parse(verb, payload, len, &cmd, &err);
	CHECK(r == 0 || r == -EINVAL || r == -ENOMEM);
	memset(&cmd2, 0x5A, sizeof(cmd2));
	memset(&err2, 0x5A, sizeof(err2));
	CHECK(command_parse(verb, payload, len, &cmd2, &err2) == r);
	CHECK(memcmp(&err, &err2, sizeof(err)) == 0);
	if (verb == CMD_PRESCRIPTION_SET)
		check_prescription_times(payload, len, r, &cmd, &err);
	if (r < 0) {
		CHECK(memcmp(&cmd, &before, sizeof(cmd)) == 0);
		CHECK(err.code != CMD_ERR_NONE && err.code < CMD_ERR_COUNT);
		CHECK(printable_ascii(err.message, sizeof(err.message)));
		CHECK(memchr(err.request_id, '\0', sizeof(err.request_id)));
		CHECK(!err.request_id[0] || command_id_valid(err.request_id));
		CHECK(err.retry_after_s == 0);
		CHECK(command_reply_build(err.request_id, TS, MSG_ID, NULL, &err, &text) == 0);
		check_reply(text, err.request_id[0] ? err.request_id : NULL, false,
			    command_error_name(err.code), NULL, 0);
		free(text);
		return;
	}
	CHECK(cmd.verb == verb && memcmp(&cmd, &cmd2, sizeof(cmd)) == 0);
	CHECK(err.code == CMD_ERR_NONE && !err.message[0] && !err.request_id[0]);
	check_accepted(&cmd);
	CHECK(command_reply_build(cmd.request_id, TS, MSG_ID,
				  verb == CMD_SESSION_START ? "s-0001" : NULL, NULL, &text) == 0);
	check_reply(text, cmd.request_id, true, NULL, verb == CMD_SESSION_START ? "s-0001" : NULL,
		    0);
	free(text);
	/* The wiring's refusals quote what the command named (gw_command.c). */
	command_error_set(&wiring, CMD_ERR_UNKNOWN_CUFF, cmd.request_id, "cuff \"%s\": not configured",
			  verb == CMD_ESTOP && cmd.n_cuffs ? cmd.cuffs[0] : cmd.cuff);
	CHECK(printable_ascii(wiring.message, sizeof(wiring.message)));
	CHECK(command_reply_build(wiring.request_id, TS, MSG_ID, NULL, &wiring, &text) == 0);
	check_reply(text, cmd.request_id, false, "unknown_cuff", NULL, 0);
	free(text);
}

/* --- the reply builder alone --------------------------------------------------------------- */

/* Next NUL-terminated field of [*p, end) into buf (cut to cap - 1). */
static const char *next_field(const uint8_t **p, const uint8_t *end, char *buf, size_t cap)
{
	const uint8_t *nul = memchr(*p, '\0', (size_t)(end - *p));
	size_t n = nul ? (size_t)(nul - *p) : (size_t)(end - *p);

	if (n > cap - 1)
		n = cap - 1;
	memcpy(buf, *p, n);
	buf[n] = '\0';
	*p = nul ? nul + 1 : end;
	return buf;
}

/*
 * flags: 1 no request_id, 2 no session_id, 4 the message through
 * command_error_set (else copied raw, unchecked bytes), 8 no error at all
 * (an accepted command), 16 a retry_after_s (a reperfusion wait, runner.c),
 * bits 5-7 which one.
 */
static void fuzz_reply(const uint8_t *data, size_t size)
{
	static const uint32_t retry_after[8] = { 1, 2, 59, 60, 3600, 86400, INT32_MAX, UINT32_MAX };
	char rid[300], sid[300], msg[300];
	const uint8_t *p = data + 3, *end = data + size;
	struct command_error err;
	const char *request_id, *session_id;
	unsigned flags;
	char *text = (char *)0x1;
	bool ok;
	int r;

	if (size < 3)
		return;
	flags = data[2];
	request_id = next_field(&p, end, rid, sizeof(rid));
	session_id = next_field(&p, end, sid, sizeof(sid));
	next_field(&p, end, msg, sizeof(msg));
	if (flags & 1)
		request_id = NULL;
	if (flags & 2)
		session_id = NULL;
	memset(&err, 0, sizeof(err));
	if (flags & 4) {
		command_error_set(&err, (enum command_error_code)data[1], request_id, "%s", msg);
		CHECK(printable_ascii(err.message, sizeof(err.message)) || !msg[0]);
	} else {
		err.code = (enum command_error_code)data[1];
		memcpy(err.message, msg, sizeof(err.message) - 1);
	}
	if (flags & 16)
		err.retry_after_s = retry_after[flags >> 5];
	ok = (flags & 8) || err.code == CMD_ERR_NONE;
	r = command_reply_build(request_id, TS, MSG_ID, session_id, (flags & 8) ? NULL : &err,
				&text);
	if (r < 0) {
		CHECK(r == -EINVAL || r == -ENOMEM);
		CHECK(text == (char *)0x1);
		return;
	}
	check_reply(text, request_id && request_id[0] ? request_id : NULL, ok,
		    command_error_name(err.code), ok ? session_id : NULL, ok ? 0 : err.retry_after_s);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] >= 0xF0)
		fuzz_reply(data, size);
	else
		fuzz_parse((enum command_verb)(data[0] % (CMD_VERB_COUNT + 1)), data + 1, size - 1);
	return 0;
}
