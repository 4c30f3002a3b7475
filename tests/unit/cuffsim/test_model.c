/*
 * test_model.c - the cuff model: determinism, regulation, pulsation vs LOP,
 * supervision fail-safe boundaries, control-point validation, faults.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <string.h>

#include "control.h"
#include "model.h"
#include "test_alloc.h"

#define RATE 50
#define LOP 200.0

static struct cuff_model *new_model(uint64_t seed)
{
	struct cuff_model_params p = {
		.limb = BFR_LIMB_LEG, .rate_hz = RATE, .lop_override = LOP, .seed = seed, .index = 1,
	};
	struct cuff_model *m = NULL;

	assert_int_equal(cuff_model_new(&p, &m), 0);
	assert_non_null(m);
	return m;
}

/* Steps n samples, keeping the supervision alive when asked to. */
static void run(struct cuff_model *m, int n, bool keepalive, struct bfr_sample *last)
{
	struct bfr_sample s;

	for (int i = 0; i < n; i++) {
		if (keepalive)
			cuff_model_supervision_write(m);
		cuff_model_step(m, &s);
	}
	if (last)
		*last = s;
}

static uint8_t control(struct cuff_model *m, const struct bfr_cp_request *req)
{
	struct bfr_cp_response rsp;

	memset(&rsp, 0xAA, sizeof(rsp));
	assert_int_equal(cuff_model_control(m, req, &rsp), 1);
	assert_int_equal(rsp.req_opcode, req->opcode);
	return rsp.result;
}

static uint8_t set_target(struct cuff_model *m, double mmhg, uint16_t ramp_ms)
{
	struct bfr_cp_request req = { .opcode = BFR_CP_SET_TARGET };

	req.set_target.mmhg = mmhg;
	req.set_target.ramp_ms = ramp_ms;
	return control(m, &req);
}

static uint8_t deflate(struct cuff_model *m, uint8_t reason)
{
	struct bfr_cp_request req = { .opcode = BFR_CP_DEFLATE, .deflate_reason = reason };

	return control(m, &req);
}

static struct cuff_model_info info(const struct cuff_model *m)
{
	struct cuff_model_info i;

	cuff_model_info(m, &i);
	return i;
}

static void test_new_rejects_bad_params(void **state)
{
	struct cuff_model_params p = { .limb = BFR_LIMB_LEG, .rate_hz = 50 };
	struct cuff_model *m = (struct cuff_model *)0x1;

	p.rate_hz = 0;
	assert_int_equal(cuff_model_new(&p, &m), -EINVAL);
	p.rate_hz = 1001;
	assert_int_equal(cuff_model_new(&p, &m), -EINVAL);
	p.rate_hz = 50;
	p.limb = 2;
	assert_int_equal(cuff_model_new(&p, &m), -EINVAL);
	p.limb = BFR_LIMB_ARM;
	p.lop_override = NAN;
	assert_int_equal(cuff_model_new(&p, &m), -EINVAL);
	p.lop_override = -1;
	assert_int_equal(cuff_model_new(&p, &m), -EINVAL);
	assert_ptr_equal(m, (struct cuff_model *)0x1);
}

static void test_new_alloc_failure(void **state)
{
	struct cuff_model_params p = { .limb = BFR_LIMB_LEG, .rate_hz = 50 };
	struct cuff_model *m = (struct cuff_model *)0x1;

	test_alloc_fail_after(0);
	assert_int_equal(cuff_model_new(&p, &m), -ENOMEM);
	test_alloc_reset();
	assert_ptr_equal(m, (struct cuff_model *)0x1);
}

static void exercise(struct cuff_model *m, struct bfr_sample *out, int n)
{
	set_target(m, 150, 1000);
	for (int i = 0; i < n; i++) {
		cuff_model_supervision_write(m);
		if (i == 200) {
			struct bfr_cp_request cue = { .opcode = BFR_CP_CUE, .cue = BFR_CUE_REP_UP };

			control(m, &cue);
		}
		cuff_model_step(m, &out[i]);
	}
}

