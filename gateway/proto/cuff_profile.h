/*
 * cuff_profile.h - the BFR Cuff GATT profile: UUIDs and the byte layout of
 * every characteristic value (docs/gatt-profile.md).
 *
 * Pure codec shared by the gateway and cuffsim. Decoders validate length
 * exactly (a value of the wrong size is -EBADMSG, never partly used) and
 * leave outputs untouched on failure. Pressures are SFLOAT mmHg on the wire
 * and double here; a special SFLOAT value (NaN, NRes, +-INF, reserved)
 * decodes to NAN so a sensor fault can never look like a plausible reading.
 */
#ifndef BFR_CUFF_PROFILE_H
#define BFR_CUFF_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "att.h"

/* 128-bit base 7b1e0000-5c2a-4d3b-9f8e-0a1b2c3d4e5f; only 0x0000 varies. */
enum bfr_uuid_id {
	BFR_UUID_SERVICE = 0x0001,
	BFR_UUID_PRESSURE = 0x0002,
	BFR_UUID_CONTROL_POINT = 0x0003,
	BFR_UUID_STATUS = 0x0004,
	BFR_UUID_SUPERVISION = 0x0005,
	BFR_UUID_FEATURES = 0x0006,
};
void bfr_uuid(enum bfr_uuid_id id, struct att_uuid *out);
/* True and *id set when uuid is one of the six profile UUIDs above. */
bool bfr_uuid_id_of(const struct att_uuid *uuid, enum bfr_uuid_id *id);

/* --- Cuff Pressure (notify) -------------------------------------------- */

#define BFR_SAMPLE_WIRE_SIZE 14
#define BFR_MAX_SAMPLES_PER_NTF ((ATT_MAX_MTU - 3 - 1) / BFR_SAMPLE_WIRE_SIZE)

/* Status bits of a pressure sample. */
#define BFR_ST_PUMP_ON 0x0001
#define BFR_ST_VALVE_OPEN 0x0002
#define BFR_ST_REGULATING 0x0004
#define BFR_ST_LEAK_SUSPECTED 0x0008
#define BFR_ST_SENSOR_FAULT 0x0010
#define BFR_ST_RELIEF_TRIPPED 0x0020
#define BFR_ST_BUTTON 0x0040
#define BFR_ST_BATTERY_LOW 0x0080
#define BFR_ST_SUPERVISION_DEFLATED 0x0100

struct bfr_sample {
	uint16_t seq;
	uint32_t t_ms;          /* cuff's own monotonic milliseconds */
	double pressure_mmhg;   /* NAN when the cuff sent a special value */
	double target_mmhg;     /* NAN likewise; 0 when no target */
	double pulse_amplitude; /* mmHg peak-to-peak of the arterial pulsation */
	uint16_t status;
};

/*
 * Value is `u8 n` then n samples; n must be 1..BFR_MAX_SAMPLES_PER_NTF and
 * len exactly 1 + 14n (-EBADMSG); -ENOSPC when n > cap. Encode maps NAN to
 * SFLOAT NaN and +-INFINITY to +-INF; -EINVAL for n out of range or a finite
 * value SFLOAT cannot hold, -ENOSPC when buf is too small.
 */
int bfr_pressure_decode(const uint8_t *buf, size_t len, struct bfr_sample *out,
			size_t cap, size_t *n_out);
int bfr_pressure_encode(const struct bfr_sample *samples, size_t n, uint8_t *buf,
			size_t cap, size_t *len);

/* --- Cuff Control Point (write + indicate) ------------------------------ */

enum bfr_cp_opcode {
	BFR_CP_SET_TARGET = 0x01,
	BFR_CP_DEFLATE = 0x02,
	BFR_CP_MEASURE_LOP = 0x03,
	BFR_CP_CUE = 0x04,
	BFR_CP_IDENTIFY = 0x05,
	BFR_CP_SET_SUPERVISION = 0x06,
	BFR_CP_RESPONSE = 0x80,
};

enum bfr_cp_result {
	BFR_RESULT_SUCCESS = 0,
	BFR_RESULT_NOT_SUPPORTED = 1,
	BFR_RESULT_INVALID_PARAMETER = 2,
	BFR_RESULT_BUSY = 3,
	BFR_RESULT_FAILED = 4,
	BFR_RESULT_LIMIT_EXCEEDED = 5,
};

enum bfr_deflate_reason {
	BFR_DEFLATE_NORMAL = 0,
	BFR_DEFLATE_SAFETY = 1,
	BFR_DEFLATE_ESTOP = 2,
};

enum bfr_cue {
	BFR_CUE_REP_UP = 0,
	BFR_CUE_REP_DOWN = 1,
	BFR_CUE_SET_START = 2,
	BFR_CUE_REST = 3,
	BFR_CUE_DONE = 4,
};

struct bfr_cp_request {
	uint8_t opcode;
	union {
		struct {
			double mmhg;
			uint16_t ramp_ms;
		} set_target;
		uint8_t deflate_reason;
		double max_search_mmhg;
		uint8_t cue;
		uint16_t supervision_timeout_ms;
	};
};

