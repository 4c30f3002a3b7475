/* session.c - see session.h. */
#include "session.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every cuff a plan can name: per-cuff LOPs live here, not per exercise. */
#define MAX_PLAN_CUFFS (SESSION_MAX_EXERCISES * SESSION_MAX_CUFFS)
/*
 * Output room: one deadline step emits at most STEP_ITEMS items (end of a
 * bilateral set: 2 cues, 2 deflates, 1 phase event), an input's own work at
 * most INPUT_ITEMS. Deadlines only run while RESERVE_ITEMS are free, so the
 * input after a complete catch-up, and the catch-up after it, always fit.
 */
#define STEP_ITEMS 8
#define INPUT_ITEMS 16
#define RESERVE_ITEMS (STEP_ITEMS + INPUT_ITEMS)
_Static_assert(2 * RESERVE_ITEMS <= SESSION_OUTPUT_MAX, "session output too small");

enum fig_state { FIG_NONE = 0, FIG_DONE, FIG_NODATA };

struct plan_cuff {
	char id[SESSION_ID_BUF];
	double last_mmHg; /* latest sample, seeds a set's figures */
	bool have_sample;
	double lop_mmHg;
	bool lop_valid;
	bool lop_pending;
};

struct session {
	char id[SESSION_ID_BUF];
	struct session_plan plan;
	struct session_config cfg;
	struct session_output *out; /* of the call in progress */
	bool deflate_for_rest; /* the DEFLATEs being emitted are for a rest */

	struct plan_cuff cuffs[MAX_PLAN_CUFFS];
	unsigned n_cuffs;

	enum session_phase phase;
	int ex;        /* current exercise, -1 before the first */
	unsigned set;  /* 0-based current set (cycle) */
	unsigned rep;  /* reps cued in this set */
	uint32_t seq;
	bool have_now;
	uint64_t last_now;

	bool timed;
	uint64_t deadline;
	/* Set phase: cue k (k even: rep-up of rep k/2+1, odd: rep-down) falls at
	 * set_origin + offset(k); the origin moves on resume so the cues keep
	 * their place in the set. */
	uint64_t set_origin;
	unsigned cue_index;

	/* Cuffs of the current exercise: index into cuffs[], commanded target. */
	unsigned ex_cuff[SESSION_MAX_CUFFS];
	double target[SESSION_MAX_CUFFS];
	bool in_band[SESSION_MAX_CUFFS];
	bool below[SESSION_MAX_CUFFS];

	/* Pause: the frozen phase and its time left. `resuming` means the
	 * current inflating phase leads back into the frozen phase. */
	enum session_phase frozen;
	uint64_t frozen_left;
	bool resuming;

	bool inflated; /* SET_TARGET sent and no DEFLATE since */
	uint64_t inflated_since;
	uint64_t inflation_ms;

	struct figures_acc acc[SESSION_MAX_CUFFS];
	bool acc_live;
	struct set_figures figs[SESSION_MAX_EXERCISES][SESSION_MAX_SETS][SESSION_MAX_CUFFS];
	uint8_t fig_state[SESSION_MAX_EXERCISES][SESSION_MAX_SETS][SESSION_MAX_CUFFS];

	char reason[64];
	char message[160];
};

void session_config_default(struct session_config *cfg)
{
	cfg->inflate_timeout_ms = 30000;
	cfg->deflate_timeout_ms = 5000;
	cfg->lop_timeout_ms = 60000;
	cfg->ramp_ms = 2000;
	cfg->inflated_band_mmHg = 10.0;
	cfg->deflated_mmHg = 20.0;
}

static bool in_range(unsigned v, unsigned lo, unsigned hi)
{
	return v >= lo && v <= hi;
}

static bool id_ok(const char *id)
{
	return id && id[0] && strnlen(id, SESSION_ID_BUF) < SESSION_ID_BUF;
}

static int exercise_check(const struct session_exercise *ex)
{
	unsigned i;

	if (!ex->name[0] || strnlen(ex->name, SESSION_NAME_BUF) >= SESSION_NAME_BUF)
		return -EINVAL;
	if (!in_range(ex->n_cuffs, 1, SESSION_MAX_CUFFS))
		return -EINVAL;
	for (i = 0; i < ex->n_cuffs; i++)
		if (!id_ok(ex->cuffs[i]))
			return -EINVAL;
	if (ex->n_cuffs == 2 && strcmp(ex->cuffs[0], ex->cuffs[1]) == 0)
		return -EINVAL;
	if (!in_range(ex->pct_lop, SESSION_PCT_LOP_MIN, SESSION_PCT_LOP_MAX))
		return -EINVAL;
	if (!in_range(ex->reperfusion_s, SESSION_REPERFUSION_MIN_S, SESSION_REPERFUSION_MAX_S))
		return -EINVAL;
	switch (ex->mode) {
	case SESSION_MODE_CONTINUOUS:
	case SESSION_MODE_INTERMITTENT:
		if (!in_range(ex->n_sets, 1, SESSION_MAX_SETS))
			return -EINVAL;
		for (i = 0; i < ex->n_sets; i++)
			if (!in_range(ex->sets[i], SESSION_REPS_MIN, SESSION_REPS_MAX))
				return -EINVAL;
		if (!in_range(ex->tempo_up_s, SESSION_TEMPO_MIN_S, SESSION_TEMPO_MAX_S) ||
		    !in_range(ex->tempo_down_s, SESSION_TEMPO_MIN_S, SESSION_TEMPO_MAX_S) ||
		    ex->rest_s > SESSION_REST_MAX_S)
			return -EINVAL;
		return 0;
	case SESSION_MODE_CYCLE:
		if (!in_range(ex->on_s, SESSION_CYCLE_MIN_S, SESSION_CYCLE_MAX_S) ||
		    !in_range(ex->off_s, SESSION_CYCLE_MIN_S, SESSION_CYCLE_MAX_S) ||
		    !in_range(ex->cycles, 1, SESSION_MAX_SETS))
			return -EINVAL;
		return 0;
	}
	return -EINVAL;
}

