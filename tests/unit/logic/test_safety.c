/*
 * test_safety.c - the safety engine against every row of DESIGN §4
 * (docs/safety.md SR-xx). A fake clock (f.now) drives time; boundaries are
 * tested exactly at the limit and one tick (1 ms / 0.1 mmHg) beyond.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <string.h>

#include "safety.h"
#include "sfloat.h"
#include "test_alloc.h"

#define T0 1000000u
#define LOP 200.0
#define STEP 400u /* sample period well inside sample_timeout_ms */

struct fx {
	struct safety_state s;
	struct limits lim;
	uint64_t now;
	struct safety_action a[SAFETY_MAX_ACTIONS];
	size_t n;
};

static struct fx f;

static void feed(struct safety_event ev)
{
	f.n = 99;
	assert_int_equal(safety_handle(&f.s, &ev, f.now, f.a, SAFETY_MAX_ACTIONS, &f.n), 0);
	assert_true(f.n <= SAFETY_MAX_ACTIONS);
}

static void sample_full(double p, double pulse, uint16_t status)
{
	struct safety_event ev = { .type = SAFETY_EV_SAMPLE };

	ev.sample.pressure_mmhg = p;
	ev.sample.target_mmhg = f.s.target_mmhg;
	ev.sample.status = status;
	ev.sample.pulse_mmhg = pulse;
	feed(ev);
}

/*
 * A live sensor: the tests hold exact pressures for long times, so the
 * pulse amplitude moves by 0.001 mmHg every sample (a real one moves with
 * the pressure) and the frozen-sensor rule (SR-23) never applies here.
 */
static void sample_st(double p, uint16_t status)
{
	static unsigned k;

	sample_full(p, 1.0 + 0.001 * (double)(k++ % 2u), status);
}

static void sample(double p)
{
	sample_st(p, 0);
}

static void tick(void)
{
	struct safety_event ev = { .type = SAFETY_EV_TICK };

	feed(ev);
}

static void simple(enum safety_event_type t)
{
	struct safety_event ev = { .type = t };

	feed(ev);
}

static void inflate(double target, bool unacked_high)
{
	struct safety_event ev = { .type = SAFETY_EV_INFLATE_CMD };

	ev.inflate.target_mmhg = target;
	ev.inflate.unacked_high = unacked_high;
	feed(ev);
}

static void deflate_cmd(bool rest)
{
	struct safety_event ev = { .type = SAFETY_EV_DEFLATE_CMD };

	ev.deflate.reason = BFR_DEFLATE_NORMAL;
	ev.deflate.rest = rest;
	feed(ev);
}

static void cp_result(uint8_t opcode, uint8_t result)
{
	struct safety_event ev = { .type = SAFETY_EV_CP_RESULT };

	ev.cp_result.opcode = opcode;
	ev.cp_result.result = result;
	feed(ev);
}

static void lop_set(double lop, uint64_t at)
{
	struct safety_event ev = { .type = SAFETY_EV_LOP_SET };

	ev.lop.lop_mmhg = lop;
	ev.lop.age_ms = f.now - at;
	ev.lop.search_ceiling_mmhg = NAN;
	feed(ev);
}

static void battery(int pct)
{
	struct safety_event ev = { .type = SAFETY_EV_BATTERY };

	ev.battery.pct = pct;
	feed(ev);
}

static int count(enum safety_action_type t, int code)
{
	int n = 0;

	for (size_t i = 0; i < f.n; i++) {
		if (f.a[i].type == t && (code < 0 || (int)f.a[i].code == code))
			n++;
	}
	return n;
}

static bool deflated(void)
{
	return count(SAFETY_ACT_DEFLATE, -1) > 0;
}

static bool raised(enum alarm_code code)
{
	return count(SAFETY_ACT_RAISE, (int)code) > 0;
}

static bool cleared(enum alarm_code code)
{
	return count(SAFETY_ACT_CLEAR, (int)code) > 0;
}

static const struct safety_action *find(enum safety_action_type t, int code)
{
	for (size_t i = 0; i < f.n; i++) {
		if (f.a[i].type == t && (code < 0 || (int)f.a[i].code == code))
			return &f.a[i];
	}
	return NULL;
}

static enum limits_refusal refused(void)
{
	const struct safety_action *a = find(SAFETY_ACT_REFUSE, -1);

	return a ? a->refusal : LIMITS_OK;
}

static void setup_limb(enum bfr_limb limb)
{
	memset(&f, 0, sizeof(f));
	assert_int_equal(limits_defaults(limb, &f.lim), 0);
	f.now = T0;
	assert_int_equal(safety_init(&f.s, &f.lim, f.now), 0);
	simple(SAFETY_EV_LINK_UP);
	battery(80);
	lop_set(LOP, f.now);
	sample(0);
	assert_int_equal(f.n, 0);
}

static int setup(void **state)
{
	(void)state;
	setup_limb(BFR_LIMB_LEG);
	return 0;
}

/* Inflates to target and settles there with one in-band sample. */
static void start_exercise(double target)
{
	inflate(target, false);
	assert_int_equal(refused(), LIMITS_OK);
	f.now += 100;
	sample(target);
	assert_int_equal(f.n, 0);
}

/* Samples p every STEP while now + STEP <= end; asserts nothing happens. */
static void hold_quiet(double p, uint16_t status, uint64_t end)
{
	while (f.now + STEP <= end) {
		f.now += STEP;
		sample_st(p, status);
		assert_int_equal(f.n, 0);
	}
}

/* Samples p every STEP up to end; asserts no DEFLATE and no raise of code. */
static void hold_no(double p, uint16_t status, uint64_t end, enum alarm_code code)
{
	while (f.now + STEP <= end) {
		f.now += STEP;
		sample_st(p, status);
		assert_false(deflated());
		assert_false(raised(code));
	}
}

/* ---- SR-01 absolute ceiling ------------------------------------------------ */

static void test_SR_01_ceiling_exact_is_allowed(void **state)
{
	(void)state;
	start_exercise(160);
	f.now += 100;
	sample(250.0);
	assert_false(deflated());
	assert_false(raised(ALARM_OVER_PRESSURE_CEILING));
}

static void test_SR_01_ceiling_one_tick_over_deflates_at_once(void **state)
{
	const struct safety_action *a;

	(void)state;
	start_exercise(160);
	f.now += 100;
	sample(250.1);
	assert_true(deflated());
	/* The DEFLATE comes first so the caller executes it before anything else. */
	assert_int_equal(f.a[0].type, SAFETY_ACT_DEFLATE);
	assert_int_equal(f.a[0].deflate_reason, BFR_DEFLATE_SAFETY);
	a = find(SAFETY_ACT_RAISE, ALARM_OVER_PRESSURE_CEILING);
	assert_non_null(a);
	assert_int_equal(a->priority, ALARM_PRIO_HIGH);
	assert_int_equal(a->kind, ALARM_KIND_PHYSIOLOGICAL);
	assert_true(a->values.pressure_mmhg == 250.1 && a->values.limit == 250.0);
	/* Every further over-ceiling sample deflates again; the alarm is raised once. */
	f.now += 20;
	sample(260);
	assert_true(deflated());
	assert_false(raised(ALARM_OVER_PRESSURE_CEILING));
	f.now += 20;
	sample(240);
	assert_true(cleared(ALARM_OVER_PRESSURE_CEILING));
}

static void test_SR_01_ceiling_arm_and_override(void **state)
{
	(void)state;
	setup_limb(BFR_LIMB_ARM);
	sample(200.0);
	assert_false(deflated());
	f.now += 10;
	sample(200.1);
	assert_true(deflated());
	/* A tightened per-cuff ceiling applies the same way. */
	setup_limb(BFR_LIMB_LEG);
	assert_int_equal(limits_override(&f.lim, LIMITS_F_MAX_PRESSURE, 220, NULL), 0);
	assert_int_equal(safety_init(&f.s, &f.lim, f.now), 0);
	simple(SAFETY_EV_LINK_UP);
	sample(0);
	sample(220.0);
	assert_false(deflated());
	sample(220.1);
	assert_true(deflated());
}

static void test_SR_01_ceiling_even_when_idle_or_faulty(void **state)
{
	(void)state;
	/* No command outstanding: a runaway pump is still stopped. */
	sample_st(251, BFR_ST_SENSOR_FAULT);
	assert_true(deflated());
	assert_true(raised(ALARM_OVER_PRESSURE_CEILING));
}

/* ---- SR-02 full occlusion --------------------------------------------------- */

static void test_SR_02_full_occlusion_deflates_after_2s(void **state)
{
	uint64_t t;

	(void)state;
	start_exercise(160);
	f.now += 100;
	t = f.now;
	sample(LOP); /* exactly 100 % LOP starts the clock */
	assert_false(deflated());
	/* (pressure_high rises on the way: 200 is far above a 160 target.) */
	hold_no(LOP, 0, t + 2000, ALARM_FULL_OCCLUSION);
	assert_int_equal(f.now, t + 2000);
	/* At exactly 2000 ms: not yet (> 2 s). */
	assert_int_equal(safety_next_deadline(&f.s), t + 2001);
	f.now = t + 2001;
	tick();
	assert_true(deflated());
	assert_true(raised(ALARM_FULL_OCCLUSION));
	assert_int_equal(find(SAFETY_ACT_RAISE, ALARM_FULL_OCCLUSION)->priority, ALARM_PRIO_HIGH);
}

static void test_SR_02_below_lop_never_occludes(void **state)
{
	uint64_t t;

	(void)state;
	start_exercise(160);
	t = f.now;
	hold_no(LOP - 0.1, 0, t + 10000, ALARM_FULL_OCCLUSION);
	/* Dropping below the LOP resets the clock. */
	f.now += 100;
	sample(LOP);
	hold_no(LOP, 0, f.now + 1800, ALARM_FULL_OCCLUSION);
	f.now += 100;
	sample(LOP - 0.1);
	hold_no(LOP, 0, f.now + 2000, ALARM_FULL_OCCLUSION);
}

/* ---- SR-03 prescription ------------------------------------------------------ */

