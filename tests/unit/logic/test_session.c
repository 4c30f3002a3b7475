/*
 * test_session.c - session timing with a fake clock and a scripted cuff model.
 *
 * The model answers each SET_TARGET / DEFLATE by jumping to the new pressure
 * `lag` ms after the command; samples arrive every 100 ms. Phase changes are
 * recorded as "t phase" lines and compared exactly.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "session.h"
#include "test_alloc.h"

/* cmocka 1.1's assert_double_eq rounds to float; compare doubles here. */
#define assert_double_eq(a, b, eps) check_double((a), (b), (eps), #a, __FILE__, __LINE__)

static void check_double(double got, double want, double eps, const char *what,
			 const char *file, int line)
{
	if (!(fabs(got - want) <= eps))
		fail_msg("%s:%d: %s = %.12g, want %.12g", file, line, what, got, want);
}

#define MAX_LINES 8192
#define MAX_PHASES 256
#define SAMPLE_MS 100

struct model_cuff {
	const char *id;
	double from, to;
	uint64_t cmd_t;
	uint64_t lag;     /* for the next command */
	uint64_t cmd_lag; /* of the command in effect */
};

struct ctx {
	struct session *s;
	uint64_t now;
	struct model_cuff cuffs[2];
	unsigned n_cuffs;
	/* everything, in order: "E <t> <type> [...]" and "A <kind> <cuff> [...]" */
	char log[MAX_LINES][96];
	unsigned n_log;
	/* phase changes only: "<t> <phase>" */
	char phases[MAX_PHASES][48];
	unsigned n_phases;
	uint32_t last_seq;
};