int session_plan_check(const struct session_plan *plan)
{
	unsigned i;
	int err;

	if (!plan || !in_range(plan->n_exercises, 1, SESSION_MAX_EXERCISES))
		return -EINVAL;
	for (i = 0; i < plan->n_exercises; i++) {
		err = exercise_check(&plan->exercises[i]);
		if (err)
			return err;
	}
	return 0;
}

unsigned session_cycle_step_pct(const struct session_exercise *ex, unsigned cycle)
{
	unsigned start, pct;

	if (ex->mode != SESSION_MODE_CYCLE || ex->cycles == 0)
		return 100;
	start = 100;
	if (ex->cycles > 1) {
		unsigned down = SESSION_CYCLE_STEP_PCT * (ex->cycles - 1);

		start = down >= 100 - SESSION_CYCLE_START_MIN_PCT ? SESSION_CYCLE_START_MIN_PCT
								  : 100 - down;
	}
	pct = start + SESSION_CYCLE_STEP_PCT * cycle;
	return pct > 100 ? 100 : pct;
}

static bool exercise_uses(const struct session_exercise *ex, const char *cuff)
{
	for (unsigned i = 0; i < ex->n_cuffs; i++)
		if (strcmp(ex->cuffs[i], cuff) == 0)
			return true;
	return false;
}

static uint64_t set_ms_of(const struct session_exercise *ex, unsigned set)
{
	if (ex->mode == SESSION_MODE_CYCLE)
		return (uint64_t)ex->on_s * 1000;
	return (uint64_t)ex->sets[set] * (ex->tempo_up_s + ex->tempo_down_s) * 1000;
}

/* The planned length of an exercise without ramps: sets and rests. */
static uint64_t exercise_ms(const struct session_exercise *ex)
{
	unsigned n = session_exercise_n_sets(ex);
	uint64_t ms = 0;

	for (unsigned i = 0; i < n; i++)
		ms += set_ms_of(ex, i);
	if (ex->mode == SESSION_MODE_CYCLE)
		return ms + (uint64_t)ex->off_s * 1000 * (n - 1);
	return ms + (uint64_t)ex->rest_s * 1000 * (n - 1);
}

/* Continuous inflations of one exercise: longest and sum, overhead included. */
static void exercise_inflations(const struct session_exercise *ex, uint64_t overhead_ms,
				uint64_t *longest, uint64_t *total)
{
	unsigned n = session_exercise_n_sets(ex);
	uint64_t run = 0;

	*longest = 0;
	*total = 0;
	for (unsigned i = 0; i < n; i++) {
		run += set_ms_of(ex, i);
		/* Continuous mode holds through its rests; a rest of 0 s holds too. */
		if (i + 1 < n && ex->mode == SESSION_MODE_CONTINUOUS) {
			run += (uint64_t)ex->rest_s * 1000;
			continue;
		}
		if (i + 1 < n && ex->mode == SESSION_MODE_INTERMITTENT && ex->rest_s == 0)
			continue;
		run += overhead_ms;
		*total += run;
		if (run > *longest)
			*longest = run;
		run = 0;
	}
}

int session_plan_load(const struct session_plan *plan, const char *cuff, uint64_t overhead_ms,
		      struct session_plan_load *out)
{
	struct session_plan_load load = {
		.longest_exercise = -1,
		.shortest_reperfusion_ms = UINT64_MAX,
		.reperfusion_exercise = -1,
	};
	int last = -1; /* the previous exercise of this cuff */

	if (!cuff || !out || session_plan_check(plan) < 0)
		return -EINVAL;
	for (unsigned e = 0; e < plan->n_exercises; e++) {
		const struct session_exercise *ex = &plan->exercises[e];
		uint64_t longest, total;

		if (!exercise_uses(ex, cuff))
			continue;
		exercise_inflations(ex, overhead_ms, &longest, &total);
		load.total_inflation_ms += total;
		if (longest > load.longest_inflation_ms) {
			load.longest_inflation_ms = longest;
			load.longest_exercise = (int)e;
		}
		if (load.longest_exercise < 0)
			load.longest_exercise = (int)e;
		if (last >= 0) {
			uint64_t gap = 0;

			/* Deflated from the end of `last` to the start of e: the
			 * reperfusion phases and whatever runs in between. */
			for (unsigned k = (unsigned)last; k < e; k++) {
				gap += (uint64_t)plan->exercises[k].reperfusion_s * 1000;
				if (k > (unsigned)last)
					gap += exercise_ms(&plan->exercises[k]);
			}
			if (gap < load.shortest_reperfusion_ms) {
				load.shortest_reperfusion_ms = gap;
				load.reperfusion_exercise = last;
			}
		}
		last = (int)e;
	}
	*out = load;
	return 0;
}

static int find_cuff(const struct session *s, const char *id)
{
	unsigned i;

	for (i = 0; i < s->n_cuffs; i++)
		if (strcmp(s->cuffs[i].id, id) == 0)
			return (int)i;
	return -1;
}

int session_new(const char *id, const struct session_plan *plan,
		const struct session_config *cfg, struct session **out)
{
	struct session *s;
	unsigned e, c;

	if (!id_ok(id) || !out)
		return -EINVAL;
	if (session_plan_check(plan))
		return -EINVAL;
	if (cfg && (!isfinite(cfg->inflated_band_mmHg) || cfg->inflated_band_mmHg <= 0 ||
		    !isfinite(cfg->deflated_mmHg) || cfg->deflated_mmHg <= 0))
		return -EINVAL;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	strcpy(s->id, id);
	s->plan = *plan;
	if (cfg)
		s->cfg = *cfg;
	else
		session_config_default(&s->cfg);
	s->phase = SESSION_PHASE_IDLE;
	s->ex = -1;
	for (e = 0; e < plan->n_exercises; e++) {
		const struct session_exercise *ex = &plan->exercises[e];

		for (c = 0; c < ex->n_cuffs; c++) {
			if (find_cuff(s, ex->cuffs[c]) >= 0)
				continue;
			strcpy(s->cuffs[s->n_cuffs].id, ex->cuffs[c]);
			s->n_cuffs++;
		}
	}
	*out = s;
	return 0;
}

