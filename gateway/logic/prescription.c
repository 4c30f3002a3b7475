/* prescription.c - see prescription.h. */
#include "prescription.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define MS_PER_MIN 60000LL
#define MS_PER_HOUR (60 * MS_PER_MIN)
/* 9999-12-31T23:59:59.999Z: four-digit years only, as RFC 3339 has them. */
#define PRESCRIPTION_TIME_MAX_MS 253402300799999LL

static const char *const refusal_names[PRESCRIPTION_REFUSE_COUNT] = {
	[PRESCRIPTION_OK] = "ok",
	[PRESCRIPTION_REFUSE_NONE] = "no_prescription",
	[PRESCRIPTION_REFUSE_NOT_YET_VALID] = "not_yet_valid",
	[PRESCRIPTION_REFUSE_EXPIRED] = "expired",
	[PRESCRIPTION_REFUSE_DAILY_LIMIT] = "daily_limit",
	[PRESCRIPTION_REFUSE_TOO_SOON] = "too_soon",
	[PRESCRIPTION_REFUSE_SUPERVISOR_ABSENT] = "supervisor_absent",
};

static const char *const supervision_names[] = { "none", "remote", "live" };

const char *prescription_refusal_name(enum prescription_refusal refusal)
{
	return (unsigned)refusal < PRESCRIPTION_REFUSE_COUNT ? refusal_names[refusal] : "unknown";
}

const char *prescription_supervision_name(enum prescription_supervision s)
{
	return (unsigned)s <= PRESCRIPTION_SUPERVISION_LIVE ? supervision_names[s] : "unknown";
}

int prescription_supervision_parse(const char *name, enum prescription_supervision *out)
{
	for (unsigned i = 0; name && i <= PRESCRIPTION_SUPERVISION_LIVE; i++)
		if (strcmp(name, supervision_names[i]) == 0) {
			*out = (enum prescription_supervision)i;
			return 0;
		}
	return -EINVAL;
}

/* --- the rules ------------------------------------------------------------------ */

/*
 * "45 min", "3 h 5 min", "2 days": rounded up to the minute, so a patient
 * who tries again at the time said is never early.
 */
static void format_wait(int64_t ms, char *buf, size_t len)
{
	int64_t min = (ms + MS_PER_MIN - 1) / MS_PER_MIN;

	if (min < 1)
		min = 1;
	if (min < 60)
		snprintf(buf, len, "%lld min", (long long)min);
	else if (min < 48 * 60 && min % 60 == 0)
		snprintf(buf, len, "%lld h", (long long)(min / 60));
	else if (min < 48 * 60)
		snprintf(buf, len, "%lld h %lld min", (long long)(min / 60), (long long)(min % 60));
	else
		snprintf(buf, len, "%lld days", (long long)((min + 24 * 60 - 1) / (24 * 60)));
}

static int refuse(struct prescription_verdict *out, enum prescription_refusal why,
		  int64_t next_start_ms)
{
	out->refusal = why;
	out->next_start_ms = next_start_ms;
	return -EPERM;
}

/* Refused until next_ms: the sentence says how long, or that the window
 * closes first. */
static int refuse_until(struct prescription_verdict *out, enum prescription_refusal why,
			const char *what, const struct prescription *p,
			const struct prescription_now *now, int64_t next_ms)
{
	char wait[48];

	if (next_ms >= p->rules.valid_until_ms) {
		snprintf(out->sentence, sizeof(out->sentence),
			 "%s Your prescription ends before the next one would be allowed. "
			 "Please contact your clinic.",
			 what);
		return refuse(out, why, 0);
	}
	format_wait(next_ms - now->wall_ms, wait, sizeof(wait));
	snprintf(out->sentence, sizeof(out->sentence),
		 "%s You can start the next one in %s.", what, wait);
	return refuse(out, why, next_ms);
}

