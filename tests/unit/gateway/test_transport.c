/*
 * test_transport.c - address parsing, the sim: transport against a real
 * listening AF_UNIX SOCK_SEQPACKET socket, the LE path up to the socket call
 * (no Bluetooth in this kernel), and the per-adapter scheduler.
 */
#include <bluetooth/bluetooth.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "test_alloc.h"
#include "transport.h"

static uint64_t fake_now;

static uint64_t fake_clock(void *data)
{
	return fake_now;
}

static void test_parse_sim(void **state)
{
	struct transport_address a;
	char err[TRANSPORT_ERR_LEN];

	assert_int_equal(transport_parse("sim:/run/cuffsim/cuff-01.sock", "bogus", "bogus",
					 "bogus", &a, err, sizeof(err)), 0);
	assert_int_equal(a.kind, TRANSPORT_SIM);
	assert_string_equal(a.path, "/run/cuffsim/cuff-01.sock");
}

static void test_parse_le(void **state)
{
	struct transport_address a;
	char err[TRANSPORT_ERR_LEN];
	char text[64];

	assert_int_equal(transport_parse("C4:7F:51:00:12:9A", "random", "hci1", "high", &a, err,
					 sizeof(err)), 0);
	assert_int_equal(a.kind, TRANSPORT_LE);
	assert_int_equal(a.bdaddr[0], 0x9A); /* bdaddr_t is little-endian */
	assert_int_equal(a.bdaddr[5], 0xC4);
	assert_int_equal(a.bdaddr_type, BDADDR_LE_RANDOM);
	assert_int_equal(a.adapter, 1);
	assert_int_equal(a.security, TRANSPORT_SECURITY_HIGH);
	transport_format(&a, text, sizeof(text));
	assert_string_equal(text, "C4:7F:51:00:12:9A (random, hci1)");

	assert_int_equal(transport_parse("c4:7f:51:00:12:9a", NULL, NULL, NULL, &a, NULL, 0), 0);
	assert_int_equal(a.bdaddr_type, BDADDR_LE_PUBLIC);
	assert_int_equal(a.adapter, 0);
	assert_int_equal(a.security, TRANSPORT_SECURITY_MEDIUM);
	assert_int_equal(transport_parse("00:00:00:00:00:01", "public", "hci0", "low", &a, NULL,
					 0), 0);
	assert_int_equal(a.security, TRANSPORT_SECURITY_LOW);
}

static void test_parse_rejects_garbage(void **state)
{
	static const struct {
		const char *addr, *type, *adapter, *security, *complaint;
	} bad[] = {
		{ "C4:7F:51:00:12", NULL, NULL, NULL, "expected sim:/path or a BD address" },
		{ "C4:7F:51:00:12:9G", NULL, NULL, NULL, "BD address" },
		{ "C4-7F-51-00-12-9A", NULL, NULL, NULL, "BD address" },
		{ "C4:7F:51:00:12:9A:00", NULL, NULL, NULL, "BD address" },
		{ "C47F:51:00:12:9A:0", NULL, NULL, NULL, "BD address" },
		{ " C4:7F:51:00:12:9A", NULL, NULL, NULL, "BD address" },
		{ "", NULL, NULL, NULL, "BD address" },
		{ "SIM:/x", NULL, NULL, NULL, "BD address" },
		{ "sim:", NULL, NULL, NULL, "empty socket path" },
		{ "C4:7F:51:00:12:9A", "static", NULL, NULL, "address_type \"static\"" },
		{ "C4:7F:51:00:12:9A", "", NULL, NULL, "address_type" },
		{ "C4:7F:51:00:12:9A", NULL, "hci", NULL, "adapter \"hci\"" },
		{ "C4:7F:51:00:12:9A", NULL, "hcix", NULL, "adapter" },
		{ "C4:7F:51:00:12:9A", NULL, "usb0", NULL, "adapter" },
		{ "C4:7F:51:00:12:9A", NULL, "hci-1", NULL, "adapter" },
		{ "C4:7F:51:00:12:9A", NULL, "hci1024", NULL, "adapter" },
		{ "C4:7F:51:00:12:9A", NULL, "hci0 ", NULL, "adapter" },
		{ "C4:7F:51:00:12:9A", NULL, NULL, "none", "security \"none\"" },
		{ "C4:7F:51:00:12:9A", NULL, NULL, "MEDIUM", "security" },
	};
	struct transport_address a, before;
	char longpath[200];

	memset(&a, 0x5A, sizeof(a));
	before = a;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char err[TRANSPORT_ERR_LEN] = "";

		assert_int_equal(transport_parse(bad[i].addr, bad[i].type, bad[i].adapter,
						 bad[i].security, &a, err, sizeof(err)), -EINVAL);
		if (!strstr(err, bad[i].complaint))
			fail_msg("case %zu: \"%s\" does not mention \"%s\"", i, err,
				 bad[i].complaint);
		assert_memory_equal(&a, &before, sizeof(a));
	}
	memset(longpath, 'x', sizeof(longpath));
	memcpy(longpath, "sim:/", 5);
	longpath[sizeof(longpath) - 1] = '\0';
	assert_int_equal(transport_parse(longpath, NULL, NULL, NULL, &a, NULL, 0), -EINVAL);
	assert_int_equal(transport_parse(NULL, NULL, NULL, NULL, &a, NULL, 0), -EINVAL);
	assert_memory_equal(&a, &before, sizeof(a));
}