static void test_SR_03_inflate_above_pct_lop_refused(void **state)
{
	(void)state;
	inflate(160.1, false); /* 80 % of 200 = 160 */
	assert_int_equal(refused(), LIMITS_REFUSE_TARGET_ABOVE_PCT);
	assert_false(deflated());
	assert_true(f.s.target_mmhg == 0);
	inflate(NAN, false);
	assert_int_equal(refused(), LIMITS_REFUSE_TARGET_INVALID);
	inflate(-5, false);
	assert_int_equal(refused(), LIMITS_REFUSE_TARGET_INVALID);
	inflate(160.0, false);
	assert_int_equal(refused(), LIMITS_OK);
	assert_int_equal(f.n, 0);
	assert_true(f.s.target_mmhg == 160.0);
}

static void test_SR_03_target_above_ceiling_refused(void **state)
{
	(void)state;
	lop_set(340, f.now); /* 80 % = 272, above the 250 ceiling */
	inflate(250.1, false);
	assert_int_equal(refused(), LIMITS_REFUSE_TARGET_ABOVE_CEILING);
	inflate(250.0, false);
	assert_int_equal(refused(), LIMITS_OK);
	/* A change of target mid-exercise is checked too. */
	inflate(251, false);
	assert_int_equal(refused(), LIMITS_REFUSE_TARGET_ABOVE_CEILING);
	assert_true(f.s.target_mmhg == 250.0);
}

/* ---- SR-04 regulation band --------------------------------------------------- */

static void test_SR_04_pressure_high_after_1s_out_of_band(void **state)
{
	uint64_t t;
	const struct safety_action *a;

	(void)state;
	start_exercise(150);
	hold_quiet(165.0, 0, f.now + 3000); /* exactly +15: in band */
	f.now += 100;
	t = f.now;
	sample(165.1);
	assert_int_equal(f.n, 0);
	f.now = t + 1000;
	sample(165.1);
	assert_int_equal(f.n, 0);
	f.now = t + 1001;
	sample(165.1);
	a = find(SAFETY_ACT_RAISE, ALARM_PRESSURE_HIGH);
	assert_non_null(a);
	assert_int_equal(a->priority, ALARM_PRIO_MEDIUM);
	assert_false(deflated());
	f.now += 100;
	sample(165.1);
	assert_int_equal(f.n, 0); /* raised once */
	f.now += 100;
	sample(150);
	assert_true(cleared(ALARM_PRESSURE_HIGH));
}

static void test_SR_04_pressure_low_after_1s_out_of_band(void **state)
{
	uint64_t t;

	(void)state;
	start_exercise(150);
	f.now += 100;
	t = f.now;
	sample(134.9);
	f.now = t + 500;
	sample(134.9);
	f.now = t + 1000;
	sample(134.9);
	assert_int_equal(f.n, 0);
	assert_int_equal(safety_next_deadline(&f.s), t + 1001);
	f.now = t + 1001;
	tick();
	assert_true(raised(ALARM_PRESSURE_LOW));
	f.now += 100;
	sample(135.0);
	assert_true(cleared(ALARM_PRESSURE_LOW));
}

static void test_SR_04_no_band_alarm_during_ramp(void **state)
{
	(void)state;
	inflate(150, false);
	/* Ramping up from 0 over 5 s is below the band but not an alarm. */
	for (int i = 1; i <= 12; i++) {
		f.now += STEP;
		sample(10.0 * i);
		assert_false(raised(ALARM_PRESSURE_LOW));
	}
}

/* ---- SR-05 leak -------------------------------------------------------------- */

static void test_SR_05_leak_after_7s_with_pump(void **state)
{
	uint64_t t;

	(void)state;
	inflate(150, false);
	f.now += 100;
	t = f.now;
	sample_st(134.9, BFR_ST_PUMP_ON);
	hold_quiet(134.9, BFR_ST_PUMP_ON, t + 7000);
	f.now = t + 7000;
	sample_st(134.9, BFR_ST_PUMP_ON);
	assert_int_equal(f.n, 0);
	f.now = t + 7001;
	sample_st(134.9, BFR_ST_PUMP_ON);
	assert_true(raised(ALARM_LEAK));
	assert_int_equal(find(SAFETY_ACT_RAISE, ALARM_LEAK)->priority, ALARM_PRIO_MEDIUM);
	f.now += 100;
	sample_st(134.9, 0); /* pump stopped */
	assert_true(cleared(ALARM_LEAK));
}

static void test_SR_05_no_leak_at_exactly_15_or_pump_off(void **state)
{
	(void)state;
	inflate(150, false);
	hold_quiet(135.0, BFR_ST_PUMP_ON, f.now + 10000);
	/* Pump off (never reached the band, so no band alarm either). */
	setup_limb(BFR_LIMB_LEG);
	inflate(150, false);
	hold_quiet(100.0, 0, f.now + 10000);
}

/* ---- SR-06 time under pressure ------------------------------------------------ */

static void test_SR_06_inflation_time_warn_at_80pct_then_deflate(void **state)
{
	uint64_t t;
	const struct safety_action *a;

	(void)state;
	t = f.now;
	start_exercise(150);
	hold_quiet(150, 0, t + 479600);
	f.now = t + 479999;
	sample(150);
	assert_int_equal(f.n, 0);
	f.now = t + 480000;
	sample(150);
	a = find(SAFETY_ACT_RAISE, ALARM_INFLATION_TIME_WARNING);
	assert_non_null(a);
	assert_int_equal(a->priority, ALARM_PRIO_LOW);
	assert_false(deflated());
	hold_quiet(150, 0, t + 600000);
	assert_int_equal(f.now, t + 600000);
	assert_int_equal(safety_next_deadline(&f.s), t + 600001);
	f.now = t + 600001;
	tick();
	assert_true(deflated());
	a = find(SAFETY_ACT_RAISE, ALARM_INFLATION_TIME);
	assert_non_null(a);
	assert_int_equal(a->priority, ALARM_PRIO_HIGH);
	/* Falling to 10 mmHg ends the inflation and both conditions. */
	f.now += 100;
	sample(10.0);
	assert_true(cleared(ALARM_INFLATION_TIME));
	assert_true(cleared(ALARM_INFLATION_TIME_WARNING));
	assert_false(safety_inflated(&f.s));
}

/* ---- SR-07 session total -------------------------------------------------------- */

/* The session total is a hard limit: crossing it deflates, and nothing inflates again. */
static void test_SR_07_session_total_deflates_and_blocks_further_inflation(void **state)
{
	enum limits_refusal why = LIMITS_OK;
	uint64_t t;

	(void)state;
	/* 100 s instead of 1200 s keeps the test short; the rule is the same. */
	assert_int_equal(limits_override(&f.lim, LIMITS_F_SESSION_TOTAL_S, 100, NULL), 0);
	f.s.lim = f.lim;
	simple(SAFETY_EV_SESSION_START);
	t = f.now;
	start_exercise(150);
	hold_quiet(150, 0, t + 100000);
	f.now = t + 100000;
	sample(150);
	assert_int_equal(f.n, 0);
	assert_int_equal(safety_session_inflated_ms(&f.s), 100000);
	f.now = t + 100001;
	sample(150);
	assert_true(raised(ALARM_SESSION_INFLATION_TOTAL));
	assert_int_equal(find(SAFETY_ACT_RAISE, ALARM_SESSION_INFLATION_TOTAL)->priority,
			 ALARM_PRIO_MEDIUM);
	assert_true(deflated());
	assert_int_equal(f.a[0].deflate_reason, BFR_DEFLATE_SAFETY);
	assert_int_equal(f.a[0].cause, ALARM_SESSION_INFLATION_TOTAL);
	/* Once: the next samples do not deflate it again (SR-12 re-sends). */
	f.now += 100;
	sample(150);
	assert_false(deflated());
	deflate_cmd(false);
	f.now += 100;
	sample(5);
	f.now += 120000;
	sample(0);
	assert_int_equal(safety_may_inflate(&f.s, f.now, false, &why), -EPERM);
	assert_int_equal(why, LIMITS_REFUSE_SESSION_TOTAL);
	inflate(150, false);
	assert_int_equal(refused(), LIMITS_REFUSE_SESSION_TOTAL);
	simple(SAFETY_EV_SESSION_END);
	assert_true(cleared(ALARM_SESSION_INFLATION_TOTAL));
}

static void test_SR_07_session_total_exactly_used_up_refuses(void **state)
{
	enum limits_refusal why = LIMITS_OK;
	uint64_t t;

	(void)state;
	assert_int_equal(limits_override(&f.lim, LIMITS_F_SESSION_TOTAL_S, 10, NULL), 0);
	f.s.lim = f.lim;
	simple(SAFETY_EV_SESSION_START);
	t = f.now;
	inflate(150, false);
	f.now = t + 10000;
	sample(5);
	deflate_cmd(true);
	sample(5);
	assert_false(raised(ALARM_SESSION_INFLATION_TOTAL)); /* exactly 10 s: not > */
	assert_int_equal(safety_session_inflated_ms(&f.s), 10000);
	assert_int_equal(safety_may_inflate(&f.s, f.now, false, &why), -EPERM);
	assert_int_equal(why, LIMITS_REFUSE_SESSION_TOTAL);
}

/* ---- SR-08 reperfusion ---------------------------------------------------------- */

