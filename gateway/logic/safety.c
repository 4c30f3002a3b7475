/* safety.c - see safety.h and docs/safety.md. */
#include "safety.h"

#include <errno.h>
#include <math.h>
#include <string.h>

/* Conditions whose presence means the cuff must stay deflated. */
#define DEFLATING_CONDITIONS                                                           \
	((1u << ALARM_OVER_PRESSURE_CEILING) | (1u << ALARM_FULL_OCCLUSION) |          \
	 (1u << ALARM_INFLATION_TIME) | (1u << ALARM_TELEMETRY_LOST) |                 \
	 (1u << ALARM_LINK_LOST_INFLATED) | (1u << ALARM_DEFLATE_FAILED) |             \
	 (1u << ALARM_SENSOR_FAULT) | (1u << ALARM_CUFF_FAULT))

/* Cuff Status fault bits that make the cuff unfit to inflate (SR-25). A
 * leak is the gateway's own MEDIUM alarm (SR-05: the exercise goes on); a
 * failed LOP search and the supervision deflation are reported otherwise. */
#define FAULTS_BLOCKING                                                                \
	(BFR_FAULT_SENSOR | BFR_FAULT_VALVE_STUCK | BFR_FAULT_OVER_PRESSURE |          \
	 BFR_FAULT_DEFLATE_FAILED)

/* A safety DEFLATE not confirmed within this releases the cuff (SR-24). */
#define RELEASE_AFTER_MS SAFETY_DEFLATE_RESEND_MS

/* Actions of one call, collected so the DEFLATE can be put first. */
struct ctx {
	struct safety_state *s;
	uint64_t now;
	bool deflate;
	enum bfr_deflate_reason deflate_reason;
	enum alarm_code deflate_cause;
	bool release;
	size_t n;
	struct safety_action acts[SAFETY_MAX_ACTIONS];
};

static const struct alarm_values no_values = { NAN, NAN, NAN, NAN };

static bool present(const struct safety_state *s, enum alarm_code code)
{
	return s->present & (1u << code);
}

static void push(struct ctx *c, const struct safety_action *a)
{
	/*
	 * Each condition yields at most one edge per call and there are fewer
	 * codes than slots, so this cannot overflow; the check is a backstop
	 * that can only ever lose an alarm edge, never the DEFLATE or RELEASE
	 * (kept apart).
	 */
	if (c->n < SAFETY_MAX_ACTIONS - 2)
		c->acts[c->n++] = *a;
}

static struct alarm_values vals(double p, double target, double limit, double duration_s)
{
	struct alarm_values v = { p, target, limit, duration_s };

	return v;
}

/* Emits the edge of a condition; nothing if it is unchanged. */
static void set_cond(struct ctx *c, enum alarm_code code, bool on, struct alarm_values v)
{
	struct safety_state *s = c->s;
	struct safety_action a = { 0 };

	if (on == present(s, code))
		return;
	if (on) {
		s->present |= 1u << code;
		a.type = SAFETY_ACT_RAISE;
		a.priority = alarm_code_priority(code);
		a.kind = alarm_code_kind(code);
		a.message = alarm_code_default_message(code);
		a.values = v;
	} else {
		s->present &= ~(1u << code);
		a.type = SAFETY_ACT_CLEAR;
		a.values = no_values;
	}
	a.code = code;
	push(c, &a);
}

static double cur_pressure(const struct safety_state *s)
{
	return s->have_pressure ? s->pressure_mmhg : NAN;
}

/* Starts (or continues) tracking a DEFLATE the cuff has been told about. */
static void track_deflate(struct safety_state *s, uint64_t now, enum bfr_deflate_reason reason,
			  enum alarm_code cause)
{
	if (!s->deflate_pending) {
		s->deflate_pending = true;
		s->deflate_first_ms = now;
		s->deflate_reason = reason;
		s->deflate_cause = (uint8_t)cause;
		s->released = false;
		s->deflate_answered = false;
		s->deflate_first_mmhg = cur_pressure(s);
	} else if (reason > s->deflate_reason) {
		s->deflate_reason = reason;
		s->deflate_cause = (uint8_t)cause;
	}
	s->deflate_check_ms = now;
	s->deflate_check_mmhg = cur_pressure(s);
	s->deflate_ok_seen = false;
	s->target_mmhg = 0;
	s->band_armed = false;
	s->measuring_lop = false;
}

/*
 * The engine's own DEFLATE: always emitted (a new safety reason must not
 * wait for the re-send interval of an earlier, possibly normal, deflate).
 * While the link is down it cannot be sent; LINK_UP sends it.
 */
static void deflate_now(struct ctx *c, enum bfr_deflate_reason reason, enum alarm_code cause)
{
	struct safety_state *s = c->s;

	s->reperfusion_due = true;
	track_deflate(s, c->now, reason, cause);
	if (!s->link_up)
		return;
	if (!c->deflate || reason > c->deflate_reason)
		c->deflate_reason = reason;
	/* The first condition of the call names it. */
	if (!c->deflate || c->deflate_cause == ALARM_CODE_COUNT)
		c->deflate_cause = cause;
	c->deflate = true;
}

/*
 * Re-sending a DEFLATE the cuff has not confirmed: with the reason it was
 * given (a routine one stays routine: it must not end the session as a
 * safety abort) and without starting a reperfusion interval a rest did not.
 */
