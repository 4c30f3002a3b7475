/* test_alarm.c - the IEC 60601-1-8 alarm model (docs/safety.md SR-19, SR-20). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "alarm.h"
#include "test_alloc.h"

#define MAX_RECS 64

struct rec_log {
	size_t n;
	struct alarm_record r[MAX_RECS];
};

static struct rec_log log_;

static void on_record(const struct alarm_record *rec, void *user_data)
{
	struct rec_log *l = user_data;

	assert_true(l->n < MAX_RECS);
	l->r[l->n++] = *rec;
}

static const struct alarm_record *last(void)
{
	assert_true(log_.n > 0);
	return &log_.r[log_.n - 1];
}

static struct alarm_table *mk(size_t cap)
{
	struct alarm_table *t = NULL;

	memset(&log_, 0, sizeof(log_));
	assert_int_equal(alarm_table_new("gw1", cap, 1, on_record, &log_, &t), 0);
	return t;
}

static const struct alarm_values v1 = { 251, 150, 250, NAN };

static void test_SR_19_raise_creates_active_record(void **state)
{
	struct alarm_table *t = mk(32);
	char id[ALARM_ID_MAX] = "";
	const struct alarm_record *r;

	(void)state;
	assert_int_equal(alarm_raise(t, "bay1", "s-1", ALARM_OVER_PRESSURE_CEILING, NULL, &v1,
				     5000, id),
			 0);
	assert_string_equal(id, "gw1-1");
	assert_int_equal(log_.n, 1);
	r = last();
	assert_string_equal(r->alarm_id, "gw1-1");
	assert_string_equal(r->cuff, "bay1");
	assert_string_equal(r->session_id, "s-1");
	assert_int_equal(r->code, ALARM_OVER_PRESSURE_CEILING);
	assert_int_equal(r->priority, ALARM_PRIO_HIGH);
	assert_int_equal(r->kind, ALARM_KIND_PHYSIOLOGICAL);
	assert_int_equal(r->state, ALARM_STATE_ACTIVE);
	assert_true(r->condition_present);
	assert_int_equal(r->raised_at_ms, 5000);
	assert_int_equal(r->acked_at_ms, 0);
	assert_int_equal(r->cleared_at_ms, 0);
	assert_string_equal(r->message, "pressure above ceiling, deflating");
	assert_true(r->values.pressure_mmhg == 251 && isnan(r->values.duration_s));
	assert_int_equal(alarm_open_count(t), 1);
	alarm_table_free(t);
}

static void test_SR_19_reraise_updates_no_duplicate(void **state)
{
	struct alarm_table *t = mk(32);
	struct alarm_values v2 = v1;
	char id[ALARM_ID_MAX] = "";

	(void)state;
	alarm_raise(t, "bay1", NULL, ALARM_PRESSURE_HIGH, NULL, &v1, 1000, NULL);
	/* Identical re-raise: nothing changed, nothing emitted. */
	assert_int_equal(alarm_raise(t, "bay1", NULL, ALARM_PRESSURE_HIGH, NULL, &v1, 1100, id), 0);
	assert_int_equal(log_.n, 1);
	assert_string_equal(id, "gw1-1");
	v2.pressure_mmhg = 260;
	assert_int_equal(alarm_raise(t, "bay1", NULL, ALARM_PRESSURE_HIGH, NULL, &v2, 1200, id), 0);
	assert_int_equal(log_.n, 2);
	assert_string_equal(last()->alarm_id, "gw1-1");
	assert_true(last()->values.pressure_mmhg == 260);
	assert_int_equal(last()->raised_at_ms, 1000);
	assert_int_equal(alarm_open_count(t), 1);
	/* Same code on another cuff is another alarm. */
	alarm_raise(t, "bay2", NULL, ALARM_PRESSURE_HIGH, NULL, &v1, 1300, id);
	assert_string_equal(id, "gw1-2");
	assert_int_equal(alarm_open_count(t), 2);
	alarm_table_free(t);
}

static void test_SR_19_non_latching_clears_with_condition(void **state)
{
	struct alarm_table *t = mk(32);
	char id[ALARM_ID_MAX];

	(void)state;
	alarm_raise(t, "bay1", NULL, ALARM_LEAK, NULL, NULL, 1000, NULL);
	assert_int_equal(alarm_condition_cleared(t, "bay1", ALARM_LEAK, 2000), 0);
	assert_int_equal(last()->state, ALARM_STATE_CLEARED);
	assert_false(last()->condition_present);
	assert_int_equal(last()->cleared_at_ms, 2000);
	assert_int_equal(alarm_open_count(t), 0);
	/* Clearing again is idempotent and silent. */
	assert_int_equal(alarm_condition_cleared(t, "bay1", ALARM_LEAK, 2100), 0);
	assert_int_equal(log_.n, 2);
	/* A new occurrence is a new alarm with a new id. */
	alarm_raise(t, "bay1", NULL, ALARM_LEAK, NULL, NULL, 3000, id);
	assert_string_equal(id, "gw1-2");
	alarm_table_free(t);
}

static void test_SR_19_medium_acked_then_condition_clears(void **state)
{
	struct alarm_table *t = mk(32);
	char id[ALARM_ID_MAX];

	(void)state;
	alarm_raise(t, "bay1", NULL, ALARM_PRESSURE_LOW, NULL, NULL, 1000, id);
	assert_int_equal(alarm_ack(t, id, "nurse", 1500), 0);
	assert_int_equal(last()->state, ALARM_STATE_ACKNOWLEDGED);
	assert_int_equal(alarm_condition_cleared(t, "bay1", ALARM_PRESSURE_LOW, 2000), 0);
	assert_int_equal(last()->state, ALARM_STATE_CLEARED);
	alarm_table_free(t);
}