void session_free(struct session *s)
{
	free(s);
}

const char *session_id(const struct session *s)
{
	return s->id;
}

const struct session_plan *session_plan(const struct session *s)
{
	return &s->plan;
}

static bool phase_is_end(enum session_phase p)
{
	return p == SESSION_PHASE_COMPLETED || p == SESSION_PHASE_STOPPED ||
	       p == SESSION_PHASE_ABORTED;
}

bool session_ended(const struct session *s)
{
	return phase_is_end(s->phase);
}

static bool lop_plausible(double lop)
{
	return isfinite(lop) && lop >= SESSION_LOP_MIN_MMHG && lop <= SESSION_LOP_MAX_MMHG;
}

int session_set_lop(struct session *s, const char *cuff, double lop_mmHg)
{
	int i;

	if (!s || !cuff)
		return -EINVAL;
	i = find_cuff(s, cuff);
	if (i < 0)
		return -ENOENT;
	if (!lop_plausible(lop_mmHg))
		return -ERANGE;
	if (s->phase != SESSION_PHASE_IDLE)
		return -EBUSY;
	s->cuffs[i].lop_mmHg = lop_mmHg;
	s->cuffs[i].lop_valid = true;
	return 0;
}

/* --- output ---------------------------------------------------------------- */

static const struct session_exercise *cur_ex(const struct session *s)
{
	return s->ex >= 0 ? &s->plan.exercises[s->ex] : NULL;
}

unsigned session_exercise_n_sets(const struct session_exercise *ex)
{
	return ex->mode == SESSION_MODE_CYCLE ? ex->cycles : ex->n_sets;
}

static unsigned n_sets_of(const struct session_exercise *ex)
{
	return session_exercise_n_sets(ex);
}

/* The room arguments (RESERVE_ITEMS) make a full output impossible; the
 * check only keeps a future mistake from writing out of bounds. */
static struct session_output_item *push(struct session *s, enum session_output_kind kind)
{
	struct session_output *out = s->out;
	struct session_output_item *item;

	if (out->n >= SESSION_OUTPUT_MAX)
		abort();
	item = &out->items[out->n++];
	memset(item, 0, sizeof(*item));
	item->kind = kind;
	return item;
}

static void emit_event(struct session *s, enum session_event_type type, uint64_t t,
		       const char *cuff, double lop, const char *reason, const char *message,
		       const char *alarm_id)
{
	const struct session_exercise *ex = cur_ex(s);
	struct session_event *ev = &push(s, SESSION_OUTPUT_EVENT)->event;

	ev->seq = ++s->seq;
	ev->type = type;
	ev->t_ms = t;
	ev->phase = s->phase;
	ev->exercise = s->ex;
	ev->exercise_name = ex ? ex->name : NULL;
	ev->cuff = cuff;
	ev->lop_mmHg = lop;
	snprintf(ev->reason, sizeof(ev->reason), "%s", reason ? reason : "");
	snprintf(ev->message, sizeof(ev->message), "%s", message ? message : "");
	snprintf(ev->alarm_id, sizeof(ev->alarm_id), "%s", alarm_id ? alarm_id : "");
	if (s->phase == SESSION_PHASE_SET || s->phase == SESSION_PHASE_REST ||
	    type == SESSION_EV_REP) {
		ev->set = s->set + 1;
		ev->rep = s->rep;
	}
}

static void emit_action(struct session *s, enum session_action_kind kind, unsigned ci,
			double target, enum bfr_deflate_reason reason, enum bfr_cue cue)
{
	struct session_action *a = &push(s, SESSION_OUTPUT_ACTION)->action;

	a->kind = kind;
	a->cuff = s->cuffs[s->ex_cuff[ci]].id;
	a->target_mmHg = target;
	a->ramp_ms = kind == SESSION_ACT_SET_TARGET ? s->cfg.ramp_ms : 0;
	a->reason = reason;
	a->rest = kind == SESSION_ACT_DEFLATE && s->deflate_for_rest;
	a->cue = cue;
}

static void cue_all(struct session *s, enum bfr_cue cue)
{
	unsigned i;

	for (i = 0; i < cur_ex(s)->n_cuffs; i++)
		emit_action(s, SESSION_ACT_CUE, i, 0, BFR_DEFLATE_NORMAL, cue);
}

static void inflation_stop(struct session *s, uint64_t t)
{
	if (!s->inflated)
		return;
	s->inflation_ms += t - s->inflated_since;
	s->inflated = false;
}

static void deflate_all_ex(struct session *s, enum bfr_deflate_reason reason, bool rest,
			   uint64_t t)
{
	unsigned i;

	if (!cur_ex(s))
		return;
	s->deflate_for_rest = rest;
	for (i = 0; i < cur_ex(s)->n_cuffs; i++)
		emit_action(s, SESSION_ACT_DEFLATE, i, 0, reason, BFR_CUE_REP_UP);
	s->deflate_for_rest = false;
	inflation_stop(s, t);
}

static void deflate_all(struct session *s, enum bfr_deflate_reason reason, uint64_t t)
{
	deflate_all_ex(s, reason, false, t);
}

static void set_phase(struct session *s, enum session_phase phase, uint64_t t, bool timed,
		      uint64_t duration_ms)
{
	s->phase = phase;
	s->timed = timed;
	s->deadline = timed ? t + duration_ms : 0;
	emit_event(s, SESSION_EV_PHASE, t, NULL, 0, NULL, NULL, NULL);
}

/* --- phases ---------------------------------------------------------------- */

static void finish_set(struct session *s, uint64_t t)
{
	unsigned i;

	if (!s->acc_live)
		return;
	for (i = 0; i < cur_ex(s)->n_cuffs; i++) {
		struct set_figures *fig = &s->figs[s->ex][s->set][i];

		s->fig_state[s->ex][s->set][i] =
			figures_result(&s->acc[i], t, fig) == 0 ? FIG_DONE : FIG_NODATA;
	}
	s->acc_live = false;
}

