/* runner.c - see runner.h. */
#include "runner.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "messages.h"

#define RUN_MAX_CUFFS (SESSION_MAX_EXERCISES * SESSION_MAX_CUFFS)
/* The link reports a missing LOP result first, with its reason. */
#define RUN_LOP_TIMEOUT_MS (CUFF_LINK_LOP_TIMEOUT_MS + 5000)

struct run {
	struct runner *runner;
	struct session *s;
	char id[SESSION_ID_BUF];
	struct cuff *cuffs[RUN_MAX_CUFFS];
	size_t n_cuffs;
	uint64_t timer;
	uint64_t started_wall_ms;
	json_t *alarm_ids; /* every alarm noted in this session, for the summary */
	char patient[SESSION_ID_BUF];            /* "" when the start named none */
	char ended_by[SESSION_NAME_BUF];         /* who stopped it; "" nobody said */
	char note[COMMAND_REASON_MAX * 4 + 1];   /* why, in their words */
	char estop_alarm_id[ALARM_ID_MAX]; /* the e-stop that ends it, named by its end event */

	/* Inputs held while an output is executed (see runner.h). */
	bool busy;
	json_t *pending_notes;
	bool abort_pending;
	char abort_reason[SESSION_REASON_BUF];
	uint8_t abort_deflate_reason;

	bool ended;    /* the session emitted completed/stopped/aborted */
	bool finished; /* ...and the run released its cuffs and published the summary */
	char outcome[16];
	char reason[SESSION_REASON_BUF];
	bool state_dirty;      /* publish the state once the current input is done */
	bool final_state_sent;
	uint8_t fig_stored[SESSION_MAX_EXERCISES][SESSION_MAX_SETS]; /* bit per cuff */
	struct session_output out;
};

struct runner {
	struct runner_deps deps;
	struct run **runs;
	size_t n_runs, cap_runs;
	uint64_t session_counter;
	uint64_t post; /* after the batch: notes waiting, ended runs to free */
};

const char *run_id(const struct run *run)
{
	return run->id;
}

static uint64_t now_ms(const struct run *run)
{
	return loop_now_ms(run->runner->deps.loop);
}

static uint64_t wall_ms(const struct run *run)
{
	return payload_wall_ms(run->runner->deps.ctx);
}

static struct cuff *find_cuff(const struct runner *r, const char *id)
{
	return cuff_find(r->deps.cuffs, r->deps.n_cuffs, id);
}

static void request_abort(struct run *run, const char *why, uint8_t deflate_reason)
{
	if (run->abort_pending || run->ended)
		return;
	run->abort_pending = true;
	snprintf(run->abort_reason, sizeof(run->abort_reason), "%s", why);
	run->abort_deflate_reason = deflate_reason;
}

/* --- executing an output ------------------------------------------------------- */

/*
 * The SET_TARGETs of one step (consecutive items: both cuffs of a bilateral
 * exercise) are checked together, so either both are sent or neither.
 */
static bool targets_allowed(struct run *run, const struct session_output *out, size_t first,
			    enum limits_refusal *why)
{
	for (size_t i = first; i < out->n; i++) {
		const struct session_output_item *it = &out->items[i];
		struct cuff *c;

		if (it->kind != SESSION_OUTPUT_ACTION || it->action.kind != SESSION_ACT_SET_TARGET)
			break;
		c = find_cuff(run->runner, it->action.cuff);
		if (c && cuff_check_target(c, it->action.target_mmHg, why) < 0) {
			run_log(run, LOG_LEVEL_WARN, "%.1f mmHg on %s refused: %s",
				it->action.target_mmHg, cuff_id(c), limits_refusal_name(*why));
			return false;
		}
	}
	return true;
}

static void set_target(struct run *run, struct cuff *c, const struct session_action *a)
{
	enum limits_refusal why = LIMITS_OK;
	int r = cuff_set_target(c, a->target_mmHg, a->ramp_ms, &why);

	if (r == -EPERM) {
		run_log(run, LOG_LEVEL_WARN, "SET_TARGET %.1f mmHg on %s refused by safety: %s",
			a->target_mmHg, cuff_id(c), limits_refusal_name(why));
		request_abort(run, limits_refusal_name(why), BFR_DEFLATE_SAFETY);
	} else if (r < 0) {
		run_log(run, LOG_LEVEL_WARN, "SET_TARGET on %s not sent: %s", cuff_id(c),
			strerror(-r));
		request_abort(run, r == -ENOTCONN ? "not_connected" : "cuff_error",
			      BFR_DEFLATE_SAFETY);
	}
}

