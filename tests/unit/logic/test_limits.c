/* test_limits.c - limits defaults, tighten-only overrides, prescription check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <string.h>

#include "limits.h"

static void test_defaults_per_limb(void **state)
{
	struct limits leg, arm;

	(void)state;
	assert_int_equal(limits_defaults(BFR_LIMB_LEG, &leg), 0);
	assert_int_equal(limits_defaults(BFR_LIMB_ARM, &arm), 0);
	assert_true(leg.max_pressure_mmhg == 250 && leg.max_pct_lop == 80);
	assert_true(arm.max_pressure_mmhg == 200 && arm.max_pct_lop == 60);
	assert_int_equal(leg.session_total_s, 1200);
	assert_int_equal(arm.session_total_s, 900);
	assert_int_equal(leg.full_occlusion_ms, 2000);
	assert_int_equal(leg.band_ms, 1000);
	assert_int_equal(leg.leak_ms, 7000);
	assert_int_equal(leg.max_inflation_s, 600);
	assert_int_equal(leg.inflation_warn_pct, 80);
	assert_int_equal(leg.min_reperfusion_s, 60);
	assert_int_equal(leg.sample_timeout_ms, 500);
	assert_int_equal(leg.deflate_timeout_ms, 5000);
	assert_true(leg.deflated_below_mmhg == 20);
	assert_true(leg.lop_min_mmhg == 50 && leg.lop_max_mmhg == 350);
	assert_int_equal(leg.lop_max_age_s, 86400);
	assert_int_equal(leg.battery_low_pct, 20);
	assert_int_equal(leg.battery_min_pct, 10);
	assert_int_equal(limits_validate(&leg), 0);
	assert_int_equal(limits_validate(&arm), 0);
}

static void test_defaults_garbage_limb(void **state)
{
	struct limits l;

	(void)state;
	memset(&l, 0xA5, sizeof(l));
	assert_int_equal(limits_defaults((enum bfr_limb)7, &l), -EINVAL);
	assert_int_equal(((unsigned char *)&l)[0], 0xA5);
	assert_int_equal(limits_defaults(BFR_LIMB_LEG, NULL), -EINVAL);
}

static void test_SR_18_override_tightens(void **state)
{
	struct limits l;

	(void)state;
	limits_defaults(BFR_LIMB_LEG, &l);
	assert_int_equal(limits_override(&l, LIMITS_F_MAX_PRESSURE, 220, NULL), 0);
	assert_true(l.max_pressure_mmhg == 220);
	/* Equal to the current value is not a loosening. */
	assert_int_equal(limits_override(&l, LIMITS_F_MAX_PRESSURE, 220, NULL), 0);
	assert_int_equal(limits_override_by_name(&l, "max_pct_lop", 70, NULL), 0);
	assert_true(l.max_pct_lop == 70);
	/* Reperfusion is tightened by making it longer. */
	assert_int_equal(limits_override(&l, LIMITS_F_MIN_REPERFUSION_S, 90, NULL), 0);
	assert_int_equal(l.min_reperfusion_s, 90);
	assert_int_equal(limits_override(&l, LIMITS_F_BATTERY_MIN_PCT, 15, NULL), 0);
	assert_int_equal(limits_validate(&l), 0);
}

static void expect_refused(struct limits *l, enum limits_field f, double v)
{
	struct limits before = *l;
	enum limits_field bad = LIMITS_F_COUNT;

	assert_int_equal(limits_override(l, f, v, &bad), -EINVAL);
	assert_int_equal(bad, f);
	assert_memory_equal(&before, l, sizeof(before));
}

static void test_SR_18_override_refuses_loosening(void **state)
{
	struct limits l;

	(void)state;
	limits_defaults(BFR_LIMB_LEG, &l);
	/* One tick above the limb default, and above the compiled bound. */
	expect_refused(&l, LIMITS_F_MAX_PRESSURE, 250.1);
	expect_refused(&l, LIMITS_F_MAX_PRESSURE, 301);
	expect_refused(&l, LIMITS_F_MAX_PCT_LOP, 80.1);
	expect_refused(&l, LIMITS_F_FULL_OCCLUSION_MS, 2001);
	expect_refused(&l, LIMITS_F_BAND_MMHG, 15.1);
	expect_refused(&l, LIMITS_F_LEAK_MS, 7001);
	expect_refused(&l, LIMITS_F_MAX_INFLATION_S, 601);
	expect_refused(&l, LIMITS_F_SESSION_TOTAL_S, 1201);
	expect_refused(&l, LIMITS_F_MIN_REPERFUSION_S, 59);
	expect_refused(&l, LIMITS_F_SAMPLE_TIMEOUT_MS, 501);
	expect_refused(&l, LIMITS_F_DEFLATE_TIMEOUT_MS, 5001);
	expect_refused(&l, LIMITS_F_DEFLATED_BELOW_MMHG, 20.1);
	expect_refused(&l, LIMITS_F_LOP_MIN_MMHG, 49.9);
	expect_refused(&l, LIMITS_F_LOP_MAX_MMHG, 350.1);
	expect_refused(&l, LIMITS_F_LOP_MAX_AGE_S, 86401);
	expect_refused(&l, LIMITS_F_BATTERY_LOW_PCT, 19);
	expect_refused(&l, LIMITS_F_BATTERY_MIN_PCT, 9);

	/* Once tightened, going back to the default is a loosening too. */
	assert_int_equal(limits_override(&l, LIMITS_F_MAX_PRESSURE, 200, NULL), 0);
	expect_refused(&l, LIMITS_F_MAX_PRESSURE, 250);
}