static void test_deterministic_for_seed(void **state)
{
	enum { N = 600 };
	static struct bfr_sample a[N], b[N], c[N];
	struct cuff_model *m1 = new_model(42), *m2 = new_model(42), *m3 = new_model(43);

	exercise(m1, a, N);
	exercise(m2, b, N);
	exercise(m3, c, N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(a[i].seq, b[i].seq);
		assert_int_equal(a[i].t_ms, b[i].t_ms);
		assert_true(a[i].pressure_mmhg == b[i].pressure_mmhg);
		assert_true(a[i].pulse_amplitude == b[i].pulse_amplitude);
		assert_int_equal(a[i].status, b[i].status);
	}
	/* Another seed: other noise, so at least one sample differs. */
	int differ = 0;

	for (int i = 0; i < N; i++)
		differ += a[i].pressure_mmhg != c[i].pressure_mmhg;
	assert_true(differ > N / 2);
	assert_int_equal(a[N - 1].t_ms, N * 1000 / RATE);
	cuff_model_free(m1);
	cuff_model_free(m2);
	cuff_model_free(m3);
}

static void test_lop_from_formula_differs_per_cuff(void **state)
{
	struct cuff_model_params p = { .limb = BFR_LIMB_LEG, .rate_hz = 50, .seed = 5 };
	struct cuff_model *m1, *m2, *arm;

	p.index = 1;
	assert_int_equal(cuff_model_new(&p, &m1), 0);
	p.index = 2;
	assert_int_equal(cuff_model_new(&p, &m2), 0);
	p.limb = BFR_LIMB_ARM;
	assert_int_equal(cuff_model_new(&p, &arm), 0);
	/* Thigh with an 11.5 cm cuff ~180-220, arm ~120-160. */
	assert_true(info(m1).lop_mmhg > 180 && info(m1).lop_mmhg < 220);
	assert_true(info(m1).lop_mmhg != info(m2).lop_mmhg);
	assert_true(info(arm).lop_mmhg > 120 && info(arm).lop_mmhg < 160);
	assert_true(fabs(cuff_model_lop_formula(120, 55, 11.5) - 199.0) < 0.01);
	cuff_model_free(m1);
	cuff_model_free(m2);
	cuff_model_free(arm);
}

static void test_regulation_converges(void **state)
{
	struct cuff_model *m = new_model(1);
	struct bfr_sample s;
	double sum = 0, worst = 0;
	int reached = -1;

	assert_int_equal(set_target(m, 150, 0), BFR_RESULT_SUCCESS);
	for (int i = 0; i < 10 * RATE; i++) {
		run(m, 1, true, &s);
		if (reached < 0 && fabs(info(m).pressure_mmhg - 150) < 4)
			reached = i;
	}
	/* The leg pump fills a thigh cuff to 150 mmHg in a few seconds. */
	assert_true(reached > 0 && reached < 6 * RATE);
	for (int i = 0; i < 2 * RATE; i++) {
		run(m, 1, true, &s);
		sum += s.pressure_mmhg;
		worst = fmax(worst, fabs(s.pressure_mmhg - 150));
		assert_true(fabs(info(m).pressure_mmhg - 150) <= 3.0);
		assert_true(s.status & BFR_ST_REGULATING);
		assert_true(s.target_mmhg == 150);
	}
	assert_true(fabs(sum / (2 * RATE) - 150) < 2.0);
	assert_true(worst < 6.0);
	assert_int_equal(info(m).state, BFR_STATE_HOLDING);
	cuff_model_free(m);
}

static void test_ramp_follows_ramp_ms(void **state)
{
	struct cuff_model *m = new_model(1);

	set_target(m, 200, 8000);
	run(m, 2 * RATE, true, NULL);
	/* After a quarter of the ramp the set-point is about a quarter up. */
	assert_true(fabs(info(m).setpoint_mmhg - 50) < 3);
	assert_true(info(m).pressure_mmhg < 60);
	run(m, 8 * RATE, true, NULL);
	assert_true(fabs(info(m).pressure_mmhg - 200) < 4);
	cuff_model_free(m);
}