static void deflate_resend(struct ctx *c)
{
	struct safety_state *s = c->s;

	s->deflate_check_ms = c->now;
	s->deflate_check_mmhg = cur_pressure(s);
	s->deflate_ok_seen = false;
	if (!s->link_up)
		return;
	if (!c->deflate || s->deflate_reason > c->deflate_reason)
		c->deflate_reason = s->deflate_reason;
	if (!c->deflate)
		c->deflate_cause = (enum alarm_code)s->deflate_cause;
	c->deflate = true;
}

static bool timer_expired(uint64_t since, uint64_t now, uint64_t limit_ms)
{
	return since != SAFETY_NEVER && now - since > limit_ms;
}

static double secs(uint64_t since, uint64_t now)
{
	return since == SAFETY_NEVER ? NAN : (double)(now - since) / 1000.0;
}

static void reset_sample_timers(struct safety_state *s)
{
	s->occlusion_since_ms = SAFETY_NEVER;
	s->band_high_since_ms = SAFETY_NEVER;
	s->band_low_since_ms = SAFETY_NEVER;
	s->leak_since_ms = SAFETY_NEVER;
}

int safety_init(struct safety_state *s, const struct limits *lim, uint64_t now_ms)
{
	if (!s || limits_validate(lim) < 0)
		return -EINVAL;
	memset(s, 0, sizeof(*s));
	s->lim = *lim;
	s->now_ms = now_ms;
	s->pressure_mmhg = NAN;
	s->last_sample_ms = SAFETY_NEVER;
	s->inflated_since_ms = SAFETY_NEVER;
	s->deflated_at_ms = SAFETY_NEVER;
	s->accounted_at_ms = now_ms;
	s->lop_mmhg = NAN;
	s->battery_pct = -1;
	s->deflate_cause = ALARM_CODE_COUNT;
	reset_sample_timers(s);
	return 0;
}

/* ---- sample --------------------------------------------------------------- */

/* Bitwise equality: exactly the same reading (NAN pulses compare equal). */
static bool same_bits(double a, double b)
{
	return memcmp(&a, &b, sizeof(a)) == 0;
}

/* The current run of identical samples is beyond SR-23's limits. */
static bool freeze_met(const struct safety_state *s, uint64_t now)
{
	return s->freeze_n > SAFETY_FREEZE_SAMPLES && now - s->freeze_since_ms > SAFETY_FREEZE_MS;
}

/*
 * The frozen-sensor rule (SR-23) for one valid sample; true while the
 * reading counts as frozen. A run starts only while the cuff is inflated (a
 * deflated cuff may legitimately read a steady 0.0); once the condition is
 * present it lasts until the reading moves, inflated or not.
 */
static bool freeze_check(struct safety_state *s, double p, double pulse, uint64_t now)
{
	bool inflated = s->target_mmhg > 0 || p > SAFETY_INFLATED_ABOVE_MMHG;
	bool frozen_before = freeze_met(s, now);

	if (s->freeze_n > 0 && same_bits(p, s->freeze_p) && same_bits(pulse, s->freeze_pulse) &&
	    (inflated || frozen_before)) {
		if (s->freeze_n < UINT32_MAX)
			s->freeze_n++;
	} else if (inflated) {
		s->freeze_n = 1;
		s->freeze_since_ms = now;
		s->freeze_p = p;
		s->freeze_pulse = pulse;
	} else {
		s->freeze_n = 0;
	}
	return freeze_met(s, now);
}

/*
 * An untrustworthy reading (SR-13, SR-23): HIGH sensor_fault, deflate if
 * inflated. message (static) replaces the code's default one if not NULL.
 */
static void sensor_fault(struct ctx *c, struct alarm_values v, const char *message)
{
	struct safety_state *s = c->s;
	bool first = !present(s, ALARM_SENSOR_FAULT);

	s->sensor_bad = true;
	reset_sample_timers(s);
	set_cond(c, ALARM_SENSOR_FAULT, true, v);
	if (first && message && c->n > 0 && c->acts[c->n - 1].type == SAFETY_ACT_RAISE &&
	    c->acts[c->n - 1].code == ALARM_SENSOR_FAULT)
		c->acts[c->n - 1].message = message;
	/* Once; the DEFLATE tracking re-sends, and without a valid reading it
	 * can never confirm, so deflate_failed follows after the timeout. */
	if ((s->inflated || s->target_mmhg > 0) && (first || !s->deflate_pending))
		deflate_now(c, BFR_DEFLATE_SAFETY, ALARM_SENSOR_FAULT);
}

