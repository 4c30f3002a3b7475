/*
 * gw_session.c - runs exercise sessions (gateway/logic/session.c) on real
 * cuffs: executes their actions through the safety engine and the cuff
 * links, publishes their events, state and summary, and records them.
 *
 * The session module is pure and its callbacks run inside its calls, so
 * anything that would call back into a session (a safety abort raised by a
 * DEFLATE it asked for, an alarm note) is deferred to session_leave(), which
 * runs when the outermost call returns.
 */
#include "gateway_private.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static void session_leave(struct gw_session *gs);

static void session_enter(struct gw_session *gs)
{
	gs->depth++;
}

enum command_error_code gw_refusal_code(enum limits_refusal r)
{
	switch (r) {
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
		return CMD_ERR_BATTERY_LOW;
	default:
		return CMD_ERR_BAD_STATE;
	}
}

struct gw_session *gw_session_find(struct gateway *gw, const char *id)
{
	for (size_t i = 0; i < gw->n_sessions; i++)
		if (strcmp(gw->sessions[i]->id, id) == 0)
			return gw->sessions[i];
	return NULL;
}

/* --- session callbacks ------------------------------------------------------ */

static void defer_abort(struct gw_session *gs, const char *why)
{
	if (gs->abort_pending || gs->ended)
		return;
	gs->abort_pending = true;
	snprintf(gs->abort_reason, sizeof(gs->abort_reason), "%s", why);
	gs->abort_deflate_reason = BFR_DEFLATE_SAFETY;
}

static void do_set_target(struct gw_session *gs, struct gw_cuff *c, const struct session_action *a)
{
	struct gateway *gw = gs->gw;
	struct safety_event ev = { .type = SAFETY_EV_INFLATE_CMD };
	struct bfr_cp_request req = { .opcode = BFR_CP_SET_TARGET };
	enum limits_refusal why = LIMITS_OK;
	int r;

	ev.inflate.target_mmhg = a->target_mmHg;
	ev.inflate.unacked_high = alarm_has_unacked_high(gw->alarms, c->cfg->id);
	if (gw_safety_ask(c, &ev, &why) < 0) {
		log_warn("session %s: SET_TARGET %.1f mmHg on %s refused by safety: %s", gs->id,
			 a->target_mmHg, c->cfg->id, limits_refusal_name(why));
		defer_abort(gs, limits_refusal_name(why));
		return;
	}
	req.set_target.mmhg = a->target_mmHg;
	req.set_target.ramp_ms = a->ramp_ms;
	r = cuff_link_send_cp(c->link, &req);
	if (r < 0) {
		log_warn("session %s: SET_TARGET on %s not sent: %s", gs->id, c->cfg->id,
			 strerror(-r));
		defer_abort(gs, r == -ENOTCONN ? "not_connected" : "cuff_error");
	} else {
		c->commanded_target = a->target_mmHg;
	}
	gw_cuff_mark_dirty(c, true);
}

/* MEASURE_LOP, asked of the safety engine first; shared with cmd/lop/measure. */
int gw_cuff_measure_lop(struct gw_cuff *c, enum limits_refusal *why)
{
	struct safety_event ev = { .type = SAFETY_EV_LOP_MEASURE };
	struct bfr_cp_request req = { .opcode = BFR_CP_MEASURE_LOP };
	int r;

	ev.lop_measure.unacked_high = alarm_has_unacked_high(c->gw->alarms, c->cfg->id);
	r = gw_safety_ask(c, &ev, why);
	if (r < 0)
		return r;
	req.max_search_mmhg = c->limits.max_pressure_mmhg;
	r = cuff_link_send_cp(c->link, &req);
	if (r < 0) {
		struct safety_event fail = { .type = SAFETY_EV_CP_RESULT };

		/* Tell the engine the measurement is not running after all. */
		fail.cp_result.opcode = BFR_CP_MEASURE_LOP;
		fail.cp_result.result = BFR_RESULT_FAILED;
		gw_safety_event(c, &fail);
		if (why)
			*why = LIMITS_REFUSE_LINK_DOWN;
		return r;
	}
	c->lop_measuring = true;
	gw_cuff_mark_dirty(c, true);
	return 0;
}

