/*
 * test_cuff_profile.c - BFR Cuff profile values (docs/gatt-profile.md).
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cuff_profile.h"
#include "sfloat.h"

static void test_uuids(void **state)
{
	static const struct {
		enum bfr_uuid_id id;
		const char *text;
	} cases[] = {
		{ BFR_UUID_SERVICE, "7b1e0001-5c2a-4d3b-9f8e-0a1b2c3d4e5f" },
		{ BFR_UUID_PRESSURE, "7b1e0002-5c2a-4d3b-9f8e-0a1b2c3d4e5f" },
		{ BFR_UUID_CONTROL_POINT, "7b1e0003-5c2a-4d3b-9f8e-0a1b2c3d4e5f" },
		{ BFR_UUID_STATUS, "7b1e0004-5c2a-4d3b-9f8e-0a1b2c3d4e5f" },
		{ BFR_UUID_SUPERVISION, "7b1e0005-5c2a-4d3b-9f8e-0a1b2c3d4e5f" },
		{ BFR_UUID_FEATURES, "7b1e0006-5c2a-4d3b-9f8e-0a1b2c3d4e5f" },
	};
	static const char *not_ours[] = {
		"7b1e0000-5c2a-4d3b-9f8e-0a1b2c3d4e5f", /* the base itself */
		"7b1e0007-5c2a-4d3b-9f8e-0a1b2c3d4e5f",
		"7b1f0001-5c2a-4d3b-9f8e-0a1b2c3d4e5f",
		"7b1e0001-5c2a-4d3b-9f8e-0a1b2c3d4e5e",
		"00000001-0000-1000-8000-00805f9b34fb",
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct att_uuid u, parsed;
		enum bfr_uuid_id id = 0;
		char text[37];

		bfr_uuid(cases[i].id, &u);
		att_uuid_format(&u, text);
		assert_string_equal(text, cases[i].text);
		assert_int_equal(att_uuid_parse(cases[i].text, &parsed), 0);
		assert_true(att_uuid_equal(&u, &parsed));
		assert_int_equal(att_uuid_wire_len(&u), 16);
		assert_true(bfr_uuid_id_of(&u, &id));
		assert_int_equal(id, cases[i].id);
	}
	for (size_t i = 0; i < sizeof(not_ours) / sizeof(not_ours[0]); i++) {
		struct att_uuid u;
		enum bfr_uuid_id id = 0x77;

		assert_int_equal(att_uuid_parse(not_ours[i], &u), 0);
		assert_false(bfr_uuid_id_of(&u, &id));
		assert_int_equal(id, 0x77);
	}
}

/* --- Cuff Pressure ---------------------------------------------------------- */

