/*
 * model.c - one simulated cuff: pneumatics, physiology, firmware logic.
 *
 * The pneumatic state is the air volume V (mL above ambient) in the bladder;
 * pressure follows from the compliance curve P(V) = a*V + b*V^2 (a soft
 * bladder that stiffens once it has wrapped the limb and compresses tissue).
 * Flows change V; the regulator only switches pump and valves, exactly like a
 * small cuff controller. Integration is explicit Euler on substeps of at
 * most 5 ms, which keeps the dump valve stable at any sample rate.
 */
#include "model.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

#define SUBSTEP_MAX_US 5000.0
#define REG_BAND_MMHG 2.0          /* hysteresis half-band of the regulator */
#define IDLE_BELOW_MMHG 2.0        /* deflating ends here */
#define RELIEF_MARGIN_MMHG 20.0    /* relief valve opens at max_pressure + this */
#define LOP_RAMP_MMHG_S 20.0       /* set-point slope while measuring LOP */
#define LOP_VANISHED_MMHG 0.05     /* pulse amplitude treated as "no pulse" */
#define LOP_MEASURE_TIMEOUT_MS 60000
#define CONTRACTION_MS 800
#define HEART_RATE_HZ 1.2
#define NOISE_SIGMA_MMHG 0.3
#define BATTERY_IDLE_PCT_S (2.0 / 3600.0) /* 2 % per hour */
#define BATTERY_PUMP_PCT_S (1.2 / 60.0)   /* + 1.2 % per minute of pumping */
#define BATTERY_LOW_PCT 20.0
#define DUTY_TAU_S 5.0                    /* pump duty moving average */
#define LEAK_DUTY 0.5
#define DEFLATE_FAIL_AFTER_MS 5000
#define SBP_MMHG 120.0

struct limb_profile {
	uint16_t width_mm;
	double circumference_cm;  /* mean; each cuff varies by +- spread */
	double circumference_spread_cm;
	double a;                 /* mmHg per mL */
	double b;                 /* mmHg per mL^2 */
	double pump_flow_ml_s;    /* free flow at 0 mmHg */
	double pump_stall_mmhg;   /* flow falls linearly to 0 here */
	double bleed_ml_s_mmhg;   /* regulation bleed conductance */
	double dump_ml_s_mmhg;    /* deflation / relief conductance */
	double max_pressure_mmhg;
	double pulse_max_mmhg;    /* peak-to-peak at half LOP */
};

static const struct limb_profile LEG = {
	.width_mm = 115, .circumference_cm = 55.0, .circumference_spread_cm = 3.0,
	.a = 0.5, .b = 0.004, .pump_flow_ml_s = 60.0, .pump_stall_mmhg = 400.0,
	.bleed_ml_s_mmhg = 0.05, .dump_ml_s_mmhg = 1.0, .max_pressure_mmhg = 250.0,
	.pulse_max_mmhg = 3.0,
};

static const struct limb_profile ARM = {
	.width_mm = 50, .circumference_cm = 26.0, .circumference_spread_cm = 2.0,
	.a = 1.2, .b = 0.02, .pump_flow_ml_s = 25.0, .pump_stall_mmhg = 400.0,
	.bleed_ml_s_mmhg = 0.02, .dump_ml_s_mmhg = 0.5, .max_pressure_mmhg = 200.0,
	.pulse_max_mmhg = 2.0,
};

enum mode {
	MODE_IDLE,        /* target 0, nothing running */
	MODE_REGULATE,    /* following the set-point */
	MODE_DEFLATE,     /* dump valve open */
	MODE_MEASURE_LOP,
};

struct cuff_model {
	struct limb_profile lp;
	uint8_t limb;
	struct sim_rng rng;
	uint32_t rate_hz;
	uint64_t n_samples;
	uint64_t now_ms;
	uint16_t seq;

	double lop;
	double volume_ml;
	double target;
	double setpoint;
	double ramp_from;
	uint64_t ramp_start_ms;
	uint32_t ramp_ms;
	enum mode mode;
	bool pump_on;
	bool bleed_on;
	bool dump_on;
	bool relief_open;
	bool relief_latched;
	double duty;
	double heart_phase;
	double heart_hz;