static void logf_(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(struct ctx *c, const char *fmt, ...)
{
	va_list ap;

	assert_true(c->n_log < MAX_LINES);
	va_start(ap, fmt);
	vsnprintf(c->log[c->n_log++], sizeof(c->log[0]), fmt, ap);
	va_end(ap);
}

static struct model_cuff *model(struct ctx *c, const char *id)
{
	unsigned i;

	for (i = 0; i < c->n_cuffs; i++)
		if (strcmp(c->cuffs[i].id, id) == 0)
			return &c->cuffs[i];
	fail_msg("action for unknown cuff %s", id);
	return NULL;
}

static double model_p(const struct model_cuff *m, uint64_t t)
{
	return t >= m->cmd_t + m->cmd_lag ? m->to : m->from;
}

static const char *cue_name(enum bfr_cue cue)
{
	static const char *const n[] = {"rep-up", "rep-down", "set-start", "rest", "done"};

	return n[cue];
}

static void on_action(const struct session_action *a, void *user_data)
{
	struct ctx *c = user_data;
	struct model_cuff *m = model(c, a->cuff);

	switch (a->kind) {
	case SESSION_ACT_SET_TARGET:
		logf_(c, "A set %s %.1f", a->cuff, a->target_mmHg);
		m->from = model_p(m, c->now);
		m->to = a->target_mmHg;
		m->cmd_t = c->now;
		m->cmd_lag = m->lag;
		break;
	case SESSION_ACT_DEFLATE:
		logf_(c, "A deflate %s %d%s", a->cuff, (int)a->reason, a->rest ? " rest" : "");
		m->from = model_p(m, c->now);
		m->to = 0;
		m->cmd_t = c->now;
		m->cmd_lag = m->lag;
		break;
	case SESSION_ACT_CUE:
		logf_(c, "A cue %s %s", a->cuff, cue_name(a->cue));
		break;
	case SESSION_ACT_MEASURE_LOP:
		logf_(c, "A lop %s", a->cuff);
		break;
	}
}

static void on_event(const struct session_event *e, void *user_data)
{
	struct ctx *c = user_data;

	/* seq contiguity is checked on every single event of every test. */
	assert_int_equal(e->seq, c->last_seq + 1);
	c->last_seq = e->seq;
	switch (e->type) {
	case SESSION_EV_PHASE:
		assert_true(c->n_phases < MAX_PHASES);
		snprintf(c->phases[c->n_phases++], sizeof(c->phases[0]), "%llu %s",
			 (unsigned long long)e->t_ms, session_phase_name(e->phase));
		logf_(c, "E %llu phase %s", (unsigned long long)e->t_ms,
		      session_phase_name(e->phase));
		break;
	case SESSION_EV_REP:
		logf_(c, "E %llu rep %u.%u", (unsigned long long)e->t_ms, e->set, e->rep);
		break;
	case SESSION_EV_LOP_MEASURED:
		logf_(c, "E %llu lop_measured %s %.1f", (unsigned long long)e->t_ms, e->cuff,
		      e->lop_mmHg);
		break;
	case SESSION_EV_ALARM:
		assert_string_equal(e->reason, "");
		assert_true(e->alarm_id[0] != '\0');
		logf_(c, "E %llu alarm %s", (unsigned long long)e->t_ms, e->alarm_id);
		break;
	default:
		assert_string_equal(e->alarm_id, "");
		logf_(c, "E %llu %s%s%s", (unsigned long long)e->t_ms,
		      session_event_type_name(e->type), e->reason[0] ? " " : "", e->reason);
		if (e->type >= SESSION_EV_COMPLETED) {
			assert_true(c->n_phases < MAX_PHASES);
			snprintf(c->phases[c->n_phases++], sizeof(c->phases[0]), "%llu %s",
				 (unsigned long long)e->t_ms, session_phase_name(e->phase));
		}
		break;
	}
}

/*
 * The session returns its actions and events; these wrappers hand them to
 * the recorders above in order, as the runner executes them. Every call's
 * output is executed whatever the call returned (session.h).
 */
static struct ctx *g_ctx;
static struct session_output g_out;

static int dispatch(int r)
{
	for (size_t i = 0; i < g_out.n; i++) {
		if (g_out.items[i].kind == SESSION_OUTPUT_ACTION)
			on_action(&g_out.items[i].action, g_ctx);
		else
			on_event(&g_out.items[i].event, g_ctx);
	}
	g_out.n = 0;
	return r;
}

#define call_start(s, t) dispatch(session_start((s), (t), &g_out))
#define call_tick(s, t) dispatch(session_tick((s), (t), &g_out))
#define call_pressure(s, cuff, p, t) dispatch(session_pressure((s), (cuff), (p), (t), &g_out))
#define call_lop_result(s, cuff, ok, lop, t) \
	dispatch(session_lop_result((s), (cuff), (ok), (lop), (t), &g_out))
#define call_pause(s, t) dispatch(session_pause((s), (t), &g_out))
#define call_resume(s, t) dispatch(session_resume((s), (t), &g_out))
#define call_stop(s, t) dispatch(session_stop((s), (t), &g_out))
#define call_abort(s, code, why, t) dispatch(session_abort((s), (code), (why), (t), &g_out))
#define call_note_alarm(s, id, t) dispatch(session_note_alarm((s), (id), (t), &g_out))
#define call_note_refused(s, code, msg, t) \
	dispatch(session_note_refused((s), (code), (msg), (t), &g_out))

static struct session_exercise exercise(const char *name, const char *cuff, unsigned pct,
					enum session_mode mode)
{
	struct session_exercise ex;

	memset(&ex, 0, sizeof(ex));
	snprintf(ex.name, sizeof(ex.name), "%s", name);
	ex.n_cuffs = 1;
	snprintf(ex.cuffs[0], sizeof(ex.cuffs[0]), "%s", cuff);
	ex.pct_lop = pct;
	ex.mode = mode;
	ex.reperfusion_s = 60;
	if (mode == SESSION_MODE_CYCLE) {
		ex.on_s = 5;
		ex.off_s = 5;
		ex.cycles = 3;
	} else {
		ex.n_sets = 2;
		ex.sets[0] = 2;
		ex.sets[1] = 1;
		ex.tempo_up_s = 1;
		ex.tempo_down_s = 1;
		ex.rest_s = 5;
	}
	return ex;
}

static void ctx_init(struct ctx *c, const struct session_plan *plan)
{
	unsigned e, i, k;

	memset(c, 0, sizeof(*c));
	g_ctx = c;
	for (e = 0; e < plan->n_exercises; e++)
		for (i = 0; i < plan->exercises[e].n_cuffs; i++) {
			const char *id = plan->exercises[e].cuffs[i];

			for (k = 0; k < c->n_cuffs; k++)
				if (strcmp(c->cuffs[k].id, id) == 0)
					break;
			if (k == c->n_cuffs) {
				c->cuffs[k].id = id;
				c->cuffs[k].lag = 500;
				c->n_cuffs++;
			}
		}
	assert_int_equal(session_new("sess-1", plan, NULL, &c->s), 0);
	/* model ids point into the session's own copy of the plan */
	for (k = 0; k < c->n_cuffs; k++) {
		const struct session_plan *p = session_plan(c->s);

		for (e = 0; e < p->n_exercises; e++)
			for (i = 0; i < p->exercises[e].n_cuffs; i++)
				if (strcmp(p->exercises[e].cuffs[i], c->cuffs[k].id) == 0)
					c->cuffs[k].id = p->exercises[e].cuffs[i];
	}
}

static void ctx_start(struct ctx *c, uint64_t t)
{
	c->now = t;
	assert_int_equal(call_start(c->s, t), 0);
}

/* Samples every SAMPLE_MS up to and including t_end. */
static void run_until(struct ctx *c, uint64_t t_end)
{
	uint64_t t;
	unsigned i;

	for (t = (c->now / SAMPLE_MS + 1) * SAMPLE_MS; t <= t_end; t += SAMPLE_MS) {
		c->now = t;
		assert_int_equal(call_tick(c->s, t), 0);
		for (i = 0; i < c->n_cuffs; i++)
			assert_int_equal(call_pressure(c->s, c->cuffs[i].id,
							  model_p(&c->cuffs[i], t), t),
					 0);
	}
}

static void expect_phases(const struct ctx *c, const char *const *want, unsigned n)
{
	unsigned i;

	for (i = 0; i < n && i < c->n_phases; i++)
		if (strcmp(c->phases[i], want[i]) != 0)
			fail_msg("phase %u: got \"%s\", want \"%s\"", i, c->phases[i], want[i]);
	if (c->n_phases != n) {
		for (i = 0; i < c->n_phases; i++)
			print_message("  %s\n", c->phases[i]);
		fail_msg("%u phases, want %u", c->n_phases, n);
	}
}

/* Index of the first log line equal to `line` at or after `from`, or fail. */
static unsigned find_line(const struct ctx *c, unsigned from, const char *line)
{
	unsigned i;

	for (i = from; i < c->n_log; i++)
		if (strcmp(c->log[i], line) == 0)
			return i;
	for (i = 0; i < c->n_log; i++)
		print_message("  %3u %s\n", i, c->log[i]);
	fail_msg("no \"%s\" at or after line %u", line, from);
	return 0;
}

static unsigned count_prefix(const struct ctx *c, const char *prefix)
{
	unsigned i, n = 0;

	for (i = 0; i < c->n_log; i++)
		n += strncmp(c->log[i], prefix, strlen(prefix)) == 0;
	return n;
}

static void ctx_free(struct ctx *c)
{
	session_free(c->s);
	c->s = NULL;
}

static struct session_plan one(struct session_exercise ex)
{
	struct session_plan p;

	memset(&p, 0, sizeof(p));
	p.n_exercises = 1;
	p.exercises[0] = ex;
	return p;
}

/* --- full sessions --------------------------------------------------------- */

static void test_continuous_full(void **state)
{
	struct session_plan plan = one(exercise("squat", "L", 50, SESSION_MODE_CONTINUOUS));
	static const char *const want[] = {
		"1000 inflating", "1500 set", "5500 rest", "10500 set", "12500 deflating",
		"13000 completed",
	};
	struct session_state st;
	struct set_figures fig;
	static struct ctx c;
	unsigned at;

	ctx_init(&c, &plan);
	assert_int_equal(session_set_lop(c.s, "L", 200), 0);
	ctx_start(&c, 1000);
	run_until(&c, 20000);
	expect_phases(&c, want, sizeof(want) / sizeof(want[0]));

	/* Exact order of cues and rep events in set 1 (tempo 1 s up, 1 s down). */
	at = find_line(&c, 0, "E 1000 started");
	at = find_line(&c, at, "A set L 100.0");
	at = find_line(&c, at, "A cue L set-start");
	at = find_line(&c, at, "E 1500 phase set");
	at = find_line(&c, at, "A cue L rep-up");
	at = find_line(&c, at, "E 1500 rep 1.1");
	at = find_line(&c, at, "A cue L rep-down");
	at = find_line(&c, at, "A cue L rep-up");
	at = find_line(&c, at, "E 3500 rep 1.2");
	at = find_line(&c, at, "A cue L rep-down");
	at = find_line(&c, at, "A cue L rest");
	at = find_line(&c, at, "E 5500 phase rest");
	at = find_line(&c, at, "A cue L set-start"); /* continuous: no re-inflation */
	at = find_line(&c, at, "E 10500 phase set");
	at = find_line(&c, at, "E 10500 rep 2.1");
	at = find_line(&c, at, "A cue L done");
	at = find_line(&c, at, "A deflate L 0");
	at = find_line(&c, at, "E 12500 phase deflating");
	find_line(&c, at, "E 13000 completed");
	assert_int_equal(count_prefix(&c, "A set "), 1);
	assert_int_equal(count_prefix(&c, "A deflate "), 1);
	assert_int_equal(count_prefix(&c, "E "), 10);

	assert_int_equal(session_get_state(c.s, 20000, &st), 0);
	assert_int_equal(st.phase, SESSION_PHASE_COMPLETED);
	assert_true(session_ended(c.s));
	assert_double_eq(st.inflation_s, 11.5, 1e-9);
	assert_int_equal(st.last_seq, c.last_seq);
	assert_null(st.reason);

	/* Set 1 ran at exactly 100 mmHg for 4 s: figures say so. */
	assert_int_equal(session_set_figures(c.s, 0, 0, 0, &fig), 0);
	assert_double_eq(fig.mean_mmHg, 100, 1e-9);
	assert_double_eq(fig.pct_within_5, 100, 1e-9);
	assert_double_eq(fig.peak_pct_lop, 50, 1e-9);
	assert_double_eq(fig.time_under_pressure_s, 4.0, 1e-9);
	assert_double_eq(fig.target_mmHg, 100, 1e-9);
	assert_int_equal(session_set_figures(c.s, 0, 1, 0, &fig), 0);
	assert_double_eq(fig.time_under_pressure_s, 2.0, 1e-9);
	assert_int_equal(session_set_figures(c.s, 0, 2, 0, &fig), -ENOENT);
	assert_int_equal(session_set_figures(c.s, 0, 0, 1, &fig), -ENOENT);
	assert_int_equal(session_set_figures(c.s, 1, 0, 0, &fig), -ENOENT);
	ctx_free(&c);
}

static void test_intermittent_full(void **state)
{
	struct session_exercise ex = exercise("press", "L", 50, SESSION_MODE_INTERMITTENT);
	struct session_plan plan;
	static const char *const want[] = {
		"1000 inflating", "1500 set", "5500 rest", "10500 inflating", "11000 set",
		"13000 deflating", "13500 completed",
	};
	struct session_state st;
	static struct ctx c;
	unsigned at;

	plan = one(ex);
	ctx_init(&c, &plan);
	assert_int_equal(session_set_lop(c.s, "L", 200), 0);
	ctx_start(&c, 1000);
	run_until(&c, 20000);
	expect_phases(&c, want, sizeof(want) / sizeof(want[0]));
	at = find_line(&c, 0, "A cue L rest");
	at = find_line(&c, at, "A deflate L 0 rest"); /* deflated through the rest */
	at = find_line(&c, at, "E 5500 phase rest");
	at = find_line(&c, at, "A set L 100.0");
	find_line(&c, at, "E 10500 phase inflating");
	assert_int_equal(count_prefix(&c, "A set "), 2);
	assert_int_equal(session_get_state(c.s, 20000, &st), 0);
	/* inflated 1000..5500 and 10500..13000 */
	assert_double_eq(st.inflation_s, 7.0, 1e-9);
	ctx_free(&c);
}

static void test_cycle_full(void **state)
{
	struct session_plan plan = one(exercise("kaatsu", "L", 50, SESSION_MODE_CYCLE));
	static const char *const want[] = {
		"1000 inflating", "1500 set",	"6500 rest",	   "11500 inflating",
		"12000 set",	  "17000 rest", "22000 inflating", "22500 set",
		"27500 deflating", "28000 completed",
	};
	static struct ctx c;
	struct set_figures fig;
	unsigned at;

	ctx_init(&c, &plan);
	assert_int_equal(session_set_lop(c.s, "L", 200), 0);
	ctx_start(&c, 1000);
	run_until(&c, 40000);
	expect_phases(&c, want, sizeof(want) / sizeof(want[0]));
	/* Stepped pressure: 80 %, 90 %, 100 % of the 100 mmHg target. */
	at = find_line(&c, 0, "A set L 80.0");
	at = find_line(&c, at, "A deflate L 0 rest"); /* "off" periods are rests */
	at = find_line(&c, at, "A set L 90.0");
	at = find_line(&c, at, "A deflate L 0 rest");
	at = find_line(&c, at, "A set L 100.0");
	find_line(&c, at, "A deflate L 0"); /* the end of the exercise is not */
	assert_int_equal(count_prefix(&c, "E "), 11);
	assert_int_equal(count_prefix(&c, "A cue L rep"), 0); /* no reps in cycle mode */
	assert_int_equal(session_set_figures(c.s, 0, 1, 0, &fig), 0);
	assert_double_eq(fig.target_mmHg, 90, 1e-9);
	assert_double_eq(fig.mean_mmHg, 90, 1e-9);
	ctx_free(&c);
}

static void test_cycle_steps(void **state)
{
	struct session_exercise ex = exercise("k", "L", 50, SESSION_MODE_CYCLE);

	ex.cycles = 1;
	assert_int_equal(session_cycle_step_pct(&ex, 0), 100);
	ex.cycles = 3;
	assert_int_equal(session_cycle_step_pct(&ex, 0), 80);
	assert_int_equal(session_cycle_step_pct(&ex, 2), 100);
	ex.cycles = 6;
	assert_int_equal(session_cycle_step_pct(&ex, 0), 50);
	assert_int_equal(session_cycle_step_pct(&ex, 5), 100);
	ex.cycles = 10;
	assert_int_equal(session_cycle_step_pct(&ex, 0), 50);
	assert_int_equal(session_cycle_step_pct(&ex, 4), 90);
	assert_int_equal(session_cycle_step_pct(&ex, 5), 100);
	assert_int_equal(session_cycle_step_pct(&ex, 9), 100);
	ex.mode = SESSION_MODE_CONTINUOUS;
	assert_int_equal(session_cycle_step_pct(&ex, 0), 100);
}

/* Two exercises: reperfusion between them, then the second runs on its cuff. */
static void test_two_exercises_reperfusion(void **state)
{
	struct session_plan plan;
	static const char *const want[] = {
		"1000 inflating", "1500 set",	  "5500 rest",	     "10500 set",
		"12500 deflating", "13000 reperfusion", "73000 inflating", "73500 set",
		"78500 rest",	  "83500 inflating", "84000 set",	     "89000 rest",
		"94000 inflating", "94500 set",	     "99500 deflating", "100000 completed",
	};
	static struct ctx c;
	struct session_state st;

	memset(&plan, 0, sizeof(plan));
	plan.n_exercises = 2;
	plan.exercises[0] = exercise("squat", "L", 50, SESSION_MODE_CONTINUOUS);
	plan.exercises[1] = exercise("kaatsu", "R", 40, SESSION_MODE_CYCLE);
	ctx_init(&c, &plan);
	assert_int_equal(session_set_lop(c.s, "L", 200), 0);
	assert_int_equal(session_set_lop(c.s, "R", 150), 0);
	ctx_start(&c, 1000);
	run_until(&c, 30000);
	assert_int_equal(session_get_state(c.s, 30000, &st), 0);
	assert_int_equal(st.phase, SESSION_PHASE_REPERFUSION);
	assert_int_equal(st.seconds_left, 43);
	assert_int_equal(st.exercise, 0);
	run_until(&c, 120000);
	expect_phases(&c, want, sizeof(want) / sizeof(want[0]));
	find_line(&c, 0, "A set R 60.0"); /* 40 % of 150 x 100 % (last cycle) */
	find_line(&c, 0, "A set R 48.0"); /* first cycle at 80 % */
	ctx_free(&c);
}

/* What a dashboard reads from the state (issue 10): plan totals, the
 * prescription and the planned time left. Planned: squat 4 s + rest 5 s +
 * 2 s, reperfusion 60 s, kaatsu 3 x 5 s on + 2 x 5 s off: 96 s. */
static void test_state_for_dashboard(void **state)
{
	struct session_plan plan;
	static struct ctx c;
	struct session_state st;

	memset(&plan, 0, sizeof(plan));
	plan.n_exercises = 2;
	plan.exercises[0] = exercise("squat", "L", 50, SESSION_MODE_CONTINUOUS);
	plan.exercises[1] = exercise("kaatsu", "R", 40, SESSION_MODE_CYCLE);
	ctx_init(&c, &plan);
	assert_int_equal(session_set_lop(c.s, "L", 200), 0);
	assert_int_equal(session_set_lop(c.s, "R", 150), 0);
	ctx_start(&c, 1000);
	assert_int_equal(session_get_state(c.s, 1000, &st), 0);
	assert_int_equal(st.phase, SESSION_PHASE_INFLATING);
	assert_int_equal(st.session_left_s, 96);
	assert_int_equal(st.n_exercises, 2);
	assert_int_equal(st.pct_lop, 50);
	assert_int_equal(st.n_targets, 1);
	assert_string_equal(st.target_cuffs[0], "L");
	check_double(st.targets[0], 100.0, 1e-9, "target L", __FILE__, __LINE__);

	run_until(&c, 3000); /* set 1 since 1500, 4 s long */
	assert_int_equal(session_get_state(c.s, 3000, &st), 0);
	assert_int_equal(st.phase, SESSION_PHASE_SET);
	assert_int_equal(st.set, 1);
	assert_int_equal(st.n_sets, 2);
	assert_int_equal(st.n_reps, 2);
	assert_int_equal(st.seconds_left, 3);
	assert_int_equal(st.session_left_s, 95); /* 2.5 + 92 */

	run_until(&c, 7000); /* rest after set 1, until 10500 */
	assert_int_equal(session_get_state(c.s, 7000, &st), 0);
	assert_int_equal(st.phase, SESSION_PHASE_REST);
	assert_int_equal(st.session_left_s, 91); /* 3.5 + 2 + 60 + 25 */

	run_until(&c, 30000); /* reperfusion until 73000 */
	assert_int_equal(session_get_state(c.s, 30000, &st), 0);
	assert_int_equal(st.phase, SESSION_PHASE_REPERFUSION);
	assert_int_equal(st.session_left_s, 68); /* 43 + 25 */

	run_until(&c, 74000); /* kaatsu, first cycle */
	assert_int_equal(session_get_state(c.s, 74000, &st), 0);
	assert_int_equal(st.phase, SESSION_PHASE_SET);
	assert_int_equal(st.n_reps, 0); /* cycles have no reps */
	assert_int_equal(st.pct_lop, 40);
	assert_string_equal(st.target_cuffs[0], "R");
	check_double(st.targets[0], 48.0, 1e-9, "first cycle target R", __FILE__, __LINE__);
	assert_int_equal(st.session_left_s, 25); /* 4.5 + 20.5 */

	/* Paused in a set: the frozen time counts, and it does not run. */
	assert_int_equal(call_pause(c.s, 74000), 0);
	assert_int_equal(session_get_state(c.s, 90000, &st), 0);
	assert_int_equal(st.session_left_s, 25);

	assert_int_equal(call_stop(c.s, 90000), 0);
	assert_int_equal(session_get_state(c.s, 90000, &st), 0);
	assert_int_equal(st.session_left_s, -1);
	assert_int_equal(st.n_targets, 0);
	ctx_free(&c);
}

static void test_bilateral_lockstep(void **state)
{
	struct session_exercise ex = exercise("squat", "L", 50, SESSION_MODE_CONTINUOUS);
	struct session_plan plan;
	static const char *const want[] = {
		"1000 inflating", "2500 set", "6500 rest", "11500 set", "13500 deflating",
		"15000 completed",
	};
	static struct ctx c;
	unsigned at;

	ex.n_cuffs = 2;
	strcpy(ex.cuffs[1], "R");
	plan = one(ex);
	ctx_init(&c, &plan);
	c.cuffs[1].lag = 1500; /* the right cuff is slower: the set waits for it */
	assert_int_equal(session_set_lop(c.s, "L", 200), 0);
	assert_int_equal(session_set_lop(c.s, "R", 180), 0);
	ctx_start(&c, 1000);
	run_until(&c, 20000);
	expect_phases(&c, want, sizeof(want) / sizeof(want[0]));
	/* each cue goes to both cuffs back to back, left first */
	at = find_line(&c, 0, "A set L 100.0");
	at = find_line(&c, at, "A set R 90.0");
	at = find_line(&c, at, "A cue L set-start");
	assert_string_equal(c.log[at + 1], "A cue R set-start");
	at = find_line(&c, at, "A cue L rep-up");
	assert_string_equal(c.log[at + 1], "A cue R rep-up");
	at = find_line(&c, at, "A cue L rep-down");
	assert_string_equal(c.log[at + 1], "A cue R rep-down");
	at = find_line(&c, at, "A deflate L 0");
	assert_string_equal(c.log[at + 1], "A deflate R 0");
	assert_int_equal(count_prefix(&c, "E 2500 rep 1.1"), 1); /* one rep event, not two */
	ctx_free(&c);
}

/* rest_s 0: the next set follows at once and the cuff stays inflated, even
 * in intermittent mode. */
static void test_no_rest(void **state)
{
	struct session_exercise ex = exercise("press", "L", 50, SESSION_MODE_INTERMITTENT);
	struct session_plan plan;
	static const char *const want[] = {
		"1000 inflating", "1500 set", "5500 set", "7500 deflating", "8000 completed",
	};
	static struct ctx c;

	ex.rest_s = 0;
	plan = one(ex);
	ctx_init(&c, &plan);
	assert_int_equal(session_set_lop(c.s, "L", 200), 0);
	ctx_start(&c, 1000);
	run_until(&c, 10000);
	expect_phases(&c, want, sizeof(want) / sizeof(want[0]));
	assert_int_equal(count_prefix(&c, "A set "), 1);
	assert_int_equal(count_prefix(&c, "A deflate "), 1);
	assert_int_equal(count_prefix(&c, "A cue L rest"), 0);
	ctx_free(&c);
}

/* The largest plan shape: 10 exercises x 10 sets, every event in sequence. */
static void test_largest_plan(void **state)
{
	struct session_exercise ex = exercise("e", "L", 50, SESSION_MODE_CONTINUOUS);
	struct session_plan plan;
	static struct ctx c;
	struct session_state st;
	unsigned i;

	ex.n_sets = SESSION_MAX_SETS;
	for (i = 0; i < SESSION_MAX_SETS; i++)
		ex.sets[i] = 10;
	ex.rest_s = 0;
	memset(&plan, 0, sizeof(plan));
	plan.n_exercises = SESSION_MAX_EXERCISES;
	for (i = 0; i < SESSION_MAX_EXERCISES; i++)
		plan.exercises[i] = ex;
	ctx_init(&c, &plan);
	assert_int_equal(session_set_lop(c.s, "L", 200), 0);
	ctx_start(&c, 1000);
	run_until(&c, 3000000);
	assert_true(session_ended(c.s));
	assert_int_equal(session_get_state(c.s, 3000000, &st), 0);
	assert_int_equal(st.phase, SESSION_PHASE_COMPLETED);
	/* started + 10 x (inflating + 10 x (set + 10 reps) + deflating)
	 * + 9 reperfusions + completed; seq checked contiguous on the way */
	assert_int_equal(c.last_seq, 1 + 10 * (1 + 10 * 11 + 1) + 9 + 1);
	assert_int_equal(st.last_seq, c.last_seq);
	/* each exercise: inflating 500 ms + 200 s of sets; 10 of them */
	assert_double_eq(st.inflation_s, 10 * 200.5, 1e-9);
	ctx_free(&c);
}

/* --- pause / resume / stop / abort ------------------------------------------ */

static void test_pause_resume_freezes_time(void **state)
{
	struct session_plan plan = one(exercise("squat", "L", 50, SESSION_MODE_CONTINUOUS));
	static const char *const want[] = {
		"1000 inflating", "1500 set", "100000 inflating", "100500 set", "104000 rest",
		"109000 set", "111000 deflating", "111500 completed",
	};
	static struct ctx c;
	struct session_state st;
	struct set_figures fig;
	uint64_t due;
	unsigned at, before;

	ctx_init(&c, &plan);
	assert_int_equal(session_set_lop(c.s, "L", 200), 0);
	ctx_start(&c, 1000);
	run_until(&c, 2000); /* 500 ms into set 1 (4 s long); rep-down due at 2500 */
	c.now = 2000;
	assert_int_equal(call_pause(c.s, 2000), 0);
	at = find_line(&c, 0, "A deflate L 0");
	find_line(&c, at, "E 2000 paused");
	assert_int_equal(session_next_deadline(c.s, &due), -ENOENT);
	assert_int_equal(session_get_state(c.s, 2000, &st), 0);
	assert_int_equal(st.phase, SESSION_PHASE_PAUSED);
	assert_int_equal(st.paused_phase, SESSION_PHASE_SET);
	assert_int_equal(st.seconds_left, 4); /* 3.5 s rounded up */
	assert_int_equal(st.set, 1);
	assert_int_equal(st.rep, 1);
	assert_double_eq(st.inflation_s, 1.0, 1e-9);

	/* A long pause: nothing happens, nothing counts. */
	before = c.n_log;
	run_until(&c, 99900);
	assert_int_equal(c.n_log, before);
	assert_int_equal(session_get_state(c.s, 99900, &st), 0);
	assert_int_equal(st.seconds_left, 4);
	assert_double_eq(st.inflation_s, 1.0, 1e-9);
	assert_int_equal(call_pause(c.s, 99900), -EBUSY); /* already paused */
	find_line(&c, before, "E 99900 refused bad_state");

	c.now = 100000;
	assert_int_equal(call_resume(c.s, 100000), 0);
	at = find_line(&c, before, "E 100000 resumed");
	at = find_line(&c, at, "A set L 100.0");
	run_until(&c, 120000);
	expect_phases(&c, want, sizeof(want) / sizeof(want[0]));
	/* The set had 3.5 s left; the rep-down due 500 ms after the pause point
	 * comes 500 ms after the set resumed, then rep 2 at +1500. */
	at = find_line(&c, at, "E 100500 phase set");
	at = find_line(&c, at, "A cue L rep-down");
	at = find_line(&c, at, "E 102000 rep 1.2");
	assert_int_equal(call_resume(c.s, 120000), -EBUSY);
	/* Set 1's figures cover its 4 s (0.5 before, 3.5 after the pause), all
	 * on target: the deflated pause is not part of the set. */
	assert_int_equal(session_set_figures(c.s, 0, 0, 0, &fig), 0);
	assert_double_eq(fig.covered_s, 4.0, 1e-9);
	assert_double_eq(fig.mean_mmHg, 100, 1e-9);
	assert_double_eq(fig.pct_within_5, 100, 1e-9);
	assert_int_equal(session_get_state(c.s, 120000, &st), 0);
	/* inflated 1000..2000, 100000..111000 */
	assert_double_eq(st.inflation_s, 12.0, 1e-9);
	ctx_free(&c);
}

static void test_pause_in_intermittent_rest_needs_no_inflation(void **state)
{
	struct session_plan plan = one(exercise("press", "L", 50, SESSION_MODE_INTERMITTENT));
	static const char *const want[] = {
		"1000 inflating", "1500 set",	    "5500 rest",	"50000 rest",
		"53000 inflating", "53500 set",	     "55500 deflating", "56000 completed",
	};
	static struct ctx c;
	unsigned before;

	ctx_init(&c, &plan);
	assert_int_equal(session_set_lop(c.s, "L", 200), 0);
	ctx_start(&c, 1000);
	run_until(&c, 7500); /* 2 s into the 5 s rest */
	assert_int_equal(call_pause(c.s, 7500), 0);
	before = count_prefix(&c, "A deflate");
	run_until(&c, 50000);
	assert_int_equal(call_resume(c.s, 50000), 0);
	assert_int_equal(count_prefix(&c, "A deflate"), before); /* already deflated */
	run_until(&c, 60000);
	expect_phases(&c, want, sizeof(want) / sizeof(want[0]));
	ctx_free(&c);
}

static void test_pause_during_inflating_and_reperfusion(void **state)
{
	struct session_plan plan;
	static struct ctx c;
	struct session_state st;

	memset(&plan, 0, sizeof(plan));
	plan.n_exercises = 2;
	plan.exercises[0] = exercise("a", "L", 50, SESSION_MODE_CONTINUOUS);
	plan.exercises[1] = exercise("b", "L", 50, SESSION_MODE_CONTINUOUS);
	ctx_init(&c, &plan);
	assert_int_equal(session_set_lop(c.s, "L", 200), 0);
	ctx_start(&c, 1000);
	/* pause while inflating: resume inflates afresh */
	assert_int_equal(call_pause(c.s, 1200), 0);
	assert_int_equal(session_get_state(c.s, 1200, &st), 0);
	assert_int_equal(st.seconds_left, -1);
	c.now = 3000;
	assert_int_equal(call_resume(c.s, 3000), 0);
	assert_string_equal(c.phases[c.n_phases - 1], "3000 inflating");
	run_until(&c, 30000); /* set 3500..7500, rest, set 12500..14500, deflated 15000 */
	assert_string_equal(c.phases[c.n_phases - 1], "15000 reperfusion");
	assert_int_equal(call_pause(c.s, 30000), 0); /* 45 s of reperfusion left */
	assert_int_equal(session_get_state(c.s, 30000, &st), 0);
	assert_int_equal(st.paused_phase, SESSION_PHASE_REPERFUSION);
	assert_int_equal(st.seconds_left, 45);
	run_until(&c, 40000);
	assert_int_equal(call_resume(c.s, 40000), 0);
	run_until(&c, 85000);
	assert_string_equal(c.phases[c.n_phases - 2], "40000 reperfusion");
	assert_string_equal(c.phases[c.n_phases - 1], "85000 inflating");
	ctx_free(&c);
}

static void test_stop_mid_set(void **state)
{
	struct session_plan plan = one(exercise("squat", "L", 50, SESSION_MODE_CONTINUOUS));
	static struct ctx c;
	struct session_state st;
	struct set_figures fig;
	uint64_t due;
	unsigned at;

	ctx_init(&c, &plan);
	assert_int_equal(session_set_lop(c.s, "L", 200), 0);
	ctx_start(&c, 1000);
	run_until(&c, 3000);
	c.now = 3000;
	assert_int_equal(call_stop(c.s, 3000), 0);
	at = find_line(&c, 0, "A deflate L 0");
	find_line(&c, at, "E 3000 stopped stopped");
	assert_int_equal(session_get_state(c.s, 3000, &st), 0);
	assert_int_equal(st.phase, SESSION_PHASE_STOPPED);
	assert_string_equal(st.reason, "stopped");
	assert_double_eq(st.inflation_s, 2.0, 1e-9);
	assert_int_equal(session_next_deadline(c.s, &due), -ENOENT);
	/* the partial set keeps its figures (1.5 s of samples) */
	assert_int_equal(session_set_figures(c.s, 0, 0, 0, &fig), 0);
	assert_double_eq(fig.covered_s, 1.5, 1e-9);
	/* ended: every command is refused, nothing more is emitted */
	at = c.n_log;
	assert_int_equal(call_stop(c.s, 3100), -EBUSY);
	assert_int_equal(call_abort(c.s, "estop", BFR_DEFLATE_ESTOP, 3100), -EBUSY);
	assert_int_equal(call_resume(c.s, 3100), -EBUSY);
	assert_int_equal(call_start(c.s, 3100), -EBUSY);
	run_until(&c, 10000);
	assert_int_equal(c.n_log, at); /* nothing follows the final event */
	ctx_free(&c);
}

static void test_stop_while_paused_and_before_start(void **state)
{
	struct session_plan plan = one(exercise("squat", "L", 50, SESSION_MODE_CONTINUOUS));
	static struct ctx c;

	ctx_init(&c, &plan);
	assert_int_equal(call_stop(c.s, 10), 0); /* never started: nothing to deflate */
	assert_int_equal(count_prefix(&c, "A "), 0);
	find_line(&c, 0, "E 10 stopped stopped");
	ctx_free(&c);

	ctx_init(&c, &plan);
	assert_int_equal(session_set_lop(c.s, "L", 200), 0);
	ctx_start(&c, 1000);
	run_until(&c, 2000);
	assert_int_equal(call_pause(c.s, 2000), 0);
	assert_int_equal(call_stop(c.s, 5000), 0);
	find_line(&c, 0, "E 5000 stopped stopped");
	ctx_free(&c);
}

static void test_abort_by_safety(void **state)
{
	struct session_plan plan = one(exercise("squat", "L", 50, SESSION_MODE_CONTINUOUS));
	static struct ctx c;
	struct session_state st;
	unsigned at;

	ctx_init(&c, &plan);
	assert_int_equal(session_set_lop(c.s, "L", 200), 0);
	ctx_start(&c, 1000);
	run_until(&c, 6000);
	c.now = 6000;
	assert_int_equal(call_abort(c.s, "estop", BFR_DEFLATE_ESTOP, 6000), 0);
	at = find_line(&c, 0, "A deflate L 2");
	find_line(&c, at, "E 6000 aborted estop");
	assert_int_equal(session_get_state(c.s, 6000, &st), 0);
	assert_int_equal(st.phase, SESSION_PHASE_ABORTED);
	assert_string_equal(st.reason, "estop");
	assert_int_equal(call_abort(c.s, "", BFR_DEFLATE_SAFETY, 6000), -EINVAL);
	assert_int_equal(call_abort(c.s, NULL, BFR_DEFLATE_SAFETY, 6000), -EINVAL);
	ctx_free(&c);
}

/* --- LOP phase --------------------------------------------------------------- */

static void test_lop_plausible(void **state)
{
	struct session_plan plan = one(exercise("squat", "L", 50, SESSION_MODE_CONTINUOUS));
	static struct ctx c;
	unsigned at;

	ctx_init(&c, &plan);
	ctx_start(&c, 1000);
	at = find_line(&c, 0, "A lop L");
	at = find_line(&c, at, "E 1000 phase lop");
	assert_int_equal(call_lop_result(c.s, "X", true, 180, 1500), -ENOENT);
	c.now = 9000;
	assert_int_equal(call_lop_result(c.s, "L", true, 180, 9000), 0);
	at = find_line(&c, at, "E 9000 lop_measured L 180.0");
	at = find_line(&c, at, "A set L 90.0");
	find_line(&c, at, "E 9000 phase inflating");
	assert_int_equal(call_lop_result(c.s, "L", true, 180, 9100), -EALREADY);
	ctx_free(&c);
}

static void test_lop_bilateral_waits_for_both(void **state)
{
	struct session_exercise ex = exercise("squat", "L", 50, SESSION_MODE_CONTINUOUS);
	struct session_plan plan;
	static struct ctx c;

	ex.n_cuffs = 2;
	strcpy(ex.cuffs[1], "R");
	plan = one(ex);
	ctx_init(&c, &plan);
	assert_int_equal(session_set_lop(c.s, "L", 200), 0);
	ctx_start(&c, 1000);
	assert_int_equal(count_prefix(&c, "A lop"), 1); /* only the cuff without LOP */
	find_line(&c, 0, "A lop R");
	assert_int_equal(call_lop_result(c.s, "L", true, 190, 1100), -EALREADY);
	assert_int_equal(call_lop_result(c.s, "R", true, 160, 1200), 0);
	find_line(&c, 0, "A set R 80.0");
	ctx_free(&c);
}

static void test_lop_implausible_or_failed_aborts(void **state)
{
	struct session_plan plan = one(exercise("squat", "L", 50, SESSION_MODE_CONTINUOUS));
	static const double bad[] = {49.9, 350.1, 0, -10, NAN, INFINITY};
	static struct ctx c;
	unsigned i, at;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ctx_init(&c, &plan);
		ctx_start(&c, 1000);
		assert_int_equal(call_lop_result(c.s, "L", true, bad[i], 2000), 0);
		at = find_line(&c, 0, "A deflate L 1");
		find_line(&c, at, "E 2000 aborted lop_invalid");
		assert_int_equal(count_prefix(&c, "A set"), 0);
		assert_int_equal(count_prefix(&c, "E 2000 lop_measured"), 0);
		ctx_free(&c);
	}
	/* boundaries 50 and 350 are plausible */
	ctx_init(&c, &plan);
	ctx_start(&c, 1000);
	assert_int_equal(call_lop_result(c.s, "L", true, 50, 2000), 0);
	find_line(&c, 0, "A set L 25.0");
	ctx_free(&c);
	/* the cuff reporting failure */
	ctx_init(&c, &plan);
	ctx_start(&c, 1000);
	assert_int_equal(call_lop_result(c.s, "L", false, 0, 2000), 0);
	find_line(&c, 0, "E 2000 aborted lop_invalid");
	ctx_free(&c);
}