/*
 * Request encode/decode. Decode checks the exact length per opcode and the
 * ranges of enums (reason 0..2, cue 0..4); an unknown opcode is -ENOTSUP so
 * the cuff can answer NOT_SUPPORTED. A SET_TARGET or MEASURE_LOP pressure
 * that is a special SFLOAT or negative is -ERANGE (answer INVALID_PARAMETER).
 *
 * Exact lengths: SET_TARGET 5, DEFLATE 2, MEASURE_LOP 3, CUE 2, IDENTIFY 1,
 * SET_SUPERVISION 3 (anything else -EBADMSG). Out-of-range reason or cue and
 * a SET_SUPERVISION timeout of 0 (it would disable the fail-safe) are
 * -ERANGE as well. Encode refuses the same values with -EINVAL.
 */
int bfr_cp_request_encode(const struct bfr_cp_request *req, uint8_t *buf, size_t cap,
			  size_t *len);
int bfr_cp_request_decode(const uint8_t *buf, size_t len, struct bfr_cp_request *out);

struct bfr_cp_response {
	uint8_t req_opcode;
	uint8_t result;
	bool has_lop;    /* MEASURE_LOP success carries `sfloat lop` */
	double lop_mmhg; /* NAN if the cuff sent a special value */
};
int bfr_cp_response_encode(const struct bfr_cp_response *rsp, uint8_t *buf, size_t cap,
			   size_t *len);
/*
 * Wire: 0x80, req_opcode, result, then `sfloat lop` exactly when req_opcode
 * is MEASURE_LOP and result SUCCESS (5 bytes, else 3). Any req_opcode is
 * valid (a cuff answers unknown opcodes, and 0 for an empty write). Decode:
 * -EBADMSG for a first byte other than 0x80, result > 5, or a length that
 * disagrees. Encode: -EINVAL for result > 5 and when has_lop disagrees with
 * that rule.
 */
int bfr_cp_response_decode(const uint8_t *buf, size_t len, struct bfr_cp_response *out);

/* --- Cuff Status (read + notify) ---------------------------------------- */

enum bfr_cuff_state {
	BFR_STATE_IDLE = 0,       /* deflated, nothing to do */
	BFR_STATE_INFLATING = 1,  /* ramping towards target */
	BFR_STATE_HOLDING = 2,    /* regulating at target */
	BFR_STATE_DEFLATING = 3,
	BFR_STATE_MEASURING_LOP = 4,
	BFR_STATE_FAULT = 5,
};

/* Fault bits of Cuff Status (persistent conditions, unlike sample status). */
#define BFR_FAULT_LEAK 0x0001
#define BFR_FAULT_SENSOR 0x0002
#define BFR_FAULT_VALVE_STUCK 0x0004
#define BFR_FAULT_OVER_PRESSURE 0x0008
#define BFR_FAULT_BATTERY_LOW 0x0010
#define BFR_FAULT_DEFLATE_FAILED 0x0020
#define BFR_FAULT_LOP_FAILED 0x0040
#define BFR_FAULT_SUPERVISION 0x0080

#define BFR_STATUS_WIRE_SIZE 8
struct bfr_status {
	uint8_t state;
	uint8_t battery_pct;
	uint16_t faults;
	double last_lop_mmhg; /* NAN when never measured */
	uint16_t cuff_width_mm;
};
int bfr_status_encode(const struct bfr_status *st, uint8_t *buf, size_t cap, size_t *len);
/* Exactly 8 bytes; state 0..5 and battery 0..100 else -EBADMSG; all fault bits kept. */
int bfr_status_decode(const uint8_t *buf, size_t len, struct bfr_status *out);

/* --- Cuff Supervision (write without response) -------------------------- */

#define BFR_SUPERVISION_WIRE_SIZE 2
#define BFR_SUPERVISION_DEFAULT_TIMEOUT_MS 3000
#define BFR_SUPERVISION_ACTIVE_ABOVE_MMHG 10.0

/* `u16 token`, exactly 2 bytes (-EBADMSG otherwise); any token value is valid. */
int bfr_supervision_encode(uint16_t token, uint8_t *buf, size_t cap, size_t *len);
int bfr_supervision_decode(const uint8_t *buf, size_t len, uint16_t *token);

/* --- Cuff Features (read) ----------------------------------------------- */

enum bfr_limb { BFR_LIMB_ARM = 0, BFR_LIMB_LEG = 1 };

#define BFR_FEATURE_MEASURE_LOP 0x0001
#define BFR_FEATURE_CUE 0x0002
#define BFR_FEATURE_IDENTIFY 0x0004
#define BFR_FEATURE_BATCHED_SAMPLES 0x0008

#define BFR_FEATURES_WIRE_SIZE 9
struct bfr_features {
	uint16_t cuff_width_mm;
	uint8_t limb; /* enum bfr_limb; decode rejects other values */
	double max_pressure_mmhg;
	uint16_t sample_rate_hz;
	uint16_t feature_bits;
};
int bfr_features_encode(const struct bfr_features *f, uint8_t *buf, size_t cap, size_t *len);
/*
 * Exactly 9 bytes; limb 0..1 and sample_rate_hz > 0 else -EBADMSG. Encode
 * also wants a finite, non-negative max_pressure_mmhg (-EINVAL).
 */
int bfr_features_decode(const uint8_t *buf, size_t len, struct bfr_features *out);

/* Static strings; "unknown" for values outside the enums. */
const char *bfr_cp_opcode_name(uint8_t opcode);
const char *bfr_cp_result_name(uint8_t result);
const char *bfr_cuff_state_name(uint8_t state);

#endif