	/* measuring LOP */
	double lop_max_search;
	uint64_t lop_started_ms;
	double last_lop;
	bool result_ready;
	struct bfr_cp_response result;

	/* contraction after CUE rep-up */
	bool contracting;
	uint64_t contraction_start_ms;

	/* supervision */
	uint32_t sup_timeout_ms;
	uint64_t sup_ref_ms;       /* later of last write and rise above 10 mmHg */
	bool sup_active;           /* pressure was above 10 mmHg at the last step */
	bool sup_deflated;
	uint32_t sup_deflates;
	uint64_t deflate_started_ms;

	/* faults */
	double leak_rate;          /* mmHg/s at 100 mmHg */
	bool stuck_valve;
	bool sensor_freeze;
	bool deflate_fail;
	bool lop_fail;
	double lop_report; /* NAN, or the LOP a search reports whatever it found */
	double spike_mmhg;
	uint64_t spike_until_ms;
	double battery;

	uint16_t faults;
	uint16_t status;
	double reported;
	double pulse_amp;
	double frozen_pressure;
	double frozen_pulse;
	bool frozen_valid;

	uint32_t identify;
	uint32_t cues[5];

	/* the button: held from a press until button_until_ms (model time) */
	bool button_held;
	uint64_t button_until_ms;
	uint32_t button_presses;
};

double cuff_model_lop_formula(double sbp_mmhg, double circumference_cm, double width_cm)
{
	/* Illustrative linear fit (docs/cuffsim.md): circumference dominates, a
	 * wider cuff occludes at a lower pressure. */
	return 0.75 * sbp_mmhg + 2.4 * circumference_cm - 2.0 * width_cm;
}

static double pressure_of(const struct cuff_model *m, double v)
{
	return m->lp.a * v + m->lp.b * v * v;
}

static double dpdv(const struct cuff_model *m, double v)
{
	return m->lp.a + 2.0 * m->lp.b * v;
}

static double pulse_amplitude(const struct cuff_model *m, double p)
{
	double x = p / m->lop;
	double amp;

	if (x < 0)
		x = 0;
	/* Oscillometric shape: no coupling in an empty bladder, largest around
	 * half the LOP, gone once the artery is occluded. */
	amp = x >= 1.0 ? 0.0 : m->lp.pulse_max_mmhg * 4.0 * x * (1.0 - x);
	if (m->lop_fail && p > 10.0) /* the pulse never vanishes: search fails */
		amp = fmax(amp, 0.3 * m->lp.pulse_max_mmhg);
	return amp;
}

int cuff_model_new(const struct cuff_model_params *params, struct cuff_model **out)
{
	struct cuff_model *m;
	double circ;

	if (!params || !out || params->rate_hz < 1 || params->rate_hz > 1000 ||
	    (params->limb != BFR_LIMB_ARM && params->limb != BFR_LIMB_LEG) ||
	    !(params->lop_override >= 0) || params->lop_override > 400)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->lp = params->limb == BFR_LIMB_LEG ? LEG : ARM;
	m->limb = params->limb;
	sim_rng_seed(&m->rng, params->seed, params->index);
	m->rate_hz = params->rate_hz;
	circ = m->lp.circumference_cm +
	       m->lp.circumference_spread_cm * (2.0 * sim_rng_uniform(&m->rng) - 1.0);
	m->lop = params->lop_override > 0 ?
			 params->lop_override :
			 cuff_model_lop_formula(SBP_MMHG, circ, m->lp.width_mm / 10.0);
	m->heart_hz = HEART_RATE_HZ * (0.9 + 0.2 * sim_rng_uniform(&m->rng));
	m->heart_phase = sim_rng_uniform(&m->rng);
	m->last_lop = NAN;
	m->lop_report = NAN;
	m->sup_timeout_ms = BFR_SUPERVISION_DEFAULT_TIMEOUT_MS;
	m->battery = 100.0;
	m->mode = MODE_IDLE;
	*out = m;
	return 0;
}