static void test_SR_18_arm_never_gets_leg_limits(void **state)
{
	struct limits l;

	(void)state;
	limits_defaults(BFR_LIMB_ARM, &l);
	expect_refused(&l, LIMITS_F_MAX_PRESSURE, 250);
	expect_refused(&l, LIMITS_F_MAX_PCT_LOP, 80);
	expect_refused(&l, LIMITS_F_SESSION_TOTAL_S, 1200);
	/* A hand-built struct with leg values under an arm label is invalid. */
	l.max_pressure_mmhg = 250;
	assert_int_equal(limits_validate(&l), -EINVAL);
}

static void test_override_garbage(void **state)
{
	struct limits l, before;
	enum limits_field bad = LIMITS_F_COUNT;

	(void)state;
	limits_defaults(BFR_LIMB_LEG, &l);
	before = l;
	expect_refused(&l, LIMITS_F_MAX_PRESSURE, NAN);
	expect_refused(&l, LIMITS_F_MAX_PRESSURE, INFINITY);
	expect_refused(&l, LIMITS_F_MAX_PRESSURE, -INFINITY);
	expect_refused(&l, LIMITS_F_MAX_PRESSURE, -5);
	expect_refused(&l, LIMITS_F_MAX_PRESSURE, 0);
	expect_refused(&l, LIMITS_F_MAX_PRESSURE, 29.9); /* below the sanity floor */
	expect_refused(&l, LIMITS_F_MAX_INFLATION_S, 300.5); /* integer field */
	/* Tightening lop_max below lop_min contradicts itself. */
	assert_int_equal(limits_override(&l, LIMITS_F_LOP_MIN_MMHG, 100, NULL), 0);
	expect_refused(&l, LIMITS_F_LOP_MAX_MMHG, 99);
	l = before;
	assert_int_equal(limits_override(&l, (enum limits_field)99, 1, &bad), -ERANGE);
	assert_int_equal(limits_override(&l, (enum limits_field)-1, 1, &bad), -ERANGE);
	assert_int_equal(limits_override_by_name(&l, "max_pressure", 100, &bad), -ENOENT);
	assert_int_equal(limits_override_by_name(&l, NULL, 100, &bad), -EINVAL);
	assert_int_equal(limits_override(NULL, LIMITS_F_MAX_PRESSURE, 100, &bad), -EINVAL);
	assert_int_equal(bad, LIMITS_F_COUNT);
	assert_memory_equal(&before, &l, sizeof(l));
	assert_int_equal(limits_validate(NULL), -EINVAL);
}

static void expect_rx_refused(const struct limits *l, double lop, int64_t age, double pct,
			      enum limits_refusal want)
{
	double target = -1;
	enum limits_refusal why = LIMITS_OK;

	assert_int_equal(limits_check_prescription(l, lop, age, pct, &target, &why), -EPERM);
	assert_int_equal(why, want);
	assert_true(target == -1);
}

static void test_SR_03_prescription_target(void **state)
{
	struct limits l;
	double target = 0;
	enum limits_refusal why = LIMITS_OK;

	(void)state;
	limits_defaults(BFR_LIMB_LEG, &l);
	assert_int_equal(limits_check_prescription(&l, 200, 0, 60, &target, &why), 0);
	assert_true(fabs(target - 120) < 1e-9);
	/* Exactly max_pct_lop is allowed; 0.1 % more is not. */
	assert_int_equal(limits_check_prescription(&l, 200, 0, 80, &target, NULL), 0);
	assert_true(fabs(target - 160) < 1e-9);
	expect_rx_refused(&l, 200, 0, 80.1, LIMITS_REFUSE_PCT_ABOVE_MAX);
	expect_rx_refused(&l, 200, 0, 0, LIMITS_REFUSE_PCT_INVALID);
	expect_rx_refused(&l, 200, 0, -10, LIMITS_REFUSE_PCT_INVALID);
	expect_rx_refused(&l, 200, 0, NAN, LIMITS_REFUSE_PCT_INVALID);
	expect_rx_refused(&l, 200, 0, INFINITY, LIMITS_REFUSE_PCT_INVALID);
}