static void execute_action(struct run *run, const struct session_output *out, size_t i)
{
	const struct session_action *a = &out->items[i].action;
	const struct session_output_item *prev = i > 0 ? &out->items[i - 1] : NULL;
	struct cuff *c = find_cuff(run->runner, a->cuff);
	enum limits_refusal why = LIMITS_OK;

	if (!c)
		return;
	/* Once an abort is asked for, nothing of this output inflates. */
	if (run->abort_pending && a->kind != SESSION_ACT_DEFLATE)
		return;
	switch (a->kind) {
	case SESSION_ACT_SET_TARGET:
		/* The end reason names the limit (reperfusion, session_total, ...). */
		if ((!prev || prev->kind != SESSION_OUTPUT_ACTION ||
		     prev->action.kind != SESSION_ACT_SET_TARGET) &&
		    !targets_allowed(run, out, i, &why)) {
			request_abort(run, limits_refusal_name(why), BFR_DEFLATE_SAFETY);
			return;
		}
		set_target(run, c, a);
		break;
	case SESSION_ACT_DEFLATE:
		cuff_deflate(c, a->reason, a->rest);
		break;
	case SESSION_ACT_CUE:
		(void)cuff_cue(c, a->cue); /* a lost cue is cosmetic */
		break;
	case SESSION_ACT_MEASURE_LOP:
		if (cuff_measure_lop(c, &why) < 0)
			request_abort(run, why == LIMITS_REFUSE_LINK_DOWN ? "not_connected"
									  : limits_refusal_name(why),
				      BFR_DEFLATE_SAFETY);
		break;
	}
}

/*
 * Every finished set's figures go to the database as soon as the set ends,
 * so a crash mid-session loses none of them (the summary after a restart is
 * rebuilt from these rows).
 */
static void store_finished_figures(struct run *run)
{
	const struct session_plan *plan = session_plan(run->s);
	struct store *store = run->runner->deps.store;

	if (!store)
		return;
	for (unsigned e = 0; e < plan->n_exercises; e++) {
		const struct session_exercise *ex = &plan->exercises[e];
		unsigned n_sets = session_exercise_n_sets(ex);

		for (unsigned set = 0; set < n_sets && set < SESSION_MAX_SETS; set++) {
			for (unsigned k = 0; k < ex->n_cuffs; k++) {
				struct set_figures f;
				int r;
				json_t *fj;
				char *text;

				if (run->fig_stored[e][set] & (1u << k))
					continue;
				r = session_set_figures(run->s, e, set, k, &f);
				if (r == -ENOENT)
					continue;
				run->fig_stored[e][set] |= (uint8_t)(1u << k);
				fj = msg_set_figures(r == 0 ? &f : NULL, set + 1, ex->cuffs[k]);
				text = fj ? json_dumps(fj, MSG_JSON_FLAGS) : NULL;
				if (!text || store_set_figures(store, run->id, e, set + 1,
							       ex->cuffs[k], text, 0) < 0)
					run_log(run, LOG_LEVEL_ERROR,
						"figures of set %u of %s not recorded", set + 1,
						ex->cuffs[k]);
				free(text);
				json_decref(fj);
			}
		}
	}
}

static void publish_event(struct run *run, const struct session_event *e)
{
	struct runner *r = run->runner;
	char topic[TOPIC_MAX];
	json_t *p;
	char *text;

	/* An event that refers to an alarm must not overtake its record. */
	alarms_flush(r->deps.alarms);
	p = msg_session_event(r->deps.ctx, run->id, e);
	if (!p) {
		run_log(run, LOG_LEVEL_ERROR, "event %u: out of memory, not published", e->seq);
		return;
	}
	/* Who stopped it and why, on the event that ends it (stop, e-stop). */
	if ((e->type == SESSION_EV_STOPPED || e->type == SESSION_EV_ABORTED) &&
	    (run->ended_by[0] || run->note[0])) {
		if (run->ended_by[0])
			json_object_set_new(p, "by", json_string(run->ended_by));
		if (run->note[0])
			json_object_set_new(p, "note", json_string(run->note));
	}
	if (e->type == SESSION_EV_ABORTED && strcmp(e->reason, "estop") == 0 &&
	    run->estop_alarm_id[0])
		json_object_set_new(p, "alarm_id", json_string(run->estop_alarm_id));
	/* The record first: the writer commits in order, so an event can never
	 * reach the broker without its row (a restart continues after it). */
	text = json_dumps(p, MSG_JSON_FLAGS);
	if (text && r->deps.store &&
	    store_session_event(r->deps.store, run->id, e->seq, session_event_type_name(e->type),
				text, (int64_t)wall_ms(run), 0) < 0)
		run_log(run, LOG_LEVEL_ERROR, "event %u not recorded", e->seq);
	free(text);
	if (payload_topic(r->deps.ctx, topic, sizeof(topic), "session/%s/event", run->id) == 0)
		(void)publisher_qos1(r->deps.pub, topic, p, 0);
	json_decref(p);
	if (e->type == SESSION_EV_COMPLETED || e->type == SESSION_EV_STOPPED ||
	    e->type == SESSION_EV_ABORTED) {
		run->ended = true;
		snprintf(run->outcome, sizeof(run->outcome), "%s",
			 e->type == SESSION_EV_COMPLETED ? "completed"
			 : e->type == SESSION_EV_STOPPED ? "stopped"
							 : "aborted");
		snprintf(run->reason, sizeof(run->reason), "%s", e->reason);
	}
	if (e->type == SESSION_EV_PHASE || run->ended) {
		run->state_dirty = true;
		store_finished_figures(run);
	}
}