static void end_session(struct session *s, enum session_phase end, const char *reason,
			const char *message, bool deflate, enum bfr_deflate_reason why, uint64_t t)
{
	enum session_event_type type = end == SESSION_PHASE_COMPLETED ? SESSION_EV_COMPLETED
				       : end == SESSION_PHASE_STOPPED	? SESSION_EV_STOPPED
									: SESSION_EV_ABORTED;
	unsigned i;

	/* A set cut short (also one frozen by a pause) keeps its figures. */
	finish_set(s, t);
	if (deflate)
		deflate_all(s, why, t);
	inflation_stop(s, t);
	for (i = 0; i < s->n_cuffs; i++)
		s->cuffs[i].lop_pending = false;
	snprintf(s->reason, sizeof(s->reason), "%s", reason ? reason : "");
	snprintf(s->message, sizeof(s->message), "%s", message ? message : "");
	s->phase = end;
	s->timed = false;
	s->resuming = false;
	emit_event(s, type, t, NULL, 0, reason, message, NULL);
}

static void abort_session(struct session *s, const char *reason, const char *message,
			  uint64_t t)
{
	end_session(s, SESSION_PHASE_ABORTED, reason, message, true, BFR_DEFLATE_SAFETY, t);
}

static double target_of(const struct session *s, unsigned ci)
{
	const struct session_exercise *ex = cur_ex(s);
	double lop = s->cuffs[s->ex_cuff[ci]].lop_mmHg;

	return lop * ex->pct_lop / 100.0 * session_cycle_step_pct(ex, s->set) / 100.0;
}

static void enter_inflating(struct session *s, uint64_t t)
{
	const struct session_exercise *ex = cur_ex(s);
	unsigned i;

	for (i = 0; i < ex->n_cuffs; i++) {
		s->target[i] = target_of(s, i);
		s->in_band[i] = false;
	}
	for (i = 0; i < ex->n_cuffs; i++)
		emit_action(s, SESSION_ACT_SET_TARGET, i, s->target[i], BFR_DEFLATE_NORMAL,
			    BFR_CUE_REP_UP);
	if (!s->inflated) {
		s->inflated = true;
		s->inflated_since = t;
	}
	set_phase(s, SESSION_PHASE_INFLATING, t, true, s->cfg.inflate_timeout_ms);
}

static uint64_t set_duration_ms(const struct session *s)
{
	const struct session_exercise *ex = cur_ex(s);

	if (ex->mode == SESSION_MODE_CYCLE)
		return (uint64_t)ex->on_s * 1000;
	return (uint64_t)ex->sets[s->set] * (ex->tempo_up_s + ex->tempo_down_s) * 1000;
}

static unsigned cues_in_set(const struct session *s)
{
	const struct session_exercise *ex = cur_ex(s);

	return ex->mode == SESSION_MODE_CYCLE ? 0 : 2 * ex->sets[s->set];
}

static uint64_t cue_time(const struct session *s, unsigned k)
{
	const struct session_exercise *ex = cur_ex(s);
	uint64_t rep_ms = (uint64_t)(ex->tempo_up_s + ex->tempo_down_s) * 1000;

	return s->set_origin + (k / 2) * rep_ms + (k % 2 ? (uint64_t)ex->tempo_up_s * 1000 : 0);
}

/* The latest sample of each cuff holds from the start (or restart) of a set,
 * so the set's time is covered from its first millisecond. */
static void seed_figures(struct session *s, uint64_t t)
{
	unsigned i;

	for (i = 0; i < cur_ex(s)->n_cuffs; i++) {
		const struct plan_cuff *pc = &s->cuffs[s->ex_cuff[i]];

		if (pc->have_sample)
			figures_add(&s->acc[i], t, pc->last_mmHg);
	}
}

static void enter_set(struct session *s, uint64_t t)
{
	const struct session_exercise *ex = cur_ex(s);
	unsigned i;

	s->rep = 0;
	s->cue_index = 0;
	s->set_origin = t;
	for (i = 0; i < ex->n_cuffs; i++)
		figures_init(&s->acc[i], s->target[i], s->cuffs[s->ex_cuff[i]].lop_mmHg);
	s->acc_live = true;
	seed_figures(s, t);
	cue_all(s, BFR_CUE_SET_START);
	set_phase(s, SESSION_PHASE_SET, t, true, set_duration_ms(s));
}

static void enter_deflating(struct session *s, uint64_t t)
{
	unsigned i;

	for (i = 0; i < cur_ex(s)->n_cuffs; i++)
		s->below[i] = false;
	deflate_all(s, BFR_DEFLATE_NORMAL, t);
	set_phase(s, SESSION_PHASE_DEFLATING, t, true, s->cfg.deflate_timeout_ms);
}

static void enter_exercise(struct session *s, uint64_t t)
{
	const struct session_exercise *ex = cur_ex(s);
	bool need_lop = false;
	unsigned i;

	s->set = 0;
	s->rep = 0;
	for (i = 0; i < ex->n_cuffs; i++) {
		int ci = find_cuff(s, ex->cuffs[i]);

		s->ex_cuff[i] = (unsigned)ci;
		if (!s->cuffs[ci].lop_valid) {
			s->cuffs[ci].lop_pending = true;
			need_lop = true;
		}
	}
	if (!need_lop) {
		enter_inflating(s, t);
		return;
	}
	for (i = 0; i < ex->n_cuffs; i++)
		if (s->cuffs[s->ex_cuff[i]].lop_pending)
			emit_action(s, SESSION_ACT_MEASURE_LOP, i, 0, BFR_DEFLATE_NORMAL,
				    BFR_CUE_REP_UP);
	set_phase(s, SESSION_PHASE_LOP, t, true, s->cfg.lop_timeout_ms);
}