static void test_lop_timeout(void **state)
{
	struct session_plan plan = one(exercise("squat", "L", 50, SESSION_MODE_CONTINUOUS));
	static struct ctx c;
	uint64_t due;

	ctx_init(&c, &plan);
	ctx_start(&c, 1000);
	assert_int_equal(session_next_deadline(c.s, &due), 0);
	assert_int_equal(due, 61000);
	assert_int_equal(call_tick(c.s, 60999), 0);
	assert_false(session_ended(c.s));
	assert_int_equal(call_tick(c.s, 61000), 0);
	find_line(&c, 0, "E 61000 aborted lop_timeout");
	/* a late result is refused */
	assert_int_equal(call_lop_result(c.s, "L", true, 180, 61001), -EALREADY);
	ctx_free(&c);
}

/* --- timeouts, limits ---------------------------------------------------------- */

static void test_inflate_timeout(void **state)
{
	struct session_plan plan = one(exercise("squat", "L", 50, SESSION_MODE_CONTINUOUS));
	static struct ctx c;
	uint64_t due;

	ctx_init(&c, &plan);
	c.cuffs[0].lag = 1000000; /* never gets there */
	assert_int_equal(session_set_lop(c.s, "L", 200), 0);
	ctx_start(&c, 1000);
	assert_int_equal(session_next_deadline(c.s, &due), 0);
	assert_int_equal(due, 31000);
	run_until(&c, 40000);
	find_line(&c, 0, "E 31000 aborted inflate_timeout");
	find_line(&c, 0, "A deflate L 1");
	ctx_free(&c);
}