void cuff_model_free(struct cuff_model *m)
{
	free(m);
}

static void start_deflate(struct cuff_model *m)
{
	m->mode = MODE_DEFLATE;
	m->target = 0;
	m->setpoint = 0;
	m->ramp_ms = 0;
	m->deflate_started_ms = m->now_ms;
}

static void finish_lop(struct cuff_model *m, uint8_t result, double lop)
{
	m->result_ready = true;
	memset(&m->result, 0, sizeof(m->result));
	m->result.req_opcode = BFR_CP_MEASURE_LOP;
	m->result.result = result;
	if (result == BFR_RESULT_SUCCESS) {
		if (!isnan(m->lop_report))
			lop = m->lop_report; /* a broken or malicious cuff */
		m->result.has_lop = true;
		m->result.lop_mmhg = lop;
		m->last_lop = lop;
		m->faults &= (uint16_t)~BFR_FAULT_LOP_FAILED;
	} else {
		m->faults |= BFR_FAULT_LOP_FAILED;
	}
	start_deflate(m);
}

/* Decides pump and valves for one substep from the pressure p. */
static void regulate(struct cuff_model *m, double p)
{
	bool pump = false, bleed = false, dump = false;

	switch (m->mode) {
	case MODE_IDLE:
		/* Residual air bleeds off so an idle cuff reads 0. */
		bleed = p > 0.5;
		break;
	case MODE_DEFLATE:
		dump = true;
		break;
	case MODE_REGULATE:
	case MODE_MEASURE_LOP:
		/* Hysteresis: run until the set-point is reached, rest inside
		 * the band, so the pump does not chatter at every substep. */
		if (p < m->setpoint - REG_BAND_MMHG || (m->pump_on && p < m->setpoint))
			pump = true;
		else if (p > m->setpoint + REG_BAND_MMHG || (m->bleed_on && p > m->setpoint))
			bleed = true;
		break;
	}
	if (m->deflate_fail)
		dump = false; /* the valve is commanded but does not move */
	if (m->stuck_valve) {
		/* Failed valve driver: closed valves, pump runs away. */
		pump = true;
		bleed = false;
		dump = false;
	}
	if (p >= m->lp.max_pressure_mmhg + RELIEF_MARGIN_MMHG)
		m->relief_latched = true;
	/* A tripped relief vents and interlocks the pump until reset. */
	m->relief_open = m->relief_latched && p > IDLE_BELOW_MMHG;
	if (m->relief_latched)
		pump = false;
	m->pump_on = pump;
	m->bleed_on = bleed;
	m->dump_on = dump;
}

static void substep(struct cuff_model *m, double dt_s, uint64_t t_ms)
{
	double p = pressure_of(m, m->volume_ml);
	double q = 0;

	if (m->mode == MODE_REGULATE && m->ramp_ms && t_ms < m->ramp_start_ms + m->ramp_ms) {
		double f = (double)(t_ms - m->ramp_start_ms) / m->ramp_ms;

		m->setpoint = m->ramp_from + (m->target - m->ramp_from) * f;
	} else if (m->mode == MODE_REGULATE) {
		m->setpoint = m->target;
	} else if (m->mode == MODE_MEASURE_LOP) {
		m->setpoint = fmin(m->setpoint + LOP_RAMP_MMHG_S * dt_s, m->lop_max_search);
	}
	regulate(m, p);
	if (m->pump_on)
		q += m->lp.pump_flow_ml_s * fmax(0.0, 1.0 - p / m->lp.pump_stall_mmhg);
	if (m->bleed_on)
		q -= m->lp.bleed_ml_s_mmhg * p;
	if (m->dump_on || m->relief_open)
		q -= m->lp.dump_ml_s_mmhg * p;
	if (m->leak_rate > 0)
		q -= m->leak_rate * p / 100.0 / dpdv(m, m->volume_ml);
	m->volume_ml = fmax(0.0, m->volume_ml + q * dt_s);

	m->duty += ((m->pump_on ? 1.0 : 0.0) - m->duty) * fmin(1.0, dt_s / DUTY_TAU_S);
	m->battery -= (BATTERY_IDLE_PCT_S + (m->pump_on ? BATTERY_PUMP_PCT_S : 0)) * dt_s;
	if (m->battery < 0)
		m->battery = 0;
}