/* Executes one call's output in order; inputs arriving meanwhile are held. */
static void apply(struct run *run)
{
	run->busy = true;
	for (size_t i = 0; i < run->out.n; i++) {
		if (run->out.items[i].kind == SESSION_OUTPUT_ACTION)
			execute_action(run, &run->out, i);
		else
			publish_event(run, &run->out.items[i].event);
	}
	run->out.n = 0;
	run->busy = false;
}

/* --- state, summary, end ---------------------------------------------------- */

/* The cuffs a resume of the paused phase would inflate; 0 if none. */
static size_t resume_cuffs(const struct run *run, const struct session_state *st,
			   struct cuff **out)
{
	const struct session_plan *plan = session_plan(run->s);
	const struct session_exercise *ex;
	size_t n = 0;

	if (st->phase != SESSION_PHASE_PAUSED || st->exercise < 0)
		return 0;
	ex = &plan->exercises[st->exercise];
	if (!(st->paused_phase == SESSION_PHASE_INFLATING || st->paused_phase == SESSION_PHASE_SET ||
	      (st->paused_phase == SESSION_PHASE_REST && ex->mode == SESSION_MODE_CONTINUOUS)))
		return 0;
	for (unsigned i = 0; i < ex->n_cuffs; i++) {
		struct cuff *c = find_cuff(run->runner, ex->cuffs[i]);

		if (c)
			out[n++] = c;
	}
	return n;
}

/* Longest reperfusion wait before a resume; UINT64_MAX while a cuff has
 * not been seen deflated yet, 0 when nothing waits. */
static uint64_t resume_wait_ms(const struct run *run, const struct session_state *st)
{
	struct cuff *cuffs[SESSION_MAX_CUFFS];
	size_t n = resume_cuffs(run, st, cuffs);
	uint64_t wait = 0;

	for (size_t i = 0; i < n; i++) {
		uint64_t w = cuff_reperfusion_wait_ms(cuffs[i]);

		if (w > wait)
			wait = w;
	}
	return wait;
}

static void publish_state(struct run *run)
{
	struct runner *r = run->runner;
	const char *cuffs[RUN_MAX_CUFFS];
	struct session_state st;
	char topic[TOPIC_MAX];
	uint64_t wait;
	json_t *p;

	if (run->final_state_sent)
		return;
	if (session_get_state(run->s, now_ms(run), &st) < 0 || st.phase == SESSION_PHASE_IDLE)
		return;
	for (size_t i = 0; i < run->n_cuffs; i++)
		cuffs[i] = cuff_id(run->cuffs[i]);
	wait = resume_wait_ms(run, &st);
	p = msg_session_state(r->deps.ctx,
			      &(struct msg_session_state){
				      .session_id = run->id,
				      .st = &st,
				      .cuffs = cuffs,
				      .n_cuffs = run->n_cuffs,
				      .patient = run->patient[0] ? run->patient : NULL,
				      /* Unknown until the cuffs are seen deflated: none yet. */
				      .resume_wall_ms = wait && wait != UINT64_MAX
							       ? wall_ms(run) + wait
							       : 0,
			      });
	if (!p)
		return;
	/* The final state must not be coalesced away or refused at the bound. */
	if (payload_topic(r->deps.ctx, topic, sizeof(topic), "session/%s/state", run->id) == 0)
		(void)publisher_qos1(r->deps.pub, topic, p,
			       run->ended ? OUTBOX_RETAIN : OUTBOX_RETAIN | OUTBOX_DROPPABLE);
	if (r->deps.store) {
		char *text = json_dumps(p, MSG_JSON_FLAGS);

		/* A lost snapshot costs nothing: the next one replaces it. */
		if (text)
			(void)store_session_state(r->deps.store, run->id, text, 0);
		free(text);
	}
	run->state_dirty = false;
	run->final_state_sent = run->ended;
	json_decref(p);
}

static json_t *exercises_json(struct run *run)
{
	const struct session_plan *plan = session_plan(run->s);
	json_t *exercises = json_array();

	for (unsigned e = 0; exercises && e < plan->n_exercises; e++) {
		const struct session_exercise *ex = &plan->exercises[e];
		unsigned n_sets = session_exercise_n_sets(ex);
		json_t *sets = json_array();

		for (unsigned s = 0; s < n_sets && sets; s++)
			for (unsigned k = 0; k < ex->n_cuffs; k++) {
				struct set_figures f;
				int r = session_set_figures(run->s, e, s, k, &f);

				if (r != -ENOENT)
					json_array_append_new(sets, msg_set_figures(r == 0 ? &f : NULL,
										    s + 1, ex->cuffs[k]));
			}
		json_array_append_new(exercises, json_pack("{s:s, s:o}", "name", ex->name, "sets",
							   sets ? sets : json_array()));
	}
	return exercises;
}