static void on_sample(struct ctx *c, double p, double pulse, uint16_t status)
{
	struct safety_state *s = c->s;
	const struct limits *l = &s->lim;
	uint64_t now = c->now;
	double t = s->target_mmhg;
	bool valid = isfinite(p) && p >= SAFETY_SENSOR_MIN_MMHG && !(status & BFR_ST_SENSOR_FAULT);

	s->last_sample_ms = now;
	s->status = status;
	set_cond(c, ALARM_TELEMETRY_LOST, false, no_values);
	/* What the cuff says of itself, valid reading or not. */
	s->battery_low_bit = (status & BFR_ST_BATTERY_LOW) != 0;
	s->relief_tripped = (status & BFR_ST_RELIEF_TRIPPED) != 0;

	/* Any finite reading above the ceiling deflates, even one flagged faulty. */
	if (isfinite(p) && p > l->max_pressure_mmhg) {
		set_cond(c, ALARM_OVER_PRESSURE_CEILING, true,
			 vals(p, t, l->max_pressure_mmhg, NAN));
		deflate_now(c, BFR_DEFLATE_SAFETY, ALARM_OVER_PRESSURE_CEILING);
		/* A sample proves the link carries data: send even if LINK_DOWN raced it. */
		c->deflate = true;
		c->deflate_reason = BFR_DEFLATE_SAFETY;
	} else if (isfinite(p)) {
		set_cond(c, ALARM_OVER_PRESSURE_CEILING, false, no_values);
	}

	if (!valid) {
		s->freeze_n = 0;
		sensor_fault(c, vals(p, t, NAN, NAN), NULL);
		return;
	}
	if (freeze_check(s, p, pulse, now)) {
		/* A frozen reading proves nothing: it confirms no deflation and
		 * feeds no other rule (the ceiling above still applies). */
		sensor_fault(c, vals(p, t, (double)SAFETY_FREEZE_MS / 1000.0,
				     secs(s->freeze_since_ms, now)),
			     "pressure sensor fault: reading frozen");
		return;
	}
	s->sensor_bad = false;
	set_cond(c, ALARM_SENSOR_FAULT, false, no_values);
	s->have_pressure = true;
	s->pressure_mmhg = p;
	if (s->link_fresh) {
		s->link_fresh = false;
		if (p > SAFETY_INFLATED_ABOVE_MMHG && s->target_mmhg <= 0 && !s->deflate_pending)
			deflate_now(c, BFR_DEFLATE_SAFETY, ALARM_CODE_COUNT);
	}

	if (status & BFR_ST_SUPERVISION_DEFLATED) {
		if (!present(s, ALARM_SUPERVISION_DEFLATED)) {
			/* The cuff dropped its target itself; the exercise is over. */
			s->target_mmhg = 0;
			s->band_armed = false;
			s->reperfusion_due = true;
		}
		set_cond(c, ALARM_SUPERVISION_DEFLATED, true, vals(p, t, NAN, NAN));
	} else {
		set_cond(c, ALARM_SUPERVISION_DEFLATED, false, no_values);
	}

	if (s->deflate_pending && p < l->deflated_below_mmhg) {
		s->deflate_pending = false;
		set_cond(c, ALARM_DEFLATE_FAILED, false, no_values);
	}
	if (p < l->deflated_below_mmhg)
		set_cond(c, ALARM_LINK_LOST_INFLATED, false, no_values);

	/* Full occlusion: p >= full_occlusion_pct of a known LOP. */
	if (!s->measuring_lop && !isnan(s->lop_mmhg) &&
	    p >= s->lop_mmhg * l->full_occlusion_pct / 100.0) {
		if (s->occlusion_since_ms == SAFETY_NEVER)
			s->occlusion_since_ms = now;
	} else {
		s->occlusion_since_ms = SAFETY_NEVER;
		set_cond(c, ALARM_FULL_OCCLUSION, false, no_values);
	}

	/* Regulation band, against the commanded target, once the cuff reached it. */
	t = s->target_mmhg;
	if (t > 0 && fabs(p - t) <= l->band_mmhg)
		s->band_armed = true;
	if (t > 0 && s->band_armed && p - t > l->band_mmhg) {
		if (s->band_high_since_ms == SAFETY_NEVER)
			s->band_high_since_ms = now;
	} else {
		s->band_high_since_ms = SAFETY_NEVER;
		set_cond(c, ALARM_PRESSURE_HIGH, false, no_values);
	}
	if (t > 0 && s->band_armed && t - p > l->band_mmhg) {
		if (s->band_low_since_ms == SAFETY_NEVER)
			s->band_low_since_ms = now;
	} else {
		s->band_low_since_ms = SAFETY_NEVER;
		set_cond(c, ALARM_PRESSURE_LOW, false, no_values);
	}

	/* Leak: under target with the pump running (ramp-up included on purpose). */
	if (t > 0 && t - p > l->leak_mmhg && (status & BFR_ST_PUMP_ON)) {
		if (s->leak_since_ms == SAFETY_NEVER)
			s->leak_since_ms = now;
	} else {
		s->leak_since_ms = SAFETY_NEVER;
		set_cond(c, ALARM_LEAK, false, no_values);
	}
}

/* ---- requests ------------------------------------------------------------- */

static int refuse(enum limits_refusal why, enum limits_refusal *reason)
{
	if (reason)
		*reason = why;
	return -EPERM;
}

static int64_t lop_age_s(const struct safety_state *s, uint64_t now)
{
	if (isnan(s->lop_mmhg))
		return -1;
	return ((int64_t)now - s->lop_at_ms) / 1000;
}

int safety_may_inflate(const struct safety_state *s, uint64_t now_ms, bool unacked_high,
		       enum limits_refusal *reason)
{
	const struct limits *l;