static void test_deflate_timeout(void **state)
{
	struct session_plan plan = one(exercise("squat", "L", 50, SESSION_MODE_CONTINUOUS));
	static struct ctx c;

	ctx_init(&c, &plan);
	assert_int_equal(session_set_lop(c.s, "L", 200), 0);
	ctx_start(&c, 1000);
	run_until(&c, 12000);
	c.cuffs[0].lag = 1000000; /* the valve sticks */
	run_until(&c, 20000);
	find_line(&c, 0, "E 12500 phase deflating");
	find_line(&c, 0, "E 17500 aborted deflate_timeout");
	ctx_free(&c);
}


/* --- time and robustness ------------------------------------------------------ */

/* A late tick runs every deadline at its own scheduled time. */
static void test_late_tick_keeps_schedule(void **state)
{
	struct session_plan plan = one(exercise("squat", "L", 50, SESSION_MODE_CONTINUOUS));
	static struct ctx c;
	uint64_t due;

	ctx_init(&c, &plan);
	assert_int_equal(session_set_lop(c.s, "L", 200), 0);
	ctx_start(&c, 1000);
	run_until(&c, 1500);
	assert_int_equal(session_next_deadline(c.s, &due), 0);
	assert_int_equal(due, 2500); /* first rep-down */
	/* No calls for 8 s; then one tick. */
	assert_int_equal(call_tick(c.s, 9500), 0);
	find_line(&c, 0, "E 3500 rep 1.2");
	find_line(&c, 0, "E 5500 phase rest");
	assert_int_equal(session_next_deadline(c.s, &due), 0);
	assert_int_equal(due, 10500);
	ctx_free(&c);
}

