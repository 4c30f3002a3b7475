/*
 * test_sfloat.c - IEEE 11073-20601 SFLOAT decode/encode.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "sfloat.h"

#define SENTINEL (-12345.0)

/* cmocka 1.1 has no double comparison; report both values when it fails. */
#define assert_near(a, b, eps) assert_near_at((a), (b), (eps), __FILE__, __LINE__)
static void assert_near_at(double a, double b, double eps, const char *file, int line)
{
	if (!(fabs(a - b) <= eps)) {
		print_error("%s:%d: %.15g != %.15g (eps %g)\n", file, line, a, b, eps);
		fail();
	}
}

static void test_decode_examples(void **state)
{
	static const struct {
		uint16_t raw;
		double value;
	} cases[] = {
		{ 0x00C8, 200.0 },  /* DESIGN example */
		{ 0xF014, 2.0 },    /* 20 * 10^-1 */
		{ 0x0000, 0.0 },
		{ 0x0001, 1.0 },
		{ 0x0FFF, -1.0 },   /* mantissa -1 */
		{ 0xFF9C, -10.0 },  /* -100 * 10^-1 */
		{ 0xF4D2, 123.4 },  /* 1234 * 10^-1 */
		{ 0x07FD, 2045.0 }, /* largest plain mantissa */
		{ 0x0803, -2045.0 },
		{ 0x77FD, 2045e7 }, /* largest value */
		{ 0x8001, 1e-8 },   /* smallest positive value */
		{ 0x1001, 10.0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		double v = SENTINEL;

		assert_int_equal(sfloat_decode(cases[i].raw, &v), SFLOAT_CLASS_NUMBER);
		assert_near(v, cases[i].value, fabs(cases[i].value) * 1e-12);
		assert_near(sfloat_to_double(cases[i].raw), cases[i].value,
				    fabs(cases[i].value) * 1e-12);
	}
}

static void test_decode_specials(void **state)
{
	static const struct {
		uint16_t raw;
		enum sfloat_class cls;
	} cases[] = {
		{ SFLOAT_NAN, SFLOAT_CLASS_NAN },
		{ SFLOAT_NRES, SFLOAT_CLASS_NRES },
		{ SFLOAT_POS_INF, SFLOAT_CLASS_POS_INF },
		{ SFLOAT_NEG_INF, SFLOAT_CLASS_NEG_INF },
		{ SFLOAT_RESERVED, SFLOAT_CLASS_RESERVED },
		/* Special mantissas with a non-zero exponent are reserved, never numbers. */
		{ 0x17FF, SFLOAT_CLASS_RESERVED },
		{ 0xF800, SFLOAT_CLASS_RESERVED },
		{ 0x27FE, SFLOAT_CLASS_RESERVED },
		{ 0x8802, SFLOAT_CLASS_RESERVED },
		{ 0x7801, SFLOAT_CLASS_RESERVED },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		double v = SENTINEL;

		assert_int_equal(sfloat_decode(cases[i].raw, &v), cases[i].cls);
		assert_true(v == SENTINEL); /* value untouched */
		assert_true(isnan(sfloat_to_double(cases[i].raw)));
	}
}

static uint16_t encode_ok(double v)
{
	uint16_t raw = 0xBEEF;

	assert_int_equal(sfloat_encode(v, &raw), 0);
	return raw;
}

static void test_encode_most_precision(void **state)
{
	static const struct {
		double value;
		uint16_t raw;
	} cases[] = {
		{ 200.0, 0xF7D0 },    /* 2000 * 10^-1 beats 200 * 10^0 */
		{ 2.0, 0xD7D0 },      /* 2000 * 10^-3 */
		{ 123.4, 0xF4D2 },
		{ 0.0, 0x0000 },
		{ -0.0, 0x0000 },
		{ 1e-9, 0x0000 },     /* below half the smallest step: zero */
		{ 2045.0, 0x07FD },
		{ 2046.0, 0x10CD },   /* 2046 would be +INF: 205 * 10^1 */
		{ 2047.0, 0x10CD },
		{ -2046.0, 0x1F33 },  /* -205 * 10^1, never -INF */
		{ 2045e7, 0x77FD },
		{ -2045e7, 0x7803 },
		{ -10.0, 0xEC18 },    /* -1000 * 10^-2 */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(encode_ok(cases[i].value), cases[i].raw);
}

static void test_encode_rounding(void **state)
{
	/* 0.12345678: the largest mantissa that fits is 1235 * 10^-4. */
	assert_int_equal(encode_ok(0.12345678), 0xC4D3);
	/* Half away from zero: 1.0005 -> 1001 * 10^-3 (0x3E9), -1.0005 -> -1001. */
	assert_int_equal(encode_ok(1.0005), 0xD3E9);
	assert_int_equal(encode_ok(-1.0005), 0xDC17);
	/* 204.55 at 10^-1 would round to 2046 (a special): falls to 205 * 10^0. */
	assert_int_equal(encode_ok(204.55), 0x00CD);
	assert_int_equal(encode_ok(-204.55), 0x0F33);
	/* 204.54 stays at 10^-1: 2045. */
	assert_int_equal(encode_ok(204.54), 0xF7FD);
	/* 0.5e-8 rounds up to the smallest step, 0.4e-8 to zero. */
	assert_int_equal(encode_ok(0.5e-8), 0x8001);
	assert_int_equal(encode_ok(0.4e-8), 0x0000);
	/* 250.5 at 10^0 is a tie: 251. */
	assert_int_equal(encode_ok(250.5), 0x00FB);
	assert_int_equal(encode_ok(250.4), 0x00FA);
}

static void test_encode_limits(void **state)
{
	static const double bad_range[] = { 2045.5e7, -2045.5e7, 1e11, -1e300, INFINITY,
					    -INFINITY };
	uint16_t raw = 0xBEEF;

	for (size_t i = 0; i < sizeof(bad_range) / sizeof(bad_range[0]); i++) {
		assert_int_equal(sfloat_encode(bad_range[i], &raw), -ERANGE);
		assert_int_equal(raw, 0xBEEF);
	}
	assert_int_equal(sfloat_encode(NAN, &raw), -EINVAL);
	assert_int_equal(raw, 0xBEEF);
	/* Just inside the top: 2045.4e7 rounds to 2045e7. */
	assert_int_equal(encode_ok(2045.4e7), 0x77FD);
}

/* Typical pressures 0..350 mmHg in 0.1 steps. */
static void test_roundtrip_pressures(void **state)
{
	for (int tenths = 0; tenths <= 3500; tenths++) {
		double p = tenths / 10.0;
		double back = SENTINEL;
		uint16_t raw = encode_ok(p);

		assert_int_equal(sfloat_decode(raw, &back), SFLOAT_CLASS_NUMBER);
		/* 0.1 resolution holds up to 204.5 mmHg; above it SFLOAT keeps whole mmHg. */
		if (tenths <= 2045)
			assert_near(back, p, 1e-9);
		else
			assert_true(fabs(back - p) <= 0.5 + 1e-9);

		raw = encode_ok(-p);
		assert_int_equal(sfloat_decode(raw, &back), SFLOAT_CLASS_NUMBER);
		assert_true(fabs(back + p) <= 0.5 + 1e-9);
	}
}

/* Every number SFLOAT can carry survives encode(decode(raw)) with its value. */
static void test_roundtrip_all_numbers(void **state)
{
	for (uint32_t raw = 0; raw <= 0xFFFF; raw++) {
		double v, back;
		uint16_t again;

		if (sfloat_decode((uint16_t)raw, &v) != SFLOAT_CLASS_NUMBER)
			continue;
		assert_int_equal(sfloat_encode(v, &again), 0);
		assert_int_equal(sfloat_decode(again, &back), SFLOAT_CLASS_NUMBER);
		assert_near(back, v, fabs(v) * 1e-12);
		/* Never lands on a special or reserved pattern. */
		assert_true((again & 0x0FFF) < 0x7FE || (again & 0x0FFF) > 0x802);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode_examples),
		cmocka_unit_test(test_decode_specials),
		cmocka_unit_test(test_encode_most_precision),
		cmocka_unit_test(test_encode_rounding),
		cmocka_unit_test(test_encode_limits),
		cmocka_unit_test(test_roundtrip_pressures),
		cmocka_unit_test(test_roundtrip_all_numbers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
