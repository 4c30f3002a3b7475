/*
 * test_publisher.c - the outbox's send window for a broker's Receive
 * Maximum (publisher_send_window, publisher.h). The window itself, in
 * flight against a real broker, is exercised by every integration test:
 * the harness's mosquitto announces a Receive Maximum of 20, and
 * tests/integration/test_outbox_window.py drains a backlog through a window
 * of 3 with nothing else to wake Paho.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "publisher.h"

static void check(unsigned receive_max, size_t want_window, size_t want_refill)
{
	size_t refill = 12345;

	assert_int_equal(publisher_send_window(receive_max, &refill), want_window);
	assert_int_equal(refill, want_refill);
}

static void test_window_follows_receive_maximum(void **state)
{
	(void)state;
	/* A broker that allows the window and the reserve: the full window. */
	check(MQTT_RECEIVE_MAXIMUM_NONE, PUBLISHER_WINDOW, PUBLISHER_REFILL_MIN);
	check(PUBLISHER_WINDOW + PUBLISHER_DIRECT_RESERVE, PUBLISHER_WINDOW, PUBLISHER_REFILL_MIN);
	/* Fewer: the Receive Maximum less PUBLISHER_DIRECT_RESERVE slots for
	 * replies and the status, refilled at the same share of the window. */
	check(PUBLISHER_WINDOW + PUBLISHER_DIRECT_RESERVE - 1, PUBLISHER_WINDOW - 1, 31);
	check(PUBLISHER_WINDOW, PUBLISHER_WINDOW - PUBLISHER_DIRECT_RESERVE, 31);
	check(100, 100 - PUBLISHER_DIRECT_RESERVE, 12);
	check(20, 18, 2); /* mosquitto's default max_inflight_messages */
	/* A small one reserves at most an eighth of itself. */
	check(16, 14, 1);
	check(8, 7, 1);
	check(7, 7, 1);
	check(3, 3, 1);
	check(1, 1, 1);
	/* 0 never comes from mqtt_client_receive_maximum while connected; still 1. */
	check(0, 1, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_window_follows_receive_maximum),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
