/* cuff.c - see cuff.h. */
#include "cuff.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safety.h"

struct cuff {
	struct cuff_deps deps;
	size_t index;
	const struct config_cuff *cfg;
	struct cuff_link *link;
	struct safety_state safety;
	struct limits limits;
	struct cuff_callbacks cb;
	void *user_data;

	/* The link's previous state, only to see edges in on_link_state. */
	enum cuff_link_state prev_link;
	char link_error[160];
	bool was_ready;  /* the link reached READY at least once */
	bool fresh_link; /* READY and no sample seen since */

	bool have_sample;
	uint64_t sample_at_ms;   /* when the latest sample arrived (monotonic) */
	double pressure, reported_target, pulse;
	uint16_t status_bits;
	struct gatt_device_info info; /* read at connect; "" until then */
	bool have_status;
	struct bfr_status status;
	int battery_pct;         /* -1 unknown */
	double commanded_target; /* last SET_TARGET sent, 0 after DEFLATE */
	bool lop_measuring;      /* MEASURE_LOP outside a session in progress */
	double lop_search_ceiling; /* max_search_mmHg of the MEASURE_LOP in flight */

	const char *session_id; /* the attached session's, NULL when none */
	void *session_owner;

	uint64_t safety_timer;
	uint64_t deflate_logged_ms;

	/* The button: held since button_since (the samples' clock); a long
	 * press is reported once per press. */
	bool button_down;
	bool button_long_sent;
	uint32_t button_since;
};

/* Button presses seen in one notification, reported after it. */
#define CUFF_PRESSES_MAX 4

/* A safety DEFLATE seen while feeding the engine, reported after the batch. */
struct deflate_note {
	bool seen;
	uint8_t reason;
	const char *why;
};

const char *cuff_id(const struct cuff *c)
{
	return c->cfg->id;
}

struct cuff *cuff_find(struct cuff *const *cuffs, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(cuffs[i]->cfg->id, id) == 0)
			return cuffs[i];
	return NULL;
}

size_t cuff_index(const struct cuff *c)
{
	return c->index;
}

const struct config_cuff *cuff_config(const struct cuff *c)
{
	return c->cfg;
}

const struct limits *cuff_limits(const struct cuff *c)
{
	return &c->limits;
}

static uint64_t now_ms(const struct cuff *c)
{
	return loop_now_ms(c->deps.loop);
}

static uint64_t wall_ms(const struct cuff *c)
{
	return payload_wall_ms(c->deps.ctx);
}

static void changed(struct cuff *c, bool urgent)
{
	if (c->cb.on_changed)
		c->cb.on_changed(c, urgent, c->user_data);
}

static bool unacked_high(const struct cuff *c)
{
	return alarm_has_unacked_high(c->deps.alarms, c->cfg->id);
}

/* --- the safety engine ----------------------------------------------------- */

static void feed(struct cuff *c, const struct safety_event *ev, struct deflate_note *note,
		 enum limits_refusal *refusal);

static void on_safety_timer(struct loop *loop, uint64_t id, void *user_data)
{
	struct cuff *c = user_data;
	struct safety_event ev = { .type = SAFETY_EV_TICK };
	struct deflate_note note = { 0 };

	feed(c, &ev, &note, NULL);
	if (note.seen && c->cb.on_safety_deflate && c->session_owner)
		c->cb.on_safety_deflate(c, note.why, note.reason, c->user_data);
}

/*
 * One timer per cuff, re-armed lazily: only when the engine's next deadline
 * is earlier than the armed one. A deadline that moved later (a fresh sample
 * pushed "telemetry lost" out) just costs one early tick that finds nothing
 * due, instead of a heap update on every one of 50 samples a second.
 */
static void rearm_safety(struct cuff *c)
{
	uint64_t due = safety_next_deadline(&c->safety);
	uint64_t now = now_ms(c), armed;

	if (due == SAFETY_NEVER)
		return;
	if (loop_timer_is_active(c->deps.loop, c->safety_timer, &armed) && armed <= due)
		return;
	if (loop_timer_start(c->deps.loop, c->safety_timer, due > now ? due - now : 0, 0) < 0)
		cuff_log(c, LOG_LEVEL_ERROR, "cannot arm the safety timer");
}