static void publish_summary(struct run *run)
{
	struct runner *r = run->runner;
	struct session_state st = { 0 };
	char topic[TOPIC_MAX];
	struct msg_summary sum = {
		.session_id = run->id,
		.outcome = run->outcome,
		.reason = run->reason,
		.started_wall_ms = run->started_wall_ms,
		.ended_wall_ms = wall_ms(run),
		.alarm_ids = run->alarm_ids,
		.patient = run->patient[0] ? run->patient : NULL,
		.by = run->ended_by,
		.note = run->note,
	};
	json_t *p;

	(void)session_get_state(run->s, now_ms(run), &st); /* cannot fail: valid args */
	sum.inflation_s = st.inflation_s;
	store_finished_figures(run);
	p = msg_session_summary(r->deps.ctx, &sum, exercises_json(run));
	if (p && payload_topic(r->deps.ctx, topic, sizeof(topic), "session/%s/summary",
			       run->id) == 0)
		(void)publisher_qos1(r->deps.pub, topic, p, OUTBOX_RETAIN);
	if (!p)
		run_log(run, LOG_LEVEL_ERROR, "summary: out of memory, not published");
	if (r->deps.store &&
	    store_session_end(r->deps.store, run->id, run->outcome, (int64_t)wall_ms(run), 0) < 0)
		run_log(run, LOG_LEVEL_ERROR, "end not recorded");
	run_log(run, LOG_LEVEL_INFO, "%s%s%s (%.0f s under pressure)", run->outcome,
		run->reason[0] ? ": " : "", run->reason, st.inflation_s);
	json_decref(p);
}

/* The session ended: release its cuffs, publish the summary, free it soon. */
static void finish(struct run *run)
{
	run->finished = true;
	loop_timer_stop(run->runner->deps.loop, run->timer);
	for (size_t i = 0; i < run->n_cuffs; i++)
		if (cuff_session_owner(run->cuffs[i]) == run)
			cuff_detach(run->cuffs[i]);
	publish_state(run);
	publish_summary(run);
	if (run->runner->deps.cb.on_ended)
		run->runner->deps.cb.on_ended(run->id, run->outcome, run->reason,
					      run->runner->deps.user_data);
	/* Cannot fail: the hook exists since runner_new. */
	(void)loop_post_schedule(run->runner->deps.loop, run->runner->post);
}

static void rearm_timer(struct run *run)
{
	struct loop *loop = run->runner->deps.loop;
	uint64_t due, armed, now = now_ms(run);

	if (run->ended || session_next_deadline(run->s, &due) < 0) {
		loop_timer_stop(loop, run->timer);
		return;
	}
	if (loop_timer_is_active(loop, run->timer, &armed) && armed == due)
		return;
	if (loop_timer_start(loop, run->timer, due > now ? due - now : 0, 0) < 0)
		run_log(run, LOG_LEVEL_ERROR, "cannot arm the session timer");
}

/*
 * Feeds what was held (alarm notes, then an abort) and every deadline due
 * by now, executing each output, until nothing is left; then the timer,
 * the end or the state. Every input goes through here before and after.
 */
static void settle(struct run *run)
{
	uint64_t now = now_ms(run), due;

	while (!run->ended) {
		if (json_array_size(run->pending_notes) > 0) {
			json_t *id = json_incref(json_array_get(run->pending_notes, 0));

			json_array_remove(run->pending_notes, 0);
			(void)session_note_alarm(run->s, json_string_value(id), now, &run->out);
			json_decref(id);
		} else if (run->abort_pending) {
			run->abort_pending = false;
			(void)session_abort(run->s, run->abort_reason, run->abort_deflate_reason, now,
					    &run->out);
		} else if (session_next_deadline(run->s, &due) == 0 && due <= now) {
			(void)session_tick(run->s, now, &run->out);
		} else {
			break;
		}
		apply(run);
	}
	json_array_clear(run->pending_notes);
	run->abort_pending = false;
	rearm_timer(run);
	if (run->ended && !run->finished)
		finish(run);
	else if (run->state_dirty)
		publish_state(run);
}

/* The input functions of the session, all of one shape. */
struct input {
	int (*call)(struct run *run, const struct input *in, uint64_t now);
	const char *cuff;
	double mmhg;
	bool ok;
	const char *reason;
	uint8_t deflate_reason;
};

static int in_start(struct run *run, const struct input *in, uint64_t now)
{
	return session_start(run->s, now, &run->out);
}

static int in_pressure(struct run *run, const struct input *in, uint64_t now)
{
	return session_pressure(run->s, in->cuff, in->mmhg, now, &run->out);
}

static int in_lop(struct run *run, const struct input *in, uint64_t now)
{
	return session_lop_result(run->s, in->cuff, in->ok, in->mmhg, now, &run->out);
}

static int in_pause(struct run *run, const struct input *in, uint64_t now)
{
	return session_pause(run->s, now, &run->out);
}

static int in_resume(struct run *run, const struct input *in, uint64_t now)
{
	return session_resume(run->s, now, &run->out);
}

static int in_stop(struct run *run, const struct input *in, uint64_t now)
{
	return session_stop(run->s, now, &run->out);
}

static int in_abort(struct run *run, const struct input *in, uint64_t now)
{
	return session_abort(run->s, in->reason, in->deflate_reason, now, &run->out);
}

/* One input: what was due before it first, then it, then what it caused. */
static int feed(struct run *run, const struct input *in)
{
	int r;

	if (run->busy)
		return -EBUSY; /* only aborts and notes can come now; they are held */
	settle(run);
	if (run->ended)
		return -EBUSY;
	r = in->call(run, in, now_ms(run));
	apply(run);
	settle(run);
	return r;
}

