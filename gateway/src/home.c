/* home.c - see home.h. */
#include "home.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"
#include "log.h"
#include "messages.h"
#include "prescription.h"

#define home_log(level, ...) log_obj(level, "home", "gateway", __VA_ARGS__)
/* Button presses waiting for the post hook; more in one batch are dropped. */
#define HOME_PRESSES_MAX 8
/* While a live session's clinician stays away, how often it is checked. */
#define HOME_ENFORCE_MS 1000

struct press {
	struct cuff *cuff;
	bool long_press;
};

/* What a local start or stop came to: for the console, the log, home/event. */
struct outcome {
	bool ok;
	char code[32];
	char message[PRESCRIPTION_SENTENCE_MAX];
	char session_id[SESSION_ID_BUF];
};

struct home {
	struct home_deps deps;
	bool enabled;
	bool stopping;

	bool have_rx;
	struct prescription rx;
	int64_t rx_set_ms;
	char rx_request_id[SESSION_ID_BUF];

	/* local starts, oldest first (the newest HOME_STARTS_MAX) */
	int64_t starts[HOME_STARTS_MAX];
	size_t n_starts;
	uint64_t start_counter;

	/* the session started here, and the supervision it started under */
	char session_id[SESSION_ID_BUF];
	enum prescription_supervision session_supervision;

	/* live supervision: present = connected && bridge up && presence online */
	struct supervisor_presence presence;
	bool mqtt_connected;
	bool bridge_down;
	bool lost_announced; /* supervisor_lost published, grace timer running */
	uint64_t grace_timer;

	struct press presses[HOME_PRESSES_MAX];
	size_t n_presses;
	uint64_t post;

	struct ctl *ctl;
};

static int64_t wall_ms(const struct home *h)
{
	return (int64_t)payload_wall_ms(h->deps.ctx);
}

/* --- what it publishes --------------------------------------------------------------- */

/*
 * home/event: QoS 1 through the outbox, so what happened while the link was
 * down reaches the clinic once it is back, in order. Optional fields NULL.
 */
static void publish_event(struct home *h, const char *type, const char *source,
			  const struct cuff *c, const char *session_id, const char *code,
			  const char *message)
{
	char topic[TOPIC_MAX];
	json_t *p = payload_new(h->deps.ctx, NULL);
	bool ok = p && json_object_set_new(p, "type", json_string(type)) == 0 &&
		  json_object_set_new(p, "message", json_string(message)) == 0;

	if (ok && source)
		ok = json_object_set_new(p, "source", json_string(source)) == 0;
	if (ok && c)
		ok = json_object_set_new(p, "cuff", json_string(cuff_id(c))) == 0;
	if (ok && session_id && session_id[0])
		ok = json_object_set_new(p, "session_id", json_string(session_id)) == 0;
	if (ok && code)
		ok = json_object_set_new(p, "code", json_string(code)) == 0;
	if (ok && payload_topic(h->deps.ctx, topic, sizeof(topic), "home/event") == 0)
		(void)publisher_qos1(h->deps.pub, topic, p, 0);
	else
		home_log(LOG_LEVEL_ERROR, "event %s: out of memory, not published", type);
	json_decref(p);
}

/* The prescription's body with set_at and request_id. NULL: out of memory. */
static json_t *prescription_json(const struct home *h)
{
	char set_at[PRESCRIPTION_TIME_BUF];
	json_t *body = prescription_to_json(&h->rx);

	if (!body || prescription_format_time(h->rx_set_ms, set_at) < 0 ||
	    json_object_set_new(body, "set_at", json_string(set_at)) < 0 ||
	    json_object_set_new(body, "request_id", h->rx_request_id[0]
								? json_string(h->rx_request_id)
								: json_null()) < 0) {
		json_decref(body);
		return NULL;
	}
	return body;
}

/* Retained `prescription`: the one in force, or an empty payload (cleared). */
static void publish_prescription(struct home *h, unsigned flags)
{
	char topic[TOPIC_MAX];
	json_t *p, *body;

	if (payload_topic(h->deps.ctx, topic, sizeof(topic), "prescription") < 0)
		return;
	if (!h->have_rx) {
		(void)publisher_qos1_raw(h->deps.pub, topic, NULL, 0, OUTBOX_RETAIN, NULL);
		return;
	}
	p = payload_new(h->deps.ctx, NULL);
	body = prescription_json(h);
	if (!p || !body || json_object_update(p, body) < 0)
		home_log(LOG_LEVEL_ERROR, "prescription: out of memory, not published");
	else
		(void)publisher_qos1(h->deps.pub, topic, p, flags | OUTBOX_RETAIN);
	json_decref(body);
	json_decref(p);
}