static void write_deflate(struct cuff *c, uint8_t reason)
{
	struct bfr_cp_request req = { .opcode = BFR_CP_DEFLATE, .deflate_reason = reason };
	int r = cuff_link_send_cp(c->link, &req);

	if (r < 0 && r != -ENOTCONN)
		cuff_log(c, LOG_LEVEL_ERROR, "DEFLATE not sent: %s", strerror(-r));
	c->commanded_target = 0;
}

/* The end reason a session gets when the engine deflates its cuff. */
static const char *deflate_why(enum alarm_code cause)
{
	switch (cause) {
	case ALARM_SESSION_INFLATION_TOTAL:
		return "session_total"; /* the refusal's name for the same limit */
	case ALARM_CODE_COUNT:
		return "safety";
	default:
		return alarm_code_name(cause);
	}
}

static void note_end(struct deflate_note *note, const char *why, uint8_t reason)
{
	if (!note || note->seen)
		return;
	note->seen = true;
	note->why = why;
	note->reason = reason;
}

static void execute(struct cuff *c, const struct safety_action *acts, size_t n,
		    struct deflate_note *note)
{
	for (size_t i = 0; i < n; i++) {
		const struct safety_action *a = &acts[i];

		switch (a->type) {
		case SAFETY_ACT_DEFLATE:
			write_deflate(c, a->deflate_reason);
			/* Once a second at most: the engine repeats it on every sample. */
			if (now_ms(c) >= c->deflate_logged_ms + 1000) {
				c->deflate_logged_ms = now_ms(c);
				cuff_log(c, LOG_LEVEL_WARN, "safety DEFLATE (reason %u)",
					 (unsigned)a->deflate_reason);
			}
			break;
		case SAFETY_ACT_RAISE: {
			char text[ALARM_MSG_MAX];
			int r;

			alarm_describe(a->code, &a->values, a->message, text, sizeof(text));
			r = alarm_raise(c->deps.alarms, c->cfg->id, c->session_id, a->code, text,
					&a->values, wall_ms(c), NULL);

			if (r < 0)
				cuff_log(c, LOG_LEVEL_ERROR, "alarm %s not raised: %s",
					 alarm_code_name(a->code), strerror(-r));
			break;
		}
		case SAFETY_ACT_CLEAR:
			/* Valid arguments: clearing cannot fail. */
			(void)alarm_condition_cleared(c->deps.alarms, c->cfg->id, a->code, wall_ms(c));
			break;
		case SAFETY_ACT_REFUSE:
			break; /* answered by the caller of INFLATE_CMD */
		case SAFETY_ACT_RELEASE:
			cuff_link_release(c->link);
			break;
		}
	}
	for (size_t i = 0; i < n; i++) {
		/* A re-sent routine DEFLATE (a slowly venting cuff) ends nothing. */
		if (acts[i].type == SAFETY_ACT_DEFLATE && acts[i].deflate_reason != BFR_DEFLATE_NORMAL)
			note_end(note, deflate_why(acts[i].cause), acts[i].deflate_reason);
		/* The cuff dropped its target itself (SR-14): the exercise is over. */
		if (acts[i].type == SAFETY_ACT_RAISE && acts[i].code == ALARM_SUPERVISION_DEFLATED)
			note_end(note, "supervision_deflated", BFR_DEFLATE_NORMAL);
	}
}

/*
 * Feeds one event and executes its actions at once. *refusal (may be NULL)
 * gets the reason of a REFUSE; note (may be NULL) records a safety DEFLATE
 * for the caller to report once it is done with the engine.
 */
static void feed(struct cuff *c, const struct safety_event *ev, struct deflate_note *note,
		 enum limits_refusal *refusal)
{
	struct safety_action acts[SAFETY_MAX_ACTIONS];
	size_t n = 0;
	int r = safety_handle(&c->safety, ev, now_ms(c), acts, SAFETY_MAX_ACTIONS, &n);