static void test_SR_19_high_latches_until_acknowledged(void **state)
{
	struct alarm_table *t = mk(32);
	char id[ALARM_ID_MAX];

	(void)state;
	alarm_raise(t, "bay1", NULL, ALARM_FULL_OCCLUSION, NULL, NULL, 1000, id);
	assert_true(alarm_has_unacked_high(t, "bay1"));
	assert_false(alarm_has_unacked_high(t, "bay2"));
	assert_int_equal(alarm_condition_cleared(t, "bay1", ALARM_FULL_OCCLUSION, 2000), 0);
	/* Condition gone, alarm stays open and active. */
	assert_int_equal(last()->state, ALARM_STATE_ACTIVE);
	assert_false(last()->condition_present);
	assert_int_equal(last()->cleared_at_ms, 0);
	assert_int_equal(alarm_open_count(t), 1);
	assert_true(alarm_has_unacked_high(t, "bay1"));
	/* The condition coming back re-uses the same alarm. */
	alarm_raise(t, "bay1", NULL, ALARM_FULL_OCCLUSION, NULL, NULL, 2500, NULL);
	assert_true(last()->condition_present);
	assert_string_equal(last()->alarm_id, id);
	alarm_condition_cleared(t, "bay1", ALARM_FULL_OCCLUSION, 2600);
	/* Acknowledging a latched alarm whose condition is gone clears it. */
	assert_int_equal(alarm_ack(t, id, "dr-who", 3000), 0);
	assert_int_equal(last()->state, ALARM_STATE_CLEARED);
	assert_int_equal(last()->acked_at_ms, 3000);
	assert_string_equal(last()->acked_by, "dr-who");
	assert_int_equal(last()->cleared_at_ms, 3000);
	assert_false(alarm_has_unacked_high(t, "bay1"));
	assert_int_equal(alarm_open_count(t), 0);
	assert_int_equal(alarm_ack(t, id, "dr-who", 3100), -ENOENT);
	alarm_table_free(t);
}

static void test_SR_19_high_acked_while_present(void **state)
{
	struct alarm_table *t = mk(32);
	char id[ALARM_ID_MAX];

	(void)state;
	alarm_raise(t, "bay1", NULL, ALARM_DEFLATE_FAILED, NULL, NULL, 1000, id);
	assert_int_equal(alarm_ack(t, id, "nurse", 1500), 0);
	assert_int_equal(last()->state, ALARM_STATE_ACKNOWLEDGED);
	assert_true(last()->condition_present);
	assert_false(alarm_has_unacked_high(t, "bay1"));
	assert_int_equal(alarm_ack(t, id, "nurse", 1600), -EALREADY);
	/* Still present: re-raise keeps it acknowledged. */
	alarm_raise(t, "bay1", NULL, ALARM_DEFLATE_FAILED, "again", NULL, 1700, NULL);
	assert_int_equal(last()->state, ALARM_STATE_ACKNOWLEDGED);
	alarm_condition_cleared(t, "bay1", ALARM_DEFLATE_FAILED, 2000);
	assert_int_equal(last()->state, ALARM_STATE_CLEARED);
	alarm_table_free(t);
}

static void test_SR_19_ack_affects_no_other_alarm(void **state)
{
	struct alarm_table *t = mk(32);
	char a[ALARM_ID_MAX], b[ALARM_ID_MAX];
	struct alarm_record before;
	const struct alarm_record *rb;
	size_t n;

	(void)state;
	alarm_raise(t, "bay1", NULL, ALARM_OVER_PRESSURE_CEILING, NULL, NULL, 1000, a);
	alarm_raise(t, "bay1", NULL, ALARM_TELEMETRY_LOST, NULL, NULL, 1001, b);
	rb = alarm_find_open(t, "bay1", ALARM_TELEMETRY_LOST);
	assert_non_null(rb);
	before = *rb;
	n = log_.n;
	assert_int_equal(alarm_ack(t, a, "nurse", 2000), 0);
	assert_int_equal(log_.n, n + 1); /* exactly one record, for a */
	assert_string_equal(last()->alarm_id, a);
	rb = alarm_find_open(t, "bay1", ALARM_TELEMETRY_LOST);
	assert_memory_equal(&before, rb, sizeof(before));
	assert_true(alarm_has_unacked_high(t, "bay1"));
	alarm_table_free(t);
}

static void test_SR_19_gateway_wide_estop(void **state)
{
	struct alarm_table *t = mk(32);
	char id[ALARM_ID_MAX];

	(void)state;
	assert_int_equal(alarm_raise(t, "", NULL, ALARM_ESTOP, NULL, NULL, 1000, id), 0);
	/* An unacknowledged e-stop blocks every cuff. */
	assert_true(alarm_has_unacked_high(t, "bay1"));
	assert_true(alarm_has_unacked_high(t, "bay9"));
	assert_int_equal(alarm_raise(t, "bay1", NULL, ALARM_ESTOP, NULL, NULL, 1000, NULL), -EINVAL);
	assert_int_equal(alarm_raise(t, "", NULL, ALARM_LEAK, NULL, NULL, 1000, NULL), -EINVAL);
	alarm_condition_cleared(t, "", ALARM_ESTOP, 1100);
	alarm_ack(t, id, "op", 1200);
	assert_false(alarm_has_unacked_high(t, "bay1"));
	alarm_table_free(t);
}

