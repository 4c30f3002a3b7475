/* limits.c - see limits.h. */
#include "limits.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

enum field_type { F_DOUBLE, F_U32 };

/*
 * tighter_is_lower: whether a smaller value is the safer one. lo/hi are the
 * compiled bounds; hi (or lo, for fields where higher is safer) equals the
 * loosest value any limb default uses, so no override can pass it.
 * The sanity floors (e.g. a ceiling of at least 30 mmHg) keep a "tightened"
 * limit from becoming a meaningless one that alarms all the time.
 */
struct field_desc {
	const char *name;
	size_t offset;
	enum field_type type;
	bool tighter_is_lower;
	double lo;
	double hi;
};

#define FD(n, member, t, lower, lo_, hi_) \
	{ n, offsetof(struct limits, member), t, lower, lo_, hi_ }

static const struct field_desc fields[LIMITS_F_COUNT] = {
	[LIMITS_F_MAX_PRESSURE] = FD("max_pressure_mmHg", max_pressure_mmhg, F_DOUBLE, true, 30,
				     LIMITS_ABS_MAX_PRESSURE_MMHG),
	[LIMITS_F_MAX_PCT_LOP] = FD("max_pct_lop", max_pct_lop, F_DOUBLE, true, 1,
				    LIMITS_ABS_MAX_PCT_LOP),
	[LIMITS_F_FULL_OCCLUSION_PCT] = FD("full_occlusion_pct", full_occlusion_pct, F_DOUBLE,
					   true, 50, 100),
	[LIMITS_F_FULL_OCCLUSION_MS] = FD("full_occlusion_ms", full_occlusion_ms, F_U32, true, 0,
					  2000),
	[LIMITS_F_BAND_MMHG] = FD("band_mmHg", band_mmhg, F_DOUBLE, true, 1, 15),
	[LIMITS_F_BAND_MS] = FD("band_ms", band_ms, F_U32, true, 0, 1000),
	[LIMITS_F_LEAK_MMHG] = FD("leak_mmHg", leak_mmhg, F_DOUBLE, true, 1, 15),
	[LIMITS_F_LEAK_MS] = FD("leak_ms", leak_ms, F_U32, true, 0, 7000),
	[LIMITS_F_MAX_INFLATION_S] = FD("max_inflation_s", max_inflation_s, F_U32, true, 1,
					LIMITS_ABS_MAX_INFLATION_S),
	[LIMITS_F_INFLATION_WARN_PCT] = FD("inflation_warn_pct", inflation_warn_pct, F_U32, true,
					   1, 80),
	[LIMITS_F_SESSION_TOTAL_S] = FD("session_total_s", session_total_s, F_U32, true, 1,
					LIMITS_ABS_SESSION_TOTAL_S),
	[LIMITS_F_MIN_REPERFUSION_S] = FD("min_reperfusion_s", min_reperfusion_s, F_U32, false,
					  LIMITS_ABS_MIN_REPERFUSION_S, 3600),
	[LIMITS_F_SAMPLE_TIMEOUT_MS] = FD("sample_timeout_ms", sample_timeout_ms, F_U32, true, 50,
					  500),
	[LIMITS_F_DEFLATE_TIMEOUT_MS] = FD("deflate_timeout_ms", deflate_timeout_ms, F_U32, true,
					   500, 5000),
	[LIMITS_F_DEFLATED_BELOW_MMHG] = FD("deflated_below_mmHg", deflated_below_mmhg, F_DOUBLE,
					    true, 5, 20),
	[LIMITS_F_LOP_MIN_MMHG] = FD("lop_min_mmHg", lop_min_mmhg, F_DOUBLE, false,
				     LIMITS_ABS_LOP_MIN_MMHG, LIMITS_ABS_LOP_MAX_MMHG),
	[LIMITS_F_LOP_MAX_MMHG] = FD("lop_max_mmHg", lop_max_mmhg, F_DOUBLE, true,
				     LIMITS_ABS_LOP_MIN_MMHG, LIMITS_ABS_LOP_MAX_MMHG),
	[LIMITS_F_LOP_MAX_AGE_S] = FD("lop_max_age_s", lop_max_age_s, F_U32, true, 60,
				      LIMITS_DEFAULT_LOP_MAX_AGE_S),
	[LIMITS_F_BATTERY_LOW_PCT] = FD("battery_low_pct", battery_low_pct, F_U32, false, 20,
					100),
	[LIMITS_F_BATTERY_MIN_PCT] = FD("battery_min_pct", battery_min_pct, F_U32, false, 10,
					100),
};

