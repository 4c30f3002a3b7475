/*
 * test_control.c - control-line parser (good and bad lines) and scenario
 * parser (offsets, comments, errors naming the line, nothing returned on
 * any error).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "test_alloc.h"

#define N_CUFFS 4

static void test_good_lines(void **state)
{
	static const struct {
		const char *line;
		enum control_verb verb;
		unsigned cuff;
		double value, value2;
	} cases[] = {
		{ "leak 1", CTL_LEAK, 1, 5.0, 0 },
		{ "leak all 12.5", CTL_LEAK, CONTROL_ALL, 12.5, 0 },
		{ "stuck-valve 2", CTL_STUCK_VALVE, 2, 0, 0 },
		{ "sensor-freeze 3", CTL_SENSOR_FREEZE, 3, 0, 0 },
		{ "stall 4", CTL_STALL, 4, 0, 0 },
		{ "drop 1\n", CTL_DROP, 1, 0, 0 },
		{ "drop all\r\n", CTL_DROP, CONTROL_ALL, 0, 0 },
		{ "battery 2 15", CTL_BATTERY, 2, 15, 0 },
		{ "battery 2 0", CTL_BATTERY, 2, 0, 0 },
		{ "deflate-fail 1", CTL_DEFLATE_FAIL, 1, 0, 0 },
		{ "lop-fail 1", CTL_LOP_FAIL, 1, 0, 0 },
		{ "spike 1 80", CTL_SPIKE, 1, 80, 500 },
		{ "spike all -20 1500", CTL_SPIKE, CONTROL_ALL, -20, 1500 },
		{ "clear all", CTL_CLEAR, CONTROL_ALL, 0, 0 },
		{ "limit 3 220", CTL_LIMIT, 3, 220, 0 },
		{ "  stats  ", CTL_STATS, 0, 0, 0 },
		{ "status\t4", CTL_STATUS, 4, 0, 0 },
		{ "quit", CTL_QUIT, 0, 0, 0 },
		{ "leak 01 1e1", CTL_LEAK, 1, 10, 0 },
		{ "button 1 long", CTL_BUTTON, 1, CONTROL_BUTTON_LONG_MS, 0 },
		{ "button all short", CTL_BUTTON, CONTROL_ALL, CONTROL_BUTTON_SHORT_MS, 0 },
		{ "button\t4  short ", CTL_BUTTON, 4, CONTROL_BUTTON_SHORT_MS, 0 },
		{ "service-changed 2 40", CTL_SERVICE_CHANGED, 2, 40, 0 },
		{ "service-changed all 0", CTL_SERVICE_CHANGED, CONTROL_ALL, 0, 0 },
		{ "service-changed 1 1000", CTL_SERVICE_CHANGED, 1, 1000, 0 },
		{ "cp-hang 2", CTL_CP_HANG, 2, 0, 0 },
		{ "supervision-lost all", CTL_SUPERVISION_LOST, CONTROL_ALL, 0, 0 },
		{ "lop-value 1 350", CTL_LOP_VALUE, 1, 350, 0 },
		{ "lop-value 3 0", CTL_LOP_VALUE, 3, 0, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct control_cmd cmd;
		char err[128] = "";

		assert_int_equal(control_parse(cases[i].line, N_CUFFS, &cmd, err, sizeof(err)), 0);
		assert_int_equal(cmd.verb, cases[i].verb);
		assert_int_equal(cmd.cuff, cases[i].cuff);
		assert_true(cmd.value == cases[i].value);
		assert_true(cmd.value2 == cases[i].value2);
		assert_string_equal(err, "");
	}
}

static void test_bad_lines(void **state)
{
	static const struct {
		const char *line;
		const char *msg; /* a substring of the message */
	} cases[] = {
		{ "", "empty line" },
		{ "   \t ", "empty line" },
		{ "\n", "empty line" },
		{ "fly 1", "unknown command 'fly'" },
		{ "LEAK 1", "unknown command" },
		{ "leak", "missing cuff" },
		{ "leak 0", "bad cuff '0'" },
		{ "leak 5", "bad cuff '5'" },
		{ "leak -1", "bad cuff" },
		{ "leak one", "bad cuff" },
		{ "leak 99999999999", "bad cuff" },
		{ "leak 1 0", "out of range" },
		{ "leak 1 -3", "out of range" },
		{ "leak 1 1001", "out of range" },
		{ "leak 1 fast", "not a number" },
		{ "leak 1 0x10", "not a number" },
		{ "leak 1 inf", "not a number" },
		{ "leak 1 nan", "not a number" },
		{ "leak 1 1e999", "not a number" },
		{ "leak 1 5 6", "too many arguments" },
		{ "battery 1", "missing pct" },
		{ "battery 1 101", "out of range" },
		{ "battery 1 -1", "out of range" },
		{ "spike 1", "missing mmhg" },
		{ "spike 1 0", "must not be 0" },
		{ "spike 1 301", "out of range" },
		{ "spike 1 50 0", "out of range" },
		{ "spike 1 50 60001", "out of range" },
		{ "spike 1 50 100 1", "too many" },
		{ "limit all", "missing mmhg" },
		{ "limit 1 0", "out of range" },
		{ "stats 1", "too many arguments" },
		{ "quit now", "too many arguments" },
		{ "status all", "bad cuff 'all'" },
		{ "status", "missing cuff" },
		{ "drop 1 2", "too many arguments" },
		{ "a b c d e f g", "too many arguments" },
		{ "drop\x01 1", "control character" },
		{ "stats\n\n", "control character" },
		{ "button", "button: missing cuff (1..4 or all)" },
		{ "cp-hang", "cp-hang: missing cuff (1..4 or all)" },
		{ "cp-hang 1 2", "cp-hang: too many arguments" },
		{ "supervision-lost 9", "supervision-lost: bad cuff '9' (1..4 or all)" },
		{ "lop-value 1", "lop-value: missing mmhg" },
		{ "lop-value 1 1000.5", "lop-value: mmhg 1000.5 out of range" },
		{ "lop-value 1 nan", "lop-value: mmhg 'nan' is not a number" },
		{ "button 5 long", "button: bad cuff '5' (1..4 or all)" },
		{ "button 0 short", "button: bad cuff '0'" },
		{ "button long", "button: bad cuff 'long'" },
		{ "button 1", "button: missing kind (long or short)" },
		{ "button 1 medium", "button: kind 'medium' is not long or short" },
		{ "button 1 LONG", "button: kind 'LONG' is not long or short" },
		{ "button 1 2500", "button: kind '2500' is not long or short" },
		{ "button 1 long 3", "button: too many arguments" },
		{ "button 1 long short", "button: too many arguments" },
		{ "service-changed 1", "service-changed: missing shift" },
		{ "service-changed 1 1001", "service-changed: shift 1001 out of range (0..1000)" },
		{ "service-changed 1 -1", "out of range" },
		{ "service-changed 1 2.5", "service-changed: shift 2.5 is not a whole number" },
		{ "service-changed 5 3", "service-changed: bad cuff '5'" },
		{ "service-changed 1 3 4", "service-changed: too many arguments" },
	};
	char long_line[CONTROL_LINE_MAX + 10];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct control_cmd cmd, before;
		char err[128] = "";

		memset(&cmd, 0x5A, sizeof(cmd));
		before = cmd;
		assert_int_equal(control_parse(cases[i].line, N_CUFFS, &cmd, err, sizeof(err)),
				 -EINVAL);
		if (!strstr(err, cases[i].msg))
			fail_msg("line '%s': message '%s' lacks '%s'", cases[i].line, err,
				 cases[i].msg);
		assert_memory_equal(&cmd, &before, sizeof(cmd));
	}
	memset(long_line, 'a', sizeof(long_line) - 1);
	long_line[sizeof(long_line) - 1] = '\0';
	{
		struct control_cmd cmd;
		char err[16];

		assert_int_equal(control_parse(long_line, N_CUFFS, &cmd, err, sizeof(err)),
				 -EINVAL);
		/* A short buffer still gets a terminated (truncated) message. */
		assert_true(strlen(err) < sizeof(err));
		assert_int_equal(control_parse(NULL, N_CUFFS, &cmd, NULL, 0), -EINVAL);
	}
	assert_string_equal(control_verb_name(CTL_STUCK_VALVE), "stuck-valve");
	assert_string_equal(control_verb_name(CTL_BUTTON), "button");
}