/* --- the rules' inputs ----------------------------------------------------------------- */

/*
 * The local calendar day (the gateway's time zone: TZ, else /etc/localtime)
 * that contains wall: [*start, *end). mktime() finds midnight across DST
 * changes (a 23 or 25 hour day); if the zone data says something odd the
 * UTC day is used.
 */
static void local_day(int64_t wall, int64_t *start, int64_t *end)
{
	time_t t = (time_t)(wall / 1000), s, e;
	struct tm tm;

	if (localtime_r(&t, &tm)) {
		tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
		tm.tm_isdst = -1;
		s = mktime(&tm);
		tm.tm_mday += 1;
		tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
		tm.tm_isdst = -1;
		e = mktime(&tm);
		if (s != (time_t)-1 && e != (time_t)-1 && (int64_t)s * 1000 <= wall &&
		    (int64_t)e * 1000 > wall) {
			*start = (int64_t)s * 1000;
			*end = (int64_t)e * 1000;
			return;
		}
	}
	*start = wall - ((wall % 86400000) + 86400000) % 86400000;
	*end = *start + 86400000;
}

static bool supervisor_present(const struct home *h)
{
	return h->mqtt_connected && !h->bridge_down && h->presence.online;
}

static int verdict(struct home *h, struct prescription_verdict *v)
{
	struct prescription_now now = { .wall_ms = wall_ms(h),
					.supervisor_present = supervisor_present(h) };

	memset(v, 0, sizeof(*v));
	v->refusal = PRESCRIPTION_REFUSE_NONE;
	snprintf(v->sentence, sizeof(v->sentence), "%s",
		 prescription_start_error_sentence("internal"));
	local_day(now.wall_ms, &now.day_start_ms, &now.day_end_ms);
	return prescription_may_start(h->have_rx ? &h->rx : NULL, h->starts, h->n_starts, &now, v);
}

/* The session this module started, while it runs. */
static struct run *home_run(struct home *h)
{
	return h->session_id[0] ? runner_find(h->deps.runner, h->session_id) : NULL;
}

static struct run *live_run(struct home *h)
{
	struct run *run = home_run(h);

	return run && h->session_supervision == PRESCRIPTION_SUPERVISION_LIVE ? run : NULL;
}

static bool plan_has_cuff(const struct session_plan *plan, const char *id)
{
	for (unsigned e = 0; e < plan->n_exercises; e++)
		for (unsigned k = 0; k < plan->exercises[e].n_cuffs; k++)
			if (strcmp(plan->exercises[e].cuffs[k], id) == 0)
				return true;
	return false;
}

static void remember_start(struct home *h, int64_t at)
{
	if (h->n_starts == HOME_STARTS_MAX) {
		memmove(h->starts, h->starts + 1, (HOME_STARTS_MAX - 1) * sizeof(h->starts[0]));
		h->n_starts--;
	}
	h->starts[h->n_starts++] = at;
}

/* --- local start and stop ----------------------------------------------------------------- */

static void refused(struct outcome *out, const char *code, const char *message)
{
	out->ok = false;
	snprintf(out->code, sizeof(out->code), "%s", code);
	snprintf(out->message, sizeof(out->message), "%s", message);
}

