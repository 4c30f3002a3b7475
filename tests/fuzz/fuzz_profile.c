/*
 * fuzz_profile.c - libFuzzer target: the BFR Cuff profile decoders
 * (gateway/proto/cuff_profile.c, sfloat.c) against a reference decode.
 *
 * The input is one characteristic value, given to every decoder (each wants
 * an exact length, so most refuse it). The reference below is written from
 * docs/gatt-profile.md alone (sections 2-6: byte offsets, little-endian
 * fields, exact lengths, value ranges, SFLOAT with its special values) with
 * plain byte arithmetic; it calls nothing of the project's codec. For every
 * decoder the target checks that:
 *   - the project accepts exactly what the reference accepts, with the same
 *     error class (-EBADMSG, -ENOTSUP, -ERANGE);
 *   - every decoded field equals the reference's (pressures within 1e-9
 *     relative, NaN where the reference has a special value);
 *   - a refused value leaves the output untouched;
 *   - what decodes re-encodes, and the re-encoded bytes decode to the same
 *     values (SFLOAT may choose another exponent, so bytes may differ).
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cuff_profile.h"
#include "sfloat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                \
	do {                       \
		if (!(cond))       \
			abort();   \
	} while (0)

/* --- the reference ----------------------------------------------------------------- */

static unsigned ref_u16(const uint8_t *p)
{
	return (unsigned)p[0] + 256u * p[1];
}

static uint32_t ref_u32(const uint8_t *p)
{
	return (uint32_t)ref_u16(p) + 65536u * (uint32_t)ref_u16(p + 2);
}

/*
 * docs/gatt-profile.md section 6: exponent = top nibble as a signed 4-bit
 * number, mantissa = low 12 bits as a signed 12-bit number. Unsigned
 * mantissa patterns 0x7FE..0x802 are the specials (exponent 0) or reserved
 * (any other exponent): not a number either way. *is_number false then.
 */
static double ref_sfloat(unsigned raw, bool *is_number)
{
	static const double tens[] = { 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8 };
	unsigned mant = raw % 4096;
	int exponent = (int)(raw / 4096);
	int mantissa = (int)mant;

	if (exponent >= 8)
		exponent -= 16;
	if (mant >= 0x7FE && mant <= 0x802) {
		*is_number = false;
		return NAN;
	}
	if (mantissa >= 2048)
		mantissa -= 4096;
	*is_number = true;
	return exponent >= 0 ? mantissa * tens[exponent] : mantissa / tens[-exponent];
}

static double ref_pressure(const uint8_t *p)
{
	bool number;

	return ref_sfloat(ref_u16(p), &number);
}

static bool same(double project, double ref)
{
	if (isnan(ref))
		return isnan(project);
	return fabs(project - ref) <= 1e-9 * (fabs(ref) > 1 ? fabs(ref) : 1);
}

static void check_untouched(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		CHECK(b[i] == 0xA5);
}

/* --- section 6: SFLOAT --------------------------------------------------------------- */

static void check_sfloat(const uint8_t *data, size_t size)
{
	unsigned raw;
	bool number;
	double ref, v = 0, back = 0;
	uint16_t again;

	if (size < 2)
		return;
	raw = ref_u16(data);
	ref = ref_sfloat(raw, &number);
	CHECK((sfloat_decode((uint16_t)raw, &v) == SFLOAT_CLASS_NUMBER) == number);
	CHECK(same(sfloat_to_double((uint16_t)raw), ref));
	if (!number) {
		/* The five exact specials keep their class; every other one is reserved. */
		enum sfloat_class want = raw == 0x07FF   ? SFLOAT_CLASS_NAN
					 : raw == 0x0800 ? SFLOAT_CLASS_NRES
					 : raw == 0x07FE ? SFLOAT_CLASS_POS_INF
					 : raw == 0x0802 ? SFLOAT_CLASS_NEG_INF
							 : SFLOAT_CLASS_RESERVED;

		CHECK(sfloat_decode((uint16_t)raw, &v) == want);
		return;
	}
	CHECK(same(v, ref));
	/* Every number re-encodes, to a number within half a unit of its last digit. */
	CHECK(sfloat_encode(v, &again) == 0);
	CHECK(sfloat_decode(again, &back) == SFLOAT_CLASS_NUMBER);
	CHECK(fabs(back - v) <= fabs(v) * 1e-12 || fabs(back - v) <= 1e-8);
}

/* --- section 2: Cuff Pressure ----------------------------------------------------------- */

