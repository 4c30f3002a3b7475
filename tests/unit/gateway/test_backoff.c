/* test_backoff.c - equal-jitter exponential backoff with a scripted random source. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "backoff.h"

static uint32_t fixed_random(void *data)
{
	return *(uint32_t *)data;
}

static uint32_t lcg_random(void *data)
{
	uint32_t *s = data;

	*s = *s * 1664525u + 1013904223u;
	return *s;
}

static void test_init_rejects_bad_parameters(void **state)
{
	struct backoff b = { .base_ms = 7, .max_ms = 7, .attempt = 3 };
	uint32_t r = 0;

	assert_int_equal(backoff_init(&b, 0, 1000, fixed_random, &r), -EINVAL);
	assert_int_equal(backoff_init(&b, 1000, 999, fixed_random, &r), -EINVAL);
	assert_int_equal(backoff_init(&b, 500, 30000, NULL, &r), -EINVAL);
	assert_int_equal(backoff_init(NULL, 500, 30000, fixed_random, &r), -EINVAL);
	/* untouched on failure */
	assert_int_equal(b.base_ms, 7);
	assert_int_equal(b.attempt, 3);
}

static void test_lower_bound_doubles_to_cap(void **state)
{
	struct backoff b;
	uint32_t r = 0; /* r % span == 0: the lower edge, c/2 */
	const uint32_t expect[] = { 250, 500, 1000, 2000, 4000, 8000, 15000, 15000, 15000 };

	assert_int_equal(backoff_init(&b, BACKOFF_DEFAULT_BASE_MS, BACKOFF_DEFAULT_MAX_MS,
				      fixed_random, &r), 0);
	for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++)
		assert_int_equal(backoff_next_ms(&b), expect[i]);
}

static void test_upper_bound_is_ceiling(void **state)
{
	struct backoff b;
	uint32_t r;
	const uint32_t expect[] = { 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000 };

	assert_int_equal(backoff_init(&b, 500, 30000, fixed_random, &r), 0);
	for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
		/* r % (span + 1) == span: choose r as exactly span */
		uint32_t c = expect[i];

		r = c - c / 2;
		assert_int_equal(backoff_next_ms(&b), c);
	}
}

static void test_reset_starts_over(void **state)
{
	struct backoff b;
	uint32_t r = 0;

	assert_int_equal(backoff_init(&b, 500, 30000, fixed_random, &r), 0);
	for (int i = 0; i < 20; i++)
		backoff_next_ms(&b);
	assert_int_equal(backoff_next_ms(&b), 15000);
	backoff_reset(&b);
	assert_int_equal(backoff_next_ms(&b), 250);
	assert_int_equal(backoff_next_ms(&b), 500);
}

static void test_random_stays_in_range_and_is_deterministic(void **state)
{
	struct backoff a, b;
	uint32_t sa = 42, sb = 42;
	int distinct_at_cap = 0;
	uint32_t prev = 0;

	assert_int_equal(backoff_init(&a, 500, 30000, lcg_random, &sa), 0);
	assert_int_equal(backoff_init(&b, 500, 30000, lcg_random, &sb), 0);
	for (uint32_t n = 0; n < 1000; n++) {
		uint32_t c = n >= 6 ? 30000 : 500u << n;
		uint32_t d = backoff_next_ms(&a);

		assert_in_range(d, c / 2, c);
		assert_int_equal(d, backoff_next_ms(&b));
		if (n > 6 && d != prev)
			distinct_at_cap++;
		prev = d;
	}
	/* jitter actually varies once capped */
	assert_true(distinct_at_cap > 900);
}

static void test_huge_attempt_count_does_not_overflow(void **state)
{
	struct backoff b;
	uint32_t r = 0xFFFFFFFFu;

	assert_int_equal(backoff_init(&b, 1, UINT32_MAX, fixed_random, &r), 0);
	b.attempt = UINT32_MAX - 1;
	assert_in_range(backoff_next_ms(&b), UINT32_MAX / 2, UINT32_MAX);
	assert_in_range(backoff_next_ms(&b), UINT32_MAX / 2, UINT32_MAX);
	assert_int_equal(b.attempt, UINT32_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_rejects_bad_parameters),
		cmocka_unit_test(test_lower_bound_doubles_to_cap),
		cmocka_unit_test(test_upper_bound_is_ceiling),
		cmocka_unit_test(test_reset_starts_over),
		cmocka_unit_test(test_random_stays_in_range_and_is_deterministic),
		cmocka_unit_test(test_huge_attempt_count_does_not_overflow),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