static void test_SR_08_reperfusion_60s_after_deflation(void **state)
{
	enum limits_refusal why = LIMITS_OK;
	uint64_t t;

	(void)state;
	start_exercise(150);
	deflate_cmd(false);
	f.now += 100;
	sample(60);
	assert_int_equal(safety_may_inflate(&f.s, f.now, false, &why), -EPERM);
	assert_int_equal(why, LIMITS_REFUSE_DEFLATING);
	f.now += 100;
	sample(20.0); /* not yet seen deflated: 20 is not < 20 */
	assert_int_equal(safety_may_inflate(&f.s, f.now, false, &why), -EPERM);
	assert_int_equal(why, LIMITS_REFUSE_DEFLATING);
	/* The wait has not started: no time can be told yet. */
	assert_true(safety_reperfusion_ends(&f.s) == SAFETY_NEVER);
	f.now += 100;
	t = f.now;
	/* Seen deflated (< 20), though still counted inflated (> 10): the one
	 * definition of "reperfusion started", the session's too. */
	sample(19.9);
	assert_int_equal(safety_may_inflate(&f.s, f.now, false, &why), -EPERM);
	assert_int_equal(why, LIMITS_REFUSE_REPERFUSION);
	f.now += 100;
	sample(10.0);
	assert_int_equal(safety_may_inflate(&f.s, t + 59999, false, &why), -EPERM);
	assert_int_equal(why, LIMITS_REFUSE_REPERFUSION);
	assert_int_equal(safety_may_inflate(&f.s, t + 60000, false, &why), 0);
	/* What a paused session's resume_at is made of: the same instant. */
	assert_true(safety_reperfusion_ends(&f.s) == t + 60000);
	f.now = t + 59999;
	inflate(150, false);
	assert_int_equal(refused(), LIMITS_REFUSE_REPERFUSION);
	f.now = t + 60000;
	inflate(150, false);
	assert_int_equal(refused(), LIMITS_OK);
	assert_true(safety_reperfusion_ends(&f.s) == 0); /* nothing due while inflated */
}

static void test_SR_08_rest_deflation_does_not_need_reperfusion(void **state)
{
	(void)state;
	start_exercise(150);
	deflate_cmd(true);
	f.now += 300;
	sample(0);
	f.now += 30000;
	sample(0);
	inflate(150, false);
	assert_int_equal(refused(), LIMITS_OK);
}

/* An e-stop deflates every cuff, inflated or not: an idle cuff owes no reperfusion. */
static void test_SR_08_deflate_of_idle_cuff_needs_no_reperfusion(void **state)
{
	enum limits_refusal why = LIMITS_OK;

	(void)state;
	f.now += 1000;
	deflate_cmd(false);
	f.now += 100;
	sample(0);
	assert_int_equal(safety_may_inflate(&f.s, f.now, false, &why), 0);
	inflate(150, false);
	assert_int_equal(refused(), LIMITS_OK);
}

/* ---- SR-09 telemetry lost --------------------------------------------------------- */

static void test_SR_09_telemetry_lost_after_500ms(void **state)
{
	uint64_t t;
	const struct safety_action *a;

	(void)state;
	start_exercise(150);
	t = f.now;
	assert_int_equal(safety_next_deadline(&f.s), t + 501);
	f.now = t + 500;
	tick();
	assert_int_equal(f.n, 0);
	f.now = t + 501;
	tick();
	a = find(SAFETY_ACT_RAISE, ALARM_TELEMETRY_LOST);
	assert_non_null(a);
	assert_int_equal(a->priority, ALARM_PRIO_HIGH);
	assert_int_equal(a->kind, ALARM_KIND_TECHNICAL);
	assert_true(deflated());
	f.now += 100;
	tick();
	assert_false(raised(ALARM_TELEMETRY_LOST));
	f.now += 100;
	sample(100);
	assert_true(cleared(ALARM_TELEMETRY_LOST));
}

static void test_SR_09_no_telemetry_alarm_when_deflated(void **state)
{
	(void)state;
	f.now += 60000;
	tick();
	assert_int_equal(f.n, 0);
	assert_int_equal(safety_next_deadline(&f.s), SAFETY_NEVER);
}

/* ---- SR-10 link lost while inflated ------------------------------------------------ */

static void test_SR_10_link_lost_inflated_until_seen_deflated(void **state)
{
	(void)state;
	start_exercise(150);
	f.now += 100;
	simple(SAFETY_EV_LINK_DOWN);
	assert_true(raised(ALARM_LINK_LOST_INFLATED));
	assert_int_equal(find(SAFETY_ACT_RAISE, ALARM_LINK_LOST_INFLATED)->priority,
			 ALARM_PRIO_HIGH);
	assert_false(deflated()); /* cannot send; the cuff's supervision deflates it */
	f.now += 10000;
	tick();
	assert_int_equal(f.n, 0); /* no telemetry/deflate alarms while down */
	simple(SAFETY_EV_LINK_UP);
	assert_true(deflated()); /* unknown state after a gap: deflate first */
	f.now += 100;
	sample(20.0);
	assert_false(cleared(ALARM_LINK_LOST_INFLATED));
	f.now += 100;
	sample(19.9);
	assert_true(cleared(ALARM_LINK_LOST_INFLATED));
}

static void test_SR_10_link_lost_while_deflated_is_quiet(void **state)
{
	(void)state;
	simple(SAFETY_EV_LINK_DOWN);
	assert_int_equal(f.n, 0);
	simple(SAFETY_EV_LINK_UP);
	assert_int_equal(f.n, 0);
}

static void test_SR_10_cuff_found_inflated_at_connect_is_deflated(void **state)
{
	(void)state;
	simple(SAFETY_EV_LINK_DOWN);
	f.now += 100;
	simple(SAFETY_EV_LINK_UP);
	f.now += 100;
	sample(10.1); /* first sample after connect, nothing commanded */
	assert_true(deflated());
	f.now += 100;
	sample(10.1);
	assert_false(deflated()); /* only the first sample decides */
	/* Found at exactly 10 mmHg: not inflated, nothing to do. */
	simple(SAFETY_EV_LINK_DOWN);
	simple(SAFETY_EV_LINK_UP);
	sample(5);
	simple(SAFETY_EV_LINK_DOWN);
	simple(SAFETY_EV_LINK_UP);
	sample(10.0);
	assert_false(deflated());
}

/* ---- SR-11 deflation not confirmed / SR-12 re-issue -------------------------------- */

static void test_SR_11_deflate_failed_after_5s(void **state)
{
	uint64_t t;
	const struct safety_action *a;

	(void)state;
	start_exercise(150);
	t = f.now;
	deflate_cmd(false);
	cp_result(BFR_CP_DEFLATE, BFR_RESULT_SUCCESS);
	/* Pressure falls, but never below 20. */
	for (int i = 1; i <= 12; i++) {
		f.now = t + 400u * (unsigned)i;
		sample(150 - 10.0 * i);
		assert_false(raised(ALARM_DEFLATE_FAILED));
	}
	hold_quiet(30, 0, t + 5000); /* stuck at 30: re-sends happen below */
	f.now = t + 5000;
	tick();
	assert_false(raised(ALARM_DEFLATE_FAILED));
	assert_int_equal(safety_next_deadline(&f.s) <= t + 5001, true);
	f.now = t + 5001;
	tick();
	a = find(SAFETY_ACT_RAISE, ALARM_DEFLATE_FAILED);
	assert_non_null(a);
	assert_int_equal(a->priority, ALARM_PRIO_HIGH);
	assert_string_equal(a->message, "deflation not confirmed: remove cuff manually");
	assert_true(deflated()); /* re-sent with the alarm */
	f.now += 100;
	sample(19.9);
	assert_true(cleared(ALARM_DEFLATE_FAILED));
	assert_false(safety_deflate_pending(&f.s));
}

static void test_SR_11_deflate_confirmed_in_time_is_quiet(void **state)
{
	(void)state;
	start_exercise(150);
	deflate_cmd(false);
	cp_result(BFR_CP_DEFLATE, BFR_RESULT_SUCCESS);
	for (int i = 1; i <= 12; i++) {
		f.now += STEP;
		sample(150 - 13.0 * i); /* reaches 19.9 mmHg... */
		assert_false(raised(ALARM_DEFLATE_FAILED));
		assert_false(deflated()); /* success + falling: no re-send */
	}
	assert_false(safety_deflate_pending(&f.s));
	f.now += 60000;
	tick();
	assert_int_equal(f.n, 0);
}

static void test_SR_12_deflate_resent_every_1s_without_success(void **state)
{
	uint64_t t;
	int sends = 0;

	(void)state;
	start_exercise(150);
	t = f.now;
	deflate_cmd(false); /* no result ever comes, pressure stays */
	for (uint64_t ms = 100; ms <= 4900; ms += 100) {
		f.now = t + ms;
		sample(150);
		if (deflated()) {
			sends++;
			/* Bounded rate: only on whole seconds after the command. */
			assert_int_equal(ms % 1000, 0);
		}
	}
	assert_int_equal(sends, 4);
}

/* A routine DEFLATE re-sent is still routine: the session is not aborted as a
 * safety case, and a rest's DEFLATE re-sent starts no reperfusion. */
static void test_SR_12_resend_keeps_reason_and_rest(void **state)
{
	const struct safety_action *a;
	uint64_t t;

	(void)state;
	start_exercise(150);
	t = f.now;
	deflate_cmd(true); /* an intermittent rest; the cuff stays silent */
	f.now = t + 1000;
	sample(150);
	a = find(SAFETY_ACT_DEFLATE, -1);
	assert_non_null(a);
	assert_int_equal(a->deflate_reason, BFR_DEFLATE_NORMAL);
	f.now = t + 1100;
	sample(0); /* deflated after all */
	f.now = t + 2000;
	sample(0);
	inflate(150, false);
	assert_int_equal(refused(), LIMITS_OK); /* no reperfusion after a rest */
}

static void test_SR_12_deflate_resent_after_failure_result(void **state)
{
	uint64_t t;

	(void)state;
	start_exercise(150);
	t = f.now;
	deflate_cmd(false);
	cp_result(BFR_CP_DEFLATE, BFR_RESULT_BUSY);
	f.now = t + 999;
	sample(140); /* falling, but the cuff said busy */
	assert_false(deflated());
	f.now = t + 1000;
	sample(130);
	assert_true(deflated());
	/* Success but no falling pressure also re-sends. */
	cp_result(BFR_CP_DEFLATE, BFR_RESULT_SUCCESS);
	f.now = t + 2000;
	sample(130);
	assert_true(deflated());
}

/* ---- SR-13 sensor fault ------------------------------------------------------------- */