static void test_pressure_wire(void **state)
{
	/*
	 * seq 0x0102, t 0x0A0B0C0D, 200 mmHg (0xF7D0 = 2000e-1), target 180 (0xF708),
	 * pulse 2.5 (0xE0FA = 250e-2), status 0x0105.
	 */
	static const uint8_t wire[] = { 0x01, 0x02, 0x01, 0x0D, 0x0C, 0x0B, 0x0A, 0xD0, 0xF7,
					0x08, 0xF7, 0xFA, 0xE0, 0x05, 0x01 };
	struct bfr_sample s = {
		.seq = 0x0102,
		.t_ms = 0x0A0B0C0D,
		.pressure_mmhg = 200.0,
		.target_mmhg = 180.0,
		.pulse_amplitude = 2.5,
		.status = BFR_ST_PUMP_ON | BFR_ST_REGULATING | BFR_ST_SUPERVISION_DEFLATED,
	};
	struct bfr_sample out[2];
	uint8_t buf[64];
	size_t len = 0, n = 0;

	assert_int_equal(BFR_MAX_SAMPLES_PER_NTF, 36);
	assert_int_equal(bfr_pressure_encode(&s, 1, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, sizeof(wire));
	assert_memory_equal(buf, wire, len);
	/* n = 1 fits the default MTU's notification value (20 bytes). */
	assert_true(len <= ATT_DEFAULT_MTU - 3);

	assert_int_equal(bfr_pressure_decode(wire, sizeof(wire), out, 2, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(out[0].seq, s.seq);
	assert_int_equal(out[0].t_ms, s.t_ms);
	assert_true(out[0].pressure_mmhg == 200.0);
	assert_true(out[0].target_mmhg == 180.0);
	assert_true(out[0].pulse_amplitude == 2.5);
	assert_int_equal(out[0].status, s.status);
}

static void test_pressure_batch_roundtrip(void **state)
{
	struct bfr_sample in[BFR_MAX_SAMPLES_PER_NTF], out[BFR_MAX_SAMPLES_PER_NTF];
	uint8_t buf[ATT_MAX_MTU];
	size_t len = 0, n = 0;

	for (size_t i = 0; i < BFR_MAX_SAMPLES_PER_NTF; i++) {
		in[i] = (struct bfr_sample){
			.seq = (uint16_t)(65530 + i), /* wraps */
			.t_ms = 4294967000u + (uint32_t)i,
			.pressure_mmhg = (double)i * 5.5,
			.target_mmhg = 150.0,
			.pulse_amplitude = 0.1 * (double)i,
			.status = (uint16_t)i,
		};
	}
	assert_int_equal(bfr_pressure_encode(in, BFR_MAX_SAMPLES_PER_NTF, buf, sizeof(buf), &len),
			 0);
	assert_int_equal(len, 1 + 14 * BFR_MAX_SAMPLES_PER_NTF);
	assert_true(len <= ATT_MAX_MTU - 3);
	assert_int_equal(bfr_pressure_decode(buf, len, out, BFR_MAX_SAMPLES_PER_NTF, &n), 0);
	assert_int_equal(n, BFR_MAX_SAMPLES_PER_NTF);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(out[i].seq, in[i].seq);
		assert_int_equal(out[i].t_ms, in[i].t_ms);
		assert_true(fabs(out[i].pressure_mmhg - in[i].pressure_mmhg) < 1e-9);
		assert_true(fabs(out[i].pulse_amplitude - in[i].pulse_amplitude) < 1e-9);
		assert_int_equal(out[i].status, in[i].status);
	}
}

static void test_pressure_specials(void **state)
{
	static const uint16_t specials[] = { SFLOAT_NAN, SFLOAT_NRES, SFLOAT_POS_INF,
					     SFLOAT_NEG_INF, SFLOAT_RESERVED, 0x17FF };
	uint8_t wire[15] = { 1 };
	struct bfr_sample out;
	size_t n;

	for (size_t i = 0; i < sizeof(specials) / sizeof(specials[0]); i++) {
		wire[7] = (uint8_t)specials[i];
		wire[8] = (uint8_t)(specials[i] >> 8);
		wire[9] = (uint8_t)specials[i];
		wire[10] = (uint8_t)(specials[i] >> 8);
		wire[11] = (uint8_t)specials[i];
		wire[12] = (uint8_t)(specials[i] >> 8);
		assert_int_equal(bfr_pressure_decode(wire, sizeof(wire), &out, 1, &n), 0);
		assert_true(isnan(out.pressure_mmhg));
		assert_true(isnan(out.target_mmhg));
		assert_true(isnan(out.pulse_amplitude));
	}

	/* Encoding a missing reading sends the SFLOAT NaN; infinities their specials. */
	struct bfr_sample s = { .pressure_mmhg = NAN, .target_mmhg = INFINITY,
				.pulse_amplitude = -INFINITY };
	uint8_t buf[15];
	size_t len;

	assert_int_equal(bfr_pressure_encode(&s, 1, buf, sizeof(buf), &len), 0);
	assert_int_equal(buf[7] | buf[8] << 8, SFLOAT_NAN);
	assert_int_equal(buf[9] | buf[10] << 8, SFLOAT_POS_INF);
	assert_int_equal(buf[11] | buf[12] << 8, SFLOAT_NEG_INF);
}

static void test_pressure_bad(void **state)
{
	uint8_t wire[1 + 14 * 3] = { 0 };
	struct bfr_sample out[3], sentinel[3];
	size_t n = 777;

	memset(sentinel, 0xA5, sizeof(sentinel));
	memcpy(out, sentinel, sizeof(out));

	/* n = 0 */
	wire[0] = 0;
	assert_int_equal(bfr_pressure_decode(wire, 1, out, 3, &n), -EBADMSG);
	assert_int_equal(bfr_pressure_decode(wire, 15, out, 3, &n), -EBADMSG);
	/* empty */
	assert_int_equal(bfr_pressure_decode(wire, 0, out, 3, &n), -EBADMSG);
	assert_int_equal(bfr_pressure_decode(NULL, 15, out, 3, &n), -EBADMSG);
	/* length not 1 + 14n, both ways */
	wire[0] = 2;
	for (size_t len = 1; len <= sizeof(wire); len++) {
		if (len == 29)
			continue;
		assert_int_equal(bfr_pressure_decode(wire, len, out, 3, &n), -EBADMSG);
	}
	/* a count beyond what any MTU can carry */
	wire[0] = 37;
	assert_int_equal(bfr_pressure_decode(wire, sizeof(wire), out, 3, &n), -EBADMSG);
	/* more samples than the caller has room for */
	wire[0] = 3;
	assert_int_equal(bfr_pressure_decode(wire, sizeof(wire), out, 2, &n), -ENOSPC);
	assert_memory_equal(out, sentinel, sizeof(out));
	assert_int_equal(n, 777);

	/* encode: n out of range, unrepresentable value, too small a buffer */
	struct bfr_sample s[BFR_MAX_SAMPLES_PER_NTF + 1];
	uint8_t buf[ATT_MAX_MTU];
	size_t len = 555;

	memset(s, 0, sizeof(s));
	memset(buf, 0x5A, sizeof(buf));
	assert_int_equal(bfr_pressure_encode(s, 0, buf, sizeof(buf), &len), -EINVAL);
	assert_int_equal(bfr_pressure_encode(s, BFR_MAX_SAMPLES_PER_NTF + 1, buf, sizeof(buf), &len),
			 -EINVAL);
	s[1].pressure_mmhg = 1e12;
	assert_int_equal(bfr_pressure_encode(s, 2, buf, sizeof(buf), &len), -EINVAL);
	s[1].pressure_mmhg = 0;
	assert_int_equal(bfr_pressure_encode(s, 2, buf, 28, &len), -ENOSPC);
	assert_int_equal(len, 555);
	for (size_t i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0x5A);
}

/* --- Control Point -------------------------------------------------------------- */

struct cp_case {
	uint8_t wire[8];
	size_t len;
	struct bfr_cp_request req;
};

static void assert_req_equal(const struct bfr_cp_request *a, const struct bfr_cp_request *b)
{
	assert_int_equal(a->opcode, b->opcode);
	switch (a->opcode) {
	case BFR_CP_SET_TARGET:
		assert_true(fabs(a->set_target.mmhg - b->set_target.mmhg) < 1e-9);
		assert_int_equal(a->set_target.ramp_ms, b->set_target.ramp_ms);
		break;
	case BFR_CP_DEFLATE:
		assert_int_equal(a->deflate_reason, b->deflate_reason);
		break;
	case BFR_CP_MEASURE_LOP:
		assert_true(fabs(a->max_search_mmhg - b->max_search_mmhg) < 1e-9);
		break;
	case BFR_CP_CUE:
		assert_int_equal(a->cue, b->cue);
		break;
	case BFR_CP_SET_SUPERVISION:
		assert_int_equal(a->supervision_timeout_ms, b->supervision_timeout_ms);
		break;
	}
}

static void test_cp_requests(void **state)
{
	static const struct cp_case cases[] = {
		{ { 0x01, 0xD0, 0xF7, 0xE8, 0x03 }, 5,
		  { .opcode = BFR_CP_SET_TARGET, .set_target = { 200.0, 1000 } } },
		{ { 0x01, 0x00, 0x00, 0x00, 0x00 }, 5,
		  { .opcode = BFR_CP_SET_TARGET, .set_target = { 0.0, 0 } } },
		{ { 0x02, 0x00 }, 2, { .opcode = BFR_CP_DEFLATE, .deflate_reason = 0 } },
		{ { 0x02, 0x02 }, 2,
		  { .opcode = BFR_CP_DEFLATE, .deflate_reason = BFR_DEFLATE_ESTOP } },
		{ { 0x03, 0x5E, 0x01 }, 3, { .opcode = BFR_CP_MEASURE_LOP, .max_search_mmhg = 350 } },
		{ { 0x04, 0x04 }, 2, { .opcode = BFR_CP_CUE, .cue = BFR_CUE_DONE } },
		{ { 0x04, 0x00 }, 2, { .opcode = BFR_CP_CUE, .cue = BFR_CUE_REP_UP } },
		{ { 0x05 }, 1, { .opcode = BFR_CP_IDENTIFY } },
		{ { 0x06, 0xB8, 0x0B }, 3,
		  { .opcode = BFR_CP_SET_SUPERVISION, .supervision_timeout_ms = 3000 } },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct bfr_cp_request got;
		uint8_t buf[8];
		size_t len = 0;

		assert_int_equal(bfr_cp_request_encode(&cases[i].req, buf, sizeof(buf), &len), 0);
		assert_int_equal(len, cases[i].len);
		assert_memory_equal(buf, cases[i].wire, len);
		assert_int_equal(bfr_cp_request_decode(cases[i].wire, cases[i].len, &got), 0);
		assert_req_equal(&got, &cases[i].req);

		/* Every other length of the same opcode is rejected. */
		for (size_t n = 1; n <= sizeof(buf); n++) {
			uint8_t wire[8] = { 0 };

			if (n == cases[i].len)
				continue;
			memcpy(wire, cases[i].wire, cases[i].len);
			memset(&got, 0xA5, sizeof(got));
			assert_int_equal(bfr_cp_request_decode(wire, n, &got), -EBADMSG);
			assert_int_equal(got.opcode, 0xA5);
		}
		/* Too small a buffer. */
		len = 99;
		assert_int_equal(bfr_cp_request_encode(&cases[i].req, buf, cases[i].len - 1, &len),
				 -ENOSPC);
		assert_int_equal(len, 99);
	}
}

static void test_cp_request_bad_values(void **state)
{
	static const struct {
		uint8_t wire[8];
		size_t len;
		int err;
		const char *why;
	} cases[] = {
		{ { 0x01, 0xFF, 0x07, 0x00, 0x00 }, 5, -ERANGE, "target NaN" },
		{ { 0x01, 0x00, 0x08, 0x00, 0x00 }, 5, -ERANGE, "target NRes" },
		{ { 0x01, 0xFE, 0x07, 0x00, 0x00 }, 5, -ERANGE, "target +INF" },
		{ { 0x01, 0x01, 0x08, 0x00, 0x00 }, 5, -ERANGE, "target reserved" },
		{ { 0x01, 0xFF, 0x17, 0x00, 0x00 }, 5, -ERANGE, "target reserved exponent" },
		{ { 0x01, 0xFF, 0x0F, 0x00, 0x00 }, 5, -ERANGE, "target -1" },
		{ { 0x03, 0xFF, 0x07 }, 3, -ERANGE, "LOP search NaN" },
		{ { 0x03, 0x9C, 0xFF }, 3, -ERANGE, "LOP search -100" },
		{ { 0x02, 0x03 }, 2, -ERANGE, "deflate reason 3" },
		{ { 0x02, 0xFF }, 2, -ERANGE, "deflate reason 255" },
		{ { 0x04, 0x05 }, 2, -ERANGE, "cue 5" },
		{ { 0x06, 0x00, 0x00 }, 3, -ERANGE, "supervision timeout 0" },
		{ { 0x00 }, 1, -ENOTSUP, "opcode 0" },
		{ { 0x07, 0x00 }, 2, -ENOTSUP, "opcode 7" },
		{ { 0x80, 0x01, 0x00 }, 3, -ENOTSUP, "a response as a request" },
		{ { 0xFF }, 1, -ENOTSUP, "opcode 0xFF" },
		{ { 0 }, 0, -EBADMSG, "empty" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct bfr_cp_request got;
		int rc;

		memset(&got, 0xA5, sizeof(got));
		rc = bfr_cp_request_decode(cases[i].wire, cases[i].len, &got);
		if (rc != cases[i].err) {
			print_error("case \"%s\": got %d want %d\n", cases[i].why, rc, cases[i].err);
			fail();
		}
		assert_int_equal(got.opcode, 0xA5);
	}

	/* Encode refuses what decode would refuse. */
	static const struct bfr_cp_request bad[] = {
		{ .opcode = BFR_CP_SET_TARGET, .set_target = { NAN, 0 } },
		{ .opcode = BFR_CP_SET_TARGET, .set_target = { -1.0, 0 } },
		{ .opcode = BFR_CP_SET_TARGET, .set_target = { INFINITY, 0 } },
		{ .opcode = BFR_CP_SET_TARGET, .set_target = { 1e12, 0 } },
		{ .opcode = BFR_CP_MEASURE_LOP, .max_search_mmhg = NAN },
		{ .opcode = BFR_CP_DEFLATE, .deflate_reason = 3 },
		{ .opcode = BFR_CP_CUE, .cue = 5 },
		{ .opcode = BFR_CP_SET_SUPERVISION, .supervision_timeout_ms = 0 },
		{ .opcode = 0x07 },
		{ .opcode = BFR_CP_RESPONSE },
	};
	uint8_t buf[8];
	size_t len = 42;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(bfr_cp_request_encode(&bad[i], buf, sizeof(buf), &len), -EINVAL);
	assert_int_equal(len, 42);
}

static void test_cp_responses(void **state)
{
	static const uint8_t lop_ok[] = { 0x80, 0x03, 0x00, 0x7A, 0xF6 }; /* LOP 165.8 */
	static const uint8_t busy[] = { 0x80, 0x01, 0x03 };
	static const uint8_t lop_failed[] = { 0x80, 0x03, 0x04 };
	static const uint8_t unknown_op[] = { 0x80, 0x42, 0x01 };
	static const uint8_t lop_nan[] = { 0x80, 0x03, 0x00, 0xFF, 0x07 };
	struct bfr_cp_response r;
	uint8_t buf[8];
	size_t len;

	assert_int_equal(bfr_cp_response_decode(lop_ok, sizeof(lop_ok), &r), 0);
	assert_int_equal(r.req_opcode, BFR_CP_MEASURE_LOP);
	assert_int_equal(r.result, BFR_RESULT_SUCCESS);
	assert_true(r.has_lop);
	assert_true(fabs(r.lop_mmhg - 165.8) < 1e-9);
	assert_int_equal(bfr_cp_response_encode(&r, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, sizeof(lop_ok));
	assert_memory_equal(buf, lop_ok, len);

	assert_int_equal(bfr_cp_response_decode(busy, sizeof(busy), &r), 0);
	assert_int_equal(r.req_opcode, BFR_CP_SET_TARGET);
	assert_int_equal(r.result, BFR_RESULT_BUSY);
	assert_false(r.has_lop);
	assert_int_equal(bfr_cp_response_encode(&r, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(buf, busy, 3);

	assert_int_equal(bfr_cp_response_decode(lop_failed, sizeof(lop_failed), &r), 0);
	assert_false(r.has_lop);
	assert_int_equal(bfr_cp_response_decode(unknown_op, sizeof(unknown_op), &r), 0);
	assert_int_equal(r.result, BFR_RESULT_NOT_SUPPORTED);
	/* Answers to garbage: an empty write (req_opcode 0) and a written 0x80. */
	static const uint8_t to_empty[] = { 0x80, 0x00, 0x02 };
	static const uint8_t to_0x80[] = { 0x80, 0x80, 0x01 };
	assert_int_equal(bfr_cp_response_decode(to_empty, sizeof(to_empty), &r), 0);
	assert_int_equal(r.req_opcode, 0);
	assert_int_equal(bfr_cp_response_encode(&r, buf, sizeof(buf), &len), 0);
	assert_memory_equal(buf, to_empty, 3);
	assert_int_equal(bfr_cp_response_decode(to_0x80, sizeof(to_0x80), &r), 0);
	assert_int_equal(bfr_cp_response_encode(&r, buf, sizeof(buf), &len), 0);
	assert_memory_equal(buf, to_0x80, 3);
	assert_int_equal(bfr_cp_response_decode(lop_nan, sizeof(lop_nan), &r), 0);
	assert_true(r.has_lop);
	assert_true(isnan(r.lop_mmhg));

	static const struct {
		uint8_t wire[8];
		size_t len;
	} bad[] = {
		{ { 0x80, 0x03, 0x00 }, 3 },             /* LOP success without the LOP */
		{ { 0x80, 0x03, 0x04, 0x00, 0x00 }, 5 }, /* LOP failure with one */
		{ { 0x80, 0x01, 0x00, 0x00, 0x00 }, 5 }, /* SET_TARGET success with params */
		{ { 0x80, 0x01, 0x06 }, 3 },             /* result 6 */
		{ { 0x80, 0x01 }, 2 },
		{ { 0x80 }, 1 },
		{ { 0 }, 0 },
		{ { 0x81, 0x01, 0x00 }, 3 },             /* not a response */
		{ { 0x01, 0x01, 0x00 }, 3 },
		{ { 0x80, 0x01, 0x00, 0x00 }, 4 },
		{ { 0x80, 0x03, 0x00, 0x7A, 0xF6, 0x00 }, 6 },
	};
	struct bfr_cp_response s;

	memset(&s, 0xA5, sizeof(s));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = s;
		if (bfr_cp_response_decode(bad[i].wire, bad[i].len, &r) != -EBADMSG) {
			print_error("bad response case %zu accepted\n", i);
			fail();
		}
		assert_memory_equal(&r, &s, sizeof(r));
	}

	static const struct bfr_cp_response bad_enc[] = {
		{ BFR_CP_MEASURE_LOP, BFR_RESULT_SUCCESS, false, 0 },
		{ BFR_CP_MEASURE_LOP, BFR_RESULT_FAILED, true, 100 },
		{ BFR_CP_SET_TARGET, BFR_RESULT_SUCCESS, true, 100 },
		{ BFR_CP_SET_TARGET, 6, false, 0 },
		{ BFR_CP_SET_TARGET, 0xFF, false, 0 },
		{ BFR_CP_MEASURE_LOP, BFR_RESULT_SUCCESS, true, 1e12 },
	};
	len = 31;
	for (size_t i = 0; i < sizeof(bad_enc) / sizeof(bad_enc[0]); i++)
		assert_int_equal(bfr_cp_response_encode(&bad_enc[i], buf, sizeof(buf), &len),
				 -EINVAL);
	assert_int_equal(bfr_cp_response_encode(&(struct bfr_cp_response){ 3, 0, true, 165.8 },
						buf, 4, &len),
			 -ENOSPC);
	assert_int_equal(len, 31);
}

/* --- Status, Supervision, Features ---------------------------------------------- */

static void test_status(void **state)
{
	static const uint8_t wire[] = { 0x02, 0x55, 0x09, 0x00, 0x7A, 0xF6, 0x64, 0x00 };
	static const uint8_t never_measured[] = { 0x00, 0x64, 0x00, 0x00, 0xFF, 0x07, 0x64, 0x00 };
	struct bfr_status st, s;
	uint8_t buf[8];
	size_t len;

	assert_int_equal(bfr_status_decode(wire, sizeof(wire), &st), 0);
	assert_int_equal(st.state, BFR_STATE_HOLDING);
	assert_int_equal(st.battery_pct, 85);
	assert_int_equal(st.faults, BFR_FAULT_LEAK | BFR_FAULT_OVER_PRESSURE);
	assert_true(fabs(st.last_lop_mmhg - 165.8) < 1e-9);
	assert_int_equal(st.cuff_width_mm, 100);
	assert_int_equal(bfr_status_encode(&st, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, BFR_STATUS_WIRE_SIZE);
	assert_memory_equal(buf, wire, len);

	assert_int_equal(bfr_status_decode(never_measured, sizeof(never_measured), &st), 0);
	assert_true(isnan(st.last_lop_mmhg));
	assert_int_equal(bfr_status_encode(&st, buf, sizeof(buf), &len), 0);
	assert_memory_equal(buf, never_measured, len);

	/* Unknown fault bits survive: the gateway must not lose them. */
	uint8_t future[8];
	memcpy(future, wire, 8);
	future[3] = 0x80;
	assert_int_equal(bfr_status_decode(future, sizeof(future), &st), 0);
	assert_int_equal(st.faults, 0x8009);

	memset(&s, 0xA5, sizeof(s));
	st = s;
	for (size_t n = 0; n <= 9; n++) {
		uint8_t w[9] = { 0 };

		if (n == 8)
			continue;
		assert_int_equal(bfr_status_decode(w, n, &st), -EBADMSG);
	}
	memcpy(future, wire, 8);
	future[0] = 6; /* state */
	assert_int_equal(bfr_status_decode(future, 8, &st), -EBADMSG);
	memcpy(future, wire, 8);
	future[1] = 101; /* battery */
	assert_int_equal(bfr_status_decode(future, 8, &st), -EBADMSG);
	assert_memory_equal(&st, &s, sizeof(st));

	struct bfr_status bad = { .state = 6, .battery_pct = 50 };
	len = 3;
	assert_int_equal(bfr_status_encode(&bad, buf, sizeof(buf), &len), -EINVAL);
	bad.state = 0;
	bad.battery_pct = 101;
	assert_int_equal(bfr_status_encode(&bad, buf, sizeof(buf), &len), -EINVAL);
	bad.battery_pct = 100;
	bad.last_lop_mmhg = 1e12;
	assert_int_equal(bfr_status_encode(&bad, buf, sizeof(buf), &len), -EINVAL);
	bad.last_lop_mmhg = 0;
	assert_int_equal(bfr_status_encode(&bad, buf, 7, &len), -ENOSPC);
	assert_int_equal(len, 3);
}

static void test_supervision(void **state)
{
	uint8_t buf[2], wire[3] = { 0x34, 0x12, 0x00 };
	uint16_t token = 0;
	size_t len = 0;

	assert_int_equal(bfr_supervision_encode(0x1234, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, BFR_SUPERVISION_WIRE_SIZE);
	assert_memory_equal(buf, wire, 2);
	assert_int_equal(bfr_supervision_decode(wire, 2, &token), 0);
	assert_int_equal(token, 0x1234);
	token = 7;
	assert_int_equal(bfr_supervision_decode(wire, 1, &token), -EBADMSG);
	assert_int_equal(bfr_supervision_decode(wire, 3, &token), -EBADMSG);
	assert_int_equal(bfr_supervision_decode(wire, 0, &token), -EBADMSG);
	assert_int_equal(token, 7);
	len = 9;
	assert_int_equal(bfr_supervision_encode(1, buf, 1, &len), -ENOSPC);
	assert_int_equal(len, 9);
	assert_int_equal(BFR_SUPERVISION_DEFAULT_TIMEOUT_MS, 3000);
}

static void test_features(void **state)
{
	/* 110 mm, leg, max 300 mmHg (0x012C: 3000e-1 would not fit), 50 Hz, LOP|CUE|IDENTIFY. */
	static const uint8_t wire[] = { 0x6E, 0x00, 0x01, 0x2C, 0x01, 0x32, 0x00, 0x07, 0x00 };
	struct bfr_features f, s;
	uint8_t buf[9], w[10];
	size_t len;

	assert_int_equal(bfr_features_decode(wire, sizeof(wire), &f), 0);
	assert_int_equal(f.cuff_width_mm, 110);
	assert_int_equal(f.limb, BFR_LIMB_LEG);
	assert_true(f.max_pressure_mmhg == 300.0);
	assert_int_equal(f.sample_rate_hz, 50);
	assert_int_equal(f.feature_bits,
			 BFR_FEATURE_MEASURE_LOP | BFR_FEATURE_CUE | BFR_FEATURE_IDENTIFY);
	assert_int_equal(bfr_features_encode(&f, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, BFR_FEATURES_WIRE_SIZE);
	assert_memory_equal(buf, wire, len);

	memset(&s, 0xA5, sizeof(s));
	f = s;
	for (size_t n = 0; n <= sizeof(w); n++) {
		memset(w, 0, sizeof(w));
		memcpy(w, wire, sizeof(wire));
		if (n == 9)
			continue;
		assert_int_equal(bfr_features_decode(w, n, &f), -EBADMSG);
	}
	memcpy(w, wire, sizeof(wire));
	w[2] = 2; /* limb */
	assert_int_equal(bfr_features_decode(w, 9, &f), -EBADMSG);
	memcpy(w, wire, sizeof(wire));
	w[5] = 0; /* 0 Hz */
	assert_int_equal(bfr_features_decode(w, 9, &f), -EBADMSG);
	assert_memory_equal(&f, &s, sizeof(f));

	/* A special max pressure decodes as NAN, never as a number. */
	memcpy(w, wire, sizeof(wire));
	w[3] = 0xFE;
	w[4] = 0x07;
	assert_int_equal(bfr_features_decode(w, 9, &f), 0);
	assert_true(isnan(f.max_pressure_mmhg));

	struct bfr_features bad = { 100, 2, 300, 50, 0 };
	len = 5;
	assert_int_equal(bfr_features_encode(&bad, buf, sizeof(buf), &len), -EINVAL);
	bad.limb = BFR_LIMB_ARM;
	bad.sample_rate_hz = 0;
	assert_int_equal(bfr_features_encode(&bad, buf, sizeof(buf), &len), -EINVAL);
	bad.sample_rate_hz = 50;
	bad.max_pressure_mmhg = NAN;
	assert_int_equal(bfr_features_encode(&bad, buf, sizeof(buf), &len), -EINVAL);
	bad.max_pressure_mmhg = 300;
	assert_int_equal(bfr_features_encode(&bad, buf, 8, &len), -ENOSPC);
	assert_int_equal(len, 5);
}

/* Deterministic garbage through every profile decoder: documented errors only, outputs untouched. */
static uint32_t rng_state = 0x9E3779B9;

static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

static void test_garbage(void **state)
{
	uint8_t buf[1 + 14 * 4];
	long ok[5] = { 0 };

	for (int iter = 0; iter < 100000; iter++) {
		size_t len = rng() % (sizeof(buf) + 1);
		struct bfr_sample samples[4], ssent[4];
		struct bfr_cp_request req, rsent;
		struct bfr_cp_response rsp, psent;
		struct bfr_status st, stsent;
		struct bfr_features f, fsent;
		size_t n = 99;
		int rc;

		for (size_t i = 0; i < len; i++)
			buf[i] = (uint8_t)rng();
		if (len && rng() % 2)
			buf[0] = (uint8_t)(rng() % 8); /* plausible counts and opcodes */

		memset(ssent, 0xA5, sizeof(ssent));
		memcpy(samples, ssent, sizeof(samples));
		rc = bfr_pressure_decode(buf, len, samples, 4, &n);
		if (rc == 0) {
			assert_int_equal(len, 1 + 14 * n);
			ok[0]++;
		} else {
			assert_true(rc == -EBADMSG || rc == -ENOSPC);
			assert_memory_equal(samples, ssent, sizeof(samples));
			assert_int_equal(n, 99);
		}

		memset(&rsent, 0xA5, sizeof(rsent));
		req = rsent;
		rc = bfr_cp_request_decode(buf, len, &req);
		if (rc == 0)
			ok[1]++;
		else {
			assert_true(rc == -EBADMSG || rc == -ENOTSUP || rc == -ERANGE);
			assert_memory_equal(&req, &rsent, sizeof(req));
		}

		memset(&psent, 0xA5, sizeof(psent));
		rsp = psent;
		if (len)
			buf[0] = (rng() % 2) ? BFR_CP_RESPONSE : buf[0];
		rc = bfr_cp_response_decode(buf, len, &rsp);
		if (rc == 0)
			ok[2]++;
		else {
			assert_int_equal(rc, -EBADMSG);
			assert_memory_equal(&rsp, &psent, sizeof(rsp));
		}

		memset(&stsent, 0xA5, sizeof(stsent));
		st = stsent;
		rc = bfr_status_decode(buf, len, &st);
		if (rc == 0)
			ok[3]++;
		else {
			assert_int_equal(rc, -EBADMSG);
			assert_memory_equal(&st, &stsent, sizeof(st));
		}

		memset(&fsent, 0xA5, sizeof(fsent));
		f = fsent;
		rc = bfr_features_decode(buf, len, &f);
		if (rc == 0)
			ok[4]++;
		else {
			assert_int_equal(rc, -EBADMSG);
			assert_memory_equal(&f, &fsent, sizeof(f));
		}
	}
	/* Every decoder's success path was reached too. */
	for (int i = 0; i < 5; i++)
		assert_true(ok[i] > 0);
}

static void test_names(void **state)
{
	assert_string_equal(bfr_cp_opcode_name(BFR_CP_SET_TARGET), "SET_TARGET");
	assert_string_equal(bfr_cp_opcode_name(BFR_CP_SET_SUPERVISION), "SET_SUPERVISION");
	assert_string_equal(bfr_cp_opcode_name(0x42), "unknown");
	assert_string_equal(bfr_cp_result_name(BFR_RESULT_LIMIT_EXCEEDED), "cuff limit exceeded");
	assert_string_equal(bfr_cp_result_name(6), "unknown");
	assert_string_equal(bfr_cuff_state_name(BFR_STATE_MEASURING_LOP), "measuring_lop");
	assert_string_equal(bfr_cuff_state_name(BFR_STATE_FAULT), "fault");
	assert_string_equal(bfr_cuff_state_name(6), "unknown");
	for (uint8_t op = BFR_CP_SET_TARGET; op <= BFR_CP_SET_SUPERVISION; op++)
		assert_string_not_equal(bfr_cp_opcode_name(op), "unknown");
	for (uint8_t r = 0; r <= BFR_RESULT_LIMIT_EXCEEDED; r++)
		assert_string_not_equal(bfr_cp_result_name(r), "unknown");
	for (uint8_t s = 0; s <= BFR_STATE_FAULT; s++)
		assert_string_not_equal(bfr_cuff_state_name(s), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uuids),
		cmocka_unit_test(test_pressure_wire),
		cmocka_unit_test(test_pressure_batch_roundtrip),
		cmocka_unit_test(test_pressure_specials),
		cmocka_unit_test(test_pressure_bad),
		cmocka_unit_test(test_cp_requests),
		cmocka_unit_test(test_cp_request_bad_values),
		cmocka_unit_test(test_cp_responses),
		cmocka_unit_test(test_status),
		cmocka_unit_test(test_supervision),
		cmocka_unit_test(test_features),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