static void test_SR_19_garbage_changes_nothing(void **state)
{
	struct alarm_table *t = mk(32);
	char longs[200];
	char id[ALARM_ID_MAX];

	(void)state;
	memset(longs, 'x', sizeof(longs) - 1);
	longs[sizeof(longs) - 1] = '\0';
	alarm_raise(t, "bay1", NULL, ALARM_LEAK, NULL, NULL, 1000, id);
	log_.n = 0;
	assert_int_equal(alarm_raise(t, "bay1", NULL, (enum alarm_code)99, NULL, NULL, 1, NULL),
			 -EINVAL);
	assert_int_equal(alarm_raise(t, "bay1", NULL, (enum alarm_code)-1, NULL, NULL, 1, NULL),
			 -EINVAL);
	assert_int_equal(alarm_raise(t, longs, NULL, ALARM_LEAK, NULL, NULL, 1, NULL), -EINVAL);
	assert_int_equal(alarm_raise(t, "bay\n1", NULL, ALARM_LEAK, NULL, NULL, 1, NULL), -EINVAL);
	assert_int_equal(alarm_raise(t, NULL, NULL, ALARM_LEAK, NULL, NULL, 1, NULL), -EINVAL);
	assert_int_equal(alarm_raise(t, "bay1", longs, ALARM_LEAK, NULL, NULL, 1, NULL), -EINVAL);
	assert_int_equal(alarm_raise(t, "bay1", NULL, ALARM_LEAK, longs, NULL, 1, NULL), -EINVAL);
	assert_int_equal(alarm_raise(t, "bay1", NULL, ALARM_LEAK, "", NULL, 1, NULL), -EINVAL);
	assert_int_equal(alarm_raise(NULL, "bay1", NULL, ALARM_LEAK, NULL, NULL, 1, NULL), -EINVAL);
	assert_int_equal(alarm_ack(t, id, "", 1), -EINVAL);
	assert_int_equal(alarm_ack(t, id, longs, 1), -EINVAL);
	assert_int_equal(alarm_ack(t, id, "a\tb", 1), -EINVAL);
	assert_int_equal(alarm_ack(t, "gw1-999", "nurse", 1), -ENOENT);
	assert_int_equal(alarm_ack(t, NULL, "nurse", 1), -EINVAL);
	assert_int_equal(alarm_condition_cleared(t, NULL, ALARM_LEAK, 1), -EINVAL);
	assert_int_equal(alarm_condition_cleared(t, "bay1", (enum alarm_code)50, 1), -EINVAL);
	assert_int_equal(log_.n, 0);
	assert_int_equal(alarm_open_count(t), 1);
	assert_int_equal(alarm_find_open(t, "bay1", ALARM_LEAK)->state, ALARM_STATE_ACTIVE);
	alarm_table_free(t);
}

static void test_table_new_garbage_and_alloc_failure(void **state)
{
	struct alarm_table *t = NULL;

	(void)state;
	assert_int_equal(alarm_table_new("", 8, 1, NULL, NULL, &t), -EINVAL);
	assert_int_equal(alarm_table_new(NULL, 8, 1, NULL, NULL, &t), -EINVAL);
	assert_int_equal(alarm_table_new("gw", 0, 1, NULL, NULL, &t), -EINVAL);
	assert_int_equal(alarm_table_new("gw", 8, 0, NULL, NULL, &t), -EINVAL);
	assert_int_equal(alarm_table_new("gw", 8, 1, NULL, NULL, NULL), -EINVAL);
	for (long n = 0; n < 3; n++) {
		test_alloc_fail_after(n);
		assert_int_equal(alarm_table_new("gw", 8, 1, NULL, NULL, &t), -ENOMEM);
		assert_null(t);
	}
	test_alloc_fail_after(3);
	assert_int_equal(alarm_table_new("gw", 8, 1, NULL, NULL, &t), 0);
	test_alloc_reset();
	alarm_table_free(t);
}

static void test_SR_19_ids_unique_and_seeded(void **state)
{
	struct alarm_table *t = NULL;
	char id[ALARM_ID_MAX];

	(void)state;
	assert_int_equal(alarm_table_new("clinic-a-gw1", 32, 41, NULL, NULL, &t), 0);
	alarm_raise(t, "bay1", NULL, ALARM_LEAK, NULL, NULL, 1, id);
	assert_string_equal(id, "clinic-a-gw1-41");
	alarm_condition_cleared(t, "bay1", ALARM_LEAK, 2);
	alarm_raise(t, "bay1", NULL, ALARM_LEAK, NULL, NULL, 3, id);
	assert_string_equal(id, "clinic-a-gw1-42");
	assert_int_equal(alarm_next_seq(t), 43);
	alarm_table_free(t);
}

static void test_SR_20_full_table_never_drops_high(void **state)
{
	struct alarm_table *t = mk(ALARM_HIGH_RESERVE + 2);
	const struct alarm_record *evicted;

	(void)state;
	/* Two non-HIGH fill the table down to the HIGH reserve. */
	assert_int_equal(alarm_raise(t, "c1", NULL, ALARM_BATTERY_LOW, NULL, NULL, 1, NULL), 0);
	assert_int_equal(alarm_raise(t, "c1", NULL, ALARM_LEAK, NULL, NULL, 2, NULL), 0);
	assert_int_equal(alarm_raise(t, "c2", NULL, ALARM_LEAK, NULL, NULL, 3, NULL), -ENOSPC);
	/* The reserve takes HIGH alarms. */
	assert_int_equal(alarm_raise(t, "c1", NULL, ALARM_OVER_PRESSURE_CEILING, NULL, NULL, 4,
				     NULL),
			 0);
	assert_int_equal(alarm_raise(t, "c2", NULL, ALARM_OVER_PRESSURE_CEILING, NULL, NULL, 5,
				     NULL),
			 0);
	assert_int_equal(alarm_raise(t, "c3", NULL, ALARM_OVER_PRESSURE_CEILING, NULL, NULL, 6,
				     NULL),
			 0);
	assert_int_equal(alarm_raise(t, "c4", NULL, ALARM_OVER_PRESSURE_CEILING, NULL, NULL, 7,
				     NULL),
			 0);
	assert_int_equal(alarm_open_count(t), 6);
	/* Full: a HIGH evicts the LOW first (emitted as cleared "evicted"). */
	assert_int_equal(alarm_raise(t, "c5", NULL, ALARM_SENSOR_FAULT, NULL, NULL, 8, NULL), 0);
	evicted = &log_.r[log_.n - 2];
	assert_int_equal(evicted->code, ALARM_BATTERY_LOW);
	assert_int_equal(evicted->state, ALARM_STATE_CLEARED);
	assert_string_equal(evicted->message, "evicted");
	assert_int_equal(last()->code, ALARM_SENSOR_FAULT);
	/* Then the MEDIUM. */
	assert_int_equal(alarm_raise(t, "c6", NULL, ALARM_SENSOR_FAULT, NULL, NULL, 9, NULL), 0);
	assert_int_equal(log_.r[log_.n - 2].code, ALARM_LEAK);
	/* Only a table full of HIGH alarms refuses a HIGH. */
	assert_int_equal(alarm_raise(t, "c7", NULL, ALARM_SENSOR_FAULT, NULL, NULL, 10, NULL),
			 -ENOSPC);
	assert_int_equal(alarm_open_count(t), 6);
	alarm_table_free(t);
}