static void test_SR_13_nan_pressure_while_inflated_deflates(void **state)
{
	const struct safety_action *a;

	(void)state;
	start_exercise(150);
	f.now += 100;
	sample(NAN);
	assert_true(deflated());
	a = find(SAFETY_ACT_RAISE, ALARM_SENSOR_FAULT);
	assert_non_null(a);
	assert_int_equal(a->priority, ALARM_PRIO_HIGH);
	assert_int_equal(a->kind, ALARM_KIND_TECHNICAL);
	f.now += 100;
	sample(NAN);
	assert_false(raised(ALARM_SENSOR_FAULT)); /* once */
	inflate(150, false);
	assert_int_equal(refused(), LIMITS_REFUSE_SENSOR_FAULT);
	f.now += 100;
	sample(5);
	assert_true(cleared(ALARM_SENSOR_FAULT));
}

static void test_SR_13_sensor_fault_bit_and_implausible_values(void **state)
{
	(void)state;
	start_exercise(150);
	f.now += 100;
	sample_st(150, BFR_ST_SENSOR_FAULT);
	assert_true(deflated());
	assert_true(raised(ALARM_SENSOR_FAULT));
	setup_limb(BFR_LIMB_LEG);
	start_exercise(150);
	sample(-20.1);
	assert_true(deflated());
	assert_true(raised(ALARM_SENSOR_FAULT));
	setup_limb(BFR_LIMB_LEG);
	start_exercise(150);
	sample(INFINITY);
	assert_true(deflated());
	assert_true(raised(ALARM_SENSOR_FAULT));
}

static void test_SR_13_nan_when_idle_alarms_without_deflate(void **state)
{
	(void)state;
	sample(NAN);
	assert_false(deflated());
	assert_true(raised(ALARM_SENSOR_FAULT));
}

/* ---- SR-14 supervision deflated ------------------------------------------------------ */

static void test_SR_14_supervision_deflated_bit(void **state)
{
	const struct safety_action *a;

	(void)state;
	start_exercise(150);
	f.now += 100;
	sample_st(100, BFR_ST_SUPERVISION_DEFLATED);
	a = find(SAFETY_ACT_RAISE, ALARM_SUPERVISION_DEFLATED);
	assert_non_null(a);
	assert_int_equal(a->kind, ALARM_KIND_TECHNICAL);
	assert_true(f.s.target_mmhg == 0);
	f.now += 100;
	sample_st(5, 0);
	assert_true(cleared(ALARM_SUPERVISION_DEFLATED));
	/* The interrupted exercise counts as a deflation: reperfusion applies. */
	inflate(150, false);
	assert_int_equal(refused(), LIMITS_REFUSE_REPERFUSION);
}

/* ---- SR-15 LOP validity ------------------------------------------------------------- */

/* A failed or implausible measurement raises lop_invalid and keeps the last valid LOP. */
static void test_SR_15_invalid_measurement_keeps_last_valid_lop(void **state)
{
	int64_t age;

	(void)state;
	f.now += 5000;
	lop_set(NAN, f.now);
	assert_true(raised(ALARM_LOP_INVALID));
	assert_true(safety_lop(&f.s, f.now, &age) == LOP);
	assert_int_equal(age, 5); /* still the one measured at T0 */
	inflate(100, false);
	assert_int_equal(refused(), LIMITS_OK);
	deflate_cmd(true);
	sample(0);
	lop_set(350.1, f.now);
	assert_false(raised(ALARM_LOP_INVALID)); /* already present */
	assert_true(safety_lop(&f.s, f.now, NULL) == LOP);
	lop_set(350.0, f.now);
	assert_true(cleared(ALARM_LOP_INVALID));
	assert_true(safety_lop(&f.s, f.now, NULL) == 350.0);
	lop_set(49.9, f.now);
	assert_true(raised(ALARM_LOP_INVALID));
	assert_true(safety_lop(&f.s, f.now, NULL) == 350.0);
}

/* No LOP ever measured: no inflation. */
static void test_SR_15_no_lop_refuses_inflation(void **state)
{
	(void)state;
	assert_int_equal(safety_init(&f.s, &f.lim, f.now), 0);
	simple(SAFETY_EV_LINK_UP);
	battery(80);
	sample(0);
	lop_set(NAN, f.now);
	assert_true(raised(ALARM_LOP_INVALID));
	inflate(100, false);
	assert_int_equal(refused(), LIMITS_REFUSE_LOP_MISSING);
}

/* A LOP above the search ceiling MEASURE_LOP asked for cannot be true. */
static void test_SR_15_lop_above_search_ceiling_rejected(void **state)
{
	struct safety_event ev = { .type = SAFETY_EV_LOP_SET };

	(void)state;
	ev.lop.lop_mmhg = 300;
	ev.lop.search_ceiling_mmhg = 250;
	feed(ev);
	assert_true(raised(ALARM_LOP_INVALID));
	assert_true(find(SAFETY_ACT_RAISE, ALARM_LOP_INVALID)->values.limit == 300);
	assert_true(safety_lop(&f.s, f.now, NULL) == LOP);
	ev.lop.lop_mmhg = 250; /* exactly the ceiling is possible */
	feed(ev);
	assert_true(cleared(ALARM_LOP_INVALID));
	assert_true(safety_lop(&f.s, f.now, NULL) == 250);
}

/* A LOP restored from the database keeps its age, even one older than the clock. */
static void test_SR_15_restored_lop_keeps_its_age(void **state)
{
	struct safety_event ev = { .type = SAFETY_EV_LOP_SET };
	int64_t age;

	(void)state;
	ev.lop.lop_mmhg = 180;
	ev.lop.age_ms = (uint64_t)T0 + 3600000u; /* measured before the monotonic epoch */
	ev.lop.search_ceiling_mmhg = NAN;
	feed(ev);
	assert_true(safety_lop(&f.s, f.now, &age) == 180);
	assert_int_equal(age, (int64_t)(T0 + 3600000u) / 1000);
	ev.lop.age_ms = 86401u * 1000u; /* older than lop_max_age_s: refused, old one kept */
	ev.lop.lop_mmhg = 190;
	feed(ev);
	assert_true(raised(ALARM_LOP_INVALID));
	assert_true(safety_lop(&f.s, f.now, NULL) == 180);
}

static void test_SR_15_lop_too_old(void **state)
{
	uint64_t t = f.now;

	(void)state;
	f.now = t + 86400u * 1000u + 999u; /* age 86400 s: still valid */
	inflate(100, false);
	assert_int_equal(refused(), LIMITS_OK);
	deflate_cmd(true);
	sample(0);
	f.now = t + 86401u * 1000u;
	inflate(100, false);
	assert_int_equal(refused(), LIMITS_REFUSE_LOP_TOO_OLD);
}

static void lop_measure(bool unacked_high)
{
	struct safety_event ev = { .type = SAFETY_EV_LOP_MEASURE };

	ev.lop_measure.unacked_high = unacked_high;
	feed(ev);
}

static void test_SR_15_lop_measurement_suspends_occlusion_only(void **state)
{
	uint64_t t;

	(void)state;
	lop_measure(true);
	assert_int_equal(refused(), LIMITS_REFUSE_UNACKED_HIGH);
	lop_measure(false);
	assert_int_equal(refused(), LIMITS_OK);
	t = f.now;
	/* Occluding above the old LOP for 5 s is the measurement, not an alarm. */
	hold_quiet(230, 0, t + 5000);
	/* The ceiling still applies. */
	f.now += 100;
	sample(250.1);
	assert_true(deflated());
	assert_false(raised(ALARM_FULL_OCCLUSION));
	/* A new LOP ends the measurement: occlusion is checked again. */
	setup_limb(BFR_LIMB_LEG);
	lop_measure(false);
	f.now += 100;
	sample(220);
	lop_set(210, f.now);
	t = f.now;
	sample(220);
	hold_no(220, 0, t + 2000, ALARM_FULL_OCCLUSION);
	f.now = t + 2001;
	sample(220);
	assert_true(raised(ALARM_FULL_OCCLUSION));
	assert_true(deflated());
}

static void test_SR_15_lop_measurement_refused_over_exercise(void **state)
{
	(void)state;
	start_exercise(150);
	lop_measure(false);
	assert_int_equal(refused(), LIMITS_REFUSE_SAFETY_CONDITION);
	simple(SAFETY_EV_LINK_DOWN);
	setup_limb(BFR_LIMB_LEG);
	simple(SAFETY_EV_LINK_DOWN);
	lop_measure(false);
	assert_int_equal(refused(), LIMITS_REFUSE_LINK_DOWN);
}

/* ---- SR-16 battery ------------------------------------------------------------------ */

static void test_SR_16_battery_thresholds(void **state)
{
	enum limits_refusal why = LIMITS_OK;

	(void)state;
	battery(20);
	assert_int_equal(f.n, 0);
	battery(19);
	assert_true(raised(ALARM_BATTERY_LOW));
	assert_int_equal(find(SAFETY_ACT_RAISE, ALARM_BATTERY_LOW)->priority, ALARM_PRIO_LOW);
	battery(10);
	assert_int_equal(f.n, 0);
	assert_int_equal(safety_may_inflate(&f.s, f.now, false, &why), 0);
	battery(9);
	assert_true(raised(ALARM_BATTERY_CRITICAL));
	assert_int_equal(safety_may_inflate(&f.s, f.now, false, &why), -EPERM);
	assert_int_equal(why, LIMITS_REFUSE_BATTERY);
	battery(50);
	assert_true(cleared(ALARM_BATTERY_CRITICAL));
	assert_true(cleared(ALARM_BATTERY_LOW));
}

static void status_ev(uint8_t state, uint16_t faults, int battery_pct)
{
	struct safety_event ev = { .type = SAFETY_EV_STATUS };

	ev.status.state = state;
	ev.status.faults = faults;
	ev.status.battery_pct = battery_pct;
	feed(ev);
}

