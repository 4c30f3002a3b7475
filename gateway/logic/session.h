/*
 * session.h - exercise-session timing: a pure, deterministic state machine.
 *
 * A session runs a plan (exercises of sets of reps, or KAATSU-style cycles)
 * on one or two cuffs per exercise. Inputs are calls carrying a monotonic
 * `now_ms` (pressure samples, LOP results, pause/resume/stop/abort, timer
 * ticks); outputs are written, in order, into the caller's struct
 * session_output: actions for the cuffs and events for MQTT, the way
 * safety_handle() returns its actions. The session never calls out, so it
 * is never re-entered; the caller executes the output after the call. The
 * state for `session/{id}/state` and the next deadline for the caller's one
 * timer are read with the const queries.
 *
 * Invariants:
 *  - No I/O, no clock reads, no callbacks, no allocation after
 *    session_new(). Time only comes in as monotonic ms and must never go
 *    backwards: a call with an earlier `now_ms` than a previous one is
 *    refused (-EINVAL) and changes nothing. Wall-clock jumps therefore
 *    cannot reach the session at all.
 *  - Every input first runs the deadlines that fell due up to `now_ms`, each
 *    at its own scheduled time, so a late timer never shifts the schedule.
 *    One call emits at most SESSION_OUTPUT_MAX items: when more deadlines
 *    are due than fit, `out->more` is set and the caller calls
 *    session_tick() again (after executing the output); an input other than
 *    a tick then returns -EAGAIN without being applied (nothing is lost: the
 *    output holds the catch-up so far). Execute the output of every call,
 *    whatever it returned.
 *  - Event seq numbers start at 1 and have no gaps.
 *  - Whenever the session leaves a phase that holds pressure (pause, stop,
 *    abort, rest of intermittent/cycle, end of exercise) it emits DEFLATE for
 *    every cuff of the exercise; it never leaves a cuff inflated on its own.
 *  - Safety limits are enforced elsewhere (the safety engine): the caller
 *    asks it before executing each SET_TARGET and aborts the session when
 *    it refuses.
 */
#ifndef BFR_SESSION_H
#define BFR_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "cuff_profile.h"
#include "figures.h"

/* Plan bounds (the command validator enforces the same numbers). */
#define SESSION_MAX_EXERCISES 10
#define SESSION_MAX_SETS 10      /* sets per exercise; cycles per exercise */
#define SESSION_MAX_CUFFS 2      /* cuffs per exercise (bilateral) */
#define SESSION_ID_MAX 64        /* code points of an id */
#define SESSION_NAME_MAX 64      /* code points of an exercise name */
/* Buffer sizes: a code point is at most 4 UTF-8 bytes. */
#define SESSION_ID_BUF (SESSION_ID_MAX * 4 + 1)
#define SESSION_NAME_BUF (SESSION_NAME_MAX * 4 + 1)

#define SESSION_PCT_LOP_MIN 10
#define SESSION_PCT_LOP_MAX 100
#define SESSION_REPS_MIN 1
#define SESSION_REPS_MAX 100
#define SESSION_TEMPO_MIN_S 1
#define SESSION_TEMPO_MAX_S 10
#define SESSION_REST_MAX_S 600
#define SESSION_REPERFUSION_MIN_S 60
#define SESSION_REPERFUSION_MAX_S 600
#define SESSION_CYCLE_MIN_S 5    /* on_s and off_s */
#define SESSION_CYCLE_MAX_S 600
/* Plausible limb occlusion pressure (DESIGN §4 LOP validity). */
#define SESSION_LOP_MIN_MMHG 50.0
#define SESSION_LOP_MAX_MMHG 350.0
/* Cycle mode: the first cycle starts at no less than this % of the target
 * and each cycle adds SESSION_CYCLE_STEP_PCT, capped at the target. */
#define SESSION_CYCLE_START_MIN_PCT 50
#define SESSION_CYCLE_STEP_PCT 10