static void check_pressure(const uint8_t *data, size_t size)
{
	struct bfr_sample s[BFR_MAX_SAMPLES_PER_NTF], again[BFR_MAX_SAMPLES_PER_NTF];
	uint8_t out[ATT_MAX_MTU];
	size_t n = 0xA5A5, n2 = 0, len = 0;
	bool ref_ok = size >= 1 && data[0] >= 1 && data[0] <= 36 && size == 1 + 14u * data[0];
	int rc;

	memset(s, 0xA5, sizeof(s));
	rc = bfr_pressure_decode(data, size, s, BFR_MAX_SAMPLES_PER_NTF, &n);
	if (!ref_ok) {
		CHECK(rc == -EBADMSG);
		check_untouched(s, sizeof(s));
		CHECK(n == 0xA5A5);
		return;
	}
	CHECK(rc == 0 && n == data[0]);
	for (size_t i = 0; i < n; i++) {
		const uint8_t *p = data + 1 + 14 * i;

		CHECK(s[i].seq == ref_u16(p));
		CHECK(s[i].t_ms == ref_u32(p + 2));
		CHECK(same(s[i].pressure_mmhg, ref_pressure(p + 6)));
		CHECK(same(s[i].target_mmhg, ref_pressure(p + 8)));
		CHECK(same(s[i].pulse_amplitude, ref_pressure(p + 10)));
		CHECK(s[i].status == ref_u16(p + 12));
	}
	/* A buffer with room for fewer samples than sent is -ENOSPC, not a partial decode. */
	if (n > 1) {
		size_t m = 0xA5A5;

		CHECK(bfr_pressure_decode(data, size, again, n - 1, &m) == -ENOSPC && m == 0xA5A5);
	}
	CHECK(bfr_pressure_encode(s, n, out, sizeof(out), &len) == 0 && len == size);
	CHECK(bfr_pressure_decode(out, len, again, BFR_MAX_SAMPLES_PER_NTF, &n2) == 0 && n2 == n);
	for (size_t i = 0; i < n; i++) {
		CHECK(again[i].seq == s[i].seq && again[i].t_ms == s[i].t_ms &&
		      again[i].status == s[i].status);
		CHECK(same(again[i].pressure_mmhg, s[i].pressure_mmhg));
		CHECK(same(again[i].target_mmhg, s[i].target_mmhg));
		CHECK(same(again[i].pulse_amplitude, s[i].pulse_amplitude));
	}
}

/* --- section 3: Control Point request and response --------------------------------------- */

/* The reference's verdict on a request: 0, -ENOTSUP, -EBADMSG or -ERANGE. */
static int ref_cp_request(const uint8_t *d, size_t n)
{
	static const size_t lengths[7] = { 0, 5, 2, 3, 2, 1, 3 };
	bool number;
	double p;

	if (n == 0)
		return -EBADMSG;
	if (d[0] < 1 || d[0] > 6)
		return -ENOTSUP;
	if (n != lengths[d[0]])
		return -EBADMSG;
	switch (d[0]) {
	case 1: /* SET_TARGET: a real, non-negative pressure */
	case 3: /* MEASURE_LOP likewise */
		p = ref_sfloat(ref_u16(d + 1), &number);
		return number && p >= 0 ? 0 : -ERANGE;
	case 2:
		return d[1] <= 2 ? 0 : -ERANGE;
	case 4:
		return d[1] <= 4 ? 0 : -ERANGE;
	case 6:
		return ref_u16(d + 1) != 0 ? 0 : -ERANGE;
	default:
		return 0;
	}
}

static void check_cp_request(const uint8_t *data, size_t size)
{
	struct bfr_cp_request req, again;
	uint8_t out[16];
	size_t len = 0;
	int ref = ref_cp_request(data, size);
	int rc;

	memset(&req, 0xA5, sizeof(req));
	rc = bfr_cp_request_decode(data, size, &req);
	CHECK(rc == ref);
	if (rc < 0) {
		check_untouched(&req, sizeof(req));
		return;
	}
	CHECK(req.opcode == data[0]);
	switch (req.opcode) {
	case BFR_CP_SET_TARGET:
		CHECK(same(req.set_target.mmhg, ref_pressure(data + 1)));
		CHECK(req.set_target.ramp_ms == ref_u16(data + 3));
		break;
	case BFR_CP_DEFLATE:
		CHECK(req.deflate_reason == data[1]);
		break;
	case BFR_CP_MEASURE_LOP:
		CHECK(same(req.max_search_mmhg, ref_pressure(data + 1)));
		break;
	case BFR_CP_CUE:
		CHECK(req.cue == data[1]);
		break;
	case BFR_CP_SET_SUPERVISION:
		CHECK(req.supervision_timeout_ms == ref_u16(data + 1));
		break;
	default:
		break;
	}
	CHECK(bfr_cp_request_encode(&req, out, sizeof(out), &len) == 0 && len == size);
	CHECK(bfr_cp_request_decode(out, len, &again) == 0 && again.opcode == req.opcode);
	CHECK(ref_cp_request(out, len) == 0);
}