static void end_exercise(struct session *s, uint64_t t)
{
	cue_all(s, BFR_CUE_DONE);
	enter_deflating(s, t);
}

/* The set (or cycle "on" period) ran its time. */
static void set_done(struct session *s, uint64_t t)
{
	const struct session_exercise *ex = cur_ex(s);
	unsigned rest_s = ex->mode == SESSION_MODE_CYCLE ? ex->off_s : ex->rest_s;

	finish_set(s, t);
	if (s->set + 1 >= n_sets_of(ex)) {
		end_exercise(s, t);
		return;
	}
	if (rest_s == 0) {
		/* No rest: the next set follows at once, still inflated. */
		s->set++;
		enter_set(s, t);
		return;
	}
	cue_all(s, BFR_CUE_REST);
	if (ex->mode != SESSION_MODE_CONTINUOUS)
		deflate_all_ex(s, BFR_DEFLATE_NORMAL, true, t);
	set_phase(s, SESSION_PHASE_REST, t, true, (uint64_t)rest_s * 1000);
}

static void rest_done(struct session *s, uint64_t t)
{
	s->set++;
	s->rep = 0;
	if (cur_ex(s)->mode == SESSION_MODE_CONTINUOUS)
		enter_set(s, t);
	else
		enter_inflating(s, t);
}

static void reperfusion_done(struct session *s, uint64_t t)
{
	s->ex++;
	enter_exercise(s, t);
}

static void fire_cue(struct session *s, uint64_t t)
{
	unsigned k = s->cue_index++;

	if (k % 2 == 0) {
		s->rep = k / 2 + 1;
		cue_all(s, BFR_CUE_REP_UP);
		emit_event(s, SESSION_EV_REP, t, NULL, 0, NULL, NULL, NULL);
	} else {
		cue_all(s, BFR_CUE_REP_DOWN);
	}
}

/* Back into the frozen phase after a pause (and re-inflation if needed). */
static void restore_frozen(struct session *s, uint64_t t)
{
	enum session_phase p = s->frozen;

	s->resuming = false;
	switch (p) {
	case SESSION_PHASE_SET:
		s->set_origin = t + s->frozen_left - set_duration_ms(s);
		seed_figures(s, t);
		set_phase(s, SESSION_PHASE_SET, t, true, s->frozen_left);
		break;
	case SESSION_PHASE_REST:
	case SESSION_PHASE_REPERFUSION:
		set_phase(s, p, t, true, s->frozen_left);
		break;
	case SESSION_PHASE_DEFLATING:
		enter_deflating(s, t);
		break;
	default: /* SESSION_PHASE_INFLATING */
		enter_inflating(s, t);
		break;
	}
}

static bool next_due(const struct session *s, uint64_t *t)
{
	uint64_t due;

	if (!s->timed)
		return false;
	due = s->deadline;
	if (s->phase == SESSION_PHASE_SET && s->cue_index < cues_in_set(s)) {
		uint64_t c = cue_time(s, s->cue_index);

		if (c < due)
			due = c;
	}
	*t = due;
	return true;
}

static void fire_deadline(struct session *s, uint64_t t)
{
	char msg[96];

	switch (s->phase) {
	case SESSION_PHASE_LOP:
		abort_session(s, "lop_timeout", "no LOP result in time", t);
		break;
	case SESSION_PHASE_INFLATING:
		snprintf(msg, sizeof(msg), "target not reached within %u ms",
			 s->cfg.inflate_timeout_ms);
		abort_session(s, "inflate_timeout", msg, t);
		break;
	case SESSION_PHASE_SET:
		set_done(s, t);
		break;
	case SESSION_PHASE_REST:
		rest_done(s, t);
		break;
	case SESSION_PHASE_DEFLATING:
		snprintf(msg, sizeof(msg), "deflation not confirmed within %u ms",
			 s->cfg.deflate_timeout_ms);
		abort_session(s, "deflate_timeout", msg, t);
		break;
	case SESSION_PHASE_REPERFUSION:
		reperfusion_done(s, t);
		break;
	default:
		s->timed = false;
		break;
	}
}

/* Runs due deadlines while the output has room; `more` when some are left. */
static void run_due(struct session *s, uint64_t now)
{
	uint64_t t;

	while (next_due(s, &t) && t <= now) {
		if (s->out->n + RESERVE_ITEMS > SESSION_OUTPUT_MAX) {
			s->out->more = true;
			return;
		}
		if (s->phase == SESSION_PHASE_SET && s->cue_index < cues_in_set(s) &&
		    cue_time(s, s->cue_index) == t && t < s->deadline)
			fire_cue(s, t);
		else
			fire_deadline(s, t);
	}
}

/* Every call starts here: a fresh output for it. */
static void begin(struct session *s, struct session_output *out)
{
	out->n = 0;
	out->more = false;
	s->out = out;
}

/*
 * Every input starts here: refuse time going backwards, then catch up.
 * -EAGAIN when the catch-up did not fit: the input must wait for the
 * caller's session_tick() calls (see session.h).
 */
static int advance(struct session *s, uint64_t now)
{
	if (s->have_now && now < s->last_now)
		return -EINVAL;
	s->have_now = true;
	s->last_now = now;
	run_due(s, now);
	return s->out->more ? -EAGAIN : 0;
}

/* --- inputs ---------------------------------------------------------------- */

int session_start(struct session *s, uint64_t now_ms, struct session_output *out)
{
	int err;

	if (!s || !out)
		return -EINVAL;
	begin(s, out);
	if (s->phase != SESSION_PHASE_IDLE)
		return -EBUSY;
	err = advance(s, now_ms);
	if (err)
		return err;
	emit_event(s, SESSION_EV_STARTED, now_ms, NULL, 0, NULL, NULL, NULL);
	s->ex = 0;
	enter_exercise(s, now_ms);
	run_due(s, now_ms);
	return 0;
}

int session_tick(struct session *s, uint64_t now_ms, struct session_output *out)
{
	int err;

	if (!s || !out)
		return -EINVAL;
	begin(s, out);
	err = advance(s, now_ms);
	return err == -EAGAIN ? 0 : err; /* out->more says it */
}