static double mean_amplitude_at(double target)
{
	struct cuff_model *m = new_model(3);
	struct bfr_sample s;
	double sum = 0;

	set_target(m, target, 0);
	run(m, 8 * RATE, true, NULL);
	for (int i = 0; i < RATE; i++) {
		run(m, 1, true, &s);
		sum += s.pulse_amplitude;
	}
	cuff_model_free(m);
	return sum / RATE;
}

static void test_pulse_vanishes_above_lop(void **state)
{
	double at_half = mean_amplitude_at(0.5 * LOP);
	double at_90 = mean_amplitude_at(0.9 * LOP);
	double above = mean_amplitude_at(LOP + 30);
	struct cuff_model *m = new_model(3);
	struct bfr_sample s;

	assert_true(at_half > 2.0);
	assert_true(at_90 < at_half);
	assert_true(at_90 > 0.3);
	assert_true(above == 0.0);
	/* Deflated: no coupling, no pulse. */
	run(m, RATE, true, &s);
	assert_true(s.pulse_amplitude == 0.0);
	cuff_model_free(m);
}

/* Inflates to 100 mmHg, then writes supervision once; returns that time. */
static uint64_t inflate_then_last_keepalive(struct cuff_model *m)
{
	set_target(m, 100, 0);
	run(m, 5 * RATE, true, NULL);
	assert_true(info(m).pressure_mmhg > 90);
	cuff_model_supervision_write(m);
	return info(m).now_ms;
}

static void test_supervision_exactly_at_timeout_holds(void **state)
{
	struct cuff_model *m = new_model(1);
	uint64_t t0 = inflate_then_last_keepalive(m);
	struct bfr_sample s = { 0 }; /* the loop runs at least once; gcc -O2 cannot tell */

	while (info(m).now_ms < t0 + BFR_SUPERVISION_DEFAULT_TIMEOUT_MS)
		run(m, 1, false, &s);
	assert_int_equal(info(m).now_ms, t0 + BFR_SUPERVISION_DEFAULT_TIMEOUT_MS);
	assert_false(s.status & BFR_ST_SUPERVISION_DEFLATED);
	assert_true(s.target_mmhg == 100);
	assert_int_equal(info(m).supervision_deflates, 0);
	cuff_model_free(m);
}

static void test_supervision_one_tick_over_deflates(void **state)
{
	struct cuff_model *m = new_model(1);
	uint64_t t0 = inflate_then_last_keepalive(m);
	struct bfr_sample s = { 0 }; /* the loop runs at least once; gcc -O2 cannot tell */

	while (info(m).now_ms <= t0 + BFR_SUPERVISION_DEFAULT_TIMEOUT_MS)
		run(m, 1, false, &s);
	assert_int_equal(info(m).now_ms, t0 + BFR_SUPERVISION_DEFAULT_TIMEOUT_MS + 1000 / RATE);
	assert_true(s.status & BFR_ST_SUPERVISION_DEFLATED);
	assert_true(s.target_mmhg == 0);
	assert_int_equal(info(m).supervision_deflates, 1);
	assert_true(info(m).faults & BFR_FAULT_SUPERVISION);
	/* It deflates, and the bit stays set even when keepalives resume. */
	run(m, 4 * RATE, true, &s);
	assert_true(info(m).pressure_mmhg < 10);
	assert_true(s.status & BFR_ST_SUPERVISION_DEFLATED);
	/* Until the next SET_TARGET. */
	assert_int_equal(set_target(m, 80, 0), BFR_RESULT_SUCCESS);
	run(m, 1, true, &s);
	assert_false(s.status & BFR_ST_SUPERVISION_DEFLATED);
	cuff_model_free(m);
}

static void test_supervision_custom_timeout_and_idle(void **state)
{
	struct cuff_model *m = new_model(1);
	struct bfr_cp_request req = { .opcode = BFR_CP_SET_SUPERVISION };
	struct bfr_sample s;
	uint64_t t0;

	/* A long idle time below 10 mmHg never counts against the window. */
	run(m, 10 * RATE, false, &s);
	assert_false(s.status & BFR_ST_SUPERVISION_DEFLATED);
	req.supervision_timeout_ms = 1000;
	assert_int_equal(control(m, &req), BFR_RESULT_SUCCESS);
	assert_int_equal(info(m).supervision_timeout_ms, 1000);
	t0 = inflate_then_last_keepalive(m);
	while (info(m).now_ms <= t0 + 1000)
		run(m, 1, false, &s);
	assert_true(s.status & BFR_ST_SUPERVISION_DEFLATED);
	cuff_model_free(m);
}