	if (!s)
		return -EINVAL;
	l = &s->lim;
	if (now_ms < s->now_ms)
		now_ms = s->now_ms;
	if (!s->link_up)
		return refuse(LIMITS_REFUSE_LINK_DOWN, reason);
	if (s->sensor_bad)
		return refuse(LIMITS_REFUSE_SENSOR_FAULT, reason);
	if (s->fault_status || s->relief_tripped)
		return refuse(LIMITS_REFUSE_CUFF_FAULT, reason);
	if (s->deflate_pending)
		return refuse(LIMITS_REFUSE_DEFLATING, reason);
	if (s->present & DEFLATING_CONDITIONS)
		return refuse(LIMITS_REFUSE_SAFETY_CONDITION, reason);
	if (unacked_high)
		return refuse(LIMITS_REFUSE_UNACKED_HIGH, reason);
	if (s->battery_pct < 0)
		return refuse(LIMITS_REFUSE_BATTERY_UNKNOWN, reason);
	if ((uint32_t)s->battery_pct < l->battery_min_pct || s->battery_low_bit)
		return refuse(LIMITS_REFUSE_BATTERY, reason);
	if (s->in_session && s->session_inflated_ms >= (uint64_t)l->session_total_s * 1000u)
		return refuse(LIMITS_REFUSE_SESSION_TOTAL, reason);
	if (s->reperfusion_due) {
		/* Reperfusion only starts once the cuff is seen deflated. */
		if (!s->down || s->deflated_at_ms == SAFETY_NEVER)
			return refuse(LIMITS_REFUSE_REPERFUSION, reason);
		if (now_ms - s->deflated_at_ms < (uint64_t)l->min_reperfusion_s * 1000u)
			return refuse(LIMITS_REFUSE_REPERFUSION, reason);
	}
	return 0;
}

uint64_t safety_reperfusion_ends(const struct safety_state *s)
{
	if (!s || !s->reperfusion_due)
		return 0;
	if (!s->down || s->deflated_at_ms == SAFETY_NEVER)
		return SAFETY_NEVER;
	return s->deflated_at_ms + (uint64_t)s->lim.min_reperfusion_s * 1000u;
}

int safety_check_target(const struct safety_state *s, uint64_t now_ms, double target_mmhg,
			bool unacked_high, enum limits_refusal *reason)
{
	int r;

	if (!s)
		return -EINVAL;
	if (now_ms < s->now_ms)
		now_ms = s->now_ms;
	r = limits_check_target(&s->lim, s->lop_mmhg, lop_age_s(s, now_ms), target_mmhg, reason);
	if (r < 0)
		return r;
	return safety_may_inflate(s, now_ms, unacked_high, reason);
}

static void push_refuse(struct ctx *c, enum limits_refusal why, double target)
{
	struct safety_action a = { 0 };

	a.type = SAFETY_ACT_REFUSE;
	a.refusal = why;
	a.message = limits_refusal_name(why);
	a.values = vals(cur_pressure(c->s), target, NAN, NAN);
	push(c, &a);
}

static void on_lop_measure(struct ctx *c, bool unacked_high)
{
	struct safety_state *s = c->s;
	enum limits_refusal why = LIMITS_OK;

	if (s->target_mmhg > 0)
		why = LIMITS_REFUSE_SAFETY_CONDITION; /* never measure over a running exercise */
	else
		safety_may_inflate(s, c->now, unacked_high, &why);
	if (why != LIMITS_OK) {
		push_refuse(c, why, NAN);
		return;
	}
	s->measuring_lop = true;
	s->reperfusion_due = false;
	s->occlusion_since_ms = SAFETY_NEVER;
}

static void on_inflate(struct ctx *c, double target, bool unacked_high)
{
	struct safety_state *s = c->s;
	enum limits_refusal why = LIMITS_OK;
	int r;

	if (s->target_mmhg > 0) {
		/* A change of target inside an exercise (cycle steps): limits still apply,
		 * the new-inflation gates (reperfusion, total, ack) do not. */
		r = limits_check_target(&s->lim, s->lop_mmhg, lop_age_s(s, c->now), target, &why);
		if (r == 0 && !s->link_up)
			r = refuse(LIMITS_REFUSE_LINK_DOWN, &why);
		if (r == 0 && (s->sensor_bad || (s->present & DEFLATING_CONDITIONS)))
			r = refuse(LIMITS_REFUSE_SAFETY_CONDITION, &why);
	} else {
		r = safety_check_target(s, c->now, target, unacked_high, &why);
	}
	if (r < 0) {
		push_refuse(c, why, target);
		return;
	}
	s->measuring_lop = false;
	if (s->target_mmhg <= 0)
		s->reperfusion_due = false;
	if (target != s->target_mmhg)
		s->band_armed = false;
	s->target_mmhg = target;
}

/* ---- evaluation after every event ---------------------------------------- */

/*
 * What the cuff says of itself (SR-16, SR-25): battery level and battery-low
 * bit, Cuff Status faults and the relief-valve bit. A fault while inflated
 * deflates: a cuff that reports one is not trusted to hold a pressure.
 */