/* Battery unknown (never read) means no inflation; the Status read at connect tells it. */
static void test_SR_16_battery_unknown_refuses_inflation(void **state)
{
	enum limits_refusal why = LIMITS_OK;

	(void)state;
	assert_int_equal(safety_init(&f.s, &f.lim, f.now), 0);
	simple(SAFETY_EV_LINK_UP);
	lop_set(LOP, f.now);
	sample(0);
	assert_int_equal(safety_may_inflate(&f.s, f.now, false, &why), -EPERM);
	assert_int_equal(why, LIMITS_REFUSE_BATTERY_UNKNOWN);
	inflate(100, false);
	assert_int_equal(refused(), LIMITS_REFUSE_BATTERY_UNKNOWN);
	status_ev(BFR_STATE_IDLE, 0, 5);
	assert_true(raised(ALARM_BATTERY_CRITICAL));
	assert_int_equal(safety_may_inflate(&f.s, f.now, false, &why), -EPERM);
	assert_int_equal(why, LIMITS_REFUSE_BATTERY);
	status_ev(BFR_STATE_IDLE, 0, 60);
	assert_int_equal(safety_may_inflate(&f.s, f.now, false, &why), 0);
}

/* The cuff's own battery-low bit: LOW alarm and no new inflation, whatever the %. */
static void test_SR_16_battery_low_status_bit(void **state)
{
	enum limits_refusal why = LIMITS_OK;

	(void)state;
	sample_st(0, BFR_ST_BATTERY_LOW);
	assert_true(raised(ALARM_BATTERY_LOW));
	assert_int_equal(safety_may_inflate(&f.s, f.now, false, &why), -EPERM);
	assert_int_equal(why, LIMITS_REFUSE_BATTERY);
	sample_st(0, 0);
	assert_true(cleared(ALARM_BATTERY_LOW));
	assert_int_equal(safety_may_inflate(&f.s, f.now, false, &why), 0);
}

/* ---- SR-25 a cuff that reports a fault ------------------------------------------------- */

static void test_SR_25_status_fault_refuses_inflation_and_lop(void **state)
{
	enum limits_refusal why = LIMITS_OK;

	(void)state;
	status_ev(BFR_STATE_FAULT, 0, 80);
	assert_true(raised(ALARM_CUFF_FAULT));
	assert_int_equal(find(SAFETY_ACT_RAISE, ALARM_CUFF_FAULT)->priority, ALARM_PRIO_MEDIUM);
	assert_false(deflated()); /* not inflated: nothing to deflate */
	assert_int_equal(safety_may_inflate(&f.s, f.now, false, &why), -EPERM);
	assert_int_equal(why, LIMITS_REFUSE_CUFF_FAULT);
	lop_measure(false);
	assert_int_equal(refused(), LIMITS_REFUSE_CUFF_FAULT);
	status_ev(BFR_STATE_IDLE, BFR_FAULT_LOP_FAILED, 80); /* not a hardware fault */
	assert_true(cleared(ALARM_CUFF_FAULT));
	assert_int_equal(safety_may_inflate(&f.s, f.now, false, &why), 0);
	status_ev(BFR_STATE_IDLE, BFR_FAULT_VALVE_STUCK, 80);
	assert_true(raised(ALARM_CUFF_FAULT));
}

static void test_SR_25_relief_valve_bit_while_inflated_deflates(void **state)
{
	enum limits_refusal why = LIMITS_OK;

	(void)state;
	start_exercise(150);
	f.now += 100;
	sample_st(150, BFR_ST_RELIEF_TRIPPED);
	assert_true(deflated());
	assert_int_equal(f.a[0].cause, ALARM_CUFF_FAULT);
	assert_true(raised(ALARM_CUFF_FAULT));
	f.now += 100;
	sample_st(5, 0);
	assert_true(cleared(ALARM_CUFF_FAULT));
	assert_int_equal(safety_may_inflate(&f.s, f.now, false, &why), -EPERM);
	assert_int_equal(why, LIMITS_REFUSE_REPERFUSION); /* an exercise ended */
}

/* ---- SR-24 an unconfirmed safety DEFLATE releases the cuff to its fail-safe -------- */

static void test_SR_24_unanswered_safety_deflate_releases_once(void **state)
{
	uint64_t t;

	(void)state;
	start_exercise(150);
	f.now += 100;
	t = f.now;
	sample(250.1);
	assert_true(deflated());
	assert_int_equal(count(SAFETY_ACT_RELEASE, -1), 0);
	/* No CP result, pressure not falling: at 1000 ms the engine releases. */
	f.now = t + 400;
	sample(240);
	assert_int_equal(count(SAFETY_ACT_RELEASE, -1), 0);
	f.now = t + 999;
	sample(240);
	assert_int_equal(count(SAFETY_ACT_RELEASE, -1), 0);
	f.now = t + 1000;
	sample(240);
	assert_int_equal(count(SAFETY_ACT_RELEASE, -1), 1);
	assert_int_equal(find(SAFETY_ACT_RELEASE, -1)->cause, ALARM_OVER_PRESSURE_CEILING);
	assert_true(deflated()); /* and the DEFLATE is re-sent too */
	f.now = t + 2000;
	sample(240);
	assert_true(deflated());
	assert_int_equal(count(SAFETY_ACT_RELEASE, -1), 0); /* once */
}

static void test_SR_24_confirmed_or_routine_deflate_releases_nothing(void **state)
{
	(void)state;
	/* Confirmed and falling: no release. */
	start_exercise(150);
	f.now += 100;
	sample(250.1);
	cp_result(BFR_CP_DEFLATE, BFR_RESULT_SUCCESS);
	for (int i = 0; i < 5; i++) {
		f.now += 400;
		sample(200 - 30 * i);
		assert_int_equal(count(SAFETY_ACT_RELEASE, -1), 0);
	}
	/* A routine DEFLATE nobody answers is re-sent, not released (SR-11
	 * raises it to a safety one after 5 s). */
	setup_limb(BFR_LIMB_LEG);
	start_exercise(150);
	deflate_cmd(false);
	for (int i = 0; i < 10; i++) {
		f.now += 400;
		sample(150);
		assert_int_equal(count(SAFETY_ACT_RELEASE, -1), 0);
	}
}

/* ---- SR-06 / SR-07 a LOP search is not exercise time ------------------------------- */

static void test_SR_06_lop_search_does_not_start_the_continuous_clock(void **state)
{
	uint64_t t;

	(void)state;
	assert_int_equal(limits_override(&f.lim, LIMITS_F_MAX_INFLATION_S, 60, NULL), 0);
	f.s.lim = f.lim;
	simple(SAFETY_EV_SESSION_START);
	lop_measure(false);
	hold_no(150, 0, f.now + 40000, ALARM_INFLATION_TIME); /* a 40 s search */
	lop_set(210, f.now);
	t = f.now;
	inflate(150, false);
	assert_int_equal(refused(), LIMITS_OK);
	/* 60 s from the end of the search, not from its start. */
	hold_no(150, 0, t + 60000, ALARM_INFLATION_TIME);
	f.now = t + 60001;
	sample(150);
	assert_true(raised(ALARM_INFLATION_TIME));
	/* The session total counted the exercise only. */
	assert_true(safety_session_inflated_ms(&f.s) <= 60001);
}

/* ---- SR-17 unacknowledged HIGH blocks a new inflation -------------------------------- */

static void test_SR_17_unacked_high_blocks_new_inflation(void **state)
{
	enum limits_refusal why = LIMITS_OK;

	(void)state;
	inflate(150, true);
	assert_int_equal(refused(), LIMITS_REFUSE_UNACKED_HIGH);
	assert_int_equal(safety_may_inflate(&f.s, f.now, true, &why), -EPERM);
	assert_int_equal(why, LIMITS_REFUSE_UNACKED_HIGH);
	simple(SAFETY_EV_LINK_DOWN);
	inflate(150, false);
	assert_int_equal(refused(), LIMITS_REFUSE_LINK_DOWN);
}

/* ---- SR-21 nothing on the safety path allocates ------------------------------------- */

static void test_SR_21_safety_path_never_allocates(void **state)
{
	(void)state;
	test_alloc_fail_after(0);
	start_exercise(150);
	for (int i = 0; i < 50; i++) {
		f.now += 100;
		sample(i % 2 ? 260 : NAN);
		tick();
	}
	assert_int_equal(test_alloc_count(), 0);
	test_alloc_reset();
}

/* ---- SR-22 invalid input changes nothing -------------------------------------------- */

static void expect_einval(const struct safety_event *ev)
{
	struct safety_state before = f.s;
	size_t n = 77;

	assert_int_equal(safety_handle(&f.s, ev, f.now, f.a, SAFETY_MAX_ACTIONS, &n), -EINVAL);
	assert_int_equal(n, 77);
	assert_memory_equal(&before, &f.s, sizeof(before));
}

static void test_SR_22_garbage_events_change_nothing(void **state)
{
	struct safety_event ev;
	size_t n = 77;

	(void)state;
	start_exercise(150);
	memset(&ev, 0, sizeof(ev));
	expect_einval(&ev); /* type 0 */
	ev.type = (enum safety_event_type)99;
	expect_einval(&ev);
	ev.type = SAFETY_EV_BATTERY;
	ev.battery.pct = 101;
	expect_einval(&ev);
	ev.battery.pct = -1;
	expect_einval(&ev);
	ev.type = SAFETY_EV_DEFLATE_CMD;
	ev.deflate.reason = 3;
	expect_einval(&ev);
	ev.type = SAFETY_EV_CP_RESULT;
	ev.cp_result.opcode = BFR_CP_DEFLATE;
	ev.cp_result.result = 6;
	expect_einval(&ev);
	ev.cp_result.opcode = 0x42;
	ev.cp_result.result = 0;
	expect_einval(&ev);
	ev.type = SAFETY_EV_LOP_SET;
	ev.lop.lop_mmhg = INFINITY;
	ev.lop.search_ceiling_mmhg = NAN;
	expect_einval(&ev);
	ev.lop.lop_mmhg = 200;
	ev.lop.search_ceiling_mmhg = -1;
	expect_einval(&ev);
	ev.lop.search_ceiling_mmhg = INFINITY;
	expect_einval(&ev);
	ev.type = SAFETY_EV_STATUS;
	ev.status.state = BFR_STATE_FAULT + 1;
	ev.status.battery_pct = 50;
	expect_einval(&ev);
	ev.status.state = BFR_STATE_IDLE;
	ev.status.battery_pct = 101;
	expect_einval(&ev);
	ev.status.battery_pct = -1;
	expect_einval(&ev);
	ev.type = SAFETY_EV_TICK;
	assert_int_equal(safety_handle(&f.s, &ev, f.now, f.a, SAFETY_MAX_ACTIONS - 1, &n),
			 -EINVAL);
	assert_int_equal(safety_handle(NULL, &ev, f.now, f.a, SAFETY_MAX_ACTIONS, &n), -EINVAL);
	assert_int_equal(safety_handle(&f.s, NULL, f.now, f.a, SAFETY_MAX_ACTIONS, &n), -EINVAL);
	assert_int_equal(safety_handle(&f.s, &ev, f.now, NULL, SAFETY_MAX_ACTIONS, &n), -EINVAL);
	assert_int_equal(safety_handle(&f.s, &ev, f.now, f.a, SAFETY_MAX_ACTIONS, NULL), -EINVAL);
	assert_int_equal(n, 77);
	assert_int_equal(safety_init(&f.s, NULL, 0), -EINVAL);
}