static void test_SR_20_capacity_for_never_fills(void **state)
{
	struct alarm_table *t = NULL;
	char cuff[8];

	(void)state;
	assert_int_equal(alarm_table_new("gw", alarm_table_capacity_for(3), 1, NULL, NULL, &t), 0);
	for (int c = 0; c < 3; c++) {
		snprintf(cuff, sizeof(cuff), "c%d", c);
		for (int k = 0; k < ALARM_CODE_COUNT; k++) {
			if (alarm_code_gateway_wide((enum alarm_code)k))
				continue;
			assert_int_equal(alarm_raise(t, cuff, NULL, (enum alarm_code)k, NULL, NULL,
						     1, NULL),
					 0);
		}
	}
	for (int k = 0; k < ALARM_CODE_COUNT; k++) {
		if (alarm_code_gateway_wide((enum alarm_code)k))
			assert_int_equal(
				alarm_raise(t, "", NULL, (enum alarm_code)k, NULL, NULL, 1, NULL), 0);
	}
	alarm_table_free(t);
}

static void test_raise_ack_clear_never_allocate(void **state)
{
	struct alarm_table *t = mk(32);
	char id[ALARM_ID_MAX];
	const struct alarm_record *list[4];
	size_t n;

	(void)state;
	test_alloc_fail_after(0);
	assert_int_equal(alarm_raise(t, "b", NULL, ALARM_TELEMETRY_LOST, NULL, NULL, 1, id), 0);
	assert_int_equal(alarm_ack(t, id, "x", 2), 0);
	assert_int_equal(alarm_condition_cleared(t, "b", ALARM_TELEMETRY_LOST, 3), 0);
	assert_int_equal(alarm_list_open(t, NULL, list, 4, &n), 0);
	assert_int_equal(test_alloc_count(), 0);
	test_alloc_reset();
	alarm_table_free(t);
}