static void device_conditions(struct ctx *c)
{
	struct safety_state *s = c->s;
	const struct limits *l = &s->lim;
	bool low = (s->battery_pct >= 0 && (uint32_t)s->battery_pct < l->battery_low_pct) ||
		   s->battery_low_bit;
	bool fault = s->fault_status || s->relief_tripped;

	set_cond(c, ALARM_BATTERY_LOW, low, vals(NAN, NAN, l->battery_low_pct, NAN));
	set_cond(c, ALARM_BATTERY_CRITICAL,
		 s->battery_pct >= 0 && (uint32_t)s->battery_pct < l->battery_min_pct,
		 vals(NAN, NAN, l->battery_min_pct, NAN));
	if (fault && !present(s, ALARM_CUFF_FAULT) && (s->inflated || s->target_mmhg > 0))
		deflate_now(c, BFR_DEFLATE_SAFETY, ALARM_CUFF_FAULT);
	set_cond(c, ALARM_CUFF_FAULT, fault, vals(cur_pressure(s), s->target_mmhg, NAN, NAN));
}

static void evaluate(struct ctx *c)
{
	struct safety_state *s = c->s;
	const struct limits *l = &s->lim;
	uint64_t now = c->now;
	double p = cur_pressure(s), t = s->target_mmhg;
	bool inflated = s->target_mmhg > 0 ||
			(s->have_pressure && s->pressure_mmhg > SAFETY_INFLATED_ABOVE_MMHG);

	bool down = s->target_mmhg <= 0 && s->have_pressure &&
		    s->pressure_mmhg < l->deflated_below_mmhg;

	if (inflated && !s->inflated) {
		s->inflated_since_ms = now;
	} else if (!inflated && s->inflated) {
		s->inflated_since_ms = SAFETY_NEVER;
		set_cond(c, ALARM_INFLATION_TIME, false, no_values);
		set_cond(c, ALARM_INFLATION_TIME_WARNING, false, no_values);
	}
	s->inflated = inflated;
	/* Reperfusion starts when the cuff is seen deflated (SR-08), the same
	 * "< deflated_below_mmHg" the session waits for before its reperfusion
	 * phase, so a plan's reperfusion_s and the engine agree to the ms. */
	if (down && !s->down)
		s->deflated_at_ms = now;
	s->down = down;

	device_conditions(c);

	if (timer_expired(s->occlusion_since_ms, now, l->full_occlusion_ms) &&
	    !present(s, ALARM_FULL_OCCLUSION)) {
		set_cond(c, ALARM_FULL_OCCLUSION, true,
			 vals(p, t, s->lop_mmhg * l->full_occlusion_pct / 100.0,
			      secs(s->occlusion_since_ms, now)));
		deflate_now(c, BFR_DEFLATE_SAFETY, ALARM_FULL_OCCLUSION);
	}
	if (timer_expired(s->band_high_since_ms, now, l->band_ms))
		set_cond(c, ALARM_PRESSURE_HIGH, true,
			 vals(p, t, t + l->band_mmhg, secs(s->band_high_since_ms, now)));
	if (timer_expired(s->band_low_since_ms, now, l->band_ms))
		set_cond(c, ALARM_PRESSURE_LOW, true,
			 vals(p, t, t - l->band_mmhg, secs(s->band_low_since_ms, now)));
	if (timer_expired(s->leak_since_ms, now, l->leak_ms))
		set_cond(c, ALARM_LEAK, true,
			 vals(p, t, t - l->leak_mmhg, secs(s->leak_since_ms, now)));

	if (s->inflated) {
		uint64_t d = now - s->inflated_since_ms;
		uint64_t max_ms = (uint64_t)l->max_inflation_s * 1000u;

		if (d * 100u >= max_ms * l->inflation_warn_pct)
			set_cond(c, ALARM_INFLATION_TIME_WARNING, true,
				 vals(p, t, (double)l->max_inflation_s, (double)d / 1000.0));
		if (d > max_ms && !present(s, ALARM_INFLATION_TIME)) {
			set_cond(c, ALARM_INFLATION_TIME, true,
				 vals(p, t, (double)l->max_inflation_s, (double)d / 1000.0));
			deflate_now(c, BFR_DEFLATE_SAFETY, ALARM_INFLATION_TIME);
		}
	}

	/* The session total is a hard limit (SR-07): the inflation that uses it
	 * up is deflated, once, when the total is crossed. */
	if (s->in_session && s->session_inflated_ms > (uint64_t)l->session_total_s * 1000u &&
	    !present(s, ALARM_SESSION_INFLATION_TOTAL)) {
		set_cond(c, ALARM_SESSION_INFLATION_TOTAL, true,
			 vals(p, t, (double)l->session_total_s,
			      (double)s->session_inflated_ms / 1000.0));
		if (s->inflated)
			deflate_now(c, BFR_DEFLATE_SAFETY, ALARM_SESSION_INFLATION_TOTAL);
	}

	/* Telemetry: counted from the later of last sample, link up, inflation start. */
	if (s->link_up && s->inflated && !present(s, ALARM_TELEMETRY_LOST)) {
		uint64_t base = s->link_up_ms;

		if (s->last_sample_ms != SAFETY_NEVER && s->last_sample_ms > base)
			base = s->last_sample_ms;
		if (s->inflated_since_ms > base)
			base = s->inflated_since_ms;
		if (now - base > l->sample_timeout_ms) {
			set_cond(c, ALARM_TELEMETRY_LOST, true,
				 vals(p, t, (double)l->sample_timeout_ms / 1000.0,
				      (double)(now - base) / 1000.0));
			/* Unsupervisable pressure is not left on a limb. */
			deflate_now(c, BFR_DEFLATE_SAFETY, ALARM_TELEMETRY_LOST);
		}
	}

	/* Deflation confirmation and re-send (frozen while the link is down). */
	if (s->deflate_pending && s->link_up) {
		if (now - s->deflate_first_ms > l->deflate_timeout_ms &&
		    !present(s, ALARM_DEFLATE_FAILED)) {
			set_cond(c, ALARM_DEFLATE_FAILED, true,
				 vals(p, t, l->deflated_below_mmhg,
				      (double)(now - s->deflate_first_ms) / 1000.0));
			deflate_now(c, BFR_DEFLATE_SAFETY, ALARM_DEFLATE_FAILED);
		} else if (!c->deflate && now - s->deflate_check_ms >= SAFETY_DEFLATE_RESEND_MS) {
			bool falling = !isnan(p) && !isnan(s->deflate_check_mmhg) &&
				       p <= s->deflate_check_mmhg - SAFETY_FALLING_MMHG;

			if (s->deflate_ok_seen && falling) {
				s->deflate_check_ms = now;
				s->deflate_check_mmhg = p;
			} else {
				deflate_resend(c);
			}
		}
		/*
		 * SR-24: a safety DEFLATE episode the cuff has neither confirmed
		 * nor acted on (pressure 1 mmHg below where it began) after
		 * RELEASE_AFTER_MS. Keepalives would keep the cuff's own fail-safe
		 * from firing while its control channel is dead: release it, once.
		 * (Judged per episode: the ceiling rule re-sends on every sample.)
		 */
		if (s->deflate_reason >= BFR_DEFLATE_SAFETY && !s->released &&
		    now - s->deflate_first_ms >= RELEASE_AFTER_MS &&
		    !(s->deflate_answered && !isnan(p) && !isnan(s->deflate_first_mmhg) &&
		      p <= s->deflate_first_mmhg - SAFETY_FALLING_MMHG)) {
			s->released = true;
			c->release = true;
		}
	}
}