static void test_time_going_backwards_still_checks(void **state)
{
	(void)state;
	start_exercise(150);
	f.now -= 5000;
	sample(251);
	assert_true(deflated());
	assert_int_equal(f.s.now_ms, T0 + 100); /* clamped, not rewound */
}

/* ---- engine + alarm table, wired as docs/safety.md tells the integrator --------- */

static void execute(struct alarm_table *t, const char *cuff)
{
	for (size_t i = 0; i < f.n; i++) {
		const struct safety_action *a = &f.a[i];

		if (a->type == SAFETY_ACT_RAISE)
			assert_int_equal(alarm_raise(t, cuff, "s1", a->code, a->message, &a->values,
						     f.now, NULL),
					 0);
		else if (a->type == SAFETY_ACT_CLEAR)
			assert_int_equal(alarm_condition_cleared(t, cuff, a->code, f.now), 0);
	}
}

static void test_SR_17_latched_high_blocks_until_acked(void **state)
{
	struct alarm_table *t = NULL;
	const struct alarm_record *r;
	uint64_t t_down;

	(void)state;
	assert_int_equal(alarm_table_new("gw", alarm_table_capacity_for(1), 1, NULL, NULL, &t), 0);
	start_exercise(150);
	f.now += 100;
	sample(251);
	execute(t, "bay1");
	assert_true(deflated());
	f.now += 100;
	sample(100);
	execute(t, "bay1");
	f.now += 100;
	t_down = f.now;
	sample(5);
	execute(t, "bay1");
	r = alarm_find_open(t, "bay1", ALARM_OVER_PRESSURE_CEILING);
	assert_non_null(r);
	assert_int_equal(r->state, ALARM_STATE_ACTIVE); /* latched */
	assert_false(r->condition_present);
	f.now = t_down + 60000;
	inflate(150, alarm_has_unacked_high(t, "bay1"));
	assert_int_equal(refused(), LIMITS_REFUSE_UNACKED_HIGH);
	assert_int_equal(alarm_ack(t, r->alarm_id, "nurse", f.now), 0);
	assert_null(alarm_find_open(t, "bay1", ALARM_OVER_PRESSURE_CEILING));
	inflate(150, alarm_has_unacked_high(t, "bay1"));
	assert_int_equal(refused(), LIMITS_OK);
	alarm_table_free(t);
}

/* ---- SR-23 frozen sensor ---------------------------------------------------------- */

#define FREEZE_P 150.0
#define FREEZE_PULSE 1.234

/* Feeds the frozen reading every step_ms, n times; asserts nothing happens. */
static void frozen_quiet(unsigned n, uint64_t step_ms)
{
	for (unsigned i = 0; i < n; i++) {
		f.now += step_ms;
		sample_full(FREEZE_P, FREEZE_PULSE, 0);
		assert_int_equal(f.n, 0);
	}
}

static void assert_freeze_raised(void)
{
	const struct safety_action *a;

	assert_true(deflated());
	assert_int_equal(f.a[0].deflate_reason, BFR_DEFLATE_SAFETY);
	a = find(SAFETY_ACT_RAISE, ALARM_SENSOR_FAULT);
	assert_non_null(a);
	assert_int_equal(a->priority, ALARM_PRIO_HIGH);
	assert_int_equal(a->kind, ALARM_KIND_TECHNICAL);
	assert_true(a->values.limit == SAFETY_FREEZE_MS / 1000.0);
	assert_true(a->values.pressure_mmhg == FREEZE_P);
	assert_true(a->values.duration_s > SAFETY_FREEZE_MS / 1000.0);
	assert_non_null(strstr(a->message, "frozen"));
}

static void test_SR_23_frozen_exactly_3000ms_is_allowed_1ms_more_deflates(void **state)
{
	uint64_t t0;

	(void)state;
	start_exercise(FREEZE_P);
	f.now += 100;
	t0 = f.now;
	sample_full(FREEZE_P, FREEZE_PULSE, 0); /* first of the run */
	assert_int_equal(f.n, 0);
	frozen_quiet(30, 100); /* 31 samples, spanning exactly 3000 ms */
	assert_true(f.now - t0 == SAFETY_FREEZE_MS);
	f.now += 1;
	sample_full(FREEZE_P, FREEZE_PULSE, 0);
	assert_freeze_raised();
	assert_true(safety_condition_present(&f.s, ALARM_SENSOR_FAULT));
}

static void test_SR_23_frozen_exactly_20_samples_allowed_21st_deflates(void **state)
{
	(void)state;
	start_exercise(FREEZE_P);
	/* 20 identical samples 400 ms apart span 7600 ms: the time rule is met,
	 * the count (> 20) is not. */
	f.now += 100;
	sample_full(FREEZE_P, FREEZE_PULSE, 0);
	assert_int_equal(f.n, 0);
	frozen_quiet(SAFETY_FREEZE_SAMPLES - 1, STEP);
	f.now += STEP;
	sample_full(FREEZE_P, FREEZE_PULSE, 0);
	assert_freeze_raised();
}

static void test_SR_23_batch_at_one_instant_needs_the_time_too(void **state)
{
	(void)state;
	start_exercise(FREEZE_P);
	/* 200 identical samples in 2 ms bursts (batched notifications) over 2000 ms. */
	for (int i = 0; i < 200; i++) {
		if (i % 20 == 0)
			f.now += 200;
		sample_full(FREEZE_P, FREEZE_PULSE, 0);
		assert_int_equal(f.n, 0);
	}
}

static void test_SR_23_pressure_or_pulse_moving_is_not_frozen(void **state)
{
	(void)state;
	start_exercise(FREEZE_P);
	/* Same pressure for 60 s, the pulse amplitude moves by 0.001 mmHg. */
	for (int i = 0; i < 600; i++) {
		f.now += 100;
		sample_full(FREEZE_P, FREEZE_PULSE + 0.001 * (i % 2), 0);
		assert_int_equal(f.n, 0);
	}
	/* Same pulse amplitude (e.g. 0 at or above the LOP), the pressure moves by 0.1. */
	for (int i = 0; i < 600; i++) {
		f.now += 100;
		sample_full(FREEZE_P + 0.1 * (i % 2), 0.0, 0);
		assert_int_equal(f.n, 0);
	}
	/* A run broken once, just before the limit, starts over. */
	sample_full(FREEZE_P, FREEZE_PULSE, 0);
	frozen_quiet(30, 100);
	f.now += 1;
	sample_full(FREEZE_P + 0.1, FREEZE_PULSE, 0);
	assert_int_equal(f.n, 0);
	f.now += 1;
	sample_full(FREEZE_P, FREEZE_PULSE, 0);
	assert_int_equal(f.n, 0);
	frozen_quiet(30, 100);
	f.now += 1;
	sample_full(FREEZE_P, FREEZE_PULSE, 0);
	assert_freeze_raised();
}

static void test_SR_23_deflated_cuff_may_read_a_steady_value(void **state)
{
	(void)state;
	/* Idle: 0.0 and then exactly 10.0 (not above the inflated threshold) for minutes. */
	for (int i = 0; i < 1200; i++) {
		f.now += 100;
		sample_full(i < 600 ? 0.0 : SAFETY_INFLATED_ABOVE_MMHG, 0.0, 0);
		assert_int_equal(f.n, 0);
	}
	assert_false(safety_condition_present(&f.s, ALARM_SENSOR_FAULT));
}

static void test_SR_23_frozen_while_commanded_but_reading_zero(void **state)
{
	(void)state;
	/* A sensor stuck at 0 while the pump runs: inflated by the engine's notion (target). */
	inflate(FREEZE_P, false);
	assert_int_equal(refused(), LIMITS_OK);
	for (int i = 0; i <= 30; i++) {
		f.now += 100;
		sample_full(0.0, 0.0, BFR_ST_PUMP_ON);
		assert_int_equal(f.n, 0);
	}
	f.now += 1;
	sample_full(0.0, 0.0, BFR_ST_PUMP_ON);
	assert_true(deflated());
	assert_true(raised(ALARM_SENSOR_FAULT));
}

static void test_SR_23_frozen_blocks_inflation_confirms_nothing_clears_when_moving(void **state)
{
	(void)state;
	start_exercise(FREEZE_P);
	f.now += 100;
	sample_full(FREEZE_P, FREEZE_PULSE, 0);
	frozen_quiet(30, 100);
	f.now += 1;
	sample_full(FREEZE_P, FREEZE_PULSE, 0);
	assert_freeze_raised();
	/* Still frozen: raised once, DEFLATE re-sent only by the tracking (1/s). */
	f.now += 100;
	sample_full(FREEZE_P, FREEZE_PULSE, 0);
	assert_int_equal(f.n, 0);
	inflate(FREEZE_P, false);
	assert_int_equal(refused(), LIMITS_REFUSE_SENSOR_FAULT);
	/* The frozen reading never confirms the DEFLATE: deflate_failed after 5 s. */
	for (int i = 0; i < 60 && !raised(ALARM_DEFLATE_FAILED); i++) {
		f.now += 100;
		sample_full(FREEZE_P, FREEZE_PULSE, 0);
		assert_false(cleared(ALARM_SENSOR_FAULT));
	}
	assert_true(raised(ALARM_DEFLATE_FAILED));
	/* The reading moves (the cuff went down meanwhile): fault clears, deflation seen. */
	f.now += 100;
	sample_full(3.2, 0.004, 0);
	assert_true(cleared(ALARM_SENSOR_FAULT));
	assert_true(cleared(ALARM_DEFLATE_FAILED));
	assert_false(safety_condition_present(&f.s, ALARM_SENSOR_FAULT));
	assert_false(safety_deflate_pending(&f.s));
}

