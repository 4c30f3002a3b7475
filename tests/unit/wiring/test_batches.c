/*
 * test_batches.c - work that follows a burst is published a batch per turn
 * of the loop, so io that arrives meanwhile (the rest of the burst, and its
 * DEFLATEs) is handled between batches; nothing is lost or reordered.
 * (The cuff-state batches, reporter.c, need a daemon: see
 * tests/integration/test_burst_many_cuffs.py.)
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

#include "wiring.h"

#define BURST_CUFFS 200

static struct wiring w;

/* The cuff numbers of the "alarm ... on kN:" lines written to f so far. */
static size_t alarm_lines(FILE *f, int *cuffs, size_t max)
{
	char line[512];
	size_t n = 0;

	rewind(f);
	while (fgets(line, sizeof(line), f)) {
		const char *on = strstr(line, " over_pressure_ceiling on k");

		if (strncmp(line, "bfr-gateway warning: alarm ", 27) != 0 || !on)
			continue;
		if (n < max)
			cuffs[n] = atoi(on + strlen(" over_pressure_ceiling on k"));
		n++;
	}
	return n;
}

/*
 * 200 cuffs over the ceiling at once raise 200 records: one turn of the
 * loop publishes ALARMS_FLUSH_BATCH of them, the next turn the next batch,
 * and a record raised in between goes behind the ones already waiting.
 * Fails with the whole queue published by the first turn.
 */
static void test_alarm_records_a_batch_per_turn_in_order(void **state)
{
	char path[] = "/tmp/bfr-test-batches-XXXXXX";
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);
	struct alarms *a = NULL;
	int cuffs[BURST_CUFFS + 1];
	size_t n, turns = 1;
	FILE *f;

	(void)state;
	assert_true(fd >= 0 && saved >= 0);
	wiring_setup(&w, 1, NULL);
	assert_int_equal(alarms_new(w.loop, &w.ctx, w.pub, NULL, BURST_CUFFS + 1, 1, NULL, NULL,
				    &a),
			 0);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	for (int i = 1; i <= BURST_CUFFS; i++) {
		char cuff[16];

		snprintf(cuff, sizeof(cuff), "k%d", i);
		assert_int_equal(alarm_raise(alarms_table(a), cuff, "", ALARM_OVER_PRESSURE_CEILING,
					     "over", NULL, 1000, NULL),
				 0);
	}
	assert_int_equal(loop_run_once(w.loop, 0), 0);
	fflush(stderr);
	f = fdopen(dup(fd), "r");
	assert_non_null(f);
	assert_int_equal(alarm_lines(f, cuffs, BURST_CUFFS), ALARMS_FLUSH_BATCH);
	/* Raised after the first batch went out: behind the 136 still waiting. */
	assert_int_equal(alarm_raise(alarms_table(a), "k201", "", ALARM_OVER_PRESSURE_CEILING,
				     "over", NULL, 1001, NULL),
			 0);
	do {
		assert_int_equal(loop_run_once(w.loop, 0), 0);
		fflush(stderr);
		turns++;
		n = alarm_lines(f, cuffs, BURST_CUFFS + 1);
		assert_true(n <= turns * ALARMS_FLUSH_BATCH);
	} while (n < BURST_CUFFS + 1 && turns < 20);
	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	assert_int_equal(n, BURST_CUFFS + 1);
	assert_int_equal(turns, (BURST_CUFFS + 1 + ALARMS_FLUSH_BATCH - 1) / ALARMS_FLUSH_BATCH);
	for (int i = 0; i <= BURST_CUFFS; i++)
		assert_int_equal(cuffs[i], i + 1);
	fclose(f);
	close(fd);
	unlink(path);
	alarms_free(a);
	wiring_teardown(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alarm_records_a_batch_per_turn_in_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