/* --- inputs ------------------------------------------------------------------ */

int run_pause(struct run *run)
{
	return feed(run, &(struct input){ .call = in_pause });
}

int run_resume(struct run *run, struct command_error *err, const char *request_id)
{
	struct cuff *cuffs[SESSION_MAX_CUFFS];
	struct session_state st;
	size_t n = 0;

	/* Resuming a phase that holds pressure re-inflates the current
	 * exercise's cuffs: the safety engine must agree first. */
	if (session_get_state(run->s, now_ms(run), &st) == 0)
		n = resume_cuffs(run, &st, cuffs);
	for (size_t i = 0; i < n; i++) {
		enum limits_refusal why = LIMITS_OK;

		if (cuff_may_inflate(cuffs[i], &why) < 0) {
			uint64_t wait = why == LIMITS_REFUSE_REPERFUSION ? resume_wait_ms(run, &st) : 0;

			command_error_set(err, command_refusal_code(why), request_id, "cuff %s: %s",
					  cuff_id(cuffs[i]), limits_refusal_name(why));
			/* Rounded up: a retry at that time is not refused again. */
			if (wait && wait != UINT64_MAX)
				err->retry_after_s = (uint32_t)((wait + 999) / 1000);
			return -EPERM;
		}
	}
	return feed(run, &(struct input){ .call = in_resume });
}

void run_note_who(struct run *run, const char *by, const char *note)
{
	if (run->ended)
		return;
	snprintf(run->ended_by, sizeof(run->ended_by), "%s", by ? by : "");
	snprintf(run->note, sizeof(run->note), "%s", note ? note : "");
}

int run_stop(struct run *run)
{
	return feed(run, &(struct input){ .call = in_stop });
}

/*
 * The gateway-wide estop alarm belongs to every session the e-stop ends: its
 * summary lists it and its aborted event names it. The alarm is raised here
 * if the e-stop has not raised it yet (the command raises or re-raises the
 * same open alarm with its own message), so the id exists before the end.
 */
static void attach_estop_alarm(struct run *run)
{
	struct alarm_table *t = alarms_table(run->runner->deps.alarms);
	const struct alarm_record *open = alarm_find_open(t, "", ALARM_ESTOP);
	char id[ALARM_ID_MAX];

	if (open)
		snprintf(id, sizeof(id), "%s", open->alarm_id);
	else if (alarm_raise(t, "", NULL, ALARM_ESTOP, "emergency stop", NULL, wall_ms(run),
			     id) < 0)
		return; /* the command logs it when its own raise fails too */
	snprintf(run->estop_alarm_id, sizeof(run->estop_alarm_id), "%s", id);
	/* Once: the run ends with this abort, and the alarm has no cuff, so
	 * runner_alarm_record never adds it. */
	json_array_append_new(run->alarm_ids, json_string(id));
}

void run_abort(struct run *run, const char *reason_code, uint8_t deflate_reason)
{
	if (run->ended)
		return;
	if (deflate_reason == BFR_DEFLATE_ESTOP && !run->abort_pending)
		attach_estop_alarm(run);
	if (run->busy) {
		request_abort(run, reason_code, deflate_reason);
		return;
	}
	(void)feed(run, &(struct input){ .call = in_abort,
					  .reason = reason_code,
					  .deflate_reason = deflate_reason });
}

static struct run *run_of(struct cuff *c)
{
	struct run *run = cuff_session_owner(c);

	return run && !run->ended ? run : NULL;
}

void runner_cuff_samples(struct runner *r, struct cuff *c, const struct bfr_sample *samples,
			 size_t n)
{
	struct run *run = run_of(c);

	for (size_t i = 0; run && !run->ended && i < n; i++) {
		/* The session times on real pressures only; the safety engine has
		 * seen the others already. */
		if (!isfinite(samples[i].pressure_mmhg) || samples[i].pressure_mmhg < 0)
			continue;
		(void)feed(run, &(struct input){ .call = in_pressure,
						  .cuff = cuff_id(c),
						  .mmhg = samples[i].pressure_mmhg });
	}
}

void runner_cuff_safety_deflate(struct runner *r, struct cuff *c, const char *why,
				uint8_t deflate_reason)
{
	struct run *run = run_of(c);

	/* A safety DEFLATE ends the cuff's session: it must not re-inflate. */
	if (run)
		run_abort(run, why, deflate_reason);
}

void runner_cuff_link_lost(struct runner *r, struct cuff *c)
{
	struct run *run = run_of(c);

	if (run)
		run_abort(run, "link_lost", BFR_DEFLATE_SAFETY);
}

void runner_cuff_lop_result(struct runner *r, struct cuff *c, bool ok, double lop_mmhg)
{
	struct run *run = run_of(c);

	if (run)
		(void)feed(run, &(struct input){
					.call = in_lop, .cuff = cuff_id(c), .ok = ok, .mmhg = lop_mmhg });
}

