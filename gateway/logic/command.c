/* command.c - see command.h. */
#include "command.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "alarm.h"

#define PATH_MAX_LEN 96

static const char *const verb_names[CMD_VERB_COUNT] = {
	[CMD_SESSION_START] = "session/start",	 [CMD_SESSION_PAUSE] = "session/pause",
	[CMD_SESSION_RESUME] = "session/resume", [CMD_SESSION_STOP] = "session/stop",
	[CMD_ESTOP] = "estop",			 [CMD_ALARM_ACK] = "alarm/ack",
	[CMD_LOP_MEASURE] = "lop/measure",	 [CMD_CUFF_IDENTIFY] = "cuff/identify",
	[CMD_SNAPSHOT] = "snapshot",
	[CMD_PRESCRIPTION_SET] = "prescription/set",
	[CMD_PRESCRIPTION_CLEAR] = "prescription/clear",
};

static const char *const error_names[CMD_ERR_COUNT] = {
	[CMD_ERR_NONE] = "none",
	[CMD_ERR_BAD_JSON] = "bad_json",
	[CMD_ERR_BAD_REQUEST] = "bad_request",
	[CMD_ERR_UNKNOWN_FIELD] = "unknown_field",
	[CMD_ERR_MISSING_FIELD] = "missing_field",
	[CMD_ERR_WRONG_TYPE] = "wrong_type",
	[CMD_ERR_OUT_OF_RANGE] = "out_of_range",
	[CMD_ERR_UNKNOWN_VERB] = "unknown_verb",
	[CMD_ERR_UNKNOWN_CUFF] = "unknown_cuff",
	[CMD_ERR_CUFF_BUSY] = "cuff_busy",
	[CMD_ERR_LIMIT_EXCEEDED] = "limit_exceeded",
	[CMD_ERR_ALARM_UNACKED] = "alarm_unacked",
	[CMD_ERR_REPERFUSION] = "reperfusion",
	[CMD_ERR_SESSION_TOTAL] = "session_total",
	[CMD_ERR_LOP_INVALID] = "lop_invalid",
	[CMD_ERR_BATTERY_LOW] = "battery_low",
	[CMD_ERR_NOT_FOUND] = "not_found",
	[CMD_ERR_BAD_STATE] = "bad_state",
	[CMD_ERR_NOT_CONNECTED] = "not_connected",
	[CMD_ERR_INTERNAL] = "internal",
	[CMD_ERR_CUFF_FAULT] = "cuff_fault",
	[CMD_ERR_RATE_LIMITED] = "rate_limited",
	[CMD_ERR_OVERLOADED] = "overloaded",
	[CMD_ERR_OUTBOX_FULL] = "outbox_full",
};

int command_verb_parse(const char *name, enum command_verb *out)
{
	unsigned i;

	if (!name || !out)
		return -EINVAL;
	for (i = 0; i < CMD_VERB_COUNT; i++) {
		if (strcmp(name, verb_names[i]) == 0) {
			*out = (enum command_verb)i;
			return 0;
		}
	}
	return -ENOENT;
}

const char *command_verb_name(enum command_verb verb)
{
	return (unsigned)verb < CMD_VERB_COUNT ? verb_names[verb] : "unknown";
}

const char *command_error_name(enum command_error_code code)
{
	return (unsigned)code < CMD_ERR_COUNT ? error_names[code] : "internal";
}

/* --- text ------------------------------------------------------------------- */

/* Decodes one UTF-8 code point (shortest form, no surrogates); returns the
 * bytes used, 0 when the sequence is invalid. */
static size_t utf8_next(const unsigned char *p, uint32_t *cp)
{
	size_t n, i;
	uint32_t c;

	if (p[0] < 0x80) {
		*cp = p[0];
		return 1;
	}
	if ((p[0] & 0xe0) == 0xc0) {
		n = 2;
		c = p[0] & 0x1f;
	} else if ((p[0] & 0xf0) == 0xe0) {
		n = 3;
		c = p[0] & 0x0f;
	} else if ((p[0] & 0xf8) == 0xf0) {
		n = 4;
		c = p[0] & 0x07;
	} else {
		return 0;
	}
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (p[i] & 0x3f);
	}
	if ((n == 2 && c < 0x80) || (n == 3 && c < 0x800) || (n == 4 && c < 0x10000) ||
	    c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

/* White space as the schemas' `\s` sees it (Python's str.isspace()). */
static bool is_space(uint32_t c)
{
	return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 ||
	       c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
	       c == 0x202f || c == 0x205f || c == 0x3000;
}

static bool is_control(uint32_t c)
{
	return c < 0x20 || c == 0x7f;
}

enum text_rule { TEXT_ID, TEXT_NAME, TEXT_TOKEN };

enum text_verdict { TEXT_OK, TEXT_BAD_UTF8, TEXT_BAD_CHAR };

/* Counts code points of s and checks each against the rule. */
static enum text_verdict text_scan(const char *s, enum text_rule rule, size_t *n_out)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = 0, used;
	uint32_t c;

	while (*p) {
		used = utf8_next(p, &c);
		if (!used)
			return TEXT_BAD_UTF8;
		switch (rule) {
		case TEXT_ID:
			if (c == '/' || c == '#' || c == '+' || is_space(c))
				return TEXT_BAD_CHAR;
			break;
		case TEXT_NAME:
			if (is_control(c))
				return TEXT_BAD_CHAR;
			break;
		case TEXT_TOKEN:
			if (is_space(c))
				return TEXT_BAD_CHAR;
			break;
		}
		p += used;
		n++;
	}
	*n_out = n;
	return TEXT_OK;
}

