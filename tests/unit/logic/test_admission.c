/*
 * test_admission.c - the requester budgets (SR-28) and the replies given
 * (SR-27) of gateway/logic/admission.c, on an injected clock.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "admission.h"
#include "test_alloc.h"

static int setup(void **state)
{
	struct admission *adm = NULL;

	if (admission_new(&adm) < 0)
		return -1;
	*state = adm;
	return 0;
}

static int teardown(void **state)
{
	admission_free(*state);
	return 0;
}

/* How many commands the requester gets through at now_ms, trying max. */
static int take_many(struct admission *adm, const char *who, uint64_t now_ms, int max)
{
	int n = 0;

	for (int i = 0; i < max; i++)
		n += admission_take(adm, who, now_ms);
	return n;
}

static void test_SR_28_burst_then_rate(void **state)
{
	struct admission *adm = *state;

	/* A fresh requester has the whole burst, not one more. */
	assert_int_equal(take_many(adm, "a", 1000, 500), ADMISSION_BURST);
	assert_false(admission_take(adm, "a", 1000));
	/* 20 ms buy exactly one command at 50/s; 19 ms do not. */
	assert_false(admission_take(adm, "a", 1019));
	assert_true(admission_take(adm, "a", 1020));
	assert_false(admission_take(adm, "a", 1020));
	/* Over one second of a steady flood, 50 get through. */
	int got = 0;

	for (uint64_t t = 1021; t <= 2020; t++)
		got += take_many(adm, "a", t, 10);
	assert_int_equal(got, ADMISSION_RATE_PER_S);
}

static void test_SR_28_refill_is_capped_and_clock_back_refills_nothing(void **state)
{
	struct admission *adm = *state;

	assert_int_equal(take_many(adm, "a", 5000, 500), ADMISSION_BURST);
	/* An hour of silence fills the bucket, but only to the burst. */
	assert_int_equal(take_many(adm, "a", 5000 + 3600000, 500), ADMISSION_BURST);
	/* Time going back (a caller bug) gives nothing back. */
	assert_int_equal(take_many(adm, "a", 1000, 500), 0);
	/* A silence of UINT64 size neither overflows nor over-fills. */
	assert_int_equal(take_many(adm, "a", UINT64_MAX, 500), ADMISSION_BURST);
}

static void test_SR_28_requesters_have_their_own_budgets(void **state)
{
	struct admission *adm = *state;

	assert_int_equal(take_many(adm, "flooder", 100, 1000), ADMISSION_BURST);
	/* The flooder's empty bucket does not touch the clinician's. */
	assert_int_equal(take_many(adm, "clinician", 100, 3), 3);
	/* No key (a 3.1.1 requester without a Response Topic) is one key. */
	assert_int_equal(take_many(adm, NULL, 100, 1000), ADMISSION_BURST);
	assert_false(admission_take(adm, "", 100));
}

static void test_SR_28_forgets_the_quietest_requester_first(void **state)
{
	struct admission *adm = *state;
	char key[32];

	/* "busy" empties its bucket, and keeps being heard from while twice
	 * as many one-off requesters as there are slots come and go. */
	assert_int_equal(take_many(adm, "busy", 1, 1000), ADMISSION_BURST);
	for (int i = 0; i < ADMISSION_REQUESTERS * 2; i++) {
		snprintf(key, sizeof(key), "one-off-%d", i);
		assert_true(admission_take(adm, key, 10 + (uint64_t)i));
		(void)take_many(adm, "busy", 10 + (uint64_t)i, 10);
	}
	/* Not forgotten: its bucket holds what 1 ms of refill gave, no more. */
	assert_int_equal(take_many(adm, "busy", 10 + ADMISSION_REQUESTERS * 2, 1000), 0);
	/* A forgotten one-off comes back with a full bucket. */
	assert_int_equal(take_many(adm, "one-off-0", 10 + ADMISSION_REQUESTERS * 2, 1000),
			 ADMISSION_BURST);
}