static void test_control_validation(void **state)
{
	struct cuff_model *m = new_model(1);
	struct bfr_cp_request req;

	assert_int_equal(set_target(m, 251, 0), BFR_RESULT_LIMIT_EXCEEDED);
	assert_int_equal(set_target(m, -1, 0), BFR_RESULT_INVALID_PARAMETER);
	assert_int_equal(set_target(m, NAN, 0), BFR_RESULT_INVALID_PARAMETER);
	assert_int_equal(deflate(m, 3), BFR_RESULT_INVALID_PARAMETER);
	req = (struct bfr_cp_request){ .opcode = BFR_CP_SET_SUPERVISION,
				       .supervision_timeout_ms = 499 };
	assert_int_equal(control(m, &req), BFR_RESULT_INVALID_PARAMETER);
	req.supervision_timeout_ms = 60001;
	assert_int_equal(control(m, &req), BFR_RESULT_INVALID_PARAMETER);
	req = (struct bfr_cp_request){ .opcode = BFR_CP_CUE, .cue = 5 };
	assert_int_equal(control(m, &req), BFR_RESULT_INVALID_PARAMETER);
	req = (struct bfr_cp_request){ .opcode = BFR_CP_MEASURE_LOP, .max_search_mmhg = 251 };
	assert_int_equal(control(m, &req), BFR_RESULT_LIMIT_EXCEEDED);
	req.max_search_mmhg = 10;
	assert_int_equal(control(m, &req), BFR_RESULT_INVALID_PARAMETER);
	req = (struct bfr_cp_request){ .opcode = 0x42 };
	assert_int_equal(control(m, &req), BFR_RESULT_NOT_SUPPORTED);
	/* Nothing of the rejected requests took effect. */
	assert_true(info(m).target_mmhg == 0);
	assert_int_equal(info(m).supervision_timeout_ms, BFR_SUPERVISION_DEFAULT_TIMEOUT_MS);
	assert_int_equal(info(m).state, BFR_STATE_IDLE);
	req = (struct bfr_cp_request){ .opcode = BFR_CP_IDENTIFY };
	assert_int_equal(control(m, &req), BFR_RESULT_SUCCESS);
	assert_int_equal(info(m).identify_blinks, 1);
	cuff_model_free(m);
}

static bool wait_result(struct cuff_model *m, int max_samples, struct bfr_cp_response *rsp)
{
	for (int i = 0; i < max_samples; i++) {
		run(m, 1, true, NULL);
		if (cuff_model_take_result(m, rsp))
			return true;
	}
	return false;
}

static void test_measure_lop(void **state)
{
	struct cuff_model *m = new_model(1);
	struct bfr_cp_request req = { .opcode = BFR_CP_MEASURE_LOP, .max_search_mmhg = 250 };
	struct bfr_cp_response rsp;

	assert_int_equal(cuff_model_control(m, &req, &rsp), 0);
	run(m, 1, true, NULL);
	assert_int_equal(info(m).state, BFR_STATE_MEASURING_LOP);
	/* Busy while measuring: no target, no second search, no cue. */
	assert_int_equal(set_target(m, 100, 0), BFR_RESULT_BUSY);
	assert_int_equal(control(m, &req), BFR_RESULT_BUSY);
	assert_true(wait_result(m, 30 * RATE, &rsp));
	assert_int_equal(rsp.req_opcode, BFR_CP_MEASURE_LOP);
	assert_int_equal(rsp.result, BFR_RESULT_SUCCESS);
	assert_true(rsp.has_lop);
	assert_true(fabs(rsp.lop_mmhg - LOP) < 6);
	assert_true(info(m).last_lop_mmhg == rsp.lop_mmhg);
	/* It deflates afterwards and is idle again. */
	run(m, 6 * RATE, true, NULL);
	assert_true(info(m).pressure_mmhg < 5);
	assert_int_equal(info(m).state, BFR_STATE_IDLE);
	cuff_model_free(m);
}