void runner_cuff_target_failed(struct runner *r, struct cuff *c, const char *why)
{
	struct run *run = run_of(c);

	if (run)
		run_abort(run, why, BFR_DEFLATE_NORMAL);
}

void runner_alarm_record(struct runner *r, const struct alarm_record *rec)
{
	struct cuff *c = rec->cuff[0] ? find_cuff(r, rec->cuff) : NULL;
	struct run *run = c ? cuff_session_owner(c) : NULL;
	size_t i;
	json_t *v;

	if (!run || rec->state != ALARM_STATE_ACTIVE || rec->acked_at_ms != 0 ||
	    strcmp(rec->session_id, run->id) != 0)
		return;
	json_array_foreach(run->alarm_ids, i, v)
		if (strcmp(json_string_value(v), rec->alarm_id) == 0)
			return;
	json_array_append_new(run->alarm_ids, json_string(rec->alarm_id));
	if (run->ended)
		return;
	/* Noted after the current batch or at the run's next input. */
	json_array_append_new(run->pending_notes, json_string(rec->alarm_id));
	(void)loop_post_schedule(r->deps.loop, r->post);
}

static void on_timer(struct loop *loop, uint64_t id, void *user_data)
{
	settle(user_data);
}

/* --- start ---------------------------------------------------------------------- */

static int check_cuff(struct runner *r, const struct session_exercise *ex, const char *id,
		      struct command_error *err, const char *request_id)
{
	struct cuff *c = find_cuff(r, id);
	enum limits_refusal why = LIMITS_OK;
	const struct limits *lim;
	int64_t age;
	double lop, target;

	if (!c) {
		command_error_set(err, CMD_ERR_UNKNOWN_CUFF, request_id, "cuff %s: no such cuff",
				  id);
		return -ENOENT;
	}
	if (cuff_busy(c)) {
		struct run *owner = cuff_session_owner(c);

		command_error_set(err, CMD_ERR_CUFF_BUSY, request_id, "cuff %s: already in session %s",
				  id, owner ? owner->id : "(LOP measurement)");
		return -EBUSY;
	}
	if (cuff_may_inflate(c, &why) < 0) {
		command_error_set(err, command_refusal_code(why), request_id, "cuff %s: %s", id,
				  limits_refusal_name(why));
		return -EPERM;
	}
	lim = cuff_limits(c);
	lop = cuff_lop(c, &age);
	if (limits_check_lop(lim, lop, age, &why) == 0) {
		if (limits_check_prescription(lim, lop, age, ex->pct_lop, &target, &why) < 0) {
			command_error_set(err, command_refusal_code(why), request_id,
					  "cuff %s: %u %% of LOP %.0f mmHg: %s", id, ex->pct_lop,
					  lop, limits_refusal_name(why));
			return -EPERM;
		}
	} else if (ex->pct_lop > lim->max_pct_lop) {
		command_error_set(err, CMD_ERR_LIMIT_EXCEEDED, request_id,
				  "cuff %s: pct_lop %u is above this cuff's limit of %.0f %%", id,
				  ex->pct_lop, lim->max_pct_lop);
		return -EPERM;
	}
	return 0;
}

/* Ramp up and deflation of one inflation, on top of its sets (SR-26). */
static uint64_t inflation_overhead_ms(const struct runner *r)
{
	struct session_config def;

	session_config_default(&def);
	return (uint64_t)def.ramp_ms + r->deps.deflate_timeout_ms;
}

/*
 * SR-26: the time limits a plan would meet, checked before it is accepted,
 * so that every accepted plan can run to its end: the longest continuous
 * inflation against max_inflation_s, the cuff's inflation over the whole
 * session against session_total_s, and the deflated time between two of its
 * exercises against min_reperfusion_s.
 */
static int check_plan_times(struct runner *r, const struct session_plan *plan, struct cuff *c,
			    struct command_error *err, const char *request_id)
{
	const struct limits *lim = cuff_limits(c);
	struct session_plan_load load;

	if (session_plan_load(plan, cuff_id(c), inflation_overhead_ms(r), &load) < 0) {
		command_error_set(err, CMD_ERR_BAD_REQUEST, request_id, "the plan is not valid");
		return -EINVAL;
	}
	if (load.longest_inflation_ms > (uint64_t)lim->max_inflation_s * 1000) {
		command_error_set(err, CMD_ERR_LIMIT_EXCEEDED, request_id,
				  "plan.exercises[%d]: cuff %s would stay inflated %.0f s (ramp and "
				  "deflation included), above its max_inflation_s of %u s",
				  load.longest_exercise, cuff_id(c),
				  (double)load.longest_inflation_ms / 1000.0, lim->max_inflation_s);
		return -EPERM;
	}
	if (load.total_inflation_ms > (uint64_t)lim->session_total_s * 1000) {
		command_error_set(err, CMD_ERR_SESSION_TOTAL, request_id,
				  "cuff %s would be inflated %.0f s in this session (ramps and "
				  "deflations included), above its session_total_s of %u s",
				  cuff_id(c), (double)load.total_inflation_ms / 1000.0,
				  lim->session_total_s);
		return -EPERM;
	}
	if (load.shortest_reperfusion_ms < (uint64_t)lim->min_reperfusion_s * 1000) {
		command_error_set(err, CMD_ERR_REPERFUSION, request_id,
				  "plan.exercises[%d].reperfusion_s: cuff %s would be deflated only "
				  "%.0f s before its next exercise, below its min_reperfusion_s of %u s",
				  load.reperfusion_exercise, cuff_id(c),
				  (double)load.shortest_reperfusion_ms / 1000.0, lim->min_reperfusion_s);
		return -EPERM;
	}
	return 0;
}

