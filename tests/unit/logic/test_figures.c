/* test_figures.c - per-set statistics over synthetic sample streams. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "figures.h"

#define EPS 1e-9

/* cmocka 1.1's assert_float_equal rounds to float; compare doubles here. */
#define assert_double_equal(a, b, eps) check_double((a), (b), (eps), #a, __FILE__, __LINE__)

static void check_double(double got, double want, double eps, const char *what,
			 const char *file, int line)
{
	if (!(fabs(got - want) <= eps))
		fail_msg("%s:%d: %s = %.12g, want %.12g", file, line, what, got, want);
}

static void test_init_rejects_bad_values(void **state)
{
	struct figures_acc f;

	assert_int_equal(figures_init(&f, 0, 200), -EINVAL);
	assert_int_equal(figures_init(&f, -5, 200), -EINVAL);
	assert_int_equal(figures_init(&f, NAN, 200), -EINVAL);
	assert_int_equal(figures_init(&f, 160, -1), -EINVAL);
	assert_int_equal(figures_init(&f, 160, INFINITY), -EINVAL);
	assert_int_equal(figures_init(NULL, 160, 200), -EINVAL);
	assert_int_equal(figures_init(&f, 160, 0), 0);
}

static void test_no_samples_is_nodata(void **state)
{
	struct figures_acc f;
	struct set_figures out;

	memset(&out, 0x5a, sizeof(out));
	assert_int_equal(figures_init(&f, 160, 200), 0);
	assert_int_equal(figures_result(&f, 1000, &out), -ENODATA);
	assert_int_equal(out.samples, 0x5a5a5a5a); /* untouched on failure */
}

/* A constant stream exactly on target: everything within band. */
static void test_constant_on_target(void **state)
{
	struct figures_acc f;
	struct set_figures r;
	uint64_t t;

	assert_int_equal(figures_init(&f, 160, 200), 0);
	for (t = 1000; t <= 11000; t += 100)
		assert_int_equal(figures_add(&f, t, 160), 0);
	assert_int_equal(figures_result(&f, 11000, &r), 0);
	assert_int_equal(r.samples, 101);
	assert_double_equal(r.mean_mmHg, 160, EPS);
	assert_double_equal(r.min_mmHg, 160, EPS);
	assert_double_equal(r.max_mmHg, 160, EPS);
	assert_double_equal(r.pct_within_10, 100, EPS);
	assert_double_equal(r.pct_within_5, 100, EPS);
	assert_double_equal(r.peak_pct_lop, 80, EPS);
	assert_double_equal(r.time_under_pressure_s, 10, EPS);
	assert_double_equal(r.covered_s, 10, EPS);
	assert_double_equal(r.target_mmHg, 160, EPS);
}

/* Band edges are inclusive; just outside is outside. Target 200:
 * 10 % = 20 mmHg, 5 % = 10 mmHg. Each value holds 1 s. */
static void test_band_boundaries(void **state)
{
	struct figures_acc f;
	struct set_figures r;

	assert_int_equal(figures_init(&f, 200, 250), 0);
	assert_int_equal(figures_add(&f, 0, 220), 0);     /* edge of 10 %, outside 5 % */
	assert_int_equal(figures_add(&f, 1000, 210), 0);  /* edge of 5 % */
	assert_int_equal(figures_add(&f, 2000, 180), 0);  /* lower edge of 10 % */
	assert_int_equal(figures_add(&f, 3000, 179.5), 0); /* just outside 10 % */
	assert_int_equal(figures_add(&f, 4000, 190), 0);  /* lower edge of 5 % */
	assert_int_equal(figures_result(&f, 5000, &r), 0);
	/* within 10 %: 220, 210, 180, 190 -> 4 of 5 s */
	assert_double_equal(r.pct_within_10, 80, EPS);
	/* within 5 %: 210, 190 -> 2 of 5 s */
	assert_double_equal(r.pct_within_5, 40, EPS);
	assert_double_equal(r.min_mmHg, 179.5, EPS);
	assert_double_equal(r.max_mmHg, 220, EPS);
	assert_double_equal(r.peak_pct_lop, 88, EPS);
	assert_double_equal(r.mean_mmHg, (220 + 210 + 180 + 179.5 + 190) / 5.0, EPS);
}

/* Uneven sample spacing: time weighting, not sample counting. */
static void test_time_weighted(void **state)
{
	struct figures_acc f;
	struct set_figures r;

	assert_int_equal(figures_init(&f, 100, 0), 0);
	assert_int_equal(figures_add(&f, 0, 100), 0);   /* holds 900 ms */
	assert_int_equal(figures_add(&f, 900, 0), 0);   /* holds 100 ms */
	assert_int_equal(figures_add(&f, 1000, 0), 0);  /* end sample */
	assert_int_equal(figures_result(&f, 1000, &r), 0);
	assert_double_equal(r.mean_mmHg, 90, EPS);
	assert_double_equal(r.pct_within_10, 90, EPS);
	assert_double_equal(r.time_under_pressure_s, 0.9, EPS);
	assert_double_equal(r.peak_pct_lop, 0, EPS); /* LOP unknown */
	/* Plain sample counting would have said 33 %. */
}

