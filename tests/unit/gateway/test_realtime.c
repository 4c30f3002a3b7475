/*
 * test_realtime: the event loop's thread as SCHED_FIFO (realtime.h).
 *
 * The priority range is checked everywhere. The rest needs the privilege
 * (root, CAP_SYS_NICE, or RLIMIT_RTPRIO): each case runs in a thread of its
 * own so the test runner's thread keeps its policy, and is skipped where
 * the privilege is missing (tests/integration/test_realtime.py covers the
 * unprivileged gateway).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "realtime.h"

static void test_range(void **state)
{
	(void)state;
	assert_int_equal(realtime_enter(0), -EINVAL);
	assert_int_equal(realtime_enter(-1), -EINVAL);
	assert_int_equal(realtime_enter(REALTIME_PRIORITY_MAX + 1), -EINVAL);
	/* Refused: the caller's policy did not change. */
	assert_int_equal(sched_getscheduler(0) & ~SCHED_RESET_ON_FORK, SCHED_OTHER);
}

struct observed {
	int r;            /* realtime_enter's result */
	int policy;       /* the entering thread's policy afterwards */
	int priority;
	int child_policy; /* a thread it created afterwards */
	int child_priority;
};

static void *child_main(void *arg)
{
	struct observed *o = arg;
	struct sched_param sp = { 0 };

	o->child_policy = sched_getscheduler(0);
	(void)sched_getparam(0, &sp);
	o->child_priority = sp.sched_priority;
	return NULL;
}

static void *loop_thread_main(void *arg)
{
	struct observed *o = arg;
	struct sched_param sp = { 0 };
	pthread_t child;

	o->r = realtime_enter(7);
	o->policy = sched_getscheduler(0);
	(void)sched_getparam(0, &sp);
	o->priority = sp.sched_priority;
	if (o->r == 0 && pthread_create(&child, NULL, child_main, o) == 0)
		pthread_join(child, NULL);
	return NULL;
}

/* The loop's thread becomes SCHED_FIFO; threads it starts later (Paho's,
 * the store's) do not inherit it. */
static void test_fifo_not_inherited(void **state)
{
	struct observed o = { .child_policy = -1 };
	pthread_t t;

	(void)state;
	assert_int_equal(pthread_create(&t, NULL, loop_thread_main, &o), 0);
	pthread_join(t, NULL);
	if (o.r == -EPERM)
		skip(); /* no privilege here */
	assert_int_equal(o.r, 0);
	assert_int_equal(o.policy & ~SCHED_RESET_ON_FORK, SCHED_FIFO);
	assert_true(o.policy & SCHED_RESET_ON_FORK);
	assert_int_equal(o.priority, 7);
	assert_int_equal(o.child_policy, SCHED_OTHER);
	assert_int_equal(o.child_priority, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_range),
		cmocka_unit_test(test_fifo_not_inherited),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
