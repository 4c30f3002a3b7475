/* recovery.c - see recovery.h. JSON field setters unchecked as in messages.c. */
#include "recovery.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "command.h"
#include "log.h"
#include "messages.h"

struct recovery {
	struct recovery_deps deps;
	/* Ids closed at start from the database: their retained echo is ours. */
	json_t *closed_at_start;
	/* Payloads on our alarm topics that are none of our records. */
	uint64_t foreign_alarms;
	uint64_t reclosed; /* closed alarms whose retained record was removed again */
	struct log_rate foreign_log;
};

uint64_t recovery_first_alarm_seq(struct store *store, const char *gateway_id, uint64_t wall_ms)
{
	uint64_t max_seq = 0;

	if (store && store_alarm_max_seq(store, gateway_id, &max_seq) == 0 && max_seq > 0)
		return max_seq + 1;
	return wall_ms;
}

int recovery_new(const struct recovery_deps *deps, struct recovery **out)
{
	struct recovery *rec = calloc(1, sizeof(*rec));

	if (!rec)
		return -ENOMEM;
	rec->deps = *deps;
	rec->foreign_log = (struct log_rate){ .window_ms = 60000, .burst = 5 };
	rec->closed_at_start = json_object();
	if (!rec->closed_at_start) {
		free(rec);
		return -ENOMEM;
	}
	*out = rec;
	return 0;
}

void recovery_free(struct recovery *rec)
{
	if (!rec)
		return;
	json_decref(rec->closed_at_start);
	free(rec);
}

static uint64_t wall_ms(const struct recovery *rec)
{
	return payload_wall_ms(rec->deps.ctx);
}

/* --- sessions ---------------------------------------------------------------- */

/* The plan's exercises with the figures recorded for each finished set. */
static json_t *recorded_exercises(json_t *plan_exercises, json_t *figures)
{
	json_t *exercises = json_array();

	for (size_t i = 0; exercises && i < json_array_size(plan_exercises); i++) {
		json_t *sets = json_array();
		json_t *row;
		size_t k;

		json_array_foreach(figures, k, row)
			if (json_integer_value(json_object_get(row, "exercise")) == (json_int_t)i &&
			    json_is_object(json_object_get(row, "figures")))
				json_array_append(sets, json_object_get(row, "figures"));
		json_array_append_new(exercises,
				      json_pack("{s:O, s:o}", "name",
						json_object_get(json_array_get(plan_exercises, i),
								"name"),
						"sets", sets));
	}
	return exercises;
}

static void publish_aborted_event(struct recovery *rec, const char *id, uint32_t seq)
{
	struct session_event e = {
		.seq = seq,
		.type = SESSION_EV_ABORTED,
		.phase = SESSION_PHASE_ABORTED,
		.exercise = -1,
		.reason = "gateway_restart",
	};
	char topic[TOPIC_MAX];
	json_t *ev = msg_session_event(rec->deps.ctx, id, &e);
	char *text = ev ? json_dumps(ev, MSG_JSON_FLAGS) : NULL;

	if (!text) {
		log_error("session %s: out of memory, aborted event not published", id);
		goto out;
	}
	if (store_session_event(rec->deps.store, id, seq, "aborted", text, (int64_t)wall_ms(rec),
				0) < 0)
		log_error("session %s: aborted event not recorded", id);
	if (payload_topic(rec->deps.ctx, topic, sizeof(topic), "session/%s/event", id) == 0)
		(void)publisher_qos1(rec->deps.pub, topic, ev, 0);
out:
	free(text);
	json_decref(ev);
}

/* The last retained state said the session was running. */
static void publish_final_state(struct recovery *rec, const char *id, json_t *state)
{
	char topic[TOPIC_MAX];
	json_t *fin = json_deep_copy(state);
	json_t *env = payload_new(rec->deps.ctx, NULL);

	if (fin && env) {
		json_object_update(fin, env);
		json_object_set_new(fin, "phase", json_string("aborted"));
		json_object_set_new(fin, "seconds_left", json_null());
		if (payload_topic(rec->deps.ctx, topic, sizeof(topic), "session/%s/state", id) == 0)
			(void)publisher_qos1(rec->deps.pub, topic, fin, OUTBOX_RETAIN);
	}
	json_decref(fin);
	json_decref(env);
}

/* "2026-11-24T09:30:00.123Z" (the form of every ts we write) -> wall ms; 0 if not that. */
static uint64_t ts_ms(const char *ts)
{
	struct tm tm = { 0 };
	unsigned ms;
	char z;
	time_t secs;

	if (!ts || strlen(ts) != 24 ||
	    sscanf(ts, "%4d-%2d-%2dT%2d:%2d:%2d.%3u%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
		   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms, &z) != 8 || z != 'Z')
		return 0;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	secs = timegm(&tm);
	return secs > 0 ? (uint64_t)secs * 1000u + ms : 0;
}

