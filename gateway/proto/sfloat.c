/*
 * sfloat.c - IEEE 11073-20601 16-bit SFLOAT.
 *
 * The five special values occupy the mantissas 0x7FE..0x802 (as unsigned
 * 12-bit patterns). The standard defines them with exponent 0 and reserves
 * those mantissas for every other exponent, so such a value never decodes as
 * a number: it is SFLOAT_CLASS_RESERVED. Encoding therefore never produces a
 * mantissa outside -2045..+2045.
 */
#include "sfloat.h"

#include <errno.h>
#include <math.h>

#define SFLOAT_EXP_MIN (-8)
#define SFLOAT_EXP_MAX 7
#define SFLOAT_MANT_MAX 2045 /* 2046, 2047, -2046..-2048 are the specials */

/* Exact for |n| <= 22 in binary64, so scaling by it adds no error of its own. */
static double pow10i(int n)
{
	double p = 1.0;

	for (int i = 0; i < n; i++)
		p *= 10.0;
	return p;
}

static int sign_extend(unsigned v, unsigned bits)
{
	unsigned m = 1u << (bits - 1);

	return (int)((v ^ m) - m);
}

enum sfloat_class sfloat_decode(uint16_t raw, double *value)
{
	unsigned mant_bits = raw & 0x0FFFu;
	int exponent = sign_extend(raw >> 12, 4);
	int mantissa;

	if (mant_bits >= 0x7FEu && mant_bits <= 0x802u) {
		if (exponent != 0)
			return SFLOAT_CLASS_RESERVED;
		switch (mant_bits) {
		case 0x7FF:
			return SFLOAT_CLASS_NAN;
		case 0x800:
			return SFLOAT_CLASS_NRES;
		case 0x7FE:
			return SFLOAT_CLASS_POS_INF;
		case 0x802:
			return SFLOAT_CLASS_NEG_INF;
		default:
			return SFLOAT_CLASS_RESERVED;
		}
	}

	mantissa = sign_extend(mant_bits, 12);
	/* Divide for negative exponents: 1234 / 10 is the double nearest 123.4, 1234 * 0.1 is not. */
	if (exponent < 0)
		*value = (double)mantissa / pow10i(-exponent);
	else
		*value = (double)mantissa * pow10i(exponent);
	return SFLOAT_CLASS_NUMBER;
}

/*
 * Rounds half away from zero in decimal terms. value * 10^k of a decimal
 * such as 2.0455 lands a few ulps beside the .5 it was meant to be, so a
 * fraction within 1e-9 of one half counts as a tie. |scaled| stays below
 * ~2e4 here, where a double's spacing is ~4e-12, far below the tolerance.
 */
static double round_half_away(double scaled)
{
	double whole = trunc(scaled);
	double frac = fabs(scaled - whole);

	if (fabs(frac - 0.5) < 1e-9)
		return whole + (scaled < 0 ? -1.0 : 1.0);
	return round(scaled);
}

static double scale(double value, int exponent)
{
	if (exponent < 0)
		return value * pow10i(-exponent);
	return value / pow10i(exponent);
}

int sfloat_encode(double value, uint16_t *raw)
{
	if (isnan(value))
		return -EINVAL;
	if (isinf(value))
		return -ERANGE;

	/* The smallest exponent whose rounded mantissa still fits gives the most digits. */
	for (int e = SFLOAT_EXP_MIN; e <= SFLOAT_EXP_MAX; e++) {
		double m = round_half_away(scale(value, e));

		if (fabs(m) > SFLOAT_MANT_MAX)
			continue;
		if (m == 0.0) {
			/* Canonical zero (also for -0.0 and values below 0.5e-8). */
			*raw = 0x0000;
			return 0;
		}
		*raw = (uint16_t)(((unsigned)(e & 0xF) << 12) | ((unsigned)(int)m & 0x0FFFu));
		return 0;
	}
	return -ERANGE;
}

double sfloat_to_double(uint16_t raw)
{
	double v = NAN; /* only read for a number, which sets it; gcc -O2 warns anyway */

	if (sfloat_decode(raw, &v) != SFLOAT_CLASS_NUMBER)
		return NAN;
	return v;
}