static void check_cp_response(const uint8_t *data, size_t size)
{
	struct bfr_cp_response rsp, again;
	uint8_t out[16];
	size_t len = 0;
	bool ref_ok, lop;
	int rc;

	lop = size >= 3 && data[1] == 3 && data[2] == 0;
	ref_ok = size >= 3 && data[0] == 0x80 && data[2] <= 5 && size == (lop ? 5u : 3u);
	memset(&rsp, 0xA5, sizeof(rsp));
	rc = bfr_cp_response_decode(data, size, &rsp);
	if (!ref_ok) {
		CHECK(rc == -EBADMSG);
		check_untouched(&rsp, sizeof(rsp));
		return;
	}
	CHECK(rc == 0 && rsp.req_opcode == data[1] && rsp.result == data[2] && rsp.has_lop == lop);
	if (lop)
		CHECK(same(rsp.lop_mmhg, ref_pressure(data + 3)));
	CHECK(bfr_cp_response_encode(&rsp, out, sizeof(out), &len) == 0 && len == size);
	CHECK(bfr_cp_response_decode(out, len, &again) == 0);
	CHECK(again.req_opcode == rsp.req_opcode && again.result == rsp.result &&
	      again.has_lop == rsp.has_lop);
	if (lop)
		CHECK(same(again.lop_mmhg, rsp.lop_mmhg));
}

/* --- section 4: Cuff Status and Cuff Features ------------------------------------------------ */

static void check_status(const uint8_t *data, size_t size)
{
	struct bfr_status st, again;
	uint8_t out[16];
	size_t len = 0;
	bool ref_ok = size == 8 && data[0] <= 5 && data[1] <= 100;
	int rc;

	memset(&st, 0xA5, sizeof(st));
	rc = bfr_status_decode(data, size, &st);
	if (!ref_ok) {
		CHECK(rc == -EBADMSG);
		check_untouched(&st, sizeof(st));
		return;
	}
	CHECK(rc == 0 && st.state == data[0] && st.battery_pct == data[1]);
	CHECK(st.faults == ref_u16(data + 2) && st.cuff_width_mm == ref_u16(data + 6));
	CHECK(same(st.last_lop_mmhg, ref_pressure(data + 4)));
	CHECK(bfr_status_encode(&st, out, sizeof(out), &len) == 0 && len == size);
	CHECK(bfr_status_decode(out, len, &again) == 0);
	CHECK(again.state == st.state && again.battery_pct == st.battery_pct &&
	      again.faults == st.faults && again.cuff_width_mm == st.cuff_width_mm &&
	      same(again.last_lop_mmhg, st.last_lop_mmhg));
}

static void check_features(const uint8_t *data, size_t size)
{
	struct bfr_features f, again;
	uint8_t out[16];
	size_t len = 0;
	bool ref_ok = size == 9 && data[2] <= 1 && ref_u16(data + 5) != 0;
	double maxp;
	int rc;

	memset(&f, 0xA5, sizeof(f));
	rc = bfr_features_decode(data, size, &f);
	if (!ref_ok) {
		CHECK(rc == -EBADMSG);
		check_untouched(&f, sizeof(f));
		return;
	}
	maxp = ref_pressure(data + 3);
	CHECK(rc == 0 && f.cuff_width_mm == ref_u16(data) && f.limb == data[2]);
	CHECK(same(f.max_pressure_mmhg, maxp));
	CHECK(f.sample_rate_hz == ref_u16(data + 5) && f.feature_bits == ref_u16(data + 7));
	/* Encoding wants a real, non-negative max_pressure (a cuff may not send less). */
	if (isnan(maxp) || maxp < 0) {
		CHECK(bfr_features_encode(&f, out, sizeof(out), &len) == -EINVAL);
		return;
	}
	CHECK(bfr_features_encode(&f, out, sizeof(out), &len) == 0 && len == size);
	CHECK(bfr_features_decode(out, len, &again) == 0);
	CHECK(again.cuff_width_mm == f.cuff_width_mm && again.limb == f.limb &&
	      again.sample_rate_hz == f.sample_rate_hz && again.feature_bits == f.feature_bits &&
	      same(again.max_pressure_mmhg, f.max_pressure_mmhg));
}

/* --- section 5: Cuff Supervision --------------------------------------------------------------- */

static void check_supervision(const uint8_t *data, size_t size)
{
	uint16_t token = 0xA5A5;
	uint8_t out[4];
	size_t len = 0;
	int rc = bfr_supervision_decode(data, size, &token);

	if (size != 2) {
		CHECK(rc == -EBADMSG && token == 0xA5A5);
		return;
	}
	CHECK(rc == 0 && token == ref_u16(data));
	CHECK(bfr_supervision_encode(token, out, sizeof(out), &len) == 0 && len == 2 &&
	      memcmp(out, data, 2) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_sfloat(data, size);
	check_pressure(data, size);
	check_cp_request(data, size);
	check_cp_response(data, size);
	check_status(data, size);
	check_features(data, size);
	check_supervision(data, size);
	return 0;
}