static void supervise(struct cuff_model *m, double p)
{
	bool active = p > BFR_SUPERVISION_ACTIVE_ABOVE_MMHG;

	/* The window opens when pressure rises above 10 mmHg, so a cuff idle
	 * for an hour does not deflate the instant it is inflated. */
	if (active && !m->sup_active && m->sup_ref_ms < m->now_ms)
		m->sup_ref_ms = m->now_ms;
	m->sup_active = active;
	if (!active || m->sup_deflated || m->mode == MODE_DEFLATE)
		return;
	if (m->now_ms - m->sup_ref_ms > m->sup_timeout_ms) {
		if (m->mode == MODE_MEASURE_LOP)
			finish_lop(m, BFR_RESULT_FAILED, 0);
		start_deflate(m);
		m->sup_deflated = true;
		m->faults |= BFR_FAULT_SUPERVISION;
		m->sup_deflates++;
	}
}

static uint8_t derive_state(const struct cuff_model *m, double p)
{
	if (m->relief_latched)
		return BFR_STATE_FAULT;
	switch (m->mode) {
	case MODE_MEASURE_LOP:
		return BFR_STATE_MEASURING_LOP;
	case MODE_DEFLATE:
		return BFR_STATE_DEFLATING;
	case MODE_REGULATE:
		if (m->target <= 0)
			return p > IDLE_BELOW_MMHG ? BFR_STATE_DEFLATING : BFR_STATE_IDLE;
		return fabs(p - m->target) <= 2 * REG_BAND_MMHG ? BFR_STATE_HOLDING :
								 BFR_STATE_INFLATING;
	case MODE_IDLE:
	default:
		return BFR_STATE_IDLE;
	}
}