enum session_mode {
	SESSION_MODE_CONTINUOUS = 0, /* inflated through sets and rests */
	SESSION_MODE_INTERMITTENT,   /* deflated during rests */
	SESSION_MODE_CYCLE,          /* on_s inflated / off_s deflated, stepped, no reps */
};

struct session_exercise {
	char name[SESSION_NAME_BUF];
	unsigned n_cuffs;
	char cuffs[SESSION_MAX_CUFFS][SESSION_ID_BUF];
	unsigned pct_lop;
	enum session_mode mode;
	/* continuous / intermittent */
	unsigned n_sets;
	unsigned sets[SESSION_MAX_SETS]; /* reps per set */
	unsigned tempo_up_s;
	unsigned tempo_down_s;
	unsigned rest_s;                 /* 0: the next set follows at once */
	/* cycle */
	unsigned on_s;
	unsigned off_s;
	unsigned cycles;
	/* all modes */
	unsigned reperfusion_s;          /* deflated time before the next exercise */
};

struct session_plan {
	unsigned n_exercises;
	struct session_exercise exercises[SESSION_MAX_EXERCISES];
};

enum session_phase {
	SESSION_PHASE_IDLE = 0, /* created, not started */
	SESSION_PHASE_LOP,
	SESSION_PHASE_INFLATING,
	SESSION_PHASE_SET,      /* a set of reps, or the "on" part of a cycle */
	SESSION_PHASE_REST,     /* between sets, or the "off" part of a cycle */
	SESSION_PHASE_DEFLATING,
	SESSION_PHASE_REPERFUSION,
	SESSION_PHASE_PAUSED,
	SESSION_PHASE_COMPLETED,
	SESSION_PHASE_STOPPED,
	SESSION_PHASE_ABORTED,
};

enum session_action_kind {
	SESSION_ACT_SET_TARGET = 0,
	SESSION_ACT_DEFLATE,
	SESSION_ACT_CUE,
	SESSION_ACT_MEASURE_LOP,
};

struct session_action {
	enum session_action_kind kind;
	const char *cuff;
	double target_mmHg;             /* SET_TARGET */
	uint16_t ramp_ms;               /* SET_TARGET */
	enum bfr_deflate_reason reason; /* DEFLATE */
	bool rest;                      /* DEFLATE for an intermittent rest or a cycle's
					 * "off" period (not the start of reperfusion) */
	enum bfr_cue cue;               /* CUE */
};

enum session_event_type {
	SESSION_EV_STARTED = 0,
	SESSION_EV_LOP_MEASURED,
	SESSION_EV_PHASE,
	SESSION_EV_REP,
	SESSION_EV_ALARM,
	SESSION_EV_REFUSED,
	SESSION_EV_PAUSED,
	SESSION_EV_RESUMED,
	SESSION_EV_COMPLETED,
	SESSION_EV_STOPPED,
	SESSION_EV_ABORTED,
};

#define SESSION_REASON_BUF 64
#define SESSION_MESSAGE_BUF 160
#define SESSION_ALARM_ID_BUF 96

/* `cuff` and `exercise_name` point into the session: valid until session_free(). */
struct session_event {
	uint32_t seq;
	enum session_event_type type;
	uint64_t t_ms;            /* monotonic time the event belongs to */
	enum session_phase phase; /* phase after the event */
	int exercise;             /* 0-based, -1 before the first */
	const char *exercise_name; /* NULL before the first */
	unsigned set;             /* 1-based, 0 outside sets */
	unsigned rep;             /* 1-based, 0 outside sets */
	const char *cuff;         /* LOP_MEASURED */
	double lop_mmHg;          /* LOP_MEASURED */
	char reason[SESSION_REASON_BUF];    /* ABORTED / STOPPED / REFUSED code, else "" */
	char message[SESSION_MESSAGE_BUF];  /* human-readable detail, may be "" */
	char alarm_id[SESSION_ALARM_ID_BUF]; /* ALARM: the alarm id, else "" */
};

