/* figures.c - see figures.h. */
#include "figures.h"

#include <errno.h>
#include <math.h>
#include <string.h>

int figures_init(struct figures_acc *f, double target_mmHg, double lop_mmHg)
{
	if (!f || !isfinite(target_mmHg) || target_mmHg <= 0 || !isfinite(lop_mmHg) ||
	    lop_mmHg < 0)
		return -EINVAL;
	memset(f, 0, sizeof(*f));
	f->target_mmHg = target_mmHg;
	f->lop_mmHg = lop_mmHg;
	return 0;
}

/* Credits the held value p for dt ms (already capped) to every bucket. */
static void credit(struct figures_acc *f, double p, uint64_t dt)
{
	double dev = fabs(p - f->target_mmHg);

	f->weighted_sum += p * (double)dt;
	f->covered_ms += dt;
	/* Bands are inclusive: exactly 10 % off still counts as within 10 %. */
	if (dev <= 0.10 * f->target_mmHg)
		f->within10_ms += dt;
	if (dev <= 0.05 * f->target_mmHg)
		f->within5_ms += dt;
	if (p >= FIGURES_PRESSURE_MMHG)
		f->pressure_ms += dt;
}

static uint64_t hold(uint64_t from, uint64_t to)
{
	uint64_t dt = to - from;

	return dt > FIGURES_MAX_HOLD_MS ? FIGURES_MAX_HOLD_MS : dt;
}

int figures_add(struct figures_acc *f, uint64_t t_ms, double p_mmHg)
{
	if (!f || !isfinite(p_mmHg) || p_mmHg < 0)
		return -EINVAL;
	if (f->samples > 0 && t_ms < f->last_ms)
		return -EINVAL;

	if (f->samples == 0) {
		f->first_ms = t_ms;
		f->min_mmHg = p_mmHg;
		f->max_mmHg = p_mmHg;
	} else {
		if (f->open)
			credit(f, f->last_mmHg, hold(f->last_ms, t_ms));
		if (p_mmHg < f->min_mmHg)
			f->min_mmHg = p_mmHg;
		if (p_mmHg > f->max_mmHg)
			f->max_mmHg = p_mmHg;
	}
	f->samples++;
	f->last_ms = t_ms;
	f->last_mmHg = p_mmHg;
	f->open = 1;
	return 0;
}

int figures_gap(struct figures_acc *f, uint64_t t_ms)
{
	if (!f || (f->samples > 0 && t_ms < f->last_ms))
		return -EINVAL;
	if (f->samples > 0 && f->open) {
		credit(f, f->last_mmHg, hold(f->last_ms, t_ms));
		f->last_ms = t_ms;
		f->open = 0;
	}
	return 0;
}

int figures_result(const struct figures_acc *f, uint64_t end_ms, struct set_figures *out)
{
	struct figures_acc closed;
	struct set_figures r;

	if (!f || !out)
		return -EINVAL;
	if (f->samples == 0)
		return -ENODATA;

	/* Work on a copy so the running accumulator stays untouched. */
	closed = *f;
	if (closed.open && end_ms > closed.last_ms)
		credit(&closed, closed.last_mmHg, hold(closed.last_ms, end_ms));

	memset(&r, 0, sizeof(r));
	r.samples = closed.samples;
	r.min_mmHg = closed.min_mmHg;
	r.max_mmHg = closed.max_mmHg;
	r.target_mmHg = closed.target_mmHg;
	r.covered_s = (double)closed.covered_ms / 1000.0;
	r.time_under_pressure_s = (double)closed.pressure_ms / 1000.0;
	if (closed.covered_ms > 0) {
		r.mean_mmHg = closed.weighted_sum / (double)closed.covered_ms;
		r.pct_within_10 = 100.0 * (double)closed.within10_ms / (double)closed.covered_ms;
		r.pct_within_5 = 100.0 * (double)closed.within5_ms / (double)closed.covered_ms;
	} else {
		/* A single instant: no time to weigh, so the sample speaks alone. */
		double dev = fabs(closed.last_mmHg - closed.target_mmHg);

		r.mean_mmHg = closed.last_mmHg;
		r.pct_within_10 = dev <= 0.10 * closed.target_mmHg ? 100.0 : 0.0;
		r.pct_within_5 = dev <= 0.05 * closed.target_mmHg ? 100.0 : 0.0;
	}
	if (closed.lop_mmHg > 0)
		r.peak_pct_lop = 100.0 * closed.max_mmHg / closed.lop_mmHg;
	*out = r;
	return 0;
}