static void test_scenario_parse(void **state)
{
	static const char text[] = "# warm-up\n"
				   "\n"
				   "0 limit all 240\n"
				   "   2.5 leak 2 20   # slow leak\n"
				   "2.5 spike 1 80 300\n"
				   "10 clear all\n"
				   "11 button 3 long\n"
				   "12 quit";
	struct scenario *sc = NULL;
	char err[128] = "";

	assert_int_equal(scenario_parse(text, strlen(text), N_CUFFS, &sc, err, sizeof(err)), 0);
	assert_int_equal(sc->n, 6);
	assert_int_equal(sc->entries[0].at_ms, 0);
	assert_int_equal(sc->entries[0].line, 3);
	assert_int_equal(sc->entries[0].cmd.verb, CTL_LIMIT);
	assert_int_equal(sc->entries[1].at_ms, 2500);
	assert_int_equal(sc->entries[1].cmd.cuff, 2);
	assert_true(sc->entries[1].cmd.value == 20);
	assert_int_equal(sc->entries[2].cmd.verb, CTL_SPIKE);
	assert_int_equal(sc->entries[4].at_ms, 11000);
	assert_int_equal(sc->entries[4].line, 7);
	assert_int_equal(sc->entries[4].cmd.verb, CTL_BUTTON);
	assert_int_equal(sc->entries[4].cmd.cuff, 3);
	assert_true(sc->entries[4].cmd.value == CONTROL_BUTTON_LONG_MS);
	assert_int_equal(sc->entries[5].at_ms, 12000);
	assert_int_equal(sc->entries[5].line, 8);
	scenario_free(sc);

	sc = NULL;
	assert_int_equal(scenario_parse("", 0, N_CUFFS, &sc, err, sizeof(err)), 0);
	assert_int_equal(sc->n, 0);
	scenario_free(sc);
}