int session_next_deadline(const struct session *s, uint64_t *out_ms)
{
	uint64_t t;

	if (!s || !out_ms)
		return -EINVAL;
	if (!next_due(s, &t))
		return -ENOENT;
	*out_ms = t;
	return 0;
}

/* Index of cuff in the current exercise, -1 when it is not part of it. */
static int ex_index(const struct session *s, int plan_cuff)
{
	unsigned i;

	if (!cur_ex(s))
		return -1;
	for (i = 0; i < cur_ex(s)->n_cuffs; i++)
		if ((int)s->ex_cuff[i] == plan_cuff)
			return (int)i;
	return -1;
}

static bool all_true(const bool *v, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++)
		if (!v[i])
			return false;
	return true;
}

int session_pressure(struct session *s, const char *cuff, double mmHg, uint64_t now_ms,
		     struct session_output *out)
{
	int pc, i, err;

	if (!s || !cuff || !out)
		return -EINVAL;
	begin(s, out);
	if (!isfinite(mmHg) || mmHg < 0)
		return -EINVAL;
	pc = find_cuff(s, cuff);
	if (pc < 0)
		return -ENOENT;
	err = advance(s, now_ms);
	if (err)
		return err;
	s->cuffs[pc].last_mmHg = mmHg;
	s->cuffs[pc].have_sample = true;
	i = ex_index(s, pc);
	if (i < 0)
		return 0;

	switch (s->phase) {
	case SESSION_PHASE_SET:
		if (s->acc_live)
			figures_add(&s->acc[i], now_ms, mmHg);
		break;
	case SESSION_PHASE_INFLATING:
		if (fabs(mmHg - s->target[i]) <= s->cfg.inflated_band_mmHg)
			s->in_band[i] = true;
		if (!all_true(s->in_band, cur_ex(s)->n_cuffs))
			break;
		/* Bilateral lockstep: the set starts when every cuff is there. */
		if (s->resuming)
			restore_frozen(s, now_ms);
		else
			enter_set(s, now_ms);
		break;
	case SESSION_PHASE_DEFLATING:
		if (mmHg < s->cfg.deflated_mmHg)
			s->below[i] = true;
		if (!all_true(s->below, cur_ex(s)->n_cuffs))
			break;
		if ((unsigned)s->ex + 1 >= s->plan.n_exercises)
			end_session(s, SESSION_PHASE_COMPLETED, NULL, NULL, false,
				    BFR_DEFLATE_NORMAL, now_ms);
		else
			set_phase(s, SESSION_PHASE_REPERFUSION, now_ms, true,
				  (uint64_t)cur_ex(s)->reperfusion_s * 1000);
		break;
	default:
		break;
	}
	/* A phase entered just now may have work due at once (first rep cue). */
	run_due(s, now_ms);
	return 0;
}

int session_lop_result(struct session *s, const char *cuff, bool ok, double lop_mmHg,
		       uint64_t now_ms, struct session_output *out)
{
	char msg[128];
	int pc, err;
	unsigned i;

	if (!s || !cuff || !out)
		return -EINVAL;
	begin(s, out);
	pc = find_cuff(s, cuff);
	if (pc < 0)
		return -ENOENT;
	if (s->have_now && now_ms < s->last_now)
		return -EINVAL;
	if (s->phase != SESSION_PHASE_LOP || !s->cuffs[pc].lop_pending)
		return -EALREADY;
	err = advance(s, now_ms);
	if (err)
		return err;
	/* The LOP phase may have timed out while catching up. */
	if (s->phase != SESSION_PHASE_LOP)
		return -EALREADY;

	if (!ok || !lop_plausible(lop_mmHg)) {
		if (ok)
			snprintf(msg, sizeof(msg), "%s: LOP %.1f mmHg outside %.0f..%.0f", cuff,
				 lop_mmHg, SESSION_LOP_MIN_MMHG, SESSION_LOP_MAX_MMHG);
		else
			snprintf(msg, sizeof(msg), "%s: LOP measurement failed", cuff);
		abort_session(s, "lop_invalid", msg, now_ms);
		return 0;
	}
	s->cuffs[pc].lop_mmHg = lop_mmHg;
	s->cuffs[pc].lop_valid = true;
	s->cuffs[pc].lop_pending = false;
	emit_event(s, SESSION_EV_LOP_MEASURED, now_ms, s->cuffs[pc].id, lop_mmHg, NULL, NULL, NULL);
	for (i = 0; i < cur_ex(s)->n_cuffs; i++)
		if (s->cuffs[s->ex_cuff[i]].lop_pending)
			return 0;
	enter_inflating(s, now_ms);
	run_due(s, now_ms);
	return 0;
}

static int refuse(struct session *s, const char *what, uint64_t t)
{
	char msg[96];

	/* Nothing follows the final event of a session. */
	if (phase_is_end(s->phase))
		return -EBUSY;
	snprintf(msg, sizeof(msg), "cannot %s in phase %s", what, session_phase_name(s->phase));
	emit_event(s, SESSION_EV_REFUSED, t, NULL, 0, "bad_state", msg, NULL);
	return -EBUSY;
}

int session_pause(struct session *s, uint64_t now_ms, struct session_output *out)
{
	unsigned i;
	int err;

	if (!s || !out)
		return -EINVAL;
	begin(s, out);
	err = advance(s, now_ms);
	if (err)
		return err;
	switch (s->phase) {
	case SESSION_PHASE_INFLATING:
		if (!s->resuming)
			s->frozen = SESSION_PHASE_INFLATING;
		/* else: still heading back into the phase frozen before */
		break;
	case SESSION_PHASE_SET:
		for (i = 0; i < cur_ex(s)->n_cuffs; i++)
			figures_gap(&s->acc[i], now_ms);
		/* fall through */
	case SESSION_PHASE_REST:
	case SESSION_PHASE_REPERFUSION:
		s->frozen = s->phase;
		s->frozen_left = s->deadline - now_ms;
		break;
	case SESSION_PHASE_DEFLATING:
		s->frozen = s->phase;
		break;
	default:
		return refuse(s, "pause", now_ms);
	}
	if (s->inflated)
		deflate_all(s, BFR_DEFLATE_NORMAL, now_ms);
	s->resuming = false;
	s->phase = SESSION_PHASE_PAUSED;
	s->timed = false;
	emit_event(s, SESSION_EV_PAUSED, now_ms, NULL, 0, NULL, NULL, NULL);
	return 0;
}