static void on_session_action(const struct session_action *a, void *user_data)
{
	struct gw_session *gs = user_data;
	struct gw_cuff *c = gw_find_cuff(gs->gw, a->cuff);
	struct bfr_cp_request req = { 0 };

	if (!c)
		return;
	switch (a->kind) {
	case SESSION_ACT_SET_TARGET:
		do_set_target(gs, c, a);
		break;
	case SESSION_ACT_DEFLATE:
		/* Sent and told to the safety engine at once, so a SET_TARGET later
		 * in the same session call is judged after this DEFLATE. */
		gw_cuff_deflate(c, a->reason, a->rest);
		gw_cuff_mark_dirty(c, true);
		break;
	case SESSION_ACT_CUE:
		req.opcode = BFR_CP_CUE;
		req.cue = a->cue;
		cuff_link_send_cp(c->link, &req); /* a lost cue is cosmetic */
		break;
	case SESSION_ACT_MEASURE_LOP: {
		enum limits_refusal why = LIMITS_OK;

		if (gw_cuff_measure_lop(c, &why) < 0)
			defer_abort(gs, why == LIMITS_REFUSE_LINK_DOWN ? "not_connected"
								       : limits_refusal_name(why));
		break;
	}
	}
}

static json_t *figures_json(const struct set_figures *f, unsigned set, const char *cuff);

/*
 * Every finished set's figures go to the database as soon as the set ends,
 * so a crash mid-session loses none of them (the summary after a restart is
 * rebuilt from these rows).
 */
static void store_finished_figures(struct gw_session *gs)
{
	const struct session_plan *plan = session_plan(gs->s);

	if (!gs->gw->store)
		return;
	for (unsigned e = 0; e < plan->n_exercises; e++) {
		const struct session_exercise *ex = &plan->exercises[e];
		unsigned n_sets = ex->mode == SESSION_MODE_CYCLE ? ex->cycles : ex->n_sets;

		for (unsigned set = 0; set < n_sets && set < SESSION_MAX_SETS; set++) {
			for (unsigned k = 0; k < ex->n_cuffs; k++) {
				struct set_figures f;
				int r;
				json_t *fj;
				char *text;

				if (gs->fig_stored[e][set] & (1u << k))
					continue;
				r = session_set_figures(gs->s, e, set, k, &f);
				if (r == -ENOENT)
					continue;
				gs->fig_stored[e][set] |= (uint8_t)(1u << k);
				fj = figures_json(r == 0 ? &f : NULL, set + 1, ex->cuffs[k]);
				text = fj ? json_dumps(fj, GW_JSON_FLAGS) : NULL;
				if (text)
					store_set_figures(gs->gw->store, gs->id, e, set + 1, ex->cuffs[k],
							  text, 0);
				free(text);
				json_decref(fj);
			}
		}
	}
}