static void test_list_open_in_raise_order(void **state)
{
	struct alarm_table *t = mk(32);
	const struct alarm_record *list[2];
	size_t n = 0;

	(void)state;
	alarm_raise(t, "b", NULL, ALARM_LEAK, NULL, NULL, 1, NULL);
	alarm_raise(t, "a", NULL, ALARM_LEAK, NULL, NULL, 2, NULL);
	alarm_raise(t, "b", NULL, ALARM_BATTERY_LOW, NULL, NULL, 3, NULL);
	alarm_condition_cleared(t, "b", ALARM_LEAK, 4);
	alarm_raise(t, "b", NULL, ALARM_LEAK, NULL, NULL, 5, NULL);
	assert_int_equal(alarm_list_open(t, NULL, list, 2, &n), 0);
	assert_int_equal(n, 3); /* total, though only 2 fit */
	assert_string_equal(list[0]->alarm_id, "gw1-2");
	assert_string_equal(list[1]->alarm_id, "gw1-3");
	assert_int_equal(alarm_list_open(t, "b", list, 2, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(list[0]->code, ALARM_BATTERY_LOW);
	assert_int_equal(list[1]->code, ALARM_LEAK);
	assert_int_equal(alarm_list_open(t, NULL, NULL, 2, &n), -EINVAL);
	alarm_table_free(t);
}

/* SR-19 across a restart: a latched HIGH alarm comes back, still blocks, and clears on ack. */
static void test_SR_19_restore_latched_high_after_restart(void **state)
{
	struct alarm_table *t = mk(32);
	struct alarm_record rec = { 0 };
	struct alarm_record bad;
	char id[ALARM_ID_MAX] = "";

	(void)state;
	snprintf(rec.alarm_id, sizeof(rec.alarm_id), "gw1-41");
	rec.code = ALARM_DEFLATE_FAILED;
	rec.state = ALARM_STATE_ACTIVE;
	rec.seq = 41;
	rec.raised_at_ms = 1000;
	snprintf(rec.cuff, sizeof(rec.cuff), "bay1");
	snprintf(rec.message, sizeof(rec.message), "remove cuff manually");
	assert_int_equal(alarm_restore(t, &rec), 0);
	assert_int_equal(log_.n, 0); /* restoring emits nothing */
	assert_true(alarm_has_unacked_high(t, "bay1"));
	assert_non_null(alarm_find_id(t, "gw1-41"));
	/* The same (cuff, code) or id twice, a cleared record, a cuff-less cuff code. */
	assert_int_equal(alarm_restore(t, &rec), -EEXIST);
	bad = rec;
	bad.state = ALARM_STATE_CLEARED;
	snprintf(bad.alarm_id, sizeof(bad.alarm_id), "gw1-42");
	bad.code = ALARM_LEAK;
	assert_int_equal(alarm_restore(t, &bad), -EINVAL);
	bad.state = ALARM_STATE_ACTIVE;
	bad.cuff[0] = '\0';
	assert_int_equal(alarm_restore(t, &bad), -EINVAL);
	assert_int_equal(alarm_restore(t, NULL), -EINVAL);
	/* New ids continue after the restored one. */
	assert_int_equal(alarm_raise(t, "bay2", NULL, ALARM_LEAK, NULL, NULL, 2000, id), 0);
	assert_string_equal(id, "gw1-42");
	/* Its condition is unknown (gone) after the restart: the ack clears it. A
	 * control character in `by` is refused; UTF-8 names are welcome. */
	assert_int_equal(alarm_ack(t, "gw1-41", "an\x01na", 3000), -EINVAL);
	assert_int_equal(alarm_ack(t, "gw1-41", "J\xc3\xbcrgen", 3000), 0);
	assert_false(alarm_has_unacked_high(t, "bay1"));
	assert_null(alarm_find_id(t, "gw1-41"));
	assert_int_equal(last()->state, ALARM_STATE_CLEARED);
	alarm_table_free(t);
}

static void test_code_table(void **state)
{
	static const char *const names[ALARM_CODE_COUNT] = {
		"over_pressure_ceiling", "full_occlusion", "pressure_high", "pressure_low",
		"leak", "inflation_time", "inflation_time_warning", "session_inflation_total",
		"telemetry_lost", "link_lost_inflated", "deflate_failed", "sensor_fault",
		"supervision_deflated", "battery_low", "battery_critical", "lop_invalid",
		"cuff_fault", "estop", "outbox_full", "storage_error", "broker_refused",
	};
	enum alarm_code c;

	(void)state;
	for (int i = 0; i < ALARM_CODE_COUNT; i++) {
		assert_string_equal(alarm_code_name((enum alarm_code)i), names[i]);
		assert_int_equal(alarm_code_from_name(names[i], &c), 0);
		assert_int_equal(c, i);
		assert_true(alarm_code_latching((enum alarm_code)i) ==
			    (alarm_code_priority((enum alarm_code)i) == ALARM_PRIO_HIGH));
	}
	assert_int_equal(alarm_code_from_name("nope", &c), -ENOENT);
	assert_string_equal(alarm_code_name(ALARM_CODE_COUNT), "unknown");
	assert_int_equal(alarm_code_priority(ALARM_INFLATION_TIME_WARNING), ALARM_PRIO_LOW);
	assert_int_equal(alarm_code_priority(ALARM_SESSION_INFLATION_TOTAL), ALARM_PRIO_MEDIUM);
	assert_int_equal(alarm_code_kind(ALARM_OUTBOX_FULL), ALARM_KIND_TECHNICAL);
	assert_true(alarm_code_gateway_wide(ALARM_STORAGE_ERROR));
	assert_string_equal(alarm_priority_name(ALARM_PRIO_MEDIUM), "medium");
	assert_string_equal(alarm_kind_name(ALARM_KIND_PHYSIOLOGICAL), "physiological");
	assert_string_equal(alarm_state_name(ALARM_STATE_ACKNOWLEDGED), "acknowledged");
}

/*
 * The indexed table (per-cuff blocks, id hash, raise-order list) against a
 * plain reference model of the documented semantics: the linear table it
 * replaced. Random raise / re-raise / condition-cleared / ack on a table too
 * small for its cuffs (HIGH reserve, eviction, -ENOSPC, entries recycled)
 * and on one of capacity_for(n); after every step every query must agree.
 */
struct model_alarm {
	bool open;
	char cuff[8];
	enum alarm_code code;
	enum alarm_state state;
	bool present;
	uint64_t seq;
	char id[ALARM_ID_MAX];
};

struct model {
	size_t cap, n_open, n_emitted;
	uint64_t next_seq;
	struct model_alarm a[64];
	uint64_t evicted_seq; /* of the last model_raise, 0: none */
	/* what the table emitted: in all, and during the current step */
	size_t emitted, n_step;
	struct alarm_record step[4];
};

static void on_record_model(const struct alarm_record *rec, void *user_data)
{
	struct model *m = user_data;

	m->emitted++;
	assert_true(m->n_step < 4);
	m->step[m->n_step++] = *rec;
}

static struct model_alarm *model_find(struct model *m, const char *cuff, enum alarm_code code)
{
	for (size_t i = 0; i < m->cap; i++)
		if (m->a[i].open && m->a[i].code == code && strcmp(m->a[i].cuff, cuff) == 0)
			return &m->a[i];
	return NULL;
}

static struct model_alarm *model_find_id(struct model *m, const char *id)
{
	for (size_t i = 0; i < m->cap; i++)
		if (m->a[i].open && strcmp(m->a[i].id, id) == 0)
			return &m->a[i];
	return NULL;
}

static void model_close(struct model *m, struct model_alarm *a)
{
	a->open = false;
	m->n_open--;
	m->n_emitted++;
}

static int model_raise(struct model *m, const char *cuff, enum alarm_code code)
{
	struct model_alarm *a = model_find(m, cuff, code), *slot = NULL;
	bool high = alarm_code_priority(code) == ALARM_PRIO_HIGH;
	size_t nfree = m->cap - m->n_open;

	m->evicted_seq = 0;

	if (a) {
		if (!a->present)
			m->n_emitted++;
		a->present = true;
		return 0;
	}
	if (!high && nfree <= ALARM_HIGH_RESERVE && m->cap > ALARM_HIGH_RESERVE)
		return -ENOSPC;
	if (nfree == 0) {
		struct model_alarm *best = NULL;

		if (!high)
			return -ENOSPC;
		for (size_t i = 0; i < m->cap; i++) {
			struct model_alarm *b = &m->a[i];
			enum alarm_priority p = alarm_code_priority(b->code);

			if (!b->open || p == ALARM_PRIO_HIGH)
				continue;
			if (!best || p < alarm_code_priority(best->code) ||
			    (p == alarm_code_priority(best->code) && b->seq < best->seq))
				best = b;
		}
		if (!best)
			return -ENOSPC;
		m->evicted_seq = best->seq;
		model_close(m, best);
	}
	for (size_t i = 0; i < m->cap && !slot; i++)
		if (!m->a[i].open)
			slot = &m->a[i];
	if (!slot) {
		fail_msg("model: no free slot for %s on %s", alarm_code_name(code), cuff);
		return -ENOSPC;
	}
	memset(slot, 0, sizeof(*slot));
	slot->open = true;
	snprintf(slot->cuff, sizeof(slot->cuff), "%s", cuff);
	slot->code = code;
	slot->state = ALARM_STATE_ACTIVE;
	slot->present = true;
	slot->seq = m->next_seq++;
	snprintf(slot->id, sizeof(slot->id), "gw1-%" PRIu64, slot->seq);
	m->n_open++;
	m->n_emitted++;
	return 0;
}

static void model_cleared(struct model *m, const char *cuff, enum alarm_code code)
{
	struct model_alarm *a = model_find(m, cuff, code);

	if (!a || !a->present)
		return;
	a->present = false;
	if (alarm_code_latching(code) && a->state == ALARM_STATE_ACTIVE) {
		m->n_emitted++;
		return;
	}
	model_close(m, a);
}

static int model_ack(struct model *m, const char *id)
{
	struct model_alarm *a = model_find_id(m, id);

	if (!a)
		return -ENOENT;
	if (a->state == ALARM_STATE_ACKNOWLEDGED)
		return -EALREADY;
	a->state = ALARM_STATE_ACKNOWLEDGED;
	if (!a->present)
		model_close(m, a);
	else
		m->n_emitted++;
	return 0;
}

static void model_compare(struct model *m, struct alarm_table *t, size_t n_cuffs)
{
	const struct alarm_record *list[64];
	struct model_alarm *sorted[64];
	size_t n = 0, ns = 0;
	char cuff[8];

	assert_int_equal(m->emitted, m->n_emitted);
	assert_int_equal(alarm_open_count(t), m->n_open);
	assert_int_equal(alarm_next_seq(t), m->next_seq);
	/* All open alarms, in raise order. */
	for (size_t i = 0; i < m->cap; i++) {
		size_t k;

		if (!m->a[i].open)
			continue;
		for (k = ns; k > 0 && sorted[k - 1]->seq > m->a[i].seq; k--)
			sorted[k] = sorted[k - 1];
		sorted[k] = &m->a[i];
		ns++;
	}
	assert_int_equal(alarm_list_open(t, NULL, list, 64, &n), 0);
	assert_int_equal(n, ns);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(list[i]->seq, sorted[i]->seq);
		assert_string_equal(list[i]->alarm_id, sorted[i]->id);
		assert_string_equal(list[i]->cuff, sorted[i]->cuff);
		assert_int_equal(list[i]->code, sorted[i]->code);
		assert_int_equal(list[i]->state, sorted[i]->state);
		assert_true(list[i]->condition_present == sorted[i]->present);
		assert_true(alarm_find_id(t, sorted[i]->id) == list[i]);
		assert_true(alarm_find_open(t, sorted[i]->cuff, sorted[i]->code) == list[i]);
	}
	/* Per cuff (and gateway-wide ""): the same order, filtered; unacked HIGH. */
	for (size_t c = 0; c <= n_cuffs; c++) {
		size_t want = 0, j = 0;
		bool high = false;

		if (c == n_cuffs)
			cuff[0] = '\0';
		else
			snprintf(cuff, sizeof(cuff), "c%zu", c);
		for (size_t i = 0; i < ns; i++) {
			if (strcmp(sorted[i]->cuff, cuff) == 0)
				want++;
			if ((sorted[i]->cuff[0] == '\0' || strcmp(sorted[i]->cuff, cuff) == 0) &&
			    alarm_code_priority(sorted[i]->code) == ALARM_PRIO_HIGH &&
			    sorted[i]->state == ALARM_STATE_ACTIVE)
				high = true;
		}
		assert_int_equal(alarm_list_open(t, cuff, list, 64, &n), 0);
		assert_int_equal(n, want);
		for (size_t i = 0; i < ns; i++) {
			if (strcmp(sorted[i]->cuff, cuff) != 0)
				continue;
			assert_string_equal(list[j]->alarm_id, sorted[i]->id);
			j++;
		}
		assert_true(alarm_has_unacked_high(t, cuff) == high);
		for (int k = 0; k < ALARM_CODE_COUNT; k++) {
			struct model_alarm *a = model_find(m, cuff, (enum alarm_code)k);
			const struct alarm_record *r = alarm_find_open(t, cuff, (enum alarm_code)k);

			assert_true((a == NULL) == (r == NULL));
		}
	}
}

static uint64_t rng_state;

static uint32_t rng(void)
{
	/* xorshift64*: deterministic, seeded per run */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 2685821657736338717ull) >> 32);
}

