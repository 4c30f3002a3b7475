/*
 * test_receive_path.c - the receive path of the wiring (cuff -> safety ->
 * runner -> session) against scripted cuffs, with a fake clock.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_alloc.h"
#include "wiring.h"

#define ONE_CUFF_PLAN                                                                         \
	"{\"exercises\":[{\"name\":\"squat\",\"cuffs\":[\"c1\"],\"pct_lop\":50,"              \
	"\"mode\":\"continuous\",\"sets\":[10],\"tempo_s\":[1,1],\"rest_s\":0,"             \
	"\"reperfusion_s\":60}]}"

#define BILATERAL_PLAN                                                                        \
	"{\"exercises\":[{\"name\":\"squat\",\"cuffs\":[\"c1\",\"c2\"],\"pct_lop\":50,"       \
	"\"mode\":\"continuous\",\"sets\":[10],\"tempo_s\":[1,1],\"rest_s\":0,"             \
	"\"reperfusion_s\":60}]}"

static struct wiring w;

static bool session_inflating(struct wiring *x)
{
	return gatt_peer_count(&x->peers[0], BFR_CP_SET_TARGET) == 1;
}

static bool ended(struct wiring *x)
{
	return x->ended_outcome[0] != '\0';
}

/* One cuff measured (LOP 200 from the peer) and inflating to 100 mmHg. */
static void start_one_cuff_session(char *id)
{
	struct command_error err = { 0 };

	wiring_setup(&w, 1, NULL);
	wiring_connect(&w);
	assert_int_equal(wiring_start(&w, ONE_CUFF_PLAN, id, &err), 0);
	wiring_run_until(&w, session_inflating);
	assert_int_equal(gatt_peer_count(&w.peers[0], BFR_CP_MEASURE_LOP), 1);
	assert_true(w.peers[0].cp[w.peers[0].n_cp - 1].set_target.mmhg == 100.0);
}

/*
 * A notification of three samples whose first is over the 250 mmHg leg
 * ceiling: the engine's DEFLATE goes out at once, the other two samples
 * still reach the engine before the session hears of it (the cuff's reading
 * is the last sample's when the runner is told), the session ends aborted
 * with the alarm's code, and exactly one DEFLATE reaches the cuff: the
 * session's own DEFLATE on abort is the one already in flight.
 */
static void test_safety_deflate_ends_session_after_whole_notification(void **state)
{
	const double spike[3] = { 262.0, 150.0, 181.0 };
	char id[SESSION_ID_BUF];
	long deflate_line, samples_line;
	size_t cp_before;

	start_one_cuff_session(id);
	for (int i = 0; i < 5; i++) {
		const double p = 100.0;

		gatt_peer_notify(&w.peers[0], &p, 1, 0);
		w.now += 20;
		wiring_settle(&w);
	}
	cp_before = w.peers[0].n_cp;
	gatt_peer_notify(&w.peers[0], spike, 3, 0);
	wiring_run_until(&w, ended);
	wiring_settle(&w);
	deflate_line = wiring_find(&w, 0, "deflate c1 over_pressure_ceiling p=181.0");
	assert_true(deflate_line >= 0);
	/* The samples went up after the abort: the session no longer timed them. */
	samples_line = wiring_find(&w, (size_t)deflate_line, "samples c1 3");
	assert_true(samples_line > deflate_line);
	assert_string_equal(w.ended_outcome, "aborted");
	assert_string_equal(w.ended_reason, "over_pressure_ceiling");
	assert_null(runner_find(w.runner, id));
	/* Exactly one DEFLATE, with the safety reason, and nothing else. */
	assert_int_equal(gatt_peer_count(&w.peers[0], BFR_CP_DEFLATE), 1);
	for (size_t i = cp_before; i < w.peers[0].n_cp; i++)
		if (w.peers[0].cp[i].opcode != BFR_CP_CUE)
			assert_int_equal(w.peers[0].cp[i].opcode, BFR_CP_DEFLATE);
	for (size_t i = 0; i < w.peers[0].n_cp; i++)
		if (w.peers[0].cp[i].opcode == BFR_CP_DEFLATE)
			assert_int_equal(w.peers[0].cp[i].deflate_reason, BFR_DEFLATE_SAFETY);
	wiring_teardown(&w);
}

static bool both_lops_measured(struct wiring *x)
{
	return wiring_find(x, 0, "lop c1 ok") >= 0 && wiring_find(x, 0, "lop c2 ok") >= 0;
}

/*
 * Bilateral: the targets of one step are checked together. With an
 * unacknowledged HIGH alarm on the second cuff (raised while both LOPs were
 * being measured), neither SET_TARGET is sent and the session is aborted.
 */
static void test_bilateral_targets_refused_together(void **state)
{
	struct command_error err = { 0 };
	char id[SESSION_ID_BUF];

	wiring_setup(&w, 2, NULL);
	wiring_connect(&w);
	assert_int_equal(wiring_start(&w, BILATERAL_PLAN, id, &err), 0);
	assert_int_equal(alarm_raise(alarms_table(w.alarms), "c2", id, ALARM_LINK_LOST_INFLATED,
				     NULL, NULL, 1, NULL),
			 0);
	wiring_run_until(&w, both_lops_measured);
	wiring_run_until(&w, ended);
	assert_int_equal(gatt_peer_count(&w.peers[0], BFR_CP_SET_TARGET), 0);
	assert_int_equal(gatt_peer_count(&w.peers[1], BFR_CP_SET_TARGET), 0);
	assert_string_equal(w.ended_outcome, "aborted");
	assert_string_equal(w.ended_reason, "unacknowledged_high_alarm");
	wiring_teardown(&w);
}