/*
 * When the session was last known to be running: the latest of its start,
 * its last recorded event and its last recorded state snapshot (written
 * every second while it runs). A crash leaves no end time; this is the
 * closest one the records hold (never the restart, which may be hours on).
 */
static uint64_t last_record_ms(json_t *recorded)
{
	json_t *sess = json_array_get(json_object_get(recorded, "session"), 0);
	json_t *ev = json_array_get(json_object_get(recorded, "events"), 0);
	json_int_t started = json_integer_value(json_object_get(sess, "started_ms"));
	json_int_t last_event = json_integer_value(json_object_get(ev, "last_ts_ms"));
	uint64_t state = ts_ms(json_string_value(
		json_object_get(json_object_get(sess, "state"), "ts")));
	uint64_t last = started > 0 ? (uint64_t)started : 0;

	if (last_event > 0 && (uint64_t)last_event > last)
		last = (uint64_t)last_event;
	return state > last ? state : last;
}

/*
 * A session a crash interrupted is closed as aborted with what was
 * recorded: its last event is followed by an `aborted` event (the next
 * seq), and the summary carries its real start, its end as the time of
 * its last record and every finished set's figures from the database.
 */
static void close_interrupted_session(struct recovery *rec, const char *id)
{
	json_t *recorded = NULL, *sess, *state, *infl;
	json_int_t last_seq, started_ms;
	uint64_t ended_ms = 0;
	char topic[TOPIC_MAX];
	struct msg_summary sum = {
		.session_id = id,
		.outcome = "aborted",
		.reason = "gateway_restart",
	};
	json_t *p;

	log_warn("session %s was interrupted by a gateway stop: closing it as aborted", id);
	if (store_session_load(rec->deps.store, id, &recorded) < 0) {
		log_error("session %s: its records cannot be read; closed without a summary", id);
		goto end;
	}
	sess = json_array_get(json_object_get(recorded, "session"), 0);
	last_seq = json_integer_value(json_object_get(
		json_array_get(json_object_get(recorded, "events"), 0), "last_seq"));
	started_ms = json_integer_value(json_object_get(sess, "started_ms"));
	state = json_object_get(sess, "state");
	infl = json_object_get(state, "inflation_s_total");
	publish_aborted_event(rec, id, (uint32_t)(last_seq + 1));
	sum.started_wall_ms = started_ms > 0 ? (uint64_t)started_ms : wall_ms(rec);
	ended_ms = last_record_ms(recorded);
	sum.ended_wall_ms = ended_ms ? ended_ms : wall_ms(rec);
	sum.inflation_s = json_is_number(infl) ? json_number_value(infl) : 0.0;
	p = msg_session_summary(rec->deps.ctx, &sum,
				recorded_exercises(json_object_get(json_object_get(sess, "plan"),
								   "exercises"),
						   json_object_get(recorded, "figures")));
	if (p && payload_topic(rec->deps.ctx, topic, sizeof(topic), "session/%s/summary", id) == 0)
		(void)publisher_qos1(rec->deps.pub, topic, p, OUTBOX_RETAIN);
	if (p && json_is_object(state))
		publish_final_state(rec, id, state);
	json_decref(p);
end:
	if (store_session_end(rec->deps.store, id, "aborted",
			      (int64_t)(ended_ms ? ended_ms : wall_ms(rec)), 0) < 0)
		log_error("session %s: end not recorded", id);
	json_decref(recorded);
}