static void test_measure_lop_fails_under_fault_and_max_search(void **state)
{
	struct cuff_model *m = new_model(1);
	struct bfr_cp_request req = { .opcode = BFR_CP_MEASURE_LOP, .max_search_mmhg = 250 };
	struct bfr_cp_response rsp;

	assert_int_equal(cuff_model_set_fault(m, CUFF_FAULT_LOP_FAIL, 0, 0), 0);
	assert_int_equal(cuff_model_control(m, &req, &rsp), 0);
	assert_true(wait_result(m, 60 * RATE, &rsp));
	assert_int_equal(rsp.result, BFR_RESULT_FAILED);
	assert_false(rsp.has_lop);
	assert_true(info(m).faults & BFR_FAULT_LOP_FAILED);
	/* Respects max_search: never far above it. */
	cuff_model_clear_faults(m);
	run(m, 8 * RATE, true, NULL);
	req.max_search_mmhg = 150; /* below this limb's LOP */
	assert_int_equal(cuff_model_control(m, &req, &rsp), 0);
	for (int i = 0; i < 30 * RATE && !cuff_model_take_result(m, &rsp); i++) {
		run(m, 1, true, NULL);
		assert_true(info(m).pressure_mmhg < 150 + 3);
	}
	assert_int_equal(rsp.result, BFR_RESULT_FAILED);
	cuff_model_free(m);
}

static void test_deflate_aborts_lop_and_empties_in_time(void **state)
{
	struct cuff_model *m = new_model(1);
	struct bfr_cp_request req = { .opcode = BFR_CP_MEASURE_LOP, .max_search_mmhg = 250 };
	struct bfr_cp_response rsp;
	int i;

	assert_int_equal(cuff_model_control(m, &req, &rsp), 0);
	run(m, 5 * RATE, true, NULL);
	assert_int_equal(deflate(m, BFR_DEFLATE_ESTOP), BFR_RESULT_SUCCESS);
	assert_true(cuff_model_take_result(m, &rsp));
	assert_int_equal(rsp.req_opcode, BFR_CP_MEASURE_LOP);
	assert_int_equal(rsp.result, BFR_RESULT_FAILED);

	/* From the ceiling to below 20 mmHg inside the gateway's 5 s. */
	set_target(m, 250, 0);
	run(m, 10 * RATE, true, NULL);
	assert_true(info(m).pressure_mmhg > 240);
	deflate(m, BFR_DEFLATE_SAFETY);
	for (i = 0; i < 5 * RATE && info(m).pressure_mmhg >= 20; i++)
		run(m, 1, true, NULL);
	assert_true(i < 3 * RATE);
	cuff_model_free(m);
}

static void test_stuck_valve_trips_relief(void **state)
{
	struct cuff_model *m = new_model(1);
	struct bfr_sample s;
	double peak = 0;
	bool tripped = false;

	set_target(m, 150, 0);
	run(m, 5 * RATE, true, NULL);
	assert_int_equal(cuff_model_set_fault(m, CUFF_FAULT_STUCK_VALVE, 0, 0), 0);
	deflate(m, BFR_DEFLATE_NORMAL); /* cannot open the valve */
	for (int i = 0; i < 20 * RATE; i++) {
		run(m, 1, true, &s);
		peak = fmax(peak, info(m).pressure_mmhg);
		tripped |= (s.status & BFR_ST_RELIEF_TRIPPED) != 0;
	}
	assert_true(tripped);
	assert_true(peak >= 270 && peak < 275);
	assert_true(info(m).faults & BFR_FAULT_OVER_PRESSURE);
	assert_true(info(m).faults & BFR_FAULT_VALVE_STUCK);
	assert_true(info(m).pressure_mmhg < 10);
	cuff_model_free(m);
}

