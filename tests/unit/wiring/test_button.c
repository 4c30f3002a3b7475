/*
 * test_button.c - the cuff's button (status bit 6) seen by cuff.c: a press
 * held 2 s on the samples' own clock is one long press, reported while it
 * is still held; a shorter one is a short press, reported when let go
 * (DESIGN section 11). Scripted cuff (gatt_peer: 20 ms per sample).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_alloc.h"
#include "wiring.h"

static struct wiring w;

/* n samples of one notification (1..3), all with or without the button. */
static void samples(size_t n, bool button)
{
	const double p[3] = { 5.0, 5.0, 5.0 };

	gatt_peer_notify(&w.peers[0], p, n, button ? BFR_ST_BUTTON : 0);
	wiring_settle(&w);
}

static size_t count(const char *line)
{
	size_t k = 0;

	for (size_t i = 0; i < w.n_log; i++)
		k += strcmp(w.log[i], line) == 0;
	return k;
}

static void test_short_press_reported_on_release(void **state)
{
	wiring_setup(&w, 1, NULL);
	wiring_connect(&w);
	samples(3, false);
	for (int i = 0; i < 5; i++) /* 300 ms held */
		samples(3, true);
	assert_int_equal(count("button c1 short"), 0);
	samples(1, false);
	assert_int_equal(count("button c1 short"), 1);
	assert_int_equal(count("button c1 long"), 0);
	/* after the notification's samples went to the session */
	assert_string_equal(w.log[wiring_find(&w, 0, "button c1 short") - 1], "samples c1 1");
	samples(3, false);
	assert_int_equal(count("button c1 short"), 1);
	wiring_teardown(&w);
}

/* 2 s on the samples' clock: the 101st sample of a press (20 ms apart). */
static void test_long_press_once_while_held(void **state)
{
	wiring_setup(&w, 1, NULL);
	wiring_connect(&w);
	for (int i = 0; i < 33; i++) /* samples 1..99: 1980 ms */
		samples(3, true);
	samples(1, true); /* sample 100: 1980 ms after the first */
	assert_int_equal(count("button c1 long"), 0);
	samples(1, true); /* sample 101: 2000 ms */
	assert_int_equal(count("button c1 long"), 1);
	for (int i = 0; i < 10; i++) /* held on: nothing more */
		samples(3, true);
	samples(3, false); /* let go: no short press either */
	assert_int_equal(count("button c1 long"), 1);
	assert_int_equal(count("button c1 short"), 0);
	/* the next press is a press of its own */
	samples(2, true);
	samples(1, false);
	assert_int_equal(count("button c1 short"), 1);
	wiring_teardown(&w);
}

static bool ready(struct wiring *x)
{
	struct cuff_reading rd;

	cuff_read(x->cuffs[0], &rd);
	if (rd.link != CUFF_LINK_READY)
		x->now += 100; /* the link's reconnect backoff runs on the fake clock */
	return rd.link == CUFF_LINK_READY;
}

/* A press that began before the link dropped does not end after it. */
static void test_press_does_not_span_a_lost_link(void **state)
{
	wiring_setup(&w, 1, NULL);
	wiring_connect(&w);
	for (int i = 0; i < 10; i++)
		samples(3, true);
	assert_int_equal(loop_del_io(w.loop, w.peers[0].fd), 0);
	close(w.peers[0].fd);
	w.peers[0].fd = -1;
	wiring_settle(&w);
	assert_true(wiring_find(&w, 0, "link_lost c1") >= 0);
	wiring_run_until(&w, ready);
	samples(3, false);
	assert_int_equal(count("button c1 short"), 0);
	assert_int_equal(count("button c1 long"), 0);
	wiring_teardown(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_short_press_reported_on_release),
		cmocka_unit_test(test_long_press_once_while_held),
		cmocka_unit_test(test_press_does_not_span_a_lost_link),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