void recovery_close_interrupted_sessions(struct recovery *rec)
{
	char **ids = NULL;
	size_t n = 0;

	if (!rec->deps.store || store_list_open_sessions(rec->deps.store, &ids, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++)
		close_interrupted_session(rec, ids[i]);
	store_strv_free(ids);
}

/* --- alarms ------------------------------------------------------------------ */

static int restore_alarm(const struct store_alarm *a, void *user_data)
{
	struct recovery *rec = user_data;
	struct alarm_table *table = alarms_table(rec->deps.alarms);
	struct alarm_record r = { 0 };
	const char *dash = strrchr(a->alarm_id, '-');
	enum alarm_code code;
	bool known_cuff = !a->cuff || cuff_find(rec->deps.cuffs, rec->deps.n_cuffs, a->cuff);

	if (alarm_code_from_name(a->code, &code) < 0 || !dash)
		return 0;
	snprintf(r.alarm_id, sizeof(r.alarm_id), "%s", a->alarm_id);
	snprintf(r.cuff, sizeof(r.cuff), "%s", a->cuff ? a->cuff : "");
	snprintf(r.session_id, sizeof(r.session_id), "%s", a->session_id ? a->session_id : "");
	snprintf(r.acked_by, sizeof(r.acked_by), "%s", a->acked_by ? a->acked_by : "");
	snprintf(r.message, sizeof(r.message), "%s",
		 a->message && a->message[0] ? a->message : alarm_code_default_message(code));
	r.code = code;
	r.priority = alarm_code_priority(code);
	r.kind = alarm_code_kind(code);
	r.seq = strtoull(dash + 1, NULL, 10);
	r.raised_at_ms = (uint64_t)a->raised_ms;
	r.acked_at_ms = (uint64_t)a->acked_ms;
	r.state = a->acked_ms ? ALARM_STATE_ACKNOWLEDGED : ALARM_STATE_ACTIVE;
	r.values = msg_alarm_values_parse(a->values_json);
	r.condition_present = false;
	if (known_cuff && alarm_code_latching(code) && r.state == ALARM_STATE_ACTIVE &&
	    alarm_restore(table, &r) == 0) {
		log_warn("alarm %s (%s on %s) is still unacknowledged from before the restart",
			 r.alarm_id, a->code, a->cuff ? a->cuff : "gateway");
		return 0;
	}
	r.state = ALARM_STATE_CLEARED;
	r.cleared_at_ms = wall_ms(rec);
	snprintf(r.message, sizeof(r.message), "closed: the gateway restarted");
	json_object_set_new(rec->closed_at_start, r.alarm_id, json_true());
	/* Published once the read is over: the database is locked meanwhile. */
	return alarms_queue(rec->deps.alarms, &r);
}

void recovery_restore_alarms(struct recovery *rec)
{
	if (!rec->deps.store)
		return;
	if (store_load_open_alarms(rec->deps.store, restore_alarm, rec) < 0)
		log_error("alarms of the earlier run could not be read");
	alarms_flush(rec->deps.alarms); /* the ones closed at start */
}

void recovery_restore_lops(struct recovery *rec)
{
	uint64_t wall = wall_ms(rec);

	for (size_t i = 0; rec->deps.store && i < rec->deps.n_cuffs; i++) {
		struct cuff *c = rec->deps.cuffs[i];
		double lop;
		int64_t at;
		uint64_t age_ms;

		if (store_lop_latest(rec->deps.store, cuff_id(c), &lop, &at) < 0 || at <= 0 ||
		    (uint64_t)at > wall)
			continue;
		age_ms = wall - (uint64_t)at;
		/* A stale one would only raise lop_invalid: it is not a measurement. */
		if (age_ms / 1000 > cuff_limits(c)->lop_max_age_s)
			continue;
		cuff_restore_lop(c, lop, age_ms);
		cuff_log(c, LOG_LEVEL_INFO, "LOP %.1f mmHg from %llu s ago restored", lop,
			 (unsigned long long)(age_ms / 1000));
	}
}

/* Our own message of this run: its msg_id is "<gateway>-<boot>-<n>". It only
 * decides whether a line is logged: nothing is ever done for a message. */
static bool msg_id_of_this_run(const struct recovery *rec, const uint8_t *payload, size_t len)
{
	const struct payload_ctx *ctx = rec->deps.ctx;
	json_t *r = json_loadb((const char *)payload, len, 0, NULL);
	const char *id = json_string_value(json_object_get(r, "msg_id"));
	size_t glen = strlen(ctx->gateway_id), blen = strlen(ctx->boot);
	bool ours = id && strncmp(id, ctx->gateway_id, glen) == 0 && id[glen] == '-' &&
		    strncmp(id + glen + 1, ctx->boot, blen) == 0 && id[glen + 1 + blen] == '-';

	json_decref(r);
	return ours;
}

void recovery_retained_alarm(struct recovery *rec, const char *alarm_id, const uint8_t *payload,
			     size_t len, bool retained)
{
	bool known = command_id_valid(alarm_id) &&
		     (alarms_raised_by_this_run(rec->deps.alarms, alarm_id) ||
		      json_object_get(rec->closed_at_start, alarm_id));
	uint64_t left_out;

	if (len == 0)
		return;
	if (known && retained && !alarm_find_id(alarms_table(rec->deps.alarms), alarm_id)) {
		char topic[TOPIC_MAX];

		/* Closed here, still retained there: remove it again (see recovery.h). */
		if (payload_topic(rec->deps.ctx, topic, sizeof(topic), "alarm/%s", alarm_id) == 0 &&
		    publisher_qos1_raw(rec->deps.pub, topic, "", 0, OUTBOX_RETAIN, NULL) == 0) {
			rec->reclosed++;
			log_info("alarm %s: closed here but still retained by the broker (a broker "
				 "restart lost its removal): removed again",
				 alarm_id);
		}
		return;
	}
	if (known || (command_id_valid(alarm_id) &&
		      alarm_find_id(alarms_table(rec->deps.alarms), alarm_id)) ||
	    msg_id_of_this_run(rec, payload, len))
		return;
	rec->foreign_alarms++;
	if (log_rate_allow(&rec->foreign_log, wall_ms(rec), &left_out))
		log_warn("alarm/%s on the broker is not a record of this gateway: ignored, nothing "
			 "published (%" PRIu64 " so far)",
			 command_id_valid(alarm_id) ? alarm_id : "<invalid id>", rec->foreign_alarms);
	if (left_out)
		log_warn("... and %" PRIu64 " more foreign alarm records in the last minute", left_out);
}