/* Runs the prescribed plan, if everything allows it; out says how it went. */
static void try_start(struct home *h, const char *source, struct cuff *c, struct outcome *out)
{
	struct prescription_verdict v;
	struct command_error err = { 0 };
	struct command *cmd = NULL;
	char sid[SESSION_ID_BUF] = "";

	if (h->stopping) {
		refused(out, "shutting_down", "The gateway is shutting down. Please try again in "
					      "a few minutes.");
		return;
	}
	if (home_run(h)) {
		refused(out, "session_running", "A session is already running.");
		return;
	}
	if (verdict(h, &v) < 0) {
		refused(out, prescription_refusal_name(v.refusal), v.sentence);
		return;
	}
	if (c && !plan_has_cuff(&h->rx.plan, cuff_id(c))) {
		refused(out, "not_in_plan", "This cuff is not part of your prescribed session.");
		return;
	}
	cmd = calloc(1, sizeof(*cmd));
	if (!cmd) {
		refused(out, "internal", prescription_start_error_sentence("internal"));
		return;
	}
	cmd->verb = CMD_SESSION_START;
	snprintf(cmd->request_id, sizeof(cmd->request_id), "home-%s-%llu", h->deps.ctx->boot,
		 (unsigned long long)++h->start_counter);
	cmd->plan = h->rx.plan;
	cmd->has_patient = h->rx.has_patient;
	memcpy(cmd->patient, h->rx.patient, sizeof(cmd->patient));
	if (runner_start(h->deps.runner, cmd, &err, sid) < 0) {
		home_log(LOG_LEVEL_WARN, "the prescribed plan was refused: %s: %s",
			 command_error_name(err.code), err.message);
		refused(out, command_error_name(err.code),
			prescription_start_error_sentence(command_error_name(err.code)));
		free(cmd);
		return;
	}
	free(cmd);
	out->ok = true;
	snprintf(out->code, sizeof(out->code), "ok");
	snprintf(out->message, sizeof(out->message), "Your session has started.");
	snprintf(out->session_id, sizeof(out->session_id), "%s", sid);
	snprintf(h->session_id, sizeof(h->session_id), "%s", sid);
	h->session_supervision = h->rx.rules.supervision;
	remember_start(h, wall_ms(h));
	if (h->deps.store && store_home_start(h->deps.store, sid, source, wall_ms(h), 0) < 0)
		home_log(LOG_LEVEL_ERROR, "start of %s not recorded: it will not count after a "
					  "restart",
			 sid);
}

static void local_start(struct home *h, const char *source, struct cuff *c, struct outcome *out)
{
	memset(out, 0, sizeof(*out));
	try_start(h, source, c, out);
	if (out->ok) {
		home_log(LOG_LEVEL_INFO, "session %s started from the %s%s%s (supervision %s)",
			 out->session_id, source, c ? " of cuff " : "", c ? cuff_id(c) : "",
			 prescription_supervision_name(h->session_supervision));
		publish_event(h, "started", source, c, out->session_id, NULL, out->message);
		return;
	}
	home_log(LOG_LEVEL_WARN, "start from the %s%s%s refused: %s: %s", source,
		 c ? " of cuff " : "", c ? cuff_id(c) : "", out->code, out->message);
	publish_event(h, "start_refused", source, c, NULL, out->code, out->message);
}

/* Stops a running session (the cuffs deflate); false when it had ended. */
static bool stop_run(struct home *h, struct run *run, const char *source, struct cuff *c,
		     char *id_out)
{
	char id[SESSION_ID_BUF];

	snprintf(id, sizeof(id), "%s", run_id(run));
	if (run_stop(run) < 0)
		return false;
	home_log(LOG_LEVEL_INFO, "session %s stopped from the %s%s%s", id, source,
		 c ? " of cuff " : "", c ? cuff_id(c) : "");
	publish_event(h, "stopped", source, c, id, NULL,
		      "Your session was stopped. The cuff is deflating.");
	if (id_out)
		snprintf(id_out, SESSION_ID_BUF, "%s", id);
	return true;
}

/* `ctl stop`: every session on this gateway's cuffs (a home has the patient's). */
static void local_stop_all(struct home *h, struct outcome *out)
{
	size_t stopped = 0;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < h->deps.n_cuffs; i++) {
		struct run *run = cuff_session_owner(h->deps.cuffs[i]);

		if (run && stop_run(h, run, "console", NULL, out->session_id))
			stopped++;
	}
	if (stopped == 0) {
		refused(out, "no_session", "No session is running.");
		return;
	}
	out->ok = true;
	snprintf(out->code, sizeof(out->code), "ok");
	snprintf(out->message, sizeof(out->message), "The session was stopped. The cuff%s %s "
						     "deflating.",
		 h->deps.n_cuffs > 1 ? "s" : "", h->deps.n_cuffs > 1 ? "are" : "is");
}

/* A press: a cuff in a session stops it (short or long: pressing is how a
 * patient says stop); a long press of an idle cuff starts the plan. */