static bool utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t used;
	uint32_t c;

	while (*p) {
		used = utf8_next(p, &c);
		if (!used)
			return false;
		p += used;
	}
	return true;
}

bool command_id_valid(const char *s)
{
	size_t n;

	return s && text_scan(s, TEXT_ID, &n) == TEXT_OK && n >= 1 && n <= SESSION_ID_MAX;
}

/* --- errors ------------------------------------------------------------------- */

/* Messages are ASCII so a reply can always carry them, whatever the input. */
static void error_vset(struct command_error *err, enum command_error_code code,
		       const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));
static void error_vset(struct command_error *err, enum command_error_code code,
		       const char *fmt, va_list ap)
{
	char *p;

	err->code = code;
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	for (p = err->message; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
}

void command_error_set(struct command_error *err, enum command_error_code code,
		       const char *request_id, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return;
	memset(err, 0, sizeof(*err));
	if (command_id_valid(request_id))
		snprintf(err->request_id, sizeof(err->request_id), "%s", request_id);
	va_start(ap, fmt);
	error_vset(err, code, fmt, ap);
	va_end(ap);
}

static int fail(struct command_error *err, enum command_error_code code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct command_error *err, enum command_error_code code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	error_vset(err, code, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static const char *type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "object";
	case JSON_ARRAY:
		return "array";
	case JSON_STRING:
		return "string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "boolean";
	case JSON_NULL:
		return "null";
	}
	return "unknown";
}

/* Paths are short by construction (the deepest is
 * "plan.exercises[9].tempo_s[1]"); a hostile key is cut to 32 bytes first. */
static void path_fmt(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void path_fmt(char *buf, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, PATH_MAX_LEN, fmt, ap);
	va_end(ap);
}

/* "plan" + "exercises" -> "plan.exercises"; "" + "plan" -> "plan". */
static void join(char *buf, const char *path, const char *key)
{
	path_fmt(buf, "%s%s%s", path, path[0] ? "." : "", key);
}

/* --- fields ------------------------------------------------------------------- */

/* Field lists per object; also the order fields are validated in. */
static const char *const envelope_fields[] = {"v", "ts", "msg_id", NULL};

static bool in_list(const char *key, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(key, *list) == 0)
			return true;
	return false;
}

static int check_unknown(json_t *obj, const char *path, const char *const *allowed,
			 bool envelope, struct command_error *err)
{
	char shown[40], where[PATH_MAX_LEN];
	const char *key;
	json_t *val;

	json_object_foreach(obj, key, val) {
		if (in_list(key, allowed) || (envelope && in_list(key, envelope_fields)))
			continue;
		/* Quote at most 32 bytes of a hostile key. */
		snprintf(shown, sizeof(shown), "%.32s%s", key, strlen(key) > 32 ? "..." : "");
		join(where, path, shown);
		return fail(err, CMD_ERR_UNKNOWN_FIELD, "%s: unknown field", where);
	}
	return 0;
}

/* *out is NULL when an optional field is absent. */
static int get_field(json_t *obj, const char *path, const char *key, bool required, json_t **out,
		     struct command_error *err)
{
	char where[PATH_MAX_LEN];
	json_t *v = json_object_get(obj, key);