	if (r < 0) {
		cuff_log(c, LOG_LEVEL_ERROR, "safety event %s refused: %s",
			 safety_event_name(ev->type), strerror(-r));
		if (refusal)
			*refusal = LIMITS_REFUSE_SAFETY_CONDITION;
		return;
	}
	execute(c, acts, n, note);
	rearm_safety(c);
	for (size_t i = 0; refusal && i < n; i++)
		if (acts[i].type == SAFETY_ACT_REFUSE) {
			*refusal = acts[i].refusal;
			return;
		}
}

/* One event, its safety DEFLATE (if any) reported at once. */
static void feed_and_report(struct cuff *c, const struct safety_event *ev)
{
	struct deflate_note note = { 0 };

	feed(c, ev, &note, NULL);
	if (note.seen && c->cb.on_safety_deflate && c->session_owner)
		c->cb.on_safety_deflate(c, note.why, note.reason, c->user_data);
}

/* A question (INFLATE_CMD, LOP_MEASURE): 0, or -EPERM with *why. */
static int ask(struct cuff *c, const struct safety_event *ev, enum limits_refusal *why)
{
	enum limits_refusal refusal = LIMITS_OK;

	feed(c, ev, NULL, &refusal);
	if (refusal == LIMITS_OK)
		return 0;
	if (why)
		*why = refusal;
	return -EPERM;
}

/* --- commands ---------------------------------------------------------------- */

void cuff_restore_lop(struct cuff *c, double lop_mmhg, uint64_t age_ms)
{
	struct safety_event ev = { .type = SAFETY_EV_LOP_SET };

	ev.lop.lop_mmhg = lop_mmhg;
	ev.lop.age_ms = age_ms;
	ev.lop.search_ceiling_mmhg = NAN;
	feed_and_report(c, &ev);
	changed(c, true);
}

double cuff_lop(const struct cuff *c, int64_t *age_s)
{
	return safety_lop(&c->safety, now_ms(c), age_s);
}

int cuff_may_inflate(const struct cuff *c, enum limits_refusal *why)
{
	return safety_may_inflate(&c->safety, now_ms(c), unacked_high(c), why);
}

uint64_t cuff_reperfusion_wait_ms(const struct cuff *c)
{
	uint64_t ends = safety_reperfusion_ends(&c->safety), now = now_ms(c);

	if (ends == SAFETY_NEVER)
		return UINT64_MAX;
	return ends > now ? ends - now : 0;
}

int cuff_check_target(const struct cuff *c, double target_mmhg, enum limits_refusal *why)
{
	return safety_check_target(&c->safety, now_ms(c), target_mmhg, unacked_high(c), why);
}

int cuff_set_target(struct cuff *c, double target_mmhg, uint16_t ramp_ms,
		    enum limits_refusal *why)
{
	struct safety_event ev = { .type = SAFETY_EV_INFLATE_CMD };
	struct bfr_cp_request req = { .opcode = BFR_CP_SET_TARGET };
	int r;

	ev.inflate.target_mmhg = target_mmhg;
	ev.inflate.unacked_high = unacked_high(c);
	r = ask(c, &ev, why);
	if (r < 0)
		return r;
	req.set_target.mmhg = target_mmhg;
	req.set_target.ramp_ms = ramp_ms;
	r = cuff_link_send_cp(c->link, &req);
	if (r == 0)
		c->commanded_target = target_mmhg;
	changed(c, true);
	return r;
}

void cuff_deflate(struct cuff *c, uint8_t reason, bool rest)
{
	struct safety_event ev = { .type = SAFETY_EV_DEFLATE_CMD };

	/* One DEFLATE in flight: the engine re-sends a tracked one by itself. */
	if (!safety_deflate_covers(&c->safety, reason))
		write_deflate(c, reason);
	c->commanded_target = 0;
	ev.deflate.reason = reason;
	ev.deflate.rest = rest;
	feed_and_report(c, &ev);
	changed(c, true);
}