/* The last value holds until the end time; a gap is capped. */
static void test_tail_and_gap_cap(void **state)
{
	struct figures_acc f;
	struct set_figures r;

	assert_int_equal(figures_init(&f, 100, 200), 0);
	assert_int_equal(figures_add(&f, 0, 100), 0);
	/* 5 s telemetry gap: only FIGURES_MAX_HOLD_MS of it is credited. */
	assert_int_equal(figures_add(&f, 5000, 50), 0);
	assert_int_equal(figures_result(&f, 5500, &r), 0);
	assert_double_equal(r.covered_s, 1.5, EPS);
	assert_double_equal(r.pct_within_10, 100.0 / 1.5, 1e-6);
	assert_double_equal(r.time_under_pressure_s, 1.5, EPS);
	/* An end time before the last sample closes nothing more. */
	assert_int_equal(figures_result(&f, 4000, &r), 0);
	assert_double_equal(r.covered_s, 1.0, EPS);
}

static void test_pressure_threshold_boundary(void **state)
{
	struct figures_acc f;
	struct set_figures r;

	assert_int_equal(figures_init(&f, 100, 200), 0);
	assert_int_equal(figures_add(&f, 0, FIGURES_PRESSURE_MMHG), 0);
	assert_int_equal(figures_add(&f, 100, FIGURES_PRESSURE_MMHG - 0.1), 0);
	assert_int_equal(figures_result(&f, 200, &r), 0);
	assert_double_equal(r.time_under_pressure_s, 0.1, EPS);
}

static void test_single_sample(void **state)
{
	struct figures_acc f;
	struct set_figures r;

	assert_int_equal(figures_init(&f, 100, 200), 0);
	assert_int_equal(figures_add(&f, 42, 104), 0);
	assert_int_equal(figures_result(&f, 42, &r), 0);
	assert_int_equal(r.samples, 1);
	assert_double_equal(r.mean_mmHg, 104, EPS);
	assert_double_equal(r.pct_within_10, 100, EPS);
	assert_double_equal(r.pct_within_5, 100, EPS);
	assert_double_equal(r.covered_s, 0, EPS);
}

/* Garbage samples are refused and change nothing. */
static void test_bad_samples_change_nothing(void **state)
{
	struct figures_acc f, before;

	assert_int_equal(figures_init(&f, 100, 200), 0);
	assert_int_equal(figures_add(&f, 1000, 100), 0);
	before = f;
	assert_int_equal(figures_add(&f, 999, 100), -EINVAL); /* back in time */
	assert_int_equal(figures_add(&f, 2000, NAN), -EINVAL);
	assert_int_equal(figures_add(&f, 2000, INFINITY), -EINVAL);
	assert_int_equal(figures_add(&f, 2000, -1), -EINVAL);
	assert_int_equal(figures_add(NULL, 2000, 1), -EINVAL);
	assert_memory_equal(&f, &before, sizeof(f));
	/* Same timestamp twice is fine (zero-length hold). */
	assert_int_equal(figures_add(&f, 1000, 101), 0);
}

/* A pause closes the hold: the paused time is not covered. */
static void test_gap(void **state)
{
	struct figures_acc f, before;
	struct set_figures r;

	assert_int_equal(figures_init(&f, 100, 200), 0);
	assert_int_equal(figures_gap(&f, 0), 0); /* no sample yet: nothing to close */
	assert_int_equal(figures_add(&f, 0, 100), 0);
	assert_int_equal(figures_gap(&f, 500), 0);   /* 0.5 s at 100 */
	before = f;
	assert_int_equal(figures_gap(&f, 400), -EINVAL); /* before the last point */
	assert_memory_equal(&f, &before, sizeof(f));
	assert_int_equal(figures_result(&f, 60000, &r), 0);
	assert_double_equal(r.covered_s, 0.5, EPS); /* the tail after a gap is not held */
	assert_int_equal(figures_add(&f, 60000, 50), 0); /* resumed a minute later */
	assert_int_equal(figures_add(&f, 60500, 50), 0);
	assert_int_equal(figures_result(&f, 60500, &r), 0);
	assert_double_equal(r.covered_s, 1.0, EPS);
	assert_double_equal(r.mean_mmHg, 75, EPS);
	assert_double_equal(r.pct_within_10, 50, EPS);
	assert_int_equal(figures_gap(NULL, 1), -EINVAL);
}

/* A long stream stays exact: constant memory, no drift in the integer time
 * buckets. One hour at 10 Hz, a 1 s square wave between 150 and 170. */
static void test_long_stream(void **state)
{
	struct figures_acc f;
	struct set_figures r;
	uint64_t t;

	assert_int_equal(figures_init(&f, 160, 200), 0);
	for (t = 0; t < 3600000; t += 100)
		assert_int_equal(figures_add(&f, t, (t / 1000) % 2 ? 170 : 150), 0);
	assert_int_equal(figures_result(&f, 3600000, &r), 0);
	assert_double_equal(r.mean_mmHg, 160, 1e-6);
	assert_double_equal(r.pct_within_10, 100, EPS);  /* 10 off of 160 < 16 */
	assert_double_equal(r.pct_within_5, 0, EPS);     /* 10 off > 8 */
	assert_double_equal(r.covered_s, 3600, EPS);
	assert_double_equal(r.peak_pct_lop, 85, EPS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_rejects_bad_values),
		cmocka_unit_test(test_no_samples_is_nodata),
		cmocka_unit_test(test_constant_on_target),
		cmocka_unit_test(test_band_boundaries),
		cmocka_unit_test(test_time_weighted),
		cmocka_unit_test(test_tail_and_gap_cap),
		cmocka_unit_test(test_pressure_threshold_boundary),
		cmocka_unit_test(test_single_sample),
		cmocka_unit_test(test_bad_samples_change_nothing),
		cmocka_unit_test(test_gap),
		cmocka_unit_test(test_long_stream),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