static bool needs_inflation(const struct session *s, enum session_phase p)
{
	return p == SESSION_PHASE_INFLATING || p == SESSION_PHASE_SET ||
	       (p == SESSION_PHASE_REST && cur_ex(s)->mode == SESSION_MODE_CONTINUOUS);
}

int session_resume(struct session *s, uint64_t now_ms, struct session_output *out)
{
	int err;

	if (!s || !out)
		return -EINVAL;
	begin(s, out);
	err = advance(s, now_ms);
	if (err)
		return err;
	if (s->phase != SESSION_PHASE_PAUSED)
		return refuse(s, "resume", now_ms);
	/* The event must report the frozen phase, not "paused". */
	s->phase = s->frozen;
	emit_event(s, SESSION_EV_RESUMED, now_ms, NULL, 0, NULL, NULL, NULL);
	if (needs_inflation(s, s->frozen) && s->frozen != SESSION_PHASE_INFLATING) {
		s->resuming = true;
		enter_inflating(s, now_ms);
	} else {
		restore_frozen(s, now_ms);
	}
	run_due(s, now_ms);
	return 0;
}

int session_stop(struct session *s, uint64_t now_ms, struct session_output *out)
{
	int err;

	if (!s || !out)
		return -EINVAL;
	begin(s, out);
	err = advance(s, now_ms);
	if (err)
		return err;
	if (phase_is_end(s->phase))
		return -EBUSY;
	end_session(s, SESSION_PHASE_STOPPED, "stopped", NULL, true, BFR_DEFLATE_NORMAL, now_ms);
	return 0;
}

int session_abort(struct session *s, const char *reason_code, enum bfr_deflate_reason reason,
		  uint64_t now_ms, struct session_output *out)
{
	int err;

	if (!s || !out)
		return -EINVAL;
	begin(s, out);
	if (!reason_code || !reason_code[0])
		return -EINVAL;
	err = advance(s, now_ms);
	if (err)
		return err;
	if (phase_is_end(s->phase))
		return -EBUSY;
	end_session(s, SESSION_PHASE_ABORTED, reason_code, NULL, true, reason, now_ms);
	return 0;
}

int session_note_alarm(struct session *s, const char *alarm_id, uint64_t now_ms,
		       struct session_output *out)
{
	int err;

	if (!s || !out)
		return -EINVAL;
	begin(s, out);
	if (!alarm_id || !alarm_id[0] || strlen(alarm_id) >= SESSION_ALARM_ID_BUF)
		return -EINVAL;
	err = advance(s, now_ms);
	if (err)
		return err;
	if (phase_is_end(s->phase))
		return -EBUSY;
	emit_event(s, SESSION_EV_ALARM, now_ms, NULL, 0, NULL, NULL, alarm_id);
	return 0;
}

int session_note_refused(struct session *s, const char *code, const char *message,
			 uint64_t now_ms, struct session_output *out)
{
	int err;

	if (!s || !out)
		return -EINVAL;
	begin(s, out);
	if (!code || !code[0])
		return -EINVAL;
	err = advance(s, now_ms);
	if (err)
		return err;
	if (phase_is_end(s->phase))
		return -EBUSY;
	emit_event(s, SESSION_EV_REFUSED, now_ms, NULL, 0, code, message, NULL);
	return 0;
}

/* --- queries --------------------------------------------------------------- */

static int32_t seconds_ceil(uint64_t ms)
{
	return (int32_t)((ms + 999) / 1000);
}

/*
 * Planned time from the start of set `set` of exercise e to the end of the
 * session: its sets and rests, the reperfusions and the later exercises.
 * Ramps, deflations and LOP measurements are not planned times (they last
 * as long as the cuffs take) and are not counted.
 */
static uint64_t planned_from(const struct session *s, unsigned e, unsigned set)
{
	uint64_t ms = 0;

	for (; e < s->plan.n_exercises; e++, set = 0) {
		const struct session_exercise *ex = &s->plan.exercises[e];
		unsigned n = session_exercise_n_sets(ex);
		uint64_t rest_ms = (uint64_t)(ex->mode == SESSION_MODE_CYCLE ? ex->off_s
									   : ex->rest_s) * 1000;

		for (unsigned k = set; k < n; k++)
			ms += set_ms_of(ex, k) + (k + 1 < n ? rest_ms : 0);
		if (e + 1 < s->plan.n_exercises)
			ms += (uint64_t)ex->reperfusion_s * 1000;
	}
	return ms;
}

/* Planned time left in the session; phase_left_ms of the (frozen) phase. */
static uint64_t session_left_ms(const struct session *s, enum session_phase p,
				uint64_t phase_left_ms)
{
	const struct session_exercise *ex = cur_ex(s);
	unsigned e = s->ex < 0 ? 0 : (unsigned)s->ex;

	if (!ex)
		return planned_from(s, 0, 0);
	switch (p) {
	case SESSION_PHASE_LOP:
		return planned_from(s, e, 0);
	case SESSION_PHASE_INFLATING:
		/* Heading back into a paused set or rest: what was left of it. */
		if (s->resuming && s->frozen == SESSION_PHASE_SET)
			return s->frozen_left + planned_from(s, e, s->set) - set_ms_of(ex, s->set);
		if (s->resuming && s->frozen == SESSION_PHASE_REST)
			return s->frozen_left + planned_from(s, e, s->set + 1);
		return planned_from(s, e, s->set);
	case SESSION_PHASE_SET:
		return phase_left_ms + planned_from(s, e, s->set) - set_ms_of(ex, s->set);
	case SESSION_PHASE_REST:
		return phase_left_ms + planned_from(s, e, s->set + 1);
	case SESSION_PHASE_DEFLATING:
		return e + 1 < s->plan.n_exercises
			       ? (uint64_t)ex->reperfusion_s * 1000 + planned_from(s, e + 1, 0)
			       : 0;
	case SESSION_PHASE_REPERFUSION:
		return phase_left_ms + planned_from(s, e + 1, 0);
	default:
		return 0;
	}
}