static void model_run(size_t cap, size_t n_cuffs, int steps, uint64_t seed)
{
	static struct model m;
	struct alarm_table *t = NULL;
	char cuff[8];
	int evictions = 0;

	memset(&m, 0, sizeof(m));
	assert_true(cap <= 64);
	m.cap = cap;
	m.next_seq = 1;
	rng_state = seed;
	assert_int_equal(alarm_table_new("gw1", cap, 1, on_record_model, &m, &t), 0);
	for (int step = 0; step < steps; step++) {
		uint32_t op = rng() % 10;
		size_t c = rng() % (n_cuffs + 1);
		enum alarm_code code;
		int want, got;

		m.n_step = 0;

		if (c == n_cuffs) {
			static const enum alarm_code gw[] = { ALARM_ESTOP, ALARM_OUTBOX_FULL,
							      ALARM_STORAGE_ERROR };
			cuff[0] = '\0';
			code = gw[rng() % 3];
		} else {
			snprintf(cuff, sizeof(cuff), "c%zu", c);
			do
				code = (enum alarm_code)(rng() % ALARM_CODE_COUNT);
			while (alarm_code_gateway_wide(code));
		}
		if (op < 5) {
			want = model_raise(&m, cuff, code);
			got = alarm_raise(t, cuff, NULL, code, NULL, NULL, (uint64_t)step + 1, NULL);
			assert_int_equal(got, want);
			if (m.evicted_seq) {
				/* The oldest LOW (else MEDIUM) went first, as "evicted". */
				assert_int_equal(m.n_step, 2);
				assert_int_equal(m.step[0].seq, m.evicted_seq);
				assert_int_equal(m.step[0].state, ALARM_STATE_CLEARED);
				assert_string_equal(m.step[0].message, "evicted");
				assert_int_equal(m.step[1].state, ALARM_STATE_ACTIVE);
				assert_int_equal(m.step[1].code, code);
				evictions++;
			}
			if (got < 0)
				assert_int_equal(m.n_step, 0); /* nothing changes on failure */
		} else if (op < 8) {
			model_cleared(&m, cuff, code);
			assert_int_equal(alarm_condition_cleared(t, cuff, code, (uint64_t)step + 1), 0);
		} else {
			/* Ack an open alarm, or an id that is closed or never was. */
			char id[ALARM_ID_MAX];

			snprintf(id, sizeof(id), "gw1-%u", 1 + rng() % (unsigned)m.next_seq);
			want = model_ack(&m, id);
			assert_int_equal(alarm_ack(t, id, "nurse", (uint64_t)step + 1), want);
		}
		model_compare(&m, t, n_cuffs);
	}
	/* The run reached the paths it is meant to (capacity_for(n) never evicts). */
	if (cap < alarm_table_capacity_for(n_cuffs) && cap > ALARM_HIGH_RESERVE)
		assert_true(evictions > 0);
	alarm_table_free(t);
}