static void test_SR_23_frozen_below_10_after_deflate_stays_until_it_moves(void **state)
{
	(void)state;
	inflate(FREEZE_P, false);
	for (int i = 0; i <= 30; i++) {
		f.now += 100;
		sample_full(8.0, 0.5, BFR_ST_PUMP_ON);
	}
	f.now += 1;
	sample_full(8.0, 0.5, BFR_ST_PUMP_ON);
	assert_true(raised(ALARM_SENSOR_FAULT));
	/* Deflating (target dropped), still frozen at 8.0 < 10: the fault stays. */
	for (int i = 0; i < 50; i++) {
		f.now += 100;
		sample_full(8.0, 0.5, 0);
		assert_false(cleared(ALARM_SENSOR_FAULT));
	}
	assert_true(safety_condition_present(&f.s, ALARM_SENSOR_FAULT));
	f.now += 100;
	sample_full(0.0, 0.0, 0);
	assert_true(cleared(ALARM_SENSOR_FAULT));
}

static void test_SR_23_link_down_restarts_a_run_but_not_a_frozen_one(void **state)
{
	(void)state;
	start_exercise(FREEZE_P);
	f.now += 100;
	sample_full(FREEZE_P, FREEZE_PULSE, 0);
	frozen_quiet(29, 100);
	simple(SAFETY_EV_LINK_DOWN);
	simple(SAFETY_EV_LINK_UP);
	for (int i = 0; i < 30; i++) {
		f.now += 100;
		sample_full(FREEZE_P, FREEZE_PULSE, 0);
		assert_false(raised(ALARM_SENSOR_FAULT));
	}
	f.now += 101;
	sample_full(FREEZE_P, FREEZE_PULSE, 0);
	assert_true(raised(ALARM_SENSOR_FAULT));
	/* Still frozen after a reconnect: the fault does not clear. */
	simple(SAFETY_EV_LINK_DOWN);
	f.now += 1000;
	simple(SAFETY_EV_LINK_UP);
	for (int i = 0; i < 40; i++) {
		f.now += 100;
		sample_full(FREEZE_P, FREEZE_PULSE, 0);
		assert_false(cleared(ALARM_SENSOR_FAULT));
	}
	assert_true(safety_condition_present(&f.s, ALARM_SENSOR_FAULT));
}

static void test_SR_23_nan_restarts_the_run(void **state)
{
	(void)state;
	start_exercise(FREEZE_P);
	f.now += 100;
	sample_full(FREEZE_P, FREEZE_PULSE, 0);
	frozen_quiet(29, 100);
	f.now += 100;
	sample_full(NAN, FREEZE_PULSE, 0); /* SR-13 itself */
	assert_true(raised(ALARM_SENSOR_FAULT));
	f.now += 100;
	sample_full(FREEZE_P, FREEZE_PULSE, 0); /* valid again: clears, new run */
	assert_true(cleared(ALARM_SENSOR_FAULT));
	for (int i = 0; i < 30; i++) {
		f.now += 100;
		sample_full(FREEZE_P, FREEZE_PULSE, 0);
		assert_false(raised(ALARM_SENSOR_FAULT));
	}
}

/*
 * What a healthy cuff sends (cuffsim/model.c): a static pressure plus half
 * the pulse amplitude times a 1.2 Hz sine plus Gaussian noise, and the pulse
 * amplitude 4 x pulse_max x (p/LOP)(1 - p/LOP), both through the SFLOAT
 * encoding the profile uses (0.1 mmHg up to 204.5, whole mmHg above).
 */
static uint64_t hs_rng = 0x243f6a8885a308d3ull;

static double hs_uniform(void)
{
	hs_rng ^= hs_rng << 13;
	hs_rng ^= hs_rng >> 7;
	hs_rng ^= hs_rng << 17;
	return ((double)(hs_rng >> 11) + 0.5) / 9007199254740992.0;
}

static double hs_normal(void)
{
	return sqrt(-2.0 * log(hs_uniform())) * cos(2.0 * M_PI * hs_uniform());
}

static double wire(double v)
{
	uint16_t raw;

	assert_int_equal(sfloat_encode(v, &raw), 0);
	return sfloat_to_double(raw);
}

/* Samples a steady static pressure for dur_ms at rate_hz; asserts no sensor fault. */
static void healthy_stream(double p_static, double lop, double pulse_max, double sigma,
			   unsigned rate_hz, uint64_t dur_ms)
{
	double x = p_static / lop;
	double amp = x >= 1.0 ? 0.0 : pulse_max * 4.0 * x * (1.0 - x);
	uint64_t start = f.now;
	unsigned k = 0;

	while (f.now - start < dur_ms) {
		double t_s = (double)k++ / rate_hz;
		double p = p_static + amp / 2.0 * sin(2.0 * M_PI * 1.2 * t_s) + sigma * hs_normal();

		f.now = start + (uint64_t)k * 1000u / rate_hz;
		sample_full(wire(fmax(0.0, p)), wire(amp), 0);
		assert_false(raised(ALARM_SENSOR_FAULT));
		assert_false(deflated());
	}
}

static void test_SR_23_healthy_streams_never_look_frozen(void **state)
{
	static const unsigned rates[] = { 10, 50 };

	(void)state;
	for (size_t r = 0; r < sizeof(rates) / sizeof(rates[0]); r++) {
		/* Above 204.5 mmHg (1 mmHg steps): leg, LOP 300, 240 = 80 %, a perfectly
		 * steady static pressure (worst case) with its pulsation (~1.9 mmHg). */
		setup_limb(BFR_LIMB_LEG);
		lop_set(300, f.now);
		start_exercise(240);
		healthy_stream(240, 300, 3.0, 0.1, rates[r], 300000);
		/* Arm, small pulse (pulse_max 2), 60 % of LOP 140, low noise. */
		setup_limb(BFR_LIMB_ARM);
		lop_set(140, f.now);
		start_exercise(84);
		healthy_stream(84, 140, 2.0, 0.1, rates[r], 300000);
		/* At or above the LOP (LOP measurement: no pulse at all), noise only,
		 * 0.1 mmHg steps (above 204.5 see the next test). */
		setup_limb(BFR_LIMB_LEG);
		simple(SAFETY_EV_LOP_MEASURE);
		assert_int_equal(refused(), LIMITS_OK);
		healthy_stream(185.0, 180, 3.0, 0.1, rates[r], 60000);
		assert_false(safety_condition_present(&f.s, ALARM_SENSOR_FAULT));
	}
}

static void test_SR_23_only_full_occlusion_looks_frozen_and_it_deflates_first(void **state)
{
	uint64_t start;
	double prev = NAN;

	(void)state;
	/*
	 * The one stream the rule cannot tell from a frozen sensor: above 204.5
	 * (1 mmHg steps), at or above the LOP (no pulse), low noise. Held, that
	 * is full occlusion, which SR-02 deflates after 2 s, before SR-23's 3 s.
	 */
	setup_limb(BFR_LIMB_LEG);
	lop_set(300, f.now);
	start_exercise(240);
	lop_set(230, f.now); /* the LOP fell under the exercise: 240 >= 100 % LOP */
	start = f.now;
	while (!deflated()) {
		f.now += 20;
		prev = wire(240.0 + 0.1 * hs_normal());
		sample_full(prev, 0.0, 0);
		assert_false(raised(ALARM_SENSOR_FAULT));
	}
	assert_true(raised(ALARM_FULL_OCCLUSION));
	assert_true(f.now - start > 2000 && f.now - start < SAFETY_FREEZE_MS);
}