static void handle_press(struct home *h, struct cuff *c, bool long_press)
{
	struct run *run = cuff_session_owner(c);
	struct outcome out;

	if (run) {
		(void)stop_run(h, run, "button", c, NULL);
		return;
	}
	if (!long_press) {
		cuff_log(c, LOG_LEVEL_INFO, "short press: no session to stop");
		return;
	}
	local_start(h, "button", c, &out);
}

static void on_post(struct loop *loop, void *user_data)
{
	struct home *h = user_data;
	struct press presses[HOME_PRESSES_MAX];
	size_t n = h->n_presses;

	/* Taken first: what the presses cause may bring new ones. */
	memcpy(presses, h->presses, n * sizeof(presses[0]));
	h->n_presses = 0;
	for (size_t i = 0; i < n; i++)
		handle_press(h, presses[i].cuff, presses[i].long_press);
}

void home_cuff_button(struct home *h, struct cuff *c, bool long_press)
{
	if (!h->enabled) {
		cuff_log(c, LOG_LEVEL_INFO, "%s press ignored: not a home gateway (no home group)",
			 long_press ? "long" : "short");
		return;
	}
	if (h->n_presses == HOME_PRESSES_MAX) {
		cuff_log(c, LOG_LEVEL_WARN, "button press dropped: too many at once");
		return;
	}
	h->presses[h->n_presses++] = (struct press){ .cuff = c, .long_press = long_press };
	(void)loop_post_schedule(h->deps.loop, h->post); /* cannot fail: the hook exists */
}

/* --- live supervision -------------------------------------------------------------------- */

static void supervision_changed(struct home *h)
{
	struct run *run = live_run(h);

	if (!run || supervisor_present(h)) {
		if (run && h->lost_announced) {
			home_log(LOG_LEVEL_INFO, "session %s: the clinician is back (%s)",
				 run_id(run), h->presence.by);
			publish_event(h, "supervisor_back", "supervision", NULL, run_id(run), NULL,
				      "Your clinician is connected again.");
		}
		loop_timer_stop(h->deps.loop, h->grace_timer);
		h->lost_announced = false;
		return;
	}
	if (h->lost_announced)
		return; /* counting down already, or keeping it paused */
	h->lost_announced = true;
	if (loop_timer_start(h->deps.loop, h->grace_timer,
			     (uint64_t)h->deps.cfg->home.supervisor_grace_s * 1000,
			     HOME_ENFORCE_MS) < 0)
		home_log(LOG_LEVEL_ERROR, "cannot arm the supervision timer");
	home_log(LOG_LEVEL_WARN, "session %s: live supervision lost (%s); pausing in %u s unless "
				 "the clinician comes back",
		 run_id(run),
		 !h->mqtt_connected ? "no MQTT connection"
		 : h->bridge_down   ? "the bridge to the clinic is down"
				    : "the clinician's presence is offline",
		 h->deps.cfg->home.supervisor_grace_s);
	publish_event(h, "supervisor_lost", "supervision", NULL, run_id(run), "supervisor_absent",
		      "Your clinician's connection was lost. The session pauses shortly unless "
		      "they come back.");
}

/*
 * The grace period is over (and then every HOME_ENFORCE_MS while the
 * clinician stays away): the session must not run unwatched. Paused it
 * stays paused; a session measuring its LOP cannot pause and is stopped.
 */
static void on_grace_timer(struct loop *loop, uint64_t id, void *user_data)
{
	struct home *h = user_data;
	struct run *run = live_run(h);
	struct session_state st;
	char sid[SESSION_ID_BUF];

	if (!run || supervisor_present(h)) {
		supervision_changed(h);
		return;
	}
	if (run_state(run, &st) < 0 || st.phase == SESSION_PHASE_PAUSED ||
	    st.phase == SESSION_PHASE_COMPLETED || st.phase == SESSION_PHASE_STOPPED ||
	    st.phase == SESSION_PHASE_ABORTED)
		return;
	snprintf(sid, sizeof(sid), "%s", run_id(run));
	if (st.phase != SESSION_PHASE_LOP && run_pause(run) == 0) {
		home_log(LOG_LEVEL_WARN, "session %s paused: no clinician watching", sid);
		publish_event(h, "paused", "supervision", NULL, sid, "supervisor_absent",
			      "Your clinician is not connected, so the session is paused and the "
			      "cuff deflated. Your clinician will resume it.");
		return;
	}
	if (run_stop(run) == 0) {
		home_log(LOG_LEVEL_WARN, "session %s stopped: no clinician watching (it could not "
					 "pause in phase %s)",
			 sid, session_phase_name(st.phase));
		publish_event(h, "stopped", "supervision", NULL, sid, "supervisor_absent",
			      "Your clinician is not connected, so the session was stopped and the "
			      "cuff deflated.");
	}
}