static void test_le_without_bluetooth(void **state)
{
	struct transport_address a;
	char err[TRANSPORT_ERR_LEN] = "";
	int fd = -77;
	int probe = socket(AF_BLUETOOTH, SOCK_SEQPACKET, 1);

	if (probe >= 0) {
		close(probe);
		skip(); /* this kernel has Bluetooth: nothing to assert about its absence */
	}
	assert_int_equal(transport_parse("C4:7F:51:00:12:9A", "random", "hci0", "medium", &a,
					 NULL, 0), 0);
	assert_int_equal(transport_open(&a, &fd, err, sizeof(err)), -EAFNOSUPPORT);
	assert_string_equal(err, "Bluetooth not available in this kernel "
			    "(AF_BLUETOOTH: Address family not supported)");
	assert_int_equal(fd, -77);
}

struct sim_server {
	char dir[64];
	char path[108];
	int listen_fd;
};

static void sim_server_start(struct sim_server *s)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	strcpy(s->dir, "/tmp/bfr-test-transport-XXXXXX");
	assert_non_null(mkdtemp(s->dir));
	snprintf(s->path, sizeof(s->path), "%s/cuff-01.sock", s->dir);
	s->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	assert_true(s->listen_fd >= 0);
	strcpy(sun.sun_path, s->path);
	assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(s->listen_fd, 4), 0);
}

static void sim_server_stop(struct sim_server *s)
{
	close(s->listen_fd);
	unlink(s->path);
	rmdir(s->dir);
}

struct outcome {
	int calls;
	int err;
	int fd;
	char msg[256];
	int order;
	int adapter;
};

static int completion_order;

static void on_connect(int err, int fd, const char *msg, void *user_data)
{
	struct outcome *o = user_data;

	o->calls++;
	o->err = err;
	o->fd = fd;
	o->order = ++completion_order;
	snprintf(o->msg, sizeof(o->msg), "%s", msg ? msg : "");
}

static void run_until(struct loop *loop, const int *flag, int want)
{
	/* bounded: a deadline in iterations, each waiting at most 100 ms */
	for (int i = 0; i < 50 && *flag < want; i++)
		assert_int_equal(loop_run_once(loop, 100), 0);
	assert_int_equal(*flag, want);
}

static void test_sim_connects_through_scheduler(void **state)
{
	struct sim_server srv;
	struct loop *loop;
	struct transport_sched *s;
	struct transport_address a;
	struct outcome ok = { 0 }, missing = { 0 };
	char addr[140];
	int peer;

	sim_server_start(&srv);
	assert_int_equal(loop_new(&loop), 0);
	assert_int_equal(transport_sched_new(loop, &s), 0);
	snprintf(addr, sizeof(addr), "sim:%s", srv.path);
	assert_int_equal(transport_parse(addr, NULL, NULL, NULL, &a, NULL, 0), 0);
	assert_int_equal(transport_sched_connect(s, &a, on_connect, &ok, NULL), 0);
	assert_int_equal(ok.calls, 0); /* never from inside connect */
	run_until(loop, &ok.calls, 1);
	assert_int_equal(ok.err, 0);
	assert_true(ok.fd >= 0);
	peer = accept(srv.listen_fd, NULL, NULL);
	assert_true(peer >= 0);
	assert_int_equal(send(ok.fd, "\x02\x05\x02", 3, 0), 3);
	char buf[8];
	assert_int_equal(recv(peer, buf, sizeof(buf), 0), 3);
	close(peer);
	close(ok.fd);

	snprintf(addr, sizeof(addr), "sim:%s/nope.sock", srv.dir);
	assert_int_equal(transport_parse(addr, NULL, NULL, NULL, &a, NULL, 0), 0);
	assert_int_equal(transport_sched_connect(s, &a, on_connect, &missing, NULL), 0);
	run_until(loop, &missing.calls, 1);
	assert_int_equal(missing.err, -ENOENT);
	assert_int_equal(missing.fd, -1);
	assert_non_null(strstr(missing.msg, "nope.sock"));

	transport_sched_free(s);
	loop_free(loop);
	sim_server_stop(&srv);
}

