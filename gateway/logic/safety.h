/*
 * safety.h - the per-cuff safety engine (DESIGN §4, docs/safety.md SR-xx).
 *
 * Pure and deterministic: (state, event, now_ms) in, actions out. No I/O,
 * no clock, no allocation: the caller owns the struct safety_state (one per
 * cuff) and passes an action buffer of at least SAFETY_MAX_ACTIONS. The
 * engine runs in the receive path, on every pressure sample, before anything
 * is queued for MQTT or disk; nothing here waits for anything.
 *
 * Invariants:
 *   - Every call whose sample is above the ceiling returns a DEFLATE action.
 *   - A DEFLATE action, if any, is the first action of the call (execute it
 *     before anything else); there is at most one per call.
 *   - A DEFLATE is tracked until a valid sample shows p < deflated_below_mmhg
 *     ("seen deflated", 20 mmHg); until then it is re-sent every
 *     SAFETY_DEFLATE_RESEND_MS unless the cuff reported success AND the
 *     pressure fell by SAFETY_FALLING_MMHG since the last check; after
 *     deflate_timeout_ms deflate_failed (HIGH) is raised.
 *   - RAISE / CLEAR actions are edges of a condition: a condition is raised
 *     once when it appears and cleared once when it goes; the alarm module
 *     decides what clearing means for a latched alarm.
 *   - Time never runs backwards inside the engine: a now_ms older than one
 *     already seen is treated as that newer time (safety checks still run).
 *   - An invalid event (-EINVAL) changes nothing and emits nothing.
 *
 * "Inflated" = a target > 0 is commanded, or the latest valid pressure is
 * above SAFETY_INFLATED_ABOVE_MMHG (10 mmHg, the cuff's supervision threshold).
 * A cuff found inflated by the first sample after LINK_UP, with nothing
 * commanded, is deflated: nothing on this link asked for that pressure.
 * During a LOP measurement (LOP_MEASURE until LOP_SET, a failed MEASURE_LOP
 * result or DEFLATE_CMD) full occlusion and the band are not checked, since
 * occluding is the point; the ceiling, sensor, telemetry and time limits are.
 */
#ifndef BFR_SAFETY_H
#define BFR_SAFETY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alarm.h"
#include "cuff_profile.h"
#include "limits.h"

#define SAFETY_MAX_ACTIONS 24
#define SAFETY_DEFLATE_RESEND_MS 1000u
#define SAFETY_INFLATED_ABOVE_MMHG 10.0
#define SAFETY_FALLING_MMHG 1.0
/* A reading below this is not a pressure a cuff can have: treated as a sensor fault. */
#define SAFETY_SENSOR_MIN_MMHG (-20.0)
/*
 * Frozen sensor (SR-23, docs/safety.md): while inflated, more than
 * SAFETY_FREEZE_SAMPLES consecutive valid samples whose pressure AND pulse
 * amplitude are bitwise identical to the first of the run, spanning more than
 * SAFETY_FREEZE_MS (first to last sample, engine time), are a sensor fault.
 * Fixed, not configurable: they follow from the profile (SFLOAT resolution,
 * sample rate, sample_timeout_ms), not from a prescription, and a shorter
 * window would only trade detection time for false alarms. At 50 Hz the
 * time rule binds (~150 samples); the count only binds below ~7 Hz, where
 * fewer samples are weaker evidence.
 */
#define SAFETY_FREEZE_MS 3000u
#define SAFETY_FREEZE_SAMPLES 20u
#define SAFETY_NEVER UINT64_MAX

enum safety_event_type {
	SAFETY_EV_SAMPLE = 1,   /* every decoded pressure sample */
	SAFETY_EV_TICK,         /* at (or after) safety_next_deadline() */
	SAFETY_EV_LINK_UP,      /* GATT ready: notifications enabled, control point usable */
	SAFETY_EV_LINK_DOWN,
	SAFETY_EV_INFLATE_CMD,  /* BEFORE sending SET_TARGET: may answer REFUSE */
	SAFETY_EV_DEFLATE_CMD,  /* after the caller itself sent DEFLATE (stop, pause, e-stop, rest) */
	SAFETY_EV_CP_RESULT,    /* control-point indication */
	SAFETY_EV_SESSION_START,
	SAFETY_EV_SESSION_END,
	SAFETY_EV_LOP_SET,      /* a LOP measurement result (NAN if it failed) */
	SAFETY_EV_BATTERY,
	SAFETY_EV_LOP_MEASURE,  /* BEFORE sending MEASURE_LOP: may answer REFUSE */
	SAFETY_EV_STATUS,       /* the Cuff Status characteristic (read at connect, notified) */
};