static void on_session_event(const struct session_event *e, void *user_data)
{
	struct gw_session *gs = user_data;
	struct gateway *gw = gs->gw;
	char topic[TOPIC_MAX];
	json_t *p;
	char *text;

	gw_flush_alarms(gw);
	p = payload_new(&gw->pctx, NULL);
	if (!p)
		return;
	json_object_set_new(p, "session_id", json_string(gs->id));
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
	if (e->type == SESSION_EV_ALARM && e->reason)
		json_object_set_new(p, "alarm_id", json_string(e->reason));
	else if (e->reason)
		json_object_set_new(p, "reason", json_string(e->reason));
	/* The record first: the writer commits in order, so an event can never
	 * reach the broker without its row (a restart continues after it). */
	text = json_dumps(p, GW_JSON_FLAGS);
	if (text && gw->store)
		store_session_event(gw->store, gs->id, e->seq, session_event_type_name(e->type),
				    text, (int64_t)gw_wall_ms(gw), 0);
	free(text);
	if (payload_topic(&gw->pctx, topic, sizeof(topic), "session/%s/event", gs->id) == 0)
		gw_publish_qos1(gw, topic, p, 0);
	json_decref(p);
	if (e->type == SESSION_EV_COMPLETED || e->type == SESSION_EV_STOPPED ||
	    e->type == SESSION_EV_ABORTED) {
		gs->ended = true;
		snprintf(gs->outcome, sizeof(gs->outcome), "%s",
			 e->type == SESSION_EV_COMPLETED ? "completed"
			 : e->type == SESSION_EV_STOPPED ? "stopped"
							 : "aborted");
		snprintf(gs->reason, sizeof(gs->reason), "%s", e->reason ? e->reason : "");
	}
	if (e->type == SESSION_EV_PHASE || gs->ended) {
		gs->state_published_ms = 0; /* publish the new state after the call */
		store_finished_figures(gs);
	}
}

static int on_session_check_target(const char *cuff, double target_mmHg, double lop_mmHg,
				   unsigned pct_lop, void *user_data)
{
	struct gw_session *gs = user_data;
	struct gw_cuff *c = gw_find_cuff(gs->gw, cuff);
	enum limits_refusal why = LIMITS_OK;

	if (!c)
		return -ENOENT;
	if (safety_check_target(&c->safety, loop_now_ms(gs->gw->loop), target_mmHg,
				alarm_has_unacked_high(gs->gw->alarms, cuff), &why) < 0) {
		log_warn("session %s: %.1f mmHg on %s refused: %s", gs->id, target_mmHg, cuff,
			 limits_refusal_name(why));
		return -EPERM;
	}
	return 0;
}

/* --- state, summary, end ---------------------------------------------------- */

void gw_session_publish_state(struct gw_session *gs)
{
	struct gateway *gw = gs->gw;
	struct session_state st;
	char topic[TOPIC_MAX];
	json_t *p, *cuffs;
	enum session_phase phase;

	if (gs->state_published_ms && gs->ended)
		return; /* the final state went out already */
	if (session_get_state(gs->s, loop_now_ms(gw->loop), &st) < 0 ||
	    st.phase == SESSION_PHASE_IDLE)
		return;
	p = payload_new(&gw->pctx, NULL);
	cuffs = json_array();
	if (!p || !cuffs)
		goto out;
	phase = st.phase;
	json_object_set_new(p, "session_id", json_string(gs->id));
	json_object_set_new(p, "phase", json_string(session_phase_name(phase)));
	json_object_set_new(p, "exercise_index",
			    st.exercise >= 0 ? json_integer(st.exercise) : json_null());
	json_object_set_new(p, "exercise",
			    st.exercise_name ? json_string(st.exercise_name) : json_null());
	json_object_set_new(p, "set", st.set ? json_integer(st.set) : json_null());
	json_object_set_new(p, "rep", st.set ? json_integer(st.rep) : json_null());
	json_object_set_new(p, "seconds_left",
			    st.seconds_left >= 0 ? json_integer(st.seconds_left) : json_null());
	json_object_set_new(p, "inflation_s_total", json_real(payload_round1(st.inflation_s)));
	for (size_t i = 0; i < gs->n_cuffs; i++)
		json_array_append_new(cuffs, json_string(gs->cuffs[i]->cfg->id));
	json_object_set_new(p, "cuffs", cuffs);
	cuffs = NULL;
	/* The final state must not be coalesced away or refused at the bound. */
	if (payload_topic(&gw->pctx, topic, sizeof(topic), "session/%s/state", gs->id) == 0)
		gw_publish_qos1(gw, topic, p,
				gs->ended ? OUTBOX_RETAIN : OUTBOX_RETAIN | OUTBOX_DROPPABLE);
	if (gw->store) {
		char *text = json_dumps(p, GW_JSON_FLAGS);

		if (text)
			store_session_state(gw->store, gs->id, text, 0);
		free(text);
	}
	gs->state_published_ms = loop_now_ms(gw->loop) + 1;
out:
	json_decref(cuffs);
	json_decref(p);
}