static const char *const refusal_names[LIMITS_REFUSAL_COUNT] = {
	[LIMITS_OK] = "ok",
	[LIMITS_REFUSE_PCT_INVALID] = "pct_invalid",
	[LIMITS_REFUSE_PCT_ABOVE_MAX] = "pct_above_max",
	[LIMITS_REFUSE_TARGET_INVALID] = "target_invalid",
	[LIMITS_REFUSE_TARGET_ABOVE_CEILING] = "target_above_ceiling",
	[LIMITS_REFUSE_TARGET_ABOVE_PCT] = "target_above_pct_lop",
	[LIMITS_REFUSE_LOP_MISSING] = "lop_missing",
	[LIMITS_REFUSE_LOP_OUT_OF_RANGE] = "lop_out_of_range",
	[LIMITS_REFUSE_LOP_TOO_OLD] = "lop_too_old",
	[LIMITS_REFUSE_LINK_DOWN] = "link_down",
	[LIMITS_REFUSE_DEFLATING] = "deflating",
	[LIMITS_REFUSE_REPERFUSION] = "reperfusion",
	[LIMITS_REFUSE_SESSION_TOTAL] = "session_total",
	[LIMITS_REFUSE_UNACKED_HIGH] = "unacknowledged_high_alarm",
	[LIMITS_REFUSE_BATTERY] = "battery",
	[LIMITS_REFUSE_SENSOR_FAULT] = "sensor_fault",
	[LIMITS_REFUSE_SAFETY_CONDITION] = "safety_condition",
	[LIMITS_REFUSE_BATTERY_UNKNOWN] = "battery_unknown",
	[LIMITS_REFUSE_CUFF_FAULT] = "cuff_fault",
};

static double field_get(const struct limits *l, const struct field_desc *fd)
{
	const char *p = (const char *)l + fd->offset;

	if (fd->type == F_DOUBLE)
		return *(const double *)(const void *)p;
	return *(const uint32_t *)(const void *)p;
}

static void field_set(struct limits *l, const struct field_desc *fd, double v)
{
	char *p = (char *)l + fd->offset;

	if (fd->type == F_DOUBLE)
		*(double *)(void *)p = v;
	else
		*(uint32_t *)(void *)p = (uint32_t)v;
}

int limits_defaults(enum bfr_limb limb, struct limits *out)
{
	struct limits l = {
		.limb = limb,
		.full_occlusion_pct = 100,
		.full_occlusion_ms = 2000,
		.band_mmhg = 15,
		.band_ms = 1000,
		.leak_mmhg = 15,
		.leak_ms = 7000,
		.max_inflation_s = 600,
		.inflation_warn_pct = 80,
		.min_reperfusion_s = 60,
		.sample_timeout_ms = 500,
		.deflate_timeout_ms = 5000,
		.deflated_below_mmhg = 20,
		.lop_min_mmhg = LIMITS_ABS_LOP_MIN_MMHG,
		.lop_max_mmhg = LIMITS_ABS_LOP_MAX_MMHG,
		.lop_max_age_s = LIMITS_DEFAULT_LOP_MAX_AGE_S,
		.battery_low_pct = 20,
		.battery_min_pct = 10,
	};

	if (!out)
		return -EINVAL;
	switch (limb) {
	case BFR_LIMB_LEG:
		l.max_pressure_mmhg = 250;
		l.max_pct_lop = 80;
		l.session_total_s = 1200;
		break;
	case BFR_LIMB_ARM:
		l.max_pressure_mmhg = 200;
		l.max_pct_lop = 60;
		l.session_total_s = 900;
		break;
	default:
		return -EINVAL;
	}
	*out = l;
	return 0;
}

static bool in_bounds(const struct field_desc *fd, double v)
{
	if (!isfinite(v) || v < fd->lo || v > fd->hi)
		return false;
	if (fd->type == F_U32 && v != floor(v))
		return false;
	return true;
}

int limits_validate(const struct limits *l)
{
	struct limits def;

	if (!l || limits_defaults(l->limb, &def) < 0)
		return -EINVAL;
	for (int i = 0; i < LIMITS_F_COUNT; i++) {
		const struct field_desc *fd = &fields[i];
		double v = field_get(l, fd), d = field_get(&def, fd);

		if (!in_bounds(fd, v))
			return -EINVAL;
		/* The limb default is a bound too: an arm never gets leg limits. */
		if (fd->tighter_is_lower ? v > d : v < d)
			return -EINVAL;
	}
	if (l->lop_min_mmhg > l->lop_max_mmhg || l->battery_min_pct > l->battery_low_pct)
		return -EINVAL;
	return 0;
}