static bool lop_asked(struct wiring *x)
{
	return x->peers[0].lop_pending;
}

static bool lop_answered(struct wiring *x)
{
	return wiring_find(x, 0, "lop c1 failed") >= 0;
}

/* A session whose cuff is in the middle of its LOP search. */
static void start_session_measuring_lop(char *id)
{
	struct command_error err = { 0 };

	wiring_setup(&w, 1, NULL);
	w.peers[0].hold_lop = true;
	wiring_connect(&w);
	assert_int_equal(wiring_start(&w, ONE_CUFF_PLAN, id, &err), 0);
	wiring_run_until(&w, lop_asked);
}

/*
 * A clinician's stop during the LOP search: the DEFLATE makes the cuff end
 * the search with FAILED. That is a stopped measurement, not an implausible
 * LOP: the session ends "stopped" and no lop_invalid alarm is raised. The
 * next test is the same search failing on its own, which must raise it.
 */
static void test_stop_during_lop_search_raises_no_lop_invalid(void **state)
{
	char id[SESSION_ID_BUF];

	start_session_measuring_lop(id);
	assert_int_equal(run_stop(runner_find(w.runner, id)), 0);
	wiring_run_until(&w, lop_answered);
	wiring_settle(&w);
	assert_string_equal(w.ended_outcome, "stopped");
	assert_int_equal(gatt_peer_count(&w.peers[0], BFR_CP_DEFLATE), 1);
	assert_int_equal(wiring_find(&w, 0, "alarm lop_invalid"), -1);
	wiring_teardown(&w);
}

static void test_failed_lop_search_raises_lop_invalid(void **state)
{
	char id[SESSION_ID_BUF];

	start_session_measuring_lop(id);
	gatt_peer_fail_lop(&w.peers[0]);
	wiring_run_until(&w, lop_answered);
	wiring_run_until(&w, ended);
	wiring_settle(&w);
	assert_true(wiring_find(&w, 0, "alarm lop_invalid c1") >= 0);
	assert_string_equal(w.ended_outcome, "aborted");
	assert_string_equal(w.ended_reason, "lop_invalid");
	wiring_teardown(&w);
}

static bool four_deflates(struct wiring *x)
{
	for (size_t i = 0; i < x->n_cuffs; i++)
		if (gatt_peer_count(&x->peers[i], BFR_CP_DEFLATE) == 0)
			return false;
	return true;
}

/*
 * Every cuff over the ceiling in the same batch: each DEFLATE is written on
 * the receive path, but the "safety DEFLATE" log line of each (as costly as
 * the DEFLATE itself) only after the batch, so no cuff's DEFLATE waits for
 * another cuff's log line. stderr goes to a file to see when lines appear.
 * Fails with the line written on the receive path: stderr had grown by the
 * second cuff's samples.
 */
static void test_deflates_of_a_batch_before_their_log_lines(void **state)
{
	char path[] = "/tmp/bfr-test-receive-stderr-XXXXXX";
	const double over = 280.0;
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);
	size_t before, found = 0;
	char line[512];
	FILE *f;

	assert_true(fd >= 0 && saved >= 0);
	wiring_setup(&w, 4, NULL);
	wiring_connect(&w);
	for (int k = 0; k < 3; k++) {
		const double p = 0.0;

		for (size_t i = 0; i < 4; i++)
			gatt_peer_notify(&w.peers[i], &p, 1, 0);
		w.now += 20;
		wiring_settle(&w);
	}
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	before = w.n_log;
	for (size_t i = 0; i < 4; i++)
		gatt_peer_notify(&w.peers[i], &over, 1, 0);
	assert_int_equal(loop_run_once(w.loop, 0), 0);
	wiring_run_until(&w, four_deflates);
	wiring_settle(&w);
	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	/* All four notifications were one batch, and none of them saw a line. */
	for (size_t i = before; i < w.n_log; i++)
		if (strncmp(w.log[i], "samples ", 8) == 0) {
			found++;
			assert_int_equal(w.stderr_at[i], 0);
		}
	assert_int_equal(found, 4);
	/* Then the lines, one per cuff. */
	f = fdopen(fd, "r");
	assert_non_null(f);
	rewind(f);
	found = 0;
	while (fgets(line, sizeof(line), f))
		found += strstr(line, "safety DEFLATE (reason 1)") != NULL;
	assert_int_equal(found, 4);
	fclose(f);
	unlink(path);
	wiring_teardown(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_safety_deflate_ends_session_after_whole_notification),
		cmocka_unit_test(test_bilateral_targets_refused_together),
		cmocka_unit_test(test_stop_during_lop_search_raises_no_lop_invalid),
		cmocka_unit_test(test_failed_lop_search_raises_lop_invalid),
		cmocka_unit_test(test_deflates_of_a_batch_before_their_log_lines),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