void home_supervisor_message(struct home *h, const uint8_t *payload, size_t len)
{
	struct supervisor_presence p;
	char err[128] = "";
	bool was = h->presence.online;
	int r = supervisor_presence_parse(payload, len, &p, err, sizeof(err));

	if (r < 0) {
		/* Whatever it meant, nobody is known to be watching. */
		home_log(LOG_LEVEL_WARN, "supervisor presence not understood (%s): taken as offline",
			 r == -EINVAL ? err : strerror(-r));
		p = (struct supervisor_presence){ 0 };
	}
	h->presence = p;
	if (was != p.online)
		home_log(LOG_LEVEL_INFO, "clinician presence: %s%s%s", p.online ? "online" : "offline",
			 p.by[0] ? " by " : "", p.by);
	supervision_changed(h);
}

void home_bridge_state(struct home *h, const uint8_t *payload, size_t len)
{
	bool down;

	if (len == 1 && (payload[0] == '0' || payload[0] == '1')) {
		down = payload[0] == '0';
	} else {
		home_log(LOG_LEVEL_WARN, "bridge state not understood (%zu bytes): taken as down",
			 len);
		down = true;
	}
	if (down != h->bridge_down)
		home_log(down ? LOG_LEVEL_WARN : LOG_LEVEL_INFO, "the bridge to the clinic is %s",
			 down ? "down" : "up");
	h->bridge_down = down;
	supervision_changed(h);
}

void home_connected(struct home *h)
{
	h->mqtt_connected = true;
	/* Presence and bridge state come again with their retained messages
	 * (subscribed again before this runs), not from memory. */
	h->presence = (struct supervisor_presence){ 0 };
	h->bridge_down = false;
	if (h->have_rx)
		publish_prescription(h, OUTBOX_DROPPABLE);
	supervision_changed(h);
}

void home_disconnected(struct home *h)
{
	h->mqtt_connected = false;
	h->presence = (struct supervisor_presence){ 0 };
	supervision_changed(h);
}

int home_check_resume(struct home *h, const char *session_id, struct command_error *err,
		      const char *request_id)
{
	struct run *run = live_run(h);

	if (!run || strcmp(session_id, h->session_id) != 0 || supervisor_present(h))
		return 0;
	command_error_set(err, CMD_ERR_BAD_STATE, request_id,
			  "session %s is supervised live and no clinician presence is online: "
			  "publish it on supervisor first",
			  session_id);
	return -EPERM;
}

/* --- the prescription commands ---------------------------------------------------------- */

static int set_prescription(struct home *h, const struct command *cmd,
			    struct command_error *err)
{
	struct prescription *p = calloc(1, sizeof(*p));
	int64_t now = wall_ms(h);
	char *text = NULL;
	json_t *body = NULL;
	int r;