/* Fake opener: "connecting" fds are pipe read ends, which never become
 * writable, until the test completes them by swapping in a socket. */
struct fake_net {
	int opened[4];     /* per adapter; index 3 counts sim */
	int max_in_flight; /* per adapter */
	struct transport_sched *sched;
	int fail_with;
	bool never_complete;
	int pipe_writers[8];
	int n_writers;
};

static int fake_open(const struct transport_address *a, int *fd_out, char *err, size_t len,
		     void *data)
{
	struct fake_net *n = data;
	int sv[2];

	if (n->fail_with) {
		snprintf(err, len, "fake failure");
		return n->fail_with;
	}
	if (a->kind == TRANSPORT_LE) {
		n->opened[a->adapter]++;
		unsigned in = transport_sched_in_flight(n->sched, a->adapter) + 1;
		if ((int)in > n->max_in_flight)
			n->max_in_flight = (int)in;
	} else {
		n->opened[3]++;
	}
	if (n->never_complete) {
		assert_int_equal(pipe(sv), 0);
		/* keep the write end open, or the read end reports EPOLLHUP */
		n->pipe_writers[n->n_writers++] = sv[1];
		*fd_out = sv[0];
		return 0;
	}
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	close(sv[1]);
	/* A closed peer still yields EPOLLOUT|EPOLLHUP with SO_ERROR 0: fine here. */
	*fd_out = sv[0];
	return 0;
}

static void test_one_le_attempt_per_adapter(void **state)
{
	struct loop *loop;
	struct transport_sched *s;
	struct fake_net net = { .max_in_flight = 0 };
	struct transport_address hci0, hci1, sim;
	struct outcome o[6] = { 0 };
	int done = 0;

	completion_order = 0;
	assert_int_equal(loop_new(&loop), 0);
	assert_int_equal(transport_sched_new(loop, &s), 0);
	net.sched = s;
	transport_sched_set_opener(s, fake_open, &net);
	assert_int_equal(transport_parse("00:00:00:00:00:01", NULL, "hci0", NULL, &hci0, NULL,
					 0), 0);
	assert_int_equal(transport_parse("00:00:00:00:00:02", NULL, "hci1", NULL, &hci1, NULL,
					 0), 0);
	assert_int_equal(transport_parse("sim:/nowhere", NULL, NULL, NULL, &sim, NULL, 0), 0);
	assert_int_equal(transport_sched_connect(s, &hci0, on_connect, &o[0], NULL), 0);
	assert_int_equal(transport_sched_connect(s, &hci0, on_connect, &o[1], NULL), 0);
	assert_int_equal(transport_sched_connect(s, &hci0, on_connect, &o[2], NULL), 0);
	assert_int_equal(transport_sched_connect(s, &hci1, on_connect, &o[3], NULL), 0);
	assert_int_equal(transport_sched_connect(s, &sim, on_connect, &o[4], NULL), 0);
	assert_int_equal(transport_sched_connect(s, &sim, on_connect, &o[5], NULL), 0);

	/* first iteration starts hci0 #1, hci1 #1 and both sim attempts at once */
	assert_int_equal(loop_run_once(loop, 0), 0);
	assert_int_equal(net.opened[0], 1);
	assert_int_equal(net.opened[1], 1);
	assert_int_equal(net.opened[3], 2);
	assert_int_equal(transport_sched_in_flight(s, 0), 1);

	for (int i = 0; i < 50 && done < 6; i++) {
		assert_int_equal(loop_run_once(loop, 100), 0);
		done = 0;
		for (int k = 0; k < 6; k++)
			done += o[k].calls;
	}
	assert_int_equal(done, 6);
	assert_int_equal(net.max_in_flight, 1);
	assert_int_equal(net.opened[0], 3);
	/* hci0 attempts completed in the order they were queued */
	assert_true(o[0].order < o[1].order);
	assert_true(o[1].order < o[2].order);
	for (int k = 0; k < 6; k++) {
		assert_int_equal(o[k].err, 0);
		close(o[k].fd);
	}
	transport_sched_free(s);
	loop_free(loop);
}