static json_t *figures_json(const struct set_figures *f, unsigned set, const char *cuff)
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

static void publish_summary(struct gw_session *gs)
{
	struct gateway *gw = gs->gw;
	const struct session_plan *plan = session_plan(gs->s);
	struct session_state st;
	char topic[TOPIC_MAX], started[32], ended[32];
	json_t *p = payload_new(&gw->pctx, NULL);
	json_t *exercises = json_array();

	if (!p || !exercises)
		goto out;
	session_get_state(gs->s, loop_now_ms(gw->loop), &st);
	store_finished_figures(gs);
	for (unsigned e = 0; e < plan->n_exercises; e++) {
		const struct session_exercise *ex = &plan->exercises[e];
		unsigned n_sets = ex->mode == SESSION_MODE_CYCLE ? ex->cycles : ex->n_sets;
		json_t *sets = json_array();

		for (unsigned s = 1; s <= n_sets && sets; s++) {
			for (unsigned k = 0; k < ex->n_cuffs; k++) {
				struct set_figures f;
				int r = session_set_figures(gs->s, e, s - 1, k, &f);
				json_t *fj;

				if (r == -ENOENT)
					continue;
				fj = figures_json(r == 0 ? &f : NULL, s, ex->cuffs[k]);
				if (fj)
					json_array_append_new(sets, fj);
			}
		}
		json_array_append_new(exercises,
				      json_pack("{s:s, s:o}", "name", ex->name, "sets",
						sets ? sets : json_array()));
	}
	payload_format_ts(gs->started_wall_ms, started);
	payload_format_ts(gw_wall_ms(gw), ended);
	json_object_set_new(p, "session_id", json_string(gs->id));
	json_object_set_new(p, "outcome", json_string(gs->outcome));
	json_object_set_new(p, "reason", gs->reason[0] ? json_string(gs->reason) : json_null());
	json_object_set_new(p, "started_at", json_string(started));
	json_object_set_new(p, "ended_at", json_string(ended));
	json_object_set_new(p, "exercises", exercises);
	exercises = NULL;
	json_object_set(p, "alarms", gs->alarm_ids);
	json_object_set_new(p, "inflation_s_total", json_real(payload_round1(st.inflation_s)));
	if (payload_topic(&gw->pctx, topic, sizeof(topic), "session/%s/summary", gs->id) == 0)
		gw_publish_qos1(gw, topic, p, OUTBOX_RETAIN);
	if (gw->store)
		store_session_end(gw->store, gs->id, gs->outcome, (int64_t)gw_wall_ms(gw), 0);
	log_info("session %s %s%s%s (%.0f s under pressure)", gs->id, gs->outcome,
		 gs->reason[0] ? ": " : "", gs->reason, st.inflation_s);
out:
	json_decref(exercises);
	json_decref(p);
}

static void session_free_one(struct gw_session *gs)
{
	if (!gs)
		return;
	if (gs->timer)
		loop_cancel_timer(gs->gw->loop, gs->timer);
	session_free(gs->s);
	json_decref(gs->alarm_ids);
	json_decref(gs->pending_notes);
	free(gs);
}

static void reap_sessions(struct loop *loop, uint64_t id, void *user_data)
{
	struct gateway *gw = user_data;
	size_t kept = 0;

	gw->reap_timer = 0;
	for (size_t i = 0; i < gw->n_sessions; i++) {
		struct gw_session *gs = gw->sessions[i];

		if (gs->ended && gs->depth == 0)
			session_free_one(gs);
		else
			gw->sessions[kept++] = gs;
	}
	gw->n_sessions = kept;
}

