/*
 * model.h - physical model and firmware logic of one simulated BFR cuff.
 *
 * Pure: no clock, no I/O. Time is the cuff's own: it advances by exactly one
 * sample period (1/rate) per cuff_model_step(), so a given seed and the same
 * sequence of calls always give the same samples. Control-point requests and
 * supervision writes act at the model's current time.
 *
 * What is modelled (docs/cuffsim.md has the equations): cuff air volume fed
 * by a pump and drained by a regulation bleed, a dump valve, leaks and a
 * relief valve; pressure from volume through cuff + limb compliance; a
 * bang-bang regulator with a hysteresis band around a ramped set-point;
 * arterial pulsation whose amplitude vanishes at the limb occlusion pressure;
 * contraction spikes after CUE rep-up; battery drain; sensor noise; the
 * supervision fail-safe; LOP measurement; and injected faults.
 *
 * Invariants: the model never allocates after cuff_model_new(); every
 * parameter it accepts from a control point is range-checked here and a
 * rejected request changes nothing.
 */
#ifndef CUFFSIM_MODEL_H
#define CUFFSIM_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "cuff_profile.h"

struct cuff_model;

struct cuff_model_params {
	uint8_t limb;            /* enum bfr_limb */
	uint32_t rate_hz;        /* samples per second, 1..1000 */
	double lop_override;     /* > 0: use this LOP instead of the formula */
	uint64_t seed;
	unsigned index;          /* 1-based cuff index: selects the PRNG stream */
};

/* Everything a caller may look at; a copy, so it cannot break invariants. */
struct cuff_model_info {
	uint64_t now_ms;         /* cuff's own monotonic ms since start */
	double pressure_mmhg;    /* true cuff pressure (no pulse, no noise) */
	double reported_mmhg;    /* last sample's pressure */
	double setpoint_mmhg;    /* ramped set-point the regulator follows */
	double target_mmhg;      /* target as commanded */
	double pulse_amplitude;  /* last sample's pulse amplitude */
	double lop_mmhg;         /* the limb's true LOP */
	double last_lop_mmhg;    /* last measured; NAN if none */
	double max_pressure_mmhg;
	double battery_pct;
	uint16_t cuff_width_mm;
	uint16_t status_bits;    /* BFR_ST_* of the last sample */
	uint16_t faults;         /* BFR_FAULT_* */
	uint8_t state;           /* enum bfr_cuff_state */
	uint32_t supervision_timeout_ms;
	uint32_t supervision_deflates;
	uint32_t identify_blinks;
	uint32_t cues[5];
	uint32_t button_presses;
};

/* Faults injected from the control socket (see cuff_model_set_fault()). */
enum cuff_fault {
	CUFF_FAULT_LEAK,          /* value: leak rate in mmHg/s at 100 mmHg */
	CUFF_FAULT_STUCK_VALVE,
	CUFF_FAULT_SENSOR_FREEZE,
	CUFF_FAULT_DEFLATE_FAIL,
	CUFF_FAULT_LOP_FAIL,
	CUFF_FAULT_BATTERY,       /* value: battery percent 0..100 */
	CUFF_FAULT_SPIKE,         /* value: mmHg added, value2: duration ms */
	CUFF_FAULT_LOP_VALUE,     /* value: the LOP every later search reports, 0..1000 */
};

int cuff_model_new(const struct cuff_model_params *params, struct cuff_model **out);
void cuff_model_free(struct cuff_model *m);

/* Advances one sample period and stores the sample it produces. */
void cuff_model_step(struct cuff_model *m, struct bfr_sample *out);

/*
 * Applies a decoded control-point request. Immediate results go to *rsp and
 * the function returns 1; MEASURE_LOP success is not immediate (returns 0
 * and the result appears later through cuff_model_take_result()). Never
 * fails: every error is a result code.
 */
int cuff_model_control(struct cuff_model *m, const struct bfr_cp_request *req,
		       struct bfr_cp_response *rsp);
/* True (and *rsp set) once when a deferred control-point result is ready. */
bool cuff_model_take_result(struct cuff_model *m, struct bfr_cp_response *rsp);

/*
 * The cuff's button is pressed now and held for hold_ms: status bit 6
 * (BFR_ST_BUTTON) is set in every sample after now up to now + hold_ms. A
 * press while held starts the hold again with the new duration.
 */
void cuff_model_press_button(struct cuff_model *m, uint32_t hold_ms);

/* A write to the Supervision characteristic (the keepalive). */
void cuff_model_supervision_write(struct cuff_model *m);

/* 0, or -EINVAL for an unknown fault or a value out of range. */
int cuff_model_set_fault(struct cuff_model *m, enum cuff_fault fault, double value,
			 double value2);
void cuff_model_clear_faults(struct cuff_model *m);

void cuff_model_info(const struct cuff_model *m, struct cuff_model_info *out);
void cuff_model_features(const struct cuff_model *m, struct bfr_features *out);
void cuff_model_status(const struct cuff_model *m, struct bfr_status *out);

/* LOP formula (docs/cuffsim.md); exposed for tests and the documentation. */
double cuff_model_lop_formula(double sbp_mmhg, double circumference_cm, double width_cm);

#endif