void cuff_model_step(struct cuff_model *m, struct bfr_sample *out)
{
	uint64_t prev_ms = m->now_ms;
	double period_us = 1e6 / m->rate_hz;
	int nsub = (int)ceil(period_us / SUBSTEP_MAX_US);
	double dt_s = period_us / nsub / 1e6;
	double p, amp, t_s, extra = 0, reported;
	uint16_t st = 0;

	m->n_samples++;
	m->now_ms = m->n_samples * 1000 / m->rate_hz;
	for (int i = 0; i < nsub; i++)
		substep(m, dt_s, prev_ms + (uint64_t)((m->now_ms - prev_ms) * (i + 1) / nsub));
	p = pressure_of(m, m->volume_ml);

	supervise(m, p);
	if (m->mode == MODE_MEASURE_LOP) {
		if (pulse_amplitude(m, p) < LOP_VANISHED_MMHG && p > 20.0)
			finish_lop(m, BFR_RESULT_SUCCESS,
				   round((p + sim_rng_normal(&m->rng)) * 10.0) / 10.0);
		else if (p >= m->lop_max_search - REG_BAND_MMHG ||
			 m->now_ms - m->lop_started_ms > LOP_MEASURE_TIMEOUT_MS)
			finish_lop(m, BFR_RESULT_FAILED, 0);
	}
	if (m->mode == MODE_DEFLATE && p < IDLE_BELOW_MMHG && !m->relief_latched)
		m->mode = MODE_IDLE;
	if (m->mode == MODE_DEFLATE && m->deflate_fail &&
	    m->now_ms - m->deflate_started_ms > DEFLATE_FAIL_AFTER_MS)
		m->faults |= BFR_FAULT_DEFLATE_FAILED;

	/* What the sensor sees: static pressure plus physiology plus faults. */
	amp = pulse_amplitude(m, p);
	t_s = m->now_ms / 1000.0;
	extra += amp / 2.0 * sin(2.0 * M_PI * (m->heart_hz * t_s + m->heart_phase));
	if (m->contracting) {
		uint64_t dt = m->now_ms - m->contraction_start_ms;

		if (dt >= CONTRACTION_MS || p <= BFR_SUPERVISION_ACTIVE_ABOVE_MMHG)
			m->contracting = false;
		else
			extra += (5.0 + 0.1 * p) * sin(M_PI * dt / CONTRACTION_MS);
	}
	if (m->now_ms < m->spike_until_ms)
		extra += m->spike_mmhg;
	reported = fmax(0.0, p + extra + NOISE_SIGMA_MMHG * sim_rng_normal(&m->rng));
	if (m->sensor_freeze) {
		if (!m->frozen_valid) {
			m->frozen_pressure = m->reported;
			m->frozen_pulse = m->pulse_amp;
			m->frozen_valid = true;
		}
		reported = m->frozen_pressure;
		amp = m->frozen_pulse;
	}
	m->reported = reported;
	m->pulse_amp = amp;

	if (m->duty > LEAK_DUTY && m->mode == MODE_REGULATE)
		m->faults |= BFR_FAULT_LEAK;
	else if (m->duty < LEAK_DUTY / 2)
		m->faults &= (uint16_t)~BFR_FAULT_LEAK;
	if (m->relief_latched) {
		m->faults |= BFR_FAULT_OVER_PRESSURE;
		if (m->stuck_valve)
			m->faults |= BFR_FAULT_VALVE_STUCK;
	}
	if (m->battery < BATTERY_LOW_PCT)
		m->faults |= BFR_FAULT_BATTERY_LOW;
	else
		m->faults &= (uint16_t)~BFR_FAULT_BATTERY_LOW;

	if (m->pump_on)
		st |= BFR_ST_PUMP_ON;
	if (m->bleed_on || m->dump_on || m->relief_open)
		st |= BFR_ST_VALVE_OPEN;
	if (m->mode == MODE_REGULATE || m->mode == MODE_MEASURE_LOP)
		st |= BFR_ST_REGULATING;
	if (m->faults & BFR_FAULT_LEAK)
		st |= BFR_ST_LEAK_SUSPECTED;
	if (m->relief_latched)
		st |= BFR_ST_RELIEF_TRIPPED;
	if (m->faults & BFR_FAULT_BATTERY_LOW)
		st |= BFR_ST_BATTERY_LOW;
	if (m->sup_deflated)
		st |= BFR_ST_SUPERVISION_DEFLATED;
	if (m->button_held && m->now_ms <= m->button_until_ms)
		st |= BFR_ST_BUTTON;
	else
		m->button_held = false;
	m->status = st;

	out->seq = m->seq++;
	out->t_ms = (uint32_t)m->now_ms;
	out->pressure_mmhg = reported;
	out->target_mmhg = m->target;
	out->pulse_amplitude = amp;
	out->status = st;
}

static void set_result(struct bfr_cp_response *rsp, uint8_t opcode, uint8_t result)
{
	memset(rsp, 0, sizeof(*rsp));
	rsp->req_opcode = opcode;
	rsp->result = result;
}

int cuff_model_control(struct cuff_model *m, const struct bfr_cp_request *req,
		       struct bfr_cp_response *rsp)
{
	bool busy = m->mode == MODE_MEASURE_LOP;
	double p = pressure_of(m, m->volume_ml);