/* The session ended: release its cuffs, publish the summary, free it soon. */
static void session_finish(struct gw_session *gs)
{
	struct gateway *gw = gs->gw;
	struct safety_event ev = { .type = SAFETY_EV_SESSION_END };

	gs->finished = true;
	for (size_t i = 0; i < gs->n_cuffs; i++) {
		struct gw_cuff *c = gs->cuffs[i];

		if (c->session != gs)
			continue;
		c->session = NULL;
		gw_safety_event(c, &ev);
		gw_cuff_mark_dirty(c, true);
	}
	gw_session_publish_state(gs);
	publish_summary(gs);
	if (!gw->reap_timer)
		loop_add_timer(gw->loop, 0, reap_sessions, gw, &gw->reap_timer);
}

static void session_timer_fired(struct loop *loop, uint64_t id, void *user_data)
{
	struct gw_session *gs = user_data;

	gs->timer = 0;
	session_enter(gs);
	session_tick(gs->s, loop_now_ms(loop));
	session_leave(gs);
}

static void rearm_timer(struct gw_session *gs)
{
	struct gateway *gw = gs->gw;
	uint64_t due, now = loop_now_ms(gw->loop);

	if (session_next_deadline(gs->s, &due) < 0 || gs->ended) {
		if (gs->timer)
			loop_cancel_timer(gw->loop, gs->timer);
		gs->timer = 0;
		return;
	}
	if (gs->timer && gs->timer_at == due)
		return;
	if (gs->timer)
		loop_cancel_timer(gw->loop, gs->timer);
	gs->timer_at = due;
	if (loop_add_timer(gw->loop, due > now ? due - now : 0, session_timer_fired, gs,
			   &gs->timer) < 0)
		gs->timer = 0;
}

static void session_leave(struct gw_session *gs)
{
	if (--gs->depth > 0)
		return;
	/* Deferred work may call into the session again: hold it open. */
	gs->depth++;
	while (json_array_size(gs->pending_notes) > 0 && !gs->ended) {
		json_t *id = json_incref(json_array_get(gs->pending_notes, 0));

		json_array_remove(gs->pending_notes, 0);
		session_note_alarm(gs->s, json_string_value(id), loop_now_ms(gs->gw->loop));
		json_decref(id);
	}
	json_array_clear(gs->pending_notes);
	if (gs->abort_pending && !gs->ended) {
		gs->abort_pending = false;
		session_abort(gs->s, gs->abort_reason, gs->abort_deflate_reason,
			      loop_now_ms(gs->gw->loop));
	}
	gs->depth--;
	rearm_timer(gs);
	if (gs->ended) {
		if (!gs->finished)
			session_finish(gs);
	} else if (gs->state_published_ms == 0) {
		gw_session_publish_state(gs);
	}
}

/* --- wrappers ---------------------------------------------------------------- */

void gw_session_pressure(struct gw_session *gs, const char *cuff, double mmhg, uint64_t now)
{
	session_enter(gs);
	session_pressure(gs->s, cuff, mmhg, now);
	session_leave(gs);
}

void gw_session_lop_result(struct gw_session *gs, const char *cuff, bool ok, double lop,
			   uint64_t now)
{
	session_enter(gs);
	session_lop_result(gs->s, cuff, ok, lop, now);
	session_leave(gs);
}

void gw_session_note_alarm(struct gw_session *gs, const char *alarm_id)
{
	size_t i;
	json_t *v;

	json_array_foreach(gs->alarm_ids, i, v)
		if (strcmp(json_string_value(v), alarm_id) == 0)
			return;
	json_array_append_new(gs->alarm_ids, json_string(alarm_id));
	if (gs->ended)
		return;
	if (gs->depth > 0) {
		json_array_append_new(gs->pending_notes, json_string(alarm_id));
		return;
	}
	session_enter(gs);
	session_note_alarm(gs->s, alarm_id, loop_now_ms(gs->gw->loop));
	session_leave(gs);
}