int cuff_measure_lop(struct cuff *c, enum limits_refusal *why)
{
	struct safety_event ev = { .type = SAFETY_EV_LOP_MEASURE };
	struct bfr_cp_request req = { .opcode = BFR_CP_MEASURE_LOP };
	int r;

	ev.lop_measure.unacked_high = unacked_high(c);
	r = ask(c, &ev, why);
	if (r < 0)
		return r;
	req.max_search_mmhg = c->limits.max_pressure_mmhg;
	c->lop_search_ceiling = req.max_search_mmhg;
	r = cuff_link_send_cp(c->link, &req);
	if (r < 0) {
		struct safety_event fail = { .type = SAFETY_EV_CP_RESULT };

		/* Tell the engine the measurement is not running after all. */
		fail.cp_result.opcode = BFR_CP_MEASURE_LOP;
		fail.cp_result.result = BFR_RESULT_FAILED;
		feed_and_report(c, &fail);
		if (why)
			*why = LIMITS_REFUSE_LINK_DOWN;
		return r;
	}
	c->lop_measuring = true;
	changed(c, true);
	return 0;
}

int cuff_cue(struct cuff *c, enum bfr_cue cue)
{
	struct bfr_cp_request req = { .opcode = BFR_CP_CUE, .cue = cue };

	return cuff_link_send_cp(c->link, &req);
}

int cuff_identify(struct cuff *c)
{
	struct bfr_cp_request req = { .opcode = BFR_CP_IDENTIFY };

	return cuff_link_send_cp(c->link, &req);
}

void cuff_deflate_for_shutdown(struct cuff *c)
{
	if (safety_inflated(&c->safety) || (isfinite(c->pressure) && c->pressure > 10))
		write_deflate(c, BFR_DEFLATE_NORMAL);
}

void cuff_attach(struct cuff *c, const char *session_id, void *owner)
{
	struct safety_event ev = { .type = SAFETY_EV_SESSION_START };

	c->session_id = session_id;
	c->session_owner = owner;
	feed_and_report(c, &ev);
	changed(c, true);
}

void cuff_detach(struct cuff *c)
{
	struct safety_event ev = { .type = SAFETY_EV_SESSION_END };

	c->session_id = NULL;
	c->session_owner = NULL;
	feed_and_report(c, &ev);
	changed(c, true);
}

void *cuff_session_owner(const struct cuff *c)
{
	return c->session_owner;
}

bool cuff_busy(const struct cuff *c)
{
	return c->session_owner || c->lop_measuring;
}

void cuff_read(const struct cuff *c, struct cuff_reading *out)
{
	out->link = cuff_link_get_state(c->link);
	out->link_error = c->link_error;
	out->was_ready = c->was_ready;
	out->have_sample = c->have_sample;
	out->pressure = c->pressure;
	out->reported_target = c->reported_target;
	out->pulse = c->pulse;
	out->status_bits = c->status_bits;
	out->have_status = c->have_status;
	out->status = c->status;
	out->battery_pct = c->battery_pct;
	out->lop_mmhg = cuff_lop(c, &out->lop_age_s);
	out->lop_age_ms = isnan(out->lop_mmhg) ? -1 : (int64_t)now_ms(c) - c->safety.lop_at_ms;
	out->session_id = c->session_id;
	out->lop_measuring = c->lop_measuring;
	out->measuring_lop = c->safety.measuring_lop;
	out->sample_age_ms = c->have_sample ? now_ms(c) - c->sample_at_ms : 0;
	out->info = &c->info;
}

/* --- link callbacks -------------------------------------------------------- */

/* What the Cuff Status says: the engine judges battery and faults. */
static void take_status(struct cuff *c, const struct bfr_status *status)
{
	struct safety_event ev = { .type = SAFETY_EV_STATUS };

	c->status = *status;
	c->have_status = true;
	c->battery_pct = status->battery_pct;
	ev.status.state = status->state;
	ev.status.faults = status->faults;
	ev.status.battery_pct = status->battery_pct;
	feed_and_report(c, &ev);
}