/* ---- entry points --------------------------------------------------------- */

static int validate(const struct safety_state *s, const struct safety_event *ev, uint64_t now)
{
	switch (ev->type) {
	case SAFETY_EV_SAMPLE:
	case SAFETY_EV_TICK:
	case SAFETY_EV_LINK_UP:
	case SAFETY_EV_LINK_DOWN:
	case SAFETY_EV_INFLATE_CMD:
	case SAFETY_EV_SESSION_START:
	case SAFETY_EV_SESSION_END:
	case SAFETY_EV_LOP_MEASURE:
		return 0;
	case SAFETY_EV_DEFLATE_CMD:
		return ev->deflate.reason <= BFR_DEFLATE_ESTOP ? 0 : -EINVAL;
	case SAFETY_EV_CP_RESULT:
		return ev->cp_result.result <= BFR_RESULT_LIMIT_EXCEEDED &&
			       ev->cp_result.opcode >= BFR_CP_SET_TARGET &&
			       ev->cp_result.opcode <= BFR_CP_SET_SUPERVISION ?
			       0 :
			       -EINVAL;
	case SAFETY_EV_LOP_SET:
		/* A LOP is a number or NAN (failed); a ceiling NAN or > 0. */
		return !isinf(ev->lop.lop_mmhg) &&
			       (isnan(ev->lop.search_ceiling_mmhg) ||
				(isfinite(ev->lop.search_ceiling_mmhg) &&
				 ev->lop.search_ceiling_mmhg > 0)) ?
			       0 :
			       -EINVAL;
	case SAFETY_EV_BATTERY:
		return ev->battery.pct >= 0 && ev->battery.pct <= 100 ? 0 : -EINVAL;
	case SAFETY_EV_STATUS:
		return ev->status.state <= BFR_STATE_FAULT && ev->status.battery_pct >= 0 &&
			       ev->status.battery_pct <= 100 ?
			       0 :
			       -EINVAL;
	}
	return -EINVAL;
}