static void test_deflate_fail_holds_pressure(void **state)
{
	struct cuff_model *m = new_model(1);

	set_target(m, 150, 0);
	run(m, 5 * RATE, true, NULL);
	assert_int_equal(cuff_model_set_fault(m, CUFF_FAULT_DEFLATE_FAIL, 0, 0), 0);
	assert_int_equal(deflate(m, BFR_DEFLATE_NORMAL), BFR_RESULT_SUCCESS);
	run(m, 6 * RATE, true, NULL);
	assert_true(info(m).pressure_mmhg > 140);
	assert_true(info(m).faults & BFR_FAULT_DEFLATE_FAILED);
	cuff_model_clear_faults(m);
	deflate(m, BFR_DEFLATE_NORMAL);
	run(m, 5 * RATE, true, NULL);
	assert_true(info(m).pressure_mmhg < 5);
	cuff_model_free(m);
}

static void test_leak_spike_freeze_battery_cue(void **state)
{
	struct cuff_model *m = new_model(1);
	struct bfr_cp_request cue = { .opcode = BFR_CP_CUE, .cue = BFR_CUE_REP_UP };
	struct bfr_sample s;
	double peak = 0, first;

	set_target(m, 150, 0);
	run(m, 5 * RATE, true, NULL);

	/* Contraction after rep-up: a spike well above target. */
	assert_int_equal(control(m, &cue), BFR_RESULT_SUCCESS);
	for (int i = 0; i < RATE; i++) {
		run(m, 1, true, &s);
		peak = fmax(peak, s.pressure_mmhg);
	}
	assert_true(peak > 165);
	assert_int_equal(info(m).cues[BFR_CUE_REP_UP], 1);

	/* Spike fault: the reading jumps by the amount for the duration. */
	assert_int_equal(cuff_model_set_fault(m, CUFF_FAULT_SPIKE, 100, 200), 0);
	run(m, 1, true, &s);
	assert_true(s.pressure_mmhg > 240);
	run(m, RATE / 2, true, &s);
	assert_true(s.pressure_mmhg < 160);

	/* Sensor freeze: the value stops changing. */
	assert_int_equal(cuff_model_set_fault(m, CUFF_FAULT_SENSOR_FREEZE, 0, 0), 0);
	run(m, 1, true, &s);
	first = s.pressure_mmhg;
	for (int i = 0; i < RATE; i++) {
		run(m, 1, true, &s);
		assert_true(s.pressure_mmhg == first);
	}
	cuff_model_clear_faults(m);

	/* A leak beyond the pump's capacity: under target, pump running. */
	assert_int_equal(cuff_model_set_fault(m, CUFF_FAULT_LEAK, 100, 0), 0);
	run(m, 10 * RATE, true, &s);
	assert_true(info(m).pressure_mmhg < 150 - 15);
	assert_true(s.status & BFR_ST_PUMP_ON);
	assert_true(s.status & BFR_ST_LEAK_SUSPECTED);

	assert_int_equal(cuff_model_set_fault(m, CUFF_FAULT_BATTERY, 15, 0), 0);
	run(m, 1, true, &s);
	assert_true(s.status & BFR_ST_BATTERY_LOW);
	cuff_model_free(m);
}

static void test_bad_fault_values_change_nothing(void **state)
{
	struct cuff_model *m = new_model(1);
	struct cuff_model_info before = info(m), after;

	assert_int_equal(cuff_model_set_fault(m, CUFF_FAULT_LEAK, 0, 0), -EINVAL);
	assert_int_equal(cuff_model_set_fault(m, CUFF_FAULT_LEAK, NAN, 0), -EINVAL);
	assert_int_equal(cuff_model_set_fault(m, CUFF_FAULT_BATTERY, 101, 0), -EINVAL);
	assert_int_equal(cuff_model_set_fault(m, CUFF_FAULT_BATTERY, -1, 0), -EINVAL);
	assert_int_equal(cuff_model_set_fault(m, CUFF_FAULT_SPIKE, 301, 100), -EINVAL);
	assert_int_equal(cuff_model_set_fault(m, CUFF_FAULT_SPIKE, 50, 0), -EINVAL);
	assert_int_equal(cuff_model_set_fault(m, (enum cuff_fault)99, 1, 1), -EINVAL);
	after = info(m);
	assert_memory_equal(&before, &after, sizeof(before));
	cuff_model_free(m);
}