void gw_session_abort(struct gw_session *gs, const char *reason_code, uint8_t deflate_reason)
{
	if (gs->ended)
		return;
	if (gs->depth > 0) {
		defer_abort(gs, reason_code);
		gs->abort_deflate_reason = deflate_reason;
		return;
	}
	session_enter(gs);
	session_abort(gs->s, reason_code, deflate_reason, loop_now_ms(gs->gw->loop));
	session_leave(gs);
}

int gw_session_pause(struct gw_session *gs)
{
	int r;

	session_enter(gs);
	r = session_pause(gs->s, loop_now_ms(gs->gw->loop));
	session_leave(gs);
	return r;
}

int gw_session_resume(struct gw_session *gs)
{
	int r;

	session_enter(gs);
	r = session_resume(gs->s, loop_now_ms(gs->gw->loop));
	session_leave(gs);
	return r;
}

int gw_session_stop(struct gw_session *gs)
{
	int r;

	session_enter(gs);
	r = session_stop(gs->s, loop_now_ms(gs->gw->loop));
	session_leave(gs);
	return r;
}

/* --- start -------------------------------------------------------------------- */

static int check_cuff(struct gateway *gw, const struct session_exercise *ex, const char *id,
		      struct command_error *err, const char *request_id)
{
	struct gw_cuff *c = gw_find_cuff(gw, id);
	uint64_t now = loop_now_ms(gw->loop);
	enum limits_refusal why = LIMITS_OK;
	int64_t age;
	double lop, target;

	if (!c) {
		command_error_set(err, CMD_ERR_UNKNOWN_CUFF, request_id, "cuff %s: no such cuff",
				  id);
		return -ENOENT;
	}
	if (c->session || c->lop_measuring) {
		command_error_set(err, CMD_ERR_CUFF_BUSY, request_id, "cuff %s: already in session %s",
				  id, c->session ? c->session->id : "(LOP measurement)");
		return -EBUSY;
	}
	if (safety_may_inflate(&c->safety, now, alarm_has_unacked_high(gw->alarms, id), &why) < 0) {
		command_error_set(err, gw_refusal_code(why), request_id, "cuff %s: %s", id,
				  limits_refusal_name(why));
		return -EPERM;
	}
	lop = safety_lop(&c->safety, now, &age);
	if (limits_check_lop(&c->limits, lop, age, &why) == 0) {
		if (limits_check_prescription(&c->limits, lop, age, ex->pct_lop, &target, &why) < 0) {
			command_error_set(err, gw_refusal_code(why), request_id,
					  "cuff %s: %u %% of LOP %.0f mmHg: %s", id, ex->pct_lop,
					  lop, limits_refusal_name(why));
			return -EPERM;
		}
	} else if (ex->pct_lop > c->limits.max_pct_lop) {
		command_error_set(err, CMD_ERR_LIMIT_EXCEEDED, request_id,
				  "cuff %s: pct_lop %u is above this cuff's limit of %.0f %%", id,
				  ex->pct_lop, c->limits.max_pct_lop);
		return -EPERM;
	}
	return 0;
}

static int add_cuff(struct gw_session *gs, struct gw_cuff *c)
{
	for (size_t i = 0; i < gs->n_cuffs; i++)
		if (gs->cuffs[i] == c)
			return 0;
	if (gs->n_cuffs == sizeof(gs->cuffs) / sizeof(gs->cuffs[0]))
		return -E2BIG;
	gs->cuffs[gs->n_cuffs++] = c;
	return 0;
}

static json_t *plan_json(const struct session_plan *plan)
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

