/*
 * figures.h - per-set, per-cuff pressure statistics, computed while streaming.
 *
 * A set's figures are the ones published BFR device comparisons use: mean,
 * min and max pressure, the share of time within +-10 % and +-5 % of the
 * target, the peak pressure as % of LOP and the time under pressure.
 *
 * Invariants: constant memory (no allocation, no sample buffer); pure (time
 * comes in with each sample as monotonic milliseconds). Time weighting is a
 * zero-order hold: each sample's value holds until the next sample or until
 * the end time given to figures_result(), but never longer than
 * FIGURES_MAX_HOLD_MS, so a telemetry gap is not counted as time "within
 * band" (it is simply not covered; covered_s says how much was). A sample
 * that is not finite or goes back in time is rejected and changes nothing.
 */
#ifndef BFR_FIGURES_H
#define BFR_FIGURES_H

#include <stdint.h>

/* Longest a single sample may stand for (10x the nominal 10 Hz period). */
#define FIGURES_MAX_HOLD_MS 1000u
/* At or above this a cuff counts as "under pressure" (DESIGN: deflated < 20). */
#define FIGURES_PRESSURE_MMHG 20.0

struct figures_acc {
	double target_mmHg;
	double lop_mmHg;
	uint32_t samples;
	uint64_t first_ms;
	uint64_t last_ms;
	double last_mmHg;
	int open;             /* the last sample's hold runs until the next one */
	double min_mmHg;
	double max_mmHg;
	/* Accumulated over closed hold intervals (all ms-weighted). */
	double weighted_sum;  /* sum of p * dt */
	uint64_t covered_ms;
	uint64_t within10_ms;
	uint64_t within5_ms;
	uint64_t pressure_ms; /* time with p >= FIGURES_PRESSURE_MMHG */
};

struct set_figures {
	uint32_t samples;
	double mean_mmHg; /* time-weighted; the plain value when only one sample */
	double min_mmHg;
	double max_mmHg;
	double pct_within_10; /* % of covered time with |p - target| <= 10 % of target */
	double pct_within_5;
	double peak_pct_lop;  /* max / LOP * 100; 0 when the LOP is unknown */
	double time_under_pressure_s;
	double covered_s;     /* time the samples stand for */
	double target_mmHg;
};

/* target_mmHg > 0; lop_mmHg may be 0 (unknown). -EINVAL on bad values. */
int figures_init(struct figures_acc *f, double target_mmHg, double lop_mmHg);

/* Adds one sample taken at t_ms. -EINVAL (nothing changed) when p is not
 * finite or negative, or t_ms is before the previous sample. */
int figures_add(struct figures_acc *f, uint64_t t_ms, double p_mmHg);

/* Closes the last sample's hold at t_ms (e.g. the set is paused): the time
 * until the next sample is not covered. -EINVAL when t_ms is before the
 * last sample. */
int figures_gap(struct figures_acc *f, uint64_t t_ms);

/* Figures as if the set ended at end_ms (>= last sample; an earlier end_ms
 * closes nothing more). -ENODATA when there was no sample. */
int figures_result(const struct figures_acc *f, uint64_t end_ms, struct set_figures *out);

#endif