struct safety_event {
	enum safety_event_type type;
	union {
		struct {
			double pressure_mmhg; /* NAN for a sensor fault / special SFLOAT */
			double target_mmhg;   /* the cuff's own target (informational) */
			uint16_t status;      /* BFR_ST_* bits */
			/* The sample's pulse_amplitude (NAN for a special SFLOAT): the
			 * frozen-sensor rule needs it to stay identical too. */
			double pulse_mmhg;
		} sample;
		struct {
			double target_mmhg;
			bool unacked_high; /* alarm_has_unacked_high() for this cuff */
		} inflate;
		struct {
			bool unacked_high;
		} lop_measure;
		struct {
			uint8_t reason; /* enum bfr_deflate_reason */
			/* Intermittent-mode rest inside an exercise: does not start
			 * the reperfusion interval. Everything else must pass false. */
			bool rest;
		} deflate;
		struct {
			uint8_t opcode; /* enum bfr_cp_opcode */
			uint8_t result; /* enum bfr_cp_result */
		} cp_result;
		struct {
			double lop_mmhg;   /* NAN: the measurement failed */
			uint64_t age_ms;   /* 0 for a fresh result; a restored LOP's age */
			/* The max_search_mmHg MEASURE_LOP asked for: a LOP above it is
			 * impossible. NAN when not known (a restored LOP). */
			double search_ceiling_mmhg;
		} lop;
		struct {
			int pct; /* 0..100 */
		} battery;
		struct {
			uint8_t state;      /* enum bfr_cuff_state, 0..5 */
			uint16_t faults;    /* BFR_FAULT_* */
			int battery_pct;    /* 0..100 */
		} status;
	};
};

enum safety_action_type {
	SAFETY_ACT_DEFLATE = 1, /* write DEFLATE(deflate_reason) to the control point now */
	SAFETY_ACT_RAISE,       /* alarm_raise(cuff, session, code, message, &values) */
	SAFETY_ACT_CLEAR,       /* alarm_condition_cleared(cuff, code) */
	SAFETY_ACT_REFUSE,      /* INFLATE_CMD / LOP_MEASURE refused: send nothing */
	/*
	 * A safety DEFLATE the cuff neither confirmed nor acted on (SR-24): stop
	 * the supervision keepalives so the cuff's own fail-safe deflates it
	 * (cuff_link_release: and drop the link if the control channel is
	 * dead). Once per unconfirmed DEFLATE.
	 */
	SAFETY_ACT_RELEASE,
};

struct safety_action {
	enum safety_action_type type;
	enum alarm_code code;                   /* RAISE, CLEAR */
	enum alarm_priority priority;           /* RAISE (from the code table) */
	enum alarm_kind kind;                   /* RAISE */
	enum bfr_deflate_reason deflate_reason; /* DEFLATE */
	/* DEFLATE: the condition that asked for it (ALARM_CODE_COUNT: none,
	 * e.g. a cuff found inflated at connect). */
	enum alarm_code cause;
	enum limits_refusal refusal;            /* REFUSE */
	const char *message;                    /* RAISE, REFUSE: static string */
	struct alarm_values values;             /* RAISE, REFUSE (NAN where n/a) */
};

/*
 * Per-cuff state. The caller allocates it and never touches the fields;
 * they are here only so that no allocation is needed. Use the queries below.
 */