/* The word a state message uses for the link: a change of it is news. */
static const char *link_word(enum cuff_link_state s)
{
	switch (s) {
	case CUFF_LINK_READY:
		return "connected";
	case CUFF_LINK_CONNECTING:
	case CUFF_LINK_DISCOVERING:
		return "connecting";
	default:
		return "disconnected";
	}
}

static void on_link_state(struct cuff_link *link, enum cuff_link_state state, const char *error,
			  void *user_data)
{
	struct cuff *c = user_data;
	enum cuff_link_state old = c->prev_link;

	c->prev_link = state;
	if (error)
		snprintf(c->link_error, sizeof(c->link_error), "%s", error);
	else if (state == CUFF_LINK_READY)
		c->link_error[0] = '\0';
	if (old == CUFF_LINK_READY && state != CUFF_LINK_READY) {
		struct safety_event ev = { .type = SAFETY_EV_LINK_DOWN };

		cuff_log(c, LOG_LEVEL_WARN, "link lost%s%s", error ? ": " : "", error ? error : "");
		c->lop_measuring = false;
		c->button_down = false; /* a press must be seen whole on one link */
		c->commanded_target = 0; /* the cuff deflates itself without keepalives */
		feed_and_report(c, &ev);
		if (c->cb.on_link_lost)
			c->cb.on_link_lost(c, c->user_data);
	} else if (state != old && state != CUFF_LINK_READY) {
		cuff_log(c, LOG_LEVEL_INFO, "%s%s%s", cuff_link_state_name(state), error ? ": " : "",
			 error ? error : "");
	}
	if (strcmp(link_word(old), link_word(state)) != 0 || error)
		changed(c, true);
}

static void on_link_ready(struct cuff_link *link, const struct bfr_features *features,
			  const struct bfr_status *status, const struct gatt_device_info *info,
			  void *user_data)
{
	struct cuff *c = user_data;
	struct safety_event ev = { .type = SAFETY_EV_LINK_UP };
	bool leg = features->limb == BFR_LIMB_LEG;

	c->was_ready = true;
	c->fresh_link = true;
	c->info = *info;
	cuff_log(c, LOG_LEVEL_INFO,
		 "ready (%s %s, serial %s, fw %s; %s, %u mm, max %.0f mmHg, %u Hz)",
		 info->manufacturer, info->model, info->serial, info->firmware, leg ? "leg" : "arm",
		 features->cuff_width_mm, features->max_pressure_mmhg, features->sample_rate_hz);
	if (leg != (c->cfg->limb == CONFIG_LIMB_LEG))
		cuff_log(c, LOG_LEVEL_WARN,
			 "the cuff reports a %s cuff but is configured as %s; the configured (%s) "
			 "limits apply",
			 leg ? "leg" : "arm", config_limb_name(c->cfg->limb),
			 config_limb_name(c->cfg->limb));
	feed_and_report(c, &ev);
	/* The Status read at connect: battery and faults are known from here on
	 * (SR-16, SR-25), before anything may inflate. */
	take_status(c, status);
	changed(c, true);
}

/*
 * Edges of the button bit over a notification's samples: a long press
 * when it has been held CUFF_BUTTON_LONG_MS, a short one when it is let go
 * before. The samples' own millisecond clock times it, so how the radio
 * batched them does not matter. Returns how many presses went to out.
 */
static size_t button_presses(struct cuff *c, const struct bfr_sample *samples, size_t n,
			     bool out[CUFF_PRESSES_MAX])
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		bool held = samples[i].status & BFR_ST_BUTTON;

		if (held && !c->button_down) {
			c->button_down = true;
			c->button_long_sent = false;
			c->button_since = samples[i].t_ms;
		} else if (held && !c->button_long_sent &&
			   (uint32_t)(samples[i].t_ms - c->button_since) >= CUFF_BUTTON_LONG_MS) {
			c->button_long_sent = true;
			if (k < CUFF_PRESSES_MAX)
				out[k++] = true;
		} else if (!held && c->button_down) {
			c->button_down = false;
			if (!c->button_long_sent && k < CUFF_PRESSES_MAX)
				out[k++] = false;
		}
	}
	return k;
}