	if (!p)
		goto nomem;
	r = runner_check_plan(h->deps.runner, &cmd->plan, err, cmd->request_id);
	if (r < 0)
		goto out;
	if (cmd->rules.valid_until_ms <= now) {
		command_error_set(err, CMD_ERR_OUT_OF_RANGE, cmd->request_id,
				  "valid_until: already past by the gateway's clock");
		r = -EINVAL;
		goto out;
	}
	p->plan = cmd->plan;
	p->has_patient = cmd->has_patient;
	memcpy(p->patient, cmd->patient, sizeof(p->patient));
	p->rules = cmd->rules;
	body = prescription_to_json(p);
	text = body ? json_dumps(body, MSG_JSON_FLAGS) : NULL;
	if (!text)
		goto nomem;
	/* Recorded first: a prescription that would not survive a restart is
	 * not accepted. */
	if (h->deps.store && store_prescription_set(h->deps.store, text, cmd->request_id, now,
						    0) < 0) {
		command_error_set(err, CMD_ERR_INTERNAL, cmd->request_id,
				  "the prescription could not be recorded; nothing changed");
		r = -EIO;
		goto out;
	}
	h->rx = *p;
	h->have_rx = true;
	h->rx_set_ms = now;
	snprintf(h->rx_request_id, sizeof(h->rx_request_id), "%s", cmd->request_id);
	publish_prescription(h, 0);
	home_log(LOG_LEVEL_INFO, "prescription set (request %s): %u exercises, %u a day, %u h "
				 "apart, supervision %s",
		 cmd->request_id, p->plan.n_exercises, p->rules.max_per_day,
		 p->rules.min_hours_between, prescription_supervision_name(p->rules.supervision));
	r = 0;
	goto out;
nomem:
	command_error_set(err, CMD_ERR_INTERNAL, cmd->request_id, "out of memory");
	r = -ENOMEM;
out:
	free(text);
	json_decref(body);
	free(p);
	return r;
}

static int clear_prescription(struct home *h, const struct command *cmd,
			      struct command_error *err)
{
	if (!h->have_rx) {
		command_error_set(err, CMD_ERR_NOT_FOUND, cmd->request_id,
				  "there is no prescription to clear");
		return -ENOENT;
	}
	if (h->deps.store && store_prescription_clear(h->deps.store, wall_ms(h), 0) < 0) {
		command_error_set(err, CMD_ERR_INTERNAL, cmd->request_id,
				  "the clearing could not be recorded; nothing changed");
		return -EIO;
	}
	h->have_rx = false;
	publish_prescription(h, 0);
	home_log(LOG_LEVEL_INFO, "prescription cleared (request %s)", cmd->request_id);
	return 0;
}

int home_prescription_command(struct home *h, const struct command *cmd,
			      struct command_error *err)
{
	if (!h->enabled) {
		command_error_set(err, CMD_ERR_BAD_STATE, cmd->request_id,
				  "this is not a home gateway (no home group in its configuration)");
		return -EPERM;
	}
	if (cmd->verb == CMD_PRESCRIPTION_SET)
		return set_prescription(h, cmd, err);
	return clear_prescription(h, cmd, err);
}

/* --- the console ------------------------------------------------------------------------- */

static json_t *outcome_json(const struct outcome *out)
{
	json_t *r = json_pack("{s:b, s:s, s:s}", "ok", out->ok, "code", out->code, "message",
			      out->message);

	if (r && out->session_id[0])
		json_object_set_new(r, "session_id", json_string(out->session_id));
	return r;
}