static void run_free(struct run *run)
{
	if (!run)
		return;
	loop_timer_free(run->runner->deps.loop, run->timer);
	session_free(run->s);
	json_decref(run->alarm_ids);
	json_decref(run->pending_notes);
	free(run);
}

static int add_cuff(struct run *run, struct cuff *c)
{
	for (size_t i = 0; i < run->n_cuffs; i++)
		if (run->cuffs[i] == c)
			return 0;
	if (run->n_cuffs == RUN_MAX_CUFFS)
		return -E2BIG;
	run->cuffs[run->n_cuffs++] = c;
	return 0;
}

static void record_begin(struct run *run, const struct command *cmd)
{
	struct store *store = run->runner->deps.store;
	json_t *pj;
	char *text;

	if (!store)
		return;
	pj = msg_plan(&cmd->plan);
	text = pj ? json_dumps(pj, MSG_JSON_FLAGS) : NULL;
	if (!text || store_session_begin(store, run->id, text,
					 cmd->has_patient ? cmd->patient : NULL,
					 (int64_t)run->started_wall_ms, 0) < 0)
		run_log(run, LOG_LEVEL_ERROR, "start not recorded");
	free(text);
	json_decref(pj);
}

int runner_start(struct runner *r, const struct command *cmd, struct command_error *err,
		 char *session_id_out)
{
	const struct session_plan *plan = &cmd->plan;
	struct session_config scfg;
	struct run *run = NULL;
	int rc;

	/* At its bound the outbox still takes every event: only no new session. */
	if (publisher_outbox_full(r->deps.pub)) {
		command_error_set(err, CMD_ERR_OUTBOX_FULL, cmd->request_id,
				  "the outbox is full of messages the broker has not taken: no new "
				  "session until it drains; running sessions go on");
		return -ENOSPC;
	}
	for (unsigned e = 0; e < plan->n_exercises; e++)
		for (unsigned k = 0; k < plan->exercises[e].n_cuffs; k++) {
			rc = check_cuff(r, &plan->exercises[e], plan->exercises[e].cuffs[k], err,
					cmd->request_id);
			if (rc < 0)
				return rc;
			rc = check_plan_times(r, plan, find_cuff(r, plan->exercises[e].cuffs[k]), err,
					      cmd->request_id);
			if (rc < 0)
				return rc;
		}
	if (r->n_runs == r->cap_runs) {
		size_t cap = r->cap_runs ? r->cap_runs * 2 : 4;
		struct run **v = realloc(r->runs, cap * sizeof(*v));

		if (!v)
			goto nomem;
		r->runs = v;
		r->cap_runs = cap;
	}
	run = calloc(1, sizeof(*run));
	if (!run)
		goto nomem;
	run->runner = r; /* first: run_free needs it */
	run->alarm_ids = json_array();
	run->pending_notes = json_array();
	if (!run->alarm_ids || !run->pending_notes ||
	    loop_timer_new(r->deps.loop, on_timer, run, &run->timer) < 0)
		goto nomem;
	snprintf(run->id, sizeof(run->id), "s%s-%llu", r->deps.ctx->boot,
		 (unsigned long long)++r->session_counter);
	session_config_default(&scfg);
	scfg.deflate_timeout_ms = r->deps.deflate_timeout_ms;
	scfg.lop_timeout_ms = RUN_LOP_TIMEOUT_MS;
	/* "Deflated" is the safety engine's (SR-08): the session's reperfusion
	 * phase starts on the same sample as the engine's reperfusion clock. */
	for (unsigned e = 0; e < plan->n_exercises; e++)
		for (unsigned k = 0; k < plan->exercises[e].n_cuffs; k++) {
			double below = cuff_limits(find_cuff(r, plan->exercises[e].cuffs[k]))
					       ->deflated_below_mmhg;

			if (below < scfg.deflated_mmHg)
				scfg.deflated_mmHg = below;
		}
	rc = session_new(run->id, plan, &scfg, &run->s);
	if (rc < 0) {
		command_error_set(err, rc == -ENOMEM ? CMD_ERR_INTERNAL : CMD_ERR_BAD_REQUEST,
				  cmd->request_id, "the plan was refused by the session engine");
		goto fail;
	}
	for (unsigned e = 0; e < plan->n_exercises; e++)
		for (unsigned k = 0; k < plan->exercises[e].n_cuffs; k++) {
			struct cuff *c = find_cuff(r, plan->exercises[e].cuffs[k]);
			enum limits_refusal why;
			int64_t age;
			double lop = cuff_lop(c, &age);

			(void)add_cuff(run, c); /* RUN_MAX_CUFFS holds every cuff of a plan */
			/* A valid LOP skips the measurement; -ERANGE cannot happen after
			 * limits_check_lop. */
			if (limits_check_lop(cuff_limits(c), lop, age, &why) == 0)
				(void)session_set_lop(run->s, cuff_id(c), lop);
		}
	run->started_wall_ms = wall_ms(run);
	if (cmd->has_patient)
		snprintf(run->patient, sizeof(run->patient), "%s", cmd->patient);
	r->runs[r->n_runs++] = run;
	for (size_t i = 0; i < run->n_cuffs; i++)
		cuff_attach(run->cuffs[i], run->id, run);
	record_begin(run, cmd);
	run_log(run, LOG_LEVEL_INFO, "started: %u exercises on %zu cuffs", plan->n_exercises,
		run->n_cuffs);
	snprintf(session_id_out, SESSION_ID_BUF, "%s", run->id);
	(void)feed(run, &(struct input){ .call = in_start });
	return 0;
nomem:
	command_error_set(err, CMD_ERR_INTERNAL, cmd->request_id, "out of memory");
	rc = -ENOMEM;
fail:
	run_free(run);
	return rc;
}