/*
 * A very late tick (the loop stalled 200 s inside a 100-rep set) is more
 * than one output can hold: the session hands it over in chunks (`more`),
 * an input refuses with -EAGAIN until the catch-up is done, nothing is
 * skipped and every item keeps its own time.
 */
static void test_catch_up_in_chunks(void **state)
{
	struct session_exercise ex = exercise("squat", "L", 50, SESSION_MODE_CONTINUOUS);
	struct session_plan plan;
	static struct ctx c;
	unsigned chunks = 0;

	ex.n_sets = 1;
	ex.sets[0] = 100;
	plan = one(ex);
	ctx_init(&c, &plan);
	assert_int_equal(session_set_lop(c.s, "L", 200), 0);
	ctx_start(&c, 1000);
	run_until(&c, 1500); /* in the set from 1500 */
	assert_int_equal(session_tick(c.s, 201500, &g_out), 0);
	assert_true(g_out.more);
	assert_true(g_out.n <= SESSION_OUTPUT_MAX);
	dispatch(0);
	chunks++;
	assert_int_equal(call_pressure(c.s, "L", 100, 201500), -EAGAIN);
	for (;;) {
		assert_int_equal(session_tick(c.s, 201500, &g_out), 0);
		chunks++;
		if (!g_out.more)
			break;
		dispatch(0);
	}
	dispatch(0);
	assert_true(chunks > 5);
	/* 100 reps of 2 s from 1500: every rep cued at its own time, the set
	 * ended at 201500, seq contiguous throughout (on_event). */
	find_line(&c, 0, "E 1500 rep 1.1");
	find_line(&c, 0, "E 199500 rep 1.100");
	find_line(&c, 0, "E 201500 phase deflating");
	assert_int_equal(count_prefix(&c, "A cue L rep-up"), 100);
	assert_int_equal(call_pressure(c.s, "L", 100, 201500), 0);
	ctx_free(&c);
}

