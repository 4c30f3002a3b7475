/*
 * limits.h - every safety limit of one cuff (DESIGN §4, docs/safety.md).
 *
 * A struct limits starts from the compiled per-limb defaults
 * (limits_defaults) and can then only be tightened: limits_override()
 * refuses any value that loosens the current value or leaves the compiled
 * absolute bounds, so applying gateway-wide limb limits, then per-cuff
 * limits, then a remote request can never make a cuff less safe than the
 * defaults. limits_check_prescription() is the one place a target pressure
 * is derived from % LOP; the session module and the safety engine both use
 * it, so a prescription cannot be accepted by one and refused by the other.
 *
 * Pure: no I/O, no allocation, no clock.
 */
#ifndef BFR_LIMITS_H
#define BFR_LIMITS_H

#include <stdbool.h>
#include <stdint.h>

#include "cuff_profile.h" /* enum bfr_limb */

/* Compiled absolute bounds: no configuration can go beyond these. */
#define LIMITS_ABS_MAX_PRESSURE_MMHG 300.0
#define LIMITS_ABS_MAX_PCT_LOP 80.0
#define LIMITS_ABS_MAX_INFLATION_S 600u
#define LIMITS_ABS_SESSION_TOTAL_S 1200u
#define LIMITS_ABS_MIN_REPERFUSION_S 60u
#define LIMITS_ABS_LOP_MIN_MMHG 50.0
#define LIMITS_ABS_LOP_MAX_MMHG 350.0
#define LIMITS_DEFAULT_LOP_MAX_AGE_S 86400u /* 24 h: LOP drifts with posture and days */

/*
 * Every limit of DESIGN §4. Pressures in mmHg, percentages 0..100.
 * Boundary semantics follow the table literally: a condition "> X" is not
 * met at exactly X.
 */
struct limits {
	enum bfr_limb limb;
	double max_pressure_mmhg;     /* ceiling: p > this -> DEFLATE + HIGH */
	double max_pct_lop;           /* prescription: pct > this refused */
	double full_occlusion_pct;    /* p >= this % of LOP ... */
	uint32_t full_occlusion_ms;   /* ... for > this -> DEFLATE + HIGH */
	double band_mmhg;             /* |p - target| > this ... */
	uint32_t band_ms;             /* ... for > this -> MEDIUM */
	double leak_mmhg;             /* target - p > this with pump on ... */
	uint32_t leak_ms;             /* ... for > this -> MEDIUM */
	uint32_t max_inflation_s;     /* continuous inflation > this -> DEFLATE + HIGH */
	uint32_t inflation_warn_pct;  /* continuous inflation >= this % of max -> LOW */
	uint32_t session_total_s;     /* cumulative > this -> MEDIUM, no new inflation */
	uint32_t min_reperfusion_s;   /* deflated < this -> inflation refused */
	uint32_t sample_timeout_ms;   /* no sample for > this while inflated -> HIGH */
	uint32_t deflate_timeout_ms;  /* not deflated within this of DEFLATE -> HIGH */
	double deflated_below_mmhg;   /* "seen deflated" means p < this */
	double lop_min_mmhg;          /* valid LOP range, inclusive */
	double lop_max_mmhg;
	uint32_t lop_max_age_s;       /* LOP older than this refused */
	uint32_t battery_low_pct;     /* battery < this -> LOW */
	uint32_t battery_min_pct;     /* battery < this -> no new exercise (MEDIUM) */
};

/* Names of the overridable fields; config keys and remote requests use them. */
enum limits_field {
	LIMITS_F_MAX_PRESSURE = 0,
	LIMITS_F_MAX_PCT_LOP,
	LIMITS_F_FULL_OCCLUSION_PCT,
	LIMITS_F_FULL_OCCLUSION_MS,
	LIMITS_F_BAND_MMHG,
	LIMITS_F_BAND_MS,
	LIMITS_F_LEAK_MMHG,
	LIMITS_F_LEAK_MS,
	LIMITS_F_MAX_INFLATION_S,
	LIMITS_F_INFLATION_WARN_PCT,
	LIMITS_F_SESSION_TOTAL_S,
	LIMITS_F_MIN_REPERFUSION_S,
	LIMITS_F_SAMPLE_TIMEOUT_MS,
	LIMITS_F_DEFLATE_TIMEOUT_MS,
	LIMITS_F_DEFLATED_BELOW_MMHG,
	LIMITS_F_LOP_MIN_MMHG,
	LIMITS_F_LOP_MAX_MMHG,
	LIMITS_F_LOP_MAX_AGE_S,
	LIMITS_F_BATTERY_LOW_PCT,
	LIMITS_F_BATTERY_MIN_PCT,
	LIMITS_F_COUNT,
};

