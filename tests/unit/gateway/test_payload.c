/* test_payload.c - the envelope (v, ts, msg_id) and topic building. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <string.h>

#include "payload.h"
#include "test_alloc.h"

static uint64_t fixed_wall(void *data)
{
	return *(uint64_t *)data;
}

static void test_ts_format_is_rfc3339_utc_ms(void **state)
{
	char ts[32];

	payload_format_ts(1795512600123ull, ts); /* 2026-11-24T09:30:00.123Z */
	assert_string_equal(ts, "2026-11-24T09:30:00.123Z");
	payload_format_ts(0, ts);
	assert_string_equal(ts, "1970-01-01T00:00:00.000Z");
}

static void test_envelope_fields_and_unique_ids(void **state)
{
	struct payload_ctx ctx;
	uint64_t wall = 1795512600005ull;
	char id1[96], id2[96];
	json_t *a, *b;

	assert_int_equal(payload_ctx_init(&ctx, "clinic-a", "gw1", "b00t"), 0);
	ctx.wall_ms = fixed_wall;
	ctx.wall_data = &wall;
	a = payload_new(&ctx, id1);
	b = payload_new(&ctx, id2);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(json_integer_value(json_object_get(a, "v")), 1);
	assert_string_equal(json_string_value(json_object_get(a, "ts")), "2026-11-24T09:30:00.005Z");
	assert_string_equal(id1, "gw1-b00t-1");
	assert_string_equal(id2, "gw1-b00t-2");
	assert_string_equal(json_string_value(json_object_get(b, "msg_id")), id2);
	json_decref(a);
	json_decref(b);
}

static void test_random_boot_differs(void **state)
{
	struct payload_ctx a, b;

	assert_int_equal(payload_ctx_init(&a, "s", "g", NULL), 0);
	assert_int_equal(payload_ctx_init(&b, "s", "g", NULL), 0);
	assert_int_equal(strlen(a.boot), 16);
	assert_string_not_equal(a.boot, b.boot);
}

static void test_bad_ids_refused_and_ctx_untouched(void **state)
{
	struct payload_ctx ctx;
	char long_id[100];

	memset(&ctx, 0x5a, sizeof(ctx));
	memset(long_id, 'x', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	assert_int_equal(payload_ctx_init(&ctx, "", "gw", NULL), -EINVAL);
	assert_int_equal(payload_ctx_init(&ctx, "site", long_id, NULL), -EINVAL);
	assert_int_equal(ctx.site[0], 0x5a);
}

static void test_topics(void **state)
{
	struct payload_ctx ctx;
	char topic[TOPIC_MAX];
	char small[20];

	assert_int_equal(payload_ctx_init(&ctx, "clinic-a", "gw1", "x"), 0);
	assert_int_equal(payload_topic(&ctx, topic, sizeof(topic), "cuff/%s/state", "c1"), 0);
	assert_string_equal(topic, "bfr/v1/clinic-a/gw1/cuff/c1/state");
	assert_int_equal(payload_topic(&ctx, small, sizeof(small), "status"), -ENAMETOOLONG);
}

static void test_number_or_null(void **state)
{
	json_t *obj = json_object();

	assert_int_equal(payload_set_number_or_null(obj, "p", NAN), 0);
	assert_int_equal(payload_set_number_or_null(obj, "q", 12.5), 0);
	assert_true(json_is_null(json_object_get(obj, "p")));
	assert_true(json_real_value(json_object_get(obj, "q")) == 12.5);
	assert_true(payload_round1(12.34) == 12.3);
	assert_true(payload_round1(12.36) == 12.4);
	json_decref(obj);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ts_format_is_rfc3339_utc_ms),
		cmocka_unit_test(test_envelope_fields_and_unique_ids),
		cmocka_unit_test(test_random_boot_differs),
		cmocka_unit_test(test_bad_ids_refused_and_ctx_untouched),
		cmocka_unit_test(test_topics),
		cmocka_unit_test(test_number_or_null),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