	switch (req->opcode) {
	case BFR_CP_SET_TARGET:
		if (busy) {
			set_result(rsp, req->opcode, BFR_RESULT_BUSY);
		} else if (!isfinite(req->set_target.mmhg) || req->set_target.mmhg < 0) {
			set_result(rsp, req->opcode, BFR_RESULT_INVALID_PARAMETER);
		} else if (req->set_target.mmhg > m->lp.max_pressure_mmhg) {
			set_result(rsp, req->opcode, BFR_RESULT_LIMIT_EXCEEDED);
		} else {
			m->mode = MODE_REGULATE;
			m->target = req->set_target.mmhg;
			m->ramp_from = p;
			m->ramp_ms = req->set_target.ramp_ms;
			m->ramp_start_ms = m->now_ms;
			m->setpoint = m->ramp_ms ? p : m->target;
			m->sup_deflated = false;
			m->relief_latched = false;
			m->faults &= (uint16_t)~(BFR_FAULT_SUPERVISION | BFR_FAULT_OVER_PRESSURE |
						 BFR_FAULT_VALVE_STUCK | BFR_FAULT_DEFLATE_FAILED);
			set_result(rsp, req->opcode, BFR_RESULT_SUCCESS);
		}
		return 1;
	case BFR_CP_DEFLATE:
		if (req->deflate_reason > BFR_DEFLATE_ESTOP) {
			set_result(rsp, req->opcode, BFR_RESULT_INVALID_PARAMETER);
			return 1;
		}
		/* Deflation is never refused, not even while measuring LOP. */
		if (busy)
			finish_lop(m, BFR_RESULT_FAILED, 0);
		start_deflate(m);
		set_result(rsp, req->opcode, BFR_RESULT_SUCCESS);
		return 1;
	case BFR_CP_MEASURE_LOP:
		if (busy) {
			set_result(rsp, req->opcode, BFR_RESULT_BUSY);
		} else if (!isfinite(req->max_search_mmhg) || req->max_search_mmhg < 50.0) {
			set_result(rsp, req->opcode, BFR_RESULT_INVALID_PARAMETER);
		} else if (req->max_search_mmhg > m->lp.max_pressure_mmhg) {
			set_result(rsp, req->opcode, BFR_RESULT_LIMIT_EXCEEDED);
		} else {
			m->mode = MODE_MEASURE_LOP;
			m->lop_max_search = req->max_search_mmhg;
			m->lop_started_ms = m->now_ms;
			m->setpoint = p;
			m->target = req->max_search_mmhg;
			m->result_ready = false;
			return 0;
		}
		return 1;
	case BFR_CP_CUE:
		if (busy) {
			set_result(rsp, req->opcode, BFR_RESULT_BUSY);
		} else if (req->cue > BFR_CUE_DONE) {
			set_result(rsp, req->opcode, BFR_RESULT_INVALID_PARAMETER);
		} else {
			m->cues[req->cue]++;
			if (req->cue == BFR_CUE_REP_UP) {
				m->contracting = true;
				m->contraction_start_ms = m->now_ms;
			}
			set_result(rsp, req->opcode, BFR_RESULT_SUCCESS);
		}
		return 1;
	case BFR_CP_IDENTIFY:
		m->identify++;
		set_result(rsp, req->opcode, BFR_RESULT_SUCCESS);
		return 1;
	case BFR_CP_SET_SUPERVISION:
		if (req->supervision_timeout_ms < 500 || req->supervision_timeout_ms > 60000) {
			set_result(rsp, req->opcode, BFR_RESULT_INVALID_PARAMETER);
		} else {
			m->sup_timeout_ms = req->supervision_timeout_ms;
			set_result(rsp, req->opcode, BFR_RESULT_SUCCESS);
		}
		return 1;
	default:
		set_result(rsp, req->opcode, BFR_RESULT_NOT_SUPPORTED);
		return 1;
	}
}

bool cuff_model_take_result(struct cuff_model *m, struct bfr_cp_response *rsp)
{
	if (!m->result_ready)
		return false;
	*rsp = m->result;
	m->result_ready = false;
	return true;
}

void cuff_model_supervision_write(struct cuff_model *m)
{
	m->sup_ref_ms = m->now_ms;
}