static void apply(struct ctx *c, const struct safety_event *ev)
{
	struct safety_state *s = c->s;
	const struct limits *l = &s->lim;
	enum limits_refusal why;

	switch (ev->type) {
	case SAFETY_EV_SAMPLE:
		on_sample(c, ev->sample.pressure_mmhg, ev->sample.pulse_mmhg, ev->sample.status);
		break;
	case SAFETY_EV_TICK:
		break;
	case SAFETY_EV_LINK_UP:
		s->link_up = true;
		s->link_up_ms = c->now;
		s->link_fresh = true;
		/* What happened while we could not see is unknown: deflate first. */
		if (s->deflate_pending || present(s, ALARM_LINK_LOST_INFLATED)) {
			s->deflate_pending = false;
			deflate_now(c, BFR_DEFLATE_SAFETY,
				    present(s, ALARM_LINK_LOST_INFLATED) ? ALARM_LINK_LOST_INFLATED
									 : ALARM_CODE_COUNT);
		}
		break;
	case SAFETY_EV_LINK_DOWN:
		s->link_up = false;
		reset_sample_timers(s);
		/* A new connection is a new sample stream: a run not yet frozen
		 * restarts; a frozen one lasts until the reading moves. */
		if (!freeze_met(s, c->now))
			s->freeze_n = 0;
		if (s->inflated)
			set_cond(c, ALARM_LINK_LOST_INFLATED, true,
				 vals(cur_pressure(s), s->target_mmhg, NAN, NAN));
		break;
	case SAFETY_EV_INFLATE_CMD:
		on_inflate(c, ev->inflate.target_mmhg, ev->inflate.unacked_high);
		break;
	case SAFETY_EV_DEFLATE_CMD:
		/* Reperfusion follows an inflation: a DEFLATE sent to a cuff that
		 * was not inflated (an e-stop of every cuff) blocks nothing. */
		if (!ev->deflate.rest && s->inflated)
			s->reperfusion_due = true;
		track_deflate(s, c->now, (enum bfr_deflate_reason)ev->deflate.reason,
			      ALARM_CODE_COUNT);
		break;
	case SAFETY_EV_CP_RESULT:
		if (ev->cp_result.opcode == BFR_CP_DEFLATE) {
			s->deflate_ok_seen = ev->cp_result.result == BFR_RESULT_SUCCESS;
			if (s->deflate_ok_seen)
				s->deflate_answered = true;
		}
		if (ev->cp_result.opcode == BFR_CP_MEASURE_LOP &&
		    ev->cp_result.result != BFR_RESULT_SUCCESS)
			s->measuring_lop = false;
		break;
	case SAFETY_EV_LOP_MEASURE:
		on_lop_measure(c, ev->lop_measure.unacked_high);
		break;
	case SAFETY_EV_SESSION_START:
		s->in_session = true;
		s->session_inflated_ms = 0;
		set_cond(c, ALARM_SESSION_INFLATION_TOTAL, false, no_values);
		break;
	case SAFETY_EV_SESSION_END:
		s->in_session = false;
		set_cond(c, ALARM_SESSION_INFLATION_TOTAL, false, no_values);
		break;
	case SAFETY_EV_LOP_SET:
		/* SR-15: a LOP above the search ceiling asked for is impossible;
		 * an invalid or failed result keeps the last valid LOP. */
		if (limits_check_lop(l, ev->lop.lop_mmhg, (int64_t)(ev->lop.age_ms / 1000u), &why) < 0 ||
		    (!isnan(ev->lop.search_ceiling_mmhg) &&
		     ev->lop.lop_mmhg > ev->lop.search_ceiling_mmhg)) {
			set_cond(c, ALARM_LOP_INVALID, true,
				 vals(NAN, NAN, isnan(ev->lop.lop_mmhg) ? NAN : ev->lop.lop_mmhg,
				      NAN));
		} else {
			s->lop_mmhg = ev->lop.lop_mmhg;
			s->lop_at_ms = (int64_t)c->now - (int64_t)ev->lop.age_ms;
			set_cond(c, ALARM_LOP_INVALID, false, no_values);
		}
		/* The search's own inflation is not the next set's: the continuous
		 * clock (SR-06) restarts when the measurement ends. */
		if (s->measuring_lop && s->target_mmhg <= 0 && s->inflated)
			s->inflated_since_ms = c->now;
		s->occlusion_since_ms = SAFETY_NEVER;
		s->measuring_lop = false;
		break;
	case SAFETY_EV_BATTERY:
		s->battery_pct = ev->battery.pct;
		break;
	case SAFETY_EV_STATUS:
		s->battery_pct = ev->status.battery_pct;
		s->fault_status = ev->status.state == BFR_STATE_FAULT ||
				  (ev->status.faults & FAULTS_BLOCKING);
		break;
	}
}

int safety_handle(struct safety_state *s, const struct safety_event *ev, uint64_t now_ms,
		  struct safety_action *acts, size_t cap, size_t *n_out)
{
	struct ctx c;
	size_t n = 0;

	if (!s || !ev || !acts || !n_out || cap < SAFETY_MAX_ACTIONS)
		return -EINVAL;
	if (validate(s, ev, now_ms) < 0)
		return -EINVAL;
	if (now_ms < s->now_ms)
		now_ms = s->now_ms;

	c.s = s;
	c.now = now_ms;
	c.deflate = false;
	c.deflate_reason = BFR_DEFLATE_NORMAL;
	c.deflate_cause = ALARM_CODE_COUNT;
	c.release = false;
	c.n = 0;

	/* Session time is charged for the interval before this event; a LOP
	 * search is not exercise (the plan's time limits cannot include it). */
	if (s->in_session && s->inflated && !s->measuring_lop)
		s->session_inflated_ms += now_ms - s->accounted_at_ms;
	s->accounted_at_ms = now_ms;
	s->now_ms = now_ms;

	apply(&c, ev);
	evaluate(&c);

	if (c.deflate) {
		memset(&acts[n], 0, sizeof(acts[n]));
		acts[n].type = SAFETY_ACT_DEFLATE;
		acts[n].deflate_reason = c.deflate_reason;
		acts[n].cause = c.deflate_cause;
		acts[n].values = no_values;
		n++;
	}
	for (size_t i = 0; i < c.n; i++)
		acts[n++] = c.acts[i];
	if (c.release) {
		memset(&acts[n], 0, sizeof(acts[n]));
		acts[n].type = SAFETY_ACT_RELEASE;
		acts[n].cause = (enum alarm_code)s->deflate_cause;
		acts[n].values = no_values;
		n++;
	}
	*n_out = n;
	return 0;
}

/* ---- queries --------------------------------------------------------------- */