struct safety_state {
	struct limits lim;
	uint64_t now_ms;
	bool link_up;
	uint64_t link_up_ms;
	bool have_pressure;
	double pressure_mmhg;
	uint16_t status;
	uint64_t last_sample_ms;
	bool sensor_bad;
	bool link_fresh;
	bool measuring_lop;
	double target_mmhg;
	bool inflated;
	uint64_t inflated_since_ms;
	bool reperfusion_due;
	bool down;               /* seen deflated (< deflated_below) with no target */
	uint64_t deflated_at_ms; /* when it was last seen so: reperfusion starts (SR-08) */
	bool in_session;
	uint64_t session_inflated_ms;
	uint64_t accounted_at_ms;
	double lop_mmhg;
	int64_t lop_at_ms; /* may lie before the clock's epoch (a restored LOP) */
	int battery_pct;
	bool battery_low_bit;  /* the cuff's own battery-low status bit */
	bool fault_status;     /* Cuff Status reports a fault */
	bool relief_tripped;   /* the samples' relief-valve-tripped status bit */
	bool band_armed;
	uint64_t occlusion_since_ms;
	uint64_t band_high_since_ms;
	uint64_t band_low_since_ms;
	uint64_t leak_since_ms;
	bool deflate_pending;
	uint8_t deflate_reason; /* of the DEFLATE being tracked; re-sends keep it */
	uint64_t deflate_first_ms;
	uint64_t deflate_check_ms;
	double deflate_check_mmhg;
	bool deflate_ok_seen;
	bool released; /* SR-24: keepalives stopped for the tracked DEFLATE */
	bool deflate_answered;     /* a DEFLATE of this episode got a success result */
	double deflate_first_mmhg; /* the pressure when the episode began */
	uint8_t deflate_cause; /* enum alarm_code of the tracked DEFLATE */
	/* Frozen-sensor run: identical valid samples while inflated (0 = none). */
	uint32_t freeze_n;
	uint64_t freeze_since_ms;
	double freeze_p;
	double freeze_pulse;
	uint32_t present; /* bit (1u << alarm_code) per condition present */
};

/* Starts a cuff: link down, not inflated, no LOP, battery unknown. -EINVAL if limits invalid. */
int safety_init(struct safety_state *s, const struct limits *lim, uint64_t now_ms);

/*
 * Feeds one event. acts must hold cap >= SAFETY_MAX_ACTIONS entries;
 * *n_out gets the number written. -EINVAL for NULL pointers, a small cap,
 * an unknown event type, or an event field outside its range (battery
 * outside 0..100, deflate reason > 2, result > 5, a LOP measured in the
 * future); nothing changes then. A NAN or implausible pressure is not an
 * invalid event: it is the sensor-fault condition (so is a frozen reading,
 * see SAFETY_FREEZE_MS).
 */
int safety_handle(struct safety_state *s, const struct safety_event *ev, uint64_t now_ms,
		  struct safety_action *acts, size_t cap, size_t *n_out);

/*
 * Whether a NEW inflation may start now: link up, no DEFLATE awaiting
 * confirmation, no sensor fault or other deflating condition, no
 * unacknowledged HIGH alarm (the caller asks the alarm table), the cuff
 * reporting no fault (SR-25), its battery known (SR-16) and neither below
 * battery_min_pct nor flagged low by the cuff, session total not used up
 * (>= session_total_s), and, after a deflation that was not a rest,
 * min_reperfusion_s since the cuff was seen deflated (< deflated_below_mmhg
 * with no target: the one definition of "reperfusion started", SR-08;
 * exactly min is allowed). 0 or -EPERM with *reason.
 */
int safety_may_inflate(const struct safety_state *s, uint64_t now_ms, bool unacked_high,
		       enum limits_refusal *reason);

/*
 * When SR-08 lets the cuff inflate again (monotonic ms): 0 when no
 * reperfusion is due, SAFETY_NEVER while the cuff has not been seen down
 * yet (the wait has not started). Only reperfusion: the other refusals have
 * no time at which they end.
 */
uint64_t safety_reperfusion_ends(const struct safety_state *s);

/* may_inflate (for a new inflation) plus limits_check_target() with the cuff's LOP. */
int safety_check_target(const struct safety_state *s, uint64_t now_ms, double target_mmhg,
			bool unacked_high, enum limits_refusal *reason);

/* Earliest time the caller must send SAFETY_EV_TICK; SAFETY_NEVER if none. */
uint64_t safety_next_deadline(const struct safety_state *s);

bool safety_inflated(const struct safety_state *s);
bool safety_condition_present(const struct safety_state *s, enum alarm_code code);
bool safety_deflate_pending(const struct safety_state *s);
/* A DEFLATE with at least this reason (enum bfr_deflate_reason) is tracked:
 * the engine re-sends it while the cuff does not deflate. */
bool safety_deflate_covers(const struct safety_state *s, uint8_t reason);
/* Cumulative inflated time of the current session, up to the last event. */
uint64_t safety_session_inflated_ms(const struct safety_state *s);
/* The LOP the engine uses (NAN if none) and its age in s at now_ms (-1 if none). */
double safety_lop(const struct safety_state *s, uint64_t now_ms, int64_t *age_s);

const char *safety_event_name(enum safety_event_type t);
const char *safety_action_name(enum safety_action_type t);

#endif