/* What one call asks of the caller, in the order it must be done. */
#define SESSION_OUTPUT_MAX 64

enum session_output_kind {
	SESSION_OUTPUT_ACTION = 0,
	SESSION_OUTPUT_EVENT,
};

struct session_output_item {
	enum session_output_kind kind;
	union {
		struct session_action action;
		struct session_event event;
	};
};

struct session_output {
	size_t n;
	bool more; /* deadlines still due: call session_tick() again */
	struct session_output_item items[SESSION_OUTPUT_MAX];
};

struct session_state {
	enum session_phase phase;      /* SESSION_PHASE_PAUSED while paused */
	enum session_phase paused_phase; /* the frozen phase, when paused */
	int exercise;                  /* 0-based, -1 before the first */
	const char *exercise_name;
	unsigned n_exercises;
	unsigned set;                  /* 1-based, 0 outside sets */
	unsigned n_sets;
	unsigned rep;                  /* reps cued so far in this set */
	int32_t seconds_left;          /* rounded up; -1 when waiting on the cuffs */
	int32_t session_left_s;        /* planned time left, rounded up; -1 once ended */
	unsigned n_reps;               /* reps of the current set; 0 in cycle mode or outside */
	unsigned pct_lop;              /* prescribed % of LOP of the current exercise; 0 none */
	unsigned n_targets;            /* the current exercise's cuffs: */
	const char *target_cuffs[SESSION_MAX_CUFFS];
	double targets[SESSION_MAX_CUFFS]; /* prescribed target, mmHg; NAN until the LOP is known */
	double inflation_s;            /* cumulative, including the running interval */
	uint32_t last_seq;
	const char *reason;            /* outcome reason once stopped/aborted, else NULL */
};

struct session_config {
	uint32_t inflate_timeout_ms; /* inflating longer than this aborts */
	uint32_t deflate_timeout_ms; /* deflating longer than this aborts */
	uint32_t lop_timeout_ms;     /* waiting for a LOP result longer aborts */
	uint16_t ramp_ms;            /* SET_TARGET ramp */
	double inflated_band_mmHg;   /* |p - target| <= this counts as inflated */
	double deflated_mmHg;        /* p < this counts as deflated */
};

struct session;

/* Defaults: inflate 30 s, deflate 5 s, LOP 60 s timeouts, ramp 2 s, band
 * 10 mmHg, deflated below 20 mmHg. */
void session_config_default(struct session_config *cfg);

/* Checks every plan bound above; -EINVAL when the plan is out of range. */
int session_plan_check(const struct session_plan *plan);

/* Sets (cycles in cycle mode) of an exercise: the one rule for everyone. */
unsigned session_exercise_n_sets(const struct session_exercise *ex);

/*
 * What a plan asks of one cuff, from its timing alone (SR-26: checked
 * against the cuff's limits before a session is accepted). Every inflation
 * counts its sets (and, inflated, its rests) plus overhead_ms for the ramp
 * up and the deflation. A LOP search is not counted: the safety engine does
 * not count it either.
 */
struct session_plan_load {
	uint64_t longest_inflation_ms; /* the longest continuous inflation */
	int longest_exercise;          /* where it is; -1: the cuff is not in the plan */
	uint64_t total_inflation_ms;   /* all of them: what the session total sees */
	/* The shortest deflated time between two exercises of this cuff (the
	 * reperfusion phases, plus the sets of exercises in between); UINT64_MAX
	 * when the cuff is in one exercise only. */
	uint64_t shortest_reperfusion_ms;
	int reperfusion_exercise; /* the exercise after which it is */
};

int session_plan_load(const struct session_plan *plan, const char *cuff, uint64_t overhead_ms,
		      struct session_plan_load *out);

/* cfg NULL: defaults. id is an id (1..64 code points). -EINVAL on a bad plan
 * or id; -ENOMEM. */
