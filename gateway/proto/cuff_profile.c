/*
 * cuff_profile.c - BFR Cuff profile values (docs/gatt-profile.md).
 *
 * Encoders build into a scratch buffer and copy only on success, so a
 * failure leaves the caller's buffer as it was. Decoders check the exact
 * length before writing anything.
 */
#include "cuff_profile.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "bytes.h"
#include "sfloat.h"

/* 7b1e0000-5c2a-4d3b-9f8e-0a1b2c3d4e5f, little-endian; bytes 12..13 carry the id. */
static const uint8_t bfr_base_le[16] = {
	0x5f, 0x4e, 0x3d, 0x2c, 0x1b, 0x0a, 0x8e, 0x9f,
	0x3b, 0x4d, 0x2a, 0x5c, 0x00, 0x00, 0x1e, 0x7b,
};

void bfr_uuid(enum bfr_uuid_id id, struct att_uuid *out)
{
	memcpy(out->le, bfr_base_le, sizeof(out->le));
	put_le16(out->le + 12, (uint16_t)id);
}

bool bfr_uuid_id_of(const struct att_uuid *uuid, enum bfr_uuid_id *id)
{
	uint16_t v;

	if (memcmp(uuid->le, bfr_base_le, 12) != 0 || memcmp(uuid->le + 14, bfr_base_le + 14, 2))
		return false;
	v = get_le16(uuid->le + 12);
	if (v < BFR_UUID_SERVICE || v > BFR_UUID_FEATURES)
		return false;
	if (id)
		*id = (enum bfr_uuid_id)v;
	return true;
}

/* --- SFLOAT fields ----------------------------------------------------------- */

/*
 * Pressure fields carry NaN as the SFLOAT NaN so a cuff (or cuffsim) can
 * report "no valid reading"; infinities map to their specials.
 */
static int pressure_to_sfloat(double mmhg, uint16_t *raw)
{
	if (isnan(mmhg)) {
		*raw = SFLOAT_NAN;
		return 0;
	}
	if (isinf(mmhg)) {
		*raw = mmhg > 0 ? SFLOAT_POS_INF : SFLOAT_NEG_INF;
		return 0;
	}
	return sfloat_encode(mmhg, raw) < 0 ? -EINVAL : 0;
}

/* A commanded pressure must be a real, non-negative number. */
static int command_pressure_to_sfloat(double mmhg, uint16_t *raw)
{
	if (!isfinite(mmhg) || mmhg < 0)
		return -EINVAL;
	return sfloat_encode(mmhg, raw) < 0 ? -EINVAL : 0;
}

static int command_pressure_from_sfloat(uint16_t raw, double *mmhg)
{
	double v;

	if (sfloat_decode(raw, &v) != SFLOAT_CLASS_NUMBER || v < 0)
		return -ERANGE;
	*mmhg = v;
	return 0;
}

static int finish(const uint8_t *scratch, size_t n, uint8_t *buf, size_t cap, size_t *len)
{
	if (!buf || !len)
		return -EINVAL;
	if (n > cap)
		return -ENOSPC;
	memcpy(buf, scratch, n);
	*len = n;
	return 0;
}

/* --- Cuff Pressure ------------------------------------------------------------ */

int bfr_pressure_decode(const uint8_t *buf, size_t len, struct bfr_sample *out, size_t cap,
			size_t *n_out)
{
	size_t n;

	if (!buf || len < 1)
		return -EBADMSG;
	n = buf[0];
	if (n == 0 || n > BFR_MAX_SAMPLES_PER_NTF || len != 1 + n * BFR_SAMPLE_WIRE_SIZE)
		return -EBADMSG;
	if (!out || !n_out || n > cap)
		return -ENOSPC;

	for (size_t i = 0; i < n; i++) {
		const uint8_t *p = buf + 1 + i * BFR_SAMPLE_WIRE_SIZE;

		out[i].seq = get_le16(p);
		out[i].t_ms = get_le32(p + 2);
		out[i].pressure_mmhg = sfloat_to_double(get_le16(p + 6));
		out[i].target_mmhg = sfloat_to_double(get_le16(p + 8));
		out[i].pulse_amplitude = sfloat_to_double(get_le16(p + 10));
		out[i].status = get_le16(p + 12);
	}
	*n_out = n;
	return 0;
}