/* ---- property test ------------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state % n);
}

static void test_property_random_streams(void **state)
{
	(void)state;
	for (int run = 0; run < 40; run++) {
		uint32_t open_raised = 0;
		struct safety_event last = { .type = SAFETY_EV_TICK };
		uint32_t frozen_n = 0; /* identical valid samples above 10 mmHg in a row */
		uint64_t frozen_since = 0;

		setup_limb(run % 2 ? BFR_LIMB_LEG : BFR_LIMB_ARM);
		for (int i = 0; i < 3000; i++) {
			struct safety_event ev = { .type = SAFETY_EV_SAMPLE };
			uint32_t k = rnd(100);
			double ceiling = f.s.lim.max_pressure_mmhg;
			bool over = false;
			uint64_t deadline;

			f.now += rnd(700);
			if (k < 70 && last.type == SAFETY_EV_SAMPLE && rnd(8) != 0) {
				/* Mostly the same reading again: frozen runs (SR-23) of every length. */
				ev = last;
				over = ev.sample.pressure_mmhg > ceiling;
			} else if (k < 70) {
				double p = (double)rnd(3200) / 10.0 - 5;

				if (rnd(50) == 0)
					p = NAN;
				ev.sample.pressure_mmhg = p;
				ev.sample.status = (uint16_t)rnd(0x200);
				ev.sample.pulse_mmhg = rnd(20) == 0 ? NAN : (double)rnd(500) / 100.0;
				over = p > ceiling;
			} else if (k < 80) {
				ev.type = SAFETY_EV_TICK;
			} else if (k < 86) {
				ev.type = SAFETY_EV_INFLATE_CMD;
				ev.inflate.target_mmhg = (double)rnd(2600) / 10.0;
				ev.inflate.unacked_high = rnd(4) == 0;
			} else if (k < 91) {
				ev.type = SAFETY_EV_DEFLATE_CMD;
				ev.deflate.reason = (uint8_t)rnd(3);
				ev.deflate.rest = rnd(2);
			} else if (k < 94) {
				ev.type = SAFETY_EV_CP_RESULT;
				ev.cp_result.opcode = BFR_CP_DEFLATE;
				ev.cp_result.result = (uint8_t)rnd(6);
			} else if (k < 96) {
				ev.type = rnd(2) ? SAFETY_EV_LINK_DOWN : SAFETY_EV_LINK_UP;
			} else if (k < 97) {
				ev.type = rnd(2) ? SAFETY_EV_SESSION_START : SAFETY_EV_SESSION_END;
			} else if (k < 98 && rnd(2)) {
				ev.type = SAFETY_EV_LOP_MEASURE;
				ev.lop_measure.unacked_high = rnd(4) == 0;
			} else if (k < 98) {
				ev.type = SAFETY_EV_LOP_SET;
				ev.lop.lop_mmhg = (double)rnd(4000) / 10.0;
				ev.lop.age_ms = rnd(1000);
				ev.lop.search_ceiling_mmhg = rnd(2) ? NAN : 250;
			} else {
				ev.type = SAFETY_EV_BATTERY;
				ev.battery.pct = (int)rnd(101);
			}
			feed(ev);
			if (ev.type == SAFETY_EV_SAMPLE) {
				double p = ev.sample.pressure_mmhg;
				bool valid = isfinite(p) && p > SAFETY_INFLATED_ABOVE_MMHG &&
					     !(ev.sample.status & BFR_ST_SENSOR_FAULT);

				if (valid && frozen_n > 0 && memcmp(&ev, &last, sizeof(ev)) == 0) {
					frozen_n++;
				} else if (valid) {
					frozen_n = 1;
					frozen_since = f.now;
				} else {
					frozen_n = 0;
				}
				last = ev;
			} else if (ev.type == SAFETY_EV_LINK_DOWN) {
				frozen_n = 0;
			}
			/* A reading frozen beyond SR-23's limits always has the sensor fault. */
			if (frozen_n > SAFETY_FREEZE_SAMPLES && f.now - frozen_since > SAFETY_FREEZE_MS)
				assert_true(safety_condition_present(&f.s, ALARM_SENSOR_FAULT));
			/* Over the ceiling never goes without a DEFLATE in the same call. */
			if (over)
				assert_true(deflated());
			assert_true(count(SAFETY_ACT_DEFLATE, -1) <= 1);
			if (deflated())
				assert_int_equal(f.a[0].type, SAFETY_ACT_DEFLATE);
			/* Raise and clear alternate per code. */
			for (size_t j = 0; j < f.n; j++) {
				uint32_t bit = 1u << f.a[j].code;

				if (f.a[j].type == SAFETY_ACT_RAISE) {
					assert_false(open_raised & bit);
					open_raised |= bit;
				} else if (f.a[j].type == SAFETY_ACT_CLEAR) {
					assert_true(open_raised & bit);
					open_raised &= ~bit;
				}
			}
			/* The deadline is always in the future: the timer cannot spin. */
			deadline = safety_next_deadline(&f.s);
			assert_true(deadline > f.now);
			/* Continuous inflation never passes its limit without the alarm. */
			if (f.s.inflated && f.now - f.s.inflated_since_ms >
						    (uint64_t)f.s.lim.max_inflation_s * 1000u)
				assert_true(safety_condition_present(&f.s, ALARM_INFLATION_TIME));
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_SR_01_ceiling_exact_is_allowed, setup),
		cmocka_unit_test_setup(test_SR_01_ceiling_one_tick_over_deflates_at_once, setup),
		cmocka_unit_test_setup(test_SR_01_ceiling_arm_and_override, setup),
		cmocka_unit_test_setup(test_SR_01_ceiling_even_when_idle_or_faulty, setup),
		cmocka_unit_test_setup(test_SR_02_full_occlusion_deflates_after_2s, setup),
		cmocka_unit_test_setup(test_SR_02_below_lop_never_occludes, setup),
		cmocka_unit_test_setup(test_SR_03_inflate_above_pct_lop_refused, setup),
		cmocka_unit_test_setup(test_SR_03_target_above_ceiling_refused, setup),
		cmocka_unit_test_setup(test_SR_04_pressure_high_after_1s_out_of_band, setup),
		cmocka_unit_test_setup(test_SR_04_pressure_low_after_1s_out_of_band, setup),
		cmocka_unit_test_setup(test_SR_04_no_band_alarm_during_ramp, setup),
		cmocka_unit_test_setup(test_SR_05_leak_after_7s_with_pump, setup),
		cmocka_unit_test_setup(test_SR_05_no_leak_at_exactly_15_or_pump_off, setup),
		cmocka_unit_test_setup(test_SR_06_inflation_time_warn_at_80pct_then_deflate, setup),
		cmocka_unit_test_setup(test_SR_07_session_total_deflates_and_blocks_further_inflation,
				       setup),
		cmocka_unit_test_setup(test_SR_07_session_total_exactly_used_up_refuses, setup),
		cmocka_unit_test_setup(test_SR_08_reperfusion_60s_after_deflation, setup),
		cmocka_unit_test_setup(test_SR_08_rest_deflation_does_not_need_reperfusion, setup),
		cmocka_unit_test_setup(test_SR_08_deflate_of_idle_cuff_needs_no_reperfusion, setup),
		cmocka_unit_test_setup(test_SR_09_telemetry_lost_after_500ms, setup),
		cmocka_unit_test_setup(test_SR_09_no_telemetry_alarm_when_deflated, setup),
		cmocka_unit_test_setup(test_SR_10_link_lost_inflated_until_seen_deflated, setup),
		cmocka_unit_test_setup(test_SR_10_link_lost_while_deflated_is_quiet, setup),
		cmocka_unit_test_setup(test_SR_10_cuff_found_inflated_at_connect_is_deflated, setup),
		cmocka_unit_test_setup(test_SR_11_deflate_failed_after_5s, setup),
		cmocka_unit_test_setup(test_SR_12_resend_keeps_reason_and_rest, setup),
		cmocka_unit_test_setup(test_SR_11_deflate_confirmed_in_time_is_quiet, setup),
		cmocka_unit_test_setup(test_SR_12_deflate_resent_every_1s_without_success, setup),
		cmocka_unit_test_setup(test_SR_12_deflate_resent_after_failure_result, setup),
		cmocka_unit_test_setup(test_SR_13_nan_pressure_while_inflated_deflates, setup),
		cmocka_unit_test_setup(test_SR_13_sensor_fault_bit_and_implausible_values, setup),
		cmocka_unit_test_setup(test_SR_13_nan_when_idle_alarms_without_deflate, setup),
		cmocka_unit_test_setup(test_SR_14_supervision_deflated_bit, setup),
		cmocka_unit_test_setup(test_SR_15_invalid_measurement_keeps_last_valid_lop, setup),
		cmocka_unit_test_setup(test_SR_15_no_lop_refuses_inflation, setup),
		cmocka_unit_test_setup(test_SR_15_lop_above_search_ceiling_rejected, setup),
		cmocka_unit_test_setup(test_SR_15_restored_lop_keeps_its_age, setup),
		cmocka_unit_test_setup(test_SR_16_battery_unknown_refuses_inflation, setup),
		cmocka_unit_test_setup(test_SR_16_battery_low_status_bit, setup),
		cmocka_unit_test_setup(test_SR_25_status_fault_refuses_inflation_and_lop, setup),
		cmocka_unit_test_setup(test_SR_25_relief_valve_bit_while_inflated_deflates, setup),
		cmocka_unit_test_setup(test_SR_24_unanswered_safety_deflate_releases_once, setup),
		cmocka_unit_test_setup(test_SR_24_confirmed_or_routine_deflate_releases_nothing, setup),
		cmocka_unit_test_setup(test_SR_06_lop_search_does_not_start_the_continuous_clock,
				       setup),
		cmocka_unit_test_setup(test_SR_15_lop_too_old, setup),
		cmocka_unit_test_setup(test_SR_15_lop_measurement_suspends_occlusion_only, setup),
		cmocka_unit_test_setup(test_SR_15_lop_measurement_refused_over_exercise, setup),
		cmocka_unit_test_setup(test_SR_16_battery_thresholds, setup),
		cmocka_unit_test_setup(test_SR_17_unacked_high_blocks_new_inflation, setup),
		cmocka_unit_test_setup(test_SR_17_latched_high_blocks_until_acked, setup),
		cmocka_unit_test_setup(test_SR_23_frozen_exactly_3000ms_is_allowed_1ms_more_deflates, setup),
		cmocka_unit_test_setup(test_SR_23_frozen_exactly_20_samples_allowed_21st_deflates, setup),
		cmocka_unit_test_setup(test_SR_23_batch_at_one_instant_needs_the_time_too, setup),
		cmocka_unit_test_setup(test_SR_23_pressure_or_pulse_moving_is_not_frozen, setup),
		cmocka_unit_test_setup(test_SR_23_deflated_cuff_may_read_a_steady_value, setup),
		cmocka_unit_test_setup(test_SR_23_frozen_while_commanded_but_reading_zero, setup),
		cmocka_unit_test_setup(test_SR_23_frozen_blocks_inflation_confirms_nothing_clears_when_moving, setup),
		cmocka_unit_test_setup(test_SR_23_frozen_below_10_after_deflate_stays_until_it_moves, setup),
		cmocka_unit_test_setup(test_SR_23_nan_restarts_the_run, setup),
		cmocka_unit_test_setup(test_SR_23_link_down_restarts_a_run_but_not_a_frozen_one, setup),
		cmocka_unit_test_setup(test_SR_23_healthy_streams_never_look_frozen, setup),
		cmocka_unit_test_setup(test_SR_23_only_full_occlusion_looks_frozen_and_it_deflates_first, setup),
		cmocka_unit_test_setup(test_SR_21_safety_path_never_allocates, setup),
		cmocka_unit_test_setup(test_SR_22_garbage_events_change_nothing, setup),
		cmocka_unit_test_setup(test_time_going_backwards_still_checks, setup),
		cmocka_unit_test(test_property_random_streams),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