int session_get_state(const struct session *s, uint64_t now_ms, struct session_state *out)
{
	uint64_t phase_left_ms = 0;
	const struct session_exercise *ex;
	struct session_state st;

	if (!s || !out)
		return -EINVAL;
	ex = cur_ex(s);
	memset(&st, 0, sizeof(st));
	st.phase = s->phase;
	st.paused_phase = s->phase == SESSION_PHASE_PAUSED ? s->frozen : s->phase;
	st.exercise = s->ex;
	st.exercise_name = ex ? ex->name : NULL;
	st.n_exercises = s->plan.n_exercises;
	st.n_sets = ex ? n_sets_of(ex) : 0;
	if (st.paused_phase == SESSION_PHASE_SET || st.paused_phase == SESSION_PHASE_REST) {
		st.set = s->set + 1;
		st.rep = s->rep;
	}
	st.seconds_left = -1;
	if (s->phase == SESSION_PHASE_SET || s->phase == SESSION_PHASE_REST ||
	    s->phase == SESSION_PHASE_REPERFUSION) {
		phase_left_ms = s->deadline > now_ms ? s->deadline - now_ms : 0;
		st.seconds_left = seconds_ceil(phase_left_ms);
	} else if (s->phase == SESSION_PHASE_PAUSED && s->frozen != SESSION_PHASE_INFLATING &&
		   s->frozen != SESSION_PHASE_DEFLATING) {
		phase_left_ms = s->frozen_left;
		st.seconds_left = seconds_ceil(phase_left_ms);
	}
	st.session_left_s = phase_is_end(s->phase) || s->phase == SESSION_PHASE_IDLE
				    ? -1
				    : seconds_ceil(session_left_ms(s, st.paused_phase, phase_left_ms));
	if (ex) {
		st.pct_lop = ex->pct_lop;
		if (ex->mode != SESSION_MODE_CYCLE && st.set)
			st.n_reps = ex->sets[s->set];
		if (s->phase != SESSION_PHASE_IDLE && !phase_is_end(s->phase)) {
			st.n_targets = ex->n_cuffs;
			for (unsigned i = 0; i < ex->n_cuffs; i++) {
				st.target_cuffs[i] = ex->cuffs[i];
				st.targets[i] = s->cuffs[s->ex_cuff[i]].lop_valid ? target_of(s, i)
										  : NAN;
			}
		}
	}
	st.inflation_s = (double)s->inflation_ms / 1000.0;
	if (s->inflated && now_ms > s->inflated_since)
		st.inflation_s += (double)(now_ms - s->inflated_since) / 1000.0;
	st.last_seq = s->seq;
	st.reason = phase_is_end(s->phase) && s->reason[0] ? s->reason : NULL;
	*out = st;
	return 0;
}

int session_set_figures(const struct session *s, unsigned exercise, unsigned set,
			unsigned cuff_index, struct set_figures *out)
{
	if (!s || !out)
		return -EINVAL;
	if (exercise >= s->plan.n_exercises || set >= SESSION_MAX_SETS ||
	    cuff_index >= SESSION_MAX_CUFFS)
		return -ENOENT;
	switch (s->fig_state[exercise][set][cuff_index]) {
	case FIG_DONE:
		*out = s->figs[exercise][set][cuff_index];
		return 0;
	case FIG_NODATA:
		return -ENODATA;
	default:
		return -ENOENT;
	}
}

const char *session_phase_name(enum session_phase phase)
{
	static const char *const names[] = {
		[SESSION_PHASE_IDLE] = "idle",
		[SESSION_PHASE_LOP] = "lop",
		[SESSION_PHASE_INFLATING] = "inflating",
		[SESSION_PHASE_SET] = "set",
		[SESSION_PHASE_REST] = "rest",
		[SESSION_PHASE_DEFLATING] = "deflating",
		[SESSION_PHASE_REPERFUSION] = "reperfusion",
		[SESSION_PHASE_PAUSED] = "paused",
		[SESSION_PHASE_COMPLETED] = "completed",
		[SESSION_PHASE_STOPPED] = "stopped",
		[SESSION_PHASE_ABORTED] = "aborted",
	};

	if ((unsigned)phase >= sizeof(names) / sizeof(names[0]))
		return "unknown";
	return names[phase];
}

const char *session_event_type_name(enum session_event_type type)
{
	static const char *const names[] = {
		[SESSION_EV_STARTED] = "started",     [SESSION_EV_LOP_MEASURED] = "lop_measured",
		[SESSION_EV_PHASE] = "phase",         [SESSION_EV_REP] = "rep",
		[SESSION_EV_ALARM] = "alarm",         [SESSION_EV_REFUSED] = "refused",
		[SESSION_EV_PAUSED] = "paused",       [SESSION_EV_RESUMED] = "resumed",
		[SESSION_EV_COMPLETED] = "completed", [SESSION_EV_STOPPED] = "stopped",
		[SESSION_EV_ABORTED] = "aborted",
	};

	if ((unsigned)type >= sizeof(names) / sizeof(names[0]))
		return "unknown";
	return names[type];
}

const char *session_mode_name(enum session_mode mode)
{
	switch (mode) {
	case SESSION_MODE_CONTINUOUS:
		return "continuous";
	case SESSION_MODE_INTERMITTENT:
		return "intermittent";
	case SESSION_MODE_CYCLE:
		return "cycle";
	}
	return "unknown";
}