int limits_override(struct limits *l, enum limits_field field, double value,
		    enum limits_field *bad_field)
{
	const struct field_desc *fd;
	struct limits next;
	double cur;

	if (!l)
		return -EINVAL;
	if ((int)field < 0 || field >= LIMITS_F_COUNT)
		return -ERANGE;
	fd = &fields[field];
	cur = field_get(l, fd);
	if (!in_bounds(fd, value))
		goto refuse;
	if (fd->tighter_is_lower ? value > cur : value < cur)
		goto refuse;
	next = *l;
	field_set(&next, fd, value);
	/* A tightened pair can still contradict itself (lop_min above lop_max). */
	if (limits_validate(&next) < 0)
		goto refuse;
	*l = next;
	return 0;
refuse:
	if (bad_field)
		*bad_field = field;
	return -EINVAL;
}

int limits_override_by_name(struct limits *l, const char *name, double value,
			    enum limits_field *bad_field)
{
	if (!l || !name)
		return -EINVAL;
	for (int i = 0; i < LIMITS_F_COUNT; i++) {
		if (strcmp(fields[i].name, name) == 0)
			return limits_override(l, (enum limits_field)i, value, bad_field);
	}
	return -ENOENT;
}

static int refuse(enum limits_refusal why, enum limits_refusal *reason)
{
	if (reason)
		*reason = why;
	return -EPERM;
}

int limits_check_lop(const struct limits *l, double lop_mmhg, int64_t lop_age_s,
		     enum limits_refusal *reason)
{
	if (!l)
		return -EINVAL;
	if (isnan(lop_mmhg))
		return refuse(LIMITS_REFUSE_LOP_MISSING, reason);
	if (!(lop_mmhg >= l->lop_min_mmhg && lop_mmhg <= l->lop_max_mmhg))
		return refuse(LIMITS_REFUSE_LOP_OUT_OF_RANGE, reason);
	/* A measurement from the future means a clock mix-up: do not trust it. */
	if (lop_age_s < 0 || lop_age_s > (int64_t)l->lop_max_age_s)
		return refuse(LIMITS_REFUSE_LOP_TOO_OLD, reason);
	return 0;
}

int limits_check_target(const struct limits *l, double lop_mmhg, int64_t lop_age_s,
			double target_mmhg, enum limits_refusal *reason)
{
	int r;

	if (!l)
		return -EINVAL;
	if (!isfinite(target_mmhg) || target_mmhg <= 0)
		return refuse(LIMITS_REFUSE_TARGET_INVALID, reason);
	r = limits_check_lop(l, lop_mmhg, lop_age_s, reason);
	if (r < 0)
		return r;
	if (target_mmhg > l->max_pressure_mmhg)
		return refuse(LIMITS_REFUSE_TARGET_ABOVE_CEILING, reason);
	/* The tolerance only absorbs pct x LOP rounding, far below 0.1 mmHg SFLOAT resolution. */
	if (target_mmhg > l->max_pct_lop / 100.0 * lop_mmhg + 1e-6)
		return refuse(LIMITS_REFUSE_TARGET_ABOVE_PCT, reason);
	return 0;
}

int limits_check_prescription(const struct limits *l, double lop_mmhg, int64_t lop_age_s,
			      double pct_lop, double *target_out, enum limits_refusal *reason)
{
	double target;
	int r;

	if (!l || !target_out)
		return -EINVAL;
	if (!isfinite(pct_lop) || pct_lop <= 0)
		return refuse(LIMITS_REFUSE_PCT_INVALID, reason);
	r = limits_check_lop(l, lop_mmhg, lop_age_s, reason);
	if (r < 0)
		return r;
	if (pct_lop > l->max_pct_lop)
		return refuse(LIMITS_REFUSE_PCT_ABOVE_MAX, reason);
	target = pct_lop / 100.0 * lop_mmhg;
	if (target > l->max_pressure_mmhg)
		return refuse(LIMITS_REFUSE_TARGET_ABOVE_CEILING, reason);
	*target_out = target;
	return 0;
}

const char *limits_field_name(enum limits_field field)
{
	if ((int)field < 0 || field >= LIMITS_F_COUNT)
		return "unknown";
	return fields[field].name;
}

const char *limits_refusal_name(enum limits_refusal reason)
{
	if ((int)reason < 0 || reason >= LIMITS_REFUSAL_COUNT)
		return "unknown";
	return refusal_names[reason];
}