static void on_samples(struct cuff_link *link, const struct bfr_sample *samples, size_t n,
		       void *user_data)
{
	struct cuff *c = user_data;
	struct deflate_note note = { 0 };
	bool presses[CUFF_PRESSES_MAX];
	size_t n_presses;

	if (n == 0)
		return;
	/* A cuff inflated when we connect, with nothing of ours inflating it
	 * (after a restart, or inflated by someone else): the engine deflates
	 * it (SR-10); say so, this is worth a look. */
	if (c->fresh_link) {
		c->fresh_link = false;
		if (isfinite(samples[0].pressure_mmhg) &&
		    samples[0].pressure_mmhg > BFR_SUPERVISION_ACTIVE_ABOVE_MMHG &&
		    !c->session_owner && c->commanded_target <= 0)
			cuff_log(c, LOG_LEVEL_WARN, "found inflated at %.0f mmHg with no session: "
						    "deflating",
				 samples[0].pressure_mmhg);
	}
	/* 1. Safety sees every sample of the notification before anything else;
	 *    its DEFLATE is written inside feed(). */
	for (size_t i = 0; i < n; i++) {
		struct safety_event ev = { .type = SAFETY_EV_SAMPLE };

		ev.sample.pressure_mmhg = samples[i].pressure_mmhg;
		ev.sample.target_mmhg = samples[i].target_mmhg;
		ev.sample.status = samples[i].status;
		ev.sample.pulse_mmhg = samples[i].pulse_amplitude;
		feed(c, &ev, &note, NULL);
	}
	/* 2. The latest reading, for the published state. */
	c->have_sample = true;
	c->sample_at_ms = now_ms(c);
	c->pressure = samples[n - 1].pressure_mmhg;
	c->reported_target = samples[n - 1].target_mmhg;
	c->pulse = samples[n - 1].pulse_amplitude;
	for (size_t i = 0; i < n; i++)
		if (c->status_bits != samples[i].status) {
			c->status_bits = samples[i].status;
			changed(c, false);
		}
	n_presses = button_presses(c, samples, n, presses);
	/* 3. Then the owner: a safety abort first, then timing and telemetry,
	 *    then what the patient asked for with the button. */
	if (note.seen && c->cb.on_safety_deflate && c->session_owner)
		c->cb.on_safety_deflate(c, note.why, note.reason, c->user_data);
	if (c->cb.on_samples)
		c->cb.on_samples(c, samples, n, c->user_data);
	for (size_t i = 0; i < n_presses && c->cb.on_button; i++) {
		cuff_log(c, LOG_LEVEL_INFO, "button: %s press", presses[i] ? "long" : "short");
		c->cb.on_button(c, presses[i], c->user_data);
	}
}

static void on_status(struct cuff_link *link, const struct bfr_status *status, void *user_data)
{
	struct cuff *c = user_data;
	bool news = !c->have_status || c->status.state != status->state ||
		    c->status.faults != status->faults || c->battery_pct != status->battery_pct;

	take_status(c, status);
	if (news)
		changed(c, true);
}

static void on_battery(struct cuff_link *link, uint8_t pct, void *user_data)
{
	struct cuff *c = user_data;
	struct safety_event ev = { .type = SAFETY_EV_BATTERY };
	bool news = c->battery_pct != pct;

	if (pct > 100)
		return;
	c->battery_pct = pct;
	ev.battery.pct = pct;
	feed_and_report(c, &ev);
	if (news)
		changed(c, false);
}

/*
 * A MEASURE_LOP result. The engine judges it (SR-15: plausible, not above
 * the search ceiling asked for); only a LOP it accepted is recorded and
 * given to the session, a rejected one keeps the last valid LOP.
 */