int bfr_pressure_encode(const struct bfr_sample *samples, size_t n, uint8_t *buf, size_t cap,
			size_t *len)
{
	uint8_t scratch[1 + BFR_MAX_SAMPLES_PER_NTF * BFR_SAMPLE_WIRE_SIZE];
	struct byte_writer w;

	if (!samples || n == 0 || n > BFR_MAX_SAMPLES_PER_NTF)
		return -EINVAL;
	writer_init(&w, scratch, sizeof(scratch));
	writer_u8(&w, (uint8_t)n);
	for (size_t i = 0; i < n; i++) {
		uint16_t p, t, a;

		if (pressure_to_sfloat(samples[i].pressure_mmhg, &p) < 0 ||
		    pressure_to_sfloat(samples[i].target_mmhg, &t) < 0 ||
		    pressure_to_sfloat(samples[i].pulse_amplitude, &a) < 0)
			return -EINVAL;
		writer_le16(&w, samples[i].seq);
		writer_le32(&w, samples[i].t_ms);
		writer_le16(&w, p);
		writer_le16(&w, t);
		writer_le16(&w, a);
		writer_le16(&w, samples[i].status);
	}
	return finish(scratch, w.pos, buf, cap, len);
}

/* --- Cuff Control Point -------------------------------------------------------- */

int bfr_cp_request_encode(const struct bfr_cp_request *req, uint8_t *buf, size_t cap,
			  size_t *len)
{
	uint8_t scratch[8];
	struct byte_writer w;
	uint16_t raw;

	if (!req)
		return -EINVAL;
	writer_init(&w, scratch, sizeof(scratch));
	writer_u8(&w, req->opcode);
	switch (req->opcode) {
	case BFR_CP_SET_TARGET:
		if (command_pressure_to_sfloat(req->set_target.mmhg, &raw) < 0)
			return -EINVAL;
		writer_le16(&w, raw);
		writer_le16(&w, req->set_target.ramp_ms);
		break;
	case BFR_CP_DEFLATE:
		if (req->deflate_reason > BFR_DEFLATE_ESTOP)
			return -EINVAL;
		writer_u8(&w, req->deflate_reason);
		break;
	case BFR_CP_MEASURE_LOP:
		if (command_pressure_to_sfloat(req->max_search_mmhg, &raw) < 0)
			return -EINVAL;
		writer_le16(&w, raw);
		break;
	case BFR_CP_CUE:
		if (req->cue > BFR_CUE_DONE)
			return -EINVAL;
		writer_u8(&w, req->cue);
		break;
	case BFR_CP_IDENTIFY:
		break;
	case BFR_CP_SET_SUPERVISION:
		if (req->supervision_timeout_ms == 0)
			return -EINVAL;
		writer_le16(&w, req->supervision_timeout_ms);
		break;
	default:
		return -EINVAL;
	}
	return finish(scratch, w.pos, buf, cap, len);
}

static size_t cp_request_len(uint8_t opcode)
{
	switch (opcode) {
	case BFR_CP_SET_TARGET: return 5;
	case BFR_CP_DEFLATE: return 2;
	case BFR_CP_MEASURE_LOP: return 3;
	case BFR_CP_CUE: return 2;
	case BFR_CP_IDENTIFY: return 1;
	case BFR_CP_SET_SUPERVISION: return 3;
	default: return 0;
	}
}