static void add_line(json_t *lines, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_line(json_t *lines, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	json_array_append_new(lines, json_string(buf));
}

static void status_prescription(struct home *h, json_t *st, json_t *lines)
{
	char from[PRESCRIPTION_TIME_BUF] = "", until[PRESCRIPTION_TIME_BUF] = "";
	const struct prescription_rules *r = &h->rx.rules;
	char names[256] = "";

	if (!h->have_rx) {
		json_object_set_new(st, "prescription", json_null());
		add_line(lines, "Prescription: none. Please contact your clinic.");
		return;
	}
	json_object_set_new(st, "prescription", prescription_json(h));
	for (unsigned e = 0; e < h->rx.plan.n_exercises; e++) {
		size_t used = strlen(names);

		snprintf(names + used, sizeof(names) - used, "%s%s", e ? ", " : "",
			 h->rx.plan.exercises[e].name);
	}
	(void)prescription_format_time(r->valid_from_ms, from);
	(void)prescription_format_time(r->valid_until_ms, until);
	add_line(lines, "Prescription: %s; from %.16s to %.16s UTC; up to %u a day, at least %u h "
			"apart; supervision %s.",
		 names, from, until, r->max_per_day, r->min_hours_between,
		 prescription_supervision_name(r->supervision));
}

static void status_session(struct home *h, json_t *st, json_t *lines)
{
	struct run *run = NULL;
	struct session_state ss;

	for (size_t i = 0; i < h->deps.n_cuffs && !run; i++)
		run = cuff_session_owner(h->deps.cuffs[i]);
	if (!run || run_state(run, &ss) < 0) {
		json_object_set_new(st, "session", json_null());
		add_line(lines, "Session: none running.");
		return;
	}
	json_object_set_new(st, "session",
			    json_pack("{s:s, s:s, s:o}", "session_id", run_id(run), "phase",
				      session_phase_name(ss.phase), "seconds_left",
				      ss.seconds_left >= 0 ? json_integer(ss.seconds_left)
							   : json_null()));
	if (ss.seconds_left >= 0)
		add_line(lines, "Session: %s, %s, %d s left in this phase.", run_id(run),
			 session_phase_name(ss.phase), (int)ss.seconds_left);
	else
		add_line(lines, "Session: %s, %s.", run_id(run), session_phase_name(ss.phase));
}

static void status_cuffs(struct home *h, json_t *st, json_t *lines)
{
	json_t *cuffs = json_array();

	for (size_t i = 0; i < h->deps.n_cuffs; i++) {
		struct cuff_reading rd;
		const char *link;

		cuff_read(h->deps.cuffs[i], &rd);
		link = rd.link == CUFF_LINK_READY ? "connected" : cuff_link_state_name(rd.link);
		json_array_append_new(cuffs, json_pack("{s:s, s:s, s:o}", "cuff",
						       cuff_id(h->deps.cuffs[i]), "link", link,
						       "battery_pct",
						       rd.battery_pct >= 0
							       ? json_integer(rd.battery_pct)
							       : json_null()));
		if (rd.battery_pct >= 0)
			add_line(lines, "Cuff %s: %s, battery %d %%.", cuff_id(h->deps.cuffs[i]),
				 link, rd.battery_pct);
		else
			add_line(lines, "Cuff %s: %s.", cuff_id(h->deps.cuffs[i]), link);
	}
	json_object_set_new(st, "cuffs", cuffs);
}

static json_t *status_json(struct home *h)
{
	struct prescription_verdict v;
	bool running = home_run(h) != NULL;
	bool may = verdict(h, &v) == 0 && !running;
	json_t *st = json_object(), *lines = json_array(), *ms;

	if (!st || !lines) {
		json_decref(st);
		json_decref(lines);
		return NULL;
	}
	json_object_set_new(st, "ok", json_true());
	status_prescription(h, st, lines);
	json_object_set_new(st, "today",
			    json_pack("{s:i, s:o}", "started", (int)v.started_today, "max_per_day",
				      h->have_rx ? json_integer(h->rx.rules.max_per_day)
						 : json_null()));
	if (h->have_rx)
		add_line(lines, "Today: %u of %u sessions started.", v.started_today,
			 h->rx.rules.max_per_day);
	ms = json_object();
	json_object_set_new(ms, "ok", json_boolean(may));
	json_object_set_new(ms, "code", json_string(running ? "session_running"
							    : may ? "ok"
								  : prescription_refusal_name(v.refusal)));
	json_object_set_new(ms, "message", json_string(running ? "A session is already running."
							   : may ? ""
								 : v.sentence));
	json_object_set_new(st, "may_start", ms);
	if (may)
		add_line(lines, "Next session: you can start it now.");
	else if (!running)
		add_line(lines, "Next session: %s", v.sentence);
	status_session(h, st, lines);
	json_object_set_new(st, "supervision",
			    json_pack("{s:o, s:b, s:o}", "mode",
				      h->have_rx ? json_string(prescription_supervision_name(
							   h->rx.rules.supervision))
						 : json_null(),
				      "present", supervisor_present(h), "by",
				      supervisor_present(h) ? json_string(h->presence.by)
							    : json_null()));
	if (supervisor_present(h))
		add_line(lines, "Clinician: connected (%s).", h->presence.by);
	else
		add_line(lines, "Clinician: not connected.");
	status_cuffs(h, st, lines);
	json_object_set_new(st, "text", lines);
	return st;
}

static json_t *on_ctl_request(const char *line, const struct ctl_peer *peer, void *user_data)
{
	struct home *h = user_data;
	struct outcome out;

	home_log(LOG_LEVEL_INFO, "console (uid %u, pid %d): %.32s", (unsigned)peer->uid,
		 (int)peer->pid, line);
	if (strcmp(line, "start") == 0) {
		local_start(h, "console", NULL, &out);
		return outcome_json(&out);
	}
	if (strcmp(line, "stop") == 0) {
		local_stop_all(h, &out);
		if (!out.ok)
			home_log(LOG_LEVEL_INFO, "console stop: %s", out.message);
		return outcome_json(&out);
	}
	if (strcmp(line, "status") == 0)
		return status_json(h);
	/* Only the three words: nothing here can carry a plan or a limit. */
	return json_pack("{s:b, s:s, s:s}", "ok", 0, "code", "bad_request", "message",
			 "Unknown request: use start, stop or status.");
}

/* --- life -------------------------------------------------------------------------------- */

/* The prescription in force and the recent starts of an earlier run. */
static void restore(struct home *h)
{
	struct command *cmd = NULL;
	struct command_error err;
	int64_t newest_first[HOME_STARTS_MAX], set_ms = 0;
	char *body = NULL, *text = NULL;
	json_t *j = NULL;
	size_t n = 0;
	int r;

	r = store_home_starts_recent(h->deps.store, newest_first, HOME_STARTS_MAX, &n);
	if (r < 0)
		home_log(LOG_LEVEL_ERROR, "local starts not read back: %s", strerror(-r));
	for (size_t i = 0; r == 0 && i < n; i++)
		h->starts[i] = newest_first[n - 1 - i];
	h->n_starts = r == 0 ? n : 0;
	r = store_prescription_current(h->deps.store, &body, &set_ms);
	if (r == -ENOENT)
		return;
	j = r == 0 ? json_loads(body, 0, NULL) : NULL;
	/* The stored form is the command's: the same strict parser reads it. */
	if (j && json_object_set_new(j, "request_id", json_string("restored")) == 0)
		text = json_dumps(j, JSON_COMPACT);
	cmd = calloc(1, sizeof(*cmd));
	if (!text || !cmd || command_parse(CMD_PRESCRIPTION_SET, text, strlen(text), cmd, &err) < 0) {
		home_log(LOG_LEVEL_ERROR, "the recorded prescription could not be read back (%s): "
					  "none is in force",
			 r < 0 ? strerror(-r) : "not valid");
		goto out;
	}
	h->rx.plan = cmd->plan;
	h->rx.has_patient = cmd->has_patient;
	memcpy(h->rx.patient, cmd->patient, sizeof(h->rx.patient));
	h->rx.rules = cmd->rules;
	h->rx_set_ms = set_ms;
	h->have_rx = true;
	home_log(LOG_LEVEL_INFO, "prescription restored (%u exercises, supervision %s), %zu recent "
				 "local starts",
		 h->rx.plan.n_exercises, prescription_supervision_name(h->rx.rules.supervision),
		 h->n_starts);
out:
	free(cmd);
	free(text);
	json_decref(j);
	free(body);
}

int home_new(const struct home_deps *deps, struct home **out)
{
	const struct config *cfg = deps->cfg;
	struct ctl_config ccfg = { .path = cfg->home.control_socket,
				   .has_group = cfg->home.control_group != NULL,
				   .group = (gid_t)cfg->home.control_gid };
	struct ctl_callbacks ccb = { .on_request = on_ctl_request };
	struct home *h = calloc(1, sizeof(*h));
	char err[256] = "";
	int r;

	if (!h)
		return -ENOMEM;
	h->deps = *deps;
	h->enabled = cfg->home.enabled;
	r = loop_timer_new(deps->loop, on_grace_timer, h, &h->grace_timer);
	if (r == 0)
		r = loop_post_new(deps->loop, on_post, h, &h->post);
	if (r < 0) {
		home_free(h);
		return r;
	}
	if (!h->enabled) {
		*out = h;
		return 0;
	}
	if (deps->store)
		restore(h);
	/* The gateway supervises cuffs without its console: say so and go on. */
	r = ctl_new(deps->loop, &ccfg, &ccb, h, &h->ctl, err, sizeof(err));
	if (r < 0)
		home_log(LOG_LEVEL_ERROR, "%s; bfr-gateway ctl will not work", err);
	*out = h;
	return 0;
}

void home_shutdown(struct home *h)
{
	h->stopping = true;
	ctl_free(h->ctl);
	h->ctl = NULL;
}

void home_free(struct home *h)
{
	if (!h)
		return;
	ctl_free(h->ctl);
	loop_timer_free(h->deps.loop, h->grace_timer);
	loop_post_free(h->deps.loop, h->post);
	free(h);
}