static uint64_t earliest(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint64_t after(uint64_t since, uint64_t limit_ms)
{
	return since == SAFETY_NEVER ? SAFETY_NEVER : since + limit_ms + 1;
}

uint64_t safety_next_deadline(const struct safety_state *s)
{
	const struct limits *l;
	uint64_t d = SAFETY_NEVER;

	if (!s)
		return SAFETY_NEVER;
	l = &s->lim;
	if (!present(s, ALARM_FULL_OCCLUSION))
		d = earliest(d, after(s->occlusion_since_ms, l->full_occlusion_ms));
	if (!present(s, ALARM_PRESSURE_HIGH))
		d = earliest(d, after(s->band_high_since_ms, l->band_ms));
	if (!present(s, ALARM_PRESSURE_LOW))
		d = earliest(d, after(s->band_low_since_ms, l->band_ms));
	if (!present(s, ALARM_LEAK))
		d = earliest(d, after(s->leak_since_ms, l->leak_ms));
	if (s->inflated) {
		uint64_t max_ms = (uint64_t)l->max_inflation_s * 1000u;
		uint64_t warn_ms = (max_ms * l->inflation_warn_pct + 99u) / 100u;

		if (!present(s, ALARM_INFLATION_TIME_WARNING))
			d = earliest(d, s->inflated_since_ms + warn_ms);
		if (!present(s, ALARM_INFLATION_TIME))
			d = earliest(d, after(s->inflated_since_ms, max_ms));
		if (s->in_session && !present(s, ALARM_SESSION_INFLATION_TOTAL)) {
			uint64_t total = (uint64_t)l->session_total_s * 1000u;
			uint64_t left = s->session_inflated_ms > total ? 0 :
									total - s->session_inflated_ms;

			d = earliest(d, s->accounted_at_ms + left + 1);
		}
		if (s->link_up && !present(s, ALARM_TELEMETRY_LOST)) {
			uint64_t base = s->link_up_ms;

			if (s->last_sample_ms != SAFETY_NEVER && s->last_sample_ms > base)
				base = s->last_sample_ms;
			if (s->inflated_since_ms > base)
				base = s->inflated_since_ms;
			d = earliest(d, after(base, l->sample_timeout_ms));
		}
	}
	if (s->deflate_pending && s->link_up) {
		if (!present(s, ALARM_DEFLATE_FAILED))
			d = earliest(d, after(s->deflate_first_ms, l->deflate_timeout_ms));
		d = earliest(d, s->deflate_check_ms + SAFETY_DEFLATE_RESEND_MS);
		/* Once past, the re-send checks (every second) judge it again. */
		if (s->deflate_reason >= BFR_DEFLATE_SAFETY && !s->released &&
		    s->deflate_first_ms + RELEASE_AFTER_MS > s->now_ms)
			d = earliest(d, s->deflate_first_ms + RELEASE_AFTER_MS);
	}
	return d;
}

bool safety_inflated(const struct safety_state *s)
{
	return s && s->inflated;
}

bool safety_condition_present(const struct safety_state *s, enum alarm_code code)
{
	return s && (int)code >= 0 && code < ALARM_CODE_COUNT && present(s, code);
}

bool safety_deflate_pending(const struct safety_state *s)
{
	return s && s->deflate_pending;
}

bool safety_deflate_covers(const struct safety_state *s, uint8_t reason)
{
	return s->deflate_pending && s->deflate_reason >= reason;
}

uint64_t safety_session_inflated_ms(const struct safety_state *s)
{
	return s ? s->session_inflated_ms : 0;
}

double safety_lop(const struct safety_state *s, uint64_t now_ms, int64_t *age_s)
{
	if (!s || isnan(s->lop_mmhg)) {
		if (age_s)
			*age_s = -1;
		return NAN;
	}
	if (age_s)
		*age_s = lop_age_s(s, now_ms < s->now_ms ? s->now_ms : now_ms);
	return s->lop_mmhg;
}

const char *safety_event_name(enum safety_event_type t)
{
	switch (t) {
	case SAFETY_EV_SAMPLE:
		return "sample";
	case SAFETY_EV_TICK:
		return "tick";
	case SAFETY_EV_LINK_UP:
		return "link_up";
	case SAFETY_EV_LINK_DOWN:
		return "link_down";
	case SAFETY_EV_INFLATE_CMD:
		return "inflate_cmd";
	case SAFETY_EV_DEFLATE_CMD:
		return "deflate_cmd";
	case SAFETY_EV_CP_RESULT:
		return "cp_result";
	case SAFETY_EV_SESSION_START:
		return "session_start";
	case SAFETY_EV_SESSION_END:
		return "session_end";
	case SAFETY_EV_LOP_SET:
		return "lop_set";
	case SAFETY_EV_BATTERY:
		return "battery";
	case SAFETY_EV_LOP_MEASURE:
		return "lop_measure";
	case SAFETY_EV_STATUS:
		return "status";
	}
	return "unknown";
}

const char *safety_action_name(enum safety_action_type t)
{
	switch (t) {
	case SAFETY_ACT_DEFLATE:
		return "deflate";
	case SAFETY_ACT_RAISE:
		return "raise";
	case SAFETY_ACT_CLEAR:
		return "clear";
	case SAFETY_ACT_REFUSE:
		return "refuse";
	case SAFETY_ACT_RELEASE:
		return "release";
	}
	return "unknown";
}