int bfr_cp_request_decode(const uint8_t *buf, size_t len, struct bfr_cp_request *out)
{
	struct bfr_cp_request req;
	size_t want;

	if (!buf || len < 1)
		return -EBADMSG;
	memset(&req, 0, sizeof(req));
	req.opcode = buf[0];
	want = cp_request_len(req.opcode);
	if (!want)
		return -ENOTSUP;
	if (len != want)
		return -EBADMSG;

	switch (req.opcode) {
	case BFR_CP_SET_TARGET:
		if (command_pressure_from_sfloat(get_le16(buf + 1), &req.set_target.mmhg) < 0)
			return -ERANGE;
		req.set_target.ramp_ms = get_le16(buf + 3);
		break;
	case BFR_CP_DEFLATE:
		if (buf[1] > BFR_DEFLATE_ESTOP)
			return -ERANGE;
		req.deflate_reason = buf[1];
		break;
	case BFR_CP_MEASURE_LOP:
		if (command_pressure_from_sfloat(get_le16(buf + 1), &req.max_search_mmhg) < 0)
			return -ERANGE;
		break;
	case BFR_CP_CUE:
		if (buf[1] > BFR_CUE_DONE)
			return -ERANGE;
		req.cue = buf[1];
		break;
	case BFR_CP_IDENTIFY:
		break;
	case BFR_CP_SET_SUPERVISION:
		/* A zero timeout would disable the fail-safe; nobody may ask for that. */
		req.supervision_timeout_ms = get_le16(buf + 1);
		if (req.supervision_timeout_ms == 0)
			return -ERANGE;
		break;
	}
	*out = req;
	return 0;
}

static bool response_has_lop(uint8_t req_opcode, uint8_t result)
{
	return req_opcode == BFR_CP_MEASURE_LOP && result == BFR_RESULT_SUCCESS;
}


int bfr_cp_response_encode(const struct bfr_cp_response *rsp, uint8_t *buf, size_t cap,
			   size_t *len)
{
	uint8_t scratch[5];
	struct byte_writer w;

	/*
	 * Any req_opcode may be answered: a cuff must answer garbage too (0
	 * for an empty write), never stay silent; the client matches it
	 * against what it sent.
	 */
	if (!rsp || rsp->result > BFR_RESULT_LIMIT_EXCEEDED ||
	    rsp->has_lop != response_has_lop(rsp->req_opcode, rsp->result))
		return -EINVAL;
	writer_init(&w, scratch, sizeof(scratch));
	writer_u8(&w, BFR_CP_RESPONSE);
	writer_u8(&w, rsp->req_opcode);
	writer_u8(&w, rsp->result);
	if (rsp->has_lop) {
		uint16_t raw;

		if (pressure_to_sfloat(rsp->lop_mmhg, &raw) < 0)
			return -EINVAL;
		writer_le16(&w, raw);
	}
	return finish(scratch, w.pos, buf, cap, len);
}

int bfr_cp_response_decode(const uint8_t *buf, size_t len, struct bfr_cp_response *out)
{
	struct bfr_cp_response rsp;

	if (!buf || len < 3 || buf[0] != BFR_CP_RESPONSE)
		return -EBADMSG;
	memset(&rsp, 0, sizeof(rsp));
	rsp.req_opcode = buf[1];
	rsp.result = buf[2];
	if (rsp.result > BFR_RESULT_LIMIT_EXCEEDED)
		return -EBADMSG;
	rsp.has_lop = response_has_lop(rsp.req_opcode, rsp.result);
	if (len != (rsp.has_lop ? 5u : 3u))
		return -EBADMSG;
	rsp.lop_mmhg = rsp.has_lop ? sfloat_to_double(get_le16(buf + 3)) : NAN;
	*out = rsp;
	return 0;
}

/* --- Cuff Status ------------------------------------------------------------- */

int bfr_status_encode(const struct bfr_status *st, uint8_t *buf, size_t cap, size_t *len)
{
	uint8_t scratch[BFR_STATUS_WIRE_SIZE];
	struct byte_writer w;
	uint16_t lop;

	if (!st || st->state > BFR_STATE_FAULT || st->battery_pct > 100 ||
	    pressure_to_sfloat(st->last_lop_mmhg, &lop) < 0)
		return -EINVAL;
	writer_init(&w, scratch, sizeof(scratch));
	writer_u8(&w, st->state);
	writer_u8(&w, st->battery_pct);
	writer_le16(&w, st->faults);
	writer_le16(&w, lop);
	writer_le16(&w, st->cuff_width_mm);
	return finish(scratch, w.pos, buf, cap, len);
}

int bfr_status_decode(const uint8_t *buf, size_t len, struct bfr_status *out)
{
	struct bfr_status st;

	if (!buf || len != BFR_STATUS_WIRE_SIZE)
		return -EBADMSG;
	st.state = buf[0];
	st.battery_pct = buf[1];
	/* Fault bits unknown to us are kept: the gateway must see them, not lose them. */
	st.faults = get_le16(buf + 2);
	st.last_lop_mmhg = sfloat_to_double(get_le16(buf + 4));
	st.cuff_width_mm = get_le16(buf + 6);
	if (st.state > BFR_STATE_FAULT || st.battery_pct > 100)
		return -EBADMSG;
	*out = st;
	return 0;
}