/*
 * Why an inflation or prescription is refused. Shared by limits and the
 * safety engine; limits_refusal_name() gives the stable snake_case string
 * used in MQTT replies and session events.
 */
enum limits_refusal {
	LIMITS_OK = 0,
	LIMITS_REFUSE_PCT_INVALID,         /* pct not a finite number > 0 */
	LIMITS_REFUSE_PCT_ABOVE_MAX,       /* pct > max_pct_lop */
	LIMITS_REFUSE_TARGET_INVALID,      /* target not a finite number > 0 */
	LIMITS_REFUSE_TARGET_ABOVE_CEILING,/* target > max_pressure_mmhg */
	LIMITS_REFUSE_TARGET_ABOVE_PCT,    /* target > max_pct_lop x LOP */
	LIMITS_REFUSE_LOP_MISSING,         /* no LOP measured (NAN) */
	LIMITS_REFUSE_LOP_OUT_OF_RANGE,    /* LOP outside lop_min..lop_max */
	LIMITS_REFUSE_LOP_TOO_OLD,         /* age > lop_max_age_s, or from the future */
	LIMITS_REFUSE_LINK_DOWN,           /* cuff not connected */
	LIMITS_REFUSE_DEFLATING,           /* a DEFLATE is not yet confirmed */
	LIMITS_REFUSE_REPERFUSION,         /* deflated < min_reperfusion_s ago */
	LIMITS_REFUSE_SESSION_TOTAL,       /* session inflation total used up */
	LIMITS_REFUSE_UNACKED_HIGH,        /* a HIGH alarm awaits acknowledgement */
	LIMITS_REFUSE_BATTERY,             /* battery < battery_min_pct */
	LIMITS_REFUSE_SENSOR_FAULT,        /* pressure sensor faulty */
	LIMITS_REFUSE_SAFETY_CONDITION,    /* a deflating safety condition is present */
	LIMITS_REFUSE_BATTERY_UNKNOWN,     /* the cuff's battery level is not known yet */
	LIMITS_REFUSE_CUFF_FAULT,          /* the cuff reports a fault (status) */
	LIMITS_REFUSAL_COUNT,
};

/* Per-limb defaults (leg: 250 mmHg / 80 %, arm: 200 mmHg / 60 %; §4). */
int limits_defaults(enum bfr_limb limb, struct limits *out);

/*
 * 0 if every field is within the compiled bounds, no looser than its limb
 * default, and consistent (lop_min <= lop_max, battery_min <= battery_low);
 * else -EINVAL.
 */
int limits_validate(const struct limits *l);

/*
 * Sets one field to value if that tightens (or keeps) it and stays within
 * the compiled bounds. -EINVAL if value is not finite, not a whole number
 * for an integer field, loosens the current value or is outside the bounds;
 * -ERANGE for an unknown field. *bad_field (may be NULL) names the field
 * refused. *l is unchanged on failure.
 */
int limits_override(struct limits *l, enum limits_field field, double value,
		    enum limits_field *bad_field);
/* Same, by config/API name ("max_pressure_mmHg", ...); -ENOENT for an unknown name. */
int limits_override_by_name(struct limits *l, const char *name, double value,
			    enum limits_field *bad_field);

/*
 * The prescription check of §4: target = pct_lop / 100 x lop_mmhg.
 * Refused when pct is not > 0 or > max_pct_lop, when the LOP is NAN
 * (missing), outside lop_min..lop_max, older than lop_max_age_s (age exactly
 * lop_max_age_s is accepted; a negative age is refused), or when the target
 * would exceed the ceiling. Returns 0 and sets *target_out, or -EPERM and
 * sets *reason (if not NULL) with *target_out untouched; -EINVAL for NULL
 * limits/target_out.
 */
int limits_check_prescription(const struct limits *l, double lop_mmhg, int64_t lop_age_s,
			      double pct_lop, double *target_out, enum limits_refusal *reason);

/*
 * Checks an absolute target already derived (e.g. a stepped cycle-mode
 * pressure) against the same rules: LOP valid, target <= max_pct_lop x LOP
 * (1e-6 mmHg tolerance for rounding), target <= ceiling. 0 or -EPERM with *reason.
 */
int limits_check_target(const struct limits *l, double lop_mmhg, int64_t lop_age_s,
			double target_mmhg, enum limits_refusal *reason);

/* Checks only the LOP itself (measured, in range, fresh). 0 or -EPERM with *reason. */
int limits_check_lop(const struct limits *l, double lop_mmhg, int64_t lop_age_s,
		     enum limits_refusal *reason);

const char *limits_field_name(enum limits_field field);
const char *limits_refusal_name(enum limits_refusal reason);

#endif