static void test_timeout_cancel_and_failure(void **state)
{
	struct loop *loop;
	struct transport_sched *s;
	struct fake_net net = { .never_complete = true };
	struct transport_address hci0;
	struct outcome a = { 0 }, b = { 0 }, c = { 0 };
	unsigned idb;

	fake_now = 1000;
	assert_int_equal(loop_new_with_clock(fake_clock, NULL, &loop), 0);
	assert_int_equal(transport_sched_new(loop, &s), 0);
	net.sched = s;
	transport_sched_set_opener(s, fake_open, &net);
	assert_int_equal(transport_parse("00:00:00:00:00:01", NULL, NULL, NULL, &hci0, NULL, 0),
			 0);
	assert_int_equal(transport_sched_connect(s, &hci0, on_connect, &a, NULL), 0);
	assert_int_equal(transport_sched_connect(s, &hci0, on_connect, &b, &idb), 0);
	assert_int_equal(transport_sched_connect(s, &hci0, on_connect, &c, NULL), 0);
	assert_int_equal(loop_run_once(loop, 0), 0);
	assert_int_equal(net.opened[0], 1);
	fake_now += TRANSPORT_CONNECT_TIMEOUT_MS - 1;
	assert_int_equal(loop_run_once(loop, 0), 0);
	assert_int_equal(a.calls, 0);
	fake_now += 1;
	assert_int_equal(loop_run_once(loop, 0), 0);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.err, -ETIMEDOUT);
	assert_non_null(strstr(a.msg, "no connection within"));
	/* b starts next; cancel it while in flight, then c runs and fails to open */
	assert_int_equal(loop_run_once(loop, 0), 0);
	assert_int_equal(net.opened[0], 2);
	assert_int_equal(transport_sched_cancel(s, idb), 0);
	assert_int_equal(transport_sched_cancel(s, idb), -ENOENT);
	net.fail_with = -EAFNOSUPPORT;
	assert_int_equal(loop_run_once(loop, 0), 0);
	assert_int_equal(loop_run_once(loop, 0), 0);
	assert_int_equal(b.calls, 0);
	assert_int_equal(c.calls, 1);
	assert_int_equal(c.err, -EAFNOSUPPORT);
	assert_string_equal(c.msg, "fake failure");
	assert_int_equal(transport_sched_in_flight(s, 0), 0);

	/* free with attempts pending: no callbacks, no leaks */
	net.fail_with = 0;
	assert_int_equal(transport_sched_connect(s, &hci0, on_connect, &b, NULL), 0);
	assert_int_equal(transport_sched_connect(s, &hci0, on_connect, &b, NULL), 0);
	assert_int_equal(loop_run_once(loop, 0), 0);
	transport_sched_free(s);
	assert_int_equal(b.calls, 0);
	loop_free(loop);
	for (int i = 0; i < net.n_writers; i++)
		close(net.pipe_writers[i]);
}

static void test_sched_allocation_failure(void **state)
{
	struct loop *loop;
	struct transport_sched *s = (struct transport_sched *)0x1;
	struct transport_address sim;
	struct outcome o = { 0 };
	unsigned id = 5;

	assert_int_equal(loop_new(&loop), 0);
	test_alloc_fail_after(0);
	assert_int_equal(transport_sched_new(loop, &s), -ENOMEM);
	assert_ptr_equal(s, (struct transport_sched *)0x1);
	test_alloc_reset();
	assert_int_equal(transport_sched_new(loop, &s), 0);
	assert_int_equal(transport_parse("sim:/x", NULL, NULL, NULL, &sim, NULL, 0), 0);
	test_alloc_fail_after(0);
	assert_int_equal(transport_sched_connect(s, &sim, on_connect, &o, &id), -ENOMEM);
	assert_int_equal(id, 5);
	test_alloc_reset();
	sim.kind = 0;
	assert_int_equal(transport_sched_connect(s, &sim, on_connect, &o, &id), -EINVAL);
	transport_sched_free(s);
	loop_free(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_sim),
		cmocka_unit_test(test_parse_le),
		cmocka_unit_test(test_parse_rejects_garbage),
		cmocka_unit_test(test_le_without_bluetooth),
		cmocka_unit_test(test_sim_connects_through_scheduler),
		cmocka_unit_test(test_one_le_attempt_per_adapter),
		cmocka_unit_test(test_timeout_cancel_and_failure),
		cmocka_unit_test(test_sched_allocation_failure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
