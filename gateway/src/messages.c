/*
 * messages.c - see messages.h.
 *
 * The json_object_set_new / json_array_append_new calls are not checked one
 * by one: they fail only for lack of memory, which leaves a field out of one
 * message (a consumer sees it as invalid and drops it); nothing unsafe can
 * follow, and checking each would hide what the builder says.
 */
#include "messages.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "config.h"

/* The keys of an alarm's `values`, in the order they are published. */
static const struct {
	const char *key;
	size_t offset;
} alarm_value_keys[] = {
	{ "pressure_mmHg", offsetof(struct alarm_values, pressure_mmhg) },
	{ "target_mmHg", offsetof(struct alarm_values, target_mmhg) },
	{ "limit", offsetof(struct alarm_values, limit) },
	{ "duration_s", offsetof(struct alarm_values, duration_s) },
};

#define N_ALARM_VALUE_KEYS (sizeof(alarm_value_keys) / sizeof(alarm_value_keys[0]))

static json_t *ts_or_null(uint64_t wall_ms)
{
	char ts[32];

	if (wall_ms == 0)
		return json_null();
	payload_format_ts(wall_ms, ts);
	return json_string(ts);
}

static json_t *string_or_null(const char *s)
{
	return s && s[0] ? json_string(s) : json_null();
}

static json_t *round1_or_null(double v)
{
	return isfinite(v) ? json_real(payload_round1(v)) : json_null();
}

json_t *msg_status(struct payload_ctx *ctx, const struct msg_status *st)
{
	json_t *p = payload_new(ctx, NULL);

	if (!p)
		return NULL;
	json_object_set_new(p, "state", json_string(st->state));
	json_object_set_new(p, "version", json_string(BFR_VERSION));
	json_object_set_new(p, "cuffs", json_integer((json_int_t)st->cuffs));
	json_object_set_new(p, "outbox_depth", json_integer((json_int_t)st->outbox_depth));
	json_object_set_new(p, "gateway", json_string(st->gateway));
	json_object_set_new(p, "site", json_string(st->site));
	json_object_set_new(p, "started_at", ts_or_null(st->started_wall_ms));
	return p;
}

/* A JSON array of the n strings; NULL when out of memory. */
static json_t *string_array(const char *const *strings, size_t n)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < n; i++)
		if (json_array_append_new(arr, json_string(strings[i])) < 0) {
			json_decref(arr);
			return NULL;
		}
	return arr;
}

/* The envelope and an array under key, or NULL (nothing leaked). */
static json_t *payload_with_array(struct payload_ctx *ctx, const char *key,
				  const char *const *strings, size_t n)
{
	json_t *p = payload_new(ctx, NULL);
	json_t *arr = string_array(strings, n);

	if (!p || !arr || json_object_set_new(p, key, arr) < 0) {
		json_decref(p);
		if (!p)
			json_decref(arr);
		return NULL;
	}
	return p;
}

json_t *msg_sessions(struct payload_ctx *ctx, const char *const *ids, size_t n)
{
	return payload_with_array(ctx, "active", ids, n);
}

static const char *nonempty(const char *s)
{
	return s && s[0] ? s : NULL;
}

json_t *msg_cuff_state(struct payload_ctx *ctx, const struct msg_cuff_state *st)
{
	json_t *p = payload_with_array(ctx, "alarms_active", st->alarm_ids, st->n_alarms);

	if (!p)
		return NULL;
	json_object_set_new(p, "cuff", json_string(st->cuff));
	json_object_set_new(p, "link", json_string(st->link));
	json_object_set_new(p, "link_error", string_or_null(st->link_error));
	json_object_set_new(p, "pressure_mmHg", round1_or_null(st->pressure_mmhg));
	json_object_set_new(p, "target_mmHg", round1_or_null(st->target_mmhg));
	json_object_set_new(p, "battery_pct",
			    st->battery_pct >= 0 ? json_integer(st->battery_pct) : json_null());
	json_object_set_new(p, "lop_mmHg", round1_or_null(st->lop_mmhg));
	json_object_set_new(p, "session_id", string_or_null(st->session_id));
	json_object_set_new(p, "cuff_state", string_or_null(st->cuff_state));
	json_object_set_new(p, "limb", json_string(st->limb));
	json_object_set_new(p, "status_bits",
			    st->status_bits >= 0 ? json_integer(st->status_bits) : json_null());
	json_object_set_new(p, "label", string_or_null(st->label));
	json_object_set_new(p, "serial", string_or_null(nonempty(st->serial)));
	json_object_set_new(p, "model", string_or_null(nonempty(st->model)));
	json_object_set_new(p, "firmware", string_or_null(nonempty(st->firmware)));
	json_object_set_new(p, "lop_measured_at", ts_or_null(st->lop_measured_wall_ms));
	json_object_set_new(p, "data_age_ms",
			    st->data_age_ms >= 0 ? json_integer(st->data_age_ms) : json_null());
	json_object_set_new(p, "measuring_lop", json_boolean(st->measuring_lop));
	json_object_set_new(p, "lop_search_mmHg", round1_or_null(st->lop_search_mmhg));
	return p;
}