int session_new(const char *id, const struct session_plan *plan,
		const struct session_config *cfg, struct session **out);
void session_free(struct session *s);

/* A valid, fresh LOP known before start (the wiring checks its age). Cuffs
 * without one get a `lop` phase before their first exercise. -ENOENT for a
 * cuff not in the plan, -ERANGE outside 50..350 mmHg, -EBUSY once started. */
int session_set_lop(struct session *s, const char *cuff, double lop_mmHg);

/* IDLE -> started; -EBUSY when already started. */
int session_start(struct session *s, uint64_t now_ms, struct session_output *out);

/* Runs every deadline due at or before now_ms. */
int session_tick(struct session *s, uint64_t now_ms, struct session_output *out);

/* The earliest time session_tick() has work; -ENOENT when nothing is timed
 * (idle, paused, waiting on the cuffs without timeout, or ended). */
int session_next_deadline(const struct session *s, uint64_t *out_ms);

/* One pressure sample of a cuff, received at now_ms. -ENOENT for a cuff not
 * in the plan; -EINVAL for a non-finite or negative pressure. */
int session_pressure(struct session *s, const char *cuff, double mmHg, uint64_t now_ms,
		     struct session_output *out);

/* Result of MEASURE_LOP. ok false (the cuff failed) or a LOP outside
 * 50..350 mmHg aborts the session with reason "lop_invalid" (the call
 * still returns 0: the input was well-formed). -ENOENT for a cuff not in
 * the plan; -EALREADY when no measurement of that cuff is pending. */
int session_lop_result(struct session *s, const char *cuff, bool ok, double lop_mmHg,
		       uint64_t now_ms, struct session_output *out);

/* -EBUSY (and a `refused` event with reason "bad_state", unless the session
 * has ended) when the session is not in a state that allows it: pause needs
 * a running phase other than lop; resume needs a paused session. */
int session_pause(struct session *s, uint64_t now_ms, struct session_output *out);
int session_resume(struct session *s, uint64_t now_ms, struct session_output *out);
/* Deflates and ends as stopped. -EBUSY when already ended. */
int session_stop(struct session *s, uint64_t now_ms, struct session_output *out);
/* E-stop or a safety deflate: deflates with `reason` and ends as aborted
 * with reason_code (e.g. "estop", "over_pressure"). -EBUSY when ended. */
int session_abort(struct session *s, const char *reason_code, enum bfr_deflate_reason reason,
		  uint64_t now_ms, struct session_output *out);

/* Adds an `alarm` event referring to alarm_id (seq stays contiguous);
 * -EBUSY once the session has ended (nothing follows its final event). */
int session_note_alarm(struct session *s, const char *alarm_id, uint64_t now_ms,
		       struct session_output *out);
/* Adds a `refused` event, e.g. when the safety engine refused inflation. */
int session_note_refused(struct session *s, const char *code, const char *message,
			 uint64_t now_ms, struct session_output *out);

int session_get_state(const struct session *s, uint64_t now_ms, struct session_state *out);
const char *session_id(const struct session *s);
const struct session_plan *session_plan(const struct session *s);
bool session_ended(const struct session *s);

/* Figures of one finished set (0-based; cycle: one "on" period) of one cuff (index
 * into the exercise's cuffs). -ENOENT when out of range or not finished,
 * -ENODATA when it had no samples. */
int session_set_figures(const struct session *s, unsigned exercise, unsigned set,
			unsigned cuff_index, struct set_figures *out);

const char *session_phase_name(enum session_phase phase);
const char *session_event_type_name(enum session_event_type type);
const char *session_mode_name(enum session_mode mode);
/* Pressure of an exercise's cycle (0-based) in % of its target: starts at
 * max(50, 100 - 10 * (cycles - 1)) and steps +10 per cycle up to 100, so
 * the last cycle always reaches the target. 100 for other modes. */
unsigned session_cycle_step_pct(const struct session_exercise *ex, unsigned cycle);

#endif