int prescription_may_start(const struct prescription *p, const int64_t *starts, size_t n_starts,
			   const struct prescription_now *now, struct prescription_verdict *out)
{
	const struct prescription_rules *r;
	int64_t latest = INT64_MIN, gap_ms, next;
	unsigned today = 0;
	char what[160], wait[48];

	if (!now || !out || (n_starts && !starts) || now->day_start_ms > now->wall_ms ||
	    now->day_end_ms <= now->wall_ms)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < n_starts; i++) {
		if (starts[i] >= now->day_start_ms && starts[i] < now->day_end_ms)
			today++;
		if (starts[i] > latest)
			latest = starts[i];
	}
	out->started_today = today;
	if (!p) {
		snprintf(out->sentence, sizeof(out->sentence),
			 "No session is prescribed on this device. Please contact your clinic.");
		return refuse(out, PRESCRIPTION_REFUSE_NONE, 0);
	}
	r = &p->rules;
	if (now->wall_ms < r->valid_from_ms) {
		format_wait(r->valid_from_ms - now->wall_ms, wait, sizeof(wait));
		snprintf(out->sentence, sizeof(out->sentence),
			 "Your prescription starts in %s. Please try again then.", wait);
		return refuse(out, PRESCRIPTION_REFUSE_NOT_YET_VALID, r->valid_from_ms);
	}
	if (now->wall_ms >= r->valid_until_ms) {
		snprintf(out->sentence, sizeof(out->sentence),
			 "Your prescription has ended. Please contact your clinic for a new one.");
		return refuse(out, PRESCRIPTION_REFUSE_EXPIRED, 0);
	}
	if (today >= r->max_per_day) {
		snprintf(what, sizeof(what), "You have already done today's %u prescribed session%s.",
			 r->max_per_day, r->max_per_day == 1 ? "" : "s");
		return refuse_until(out, PRESCRIPTION_REFUSE_DAILY_LIMIT, what, p, now,
				    now->day_end_ms);
	}
	gap_ms = (int64_t)r->min_hours_between * MS_PER_HOUR;
	if (gap_ms > 0 && n_starts > 0 && now->wall_ms - latest < gap_ms) {
		/* A start after now (the wall clock went back) counts as now. */
		next = (latest > now->wall_ms ? now->wall_ms : latest) + gap_ms;
		snprintf(what, sizeof(what),
			 "Your sessions must be at least %u hour%s apart.", r->min_hours_between,
			 r->min_hours_between == 1 ? "" : "s");
		return refuse_until(out, PRESCRIPTION_REFUSE_TOO_SOON, what, p, now, next);
	}
	if (r->supervision == PRESCRIPTION_SUPERVISION_LIVE && !now->supervisor_present) {
		snprintf(out->sentence, sizeof(out->sentence),
			 "This session needs your clinician to be connected, and nobody is right "
			 "now. Please wait for your clinician, or call your clinic.");
		return refuse(out, PRESCRIPTION_REFUSE_SUPERVISOR_ABSENT, 0);
	}
	out->refusal = PRESCRIPTION_OK;
	return 0;
}

const char *prescription_start_error_sentence(const char *code)
{
	static const struct {
		const char *code;
		const char *sentence;
	} sentences[] = {
		{ "not_connected", "The cuff is not connected. Check that it is switched on and "
				   "close to the gateway, then try again." },
		{ "cuff_busy", "A session or a measurement is already running on the cuff." },
		{ "alarm_unacked", "An alarm is waiting for your clinic. No session can start "
				   "until they have seen it." },
		{ "battery_low", "The cuff's battery is too low. Please charge the cuff." },
		{ "reperfusion", "The cuff needs a few minutes without pressure before it may "
				 "inflate again. Please try again shortly." },
		{ "session_total", "The prescribed session does not fit the cuff's safety limits. "
				   "Please contact your clinic." },
		{ "limit_exceeded", "The prescribed session does not fit the cuff's safety "
				    "limits. Please contact your clinic." },
		{ "lop_invalid", "The prescribed session does not fit the cuff's safety limits. "
				 "Please contact your clinic." },
		{ "cuff_fault", "The cuff reports a fault. Please contact your clinic." },
		{ "unknown_cuff", "The prescription names a cuff this gateway does not have. "
				  "Please contact your clinic." },
		{ "bad_state", "The cuff is not ready yet. Please wait a moment and try again." },
	};

	for (size_t i = 0; code && i < sizeof(sentences) / sizeof(sentences[0]); i++)
		if (strcmp(code, sentences[i].code) == 0)
			return sentences[i].sentence;
	return "The session could not start because of a technical problem. Please contact "
	       "your clinic.";
}

/* --- JSON ----------------------------------------------------------------------- */

int prescription_format_time(int64_t wall_ms, char out[PRESCRIPTION_TIME_BUF])
{
	time_t secs;
	struct tm tm;

	if (wall_ms < 0 || wall_ms > PRESCRIPTION_TIME_MAX_MS)
		return -EINVAL;
	secs = (time_t)(wall_ms / 1000);
	if (!gmtime_r(&secs, &tm) ||
	    strftime(out, PRESCRIPTION_TIME_BUF, "%Y-%m-%dT%H:%M:%S", &tm) != 19)
		return -EINVAL;
	snprintf(out + 19, PRESCRIPTION_TIME_BUF - 19, ".%03uZ", (unsigned)(wall_ms % 1000));
	return 0;
}

/* json_object_set_new() steals the value even on failure; NULL values fail. */
static bool put(json_t *obj, const char *key, json_t *value)
{
	return obj && json_object_set_new(obj, key, value) == 0;
}