struct run *runner_find(struct runner *r, const char *session_id)
{
	for (size_t i = 0; i < r->n_runs; i++)
		if (!r->runs[i]->ended && strcmp(r->runs[i]->id, session_id) == 0)
			return r->runs[i];
	return NULL;
}

void runner_stop_all(struct runner *r)
{
	for (size_t i = 0; i < r->n_runs; i++)
		if (!r->runs[i]->ended)
			(void)run_stop(r->runs[i]);
}

size_t runner_active(const struct runner *r, const char **ids, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < r->n_runs; i++)
		if (!r->runs[i]->ended) {
			if (n < max)
				ids[n] = r->runs[i]->id;
			n++;
		}
	return n;
}

void runner_publish_states(struct runner *r)
{
	for (size_t i = 0; i < r->n_runs; i++)
		publish_state(r->runs[i]);
}

/* After a batch of events: notes that waited are fed, ended runs freed. */
static void on_post(struct loop *loop, void *user_data)
{
	struct runner *r = user_data;
	size_t kept = 0;

	for (size_t i = 0; i < r->n_runs; i++)
		if (!r->runs[i]->busy && json_array_size(r->runs[i]->pending_notes) > 0)
			settle(r->runs[i]);
	for (size_t i = 0; i < r->n_runs; i++) {
		struct run *run = r->runs[i];

		if (run->finished)
			run_free(run);
		else
			r->runs[kept++] = run;
	}
	r->n_runs = kept;
}

int runner_new(const struct runner_deps *deps, struct runner **out)
{
	struct runner *r = calloc(1, sizeof(*r));
	int rc;

	if (!r)
		return -ENOMEM;
	r->deps = *deps;
	rc = loop_post_new(deps->loop, on_post, r, &r->post);
	if (rc < 0) {
		free(r);
		return rc;
	}
	*out = r;
	return 0;
}

void runner_free(struct runner *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_runs; i++)
		run_free(r->runs[i]);
	free(r->runs);
	loop_post_free(r->deps.loop, r->post);
	free(r);
}

int runner_check_plan(struct runner *r, const struct session_plan *plan,
		      struct command_error *err, const char *request_id)
{
	for (unsigned e = 0; e < plan->n_exercises; e++)
		for (unsigned k = 0; k < plan->exercises[e].n_cuffs; k++) {
			const struct session_exercise *ex = &plan->exercises[e];
			struct cuff *c = find_cuff(r, ex->cuffs[k]);
			enum limits_refusal why = LIMITS_OK;
			const struct limits *lim;
			double lop, target;
			int64_t age;
			int rc;

			if (!c) {
				command_error_set(err, CMD_ERR_UNKNOWN_CUFF, request_id,
						  "plan.exercises[%u].cuffs[%u]: no such cuff %s", e, k,
						  ex->cuffs[k]);
				return -ENOENT;
			}
			lim = cuff_limits(c);
			if (ex->pct_lop > lim->max_pct_lop) {
				command_error_set(err, CMD_ERR_LIMIT_EXCEEDED, request_id,
						  "plan.exercises[%u].pct_lop: %u is above cuff %s's "
						  "limit of %.0f %%",
						  e, ex->pct_lop, ex->cuffs[k], lim->max_pct_lop);
				return -EPERM;
			}
			lop = cuff_lop(c, &age);
			if (limits_check_lop(lim, lop, age, &why) == 0 &&
			    limits_check_prescription(lim, lop, age, ex->pct_lop, &target, &why) < 0) {
				command_error_set(err, command_refusal_code(why), request_id,
						  "cuff %s: %u %% of LOP %.0f mmHg: %s", ex->cuffs[k],
						  ex->pct_lop, lop, limits_refusal_name(why));
				return -EPERM;
			}
			rc = check_plan_times(r, plan, c, err, request_id);
			if (rc < 0)
				return rc;
		}
	return 0;
}

int run_state(struct run *run, struct session_state *out)
{
	return session_get_state(run->s, now_ms(run), out);
}