static void lop_result(struct cuff *c, bool ok, double lop)
{
	struct safety_event ev = { .type = SAFETY_EV_LOP_SET };

	ev.lop.lop_mmhg = ok ? lop : NAN;
	ev.lop.age_ms = 0;
	ev.lop.search_ceiling_mmhg = c->lop_search_ceiling > 0 ? c->lop_search_ceiling : NAN;
	feed_and_report(c, &ev);
	if (ok && safety_condition_present(&c->safety, ALARM_LOP_INVALID)) {
		cuff_log(c, LOG_LEVEL_WARN,
			 "LOP %.1f mmHg rejected (search ceiling %.0f mmHg, plausible %.0f..%.0f): "
			 "the last valid LOP is kept",
			 lop, c->lop_search_ceiling, c->limits.lop_min_mmhg, c->limits.lop_max_mmhg);
		ok = false;
	}
	if (ok && c->deps.store &&
	    store_lop_record(c->deps.store, c->cfg->id, c->session_id, lop, (int64_t)wall_ms(c),
			     0) < 0)
		cuff_log(c, LOG_LEVEL_WARN, "LOP %.1f mmHg not recorded (store queue full)", lop);
	c->lop_measuring = false;
	cuff_log(c, LOG_LEVEL_INFO, "LOP measurement %s (%.1f mmHg)", ok ? "done" : "failed", lop);
	if (c->cb.on_lop_result)
		c->cb.on_lop_result(c, ok, lop, c->user_data);
	changed(c, true);
}

/*
 * The cuff did not take a SET_TARGET: whatever it does now, it is not what
 * the session planned. Deflate it and let the owner end the session rather
 * than time sets against a pressure that is not there.
 */
static void target_not_reached(struct cuff *c, const char *why)
{
	if (c->commanded_target <= 0)
		return;
	cuff_deflate(c, BFR_DEFLATE_NORMAL, false);
	if (c->cb.on_target_failed)
		c->cb.on_target_failed(c, why, c->user_data);
}

static void on_cp_result(struct cuff_link *link, const struct bfr_cp_response *rsp,
			 void *user_data)
{
	struct cuff *c = user_data;
	struct safety_event ev = { .type = SAFETY_EV_CP_RESULT };

	ev.cp_result.opcode = rsp->req_opcode;
	ev.cp_result.result = rsp->result <= BFR_RESULT_LIMIT_EXCEEDED ? rsp->result
								     : BFR_RESULT_FAILED;
	feed_and_report(c, &ev);
	if (rsp->req_opcode == BFR_CP_MEASURE_LOP)
		lop_result(c, rsp->result == BFR_RESULT_SUCCESS && rsp->has_lop &&
				      isfinite(rsp->lop_mmhg),
			   rsp->lop_mmhg);
	if (rsp->result != BFR_RESULT_SUCCESS) {
		cuff_log(c, LOG_LEVEL_WARN, "%s answered %s", bfr_cp_opcode_name(rsp->req_opcode),
			 bfr_cp_result_name(rsp->result));
		if (rsp->req_opcode == BFR_CP_SET_TARGET)
			target_not_reached(c, "cuff_refused");
	}
}

static void on_cp_failed(struct cuff_link *link, uint8_t opcode, int err, const char *why,
			 void *user_data)
{
	struct cuff *c = user_data;
	struct safety_event ev = { .type = SAFETY_EV_CP_RESULT };

	cuff_log(c, LOG_LEVEL_WARN, "%s failed: %s", bfr_cp_opcode_name(opcode),
		 why ? why : strerror(-err));
	ev.cp_result.opcode = opcode;
	ev.cp_result.result = BFR_RESULT_FAILED;
	feed_and_report(c, &ev);
	if (opcode == BFR_CP_MEASURE_LOP)
		lop_result(c, false, NAN);
	else if (opcode == BFR_CP_SET_TARGET && err != -ECONNRESET)
		/* A lost link is LINK_DOWN's business (link_lost_inflated). */
		target_not_reached(c, "cuff_error");
}

static const struct cuff_link_callbacks link_callbacks = {
	.on_state = on_link_state,
	.on_ready = on_link_ready,
	.on_samples = on_samples,
	.on_status = on_status,
	.on_battery = on_battery,
	.on_cp_result = on_cp_result,
	.on_cp_failed = on_cp_failed,
};

/* --- life -------------------------------------------------------------------- */