static void test_indexed_table_matches_reference_model(void **state)
{
	(void)state;
	/* Too small for its cuffs: reserve, eviction, -ENOSPC, entries reused. */
	model_run(ALARM_HIGH_RESERVE + 6, 12, 4000, 0x9e3779b97f4a7c15ull);
	/* Tiny: capacity at or under the reserve. */
	model_run(3, 5, 2000, 0x1234567ull);
	/* capacity_for(n): never fills. */
	model_run(alarm_table_capacity_for(2), 2, 4000, 0xdeadbeefull);
	/* Many cuffs through few slots: the cuff hash churns (backward-shift deletion). */
	model_run(24, 40, 6000, 0xfeedfaceull);
}

/* Restored alarms keep raise (seq) order wherever they come in; ids resolve; no allocation. */
static void test_restore_out_of_order_keeps_raise_order(void **state)
{
	struct alarm_table *t = mk(alarm_table_capacity_for(3));
	static const uint64_t seqs[] = { 50, 10, 30, 20 };
	static const char *const cuffs[] = { "bay1", "bay2", "bay1", "" };
	static const enum alarm_code codes_[] = { ALARM_DEFLATE_FAILED, ALARM_SENSOR_FAULT,
						  ALARM_LEAK, ALARM_ESTOP };
	const struct alarm_record *list[8];
	char id[ALARM_ID_MAX];
	size_t n = 0;

	(void)state;
	test_alloc_fail_after(0);
	for (int i = 0; i < 4; i++) {
		struct alarm_record rec = { 0 };

		snprintf(rec.alarm_id, sizeof(rec.alarm_id), "old-gw-%" PRIu64, seqs[i]);
		snprintf(rec.cuff, sizeof(rec.cuff), "%s", cuffs[i]);
		snprintf(rec.message, sizeof(rec.message), "restored");
		rec.code = codes_[i];
		rec.seq = seqs[i];
		rec.state = ALARM_STATE_ACTIVE;
		assert_int_equal(alarm_restore(t, &rec), 0);
	}
	assert_int_equal(alarm_raise(t, "bay2", NULL, ALARM_BATTERY_LOW, NULL, NULL, 1, id), 0);
	assert_string_equal(id, "gw1-51");
	assert_int_equal(alarm_list_open(t, NULL, list, 8, &n), 0);
	assert_int_equal(n, 5);
	assert_int_equal(list[0]->seq, 10);
	assert_int_equal(list[1]->seq, 20);
	assert_int_equal(list[2]->seq, 30);
	assert_int_equal(list[3]->seq, 50);
	assert_int_equal(list[4]->seq, 51);
	assert_int_equal(alarm_list_open(t, "bay1", list, 8, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(list[0]->code, ALARM_LEAK);
	assert_int_equal(list[1]->code, ALARM_DEFLATE_FAILED);
	assert_int_equal(alarm_list_open(t, "", list, 8, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(list[0]->code, ALARM_ESTOP);
	/* The estop blocks every cuff, even one with no alarm of its own. */
	assert_true(alarm_has_unacked_high(t, "bay3"));
	assert_true(alarm_has_unacked_high(t, NULL));
	assert_int_equal(alarm_find_id(t, "old-gw-30")->code, ALARM_LEAK);
	assert_null(alarm_find_id(t, "old-gw-31"));
	assert_int_equal(alarm_ack(t, "old-gw-20", "x", 2), 0); /* condition gone: cleared */
	assert_false(alarm_has_unacked_high(t, "bay3"));
	assert_true(alarm_has_unacked_high(t, "bay1"));
	assert_int_equal(alarm_open_count(t), 4);
	assert_int_equal(test_alloc_count(), 0);
	test_alloc_reset();
	alarm_table_free(t);
}

/* A cuff id longer than any stored one matches nothing; queries stay safe. */
static void test_queries_with_odd_cuffs(void **state)
{
	struct alarm_table *t = mk(32);
	char lng[ALARM_CUFF_MAX + 8];
	const struct alarm_record *list[4];
	size_t n = 1;

	(void)state;
	memset(lng, 'a', sizeof(lng) - 1);
	lng[sizeof(lng) - 1] = '\0';
	assert_int_equal(alarm_raise(t, "bay1", NULL, ALARM_SENSOR_FAULT, NULL, NULL, 1, NULL), 0);
	assert_null(alarm_find_open(t, lng, ALARM_SENSOR_FAULT));
	assert_int_equal(alarm_list_open(t, lng, list, 4, &n), 0);
	assert_int_equal(n, 0);
	assert_false(alarm_has_unacked_high(t, lng));
	assert_false(alarm_has_unacked_high(t, ""));
	assert_int_equal(alarm_list_open(t, "bay1", NULL, 0, &n), 0); /* count only */
	assert_int_equal(n, 1);
	assert_null(alarm_find_id(t, lng));
	assert_null(alarm_find_id(NULL, "gw1-1"));
	assert_int_equal(alarm_open_count(NULL), 0);
	alarm_table_free(t);
}

/* What a clinician reads (issue 10): the figures, their units, and what
 * was done; the default sentence when a figure is missing; every sentence
 * fits the record. */
static void test_describe_in_words(void **state)
{
	char buf[ALARM_MSG_MAX];
	struct alarm_values v = { 262.4, 152.0, 250.0, NAN };

	(void)state;
	alarm_describe(ALARM_OVER_PRESSURE_CEILING, &v,
		       alarm_code_default_message(ALARM_OVER_PRESSURE_CEILING), buf, sizeof(buf));
	assert_string_equal(buf, "pressure 262 mmHg above the 250 mmHg ceiling: cuff deflated");
	v = (struct alarm_values){ 190.5, 152.0, 190.0, 2.04 };
	alarm_describe(ALARM_FULL_OCCLUSION, &v, NULL, buf, sizeof(buf));
	assert_string_equal(buf, "at or above the limb occlusion pressure (190 mmHg) for 2.0 s: "
				 "cuff deflated");
	v = (struct alarm_values){ 150, 150, 1200, 1200.1 };
	alarm_describe(ALARM_SESSION_INFLATION_TOTAL, &v, NULL, buf, sizeof(buf));
	assert_string_equal(buf, "1200 s under pressure in this session, limit 1200 s: cuff "
				 "deflated, no further inflation");
	/* A figure missing: the code's own sentence, never "nan". */
	v = (struct alarm_values){ NAN, NAN, NAN, NAN };
	alarm_describe(ALARM_TELEMETRY_LOST, &v, NULL, buf, sizeof(buf));
	assert_string_equal(buf, alarm_code_default_message(ALARM_TELEMETRY_LOST));
	/* A specific message from the engine stands as it is. */
	alarm_describe(ALARM_SENSOR_FAULT, &v, "pressure sensor fault: reading frozen", buf,
		       sizeof(buf));
	assert_string_equal(buf, "pressure sensor fault: reading frozen");
	/* Every code, with the largest figures a record can carry, fits. */
	v = (struct alarm_values){ 99999.9, 99999.9, 99999.9, 99999.9 };
	for (int c = 0; c < ALARM_CODE_COUNT; c++) {
		char big[512];

		alarm_describe((enum alarm_code)c, &v, NULL, big, sizeof(big));
		assert_true(strlen(big) < ALARM_MSG_MAX);
		assert_null(strstr(big, "nan"));
		for (const char *ch = big; *ch; ch++)
			assert_true(*ch >= 0x20 && *ch < 0x7f); /* printable ASCII */
	}
	assert_string_equal(alarm_code_limit_unit(ALARM_INFLATION_TIME), "s");
	assert_string_equal(alarm_code_limit_unit(ALARM_BATTERY_LOW), "%");
	assert_null(alarm_code_limit_unit(ALARM_ESTOP));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_SR_19_raise_creates_active_record),
		cmocka_unit_test(test_SR_19_reraise_updates_no_duplicate),
		cmocka_unit_test(test_SR_19_non_latching_clears_with_condition),
		cmocka_unit_test(test_SR_19_medium_acked_then_condition_clears),
		cmocka_unit_test(test_SR_19_high_latches_until_acknowledged),
		cmocka_unit_test(test_SR_19_high_acked_while_present),
		cmocka_unit_test(test_SR_19_ack_affects_no_other_alarm),
		cmocka_unit_test(test_SR_19_gateway_wide_estop),
		cmocka_unit_test(test_SR_19_garbage_changes_nothing),
		cmocka_unit_test(test_table_new_garbage_and_alloc_failure),
		cmocka_unit_test(test_SR_19_ids_unique_and_seeded),
		cmocka_unit_test(test_SR_20_full_table_never_drops_high),
		cmocka_unit_test(test_SR_20_capacity_for_never_fills),
		cmocka_unit_test(test_raise_ack_clear_never_allocate),
		cmocka_unit_test(test_list_open_in_raise_order),
		cmocka_unit_test(test_SR_19_restore_latched_high_after_restart),
		cmocka_unit_test(test_code_table),
		cmocka_unit_test(test_indexed_table_matches_reference_model),
		cmocka_unit_test(test_restore_out_of_order_keeps_raise_order),
		cmocka_unit_test(test_queries_with_odd_cuffs),
		cmocka_unit_test(test_describe_in_words),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
