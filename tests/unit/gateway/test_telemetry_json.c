/*
 * test_telemetry_json.c - the telemetry payload written without a jansson
 * tree (gateway/src/telemetry_json.c) is, byte for byte, what
 * json_dumps(msg_telemetry(...), MSG_JSON_FLAGS) writes: every SFLOAT
 * value a cuff can send, the specials, values past the fast path, the
 * envelope (ts across seconds, msg_id continuing the context's counter).
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "messages.h"
#include "sfloat.h"
#include "telemetry_json.h"
#include "test_alloc.h"

static uint64_t wall = 1795512600123ull; /* 2026-11-24T09:30:00.123Z */

static uint64_t fixed_wall(void *data)
{
	return *(uint64_t *)data;
}

struct fixture {
	struct payload_ctx ctx;     /* for telemetry_json */
	struct payload_ctx ref_ctx; /* for msg_telemetry, the reference */
	struct telemetry_json tj;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(payload_ctx_init(&f->ctx, "clinic-a", "gw1", "b00tb00tb00tb00t"), 0);
	f->ctx.wall_ms = fixed_wall;
	f->ctx.wall_data = &wall;
	f->ref_ctx = f->ctx;
	assert_int_equal(telemetry_json_init(&f->tj, &f->ctx), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	free(*state);
	test_alloc_reset();
	return 0;
}

/* Builds both ways and compares the text; both contexts advance alike. */
static void same_as_jansson(struct fixture *f, const char *cuff,
			    const struct msg_telemetry_sample *s, size_t n)
{
	char buf[TELEMETRY_JSON_MAX];
	char *quoted = telemetry_json_quote(cuff);
	json_t *ref = msg_telemetry(&f->ref_ctx, cuff, s, n);
	char *want = json_dumps(ref, MSG_JSON_FLAGS);
	size_t len = 0;

	assert_non_null(quoted);
	assert_non_null(want);
	assert_int_equal(telemetry_json_build(&f->tj, quoted, s, n, buf, sizeof(buf), &len), 0);
	if (strcmp(buf, want) != 0)
		fail_msg("telemetry_json:\n%s\njansson:\n%s", buf, want);
	assert_int_equal(len, strlen(want));
	assert_true(f->ctx.counter == f->ref_ctx.counter);
	free(want);
	json_decref(ref);
	free(quoted);
}

/* Every value an SFLOAT can carry, as pressure, target and pulse. */
static void test_every_sfloat_value(void **state)
{
	struct fixture *f = *state;
	struct msg_telemetry_sample s[MSG_TELEMETRY_MAX];
	size_t n = 0;

	for (uint32_t code = 0; code <= 0xFFFF; code++) {
		double v = sfloat_to_double((uint16_t)code);

		s[n] = (struct msg_telemetry_sample){
			.t_ms = code * 20u,
			.pressure = (float)v,
			.target = (float)sfloat_to_double((uint16_t)(code * 7919u)),
			.pulse = (float)sfloat_to_double((uint16_t)(0xFFFFu - code)),
		};
		if (++n == MSG_TELEMETRY_MAX || code == 0xFFFF) {
			same_as_jansson(f, "bay1-left", s, n);
			n = 0;
		}
	}
}

/* Signs, zeros, roundings at .x5, the edge of the fast path and beyond. */
static void test_edge_values(void **state)
{
	struct fixture *f = *state;
	static const float values[] = {
		0.0f, -0.0f, 0.04f, -0.04f, 0.05f, -0.05f, 0.15f, 0.25f, -0.25f, 1.0f, 10.0f,
		99.95f, 100.0f, 120.45f, 249.99f, 250.0f, 299.96f, -12.3f, 99999.9f, 99999.95f,
		-99999.9f, 100000.0f, 123456.7f, -123456.7f, 1e7f, 2.047e10f, -2.048e10f, 1e-5f,
		3.4e38f, NAN, INFINITY, -INFINITY,
	};
	size_t count = sizeof(values) / sizeof(values[0]);
	struct msg_telemetry_sample s[MSG_TELEMETRY_MAX];

	for (size_t i = 0; i < count; i++) {
		s[0] = (struct msg_telemetry_sample){ .t_ms = UINT32_MAX - (uint32_t)i,
						      .pressure = values[i],
						      .target = values[(i + 1) % count],
						      .pulse = values[(i + 7) % count] };
		same_as_jansson(f, "c", s, 1);
	}
	for (size_t i = 0; i < MSG_TELEMETRY_MAX; i++)
		s[i] = (struct msg_telemetry_sample){ .t_ms = (uint32_t)i, .pressure = values[i % count],
						      .target = values[(i + 3) % count],
						      .pulse = values[(i + 5) % count] };
	same_as_jansson(f, "c", s, MSG_TELEMETRY_MAX);
}

/* ts follows the wall clock across seconds (and its ms); msg_id continues
 * the counter that payload_new() uses, in either order. */
static void test_envelope(void **state)
{
	struct fixture *f = *state;
	struct msg_telemetry_sample s = { .t_ms = 1, .pressure = 120.5f, .target = 120.0f,
					  .pulse = 2.5f };
	static const uint64_t walls[] = { 1795512600123ull, 1795512600999ull, 1795512601000ull,
					  1795512601005ull, 1795512659999ull, 1795512660000ull,
					  1795512600123ull };
	char msg_id[96];
	json_t *p;

	for (size_t i = 0; i < sizeof(walls) / sizeof(walls[0]); i++) {
		wall = walls[i];
		same_as_jansson(f, "bay2", &s, 1);
	}
	/* Another message from the shared context in between: ids stay unique. */
	p = payload_new(&f->ctx, msg_id);
	assert_non_null(p);
	json_decref(p);
	f->ref_ctx.counter = f->ctx.counter;
	same_as_jansson(f, "bay2", &s, 1);
	wall = 1795512600123ull;
}

/* Strings are escaped as jansson escapes them (config ids never need it). */
static void test_quoting(void **state)
{
	struct fixture *f = *state;
	struct msg_telemetry_sample s = { .t_ms = 7, .pressure = 1.0f, .target = NAN, .pulse = 0 };

	same_as_jansson(f, "a\"b\\c\n\x01/\xc3\xa9", &s, 1);
	assert_null(telemetry_json_quote("\xff")); /* not UTF-8: jansson refuses */
}

static void test_bad_arguments_and_no_room(void **state)
{
	struct fixture *f = *state;
	struct msg_telemetry_sample s[MSG_TELEMETRY_MAX + 1] = { 0 };
	char buf[TELEMETRY_JSON_MAX];
	char small[64];
	size_t len = 12345;
	uint64_t counter = f->ctx.counter;

	assert_int_equal(telemetry_json_build(&f->tj, "\"c\"", s, 0, buf, sizeof(buf), &len),
			 -EINVAL);
	assert_int_equal(telemetry_json_build(&f->tj, "\"c\"", s, MSG_TELEMETRY_MAX + 1, buf,
					      sizeof(buf), &len),
			 -EINVAL);
	assert_int_equal(telemetry_json_build(&f->tj, NULL, s, 1, buf, sizeof(buf), &len),
			 -EINVAL);
	assert_int_equal(telemetry_json_build(&f->tj, "\"c\"", s, 1, small, sizeof(small), &len),
			 -ENOSPC);
	assert_int_equal(telemetry_json_build(&f->tj, "\"c\"", s, 1, buf, 0, &len), -ENOSPC);
	assert_int_equal(len, 12345);
	assert_true(f->ctx.counter == counter); /* nothing taken */
	/* Exactly the room it needs (its length plus the NUL) is enough. */
	assert_int_equal(telemetry_json_build(&f->tj, "\"c\"", s, 1, buf, sizeof(buf), &len), 0);
	assert_int_equal(telemetry_json_build(&f->tj, "\"c\"", s, 1, small,
					      len + 1 <= sizeof(small) ? len + 1 : sizeof(small),
					      &len),
			 len + 1 <= sizeof(small) ? 0 : -ENOSPC);
}

/* The largest payload (50 samples of the longest values) fits the bound. */
static void test_worst_case_fits(void **state)
{
	struct fixture *f = *state;
	struct msg_telemetry_sample s[MSG_TELEMETRY_MAX];
	char id[65];

	memset(id, 'x', 64);
	id[64] = '\0';
	for (size_t i = 0; i < MSG_TELEMETRY_MAX; i++)
		s[i] = (struct msg_telemetry_sample){ .t_ms = UINT32_MAX, .pressure = -3.3e38f,
						      .target = -3.3e38f, .pulse = -1.2345e-30f };
	same_as_jansson(f, id, s, MSG_TELEMETRY_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_every_sfloat_value, setup, teardown),
		cmocka_unit_test_setup_teardown(test_edge_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_envelope, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quoting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_arguments_and_no_room, setup, teardown),
		cmocka_unit_test_setup_teardown(test_worst_case_fits, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