/* The cuff's limits: compiled defaults for its limb, tightened by the config. */
static int limits_of(const struct config *cfg, const struct config_cuff *cc, struct limits *out,
		     char *err, size_t errlen)
{
	const struct config_limb_limits *ll = config_limb_limits(cfg, cc->limb);
	struct limits l;
	const struct {
		enum limits_field field;
		double value;
	} overrides[] = {
		{ LIMITS_F_MAX_PRESSURE, cc->max_pressure_mmHg },
		{ LIMITS_F_MAX_PCT_LOP, cc->max_pct_lop },
		{ LIMITS_F_SESSION_TOTAL_S, ll->session_total_s },
		{ LIMITS_F_MAX_INFLATION_S, cfg->max_inflation_s },
		{ LIMITS_F_MIN_REPERFUSION_S, cfg->min_reperfusion_s },
		{ LIMITS_F_SAMPLE_TIMEOUT_MS, cfg->sample_timeout_ms },
		{ LIMITS_F_DEFLATE_TIMEOUT_MS, cfg->deflate_timeout_ms },
		{ LIMITS_F_LOP_MAX_AGE_S, cfg->lop_max_age_s },
	};
	int r = limits_defaults(cc->limb == CONFIG_LIMB_LEG ? BFR_LIMB_LEG : BFR_LIMB_ARM, &l);

	if (r < 0)
		return r;
	for (size_t i = 0; i < sizeof(overrides) / sizeof(overrides[0]); i++) {
		r = limits_override(&l, overrides[i].field, overrides[i].value, NULL);
		if (r < 0) {
			snprintf(err, errlen,
				 "cuff %s: %s = %g would loosen the compiled %s limit; limits can "
				 "only be tightened",
				 cc->id, limits_field_name(overrides[i].field), overrides[i].value,
				 config_limb_name(cc->limb));
			return r;
		}
	}
	*out = l;
	return 0;
}

int cuff_new(const struct cuff_deps *deps, size_t index, const struct cuff_callbacks *cb,
	     void *user_data, struct cuff **out, char *err, size_t errlen)
{
	static const char *const security[] = { "low", "medium", "high" };
	const struct config_cuff *cc = &deps->cfg->cuffs[index];
	struct cuff_link_config lc = {
		.id = cc->id,
		.address = cc->address,
		.address_type = cc->address_type == CONFIG_ADDRESS_RANDOM ? "random" : "public",
		.adapter = cc->adapter,
		.security = security[deps->cfg->ble_security],
		.supervision_timeout_ms = (uint16_t)deps->cfg->supervision_timeout_ms,
		.sched = deps->sched,
	};
	struct cuff *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return -ENOMEM;
	c->deps = *deps;
	c->index = index;
	c->cfg = cc;
	if (cb)
		c->cb = *cb;
	c->user_data = user_data;
	c->battery_pct = -1;
	c->pressure = NAN;
	c->reported_target = NAN;
	c->pulse = NAN;
	r = limits_of(deps->cfg, cc, &c->limits, err, errlen);
	if (r < 0)
		goto fail;
	r = safety_init(&c->safety, &c->limits, now_ms(c));
	if (r < 0) {
		snprintf(err, errlen, "cuff %s: invalid safety limits", cc->id);
		goto fail;
	}
	r = loop_timer_new(deps->loop, on_safety_timer, c, &c->safety_timer);
	if (r < 0)
		goto fail;
	r = cuff_link_new(deps->loop, &lc, &link_callbacks, c, &c->link);
	if (r < 0) {
		snprintf(err, errlen, "cuff %s: %s", cc->id, strerror(-r));
		goto fail;
	}
	*out = c;
	return 0;
fail:
	loop_timer_free(deps->loop, c->safety_timer);
	free(c);
	return r;
}

void cuff_free(struct cuff *c)
{
	if (!c)
		return;
	loop_timer_free(c->deps.loop, c->safety_timer);
	cuff_link_free(c->link);
	free(c);
}

int cuff_start(struct cuff *c)
{
	int r = cuff_link_start(c->link);

	if (r < 0)
		cuff_log(c, LOG_LEVEL_ERROR, "cannot start: %s", strerror(-r));
	return r;
}