static json_t *float_or_null(float v)
{
	return isfinite(v) ? json_real(payload_round1(v)) : json_null();
}

json_t *msg_telemetry(struct payload_ctx *ctx, const char *cuff,
		      const struct msg_telemetry_sample *samples, size_t n)
{
	json_t *p = payload_new(ctx, NULL);
	json_t *arr = json_array();

	if (!p || !arr) {
		json_decref(p);
		json_decref(arr);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		const struct msg_telemetry_sample *s = &samples[i];

		json_array_append_new(arr, json_pack("[I,o,o,o]", (json_int_t)s->t_ms,
						     float_or_null(s->pressure),
						     float_or_null(s->target),
						     float_or_null(s->pulse)));
	}
	json_object_set_new(p, "cuff", json_string(cuff));
	json_object_set_new(p, "samples", arr);
	return p;
}

json_t *msg_alarm_values(const struct alarm_values *values)
{
	json_t *o = json_object();

	for (size_t i = 0; o && i < N_ALARM_VALUE_KEYS; i++) {
		double v = *(const double *)((const char *)values + alarm_value_keys[i].offset);

		if (isfinite(v))
			json_object_set_new(o, alarm_value_keys[i].key, json_real(payload_round1(v)));
	}
	return o;
}

json_t *msg_alarm_units(enum alarm_code code, const json_t *values)
{
	json_t *o = json_object();
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)values, key, v) {
		const char *unit = strcmp(key, "pressure_mmHg") == 0 || strcmp(key, "target_mmHg") == 0
					   ? "mmHg"
				   : strcmp(key, "duration_s") == 0 ? "s"
								    : alarm_code_limit_unit(code);

		if (o && unit)
			json_object_set_new(o, key, json_string(unit));
	}
	return o ? o : json_object();
}

struct alarm_values msg_alarm_values_parse(const char *values_json)
{
	struct alarm_values v = { NAN, NAN, NAN, NAN };
	json_t *o = values_json ? json_loads(values_json, 0, NULL) : NULL;

	for (size_t i = 0; json_is_object(o) && i < N_ALARM_VALUE_KEYS; i++) {
		json_t *x = json_object_get(o, alarm_value_keys[i].key);

		if (json_is_number(x))
			*(double *)((char *)&v + alarm_value_keys[i].offset) = json_number_value(x);
	}
	json_decref(o);
	return v;
}

json_t *msg_alarm(struct payload_ctx *ctx, const struct alarm_record *rec)
{
	json_t *p = payload_new(ctx, NULL);
	json_t *values = msg_alarm_values(&rec->values);

	if (!p || !values) {
		json_decref(p);
		json_decref(values);
		return NULL;
	}
	json_object_set_new(p, "alarm_id", json_string(rec->alarm_id));
	json_object_set_new(p, "cuff", string_or_null(rec->cuff));
	json_object_set_new(p, "session_id", string_or_null(rec->session_id));
	json_object_set_new(p, "code", json_string(alarm_code_name(rec->code)));
	json_object_set_new(p, "priority", json_string(alarm_priority_name(rec->priority)));
	json_object_set_new(p, "kind", json_string(alarm_kind_name(rec->kind)));
	json_object_set_new(p, "state", json_string(alarm_state_name(rec->state)));
	json_object_set_new(p, "condition_present", json_boolean(rec->condition_present));
	json_object_set_new(p, "raised_at", ts_or_null(rec->raised_at_ms));
	json_object_set_new(p, "acked_at", ts_or_null(rec->acked_at_ms));
	json_object_set_new(p, "acked_by", string_or_null(rec->acked_by));
	json_object_set_new(p, "cleared_at", ts_or_null(rec->cleared_at_ms));
	json_object_set_new(p, "message", json_string(rec->message));
	json_object_set_new(p, "values", values);
	json_object_set_new(p, "units", msg_alarm_units(rec->code, values));
	return p;
}