	if (!v && required) {
		join(where, path, key);
		/* -EINVAL in plain sight: callers read *out whenever this returns 0, and gcc -O2
		 * cannot see through the variadic fail() that it never does here. */
		fail(err, CMD_ERR_MISSING_FIELD, "%s: missing", where);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int check_uint(json_t *v, const char *path, long lo, long hi, unsigned *out,
		      struct command_error *err)
{
	double d;

	if (json_is_integer(v)) {
		json_int_t i = json_integer_value(v);

		if (i < lo)
			return fail(err, CMD_ERR_OUT_OF_RANGE, "%s: %lld is below %ld", path,
				    (long long)i, lo);
		if (i > hi)
			return fail(err, CMD_ERR_OUT_OF_RANGE, "%s: %lld is above %ld", path,
				    (long long)i, hi);
		*out = (unsigned)i;
		return 0;
	}
	if (!json_is_real(v))
		return fail(err, CMD_ERR_WRONG_TYPE, "%s: must be an integer, got %s", path,
			    type_name(v));
	/* JSON Schema counts 30.0 as an integer; so do we, but not 30.5. */
	d = json_real_value(v);
	if (d != floor(d))
		return fail(err, CMD_ERR_WRONG_TYPE, "%s: must be an integer, got %g", path, d);
	if (d < (double)lo)
		return fail(err, CMD_ERR_OUT_OF_RANGE, "%s: %g is below %ld", path, d, lo);
	if (d > (double)hi)
		return fail(err, CMD_ERR_OUT_OF_RANGE, "%s: %g is above %ld", path, d, hi);
	*out = (unsigned)d;
	return 0;
}

static int get_uint(json_t *obj, const char *path, const char *key, long lo, long hi,
		    unsigned *out, struct command_error *err)
{
	char where[PATH_MAX_LEN];
	json_t *v;
	int ret;

	ret = get_field(obj, path, key, true, &v, err);
	if (ret)
		return ret;
	join(where, path, key);
	return check_uint(v, where, lo, hi, out, err);
}

/* A string field per rule: ids (1..64, no / # + space), names (1..64, no
 * control characters), tokens (1..max, no space). `out` holds cap bytes. */
static int check_text(json_t *v, const char *path, enum text_rule rule, size_t max_cp,
		      char *out, size_t cap, struct command_error *err)
{
	const char *s;
	size_t n;

	if (!json_is_string(v))
		return fail(err, CMD_ERR_WRONG_TYPE, "%s: must be a string, got %s", path,
			    type_name(v));
	s = json_string_value(v);
	switch (text_scan(s, rule, &n)) {
	case TEXT_OK:
		break;
	case TEXT_BAD_UTF8: /* jansson only hands out valid UTF-8; defence in depth */
		return fail(err, CMD_ERR_BAD_REQUEST, "%s: not valid UTF-8", path);
	case TEXT_BAD_CHAR:
		return fail(err, CMD_ERR_BAD_REQUEST, "%s: %s", path,
			    rule == TEXT_ID     ? "must not contain '/', '#', '+' or white space"
			    : rule == TEXT_NAME ? "must not contain control characters"
						: "must not contain white space");
	}
	if (n == 0)
		return fail(err, CMD_ERR_OUT_OF_RANGE, "%s: must not be empty", path);
	if (n > max_cp)
		return fail(err, CMD_ERR_OUT_OF_RANGE, "%s: %zu characters, at most %zu", path, n,
			    max_cp);
	if (out) {
		if (strlen(s) >= cap) /* cannot happen with cap >= 4 * max_cp + 1 */
			return fail(err, CMD_ERR_OUT_OF_RANGE, "%s: too long", path);
		memcpy(out, s, strlen(s) + 1);
	}
	return 0;
}

static int get_id(json_t *obj, const char *path, const char *key, bool required, char *out,
		  bool *present, struct command_error *err)
{
	char where[PATH_MAX_LEN];
	json_t *v;
	int ret;

	ret = get_field(obj, path, key, required, &v, err);
	if (ret)
		return ret;
	if (present)
		*present = v != NULL;
	if (!v)
		return 0;
	join(where, path, key);
	return check_text(v, where, TEXT_ID, SESSION_ID_MAX, out, SESSION_ID_BUF, err);
}

/* `ts`: RFC 3339 UTC with milliseconds, the form every payload uses. */
static bool ts_valid(const char *s)
{
	static const char form[] = "dddd-dd-ddTdd:dd:dd.dddZ";
	size_t i;

	if (strlen(s) != sizeof(form) - 1)
		return false;
	for (i = 0; form[i]; i++) {
		if (form[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != form[i])
			return false;
	}
	return true;
}

static int check_envelope(json_t *root, struct command_error *err)
{
	unsigned v;
	json_t *f;
	int ret;

	f = json_object_get(root, "v");
	if (f) {
		ret = check_uint(f, "v", 0, 1000000, &v, err);
		if (ret)
			return ret;
		if (v != 1)
			return fail(err, CMD_ERR_OUT_OF_RANGE, "v: %u is not supported (only 1)",
				    v);
	}
	f = json_object_get(root, "ts");
	if (f) {
		if (!json_is_string(f))
			return fail(err, CMD_ERR_WRONG_TYPE, "ts: must be a string, got %s",
				    type_name(f));
		if (!ts_valid(json_string_value(f)))
			return fail(err, CMD_ERR_BAD_REQUEST,
				    "ts: must be RFC 3339 UTC with milliseconds "
				    "(2026-01-31T09:30:00.123Z)");
	}
	f = json_object_get(root, "msg_id");
	if (f)
		return check_text(f, "msg_id", TEXT_TOKEN, COMMAND_MSG_ID_MAX, NULL, 0, err);
	return 0;
}

/* An array of 1..max distinct ids into out[max][SESSION_ID_BUF]. */
static int check_id_list(json_t *arr, const char *path, size_t max, char (*out)[SESSION_ID_BUF],
			 unsigned *n_out, struct command_error *err)
{
	char where[PATH_MAX_LEN];
	size_t n, i, j;
	int ret;

	if (!json_is_array(arr))
		return fail(err, CMD_ERR_WRONG_TYPE, "%s: must be an array, got %s", path,
			    type_name(arr));
	n = json_array_size(arr);
	if (n < 1 || n > max)
		return fail(err, CMD_ERR_OUT_OF_RANGE, "%s: %zu items, must be 1..%zu", path, n,
			    max);
	for (i = 0; i < n; i++) {
		path_fmt(where, "%s[%zu]", path, i);
		ret = check_text(json_array_get(arr, i), where, TEXT_ID, SESSION_ID_MAX, out[i],
				 SESSION_ID_BUF, err);
		if (ret)
			return ret;
		for (j = 0; j < i; j++)
			if (strcmp(out[i], out[j]) == 0)
				return fail(err, CMD_ERR_BAD_REQUEST, "%s: duplicate of %s[%zu]",
					    where, path, j);
	}
	*n_out = (unsigned)n;
	return 0;
}

/* --- session/start -------------------------------------------------------------- */

static const char *const exercise_fields[] = {
	"name", "cuffs", "pct_lop", "mode", "sets", "tempo_s", "rest_s", "reperfusion_s",
	"on_s", "off_s", "cycles", NULL,
};
static const char *const rep_only[] = {"sets", "tempo_s", "rest_s", NULL};
static const char *const cycle_only[] = {"on_s", "off_s", "cycles", NULL};

static int check_mode(json_t *ex, const char *path, enum session_mode *out,
		      struct command_error *err)
{
	char where[PATH_MAX_LEN];
	const char *s;
	json_t *v;
	int ret;

	ret = get_field(ex, path, "mode", true, &v, err);
	if (ret)
		return ret;
	join(where, path, "mode");
	if (!json_is_string(v))
		return fail(err, CMD_ERR_WRONG_TYPE, "%s: must be a string, got %s", where,
			    type_name(v));
	s = json_string_value(v);
	if (strcmp(s, "continuous") == 0)
		*out = SESSION_MODE_CONTINUOUS;
	else if (strcmp(s, "intermittent") == 0)
		*out = SESSION_MODE_INTERMITTENT;
	else if (strcmp(s, "cycle") == 0)
		*out = SESSION_MODE_CYCLE;
	else
		return fail(err, CMD_ERR_OUT_OF_RANGE,
			    "%s: must be \"continuous\", \"intermittent\" or \"cycle\"", where);
	return 0;
}

/* Fields of the other mode are refused rather than ignored: a plan that says
 * something the gateway would not do must not be accepted. */
static int refuse_fields(json_t *ex, const char *path, const char *const *fields,
			 const char *why, struct command_error *err)
{
	char where[PATH_MAX_LEN];

	for (; *fields; fields++) {
		if (!json_object_get(ex, *fields))
			continue;
		join(where, path, *fields);
		return fail(err, CMD_ERR_BAD_REQUEST, "%s: %s", where, why);
	}
	return 0;
}

static int check_sets(json_t *ex, const char *path, struct session_exercise *out,
		      struct command_error *err)
{
	char where[PATH_MAX_LEN], item[PATH_MAX_LEN];
	json_t *v;
	size_t n, i;
	int ret;

	ret = get_field(ex, path, "sets", true, &v, err);
	if (ret)
		return ret;
	join(where, path, "sets");
	if (!json_is_array(v))
		return fail(err, CMD_ERR_WRONG_TYPE, "%s: must be an array, got %s", where,
			    type_name(v));
	n = json_array_size(v);
	if (n < 1 || n > SESSION_MAX_SETS)
		return fail(err, CMD_ERR_OUT_OF_RANGE, "%s: %zu sets, must be 1..%d", where, n,
			    SESSION_MAX_SETS);
	for (i = 0; i < n; i++) {
		path_fmt(item, "%s[%zu]", where, i);
		ret = check_uint(json_array_get(v, i), item, SESSION_REPS_MIN, SESSION_REPS_MAX,
				 &out->sets[i], err);
		if (ret)
			return ret;
	}
	out->n_sets = (unsigned)n;
	return 0;
}

static int check_tempo(json_t *ex, const char *path, struct session_exercise *out,
		       struct command_error *err)
{
	char where[PATH_MAX_LEN], item[PATH_MAX_LEN];
	unsigned *dst[2] = {&out->tempo_up_s, &out->tempo_down_s};
	json_t *v;
	size_t i;
	int ret;

	ret = get_field(ex, path, "tempo_s", true, &v, err);
	if (ret)
		return ret;
	join(where, path, "tempo_s");
	if (!json_is_array(v))
		return fail(err, CMD_ERR_WRONG_TYPE, "%s: must be an array, got %s", where,
			    type_name(v));
	if (json_array_size(v) != 2)
		return fail(err, CMD_ERR_OUT_OF_RANGE, "%s: %zu items, must be [up, down]", where,
			    json_array_size(v));
	for (i = 0; i < 2; i++) {
		path_fmt(item, "%s[%zu]", where, i);
		ret = check_uint(json_array_get(v, i), item, SESSION_TEMPO_MIN_S,
				 SESSION_TEMPO_MAX_S, dst[i], err);
		if (ret)
			return ret;
	}
	return 0;
}

static int check_exercise(json_t *ex, const char *path, struct session_exercise *out,
			  struct command_error *err)
{
	char where[PATH_MAX_LEN];
	json_t *v;
	int ret;

	if (!json_is_object(ex))
		return fail(err, CMD_ERR_WRONG_TYPE, "%s: must be an object, got %s", path,
			    type_name(ex));
	ret = check_unknown(ex, path, exercise_fields, false, err);
	if (ret)
		return ret;

	ret = get_field(ex, path, "name", true, &v, err);
	if (ret)
		return ret;
	join(where, path, "name");
	ret = check_text(v, where, TEXT_NAME, SESSION_NAME_MAX, out->name, sizeof(out->name), err);
	if (ret)
		return ret;

	ret = get_field(ex, path, "cuffs", true, &v, err);
	if (ret)
		return ret;
	join(where, path, "cuffs");
	ret = check_id_list(v, where, SESSION_MAX_CUFFS, out->cuffs, &out->n_cuffs, err);
	if (ret)
		return ret;

	ret = get_uint(ex, path, "pct_lop", SESSION_PCT_LOP_MIN, SESSION_PCT_LOP_MAX,
		       &out->pct_lop, err);
	if (ret)
		return ret;
	ret = check_mode(ex, path, &out->mode, err);
	if (ret)
		return ret;

	if (out->mode == SESSION_MODE_CYCLE) {
		ret = refuse_fields(ex, path, rep_only,
				    "not allowed in cycle mode (it uses on_s, off_s, cycles)", err);
		if (!ret)
			ret = get_uint(ex, path, "on_s", SESSION_CYCLE_MIN_S, SESSION_CYCLE_MAX_S,
				       &out->on_s, err);
		if (!ret)
			ret = get_uint(ex, path, "off_s", SESSION_CYCLE_MIN_S, SESSION_CYCLE_MAX_S,
				       &out->off_s, err);
		if (!ret)
			ret = get_uint(ex, path, "cycles", 1, SESSION_MAX_SETS, &out->cycles, err);
	} else {
		ret = refuse_fields(ex, path, cycle_only, "only allowed in cycle mode", err);
		if (!ret)
			ret = check_sets(ex, path, out, err);
		if (!ret)
			ret = check_tempo(ex, path, out, err);
		if (!ret)
			ret = get_uint(ex, path, "rest_s", 0, SESSION_REST_MAX_S, &out->rest_s,
				       err);
	}
	if (ret)
		return ret;
	return get_uint(ex, path, "reperfusion_s", SESSION_REPERFUSION_MIN_S,
			SESSION_REPERFUSION_MAX_S, &out->reperfusion_s, err);
}

static int check_plan(json_t *root, struct session_plan *out, struct command_error *err)
{
	static const char *const plan_fields[] = {"exercises", NULL};
	char where[PATH_MAX_LEN];
	json_t *plan, *list;
	size_t n, i;
	int ret;

	ret = get_field(root, "", "plan", true, &plan, err);
	if (ret)
		return ret;
	if (!json_is_object(plan))
		return fail(err, CMD_ERR_WRONG_TYPE, "plan: must be an object, got %s",
			    type_name(plan));
	ret = check_unknown(plan, "plan", plan_fields, false, err);
	if (ret)
		return ret;
	ret = get_field(plan, "plan", "exercises", true, &list, err);
	if (ret)
		return ret;
	if (!json_is_array(list))
		return fail(err, CMD_ERR_WRONG_TYPE, "plan.exercises: must be an array, got %s",
			    type_name(list));
	n = json_array_size(list);
	if (n < 1 || n > SESSION_MAX_EXERCISES)
		return fail(err, CMD_ERR_OUT_OF_RANGE,
			    "plan.exercises: %zu exercises, must be 1..%d", n,
			    SESSION_MAX_EXERCISES);
	for (i = 0; i < n; i++) {
		path_fmt(where, "plan.exercises[%zu]", i);
		ret = check_exercise(json_array_get(list, i), where, &out->exercises[i], err);
		if (ret)
			return ret;
	}
	out->n_exercises = (unsigned)n;
	return 0;
}

/*
 * alarm/ack `by`: a clinician's name as they write it ("Jürgen"), so UTF-8
 * with no control characters (C0, DEL, nor C1: U+0080..U+009F). It goes
 * into the alarm record as it is, so its limit is the record's, in bytes:
 * 64 ASCII characters, fewer when they are not ASCII.
 */
#define ACK_BY_MAX_BYTES (ALARM_BY_MAX - 1)

static int check_by(json_t *v, char *out, size_t cap, struct command_error *err)
{
	const unsigned char *p;
	size_t len, used;
	uint32_t c = 0;
	/* The length is judged below, in bytes. */
	int ret = check_text(v, "by", TEXT_NAME, SIZE_MAX, NULL, 0, err);

	if (ret)
		return ret;
	p = (const unsigned char *)json_string_value(v);
	len = strlen((const char *)p);
	if (len > ACK_BY_MAX_BYTES)
		return fail(err, CMD_ERR_OUT_OF_RANGE, "by: %zu bytes, at most %d (UTF-8)", len,
			    ACK_BY_MAX_BYTES);
	/* check_text has seen valid UTF-8 and no C0 control or DEL. */
	for (; *p; p += used) {
		used = utf8_next(p, &c);
		if (used == 0) /* cannot happen after check_text; never spin */
			return fail(err, CMD_ERR_BAD_REQUEST, "by: not valid UTF-8");
		if (c >= 0x80 && c <= 0x9f)
			return fail(err, CMD_ERR_BAD_REQUEST,
				    "by: must not contain control characters");
	}
	if (len >= cap) /* cannot happen: cap >= ALARM_BY_MAX */
		return fail(err, CMD_ERR_OUT_OF_RANGE, "by: too long");
	memcpy(out, json_string_value(v), len + 1);
	return 0;
}

/* --- prescription/set -------------------------------------------------------------- */

/* n decimal digits at s; false when one is not a digit. */
static bool digits(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

static bool leap_year(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/*
 * RFC 3339 date-time, `2026-11-24T08:00:00+01:00` or `...Z`, with an
 * optional fraction of 1..9 digits (milliseconds are kept, the rest is cut
 * off): upper-case T and Z, years 1970..9999, no leap second. The result is
 * UTC wall ms since the epoch, never negative.
 */
static int check_time(json_t *v, const char *path, int64_t *out, struct command_error *err)
{
	static const int mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int y, mo, d, h, mi, sec, oh = 0, om = 0, frac_ms = 0, sign = 0;
	const char *s, *p;
	int64_t ms;

	if (!json_is_string(v))
		return fail(err, CMD_ERR_WRONG_TYPE, "%s: must be a string, got %s", path,
			    type_name(v));
	s = json_string_value(v);
	if (strlen(s) < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
	    s[7] != '-' || !digits(s + 8, 2, &d) || s[10] != 'T' || !digits(s + 11, 2, &h) ||
	    s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &sec))
		goto bad_form;
	p = s + 19;
	if (*p == '.') {
		int n = 0;

		for (p++; *p >= '0' && *p <= '9'; p++, n++)
			if (n < 3)
				frac_ms = frac_ms * 10 + (*p - '0');
		if (n < 1 || n > 9)
			goto bad_form;
		for (; n < 3; n++)
			frac_ms *= 10;
	}
	if (*p == 'Z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p == '+' ? 1 : -1;
		if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om))
			goto bad_form;
		p += 6;
	} else {
		goto bad_form;
	}
	if (*p != '\0')
		goto bad_form;
	if (y < 1970)
		return fail(err, CMD_ERR_OUT_OF_RANGE, "%s: year %d is before 1970", path, y);
	if (mo < 1 || mo > 12)
		return fail(err, CMD_ERR_OUT_OF_RANGE, "%s: month %d is not 1..12", path, mo);
	if (d < 1 || d > mdays[mo - 1] + (mo == 2 && leap_year(y)))
		return fail(err, CMD_ERR_OUT_OF_RANGE, "%s: day %d does not exist in %04d-%02d",
			    path, d, y, mo);
	if (h > 23 || mi > 59 || sec > 59)
		return fail(err, CMD_ERR_OUT_OF_RANGE,
			    "%s: time of day %02d:%02d:%02d is not 00:00:00..23:59:59", path, h, mi,
			    sec);
	if (oh > 23 || om > 59)
		return fail(err, CMD_ERR_OUT_OF_RANGE,
			    "%s: UTC offset %02d:%02d is not 00:00..23:59", path, oh, om);
	ms = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60 + sec;
	ms = ms * 1000 + frac_ms - (int64_t)sign * ((int64_t)oh * 60 + om) * 60000;
	if (ms < 0)
		return fail(err, CMD_ERR_OUT_OF_RANGE, "%s: before 1970-01-01T00:00:00Z", path);
	*out = ms;
	return 0;
bad_form:
	return fail(err, CMD_ERR_BAD_REQUEST,
		    "%s: must be an RFC 3339 date-time such as 2026-11-24T08:00:00+01:00 or "
		    "2026-11-24T07:00:00.000Z",
		    path);
}

/* An optional integer: def when absent. */
static int get_uint_opt(json_t *obj, const char *key, long lo, long hi, unsigned def,
			unsigned *out, struct command_error *err)
{
	json_t *v = json_object_get(obj, key);

	if (!v) {
		*out = def;
		return 0;
	}
	return check_uint(v, key, lo, hi, out, err);
}

static int check_prescription(json_t *root, struct command *cmd, struct command_error *err)
{
	struct prescription_rules *r = &cmd->rules;
	json_t *v = NULL;
	int ret;

	ret = check_plan(root, &cmd->plan, err);
	if (!ret)
		ret = get_id(root, "", "patient", false, cmd->patient, &cmd->has_patient, err);
	if (!ret)
		ret = get_field(root, "", "valid_from", true, &v, err);
	if (!ret)
		ret = check_time(v, "valid_from", &r->valid_from_ms, err);
	if (!ret)
		ret = get_field(root, "", "valid_until", true, &v, err);
	if (!ret)
		ret = check_time(v, "valid_until", &r->valid_until_ms, err);
	if (ret)
		return ret;
	if (r->valid_until_ms <= r->valid_from_ms)
		return fail(err, CMD_ERR_OUT_OF_RANGE, "valid_until: must be after valid_from");
	ret = get_uint_opt(root, "max_per_day", PRESCRIPTION_MAX_PER_DAY_MIN,
			   PRESCRIPTION_MAX_PER_DAY_MAX, PRESCRIPTION_MAX_PER_DAY_DEFAULT,
			   &r->max_per_day, err);
	if (!ret)
		ret = get_uint_opt(root, "min_hours_between", 0, PRESCRIPTION_MIN_HOURS_MAX,
				   PRESCRIPTION_MIN_HOURS_DEFAULT, &r->min_hours_between, err);
	if (!ret)
		ret = get_field(root, "", "supervision", true, &v, err);
	if (ret)
		return ret;
	if (!json_is_string(v))
		return fail(err, CMD_ERR_WRONG_TYPE, "supervision: must be a string, got %s",
			    type_name(v));
	if (prescription_supervision_parse(json_string_value(v), &r->supervision) < 0)
		return fail(err, CMD_ERR_OUT_OF_RANGE,
			    "supervision: must be \"none\", \"remote\" or \"live\"");
	return 0;
}

/* --- per verb ------------------------------------------------------------------ */

static const char *const start_fields[] = {"request_id", "plan", "patient", NULL};
static const char *const session_ref_fields[] = {"request_id", "session_id", NULL};
static const char *const stop_fields[] = {"request_id", "session_id", "by", "reason", NULL};
static const char *const estop_fields[] = {"request_id", "cuffs", "by", "reason", NULL};
static const char *const ack_fields[] = {"request_id", "alarm_id", "by", NULL};
static const char *const cuff_ref_fields[] = {"request_id", "cuff", NULL};
static const char *const prescription_set_fields[] = {
	"request_id", "plan", "patient", "valid_from", "valid_until", "max_per_day",
	"min_hours_between", "supervision", NULL,
};
static const char *const request_only_fields[] = {"request_id", NULL};

static const char *const *const verb_fields[CMD_VERB_COUNT] = {
	[CMD_SESSION_START] = start_fields,	  [CMD_SESSION_PAUSE] = session_ref_fields,
	[CMD_SESSION_RESUME] = session_ref_fields, [CMD_SESSION_STOP] = stop_fields,
	[CMD_ESTOP] = estop_fields,		  [CMD_ALARM_ACK] = ack_fields,
	[CMD_LOP_MEASURE] = cuff_ref_fields,	  [CMD_CUFF_IDENTIFY] = cuff_ref_fields,
	[CMD_SNAPSHOT] = request_only_fields,
	[CMD_PRESCRIPTION_SET] = prescription_set_fields,
	[CMD_PRESCRIPTION_CLEAR] = request_only_fields,
};

/* The optional `by` and `reason` of a stop or an e-stop: who and why. */
static int get_who_why(json_t *root, struct command *cmd, struct command_error *err)
{
	json_t *v = json_object_get(root, "by");
	int ret;

	if (v) {
		ret = check_by(v, cmd->by, sizeof(cmd->by), err);
		if (ret)
			return ret;
	}
	v = json_object_get(root, "reason");
	if (!v)
		return 0;
	return check_text(v, "reason", TEXT_NAME, COMMAND_REASON_MAX, cmd->reason,
			  sizeof(cmd->reason), err);
}

static int check_verb_fields(json_t *root, struct command *cmd, struct command_error *err)
{
	json_t *v;
	int ret;

	switch (cmd->verb) {
	case CMD_SESSION_START:
		ret = check_plan(root, &cmd->plan, err);
		if (ret)
			return ret;
		return get_id(root, "", "patient", false, cmd->patient, &cmd->has_patient, err);
	case CMD_SESSION_PAUSE:
	case CMD_SESSION_RESUME:
		return get_id(root, "", "session_id", true, cmd->session_id, NULL, err);
	case CMD_SESSION_STOP:
		ret = get_id(root, "", "session_id", true, cmd->session_id, NULL, err);
		return ret ? ret : get_who_why(root, cmd, err);
	case CMD_ESTOP:
		v = json_object_get(root, "cuffs");
		if (v) { /* absent: every cuff */
			ret = check_id_list(v, "cuffs", COMMAND_ESTOP_MAX_CUFFS, cmd->cuffs,
					    &cmd->n_cuffs, err);
			if (ret)
				return ret;
		}
		return get_who_why(root, cmd, err);
	case CMD_SNAPSHOT:
		return 0;
	case CMD_ALARM_ACK:
		ret = get_id(root, "", "alarm_id", true, cmd->alarm_id, NULL, err);
		if (ret)
			return ret;
		ret = get_field(root, "", "by", true, &v, err);
		if (ret)
			return ret;
		return check_by(v, cmd->by, sizeof(cmd->by), err);
	case CMD_LOP_MEASURE:
	case CMD_CUFF_IDENTIFY:
		return get_id(root, "", "cuff", true, cmd->cuff, NULL, err);
	case CMD_PRESCRIPTION_SET:
		return check_prescription(root, cmd, err);
	case CMD_PRESCRIPTION_CLEAR:
		return 0;
	case CMD_VERB_COUNT:
		break;
	}
	return fail(err, CMD_ERR_UNKNOWN_VERB, "unknown verb");
}

/*
 * What kind of syntax error, in our words: jansson's own text quotes the
 * payload ("near 'xyz'"), and a reply or a log line never does.
 */
static const char *json_error_kind(const json_error_t *jerr)
{
	switch (json_error_code(jerr)) {
	case json_error_invalid_utf8:
		return "invalid UTF-8";
	case json_error_premature_end_of_input:
		return "unexpected end of input";
	case json_error_end_of_input_expected:
		return "text after the JSON value";
	case json_error_null_character:
	case json_error_null_byte_in_key:
		return "\\u0000 in a string";
	case json_error_duplicate_key:
		return "duplicate object key";
	case json_error_numeric_overflow:
		return "number out of range";
	case json_error_stack_overflow:
		return "nested too deeply";
	default:
		return "syntax error";
	}
}

int command_parse(enum command_verb verb, const void *payload, size_t len,
		  struct command *out, struct command_error *err)
{
	struct command *cmd = NULL;
	json_t *root = NULL;
	json_error_t jerr;
	int ret;

	if (!err)
		return -EINVAL;
	memset(err, 0, sizeof(*err));
	if ((unsigned)verb >= CMD_VERB_COUNT) {
		ret = fail(err, CMD_ERR_UNKNOWN_VERB, "unknown verb %d", (int)verb);
		goto out;
	}
	if (!out || (!payload && len)) {
		ret = fail(err, CMD_ERR_BAD_REQUEST, "payload: missing");
		goto out;
	}
	if (len > COMMAND_PAYLOAD_MAX) {
		ret = fail(err, CMD_ERR_BAD_REQUEST, "payload: %zu bytes, at most %d", len,
			   COMMAND_PAYLOAD_MAX);
		goto out;
	}
	root = json_loadb(payload ? payload : "", len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
			  &jerr);
	if (!root) {
		/* jansson 2.14 reports a failed allocation in lex_init() with no
		 * error text at all; a real syntax error always has one. */
		if (json_error_code(&jerr) == json_error_out_of_memory || !jerr.text[0]) {
			fail(err, CMD_ERR_INTERNAL, "out of memory");
			ret = -ENOMEM;
		} else {
			ret = fail(err, CMD_ERR_BAD_JSON,
				   "payload: invalid JSON (%s) at line %d column %d, byte %d",
				   json_error_kind(&jerr), jerr.line, jerr.column, jerr.position);
		}
		goto out;
	}
	if (!json_is_object(root)) {
		ret = fail(err, CMD_ERR_BAD_REQUEST, "payload: must be a JSON object, got %s",
			   type_name(root));
		goto out;
	}
	cmd = calloc(1, sizeof(*cmd));
	if (!cmd) {
		fail(err, CMD_ERR_INTERNAL, "out of memory");
		ret = -ENOMEM;
		goto out;
	}
	cmd->verb = verb;
	/* request_id first, so even a refusal can be answered to the sender. */
	ret = get_id(root, "", "request_id", true, cmd->request_id, NULL, err);
	if (ret)
		goto out;
	memcpy(err->request_id, cmd->request_id, sizeof(err->request_id));
	ret = check_unknown(root, "", verb_fields[verb], true, err);
	if (!ret)
		ret = check_envelope(root, err);
	if (!ret)
		ret = check_verb_fields(root, cmd, err);
	if (ret)
		goto out;
	*out = *cmd;
	memset(err, 0, sizeof(*err));
	ret = 0;
out:
	free(cmd);
	json_decref(root);
	return ret;
}

/* --- replies ------------------------------------------------------------------- */

/* json_object_set_new() steals the value even on failure; NULL values fail. */
static int set(json_t *obj, const char *key, json_t *value)
{
	return json_object_set_new(obj, key, value) == 0 ? 0 : -ENOMEM;
}

int command_reply_build(const char *request_id, const char *ts, const char *msg_id,
			const char *session_id, const struct command_error *err, char **out)
{
	bool ok = !err || err->code == CMD_ERR_NONE;
	json_t *root = NULL, *e;
	char *text;
	int ret = -EINVAL;

	if (!out || !ts || !ts[0] || !msg_id || !msg_id[0] || !utf8_valid(ts) ||
	    !utf8_valid(msg_id))
		goto fail;
	if (request_id && request_id[0] && !command_id_valid(request_id))
		goto fail;
	if (ok && session_id && !command_id_valid(session_id))
		goto fail;
	if (!ok && !utf8_valid(err->message))
		goto fail;

	ret = -ENOMEM;
	root = json_object();
	if (!root)
		goto fail;
	if (set(root, "v", json_integer(1)) || set(root, "ts", json_string(ts)) ||
	    set(root, "msg_id", json_string(msg_id)) ||
	    set(root, "request_id",
		request_id && request_id[0] ? json_string(request_id) : json_null()) ||
	    set(root, "ok", json_boolean(ok)))
		goto fail;
	if (ok && session_id && set(root, "session_id", json_string(session_id)))
		goto fail;
	if (!ok) {
		e = json_object();
		if (set(root, "error", e) ||
		    set(e, "code", json_string(command_error_name(err->code))) ||
		    set(e, "message", json_string(err->message[0] ? err->message
								 : command_error_name(err->code))))
			goto fail;
		if (err->retry_after_s && set(e, "retry_after_s", json_integer(err->retry_after_s)))
			goto fail;
	}
	text = json_dumps(root, JSON_COMPACT);
	if (!text)
		goto fail;
	json_decref(root);
	*out = text;
	return 0;
fail:
	json_decref(root);
	return ret;
}

enum command_error_code command_refusal_code(enum limits_refusal refusal)
{
	switch (refusal) {
	case LIMITS_OK:
		return CMD_ERR_NONE;
	case LIMITS_REFUSE_PCT_INVALID:
	case LIMITS_REFUSE_PCT_ABOVE_MAX:
	case LIMITS_REFUSE_TARGET_INVALID:
	case LIMITS_REFUSE_TARGET_ABOVE_CEILING:
	case LIMITS_REFUSE_TARGET_ABOVE_PCT:
		return CMD_ERR_LIMIT_EXCEEDED;
	case LIMITS_REFUSE_LOP_MISSING:
	case LIMITS_REFUSE_LOP_OUT_OF_RANGE:
	case LIMITS_REFUSE_LOP_TOO_OLD:
		return CMD_ERR_LOP_INVALID;
	case LIMITS_REFUSE_LINK_DOWN:
		return CMD_ERR_NOT_CONNECTED;
	case LIMITS_REFUSE_REPERFUSION:
		return CMD_ERR_REPERFUSION;
	case LIMITS_REFUSE_SESSION_TOTAL:
		return CMD_ERR_SESSION_TOTAL;
	case LIMITS_REFUSE_UNACKED_HIGH:
		return CMD_ERR_ALARM_UNACKED;
	case LIMITS_REFUSE_BATTERY:
	case LIMITS_REFUSE_BATTERY_UNKNOWN:
		return CMD_ERR_BATTERY_LOW;
	case LIMITS_REFUSE_CUFF_FAULT:
		return CMD_ERR_CUFF_FAULT;
	default:
		return CMD_ERR_BAD_STATE;
	}
}