static void test_scenario_errors_name_the_line(void **state)
{
	static const struct {
		const char *text;
		const char *msg;
	} cases[] = {
		{ "0 stats\n1 leak 9\n", "line 2: leak: bad cuff '9'" },
		{ "stats\n", "line 1: missing command after the offset" },
		{ "x stats\n", "line 1: bad offset 'x'" },
		{ "-1 stats\n", "line 1: bad offset" },
		{ "1e7 stats\n", "line 1: bad offset" },
		{ "# c\n5 stats\n4 stats\n", "line 3: offset goes back in time" },
		{ "0 fly\n", "line 1: unknown command 'fly'" },
		{ "0 stats\n\n\n0 battery 1\n", "line 4: battery: missing pct" },
		{ "0 stats\n2 button 1 hold\n", "line 2: button: kind 'hold' is not long or short" },
	};
	struct scenario *sc = (struct scenario *)0x1;
	char err[160];
	char with_nul[] = "0 stats\n0 st\0ts\n";

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		assert_int_equal(scenario_parse(cases[i].text, strlen(cases[i].text), N_CUFFS, &sc,
						err, sizeof(err)),
				 -EINVAL);
		if (!strstr(err, cases[i].msg))
			fail_msg("scenario %zu: message '%s' lacks '%s'", i, err, cases[i].msg);
		assert_ptr_equal(sc, (struct scenario *)0x1);
	}
	assert_int_equal(scenario_parse(with_nul, sizeof(with_nul) - 1, N_CUFFS, &sc, err,
					sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "line 2: NUL byte"));
	assert_ptr_equal(sc, (struct scenario *)0x1);
}

static void test_scenario_alloc_failure(void **state)
{
	char text[2048] = "";
	struct scenario *sc = (struct scenario *)0x1;
	char err[128];
	int ret = -ENOMEM;

	/* Enough lines to make the entry array grow more than once. */
	for (int i = 0; i < 40; i++)
		strcat(text, "1 stats\n");
	for (long n = 0; ret == -ENOMEM; n++) {
		test_alloc_fail_after(n);
		ret = scenario_parse(text, strlen(text), N_CUFFS, &sc, err, sizeof(err));
		test_alloc_reset();
		if (ret == -ENOMEM)
			assert_ptr_equal(sc, (struct scenario *)0x1);
	}
	assert_int_equal(ret, 0);
	assert_int_equal(sc->n, 40);
	scenario_free(sc);
}

static void test_scenario_load_file(void **state)
{
	char path[] = "/tmp/cuffsim-scenario-XXXXXX";
	struct scenario *sc = NULL;
	char err[256];
	int fd = mkstemp(path);
	FILE *f;

	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fputs("0 limit all 230\n1 leak 7\n", f);
	fclose(f);
	assert_int_equal(scenario_load(path, N_CUFFS, &sc, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "line 2"));
	assert_int_equal(scenario_load(path, 8, &sc, err, sizeof(err)), 0);
	assert_int_equal(sc->n, 2);
	scenario_free(sc);
	unlink(path);
	assert_int_equal(scenario_load(path, 8, &sc, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, path));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_lines),
		cmocka_unit_test(test_bad_lines),
		cmocka_unit_test(test_scenario_parse),
		cmocka_unit_test(test_scenario_errors_name_the_line),
		cmocka_unit_test(test_scenario_alloc_failure),
		cmocka_unit_test(test_scenario_load_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