/* SR-26: the time a plan asks of a cuff, computed before it is accepted. */
static void test_SR_26_plan_load(void **state)
{
	struct session_exercise a = exercise("squat", "L", 50, SESSION_MODE_CONTINUOUS);
	struct session_exercise b = exercise("curl", "R", 50, SESSION_MODE_INTERMITTENT);
	struct session_exercise c = exercise("press", "L", 50, SESSION_MODE_CYCLE);
	struct session_plan plan;
	struct session_plan_load load;

	/* continuous: sets 2+1 reps of 2 s, one 5 s rest, held throughout:
	 * 4 + 5 + 2 = 11 s, plus 7 s overhead, one inflation */
	plan = one(a);
	assert_int_equal(session_plan_load(&plan, "L", 7000, &load), 0);
	assert_int_equal(load.longest_inflation_ms, 18000);
	assert_int_equal(load.total_inflation_ms, 18000);
	assert_int_equal(load.longest_exercise, 0);
	assert_true(load.shortest_reperfusion_ms == UINT64_MAX);
	/* intermittent: two inflations, 4 + 7 and 2 + 7 */
	plan = one(b);
	assert_int_equal(session_plan_load(&plan, "R", 7000, &load), 0);
	assert_int_equal(load.longest_inflation_ms, 11000);
	assert_int_equal(load.total_inflation_ms, 20000);
	/* ... with rest_s 0 the sets run into each other: one of 6 + 7 */
	plan.exercises[0].rest_s = 0;
	assert_int_equal(session_plan_load(&plan, "R", 7000, &load), 0);
	assert_int_equal(load.longest_inflation_ms, 13000);
	assert_int_equal(load.total_inflation_ms, 13000);
	/* L, R, L: the gap for L is both reperfusions plus R's 4 + 5 + 2 s */
	memset(&plan, 0, sizeof(plan));
	plan.n_exercises = 3;
	plan.exercises[0] = a;
	plan.exercises[1] = b;
	plan.exercises[2] = c;
	assert_int_equal(session_plan_load(&plan, "L", 7000, &load), 0);
	assert_int_equal(load.shortest_reperfusion_ms, 60000 + 11000 + 60000);
	assert_int_equal(load.reperfusion_exercise, 0);
	/* cycle: 3 inflations of 5 + 7 s */
	assert_int_equal(load.total_inflation_ms, 18000 + 3 * 12000);
	assert_int_equal(load.longest_inflation_ms, 18000);
	assert_int_equal(load.longest_exercise, 0);
	/* a cuff not in the plan asks nothing */
	assert_int_equal(session_plan_load(&plan, "X", 7000, &load), 0);
	assert_int_equal(load.total_inflation_ms, 0);
	assert_int_equal(load.longest_exercise, -1);
	assert_int_equal(session_plan_load(NULL, "L", 0, &load), -EINVAL);
	assert_int_equal(session_plan_load(&plan, NULL, 0, &load), -EINVAL);
}