static void test_SR_03_prescription_ceiling(void **state)
{
	struct limits l;
	double target = 0;

	(void)state;
	limits_defaults(BFR_LIMB_LEG, &l);
	limits_override(&l, LIMITS_F_MAX_PRESSURE, 200, NULL);
	/* 80 % of 250 = 200: exactly the ceiling is allowed. */
	assert_int_equal(limits_check_prescription(&l, 250, 0, 80, &target, NULL), 0);
	assert_true(fabs(target - 200) < 1e-9);
	/* 80 % of 250.2 = 200.16 > 200. */
	expect_rx_refused(&l, 250.2, 0, 80, LIMITS_REFUSE_TARGET_ABOVE_CEILING);
}

static void test_SR_15_lop_validity(void **state)
{
	struct limits l;
	double target = 0;

	(void)state;
	limits_defaults(BFR_LIMB_LEG, &l);
	expect_rx_refused(&l, NAN, 0, 50, LIMITS_REFUSE_LOP_MISSING);
	assert_int_equal(limits_check_prescription(&l, 50, 0, 50, &target, NULL), 0);
	assert_int_equal(limits_check_prescription(&l, 350, 0, 50, &target, NULL), 0);
	expect_rx_refused(&l, 49.9, 0, 50, LIMITS_REFUSE_LOP_OUT_OF_RANGE);
	expect_rx_refused(&l, 350.1, 0, 50, LIMITS_REFUSE_LOP_OUT_OF_RANGE);
	expect_rx_refused(&l, INFINITY, 0, 50, LIMITS_REFUSE_LOP_OUT_OF_RANGE);
	expect_rx_refused(&l, -200, 0, 50, LIMITS_REFUSE_LOP_OUT_OF_RANGE);
	/* Age exactly lop_max_age_s is accepted, one second more is not. */
	assert_int_equal(limits_check_prescription(&l, 200, 86400, 50, &target, NULL), 0);
	expect_rx_refused(&l, 200, 86401, 50, LIMITS_REFUSE_LOP_TOO_OLD);
	expect_rx_refused(&l, 200, -1, 50, LIMITS_REFUSE_LOP_TOO_OLD);
}

static void test_check_target(void **state)
{
	struct limits l;
	enum limits_refusal why = LIMITS_OK;

	(void)state;
	limits_defaults(BFR_LIMB_ARM, &l);
	assert_int_equal(limits_check_target(&l, 200, 0, 120, &why), 0);
	assert_int_equal(limits_check_target(&l, 200, 0, 120.1, &why), -EPERM);
	assert_int_equal(why, LIMITS_REFUSE_TARGET_ABOVE_PCT);
	assert_int_equal(limits_check_target(&l, 350, 0, 200.1, &why), -EPERM);
	assert_int_equal(why, LIMITS_REFUSE_TARGET_ABOVE_CEILING);
	assert_int_equal(limits_check_target(&l, 200, 0, NAN, &why), -EPERM);
	assert_int_equal(why, LIMITS_REFUSE_TARGET_INVALID);
	assert_int_equal(limits_check_target(&l, 200, 0, 0, &why), -EPERM);
	assert_int_equal(why, LIMITS_REFUSE_TARGET_INVALID);
	assert_int_equal(limits_check_target(&l, NAN, 0, 100, &why), -EPERM);
	assert_int_equal(why, LIMITS_REFUSE_LOP_MISSING);
	assert_int_equal(limits_check_target(NULL, 200, 0, 100, &why), -EINVAL);
	assert_int_equal(limits_check_prescription(&l, 200, 0, 50, NULL, &why), -EINVAL);
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(limits_field_name(LIMITS_F_MAX_PRESSURE), "max_pressure_mmHg");
	assert_string_equal(limits_field_name(LIMITS_F_COUNT), "unknown");
	assert_string_equal(limits_refusal_name(LIMITS_REFUSE_REPERFUSION), "reperfusion");
	assert_string_equal(limits_refusal_name(LIMITS_REFUSAL_COUNT), "unknown");
	for (int i = 0; i < LIMITS_F_COUNT; i++)
		assert_string_not_equal(limits_field_name((enum limits_field)i), "unknown");
	for (int i = 0; i < LIMITS_REFUSAL_COUNT; i++)
		assert_non_null(limits_refusal_name((enum limits_refusal)i));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_per_limb),
		cmocka_unit_test(test_defaults_garbage_limb),
		cmocka_unit_test(test_SR_18_override_tightens),
		cmocka_unit_test(test_SR_18_override_refuses_loosening),
		cmocka_unit_test(test_SR_18_arm_never_gets_leg_limits),
		cmocka_unit_test(test_override_garbage),
		cmocka_unit_test(test_SR_03_prescription_target),
		cmocka_unit_test(test_SR_03_prescription_ceiling),
		cmocka_unit_test(test_SR_15_lop_validity),
		cmocka_unit_test(test_check_target),
		cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