int gw_session_start(struct gateway *gw, const struct command *cmd, struct command_error *err,
		     char *session_id_out)
{
	const struct session_plan *plan = &cmd->plan;
	struct session_callbacks cb = {
		.action = on_session_action,
		.event = on_session_event,
		.check_target = on_session_check_target,
	};
	struct session_config scfg;
	struct gw_session *gs = NULL;
	uint64_t now = loop_now_ms(gw->loop);
	int r;

	for (unsigned e = 0; e < plan->n_exercises; e++)
		for (unsigned k = 0; k < plan->exercises[e].n_cuffs; k++) {
			r = check_cuff(gw, &plan->exercises[e], plan->exercises[e].cuffs[k], err,
				       cmd->request_id);
			if (r < 0)
				return r;
		}
	if (gw->n_sessions == gw->cap_sessions) {
		size_t cap = gw->cap_sessions ? gw->cap_sessions * 2 : 4;
		struct gw_session **v = realloc(gw->sessions, cap * sizeof(*v));

		if (!v)
			goto nomem;
		gw->sessions = v;
		gw->cap_sessions = cap;
	}
	gs = calloc(1, sizeof(*gs));
	if (!gs)
		goto nomem;
	gs->gw = gw;
	gs->alarm_ids = json_array();
	gs->pending_notes = json_array();
	if (!gs->alarm_ids || !gs->pending_notes)
		goto nomem;
	snprintf(gs->id, sizeof(gs->id), "s%s-%llu", gw->pctx.boot,
		 (unsigned long long)++gw->session_counter);
	gs->has_patient = cmd->has_patient;
	snprintf(gs->patient, sizeof(gs->patient), "%s", cmd->has_patient ? cmd->patient : "");
	session_config_default(&scfg);
	scfg.deflate_timeout_ms = gw->cfg->deflate_timeout_ms;
	/* The link reports a missing LOP result first, with its reason. */
	scfg.lop_timeout_ms = CUFF_LINK_LOP_TIMEOUT_MS + 5000;
	cb.user_data = gs;
	r = session_new(gs->id, plan, &scfg, &cb, &gs->s);
	if (r < 0) {
		command_error_set(err, r == -ENOMEM ? CMD_ERR_INTERNAL : CMD_ERR_BAD_REQUEST,
				  cmd->request_id, "the plan was refused by the session engine");
		goto fail;
	}
	for (unsigned e = 0; e < plan->n_exercises; e++)
		for (unsigned k = 0; k < plan->exercises[e].n_cuffs; k++) {
			struct gw_cuff *c = gw_find_cuff(gw, plan->exercises[e].cuffs[k]);
			int64_t age;
			double lop = safety_lop(&c->safety, now, &age);
			enum limits_refusal why;

			add_cuff(gs, c);
			if (limits_check_lop(&c->limits, lop, age, &why) == 0)
				session_set_lop(gs->s, c->cfg->id, lop);
		}
	gs->started_wall_ms = gw_wall_ms(gw);
	gw->sessions[gw->n_sessions++] = gs;
	for (size_t i = 0; i < gs->n_cuffs; i++) {
		struct safety_event ev = { .type = SAFETY_EV_SESSION_START };

		gs->cuffs[i]->session = gs;
		gw_safety_event(gs->cuffs[i], &ev);
		gw_cuff_mark_dirty(gs->cuffs[i], true);
	}
	if (gw->store) {
		json_t *pj = plan_json(plan);
		char *text = pj ? json_dumps(pj, GW_JSON_FLAGS) : NULL;

		if (text)
			store_session_begin(gw->store, gs->id, text,
					    gs->has_patient ? gs->patient : NULL,
					    (int64_t)gs->started_wall_ms, 0);
		free(text);
		json_decref(pj);
	}
	log_info("session %s started: %u exercises on %zu cuffs", gs->id, plan->n_exercises,
		 gs->n_cuffs);
	snprintf(session_id_out, SESSION_ID_BUF, "%s", gs->id);
	session_enter(gs);
	session_start(gs->s, now);
	session_leave(gs);
	return 0;
nomem:
	command_error_set(err, CMD_ERR_INTERNAL, cmd->request_id, "out of memory");
	r = -ENOMEM;
fail:
	session_free_one(gs);
	return r;
}

void gw_sessions_free(struct gateway *gw)
{
	for (size_t i = 0; i < gw->n_sessions; i++)
		session_free_one(gw->sessions[i]);
	free(gw->sessions);
	gw->sessions = NULL;
	gw->n_sessions = 0;
}