/* Nothing follows the final event: notes after the end are refused. */
static void test_notes_after_end_refused(void **state)
{
	struct session_plan plan = one(exercise("squat", "L", 50, SESSION_MODE_CONTINUOUS));
	static struct ctx c;
	unsigned n;

	ctx_init(&c, &plan);
	assert_int_equal(session_set_lop(c.s, "L", 200), 0);
	ctx_start(&c, 1000);
	assert_int_equal(call_stop(c.s, 1200), 0);
	n = c.n_log;
	assert_int_equal(call_note_alarm(c.s, "gw-1", 1300), -EBUSY);
	assert_int_equal(call_note_refused(c.s, "reperfusion", NULL, 1300), -EBUSY);
	assert_int_equal(c.n_log, n);
	ctx_free(&c);
}

/* Monotonic input only: time going backwards is refused and changes nothing. */
static void test_time_backwards_refused(void **state)
{
	struct session_plan plan = one(exercise("squat", "L", 50, SESSION_MODE_CONTINUOUS));
	static struct ctx c;
	struct session_state a, b;
	unsigned n;

	ctx_init(&c, &plan);
	assert_int_equal(session_set_lop(c.s, "L", 200), 0);
	ctx_start(&c, 1000);
	run_until(&c, 3000);
	n = c.n_log;
	assert_int_equal(session_get_state(c.s, 3000, &a), 0);
	assert_int_equal(call_tick(c.s, 2999), -EINVAL);
	assert_int_equal(call_pressure(c.s, "L", 100, 100), -EINVAL);
	assert_int_equal(call_pause(c.s, 0), -EINVAL);
	assert_int_equal(call_stop(c.s, 2000), -EINVAL);
	assert_int_equal(call_abort(c.s, "estop", BFR_DEFLATE_ESTOP, 2000), -EINVAL);
	assert_int_equal(call_note_alarm(c.s, "a1", 2000), -EINVAL);
	assert_int_equal(call_lop_result(c.s, "L", true, 100, 2000), -EINVAL);
	assert_int_equal(c.n_log, n);
	assert_int_equal(session_get_state(c.s, 3000, &b), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	ctx_free(&c);
}

static void test_garbage_inputs(void **state)
{
	struct session_plan plan = one(exercise("squat", "L", 50, SESSION_MODE_CONTINUOUS));
	static struct ctx c;
	struct session_state st;
	unsigned n;

	ctx_init(&c, &plan);
	assert_int_equal(session_set_lop(c.s, "X", 200), -ENOENT);
	assert_int_equal(session_set_lop(c.s, "L", 20), -ERANGE);
	assert_int_equal(session_set_lop(c.s, "L", NAN), -ERANGE);
	assert_int_equal(call_pause(c.s, 0), -EBUSY); /* not started */
	assert_int_equal(session_set_lop(c.s, "L", 200), 0);
	ctx_start(&c, 1000);
	assert_int_equal(call_start(c.s, 1000), -EBUSY);
	assert_int_equal(session_set_lop(c.s, "L", 200), -EBUSY);
	n = c.n_log;
	assert_int_equal(call_pressure(c.s, "L", NAN, 1100), -EINVAL);
	assert_int_equal(call_pressure(c.s, "L", -1, 1100), -EINVAL);
	assert_int_equal(call_pressure(c.s, "L", INFINITY, 1100), -EINVAL);
	assert_int_equal(call_pressure(c.s, "nope", 100, 1100), -ENOENT);
	assert_int_equal(call_pressure(c.s, NULL, 100, 1100), -EINVAL);
	assert_int_equal(call_note_alarm(c.s, "", 1100), -EINVAL);
	assert_int_equal(call_note_refused(c.s, NULL, NULL, 1100), -EINVAL);
	assert_int_equal(c.n_log, n);
	assert_int_equal(session_get_state(c.s, 1100, &st), 0);
	assert_int_equal(st.phase, SESSION_PHASE_INFLATING);
	/* notes keep seq contiguous (checked in on_event) */
	assert_int_equal(call_note_alarm(c.s, "alarm-7", 1200), 0);
	assert_int_equal(call_note_refused(c.s, "reperfusion", "too soon", 1300), 0);
	find_line(&c, n, "E 1200 alarm alarm-7");
	find_line(&c, n, "E 1300 refused reperfusion");
	ctx_free(&c);
}

static void test_bad_plans_refused(void **state)
{
	struct session_plan good = one(exercise("squat", "L", 50, SESSION_MODE_CONTINUOUS));
	struct session_plan p;
	struct session *s = (struct session *)0x1;
	struct session_config cfg;
	unsigned i;

	for (i = 0; i < 22; i++) {
		p = good;
		switch (i) {
		case 0: p.n_exercises = 0; break;
		case 1: p.n_exercises = SESSION_MAX_EXERCISES + 1; break;
		case 2: p.exercises[0].pct_lop = 9; break;
		case 3: p.exercises[0].pct_lop = 101; break;
		case 4: p.exercises[0].n_cuffs = 0; break;
		case 5: p.exercises[0].n_cuffs = 3; break;
		case 6: p.exercises[0].n_cuffs = 2; strcpy(p.exercises[0].cuffs[1], "L"); break;
		case 7: p.exercises[0].cuffs[0][0] = 0; break;
		case 8: p.exercises[0].name[0] = 0; break;
		case 9: p.exercises[0].n_sets = 0; break;
		case 10: p.exercises[0].n_sets = 11; break;
		case 11: p.exercises[0].sets[1] = 0; break;
		case 12: p.exercises[0].sets[0] = 101; break;
		case 13: p.exercises[0].tempo_up_s = 0; break;
		case 14: p.exercises[0].tempo_down_s = 11; break;
		case 15: p.exercises[0].rest_s = 601; break;
		case 16: p.exercises[0].reperfusion_s = 59; break;
		case 17: p.exercises[0].reperfusion_s = 601; break;
		case 18: p.exercises[0].mode = (enum session_mode)7; break;
		case 19:
			p.exercises[0].mode = SESSION_MODE_CYCLE;
			p.exercises[0].on_s = 5;
			p.exercises[0].off_s = 4;
			p.exercises[0].cycles = 3;
			break;
		case 20:
			p.exercises[0].mode = SESSION_MODE_CYCLE;
			p.exercises[0].on_s = 5;
			p.exercises[0].off_s = 5;
			p.exercises[0].cycles = 11;
			break;
		case 21: memset(p.exercises[0].name, 'x', sizeof(p.exercises[0].name)); break;
		}
		assert_int_equal(session_plan_check(&p), -EINVAL);
		assert_int_equal(session_new("s", &p, NULL, &s), -EINVAL);
		assert_ptr_equal(s, (struct session *)0x1);
	}
	assert_int_equal(session_new("", &good, NULL, &s), -EINVAL);
	assert_int_equal(session_new(NULL, &good, NULL, &s), -EINVAL);
	assert_int_equal(session_new("s", NULL, NULL, &s), -EINVAL);
	assert_int_equal(session_new("s", &good, NULL, NULL), -EINVAL);
	session_config_default(&cfg);
	cfg.inflated_band_mmHg = NAN;
	assert_int_equal(session_new("s", &good, &cfg, &s), -EINVAL);
	assert_ptr_equal(s, (struct session *)0x1);
	assert_int_equal(session_plan_check(&good), 0);
}

static void test_alloc_failure(void **state)
{
	struct session_plan good = one(exercise("squat", "L", 50, SESSION_MODE_CONTINUOUS));
	struct session *s = (struct session *)0x1;

	test_alloc_fail_after(0);
	assert_int_equal(session_new("s", &good, NULL, &s), -ENOMEM);
	test_alloc_reset();
	assert_ptr_equal(s, (struct session *)0x1);
	assert_int_equal(session_new("s", &good, NULL, &s), 0);
	assert_string_equal(session_id(s), "s");
	session_free(s);
	session_free(NULL);
}

static void test_names(void **state)
{
	assert_string_equal(session_phase_name(SESSION_PHASE_REPERFUSION), "reperfusion");
	assert_string_equal(session_phase_name((enum session_phase)99), "unknown");
	assert_string_equal(session_event_type_name(SESSION_EV_LOP_MEASURED), "lop_measured");
	assert_string_equal(session_event_type_name((enum session_event_type)99), "unknown");
	assert_string_equal(session_mode_name(SESSION_MODE_INTERMITTENT), "intermittent");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_continuous_full),
		cmocka_unit_test(test_intermittent_full),
		cmocka_unit_test(test_cycle_full),
		cmocka_unit_test(test_cycle_steps),
		cmocka_unit_test(test_two_exercises_reperfusion),
		cmocka_unit_test(test_state_for_dashboard),
		cmocka_unit_test(test_bilateral_lockstep),
		cmocka_unit_test(test_no_rest),
		cmocka_unit_test(test_largest_plan),
		cmocka_unit_test(test_pause_resume_freezes_time),
		cmocka_unit_test(test_pause_in_intermittent_rest_needs_no_inflation),
		cmocka_unit_test(test_pause_during_inflating_and_reperfusion),
		cmocka_unit_test(test_stop_mid_set),
		cmocka_unit_test(test_stop_while_paused_and_before_start),
		cmocka_unit_test(test_abort_by_safety),
		cmocka_unit_test(test_lop_plausible),
		cmocka_unit_test(test_lop_bilateral_waits_for_both),
		cmocka_unit_test(test_lop_implausible_or_failed_aborts),
		cmocka_unit_test(test_lop_timeout),
		cmocka_unit_test(test_inflate_timeout),
		cmocka_unit_test(test_deflate_timeout),
		cmocka_unit_test(test_late_tick_keeps_schedule),
		cmocka_unit_test(test_catch_up_in_chunks),
		cmocka_unit_test(test_notes_after_end_refused),
		cmocka_unit_test(test_SR_26_plan_load),
		cmocka_unit_test(test_time_backwards_refused),
		cmocka_unit_test(test_garbage_inputs),
		cmocka_unit_test(test_bad_plans_refused),
		cmocka_unit_test(test_alloc_failure),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
