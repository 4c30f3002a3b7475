/*
 * sfloat.h - IEEE 11073-20601 16-bit SFLOAT.
 *
 * Layout: bits 15..12 a signed 4-bit exponent (base 10), bits 11..0 a signed
 * 12-bit mantissa; value = mantissa * 10^exponent. Reserved mantissas (with
 * exponent 0) encode the special values below. Decoding never invents a
 * number: a special value is reported as its class and *value is untouched.
 * Those mantissas (0x7FE..0x802) with any other exponent are reserved by
 * the standard too and decode as SFLOAT_CLASS_RESERVED, so a number's
 * mantissa is always within -2045..+2045.
 *
 * Precision: with the most precise encoding, pressures keep 0.1 mmHg up to
 * 204.5 and whole mmHg above (250.4 -> 250). Values that round to zero at
 * 10^-8 encode as 0x0000.
 */
#ifndef BFR_SFLOAT_H
#define BFR_SFLOAT_H

#include <stdint.h>

#define SFLOAT_NAN 0x07FF
#define SFLOAT_NRES 0x0800
#define SFLOAT_POS_INF 0x07FE
#define SFLOAT_NEG_INF 0x0802
#define SFLOAT_RESERVED 0x0801

enum sfloat_class {
	SFLOAT_CLASS_NUMBER = 0,
	SFLOAT_CLASS_NAN,
	SFLOAT_CLASS_NRES,
	SFLOAT_CLASS_POS_INF,
	SFLOAT_CLASS_NEG_INF,
	SFLOAT_CLASS_RESERVED,
};

/* Classifies raw; for SFLOAT_CLASS_NUMBER stores the value in *value. */
enum sfloat_class sfloat_decode(uint16_t raw, double *value);

/*
 * Encodes value with the largest mantissa that fits (most precision),
 * rounding half away from zero. Returns 0, -EINVAL for NaN (use SFLOAT_NAN
 * explicitly), -ERANGE when |value| is beyond what SFLOAT can hold (infinite
 * values included). *raw is untouched on failure.
 */
int sfloat_encode(double value, uint16_t *raw);

/* Convenience for the common case: NaN for every special value. */
double sfloat_to_double(uint16_t raw);

#endif