int cuff_model_set_fault(struct cuff_model *m, enum cuff_fault fault, double value,
			 double value2)
{
	switch (fault) {
	case CUFF_FAULT_LEAK:
		if (!(value > 0 && value <= 1000))
			return -EINVAL;
		m->leak_rate = value;
		return 0;
	case CUFF_FAULT_STUCK_VALVE:
		m->stuck_valve = true;
		return 0;
	case CUFF_FAULT_SENSOR_FREEZE:
		m->sensor_freeze = true;
		m->frozen_valid = false;
		return 0;
	case CUFF_FAULT_DEFLATE_FAIL:
		m->deflate_fail = true;
		return 0;
	case CUFF_FAULT_LOP_FAIL:
		m->lop_fail = true;
		return 0;
	case CUFF_FAULT_BATTERY:
		if (!(value >= 0 && value <= 100))
			return -EINVAL;
		m->battery = value;
		return 0;
	case CUFF_FAULT_LOP_VALUE:
		if (!(value >= 0 && value <= 1000))
			return -EINVAL;
		m->lop_report = value;
		return 0;
	case CUFF_FAULT_SPIKE:
		if (!(value >= -300 && value <= 300) || !(value2 >= 1 && value2 <= 60000))
			return -EINVAL;
		m->spike_mmhg = value;
		m->spike_until_ms = m->now_ms + (uint64_t)value2;
		return 0;
	}
	return -EINVAL;
}

void cuff_model_press_button(struct cuff_model *m, uint32_t hold_ms)
{
	m->button_held = true;
	m->button_until_ms = m->now_ms + hold_ms;
	m->button_presses++;
}

void cuff_model_clear_faults(struct cuff_model *m)
{
	m->leak_rate = 0;
	m->stuck_valve = false;
	m->sensor_freeze = false;
	m->frozen_valid = false;
	m->deflate_fail = false;
	m->lop_fail = false;
	m->lop_report = NAN;
	m->spike_until_ms = 0;
	m->relief_latched = false;
	m->faults &= (uint16_t)~(BFR_FAULT_LEAK | BFR_FAULT_VALVE_STUCK | BFR_FAULT_OVER_PRESSURE |
				 BFR_FAULT_DEFLATE_FAILED | BFR_FAULT_SENSOR);
}

void cuff_model_info(const struct cuff_model *m, struct cuff_model_info *out)
{
	double p = pressure_of(m, m->volume_ml);

	memset(out, 0, sizeof(*out));
	out->now_ms = m->now_ms;
	out->pressure_mmhg = p;
	out->reported_mmhg = m->reported;
	out->setpoint_mmhg = m->setpoint;
	out->target_mmhg = m->target;
	out->pulse_amplitude = m->pulse_amp;
	out->lop_mmhg = m->lop;
	out->last_lop_mmhg = m->last_lop;
	out->max_pressure_mmhg = m->lp.max_pressure_mmhg;
	out->battery_pct = m->battery;
	out->cuff_width_mm = m->lp.width_mm;
	out->status_bits = m->status;
	out->faults = m->faults;
	out->state = derive_state(m, p);
	out->supervision_timeout_ms = m->sup_timeout_ms;
	out->supervision_deflates = m->sup_deflates;
	out->identify_blinks = m->identify;
	memcpy(out->cues, m->cues, sizeof(out->cues));
	out->button_presses = m->button_presses;
}

void cuff_model_features(const struct cuff_model *m, struct bfr_features *out)
{
	memset(out, 0, sizeof(*out));
	out->cuff_width_mm = m->lp.width_mm;
	out->limb = m->limb;
	out->max_pressure_mmhg = m->lp.max_pressure_mmhg;
	out->sample_rate_hz = (uint16_t)m->rate_hz;
	out->feature_bits = BFR_FEATURE_MEASURE_LOP | BFR_FEATURE_CUE | BFR_FEATURE_IDENTIFY |
			    BFR_FEATURE_BATCHED_SAMPLES;
}

void cuff_model_status(const struct cuff_model *m, struct bfr_status *out)
{
	memset(out, 0, sizeof(*out));
	out->state = derive_state(m, pressure_of(m, m->volume_ml));
	out->battery_pct = (uint8_t)ceil(m->battery);
	out->faults = m->faults;
	out->last_lop_mmhg = m->last_lop;
	out->cuff_width_mm = m->lp.width_mm;
}