json_t *msg_session_event(struct payload_ctx *ctx, const char *session_id,
			  const struct session_event *e)
{
	json_t *p = payload_new(ctx, NULL);

	if (!p)
		return NULL;
	json_object_set_new(p, "session_id", json_string(session_id));
	json_object_set_new(p, "seq", json_integer(e->seq));
	json_object_set_new(p, "type", json_string(session_event_type_name(e->type)));
	if (e->type == SESSION_EV_PHASE)
		json_object_set_new(p, "phase", json_string(session_phase_name(e->phase)));
	if (e->exercise >= 0) {
		json_object_set_new(p, "exercise_index", json_integer(e->exercise));
		if (e->exercise_name)
			json_object_set_new(p, "exercise", json_string(e->exercise_name));
	}
	if (e->set > 0)
		json_object_set_new(p, "set", json_integer(e->set));
	if (e->rep > 0)
		json_object_set_new(p, "rep", json_integer(e->rep));
	if (e->type == SESSION_EV_LOP_MEASURED) {
		json_object_set_new(p, "cuff", json_string(e->cuff));
		payload_set_number_or_null(p, "lop_mmHg", payload_round1(e->lop_mmHg));
	}
	if (e->type == SESSION_EV_ALARM)
		json_object_set_new(p, "alarm_id", json_string(e->alarm_id));
	else if (e->reason[0])
		json_object_set_new(p, "reason", json_string(e->reason));
	return p;
}

json_t *msg_session_state(struct payload_ctx *ctx, const struct msg_session_state *ss)
{
	const struct session_state *st = ss->st;
	json_t *p = payload_with_array(ctx, "cuffs", ss->cuffs, ss->n_cuffs);
	json_t *targets = json_object();
	char ts[32];

	if (!p || !targets) {
		json_decref(p);
		json_decref(targets);
		return NULL;
	}
	for (unsigned i = 0; i < st->n_targets; i++)
		payload_set_number_or_null(targets, st->target_cuffs[i],
					   payload_round1(st->targets[i]));
	json_object_set_new(p, "session_id", json_string(ss->session_id));
	json_object_set_new(p, "patient", string_or_null(ss->patient));
	json_object_set_new(p, "phase", json_string(session_phase_name(st->phase)));
	json_object_set_new(p, "exercise_index",
			    st->exercise >= 0 ? json_integer(st->exercise) : json_null());
	json_object_set_new(p, "exercise", string_or_null(st->exercise_name));
	json_object_set_new(p, "n_exercises", json_integer(st->n_exercises));
	json_object_set_new(p, "set", st->set ? json_integer(st->set) : json_null());
	json_object_set_new(p, "n_sets", st->n_sets ? json_integer(st->n_sets) : json_null());
	json_object_set_new(p, "rep", st->set ? json_integer(st->rep) : json_null());
	json_object_set_new(p, "n_reps", st->n_reps ? json_integer(st->n_reps) : json_null());
	json_object_set_new(p, "pct_lop", st->pct_lop ? json_integer(st->pct_lop) : json_null());
	json_object_set_new(p, "targets", targets);
	json_object_set_new(p, "seconds_left",
			    st->seconds_left >= 0 ? json_integer(st->seconds_left) : json_null());
	json_object_set_new(p, "phase_left_s",
			    st->seconds_left >= 0 ? json_integer(st->seconds_left) : json_null());
	json_object_set_new(p, "session_left_s",
			    st->session_left_s >= 0 ? json_integer(st->session_left_s)
						    : json_null());
	if (ss->resume_wall_ms) {
		payload_format_ts(ss->resume_wall_ms, ts);
		json_object_set_new(p, "resume_at", json_string(ts));
	} else {
		json_object_set_new(p, "resume_at", json_null());
	}
	json_object_set_new(p, "inflation_s_total", json_real(payload_round1(st->inflation_s)));
	return p;
}