/*
 * DESIGN section 11: the button (status bit 6) is set in every sample while
 * held; long = 2.5 s (a long press is >= 2 s), short = 0.3 s.
 */
static void test_button_bit_while_held(void **state)
{
	static const struct {
		uint32_t hold_ms;
		int samples; /* at 50 Hz */
	} cases[] = { { CONTROL_BUTTON_LONG_MS, 125 }, { CONTROL_BUTTON_SHORT_MS, 15 } };
	struct cuff_model *m = new_model(3);
	struct bfr_sample s;

	run(m, 10, true, &s);
	assert_int_equal(s.status & BFR_ST_BUTTON, 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t pressed_at = info(m).now_ms, first = 0, cleared = 0;
		int set = 0;

		cuff_model_press_button(m, cases[i].hold_ms);
		assert_int_equal(info(m).button_presses, i + 1);
		/* Held: every sample has the bit, contiguously; then it is clear. */
		for (int k = 0; k < 200 && !cleared; k++) {
			cuff_model_step(m, &s);
			cuff_model_supervision_write(m);
			if (s.status & BFR_ST_BUTTON) {
				assert_int_equal(cleared, 0);
				if (!set++)
					first = s.t_ms;
			} else {
				cleared = s.t_ms;
			}
		}
		assert_int_equal(set, cases[i].samples);
		assert_int_equal(first, pressed_at + 1000 / RATE);
		assert_int_equal(cleared - first, cases[i].hold_ms);
		assert_int_equal(info(m).status_bits & BFR_ST_BUTTON, 0);
	}
	/* A press while held starts the hold again. */
	cuff_model_press_button(m, CONTROL_BUTTON_SHORT_MS);
	run(m, 10, true, &s);
	assert_true(s.status & BFR_ST_BUTTON);
	cuff_model_press_button(m, CONTROL_BUTTON_SHORT_MS);
	run(m, 14, true, &s);
	assert_true(s.status & BFR_ST_BUTTON);
	run(m, 2, true, &s);
	assert_int_equal(s.status & BFR_ST_BUTTON, 0);
	cuff_model_free(m);
}

static void test_battery_drains(void **state)
{
	struct cuff_model *m = new_model(1);
	struct bfr_status st;
	struct bfr_features f;

	set_target(m, 200, 0);
	run(m, 60 * RATE, true, NULL);
	assert_true(info(m).battery_pct < 100 && info(m).battery_pct > 90);
	cuff_model_status(m, &st);
	assert_int_equal(st.cuff_width_mm, 115);
	cuff_model_features(m, &f);
	assert_int_equal(f.limb, BFR_LIMB_LEG);
	assert_true(f.max_pressure_mmhg == 250);
	assert_int_equal(f.sample_rate_hz, RATE);
	cuff_model_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_button_bit_while_held),
		cmocka_unit_test(test_new_rejects_bad_params),
		cmocka_unit_test(test_new_alloc_failure),
		cmocka_unit_test(test_deterministic_for_seed),
		cmocka_unit_test(test_lop_from_formula_differs_per_cuff),
		cmocka_unit_test(test_regulation_converges),
		cmocka_unit_test(test_ramp_follows_ramp_ms),
		cmocka_unit_test(test_pulse_vanishes_above_lop),
		cmocka_unit_test(test_supervision_exactly_at_timeout_holds),
		cmocka_unit_test(test_supervision_one_tick_over_deflates),
		cmocka_unit_test(test_supervision_custom_timeout_and_idle),
		cmocka_unit_test(test_control_validation),
		cmocka_unit_test(test_measure_lop),
		cmocka_unit_test(test_measure_lop_fails_under_fault_and_max_search),
		cmocka_unit_test(test_deflate_aborts_lop_and_empties_in_time),
		cmocka_unit_test(test_stuck_valve_trips_relief),
		cmocka_unit_test(test_deflate_fail_holds_pressure),
		cmocka_unit_test(test_leak_spike_freeze_battery_cue),
		cmocka_unit_test(test_bad_fault_values_change_nothing),
		cmocka_unit_test(test_battery_drains),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
