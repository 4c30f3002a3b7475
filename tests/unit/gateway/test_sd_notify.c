/*
 * test_sd_notify.c - the systemd notifications reach $NOTIFY_SOCKET (a
 * datagram socket of this test, as systemd's would be), nothing happens
 * without it, and the watchdog interval is read from $WATCHDOG_USEC.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "sd_notify.h"

static char dir[64];
static char sock_path[96];
static int sock = -1;

static int setup(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 5 };

	strcpy(dir, "/tmp/bfr-sdnotify-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(sock_path, sizeof(sock_path), "%s/notify", dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0 || bind(sock, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -1;
	/* A message that does not come fails the test instead of hanging it. */
	return setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

static int teardown(void **state)
{
	close(sock);
	unlink(sock_path);
	rmdir(dir);
	return 0;
}

static void expect(const char *text)
{
	char buf[256];
	ssize_t n = recv(sock, buf, sizeof(buf) - 1, 0);

	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf, text);
}

static void test_without_systemd_nothing_happens(void **state)
{
	uint64_t usec = 42;

	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	assert_int_equal(sdn_ready(), 0);
	assert_int_equal(sdn_watchdog(), 0);
	assert_int_equal(sdn_stopping(), 0);
	assert_int_equal(sdn_watchdog_usec(&usec), 0);
	assert_int_equal(usec, 42); /* untouched */
}

static void test_notifications_reach_the_socket(void **state)
{
	assert_int_equal(setenv("NOTIFY_SOCKET", sock_path, 1), 0);
	assert_true(sdn_ready() > 0);
	expect("READY=1");
	assert_true(sdn_watchdog() > 0);
	expect("WATCHDOG=1");
	assert_true(sdn_status("supervising 2 cuffs") > 0);
	expect("STATUS=supervising 2 cuffs");
	assert_true(sdn_stopping() > 0);
	expect("STOPPING=1");
	/* Still set afterwards: every later call reaches systemd too. */
	assert_string_equal(getenv("NOTIFY_SOCKET"), sock_path);
	unsetenv("NOTIFY_SOCKET");
}

static void test_watchdog_interval(void **state)
{
	char pid[32];
	uint64_t usec = 0;

	assert_int_equal(setenv("WATCHDOG_USEC", "4000000", 1), 0);
	unsetenv("WATCHDOG_PID");
	assert_int_equal(sdn_watchdog_usec(&usec), 1);
	assert_int_equal(usec, 4000000);

	/* For this process only. */
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	assert_int_equal(setenv("WATCHDOG_PID", pid, 1), 0);
	usec = 0;
	assert_int_equal(sdn_watchdog_usec(&usec), 1);
	assert_int_equal(usec, 4000000);
	snprintf(pid, sizeof(pid), "%d", (int)getpid() + 1);
	assert_int_equal(setenv("WATCHDOG_PID", pid, 1), 0);
	usec = 7;
	assert_int_equal(sdn_watchdog_usec(&usec), 0);
	assert_int_equal(usec, 7);

	/* A malformed environment is an error, not a watchdog. */
	unsetenv("WATCHDOG_PID");
	assert_int_equal(setenv("WATCHDOG_USEC", "soon", 1), 0);
	assert_true(sdn_watchdog_usec(&usec) < 0);
	assert_int_equal(usec, 7);
	unsetenv("WATCHDOG_USEC");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_without_systemd_nothing_happens),
		cmocka_unit_test(test_notifications_reach_the_socket),
		cmocka_unit_test(test_watchdog_interval),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