/* --- Cuff Supervision ---------------------------------------------------------- */

int bfr_supervision_encode(uint16_t token, uint8_t *buf, size_t cap, size_t *len)
{
	uint8_t scratch[BFR_SUPERVISION_WIRE_SIZE];

	put_le16(scratch, token);
	return finish(scratch, sizeof(scratch), buf, cap, len);
}

int bfr_supervision_decode(const uint8_t *buf, size_t len, uint16_t *token)
{
	if (!buf || len != BFR_SUPERVISION_WIRE_SIZE)
		return -EBADMSG;
	*token = get_le16(buf);
	return 0;
}

/* --- Cuff Features ------------------------------------------------------------ */

int bfr_features_encode(const struct bfr_features *f, uint8_t *buf, size_t cap, size_t *len)
{
	uint8_t scratch[BFR_FEATURES_WIRE_SIZE];
	struct byte_writer w;
	uint16_t maxp;

	if (!f || f->limb > BFR_LIMB_LEG || f->sample_rate_hz == 0 ||
	    command_pressure_to_sfloat(f->max_pressure_mmhg, &maxp) < 0)
		return -EINVAL;
	writer_init(&w, scratch, sizeof(scratch));
	writer_le16(&w, f->cuff_width_mm);
	writer_u8(&w, f->limb);
	writer_le16(&w, maxp);
	writer_le16(&w, f->sample_rate_hz);
	writer_le16(&w, f->feature_bits);
	return finish(scratch, w.pos, buf, cap, len);
}

int bfr_features_decode(const uint8_t *buf, size_t len, struct bfr_features *out)
{
	struct bfr_features f;

	if (!buf || len != BFR_FEATURES_WIRE_SIZE)
		return -EBADMSG;
	f.cuff_width_mm = get_le16(buf);
	f.limb = buf[2];
	f.max_pressure_mmhg = sfloat_to_double(get_le16(buf + 3));
	f.sample_rate_hz = get_le16(buf + 5);
	f.feature_bits = get_le16(buf + 7);
	/* A cuff that samples at 0 Hz could never be supervised. */
	if (f.limb > BFR_LIMB_LEG || f.sample_rate_hz == 0)
		return -EBADMSG;
	*out = f;
	return 0;
}

/* --- names ----------------------------------------------------------------------- */

const char *bfr_cp_opcode_name(uint8_t opcode)
{
	switch (opcode) {
	case BFR_CP_SET_TARGET: return "SET_TARGET";
	case BFR_CP_DEFLATE: return "DEFLATE";
	case BFR_CP_MEASURE_LOP: return "MEASURE_LOP";
	case BFR_CP_CUE: return "CUE";
	case BFR_CP_IDENTIFY: return "IDENTIFY";
	case BFR_CP_SET_SUPERVISION: return "SET_SUPERVISION";
	case BFR_CP_RESPONSE: return "RESPONSE";
	default: return "unknown";
	}
}

const char *bfr_cp_result_name(uint8_t result)
{
	switch (result) {
	case BFR_RESULT_SUCCESS: return "success";
	case BFR_RESULT_NOT_SUPPORTED: return "not supported";
	case BFR_RESULT_INVALID_PARAMETER: return "invalid parameter";
	case BFR_RESULT_BUSY: return "busy";
	case BFR_RESULT_FAILED: return "failed";
	case BFR_RESULT_LIMIT_EXCEEDED: return "cuff limit exceeded";
	default: return "unknown";
	}
}

const char *bfr_cuff_state_name(uint8_t state)
{
	switch (state) {
	case BFR_STATE_IDLE: return "idle";
	case BFR_STATE_INFLATING: return "inflating";
	case BFR_STATE_HOLDING: return "holding";
	case BFR_STATE_DEFLATING: return "deflating";
	case BFR_STATE_MEASURING_LOP: return "measuring_lop";
	case BFR_STATE_FAULT: return "fault";
	default: return "unknown";
	}
}