static json_t *uint_array(const unsigned *v, unsigned n)
{
	json_t *a = json_array();

	for (unsigned i = 0; a && i < n; i++)
		if (json_array_append_new(a, json_integer(v[i])) < 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static json_t *exercise_json(const struct session_exercise *e)
{
	const unsigned tempo[2] = { e->tempo_up_s, e->tempo_down_s };
	json_t *o = json_object(), *cuffs = json_array();
	bool ok = o && cuffs;

	for (unsigned k = 0; ok && k < e->n_cuffs; k++)
		ok = json_array_append_new(cuffs, json_string(e->cuffs[k])) == 0;
	ok = ok && put(o, "name", json_string(e->name)) && put(o, "cuffs", json_incref(cuffs)) &&
	     put(o, "pct_lop", json_integer(e->pct_lop)) &&
	     put(o, "mode", json_string(session_mode_name(e->mode)));
	if (ok && e->mode == SESSION_MODE_CYCLE)
		ok = put(o, "on_s", json_integer(e->on_s)) &&
		     put(o, "off_s", json_integer(e->off_s)) &&
		     put(o, "cycles", json_integer(e->cycles));
	else if (ok)
		ok = put(o, "sets", uint_array(e->sets, e->n_sets)) &&
		     put(o, "tempo_s", uint_array(tempo, 2)) &&
		     put(o, "rest_s", json_integer(e->rest_s));
	ok = ok && put(o, "reperfusion_s", json_integer(e->reperfusion_s));
	json_decref(cuffs);
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *prescription_plan_json(const struct session_plan *plan)
{
	json_t *list = json_array(), *o = json_object();
	bool ok = list && o;

	for (unsigned i = 0; ok && i < plan->n_exercises; i++)
		ok = json_array_append_new(list, exercise_json(&plan->exercises[i])) == 0;
	ok = ok && put(o, "exercises", json_incref(list));
	json_decref(list);
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *prescription_to_json(const struct prescription *p)
{
	char from[PRESCRIPTION_TIME_BUF], until[PRESCRIPTION_TIME_BUF];
	json_t *o;
	bool ok;

	if (prescription_format_time(p->rules.valid_from_ms, from) < 0 ||
	    prescription_format_time(p->rules.valid_until_ms, until) < 0)
		return NULL;
	o = json_object();
	ok = put(o, "plan", prescription_plan_json(&p->plan));
	if (ok && p->has_patient)
		ok = put(o, "patient", json_string(p->patient));
	ok = ok && put(o, "valid_from", json_string(from)) &&
	     put(o, "valid_until", json_string(until)) &&
	     put(o, "max_per_day", json_integer(p->rules.max_per_day)) &&
	     put(o, "min_hours_between", json_integer(p->rules.min_hours_between)) &&
	     put(o, "supervision",
		 json_string(prescription_supervision_name(p->rules.supervision)));
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* --- supervisor presence ----------------------------------------------------------- */

static int bad(char *err, size_t errlen, const char *why)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", why);
	return -EINVAL;
}

/* jansson hands out valid UTF-8: count code points, refuse ASCII controls. */
static bool text_ok(const char *s, size_t max_cp)
{
	size_t n = 0;

	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if (*c < 0x20 || *c == 0x7f)
			return false;
		n += (*c & 0xc0) != 0x80;
	}
	return n >= 1 && n <= max_cp;
}

int supervisor_presence_parse(const void *payload, size_t len, struct supervisor_presence *out,
			      char *err, size_t errlen)
{
	struct supervisor_presence p = { 0 };
	json_error_t jerr;
	json_t *root = NULL, *state, *by;
	int ret;

	if (!out || (!payload && len))
		return -EINVAL;
	if (len == 0) {
		*out = p; /* the retained presence was removed: nobody is there */
		return 0;
	}
	if (len > SUPERVISOR_PAYLOAD_MAX)
		return bad(err, errlen, "payload: larger than 4096 bytes");
	root = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		if (json_error_code(&jerr) == json_error_out_of_memory || !jerr.text[0])
			return -ENOMEM;
		return bad(err, errlen, "payload: invalid JSON (or a duplicate key)");
	}
	ret = -EINVAL;
	if (!json_is_object(root)) {
		bad(err, errlen, "payload: must be a JSON object");
		goto out;
	}
	state = json_object_get(root, "state");
	by = json_object_get(root, "by");
	if (!json_is_string(state)) {
		bad(err, errlen, "state: must be \"online\" or \"offline\"");
		goto out;
	}
	if (strcmp(json_string_value(state), "online") == 0)
		p.online = true;
	else if (strcmp(json_string_value(state), "offline") != 0) {
		bad(err, errlen, "state: must be \"online\" or \"offline\"");
		goto out;
	}
	if (by && (!json_is_string(by) || !text_ok(json_string_value(by), SESSION_NAME_MAX))) {
		bad(err, errlen, "by: must be 1..64 characters without control characters");
		goto out;
	}
	if (p.online && !by) {
		bad(err, errlen, "by: required when online (who is watching)");
		goto out;
	}
	if (by)
		snprintf(p.by, sizeof(p.by), "%s", json_string_value(by));
	*out = p;
	ret = 0;
out:
	json_decref(root);
	return ret;
}