json_t *msg_set_figures(const struct set_figures *f, unsigned set, const char *cuff)
{
	json_t *o = json_pack("{s:i, s:s}", "set", (int)set, "cuff", cuff);

	if (!o)
		return NULL;
	payload_set_number_or_null(o, "mean_mmHg", f ? payload_round1(f->mean_mmHg) : NAN);
	payload_set_number_or_null(o, "min_mmHg", f ? payload_round1(f->min_mmHg) : NAN);
	payload_set_number_or_null(o, "max_mmHg", f ? payload_round1(f->max_mmHg) : NAN);
	payload_set_number_or_null(o, "pct_within_10", f ? payload_round1(f->pct_within_10) : NAN);
	payload_set_number_or_null(o, "pct_within_5", f ? payload_round1(f->pct_within_5) : NAN);
	payload_set_number_or_null(o, "peak_pct_lop", f ? payload_round1(f->peak_pct_lop) : NAN);
	json_object_set_new(o, "time_under_pressure_s",
			    json_real(f ? payload_round1(f->time_under_pressure_s) : 0.0));
	return o;
}

json_t *msg_session_summary(struct payload_ctx *ctx, const struct msg_summary *sum,
			    json_t *exercises)
{
	json_t *p = exercises ? payload_new(ctx, NULL) : NULL;
	char started[32], ended[32];

	if (!p) {
		json_decref(exercises);
		return NULL;
	}
	payload_format_ts(sum->started_wall_ms, started);
	payload_format_ts(sum->ended_wall_ms, ended);
	json_object_set_new(p, "session_id", json_string(sum->session_id));
	json_object_set_new(p, "outcome", json_string(sum->outcome));
	json_object_set_new(p, "reason", string_or_null(sum->reason));
	json_object_set_new(p, "started_at", json_string(started));
	json_object_set_new(p, "ended_at", json_string(ended));
	json_object_set_new(p, "exercises", exercises);
	json_object_set_new(p, "alarms", sum->alarm_ids ? json_copy(sum->alarm_ids) : json_array());
	json_object_set_new(p, "inflation_s_total", json_real(payload_round1(sum->inflation_s)));
	json_object_set_new(p, "patient", string_or_null(sum->patient));
	json_object_set_new(p, "by", string_or_null(sum->by && sum->by[0] ? sum->by : NULL));
	json_object_set_new(p, "note", string_or_null(sum->note && sum->note[0] ? sum->note : NULL));
	return p;
}

json_t *msg_plan(const struct session_plan *plan)
{
	json_t *ex = json_array();

	for (unsigned i = 0; i < plan->n_exercises && ex; i++) {
		const struct session_exercise *e = &plan->exercises[i];
		json_t *cuffs = json_array(), *sets = json_array();
		json_t *o;

		for (unsigned k = 0; k < e->n_cuffs; k++)
			json_array_append_new(cuffs, json_string(e->cuffs[k]));
		for (unsigned s = 0; s < e->n_sets; s++)
			json_array_append_new(sets, json_integer(e->sets[s]));
		o = json_pack("{s:s, s:o, s:i, s:s, s:o, s:[i,i], s:i, s:i}", "name", e->name,
			      "cuffs", cuffs, "pct_lop", (int)e->pct_lop, "mode",
			      session_mode_name(e->mode), "sets", sets, "tempo_s",
			      (int)e->tempo_up_s, (int)e->tempo_down_s, "rest_s", (int)e->rest_s,
			      "reperfusion_s", (int)e->reperfusion_s);
		if (o && e->mode == SESSION_MODE_CYCLE) {
			json_object_set_new(o, "on_s", json_integer(e->on_s));
			json_object_set_new(o, "off_s", json_integer(e->off_s));
			json_object_set_new(o, "cycles", json_integer(e->cycles));
		}
		json_array_append_new(ex, o);
	}
	return json_pack("{s:o}", "exercises", ex);
}