static void test_SR_28_long_keys_are_cut_not_overrun(void **state)
{
	struct admission *adm = *state;
	char a[ADMISSION_KEY_MAX * 2], b[ADMISSION_KEY_MAX * 2];

	memset(a, 'x', sizeof(a) - 1);
	a[sizeof(a) - 1] = '\0';
	memcpy(b, a, sizeof(b));
	b[sizeof(b) - 2] = 'y'; /* differs only beyond the cut */
	assert_int_equal(take_many(adm, a, 7, 1000), ADMISSION_BURST);
	assert_false(admission_take(adm, b, 7));
}

static void test_SR_27_reply_remembered_and_given_again(void **state)
{
	struct admission *adm = *state;
	const char *verb = NULL;

	assert_null(admission_reply(adm, "r1", &verb));
	assert_int_equal(admission_remember(adm, "r1", "session/start", "{\"ok\":true}"), 0);
	assert_string_equal(admission_reply(adm, "r1", &verb), "{\"ok\":true}");
	assert_string_equal(verb, "session/start");
	/* The first reply stands. */
	assert_int_equal(admission_remember(adm, "r1", "session/start", "{\"ok\":false}"),
			 -EEXIST);
	assert_string_equal(admission_reply(adm, "r1", NULL), "{\"ok\":true}");
	assert_int_equal(admission_n_replies(adm), 1);
}

static void test_SR_27_remember_rejects_bad_arguments(void **state)
{
	struct admission *adm = *state;

	assert_int_equal(admission_remember(adm, "", "v", "{}"), -EINVAL);
	assert_int_equal(admission_remember(adm, NULL, "v", "{}"), -EINVAL);
	assert_int_equal(admission_remember(adm, "r", NULL, "{}"), -EINVAL);
	assert_int_equal(admission_remember(adm, "r", "v", NULL), -EINVAL);
	assert_int_equal(admission_n_replies(adm), 0);
	assert_null(admission_reply(adm, NULL, NULL));
}

static void test_SR_27_oldest_reply_goes_first(void **state)
{
	struct admission *adm = *state;
	char id[32], reply[32];

	for (int i = 0; i < ADMISSION_REPLIES + 10; i++) {
		snprintf(id, sizeof(id), "r%d", i);
		snprintf(reply, sizeof(reply), "{\"n\":%d}", i);
		assert_int_equal(admission_remember(adm, id, "estop", reply), 0);
	}
	assert_int_equal(admission_n_replies(adm), ADMISSION_REPLIES);
	assert_null(admission_reply(adm, "r0", NULL));
	assert_null(admission_reply(adm, "r9", NULL));
	assert_string_equal(admission_reply(adm, "r10", NULL), "{\"n\":10}");
	snprintf(id, sizeof(id), "r%d", ADMISSION_REPLIES + 9);
	assert_non_null(admission_reply(adm, id, NULL));
}

static void test_allocation_failures_change_nothing(void **state)
{
	struct admission *adm = *state, *other = NULL;
	int r;

	assert_int_equal(admission_remember(adm, "kept", "estop", "{}"), 0);
	test_alloc_fail_after(0);
	r = admission_remember(adm, "lost", "estop", "{}");
	test_alloc_reset();
	assert_int_equal(r, -ENOMEM);
	assert_null(admission_reply(adm, "lost", NULL));
	assert_int_equal(admission_n_replies(adm), 1);
	/* A later remember works: the failure left no half entry. */
	assert_int_equal(admission_remember(adm, "lost", "estop", "{}"), 0);

	test_alloc_fail_after(0);
	r = admission_new(&other);
	test_alloc_reset();
	assert_int_equal(r, -ENOMEM);
	assert_null(other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_SR_28_burst_then_rate, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_SR_28_refill_is_capped_and_clock_back_refills_nothing, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_SR_28_requesters_have_their_own_budgets,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_SR_28_forgets_the_quietest_requester_first,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_SR_28_long_keys_are_cut_not_overrun, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_SR_27_reply_remembered_and_given_again,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_SR_27_remember_rejects_bad_arguments, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_SR_27_oldest_reply_goes_first, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_allocation_failures_change_nothing, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
