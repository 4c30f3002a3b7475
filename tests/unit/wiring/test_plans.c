/*
 * test_plans.c - whole plans through the wiring (runner, session, safety
 * engine, cuff link) against a scripted cuff whose pressure follows what it
 * is told, on a fake clock: what the limits let through at the start must
 * run to its end (issue 8 items 4 and 5; docs/safety.md SR-08, SR-07).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "test_alloc.h"
#include "wiring.h"

#define STEP_MS 20 /* 50 Hz, as cuffsim */

/* Two exercises on one cuff with the shortest reperfusion allowed (60 s):
 * the example docs/sessions.md gives, shortened. */
#define MIN_REPERFUSION_PLAN                                                                  \
	"{\"exercises\":["                                                                    \
	"{\"name\":\"squat\",\"cuffs\":[\"c1\"],\"pct_lop\":50,\"mode\":\"continuous\","       \
	"\"sets\":[2],\"tempo_s\":[1,1],\"rest_s\":0,\"reperfusion_s\":60},"                  \
	"{\"name\":\"lunge\",\"cuffs\":[\"c1\"],\"pct_lop\":50,\"mode\":\"continuous\","       \
	"\"sets\":[2],\"tempo_s\":[1,1],\"rest_s\":0,\"reperfusion_s\":60}]}"

static struct wiring w;

/* The cuff's pressure: the last target it was sent, reached at 100 mmHg/s;
 * 0 once deflated (a real cuff vents in about a second). */
struct cuff_model {
	double pressure, target;
	size_t seen_cp;
};

static void model_step(struct cuff_model *m, struct gatt_peer *peer)
{
	for (; m->seen_cp < peer->n_cp; m->seen_cp++) {
		const struct bfr_cp_request *rq = &peer->cp[m->seen_cp];

		if (rq->opcode == BFR_CP_SET_TARGET)
			m->target = rq->set_target.mmhg;
		else if (rq->opcode == BFR_CP_DEFLATE)
			m->target = 0;
	}
	if (m->pressure < m->target)
		m->pressure = m->pressure + 2.0 > m->target ? m->target : m->pressure + 2.0;
	else if (m->pressure > m->target)
		m->pressure = m->pressure - 4.0 < m->target ? m->target : m->pressure - 4.0;
}

/* Runs the cuff at 50 Hz until the session ends or limit_ms pass. */
static void run_session(struct cuff_model *m, uint64_t limit_ms)
{
	for (uint64_t t = 0; t < limit_ms && !w.ended_outcome[0]; t += STEP_MS) {
		model_step(m, &w.peers[0]);
		gatt_peer_notify(&w.peers[0], &m->pressure, 1, 0);
		w.now += STEP_MS;
		wiring_settle(&w);
	}
}

/*
 * SR-08 (issue 8 item 5): the session starts its reperfusion phase on the
 * very sample on which the engine starts its reperfusion clock, so a plan
 * whose reperfusion_s is the minimum runs its second exercise on the same
 * cuff instead of aborting with "reperfusion" at it.
 */
static void test_SR_08_min_reperfusion_plan_runs_to_its_end(void **state)
{
	struct command_error err = { 0 };
	struct cuff_model m = { 0 };
	char id[SESSION_ID_BUF];

	wiring_setup(&w, 1, NULL);
	w.quiet_samples = true;
	wiring_connect(&w);
	assert_int_equal(wiring_start(&w, MIN_REPERFUSION_PLAN, id, &err), 0);
	run_session(&m, 5 * 60 * 1000);
	assert_string_equal(w.ended_outcome, "completed");
	assert_string_equal(w.ended_reason, "");
	/* Both exercises inflated: one SET_TARGET each. */
	assert_int_equal(gatt_peer_count(&w.peers[0], BFR_CP_SET_TARGET), 2);
	wiring_teardown(&w);
}

/*
 * SR-07 (issue 8 item 4): the session total is a hard limit. The plan is
 * accepted against the configured total (its ramps and deflations fit), a
 * cuff that is slow to reach its band stretches the inflation, and the
 * engine deflates the cuff when the total is crossed: the session ends
 * aborted "session_total", the cuff deflated, long before the set's end.
 */
static void test_SR_07_session_total_deflates_a_running_set(void **state)
{
	struct command_error err = { 0 };
	struct cuff_model m = { 0 };
	char id[SESSION_ID_BUF];
	size_t deflates;

	/* 40 reps x 2 s = 80 s of set, + 2 s ramp + 5 s deflation = 87 s < 90 s. */
	wiring_setup(&w, 1, "limits = { leg = { session_total_s = 90; }; };\n");
	w.quiet_samples = true;
	wiring_connect(&w);
	assert_int_equal(wiring_start(&w,
				      "{\"exercises\":[{\"name\":\"hold\",\"cuffs\":[\"c1\"],"
				      "\"pct_lop\":50,\"mode\":\"continuous\",\"sets\":[40],"
				      "\"tempo_s\":[1,1],\"rest_s\":0,\"reperfusion_s\":60}]}",
				      id, &err),
			 0);
	/* A slow cuff: the inflating phase itself eats into the total. */
	for (int i = 0; i < 600 && !w.ended_outcome[0]; i++) { /* 12 s at 1 mmHg/s */
		m.pressure += 0.02;
		gatt_peer_notify(&w.peers[0], &m.pressure, 1, 0);
		w.now += STEP_MS;
		wiring_settle(&w);
	}
	run_session(&m, 3 * 60 * 1000);
	assert_string_equal(w.ended_outcome, "aborted");
	assert_string_equal(w.ended_reason, "session_total");
	assert_true(wiring_find(&w, 0, "alarm session_inflation_total c1") >= 0);
	deflates = gatt_peer_count(&w.peers[0], BFR_CP_DEFLATE);
	assert_true(deflates >= 1);
	/* And the cuff really vents: two more seconds of the model. */
	for (int i = 0; i < 100; i++) {
		model_step(&m, &w.peers[0]);
		gatt_peer_notify(&w.peers[0], &m.pressure, 1, 0);
		w.now += STEP_MS;
		wiring_settle(&w);
	}
	assert_true(m.pressure < 20.0);
	wiring_teardown(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_SR_08_min_reperfusion_plan_runs_to_its_end),
		cmocka_unit_test(test_SR_07_session_total_deflates_a_running_set),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
